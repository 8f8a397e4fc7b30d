/*
 * exb_router.c — routing ingest records to subscribers (see exb_router.h).
 *
 * State, rebuilt whenever the control plane changes (rare):
 *   rt_resource  one per catalog resource: ingest topic, provider, DLQ topic,
 *                the active routes, the latest ingest schema (for filters).
 *   rt_route     one per active subscription: delivery schema and topic,
 *                masks, counters.
 *   rt_schema    one per writer schema id seen on ingest (loaded lazily):
 *                decoded with it, bound to the resource's items, and one
 *                rt_plan per route (field mapping + bound filter), built on
 *                first use.
 * Counters live in a separate list keyed by subscription / resource so they
 * survive rebuilds.
 *
 * Offsets: records are routed in epochs. Each partition remembers the next
 * offset consumed in the open epoch (rt_part.next); the epoch ends every
 * commit.interval.ms (at least once: wait until every output produced so
 * far is delivered, then store those offsets for the consumer's commit) or
 * transaction.interval.ms / transaction.max.records (exactly once: commit
 * the transaction with them), and before partitions are revoked. Nothing
 * is kept per record: a delivery report matters only when it is a failure.
 */
#include "exb_router.h"
#include "exb_codec.h"
#include "exb_control.h"
#include "exb_filter.h"
#include "exb_kafka.h"
#include "exb_mask.h"
#include "exb_validate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RT_MAX_VALUE (64 * 1024 * 1024)
#define RT_MAX_REQUEST "68157440" /* RT_MAX_VALUE + 1 MiB for key, headers, batch overhead */
#define RT_TXN_TIMEOUT_MS 60000 /* commit/abort: outlasts a broker restart */
#define RT_FLUSH_TIMEOUT_MS 30000 /* at least once: waiting for deliveries */
#define RT_CHUNK (1 << 20)   /* bytes of a pending-outputs chunk */
#define RT_PENDING_MAX 16    /* chunks held before the pending outputs are produced */

const exb_prop_t exb_router_props[] = {
    {"brokers", EXB_PROP_STR, offsetof(exb_router_conf_t, brokers), NULL, NULL,
     "Kafka bootstrap servers (host:port,...). -b or --data-dir on the command line override it."},
    {"data.dir", EXB_PROP_STR, offsetof(exb_router_conf_t, data_dir), NULL, ".",
     "Directory for the router's local files (control-plane cache)."},
    {"mask.secret", EXB_PROP_STR, offsetof(exb_router_conf_t, mask_secret), NULL, NULL,
     "HMAC key of `hash` masks (at least 16 characters). EXBUS_MASK_SECRET in the environment "
     "takes precedence. Never put on a topic."},
    {"group.id", EXB_PROP_STR, offsetof(exb_router_conf_t, group_id), NULL, "exbus-router",
     "Consumer group shared by all router instances."},
    {"topic.partitions", EXB_PROP_INT, offsetof(exb_router_conf_t, partitions), "1..1024", "4",
     "Partitions of the delivery topics the router creates."},
    {"batch.size", EXB_PROP_INT, offsetof(exb_router_conf_t, batch_size), "1..100000", "2000",
     "Records consumed per batch; control-plane changes apply between batches."},
    {"exactly.once", EXB_PROP_ENUM, offsetof(exb_router_conf_t, exactly_once), "auto|on|off",
     "auto",
     "Route in Kafka transactions, committing the consumed offsets with the outputs: no "
     "subscriber sees a record twice or an output of a crashed router. auto = on against a "
     "real Kafka, off against the embedded broker (it keeps no transactional offsets: on is "
     "an error there). off = at least once."},
    {"instance.id", EXB_PROP_STR, offsetof(exb_router_conf_t, instance_id), NULL, NULL,
     "Names this instance: client.id and transactional id are exbus-router-<instance.id>. "
     "Unique among running instances, stable across restarts (a restarted instance then "
     "aborts what it left open at once). Default: <hostname>-<hash of the absolute data.dir>."},
    {"commit.interval.ms", EXB_PROP_INT, offsetof(exb_router_conf_t, commit_interval_ms),
     "10..60000", "1000",
     "At least once: this often, wait until every output routed so far is delivered, then store "
     "the consumed offsets for commit. Longer = fewer waits (more throughput), more records "
     "routed again after a crash."},
    {"transaction.interval.ms", EXB_PROP_INT, offsetof(exb_router_conf_t, txn_interval_ms),
     "10..60000", "100",
     "exactly.once: commit the open transaction at least this often. Subscribers see records "
     "only after the commit: longer = fewer commits (more throughput), later delivery."},
    {"transaction.max.records", EXB_PROP_INT, offsetof(exb_router_conf_t, txn_max_records),
     "1..10000000", "100000", "exactly.once: commit once a transaction holds this many records."},
    {"kafka.", EXB_PROP_PREFIX, offsetof(exb_router_conf_t, kafka), NULL, NULL,
     "Passed to librdkafka as is (e.g. kafka.security.protocol)."},
    {NULL}};

typedef struct rt_stats_s {
        exb_route_stats_t s;
        struct rt_stats_s *next;
} rt_stats_t;

typedef struct rt_route_s {
        exb_sub_t *sub;             /* owned copy (exb_subs_free(sub, 1)) */
        exb_schema_t *out_schema;   /* delivery schema */
        exb_binding_t out_bind;     /* for the delivery key */
        exb_topic_t *topic;
        int partitions;             /* of topic; -1 = unknown: partition by the delivery key */
        exb_buf_t *scratch;         /* one per delivery field, for masked values */
        exb_route_stats_t *stats;
        exb_out_t *pending;         /* outputs not produced yet, in order (bytes in chunks) */
        int npending, cap_pending;
} rt_route_t;

typedef struct rt_resource_s {
        exb_resource_t *res;
        char *ingest_topic;
        int keeps_path;              /* its provider is an exchange node: keep exb-path */
        exb_schema_t *ingest_schema; /* latest version, for filter parsing */
        int nroutes;
        rt_route_t *routes;
        exb_route_stats_t *stats;
} rt_resource_t;

typedef struct rt_plan_s {
        int built;
        int broken;            /* the filter cannot be bound: deliver nothing */
        int *src;              /* per delivery field: writer field index or -1 */
        int *copy;             /* per delivery field: src when its encoded bytes can be copied
                                  (unmasked, same type and nullability), else -1 */
        int *build, nbuild;    /* the fields whose values a copying delivery needs: the
                                  ones not copied and the key */
        exb_filter_t *filter;  /* bound to the writer schema, NULL = all */
} rt_plan_t;

typedef struct rt_schema_s {
        int32_t id;
        exb_schema_t *schema;
        rt_resource_t *rres;
        exb_binding_t bind;
        rt_plan_t *plans; /* [rres->nroutes] */
} rt_schema_t;

typedef struct rt_part_s {
        char *topic;
        int32_t partition;
        int64_t next; /* next offset consumed in the open epoch, -1 = none */
} rt_part_t;

struct exb_router_s {
        char *brokers;          /* owned copies of what the router keeps from its conf */
        exb_kprop_t *props;
        int nprops;
        int partitions, batch_size;
        char *secret;
        size_t secret_len;
        exb_control_t *ctl;
        exb_consumer_t *consumer;
        exb_producer_t *producer;
        uint64_t generation;
        int64_t next_expiry_check;
        int nres;
        rt_resource_t *res;
        int nschemas;
        rt_schema_t *schemas;
        int nparts;
        rt_part_t **parts;
        rt_part_t *last_part; /* the one part_get() found last */
        rt_stats_t *stats;
        exb_msg_t *batch;
        exb_val_t *in_vals, *out_vals;
        exb_layout_t in_layout; /* of the record being routed */
        int max_fields;
        exb_buf_t enc, key;
        uint8_t **chunks;   /* bytes of the routes' pending outputs; [0..cur] in use */
        int nchunks, cur;
        size_t used;        /* of chunks[cur] */
        int txn;           /* exactly once: an epoch is a transaction */
        int epoch_open;
        int epoch_records; /* consumed in the open epoch */
        int64_t epoch_due; /* mono ms: end it by then */
        int epoch_ms, epoch_max_records;
        int fatal;
        char fatal_err[512];
};

static void set_fatal(exb_router_t *rtr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_fatal(exb_router_t *rtr, const char *fmt, ...)
{
        if (rtr->fatal)
                return;
        rtr->fatal = 1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rtr->fatal_err, sizeof(rtr->fatal_err), fmt, ap);
        va_end(ap);
}

/* ----------------------------------------------------------------- counters */

static exb_route_stats_t *stats_get(exb_router_t *rtr, const char *sub_id, const char *subscriber,
                                    const char *resource)
{
        for (rt_stats_t *s = rtr->stats; s; s = s->next)
                if (!strcmp(s->s.sub_id, sub_id) && !strcmp(s->s.resource, resource))
                        return &s->s;
        rt_stats_t *s = exb_calloc(1, sizeof(*s));
        snprintf(s->s.sub_id, sizeof(s->s.sub_id), "%s", sub_id);
        snprintf(s->s.subscriber, sizeof(s->s.subscriber), "%s", subscriber);
        snprintf(s->s.resource, sizeof(s->s.resource), "%s", resource);
        rt_stats_t **tail = &rtr->stats; /* keep insertion order */
        while (*tail)
                tail = &(*tail)->next;
        *tail = s;
        return &s->s;
}

int exb_router_stats(exb_router_t *rtr, exb_route_stats_t **stats)
{
        int n = 0;
        for (rt_stats_t *s = rtr->stats; s; s = s->next)
                n++;
        *stats = exb_calloc((size_t)n + 1, sizeof(**stats));
        int i = 0;
        for (int pass = 0; pass < 2; pass++)
                for (rt_stats_t *s = rtr->stats; s; s = s->next)
                        if ((pass == 0) == (s->s.sub_id[0] == '\0'))
                                (*stats)[i++] = s->s;
        return n;
}

/* ------------------------------------------------------------ routing table */

static void plans_free(rt_plan_t *plans, int n)
{
        for (int i = 0; plans && i < n; i++) {
                free(plans[i].src);
                free(plans[i].copy);
                free(plans[i].build);
                exb_filter_destroy(plans[i].filter);
        }
        free(plans);
}

static void table_free(exb_router_t *rtr)
{
        for (int i = 0; i < rtr->nschemas; i++) {
                rt_schema_t *s = &rtr->schemas[i];
                plans_free(s->plans, s->rres ? s->rres->nroutes : 0);
                exb_binding_free(&s->bind);
                exb_schema_destroy(s->schema);
        }
        free(rtr->schemas);
        rtr->schemas = NULL;
        rtr->nschemas = 0;
        for (int i = 0; i < rtr->nres; i++) {
                rt_resource_t *r = &rtr->res[i];
                for (int k = 0; k < r->nroutes; k++) {
                        rt_route_t *rt = &r->routes[k];
                        for (int f = 0; rt->out_schema && f < rt->out_schema->nfields; f++)
                                exb_buf_free(&rt->scratch[f]);
                        free(rt->scratch);
                        exb_binding_free(&rt->out_bind);
                        exb_schema_destroy(rt->out_schema);
                        exb_subs_free(rt->sub, 1);
                        free(rt->pending); /* empty: produced at the end of every batch */
                }
                free(r->routes);
                exb_schema_destroy(r->ingest_schema);
                exb_resource_destroy(r->res);
                free(r->ingest_topic);
        }
        free(rtr->res);
        rtr->res = NULL;
        rtr->nres = 0;
}

static void need_fields(exb_router_t *rtr, int n)
{
        if (n <= rtr->max_fields)
                return;
        rtr->max_fields = n;
        rtr->in_vals = exb_realloc(rtr->in_vals, sizeof(exb_val_t) * (size_t)n);
        rtr->out_vals = exb_realloc(rtr->out_vals, sizeof(exb_val_t) * (size_t)n);
        rtr->in_layout.pos = exb_realloc(rtr->in_layout.pos, sizeof(uint32_t) * (size_t)(n + 1));
}

/* Adds the route of an active subscription to its resource. */
static void route_add(exb_router_t *rtr, rt_resource_t *r, exb_sub_t *sub)
{
        char err[512], topic[256];
        exb_schema_t *out = exb_control_schema(rtr->ctl, sub->delivery_schema_id);
        if (!out) {
                EXB_ERROR("subscription %s: delivery schema %d unknown: not routed", sub->id,
                          (int)sub->delivery_schema_id);
                exb_subs_free(sub, 1);
                return;
        }
        rt_route_t rt = {.sub = sub, .out_schema = out, .partitions = -1};
        if (exb_binding_init(&rt.out_bind, r->res, out, err, sizeof(err))) {
                EXB_ERROR("subscription %s: %s: not routed", sub->id, err);
                exb_schema_destroy(out);
                exb_subs_free(sub, 1);
                return;
        }
        exb_sub_topic(sub, topic, sizeof(topic));
        rt.topic = exb_producer_topic(rtr->producer, topic);
        rt.scratch = exb_calloc((size_t)out->nfields, sizeof(exb_buf_t));
        for (int f = 0; f < out->nfields; f++)
                exb_buf_init(&rt.scratch[f], 1 << 20);
        rt.stats = stats_get(rtr, sub->id, sub->subscriber, sub->resource);
        need_fields(rtr, out->nfields);
        r->routes = exb_realloc(r->routes, sizeof(rt_route_t) * (size_t)(r->nroutes + 1));
        r->routes[r->nroutes++] = rt;
}

/* Learns the partition counts of the delivery topics that lack one (no
 * request when all are known). Until then a route partitions by the delivery
 * key (brokers down when the table was built): retried with the expiry
 * check; the first failure ends a try, so an unreachable cluster costs one
 * timeout, not one per route. */
static void learn_partitions(exb_router_t *rtr)
{
        for (int i = 0; i < rtr->nres; i++)
                for (int k = 0; k < rtr->res[i].nroutes; k++) {
                        rt_route_t *rt = &rtr->res[i].routes[k];
                        if (rt->partitions < 0 &&
                            (rt->partitions = exb_producer_partitions(rtr->producer, rt->topic,
                                                                      5000)) < 0)
                                return;
                }
}

/* Makes sure the delivery topics exist (real Kafka: CreateTopics; embedded
 * broker in another process: it creates them itself from the catalog) and
 * learns their partition counts. */
static void ensure_delivery_topics(exb_router_t *rtr)
{
        exb_topic_spec_t *specs = NULL;
        int n = 0;
        for (int i = 0; i < rtr->nres; i++)
                for (int k = 0; k < rtr->res[i].nroutes; k++) {
                        specs = exb_realloc(specs, sizeof(*specs) * (size_t)(n + 1));
                        specs[n++] = (exb_topic_spec_t){exb_topic_name(rtr->res[i].routes[k].topic),
                                                        rtr->partitions, 0};
                }
        char err[512];
        if (n && exb_admin_ensure_topics(rtr->brokers, rtr->props, rtr->nprops, specs, n, 10000, err,
                                         sizeof(err)) != EXB_OK)
                EXB_WARN("delivery topics: %s", err);
        else
                learn_partitions(rtr);
        free(specs);
}

static void table_build(exb_router_t *rtr)
{
        table_free(rtr);
        char **codes;
        int ncodes = exb_control_resources(rtr->ctl, NULL, &codes);
        for (int c = 0; c < ncodes; c++) {
                const char *code = codes[c];
                exb_resource_t *res = exb_control_resource(rtr->ctl, code, NULL);
                char err[512];
                exb_schema_t *is = res ? exb_resource_schema(res, err, sizeof(err)) : NULL;
                if (!is) {
                        exb_resource_destroy(res);
                        continue;
                }
                rtr->res = exb_realloc(rtr->res, sizeof(rt_resource_t) * (size_t)(rtr->nres + 1));
                rt_resource_t *r = &rtr->res[rtr->nres++];
                memset(r, 0, sizeof(*r));
                r->res = res;
                r->ingest_schema = is;
                char topic[256];
                snprintf(topic, sizeof(topic), "exb.ingest.%s.%s", res->provider, res->code);
                r->ingest_topic = exb_strdup(topic);
                r->keeps_path = exb_control_dept_node(rtr->ctl, res->provider);
                r->stats = stats_get(rtr, "", res->provider, res->code);
        }
        for (int c = 0; c < ncodes; c++)
                free(codes[c]);
        free(codes);
        exb_sub_t *subs;
        int nsubs = exb_control_subs(rtr->ctl, &subs);
        int64_t now = exb_now_ms();
        for (int i = 0; i < nsubs; i++) {
                rt_resource_t *r = NULL;
                for (int k = 0; k < rtr->nres && !r; k++)
                        if (!strcmp(rtr->res[k].res->code, subs[i].resource))
                                r = &rtr->res[k];
                if (!r || !exb_sub_active(&subs[i], now))
                        continue;
                exb_sub_t *copy = exb_control_sub(rtr->ctl, subs[i].id);
                if (copy)
                        route_add(rtr, r, copy);
        }
        exb_subs_free(subs, nsubs);
        int nroutes = 0;
        for (int i = 0; i < rtr->nres; i++)
                nroutes += rtr->res[i].nroutes;
        EXB_INFO("routing table: %d resources, %d active subscriptions", rtr->nres, nroutes);
        ensure_delivery_topics(rtr);
}

/* Rebuilds the table if the control plane changed or a subscription expired. */
static void table_refresh(exb_router_t *rtr)
{
        exb_control_poll(rtr->ctl);
        int64_t now = exb_mono_ms();
        if (exb_control_generation(rtr->ctl) != rtr->generation || now >= rtr->next_expiry_check) {
                int64_t wall = exb_now_ms();
                int stale = exb_control_generation(rtr->ctl) != rtr->generation;
                for (int i = 0; !stale && i < rtr->nres; i++)
                        for (int k = 0; k < rtr->res[i].nroutes; k++)
                                stale |= !exb_sub_active(rtr->res[i].routes[k].sub, wall);
                if (stale)
                        table_build(rtr);
                else
                        learn_partitions(rtr);
                rtr->generation = exb_control_generation(rtr->ctl);
                rtr->next_expiry_check = now + 10000;
        }
}

static rt_resource_t *resource_for_topic(exb_router_t *rtr, const char *topic)
{
        for (int i = 0; i < rtr->nres; i++)
                if (!strcmp(rtr->res[i].ingest_topic, topic))
                        return &rtr->res[i];
        return NULL;
}

/* The writer schema `id` for resource r, loading it on first sight.
 * NULL with errstr if unknown or of another resource. */
static rt_schema_t *schema_for(exb_router_t *rtr, rt_resource_t *r, int32_t id, char *errstr,
                               size_t errstr_size)
{
        for (int i = 0; i < rtr->nschemas; i++)
                if (rtr->schemas[i].id == id) {
                        if (rtr->schemas[i].rres == r)
                                return &rtr->schemas[i];
                        exb_errf(errstr, errstr_size, "schema id %d belongs to resource %s, not %s",
                                 (int)id, rtr->schemas[i].rres->res->code, r->res->code);
                        return NULL;
                }
        char *owner = exb_control_schema_resource(rtr->ctl, id, "resource");
        if (!owner) { /* perhaps registered a moment ago: catch up once */
                char err[256];
                exb_control_sync(rtr->ctl, 5000, err, sizeof(err));
                owner = exb_control_schema_resource(rtr->ctl, id, "resource");
        }
        if (!owner || strcmp(owner, r->res->code)) {
                exb_errf(errstr, errstr_size,
                         owner ? "schema id %d belongs to resource %s, not %s"
                               : "unknown schema id %d%.0s (not an ingest schema of the catalog) for %s",
                         (int)id, owner ? owner : "", r->res->code);
                free(owner);
                return NULL;
        }
        free(owner);
        exb_schema_t *schema = exb_control_schema(rtr->ctl, id);
        if (!schema) {
                exb_errf(errstr, errstr_size, "schema id %d cannot be parsed", (int)id);
                return NULL;
        }
        rtr->schemas = exb_realloc(rtr->schemas, sizeof(rt_schema_t) * (size_t)(rtr->nschemas + 1));
        rt_schema_t *s = &rtr->schemas[rtr->nschemas];
        memset(s, 0, sizeof(*s));
        s->id = id;
        s->schema = schema;
        s->rres = r;
        if (exb_binding_init(&s->bind, r->res, schema, errstr, errstr_size)) {
                exb_schema_destroy(schema);
                return NULL;
        }
        s->plans = exb_calloc((size_t)r->nroutes + 1, sizeof(rt_plan_t));
        need_fields(rtr, schema->nfields);
        rtr->nschemas++;
        return s;
}

static rt_plan_t *plan_for(rt_schema_t *s, int k)
{
        rt_plan_t *p = &s->plans[k];
        if (p->built)
                return p;
        rt_route_t *rt = &s->rres->routes[k];
        const exb_field_t *out = rt->out_schema->fields;
        p->src = exb_calloc((size_t)rt->out_schema->nfields, sizeof(int));
        p->copy = exb_calloc((size_t)rt->out_schema->nfields, sizeof(int));
        for (int f = 0; f < rt->out_schema->nfields; f++) {
                int src = p->src[f] = exb_schema_field_idx(s->schema, out[f].name);
                const exb_field_t *in = src >= 0 ? &s->schema->fields[src] : NULL;
                p->copy[f] = in && rt->sub->masks[f].kind == EXB_MASK_NONE &&
                                             in->type == out[f].type &&
                                             in->nullable == out[f].nullable
                                     ? src
                                     : -1;
        }
        p->build = exb_calloc((size_t)rt->out_schema->nfields, sizeof(int));
        for (int f = 0; f < rt->out_schema->nfields; f++) {
                int need = p->copy[f] < 0;
                for (int k = 0; k < rt->out_bind.nkey_fields; k++)
                        need |= rt->out_bind.key_field[k] == f;
                if (need)
                        p->build[p->nbuild++] = f;
        }
        if (rt->sub->filter) {
                char err[512];
                p->filter = exb_filter_parse(rt->sub->filter, s->rres->ingest_schema, err, sizeof(err));
                if (!p->filter || exb_filter_bind(p->filter, s->schema, err, sizeof(err))) {
                        /* validated at approval; reaching this is a catalog change */
                        EXB_ERROR("subscription %s: filter: %s: nothing is delivered to it",
                                  rt->sub->id, err);
                        exb_filter_destroy(p->filter);
                        p->filter = NULL;
                        p->broken = 1;
                }
        }
        p->built = 1;
        return p;
}

/* ------------------------------------------------------------------ offsets */

static rt_part_t *part_get(exb_router_t *rtr, const char *topic, int32_t partition)
{
        rt_part_t *p = rtr->last_part; /* a batch holds runs of one partition */
        if (p && p->partition == partition && !strcmp(p->topic, topic))
                return p;
        for (int i = 0; i < rtr->nparts; i++)
                if (rtr->parts[i]->partition == partition && !strcmp(rtr->parts[i]->topic, topic))
                        return rtr->last_part = rtr->parts[i];
        p = exb_calloc(1, sizeof(*p));
        p->topic = exb_strdup(topic);
        p->partition = partition;
        p->next = -1;
        rtr->parts = exb_realloc(rtr->parts, sizeof(*rtr->parts) * (size_t)(rtr->nparts + 1));
        rtr->parts[rtr->nparts++] = p;
        return p;
}

static void part_drop(exb_router_t *rtr, const char *topic, int32_t partition)
{
        for (int i = 0; i < rtr->nparts; i++) {
                rt_part_t *p = rtr->parts[i];
                if (p->partition != partition || strcmp(p->topic, topic))
                        continue;
                free(p->topic);
                if (rtr->last_part == p)
                        rtr->last_part = NULL;
                free(p);
                rtr->parts[i] = rtr->parts[--rtr->nparts];
                return;
        }
}

/* Successes need nothing: an epoch ends with a flush or a commit. */
static void on_delivery(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                        int32_t partition, int64_t offset)
{
        exb_router_t *rtr = opaque;
        (void)msg_opaque;
        (void)partition;
        (void)offset;
        if (err == EXB_OK)
                return;
        if (rtr->txn && err == EXB_ERR_RETRY) /* the transaction is aborted, routed again */
                EXB_WARN("%s: the transaction will be aborted and routed again", errstr);
        else
                set_fatal(rtr, "delivery of an output failed: %s", errstr);
}

/* ------------------------------------------------------------- transactions */

static void txn_begin(exb_router_t *rtr)
{
        char err[512];
        if (exb_producer_txn_begin(rtr->producer, err, sizeof(err)) != EXB_OK) {
                set_fatal(rtr, "%s", err);
                return;
        }
}

/* Commits the open transaction with the partitions' next offsets. If it
 * cannot be committed, aborts it and rewinds the consumer to the committed
 * offsets (its records are routed again); fatal if even that fails. */
static void txn_commit(exb_router_t *rtr)
{
        exb_offset_t *offs = exb_calloc((size_t)rtr->nparts + 1, sizeof(*offs));
        int n = 0;
        for (int i = 0; i < rtr->nparts; i++) {
                rt_part_t *p = rtr->parts[i];
                if (p->next >= 0)
                        offs[n++] = (exb_offset_t){p->topic, p->partition, p->next};
                p->next = -1;
        }
        char err[512], err2[512];
        exb_err_t r = exb_producer_txn_commit(rtr->producer, rtr->consumer, offs, n,
                                              RT_TXN_TIMEOUT_MS, err, sizeof(err));
        free(offs);
        if (r != EXB_ERR_RETRY) { /* committed, or fenced / not authorized: stop */
                if (r != EXB_OK)
                        set_fatal(rtr, "%s", err);
                return;
        }
        EXB_WARN("%s: aborted; its %d records are routed again", err, rtr->epoch_records);
        if (exb_producer_txn_abort(rtr->producer, RT_TXN_TIMEOUT_MS, err2, sizeof(err2)) != EXB_OK ||
            exb_consumer_rewind(rtr->consumer, RT_TXN_TIMEOUT_MS, err2, sizeof(err2)) != EXB_OK)
                set_fatal(rtr, "%s; then: %s", err, err2);
}

/* ------------------------------------------------------------------- epochs */

static void epoch_begin(exb_router_t *rtr)
{
        if (rtr->txn)
                txn_begin(rtr);
        rtr->epoch_open = !rtr->fatal;
        rtr->epoch_records = 0;
        rtr->epoch_due = exb_mono_ms() + rtr->epoch_ms;
}

/* Exactly once: commits the epoch's transaction. At least once: waits up to
 * timeout_ms until every output produced so far is delivered, then stores
 * the partitions' next offsets; still in flight, the epoch stays open. */
static void epoch_end(exb_router_t *rtr, int timeout_ms)
{
        if (rtr->txn) {
                rtr->epoch_open = 0;
                txn_commit(rtr);
                return;
        }
        if (exb_producer_flush(rtr->producer, timeout_ms) != EXB_OK) {
                EXB_WARN("outputs still in flight after %d ms: offsets not stored yet", timeout_ms);
                return;
        }
        if (rtr->fatal) /* a delivery failed: store nothing, its records are routed again */
                return;
        for (int i = 0; i < rtr->nparts; i++) {
                rt_part_t *p = rtr->parts[i];
                if (p->next >= 0)
                        exb_consumer_store(rtr->consumer, p->topic, p->partition, p->next);
                p->next = -1;
        }
        rtr->epoch_open = 0;
}

static void on_revoke(void *opaque, const char *topic, int32_t partition)
{
        exb_router_t *rtr = opaque;
        if (rtr->epoch_open && !rtr->fatal) /* the first revoked partition ends it for all */
                epoch_end(rtr, RT_FLUSH_TIMEOUT_MS);
        if (rtr->epoch_open)
                EXB_WARN("revoking %s [%d]: outputs still in flight; its records will be routed "
                         "again", topic, (int)partition);
        part_drop(rtr, topic, partition);
}

static int64_t on_assign(void *opaque, const char *topic, int32_t partition)
{
        (void)opaque;
        EXB_DEBUG("assigned %s [%d]", topic, (int)partition);
        return EXB_OFFSET_STORED;
}

/* ------------------------------------------------------------------ routing */

/* Produces one message, waiting while the local queue is full. */
static void produce(exb_router_t *rtr, exb_topic_t *t, int32_t partition, const void *key,
                    size_t key_len, const void *val, size_t len, const exb_header_t *hdrs,
                    int nhdrs)
{
        char err[256];
        for (;;) {
                exb_err_t r = exb_produce(rtr->producer, t, partition, key, key_len, val, len,
                                          hdrs, nhdrs, NULL, err, sizeof(err));
                if (r == EXB_OK)
                        return;
                if (r != EXB_ERR_RETRY) {
                        set_fatal(rtr, "produce to %s: %s", exb_topic_name(t), err);
                        return;
                }
                exb_producer_poll(rtr->producer, 10);
        }
}

static void dead_letter(exb_router_t *rtr, const exb_msg_t *m, const char *provider,
                        const char *stage, const char *why, rt_resource_t *r)
{
        char topic[128], part[16], off[24];
        snprintf(topic, sizeof(topic), "exb.dlq.%s", provider);
        snprintf(part, sizeof(part), "%d", (int)m->partition);
        snprintf(off, sizeof(off), "%lld", (long long)m->offset);
        exb_header_t hdrs[32];
        int n = exb_msg_headers(m, hdrs, 26);
        hdrs[n++] = (exb_header_t){"exb-error", why, strlen(why)};
        hdrs[n++] = (exb_header_t){"exb-error-stage", stage, strlen(stage)};
        hdrs[n++] = (exb_header_t){"exb-origin-topic", m->topic, strlen(m->topic)};
        hdrs[n++] = (exb_header_t){"exb-origin-partition", part, strlen(part)};
        hdrs[n++] = (exb_header_t){"exb-origin-offset", off, strlen(off)};
        EXB_DEBUG("dead letter %s [%s] @%s: %s: %s", m->topic, part, off, stage, why);
        produce(rtr, exb_producer_topic(rtr->producer, topic), -1, m->key, m->key_len, m->value,
                m->len, hdrs, n);
        if (r)
                r->stats->dlq++;
}

/* ------------------------------------------------------ pending outputs
 *
 * Deliveries are not produced one by one: each route collects its outputs
 * of a consumed batch, in order, and they are produced together at its end
 * (exb_produce_batch(): the topic and its partitions are looked up and the
 * clock read once, not per message). Their bytes are copied into chunks that
 * are reused batch after batch. An output with a header, or a large one, is
 * produced at once, after what its route has pending. */

/* Produces route rt's pending outputs. */
static void pending_produce(exb_router_t *rtr, rt_route_t *rt)
{
        char err[256];
        if (rt->npending && !rtr->fatal &&
            exb_produce_batch(rtr->producer, rt->topic, rt->pending, rt->npending, err,
                              sizeof(err)) != EXB_OK)
                set_fatal(rtr, "%s", err);
        rt->npending = 0;
}

/* Produces every route's pending outputs; the chunks are free again. */
static void pending_produce_all(exb_router_t *rtr)
{
        for (int i = 0; i < rtr->nres; i++)
                for (int k = 0; k < rtr->res[i].nroutes; k++)
                        pending_produce(rtr, &rtr->res[i].routes[k]);
        rtr->cur = 0;
        rtr->used = 0;
}

/* n bytes in the chunks (n <= RT_CHUNK); may produce what is pending first. */
static uint8_t *chunk_space(exb_router_t *rtr, size_t n)
{
        if (!rtr->nchunks || rtr->used + n > RT_CHUNK) {
                if (rtr->nchunks && rtr->cur + 1 == RT_PENDING_MAX)
                        pending_produce_all(rtr); /* bounds the memory held */
                else if (rtr->nchunks)
                        rtr->cur++, rtr->used = 0;
                if (rtr->cur == rtr->nchunks) {
                        rtr->chunks = exb_realloc(rtr->chunks,
                                                  sizeof(*rtr->chunks) * (size_t)(rtr->nchunks + 1));
                        rtr->chunks[rtr->nchunks++] = exb_calloc(1, RT_CHUNK);
                }
        }
        uint8_t *p = rtr->chunks[rtr->cur] + rtr->used;
        rtr->used += n;
        return p;
}

/* Adds an output to route rt, or produces it at once (see above). */
static void output(exb_router_t *rtr, rt_route_t *rt, int32_t partition, const exb_buf_t *key,
                   const exb_buf_t *val, const exb_header_t *path)
{
        if (path || key->len + val->len > RT_CHUNK / 16) {
                pending_produce(rtr, rt);
                produce(rtr, rt->topic, partition, key->p, key->len, val->p, val->len, path,
                        path ? 1 : 0);
                return;
        }
        uint8_t *b = chunk_space(rtr, key->len + val->len);
        if (rt->npending == rt->cap_pending) {
                rt->cap_pending = rt->cap_pending ? 2 * rt->cap_pending : 256;
                rt->pending = exb_realloc(rt->pending, sizeof(exb_out_t) * (size_t)rt->cap_pending);
        }
        if (key->len)
                memcpy(b, key->p, key->len);
        memcpy(b + key->len, val->p, val->len);
        rt->pending[rt->npending++] =
                (exb_out_t){partition, b, key->len, b + key->len, val->len, NULL};
}

/* Builds and produces the delivery of rec (consumed as m) for route k. It
 * goes to the partition of the ingest key, not of the delivery key: a masked
 * key must not scatter one source record's changes over partitions (their
 * order is kept within one), and runs of one ingest partition stay runs. */
static void route_one(exb_router_t *rtr, rt_schema_t *s, int k, const exb_msg_t *m,
                      const exb_record_t *rec, const exb_header_t *path)
{
        rt_route_t *rt = &s->rres->routes[k];
        rt_plan_t *p = plan_for(s, k);
        exb_op_t op = rec->op;
        rt->stats->in++;
        if (p->broken) {
                rt->stats->filtered++;
                return;
        }
        if (op != EXB_OP_DELETE && p->filter && !exb_filter_eval(p->filter, rec)) {
                if (op != EXB_OP_UPDATE) {
                        rt->stats->filtered++;
                        return;
                }
                op = EXB_OP_DELETE; /* left the filter: the subscriber's copy goes */
                rt->stats->to_delete++;
        }
        const exb_schema_t *out = rt->out_schema;
        exb_record_t orec = *rec;
        orec.op = op;
        orec.nvals = out->nfields;
        orec.vals = rtr->out_vals;
        /* a DELETE keeps the key items only: encoded, not copied */
        int del = op == EXB_OP_DELETE, n = del ? out->nfields : p->nbuild;
        for (int j = 0; j < n; j++) {
                int f = del ? j : p->build[j];
                exb_val_t *v = &orec.vals[f];
                int src = p->src[f];
                int item = rt->out_bind.item[f];
                int is_key = item >= 0 && s->rres->res->items[item].is_key;
                if (src < 0 || (op == EXB_OP_DELETE && !is_key)) {
                        v->is_null = 1;
                        continue;
                }
                const exb_mask_t *mask = &rt->sub->masks[f];
                if (mask->kind == EXB_MASK_NONE) {
                        *v = rec->vals[src];
                        continue;
                }
                exb_buf_reset(&rt->scratch[f]);
                if (exb_mask_apply(mask, s->schema->fields[src].type, &rec->vals[src], rtr->secret,
                                   rtr->secret_len, &rt->scratch[f], v)) {
                        v->is_null = 1;
                }
        }
        char err[256];
        exb_buf_reset(&rtr->enc);
        exb_buf_reset(&rtr->key);
        exb_err_t r = del ? exb_codec_encode(out, &orec, &rtr->enc, err, sizeof(err))
                              : exb_codec_encode_from(out, &orec, &rtr->in_layout, p->copy,
                                                      &rtr->enc, err, sizeof(err));
        if (r != EXB_OK ||
            exb_record_key(&rt->out_bind, &orec, &rtr->key)) {
                EXB_ERROR("subscription %s: cannot encode a delivery: %s", rt->sub->id, err);
                rt->stats->filtered++;
                return;
        }
        int32_t part = rt->partitions > 0 && m->key
                               ? exb_partition_of(m->key, m->key_len, rt->partitions)
                               : -1;
        output(rtr, rt, part, &rtr->key, &rtr->enc, path);
        rt->stats->out++;
}

/* exb.ingest.<provider>.<resource> -> provider into out. */
static void topic_provider(const char *topic, char *out, size_t size)
{
        const char *p = topic + strlen("exb.ingest.");
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

/* Routes one ingest record. */
static void route_record(exb_router_t *rtr, const exb_msg_t *m)
{
        char provider[64], err[512];
        rt_resource_t *r = resource_for_topic(rtr, m->topic);
        if (!r) {
                topic_provider(m->topic, provider, sizeof(provider));
                dead_letter(rtr, m, provider, "catalog", "the topic names no resource of the catalog",
                            NULL);
                return;
        }
        r->stats->in++;
        int32_t id;
        rt_schema_t *s;
        exb_record_t rec = {0}; /* vals set after schema_for(), which may grow in_vals */
        if (m->len > RT_MAX_VALUE) {
                exb_errf(err, sizeof(err), "value of %zu bytes exceeds %d", m->len, RT_MAX_VALUE);
                dead_letter(rtr, m, r->res->provider, "decode", err, r);
        } else if (exb_frame_schema_id(m->value, m->len, &id, err, sizeof(err)) != EXB_OK ||
                   !(s = schema_for(rtr, r, id, err, sizeof(err)))) {
                dead_letter(rtr, m, r->res->provider, "schema", err, r);
        } else if ((rec.vals = rtr->in_vals,
                    exb_codec_decode_layout(s->schema, m->value, m->len, &rec, &rtr->in_layout, err,
                                            sizeof(err))) != EXB_OK) {
                dead_letter(rtr, m, r->res->provider, "decode", err, r);
        } else if (exb_validate(&s->bind, &rec, err, sizeof(err)) != EXB_OK) {
                dead_letter(rtr, m, r->res->provider, "check", err, r);
        } else {
                /* Only another node's uplink writes exb-path: reading a
                 * header costs an allocation in librdkafka 2.0, so the
                 * records of departments are not asked for it. */
                exb_header_t path;
                int has_path = r->keeps_path && exb_msg_header(m, "exb-path", &path.value, &path.len);
                path.name = "exb-path";
                for (int k = 0; k < r->nroutes && !rtr->fatal; k++)
                        route_one(rtr, s, k, m, &rec, has_path ? &path : NULL);
        }
}

static void route_msg(exb_router_t *rtr, const exb_msg_t *m)
{
        part_get(rtr, m->topic, m->partition)->next = m->offset + 1;
        route_record(rtr, m);
}

int exb_router_poll(exb_router_t *rtr, int timeout_ms, char *errstr, size_t errstr_size)
{
        table_refresh(rtr);
        int n = exb_consumer_poll(rtr->consumer, rtr->batch, rtr->batch_size, timeout_ms,
                                  errstr, errstr_size);
        if (n < 0)
                return -1;
        if (n > 0 && !rtr->epoch_open && !rtr->fatal)
                epoch_begin(rtr);
        rtr->epoch_records += n;
        for (int i = 0; i < n; i++) {
                /* A value was written by the consumer's broker thread on
                 * another core: ask for the one two records ahead while this
                 * one is routed (main thread -5% CPU per record). */
                if (i + 2 < n) {
                        const exb_msg_t *ahead = &rtr->batch[i + 2];
                        __builtin_prefetch(ahead->value);
                        if (ahead->len > 64)
                                __builtin_prefetch((const char *)ahead->value + 64);
                }
                if (!rtr->fatal)
                        route_msg(rtr, &rtr->batch[i]);
                exb_msg_release(&rtr->batch[i]);
        }
        pending_produce_all(rtr);
        exb_producer_poll(rtr->producer, 0);
        if (rtr->epoch_open && !rtr->fatal &&
            (rtr->epoch_records >= rtr->epoch_max_records || exb_mono_ms() >= rtr->epoch_due))
                epoch_end(rtr, RT_FLUSH_TIMEOUT_MS);
        if (rtr->fatal) {
                exb_errf(errstr, errstr_size, "%s", rtr->fatal_err);
                return -1;
        }
        return n;
}

int exb_router_drain(exb_router_t *rtr, int timeout_ms, char *errstr, size_t errstr_size)
{
        if (rtr->epoch_open && !rtr->fatal)
                epoch_end(rtr, timeout_ms);
        if (rtr->fatal) {
                exb_errf(errstr, errstr_size, "%s", rtr->fatal_err);
                return -1;
        }
        if (rtr->epoch_open) { /* every output belongs to an epoch: closed, all delivered */
                exb_errf(errstr, errstr_size, "outputs still in flight after %d ms", timeout_ms);
                return -1;
        }
        return 0;
}

int exb_router_run(exb_router_t *rtr, volatile sig_atomic_t *stop)
{
        char err[512];
        while (!*stop) {
                if (exb_router_poll(rtr, 100, err, sizeof(err)) < 0) {
                        EXB_ERROR("%s: stopping (uncommitted records are routed again on restart)",
                                  err);
                        return 1;
                }
        }
        return 0;
}

/* --------------------------------------------------------------- lifecycle */

/* exbus-router-<instance.id>; the default instance id is the host name and
 * a hash of the absolute data directory: stable across restarts, distinct
 * for two instances on one host (they cannot share a data directory). */
static void instance_name(const exb_router_conf_t *conf, char *out, size_t size)
{
        if (conf->instance_id && *conf->instance_id) {
                snprintf(out, size, "exbus-router-%s", conf->instance_id);
                return;
        }
        char host[256] = "localhost", dir[PATH_MAX];
        gethostname(host, sizeof(host) - 1);
        if (!realpath(conf->data_dir, dir))
                snprintf(dir, sizeof(dir), "%s", conf->data_dir);
        snprintf(out, size, "exbus-router-%s-%08x", host, exb_fnv1a(dir));
}

static exb_kprop_t kprop_dup(const char *name, const char *value)
{
        return (exb_kprop_t){exb_strdup(name), exb_strdup(value)};
}

/* Decides exactly once from the conf and the kind of cluster, then makes the
 * producer (transactional if so). */
static int producer_start(exb_router_t *rtr, const exb_router_conf_t *conf, const char *name,
                          char *errstr, size_t errstr_size)
{
        char *cluster = exb_consumer_cluster_id(rtr->consumer, 10000);
        if (!cluster && strcmp(conf->exactly_once, "off")) {
                exb_errf(errstr, errstr_size,
                         "router: cannot reach the brokers to learn their cluster id (needed for "
                         "exactly.once=%s)", conf->exactly_once);
                return -1;
        }
        int embedded = exb_cluster_is_embedded(cluster);
        free(cluster);
        if (embedded && !strcmp(conf->exactly_once, "on")) {
                exb_errf(errstr, errstr_size,
                         "router: exactly.once=on, but the brokers are an embedded broker, which "
                         "keeps no transactional offsets: use auto or off with it");
                return -1;
        }
        rtr->txn = !strcmp(conf->exactly_once, "on") ||
                   (!strcmp(conf->exactly_once, "auto") && !embedded);
        rtr->epoch_ms = rtr->txn ? conf->txn_interval_ms : conf->commit_interval_ms;
        rtr->epoch_max_records = rtr->txn ? conf->txn_max_records : INT_MAX;
        /* Only failed deliveries matter (an epoch ends with a commit or a
         * flush). Transactional: only those are reported. At least once:
         * successes too, so that each message is freed on this thread, which
         * allocated it; freed on librdkafka's thread instead, the router's
         * peak RSS in exbus bench was ~130 MiB higher. User kafka.* keys come
         * last and win. */
        exb_kprop_t *props = exb_calloc((size_t)rtr->nprops + 3, sizeof(*props));
        int n = 0;
        /* A dead letter is the value as consumed, up to RT_MAX_VALUE; with
         * librdkafka's default message.max.bytes (1 MB) a larger one is a fatal
         * produce error. Producer only: a consumer requires fetch.max.bytes >=
         * message.max.bytes. */
        props[n++] = (exb_kprop_t){"message.max.bytes", RT_MAX_REQUEST};
        if (rtr->txn) {
                props[n++] = (exb_kprop_t){"transactional.id", name};
                props[n++] = (exb_kprop_t){"delivery.report.only.error", "true"};
        }
        memcpy(props + n, rtr->props, sizeof(*props) * (size_t)rtr->nprops);
        n += rtr->nprops;
        rtr->producer = exb_producer_new(rtr->brokers, props, n, on_delivery, rtr, errstr,
                                         errstr_size);
        free(props);
        if (!rtr->producer)
                return -1;
        if (rtr->txn) {
                exb_err_t r = exb_producer_txn_init(rtr->producer, RT_TXN_TIMEOUT_MS, errstr,
                                                    errstr_size);
                if (r == EXB_ERR_INVALID) { /* not authorized */
                        size_t len = strlen(errstr);
                        snprintf(errstr + len, errstr_size - len,
                                 ": the router's principal needs WRITE and DESCRIBE on "
                                 "transactional id %s (exbus acl sync prints the grant), or "
                                 "exactly.once=off",
                                 name);
                }
                if (r != EXB_OK)
                        return -1;
        }
        EXB_INFO("router %s: %s", name,
                 rtr->txn ? "exactly once (Kafka transactions)" : "at least once");
        return 0;
}

exb_router_t *exb_router_new(const exb_router_conf_t *conf, char *errstr, size_t errstr_size)
{
        const char *secret = getenv("EXBUS_MASK_SECRET");
        if (!secret || !*secret)
                secret = conf->mask_secret;
        if (!secret || strlen(secret) < 16) {
                exb_errf(errstr, errstr_size,
                         "router: mask.secret (or EXBUS_MASK_SECRET) must be set, at least 16 "
                         "characters: it keys the `hash` masks");
                return NULL;
        }
        exb_router_t *rtr = exb_calloc(1, sizeof(*rtr));
        rtr->secret = exb_strdup(secret);
        rtr->secret_len = strlen(secret);
        rtr->brokers = exb_strdup(conf->brokers);
        rtr->partitions = conf->partitions;
        rtr->batch_size = conf->batch_size;
        char name[512];
        instance_name(conf, name, sizeof(name));
        /* A new resource's ingest topic matches the subscription pattern only
         * once metadata is refreshed (librdkafka: every 5 min by default).
         * User kafka.* keys come after the defaults and win. */
        const exb_kprop_t defaults[] = {{"topic.metadata.refresh.interval.ms", "5000"},
                                        {"client.id", name}};
        int ndef = (int)EXB_ARRAY_CNT(defaults);
        rtr->nprops = ndef + conf->kafka.cnt;
        rtr->props = exb_calloc((size_t)rtr->nprops + 1, sizeof(*rtr->props));
        for (int i = 0; i < rtr->nprops; i++)
                rtr->props[i] = i < ndef ? kprop_dup(defaults[i].name, defaults[i].value)
                                         : kprop_dup(conf->kafka.kvs[i - ndef].key,
                                                     conf->kafka.kvs[i - ndef].value);
        char cache[4096];
        snprintf(cache, sizeof(cache), "%s/router-control.db", conf->data_dir);
        exb_rebalance_t rb = {on_assign, on_revoke, rtr};
        const char *topics[] = {"^exb\\.ingest\\..*"};
        exb_buf_init(&rtr->enc, RT_MAX_VALUE + 1024);
        exb_buf_init(&rtr->key, 1 << 16);
        rtr->batch = exb_calloc((size_t)rtr->batch_size, sizeof(exb_msg_t));
        if (!(rtr->ctl = exb_control_new(rtr->brokers, rtr->props, rtr->nprops, cache, 15000,
                                         errstr, errstr_size)) ||
            !(rtr->consumer = exb_consumer_new(rtr->brokers, conf->group_id, rtr->props,
                                               rtr->nprops, &rb, errstr, errstr_size)) ||
            producer_start(rtr, conf, name, errstr, errstr_size) ||
            exb_consumer_subscribe(rtr->consumer, topics, 1, errstr, errstr_size) != EXB_OK) {
                exb_router_destroy(rtr);
                return NULL;
        }
        table_build(rtr);
        rtr->generation = exb_control_generation(rtr->ctl);
        rtr->next_expiry_check = exb_mono_ms() + 10000;
        return rtr;
}

void exb_router_destroy(exb_router_t *rtr)
{
        if (!rtr)
                return;
        if (rtr->epoch_open && !rtr->fatal)
                epoch_end(rtr, RT_FLUSH_TIMEOUT_MS);
        exb_consumer_destroy(rtr->consumer); /* commits stored offsets */
        exb_producer_destroy(rtr->producer);
        while (rtr->nparts)
                part_drop(rtr, rtr->parts[0]->topic, rtr->parts[0]->partition);
        free(rtr->parts);
        table_free(rtr);
        exb_control_destroy(rtr->ctl);
        while (rtr->stats) {
                rt_stats_t *n = rtr->stats->next;
                free(rtr->stats);
                rtr->stats = n;
        }
        free(rtr->batch);
        free(rtr->in_vals);
        free(rtr->out_vals);
        free(rtr->in_layout.pos);
        exb_buf_free(&rtr->enc);
        exb_buf_free(&rtr->key);
        for (int i = 0; i < rtr->nchunks; i++)
                free(rtr->chunks[i]);
        free(rtr->chunks);
        free(rtr->secret);
        free(rtr->brokers);
        for (int i = 0; i < rtr->nprops; i++) {
                free((char *)rtr->props[i].name);
                free((char *)rtr->props[i].value);
        }
        free(rtr->props);
        free(rtr);
}
