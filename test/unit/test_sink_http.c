/*
 * test_sink_http.c — the HTTP sink (consumers/exb_sink_http.c).
 *
 * Through the plugin interface, with a scripted server in place of libcurl
 * (exb_sink_http_set_transport): the server parses every body, answers as
 * told (503 for a while, no response, a 400 for any body holding a record
 * whose name contains "BAD", a timeout after it had accepted the body, a
 * fixed status), and keeps accepted bodies by Idempotency-Key, ignoring
 * repeats, with a count per event id.
 *  - body format, headers, the idempotency key recomputed here from its
 *    documented definition;
 *  - chunks of sink.batch.max per resource, order kept;
 *  - bisection: the refused records, and only they, are dead letters with
 *    status and response body; the rest is delivered once;
 *  - 5xx / no response / endpoint errors (401, 404, 3xx): EXB_ERR_RETRY,
 *    nothing dead-lettered, the auth header never in a message;
 *  - a failure half way through a batch: the retry re-sends the unconfirmed
 *    body byte for byte (same key) and skips what was delivered, also when
 *    the retried batch is composed differently — every event id is accepted
 *    exactly once; a reassigned partition drops that memory;
 *  - records the receiver could not decode, records too large for
 *    sink.request.max.bytes: dead letters;
 *  - configuration errors.
 * With libcurl against a small socket server in a thread: a 1 MiB error
 * body is kept to 4 KiB, a connection closed without a response and a
 * response slower than sink.timeout.ms are retried, headers arrive.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "exb_conf.h"
#include "exb_schema.h"
#include "exb_sink.h"

#define TOPIC_A "exb.deliver.GJJ.370600-GA-0001"
#define TOPIC_B "exb.deliver.GJJ.370600-MZ-0002"

static char tmp_root[256];

static void tmp_dir(char *out, size_t size, const char *name)
{
        if (!tmp_root[0]) {
                snprintf(tmp_root, sizeof(tmp_root), "/tmp/exb-test-sink-http-XXXXXX");
                if (!mkdtemp(tmp_root))
                        fail_msg("mkdtemp: %s", strerror(errno));
        }
        snprintf(out, size, "%s/%s", tmp_root, name);
        mkdir(out, 0700);
}

/* ----------------------------------------------------------- fake server */

#define MAXC 4096

typedef struct {
        /* script */
        int drop_calls;       /* the first N calls: no response */
        int fail503_calls;    /* the first N calls: 503 */
        int fail_call;        /* this call (1-based): 503 */
        int accept_drop_call; /* this call: accepted, then no response (a timeout) */
        long fixed_status;    /* every call answers this */
        /* what happened */
        int calls;
        char keys[MAXC][65]; /* Idempotency-Key of each call */
        int nrecs[MAXC];     /* records in each call */
        size_t blen[MAXC];   /* body bytes of each call */
        int repeats;         /* accepted bodies sent again */
        int naccepted;
        char accepted[MAXC][65];
        json_t *events; /* event_id -> times accepted in distinct bodies */
        json_t *bodies; /* every body, parsed */
        char auth[256];
        char ctype[128];
} fake_t;

static void fake_init(fake_t *f)
{
        memset(f, 0, sizeof(*f));
        f->events = json_object();
        f->bodies = json_array();
}

static void fake_free(fake_t *f)
{
        json_decref(f->events);
        json_decref(f->bodies);
}

static exb_err_t fake_post(void *opaque, const char *const *headers, const void *body, size_t len,
                           long *status, exb_buf_t *resp, char *errstr, size_t errstr_size)
{
        fake_t *f = opaque;
        int call = ++f->calls;
        assert_true(call < MAXC);
        const char *key = NULL;
        for (int i = 0; headers[i]; i++) {
                if (!strncmp(headers[i], "Idempotency-Key: ", 17))
                        key = headers[i] + 17;
                else if (!strncmp(headers[i], "Authorization:", 14))
                        snprintf(f->auth, sizeof(f->auth), "%s", headers[i]);
                else if (!strncmp(headers[i], "Content-Type:", 13))
                        snprintf(f->ctype, sizeof(f->ctype), "%s", headers[i]);
        }
        assert_non_null(key);
        assert_int_equal(strlen(key), 64);
        snprintf(f->keys[call], 65, "%s", key);
        f->blen[call] = len;
        json_error_t jerr;
        json_t *doc = json_loadb(body, len, 0, &jerr);
        if (!doc)
                fail_msg("body is not JSON: %s", jerr.text);
        json_array_append_new(f->bodies, doc);
        assert_string_equal(json_string_value(json_object_get(doc, "idempotency_key")), key);
        json_t *recs = json_object_get(doc, "records");
        f->nrecs[call] = (int)json_array_size(recs);
        assert_int_equal(json_integer_value(json_object_get(doc, "count")), f->nrecs[call]);

        if (f->fixed_status) {
                *status = f->fixed_status;
                exb_buf_printf(resp, "no");
                return EXB_OK;
        }
        if (call <= f->drop_calls) {
                exb_errf(errstr, errstr_size, "Empty reply from server");
                return EXB_ERR_RETRY;
        }
        if (call <= f->fail503_calls || call == f->fail_call) {
                *status = 503;
                exb_buf_printf(resp, "busy");
                return EXB_OK;
        }
        size_t i;
        json_t *r;
        json_array_foreach(recs, i, r)
        {
                const char *name =
                        json_string_value(json_object_get(json_object_get(r, "data"), "name"));
                if (name && strstr(name, "BAD")) {
                        *status = 400;
                        exb_buf_printf(resp, "{\"error\":\"invalid name\",\"event_id\":\"%s\"}\n",
                                       json_string_value(json_object_get(r, "event_id")));
                        return EXB_OK;
                }
        }
        int seen = 0;
        for (int k = 0; k < f->naccepted; k++)
                seen |= !strcmp(f->accepted[k], key);
        if (seen) {
                f->repeats++;
        } else {
                snprintf(f->accepted[f->naccepted++], 65, "%s", key);
                json_array_foreach(recs, i, r)
                {
                        const char *ev = json_string_value(json_object_get(r, "event_id"));
                        json_int_t n = json_integer_value(json_object_get(f->events, ev));
                        json_object_set_new(f->events, ev, json_integer(n + 1));
                }
        }
        if (call == f->accept_drop_call) {
                exb_errf(errstr, errstr_size, "Operation timed out after 1000 milliseconds");
                return EXB_ERR_RETRY;
        }
        *status = 200;
        exb_buf_printf(resp, "{\"ok\":true}");
        return EXB_OK;
}

static int fake_times(const fake_t *f, const char *event_id)
{
        return (int)json_integer_value(json_object_get(f->events, event_id));
}

/* ---------------------------------------------------------------- batches */

static const exb_field_t fields[] = {
        {"id", NULL, EXB_T_STRING, 0},
        {"name", NULL, EXB_T_STRING, 1},
};

#define MAXR 1300

typedef struct {
        int n;
        exb_sink_rec_t recs[MAXR];
        exb_record_t records[MAXR];
        exb_val_t vals[MAXR][2];
        char ev[MAXR][40];
        char id[MAXR][24];
        char name[MAXR][40];
        int npos;
        exb_sink_pos_t pos[8];
} bt_t;

static exb_schema_t *schema(void)
{
        char err[512] = "";
        exb_schema_t *s = exb_schema_new("R370600_GA_0001_S_000001", fields, 2, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        s->id = 42;
        return s;
}

/* Adds a decoded record; name NULL = "name-<offset>". Returns its index. */
static int bt_add(bt_t *b, const exb_schema_t *s, const char *topic, int32_t part, int64_t off,
                  exb_op_t op, const char *name)
{
        int i = b->n++;
        assert_true(i < MAXR);
        snprintf(b->ev[i], sizeof(b->ev[i]), "ev-%s-%d-%lld", strrchr(topic, '-') + 1, (int)part,
                 (long long)off);
        snprintf(b->id[i], sizeof(b->id[i]), "K%lld", (long long)off);
        if (name)
                snprintf(b->name[i], sizeof(b->name[i]), "%s", name);
        else
                snprintf(b->name[i], sizeof(b->name[i]), "name-%lld", (long long)off);
        b->vals[i][0] = (exb_val_t){.u.s = exb_str(b->id[i])};
        b->vals[i][1] = op == EXB_OP_DELETE ? (exb_val_t){.is_null = 1}
                                            : (exb_val_t){.u.s = exb_str(b->name[i])};
        b->records[i] = (exb_record_t){.op = op,
                                       .event_id = exb_str(b->ev[i]),
                                       .source = EXB_STR("GA"),
                                       .ts_ms = 1768465800000,
                                       .nvals = 2,
                                       .vals = b->vals[i]};
        b->recs[i] = (exb_sink_rec_t){.topic = topic,
                                      .partition = part,
                                      .offset = off,
                                      .key = b->id[i],
                                      .key_len = strlen(b->id[i]),
                                      .value = "\0\0\0\0\x2a",
                                      .len = 5,
                                      .resource = strrchr(topic, '.') + 1,
                                      .schema = s,
                                      .rec = &b->records[i]};
        return i;
}

static void bt_add_dead(bt_t *b, const char *topic, int32_t part, int64_t off, const char *why)
{
        int i = b->n++;
        b->recs[i] = (exb_sink_rec_t){.topic = topic,
                                      .partition = part,
                                      .offset = off,
                                      .key = "junk",
                                      .key_len = 4,
                                      .value = "\x01\x02",
                                      .len = 2,
                                      .resource = strrchr(topic, '.') + 1,
                                      .error = why};
}

static exb_sink_batch_t bt_batch(bt_t *b)
{
        b->npos = 0;
        for (int i = 0; i < b->n; i++) {
                int k;
                for (k = 0; k < b->npos; k++)
                        if (b->pos[k].partition == b->recs[i].partition &&
                            !strcmp(b->pos[k].topic, b->recs[i].topic))
                                break;
                if (k == b->npos)
                        b->pos[b->npos++] =
                                (exb_sink_pos_t){b->recs[i].topic, b->recs[i].partition, 0};
                b->pos[k].next_offset = b->recs[i].offset + 1;
        }
        return (exb_sink_batch_t){b->n, b->recs, b->npos, b->pos};
}

/* ---------------------------------------------------------------- the sink */

typedef struct {
        void *conf;
        void *sink;
        char dir[512];
        fake_t fake;
        char err[2048];
} hs_t;

/* Opens an http sink with "key=value" settings (NULL-terminated); returns
 * NULL with t->err on failure. */
static void *hs_open_kv(hs_t *t, const char *name, const char *const *kv)
{
        memset(t->err, 0, sizeof(t->err));
        t->sink = NULL;
        tmp_dir(t->dir, sizeof(t->dir), name);
        t->conf = calloc(1, exb_sink_http.conf_size);
        exb_conf_defaults(exb_sink_http.props, t->conf);
        for (int i = 0; kv && kv[i]; i++)
                if (exb_conf_set_arg(exb_sink_http.props, t->conf, kv[i], "sink http", t->err,
                                     sizeof(t->err)))
                        return NULL;
        if (exb_conf_check(exb_sink_http.props, t->conf, "sink http", t->err, sizeof(t->err)))
                return NULL;
        exb_sink_env_t env = {.dept = "GJJ", .data_dir = t->dir, .cluster_id = "c1"};
        t->sink = exb_sink_http.open(t->conf, &env, t->err, sizeof(t->err));
        if (t->sink) {
                fake_init(&t->fake);
                exb_sink_http_set_transport(t->sink, fake_post, &t->fake);
        }
        return t->sink;
}

static void hs_close_t(hs_t *t)
{
        if (t->sink) {
                exb_sink_http.close(t->sink);
                fake_free(&t->fake);
        }
        exb_conf_free(exb_sink_http.props, t->conf);
        free(t->conf);
        t->sink = t->conf = NULL;
}

static exb_err_t hs_write_t(hs_t *t, bt_t *b, exb_sink_result_t *res)
{
        exb_sink_batch_t batch = bt_batch(b);
        memset(res, 0, sizeof(*res));
        t->err[0] = '\0';
        return exb_sink_http.write(t->sink, &batch, res, t->err, sizeof(t->err));
}

static int64_t dlq_int(hs_t *t, const char *sql)
{
        char path[700];
        sqlite3 *db;
        sqlite3_stmt *st;
        int64_t v = -1;
        snprintf(path, sizeof(path), "%s/consumer-GJJ-dlq.db", t->dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

static char *dlq_text(hs_t *t, const char *sql)
{
        char path[700];
        sqlite3 *db;
        sqlite3_stmt *st;
        char *v = NULL;
        snprintf(path, sizeof(path), "%s/consumer-GJJ-dlq.db", t->dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                v = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

/* The idempotency key as documented in exb_sink_http.c's header comment. */
static void key_of(const char *dept, const char *resource, const char *const *ids, int n,
                   char out[65])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char md[32];
        char tmp[32];
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(ctx, "exbus-http-v1\n", 14);
        EVP_DigestUpdate(ctx, dept, strlen(dept));
        EVP_DigestUpdate(ctx, "\n", 1);
        EVP_DigestUpdate(ctx, resource, strlen(resource));
        EVP_DigestUpdate(ctx, "\n", 1);
        for (int i = 0; i < n; i++) {
                snprintf(tmp, sizeof(tmp), "%zu:", strlen(ids[i]));
                EVP_DigestUpdate(ctx, tmp, strlen(tmp));
                EVP_DigestUpdate(ctx, ids[i], strlen(ids[i]));
                EVP_DigestUpdate(ctx, ",", 1);
        }
        EVP_DigestFinal_ex(ctx, md, NULL);
        EVP_MD_CTX_free(ctx);
        for (int i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ------------------------------------------------------------------ tests */

static void test_body_and_key(void **state)
{
        (void)state;
        hs_t t;
        static const char *const kv[] = {"sink.url=https://gjj.example.gov.cn/exbus?token=s3cret",
                                         "sink.auth.header=Authorization: Bearer tok-123", NULL};
        if (!hs_open_kv(&t, "body", kv))
                fail_msg("%s", t.err);
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        bt_add(b, s, TOPIC_A, 0, 10, EXB_OP_CREATE, "张三 \"quoted\"\n");
        bt_add(b, s, TOPIC_A, 0, 11, EXB_OP_UPDATE, NULL);
        int d = bt_add(b, s, TOPIC_A, 1, 3, EXB_OP_DELETE, NULL);
        b->recs[d].key = "\xff\xfe";
        b->recs[d].key_len = 2;
        exb_sink_result_t res;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.upserts, 2);
        assert_int_equal(res.deletes, 1);
        assert_int_equal(res.dead_letters, 0);
        assert_int_equal(t.fake.calls, 1);
        assert_string_equal(t.fake.auth, "Authorization: Bearer tok-123");
        assert_string_equal(t.fake.ctype, "Content-Type: application/json; charset=utf-8");

        json_t *doc = json_array_get(t.fake.bodies, 0);
        assert_string_equal(json_string_value(json_object_get(doc, "subscriber")), "GJJ");
        assert_string_equal(json_string_value(json_object_get(doc, "resource")), "370600-GA-0001");
        json_t *recs = json_object_get(doc, "records");
        assert_int_equal(json_array_size(recs), 3);
        json_t *r0 = json_array_get(recs, 0);
        assert_string_equal(json_string_value(json_object_get(r0, "op")), "CREATE");
        assert_string_equal(json_string_value(json_object_get(r0, "event_id")), "ev-0001-0-10");
        assert_string_equal(json_string_value(json_object_get(r0, "source")), "GA");
        assert_int_equal(json_integer_value(json_object_get(r0, "ts_ms")), 1768465800000);
        assert_string_equal(json_string_value(json_object_get(json_object_get(r0, "data"), "name")),
                            "张三 \"quoted\"\n");
        assert_string_equal(json_string_value(json_object_get(json_object_get(r0, "data"), "id")),
                            "K10");
        assert_int_equal(json_integer_value(json_object_get(r0, "schema_id")), 42);
        assert_string_equal(json_string_value(json_object_get(r0, "key")), "K10");
        assert_string_equal(json_string_value(json_object_get(r0, "topic")), TOPIC_A);
        assert_int_equal(json_integer_value(json_object_get(r0, "partition")), 0);
        assert_int_equal(json_integer_value(json_object_get(r0, "offset")), 10);
        json_t *r2 = json_array_get(recs, 2);
        assert_string_equal(json_string_value(json_object_get(r2, "op")), "DELETE");
        assert_true(json_is_null(json_object_get(r2, "key"))); /* not UTF-8 */
        assert_true(json_is_null(json_object_get(json_object_get(r2, "data"), "name")));
        assert_int_equal(json_integer_value(json_object_get(r2, "partition")), 1);

        /* the key, recomputed from its definition */
        const char *ids[] = {"ev-0001-0-10", "ev-0001-0-11", "ev-0001-1-3"};
        char want[65];
        key_of("GJJ", "370600-GA-0001", ids, 3, want);
        assert_string_equal(t.fake.keys[1], want);
        /* same records, same key; another order, another key */
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK); /* guard dropped after EXB_OK */
        assert_string_equal(t.fake.keys[2], want);
        assert_int_equal(t.fake.repeats, 1);
        exb_sink_rec_t tmp = b->recs[0];
        b->recs[0] = b->recs[1];
        b->recs[1] = tmp;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_string_not_equal(t.fake.keys[3], want);
        /* an empty event id counts by its position */
        bt_t *one = calloc(1, sizeof(*one));
        bt_add(one, s, TOPIC_A, 2, 77, EXB_OP_CREATE, NULL);
        one->records[0].event_id = EXB_STR("");
        assert_int_equal(hs_write_t(&t, one, &res), EXB_OK);
        const char *pos[] = {TOPIC_A "/2/77"};
        key_of("GJJ", "370600-GA-0001", pos, 1, want);
        assert_string_equal(t.fake.keys[4], want);

        free(one);
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

static void test_chunks(void **state)
{
        (void)state;
        hs_t t;
        static const char *const kv[] = {"sink.url=http://127.0.0.1:1/in", "sink.batch.max=500",
                                         NULL};
        if (!hs_open_kv(&t, "chunks", kv))
                fail_msg("%s", t.err);
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        for (int i = 0; i < 1200; i++)
                bt_add(b, s, i % 4 == 3 ? TOPIC_B : TOPIC_A, i % 2, i, EXB_OP_CREATE, NULL);
        exb_sink_result_t res;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.upserts, 1200);
        /* 900 of A: 500 + 400, then 300 of B */
        assert_int_equal(t.fake.calls, 3);
        assert_int_equal(t.fake.nrecs[1], 500);
        assert_int_equal(t.fake.nrecs[2], 400);
        assert_int_equal(t.fake.nrecs[3], 300);
        const char *want_res[] = {"370600-GA-0001", "370600-GA-0001", "370600-MZ-0002"};
        int64_t last[2][2] = {{-1, -1}, {-1, -1}};
        for (int c = 0; c < 3; c++) {
                json_t *doc = json_array_get(t.fake.bodies, (size_t)c);
                assert_string_equal(json_string_value(json_object_get(doc, "resource")),
                                    want_res[c]);
                size_t i;
                json_t *r;
                json_array_foreach(json_object_get(doc, "records"), i, r)
                {
                        int isb = c == 2;
                        int p = (int)json_integer_value(json_object_get(r, "partition"));
                        int64_t off = json_integer_value(json_object_get(r, "offset"));
                        assert_string_equal(json_string_value(json_object_get(r, "topic")),
                                            isb ? TOPIC_B : TOPIC_A);
                        assert_true(off > last[isb][p]); /* per-partition order kept */
                        last[isb][p] = off;
                }
        }
        for (int i = 0; i < 1200; i++)
                assert_int_equal(fake_times(&t.fake, b->ev[i]), 1);
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

static void test_bisect(void **state)
{
        (void)state;
        hs_t t;
        static const char *const kv[] = {"sink.url=http://127.0.0.1:1/in", NULL};
        if (!hs_open_kv(&t, "bisect", kv))
                fail_msg("%s", t.err);
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        for (int i = 0; i < 20; i++)
                bt_add(b, s, TOPIC_A, 0, 100 + i, EXB_OP_CREATE,
                       i == 5 || i == 13 ? "name-BAD" : NULL);
        exb_sink_result_t res;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.upserts, 18);
        assert_int_equal(res.dead_letters, 2);
        for (int i = 0; i < 20; i++)
                assert_int_equal(fake_times(&t.fake, b->ev[i]), i == 5 || i == 13 ? 0 : 1);
        /* 20 -> 10+10 -> 5+5 each -> ... : a few POSTs per bad record, not one per record */
        assert_true(t.fake.calls <= 1 + 2 * 2 * 5);
        assert_int_equal(dlq_int(&t, "SELECT count(*) FROM exb_dead_letters"), 2);
        assert_int_equal(dlq_int(&t, "SELECT sum(offset) FROM exb_dead_letters"), 105 + 113);
        char *reason = dlq_text(&t, "SELECT reason FROM exb_dead_letters WHERE offset=105");
        assert_non_null(reason);
        assert_non_null(strstr(reason, "HTTP 400"));
        assert_non_null(strstr(reason, "http://127.0.0.1:1/in"));
        assert_non_null(strstr(reason, "invalid name"));
        assert_non_null(strstr(reason, "ev-0001-0-105"));
        free(reason);
        assert_int_equal(
                dlq_int(&t,
                        "SELECT count(*) FROM exb_dead_letters WHERE CAST(key AS TEXT)='K105' AND "
                        "topic='" TOPIC_A "' AND partition=0 AND length(value)=5"),
                1);
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

static void test_retry(void **state)
{
        (void)state;
        hs_t t;
        static const char *const kv[] = {"sink.url=http://u:pw@127.0.0.1:1/in?k=secret",
                                         "sink.auth.header=Authorization: Bearer tok-123", NULL};
        if (!hs_open_kv(&t, "retry", kv))
                fail_msg("%s", t.err);
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        for (int i = 0; i < 10; i++)
                bt_add(b, s, TOPIC_A, 0, i, EXB_OP_CREATE, NULL);
        exb_sink_result_t res;
        /* no response, then 503: retried, nothing dead-lettered */
        t.fake.drop_calls = 1;
        t.fake.fail503_calls = 2;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_non_null(strstr(t.err, "Empty reply"));
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_non_null(strstr(t.err, "HTTP 503"));
        assert_non_null(strstr(t.err, "http://127.0.0.1:1/in")); /* no user info, no query */
        assert_null(strstr(t.err, "secret"));
        assert_null(strstr(t.err, "pw"));
        assert_null(strstr(t.err, "tok-123"));
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.upserts, 10);
        assert_string_equal(t.fake.keys[1], t.fake.keys[2]);
        assert_string_equal(t.fake.keys[2], t.fake.keys[3]);
        assert_int_equal(dlq_int(&t, "SELECT count(*) FROM exb_dead_letters"), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(fake_times(&t.fake, b->ev[i]), 1);

        /* endpoint errors are not data errors: retried, never dead-lettered */
        static const long endpoint[] = {401, 403, 404, 405, 301, 415};
        for (size_t k = 0; k < EXB_ARRAY_CNT(endpoint); k++) {
                t.fake.fixed_status = endpoint[k];
                assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
                char want[32];
                snprintf(want, sizeof(want), "HTTP %ld", endpoint[k]);
                assert_non_null(strstr(t.err, want));
                assert_null(strstr(t.err, "tok-123"));
        }
        /* 408 and 429 are retried too */
        t.fake.fixed_status = 429;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        t.fake.fixed_status = 408;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        t.fake.fixed_status = 0;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(dlq_int(&t, "SELECT count(*) FROM exb_dead_letters"), 0);
        assert_int_equal(t.fake.repeats, 1); /* the same 10 records, the same key */
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

/* A failure half way through a batch: what was delivered is not sent again,
 * the unconfirmed body is re-sent as is, even if the next batch differs. */
static void test_partial(void **state)
{
        (void)state;
        hs_t t;
        static const char *const kv[] = {"sink.url=http://127.0.0.1:1/in", "sink.batch.max=10",
                                         NULL};
        if (!hs_open_kv(&t, "partial", kv))
                fail_msg("%s", t.err);
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        for (int i = 0; i < 30; i++)
                bt_add(b, s, TOPIC_A, i % 2, i, EXB_OP_CREATE, NULL);
        exb_sink_result_t res;

        /* chunk 1 delivered, chunk 2 accepted by the server but the answer is lost */
        t.fake.accept_drop_call = 2;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_non_null(strstr(t.err, "timed out"));
        /* the retried batch holds more records, interleaved differently */
        bt_t *b2 = calloc(1, sizeof(*b2));
        for (int i = 0; i < 30; i += 2)
                bt_add(b2, s, TOPIC_A, 0, i, EXB_OP_CREATE, NULL);
        for (int i = 1; i < 36; i += 2)
                bt_add(b2, s, TOPIC_A, 1, i, EXB_OP_CREATE, NULL);
        assert_int_equal(hs_write_t(&t, b2, &res), EXB_OK);
        assert_string_equal(t.fake.keys[3], t.fake.keys[2]); /* re-sent as is */
        assert_int_equal(t.fake.repeats, 1);
        assert_int_equal(res.replays, 20); /* chunks 1 and 2 */
        assert_int_equal(res.upserts, 33); /* 10 + 10 before, 13 now */
        for (int i = 0; i < 36; i++) {
                char ev[40];
                snprintf(ev, sizeof(ev), "ev-0001-%d-%d", i % 2, i);
                assert_int_equal(fake_times(&t.fake, ev), i % 2 || i < 30 ? 1 : 0);
        }

        /* a 503 in the middle: same thing, plus a bisect in the next attempt */
        b->n = 0;
        for (int i = 100; i < 130; i++)
                bt_add(b, s, TOPIC_A, 0, i, EXB_OP_CREATE, i == 125 ? "BAD" : NULL);
        int calls0 = t.fake.calls;
        t.fake.fail_call = calls0 + 2;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_string_equal(t.fake.keys[calls0 + 3], t.fake.keys[calls0 + 2]);
        assert_int_equal(res.replays, 20);
        assert_int_equal(res.upserts, 29);
        assert_int_equal(res.dead_letters, 1);
        for (int i = 100; i < 130; i++) {
                char ev[40];
                snprintf(ev, sizeof(ev), "ev-0001-0-%d", i);
                assert_int_equal(fake_times(&t.fake, ev), i == 125 ? 0 : 1);
        }

        /* a partition reassigned in between: its memory is dropped (at-least-once) */
        b->n = 0;
        for (int i = 200; i < 220; i++)
                bt_add(b, s, TOPIC_A, 0, i, EXB_OP_CREATE, NULL);
        calls0 = t.fake.calls;
        t.fake.accept_drop_call = calls0 + 2;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_int_equal(exb_sink_http.offset(t.sink, TOPIC_A, 0, 1000), EXB_OFFSET_STORED);
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.replays, 0);
        assert_int_equal(t.fake.calls, calls0 + 4); /* both chunks again ... */
        assert_int_equal(t.fake.repeats, 3);        /* ... and (same grouping) the same keys */
        assert_int_equal(fake_times(&t.fake, "ev-0001-0-200"), 1);

        free(b);
        free(b2);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

static void test_dead_letters(void **state)
{
        (void)state;
        hs_t t;
        static const char *const kv[] = {"sink.url=http://127.0.0.1:1/in",
                                         "sink.request.max.bytes=1024", NULL};
        if (!hs_open_kv(&t, "dead", kv))
                fail_msg("%s", t.err);
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        static char big[1200];
        memset(big, 'x', sizeof(big) - 1);
        for (int i = 0; i < 12; i++)
                bt_add(b, s, TOPIC_A, 0, i, EXB_OP_CREATE, NULL);
        b->vals[7][1].u.s = exb_str(big);
        bt_add_dead(b, TOPIC_A, 0, 12, "decode: field \"name\" at byte 9: truncated");
        bt_add(b, s, TOPIC_A, 0, 13, EXB_OP_CREATE, NULL);
        exb_sink_result_t res;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.upserts, 12);
        assert_int_equal(res.dead_letters, 2);
        char *r7 = dlq_text(&t, "SELECT reason FROM exb_dead_letters WHERE offset=7");
        assert_non_null(r7);
        assert_non_null(strstr(r7, "sink.request.max.bytes"));
        char *r12 = dlq_text(&t, "SELECT reason FROM exb_dead_letters WHERE offset=12");
        assert_non_null(r12);
        assert_string_equal(r12, "decode: field \"name\" at byte 9: truncated");
        free(r7);
        free(r12);
        /* every body fits the limit; order kept across the splits */
        int64_t last = -1;
        for (int c = 1; c <= t.fake.calls; c++)
                assert_true(t.fake.blen[c] <= 1024);
        for (int c = 1; c <= t.fake.calls; c++) {
                json_t *recs =
                        json_object_get(json_array_get(t.fake.bodies, (size_t)c - 1), "records");
                size_t i;
                json_t *r;
                json_array_foreach(recs, i, r)
                {
                        int64_t off = json_integer_value(json_object_get(r, "offset"));
                        assert_true(off > last);
                        last = off;
                }
        }
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

static void test_conf(void **state)
{
        (void)state;
        hs_t t;
        static const struct {
                const char *kv[4];
                const char *want;
                const char *secret; /* must not appear */
        } bad[] = {
                {{NULL}, "missing required key \"sink.url\"", NULL},
                {{"sink.url=ftp://x/y"}, "\"sink.url\": must start with http:// or https://", NULL},
                {{"sink.url=http://"}, "\"sink.url\": not a valid URL", NULL},
                {{"sink.url=http://x/", "sink.auth.header=Authorization: Bearer topsecret",
                  "sink.auth.header.env=EXB_TEST_AUTH"},
                 "not both",
                 "topsecret"},
                {{"sink.url=http://x/", "sink.auth.header.env=EXB_TEST_UNSET_VAR"},
                 "environment variable EXB_TEST_UNSET_VAR is not set",
                 NULL},
                {{"sink.url=http://x/", "sink.auth.header=Bearer topsecret"},
                 "\"sink.auth.header\": not one header line",
                 "topsecret"},
                {{"sink.url=http://x/", "sink.auth.header.env=EXB_TEST_AUTH_CRLF"},
                 "\"sink.auth.header.env\": not one header line",
                 "topsecret"},
                {{"sink.url=https://x/", "sink.tls.cert.file=/etc/hostname"}, "go together", NULL},
                {{"sink.url=https://x/", "sink.tls.ca.file=/nonexistent/ca.pem"},
                 "\"sink.tls.ca.file\": cannot read /nonexistent/ca.pem",
                 NULL},
                {{"sink.url=http://x/", "sink.batch.max=0"}, "out of range 1..100000", NULL},
                {{"sink.url=http://x/", "sink.tls.verify=maybe"}, "sink.tls.verify", NULL},
                {{"sink.url=http://x/", "sink.timeout=5"}, "unknown key \"sink.timeout\"", NULL},
        };
        setenv("EXB_TEST_AUTH_CRLF", "X-Token: topsecret\r\nX-Injected: 1", 1);
        for (size_t i = 0; i < EXB_ARRAY_CNT(bad); i++) {
                char name[32];
                snprintf(name, sizeof(name), "conf%zu", i);
                assert_null(hs_open_kv(&t, name, bad[i].kv));
                if (!strstr(t.err, bad[i].want))
                        fail_msg("case %zu: got \"%s\", want \"%s\"", i, t.err, bad[i].want);
                if (bad[i].secret && strstr(t.err, bad[i].secret))
                        fail_msg("case %zu: the secret is in the message: %s", i, t.err);
                hs_close_t(&t);
        }
        /* from the environment */
        setenv("EXB_TEST_AUTH", "Authorization: Bearer from-env", 1);
        static const char *const kv[] = {"sink.url=http://x/", "sink.auth.header.env=EXB_TEST_AUTH",
                                         NULL};
        if (!hs_open_kv(&t, "conf-env", kv))
                fail_msg("%s", t.err);
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        bt_add(b, s, TOPIC_A, 0, 0, EXB_OP_CREATE, NULL);
        exb_sink_result_t res;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_string_equal(t.fake.auth, "Authorization: Bearer from-env");
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

/* ------------------------------------------- libcurl against a socket server */

typedef enum { SRV_OK, SRV_BIG400, SRV_CLOSE, SRV_SLOW } srv_mode_t;

typedef struct {
        int fd;
        int port;
        volatile srv_mode_t mode;
        volatile int stop;
        char headers[4096]; /* of the last request */
        size_t body_len;
        pthread_t th;
} srv_t;

static void *srv_main(void *opaque)
{
        srv_t *sv = opaque;
        while (!sv->stop) {
                int c = accept(sv->fd, NULL, NULL);
                if (c < 0)
                        continue;
                char buf[65536];
                size_t got = 0;
                char *end = NULL;
                ssize_t n;
                while (!end && got < sizeof(buf) - 1 &&
                       (n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0) {
                        got += (size_t)n;
                        buf[got] = '\0';
                        end = strstr(buf, "\r\n\r\n");
                }
                if (!end) {
                        close(c);
                        continue;
                }
                size_t hlen = (size_t)(end - buf) + 4;
                snprintf(sv->headers, sizeof(sv->headers), "%.*s", (int)hlen, buf);
                const char *cl = strcasestr(sv->headers, "Content-Length:");
                size_t want = cl ? (size_t)atol(cl + 15) : 0, have = got - hlen;
                while (have < want && (n = read(c, buf, sizeof(buf))) > 0)
                        have += (size_t)n;
                sv->body_len = have;
                if (sv->mode == SRV_CLOSE) {
                        close(c);
                        continue;
                }
                if (sv->mode == SRV_SLOW)
                        usleep(3000 * 1000);
                if (sv->mode == SRV_BIG400) {
                        size_t big = 1 << 20;
                        char hdr[256];
                        int k = snprintf(hdr, sizeof(hdr),
                                         "HTTP/1.1 400 Bad Request\r\nContent-Length: %zu\r\n"
                                         "Connection: close\r\n\r\n",
                                         big);
                        if (send(c, hdr, (size_t)k, MSG_NOSIGNAL) < 0) {
                                close(c);
                                continue;
                        }
                        char chunk[4096];
                        memset(chunk, 'E', sizeof(chunk));
                        memcpy(chunk, "bad record\x01\xff", 12);
                        for (size_t off = 0; off < big; off += sizeof(chunk))
                                if (send(c, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
                                        break;
                } else {
                        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                                 "Connection: close\r\n\r\nok";
                        if (send(c, ok, sizeof(ok) - 1, MSG_NOSIGNAL) < 0) {
                                close(c);
                                continue;
                        }
                }
                close(c);
        }
        return NULL;
}

static void srv_start(srv_t *sv)
{
        memset(sv, 0, sizeof(*sv));
        sv->fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(sv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(sv->fd, (struct sockaddr *)&a, sizeof(a)), 0);
        socklen_t alen = sizeof(a);
        getsockname(sv->fd, (struct sockaddr *)&a, &alen);
        sv->port = ntohs(a.sin_port);
        assert_int_equal(listen(sv->fd, 8), 0);
        struct timeval tv = {0, 200000}; /* accept wakes up to see stop */
        setsockopt(sv->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        assert_int_equal(pthread_create(&sv->th, NULL, srv_main, sv), 0);
}

static void srv_stop(srv_t *sv)
{
        sv->stop = 1;
        pthread_join(sv->th, NULL);
        close(sv->fd);
}

static void test_curl(void **state)
{
        (void)state;
        srv_t sv;
        srv_start(&sv);
        hs_t t;
        char url[128];
        snprintf(url, sizeof(url), "sink.url=http://127.0.0.1:%d/exbus/in", sv.port);
        const char *kv[] = {url, "sink.timeout.ms=2000", "sink.auth.header=X-Api-Key: k-42", NULL};
        if (!hs_open_kv(&t, "curl", kv))
                fail_msg("%s", t.err);
        exb_sink_http_set_transport(t.sink, NULL, NULL); /* libcurl */
        exb_schema_t *s = schema();
        bt_t *b = calloc(1, sizeof(*b));
        bt_add(b, s, TOPIC_A, 0, 0, EXB_OP_CREATE, NULL);
        exb_sink_result_t res;

        sv.mode = SRV_OK;
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.upserts, 1);
        assert_non_null(strstr(sv.headers, "POST /exbus/in HTTP/1.1\r\n"));
        assert_non_null(strstr(sv.headers, "\r\nX-Api-Key: k-42\r\n"));
        assert_non_null(strstr(sv.headers, "\r\nIdempotency-Key: "));
        assert_non_null(
                strstr(sv.headers, "\r\nContent-Type: application/json; charset=utf-8\r\n"));
        assert_null(strstr(sv.headers, "Expect:"));
        assert_true(sv.body_len > 100);

        sv.mode = SRV_CLOSE; /* dropped without a response */
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_non_null(strstr(t.err, "POST of 1 record(s)"));
        assert_null(strstr(t.err, "k-42"));

        sv.mode = SRV_SLOW; /* slower than sink.timeout.ms */
        int64_t t0 = exb_mono_ms();
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_true(exb_mono_ms() - t0 < 2900);
        assert_non_null(strstr(t.err, "imed out"));
        usleep(1500 * 1000); /* the server is still sleeping on that one */

        sv.mode = SRV_BIG400; /* 1 MiB error body: 4 KiB kept */
        assert_int_equal(hs_write_t(&t, b, &res), EXB_OK);
        assert_int_equal(res.dead_letters, 1);
        char *reason = dlq_text(&t, "SELECT reason FROM exb_dead_letters WHERE offset=0");
        assert_non_null(reason);
        assert_non_null(strstr(reason, "HTTP 400"));
        assert_non_null(strstr(reason, "bad record??EEE")); /* controls, bad UTF-8 -> '?' */
        assert_non_null(strstr(reason, "truncated to 4 KiB"));
        assert_true(strlen(reason) < 4096 + 300);
        free(reason);
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
        srv_stop(&sv);

        /* nothing listening */
        static const char *const kv2[] = {"sink.url=http://127.0.0.1:1/", NULL};
        if (!hs_open_kv(&t, "curl-refused", kv2))
                fail_msg("%s", t.err);
        exb_sink_http_set_transport(t.sink, NULL, NULL);
        s = schema();
        b = calloc(1, sizeof(*b));
        bt_add(b, s, TOPIC_A, 0, 0, EXB_OP_CREATE, NULL);
        assert_int_equal(hs_write_t(&t, b, &res), EXB_ERR_RETRY);
        assert_non_null(strstr(t.err, "127.0.0.1"));
        free(b);
        exb_schema_destroy(s);
        hs_close_t(&t);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN); /* as `exbus` does: a peer that hung up is an error, not a kill */
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_body_and_key), cmocka_unit_test(test_chunks),
                cmocka_unit_test(test_bisect),       cmocka_unit_test(test_retry),
                cmocka_unit_test(test_partial),      cmocka_unit_test(test_dead_letters),
                cmocka_unit_test(test_conf),         cmocka_unit_test(test_curl),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        if (tmp_root[0] && !getenv("EXB_TEST_KEEP")) {
                char cmd[400];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
                if (system(cmd) != 0)
                        fprintf(stderr, "could not remove %s\n", tmp_root);
        }
        return r;
}
