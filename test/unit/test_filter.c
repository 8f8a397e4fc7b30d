/*
 * test_filter.c — filter expressions: tokenizer, parser errors, type rules,
 * evaluation and binding to writer schemas (exchange-core/exb_filter.c).
 *
 * Evaluation cases run one expression over four sample records and compare
 * the results with a string of 0/1, one per record, so a reader sees at a
 * glance which record passes. Record 2 has every nullable item null.
 *
 * Schemas are built by hand (the filter only reads nfields and fields).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exb_filter.h"

static exb_field_t pop_fields[] = {
        {"id_number", NULL, EXB_T_STRING, 0}, {"name", NULL, EXB_T_STRING, 1},
        {"birth_date", NULL, EXB_T_DATE, 1},  {"address", NULL, EXB_T_STRING, 1},
        {"region", NULL, EXB_T_STRING, 1},    {"age", NULL, EXB_T_INT, 1},
        {"income", NULL, EXB_T_NUMBER, 1},    {"updated", NULL, EXB_T_TIMESTAMP, 1},
        {"active", NULL, EXB_T_BOOL, 1},      {"photo", NULL, EXB_T_BYTES, 1},
};
enum { F_ID, F_NAME, F_BIRTH, F_ADDR, F_REGION, F_AGE, F_INCOME, F_UPDATED, F_ACTIVE, F_PHOTO, NF };

static exb_schema_t pop_schema = {7, "R370600_GA_0001", NF, pop_fields, NULL};

#define NREC 4
static exb_val_t vals[NREC][NF];
static exb_record_t recs[NREC];

static void set_str(exb_val_t *v, const char *s)
{
        v->is_null = 0;
        v->u.s.p = s;
        v->u.s.len = strlen(s);
}

static void set_int(exb_val_t *v, int64_t i)
{
        v->is_null = 0;
        v->u.i = i;
}

static void set_dbl(exb_val_t *v, double d)
{
        v->is_null = 0;
        v->u.d = d;
}

static int setup(void **state)
{
        int r, k;
        (void)state;
        for (r = 0; r < NREC; r++) {
                for (k = 0; k < NF; k++)
                        vals[r][k].is_null = 1;
                recs[r].op = EXB_OP_UPDATE;
                recs[r].nvals = NF;
                recs[r].vals = vals[r];
        }
        /* r0: an adult in 370602 */
        set_str(&vals[0][F_ID], "370602199001011239");
        set_str(&vals[0][F_NAME], "张三丰");
        set_int(&vals[0][F_BIRTH], 7305); /* 1990-01-01 */
        set_str(&vals[0][F_ADDR], "烟台市芝罘区");
        set_str(&vals[0][F_REGION], "370602");
        set_int(&vals[0][F_AGE], 36);
        set_dbl(&vals[0][F_INCOME], 5234.5);
        set_int(&vals[0][F_UPDATED], 1768465800000); /* 2026-01-15T08:30:00Z */
        set_int(&vals[0][F_ACTIVE], 1);
        vals[0][F_PHOTO].is_null = 0;
        vals[0][F_PHOTO].u.s.p = "\x01\x02";
        vals[0][F_PHOTO].u.s.len = 2;
        /* r1: a minor in 370613 */
        set_str(&vals[1][F_ID], "370613200905050011");
        set_str(&vals[1][F_NAME], "李四");
        set_int(&vals[1][F_BIRTH], 14369); /* 2009-05-05 */
        set_str(&vals[1][F_ADDR], "烟台市莱山区");
        set_str(&vals[1][F_REGION], "370613");
        set_int(&vals[1][F_AGE], 17);
        set_dbl(&vals[1][F_INCOME], 0.0);
        set_int(&vals[1][F_UPDATED], 1767225599999); /* 2025-12-31T23:59:59.999Z */
        set_int(&vals[1][F_ACTIVE], 0);
        /* r2: the key only */
        set_str(&vals[2][F_ID], "370602198003073210");
        /* r3: just 18, quotes in the name */
        set_str(&vals[3][F_ID], "370602200801150022");
        set_str(&vals[3][F_NAME], "O'Brien \"Bob\"");
        set_int(&vals[3][F_BIRTH], 13893); /* 2008-01-15 */
        set_str(&vals[3][F_REGION], "370602");
        set_int(&vals[3][F_AGE], 18);
        set_dbl(&vals[3][F_INCOME], -1.5);
        set_int(&vals[3][F_UPDATED], 1768465800001);
        set_int(&vals[3][F_ACTIVE], 1);
        return 0;
}

static exb_filter_t *parse_ok(const char *expr, const exb_schema_t *schema)
{
        char err[512] = "";
        exb_filter_t *f = exb_filter_parse(expr, schema, err, sizeof(err));
        if (!f)
                fail_msg("%s: %s", expr, err);
        return f;
}

/* "1001": records 0 and 3 pass. */
static void expect_results(const exb_filter_t *f, const char *expr, const char *want)
{
        char got[NREC + 1];
        int r;
        for (r = 0; r < NREC; r++)
                got[r] = exb_filter_eval(f, &recs[r]) ? '1' : '0';
        got[NREC] = '\0';
        if (strcmp(got, want))
                fail_msg("%s: got %s, expected %s", expr, got, want);
}

/* ------------------------------------------------------------ evaluation */

static const struct {
        const char *expr;
        const char *want;
} eval_cases[] = {
        /* strings, nulls */
        {"region == \"370602\"", "1001"},
        {"region == '370602'", "1001"},
        {"region != \"370602\"", "0100"}, /* null region: false */
        {"region == null", "0010"},
        {"region != null", "1101"},
        {"region < \"370610\"", "1001"},
        {"region >= \"370613\"", "0100"},
        {"name > \"z\"", "1100"}, /* bytewise UTF-8: CJK sorts after ASCII */
        {"name == 'O\\'Brien \"Bob\"'", "0001"},
        {"name == \"O'Brien \\\"Bob\\\"\"", "0001"},
        {"region\n==\t\"370602\"  ", "1001"},
        /* integers, fractional literals on integers */
        {"age >= 18", "1001"},
        {"age > 17.5", "1001"},
        {"age < 18", "0100"},
        {"age <= 18", "0101"},
        {"age == 18.0", "0001"},
        {"age == 1.8e1", "0001"},
        {"age != 36", "0101"},
        {"age > -1", "1101"},
        /* numbers */
        {"income > 0", "1000"},
        {"income >= 0", "1100"},
        {"income < -1", "0001"},
        {"income == 5234.5", "1000"},
        {"income > 1e3", "1000"},
        /* dates, timestamps, booleans */
        {"birth_date >= \"2008-01-01\"", "0101"},
        {"birth_date == \"1990-01-01\"", "1000"},
        {"birth_date < \"1990-01-02\"", "1000"},
        {"updated > \"2026-01-01T00:00:00Z\"", "1001"},
        {"updated < 1768465800000", "0100"},
        {"updated == \"2026-01-15 16:30:00+08:00\"", "1000"},
        {"updated >= \"2026-01-15T08:30:00.001Z\"", "0001"},
        {"active == true", "1001"},
        {"active != true", "0100"},
        {"active == false", "0100"},
        {"active == null", "0010"},
        /* bytes */
        {"photo == null", "0111"},
        {"photo != \"\"", "1000"},
        /* in */
        {"region in (\"370602\", \"370613\")", "1101"},
        {"region in (\"370699\")", "0000"},
        {"region in (\"370602\", null)", "1011"},
        {"age in (17, 18)", "0101"},
        {"age in (17.5, 36)", "1000"},
        {"birth_date in (\"1990-01-01\", \"2008-01-15\")", "1001"},
        {"not region in (\"370602\")", "0110"},
        /* starts_with */
        {"name starts_with \"张\"", "1000"},
        {"id_number starts_with \"3706\"", "1111"},
        {"id_number starts_with \"37060219\"", "1010"},
        {"address starts_with \"\"", "1100"},
        {"address starts_with \"烟台市芝罘区东\"", "0000"},
        /* logic and precedence: not > and > or */
        {"region == \"370602\" and age >= 18", "1001"},
        {"region == \"370613\" or age >= 30", "1100"},
        {"region == \"370613\" or region == \"370602\" and age >= 30", "1100"},
        {"(region == \"370613\" or region == \"370602\") and age >= 30", "1000"},
        {"region == \"370602\" and age >= 30 or region == \"370613\"", "1100"},
        {"not region == \"370602\"", "0110"}, /* not (x == ...) is true for a null x */
        {"not (region == \"370602\" or age < 18)", "0010"},
        {"not not region == \"370602\"", "1001"},
        {"not region == \"370602\" and age != null", "0100"},
        {"((((region == \"370602\"))))", "1001"},
        {"age == 1 or age == 2 or age == 3 or age == 17 or age == 5", "0100"},
        {"age > 1 and age > 2 and age > 3 and age < 20 and age != 17", "0001"},
};

static void test_eval(void **state)
{
        size_t i;
        (void)state;
        for (i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
                exb_filter_t *f = parse_ok(eval_cases[i].expr, &pop_schema);
                expect_results(f, eval_cases[i].expr, eval_cases[i].want);
                assert_string_equal(exb_filter_text(f), eval_cases[i].expr);
                exb_filter_destroy(f);
        }
}

/* A long or-chain is one node: evaluation does not recurse per term. */
static void test_long_chain(void **state)
{
        char err[128];
        exb_buf_t b;
        exb_filter_t *f;
        int i;
        (void)state;

        exb_buf_init(&b, 0);
        for (i = 0; i < 3000; i++)
                exb_buf_printf(&b, "%sage == %d", i ? " or " : "", 1000 + i);
        exb_buf_printf(&b, " or age == 17");
        exb_buf_cstr(&b);
        f = parse_ok((const char *)b.p, &pop_schema);
        expect_results(f, "long chain", "0100");
        exb_filter_destroy(f);

        /* Longer than 64 KiB: refused before parsing. */
        exb_buf_reset(&b);
        for (i = 0; i < 6000; i++)
                exb_buf_printf(&b, "%sage == %d", i ? " or " : "", 1000 + i);
        exb_buf_cstr(&b);
        assert_null(exb_filter_parse((const char *)b.p, &pop_schema, err, sizeof(err)));
        assert_string_equal(err, "filter: expression longer than 65536 bytes");
        exb_buf_free(&b);
}

/* ------------------------------------------------------------ errors */

static const struct {
        const char *expr;
        const char *err; /* the full message, or a prefix of it ending in "..." */
} error_cases[] = {
        {"regon == \"370602\"",
         "filter: column 1: unknown item \"regon\" (did you mean \"region\"?)"},
        {"age >= 18 and regon == \"x\"", "filter: column 15: unknown item \"regon\"..."},
        {"age >= 18 and zzzzzzz == \"x\"", "filter: column 15: unknown item \"zzzzzzz\""},
        /* columns count characters, not bytes */
        {"name == \"张三\" and regon == \"x\"", "filter: column 18: unknown item \"regon\"..."},
        {"(region == \"370602\"",
         "filter: column 20: expected ')' to close the '(' at column 1, found end of expression"},
        {"(age > 1 or (age < 3)",
         "filter: column 22: expected ')' to close the '(' at column 1..."},
        {"region == \"370602", "filter: column 11: unterminated string"},
        {"region == '370602\"", "filter: column 11: unterminated string"},
        {"region == \"370602\\\"", "filter: column 11: unterminated string"},
        {"name == \"a\\nb\"", "filter: column 11: unknown escape '\\n' in string..."},
        /* literal types */
        {"age >= \"18\"", "filter: column 8: item \"age\" is I (integer): expected a number, found "
                          "string \"18\" (numbers are not quoted)"},
        {"region == 370602", "filter: column 11: item \"region\" is C (string): expected a string "
                             "literal, found number 370602 (quote it)"},
        {"region == true", "filter: column 11: item \"region\" is C (string): expected a string "
                           "literal, found \"true\""},
        {"income == \"1.5\"",
         "filter: column 11: item \"income\" is N (number): expected a number..."},
        {"birth_date > \"2026-02-30\"",
         "filter: column 14: item \"birth_date\" is D (date): expected "
         "a date \"YYYY-MM-DD\", found string \"2026-02-30\""},
        {"birth_date > 20260101", "filter: column 14: item \"birth_date\" is D (date): expected a "
                                  "date..."},
        {"updated > \"yesterday\"",
         "filter: column 11: item \"updated\" is T (timestamp): expected an "
         "ISO-8601 time..."},
        {"updated > 1.5", "filter: column 11: item \"updated\" is T (timestamp): a number must be "
                          "whole milliseconds..."},
        {"active == 1",
         "filter: column 11: item \"active\" is L (boolean): expected true or false, "
         "found number 1"},
        {"active < true",
         "filter: column 10: item \"active\" is L (boolean): only == and != apply"},
        {"age < null", "filter: column 7: null can only be compared with == or !="},
        {"region in (\"370602\", 370613)",
         "filter: column 22: item \"region\" is C (string): expected "
         "a string literal..."},
        /* numbers */
        {"age > 1e999", "filter: column 7: invalid number \"1e999\""},
        {"age > 0x10", "filter: column 7: invalid number \"0x10\""},
        {"age > 18abc", "filter: column 7: invalid number \"18abc\""},
        {"age > 1.", "filter: column 7: invalid number \"1.\""},
        {"age == -", "filter: column 8: invalid number \"-\""},
        {"age == 1-2", "filter: column 9: expected \"and\", \"or\" or the end, found number -2"},
        /* structure */
        {"", "filter: column 1: empty expression"},
        {"   ", "filter: column 4: empty expression"},
        {"region", "filter: column 7: expected an operator (== != < <= > >= in starts_with) after "
                   "\"region\", found end of expression"},
        {"region ==", "filter: column 10: expected a value after \"region\" ==, found end of "
                      "expression"},
        {"region = \"x\"", "filter: column 8: unknown operator '=' (did you mean '==')"},
        {"region !! \"x\"", "filter: column 8: unknown operator '!' (did you mean '!=')"},
        {"region == \"x\" && age > 1", "filter: column 15: unexpected character '&'"},
        {"年龄 >= 18", "filter: column 1: unexpected character (byte 0xe5)"},
        {"region in \"370602\"", "filter: column 11: expected '(' after \"in\", found string "
                                 "\"370602\""},
        {"region in (\"a\" \"b\")",
         "filter: column 16: expected ',' or ')' in the \"in\" list, found "
         "string \"b\""},
        {"region in ()", "filter: column 12: expected a value in the \"in\" list of \"region\", "
                         "found ')'"},
        {"region in (\"a\",)", "filter: column 16: expected a value in the \"in\" list of "
                               "\"region\", found ')'"},
        {"age starts_with \"1\"", "filter: column 17: item \"age\" is I (integer): starts_with "
                                  "applies to strings only"},
        {"name starts_with 1", "filter: column 18: expected a string after starts_with, found "
                               "number 1"},
        {"name starts_with null", "filter: column 18: expected a string after starts_with..."},
        {"region == \"x\" region == \"y\"",
         "filter: column 15: expected \"and\", \"or\" or the end, "
         "found \"region\""},
        {"age >= 18 )", "filter: column 11: expected \"and\", \"or\" or the end, found ')'"},
        {"AND == 1", "filter: column 1: unknown item \"AND\""},
        {"and == 1", "filter: column 1: expected an item name, found \"and\""},
        {"(", "filter: column 2: expected an item name, found end of expression"},
        {"not", "filter: column 4: expected an item name, found end of expression"},
        {"region == \"x\" or", "filter: column 17: expected an item name, found end of expression"},
        {"region == \"x\" and or age > 1",
         "filter: column 19: expected an item name, found \"or\""},
        {"== 1", "filter: column 1: expected an item name, found '=='"},
};

static void test_errors(void **state)
{
        size_t i;
        (void)state;
        for (i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
                char err[512] = "";
                const char *want = error_cases[i].err;
                size_t wl = strlen(want);
                exb_filter_t *f =
                        exb_filter_parse(error_cases[i].expr, &pop_schema, err, sizeof(err));
                if (f) {
                        exb_filter_destroy(f);
                        fail_msg("%s: parsed, expected error %s", error_cases[i].expr, want);
                }
                if (wl > 3 && !strcmp(want + wl - 3, "...")) {
                        if (strncmp(err, want, wl - 3))
                                fail_msg("%s:\n  got      %s\n  expected %s", error_cases[i].expr,
                                         err, want);
                } else if (strcmp(err, want)) {
                        fail_msg("%s:\n  got      %s\n  expected %s", error_cases[i].expr, err,
                                 want);
                }
        }
}

static void test_nesting_limit(void **state)
{
        char expr[512], err[256];
        exb_filter_t *f;
        int i, n, len, closes;
        (void)state;

        /* 64 levels are fine, 65 are not; "not" and "(" count alike. */
        for (n = 64; n <= 65; n++) {
                len = closes = 0;
                for (i = 0; i < n; i++) {
                        if (i % 2) {
                                expr[len++] = '(';
                                closes++;
                        } else {
                                memcpy(expr + len, "not ", 4);
                                len += 4;
                        }
                }
                len += sprintf(expr + len, "age == 17");
                while (closes--)
                        expr[len++] = ')';
                expr[len] = '\0';
                f = exb_filter_parse(expr, &pop_schema, err, sizeof(err));
                if (n == 64) {
                        if (!f)
                                fail_msg("%s: %s", expr, err);
                        expect_results(f, expr, "0100"); /* an even number of nots */
                        exb_filter_destroy(f);
                } else {
                        assert_null(f);
                        assert_non_null(strstr(err, "expression nested deeper than 64"));
                }
        }
}

static void test_api_errors(void **state)
{
        char err[128];
        (void)state;
        assert_null(exb_filter_parse(NULL, &pop_schema, err, sizeof(err)));
        assert_string_equal(err, "filter: no expression");
        assert_null(exb_filter_parse("age > 1", NULL, err, sizeof(err)));
        assert_string_equal(err, "filter: no schema");
        exb_filter_destroy(NULL);
}

/* ------------------------------------------------------------ binding */

/* A later writer schema of the same resource: reordered, `age` dropped,
 * an item added. */
static exb_field_t v2_fields[] = {
        {"region", NULL, EXB_T_STRING, 1},
        {"id_number", NULL, EXB_T_STRING, 0},
        {"email", NULL, EXB_T_STRING, 1},
        {"income", NULL, EXB_T_NUMBER, 1},
};
static exb_schema_t v2_schema = {9, "R370600_GA_0001", 4, v2_fields, NULL};

/* `age` has another type here: binding must fail. */
static exb_field_t bad_fields[] = {
        {"id_number", NULL, EXB_T_STRING, 0},
        {"age", NULL, EXB_T_NUMBER, 1},
};
static exb_schema_t bad_schema = {11, "R370600_GA_0001", 2, bad_fields, NULL};

static void test_bind(void **state)
{
        exb_filter_t *f;
        exb_val_t v[4];
        exb_record_t rec = {EXB_OP_CREATE, {NULL, 0}, {NULL, 0}, 0, 4, v};
        char err[256];
        (void)state;

        f = parse_ok("region == \"370602\" and (age == null or age >= 18) and income > 0",
                     &pop_schema);
        expect_results(f, "bound to the parse schema", "1000");

        assert_int_equal(exb_filter_bind(f, &v2_schema, err, sizeof(err)), 0);
        set_str(&v[0], "370602");
        set_str(&v[1], "370602199001011239");
        v[2].is_null = 1;
        set_dbl(&v[3], 10.0);
        assert_int_equal(exb_filter_eval(f, &rec), 1); /* no age in v2: null */
        set_dbl(&v[3], -1.0);
        assert_int_equal(exb_filter_eval(f, &rec), 0);
        set_dbl(&v[3], 10.0);
        set_str(&v[0], "370613");
        assert_int_equal(exb_filter_eval(f, &rec), 0);

        /* A failed bind names item and schema and keeps the old binding. */
        assert_int_equal(exb_filter_bind(f, &bad_schema, err, sizeof(err)), -1);
        assert_string_equal(err, "filter: item \"age\" is I (integer) in the filter but N "
                                 "(number) in schema R370600_GA_0001");
        set_str(&v[0], "370602");
        assert_int_equal(exb_filter_eval(f, &rec), 1);

        /* Back to the parse schema. */
        assert_int_equal(exb_filter_bind(f, &pop_schema, err, sizeof(err)), 0);
        expect_results(f, "rebound", "1000");

        /* A record shorter than the bound schema reads the missing items as
         * null (defensive: never read past nvals). */
        rec.nvals = 0;
        rec.vals = NULL;
        assert_int_equal(exb_filter_eval(f, &rec), 0);
        exb_filter_destroy(f);

        /* Unregistered schemas (id -1) are re-bound on every call. */
        {
                exb_schema_t a = {-1, "A", 4, v2_fields, NULL};
                exb_field_t swapped[] = {{"income", NULL, EXB_T_NUMBER, 1},
                                         {"region", NULL, EXB_T_STRING, 1}};
                exb_schema_t b = {-1, "B", 2, swapped, NULL};
                exb_val_t w[4];
                exb_record_t r2 = {EXB_OP_CREATE, {NULL, 0}, {NULL, 0}, 0, 4, w};

                f = parse_ok("region == \"x\"", &a);
                set_str(&w[0], "x");
                set_str(&w[1], "y");
                w[2].is_null = w[3].is_null = 1;
                assert_int_equal(exb_filter_eval(f, &r2), 1);
                assert_int_equal(exb_filter_bind(f, &b, err, sizeof(err)), 0);
                assert_int_equal(exb_filter_eval(f, &r2), 0); /* region is field 1 now */
                set_str(&w[1], "x");
                assert_int_equal(exb_filter_eval(f, &r2), 1);
                exb_filter_destroy(f);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_eval),       cmocka_unit_test(test_long_chain),
                cmocka_unit_test(test_errors),     cmocka_unit_test(test_nesting_limit),
                cmocka_unit_test(test_api_errors), cmocka_unit_test(test_bind),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
