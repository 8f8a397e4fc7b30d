/*
 * test_kafka.c — the broker adapter (broker-adapters/) against the embedded
 * broker hosted in this process.
 *
 * The tests run in order and share one embedded cluster and the record of
 * what was produced (T.dr): ensure topics → produce 10,000 keyed messages
 * with headers → a group consumer reads them all, in order per partition,
 * storing offsets for the first half only → a second member of the same
 * group resumes exactly after the committed half → on_assign forces start
 * offsets → group-less reads, watermarks, pause/resume and seek → a broker
 * that stays down makes delivery reports fail instead of hanging → a broken
 * idempotence sequence is fatal.
 *
 * The mock delays a group's first join by 3 s, so each group test costs
 * about 3 s; the whole file runs in about 20 s.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "exb_kafka.h"

#define NMSGS  10000
#define NPARTS 4
#define TOPIC  "t.data"

typedef struct {
        int done;
        exb_err_t err;
        int32_t partition;
        int64_t offset;
} dr_t;

static struct {
        exb_embedded_t *emb;
        const char *brokers;
        dr_t dr[NMSGS];
        int ndr;
        int64_t count[NPARTS]; /* messages per partition, from the DRs */
} T;

static void fmt_key(char *buf, size_t size, int i)
{
        snprintf(buf, size, "370602%012d", i * 7919 % 1000003);
}

static void dr_cb(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                  int32_t partition, int64_t offset)
{
        dr_t *drs = opaque;
        int i = (int)(intptr_t)msg_opaque - 1;
        (void)errstr;
        drs[i].done++;
        drs[i].err = err;
        drs[i].partition = partition;
        drs[i].offset = offset;
}

/* ------------------------------------------------------------------ topics */

static void *create_later(void *arg)
{
        rd_kafka_mock_cluster_t *mc = arg;
        usleep(400 * 1000);
        rd_kafka_mock_topic_create(mc, "late", 2, 1);
        return NULL;
}

static void test_ensure_topics(void **state)
{
        (void)state;
        char es[512] = "";
        exb_topic_spec_t specs[] = {
                {TOPIC, NPARTS, 0}, {"t.out", 2, 0}, {"t.ctl", 1, 1}, {"other", 3, 0}};
        assert_int_equal(
                exb_admin_ensure_topics(T.brokers, NULL, 0, specs, 4, 5000, es, sizeof(es)),
                EXB_OK);
        /* Twice changes nothing, even with another partition count. */
        exb_topic_spec_t again[] = {{TOPIC, 8, 0}};
        assert_int_equal(
                exb_admin_ensure_topics(T.brokers, NULL, 0, again, 1, 5000, es, sizeof(es)),
                EXB_OK);
        exb_topic_spec_t bad[] = {{"t.bad", 0, 0}};
        assert_int_equal(exb_admin_ensure_topics(T.brokers, NULL, 0, bad, 1, 5000, es, sizeof(es)),
                         EXB_ERR_INVALID);

        exb_topic_info_t *ti;
        int n = exb_admin_list_topics(T.brokers, NULL, 0, "t.", &ti, 5000, es, sizeof(es));
        assert_int_equal(n, 3);
        int seen = 0;
        for (int i = 0; i < n; i++) {
                if (!strcmp(ti[i].name, TOPIC))
                        assert_int_equal(ti[i].partitions, NPARTS), seen |= 1;
                else if (!strcmp(ti[i].name, "t.out"))
                        assert_int_equal(ti[i].partitions, 2), seen |= 2;
                else if (!strcmp(ti[i].name, "t.ctl"))
                        assert_int_equal(ti[i].partitions, 1), seen |= 4;
                else
                        fail_msg("unexpected topic %s", ti[i].name);
        }
        assert_int_equal(seen, 7);
        exb_topic_infos_free(ti, n);

        /* A bad kafka.* property is named in the error. */
        exb_kprop_t badprop[] = {{"no.such.property", "1"}};
        assert_int_equal(
                exb_admin_list_topics(T.brokers, badprop, 1, NULL, &ti, 5000, es, sizeof(es)), -1);
        assert_non_null(strstr(es, "kafka.no.such.property"));
}

/* An embedded broker hosted by "another process": a mock cluster that is
 * not in this process's registry. No CreateTopics: ensure waits. */
static void test_ensure_topics_foreign_embedded(void **state)
{
        (void)state;
        char es[512] = "";
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", es, sizeof(es));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof(es));
        assert_non_null(rk);
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
        assert_non_null(mc);
        const char *bs = rd_kafka_mock_cluster_bootstraps(mc);

        exb_topic_spec_t specs[] = {{"late", 2, 0}};
        int64_t t0 = exb_mono_ms();
        assert_int_equal(exb_admin_ensure_topics(bs, NULL, 0, specs, 1, 1500, es, sizeof(es)),
                         EXB_ERR_RETRY);
        assert_in_range(exb_mono_ms() - t0, 1400, 6000); /* waited, bounded (valgrind is slow) */
        /* Usually "topic late does not exist yet (...)"; a slow run (valgrind)
         * can time out on the metadata request itself: same advice either way. */
        assert_non_null(strstr(es, "late"));
        assert_non_null(strstr(es, "(the embedded broker creates topics from the catalog)"));

        pthread_t th;
        pthread_create(&th, NULL, create_later, mc);
        exb_err_t err = exb_admin_ensure_topics(bs, NULL, 0, specs, 1, 10000, es, sizeof(es));
        if (err != EXB_OK)
                fail_msg("ensure: %s: %s", exb_err_name(err), es);
        pthread_join(th, NULL);

        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
}

/* ---------------------------------------------------------------- producer */

static void test_produce(void **state)
{
        (void)state;
        char es[512] = "";
        exb_producer_t *p = exb_producer_new(T.brokers, NULL, 0, dr_cb, T.dr, es, sizeof(es));
        assert_non_null(p);
        exb_topic_t *t = exb_producer_topic(p, TOPIC);
        assert_non_null(t);
        assert_ptr_equal(exb_producer_topic(p, TOPIC), t); /* cached */
        assert_string_equal(exb_topic_name(t), TOPIC);

        for (int i = 0; i < NMSGS; i++) {
                char key[32], val[64], seq[16];
                fmt_key(key, sizeof(key), i);
                int vlen = snprintf(val, sizeof(val), "value-%d", i);
                int slen = snprintf(seq, sizeof(seq), "%d", i);
                exb_header_t hdrs[] = {{"exb-path", "n1", 2}, {"seq", seq, (size_t)slen}};
                exb_err_t err;
                while ((err = exb_produce(p, t, -1, key, strlen(key), val, (size_t)vlen, hdrs, 2,
                                          (void *)(intptr_t)(i + 1), es, sizeof(es))) ==
                       EXB_ERR_RETRY)
                        exb_producer_poll(p, 10);
                assert_int_equal(err, EXB_OK);
                /* The caller's buffers may be reused at once (copied). */
                memset(key, 'x', sizeof(key));
                memset(seq, 'x', sizeof(seq));
                exb_producer_poll(p, 0);
        }
        assert_int_equal(exb_producer_flush(p, 20000), EXB_OK);
        assert_int_equal(exb_producer_outq_len(p), 0);
        assert_int_equal(exb_producer_fatal(p, es, sizeof(es)), EXB_OK);

        /* One report each, all with an offset; offsets per partition are 0..n-1. */
        static char seen[NPARTS][NMSGS];
        for (int i = 0; i < NMSGS; i++) {
                assert_int_equal(T.dr[i].done, 1);
                assert_int_equal(T.dr[i].err, EXB_OK);
                assert_in_range(T.dr[i].partition, 0, NPARTS - 1);
                assert_in_range(T.dr[i].offset, 0, NMSGS - 1);
                assert_false(seen[T.dr[i].partition][T.dr[i].offset]);
                seen[T.dr[i].partition][T.dr[i].offset] = 1;
                T.count[T.dr[i].partition]++;
        }
        for (int pt = 0; pt < NPARTS; pt++) {
                assert_true(T.count[pt] > NMSGS / NPARTS / 2); /* keys spread */
                for (int64_t o = 0; o < T.count[pt]; o++)
                        assert_true(seen[pt][o]);
        }
        /* exb_partition_of() places a key where the producer's partitioner did. */
        assert_int_equal(exb_producer_partitions(p, t, 10000), NPARTS);
        for (int i = 0; i < NMSGS; i++) {
                char k[32];
                fmt_key(k, sizeof(k), i);
                assert_int_equal(exb_partition_of(k, strlen(k), NPARTS), T.dr[i].partition);
        }
        /* Same key, same partition (murmur2, as the Java client). */
        int64_t before = T.count[T.dr[0].partition];
        char key[32];
        fmt_key(key, sizeof(key), 0);
        dr_t extra[1] = {{0}};
        exb_producer_destroy(p);
        p = exb_producer_new(T.brokers, NULL, 0, dr_cb, extra, es, sizeof(es));
        assert_non_null(p);
        assert_int_equal(exb_produce(p, exb_producer_topic(p, "t.out"), -1, key, strlen(key), NULL,
                                     0, NULL, 0, (void *)1, es, sizeof(es)),
                         EXB_OK);
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);
        assert_int_equal(extra[0].err, EXB_OK);
        assert_int_equal(before, T.count[T.dr[0].partition]);
        exb_producer_destroy(p);
}

static void test_produce_queue_full(void **state)
{
        (void)state;
        char es[512] = "";
        static dr_t drs[3];
        exb_kprop_t props[] = {{"queue.buffering.max.messages", "2"}, {"linger.ms", "1000"}};
        exb_producer_t *p = exb_producer_new(T.brokers, props, 2, dr_cb, drs, es, sizeof(es));
        assert_non_null(p);
        exb_topic_t *t = exb_producer_topic(p, "t.out");
        for (int i = 0; i < 2; i++)
                assert_int_equal(exb_produce(p, t, 0, "k", 1, "v", 1, NULL, 0,
                                             (void *)(intptr_t)(i + 1), es, sizeof(es)),
                                 EXB_OK);
        assert_int_equal(exb_produce(p, t, 0, "k", 1, "v", 1, NULL, 0, (void *)3, es, sizeof(es)),
                         EXB_ERR_RETRY);
        assert_non_null(strstr(es, "queue full"));
        exb_producer_destroy(p); /* flushes the two */
        assert_int_equal(drs[0].done + drs[1].done, 2);
        assert_int_equal(drs[2].done, 0);

        exb_kprop_t bad[] = {{"acks", "sometimes"}};
        assert_null(exb_producer_new(T.brokers, bad, 1, dr_cb, drs, es, sizeof(es)));
        assert_non_null(strstr(es, "kafka.acks"));
        assert_null(exb_producer_new(NULL, NULL, 0, dr_cb, drs, es, sizeof(es)));
}

/* ---------------------------------------------------------------- consumer */

typedef struct {
        int assigned, revoked;
        int64_t start; /* what on_assign returns */
} rb_state_t;

static int64_t on_assign(void *opaque, const char *topic, int32_t partition)
{
        rb_state_t *rs = opaque;
        (void)topic;
        (void)partition;
        rs->assigned++;
        return rs->start;
}

static void on_revoke(void *opaque, const char *topic, int32_t partition)
{
        rb_state_t *rs = opaque;
        (void)topic;
        (void)partition;
        rs->revoked++;
}

/* Reads until want messages arrived (or 20 s), checking each against the
 * delivery reports. Returns the count; next[] = next expected offset. */
static int consume_check(exb_consumer_t *c, int want, int64_t next[NPARTS], int store_half,
                         int64_t stored[NPARTS])
{
        static exb_msg_t msgs[500];
        char es[512];
        int got = 0;
        int64_t deadline = exb_mono_ms() + 20000;
        while (got < want && exb_mono_ms() < deadline) {
                int n = exb_consumer_poll(c, msgs, 500, 200, es, sizeof(es));
                assert_true(n >= 0);
                for (int i = 0; i < n; i++) {
                        exb_msg_t *m = &msgs[i];
                        assert_string_equal(m->topic, TOPIC);
                        assert_in_range(m->partition, 0, NPARTS - 1);
                        /* Per-partition order, no gap, no repeat. */
                        assert_int_equal(m->offset, next[m->partition]);
                        next[m->partition]++;

                        const void *v;
                        size_t len;
                        assert_int_equal(exb_msg_header(m, "seq", &v, &len), 1);
                        char seq[16];
                        assert_true(len < sizeof(seq));
                        memcpy(seq, v, len);
                        seq[len] = 0;
                        int idx = atoi(seq);
                        assert_in_range(idx, 0, NMSGS - 1);
                        assert_int_equal(T.dr[idx].partition, m->partition);
                        assert_int_equal(T.dr[idx].offset, m->offset);
                        char key[32], val[64];
                        fmt_key(key, sizeof(key), idx);
                        assert_int_equal(m->key_len, strlen(key));
                        assert_memory_equal(m->key, key, m->key_len);
                        int vlen = snprintf(val, sizeof(val), "value-%d", idx);
                        assert_int_equal(m->len, (size_t)vlen);
                        assert_memory_equal(m->value, val, m->len);
                        assert_true(m->ts_ms > 0);
                        exb_header_t hs[4];
                        assert_int_equal(exb_msg_headers(m, hs, 4), 2);
                        assert_string_equal(hs[0].name, "exb-path");
                        assert_int_equal(hs[0].len, 2);
                        assert_memory_equal(hs[0].value, "n1", 2);
                        assert_string_equal(hs[1].name, "seq");
                        assert_int_equal(exb_msg_header(m, "exb-error", &v, &len), 0);

                        if (store_half && m->offset < T.count[m->partition] / 2) {
                                assert_int_equal(exb_consumer_store(c, m->topic, m->partition,
                                                                    m->offset + 1),
                                                 EXB_OK);
                                stored[m->partition] = m->offset + 1;
                        }
                        exb_msg_release(m);
                        got++;
                }
        }
        return got;
}

static void test_group_consume_and_resume(void **state)
{
        (void)state;
        char es[512] = "";
        int64_t next[NPARTS] = {0}, stored[NPARTS] = {0};
        rb_state_t rs = {0, 0, EXB_OFFSET_STORED};
        exb_rebalance_t rb = {on_assign, on_revoke, &rs};
        exb_kprop_t props[] = {{"auto.commit.interval.ms", "200"}};

        int64_t t0 = exb_mono_ms();
        exb_consumer_t *c = exb_consumer_new(T.brokers, "g1", props, 1, &rb, es, sizeof(es));
        assert_non_null(c);
        const char *topics[] = {TOPIC};
        assert_int_equal(exb_consumer_subscribe(c, topics, 1, es, sizeof(es)), EXB_OK);
        assert_int_equal(consume_check(c, NMSGS, next, 1, stored), NMSGS);
        print_message("group g1: %d messages in %lld ms (incl. the mock's 3 s first join)\n", NMSGS,
                      (long long)(exb_mono_ms() - t0));
        assert_int_equal(rs.assigned, NPARTS);
        for (int pt = 0; pt < NPARTS; pt++)
                assert_int_equal(next[pt], T.count[pt]);
        /* Stores of a partition we do not own are refused. */
        assert_int_equal(exb_consumer_store(c, "t.out", 0, 1), EXB_ERR_INVALID);
        exb_msg_t m;
        assert_int_equal(exb_consumer_poll(c, &m, 1, 300, es, sizeof(es)), 0);
        exb_consumer_destroy(c); /* on_revoke, commit, leave */
        assert_int_equal(rs.revoked, NPARTS);

        for (int pt = 0; pt < NPARTS; pt++) {
                int64_t off;
                assert_int_equal(exb_admin_group_offset(T.brokers, NULL, 0, "g1", TOPIC, pt, &off,
                                                        5000, es, sizeof(es)),
                                 EXB_OK);
                assert_int_equal(off, stored[pt]);
                assert_int_equal(off, T.count[pt] / 2);
        }
        int64_t off;
        assert_int_equal(exb_admin_group_offset(T.brokers, NULL, 0, "nobody", TOPIC, 0, &off, 5000,
                                                es, sizeof(es)),
                         EXB_OK);
        assert_int_equal(off, -1);

        /* A second member of g1 (regex subscription) resumes after the commit. */
        int want = 0;
        for (int pt = 0; pt < NPARTS; pt++) {
                next[pt] = stored[pt];
                want += (int)(T.count[pt] - stored[pt]);
        }
        memset(&rs, 0, sizeof(rs));
        rs.start = EXB_OFFSET_STORED;
        c = exb_consumer_new(T.brokers, "g1", NULL, 0, &rb, es, sizeof(es));
        assert_non_null(c);
        const char *re[] = {"^t\\.da.*"};
        assert_int_equal(exb_consumer_subscribe(c, re, 1, es, sizeof(es)), EXB_OK);
        assert_int_equal(consume_check(c, want, next, 0, NULL), want);
        assert_int_equal(exb_consumer_poll(c, &m, 1, 300, es, sizeof(es)), 0);
        for (int pt = 0; pt < NPARTS; pt++)
                assert_int_equal(next[pt], T.count[pt]);
        assert_int_equal(exb_consumer_commit(c, 0), EXB_OK); /* nothing stored: fine */
        exb_consumer_destroy(c);
}

static void test_on_assign_start(void **state)
{
        (void)state;
        char es[512] = "";
        rb_state_t rs = {0, 0, 5};
        exb_rebalance_t rb = {on_assign, on_revoke, &rs};
        exb_consumer_t *c = exb_consumer_new(T.brokers, "g2", NULL, 0, &rb, es, sizeof(es));
        assert_non_null(c);
        const char *topics[] = {TOPIC};
        assert_int_equal(exb_consumer_subscribe(c, topics, 1, es, sizeof(es)), EXB_OK);
        int64_t next[NPARTS] = {5, 5, 5, 5};
        int want = NMSGS - 5 * NPARTS;
        assert_int_equal(consume_check(c, want, next, 0, NULL), want);
        exb_consumer_destroy(c);
        assert_int_equal(rs.assigned, NPARTS);
        assert_int_equal(rs.revoked, NPARTS);
}

/* Threads of this process named `name` (/proc/self/task/N/comm). */
static int threads_named(const char *name)
{
        int n = 0;
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char path[300], comm[32] = "";
                snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
                FILE *f = fopen(path, "r");
                if (f && fgets(comm, sizeof(comm), f) && !strncmp(comm, name, strlen(name)))
                        n++;
                if (f)
                        fclose(f);
        }
        if (d)
                closedir(d);
        return n;
}

static void test_groupless(void **state)
{
        (void)state;
        char es[512] = "";
        exb_consumer_t *c = exb_consumer_new(T.brokers, NULL, NULL, 0, NULL, es, sizeof(es));
        assert_non_null(c);
        const char *topics[] = {TOPIC};
        assert_int_equal(exb_consumer_subscribe(c, topics, 1, es, sizeof(es)), EXB_ERR_INVALID);

        int64_t lo = -5, hi = -5;
        assert_int_equal(exb_consumer_watermarks(c, TOPIC, 2, &lo, &hi, 5000), EXB_OK);
        assert_int_equal(lo, 0);
        assert_int_equal(hi, T.count[2]);

        int64_t t0 = exb_mono_ms();
        assert_int_equal(exb_consumer_assign(c, TOPIC, 2, EXB_OFFSET_BEGINNING, es, sizeof(es)),
                         EXB_OK);
        static exb_msg_t msgs[1000], held[NMSGS];
        int64_t next = 0, first_ms = -1;
        int64_t deadline = exb_mono_ms() + 10000;
        while (next < hi && exb_mono_ms() < deadline) {
                int max = hi - next < 1000 ? (int)(hi - next) : 1000;
                int n = exb_consumer_poll(c, held + next, max, 100, es, sizeof(es));
                assert_true(n >= 0);
                if (n > 0 && first_ms < 0)
                        first_ms = exb_mono_ms() - t0;
                for (int i = 0; i < n; i++) {
                        assert_int_equal(held[next].partition, 2);
                        assert_int_equal(held[next].offset, next);
                        next++;
                }
        }
        assert_int_equal(next, hi);
        /* Over 1024 released between two polls: a reaper destroys them (see
         * exb_kafka_consumer.c) while the seek, pause and resume below go on. */
        assert_true(hi > 1024);
        assert_int_equal(threads_named("exb:reaper"), 0);
        for (int64_t i = 0; i < hi; i++)
                exb_msg_release(&held[i]);
        assert_int_equal(threads_named("exb:reaper"), 1);
        print_message("group-less: first message %lld ms after assign, %lld in %lld ms\n",
                      (long long)first_ms, (long long)hi, (long long)(exb_mono_ms() - t0));

        /* A second partition joins without rewinding the first. */
        assert_int_equal(exb_consumer_assign(c, TOPIC, 1, T.count[1] - 3, es, sizeof(es)), EXB_OK);
        int got = 0;
        deadline = exb_mono_ms() + 5000;
        while (got < 3 && exb_mono_ms() < deadline) {
                int n = exb_consumer_poll(c, msgs, 10, 100, es, sizeof(es));
                for (int i = 0; i < n; i++) {
                        assert_int_equal(msgs[i].partition, 1);
                        assert_int_equal(msgs[i].offset, T.count[1] - 3 + got);
                        got++;
                        exb_msg_release(&msgs[i]);
                }
        }
        assert_int_equal(got, 3);

        /* Seek back. */
        assert_int_equal(exb_consumer_seek(c, TOPIC, 2, 7), EXB_OK);
        int n = exb_consumer_poll(c, msgs, 1, 5000, es, sizeof(es));
        assert_int_equal(n, 1);
        assert_int_equal(msgs[0].partition, 2);
        assert_int_equal(msgs[0].offset, 7);
        exb_msg_release(&msgs[0]);
        /* Pause drops what was fetched ahead; resume fetches it again: no gap. */
        assert_int_equal(exb_consumer_pause(c), EXB_OK);
        assert_int_equal(exb_consumer_poll(c, msgs, 10, 300, es, sizeof(es)), 0);
        assert_int_equal(exb_consumer_resume(c), EXB_OK);
        n = exb_consumer_poll(c, msgs, 1, 5000, es, sizeof(es));
        assert_int_equal(n, 1);
        assert_int_equal(msgs[0].offset, 8);
        exb_msg_release(&msgs[0]);
        exb_msg_release(&msgs[0]); /* twice: no-op */
        assert_int_equal(exb_consumer_seek(c, TOPIC, 2, EXB_OFFSET_END), EXB_OK);

        /* Paused: nothing arrives; resumed: it does. */
        assert_int_equal(exb_consumer_pause(c), EXB_OK);
        static dr_t drs[1];
        exb_producer_t *p = exb_producer_new(T.brokers, NULL, 0, dr_cb, drs, es, sizeof(es));
        assert_non_null(p);
        assert_int_equal(exb_produce(p, exb_producer_topic(p, TOPIC), 1, "k", 1, "late", 4, NULL, 0,
                                     (void *)1, es, sizeof(es)),
                         EXB_OK);
        assert_int_equal(exb_producer_flush(p, 5000), EXB_OK);
        assert_int_equal(drs[0].offset, T.count[1]);
        exb_producer_destroy(p);
        assert_int_equal(exb_consumer_poll(c, msgs, 10, 500, es, sizeof(es)), 0);
        assert_int_equal(exb_consumer_resume(c), EXB_OK);
        n = exb_consumer_poll(c, msgs, 10, 5000, es, sizeof(es));
        assert_int_equal(n, 1);
        assert_int_equal(msgs[0].offset, T.count[1]);
        assert_int_equal(msgs[0].len, 4);
        assert_int_equal(exb_msg_headers(&msgs[0], NULL, 0), 0);
        assert_int_equal(exb_msg_header(&msgs[0], "seq", NULL, NULL), 0);
        exb_msg_release(&msgs[0]);
        T.count[1]++;

        char *cid = exb_consumer_cluster_id(c, 5000);
        assert_non_null(cid);
        free(cid);
        exb_consumer_destroy(c); /* returns only once every message is destroyed */
        assert_int_equal(threads_named("exb:reaper"), 0);
}

/* ------------------------------------------------------------ broker down */

static void test_broker_down(void **state)
{
        (void)state;
        char es[512] = "";
        static dr_t drs[5];
        /* Short reconnect backoff: librdkafka's grows to 10 s while the
         * broker is down, which would only make this test slow. */
        exb_kprop_t props[] = {{"message.timeout.ms", "1500"}, {"reconnect.backoff.max.ms", "500"}};
        exb_producer_t *p = exb_producer_new(T.brokers, props, 2, dr_cb, drs, es, sizeof(es));
        assert_non_null(p);
        exb_topic_t *t = exb_producer_topic(p, "t.out");
        /* Connected and working first. */
        assert_int_equal(exb_produce(p, t, -1, "a", 1, "v", 1, NULL, 0, (void *)1, es, sizeof(es)),
                         EXB_OK);
        assert_int_equal(exb_producer_flush(p, 5000), EXB_OK);
        assert_int_equal(drs[0].err, EXB_OK);

        exb_embedded_set_down(T.emb, 1);
        for (int i = 1; i < 4; i++)
                assert_int_equal(exb_produce(p, t, -1, "a", 1, "v", 1, NULL, 0,
                                             (void *)(intptr_t)(i + 1), es, sizeof(es)),
                                 EXB_OK);
        int64_t t0 = exb_mono_ms();
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);
        int64_t took = exb_mono_ms() - t0;
        for (int i = 1; i < 4; i++) {
                assert_int_equal(drs[i].done, 1);
                assert_int_equal(drs[i].err, EXB_ERR_RETRY);
                assert_int_equal(drs[i].offset, -1);
        }
        assert_in_range(took, 1000, 5000);

        /* Back up: the same producer delivers again (a caller retries what
         * failed, as the producer agent does from its changelog). */
        exb_embedded_set_down(T.emb, 0);
        t0 = exb_mono_ms();
        int tries = 0;
        do {
                tries++;
                assert_int_equal(
                        exb_produce(p, t, -1, "a", 1, "v", 1, NULL, 0, (void *)5, es, sizeof(es)),
                        EXB_OK);
                assert_int_equal(exb_producer_flush(p, 15000), EXB_OK);
        } while (drs[4].err != EXB_OK && exb_mono_ms() - t0 < 15000);
        assert_int_equal(drs[4].err, EXB_OK);
        print_message("broker down: reports after %lld ms; back up: delivered after %lld ms, "
                      "%d tries\n",
                      (long long)took, (long long)(exb_mono_ms() - t0), tries);
        assert_int_equal(exb_producer_fatal(p, es, sizeof(es)), EXB_OK);
        exb_producer_destroy(p);
}

/* A broken idempotence sequence is fatal: reported by the delivery report
 * and by exb_producer_fatal(). Injected on a private mock cluster. */
static void test_producer_fatal(void **state)
{
        (void)state;
        char es[512] = "";
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", es, sizeof(es));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof(es));
        assert_non_null(rk);
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
        assert_non_null(mc);
        assert_int_equal(rd_kafka_mock_topic_create(mc, "f", 1, 1), 0);

        static dr_t drs[2];
        exb_producer_t *p = exb_producer_new(rd_kafka_mock_cluster_bootstraps(mc), NULL, 0, dr_cb,
                                             drs, es, sizeof(es));
        assert_non_null(p);
        exb_topic_t *t = exb_producer_topic(p, "f");
        assert_int_equal(exb_produce(p, t, 0, "k", 1, "v", 1, NULL, 0, (void *)1, es, sizeof(es)),
                         EXB_OK);
        assert_int_equal(exb_producer_flush(p, 5000), EXB_OK);
        assert_int_equal(drs[0].err, EXB_OK);
        assert_int_equal(exb_producer_fatal(p, es, sizeof(es)), EXB_OK);

        rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 1,
                                          RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
        assert_int_equal(exb_produce(p, t, 0, "k", 1, "v", 1, NULL, 0, (void *)2, es, sizeof(es)),
                         EXB_OK);
        exb_producer_flush(p, 5000);
        assert_int_equal(drs[1].done, 1);
        assert_int_equal(drs[1].err, EXB_ERR_FATAL);
        assert_int_equal(exb_producer_fatal(p, es, sizeof(es)), EXB_ERR_FATAL);
        assert_non_null(strstr(es, "OUT_OF_ORDER_SEQUENCE_NUMBER"));
        /* Nothing more is accepted. */
        assert_int_equal(exb_produce(p, t, 0, "k", 1, "v", 1, NULL, 0, (void *)2, es, sizeof(es)),
                         EXB_ERR_FATAL);
        exb_producer_destroy(p);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
}

static int setup(void **state)
{
        (void)state;
        char es[512];
        T.emb = exb_embedded_new(1, es, sizeof(es));
        if (!T.emb) {
                fprintf(stderr, "%s\n", es);
                return -1;
        }
        T.brokers = exb_embedded_bootstraps(T.emb);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        exb_embedded_destroy(T.emb);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ensure_topics),
                cmocka_unit_test(test_ensure_topics_foreign_embedded),
                cmocka_unit_test(test_produce),
                cmocka_unit_test(test_produce_queue_full),
                cmocka_unit_test(test_group_consume_and_resume),
                cmocka_unit_test(test_on_assign_start),
                cmocka_unit_test(test_groupless),
                cmocka_unit_test(test_broker_down),
                cmocka_unit_test(test_producer_fatal),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
