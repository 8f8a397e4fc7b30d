/*
 * exb_conf.c — the properties loader driven by exb_prop_t tables.
 *
 * A role describes its configuration once, as a table; this file turns the
 * table into defaults, a parser with errors that name file and line, a
 * required-keys check and the Markdown reference (docs/CONFIGURATION.md).
 *
 * Lookup of a key: an exact, non-PREFIX entry first, then the longest PREFIX
 * entry the key starts with (so "source.type" and "source.table." live side
 * by side). Anything else is unknown, with a "did you mean" for near misses.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exb_conf.h"

#define FIELD(conf, prop, type)  ((type *)((char *)(conf) + (prop)->offset))
#define CFIELD(conf, prop, type) ((const type *)((const char *)(conf) + (prop)->offset))

static const exb_prop_t *find_prop(const exb_prop_t *props, const char *key)
{
        const exb_prop_t *best = NULL;
        size_t bestlen = 0;
        for (const exb_prop_t *p = props; p->name; p++)
                if (p->type != EXB_PROP_PREFIX && !strcmp(p->name, key))
                        return p;
        for (const exb_prop_t *p = props; p->name; p++) {
                size_t n = strlen(p->name);
                if (p->type == EXB_PROP_PREFIX && n > bestlen && !strncmp(p->name, key, n)) {
                        best = p;
                        bestlen = n;
                }
        }
        return best;
}

/* Parses "min..max" (NULL = the int range). */
static void int_range(const char *values, long long *min, long long *max)
{
        char *end;
        *min = INT_MIN;
        *max = INT_MAX;
        if (!values)
                return;
        *min = strtoll(values, &end, 10);
        if (end[0] == '.' && end[1] == '.')
                *max = strtoll(end + 2, NULL, 10);
}

/* Is s one of the '|'-separated values? */
static int enum_match(const char *values, const char *s)
{
        size_t n = strlen(s);
        const char *p = values;
        while (p && *p) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                if (len == n && !strncmp(p, s, n))
                        return 1;
                p = bar ? bar + 1 : NULL;
        }
        return 0;
}

static int bool_parse(const char *s)
{
        static const char *const yes[] = {"true", "1", "yes", "on"};
        static const char *const no[] = {"false", "0", "no", "off"};
        for (size_t i = 0; i < EXB_ARRAY_CNT(yes); i++) {
                if (!strcasecmp(s, yes[i]))
                        return 1;
                if (!strcasecmp(s, no[i]))
                        return 0;
        }
        return -1;
}

static void kvs_set(exb_conf_kvs_t *kvs, const char *key, const char *value)
{
        for (int i = 0; i < kvs->cnt; i++) {
                if (!strcmp(kvs->kvs[i].key, key)) {
                        free(kvs->kvs[i].value);
                        kvs->kvs[i].value = exb_strdup(value);
                        return;
                }
        }
        kvs->kvs = exb_realloc(kvs->kvs, (size_t)(kvs->cnt + 1) * sizeof(*kvs->kvs));
        kvs->kvs[kvs->cnt].key = exb_strdup(key);
        kvs->kvs[kvs->cnt].value = exb_strdup(value);
        kvs->cnt++;
}

/* Sets prop from text. `key` is the full key (for PREFIX entries). */
static int prop_set(const exb_prop_t *p, void *conf, const char *key, const char *value,
                    const char *where, char *errstr, size_t errstr_size)
{
        switch (p->type) {
        case EXB_PROP_STR: {
                char **f = FIELD(conf, p, char *);
                free(*f);
                *f = exb_strdup(value);
                return 0;
        }
        case EXB_PROP_ENUM: {
                char **f = FIELD(conf, p, char *);
                if (!enum_match(p->values, value)) {
                        exb_errf(errstr, errstr_size,
                                 "%s: \"%s\": invalid value \"%s\" (one of %s)", where, key, value,
                                 p->values ? p->values : "");
                        return -1;
                }
                free(*f);
                *f = exb_strdup(value);
                return 0;
        }
        case EXB_PROP_INT: {
                long long min, max, v;
                char *end;
                int_range(p->values, &min, &max);
                errno = 0;
                v = strtoll(value, &end, 10);
                if (!*value || isspace((unsigned char)*value) || *end || errno) {
                        exb_errf(errstr, errstr_size,
                                 "%s: \"%s\": invalid value \"%s\" (an integer in %lld..%lld)",
                                 where, key, value, min, max);
                        return -1;
                }
                if (v < min || v > max) {
                        exb_errf(errstr, errstr_size, "%s: \"%s\": %lld is out of range %lld..%lld",
                                 where, key, v, min, max);
                        return -1;
                }
                *FIELD(conf, p, int) = (int)v;
                return 0;
        }
        case EXB_PROP_BOOL: {
                int b = bool_parse(value);
                if (b < 0) {
                        exb_errf(errstr, errstr_size,
                                 "%s: \"%s\": invalid value \"%s\" (true or false)", where, key,
                                 value);
                        return -1;
                }
                *FIELD(conf, p, int) = b;
                return 0;
        }
        case EXB_PROP_PREFIX: {
                const char *rest = key + strlen(p->name);
                if (!*rest) {
                        exb_errf(errstr, errstr_size,
                                 "%s: \"%s\": a name must follow the prefix (e.g. \"%sNAME\")",
                                 where, key, p->name);
                        return -1;
                }
                kvs_set(FIELD(conf, p, exb_conf_kvs_t), rest, value);
                return 0;
        }
        }
        exb_errf(errstr, errstr_size, "%s: \"%s\": bad property table", where, key);
        return -1;
}

int exb_conf_set(const exb_prop_t *props, void *conf, const char *key, const char *value,
                 const char *where, char *errstr, size_t errstr_size)
{
        const exb_prop_t *p = find_prop(props, key);
        if (!where)
                where = "configuration";
        if (!p) {
                const char *best = NULL;
                int bestd = 3;
                for (const exb_prop_t *q = props; q->name; q++) {
                        int d = exb_edit_distance(key, strlen(key), q->name);
                        if (d < bestd) {
                                bestd = d;
                                best = q->name;
                        }
                }
                if (best)
                        exb_errf(errstr, errstr_size,
                                 "%s: unknown key \"%s\" (did you mean \"%s\"?)", where, key, best);
                else
                        exb_errf(errstr, errstr_size, "%s: unknown key \"%s\"", where, key);
                return -1;
        }
        return prop_set(p, conf, key, value ? value : "", where, errstr, errstr_size);
}

static char *trim(char *s)
{
        char *e;
        while (isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

int exb_conf_set_arg(const exb_prop_t *props, void *conf, const char *arg, const char *where,
                     char *errstr, size_t errstr_size)
{
        char *copy = exb_strdup(arg), *eq = strchr(copy, '=');
        int r;
        if (!where)
                where = "command line";
        if (!eq) {
                exb_errf(errstr, errstr_size, "%s: \"%s\": expected key=value", where, arg);
                free(copy);
                return -1;
        }
        *eq = '\0';
        r = exb_conf_set(props, conf, trim(copy), trim(eq + 1), where, errstr, errstr_size);
        free(copy);
        return r;
}

void exb_conf_defaults(const exb_prop_t *props, void *conf)
{
        char errstr[256];
        for (const exb_prop_t *p = props; p->name; p++) {
                switch (p->type) {
                case EXB_PROP_STR:
                case EXB_PROP_ENUM:
                        *FIELD(conf, p, char *) = NULL;
                        break;
                case EXB_PROP_INT:
                case EXB_PROP_BOOL:
                        *FIELD(conf, p, int) = 0;
                        break;
                case EXB_PROP_PREFIX:
                        FIELD(conf, p, exb_conf_kvs_t)->cnt = 0;
                        FIELD(conf, p, exb_conf_kvs_t)->kvs = NULL;
                        break;
                }
                if (!p->def || p->type == EXB_PROP_PREFIX)
                        continue;
                if (prop_set(p, conf, p->name, p->def, "default", errstr, sizeof(errstr))) {
                        /* A table whose own default is invalid is a bug. */
                        fprintf(stderr, "exb_conf: bad property table: %s\n", errstr);
                        abort();
                }
        }
}

/* A key seen in the file being loaded, to report duplicates. */
typedef struct {
        char *key;
        int line;
} seen_t;

int exb_conf_load(const exb_prop_t *props, void *conf, const char *path, char *errstr,
                  size_t errstr_size)
{
        FILE *fp;
        char *line = NULL, where[512];
        size_t cap = 0;
        ssize_t n;
        int lineno = 0, r = 0, nseen = 0;
        seen_t *seen = NULL;

        exb_conf_defaults(props, conf);
        if (!path)
                return 0;
        fp = fopen(path, "r");
        if (!fp) {
                exb_errf(errstr, errstr_size, "%s: cannot open: %s", path, strerror(errno));
                return -1;
        }
        while (r == 0 && (n = getline(&line, &cap, fp)) != -1) {
                char *s = line, *eq, *key, *value;
                lineno++;
                snprintf(where, sizeof(where), "%s:%d", path, lineno);
                if ((size_t)n != strlen(line)) {
                        exb_errf(errstr, errstr_size, "%s: NUL byte in line", where);
                        r = -1;
                        break;
                }
                if (lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
                        s += 3; /* UTF-8 byte order mark */
                s = trim(s);
                if (!*s || *s == '#')
                        continue;
                eq = strchr(s, '=');
                if (!eq) {
                        exb_errf(errstr, errstr_size, "%s: expected \"key = value\", got \"%s\"",
                                 where, s);
                        r = -1;
                        break;
                }
                *eq = '\0';
                key = trim(s);
                value = trim(eq + 1);
                if (!*key) {
                        exb_errf(errstr, errstr_size, "%s: missing key before '='", where);
                        r = -1;
                        break;
                }
                for (int i = 0; i < nseen; i++) {
                        if (!strcmp(seen[i].key, key)) {
                                exb_errf(errstr, errstr_size,
                                         "%s: \"%s\" is already set on line %d", where, key,
                                         seen[i].line);
                                r = -1;
                                break;
                        }
                }
                if (r)
                        break;
                r = exb_conf_set(props, conf, key, value, where, errstr, errstr_size);
                seen = exb_realloc(seen, (size_t)(nseen + 1) * sizeof(*seen));
                seen[nseen].key = exb_strdup(key);
                seen[nseen].line = lineno;
                nseen++;
        }
        if (r == 0 && ferror(fp)) {
                exb_errf(errstr, errstr_size, "%s: read error: %s", path, strerror(errno));
                r = -1;
        }
        for (int i = 0; i < nseen; i++)
                free(seen[i].key);
        free(seen);
        free(line);
        fclose(fp);
        return r;
}

int exb_conf_check(const exb_prop_t *props, const void *conf, const char *where, char *errstr,
                   size_t errstr_size)
{
        char missing[512];
        size_t off = 0;
        int cnt = 0;

        missing[0] = '\0';
        for (const exb_prop_t *p = props; p->name; p++) {
                int unset;
                if (!p->required)
                        continue;
                switch (p->type) {
                case EXB_PROP_STR:
                case EXB_PROP_ENUM: {
                        const char *v = *CFIELD(conf, p, char *);
                        unset = !v || !*v;
                        break;
                }
                case EXB_PROP_PREFIX:
                        unset = CFIELD(conf, p, exb_conf_kvs_t)->cnt == 0;
                        break;
                default:
                        unset = 0; /* INT and BOOL always hold a value */
                        break;
                }
                if (!unset)
                        continue;
                if (off < sizeof(missing))
                        off += (size_t)snprintf(missing + off, sizeof(missing) - off, "%s\"%s%s\"",
                                                cnt ? ", " : "", p->name,
                                                p->type == EXB_PROP_PREFIX ? "*" : "");
                cnt++;
        }
        if (!cnt)
                return 0;
        exb_errf(errstr, errstr_size, "%s: missing required key%s %s",
                 where ? where : "configuration", cnt > 1 ? "s" : "", missing);
        return -1;
}

void exb_conf_free(const exb_prop_t *props, void *conf)
{
        for (const exb_prop_t *p = props; p->name; p++) {
                switch (p->type) {
                case EXB_PROP_STR:
                case EXB_PROP_ENUM: {
                        char **f = FIELD(conf, p, char *);
                        free(*f);
                        *f = NULL;
                        break;
                }
                case EXB_PROP_PREFIX: {
                        exb_conf_kvs_t *kvs = FIELD(conf, p, exb_conf_kvs_t);
                        for (int i = 0; i < kvs->cnt; i++) {
                                free(kvs->kvs[i].key);
                                free(kvs->kvs[i].value);
                        }
                        free(kvs->kvs);
                        kvs->kvs = NULL;
                        kvs->cnt = 0;
                        break;
                }
                default:
                        break;
                }
        }
}

const char *exb_conf_kv_get(const exb_conf_kvs_t *kvs, const char *key)
{
        for (int i = 0; kvs && i < kvs->cnt; i++)
                if (!strcmp(kvs->kvs[i].key, key))
                        return kvs->kvs[i].value;
        return NULL;
}

/* Writes s into a Markdown table cell: '|' escaped, newlines as spaces. */
static void md_cell(FILE *out, const char *s)
{
        for (; s && *s; s++) {
                if (*s == '|')
                        fputs("\\|", out);
                else if (*s == '\n')
                        fputc(' ', out);
                else
                        fputc(*s, out);
        }
}

void exb_conf_print(const exb_prop_t *props, const char *title, void *out_)
{
        FILE *out = out_;
        static const char *const type_names[] = {"string", "integer", "boolean", "enum", "prefix"};
        if (title)
                fprintf(out, "## %s\n\n", title);
        fputs("| key | type | values | default | description |\n", out);
        fputs("|---|---|---|---|---|\n", out);
        for (const exb_prop_t *p = props; p->name; p++) {
                fprintf(out, "| `%s%s` | %s | ", p->name, p->type == EXB_PROP_PREFIX ? "*" : "",
                        type_names[p->type]);
                switch (p->type) {
                case EXB_PROP_ENUM:
                        for (const char *v = p->values; v && *v; v++) {
                                if (*v == '|')
                                        fputs(", ", out);
                                else
                                        fputc(*v, out);
                        }
                        break;
                case EXB_PROP_INT:
                        md_cell(out, p->values ? p->values : "any");
                        break;
                case EXB_PROP_BOOL:
                        fputs("true, false", out);
                        break;
                default:
                        md_cell(out, p->values);
                        break;
                }
                fputs(" | ", out);
                if (p->required)
                        fputs("*required*", out);
                else if (p->def && *p->def) {
                        fputc('`', out);
                        md_cell(out, p->def);
                        fputc('`', out);
                }
                fputs(" | ", out);
                md_cell(out, p->doc);
                fputs(" |\n", out);
        }
        fputs("\n", out);
}
