/*
 * exb_kafka_consumer.c — group member or group-less reader.
 *
 * Group member: subscribe() to names or ^regexes. Offsets are stored only
 * by the application (enable.auto.offset.store=false) — from delivery
 * reports or from its sink's transaction — and the auto-committer commits
 * what was stored. The rebalance callback runs inside exb_consumer_poll()
 * (and exb_consumer_destroy()) on the caller's thread:
 *   assign: each partition starts at on_assign()'s offset (default: the
 *           group's committed offset), then the assignment is applied;
 *   revoke: on_revoke() for each partition, a synchronous commit of what is
 *           stored (unless the partitions were lost, i.e. already owned by
 *           another member), then unassign.
 * Both eager and cooperative assignors work (partition.assignment.strategy
 * passed as a kafka.* property).
 *
 * Group-less: librdkafka needs a group.id for rd_kafka_assign() (without
 * one: "Requires a consumer with group.id configured"), so the handle gets
 * a private one ("exbus-groupless-<pid>", or kafka.group.id if given) and
 * never commits. exb_consumer_assign() adds partitions one at a time
 * (incremental: partitions already being read keep their position).
 *
 * Polling: the first message is awaited with rd_kafka_consumer_poll(), the
 * rest of the batch is taken with rd_kafka_consume_batch_queue(timeout 0)
 * from the consumer queue under one queue lock (measured faster than
 * repeated rd_kafka_consumer_poll(), see exb_consumer_poll()). With the
 * rebalance callback set and all calls made from one thread, this avoids
 * the batch API's known issue in 2.0.x (it is unsafe only when seek, pause
 * or a rebalance run concurrently with it).
 *
 * Releasing: a consumed message lives in memory that the consumer's broker
 * thread allocated, from its own malloc arena, where it keeps allocating
 * for the next fetches. glibc frees such a chunk under that arena's lock,
 * and a thread that finds the lock taken sleeps on a futex: measured on the
 * router's thread, ~19 sleeps per 1000 records, and its frees took 11% of
 * its CPU. So exb_msg_release() only collects, and the consumer's reaper
 * thread destroys the messages: each poll hands over what was released
 * since the last one, and so does every RELEASE_BATCH-th release, waiting
 * while the reaper is busy with the previous hand-over. The reaper starts
 * at the first hand-over of RELEASE_MIN or more: a consumer that never
 * releases that many between two polls (the control-plane follower, a slow
 * sink) destroys them itself at its next poll. exb_consumer_destroy()
 * destroys the rest before closing (librdkafka's destroy waits for every
 * message).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exb_kafka_int.h"

/* Prefetch limits (queued.*): in librdkafka 2.0.x, once the consumer queue
 * holds queued.min.messages or queued.max.messages.kbytes (counted over all
 * partitions: their fetch queues forward to it), fetching stops, and nothing
 * restarts it when the application drains the queue: the broker thread
 * looks again only when its 1 s serve timeout expires (rdkafka_fetcher.c
 * rd_kafka_toppar_fetch_decide() returns an infinite backoff;
 * rdkafka_broker.c rd_kafka_broker_consumer_serve() then sleeps until
 * rd_kafka_max_block_ms; made configurable as fetch.queue.backoff.ms in
 * 2.2.0). A consumer that drains the limit in less than a second therefore
 * idles for the rest of it: with librdkafka's 100000 messages, about
 * 100-200k records/s at most, whatever the CPU. The limits must hold a
 * second of the fastest consumer (the router, ~450-650k records/s on 2
 * cores): 500000 records or 64 MiB of payload. The cost is memory while a
 * backlog is prefetched: measured +256 MiB RSS for 128-byte records
 * (librdkafka's limits: +57 MiB). A slow sink can lower them with
 * kafka.queued.min.messages. docs/PERFORMANCE.md has the measurements. */
static const exb_kprop_t consumer_defaults[] = {
        {"enable.auto.commit", "true"},    {"enable.auto.offset.store", "false"},
        {"isolation.level", "read_committed"},
        {"auto.offset.reset", "earliest"}, {"fetch.wait.max.ms", "100"},
        {"session.timeout.ms", "6000"},    {"heartbeat.interval.ms", "2000"},
        {"queued.min.messages", "500000"}, {"queued.max.messages.kbytes", "65536"},
        {"enable.partition.eof", "false"},
};

#define RELEASE_BATCH 1024 /* hand over when this many are released */
#define RELEASE_MIN   256  /* fewer between two polls: destroyed inline */

typedef struct reaper_s {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        rd_kafka_message_t **work; /* [RELEASE_BATCH], handed over */
        int nwork;                 /* 0 = idle */
        int stop;
} reaper_t;

struct exb_consumer_s {
        rd_kafka_t *rk;
        rd_kafka_queue_t *q; /* the consumer queue */
        int grouped;
        int paused;
        exb_rebalance_t rb;
        rd_kafka_message_t **batch;
        int batch_cap;
        exb_offset_t *pos; /* group-less: next offset per partition read */
        int npos;
        rd_kafka_message_t **released; /* [RELEASE_BATCH], not handed over yet */
        int nreleased;
        reaper_t *reaper; /* NULL until a hand-over of RELEASE_MIN or more */
};

/* Group-less: records that topic/partition has been read up to next. */
static void pos_set(exb_consumer_t *c, const char *topic, int32_t partition, int64_t next)
{
        for (int i = 0; i < c->npos; i++)
                if (c->pos[i].partition == partition && !strcmp(c->pos[i].topic, topic)) {
                        if (next > c->pos[i].offset)
                                c->pos[i].offset = next;
                        return;
                }
        c->pos = exb_realloc(c->pos, sizeof(*c->pos) * (size_t)(c->npos + 1));
        c->pos[c->npos++] = (exb_offset_t){exb_strdup(topic), partition, next};
}

int64_t exb_consumer_position(exb_consumer_t *c, const char *topic, int32_t partition)
{
        for (int i = 0; i < c->npos; i++)
                if (c->pos[i].partition == partition && !strcmp(c->pos[i].topic, topic))
                        return c->pos[i].offset;
        return -1;
}

static const char *pname(const rd_kafka_topic_partition_t *tp, char *buf, size_t size)
{
        snprintf(buf, size, "%s [%d]", tp->topic, (int)tp->partition);
        return buf;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        exb_consumer_t *c = opaque;
        int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
        char pb[300];
        int i;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                for (i = 0; i < parts->cnt; i++) {
                        rd_kafka_topic_partition_t *tp = &parts->elems[i];
                        tp->offset = c->rb.on_assign ? c->rb.on_assign(c->rb.opaque, tp->topic,
                                                                       tp->partition)
                                                     : RD_KAFKA_OFFSET_STORED;
                        EXB_DEBUG("consumer %s: assigned %s from offset %" PRId64,
                                  rd_kafka_name(rk), pname(tp, pb, sizeof(pb)), tp->offset);
                }
                if (coop)
                        error = rd_kafka_incremental_assign(rk, parts);
                else
                        aerr = rd_kafka_assign(rk, parts);
                if (!error && !aerr && c->paused)
                        rd_kafka_pause_partitions(rk, parts);
        } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                int lost = rd_kafka_assignment_lost(rk);
                for (i = 0; i < parts->cnt; i++) {
                        if (c->rb.on_revoke)
                                c->rb.on_revoke(c->rb.opaque, parts->elems[i].topic,
                                                parts->elems[i].partition);
                }
                if (!lost) {
                        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
                        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                                EXB_WARN("consumer %s: commit on revoke: %s", rd_kafka_name(rk),
                                         rd_kafka_err2str(cerr));
                } else {
                        EXB_WARN("consumer %s: %d partition(s) lost (session timed out): "
                                 "offsets stored since the last commit are not committed",
                                 rd_kafka_name(rk), parts->cnt);
                }
                if (coop)
                        error = rd_kafka_incremental_unassign(rk, parts);
                else
                        aerr = rd_kafka_assign(rk, NULL);
        } else {
                EXB_WARN("consumer %s: rebalance error: %s", rd_kafka_name(rk),
                         rd_kafka_err2str(err));
                aerr = rd_kafka_assign(rk, NULL);
        }
        if (error) {
                EXB_ERROR("consumer %s: %s", rd_kafka_name(rk), rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        } else if (aerr) {
                EXB_ERROR("consumer %s: assign: %s", rd_kafka_name(rk), rd_kafka_err2str(aerr));
        }
}

exb_consumer_t *exb_consumer_new(const char *brokers, const char *group_id,
                                 const exb_kprop_t *props, int nprops,
                                 const exb_rebalance_t *rebalance, char *errstr, size_t errstr_size)
{
        if (!brokers || !*brokers) {
                exb_errf(errstr, errstr_size, "consumer: no brokers given");
                return NULL;
        }
        rd_kafka_conf_t *conf =
                exb_kconf_new(brokers, consumer_defaults, (int)EXB_ARRAY_CNT(consumer_defaults),
                              props, nprops, errstr, errstr_size);
        if (!conf)
                return NULL;
        char es[512];
        int grouped = group_id != NULL;
        if (!grouped) {
                /* Never joins (no subscribe) and never commits. A kafka.group.id
                 * the caller gives (a name its ACLs allow) is kept. */
                char gid[64];
                size_t n = sizeof(gid);
                if (rd_kafka_conf_get(conf, "group.id", gid, &n) != RD_KAFKA_CONF_OK || !gid[0]) {
                        snprintf(gid, sizeof(gid), "exbus-groupless-%ld", (long)getpid());
                        rd_kafka_conf_set(conf, "group.id", gid, es, sizeof(es));
                }
                rd_kafka_conf_set(conf, "enable.auto.commit", "false", es, sizeof(es));
                /* End-of-partition events move the position past transaction
                 * markers, which are never returned as messages. */
                rd_kafka_conf_set(conf, "enable.partition.eof", "true", es, sizeof(es));
        } else if (rd_kafka_conf_set(conf, "group.id", group_id, es, sizeof(es))) {
                exb_errf(errstr, errstr_size, "consumer: group.id: %s", es);
                rd_kafka_conf_destroy(conf);
                return NULL;
        }

        exb_consumer_t *c = exb_calloc(1, sizeof(*c));
        c->grouped = grouped;
        if (rebalance)
                c->rb = *rebalance;
        if (c->grouped)
                rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_conf_set_opaque(conf, c);

        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof(es));
        if (!c->rk) {
                rd_kafka_conf_destroy(conf);
                exb_errf(errstr, errstr_size, "consumer: %s", es);
                free(c);
                return NULL;
        }
        rd_kafka_poll_set_consumer(c->rk);
        c->q = rd_kafka_queue_get_consumer(c->rk);
        c->released = exb_calloc(RELEASE_BATCH, sizeof(*c->released));
        return c;
}

/* ---------------------------------------------------------------- releasing */

static void *reaper_main(void *arg)
{
        reaper_t *r = arg;
        pthread_mutex_lock(&r->lock);
        for (;;) {
                while (!r->nwork && !r->stop)
                        pthread_cond_wait(&r->cond, &r->lock);
                if (!r->nwork)
                        break;
                int n = r->nwork;
                pthread_mutex_unlock(&r->lock);
                for (int i = 0; i < n; i++)
                        rd_kafka_message_destroy(r->work[i]);
                pthread_mutex_lock(&r->lock);
                r->nwork = 0;
                pthread_cond_broadcast(&r->cond);
        }
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

static void release_now(exb_consumer_t *c)
{
        for (int i = 0; i < c->nreleased; i++)
                rd_kafka_message_destroy(c->released[i]);
        c->nreleased = 0;
}

/* A new reaper thread, or NULL (then messages are destroyed inline). */
static reaper_t *reaper_start(exb_consumer_t *c)
{
        reaper_t *r = exb_calloc(1, sizeof(*r));
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->work = exb_calloc(RELEASE_BATCH, sizeof(*r->work));
        if (!pthread_create(&r->thread, NULL, reaper_main, r)) {
                pthread_setname_np(r->thread, "exb:reaper");
                return r;
        }
        EXB_WARN("consumer %s: no reaper thread: messages are destroyed inline",
                 rd_kafka_name(c->rk));
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r->work);
        free(r);
        return NULL;
}

/* Hands the released messages to the reaper once it is idle, starting it
 * if there are RELEASE_MIN or more; fewer without a reaper are destroyed
 * here. */
static void release_hand_over(exb_consumer_t *c)
{
        if (!c->reaper && c->nreleased >= RELEASE_MIN)
                c->reaper = reaper_start(c);
        reaper_t *r = c->reaper;
        if (!r) {
                release_now(c);
                return;
        }
        pthread_mutex_lock(&r->lock);
        while (r->nwork)
                pthread_cond_wait(&r->cond, &r->lock);
        rd_kafka_message_t **swap = r->work;
        r->work = c->released;
        r->nwork = c->nreleased;
        c->released = swap;
        c->nreleased = 0;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
}

/* Waits for the reaper to finish, ends it and destroys what is left. */
static void release_all(exb_consumer_t *c)
{
        reaper_t *r = c->reaper;
        if (r) {
                pthread_mutex_lock(&r->lock);
                r->stop = 1;
                pthread_cond_broadcast(&r->cond);
                pthread_mutex_unlock(&r->lock);
                pthread_join(r->thread, NULL);
                pthread_cond_destroy(&r->cond);
                pthread_mutex_destroy(&r->lock);
                free(r->work);
                free(r);
                c->reaper = NULL;
        }
        release_now(c);
}

void exb_msg_release(exb_msg_t *msg)
{
        if (!msg || !msg->_rkm)
                return;
        exb_consumer_t *c = msg->_c;
        c->released[c->nreleased++] = msg->_rkm;
        msg->_rkm = NULL;
        if (c->nreleased == RELEASE_BATCH)
                release_hand_over(c);
}

void exb_consumer_destroy(exb_consumer_t *c)
{
        if (!c)
                return;
        release_all(c);
        /* Runs the revoke callback (on_revoke + commit) for a group member. */
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
        if (err)
                EXB_WARN("consumer %s: close: %s", rd_kafka_name(c->rk), rd_kafka_err2str(err));
        rd_kafka_queue_destroy(c->q);
        rd_kafka_destroy(c->rk);
        free(c->batch);
        for (int i = 0; i < c->npos; i++)
                free((char *)c->pos[i].topic);
        free(c->pos);
        free(c->released);
        free(c);
}

exb_err_t exb_consumer_subscribe(exb_consumer_t *c, const char *const *topics, int n, char *errstr,
                                 size_t errstr_size)
{
        if (!c->grouped) {
                exb_errf(errstr, errstr_size, "subscribe: consumer has no group (use assign)");
                return EXB_ERR_INVALID;
        }
        rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++)
                rd_kafka_topic_partition_list_add(tl, topics[i], RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, tl);
        rd_kafka_topic_partition_list_destroy(tl);
        if (err) {
                exb_errf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(err));
                return exb_kerr(c->rk, err);
        }
        return EXB_OK;
}

exb_err_t exb_consumer_assign(exb_consumer_t *c, const char *topic, int32_t partition,
                              int64_t offset, char *errstr, size_t errstr_size)
{
        if (c->grouped) {
                exb_errf(errstr, errstr_size,
                         "assign %s [%d]: a group member gets its partitions from the group", topic,
                         (int)partition);
                return EXB_ERR_INVALID;
        }
        /* Learn the partition leader first: a fetch that starts before
         * librdkafka's topic object knows its leader waits for the 500 ms
         * offset-query retry timer (measured: first message after 501 ms
         * instead of 2 ms). */
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
        if (rkt) {
                const struct rd_kafka_metadata *md;
                if (!rd_kafka_metadata(c->rk, 0, rkt, &md, 5000))
                        rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, topic, partition)->offset = offset;
        rd_kafka_error_t *error = rd_kafka_incremental_assign(c->rk, tl);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        if (!error && c->paused)
                rd_kafka_pause_partitions(c->rk, tl);
        rd_kafka_topic_partition_list_destroy(tl);
        if (error) {
                exb_errf(errstr, errstr_size, "assign %s [%d]: %s", topic, (int)partition,
                         rd_kafka_error_string(error));
                exb_err_t e = exb_kerr(c->rk, rd_kafka_error_code(error));
                rd_kafka_error_destroy(error);
                return e;
        }
        return EXB_OK;
}

static void msg_fill(exb_consumer_t *c, exb_msg_t *m, rd_kafka_message_t *rkm)
{
        m->_c = c;
        m->topic = rd_kafka_topic_name(rkm->rkt);
        m->partition = rkm->partition;
        m->offset = rkm->offset;
        m->key = rkm->key;
        m->key_len = rkm->key_len;
        m->value = rkm->payload;
        m->len = rkm->len;
        m->ts_ms = rd_kafka_message_timestamp(rkm, NULL);
        m->_rkm = rkm;
}

/* An error event from the consumer queue: -1 if fatal, else logged. */
static int msg_error(exb_consumer_t *c, rd_kafka_message_t *rkm, char *errstr, size_t errstr_size)
{
        rd_kafka_resp_err_t err = rkm->err;
        if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (!c->grouped && rkm->rkt)
                        pos_set(c, rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset);
                return 0;
        }
        if (err == RD_KAFKA_RESP_ERR__FATAL || rd_kafka_fatal_error(c->rk, NULL, 0)) {
                char fs[512];
                err = rd_kafka_fatal_error(c->rk, fs, sizeof(fs));
                exb_errf(errstr, errstr_size, "consumer: fatal error %s: %s",
                         rd_kafka_err2name(err), fs);
                return -1;
        }
        /* Authorization failures do not heal by waiting: the ACLs must
         * change (exbus acl sync). A group-less consumer never joins its
         * private group, so a refused coordinator lookup of it is harmless. */
        if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
            (err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED && c->grouped)) {
                char name[256] = "";
                size_t n = sizeof(name);
                if (err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
                        rd_kafka_conf_get(rd_kafka_conf(c->rk), "group.id", name, &n);
                else if (rkm->rkt)
                        snprintf(name, sizeof(name), "%s", rd_kafka_topic_name(rkm->rkt));
                exb_errf(errstr, errstr_size, "consumer: not authorized to read %s %s: %s",
                         err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ? "group" : "topic",
                         name[0] ? name : "(subscribed)", rd_kafka_message_errstr(rkm));
                return -1;
        }
        if (rkm->rkt)
                EXB_WARN("consumer %s: %s [%d]: %s", rd_kafka_name(c->rk),
                         rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                         rd_kafka_message_errstr(rkm));
        else
                EXB_WARN("consumer %s: %s", rd_kafka_name(c->rk), rd_kafka_message_errstr(rkm));
        return 0;
}

int exb_consumer_poll(exb_consumer_t *c, exb_msg_t *msgs, int max, int timeout_ms, char *errstr,
                      size_t errstr_size)
{
        int n = 0;
        if (c->nreleased)
                release_hand_over(c);
        if (max <= 0)
                return 0;
        if (c->batch_cap < max) {
                free(c->batch);
                c->batch = exb_calloc((size_t)max, sizeof(*c->batch));
                c->batch_cap = max;
        }
        int64_t deadline = timeout_ms < 0 ? -1 : exb_mono_ms() + timeout_ms;
        while (n == 0) {
                int left = deadline < 0 ? -1 : (int)(deadline - exb_mono_ms());
                if (deadline >= 0 && left < 0)
                        left = 0;
                /* Waits for the first message (serving rebalances and errors). */
                rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, left);
                if (!rkm)
                        return 0;
                int got = 1;
                c->batch[0] = rkm;
                if (max > 1) {
                        ssize_t r = rd_kafka_consume_batch_queue(c->q, 0, c->batch + 1,
                                                                 (size_t)max - 1);
                        if (r > 0)
                                got += (int)r;
                }
                for (int i = 0; i < got; i++) {
                        rkm = c->batch[i];
                        if (rkm->err) {
                                if (msg_error(c, rkm, errstr, errstr_size) < 0) {
                                        for (int j = i; j < got; j++)
                                                rd_kafka_message_destroy(c->batch[j]);
                                        for (int j = 0; j < n; j++)
                                                exb_msg_release(&msgs[j]);
                                        return -1;
                                }
                                rd_kafka_message_destroy(rkm);
                                continue;
                        }
                        msg_fill(c, &msgs[n++], rkm);
                        if (!c->grouped)
                                pos_set(c, msgs[n - 1].topic, rkm->partition, rkm->offset + 1);
                }
                if (deadline >= 0 && exb_mono_ms() >= deadline)
                        break;
        }
        return n;
}

int exb_msg_header(const exb_msg_t *msg, const char *name, const void **value, size_t *len)
{
        rd_kafka_headers_t *hdrs;
        const void *v;
        size_t l;
        if (rd_kafka_message_headers(msg->_rkm, &hdrs))
                return 0;
        if (rd_kafka_header_get_last(hdrs, name, &v, &l))
                return 0;
        if (value)
                *value = v;
        if (len)
                *len = l;
        return 1;
}

int exb_msg_headers(const exb_msg_t *msg, exb_header_t *hdrs, int max)
{
        rd_kafka_headers_t *rkh;
        if (rd_kafka_message_headers(msg->_rkm, &rkh))
                return 0;
        int cnt = (int)rd_kafka_header_cnt(rkh);
        for (int i = 0; i < cnt && i < max; i++) {
                const char *name;
                const void *v;
                size_t l;
                if (rd_kafka_header_get_all(rkh, (size_t)i, &name, &v, &l))
                        break;
                hdrs[i].name = name;
                hdrs[i].value = v;
                hdrs[i].len = l;
        }
        return cnt;
}

exb_err_t exb_consumer_store(exb_consumer_t *c, const char *topic, int32_t partition,
                             int64_t next_offset)
{
        rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, topic, partition)->offset = next_offset;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, tl);
        if (!err)
                err = tl->elems[0].err;
        rd_kafka_topic_partition_list_destroy(tl);
        if (err == RD_KAFKA_RESP_ERR__STATE || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
                EXB_DEBUG("consumer %s: store %s [%d] @%" PRId64 ": not assigned any more",
                          rd_kafka_name(c->rk), topic, (int)partition, next_offset);
                return EXB_ERR_INVALID;
        }
        return exb_kerr(c->rk, err);
}

exb_err_t exb_consumer_commit(exb_consumer_t *c, int async)
{
        if (!c->grouped)
                return EXB_OK; /* a group-less reader keeps no offsets in Kafka */
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, async);
        if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
                return EXB_OK;
        if (err)
                EXB_WARN("consumer %s: commit: %s", rd_kafka_name(c->rk), rd_kafka_err2str(err));
        return exb_kerr(c->rk, err);
}

static exb_err_t pause_resume(exb_consumer_t *c, int pause)
{
        rd_kafka_topic_partition_list_t *tl;
        rd_kafka_resp_err_t err = rd_kafka_assignment(c->rk, &tl);
        if (err)
                return exb_kerr(c->rk, err);
        c->paused = pause;
        err = pause ? rd_kafka_pause_partitions(c->rk, tl) : rd_kafka_resume_partitions(c->rk, tl);
        rd_kafka_topic_partition_list_destroy(tl);
        return exb_kerr(c->rk, err);
}

exb_err_t exb_consumer_pause(exb_consumer_t *c)
{
        return pause_resume(c, 1);
}

exb_err_t exb_consumer_resume(exb_consumer_t *c)
{
        return pause_resume(c, 0);
}

exb_err_t exb_consumer_seek(exb_consumer_t *c, const char *topic, int32_t partition, int64_t offset)
{
        rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, topic, partition)->offset = offset;
        rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, tl, 10000);
        rd_kafka_resp_err_t err = error ? rd_kafka_error_code(error) : tl->elems[0].err;
        if (err)
                EXB_WARN("consumer %s: seek %s [%d] to %" PRId64 ": %s", rd_kafka_name(c->rk),
                         topic, (int)partition, offset,
                         error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
        if (error)
                rd_kafka_error_destroy(error);
        rd_kafka_topic_partition_list_destroy(tl);
        return exb_kerr(c->rk, err);
}

exb_err_t exb_consumer_rewind(exb_consumer_t *c, int timeout_ms, char *errstr, size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *tl = NULL;
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t err = rd_kafka_assignment(c->rk, &tl);
        const char *what = "assignment";
        if (!err) {
                what = "committed offsets";
                err = rd_kafka_committed(c->rk, tl, timeout_ms);
        }
        for (int i = 0; !err && i < tl->cnt; i++) {
                if (tl->elems[i].err)
                        err = tl->elems[i].err;
                else if (tl->elems[i].offset < 0)
                        tl->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        }
        if (!err && tl->cnt) {
                what = "seek";
                error = rd_kafka_seek_partitions(c->rk, tl, timeout_ms);
                err = error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
                for (int i = 0; !err && i < tl->cnt; i++)
                        err = tl->elems[i].err;
        }
        if (err)
                exb_errf(errstr, errstr_size, "consumer %s: rewind to the committed offsets: %s: %s",
                         rd_kafka_name(c->rk), what,
                         error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
        if (error)
                rd_kafka_error_destroy(error);
        if (tl)
                rd_kafka_topic_partition_list_destroy(tl);
        return exb_kerr(c->rk, err);
}

rd_kafka_t *exb_consumer_rk(exb_consumer_t *c)
{
        return c->rk;
}

/* A topic the principal may not DESCRIBE looks to the watermark query like
 * one that does not exist (librdkafka: "Unknown partition"); a metadata
 * request naming it tells the two apart. Returns
 * TOPIC_AUTHORIZATION_FAILED for such a topic, else err. */
static rd_kafka_resp_err_t topic_denied(exb_consumer_t *c, const char *topic, int timeout_ms,
                                        rd_kafka_resp_err_t err)
{
        const struct rd_kafka_metadata *md;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
        if (!rkt)
                return err;
        if (!rd_kafka_metadata(c->rk, 0, rkt, &md, timeout_ms)) {
                if (md->topic_cnt == 1 &&
                    md->topics[0].err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
                        err = md->topics[0].err;
                rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
        return err;
}

exb_err_t exb_consumer_watermarks(exb_consumer_t *c, const char *topic, int32_t partition,
                                  int64_t *lo, int64_t *hi, int timeout_ms)
{
        /* librdkafka 2.0.2 does not retry this query: right after a topic is
         * created, or while its leader moves, a real broker briefly answers
         * NOT_LEADER / UNKNOWN_PARTITION. Retry those until the deadline. */
        int64_t deadline = exb_mono_ms() + timeout_ms;
        rd_kafka_resp_err_t err;
        int checked = 0;
        for (;;) {
                int64_t left = deadline - exb_mono_ms();
                err = rd_kafka_query_watermark_offsets(c->rk, topic, partition, lo, hi,
                                                       left > 0 ? (int)left : 1);
                if (!checked && (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                                 err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) {
                        checked = 1;
                        err = topic_denied(c, topic, left > 0 ? (int)left : 1, err);
                }
                if (!err || left <= 0 ||
                    !(err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                      err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                      err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                      err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                      err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                      err == RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH ||
                      err == RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH))
                        break;
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (err)
                EXB_DEBUG("consumer %s: watermarks of %s [%d]: %s", rd_kafka_name(c->rk), topic,
                          (int)partition, rd_kafka_err2str(err));
        return exb_kerr(c->rk, err);
}

char *exb_consumer_cluster_id(exb_consumer_t *c, int timeout_ms)
{
        char *id = rd_kafka_clusterid(c->rk, timeout_ms);
        if (!id)
                return NULL;
        char *r = exb_strdup(id);
        rd_kafka_mem_free(c->rk, id);
        return r;
}
