/*
 * exb_publisher.h — the producer agent (`exbus producer -c FILE`), DESIGN §6.
 *
 * A department runs it next to its own database. It reads the record
 * changes its source captured (exb_source.h: for SQLite, triggers writing
 * into a changelog table in the same transaction as the change), maps them
 * to the items of the catalog resource each table feeds, validates every
 * record before it leaves (exb_validate), and publishes it as Avro
 * (Confluent framing, the resource's LATEST ingest schema id) to
 * exb.ingest.<dept>.<resource>, keyed by the key items, with the idempotent
 * producer.
 *
 * Guarantees:
 *  - Order: changes are produced in source order; one producer, so per key
 *    (one partition) the order is kept.
 *  - Nothing acknowledged is lost: the source forgets a change only when it
 *    and every change before it have a successful delivery report (a
 *    contiguous prefix). On a failed delivery the agent stops producing,
 *    waits for the reports in flight, then retries from the first
 *    undelivered change (backoff 1 s doubling to 30 s); a change is never
 *    skipped. Changes after the failed one may be sent twice: their event
 *    id, "<dept>-<db id>-<seq>", is stable, so duplicates can be dropped.
 *  - No duplicate after a crash: a run killed (kill -9, power loss) after
 *    Kafka took changes but before the source forgot them does not send
 *    them again. Before producing anything, the next run reads back the
 *    tail of its ingest partitions (bounded by what can be in flight:
 *    10 x batch.size changes) and acknowledges the changes Kafka already
 *    has, per key only up to the first one it does not have, so per-key
 *    order holds and nothing Kafka lacks is skipped. After a clean stop
 *    nothing is read back (data.dir/producer-state.db says so). A resumed
 *    snapshot does the same for its rows. If Kafka cannot be read, nothing
 *    is published until it can. (Details: exb_publisher.c, "Restart
 *    recovery".)
 *  - A change that may not leave (a value that does not fit its item type,
 *    a missing required item, a failed check, too large) is kept in the
 *    source's rejects table with its reason and does not block the ones
 *    behind it.
 *  - The configuration is checked against the catalog before any data is
 *    touched: every table exists, every key and required item is a column,
 *    the resource is provided by `dept`.
 *
 * Snapshot (存量, --snapshot): every existing row of each mapped table is
 * published as op SNAPSHOT with event id "<dept>-<db id>-snap<N>-<rowid>".
 * Progress (the last delivered rowid per table, contiguous) is kept in
 * data.dir/producer-state.db, so a killed snapshot resumes where it stopped
 * with the same N; a finished one makes the next --snapshot a new N. Change
 * capture is installed before the snapshot reads, so changes made meanwhile
 * are published after it and the latest state wins.
 *
 * Everything is poll-driven on the caller's thread (exbus demo runs all roles
 * in one process): exb_publisher_poll() does one bounded round.
 */
#ifndef EXB_PUBLISHER_H
#define EXB_PUBLISHER_H

#include <signal.h>
#include <stdint.h>
#include "exb_common.h"
#include "exb_catalog.h"
#include "exb_conf.h"

typedef struct exb_publisher_conf_s {
        char *dept;
        char *brokers;
        char *data_dir;
        char *source_type;
        char *source_path;
        exb_conf_kvs_t tables; /* source.table.<table> = <resource code> */
        int poll_interval_ms;
        int batch_size;
        exb_conf_kvs_t kafka;
        exb_conf_kvs_t source_opts; /* other source.* keys: checked against the source's table */
        /* Not a property: the config file's name, prefixes messages
         * ("producer.conf: source.table.person = ..."). NULL: "producer". */
        const char *where;
} exb_publisher_conf_t;

extern const exb_prop_t exb_publisher_props[];

typedef struct exb_publisher_s exb_publisher_t;

/* Reads the control plane (cache data.dir/producer-control.db), checks the
 * configuration against the catalog and the source (before touching any
 * data), installs the change capture, creates the producer.
 * Returns NULL with errstr naming file, table, column and item:
 *   producer.conf: source.table.person = 370600-GA-0001: table person has no
 *   column "id_number" (key item) */
exb_publisher_t *exb_publisher_new(const exb_publisher_conf_t *conf, char *errstr,
                                   size_t errstr_size);

/* Flushes (up to 5 s: what is not delivered stays in the source and is sent
 * again at the next start), acknowledges what was delivered, closes the source.
 * NULL is a no-op. */
void exb_publisher_destroy(exb_publisher_t *pub);

/* One round: applies control-plane changes (a new resource version), reads
 * pending changes (at most batch.size, bounded by what is in flight),
 * validates, produces, serves delivery reports (waiting up to timeout_ms
 * when there was nothing to read), acknowledges the delivered prefix.
 * Returns the number of records produced in this round (0 when idle or
 * backing off after a failed delivery), or -1 with errstr when the agent
 * cannot go on (the source is unusable, a produce error that is not about
 * the record). */
int exb_publisher_poll(exb_publisher_t *pub, int timeout_ms, char *errstr, size_t errstr_size);

/* Publishes every existing row of every mapped table as SNAPSHOT (see
 * above), blocking until done or until the stop flag (exb_publisher_set_stop)
 * is raised. Shows "snapshot person 12000/50000 24%" on stderr when it is a
 * terminal, logs per table otherwise.
 * Returns the number of rows published, or -1 with errstr (stopped: "snapshot
 * interrupted, resume with --snapshot"; source error; source without
 * snapshot support). */
int exb_publisher_snapshot(exb_publisher_t *pub, char *errstr, size_t errstr_size);

/* A flag that makes exb_publisher_snapshot() return early (progress kept). */
void exb_publisher_set_stop(exb_publisher_t *pub, volatile sig_atomic_t *stop);

/* Loops exb_publisher_poll(poll.interval.ms) until *stop. Returns 0, or 1
 * after a fatal error (logged). */
int exb_publisher_run(exb_publisher_t *pub, volatile sig_atomic_t *stop);

typedef struct exb_publisher_stats_s {
        uint64_t produced;  /* handed to the producer (incl. retries) */
        uint64_t published; /* delivered (successful delivery reports) */
        uint64_t rejected;  /* kept in the rejects table */
        uint64_t failed;    /* failed delivery reports (then retried) */
        uint64_t snapshot;  /* snapshot rows delivered */
        uint64_t recovered; /* found on Kafka at a restart: acknowledged, not sent again */
        int inflight;       /* produced, no report yet */
} exb_publisher_stats_t;

void exb_publisher_stats(const exb_publisher_t *pub, exb_publisher_stats_t *stats);

/* Checks a configuration against a catalog file and the source, without a
 * broker and without changing the source (what exb_publisher_new checks
 * first; for `exbus producer --check` and tests). The resources are taken
 * from cat (the schema derived as the control plane would).
 * Returns 0, or -1 with errstr. */
int exb_publisher_check(const exb_publisher_conf_t *conf, const exb_catalog_t *cat, char *errstr,
                        size_t errstr_size);

#endif
