/*
 * exb_mask.h — masks applied to one item value of a delivery (DESIGN §5).
 *
 * Textual form (as in `exbus sub approve --mask ITEM=SPEC` and in control
 * records):  partial:H:T | hash | redact
 *
 *  partial:H:T  keep the first H and the last T characters (UTF-8 code
 *               points, not bytes), replace each one between with '*':
 *               370602199001011234 with partial:6:4 -> 370602********1234.
 *               A value of at most H+T characters is fully starred.
 *  hash         lower-case hex HMAC-SHA256(secret, value text): the same
 *               input maps to the same 64-character pseudonym; the secret is
 *               held by the router only.
 *  redact       null.
 *
 * partial and hash turn any type into a string (non-string values are masked
 * on their text form: N in the shortest %.15g..%.17g form that reads back
 * to the same double, I as %lld, dates as YYYY-MM-DD, timestamps as
 * 2026-01-15T08:30:00.000Z, booleans as true/false, bytes as lower hex).
 */
#ifndef EXB_MASK_H
#define EXB_MASK_H

#include "exb_common.h"

typedef enum {
        EXB_MASK_NONE = 0,
        EXB_MASK_PARTIAL,
        EXB_MASK_HASH,
        EXB_MASK_REDACT
} exb_mask_kind_t;

typedef struct exb_mask_s {
        exb_mask_kind_t kind;
        int head, tail; /* partial only, 0..64 each */
} exb_mask_t;

/* Parses "partial:6:4", "hash", "redact" (and "none", the textual form of
 * EXB_MASK_NONE). Returns 0, or -1 with errstr, e.g.
 * unknown mask "hsah" (expected partial:H:T, hash or redact). */
int exb_mask_parse(const char *spec, exb_mask_t *mask, char *errstr, size_t errstr_size);
/* Writes the textual form into out (at least 32 bytes). */
void exb_mask_format(const exb_mask_t *mask, char *out, size_t out_size);

/* The type of a masked value: EXB_T_STRING for partial and hash, `type`
 * otherwise (redact keeps the type; its value is null, so the delivery
 * schema must make that item nullable). */
exb_type_t exb_mask_result_type(const exb_mask_t *mask, exb_type_t type);

/* Applies mask to value `in` of item type `type` and writes the result to
 * *out (of type exb_mask_result_type()). A null input stays null; redact
 * gives a null; none copies *in as is.
 *
 * partial/hash write their characters to `scratch` and out->u.s points into
 * it; out->utf8_ok is set when the result is known to be valid UTF-8 (hash,
 * a non-string's text, or partial of a string whose utf8_ok was set). Each call RESETS scratch first, so the result is valid until the next
 * call with the same scratch: to hold several masked values of one record
 * at once, keep one scratch per masked item (e.g. in the compiled rule).
 * No allocation happens once scratch has grown to the largest value.
 * secret/secret_len are the HMAC key (hash only; may be NULL/0, which gives a
 * public, dictionary-reversible pseudonym — callers should refuse that).
 * Returns 0, or -1 if scratch's maximum was reached or OpenSSL failed. */
int exb_mask_apply(const exb_mask_t *mask, exb_type_t type, const exb_val_t *in, const void *secret,
                   size_t secret_len, exb_buf_t *scratch, exb_val_t *out);

/* APPENDS the text form of a value of the given type to out (the form masks
 * work on; see above). A null value appends nothing. Returns 0 or -1 if
 * out's maximum was reached (nothing appended). */
int exb_val_to_text(exb_type_t type, const exb_val_t *v, exb_buf_t *out);

#endif
