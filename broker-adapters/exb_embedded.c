/*
 * exb_embedded.c — librdkafka's mock cluster as exbus's embedded broker.
 *
 * The mock cluster lives on a dedicated rd_kafka_t that does nothing else;
 * its brokers listen on ephemeral loopback ports, and its bootstrap list is
 * what clients (in this process or others) use as `brokers`.
 *
 * Limits of the 2.0.2 mock, as measured (DESIGN §6): data in memory only,
 * about 5 MiB (or 100000 message sets) kept per partition, oldest dropped
 * first; no CreateTopics (hence exb_embedded_create_topic()); no
 * compaction (cleanup.policy is ignored); first group join takes 3 s; a
 * Fetch returns one message set per partition, so consumers read as fast
 * as producers batched; a mock command (topic create, down/up) sometimes
 * takes 1 s (a missed wakeup of the mock thread, measured in 1 of ~10).
 *
 * Every cluster is entered in a process-global registry, so
 * exb_admin_ensure_topics() can recognise "brokers" as a cluster of this
 * process and create topics directly. The registry lock is held while
 * topics are created, so a cluster cannot be destroyed under that call.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "exb_kafka_int.h"
#include <librdkafka/rdkafka_mock.h>

struct exb_embedded_s {
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mc;
        char *bootstraps;
        struct exb_embedded_s *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static exb_embedded_t *reg_head;

/* Sets TCP_NODELAY on this process's listening TCP sockets whose port is in
 * the bootstrap list. librdkafka 2.0.2's mock broker leaves Nagle on, so a
 * small response sent while another is unacknowledged waits for the
 * client's delayed ACK: measured as a ~45 ms tail on every flush. Accepted
 * sockets inherit the option from the listener (Linux). Returns the number
 * of sockets set. */
static int mock_nodelay(const char *bootstraps)
{
        int n = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                int fd = atoi(de->d_name), listening = 0, one = 1;
                struct sockaddr_in sa;
                socklen_t len = sizeof(sa), ll = sizeof(listening);
                char port[16];
                if (de->d_name[0] == '.' || fd == dirfd(d) ||
                    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) || !listening ||
                    getsockname(fd, (struct sockaddr *)&sa, &len) || sa.sin_family != AF_INET)
                        continue;
                snprintf(port, sizeof(port), ":%d", ntohs(sa.sin_port));
                const char *p = strstr(bootstraps, port);
                if (p && (p[strlen(port)] == '\0' || p[strlen(port)] == ',') &&
                    !setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

exb_embedded_t *exb_embedded_new(int nbrokers, char *errstr, size_t errstr_size)
{
        char es[512];
        if (nbrokers < 1)
                nbrokers = 1;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, exb_klog_debug_cb);
        rd_kafka_conf_set(conf, "client.id", "exbus-embedded", es, sizeof(es));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof(es));
        if (!rk) {
                rd_kafka_conf_destroy(conf);
                exb_errf(errstr, errstr_size, "embedded broker: %s", es);
                return NULL;
        }
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, nbrokers);
        if (!mc) {
                rd_kafka_destroy(rk);
                exb_errf(errstr, errstr_size,
                         "embedded broker: could not start %d mock broker(s) on loopback",
                         nbrokers);
                return NULL;
        }
        exb_embedded_t *e = exb_calloc(1, sizeof(*e));
        e->rk = rk;
        e->mc = mc;
        e->bootstraps = exb_strdup(rd_kafka_mock_cluster_bootstraps(mc));
        pthread_mutex_lock(&reg_lock);
        e->next = reg_head;
        reg_head = e;
        pthread_mutex_unlock(&reg_lock);
        mock_nodelay(e->bootstraps);
        EXB_DEBUG("embedded broker: %d broker(s) at %s", nbrokers, e->bootstraps);
        return e;
}

void exb_embedded_destroy(exb_embedded_t *e)
{
        if (!e)
                return;
        pthread_mutex_lock(&reg_lock);
        for (exb_embedded_t **pp = &reg_head; *pp; pp = &(*pp)->next)
                if (*pp == e) {
                        *pp = e->next;
                        break;
                }
        pthread_mutex_unlock(&reg_lock);
        rd_kafka_mock_cluster_destroy(e->mc);
        rd_kafka_destroy(e->rk);
        free(e->bootstraps);
        free(e);
}

const char *exb_embedded_bootstraps(const exb_embedded_t *e)
{
        return e->bootstraps;
}

exb_err_t exb_embedded_create_topic(exb_embedded_t *e, const char *topic, int partitions,
                                    char *errstr, size_t errstr_size)
{
        if (!topic || !*topic || partitions < 1) {
                exb_errf(errstr, errstr_size,
                         "embedded broker: topic %s: needs a name and >= 1 "
                         "partition",
                         topic ? topic : "(null)");
                return EXB_ERR_INVALID;
        }
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(e->mc, topic, partitions, 1);
        if (!err || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                return EXB_OK;
        exb_errf(errstr, errstr_size, "embedded broker: create topic %s: %s", topic,
                 rd_kafka_err2str(err));
        return EXB_ERR_INVALID;
}

void exb_embedded_set_down(exb_embedded_t *e, int down)
{
        if (down)
                rd_kafka_mock_broker_set_down(e->mc, -1);
        else
                rd_kafka_mock_broker_set_up(e->mc, -1);
}

void exb_embedded_set_leaderless(exb_embedded_t *e, const char *topic, int32_t partition,
                                 int leaderless)
{
        rd_kafka_mock_partition_set_leader(e->mc, topic, partition, leaderless ? -1 : 1);
}

/* 1 if the comma-separated lists a and b share a host:port entry. */
static int lists_overlap(const char *a, const char *b)
{
        const char *p = a;
        while (*p) {
                while (*p == ',' || *p == ' ')
                        p++;
                size_t len = strcspn(p, ", ");
                if (len == 0)
                        break;
                const char *q = b;
                while (*q) {
                        while (*q == ',' || *q == ' ')
                                q++;
                        size_t qlen = strcspn(q, ", ");
                        if (qlen == 0)
                                break;
                        if (qlen == len && !strncmp(p, q, len))
                                return 1;
                        q += qlen;
                }
                p += len;
        }
        return 0;
}

int exb_embedded_registry_ensure(const char *brokers, const exb_topic_spec_t *specs, int n,
                                 exb_err_t *errp, char *errstr, size_t errstr_size)
{
        exb_embedded_t *e;
        if (!brokers)
                return 0;
        pthread_mutex_lock(&reg_lock);
        for (e = reg_head; e; e = e->next)
                if (lists_overlap(brokers, e->bootstraps))
                        break;
        if (e) {
                *errp = EXB_OK;
                for (int i = 0; i < n && *errp == EXB_OK; i++)
                        *errp = exb_embedded_create_topic(e, specs[i].name, specs[i].partitions,
                                                          errstr, errstr_size);
        }
        pthread_mutex_unlock(&reg_lock);
        return e != NULL;
}
