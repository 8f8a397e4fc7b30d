/*
 * test_router.c — the router's at-least-once offsets, in this process on the
 * embedded broker: a source offset is committed only once the outputs of
 * its record, and of all records before it, are delivered.
 *
 * NRECS person records are produced to the ingest topic; the delivery
 * topic's partitions are made leaderless, so every delivery waits in the
 * router's producer. The router consumes and routes them all, and is
 * polled on (it ends an epoch every 10 ms and its consumer auto-commits
 * every 200 ms) while a watcher thread reads the group's committed offsets
 * for HOLD_MS: there must be none. Then the watcher gives the partitions their leader back;
 * the deliveries go out, and after a drain every ingest partition's
 * committed offset is its end.
 *
 * Then exb-path: a record of a department (GA) that carries one is
 * delivered without it; once GA is marked as an exchange node ("node":
 * true), its next record's exb-path is delivered as it came.
 *
 * The mock delays a group's first join by 3 s; the file runs in about 13 s.
 */
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

#include "exb_catalog.h"
#include "exb_codec.h"
#include "exb_control.h"
#include "exb_kafka.h"
#include "exb_router.h"
#include "exb_sample.h"

#define NRECS   2000
#define NPARTS  4
#define HOLD_MS 6000
#define RES     "370600-GA-0001"
#define INGEST  "exb.ingest.GA." RES
#define DELIVER "exb.deliver.GJJ." RES

static struct {
        exb_embedded_t *emb;
        const char *bs;
        char dir[64];
        int64_t produced[NPARTS];  /* ingest records per partition */
        int committed_during_hold; /* partitions seen with a committed offset */
        int released;              /* the watcher gave the leaders back (atomic) */
} T;

static void count_dr(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                     int32_t partition, int64_t offset)
{
        (void)opaque, (void)msg_opaque, (void)errstr, (void)offset;
        if (err == EXB_OK)
                T.produced[partition]++;
}

/* Produces person records first..first+n-1 to the ingest topic, with
 * exb-path = path if not NULL; counted in T.produced. */
static void produce_people(int first, int n, const char *path)
{
        char err[512];
        exb_control_t *ctl = exb_control_new(T.bs, NULL, 0, NULL, 10000, err, sizeof(err));
        assert_non_null(ctl);
        int32_t sid;
        exb_resource_t *res = exb_control_resource(ctl, RES, &sid);
        exb_schema_t *schema = exb_control_schema(ctl, sid);
        assert_non_null(schema);
        exb_producer_t *p = exb_producer_new(T.bs, NULL, 0, count_dr, NULL, err, sizeof(err));
        assert_non_null(p);
        exb_topic_t *t = exb_producer_topic(p, INGEST);
        exb_header_t h = {"exb-path", path, path ? strlen(path) : 0};
        exb_buf_t enc;
        exb_buf_init(&enc, 1 << 16);
        for (int i = first; i < first + n; i++) {
                exb_sample_person_rec_t r;
                exb_sample_person_record(i, "test", &r);
                exb_buf_reset(&enc);
                assert_int_equal(exb_codec_encode(schema, &r.rec, &enc, err, sizeof(err)), EXB_OK);
                assert_int_equal(exb_produce(p, t, -1, r.person.id_number, 18, enc.p, enc.len,
                                             &h, path ? 1 : 0, NULL, err, sizeof(err)),
                                 EXB_OK);
        }
        assert_int_equal(exb_producer_flush(p, 10000), EXB_OK);
        exb_producer_destroy(p);
        exb_buf_free(&enc);
        exb_schema_destroy(schema);
        exb_resource_destroy(res);
        exb_control_destroy(ctl);
}

/* Catalog, one approved subscription (GJJ), topics, NRECS ingest records. */
static int setup(void **state)
{
        (void)state;
        char err[512], id[32];
        snprintf(T.dir, sizeof(T.dir), "/tmp/exb-test-router.XXXXXX");
        assert_non_null(mkdtemp(T.dir));
        setenv("EXBUS_MASK_SECRET", "test-router-secret-0123456789", 1);
        T.emb = exb_embedded_new(1, err, sizeof(err));
        assert_non_null(T.emb);
        T.bs = exb_embedded_bootstraps(T.emb);
        exb_topic_spec_t base[] = {{EXB_CONTROL_TOPIC, 1, 1}};
        assert_int_equal(exb_admin_ensure_topics(T.bs, NULL, 0, base, 1, 10000, err, sizeof(err)),
                         EXB_OK);
        exb_control_t *ctl = exb_control_new(T.bs, NULL, 0, NULL, 10000, err, sizeof(err));
        assert_non_null(ctl);
        exb_catalog_t *cat = exb_catalog_parse("sample catalog", (const char *)exb_sample_catalog,
                                               exb_sample_catalog_len, NULL, 0, err, sizeof(err));
        assert_non_null(cat);
        assert_int_equal(exb_control_import(ctl, cat, NULL, NULL, err, sizeof(err)), EXB_OK);
        const char *items[] = {"id_number", "name", "region", "updated_at"};
        exb_sub_request_t req = {.subscriber = "GJJ",
                                 .resource = RES,
                                 .purpose = "test",
                                 .items = items,
                                 .nitems = 4};
        exb_sub_decision_t dec = {.state = EXB_SUB_APPROVED};
        assert_int_equal(exb_control_sub_request(ctl, &req, 0, id, sizeof(id), err, sizeof(err)),
                         EXB_OK);
        assert_int_equal(exb_control_sub_decide(ctl, id, &dec, err, sizeof(err)), EXB_OK);
        exb_topic_spec_t *specs;
        int n = exb_control_topics(ctl, NPARTS, &specs);
        assert_int_equal(exb_admin_ensure_topics(T.bs, NULL, 0, specs, n, 10000, err, sizeof(err)),
                         EXB_OK);
        exb_topic_specs_free(specs, n);

        produce_people(0, NRECS, NULL);
        exb_catalog_destroy(cat);
        exb_control_destroy(ctl);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        exb_embedded_destroy(T.emb);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", T.dir);
        return system(cmd);
}

/* Committed offset of the test group for ingest partition p, -1 if none. */
static int64_t committed(int32_t p)
{
        char err[512];
        int64_t off = -1;
        if (exb_admin_group_offset(T.bs, NULL, 0, "t-router", INGEST, p, &off, 5000, err,
                                   sizeof(err)) != EXB_OK)
                fail_msg("committed offsets: %s", err);
        return off;
}

/* Watches the committed offsets while the deliveries cannot go out, then
 * lets them go. */
static void *watch(void *arg)
{
        (void)arg;
        for (int64_t end = exb_mono_ms() + HOLD_MS; exb_mono_ms() < end; usleep(100 * 1000))
                for (int p = 0; p < NPARTS; p++)
                        T.committed_during_hold += committed(p) > 0;
        for (int p = 0; p < NPARTS; p++)
                exb_embedded_set_leaderless(T.emb, DELIVER, p, 0);
        __atomic_store_n(&T.released, 1, __ATOMIC_SEQ_CST);
        return NULL;
}

/* A router configuration for this cluster, consumer group `group`. */
static void router_conf(exb_router_conf_t *conf, const char *group)
{
        memset(conf, 0, sizeof(*conf));
        exb_conf_defaults(exb_router_props, conf);
        conf->brokers = exb_strdup(T.bs);
        free(conf->data_dir);
        conf->data_dir = exb_strdup(T.dir);
        free(conf->group_id);
        conf->group_id = exb_strdup(group);
        conf->partitions = NPARTS;
}

static void test_offsets_wait_for_deliveries(void **state)
{
        (void)state;
        char err[512];
        exb_router_conf_t conf;
        router_conf(&conf, "t-router");
        const char *sets[] = {"commit.interval.ms=10", "kafka.auto.commit.interval.ms=200"};
        for (int i = 0; i < 2; i++)
                assert_int_equal(exb_conf_set_arg(exb_router_props, &conf, sets[i], "test", err,
                                                  sizeof(err)),
                                 0);
        for (int p = 0; p < NPARTS; p++)
                exb_embedded_set_leaderless(T.emb, DELIVER, p, 1);
        exb_router_t *rtr = exb_router_new(&conf, err, sizeof(err));
        assert_non_null(rtr);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, watch, NULL), 0);
        int got = 0; /* routing on while held: epochs end, and must not store */
        for (int64_t end = exb_mono_ms() + 30000;
             (got < NRECS || !__atomic_load_n(&T.released, __ATOMIC_SEQ_CST)) &&
             exb_mono_ms() < end;) {
                int n = exb_router_poll(rtr, 100, err, sizeof(err));
                assert_true(n >= 0);
                got += n;
        }
        pthread_join(th, NULL);
        assert_int_equal(got, NRECS);
        assert_int_equal(T.committed_during_hold, 0);
        assert_int_equal(exb_router_drain(rtr, 10000, err, sizeof(err)), 0);
        exb_router_destroy(rtr); /* commits what the drain stored */
        for (int p = 0; p < NPARTS; p++)
                assert_int_equal(committed(p), T.produced[p]);
        exb_conf_free(exb_router_props, &conf);
}

/* The exb-path of the delivery of person i ("" if it has none); fails if
 * there is no delivery of it within 10 s. */
static char *delivered_path(int i)
{
        char err[512];
        exb_sample_person_t person;
        exb_sample_person(i, &person);
        exb_consumer_t *c = exb_consumer_new(T.bs, NULL, NULL, 0, NULL, err, sizeof(err));
        assert_non_null(c);
        for (int p = 0; p < NPARTS; p++)
                assert_int_equal(exb_consumer_assign(c, DELIVER, p, EXB_OFFSET_BEGINNING, err,
                                                     sizeof(err)),
                                 EXB_OK);
        char *found = NULL;
        exb_msg_t msgs[500];
        for (int64_t end = exb_mono_ms() + 10000; !found && exb_mono_ms() < end;) {
                int n = exb_consumer_poll(c, msgs, 500, 100, err, sizeof(err));
                for (int k = 0; k < n; k++) {
                        const void *v;
                        size_t len;
                        if (!found && msgs[k].key_len == 18 && !memcmp(msgs[k].key, person.id_number, 18))
                                found = exb_msg_header(&msgs[k], "exb-path", &v, &len)
                                                ? strndup(v, len)
                                                : strdup("");
                        exb_msg_release(&msgs[k]);
                }
        }
        exb_consumer_destroy(c);
        if (!found)
                fail_msg("no delivery of person %d", i);
        return found;
}

/* Routes until every ingest record is consumed (group t-path). */
static void route_all(exb_router_t *rtr, int64_t total)
{
        char err[512];
        int64_t got = 0;
        for (int64_t end = exb_mono_ms() + 30000; got < total && exb_mono_ms() < end;) {
                int n = exb_router_poll(rtr, 100, err, sizeof(err));
                assert_true(n >= 0);
                got += n;
        }
        assert_int_equal(got, total);
        assert_int_equal(exb_router_drain(rtr, 10000, err, sizeof(err)), 0);
}

/* exb-path is read and kept only for a provider marked as an exchange node:
 * a department's records never carry it (only an uplink writes it). */
static void test_path_kept_for_nodes_only(void **state)
{
        (void)state;
        char err[512];
        exb_router_conf_t conf;
        router_conf(&conf, "t-path");
        produce_people(NRECS, 1, "370602");
        exb_router_t *rtr = exb_router_new(&conf, err, sizeof(err));
        assert_non_null(rtr);
        route_all(rtr, NRECS + 1);
        char *path = delivered_path(NRECS);
        assert_string_equal(path, ""); /* GA is a department */
        free(path);

        exb_control_t *ctl = exb_control_new(T.bs, NULL, 0, NULL, 10000, err, sizeof(err));
        const char *text = "{\"departments\":[{\"code\":\"GA\",\"name\":\"GA\",\"node\":true}]}";
        exb_catalog_t *cat = exb_catalog_parse("t", text, strlen(text), NULL, 0, err, sizeof(err));
        assert_int_equal(exb_control_import(ctl, cat, NULL, NULL, err, sizeof(err)), EXB_OK);
        exb_catalog_destroy(cat);
        exb_control_destroy(ctl);
        produce_people(NRECS + 1, 1, "370602,370600");
        route_all(rtr, 1);
        path = delivered_path(NRECS + 1);
        assert_string_equal(path, "370602,370600"); /* GA is now a node */
        free(path);
        exb_router_destroy(rtr);
        exb_conf_free(exb_router_props, &conf);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_offsets_wait_for_deliveries),
                cmocka_unit_test(test_path_kept_for_nodes_only),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
