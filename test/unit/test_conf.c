/*
 * test_conf.c — the properties loader (exb_conf.c), with a table shaped like
 * a producer's. Fixtures in data/conf_*.properties; runs in test/unit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "exb_conf.h"

typedef struct {
        char *dept;
        char *brokers;
        int batch_size;
        int offset;
        int snapshot;
        char *source_type;
        char *source_path;
        char *note;
        exb_conf_kvs_t tables;
        exb_conf_kvs_t kafka;
} tconf_t;

#define OFF(f) offsetof(tconf_t, f)
static const exb_prop_t props[] = {
        {"dept", EXB_PROP_STR, OFF(dept), NULL, NULL, "Department code of this agent.", 1},
        {"brokers", EXB_PROP_STR, OFF(brokers), NULL, "localhost:9092", "Bootstrap brokers."},
        {"batch.size", EXB_PROP_INT, OFF(batch_size), "1..65535", "500", "Records per batch."},
        {"offset", EXB_PROP_INT, OFF(offset), "-10..10", "-1", "A signed setting."},
        {"snapshot", EXB_PROP_BOOL, OFF(snapshot), NULL, "false", "Publish existing rows first."},
        {"source.type", EXB_PROP_ENUM, OFF(source_type), "sqlite|csv|jsonl", "sqlite",
         "Where changes come from."},
        {"source.path", EXB_PROP_STR, OFF(source_path), NULL, NULL, "Source database | file.", 1},
        {"note", EXB_PROP_STR, OFF(note), NULL, NULL, "Free text."},
        {"source.table.", EXB_PROP_PREFIX, OFF(tables), NULL, NULL,
         "`source.table.<table> = <resource code>`.", 1},
        {"kafka.", EXB_PROP_PREFIX, OFF(kafka), NULL, NULL, "Passed to librdkafka as is."},
        {NULL}};

static void test_defaults(void **state)
{
        tconf_t c;
        char errstr[256] = "";
        (void)state;
        memset(&c, 0xab, sizeof(c)); /* defaults overwrite, never read */
        assert_int_equal(exb_conf_load(props, &c, NULL, errstr, sizeof(errstr)), 0);
        assert_null(c.dept);
        assert_string_equal(c.brokers, "localhost:9092");
        assert_int_equal(c.batch_size, 500);
        assert_int_equal(c.offset, -1);
        assert_int_equal(c.snapshot, 0);
        assert_string_equal(c.source_type, "sqlite");
        assert_null(c.source_path);
        assert_int_equal(c.tables.cnt, 0);
        assert_null(c.kafka.kvs);
        assert_null(exb_conf_kv_get(&c.kafka, "linger.ms"));
        exb_conf_free(props, &c);
        assert_null(c.brokers);
        exb_conf_free(props, &c); /* twice is harmless */
}

static void test_load_ok(void **state)
{
        tconf_t c;
        char errstr[256] = "";
        (void)state;
        if (exb_conf_load(props, &c, "data/conf_ok.properties", errstr, sizeof(errstr)))
                fail_msg("%s", errstr);
        assert_int_equal(
                exb_conf_check(props, &c, "data/conf_ok.properties", errstr, sizeof(errstr)), 0);
        assert_string_equal(c.dept, "GA");
        assert_string_equal(c.brokers, "kafka1:9092,kafka2:9092"); /* trimmed */
        assert_int_equal(c.batch_size, 1000);
        assert_int_equal(c.offset, -3);
        assert_int_equal(c.snapshot, 1);
        assert_string_equal(c.source_type, "sqlite");
        assert_string_equal(c.source_path, "/var/lib/exbus/ga.db");
        assert_string_equal(c.note, "");
        /* "source.table." and "source.type" side by side; order kept. */
        assert_int_equal(c.tables.cnt, 2);
        assert_string_equal(c.tables.kvs[0].key, "people");
        assert_string_equal(c.tables.kvs[0].value, "370600-GA-0001");
        assert_string_equal(c.tables.kvs[1].key, "photos");
        assert_string_equal(exb_conf_kv_get(&c.tables, "photos"), "370600-GA-0002");
        assert_int_equal(c.kafka.cnt, 2);
        assert_string_equal(exb_conf_kv_get(&c.kafka, "linger.ms"), "5");
        /* '#' and '=' inside a value are the value's. */
        assert_string_equal(exb_conf_kv_get(&c.kafka, "sasl.password"), "p#ss=word");
        exb_conf_free(props, &c);
}

static void test_bad_files(void **state)
{
        static const struct {
                const char *path, *expect;
        } cases[] = {
                {"data/conf_unknown.properties",
                 "data/conf_unknown.properties:3: unknown key \"sorce.path\" (did you mean "
                 "\"source.path\"?)"},
                {"data/conf_range.properties",
                 "data/conf_range.properties:2: \"batch.size\": 0 is out of range 1..65535"},
                {"data/conf_int.properties",
                 "data/conf_int.properties:2: \"batch.size\": invalid value \"10k\" (an integer "
                 "in 1..65535)"},
                {"data/conf_enum.properties",
                 "data/conf_enum.properties:1: \"source.type\": invalid value \"odbc\" (one of "
                 "sqlite|csv|jsonl)"},
                {"data/conf_bool.properties",
                 "data/conf_bool.properties:3: \"snapshot\": invalid value \"maybe\" (true or "
                 "false)"},
                {"data/conf_noeq.properties",
                 "data/conf_noeq.properties:2: expected \"key = value\", got \"dept GA\""},
                {"data/conf_nokey.properties",
                 "data/conf_nokey.properties:1: missing key before '='"},
                {"data/conf_dup.properties",
                 "data/conf_dup.properties:4: \"dept\" is already set on line 2"},
                {"data/conf_prefix_empty.properties",
                 "data/conf_prefix_empty.properties:1: \"kafka.\": a name must follow the prefix "
                 "(e.g. \"kafka.NAME\")"},
                {"data/no_such.properties",
                 "data/no_such.properties: cannot open: No such file or directory"},
        };
        (void)state;
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                tconf_t c;
                char errstr[256] = "";
                if (!exb_conf_load(props, &c, cases[i].path, errstr, sizeof(errstr)))
                        fail_msg("%s: accepted", cases[i].path);
                if (strcmp(errstr, cases[i].expect))
                        fail_msg("%s:\n  got:      %s\n  expected: %s", cases[i].path, errstr,
                                 cases[i].expect);
                exb_conf_free(props, &c);
        }
}

static void test_required(void **state)
{
        tconf_t c;
        char errstr[256] = "";
        (void)state;
        assert_int_equal(
                exb_conf_load(props, &c, "data/conf_missing.properties", errstr, sizeof(errstr)),
                0);
        assert_int_equal(
                exb_conf_check(props, &c, "data/conf_missing.properties", errstr, sizeof(errstr)),
                -1);
        assert_string_equal(errstr, "data/conf_missing.properties: missing required keys "
                                    "\"dept\", \"source.path\", \"source.table.*\"");
        /* Set on the command line instead: complete. */
        assert_int_equal(exb_conf_set_arg(props, &c, "dept=GA", NULL, errstr, sizeof(errstr)), 0);
        assert_int_equal(exb_conf_set_arg(props, &c, "source.path = /tmp/ga.db", NULL, errstr,
                                          sizeof(errstr)),
                         0);
        assert_int_equal(exb_conf_check(props, &c, NULL, errstr, sizeof(errstr)), -1);
        assert_string_equal(errstr, "configuration: missing required key \"source.table.*\"");
        assert_int_equal(exb_conf_set(props, &c, "source.table.people", "370600-GA-0001", NULL,
                                      errstr, sizeof(errstr)),
                         0);
        assert_int_equal(exb_conf_check(props, &c, NULL, errstr, sizeof(errstr)), 0);
        /* An empty value does not satisfy a required key. */
        assert_int_equal(exb_conf_set(props, &c, "dept", "", NULL, errstr, sizeof(errstr)), 0);
        assert_int_equal(exb_conf_check(props, &c, "p.conf", errstr, sizeof(errstr)), -1);
        assert_string_equal(errstr, "p.conf: missing required key \"dept\"");
        exb_conf_free(props, &c);
}

static void test_set_values(void **state)
{
        static const struct {
                const char *key, *value;
                const char *expect; /* NULL = accepted */
        } cases[] = {
                {"batch.size", "1", NULL},
                {"batch.size", "65535", NULL},
                {"batch.size", "65536", "cli: \"batch.size\": 65536 is out of range 1..65535"},
                {"batch.size", "-5", "cli: \"batch.size\": -5 is out of range 1..65535"},
                {"batch.size", "",
                 "cli: \"batch.size\": invalid value \"\" (an integer in 1..65535)"},
                {"batch.size", " 5",
                 "cli: \"batch.size\": invalid value \" 5\" (an integer in "
                 "1..65535)"},
                {"batch.size", "99999999999999999999",
                 "cli: \"batch.size\": invalid value \"99999999999999999999\" (an integer in "
                 "1..65535)"},
                {"offset", "-10", NULL},
                {"offset", "11", "cli: \"offset\": 11 is out of range -10..10"},
                {"snapshot", "TRUE", NULL},
                {"snapshot", "off", NULL},
                {"snapshot", "2", "cli: \"snapshot\": invalid value \"2\" (true or false)"},
                {"source.type", "jsonl", NULL},
                {"source.type", "JSONL",
                 "cli: \"source.type\": invalid value \"JSONL\" (one of sqlite|csv|jsonl)"},
                {"source.type", "sql",
                 "cli: \"source.type\": invalid value \"sql\" (one of sqlite|csv|jsonl)"},
                {"kafka.acks", "all", NULL},
                {"source.table.x", "370600-GA-0001", NULL},
                {"source.tables", "x",
                 "cli: unknown key \"source.tables\" (did you mean \"source.table.\"?)"},
                {"source", "x", "cli: unknown key \"source\""},
                {"kafka", "x", "cli: unknown key \"kafka\" (did you mean \"kafka.\"?)"},
                {"Dept", "x", "cli: unknown key \"Dept\" (did you mean \"dept\"?)"},
        };
        tconf_t c;
        (void)state;
        exb_conf_defaults(props, &c);
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                char errstr[256] = "";
                int r = exb_conf_set(props, &c, cases[i].key, cases[i].value, "cli", errstr,
                                     sizeof(errstr));
                if (!cases[i].expect && r)
                        fail_msg("case %zu %s=%s: %s", i, cases[i].key, cases[i].value, errstr);
                if (cases[i].expect && !r)
                        fail_msg("case %zu %s=%s: accepted", i, cases[i].key, cases[i].value);
                if (cases[i].expect && strcmp(errstr, cases[i].expect))
                        fail_msg("case %zu:\n  got:      %s\n  expected: %s", i, errstr,
                                 cases[i].expect);
        }
        /* A rejected value keeps the previous one. */
        assert_int_equal(c.batch_size, 65535);
        assert_int_equal(c.offset, -10);
        assert_int_equal(c.snapshot, 0);
        assert_string_equal(c.source_type, "jsonl");
        exb_conf_free(props, &c);
}

static void test_overrides(void **state)
{
        tconf_t c;
        char errstr[256] = "";
        (void)state;
        assert_int_equal(
                exb_conf_load(props, &c, "data/conf_ok.properties", errstr, sizeof(errstr)), 0);
        /* A command-line override replaces the file's value (no duplicate error). */
        assert_int_equal(
                exb_conf_set_arg(props, &c, "batch.size=2000", NULL, errstr, sizeof(errstr)), 0);
        assert_int_equal(c.batch_size, 2000);
        assert_int_equal(
                exb_conf_set_arg(props, &c, " kafka.linger.ms = 10 ", NULL, errstr, sizeof(errstr)),
                0);
        assert_int_equal(
                exb_conf_set_arg(props, &c, "kafka.acks=all", "-X", errstr, sizeof(errstr)), 0);
        assert_int_equal(c.kafka.cnt, 3);
        assert_string_equal(exb_conf_kv_get(&c.kafka, "linger.ms"), "10");
        assert_string_equal(c.kafka.kvs[2].key, "acks");
        assert_int_equal(exb_conf_set_arg(props, &c, "brokers=a:1=b", NULL, errstr, sizeof(errstr)),
                         0);
        assert_string_equal(c.brokers, "a:1=b");

        assert_int_equal(exb_conf_set_arg(props, &c, "batch.size", NULL, errstr, sizeof(errstr)),
                         -1);
        assert_string_equal(errstr, "command line: \"batch.size\": expected key=value");
        assert_int_equal(exb_conf_set_arg(props, &c, "nope=1", "-X", errstr, sizeof(errstr)), -1);
        assert_string_equal(errstr, "-X: unknown key \"nope\" (did you mean \"note\"?)");
        assert_int_equal(
                exb_conf_set_arg(props, &c, "batch.size=70000", NULL, errstr, sizeof(errstr)), -1);
        assert_string_equal(errstr, "command line: \"batch.size\": 70000 is out of range 1..65535");
        assert_int_equal(c.batch_size, 2000);
        exb_conf_free(props, &c);
}

/* CRLF line ends, a byte order mark, tabs: as a Windows editor writes them. */
static void test_crlf_bom(void **state)
{
        char path[] = "/tmp/exb_test_conf_XXXXXX";
        const char text[] = "\xEF\xBB\xBF# 配置\r\ndept\t=\tGA\r\n\r\nsource.path = x.db\r\n"
                            "source.table.t = R-1\r\nsnapshot = Yes\r\n";
        tconf_t c;
        char errstr[256] = "";
        int fd = mkstemp(path);
        (void)state;
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
        close(fd);
        if (exb_conf_load(props, &c, path, errstr, sizeof(errstr)))
                fail_msg("%s", errstr);
        unlink(path);
        assert_int_equal(exb_conf_check(props, &c, path, errstr, sizeof(errstr)), 0);
        assert_string_equal(c.dept, "GA");
        assert_string_equal(c.source_path, "x.db");
        assert_string_equal(exb_conf_kv_get(&c.tables, "t"), "R-1");
        assert_int_equal(c.snapshot, 1);
        exb_conf_free(props, &c);
}

static void test_print(void **state)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        (void)state;
        assert_non_null(out);
        exb_conf_print(props, "Producer (`exbus producer -c FILE`)", out);
        fclose(out);
        static const char *const want[] = {
                "## Producer (`exbus producer -c FILE`)\n\n"
                "| key | type | values | default | description |\n|---|---|---|---|---|\n",
                "| `dept` | string |  | *required* | Department code of this agent. |\n",
                "| `brokers` | string |  | `localhost:9092` | Bootstrap brokers. |\n",
                "| `batch.size` | integer | 1..65535 | `500` | Records per batch. |\n",
                "| `snapshot` | boolean | true, false | `false` | Publish existing rows first. |\n",
                "| `source.type` | enum | sqlite, csv, jsonl | `sqlite` | Where changes come from. "
                "|\n",
                "| `source.path` | string |  | *required* | Source database \\| file. |\n",
                "| `source.table.*` | prefix |  | *required* |",
                "| `kafka.*` | prefix |  |  | Passed to librdkafka as is. |\n",
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(want); i++)
                if (!strstr(buf, want[i]))
                        fail_msg("missing:\n%s\nin:\n%s", want[i], buf);
        free(buf);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),   cmocka_unit_test(test_load_ok),
                cmocka_unit_test(test_bad_files),  cmocka_unit_test(test_required),
                cmocka_unit_test(test_set_values), cmocka_unit_test(test_overrides),
                cmocka_unit_test(test_crlf_bom),   cmocka_unit_test(test_print),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
