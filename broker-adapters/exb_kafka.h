/*
 * exb_kafka.h — the broker adapter: the only module that talks to librdkafka.
 *
 * Four things live here:
 *  - exb_producer_t: idempotent producer (acks=all), cached topic handles,
 *    per-message opaque handed back in the delivery report callback, which is
 *    called from exb_producer_poll()/flush() on the caller's thread.
 *  - exb_consumer_t: either a group member (subscribe, manual offset store,
 *    assign/revoke hooks so a sink can supply its own stored offsets) or a
 *    group-less reader of explicit partitions (the control plane, `tail`).
 *  - exb_admin_*: topic creation and listing, watermarks, group offsets.
 *  - exb_embedded_t: librdkafka's mock cluster hosted in this process
 *    (`exbus broker`, `exbus demo`, fast tests). Topics are created with the
 *    mock's own API because it has no CreateTopics; exb_admin_ensure_topics()
 *    does that automatically when the brokers are an in-process embedded
 *    cluster, uses CreateTopics otherwise, and against an embedded broker in
 *    another process (no CreateTopics) waits for that process to create them.
 *
 * All callbacks (delivery reports, rebalance hooks) run on the caller's
 * thread, inside the adapter call that serves them. librdkafka's errors and
 * logs go to exb_log: errors at WARN (ERROR if fatal), the same error of
 * the same handle at most every 30 s; its log lines at DEBUG except
 * configuration warnings (EXBUS_LOG_LEVEL=3 shows them all; the kafka.debug
 * property adds librdkafka's debug contexts).
 *
 * Defaults (each can be overridden with a kafka.* property, passed as is):
 *   all:      client.id=exbus, socket.nagle.disable=true,
 *             allow.auto.create.topics=false
 *   producer: enable.idempotence=true, acks=all, linger.ms=5,
 *             queue.buffering.max.messages=1000000,
 *             queue.buffering.max.kbytes=1048576, batch.num.messages=10000,
 *             partitioner=murmur2_random (Java-compatible key hashing)
 *   consumer: enable.auto.commit=true, enable.auto.offset.store=false,
 *             isolation.level=read_committed (never sees aborted or open
 *             transactions' messages), auto.offset.reset=earliest, fetch.wait.max.ms=100,
 *             session.timeout.ms=6000, heartbeat.interval.ms=2000,
 *             queued.min.messages=500000, queued.max.messages.kbytes=65536,
 *             enable.partition.eof=false
 * Consumer throughput in librdkafka 2.0.x is capped at about one prefetch
 * per second: fetching pauses when the consumer queue reaches the queued.*
 * limits and resumes only at the broker thread's 1 s tick (fetch.queue.
 * backoff.ms arrived in 2.2). With librdkafka's 100000 that caps a busy
 * consumer at ~100-200k msg/s once fetches are large (a real broker returns
 * up to 1 MiB per partition); 500000 holds a second of the router's rate on
 * 2 cores, at the cost of more memory while a backlog is prefetched. The
 * embedded broker returns one stored batch per partition per Fetch, so
 * records produced in tiny batches read back slowly there (1-record
 * batches: ~8k msg/s; 100+: over 1M). See docs/PERFORMANCE.md.
 * A group-less consumer also gets a private group.id (librdkafka requires one
 * for assign; kafka.group.id names it on clusters with group ACLs); it never
 * joins that group and never commits.
 */
#ifndef EXB_KAFKA_H
#define EXB_KAFKA_H

#include "exb_common.h"

/* A librdkafka property: name = value, passed through unchanged. */
typedef struct exb_kprop_s {
        const char *name;
        const char *value;
} exb_kprop_t;

typedef struct exb_header_s {
        const char *name;
        const void *value;
        size_t len;
} exb_header_t;

/* ---------------------------------------------------------------- producer */

typedef struct exb_producer_s exb_producer_t;
typedef struct exb_topic_s exb_topic_t; /* cached per producer, never freed by caller */

/* Delivery report, exactly one per message exb_produce() accepted:
 * err == EXB_OK with the partition and offset it got (errstr ""), or the
 * error with offset -1 and errstr naming topic, partition and cause:
 * EXB_ERR_RETRY (timed out, broker down, unknown topic: produce it again),
 * EXB_ERR_INVALID (e.g. message too large: never retry), EXB_ERR_FATAL
 * (idempotence broken, not authorized: stop).
 * msg_opaque is what was passed to exb_produce(). */
typedef void(exb_dr_cb_t)(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                          int32_t partition, int64_t offset);

/* Returns a new producer, or NULL with errstr (bad property, named as
 * "kafka.<name>"; no brokers). dr_cb may be NULL. */
exb_producer_t *exb_producer_new(const char *brokers, const exb_kprop_t *props, int nprops,
                                 exb_dr_cb_t *dr_cb, void *opaque, char *errstr,
                                 size_t errstr_size);
/* Flushes up to 10 s first (serving delivery reports); what is still queued
 * then is purged and reported as EXB_ERR_RETRY. NULL is a no-op. */
void exb_producer_destroy(exb_producer_t *p);

/* Borrowed handle for topic `name`, created on first use, valid until the
 * producer is destroyed (a hash lookup: cheap enough per message, thread-safe).
 * NULL only if librdkafka refuses the name (logged). */
exb_topic_t *exb_producer_topic(exb_producer_t *p, const char *name);
const char *exb_topic_name(const exb_topic_t *t);

/* The topic's partition count from the brokers' metadata (a request, up to
 * timeout_ms: control-plane use), or -1 if it cannot be learned. */
int exb_producer_partitions(exb_producer_t *p, exb_topic_t *t, int timeout_ms);
/* The partition Kafka's default partitioner (murmur2, as the Java client and
 * `partition -1` below) gives `key` among `partitions`. */
int32_t exb_partition_of(const void *key, size_t key_len, int partitions);

/* Enqueues one message (key/value/headers copied: the buffers may be reused
 * at once). partition -1 = by key (murmur2 as the Java client; no key =
 * random). value NULL = tombstone. Returns EXB_OK, EXB_ERR_RETRY if the
 * local queue is full (poll, then try again), or EXB_ERR_INVALID/FATAL with
 * errstr; then no delivery report follows. */
exb_err_t exb_produce(exb_producer_t *p, exb_topic_t *t, int32_t partition, const void *key,
                      size_t key_len, const void *value, size_t value_len, const exb_header_t *hdrs,
                      int nhdrs, void *msg_opaque, char *errstr, size_t errstr_size);

/* One message of exb_produce_batch(): as exb_produce()'s arguments. */
typedef struct exb_out_s {
        int32_t partition; /* -1 = by key */
        const void *key;
        size_t key_len;
        const void *value;
        size_t len;
        void *msg_opaque;
} exb_out_t;

/* Enqueues outs[0..n) to t in order, as exb_produce() without headers would
 * one by one, for less per message (the topic and its partitions are looked
 * up and the clock read once per call, not per message). While the local
 * queue is full it waits, serving delivery reports (exb_producer_poll()).
 * Returns EXB_OK, or EXB_ERR_INVALID/FATAL with errstr (some of the messages
 * may have been enqueued then). */
exb_err_t exb_produce_batch(exb_producer_t *p, exb_topic_t *t, const exb_out_t *outs, int n,
                            char *errstr, size_t errstr_size);

/* Serves delivery reports (and errors) waiting up to timeout_ms for the
 * first; returns how many events were served. */
int exb_producer_poll(exb_producer_t *p, int timeout_ms);
/* Waits until everything queued is delivered or failed. EXB_ERR_RETRY on timeout. */
exb_err_t exb_producer_flush(exb_producer_t *p, int timeout_ms);
int exb_producer_outq_len(exb_producer_t *p);
/* Fatal error of the idempotent producer (message gaps): EXB_ERR_FATAL with
 * errstr (replace the producer), EXB_ERR_INVALID with errstr if it was refused
 * authorization (a new producer would fail alike: stop), else EXB_OK. */
exb_err_t exb_producer_fatal(exb_producer_t *p, char *errstr, size_t errstr_size);

/* ---------------------------------------------------------------- consumer */

typedef struct exb_consumer_s exb_consumer_t;

typedef struct exb_msg_s {
        const char *topic;
        int32_t partition;
        int64_t offset;
        const void *key;
        size_t key_len;
        const void *value;
        size_t len;
        int64_t ts_ms;
        void *_rkm; /* the librdkafka message, owned */
        exb_consumer_t *_c; /* the consumer that returned it */
} exb_msg_t;

#define EXB_OFFSET_STORED    (-1000) /* = RD_KAFKA_OFFSET_STORED */
#define EXB_OFFSET_BEGINNING (-2)
#define EXB_OFFSET_END       (-1)

/* Rebalance hooks of a group consumer, called from exb_consumer_poll() and
 * exb_consumer_destroy(), once per partition.
 * on_assign returns the offset to start each partition from
 * (EXB_OFFSET_STORED = the group's committed offset, else
 * auto.offset.reset=earliest; or an offset >= 0, BEGINNING, END).
 * on_revoke is called before partitions go away: flush and store what you
 * can; the adapter commits stored offsets right after it returns (not if
 * the partitions were lost to a session timeout: then another member may
 * own them already, and a WARN says so). Either may be NULL. */
typedef struct exb_rebalance_s {
        int64_t (*on_assign)(void *opaque, const char *topic, int32_t partition);
        void (*on_revoke)(void *opaque, const char *topic, int32_t partition);
        void *opaque;
} exb_rebalance_t;

/* group_id NULL = group-less (use exb_consumer_assign). rebalance may be NULL
 * (copied). Returns a new consumer or NULL with errstr (bad property). */
exb_consumer_t *exb_consumer_new(const char *brokers, const char *group_id,
                                 const exb_kprop_t *props, int nprops,
                                 const exb_rebalance_t *rebalance, char *errstr,
                                 size_t errstr_size);
/* Calls on_revoke, commits stored offsets, leaves the group. NULL is a no-op. */
void exb_consumer_destroy(exb_consumer_t *c);

/* Subscribes to topic names or regexes (starting with '^'; regexes also
 * match topics created later). EXB_ERR_INVALID for a group-less consumer. */
exb_err_t exb_consumer_subscribe(exb_consumer_t *c, const char *const *topics, int n, char *errstr,
                                 size_t errstr_size);
/* Group-less: adds a partition to the assignment starting at offset
 * (>= 0, EXB_OFFSET_BEGINNING or EXB_OFFSET_END); partitions assigned
 * before keep their position. Looks the leader up first (one metadata
 * round trip), so the first message comes in milliseconds.
 * EXB_ERR_INVALID for a group member. */
exb_err_t exb_consumer_assign(exb_consumer_t *c, const char *topic, int32_t partition,
                              int64_t offset, char *errstr, size_t errstr_size);

/* Fills msgs with up to max messages, waiting up to timeout_ms for the first
 * (-1 = forever) and taking the rest only from what is already fetched.
 * Returns the count (0 on timeout), or -1 with errstr on a fatal consumer
 * error. Transient errors are logged and skipped. Each returned message must
 * be released with exb_msg_release(); topic/key/value point into it.
 * Not thread-safe with the other calls on the same consumer. */
int exb_consumer_poll(exb_consumer_t *c, exb_msg_t *msgs, int max, int timeout_ms, char *errstr,
                      size_t errstr_size);
/* Gives msg back; its pointers are invalid from now on. Call it on the
 * thread that polls, before exb_consumer_destroy(). NULL or released: no-op. */
void exb_msg_release(exb_msg_t *msg);

/* Header `name` of msg: 1 and value/len if present, else 0. */
int exb_msg_header(const exb_msg_t *msg, const char *name, const void **value, size_t *len);
/* All headers of msg, in order: returns the count, filling up to max
 * entries (hdrs may be NULL with max 0; borrowed from msg). */
int exb_msg_headers(const exb_msg_t *msg, exb_header_t *hdrs, int max);

/* Group-less: the next offset to read of topic/partition as far as this
 * consumer knows (after the last message returned, or the end of the
 * partition once a poll found it there), -1 if nothing was read yet. A
 * reader "up to the high watermark" compares this, not the last message's
 * offset + 1: transaction markers take offsets but are never returned, so
 * the last message of a transactional topic sits below hi - 1. */
int64_t exb_consumer_position(exb_consumer_t *c, const char *topic, int32_t partition);

/* Marks topic/partition as consumed up to next_offset (exclusive); committed
 * by the auto-committer (or exb_consumer_commit). EXB_ERR_INVALID if the
 * partition is not assigned to this consumer (any more): nothing is stored,
 * its new owner will see those records again. */
exb_err_t exb_consumer_store(exb_consumer_t *c, const char *topic, int32_t partition,
                             int64_t next_offset);
/* Commits what is stored (nothing stored, or group-less: EXB_OK). */
exb_err_t exb_consumer_commit(exb_consumer_t *c, int async);

/* Stops/resumes fetching all assigned partitions (a sink that is down);
 * partitions assigned while paused start paused. Already fetched messages
 * are dropped and fetched again after resume. */
exb_err_t exb_consumer_pause(exb_consumer_t *c);
exb_err_t exb_consumer_resume(exb_consumer_t *c);
/* Rewinds topic/partition to offset (used after a sink failure); must be
 * assigned. Waits up to 10 s. Messages fetched before are dropped. */
exb_err_t exb_consumer_seek(exb_consumer_t *c, const char *topic, int32_t partition,
                            int64_t offset);
/* Rewinds every assigned partition to the group's committed offset (the
 * beginning if none): after an aborted transaction. Waits up to timeout_ms. */
exb_err_t exb_consumer_rewind(exb_consumer_t *c, int timeout_ms, char *errstr, size_t errstr_size);

/* Low and high watermarks of a partition, queried from the broker.
 * EXB_ERR_FATAL if the principal may not describe the topic. */
exb_err_t exb_consumer_watermarks(exb_consumer_t *c, const char *topic, int32_t partition,
                                  int64_t *lo, int64_t *hi, int timeout_ms);
/* 1 if cluster_id (exb_consumer_cluster_id) is an embedded broker's:
 * librdkafka's mock cluster names itself "mockCluster<hex>". */
int exb_cluster_is_embedded(const char *cluster_id);
/* The cluster id (for cache invalidation; "mockCluster..." for an embedded
 * broker), or NULL. Caller frees with free(). */
char *exb_consumer_cluster_id(exb_consumer_t *c, int timeout_ms);

/* ------------------------------------------------------------ transactions */

/* A producer made with a kafka.transactional.id (in props) writes in Kafka
 * transactions: consume-transform-produce with the consumer's offsets
 * committed in the same transaction (exactly once, KIP-447 fencing by the
 * consumer group's generation). Only against a real Kafka: the embedded
 * broker accepts the calls but writes no markers and keeps no transactional
 * offsets. Delivery reports still come, one per message; a failed one makes
 * the transaction fail to commit.
 *
 * Errors: EXB_ERR_RETRY = the transaction is aborted (abortable error, or
 * a commit that was refused): call exb_producer_txn_abort(), rewind the
 * consumer (exb_consumer_rewind) and route again; EXB_ERR_FATAL = this
 * producer is fenced (another instance with the same transactional.id, or
 * a fatal idempotence error): stop; EXB_ERR_INVALID = not authorized
 * (TransactionalId ACL missing): stop. Retriable errors (timeouts,
 * coordinator moves) are retried inside, up to timeout_ms. */
exb_err_t exb_producer_txn_init(exb_producer_t *p, int timeout_ms, char *errstr,
                                size_t errstr_size);
exb_err_t exb_producer_txn_begin(exb_producer_t *p, char *errstr, size_t errstr_size);

/* A consumer position: next offset to read of topic/partition. */
typedef struct exb_offset_s {
        const char *topic;
        int32_t partition;
        int64_t offset;
} exb_offset_t;

/* Flushes the transaction's messages, adds offs (the group of consumer c)
 * to it and commits. */
exb_err_t exb_producer_txn_commit(exb_producer_t *p, exb_consumer_t *c, const exb_offset_t *offs,
                                  int n, int timeout_ms, char *errstr, size_t errstr_size);
/* Aborts the open transaction: its messages are never seen by
 * read_committed consumers (purged if still queued). */
exb_err_t exb_producer_txn_abort(exb_producer_t *p, int timeout_ms, char *errstr,
                                 size_t errstr_size);

/* ------------------------------------------------------------------- admin */

typedef struct exb_topic_spec_s {
        const char *name;
        int partitions;
        int compact; /* cleanup.policy=compact */
        int max_message_bytes; /* max.message.bytes of a new topic; 0 = the broker's default */
} exb_topic_spec_t;

/* Makes sure the topics exist (existing ones are left alone, whatever their
 * partition count). On a real cluster: CreateTopics with the broker's
 * default replication factor (Kafka >= 2.4). On an embedded broker of this
 * process: created at once (compact is ignored: the mock never compacts).
 * On an embedded broker of another process: waits for it to create them.
 * Returns EXB_OK, EXB_ERR_RETRY with "topic X does not exist yet (...)" or
 * another cause (timed out, brokers unreachable), or EXB_ERR_INVALID
 * (bad spec or property) with errstr. */
exb_err_t exb_admin_ensure_topics(const char *brokers, const exb_kprop_t *props, int nprops,
                                  const exb_topic_spec_t *specs, int n, int timeout_ms,
                                  char *errstr, size_t errstr_size);

typedef struct exb_topic_info_s {
        char *name;
        int partitions;
} exb_topic_info_t;

/* Lists topics whose name starts with prefix (NULL = all). Caller frees with
 * exb_topic_infos_free(). Returns the count or -1 with errstr. */
int exb_admin_list_topics(const char *brokers, const exb_kprop_t *props, int nprops,
                          const char *prefix, exb_topic_info_t **infos, int timeout_ms,
                          char *errstr, size_t errstr_size);
void exb_topic_infos_free(exb_topic_info_t *infos, int n);

/* Committed offset of group for topic/partition (-1 if none). Does not join
 * the group. EXB_ERR_RETRY if the coordinator cannot be reached in time. */
exb_err_t exb_admin_group_offset(const char *brokers, const exb_kprop_t *props, int nprops,
                                 const char *group, const char *topic, int32_t partition,
                                 int64_t *offset, int timeout_ms, char *errstr, size_t errstr_size);

/* --------------------------------------------------------------------- ACLs */

/* An ALLOW ACL for any host (exbus manages no DENY rules). The enum values
 * are Kafka's. librdkafka 2.0.2 has no TransactionalId resource type, so
 * those ACLs cannot be managed through it. */
typedef enum { EXB_ACL_TOPIC = 2, EXB_ACL_GROUP = 3, EXB_ACL_CLUSTER = 4 } exb_acl_res_t;
typedef enum { EXB_ACL_LITERAL = 3, EXB_ACL_PREFIXED = 4 } exb_acl_pattern_t;
typedef enum {
        EXB_ACL_ALL = 2,
        EXB_ACL_READ = 3,
        EXB_ACL_WRITE = 4,
        EXB_ACL_CREATE = 5,
        EXB_ACL_DESCRIBE = 8,
        EXB_ACL_IDEMPOTENT_WRITE = 12
} exb_acl_op_t;

typedef struct exb_acl_s {
        exb_acl_res_t restype;
        exb_acl_pattern_t pattern;
        char *name;      /* topic, topic prefix, group, or "kafka-cluster" */
        char *principal; /* "User:GA" */
        exb_acl_op_t op;
} exb_acl_t;

const char *exb_acl_res_name(exb_acl_res_t r); /* "topic" ... */
const char *exb_acl_op_name(exb_acl_op_t op);  /* "READ" ... */

#define EXB_ACL_NO_AUTHORIZER (-2)

/* The cluster's ALLOW ACLs (any host). Returns the count; -1 with errstr;
 * or EXB_ACL_NO_AUTHORIZER when the cluster does not do authorization (no
 * authorizer configured, or a broker without the ACL APIs, like the
 * embedded one). Free with exb_acls_free. */
int exb_admin_acl_list(const char *brokers, const exb_kprop_t *props, int nprops, exb_acl_t **acls,
                       int timeout_ms, char *errstr, size_t errstr_size);
/* Creates / deletes exactly these ACLs. EXB_OK or an error with errstr. */
exb_err_t exb_admin_acl_create(const char *brokers, const exb_kprop_t *props, int nprops,
                               const exb_acl_t *acls, int n, int timeout_ms, char *errstr,
                               size_t errstr_size);
exb_err_t exb_admin_acl_delete(const char *brokers, const exb_kprop_t *props, int nprops,
                               const exb_acl_t *acls, int n, int timeout_ms, char *errstr,
                               size_t errstr_size);
void exb_acls_free(exb_acl_t *acls, int n);

/* ---------------------------------------------------------- embedded broker */

typedef struct exb_embedded_s exb_embedded_t;

/* Starts librdkafka's mock cluster (nbrokers brokers on ephemeral loopback
 * ports) in this process. Returns NULL with errstr on failure.
 * Limits of the 2.0.2 mock: memory only, about 5 MiB kept per partition
 * (oldest message sets dropped), no compaction, first group join 3 s, one
 * message set per partition per Fetch (see the note on throughput above),
 * a mock command (create topic, down/up) now and then takes 1 s (the mock
 * thread misses a wakeup and sleeps out its 1 s poll). */
exb_embedded_t *exb_embedded_new(int nbrokers, char *errstr, size_t errstr_size);
void exb_embedded_destroy(exb_embedded_t *e);
const char *exb_embedded_bootstraps(const exb_embedded_t *e);
/* Creates a topic (existing: no-op). EXB_ERR_INVALID with errstr otherwise. */
exb_err_t exb_embedded_create_topic(exb_embedded_t *e, const char *topic, int partitions,
                                    char *errstr, size_t errstr_size);
/* Takes all brokers down (connections closed, new ones refused) or back up
 * (fault injection in tests). */
void exb_embedded_set_down(exb_embedded_t *e, int down);
/* Makes a partition leaderless (leaderless = 1: what is produced to it
 * waits in the producers, consumers get nothing from it) or gives it back
 * to the first broker (fault injection in tests). */
void exb_embedded_set_leaderless(exb_embedded_t *e, const char *topic, int32_t partition,
                                 int leaderless);

#endif
