/*
 * exb_sql.h — the few SQLite helpers every module with a local database
 * needs (control cache, producer state and source, sinks). Statements are
 * written with sqlite3_mprintf() formats: %Q quotes a string, %w an
 * identifier, %lld a number.
 */
#ifndef EXB_SQL_H
#define EXB_SQL_H

#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include "exb_common.h"

/* Runs the statement(s). Returns 0, or -1 with "<where>: <SQLite's message>"
 * in errstr — or logged as an error when errstr is NULL. */
int exb_sql_exec(sqlite3 *db, const char *where, char *errstr, size_t errstr_size,
                 const char *fmt, ...);
int exb_sql_vexec(sqlite3 *db, const char *where, char *errstr, size_t errstr_size,
                  const char *fmt, va_list ap);

/* First column of the first row as an integer, or def (no row, NULL, error). */
int64_t exb_sql_int(sqlite3 *db, int64_t def, const char *fmt, ...);

/* First column of the first row as a new string, or NULL. Caller frees. */
char *exb_sql_text(sqlite3 *db, const char *fmt, ...);

#endif
