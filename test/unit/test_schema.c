/*
 * test_schema.c — Avro schema derivation, parsing and fingerprints
 * (schemas/exb_schema.c).
 *
 * The canonical text of the sample population resource (DESIGN §9) is pinned
 * byte for byte: it is what gets published to exb.control and what other
 * Avro implementations read, so any change to it is a wire change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exb_schema.h"

static const exb_field_t population[] = {
        {"id_number", "公民身份号码", EXB_T_STRING, 0}, {"name", "姓名", EXB_T_STRING, 1},
        {"birth_date", "出生日期", EXB_T_DATE, 1},      {"address", "户籍地址", EXB_T_STRING, 1},
        {"region", "行政区划代码", EXB_T_STRING, 1},
};

static const char population_json[] =
        "{\"type\":\"record\",\"name\":\"R370600_GA_0001\",\"namespace\":\"exbus\",\"fields\":["
        "{\"name\":\"op\",\"type\":{\"type\":\"enum\",\"name\":\"Op\",\"symbols\":"
        "[\"CREATE\",\"UPDATE\",\"DELETE\",\"SNAPSHOT\"]}},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"source\",\"type\":\"string\"},"
        "{\"name\":\"ts_ms\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
        "{\"name\":\"data\",\"type\":{\"type\":\"record\",\"name\":\"R370600_GA_0001_data\","
        "\"fields\":["
        "{\"name\":\"id_number\",\"type\":\"string\",\"doc\":\"公民身份号码\"},"
        "{\"name\":\"name\",\"type\":[\"null\",\"string\"],\"default\":null,\"doc\":\"姓名\"},"
        "{\"name\":\"birth_date\",\"type\":[\"null\",{\"type\":\"int\",\"logicalType\":\"date\"}],"
        "\"default\":null,\"doc\":\"出生日期\"},"
        "{\"name\":\"address\",\"type\":[\"null\",\"string\"],\"default\":null,\"doc\":"
        "\"户籍地址\"},"
        "{\"name\":\"region\",\"type\":[\"null\",\"string\"],\"default\":null,"
        "\"doc\":\"行政区划代码\"}]}}]}";

/* sha256 of population_json, computed independently (Python hashlib). */
static const char population_sha256[] =
        "0564bedb8e479fbe526ac71e8731789151cc2052f6cba8b411daf32da7d94613";

/* The envelope text around a data field list, for parse tests. */
#define ENV_HEAD                                                                                   \
        "{\"type\":\"record\",\"name\":\"R1\",\"namespace\":\"exbus\",\"fields\":["                \
        "{\"name\":\"op\",\"type\":{\"type\":\"enum\",\"name\":\"Op\",\"symbols\":"                \
        "[\"CREATE\",\"UPDATE\",\"DELETE\",\"SNAPSHOT\"]}},"                                       \
        "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"source\",\"type\":\"string\"},"   \
        "{\"name\":\"ts_ms\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"  \
        "{\"name\":\"data\",\"type\":{\"type\":\"record\",\"name\":\"R1_data\",\"fields\":["
#define ENV_TAIL "]}}]}"

static void test_derive_population(void **state)
{
        (void)state;
        char err[512] = "";
        exb_schema_t *s = exb_schema_new("R370600_GA_0001", population,
                                         (int)EXB_ARRAY_CNT(population), err, sizeof(err));
        assert_non_null(s);
        assert_string_equal(s->avro_json, population_json);
        assert_int_equal(s->id, -1);
        assert_string_equal(s->name, "R370600_GA_0001");
        assert_int_equal(s->nfields, 5);
        assert_int_equal(exb_schema_field_idx(s, "birth_date"), 2);
        assert_int_equal(exb_schema_field_idx(s, "nope"), -1);
        char fp[65];
        exb_schema_fingerprint(s, fp);
        assert_string_equal(fp, population_sha256);
        exb_schema_destroy(s);
        exb_schema_destroy(NULL);
}

/* Each item type's Avro type, key (plain) and nullable. */
static void test_type_mapping(void **state)
{
        (void)state;
        static const struct {
                exb_type_t type;
                const char *plain, *nullable;
        } cases[] = {
                {EXB_T_STRING, "\"string\"", "[\"null\",\"string\"]"},
                {EXB_T_NUMBER, "\"double\"", "[\"null\",\"double\"]"},
                {EXB_T_INT, "\"long\"", "[\"null\",\"long\"]"},
                {EXB_T_DATE, "{\"type\":\"int\",\"logicalType\":\"date\"}",
                 "[\"null\",{\"type\":\"int\",\"logicalType\":\"date\"}]"},
                {EXB_T_TIMESTAMP, "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}",
                 "[\"null\",{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}]"},
                {EXB_T_BOOL, "\"boolean\"", "[\"null\",\"boolean\"]"},
                {EXB_T_BYTES, "\"bytes\"", "[\"null\",\"bytes\"]"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                exb_field_t f[2] = {{"k", NULL, cases[i].type, 0}, {"v", NULL, cases[i].type, 1}};
                char err[512] = "", want[512];
                exb_schema_t *s = exb_schema_new("T", f, 2, err, sizeof(err));
                assert_non_null(s);
                snprintf(want, sizeof(want),
                         "{\"name\":\"k\",\"type\":%s},{\"name\":\"v\",\"type\":%s,"
                         "\"default\":null}]}}]}",
                         cases[i].plain, cases[i].nullable);
                if (!strstr(s->avro_json, want))
                        fail_msg("type %c: %s lacks %s", cases[i].type, s->avro_json, want);
                /* and back */
                exb_schema_t *p =
                        exb_schema_parse(s->avro_json, strlen(s->avro_json), err, sizeof(err));
                assert_non_null(p);
                assert_int_equal(p->fields[0].type, cases[i].type);
                assert_int_equal(p->fields[0].nullable, 0);
                assert_int_equal(p->fields[1].type, cases[i].type);
                assert_int_equal(p->fields[1].nullable, 1);
                assert_null(p->fields[1].doc);
                exb_schema_destroy(p);
                exb_schema_destroy(s);
        }
}

static void test_parse_roundtrip(void **state)
{
        (void)state;
        char err[512] = "";
        exb_schema_t *s = exb_schema_new("R370600_GA_0001", population,
                                         (int)EXB_ARRAY_CNT(population), err, sizeof(err));
        assert_non_null(s);
        exb_schema_t *p = exb_schema_parse(s->avro_json, strlen(s->avro_json), err, sizeof(err));
        if (!p)
                fail_msg("%s", err);
        assert_string_equal(p->avro_json, s->avro_json);
        assert_string_equal(p->name, s->name);
        assert_int_equal(p->nfields, s->nfields);
        for (int i = 0; i < s->nfields; i++) {
                assert_string_equal(p->fields[i].name, population[i].name);
                assert_string_equal(p->fields[i].doc, population[i].doc);
                assert_int_equal(p->fields[i].type, population[i].type);
                assert_int_equal(p->fields[i].nullable, population[i].nullable);
        }
        char f1[65], f2[65];
        exb_schema_fingerprint(s, f1);
        exb_schema_fingerprint(p, f2);
        assert_string_equal(f1, f2);
        exb_schema_destroy(p);

        /* Same schema written differently (whitespace, key order, \u escapes,
         * no namespace) parses to the same canonical text. */
        static const char *variants[] = {
                "{ \"fields\": [\n"
                " {\"type\": {\"symbols\": [\"CREATE\",\"UPDATE\",\"DELETE\",\"SNAPSHOT\"],"
                " \"type\": \"enum\", \"name\": \"Op\"}, \"name\": \"op\"},\n"
                " {\"name\": \"event_id\", \"type\": \"string\"},\n"
                " {\"name\": \"source\", \"type\": {\"type\": \"string\"}},\n"
                " {\"name\": \"ts_ms\", \"type\": {\"logicalType\": \"timestamp-millis\","
                " \"type\": \"long\"}},\n"
                " {\"name\": \"data\", \"type\": {\"type\": \"record\", \"name\": \"X\", "
                "\"fields\": [\n"
                "  {\"doc\": \"\\u516c\\u6c11\\u8eab\\u4efd\\u53f7\\u7801\", \"name\": "
                "\"id_number\","
                " \"type\": \"string\"},\n"
                "  {\"name\": \"name\", \"type\": [\"null\", \"string\"], \"doc\": \"姓名\"},\n"
                "  {\"name\": \"birth_date\", \"default\": null, \"type\": [\"null\","
                " {\"type\": \"int\", \"logicalType\": \"date\"}], \"doc\": \"出生日期\"},\n"
                "  {\"name\": \"address\", \"type\": [\"null\", \"string\"], \"default\": null,"
                " \"doc\": \"户籍地址\"},\n"
                "  {\"name\": \"region\", \"type\": [\"null\", \"string\"], \"default\": null,"
                " \"doc\": \"行政区划代码\"}]}}],\n"
                " \"type\": \"record\", \"name\": \"R370600_GA_0001\"}\n",
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(variants); i++) {
                p = exb_schema_parse(variants[i], strlen(variants[i]), err, sizeof(err));
                if (!p)
                        fail_msg("variant %zu: %s", i, err);
                assert_string_equal(p->avro_json, s->avro_json);
                exb_schema_destroy(p);
        }
        exb_schema_destroy(s);
}

static void test_bad_fields(void **state)
{
        (void)state;
        static const struct {
                const char *schema_name;
                exb_field_t fields[3];
                int nfields;
                const char *err; /* substring of the message */
        } cases[] = {
                {"R1", {{"", NULL, 'C', 0}}, 1, "field 1: name \"\" is not a valid Avro name"},
                {"R1", {{NULL, NULL, 'C', 0}}, 1, "field 1: name \"\" is not a valid Avro name"},
                {"R1",
                 {{"a", NULL, 'C', 0}, {"1abc", NULL, 'C', 1}},
                 2,
                 "field 2: name \"1abc\" is not a valid"},
                {"R1", {{"a-b", NULL, 'C', 0}}, 1, "name \"a-b\" is not a valid Avro name"},
                {"R1", {{"a b", NULL, 'C', 0}}, 1, "name \"a b\" is not a valid Avro name"},
                {"R1", {{"姓名", NULL, 'C', 0}}, 1, "is not a valid Avro name"},
                {"R1",
                 {{"a", NULL, 'C', 0}, {"b", NULL, 'N', 1}, {"a", NULL, 'I', 1}},
                 3,
                 "schema R1: field \"a\" appears twice (fields 1 and 3)"},
                {"R1", {{"a", NULL, 'X', 0}}, 1, "field \"a\": unknown type 'X'"},
                {"R1", {{"a", NULL, 0, 0}}, 1, "field \"a\": unknown type '?'"},
                {"R1", {{"a", "\xff\xfe", 'C', 0}}, 1, "field \"a\": doc is not valid UTF-8"},
                {"R1", {{"a", NULL, 'C', 0}}, 0, "schema R1: no fields"},
                {"370600-GA",
                 {{"a", NULL, 'C', 0}},
                 1,
                 "schema name \"370600-GA\" is not a valid Avro name"},
                {"", {{"a", NULL, 'C', 0}}, 1, "schema name \"\" is not a valid Avro name"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                char err[512] = "";
                exb_schema_t *s = exb_schema_new(cases[i].schema_name, cases[i].fields,
                                                 cases[i].nfields, err, sizeof(err));
                if (s)
                        fail_msg("case %zu: accepted", i);
                if (!strstr(err, cases[i].err))
                        fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].err);
        }
}

static void test_parse_rejects(void **state)
{
        (void)state;
        static const struct {
                const char *json;
                const char *err;
        } cases[] = {
                {"", "invalid JSON"},
                {"{\"type\":\"record\"", "invalid JSON"},
                {"[1,2]", "expected an Avro record"},
                {"\"string\"", "expected an Avro record"},
                {"{\"type\":\"enum\",\"name\":\"X\",\"symbols\":[\"A\"]}",
                 "expected an Avro record"},
                {"{\"type\":\"record\",\"name\":\"R1\",\"fields\":[]}",
                 "schema R1: not an exbus envelope: expected the 5 fields"},
                {"{\"type\":\"record\",\"name\":\"R1\",\"namespace\":\"other\",\"fields\":[]}",
                 "schema R1: namespace must be \"exbus\""},
                {"{\"type\":\"record\",\"name\":\"R1\",\"fields\":["
                 "{\"name\":\"op\",\"type\":{\"type\":\"enum\",\"name\":\"Op\",\"symbols\":"
                 "[\"CREATE\",\"DELETE\",\"UPDATE\",\"SNAPSHOT\"]}},"
                 "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"source\",\"type\":"
                 "\"string\"},"
                 "{\"name\":\"ts_ms\",\"type\":\"long\"},{\"name\":\"data\",\"type\":\"string\"}]}",
                 "field \"op\" must be an enum with symbols CREATE, UPDATE, DELETE, SNAPSHOT"},
                {"{\"type\":\"record\",\"name\":\"R1\",\"fields\":["
                 "{\"name\":\"op\",\"type\":{\"type\":\"enum\",\"name\":\"Op\",\"symbols\":"
                 "[\"CREATE\",\"UPDATE\",\"DELETE\",\"SNAPSHOT\"]}},"
                 "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"source\",\"type\":"
                 "\"string\"},"
                 "{\"name\":\"ts_ms\",\"type\":\"long\"},{\"name\":\"data\",\"type\":\"string\"}]}",
                 "field \"ts_ms\" must be a long with logicalType timestamp-millis"},
                {"{\"type\":\"record\",\"name\":\"R1\",\"fields\":["
                 "{\"name\":\"op\",\"type\":{\"type\":\"enum\",\"name\":\"Op\",\"symbols\":"
                 "[\"CREATE\",\"UPDATE\",\"DELETE\",\"SNAPSHOT\"]}},"
                 "{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"source\",\"type\":\"string\"},"
                 "{\"name\":\"ts_ms\",\"type\":\"long\"},{\"name\":\"data\",\"type\":\"string\"}]}",
                 "envelope field 2 must be \"event_id\", not \"id\""},
                {"{\"type\":\"record\",\"name\":\"R1\",\"fields\":["
                 "{\"name\":\"op\",\"type\":{\"type\":\"enum\",\"name\":\"Op\",\"symbols\":"
                 "[\"CREATE\",\"UPDATE\",\"DELETE\",\"SNAPSHOT\"]}},"
                 "{\"name\":\"event_id\",\"type\":\"bytes\"},{\"name\":\"source\",\"type\":"
                 "\"string\"},"
                 "{\"name\":\"ts_ms\",\"type\":\"long\"},{\"name\":\"data\",\"type\":\"string\"}]}",
                 "field \"event_id\" must be of type string"},
                {ENV_HEAD ENV_TAIL, "record \"data\" has 0 fields"},
                {ENV_HEAD "{\"name\":\"a\",\"type\":\"float\"}" ENV_TAIL,
                 "field \"a\": unsupported type \"float\""},
                {ENV_HEAD "{\"name\":\"a\",\"type\":\"int\"}" ENV_TAIL,
                 "field \"a\": unsupported type \"int\""},
                {ENV_HEAD "{\"name\":\"a\",\"type\":{\"type\":\"int\",\"logicalType\":\"time-"
                          "millis\"}}" ENV_TAIL,
                 "field \"a\": unsupported type "
                 "{\"type\":\"int\",\"logicalType\":\"time-millis\"}"},
                {ENV_HEAD "{\"name\":\"a\",\"type\":[\"string\",\"null\"]}" ENV_TAIL,
                 "field \"a\": a union must be [\"null\", T] (null first)"},
                {ENV_HEAD "{\"name\":\"a\",\"type\":[\"null\",\"string\",\"long\"]}" ENV_TAIL,
                 "field \"a\": a union must be [\"null\", T]"},
                {ENV_HEAD
                 "{\"name\":\"a\",\"type\":[\"null\",\"string\"],\"default\":\"x\"}" ENV_TAIL,
                 "field \"a\": the default of a nullable field must be null"},
                {ENV_HEAD "{\"name\":\"a\",\"type\":[\"null\",[\"null\",\"string\"]]}" ENV_TAIL,
                 "field \"a\": unsupported type"},
                {ENV_HEAD "{\"type\":\"string\"}" ENV_TAIL, "data field 1 has no name"},
                {ENV_HEAD "{\"name\":\"a\",\"type\":\"string\",\"doc\":5}" ENV_TAIL,
                 "field \"a\": doc must be a string"},
                {ENV_HEAD
                 "{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"a\",\"type\":\"long\"}" ENV_TAIL,
                 "field \"a\" appears twice"},
                {ENV_HEAD "{\"name\":\"a.b\",\"type\":\"string\"}" ENV_TAIL,
                 "name \"a.b\" is not a valid Avro name"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                char err[512] = "";
                exb_schema_t *s =
                        exb_schema_parse(cases[i].json, strlen(cases[i].json), err, sizeof(err));
                if (s) {
                        exb_schema_destroy(s);
                        fail_msg("case %zu: accepted", i);
                }
                if (!strstr(err, cases[i].err))
                        fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].err);
        }
}

static void test_name_for(void **state)
{
        (void)state;
        static const struct {
                const char *code, *suffix, *want;
        } cases[] = {
                {"370600-GA-0001", NULL, "R370600_GA_0001"},
                {"370600-GA-0001", "", "R370600_GA_0001"},
                {"370600-GA-0001", "S-000042", "R370600_GA_0001_S_000042"},
                {"a.b/c", "x y", "Ra_b_c_x_y"},
                {"人口", NULL, "R______"}, /* 2 chars = 6 UTF-8 bytes, each replaced */
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                char *n = exb_schema_name_for(cases[i].code, cases[i].suffix);
                assert_string_equal(n, cases[i].want);
                free(n);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_derive_population), cmocka_unit_test(test_type_mapping),
                cmocka_unit_test(test_parse_roundtrip),   cmocka_unit_test(test_bad_fields),
                cmocka_unit_test(test_parse_rejects),     cmocka_unit_test(test_name_for),
        };
        return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
