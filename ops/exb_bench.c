/*
 * exb_bench.c — `exbus bench`: router throughput against the raw-Kafka
 * ceiling, measured in the same run on the same broker and bytes.
 *
 *  1. An embedded broker in this process; the sample catalog imported.
 *  2. N person records (370600-GA-0001, 8 items, valid citizen ids) encoded
 *     and produced to the ingest topic.
 *  3. raw:  consume -> produce the same key and value to another topic, with
 *           the same adapter, batch size and offset storing as the router:
 *           no decode, no rules, no encode. This is the ceiling.
 *  4. router with 1 subscription (projection to 7 items, partial mask on
 *     the citizen id, a filter every record passes), then with 3
 *     subscriptions (adding a hash mask, and a filter that passes one in
 *     three). Each run uses a fresh consumer group; time runs from the first
 *     record consumed until every output is delivered.
 * It prints records/s for each and the ratio to the raw ceiling, and the
 * process's peak RSS. Numbers, not assertions: CI does not run this.
 */
#include "exb_cli.h"
#include "exb_codec.h"
#include "exb_router.h"
#include "exb_sample.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define BENCH_TOPIC "exb.ingest.GA.370600-GA-0001"
#define BENCH_RAW_TOPIC "exb.bench.raw"

typedef struct bench_s {
        const char *bs;
        int n, partitions, batch;
        exb_control_t *ctl;
        char tmpdir[64];
} bench_t;

static void count_dr(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                     int32_t partition, int64_t offset)
{
        (void)msg_opaque, (void)errstr, (void)partition, (void)offset;
        if (err != EXB_OK)
                (*(int *)opaque)++;
}

/* Produces b->n encoded person records to the ingest topic. */
static int preload(bench_t *b, size_t *avg_bytes)
{
        char err[512];
        int32_t sid;
        exb_resource_t *res = exb_control_resource(b->ctl, "370600-GA-0001", &sid);
        exb_schema_t *schema = res ? exb_control_schema(b->ctl, sid) : NULL;
        int failed = 0;
        exb_producer_t *p = schema ? exb_producer_new(b->bs, NULL, 0, count_dr, &failed, err,
                                                      sizeof(err))
                                   : NULL;
        if (!p) {
                fprintf(stderr, "exbus bench: %s\n", schema ? err : "sample resource missing");
                exb_schema_destroy(schema);
                exb_resource_destroy(res);
                return -1;
        }
        exb_topic_t *t = exb_producer_topic(p, BENCH_TOPIC);
        exb_val_t vals[8];
        exb_record_t rec = {.op = EXB_OP_CREATE, .source = EXB_STR("GA"), .nvals = 8, .vals = vals};
        exb_buf_t enc;
        exb_buf_init(&enc, 1 << 20);
        size_t total = 0;
        for (int i = 0; i < b->n; i++) {
                exb_sample_person_t ps;
                exb_sample_person(i, &ps);
                char eid[32];
                snprintf(eid, sizeof(eid), "bench-%d", i);
                int64_t days = 0;
                exb_date_parse(ps.birth_date, 10, &days);
                rec.event_id = exb_str(eid);
                rec.ts_ms = exb_now_ms();
                vals[0] = (exb_val_t){0, {.s = exb_str(ps.id_number)}};
                vals[1] = (exb_val_t){0, {.s = exb_str(ps.name)}};
                vals[2] = (exb_val_t){0, {.s = exb_str(ps.gender)}};
                vals[3] = (exb_val_t){0, {.i = days}};
                vals[4] = (exb_val_t){0, {.s = exb_str(ps.address)}};
                vals[5] = (exb_val_t){0, {.s = exb_str(ps.region)}};
                vals[6] = (exb_val_t){0, {.s = exb_str(ps.phone)}};
                vals[7] = (exb_val_t){0, {.i = rec.ts_ms}};
                exb_buf_reset(&enc);
                if (exb_codec_encode(schema, &rec, &enc, err, sizeof(err)) != EXB_OK) {
                        fprintf(stderr, "exbus bench: encode: %s\n", err);
                        break;
                }
                total += enc.len;
                while (exb_produce(p, t, -1, ps.id_number, 18, enc.p, enc.len, NULL, 0, NULL, err,
                                   sizeof(err)) == EXB_ERR_RETRY)
                        exb_producer_poll(p, 10);
                exb_producer_poll(p, 0);
        }
        exb_producer_flush(p, 60000);
        exb_producer_destroy(p);
        exb_buf_free(&enc);
        exb_schema_destroy(schema);
        exb_resource_destroy(res);
        *avg_bytes = b->n ? total / (size_t)b->n : 0;
        return failed ? -1 : 0;
}

/* The raw ceiling: consume -> produce the same bytes. Returns records/s. */
static double run_raw(bench_t *b)
{
        char err[512];
        int failed = 0;
        exb_consumer_t *c = exb_consumer_new(b->bs, "bench-raw", NULL, 0, NULL, err, sizeof(err));
        exb_producer_t *p = exb_producer_new(b->bs, NULL, 0, count_dr, &failed, err, sizeof(err));
        const char *topics[] = {BENCH_TOPIC};
        if (!c || !p || exb_consumer_subscribe(c, topics, 1, err, sizeof(err))) {
                fprintf(stderr, "exbus bench: %s\n", err);
                exb_consumer_destroy(c);
                exb_producer_destroy(p);
                return 0;
        }
        exb_topic_t *t = exb_producer_topic(p, BENCH_RAW_TOPIC);
        exb_msg_t *msgs = exb_calloc((size_t)b->batch, sizeof(*msgs));
        int got = 0;
        int64_t start = 0, deadline = exb_mono_ms() + 120000;
        while (got < b->n && exb_mono_ms() < deadline) {
                int n = exb_consumer_poll(c, msgs, b->batch, 100, err, sizeof(err));
                if (n > 0 && !start)
                        start = exb_mono_ms();
                for (int i = 0; i < n; i++) {
                        while (exb_produce(p, t, -1, msgs[i].key, msgs[i].key_len, msgs[i].value,
                                           msgs[i].len, NULL, 0, NULL, err,
                                           sizeof(err)) == EXB_ERR_RETRY)
                                exb_producer_poll(p, 10);
                        if (i == n - 1)
                                exb_consumer_store(c, msgs[i].topic, msgs[i].partition,
                                                   msgs[i].offset + 1);
                        exb_msg_release(&msgs[i]);
                }
                exb_producer_poll(p, 0);
                got += n > 0 ? n : 0;
        }
        exb_producer_flush(p, 60000);
        double secs = (double)(exb_mono_ms() - start) / 1000.0;
        free(msgs);
        exb_consumer_destroy(c);
        exb_producer_destroy(p);
        return got == b->n && !failed && secs > 0 ? got / secs : 0;
}

/* The router over the same records, with a fresh group. Returns records/s. */
static double run_router(bench_t *b, const char *group)
{
        exb_router_conf_t conf = {0};
        exb_conf_defaults(exb_router_props, &conf);
        conf.brokers = exb_strdup(b->bs);
        free(conf.data_dir);
        conf.data_dir = exb_strdup(b->tmpdir);
        free(conf.group_id);
        conf.group_id = exb_strdup(group);
        conf.batch_size = b->batch;
        char err[512];
        exb_router_t *rtr = exb_router_new(&conf, err, sizeof(err));
        double rate = 0;
        if (!rtr) {
                fprintf(stderr, "exbus bench: %s\n", err);
                exb_conf_free(exb_router_props, &conf);
                return 0;
        }
        int got = 0;
        int64_t start = 0, deadline = exb_mono_ms() + 120000;
        while (got < b->n && exb_mono_ms() < deadline) {
                int n = exb_router_poll(rtr, 100, err, sizeof(err));
                if (n < 0) {
                        fprintf(stderr, "exbus bench: router: %s\n", err);
                        break;
                }
                if (n > 0 && !start)
                        start = exb_mono_ms();
                got += n;
        }
        if (got == b->n && exb_router_drain(rtr, 60000, err, sizeof(err)) == 0)
                rate = got / ((double)(exb_mono_ms() - start) / 1000.0);
        exb_router_destroy(rtr);
        exb_conf_free(exb_router_props, &conf);
        return rate;
}

static int approve(bench_t *b, const char *subscriber, const char *items, const char *mask,
                   const char *filter)
{
        char **v, id[32], err[512];
        int n = exb_cli_split(items, &v);
        exb_sub_request_t req = {.subscriber = subscriber, .resource = "370600-GA-0001",
                                 .purpose = "benchmark", .items = (const char *const *)v,
                                 .nitems = n};
        const char *masks[] = {mask};
        exb_sub_decision_t dec = {.state = EXB_SUB_APPROVED, .mask_specs = masks,
                                  .nmasks = 1, .filter = filter};
        int rc = exb_control_sub_request(b->ctl, &req, 0, id, sizeof(id), err, sizeof(err)) ||
                 exb_control_sub_decide(b->ctl, id, &dec, err, sizeof(err));
        if (rc)
                fprintf(stderr, "exbus bench: %s\n", err);
        exb_cli_strv_free(v, n);
        return rc;
}

static void ensure_topics(bench_t *b)
{
        exb_topic_spec_t *specs;
        int n = exb_control_topics(b->ctl, b->partitions, &specs);
        char err[512];
        exb_admin_ensure_topics(b->bs, NULL, 0, specs, n, 10000, err, sizeof(err));
        exb_topic_specs_free(specs, n);
}

int exb_cmd_bench(exb_cli_t *cli, int argc, char **argv)
{
        (void)cli;
        static const struct option opts[] = {{"records", 1, 0, 'n'}, {"partitions", 1, 0, 'p'}, {0}};
        bench_t b = {.n = 200000, .partitions = 16, .batch = 2000};
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'n')
                        b.n = atoi(optarg);
                else if (c == 'p')
                        b.partitions = atoi(optarg);
                else
                        return 2;
        }
        if (b.n < 1000 || b.partitions < 1) {
                fprintf(stderr, "usage: exbus bench [--records N>=1000] [--partitions P]\n");
                return 2;
        }
        if (!getenv("EXBUS_MASK_SECRET"))
                setenv("EXBUS_MASK_SECRET", "bench-secret-0123456789abcdef", 1);
        if (!getenv("EXBUS_LOG_LEVEL"))
                setenv("EXBUS_LOG_LEVEL", "1", 1);
        snprintf(b.tmpdir, sizeof(b.tmpdir), "/tmp/exbus-bench.XXXXXX");
        char err[512];
        exb_embedded_t *emb = NULL;
        exb_catalog_t *cat = NULL;
        int rc = 1;
        if (!mkdtemp(b.tmpdir) || !(emb = exb_embedded_new(1, err, sizeof(err)))) {
                fprintf(stderr, "exbus bench: cannot start: %s\n", emb ? "temp dir" : err);
                return 1;
        }
        b.bs = exb_embedded_bootstraps(emb);
        exb_topic_spec_t base[] = {{EXB_CONTROL_TOPIC, 1, 1}, {BENCH_RAW_TOPIC, b.partitions, 0}};
        if (exb_admin_ensure_topics(b.bs, NULL, 0, base, 2, 10000, err, sizeof(err)) ||
            !(b.ctl = exb_control_new(b.bs, NULL, 0, NULL, 10000, err, sizeof(err))) ||
            !(cat = exb_catalog_parse("sample catalog", (const char *)exb_sample_catalog,
                                      exb_sample_catalog_len, NULL, 0, err, sizeof(err))) ||
            exb_control_import(b.ctl, cat, NULL, NULL, err, sizeof(err)) ||
            approve(&b, "GJJ", "id_number,name,gender,birth_date,address,region,updated_at",
                    "id_number=partial:6:4", "region != \"999999\"")) {
                fprintf(stderr, "exbus bench: %s\n", err);
                goto done;
        }
        ensure_topics(&b);
        size_t avg;
        printf("exbus bench: %d records of 370600-GA-0001 on the embedded broker, %d partitions\n",
               b.n, b.partitions);
        int64_t t0 = exb_mono_ms();
        if (preload(&b, &avg))
                goto done;
        printf("  preload (encode + produce)   %9.0f records/s   (%zu bytes/record)\n",
               b.n / ((double)(exb_mono_ms() - t0) / 1000.0), avg);
        fflush(stdout);
        double raw = run_raw(&b);
        printf("  raw pass-through (ceiling)   %9.0f records/s\n", raw);
        fflush(stdout);
        double one = run_router(&b, "bench-router-1");
        printf("  router, 1 subscription       %9.0f records/s   ratio %.2f\n", one,
               raw > 0 ? one / raw : 0);
        fflush(stdout);
        if (approve(&b, "RS", "id_number,name,birth_date,region", "name=hash", NULL) ||
            approve(&b, "MZ", "id_number,name,address,region", "id_number=partial:6:4",
                    "region == \"370602\""))
                goto done;
        ensure_topics(&b);
        double three = run_router(&b, "bench-router-3");
        printf("  router, 3 subscriptions      %9.0f records/s   ratio %.2f\n", three,
               raw > 0 ? three / raw : 0);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("  peak RSS (broker + clients)  %9ld KiB\n", ru.ru_maxrss);
        rc = raw > 0 && one > 0 && three > 0 ? 0 : 1;
done:
        exb_catalog_destroy(cat);
        exb_control_destroy(b.ctl);
        exb_embedded_destroy(emb);
        static const char *files[] = {"router-control.db", "router-control.db-wal",
                                      "router-control.db-shm"};
        for (size_t i = 0; i < EXB_ARRAY_CNT(files); i++) {
                char path[128];
                snprintf(path, sizeof(path), "%s/%s", b.tmpdir, files[i]);
                unlink(path);
        }
        rmdir(b.tmpdir);
        return rc;
}
