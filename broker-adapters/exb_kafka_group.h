/*
 * exb_kafka_group.h — consumer groups as an operator sees them (`exbus lag`):
 * which groups exist, their state and members, and per partition the
 * committed offset, the end of the log, the lag and the member that owns it.
 *
 * Part of the broker adapter (the only module that talks to librdkafka);
 * exb_kafka.h has the rest of it.
 *
 * Two kinds of cluster:
 *  - a real Kafka: ListGroups, DescribeGroups and OffsetFetch for all of a
 *    group's partitions (Admin API). Everything below is known.
 *  - a broker without the group APIs, such as the embedded broker
 *    (librdkafka 2.0.2's mock cluster: no ListGroups, no DescribeGroups, and
 *    an Admin OffsetFetch that never answers). Groups cannot be listed
 *    (exb_admin_group_list returns EXB_GROUPS_UNSUPPORTED), state and members
 *    are unknown (described = 0), and committed offsets are read with a
 *    consumer's OffsetFetch for the partitions of the group's topic prefix,
 *    the only ones that can be found without the group's help.
 *
 * Two lags per partition:
 *  - offset_lag = end - committed (Kafka's figure, as kafka-consumer-groups
 *    shows it); with nothing committed, or a committed offset below the low
 *    watermark (those records are gone), end - low: where the group would
 *    start from (auto.offset.reset=earliest). Never negative.
 *  - lag = the records the group would still receive: the partition is read
 *    (read_committed) from that starting point up to its first record, and
 *    lag = end - its offset, or 0 if the end comes first. Offsets also count
 *    transaction markers and aborted records, which no consumer receives; a
 *    consumer that commits the offset after the last record it processed
 *    (librdkafka with offsets stored by the application, as exbus does)
 *    stays one offset short of the end after every committed transaction,
 *    so offset_lag never reaches 0 behind a transactional producer (the
 *    router on a real Kafka). lag is exact when it is 0; above 0 it still
 *    counts the markers after the first record (one per transaction: the
 *    router's 1000 records across 4 partitions showed lag 1007). If a
 *    partition cannot be read in PROBE_MAX_MS (5 s), lag = offset_lag.
 * "end" is the end offset the broker gives for the partition (ListOffsets,
 * latest).
 */
#ifndef EXB_KAFKA_GROUP_H
#define EXB_KAFKA_GROUP_H

#include "exb_kafka.h"

/* exb_admin_group_list(): the cluster cannot list groups. */
#define EXB_GROUPS_UNSUPPORTED (-2)

/* Ids of the consumer groups on the cluster that start with prefix (NULL or
 * "" = all), sorted. Returns the count with *groups (free with
 * exb_group_list_free), -1 with errstr, or EXB_GROUPS_UNSUPPORTED (with
 * errstr saying why) when the brokers have no ListGroups (the embedded
 * broker). A broker that failed to answer while others did makes it -1: a
 * partial list would hide groups. */
int exb_admin_group_list(const char *brokers, const exb_kprop_t *props, int nprops,
                         const char *prefix, char ***groups, int timeout_ms, char *errstr,
                         size_t errstr_size);
void exb_group_list_free(char **groups, int n);

/* One group to describe. topic_prefix (may be NULL) names the topics the
 * group is meant to consume ("exb.ingest." for the router): their partitions
 * are listed even where the group has committed nothing, so a group that has
 * not started shows its whole backlog. */
typedef struct exb_group_query_s {
        const char *group;
        const char *topic_prefix;
} exb_group_query_t;

typedef struct exb_group_member_s {
        char *member_id;
        char *client_id;
        char *host;
        int partitions; /* how many partitions it is assigned */
} exb_group_member_t;

typedef struct exb_group_part_s {
        char *topic;
        int32_t partition;
        int64_t committed;  /* -1: none */
        int64_t low, end;   /* watermarks, -1 if they could not be read */
        int64_t offset_lag; /* end - committed (see the top), -1: unknown */
        int64_t lag;        /* records still to read, -1: unknown */
        int owner;          /* index in members, -1: unassigned or unknown */
} exb_group_part_t;

typedef struct exb_group_desc_s {
        char *group;
        int described;               /* 1: state and members are known */
        char *state;                 /* "Stable", "Empty", "PreparingRebalance", "Dead"
                                      * (no such group) ...; "unknown" if !described */
        char *error;                 /* NULL, or what could not be read (the rest can) */
        exb_group_member_t *members; /* sorted by client id, member id */
        int nmembers;
        exb_group_part_t *parts; /* sorted by topic, partition */
        int nparts;
        int64_t lag; /* sum of the known partition lags */
} exb_group_desc_t;

/* Describes the n groups of q into *descs (an array of n, in the order of
 * q; free with exb_group_descs_free), over one connection. A group that
 * cannot be described fully still gets what could be read, and its error.
 * Returns EXB_OK; EXB_ERR_RETRY with errstr if the cluster cannot be
 * reached (nothing filled in); EXB_ERR_INVALID (bad property);
 * EXB_ERR_FATAL (not authorized to describe the cluster's topics). */
exb_err_t exb_admin_groups_describe(const char *brokers, const exb_kprop_t *props, int nprops,
                                    const exb_group_query_t *q, int n, exb_group_desc_t **descs,
                                    int timeout_ms, char *errstr, size_t errstr_size);
void exb_group_descs_free(exb_group_desc_t *descs, int n); /* NULL is a no-op */

#endif
