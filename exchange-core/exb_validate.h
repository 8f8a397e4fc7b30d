/*
 * exb_validate.h — record quality checks, shared by the producer agent
 * (before a change leaves the department) and the router (before anything
 * is delivered).
 *
 * A binding maps the fields of a schema version to the items of a resource
 * (by name), so a record written with an older schema version is checked
 * against the item rules that exist for it. Checks, in item order:
 *  - key items are present (also on DELETE, which carries only keys);
 *  - required items are present (not on DELETE);
 *  - strings are valid UTF-8 (not checked again when the value's utf8_ok
 *    says the decoder did) and at most `length` characters; bytes at most
 *    `length` bytes;
 *  - gb11643 / gb32100 check characters;
 *  - the record's source is the resource's provider.
 * Messages name the item: `370600-GA-0001: item "id_number": check digit is 3, expected X`.
 */
#ifndef EXB_VALIDATE_H
#define EXB_VALIDATE_H

#include "exb_common.h"
#include "exb_catalog.h"
#include "exb_schema.h"

typedef struct exb_binding_s {
        const exb_resource_t *res; /* borrowed */
        const exb_schema_t *schema;/* borrowed */
        size_t provider_len;       /* strlen(res->provider) */
        int *item;                 /* per schema field: resource item index or -1 */
        int nkey_fields;
        int key_field[8];          /* schema field index of each key item, in key order */
} exb_binding_t;

/* Returns 0, or -1 with errstr if a key item of res is missing from schema. */
int exb_binding_init(exb_binding_t *b, const exb_resource_t *res, const exb_schema_t *schema,
                     char *errstr, size_t errstr_size);
void exb_binding_free(exb_binding_t *b);

/* EXB_OK, or EXB_ERR_INVALID with errstr naming resource and item. */
exb_err_t exb_validate(const exb_binding_t *b, const exb_record_t *rec, char *errstr,
                       size_t errstr_size);

/* Appends the record key (key item values as text, joined by '|') to out.
 * Returns 0 or -1 (out full). */
int exb_record_key(const exb_binding_t *b, const exb_record_t *rec, exb_buf_t *out);

/* Number of UTF-8 code points in s, or -1 if s is not valid UTF-8
 * (exb_utf8_valid() and exb_utf8_count() of exb_common.h). */
long exb_utf8_len(const char *s, size_t len);

#endif
