/*
 * exb_sink.h — where the consumer agent puts delivered records: the sink
 * plugin interface (DESIGN §6, STYLE "plugins are a struct of callbacks").
 *
 * A sink is a file that defines one exb_sink_plugin_t; the receiver
 * (exb_receiver.c) lists the plugins it knows and picks one by `sink.type`.
 * Adding a sink (jsonl, http, uplink) is a new file plus one line in that
 * list: the receiver has no per-sink code.
 *
 * What the receiver does before a sink sees anything: consume a batch,
 * resolve each message's schema (exb_frame_schema_id -> control plane),
 * bound-check and decode it (exb_codec_decode), and turn every message that
 * cannot be decoded into a dead letter with its reason. The sink receives
 * the batch in consumption order (per partition: offset order):
 *
 *   - decoded records (schema and rec set, error NULL): op CREATE, UPDATE
 *     and SNAPSHOT are upserts by the key items, DELETE deletes by them. The
 *     key items are the non-nullable fields of the delivery schema.
 *   - dead letters (error set, schema/rec may be NULL): the sink keeps the
 *     raw key and value with the reason, where an operator can see them. A
 *     record the sink itself cannot apply (no key items, a value its store
 *     refuses) becomes a dead letter the same way. Never dropped silently.
 *
 * Contract of write(): all or nothing. It returns
 *   EXB_OK         everything in the batch is applied / kept, durably;
 *   EXB_ERR_RETRY  nothing is applied (the sink is down, busy, full): the
 *                  receiver pauses consumption, rewinds and offers the same
 *                  records again after a backoff;
 *   EXB_ERR_FATAL  nothing is applied and the agent must stop.
 * Only after EXB_OK are the Kafka offsets of the batch stored for commit, so
 * nothing is committed that was not delivered.
 *
 * Offsets: a sink that can store the batch's next offsets atomically with
 * the data (SQLite: same transaction) returns them from offset(); the
 * receiver then starts each assigned partition there (exactly once into the
 * sink; Kafka's committed offsets are only informational, for lag). A sink
 * that cannot returns EXB_OFFSET_STORED from offset() (start from the
 * group's committed offset: at-least-once, so it must be idempotent, e.g.
 * by event id).
 *
 * Configuration: the receiver's table has sink.type, sink.path and the
 * prefix "sink."; every other sink.* key is checked against the plugin's own
 * table (props, keys spelled in full, e.g. "sink.busy.timeout.ms") and
 * loaded into a struct of conf_size bytes that open() receives. sink.path is
 * given to the plugin's table too when the plugin declares it.
 *
 * Threading: all callbacks are called from the thread that polls the
 * receiver, one at a time.
 */
#ifndef EXB_SINK_H
#define EXB_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "exb_common.h"
#include "exb_conf.h"
#include "exb_kafka.h" /* EXB_OFFSET_BEGINNING, EXB_OFFSET_STORED */
#include "exb_schema.h"

/* One consumed message, decoded or not. Everything is borrowed for the
 * duration of write() only (values point into the Kafka message). */
typedef struct exb_sink_rec_s {
        const char *topic;
        int32_t partition;
        int64_t offset;
        const void *key; /* Kafka key (may be NULL) */
        size_t key_len;
        const void *value; /* raw framed value (may be NULL) */
        size_t len;
        const char *resource;       /* resource code: the topic's last segment, or NULL */
        const exb_schema_t *schema; /* delivery schema (schema->id set), NULL if undecodable */
        const exb_record_t *rec;    /* decoded record, NULL if undecodable */
        const char *error;          /* non-NULL: a dead letter, with the reason */
        const void *path;           /* exb-path header: node ids passed ("a,b"), or NULL */
        size_t path_len;
} exb_sink_rec_t;

/* Next offset of a partition once the batch is applied (last offset + 1). */
typedef struct exb_sink_pos_s {
        const char *topic;
        int32_t partition;
        int64_t next_offset;
} exb_sink_pos_t;

typedef struct exb_sink_batch_s {
        int nrecs;
        const exb_sink_rec_t *recs;
        int npos;
        const exb_sink_pos_t *pos; /* one per partition present in recs */
} exb_sink_batch_t;

/* What write() did; the receiver adds these to its counters on EXB_OK. */
typedef struct exb_sink_result_s {
        uint64_t upserts;      /* rows inserted or updated */
        uint64_t deletes;      /* DELETE records applied (whether a row existed or not) */
        uint64_t dead_letters; /* kept as dead letters (given or found by the sink) */
        uint64_t replays;      /* skipped: already applied (offset or event id) */
} exb_sink_result_t;

/* What every sink is told besides its own configuration. */
typedef struct exb_sink_env_s {
        const char *dept;       /* subscribing department code */
        const char *data_dir;   /* the agent's data.dir */
        const char *cluster_id; /* Kafka cluster id, or NULL if unknown */
        const char *brokers;    /* this node's Kafka (the uplink reads its catalog) */
} exb_sink_env_t;

typedef struct exb_sink_plugin_s {
        const char *name;        /* value of sink.type */
        const exb_prop_t *props; /* the sink's own keys (all "sink.*"), or NULL */
        size_t conf_size;        /* size of the struct props describe (0 if none) */

        /* Opens the sink. conf is the struct described by props (borrowed:
         * valid until close). Returns the sink's state, or NULL with errstr. */
        void *(*open)(const void *conf, const exb_sink_env_t *env, char *errstr,
                      size_t errstr_size);

        /* Where to start topic/partition: the sink's stored next offset,
         * EXB_OFFSET_BEGINNING if it has stored none, or EXB_OFFSET_STORED if
         * it does not store offsets. hi is the partition's high watermark
         * (-1 if unknown): a stored offset beyond it means the topic was
         * recreated (another cluster, a new embedded broker), so the sink
         * forgets it and returns EXB_OFFSET_BEGINNING. May be NULL
         * (= EXB_OFFSET_STORED). */
        int64_t (*offset)(void *sink, const char *topic, int32_t partition, int64_t hi);

        /* Applies a batch, all or nothing (see the contract above). res is
         * zeroed by the caller. */
        exb_err_t (*write)(void *sink, const exb_sink_batch_t *batch, exb_sink_result_t *res,
                           char *errstr, size_t errstr_size);

        /* Closes the sink (NULL is a no-op). */
        void (*close)(void *sink);

        /* Optional (NULL): called on every receiver poll, also when no
         * records came, for work that must not wait for the next batch
         * (jsonl: completing a file after sink.rotate.seconds). It never
         * applies records; it logs and retries its own failures. */
        void (*tick)(void *sink);
} exb_sink_plugin_t;

/* The sinks of this build. */
extern const exb_sink_plugin_t exb_sink_sqlite;
extern const exb_sink_plugin_t exb_sink_uplink;
extern const exb_sink_plugin_t exb_sink_http;
extern const exb_sink_plugin_t exb_sink_jsonl;

/* Plugin by sink.type name, or NULL. */
const exb_sink_plugin_t *exb_sink_find(const char *name);

/* ----------------------------------------------------------- SQLite sink */

/* Tables the SQLite sink keeps next to the resource tables (exported for
 * tests and ops commands):
 *   exb_offsets(topic, partition, next_offset)      PRIMARY KEY(topic, partition)
 *   exb_events(event_id PRIMARY KEY, topic, partition, offset, at)
 *   exb_dead_letters(topic, partition, offset, key, value, reason, at)
 *                                                   PRIMARY KEY(topic, partition, offset)
 *   exb_meta(k PRIMARY KEY, v)                      cluster_id
 */
typedef struct exb_sink_sqlite_conf_s {
        char *path;          /* sink.path */
        int busy_timeout_ms; /* sink.busy.timeout.ms */
        char *synchronous;   /* sink.synchronous: normal|full */
} exb_sink_sqlite_conf_t;

/* ------------------------------------------------------------- HTTP sink */

/* The HTTP sink's transport: one POST of body (len bytes) with the given
 * header lines (NULL-terminated, "Name: value"). Returns EXB_OK with the
 * HTTP status in *status and at most resp->max bytes of the response body
 * in resp (the rest is read and dropped), or EXB_ERR_RETRY with errstr
 * when no response came (connection refused or dropped, timeout, TLS). */
typedef exb_err_t (*exb_sink_http_post_fn)(void *opaque, const char *const *headers,
                                           const void *body, size_t len, long *status,
                                           exb_buf_t *resp, char *errstr, size_t errstr_size);

/* Replaces the transport of an open http sink (tests: a scripted server
 * without sockets); fn NULL restores libcurl. */
void exb_sink_http_set_transport(void *sink, exb_sink_http_post_fn fn, void *opaque);

#endif
