/*
 * exb_kafka_int.h — internals shared by the files of the broker adapter
 * (exb_kafka.c, exb_kafka_producer.c, exb_kafka_consumer.c,
 * exb_kafka_admin.c, exb_embedded.c). Nothing outside broker-adapters/
 * includes this file, so librdkafka types never leak into other modules.
 */
#ifndef EXB_KAFKA_INT_H
#define EXB_KAFKA_INT_H

#include <librdkafka/rdkafka.h>

#include "exb_kafka.h"

/* Builds a librdkafka configuration: bootstrap.servers = brokers (may be
 * NULL), the adapter-wide defaults, then role_defaults, then props (the
 * user's kafka.* keys, last so they win). Installs the log and error
 * callbacks. Returns NULL with errstr naming the property on failure. */
rd_kafka_conf_t *exb_kconf_new(const char *brokers, const exb_kprop_t *role_defaults,
                               int nrole_defaults, const exb_kprop_t *props, int nprops,
                               char *errstr, size_t errstr_size);

/* What a caller should do about a librdkafka error code (exb_err_t). Fatal
 * if the handle rk (may be NULL) has raised a fatal error. */
exb_err_t exb_kerr(rd_kafka_t *rk, rd_kafka_resp_err_t err);

/* log_cb that sends every librdkafka line to DEBUG (helper handles such as
 * the embedded broker's own rd_kafka_t, whose chatter nobody needs). */
void exb_klog_debug_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* 1 if rk talks to an embedded broker: librdkafka's mock cluster, which
 * names itself "mockCluster<hex>" (waits up to timeout_ms for the id). */
int exb_kafka_is_embedded(rd_kafka_t *rk, int timeout_ms);

/* The librdkafka handle of a consumer (for the producer's transactions). */
rd_kafka_t *exb_consumer_rk(exb_consumer_t *c);

/* A short-lived handle for Admin API calls. NULL with errstr on failure. */
rd_kafka_t *exb_admin_handle(const char *brokers, const exb_kprop_t *props, int nprops,
                             char *errstr, size_t errstr_size);

/* If brokers names a broker of an embedded cluster hosted by this process,
 * creates the missing topics with the mock API, sets *errp and returns 1.
 * Returns 0 (nothing done) if brokers is somebody else's cluster. */
int exb_embedded_registry_ensure(const char *brokers, const exb_topic_spec_t *specs, int n,
                                 exb_err_t *errp, char *errstr, size_t errstr_size);

#endif
