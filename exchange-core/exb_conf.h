/*
 * exb_conf.h — properties configuration, described by a table.
 *
 * File format (one per role: producer, router, consumer):
 *
 *   # comment            (whole lines only: a value may contain '#')
 *   key = value          (spaces around '=' and at both ends are trimmed;
 *                         the value is everything after the first '=', as is)
 *
 * Blank lines, CRLF line ends and a UTF-8 BOM are accepted. A key set twice
 * in one file is an error (the second line is named); a command-line
 * override (`-X key=value`, exb_conf_set_arg) replaces the file's value.
 *
 * Each role declares its keys in an exb_prop_t table (ended by {NULL}); the
 * loader fills a struct through offsetof(). Unknown keys, bad enums, numbers
 * out of range and missing required keys are errors naming file and line:
 *   producer.conf:7: unknown key "sorce.path" (did you mean "source.path"?)
 *   producer.conf:9: "batch.size": 0 is out of range 1..65535
 *   producer.conf: missing required key "dept"
 * Lookup: an exact non-PREFIX entry first, then the longest PREFIX entry the
 * key starts with, so "source.type" and "source.table." share a table.
 * A PREFIX entry ("kafka.", "source.table.") accepts every key under it and
 * collects the rest of the key and the value into an exb_conf_kvs_t list
 * (file order; setting a name again replaces its value).
 *
 * Typical use:
 *   if (exb_conf_load(props, &conf, path, err, sizeof(err)) ||
 *       exb_conf_set_arg(props, &conf, "kafka.linger.ms=5", NULL, err, sizeof(err)) ||
 *       exb_conf_check(props, &conf, path, err, sizeof(err))) { report err }
 *   ...
 *   exb_conf_free(props, &conf);     (also after a failed load)
 *
 * `exbus conf list` prints the tables (docs/CONFIGURATION.md is generated
 * from them).
 */
#ifndef EXB_CONF_H
#define EXB_CONF_H

#include <stddef.h>
#include "exb_common.h"

typedef enum {
        EXB_PROP_STR,   /* char * (owned by the conf struct), NULL if unset */
        EXB_PROP_INT,   /* int, range "min..max" in values (NULL = any int) */
        EXB_PROP_BOOL,  /* int: true/false/1/0/yes/no/on/off (any case) */
        EXB_PROP_ENUM,  /* char *, one of the '|'-separated values (case-sensitive) */
        EXB_PROP_PREFIX /* exb_conf_kv_t list (offset of an exb_conf_kvs_t); name
                         * is the prefix including its final '.' */
} exb_prop_type_t;

typedef struct exb_prop_s {
        const char *name;
        exb_prop_type_t type;
        size_t offset;
        const char *values; /* ENUM: "sqlite|jsonl|http"; INT: "1..65535" */
        const char *def;    /* default as text, NULL = none (NULL / 0 / empty list) */
        const char *doc;
        int required; /* STR/ENUM: must be set and non-empty; PREFIX: at least
                       * one entry; INT/BOOL always hold a value (give a def) */
} exb_prop_t;

typedef struct exb_conf_kv_s {
        char *key; /* the part after the prefix */
        char *value;
} exb_conf_kv_t;

typedef struct exb_conf_kvs_s {
        int cnt;
        exb_conf_kv_t *kvs;
} exb_conf_kvs_t;

/* Applies defaults, then reads the file (path NULL: defaults only).
 * Does not check required keys (overrides may still come): call
 * exb_conf_check() last. Returns 0, or -1 with errstr; either way the
 * struct owns what was set so far: free it with exb_conf_free().
 * `conf` is the struct described by props. */
int exb_conf_load(const exb_prop_t *props, void *conf, const char *path, char *errstr,
                  size_t errstr_size);
/* Sets one key (used by the file loader and by command-line overrides
 * `-X key=value`). `where` prefixes messages (NULL: "configuration").
 * Returns 0, or -1 with errstr and the previous value kept. */
int exb_conf_set(const exb_prop_t *props, void *conf, const char *key, const char *value,
                 const char *where, char *errstr, size_t errstr_size);
/* Sets "key=value" as given on a command line (split at the first '=',
 * both sides trimmed). `where` prefixes messages (NULL: "command line"). */
int exb_conf_set_arg(const exb_prop_t *props, void *conf, const char *arg, const char *where,
                     char *errstr, size_t errstr_size);
/* Applies defaults only. Overwrites every field the table describes without
 * freeing it: call it on a fresh struct (exb_conf_load does). Aborts if a
 * default in the table is itself invalid (a bug in the table). */
void exb_conf_defaults(const exb_prop_t *props, void *conf);
/* Checks required keys are set. Returns 0, or -1 with every missing key
 * named: "producer.conf: missing required keys "dept", "source.table.*"". */
int exb_conf_check(const exb_prop_t *props, const void *conf, const char *where, char *errstr,
                   size_t errstr_size);
/* Frees the strings and lists the table describes (and resets them). */
void exb_conf_free(const exb_prop_t *props, void *conf);
/* Prints the table as a Markdown table to out (FILE *):
 * "## title" (if not NULL), then | key | type | values | default | description |.
 * PREFIX keys print as `kafka.*`; required keys show *required* as default. */
void exb_conf_print(const exb_prop_t *props, const char *title, void *out);
/* Value of key in a kv list, or NULL. */
const char *exb_conf_kv_get(const exb_conf_kvs_t *kvs, const char *key);

#endif
