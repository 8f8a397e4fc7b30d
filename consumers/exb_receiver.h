/*
 * exb_receiver.h — the consumer agent (`exbus consumer -c FILE`, DESIGN §6):
 * exb.deliver.<dept>.* into the subscriber's own store, through a sink
 * plugin (exb_sink.h; sink.type = sqlite).
 *
 * Topics: the agent subscribes to the pattern ^exb\.deliver\.<dept>\..*
 * (not to the exact topics of the department's approved subscriptions):
 *  - records delivered before a revocation are still read to the end, so
 *    the subscriber's copy is complete up to the revocation;
 *  - it needs no rights beyond the ACL a subscriber has on a real cluster
 *    (read exb.deliver.<itself>.*), and no control-plane state to start;
 *  - a topic created for a new approval is picked up without restart by
 *    the metadata refresh (topic.metadata.refresh.interval.ms, 5000 by
 *    default here; a kafka.* key overrides it).
 * The control plane (exb.control) is still followed, for the schemas.
 *
 * Each message: topic -> resource code (the last segment) -> schema id of
 * the frame -> delivery schema from the control plane (synced once when
 * unknown) -> the schema must be one of that resource -> bounded decode.
 * What fails becomes a dead letter with its reason, handed to the sink in
 * the same batch, so the stream goes on and nothing is dropped silently.
 *
 * Offsets: on assignment each partition starts where the sink says
 * (exb_sink_plugin_t.offset: SQLite keeps them in the same transaction as
 * the rows, so a restart after kill -9 neither loses nor repeats a row).
 * Kafka offsets are stored for commit only after the sink has applied a
 * batch (informational for lag with SQLite; the truth for sinks without
 * offsets).
 *
 * A sink that is down (EXB_ERR_RETRY from write): the batch is dropped, the
 * consumer paused and every partition rewound to the sink's next offset;
 * after a backoff (250 ms doubling to 30 s, each wait drawn between half
 * and all of the step, so agents do not retry in lockstep) consumption resumes and the
 * same records are offered again.
 *
 * Poll-driven: exb_receiver_poll() does one step and returns, so `exbus
 * demo` can drive every role from one thread.
 */
#ifndef EXB_RECEIVER_H
#define EXB_RECEIVER_H

#include <signal.h>
#include <stdint.h>

#include "exb_common.h"
#include "exb_conf.h"

typedef struct exb_receiver_conf_s {
        char *dept; /* subscribing department code, [A-Za-z0-9_]+ */
        char *brokers;
        char *data_dir;
        char *sink_type;     /* sqlite */
        char *sink_path;     /* the sink's location (sqlite: database file) */
        exb_conf_kvs_t sink; /* other sink.* keys: checked against the sink's own table */
        char *group_id;      /* NULL = exbus-consumer-<dept> */
        int batch_size;
        int linger_ms; /* batch.linger.ms */
        exb_conf_kvs_t kafka; /* kafka.* passed through */
} exb_receiver_conf_t;

extern const exb_prop_t exb_receiver_props[];

typedef struct exb_receiver_s exb_receiver_t;

/* Checks the configuration (dept, sink keys against the sink's table), opens
 * the sink, reads the control plane and subscribes. conf is copied: the
 * caller keeps ownership. Returns NULL with errstr (bad configuration,
 * broker or exb.control unreachable, sink cannot be opened). */
exb_receiver_t *exb_receiver_new(const exb_receiver_conf_t *conf, char *errstr, size_t errstr_size);

/* Commits stored offsets, leaves the group, closes the sink. NULL is a no-op. */
void exb_receiver_destroy(exb_receiver_t *rcv);

/* One step: follow the control plane, consume up to batch.size records
 * (waiting up to timeout_ms for the first) and apply them to the sink as one
 * batch. While the sink is down it only waits out the backoff (serving
 * rebalances) and returns 0. Returns the number of records applied (rows
 * upserted or deleted; dead letters and replays are not counted), or -1 with
 * errstr when the agent must stop (fatal consumer or sink error). */
int exb_receiver_poll(exb_receiver_t *rcv, int timeout_ms, char *errstr, size_t errstr_size);

/* Loops exb_receiver_poll until *stop. Returns 0, or 1 after a fatal error. */
int exb_receiver_run(exb_receiver_t *rcv, volatile sig_atomic_t *stop);

/* Counters since exb_receiver_new(). */
typedef struct exb_receiver_stats_s {
        uint64_t consumed;     /* messages taken from Kafka (incl. re-reads after a rewind) */
        uint64_t upserts;      /* rows inserted or updated */
        uint64_t deletes;      /* DELETE records applied */
        uint64_t dead_letters; /* kept by the sink as dead letters */
        uint64_t replays;      /* skipped: already applied */
        uint64_t errors;       /* sink failures (batches rolled back, retried later) */
        uint64_t batches;      /* batches applied */
} exb_receiver_stats_t;

void exb_receiver_stats(const exb_receiver_t *rcv, exb_receiver_stats_t *stats);

/* Sink is down and consumption paused (1) or not (0). */
int exb_receiver_paused(const exb_receiver_t *rcv);

#endif
