/*
 * exb_receiver.c — the consumer agent (see exb_receiver.h for what it does
 * and exb_sink.h for the sink contract).
 *
 * State:
 *   rc_schema  delivery schemas by id, loaded from the control plane on first
 *              sight and kept (a schema id never changes meaning).
 *   rc_part    one per partition seen or assigned: `pos`, the next offset
 *              the sink has not applied yet (-1 = not known yet: the first
 *              message fetched sets it), and whether it must be rewound to
 *              pos before consumption resumes.
 *
 * A batch is taken with exb_consumer_poll(); messages below their
 * partition's pos are skipped (already applied), the rest are decoded into a
 * batch of exb_sink_rec_t (decode failures become dead letters) and handed
 * to the sink in one write(). Decoded values point into the Kafka messages,
 * which are released only after write() returns.
 *
 * Sink down: write() returns EXB_ERR_RETRY having applied nothing. The
 * consumer is paused, the partitions of the batch are marked for a rewind to
 * their pos, and until the backoff has passed poll() only serves rebalances
 * (anything that still arrives is dropped and its partition marked for a
 * rewind too). Then every marked partition is sought back to pos and
 * consumption resumes: the same records come again, nothing was committed.
 */
#include "exb_receiver.h"
#include "exb_codec.h"
#include "exb_control.h"
#include "exb_kafka.h"
#include "exb_sink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RC_MAX_VALUE      (64 * 1024 * 1024) /* larger values are dead letters */
#define RC_BACKOFF_MIN_MS 250
#define RC_BACKOFF_MAX_MS 30000
#define RC_ERRLEN         400

const exb_prop_t exb_receiver_props[] = {
        {"dept", EXB_PROP_STR, offsetof(exb_receiver_conf_t, dept), NULL, NULL,
         "Code of the subscribing department: its deliveries exb.deliver.<dept>.* are consumed.",
         1},
        {"brokers", EXB_PROP_STR, offsetof(exb_receiver_conf_t, brokers), NULL, NULL,
         "Kafka bootstrap servers (host:port,...). -b or --data-dir on the command line override "
         "it."},
        {"data.dir", EXB_PROP_STR, offsetof(exb_receiver_conf_t, data_dir), NULL, ".",
         "Directory for the agent's local files (control-plane cache, default sink database)."},
        {"sink.type", EXB_PROP_ENUM, offsetof(exb_receiver_conf_t, sink_type),
         "sqlite|uplink|http|jsonl", "sqlite",
         "Where delivered records go. sqlite: one table per resource in the subscriber's database, "
         "offsets in the same transaction (exactly once). uplink: forward to another exchange "
         "node's Kafka as a providing department (级联/回流). http: POST JSON batches to the "
         "department's service (sink.url), no commit before a 2xx. jsonl: rotating JSON Lines "
         "files per resource under sink.path, offsets beside them (exactly once)."},
        {"sink.path", EXB_PROP_STR, offsetof(exb_receiver_conf_t, sink_path), NULL, NULL,
         "Location of the sink; sqlite: the database file (default "
         "<data.dir>/consumer-<dept>.db)."},
        {"sink.", EXB_PROP_PREFIX, offsetof(exb_receiver_conf_t, sink), NULL, NULL,
         "Other keys of the chosen sink, checked against its own table (sqlite: "
         "sink.busy.timeout.ms, sink.synchronous)."},
        {"group.id", EXB_PROP_STR, offsetof(exb_receiver_conf_t, group_id), NULL, NULL,
         "Consumer group (default exbus-consumer-<dept>). Instances sharing it share the "
         "partitions."},
        {"batch.linger.ms", EXB_PROP_INT, offsetof(exb_receiver_conf_t, linger_ms), "0..60000", "0",
         "How long a batch may wait to fill up once its first record is in (fewer, larger sink "
         "writes: HTTP POSTs, JSONL appends) at the cost of that much latency."},
        {"batch.size", EXB_PROP_INT, offsetof(exb_receiver_conf_t, batch_size), "1..100000", "2000",
         "Records per batch; a batch is one sink transaction."},
        {"kafka.", EXB_PROP_PREFIX, offsetof(exb_receiver_conf_t, kafka), NULL, NULL,
         "Passed to librdkafka as is (e.g. kafka.security.protocol). Default here: "
         "topic.metadata.refresh.interval.ms=5000, so new delivery topics are found within "
         "seconds."},
        {NULL}};

static const exb_sink_plugin_t *const sink_plugins[] = {&exb_sink_sqlite, &exb_sink_uplink,
                                                        &exb_sink_http, &exb_sink_jsonl, NULL};

const exb_sink_plugin_t *exb_sink_find(const char *name)
{
        for (int i = 0; name && sink_plugins[i]; i++)
                if (!strcmp(sink_plugins[i]->name, name))
                        return sink_plugins[i];
        return NULL;
}

typedef struct rc_schema_s {
        int32_t id;
        exb_schema_t *schema;
        char *resource; /* resource code it belongs to (may be NULL) */
} rc_schema_t;

typedef struct rc_part_s {
        char *topic;
        int32_t partition;
        int64_t pos; /* next offset to apply, -1 unknown */
        int rewind;  /* seek to pos before resuming */
} rc_part_t;

struct exb_receiver_s {
        char *dept, *brokers, *data_dir, *group_id, *cluster_id;
        char prefix[64]; /* "exb.deliver.<dept>." */
        int batch_size;
        int linger_ms;
        const exb_sink_plugin_t *plugin;
        void *sink_conf;
        void *sink;
        exb_control_t *ctl;
        exb_consumer_t *consumer;
        int nschemas;
        rc_schema_t *schemas;
        int last_schema;
        int synced; /* control plane synced during this batch */
        uint64_t checked_gen; /* control generation of the last check_readable() */
        int nparts;
        rc_part_t *parts;
        /* batch buffers, batch_size each */
        exb_msg_t *msgs;
        exb_sink_rec_t *recs;
        exb_record_t *records;
        size_t *val_off;
        char (*errs)[RC_ERRLEN];
        exb_sink_pos_t *pos;
        exb_val_t *vals;
        size_t vals_cap;
        /* sink down */
        int paused;
        int backoff_ms;
        int64_t backoff_until;
        unsigned jitter_seed;
        exb_receiver_stats_t stats;
};

/* ------------------------------------------------------------- partitions */

static rc_part_t *part_get(exb_receiver_t *rcv, const char *topic, int32_t partition)
{
        for (int i = 0; i < rcv->nparts; i++)
                if (rcv->parts[i].partition == partition && !strcmp(rcv->parts[i].topic, topic))
                        return &rcv->parts[i];
        rcv->parts = exb_realloc(rcv->parts, sizeof(*rcv->parts) * (size_t)(rcv->nparts + 1));
        rc_part_t *p = &rcv->parts[rcv->nparts++];
        *p = (rc_part_t){exb_strdup(topic), partition, -1, 0};
        return p;
}

static void part_drop(exb_receiver_t *rcv, const char *topic, int32_t partition)
{
        for (int i = 0; i < rcv->nparts; i++)
                if (rcv->parts[i].partition == partition && !strcmp(rcv->parts[i].topic, topic)) {
                        free(rcv->parts[i].topic);
                        rcv->parts[i] = rcv->parts[--rcv->nparts];
                        return;
                }
}

static int64_t on_assign(void *opaque, const char *topic, int32_t partition)
{
        exb_receiver_t *rcv = opaque;
        int64_t off = EXB_OFFSET_STORED;
        if (rcv->plugin->offset) {
                int64_t lo, hi;
                if (exb_consumer_watermarks(rcv->consumer, topic, partition, &lo, &hi, 5000) !=
                    EXB_OK)
                        hi = -1;
                off = rcv->plugin->offset(rcv->sink, topic, partition, hi);
        }
        rc_part_t *p = part_get(rcv, topic, partition);
        p->pos = off >= 0 ? off : -1;
        p->rewind = 0;
        if (off >= 0)
                EXB_INFO("assigned %s [%d] from offset %" PRId64 " (the sink's)", topic,
                         (int)partition, off);
        else
                EXB_INFO("assigned %s [%d] from %s", topic, (int)partition,
                         off == EXB_OFFSET_BEGINNING ? "the beginning" : "the committed offset");
        return off;
}

static void on_revoke(void *opaque, const char *topic, int32_t partition)
{
        exb_receiver_t *rcv = opaque;
        EXB_INFO("revoked %s [%d]", topic, (int)partition);
        part_drop(rcv, topic, partition); /* every batch is applied before poll returns */
}

/* ---------------------------------------------------------------- schemas */

/* Delivery schema `id` for resource code `resource`, or NULL with errstr. */
static const exb_schema_t *schema_for(exb_receiver_t *rcv, int32_t id, const char *resource,
                                      char *errstr, size_t errstr_size)
{
        rc_schema_t *s = NULL;
        if (rcv->last_schema >= 0 && rcv->schemas[rcv->last_schema].id == id)
                s = &rcv->schemas[rcv->last_schema];
        for (int i = 0; !s && i < rcv->nschemas; i++)
                if (rcv->schemas[i].id == id) {
                        s = &rcv->schemas[i];
                        rcv->last_schema = i;
                }
        if (!s) {
                char *owner = exb_control_schema_resource(rcv->ctl, id, "delivery");
                /* Registered after our last read? The schema record is
                 * written before any record that uses it, so one sync per
                 * batch, after the batch was fetched, sees every schema the
                 * batch can name. */
                if (!owner && !rcv->synced) {
                        char err[256];
                        rcv->synced = 1;
                        if (exb_control_sync(rcv->ctl, 5000, err, sizeof(err)) < 0)
                                EXB_WARN("%s", err);
                        owner = exb_control_schema_resource(rcv->ctl, id, "delivery");
                }
                if (!owner) {
                        exb_errf(errstr, errstr_size,
                                 "unknown schema id %d (not a delivery schema on the control plane)",
                                 (int)id);
                        return NULL;
                }
                exb_schema_t *schema = exb_control_schema(rcv->ctl, id);
                if (!schema) {
                        exb_errf(errstr, errstr_size, "schema id %d cannot be parsed", (int)id);
                        free(owner);
                        return NULL;
                }
                rcv->schemas = exb_realloc(rcv->schemas,
                                           sizeof(*rcv->schemas) * (size_t)(rcv->nschemas + 1));
                rcv->last_schema = rcv->nschemas;
                s = &rcv->schemas[rcv->nschemas++];
                *s = (rc_schema_t){id, schema, owner};
                EXB_DEBUG("schema %d (%s) of %s: %d items", (int)id, schema->name,
                          owner ? owner : "?", schema->nfields);
        }
        if (!s->resource || strcmp(s->resource, resource)) {
                exb_errf(errstr, errstr_size, "schema id %d belongs to resource %s, not %s",
                         (int)id, s->resource ? s->resource : "(none)", resource);
                return NULL;
        }
        return s->schema;
}

/* ------------------------------------------------------------------ batch */

/* exb.deliver.<dept>.<code> -> code, or NULL if not such a topic. */
static const char *topic_resource(const exb_receiver_t *rcv, const char *topic)
{
        size_t n = strlen(rcv->prefix);
        if (strncmp(topic, rcv->prefix, n))
                return NULL;
        const char *code = topic + n;
        size_t len = strlen(code);
        if (len < 1 || len > 64)
                return NULL;
        for (const char *p = code; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= 'a' && *p <= 'z') || *p == '-'))
                        return NULL;
        return code;
}

static void vals_reserve(exb_receiver_t *rcv, size_t need)
{
        if (need <= rcv->vals_cap)
                return;
        size_t cap = rcv->vals_cap ? rcv->vals_cap : 1024;
        while (cap < need)
                cap *= 2;
        rcv->vals = exb_realloc(rcv->vals, cap * sizeof(exb_val_t));
        rcv->vals_cap = cap;
}

/* Fills recs[i] for message m; returns the number of values it used. */
static size_t decode_one(exb_receiver_t *rcv, int i, size_t vals_used)
{
        const exb_msg_t *m = &rcv->msgs[i];
        exb_sink_rec_t *r = &rcv->recs[i];
        char *err = rcv->errs[i];
        *r = (exb_sink_rec_t){.topic = m->topic,
                              .partition = m->partition,
                              .offset = m->offset,
                              .key = m->key,
                              .key_len = m->key_len,
                              .value = m->value,
                              .len = m->len};
        exb_msg_header(m, "exb-path", &r->path, &r->path_len);
        r->resource = topic_resource(rcv, m->topic);
        int32_t id;
        const exb_schema_t *schema;
        if (!r->resource) {
                exb_errf(err, RC_ERRLEN, "topic %s is not a delivery topic %s<resource code>",
                         m->topic, rcv->prefix);
        } else if (!m->value) {
                exb_errf(err, RC_ERRLEN, "empty value");
        } else if (m->len > RC_MAX_VALUE) {
                exb_errf(err, RC_ERRLEN, "value of %zu bytes exceeds %d", m->len, RC_MAX_VALUE);
        } else if (exb_frame_schema_id(m->value, m->len, &id, err, RC_ERRLEN) != EXB_OK ||
                   !(schema = schema_for(rcv, id, r->resource, err, RC_ERRLEN))) {
                /* err is set */
        } else {
                vals_reserve(rcv, vals_used + (size_t)schema->nfields);
                exb_record_t *rec = &rcv->records[i];
                *rec = (exb_record_t){.vals = rcv->vals + vals_used};
                if (exb_codec_decode(schema, m->value, m->len, rec, err, RC_ERRLEN) == EXB_OK) {
                        r->schema = schema;
                        r->rec = rec;
                        rcv->val_off[i] = vals_used;
                        return (size_t)schema->nfields;
                }
        }
        r->error = err;
        return 0;
}

static void pause_sink_down(exb_receiver_t *rcv, int npos, const char *why)
{
        rcv->stats.errors++;
        for (int i = 0; i < npos; i++)
                part_get(rcv, rcv->pos[i].topic, rcv->pos[i].partition)->rewind = 1;
        rcv->backoff_ms = rcv->backoff_ms ? rcv->backoff_ms * 2 : RC_BACKOFF_MIN_MS;
        if (rcv->backoff_ms > RC_BACKOFF_MAX_MS)
                rcv->backoff_ms = RC_BACKOFF_MAX_MS;
        /* "Equal jitter": half the step plus a random part of the other
         * half, so instances that failed together do not retry together. */
        int delay = rcv->backoff_ms / 2 + (int)((unsigned)rand_r(&rcv->jitter_seed) %
                                                (unsigned)(rcv->backoff_ms / 2 + 1));
        rcv->backoff_until = exb_mono_ms() + delay;
        if (!rcv->paused && exb_consumer_pause(rcv->consumer) != EXB_OK)
                EXB_WARN("cannot pause consumption: records will be fetched and dropped");
        rcv->paused = 1;
        EXB_WARN("sink down: %s: nothing applied, consumption paused, retrying in %d ms", why,
                 delay);
}

/* While paused: waits, serving rebalances. Returns 1 when it is time to
 * resume, 0 to keep waiting, -1 on a fatal consumer error. */
static int backoff_wait(exb_receiver_t *rcv, int timeout_ms, char *errstr, size_t errstr_size)
{
        int64_t left = rcv->backoff_until - exb_mono_ms();
        if (left > 0) {
                int wait = left < timeout_ms ? (int)left : timeout_ms;
                int n = exb_consumer_poll(rcv->consumer, rcv->msgs, rcv->batch_size,
                                          wait < 0 ? 0 : wait, errstr, errstr_size);
                if (n < 0)
                        return -1;
                for (int i = 0; i < n; i++) { /* fetched before the pause: read again later */
                        rc_part_t *p = part_get(rcv, rcv->msgs[i].topic, rcv->msgs[i].partition);
                        if (p->pos < 0)
                                p->pos = rcv->msgs[i].offset;
                        p->rewind = 1;
                        exb_msg_release(&rcv->msgs[i]);
                }
                if (rcv->backoff_until - exb_mono_ms() > 0)
                        return 0;
        }
        for (int i = 0; i < rcv->nparts; i++) {
                rc_part_t *p = &rcv->parts[i];
                if (p->rewind && p->pos >= 0)
                        exb_consumer_seek(rcv->consumer, p->topic, p->partition, p->pos);
                p->rewind = 0;
        }
        exb_consumer_resume(rcv->consumer);
        rcv->paused = 0;
        return 1;
}

/* Is every delivery topic of this department's active subscriptions
 * readable by the principal we log in as? With a pattern subscription a
 * topic the principal may not DESCRIBE is invisible, so without this check an
 * unauthorized reader would wait forever. A watermark query asks the broker
 * about the topic by name: an authorization failure is the only fatal answer
 * (a topic not created yet or a broker out of reach is left for later).
 * Returns -1 with errstr naming the topic, else 0. */
static int check_readable(exb_receiver_t *rcv, char *errstr, size_t errstr_size)
{
        exb_sub_t *subs;
        int ns = exb_control_subs(rcv->ctl, &subs), rc = 0;
        int64_t now = exb_now_ms(), lo, hi;
        char topic[256];
        rcv->checked_gen = exb_control_generation(rcv->ctl);
        for (int i = 0; i < ns && !rc; i++) {
                if (strcmp(subs[i].subscriber, rcv->dept) || !exb_sub_active(&subs[i], now))
                        continue;
                exb_sub_topic(&subs[i], topic, sizeof(topic));
                if (exb_consumer_watermarks(rcv->consumer, topic, 0, &lo, &hi, 1000) ==
                    EXB_ERR_FATAL) {
                        exb_errf(errstr, errstr_size,
                                 "consumer %s: not authorized to read %s (ask the exchange "
                                 "operator: exbus acl sync)",
                                 rcv->dept, topic);
                        rc = -1;
                }
        }
        exb_subs_free(subs, ns);
        return rc;
}

int exb_receiver_poll(exb_receiver_t *rcv, int timeout_ms, char *errstr, size_t errstr_size)
{
        exb_control_poll(rcv->ctl);
        if (exb_control_generation(rcv->ctl) != rcv->checked_gen &&
            check_readable(rcv, errstr, errstr_size) < 0)
                return -1;
        if (rcv->plugin->tick) /* time-driven sink work, e.g. file rotation */
                rcv->plugin->tick(rcv->sink);
        if (rcv->paused) {
                int r = backoff_wait(rcv, timeout_ms, errstr, errstr_size);
                if (r <= 0)
                        return r;
                timeout_ms = 0;
        }
        int n = exb_consumer_poll(rcv->consumer, rcv->msgs, rcv->batch_size, timeout_ms, errstr,
                                  errstr_size);
        /* batch.linger.ms: wait a little for a fuller batch (fewer, larger
         * sink writes, e.g. HTTP POSTs) once the first record is in. */
        for (int64_t until = exb_mono_ms() + rcv->linger_ms;
             n > 0 && n < rcv->batch_size && exb_mono_ms() < until;) {
                int more = exb_consumer_poll(rcv->consumer, rcv->msgs + n, rcv->batch_size - n,
                                             (int)(until - exb_mono_ms()), errstr, errstr_size);
                if (more < 0) {
                        for (int i = 0; i < n; i++)
                                exb_msg_release(&rcv->msgs[i]);
                        return -1;
                }
                n += more;
        }
        if (n <= 0)
                return n;
        rcv->stats.consumed += (uint64_t)n;
        rcv->synced = 0;

        /* Skip what the sink already has, decode the rest. */
        int nrecs = 0, npos = 0;
        size_t vals_used = 0;
        for (int i = 0; i < n; i++) {
                exb_msg_t *m = &rcv->msgs[i];
                rc_part_t *p = part_get(rcv, m->topic, m->partition);
                if (p->pos < 0)
                        p->pos = m->offset;
                if (m->offset < p->pos) {
                        rcv->stats.replays++;
                        exb_msg_release(m);
                        continue;
                }
                if (nrecs != i)
                        rcv->msgs[nrecs] = *m; /* compact: recs[k] belongs to msgs[k] */
                vals_used += decode_one(rcv, nrecs, vals_used);
                int k;
                for (k = 0; k < npos; k++)
                        if (rcv->pos[k].partition == m->partition &&
                            !strcmp(rcv->pos[k].topic, rcv->msgs[nrecs].topic))
                                break;
                if (k == npos)
                        rcv->pos[npos++] = (exb_sink_pos_t){rcv->msgs[nrecs].topic,
                                                            rcv->msgs[nrecs].partition, 0};
                rcv->pos[k].next_offset = rcv->msgs[nrecs].offset + 1;
                nrecs++;
        }
        if (!nrecs)
                return 0;
        for (int i = 0; i < nrecs; i++) /* the pool may have moved while decoding */
                if (rcv->recs[i].rec)
                        rcv->records[i].vals = rcv->vals + rcv->val_off[i];

        exb_sink_batch_t batch = {nrecs, rcv->recs, npos, rcv->pos};
        exb_sink_result_t res = {0};
        char err[512];
        exb_err_t e = rcv->plugin->write(rcv->sink, &batch, &res, err, sizeof(err));
        int applied = 0;
        if (e == EXB_OK) {
                for (int k = 0; k < npos; k++) {
                        part_get(rcv, rcv->pos[k].topic, rcv->pos[k].partition)->pos =
                                rcv->pos[k].next_offset;
                        exb_consumer_store(rcv->consumer, rcv->pos[k].topic, rcv->pos[k].partition,
                                           rcv->pos[k].next_offset);
                }
                if (rcv->backoff_ms)
                        EXB_INFO("sink is back: consumption resumed");
                rcv->backoff_ms = 0;
                rcv->stats.batches++;
                rcv->stats.upserts += res.upserts;
                rcv->stats.deletes += res.deletes;
                rcv->stats.dead_letters += res.dead_letters;
                rcv->stats.replays += res.replays;
                applied = (int)(res.upserts + res.deletes);
                if (res.dead_letters) {
                        const char *first = NULL;
                        for (int i = 0; i < nrecs && !first; i++)
                                first = rcv->recs[i].error;
                        EXB_WARN("%" PRIu64 " record(s) of this batch kept as dead letters in the "
                                 "sink (exb_dead_letters)%s%s",
                                 res.dead_letters, first ? "; first: " : "", first ? first : "");
                }
        } else if (e == EXB_ERR_RETRY) {
                pause_sink_down(rcv, npos, err);
        } else {
                exb_errf(errstr, errstr_size, "%s", err);
                applied = -1;
        }
        for (int i = 0; i < nrecs; i++)
                exb_msg_release(&rcv->msgs[i]);
        return applied;
}

int exb_receiver_run(exb_receiver_t *rcv, volatile sig_atomic_t *stop)
{
        char err[512];
        while (!*stop) {
                if (exb_receiver_poll(rcv, 100, err, sizeof(err)) < 0) {
                        EXB_ERROR("%s: stopping (nothing unapplied was committed)", err);
                        return 1;
                }
        }
        return 0;
}

void exb_receiver_stats(const exb_receiver_t *rcv, exb_receiver_stats_t *stats)
{
        *stats = rcv->stats;
}

int exb_receiver_paused(const exb_receiver_t *rcv)
{
        return rcv->paused;
}

/* --------------------------------------------------------------- lifecycle */

static int dept_valid(const char *d)
{
        size_t n = d ? strlen(d) : 0;
        if (n < 1 || n > 32)
                return 0;
        for (; *d; d++)
                if (!((*d >= '0' && *d <= '9') || (*d >= 'A' && *d <= 'Z') ||
                      (*d >= 'a' && *d <= 'z') || *d == '_'))
                        return 0;
        return 1;
}

/* Loads the plugin's own configuration from sink.path and the sink.* keys. */
static int sink_conf_load(exb_receiver_t *rcv, const exb_receiver_conf_t *conf, char *errstr,
                          size_t errstr_size)
{
        const exb_prop_t *props = rcv->plugin->props;
        char where[64], key[256];
        snprintf(where, sizeof(where), "sink %s", rcv->plugin->name);
        rcv->sink_conf = exb_calloc(1, rcv->plugin->conf_size ? rcv->plugin->conf_size : 1);
        if (!props) {
                if (conf->sink_path || conf->sink.cnt) {
                        exb_errf(errstr, errstr_size, "%s: takes no sink.* keys (\"%s\" is set)",
                                 where, conf->sink_path ? "sink.path" : conf->sink.kvs[0].key);
                        return -1;
                }
                return 0;
        }
        exb_conf_defaults(props, rcv->sink_conf);
        if (conf->sink_path && exb_conf_set(props, rcv->sink_conf, "sink.path", conf->sink_path,
                                            where, errstr, errstr_size))
                return -1;
        for (int i = 0; i < conf->sink.cnt; i++) {
                snprintf(key, sizeof(key), "sink.%s", conf->sink.kvs[i].key);
                if (exb_conf_set(props, rcv->sink_conf, key, conf->sink.kvs[i].value, where, errstr,
                                 errstr_size))
                        return -1;
        }
        return exb_conf_check(props, rcv->sink_conf, where, errstr, errstr_size);
}

exb_receiver_t *exb_receiver_new(const exb_receiver_conf_t *conf, char *errstr, size_t errstr_size)
{
        if (!dept_valid(conf->dept)) {
                exb_errf(errstr, errstr_size,
                         "consumer: \"dept\": \"%s\" is not a department code ([A-Za-z0-9_], 1 to "
                         "32 characters)",
                         conf->dept ? conf->dept : "");
                return NULL;
        }
        if (!conf->brokers || !*conf->brokers) {
                exb_errf(errstr, errstr_size,
                         "consumer: no brokers (set \"brokers\", -b or "
                         "--data-dir)");
                return NULL;
        }
        const exb_sink_plugin_t *plugin =
                exb_sink_find(conf->sink_type ? conf->sink_type : "sqlite");
        if (!plugin) {
                exb_errf(errstr, errstr_size, "consumer: \"sink.type\": unknown sink \"%s\"",
                         conf->sink_type);
                return NULL;
        }
        exb_receiver_t *rcv = exb_calloc(1, sizeof(*rcv));
        rcv->plugin = plugin;
        rcv->last_schema = -1;
        rcv->jitter_seed = (unsigned)getpid() ^ (unsigned)exb_mono_ms();
        rcv->dept = exb_strdup(conf->dept);
        rcv->brokers = exb_strdup(conf->brokers);
        rcv->data_dir = exb_strdup(conf->data_dir && *conf->data_dir ? conf->data_dir : ".");
        char buf[4096];
        if (conf->group_id && *conf->group_id) {
                rcv->group_id = exb_strdup(conf->group_id);
        } else {
                snprintf(buf, sizeof(buf), "exbus-consumer-%s", conf->dept);
                rcv->group_id = exb_strdup(buf);
        }
        snprintf(rcv->prefix, sizeof(rcv->prefix), "exb.deliver.%s.", conf->dept);
        rcv->batch_size = conf->batch_size > 0 ? conf->batch_size : 2000;
        rcv->linger_ms = conf->linger_ms;
        size_t bs = (size_t)rcv->batch_size;
        rcv->msgs = exb_calloc(bs, sizeof(*rcv->msgs));
        rcv->recs = exb_calloc(bs, sizeof(*rcv->recs));
        rcv->records = exb_calloc(bs, sizeof(*rcv->records));
        rcv->val_off = exb_calloc(bs, sizeof(*rcv->val_off));
        rcv->errs = exb_calloc(bs, sizeof(*rcv->errs));
        rcv->pos = exb_calloc(bs, sizeof(*rcv->pos));
        if (sink_conf_load(rcv, conf, errstr, errstr_size))
                goto fail;

        /* Control plane (user's kafka.* only), then the group consumer with
         * the defaults first so kafka.* keys override them. */
        int nuser = conf->kafka.cnt;
        char client_id[128];
        snprintf(client_id, sizeof(client_id), "exbus-consumer-%s", rcv->dept); /* in exbus lag */
        exb_kprop_t *props = exb_calloc((size_t)nuser + 3, sizeof(*props));
        props[0] = (exb_kprop_t){"topic.metadata.refresh.interval.ms", "5000"};
        props[1] = (exb_kprop_t){"client.id", client_id};
        for (int i = 0; i < nuser; i++)
                props[2 + i] = (exb_kprop_t){conf->kafka.kvs[i].key, conf->kafka.kvs[i].value};
        snprintf(buf, sizeof(buf), "%s/consumer-%s-control.db", rcv->data_dir, rcv->dept);
        exb_rebalance_t rb = {on_assign, on_revoke, rcv};
        if (!(rcv->ctl = exb_control_new(rcv->brokers, props + 2, nuser, buf, 15000, errstr,
                                         errstr_size)) ||
            !(rcv->consumer = exb_consumer_new(rcv->brokers, rcv->group_id, props, nuser + 2, &rb,
                                               errstr, errstr_size))) {
                free(props);
                goto fail;
        }
        free(props);
        rcv->cluster_id = exb_consumer_cluster_id(rcv->consumer, 5000);
        exb_sink_env_t env = {rcv->dept, rcv->data_dir, rcv->cluster_id, rcv->brokers};
        if (!(rcv->sink = plugin->open(rcv->sink_conf, &env, errstr, errstr_size)))
                goto fail;
        if (check_readable(rcv, errstr, errstr_size) < 0)
                goto fail;
        char pattern[128];
        snprintf(pattern, sizeof(pattern), "^exb\\.deliver\\.%s\\..*", rcv->dept);
        const char *topics[] = {pattern};
        if (exb_consumer_subscribe(rcv->consumer, topics, 1, errstr, errstr_size) != EXB_OK)
                goto fail;
        EXB_INFO("consumer %s: group %s, topics %s*, sink %s", rcv->dept, rcv->group_id,
                 rcv->prefix, plugin->name);
        return rcv;
fail:
        exb_receiver_destroy(rcv);
        return NULL;
}

void exb_receiver_destroy(exb_receiver_t *rcv)
{
        if (!rcv)
                return;
        exb_consumer_destroy(rcv->consumer); /* commits stored offsets, leaves the group */
        if (rcv->sink)
                rcv->plugin->close(rcv->sink);
        exb_control_destroy(rcv->ctl);
        if (rcv->sink_conf && rcv->plugin->props)
                exb_conf_free(rcv->plugin->props, rcv->sink_conf);
        free(rcv->sink_conf);
        for (int i = 0; i < rcv->nschemas; i++) {
                exb_schema_destroy(rcv->schemas[i].schema);
                free(rcv->schemas[i].resource);
        }
        free(rcv->schemas);
        for (int i = 0; i < rcv->nparts; i++)
                free(rcv->parts[i].topic);
        free(rcv->parts);
        free(rcv->msgs);
        free(rcv->recs);
        free(rcv->records);
        free(rcv->val_off);
        free(rcv->errs);
        free(rcv->pos);
        free(rcv->vals);
        free(rcv->dept);
        free(rcv->brokers);
        free(rcv->data_dir);
        free(rcv->group_id);
        free(rcv->cluster_id);
        free(rcv);
}
