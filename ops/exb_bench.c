/*
 * exb_bench.c — `exbus bench`: router throughput against the raw-Kafka
 * ceiling, measured in the same process on the same broker and bytes.
 *
 *  1. An embedded broker in this process; the sample catalog imported.
 *  2. N person records (370600-GA-0001, 8 items, valid citizen ids) encoded
 *     and produced to the ingest topic over P partitions, in batches of
 *     ~1 MB: the embedded broker answers a Fetch with one stored batch per
 *     partition, a real broker with up to max.partition.fetch.bytes (1 MiB),
 *     so large stored batches make it fetch like a real broker with a
 *     backlog. It keeps ~5 MiB per partition, which bounds N/P.
 *  3. Phase 1 with one subscription (projection to 7 items, partial mask on
 *     the citizen id, a filter every record passes); phase 2 with three
 *     (adding a hash mask, and a filter that passes one in three). In each
 *     phase, --runs times, alternately:
 *       raw:    consume -> produce the same key and value to another topic:
 *               the same adapter, client configuration (-X), subscription,
 *               batch size and output partitions as the router; no decode,
 *               no rules, no encode. The ceiling of the router.
 *       router: exb_router_poll() over the same records.
 *     Every run has a fresh consumer group and fresh client handles, and is
 *     timed the same way: from the return of the first poll that got
 *     records until every output is delivered, counting the records
 *     consumed after that first poll. Group joins (~3 s on the embedded
 *     broker) are outside the window.
 *  4. Per kind: the median records/s of the runs (min..max), the router's
 *     ratio to the raw median of the same phase, the median share of the
 *     window the main thread was on a CPU, the cores this process used and
 *     the cores other processes used meanwhile (figures taken while other
 *     processes use a core are not comparable), and the peak RSS (process,
 *     so it includes the broker's stored data) and its growth during the
 *     run (client queues plus newly stored outputs). -v adds two lines per
 *     run: where the main thread's time went (on a CPU, waiting for one,
 *     the rest idle: a main thread idle for long is starved by the
 *     consumer) and the CPU per record of each thread group.
 *
 * -X key=value (repeatable) is passed to every consumer and producer of both
 * kinds, as a router's kafka.* keys are: the way to measure a setting.
 * --router key=value (repeatable) sets a router property (e.g.
 * transaction.interval.ms). With -b BROKERS the bench runs against that
 * cluster instead of an embedded broker: a scratch Kafka whose ingest topic
 * is still empty (e.g. test/kafka/kafka.sh start), the way to measure what
 * the embedded broker cannot do (exactly.once transactions).
 * Numbers, not assertions: CI does not run this.
 */
#include "exb_cli.h"
#include "exb_codec.h"
#include "exb_kafka.h"
#include "exb_router.h"
#include "exb_sample.h"

#include <dirent.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_TOPIC     "exb.ingest.GA.370600-GA-0001"
#define BENCH_PATTERN   "^exb\\.ingest\\..*" /* the router's subscription */
#define BENCH_RAW_TOPIC "exb.bench.raw"
#define BENCH_MAX_RUNS  25
/* ~5 MiB kept per partition by the embedded broker, ~190 bytes stored per
 * record (value, key, batch overhead). */
#define BENCH_MAX_PER_PARTITION 20000

typedef struct bench_s {
        const char *bs;
        int n, partitions, batch, runs, verbose;
        int kinds;          /* 1 raw, 2 router, 3 both */
        exb_kprop_t *props; /* -X */
        int nprops;
        char **rprops;      /* --router key=value */
        int nrprops;
        int embedded;
        exb_control_t *ctl;
        char tmpdir[64];
} bench_t;

/* One run's measurements. */
typedef struct run_s {
        double rate;     /* records/s, 0 = failed */
        double main_cpu; /* main thread on a CPU / window */
        double cores;    /* process CPU time / window */
        double others;   /* cores used by other processes during the window */
        long rss_kib;    /* peak RSS during the run */
        long grow_kib;   /* peak RSS - RSS when the run started */
} run_t;

/* ------------------------------------------------------- measuring a window */

static int64_t mono_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double cpu_secs(clockid_t clk)
{
        struct timespec ts;
        clock_gettime(clk, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds this thread was runnable but waiting for a CPU (schedstat). */
static double runq_secs(void)
{
        unsigned long long run = 0, wait = 0;
        FILE *f = fopen("/proc/thread-self/schedstat", "r");
        if (f) {
                if (fscanf(f, "%llu %llu", &run, &wait) != 2)
                        wait = 0;
                fclose(f);
        }
        return (double)wait / 1e9;
}

/* Machine-wide jiffies: busy (all but idle and iowait) and total. */
static void machine_jiffies(double *busy, double *total)
{
        unsigned long long v[8] = {0};
        FILE *f = fopen("/proc/stat", "r");
        if (f) {
                if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                           &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
                        memset(v, 0, sizeof(v));
                fclose(f);
        }
        *total = (double)(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]);
        *busy = *total - (double)(v[3] + v[4]);
}

/* CPU seconds of this process's threads, summed by thread name (librdkafka
 * names its threads rdk:main, rdk:broker<id>, rdk:mock). */
#define BENCH_MAX_NAMES 16
typedef struct cpu_by_name_s {
        int n;
        char name[BENCH_MAX_NAMES][20];
        double secs[BENCH_MAX_NAMES];
} cpu_by_name_t;

static void cpu_by_name(cpu_by_name_t *c)
{
        memset(c, 0, sizeof(*c));
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char path[300], comm[20] = "?";
                unsigned long long run = 0;
                snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
                FILE *f = fopen(path, "r");
                if (f) {
                        if (fgets(comm, sizeof(comm), f))
                                comm[strcspn(comm, "\n")] = '\0';
                        fclose(f);
                }
                snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", de->d_name);
                if ((f = fopen(path, "r"))) {
                        if (fscanf(f, "%llu", &run) != 1)
                                run = 0;
                        fclose(f);
                }
                int i;
                for (i = 0; i < c->n && strcmp(c->name[i], comm); i++)
                        ;
                if (i == c->n) {
                        if (c->n == BENCH_MAX_NAMES)
                                continue;
                        snprintf(c->name[c->n++], sizeof(c->name[0]), "%s", comm);
                }
                c->secs[i] += (double)run / 1e9;
        }
        if (d)
                closedir(d);
}

static long status_kib(const char *key)
{
        char line[128];
        long kib = -1;
        size_t n = strlen(key);
        FILE *f = fopen("/proc/self/status", "r");
        while (f && fgets(line, sizeof(line), f))
                if (!strncmp(line, key, n))
                        kib = atol(line + n);
        if (f)
                fclose(f);
        return kib;
}

typedef struct window_s {
        int64_t t0_us;
        double thr0, proc0, rq0, busy0, total0;
        cpu_by_name_t cpu0;
        long rss0_kib;
} window_t;

/* Before the clients are created: resets the peak-RSS mark. */
static void window_prepare(window_t *w)
{
        FILE *f = fopen("/proc/self/clear_refs", "w"); /* "5": reset VmHWM */
        if (f) {
                fputs("5", f);
                fclose(f);
        }
        w->rss0_kib = status_kib("VmRSS:");
}

static void window_start(window_t *w)
{
        w->t0_us = mono_us();
        w->thr0 = cpu_secs(CLOCK_THREAD_CPUTIME_ID);
        w->proc0 = cpu_secs(CLOCK_PROCESS_CPUTIME_ID);
        w->rq0 = runq_secs();
        machine_jiffies(&w->busy0, &w->total0);
        cpu_by_name(&w->cpu0);
}

static void window_end(const bench_t *b, const window_t *w, int records, run_t *r)
{
        double secs = (double)(mono_us() - w->t0_us) / 1e6;
        if (secs <= 0 || records <= 0)
                return;
        r->rate = records / secs;
        r->main_cpu = (cpu_secs(CLOCK_THREAD_CPUTIME_ID) - w->thr0) / secs;
        r->cores = (cpu_secs(CLOCK_PROCESS_CPUTIME_ID) - w->proc0) / secs;
        double busy1, total1;
        machine_jiffies(&busy1, &total1);
        double busy = total1 > w->total0 ? (busy1 - w->busy0) / (total1 - w->total0) : 0;
        r->others = busy * (double)sysconf(_SC_NPROCESSORS_ONLN) - r->cores;
        if (r->others < 0)
                r->others = 0;
        if (!b->verbose)
                return;
        cpu_by_name_t c1;
        cpu_by_name(&c1);
        printf("      %5.0f ms %8.0f/s  main thread: on CPU %3.0f%%, waiting for a CPU %3.0f%%; "
               "process %.2f cores, machine %3.0f%% busy\n"
               "      CPU µs/record:",
               secs * 1000, r->rate, r->main_cpu * 100, (runq_secs() - w->rq0) / secs * 100,
               r->cores, total1 > w->total0 ? 100 * (busy1 - w->busy0) / (total1 - w->total0) : 0);
        for (int i = 0; i < c1.n; i++) {
                double s0 = 0;
                for (int k = 0; k < w->cpu0.n; k++)
                        if (!strcmp(w->cpu0.name[k], c1.name[i]))
                                s0 = w->cpu0.secs[k];
                /* librdkafka's threads are rdk:*, exbus's own helpers exb:* */
                int helper = !strncmp(c1.name[i], "rdk:", 4) || !strncmp(c1.name[i], "exb:", 4);
                if (c1.secs[i] - s0 > 0.0005)
                        printf(" %s %.2f", helper ? c1.name[i] : "main",
                               (c1.secs[i] - s0) * 1e6 / records);
        }
        printf("\n");
}

static void window_rss(const window_t *w, run_t *r)
{
        r->rss_kib = status_kib("VmHWM:");
        r->grow_kib = r->rss_kib - w->rss0_kib;
}

/* ---------------------------------------------------------------- the runs */


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
        /* Stored batches of ~1 MB (see the header comment); -X comes after
         * and wins. */
        int np = b->nprops + 3;
        exb_kprop_t *props = exb_calloc((size_t)np, sizeof(*props));
        props[0] = (exb_kprop_t){"linger.ms", "200"};
        props[1] = (exb_kprop_t){"batch.num.messages", "10000"};
        props[2] = (exb_kprop_t){"batch.size", "1000000"};
        if (b->nprops)
                memcpy(props + 3, b->props, sizeof(*props) * (size_t)b->nprops);
        exb_producer_t *p =
                schema ? exb_producer_new(b->bs, props, np, count_dr, &failed, err, sizeof(err))
                       : NULL;
        free(props);
        if (!p) {
                fprintf(stderr, "exbus bench: %s\n", schema ? err : "sample resource missing");
                exb_schema_destroy(schema);
                exb_resource_destroy(res);
                return -1;
        }
        exb_topic_t *t = exb_producer_topic(p, BENCH_TOPIC);
        exb_buf_t enc;
        exb_buf_init(&enc, 1 << 20);
        size_t total = 0;
        for (int i = 0; i < b->n; i++) {
                exb_sample_person_rec_t r;
                exb_sample_person_record(i, "bench", &r);
                exb_buf_reset(&enc);
                if (exb_codec_encode(schema, &r.rec, &enc, err, sizeof(err)) != EXB_OK) {
                        fprintf(stderr, "exbus bench: encode: %s\n", err);
                        failed++;
                        break;
                }
                total += enc.len;
                while (exb_produce(p, t, -1, r.person.id_number, 18, enc.p, enc.len, NULL, 0, NULL,
                                   err, sizeof(err)) == EXB_ERR_RETRY)
                        exb_producer_poll(p, 10);
                exb_producer_poll(p, 0);
        }
        if (exb_producer_flush(p, 60000) != EXB_OK)
                failed++;
        exb_producer_destroy(p);
        exb_buf_free(&enc);
        exb_schema_destroy(schema);
        exb_resource_destroy(res);
        *avg_bytes = b->n ? total / (size_t)b->n : 0;
        return failed ? -1 : 0;
}

/* The raw ceiling: consume -> produce the same bytes as the router does,
 * minus the routing; offsets stored per batch. */
static run_t run_raw(bench_t *b, const char *group)
{
        char err[512];
        int failed = 0;
        run_t r = {0};
        window_t w = {0};
        window_prepare(&w);
        exb_consumer_t *c =
                exb_consumer_new(b->bs, group, b->props, b->nprops, NULL, err, sizeof(err));
        exb_producer_t *p = c ? exb_producer_new(b->bs, b->props, b->nprops, count_dr, &failed, err,
                                                 sizeof(err))
                              : NULL;
        const char *topics[] = {BENCH_PATTERN};
        if (!c || !p || exb_consumer_subscribe(c, topics, 1, err, sizeof(err))) {
                fprintf(stderr, "exbus bench: %s\n", err);
                exb_consumer_destroy(c);
                exb_producer_destroy(p);
                return r;
        }
        exb_topic_t *t = exb_producer_topic(p, BENCH_RAW_TOPIC);
        exb_msg_t *msgs = exb_calloc((size_t)b->batch, sizeof(*msgs));
        exb_out_t *outs = exb_calloc((size_t)b->batch, sizeof(*outs));
        int got = 0, first = -1;
        int64_t deadline = exb_mono_ms() + 120000;
        while (got < b->n && exb_mono_ms() < deadline) {
                int n = exb_consumer_poll(c, msgs, b->batch, 100, err, sizeof(err));
                if (n < 0) {
                        fprintf(stderr, "exbus bench: raw: %s\n", err);
                        break;
                }
                /* produced as the router produces its deliveries: a batch at a time */
                for (int i = 0; i < n; i++)
                        outs[i] = (exb_out_t){-1, msgs[i].key, msgs[i].key_len, msgs[i].value,
                                              msgs[i].len, NULL};
                if (exb_produce_batch(p, t, outs, n, err, sizeof(err)) != EXB_OK) {
                        fprintf(stderr, "exbus bench: raw: %s\n", err);
                        failed = 1;
                }
                if (n > 0)
                        exb_consumer_store(c, msgs[n - 1].topic, msgs[n - 1].partition,
                                           msgs[n - 1].offset + 1);
                for (int i = 0; i < n; i++)
                        exb_msg_release(&msgs[i]);
                exb_producer_poll(p, 0);
                got += n;
                if (n > 0 && first < 0) {
                        first = got;
                        window_start(&w);
                }
        }
        if (got == b->n && exb_producer_flush(p, 60000) == EXB_OK && !failed)
                window_end(b, &w, got - first, &r);
        else
                fprintf(stderr, "exbus bench: raw: %d of %d records passed through\n", got, b->n);
        window_rss(&w, &r);
        free(msgs);
        free(outs);
        exb_consumer_destroy(c);
        exb_producer_destroy(p);
        return r;
}

/* The router over the same records, with a fresh group. */
static run_t run_router(bench_t *b, const char *group)
{
        run_t r = {0};
        window_t w = {0};
        exb_router_conf_t conf = {0};
        exb_conf_defaults(exb_router_props, &conf);
        conf.brokers = exb_strdup(b->bs);
        free(conf.data_dir);
        conf.data_dir = exb_strdup(b->tmpdir);
        free(conf.group_id);
        conf.group_id = exb_strdup(group);
        conf.batch_size = b->batch;
        conf.partitions = b->partitions;
        char err[512];
        for (int i = 0; i < b->nprops + b->nrprops; i++) {
                char kv[1024];
                if (i < b->nprops)
                        snprintf(kv, sizeof(kv), "kafka.%s=%s", b->props[i].name,
                                 b->props[i].value);
                else
                        snprintf(kv, sizeof(kv), "%s", b->rprops[i - b->nprops]);
                if (exb_conf_set_arg(exb_router_props, &conf, kv, "-X/--router", err,
                                     sizeof(err))) {
                        fprintf(stderr, "exbus bench: %s\n", err);
                        exb_conf_free(exb_router_props, &conf);
                        return r;
                }
        }
        window_prepare(&w);
        exb_router_t *rtr = exb_router_new(&conf, err, sizeof(err));
        if (!rtr) {
                fprintf(stderr, "exbus bench: %s\n", err);
                exb_conf_free(exb_router_props, &conf);
                return r;
        }
        int got = 0, first = -1;
        int64_t deadline = exb_mono_ms() + 120000;
        while (got < b->n && exb_mono_ms() < deadline) {
                int n = exb_router_poll(rtr, 100, err, sizeof(err));
                if (n < 0) {
                        fprintf(stderr, "exbus bench: router: %s\n", err);
                        break;
                }
                got += n;
                if (n > 0 && first < 0) {
                        first = got;
                        window_start(&w);
                }
        }
        if (got == b->n && exb_router_drain(rtr, 60000, err, sizeof(err)) == 0)
                window_end(b, &w, got - first, &r);
        else
                fprintf(stderr, "exbus bench: router: %d of %d records routed\n", got, b->n);
        window_rss(&w, &r);
        exb_router_destroy(rtr);
        exb_conf_free(exb_router_props, &conf);
        return r;
}

static int approve(bench_t *b, const char *subscriber, const char *items, const char *mask,
                   const char *filter)
{
        char **v, id[32], err[512];
        int n = exb_cli_split(items, &v);
        exb_sub_request_t req = {.subscriber = subscriber,
                                 .resource = "370600-GA-0001",
                                 .purpose = "benchmark",
                                 .items = (const char *const *)v,
                                 .nitems = n};
        const char *masks[] = {mask};
        exb_sub_decision_t dec = {
                .state = EXB_SUB_APPROVED, .mask_specs = masks, .nmasks = 1, .filter = filter};
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

/* ------------------------------------------------------------------ report */

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* Median of field `off` (a double) of the k runs; lo/hi get the extremes. */
static double median(const run_t *runs, int k, size_t off, double *lo, double *hi)
{
        double v[BENCH_MAX_RUNS];
        for (int i = 0; i < k; i++)
                v[i] = *(const double *)((const char *)&runs[i] + off);
        qsort(v, (size_t)k, sizeof(double), cmp_double);
        if (lo)
                *lo = v[0];
        if (hi)
                *hi = v[k - 1];
        return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/* Prints one line; returns the median rate, or 0 if a run failed. */
static double report(const char *what, const run_t *runs, int k, double raw)
{
        double lo, hi;
        double med = median(runs, k, offsetof(run_t, rate), &lo, &hi);
        double mc = median(runs, k, offsetof(run_t, main_cpu), NULL, NULL);
        double cores = median(runs, k, offsetof(run_t, cores), NULL, NULL);
        double others = median(runs, k, offsetof(run_t, others), NULL, NULL);
        long rss = 0, grow = 0;
        for (int i = 0; i < k; i++) {
                rss = runs[i].rss_kib > rss ? runs[i].rss_kib : rss;
                grow = runs[i].grow_kib > grow ? runs[i].grow_kib : grow;
        }
        printf("  %-26s %9.0f (%8.0f..%8.0f)", what, med, lo, hi);
        if (raw > 0)
                printf("  %.2f", med / raw);
        else
                printf("      ");
        printf("   %3.0f%%  %4.2f  %4.2f  %5ld MiB (+%ld)\n", mc * 100, cores, others, rss / 1024,
               grow / 1024);
        fflush(stdout);
        return lo > 0 ? med : 0;
}

/* Alternates raw and router runs; prints the medians; 0 if all ran. */
static int phase(bench_t *b, int nsubs)
{
        run_t raw[BENCH_MAX_RUNS] = {{0}}, rtr[BENCH_MAX_RUNS] = {{0}};
        char what[64];
        snprintf(what, sizeof(what), "router, %d subscription%s", nsubs, nsubs > 1 ? "s" : "");
        for (int i = 0; i < b->runs; i++) {
                char group[64];
                if (b->kinds & 1) {
                        if (b->verbose)
                                printf("    run %d raw\n", i + 1);
                        snprintf(group, sizeof(group), "bench-raw-%d-%d", nsubs, i);
                        raw[i] = run_raw(b, group);
                }
                if (b->kinds & 2) {
                        if (b->verbose)
                                printf("    run %d %s\n", i + 1, what);
                        snprintf(group, sizeof(group), "bench-router-%d-%d", nsubs, i);
                        rtr[i] = run_router(b, group);
                }
        }
        double raw_med = 0, rtr_med = 0;
        if (b->kinds & 1)
                raw_med = report("raw pass-through (ceiling)", raw, b->runs, 0);
        if (b->kinds & 2)
                rtr_med = report(what, rtr, b->runs, raw_med);
        return ((b->kinds & 1) && raw_med <= 0) || ((b->kinds & 2) && rtr_med <= 0) ? -1 : 0;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: exbus bench [--records N] [--partitions P] [--runs R] [--batch B]\n"
                "                   [--only raw|router] [-v] [-X kafka.property=value ...]\n"
                "                   [--router property=value ...] [-b SCRATCH_KAFKA]\n"
                "  N >= 1000 (default 400000) and N/P <= %d: the embedded broker keeps ~5 MiB\n"
                "  per partition; P default 32; R 1..%d (default 5); B 1..100000 (default 2000).\n"
                "  -b: a real Kafka instead of the embedded broker, with an empty ingest topic.\n",
                BENCH_MAX_PER_PARTITION, BENCH_MAX_RUNS);
}

/* Adds "name=value" (an optional "kafka." prefix is dropped) to b->props;
 * the strings stay borrowed from argv. */
static int add_prop(bench_t *b, char *arg)
{
        char *eq = strchr(arg, '=');
        if (!eq || eq == arg)
                return -1;
        *eq = '\0';
        if (!strncmp(arg, "kafka.", 6))
                arg += 6;
        b->props = exb_realloc(b->props, sizeof(*b->props) * (size_t)(b->nprops + 1));
        b->props[b->nprops++] = (exb_kprop_t){arg, eq + 1};
        return 0;
}

/* The ingest topic must start empty on a real Kafka: the runs read it all. */
static int ingest_empty(bench_t *b)
{
        char err[512];
        exb_consumer_t *c = exb_consumer_new(b->bs, NULL, NULL, 0, NULL, err, sizeof(err));
        int64_t lo, hi, held = 0;
        for (int p = 0; c && p < b->partitions; p++)
                if (exb_consumer_watermarks(c, BENCH_TOPIC, p, &lo, &hi, 10000) == EXB_OK)
                        held += hi - lo;
        exb_consumer_destroy(c);
        if (held)
                fprintf(stderr, "exbus bench: %s already holds %lld records: use a scratch Kafka\n",
                        BENCH_TOPIC, (long long)held);
        return held == 0;
}

int exb_cmd_bench(exb_cli_t *cli, int argc, char **argv)
{
        static const struct option opts[] = {
            {"records", 1, 0, 'n'}, {"partitions", 1, 0, 'p'}, {"runs", 1, 0, 'r'},
            {"batch", 1, 0, 'B'},   {"only", 1, 0, 'o'},       {"kafka", 1, 0, 'X'},
            {"router", 1, 0, 'R'},  {"verbose", 0, 0, 'v'},    {0}};
        bench_t b = {.n = 400000, .partitions = 32, .batch = 2000, .runs = 5, .kinds = 3};
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "X:v", opts, NULL)) != -1) {
                if (c == 'n')
                        b.n = atoi(optarg);
                else if (c == 'p')
                        b.partitions = atoi(optarg);
                else if (c == 'r')
                        b.runs = atoi(optarg);
                else if (c == 'B')
                        b.batch = atoi(optarg);
                else if (c == 'v')
                        b.verbose = 1;
                else if (c == 'o' && (!strcmp(optarg, "raw") || !strcmp(optarg, "router")))
                        b.kinds = optarg[1] == 'a' ? 1 : 2;
                else if (c == 'R') {
                        b.rprops = exb_realloc(b.rprops, sizeof(char *) * (size_t)(b.nrprops + 1));
                        b.rprops[b.nrprops++] = optarg;
                }
                else if (c != 'X' || add_prop(&b, optarg)) {
                        usage();
                        free(b.props);
                        return 2;
                }
        }
        if (optind < argc || b.n < 1000 || b.partitions < 1 || b.partitions > 1024 ||
            (!cli->brokers && b.n / b.partitions > BENCH_MAX_PER_PARTITION) || b.runs < 1 || b.runs > BENCH_MAX_RUNS ||
            b.batch < 1 || b.batch > 100000) {
                usage();
                free(b.props);
                free(b.rprops);
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
        b.embedded = !cli->brokers;
        if (!mkdtemp(b.tmpdir) || (b.embedded && !(emb = exb_embedded_new(1, err, sizeof(err))))) {
                fprintf(stderr, "exbus bench: cannot start: %s\n", b.embedded ? err : "temp dir");
                free(b.props);
                free(b.rprops);
                return 1;
        }
        b.bs = b.embedded ? exb_embedded_bootstraps(emb) : cli->brokers;
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
        if (!b.embedded && !ingest_empty(&b))
                goto done;
        size_t avg;
        printf("exbus bench: %d records of 370600-GA-0001 over %d partitions, batch %d, "
               "%d runs each, %s\n",
               b.n, b.partitions, b.batch, b.runs, b.embedded ? "embedded broker" : b.bs);
        for (int i = 0; i < b.nprops; i++)
                printf("  -X %s=%s\n", b.props[i].name, b.props[i].value);
        for (int i = 0; i < b.nrprops; i++)
                printf("  --router %s\n", b.rprops[i]);
        int64_t t0 = exb_mono_ms();
        if (preload(&b, &avg))
                goto done;
        printf("  preload (encode + produce)  %9.0f records/s, %zu bytes/record\n",
               b.n / ((double)(exb_mono_ms() - t0 + 1) / 1000.0), avg);
        printf("  %-26s %9s %19s  %5s   %4s  %5s %5s  %s\n", "", "median/s", "(min..max)", "ratio",
               "main", "cores", "other", "peak RSS (growth)");
        fflush(stdout);
        if (phase(&b, 1))
                goto done;
        if (approve(&b, "RS", "id_number,name,birth_date,region", "name=hash", NULL) ||
            approve(&b, "MZ", "id_number,name,address,region", "id_number=partial:6:4",
                    "region == \"370602\""))
                goto done;
        ensure_topics(&b);
        if (phase(&b, 3))
                goto done;
        rc = 0;
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
        free(b.props);
        free(b.rprops);
        return rc;
}
