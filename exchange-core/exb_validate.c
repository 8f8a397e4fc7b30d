/*
 * exb_validate.c — record quality checks (see exb_validate.h).
 */
#include "exb_validate.h"
#include "exb_check.h"
#include "exb_mask.h"

#include <stdlib.h>
#include <string.h>

int exb_binding_init(exb_binding_t *b, const exb_resource_t *res, const exb_schema_t *schema,
                     char *errstr, size_t errstr_size)
{
        memset(b, 0, sizeof(*b));
        b->res = res;
        b->schema = schema;
        b->provider_len = strlen(res->provider);
        b->item = exb_calloc((size_t)schema->nfields + 1, sizeof(int));
        for (int f = 0; f < schema->nfields; f++)
                b->item[f] = exb_resource_item_idx(res, schema->fields[f].name);
        for (int k = 0; k < res->nkeys; k++) {
                int f = exb_schema_field_idx(schema, res->items[res->key_idx[k]].name);
                if (f < 0) {
                        exb_errf(errstr, errstr_size, "%s: schema %d lacks key item \"%s\"",
                                 res->code, (int)schema->id, res->items[res->key_idx[k]].name);
                        exb_binding_free(b);
                        return -1;
                }
                b->key_field[b->nkey_fields++] = f;
        }
        return 0;
}

void exb_binding_free(exb_binding_t *b)
{
        free(b->item);
        b->item = NULL;
}

long exb_utf8_len(const char *s, size_t len)
{
        if (!exb_utf8_valid(s, len))
                return -1;
        return (long)exb_utf8_count(s, len);
}

exb_err_t exb_validate(const exb_binding_t *b, const exb_record_t *rec, char *errstr,
                       size_t errstr_size)
{
        const exb_resource_t *res = b->res;
        if (rec->source.len != b->provider_len ||
            memcmp(rec->source.p, res->provider, b->provider_len)) {
                exb_errf(errstr, errstr_size, "%s: source \"%.*s\" is not the provider %s",
                         res->code, (int)(rec->source.len > 64 ? 64 : rec->source.len),
                         rec->source.p ? rec->source.p : "", res->provider);
                return EXB_ERR_INVALID;
        }
        if (rec->event_id.len == 0) {
                exb_errf(errstr, errstr_size, "%s: empty event_id", res->code);
                return EXB_ERR_INVALID;
        }
        int n = b->schema->nfields < rec->nvals ? b->schema->nfields : rec->nvals;
        const exb_val_t *v = rec->vals;
        for (int f = 0; f < n; f++, v++) {
                int i = b->item[f];
                if (i < 0)
                        continue; /* a field the catalog no longer has: nothing to check */
                const exb_item_t *it = &res->items[i];
                char why[160];
                if (v->is_null) {
                        if (it->is_key || (it->required && rec->op != EXB_OP_DELETE)) {
                                exb_errf(errstr, errstr_size, "%s: item \"%s\": %s item is missing",
                                         res->code, it->name, it->is_key ? "key" : "required");
                                return EXB_ERR_INVALID;
                        }
                        continue;
                }
                size_t len = it->type == EXB_T_STRING || it->type == EXB_T_BYTES ? v->u.s.len : 0;
                if (it->type == EXB_T_STRING) {
                        if (!v->utf8_ok && !exb_utf8_valid(v->u.s.p, len)) {
                                exb_errf(errstr, errstr_size, "%s: item \"%s\": not valid UTF-8",
                                         res->code, it->name);
                                return EXB_ERR_INVALID;
                        }
                        /* A character is at least one byte: count them only
                         * when the bytes exceed the limit. */
                        size_t nc;
                        if (it->length > 0 && len > (size_t)it->length &&
                            (nc = exb_utf8_count(v->u.s.p, len)) > (size_t)it->length) {
                                exb_errf(errstr, errstr_size,
                                         "%s: item \"%s\": %zu characters, at most %d allowed",
                                         res->code, it->name, nc, it->length);
                                return EXB_ERR_INVALID;
                        }
                        if (it->check == EXB_CHECK_NONE)
                                continue;
                        int ok = it->check == EXB_CHECK_GB11643
                                         ? exb_check_gb11643(v->u.s.p, len, why, sizeof(why))
                                         : exb_check_gb32100(v->u.s.p, len, why, sizeof(why));
                        if (!ok) {
                                exb_errf(errstr, errstr_size, "%s: item \"%s\": %s: %s", res->code,
                                         it->name, exb_check_name(it->check), why);
                                return EXB_ERR_INVALID;
                        }
                } else if (it->type == EXB_T_BYTES && it->length > 0 && len > (size_t)it->length) {
                        exb_errf(errstr, errstr_size,
                                 "%s: item \"%s\": %zu bytes, at most %d allowed", res->code,
                                 it->name, len, it->length);
                        return EXB_ERR_INVALID;
                }
        }
        return EXB_OK;
}

int exb_record_key(const exb_binding_t *b, const exb_record_t *rec, exb_buf_t *out)
{
        for (int k = 0; k < b->nkey_fields; k++) {
                const exb_val_t *v = &rec->vals[b->key_field[k]];
                if (k && exb_buf_putc(out, '|'))
                        return -1;
                exb_type_t type = b->schema->fields[b->key_field[k]].type;
                if (type == EXB_T_STRING) {
                        if (!v->is_null && exb_buf_append(out, v->u.s.p, v->u.s.len))
                                return -1;
                } else if (exb_val_to_text(type, v, out)) {
                        return -1;
                }
        }
        return 0;
}
