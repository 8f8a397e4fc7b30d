/*
 * exb_sink_http.c — the HTTP sink (`sink.type = http`): delivered records
 * are POSTed as JSON batches to the subscribing department's service, with
 * libcurl (see exb_sink.h for the sink contract).
 *
 * Request. One POST per chunk: the receiver's batch (batch.size) is split
 * per resource, in consumption order, into chunks of at most sink.batch.max
 * records and sink.request.max.bytes bytes of body.
 *
 *   POST <sink.url>
 *   Content-Type: application/json; charset=utf-8
 *   Idempotency-Key: <key>
 *   <sink.auth.header, if set>
 *
 *   {"subscriber": "GJJ",                     department code (data.dir's dept)
 *    "resource": "370600-GA-0001",            every record of a body is of one resource
 *    "idempotency_key": "<key>",              the same as the header
 *    "count": 2,
 *    "records": [
 *      {"op": "CREATE",                       CREATE|UPDATE|SNAPSHOT = upsert by key,
 *                                             DELETE = delete by key (data: key items only)
 *       "event_id": "...", "source": "GA",    stable per source change: drop repeats by it
 *       "ts_ms": 1768465800000,               change time, ms since the epoch
 *       "data": {"id_number": "...", ...},    approved items; D "YYYY-MM-DD", T ISO-8601 UTC,
 *                                             B base64, N a JSON number (exb_codec_to_json)
 *       "schema_id": 42,                      delivery schema (exb.control offset)
 *       "key": "370602...",                   Kafka key: key items joined by '|' (or null)
 *       "topic": "exb.deliver.GJJ.370600-GA-0001", "partition": 0, "offset": 17},
 *      ...]}
 *
 * Records of one partition keep their order within a body and across
 * bodies (per-key order is preserved: a key always maps to one partition).
 *
 * Idempotency key: lowercase hex SHA-256 of
 *   "exbus-http-v1\n" <subscriber> "\n" <resource> "\n"
 * followed, for each record in body order, by the netstring
 *   <decimal length> ":" <event_id> ","
 * (a record with an empty event_id contributes "<topic>/<partition>/<offset>"
 * instead). The same records in the same order always give the same key,
 * so the service can drop a body it has already accepted; it should also
 * drop records by event_id, which covers the rare re-send in a different
 * grouping (below).
 *
 * Outcome of a POST:
 *   2xx                  delivered.
 *   5xx, 408, 429,       not delivered, or not known to be: write() returns
 *   no response          EXB_ERR_RETRY and the receiver pauses consumption,
 *   (refused, dropped,   backs off (exponential, with jitter) and offers the
 *   timeout, TLS)        records again. Nothing is committed.
 *   401, 403, 404, 405,  the endpoint or the credentials are wrong, not the
 *   407, 410, 415, 421,  records: retried the same way (logged as an error),
 *   426, 3xx, other      never dead-lettered — a wrong URL or an expired
 *                        token must not dead-letter the whole stream.
 *   other 4xx            a data error: the chunk is split in halves and each
 *   (400, 409, 413,      half POSTed again (bisection) until the refused
 *   422, ...)            records stand alone; each goes to the local
 *                        dead-letter store (data.dir/consumer-<dept>-dlq.db,
 *                        exb_dead_letters, exb_sink_int.h) with the status
 *                        and the first 4 KiB of the response body, and the
 *                        rest is delivered. A single record whose body alone
 *                        exceeds sink.request.max.bytes is dead-lettered too,
 *                        as are the records the receiver could not decode.
 *
 * Progress inside a batch. The contract is all or nothing, but a batch of
 * several POSTs can fail half way. The sink remembers, per partition, the
 * offset below which every record of the batch was handled (delivered or
 * dead-lettered) — the guard — and the exact body of a POST whose outcome is
 * unknown (retryable failure) — the pending body. The next write() first
 * re-sends the pending body byte for byte (same Idempotency-Key), then skips
 * what the guard covers (counted as replays). So a service that keys on
 * Idempotency-Key sees every record in exactly one accepted body, even when
 * the failure was a timeout after it had accepted the body. Both live in
 * memory only and are dropped for a partition when it is (re)assigned
 * (offset(): another instance may have delivered it meanwhile, or the topic
 * was recreated); after a restart or a rebalance delivery is at-least-once
 * and the service's event_id check removes repeats. A pending body that is
 * refused with a data error (4xx) is dropped and its records are
 * re-chunked from the current batch.
 *
 * Offsets: none stored here (offset() returns EXB_OFFSET_STORED): the
 * receiver commits Kafka offsets only after write() returned EXB_OK, i.e.
 * after every record of the batch got a 2xx or a dead-letter row.
 *
 * Response bodies are untrusted: at most 4 KiB is kept (the curl write
 * callback drops the rest; reading is bounded by sink.timeout.ms) and it is
 * rendered printable (controls and invalid UTF-8 become '?') before it goes
 * into a reason or a log line. The auth header is never logged, and URLs
 * in messages lose their user info and query string.
 */
#include "exb_codec.h"
#include "exb_sink.h"
#include "exb_sink_int.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HS_RESP_KEEP 4096 /* response bytes kept for reasons and logs */
#define HS_LOG_BODY  200  /* of which a log line shows this many */

typedef struct hs_conf_s {
        char *url;
        int batch_max;
        int request_max_bytes;
        int connect_timeout_ms;
        int timeout_ms;
        char *ca_file;
        char *cert_file;
        char *key_file;
        int verify;
        char *auth_header;
        char *auth_header_env;
} hs_conf_t;

static const exb_prop_t hs_props[] = {
        {"sink.url", EXB_PROP_STR, offsetof(hs_conf_t, url), NULL, NULL,
         "http: the department's endpoint (http:// or https://); every batch is POSTed to it as "
         "JSON.",
         1},
        {"sink.batch.max", EXB_PROP_INT, offsetof(hs_conf_t, batch_max), "1..100000", "500",
         "http: most records in one POST (a receiver batch of batch.size records is split into "
         "several)."},
        {"sink.request.max.bytes", EXB_PROP_INT, offsetof(hs_conf_t, request_max_bytes),
         "1024..1073741824", "8388608",
         "http: largest request body; bigger chunks are split, a single record above it is "
         "dead-lettered."},
        {"sink.connect.timeout.ms", EXB_PROP_INT, offsetof(hs_conf_t, connect_timeout_ms),
         "1..600000", "5000", "http: connection (TCP and TLS handshake) timeout."},
        {"sink.timeout.ms", EXB_PROP_INT, offsetof(hs_conf_t, timeout_ms), "1..3600000", "30000",
         "http: whole-request timeout; a request that takes longer is retried (same body, same "
         "Idempotency-Key)."},
        {"sink.tls.ca.file", EXB_PROP_STR, offsetof(hs_conf_t, ca_file), NULL, NULL,
         "http: PEM file of the CA certificates that sign the service's certificate (default: "
         "the system's)."},
        {"sink.tls.cert.file", EXB_PROP_STR, offsetof(hs_conf_t, cert_file), NULL, NULL,
         "http: PEM client certificate, for services that require mutual TLS."},
        {"sink.tls.key.file", EXB_PROP_STR, offsetof(hs_conf_t, key_file), NULL, NULL,
         "http: PEM private key of sink.tls.cert.file."},
        {"sink.tls.verify", EXB_PROP_BOOL, offsetof(hs_conf_t, verify), NULL, "true",
         "http: verify the service's certificate and host name. false is for tests only."},
        {"sink.auth.header", EXB_PROP_STR, offsetof(hs_conf_t, auth_header), NULL, NULL,
         "http: a header sent with every request, e.g. \"Authorization: Bearer ...\" (never "
         "logged). Prefer sink.auth.header.env."},
        {"sink.auth.header.env", EXB_PROP_STR, offsetof(hs_conf_t, auth_header_env), NULL, NULL,
         "http: name of an environment variable that holds that header line."},
        {NULL}};

/* A partition and the offset below which its records are handled. */
typedef struct hs_mark_s {
        char *topic;
        int32_t partition;
        int64_t next;
} hs_mark_t;

typedef struct hs_marks_s {
        int cnt;
        hs_mark_t *v;
} hs_marks_t;

/* The body of a POST whose outcome is unknown. */
typedef struct hs_pending_s {
        int active;
        exb_buf_t body;
        char key[65];
        int nrecs;
        uint64_t upserts, deletes;
        hs_marks_t parts; /* its records' partitions and last offset + 1 */
} hs_pending_t;

typedef struct hs_sink_s {
        const hs_conf_t *conf;
        char *dept;
        char *url_safe; /* for messages: no user info, no query */
        char *auth;     /* header line, never logged */
        CURL *curl;
        char curl_err[CURL_ERROR_SIZE];
        exb_sink_http_post_fn post;
        void *post_opaque;
        exb_sink_dlq_t *dlq;
        exb_buf_t body, resp;
        hs_marks_t guard;
        hs_pending_t pending;
        exb_sink_result_t done; /* handled in this and earlier failed attempts */
        int cap;                /* of idx, chunk */
        int *idx;
        char *taken;
        const exb_sink_rec_t **chunk;
} hs_sink_t;

/* ------------------------------------------------------------ utilities */

/* Length of the valid UTF-8 sequence at p (NUL excluded), or 0. */
static size_t hs_utf8_seq(const uint8_t *p, size_t left)
{
        uint8_t c = p[0];
        size_t n;
        uint32_t cp;
        if (c == 0)
                return 0;
        if (c < 0x80)
                return 1;
        if ((c & 0xe0) == 0xc0) {
                n = 2;
                cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
                n = 3;
                cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
                n = 4;
                cp = c & 0x07;
        } else {
                return 0;
        }
        if (left < n)
                return 0;
        for (size_t k = 1; k < n; k++) {
                if ((p[k] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[k] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

static int hs_utf8_valid(const void *s, size_t len)
{
        const uint8_t *p = s;
        for (size_t i = 0, n; i < len; i += n)
                if (!(n = hs_utf8_seq(p + i, len - i)))
                        return 0;
        return 1;
}

/* Appends a JSON string of valid UTF-8 bytes. */
static int hs_json_str(exb_buf_t *b, const char *s, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        int r = exb_buf_putc(b, '"');
        for (size_t i = 0; !r && i < len; i++) {
                uint8_t c = (uint8_t)s[i];
                if (c == '"' || c == '\\') {
                        r = exb_buf_putc(b, '\\') || exb_buf_putc(b, c);
                } else if (c < 0x20) {
                        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                        r = exb_buf_append(b, esc, sizeof(esc));
                } else {
                        r = exb_buf_putc(b, c);
                }
        }
        return r || exb_buf_putc(b, '"');
}

/* Copies at most max bytes of untrusted text into out (size > max), with
 * control characters and invalid UTF-8 as '?'. */
static void hs_printable(const void *src, size_t len, size_t max, char *out)
{
        const uint8_t *p = src;
        size_t o = 0;
        for (size_t i = 0; i < len && o < max;) {
                size_t n = hs_utf8_seq(p + i, len - i);
                if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
                        out[o++] = (n == 1 && (p[i] == '\n' || p[i] == '\t')) ? ' ' : '?';
                        i++;
                } else if (o + n <= max) {
                        memcpy(out + o, p + i, n);
                        o += n;
                        i += n;
                } else {
                        break;
                }
        }
        out[o] = '\0';
}

/* scheme://host[:port]/path of url, for messages (no credentials, no
 * query). Returns a new string. */
static char *hs_url_safe(const char *url)
{
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *out = NULL;
        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
                curl_url_get(u, CURLUPART_PORT, &port, 0);
                curl_url_get(u, CURLUPART_PATH, &path, 0);
                size_t n = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) +
                           (path ? strlen(path) : 0) + 8;
                out = exb_calloc(1, n);
                snprintf(out, n, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
                         path ? path : "");
        }
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_free(path);
        curl_url_cleanup(u);
        return out ? out : exb_strdup("(url)");
}

/* ---------------------------------------------------------------- marks */

static hs_mark_t *hs_mark_find(hs_marks_t *m, const char *topic, int32_t partition)
{
        for (int i = 0; i < m->cnt; i++)
                if (m->v[i].partition == partition && !strcmp(m->v[i].topic, topic))
                        return &m->v[i];
        return NULL;
}

/* Raises the partition's mark to next (adding it). */
static void hs_mark_raise(hs_marks_t *m, const char *topic, int32_t partition, int64_t next)
{
        hs_mark_t *k = hs_mark_find(m, topic, partition);
        if (!k) {
                m->v = exb_realloc(m->v, sizeof(*m->v) * (size_t)(m->cnt + 1));
                k = &m->v[m->cnt++];
                *k = (hs_mark_t){exb_strdup(topic), partition, next};
        } else if (next > k->next) {
                k->next = next;
        }
}

static void hs_mark_drop(hs_marks_t *m, const char *topic, int32_t partition)
{
        hs_mark_t *k = hs_mark_find(m, topic, partition);
        if (k) {
                free(k->topic);
                *k = m->v[--m->cnt];
        }
}

static void hs_marks_clear(hs_marks_t *m)
{
        for (int i = 0; i < m->cnt; i++)
                free(m->v[i].topic);
        free(m->v);
        m->v = NULL;
        m->cnt = 0;
}

static void hs_pending_drop(hs_sink_t *sk)
{
        sk->pending.active = 0;
        exb_buf_reset(&sk->pending.body);
        hs_marks_clear(&sk->pending.parts);
}

/* ----------------------------------------------------------- body, key */

static int hs_rec_decoded(const exb_sink_rec_t *r)
{
        return !r->error && r->rec && r->schema && r->resource;
}

/* Hex SHA-256 idempotency key of recs (see the header comment). */
static void hs_idem_key(const char *dept, const char *resource, const exb_sink_rec_t *const *recs,
                        int n, char out[65])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        char tmp[64];
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
                EXB_ERROR("http sink: SHA-256 unavailable");
                abort();
        }
        EVP_DigestUpdate(ctx, "exbus-http-v1\n", 14);
        EVP_DigestUpdate(ctx, dept, strlen(dept));
        EVP_DigestUpdate(ctx, "\n", 1);
        EVP_DigestUpdate(ctx, resource, strlen(resource));
        EVP_DigestUpdate(ctx, "\n", 1);
        for (int i = 0; i < n; i++) {
                const exb_sink_rec_t *r = recs[i];
                char pos[320];
                const char *id = r->rec->event_id.p;
                size_t len = r->rec->event_id.len;
                if (!len) {
                        snprintf(pos, sizeof(pos), "%s/%d/%" PRId64, r->topic, (int)r->partition,
                                 r->offset);
                        id = pos;
                        len = strlen(pos);
                }
                int k = snprintf(tmp, sizeof(tmp), "%zu:", len);
                EVP_DigestUpdate(ctx, tmp, (size_t)k);
                EVP_DigestUpdate(ctx, id, len);
                EVP_DigestUpdate(ctx, ",", 1);
        }
        EVP_DigestFinal_ex(ctx, md, &mdlen);
        EVP_MD_CTX_free(ctx);
        for (unsigned int i = 0; i < mdlen && i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
        out[64] = '\0';
}

/* Builds the body of recs into sk->body. Returns 0, or -1 if it exceeds
 * sink.request.max.bytes. */
static int hs_body(hs_sink_t *sk, const char *resource, const exb_sink_rec_t *const *recs, int n,
                   const char *key)
{
        exb_buf_t *b = &sk->body;
        exb_buf_reset(b);
        int r = exb_buf_append(b, "{\"subscriber\":", 14) ||
                hs_json_str(b, sk->dept, strlen(sk->dept)) ||
                exb_buf_append(b, ",\"resource\":", 12) ||
                hs_json_str(b, resource, strlen(resource)) ||
                exb_buf_printf(b, ",\"idempotency_key\":\"%s\",\"count\":%d,\"records\":[", key, n);
        for (int i = 0; !r && i < n; i++) {
                const exb_sink_rec_t *x = recs[i];
                r = (i && exb_buf_putc(b, ',')) || exb_codec_to_json(x->schema, x->rec, b);
                if (r)
                        break;
                b->len--; /* reopen the record object: drop its final '}' */
                r = exb_buf_printf(b, ",\"schema_id\":%d,\"key\":", (int)x->schema->id);
                if (!r && x->key && hs_utf8_valid(x->key, x->key_len))
                        r = hs_json_str(b, x->key, x->key_len);
                else if (!r)
                        r = exb_buf_append(b, "null", 4);
                r = r || exb_buf_append(b, ",\"topic\":", 9) ||
                    hs_json_str(b, x->topic, strlen(x->topic)) ||
                    exb_buf_printf(b, ",\"partition\":%d,\"offset\":%" PRId64 "}",
                                   (int)x->partition, x->offset);
        }
        return r || exb_buf_append(b, "]}", 2) ? -1 : 0;
}

/* ------------------------------------------------------------ transport */

static size_t hs_curl_body(char *p, size_t size, size_t nmemb, void *opaque)
{
        exb_buf_t *b = opaque;
        size_t n = size * nmemb;
        size_t room = b->max > b->len ? b->max - b->len : 0;
        if (room)
                exb_buf_append(b, p, n < room ? n : room);
        return n; /* the rest is dropped: memory stays bounded */
}

static exb_err_t hs_curl_post(void *opaque, const char *const *headers, const void *body,
                              size_t len, long *status, exb_buf_t *resp, char *errstr,
                              size_t errstr_size)
{
        hs_sink_t *sk = opaque;
        struct curl_slist *h = NULL, *t;
        for (int i = 0; headers[i]; i++) {
                if (!(t = curl_slist_append(h, headers[i])))
                        goto oom;
                h = t;
        }
        if (!(t = curl_slist_append(h, "Expect:"))) /* no 100-continue round trip */
                goto oom;
        h = t;
        curl_easy_setopt(sk->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(sk->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(sk->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(sk->curl, CURLOPT_WRITEDATA, resp);
        sk->curl_err[0] = '\0';
        CURLcode rc = curl_easy_perform(sk->curl);
        curl_easy_setopt(sk->curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
        if (rc != CURLE_OK) {
                exb_errf(errstr, errstr_size, "%s",
                         sk->curl_err[0] ? sk->curl_err : curl_easy_strerror(rc));
                return EXB_ERR_RETRY;
        }
        *status = 0;
        curl_easy_getinfo(sk->curl, CURLINFO_RESPONSE_CODE, status);
        return EXB_OK;
oom:
        curl_slist_free_all(h);
        exb_errf(errstr, errstr_size, "out of memory building the request headers");
        return EXB_ERR_RETRY;
}

void exb_sink_http_set_transport(void *sink, exb_sink_http_post_fn fn, void *opaque)
{
        hs_sink_t *sk = sink;
        sk->post = fn ? fn : hs_curl_post;
        sk->post_opaque = fn ? opaque : sk;
}

typedef enum { HS_DELIVERED, HS_RETRY, HS_ENDPOINT, HS_REJECTED } hs_outcome_t;

static hs_outcome_t hs_classify(long status)
{
        if (status >= 200 && status <= 299)
                return HS_DELIVERED;
        if (status == 408 || status == 429 || (status >= 500 && status <= 599))
                return HS_RETRY;
        switch (status) {
        case 401: /* credentials */
        case 403:
        case 407:
        case 404: /* the URL */
        case 405:
        case 410:
        case 421:
        case 415: /* the protocol */
        case 426:
                return HS_ENDPOINT;
        }
        if (status >= 400 && status <= 499)
                return HS_REJECTED;
        return HS_ENDPOINT; /* 1xx, 3xx (redirects are not followed), nonsense */
}

typedef struct hs_result_s {
        exb_err_t err; /* EXB_OK: a status came */
        long status;
        hs_outcome_t outcome;
} hs_result_t;

/* POSTs sk->body with key. errstr is filled for anything but a 2xx. */
static hs_result_t hs_send(hs_sink_t *sk, const exb_buf_t *body, const char *key, int nrecs,
                           char *errstr, size_t errstr_size)
{
        char idem[96];
        snprintf(idem, sizeof(idem), "Idempotency-Key: %s", key);
        const char *headers[] = {"Content-Type: application/json; charset=utf-8", idem, sk->auth,
                                 NULL};
        hs_result_t res = {EXB_OK, 0, HS_RETRY};
        char err[CURL_ERROR_SIZE + 64] = "";
        exb_buf_reset(&sk->resp);
        res.err = sk->post(sk->post_opaque, headers, body->p, body->len, &res.status, &sk->resp,
                           err, sizeof(err));
        if (res.err != EXB_OK) {
                res.err = EXB_ERR_RETRY;
                exb_errf(errstr, errstr_size, "http sink %s: POST of %d record(s): %s",
                         sk->url_safe, nrecs, err[0] ? err : "no response");
                return res;
        }
        res.outcome = hs_classify(res.status);
        if (res.outcome != HS_DELIVERED) {
                char text[HS_LOG_BODY + 8];
                hs_printable(sk->resp.p, sk->resp.len, HS_LOG_BODY, text);
                exb_errf(errstr, errstr_size, "http sink %s: POST of %d record(s): HTTP %ld%s%s%s",
                         sk->url_safe, nrecs, res.status,
                         res.outcome == HS_ENDPOINT ? " (check sink.url and the credentials)" : "",
                         text[0] ? ": " : "", text);
        }
        return res;
}

/* ------------------------------------------------------------- delivery */

static void hs_count(exb_sink_result_t *acc, const exb_sink_rec_t *r)
{
        if (r->rec->op == EXB_OP_DELETE)
                acc->deletes++;
        else
                acc->upserts++;
}

static exb_err_t hs_dead(hs_sink_t *sk, const exb_sink_rec_t *r, const char *reason, char *errstr,
                         size_t errstr_size)
{
        char err[512];
        if (exb_sink_dlq_add(sk->dlq, r, reason, err, sizeof(err))) {
                exb_errf(errstr, errstr_size, "http sink: dead-letter store: %s", err);
                return EXB_ERR_RETRY;
        }
        EXB_DEBUG("http sink: dead letter %s [%d] @%" PRId64 ": %s", r->topic, (int)r->partition,
                  r->offset, reason);
        hs_mark_raise(&sk->guard, r->topic, r->partition, r->offset + 1);
        sk->done.dead_letters++;
        return EXB_OK;
}

/* Keeps the body just sent as the pending one (its outcome is unknown). */
static void hs_pending_keep(hs_sink_t *sk, const exb_sink_rec_t *const *recs, int n,
                            const char *key)
{
        hs_pending_t *pd = &sk->pending;
        hs_pending_drop(sk);
        exb_buf_append(&pd->body, sk->body.p, sk->body.len); /* same max as sk->body */
        memcpy(pd->key, key, 65);
        pd->nrecs = n;
        pd->upserts = pd->deletes = 0;
        for (int i = 0; i < n; i++) {
                hs_mark_raise(&pd->parts, recs[i]->topic, recs[i]->partition, recs[i]->offset + 1);
                if (recs[i]->rec->op == EXB_OP_DELETE)
                        pd->deletes++;
                else
                        pd->upserts++;
        }
        pd->active = 1;
}

/* Delivers recs (decoded, one resource, handled nowhere yet), bisecting on
 * data errors. EXB_OK when each record is delivered or dead-lettered. */
static exb_err_t hs_deliver(hs_sink_t *sk, const char *resource, const exb_sink_rec_t **recs, int n,
                            char *errstr, size_t errstr_size)
{
        char key[65];
        hs_idem_key(sk->dept, resource, recs, n, key);
        if (hs_body(sk, resource, recs, n, key)) {
                if (n > 1)
                        goto split;
                char reason[256];
                snprintf(reason, sizeof(reason),
                         "http: record too large: its request body exceeds "
                         "sink.request.max.bytes (%d)",
                         sk->conf->request_max_bytes);
                return hs_dead(sk, recs[0], reason, errstr, errstr_size);
        }
        hs_result_t res = hs_send(sk, &sk->body, key, n, errstr, errstr_size);
        if (res.err == EXB_OK && res.outcome == HS_DELIVERED) {
                for (int i = 0; i < n; i++) {
                        hs_mark_raise(&sk->guard, recs[i]->topic, recs[i]->partition,
                                      recs[i]->offset + 1);
                        hs_count(&sk->done, recs[i]);
                }
                return EXB_OK;
        }
        if (res.err != EXB_OK || res.outcome != HS_REJECTED) {
                hs_pending_keep(sk, recs, n, key);
                if (res.outcome == HS_ENDPOINT)
                        EXB_ERROR("%s", errstr);
                return EXB_ERR_RETRY;
        }
        if (n > 1) {
                EXB_INFO("%s: splitting the batch to find the refused record(s)", errstr);
                goto split;
        }
        /* One record refused: a dead letter with the status and the response. */
        char text[HS_RESP_KEEP + 8], reason[HS_RESP_KEEP + 600];
        hs_printable(sk->resp.p, sk->resp.len, HS_RESP_KEEP, text);
        snprintf(reason, sizeof(reason), "http: HTTP %ld from %s: %s%s", res.status, sk->url_safe,
                 text[0] ? text : "(empty response)",
                 sk->resp.len > HS_RESP_KEEP ? " [response truncated to 4 KiB]" : "");
        EXB_WARN("http sink %s: %s [%d] @%" PRId64 " refused (HTTP %ld): dead-lettered",
                 sk->url_safe, recs[0]->topic, (int)recs[0]->partition, recs[0]->offset,
                 res.status);
        return hs_dead(sk, recs[0], reason, errstr, errstr_size);
split:;
        exb_err_t e = hs_deliver(sk, resource, recs, n / 2, errstr, errstr_size);
        if (e != EXB_OK)
                return e;
        return hs_deliver(sk, resource, recs + n / 2, n - n / 2, errstr, errstr_size);
}

/* Re-sends the pending body. EXB_OK when it is no longer pending. */
static exb_err_t hs_pending_flush(hs_sink_t *sk, char *errstr, size_t errstr_size)
{
        hs_pending_t *pd = &sk->pending;
        hs_result_t res = hs_send(sk, &pd->body, pd->key, pd->nrecs, errstr, errstr_size);
        if (res.err == EXB_OK && res.outcome == HS_DELIVERED) {
                for (int i = 0; i < pd->parts.cnt; i++)
                        hs_mark_raise(&sk->guard, pd->parts.v[i].topic, pd->parts.v[i].partition,
                                      pd->parts.v[i].next);
                sk->done.upserts += pd->upserts;
                sk->done.deletes += pd->deletes;
                hs_pending_drop(sk);
                return EXB_OK;
        }
        if (res.err == EXB_OK && res.outcome == HS_REJECTED) {
                /* Refused as a whole, so nothing of it was applied: its
                 * records are chunked again from the batch. */
                EXB_INFO("%s: re-chunking its records", errstr);
                hs_pending_drop(sk);
                return EXB_OK;
        }
        if (res.outcome == HS_ENDPOINT)
                EXB_ERROR("%s", errstr);
        return EXB_ERR_RETRY;
}

static int hs_same_res(const char *a, const char *b)
{
        return a == b || (a && b && !strcmp(a, b));
}

static exb_err_t hs_write(void *opaque, const exb_sink_batch_t *batch, exb_sink_result_t *res,
                          char *errstr, size_t errstr_size)
{
        hs_sink_t *sk = opaque;
        exb_err_t e;
        if (sk->pending.active && (e = hs_pending_flush(sk, errstr, errstr_size)) != EXB_OK)
                return e;
        int n = batch->nrecs;
        if (n > sk->cap) {
                sk->cap = n;
                sk->idx = exb_realloc(sk->idx, sizeof(*sk->idx) * (size_t)n);
                sk->taken = exb_realloc(sk->taken, (size_t)n);
                sk->chunk = exb_realloc(sk->chunk, sizeof(*sk->chunk) * (size_t)n);
        }
        if (n)
                memset(sk->taken, 0, (size_t)n);
        /* Per resource, in consumption order. */
        for (int i = 0; i < n; i++) {
                if (sk->taken[i])
                        continue;
                const char *resource = batch->recs[i].resource;
                int cnt = 0;
                for (int j = i; j < n; j++)
                        if (!sk->taken[j] && hs_same_res(batch->recs[j].resource, resource)) {
                                sk->taken[j] = 1;
                                sk->idx[cnt++] = j;
                        }
                int m = 0;
                for (int k = 0; k <= cnt; k++) {
                        const exb_sink_rec_t *r = k < cnt ? &batch->recs[sk->idx[k]] : NULL;
                        if (r) {
                                const hs_mark_t *g =
                                        hs_mark_find(&sk->guard, r->topic, r->partition);
                                if (g && r->offset < g->next) {
                                        res->replays++;
                                        continue;
                                }
                        }
                        /* Flush the chunk before a dead letter, when full, at the end. */
                        if (m && (!r || !hs_rec_decoded(r) || m == sk->conf->batch_max)) {
                                e = hs_deliver(sk, resource, sk->chunk, m, errstr, errstr_size);
                                if (e != EXB_OK)
                                        return e;
                                m = 0;
                        }
                        if (!r)
                                break;
                        if (hs_rec_decoded(r)) {
                                sk->chunk[m++] = r;
                                continue;
                        }
                        e = hs_dead(sk, r, r->error ? r->error : "no decoded record", errstr,
                                    errstr_size);
                        if (e != EXB_OK)
                                return e;
                }
        }
        /* All handled: report, and forget the marks the receiver now keeps. */
        res->upserts += sk->done.upserts;
        res->deletes += sk->done.deletes;
        res->dead_letters += sk->done.dead_letters;
        memset(&sk->done, 0, sizeof(sk->done));
        for (int i = 0; i < batch->npos; i++) {
                const exb_sink_pos_t *p = &batch->pos[i];
                const hs_mark_t *g = hs_mark_find(&sk->guard, p->topic, p->partition);
                if (g && g->next <= p->next_offset)
                        hs_mark_drop(&sk->guard, p->topic, p->partition);
        }
        return EXB_OK;
}

/* (Re)assigned: what this instance remembers about the partition may be
 * stale (another instance had it, or the topic was recreated). */
static int64_t hs_offset(void *opaque, const char *topic, int32_t partition, int64_t hi)
{
        hs_sink_t *sk = opaque;
        (void)hi;
        hs_mark_drop(&sk->guard, topic, partition);
        if (sk->pending.active && hs_mark_find(&sk->pending.parts, topic, partition)) {
                EXB_INFO("http sink: %s [%d] reassigned: the unconfirmed request that held it "
                         "will not be re-sent as is (its records come again from Kafka)",
                         topic, (int)partition);
                hs_pending_drop(sk);
        }
        return EXB_OFFSET_STORED;
}

/* ------------------------------------------------------------ open/close */

static void hs_close(void *opaque)
{
        hs_sink_t *sk = opaque;
        if (!sk)
                return;
        if (sk->pending.active)
                EXB_WARN("http sink %s: closing with an unconfirmed request of %d record(s): "
                         "they were not committed and come again from Kafka",
                         sk->url_safe, sk->pending.nrecs);
        if (sk->curl)
                curl_easy_cleanup(sk->curl);
        curl_global_cleanup();
        exb_sink_dlq_close(sk->dlq);
        exb_buf_free(&sk->body);
        exb_buf_free(&sk->resp);
        exb_buf_free(&sk->pending.body);
        hs_marks_clear(&sk->pending.parts);
        hs_marks_clear(&sk->guard);
        if (sk->auth) {
                memset(sk->auth, 0, strlen(sk->auth));
                free(sk->auth);
        }
        free(sk->dept);
        free(sk->url_safe);
        free(sk->idx);
        free(sk->taken);
        free(sk->chunk);
        free(sk);
}

/* Checks a header line "Name: value" without echoing it. */
static int hs_header_valid(const char *h)
{
        const char *colon = strchr(h, ':');
        if (!colon || colon == h)
                return 0;
        for (const char *p = h; p < colon; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= 'a' && *p <= 'z') || strchr("!#$%&'*+-.^_`|~", *p)))
                        return 0;
        for (const char *p = colon + 1; *p; p++)
                if ((unsigned char)*p < 0x20 && *p != '\t')
                        return 0; /* no CR/LF: one header line, nothing injected */
        return 1;
}

static int hs_file_ok(const char *key, const char *path, char *errstr, size_t errstr_size)
{
        if (path && *path && access(path, R_OK)) {
                exb_errf(errstr, errstr_size, "sink http: \"%s\": cannot read %s", key, path);
                return 0;
        }
        return 1;
}

static void *hs_open(const void *confp, const exb_sink_env_t *env, char *errstr, size_t errstr_size)
{
        const hs_conf_t *conf = confp;
        const char *dept = env && env->dept ? env->dept : "sink";
        if (!conf->url ||
            (strncasecmp(conf->url, "http://", 7) && strncasecmp(conf->url, "https://", 8))) {
                exb_errf(errstr, errstr_size,
                         "sink http: \"sink.url\": must start with http:// or https://");
                return NULL;
        }
        CURLU *u = curl_url();
        int bad = !u || curl_url_set(u, CURLUPART_URL, conf->url, 0) != CURLUE_OK;
        curl_url_cleanup(u);
        if (bad) {
                exb_errf(errstr, errstr_size, "sink http: \"sink.url\": not a valid URL");
                return NULL;
        }
        if (conf->auth_header && conf->auth_header_env) {
                exb_errf(errstr, errstr_size,
                         "sink http: set \"sink.auth.header\" or \"sink.auth.header.env\", not "
                         "both");
                return NULL;
        }
        const char *auth = conf->auth_header;
        if (conf->auth_header_env) {
                auth = getenv(conf->auth_header_env);
                if (!auth || !*auth) {
                        exb_errf(errstr, errstr_size,
                                 "sink http: \"sink.auth.header.env\": environment variable %s "
                                 "is not set",
                                 conf->auth_header_env);
                        return NULL;
                }
        }
        if (auth && !hs_header_valid(auth)) {
                exb_errf(errstr, errstr_size,
                         "sink http: \"%s\": not one header line \"Name: value\" (value not "
                         "shown)",
                         conf->auth_header_env ? "sink.auth.header.env" : "sink.auth.header");
                return NULL;
        }
        if ((conf->cert_file && *conf->cert_file) != (conf->key_file && *conf->key_file)) {
                exb_errf(errstr, errstr_size,
                         "sink http: \"sink.tls.cert.file\" and \"sink.tls.key.file\" go "
                         "together");
                return NULL;
        }
        if (!hs_file_ok("sink.tls.ca.file", conf->ca_file, errstr, errstr_size) ||
            !hs_file_ok("sink.tls.cert.file", conf->cert_file, errstr, errstr_size) ||
            !hs_file_ok("sink.tls.key.file", conf->key_file, errstr, errstr_size))
                return NULL;

        hs_sink_t *sk = exb_calloc(1, sizeof(*sk));
        curl_global_init(CURL_GLOBAL_DEFAULT);
        sk->conf = conf;
        sk->dept = exb_strdup(dept);
        sk->url_safe = hs_url_safe(conf->url);
        sk->auth = auth ? exb_strdup(auth) : NULL;
        exb_buf_init(&sk->body, (size_t)conf->request_max_bytes);
        exb_buf_init(&sk->pending.body, (size_t)conf->request_max_bytes);
        exb_buf_init(&sk->resp, HS_RESP_KEEP + 1); /* +1: tells a truncated response */
        exb_sink_http_set_transport(sk, NULL, NULL);
        int https = !strncasecmp(conf->url, "https://", 8);
        if (sk->auth && !https)
                EXB_WARN("http sink %s: the auth header goes in clear text over http://",
                         sk->url_safe);
        if (https && !conf->verify)
                EXB_WARN("http sink %s: sink.tls.verify=false: the service is not authenticated",
                         sk->url_safe);

        CURL *c = sk->curl = curl_easy_init();
        if (!c) {
                exb_errf(errstr, errstr_size, "sink http: cannot initialise libcurl");
                goto fail;
        }
        CURLcode rc = CURLE_OK;
#define HS_SET(opt, val)                                                                           \
        do {                                                                                       \
                if (rc == CURLE_OK)                                                                \
                        rc = curl_easy_setopt(c, opt, val);                                        \
        } while (0)
        HS_SET(CURLOPT_URL, conf->url);
        HS_SET(CURLOPT_PROTOCOLS_STR, "http,https");
        HS_SET(CURLOPT_NOSIGNAL, 1L);
        HS_SET(CURLOPT_POST, 1L);
        HS_SET(CURLOPT_FOLLOWLOCATION, 0L);
        HS_SET(CURLOPT_USERAGENT, "exbus-http-sink/1");
        HS_SET(CURLOPT_CONNECTTIMEOUT_MS, (long)conf->connect_timeout_ms);
        HS_SET(CURLOPT_TIMEOUT_MS, (long)conf->timeout_ms);
        HS_SET(CURLOPT_ERRORBUFFER, sk->curl_err);
        HS_SET(CURLOPT_WRITEFUNCTION, hs_curl_body);
        HS_SET(CURLOPT_SSL_VERIFYPEER, conf->verify ? 1L : 0L);
        HS_SET(CURLOPT_SSL_VERIFYHOST, conf->verify ? 2L : 0L);
        if (conf->ca_file && *conf->ca_file)
                HS_SET(CURLOPT_CAINFO, conf->ca_file);
        if (conf->cert_file && *conf->cert_file) {
                HS_SET(CURLOPT_SSLCERT, conf->cert_file);
                HS_SET(CURLOPT_SSLKEY, conf->key_file);
        }
#undef HS_SET
        if (rc != CURLE_OK) {
                exb_errf(errstr, errstr_size, "sink http: libcurl: %s", curl_easy_strerror(rc));
                goto fail;
        }
        char err[512] = "";
        if (!(sk->dlq = exb_sink_dlq_open(env && env->data_dir ? env->data_dir : ".", dept, err,
                                          sizeof(err)))) {
                exb_errf(errstr, errstr_size, "sink http: dead-letter store: %s", err);
                goto fail;
        }
        EXB_INFO("http sink: POST to %s, up to %d records per request", sk->url_safe,
                 conf->batch_max);
        return sk;
fail:
        hs_close(sk);
        return NULL;
}

const exb_sink_plugin_t exb_sink_http = {
        .name = "http",
        .props = hs_props,
        .conf_size = sizeof(hs_conf_t),
        .open = hs_open,
        .offset = hs_offset,
        .write = hs_write,
        .close = hs_close,
};
