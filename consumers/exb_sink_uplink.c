/*
 * exb_sink_uplink.c — `sink.type = uplink`: cascading to another exchange
 * node (级联 up to the province, 回流 back down), DESIGN §1 and issue 4.
 *
 * Exchange nodes know each other as departments: at the county (node
 * 370602) the city is the department "370600", and at the city the county
 * is the department "370602". The county's operator approves what the city
 * may get as a normal subscription of department 370600; a consumer agent
 * with dept = 370600 and this sink forwards those deliveries to the city's
 * Kafka, into exb.ingest.370602.<resource>, where the city's router treats
 * the county like any providing department. Return flow is the same
 * mechanism configured at the upper node.
 *
 * For each forwarded resource the other node's catalog must have it with
 * this node as provider. With sink.register (default) the sink registers
 * this node as a department and the resource as delivered — the approved
 * items only, masked items as strings — through the other node's control
 * plane (an import: idempotent, refused if incompatible). Each record is
 * re-encoded with the other node's ingest schema of the resource (matched
 * by item name) and keeps its key, event id and source.
 *
 * Loops: every forwarded record carries exb-path, the node ids it has
 * passed ("370602,370600"); the router keeps the header. A record whose path
 * already holds this node or the node it would go to (the subscriber dept)
 * is not forwarded: it is counted and kept as a local dead letter with the
 * reason "loop", so a misconfigured cycle stops after one hop.
 *
 * Delivery: all or nothing per batch. The producer's message.timeout.ms is
 * the batch timeout, so when the other node is unreachable the batch fails
 * as a whole within sink.timeout.ms, the receiver pauses, rewinds and offers
 * the same records again: forwarding resumes in order without loss. Offsets
 * are the consumer group's (at-least-once; the other node drops repeats by
 * event id).
 */
#include "exb_codec.h"
#include "exb_control.h"
#include "exb_sink.h"
#include "exb_sink_int.h"
#include "exb_sql.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct uplink_conf_s {
        char *node_id;
        char *node_name;
        char *brokers;
        int timeout_ms;
        int reg;
        exb_conf_kvs_t kafka;
} uplink_conf_t;

static const exb_prop_t uplink_props[] = {
    {"sink.node.id", EXB_PROP_STR, offsetof(uplink_conf_t, node_id), NULL, NULL,
     "This exchange node's id (e.g. its division code, 370602): the provider code the other node "
     "knows it by.",
     1},
    {"sink.node.name", EXB_PROP_STR, offsetof(uplink_conf_t, node_name), NULL, NULL,
     "Name registered for this node in the other node's catalog (default: 交换节点 <id>)."},
    {"sink.brokers", EXB_PROP_STR, offsetof(uplink_conf_t, brokers), NULL, NULL,
     "Bootstrap servers of the other node's Kafka.", 1},
    {"sink.timeout.ms", EXB_PROP_INT, offsetof(uplink_conf_t, timeout_ms), "1000..600000", "15000",
     "How long the other node may take to acknowledge a batch before it is offered again."},
    {"sink.register", EXB_PROP_BOOL, offsetof(uplink_conf_t, reg), NULL, "true",
     "Register this node and the forwarded resources in the other node's catalog when missing."},
    {"sink.kafka.", EXB_PROP_PREFIX, offsetof(uplink_conf_t, kafka), NULL, NULL,
     "librdkafka properties for the other node's cluster (e.g. sink.kafka.security.protocol)."},
    {NULL}};

typedef struct up_res_s {
        char *code;
        exb_schema_t *schema; /* the other node's ingest schema */
        exb_topic_t *topic;
        char *error;          /* permanent: why this resource cannot be forwarded */
} up_res_t;

typedef struct uplink_s {
        const uplink_conf_t *conf;
        char *dept, *data_dir, *local_brokers;
        exb_kprop_t *props;
        int nprops;
        exb_control_t *upper, *local;
        exb_producer_t *prod;
        up_res_t *res;
        int nres;
        exb_sink_dlq_t *dlq;
        int failed;
        char fail_err[256];
        exb_val_t *vals;
        int nvals;
        exb_buf_t enc, path;
        uint64_t loops;
} uplink_t;

static void up_dr(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                  int32_t partition, int64_t offset)
{
        uplink_t *up = opaque;
        (void)msg_opaque, (void)partition, (void)offset;
        if (err != EXB_OK && !up->failed) {
                up->failed = 1;
                snprintf(up->fail_err, sizeof(up->fail_err), "%s", errstr ? errstr : "delivery failed");
        }
}

static void up_close(void *sink);

static void *up_open(const void *conf, const exb_sink_env_t *env, char *errstr, size_t errstr_size)
{
        const uplink_conf_t *c = conf;
        for (const char *p = c->node_id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= 'a' && *p <= 'z') || *p == '_')) {
                        exb_errf(errstr, errstr_size,
                                 "sink.node.id \"%s\": letters, digits and _ only (it is a "
                                 "department code at the other node)",
                                 c->node_id);
                        return NULL;
                }
        if (!strcmp(c->node_id, env->dept)) {
                exb_errf(errstr, errstr_size, "sink.node.id %s is the subscriber itself: dept must be "
                                              "the other node's id", c->node_id);
                return NULL;
        }
        uplink_t *up = exb_calloc(1, sizeof(*up));
        up->conf = c;
        up->dept = exb_strdup(env->dept);
        up->data_dir = exb_strdup(env->data_dir);
        up->local_brokers = exb_strdup(env->brokers);
        /* Fail a batch as a whole within the timeout; user keys come after and win. */
        char tmo[16];
        snprintf(tmo, sizeof(tmo), "%d", c->timeout_ms);
        up->props = exb_calloc((size_t)c->kafka.cnt + 2, sizeof(*up->props));
        up->props[up->nprops++] = (exb_kprop_t){"message.timeout.ms", exb_strdup(tmo)};
        for (int i = 0; i < c->kafka.cnt; i++)
                up->props[up->nprops++] = (exb_kprop_t){c->kafka.kvs[i].key, c->kafka.kvs[i].value};
        exb_buf_init(&up->enc, 64 << 20);
        exb_buf_init(&up->path, 4096);
        if (!(up->dlq = exb_sink_dlq_open(env->data_dir, env->dept, errstr, errstr_size))) {
                up_close(up);
                return NULL;
        }
        return up;
}

static void res_free(uplink_t *up)
{
        for (int i = 0; i < up->nres; i++) {
                free(up->res[i].code);
                free(up->res[i].error);
                exb_schema_destroy(up->res[i].schema);
        }
        free(up->res);
        up->res = NULL;
        up->nres = 0;
}

static void up_close(void *sink)
{
        uplink_t *up = sink;
        if (!up)
                return;
        exb_producer_destroy(up->prod);
        exb_control_destroy(up->upper);
        exb_control_destroy(up->local);
        exb_sink_dlq_close(up->dlq);
        res_free(up);
        free((char *)up->props[0].value);
        free(up->props);
        free(up->vals);
        exb_buf_free(&up->enc);
        exb_buf_free(&up->path);
        free(up->dept);
        free(up->data_dir);
        free(up->local_brokers);
        free(up);
}

/* Connects to the other node (lazily: it may be down when the agent starts). */
static exb_err_t up_connect(uplink_t *up, char *errstr, size_t errstr_size)
{
        if (up->upper && up->prod)
                return EXB_OK;
        char cache[4096], err[512];
        snprintf(cache, sizeof(cache), "%s/uplink-%s-control.db", up->data_dir, up->dept);
        if (!up->upper &&
            !(up->upper = exb_control_new(up->conf->brokers, up->props + 1, up->nprops - 1, cache,
                                          10000, err, sizeof(err)))) { /* [0] is producer-only */
                exb_errf(errstr, errstr_size, "node %s at %s unreachable: %s", up->dept,
                         up->conf->brokers, err);
                return EXB_ERR_RETRY;
        }
        if (!up->prod && !(up->prod = exb_producer_new(up->conf->brokers, up->props, up->nprops,
                                                       up_dr, up, errstr, errstr_size)))
                return EXB_ERR_FATAL;
        return EXB_OK;
}

/* Catalog text registering `code` at the other node as delivered here:
 * the approved items (the delivery schema's fields), masked ones as strings,
 * this node as provider. NULL with errstr if this node's catalog lacks it. */
static char *registration(uplink_t *up, const char *code, const exb_schema_t *ds, char *errstr,
                          size_t errstr_size)
{
        char err[512];
        if (!up->local && !(up->local = exb_control_new(up->local_brokers, NULL, 0, NULL, 10000,
                                                         err, sizeof(err)))) {
                exb_errf(errstr, errstr_size, "this node's catalog: %s", err);
                return NULL;
        }
        exb_control_sync(up->local, 5000, err, sizeof(err));
        exb_resource_t *res = exb_control_resource(up->local, code, NULL);
        if (!res) {
                exb_errf(errstr, errstr_size, "resource %s is not in this node's catalog", code);
                return NULL;
        }
        json_t *r = json_loads(res->json, 0, NULL);
        json_t *items = json_array();
        for (int f = 0; f < ds->nfields; f++) {
                int idx = exb_resource_item_idx(res, ds->fields[f].name);
                json_t *it = idx >= 0 ? json_deep_copy(json_array_get(json_object_get(r, "items"),
                                                                      (size_t)idx))
                                      : json_pack("{s:s}", "name", ds->fields[f].name);
                if (idx < 0 || (exb_type_t)ds->fields[f].type != res->items[idx].type) {
                        char type[2] = {(char)ds->fields[f].type, 0}; /* masked: now a string */
                        json_object_set_new(it, "type", json_string(type));
                        json_object_del(it, "length");
                        json_object_del(it, "check");
                }
                json_array_append_new(items, it);
        }
        json_object_set_new(r, "items", items);
        json_object_set_new(r, "provider", json_string(up->conf->node_id));
        char name[128];
        snprintf(name, sizeof(name), "交换节点 %s", up->conf->node_id);
        json_t *cat = json_pack("{s:[{s:s, s:s, s:b}], s:[o]}", "departments", "code",
                                up->conf->node_id, "name",
                                up->conf->node_name ? up->conf->node_name : name, "node", 1,
                                "resources", r);
        char *text = json_dumps(cat, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(cat);
        exb_resource_destroy(res);
        return text;
}

/* Imports catalog text at the other node. */
static exb_err_t import_upper(uplink_t *up, const char *text, char *errstr, size_t errstr_size)
{
        exb_catalog_t *cat = text ? exb_catalog_parse("uplink registration", text, strlen(text),
                                                      NULL, 0, errstr, errstr_size)
                                  : NULL;
        exb_err_t e = cat ? exb_control_import(up->upper, cat, NULL, NULL, errstr, errstr_size)
                          : EXB_ERR_INVALID;
        exb_catalog_destroy(cat);
        return e;
}

/* Marks this node's department at the other node as an exchange node
 * ("node": true), keeping its name: without the mark that node's router
 * does not read exb-path from this node's records. */
static exb_err_t mark_node(uplink_t *up, char *errstr, size_t errstr_size)
{
        char *name = exb_sql_text(exb_control_db(up->upper),
                                  "SELECT name FROM departments WHERE code=%Q", up->conf->node_id);
        json_t *cat = json_pack("{s:[{s:s, s:s, s:b}]}", "departments", "code", up->conf->node_id,
                                "name", name ? name : up->conf->node_id, "node", 1);
        char *text = json_dumps(cat, JSON_COMPACT);
        json_decref(cat);
        free(name);
        exb_err_t e = import_upper(up, text, errstr, errstr_size);
        free(text);
        if (e == EXB_OK)
                EXB_INFO("marked %s as an exchange node at node %s", up->conf->node_id, up->dept);
        return e;
}

/* The other node's resource entry for `code`, registering it if allowed.
 * Returns NULL with errstr and *retry set when the node is unreachable. */
static up_res_t *resource_for(uplink_t *up, const char *code, const exb_schema_t *ds, int *retry,
                              char *errstr, size_t errstr_size)
{
        for (int i = 0; i < up->nres; i++)
                if (!strcmp(up->res[i].code, code))
                        return &up->res[i];
        *retry = 0;
        char err[1024] = "";
        exb_control_sync(up->upper, 5000, err, sizeof(err));
        int32_t sid;
        exb_resource_t *res = exb_control_resource(up->upper, code, &sid);
        if (!res && up->conf->reg) {
                char *text = registration(up, code, ds, err, sizeof(err));
                exb_err_t e = import_upper(up, text, err, sizeof(err));
                free(text);
                if (e == EXB_ERR_RETRY) {
                        *retry = 1;
                        exb_errf(errstr, errstr_size, "registering %s at node %s: %s", code,
                                 up->dept, err);
                        return NULL;
                }
                res = exb_control_resource(up->upper, code, &sid);
                if (res)
                        EXB_INFO("registered %s at node %s (provider %s)", code, up->dept,
                                 up->conf->node_id);
        }
        int marked = exb_control_dept_node(up->upper, up->conf->node_id);
        if (res && !marked && up->conf->reg) {
                exb_err_t e = mark_node(up, err, sizeof(err));
                if (e == EXB_ERR_RETRY) {
                        *retry = 1;
                        exb_errf(errstr, errstr_size, "marking %s at node %s: %s",
                                 up->conf->node_id, up->dept, err);
                        exb_resource_destroy(res);
                        return NULL;
                }
                marked = e == EXB_OK;
        }
        up->res = exb_realloc(up->res, sizeof(*up->res) * (size_t)(up->nres + 1));
        up_res_t *r = &up->res[up->nres++];
        memset(r, 0, sizeof(*r));
        r->code = exb_strdup(code);
        char topic[256];
        snprintf(topic, sizeof(topic), "exb.ingest.%s.%s", up->conf->node_id, code);
        if (!res)
                r->error = exb_strdup(err[0] ? err : "not in the other node's catalog "
                                                     "(sink.register is off)");
        else if (strcmp(res->provider, up->conf->node_id))
                exb_errf(err, sizeof(err), "node %s's catalog has %s from %s, not from this node %s",
                         up->dept, code, res->provider, up->conf->node_id),
                    r->error = exb_strdup(err);
        else if (!marked)
                exb_errf(err, sizeof(err),
                         "node %s's catalog does not mark department %s as an exchange node "
                         "(\"node\": true%s%s): its router would drop exb-path, and loops "
                         "would go unnoticed",
                         up->dept, up->conf->node_id, up->conf->reg ? "; marking it: " : "; sink.register is off",
                         up->conf->reg ? err : ""),
                    r->error = exb_strdup(err);
        else if (!(r->schema = exb_control_schema(up->upper, sid)))
                r->error = exb_strdup("the other node's schema cannot be read");
        else {
                exb_topic_spec_t spec = {topic, 4, 0};
                if (exb_admin_ensure_topics(up->conf->brokers, up->props + 1, up->nprops - 1, &spec, 1,
                                            10000, err, sizeof(err)) != EXB_OK)
                        EXB_WARN("node %s: %s", up->dept, err);
                r->topic = exb_producer_topic(up->prod, topic);
        }
        if (r->error)
                EXB_ERROR("cannot forward %s to node %s: %s", code, up->dept, r->error);
        exb_resource_destroy(res);
        return r;
}

/* Does the comma-separated path hold id? */
static int path_has(const void *path, size_t len, const char *id)
{
        size_t n = strlen(id);
        const char *p = path, *end = p + len;
        while (p < end) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                size_t l = comma ? (size_t)(comma - p) : (size_t)(end - p);
                if (l == n && !memcmp(p, id, n))
                        return 1;
                p += l + 1;
        }
        return 0;
}

/* Re-encodes rec for the other node's schema into up->enc. */
static exb_err_t reencode(uplink_t *up, const up_res_t *r, const exb_sink_rec_t *sr, char *errstr,
                          size_t errstr_size)
{
        const exb_schema_t *to = r->schema;
        if (up->nvals < to->nfields) {
                up->vals = exb_realloc(up->vals, sizeof(exb_val_t) * (size_t)to->nfields);
                up->nvals = to->nfields;
        }
        exb_record_t out = *sr->rec;
        out.nvals = to->nfields;
        out.vals = up->vals;
        for (int f = 0; f < to->nfields; f++) {
                int src = exb_schema_field_idx(sr->schema, to->fields[f].name);
                if (src >= 0 && sr->schema->fields[src].type != to->fields[f].type) {
                        exb_errf(errstr, errstr_size, "item \"%s\" is %c here, %c at node %s",
                                 to->fields[f].name, sr->schema->fields[src].type,
                                 to->fields[f].type, up->dept);
                        return EXB_ERR_INVALID;
                }
                out.vals[f] = src >= 0 ? sr->rec->vals[src] : (exb_val_t){.is_null = 1};
        }
        /* The other node checks that the source is the provider: this node. */
        out.source = exb_str(up->conf->node_id);
        exb_buf_reset(&up->enc);
        return exb_codec_encode(to, &out, &up->enc, errstr, errstr_size);
}

static exb_err_t up_write(void *sink, const exb_sink_batch_t *b, exb_sink_result_t *res,
                          char *errstr, size_t errstr_size)
{
        uplink_t *up = sink;
        exb_err_t err = up_connect(up, errstr, errstr_size);
        if (err != EXB_OK)
                return err;
        up->failed = 0;
        for (int i = 0; i < b->nrecs; i++) {
                const exb_sink_rec_t *sr = &b->recs[i];
                char why[1024];
                const char *reason = sr->error;
                up_res_t *r = NULL;
                if (!reason && sr->path &&
                    (path_has(sr->path, sr->path_len, up->conf->node_id) ||
                     path_has(sr->path, sr->path_len, up->dept))) {
                        snprintf(why, sizeof(why), "loop: the record has passed %.*s; not sent to node %s again",
                                 (int)sr->path_len, (const char *)sr->path, up->dept);
                        reason = why;
                        up->loops++;
                        EXB_WARN("%s (%llu loops stopped)", why, (unsigned long long)up->loops);
                }
                if (!reason) {
                        int retry = 0;
                        r = resource_for(up, sr->resource, sr->schema, &retry, errstr, errstr_size);
                        if (!r)
                                return retry ? EXB_ERR_RETRY : EXB_ERR_FATAL;
                        reason = r->error;
                }
                if (!reason && reencode(up, r, sr, why, sizeof(why)) != EXB_OK)
                        reason = why;
                if (reason) {
                        if (exb_sink_dlq_add(up->dlq, sr, reason, errstr, errstr_size))
                                return EXB_ERR_RETRY;
                        res->dead_letters++;
                        continue;
                }
                exb_buf_reset(&up->path);
                if (sr->path && sr->path_len)
                        exb_buf_append(&up->path, sr->path, sr->path_len), exb_buf_putc(&up->path, ',');
                exb_buf_append(&up->path, up->conf->node_id, strlen(up->conf->node_id));
                exb_header_t hdr = {"exb-path", up->path.p, up->path.len};
                for (;;) {
                        err = exb_produce(up->prod, r->topic, -1, sr->key, sr->key_len, up->enc.p,
                                          up->enc.len, &hdr, 1, NULL, errstr, errstr_size);
                        if (err != EXB_ERR_RETRY)
                                break;
                        exb_producer_poll(up->prod, 10);
                }
                if (err != EXB_OK)
                        return EXB_ERR_RETRY;
                if (sr->rec->op == EXB_OP_DELETE)
                        res->deletes++;
                else
                        res->upserts++;
        }
        if (exb_producer_flush(up->prod, up->conf->timeout_ms + 5000) != EXB_OK || up->failed) {
                exb_errf(errstr, errstr_size, "node %s did not acknowledge the batch: %s", up->dept,
                         up->failed ? up->fail_err : "timed out");
                return EXB_ERR_RETRY;
        }
        return EXB_OK;
}

const exb_sink_plugin_t exb_sink_uplink = {
    .name = "uplink",
    .props = uplink_props,
    .conf_size = sizeof(uplink_conf_t),
    .open = up_open,
    .offset = NULL, /* the group's offsets: at-least-once, repeats dropped by event id */
    .write = up_write,
    .close = up_close,
};
