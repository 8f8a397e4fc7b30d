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
 * on their text form: numbers as printed by %.17g or %lld, dates as
 * YYYY-MM-DD, timestamps as ISO-8601, booleans as true/false, bytes as hex).
 */
#ifndef EXB_MASK_H
#define EXB_MASK_H

#include "exb_common.h"

typedef enum { EXB_MASK_NONE = 0, EXB_MASK_PARTIAL, EXB_MASK_HASH, EXB_MASK_REDACT } exb_mask_kind_t;

typedef struct exb_mask_s {
        exb_mask_kind_t kind;
        int head, tail; /* partial only, 0..64 each */
} exb_mask_t;

/* Parses "partial:6:4" etc. Returns 0, or -1 with errstr. */
int exb_mask_parse(const char *spec, exb_mask_t *mask, char *errstr, size_t errstr_size);
/* Writes the textual form into out (at least 32 bytes). */
void exb_mask_format(const exb_mask_t *mask, char *out, size_t out_size);

/* Applies mask to value `in` of item type `type`. The result is written to
 * *out; for partial/hash the characters go to `scratch` (which must stay
 * alive as long as out is used), and out->u.s points into it; the result
 * type is then EXB_T_STRING. redact gives a null. A null input stays null.
 * secret/secret_len are the HMAC key (hash only).
 * Returns 0, or -1 if scratch's maximum was reached. */
int exb_mask_apply(const exb_mask_t *mask, exb_type_t type, const exb_val_t *in,
                   const void *secret, size_t secret_len, exb_buf_t *scratch, exb_val_t *out);

/* Renders a value of the given type as text (the form masks work on) into out. */
int exb_val_to_text(exb_type_t type, const exb_val_t *v, exb_buf_t *out);

#endif
