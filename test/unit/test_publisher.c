/*
 * test_publisher.c — the producer agent (producers/): configuration, the
 * SQLite source (triggers, change capture, value mapping, rejects,
 * snapshot reads) and, on the embedded broker in this process, the whole
 * agent: what arrives on exb.ingest.GA.*, decoded, in changelog order; a
 * broker that goes down and comes back (nothing lost); snapshots, resumed;
 * a new resource version picked up live.
 *
 * The catalog is the string below; every test builds its own SQLite files
 * under a fresh temporary directory. Runs in test/unit (fixtures in data/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "exb_catalog.h"
#include "exb_check.h"
#include "exb_codec.h"
#include "exb_control.h"
#include "exb_kafka.h"
#include "exb_publisher.h"
#include "exb_publisher_int.h"
#include "exb_schema.h"
#include "exb_source.h"
#include "exb_validate.h"

#define P1 "370600-GA-0001"
#define P9 "370600-GA-0009"

/* person: every item type; marriage: a composite key; company: another
 * department's resource. */
static const char *catalog_text =
        "{\"departments\": [{\"code\": \"GA\", \"name\": \"市公安局\"},"
        "                   {\"code\": \"SC\", \"name\": \"市市场监督管理局\"}],"
        " \"resources\": ["
        "  {\"code\": \"" P1 "\", \"name\": \"人口基本信息\", \"provider\": \"GA\","
        "   \"share_type\": \"unconditional\", \"key\": [\"id_number\"], \"items\": ["
        "    {\"name\": \"id_number\", \"type\": \"C\", \"length\": 18, \"required\": true,"
        "     \"check\": \"gb11643\"},"
        "    {\"name\": \"name\", \"type\": \"C\", \"length\": 50, \"required\": true},"
        "    {\"name\": \"birth_date\", \"type\": \"D\"},"
        "    {\"name\": \"height\", \"type\": \"N\"},"
        "    {\"name\": \"children\", \"type\": \"I\"},"
        "    {\"name\": \"updated_at\", \"type\": \"T\"},"
        "    {\"name\": \"alive\", \"type\": \"L\"},"
        "    {\"name\": \"photo\", \"type\": \"B\", \"length\": 16},"
        "    {\"name\": \"region\", \"type\": \"C\", \"length\": 6}%s]},"
        "  {\"code\": \"" P9 "\", \"name\": \"婚姻登记\", \"provider\": \"GA\","
        "   \"share_type\": \"unconditional\", \"key\": [\"cert_no\", \"id_number\"], \"items\": ["
        "    {\"name\": \"cert_no\", \"type\": \"C\", \"required\": true},"
        "    {\"name\": \"id_number\", \"type\": \"C\", \"required\": true},"
        "    {\"name\": \"reg_date\", \"type\": \"D\"}]},"
        "  {\"code\": \"370600-SC-0001\", \"name\": \"法人\", \"provider\": \"SC\","
        "   \"share_type\": \"unconditional\", \"key\": [\"credit_code\"], \"items\": ["
        "    {\"name\": \"credit_code\", \"type\": \"C\", \"required\": true},"
        "    {\"name\": \"name\", \"type\": \"C\"}]}"
        "]}";

#define PERSON_DDL                                                                                 \
        "CREATE TABLE person(ID_Number TEXT PRIMARY KEY, name TEXT NOT NULL, birth_date TEXT,"     \
        " height REAL, children INTEGER, updated_at, alive INTEGER, photo BLOB, note TEXT);"

static char tmpdir[64];
static char dbpath[128];

/* ----------------------------------------------------------------- helpers */

static exb_catalog_t *catalog_with(const char *extra_items)
{
        char es[512] = "";
        size_t size = strlen(catalog_text) + strlen(extra_items) + 1;
        char *text = malloc(size);
        snprintf(text, size, catalog_text, extra_items);
        exb_catalog_t *cat =
                exb_catalog_parse("test-catalog", text, strlen(text), NULL, 0, es, sizeof(es));
        free(text);
        if (!cat)
                print_error("%s\n", es);
        assert_non_null(cat);
        return cat;
}

static void sql(sqlite3 *db, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s = sqlite3_vmprintf(fmt, ap);
        va_end(ap);
        char *err = NULL;
        if (sqlite3_exec(db, s, NULL, NULL, &err) != SQLITE_OK)
                print_error("sql: %s: %s\n", err, s);
        assert_null(err);
        sqlite3_free(s);
}

static int64_t sql_int(sqlite3 *db, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s = sqlite3_vmprintf(fmt, ap);
        va_end(ap);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, s, -1, &st, NULL), SQLITE_OK);
        int64_t v = -1;
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_free(s);
        return v;
}

/* First column of the first row, or "" (static buffer). */
static const char *sql_text(sqlite3 *db, const char *fmt, ...)
{
        static char buf[8192];
        va_list ap;
        va_start(ap, fmt);
        char *s = sqlite3_vmprintf(fmt, ap);
        va_end(ap);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, s, -1, &st, NULL), SQLITE_OK);
        buf[0] = '\0';
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                snprintf(buf, sizeof(buf), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_free(s);
        return buf;
}

/* A valid 18-digit citizen id, different for every i. */
static const char *idn(int i)
{
        static char ids[32][19];
        static int next;
        char *out = ids[next++ % 32];
        snprintf(out, 19, "37060219900101%03d", i % 1000);
        out[17] = exb_check_gb11643_digit(out);
        out[18] = '\0';
        return out;
}

static sqlite3 *db_open(void)
{
        sqlite3 *db;
        assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        return db;
}

static int setup_dir(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/exb_pub_XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(dbpath, sizeof(dbpath), "%s/ga.db", tmpdir);
        return 0;
}

static int teardown_dir(void **state)
{
        (void)state;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

/* A configuration in memory (what exb_conf_load would fill). */
typedef struct {
        exb_publisher_conf_t c;
        exb_conf_kv_t tables[8];
        exb_conf_kv_t kafka[8];
} tconf_t;

static void tconf_init(tconf_t *t, const char *brokers)
{
        memset(t, 0, sizeof(*t));
        t->c.dept = "GA";
        t->c.brokers = (char *)brokers;
        t->c.data_dir = tmpdir;
        t->c.source_type = "sqlite";
        t->c.source_path = dbpath;
        t->c.poll_interval_ms = 20;
        t->c.batch_size = 100;
        t->c.tables.kvs = t->tables;
        t->c.kafka.kvs = t->kafka;
        t->c.where = "producer.conf";
}

static void tconf_table(tconf_t *t, const char *table, const char *code)
{
        t->tables[t->c.tables.cnt++] = (exb_conf_kv_t){(char *)table, (char *)code};
}

static void tconf_kafka(tconf_t *t, const char *k, const char *v)
{
        t->kafka[t->c.kafka.cnt++] = (exb_conf_kv_t){(char *)k, (char *)v};
}

/* ------------------------------------------------------------ configuration */

static void test_conf_file(void **state)
{
        (void)state;
        exb_publisher_conf_t c;
        char es[512] = "";
        assert_int_equal(
                exb_conf_load(exb_publisher_props, &c, "data/producer_ok.conf", es, sizeof(es)), 0);
        assert_int_equal(
                exb_conf_check(exb_publisher_props, &c, "data/producer_ok.conf", es, sizeof(es)),
                0);
        assert_string_equal(c.dept, "GA");
        assert_string_equal(c.source_type, "sqlite");
        assert_string_equal(c.source_path, "/var/lib/ga/ga.db");
        assert_string_equal(c.data_dir, "/var/lib/exbus/producer");
        assert_int_equal(c.poll_interval_ms, 50);
        assert_int_equal(c.batch_size, 500);
        assert_int_equal(c.tables.cnt, 2);
        assert_string_equal(exb_conf_kv_get(&c.tables, "person"), P1);
        assert_string_equal(exb_conf_kv_get(&c.tables, "marriage"), P9);
        assert_string_equal(exb_conf_kv_get(&c.kafka, "linger.ms"), "20");
        exb_conf_free(exb_publisher_props, &c);

        static const struct {
                const char *file, *err;
        } bad[] = {
                {"data/producer_unknown.conf",
                 "data/producer_unknown.conf:2: unknown key \"sorce.path\" (did you mean "
                 "\"source.path\"?)"},
                {"data/producer_type.conf",
                 "data/producer_type.conf:2: \"source.type\": invalid value \"oracle\" (one of "
                 "sqlite|files)"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                es[0] = '\0';
                assert_int_equal(
                        exb_conf_load(exb_publisher_props, &c, bad[i].file, es, sizeof(es)), -1);
                assert_string_equal(es, bad[i].err);
                exb_conf_free(exb_publisher_props, &c);
        }
        assert_int_equal(exb_conf_load(exb_publisher_props, &c, "data/producer_missing.conf", es,
                                       sizeof(es)),
                         0);
        assert_int_equal(c.poll_interval_ms, 200); /* defaults */
        assert_int_equal(c.batch_size, 1000);
        assert_string_equal(c.data_dir, ".");
        assert_int_equal(
                exb_conf_check(exb_publisher_props, &c, "producer_missing.conf", es, sizeof(es)),
                -1);
        assert_non_null(strstr(es, "\"dept\""));
        assert_non_null(strstr(es, "source.table."));
        exb_conf_free(exb_publisher_props, &c);
}

/* Configuration against catalog and database: every message names the
 * file, the key, the table, the column and the item. */
static void test_conf_check(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        sql(db, PERSON_DDL "CREATE TABLE person_nokey(name TEXT, region TEXT);"
                           "CREATE TABLE person_noname(id_number TEXT);"
                           "CREATE TABLE marriage(cert_no TEXT, id_number TEXT, reg_date TEXT);"
                           "CREATE TABLE company(credit_code TEXT, name TEXT);"
                           "CREATE VIEW person_v AS SELECT * FROM person;");
        sqlite3_close(db);
        exb_catalog_t *cat = catalog_with("");
        char missing[160];
        snprintf(missing, sizeof(missing), "%s/nope.db", tmpdir);
        static struct {
                const char *table, *code, *err;
                int dept_sc, missing_db;
        } cases[] = {
                {"person", P1, NULL},
                {"PERSON", P1, NULL},
                {"marriage", P9, NULL},
                {"nosuch", P1,
                 "producer.conf: source.table.nosuch = " P1 ": no table \"nosuch\" in "},
                {"person_nokey", P1,
                 "producer.conf: source.table.person_nokey = " P1
                 ": table person_nokey has no column \"id_number\" (key item)"},
                {"person_noname", P1,
                 "producer.conf: source.table.person_noname = " P1
                 ": table person_noname has no column \"name\" (required item)"},
                {"person_v", P1,
                 "producer.conf: source.table.person_v = " P1
                 ": person_v is a view; changes are captured from tables"},
                {"company", "370600-SC-0001",
                 "producer.conf: source.table.company = 370600-SC-0001: resource 370600-SC-0001 is "
                 "provided by SC, not by dept GA"},
                {"person", "370600-XX-0001",
                 "producer.conf: source.table.person = 370600-XX-0001: resource 370600-XX-0001 is "
                 "not "
                 "in the catalog"},
                {"person", P1,
                 "producer.conf: source.table.person = " P1 ": resource " P1
                 " is provided by GA, not by dept SC",
                 1},
                {"person", P1, "producer.conf: source.path ", 0, 1},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                tconf_t t;
                char es[1024] = "";
                tconf_init(&t, NULL);
                tconf_table(&t, cases[i].table, cases[i].code);
                if (cases[i].dept_sc)
                        t.c.dept = "SC";
                if (cases[i].missing_db)
                        t.c.source_path = missing;
                int rc = exb_publisher_check(&t.c, cat, es, sizeof(es));
                if (!cases[i].err) {
                        if (rc)
                                print_error("case %zu: %s\n", i, es);
                        assert_int_equal(rc, 0);
                        continue;
                }
                assert_int_equal(rc, -1);
                if (strncmp(es, cases[i].err, strlen(cases[i].err)))
                        print_error("case %zu:\n got  %s\n want %s\n", i, es, cases[i].err);
                assert_memory_equal(es, cases[i].err, strlen(cases[i].err));
        }
        /* Nothing was changed in the database by checking. */
        db = db_open();
        assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'exb%%'"),
                         0);
        sqlite3_close(db);
        exb_catalog_destroy(cat);
}

/* ------------------------------------------------------------ SQLite source */

typedef struct {
        exb_catalog_t *cat;
        int n;
        exb_source_table_t tables[4];
        exb_schema_t *schemas[4];
        exb_binding_t binds[4];
        exb_source_t *src;
} src_fx_t;

static void src_open(src_fx_t *fx, const char *const *names, const char *const *codes, int n,
                     const char *extra_items)
{
        char es[1024] = "";
        memset(fx, 0, sizeof(*fx));
        fx->cat = catalog_with(extra_items ? extra_items : "");
        fx->n = n;
        for (int i = 0; i < n; i++) {
                const exb_resource_t *res = exb_catalog_resource(fx->cat, codes[i]);
                assert_non_null(res);
                fx->schemas[i] = exb_resource_schema(res, es, sizeof(es));
                assert_non_null(fx->schemas[i]);
                fx->tables[i] = (exb_source_table_t){names[i], res, fx->schemas[i]};
                assert_int_equal(
                        exb_binding_init(&fx->binds[i], res, fx->schemas[i], es, sizeof(es)), 0);
        }
        exb_source_conf_t sc = {"producer.conf", "GA", dbpath, tmpdir, 3};
        fx->src = exb_source_sqlite.open(&sc, es, sizeof(es));
        assert_non_null(fx->src);
        if (exb_source_sqlite.bind(fx->src, fx->tables, n, es, sizeof(es)) ||
            exb_source_sqlite.start(fx->src, es, sizeof(es)))
                print_error("%s\n", es);
        assert_string_equal(es, "");
}

static void src_close(src_fx_t *fx)
{
        exb_source_sqlite.close(fx->src);
        for (int i = 0; i < fx->n; i++) {
                exb_binding_free(&fx->binds[i]);
                exb_schema_destroy(fx->schemas[i]);
        }
        exb_catalog_destroy(fx->cat);
}

static int field(const src_fx_t *fx, int table, const char *name)
{
        int f = exb_schema_field_idx(fx->schemas[table], name);
        assert_true(f >= 0);
        return f;
}

static void assert_str_val(const exb_val_t *v, const char *want)
{
        if (!want) {
                assert_true(v->is_null);
                return;
        }
        assert_false(v->is_null);
        assert_int_equal(v->u.s.len, strlen(want));
        assert_memory_equal(v->u.s.p, want, strlen(want));
}

static int next(src_fx_t *fx, exb_change_t *chg)
{
        char es[512] = "";
        int r = exb_source_sqlite.next(fx->src, chg, es, sizeof(es));
        assert_int_not_equal(r, -1);
        return r;
}

static void test_triggers_idempotent(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        sql(db, PERSON_DDL "CREATE TABLE marriage(cert_no TEXT, id_number TEXT, reg_date TEXT);");
        const char *names[] = {"person", "marriage"}, *codes[] = {P1, P9};
        src_fx_t fx;
        src_open(&fx, names, codes, 2, NULL);
        const char *q = "SELECT group_concat(name || ':' || sql, '\n') FROM (SELECT name, sql FROM "
                        "sqlite_master WHERE type='trigger' ORDER BY name)";
        char *before = strdup(sql_text(db, q));
        char *db_id = strdup(sql_text(db, "SELECT v FROM exb_meta WHERE k='db_id'"));
        assert_int_equal(strlen(db_id), 16);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='trigger'"), 6);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='trigger' AND"
                                     " name IN ('exb_person_ins','exb_person_upd','exb_person_del',"
                                     "'exb_marriage_ins','exb_marriage_upd','exb_marriage_del')"),
                         6);
        src_close(&fx);

        /* Started again: the same triggers, the same database id, nothing else. */
        src_open(&fx, names, codes, 2, NULL);
        assert_string_equal(sql_text(db, q), before);
        assert_string_equal(sql_text(db, "SELECT v FROM exb_meta WHERE k='db_id'"), db_id);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND"
                                     " name LIKE 'exb%%'"),
                         3);
        src_close(&fx);

        /* marriage no longer mapped: its triggers go, person's stay. */
        src_open(&fx, names, codes, 1, NULL);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='trigger'"), 3);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='trigger' AND"
                                     " tbl_name='marriage'"),
                         0);
        sql(db, "INSERT INTO marriage VALUES('C1', '%s', '2020-01-01')", idn(1));
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_changelog"), 0);
        src_close(&fx);
        free(before);
        free(db_id);
        sqlite3_close(db);
}

/* Insert, update, update of an unmapped column, key change, delete: the
 * changelog rows, what next() makes of them, event ids, ack, rewind, reject. */
static void test_capture(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        sql(db, PERSON_DDL "CREATE TABLE marriage(cert_no TEXT, id_number TEXT, reg_date TEXT);");
        const char *names[] = {"person", "marriage"}, *codes[] = {P1, P9};
        src_fx_t fx;
        src_open(&fx, names, codes, 2, NULL);
        char id1[19], id2[19];
        snprintf(id1, sizeof(id1), "%s", idn(1));
        snprintf(id2, sizeof(id2), "%s", idn(2));
        sql(db,
            "INSERT INTO person VALUES('%s', '张三', '1990-01-01', 1.75, 2,"
            " '2026-01-15T08:30:00Z', 1, x'0102ff', 'a note');"
            "UPDATE person SET note = 'not captured';"
            "UPDATE person SET name = '李四', children = 3;"
            "UPDATE person SET id_number = '%s';"
            "DELETE FROM person;"
            "INSERT INTO marriage VALUES('C-1', '%s', '2020-05-20');"
            "UPDATE marriage SET cert_no = 'C-2';",
            id1, id2, id1);
        const char *want[][2] = {
                {"CREATE", NULL}, {"UPDATE", NULL}, {"DELETE", NULL}, {"CREATE", NULL},
                {"DELETE", NULL}, {"CREATE", NULL}, {"DELETE", NULL}, {"CREATE", NULL},
        };
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_changelog"), 8);
        for (int i = 0; i < 8; i++)
                assert_string_equal(
                        sql_text(db, "SELECT op FROM exb_changelog WHERE seq=%d", i + 1),
                        want[i][0]);
        /* A DELETE carries the key columns only, under the item names. */
        char key_only[64];
        snprintf(key_only, sizeof(key_only), "{\"id_number\":\"%s\"}", id1);
        assert_string_equal(sql_text(db, "SELECT data FROM exb_changelog WHERE seq=3"), key_only);
        char composite[80];
        snprintf(composite, sizeof(composite), "{\"cert_no\":\"C-1\",\"id_number\":\"%s\"}", id1);
        assert_string_equal(sql_text(db, "SELECT data FROM exb_changelog WHERE seq=7"), composite);
        assert_int_equal(sql_int(db,
                                 "SELECT ts BETWEEN %lld AND %lld FROM exb_changelog WHERE "
                                 "seq=1",
                                 (long long)exb_now_ms() - 60000, (long long)exb_now_ms() + 1000),
                         1);

        const char *db_id = exb_source_sqlite.id(fx.src);
        char eid[64];
        exb_change_t chg;
        /* 1: CREATE with every captured column; region has no column: null. */
        assert_int_equal(next(&fx, &chg), 1);
        if (chg.error)
                print_error("%s\n", chg.error);
        assert_null(chg.error);
        assert_int_equal(chg.op, EXB_OP_CREATE);
        assert_int_equal(chg.table, 0);
        assert_int_equal(chg.pos, 1);
        snprintf(eid, sizeof(eid), "GA-%s-1", db_id);
        assert_string_equal(chg.event_id, eid);
        assert_int_equal(chg.nvals, fx.schemas[0]->nfields);
        assert_str_val(&chg.vals[field(&fx, 0, "id_number")], id1);
        assert_str_val(&chg.vals[field(&fx, 0, "name")], "张三");
        int64_t days, ms;
        exb_date_parse("1990-01-01", 10, &days);
        assert_int_equal(chg.vals[field(&fx, 0, "birth_date")].u.i, days);
        assert_true(chg.vals[field(&fx, 0, "height")].u.d == 1.75);
        assert_int_equal(chg.vals[field(&fx, 0, "children")].u.i, 2);
        exb_ts_parse("2026-01-15T08:30:00Z", 20, &ms);
        assert_int_equal(chg.vals[field(&fx, 0, "updated_at")].u.i, ms);
        assert_int_equal(chg.vals[field(&fx, 0, "alive")].u.i, 1);
        assert_str_val(&chg.vals[field(&fx, 0, "photo")], "\x01\x02\xff");
        assert_str_val(&chg.vals[field(&fx, 0, "region")], NULL);
        /* 2: UPDATE, full image. */
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.op, EXB_OP_UPDATE);
        assert_str_val(&chg.vals[field(&fx, 0, "name")], "李四");
        assert_int_equal(chg.vals[field(&fx, 0, "children")].u.i, 3);
        /* 3, 4: the key changed: DELETE of the old key, CREATE of the new row. */
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.op, EXB_OP_DELETE);
        assert_str_val(&chg.vals[field(&fx, 0, "id_number")], id1);
        assert_str_val(&chg.vals[field(&fx, 0, "name")], NULL);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.op, EXB_OP_CREATE);
        assert_str_val(&chg.vals[field(&fx, 0, "id_number")], id2);
        assert_str_val(&chg.vals[field(&fx, 0, "name")], "李四");
        /* 5: DELETE, key only. */
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.op, EXB_OP_DELETE);
        assert_str_val(&chg.vals[field(&fx, 0, "id_number")], id2);
        assert_true(chg.vals[field(&fx, 0, "birth_date")].is_null);
        /* 6..8: the composite key of marriage. */
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.table, 1);
        assert_int_equal(chg.op, EXB_OP_CREATE);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.op, EXB_OP_DELETE);
        assert_str_val(&chg.vals[field(&fx, 1, "cert_no")], "C-1");
        assert_str_val(&chg.vals[field(&fx, 1, "id_number")], id1);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.op, EXB_OP_CREATE);
        assert_str_val(&chg.vals[field(&fx, 1, "cert_no")], "C-2");
        assert_int_equal(next(&fx, &chg), 0);

        /* ack: everything up to 4 is forgotten; rewind(0) starts at 5. */
        char es[512] = "";
        assert_int_equal(exb_source_sqlite.ack(fx.src, 4, es, sizeof(es)), 0);
        assert_int_equal(sql_int(db, "SELECT min(seq) FROM exb_changelog"), 5);
        exb_source_sqlite.rewind(fx.src, 0);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.pos, 5);
        /* reject: moved with its reason by the next ack, in one transaction. */
        assert_int_equal(exb_source_sqlite.reject(fx.src, &chg, "a reason", es, sizeof(es)), 0);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_changelog WHERE seq=5"), 1);
        assert_int_equal(exb_source_sqlite.ack(fx.src, 0, es, sizeof(es)), 0);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_changelog WHERE seq=5"), 0);
        assert_string_equal(sql_text(db, "SELECT reason FROM exb_rejects WHERE seq=5"), "a reason");
        snprintf(eid, sizeof(eid), "GA-%s-5", db_id);
        assert_string_equal(sql_text(db, "SELECT event_id FROM exb_rejects WHERE seq=5"), eid);
        assert_string_equal(sql_text(db, "SELECT op || ' ' || tbl FROM exb_rejects"),
                            "DELETE person");
        /* A later change continues the sequence (no reuse of event ids). */
        exb_source_sqlite.rewind(fx.src, 8);
        sql(db, "INSERT INTO person(id_number, name) VALUES('%s', 'x')", id1);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.pos, 9);
        src_close(&fx);
        sqlite3_close(db);
}

/* How SQLite values map to item types, and what is a rejection. */
static void test_value_mapping(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        /* Untyped columns keep what is stored exactly as given. */
        sql(db, "CREATE TABLE vals(id_number, name, birth_date, height, children, updated_at,"
                " alive, photo, region)");
        const char *names[] = {"vals"}, *codes[] = {P1};
        src_fx_t fx;
        src_open(&fx, names, codes, 1, NULL);
        int64_t d20260115, ts;
        exb_date_parse("2026-01-15", 10, &d20260115);
        exb_ts_parse("2026-01-15T08:30:00Z", 20, &ts);
        static const struct {
                const char *col, *lit;
                const char *err; /* NULL: maps */
                int64_t i;       /* expected integer value (D, I, T, L) */
                double d;        /* N */
                const char *s;   /* C, B */
                size_t slen;
        } cases[] = {
                {"birth_date", "'2026-01-15'", NULL, 1},
                {"birth_date", "'15/01/2026'",
                 "item \"birth_date\": \"15/01/2026\" is not a date (YYYY-MM-DD)"},
                {"birth_date", "'2026-02-30'",
                 "item \"birth_date\": \"2026-02-30\" is not a date (YYYY-MM-DD)"},
                {"birth_date", "20260115",
                 "item \"birth_date\": INTEGER 20260115 does not fit type D (date YYYY-MM-DD)"},
                {"height", "1.75", NULL, 0, 1.75},
                {"height", "170", NULL, 0, 170},
                {"height", "'tall'", "item \"height\": TEXT \"tall\" does not fit type N (number)"},
                {"height", "1e999", "changelog data is not a JSON object"},
                {"children", "3", NULL, 3},
                {"children", "2.0", NULL, 2},
                {"children", "2.5", "item \"children\": 2.5 is not an integer"},
                {"children", "'3'", "item \"children\": TEXT \"3\" does not fit type I (integer)"},
                {"updated_at", "'2026-01-15T08:30:00Z'", NULL, 2},
                {"updated_at", "'2026-01-15 16:30:00+08:00'", NULL, 2},
                {"updated_at", "1768465800000", NULL, 1768465800000LL},
                {"updated_at", "'yesterday'",
                 "item \"updated_at\": \"yesterday\" is not an ISO-8601 timestamp"},
                {"updated_at", "1.5",
                 "item \"updated_at\": REAL 1.5 does not fit type T (ISO-8601 text or epoch ms)"},
                {"alive", "1", NULL, 1},
                {"alive", "0", NULL, 0},
                {"alive", "2", "item \"alive\": 2 is not a boolean (0 or 1)"},
                {"alive", "'yes'", "item \"alive\": TEXT \"yes\" does not fit type L (0 or 1)"},
                {"photo", "x'00ff10'", NULL, 0, 0, "\x00\xff\x10", 3},
                {"photo", "x''", NULL, 0, 0, "", 0},
                {"photo", "'abc'", "item \"photo\": TEXT \"abc\" does not fit type B (BLOB)"},
                {"region", "x'41'", "item \"region\": a BLOB does not fit type C (text)"},
                {"region", "370602", NULL, 0, 0, "370602", 6},
                {"region", "'a\"b\\\\c'", NULL, 0, 0, "a\"b\\\\c", 6},
                {"region", "1.5", "item \"region\": REAL 1.5 does not fit type C (text)"},
                {"name", "NULL", NULL}, /* mapped as null; validation rejects it (required) */
        };
        char es[512];
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                sql(db, "DELETE FROM vals; DELETE FROM exb_changelog;");
                exb_source_sqlite.rewind(fx.src, 0);
                if (!strcmp(cases[i].col, "name"))
                        sql(db, "INSERT INTO vals(id_number, name) VALUES('%s', %s)", idn(1),
                            cases[i].lit);
                else
                        sql(db, "INSERT INTO vals(id_number, name, %s) VALUES('%s', 'n', %s)",
                            cases[i].col, idn(1), cases[i].lit);
                exb_change_t chg;
                assert_int_equal(next(&fx, &chg), 1);
                if (cases[i].err) {
                        if (!chg.error || strncmp(chg.error, cases[i].err, strlen(cases[i].err)))
                                print_error("case %zu (%s = %s): got %s\n", i, cases[i].col,
                                            cases[i].lit, chg.error ? chg.error : "(mapped)");
                        assert_non_null(chg.error);
                        assert_memory_equal(chg.error, cases[i].err, strlen(cases[i].err));
                        continue;
                }
                if (chg.error)
                        print_error("case %zu (%s = %s): %s\n", i, cases[i].col, cases[i].lit,
                                    chg.error);
                assert_null(chg.error);
                const exb_val_t *v = &chg.vals[field(&fx, 0, cases[i].col)];
                switch (fx.schemas[0]->fields[field(&fx, 0, cases[i].col)].type) {
                case EXB_T_DATE:
                        assert_int_equal(v->u.i, d20260115);
                        break;
                case EXB_T_TIMESTAMP:
                        assert_int_equal(v->u.i, cases[i].i == 2 ? ts : cases[i].i);
                        break;
                case EXB_T_INT:
                case EXB_T_BOOL:
                        assert_int_equal(v->u.i, cases[i].i);
                        break;
                case EXB_T_NUMBER:
                        assert_true(v->u.d == cases[i].d);
                        break;
                case EXB_T_STRING:
                case EXB_T_BYTES:
                        if (!cases[i].s) {
                                assert_true(v->is_null);
                                /* ...and the validator says why it may not leave. */
                                exb_record_t rec = {chg.op,        exb_str(chg.event_id),
                                                    exb_str("GA"), 0,
                                                    chg.nvals,     chg.vals};
                                assert_int_equal(exb_validate(&fx.binds[0], &rec, es, sizeof(es)),
                                                 EXB_ERR_INVALID);
                                assert_string_equal(es, P1 ": item \"name\": required item is "
                                                           "missing");
                                break;
                        }
                        assert_false(v->is_null);
                        assert_int_equal(v->u.s.len, cases[i].slen);
                        assert_memory_equal(v->u.s.p, cases[i].s, cases[i].slen);
                        break;
                }
        }
        src_close(&fx);
        sqlite3_close(db);
}

/* A table wider than json_object()'s 63 pairs: chunks merged by json_patch. */
static void test_wide_table(void **state)
{
        (void)state;
        enum { N = 150 };
        char *items = calloc(1, 64 * N), *ddl = calloc(1, 32 * N), *ins = calloc(1, 32 * N);
        for (int i = 0; i < N; i++) {
                sprintf(items + strlen(items), ", {\"name\": \"c%d\", \"type\": \"I\"}", i);
                sprintf(ddl + strlen(ddl), ", c%d INTEGER", i);
                sprintf(ins + strlen(ins), ", %d", i % 7 == 3 ? -1 : i * 10);
        }
        sqlite3 *db = db_open();
        sql(db, "CREATE TABLE wide(id_number TEXT, name TEXT, region TEXT%s)", ddl);
        const char *names[] = {"wide"}, *codes[] = {P1};
        src_fx_t fx;
        src_open(&fx, names, codes, 1, items);
        assert_int_equal(fx.schemas[0]->nfields, 9 + N);
        sql(db, "INSERT INTO wide VALUES('%s', 'w', NULL%s)", idn(3), ins);
        sql(db, "UPDATE wide SET c149 = NULL, c0 = 5");
        sql(db, "UPDATE wide SET c77 = 1");
        exb_change_t chg;
        char name[16];
        for (int round = 0; round < 3; round++) {
                assert_int_equal(next(&fx, &chg), 1);
                assert_null(chg.error);
                for (int i = 0; i < N; i++) {
                        snprintf(name, sizeof(name), "c%d", i);
                        const exb_val_t *v = &chg.vals[field(&fx, 0, name)];
                        if (round >= 1 && i == 149) {
                                assert_true(v->is_null);
                                continue;
                        }
                        assert_false(v->is_null);
                        int64_t want = i % 7 == 3 ? -1 : i * 10;
                        if (round >= 1 && i == 0)
                                want = 5;
                        if (round == 2 && i == 77)
                                want = 1;
                        assert_int_equal(v->u.i, want);
                }
        }
        assert_int_equal(next(&fx, &chg), 0);
        src_close(&fx);
        sqlite3_close(db);
        free(items);
        free(ddl);
        free(ins);
}

static void test_snapshot_reads(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        sql(db, PERSON_DDL);
        for (int i = 0; i < 7; i++)
                sql(db, "INSERT INTO person(id_number, name, alive) VALUES('%s', 'p%d', %d)",
                    idn(i), i, i == 4 ? 9 : 1);
        const char *names[] = {"person"}, *codes[] = {P1};
        src_fx_t fx;
        src_open(&fx, names, codes, 1, NULL); /* batch of 3 rows */
        int64_t total, done;
        assert_int_equal(exb_source_sqlite.snapshot_count(fx.src, 0, 2, &total, &done), 0);
        assert_int_equal(total, 7);
        assert_int_equal(done, 2);
        exb_change_t chg;
        char es[512] = "", eid[64];
        int64_t after = 2;
        for (int i = 2; i < 7; i++) {
                assert_int_equal(
                        exb_source_sqlite.snapshot_next(fx.src, 0, after, 7, &chg, es, sizeof(es)),
                        1);
                assert_int_equal(chg.op, EXB_OP_SNAPSHOT);
                assert_int_equal(chg.pos, i + 1);
                snprintf(eid, sizeof(eid), "GA-%s-snap7-%d", exb_source_sqlite.id(fx.src), i + 1);
                assert_string_equal(chg.event_id, eid);
                if (i == 4) {
                        assert_string_equal(chg.error,
                                            "item \"alive\": 9 is not a boolean (0 or 1)");
                        assert_int_equal(
                                exb_source_sqlite.reject(fx.src, &chg, chg.error, es, sizeof(es)),
                                0);
                        assert_int_equal(exb_source_sqlite.ack(fx.src, 0, es, sizeof(es)), 0);
                } else {
                        assert_null(chg.error);
                        assert_str_val(&chg.vals[field(&fx, 0, "id_number")], idn(i));
                }
                after = chg.pos;
        }
        assert_int_equal(exb_source_sqlite.snapshot_next(fx.src, 0, after, 7, &chg, es, sizeof(es)),
                         0);
        /* A position that is not where the batch stopped re-reads from there. */
        assert_int_equal(exb_source_sqlite.snapshot_next(fx.src, 0, 0, 7, &chg, es, sizeof(es)), 1);
        assert_int_equal(chg.pos, 1);
        snprintf(eid, sizeof(eid), "GA-%s-snap7-5", exb_source_sqlite.id(fx.src));
        assert_string_equal(sql_text(db, "SELECT event_id FROM exb_rejects WHERE op='SNAPSHOT'"),
                            eid);
        /* Reading a snapshot captures nothing. */
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_changelog"), 0);
        src_close(&fx);
        sqlite3_close(db);
}

/* ------------------------------------------------- restart recovery, pure */

/* The event id is read from the first bytes of a framed value, bounded. */
static void test_peek_event_id(void **state)
{
        (void)state;
        char es[512] = "";
        exb_catalog_t *cat = catalog_with("");
        exb_schema_t *schema = exb_resource_schema(exb_catalog_resource(cat, P9), es, sizeof(es));
        assert_non_null(schema);
        schema->id = 4242;
        exb_val_t vals[3] = {{.u.s = EXB_STR("M1")}, {.u.s = EXB_STR("X")}, {.is_null = 1}};
        static const char *const eids[] = {"GA-0123456789abcdef-7", "", "GA-x-snap3-12345678901"};
        for (int op = 0; op < EXB_OP_CNT; op++) {
                for (size_t k = 0; k < EXB_ARRAY_CNT(eids); k++) {
                        exb_record_t rec = {(exb_op_t)op, exb_str(eids[k]), EXB_STR("GA"), 1, 3,
                                            vals};
                        exb_buf_t b;
                        exb_buf_init(&b, 0);
                        assert_int_equal(exb_codec_encode(schema, &rec, &b, es, sizeof(es)),
                                         EXB_OK);
                        const char *eid = NULL;
                        size_t len = 99;
                        assert_int_equal(exb_pub_peek_event_id(b.p, b.len, &eid, &len), 0);
                        assert_int_equal(len, strlen(eids[k]));
                        assert_memory_equal(eid, eids[k], len);
                        /* Cut anywhere inside op or event_id: refused, never read past. */
                        size_t need = 5 + 1 + 1 + strlen(eids[k]) + (strlen(eids[k]) > 63);
                        for (size_t cut = 0; cut < need; cut++) {
                                uint8_t *copy = malloc(cut + 1);
                                memcpy(copy, b.p, cut);
                                assert_int_equal(exb_pub_peek_event_id(copy, cut, &eid, &len), -1);
                                free(copy);
                        }
                        exb_buf_free(&b);
                }
        }
        static const struct {
                const char *bytes;
                size_t len;
        } bad[] = {
                {"\x01\0\0\0\x01\x00\x02"
                 "a",
                 8}, /* magic */
                {"\0\0\0\0\x01\x08\x02"
                 "a",
                 8}, /* op 4: no such enum symbol */
                {"\0\0\0\0\x01\x01\x02"
                 "a",
                 8}, /* op -1 */
                {"\0\0\0\0\x01\x00\x03"
                 "a",
                 8}, /* length -2 */
                {"\0\0\0\0\x01\x00\x04"
                 "a",
                 8}, /* length 2, 1 byte left */
                {"\0\0\0\0\x01\x00\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 16}, /* huge */
                {"\0\0\0\0\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",
                 16}, /* 11-byte varint */
                {NULL, 0},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(bad); i++) {
                const char *eid;
                size_t len;
                assert_int_equal(exb_pub_peek_event_id(bad[i].bytes, bad[i].len, &eid, &len), -1);
        }
        /* Random bytes: any answer, but within the buffer (ASan watches). */
        srand(7);
        for (int i = 0; i < 20000; i++) {
                size_t n = (size_t)(rand() % 24);
                uint8_t *buf = malloc(n + 1);
                for (size_t j = 0; j < n; j++)
                        buf[j] = (uint8_t)rand();
                if (n)
                        buf[0] = rand() % 4 ? 0 : buf[0];
                const char *eid;
                size_t len;
                if (exb_pub_peek_event_id(buf, n, &eid, &len) == 0)
                        assert_true(eid >= (const char *)buf && eid + len <= (const char *)buf + n);
                free(buf);
        }
        exb_schema_destroy(schema);
        exb_catalog_destroy(cat);
}

/* Which changes of the window count as delivered: per topic and key, the
 * present prefix; after a missing change, that key's later changes go
 * again (even if present), other keys are not affected. */
static void test_recovery_plan(void **state)
{
        (void)state;
        static const struct {
                const char *what;
                const char *keys;    /* one letter per change, in source order */
                const char *topics;  /* topic per change ('0'/'1'), NULL: all 0 */
                const char *present; /* '1' found on Kafka */
                const char *skip;    /* expected */
        } cases[] = {
                {"nothing in flight", "", NULL, "", ""},
                {"all present", "abcab", NULL, "11111", "11111"},
                {"none present", "abc", NULL, "000", "000"},
                {"a tail missing", "abcab", NULL, "11100", "11100"},
                {"a gap of key a: its later change goes again", "aab", NULL, "011", "001"},
                {"key b missing does not hold back key a", "aba", NULL, "101", "101"},
                {"a gap of key a, key b unaffected", "abab", NULL, "0111", "0101"},
                {"a missing change, then a present one of another key", "ab", NULL, "01", "01"},
                {"same key, two topics: two records", "aa", "01", "01", "01"},
                {"gap on topic 0 only", "aaa", "010", "011", "010"},
                {"present after two gaps", "aaaa", NULL, "1011", "1000"},
        };
        for (size_t c = 0; c < EXB_ARRAY_CNT(cases); c++) {
                int n = (int)strlen(cases[c].keys);
                exb_pubrec_ent_t ents[16];
                char eids[16][16];
                int want = 0;
                for (int i = 0; i < n; i++) {
                        snprintf(eids[i], sizeof(eids[i]), "e%d", i);
                        ents[i] = (exb_pubrec_ent_t){
                                .pos = 10 + 3 * i,
                                .topic = cases[c].topics ? cases[c].topics[i] - '0' : 0,
                                .key = &cases[c].keys[i],
                                .key_len = 1,
                                .event_id = eids[i],
                                .present = cases[c].present[i] == '1',
                                .skip = 7};
                        want += cases[c].skip[i] == '1';
                }
                int got = exb_pub_recovery_plan(ents, n);
                char skip[17] = "";
                for (int i = 0; i < n; i++)
                        skip[i] = ents[i].skip ? '1' : '0';
                if (strcmp(skip, cases[c].skip) || got != want)
                        print_error("%s: skip %s, want %s\n", cases[c].what, skip, cases[c].skip);
                assert_string_equal(skip, cases[c].skip);
                assert_int_equal(got, want);
        }
}

/* -------------------------------------------------- on the embedded broker */

static struct {
        exb_embedded_t *emb;
        const char *brokers;
        exb_control_t *ctl;
} B;

static int setup_broker(void **state)
{
        (void)state;
        char es[512] = "";
        B.emb = exb_embedded_new(1, es, sizeof(es));
        if (!B.emb) {
                fprintf(stderr, "%s\n", es);
                return -1;
        }
        B.brokers = exb_embedded_bootstraps(B.emb);
        exb_topic_spec_t specs[] = {{EXB_CONTROL_TOPIC, 1, 1},
                                    {"exb.ingest.GA." P1, 1, 0},
                                    {"exb.ingest.GA." P9, 2, 0}};
        if (exb_admin_ensure_topics(B.brokers, NULL, 0, specs, 3, 10000, es, sizeof(es)) ||
            !(B.ctl = exb_control_new(B.brokers, NULL, 0, NULL, 10000, es, sizeof(es)))) {
                fprintf(stderr, "%s\n", es);
                return -1;
        }
        exb_catalog_t *cat = catalog_with("");
        exb_err_t err = exb_control_import(B.ctl, cat, NULL, NULL, es, sizeof(es));
        exb_catalog_destroy(cat);
        if (err != EXB_OK) {
                fprintf(stderr, "import: %s\n", es);
                return -1;
        }
        return 0;
}

static int teardown_broker(void **state)
{
        (void)state;
        exb_control_destroy(B.ctl);
        exb_embedded_destroy(B.emb);
        return 0;
}

typedef struct {
        exb_op_t op;
        char event_id[64];
        char key[64];
        char id_number[32];
        char name[64];
        int32_t schema_id;
        int has_nickname;
        char nickname[32];
} got_t;

/* Reads topic (all partitions, in partition order) from `from`[p] on until
 * `want` records arrived or 10 s passed; decodes them. Returns the count. */
static int read_topic(const char *topic, int nparts, int64_t *from, got_t *got, int want)
{
        char es[512] = "";
        exb_consumer_t *c = exb_consumer_new(B.brokers, NULL, NULL, 0, NULL, es, sizeof(es));
        assert_non_null(c);
        for (int p = 0; p < nparts; p++)
                assert_int_equal(
                        exb_consumer_assign(c, topic, p, from ? from[p] : 0, es, sizeof(es)),
                        EXB_OK);
        int n = 0;
        int64_t deadline = exb_mono_ms() + 10000;
        exb_msg_t msgs[64];
        exb_val_t vals[64];
        while (n < want && exb_mono_ms() < deadline) {
                int k = exb_consumer_poll(c, msgs, 64, 200, es, sizeof(es));
                assert_true(k >= 0);
                for (int i = 0; i < k; i++) {
                        int32_t sid;
                        assert_int_equal(exb_frame_schema_id(msgs[i].value, msgs[i].len, &sid, es,
                                                             sizeof(es)),
                                         EXB_OK);
                        exb_schema_t *schema = exb_control_schema(B.ctl, sid);
                        assert_non_null(schema);
                        exb_record_t rec = {.vals = vals};
                        if (exb_codec_decode(schema, msgs[i].value, msgs[i].len, &rec, es,
                                             sizeof(es)) != EXB_OK)
                                print_error("decode: %s\n", es);
                        assert_string_equal(es, "");
                        if (n < want) {
                                if (from)
                                        from[msgs[i].partition] = msgs[i].offset + 1;
                                got_t *g = &got[n++];
                                memset(g, 0, sizeof(*g));
                                g->op = rec.op;
                                g->schema_id = sid;
                                snprintf(g->event_id, sizeof(g->event_id), "%.*s",
                                         (int)rec.event_id.len, rec.event_id.p);
                                snprintf(g->key, sizeof(g->key), "%.*s", (int)msgs[i].key_len,
                                         (const char *)msgs[i].key);
                                assert_true(exb_str_eq(rec.source, "GA"));
                                int f = exb_schema_field_idx(schema, "id_number");
                                if (!rec.vals[f].is_null)
                                        snprintf(g->id_number, sizeof(g->id_number), "%.*s",
                                                 (int)rec.vals[f].u.s.len, rec.vals[f].u.s.p);
                                f = exb_schema_field_idx(schema, "name");
                                if (f >= 0 && !rec.vals[f].is_null)
                                        snprintf(g->name, sizeof(g->name), "%.*s",
                                                 (int)rec.vals[f].u.s.len, rec.vals[f].u.s.p);
                                f = exb_schema_field_idx(schema, "nickname");
                                if (f >= 0) {
                                        g->has_nickname = 1;
                                        if (!rec.vals[f].is_null)
                                                snprintf(g->nickname, sizeof(g->nickname), "%.*s",
                                                         (int)rec.vals[f].u.s.len,
                                                         rec.vals[f].u.s.p);
                                }
                        }
                        exb_schema_destroy(schema);
                        exb_msg_release(&msgs[i]);
                }
        }
        exb_consumer_destroy(c);
        return n;
}

/* Polls until the changelog is empty and `published` delivered records
 * were counted (or 20 s passed). */
static void pump(exb_publisher_t *pub, sqlite3 *db, uint64_t published)
{
        char es[1024] = "";
        exb_publisher_stats_t st;
        int64_t deadline = exb_mono_ms() + 20000;
        do {
                assert_true(exb_publisher_poll(pub, 20, es, sizeof(es)) >= 0);
                exb_publisher_stats(pub, &st);
        } while ((st.published < published ||
                  sql_int(db, "SELECT count(*) FROM exb_changelog") > 0) &&
                 exb_mono_ms() < deadline);
        assert_true(st.published >= published);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_changelog"), 0);
}

static exb_publisher_t *publisher(tconf_t *t)
{
        char es[1024] = "";
        exb_publisher_t *pub = exb_publisher_new(&t->c, es, sizeof(es));
        if (!pub)
                print_error("%s\n", es);
        assert_non_null(pub);
        return pub;
}

static int64_t ingest_pos[2];

static void test_publish(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        sql(db, PERSON_DDL "CREATE TABLE marriage(cert_no TEXT, id_number TEXT, reg_date TEXT);");
        tconf_t t;
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        tconf_table(&t, "marriage", P9);
        exb_publisher_t *pub = publisher(&t);
        char bad[19];
        snprintf(bad, sizeof(bad), "%s", idn(9));
        bad[17] = bad[17] == '0' ? '1' : '0'; /* wrong check digit */
        sql(db,
            "INSERT INTO person(id_number, name) VALUES('%s', 'A');"
            "INSERT INTO person(id_number, name) VALUES('%s', 'bad id');"
            "INSERT INTO person(id_number, name, alive) VALUES('%s', 'bad alive', 7);"
            "INSERT INTO person(id_number, name) VALUES('%s', 'B');"
            "UPDATE person SET name = 'A2' WHERE id_number = '%s';"
            "UPDATE person SET id_number = '%s' WHERE id_number = '%s';"
            "DELETE FROM person WHERE id_number = '%s';"
            "INSERT INTO marriage VALUES('M1', '%s', '2020-01-01');",
            idn(1), bad, idn(3), idn(2), idn(1), idn(4), idn(2), idn(1), idn(1));
        pump(pub, db, 7);
        exb_publisher_stats_t st;
        exb_publisher_stats(pub, &st);
        assert_int_equal(st.rejected, 2);
        assert_int_equal(st.failed, 0);
        /* The two rejects stay local, with their reasons. */
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_rejects"), 2);
        assert_non_null(strstr(sql_text(db, "SELECT reason FROM exb_rejects WHERE seq=2"),
                               P1 ": item \"id_number\": gb11643: check"));
        assert_string_equal(sql_text(db, "SELECT reason FROM exb_rejects WHERE seq=3"),
                            P1 ": item \"alive\": 7 is not a boolean (0 or 1)");

        char db_id[40];
        snprintf(db_id, sizeof(db_id), "%s",
                 sql_text(db, "SELECT v FROM exb_meta WHERE k='db_id'"));
        got_t got[16];
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 6), 6);
        static const struct {
                exb_op_t op;
                int seq, id;
                const char *name;
        } want[] = {
                {EXB_OP_CREATE, 1, 1, "A"}, {EXB_OP_CREATE, 4, 2, "B"}, {EXB_OP_UPDATE, 5, 1, "A2"},
                {EXB_OP_DELETE, 6, 2, ""},  {EXB_OP_CREATE, 7, 4, "B"}, {EXB_OP_DELETE, 8, 1, ""},
        };
        int32_t sid;
        exb_resource_t *res = exb_control_resource(B.ctl, P1, &sid);
        exb_resource_destroy(res);
        for (int i = 0; i < 6; i++) {
                char eid[64];
                snprintf(eid, sizeof(eid), "GA-%s-%d", db_id, want[i].seq);
                assert_int_equal(got[i].op, want[i].op);
                assert_string_equal(got[i].event_id, eid);
                assert_string_equal(got[i].key, idn(want[i].id));
                assert_string_equal(got[i].id_number, idn(want[i].id));
                assert_string_equal(got[i].name, want[i].name);
                assert_int_equal(got[i].schema_id, sid);
        }
        /* The composite key is joined with '|'. */
        int64_t mpos[2] = {0, 0};
        assert_int_equal(read_topic("exb.ingest.GA." P9, 2, mpos, got, 1), 1);
        char key[64];
        snprintf(key, sizeof(key), "M1|%s", idn(1));
        assert_string_equal(got[0].key, key);
        exb_publisher_destroy(pub);
        sqlite3_close(db);
}

/* The broker goes away while changes are made: reports fail, nothing is
 * acknowledged, nothing skipped; when it is back everything arrives, in order. */
static void test_broker_down(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        tconf_t t;
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        tconf_kafka(&t, "message.timeout.ms", "1500");
        tconf_kafka(&t, "reconnect.backoff.max.ms", "500");
        exb_publisher_t *pub = publisher(&t);
        char es[1024] = "";
        sql(db, "INSERT INTO person(id_number, name) VALUES('%s', 'warm-up')", idn(20));
        pump(pub, db, 1);
        exb_embedded_set_down(B.emb, 1);
        for (int i = 21; i < 26; i++)
                sql(db, "INSERT INTO person(id_number, name) VALUES('%s', 'while down')", idn(i));
        exb_publisher_stats_t st;
        int64_t deadline = exb_mono_ms() + 10000;
        do {
                assert_true(exb_publisher_poll(pub, 50, es, sizeof(es)) >= 0);
                exb_publisher_stats(pub, &st);
        } while (st.failed == 0 && exb_mono_ms() < deadline);
        assert_true(st.failed > 0);
        assert_int_equal(st.published, 1);
        assert_int_equal(sql_int(db, "SELECT count(*) FROM exb_changelog"), 5);
        exb_embedded_set_down(B.emb, 0);
        pump(pub, db, 6);
        got_t got[16];
        int n = read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 6);
        assert_true(n >= 6);
        /* Every change, in order (a duplicate of a change may come again
         * after it, never before: the changelog is retried from the first
         * undelivered change). */
        int want_id = 20;
        for (int i = 0; i < n; i++) {
                if (strcmp(got[i].id_number, idn(want_id)) == 0)
                        want_id++;
        }
        assert_int_equal(want_id, 26);
        exb_publisher_destroy(pub);
        sqlite3_close(db);
}

static void test_snapshot(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        sql(db, "DELETE FROM person; DELETE FROM exb_changelog; DELETE FROM exb_rejects;");
        tconf_t t;
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        t.c.batch_size = 7;
        exb_publisher_t *pub = publisher(&t);
        char es[1024] = "";
        sql(db, "BEGIN");
        for (int i = 100; i < 150; i++)
                sql(db, "INSERT INTO person(id_number, name, alive) VALUES('%s', 's%d', %d)",
                    idn(i), i, i == 110 ? 5 : 0);
        sql(db, "COMMIT");
        pump(pub, db, 49); /* the inserts as changes; one rejected */
        got_t got[64];
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 49), 49);
        int64_t first = sql_int(db, "SELECT min(rowid) FROM person");

        /* A stop flag that is already up: interrupted, nothing lost, resumable. */
        volatile sig_atomic_t stop = 1;
        exb_publisher_set_stop(pub, &stop);
        assert_int_equal(exb_publisher_snapshot(pub, es, sizeof(es)), -1);
        assert_non_null(strstr(es, "snapshot interrupted at table person"));
        stop = 0;
        assert_int_equal(exb_publisher_snapshot(pub, es, sizeof(es)), 50);
        exb_publisher_stats_t st;
        exb_publisher_stats(pub, &st);
        assert_int_equal(st.snapshot, 49);
        assert_int_equal(st.rejected, 2);
        char db_id[40];
        snprintf(db_id, sizeof(db_id), "%s",
                 sql_text(db, "SELECT v FROM exb_meta WHERE k='db_id'"));
        char eid[80];
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 49), 49);
        for (int i = 0, row = 0; i < 49; i++, row++) {
                if (row == 10)
                        row++; /* the rejected row */
                assert_int_equal(got[i].op, EXB_OP_SNAPSHOT);
                snprintf(eid, sizeof(eid), "GA-%s-snap1-%lld", db_id, (long long)(first + row));
                assert_string_equal(got[i].event_id, eid);
                assert_string_equal(got[i].id_number, idn(100 + row));
        }
        snprintf(eid, sizeof(eid), "GA-%s-snap1-%lld", db_id, (long long)first + 10);
        assert_string_equal(sql_text(db, "SELECT reason FROM exb_rejects WHERE event_id='%s'", eid),
                            P1 ": item \"alive\": 5 is not a boolean (0 or 1)");

        /* As if killed after 20 rows of run 2: the run resumes after them. */
        char state_path[160];
        snprintf(state_path, sizeof(state_path), "%s/producer-state.db", tmpdir);
        sqlite3 *sdb;
        assert_int_equal(sqlite3_open(state_path, &sdb), SQLITE_OK);
        assert_int_equal(sql_int(sdb, "SELECT count(*) FROM snapshot_runs WHERE finished IS NOT "
                                      "NULL"),
                         1);
        sql(sdb,
            "INSERT INTO snapshot_runs VALUES(2, '%s', '2026-01-01T00:00:00Z', NULL);"
            "INSERT INTO snapshot_progress VALUES(2, 'person', %lld, 0)",
            db_id, (long long)first + 19);
        assert_int_equal(exb_publisher_snapshot(pub, es, sizeof(es)), 30);
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 30), 30);
        snprintf(eid, sizeof(eid), "GA-%s-snap2-%lld", db_id, (long long)first + 20);
        assert_string_equal(got[0].event_id, eid);
        assert_string_equal(got[0].id_number, idn(120));
        /* The next one is a new run. */
        assert_int_equal(exb_publisher_snapshot(pub, es, sizeof(es)), 50);
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 49), 49);
        snprintf(eid, sizeof(eid), "GA-%s-snap3-%lld", db_id, (long long)first);
        assert_string_equal(got[0].event_id, eid);
        assert_int_equal(sql_int(sdb, "SELECT count(*) FROM snapshot_runs WHERE finished IS NULL"),
                         0);
        sqlite3_close(sdb);
        exb_publisher_destroy(pub);
        sqlite3_close(db);
}

/* A compatible new version of the resource (an optional item added) is
 * picked up without restart: the new column is captured, records carry the
 * new schema id. */
static void test_new_version(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        /* Changed while no agent runs: published at the next start. */
        sql(db, "DELETE FROM person; ALTER TABLE person ADD COLUMN nickname TEXT;");
        tconf_t t;
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        exb_publisher_t *pub = publisher(&t);
        /* Consume the deletes of the previous test's rows. */
        pump(pub, db, 50);
        got_t got[64];
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 50), 50);
        int32_t sid1;
        exb_resource_destroy(exb_control_resource(B.ctl, P1, &sid1));

        char es[1024] = "";
        exb_catalog_t *cat = catalog_with(", {\"name\": \"nickname\", \"type\": \"C\"}");
        assert_int_equal(exb_control_import(B.ctl, cat, NULL, NULL, es, sizeof(es)), EXB_OK);
        exb_catalog_destroy(cat);
        int32_t sid2;
        exb_resource_destroy(exb_control_resource(B.ctl, P1, &sid2));
        assert_true(sid2 > sid1);
        /* Let the publisher see the control record before the change. */
        int64_t deadline = exb_mono_ms() + 5000;
        while (!strstr(sql_text(db, "SELECT sql FROM sqlite_master WHERE name='exb_person_ins'"),
                       "nickname") &&
               exb_mono_ms() < deadline)
                assert_true(exb_publisher_poll(pub, 20, es, sizeof(es)) >= 0);
        sql(db, "INSERT INTO person(id_number, name, nickname) VALUES('%s', 'N', 'nick')",
            idn(200));
        pump(pub, db, 51);
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 1), 1);
        assert_int_equal(got[0].schema_id, sid2);
        assert_true(got[0].has_nickname);
        assert_string_equal(got[0].nickname, "nick");
        exb_publisher_destroy(pub);
        sqlite3_close(db);
}

/* Records on topic (all partitions): the sum of the high watermarks. */
static int64_t topic_end(const char *topic, int nparts)
{
        char es[512] = "";
        exb_consumer_t *c = exb_consumer_new(B.brokers, NULL, NULL, 0, NULL, es, sizeof(es));
        assert_non_null(c);
        int64_t sum = 0;
        for (int p = 0; p < nparts; p++) {
                int64_t lo, hi;
                assert_int_equal(exb_consumer_watermarks(c, topic, p, &lo, &hi, 10000), EXB_OK);
                sum += hi;
        }
        exb_consumer_destroy(c);
        return sum;
}

/* As if the last run were killed after Kafka took the changes after
 * `after` but before the changelog forgot them: they are put back (from
 * the copy exb_bak made before they were published) and the run is marked
 * unclean. */
static void as_if_killed(sqlite3 *db, const char *where_bak)
{
        char path[160];
        snprintf(path, sizeof(path), "%s/producer-state.db", tmpdir);
        sqlite3 *sdb;
        assert_int_equal(sqlite3_open(path, &sdb), SQLITE_OK);
        assert_int_equal(sql_int(sdb, "SELECT clean FROM stream_state"), 1); /* a clean stop */
        sql(sdb, "UPDATE stream_state SET clean = 0");
        sqlite3_close(sdb);
        sql(db, "INSERT INTO exb_changelog SELECT * FROM exb_bak WHERE %s", where_bak);
}

/* Kill -9 after Kafka took changes (both topics, three partitions): the
 * next run sends none of them again, sends what came after, and a clean
 * stop makes the following start read nothing back. */
static void test_restart_no_duplicate(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        tconf_t t;
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        tconf_table(&t, "marriage", P9);
        t.c.batch_size = 10; /* 100 in flight at most */
        exb_publisher_t *pub = publisher(&t);
        pump(pub, db, 0);
        exb_publisher_destroy(pub);
        int64_t p1 = topic_end("exb.ingest.GA." P1, 1), p9 = topic_end("exb.ingest.GA." P9, 2);
        ingest_pos[0] = p1;

        sql(db, "DELETE FROM person; DELETE FROM marriage; DELETE FROM exb_changelog;"
                "BEGIN");
        for (int i = 300; i < 340; i++)
                sql(db,
                    "INSERT INTO person(id_number, name) VALUES('%s', 'r%d');"
                    "INSERT INTO marriage VALUES('C%d', '%s', '2021-02-03');",
                    idn(i), i, i, idn(i));
        sql(db, "UPDATE person SET name = name || 'u' WHERE id_number < '%s'", idn(320));
        sql(db, "DELETE FROM marriage WHERE cert_no >= 'C330'; COMMIT");
        int64_t nchg = sql_int(db, "SELECT count(*) FROM exb_changelog");
        assert_int_equal(nchg, 40 + 40 + 20 + 10);
        sql(db,
            "DROP TABLE IF EXISTS exb_bak; CREATE TABLE exb_bak AS SELECT * FROM exb_changelog");
        pub = publisher(&t);
        pump(pub, db, (uint64_t)nchg);
        exb_publisher_destroy(pub);
        assert_int_equal(topic_end("exb.ingest.GA." P1, 1) - p1, 60);
        assert_int_equal(topic_end("exb.ingest.GA." P9, 2) - p9, 50);

        /* The last 90 were on Kafka but not yet forgotten; 5 more changes. */
        as_if_killed(db, "seq >= (SELECT min(seq) + 20 FROM exb_bak)");
        for (int i = 340; i < 345; i++)
                sql(db, "INSERT INTO person(id_number, name) VALUES('%s', 'after')", idn(i));
        pub = publisher(&t);
        exb_publisher_stats_t st;
        pump(pub, db, 5);
        exb_publisher_stats(pub, &st);
        assert_int_equal(st.recovered, 90);
        assert_int_equal(st.published, 5);
        exb_publisher_destroy(pub);
        assert_int_equal(topic_end("exb.ingest.GA." P1, 1) - p1, 65);
        assert_int_equal(topic_end("exb.ingest.GA." P9, 2) - p9, 50);
        got_t got[70];
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 65), 65);
        for (int i = 0; i < 65; i++)
                for (int j = 0; j < i; j++)
                        assert_string_not_equal(got[i].event_id, got[j].event_id);
        assert_string_equal(got[64].id_number, idn(344));

        /* After a clean stop the same situation is not looked at: the
         * changes would go again (this is what the clean mark saves). */
        char path[160];
        snprintf(path, sizeof(path), "%s/producer-state.db", tmpdir);
        sqlite3 *sdb;
        assert_int_equal(sqlite3_open(path, &sdb), SQLITE_OK);
        assert_int_equal(sql_int(sdb, "SELECT clean FROM stream_state"), 1);
        sqlite3_close(sdb);
        sqlite3_close(db);
}

/* A change missing on Kafka between two present ones of the same key: the
 * first is skipped, the missing one and the next are sent again, in order,
 * so the newest state of the key arrives last. */
static void test_restart_gap(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        tconf_t t;
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        exb_publisher_t *pub = publisher(&t);
        pump(pub, db, 0);
        exb_publisher_destroy(pub);
        ingest_pos[0] = topic_end("exb.ingest.GA." P1, 1);
        sql(db,
            "DELETE FROM exb_changelog;"
            "INSERT INTO person(id_number, name) VALUES('%s', 'v1');"
            "UPDATE person SET name = 'v2', alive = 7 WHERE id_number = '%s';" /* rejected */
            "UPDATE person SET name = 'v3', alive = 1 WHERE id_number = '%s';"
            "INSERT INTO person(id_number, name) VALUES('%s', 'other');",
            idn(400), idn(400), idn(400), idn(401));
        sql(db,
            "DROP TABLE IF EXISTS exb_bak; CREATE TABLE exb_bak AS SELECT * FROM exb_changelog");
        int64_t s1 = sql_int(db, "SELECT min(seq) FROM exb_bak");
        pub = publisher(&t);
        pump(pub, db, 3);
        exb_publisher_destroy(pub);
        got_t got[8];
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 3), 3);
        assert_string_equal(got[1].name, "v3");

        /* v2 as it should have been: Kafka lacks it, has v1 and v3. */
        sql(db, "UPDATE exb_bak SET data = json_set(data, '$.alive', 0) WHERE seq = %lld",
            (long long)s1 + 1);
        as_if_killed(db, "1");
        pub = publisher(&t);
        pump(pub, db, 2);
        exb_publisher_stats_t st;
        exb_publisher_stats(pub, &st);
        assert_int_equal(st.recovered, 2); /* v1 and `other` */
        assert_int_equal(st.published, 2); /* v2, v3 again */
        exb_publisher_destroy(pub);
        assert_int_equal(topic_end("exb.ingest.GA." P1, 1) - ingest_pos[0], 2);
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got, 2), 2);
        assert_string_equal(got[0].name, "v2");
        assert_string_equal(got[1].name, "v3");
        sqlite3_close(db);
}

/* A snapshot killed with rows in flight: resumed, the rows Kafka has are
 * not sent again, the rest are. */
static void test_restart_snapshot(void **state)
{
        (void)state;
        sqlite3 *db = db_open();
        tconf_t t;
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        t.c.batch_size = 8;
        got_t got_buf[8];
        exb_publisher_t *pub = publisher(&t);
        pump(pub, db, 0);
        int64_t rows = sql_int(db, "SELECT count(*) FROM person");
        assert_true(rows >= 40);
        int64_t before = topic_end("exb.ingest.GA." P1, 1);
        char es[1024] = "";
        assert_int_equal(exb_publisher_snapshot(pub, es, sizeof(es)), rows);
        assert_int_equal(topic_end("exb.ingest.GA." P1, 1) - before, rows);
        exb_publisher_destroy(pub);

        /* Killed with progress saved at row 10 and everything after it on
         * Kafka, except the last 5 rows (never produced). */
        char path[160];
        snprintf(path, sizeof(path), "%s/producer-state.db", tmpdir);
        sqlite3 *sdb;
        assert_int_equal(sqlite3_open(path, &sdb), SQLITE_OK);
        int run = (int)sql_int(sdb, "SELECT max(run) FROM snapshot_runs");
        assert_int_equal(sql_int(sdb, "SELECT count(*) FROM snapshot_inflight"), 0);
        int64_t at = sql_int(db, "SELECT rowid FROM person ORDER BY rowid LIMIT 1 OFFSET 9");
        sql(sdb,
            "UPDATE snapshot_runs SET finished = NULL WHERE run = %d;"
            "UPDATE snapshot_progress SET last_pos = %lld, done = 0 WHERE run = %d;"
            "INSERT INTO snapshot_inflight VALUES(%d, 'person', 80)",
            run, (long long)at, run, run);
        int64_t end = topic_end("exb.ingest.GA." P1, 1);
        ingest_pos[0] = end;
        sql(db, "BEGIN");
        for (int i = 500; i < 505; i++)
                sql(db, "INSERT INTO person(id_number, name) VALUES('%s', 'new')", idn(i));
        sql(db, "COMMIT");
        pub = publisher(&t);
        pump(pub, db, 5); /* the 5 inserts as changes */
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got_buf, 5), 5);
        assert_int_equal(exb_publisher_snapshot(pub, es, sizeof(es)), rows + 5 - 10);
        exb_publisher_stats_t st;
        exb_publisher_stats(pub, &st);
        assert_int_equal(st.recovered, rows - 10);
        assert_int_equal(st.snapshot, 5);
        assert_int_equal(read_topic("exb.ingest.GA." P1, 1, ingest_pos, got_buf, 5), 5);
        for (int i = 0; i < 5; i++) {
                assert_int_equal(got_buf[i].op, EXB_OP_SNAPSHOT);
                assert_string_equal(got_buf[i].id_number, idn(500 + i));
        }
        assert_int_equal(topic_end("exb.ingest.GA." P1, 1) - end, 10);
        assert_int_equal(sql_int(sdb, "SELECT count(*) FROM snapshot_inflight"), 0);
        sqlite3_close(sdb);
        exb_publisher_destroy(pub);
        sqlite3_close(db);
}

/* exb_publisher_new refuses a configuration before touching the database. */
static void test_new_refuses(void **state)
{
        (void)state;
        tconf_t t;
        char es[1024] = "";
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", "370600-SC-0001");
        assert_null(exb_publisher_new(&t.c, es, sizeof(es)));
        assert_string_equal(es, "producer.conf: source.table.person = 370600-SC-0001: resource "
                                "370600-SC-0001 is provided by SC, not by dept GA");
        tconf_init(&t, B.brokers);
        tconf_table(&t, "person", P1);
        t.c.dept = "";
        assert_null(exb_publisher_new(&t.c, es, sizeof(es)));
        assert_string_equal(es, "producer.conf: missing required key \"dept\"");
}

int main(void)
{
        const struct CMUnitTest local[] = {
                cmocka_unit_test(test_conf_file),
                cmocka_unit_test_setup_teardown(test_conf_check, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_triggers_idempotent, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_capture, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_value_mapping, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_wide_table, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_snapshot_reads, setup_dir, teardown_dir),
                cmocka_unit_test(test_peek_event_id),
                cmocka_unit_test(test_recovery_plan),
        };
        const struct CMUnitTest broker[] = {
                cmocka_unit_test(test_publish),
                cmocka_unit_test(test_broker_down),
                cmocka_unit_test(test_snapshot),
                cmocka_unit_test(test_new_version),
                cmocka_unit_test(test_restart_no_duplicate),
                cmocka_unit_test(test_restart_gap),
                cmocka_unit_test(test_restart_snapshot),
                cmocka_unit_test(test_new_refuses),
        };
        int failed = cmocka_run_group_tests_name("publisher (no broker)", local, NULL, NULL);
        if (setup_dir(NULL))
                return 1;
        failed += cmocka_run_group_tests_name("publisher (embedded broker)", broker, setup_broker,
                                              teardown_broker);
        teardown_dir(NULL);
        return failed;
}
