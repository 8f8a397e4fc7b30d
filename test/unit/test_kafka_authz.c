/*
 * test_kafka_authz.c — authorization failures stop the broker adapter's
 * users instead of being retried forever (DESIGN §7), injected on private
 * librdkafka mock clusters:
 *   - a fetch refused with TOPIC_AUTHORIZATION_FAILED makes
 *     exb_consumer_poll() fail, naming the topic;
 *   - an idempotent producer refused its producer id
 *     (CLUSTER_AUTHORIZATION_FAILED) reports EXB_ERR_INVALID from
 *     exb_producer_fatal(): replacing it would not help.
 * The real-broker proof with ACLs is test/integration/0020-acl-security.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "exb_kafka.h"

/* A mock cluster of one broker with topic `topic` (1 partition), owned by
 * *rk (a quiet producer handle). */
static rd_kafka_mock_cluster_t *mock_new(rd_kafka_t **rk, const char *topic)
{
        char es[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", es, sizeof(es));
        *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof(es));
        assert_non_null(*rk);
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(*rk, 1);
        assert_non_null(mc);
        assert_int_equal(rd_kafka_mock_topic_create(mc, topic, 1, 1), 0);
        return mc;
}

static void test_fetch_denied(void **state)
{
        (void)state;
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mc = mock_new(&rk, "exb.deliver.GJJ.x");
        char es[512] = "";
        static const exb_kprop_t quiet[] = {{"log_level", "0"}};
        exb_consumer_t *c = exb_consumer_new(rd_kafka_mock_cluster_bootstraps(mc), NULL, quiet, 1,
                                             NULL, es, sizeof(es));
        assert_non_null(c);
        rd_kafka_mock_push_request_errors(
                mc, 1 /* Fetch */, 4, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
        assert_int_equal(exb_consumer_assign(c, "exb.deliver.GJJ.x", 0, EXB_OFFSET_BEGINNING, es,
                                             sizeof(es)),
                         EXB_OK);
        exb_msg_t msgs[4];
        int n = 0;
        for (int i = 0; i < 50 && n == 0; i++) /* up to 10 s */
                n = exb_consumer_poll(c, msgs, 4, 200, es, sizeof(es));
        assert_int_equal(n, -1);
        assert_non_null(strstr(es, "not authorized to read topic exb.deliver.GJJ.x"));
        exb_consumer_destroy(c);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
}

static void dr_cb(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                  int32_t partition, int64_t offset)
{
        (void)msg_opaque, (void)errstr, (void)partition, (void)offset;
        *(exb_err_t *)opaque = err;
}

static void test_producer_id_denied(void **state)
{
        (void)state;
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mc = mock_new(&rk, "exb.ingest.GA.x");
        char es[512] = "";
        rd_kafka_mock_push_request_errors(mc, 22 /* InitProducerId */, 1,
                                          RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
        static const exb_kprop_t quiet[] = {{"log_level", "0"}};
        static exb_err_t dr_err = EXB_OK;
        exb_producer_t *p = exb_producer_new(rd_kafka_mock_cluster_bootstraps(mc), quiet, 1, dr_cb,
                                             &dr_err, es, sizeof(es));
        assert_non_null(p);
        exb_topic_t *t = exb_producer_topic(p, "exb.ingest.GA.x");
        exb_produce(p, t, 0, "k", 1, "v", 1, NULL, 0, (void *)1, es, sizeof(es));
        exb_producer_flush(p, 5000);
        assert_int_equal(exb_producer_fatal(p, es, sizeof(es)), EXB_ERR_INVALID);
        assert_non_null(strstr(es, "not authorized"));
        assert_non_null(strstr(es, "CLUSTER_AUTHORIZATION_FAILED"));
        exb_producer_destroy(p);
        assert_int_equal(dr_err, EXB_ERR_FATAL); /* failed, never delivered */
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fetch_denied),
                cmocka_unit_test(test_producer_id_denied),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
