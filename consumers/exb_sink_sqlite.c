/*
 * exb_sink_sqlite.c — the SQLite sink: delivered records into the
 * subscriber's own database, exactly once (see exb_sink.h).
 *
 * Layout of the database:
 *
 *   "<resource code>"   one table per resource, created on first sight:
 *                       columns = the delivered items, PRIMARY KEY = the key
 *                       items (the non-nullable fields of the delivery
 *                       schema). A newer delivery schema with more items
 *                       adds columns (ALTER TABLE ... ADD COLUMN); columns
 *                       are never dropped, and a record of an older schema
 *                       leaves the columns it does not know untouched.
 *   exb_offsets         (topic, partition, next_offset): where consumption
 *                       resumes. The truth: Kafka commits are informational.
 *   exb_events          (event_id, topic, partition, offset, at): where each
 *                       event was last applied, for duplicate checks.
 *   exb_dead_letters    (topic, partition, offset, key, value, reason, at):
 *                       records that could not be decoded or applied.
 *   exb_meta            (k, v): cluster_id of the offsets.
 *
 * Item types map to columns as: C TEXT, N REAL, I INTEGER, D TEXT
 * 'YYYY-MM-DD', T TEXT '2026-01-15T08:30:00.000Z' (UTC), L INTEGER 0/1,
 * B BLOB. Identifiers are always double-quoted ("370600-GA-0001").
 *
 * Exactly once: one batch = one transaction (BEGIN IMMEDIATE) holding the
 * row changes, the event and dead-letter rows and the partitions' next
 * offsets. Inside it, every record at an offset below the partition's stored
 * next offset is skipped (already applied: a rewind, a stale prefetch, or
 * another instance sharing this database), so even a consumer that is given
 * old offsets never applies a record twice. A crash before COMMIT loses the
 * whole batch and its offsets together; after COMMIT both are there. That
 * holds with synchronous=NORMAL in WAL mode too: a power loss may drop the
 * last transactions, but rows and offsets go together and are re-consumed.
 *
 * Errors: a statement that fails because of the record (a key or constraint
 * the table refuses, a date out of range, a value too big) only undoes that
 * statement, and the record becomes a dead letter in the same transaction.
 * A failure of the database itself (busy/locked past sink.busy.timeout.ms,
 * I/O error, disk full, read-only) rolls back the whole batch and returns
 * EXB_ERR_RETRY; the cached table knowledge and statements are dropped,
 * since the rollback may have undone a CREATE or ALTER.
 *
 * Prepared statements are cached per (table, schema id): the upsert
 *   INSERT INTO "t"("k","a") VALUES(?1,?2)
 *     ON CONFLICT("k") DO UPDATE SET "a"=excluded."a"
 * and the delete DELETE FROM "t" WHERE "k"=?1.
 */
#include "exb_sink.h"

#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const exb_prop_t sqlite_props[] = {
        {"sink.path", EXB_PROP_STR, offsetof(exb_sink_sqlite_conf_t, path), NULL, NULL,
         "sqlite: the database file (created if missing). Default <data.dir>/consumer-<dept>.db."},
        {"sink.busy.timeout.ms", EXB_PROP_INT, offsetof(exb_sink_sqlite_conf_t, busy_timeout_ms),
         "0..600000", "1000",
         "sqlite: how long a batch waits for a lock held by another connection before it is rolled "
         "back and retried later (consumption pauses meanwhile)."},
        {"sink.synchronous", EXB_PROP_ENUM, offsetof(exb_sink_sqlite_conf_t, synchronous),
         "normal|full", "normal",
         "sqlite: PRAGMA synchronous. normal is exactly-once across process crashes; full also "
         "keeps the last batches across a power loss."},
        {NULL}};

/* Schema cache entry: how records of one schema id go into one table. */
typedef struct sq_plan_s {
        char *table;
        int32_t schema_id;
        int nkeys;
        int *keys;            /* field indexes of the key items */
        sqlite3_stmt *upsert; /* binds every field, ?1.. in field order */
        sqlite3_stmt *del;    /* binds the key fields, in key order */
        char *error;          /* non-NULL: records of this schema are dead letters */
} sq_plan_t;

typedef struct sq_forget_s {
        char *topic;
        int32_t partition;
} sq_forget_t;

typedef struct sq_sink_s {
        sqlite3 *db;
        char *path;
        int nplans;
        sq_plan_t *plans;
        int last_plan;
        int nforget;
        sq_forget_t *forget; /* partitions whose stored offset is stale */
        sqlite3_stmt *st_guard, *st_offset, *st_ev_get, *st_ev_put, *st_dead;
        sqlite3_stmt *st_forget_off, *st_forget_ev;
        exb_buf_t sql;
} sq_sink_t;

static const char *sq_ddl =
        "CREATE TABLE IF NOT EXISTS exb_offsets(topic TEXT NOT NULL, partition INTEGER NOT NULL,"
        " next_offset INTEGER NOT NULL, PRIMARY KEY(topic, partition));"
        "CREATE TABLE IF NOT EXISTS exb_events(event_id TEXT PRIMARY KEY, topic TEXT,"
        " partition INTEGER, offset INTEGER, at TEXT);"
        "CREATE TABLE IF NOT EXISTS exb_dead_letters(topic TEXT NOT NULL, partition INTEGER NOT "
        "NULL,"
        " offset INTEGER NOT NULL, key, value BLOB, reason TEXT, at TEXT,"
        " PRIMARY KEY(topic, partition, offset));"
        "CREATE TABLE IF NOT EXISTS exb_meta(k TEXT PRIMARY KEY, v TEXT);";

/* -------------------------------------------------------------- utilities */

/* Is rc a failure of the database rather than of the record? */
static int sq_infra(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_READONLY:
        case SQLITE_CANTOPEN:
        case SQLITE_NOMEM:
        case SQLITE_PROTOCOL:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
        case SQLITE_PERM:
        case SQLITE_ABORT:
        case SQLITE_INTERRUPT:
        case SQLITE_AUTH:
                return 1;
        default:
                return 0;
        }
}

/* Appends "name" with embedded quotes doubled. */
static void sq_ident(exb_buf_t *b, const char *name)
{
        exb_buf_putc(b, '"');
        for (const char *p = name; *p; p++) {
                if (*p == '"')
                        exb_buf_putc(b, '"');
                exb_buf_putc(b, *p);
        }
        exb_buf_putc(b, '"');
}

static const char *sq_coltype(exb_type_t t)
{
        switch (t) {
        case EXB_T_NUMBER:
                return "REAL";
        case EXB_T_INT:
        case EXB_T_BOOL:
                return "INTEGER";
        case EXB_T_BYTES:
                return "BLOB";
        default:
                return "TEXT";
        }
}

static int sq_utf8_valid(const uint8_t *p, size_t len)
{
        size_t i = 0;
        while (i < len) {
                uint8_t c = p[i];
                size_t n;
                uint32_t cp;
                if (c == 0)
                        return 0;
                if (c < 0x80) {
                        i++;
                        continue;
                } else if ((c & 0xe0) == 0xc0) {
                        n = 1;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 2;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        return 0;
                }
                if (len - i <= n)
                        return 0;
                for (size_t k = 1; k <= n; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return 0;
                i += n + 1;
        }
        return 1;
}

/* Binds bytes as TEXT when they are UTF-8 without NUL, else as a BLOB. */
static int sq_bind_bytes(sqlite3_stmt *st, int i, const void *p, size_t len)
{
        if (!p)
                return sqlite3_bind_null(st, i);
        if (len > INT_MAX)
                return SQLITE_TOOBIG;
        if (sq_utf8_valid(p, len))
                return sqlite3_bind_text(st, i, len ? p : "", (int)len, SQLITE_STATIC);
        return sqlite3_bind_blob(st, i, p, (int)len, SQLITE_STATIC);
}

#define SQ_DAY_MIN (-719528LL)         /* 0000-01-01 */
#define SQ_DAY_MAX 2932896LL           /* 9999-12-31 */
#define SQ_MS_MIN  (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define SQ_MS_MAX  253402300799999LL   /* 9999-12-31T23:59:59.999Z */

/* Binds one value as its column type. Returns an SQLite code; a value that
 * has no column representation is SQLITE_RANGE with why set. */
static int sq_bind_val(sqlite3_stmt *st, int i, const exb_field_t *f, const exb_val_t *v,
                       const char **why)
{
        char text[32];
        if (v->is_null)
                return sqlite3_bind_null(st, i);
        switch (f->type) {
        case EXB_T_STRING:
                if (v->u.s.len > INT_MAX)
                        return SQLITE_TOOBIG;
                return sqlite3_bind_text(st, i, v->u.s.len ? v->u.s.p : "", (int)v->u.s.len,
                                         SQLITE_STATIC);
        case EXB_T_BYTES:
                if (v->u.s.len > INT_MAX)
                        return SQLITE_TOOBIG;
                if (!v->u.s.len)
                        return sqlite3_bind_zeroblob(st, i, 0);
                return sqlite3_bind_blob(st, i, v->u.s.p, (int)v->u.s.len, SQLITE_STATIC);
        case EXB_T_NUMBER:
                return sqlite3_bind_double(st, i, v->u.d);
        case EXB_T_INT:
                return sqlite3_bind_int64(st, i, v->u.i);
        case EXB_T_BOOL:
                return sqlite3_bind_int(st, i, v->u.i ? 1 : 0);
        case EXB_T_DATE:
                if (v->u.i < SQ_DAY_MIN || v->u.i > SQ_DAY_MAX) {
                        *why = "date out of range 0000-01-01..9999-12-31";
                        return SQLITE_RANGE;
                }
                exb_date_format(v->u.i, text);
                return sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
        case EXB_T_TIMESTAMP:
                if (v->u.i < SQ_MS_MIN || v->u.i > SQ_MS_MAX) {
                        *why = "timestamp out of range 0000-01-01..9999-12-31";
                        return SQLITE_RANGE;
                }
                exb_ts_format(v->u.i, text);
                return sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
        }
        *why = "unknown item type";
        return SQLITE_RANGE;
}

static int sq_exec(sq_sink_t *sk, const char *sql)
{
        return sqlite3_exec(sk->db, sql, NULL, NULL, NULL);
}

static int sq_prepare(sq_sink_t *sk, const char *sql, sqlite3_stmt **st)
{
        return sqlite3_prepare_v3(sk->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

/* Steps a statement that returns no rows, then resets it. */
static int sq_run(sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ------------------------------------------------------------------ plans */

static void sq_plan_free(sq_plan_t *p)
{
        sqlite3_finalize(p->upsert);
        sqlite3_finalize(p->del);
        free(p->keys);
        free(p->table);
        free(p->error);
}

static void sq_plans_drop(sq_sink_t *sk)
{
        for (int i = 0; i < sk->nplans; i++)
                sq_plan_free(&sk->plans[i]);
        free(sk->plans);
        sk->plans = NULL;
        sk->nplans = 0;
        sk->last_plan = -1;
}

/* Columns of table (name and pk position); count, or -1 with an SQLite code
 * in *rc. Caller frees names and the arrays. */
static int sq_table_cols(sq_sink_t *sk, const char *table, char ***names, int **pk, int *rc)
{
        sqlite3_stmt *st;
        int n = 0;
        *names = NULL;
        *pk = NULL;
        exb_buf_reset(&sk->sql);
        exb_buf_printf(&sk->sql, "PRAGMA table_info(");
        sq_ident(&sk->sql, table);
        exb_buf_putc(&sk->sql, ')');
        exb_buf_cstr(&sk->sql);
        if ((*rc = sqlite3_prepare_v2(sk->db, (char *)sk->sql.p, -1, &st, NULL)) != SQLITE_OK)
                return -1;
        while ((*rc = sqlite3_step(st)) == SQLITE_ROW) {
                *names = exb_realloc(*names, sizeof(char *) * (size_t)(n + 1));
                *pk = exb_realloc(*pk, sizeof(int) * (size_t)(n + 1));
                (*names)[n] = exb_strdup((const char *)sqlite3_column_text(st, 1));
                (*pk)[n] = sqlite3_column_int(st, 5);
                n++;
        }
        sqlite3_finalize(st);
        if (*rc != SQLITE_DONE) {
                for (int i = 0; i < n; i++)
                        free((*names)[i]);
                free(*names);
                free(*pk);
                *names = NULL;
                *pk = NULL;
                return -1;
        }
        *rc = SQLITE_OK;
        return n;
}

/* Makes the table fit the schema: creates it, or adds missing columns and
 * checks its primary key. Returns SQLITE_OK; an infrastructure code; or
 * SQLITE_ERROR with *why (malloc'ed) when this schema cannot go into it. */
static int sq_table_ensure(sq_sink_t *sk, const char *table, const exb_schema_t *schema,
                           const sq_plan_t *p, char **why)
{
        char **cols;
        int *pk, rc;
        int ncols = sq_table_cols(sk, table, &cols, &pk, &rc);
        char msg[512];
        if (ncols < 0)
                return rc;
        exb_buf_t *b = &sk->sql;
        if (ncols == 0) {
                exb_buf_reset(b);
                exb_buf_printf(b, "CREATE TABLE ");
                sq_ident(b, table);
                exb_buf_putc(b, '(');
                for (int f = 0; f < schema->nfields; f++) {
                        sq_ident(b, schema->fields[f].name);
                        exb_buf_printf(b, " %s%s, ", sq_coltype(schema->fields[f].type),
                                       schema->fields[f].nullable ? "" : " NOT NULL");
                }
                exb_buf_printf(b, "PRIMARY KEY(");
                for (int k = 0; k < p->nkeys; k++) {
                        if (k)
                                exb_buf_putc(b, ',');
                        sq_ident(b, schema->fields[p->keys[k]].name);
                }
                exb_buf_printf(b, "))");
                exb_buf_cstr(b);
                rc = sq_exec(sk, (char *)b->p);
                if (rc != SQLITE_OK && !sq_infra(rc)) {
                        snprintf(msg, sizeof(msg), "cannot create table \"%s\": %s", table,
                                 sqlite3_errmsg(sk->db));
                        *why = exb_strdup(msg);
                }
                if (rc == SQLITE_OK)
                        EXB_INFO("sqlite sink %s: created table \"%s\" (%d columns)", sk->path,
                                 table, schema->nfields);
                return rc;
        }
        /* The existing primary key must be exactly the key items. */
        int npk = 0, ok = 1;
        for (int c = 0; c < ncols; c++)
                if (pk[c] > 0) {
                        npk++;
                        int found = 0;
                        for (int k = 0; k < p->nkeys && !found; k++)
                                found = !strcasecmp(cols[c], schema->fields[p->keys[k]].name);
                        ok &= found;
                }
        rc = SQLITE_OK;
        if (!ok || npk != p->nkeys) {
                snprintf(msg, sizeof(msg),
                         "table \"%s\" exists with a primary key other than the key items of "
                         "schema %d",
                         table, (int)schema->id);
                *why = exb_strdup(msg);
                rc = SQLITE_ERROR;
        }
        for (int f = 0; rc == SQLITE_OK && f < schema->nfields; f++) {
                int have = 0;
                for (int c = 0; c < ncols && !have; c++)
                        have = !strcasecmp(cols[c], schema->fields[f].name);
                if (have)
                        continue;
                exb_buf_reset(b);
                exb_buf_printf(b, "ALTER TABLE ");
                sq_ident(b, table);
                exb_buf_printf(b, " ADD COLUMN ");
                sq_ident(b, schema->fields[f].name);
                exb_buf_printf(b, " %s", sq_coltype(schema->fields[f].type));
                exb_buf_cstr(b);
                rc = sq_exec(sk, (char *)b->p);
                if (rc == SQLITE_OK) {
                        EXB_INFO("sqlite sink %s: table \"%s\": added column \"%s\" (schema %d)",
                                 sk->path, table, schema->fields[f].name, (int)schema->id);
                } else if (!sq_infra(rc)) {
                        snprintf(msg, sizeof(msg), "cannot add column \"%s\" to \"%s\": %s",
                                 schema->fields[f].name, table, sqlite3_errmsg(sk->db));
                        *why = exb_strdup(msg);
                }
        }
        for (int c = 0; c < ncols; c++)
                free(cols[c]);
        free(cols);
        free(pk);
        return rc;
}

/* Builds the plan's table and statements. Returns SQLITE_OK (p->error may
 * be set) or an infrastructure code. */
static int sq_plan_build(sq_sink_t *sk, sq_plan_t *p, const exb_schema_t *schema)
{
        char msg[512];
        for (int f = 0; f < schema->nfields; f++)
                if (!schema->fields[f].nullable) {
                        p->keys = exb_realloc(p->keys, sizeof(int) * (size_t)(p->nkeys + 1));
                        p->keys[p->nkeys++] = f;
                }
        if (!p->nkeys) {
                snprintf(msg, sizeof(msg), "schema %d has no key items (no non-nullable field)",
                         (int)schema->id);
                p->error = exb_strdup(msg);
                return SQLITE_OK;
        }
        if (!strncasecmp(p->table, "sqlite_", 7) || !strncasecmp(p->table, "exb_", 4)) {
                snprintf(msg, sizeof(msg), "\"%s\" is a reserved table name", p->table);
                p->error = exb_strdup(msg);
                return SQLITE_OK;
        }
        int rc = sq_table_ensure(sk, p->table, schema, p, &p->error);
        if (rc != SQLITE_OK)
                return p->error ? SQLITE_OK : rc;

        exb_buf_t *b = &sk->sql;
        exb_buf_reset(b);
        exb_buf_printf(b, "INSERT INTO ");
        sq_ident(b, p->table);
        exb_buf_putc(b, '(');
        for (int f = 0; f < schema->nfields; f++) {
                if (f)
                        exb_buf_putc(b, ',');
                sq_ident(b, schema->fields[f].name);
        }
        exb_buf_printf(b, ") VALUES(");
        for (int f = 0; f < schema->nfields; f++)
                exb_buf_printf(b, "%s?%d", f ? "," : "", f + 1);
        exb_buf_printf(b, ") ON CONFLICT(");
        for (int k = 0; k < p->nkeys; k++) {
                if (k)
                        exb_buf_putc(b, ',');
                sq_ident(b, schema->fields[p->keys[k]].name);
        }
        exb_buf_printf(b, ") DO ");
        int nset = 0;
        for (int f = 0; f < schema->nfields; f++) {
                if (!schema->fields[f].nullable)
                        continue;
                exb_buf_printf(b, nset++ ? ", " : "UPDATE SET ");
                sq_ident(b, schema->fields[f].name);
                exb_buf_printf(b, "=excluded.");
                sq_ident(b, schema->fields[f].name);
        }
        if (!nset)
                exb_buf_printf(b, "NOTHING");
        exb_buf_cstr(b);
        rc = sq_prepare(sk, (char *)b->p, &p->upsert);
        if (rc == SQLITE_OK) {
                exb_buf_reset(b);
                exb_buf_printf(b, "DELETE FROM ");
                sq_ident(b, p->table);
                for (int k = 0; k < p->nkeys; k++) {
                        exb_buf_printf(b, k ? " AND " : " WHERE ");
                        sq_ident(b, schema->fields[p->keys[k]].name);
                        exb_buf_printf(b, "=?%d", k + 1);
                }
                exb_buf_cstr(b);
                rc = sq_prepare(sk, (char *)b->p, &p->del);
        }
        if (rc != SQLITE_OK && !sq_infra(rc)) {
                snprintf(msg, sizeof(msg), "table \"%s\", schema %d: %s", p->table, (int)schema->id,
                         sqlite3_errmsg(sk->db));
                p->error = exb_strdup(msg);
                rc = SQLITE_OK;
        }
        return rc;
}

/* The plan of (table, schema), built on first sight. NULL with *rc set to
 * an infrastructure code if building it failed. */
static sq_plan_t *sq_plan_get(sq_sink_t *sk, const char *table, const exb_schema_t *schema, int *rc)
{
        if (sk->last_plan >= 0) {
                sq_plan_t *p = &sk->plans[sk->last_plan];
                if (p->schema_id == schema->id && !strcmp(p->table, table))
                        return p;
        }
        for (int i = 0; i < sk->nplans; i++)
                if (sk->plans[i].schema_id == schema->id && !strcmp(sk->plans[i].table, table)) {
                        sk->last_plan = i;
                        return &sk->plans[i];
                }
        sq_plan_t p = {.table = exb_strdup(table), .schema_id = schema->id};
        *rc = sq_plan_build(sk, &p, schema);
        if (*rc != SQLITE_OK) {
                sq_plan_free(&p);
                return NULL;
        }
        if (p.error)
                EXB_WARN("sqlite sink %s: %s: its records become dead letters", sk->path, p.error);
        sk->plans = exb_realloc(sk->plans, sizeof(*sk->plans) * (size_t)(sk->nplans + 1));
        sk->plans[sk->nplans] = p;
        sk->last_plan = sk->nplans++;
        return &sk->plans[sk->last_plan];
}

/* Removes the plan at index i (its table changed under it). */
static void sq_plan_remove(sq_sink_t *sk, sq_plan_t *p)
{
        int i = (int)(p - sk->plans);
        sq_plan_free(p);
        sk->plans[i] = sk->plans[--sk->nplans];
        sk->last_plan = -1;
}

/* ------------------------------------------------------------------ write */

/* Runs the record's row change. Returns SQLITE_OK, an infrastructure code,
 * or another code with *why / the db's message for a dead letter. */
static int sq_apply(sq_plan_t *p, const exb_sink_rec_t *r, const char **why)
{
        const exb_schema_t *s = r->schema;
        const exb_record_t *rec = r->rec;
        sqlite3_stmt *st;
        int rc = SQLITE_OK;
        if (rec->op == EXB_OP_DELETE) {
                st = p->del;
                for (int k = 0; k < p->nkeys && rc == SQLITE_OK; k++)
                        rc = sq_bind_val(st, k + 1, &s->fields[p->keys[k]], &rec->vals[p->keys[k]],
                                         why);
        } else {
                st = p->upsert;
                for (int f = 0; f < s->nfields && rc == SQLITE_OK; f++)
                        rc = sq_bind_val(st, f + 1, &s->fields[f], &rec->vals[f], why);
        }
        if (rc == SQLITE_OK)
                rc = sq_run(st);
        sqlite3_clear_bindings(st);
        return rc;
}

/* Keeps r as a dead letter. Returns an SQLite code. */
static int sq_dead(sq_sink_t *sk, const exb_sink_rec_t *r, const char *reason, const char *at)
{
        sqlite3_stmt *st = sk->st_dead;
        sqlite3_bind_text(st, 1, r->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, r->partition);
        sqlite3_bind_int64(st, 3, r->offset);
        int rc = sq_bind_bytes(st, 4, r->key, r->key_len);
        if (rc == SQLITE_OK) {
                if (!r->value)
                        rc = sqlite3_bind_null(st, 5);
                else if (r->len > INT_MAX)
                        rc = SQLITE_TOOBIG;
                else
                        rc = sqlite3_bind_blob(st, 5, r->len ? r->value : "", (int)r->len,
                                               SQLITE_STATIC);
        }
        sqlite3_bind_text(st, 6, reason, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, at, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = sq_run(st);
        sqlite3_clear_bindings(st);
        EXB_DEBUG("sqlite sink: dead letter %s [%d] @%" PRId64 ": %s", r->topic, (int)r->partition,
                  r->offset, reason);
        return rc;
}

/* Has this event been applied at this very position already? 1 yes, 0 no,
 * or -(SQLite code). */
static int sq_event_replay(sq_sink_t *sk, const exb_sink_rec_t *r)
{
        sqlite3_stmt *st = sk->st_ev_get;
        sqlite3_bind_text(st, 1, r->rec->event_id.p, (int)r->rec->event_id.len, SQLITE_STATIC);
        int rc = sqlite3_step(st), same = 0;
        if (rc == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(st, 0);
                same = t && !strcmp(t, r->topic) && sqlite3_column_int(st, 1) == r->partition &&
                       sqlite3_column_int64(st, 2) == r->offset;
                rc = SQLITE_DONE;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE ? same : -rc;
}

static int sq_event_put(sq_sink_t *sk, const exb_sink_rec_t *r, const char *at)
{
        sqlite3_stmt *st = sk->st_ev_put;
        sqlite3_bind_text(st, 1, r->rec->event_id.p, (int)r->rec->event_id.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, r->partition);
        sqlite3_bind_int64(st, 4, r->offset);
        sqlite3_bind_text(st, 5, at, -1, SQLITE_STATIC);
        int rc = sq_run(st);
        sqlite3_clear_bindings(st);
        return rc;
}

/* Stored next offset of a partition inside the transaction (-1 if none),
 * or -2 - code on error. */
static int64_t sq_guard(sq_sink_t *sk, const char *topic, int32_t partition, int *rc)
{
        sqlite3_stmt *st = sk->st_guard;
        sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, partition);
        int64_t next = -1;
        *rc = sqlite3_step(st);
        if (*rc == SQLITE_ROW) {
                next = sqlite3_column_int64(st, 0);
                *rc = SQLITE_DONE;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        *rc = *rc == SQLITE_DONE ? SQLITE_OK : *rc;
        return next;
}

static int sq_forget_run(sq_sink_t *sk)
{
        for (int i = 0; i < sk->nforget; i++) {
                sqlite3_stmt *sts[] = {sk->st_forget_off, sk->st_forget_ev};
                for (int k = 0; k < 2; k++) {
                        sqlite3_bind_text(sts[k], 1, sk->forget[i].topic, -1, SQLITE_STATIC);
                        sqlite3_bind_int(sts[k], 2, sk->forget[i].partition);
                        int rc = sq_run(sts[k]);
                        sqlite3_clear_bindings(sts[k]);
                        if (rc != SQLITE_OK)
                                return rc;
                }
        }
        return SQLITE_OK;
}

static void sq_forget_clear(sq_sink_t *sk)
{
        for (int i = 0; i < sk->nforget; i++)
                free(sk->forget[i].topic);
        free(sk->forget);
        sk->forget = NULL;
        sk->nforget = 0;
}

/* Rolls the open transaction back and forgets what it may have created. */
static void sq_rollback(sq_sink_t *sk)
{
        if (sk->db && !sqlite3_get_autocommit(sk->db))
                sq_exec(sk, "ROLLBACK");
        sq_plans_drop(sk);
}

static exb_err_t sq_fail(sq_sink_t *sk, int rc, const char *what, char *errstr, size_t errstr_size)
{
        exb_errf(errstr, errstr_size, "sqlite sink %s: %s: %s (%s)", sk->path, what,
                 sqlite3_errmsg(sk->db), sqlite3_errstr(rc));
        sq_rollback(sk);
        return EXB_ERR_RETRY;
}

static exb_err_t sq_write(void *opaque, const exb_sink_batch_t *batch, exb_sink_result_t *res,
                          char *errstr, size_t errstr_size)
{
        sq_sink_t *sk = opaque;
        char at[25];
        exb_ts_format(exb_now_ms(), at);
        int rc = sq_exec(sk, "BEGIN IMMEDIATE");
        if (rc != SQLITE_OK)
                return sq_fail(sk, rc, "begin", errstr, errstr_size);
        if ((rc = sq_forget_run(sk)) != SQLITE_OK)
                return sq_fail(sk, rc, "forgetting stale offsets", errstr, errstr_size);

        /* Stored next offsets: records below them are already applied. */
        int64_t guard_stack[16];
        int64_t *guard =
                batch->npos <= 16 ? guard_stack : exb_calloc((size_t)batch->npos, sizeof(int64_t));
        exb_err_t ret = EXB_OK;
        for (int i = 0; i < batch->npos; i++) {
                guard[i] = sq_guard(sk, batch->pos[i].topic, batch->pos[i].partition, &rc);
                if (rc != SQLITE_OK) {
                        ret = sq_fail(sk, rc, "reading exb_offsets", errstr, errstr_size);
                        goto done;
                }
        }
        int pi = 0;
        for (int i = 0; i < batch->nrecs; i++) {
                const exb_sink_rec_t *r = &batch->recs[i];
                if (pi >= batch->npos || batch->pos[pi].partition != r->partition ||
                    strcmp(batch->pos[pi].topic, r->topic)) {
                        for (pi = 0; pi < batch->npos; pi++)
                                if (batch->pos[pi].partition == r->partition &&
                                    !strcmp(batch->pos[pi].topic, r->topic))
                                        break;
                }
                if (pi < batch->npos && guard[pi] >= 0 && r->offset < guard[pi]) {
                        res->replays++;
                        continue;
                }
                const char *reason = r->error;
                char why_buf[600];
                if (!reason && (!r->schema || !r->rec || !r->resource))
                        reason = "no decoded record";
                sq_plan_t *p = NULL;
                if (!reason) {
                        int ev = r->rec->event_id.len ? sq_event_replay(sk, r) : 0;
                        if (ev < 0) {
                                ret = sq_fail(sk, -ev, "reading exb_events", errstr, errstr_size);
                                goto done;
                        }
                        if (ev == 1) {
                                res->replays++;
                                continue;
                        }
                        for (int attempt = 0; attempt < 2 && !reason; attempt++) {
                                p = sq_plan_get(sk, r->resource, r->schema, &rc);
                                if (!p) {
                                        ret = sq_fail(sk, rc, "preparing table", errstr,
                                                      errstr_size);
                                        goto done;
                                }
                                if (p->error) {
                                        reason = p->error;
                                        break;
                                }
                                const char *why = NULL;
                                rc = sq_apply(p, r, &why);
                                if (rc == SQLITE_OK)
                                        break;
                                if (sq_infra(rc)) {
                                        ret = sq_fail(sk, rc, "applying a record", errstr,
                                                      errstr_size);
                                        goto done;
                                }
                                if ((rc & 0xff) == SQLITE_ERROR && attempt == 0) {
                                        /* the table changed under the statement: rebuild */
                                        sq_plan_remove(sk, p);
                                        p = NULL;
                                        continue;
                                }
                                snprintf(why_buf, sizeof(why_buf), "%s: %s", r->resource,
                                         why ? why : sqlite3_errmsg(sk->db));
                                reason = why_buf;
                        }
                }
                if (reason) {
                        if ((rc = sq_dead(sk, r, reason, at)) != SQLITE_OK) {
                                ret = sq_fail(sk, rc, "writing exb_dead_letters", errstr,
                                              errstr_size);
                                goto done;
                        }
                        res->dead_letters++;
                        continue;
                }
                if (r->rec->op == EXB_OP_DELETE)
                        res->deletes++;
                else
                        res->upserts++;
                if (r->rec->event_id.len && (rc = sq_event_put(sk, r, at)) != SQLITE_OK) {
                        ret = sq_fail(sk, rc, "writing exb_events", errstr, errstr_size);
                        goto done;
                }
        }
        for (int i = 0; i < batch->npos; i++) {
                sqlite3_stmt *st = sk->st_offset;
                sqlite3_bind_text(st, 1, batch->pos[i].topic, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 2, batch->pos[i].partition);
                sqlite3_bind_int64(st, 3, batch->pos[i].next_offset);
                rc = sq_run(st);
                sqlite3_clear_bindings(st);
                if (rc != SQLITE_OK) {
                        ret = sq_fail(sk, rc, "writing exb_offsets", errstr, errstr_size);
                        goto done;
                }
        }
        if ((rc = sq_exec(sk, "COMMIT")) != SQLITE_OK) {
                ret = sq_fail(sk, rc, "commit", errstr, errstr_size);
                goto done;
        }
        sq_forget_clear(sk);
done:
        if (guard != guard_stack)
                free(guard);
        return ret;
}

/* --------------------------------------------------------------- offsets */

static int64_t sq_offset(void *opaque, const char *topic, int32_t partition, int64_t hi)
{
        sq_sink_t *sk = opaque;
        int rc;
        if (!sqlite3_get_autocommit(sk->db))
                sq_rollback(sk); /* never: write() always ends its transaction */
        int64_t next = sq_guard(sk, topic, partition, &rc);
        if (rc != SQLITE_OK) {
                /* Safe: the in-transaction guard skips what is already applied. */
                EXB_WARN("sqlite sink %s: cannot read the offset of %s [%d] (%s): reading it "
                         "from the beginning, applied records are skipped",
                         sk->path, topic, (int)partition, sqlite3_errmsg(sk->db));
                return EXB_OFFSET_BEGINNING;
        }
        if (next < 0)
                return EXB_OFFSET_BEGINNING;
        if (hi >= 0 && next > hi) {
                EXB_WARN("sqlite sink %s: stored offset %" PRId64 " of %s [%d] is beyond the end "
                         "of the partition (%" PRId64 "): the topic was recreated; reading it "
                         "from the beginning",
                         sk->path, next, topic, (int)partition, hi);
                int i;
                for (i = 0; i < sk->nforget; i++)
                        if (sk->forget[i].partition == partition &&
                            !strcmp(sk->forget[i].topic, topic))
                                break;
                if (i == sk->nforget) {
                        sk->forget = exb_realloc(sk->forget,
                                                 sizeof(*sk->forget) * (size_t)(sk->nforget + 1));
                        sk->forget[sk->nforget++] = (sq_forget_t){exb_strdup(topic), partition};
                }
                return EXB_OFFSET_BEGINNING;
        }
        return next;
}

/* ------------------------------------------------------------- open/close */

static void sq_close(void *opaque)
{
        sq_sink_t *sk = opaque;
        if (!sk)
                return;
        sq_rollback(sk);
        sqlite3_stmt *sts[] = {sk->st_guard, sk->st_offset,     sk->st_ev_get,   sk->st_ev_put,
                               sk->st_dead,  sk->st_forget_off, sk->st_forget_ev};
        for (size_t i = 0; i < EXB_ARRAY_CNT(sts); i++)
                sqlite3_finalize(sts[i]);
        sq_forget_clear(sk);
        sqlite3_close(sk->db);
        exb_buf_free(&sk->sql);
        free(sk->path);
        free(sk);
}

static void *sq_open(const void *confp, const exb_sink_env_t *env, char *errstr, size_t errstr_size)
{
        const exb_sink_sqlite_conf_t *conf = confp;
        sq_sink_t *sk = exb_calloc(1, sizeof(*sk));
        char path[4096];
        if (conf && conf->path && *conf->path)
                snprintf(path, sizeof(path), "%s", conf->path);
        else
                snprintf(path, sizeof(path), "%s/consumer-%s.db",
                         env && env->data_dir ? env->data_dir : ".",
                         env && env->dept ? env->dept : "sink");
        sk->path = exb_strdup(path);
        sk->last_plan = -1;
        exb_buf_init(&sk->sql, 1 << 20);
        int rc = sqlite3_open_v2(path, &sk->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
        if (rc != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "sqlite sink %s: cannot open: %s", path,
                         sk->db ? sqlite3_errmsg(sk->db) : sqlite3_errstr(rc));
                goto fail;
        }
        sqlite3_extended_result_codes(sk->db, 1);
        sqlite3_busy_timeout(sk->db, conf ? conf->busy_timeout_ms : 1000);
        char pragmas[128];
        snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s",
                 conf && conf->synchronous && !strcmp(conf->synchronous, "full") ? "FULL"
                                                                                 : "NORMAL");
        if ((rc = sq_exec(sk, pragmas)) != SQLITE_OK || (rc = sq_exec(sk, sq_ddl)) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "sqlite sink %s: cannot set up: %s", path,
                         sqlite3_errmsg(sk->db));
                goto fail;
        }
        struct {
                sqlite3_stmt **st;
                const char *sql;
        } stmts[] = {
                {&sk->st_guard,
                 "SELECT next_offset FROM exb_offsets WHERE topic=?1 AND partition=?2"},
                {&sk->st_offset,
                 "INSERT INTO exb_offsets VALUES(?1,?2,?3) ON CONFLICT(topic, partition) DO UPDATE"
                 " SET next_offset=max(next_offset, excluded.next_offset)"},
                {&sk->st_ev_get,
                 "SELECT topic, partition, offset FROM exb_events WHERE event_id=?1"},
                {&sk->st_ev_put,
                 "INSERT INTO exb_events VALUES(?1,?2,?3,?4,?5) ON CONFLICT(event_id) DO UPDATE SET"
                 " topic=excluded.topic, partition=excluded.partition, offset=excluded.offset,"
                 " at=excluded.at"},
                {&sk->st_dead,
                 "INSERT OR REPLACE INTO exb_dead_letters VALUES(?1,?2,?3,?4,?5,?6,?7)"},
                {&sk->st_forget_off, "DELETE FROM exb_offsets WHERE topic=?1 AND partition=?2"},
                {&sk->st_forget_ev, "DELETE FROM exb_events WHERE topic=?1 AND partition=?2"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(stmts); i++)
                if ((rc = sq_prepare(sk, stmts[i].sql, stmts[i].st)) != SQLITE_OK) {
                        exb_errf(errstr, errstr_size, "sqlite sink %s: %s", path,
                                 sqlite3_errmsg(sk->db));
                        goto fail;
                }
        /* Offsets of another cluster mean nothing here: start over (the rows stay). */
        if (env && env->cluster_id) {
                sqlite3_stmt *st;
                char *old = NULL;
                if (sqlite3_prepare_v2(sk->db, "SELECT v FROM exb_meta WHERE k='cluster_id'", -1,
                                       &st, NULL) == SQLITE_OK) {
                        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                                old = exb_strdup((const char *)sqlite3_column_text(st, 0));
                        sqlite3_finalize(st);
                }
                if (!old || strcmp(old, env->cluster_id)) {
                        char *sql = sqlite3_mprintf(
                                "BEGIN IMMEDIATE;%s"
                                "INSERT OR REPLACE INTO exb_meta VALUES('cluster_id', %Q);COMMIT",
                                old ? "DELETE FROM exb_offsets; DELETE FROM exb_events;" : "",
                                env->cluster_id);
                        rc = sq_exec(sk, sql);
                        sqlite3_free(sql);
                        if (rc != SQLITE_OK) {
                                exb_errf(errstr, errstr_size,
                                         "sqlite sink %s: cannot record the cluster id: %s", path,
                                         sqlite3_errmsg(sk->db));
                                free(old);
                                goto fail;
                        }
                        if (old)
                                EXB_WARN("sqlite sink %s: stored offsets are from Kafka cluster "
                                         "%s, not %s: reading every partition from the beginning",
                                         path, old, env->cluster_id);
                }
                free(old);
        }
        return sk;
fail:
        sq_close(sk);
        return NULL;
}

const exb_sink_plugin_t exb_sink_sqlite = {
        .name = "sqlite",
        .props = sqlite_props,
        .conf_size = sizeof(exb_sink_sqlite_conf_t),
        .open = sq_open,
        .offset = sq_offset,
        .write = sq_write,
        .close = sq_close,
};
