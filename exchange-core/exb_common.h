/*
 * exb_common.h — the vocabulary every exbus module shares.
 *
 * - exb_err_t: what a caller should do next (retry, report, dead-letter, stop).
 * - exb_val_t / exb_record_t: one change record in memory, independent of Avro.
 *   A record's values are in the order of the fields of the schema it was
 *   decoded with or will be encoded with. String and bytes values are
 *   (pointer, length) pairs that are NOT NUL-terminated and are borrowed:
 *   after a decode they point into the message buffer (zero copy), so they
 *   are valid only while that buffer is.
 * - exb_buf_t: a growable byte buffer with a hard maximum size fixed at init
 *   (curl's dynbuf), so untrusted input can never make it grow unbounded.
 * - errstr convention: functions that can fail take (char *errstr, size_t
 *   errstr_size) and fill it with a message that names the thing and the place.
 */
#ifndef EXB_COMMON_H
#define EXB_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

typedef enum {
        EXB_OK = 0,
        EXB_ERR_RETRY,   /* transient: broker down, queue full, HTTP 503 */
        EXB_ERR_INVALID, /* bad input or config: report it, never retry */
        EXB_ERR_SCHEMA,  /* unknown schema id or undecodable: dead-letter */
        EXB_ERR_FATAL    /* this process cannot go on */
} exb_err_t;

const char *exb_err_name(exb_err_t err);

/* Item types of the catalog (DESIGN §4); the enum value is the catalog letter. */
typedef enum {
        EXB_T_STRING    = 'C', /* Avro string */
        EXB_T_NUMBER    = 'N', /* Avro double */
        EXB_T_INT       = 'I', /* Avro long */
        EXB_T_DATE      = 'D', /* Avro int, logicalType date: days since 1970-01-01 */
        EXB_T_TIMESTAMP = 'T', /* Avro long, logicalType timestamp-millis */
        EXB_T_BOOL      = 'L', /* Avro boolean */
        EXB_T_BYTES     = 'B'  /* Avro bytes */
} exb_type_t;

/* Returns 1 if c is one of the letters above. */
int exb_type_valid(int c);

typedef enum {
        EXB_OP_CREATE = 0,
        EXB_OP_UPDATE,
        EXB_OP_DELETE,
        EXB_OP_SNAPSHOT
} exb_op_t;
#define EXB_OP_CNT 4
const char *exb_op_name(exb_op_t op); /* "CREATE" ... */
int exb_op_parse(const char *s);      /* -1 if unknown */

/* A borrowed, not necessarily NUL-terminated string. */
typedef struct exb_str_s {
        const char *p;
        size_t len;
} exb_str_t;

#define EXB_STR(lit) ((exb_str_t){(lit), sizeof(lit) - 1})
exb_str_t exb_str(const char *cstr); /* NULL gives {NULL, 0} */
int exb_str_eq(exb_str_t a, const char *cstr);

/* The 8 bytes at p as a little-endian number, whatever the host's order. */
static inline uint64_t exb_load_le64(const void *p)
{
        uint64_t w;
        __builtin_memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        return w;
}

/* Length of the ASCII prefix of p[0..len): 8 bytes at a time, then byte
 * by byte. */
static inline size_t exb_ascii_prefix(const void *p, size_t len)
{
        const uint8_t *s = p;
        size_t i = 0;
        while (len - i >= 8 && !(exb_load_le64(s + i) & 0x8080808080808080ULL))
                i += 8;
        while (i < len && s[i] < 0x80)
                i++;
        return i;
}

/* UTF-8 as Avro, JSON and SQLite want it (RFC 3629): no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 * exb_utf8_valid_prefix() returns the length of the longest valid prefix of
 * p[0..len), i.e. len if all of it is valid, else the offset of the first
 * byte of the first invalid or truncated sequence. ASCII goes 8 bytes at a
 * time, CJK two characters at a time. p may be NULL when len is 0. */
size_t exb_utf8_valid_prefix(const void *p, size_t len);
int exb_utf8_valid(const void *p, size_t len); /* 1 if valid, else 0 */
/* Code points in p[0..len), which must be valid UTF-8 (it counts the bytes
 * that are not continuation bytes). */
size_t exb_utf8_count(const void *p, size_t len);

/* One item value. The type is that of the schema field it belongs to.
 *
 * utf8_ok = 1 says that u.s of a string (C) value is known to be valid UTF-8
 * because the code that made the value checked it: exb_codec_decode() sets
 * it on every string it decoded (it checks them all), exb_mask_apply() on a
 * masked text it made from valid input, and a copy of a value keeps it. Then
 * exb_validate() and exb_codec_encode() do not check those bytes again.
 * Everything else leaves it 0 and gets them checked: build values with a
 * compound literal or an initializer ((exb_val_t){.u.s = ...}, which zeroes
 * it), never by filling uninitialised memory field by field. */
typedef struct exb_val_s {
        int is_null;
        union {
                int64_t i;   /* I, D (days), T (ms), L (0/1) */
                double d;    /* N */
                exb_str_t s; /* C, B */
        } u;
        int utf8_ok; /* last, so that {is_null, {u}} initializers leave it 0 */
} exb_val_t;

typedef struct exb_record_s {
        exb_op_t op;
        exb_str_t event_id;
        exb_str_t source;
        int64_t ts_ms;
        int nvals;       /* == the schema's field count */
        exb_val_t *vals; /* owned by whoever built the record */
} exb_record_t;

/* Growable buffer with a hard maximum (0 = 1 GiB). */
typedef struct exb_buf_s {
        uint8_t *p;
        size_t len;
        size_t cap;
        size_t max;
} exb_buf_t;

void exb_buf_init(exb_buf_t *b, size_t max);
void exb_buf_reset(exb_buf_t *b); /* len = 0, keeps memory */
void exb_buf_free(exb_buf_t *b);
/* Returns 0, or -1 (nothing appended) if the maximum would be exceeded or
 * memory is exhausted. */
int exb_buf_append(exb_buf_t *b, const void *data, size_t len);
/* Makes room for `more` bytes (and a NUL) after len without changing len, for
 * writing straight into p. Returns 0, or -1 like exb_buf_append(). */
int exb_buf_reserve(exb_buf_t *b, size_t more);
int exb_buf_putc(exb_buf_t *b, int c);
int exb_buf_printf(exb_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Makes sure p[len] == '\0' (not counted in len). Returns 0 or -1. */
int exb_buf_cstr(exb_buf_t *b);

/* snprintf into errstr; always NUL-terminates; returns errstr. */
char *exb_errf(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logging to stderr: "2026-11-23T10:00:00.123Z exbus[router] INFO: ...".
 * exb_log_role() sets the bracketed role name. Level: 0 error .. 3 debug;
 * EXBUS_LOG_LEVEL in the environment sets the threshold (default 2). */
void exb_log_role(const char *role);
void exb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define EXB_ERROR(...) exb_log(0, __VA_ARGS__)
#define EXB_WARN(...) exb_log(1, __VA_ARGS__)
#define EXB_INFO(...) exb_log(2, __VA_ARGS__)
#define EXB_DEBUG(...) exb_log(3, __VA_ARGS__)

/* Wall clock in ms since the epoch; monotonic clock in ms. */
int64_t exb_now_ms(void);
int64_t exb_mono_ms(void);

/* Dates: "YYYY-MM-DD" <-> days since 1970-01-01. Parse returns 0 or -1. */
int exb_date_parse(const char *s, size_t len, int64_t *days);
void exb_date_format(int64_t days, char out[11]);
/* Timestamps: ISO-8601 ("2026-01-15T08:30:00Z", "2026-01-15 08:30:00",
 * optional ".sss", optional "Z"/"+08:00"; without a zone, UTC) <-> ms. */
int exb_ts_parse(const char *s, size_t len, int64_t *ms);
void exb_ts_format(int64_t ms, char out[25]); /* 2026-01-15T08:30:00.000Z */

/* strdup that aborts on out-of-memory (the only allocation failure policy in
 * exbus: a process that cannot allocate cannot go on). */
char *exb_strdup(const char *s);
char *exb_strndup(const char *s, size_t len);
void *exb_calloc(size_t n, size_t size);
void *exb_realloc(void *p, size_t size);

/* Levenshtein distance between a (la bytes) and b, for "did you mean"
 * hints; 99 when either is longer than 128 bytes. */
int exb_edit_distance(const char *a, size_t la, const char *b);

/* 32-bit FNV-1a hash of a string (hash tables, stable short ids). */
uint32_t exb_fnv1a(const char *s);

#define EXB_ARRAY_CNT(a) (sizeof(a) / sizeof((a)[0]))

#endif
