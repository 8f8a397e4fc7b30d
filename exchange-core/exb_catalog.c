/*
 * exb_catalog.c — catalog file parsing and validation (DESIGN §4, §9).
 *
 * The file is parsed with jansson (duplicate object keys rejected, UTF-8
 * validated), then walked once, top to bottom; the first problem found is
 * reported with its place, so a person fixes the file from the top:
 *
 *   catalog.json:12:5: '}' expected near '"name"'            (JSON syntax)
 *   catalog.json: departments[2]: duplicate code "GA"
 *   catalog.json: resources[3]: missing "code"
 *   catalog.json: resource 370600-GA-0001: unknown key "sumary" (did you mean "summary"?)
 *   catalog.json: resource 370600-GA-0001: items[4]: missing "name"
 *   catalog.json: resource 370600-GA-0001: item "id_number": unknown check "gb1164"
 *
 * Array positions are 0-based, as in jq paths. Every object accepts only the
 * keys listed below (a misspelt key is an error, never silently ignored).
 *
 * Each resource keeps its JSON object text (compact, insertion order, UTF-8
 * as is), which is what the control plane publishes; exb_resource_parse_json()
 * reads that text back with the same rules, minus the provider check.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "exb_catalog.h"

#define EXB_MAX_ITEMS  512
#define EXB_MAX_KEYS   8
#define EXB_MAX_LENGTH (1 << 30)
#define PFX_SIZE       512

static const char *const top_keys[] = {"departments", "resources", NULL};
static const char *const dept_keys[] = {"code", "name", "node", NULL};
/* clang-format off */
static const char *const res_keys[] = {
        "code", "name", "provider", "category", "summary", "format", "update_cycle",
        "share_type", "share_condition", "share_method", "open", "publish_date", "related",
        "key", "items", NULL};
static const char *const item_keys[] = {
        "name", "title", "type", "length", "required", "check", "share_type", NULL};
/* clang-format on */
static const char *const update_cycles[] = {"实时",   "每日", "每周", "每月",
                                            "每季度", "每年", "其他", NULL};

/* ------------------------------------------------------------ small names */

const char *exb_share_name(exb_share_t s)
{
        switch (s) {
        case EXB_SHARE_UNCONDITIONAL:
                return "unconditional";
        case EXB_SHARE_CONDITIONAL:
                return "conditional";
        case EXB_SHARE_NONE:
                return "none";
        }
        return "?";
}

int exb_share_parse(const char *s)
{
        if (!s)
                return -1;
        if (!strcmp(s, "unconditional"))
                return EXB_SHARE_UNCONDITIONAL;
        if (!strcmp(s, "conditional"))
                return EXB_SHARE_CONDITIONAL;
        if (!strcmp(s, "none"))
                return EXB_SHARE_NONE;
        return -1;
}

const char *exb_check_name(exb_check_t c)
{
        switch (c) {
        case EXB_CHECK_GB11643:
                return "gb11643";
        case EXB_CHECK_GB32100:
                return "gb32100";
        case EXB_CHECK_NONE:
                break;
        }
        return NULL;
}

static int check_parse(const char *s)
{
        if (!strcmp(s, "gb11643"))
                return EXB_CHECK_GB11643;
        if (!strcmp(s, "gb32100"))
                return EXB_CHECK_GB32100;
        return -1;
}

/* ------------------------------------------------------------ name rules */

static int valid_dept_code(const char *s)
{
        size_t n = strlen(s);
        if (n < 1 || n > 32)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_')
                        return 0;
        return 1;
}

static int valid_res_code(const char *s)
{
        size_t n = strlen(s);
        if (n < 1 || n > 64)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-')
                        return 0;
        return 1;
}

static int valid_item_name(const char *s)
{
        size_t n = strlen(s);
        if (n < 1 || n > 64 || isdigit((unsigned char)s[0]))
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_')
                        return 0;
        return 1;
}

/* Strict YYYY-MM-DD: parse, format back, compare (rejects 2026-02-30). */
static int valid_date(const char *s)
{
        int64_t days;
        char back[11];
        if (strlen(s) != 10 || exb_date_parse(s, 10, &days))
                return 0;
        exb_date_format(days, back);
        return !strcmp(back, s);
}

/* Every key of obj must be in allowed. */
static int check_keys(json_t *obj, const char *const *allowed, const char *pfx, char *errstr,
                      size_t errstr_size)
{
        const char *key;
        json_t *val;
        json_object_foreach(obj, key, val)
        {
                const char *best = NULL;
                int bestd = 3, found = 0;
                (void)val;
                for (int i = 0; allowed[i]; i++) {
                        if (!strcmp(key, allowed[i])) {
                                found = 1;
                                break;
                        }
                        int d = exb_edit_distance(key, strlen(key), allowed[i]);
                        if (d < bestd) {
                                bestd = d;
                                best = allowed[i];
                        }
                }
                if (found)
                        continue;
                if (best)
                        exb_errf(errstr, errstr_size,
                                 "%s: unknown key \"%s\" (did you mean \"%s\"?)", pfx, key, best);
                else
                        exb_errf(errstr, errstr_size, "%s: unknown key \"%s\"", pfx, key);
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------ field getters */

/* Gets a string member. Absent: *out = NULL, error only if required.
 * Present: must be a string; must be non-empty if required. */
static int get_str(json_t *obj, const char *key, int required, const char *pfx, const char **out,
                   char *errstr, size_t errstr_size)
{
        json_t *v = json_object_get(obj, key);
        *out = NULL;
        if (!v) {
                if (required) {
                        exb_errf(errstr, errstr_size, "%s: missing \"%s\"", pfx, key);
                        return -1;
                }
                return 0;
        }
        if (!json_is_string(v)) {
                exb_errf(errstr, errstr_size, "%s: \"%s\" must be a string", pfx, key);
                return -1;
        }
        if (required && json_string_length(v) == 0) {
                exb_errf(errstr, errstr_size, "%s: \"%s\" must not be empty", pfx, key);
                return -1;
        }
        *out = json_string_value(v);
        return 0;
}

/* Boolean member: absent gives def, *explicit_ = 1 if present. */
static int get_bool(json_t *obj, const char *key, int def, const char *pfx, int *out,
                    int *explicit_, char *errstr, size_t errstr_size)
{
        json_t *v = json_object_get(obj, key);
        if (explicit_)
                *explicit_ = v != NULL;
        if (!v) {
                *out = def;
                return 0;
        }
        if (!json_is_boolean(v)) {
                exb_errf(errstr, errstr_size, "%s: \"%s\" must be true or false", pfx, key);
                return -1;
        }
        *out = json_is_true(v);
        return 0;
}

static char *dup_or_null(const char *s)
{
        return s ? exb_strdup(s) : NULL;
}

/* Array of strings, each non-empty and (if code_rule) a resource code.
 * Stored as compact JSON text; absent gives NULL. */
static int get_str_array(json_t *obj, const char *key, int code_rule, const char *pfx, char **out,
                         char *errstr, size_t errstr_size)
{
        json_t *v = json_object_get(obj, key), *e;
        size_t i;
        *out = NULL;
        if (!v)
                return 0;
        if (!json_is_array(v)) {
                exb_errf(errstr, errstr_size, "%s: \"%s\" must be an array of strings", pfx, key);
                return -1;
        }
        json_array_foreach(v, i, e)
        {
                if (!json_is_string(e) || json_string_length(e) == 0) {
                        exb_errf(errstr, errstr_size, "%s: %s[%zu]: must be a non-empty string",
                                 pfx, key, i);
                        return -1;
                }
                if (code_rule && !valid_res_code(json_string_value(e))) {
                        exb_errf(errstr, errstr_size,
                                 "%s: %s[%zu]: \"%s\" is not a resource code "
                                 "([A-Za-z0-9-]{1,64})",
                                 pfx, key, i, json_string_value(e));
                        return -1;
                }
        }
        *out = json_dumps(v, JSON_COMPACT);
        if (!*out)
                abort();
        return 0;
}

/* ------------------------------------------------------------ resources */

void exb_resource_destroy(exb_resource_t *res)
{
        if (!res)
                return;
        free(res->code);
        free(res->name);
        free(res->provider);
        /* category_json, related_json and json come from json_dumps (malloc). */
        free(res->category_json);
        free(res->summary);
        free(res->format);
        free(res->update_cycle);
        free(res->share_condition);
        free(res->share_method);
        free(res->publish_date);
        free(res->related_json);
        for (int i = 0; i < res->nitems; i++) {
                free(res->items[i].name);
                free(res->items[i].title);
        }
        free(res->items);
        free(res->json);
        free(res);
}

int exb_resource_item_idx(const exb_resource_t *res, const char *name)
{
        for (int i = 0; i < res->nitems; i++)
                if (!strcmp(res->items[i].name, name))
                        return i;
        return -1;
}

static int parse_share(json_t *obj, int required, const char *pfx, int *out, char *errstr,
                       size_t errstr_size)
{
        const char *s;
        if (get_str(obj, "share_type", required, pfx, &s, errstr, errstr_size))
                return -1;
        if (!s)
                return 0; /* optional and absent: *out unchanged */
        int v = exb_share_parse(s);
        if (v < 0) {
                exb_errf(errstr, errstr_size,
                         "%s: share_type \"%s\" is not one of unconditional, conditional, "
                         "none",
                         pfx, s);
                return -1;
        }
        *out = v;
        return 0;
}

/* Parses one item into it. `res_pfx` names the resource. */
static int parse_item(json_t *obj, size_t idx, exb_share_t res_share, const char *res_pfx,
                      exb_item_t *it, int *required_explicit, char *errstr, size_t errstr_size)
{
        char pfx[PFX_SIZE];
        const char *s;
        json_t *v;

        exb_errf(pfx, sizeof(pfx), "%s: items[%zu]", res_pfx, idx);
        if (!json_is_object(obj)) {
                exb_errf(errstr, errstr_size, "%s: must be an object", pfx);
                return -1;
        }
        if (get_str(obj, "name", 1, pfx, &s, errstr, errstr_size))
                return -1;
        if (!valid_item_name(s)) {
                exb_errf(errstr, errstr_size,
                         "%s: item \"%s\": invalid name (letters, digits and _, not "
                         "starting with a digit, at most 64)",
                         res_pfx, s);
                return -1;
        }
        it->name = exb_strdup(s);
        exb_errf(pfx, sizeof(pfx), "%s: item \"%s\"", res_pfx, s);

        if (check_keys(obj, item_keys, pfx, errstr, errstr_size))
                return -1;
        if (get_str(obj, "title", 0, pfx, &s, errstr, errstr_size))
                return -1;
        it->title = dup_or_null(s);

        if (get_str(obj, "type", 1, pfx, &s, errstr, errstr_size))
                return -1;
        if (strlen(s) != 1 || !exb_type_valid((unsigned char)s[0])) {
                exb_errf(errstr, errstr_size, "%s: unknown type \"%s\" (one of C N I D T L B)", pfx,
                         s);
                return -1;
        }
        it->type = (exb_type_t)s[0];

        v = json_object_get(obj, "length");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > EXB_MAX_LENGTH) {
                        exb_errf(errstr, errstr_size,
                                 "%s: \"length\" must be an integer from 0 to %d", pfx,
                                 EXB_MAX_LENGTH);
                        return -1;
                }
                it->length = (int)json_integer_value(v);
        }

        if (get_bool(obj, "required", 0, pfx, &it->required, required_explicit, errstr,
                     errstr_size))
                return -1;

        if (get_str(obj, "check", 0, pfx, &s, errstr, errstr_size))
                return -1;
        if (s) {
                int c = check_parse(s);
                if (c < 0) {
                        exb_errf(errstr, errstr_size,
                                 "%s: unknown check \"%s\" (one of gb11643, gb32100)", pfx, s);
                        return -1;
                }
                if (it->type != EXB_T_STRING) {
                        exb_errf(errstr, errstr_size, "%s: check \"%s\" needs type C, not %c", pfx,
                                 s, (char)it->type);
                        return -1;
                }
                if (it->length && it->length < 18) {
                        exb_errf(errstr, errstr_size,
                                 "%s: length %d is too short for check \"%s\" (18 "
                                 "characters)",
                                 pfx, it->length, s);
                        return -1;
                }
                it->check = (exb_check_t)c;
        }

        int share = (int)res_share;
        if (parse_share(obj, 0, pfx, &share, errstr, errstr_size))
                return -1;
        if (share < (int)res_share) {
                exb_errf(errstr, errstr_size,
                         "%s: share_type %s is more open than the resource's (%s)", pfx,
                         exb_share_name((exb_share_t)share), exb_share_name(res_share));
                return -1;
        }
        it->share_type = (exb_share_t)share;
        return 0;
}

/* Parses and validates a resource object. `pfx0` is the place of the object
 * when it has no usable code yet ("catalog.json: resources[3]" or `where`);
 * `where` is what precedes "resource <code>". */
static exb_resource_t *parse_resource(json_t *obj, const char *where, const char *pfx0,
                                      char *errstr, size_t errstr_size)
{
        char pfx[PFX_SIZE];
        const char *s;
        json_t *v, *e;
        size_t i;
        exb_resource_t *res;

        if (!json_is_object(obj)) {
                exb_errf(errstr, errstr_size, "%s: must be an object", pfx0);
                return NULL;
        }
        if (get_str(obj, "code", 1, pfx0, &s, errstr, errstr_size))
                return NULL;
        if (!valid_res_code(s)) {
                exb_errf(errstr, errstr_size,
                         "%s: code \"%s\" is not a resource code ([A-Za-z0-9-]{1,64})", pfx0, s);
                return NULL;
        }
        exb_errf(pfx, sizeof(pfx), "%s: resource %s", where, s);

        res = exb_calloc(1, sizeof(*res));
        res->code = exb_strdup(s);

        if (check_keys(obj, res_keys, pfx, errstr, errstr_size))
                goto fail;

        if (get_str(obj, "name", 1, pfx, &s, errstr, errstr_size))
                goto fail;
        res->name = exb_strdup(s);

        if (get_str(obj, "provider", 1, pfx, &s, errstr, errstr_size))
                goto fail;
        if (!valid_dept_code(s)) {
                exb_errf(errstr, errstr_size,
                         "%s: provider \"%s\" is not a department code ([A-Za-z0-9_]{1,32})", pfx,
                         s);
                goto fail;
        }
        res->provider = exb_strdup(s);

        if (get_str_array(obj, "category", 0, pfx, &res->category_json, errstr, errstr_size))
                goto fail;
        if (get_str(obj, "summary", 0, pfx, &s, errstr, errstr_size))
                goto fail;
        res->summary = dup_or_null(s);
        if (get_str(obj, "format", 0, pfx, &s, errstr, errstr_size))
                goto fail;
        res->format = dup_or_null(s);

        if (get_str(obj, "update_cycle", 0, pfx, &s, errstr, errstr_size))
                goto fail;
        if (s) {
                int ok = 0;
                for (int k = 0; update_cycles[k]; k++)
                        ok |= !strcmp(s, update_cycles[k]);
                if (!ok) {
                        exb_errf(errstr, errstr_size,
                                 "%s: update_cycle \"%s\" is not one of "
                                 "实时/每日/每周/每月/每季度/每年/其他",
                                 pfx, s);
                        goto fail;
                }
        }
        res->update_cycle = dup_or_null(s);

        int share = 0;
        if (parse_share(obj, 1, pfx, &share, errstr, errstr_size))
                goto fail;
        res->share_type = (exb_share_t)share;

        if (get_str(obj, "share_condition", 0, pfx, &s, errstr, errstr_size))
                goto fail;
        if ((!s || !*s) && res->share_type == EXB_SHARE_CONDITIONAL) {
                exb_errf(errstr, errstr_size,
                         "%s: share_type conditional needs \"share_condition\" (the "
                         "conditions of use)",
                         pfx);
                goto fail;
        }
        if ((!s || !*s) && res->share_type == EXB_SHARE_NONE) {
                exb_errf(errstr, errstr_size,
                         "%s: share_type none needs \"share_condition\" (the legal basis for "
                         "not sharing)",
                         pfx);
                goto fail;
        }
        res->share_condition = (s && *s) ? exb_strdup(s) : NULL;

        if (get_str(obj, "share_method", 0, pfx, &s, errstr, errstr_size))
                goto fail;
        res->share_method = dup_or_null(s);

        if (get_bool(obj, "open", 0, pfx, &res->open, NULL, errstr, errstr_size))
                goto fail;

        if (get_str(obj, "publish_date", 0, pfx, &s, errstr, errstr_size))
                goto fail;
        if (s && !valid_date(s)) {
                exb_errf(errstr, errstr_size, "%s: publish_date \"%s\" is not a date (YYYY-MM-DD)",
                         pfx, s);
                goto fail;
        }
        res->publish_date = dup_or_null(s);

        if (get_str_array(obj, "related", 1, pfx, &res->related_json, errstr, errstr_size))
                goto fail;

        /* items */
        v = json_object_get(obj, "items");
        if (!v) {
                exb_errf(errstr, errstr_size, "%s: missing \"items\"", pfx);
                goto fail;
        }
        if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > EXB_MAX_ITEMS) {
                exb_errf(errstr, errstr_size, "%s: \"items\" must be an array of 1 to %d items",
                         pfx, EXB_MAX_ITEMS);
                goto fail;
        }
        int *req_explicit = exb_calloc(json_array_size(v), sizeof(int));
        res->items = exb_calloc(json_array_size(v), sizeof(*res->items));
        json_array_foreach(v, i, e)
        {
                exb_item_t *it = &res->items[i];
                res->nitems = (int)i + 1; /* so destroy frees what was set */
                if (parse_item(e, i, res->share_type, pfx, it, &req_explicit[i], errstr,
                               errstr_size)) {
                        free(req_explicit);
                        goto fail;
                }
                /* Unique, case-insensitively: SQLite column names are. */
                for (size_t j = 0; j < i; j++) {
                        if (!strcasecmp(res->items[j].name, it->name)) {
                                exb_errf(errstr, errstr_size,
                                         "%s: item \"%s\": duplicate item name (items[%zu] "
                                         "is \"%s\")",
                                         pfx, it->name, j, res->items[j].name);
                                free(req_explicit);
                                goto fail;
                        }
                }
        }

        /* key */
        v = json_object_get(obj, "key");
        if (!v) {
                exb_errf(errstr, errstr_size, "%s: missing \"key\"", pfx);
                free(req_explicit);
                goto fail;
        }
        if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > EXB_MAX_KEYS) {
                exb_errf(errstr, errstr_size, "%s: \"key\" must be an array of 1 to %d item names",
                         pfx, EXB_MAX_KEYS);
                free(req_explicit);
                goto fail;
        }
        json_array_foreach(v, i, e)
        {
                int idx;
                if (!json_is_string(e)) {
                        exb_errf(errstr, errstr_size, "%s: key[%zu]: must be an item name", pfx, i);
                        break;
                }
                s = json_string_value(e);
                idx = exb_resource_item_idx(res, s);
                if (idx < 0) {
                        exb_errf(errstr, errstr_size, "%s: key: no item \"%s\"", pfx, s);
                        break;
                }
                exb_item_t *it = &res->items[idx];
                if (it->is_key) {
                        exb_errf(errstr, errstr_size, "%s: key: item \"%s\" listed twice", pfx, s);
                        break;
                }
                if (req_explicit[idx] && !it->required) {
                        exb_errf(errstr, errstr_size,
                                 "%s: item \"%s\": a key item cannot be \"required\": false", pfx,
                                 s);
                        break;
                }
                if (it->type == EXB_T_NUMBER || it->type == EXB_T_BYTES) {
                        exb_errf(errstr, errstr_size,
                                 "%s: item \"%s\": type %c cannot be a key item (use C, I, "
                                 "D, T or L)",
                                 pfx, s, (char)it->type);
                        break;
                }
                it->is_key = 1;
                it->required = 1;
                res->key_idx[res->nkeys++] = idx;
        }
        free(req_explicit);
        if (res->nkeys != (int)json_array_size(v))
                goto fail;

        res->json = json_dumps(obj, JSON_COMPACT);
        if (!res->json)
                abort();
        return res;

fail:
        exb_resource_destroy(res);
        return NULL;
}

exb_resource_t *exb_resource_parse_json(const char *where, const char *text, size_t len,
                                        char *errstr, size_t errstr_size)
{
        json_error_t jerr;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        exb_resource_t *res;

        if (!root) {
                exb_errf(errstr, errstr_size, "%s:%d:%d: %s", where, jerr.line, jerr.column,
                         jerr.text);
                return NULL;
        }
        res = parse_resource(root, where, where, errstr, errstr_size);
        json_decref(root);
        return res;
}

/* Canonical text: sorted keys, compact. Caller frees; NULL if unparsable. */
static char *canonical(const char *json)
{
        json_t *root;
        char *out;
        if (!json)
                return NULL;
        root = json_loads(json, 0, NULL);
        if (!root)
                return NULL;
        out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(root);
        return out;
}

int exb_resource_same(const exb_resource_t *a, const exb_resource_t *b)
{
        char *ca = canonical(a->json), *cb = canonical(b->json);
        int same = ca && cb && !strcmp(ca, cb);
        free(ca);
        free(cb);
        return same;
}

static void key_list(const exb_resource_t *res, char *out, size_t size)
{
        size_t off = 0;
        out[0] = '\0';
        for (int k = 0; k < res->nkeys && off < size; k++)
                off += (size_t)snprintf(out + off, size - off, "%s%s", k ? "," : "",
                                        res->items[res->key_idx[k]].name);
}

int exb_resource_compatible(const exb_resource_t *prev, const exb_resource_t *next, char *errstr,
                            size_t errstr_size)
{
        char ka[256], kb[256];

        if (strcmp(prev->code, next->code)) {
                exb_errf(errstr, errstr_size, "resource %s: code changed to %s", prev->code,
                         next->code);
                return 0;
        }
        if (strcmp(prev->provider, next->provider)) {
                exb_errf(errstr, errstr_size, "resource %s: provider changed from %s to %s",
                         prev->code, prev->provider, next->provider);
                return 0;
        }
        key_list(prev, ka, sizeof(ka));
        key_list(next, kb, sizeof(kb));
        if (strcmp(ka, kb)) {
                exb_errf(errstr, errstr_size, "resource %s: key changed from [%s] to [%s]",
                         prev->code, ka, kb);
                return 0;
        }
        for (int i = 0; i < prev->nitems; i++) {
                const exb_item_t *p = &prev->items[i];
                int j = exb_resource_item_idx(next, p->name);
                if (j < 0) {
                        exb_errf(errstr, errstr_size,
                                 "resource %s: item \"%s\": removed (items can only be added)",
                                 prev->code, p->name);
                        return 0;
                }
                if (next->items[j].type != p->type) {
                        exb_errf(errstr, errstr_size,
                                 "resource %s: item \"%s\": type changed from %c to %c", prev->code,
                                 p->name, (char)p->type, (char)next->items[j].type);
                        return 0;
                }
        }
        for (int j = 0; j < next->nitems; j++) {
                const exb_item_t *n = &next->items[j];
                if (exb_resource_item_idx(prev, n->name) >= 0)
                        continue;
                if (n->required) {
                        exb_errf(errstr, errstr_size,
                                 "resource %s: item \"%s\": an added item cannot be required "
                                 "(older records do not have it)",
                                 prev->code, n->name);
                        return 0;
                }
        }
        return 1;
}

/* ------------------------------------------------------------ catalog */

void exb_catalog_destroy(exb_catalog_t *cat)
{
        if (!cat)
                return;
        for (int i = 0; i < cat->ndepts; i++) {
                free(cat->depts[i].code);
                free(cat->depts[i].name);
        }
        free(cat->depts);
        for (int i = 0; i < cat->nresources; i++)
                exb_resource_destroy(cat->resources[i]);
        free(cat->resources);
        free(cat);
}

const exb_dept_t *exb_catalog_dept(const exb_catalog_t *cat, const char *code)
{
        for (int i = 0; i < cat->ndepts; i++)
                if (!strcmp(cat->depts[i].code, code))
                        return &cat->depts[i];
        return NULL;
}

const exb_resource_t *exb_catalog_resource(const exb_catalog_t *cat, const char *code)
{
        for (int i = 0; i < cat->nresources; i++)
                if (!strcmp(cat->resources[i]->code, code))
                        return cat->resources[i];
        return NULL;
}

static int parse_depts(exb_catalog_t *cat, json_t *arr, const char *fname, char *errstr,
                       size_t errstr_size)
{
        json_t *e;
        size_t i;
        char pfx[PFX_SIZE];
        const char *code, *name;

        if (!json_is_array(arr)) {
                exb_errf(errstr, errstr_size, "%s: \"departments\" must be an array", fname);
                return -1;
        }
        cat->depts = exb_calloc(json_array_size(arr) + 1, sizeof(*cat->depts));
        json_array_foreach(arr, i, e)
        {
                exb_errf(pfx, sizeof(pfx), "%s: departments[%zu]", fname, i);
                if (!json_is_object(e)) {
                        exb_errf(errstr, errstr_size, "%s: must be an object", pfx);
                        return -1;
                }
                if (check_keys(e, dept_keys, pfx, errstr, errstr_size) ||
                    get_str(e, "code", 1, pfx, &code, errstr, errstr_size))
                        return -1;
                if (!valid_dept_code(code)) {
                        exb_errf(errstr, errstr_size,
                                 "%s: code \"%s\" is not a department code "
                                 "([A-Za-z0-9_]{1,32})",
                                 pfx, code);
                        return -1;
                }
                if (exb_catalog_dept(cat, code)) {
                        exb_errf(errstr, errstr_size, "%s: duplicate code \"%s\"", pfx, code);
                        return -1;
                }
                int node, given;
                if (get_str(e, "name", 1, pfx, &name, errstr, errstr_size) ||
                    get_bool(e, "node", 0, pfx, &node, &given, errstr, errstr_size))
                        return -1;
                cat->depts[cat->ndepts].node = given ? node : -1;
                cat->depts[cat->ndepts].code = exb_strdup(code);
                cat->depts[cat->ndepts].name = exb_strdup(name);
                cat->ndepts++;
        }
        return 0;
}

static int known(const char *code, const char *const *known_depts, int nknown)
{
        for (int i = 0; known_depts && i < nknown; i++)
                if (known_depts[i] && !strcmp(known_depts[i], code))
                        return 1;
        return 0;
}

exb_catalog_t *exb_catalog_parse(const char *fname, const char *text, size_t len,
                                 const char *const *known_depts, int nknown, char *errstr,
                                 size_t errstr_size)
{
        json_error_t jerr;
        json_t *root, *depts, *ress, *e;
        exb_catalog_t *cat = NULL;
        size_t i;
        char pfx[PFX_SIZE];

        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                exb_errf(errstr, errstr_size, "%s:%d:%d: %s", fname, jerr.line, jerr.column,
                         jerr.text);
                return NULL;
        }
        if (!json_is_object(root)) {
                exb_errf(errstr, errstr_size,
                         "%s: must be a JSON object with \"departments\" and \"resources\"", fname);
                goto fail;
        }
        if (check_keys(root, top_keys, fname, errstr, errstr_size))
                goto fail;
        depts = json_object_get(root, "departments");
        ress = json_object_get(root, "resources");
        if (!depts && !ress) {
                exb_errf(errstr, errstr_size,
                         "%s: nothing to import (no \"departments\" nor \"resources\")", fname);
                goto fail;
        }

        cat = exb_calloc(1, sizeof(*cat));
        if (depts && parse_depts(cat, depts, fname, errstr, errstr_size))
                goto fail;

        if (ress) {
                if (!json_is_array(ress)) {
                        exb_errf(errstr, errstr_size, "%s: \"resources\" must be an array", fname);
                        goto fail;
                }
                cat->resources = exb_calloc(json_array_size(ress) + 1, sizeof(*cat->resources));
                json_array_foreach(ress, i, e)
                {
                        exb_resource_t *res;
                        exb_errf(pfx, sizeof(pfx), "%s: resources[%zu]", fname, i);
                        res = parse_resource(e, fname, pfx, errstr, errstr_size);
                        if (!res)
                                goto fail;
                        for (int j = 0; j < cat->nresources; j++) {
                                if (!strcmp(cat->resources[j]->code, res->code)) {
                                        exb_errf(errstr, errstr_size,
                                                 "%s: resource %s: duplicate code (also "
                                                 "resources[%d])",
                                                 fname, res->code, j);
                                        exb_resource_destroy(res);
                                        goto fail;
                                }
                        }
                        if (!exb_catalog_dept(cat, res->provider) &&
                            !known(res->provider, known_depts, nknown)) {
                                exb_errf(errstr, errstr_size,
                                         "%s: resource %s: provider \"%s\" is not a known "
                                         "department",
                                         fname, res->code, res->provider);
                                exb_resource_destroy(res);
                                goto fail;
                        }
                        cat->resources[cat->nresources++] = res;
                }
        }
        json_decref(root);
        return cat;

fail:
        exb_catalog_destroy(cat);
        json_decref(root);
        return NULL;
}
