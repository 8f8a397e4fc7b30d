/*
 * test_receiver.c — the consumer agent (consumers/exb_receiver.c) and its
 * SQLite sink (consumers/exb_sink_sqlite.c).
 *
 * Without a broker (the sink through its plugin interface):
 *  - tables named by the resource code, quoted; columns and PRIMARY KEY
 *    from the delivery schema; every item type's column value;
 *  - upsert / delete by key, composite keys, records of an older schema;
 *  - offsets written in the batch's transaction; records below the stored
 *    offset skipped; a stored offset beyond the partition's end forgotten;
 *    offsets of another cluster dropped;
 *  - a locked database: the batch is refused with EXB_ERR_RETRY and nothing
 *    (rows, offsets, dead letters) is left behind; the retry applies it;
 *  - ALTER TABLE when a schema gains items;
 *  - dead letters: given by the receiver, found by the sink (date out of
 *    range, no key items, a table with another primary key);
 *  - exb_events: a replay of the same position is skipped, a redelivery at
 *    another position is applied and moves the event;
 *  - configuration errors (fixtures in data/consumer_*.conf).
 *
 * With the embedded broker in this process:
 *  - end to end: a delivery schema published on exb.control, records
 *    produced to exb.deliver.GJJ.<code>, rows asserted; a malformed record
 *    and an unknown schema id land in exb_dead_letters and the stream goes
 *    on; a schema version with one more item adds a column; a topic created
 *    later (a new subscription) is picked up without restart; a locked
 *    database pauses consumption and nothing is lost or doubled when it
 *    comes back; a restart resumes from the sink's offsets;
 *  - kill -9: this binary re-executes itself as a receiver child, is killed
 *    in the middle of 6,000 changes and restarted; a trigger in the sink
 *    database logs every applied upsert, so a lost or repeated change is
 *    seen directly.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "exb_codec.h"
#include "exb_conf.h"
#include "exb_kafka.h"
#include "exb_receiver.h"
#include "exb_schema.h"
#include "exb_sink.h"

#define RES "370600-GA-0001"

/* ---------------------------------------------------------------- helpers */

static char tmp_root[256];

static void tmp_init(void)
{
        if (tmp_root[0])
                return;
        snprintf(tmp_root, sizeof(tmp_root), "/tmp/exb-test-receiver-XXXXXX");
        if (!mkdtemp(tmp_root))
                fail_msg("mkdtemp: %s", strerror(errno));
}

/* A fresh directory under the test root. */
static void tmp_dir(char *out, size_t size, const char *name)
{
        tmp_init();
        snprintf(out, size, "%s/%s", tmp_root, name);
        mkdir(out, 0700);
}

static exb_schema_t *mk_schema(const char *name, const exb_field_t *f, int n, int32_t id)
{
        char err[512] = "";
        exb_schema_t *s = exb_schema_new(name, f, n, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        s->id = id;
        return s;
}

#define VNULL   ((exb_val_t){.is_null = 1})
#define VS(lit) ((exb_val_t){.u.s = {(lit), sizeof(lit) - 1}})
#define VI(x)   ((exb_val_t){.u.i = (x)})
#define VD(x)   ((exb_val_t){.u.d = (x)})

/* The population resource as delivered: every item type. */
static const exb_field_t pop_fields[] = {
        {"id_number", "公民身份号码", EXB_T_STRING, 0},
        {"name", "姓名", EXB_T_STRING, 1},
        {"birth_date", NULL, EXB_T_DATE, 1},
        {"score", NULL, EXB_T_NUMBER, 1},
        {"children", NULL, EXB_T_INT, 1},
        {"updated_at", NULL, EXB_T_TIMESTAMP, 1},
        {"active", NULL, EXB_T_BOOL, 1},
        {"photo", NULL, EXB_T_BYTES, 1},
};
#define POP_N ((int)EXB_ARRAY_CNT(pop_fields))

/* Sink under test plus the batch being built. */
typedef struct {
        void *sink;
        exb_sink_sqlite_conf_t conf;
        char path[600];
        sqlite3 *db; /* a second connection for assertions */
        int n;
        exb_sink_rec_t recs[64];
        exb_record_t records[64];
        exb_val_t vals[64][16];
        int npos;
        exb_sink_pos_t pos[8];
} sk_t;

static void sk_open_env(sk_t *t, const char *name, const char *cluster)
{
        char dir[512], err[512] = "";
        tmp_dir(dir, sizeof(dir), name);
        memset(t, 0, sizeof(*t));
        exb_conf_defaults(exb_sink_sqlite.props, &t->conf);
        snprintf(t->path, sizeof(t->path), "%s/sink.db", dir);
        t->conf.path = exb_strdup(t->path);
        exb_sink_env_t env = {"GJJ", dir, cluster};
        t->sink = exb_sink_sqlite.open(&t->conf, &env, err, sizeof(err));
        if (!t->sink)
                fail_msg("open: %s", err);
        assert_int_equal(sqlite3_open(t->path, &t->db), SQLITE_OK);
        sqlite3_busy_timeout(t->db, 2000);
}

static void sk_open(sk_t *t, const char *name)
{
        sk_open_env(t, name, "cluster-A");
}

static void sk_close(sk_t *t)
{
        exb_sink_sqlite.close(t->sink);
        exb_conf_free(exb_sink_sqlite.props, &t->conf);
        sqlite3_close(t->db);
}

/* Adds a decoded record at topic/partition/offset. vals has schema->nfields values. */
static void sk_add(sk_t *t, const char *topic, int32_t part, int64_t off, const exb_schema_t *s,
                   exb_op_t op, const char *event_id, const exb_val_t *vals)
{
        int i = t->n++;
        memcpy(t->vals[i], vals, sizeof(exb_val_t) * (size_t)s->nfields);
        t->records[i] = (exb_record_t){.op = op,
                                       .event_id = exb_str(event_id),
                                       .source = EXB_STR("GA"),
                                       .ts_ms = 1768465800000,
                                       .nvals = s->nfields,
                                       .vals = t->vals[i]};
        const char *code = strrchr(topic, '.') + 1;
        t->recs[i] = (exb_sink_rec_t){.topic = topic,
                                      .partition = part,
                                      .offset = off,
                                      .key = "k",
                                      .key_len = 1,
                                      .value = "\0\0\0\0\1",
                                      .len = 5,
                                      .resource = code,
                                      .schema = s,
                                      .rec = &t->records[i]};
}

static void sk_add_dead(sk_t *t, const char *topic, int32_t part, int64_t off, const char *key,
                        const void *value, size_t len, const char *why)
{
        int i = t->n++;
        t->recs[i] = (exb_sink_rec_t){.topic = topic,
                                      .partition = part,
                                      .offset = off,
                                      .key = key,
                                      .key_len = key ? strlen(key) : 0,
                                      .value = value,
                                      .len = len,
                                      .error = why};
}

/* Writes the batch (positions derived from the records). */
static exb_err_t sk_write(sk_t *t, exb_sink_result_t *res)
{
        t->npos = 0;
        for (int i = 0; i < t->n; i++) {
                int k;
                for (k = 0; k < t->npos; k++)
                        if (t->pos[k].partition == t->recs[i].partition &&
                            !strcmp(t->pos[k].topic, t->recs[i].topic))
                                break;
                if (k == t->npos)
                        t->pos[t->npos++] =
                                (exb_sink_pos_t){t->recs[i].topic, t->recs[i].partition, 0};
                t->pos[k].next_offset = t->recs[i].offset + 1;
        }
        exb_sink_batch_t b = {t->n, t->recs, t->npos, t->pos};
        char err[512] = "";
        memset(res, 0, sizeof(*res));
        exb_err_t e = exb_sink_sqlite.write(t->sink, &b, res, err, sizeof(err));
        if (e != EXB_OK)
                print_message("write: %s\n", err);
        t->n = 0;
        return e;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
        sqlite3_stmt *st;
        int64_t v = -999;
        /* A table or column the sink has not created yet reads as -999
         * ("not yet" for poll_until; a failed assertion everywhere else). */
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return v;
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* First column of the first row as text (static buffer), "" for none, "NULL" for null. */
static const char *q_text(sqlite3 *db, const char *sql)
{
        static char buf[1024];
        sqlite3_stmt *st;
        buf[0] = '\0';
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        if (sqlite3_step(st) == SQLITE_ROW)
                snprintf(buf, sizeof(buf), "%s",
                         sqlite3_column_type(st, 0) == SQLITE_NULL
                                 ? "NULL"
                                 : (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return buf;
}

#define T1 "exb.deliver.GJJ." RES

/* ------------------------------------------------------------ sink tests */

static void test_sink_create_types(void **state)
{
        (void)state;
        sk_t t;
        sk_open(&t, "types");
        exb_schema_t *s = mk_schema("R370600_GA_0001_S_000001", pop_fields, POP_N, 7);
        exb_val_t v1[] = {
                VS("370602199001011234"), VS("张三"), VI(7319) /* 1990-01-15 */, VD(98.5), VI(2),
                VI(1768465800123),        VI(1),      VS("\x00\x01\xff")};
        exb_val_t v2[] = {
                VS("370602199202021235"), VS(""), VNULL, VNULL, VNULL, VNULL, VI(0), VS("")};
        v1[7].u.s.len = 3;
        v2[7].u.s.len = 0;
        sk_add(&t, T1, 0, 0, s, EXB_OP_CREATE, "e1", v1);
        sk_add(&t, T1, 0, 1, s, EXB_OP_SNAPSHOT, "e2", v2);
        exb_sink_result_t res;
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.upserts, 2);

        /* the table is named by the resource code, quoted; PK = the key item */
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-GA-0001\""), 2);
        assert_int_equal(q_int(t.db, "SELECT pk FROM pragma_table_info('370600-GA-0001') "
                                     "WHERE name='id_number'"),
                         1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM pragma_table_info('370600-GA-0001') "
                                     "WHERE pk > 0"),
                         1);
        assert_string_equal(q_text(t.db, "SELECT type FROM pragma_table_info('370600-GA-0001') "
                                         "WHERE name='score'"),
                            "REAL");
        /* every item type */
        static const struct {
                const char *col, *type, *value;
        } want[] = {
                {"name", "text", "张三"},
                {"birth_date", "text", "1990-01-15"},
                {"score", "real", "98.5"},
                {"children", "integer", "2"},
                {"updated_at", "text", "2026-01-15T08:30:00.123Z"},
                {"active", "integer", "1"},
                {"photo", "blob", NULL},
        };
        char sql[256];
        for (size_t i = 0; i < EXB_ARRAY_CNT(want); i++) {
                snprintf(sql, sizeof(sql),
                         "SELECT typeof(\"%s\") FROM \"" RES
                         "\" WHERE id_number='370602199001011234'",
                         want[i].col);
                assert_string_equal(q_text(t.db, sql), want[i].type);
                if (!want[i].value)
                        continue;
                snprintf(sql, sizeof(sql),
                         "SELECT \"%s\" FROM \"" RES "\" WHERE id_number='370602199001011234'",
                         want[i].col);
                assert_string_equal(q_text(t.db, sql), want[i].value);
        }
        assert_string_equal(q_text(t.db, "SELECT hex(photo) FROM \"" RES "\" WHERE "
                                         "id_number='370602199001011234'"),
                            "0001FF");
        /* empty string and empty bytes are not NULL; false is 0 */
        assert_string_equal(q_text(t.db, "SELECT typeof(name) || typeof(photo) || active || "
                                         "typeof(birth_date) FROM \"" RES
                                         "\" WHERE id_number='370602199202021235'"),
                            "textblob0null");
        exb_schema_destroy(s);
        sk_close(&t);
}

static const exb_field_t comp_fields[] = {
        {"uscc", NULL, EXB_T_STRING, 0},
        {"year", NULL, EXB_T_INT, 0},
        {"amount", NULL, EXB_T_NUMBER, 1},
};

static void test_sink_upsert_delete(void **state)
{
        (void)state;
        sk_t t;
        sk_open(&t, "upsert");
        exb_schema_t *s = mk_schema("R370600_SC_0003_S_000002", comp_fields, 3, 9);
        const char *topic = "exb.deliver.GJJ.370600-SC-0003";
        exb_val_t a[] = {VS("91370600MA3C0A1B2X"), VI(2025), VD(1.5)};
        exb_val_t b[] = {VS("91370600MA3C0A1B2X"), VI(2026), VD(2.5)};
        exb_val_t a2[] = {VS("91370600MA3C0A1B2X"), VI(2025), VD(3.5)};
        exb_val_t bdel[] = {VS("91370600MA3C0A1B2X"), VI(2026), VNULL};
        exb_val_t gone[] = {VS("nobody"), VI(1), VNULL};
        sk_add(&t, topic, 0, 0, s, EXB_OP_CREATE, "c1", a);
        sk_add(&t, topic, 0, 1, s, EXB_OP_CREATE, "c2", b);
        sk_add(&t, topic, 0, 2, s, EXB_OP_UPDATE, "c3", a2);
        exb_sink_result_t res;
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.upserts, 3);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\""), 2);
        assert_string_equal(q_text(t.db, "SELECT amount FROM \"370600-SC-0003\" WHERE year=2025"),
                            "3.5");
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM pragma_table_info('370600-SC-0003') "
                                     "WHERE pk > 0"),
                         2);
        sk_add(&t, topic, 0, 3, s, EXB_OP_DELETE, "c4", bdel);
        sk_add(&t, topic, 0, 4, s, EXB_OP_DELETE, "c5", gone);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.deletes, 2);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\""), 1);
        assert_int_equal(q_int(t.db, "SELECT year FROM \"370600-SC-0003\""), 2025);
        /* an UPDATE of a row that is not there inserts it */
        sk_add(&t, topic, 0, 5, s, EXB_OP_UPDATE, "c6", b);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\""), 2);
        exb_schema_destroy(s);
        sk_close(&t);
}

static void test_sink_offsets(void **state)
{
        (void)state;
        sk_t t;
        sk_open(&t, "offsets");
        exb_schema_t *s = mk_schema("R370600_SC_0003_S_000002", comp_fields, 3, 9);
        const char *topic = "exb.deliver.GJJ.370600-SC-0003";
        exb_val_t v[] = {VS("X"), VI(1), VD(1)};
        assert_int_equal(exb_sink_sqlite.offset(t.sink, topic, 0, -1), EXB_OFFSET_BEGINNING);
        sk_add(&t, topic, 0, 10, s, EXB_OP_CREATE, "o1", v);
        sk_add(&t, topic, 1, 3, s, EXB_OP_CREATE, "o2", v);
        sk_add(&t, topic, 0, 11, s, EXB_OP_CREATE, "o3", v);
        exb_sink_result_t res;
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE partition=0"), 12);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE partition=1"), 4);
        assert_int_equal(exb_sink_sqlite.offset(t.sink, topic, 0, 100), 12);
        assert_int_equal(exb_sink_sqlite.offset(t.sink, topic, 1, -1), 4);

        /* offsets below the stored ones are skipped; the offset never goes back */
        exb_val_t v2[] = {VS("Y"), VI(1), VD(1)};
        sk_add(&t, topic, 0, 11, s, EXB_OP_CREATE, "o3b", v2);
        sk_add(&t, topic, 0, 12, s, EXB_OP_CREATE, "o4", v);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.replays, 1);
        assert_int_equal(res.upserts, 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\" WHERE uscc='Y'"), 0);
        sk_add(&t, topic, 0, 5, s, EXB_OP_CREATE, "old", v2);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.replays, 1);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE partition=0"), 13);

        /* a stored offset beyond the partition's end: the topic was recreated */
        assert_int_equal(exb_sink_sqlite.offset(t.sink, topic, 0, 2), EXB_OFFSET_BEGINNING);
        sk_add(&t, topic, 0, 0, s, EXB_OP_CREATE, "new0", v2);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.upserts, 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\" WHERE uscc='Y'"), 1);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE partition=0"), 1);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE partition=1"), 4);
        exb_schema_destroy(s);
        sk_close(&t);

        /* reopened against another cluster: offsets and events go, rows stay */
        char dir[512], err[256], p[600];
        tmp_dir(dir, sizeof(dir), "offsets");
        exb_sink_sqlite_conf_t c;
        exb_conf_defaults(exb_sink_sqlite.props, &c);
        exb_sink_env_t same = {"GJJ", dir, "cluster-A"}, other = {"GJJ", dir, "cluster-B"};
        void *sk = exb_sink_sqlite.open(&c, &same, err, sizeof(err)); /* default path */
        assert_non_null(sk);
        exb_sink_sqlite.close(sk);
        snprintf(p, sizeof(p), "%s/consumer-GJJ.db", dir);
        assert_int_equal(access(p, F_OK), 0);
        snprintf(p, sizeof(p), "%s/sink.db", dir);
        c.path = exb_strdup(p);
        sk = exb_sink_sqlite.open(&c, &same, err, sizeof(err));
        assert_non_null(sk);
        assert_int_equal(exb_sink_sqlite.offset(sk, topic, 1, -1), 4);
        exb_sink_sqlite.close(sk);
        sk = exb_sink_sqlite.open(&c, &other, err, sizeof(err));
        assert_non_null(sk);
        assert_int_equal(exb_sink_sqlite.offset(sk, topic, 1, -1), EXB_OFFSET_BEGINNING);
        exb_sink_sqlite.close(sk);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_int_equal(q_int(db, "SELECT count(*) FROM exb_offsets"), 0);
        assert_int_equal(q_int(db, "SELECT count(*) FROM exb_events"), 0);
        assert_int_equal(q_int(db, "SELECT count(*) FROM \"370600-SC-0003\""), 2);
        assert_string_equal(q_text(db, "SELECT v FROM exb_meta WHERE k='cluster_id'"), "cluster-B");
        sqlite3_close(db);
        exb_conf_free(exb_sink_sqlite.props, &c);
}

static void test_sink_locked(void **state)
{
        (void)state;
        sk_t t;
        sk_open(&t, "locked");
        exb_schema_t *s = mk_schema("R370600_SC_0003_S_000002", comp_fields, 3, 9);
        const char *topic = "exb.deliver.GJJ.370600-SC-0003";
        exb_val_t v[] = {VS("X"), VI(1), VD(1)};
        exb_sink_result_t res;
        sk_add(&t, topic, 0, 0, s, EXB_OP_CREATE, "l0", v);
        assert_int_equal(sk_write(&t, &res), EXB_OK);

        /* another connection holds the write lock: nothing is applied */
        assert_int_equal(sqlite3_exec(t.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        exb_val_t v2[] = {VS("Z"), VI(2), VD(2)};
        exb_schema_t *s2 = mk_schema("R370600_SC_0003_S_000003", comp_fields, 3, 11);
        int64_t t0 = exb_mono_ms();
        sk_add(&t, topic, 0, 1, s, EXB_OP_CREATE, "l1", v2);
        sk_add_dead(&t, topic, 0, 2, "k", "junk", 4, "malformed");
        sk_add(&t, "exb.deliver.GJJ.370600-NEW-0009", 0, 0, s2, EXB_OP_CREATE, "l2", v2);
        t.recs[t.n - 1].resource = "370600-NEW-0009";
        assert_int_equal(sk_write(&t, &res), EXB_ERR_RETRY);
        assert_true(exb_mono_ms() - t0 >= 900); /* waited sink.busy.timeout.ms */
        assert_int_equal(sqlite3_exec(t.db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\""), 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM exb_dead_letters"), 0);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets"), 1);

        assert_int_equal(q_int(t.db, "SELECT count(*) FROM sqlite_master WHERE "
                                     "name='370600-NEW-0009'"),
                         0);
        /* the same batch again, the lock gone */
        sk_add(&t, topic, 0, 1, s, EXB_OP_CREATE, "l1", v2);
        sk_add_dead(&t, topic, 0, 2, "k", "junk", 4, "malformed");
        sk_add(&t, "exb.deliver.GJJ.370600-NEW-0009", 0, 0, s2, EXB_OP_CREATE, "l2", v2);
        t.recs[t.n - 1].resource = "370600-NEW-0009";
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.upserts, 2);
        assert_int_equal(res.dead_letters, 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\""), 2);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-NEW-0009\""), 1);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE topic LIKE "
                                     "'%SC-0003'"),
                         3);

        /* the database fails late in the batch (here: writing the offsets),
         * after a table was created and rows written: all of it is undone,
         * and the sink's cached tables and statements with it */
        assert_int_equal(sqlite3_exec(t.db,
                                      "CREATE TRIGGER f1 BEFORE INSERT ON exb_offsets BEGIN"
                                      " SELECT RAISE(ABORT, 'disk on fire'); END;"
                                      "CREATE TRIGGER f2 BEFORE UPDATE ON exb_offsets BEGIN"
                                      " SELECT RAISE(ABORT, 'disk on fire'); END;",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        exb_val_t v3[] = {VS("W"), VI(3), VD(3)};
        sk_add(&t, topic, 0, 3, s, EXB_OP_CREATE, "l3", v3);
        sk_add(&t, "exb.deliver.GJJ.370600-NEW-0010", 0, 0, s2, EXB_OP_CREATE, "l4", v3);
        t.recs[t.n - 1].resource = "370600-NEW-0010";
        sk_add_dead(&t, topic, 0, 4, "k", "junk", 4, "malformed");
        assert_int_equal(sk_write(&t, &res), EXB_ERR_RETRY);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM sqlite_master WHERE "
                                     "name='370600-NEW-0010'"),
                         0);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\" WHERE uscc='W'"), 0);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM exb_dead_letters"), 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM exb_events WHERE event_id='l3'"), 0);
        assert_int_equal(sqlite3_exec(t.db, "DROP TRIGGER f1; DROP TRIGGER f2", NULL, NULL, NULL),
                         SQLITE_OK);
        sk_add(&t, topic, 0, 3, s, EXB_OP_CREATE, "l3", v3);
        sk_add(&t, "exb.deliver.GJJ.370600-NEW-0010", 0, 0, s2, EXB_OP_CREATE, "l4", v3);
        t.recs[t.n - 1].resource = "370600-NEW-0010";
        sk_add_dead(&t, topic, 0, 4, "k", "junk", 4, "malformed");
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-NEW-0010\""), 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"370600-SC-0003\" WHERE uscc='W'"), 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM exb_dead_letters"), 2);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE topic LIKE "
                                     "'%SC-0003'"),
                         5);
        exb_schema_destroy(s);
        exb_schema_destroy(s2);
        sk_close(&t);
}

static void test_sink_alter(void **state)
{
        (void)state;
        sk_t t;
        sk_open(&t, "alter");
        exb_field_t f1[] = {{"id_number", NULL, EXB_T_STRING, 0}, {"name", NULL, EXB_T_STRING, 1}};
        exb_field_t f2[] = {{"id_number", NULL, EXB_T_STRING, 0},
                            {"name", NULL, EXB_T_STRING, 1},
                            {"region", NULL, EXB_T_STRING, 1},
                            {"moved_at", NULL, EXB_T_TIMESTAMP, 1}};
        exb_schema_t *s1 = mk_schema("R370600_GA_0001_S_000001", f1, 2, 3);
        exb_schema_t *s2 = mk_schema("R370600_GA_0001_S_000001", f2, 4, 8);
        exb_val_t a[] = {VS("A"), VS("甲")};
        exb_val_t b[] = {VS("B"), VS("乙"), VS("370602"), VI(0)};
        exb_val_t a_old[] = {VS("A"), VS("甲2")};
        exb_sink_result_t res;
        sk_add(&t, T1, 0, 0, s1, EXB_OP_CREATE, NULL, a);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM pragma_table_info('" RES "')"), 2);
        sk_add(&t, T1, 0, 1, s2, EXB_OP_CREATE, NULL, b);
        sk_add(&t, T1, 0, 2, s1, EXB_OP_UPDATE, NULL, a_old); /* older schema still applies */
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM pragma_table_info('" RES "')"), 4);
        assert_string_equal(q_text(t.db, "SELECT region || ' ' || moved_at FROM \"" RES
                                         "\" WHERE id_number='B'"),
                            "370602 1970-01-01T00:00:00.000Z");
        assert_string_equal(
                q_text(t.db, "SELECT name || typeof(region) FROM \"" RES "\" WHERE id_number='A'"),
                "甲2null");
        /* no event id: nothing in exb_events */
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM exb_events"), 0);
        exb_schema_destroy(s1);
        exb_schema_destroy(s2);
        sk_close(&t);
}

static void test_sink_dead_letters(void **state)
{
        (void)state;
        sk_t t;
        sk_open(&t, "dead");
        exb_field_t fd[] = {{"id", NULL, EXB_T_STRING, 0},
                            {"born", NULL, EXB_T_DATE, 1},
                            {"seen", NULL, EXB_T_TIMESTAMP, 1}};
        exb_field_t fnokey[] = {{"a", NULL, EXB_T_STRING, 1}};
        exb_field_t fother[] = {{"other", NULL, EXB_T_STRING, 0}, {"id", NULL, EXB_T_STRING, 1}};
        exb_schema_t *s = mk_schema("R370600_GA_0001_S_000001", fd, 3, 4);
        exb_schema_t *snokey = mk_schema("R370600_GA_0001_S_000009", fnokey, 1, 5);
        exb_schema_t *sother = mk_schema("R370600_GA_0001_S_000010", fother, 2, 6);
        exb_val_t ok[] = {VS("1"), VI(0), VI(0)};
        exb_val_t baddate[] = {VS("2"), VI(INT32_MAX), VNULL};
        exb_val_t badts[] = {VS("3"), VNULL, VI(INT64_MIN)};
        exb_val_t nokey[] = {VS("x")};
        exb_val_t other[] = {VS("o"), VS("1")};
        static const uint8_t bin[] = {0x00, 0x00, 0x00, 0x00, 0x63, 0xff};
        sk_add(&t, T1, 0, 0, s, EXB_OP_CREATE, "d0", ok);
        sk_add_dead(&t, T1, 0, 1, "370602199001011234", bin, sizeof(bin),
                    "unknown schema id 99 (not on the control plane)");
        sk_add_dead(&t, T1, 1, 0, "\xff\xfe", NULL, 0, "empty value");
        sk_add(&t, T1, 0, 2, s, EXB_OP_CREATE, "d2", baddate);
        sk_add(&t, T1, 0, 3, s, EXB_OP_UPDATE, "d3", badts);
        sk_add(&t, T1, 0, 4, snokey, EXB_OP_CREATE, "d4", nokey);
        sk_add(&t, T1, 0, 5, sother, EXB_OP_CREATE, "d5", other);
        sk_add(&t, T1, 0, 6, s, EXB_OP_CREATE, "d6", ok);
        exb_sink_result_t res;
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.upserts, 2);
        assert_int_equal(res.dead_letters, 6);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM exb_dead_letters"), 6);
        assert_string_equal(q_text(t.db, "SELECT key || ' ' || hex(value) || ' ' || reason FROM "
                                         "exb_dead_letters WHERE partition=0 AND offset=1"),
                            "370602199001011234 0000000063FF unknown schema id 99 (not on "
                            "the control plane)");
        assert_string_equal(q_text(t.db, "SELECT typeof(key) || hex(key) || typeof(value) FROM "
                                         "exb_dead_letters WHERE partition=1"),
                            "blobFFFEnull");
        assert_non_null(strstr(q_text(t.db, "SELECT reason FROM exb_dead_letters WHERE offset=2 "
                                            "AND partition=0"),
                               "date out of range"));
        assert_non_null(strstr(q_text(t.db, "SELECT reason FROM exb_dead_letters WHERE offset=3 "
                                            "AND partition=0"),
                               "timestamp out of range"));
        assert_non_null(strstr(q_text(t.db, "SELECT reason FROM exb_dead_letters WHERE offset=4 "
                                            "AND partition=0"),
                               "no key items"));
        assert_non_null(strstr(q_text(t.db, "SELECT reason FROM exb_dead_letters WHERE offset=5 "
                                            "AND partition=0"),
                               "primary key"));
        assert_true(strlen(q_text(t.db, "SELECT at FROM exb_dead_letters LIMIT 1")) == 24);
        /* the statement that failed left nothing behind, the offsets moved on */
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"" RES "\""), 1);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE partition=0"), 7);
        assert_int_equal(q_int(t.db, "SELECT next_offset FROM exb_offsets WHERE partition=1"), 1);

        /* a table dropped under a cached statement is created again */
        assert_int_equal(sqlite3_exec(t.db, "DROP TABLE \"" RES "\"", NULL, NULL, NULL), SQLITE_OK);
        sk_add(&t, T1, 0, 7, s, EXB_OP_CREATE, "d7", ok);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.upserts, 1);
        assert_int_equal(q_int(t.db, "SELECT count(*) FROM \"" RES "\""), 1);
        exb_schema_destroy(s);
        exb_schema_destroy(snokey);
        exb_schema_destroy(sother);
        sk_close(&t);
}

static void test_sink_events(void **state)
{
        (void)state;
        sk_t t;
        sk_open(&t, "events");
        exb_schema_t *s = mk_schema("R370600_SC_0003_S_000002", comp_fields, 3, 9);
        const char *topic = "exb.deliver.GJJ.370600-SC-0003";
        exb_val_t v1[] = {VS("X"), VI(1), VD(1)};
        exb_val_t v2[] = {VS("X"), VI(1), VD(2)};
        exb_sink_result_t res;
        sk_add(&t, topic, 0, 0, s, EXB_OP_CREATE, "ev-1", v1);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_string_equal(q_text(t.db, "SELECT topic || ':' || partition || ':' || offset FROM "
                                         "exb_events WHERE event_id='ev-1'"),
                            "exb.deliver.GJJ.370600-SC-0003:0:0");
        /* the offsets lost (say, restored by hand): the same position is a replay */
        assert_int_equal(sqlite3_exec(t.db, "DELETE FROM exb_offsets", NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(
                sqlite3_exec(t.db, "UPDATE \"370600-SC-0003\" SET amount=7", NULL, NULL, NULL),
                SQLITE_OK);
        sk_add(&t, topic, 0, 0, s, EXB_OP_CREATE, "ev-1", v2);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.replays, 1);
        assert_int_equal(q_int(t.db, "SELECT amount FROM \"370600-SC-0003\""), 7);
        /* the same event redelivered at another position (router replay): applied */
        sk_add(&t, topic, 0, 1, s, EXB_OP_UPDATE, "ev-1", v2);
        assert_int_equal(sk_write(&t, &res), EXB_OK);
        assert_int_equal(res.upserts, 1);
        assert_int_equal(q_int(t.db, "SELECT amount FROM \"370600-SC-0003\""), 2);
        assert_int_equal(q_int(t.db, "SELECT offset FROM exb_events WHERE event_id='ev-1'"), 1);
        exb_schema_destroy(s);
        sk_close(&t);
}

/* ----------------------------------------------------------- config tests */

static int conf_load(const char *path, exb_receiver_conf_t *c, char *err, size_t size)
{
        memset(c, 0, sizeof(*c));
        int r = exb_conf_load(exb_receiver_props, c, path, err, size);
        if (!r)
                r = exb_conf_check(exb_receiver_props, c, path, err, size);
        return r;
}

static void test_conf(void **state)
{
        (void)state;
        exb_receiver_conf_t c;
        char err[512] = "";
        if (conf_load("data/consumer_ok.conf", &c, err, sizeof(err)))
                fail_msg("%s", err);
        assert_string_equal(c.dept, "GJJ");
        assert_string_equal(c.sink_type, "sqlite");
        assert_string_equal(c.sink_path, "/var/lib/exbus/gjj.db");
        assert_int_equal(c.batch_size, 500);
        assert_null(c.group_id);
        assert_int_equal(c.sink.cnt, 1);
        assert_string_equal(exb_conf_kv_get(&c.sink, "busy.timeout.ms"), "250");
        assert_string_equal(exb_conf_kv_get(&c.kafka, "fetch.wait.max.ms"), "50");
        exb_conf_free(exb_receiver_props, &c);

        static const struct {
                const char *file, *want;
        } bad[] = {
                {"data/consumer_unknown.conf", "consumer_unknown.conf:3: unknown key \"sinc.path\" "
                                               "(did you mean \"sink.path\"?)"},
                {"data/consumer_badsink.conf", "invalid value \"postgres\""},
                {"data/consumer_nodept.conf", "missing required key \"dept\""},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(bad); i++) {
                err[0] = '\0';
                assert_int_equal(conf_load(bad[i].file, &c, err, sizeof(err)), -1);
                if (!strstr(err, bad[i].want))
                        fail_msg("%s: got \"%s\", want \"%s\"", bad[i].file, err, bad[i].want);
                exb_conf_free(exb_receiver_props, &c);
        }

        /* a sink key is checked against the sink's own table when the agent starts */
        if (conf_load("data/consumer_sinkkey.conf", &c, err, sizeof(err)))
                fail_msg("%s", err);
        assert_null(exb_receiver_new(&c, err, sizeof(err)));
        assert_non_null(strstr(err, "unknown key \"sink.pth\" (did you mean \"sink.path\"?)"));
        exb_conf_free(exb_receiver_props, &c);

        /* errors found by exb_receiver_new before it connects anywhere */
        static const struct {
                const char *set[3], *want;
        } newbad[] = {
                {{"dept=G J", NULL}, "\"G J\" is not a department code"},
                {{"dept=GJJ", "sink.pth=/tmp/x.db", NULL},
                 "sink sqlite: unknown key \"sink.pth\" (did you mean \"sink.path\"?)"},
                {{"dept=GJJ", "sink.busy.timeout.ms=-5", NULL}, "out of range 0..600000"},
                {{"dept=GJJ", "sink.synchronous=off", NULL}, "invalid value \"off\""},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(newbad); i++) {
                memset(&c, 0, sizeof(c));
                assert_int_equal(exb_conf_load(exb_receiver_props, &c, NULL, err, sizeof(err)), 0);
                assert_int_equal(exb_conf_set_arg(exb_receiver_props, &c, "brokers=127.0.0.1:1",
                                                  NULL, err, sizeof(err)),
                                 0);
                for (int k = 0; newbad[i].set[k]; k++)
                        if (exb_conf_set_arg(exb_receiver_props, &c, newbad[i].set[k], NULL, err,
                                             sizeof(err)))
                                fail_msg("%s", err);
                err[0] = '\0';
                assert_null(exb_receiver_new(&c, err, sizeof(err)));
                if (!strstr(err, newbad[i].want))
                        fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, newbad[i].want);
                exb_conf_free(exb_receiver_props, &c);
        }
        assert_non_null(exb_sink_find("sqlite"));
        assert_non_null(exb_sink_find("jsonl"));
        assert_null(exb_sink_find("oracle"));
}

/* ------------------------------------------------------------ broker tests */

typedef struct {
        int done;
        exb_err_t err;
        int32_t partition;
        int64_t offset;
} dr_t;

static void dr_cb(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                  int32_t partition, int64_t offset)
{
        (void)opaque;
        (void)errstr;
        dr_t *d = msg_opaque;
        if (!d)
                return;
        d->done = 1;
        d->err = err;
        d->partition = partition;
        d->offset = offset;
}

/* Produces one message and waits for its delivery report. */
static int64_t produce_sync(exb_producer_t *p, const char *topic, int32_t partition,
                            const void *key, size_t klen, const void *val, size_t len)
{
        char err[256];
        dr_t d = {0};
        assert_int_equal(exb_produce(p, exb_producer_topic(p, topic), partition, key, klen, val,
                                     len, NULL, 0, &d, err, sizeof(err)),
                         EXB_OK);
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);
        assert_int_equal(d.done, 1);
        assert_int_equal(d.err, EXB_OK);
        return d.offset;
}

/* Publishes a delivery schema on exb.control (what `sub approve` does);
 * returns its id (= the record's offset). */
static int32_t publish_schema(exb_producer_t *p, exb_schema_t *s, const char *sub,
                              const char *resource)
{
        char fp[65], key[128], subject[64];
        exb_schema_fingerprint(s, fp);
        snprintf(subject, sizeof(subject), "delivery:%s", sub);
        snprintf(key, sizeof(key), "schema/%s/%.16s", subject, fp);
        json_t *v = json_pack("{s:s, s:s, s:s, s:s}", "subject", subject, "resource", resource,
                              "fingerprint", fp, "avro", s->avro_json);
        char *text = json_dumps(v, JSON_COMPACT);
        int64_t off = produce_sync(p, "exb.control", 0, key, strlen(key), text, strlen(text));
        free(text);
        json_decref(v);
        s->id = (int32_t)off;
        return s->id;
}

/* Encodes and produces one record of the population schema-like layout. */
static void produce_rec(exb_producer_t *p, const char *topic, const exb_schema_t *s, exb_op_t op,
                        const char *event_id, exb_val_t *vals, dr_t *d)
{
        exb_record_t rec = {.op = op,
                            .event_id = exb_str(event_id),
                            .source = EXB_STR("GA"),
                            .ts_ms = exb_now_ms(),
                            .nvals = s->nfields,
                            .vals = vals};
        exb_buf_t out;
        char err[256];
        exb_buf_init(&out, 1 << 20);
        if (exb_codec_encode(s, &rec, &out, err, sizeof(err)) != EXB_OK)
                fail_msg("encode: %s", err);
        exb_err_t e;
        while ((e = exb_produce(p, exb_producer_topic(p, topic), -1, vals[0].u.s.p, vals[0].u.s.len,
                                out.p, out.len, NULL, 0, d, err, sizeof(err))) == EXB_ERR_RETRY)
                exb_producer_poll(p, 10);
        assert_int_equal(e, EXB_OK);
        exb_buf_free(&out);
}

static void rcv_conf(exb_receiver_conf_t *c, const char *brokers, const char *dir, const char *db,
                     const char *extra)
{
        char err[512], arg[1024];
        memset(c, 0, sizeof(*c));
        exb_conf_load(exb_receiver_props, c, NULL, err, sizeof(err));
        const char *sets[] = {"dept=GJJ", "kafka.topic.metadata.refresh.interval.ms=1000",
                              "sink.busy.timeout.ms=100", extra};
        for (size_t i = 0; i < EXB_ARRAY_CNT(sets); i++)
                if (sets[i] &&
                    exb_conf_set_arg(exb_receiver_props, c, sets[i], NULL, err, sizeof(err)))
                        fail_msg("%s", err);
        snprintf(arg, sizeof(arg), "brokers=%s", brokers);
        exb_conf_set_arg(exb_receiver_props, c, arg, NULL, err, sizeof(err));
        snprintf(arg, sizeof(arg), "data.dir=%s", dir);
        exb_conf_set_arg(exb_receiver_props, c, arg, NULL, err, sizeof(err));
        snprintf(arg, sizeof(arg), "sink.path=%s", db);
        exb_conf_set_arg(exb_receiver_props, c, arg, NULL, err, sizeof(err));
}

/* Polls until cond(db) or timeout; returns 1 if reached. */
static int poll_until(exb_receiver_t *rcv, sqlite3 *db, const char *sql, int64_t want,
                      int timeout_ms)
{
        char err[512];
        int64_t end = exb_mono_ms() + timeout_ms;
        while (exb_mono_ms() < end) {
                if (rcv && exb_receiver_poll(rcv, 100, err, sizeof(err)) < 0)
                        fail_msg("poll: %s", err);
                if (!rcv)
                        usleep(50 * 1000);
                if (q_int(db, sql) == want)
                        return 1;
        }
        print_message("timed out: %s: %lld, want %lld\n", sql, (long long)q_int(db, sql),
                      (long long)want);
        return 0;
}

static void test_receiver_broker(void **state)
{
        (void)state;
        char err[512] = "", dir[512], db_path[600];
        exb_embedded_t *emb = exb_embedded_new(1, err, sizeof(err));
        assert_non_null(emb);
        const char *brokers = exb_embedded_bootstraps(emb);
        const char *topic = T1, *topic2 = "exb.deliver.GJJ.370600-SC-0003";
        assert_int_equal(exb_embedded_create_topic(emb, "exb.control", 1, err, sizeof(err)),
                         EXB_OK);
        assert_int_equal(exb_embedded_create_topic(emb, topic, 2, err, sizeof(err)), EXB_OK);
        /* another department's delivery: never read by GJJ */
        assert_int_equal(exb_embedded_create_topic(emb, "exb.deliver.MZ." RES, 1, err, sizeof(err)),
                         EXB_OK);
        exb_producer_t *p = exb_producer_new(brokers, NULL, 0, dr_cb, NULL, err, sizeof(err));
        assert_non_null(p);
        exb_field_t f1[] = {{"id_number", NULL, EXB_T_STRING, 0},
                            {"name", NULL, EXB_T_STRING, 1},
                            {"birth_date", NULL, EXB_T_DATE, 1}};
        exb_schema_t *s1 = mk_schema("R370600_GA_0001_S_000001", f1, 3, -1);
        publish_schema(p, s1, "S-000001", RES);

        tmp_dir(dir, sizeof(dir), "broker");
        snprintf(db_path, sizeof(db_path), "%s/gjj.db", dir);
        exb_receiver_conf_t c;
        rcv_conf(&c, brokers, dir, db_path, "batch.size=50");
        exb_receiver_t *rcv = exb_receiver_new(&c, err, sizeof(err));
        if (!rcv)
                fail_msg("new: %s", err);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);

        /* 200 creates, 50 updates, 20 deletes, plus junk */
        static dr_t drs[400];
        int nd = 0;
        char ids[200][24];
        for (int i = 0; i < 200; i++) {
                snprintf(ids[i], sizeof(ids[i]), "3706021990%08d", i);
                exb_val_t v[] = {{.u.s = {ids[i], strlen(ids[i])}}, VS("张三"), VI(7000 + i)};
                char ev[32];
                snprintf(ev, sizeof(ev), "c-%d", i);
                produce_rec(p, topic, s1, EXB_OP_CREATE, ev, v, &drs[nd++]);
        }
        for (int i = 0; i < 50; i++) {
                exb_val_t v[] = {{.u.s = {ids[i], strlen(ids[i])}}, VS("李四"), VNULL};
                char ev[32];
                snprintf(ev, sizeof(ev), "u-%d", i);
                produce_rec(p, topic, s1, EXB_OP_UPDATE, ev, v, &drs[nd++]);
        }
        for (int i = 180; i < 200; i++) {
                exb_val_t v[] = {{.u.s = {ids[i], strlen(ids[i])}}, VNULL, VNULL};
                char ev[32];
                snprintf(ev, sizeof(ev), "d-%d", i);
                produce_rec(p, topic, s1, EXB_OP_DELETE, ev, v, &drs[nd++]);
        }
        produce_sync(p, topic, 0, "bad", 3, "\x00\x00\x00", 3);             /* truncated frame */
        produce_sync(p, topic, 1, "bad", 3, "\x00\x00\x00\x27\x0f\x00", 6); /* schema 9999 */
        produce_sync(p, topic, 1, "bad", 3, "\x00\x00\x00\x00\x00\x09",
                     6); /* schema 0, bad datum */
        exb_val_t mz[] = {VS("MZ-ONLY"), VNULL, VNULL};
        produce_rec(p, "exb.deliver.MZ." RES, s1, EXB_OP_CREATE, "mz", mz, &drs[nd++]);
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);

        assert_true(poll_until(rcv, db, "SELECT count(*) FROM exb_dead_letters", 3, 30000));
        assert_true(poll_until(rcv, db, "SELECT count(*) FROM \"" RES "\"", 180, 30000));
        assert_int_equal(q_int(db, "SELECT count(*) FROM \"" RES "\" WHERE name='李四'"), 50);
        assert_int_equal(q_int(db, "SELECT count(*) FROM \"" RES "\" WHERE id_number='MZ-ONLY'"),
                         0);
        assert_string_equal(q_text(db, "SELECT birth_date FROM \"" RES
                                       "\" WHERE id_number='370602199000000100'"),
                            "1989-06-10");
        assert_non_null(strstr(
                q_text(db, "SELECT reason FROM exb_dead_letters WHERE value=x'000000270f00'"),
                "unknown schema id 9999"));
        assert_int_equal(q_int(db, "SELECT sum(next_offset) FROM exb_offsets"), 270 + 3);
        exb_receiver_stats_t st;
        exb_receiver_stats(rcv, &st);
        assert_int_equal(st.upserts, 250);
        assert_int_equal(st.deletes, 20);
        assert_int_equal(st.dead_letters, 3);

        /* a new schema version with one more item: a new column */
        exb_field_t f2[] = {{"id_number", NULL, EXB_T_STRING, 0},
                            {"name", NULL, EXB_T_STRING, 1},
                            {"birth_date", NULL, EXB_T_DATE, 1},
                            {"region", NULL, EXB_T_STRING, 1}};
        exb_schema_t *s2 = mk_schema("R370600_GA_0001_S_000001", f2, 4, -1);
        publish_schema(p, s2, "S-000001", RES);
        exb_val_t v2[] = {VS("NEW-1"), VS("王五"), VNULL, VS("370602")};
        produce_rec(p, topic, s2, EXB_OP_CREATE, "n-1", v2, &drs[nd++]);
        assert_true(poll_until(rcv, db, "SELECT count(*) FROM \"" RES "\" WHERE region='370602'", 1,
                               30000));

        /* a new subscription's topic, created now, is picked up without restart */
        exb_field_t f3[] = {{"uscc", NULL, EXB_T_STRING, 0}, {"amount", NULL, EXB_T_NUMBER, 1}};
        exb_schema_t *s3 = mk_schema("R370600_SC_0003_S_000002", f3, 2, -1);
        publish_schema(p, s3, "S-000002", "370600-SC-0003");
        assert_int_equal(exb_embedded_create_topic(emb, topic2, 1, err, sizeof(err)), EXB_OK);
        exb_val_t v3[] = {VS("91370600MA3C0A1B2X"), VD(12.5)};
        produce_rec(p, topic2, s3, EXB_OP_CREATE, "sc-1", v3, &drs[nd++]);
        /* a schema of another resource on this topic is refused */
        produce_rec(p, topic2, s1, EXB_OP_CREATE, "wrong", v2, &drs[nd++]);
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);
        assert_true(poll_until(rcv, db,
                               "SELECT count(*) FROM sqlite_master WHERE name='370600-SC-0003'", 1,
                               40000));
        assert_true(poll_until(rcv, db, "SELECT count(*) FROM exb_dead_letters", 4, 10000));
        assert_non_null(strstr(q_text(db, "SELECT reason FROM exb_dead_letters WHERE topic='"
                                          "exb.deliver.GJJ.370600-SC-0003'"),
                               "belongs to resource " RES ", not 370600-SC-0003"));

        /* the sink goes down (locked by another writer): paused, nothing lost */
        sqlite3 *locker;
        assert_int_equal(sqlite3_open(db_path, &locker), SQLITE_OK);
        assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        for (int i = 0; i < 100; i++) {
                exb_val_t v[] = {{.u.s = {ids[i], strlen(ids[i])}}, VS("赵六"), VNULL, VNULL};
                char ev[32];
                snprintf(ev, sizeof(ev), "z-%d", i);
                produce_rec(p, topic, s2, EXB_OP_UPDATE, ev, v, &drs[nd++ % 400]);
        }
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);
        int64_t end = exb_mono_ms() + 15000;
        while (!exb_receiver_paused(rcv) && exb_mono_ms() < end)
                assert_true(exb_receiver_poll(rcv, 100, err, sizeof(err)) >= 0);
        assert_true(exb_receiver_paused(rcv));
        for (int i = 0; i < 10; i++) /* in backoff: serves the group, applies nothing */
                assert_int_equal(exb_receiver_poll(rcv, 100, err, sizeof(err)), 0);
        exb_receiver_stats(rcv, &st);
        assert_true(st.errors >= 1);
        assert_int_equal(sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(locker);
        assert_true(poll_until(rcv, db, "SELECT count(*) FROM \"" RES "\" WHERE name='赵六'", 100,
                               60000));
        assert_false(exb_receiver_paused(rcv));

        /* every change applied once: 250 + NEW-1 + sc-1 + 100 upserts, 20 deletes */
        exb_receiver_stats(rcv, &st);
        assert_int_equal(st.upserts, 352);
        assert_int_equal(st.deletes, 20);
        assert_int_equal(st.dead_letters, 4);

        /* restart: resumes from the sink's offsets, nothing applied twice */
        exb_receiver_destroy(rcv);
        int64_t offs = q_int(db, "SELECT sum(next_offset) FROM exb_offsets");
        rcv = exb_receiver_new(&c, err, sizeof(err));
        if (!rcv)
                fail_msg("new: %s", err);
        exb_val_t v4[] = {VS("NEW-2"), VS("钱七"), VNULL, VNULL};
        produce_rec(p, topic, s2, EXB_OP_CREATE, "n-2", v4, &drs[nd++ % 400]);
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);
        assert_true(poll_until(rcv, db, "SELECT count(*) FROM \"" RES "\" WHERE id_number='NEW-2'",
                               1, 40000));
        exb_receiver_stats(rcv, &st);
        assert_int_equal(st.upserts, 1); /* only the new record */
        assert_int_equal(st.deletes, 0);
        assert_int_equal(q_int(db, "SELECT sum(next_offset) FROM exb_offsets"), offs + 1);
        exb_receiver_destroy(rcv);

        exb_conf_free(exb_receiver_props, &c);
        sqlite3_close(db);
        exb_schema_destroy(s1);
        exb_schema_destroy(s2);
        exb_schema_destroy(s3);
        exb_producer_destroy(p);
        exb_embedded_destroy(emb);
}

/* ---------------------------------------------------- kill -9 and restart */

static volatile sig_atomic_t child_stop;

static void on_term(int sig)
{
        (void)sig;
        child_stop = 1;
}

/* argv: --receiver-child BROKERS DIR DB */
static int receiver_child(char **argv)
{
        exb_receiver_conf_t c;
        char err[512];
        rcv_conf(&c, argv[2], argv[3], argv[4], "batch.size=100");
        signal(SIGTERM, on_term);
        exb_receiver_t *rcv = exb_receiver_new(&c, err, sizeof(err));
        if (!rcv) {
                fprintf(stderr, "receiver child: %s\n", err);
                return 2;
        }
        int r = exb_receiver_run(rcv, &child_stop);
        exb_receiver_destroy(rcv);
        exb_conf_free(exb_receiver_props, &c);
        return r;
}

static char self_exe[4096];

static pid_t spawn_child(const char *brokers, const char *dir, const char *db)
{
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                execl(self_exe, self_exe, "--receiver-child", brokers, dir, db, (char *)NULL);
                _exit(127);
        }
        return pid;
}

#define K_KEYS  1000
#define K_TOTAL 6000

static void test_receiver_kill9(void **state)
{
        (void)state;
        char err[512] = "", dir[512], db_path[600];
        exb_embedded_t *emb = exb_embedded_new(1, err, sizeof(err));
        assert_non_null(emb);
        const char *brokers = exb_embedded_bootstraps(emb);
        const char *topic = "exb.deliver.GJJ.370600-MZ-0002";
        assert_int_equal(exb_embedded_create_topic(emb, "exb.control", 1, err, sizeof(err)),
                         EXB_OK);
        assert_int_equal(exb_embedded_create_topic(emb, topic, 3, err, sizeof(err)), EXB_OK);
        exb_producer_t *p = exb_producer_new(brokers, NULL, 0, dr_cb, NULL, err, sizeof(err));
        assert_non_null(p);
        exb_field_t f[] = {{"code", NULL, EXB_T_STRING, 0},
                           {"name", NULL, EXB_T_STRING, 1},
                           {"seq", NULL, EXB_T_INT, 1}};
        exb_schema_t *s = mk_schema("R370600_MZ_0002_S_000003", f, 3, -1);
        publish_schema(p, s, "S-000003", "370600-MZ-0002");

        /* The subscriber's table made in advance, with a trigger that logs
         * every applied upsert: a lost or repeated change shows in `applied`. */
        tmp_dir(dir, sizeof(dir), "kill9");
        snprintf(db_path, sizeof(db_path), "%s/mz.db", dir);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 10000);
        assert_int_equal(
                sqlite3_exec(db,
                             "PRAGMA journal_mode=WAL;"
                             "CREATE TABLE \"370600-MZ-0002\"(code TEXT NOT NULL, name TEXT,"
                             " seq INTEGER, PRIMARY KEY(code));"
                             "CREATE TABLE applied(seq INTEGER);"
                             "CREATE TRIGGER ai AFTER INSERT ON \"370600-MZ-0002\" BEGIN"
                             " INSERT INTO applied VALUES(NEW.seq); END;"
                             "CREATE TRIGGER au AFTER UPDATE ON \"370600-MZ-0002\" BEGIN"
                             " INSERT INTO applied VALUES(NEW.seq); END;",
                             NULL, NULL, NULL),
                SQLITE_OK);

        /* K_TOTAL changes over K_KEYS keys: creates, updates, then deletes of
         * every tenth key; the expected final state is kept here. */
        static char codes[K_KEYS][16];
        static int64_t last_seq[K_KEYS];
        static int deleted[K_KEYS];
        static dr_t drs[K_TOTAL];
        int nupserts = 0, n = 0;
        for (int i = 0; i < K_KEYS; i++)
                snprintf(codes[i], sizeof(codes[i]), "MZ%06d", i);
        for (n = 0; n < K_TOTAL; n++) {
                int k = n % K_KEYS;
                int is_delete = n >= K_TOTAL - K_KEYS && k % 10 == 0;
                exb_val_t v[] = {{.u.s = {codes[k], strlen(codes[k])}},
                                 is_delete ? VNULL : VS("某人"),
                                 is_delete ? VNULL : VI(n)};
                char ev[32];
                snprintf(ev, sizeof(ev), "mz-%d", n);
                produce_rec(p, topic, s,
                            is_delete    ? EXB_OP_DELETE
                            : n < K_KEYS ? EXB_OP_CREATE
                                         : EXB_OP_UPDATE,
                            ev, v, &drs[n]);
                if (is_delete) {
                        deleted[k] = 1;
                } else {
                        last_seq[k] = n;
                        nupserts++;
                }
        }
        assert_int_equal(exb_producer_flush(p, 30000), EXB_OK);
        int64_t total_next = 0;
        for (int i = 0; i < K_TOTAL; i++) {
                assert_int_equal(drs[i].err, EXB_OK);
                (void)i;
        }
        for (int part = 0; part < 3; part++) {
                int64_t mx = -1;
                for (int i = 0; i < K_TOTAL; i++)
                        if (drs[i].partition == part && drs[i].offset > mx)
                                mx = drs[i].offset;
                total_next += mx + 1;
        }
        assert_int_equal(total_next, K_TOTAL);

        /* first run: killed in the middle */
        pid_t pid = spawn_child(brokers, dir, db_path);
        int64_t end = exb_mono_ms() + 60000;
        while (q_int(db, "SELECT count(*) FROM applied") < nupserts / 3 && exb_mono_ms() < end)
                usleep(5 * 1000);
        int64_t at_kill = q_int(db, "SELECT count(*) FROM applied");
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        print_message("killed the receiver after %lld of %d upserts\n", (long long)at_kill,
                      nupserts);
        assert_true(at_kill > 0 && at_kill < nupserts);

        /* second run: finishes */
        pid = spawn_child(brokers, dir, db_path);
        int done = poll_until(NULL, db, "SELECT coalesce(sum(next_offset), 0) FROM exb_offsets",
                              K_TOTAL, 90000);
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        assert_true(done);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        /* every upsert applied exactly once, deletes applied, final state right */
        assert_int_equal(q_int(db, "SELECT count(*) FROM applied"), nupserts);
        assert_int_equal(q_int(db, "SELECT count(DISTINCT seq) FROM applied"), nupserts);
        int nrows = 0;
        sqlite3_stmt *st;
        assert_int_equal(
                sqlite3_prepare_v2(db, "SELECT code, seq FROM \"370600-MZ-0002\"", -1, &st, NULL),
                SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                int k = atoi((const char *)sqlite3_column_text(st, 0) + 2);
                assert_false(deleted[k]);
                assert_int_equal(sqlite3_column_int64(st, 1), last_seq[k]);
                nrows++;
        }
        sqlite3_finalize(st);
        assert_int_equal(nrows, K_KEYS - K_KEYS / 10);
        assert_int_equal(q_int(db, "SELECT count(*) FROM exb_dead_letters"), 0);
        assert_int_equal(q_int(db, "SELECT count(*) FROM exb_events"), K_TOTAL);

        sqlite3_close(db);
        exb_schema_destroy(s);
        exb_producer_destroy(p);
        exb_embedded_destroy(emb);
}

int main(int argc, char **argv)
{
        if (argc == 5 && !strcmp(argv[1], "--receiver-child"))
                return receiver_child(argv);
        ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
        if (n > 0)
                self_exe[n] = '\0';
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sink_create_types), cmocka_unit_test(test_sink_upsert_delete),
                cmocka_unit_test(test_sink_offsets),      cmocka_unit_test(test_sink_locked),
                cmocka_unit_test(test_sink_alter),        cmocka_unit_test(test_sink_dead_letters),
                cmocka_unit_test(test_sink_events),       cmocka_unit_test(test_conf),
                cmocka_unit_test(test_receiver_broker),   cmocka_unit_test(test_receiver_kill9),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        if (tmp_root[0] && !getenv("EXB_TEST_KEEP")) {
                char cmd[400];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
                if (system(cmd) != 0)
                        fprintf(stderr, "could not remove %s\n", tmp_root);
        }
        return r;
}
