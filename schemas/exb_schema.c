/*
 * exb_schema.c — Avro schemas of exbus envelopes (see exb_schema.h).
 *
 * One function writes schema text: schema_text() turns a name and a list of
 * fields into the canonical Avro JSON of the envelope. Canonical means: built
 * with jansson, compact (no whitespace), keys in the fixed order written
 * below, non-ASCII kept as UTF-8 (not \u-escaped):
 *
 *   {"type":"record","name":N,"namespace":"exbus","fields":[
 *     {"name":"op","type":{"type":"enum","name":"Op","symbols":[...]}},
 *     {"name":"event_id","type":"string"},
 *     {"name":"source","type":"string"},
 *     {"name":"ts_ms","type":{"type":"long","logicalType":"timestamp-millis"}},
 *     {"name":"data","type":{"type":"record","name":N_data,"fields":[
 *        {"name":F,"type":T,"doc":D}                          key item
 *        {"name":F,"type":["null",T],"default":null,"doc":D}  any other item
 *     ]}}]}
 *
 * exb_schema_parse() accepts any JSON text of that shape (any key order,
 * whitespace or escaping), extracts the fields and rebuilds the schema with
 * exb_schema_new(), so parse(new(x)->avro_json)->avro_json == new(x)->avro_json
 * and the fingerprint (SHA-256 of the canonical text) is stable across
 * processes. Every text is also parsed by Avro C as a sanity check that the
 * schema is valid Avro, not only valid to us.
 *
 * The codec (exb_codec.c) relies on three facts checked here: the op enum has
 * exactly the symbols CREATE, UPDATE, DELETE, SNAPSHOT in that order; a
 * nullable field is the union ["null", T] (branch 0 = null); and item types
 * map one to one to the Avro types below.
 */
#include "exb_schema.h"

#include <avro.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXB_SCHEMA_NAMESPACE "exbus"

static const char *const envelope_fields[] = {"op", "event_id", "source", "ts_ms", "data"};

/* Avro type of each item type: the primitive, and the logical type if any. */
static const struct {
        exb_type_t type;
        const char *avro;
        const char *logical;
} type_map[] = {
        {EXB_T_STRING, "string", NULL},
        {EXB_T_NUMBER, "double", NULL},
        {EXB_T_INT, "long", NULL},
        {EXB_T_DATE, "int", "date"},
        {EXB_T_TIMESTAMP, "long", "timestamp-millis"},
        {EXB_T_BOOL, "boolean", NULL},
        {EXB_T_BYTES, "bytes", NULL},
};

/* Avro names: [A-Za-z_][A-Za-z0-9_]* */
static int name_valid(const char *s)
{
        if (!s || !*s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
                return 0;
        for (s++; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                      (*s >= '0' && *s <= '9') || *s == '_'))
                        return 0;
        return 1;
}

static json_t *type_json(exb_type_t type)
{
        for (size_t i = 0; i < EXB_ARRAY_CNT(type_map); i++) {
                if (type_map[i].type != type)
                        continue;
                if (!type_map[i].logical)
                        return json_string(type_map[i].avro);
                return json_pack("{s:s, s:s}", "type", type_map[i].avro, "logicalType",
                                 type_map[i].logical);
        }
        return NULL;
}

/* Builds the canonical text. Returns a malloc'ed string or NULL with errstr. */
static char *schema_text(const char *name, const exb_field_t *fields, int nfields, char *errstr,
                         size_t errstr_size)
{
        char data_name[512];
        snprintf(data_name, sizeof(data_name), "%s_data", name);

        json_t *items = json_array();
        for (int i = 0; i < nfields; i++) {
                const exb_field_t *f = &fields[i];
                json_t *t = type_json(f->type);
                if (f->nullable)
                        t = json_pack("[s, o]", "null", t);
                json_t *o = json_pack("{s:s, s:o}", "name", f->name, "type", t);
                if (f->nullable)
                        json_object_set_new(o, "default", json_null());
                if (f->doc) {
                        json_t *doc = json_string(f->doc);
                        if (!doc) {
                                exb_errf(errstr, errstr_size,
                                         "schema %s: field \"%s\": doc is not valid UTF-8", name,
                                         f->name);
                                json_decref(o);
                                json_decref(items);
                                return NULL;
                        }
                        json_object_set_new(o, "doc", doc);
                }
                json_array_append_new(items, o);
        }

        json_t *root = json_pack("{s:s, s:s, s:s, s:["
                                 "{s:s, s:{s:s, s:s, s:[s,s,s,s]}},"
                                 "{s:s, s:s}, {s:s, s:s},"
                                 "{s:s, s:{s:s, s:s}},"
                                 "{s:s, s:{s:s, s:s, s:o}}]}",
                                 "type", "record", "name", name, "namespace", EXB_SCHEMA_NAMESPACE,
                                 "fields", "name", "op", "type", "type", "enum", "name", "Op",
                                 "symbols", exb_op_name(0), exb_op_name(1), exb_op_name(2),
                                 exb_op_name(3), "name", "event_id", "type", "string", "name",
                                 "source", "type", "string", "name", "ts_ms", "type", "type",
                                 "long", "logicalType", "timestamp-millis", "name", "data", "type",
                                 "type", "record", "name", data_name, "fields", items);
        char *text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(root);
        if (!text)
                exb_errf(errstr, errstr_size, "schema %s: cannot build the Avro JSON text", name);
        return text;
}

exb_schema_t *exb_schema_new(const char *name, const exb_field_t *fields, int nfields, char *errstr,
                             size_t errstr_size)
{
        if (!name_valid(name)) {
                exb_errf(errstr, errstr_size,
                         "schema name \"%s\" is not a valid Avro name ([A-Za-z_][A-Za-z0-9_]*)",
                         name ? name : "");
                return NULL;
        }
        if (strlen(name) > 400) {
                exb_errf(errstr, errstr_size, "schema name \"%.40s...\" is too long", name);
                return NULL;
        }
        if (nfields < 1 || !fields) {
                exb_errf(errstr, errstr_size, "schema %s: no fields", name);
                return NULL;
        }
        for (int i = 0; i < nfields; i++) {
                const exb_field_t *f = &fields[i];
                if (!name_valid(f->name)) {
                        exb_errf(errstr, errstr_size,
                                 "schema %s: field %d: name \"%s\" is not a valid Avro name "
                                 "([A-Za-z_][A-Za-z0-9_]*)",
                                 name, i + 1, f->name ? f->name : "");
                        return NULL;
                }
                for (int j = 0; j < i; j++) {
                        if (!strcmp(fields[j].name, f->name)) {
                                exb_errf(errstr, errstr_size,
                                         "schema %s: field \"%s\" appears twice (fields %d and %d)",
                                         name, f->name, j + 1, i + 1);
                                return NULL;
                        }
                }
                if (!exb_type_valid(f->type)) {
                        exb_errf(errstr, errstr_size,
                                 "schema %s: field \"%s\": unknown type '%c' (expected one of "
                                 "C N I D T L B)",
                                 name, f->name,
                                 (f->type > 32 && f->type < 127) ? (char)f->type : '?');
                        return NULL;
                }
        }

        char *text = schema_text(name, fields, nfields, errstr, errstr_size);
        if (!text)
                return NULL;

        /* Sanity check: the text must be valid Avro for Avro C as well. */
        avro_schema_t avs = NULL;
        if (avro_schema_from_json_length(text, strlen(text), &avs)) {
                exb_errf(errstr, errstr_size, "schema %s: Avro C rejects the schema: %s", name,
                         avro_strerror());
                free(text);
                return NULL;
        }
        avro_schema_decref(avs);

        exb_schema_t *s = exb_calloc(1, sizeof(*s));
        s->id = -1;
        s->name = exb_strdup(name);
        s->nfields = nfields;
        s->fields = exb_calloc((size_t)nfields, sizeof(*s->fields));
        for (int i = 0; i < nfields; i++) {
                s->fields[i].name = exb_strdup(fields[i].name);
                s->fields[i].doc = exb_strdup(fields[i].doc);
                s->fields[i].type = fields[i].type;
                s->fields[i].nullable = !!fields[i].nullable;
        }
        s->avro_json = exb_strdup(text);
        free(text); /* jansson's allocator may not be ours */
        return s;
}

void exb_schema_destroy(exb_schema_t *schema)
{
        if (!schema)
                return;
        for (int i = 0; i < schema->nfields; i++) {
                free(schema->fields[i].name);
                free(schema->fields[i].doc);
        }
        free(schema->fields);
        free(schema->name);
        free(schema->avro_json);
        free(schema);
}

int exb_schema_field_idx(const exb_schema_t *schema, const char *name)
{
        for (int i = 0; i < schema->nfields; i++)
                if (!strcmp(schema->fields[i].name, name))
                        return i;
        return -1;
}

char *exb_schema_name_for(const char *resource_code, const char *suffix)
{
        size_t n1 = strlen(resource_code), n2 = suffix ? strlen(suffix) : 0;
        char *s = exb_calloc(1, 1 + n1 + 1 + n2 + 1), *o = s;
        *o++ = 'R';
        for (const char *p = resource_code; *p; p++) {
                char c = *p;
                *o++ = ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                               ? c
                               : '_';
        }
        if (suffix && *suffix) {
                *o++ = '_';
                for (const char *p = suffix; *p; p++) {
                        char c = *p;
                        *o++ = ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9'))
                                       ? c
                                       : '_';
                }
        }
        *o = '\0';
        return s;
}

void exb_schema_fingerprint(const exb_schema_t *schema, char out[65])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (!EVP_Digest(schema->avro_json, strlen(schema->avro_json), md, &mdlen, EVP_sha256(),
                        NULL) ||
            mdlen != 32) {
                /* Cannot happen with a working libcrypto; an empty fingerprint
                 * never equals a real one. */
                out[0] = '\0';
                return;
        }
        for (unsigned i = 0; i < 32; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[64] = '\0';
}

/* ------------------------------------------------------------------ parsing */

/* The type of a (non-union) Avro type JSON, mapped to an item type; 0 if it
 * is not one exbus uses. */
static exb_type_t type_from_json(const json_t *t)
{
        const char *prim = NULL, *logical = NULL;
        if (json_is_string(t)) {
                prim = json_string_value(t);
        } else if (json_is_object(t)) {
                prim = json_string_value(json_object_get(t, "type"));
                logical = json_string_value(json_object_get(t, "logicalType"));
                if (json_object_get(t, "logicalType") && !logical)
                        return 0;
        }
        if (!prim)
                return 0;
        for (size_t i = 0; i < EXB_ARRAY_CNT(type_map); i++) {
                if (strcmp(prim, type_map[i].avro))
                        continue;
                if (!type_map[i].logical != !logical)
                        continue;
                if (logical && strcmp(logical, type_map[i].logical))
                        continue;
                return type_map[i].type;
        }
        return 0;
}

/* Checks one envelope field against what exb_schema_new() writes. */
static int check_envelope_field(const char *where, int idx, const json_t *f, char *errstr,
                                size_t errstr_size)
{
        const char *want = envelope_fields[idx];
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!fname || strcmp(fname, want)) {
                exb_errf(errstr, errstr_size, "%s: envelope field %d must be \"%s\", not \"%s\"",
                         where, idx + 1, want, fname ? fname : "(no name)");
                return -1;
        }
        const json_t *t = json_object_get(f, "type");
        switch (idx) {
        case 0: {
                const json_t *sym = json_object_get(t, "symbols");
                const char *ttype = json_string_value(json_object_get(t, "type"));
                int ok = ttype && !strcmp(ttype, "enum") && json_is_array(sym) &&
                         json_array_size(sym) == EXB_OP_CNT;
                for (int i = 0; ok && i < EXB_OP_CNT; i++) {
                        const char *s = json_string_value(json_array_get(sym, (size_t)i));
                        ok = s && !strcmp(s, exb_op_name((exb_op_t)i));
                }
                if (!ok) {
                        exb_errf(errstr, errstr_size,
                                 "%s: field \"op\" must be an enum with symbols CREATE, UPDATE, "
                                 "DELETE, SNAPSHOT (in that order)",
                                 where);
                        return -1;
                }
                return 0;
        }
        case 1:
        case 2:
                if (type_from_json(t) != EXB_T_STRING) {
                        exb_errf(errstr, errstr_size, "%s: field \"%s\" must be of type string",
                                 where, want);
                        return -1;
                }
                return 0;
        case 3:
                if (type_from_json(t) != EXB_T_TIMESTAMP) {
                        exb_errf(errstr, errstr_size,
                                 "%s: field \"ts_ms\" must be a long with logicalType "
                                 "timestamp-millis",
                                 where);
                        return -1;
                }
                return 0;
        default: {
                const char *ttype = json_string_value(json_object_get(t, "type"));
                if (!ttype || strcmp(ttype, "record") ||
                    !json_is_array(json_object_get(t, "fields"))) {
                        exb_errf(errstr, errstr_size,
                                 "%s: field \"data\" must be a record with fields", where);
                        return -1;
                }
                return 0;
        }
        }
}

exb_schema_t *exb_schema_parse(const char *json, size_t len, char *errstr, size_t errstr_size)
{
        json_error_t jerr;
        json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!root) {
                exb_errf(errstr, errstr_size, "schema: invalid JSON at line %d column %d: %s",
                         jerr.line, jerr.column, jerr.text);
                return NULL;
        }

        exb_schema_t *s = NULL;
        exb_field_t *fields = NULL;
        char where[480];
        const char *type = json_string_value(json_object_get(root, "type"));
        const char *name = json_string_value(json_object_get(root, "name"));
        const json_t *ns = json_object_get(root, "namespace");
        const json_t *env = json_object_get(root, "fields");

        if (!json_is_object(root) || !type || strcmp(type, "record") || !name) {
                exb_errf(errstr, errstr_size,
                         "schema: not an exbus envelope: expected an Avro record with a name");
                goto done;
        }
        snprintf(where, sizeof(where), "schema %.400s", name);
        if (ns && (!json_is_string(ns) || strcmp(json_string_value(ns), EXB_SCHEMA_NAMESPACE))) {
                exb_errf(errstr, errstr_size, "%s: namespace must be \"%s\"", where,
                         EXB_SCHEMA_NAMESPACE);
                goto done;
        }
        if (!json_is_array(env) || json_array_size(env) != EXB_ARRAY_CNT(envelope_fields)) {
                exb_errf(errstr, errstr_size,
                         "%s: not an exbus envelope: expected the 5 fields op, event_id, source, "
                         "ts_ms, data",
                         where);
                goto done;
        }
        for (size_t i = 0; i < EXB_ARRAY_CNT(envelope_fields); i++)
                if (check_envelope_field(where, (int)i, json_array_get(env, i), errstr,
                                         errstr_size))
                        goto done;

        const json_t *items =
                json_object_get(json_object_get(json_array_get(env, 4), "type"), "fields");
        size_t nitems = json_array_size(items);
        if (nitems < 1 || nitems > 100000) {
                exb_errf(errstr, errstr_size, "%s: record \"data\" has %zu fields", where, nitems);
                goto done;
        }
        fields = exb_calloc(nitems, sizeof(*fields));
        for (size_t i = 0; i < nitems; i++) {
                const json_t *f = json_array_get(items, i);
                exb_field_t *o = &fields[i];
                o->name = (char *)json_string_value(json_object_get(f, "name"));
                if (!o->name) {
                        exb_errf(errstr, errstr_size, "%s: data field %zu has no name", where,
                                 i + 1);
                        goto done;
                }
                const json_t *doc = json_object_get(f, "doc");
                if (doc && !json_is_string(doc)) {
                        exb_errf(errstr, errstr_size, "%s: field \"%s\": doc must be a string",
                                 where, o->name);
                        goto done;
                }
                o->doc = (char *)json_string_value(doc);
                const json_t *t = json_object_get(f, "type");
                if (json_is_array(t)) {
                        /* Nullable: exactly ["null", T], default null. */
                        const char *b0 = json_string_value(json_array_get(t, 0));
                        const json_t *def = json_object_get(f, "default");
                        if (json_array_size(t) != 2 || !b0 || strcmp(b0, "null")) {
                                exb_errf(errstr, errstr_size,
                                         "%s: field \"%s\": a union must be [\"null\", T] "
                                         "(null first)",
                                         where, o->name);
                                goto done;
                        }
                        if (def && !json_is_null(def)) {
                                exb_errf(errstr, errstr_size,
                                         "%s: field \"%s\": the default of a nullable field "
                                         "must be null",
                                         where, o->name);
                                goto done;
                        }
                        o->nullable = 1;
                        t = json_array_get(t, 1);
                }
                o->type = type_from_json(t);
                if (!o->type) {
                        char *tt = json_dumps(t, JSON_COMPACT | JSON_ENCODE_ANY);
                        exb_errf(errstr, errstr_size,
                                 "%s: field \"%s\": unsupported type %.200s (expected string, "
                                 "double, long, boolean, bytes, int/date or "
                                 "long/timestamp-millis)",
                                 where, o->name, tt ? tt : "?");
                        free(tt);
                        goto done;
                }
        }
        s = exb_schema_new(name, fields, (int)nitems, errstr, errstr_size);

done:
        free(fields);
        json_decref(root);
        return s;
}
