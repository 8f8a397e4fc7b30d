/*
 * test_mask.c — masks and text forms (exchange-core/exb_mask.c).
 *
 * Expected HMAC values are RFC 4231 test vectors or were computed
 * independently with Python's hmac module; they also pin the text form a
 * non-string value is hashed on, which is part of the pseudonym contract
 * (changing it changes every subscriber's pseudonyms).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "exb_mask.h"

/* ------------------------------------------------------------ parse */

static void test_parse(void **state)
{
        static const struct {
                const char *spec;
                int rc;
                exb_mask_kind_t kind;
                int head, tail;
                const char *text; /* exb_mask_format, or the error substring */
        } cases[] = {
                {"partial:6:4", 0, EXB_MASK_PARTIAL, 6, 4, "partial:6:4"},
                {"partial:0:0", 0, EXB_MASK_PARTIAL, 0, 0, "partial:0:0"},
                {"partial:64:64", 0, EXB_MASK_PARTIAL, 64, 64, "partial:64:64"},
                {"partial:01:2", 0, EXB_MASK_PARTIAL, 1, 2, "partial:1:2"},
                {"hash", 0, EXB_MASK_HASH, 0, 0, "hash"},
                {"redact", 0, EXB_MASK_REDACT, 0, 0, "redact"},
                {"none", 0, EXB_MASK_NONE, 0, 0, "none"},
                {"partial", -1, 0, 0, 0, "mask \"partial\": expected partial:HEAD:TAIL"},
                {"partial:6", -1, 0, 0, 0, "expected partial:HEAD:TAIL, each 0..64"},
                {"partial:6:", -1, 0, 0, 0, "expected partial:HEAD:TAIL"},
                {"partial::4", -1, 0, 0, 0, "expected partial:HEAD:TAIL"},
                {"partial:65:0", -1, 0, 0, 0, "each 0..64"},
                {"partial:-1:2", -1, 0, 0, 0, "expected partial:HEAD:TAIL"},
                {"partial:6:4:1", -1, 0, 0, 0, "expected partial:HEAD:TAIL"},
                {"partial:6:4 ", -1, 0, 0, 0, "expected partial:HEAD:TAIL"},
                {"partial:a:b", -1, 0, 0, 0, "expected partial:HEAD:TAIL"},
                {"partial:99999999999:1", -1, 0, 0, 0, "expected partial:HEAD:TAIL"},
                {"partialx:1:2", -1, 0, 0, 0, "unknown mask \"partialx:1:2\""},
                {"Hash", -1, 0, 0, 0,
                 "unknown mask \"Hash\" (expected partial:H:T, hash or redact)"},
                {"hsah", -1, 0, 0, 0, "unknown mask \"hsah\""},
                {"", -1, 0, 0, 0, "unknown mask \"\""},
                {NULL, -1, 0, 0, 0, "mask: missing"},
        };
        size_t i;
        (void)state;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                exb_mask_t m;
                char err[256] = "", text[32];
                int rc = exb_mask_parse(cases[i].spec, &m, err, sizeof(err));
                if (rc != cases[i].rc)
                        fail_msg("\"%s\": rc %d (%s), expected %d", cases[i].spec, rc, err,
                                 cases[i].rc);
                if (rc) {
                        if (!strstr(err, cases[i].text))
                                fail_msg("\"%s\": error \"%s\" lacks \"%s\"", cases[i].spec, err,
                                         cases[i].text);
                        continue;
                }
                assert_int_equal(m.kind, cases[i].kind);
                assert_int_equal(m.head, cases[i].head);
                assert_int_equal(m.tail, cases[i].tail);
                exb_mask_format(&m, text, sizeof(text));
                assert_string_equal(text, cases[i].text);
        }
}

/* ------------------------------------------------------------ text form */

static exb_val_t v_int(int64_t i)
{
        exb_val_t v = {0};
        v.u.i = i;
        return v;
}

static exb_val_t v_dbl(double d)
{
        exb_val_t v = {0};
        v.u.d = d;
        return v;
}

static exb_val_t v_str(const char *p, size_t len)
{
        exb_val_t v = {0};
        v.u.s.p = p;
        v.u.s.len = len;
        return v;
}

#define V_STR(lit) v_str((lit), sizeof(lit) - 1)

static exb_val_t v_null(void)
{
        exb_val_t v = {0};
        v.is_null = 1;
        return v;
}

typedef struct {
        exb_type_t type;
        exb_val_t v;
        const char *text;
        size_t text_len;
} text_case_t;

static void test_val_to_text(void **state)
{
        const text_case_t cases[] = {
                {EXB_T_STRING, V_STR("张三丰"), "张三丰", 9},
                {EXB_T_STRING, V_STR("a\0b"), "a\0b", 3},
                {EXB_T_STRING, V_STR(""), "", 0},
                {EXB_T_INT, v_int(0), "0", 1},
                {EXB_T_INT, v_int(-42), "-42", 3},
                {EXB_T_INT, v_int(INT64_MIN), "-9223372036854775808", 20},
                {EXB_T_INT, v_int(INT64_MAX), "9223372036854775807", 19},
                {EXB_T_NUMBER, v_dbl(0.1), "0.1", 3},
                {EXB_T_NUMBER, v_dbl(1.0 / 3), "0.3333333333333333", 18},
                {EXB_T_NUMBER, v_dbl(0.1 + 0.2), "0.30000000000000004", 19},
                {EXB_T_NUMBER, v_dbl(18.0), "18", 2},
                {EXB_T_NUMBER, v_dbl(-0.5), "-0.5", 4},
                {EXB_T_NUMBER, v_dbl(1e20), "1e+20", 5},
                {EXB_T_NUMBER, v_dbl(1e-7), "1e-07", 5},
                {EXB_T_NUMBER, v_dbl(123456789.123), "123456789.123", 13},
                {EXB_T_NUMBER, v_dbl(9007199254740992.0), "9007199254740992", 16},
                {EXB_T_DATE, v_int(0), "1970-01-01", 10},
                {EXB_T_DATE, v_int(-1), "1969-12-31", 10},
                {EXB_T_DATE, v_int(20468), "2026-01-15", 10},
                {EXB_T_TIMESTAMP, v_int(0), "1970-01-01T00:00:00.000Z", 24},
                {EXB_T_TIMESTAMP, v_int(1768465800123), "2026-01-15T08:30:00.123Z", 24},
                {EXB_T_BOOL, v_int(1), "true", 4},
                {EXB_T_BOOL, v_int(0), "false", 5},
                {EXB_T_BYTES, V_STR("\xde\xad\xbe\xef\x00\x01"), "deadbeef0001", 12},
                {EXB_T_BYTES, V_STR(""), "", 0},
                {EXB_T_STRING, v_null(), "", 0},
                {EXB_T_INT, v_null(), "", 0},
        };
        exb_buf_t b;
        size_t i;
        (void)state;

        exb_buf_init(&b, 0);
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                exb_buf_reset(&b);
                exb_buf_append(&b, "<", 1); /* appends: the prefix stays */
                assert_int_equal(exb_val_to_text(cases[i].type, &cases[i].v, &b), 0);
                if (b.len != cases[i].text_len + 1 || b.p[0] != '<' ||
                    memcmp(b.p + 1, cases[i].text, cases[i].text_len))
                        fail_msg("case %zu (%c): got \"%.*s\", expected \"<%s\"", i, cases[i].type,
                                 (int)b.len, (const char *)b.p, cases[i].text);
        }
        /* A maximum that is too small: -1, nothing appended. */
        exb_buf_free(&b);
        exb_buf_init(&b, 4);
        exb_val_t big = V_STR("\x01\x02\x03");
        assert_int_equal(exb_val_to_text(EXB_T_BYTES, &big, &b), -1);
        assert_int_equal(b.len, 0);
        exb_buf_free(&b);
}

/* ------------------------------------------------------------ apply */

typedef struct {
        const char *spec;
        exb_type_t type;
        exb_val_t in;
        int out_null;
        const char *out; /* when not null */
        size_t out_len;
} apply_case_t;

#define OUT(lit) 0, (lit), sizeof(lit) - 1

static const char secret[] = "router-secret";

static void run_apply(const apply_case_t *cases, size_t n, const void *key, size_t key_len)
{
        exb_buf_t scratch;
        size_t i;

        exb_buf_init(&scratch, 0);
        for (i = 0; i < n; i++) {
                exb_mask_t m;
                exb_val_t out;
                char err[128];
                memset(&out, 0x5a, sizeof(out));
                assert_int_equal(exb_mask_parse(cases[i].spec, &m, err, sizeof(err)), 0);
                assert_int_equal(exb_mask_apply(&m, cases[i].type, &cases[i].in, key, key_len,
                                                &scratch, &out),
                                 0);
                if (out.is_null != cases[i].out_null)
                        fail_msg("case %zu (%s): is_null %d", i, cases[i].spec, out.is_null);
                if (out.is_null)
                        continue;
                if (out.u.s.len != cases[i].out_len ||
                    memcmp(out.u.s.p, cases[i].out, cases[i].out_len))
                        fail_msg("case %zu (%s on %c): got \"%.*s\", expected \"%s\"", i,
                                 cases[i].spec, cases[i].type, (int)out.u.s.len, out.u.s.p,
                                 cases[i].out);
        }
        exb_buf_free(&scratch);
}

static void test_partial(void **state)
{
        const apply_case_t cases[] = {
                {"partial:6:4", EXB_T_STRING, V_STR("370602199001011239"),
                 OUT("370602********1239")},
                {"partial:1:0", EXB_T_STRING, V_STR("张三丰"), OUT("张**")},
                {"partial:1:1", EXB_T_STRING, V_STR("张三丰"), OUT("张*丰")},
                {"partial:0:1", EXB_T_STRING, V_STR("欧阳娜娜"), OUT("***娜")},
                /* at most H+T characters: all starred, one star per character */
                {"partial:1:1", EXB_T_STRING, V_STR("张三"), OUT("**")},
                {"partial:6:4", EXB_T_STRING, V_STR("1234567890"), OUT("**********")},
                {"partial:6:4", EXB_T_STRING, V_STR("张"), OUT("*")},
                {"partial:2:2", EXB_T_STRING, V_STR(""), OUT("")},
                {"partial:0:0", EXB_T_STRING, V_STR("abc"), OUT("***")},
                {"partial:2:0", EXB_T_STRING, V_STR("abcdef"), OUT("ab****")},
                {"partial:0:2", EXB_T_STRING, V_STR("abcdef"), OUT("****ef")},
                {"partial:2:3", EXB_T_STRING, V_STR("北京市海淀区abc"), OUT("北京****abc")},
                {"partial:1:1", EXB_T_STRING, V_STR("😀😀😀"), OUT("😀*😀")},
                /* ASCII is scanned 8 bytes at a time: other characters after it */
                {"partial:2:2", EXB_T_STRING, V_STR("abcdefghij张三"), OUT("ab********张三")},
                {"partial:1:1", EXB_T_STRING, V_STR("abcdefgh张"), OUT("a*******张")},
                {"partial:9:0", EXB_T_STRING, V_STR("abcdefgh张z"), OUT("abcdefgh张*")},
                {"partial:2:2", EXB_T_STRING, V_STR("a\0b\0c"), OUT("a\0*\0c")},
                /* malformed UTF-8: one character per bad byte, never split */
                {"partial:1:1", EXB_T_STRING,
                 V_STR("\xff\xfe"
                       "ab"),
                 OUT("\xff**b")},
                {"partial:1:1", EXB_T_STRING,
                 V_STR("a\xe5\xbc"
                       "b"),
                 OUT("a**b")},
                {"partial:1:0", EXB_T_STRING, V_STR("\xe5\xbc\xa0\xe4"), OUT("\xe5\xbc\xa0*")},
                /* other types are masked on their text form and become strings */
                {"partial:2:2", EXB_T_INT, v_int(370602), OUT("37**02")},
                {"partial:4:0", EXB_T_DATE, v_int(20468), OUT("2026******")},
                {"partial:4:0", EXB_T_TIMESTAMP, v_int(1768465800123),
                 OUT("2026********************")},
                {"partial:2:0", EXB_T_NUMBER, v_dbl(1234.5), OUT("12****")},
                {"partial:1:0", EXB_T_BOOL, v_int(1), OUT("t***")},
                {"partial:2:2", EXB_T_BYTES, V_STR("\xde\xad\xbe\xef"), OUT("de****ef")},
                /* null stays null */
                {"partial:6:4", EXB_T_STRING, v_null(), 1, NULL, 0},
                {"partial:6:4", EXB_T_DATE, v_null(), 1, NULL, 0},
        };
        (void)state;
        run_apply(cases, sizeof(cases) / sizeof(cases[0]), secret, strlen(secret));
}

static void test_hash(void **state)
{
        const apply_case_t cases[] = {
                {"hash", EXB_T_STRING, V_STR("370602199001011239"),
                 OUT("1f1cef0ef33bb51b16aaa05fa29bd2f4ac211e3527cfbfbada10c85273cf28a0")},
                {"hash", EXB_T_STRING, V_STR("张三丰"),
                 OUT("915da0efaa3da7dfc8ca155ae5527ac3cc378db6e6f77bf0ba19f803b8b5db17")},
                /* a date is hashed on its text form "2026-01-15" */
                {"hash", EXB_T_DATE, v_int(20468),
                 OUT("9edfd3a979ed01297ee7f3bed8d7472fef445f91e1dd8f5be2612dda7c97dad0")},
                {"hash", EXB_T_STRING, v_null(), 1, NULL, 0},
        };
        (void)state;
        run_apply(cases, sizeof(cases) / sizeof(cases[0]), secret, strlen(secret));
}

/* RFC 4231 and edge keys: empty, exactly one block, longer than a block. */
static void test_hash_keys(void **state)
{
        static const char k64[] =
                "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
        static const char k65[] =
                "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
        static unsigned char kaa[131];
        const struct {
                const void *key;
                size_t key_len;
                apply_case_t c;
        } cases[] = {
                {"Jefe",
                 4,
                 {"hash", EXB_T_STRING, V_STR("what do ya want for nothing?"),
                  OUT("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")}},
                {kaa,
                 sizeof(kaa),
                 {"hash", EXB_T_STRING,
                  V_STR("Test Using Larger Than Block-Size Key - Hash Key First"),
                  OUT("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")}},
                {"",
                 0,
                 {"hash", EXB_T_STRING, V_STR(""),
                  OUT("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")}},
                {NULL,
                 0,
                 {"hash", EXB_T_STRING, V_STR(""),
                  OUT("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")}},
                {k64,
                 64,
                 {"hash", EXB_T_STRING, V_STR("x"),
                  OUT("f91c4c403625fb06910ef93999265bbd2d62baeaec6ff36455498cc124fe3e66")}},
                {k65,
                 65,
                 {"hash", EXB_T_STRING, V_STR("x"),
                  OUT("75092ca3ee2b307470c227697b42b3e65376aa3bae98fb5a1f7b7536daa9588a")}},
        };
        size_t i, round;
        (void)state;

        memset(kaa, 0xaa, sizeof(kaa));
        /* Twice round, so the per-thread key cache is rebuilt on every
         * change of secret and reused when it repeats. */
        for (round = 0; round < 2; round++)
                for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                        run_apply(&cases[i].c, 1, cases[i].key, cases[i].key_len);
                        run_apply(&cases[i].c, 1, cases[i].key, cases[i].key_len);
                }
}

static void test_redact_none(void **state)
{
        exb_mask_t m;
        exb_val_t in = V_STR("370602199001011239"), out;
        exb_buf_t scratch;
        char err[128];
        (void)state;

        exb_buf_init(&scratch, 0);
        assert_int_equal(exb_mask_parse("redact", &m, err, sizeof(err)), 0);
        assert_int_equal(exb_mask_apply(&m, EXB_T_STRING, &in, NULL, 0, &scratch, &out), 0);
        assert_true(out.is_null);
        assert_int_equal(exb_mask_result_type(&m, EXB_T_DATE), EXB_T_DATE);

        assert_int_equal(exb_mask_parse("none", &m, err, sizeof(err)), 0);
        assert_int_equal(exb_mask_apply(&m, EXB_T_STRING, &in, NULL, 0, &scratch, &out), 0);
        assert_false(out.is_null);
        assert_ptr_equal(out.u.s.p, in.u.s.p);
        assert_int_equal(out.u.s.len, in.u.s.len);
        assert_int_equal(exb_mask_result_type(&m, EXB_T_INT), EXB_T_INT);

        assert_int_equal(exb_mask_parse("hash", &m, err, sizeof(err)), 0);
        assert_int_equal(exb_mask_result_type(&m, EXB_T_DATE), EXB_T_STRING);
        assert_int_equal(exb_mask_parse("partial:1:1", &m, err, sizeof(err)), 0);
        assert_int_equal(exb_mask_result_type(&m, EXB_T_BYTES), EXB_T_STRING);
        exb_buf_free(&scratch);
}

/* out->utf8_ok: set when the masked value is known to be valid UTF-8, so
 * the encoder skips its check; and whenever it is set, the value is valid
 * (every partial:H:T of checked strings, ASCII and CJK, 0..5 each). */
static void test_utf8_mark(void **state)
{
        static const struct {
                const char *spec;
                exb_type_t type;
                int in_ok; /* the input's mark */
                int want;  /* the output's mark */
        } cases[] = {
                {"partial:1:1", EXB_T_STRING, 1, 1}, /* whole characters of valid text */
                {"partial:1:1", EXB_T_STRING, 0, 0}, /* unchecked text stays unchecked */
                {"partial:1:1", EXB_T_INT, 0, 1},    /* text forms are ASCII */
                {"partial:1:1", EXB_T_BYTES, 0, 1},  /* hex */
                {"hash", EXB_T_STRING, 0, 1},        /* hex */
                {"hash", EXB_T_DATE, 0, 1},
                {"none", EXB_T_STRING, 1, 1}, /* a copy keeps it */
                {"none", EXB_T_STRING, 0, 0},
        };
        static const char *const texts[] = {"370602199001011239", "张三丰", "北京市海淀区abc",
                                            "😀a😀", "", "a"};
        exb_buf_t scratch;
        char err[128];
        (void)state;
        exb_buf_init(&scratch, 0);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                exb_mask_t m;
                exb_val_t in = {.u.s = exb_str("张三丰"), .utf8_ok = cases[i].in_ok}, out;
                if (cases[i].type != EXB_T_STRING && cases[i].type != EXB_T_BYTES)
                        in = (exb_val_t){.u.i = 20468, .utf8_ok = cases[i].in_ok};
                assert_int_equal(exb_mask_parse(cases[i].spec, &m, err, sizeof(err)), 0);
                assert_int_equal(exb_mask_apply(&m, cases[i].type, &in, secret, strlen(secret),
                                                &scratch, &out),
                                 0);
                if (out.utf8_ok != cases[i].want)
                        fail_msg("case %zu (%s): utf8_ok %d, want %d", i, cases[i].spec,
                                 out.utf8_ok, cases[i].want);
        }
        for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++)
                for (int h = 0; h <= 5; h++)
                        for (int k = 0; k <= 5; k++) {
                                char spec[32];
                                exb_mask_t m;
                                exb_val_t in = {.u.s = exb_str(texts[t]), .utf8_ok = 1}, out;
                                snprintf(spec, sizeof(spec), "partial:%d:%d", h, k);
                                assert_int_equal(exb_mask_parse(spec, &m, err, sizeof(err)), 0);
                                assert_int_equal(exb_mask_apply(&m, EXB_T_STRING, &in, NULL, 0,
                                                                &scratch, &out),
                                                 0);
                                assert_int_equal(out.utf8_ok, 1);
                                if (!exb_utf8_valid(out.u.s.p, out.u.s.len))
                                        fail_msg("%s of \"%s\" is not valid UTF-8", spec,
                                                 texts[t]);
                        }
        /* redact: null, nothing to check */
        exb_mask_t m;
        exb_val_t in = {.u.s = exb_str("x"), .utf8_ok = 1}, out;
        assert_int_equal(exb_mask_parse("redact", &m, err, sizeof(err)), 0);
        assert_int_equal(exb_mask_apply(&m, EXB_T_STRING, &in, NULL, 0, &scratch, &out), 0);
        assert_true(out.is_null);
        exb_buf_free(&scratch);
}

/* scratch's maximum is respected; once grown, scratch is reused without
 * reallocation (the router's per-record path). */
static void test_scratch(void **state)
{
        exb_mask_t part, hash;
        exb_val_t in = V_STR("370602199001011239"), out;
        exb_buf_t scratch;
        char err[128];
        const uint8_t *p;
        int i;
        (void)state;

        assert_int_equal(exb_mask_parse("partial:6:4", &part, err, sizeof(err)), 0);
        assert_int_equal(exb_mask_parse("hash", &hash, err, sizeof(err)), 0);

        exb_buf_init(&scratch, 10);
        assert_int_equal(exb_mask_apply(&part, EXB_T_STRING, &in, NULL, 0, &scratch, &out), -1);
        exb_buf_free(&scratch);
        exb_buf_init(&scratch, 63); /* a pseudonym needs 64 */
        assert_int_equal(
                exb_mask_apply(&hash, EXB_T_STRING, &in, secret, strlen(secret), &scratch, &out),
                -1);
        exb_buf_free(&scratch);

        exb_buf_init(&scratch, 0);
        assert_int_equal(
                exb_mask_apply(&hash, EXB_T_STRING, &in, secret, strlen(secret), &scratch, &out),
                0);
        p = scratch.p;
        for (i = 0; i < 1000; i++) {
                const exb_mask_t *m = (i & 1) ? &part : &hash;
                assert_int_equal(exb_mask_apply(m, EXB_T_STRING, &in, secret, strlen(secret),
                                                &scratch, &out),
                                 0);
                assert_ptr_equal(scratch.p, p);
                assert_ptr_equal(out.u.s.p, (const char *)p);
        }
        /* Each call resets scratch: the last result only. */
        assert_int_equal(out.u.s.len, 18);
        assert_memory_equal(out.u.s.p, "370602********1239", 18);
        exb_buf_free(&scratch);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),     cmocka_unit_test(test_val_to_text),
                cmocka_unit_test(test_partial),   cmocka_unit_test(test_hash),
                cmocka_unit_test(test_hash_keys), cmocka_unit_test(test_redact_none),
                cmocka_unit_test(test_scratch),   cmocka_unit_test(test_utf8_mark),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
