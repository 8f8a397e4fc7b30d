/*
 * exb_kafka.c — what every librdkafka handle of exbus shares: the
 * configuration defaults, the mapping of librdkafka errors to exb_err_t,
 * and the routing of librdkafka's logs and errors into exb_log.
 *
 * Logging is quiet by default. librdkafka reports each problem twice: as a
 * log line (log_cb, from its internal threads) and as an error event
 * (error_cb). We log the error events — WARN, or ERROR when fatal — and
 * the same error code of the same handle again only after
 * EXB_KERR_REPEAT_MS (at DEBUG in between), so a broker that is down for an
 * hour gives a few lines a minute, not ten a second. Log lines go to DEBUG,
 * except librdkafka's warnings about the configuration (facility CONFWARN)
 * and anything critical, which an operator should see.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "exb_kafka_int.h"

#define EXB_KERR_REPEAT_MS 30000

/* Defaults of every handle, see exb_kafka.h. */
static const exb_kprop_t exb_kafka_defaults[] = {
        {"client.id", "exbus"},
        {"socket.nagle.disable", "true"},
        {"allow.auto.create.topics", "false"},
};

/* "rdkafka#producer-1" -> "producer-1" */
static const char *short_name(const rd_kafka_t *rk)
{
        const char *n = rk ? rd_kafka_name(rk) : "kafka";
        const char *h = strchr(n, '#');
        return h ? h + 1 : n;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        /* Errors come again through error_cb; configuration warnings are
         * shown once at startup and are worth reading. */
        int lvl = !strcmp(fac, "FATAL")                    ? 3 /* error_cb logs it */
                  : level <= 2                             ? 0
                  : level <= 4 && !strcmp(fac, "CONFWARN") ? 1
                                                           : 3;
        exb_log(lvl, "kafka %s: %s: %s", short_name(rk), fac, buf);
}

void exb_klog_debug_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        (void)level;
        exb_log(3, "kafka %s: %s: %s", short_name(rk), fac, buf);
}

/* Last time each (handle, error code) was logged at WARN. librdkafka
 * appends "(N identical error(s) suppressed)" and similar counters, so the
 * text alone does not identify a repeat. */
#define ERR_SLOTS 32
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        const rd_kafka_t *rk;
        int err;
        int64_t ms;
} err_seen[ERR_SLOTS];

/* 1 if this (rk, err) was logged less than EXB_KERR_REPEAT_MS ago. */
static int err_repeat(const rd_kafka_t *rk, int err)
{
        int64_t now = exb_mono_ms();
        int i, oldest = 0, repeat = 0;
        pthread_mutex_lock(&err_lock);
        for (i = 0; i < ERR_SLOTS; i++) {
                if (err_seen[i].rk == rk && err_seen[i].err == err)
                        break;
                if (err_seen[i].ms < err_seen[oldest].ms)
                        oldest = i;
        }
        if (i < ERR_SLOTS && now - err_seen[i].ms < EXB_KERR_REPEAT_MS) {
                repeat = 1;
        } else {
                if (i == ERR_SLOTS)
                        i = oldest;
                err_seen[i].rk = rk;
                err_seen[i].err = err;
                err_seen[i].ms = now;
        }
        pthread_mutex_unlock(&err_lock);
        return repeat;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char fstr[512];
                rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fstr, sizeof(fstr));
                exb_log(0, "kafka %s: fatal error %s: %s", short_name(rk), rd_kafka_err2name(ferr),
                        fstr);
                return;
        }
        exb_log(err_repeat(rk, err) ? 3 : 1, "kafka %s: %s: %s", short_name(rk),
                rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                    size_t errstr_size)
{
        char es[256];
        if (rd_kafka_conf_set(conf, name, value, es, sizeof(es)) == RD_KAFKA_CONF_OK)
                return 0;
        exb_errf(errstr, errstr_size, "kafka.%s = \"%s\": %s", name, value, es);
        return -1;
}

rd_kafka_conf_t *exb_kconf_new(const char *brokers, const exb_kprop_t *role_defaults,
                               int nrole_defaults, const exb_kprop_t *props, int nprops,
                               char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        size_t i;
        int j;

        for (i = 0; i < EXB_ARRAY_CNT(exb_kafka_defaults); i++)
                if (conf_set(conf, exb_kafka_defaults[i].name, exb_kafka_defaults[i].value, errstr,
                             errstr_size))
                        goto fail;
        for (j = 0; j < nrole_defaults; j++)
                if (conf_set(conf, role_defaults[j].name, role_defaults[j].value, errstr,
                             errstr_size))
                        goto fail;
        if (brokers && conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size))
                goto fail;
        for (j = 0; j < nprops; j++) {
                if (!props[j].name || !props[j].value) {
                        exb_errf(errstr, errstr_size, "kafka property %d: NULL name or value", j);
                        goto fail;
                }
                if (conf_set(conf, props[j].name, props[j].value, errstr, errstr_size))
                        goto fail;
        }
        rd_kafka_conf_set_log_cb(conf, log_cb);
        rd_kafka_conf_set_error_cb(conf, error_cb);
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

int exb_cluster_is_embedded(const char *cluster_id)
{
        return cluster_id && !strncmp(cluster_id, "mockCluster", 11);
}

int exb_kafka_is_embedded(rd_kafka_t *rk, int timeout_ms)
{
        char *cid = rd_kafka_clusterid(rk, timeout_ms);
        int mock = exb_cluster_is_embedded(cid);
        if (cid)
                rd_kafka_mem_free(rk, cid);
        return mock;
}

exb_err_t exb_kerr(rd_kafka_t *rk, rd_kafka_resp_err_t err)
{
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                return EXB_OK;
        if (rk && rd_kafka_fatal_error(rk, NULL, 0))
                return EXB_ERR_FATAL;
        switch (err) {
        case RD_KAFKA_RESP_ERR__FATAL:
        case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        case RD_KAFKA_RESP_ERR__SSL:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                return EXB_ERR_FATAL;
        /* Sequence and epoch errors (OUT_OF_ORDER_SEQUENCE_NUMBER,
         * INVALID_PRODUCER_EPOCH, ...) are fatal only when librdkafka
         * says so (rd_kafka_fatal_error, checked above): otherwise it has
         * bumped the epoch and the message can be produced again. */
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_MSG:
        case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
        case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
        case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
        case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        case RD_KAFKA_RESP_ERR__BAD_MSG:
        case RD_KAFKA_RESP_ERR__INVALID_TYPE:
                return EXB_ERR_INVALID;
        default:
                /* Transport, timeouts, leader changes, queue full,
                 * unknown topic (may be created), coordinator moves. */
                return EXB_ERR_RETRY;
        }
}
