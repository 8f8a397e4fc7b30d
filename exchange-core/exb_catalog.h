/*
 * exb_catalog.h — the resource catalog (信息资源目录), DESIGN §4 and §9.
 *
 * A catalog file (what `exbus catalog import` reads) holds departments and
 * resources as JSON. exb_catalog_parse() validates it completely and reports
 * the first problem with the file, resource and item named:
 *
 *   catalog.json: resource 370600-GA-0001: item "id_number": unknown check "gb1164"
 *
 * Rules enforced (the first problem is reported; array positions are 0-based):
 *  - the file is one JSON object with "departments" and/or "resources";
 *    duplicate keys in any object and unknown keys anywhere are errors (with
 *    a "did you mean" for near misses), so a typo never passes silently.
 *  - department {"code", "name", "node"}: code [A-Za-z0-9_]{1,32}, unique;
 *    name required; node (boolean): the department is another exchange
 *    node, whose uplink forwards records here (级联/回流). Only its records
 *    carry exb-path, so only for its resources does the router read that
 *    header and keep it (DESIGN §3). An uplink registers its node so.
 *    Absent, a department already published keeps its mark (re-importing a
 *    file written before the uplink marked it unmarks nothing); a new one
 *    is not a node.
 *  - resource keys: code, name, provider, share_type, key, items (required);
 *    category (array of strings), summary, format, update_cycle,
 *    share_condition, share_method, open (boolean), publish_date, related
 *    (array of resource codes) (optional).
 *  - resource code: [A-Za-z0-9-]{1,64}, unique; provider is a department of
 *    the file or of `known_depts` (the catalog already published).
 *  - share_type unconditional|conditional|none; conditional needs
 *    share_condition; none needs share_condition (the legal basis).
 *  - update_cycle one of 实时/每日/每周/每月/每季度/每年/其他.
 *  - publish_date YYYY-MM-DD (a real date) when present.
 *  - items: 1..512; name [A-Za-z_][A-Za-z0-9_]{0,63} (it is an Avro field
 *    and a SQL column), unique ignoring case (SQLite columns are); keys name,
 *    title, type, length, required, check, share_type; type one of
 *    C N I D T L B; length an integer >= 0; check one of gb11643 gb32100
 *    (only on type C, length 0 or >= 18); per-item share_type like the
 *    resource's and never more open than it (an item of a conditional
 *    resource may be none, not unconditional).
 *  - key: 1..8 distinct item names, each an item; key items are required
 *    ("required": false on one is an error) and not of type N or B (the
 *    message key is their text).
 *
 * The resource's original JSON object text is kept (json) so it can be
 * published to the control plane as given.
 */
#ifndef EXB_CATALOG_H
#define EXB_CATALOG_H

#include "exb_common.h"

typedef enum { EXB_SHARE_UNCONDITIONAL = 0, EXB_SHARE_CONDITIONAL, EXB_SHARE_NONE } exb_share_t;
const char *exb_share_name(exb_share_t s); /* "unconditional" ... */
int exb_share_parse(const char *s);        /* -1 if unknown */

typedef enum { EXB_CHECK_NONE = 0, EXB_CHECK_GB11643, EXB_CHECK_GB32100 } exb_check_t;
const char *exb_check_name(exb_check_t c); /* "gb11643", NULL for NONE */

typedef struct exb_item_s {
        char *name;
        char *title; /* Chinese title, may be NULL */
        exb_type_t type;
        int length;   /* max length in characters (C) or bytes (B); 0 = unbounded */
        int required; /* key items are always required */
        int is_key;
        exb_check_t check;
        exb_share_t share_type; /* defaults to the resource's */
} exb_item_t;

typedef struct exb_dept_s {
        char *code;
        char *name;
        int node; /* another exchange node: its records carry exb-path; -1 = not given */
} exb_dept_t;

typedef struct exb_resource_s {
        char *code;
        char *name;
        char *provider;      /* department code */
        char *category_json; /* JSON array text, e.g. ["基础信息资源","人口"], or NULL */
        char *summary, *format, *update_cycle; /* NULL if absent */
        exb_share_t share_type;
        char *share_condition; /* NULL if absent */
        char *share_method;    /* NULL if absent */
        int open;
        char *publish_date; /* "YYYY-MM-DD" or NULL */
        char *related_json; /* JSON array text or NULL */
        int nkeys;
        int key_idx[8]; /* indexes into items, in key order */
        int nitems;
        exb_item_t *items;
        char *json; /* the resource's JSON object text as given (compact) */
} exb_resource_t;

typedef struct exb_catalog_s {
        int ndepts;
        exb_dept_t *depts;
        int nresources;
        exb_resource_t **resources;
} exb_catalog_t;

/* Parses and validates a catalog file's text. `fname` is used in messages.
 * `known_depts` (may be NULL) lists department codes already in the
 * published catalog, so a file may define resources only.
 * Returns a new catalog, or NULL with errstr filled in. */
exb_catalog_t *exb_catalog_parse(const char *fname, const char *text, size_t len,
                                 const char *const *known_depts, int nknown, char *errstr,
                                 size_t errstr_size);
void exb_catalog_destroy(exb_catalog_t *cat);

/* Parses one resource object (as kept in exb_resource_t.json or in a control
 * record) with the same rules; the provider is not checked against any
 * department. `where` prefixes messages ("<where>: resource <code>: ...").
 * Returns NULL with errstr on error. */
exb_resource_t *exb_resource_parse_json(const char *where, const char *text, size_t len,
                                        char *errstr, size_t errstr_size);
void exb_resource_destroy(exb_resource_t *res);

/* Borrowed lookups in a parsed file, or NULL. */
const exb_dept_t *exb_catalog_dept(const exb_catalog_t *cat, const char *code);
const exb_resource_t *exb_catalog_resource(const exb_catalog_t *cat, const char *code);

/* Index of the item called name, or -1. */
int exb_resource_item_idx(const exb_resource_t *res, const char *name);

/* Is `next` a compatible new version of `prev`? Rules: same code and
 * provider; same key items in the same order; every item of prev still
 * present with the same type; added items must not be key items nor required
 * (older records do not have them). Other metadata may change.
 * Returns 1 if compatible, 0 with the reason in errstr:
 *   resource 370600-GA-0001: item "birth_date": type changed from D to C */
int exb_resource_compatible(const exb_resource_t *prev, const exb_resource_t *next, char *errstr,
                            size_t errstr_size);

/* Do two versions describe the same thing? Compares the canonical text
 * (sorted keys, compact) of their json, so key order and whitespace do not
 * matter but every value does. */
int exb_resource_same(const exb_resource_t *a, const exb_resource_t *b);

#endif
