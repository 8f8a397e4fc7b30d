/*
 * exb_publisher.c — the producer agent (see exb_publisher.h for what it
 * guarantees, exb_source.h for the source plugins).
 *
 * In-flight tracking. Every change taken from the source gets a slot in a
 * fixed ring, in source order: PENDING until its delivery report, then DONE
 * (delivered) or FAILED. A rejected change (kept in the source's rejects
 * table) is pushed as DONE at once, so the ring always holds a gap-free run
 * of positions. After each round the DONE prefix is popped and the source
 * acknowledges up to its last position; nothing behind a PENDING or FAILED
 * slot is ever acknowledged. The delivery report callback only writes its
 * slot (passed as the message opaque; slots never move while in flight).
 *
 * Failure. A FAILED slot stops reading. Once no report is outstanding, the
 * DONE prefix is acknowledged, the rest is dropped from the ring, and the
 * source is rewound to the last acknowledged position: the first undelivered
 * change is produced again after a backoff (1 s, doubling to 30 s). If the
 * idempotent producer itself has failed fatally, it is replaced first.
 *
 * A new resource version on the control plane is picked up between rounds:
 * reading pauses until the ring is empty, the tables are bound to the new
 * version (and the capture re-installed, so new item columns are captured);
 * if the new version does not fit the table, the old binding stays and the
 * reason is logged.
 */
#include "exb_publisher.h"
#include "exb_sql.h"
#include "exb_catalog.h"
#include "exb_codec.h"
#include "exb_control.h"
#include "exb_kafka.h"
#include "exb_schema.h"
#include "exb_source.h"
#include "exb_validate.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PUB_MAX_VALUE   (8 * 1024 * 1024) /* encoded record; larger is a rejection */
#define PUB_BACKOFF_MIN 1000
#define PUB_BACKOFF_MAX 30000

const exb_prop_t exb_publisher_props[] = {
        {"dept", EXB_PROP_STR, offsetof(exb_publisher_conf_t, dept), NULL, NULL,
         "Code of the providing department, as in the catalog (e.g. GA). Every mapped resource "
         "must "
         "be provided by it; it starts every event id.",
         1},
        {"brokers", EXB_PROP_STR, offsetof(exb_publisher_conf_t, brokers), NULL, NULL,
         "Kafka bootstrap servers (host:port,...). -b, EXBUS_BROKERS or --data-dir on the command "
         "line override it."},
        {"data.dir", EXB_PROP_STR, offsetof(exb_publisher_conf_t, data_dir), NULL, ".",
         "Directory for the agent's own files: control-plane cache (producer-control.db) and "
         "snapshot progress (producer-state.db). Created if missing."},
        {"source.type", EXB_PROP_ENUM, offsetof(exb_publisher_conf_t, source_type), "sqlite|files",
         "sqlite",
         "Kind of source. sqlite: change capture by triggers into a changelog table. files: a "
         "drop directory of CSV and JSONL files (producers/exb_source_files.c)."},
        {"source.path", EXB_PROP_STR, offsetof(exb_publisher_conf_t, source_path), NULL, NULL,
         "The source. sqlite: the department's database file (must exist). The agent adds the "
         "tables exb_changelog, exb_rejects, exb_meta and triggers exb_<table>_ins/_upd/_del.",
         1},
        {"source.table.", EXB_PROP_PREFIX, offsetof(exb_publisher_conf_t, tables), NULL, NULL,
         "source.table.<table> = <resource code>: the rows of <table> are records of that "
         "resource; its columns are named as the items (key and required items must exist).",
         1},
        {"poll.interval.ms", EXB_PROP_INT, offsetof(exb_publisher_conf_t, poll_interval_ms),
         "1..60000", "200", "How long an idle round waits for new changes."},
        {"batch.size", EXB_PROP_INT, offsetof(exb_publisher_conf_t, batch_size), "1..100000",
         "1000", "Changes read from the source per round; at most 10x this many are in flight."},
        {"kafka.", EXB_PROP_PREFIX, offsetof(exb_publisher_conf_t, kafka), NULL, NULL,
         "Passed to librdkafka as is (e.g. kafka.security.protocol, kafka.message.timeout.ms)."},
        {"source.", EXB_PROP_PREFIX, offsetof(exb_publisher_conf_t, source_opts), NULL, NULL,
         "Other keys of the chosen source, checked against its own table (files: "
         "source.files.settle.ms, source.files.max.bytes, source.files.max.line.bytes)."},
        {NULL}};

/* Source plugins: a new kind of source is a new file and one line here. */
static const exb_source_plugin_t *const plugins[] = {&exb_source_sqlite, &exb_source_files, NULL};

static const exb_source_plugin_t *plugin_find(const char *name)
{
        for (int i = 0; plugins[i]; i++)
                if (name && !strcmp(plugins[i]->name, name))
                        return plugins[i];
        return NULL;
}

/* ------------------------------------------------------------------ tables */

typedef struct pub_table_s {
        char *name; /* as configured */
        char *code; /* resource code */
        exb_resource_t *res;
        exb_schema_t *schema; /* latest ingest schema, id set */
        exb_binding_t bind;
        int bound;
        char *topic_name;
        exb_topic_t *topic; /* of the current producer, NULL until first use */
} pub_table_t;

static void table_clear(pub_table_t *t)
{
        if (t->bound)
                exb_binding_free(&t->bind);
        exb_schema_destroy(t->schema);
        exb_resource_destroy(t->res);
        free(t->name);
        free(t->code);
        free(t->topic_name);
        memset(t, 0, sizeof(*t));
}

static void tables_free(pub_table_t *t, int n)
{
        for (int i = 0; t && i < n; i++)
                table_clear(&t[i]);
        free(t);
}

/* Looks a resource up: fills *res and *schema (owned), or returns -1 with
 * errstr (the caller prefixes the context). */
typedef int(pub_resolve_fn)(void *ctx, const char *code, exb_resource_t **res,
                            exb_schema_t **schema, char *errstr, size_t errstr_size);

static int resolve_control(void *ctx, const char *code, exb_resource_t **res, exb_schema_t **schema,
                           char *errstr, size_t errstr_size)
{
        exb_control_t *ctl = ctx;
        int32_t sid = -1;
        *schema = NULL;
        *res = exb_control_resource(ctl, code, &sid);
        if (!*res) {
                exb_errf(errstr, errstr_size,
                         "resource %s is not in the catalog (import it first: exbus catalog "
                         "import FILE)",
                         code);
                return -1;
        }
        *schema = exb_control_schema(ctl, sid);
        if (!*schema) {
                exb_errf(errstr, errstr_size, "schema %d of resource %s is not on %s", (int)sid,
                         code, EXB_CONTROL_TOPIC);
                exb_resource_destroy(*res);
                *res = NULL;
                return -1;
        }
        return 0;
}

static int resolve_catalog(void *ctx, const char *code, exb_resource_t **res, exb_schema_t **schema,
                           char *errstr, size_t errstr_size)
{
        const exb_catalog_t *cat = ctx;
        const exb_resource_t *r = exb_catalog_resource(cat, code);
        *res = NULL;
        *schema = NULL;
        if (!r) {
                exb_errf(errstr, errstr_size, "resource %s is not in the catalog", code);
                return -1;
        }
        *res = exb_resource_parse_json("catalog", r->json, strlen(r->json), errstr, errstr_size);
        if (!*res)
                return -1;
        *schema = exb_resource_schema(*res, errstr, errstr_size);
        if (!*schema) {
                exb_resource_destroy(*res);
                *res = NULL;
                return -1;
        }
        return 0;
}

/* Resolves every source.table.* entry: resource, schema, provider check,
 * binding. Returns a new array, or NULL with errstr. */
static pub_table_t *tables_resolve(const exb_publisher_conf_t *conf, const char *where,
                                   pub_resolve_fn *resolve, void *ctx, char *errstr,
                                   size_t errstr_size)
{
        int n = conf->tables.cnt;
        pub_table_t *tables = exb_calloc((size_t)n + 1, sizeof(*tables));
        for (int i = 0; i < n; i++) {
                const exb_conf_kv_t *kv = &conf->tables.kvs[i];
                pub_table_t *t = &tables[i];
                char why[1024];
                t->name = exb_strdup(kv->key);
                t->code = exb_strdup(kv->value);
                if (resolve(ctx, kv->value, &t->res, &t->schema, why, sizeof(why))) {
                        exb_errf(errstr, errstr_size, "%s: source.table.%s = %s: %s", where,
                                 kv->key, kv->value, why);
                        goto fail;
                }
                if (strcmp(t->res->provider, conf->dept)) {
                        exb_errf(errstr, errstr_size,
                                 "%s: source.table.%s = %s: resource %s is provided by %s, not by "
                                 "dept %s",
                                 where, kv->key, kv->value, t->res->code, t->res->provider,
                                 conf->dept);
                        goto fail;
                }
                if (exb_binding_init(&t->bind, t->res, t->schema, why, sizeof(why))) {
                        exb_errf(errstr, errstr_size, "%s: source.table.%s = %s: %s", where,
                                 kv->key, kv->value, why);
                        goto fail;
                }
                t->bound = 1;
                size_t len = strlen(conf->dept) + strlen(t->res->code) + 16;
                t->topic_name = exb_calloc(1, len);
                snprintf(t->topic_name, len, "exb.ingest.%s.%s", conf->dept, t->res->code);
        }
        return tables;
fail:
        tables_free(tables, n);
        return NULL;
}

static exb_source_table_t *source_tables(const pub_table_t *tables, int n)
{
        exb_source_table_t *st = exb_calloc((size_t)n + 1, sizeof(*st));
        for (int i = 0; i < n; i++)
                st[i] = (exb_source_table_t){tables[i].name, tables[i].res, tables[i].schema};
        return st;
}

/* Checks the configuration values exb_conf cannot check. */
static int conf_check(const exb_publisher_conf_t *conf, const char *where,
                      const exb_source_plugin_t **plugin, char *errstr, size_t errstr_size)
{
        if (!conf->dept || !*conf->dept) {
                exb_errf(errstr, errstr_size, "%s: missing required key \"dept\"", where);
                return -1;
        }
        if (!(*plugin = plugin_find(conf->source_type ? conf->source_type : "sqlite"))) {
                exb_errf(errstr, errstr_size, "%s: \"source.type\": unknown source \"%s\"", where,
                         conf->source_type);
                return -1;
        }
        if (conf->source_opts.cnt && !(*plugin)->props) {
                exb_errf(errstr, errstr_size, "%s: unknown key \"source.%s\" (source.type %s)",
                         where, conf->source_opts.kvs[0].key, (*plugin)->name);
                return -1;
        }
        if (conf->tables.cnt < 1) {
                exb_errf(errstr, errstr_size,
                         "%s: no table is mapped (add source.table.<table> = <resource code>)",
                         where);
                return -1;
        }
        if (conf->batch_size < 1) {
                exb_errf(errstr, errstr_size, "%s: \"batch.size\" must be at least 1", where);
                return -1;
        }
        return 0;
}

int exb_publisher_check(const exb_publisher_conf_t *conf, const exb_catalog_t *cat, char *errstr,
                        size_t errstr_size)
{
        const char *where = conf->where ? conf->where : "producer";
        const exb_source_plugin_t *plugin;
        if (conf_check(conf, where, &plugin, errstr, errstr_size))
                return -1;
        pub_table_t *tables =
                tables_resolve(conf, where, resolve_catalog, (void *)cat, errstr, errstr_size);
        if (!tables)
                return -1;
        exb_source_conf_t sc = {where,          conf->dept,       conf->source_path,
                                conf->data_dir, conf->batch_size, &conf->source_opts};
        exb_source_t *src = plugin->open(&sc, errstr, errstr_size);
        int rc = -1;
        if (src) {
                exb_source_table_t *st = source_tables(tables, conf->tables.cnt);
                rc = plugin->bind(src, st, conf->tables.cnt, errstr, errstr_size);
                free(st);
                plugin->close(src);
        }
        tables_free(tables, conf->tables.cnt);
        return rc;
}

/* -------------------------------------------------------------------- ring */

enum { SLOT_PENDING = 0, SLOT_DONE, SLOT_FAILED };

typedef struct pub_ring_s pub_ring_t;

typedef struct pub_slot_s {
        int64_t pos;
        int state;
        pub_ring_t *ring;
} pub_slot_t;

struct pub_ring_s {
        pub_slot_t *slots;
        int cap, head, n;
        int pending; /* slots waiting for a report */
        int failed;  /* a report failed: stop, drain, rewind */
        int snapshot;
};

struct exb_publisher_s {
        char *where, *dept, *brokers, *data_dir;
        int batch_size, poll_interval_ms;
        exb_kprop_t *kprops;
        int nkprops;
        exb_control_t *ctl;
        uint64_t ctl_gen;
        int refresh; /* the control plane changed: rebind when the ring is empty */
        const exb_source_plugin_t *plugin;
        exb_source_t *src;
        int ntables;
        pub_table_t *tables;
        exb_conf_kvs_t table_conf; /* copy of source.table.* for refreshes */
        exb_producer_t *producer;
        pub_ring_t ring;      /* the change stream */
        pub_ring_t snap_ring; /* snapshot rows (positions are rowids) */
        int64_t last_taken;   /* position of the newest slot (or the acknowledged one) */
        int64_t acked;        /* last position the source acknowledged */
        int64_t done_pos;     /* last position of the popped DONE prefix */
        int rej_pending;      /* the source holds rejections not yet written */
        int rej_logged;       /* rejections logged one by one this round */
        int rej_quiet;        /* ... and not logged */
        int backoff_ms;
        int64_t retry_at; /* mono ms */
        char fail_reason[512];
        char denied[600]; /* a delivery refused for good (not authorized): stop */
        exb_buf_t enc, key;
        exb_record_t rec;
        exb_publisher_stats_t stats;
        volatile sig_atomic_t *stop;
};

static pub_slot_t *ring_push(pub_ring_t *r, int64_t pos, int state)
{
        pub_slot_t *s = &r->slots[(r->head + r->n) % r->cap];
        r->n++;
        s->pos = pos;
        s->state = state;
        s->ring = r;
        if (state == SLOT_PENDING)
                r->pending++;
        return s;
}

static void ring_unpush(pub_ring_t *r)
{
        pub_slot_t *s = &r->slots[(r->head + r->n - 1) % r->cap];
        if (s->state == SLOT_PENDING)
                r->pending--;
        r->n--;
}

/* Pops the DONE prefix. Returns how many, *last = the last popped position. */
static int ring_pop(pub_ring_t *r, int64_t *last)
{
        int popped = 0;
        while (r->n > 0 && r->slots[r->head].state == SLOT_DONE) {
                *last = r->slots[r->head].pos;
                r->head = (r->head + 1) % r->cap;
                r->n--;
                popped++;
        }
        return popped;
}

static void ring_reset(pub_ring_t *r)
{
        r->head = r->n = r->pending = r->failed = 0;
}

static void on_delivery(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                        int32_t partition, int64_t offset)
{
        exb_publisher_t *pub = opaque;
        pub_slot_t *s = msg_opaque;
        (void)partition;
        (void)offset;
        if (!s || s->state != SLOT_PENDING)
                return;
        s->ring->pending--;
        if (err == EXB_OK) {
                s->state = SLOT_DONE;
                if (s->ring->snapshot)
                        pub->stats.snapshot++;
                else
                        pub->stats.published++;
                pub->backoff_ms = 0;
                return;
        }
        s->state = SLOT_FAILED;
        s->ring->failed = 1;
        pub->stats.failed++;
        /* FATAL here is an authorization or authentication failure, or the
         * idempotent producer itself failed (replaced by recover()). The
         * former no retry can cure: the agent stops, naming the topic. */
        if (err == EXB_ERR_FATAL && !pub->denied[0]) {
                char why[512];
                exb_err_t pf = pub->producer ? exb_producer_fatal(pub->producer, why, sizeof(why))
                                             : EXB_OK;
                if (pf != EXB_ERR_FATAL)
                        snprintf(pub->denied, sizeof(pub->denied),
                                 "%s (ask the exchange operator: exbus acl sync)",
                                 pf == EXB_ERR_INVALID ? why : errstr);
        }
        if (!pub->fail_reason[0])
                snprintf(pub->fail_reason, sizeof(pub->fail_reason), "%s", errstr);
}

/* ----------------------------------------------------------------- produce */

static exb_producer_t *producer_make(exb_publisher_t *pub, char *errstr, size_t errstr_size)
{
        exb_producer_t *p = exb_producer_new(pub->brokers, pub->kprops, pub->nkprops, on_delivery,
                                             pub, errstr, errstr_size);
        for (int i = 0; i < pub->ntables; i++)
                pub->tables[i].topic = NULL;
        return p;
}

/* Keeps a change in the source's rejects table and pushes it as done.
 * Returns 0, or -1 (storage busy: the caller rewinds and retries later). */
static int reject(exb_publisher_t *pub, pub_ring_t *ring, const exb_change_t *chg,
                  const char *reason)
{
        char err[512];
        if (pub->plugin->reject(pub->src, chg, reason, err, sizeof(err))) {
                EXB_WARN("%s: cannot keep rejected change %s: %s", pub->where, chg->event_id, err);
                return -1;
        }
        const char *tbl = chg->table >= 0 ? pub->tables[chg->table].name : "?";
        pub->rej_pending = 1;
        if (pub->rej_logged++ < 5)
                EXB_WARN("%s: table %s: change %s (%s) rejected, kept in the rejects table: %s",
                         pub->where, tbl, chg->event_id, exb_op_name(chg->op), reason);
        else
                pub->rej_quiet++;
        ring_push(ring, chg->pos, SLOT_DONE);
        if (ring == &pub->ring)
                pub->last_taken = chg->pos;
        pub->stats.rejected++;
        return 0;
}

enum { TAKE_PRODUCED = 1, TAKE_REJECTED = 0, TAKE_FULL = -2, TAKE_BUSY = -3, TAKE_FATAL = -1 };

/* Validates, encodes and produces one change (or rejects it). */
static int take(exb_publisher_t *pub, pub_ring_t *ring, const exb_change_t *chg, char *errstr,
                size_t errstr_size)
{
        char why[1024];
        if (chg->table < 0 || chg->error) {
                if (chg->table >= 0)
                        snprintf(why, sizeof(why), "%s: %s", pub->tables[chg->table].res->code,
                                 chg->error);
                else
                        snprintf(why, sizeof(why), "%s", chg->error ? chg->error : "no table");
                return reject(pub, ring, chg, why) ? TAKE_BUSY : TAKE_REJECTED;
        }
        pub_table_t *t = &pub->tables[chg->table];
        exb_record_t *rec = &pub->rec;
        rec->op = chg->op;
        rec->event_id = exb_str(chg->event_id);
        rec->source = exb_str(pub->dept);
        rec->ts_ms = chg->ts_ms;
        rec->nvals = chg->nvals;
        rec->vals = chg->vals;
        if (exb_validate(&t->bind, rec, why, sizeof(why)) != EXB_OK)
                return reject(pub, ring, chg, why) ? TAKE_BUSY : TAKE_REJECTED;
        exb_buf_reset(&pub->key);
        exb_buf_reset(&pub->enc);
        if (exb_record_key(&t->bind, rec, &pub->key)) {
                snprintf(why, sizeof(why), "%s: the key is longer than %zu bytes", t->res->code,
                         pub->key.max);
                return reject(pub, ring, chg, why) ? TAKE_BUSY : TAKE_REJECTED;
        }
        exb_err_t err = exb_codec_encode(t->schema, rec, &pub->enc, why, sizeof(why));
        if (err == EXB_ERR_FATAL)
                snprintf(why, sizeof(why), "%s: the encoded record is larger than %d bytes",
                         t->res->code, PUB_MAX_VALUE);
        if (err != EXB_OK)
                return reject(pub, ring, chg, why) ? TAKE_BUSY : TAKE_REJECTED;
        if (!t->topic && !(t->topic = exb_producer_topic(pub->producer, t->topic_name))) {
                exb_errf(errstr, errstr_size, "%s: topic %s: cannot create a handle", pub->where,
                         t->topic_name);
                return TAKE_FATAL;
        }
        pub_slot_t *s = ring_push(ring, chg->pos, SLOT_PENDING);
        err = exb_produce(pub->producer, t->topic, -1, pub->key.p, pub->key.len, pub->enc.p,
                          pub->enc.len, NULL, 0, s, why, sizeof(why));
        if (err == EXB_OK) {
                if (ring == &pub->ring)
                        pub->last_taken = chg->pos;
                pub->stats.produced++;
                return TAKE_PRODUCED;
        }
        ring_unpush(ring);
        if (err == EXB_ERR_RETRY)
                return TAKE_FULL;
        if (err == EXB_ERR_INVALID) { /* about this record, e.g. larger than message.max.bytes */
                char reason[1200];
                snprintf(reason, sizeof(reason), "%s: %s", t->res->code, why);
                return reject(pub, ring, chg, reason) ? TAKE_BUSY : TAKE_REJECTED;
        }
        exb_errf(errstr, errstr_size, "%s: %s", pub->where, why);
        return TAKE_FATAL;
}

/* Serves delivery reports, waiting up to timeout_ms for the first (just
 * sleeps while there is no producer: it failed and is being replaced). */
static void wait_reports(exb_publisher_t *pub, int timeout_ms)
{
        if (pub->producer) {
                exb_producer_poll(pub->producer, timeout_ms);
                return;
        }
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* Serves delivery reports for up to timeout_ms and pops the delivered
 * prefix. Returns how many slots were popped; *last gets the last position. */
static int reports(exb_publisher_t *pub, pub_ring_t *ring, int timeout_ms, int64_t *last)
{
        wait_reports(pub, timeout_ms);
        return ring_pop(ring, last);
}

/* Acknowledges the delivered prefix to the source and has it write the
 * rejections it holds (retried next round if the database is busy).
 * Returns 0, or -1 if something is still to be written. */
static int ack(exb_publisher_t *pub)
{
        if (pub->rej_quiet) {
                EXB_WARN("%s: %d more change(s) rejected (reasons in the rejects table)",
                         pub->where, pub->rej_quiet);
                pub->rej_quiet = 0;
        }
        pub->rej_logged = 0;
        if (pub->done_pos <= pub->acked && !pub->rej_pending)
                return 0;
        char err[512];
        int64_t pos = pub->done_pos > pub->acked ? pub->done_pos : 0;
        if (pub->plugin->ack(pub->src, pos, err, sizeof(err))) {
                EXB_WARN("%s: %s (retrying)", pub->where, err);
                return -1;
        }
        if (pos)
                pub->acked = pos;
        pub->rej_pending = 0;
        return 0;
}

/* After a failed delivery, once nothing is outstanding: drop the ring after
 * the delivered prefix and schedule the retry. Replaces a producer that
 * failed fatally. Returns 1 if recovered (the caller rewinds to
 * pub->done_pos / its own last position), 0 if reports are still due. */
static int recover(exb_publisher_t *pub, pub_ring_t *ring)
{
        char err[512];
        if (pub->producer && exb_producer_fatal(pub->producer, err, sizeof(err)) == EXB_ERR_FATAL) {
                EXB_ERROR("%s: %s: replacing the producer", pub->where, err);
                exb_producer_destroy(pub->producer); /* reports every queued message */
                pub->producer = NULL;
        }
        if (pub->ring.pending > 0 || pub->snap_ring.pending > 0)
                return 0;
        if (!pub->producer) {
                char es[512];
                pub->producer = producer_make(pub, es, sizeof(es));
                if (!pub->producer) {
                        EXB_ERROR("%s: %s", pub->where, es);
                        return 0; /* try again next round */
                }
        }
        ring_reset(ring);
        pub->backoff_ms = pub->backoff_ms ? pub->backoff_ms * 2 : PUB_BACKOFF_MIN;
        if (pub->backoff_ms > PUB_BACKOFF_MAX)
                pub->backoff_ms = PUB_BACKOFF_MAX;
        pub->retry_at = exb_mono_ms() + pub->backoff_ms;
        EXB_WARN("%s: %s; retrying from the first undelivered change in %d ms", pub->where,
                 pub->fail_reason[0] ? pub->fail_reason : "delivery failed", pub->backoff_ms);
        pub->fail_reason[0] = '\0';
        return 1;
}

/* -------------------------------------------------------- control changes */

static void refresh(exb_publisher_t *pub)
{
        char err[1024];
        exb_publisher_conf_t c = {0};
        c.dept = pub->dept;
        c.tables = pub->table_conf;
        pub_table_t *t =
                tables_resolve(&c, pub->where, resolve_control, pub->ctl, err, sizeof(err));
        pub->refresh = 0;
        if (!t) {
                EXB_ERROR("%s: the catalog changed and no longer fits: %s (keeping the previous "
                          "version)",
                          pub->where, err);
                return;
        }
        int changed = 0;
        for (int i = 0; i < pub->ntables; i++)
                if (t[i].schema->id != pub->tables[i].schema->id)
                        changed = 1;
        if (!changed) {
                tables_free(t, pub->ntables);
                return;
        }
        exb_source_table_t *st = source_tables(t, pub->ntables);
        int rc = pub->plugin->bind(pub->src, st, pub->ntables, err, sizeof(err));
        free(st);
        if (rc) {
                EXB_ERROR("%s: new resource version does not fit the source: %s (keeping the "
                          "previous version)",
                          pub->where, err);
                /* The source kept the old binding (borrowing the old tables). */
                tables_free(t, pub->ntables);
                return;
        }
        tables_free(pub->tables, pub->ntables);
        pub->tables = t;
        for (int i = 0; i < pub->ntables; i++)
                EXB_INFO("%s: table %s now publishes %s with schema %d", pub->where, t[i].name,
                         t[i].code, (int)t[i].schema->id);
        if (pub->plugin->start(pub->src, err, sizeof(err)))
                EXB_ERROR("%s: re-installing the change capture: %s", pub->where, err);
        pub->plugin->rewind(pub->src, pub->acked);
        pub->last_taken = pub->acked;
}

/* -------------------------------------------------------------- lifecycle */

static void mkdir_p(const char *dir)
{
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s", dir);
        for (char *p = buf + 1; *p; p++) {
                if (*p == '/') {
                        *p = '\0';
                        mkdir(buf, 0755);
                        *p = '/';
                }
        }
        mkdir(buf, 0755);
}

exb_publisher_t *exb_publisher_new(const exb_publisher_conf_t *conf, char *errstr,
                                   size_t errstr_size)
{
        const char *where = conf->where ? conf->where : "producer";
        const exb_source_plugin_t *plugin;
        if (conf_check(conf, where, &plugin, errstr, errstr_size))
                return NULL;
        if (!conf->brokers || !*conf->brokers) {
                exb_errf(errstr, errstr_size, "%s: no brokers (set `brokers`)", where);
                return NULL;
        }
        exb_publisher_t *pub = exb_calloc(1, sizeof(*pub));
        pub->where = exb_strdup(where);
        pub->dept = exb_strdup(conf->dept);
        pub->brokers = exb_strdup(conf->brokers);
        pub->data_dir = exb_strdup(conf->data_dir && *conf->data_dir ? conf->data_dir : ".");
        pub->batch_size = conf->batch_size;
        pub->poll_interval_ms = conf->poll_interval_ms > 0 ? conf->poll_interval_ms : 200;
        pub->plugin = plugin;
        pub->nkprops = conf->kafka.cnt;
        pub->kprops = exb_calloc((size_t)pub->nkprops + 1, sizeof(*pub->kprops));
        for (int i = 0; i < pub->nkprops; i++)
                pub->kprops[i] = (exb_kprop_t){exb_strdup(conf->kafka.kvs[i].key),
                                               exb_strdup(conf->kafka.kvs[i].value)};
        pub->table_conf.cnt = conf->tables.cnt;
        pub->table_conf.kvs = exb_calloc((size_t)conf->tables.cnt + 1, sizeof(exb_conf_kv_t));
        for (int i = 0; i < conf->tables.cnt; i++)
                pub->table_conf.kvs[i] = (exb_conf_kv_t){exb_strdup(conf->tables.kvs[i].key),
                                                         exb_strdup(conf->tables.kvs[i].value)};
        pub->ntables = conf->tables.cnt;
        pub->ring.cap = pub->batch_size * 10;
        pub->ring.slots = exb_calloc((size_t)pub->ring.cap, sizeof(pub_slot_t));
        pub->snap_ring.cap = pub->ring.cap;
        pub->snap_ring.slots = exb_calloc((size_t)pub->snap_ring.cap, sizeof(pub_slot_t));
        pub->snap_ring.snapshot = 1;
        exb_buf_init(&pub->enc, PUB_MAX_VALUE);
        exb_buf_init(&pub->key, 64 * 1024);

        mkdir_p(pub->data_dir);
        char cache[4096];
        snprintf(cache, sizeof(cache), "%s/producer-control.db", pub->data_dir);
        pub->ctl = exb_control_new(pub->brokers, pub->kprops, pub->nkprops, cache, 15000, errstr,
                                   errstr_size);
        if (!pub->ctl)
                goto fail;
        pub->ctl_gen = exb_control_generation(pub->ctl);
        pub->tables = tables_resolve(conf, where, resolve_control, pub->ctl, errstr, errstr_size);
        if (!pub->tables)
                goto fail;
        exb_source_conf_t sc = {pub->where,    pub->dept,       conf->source_path,
                                pub->data_dir, pub->batch_size, &conf->source_opts};
        if (!(pub->src = plugin->open(&sc, errstr, errstr_size)))
                goto fail;
        exb_source_table_t *st = source_tables(pub->tables, pub->ntables);
        int rc = plugin->bind(pub->src, st, pub->ntables, errstr, errstr_size);
        free(st);
        if (rc || plugin->start(pub->src, errstr, errstr_size))
                goto fail;
        if (!(pub->producer = producer_make(pub, errstr, errstr_size)))
                goto fail;
        for (int i = 0; i < pub->ntables; i++)
                EXB_INFO("%s: table %s -> %s (schema %d)", pub->where, pub->tables[i].name,
                         pub->tables[i].topic_name, (int)pub->tables[i].schema->id);
        return pub;
fail:
        exb_publisher_destroy(pub);
        return NULL;
}

void exb_publisher_destroy(exb_publisher_t *pub)
{
        if (!pub)
                return;
        if (pub->producer) {
                if (exb_producer_flush(pub->producer, 5000) != EXB_OK)
                        EXB_WARN("%s: %d record(s) not delivered within 5 s; they stay in the "
                                 "source and are sent again at the next start",
                                 pub->where, pub->ring.pending);
                int64_t last;
                if (ring_pop(&pub->ring, &last))
                        pub->done_pos = last;
                if (pub->src)
                        ack(pub);
                /* Reports of whatever is still queued arrive in here: the
                 * rings must still exist. */
                exb_producer_destroy(pub->producer);
        }
        if (pub->plugin)
                pub->plugin->close(pub->src);
        exb_control_destroy(pub->ctl);
        tables_free(pub->tables, pub->ntables);
        for (int i = 0; i < pub->table_conf.cnt; i++) {
                free(pub->table_conf.kvs[i].key);
                free(pub->table_conf.kvs[i].value);
        }
        free(pub->table_conf.kvs);
        for (int i = 0; i < pub->nkprops; i++) {
                free((char *)pub->kprops[i].name);
                free((char *)pub->kprops[i].value);
        }
        free(pub->kprops);
        free(pub->ring.slots);
        free(pub->snap_ring.slots);
        exb_buf_free(&pub->enc);
        exb_buf_free(&pub->key);
        free(pub->where);
        free(pub->dept);
        free(pub->brokers);
        free(pub->data_dir);
        free(pub);
}

void exb_publisher_set_stop(exb_publisher_t *pub, volatile sig_atomic_t *stop)
{
        pub->stop = stop;
}

void exb_publisher_stats(const exb_publisher_t *pub, exb_publisher_stats_t *stats)
{
        *stats = pub->stats;
        stats->inflight = pub->ring.pending;
}

/* ------------------------------------------------------------------- poll */

int exb_publisher_poll(exb_publisher_t *pub, int timeout_ms, char *errstr, size_t errstr_size)
{
        exb_control_poll(pub->ctl);
        if (exb_control_generation(pub->ctl) != pub->ctl_gen) {
                pub->ctl_gen = exb_control_generation(pub->ctl);
                pub->refresh = 1;
        }
        if (pub->refresh && pub->ring.n == 0)
                refresh(pub);

        int produced = 0, taken = 0, idle = 0;
        if (!pub->ring.failed && !pub->refresh && exb_mono_ms() >= pub->retry_at) {
                while (taken < pub->batch_size && pub->ring.n < pub->ring.cap) {
                        exb_change_t chg;
                        char err[512];
                        int r = pub->plugin->next(pub->src, &chg, err, sizeof(err));
                        if (r < 0) {
                                EXB_WARN("%s: %s (retrying)", pub->where, err);
                                pub->plugin->rewind(pub->src, pub->last_taken);
                                idle = 1;
                                break;
                        }
                        if (r == 0) {
                                idle = 1;
                                break;
                        }
                        r = take(pub, &pub->ring, &chg, errstr, errstr_size);
                        if (r == TAKE_FATAL)
                                return -1;
                        if (r == TAKE_FULL || r == TAKE_BUSY) {
                                pub->plugin->rewind(pub->src, pub->last_taken);
                                idle = 1; /* let the queue drain */
                                break;
                        }
                        taken++;
                        produced += r == TAKE_PRODUCED;
                }
        } else {
                idle = 1;
        }
        int64_t last;
        int wait = idle || pub->ring.n >= pub->ring.cap ? timeout_ms : 0;
        if (pub->ring.n == 0 && idle && !pub->ring.failed && wait > 0) {
                /* Nothing in flight: wait for the source, serving reports. */
                wait_reports(pub, wait);
        } else if (reports(pub, &pub->ring, wait, &last)) {
                pub->done_pos = last;
        }
        ack(pub);
        if (pub->denied[0]) {
                exb_errf(errstr, errstr_size, "%s: %s", pub->where, pub->denied);
                return -1;
        }
        if (pub->ring.failed && recover(pub, &pub->ring)) {
                pub->plugin->rewind(pub->src, pub->done_pos);
                pub->last_taken = pub->done_pos;
        }
        return produced;
}

int exb_publisher_run(exb_publisher_t *pub, volatile sig_atomic_t *stop)
{
        char err[1024];
        pub->stop = stop;
        while (!*stop) {
                if (exb_publisher_poll(pub, pub->poll_interval_ms, err, sizeof(err)) < 0) {
                        EXB_ERROR("%s", err);
                        return 1;
                }
        }
        return 0;
}

/* --------------------------------------------------------------- snapshot */

/* Waits until nothing of the change stream is in flight. */
static void drain(exb_publisher_t *pub)
{
        int64_t last;
        while (pub->ring.n > 0) {
                if (reports(pub, &pub->ring, 100, &last))
                        pub->done_pos = last;
                if (pub->ring.failed && recover(pub, &pub->ring)) {
                        pub->plugin->rewind(pub->src, pub->done_pos);
                        pub->last_taken = pub->done_pos;
                        pub->retry_at = 0;
                }
                if (pub->stop && *pub->stop)
                        break;
        }
        ack(pub);
}

typedef struct snap_progress_s {
        int tty;
        const char *table;
        int64_t total, done;
        int64_t next_show; /* mono ms */
} snap_progress_t;

static void progress_show(snap_progress_t *p, int final)
{
        int64_t now = exb_mono_ms();
        if (!p->tty || (!final && now < p->next_show))
                return;
        p->next_show = now + 200;
        int64_t total = p->total > p->done ? p->total : p->done;
        int pct = total ? (int)(p->done * 100 / total) : 100;
        fprintf(stderr, "\rsnapshot %s %lld/%lld %d%%   %s", p->table, (long long)p->done,
                (long long)total, pct, final ? "\n" : "");
        fflush(stderr);
}

/* Saves the delivered prefix of a snapshot table. */
static void snap_save(exb_publisher_t *pub, sqlite3 *state, const char *state_path, int run,
                      const char *tbl, int64_t last, int done)
{
        char e[512];
        if (exb_sql_exec(state, state_path, e, sizeof(e),
                       "INSERT OR REPLACE INTO snapshot_progress VALUES(%d, %Q, %lld, %d)", run,
                       tbl, (long long)last, done))
                EXB_WARN("%s: %s", pub->where, e);
}

/* Publishes one table of a snapshot run from its saved position. Returns
 * rows delivered, or -1 with errstr. */
static int snapshot_table(exb_publisher_t *pub, sqlite3 *state, const char *state_path, int run,
                          int ti, char *errstr, size_t errstr_size)
{
        pub_table_t *t = &pub->tables[ti];
        pub_ring_t *ring = &pub->snap_ring;
        int64_t last = exb_sql_int(state, 0,
                                 "SELECT last_pos FROM snapshot_progress WHERE run=%d AND tbl=%Q",
                                 run, t->name);
        snap_progress_t prog = {isatty(STDERR_FILENO), t->name, 0, 0, 0};
        pub->plugin->snapshot_count(pub->src, ti, last, &prog.total, &prog.done);
        EXB_INFO("%s: snapshot %d: table %s -> %s: %lld rows%s", pub->where, run, t->name,
                 t->topic_name, (long long)prog.total, last ? " (resuming)" : "");
        int64_t cursor = last, delivered = 0, popped_pos, saved = last;
        int eof = 0, rc = 0;
        pub->retry_at = 0;
        for (;;) {
                if (pub->stop && *pub->stop) {
                        exb_errf(errstr, errstr_size,
                                 "%s: snapshot interrupted at table %s; run --snapshot again to "
                                 "resume",
                                 pub->where, t->name);
                        rc = -1;
                        break;
                }
                int taken = 0;
                if (!ring->failed && exb_mono_ms() >= pub->retry_at) {
                        while (!eof && taken < pub->batch_size && ring->n < ring->cap) {
                                exb_change_t chg;
                                int r = pub->plugin->snapshot_next(pub->src, ti, cursor, run, &chg,
                                                                   errstr, errstr_size);
                                if (r == 0)
                                        eof = 1;
                                if (r <= 0) {
                                        rc = r;
                                        break;
                                }
                                r = take(pub, ring, &chg, errstr, errstr_size);
                                if (r == TAKE_FATAL) {
                                        rc = -1;
                                        break;
                                }
                                if (r == TAKE_FULL || r == TAKE_BUSY)
                                        break;
                                cursor = chg.pos;
                                taken++;
                        }
                        if (rc < 0)
                                break;
                }
                int n = reports(pub, ring, eof || taken == 0 || ring->n >= ring->cap ? 100 : 0,
                                &popped_pos);
                if (n) {
                        last = popped_pos;
                        prog.done += n;
                        delivered += n;
                }
                /* Progress is saved only once the rejections before it are written. */
                if ((n || pub->rej_pending) && ack(pub) == 0 && last > saved) {
                        snap_save(pub, state, state_path, run, t->name, last, 0);
                        saved = last;
                }
                if (pub->denied[0]) {
                        exb_errf(errstr, errstr_size, "%s: %s", pub->where, pub->denied);
                        rc = -1;
                        break;
                }
                if (ring->failed && recover(pub, ring)) {
                        cursor = last;
                        eof = 0;
                }
                progress_show(&prog, 0);
                if (eof && ring->n == 0)
                        break;
        }
        if (rc < 0) {
                /* Keep what was delivered: wait (bounded) for the reports in flight. */
                int64_t until = exb_mono_ms() + 10000;
                while (ring->pending > 0 && exb_mono_ms() < until)
                        wait_reports(pub, 100);
                if (ring_pop(ring, &popped_pos))
                        last = popped_pos;
                if (ack(pub) == 0 && last > saved)
                        snap_save(pub, state, state_path, run, t->name, last, 0);
                progress_show(&prog, 1);
                return -1;
        }
        progress_show(&prog, 1);
        if (ack(pub)) {
                exb_errf(errstr, errstr_size,
                         "%s: snapshot of table %s: cannot write the rejected rows; run "
                         "--snapshot again to resume",
                         pub->where, t->name);
                return -1;
        }
        snap_save(pub, state, state_path, run, t->name, last, 1);
        EXB_INFO("%s: snapshot %d: table %s done (%lld rows this time)", pub->where, run, t->name,
                 (long long)delivered);
        return (int)delivered;
}

int exb_publisher_snapshot(exb_publisher_t *pub, char *errstr, size_t errstr_size)
{
        if (!pub->plugin->snapshot_next) {
                exb_errf(errstr, errstr_size, "%s: source.type %s cannot take a snapshot",
                         pub->where, pub->plugin->name);
                return -1;
        }
        drain(pub);
        /* Leftovers of an earlier, failed snapshot call. */
        if (pub->snap_ring.pending > 0 && pub->producer)
                exb_producer_flush(pub->producer, 30000);
        if (pub->snap_ring.pending > 0) {
                exb_errf(errstr, errstr_size, "%s: snapshot: earlier records are still in flight",
                         pub->where);
                return -1;
        }
        ring_reset(&pub->snap_ring);
        char path[4096];
        snprintf(path, sizeof(path), "%s/producer-state.db", pub->data_dir);
        sqlite3 *state = NULL;
        if (sqlite3_open(path, &state) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s", path, sqlite3_errmsg(state));
                sqlite3_close(state);
                return -1;
        }
        sqlite3_busy_timeout(state, 5000);
        int total = 0, rc = -1;
        const char *db_id = pub->plugin->id(pub->src);
        if (exb_sql_exec(state, path, errstr, errstr_size,
                       "CREATE TABLE IF NOT EXISTS snapshot_runs(run INTEGER PRIMARY KEY,"
                       " source_id TEXT, started TEXT, finished TEXT);"
                       "CREATE TABLE IF NOT EXISTS snapshot_progress(run INTEGER, tbl TEXT,"
                       " last_pos INTEGER, done INTEGER, PRIMARY KEY(run, tbl))"))
                goto done;
        int run = (int)exb_sql_int(state, 0,
                                 "SELECT run FROM snapshot_runs WHERE source_id=%Q AND finished "
                                 "IS NULL ORDER BY run DESC LIMIT 1",
                                 db_id);
        if (!run) {
                run = (int)exb_sql_int(state, 0, "SELECT max(run) FROM snapshot_runs") + 1;
                if (exb_sql_exec(state, path, errstr, errstr_size,
                               "INSERT INTO snapshot_runs VALUES(%d, %Q, strftime('%%Y-%%m-%%dT"
                               "%%H:%%M:%%SZ','now'), NULL)",
                               run, db_id))
                        goto done;
                EXB_INFO("%s: snapshot %d starts", pub->where, run);
        } else {
                EXB_INFO("%s: snapshot %d resumes", pub->where, run);
        }
        for (int i = 0; i < pub->ntables; i++) {
                if (exb_sql_int(state, 0,
                              "SELECT done FROM snapshot_progress WHERE run=%d AND tbl=%Q", run,
                              pub->tables[i].name))
                        continue;
                int n = snapshot_table(pub, state, path, run, i, errstr, errstr_size);
                if (n < 0)
                        goto done;
                total += n;
        }
        if (exb_sql_exec(state, path, errstr, errstr_size,
                       "UPDATE snapshot_runs SET finished=strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ',"
                       "'now') WHERE run=%d",
                       run))
                goto done;
        EXB_INFO("%s: snapshot %d finished", pub->where, run);
        rc = total;
done:
        sqlite3_close(state);
        return rc;
}
