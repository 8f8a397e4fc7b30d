/*
 * exb_kafka_group.c — consumer groups for `exbus lag` (see exb_kafka_group.h).
 *
 * One admin handle serves a whole description: Metadata once (the
 * partitions of each group's topic prefix), then on a real Kafka one
 * DescribeGroups for all the groups and one OffsetFetch per group (the
 * librdkafka 2.0.2 Admin API takes one group per ListConsumerGroupOffsets),
 * then ListOffsets per partition for the watermarks.
 *
 * The embedded broker (librdkafka's mock cluster, cluster id
 * "mockCluster...") is recognised before any group request is sent:
 * measured against the 2.0.2 mock, ListGroups and DescribeGroups fail with
 * __UNSUPPORTED_FEATURE (harmless), but an Admin ListConsumerGroupOffsets
 * never gets an answer, not even after its request timeout, and the handle
 * then hangs in rd_kafka_destroy(). There, committed offsets are read the
 * way a consumer reads them (rd_kafka_committed() on a handle with the
 * group's id that never subscribes, so it never joins the group), for the
 * partitions of the group's topic prefix.
 */
#include "exb_kafka_group.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exb_kafka_int.h"

static int remaining(int64_t deadline)
{
        int64_t left = deadline - exb_mono_ms();
        return left < 1 ? 1 : (int)left;
}

/* Waits for the result of an admin request on q (bounded by the request
 * timeout set in its options, plus a margin). NULL if none came. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int64_t deadline)
{
        return rd_kafka_queue_poll(q, remaining(deadline) + 2000);
}

static rd_kafka_AdminOptions_t *admin_opts(rd_kafka_t *rk, rd_kafka_admin_op_t op, int64_t deadline)
{
        rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, op);
        rd_kafka_AdminOptions_set_request_timeout(opts, remaining(deadline), NULL, 0);
        return opts;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ------------------------------------------------------------------ list */

int exb_admin_group_list(const char *brokers, const exb_kprop_t *props, int nprops,
                         const char *prefix, char ***groups, int timeout_ms, char *errstr,
                         size_t errstr_size)
{
        *groups = NULL;
        int64_t deadline = exb_mono_ms() + timeout_ms;
        rd_kafka_t *rk = exb_admin_handle(brokers, props, nprops, errstr, errstr_size);
        if (!rk)
                return -1;
        if (exb_kafka_is_embedded(rk, remaining(deadline))) {
                exb_errf(errstr, errstr_size, "%s is an embedded broker: it cannot list groups",
                         brokers);
                rd_kafka_destroy(rk);
                return EXB_GROUPS_UNSUPPORTED;
        }
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opts =
                admin_opts(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, deadline);
        rd_kafka_ListConsumerGroups(rk, opts, q);
        rd_kafka_event_t *ev = admin_wait(q, deadline);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);

        int n = -1;
        if (!ev) {
                exb_errf(errstr, errstr_size, "list groups on %s: no answer in %d ms", brokers,
                         timeout_ms);
        } else if (rd_kafka_event_error(ev)) {
                exb_errf(errstr, errstr_size, "list groups on %s: %s", brokers,
                         rd_kafka_event_error_string(ev));
                if (rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
                        n = EXB_GROUPS_UNSUPPORTED;
        } else {
                const rd_kafka_ListConsumerGroups_result_t *res =
                        rd_kafka_event_ListConsumerGroups_result(ev);
                size_t nvalid, nerr;
                const rd_kafka_ConsumerGroupListing_t **valid =
                        rd_kafka_ListConsumerGroups_result_valid(res, &nvalid);
                const rd_kafka_error_t **errs =
                        rd_kafka_ListConsumerGroups_result_errors(res, &nerr);
                if (nerr) {
                        /* Every broker answers for the groups it coordinates:
                         * one that did not would hide its groups. */
                        exb_errf(errstr, errstr_size, "list groups on %s: %s", brokers,
                                 rd_kafka_error_string(errs[0]));
                        if (!nvalid &&
                            rd_kafka_error_code(errs[0]) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
                                n = EXB_GROUPS_UNSUPPORTED;
                } else {
                        size_t plen = prefix ? strlen(prefix) : 0;
                        char **out = exb_calloc(nvalid + 1, sizeof(*out));
                        n = 0;
                        for (size_t i = 0; i < nvalid; i++) {
                                const char *id = rd_kafka_ConsumerGroupListing_group_id(valid[i]);
                                if (id && !strncmp(id, prefix ? prefix : "", plen))
                                        out[n++] = exb_strdup(id);
                        }
                        qsort(out, (size_t)n, sizeof(*out), cmp_str);
                        *groups = out;
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_destroy(rk);
        return n;
}

void exb_group_list_free(char **groups, int n)
{
        for (int i = 0; groups && i < n; i++)
                free(groups[i]);
        free(groups);
}

/* -------------------------------------------------------------- describe */

/* The partition topic/partition of d, added (nothing known yet) if new. */
static exb_group_part_t *part_get(exb_group_desc_t *d, const char *topic, int32_t partition)
{
        for (int i = 0; i < d->nparts; i++)
                if (d->parts[i].partition == partition && !strcmp(d->parts[i].topic, topic))
                        return &d->parts[i];
        d->parts = exb_realloc(d->parts, sizeof(*d->parts) * (size_t)(d->nparts + 1));
        exb_group_part_t *p = &d->parts[d->nparts++];
        *p = (exb_group_part_t){exb_strdup(topic), partition, -1, -1, -1, -1, -1, -1};
        return p;
}

static void set_error(exb_group_desc_t *d, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void set_error(exb_group_desc_t *d, const char *fmt, ...)
{
        if (d->error)
                return; /* the first one says the most */
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        d->error = exb_strdup(buf);
}

typedef struct member_tmp_s {
        exb_group_member_t m;
        const rd_kafka_topic_partition_list_t *assigned;
} member_tmp_t;

static int cmp_member(const void *a, const void *b)
{
        const exb_group_member_t *x = &((const member_tmp_t *)a)->m;
        const exb_group_member_t *y = &((const member_tmp_t *)b)->m;
        int c = strcmp(x->client_id, y->client_id);
        return c ? c : strcmp(x->member_id, y->member_id);
}

static char *dup_or_empty(const char *s)
{
        return exb_strdup(s ? s : "");
}

/* One DescribeGroups for every group: state, members, their partitions.
 * Returns 0, or -1 if the brokers have no DescribeGroups (nothing set). */
static int describe_groups(rd_kafka_t *rk, exb_group_desc_t *d, int n, int64_t deadline)
{
        const char **ids = exb_calloc((size_t)n, sizeof(*ids));
        for (int i = 0; i < n; i++)
                ids[i] = d[i].group;
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opts =
                admin_opts(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, deadline);
        rd_kafka_DescribeConsumerGroups(rk, ids, (size_t)n, opts, q);
        rd_kafka_event_t *ev = admin_wait(q, deadline);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        free(ids);

        int ret = 0;
        if (!ev || rd_kafka_event_error(ev)) {
                const char *why = ev ? rd_kafka_event_error_string(ev) : "no answer in time";
                if (ev && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
                        ret = -1;
                else
                        for (int i = 0; i < n; i++)
                                set_error(&d[i], "describe group: %s", why);
                if (ev)
                        rd_kafka_event_destroy(ev);
                return ret;
        }
        size_t cnt;
        const rd_kafka_ConsumerGroupDescription_t **gs =
                rd_kafka_DescribeConsumerGroups_result_groups(
                        rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
        for (size_t g = 0; g < cnt; g++) {
                const char *id = rd_kafka_ConsumerGroupDescription_group_id(gs[g]);
                exb_group_desc_t *gd = NULL;
                for (int i = 0; i < n && !gd; i++)
                        if (id && !strcmp(d[i].group, id))
                                gd = &d[i];
                if (!gd)
                        continue;
                const rd_kafka_error_t *gerr = rd_kafka_ConsumerGroupDescription_error(gs[g]);
                if (gerr) {
                        if (rd_kafka_error_code(gerr) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
                                ret = -1;
                        else
                                set_error(gd, "describe group: %s", rd_kafka_error_string(gerr));
                        continue;
                }
                gd->described = 1;
                free(gd->state);
                gd->state = exb_strdup(rd_kafka_consumer_group_state_name(
                        rd_kafka_ConsumerGroupDescription_state(gs[g])));

                size_t nm = rd_kafka_ConsumerGroupDescription_member_count(gs[g]);
                member_tmp_t *tmp = exb_calloc(nm + 1, sizeof(*tmp));
                for (size_t k = 0; k < nm; k++) {
                        const rd_kafka_MemberDescription_t *md =
                                rd_kafka_ConsumerGroupDescription_member(gs[g], k);
                        const rd_kafka_MemberAssignment_t *ma =
                                rd_kafka_MemberDescription_assignment(md);
                        tmp[k].m.member_id =
                                dup_or_empty(rd_kafka_MemberDescription_consumer_id(md));
                        tmp[k].m.client_id = dup_or_empty(rd_kafka_MemberDescription_client_id(md));
                        tmp[k].m.host = dup_or_empty(rd_kafka_MemberDescription_host(md));
                        tmp[k].assigned = ma ? rd_kafka_MemberAssignment_partitions(ma) : NULL;
                        tmp[k].m.partitions = tmp[k].assigned ? tmp[k].assigned->cnt : 0;
                }
                qsort(tmp, nm, sizeof(*tmp), cmp_member);
                gd->members = exb_calloc(nm + 1, sizeof(*gd->members));
                gd->nmembers = (int)nm;
                for (size_t k = 0; k < nm; k++) {
                        gd->members[k] = tmp[k].m;
                        for (int j = 0; tmp[k].assigned && j < tmp[k].assigned->cnt; j++) {
                                const rd_kafka_topic_partition_t *tp = &tmp[k].assigned->elems[j];
                                part_get(gd, tp->topic, tp->partition)->owner = (int)k;
                        }
                }
                free(tmp);
        }
        rd_kafka_event_destroy(ev);
        return ret;
}

/* Every committed offset of group d (Admin OffsetFetch without a partition
 * list). Not for the embedded broker (see the top of this file). */
static void committed_all(rd_kafka_t *rk, exb_group_desc_t *d, int64_t deadline)
{
        rd_kafka_ListConsumerGroupOffsets_t *req =
                rd_kafka_ListConsumerGroupOffsets_new(d->group, NULL);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opts =
                admin_opts(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, deadline);
        rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, opts, q);
        rd_kafka_ListConsumerGroupOffsets_destroy(req);
        rd_kafka_event_t *ev = admin_wait(q, deadline);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        if (!ev || rd_kafka_event_error(ev)) {
                set_error(d, "committed offsets: %s",
                          ev ? rd_kafka_event_error_string(ev) : "no answer in time");
                if (ev)
                        rd_kafka_event_destroy(ev);
                return;
        }
        size_t cnt;
        const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
                rd_kafka_event_ListConsumerGroupOffsets_result(ev), &cnt);
        for (size_t g = 0; g < cnt; g++) {
                const rd_kafka_error_t *gerr = rd_kafka_group_result_error(gr[g]);
                if (gerr) {
                        set_error(d, "committed offsets: %s", rd_kafka_error_string(gerr));
                        continue;
                }
                const rd_kafka_topic_partition_list_t *pl = rd_kafka_group_result_partitions(gr[g]);
                for (int i = 0; pl && i < pl->cnt; i++) {
                        const rd_kafka_topic_partition_t *tp = &pl->elems[i];
                        if (!tp->err && tp->offset >= 0)
                                part_get(d, tp->topic, tp->partition)->committed = tp->offset;
                }
        }
        rd_kafka_event_destroy(ev);
}

/* Committed offsets of the partitions d lists so far, read as a consumer of
 * the group reads them (OffsetFetch naming the partitions). */
static void committed_listed(const char *brokers, const exb_kprop_t *props, int nprops,
                             exb_group_desc_t *d, int64_t deadline)
{
        static const exb_kprop_t reader[] = {{"enable.auto.commit", "false"}};
        if (!d->nparts)
                return;
        char es[512];
        rd_kafka_conf_t *conf = exb_kconf_new(brokers, reader, 1, props, nprops, es, sizeof(es));
        if (!conf) {
                set_error(d, "committed offsets: %s", es);
                return;
        }
        rd_kafka_t *rk = NULL;
        if (rd_kafka_conf_set(conf, "group.id", d->group, es, sizeof(es)) != RD_KAFKA_CONF_OK ||
            !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof(es)))) {
                rd_kafka_conf_destroy(conf);
                set_error(d, "committed offsets: %s", es);
                return;
        }
        rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(d->nparts);
        for (int i = 0; i < d->nparts; i++)
                rd_kafka_topic_partition_list_add(tl, d->parts[i].topic, d->parts[i].partition);
        rd_kafka_resp_err_t err = rd_kafka_committed(rk, tl, remaining(deadline));
        if (err)
                set_error(d, "committed offsets: %s", rd_kafka_err2str(err));
        for (int i = 0; !err && i < tl->cnt; i++)
                if (!tl->elems[i].err && tl->elems[i].offset >= 0)
                        part_get(d, tl->elems[i].topic, tl->elems[i].partition)->committed =
                                tl->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(tl);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

/* Watermarks of p. librdkafka 2.0.2 does not retry this query, and a real
 * broker briefly answers NOT_LEADER / UNKNOWN_PARTITION while a leader
 * moves or a topic is new: retried until the deadline. */
static rd_kafka_resp_err_t watermarks(rd_kafka_t *rk, exb_group_part_t *p, int64_t deadline)
{
        rd_kafka_resp_err_t err;
        for (;;) {
                err = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &p->low, &p->end,
                                                       remaining(deadline));
                if (!err || exb_mono_ms() >= deadline ||
                    !(err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                      err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                      err == RD_KAFKA_RESP_ERR__TRANSPORT))
                        break;
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (err)
                p->low = p->end = -1;
        return err;
}

/* The records a read_committed consumer would still get, for every
 * partition of d whose offsets say it is behind: the partitions are read
 * from where the group would start (one fetch each, stopping at the first
 * record), and lag = end - that record's offset, or 0 if the partition's end
 * comes first. The offsets alone count transaction markers and aborted
 * records, which no consumer ever receives: a consumer that stores the
 * offset after each record it processed (librdkafka's way, and exbus's)
 * stays one offset short of the end behind every committed transaction.
 * Partitions not decided in PROBE_MAX_MS keep their offset lag. */
#define PROBE_MAX_MS 5000 /* per group */

static void probe_readable(rd_kafka_t *rk, exb_group_desc_t *d, int64_t deadline)
{
        rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(d->nparts + 1);
        for (int k = 0; k < d->nparts; k++)
                if (d->parts[k].lag > 0)
                        rd_kafka_topic_partition_list_add(tl, d->parts[k].topic,
                                                          d->parts[k].partition)
                                ->offset = d->parts[k].end - d->parts[k].lag;
        int left = tl->cnt;
        if (left && rd_kafka_assign(rk, tl)) {
                set_error(d, "reading partitions to count records: cannot assign them");
                left = 0;
        }
        if (deadline > exb_mono_ms() + PROBE_MAX_MS)
                deadline = exb_mono_ms() + PROBE_MAX_MS;
        while (left > 0 && exb_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(
                        rk, remaining(deadline) < 100 ? remaining(deadline) : 100);
                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
                        left = 0; /* may not read: offset lags it is */
                } else if (!m->rkt || (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
                        rd_kafka_message_destroy(m);
                        continue; /* transient, logged by the handle */
                }
                const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
                for (int i = 0; left > 0 && i < tl->cnt; i++) {
                        rd_kafka_topic_partition_t *tp = &tl->elems[i];
                        if (tp->err || tp->partition != m->partition || strcmp(tp->topic, topic))
                                continue;
                        tp->err = RD_KAFKA_RESP_ERR__PARTITION_EOF; /* decided */
                        left--;
                        exb_group_part_t *p = part_get(d, tp->topic, tp->partition);
                        if (m->err || m->offset >= p->end)
                                p->lag = 0; /* nothing to read before the end */
                        else
                                p->lag = p->end - m->offset;
                        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
                        rd_kafka_topic_partition_list_add(one, tp->topic, tp->partition);
                        rd_kafka_pause_partitions(rk, one);
                        rd_kafka_topic_partition_list_destroy(one);
                        break;
                }
                rd_kafka_message_destroy(m);
        }
        if (tl->cnt) {
                /* A pause outlives the assignment: the next group may read
                 * the same partitions. */
                rd_kafka_resume_partitions(rk, tl);
                rd_kafka_assign(rk, NULL);
        }
        rd_kafka_topic_partition_list_destroy(tl);
}

/* A consumer that never joins a group, for probe_readable(). */
static rd_kafka_t *probe_consumer(const char *brokers, const exb_kprop_t *props, int nprops,
                                  char *errstr, size_t errstr_size)
{
        static const exb_kprop_t reader[] = {
                {"enable.auto.commit", "false"},       {"enable.partition.eof", "true"},
                {"isolation.level", "read_committed"}, {"fetch.wait.max.ms", "100"},
                {"queued.min.messages", "1"},          {"fetch.message.max.bytes", "65536"},
        };
        rd_kafka_conf_t *conf = exb_kconf_new(brokers, reader, (int)EXB_ARRAY_CNT(reader), props,
                                              nprops, errstr, errstr_size);
        if (!conf)
                return NULL;
        char gid[64], es[512];
        snprintf(gid, sizeof(gid), "exbus-lag-%ld", (long)getpid());
        rd_kafka_conf_set(conf, "group.id", gid, es, sizeof(es));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof(es));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                exb_errf(errstr, errstr_size, "%s", es);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        return rk;
}

static int cmp_part(const void *a, const void *b)
{
        const exb_group_part_t *x = a, *y = b;
        int c = strcmp(x->topic, y->topic);
        return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

exb_err_t exb_admin_groups_describe(const char *brokers, const exb_kprop_t *props, int nprops,
                                    const exb_group_query_t *q, int n, exb_group_desc_t **descs,
                                    int timeout_ms, char *errstr, size_t errstr_size)
{
        *descs = NULL;
        int64_t deadline = exb_mono_ms() + timeout_ms;
        rd_kafka_t *rk = exb_admin_handle(brokers, props, nprops, errstr, errstr_size);
        if (!rk)
                return EXB_ERR_INVALID;
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, remaining(deadline));
        if (err) {
                exb_errf(errstr, errstr_size, "describe groups on %s: metadata: %s", brokers,
                         rd_kafka_err2str(err));
                exb_err_t ret = exb_kerr(rk, err);
                rd_kafka_destroy(rk);
                return ret == EXB_OK ? EXB_ERR_RETRY : ret;
        }
        int apis = !exb_kafka_is_embedded(rk, remaining(deadline)), probe = 0;

        exb_group_desc_t *d = exb_calloc((size_t)n + 1, sizeof(*d));
        for (int i = 0; i < n; i++) {
                d[i].group = exb_strdup(q[i].group);
                d[i].state = exb_strdup("unknown");
                size_t plen = q[i].topic_prefix ? strlen(q[i].topic_prefix) : 0;
                for (int t = 0; plen && t < md->topic_cnt; t++) {
                        const struct rd_kafka_metadata_topic *mt = &md->topics[t];
                        if (mt->err || strncmp(mt->topic, q[i].topic_prefix, plen))
                                continue;
                        for (int p = 0; p < mt->partition_cnt; p++)
                                part_get(&d[i], mt->topic, mt->partitions[p].id);
                }
        }
        rd_kafka_metadata_destroy(md);

        if (apis && n > 0 && describe_groups(rk, d, n, deadline) < 0)
                apis = 0; /* a broker without the group APIs, like the embedded one */
        for (int i = 0; i < n; i++) {
                if (apis)
                        committed_all(rk, &d[i], deadline);
                else
                        committed_listed(brokers, props, nprops, &d[i], deadline);
                for (int k = 0; k < d[i].nparts; k++) {
                        exb_group_part_t *p = &d[i].parts[k];
                        rd_kafka_resp_err_t werr = watermarks(rk, p, deadline);
                        if (werr && werr != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
                            werr != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION &&
                            werr != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                                set_error(&d[i], "watermarks of %s [%d]: %s", p->topic,
                                          (int)p->partition, rd_kafka_err2str(werr));
                        }
                        if (p->end < 0)
                                continue; /* a deleted topic's old offsets: lag unknown */
                        int64_t from = p->committed >= p->low ? p->committed : p->low;
                        p->offset_lag = p->lag = p->end > from ? p->end - from : 0;
                        if (p->lag > 0)
                                probe = 1;
                }
        }
        rd_kafka_destroy(rk);
        rd_kafka_t *rc = NULL;
        if (probe && !(rc = probe_consumer(brokers, props, nprops, errstr, errstr_size)))
                EXB_WARN("lag: cannot read partitions to count their records: %s", errstr);
        for (int i = 0; i < n; i++) {
                if (rc)
                        probe_readable(rc, &d[i], deadline);
                for (int k = 0; k < d[i].nparts; k++)
                        if (d[i].parts[k].lag > 0)
                                d[i].lag += d[i].parts[k].lag;
                if (d[i].nparts)
                        qsort(d[i].parts, (size_t)d[i].nparts, sizeof(*d[i].parts), cmp_part);
        }
        if (rc) {
                rd_kafka_consumer_close(rc);
                rd_kafka_destroy(rc);
        }
        *descs = d;
        return EXB_OK;
}

void exb_group_descs_free(exb_group_desc_t *descs, int n)
{
        for (int i = 0; descs && i < n; i++) {
                exb_group_desc_t *d = &descs[i];
                for (int k = 0; k < d->nmembers; k++) {
                        free(d->members[k].member_id);
                        free(d->members[k].client_id);
                        free(d->members[k].host);
                }
                for (int k = 0; k < d->nparts; k++)
                        free(d->parts[k].topic);
                free(d->members);
                free(d->parts);
                free(d->group);
                free(d->state);
                free(d->error);
        }
        free(descs);
}
