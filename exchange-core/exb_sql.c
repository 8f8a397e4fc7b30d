/*
 * exb_sql.c — SQLite helpers (see exb_sql.h).
 */
#include "exb_sql.h"

int exb_sql_vexec(sqlite3 *db, const char *where, char *errstr, size_t errstr_size,
                  const char *fmt, va_list ap)
{
        char *sql = sqlite3_vmprintf(fmt, ap);
        char *err = NULL;
        int rc = sql ? sqlite3_exec(db, sql, NULL, NULL, &err) : SQLITE_NOMEM;
        if (rc != SQLITE_OK) {
                const char *msg = err ? err : sqlite3_errstr(rc);
                if (errstr)
                        exb_errf(errstr, errstr_size, "%s: %s", where, msg);
                else
                        EXB_ERROR("%s: %s", where, msg);
        }
        sqlite3_free(err);
        sqlite3_free(sql);
        return rc == SQLITE_OK ? 0 : -1;
}

int exb_sql_exec(sqlite3 *db, const char *where, char *errstr, size_t errstr_size,
                 const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int rc = exb_sql_vexec(db, where, errstr, errstr_size, fmt, ap);
        va_end(ap);
        return rc;
}

/* Prepares the formatted statement and steps to its first row. */
static sqlite3_stmt *first_row(sqlite3 *db, const char *fmt, va_list ap)
{
        char *sql = sqlite3_vmprintf(fmt, ap);
        sqlite3_stmt *st = NULL;
        if (sql && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL)) {
                sqlite3_finalize(st);
                st = NULL;
        }
        sqlite3_free(sql);
        return st;
}

int64_t exb_sql_int(sqlite3 *db, int64_t def, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        sqlite3_stmt *st = first_row(db, fmt, ap);
        va_end(ap);
        int64_t v = st ? sqlite3_column_int64(st, 0) : def;
        sqlite3_finalize(st);
        return v;
}

char *exb_sql_text(sqlite3 *db, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        sqlite3_stmt *st = first_row(db, fmt, ap);
        va_end(ap);
        char *v = st ? exb_strdup((const char *)sqlite3_column_text(st, 0)) : NULL;
        sqlite3_finalize(st);
        return v;
}
