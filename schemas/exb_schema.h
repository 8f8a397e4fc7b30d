/*
 * exb_schema.h — Avro schemas derived from the catalog (DESIGN §3, §4).
 *
 * Every message value on an exbus topic is an envelope record:
 *
 *   {"type":"record","name":"<Name>","namespace":"exbus","fields":[
 *     {"name":"op","type":{"type":"enum","name":"Op",
 *                          "symbols":["CREATE","UPDATE","DELETE","SNAPSHOT"]}},
 *     {"name":"event_id","type":"string"},
 *     {"name":"source","type":"string"},
 *     {"name":"ts_ms","type":{"type":"long","logicalType":"timestamp-millis"}},
 *     {"name":"data","type":{"type":"record","name":"<Name>_data","fields":[ ...items... ]}}]}
 *
 * where <Name> is "R" + the resource code with every non-alphanumeric
 * character replaced by '_' (370600-GA-0001 -> R370600_GA_0001) for ingest
 * schemas, and that plus "_" + subscription id for delivery schemas. Each item
 * becomes a field: key items plain, every other item ["null", T] with
 * "default": null, and "doc" set to the item's title. Item types map as
 * C string, N double, I long, D int/date, T long/timestamp-millis,
 * L boolean, B bytes.
 *
 * An exb_schema_t is the compiled form the codec needs (field types and
 * nullability) plus the Avro JSON text, which is what gets published to the
 * control plane and is validated by Avro C's parser.
 */
#ifndef EXB_SCHEMA_H
#define EXB_SCHEMA_H

#include "exb_common.h"

typedef struct exb_field_s {
        char *name;
        char *doc; /* may be NULL */
        exb_type_t type;
        int nullable;
} exb_field_t;

typedef struct exb_schema_s {
        int32_t id; /* schema id (control-plane offset), -1 if not registered */
        char *name; /* Avro record name, e.g. R370600_GA_0001 */
        int nfields;
        exb_field_t *fields;
        char *avro_json; /* canonical text produced by exb_schema_new() */
} exb_schema_t;

/* Builds a schema called `name` from nfields (>= 1) field descriptions
 * (copied). Validates names ([A-Za-z_][A-Za-z0-9_]*, unique), types and docs
 * (UTF-8) and parses the produced text with Avro C. id starts as -1.
 * Returns NULL with errstr filled in on error. */
exb_schema_t *exb_schema_new(const char *name, const exb_field_t *fields, int nfields, char *errstr,
                             size_t errstr_size);

/* Parses Avro JSON text of the envelope shape above (as stored on the
 * control plane), in any formatting or key order; the result's avro_json is
 * the canonical text again, so fingerprints match. Any other shape (union not
 * ["null", T], other op symbols, unsupported types...) is an error: NULL with
 * errstr. */
exb_schema_t *exb_schema_parse(const char *json, size_t len, char *errstr, size_t errstr_size);

void exb_schema_destroy(exb_schema_t *schema);

/* Field index by name, or -1. */
int exb_schema_field_idx(const exb_schema_t *schema, const char *name);

/* Avro record name for a resource code (+ optional suffix). Caller frees. */
char *exb_schema_name_for(const char *resource_code, const char *suffix);

/* Hex SHA-256 of the schema's canonical text (65 bytes incl. NUL). */
void exb_schema_fingerprint(const exb_schema_t *schema, char out[65]);

#endif
