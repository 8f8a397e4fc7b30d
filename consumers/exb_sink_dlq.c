/*
 * exb_sink_dlq.c — the local dead-letter store of sinks (see exb_sink_int.h).
 */
#include "exb_sink_int.h"
#include "exb_sql.h"

#include <stdio.h>
#include <stdlib.h>

struct exb_sink_dlq_s {
        sqlite3 *db;
        sqlite3_stmt *ins;
        char *path;
};

exb_sink_dlq_t *exb_sink_dlq_open(const char *data_dir, const char *dept, char *errstr,
                                  size_t errstr_size)
{
        exb_sink_dlq_t *d = exb_calloc(1, sizeof(*d));
        char path[4096];
        snprintf(path, sizeof(path), "%s/consumer-%s-dlq.db", data_dir, dept);
        d->path = exb_strdup(path);
        if (sqlite3_open(path, &d->db) != SQLITE_OK ||
            exb_sql_exec(d->db, path, errstr, errstr_size,
                         "PRAGMA busy_timeout=5000;"
                         "CREATE TABLE IF NOT EXISTS exb_dead_letters(topic TEXT NOT NULL,"
                         " partition INTEGER NOT NULL, offset INTEGER NOT NULL, key, value BLOB,"
                         " reason TEXT, at TEXT, PRIMARY KEY(topic, partition, offset))") ||
            sqlite3_prepare_v2(d->db,
                               "INSERT OR REPLACE INTO exb_dead_letters VALUES(?1, ?2, ?3, ?4, ?5,"
                               " ?6, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                               -1, &d->ins, NULL) != SQLITE_OK) {
                if (errstr && !*errstr)
                        exb_errf(errstr, errstr_size, "%s: %s", path, sqlite3_errmsg(d->db));
                exb_sink_dlq_close(d);
                return NULL;
        }
        return d;
}

void exb_sink_dlq_close(exb_sink_dlq_t *d)
{
        if (!d)
                return;
        sqlite3_finalize(d->ins);
        sqlite3_close(d->db);
        free(d->path);
        free(d);
}

int exb_sink_dlq_add(exb_sink_dlq_t *d, const exb_sink_rec_t *rec, const char *reason,
                     char *errstr, size_t errstr_size)
{
        sqlite3_reset(d->ins);
        sqlite3_bind_text(d->ins, 1, rec->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(d->ins, 2, rec->partition);
        sqlite3_bind_int64(d->ins, 3, rec->offset);
        if (rec->key) /* keys are UTF-8 text (DESIGN §3), as in the SQLite sink */
                sqlite3_bind_text(d->ins, 4, rec->key, (int)rec->key_len, SQLITE_STATIC);
        else
                sqlite3_bind_null(d->ins, 4);
        if (rec->value)
                sqlite3_bind_blob(d->ins, 5, rec->value, (int)rec->len, SQLITE_STATIC);
        else
                sqlite3_bind_null(d->ins, 5);
        sqlite3_bind_text(d->ins, 6, reason, -1, SQLITE_STATIC);
        if (sqlite3_step(d->ins) != SQLITE_DONE) {
                exb_errf(errstr, errstr_size, "%s: %s", d->path, sqlite3_errmsg(d->db));
                sqlite3_reset(d->ins);
                return -1;
        }
        sqlite3_reset(d->ins);
        return 0;
}
