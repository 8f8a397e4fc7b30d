/*
 * exb_kafka_producer.c — the idempotent producer.
 *
 * - Every exb_produce() copies key, value and headers into librdkafka, so
 *   the caller's buffers can be reused at once.
 * - Exactly one delivery report per accepted message, from
 *   exb_producer_poll()/flush()/destroy() on the caller's thread: success
 *   with partition and offset, or the error mapped to exb_err_t. Messages
 *   still queued when exb_producer_destroy() gives up waiting are purged and
 *   reported as EXB_ERR_RETRY, so no caller waits forever for a report.
 * - Transactions (exb_producer_txn_*): librdkafka's transactional API with
 *   its error classes mapped to what the caller does next (see exb_kafka.h);
 *   retriable errors are retried here until the caller's deadline.
 * - Topic handles are cached by name in a small chained hash table for the
 *   life of the producer (rd_kafka_topic_t lookups by name take a lock and a
 *   linear search inside librdkafka; ours is a hash probe).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exb_kafka_int.h"

/* Producer defaults, see exb_kafka.h. */
static const exb_kprop_t producer_defaults[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"batch.num.messages", "10000"},
        {"partitioner", "murmur2_random"},
};

struct exb_topic_s {
        rd_kafka_topic_t *rkt;
        char *name;
        uint32_t hash;
        struct exb_topic_s *next;
};

struct exb_producer_s {
        rd_kafka_t *rk;
        exb_dr_cb_t *dr_cb;
        void *opaque;
        pthread_mutex_t lock; /* topic table */
        exb_topic_t **buckets;
        uint32_t nbuckets; /* power of two */
        uint32_t ntopics;
};

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        exb_producer_t *p = opaque;
        if (!p->dr_cb)
                return;
        if (!m->err) {
                p->dr_cb(p->opaque, m->_private, EXB_OK, "", m->partition, m->offset);
                return;
        }
        char es[512];
        snprintf(es, sizeof(es), "delivery to %s [%d] failed: %s (%s)",
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition,
                 rd_kafka_err2str(m->err), rd_kafka_err2name(m->err));
        p->dr_cb(p->opaque, m->_private, exb_kerr(rk, m->err), es, m->partition, -1);
}

exb_producer_t *exb_producer_new(const char *brokers, const exb_kprop_t *props, int nprops,
                                 exb_dr_cb_t *dr_cb, void *opaque, char *errstr, size_t errstr_size)
{
        if (!brokers || !*brokers) {
                exb_errf(errstr, errstr_size, "producer: no brokers given");
                return NULL;
        }
        rd_kafka_conf_t *conf =
                exb_kconf_new(brokers, producer_defaults, (int)EXB_ARRAY_CNT(producer_defaults),
                              props, nprops, errstr, errstr_size);
        if (!conf)
                return NULL;
        exb_producer_t *p = exb_calloc(1, sizeof(*p));
        p->dr_cb = dr_cb;
        p->opaque = opaque;
        pthread_mutex_init(&p->lock, NULL);
        p->nbuckets = 64;
        p->buckets = exb_calloc(p->nbuckets, sizeof(*p->buckets));
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        rd_kafka_conf_set_opaque(conf, p);

        char es[512];
        p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof(es));
        if (!p->rk) {
                rd_kafka_conf_destroy(conf);
                exb_errf(errstr, errstr_size, "producer: %s", es);
                pthread_mutex_destroy(&p->lock);
                free(p->buckets);
                free(p);
                return NULL;
        }
        return p;
}

void exb_producer_destroy(exb_producer_t *p)
{
        if (!p)
                return;
        if (rd_kafka_flush(p->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                EXB_WARN("producer: %d message(s) not delivered within 10 s, giving up",
                         rd_kafka_outq_len(p->rk));
                /* Purged messages get their (failed) delivery reports now. */
                rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
                rd_kafka_flush(p->rk, 1000);
        }
        for (uint32_t i = 0; i < p->nbuckets; i++) {
                exb_topic_t *t = p->buckets[i], *next;
                for (; t; t = next) {
                        next = t->next;
                        rd_kafka_topic_destroy(t->rkt);
                        free(t->name);
                        free(t);
                }
        }
        free(p->buckets);
        rd_kafka_destroy(p->rk);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

static void topics_grow(exb_producer_t *p)
{
        uint32_t n = p->nbuckets * 2;
        exb_topic_t **b = exb_calloc(n, sizeof(*b));
        for (uint32_t i = 0; i < p->nbuckets; i++) {
                exb_topic_t *t = p->buckets[i], *next;
                for (; t; t = next) {
                        next = t->next;
                        t->next = b[t->hash & (n - 1)];
                        b[t->hash & (n - 1)] = t;
                }
        }
        free(p->buckets);
        p->buckets = b;
        p->nbuckets = n;
}

exb_topic_t *exb_producer_topic(exb_producer_t *p, const char *name)
{
        uint32_t h = exb_fnv1a(name);
        exb_topic_t *t;

        pthread_mutex_lock(&p->lock);
        for (t = p->buckets[h & (p->nbuckets - 1)]; t; t = t->next)
                if (t->hash == h && !strcmp(t->name, name))
                        goto done;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, name, NULL);
        if (!rkt) {
                EXB_ERROR("producer: topic \"%s\": %s", name,
                          rd_kafka_err2str(rd_kafka_last_error()));
                goto done; /* t == NULL */
        }
        if (p->ntopics >= p->nbuckets * 2)
                topics_grow(p);
        t = exb_calloc(1, sizeof(*t));
        t->rkt = rkt;
        t->name = exb_strdup(name);
        t->hash = h;
        t->next = p->buckets[h & (p->nbuckets - 1)];
        p->buckets[h & (p->nbuckets - 1)] = t;
        p->ntopics++;
done:
        pthread_mutex_unlock(&p->lock);
        return t;
}

const char *exb_topic_name(const exb_topic_t *t)
{
        return t->name;
}

int exb_producer_partitions(exb_producer_t *p, exb_topic_t *t, int timeout_ms)
{
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, t->rkt, &md, timeout_ms);
        if (err) {
                EXB_WARN("producer: metadata of %s: %s", t->name, rd_kafka_err2str(err));
                return -1;
        }
        int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : -1;
        rd_kafka_metadata_destroy(md);
        return n > 0 ? n : -1;
}

int32_t exb_partition_of(const void *key, size_t key_len, int partitions)
{
        /* Uses neither the topic nor the opaques (the random variant would). */
        return rd_kafka_msg_partitioner_murmur2(NULL, key, key_len, partitions, NULL, NULL);
}

exb_err_t exb_produce(exb_producer_t *p, exb_topic_t *t, int32_t partition, const void *key,
                      size_t key_len, const void *value, size_t value_len, const exb_header_t *hdrs,
                      int nhdrs, void *msg_opaque, char *errstr, size_t errstr_size)
{
        rd_kafka_headers_t *rkhdrs = NULL;
        rd_kafka_resp_err_t err;

        if (!t) {
                exb_errf(errstr, errstr_size, "produce: no topic");
                return EXB_ERR_INVALID;
        }
        if (partition < 0)
                partition = RD_KAFKA_PARTITION_UA;
        if (nhdrs > 0) {
                rkhdrs = rd_kafka_headers_new((size_t)nhdrs);
                for (int i = 0; i < nhdrs; i++)
                        rd_kafka_header_add(rkhdrs, hdrs[i].name, -1, hdrs[i].value,
                                            (ssize_t)hdrs[i].len);
                err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_PARTITION(partition),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_KEY((void *)key, key_len),
                                        RD_KAFKA_V_VALUE((void *)value, value_len),
                                        RD_KAFKA_V_HEADERS(rkhdrs), RD_KAFKA_V_OPAQUE(msg_opaque),
                                        RD_KAFKA_V_END);
        } else if (rd_kafka_produce(t->rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)value,
                                    value_len, key, key_len, msg_opaque) == -1) {
                /* the cheaper call (no argument list to parse): most messages have no headers */
                err = rd_kafka_last_error();
        } else {
                err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        if (!err)
                return EXB_OK; /* rkhdrs now owned by librdkafka */
        if (rkhdrs)
                rd_kafka_headers_destroy(rkhdrs);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                exb_errf(errstr, errstr_size,
                         "produce to %s: local queue full (%d messages waiting)", t->name,
                         rd_kafka_outq_len(p->rk));
                return EXB_ERR_RETRY;
        }
        exb_errf(errstr, errstr_size, "produce to %s [%d]: %s", t->name, (int)partition,
                 rd_kafka_err2str(err));
        return exb_kerr(p->rk, err);
}

exb_err_t exb_produce_batch(exb_producer_t *p, exb_topic_t *t, const exb_out_t *outs, int n,
                            char *errstr, size_t errstr_size)
{
        rd_kafka_message_t rkms[256]; /* on the stack: callers may share the producer */
        int done = 0;
        while (done < n) {
                int k = n - done < (int)EXB_ARRAY_CNT(rkms) ? n - done : (int)EXB_ARRAY_CNT(rkms);
                /* Only the fields rd_kafka_produce_batch() reads (it sets
                 * err): a whole-struct initialiser would clear 18 KB a call. */
                for (int i = 0; i < k; i++) {
                        const exb_out_t *o = &outs[done + i];
                        rd_kafka_message_t *m = &rkms[i];
                        m->partition = o->partition < 0 ? RD_KAFKA_PARTITION_UA : o->partition;
                        m->payload = (void *)o->value;
                        m->len = o->len;
                        m->key = (void *)o->key;
                        m->key_len = o->key_len;
                        m->_private = o->msg_opaque;
                        m->err = RD_KAFKA_RESP_ERR_NO_ERROR;
                }
                int good = rd_kafka_produce_batch(t->rkt, RD_KAFKA_PARTITION_UA,
                                                  RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_PARTITION,
                                                  rkms, k);
                if (good == k) {
                        done += k;
                        continue;
                }
                int i = 0; /* the first not enqueued */
                while (!rkms[i].err)
                        i++;
                rd_kafka_resp_err_t e = rkms[i].err;
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        /* not retried: later messages may have been enqueued */
                        exb_errf(errstr, errstr_size, "produce to %s [%d]: %s", t->name,
                                 (int)rkms[i].partition, rd_kafka_err2str(e));
                        return exb_kerr(p->rk, e) == EXB_ERR_FATAL ? EXB_ERR_FATAL
                                                                   : EXB_ERR_INVALID;
                }
                done += i; /* the queue is full from message i on: wait, then go on there */
                rd_kafka_poll(p->rk, 10);
        }
        return EXB_OK;
}

int exb_producer_poll(exb_producer_t *p, int timeout_ms)
{
        return rd_kafka_poll(p->rk, timeout_ms);
}

exb_err_t exb_producer_flush(exb_producer_t *p, int timeout_ms)
{
        rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
        if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
                return EXB_ERR_RETRY;
        return exb_kerr(p->rk, err);
}

int exb_producer_outq_len(exb_producer_t *p)
{
        return rd_kafka_outq_len(p->rk);
}

exb_err_t exb_producer_fatal(exb_producer_t *p, char *errstr, size_t errstr_size)
{
        char es[512];
        rd_kafka_resp_err_t err = rd_kafka_fatal_error(p->rk, es, sizeof(es));
        if (!err)
                return EXB_OK;
        /* Not allowed to produce at all (e.g. no WRITE on any topic: the
         * idempotent producer's InitProducerId is refused): a new producer
         * would fail the same way, only new ACLs or credentials help. */
        if (err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
            err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
            err == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED ||
            err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED) {
                exb_errf(errstr, errstr_size, "producer: not authorized: %s: %s",
                         rd_kafka_err2name(err), es);
                return EXB_ERR_INVALID;
        }
        exb_errf(errstr, errstr_size, "producer: fatal error %s: %s", rd_kafka_err2name(err), es);
        return EXB_ERR_FATAL;
}

/* ------------------------------------------------------------ transactions */

/* Classifies the result of a transactional call: 1 = retry it (retriable
 * and the deadline not passed); 0 = done, *res set (error destroyed). */
static int txn_done(rd_kafka_error_t *error, const char *what, int64_t deadline, exb_err_t *res,
                    char *errstr, size_t errstr_size)
{
        if (!error) {
                *res = EXB_OK;
                return 0;
        }
        if (rd_kafka_error_is_retriable(error) && exb_mono_ms() < deadline) {
                EXB_DEBUG("transaction: %s: %s: retrying", what, rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                usleep(100 * 1000);
                return 1;
        }
        rd_kafka_resp_err_t code = rd_kafka_error_code(error);
        if (code == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED ||
            code == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
            code == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
                *res = EXB_ERR_INVALID;
        else if (rd_kafka_error_txn_requires_abort(error))
                *res = EXB_ERR_RETRY;
        else /* fatal (fenced), or still failing at the deadline: state unknown */
                *res = EXB_ERR_FATAL;
        exb_errf(errstr, errstr_size, "transaction: %s: %s (%s)%s", what,
                 rd_kafka_error_string(error), rd_kafka_error_name(error),
                 *res == EXB_ERR_FATAL && !rd_kafka_error_is_fatal(error) ? ", gave up" : "");
        rd_kafka_error_destroy(error);
        return 0;
}

/* Calls a transactional API that takes (rk, timeout_ms) until it is done. */
static exb_err_t txn_call(exb_producer_t *p, rd_kafka_error_t *(*call)(rd_kafka_t *, int),
                          const char *what, int64_t deadline, char *errstr, size_t errstr_size)
{
        exb_err_t res;
        int left;
        do
                left = (int)(deadline - exb_mono_ms());
        while (txn_done(call(p->rk, left > 0 ? left : 1), what, deadline, &res, errstr,
                        errstr_size));
        return res;
}

exb_err_t exb_producer_txn_init(exb_producer_t *p, int timeout_ms, char *errstr,
                                size_t errstr_size)
{
        return txn_call(p, rd_kafka_init_transactions, "init", exb_mono_ms() + timeout_ms, errstr,
                        errstr_size);
}

exb_err_t exb_producer_txn_begin(exb_producer_t *p, char *errstr, size_t errstr_size)
{
        exb_err_t res;
        txn_done(rd_kafka_begin_transaction(p->rk), "begin", 0, &res, errstr, errstr_size);
        return res;
}

exb_err_t exb_producer_txn_commit(exb_producer_t *p, exb_consumer_t *c, const exb_offset_t *offs,
                                  int n, int timeout_ms, char *errstr, size_t errstr_size)
{
        int64_t deadline = exb_mono_ms() + timeout_ms;
        exb_err_t res = EXB_OK;
        if (n > 0) {
                rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n);
                for (int i = 0; i < n; i++)
                        rd_kafka_topic_partition_list_add(tl, offs[i].topic, offs[i].partition)
                                ->offset = offs[i].offset;
                rd_kafka_consumer_group_metadata_t *cgm =
                        rd_kafka_consumer_group_metadata(exb_consumer_rk(c));
                while (txn_done(rd_kafka_send_offsets_to_transaction(p->rk, tl, cgm, timeout_ms),
                                "sending the consumer offsets", deadline, &res, errstr,
                                errstr_size))
                        ;
                rd_kafka_consumer_group_metadata_destroy(cgm);
                rd_kafka_topic_partition_list_destroy(tl);
        }
        if (res != EXB_OK)
                return res;
        return txn_call(p, rd_kafka_commit_transaction, "commit", deadline, errstr, errstr_size);
}

exb_err_t exb_producer_txn_abort(exb_producer_t *p, int timeout_ms, char *errstr,
                                 size_t errstr_size)
{
        return txn_call(p, rd_kafka_abort_transaction, "abort", exb_mono_ms() + timeout_ms, errstr,
                        errstr_size);
}
