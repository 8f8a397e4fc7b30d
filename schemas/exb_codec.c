/*
 * exb_codec.c — Confluent framing and a bounded Avro binary codec for
 * exbus envelopes (see exb_codec.h and exb_schema.h).
 *
 * Avro binary, as far as exbus uses it (Avro 1.11 spec, "Binary Encoding"):
 *
 *   long, int   zig-zag varint: (n << 1) ^ (n >> 63), 7 bits a byte, low
 *               group first, high bit = more. At most 10 bytes; an int is
 *               the same encoding with a value in int32 range.
 *   boolean     one byte, 0 or 1 (anything else is rejected)
 *   double      8 bytes, IEEE 754, little-endian
 *   string      long length, then that many bytes of UTF-8
 *   bytes       long length, then that many bytes
 *   enum        int index of the symbol (op: 0 CREATE .. 3 SNAPSHOT)
 *   union       long branch index, then the value of that branch;
 *               a nullable field is ["null", T]: 0 = null, 1 = T
 *   record      its fields in order, nothing in between
 *
 * so an envelope is: op, event_id, source, ts_ms, then the data fields.
 *
 * Decoding is a single forward pass over the input with one cursor. Every
 * read checks the bytes left first; lengths are compared with the bytes left
 * before anything is touched, so a 4-GB length in a 40-byte message is an
 * error message, not an allocation. Strings are checked to be valid UTF-8
 * (as the Avro spec requires; jansson and SQLite rely on it downstream) and
 * marked so (exb_val_t.utf8_ok): that check is the only one a routed string
 * gets, validation and encoding trust the mark.
 * Values point into the input: no allocation, no copy. Errors are formatted
 * only on the failure path, in a cold function, and name the field and the
 * byte offset from the start of the framed value (what kcat -x shows).
 *
 * Encoding writes straight into the caller's exb_buf_t, into room reserved
 * after its length (2 KiB at a time, never beyond its maximum), so a record
 * costs no copy and, once the buffer has grown, no allocation. On error the
 * output is rolled back to its length on entry.
 */
#include "exb_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define EXB_LIKELY(x)   __builtin_expect(!!(x), 1)
#define EXB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EXB_COLD        __attribute__((cold, noinline))
#else
#define EXB_LIKELY(x)   (x)
#define EXB_UNLIKELY(x) (x)
#define EXB_COLD
#endif

static const char *const env_names[] = {"op", "event_id", "source", "ts_ms"};

/* ---------------------------------------------------------------- framing */

exb_err_t exb_frame_schema_id(const void *buf, size_t len, int32_t *id, char *errstr,
                              size_t errstr_size)
{
        const uint8_t *p = buf;
        if (len < EXB_FRAME_HDR) {
                exb_errf(errstr, errstr_size,
                         "value is %zu bytes, shorter than the %d-byte frame header", len,
                         EXB_FRAME_HDR);
                return EXB_ERR_SCHEMA;
        }
        if (p[0] != EXB_FRAME_MAGIC) {
                exb_errf(errstr, errstr_size,
                         "wrong magic byte 0x%02x (expected 0x%02x): not a Confluent-framed "
                         "Avro value (offset 0)",
                         p[0], EXB_FRAME_MAGIC);
                return EXB_ERR_SCHEMA;
        }
        *id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) |
                        (uint32_t)p[4]);
        return EXB_OK;
}

/* --------------------------------------------------------------- decoding */

/* The cursor. The reading functions are inlined into the decoding loop and
 * its address is never taken, so the compiler keeps it in registers. */
typedef struct {
        const uint8_t *buf;
        size_t len;
        size_t pos;
        const char *field; /* for messages */
        char *errstr;
        size_t errstr_size;
} dec_t;

static EXB_COLD __attribute__((format(printf, 5, 6))) void
dec_fail(char *errstr, size_t errstr_size, const char *field, size_t off, const char *fmt, ...)
{
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        exb_errf(errstr, errstr_size, "field \"%s\": %s (offset %zu)", field, msg, off);
}

/* dec_fail() for cursor d, as an expression worth -1, visibly to the
 * compiler. */
#define DEC_FAIL(d, off, ...)                                                                      \
        (dec_fail((d)->errstr, (d)->errstr_size, (d)->field, (off), __VA_ARGS__), -1)

#define DEC_INLINE static inline __attribute__((always_inline))

/* Reads a zig-zag varint (Avro long). */
DEC_INLINE int dec_long(dec_t *d, int64_t *out)
{
        size_t i = d->pos;
        const uint8_t *p = d->buf;
        if (EXB_LIKELY(i < d->len && p[i] < 0x80)) { /* one byte: -64..63 */
                uint64_t v = p[i];
                *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                d->pos = i + 1;
                return 0;
        }
        /* Up to 8 bytes without a loop: the 8 bytes at i, or, near the end,
         * the last 8 of the value shifted so that its byte i comes first
         * (the zeros shifted in end a varint that is cut short: the loop
         * below says so). */
        size_t left = d->len - i;
        if (EXB_LIKELY(left && d->len >= 8)) {
                uint64_t w = left >= 8 ? exb_load_le64(p + i)
                                       : exb_load_le64(p + d->len - 8) >> (8 * (8 - left));
                uint64_t stop = ~w & 0x8080808080808080ULL;   /* bytes that end it */
                int last = stop ? __builtin_ctzll(stop) : 64; /* its high bit: 8 * k - 1 */
                if (EXB_LIKELY(last < 64 && (size_t)(last >> 3) < left)) {
                        w &= 0x7f7f7f7f7f7f7f7fULL & (~0ULL >> (63 - last));
                        /* 7-bit groups together: pairs, then fours, then all */
                        w = (w & 0x007f007f007f007fULL) | ((w & 0x7f007f007f007f00ULL) >> 1);
                        w = (w & 0x00003fff00003fffULL) | ((w & 0x3fff00003fff0000ULL) >> 2);
                        w = (w & 0x000000000fffffffULL) | ((w & 0x0fffffff00000000ULL) >> 4);
                        *out = (int64_t)(w >> 1) ^ -(int64_t)(w & 1);
                        d->pos = i + (size_t)(last >> 3) + 1;
                        return 0;
                }
        }
        uint64_t v = 0;
        for (int n = 0; n < 10; n++, i++) {
                if (EXB_UNLIKELY(i >= d->len))
                        return DEC_FAIL(d, d->pos, "truncated varint: value ends after %d bytes",
                                        n);
                uint64_t b = p[i];
                if (EXB_UNLIKELY(n == 9 && b > 1)) {
                        if (b & 0x80)
                                return DEC_FAIL(d, d->pos, "varint longer than 10 bytes");
                        return DEC_FAIL(d, d->pos, "varint overflows 64 bits");
                }
                v |= (b & 0x7f) << (7 * n);
                if (!(b & 0x80)) {
                        d->pos = i + 1;
                        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                        return 0;
                }
        }
        return -1; /* not reached: n == 9 either ends or fails above */
}

/* 1 if the n <= 24 bytes at s are all ASCII (so valid UTF-8): codes,
 * numbers and identifiers, most strings of a record, without a call. Loads
 * overlap rather than read past s + n. */
DEC_INLINE int ascii_short(const uint8_t *s, size_t n)
{
        const uint64_t high = 0x8080808080808080ULL;
        if (n >= 8) {
                uint64_t a, b, c = 0;
                memcpy(&a, s, 8);
                memcpy(&b, s + n - 8, 8);
                if (n > 16)
                        memcpy(&c, s + 8, 8);
                return !((a | b | c) & high);
        }
        if (n >= 4) {
                uint32_t a, b;
                memcpy(&a, s, 4);
                memcpy(&b, s + n - 4, 4);
                return !((a | b) & (uint32_t)high);
        }
        if (n >= 2) {
                uint16_t a, b;
                memcpy(&a, s, 2);
                memcpy(&b, s + n - 2, 2);
                return !((a | b) & (uint16_t)high);
        }
        return n == 0 || s[0] < 0x80;
}

/* A length-prefixed string or bytes value; `utf8` checks the content. */
DEC_INLINE int dec_str(dec_t *d, int utf8, exb_str_t *out)
{
        size_t start = d->pos;
        int64_t n;
        if (EXB_LIKELY(start < d->len && !(d->buf[start] & 0x81))) { /* 0..63 bytes */
                n = d->buf[start] >> 1;
                d->pos++;
        } else if (dec_long(d, &n)) {
                return -1;
        }
        size_t left = d->len - d->pos;
        if (EXB_UNLIKELY(n < 0))
                return DEC_FAIL(d, start, "negative %s length %lld", utf8 ? "string" : "bytes",
                                (long long)n);
        if (EXB_UNLIKELY((uint64_t)n > left))
                return DEC_FAIL(d, start, "%s length %lld exceeds the %zu bytes left",
                                utf8 ? "string" : "bytes", (long long)n, left);
        const uint8_t *s = d->buf + d->pos;
        if (utf8 && !(n <= 24 && ascii_short(s, (size_t)n))) {
                size_t ok = exb_utf8_valid_prefix(s, (size_t)n);
                if (EXB_UNLIKELY(ok != (size_t)n))
                        return DEC_FAIL(d, d->pos + ok, "invalid UTF-8 in string");
        }
        out->p = (const char *)s;
        out->len = (size_t)n;
        d->pos += (size_t)n;
        return 0;
}

DEC_INLINE int dec_value(dec_t *d, exb_type_t type, exb_val_t *v)
{
        size_t start = d->pos;
        v->utf8_ok = 0;
        switch (type) {
        case EXB_T_STRING:
                v->utf8_ok = 1; /* dec_str() checks it, or the decode fails */
                return dec_str(d, 1, &v->u.s);
        case EXB_T_BYTES:
                return dec_str(d, 0, &v->u.s);
        case EXB_T_INT:
        case EXB_T_TIMESTAMP:
                return dec_long(d, &v->u.i);
        case EXB_T_DATE:
                if (dec_long(d, &v->u.i))
                        return -1;
                if (EXB_UNLIKELY(v->u.i < INT32_MIN || v->u.i > INT32_MAX))
                        return DEC_FAIL(d, start, "date %lld is out of the Avro int range",
                                        (long long)v->u.i);
                return 0;
        case EXB_T_BOOL:
                if (EXB_UNLIKELY(d->pos >= d->len))
                        return DEC_FAIL(d, start, "truncated boolean: no bytes left");
                if (EXB_UNLIKELY(d->buf[d->pos] > 1))
                        return DEC_FAIL(d, start, "boolean byte 0x%02x is neither 0 nor 1",
                                        d->buf[d->pos]);
                v->u.i = d->buf[d->pos++];
                return 0;
        case EXB_T_NUMBER: {
                if (EXB_UNLIKELY(d->len - d->pos < 8))
                        return DEC_FAIL(d, start, "truncated double: 8 bytes needed, %zu left",
                                        d->len - d->pos);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                memcpy(&v->u.d, d->buf + d->pos, 8);
#else
                uint64_t w = 0;
                for (int k = 7; k >= 0; k--)
                        w = (w << 8) | d->buf[d->pos + k];
                memcpy(&v->u.d, &w, 8);
#endif
                d->pos += 8;
                return 0;
        }
        }
        return DEC_FAIL(d, start, "schema has unknown item type %d", (int)type);
}

exb_err_t exb_codec_decode(const exb_schema_t *schema, const void *buf, size_t len,
                           exb_record_t *rec, char *errstr, size_t errstr_size)
{
        return exb_codec_decode_layout(schema, buf, len, rec, NULL, errstr, errstr_size);
}

exb_err_t exb_codec_decode_layout(const exb_schema_t *schema, const void *buf, size_t len,
                                  exb_record_t *rec, exb_layout_t *lay, char *errstr,
                                  size_t errstr_size)
{
        int32_t id;
        if (exb_frame_schema_id(buf, len, &id, errstr, errstr_size))
                return EXB_ERR_SCHEMA;
        if (id != schema->id) {
                exb_errf(errstr, errstr_size,
                         "schema id %d in the frame, but decoding with schema %d (%s)", (int)id,
                         (int)schema->id, schema->name);
                return EXB_ERR_SCHEMA;
        }

        dec_t d = {.buf = buf,
                   .len = len,
                   .pos = EXB_FRAME_HDR,
                   .errstr = errstr,
                   .errstr_size = errstr_size};
        int64_t op;

        d.field = env_names[0];
        size_t start = d.pos;
        if (dec_long(&d, &op))
                return EXB_ERR_SCHEMA;
        if (EXB_UNLIKELY(op < 0 || op >= EXB_OP_CNT)) {
                (void)DEC_FAIL(&d, start, "enum index %lld out of range 0..%d", (long long)op,
                               EXB_OP_CNT - 1);
                return EXB_ERR_SCHEMA;
        }
        rec->op = (exb_op_t)op;
        if (lay) {
                lay->buf = buf;
                lay->env = (uint32_t)d.pos;
        }
        d.field = env_names[1];
        if (dec_str(&d, 1, &rec->event_id))
                return EXB_ERR_SCHEMA;
        d.field = env_names[2];
        if (dec_str(&d, 1, &rec->source))
                return EXB_ERR_SCHEMA;
        d.field = env_names[3];
        if (dec_long(&d, &rec->ts_ms))
                return EXB_ERR_SCHEMA;

        const exb_field_t *f = schema->fields;
        exb_val_t *v = rec->vals;
        const int nfields = schema->nfields;
        for (int i = 0; i < nfields; i++, f++, v++) {
                d.field = f->name;
                if (lay)
                        lay->pos[i] = (uint32_t)d.pos;
                if (f->nullable) {
                        start = d.pos;
                        /* Branch index: a varint, 0x00 = 0 = null, 0x02 = 1 = value. */
                        if (EXB_LIKELY(d.pos < d.len && d.buf[d.pos] == 0x02)) {
                                d.pos++;
                        } else if (d.pos < d.len && d.buf[d.pos] == 0x00) {
                                d.pos++;
                                v->is_null = 1;
                                v->u.i = 0;
                                v->utf8_ok = 0;
                                continue;
                        } else {
                                int64_t br;
                                if (dec_long(&d, &br))
                                        return EXB_ERR_SCHEMA;
                                (void)DEC_FAIL(&d, start,
                                               "union index %lld out of range 0..1 (0 = null, 1 "
                                               "= value)",
                                               (long long)br);
                                return EXB_ERR_SCHEMA;
                        }
                }
                v->is_null = 0;
                if (dec_value(&d, f->type, v))
                        return EXB_ERR_SCHEMA;
        }
        if (EXB_UNLIKELY(d.pos != d.len)) {
                exb_errf(errstr, errstr_size, "%zu trailing bytes after the record (offset %zu)",
                         d.len - d.pos, d.pos);
                return EXB_ERR_SCHEMA;
        }
        if (lay)
                lay->pos[schema->nfields] = (uint32_t)d.pos;
        rec->nvals = schema->nfields;
        return EXB_OK;
}

/* --------------------------------------------------------------- encoding */

/* The writer puts bytes straight into out's memory after out->len: `room`
 * bytes are reserved there (at most WR_ROOM, and not beyond out->max), `n`
 * of them written. wr_commit() adds those to out->len and reserves again;
 * the last one only adds them. */
#define WR_ROOM 2048

typedef struct {
        exb_buf_t *out;
        uint8_t *at; /* out->p + out->len */
        size_t n, room;
        int err; /* out's maximum or memory exhausted */
} wr_t;

static inline int wr_commit(wr_t *w)
{
        exb_buf_t *out = w->out;
        out->len += w->n;
        w->n = 0;
        size_t left = out->max - out->len;
        w->room = left < WR_ROOM ? left : WR_ROOM;
        if (out->cap <= out->len + w->room && exb_buf_reserve(out, w->room)) {
                w->room = 0;
                w->err = 1;
        }
        w->at = out->p + out->len;
        return w->err ? -1 : 0;
}

static inline void wr_raw(wr_t *w, const void *p, size_t len)
{
        if (EXB_LIKELY(len <= w->room - w->n)) {
                if (len)
                        memcpy(w->at + w->n, p, len);
                w->n += len;
                return;
        }
        if (w->err || wr_commit(w))
                return;
        if (len <= w->room) {
                memcpy(w->at, p, len);
                w->n = len;
        } else if (exb_buf_append(w->out, p, len) || wr_commit(w)) {
                w->err = 1;
        }
}

static inline void wr_long(wr_t *w, int64_t n)
{
        uint64_t v = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
        uint8_t b[10], *o = EXB_LIKELY(w->n + 10 <= w->room) ? w->at + w->n : b;
        uint8_t *start = o;
        while (v >= 0x80) {
                *o++ = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        *o++ = (uint8_t)v;
        if (EXB_LIKELY(start != b))
                w->n += (size_t)(o - start);
        else /* near the end of the room: through wr_raw() */
                wr_raw(w, b, (size_t)(o - b));
}

static inline void wr_byte(wr_t *w, uint8_t b)
{
        if (EXB_LIKELY(w->n < w->room))
                w->at[w->n++] = b;
        else
                wr_raw(w, &b, 1);
}

static EXB_COLD __attribute__((format(printf, 5, 6))) exb_err_t
enc_fail(wr_t *w, size_t len0, char *errstr, size_t errstr_size, const char *fmt, ...)
{
        if (errstr && errstr_size) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(errstr, errstr_size, fmt, ap);
                va_end(ap);
        }
        w->out->len = len0;
        return EXB_ERR_INVALID;
}

/* Checks a string/bytes value: non-NULL pointer unless empty, UTF-8 if
 * `utf8` (a string not known to be valid). Returns 0, or the 1-based error
 * kind. */
static inline int str_bad(exb_str_t s, int utf8)
{
        if (EXB_UNLIKELY(!s.p && s.len))
                return 1;
        if (utf8 && EXB_UNLIKELY(!exb_utf8_valid(s.p, s.len)))
                return 2;
        return 0;
}

static void wr_double(wr_t *w, double d)
{
        uint8_t b[8];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(b, &d, 8);
#else
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int k = 0; k < 8; k++, u >>= 8)
                b[k] = (uint8_t)u;
#endif
        wr_raw(w, b, 8);
}

/* exb_codec_encode(), and exb_codec_encode_from() when `from` is given. */
static exb_err_t encode(const exb_schema_t *schema, const exb_record_t *rec,
                        const exb_layout_t *from, const int *copy, exb_buf_t *out, char *errstr,
                        size_t errstr_size)
{
        wr_t w = {.out = out};
        size_t len0 = out->len;
        int bad;

        if (schema->id < 0)
                return enc_fail(&w, len0, errstr, errstr_size,
                                "schema %s has no id (not registered): cannot frame a value",
                                schema->name);
        if (rec->nvals != schema->nfields || (schema->nfields && !rec->vals))
                return enc_fail(&w, len0, errstr, errstr_size,
                                "record has %d values, schema %s has %d fields", rec->nvals,
                                schema->name, schema->nfields);
        if ((unsigned)rec->op >= EXB_OP_CNT)
                return enc_fail(&w, len0, errstr, errstr_size, "field \"op\": invalid op %d",
                                (int)rec->op);
        if (!from && (bad = str_bad(rec->event_id, 1)))
                return enc_fail(&w, len0, errstr, errstr_size, "field \"event_id\": %s",
                                bad == 1 ? "NULL string pointer" : "invalid UTF-8 in string");
        if (!from && (bad = str_bad(rec->source, 1)))
                return enc_fail(&w, len0, errstr, errstr_size, "field \"source\": %s",
                                bad == 1 ? "NULL string pointer" : "invalid UTF-8 in string");

        uint32_t id = (uint32_t)schema->id;
        const uint8_t hdr[EXB_FRAME_HDR] = {EXB_FRAME_MAGIC, (uint8_t)(id >> 24),
                                            (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
        wr_commit(&w); /* the first room */
        wr_raw(&w, hdr, EXB_FRAME_HDR);
        wr_long(&w, rec->op);
        /* Bytes of `from` still to be copied: [run, run_end). Copied parts
         * that are adjacent there are copied at once. */
        uint32_t run = 0, run_end = 0;
        if (from) {
                run = from->env;
                run_end = from->pos[0];
        } else {
                wr_long(&w, (int64_t)rec->event_id.len);
                wr_raw(&w, rec->event_id.p, rec->event_id.len);
                wr_long(&w, (int64_t)rec->source.len);
                wr_raw(&w, rec->source.p, rec->source.len);
                wr_long(&w, rec->ts_ms);
        }

        const exb_field_t *f = schema->fields;
        const exb_val_t *v = rec->vals;
        for (int i = 0; i < schema->nfields; i++, f++, v++) {
                if (from && copy[i] >= 0) {
                        uint32_t a = from->pos[copy[i]], b = from->pos[copy[i] + 1];
                        if (a != run_end) {
                                wr_raw(&w, from->buf + run, run_end - run);
                                run = a;
                        }
                        run_end = b;
                        continue;
                }
                if (run_end > run) {
                        wr_raw(&w, from->buf + run, run_end - run);
                        run = run_end;
                }
                if (v->is_null) {
                        if (EXB_UNLIKELY(!f->nullable))
                                return enc_fail(&w, len0, errstr, errstr_size,
                                                "field \"%s\": null value for a required field",
                                                f->name);
                        wr_byte(&w, 0x00);
                        continue;
                }
                if (f->nullable)
                        wr_byte(&w, 0x02);
                switch (f->type) {
                case EXB_T_STRING:
                case EXB_T_BYTES:
                        if (EXB_UNLIKELY((
                                    bad = str_bad(v->u.s, f->type == EXB_T_STRING && !v->utf8_ok))))
                                return enc_fail(&w, len0, errstr, errstr_size, "field \"%s\": %s",
                                                f->name,
                                                bad == 1 ? "NULL string pointer"
                                                         : "invalid UTF-8 in string");
                        wr_long(&w, (int64_t)v->u.s.len);
                        wr_raw(&w, v->u.s.p, v->u.s.len);
                        break;
                case EXB_T_INT:
                case EXB_T_TIMESTAMP:
                        wr_long(&w, v->u.i);
                        break;
                case EXB_T_DATE:
                        if (EXB_UNLIKELY(v->u.i < INT32_MIN || v->u.i > INT32_MAX))
                                return enc_fail(&w, len0, errstr, errstr_size,
                                                "field \"%s\": date %lld is out of the Avro int "
                                                "range",
                                                f->name, (long long)v->u.i);
                        wr_long(&w, v->u.i);
                        break;
                case EXB_T_BOOL:
                        wr_byte(&w, v->u.i ? 1 : 0);
                        break;
                case EXB_T_NUMBER:
                        wr_double(&w, v->u.d);
                        break;
                default:
                        return enc_fail(&w, len0, errstr, errstr_size,
                                        "field \"%s\": schema has unknown item type %d", f->name,
                                        (int)f->type);
                }
                if (EXB_UNLIKELY(w.err))
                        break;
        }
        if (run_end > run)
                wr_raw(&w, from->buf + run, run_end - run);
        if (w.err) {
                out->len = len0;
                exb_errf(errstr, errstr_size,
                         "encoded record of schema %s exceeds the output buffer's maximum of %zu "
                         "bytes",
                         schema->name, out->max);
                return EXB_ERR_FATAL;
        }
        out->len += w.n;
        return EXB_OK;
}

exb_err_t exb_codec_encode(const exb_schema_t *schema, const exb_record_t *rec, exb_buf_t *out,
                           char *errstr, size_t errstr_size)
{
        return encode(schema, rec, NULL, NULL, out, errstr, errstr_size);
}

exb_err_t exb_codec_encode_from(const exb_schema_t *schema, const exb_record_t *rec,
                                const exb_layout_t *from, const int *copy, exb_buf_t *out,
                                char *errstr, size_t errstr_size)
{
        return encode(schema, rec, from, copy, out, errstr, errstr_size);
}

/* ------------------------------------------------------------------- JSON */

/* Appends s as a JSON string; invalid UTF-8 bytes become U+FFFD. */
static int json_str(exb_buf_t *b, const char *sp, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        const uint8_t *s = (const uint8_t *)sp;
        if (exb_buf_putc(b, '"'))
                return -1;
        size_t i = 0;
        while (i < len) {
                /* Longest run that needs no escaping. */
                size_t j = i;
                while (j < len && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < 0x80)
                        j++;
                if (j > i && exb_buf_append(b, s + i, j - i))
                        return -1;
                i = j;
                if (i >= len)
                        break;
                uint8_t c = s[i];
                if (c >= 0x80) {
                        size_t ok = exb_utf8_valid_prefix(s + i, len - i);
                        if (ok) {
                                /* Copy the valid non-ASCII run up to the next
                                 * byte that needs attention. */
                                size_t k = 0;
                                while (k < ok && s[i + k] >= 0x20 && s[i + k] != '"' &&
                                       s[i + k] != '\\')
                                        k++;
                                /* Never split a character: k stops only on ASCII. */
                                if (exb_buf_append(b, s + i, k))
                                        return -1;
                                i += k;
                                continue;
                        }
                        if (exb_buf_append(b, "\\ufffd", 6))
                                return -1;
                        i++;
                        continue;
                }
                char esc[7];
                const char *e = esc;
                size_t elen = 2;
                switch (c) {
                case '"':
                        e = "\\\"";
                        break;
                case '\\':
                        e = "\\\\";
                        break;
                case '\n':
                        e = "\\n";
                        break;
                case '\r':
                        e = "\\r";
                        break;
                case '\t':
                        e = "\\t";
                        break;
                case '\b':
                        e = "\\b";
                        break;
                case '\f':
                        e = "\\f";
                        break;
                default:
                        memcpy(esc, "\\u00", 4);
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 15];
                        elen = 6;
                }
                if (exb_buf_append(b, e, elen))
                        return -1;
                i++;
        }
        return exb_buf_putc(b, '"');
}

static int json_base64(exb_buf_t *b, const uint8_t *s, size_t len)
{
        static const char tab[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char q[4];
        if (exb_buf_putc(b, '"'))
                return -1;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)s[i + 1] << 8;
                if (i + 2 < len)
                        v |= s[i + 2];
                q[0] = tab[(v >> 18) & 63];
                q[1] = tab[(v >> 12) & 63];
                q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
                q[3] = i + 2 < len ? tab[v & 63] : '=';
                if (exb_buf_append(b, q, 4))
                        return -1;
        }
        return exb_buf_putc(b, '"');
}

/* Shortest %g form that reads back as the same double, always with a "."
 * or an exponent; non-finite -> null (JSON has no NaN or infinity). */
static int json_double(exb_buf_t *b, double d)
{
        if (!isfinite(d))
                return exb_buf_append(b, "null", 4);
        char tmp[48];
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
                if (prec == 17 || strtod(tmp, NULL) == d)
                        break;
        }
        /* "3" -> "3.0": a double stays a double for typed readers, and -0.0
         * keeps its sign. */
        if (!strpbrk(tmp, ".e"))
                strcat(tmp, ".0");
        return exb_buf_append(b, tmp, strlen(tmp));
}

/* Date range that formats as YYYY-MM-DD: 0000-01-01 .. 9999-12-31. */
#define DAYS_MIN (-719528)
#define DAYS_MAX 2932896
#define MS_MIN   ((int64_t)DAYS_MIN * 86400000)
#define MS_MAX   ((int64_t)(DAYS_MAX + 1) * 86400000 - 1)

int exb_codec_to_json(const exb_schema_t *schema, const exb_record_t *rec, exb_buf_t *out)
{
        size_t len0 = out->len;
        int r = exb_buf_append(out, "{\"op\":\"", 7) ||
                exb_buf_printf(out, "%s\",\"event_id\":", exb_op_name(rec->op)) ||
                json_str(out, rec->event_id.p, rec->event_id.len) ||
                exb_buf_append(out, ",\"source\":", 10) ||
                json_str(out, rec->source.p, rec->source.len) ||
                exb_buf_printf(out, ",\"ts_ms\":%lld,\"data\":{", (long long)rec->ts_ms);
        for (int i = 0; !r && i < schema->nfields && i < rec->nvals; i++) {
                const exb_field_t *f = &schema->fields[i];
                const exb_val_t *v = &rec->vals[i];
                char tmp[32];
                r = (i && exb_buf_putc(out, ',')) || json_str(out, f->name, strlen(f->name)) ||
                    exb_buf_putc(out, ':');
                if (r)
                        break;
                if (v->is_null) {
                        r = exb_buf_append(out, "null", 4);
                        continue;
                }
                switch (f->type) {
                case EXB_T_STRING:
                        r = json_str(out, v->u.s.p, v->u.s.len);
                        break;
                case EXB_T_BYTES:
                        r = json_base64(out, (const uint8_t *)v->u.s.p, v->u.s.len);
                        break;
                case EXB_T_NUMBER:
                        r = json_double(out, v->u.d);
                        break;
                case EXB_T_BOOL:
                        r = exb_buf_printf(out, "%s", v->u.i ? "true" : "false");
                        break;
                case EXB_T_DATE:
                        /* Outside years 0..9999 no YYYY-MM-DD exists: the day number. */
                        if (v->u.i < DAYS_MIN || v->u.i > DAYS_MAX) {
                                r = exb_buf_printf(out, "%lld", (long long)v->u.i);
                        } else {
                                exb_date_format(v->u.i, tmp);
                                r = exb_buf_printf(out, "\"%s\"", tmp);
                        }
                        break;
                case EXB_T_TIMESTAMP:
                        if (v->u.i < MS_MIN || v->u.i > MS_MAX) {
                                r = exb_buf_printf(out, "%lld", (long long)v->u.i);
                        } else {
                                exb_ts_format(v->u.i, tmp);
                                r = exb_buf_printf(out, "\"%s\"", tmp);
                        }
                        break;
                default:
                        r = exb_buf_printf(out, "%lld", (long long)v->u.i);
                }
        }
        if (!r)
                r = exb_buf_append(out, "}}", 2);
        if (r) {
                out->len = len0;
                return -1;
        }
        return 0;
}
