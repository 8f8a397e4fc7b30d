/*
 * exb_source_sqlite.c — change capture from a department's SQLite database
 * (the transactional outbox), the `sqlite` source of the producer agent.
 *
 * What the agent adds to the department's database (and nothing else):
 *
 *   exb_meta(k TEXT PRIMARY KEY, v TEXT)
 *       db_id: 16 random hex digits, created once. Event ids are
 *       "<dept>-<db_id>-<seq>", so a recreated database (seq restarting at 1)
 *       never reuses an id that subscribers may already have seen.
 *   exb_changelog(seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT, op TEXT,
 *                 data TEXT, ts INTEGER)
 *       one row per change, written by the triggers in the same transaction
 *       as the change itself. op CREATE|UPDATE|DELETE; data a JSON object of
 *       the captured columns under their item names; ts epoch ms. A row is
 *       deleted once the change is delivered (ack) or moved to exb_rejects.
 *   exb_rejects(seq, tbl, op, data, reason, at, event_id TEXT PRIMARY KEY)
 *       changes that may not leave (a value that does not fit its item, a
 *       failed check), with the reason; `at` is ISO-8601 UTC. Snapshot rows
 *       land here too (seq NULL, op SNAPSHOT).
 *   triggers exb_<table>_ins / _upd / _del on every mapped table:
 *       AFTER INSERT  -> CREATE with every captured column;
 *       AFTER UPDATE  -> UPDATE with every captured column, only when a
 *                        captured column changed; when a key column changed:
 *                        DELETE (old key columns) then CREATE (new row);
 *       AFTER DELETE  -> DELETE with the key columns only.
 *   They are dropped and created again on every start, in one transaction,
 *   and triggers of tables no longer mapped are dropped.
 *
 * Values in `data`: SQLite's json_object() of the column values: NULL,
 * INTEGER, REAL and TEXT as JSON null/number/string; a BLOB as
 * {"blob":"<HEX>"} (JSON cannot hold bytes, and the marker keeps a BLOB in a
 * text item distinguishable from text). json_object() takes at most 63
 * pairs, so wide tables are built in chunks merged with json_patch(), which
 * drops null members of later chunks: a missing member means NULL.
 *
 * Mapping to item types (what a department stores):
 *   C  TEXT (an INTEGER is taken as its decimal text)
 *   N  INTEGER or REAL          I  INTEGER (or a REAL with an integral value)
 *   D  TEXT 'YYYY-MM-DD'        T  TEXT ISO-8601, or INTEGER epoch ms
 *   L  INTEGER 0 or 1           B  BLOB
 * Anything else makes the change a rejection naming the item, not an error.
 *
 * The agent never holds a read transaction open between calls: a batch of
 * changelog rows is copied out and the statement reset, so the department's
 * writers are never blocked by it for longer than one read.
 */
#include "exb_sql.h"
#include "exb_source.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SQ_MAX_DATA (16 * 1024 * 1024) /* a changelog row larger than this is rejected */
#define SQ_CHUNK    50                 /* json_object() pairs per chunk (limit: 63) */
#define SQ_TS       "CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"

typedef struct sq_col_s {
        int field;       /* schema field index */
        char *column;    /* column name as declared in the table */
        const char *key; /* JSON member name: the item (= schema field) name */
        exb_type_t type;
        int is_key;
} sq_col_t;

typedef struct sq_table_s {
        char *name; /* the table's name as declared */
        const exb_resource_t *res;
        const exb_schema_t *schema;
        int ncols;
        sq_col_t *cols; /* captured columns, in schema field order */
} sq_table_t;

typedef struct sq_row_s {
        int64_t pos;
        char *tbl;  /* changelog only */
        char *op;   /* changelog only */
        char *data; /* NULL if larger than SQ_MAX_DATA */
        int64_t data_len;
        int64_t ts;
} sq_row_t;

/* A rejection not yet written (see sq_reject). */
typedef struct sq_rej_s {
        int64_t seq; /* changelog seq, or -1 for a snapshot row */
        char *event_id, *reason;
        char *tbl, *data; /* snapshot rows only */
} sq_rej_t;

typedef struct sq_batch_s {
        sq_row_t *rows;
        int n, i;
} sq_batch_t;

struct exb_source_s {
        char *where, *dept, *path;
        int batch_size;
        sqlite3 *db;
        char db_id[40];
        int ntables;
        sq_table_t *tables;
        sqlite3_stmt *st_each; /* json_each over one data object */

        int64_t cursor; /* position of the last change handed out */
        sq_batch_t log;

        int snap_table, snap_run;
        int64_t snap_last; /* position of the last snapshot row handed out */
        sq_batch_t snap;

        /* the current change */
        exb_val_t *vals;
        int valcap;
        char *arena; /* string and bytes values; sized before mapping, never moves */
        size_t arena_cap, arena_len;
        char event_id[160];
        char error[512];

        sq_rej_t *rej; /* rejections waiting for the next ack */
        int nrej, rejcap;
};

/* ------------------------------------------------------------------ helpers */

static int sq_exec(exb_source_t *src, char *errstr, size_t errstr_size, const char *fmt, ...)
{
        char where[1024];
        snprintf(where, sizeof(where), "%s: source.path %s", src->where, src->path);
        va_list ap;
        va_start(ap, fmt);
        int rc = exb_sql_vexec(src->db, where, errstr, errstr_size, fmt, ap);
        va_end(ap);
        return rc;
}

static void batch_clear(sq_batch_t *b)
{
        for (int i = 0; i < b->n; i++) {
                free(b->rows[i].tbl);
                free(b->rows[i].op);
                free(b->rows[i].data);
        }
        b->n = b->i = 0;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? exb_strndup((const char *)t, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

static void table_clear(sq_table_t *t)
{
        for (int c = 0; c < t->ncols; c++)
                free(t->cols[c].column);
        free(t->cols);
        free(t->name);
        memset(t, 0, sizeof(*t));
}

static void tables_free(sq_table_t *t, int n)
{
        for (int i = 0; i < n; i++)
                table_clear(&t[i]);
        free(t);
}

/* Appends a text excerpt for messages: at most 40 bytes, cut on a UTF-8
 * boundary, control characters as '?'. */
static void excerpt(char *out, size_t size, const char *p, size_t len)
{
        size_t n = len > 40 ? 40 : len;
        while (n < len && n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
                n--;
        size_t o = 0;
        for (size_t i = 0; i < n && o + 1 < size; i++)
                out[o++] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
        if (n < len && o + 4 < size)
                memcpy(out + o, "...", 3), o += 3;
        out[o] = '\0';
}

/* ------------------------------------------------------------------- open */

static exb_source_t *sq_open(const exb_source_conf_t *conf, char *errstr, size_t errstr_size)
{
        exb_source_t *src = exb_calloc(1, sizeof(*src));
        src->where = exb_strdup(conf->where ? conf->where : "producer");
        src->dept = exb_strdup(conf->dept ? conf->dept : "");
        src->path = exb_strdup(conf->path ? conf->path : "");
        src->batch_size = conf->batch_size > 0 ? conf->batch_size : 1000;
        src->snap_table = -1;
        if (!conf->path || !*conf->path) {
                exb_errf(errstr, errstr_size, "%s: source.path is not set", src->where);
                goto fail;
        }
        /* Never create: a missing database is a configuration error. */
        int rc = sqlite3_open_v2(conf->path, &src->db, SQLITE_OPEN_READWRITE, NULL);
        if (rc != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: source.path %s: %s", src->where, conf->path,
                         src->db ? sqlite3_errmsg(src->db) : sqlite3_errstr(rc));
                goto fail;
        }
        sqlite3_busy_timeout(src->db, 5000);
        /* Touch the schema now: a file that is not a database fails here. */
        if (sqlite3_exec(src->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) !=
            SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: source.path %s: %s", src->where, conf->path,
                         sqlite3_errmsg(src->db));
                goto fail;
        }
        if (sqlite3_prepare_v2(src->db,
                               "SELECT key, type, CASE type WHEN 'object' THEN "
                               "json_extract(value, '$.blob') ELSE atom END FROM json_each(?1)",
                               -1, &src->st_each, NULL) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: source.path %s: SQLite without JSON: %s",
                         src->where, conf->path, sqlite3_errmsg(src->db));
                goto fail;
        }
        return src;
fail:
        exb_source_sqlite.close(src);
        return NULL;
}

static int sq_ack(exb_source_t *src, int64_t pos, char *errstr, size_t errstr_size);
static void rej_clear(exb_source_t *src);

static void sq_close(exb_source_t *src)
{
        if (!src)
                return;
        char err[512];
        if (src->nrej && sq_ack(src, 0, err, sizeof(err)))
                EXB_WARN("%s: %d rejected change(s) not written (they stay in the changelog and "
                         "are rejected again at the next start): %s",
                         src->where, src->nrej, err);
        rej_clear(src);
        free(src->rej);
        batch_clear(&src->log);
        batch_clear(&src->snap);
        free(src->log.rows);
        free(src->snap.rows);
        sqlite3_finalize(src->st_each);
        if (src->db)
                sqlite3_close(src->db);
        tables_free(src->tables, src->ntables);
        free(src->vals);
        free(src->arena);
        free(src->where);
        free(src->dept);
        free(src->path);
        free(src);
}

static const char *sq_id(exb_source_t *src)
{
        return src->db_id;
}

/* ------------------------------------------------------------------- bind */

/* Validates one configured table against its resource and fills t. */
static int bind_table(exb_source_t *src, const exb_source_table_t *cfg, sq_table_t *t, char *errstr,
                      size_t errstr_size)
{
        char ctx[300];
        snprintf(ctx, sizeof(ctx), "%s: source.table.%s = %s", src->where, cfg->name,
                 cfg->res->code);
        memset(t, 0, sizeof(*t));
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(src->db,
                                    "SELECT name, type FROM sqlite_master WHERE type IN "
                                    "('table','view') AND name = ?1 COLLATE NOCASE",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s", ctx, sqlite3_errmsg(src->db));
                return -1;
        }
        sqlite3_bind_text(st, 1, cfg->name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
                exb_errf(errstr, errstr_size, "%s: no table \"%s\" in %s", ctx, cfg->name,
                         src->path);
                sqlite3_finalize(st);
                return -1;
        }
        if (!strcmp((const char *)sqlite3_column_text(st, 1), "view")) {
                exb_errf(errstr, errstr_size, "%s: %s is a view; changes are captured from tables",
                         ctx, cfg->name);
                sqlite3_finalize(st);
                return -1;
        }
        t->name = col_dup(st, 0);
        sqlite3_finalize(st);
        if (!strncmp(t->name, "exb_", 4) || !strncmp(t->name, "sqlite_", 7)) {
                exb_errf(errstr, errstr_size, "%s: table %s belongs to exbus or SQLite", ctx,
                         t->name);
                goto fail;
        }

        /* The table's columns. */
        int ncolumns = 0;
        char **columns = NULL;
        if (sqlite3_prepare_v2(src->db, "SELECT name FROM pragma_table_xinfo(?1)", -1, &st, NULL) !=
            SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s", ctx, sqlite3_errmsg(src->db));
                goto fail;
        }
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
                columns = exb_realloc(columns, (size_t)(ncolumns + 1) * sizeof(*columns));
                columns[ncolumns++] = col_dup(st, 0);
        }
        sqlite3_finalize(st);

        const exb_schema_t *schema = cfg->schema;
        const exb_resource_t *res = cfg->res;
        t->res = res;
        t->schema = schema;
        t->cols = exb_calloc((size_t)schema->nfields + 1, sizeof(*t->cols));
        int missing_optional = 0;
        for (int f = 0; f < schema->nfields; f++) {
                const exb_field_t *fld = &schema->fields[f];
                int idx = exb_resource_item_idx(res, fld->name);
                const exb_item_t *it = idx >= 0 ? &res->items[idx] : NULL;
                int c;
                for (c = 0; c < ncolumns; c++)
                        if (columns[c] && !strcasecmp(columns[c], fld->name))
                                break;
                if (c == ncolumns) {
                        if (it && (it->is_key || it->required)) {
                                exb_errf(errstr, errstr_size,
                                         "%s: table %s has no column \"%s\" (%s item)", ctx,
                                         t->name, fld->name, it->is_key ? "key" : "required");
                                for (int i = 0; i < ncolumns; i++)
                                        free(columns[i]);
                                free(columns);
                                goto fail;
                        }
                        missing_optional++;
                        continue;
                }
                sq_col_t *col = &t->cols[t->ncols++];
                col->field = f;
                col->column = exb_strdup(columns[c]);
                col->key = fld->name;
                col->type = fld->type;
                col->is_key = it ? it->is_key : !fld->nullable;
        }
        for (int i = 0; i < ncolumns; i++)
                free(columns[i]);
        free(columns);
        if (missing_optional)
                EXB_INFO("%s: %d optional item(s) have no column in table %s and are published "
                         "as null",
                         ctx, missing_optional, t->name);
        return 0;
fail:
        table_clear(t);
        return -1;
}

static int sq_bind(exb_source_t *src, const exb_source_table_t *tables, int ntables, char *errstr,
                   size_t errstr_size)
{
        sq_table_t *t = exb_calloc((size_t)ntables + 1, sizeof(*t));
        for (int i = 0; i < ntables; i++) {
                if (bind_table(src, &tables[i], &t[i], errstr, errstr_size)) {
                        tables_free(t, i);
                        return -1;
                }
                for (int j = 0; j < i; j++) {
                        if (!strcmp(t[j].name, t[i].name)) {
                                exb_errf(errstr, errstr_size,
                                         "%s: source.table.%s and source.table.%s name the same "
                                         "table",
                                         src->where, tables[j].name, tables[i].name);
                                tables_free(t, i + 1);
                                return -1;
                        }
                }
        }
        tables_free(src->tables, src->ntables);
        src->tables = t;
        src->ntables = ntables;
        int maxf = 0;
        for (int i = 0; i < ntables; i++)
                if (t[i].schema->nfields > maxf)
                        maxf = t[i].schema->nfields;
        if (maxf > src->valcap) {
                src->vals = exb_realloc(src->vals, (size_t)maxf * sizeof(*src->vals));
                src->valcap = maxf;
        }
        batch_clear(&src->snap);
        src->snap_table = -1;
        return 0;
}

/* ---------------------------------------------------------------- triggers */

/* Appends one column's JSON value expression (see the header comment). */
static void json_value_expr(exb_buf_t *b, const char *prefix, const char *column)
{
        char *s = sqlite3_mprintf("CASE WHEN typeof(%s\"%w\")='blob' THEN "
                                  "json_object('blob',hex(%s\"%w\")) ELSE %s\"%w\" END",
                                  prefix, column, prefix, column, prefix, column);
        exb_buf_printf(b, "%s", s);
        sqlite3_free(s);
}

/* JSON object of the table's captured columns (keys_only: key columns),
 * values from prefix ("NEW.", "OLD." or ""). Chunks of SQ_CHUNK columns are
 * merged with json_patch(json_patch(c1, c2), c3)... */
static void json_row_expr(exb_buf_t *b, const sq_table_t *t, const char *prefix, int keys_only)
{
        exb_buf_t acc, chunk;
        exb_buf_init(&acc, 0);
        exb_buf_init(&chunk, 0);
        int inchunk = 0, nchunks = 0;
        for (int c = 0; c <= t->ncols; c++) {
                const sq_col_t *col = c < t->ncols ? &t->cols[c] : NULL;
                if (col && keys_only && !col->is_key)
                        continue;
                if (inchunk && (!col || inchunk == SQ_CHUNK)) {
                        exb_buf_printf(&chunk, ")");
                        if (nchunks++ == 0) {
                                exb_buf_append(&acc, chunk.p, chunk.len);
                        } else {
                                exb_buf_t tmp;
                                exb_buf_init(&tmp, 0);
                                exb_buf_printf(&tmp, "json_patch(");
                                exb_buf_append(&tmp, acc.p, acc.len);
                                exb_buf_printf(&tmp, ", ");
                                exb_buf_append(&tmp, chunk.p, chunk.len);
                                exb_buf_printf(&tmp, ")");
                                exb_buf_free(&acc);
                                acc = tmp;
                        }
                        exb_buf_reset(&chunk);
                        inchunk = 0;
                }
                if (!col)
                        break;
                exb_buf_printf(&chunk, inchunk ? ", " : "json_object(");
                char *k = sqlite3_mprintf("%Q, ", col->key);
                exb_buf_printf(&chunk, "%s", k);
                sqlite3_free(k);
                json_value_expr(&chunk, prefix, col->column);
                inchunk++;
        }
        if (nchunks == 0)
                exb_buf_printf(b, "json_object()");
        else
                exb_buf_append(b, acc.p, acc.len);
        exb_buf_free(&acc);
        exb_buf_free(&chunk);
}

/* A balanced OR/AND of per-column comparisons, so that a wide table does
 * not hit SQLite's expression depth limit. */
static void cmp_expr(exb_buf_t *b, const sq_table_t *t, const int *cols, int lo, int hi,
                     const char *cmp, const char *join)
{
        if (hi - lo == 1) {
                char *s = sqlite3_mprintf("(OLD.\"%w\" %s NEW.\"%w\" COLLATE BINARY)",
                                          t->cols[cols[lo]].column, cmp, t->cols[cols[lo]].column);
                exb_buf_printf(b, "%s", s);
                sqlite3_free(s);
                return;
        }
        int mid = lo + (hi - lo) / 2;
        exb_buf_printf(b, "(");
        cmp_expr(b, t, cols, lo, mid, cmp, join);
        exb_buf_printf(b, " %s ", join);
        cmp_expr(b, t, cols, mid, hi, cmp, join);
        exb_buf_printf(b, ")");
}

static int install_triggers(exb_source_t *src, const sq_table_t *t, char *errstr,
                            size_t errstr_size)
{
        exb_buf_t all, keys, sql, changed, same;
        exb_buf_init(&all, 0);
        exb_buf_init(&keys, 0);
        exb_buf_init(&sql, 0);
        exb_buf_init(&changed, 0);
        exb_buf_init(&same, 0);
        int *every = exb_calloc((size_t)t->ncols + 1, sizeof(int));
        int *keycols = exb_calloc((size_t)t->ncols + 1, sizeof(int));
        int nkeys = 0;
        for (int c = 0; c < t->ncols; c++) {
                every[c] = c;
                if (t->cols[c].is_key)
                        keycols[nkeys++] = c;
        }
        cmp_expr(&changed, t, every, 0, t->ncols, "IS NOT", "OR");
        cmp_expr(&same, t, keycols, 0, nkeys, "IS", "AND");
        json_row_expr(&all, t, "NEW.", 0);
        exb_buf_cstr(&all);
        json_row_expr(&keys, t, "OLD.", 1);
        exb_buf_cstr(&keys);
        exb_buf_cstr(&changed);
        exb_buf_cstr(&same);

        char *s = sqlite3_mprintf(
                "DROP TRIGGER IF EXISTS \"exb_%w_ins\";"
                "DROP TRIGGER IF EXISTS \"exb_%w_upd\";"
                "DROP TRIGGER IF EXISTS \"exb_%w_del\";"
                "CREATE TRIGGER \"exb_%w_ins\" AFTER INSERT ON \"%w\" BEGIN "
                "INSERT INTO exb_changelog(tbl, op, data, ts) VALUES(%Q, 'CREATE', %s, " SQ_TS ");"
                " END;"
                "CREATE TRIGGER \"exb_%w_upd\" AFTER UPDATE ON \"%w\" WHEN %s BEGIN "
                "INSERT INTO exb_changelog(tbl, op, data, ts) SELECT %Q, 'UPDATE', %s, " SQ_TS
                " WHERE %s;"
                "INSERT INTO exb_changelog(tbl, op, data, ts) SELECT %Q, 'DELETE', %s, " SQ_TS
                " WHERE NOT %s;"
                "INSERT INTO exb_changelog(tbl, op, data, ts) SELECT %Q, 'CREATE', %s, " SQ_TS
                " WHERE NOT %s;"
                " END;"
                "CREATE TRIGGER \"exb_%w_del\" AFTER DELETE ON \"%w\" BEGIN "
                "INSERT INTO exb_changelog(tbl, op, data, ts) VALUES(%Q, 'DELETE', %s, " SQ_TS ");"
                " END;",
                t->name, t->name, t->name,
                /* ins */ t->name, t->name, t->name, (char *)all.p,
                /* upd */ t->name, t->name, (char *)changed.p, t->name, (char *)all.p,
                (char *)same.p, t->name, (char *)keys.p, (char *)same.p, t->name, (char *)all.p,
                (char *)same.p,
                /* del */ t->name, t->name, t->name, (char *)keys.p);
        int rc = sq_exec(src, errstr, errstr_size, "%s", s);
        sqlite3_free(s);
        free(every);
        free(keycols);
        exb_buf_free(&all);
        exb_buf_free(&keys);
        exb_buf_free(&sql);
        exb_buf_free(&changed);
        exb_buf_free(&same);
        return rc;
}

static int sq_start_tx(exb_source_t *src, char *errstr, size_t errstr_size);

/* Installing the capture changes the schema: it needs the database to
 * itself for a moment, which a busy department application may not give
 * within the usual 5 s (SQLite's busy handler is not fair: a writer that
 * commits back to back can starve the agent). It waits up to 60 s here. */
static int sq_start(exb_source_t *src, char *errstr, size_t errstr_size)
{
        sqlite3_busy_timeout(src->db, 60000);
        int rc = sq_start_tx(src, errstr, errstr_size);
        sqlite3_busy_timeout(src->db, 5000);
        return rc;
}

static int sq_start_tx(exb_source_t *src, char *errstr, size_t errstr_size)
{
        if (sq_exec(src, errstr, errstr_size, "BEGIN IMMEDIATE"))
                return -1;
        if (sq_exec(src, errstr, errstr_size,
                    "CREATE TABLE IF NOT EXISTS exb_meta(k TEXT PRIMARY KEY, v TEXT);"
                    "CREATE TABLE IF NOT EXISTS exb_changelog(seq INTEGER PRIMARY KEY "
                    "AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, data TEXT NOT NULL,"
                    " ts INTEGER NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS exb_rejects(seq INTEGER, tbl TEXT, op TEXT,"
                    " data TEXT, reason TEXT, at TEXT, event_id TEXT PRIMARY KEY);"
                    "INSERT OR IGNORE INTO exb_meta VALUES('db_id', lower(hex(randomblob(8))));"))
                goto fail;
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(src->db, "SELECT v FROM exb_meta WHERE k='db_id'", -1, &st, NULL) !=
                    SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW) {
                exb_errf(errstr, errstr_size, "source.path %s: exb_meta: %s", src->path,
                         sqlite3_errmsg(src->db));
                sqlite3_finalize(st);
                goto fail;
        }
        snprintf(src->db_id, sizeof(src->db_id), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);

        /* Our triggers on tables that are no longer mapped. */
        char **stale = NULL;
        int nstale = 0;
        if (sqlite3_prepare_v2(src->db,
                               "SELECT name, tbl_name FROM sqlite_master WHERE type='trigger' AND"
                               " name GLOB 'exb_*' AND sql LIKE '%exb_changelog%'",
                               -1, &st, NULL) == SQLITE_OK) {
                while (sqlite3_step(st) == SQLITE_ROW) {
                        const char *tbl = (const char *)sqlite3_column_text(st, 1);
                        int mapped = 0;
                        for (int i = 0; i < src->ntables; i++)
                                if (!strcasecmp(tbl, src->tables[i].name))
                                        mapped = 1;
                        if (!mapped) {
                                stale = exb_realloc(stale, (size_t)(nstale + 1) * sizeof(*stale));
                                stale[nstale++] = col_dup(st, 0);
                        }
                }
        }
        sqlite3_finalize(st);
        int rc = 0;
        for (int i = 0; i < nstale; i++) {
                if (!rc) {
                        EXB_INFO("%s: dropping trigger %s (its table is no longer mapped)",
                                 src->where, stale[i]);
                        rc = sq_exec(src, errstr, errstr_size, "DROP TRIGGER IF EXISTS \"%w\"",
                                     stale[i]);
                }
                free(stale[i]);
        }
        free(stale);
        if (rc)
                goto fail;
        for (int i = 0; i < src->ntables; i++)
                if (install_triggers(src, &src->tables[i], errstr, errstr_size))
                        goto fail;
        if (sq_exec(src, errstr, errstr_size, "COMMIT"))
                goto fail;
        src->cursor = 0;
        batch_clear(&src->log);
        return 0;
fail:
        sqlite3_exec(src->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
}

/* ----------------------------------------------------------------- mapping */

typedef struct sq_val_s {
        int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB (hex), SQLITE_NULL */
        int64_t i;
        double d;
        const char *p; /* TEXT, or the hex digits of a BLOB */
        size_t len;
} sq_val_t;

static const char *sq_type_name(int type)
{
        switch (type) {
        case SQLITE_INTEGER:
                return "an INTEGER";
        case SQLITE_FLOAT:
                return "a REAL";
        case SQLITE_TEXT:
                return "TEXT";
        case SQLITE_BLOB:
                return "a BLOB";
        default:
                return "a JSON value";
        }
}

static const char *exb_type_desc(exb_type_t t)
{
        switch (t) {
        case EXB_T_STRING:
                return "C (text)";
        case EXB_T_NUMBER:
                return "N (number)";
        case EXB_T_INT:
                return "I (integer)";
        case EXB_T_DATE:
                return "D (date YYYY-MM-DD)";
        case EXB_T_TIMESTAMP:
                return "T (ISO-8601 text or epoch ms)";
        case EXB_T_BOOL:
                return "L (0 or 1)";
        case EXB_T_BYTES:
                return "B (BLOB)";
        }
        return "?";
}

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

static char *arena_put(exb_source_t *src, const void *p, size_t len)
{
        char *dst = src->arena + src->arena_len;
        memcpy(dst, p, len);
        src->arena_len += len;
        return dst;
}

/* Maps one value to its item type. Returns 0, or -1 with why. */
static int map_value(exb_source_t *src, const sq_col_t *col, const sq_val_t *v, exb_val_t *out,
                     char *why, size_t why_size)
{
        char ex[64];
        out->is_null = 0;
        if (v->type == SQLITE_NULL) {
                out->is_null = 1;
                return 0;
        }
        switch (col->type) {
        case EXB_T_STRING:
                if (v->type == SQLITE_TEXT) {
                        out->u.s = (exb_str_t){arena_put(src, v->p, v->len), v->len};
                        return 0;
                }
                if (v->type == SQLITE_INTEGER) {
                        char num[32];
                        int n = snprintf(num, sizeof(num), "%lld", (long long)v->i);
                        out->u.s = (exb_str_t){arena_put(src, num, (size_t)n), (size_t)n};
                        return 0;
                }
                break;
        case EXB_T_NUMBER:
                if (v->type == SQLITE_INTEGER) {
                        out->u.d = (double)v->i;
                        return 0;
                }
                if (v->type == SQLITE_FLOAT) {
                        out->u.d = v->d;
                        return 0;
                }
                break;
        case EXB_T_INT:
                if (v->type == SQLITE_INTEGER) {
                        out->u.i = v->i;
                        return 0;
                }
                if (v->type == SQLITE_FLOAT) {
                        if (v->d >= -9007199254740992.0 && v->d <= 9007199254740992.0 &&
                            v->d == (double)(int64_t)v->d) {
                                out->u.i = (int64_t)v->d;
                                return 0;
                        }
                        exb_errf(why, why_size, "%.17g is not an integer", v->d);
                        return -1;
                }
                break;
        case EXB_T_DATE:
                if (v->type == SQLITE_TEXT) {
                        if (!exb_date_parse(v->p, v->len, &out->u.i))
                                return 0;
                        excerpt(ex, sizeof(ex), v->p, v->len);
                        exb_errf(why, why_size, "\"%s\" is not a date (YYYY-MM-DD)", ex);
                        return -1;
                }
                break;
        case EXB_T_TIMESTAMP:
                if (v->type == SQLITE_TEXT) {
                        if (!exb_ts_parse(v->p, v->len, &out->u.i))
                                return 0;
                        excerpt(ex, sizeof(ex), v->p, v->len);
                        exb_errf(why, why_size,
                                 "\"%s\" is not an ISO-8601 timestamp (2026-01-15T08:30:00Z)", ex);
                        return -1;
                }
                if (v->type == SQLITE_INTEGER) {
                        out->u.i = v->i;
                        return 0;
                }
                break;
        case EXB_T_BOOL:
                if (v->type == SQLITE_INTEGER) {
                        if (v->i == 0 || v->i == 1) {
                                out->u.i = v->i;
                                return 0;
                        }
                        exb_errf(why, why_size, "%lld is not a boolean (0 or 1)", (long long)v->i);
                        return -1;
                }
                break;
        case EXB_T_BYTES:
                if (v->type == SQLITE_BLOB) {
                        if (v->len % 2) {
                                exb_errf(why, why_size, "malformed BLOB in the changelog");
                                return -1;
                        }
                        char *dst = src->arena + src->arena_len;
                        for (size_t i = 0; i < v->len; i += 2) {
                                int hi = hexval((unsigned char)v->p[i]);
                                int lo = hexval((unsigned char)v->p[i + 1]);
                                if (hi < 0 || lo < 0) {
                                        exb_errf(why, why_size, "malformed BLOB in the changelog");
                                        return -1;
                                }
                                dst[i / 2] = (char)(hi << 4 | lo);
                        }
                        src->arena_len += v->len / 2;
                        out->u.s = (exb_str_t){dst, v->len / 2};
                        return 0;
                }
                break;
        }
        if (v->type == SQLITE_TEXT) {
                excerpt(ex, sizeof(ex), v->p, v->len);
                exb_errf(why, why_size, "TEXT \"%s\" does not fit type %s", ex,
                         exb_type_desc(col->type));
        } else if (v->type == SQLITE_INTEGER) {
                exb_errf(why, why_size, "INTEGER %lld does not fit type %s", (long long)v->i,
                         exb_type_desc(col->type));
        } else if (v->type == SQLITE_FLOAT) {
                exb_errf(why, why_size, "REAL %.17g does not fit type %s", v->d,
                         exb_type_desc(col->type));
        } else {
                exb_errf(why, why_size, "%s does not fit type %s", sq_type_name(v->type),
                         exb_type_desc(col->type));
        }
        return -1;
}

/* Fills the current change's values from a data object. Returns 0, or -1
 * with src->error set (the change is a rejection). */
static int map_row(exb_source_t *src, const sq_table_t *t, const char *data, size_t len)
{
        int nvals = t->schema->nfields;
        for (int f = 0; f < nvals; f++)
                src->vals[f] = (exb_val_t){.is_null = 1};
        if (src->arena_cap < len + 64) {
                free(src->arena);
                src->arena_cap = len + 64 > 4096 ? len + 64 : 4096;
                src->arena = exb_calloc(1, src->arena_cap);
        }
        src->arena_len = 0;
        sqlite3_stmt *st = src->st_each;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, data, (int)len, SQLITE_STATIC);
        int k = 0, rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *key = (const char *)sqlite3_column_text(st, 0);
                const char *jtype = (const char *)sqlite3_column_text(st, 1);
                const sq_col_t *col = NULL;
                if (key && k < t->ncols && !strcmp(t->cols[k].key, key))
                        col = &t->cols[k];
                for (int c = 0; !col && key && c < t->ncols; c++)
                        if (!strcmp(t->cols[c].key, key))
                                col = &t->cols[c];
                k = col ? (int)(col - t->cols) + 1 : k + 1;
                if (!col)
                        continue; /* a column the resource no longer has */
                sq_val_t v = {0};
                if (!strcmp(jtype, "null")) {
                        v.type = SQLITE_NULL;
                } else if (!strcmp(jtype, "integer") || !strcmp(jtype, "true") ||
                           !strcmp(jtype, "false")) {
                        v.type = SQLITE_INTEGER;
                        v.i = sqlite3_column_int64(st, 2);
                } else if (!strcmp(jtype, "real")) {
                        v.type = SQLITE_FLOAT;
                        v.d = sqlite3_column_double(st, 2);
                } else if (!strcmp(jtype, "text")) {
                        v.type = SQLITE_TEXT;
                        v.p = (const char *)sqlite3_column_text(st, 2);
                        v.len = (size_t)sqlite3_column_bytes(st, 2);
                } else if (!strcmp(jtype, "object") && sqlite3_column_type(st, 2) == SQLITE_TEXT) {
                        v.type = SQLITE_BLOB;
                        v.p = (const char *)sqlite3_column_text(st, 2);
                        v.len = (size_t)sqlite3_column_bytes(st, 2);
                } else {
                        v.type = -1;
                }
                if (v.len > src->arena_cap - src->arena_len) { /* cannot happen: len bounds it */
                        snprintf(src->error, sizeof(src->error), "item \"%s\": value too large",
                                 col->key);
                        sqlite3_reset(st);
                        return -1;
                }
                char why[300];
                if (map_value(src, col, &v, &src->vals[col->field], why, sizeof(why))) {
                        snprintf(src->error, sizeof(src->error), "item \"%s\": %s", col->key, why);
                        sqlite3_reset(st);
                        return -1;
                }
        }
        if (rc != SQLITE_DONE) {
                snprintf(src->error, sizeof(src->error),
                         "changelog data is not a JSON object (%s; an infinite REAL?)",
                         sqlite3_errmsg(src->db));
                sqlite3_reset(st);
                return -1;
        }
        sqlite3_reset(st);
        return 0;
}

static void change_fill(exb_source_t *src, const sq_row_t *row, int table, exb_op_t op,
                        exb_change_t *chg)
{
        memset(chg, 0, sizeof(*chg));
        src->error[0] = '\0';
        chg->pos = row->pos;
        chg->table = table;
        chg->op = op;
        chg->ts_ms = row->ts;
        chg->event_id = src->event_id;
        chg->raw = row->data;
        if (table < 0) {
                snprintf(src->error, sizeof(src->error),
                         "table %s is not mapped (no source.table.%s)", row->tbl ? row->tbl : "?",
                         row->tbl ? row->tbl : "?");
        } else {
                const sq_table_t *t = &src->tables[table];
                chg->nvals = t->schema->nfields;
                chg->vals = src->vals;
                if (!row->data)
                        snprintf(src->error, sizeof(src->error),
                                 "changelog data of %lld bytes is larger than %d",
                                 (long long)row->data_len, SQ_MAX_DATA);
                else
                        map_row(src, t, row->data, (size_t)row->data_len);
        }
        if (src->error[0])
                chg->error = src->error;
}

/* ----------------------------------------------------------------- changes */

static int log_fill(exb_source_t *src, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *st;
        batch_clear(&src->log);
        if (!src->log.rows)
                src->log.rows = exb_calloc((size_t)src->batch_size, sizeof(sq_row_t));
        int rc = sqlite3_prepare_v2(
                src->db,
                "SELECT seq, tbl, op, CASE WHEN length(CAST(data AS BLOB)) > ?3 THEN NULL ELSE data"
                " END, length(CAST(data AS BLOB)), ts FROM exb_changelog WHERE seq > ?1 ORDER BY "
                "seq"
                " LIMIT ?2",
                -1, &st, NULL);
        if (rc != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "source.path %s: reading exb_changelog: %s",
                         src->path, sqlite3_errmsg(src->db));
                return -1;
        }
        sqlite3_bind_int64(st, 1, src->cursor);
        sqlite3_bind_int(st, 2, src->batch_size);
        sqlite3_bind_int(st, 3, SQ_MAX_DATA);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && src->log.n < src->batch_size) {
                sq_row_t *r = &src->log.rows[src->log.n++];
                r->pos = sqlite3_column_int64(st, 0);
                r->tbl = col_dup(st, 1);
                r->op = col_dup(st, 2);
                r->data = col_dup(st, 3);
                r->data_len = sqlite3_column_int64(st, 4);
                r->ts = sqlite3_column_int64(st, 5);
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                exb_errf(errstr, errstr_size, "source.path %s: reading exb_changelog: %s",
                         src->path, sqlite3_errmsg(src->db));
                sqlite3_finalize(st);
                batch_clear(&src->log);
                return -1;
        }
        sqlite3_finalize(st);
        return src->log.n;
}

static int sq_next(exb_source_t *src, exb_change_t *chg, char *errstr, size_t errstr_size)
{
        if (src->log.i >= src->log.n) {
                int n = log_fill(src, errstr, errstr_size);
                if (n <= 0)
                        return n;
        }
        const sq_row_t *row = &src->log.rows[src->log.i++];
        src->cursor = row->pos;
        int table = -1;
        for (int i = 0; row->tbl && i < src->ntables; i++)
                if (!strcasecmp(row->tbl, src->tables[i].name))
                        table = i;
        int op = row->op ? exb_op_parse(row->op) : -1;
        snprintf(src->event_id, sizeof(src->event_id), "%s-%s-%lld", src->dept, src->db_id,
                 (long long)row->pos);
        change_fill(src, row, table, op < 0 || op == EXB_OP_SNAPSHOT ? EXB_OP_UPDATE : op, chg);
        if (!chg->error && (op < 0 || op == EXB_OP_SNAPSHOT)) {
                snprintf(src->error, sizeof(src->error), "unknown op \"%s\" in the changelog",
                         row->op ? row->op : "");
                chg->error = src->error;
        }
        return 1;
}

static void sq_rewind(exb_source_t *src, int64_t pos)
{
        src->cursor = pos > 0 ? pos : 0;
        batch_clear(&src->log);
}

#define SQ_NOW_ISO "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

static void rej_clear(exb_source_t *src)
{
        for (int i = 0; i < src->nrej; i++) {
                free(src->rej[i].event_id);
                free(src->rej[i].reason);
                free(src->rej[i].tbl);
                free(src->rej[i].data);
        }
        src->nrej = 0;
}

/* Writes the pending rejections, inside the caller's transaction. */
static int rej_write(exb_source_t *src, char *errstr, size_t errstr_size)
{
        sqlite3_stmt *mv = NULL, *del = NULL, *snap = NULL;
        int rc = SQLITE_OK;
        if (!src->nrej)
                return 0;
        if ((rc = sqlite3_prepare_v2(
                     src->db,
                     "INSERT OR REPLACE INTO exb_rejects(seq, tbl, op, data, reason,"
                     " at, event_id) SELECT seq, tbl, op, data, ?2, " SQ_NOW_ISO
                     ", ?3 FROM exb_changelog WHERE seq = ?1",
                     -1, &mv, NULL)) ||
            (rc = sqlite3_prepare_v2(src->db, "DELETE FROM exb_changelog WHERE seq = ?1", -1, &del,
                                     NULL)) ||
            (rc = sqlite3_prepare_v2(
                     src->db,
                     "INSERT OR REPLACE INTO exb_rejects(seq, tbl, op, data, reason,"
                     " at, event_id) VALUES(NULL, ?1, 'SNAPSHOT', ?2, ?3, " SQ_NOW_ISO ", ?4)",
                     -1, &snap, NULL)))
                goto done;
        for (int i = 0; i < src->nrej && rc == SQLITE_OK; i++) {
                const sq_rej_t *r = &src->rej[i];
                if (r->seq >= 0) {
                        sqlite3_bind_int64(mv, 1, r->seq);
                        sqlite3_bind_text(mv, 2, r->reason, -1, SQLITE_STATIC);
                        sqlite3_bind_text(mv, 3, r->event_id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(del, 1, r->seq);
                        if ((rc = sqlite3_step(mv)) == SQLITE_DONE)
                                rc = sqlite3_step(del);
                        sqlite3_reset(mv);
                        sqlite3_reset(del);
                } else {
                        sqlite3_bind_text(snap, 1, r->tbl, -1, SQLITE_STATIC);
                        sqlite3_bind_text(snap, 2, r->data, -1, SQLITE_STATIC);
                        sqlite3_bind_text(snap, 3, r->reason, -1, SQLITE_STATIC);
                        sqlite3_bind_text(snap, 4, r->event_id, -1, SQLITE_STATIC);
                        rc = sqlite3_step(snap);
                        sqlite3_reset(snap);
                }
                if (rc == SQLITE_DONE)
                        rc = SQLITE_OK;
        }
done:
        if (rc != SQLITE_OK)
                exb_errf(errstr, errstr_size, "%s: source.path %s: writing exb_rejects: %s",
                         src->where, src->path, sqlite3_errmsg(src->db));
        sqlite3_finalize(mv);
        sqlite3_finalize(del);
        sqlite3_finalize(snap);
        return rc == SQLITE_OK ? 0 : -1;
}

/* Acknowledges up to pos (0: nothing) and writes the pending rejections,
 * in one transaction. */
static int sq_ack(exb_source_t *src, int64_t pos, char *errstr, size_t errstr_size)
{
        if (!src->nrej)
                return pos > 0 ? sq_exec(src, errstr, errstr_size,
                                         "DELETE FROM exb_changelog WHERE seq <= %lld",
                                         (long long)pos)
                               : 0;
        if (sq_exec(src, errstr, errstr_size, "BEGIN IMMEDIATE"))
                return -1;
        if (rej_write(src, errstr, errstr_size) ||
            (pos > 0 && sq_exec(src, errstr, errstr_size,
                                "DELETE FROM exb_changelog WHERE seq <= %lld", (long long)pos)) ||
            sq_exec(src, errstr, errstr_size, "COMMIT")) {
                sqlite3_exec(src->db, "ROLLBACK", NULL, NULL, NULL);
                return -1;
        }
        rej_clear(src);
        return 0;
}

/* A rejection is kept in memory and written by the next ack(), in the same
 * transaction as the acknowledgement (one transaction for many rejections:
 * a database where every row is bad is not written to row by row). If the
 * process dies first, the change is still in the changelog and is rejected
 * again; for a snapshot row, the publisher saves its progress only after an
 * ack. */
static int sq_reject(exb_source_t *src, const exb_change_t *chg, const char *reason, char *errstr,
                     size_t errstr_size)
{
        if (src->nrej == src->rejcap) {
                src->rejcap = src->rejcap ? src->rejcap * 2 : 64;
                src->rej = exb_realloc(src->rej, (size_t)src->rejcap * sizeof(*src->rej));
        }
        sq_rej_t *r = &src->rej[src->nrej++];
        memset(r, 0, sizeof(*r));
        r->seq = chg->op == EXB_OP_SNAPSHOT ? -1 : chg->pos;
        r->event_id = exb_strdup(chg->event_id);
        r->reason = exb_strdup(reason);
        if (chg->op == EXB_OP_SNAPSHOT) {
                r->tbl = exb_strdup(chg->table >= 0 ? src->tables[chg->table].name : "");
                r->data = exb_strdup(chg->raw ? chg->raw : "");
        }
        if (src->nrej >= 4 * src->batch_size)
                return sq_ack(src, 0, errstr, errstr_size);
        return 0;
}

/* ---------------------------------------------------------------- snapshot */

static int snap_fill(exb_source_t *src, int table, int64_t after, char *errstr, size_t errstr_size)
{
        const sq_table_t *t = &src->tables[table];
        batch_clear(&src->snap);
        if (!src->snap.rows)
                src->snap.rows = exb_calloc((size_t)src->batch_size, sizeof(sq_row_t));
        exb_buf_t sql;
        exb_buf_init(&sql, 0);
        exb_buf_printf(&sql, "SELECT _rowid_, ");
        json_row_expr(&sql, t, "", 0);
        char *from = sqlite3_mprintf(" FROM \"%w\" WHERE _rowid_ > ?1 ORDER BY _rowid_ LIMIT ?2",
                                     t->name);
        exb_buf_printf(&sql, "%s", from);
        sqlite3_free(from);
        exb_buf_cstr(&sql);
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(src->db, (const char *)sql.p, -1, &st, NULL);
        exb_buf_free(&sql);
        if (rc != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: snapshot of table %s: %s%s", src->where, t->name,
                         sqlite3_errmsg(src->db),
                         strstr(sqlite3_errmsg(src->db), "_rowid_")
                                 ? " (a WITHOUT ROWID table cannot be snapshotted)"
                                 : "");
                return -1;
        }
        sqlite3_bind_int64(st, 1, after);
        sqlite3_bind_int(st, 2, src->batch_size);
        int64_t now = exb_now_ms();
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && src->snap.n < src->batch_size) {
                sq_row_t *r = &src->snap.rows[src->snap.n++];
                r->pos = sqlite3_column_int64(st, 0);
                r->data_len = sqlite3_column_bytes(st, 1);
                r->data = r->data_len <= SQ_MAX_DATA ? col_dup(st, 1) : NULL;
                r->ts = now;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                exb_errf(errstr, errstr_size, "%s: snapshot of table %s: %s", src->where, t->name,
                         sqlite3_errmsg(src->db));
                sqlite3_finalize(st);
                batch_clear(&src->snap);
                return -1;
        }
        sqlite3_finalize(st);
        return src->snap.n;
}

static int sq_snapshot_next(exb_source_t *src, int table, int64_t after, int run, exb_change_t *chg,
                            char *errstr, size_t errstr_size)
{
        if (table < 0 || table >= src->ntables) {
                exb_errf(errstr, errstr_size, "snapshot: no table %d", table);
                return -1;
        }
        if (src->snap_table != table || src->snap_run != run || src->snap_last != after ||
            src->snap.i >= src->snap.n) {
                int n = snap_fill(src, table, after, errstr, errstr_size);
                src->snap_table = n > 0 ? table : -1;
                src->snap_run = run;
                if (n <= 0)
                        return n;
        }
        const sq_row_t *row = &src->snap.rows[src->snap.i++];
        src->snap_last = row->pos;
        snprintf(src->event_id, sizeof(src->event_id), "%s-%s-snap%d-%lld", src->dept, src->db_id,
                 run, (long long)row->pos);
        change_fill(src, row, table, EXB_OP_SNAPSHOT, chg);
        return 1;
}

static int sq_snapshot_count(exb_source_t *src, int table, int64_t after, int64_t *total,
                             int64_t *done)
{
        *total = *done = 0;
        if (table < 0 || table >= src->ntables)
                return -1;
        char *sql = sqlite3_mprintf("SELECT count(*), total(_rowid_ <= %lld) FROM \"%w\"",
                                    (long long)after, src->tables[table].name);
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(src->db, sql, -1, &st, NULL);
        sqlite3_free(sql);
        if (rc != SQLITE_OK)
                return -1;
        if (sqlite3_step(st) == SQLITE_ROW) {
                *total = sqlite3_column_int64(st, 0);
                *done = (int64_t)sqlite3_column_double(st, 1);
        }
        sqlite3_finalize(st);
        return 0;
}

const exb_source_plugin_t exb_source_sqlite = {
        .name = "sqlite",
        .description = "a SQLite database: change capture by triggers into exb_changelog",
        .open = sq_open,
        .bind = sq_bind,
        .start = sq_start,
        .next = sq_next,
        .rewind = sq_rewind,
        .ack = sq_ack,
        .reject = sq_reject,
        .snapshot_next = sq_snapshot_next,
        .snapshot_count = sq_snapshot_count,
        .id = sq_id,
        .close = sq_close,
};
