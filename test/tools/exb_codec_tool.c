/*
 * exb_codec_tool.c — command-line access to exbus's schema derivation and
 * codec, for the interop test against an independent Avro implementation
 * (test/integration/avro_interop.py).
 *
 *   exb_codec_tool schema NAME < items.json
 *       items.json: [{"name":"id","title":"...","type":"C","nullable":false}, ...]
 *       prints the canonical Avro JSON of exb_schema_new()
 *   exb_codec_tool canon SCHEMA_FILE
 *       prints exb_schema_parse()'s canonical text, then its SHA-256 fingerprint
 *   exb_codec_tool encode SCHEMA_FILE ID < records.jsonl
 *       one JSON record a line, in the form exb_codec_to_json() writes
 *       (timestamps and dates also as numbers); prints the framed value of
 *       each as one hex line. Exits 1 on the first bad line.
 *   exb_codec_tool decode SCHEMA_FILE ID < frames.hex
 *       one hex framed value a line; prints exb_codec_to_json() of each, or
 *       "ERROR <message>" for a value that does not decode. Exits 0 unless
 *       the input itself cannot be read.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exb_codec.h"
#include "exb_schema.h"

static int usage(void)
{
        fprintf(stderr, "usage: exb_codec_tool schema NAME < items.json\n"
                        "       exb_codec_tool canon SCHEMA_FILE\n"
                        "       exb_codec_tool encode SCHEMA_FILE ID < records.jsonl\n"
                        "       exb_codec_tool decode SCHEMA_FILE ID < frames.hex\n");
        return 2;
}

static char *read_all(FILE *fp, size_t *len)
{
        exb_buf_t b;
        exb_buf_init(&b, 0);
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
                if (exb_buf_append(&b, chunk, n))
                        break;
        exb_buf_cstr(&b);
        *len = b.len;
        return (char *)b.p;
}

static exb_schema_t *load_schema(const char *path, const char *id)
{
        FILE *fp = fopen(path, "rb");
        if (!fp) {
                perror(path);
                return NULL;
        }
        size_t len;
        char *text = read_all(fp, &len);
        fclose(fp);
        char err[512];
        exb_schema_t *s = exb_schema_parse(text, len, err, sizeof(err));
        free(text);
        if (!s) {
                fprintf(stderr, "%s: %s\n", path, err);
                return NULL;
        }
        if (id)
                s->id = (int32_t)strtol(id, NULL, 10);
        return s;
}

static int cmd_schema(const char *name)
{
        size_t len;
        char *text = read_all(stdin, &len);
        json_error_t jerr;
        json_t *items = json_loadb(text, len, 0, &jerr);
        free(text);
        if (!json_is_array(items)) {
                fprintf(stderr, "items: expected a JSON array: %s\n", jerr.text);
                return 1;
        }
        size_t n = json_array_size(items);
        exb_field_t *f = exb_calloc(n ? n : 1, sizeof(*f));
        for (size_t i = 0; i < n; i++) {
                json_t *it = json_array_get(items, i);
                const char *type = json_string_value(json_object_get(it, "type"));
                f[i].name = (char *)json_string_value(json_object_get(it, "name"));
                f[i].doc = (char *)json_string_value(json_object_get(it, "title"));
                f[i].type = type ? (exb_type_t)type[0] : 0;
                f[i].nullable = json_is_true(json_object_get(it, "nullable"));
        }
        char err[512];
        exb_schema_t *s = exb_schema_new(name, f, (int)n, err, sizeof(err));
        free(f);
        json_decref(items);
        if (!s) {
                fprintf(stderr, "%s\n", err);
                return 1;
        }
        printf("%s\n", s->avro_json);
        exb_schema_destroy(s);
        return 0;
}

static int cmd_canon(const char *path)
{
        exb_schema_t *s = load_schema(path, NULL);
        if (!s)
                return 1;
        char fp[65];
        exb_schema_fingerprint(s, fp);
        printf("%s\n%s\n", s->avro_json, fp);
        exb_schema_destroy(s);
        return 0;
}

static int b64val(int c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* Standard base64 with padding; returns the decoded length or -1. */
static long b64decode(const char *s, size_t len, uint8_t *out)
{
        if (len % 4)
                return -1;
        long n = 0;
        for (size_t i = 0; i < len; i += 4) {
                int last = i + 4 == len;
                int pad = last && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
                uint32_t w = 0;
                for (int k = 0; k < 4; k++) {
                        int v = k >= 4 - pad ? 0 : b64val(s[i + k]);
                        if (v < 0)
                                return -1;
                        w = w << 6 | (uint32_t)v;
                }
                out[n++] = (uint8_t)(w >> 16);
                if (pad < 2)
                        out[n++] = (uint8_t)(w >> 8);
                if (pad < 1)
                        out[n++] = (uint8_t)w;
        }
        return n;
}

/* Integer or ISO string -> ms / days. */
static int json_time(json_t *j, int is_date, int64_t *out)
{
        if (json_is_integer(j)) {
                *out = json_integer_value(j);
                return 0;
        }
        if (!json_is_string(j))
                return -1;
        if (is_date)
                return exb_date_parse(json_string_value(j), json_string_length(j), out);
        return exb_ts_parse(json_string_value(j), json_string_length(j), out);
}

static exb_str_t jstr(json_t *j)
{
        return (exb_str_t){json_string_value(j), json_string_length(j)};
}

/* Fills rec from one JSON line; `blobs` receives the decoded bytes values. */
static int record_from_json(const exb_schema_t *s, json_t *o, exb_record_t *rec, uint8_t **blobs,
                            char *err, size_t errsz)
{
        json_t *op = json_object_get(o, "op"), *eid = json_object_get(o, "event_id"),
               *src = json_object_get(o, "source"), *ts = json_object_get(o, "ts_ms"),
               *data = json_object_get(o, "data");
        int opv = json_is_string(op) ? exb_op_parse(json_string_value(op)) : -1;
        if (opv < 0 || !json_is_string(eid) || !json_is_string(src) || !json_is_object(data) ||
            json_time(ts, 0, &rec->ts_ms)) {
                exb_errf(err, errsz, "need op, event_id, source, ts_ms and data");
                return -1;
        }
        rec->op = (exb_op_t)opv;
        rec->event_id = jstr(eid);
        rec->source = jstr(src);
        rec->nvals = s->nfields;
        for (int i = 0; i < s->nfields; i++) {
                const exb_field_t *f = &s->fields[i];
                json_t *j = json_object_get(data, f->name);
                exb_val_t *v = &rec->vals[i];
                memset(v, 0, sizeof(*v));
                if (!j || json_is_null(j)) {
                        v->is_null = 1;
                        continue;
                }
                int ok = 1;
                switch (f->type) {
                case EXB_T_STRING:
                        ok = json_is_string(j);
                        v->u.s = jstr(j);
                        break;
                case EXB_T_BYTES: {
                        ok = json_is_string(j);
                        if (!ok)
                                break;
                        size_t l = json_string_length(j);
                        blobs[i] = malloc(l / 4 * 3 + 1);
                        long n = b64decode(json_string_value(j), l, blobs[i]);
                        ok = n >= 0;
                        v->u.s = (exb_str_t){(const char *)blobs[i], ok ? (size_t)n : 0};
                        break;
                }
                case EXB_T_NUMBER:
                        ok = json_is_number(j);
                        v->u.d = json_number_value(j);
                        break;
                case EXB_T_INT:
                        ok = json_is_integer(j);
                        v->u.i = json_integer_value(j);
                        break;
                case EXB_T_DATE:
                case EXB_T_TIMESTAMP:
                        ok = !json_time(j, f->type == EXB_T_DATE, &v->u.i);
                        break;
                case EXB_T_BOOL:
                        ok = json_is_boolean(j);
                        v->u.i = json_is_true(j);
                        break;
                }
                if (!ok) {
                        exb_errf(err, errsz, "field \"%s\": bad value for type %c", f->name,
                                 f->type);
                        return -1;
                }
        }
        return 0;
}

static int cmd_encode(const char *path, const char *id)
{
        exb_schema_t *s = load_schema(path, id);
        if (!s)
                return 1;
        exb_val_t *vals = exb_calloc((size_t)s->nfields, sizeof(*vals));
        uint8_t **blobs = exb_calloc((size_t)s->nfields, sizeof(*blobs));
        exb_buf_t out;
        exb_buf_init(&out, 0);
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int lineno = 0, rc = 0;
        while (!rc && (n = getline(&line, &cap, stdin)) > 0) {
                lineno++;
                json_error_t jerr;
                json_t *o = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &jerr);
                exb_record_t rec = {.vals = vals};
                char err[512] = "";
                if (!o) {
                        exb_errf(err, sizeof(err), "%s", jerr.text);
                        rc = 1;
                } else if (record_from_json(s, o, &rec, blobs, err, sizeof(err))) {
                        rc = 1;
                } else {
                        exb_buf_reset(&out);
                        if (exb_codec_encode(s, &rec, &out, err, sizeof(err)) != EXB_OK) {
                                rc = 1;
                        } else {
                                for (size_t k = 0; k < out.len; k++)
                                        printf("%02x", out.p[k]);
                                putchar('\n');
                        }
                }
                if (rc)
                        fprintf(stderr, "stdin:%d: %s\n", lineno, err);
                for (int i = 0; i < s->nfields; i++) {
                        free(blobs[i]);
                        blobs[i] = NULL;
                }
                json_decref(o);
        }
        free(line);
        free(vals);
        free(blobs);
        exb_buf_free(&out);
        exb_schema_destroy(s);
        return rc;
}

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int cmd_decode(const char *path, const char *id)
{
        exb_schema_t *s = load_schema(path, id);
        if (!s)
                return 1;
        exb_val_t *vals = exb_calloc((size_t)s->nfields, sizeof(*vals));
        exb_buf_t js;
        exb_buf_init(&js, 0);
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) > 0) {
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        n--;
                /* Exactly as many bytes as the value has, so the decoder
                 * reading past the end would be caught by ASan/valgrind. */
                size_t len = (size_t)n / 2;
                uint8_t *buf = malloc(len ? len : 1);
                int bad = n % 2;
                for (size_t k = 0; !bad && k < len; k++) {
                        int hi = hexval(line[2 * k]), lo = hexval(line[2 * k + 1]);
                        bad = hi < 0 || lo < 0;
                        buf[k] = (uint8_t)(hi << 4 | lo);
                }
                exb_record_t rec = {.vals = vals};
                char err[512];
                if (bad) {
                        printf("ERROR input line is not hex\n");
                } else if (exb_codec_decode(s, buf, len, &rec, err, sizeof(err)) != EXB_OK) {
                        printf("ERROR %s\n", err);
                } else {
                        exb_buf_reset(&js);
                        exb_codec_to_json(s, &rec, &js);
                        fwrite(js.p, 1, js.len, stdout);
                        putchar('\n');
                }
                free(buf);
        }
        free(line);
        free(vals);
        exb_buf_free(&js);
        exb_schema_destroy(s);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 3 && !strcmp(argv[1], "schema"))
                return cmd_schema(argv[2]);
        if (argc == 3 && !strcmp(argv[1], "canon"))
                return cmd_canon(argv[2]);
        if (argc == 4 && !strcmp(argv[1], "encode"))
                return cmd_encode(argv[2], argv[3]);
        if (argc == 4 && !strcmp(argv[1], "decode"))
                return cmd_decode(argv[2], argv[3]);
        return usage();
}
