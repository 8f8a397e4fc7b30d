/*
 * test_source_files.c — the `files` source (producers/exb_source_files.c):
 * CSV (RFC 4180 quoting, BOM, CRLF, multi-line fields, UTF-8) and JSONL
 * parsing, the mapping of text to item types, bad lines and their
 * .rejects, bounds (line and file size), which files are taken (.part,
 * still growing, name prefixes), done/ and refused/, progress across a
 * restart, rewind, and the publisher's checks of source.* keys.
 *
 * Every test works in a fresh temporary directory: drop/ (source.path)
 * and data/ (data.dir).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "exb_catalog.h"
#include "exb_control.h"
#include "exb_publisher.h"
#include "exb_schema.h"
#include "exb_source.h"

#define P1 "370600-GA-0001"
#define P3 "370600-GA-0003"

static const char *catalog_text =
        "{\"departments\": [{\"code\": \"GA\", \"name\": \"市公安局\"}],"
        " \"resources\": ["
        "  {\"code\": \"" P1 "\", \"name\": \"人口基本信息\", \"provider\": \"GA\","
        "   \"share_type\": \"unconditional\", \"key\": [\"id_number\"], \"items\": ["
        "    {\"name\": \"id_number\", \"type\": \"C\", \"length\": 18, \"required\": true},"
        "    {\"name\": \"name\", \"type\": \"C\", \"length\": 50, \"required\": true},"
        "    {\"name\": \"birth_date\", \"type\": \"D\"},"
        "    {\"name\": \"height\", \"type\": \"N\"},"
        "    {\"name\": \"children\", \"type\": \"I\"},"
        "    {\"name\": \"updated_at\", \"type\": \"T\"},"
        "    {\"name\": \"alive\", \"type\": \"L\"},"
        "    {\"name\": \"photo\", \"type\": \"B\", \"length\": 16},"
        "    {\"name\": \"region\", \"type\": \"C\", \"length\": 6}]},"
        "  {\"code\": \"" P3 "\", \"name\": \"证件照\", \"provider\": \"GA\","
        "   \"share_type\": \"unconditional\", \"key\": [\"id_number\"], \"items\": ["
        "    {\"name\": \"id_number\", \"type\": \"C\", \"required\": true},"
        "    {\"name\": \"op\", \"type\": \"C\"},"
        "    {\"name\": \"photo\", \"type\": \"B\"}]}"
        "]}";

static char tmpdir[64], drop[128], datadir[128];

/* ----------------------------------------------------------------- helpers */

static int setup(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/exb-test-files-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(drop, sizeof(drop), "%s/drop", tmpdir);
        snprintf(datadir, sizeof(datadir), "%s/data", tmpdir);
        mkdir(drop, 0755);
        mkdir(datadir, 0755);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

/* Writes a file in the drop directory (or under tmpdir if name has a
 * '/'), with mtime 2026-01-15T08:30:00Z. */
static void put(const char *name, const char *content, size_t len)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", drop, name);
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(content, 1, len, f), len);
        fclose(f);
        struct timespec ts[2] = {{1768465800, 0}, {1768465800, 0}};
        assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}
#define PUT(name, lit) put(name, lit, sizeof(lit) - 1)

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        static char buf[65536];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

static int exists(const char *fmt, ...)
{
        char p[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p, sizeof(p), fmt, ap);
        va_end(ap);
        struct stat st;
        return stat(p, &st) == 0;
}

typedef struct {
        exb_catalog_t *cat;
        int n;
        exb_source_table_t tables[3];
        exb_schema_t *schemas[3];
        exb_conf_kv_t kv[4];
        exb_conf_kvs_t opts;
        exb_source_t *src;
} fx_t;

/* Opens the source with tables "person" -> P1 (and "person_photo" -> P3)
 * and options "key=value" (NULL-terminated). Returns 0, or -1 with es. */
static int fx_open_err(fx_t *fx, const char *const *opts, char *es, size_t es_size)
{
        memset(fx, 0, sizeof(*fx));
        fx->cat = exb_catalog_parse("test-catalog", catalog_text, strlen(catalog_text), NULL, 0, es,
                                    es_size);
        assert_non_null(fx->cat);
        static const char *names[] = {"person", "person_photo"}, *codes[] = {P1, P3};
        fx->n = 2;
        for (int i = 0; i < fx->n; i++) {
                const exb_resource_t *res = exb_catalog_resource(fx->cat, codes[i]);
                fx->schemas[i] = exb_resource_schema(res, es, es_size);
                assert_non_null(fx->schemas[i]);
                fx->tables[i] = (exb_source_table_t){names[i], res, fx->schemas[i]};
        }
        static char keys[4][64], vals[4][64];
        for (int i = 0; opts && opts[i]; i++) {
                const char *eq = strchr(opts[i], '=');
                snprintf(keys[i], sizeof(keys[i]), "%.*s", (int)(eq - opts[i]), opts[i]);
                snprintf(vals[i], sizeof(vals[i]), "%s", eq + 1);
                fx->kv[i] = (exb_conf_kv_t){keys[i], vals[i]};
                fx->opts.cnt++;
        }
        fx->opts.kvs = fx->kv;
        exb_source_conf_t sc = {"producer.conf", "GA", drop, datadir, 100, &fx->opts};
        fx->src = exb_source_files.open(&sc, es, es_size);
        if (!fx->src)
                return -1;
        if (exb_source_files.bind(fx->src, fx->tables, fx->n, es, es_size) ||
            exb_source_files.start(fx->src, es, es_size))
                return -1;
        return 0;
}

static void fx_open(fx_t *fx, const char *const *opts)
{
        char es[512] = "";
        if (fx_open_err(fx, opts, es, sizeof(es)))
                print_error("%s\n", es);
        assert_string_equal(es, "");
}

static const char *const settle0[] = {"files.settle.ms=0", NULL};

static void fx_close(fx_t *fx)
{
        exb_source_files.close(fx->src);
        for (int i = 0; i < fx->n; i++)
                exb_schema_destroy(fx->schemas[i]);
        exb_catalog_destroy(fx->cat);
}

static int next(fx_t *fx, exb_change_t *chg)
{
        char es[512] = "";
        int r = exb_source_files.next(fx->src, chg, es, sizeof(es));
        if (r < 0)
                print_error("next: %s\n", es);
        assert_int_not_equal(r, -1);
        return r;
}

static void ack(fx_t *fx, int64_t pos)
{
        char es[512] = "";
        if (exb_source_files.ack(fx->src, pos, es, sizeof(es)))
                print_error("ack: %s\n", es);
        assert_string_equal(es, "");
}

static void reject(fx_t *fx, const exb_change_t *chg, const char *why)
{
        char es[512] = "";
        assert_int_equal(exb_source_files.reject(fx->src, chg, why, es, sizeof(es)), 0);
}

static int fld(fx_t *fx, int t, const char *name)
{
        int f = exb_schema_field_idx(fx->schemas[t], name);
        assert_true(f >= 0);
        return f;
}

static void assert_str(const exb_val_t *v, const char *want)
{
        if (!want) {
                assert_true(v->is_null);
                return;
        }
        assert_false(v->is_null);
        if (v->u.s.len != strlen(want) || memcmp(v->u.s.p, want, v->u.s.len))
                print_error("got \"%.*s\", want \"%s\"\n", (int)v->u.s.len, v->u.s.p, want);
        assert_int_equal(v->u.s.len, strlen(want));
        assert_memory_equal(v->u.s.p, want, strlen(want));
}

#define LINE(chg) ((int)((chg).pos & 0xFFFFFFFF))

static void assert_error(const exb_change_t *chg, int line, const char *part)
{
        if (!chg->error || !strstr(chg->error, part))
                print_error("line %d: error \"%s\", want \"%s\"\n", LINE(*chg),
                            chg->error ? chg->error : "(none)", part);
        assert_non_null(chg->error);
        assert_non_null(strstr(chg->error, part));
        assert_int_equal(LINE(*chg), line);
}

/* Reads every change, acks each good one and rejects each bad one with its
 * error, until next() has nothing; returns the count of changes. */
static int drain(fx_t *fx)
{
        exb_change_t chg;
        int n = 0;
        for (int idle = 0; idle < 3;) {
                if (!next(fx, &chg)) {
                        idle++;
                        continue;
                }
                n++;
                if (chg.error)
                        reject(fx, &chg, chg.error);
                ack(fx, chg.pos);
        }
        return n;
}

/* --------------------------------------------------------------------- CSV */

static void test_csv_values(void **state)
{
        (void)state;
        /* BOM, CRLF, header in other case with spaces, quoted commas and
         * quotes, a field spanning lines, Chinese text, null vs "". */
        PUT("person-20261123.csv",
            "\xEF\xBB\xBFID_Number, name "
            ",birth_date,height,children,updated_at,alive,photo,region\r\n"
            "370602199001011234,张三,1990-01-01,1.75,2,2026-01-15T08:30:00Z,true,AAEC,370602\r\n"
            "370602199001011235,\"李, \"\"四\"\"\",,-3e2, 7 ,1768465800000,0,\\x00ff,\"\"\r\n"
            "370602199001011236,\"王\n五\",2000-02-29,,,2026-01-15 16:30:00+08:00,FALSE,,\n"
            "370602199001011237,赵六,,,,,,,");
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        assert_int_equal(next(&fx, &chg), 1);
        assert_null(chg.error);
        assert_int_equal(LINE(chg), 2);
        assert_int_equal(chg.table, 0);
        assert_int_equal(chg.op, EXB_OP_CREATE);
        assert_int_equal(chg.ts_ms, 1768465800000LL);
        assert_int_equal(chg.nvals, fx.schemas[0]->nfields);
        assert_int_equal(strncmp(chg.event_id, "GA-", 3), 0);
        assert_int_equal(strlen(chg.event_id), strlen("GA-0123456789abcdef-2"));
        assert_string_equal(chg.event_id + 19, "-2");
        assert_str(&chg.vals[fld(&fx, 0, "id_number")], "370602199001011234");
        assert_str(&chg.vals[fld(&fx, 0, "name")], "张三");
        assert_int_equal(chg.vals[fld(&fx, 0, "birth_date")].u.i, 7305);
        assert_true(chg.vals[fld(&fx, 0, "height")].u.d == 1.75);
        assert_int_equal(chg.vals[fld(&fx, 0, "children")].u.i, 2);
        assert_int_equal(chg.vals[fld(&fx, 0, "updated_at")].u.i, 1768465800000LL);
        assert_int_equal(chg.vals[fld(&fx, 0, "alive")].u.i, 1);
        exb_val_t *ph = &chg.vals[fld(&fx, 0, "photo")];
        assert_int_equal(ph->u.s.len, 3);
        assert_memory_equal(ph->u.s.p, "\x00\x01\x02", 3);
        assert_str(&chg.vals[fld(&fx, 0, "region")], "370602");
        char first_id[64];
        snprintf(first_id, sizeof(first_id), "%s", chg.event_id);

        assert_int_equal(next(&fx, &chg), 1);
        assert_null(chg.error);
        assert_int_equal(LINE(chg), 3);
        assert_str(&chg.vals[fld(&fx, 0, "name")], "李, \"四\"");
        assert_true(chg.vals[fld(&fx, 0, "birth_date")].is_null);
        assert_true(chg.vals[fld(&fx, 0, "height")].u.d == -300.0);
        assert_int_equal(chg.vals[fld(&fx, 0, "children")].u.i, 7);
        assert_int_equal(chg.vals[fld(&fx, 0, "updated_at")].u.i, 1768465800000LL);
        assert_int_equal(chg.vals[fld(&fx, 0, "alive")].u.i, 0);
        ph = &chg.vals[fld(&fx, 0, "photo")];
        assert_int_equal(ph->u.s.len, 2);
        assert_memory_equal(ph->u.s.p, "\x00\xff", 2);
        assert_str(&chg.vals[fld(&fx, 0, "region")], ""); /* quoted empty: "" */

        assert_int_equal(next(&fx, &chg), 1);
        assert_null(chg.error);
        assert_int_equal(LINE(chg), 4); /* spans lines 4-5 */
        assert_str(&chg.vals[fld(&fx, 0, "name")], "王\n五");
        assert_int_equal(chg.vals[fld(&fx, 0, "updated_at")].u.i, 1768465800000LL);
        assert_true(chg.vals[fld(&fx, 0, "height")].is_null);
        assert_true(chg.vals[fld(&fx, 0, "photo")].is_null);
        assert_true(chg.vals[fld(&fx, 0, "region")].is_null); /* unquoted empty: null */

        assert_int_equal(next(&fx, &chg), 1); /* no line end at the end of the file */
        assert_null(chg.error);
        assert_int_equal(LINE(chg), 6);
        assert_str(&chg.vals[fld(&fx, 0, "name")], "赵六");
        int64_t last = chg.pos;
        assert_int_equal(next(&fx, &chg), 0); /* read to the end, waiting for acks */
        assert_true(exists("%s/person-20261123.csv", drop));
        ack(&fx, last);
        /* Delivered: moved to done/, no .rejects. */
        assert_false(exists("%s/person-20261123.csv", drop));
        assert_true(exists("%s/done/person-20261123.csv", drop));
        assert_false(exists("%s/done/person-20261123.csv.rejects", drop));
        fx_close(&fx);

        /* The same content again under another name: the same event ids. */
        PUT("person-copy.csv",
            "\xEF\xBB\xBFID_Number, name "
            ",birth_date,height,children,updated_at,alive,photo,region\r\n"
            "370602199001011234,张三,1990-01-01,1.75,2,2026-01-15T08:30:00Z,true,AAEC,370602\r\n"
            "370602199001011235,\"李, \"\"四\"\"\",,-3e2, 7 ,1768465800000,0,\\x00ff,\"\"\r\n"
            "370602199001011236,\"王\n五\",2000-02-29,,,2026-01-15 16:30:00+08:00,FALSE,,\n"
            "370602199001011237,赵六,,,,,,,");
        fx_open(&fx, settle0);
        assert_int_equal(next(&fx, &chg), 1);
        assert_string_equal(chg.event_id, first_id);
        assert_true((chg.pos >> 32) > (last >> 32)); /* a new file: higher positions */
        fx_close(&fx);
}

/* Bad lines: each is handed out with its reason and line number, the
 * good lines around them are not disturbed; the .rejects lists them. */
static void test_csv_bad_lines(void **state)
{
        (void)state;
        const char *opts[] = {"files.settle.ms=0", "files.max.line.bytes=80", NULL};
        PUT("person.csv",
            "id_number,name,birth_date,children,alive,photo,op\n"
            "1,ok1,,,,,\n"           /* 2 */
            "2,two,,,\n"             /* 3: 5 fields */
            "3,\"a\"b,,,,,\n"        /* 4 */
            "4,a\"b,,,,,\n"          /* 5 */
            "5,\xff\xfe,,,,,\n"      /* 6 */
            "6,six,15/01/2026,,,,\n" /* 7 */
            "7,seven,,12a,,,\n"      /* 8 */
            "8,eight,,,yes,,\n"      /* 9 */
            "9,nine,,,,!!!,\n"       /* 10 */
            "10,ten,,,,,MERGE\n"     /* 11 */
            "11,eleven,,,,,\""       /* 12: longer than 80, quote not closed */
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
            "12,ok12,,,,,delete\n" /* 13 */
            "\n"                   /* 14: blank */
            "13,\"unclosed\n");    /* 15 */
        fx_t fx;
        fx_open(&fx, opts);
        exb_change_t chg;
        int64_t last = 0;
        struct {
                int line;
                const char *err; /* NULL: good */
        } want[] = {
                {2, NULL},
                {3, "5 field(s), the header has 7"},
                {4, "field 2: text after the closing quote"},
                {5, "field 2: a quote inside an unquoted field"},
                {6, "not valid UTF-8 (byte 3 of the line; GBK? files must be UTF-8)"},
                {7, "item \"birth_date\": \"15/01/2026\" does not fit type D"},
                {8, "item \"children\": \"12a\" does not fit type I"},
                {9, "item \"alive\": \"yes\" does not fit type L"},
                {10, "item \"photo\": \"!!!\": not base64"},
                {11, "op \"MERGE\" is not CREATE, UPDATE, DELETE or SNAPSHOT"},
                {12, "longer than source.files.max.line.bytes (80)"},
                {13, NULL},
                {15, "quoted field is not closed before the end of the file"},
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                assert_int_equal(next(&fx, &chg), 1);
                if (want[i].err) {
                        assert_error(&chg, want[i].line, want[i].err);
                        reject(&fx, &chg, chg.error);
                } else {
                        if (chg.error)
                                print_error("line %d: %s\n", want[i].line, chg.error);
                        assert_null(chg.error);
                        assert_int_equal(LINE(chg), want[i].line);
                }
                if (want[i].line == 13) { /* DELETE: the key only */
                        assert_int_equal(chg.op, EXB_OP_DELETE);
                        assert_str(&chg.vals[fld(&fx, 0, "id_number")], "12");
                        assert_true(chg.vals[fld(&fx, 0, "name")].is_null);
                }
                if (i == 3)
                        ack(&fx, chg.pos); /* rejections are written with acks */
                last = chg.pos;
        }
        assert_int_equal(next(&fx, &chg), 0);
        ack(&fx, last);
        assert_true(exists("%s/done/person.csv", drop));
        const char *rj = slurp(strcat(strcpy((char[256]){0}, drop), "/done/person.csv.rejects"));
        assert_non_null(rj);
        /* One JSON object per rejected line, in line order, with reason and text. */
        int lines = 0;
        for (const char *p = rj; *p; p++)
                lines += *p == '\n';
        assert_int_equal(lines, 11);
        assert_non_null(strstr(rj, "{\"line\":3,\"reason\":\"5 field(s), the header has 7\","
                                   "\"text\":\"2,two,,,\"}\n"));
        assert_non_null(strstr(rj, "{\"line\":7,\"reason\":\"item \\\"birth_date\\\": "
                                   "\\\"15/01/2026\\\" does not fit type D (date YYYY-MM-DD)\""));
        assert_non_null(strstr(rj, "\"text\":\"5,??,,,,,\"")); /* invalid bytes shown as ? */
        assert_non_null(strstr(rj, "{\"line\":15,"));
        assert_true(strstr(rj, "\"line\":3,") < strstr(rj, "\"line\":15,"));
        assert_null(strstr(rj, "\"line\":2,"));
        assert_null(strstr(rj, "\"line\":13,"));
        fx_close(&fx);
}

/* ------------------------------------------------------------------- JSONL */

static void test_jsonl(void **state)
{
        (void)state;
        PUT("person_20261123.jsonl",
            "{\"id_number\":\"1\",\"name\":\"张三\",\"height\":1.8,\"children\":3.0,"
            "\"updated_at\":1768465800000,\"alive\":true,\"photo\":\"AAE=\",\"region\":370602}\n"
            "\n"
            "  {\"ID_NUMBER\":\"2\",\"name\":\"x\",\"birth_date\":\"1990-01-01\",\"op\":\"update\","
            "\"alive\":\"0\",\"updated_at\":\"2026-01-15T08:30:00.5Z\"}  \r\n"
            "{\"id_number\":\"3\",\"name\":\"y\",\"op\":\"DELETE\",\"region\":\"370602\"}\n"
            "{\"id_number\":\"4\",\"nmae\":\"z\"}\n"
            "{\"id_number\":\"5\",\"name\":\"z\",\"name\":\"w\"}\n"
            "[1,2]\n"
            "{\"id_number\":\"7\",\n"
            "{\"id_number\":\"8\",\"children\":1.5}\n"
            "{\"id_number\":\"9\",\"birth_date\":19900101}\n"
            "{\"id_number\":\"10\",\"alive\":2}\n"
            "{\"id_number\":\"11\",\"region\":{\"a\":1}}\n"
            "{\"id_number\":\"12\",\"name\":\"nul\\u0000\"}\n"
            "{\"id_number\":\"13\",\"name\":\"\",\"birth_date\":\"\",\"op\":null}\n");
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        assert_int_equal(next(&fx, &chg), 1);
        assert_null(chg.error);
        assert_int_equal(LINE(chg), 1);
        assert_str(&chg.vals[fld(&fx, 0, "name")], "张三");
        assert_true(chg.vals[fld(&fx, 0, "height")].u.d == 1.8);
        assert_int_equal(chg.vals[fld(&fx, 0, "children")].u.i, 3);
        assert_int_equal(chg.vals[fld(&fx, 0, "updated_at")].u.i, 1768465800000LL);
        assert_int_equal(chg.vals[fld(&fx, 0, "alive")].u.i, 1);
        assert_int_equal(chg.vals[fld(&fx, 0, "photo")].u.s.len, 2);
        assert_str(&chg.vals[fld(&fx, 0, "region")], "370602");   /* integer as text */
        assert_true(chg.vals[fld(&fx, 0, "birth_date")].is_null); /* absent */

        assert_int_equal(next(&fx, &chg), 1); /* the blank line 2 is skipped */
        assert_null(chg.error);
        assert_int_equal(LINE(chg), 3);
        assert_int_equal(chg.op, EXB_OP_UPDATE);
        assert_str(&chg.vals[fld(&fx, 0, "id_number")], "2");
        assert_int_equal(chg.vals[fld(&fx, 0, "birth_date")].u.i, 7305);
        assert_int_equal(chg.vals[fld(&fx, 0, "alive")].u.i, 0);
        assert_int_equal(chg.vals[fld(&fx, 0, "updated_at")].u.i, 1768465800500LL);

        assert_int_equal(next(&fx, &chg), 1);
        assert_null(chg.error);
        assert_int_equal(chg.op, EXB_OP_DELETE);
        assert_true(chg.vals[fld(&fx, 0, "name")].is_null); /* a DELETE carries the key only */
        assert_true(chg.vals[fld(&fx, 0, "region")].is_null);

        static const struct {
                int line;
                const char *err;
        } bad[] = {
                {5, "\"nmae\" is not an item of 370600-GA-0001 (did you mean \"name\"?)"},
                {6, "not JSON: duplicate object key"},
                {7, "not a JSON object"},
                {8, "not JSON: "},
                {9, "item \"children\": number 1.5 does not fit type I"},
                {10, "item \"birth_date\": number 19900101 does not fit type D"},
                {11, "item \"alive\": number 2 does not fit type L"},
                {12, "item \"region\": a JSON object does not fit type C"},
                {13, "not JSON: "},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(next(&fx, &chg), 1);
                assert_error(&chg, bad[i].line, bad[i].err);
                reject(&fx, &chg, chg.error);
        }
        assert_int_equal(next(&fx, &chg), 1);
        assert_null(chg.error);
        assert_int_equal(LINE(chg), 14);
        assert_int_equal(chg.op, EXB_OP_CREATE);
        assert_str(&chg.vals[fld(&fx, 0, "name")], "");           /* C: empty text stays */
        assert_true(chg.vals[fld(&fx, 0, "birth_date")].is_null); /* other types: null */
        int64_t last = chg.pos;
        assert_int_equal(next(&fx, &chg), 0);
        ack(&fx, last);
        assert_true(exists("%s/done/person_20261123.jsonl", drop));
        assert_true(exists("%s/done/person_20261123.jsonl.rejects", drop));
        fx_close(&fx);
}

/* A resource with an item named "op": the operation column is "_op". */
static void test_op_item(void **state)
{
        (void)state;
        PUT("person_photo-1.csv", "id_number,op,_op,photo\n"
                                  "1,keep,DELETE,\n");
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        assert_int_equal(next(&fx, &chg), 1);
        assert_null(chg.error);
        assert_int_equal(chg.table, 1); /* person_photo, not person: the longest prefix */
        assert_int_equal(chg.op, EXB_OP_DELETE);
        assert_str(&chg.vals[fld(&fx, 1, "id_number")], "1");
        fx_close(&fx);
}

/* ----------------------------------------------------------- which files */

static void test_file_selection(void **state)
{
        (void)state;
        PUT("person-2.csv.part", "id_number,name\n1,a\n");
        PUT(".person-3.csv", "id_number,name\n1,a\n");
        PUT("person-4.txt", "id_number,name\n1,a\n");
        PUT("persons.csv", "id_number,name\n1,a\n");         /* no table: refused */
        PUT("person-5.csv", "id_number,nmae\n1,a\n");        /* unknown column */
        PUT("person-6.csv", "name\na\n");                    /* no key column */
        PUT("person-7.csv", "id_number,name,name\n1,a,b\n"); /* twice */
        PUT("person-8.csv", "");                             /* no header */
        PUT("person-9.CSV", "id_number,name\n9,nine\n");     /* good */
        PUT("person-a.jsonl", "");                           /* good: no records */
        PUT("person-c.csv", "\xff\xfei\0d\0");               /* UTF-16 */
        mkdir(strcat(strcpy((char[256]){0}, drop), "/person-dir.csv"), 0755);
        fx_t fx;
        fx_open(&fx, settle0);
        assert_int_equal(drain(&fx), 1); /* only person-9.CSV has a record */
        assert_true(exists("%s/person-2.csv.part", drop));
        assert_true(exists("%s/.person-3.csv", drop));
        assert_true(exists("%s/person-4.txt", drop));
        assert_true(exists("%s/done/person-9.CSV", drop));
        assert_true(exists("%s/done/person-a.jsonl", drop));
        char p[256];
        static const struct {
                const char *file, *why;
        } refused[] = {
                {"persons.csv", "no source.table.<name> matches the file name"},
                {"person-5.csv",
                 "header: column 2 \\\"nmae\\\" is not an item of 370600-GA-0001 (did you mean "
                 "\\\"name\\\"?)"},
                {"person-6.csv", "header: no column for key item \\\"id_number\\\""},
                {"person-7.csv", "header: column 3: \\\"name\\\" appears twice"},
                {"person-8.csv", "no header row"},
                {"person-c.csv", "the file is UTF-16; files must be UTF-8"},
        };
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                assert_true(exists("%s/refused/%s", drop, refused[i].file));
                snprintf(p, sizeof(p), "%s/refused/%s.rejects", drop, refused[i].file);
                const char *rj = slurp(p);
                assert_non_null(rj);
                if (!strstr(rj, refused[i].why))
                        print_error("%s: %s", refused[i].file, rj);
                assert_non_null(strstr(rj, refused[i].why));
                assert_int_equal(strncmp(rj, "{\"line\":0,\"reason\":", 19), 0);
        }
        fx_close(&fx);

        /* Larger than source.files.max.bytes: refused as a whole. */
        PUT("person-b.csv", "id_number,name\n1,a\n2,b\n");
        const char *opts[] = {"files.settle.ms=0", "files.max.bytes=10", NULL};
        fx_open(&fx, opts);
        assert_int_equal(drain(&fx), 0);
        snprintf(p, sizeof(p), "%s/refused/person-b.csv.rejects", drop);
        assert_non_null(strstr(slurp(p), "the file has 23 bytes, more than "
                                         "source.files.max.bytes (10)"));
        fx_close(&fx);

        /* The same name again: done/ keeps both. */
        PUT("person-9.CSV", "id_number,name\n9,nine again\n");
        fx_open(&fx, settle0);
        assert_int_equal(drain(&fx), 1);
        assert_true(exists("%s/done/person-9.CSV", drop));
        assert_false(exists("%s/person-9.CSV", drop));
        sqlite3 *db;
        snprintf(p, sizeof(p), "%s/producer-files.db", datadir);
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT moved_to FROM files WHERE name='person-9.CSV'"
                                            " ORDER BY fid DESC LIMIT 1",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        char moved[64];
        snprintf(moved, sizeof(moved), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        assert_string_not_equal(moved, "person-9.CSV");
        assert_true(exists("%s/done/%s", drop, moved));
        fx_close(&fx);
}

/* Files are taken in name order, one at a time. */
static void test_order(void **state)
{
        (void)state;
        PUT("person-20261124.csv", "id_number,name\n24,b\n");
        PUT("person-20261123.csv", "id_number,name\n23,a\n");
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        assert_int_equal(next(&fx, &chg), 1);
        assert_str(&chg.vals[fld(&fx, 0, "id_number")], "23");
        int64_t pos = chg.pos;
        assert_int_equal(next(&fx, &chg), 0); /* the next file waits for this one */
        assert_true(exists("%s/person-20261123.csv", drop));
        ack(&fx, pos);
        assert_int_equal(next(&fx, &chg), 1);
        assert_str(&chg.vals[fld(&fx, 0, "id_number")], "24");
        fx_close(&fx);
}

/* A file still growing is not taken until it has settled. */
static void test_settle(void **state)
{
        (void)state;
        const char *opts[] = {"files.settle.ms=400", NULL};
        fx_t fx;
        fx_open(&fx, opts);
        char p[256];
        snprintf(p, sizeof(p), "%s/person-1.csv", drop);
        FILE *f = fopen(p, "w");
        fputs("id_number,name\n1,a\n", f);
        fflush(f);
        exb_change_t chg;
        assert_int_equal(next(&fx, &chg), 0); /* first sight */
        for (int i = 0; i < 6; i++) {         /* keeps growing for 0.9 s */
                usleep(150 * 1000);
                fprintf(f, "%d,b\n", i + 2);
                fflush(f);
                assert_int_equal(next(&fx, &chg), 0);
        }
        fclose(f);
        usleep(200 * 1000);
        assert_int_equal(next(&fx, &chg), 0); /* unchanged for 0.2 s only */
        usleep(300 * 1000);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(LINE(chg), 2);
        int n = 1;
        while (next(&fx, &chg))
                n++;
        assert_int_equal(n, 7); /* every line written */
        fx_close(&fx);
}

/* ------------------------------------------------- restart, rewind, state */

static void test_restart(void **state)
{
        (void)state;
        PUT("person-1.csv", "id_number,name\n1,a\n2,b\n3,\"c\n\"\nbad,\"x\"y\n5,e\n6,f\n");
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        int64_t pos[6];
        char ids[6][64];
        for (int i = 0; i < 5; i++) {
                assert_int_equal(next(&fx, &chg), 1);
                pos[i] = chg.pos;
                snprintf(ids[i], sizeof(ids[i]), "%s", chg.event_id);
                if (chg.error)
                        reject(&fx, &chg, chg.error);
        }
        assert_int_equal(LINE(chg), 7); /* line 4-5 is one record */
        /* Rewind into the middle, then to the oldest unacknowledged. */
        ack(&fx, pos[0]);
        exb_source_files.rewind(fx.src, pos[2]);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.pos, pos[3]);
        exb_source_files.rewind(fx.src, 0);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.pos, pos[1]);
        assert_string_equal(chg.event_id, ids[1]);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.pos, pos[3]);
        reject(&fx, &chg, chg.error);
        ack(&fx, pos[3]); /* lines 2, 4 delivered, 6 rejected */
        /* "Crash": close without acknowledging line 7. */
        fx_close(&fx);

        fx_open(&fx, settle0);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(chg.pos, pos[4]); /* resumes after the last acknowledged record */
        assert_string_equal(chg.event_id, ids[4]);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(LINE(chg), 8);
        assert_int_equal(next(&fx, &chg), 0);
        ack(&fx, chg.pos);
        assert_true(exists("%s/done/person-1.csv", drop));
        char p[256];
        snprintf(p, sizeof(p), "%s/done/person-1.csv.rejects", drop);
        const char *rj = slurp(p);
        assert_non_null(strstr(rj, "{\"line\":6,\"reason\":\"field 2: text after the closing "
                                   "quote\",\"text\":\"bad,\\\"x\\\"y\"}\n"));
        assert_null(strstr(rj + 1, "{\"line\":6")); /* once */
        fx_close(&fx);
}

/* The file changed while it was being processed: the old one is lost (an
 * error is logged), the new content is taken as a new file. */
static void test_changed_while_processing(void **state)
{
        (void)state;
        PUT("person-1.csv", "id_number,name\n1,a\n2,b\n");
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        assert_int_equal(next(&fx, &chg), 1);
        char id1[64];
        snprintf(id1, sizeof(id1), "%s", chg.event_id);
        ack(&fx, chg.pos);
        fx_close(&fx);
        PUT("person-1.csv", "id_number,name\n1,A\n2,B\n");
        fx_open(&fx, settle0);
        assert_int_equal(next(&fx, &chg), 1);
        assert_int_equal(LINE(chg), 2); /* from the start: it is another file */
        assert_string_not_equal(chg.event_id, id1);
        assert_str(&chg.vals[fld(&fx, 0, "name")], "A");
        fx_close(&fx);
        sqlite3 *db;
        char p[256];
        snprintf(p, sizeof(p), "%s/producer-files.db", datadir);
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT state, reason FROM files ORDER BY fid", -1,
                                            &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "lost");
        assert_non_null(strstr((const char *)sqlite3_column_text(st, 1), "changed"));
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "active");
        sqlite3_finalize(st);
        sqlite3_close(db);
}

/* Marked complete, then a crash before the move: the next start moves it. */
static void test_complete_recovery(void **state)
{
        (void)state;
        PUT("person-1.csv", "id_number,name\n1,a\n");
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        assert_int_equal(next(&fx, &chg), 1);
        fx_close(&fx);
        sqlite3 *db;
        char p[256];
        snprintf(p, sizeof(p), "%s/producer-files.db", datadir);
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "UPDATE files SET state='complete', moved_to='person-1.csv';"
                                      "INSERT INTO rejects VALUES(1, 2, 'why', 'text')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        fx_open(&fx, settle0);
        assert_int_equal(next(&fx, &chg), 0);
        assert_true(exists("%s/done/person-1.csv", drop));
        snprintf(p, sizeof(p), "%s/done/person-1.csv.rejects", drop);
        assert_string_equal(slurp(p), "{\"line\":2,\"reason\":\"why\",\"text\":\"text\"}\n");
        fx_close(&fx);
}

/* A long file in small reads: line numbers and offsets across chunks. */
static void test_large_file(void **state)
{
        (void)state;
        size_t cap = 4 << 20, len = 0;
        char *buf = malloc(cap);
        len += (size_t)snprintf(buf, cap, "id_number,name\n");
        int n = 60000;
        for (int i = 1; i <= n; i++)
                len += (size_t)snprintf(buf + len, cap - len, "%d,\"name %d\nsecond line\"\n", i,
                                        i);
        put("person-big.csv", buf, len);
        free(buf);
        fx_t fx;
        fx_open(&fx, settle0);
        exb_change_t chg;
        int got = 0;
        while (next(&fx, &chg)) {
                got++;
                assert_null(chg.error);
                assert_int_equal(LINE(chg), 2 + 2 * (got - 1));
                if (got == 30000) { /* ack half, "crash", resume */
                        ack(&fx, chg.pos);
                        fx_close(&fx);
                        fx_open(&fx, settle0);
                }
        }
        assert_int_equal(got, n);
        ack(&fx, chg.pos);
        assert_true(exists("%s/done/person-big.csv", drop));
        fx_close(&fx);
}

/* ----------------------------------------------------------- configuration */

static void test_conf(void **state)
{
        (void)state;
        char es[512] = "";
        fx_t fx;
        const char *bad1[] = {"files.setle.ms=5", NULL};
        assert_int_equal(fx_open_err(&fx, bad1, es, sizeof(es)), -1);
        assert_string_equal(es, "producer.conf: unknown key \"source.files.setle.ms\" (did you "
                                "mean \"source.files.settle.ms\"?)");
        fx_close(&fx);
        const char *bad2[] = {"files.max.line.bytes=10", NULL};
        assert_int_equal(fx_open_err(&fx, bad2, es, sizeof(es)), -1);
        assert_non_null(strstr(es, "\"source.files.max.line.bytes\": 10 is out of range"));
        fx_close(&fx);

        /* Through the publisher's check: the catalog, the plugin, its keys. */
        exb_catalog_t *cat =
                exb_catalog_parse("c", catalog_text, strlen(catalog_text), NULL, 0, es, sizeof(es));
        exb_conf_kv_t tables[] = {{"person", P1}}, opts[] = {{"files.settle.ms", "10"}};
        exb_publisher_conf_t c = {0};
        c.dept = "GA";
        c.data_dir = datadir;
        c.source_type = "files";
        c.source_path = drop;
        c.batch_size = 10;
        c.tables = (exb_conf_kvs_t){1, tables};
        c.source_opts = (exb_conf_kvs_t){1, opts};
        c.where = "producer.conf";
        es[0] = '\0';
        assert_int_equal(exb_publisher_check(&c, cat, es, sizeof(es)), 0);
        c.source_type = "sqlite"; /* takes no source.* keys of its own */
        assert_int_equal(exb_publisher_check(&c, cat, es, sizeof(es)), -1);
        assert_string_equal(es, "producer.conf: unknown key \"source.files.settle.ms\" "
                                "(source.type sqlite)");
        c.source_type = "files";
        c.source_path = "/nonexistent/drop";
        assert_int_equal(exb_publisher_check(&c, cat, es, sizeof(es)), -1);
        assert_string_equal(es, "producer.conf: source.path /nonexistent/drop: no such directory "
                                "(the drop directory)");
        exb_catalog_destroy(cat);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_csv_values, setup, teardown),
                cmocka_unit_test_setup_teardown(test_csv_bad_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jsonl, setup, teardown),
                cmocka_unit_test_setup_teardown(test_op_item, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_selection, setup, teardown),
                cmocka_unit_test_setup_teardown(test_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_settle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_changed_while_processing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_complete_recovery, setup, teardown),
                cmocka_unit_test_setup_teardown(test_large_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_conf, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
