/*
 * exb_conf.h — properties configuration, described by a table.
 *
 * File format (one per role: producer, router, consumer):
 *
 *   # comment
 *   key = value          (spaces around '=' and at both ends are trimmed)
 *
 * Each role declares its keys in an exb_prop_t table; the loader fills a
 * struct through offsetof(). Unknown keys, bad enums, numbers out of range
 * and missing required keys are errors naming file and line:
 *   producer.conf:7: unknown key "sorce.path"
 * A PREFIX entry ("kafka.", "source.table.") accepts every key under it and
 * collects the rest of the key and the value into an exb_conf_kv list.
 * `exbus conf list` prints the tables (docs/CONFIGURATION.md is generated
 * from them).
 */
#ifndef EXB_CONF_H
#define EXB_CONF_H

#include <stddef.h>
#include "exb_common.h"

typedef enum {
        EXB_PROP_STR,    /* char * (owned by the conf struct) */
        EXB_PROP_INT,    /* int, range min..max */
        EXB_PROP_BOOL,   /* int: true/false/1/0/yes/no */
        EXB_PROP_ENUM,   /* char *, one of the '|'-separated values */
        EXB_PROP_PREFIX  /* exb_conf_kv_t list (offset of an exb_conf_kvs_t) */
} exb_prop_type_t;

typedef struct exb_prop_s {
        const char *name;
        exb_prop_type_t type;
        size_t offset;
        const char *values;   /* ENUM: "sqlite|jsonl|http"; INT: "1..65535" */
        const char *def;      /* default as text, NULL = none; "" + required below */
        const char *doc;
        int required;
} exb_prop_t;

typedef struct exb_conf_kv_s {
        char *key;   /* the part after the prefix */
        char *value;
} exb_conf_kv_t;

typedef struct exb_conf_kvs_s {
        int cnt;
        exb_conf_kv_t *kvs;
} exb_conf_kvs_t;

/* Applies defaults, then reads the file. Returns 0, or -1 with errstr.
 * `conf` is the struct described by props. */
int exb_conf_load(const exb_prop_t *props, void *conf, const char *path, char *errstr,
                  size_t errstr_size);
/* Sets one key (used by the file loader and by command-line overrides
 * `-X key=value`). `where` prefixes messages. Returns 0 or -1 with errstr. */
int exb_conf_set(const exb_prop_t *props, void *conf, const char *key, const char *value,
                 const char *where, char *errstr, size_t errstr_size);
/* Applies defaults only. */
void exb_conf_defaults(const exb_prop_t *props, void *conf);
/* Checks required keys are set. Returns 0 or -1 with errstr. */
int exb_conf_check(const exb_prop_t *props, const void *conf, const char *where,
                   char *errstr, size_t errstr_size);
/* Frees the strings and lists the table describes. */
void exb_conf_free(const exb_prop_t *props, void *conf);
/* Prints the table as a Markdown table to out (FILE *). */
void exb_conf_print(const exb_prop_t *props, const char *title, void *out);
/* Value of key in a kv list, or NULL. */
const char *exb_conf_kv_get(const exb_conf_kvs_t *kvs, const char *key);

#endif
