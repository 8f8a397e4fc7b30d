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
 *
 * Restart recovery (no duplicate after kill -9). A change is forgotten by
 * the source only after its delivery report, so a run killed between
 * "Kafka has it" and "the source forgot it" leaves changes that Kafka
 * already has. Before a run produces anything it finds them and drops them
 * as delivered:
 *  - Window. At most ring.cap changes after the source's acknowledged
 *    position can have been produced: reading stops while the ring plus
 *    the slots popped but not yet acknowledged (ring.popped) fill it. So
 *    the window is the first max(cap of the last run, cap) changes the
 *    source hands out (snapshot: the rows after the saved progress).
 *  - Read-back. Each window change that passes validation is looked up by
 *    event id on its ingest topic: every partition is read from its high
 *    watermark minus the window's size for that topic up to the high
 *    watermark, with a group-less consumer, and further back (one window at
 *    a time, at most 64) while the oldest record read is still a window
 *    change (earlier duplicates of this agent, or another writer between).
 *    The event id is read from the envelope's first bytes
 *    (exb_pub_peek_event_id): no schema, no header on the wire.
 *  - Plan (exb_pub_recovery_plan). Per topic and key, the present prefix of
 *    the window's changes is delivered; from the first missing change of a
 *    key on, its changes are produced again. Skipped positions go into the
 *    ring's skip list: take() pushes them as DONE without producing, so
 *    they are acknowledged in order with the rest.
 *  - Cheap when nothing was in flight. data.dir/producer-state.db keeps
 *    stream_state(source_id, clean, max_inflight): clean=0 is written
 *    before the first produce, clean=1 by exb_publisher_destroy() once the
 *    ring is empty and acknowledged. A clean start reads nothing back; a
 *    missing row counts as unclean (a new agent's topics are empty: cheap).
 *    A snapshot table keeps snapshot_inflight(run, tbl, max_inflight) while
 *    its rows may be in flight; a resumed table with that row recovers the
 *    same way before it goes on.
 *  - Failure. If the broker cannot be read, nothing is produced; the
 *    recovery is tried again (1 s, doubling to 30 s). A change Kafka has but
 *    the read-back did not see is produced again: a duplicate with the same
 *    event id, never a loss.
 */
#include "exb_publisher.h"
#include "exb_publisher_int.h"
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
         "Directory for the agent's own files: control-plane cache (producer-control.db), and "
         "snapshot progress and what may be in flight after a crash (producer-state.db). "
         "Created if missing."},
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
        int popped;    /* popped since the last acknowledgement (saved progress) */
        int64_t *skip; /* positions Kafka already has (restart recovery), sorted */
        int nskip;
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
        int recovering;     /* the restart recovery is still to be done */
        int recover_ms;     /* its retry backoff */
        int64_t recover_at; /* mono ms */
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
        r->popped += popped;
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

enum {
        TAKE_SKIPPED = 2, /* Kafka already has it (restart recovery) */
        TAKE_PRODUCED = 1,
        TAKE_REJECTED = 0,
        TAKE_FULL = -2,
        TAKE_BUSY = -3,
        TAKE_FATAL = -1
};

static int skip_has(const pub_ring_t *r, int64_t pos)
{
        int lo = 0, hi = r->nskip;
        while (lo < hi) {
                int mid = lo + (hi - lo) / 2;
                if (r->skip[mid] < pos)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < r->nskip && r->skip[lo] == pos;
}

/* Validates, encodes and produces one change (or rejects it, or skips it
 * as already delivered). */
static int take(exb_publisher_t *pub, pub_ring_t *ring, const exb_change_t *chg, char *errstr,
                size_t errstr_size)
{
        char why[1024];
        if (ring->nskip && skip_has(ring, chg->pos)) {
                ring_push(ring, chg->pos, SLOT_DONE);
                if (ring == &pub->ring)
                        pub->last_taken = chg->pos;
                pub->stats.recovered++;
                return TAKE_SKIPPED;
        }
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
        if (pos) {
                pub->acked = pos;
                pub->ring.popped = 0;
        }
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

/* --------------------------------------------------------- restart recovery */

#define REC_MAX_ROUNDS 64    /* read-back windows per partition, at most */
#define REC_ROUND_MS   30000 /* one read-back round, at most */

static int rec_varint(const uint8_t *p, size_t len, size_t *off, int64_t *v)
{
        uint64_t u = 0;
        for (int i = 0; i < 10; i++) {
                if (*off >= len)
                        return -1;
                uint8_t b = p[(*off)++];
                u |= (uint64_t)(b & 0x7f) << (7 * i);
                if (!(b & 0x80)) {
                        *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
                        return 0;
                }
        }
        return -1;
}

int exb_pub_peek_event_id(const void *value, size_t len, const char **eid, size_t *eid_len)
{
        const uint8_t *p = value;
        size_t off = EXB_FRAME_HDR;
        int64_t op, n;
        if (!p || len < EXB_FRAME_HDR || p[0] != EXB_FRAME_MAGIC)
                return -1;
        if (rec_varint(p, len, &off, &op) || op < 0 || op >= EXB_OP_CNT)
                return -1;
        if (rec_varint(p, len, &off, &n) || n < 0 || (uint64_t)n > len - off)
                return -1;
        *eid = (const char *)p + off;
        *eid_len = (size_t)n;
        return 0;
}

static int plan_cmp(const void *a, const void *b)
{
        const exb_pubrec_ent_t *x = *(exb_pubrec_ent_t *const *)a;
        const exb_pubrec_ent_t *y = *(exb_pubrec_ent_t *const *)b;
        if (x->topic != y->topic)
                return x->topic < y->topic ? -1 : 1;
        size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
        int c = n ? memcmp(x->key, y->key, n) : 0;
        if (c)
                return c;
        if (x->key_len != y->key_len)
                return x->key_len < y->key_len ? -1 : 1;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int exb_pub_recovery_plan(exb_pubrec_ent_t *ents, int n)
{
        exb_pubrec_ent_t **by = exb_calloc((size_t)n + 1, sizeof(*by));
        for (int i = 0; i < n; i++)
                by[i] = &ents[i];
        qsort(by, (size_t)n, sizeof(*by), plan_cmp);
        int skipped = 0, gap = 0;
        for (int i = 0; i < n; i++) {
                exb_pubrec_ent_t *e = by[i];
                if (i == 0 || e->topic != by[i - 1]->topic || e->key_len != by[i - 1]->key_len ||
                    (e->key_len && memcmp(e->key, by[i - 1]->key, e->key_len)))
                        gap = 0; /* a new key */
                e->skip = e->present && !gap;
                gap |= !e->present;
                skipped += e->skip;
        }
        free(by);
        return skipped;
}

/* The window of one recovery: its changes, their topics. */
typedef struct rec_win_s {
        exb_pubrec_ent_t *ents;
        int n, cap;
        exb_pubrec_ent_t **by_eid; /* sorted by event id */
        const char *topics[64];    /* borrowed from pub->tables */
        int counts[64];            /* window changes per topic */
        int ntopics;
        int64_t read; /* records read back */
} rec_win_t;

static void win_free(rec_win_t *w)
{
        for (int i = 0; i < w->n; i++) {
                free((char *)w->ents[i].key);
                free((char *)w->ents[i].event_id);
        }
        free(w->ents);
        free(w->by_eid);
        memset(w, 0, sizeof(*w));
}

/* Adds a change the last run may have produced: only one that would be
 * produced (one that is rejected never reached Kafka). */
static void win_add(exb_publisher_t *pub, rec_win_t *w, const exb_change_t *chg)
{
        char why[1024];
        if (chg->table < 0 || chg->error)
                return;
        pub_table_t *t = &pub->tables[chg->table];
        exb_record_t rec = {
                chg->op,  exb_str(chg->event_id), exb_str(pub->dept), chg->ts_ms, chg->nvals,
                chg->vals};
        exb_buf_reset(&pub->key);
        if (exb_validate(&t->bind, &rec, why, sizeof(why)) != EXB_OK ||
            exb_record_key(&t->bind, &rec, &pub->key))
                return;
        int ti = 0;
        while (ti < w->ntopics && strcmp(w->topics[ti], t->topic_name))
                ti++;
        if (ti == w->ntopics) {
                if (ti == (int)EXB_ARRAY_CNT(w->topics))
                        return; /* not looked up: produced again if it was there */
                w->topics[w->ntopics++] = t->topic_name;
        }
        if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 256;
                w->ents = exb_realloc(w->ents, (size_t)w->cap * sizeof(*w->ents));
        }
        exb_pubrec_ent_t *e = &w->ents[w->n++];
        memset(e, 0, sizeof(*e));
        e->pos = chg->pos;
        e->topic = ti;
        e->key = exb_strndup((const char *)pub->key.p, pub->key.len);
        e->key_len = pub->key.len;
        e->event_id = exb_strdup(chg->event_id);
        w->counts[ti]++;
}

static int eid_cmp(const void *a, const void *b)
{
        return strcmp((*(exb_pubrec_ent_t *const *)a)->event_id,
                      (*(exb_pubrec_ent_t *const *)b)->event_id);
}

static exb_pubrec_ent_t *win_find(const rec_win_t *w, const char *eid, size_t len)
{
        int lo = 0, hi = w->n;
        while (lo < hi) {
                int mid = lo + (hi - lo) / 2;
                const char *m = w->by_eid[mid]->event_id;
                int c = strncmp(m, eid, len);
                if (c == 0 && m[len])
                        c = 1; /* m is longer */
                if (c == 0)
                        return w->by_eid[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

typedef struct rec_range_s {
        int topic;
        int32_t partition;
        int64_t lo, from, to; /* read [from, to); lo: the partition's low watermark */
        int done;
        int first_in_window; /* the oldest record read is a window change */
        int rounds;
} rec_range_t;

/* Reads the ranges (one round), marking the window changes found. Returns
 * 0, or -1 with errstr (the consumer failed). Ranges not read to their end
 * in time stay as they are (their changes count as missing). */
static int rec_read(exb_publisher_t *pub, rec_win_t *w, rec_range_t *rg, int n, char *errstr,
                    size_t errstr_size)
{
        exb_consumer_t *c = exb_consumer_new(pub->brokers, NULL, pub->kprops, pub->nkprops, NULL,
                                             errstr, errstr_size);
        if (!c)
                return -1;
        int left = 0;
        for (int i = 0; i < n; i++) {
                if (rg[i].done)
                        continue;
                if (exb_consumer_assign(c, w->topics[rg[i].topic], rg[i].partition, rg[i].from,
                                        errstr, errstr_size) != EXB_OK) {
                        exb_consumer_destroy(c);
                        return -1;
                }
                rg[i].first_in_window = -1; /* nothing read yet */
                left++;
        }
        exb_msg_t msgs[256];
        int64_t deadline = exb_mono_ms() + REC_ROUND_MS;
        int rc = 0;
        while (left > 0 && exb_mono_ms() < deadline) {
                int k = exb_consumer_poll(c, msgs, (int)EXB_ARRAY_CNT(msgs), 200, errstr,
                                          errstr_size);
                if (k < 0) {
                        rc = -1;
                        break;
                }
                for (int i = 0; i < k; i++) {
                        const exb_msg_t *m = &msgs[i];
                        rec_range_t *r = NULL;
                        for (int j = 0; j < n && !r; j++)
                                if (!rg[j].done && rg[j].partition == m->partition &&
                                    !strcmp(w->topics[rg[j].topic], m->topic))
                                        r = &rg[j];
                        if (r && m->offset >= r->from && m->offset < r->to) {
                                const char *eid;
                                size_t len;
                                exb_pubrec_ent_t *e = NULL;
                                w->read++;
                                if (!exb_pub_peek_event_id(m->value, m->len, &eid, &len))
                                        e = win_find(w, eid, len);
                                if (e && e->topic == r->topic)
                                        e->present = 1;
                                if (r->first_in_window < 0)
                                        r->first_in_window = e != NULL;
                                if (m->offset >= r->to - 1) {
                                        r->done = 1;
                                        left--;
                                }
                        }
                        exb_msg_release(&msgs[i]);
                }
        }
        if (left > 0 && rc == 0)
                EXB_WARN("%s: recovery: %d partition(s) not read back to their end within %d s; "
                         "their changes not found are sent again (duplicates possible)",
                         pub->where, left, REC_ROUND_MS / 1000);
        exb_consumer_destroy(c);
        return rc;
}

/* Looks the window up on Kafka (sets ents[].present). Returns 0, or -1 with
 * errstr (the broker cannot be read: try again later). */
static int rec_lookup(exb_publisher_t *pub, rec_win_t *w, char *errstr, size_t errstr_size)
{
        w->by_eid = exb_calloc((size_t)w->n + 1, sizeof(*w->by_eid));
        for (int i = 0; i < w->n; i++)
                w->by_eid[i] = &w->ents[i];
        qsort(w->by_eid, (size_t)w->n, sizeof(*w->by_eid), eid_cmp);

        rec_range_t *rg = NULL;
        int nrg = 0, rc = -1;
        int64_t t0 = exb_mono_ms();
        exb_consumer_t *meta = exb_consumer_new(pub->brokers, NULL, pub->kprops, pub->nkprops, NULL,
                                                errstr, errstr_size);
        if (!meta)
                return -1;
        for (int ti = 0; ti < w->ntopics; ti++) {
                exb_topic_info_t *infos = NULL;
                int ni = exb_admin_list_topics(pub->brokers, pub->kprops, pub->nkprops,
                                               w->topics[ti], &infos, 10000, errstr, errstr_size);
                if (ni < 0)
                        goto done;
                int nparts = 0;
                for (int i = 0; i < ni; i++)
                        if (!strcmp(infos[i].name, w->topics[ti]))
                                nparts = infos[i].partitions;
                exb_topic_infos_free(infos, ni);
                rg = exb_realloc(rg, (size_t)(nrg + nparts + 1) * sizeof(*rg));
                for (int p = 0; p < nparts; p++) {
                        int64_t lo, hi;
                        if (exb_consumer_watermarks(meta, w->topics[ti], p, &lo, &hi, 10000) !=
                            EXB_OK) {
                                exb_errf(errstr, errstr_size, "%s [%d]: cannot query watermarks",
                                         w->topics[ti], p);
                                goto done;
                        }
                        if (hi <= lo)
                                continue;
                        int64_t from = hi - w->counts[ti] > lo ? hi - w->counts[ti] : lo;
                        rg[nrg++] = (rec_range_t){ti, p, lo, from, hi, 0, -1, 1};
                }
        }
        EXB_DEBUG("%s: recovery: %d partition(s) to read back (metadata and watermarks: %lld ms)",
                  pub->where, nrg, (long long)(exb_mono_ms() - t0));
        /* Rounds: the tail first, then further back where the oldest record
         * read was still a window change. */
        for (;;) {
                int todo = 0;
                for (int i = 0; i < nrg; i++)
                        todo += !rg[i].done;
                if (!todo)
                        break;
                int64_t r0 = exb_mono_ms();
                if (rec_read(pub, w, rg, nrg, errstr, errstr_size))
                        goto done;
                EXB_DEBUG("%s: recovery: %d range(s) read in %lld ms (%lld records so far)",
                          pub->where, todo, (long long)(exb_mono_ms() - r0), (long long)w->read);
                for (int i = 0; i < nrg; i++) {
                        rec_range_t *r = &rg[i];
                        int again = r->done && r->first_in_window == 1 && r->from > r->lo &&
                                    r->rounds < REC_MAX_ROUNDS;
                        if (!r->done || !again) {
                                r->done = 1;
                                continue;
                        }
                        int64_t k = w->counts[r->topic];
                        r->to = r->from;
                        r->from = r->from - k > r->lo ? r->from - k : r->lo;
                        r->rounds++;
                        r->done = 0;
                }
        }
        rc = 0;
done:
        free(rg);
        exb_consumer_destroy(meta);
        return rc;
}

static int state_open(exb_publisher_t *pub, sqlite3 **db, char *path, size_t path_size,
                      char *errstr, size_t errstr_size)
{
        snprintf(path, path_size, "%s/producer-state.db", pub->data_dir);
        if (sqlite3_open(path, db) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "%s: %s", path, sqlite3_errmsg(*db));
                sqlite3_close(*db);
                *db = NULL;
                return -1;
        }
        sqlite3_busy_timeout(*db, 5000);
        return exb_sql_exec(*db, path, errstr, errstr_size,
                            "CREATE TABLE IF NOT EXISTS stream_state(source_id TEXT PRIMARY KEY,"
                            " clean INTEGER, max_inflight INTEGER);"
                            "CREATE TABLE IF NOT EXISTS snapshot_inflight(run INTEGER, tbl TEXT,"
                            " max_inflight INTEGER, PRIMARY KEY(run, tbl))");
}

/* Looks the window up and fills the ring's skip list; logs what it did. */
static int rec_apply(exb_publisher_t *pub, rec_win_t *w, pub_ring_t *ring, const char *what,
                     int64_t t0, char *errstr, size_t errstr_size)
{
        free(ring->skip);
        ring->skip = NULL;
        ring->nskip = 0;
        if (w->n > 0 && rec_lookup(pub, w, errstr, errstr_size))
                return -1;
        int present = 0, nskip = exb_pub_recovery_plan(w->ents, w->n);
        ring->skip = exb_calloc((size_t)nskip + 1, sizeof(*ring->skip));
        for (int i = 0; i < w->n; i++) {
                present += w->ents[i].present;
                if (w->ents[i].skip)
                        ring->skip[ring->nskip++] = w->ents[i].pos; /* source order: sorted */
        }
        EXB_INFO("%s: recovery (%s): %d change(s) may have been in flight at the last stop; %d "
                 "already on Kafka, not sent again%s (%lld record(s) read back in %lld ms)",
                 pub->where, what, w->n, nskip,
                 present > nskip ? " (some of a key after a missing one are sent again)" : "",
                 (long long)w->read, (long long)(exb_mono_ms() - t0));
        return 0;
}

/* The change stream's recovery, before anything is produced. Returns 0
 * (done), or -1 with errstr (try again later; nothing may be produced). */
static int recover_stream(exb_publisher_t *pub, char *errstr, size_t errstr_size)
{
        char path[4096];
        sqlite3 *db;
        int64_t t0 = exb_mono_ms();
        const char *sid = pub->plugin->id(pub->src);
        if (state_open(pub, &db, path, sizeof(path), errstr, errstr_size)) {
                sqlite3_close(db);
                return -1;
        }
        int rc = -1;
        int clean =
                (int)exb_sql_int(db, 0, "SELECT clean FROM stream_state WHERE source_id=%Q", sid);
        int64_t max =
                exb_sql_int(db, 0, "SELECT max_inflight FROM stream_state WHERE source_id=%Q", sid);
        if (max < pub->ring.cap)
                max = pub->ring.cap;
        if (clean) {
                EXB_INFO("%s: recovery: nothing was in flight at the last stop", pub->where);
        } else {
                rec_win_t w = {0};
                int64_t seen = 0;
                exb_change_t chg;
                int r = 0;
                pub->plugin->rewind(pub->src, 0);
                while (seen < max &&
                       (r = pub->plugin->next(pub->src, &chg, errstr, errstr_size)) == 1) {
                        seen++;
                        win_add(pub, &w, &chg);
                }
                pub->plugin->rewind(pub->src, 0);
                pub->last_taken = 0;
                r = r < 0 ? -1
                          : rec_apply(pub, &w, &pub->ring, "change stream", t0, errstr,
                                      errstr_size);
                win_free(&w);
                if (r)
                        goto done;
        }
        /* From now on something may be in flight. */
        if (exb_sql_exec(db, path, errstr, errstr_size,
                         "INSERT OR REPLACE INTO stream_state VALUES(%Q, 0, %d)", sid,
                         pub->ring.cap))
                goto done;
        pub->recovering = 0;
        rc = 0;
done:
        sqlite3_close(db);
        return rc;
}

/* Runs the stream recovery if it is due; 0 when done. */
static int recovered(exb_publisher_t *pub)
{
        if (!pub->recovering)
                return 0;
        if (exb_mono_ms() < pub->recover_at)
                return -1;
        char err[1024];
        if (recover_stream(pub, err, sizeof(err)) == 0)
                return 0;
        pub->recover_ms = pub->recover_ms ? pub->recover_ms * 2 : PUB_BACKOFF_MIN;
        if (pub->recover_ms > PUB_BACKOFF_MAX)
                pub->recover_ms = PUB_BACKOFF_MAX;
        pub->recover_at = exb_mono_ms() + pub->recover_ms;
        EXB_WARN("%s: recovery: %s; nothing is published until it succeeds (again in %d ms)",
                 pub->where, err, pub->recover_ms);
        return -1;
}

/* At a clean stop (nothing in flight, everything acknowledged): the next
 * start need not read anything back. */
static void mark_clean(exb_publisher_t *pub)
{
        char path[4096], err[1024];
        sqlite3 *db;
        if (pub->recovering || pub->ring.n > 0 || pub->done_pos > pub->acked || pub->rej_pending)
                return;
        if (state_open(pub, &db, path, sizeof(path), err, sizeof(err)) ||
            exb_sql_exec(db, path, err, sizeof(err),
                         "INSERT OR REPLACE INTO stream_state VALUES(%Q, 1, %d)",
                         pub->plugin->id(pub->src), pub->ring.cap))
                EXB_WARN("%s: %s (the next start reads back what may have been in flight)",
                         pub->where, err);
        sqlite3_close(db);
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
        /* Before anything is produced: drop what the last run delivered
         * but could not acknowledge (retried by poll() if Kafka cannot be
         * read now). */
        pub->recovering = 1;
        recovered(pub);
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
                if (pub->src && ack(pub) == 0 && pub->ring.pending == 0)
                        mark_clean(pub);
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
        free(pub->ring.skip);
        free(pub->snap_ring.skip);
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
        /* Rebinding rewinds the source to its acknowledged position: only
         * once everything delivered is acknowledged (else sent twice). */
        if (pub->refresh && pub->ring.n == 0 && pub->done_pos <= pub->acked)
                refresh(pub);
        if (recovered(pub)) {
                wait_reports(pub, timeout_ms < 100 ? timeout_ms : 100);
                return 0;
        }

        /* At most ring.cap changes after the acknowledged one are ever
         * taken: what the restart recovery reads back. */
        pub_ring_t *ring = &pub->ring;
        int produced = 0, taken = 0, idle = 0;
        if (!pub->ring.failed && !pub->refresh && exb_mono_ms() >= pub->retry_at) {
                while (taken < pub->batch_size && ring->n + ring->popped < ring->cap) {
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
        int wait = idle || ring->n + ring->popped >= ring->cap ? timeout_ms : 0;
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

/* Saves the delivered prefix of a snapshot table. Returns 0 or -1 (logged). */
static int snap_save(exb_publisher_t *pub, sqlite3 *state, const char *state_path, int run,
                     const char *tbl, int64_t last, int done)
{
        char e[512];
        if (exb_sql_exec(state, state_path, e, sizeof(e),
                         "INSERT OR REPLACE INTO snapshot_progress VALUES(%d, %Q, %lld, %d)", run,
                         tbl, (long long)last, done)) {
                EXB_WARN("%s: %s", pub->where, e);
                return -1;
        }
        return 0;
}

/* A resumed snapshot table whose rows may have been in flight when its run
 * stopped: the rows after the saved progress that Kafka already has go
 * into the snapshot ring's skip list. Then marks the table as possibly in
 * flight. Returns 0, or -1 with errstr. */
static int snap_recover(exb_publisher_t *pub, sqlite3 *state, const char *state_path, int run,
                        int ti, int64_t last, char *errstr, size_t errstr_size)
{
        pub_table_t *t = &pub->tables[ti];
        pub_ring_t *ring = &pub->snap_ring;
        free(ring->skip);
        ring->skip = NULL;
        ring->nskip = 0;
        ring->popped = 0;
        int64_t max = exb_sql_int(state, 0,
                                  "SELECT max_inflight FROM snapshot_inflight WHERE run=%d AND "
                                  "tbl=%Q",
                                  run, t->name);
        if (max > 0) {
                int64_t t0 = exb_mono_ms(), cursor = last, seen = 0;
                rec_win_t w = {0};
                exb_change_t chg;
                int r = 0;
                if (max < ring->cap)
                        max = ring->cap;
                while (seen < max &&
                       (r = pub->plugin->snapshot_next(pub->src, ti, cursor, run, &chg, errstr,
                                                       errstr_size)) == 1) {
                        seen++;
                        cursor = chg.pos;
                        win_add(pub, &w, &chg);
                }
                char what[300];
                snprintf(what, sizeof(what), "snapshot %d of table %s", run, t->name);
                int backoff = PUB_BACKOFF_MIN;
                while (r >= 0 && rec_apply(pub, &w, ring, what, t0, errstr, errstr_size)) {
                        EXB_WARN("%s: recovery: %s; nothing is published until it succeeds "
                                 "(again in %d ms)",
                                 pub->where, errstr, backoff);
                        for (int64_t until = exb_mono_ms() + backoff;
                             exb_mono_ms() < until && !(pub->stop && *pub->stop);)
                                wait_reports(pub, 100);
                        if (pub->stop && *pub->stop) {
                                exb_errf(errstr, errstr_size,
                                         "%s: snapshot interrupted at table %s; run --snapshot "
                                         "again to resume",
                                         pub->where, t->name);
                                r = -1;
                        }
                        backoff = backoff * 2 > PUB_BACKOFF_MAX ? PUB_BACKOFF_MAX : backoff * 2;
                }
                win_free(&w);
                if (r < 0)
                        return -1;
        }
        return exb_sql_exec(state, state_path, errstr, errstr_size,
                            "INSERT OR REPLACE INTO snapshot_inflight VALUES(%d, %Q, %d)", run,
                            t->name, ring->cap);
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
        if (snap_recover(pub, state, state_path, run, ti, last, errstr, errstr_size))
                return -1;
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
                        while (!eof && taken < pub->batch_size &&
                               ring->n + ring->popped < ring->cap) {
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
                int n = reports(pub, ring,
                                eof || taken == 0 || ring->n + ring->popped >= ring->cap ? 100 : 0,
                                &popped_pos);
                if (n) {
                        last = popped_pos;
                        prog.done += n;
                        delivered += n;
                }
                /* Progress is saved only once the rejections before it are written. */
                if ((n || pub->rej_pending) && ack(pub) == 0 && last > saved &&
                    snap_save(pub, state, state_path, run, t->name, last, 0) == 0) {
                        saved = last;
                        ring->popped = 0;
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
                if (ack(pub) == 0 &&
                    (last <= saved ||
                     snap_save(pub, state, state_path, run, t->name, last, 0) == 0) &&
                    ring->n == 0) /* nothing in flight: a resume reads nothing back */
                        exb_sql_exec(state, state_path, NULL, 0,
                                     "DELETE FROM snapshot_inflight WHERE run=%d AND tbl=%Q", run,
                                     t->name);
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
        if (snap_save(pub, state, state_path, run, t->name, last, 1)) {
                exb_errf(errstr, errstr_size,
                         "%s: snapshot of table %s: cannot save its progress; run --snapshot "
                         "again to resume",
                         pub->where, t->name);
                return -1;
        }
        exb_sql_exec(state, state_path, NULL, 0,
                     "DELETE FROM snapshot_inflight WHERE run=%d AND tbl=%Q", run, t->name);
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
        /* The change stream's recovery first: it reads back the tail of the
         * topics, which the snapshot is about to extend. */
        while (recovered(pub)) {
                if (pub->stop && *pub->stop) {
                        exb_errf(errstr, errstr_size,
                                 "%s: snapshot interrupted before it started (the restart "
                                 "recovery could not read Kafka)",
                                 pub->where);
                        return -1;
                }
                wait_reports(pub, 100);
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
                         " last_pos INTEGER, done INTEGER, PRIMARY KEY(run, tbl));"
                         "CREATE TABLE IF NOT EXISTS snapshot_inflight(run INTEGER, tbl TEXT,"
                         " max_inflight INTEGER, PRIMARY KEY(run, tbl))"))
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
