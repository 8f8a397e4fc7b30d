/*
 * exb_codec.h — Confluent framing and the Avro binary codec of envelopes.
 *
 * Wire format of every value (DESIGN §3):
 *
 *   byte 0      0x00 (magic)
 *   bytes 1..4  schema id, big-endian
 *   bytes 5..   Avro binary datum of the envelope record (exb_schema.h)
 *
 * The decoder treats its input as hostile: every varint is bounded to 10
 * bytes, every length is checked against the bytes left before anything is
 * touched, union branches and enum symbols are range-checked, strings must be
 * valid UTF-8 (as Avro requires), and the whole datum must be consumed
 * exactly. It never allocates: string and bytes values point into the input
 * buffer. (Avro C's reader does not bound lengths, which
 * is why the hot path has its own codec; tests cross-check it against Avro C
 * and an independent Python implementation.)
 */
#ifndef EXB_CODEC_H
#define EXB_CODEC_H

#include "exb_common.h"
#include "exb_schema.h"

#define EXB_FRAME_MAGIC 0x00
#define EXB_FRAME_HDR   5

/* Reads the schema id of a framed value. Returns EXB_OK, or EXB_ERR_SCHEMA
 * with errstr if the value is shorter than 5 bytes or the magic byte is wrong. */
exb_err_t exb_frame_schema_id(const void *buf, size_t len, int32_t *id, char *errstr,
                              size_t errstr_size);

/* Decodes a framed value written with `schema` (whose id must match the
 * frame's). rec->vals must have room for schema->nfields values; nvals is set.
 * Every string value is checked to be UTF-8 and gets utf8_ok = 1, so that
 * exb_validate() and exb_codec_encode() need not check it again.
 * Returns EXB_OK, or EXB_ERR_SCHEMA with errstr naming the field and byte
 * offset where decoding failed. */
exb_err_t exb_codec_decode(const exb_schema_t *schema, const void *buf, size_t len,
                           exb_record_t *rec, char *errstr, size_t errstr_size);

/* Where the parts of a decoded value lie in it (exb_codec_decode_layout()),
 * so that exb_codec_encode_from() can copy the ones it keeps unchanged. */
typedef struct exb_layout_s {
        const uint8_t *buf; /* the framed value */
        uint32_t env;       /* where the envelope after op begins (event_id) */
        uint32_t *pos;      /* the caller's, [nfields + 1]: where data field i begins (its
                               union branch included); pos[nfields] = the end */
} exb_layout_t;

/* exb_codec_decode() that also fills lay (lay->pos set by the caller). */
exb_err_t exb_codec_decode_layout(const exb_schema_t *schema, const void *buf, size_t len,
                                  exb_record_t *rec, exb_layout_t *lay, char *errstr,
                                  size_t errstr_size);

/* Appends the framed encoding of rec (rec->nvals == schema->nfields) to out.
 * Errors (EXB_ERR_INVALID, with errstr naming the field): the schema has no
 * id (id < 0), a NULL value in a non-nullable field, a string that is not
 * valid UTF-8 (checked unless its utf8_ok is set; event_id and source are
 * always checked), a date outside the int32 range, an op out of range.
 * Returns EXB_OK, EXB_ERR_INVALID, or EXB_ERR_FATAL if out's maximum size is
 * exceeded; on error out->len is what it was on entry. */
exb_err_t exb_codec_encode(const exb_schema_t *schema, const exb_record_t *rec, exb_buf_t *out,
                           char *errstr, size_t errstr_size);

/* exb_codec_encode() of a record made from one decoded with layout `from`:
 * its event_id, source and ts_ms are copied from there, and so is each field
 * i with copy[i] >= 0: field copy[i] of `from`, unchanged, which must have
 * field i's type and nullability (not checked). rec's op and the other
 * fields are encoded as exb_codec_encode() does. Costs a memcpy per run of
 * fields that are adjacent in `from`, instead of encoding each value. */
exb_err_t exb_codec_encode_from(const exb_schema_t *schema, const exb_record_t *rec,
                                const exb_layout_t *from, const int *copy, exb_buf_t *out,
                                char *errstr, size_t errstr_size);

/* Renders rec as one JSON object {"op":..,"event_id":..,"source":..,
 * "ts_ms":..,"data":{...}} (dates as "YYYY-MM-DD", timestamps as ISO-8601
 * "2026-01-15T08:30:00.000Z" — both as plain numbers outside years 0..9999 —,
 * bytes as base64, doubles always with "." or an exponent, NaN/infinity as
 * null, ts_ms as a number of ms, invalid UTF-8 as U+FFFD) — for `exbus tail`,
 * the JSONL sink and tests. Returns 0, or -1 (out unchanged) if out's
 * maximum would be exceeded. */
int exb_codec_to_json(const exb_schema_t *schema, const exb_record_t *rec, exb_buf_t *out);

#endif
