/*
 * exb_router.h — the router: exb.ingest.* -> rules -> exb.deliver.* (DESIGN §6).
 *
 * For every ingest record: the topic names the resource; the frame's schema
 * id must be a schema of that resource; the datum is decoded with bounds
 * checks and validated (exb_validate.h); then for each active subscription
 * of the resource: filter -> project -> mask -> encode -> produce to
 * exb.deliver.<subscriber>.<resource>, keyed by the (masked) key items. An
 * UPDATE whose new values leave a subscription's filter is delivered to it
 * as a DELETE; a DELETE always passes (it carries only keys).
 *
 * Anything that cannot be routed goes to exb.dlq.<provider> with the
 * original key, value and headers plus exb-error, exb-error-stage
 * (catalog|schema|decode|check) and exb-origin-topic/-partition/-offset.
 *
 * Exactly once (exactly.once = on, or auto against a real Kafka): the
 * router reads, routes and commits in Kafka transactions. One transaction
 * holds the outputs (deliveries, dead letters) of the records consumed since
 * the last commit and the next offsets of their partitions (sent to the
 * group's coordinator in the transaction); it is committed every
 * transaction.interval.ms or transaction.max.records, and before partitions
 * are revoked. Subscribers read read_committed, so they never see outputs of
 * a transaction that was aborted or never finished: a killed router's open
 * transaction is aborted when it restarts (same transactional id, from
 * instance.id) or after transaction.timeout.ms, and its records are routed
 * again from the committed offsets. An abortable error (e.g. a failed
 * delivery) aborts the transaction and rewinds the consumer to the committed
 * offsets; a fenced or fatal producer stops the router.
 *
 * At least once (exactly.once = off, or auto against the embedded broker,
 * which keeps no transactional offsets): every commit.interval.ms the router
 * waits until every output produced so far is delivered, then stores the
 * next offsets of the records consumed meanwhile for commit; so an offset
 * is stored only when the outputs of its record and of all before it are
 * delivered. A failed delivery (after librdkafka's own retries) stops the
 * router; a restart resumes from the committed offsets, so outputs after
 * the last commit are sent again.
 *
 * Control-plane changes (approve, revoke, expiry) are applied between batches.
 */
#ifndef EXB_ROUTER_H
#define EXB_ROUTER_H

#include <signal.h>
#include "exb_common.h"
#include "exb_conf.h"

typedef struct exb_router_conf_s {
        char *brokers;
        char *data_dir;
        char *mask_secret;
        char *group_id;
        int partitions;
        int batch_size;
        char *exactly_once; /* auto|on|off */
        char *instance_id;
        int commit_interval_ms;
        int txn_interval_ms;
        int txn_max_records;
        exb_conf_kvs_t kafka;
} exb_router_conf_t;

extern const exb_prop_t exb_router_props[];

typedef struct exb_router_s exb_router_t;

/* Returns a new router (control plane read, group joined lazily), or NULL
 * with errstr. A missing mask secret is an error; so is exactly.once = on
 * against the embedded broker. */
exb_router_t *exb_router_new(const exb_router_conf_t *conf, char *errstr, size_t errstr_size);
void exb_router_destroy(exb_router_t *rtr); /* flushes outputs, commits */

/* One batch: apply control changes, consume up to batch_size records
 * (waiting up to timeout_ms), route them, serve delivery reports, store
 * offsets. Returns records consumed, or -1 with errstr when the router must
 * stop (fatal delivery error). */
int exb_router_poll(exb_router_t *rtr, int timeout_ms, char *errstr, size_t errstr_size);

/* Waits until every output produced so far is delivered, then stores the
 * offsets (exactly once: commits the open transaction). Returns 0, or -1
 * with errstr on timeout or a fatal error. */
int exb_router_drain(exb_router_t *rtr, int timeout_ms, char *errstr, size_t errstr_size);

/* Loops exb_router_poll until *stop. Returns 0, or 1 after a fatal error. */
int exb_router_run(exb_router_t *rtr, volatile sig_atomic_t *stop);

/* Counters since start. */
typedef struct exb_route_stats_s {
        char sub_id[32];      /* "" for the resource-level line */
        char subscriber[40];
        char resource[72];
        uint64_t in;          /* resource: records consumed; route: records considered */
        uint64_t out;         /* route: delivered (incl. deletes) */
        uint64_t filtered;    /* route: not matching the filter */
        uint64_t to_delete;   /* route: UPDATEs that left the filter, sent as DELETE */
        uint64_t dlq;         /* resource: dead-lettered */
} exb_route_stats_t;

/* Copies the counters (resources first, then routes). Caller frees. */
int exb_router_stats(exb_router_t *rtr, exb_route_stats_t **stats);

#endif
