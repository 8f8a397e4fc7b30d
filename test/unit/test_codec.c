/*
 * test_codec.c — Confluent framing and the bounded Avro binary codec
 * (schemas/exb_codec.c).
 *
 * What is proven here:
 *  - a golden vector: our bytes equal those of the Apache Python Avro
 *    implementation for a sample population record;
 *  - round trips of every item type, nullable and not, at the edges of their
 *    ranges (INT64_MIN, int32 date limits, NaN, -0.0, long UTF-8, 100 KiB);
 *  - every truncation of every valid encoding fails cleanly (each prefix is a
 *    fresh allocation of exactly that size, so ASan/valgrind see overreads);
 *  - hostile inputs fail with a message naming the field and byte offset;
 *  - 100,000 mutated inputs (fixed seed) never crash, and whatever decodes
 *    re-encodes and decodes to the same record;
 *  - Avro C reads what we write, and we read what Avro C writes, for random
 *    records of all types (Avro C only ever sees valid data: it does not bound
 *    lengths);
 *  - encode errors roll the output buffer back; JSON rendering;
 *  - decoded strings are marked as checked UTF-8 (utf8_ok); the encoder
 *    trusts the mark and checks unmarked strings and the envelope's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>
#include <avro.h>

#include "exb_codec.h"

/* ------------------------------------------------------------- helpers */

#define VNULL   ((exb_val_t){.is_null = 1})
#define VS(lit) ((exb_val_t){.u.s = {(lit), sizeof(lit) - 1}})
#define VI(x)   ((exb_val_t){.u.i = (x)})
#define VD(x)   ((exb_val_t){.u.d = (x)})

/* All types, nullable and required; id 7. */
static const exb_field_t all_fields[] = {
        {"key", "键", EXB_T_STRING, 0}, {"s", NULL, EXB_T_STRING, 1},
        {"n", NULL, EXB_T_NUMBER, 1},   {"i", NULL, EXB_T_INT, 1},
        {"d", NULL, EXB_T_DATE, 1},     {"t", NULL, EXB_T_TIMESTAMP, 1},
        {"l", NULL, EXB_T_BOOL, 1},     {"b", NULL, EXB_T_BYTES, 1},
        {"rn", NULL, EXB_T_NUMBER, 0},  {"ri", NULL, EXB_T_INT, 0},
        {"rd", NULL, EXB_T_DATE, 0},    {"rt", NULL, EXB_T_TIMESTAMP, 0},
        {"rl", NULL, EXB_T_BOOL, 0},    {"rb", NULL, EXB_T_BYTES, 0},
};
#define ALL_N ((int)EXB_ARRAY_CNT(all_fields))

/* Small schema for hand-written hostile bytes; id 1.
 * Offsets of a record made with H_PREFIX: 0-4 frame, 5 op, 6-7 event_id "e",
 * 8-9 source "G", 10 ts_ms 1, 11-12 key "k", 13 s, then i, d, t, l, n, b. */
static const exb_field_t h_fields[] = {
        {"k", NULL, EXB_T_STRING, 0}, {"s", NULL, EXB_T_STRING, 1},    {"i", NULL, EXB_T_INT, 1},
        {"d", NULL, EXB_T_DATE, 1},   {"t", NULL, EXB_T_TIMESTAMP, 1}, {"l", NULL, EXB_T_BOOL, 1},
        {"n", NULL, EXB_T_NUMBER, 1}, {"b", NULL, EXB_T_BYTES, 1},
};
#define H_N      ((int)EXB_ARRAY_CNT(h_fields))
#define H_PREFIX "00 00000001 00 0265 0247 02 026b "

static exb_schema_t *mk_schema(const char *name, const exb_field_t *f, int n, int32_t id)
{
        char err[512] = "";
        exb_schema_t *s = exb_schema_new(name, f, n, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        s->id = id;
        return s;
}

/* Hex with optional spaces -> bytes in a fresh allocation of exactly that size. */
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
                else if (*p >= 'A' && *p <= 'F')
                        v = *p - 'A' + 10;
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
        return realloc(out, n ? n : 1);
}

static int str_same(exb_str_t a, exb_str_t b)
{
        return a.len == b.len && (a.len == 0 || !memcmp(a.p, b.p, a.len));
}

/* Returns NULL if equal, else a description of the first difference. */
static const char *rec_diff(const exb_schema_t *s, const exb_record_t *a, const exb_record_t *b)
{
        static char why[256];
        if (a->op != b->op)
                return "op";
        if (!str_same(a->event_id, b->event_id))
                return "event_id";
        if (!str_same(a->source, b->source))
                return "source";
        if (a->ts_ms != b->ts_ms)
                return "ts_ms";
        for (int i = 0; i < s->nfields; i++) {
                const exb_val_t *x = &a->vals[i], *y = &b->vals[i];
                int same;
                if (x->is_null || y->is_null)
                        same = x->is_null == y->is_null;
                else if (s->fields[i].type == EXB_T_STRING || s->fields[i].type == EXB_T_BYTES)
                        same = str_same(x->u.s, y->u.s);
                else if (s->fields[i].type == EXB_T_NUMBER)
                        same = !memcmp(&x->u.d, &y->u.d, sizeof(double));
                else if (s->fields[i].type == EXB_T_BOOL)
                        same = !x->u.i == !y->u.i;
                else
                        same = x->u.i == y->u.i;
                if (!same) {
                        snprintf(why, sizeof(why), "field %s", s->fields[i].name);
                        return why;
                }
        }
        return NULL;
}

/* xorshift64*: fixed-seed randomness for fuzz and cross-checks. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ULL;
}
static uint64_t rnd_below(uint64_t n)
{
        return n ? rnd() % n : 0;
}

/* A random int64 with a random bit width and sign. */
static int64_t rnd_int(void)
{
        int bits = (int)rnd_below(65);
        uint64_t v = bits == 64 ? rnd() : bits == 0 ? 0 : rnd() & ((1ULL << bits) - 1);
        return rnd_below(2) ? (int64_t)v : -(int64_t)v;
}

static size_t put_utf8(char *o, uint32_t cp)
{
        if (cp < 0x80) {
                o[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (char)(0xC0 | cp >> 6);
                o[1] = (char)(0x80 | (cp & 63));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (char)(0xE0 | cp >> 12);
                o[1] = (char)(0x80 | ((cp >> 6) & 63));
                o[2] = (char)(0x80 | (cp & 63));
                return 3;
        }
        o[0] = (char)(0xF0 | cp >> 18);
        o[1] = (char)(0x80 | ((cp >> 12) & 63));
        o[2] = (char)(0x80 | ((cp >> 6) & 63));
        o[3] = (char)(0x80 | (cp & 63));
        return 4;
}

/* Storage for the strings of one random record (each NUL-terminated). */
typedef struct {
        char buf[64 * 1024];
        size_t used;
} arena_t;

static exb_str_t rnd_str(arena_t *a, int utf8)
{
        size_t n = rnd_below(8) == 0 ? rnd_below(300) : rnd_below(24);
        char *start = a->buf + a->used, *o = start;
        for (size_t k = 0; k < n; k++) {
                if (!utf8) {
                        *o++ = (char)rnd();
                        continue;
                }
                uint32_t cp;
                switch (rnd_below(6)) {
                case 0:
                        cp = (uint32_t)rnd_below(0x80);
                        break; /* incl. NUL and controls */
                case 1:
                        cp = 0x80 + (uint32_t)rnd_below(0x800 - 0x80);
                        break;
                case 2:
                        cp = 0x4E00 + (uint32_t)rnd_below(0x9FFF - 0x4E00);
                        break;
                case 3:
                        cp = 0x10000 + (uint32_t)rnd_below(0x10FFFF - 0x10000);
                        break;
                case 4:
                        cp = 0xE000 + (uint32_t)rnd_below(0x2000);
                        break;
                default:
                        cp = 0x20 + (uint32_t)rnd_below(0x5F);
                        break;
                }
                o += put_utf8(o, cp);
        }
        *o++ = '\0';
        a->used += (size_t)(o - start);
        return (exb_str_t){start, (size_t)(o - start - 1)};
}

static void rnd_record(const exb_schema_t *s, arena_t *a, exb_record_t *rec, exb_val_t *vals)
{
        a->used = 0;
        rec->op = (exb_op_t)rnd_below(EXB_OP_CNT);
        rec->event_id = rnd_str(a, 1);
        rec->source = rnd_str(a, 1);
        rec->ts_ms = rnd_int();
        rec->nvals = s->nfields;
        rec->vals = vals;
        for (int i = 0; i < s->nfields; i++) {
                exb_val_t *v = &vals[i];
                memset(v, 0, sizeof(*v));
                if (s->fields[i].nullable && rnd_below(4) == 0) {
                        v->is_null = 1;
                        continue;
                }
                switch (s->fields[i].type) {
                case EXB_T_STRING:
                        v->u.s = rnd_str(a, 1);
                        break;
                case EXB_T_BYTES:
                        v->u.s = rnd_str(a, 0);
                        break;
                case EXB_T_INT:
                case EXB_T_TIMESTAMP:
                        v->u.i = rnd_int();
                        break;
                case EXB_T_DATE:
                        v->u.i = (int32_t)rnd_int();
                        break;
                case EXB_T_BOOL:
                        v->u.i = (int64_t)rnd_below(2);
                        break;
                case EXB_T_NUMBER: {
                        uint64_t bits = rnd();
                        memcpy(&v->u.d, &bits, 8);
                        break;
                }
                }
        }
}

/* ----------------------------------------------------------- framing */

static void test_frame(void **state)
{
        (void)state;
        static const struct {
                const char *hex;
                exb_err_t rc;
                int32_t id;
                const char *err;
        } cases[] = {
                {"00 00000000", EXB_OK, 0, NULL},
                {"00 0000002a 0102", EXB_OK, 42, NULL},
                {"00 7fffffff", EXB_OK, INT32_MAX, NULL},
                {"00 12345678 ff", EXB_OK, 0x12345678, NULL},
                {"", EXB_ERR_SCHEMA, 0, "value is 0 bytes, shorter than the 5-byte frame header"},
                {"00", EXB_ERR_SCHEMA, 0, "value is 1 bytes, shorter than the 5-byte frame header"},
                {"00 000000", EXB_ERR_SCHEMA, 0, "value is 4 bytes, shorter"},
                {"01 00000001 00", EXB_ERR_SCHEMA, 0, "wrong magic byte 0x01 (expected 0x00)"},
                {"7b 22 6f 70 22", EXB_ERR_SCHEMA, 0, "wrong magic byte 0x7b"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                size_t len;
                uint8_t *b = unhex(cases[i].hex, &len);
                char err[256] = "";
                int32_t id = -99;
                exb_err_t rc = exb_frame_schema_id(b, len, &id, err, sizeof(err));
                if (rc != cases[i].rc)
                        fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, err);
                if (rc == EXB_OK)
                        assert_int_equal(id, cases[i].id);
                else if (!strstr(err, cases[i].err))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].err);
                free(b);
        }
}

/* ------------------------------------------------------- golden vector */

/* Bytes written by Apache Avro (Python, avro 1.12) for this record, after a
 * Confluent frame with schema id 42. */
static const char golden_hex[] =
        "000000002a0004653104474180edb48cf86624333730363032313939303031303131323334020ce5bca0e4b889"
        "02927200020c333730363032";

static const exb_field_t population[] = {
        {"id_number", "公民身份号码", EXB_T_STRING, 0}, {"name", "姓名", EXB_T_STRING, 1},
        {"birth_date", "出生日期", EXB_T_DATE, 1},      {"address", "户籍地址", EXB_T_STRING, 1},
        {"region", "行政区划代码", EXB_T_STRING, 1},
};

static void test_golden(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("R370600_GA_0001", population, 5, 42);
        exb_val_t vals[5] = {VS("370602199001011234"), VS("张三"), VI(7305), VNULL, VS("370602")};
        exb_record_t rec = {EXB_OP_CREATE, EXB_STR("e1"), EXB_STR("GA"), 1768465800000LL, 5, vals};
        exb_buf_t out;
        exb_buf_init(&out, 0);
        char err[256] = "";
        assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)), EXB_OK);
        size_t glen;
        uint8_t *golden = unhex(golden_hex, &glen);
        assert_int_equal(out.len, glen);
        assert_memory_equal(out.p, golden, glen);

        exb_val_t got_vals[5];
        exb_record_t got = {.vals = got_vals};
        assert_int_equal(exb_codec_decode(s, golden, glen, &got, err, sizeof(err)), EXB_OK);
        assert_int_equal(got.nvals, 5);
        assert_null(rec_diff(s, &rec, &got));
        /* zero copy: strings point into the input */
        assert_true((const uint8_t *)got.vals[1].u.s.p > golden &&
                    (const uint8_t *)got.vals[1].u.s.p < golden + glen);

        exb_buf_reset(&out);
        assert_int_equal(exb_codec_to_json(s, &got, &out), 0);
        exb_buf_cstr(&out);
        assert_string_equal(
                (char *)out.p,
                "{\"op\":\"CREATE\",\"event_id\":\"e1\",\"source\":\"GA\","
                "\"ts_ms\":1768465800000,\"data\":{\"id_number\":\"370602199001011234\","
                "\"name\":\"张三\",\"birth_date\":\"1990-01-01\",\"address\":null,"
                "\"region\":\"370602\"}}");
        free(golden);
        exb_buf_free(&out);
        exb_schema_destroy(s);
}

/* --------------------------------------------------------- round trips */

/* Encodes, checks the frame, decodes into fresh exact-size memory, compares,
 * then checks that every strict prefix fails cleanly. */
static void roundtrip(const exb_schema_t *s, const exb_record_t *rec, const char *what)
{
        exb_buf_t out;
        exb_buf_init(&out, 0);
        char err[512] = "";
        exb_err_t rc = exb_codec_encode(s, rec, &out, err, sizeof(err));
        if (rc != EXB_OK)
                fail_msg("%s: encode: %s", what, err);
        int32_t id;
        assert_int_equal(exb_frame_schema_id(out.p, out.len, &id, err, sizeof(err)), EXB_OK);
        assert_int_equal(id, s->id);

        uint8_t *copy = malloc(out.len);
        memcpy(copy, out.p, out.len);
        exb_val_t *vals = calloc((size_t)s->nfields, sizeof(*vals));
        exb_record_t got = {.vals = vals};
        rc = exb_codec_decode(s, copy, out.len, &got, err, sizeof(err));
        if (rc != EXB_OK)
                fail_msg("%s: decode: %s", what, err);
        const char *diff = rec_diff(s, rec, &got);
        if (diff)
                fail_msg("%s: round trip differs in %s", what, diff);
        free(copy);

        for (size_t cut = 0; cut < out.len; cut++) {
                uint8_t *p = malloc(cut ? cut : 1);
                memcpy(p, out.p, cut);
                err[0] = '\0';
                rc = exb_codec_decode(s, p, cut, &got, err, sizeof(err));
                if (rc != EXB_ERR_SCHEMA || !err[0])
                        fail_msg("%s: prefix of %zu/%zu bytes: rc %d \"%s\"", what, cut, out.len,
                                 rc, err);
                free(p);
        }
        free(vals);
        exb_buf_free(&out);
}

static void test_roundtrip_types(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RAll", all_fields, ALL_N, 7);
        static const char big_utf8[] = "中华人民共和国居民身份证🇨🇳 ÄÖÜ ñ \t\n\"\\ end";
        static const char nul_bytes[] = "a\0b\0\xff\x80";
        static const struct {
                int field;
                exb_val_t v;
        } cases[] = {
                {0, VS("")},
                {0, VS("370602199001011234")},
                {0, VS(big_utf8)},
                {0, VS("with\0nul")},
                {1, VNULL},
                {1, VS("")},
                {1, VS("张三")},
                {2, VNULL},
                {2, VD(0.0)},
                {2, VD(-0.0)},
                {2, VD(1.5)},
                {2, VD(-1e308)},
                {2, VD(4.9e-324)},
                {2, VD(NAN)},
                {2, VD(INFINITY)},
                {2, VD(-INFINITY)},
                {3, VNULL},
                {3, VI(0)},
                {3, VI(-1)},
                {3, VI(1)},
                {3, VI(63)},
                {3, VI(-64)},
                {3, VI(64)},
                {3, VI(-65)},
                {3, VI(8191)},
                {3, VI(8192)},
                {3, VI(INT64_MAX)},
                {3, VI(INT64_MIN)},
                {3, VI(INT64_MIN + 1)},
                {3, VI(4294967296LL)},
                {4, VNULL},
                {4, VI(0)},
                {4, VI(-1)},
                {4, VI(INT32_MAX)},
                {4, VI(INT32_MIN)},
                {4, VI(7305)},
                {4, VI(-719162)},
                {5, VNULL},
                {5, VI(0)},
                {5, VI(1768465800000LL)},
                {5, VI(-62135596800000LL)},
                {5, VI(INT64_MAX)},
                {5, VI(INT64_MIN)},
                {6, VNULL},
                {6, VI(0)},
                {6, VI(1)},
                {7, VNULL},
                {7, VS("")},
                {7, {.u.s = {nul_bytes, sizeof(nul_bytes) - 1}}},
                {8, VD(-0.0)},
                {8, VD(3.141592653589793)},
                {9, VI(INT64_MIN)},
                {9, VI(INT64_MAX)},
                {10, VI(INT32_MIN)},
                {10, VI(INT32_MAX)},
                {11, VI(INT64_MIN)},
                {11, VI(-1)},
                {12, VI(0)},
                {12, VI(1)},
                {13, VS("")},
                {13, VS("\x00\x01\x02\xfe\xff")},
        };
        /* A base record with every field set. */
        exb_val_t base[ALL_N] = {VS("k1"), VS("s"),  VD(2.5), VI(3),  VI(4),  VI(5), VI(1),
                                 VS("b"),  VD(-2.5), VI(-3),  VI(-4), VI(-5), VI(0), VS("rb")};
        exb_val_t vals[ALL_N];
        for (size_t c = 0; c < EXB_ARRAY_CNT(cases); c++) {
                memcpy(vals, base, sizeof(vals));
                vals[cases[c].field] = cases[c].v;
                for (int op = 0; op < EXB_OP_CNT; op += 3) {
                        exb_record_t rec = {(exb_op_t)op,  EXB_STR("evt-1"),
                                            EXB_STR("GA"), 1768465800000LL,
                                            ALL_N,         vals};
                        char what[64];
                        snprintf(what, sizeof(what), "case %zu (field %s)", c,
                                 all_fields[cases[c].field].name);
                        roundtrip(s, &rec, what);
                }
        }

        /* All nullable fields null (a DELETE carries the key only). */
        for (int i = 0; i < ALL_N; i++)
                vals[i] = all_fields[i].nullable ? VNULL : base[i];
        exb_record_t del = {EXB_OP_DELETE, EXB_STR(""), EXB_STR(""), INT64_MIN, ALL_N, vals};
        roundtrip(s, &del, "all null");

        /* Long values: multi-byte length varints and the encoder's direct
         * append path (larger than its stack buffer). */
        static const size_t sizes[] = {63, 64, 127, 128, 2047, 2048, 2049, 8192, 100000};
        for (size_t k = 0; k < EXB_ARRAY_CNT(sizes); k++) {
                char *big = malloc(sizes[k]);
                for (size_t j = 0; j < sizes[k]; j++)
                        big[j] = (char)('a' + j % 26);
                memcpy(vals, base, sizeof(vals));
                vals[1] = (exb_val_t){.u.s = {big, sizes[k]}};
                vals[13] = (exb_val_t){.u.s = {big, sizes[k]}};
                exb_record_t rec = {EXB_OP_UPDATE, {big, sizes[k] / 2}, EXB_STR("GA"), 1, ALL_N,
                                    vals};
                char what[64];
                snprintf(what, sizeof(what), "long value %zu", sizes[k]);
                if (sizes[k] <= 8192)
                        roundtrip(s, &rec, what);
                else {
                        /* skip the per-prefix loop for the largest one */
                        exb_buf_t out;
                        exb_buf_init(&out, 0);
                        char err[256];
                        assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)), EXB_OK);
                        exb_val_t got_vals[ALL_N];
                        exb_record_t got = {.vals = got_vals};
                        assert_int_equal(
                                exb_codec_decode(s, out.p, out.len, &got, err, sizeof(err)),
                                EXB_OK);
                        assert_null(rec_diff(s, &rec, &got));
                        exb_buf_free(&out);
                }
                free(big);
        }
        exb_schema_destroy(s);
}

/* Encode appends: two records in one buffer decode from their slices. */
static void test_encode_appends(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RH", h_fields, H_N, 1);
        exb_val_t v1[H_N] = {VS("k1"), VNULL, VI(1), VNULL, VNULL, VI(1), VD(1), VNULL};
        exb_val_t v2[H_N] = {VS("k2"), VS("x"), VNULL, VI(2), VI(3), VNULL, VNULL, VS("y")};
        exb_record_t r1 = {EXB_OP_CREATE, EXB_STR("a"), EXB_STR("G"), 1, H_N, v1};
        exb_record_t r2 = {EXB_OP_SNAPSHOT, EXB_STR("b"), EXB_STR("G"), 2, H_N, v2};
        exb_buf_t out;
        exb_buf_init(&out, 0);
        char err[256];
        exb_buf_append(&out, "xyz", 3);
        assert_int_equal(exb_codec_encode(s, &r1, &out, err, sizeof(err)), EXB_OK);
        size_t l1 = out.len;
        assert_int_equal(exb_codec_encode(s, &r2, &out, err, sizeof(err)), EXB_OK);
        assert_memory_equal(out.p, "xyz", 3);
        exb_val_t g[H_N];
        exb_record_t got = {.vals = g};
        assert_int_equal(exb_codec_decode(s, out.p + 3, l1 - 3, &got, err, sizeof(err)), EXB_OK);
        assert_null(rec_diff(s, &r1, &got));
        assert_int_equal(exb_codec_decode(s, out.p + l1, out.len - l1, &got, err, sizeof(err)),
                         EXB_OK);
        assert_null(rec_diff(s, &r2, &got));
        exb_buf_free(&out);
        exb_schema_destroy(s);
}

/* ------------------------------------------------------------- hostile */

static void test_hostile(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RH", h_fields, H_N, 1);
#define H_NULLS "00 00 00 00 00 00 00"
        static const struct {
                const char *hex;
                const char *err; /* NULL: must decode */
        } cases[] = {
                {H_PREFIX H_NULLS, NULL},
                {H_PREFIX "02 02 78 02 01 02 01 02 02 02 00 02 000000000000f03f 02 00", NULL},
                /* non-minimal varints are valid Avro */
                {H_PREFIX "00 02 8000 00 00 00 00 00", NULL},
                {H_PREFIX "00 02 ffffffffffffffffff01 00 00 00 00 00", NULL}, /* INT64_MIN */
                {"", "value is 0 bytes, shorter than the 5-byte frame header"},
                {"00 000000", "value is 4 bytes, shorter than the 5-byte frame header"},
                {"01 00000001 00 0265 0247 02 026b" H_NULLS, "wrong magic byte 0x01"},
                {"00 00000002 00 0265 0247 02 026b" H_NULLS,
                 "schema id 2 in the frame, but decoding "
                 "with schema 1 (RH)"},
                {"00 00000001",
                 "field \"op\": truncated varint: value ends after 0 bytes (offset 5)"},
                {"00 00000001 08", "field \"op\": enum index 4 out of range 0..3 (offset 5)"},
                {"00 00000001 01", "field \"op\": enum index -1 out of range 0..3 (offset 5)"},
                {"00 00000001 00 80a4e803 6565",
                 "field \"event_id\": string length 4000000 exceeds the 2 bytes left (offset 6)"},
                {"00 00000001 00 feffffff0f", "field \"event_id\": string length 2147483647 "
                                              "exceeds the 0 bytes left (offset 6)"},
                {"00 00000001 00 ffffffffffffffffff01",
                 "field \"event_id\": negative string length -9223372036854775808 (offset 6)"},
                {"00 00000001 00 03 65",
                 "field \"event_id\": negative string length -2 (offset 6)"},
                {"00 00000001 00 0265 0247",
                 "field \"ts_ms\": truncated varint: value ends after 0 bytes (offset 10)"},
                {"00 00000001 00 0265 0247 02",
                 "field \"k\": truncated varint: value ends after 0 bytes (offset 11)"},
                {"00 00000001 00 0265 0247 02 0a6b",
                 "field \"k\": string length 5 exceeds the 1 bytes left (offset 11)"},
                {H_PREFIX, "field \"s\": truncated varint: value ends after 0 bytes (offset 13)"},
                {H_PREFIX "04" H_NULLS,
                 "field \"s\": union index 2 out of range 0..1 (0 = null, 1 = value) (offset 13)"},
                {H_PREFIX "01" H_NULLS, "field \"s\": union index -1 out of range 0..1"},
                {H_PREFIX "8080808080808080808001",
                 "field \"s\": varint longer than 10 bytes (offset 13)"},
                {H_PREFIX "00 02 80808080808080808080 01",
                 "field \"i\": varint longer than 10 bytes (offset 15)"},
                {H_PREFIX "00 02 ffffffffffffffffff02",
                 "field \"i\": varint overflows 64 bits (offset 15)"},
                {H_PREFIX "00 02 ffffffffffffffffff7f",
                 "field \"i\": varint overflows 64 bits (offset 15)"},
                {H_PREFIX "00 02 8080", "field \"i\": truncated varint: value ends after 2 bytes "
                                        "(offset 15)"},
                {H_PREFIX "02 80a4e803 00 00 00 00 00 00",
                 "field \"s\": string length 4000000 exceeds the 6 bytes left (offset 14)"},
                {H_PREFIX "02 04 c080 00 00 00 00 00 00",
                 "field \"s\": invalid UTF-8 in string (offset 15)"},
                {H_PREFIX "02 08 41 eda080 00 00 00 00 00 00",
                 "field \"s\": invalid UTF-8 in string (offset 16)"}, /* surrogate */
                {H_PREFIX "02 08 f5808080 00 00 00 00 00 00", "invalid UTF-8 in string"},
                {H_PREFIX "02 08 f4908080 00 00 00 00 00 00",
                 "invalid UTF-8 in string"}, /* >10FFFF */
                {H_PREFIX "02 06 41 e4b8 00 00 00 00 00 00", "invalid UTF-8 in string (offset 16)"},
                {H_PREFIX "02 02 80 00 00 00 00 00 00", "invalid UTF-8 in string"},
                {H_PREFIX "00 00 02 8080808010 00 00 00 00",
                 "field \"d\": date 2147483648 is out of the Avro int range (offset 16)"},
                {H_PREFIX "00 00 02 8180808010 00 00 00 00",
                 "field \"d\": date -2147483649 is out of the Avro int range"},
                {H_PREFIX "00 00 00 00 02 02 00 00",
                 "field \"l\": boolean byte 0x02 is neither 0 nor 1 (offset 18)"},
                {H_PREFIX "00 00 00 00 02 ff 00 00", "field \"l\": boolean byte 0xff is neither"},
                {H_PREFIX "00 00 00 00 02",
                 "field \"l\": truncated boolean: no bytes left (offset 18)"},
                {H_PREFIX "00 00 00 00 00 02 000000",
                 "field \"n\": truncated double: 8 bytes needed, 3 left (offset 19)"},
                {H_PREFIX "00 00 00 00 00 00 02 80a4e803",
                 "field \"b\": bytes length 4000000 exceeds the 0 bytes left (offset 20)"},
                {H_PREFIX "00 00 00 00 00 00 02 0f", "field \"b\": negative bytes length -8"},
                {H_PREFIX H_NULLS " 00", "1 trailing bytes after the record (offset 20)"},
                {H_PREFIX H_NULLS " 00000000", "4 trailing bytes after the record (offset 20)"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                size_t len;
                uint8_t *b = unhex(cases[i].hex, &len);
                exb_val_t vals[H_N];
                exb_record_t rec = {.vals = vals};
                char err[512] = "";
                exb_err_t rc = exb_codec_decode(s, b, len, &rec, err, sizeof(err));
                if (!cases[i].err) {
                        if (rc != EXB_OK)
                                fail_msg("case %zu: %s", i, err);
                } else {
                        if (rc != EXB_ERR_SCHEMA)
                                fail_msg("case %zu: rc %d, want SCHEMA", i, rc);
                        if (!strstr(err, cases[i].err))
                                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].err);
                }
                free(b);
        }
        exb_schema_destroy(s);
}

/* Values decoded from the hand-written bytes are the ones written there. */
static void test_decode_values(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RH", h_fields, H_N, 1);
        size_t len;
        uint8_t *b = unhex(H_PREFIX "02 02 78 02 01 02 01 02 02 02 00 "
                                    "02 000000000000f03f 02 00",
                           &len);
        exb_val_t v[H_N];
        exb_record_t rec = {.vals = v};
        char err[256];
        assert_int_equal(exb_codec_decode(s, b, len, &rec, err, sizeof(err)), EXB_OK);
        assert_int_equal(rec.op, EXB_OP_CREATE);
        assert_true(exb_str_eq(rec.event_id, "e") && exb_str_eq(rec.source, "G"));
        assert_int_equal(rec.ts_ms, 1);
        assert_true(exb_str_eq(v[0].u.s, "k"));
        assert_true(exb_str_eq(v[1].u.s, "x"));
        assert_int_equal(v[2].u.i, -1);
        assert_int_equal(v[3].u.i, -1);
        assert_int_equal(v[4].u.i, 1);
        assert_int_equal(v[5].u.i, 0);
        assert_true(v[6].u.d == 1.0);
        assert_false(v[7].is_null);
        assert_int_equal(v[7].u.s.len, 0);
        /* Strings are marked as checked UTF-8, nothing else is. */
        assert_int_equal(v[0].utf8_ok, 1);
        assert_int_equal(v[1].utf8_ok, 1);
        for (int i = 2; i < H_N; i++)
                assert_int_equal(v[i].utf8_ok, 0);
        free(b);
        exb_schema_destroy(s);
}

/* The encoder checks the UTF-8 of strings that are not marked as checked,
 * trusts marked ones (what the decoder gives), and always checks the
 * envelope's strings. */
static void test_encode_utf8_mark(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RH", h_fields, H_N, 1);
        exb_val_t v[H_N];
        for (int i = 0; i < H_N; i++)
                v[i] = VNULL;
        exb_record_t rec = {.op = EXB_OP_CREATE, .event_id = EXB_STR("e"),
                            .source = EXB_STR("G"), .ts_ms = 1, .nvals = H_N, .vals = v};
        exb_buf_t out;
        exb_buf_init(&out, 0);
        char err[256] = "";
        v[0] = VS("k\xed\xa0\x80"); /* a surrogate */
        assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)), EXB_ERR_INVALID);
        assert_string_equal(err, "field \"k\": invalid UTF-8 in string");
        assert_int_equal(out.len, 0);
        v[0].utf8_ok = 1; /* whoever marks it answers for it */
        assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)), EXB_OK);

        /* Decoded values re-encode without a second check, to the same bytes. */
        exb_val_t d[H_N];
        exb_record_t got = {.vals = d};
        exb_buf_t again;
        exb_buf_init(&again, 0);
        v[0] = VS("张三");
        v[1] = VS("x");
        exb_buf_reset(&out);
        assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)), EXB_OK);
        assert_int_equal(exb_codec_decode(s, out.p, out.len, &got, err, sizeof(err)), EXB_OK);
        assert_int_equal(d[0].utf8_ok + d[1].utf8_ok, 2);
        assert_int_equal(exb_codec_encode(s, &got, &again, err, sizeof(err)), EXB_OK);
        assert_int_equal(again.len, out.len);
        assert_memory_equal(again.p, out.p, out.len);

        /* event_id and source carry no mark: always checked. */
        got.source = EXB_STR("G\xc0\x80");
        exb_buf_reset(&again);
        assert_int_equal(exb_codec_encode(s, &got, &again, err, sizeof(err)), EXB_ERR_INVALID);
        assert_string_equal(err, "field \"source\": invalid UTF-8 in string");
        assert_int_equal(again.len, 0);
        exb_buf_free(&out);
        exb_buf_free(&again);
        exb_schema_destroy(s);
}

/* ---------------------------------------------------------- encode errors */

static void test_encode_errors(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RH", h_fields, H_N, 1);
        static const char bad_utf8[] = "ok\xc3(";
        static const struct {
                exb_op_t op;
                exb_str_t event_id;
                int nvals;
                int field;
                exb_val_t v;
                int32_t id;
                exb_err_t rc;
                const char *err;
        } cases[] = {
                {0, EXB_STR("e"), H_N, 0, VNULL, 1, EXB_ERR_INVALID,
                 "field \"k\": null value for a required field"},
                {0, EXB_STR("e"), H_N, 3, VI(2147483648LL), 1, EXB_ERR_INVALID,
                 "field \"d\": date 2147483648 is out of the Avro int range"},
                {0, EXB_STR("e"), H_N, 3, VI(-2147483649LL), 1, EXB_ERR_INVALID,
                 "field \"d\": date -2147483649 is out of the Avro int range"},
                {0, EXB_STR("e"), H_N, 1, VS(bad_utf8), 1, EXB_ERR_INVALID,
                 "field \"s\": invalid UTF-8 in string"},
                {0,
                 EXB_STR("e"),
                 H_N,
                 1,
                 {.u.s = {NULL, 3}},
                 1,
                 EXB_ERR_INVALID,
                 "field \"s\": NULL string pointer"},
                {0, EXB_STR(bad_utf8), H_N, 1, VNULL, 1, EXB_ERR_INVALID,
                 "field \"event_id\": invalid UTF-8 in string"},
                {0, EXB_STR("e"), 3, 1, VNULL, 1, EXB_ERR_INVALID,
                 "record has 3 values, schema RH has 8 fields"},
                {(exb_op_t)9, EXB_STR("e"), H_N, 1, VNULL, 1, EXB_ERR_INVALID,
                 "field \"op\": invalid op 9"},
                {0, EXB_STR("e"), H_N, 1, VNULL, -1, EXB_ERR_INVALID,
                 "schema RH has no id (not registered)"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                exb_val_t vals[H_N] = {VS("k"), VNULL, VNULL, VNULL, VNULL, VNULL, VNULL, VNULL};
                vals[cases[i].field] = cases[i].v;
                exb_record_t rec = {cases[i].op, cases[i].event_id, EXB_STR("G"),
                                    1,           cases[i].nvals,    vals};
                s->id = cases[i].id;
                exb_buf_t out;
                exb_buf_init(&out, 0);
                exb_buf_append(&out, "prev", 4);
                char err[256] = "";
                exb_err_t rc = exb_codec_encode(s, &rec, &out, err, sizeof(err));
                if (rc != cases[i].rc)
                        fail_msg("case %zu: rc %d want %d (%s)", i, rc, cases[i].rc, err);
                if (!strstr(err, cases[i].err))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].err);
                /* rolled back */
                assert_int_equal(out.len, 4);
                assert_memory_equal(out.p, "prev", 4);
                exb_buf_free(&out);
        }

        /* Output maximum: fatal, rolled back, both within the writer's room
         * and through the direct append of a large value. */
        s->id = 1;
        static const size_t maxes[] = {8, 20, 100, 5000};
        char *big = malloc(6000);
        memset(big, 'x', 6000);
        for (size_t i = 0; i < EXB_ARRAY_CNT(maxes); i++) {
                exb_val_t vals[H_N] = {
                        VS("k"), {.u.s = {big, 6000}}, VNULL, VNULL, VNULL, VNULL, VNULL, VNULL};
                if (maxes[i] < 100)
                        vals[1] = VS("0123456789012345678901234567890123456789");
                exb_record_t rec = {0, EXB_STR("e"), EXB_STR("G"), 1, H_N, vals};
                exb_buf_t out;
                exb_buf_init(&out, maxes[i]);
                exb_buf_append(&out, "pr", 2);
                char err[256] = "";
                assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)), EXB_ERR_FATAL);
                assert_non_null(strstr(err, "exceeds the output buffer's maximum"));
                assert_int_equal(out.len, 2);
                exb_buf_free(&out);
        }
        free(big);
        exb_schema_destroy(s);
}

/* A record fits a buffer whose maximum is exactly its size, and not one a
 * byte smaller: the writer's room ends at the maximum, wherever a value
 * (or a varint) meets it. */
static void test_encode_exact_max(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RAll", all_fields, ALL_N, 7);
        static arena_t arena;
        exb_val_t vals[ALL_N];
        exb_buf_t whole;
        exb_buf_init(&whole, 0);
        char err[256];
        int long_ones = 0;
        rng_state = 0xE4AC7;
        for (int n = 0; n < 3000; n++) {
                exb_record_t rec;
                rnd_record(s, &arena, &rec, vals);
                static const char big[5000];
                if (n % 5 == 0) /* "b": bytes across rooms */
                        vals[7] = (exb_val_t){.u.s = {big, 1000 + (size_t)n % 4000}};
                exb_buf_reset(&whole);
                assert_int_equal(exb_codec_encode(s, &rec, &whole, err, sizeof(err)), EXB_OK);
                long_ones += whole.len > 2048;
                for (size_t max = whole.len + 2; max >= whole.len + 1; max--) {
                        exb_buf_t out;
                        exb_buf_init(&out, max);
                        exb_buf_append(&out, "pr", 2);
                        exb_err_t r = exb_codec_encode(s, &rec, &out, err, sizeof(err));
                        if (max == whole.len + 2) {
                                if (r != EXB_OK)
                                        fail_msg("record %d (%zu bytes), maximum %zu: %s", n,
                                                 whole.len, max, err);
                                assert_int_equal(out.len, whole.len + 2);
                                assert_memory_equal(out.p + 2, whole.p, whole.len);
                        } else {
                                assert_int_equal(r, EXB_ERR_FATAL);
                                assert_int_equal(out.len, 2);
                        }
                        exb_buf_free(&out);
                }
        }
        assert_true(long_ones > 10); /* records longer than one room were tried */
        exb_buf_free(&whole);
        exb_schema_destroy(s);
}

/* ------------------------------------------------------------------- fuzz */

static void test_fuzz(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RAll", all_fields, ALL_N, 7);
        static arena_t arena;
        enum { NSEEDS = 64, ITER = 100000 };
        exb_buf_t seeds[NSEEDS];
        exb_val_t vals[ALL_N], got_vals[ALL_N], again_vals[ALL_N];
        char err[512];
        rng_state = 0x1234567887654321ULL;
        for (int i = 0; i < NSEEDS; i++) {
                exb_record_t rec;
                rnd_record(s, &arena, &rec, vals);
                exb_buf_init(&seeds[i], 0);
                assert_int_equal(exb_codec_encode(s, &rec, &seeds[i], err, sizeof(err)), EXB_OK);
        }
        exb_buf_t out, js;
        exb_buf_init(&out, 0);
        exb_buf_init(&js, 0);
        uint8_t work[4096];
        static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0x81, 0xfe, 0xff};
        int decoded = 0;
        for (int it = 0; it < ITER; it++) {
                size_t len;
                if (rnd_below(10) == 0) {
                        /* random bytes after a valid header */
                        len = EXB_FRAME_HDR + rnd_below(64);
                        memcpy(work, seeds[0].p, EXB_FRAME_HDR);
                        for (size_t k = EXB_FRAME_HDR; k < len; k++)
                                work[k] = (uint8_t)rnd();
                } else {
                        const exb_buf_t *sd = &seeds[rnd_below(NSEEDS)];
                        len = sd->len < sizeof(work) - 64 ? sd->len : sizeof(work) - 64;
                        memcpy(work, sd->p, len);
                        int nmut = 1 + (int)rnd_below(4);
                        for (int m = 0; m < nmut && len > 0; m++) {
                                size_t at = rnd_below(len);
                                if (rnd_below(8) != 0 && at < EXB_FRAME_HDR)
                                        at = EXB_FRAME_HDR + rnd_below(len > EXB_FRAME_HDR
                                                                               ? len - EXB_FRAME_HDR
                                                                               : 1);
                                if (at >= len)
                                        at = len - 1;
                                switch (rnd_below(6)) {
                                case 0:
                                        work[at] ^= (uint8_t)(1u << rnd_below(8));
                                        break;
                                case 1:
                                        work[at] = (uint8_t)rnd();
                                        break;
                                case 2:
                                        work[at] = interesting[rnd_below(sizeof(interesting))];
                                        break;
                                case 3: /* truncate */
                                        len = at;
                                        break;
                                case 4: /* insert */
                                        memmove(work + at + 1, work + at, len - at);
                                        work[at] = interesting[rnd_below(sizeof(interesting))];
                                        len++;
                                        break;
                                default: /* delete */
                                        memmove(work + at, work + at + 1, len - at - 1);
                                        len--;
                                }
                        }
                }
                uint8_t *in = malloc(len ? len : 1); /* exact size: overreads are caught */
                memcpy(in, work, len);
                exb_record_t got = {.vals = got_vals};
                err[0] = '\0';
                exb_err_t rc = exb_codec_decode(s, in, len, &got, err, sizeof(err));
                if (rc == EXB_OK) {
                        decoded++;
                        exb_buf_reset(&out);
                        if (exb_codec_encode(s, &got, &out, err, sizeof(err)) != EXB_OK)
                                fail_msg("iteration %d: decoded but cannot re-encode: %s", it, err);
                        exb_record_t again = {.vals = again_vals};
                        if (exb_codec_decode(s, out.p, out.len, &again, err, sizeof(err)) != EXB_OK)
                                fail_msg("iteration %d: re-encoded bytes do not decode: %s", it,
                                         err);
                        const char *diff = rec_diff(s, &got, &again);
                        if (diff)
                                fail_msg("iteration %d: re-encode changed %s", it, diff);
                        exb_buf_reset(&js);
                        assert_int_equal(exb_codec_to_json(s, &got, &js), 0);
                } else if (rc != EXB_ERR_SCHEMA || !err[0]) {
                        fail_msg("iteration %d: rc %d, message \"%s\"", it, rc, err);
                }
                free(in);
        }
        /* The mutations must leave some inputs decodable, or the re-encode
         * checks above prove nothing. */
        assert_true(decoded > ITER / 100);
        print_message("fuzz: %d of %d mutated inputs decoded, the rest were rejected\n", decoded,
                      ITER);
        for (int i = 0; i < NSEEDS; i++)
                exb_buf_free(&seeds[i]);
        exb_buf_free(&out);
        exb_buf_free(&js);
        exb_schema_destroy(s);
}

/* ------------------------------------------------- cross-check with Avro C */

typedef struct {
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t val;
} avc_t;

static void avc_init(avc_t *a, const exb_schema_t *s)
{
        if (avro_schema_from_json_length(s->avro_json, strlen(s->avro_json), &a->schema))
                fail_msg("Avro C: %s", avro_strerror());
        a->iface = avro_generic_class_from_schema(a->schema);
        assert_non_null(a->iface);
        assert_int_equal(avro_generic_value_new(a->iface, &a->val), 0);
}

static void avc_free(avc_t *a)
{
        avro_value_decref(&a->val);
        avro_value_iface_decref(a->iface);
        avro_schema_decref(a->schema);
}

#define AVC(call)                                                                                  \
        do {                                                                                       \
                if (call)                                                                          \
                        fail_msg("%s: %s", #call, avro_strerror());                                \
        } while (0)

/* Compares an Avro C value of the envelope with rec. */
static void avc_compare(const exb_schema_t *s, avro_value_t *v, const exb_record_t *rec, int n)
{
        avro_value_t f, data, item, br;
        int e;
        const char *str;
        const void *bytes;
        size_t size;
        int64_t l;
        int32_t i32;
        double d;
        AVC(avro_value_get_by_index(v, 0, &f, NULL));
        AVC(avro_value_get_enum(&f, &e));
        assert_int_equal(e, rec->op);
        AVC(avro_value_get_by_index(v, 1, &f, NULL));
        AVC(avro_value_get_string(&f, &str, &size));
        assert_true(str_same((exb_str_t){str, size - 1}, rec->event_id));
        AVC(avro_value_get_by_index(v, 2, &f, NULL));
        AVC(avro_value_get_string(&f, &str, &size));
        assert_true(str_same((exb_str_t){str, size - 1}, rec->source));
        AVC(avro_value_get_by_index(v, 3, &f, NULL));
        AVC(avro_value_get_long(&f, &l));
        assert_true(l == rec->ts_ms);
        AVC(avro_value_get_by_index(v, 4, &data, NULL));
        for (int i = 0; i < s->nfields; i++) {
                const exb_field_t *fd = &s->fields[i];
                const exb_val_t *x = &rec->vals[i];
                AVC(avro_value_get_by_index(&data, (size_t)i, &item, NULL));
                if (fd->nullable) {
                        AVC(avro_value_get_discriminant(&item, &e));
                        if (e != !x->is_null)
                                fail_msg("record %d field %s: branch %d", n, fd->name, e);
                        if (x->is_null)
                                continue;
                        AVC(avro_value_get_current_branch(&item, &br));
                        item = br;
                }
                switch (fd->type) {
                case EXB_T_STRING:
                        AVC(avro_value_get_string(&item, &str, &size));
                        if (!str_same((exb_str_t){str, size - 1}, x->u.s))
                                fail_msg("record %d field %s differs", n, fd->name);
                        break;
                case EXB_T_BYTES:
                        AVC(avro_value_get_bytes(&item, &bytes, &size));
                        if (!str_same((exb_str_t){bytes, size}, x->u.s))
                                fail_msg("record %d field %s differs", n, fd->name);
                        break;
                case EXB_T_INT:
                case EXB_T_TIMESTAMP:
                        AVC(avro_value_get_long(&item, &l));
                        if (l != x->u.i)
                                fail_msg("record %d field %s differs", n, fd->name);
                        break;
                case EXB_T_DATE:
                        AVC(avro_value_get_int(&item, &i32));
                        if (i32 != x->u.i)
                                fail_msg("record %d field %s differs", n, fd->name);
                        break;
                case EXB_T_BOOL:
                        AVC(avro_value_get_boolean(&item, &e));
                        if (e != !!x->u.i)
                                fail_msg("record %d field %s differs", n, fd->name);
                        break;
                case EXB_T_NUMBER:
                        AVC(avro_value_get_double(&item, &d));
                        if (memcmp(&d, &x->u.d, 8))
                                fail_msg("record %d field %s differs", n, fd->name);
                        break;
                }
        }
}

/* Sets an Avro C value of the envelope from rec. */
static void avc_set(const exb_schema_t *s, avro_value_t *v, const exb_record_t *rec)
{
        avro_value_t f, data, item, br;
        AVC(avro_value_reset(v));
        AVC(avro_value_get_by_index(v, 0, &f, NULL));
        AVC(avro_value_set_enum(&f, (int)rec->op));
        /* rnd_str() strings are NUL-terminated, as Avro C wants */
        AVC(avro_value_get_by_index(v, 1, &f, NULL));
        AVC(avro_value_set_string_len(&f, rec->event_id.p, rec->event_id.len + 1));
        AVC(avro_value_get_by_index(v, 2, &f, NULL));
        AVC(avro_value_set_string_len(&f, rec->source.p, rec->source.len + 1));
        AVC(avro_value_get_by_index(v, 3, &f, NULL));
        AVC(avro_value_set_long(&f, rec->ts_ms));
        AVC(avro_value_get_by_index(v, 4, &data, NULL));
        for (int i = 0; i < s->nfields; i++) {
                const exb_field_t *fd = &s->fields[i];
                const exb_val_t *x = &rec->vals[i];
                AVC(avro_value_get_by_index(&data, (size_t)i, &item, NULL));
                if (fd->nullable) {
                        AVC(avro_value_set_branch(&item, !x->is_null, &br));
                        if (x->is_null) {
                                AVC(avro_value_set_null(&br));
                                continue;
                        }
                        item = br;
                }
                switch (fd->type) {
                case EXB_T_STRING:
                        AVC(avro_value_set_string_len(&item, x->u.s.p, x->u.s.len + 1));
                        break;
                case EXB_T_BYTES:
                        AVC(avro_value_set_bytes(&item, (void *)x->u.s.p, x->u.s.len));
                        break;
                case EXB_T_INT:
                case EXB_T_TIMESTAMP:
                        AVC(avro_value_set_long(&item, x->u.i));
                        break;
                case EXB_T_DATE:
                        AVC(avro_value_set_int(&item, (int32_t)x->u.i));
                        break;
                case EXB_T_BOOL:
                        AVC(avro_value_set_boolean(&item, (int)x->u.i));
                        break;
                case EXB_T_NUMBER:
                        AVC(avro_value_set_double(&item, x->u.d));
                        break;
                }
        }
}

/* Strings of up to 24 bytes are checked for ASCII in a few loads: a byte
 * >= 0x80 anywhere in one of any length sends it to the full UTF-8 check,
 * which accepts a character and rejects a stray continuation byte. */
static void test_short_strings(void **state)
{
        (void)state;
        static const exb_field_t fields[] = {{"s", NULL, EXB_T_STRING, 0}};
        exb_schema_t *s = mk_schema("RStr", fields, 1, 1);
        for (size_t n = 0; n <= 30; n++)
                for (size_t at = 0; at <= n; at++)
                        for (int kind = 0; kind < 3; kind++) {
                                /* kind 0: ASCII only; 1: a stray 0x80 at `at`;
                                 * 2: "é" (C3 A9) at `at` */
                                if (kind && at == n)
                                        continue;
                                if (kind == 2 && at + 1 == n)
                                        continue;
                                uint8_t v[64] = {0, 0, 0, 0, 1, 0, 2, 'e', 4, 'G', 'A', 0};
                                size_t len = 12;
                                v[len++] = (uint8_t)(2 * n);
                                uint8_t *str = v + len;
                                memset(str, 'a', n);
                                if (kind == 1)
                                        str[at] = 0x80;
                                if (kind == 2)
                                        str[at] = 0xC3, str[at + 1] = 0xA9;
                                len += n;
                                exb_val_t got_vals[1];
                                exb_record_t got = {.vals = got_vals};
                                char err[256] = "";
                                exb_err_t r = exb_codec_decode(s, v, len, &got, err, sizeof(err));
                                if ((r == EXB_OK) != (kind != 1))
                                        fail_msg("%zu bytes, kind %d at %zu: %s", n, kind, at,
                                                 r == EXB_OK ? "accepted" : err);
                                if (r == EXB_OK)
                                        assert_int_equal(got_vals[0].u.s.len, n);
                                else
                                        assert_non_null(strstr(err, "invalid UTF-8"));
                        }
        exb_schema_destroy(s);
}

/* Every varint length (1..10 bytes, each side of each 7-bit boundary),
 * decoded where 8 or more bytes follow it (read as one word) and where it
 * ends the value (read byte by byte). */
static void test_varint_lengths(void **state)
{
        (void)state;
        static const exb_field_t mid_fields[] = {{"i", NULL, EXB_T_INT, 0},
                                                 {"s", NULL, EXB_T_STRING, 0}};
        static const exb_field_t end_fields[] = {{"s", NULL, EXB_T_STRING, 0},
                                                 {"i", NULL, EXB_T_INT, 0}};
        exb_schema_t *mid = mk_schema("RMid", mid_fields, 2, 1);
        exb_schema_t *end = mk_schema("REnd", end_fields, 2, 1);
        exb_buf_t out;
        exb_buf_init(&out, 0);
        char err[256];
        int lengths[11] = {0};
        for (int b = 0; b < 64; b++) {
                uint64_t edge = 1ULL << b;
                /* negated in unsigned: edge is 2^63 once */
                int64_t cases[] = {(int64_t)(edge - 1), (int64_t)edge, (int64_t)(0 - edge),
                                   (int64_t)(1 - edge), INT64_MIN,     INT64_MAX};
                for (size_t c = 0; c < EXB_ARRAY_CNT(cases); c++) {
                        for (int at_end = 0; at_end < 2; at_end++) {
                                exb_schema_t *s = at_end ? end : mid;
                                exb_val_t vals[2] = {VI(cases[c]), VS("eight or more bytes")};
                                if (at_end)
                                        vals[0] = vals[1], vals[1] = VI(cases[c]);
                                exb_record_t rec = {
                                        EXB_OP_CREATE, EXB_STR("e"), EXB_STR("GA"), cases[c], 2,
                                        vals};
                                exb_buf_reset(&out);
                                assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)),
                                                 EXB_OK);
                                exb_val_t got_vals[2];
                                exb_record_t got = {.vals = got_vals};
                                if (exb_codec_decode(s, out.p, out.len, &got, err, sizeof(err)))
                                        fail_msg("%lld: %s", (long long)cases[c], err);
                                assert_int_equal(got.ts_ms, cases[c]);
                                assert_int_equal(got_vals[at_end].u.i, cases[c]);
                                /* the varint's length: the value minus the rest */
                                size_t n = out.len - EXB_FRAME_HDR - 1 - 2 - 3 -
                                           (1 + strlen("eight or more bytes"));
                                assert_true(n % 2 == 0 && n / 2 >= 1 && n / 2 <= 10);
                                lengths[n / 2]++;
                        }
                }
        }
        for (int k = 1; k <= 10; k++)
                if (!lengths[k])
                        fail_msg("no %d-byte varint was tried", k);
        exb_buf_free(&out);
        exb_schema_destroy(mid);
        exb_schema_destroy(end);
}

static void test_avro_c_cross(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RAll", all_fields, ALL_N, 7);
        avc_t a;
        avc_init(&a, s);
        static arena_t arena;
        exb_val_t vals[ALL_N], got_vals[ALL_N];
        exb_buf_t out;
        exb_buf_init(&out, 0);
        static char abuf[256 * 1024];
        char err[512];
        rng_state = 0xC0FFEE;
        for (int n = 0; n < 2000; n++) {
                exb_record_t rec;
                rnd_record(s, &arena, &rec, vals);

                /* ours -> Avro C */
                exb_buf_reset(&out);
                assert_int_equal(exb_codec_encode(s, &rec, &out, err, sizeof(err)), EXB_OK);
                avro_reader_t rd = avro_reader_memory((const char *)out.p + EXB_FRAME_HDR,
                                                      (int64_t)(out.len - EXB_FRAME_HDR));
                AVC(avro_value_read(rd, &a.val));
                avro_reader_free(rd);
                size_t sz = 0;
                AVC(avro_value_sizeof(&a.val, &sz));
                assert_int_equal(sz, out.len - EXB_FRAME_HDR);
                avc_compare(s, &a.val, &rec, n);

                /* Avro C -> ours */
                avc_set(s, &a.val, &rec);
                memcpy(abuf, "\0\0\0\0\7", 5);
                avro_writer_t wr = avro_writer_memory(abuf + 5, (int64_t)sizeof(abuf) - 5);
                AVC(avro_value_write(wr, &a.val));
                size_t alen = 5 + (size_t)avro_writer_tell(wr);
                avro_writer_free(wr);
                exb_record_t got = {.vals = got_vals};
                if (exb_codec_decode(s, abuf, alen, &got, err, sizeof(err)) != EXB_OK)
                        fail_msg("record %d: Avro C's bytes do not decode: %s", n, err);
                const char *diff = rec_diff(s, &rec, &got);
                if (diff)
                        fail_msg("record %d: Avro C round trip differs in %s", n, diff);
                /* both writers produce the same bytes (minimal varints) */
                assert_int_equal(alen, out.len);
                assert_memory_equal(abuf, out.p, alen);
        }
        exb_buf_free(&out);
        avc_free(&a);
        exb_schema_destroy(s);
}

/* ------------------------------------------------------------------- JSON */

static void test_to_json(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RH", h_fields, H_N, 1);
        static const char ctl[] = "a\"b\\c\n\r\t\x01\x1f/é中";
        static const char bad[] = "x\xff\xc3(y";
        static const char nul[] = "a\0b";
#define J_HEAD "{\"op\":\"CREATE\",\"event_id\":\"e\",\"source\":\"G\",\"ts_ms\":1,\"data\":"
        static const struct {
                exb_val_t v[H_N];
                const char *json;
        } cases[] = {
                {{VS("k"), VNULL, VNULL, VNULL, VNULL, VNULL, VNULL, VNULL},
                 J_HEAD "{\"k\":\"k\",\"s\":null,\"i\":null,\"d\":null,\"t\":null,\"l\":null,"
                        "\"n\":null,\"b\":null}}"},
                {{VS(ctl), VS(bad), VI(-5), VI(7305), VI(1768465800123LL), VI(1), VD(1.5),
                  VS("\x00\xff\x10")},
                 J_HEAD
                 "{\"k\":\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f/é中\",\"s\":\"x\\ufffd\\ufffd(y\","
                 "\"i\":-5,\"d\":\"1990-01-01\",\"t\":\"2026-01-15T08:30:00.123Z\",\"l\":true,"
                 "\"n\":1.5,\"b\":\"AP8Q\"}}"},
                {{VS(nul), VS(""), VI(INT64_MIN), VI(-1), VI(-1), VI(0), VD(0.1), VS("\x00")},
                 J_HEAD "{\"k\":\"a\\u0000b\",\"s\":\"\",\"i\":-9223372036854775808,"
                        "\"d\":\"1969-12-31\",\"t\":\"1969-12-31T23:59:59.999Z\",\"l\":false,"
                        "\"n\":0.1,\"b\":\"AA==\"}}"},
                /* outside years 0..9999 dates and timestamps are numbers */
                {{VS("k"), VNULL, VNULL, VI(INT32_MAX), VI(INT64_MAX), VNULL, VD(NAN),
                  VS("\x00\x01")},
                 J_HEAD "{\"k\":\"k\",\"s\":null,\"i\":null,\"d\":2147483647,"
                        "\"t\":9223372036854775807,\"l\":null,\"n\":null,\"b\":\"AAE=\"}}"},
                {{VS("k"), VNULL, VNULL, VI(-719528), VI(-62167219200000LL), VNULL, VD(1e300),
                  VS("abc")},
                 J_HEAD "{\"k\":\"k\",\"s\":null,\"i\":null,\"d\":\"0000-01-01\","
                        "\"t\":\"0000-01-01T00:00:00.000Z\",\"l\":null,\"n\":1e+300,"
                        "\"b\":\"YWJj\"}}"},
                {{VS("k"), VNULL, VNULL, VI(2932897), VI(INT64_MIN), VNULL, VD(-0.0), VNULL},
                 J_HEAD "{\"k\":\"k\",\"s\":null,\"i\":null,\"d\":2932897,"
                        "\"t\":-9223372036854775808,\"l\":null,\"n\":-0.0,\"b\":null}}"},
                {{VS("k"), VNULL, VNULL, VNULL, VNULL, VNULL, VD(INFINITY), VNULL},
                 J_HEAD "{\"k\":\"k\",\"s\":null,\"i\":null,\"d\":null,\"t\":null,\"l\":null,"
                        "\"n\":null,\"b\":null}}"},
                {{VS("k"), VNULL, VNULL, VNULL, VNULL, VNULL, VD(-100.0), VNULL},
                 J_HEAD "{\"k\":\"k\",\"s\":null,\"i\":null,\"d\":null,\"t\":null,\"l\":null,"
                        "\"n\":-100.0,\"b\":null}}"},
                {{VS("k"), VNULL, VNULL, VNULL, VNULL, VNULL, VD(0.30000000000000004), VNULL},
                 J_HEAD "{\"k\":\"k\",\"s\":null,\"i\":null,\"d\":null,\"t\":null,\"l\":null,"
                        "\"n\":0.30000000000000004,\"b\":null}}"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                exb_record_t rec = {EXB_OP_CREATE, EXB_STR("e"),           EXB_STR("G"), 1,
                                    H_N,           (exb_val_t *)cases[i].v};
                exb_buf_t out;
                exb_buf_init(&out, 0);
                assert_int_equal(exb_codec_to_json(s, &rec, &out), 0);
                exb_buf_cstr(&out);
                if (strcmp((char *)out.p, cases[i].json))
                        fail_msg("case %zu:\n got  %s\n want %s", i, (char *)out.p, cases[i].json);
                exb_buf_free(&out);

                /* a too small buffer fails and leaves it as it was */
                exb_buf_init(&out, 40);
                exb_buf_append(&out, "z", 1);
                assert_int_equal(exb_codec_to_json(s, &rec, &out), -1);
                assert_int_equal(out.len, 1);
                exb_buf_free(&out);
        }
        exb_schema_destroy(s);
}

/* exb_codec_encode_from() writes the bytes exb_codec_encode() writes for the
 * same record, whichever fields it copies from the decoded value: random
 * records, random projections (fields dropped, reordered, repeated), some
 * fields replaced by new values and not copied, any op. */
static void test_encode_from(void **state)
{
        (void)state;
        exb_schema_t *s = mk_schema("RAll", all_fields, ALL_N, 7);
        static arena_t arena, arena2;
        exb_val_t vals[ALL_N], dec[ALL_N], other[ALL_N], outv[ALL_N];
        exb_field_t of[ALL_N];
        int copy[ALL_N];
        uint32_t pos[ALL_N + 1];
        char err[512];
        exb_buf_t in, want, got;
        exb_buf_init(&in, 0);
        exb_buf_init(&want, 0);
        exb_buf_init(&got, 0);
        rng_state = 0x5eed5eed12344321ULL;
        for (int it = 0; it < 2000; it++) {
                exb_record_t rec, d = {.vals = dec}, o;
                rnd_record(s, &arena, &rec, vals);
                rnd_record(s, &arena2, &o, other); /* values that replace some fields */
                exb_buf_reset(&in);
                assert_int_equal(exb_codec_encode(s, &rec, &in, err, sizeof(err)), EXB_OK);
                exb_layout_t lay = {.pos = pos};
                assert_int_equal(exb_codec_decode_layout(s, in.p, in.len, &d, &lay, err, sizeof(err)),
                                 EXB_OK);
                assert_int_equal(pos[ALL_N], in.len);
                int n = (int)rnd_below(ALL_N) + 1;
                for (int f = 0; f < n; f++) {
                        int src = (int)rnd_below(ALL_N);
                        char name[16];
                        snprintf(name, sizeof(name), "f%d", f);
                        of[f] = s->fields[src];
                        of[f].name = strdup(name);
                        if (rnd_below(3) == 0) { /* replaced: encoded, not copied */
                                copy[f] = -1;
                                outv[f] = other[src];
                        } else {
                                copy[f] = src;
                                outv[f] = dec[src];
                        }
                }
                exb_schema_t *os = mk_schema("ROut", of, n, 9);
                for (int f = 0; f < n; f++)
                        free(of[f].name);
                exb_record_t orec = d;
                orec.op = (exb_op_t)rnd_below(EXB_OP_CNT);
                orec.nvals = n;
                orec.vals = outv;
                exb_buf_reset(&want);
                exb_buf_reset(&got);
                assert_int_equal(exb_codec_encode(os, &orec, &want, err, sizeof(err)), EXB_OK);
                assert_int_equal(
                        exb_codec_encode_from(os, &orec, &lay, copy, &got, err, sizeof(err)), EXB_OK);
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.p, want.p, want.len);
                exb_schema_destroy(os);
        }
        exb_buf_free(&in);
        exb_buf_free(&want);
        exb_buf_free(&got);
        exb_schema_destroy(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_frame),
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_roundtrip_types),
                cmocka_unit_test(test_encode_appends),
                cmocka_unit_test(test_hostile),
                cmocka_unit_test(test_decode_values),
                cmocka_unit_test(test_encode_errors),
                cmocka_unit_test(test_fuzz),
                cmocka_unit_test(test_avro_c_cross),
                cmocka_unit_test(test_to_json),
                cmocka_unit_test(test_encode_utf8_mark),
                cmocka_unit_test(test_encode_from),
                cmocka_unit_test(test_varint_lengths),
                cmocka_unit_test(test_short_strings),
                cmocka_unit_test(test_encode_exact_max),
        };
        return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
