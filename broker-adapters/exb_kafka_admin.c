/*
 * exb_kafka_admin.c — topics and group offsets.
 *
 * exb_admin_ensure_topics() has three paths, chosen by where `brokers` is:
 *  1. an embedded cluster in this process: rd_kafka_mock_topic_create()
 *     (exb_embedded.c keeps the registry of those clusters);
 *  2. a real Kafka cluster: CreateTopics (replication factor = the broker's
 *     default.replication.factor), TOPIC_ALREADY_EXISTS counts as success,
 *     then metadata is polled until every topic is visible (creation is
 *     asynchronous on the controller);
 *  3. an embedded cluster hosted by another process (cluster id
 *     "mockCluster..."): we only wait, polling metadata, for the hosting
 *     process to create the topics from the catalog. CreateTopics is not
 *     even tried: the 2.0.2 mock's Metadata names controller id 0, a broker
 *     that does not exist (its ids start at 1), so librdkafka holds the
 *     request until it fails with RD_KAFKA_RESP_ERR__TIMED_OUT "Failed
 *     while waiting for controller" after the whole timeout. (Had it found
 *     a controller, the mock does not list CreateTopics in ApiVersions and
 *     librdkafka would fail the request with __UNSUPPORTED_FEATURE, which
 *     takes the same waiting path.)
 * Every admin call makes a short-lived handle; these are control-plane
 * operations, measured in milliseconds, not in the data path.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exb_kafka_int.h"

#define EMBEDDED_WHY "the embedded broker creates topics from the catalog"

rd_kafka_t *exb_admin_handle(const char *brokers, const exb_kprop_t *props, int nprops,
                             char *errstr, size_t errstr_size)
{
        if (!brokers || !*brokers) {
                exb_errf(errstr, errstr_size, "admin: no brokers given");
                return NULL;
        }
        rd_kafka_conf_t *conf = exb_kconf_new(brokers, NULL, 0, props, nprops, errstr, errstr_size);
        if (!conf)
                return NULL;
        char es[512];
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof(es));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                exb_errf(errstr, errstr_size, "admin: %s", es);
        }
        return rk;
}

static int remaining(int64_t deadline)
{
        int64_t left = deadline - exb_mono_ms();
        return left < 0 ? 0 : (int)left;
}

/* Index of the first spec whose topic is not (fully) in the metadata, n if
 * all are there, -1 with errstr if metadata could not be fetched. */
static int first_missing(rd_kafka_t *rk, const exb_topic_spec_t *specs, int n, int timeout_ms,
                         char *errstr, size_t errstr_size)
{
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
        if (err) {
                exb_errf(errstr, errstr_size, "metadata: %s", rd_kafka_err2str(err));
                return -1;
        }
        int i;
        for (i = 0; i < n; i++) {
                int found = 0;
                for (int j = 0; j < md->topic_cnt; j++)
                        if (!strcmp(md->topics[j].topic, specs[i].name) && !md->topics[j].err &&
                            md->topics[j].partition_cnt > 0)
                                found = 1;
                if (!found)
                        break;
        }
        rd_kafka_metadata_destroy(md);
        return i;
}

/* Polls metadata until every topic exists or the deadline passes. */
static exb_err_t wait_topics(rd_kafka_t *rk, const exb_topic_spec_t *specs, int n, int64_t deadline,
                             const char *why, char *errstr, size_t errstr_size)
{
        char es[512] = "";
        int missing = 0;
        for (;;) {
                int t = remaining(deadline);
                int i = first_missing(rk, specs, n, t > 0 ? t : 1, es, sizeof(es));
                if (i == n)
                        return EXB_OK;
                if (i >= 0)
                        missing = i;
                if (remaining(deadline) == 0)
                        break;
                int nap = remaining(deadline) < 200 ? remaining(deadline) : 200;
                usleep((useconds_t)nap * 1000);
        }
        if (es[0] && missing == 0)
                exb_errf(errstr, errstr_size, "topic %s: %s (%s)", specs[0].name, es, why);
        else
                exb_errf(errstr, errstr_size, "topic %s does not exist yet (%s)",
                         specs[missing].name, why);
        return EXB_ERR_RETRY;
}

exb_err_t exb_admin_ensure_topics(const char *brokers, const exb_kprop_t *props, int nprops,
                                  const exb_topic_spec_t *specs, int n, int timeout_ms,
                                  char *errstr, size_t errstr_size)
{
        exb_err_t ret;
        int64_t deadline = exb_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);

        for (int i = 0; i < n; i++)
                if (!specs[i].name || !*specs[i].name || specs[i].partitions < 1) {
                        exb_errf(errstr, errstr_size, "topic %s: needs a name and >= 1 partition",
                                 specs[i].name ? specs[i].name : "(null)");
                        return EXB_ERR_INVALID;
                }
        if (n == 0)
                return EXB_OK;
        if (exb_embedded_registry_ensure(brokers, specs, n, &ret, errstr, errstr_size))
                return ret;

        rd_kafka_t *rk = exb_admin_handle(brokers, props, nprops, errstr, errstr_size);
        if (!rk)
                return EXB_ERR_INVALID;

        /* Skip CreateTopics when everything is there already (no CREATE ACL needed). */
        char es[512];
        int have = first_missing(rk, specs, n, remaining(deadline) > 0 ? remaining(deadline) : 1,
                                 es, sizeof(es));
        if (have == n || have < 0) {
                if (have < 0)
                        exb_errf(errstr, errstr_size, "ensure topics on %s: %s", brokers, es);
                rd_kafka_destroy(rk);
                return have < 0 ? EXB_ERR_RETRY : EXB_OK;
        }
        /* The mock's cluster id is "mockCluster<hex>"; its metadata names a
         * controller that does not exist, so CreateTopics would only time
         * out "waiting for controller". */
        if (exb_kafka_is_embedded(rk, 0)) {
                ret = wait_topics(rk, specs, n, deadline, EMBEDDED_WHY, errstr, errstr_size);
                rd_kafka_destroy(rk);
                return ret;
        }

        rd_kafka_NewTopic_t **nts = exb_calloc((size_t)n, sizeof(*nts));
        ret = EXB_OK;
        for (int i = 0; i < n; i++) {
                nts[i] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions, -1, es,
                                               sizeof(es));
                if (!nts[i]) {
                        exb_errf(errstr, errstr_size, "topic %s: %s", specs[i].name, es);
                        ret = EXB_ERR_INVALID;
                        goto done;
                }
                if (specs[i].compact)
                        rd_kafka_NewTopic_set_config(nts[i], "cleanup.policy", "compact");
                if (specs[i].max_message_bytes > 0) {
                        char mb[16];
                        snprintf(mb, sizeof(mb), "%d", specs[i].max_message_bytes);
                        rd_kafka_NewTopic_set_config(nts[i], "max.message.bytes", mb);
                }
        }

        rd_kafka_AdminOptions_t *opts =
                rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        int t = remaining(deadline) > 0 ? remaining(deadline) : 1;
        rd_kafka_AdminOptions_set_request_timeout(opts, t, NULL, 0);
        rd_kafka_AdminOptions_set_operation_timeout(opts, t, NULL, 0);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, nts, (size_t)n, opts, q);
        rd_kafka_AdminOptions_destroy(opts);
        /* Bounded by the request timeout set above, plus a margin. */
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, t + 5000);
        rd_kafka_queue_destroy(q);

        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        const char *why = "CreateTopics timed out";
        if (ev) {
                err = rd_kafka_event_error(ev);
                why = rd_kafka_event_error_string(ev);
        }
        if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
                /* An embedded broker hosted by another process. */
                EXB_DEBUG("admin: CreateTopics not supported by %s (%s): waiting for the topics",
                          brokers, why);
                ret = wait_topics(rk, specs, n, deadline, EMBEDDED_WHY, errstr, errstr_size);
        } else if (err) {
                exb_errf(errstr, errstr_size, "CreateTopics on %s: %s", brokers, why);
                ret = exb_kerr(rk, err);
        } else {
                size_t cnt;
                const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
                        rd_kafka_event_CreateTopics_result(ev), &cnt);
                for (size_t i = 0; i < cnt && ret == EXB_OK; i++) {
                        rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(res[i]);
                        if (!terr || terr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                                continue;
                        exb_errf(errstr, errstr_size, "topic %s: %s",
                                 rd_kafka_topic_result_name(res[i]),
                                 rd_kafka_topic_result_error_string(res[i])
                                         ? rd_kafka_topic_result_error_string(res[i])
                                         : rd_kafka_err2str(terr));
                        ret = exb_kerr(rk, terr);
                }
                if (ret == EXB_OK)
                        ret = wait_topics(rk, specs, n, deadline, "created, not visible yet",
                                          errstr, errstr_size);
        }
        if (ev)
                rd_kafka_event_destroy(ev);
done:
        for (int i = 0; i < n; i++)
                if (nts[i])
                        rd_kafka_NewTopic_destroy(nts[i]);
        free(nts);
        rd_kafka_destroy(rk);
        return ret;
}

int exb_admin_list_topics(const char *brokers, const exb_kprop_t *props, int nprops,
                          const char *prefix, exb_topic_info_t **infos, int timeout_ms,
                          char *errstr, size_t errstr_size)
{
        *infos = NULL;
        rd_kafka_t *rk = exb_admin_handle(brokers, props, nprops, errstr, errstr_size);
        if (!rk)
                return -1;
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
        if (err) {
                exb_errf(errstr, errstr_size, "list topics on %s: %s", brokers,
                         rd_kafka_err2str(err));
                rd_kafka_destroy(rk);
                return -1;
        }
        size_t plen = prefix ? strlen(prefix) : 0;
        int n = 0;
        exb_topic_info_t *out = exb_calloc((size_t)md->topic_cnt + 1, sizeof(*out));
        for (int i = 0; i < md->topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *t = &md->topics[i];
                if (t->err || (plen && strncmp(t->topic, prefix, plen)))
                        continue;
                out[n].name = exb_strdup(t->topic);
                out[n].partitions = t->partition_cnt;
                n++;
        }
        rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        *infos = out;
        return n;
}

void exb_topic_infos_free(exb_topic_info_t *infos, int n)
{
        if (!infos)
                return;
        for (int i = 0; i < n; i++)
                free(infos[i].name);
        free(infos);
}

exb_err_t exb_admin_group_offset(const char *brokers, const exb_kprop_t *props, int nprops,
                                 const char *group, const char *topic, int32_t partition,
                                 int64_t *offset, int timeout_ms, char *errstr, size_t errstr_size)
{
        static const exb_kprop_t reader[] = {{"enable.auto.commit", "false"}};
        *offset = -1;
        if (!brokers || !*brokers || !group || !*group) {
                exb_errf(errstr, errstr_size, "group offset: brokers and group are required");
                return EXB_ERR_INVALID;
        }
        rd_kafka_conf_t *conf =
                exb_kconf_new(brokers, reader, 1, props, nprops, errstr, errstr_size);
        if (!conf)
                return EXB_ERR_INVALID;
        char es[512];
        if (rd_kafka_conf_set(conf, "group.id", group, es, sizeof(es))) {
                rd_kafka_conf_destroy(conf);
                exb_errf(errstr, errstr_size, "group offset: %s", es);
                return EXB_ERR_INVALID;
        }
        /* A consumer handle that never subscribes never joins the group: it
         * only asks the coordinator (OffsetFetch). */
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof(es));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                exb_errf(errstr, errstr_size, "group offset: %s", es);
                return EXB_ERR_INVALID;
        }
        rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, topic, partition);
        rd_kafka_resp_err_t err = rd_kafka_committed(rk, tl, timeout_ms);
        if (!err)
                err = tl->elems[0].err;
        if (!err)
                *offset = tl->elems[0].offset < 0 ? -1 : tl->elems[0].offset;
        else
                exb_errf(errstr, errstr_size, "committed offset of group %s for %s [%d]: %s", group,
                         topic, (int)partition, rd_kafka_err2str(err));
        exb_err_t ret = exb_kerr(rk, err);
        rd_kafka_topic_partition_list_destroy(tl);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return ret;
}
