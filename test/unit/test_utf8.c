/*
 * test_utf8.c — the UTF-8 check (exb_utf8_valid_prefix, exb_utf8_count in
 * exchange-core/exb_common.c) and who may skip it (exb_val_t.utf8_ok).
 *
 * What is proven here:
 *  - the check agrees with a plain reference decoder (code point, then
 *    range tests, written after RFC 3629 rather than after table 3-7) on
 *    named edge cases, on every 1- and 2-byte string, on every lead byte
 *    with every second byte and chosen later bytes, each placed across the
 *    8-byte boundary of the ASCII fast path, and on 200,000 random strings
 *    (fixed seed) made of ASCII runs, characters of every length and
 *    corruptions;
 *  - exb_utf8_count counts code points like the reference;
 *  - exb_validate checks the UTF-8 of values not marked utf8_ok, counts
 *    characters (not bytes) against an item's length whether marked or not,
 *    and keeps the gb11643 check for marked values;
 *  - the chain the router runs, decode -> validate -> encode, accepts what
 *    the decoder accepted, and the encoder still refuses invalid UTF-8 given
 *    to it from elsewhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exb_catalog.h"
#include "exb_codec.h"
#include "exb_common.h"
#include "exb_control.h"
#include "exb_validate.h"

/* ------------------------------------------------------------ reference */

/* Length of the valid prefix, decoding each code point and testing its
 * range: overlong (below the minimum of its length), surrogate, above
 * U+10FFFF, truncated, or a bad continuation byte all end the prefix at the
 * start of that sequence. */
static size_t ref_prefix(const uint8_t *p, size_t len)
{
        size_t i = 0;
        while (i < len) {
                uint32_t c = p[i], cp, min;
                size_t n;
                if (c < 0x80) {
                        i++;
                        continue;
                } else if ((c & 0xE0) == 0xC0) {
                        n = 2, cp = c & 0x1F, min = 0x80;
                } else if ((c & 0xF0) == 0xE0) {
                        n = 3, cp = c & 0x0F, min = 0x800;
                } else if ((c & 0xF8) == 0xF0) {
                        n = 4, cp = c & 0x07, min = 0x10000;
                } else {
                        return i;
                }
                if (len - i < n)
                        return i;
                for (size_t k = 1; k < n; k++) {
                        if ((p[i + k] & 0xC0) != 0x80)
                                return i;
                        cp = cp << 6 | (p[i + k] & 0x3F);
                }
                if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return i;
                i += n;
        }
        return len;
}

static size_t ref_count(const uint8_t *p, size_t len)
{
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
                n += p[i] < 0x80 || p[i] >= 0xC0;
        return n;
}

/* Checks p[0..len) in a fresh allocation of exactly len bytes (so ASan and
 * valgrind see any overread) against the reference. */
static void check_same(const uint8_t *p, size_t len, const char *what)
{
        uint8_t *copy = len ? malloc(len) : NULL;
        if (len)
                memcpy(copy, p, len);
        size_t want = ref_prefix(copy, len), got = exb_utf8_valid_prefix(copy, len);
        if (got != want) {
                char hex[3 * 64 + 1] = "";
                for (size_t i = 0; i < len && i < 64; i++)
                        snprintf(hex + 3 * i, 4, "%02x ", copy[i]);
                fail_msg("%s: [%s] (%zu bytes): prefix %zu, reference %zu", what, hex, len, got,
                         want);
        }
        assert_int_equal(exb_utf8_valid(copy, len), want == len);
        if (want == len)
                assert_int_equal(exb_utf8_count(copy, len), ref_count(copy, len));
        free(copy);
}

/* ---------------------------------------------------------------- cases */

static uint8_t *unhex(const char *hex, size_t *len)
{
        size_t n = 0;
        uint8_t *out = malloc(strlen(hex) / 2 + 1);
        int hi = -1;
        for (const char *p = hex; *p; p++) {
                int v;
                if (*p >= '0' && *p <= '9')
                        v = *p - '0';
                else if (*p >= 'a' && *p <= 'f')
                        v = *p - 'a' + 10;
                else
                        continue;
                if (hi < 0) {
                        hi = v;
                } else {
                        out[n++] = (uint8_t)(hi << 4 | v);
                        hi = -1;
                }
        }
        *len = n;
        return out;
}

static void test_edges(void **state)
{
        (void)state;
        static const struct {
                const char *hex;
                size_t prefix;
        } cases[] = {
                {"", 0},
                {"41", 1},
                {"c280", 2},                   /* U+0080, smallest 2-byte */
                {"dfbf", 2},                   /* U+07FF */
                {"c080", 0},                   /* overlong NUL */
                {"c1bf", 0},                   /* overlong U+007F */
                {"e0a080", 3},                 /* U+0800, smallest 3-byte */
                {"e09fbf", 0},                 /* overlong U+07FF */
                {"e4b8ad", 3},                 /* 中 */
                {"ed9fbf", 3},                 /* U+D7FF, below the surrogates */
                {"eda080", 0},                 /* U+D800 */
                {"edbfbf", 0},                 /* U+DFFF */
                {"ee8080", 3},                 /* U+E000, above them */
                {"efbfbf", 3},                 /* U+FFFF */
                {"f0908080", 4},               /* U+10000 */
                {"f08fbfbf", 0},               /* overlong U+FFFF */
                {"f48fbfbf", 4},               /* U+10FFFF */
                {"f4908080", 0},               /* U+110000 */
                {"f5808080", 0},               /* lead F5 */
                {"ff", 0},                     /* never in UTF-8 */
                {"80", 0},                     /* lone continuation */
                {"41 bf", 1},                  /* continuation after ASCII */
                {"e4b8", 0},                   /* truncated at the end */
                {"e441 41", 0},                /* ASCII where a continuation belongs */
                {"e4b8ad e4b8", 3},            /* second character truncated */
                {"41424344454647 e4b8ad", 10}, /* character across the 8-byte boundary */
                {"41424344454647 e4b8", 7},    /* ... truncated there */
                {"4142434445464748 e4", 8},    /* lead byte just after a full word */
                {"4142434445464748 494a4b4c4d4e4f50 c3", 16},
                {"4142434445464748 494a4b4c4d4e4f50 c3a9", 18},
                {"41424344454647 80 4142434445464748", 7}, /* bad byte inside a word */
                {"e4b8ad 4142434445464748494a eda080", 13},
                {"00 7f", 2}, /* NUL and DEL are ASCII */
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                size_t len;
                uint8_t *b = unhex(cases[i].hex, &len);
                size_t got = exb_utf8_valid_prefix(b, len);
                if (got != cases[i].prefix)
                        fail_msg("case %zu (%s): prefix %zu, want %zu", i, cases[i].hex, got,
                                 cases[i].prefix);
                check_same(b, len, cases[i].hex);
                free(b);
        }
        assert_int_equal(exb_utf8_valid_prefix(NULL, 0), 0);
        assert_int_equal(exb_utf8_count("张三 abc", strlen("张三 abc")), 6);
}

/* Every 1- and 2-byte string, and every lead byte with every second byte
 * and chosen later bytes, at offsets around the 8-byte boundary. */
static void test_exhaustive(void **state)
{
        (void)state;
        static const uint8_t later[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                        0x9f, 0xa0, 0xbf, 0xc0, 0xe4, 0xff};
        /* where the sequence starts, after ASCII or after a CJK character
         * (the validator reads two of those at once when 8 bytes are left) */
        static const struct {
                const char *before;
                size_t at;
        } starts[] = {
                {"", 0}, {"", 6}, {"", 7}, {"", 8}, {"\xE4\xB8\x80", 3}, {"a\xE4\xB8\x80", 4}};
        uint8_t buf[16];
        for (int a = 0; a < 256; a++) {
                buf[0] = (uint8_t)a;
                check_same(buf, 1, "1 byte");
                for (int b = 0; b < 256; b++) {
                        buf[1] = (uint8_t)b;
                        check_same(buf, 2, "2 bytes");
                }
        }
        for (size_t o = 0; o < EXB_ARRAY_CNT(starts); o++) {
                memset(buf, 'a', sizeof(buf));
                memcpy(buf, starts[o].before, strlen(starts[o].before));
                size_t at = starts[o].at;
                uint8_t *q = buf + at;
                for (int lead = 0xc0; lead < 0x100; lead++)
                        for (int b1 = 0; b1 < 256; b1++)
                                for (size_t k = 0; k < EXB_ARRAY_CNT(later); k++) {
                                        q[0] = (uint8_t)lead;
                                        q[1] = (uint8_t)b1;
                                        q[2] = later[k];
                                        q[3] = 0x80;
                                        check_same(buf, at + 3, "3 bytes");
                                        check_same(buf, at + 4, "4 bytes");
                                        check_same(buf, sizeof(buf), "16 bytes");
                                        /* another later byte: pairs continuation
                                         * bytes with others */
                                        q[3] = later[(5 * k + 1) % EXB_ARRAY_CNT(later)];
                                        check_same(buf, at + 4, "4 bytes");
                                        check_same(buf, sizeof(buf), "16 bytes");
                                }
        }
}

/* Appends code point cp as UTF-8 (any value up to 0x1FFFFF, so that
 * surrogates and values above U+10FFFF are made too). */
static size_t put_cp(uint8_t *o, uint32_t cp)
{
        if (cp < 0x80) {
                o[0] = (uint8_t)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (uint8_t)(0xC0 | cp >> 6);
                o[1] = (uint8_t)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (uint8_t)(0xE0 | cp >> 12);
                o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
                o[2] = (uint8_t)(0x80 | (cp & 0x3F));
                return 3;
        }
        o[0] = (uint8_t)(0xF0 | cp >> 18);
        o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[3] = (uint8_t)(0x80 | (cp & 0x3F));
        return 4;
}

static uint32_t rnd_state = 20261123;
static uint32_t rnd(void) /* xorshift32: same sequence everywhere */
{
        rnd_state ^= rnd_state << 13;
        rnd_state ^= rnd_state >> 17;
        rnd_state ^= rnd_state << 5;
        return rnd_state;
}

static void test_random(void **state)
{
        (void)state;
        uint8_t buf[96];
        int valid = 0;
        for (int iter = 0; iter < 200000; iter++) {
                size_t n = 0, want = rnd() % 48;
                while (n < want) {
                        uint32_t r = rnd() % 16;
                        if (r < 6) { /* an ASCII run */
                                for (uint32_t k = rnd() % 12; k-- && n < want;)
                                        buf[n++] = (uint8_t)(0x20 + rnd() % 95);
                        } else if (r < 12) { /* a valid character, CJK most often */
                                static const uint32_t lo[] = {0x80, 0x4E00, 0x800, 0x10000},
                                                      span[] = {0x780, 0x5200, 0xD000, 0x100000};
                                uint32_t k = rnd() % 4;
                                n += put_cp(buf + n, lo[k] + rnd() % span[k]);
                        } else if (r < 14) { /* a code point of any value, any length */
                                n += put_cp(buf + n, rnd() % 0x140000);
                        } else { /* a random byte */
                                buf[n++] = (uint8_t)rnd();
                        }
                }
                if (n && rnd() % 4 == 0) /* cut anywhere, maybe inside a character */
                        n = rnd() % n;
                check_same(buf, n, "random");
                valid += ref_prefix(buf, n) == n;
        }
        /* Both kinds were exercised in quantity. */
        assert_true(valid > 40000 && valid < 160000);
}

/* ------------------------------------------- validation and the trust chain */

static const char resource_json[] =
        "{\"code\": \"370600-GA-0001\", \"name\": \"人口基本信息\", \"provider\": \"GA\","
        " \"share_type\": \"unconditional\", \"key\": [\"id_number\"], \"items\": ["
        "  {\"name\": \"id_number\", \"type\": \"C\", \"length\": 18, \"required\": true,"
        "   \"check\": \"gb11643\"},"
        "  {\"name\": \"name\", \"type\": \"C\", \"length\": 2},"
        "  {\"name\": \"photo\", \"type\": \"B\", \"length\": 4}]}";

typedef struct {
        exb_resource_t *res;
        exb_schema_t *schema;
        exb_binding_t bind;
} fix_t;

static void fix_init(fix_t *fx)
{
        char err[512] = "";
        fx->res = exb_resource_parse_json("test", resource_json, strlen(resource_json), err,
                                          sizeof(err));
        if (!fx->res)
                fail_msg("%s", err);
        fx->schema = exb_resource_schema(fx->res, err, sizeof(err));
        if (!fx->schema)
                fail_msg("%s", err);
        fx->schema->id = 5;
        assert_int_equal(exb_binding_init(&fx->bind, fx->res, fx->schema, err, sizeof(err)), 0);
}

static void fix_free(fix_t *fx)
{
        exb_binding_free(&fx->bind);
        exb_schema_destroy(fx->schema);
        exb_resource_destroy(fx->res);
}

#define VS(lit) ((exb_val_t){.u.s = {(lit), sizeof(lit) - 1}})

/* exb_validate on values from outside (utf8_ok 0) and from the decoder. */
static void test_validate(void **state)
{
        (void)state;
        fix_t fx;
        fix_init(&fx);
        static const struct {
                const char *name; /* the "name" item, at most 2 characters */
                size_t len;
                int utf8_ok;
                const char *id;
                const char *err; /* substring, NULL = valid */
        } cases[] = {
                {"张三", 6, 0, "370602199001011239", NULL},
                {"张三", 6, 1, "370602199001011239", NULL},
                {"ab", 2, 0, "370602199001011239", NULL},
                {"张三丰", 9, 0, "370602199001011239", "item \"name\": 3 characters, at most 2"},
                {"张三丰", 9, 1, "370602199001011239", "item \"name\": 3 characters, at most 2"},
                {"abc", 3, 1, "370602199001011239", "3 characters, at most 2 allowed"},
                {"\xe5\xbc", 2, 0, "370602199001011239", "item \"name\": not valid UTF-8"},
                {"\xed\xa0\x80", 3, 0, "370602199001011239", "not valid UTF-8"},
                {"\xc0\x80", 2, 0, "370602199001011239", "not valid UTF-8"},
                /* a marked value is not checked again (the decoder did) */
                {"\xc0\x80", 2, 1, "370602199001011239", NULL},
                /* but its check characters are */
                {"ab", 2, 1, "370602199001011234", "check character is 4, expected 9"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                exb_val_t v[3] = {
                        {.u.s = exb_str(cases[i].id), .utf8_ok = cases[i].utf8_ok},
                        {.u.s = {cases[i].name, cases[i].len}, .utf8_ok = cases[i].utf8_ok},
                        {.is_null = 1},
                };
                exb_record_t rec = {.op = EXB_OP_CREATE,
                                    .event_id = EXB_STR("e1"),
                                    .source = EXB_STR("GA"),
                                    .nvals = 3,
                                    .vals = v};
                char err[512] = "";
                exb_err_t rc = exb_validate(&fx.bind, &rec, err, sizeof(err));
                if (!cases[i].err && rc != EXB_OK)
                        fail_msg("case %zu: %s", i, err);
                if (cases[i].err && (rc != EXB_ERR_INVALID || !strstr(err, cases[i].err)))
                        fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc, err, cases[i].err);
        }
        assert_int_equal(exb_utf8_len("张三", 6), 2);
        assert_int_equal(exb_utf8_len("\xe5\xbc", 2), -1);
        fix_free(&fx);
}

/* Decode marks strings; validate and encode accept the decoded record; the
 * encoder still refuses invalid UTF-8 that did not come from the decoder. */
static void test_trust_chain(void **state)
{
        (void)state;
        fix_t fx;
        fix_init(&fx);
        exb_val_t in[3] = {VS("370602199001011239"),
                           VS("张三"),
                           {.u.s = {"\x00\xff\xc0\x80", 4}}}; /* bytes: anything */
        exb_record_t rec = {.op = EXB_OP_UPDATE,
                            .event_id = EXB_STR("e-1"),
                            .source = EXB_STR("GA"),
                            .ts_ms = 1,
                            .nvals = 3,
                            .vals = in};
        exb_buf_t enc, again;
        exb_buf_init(&enc, 0);
        exb_buf_init(&again, 0);
        char err[512] = "";
        assert_int_equal(exb_codec_encode(fx.schema, &rec, &enc, err, sizeof(err)), EXB_OK);

        exb_val_t out[3];
        memset(out, 0xff, sizeof(out)); /* garbage in, defined marks out */
        exb_record_t got = {.vals = out};
        assert_int_equal(exb_codec_decode(fx.schema, enc.p, enc.len, &got, err, sizeof(err)),
                         EXB_OK);
        assert_int_equal(out[0].utf8_ok, 1);
        assert_int_equal(out[1].utf8_ok, 1);
        assert_int_equal(out[2].utf8_ok, 0); /* bytes are not text */
        assert_int_equal(exb_validate(&fx.bind, &got, err, sizeof(err)), EXB_OK);
        assert_int_equal(exb_codec_encode(fx.schema, &got, &again, err, sizeof(err)), EXB_OK);
        assert_int_equal(again.len, enc.len);
        assert_memory_equal(again.p, enc.p, enc.len);

        /* A null decoded into a slot that held a marked string is unmarked. */
        exb_val_t nul[3] = {VS("370602199001011239"), {.is_null = 1}, {.is_null = 1}};
        rec.vals = nul;
        exb_buf_reset(&enc);
        assert_int_equal(exb_codec_encode(fx.schema, &rec, &enc, err, sizeof(err)), EXB_OK);
        assert_int_equal(exb_codec_decode(fx.schema, enc.p, enc.len, &got, err, sizeof(err)),
                         EXB_OK);
        assert_true(out[1].is_null);
        assert_int_equal(out[1].utf8_ok, 0);

        /* Invalid UTF-8 from outside is refused by the encoder, and nothing
         * is left in the output. */
        static const char *const bad[] = {"\xe5\xbc", "\xed\xa0\x80", "\xc0\x80", "ok\xff"};
        for (size_t i = 0; i < EXB_ARRAY_CNT(bad); i++) {
                exb_val_t v[3] = {
                        VS("370602199001011239"), {.u.s = exb_str(bad[i])}, {.is_null = 1}};
                rec.vals = v;
                size_t len0 = enc.len;
                assert_int_equal(exb_codec_encode(fx.schema, &rec, &enc, err, sizeof(err)),
                                 EXB_ERR_INVALID);
                assert_non_null(strstr(err, "field \"name\": invalid UTF-8 in string"));
                assert_int_equal(enc.len, len0);
                /* The same bytes marked as checked are taken as they are:
                 * the mark is a promise by whoever set it. */
                v[1].utf8_ok = 1;
                assert_int_equal(exb_codec_encode(fx.schema, &rec, &enc, err, sizeof(err)), EXB_OK);
        }
        /* The envelope's strings are always checked. */
        exb_val_t ok[3] = {VS("370602199001011239"), VS("ab"), {.is_null = 1}};
        rec.vals = ok;
        rec.event_id = EXB_STR("e\xff");
        assert_int_equal(exb_codec_encode(fx.schema, &rec, &enc, err, sizeof(err)),
                         EXB_ERR_INVALID);
        assert_non_null(strstr(err, "field \"event_id\": invalid UTF-8"));
        exb_buf_free(&enc);
        exb_buf_free(&again);
        fix_free(&fx);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_edges),       cmocka_unit_test(test_exhaustive),
                cmocka_unit_test(test_random),      cmocka_unit_test(test_validate),
                cmocka_unit_test(test_trust_chain),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
