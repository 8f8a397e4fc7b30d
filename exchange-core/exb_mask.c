/*
 * exb_mask.c — masks applied to one item value of a delivery (see exb_mask.h).
 *
 * Hot path. The router calls exb_mask_apply() once per delivered record per
 * masked item, so a call allocates nothing once its scratch buffer has grown
 * to the largest value seen:
 *
 *  - partial works in place: the value's text is put at the start of
 *    scratch, then each masked code point (1..4 bytes) becomes one '*' and
 *    the kept tail is moved down. The result is never longer than the text.
 *  - hash is HMAC-SHA256 with the ipad/opad digest states precomputed once
 *    per secret and thread (RFC 2104 §4, "precomputed keys"): a call copies
 *    two SHA256_CTX structs and runs two short digests, ~0.14 µs and no
 *    allocation, where OpenSSL 3's one-shot HMAC() fetches the algorithm,
 *    allocates contexts and rebuilds the key schedule on every call (~3 µs;
 *    EVP digest-context copies, ~0.34 µs, allocate twice per call). The
 *    state is thread-local, so router threads never share it; it is rebuilt
 *    when the secret changes.
 *
 * Text forms (exb_val_to_text) are what a person would write in a CSV file:
 * numbers in the shortest form that reads back to the same double, dates
 * YYYY-MM-DD, timestamps ISO-8601 UTC with milliseconds, booleans true/false,
 * bytes lower-case hex.
 */
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3.0 in favour of EVP,
 * but EVP offers no way to restart from a saved digest state without a
 * heap allocation per copy (EVP_MD_CTX_copy_ex dups the provider context).
 * Asking for the 1.1.1 API level keeps them declared without warnings
 * (openssl_user_macros(7)). */
#define OPENSSL_API_COMPAT 10101

#include "exb_mask.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#define EXB_MASK_MAX_HT 64
#define HMAC_BLOCK      64 /* SHA-256 block size */
#define HMAC_LEN        32

/* ------------------------------------------------------------ spec text */

/* Reads a decimal 0..EXB_MASK_MAX_HT at *pp; advances *pp. Returns 0 or -1. */
static int parse_count(const char **pp, int *out)
{
        const char *p = *pp;
        int v = 0;
        if (*p < '0' || *p > '9')
                return -1;
        while (*p >= '0' && *p <= '9') {
                v = v * 10 + (*p - '0');
                if (v > EXB_MASK_MAX_HT)
                        return -1;
                p++;
        }
        *pp = p;
        *out = v;
        return 0;
}

int exb_mask_parse(const char *spec, exb_mask_t *mask, char *errstr, size_t errstr_size)
{
        memset(mask, 0, sizeof(*mask));
        if (!spec) {
                exb_errf(errstr, errstr_size,
                         "mask: missing (expected partial:H:T, hash or redact)");
                return -1;
        }
        if (!strcmp(spec, "hash")) {
                mask->kind = EXB_MASK_HASH;
                return 0;
        }
        if (!strcmp(spec, "redact")) {
                mask->kind = EXB_MASK_REDACT;
                return 0;
        }
        if (!strcmp(spec, "none")) {
                mask->kind = EXB_MASK_NONE;
                return 0;
        }
        if (!strncmp(spec, "partial", 7) && (spec[7] == ':' || spec[7] == '\0')) {
                const char *p = spec + 7;
                int h, t;
                if (*p++ != ':' || parse_count(&p, &h) || *p++ != ':' || parse_count(&p, &t) ||
                    *p != '\0') {
                        exb_errf(errstr, errstr_size,
                                 "mask \"%s\": expected partial:HEAD:TAIL, each 0..%d "
                                 "(e.g. partial:6:4)",
                                 spec, EXB_MASK_MAX_HT);
                        return -1;
                }
                mask->kind = EXB_MASK_PARTIAL;
                mask->head = h;
                mask->tail = t;
                return 0;
        }
        exb_errf(errstr, errstr_size, "unknown mask \"%s\" (expected partial:H:T, hash or redact)",
                 spec);
        return -1;
}

void exb_mask_format(const exb_mask_t *mask, char *out, size_t out_size)
{
        switch (mask->kind) {
        case EXB_MASK_PARTIAL:
                snprintf(out, out_size, "partial:%d:%d", mask->head, mask->tail);
                break;
        case EXB_MASK_HASH:
                snprintf(out, out_size, "hash");
                break;
        case EXB_MASK_REDACT:
                snprintf(out, out_size, "redact");
                break;
        default:
                snprintf(out, out_size, "none");
                break;
        }
}

exb_type_t exb_mask_result_type(const exb_mask_t *mask, exb_type_t type)
{
        if (mask->kind == EXB_MASK_PARTIAL || mask->kind == EXB_MASK_HASH)
                return EXB_T_STRING;
        return type;
}

/* ------------------------------------------------------------ text form */

static const char hexdigits[] = "0123456789abcdef";

static int put_hex(exb_buf_t *out, const uint8_t *p, size_t n)
{
        char tmp[128];
        size_t start = out->len, i, k;
        while (n) {
                k = n < sizeof(tmp) / 2 ? n : sizeof(tmp) / 2;
                for (i = 0; i < k; i++) {
                        tmp[2 * i] = hexdigits[p[i] >> 4];
                        tmp[2 * i + 1] = hexdigits[p[i] & 0xf];
                }
                if (exb_buf_append(out, tmp, 2 * k)) {
                        out->len = start;
                        return -1;
                }
                p += k;
                n -= k;
        }
        return 0;
}

int exb_val_to_text(exb_type_t type, const exb_val_t *v, exb_buf_t *out)
{
        char tmp[32];
        int prec;

        if (v->is_null)
                return 0;
        switch (type) {
        case EXB_T_STRING:
                return exb_buf_append(out, v->u.s.p, v->u.s.len);
        case EXB_T_BYTES:
                return put_hex(out, (const uint8_t *)v->u.s.p, v->u.s.len);
        case EXB_T_INT:
                snprintf(tmp, sizeof(tmp), "%" PRId64, v->u.i);
                break;
        case EXB_T_NUMBER:
                /* Shortest of %.15g..%.17g that reads back as the same double:
                 * 0.1 -> "0.1", not "0.10000000000000001". */
                for (prec = 15; prec <= 17; prec++) {
                        snprintf(tmp, sizeof(tmp), "%.*g", prec, v->u.d);
                        if (strtod(tmp, NULL) == v->u.d)
                                break;
                }
                break;
        case EXB_T_DATE:
                exb_date_format(v->u.i, tmp);
                break;
        case EXB_T_TIMESTAMP:
                exb_ts_format(v->u.i, tmp);
                break;
        case EXB_T_BOOL:
                snprintf(tmp, sizeof(tmp), "%s", v->u.i ? "true" : "false");
                break;
        default:
                return -1;
        }
        return exb_buf_append(out, tmp, strlen(tmp));
}

/* ------------------------------------------------------------ partial */

/* Byte length of the UTF-8 sequence at p (n > 0 bytes left). A malformed
 * or truncated sequence counts as one character per byte, so every byte is
 * either kept or starred, never split. */
static size_t utf8_seq_len(const uint8_t *p, size_t n)
{
        size_t l, i;
        uint8_t c = p[0];
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                l = 2;
        else if (c >= 0xe0 && c <= 0xef)
                l = 3;
        else if (c >= 0xf0 && c <= 0xf4)
                l = 4;
        else
                return 1;
        if (l > n)
                return 1;
        for (i = 1; i < l; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 1;
        return l;
}

/* Masks the n bytes at s in place; returns the new length (<= n). */
static size_t partial_in_place(uint8_t *s, size_t n, int head, int tail)
{
        size_t ncp = 0, off, head_end = 0, tail_start = n, nmid, i;

        if (exb_ascii_prefix(s, n) == n) { /* ASCII (ids, codes, numbers): characters are bytes */
                ncp = n;
                head_end = (size_t)head;
                tail_start = n - (size_t)tail;
        } else {
                for (off = 0; off < n; off += utf8_seq_len(s + off, n - off))
                        ncp++;
                for (off = 0, i = 0; off < n && i <= ncp;
                     off += utf8_seq_len(s + off, n - off), i++) {
                        if (i == (size_t)head)
                                head_end = off;
                        if (i + (size_t)tail == ncp) {
                                tail_start = off;
                                break;
                        }
                }
        }
        if (ncp <= (size_t)head + (size_t)tail) {
                memset(s, '*', ncp);
                return ncp;
        }
        nmid = ncp - (size_t)head - (size_t)tail;
        memset(s + head_end, '*', nmid);
        memmove(s + head_end + nmid, s + tail_start, n - tail_start);
        return head_end + nmid + (n - tail_start);
}

/* ------------------------------------------------------------ hash */

/* This thread's HMAC key state: K0 (the key, hashed if longer than a block,
 * zero-padded to a block; two keys with the same K0 give the same HMAC, so
 * K0 is the right cache key) and the digest states after absorbing
 * K0 ^ ipad and K0 ^ opad. Plain structs: copying one is the whole
 * per-call setup, and nothing is allocated or needs freeing. */
typedef struct hmac_state_s {
        int ready;
        uint8_t k0[HMAC_BLOCK];
        SHA256_CTX inner, outer;
} hmac_state_t;

static _Thread_local hmac_state_t hmac_tls;

/* HMAC-SHA256(secret, data) into md (RFC 2104). Returns 0 or -1. */
static int hmac_sha256(const void *secret, size_t secret_len, const void *data, size_t n,
                       uint8_t md[HMAC_LEN])
{
        hmac_state_t *st = &hmac_tls;
        uint8_t k0[HMAC_BLOCK], pad[HMAC_BLOCK], ih[HMAC_LEN];
        SHA256_CTX w;
        size_t i;

        memset(k0, 0, sizeof(k0));
        if (secret_len > HMAC_BLOCK) {
                if (!SHA256(secret, secret_len, k0))
                        return -1;
        } else if (secret_len) {
                memcpy(k0, secret, secret_len);
        }
        if (!st->ready || memcmp(st->k0, k0, HMAC_BLOCK)) {
                st->ready = 0;
                for (i = 0; i < HMAC_BLOCK; i++)
                        pad[i] = k0[i] ^ 0x36;
                if (!SHA256_Init(&st->inner) || !SHA256_Update(&st->inner, pad, HMAC_BLOCK))
                        return -1;
                for (i = 0; i < HMAC_BLOCK; i++)
                        pad[i] = k0[i] ^ 0x5c;
                if (!SHA256_Init(&st->outer) || !SHA256_Update(&st->outer, pad, HMAC_BLOCK))
                        return -1;
                memcpy(st->k0, k0, HMAC_BLOCK);
                st->ready = 1;
        }
        w = st->inner;
        if (!SHA256_Update(&w, data, n) || !SHA256_Final(ih, &w))
                return -1;
        w = st->outer;
        if (!SHA256_Update(&w, ih, HMAC_LEN) || !SHA256_Final(md, &w))
                return -1;
        return 0;
}

/* ------------------------------------------------------------ apply */

int exb_mask_apply(const exb_mask_t *mask, exb_type_t type, const exb_val_t *in, const void *secret,
                   size_t secret_len, exb_buf_t *scratch, exb_val_t *out)
{
        uint8_t md[HMAC_LEN];
        const void *text;
        size_t n;

        if (mask->kind == EXB_MASK_NONE) {
                *out = *in;
                return 0;
        }
        memset(out, 0, sizeof(*out));
        if (in->is_null || mask->kind == EXB_MASK_REDACT) {
                out->is_null = 1;
                return 0;
        }

        exb_buf_reset(scratch);
        if (mask->kind == EXB_MASK_PARTIAL) {
                if (type == EXB_T_STRING ? exb_buf_append(scratch, in->u.s.p, in->u.s.len)
                                         : exb_val_to_text(type, in, scratch))
                        return -1;
                if (scratch->len)
                        scratch->len =
                                partial_in_place(scratch->p, scratch->len, mask->head, mask->tail);
        } else { /* EXB_MASK_HASH */
                if (type == EXB_T_STRING) {
                        text = in->u.s.p;
                        n = in->u.s.len;
                } else {
                        if (exb_val_to_text(type, in, scratch))
                                return -1;
                        text = scratch->p;
                        n = scratch->len;
                }
                if (hmac_sha256(secret, secret_len, text ? text : "", n, md))
                        return -1;
                exb_buf_reset(scratch);
                if (put_hex(scratch, md, HMAC_LEN))
                        return -1;
        }
        out->u.s.p = scratch->p ? (const char *)scratch->p : "";
        out->u.s.len = scratch->len;
        /* Hex digits, stars and the text forms of non-strings are ASCII;
         * partial keeps whole characters of a string, so valid input gives
         * valid output. */
        out->utf8_ok = mask->kind == EXB_MASK_HASH || type != EXB_T_STRING || in->utf8_ok;
        return 0;
}
