/*
 * test_sink_jsonl.c — the JSONL sink (consumers/exb_sink_jsonl.c): what a
 * line holds, rotation by size and by age (.part -> .jsonl), offsets kept
 * beside the files, recovery after a kill (uncommitted bytes cut, unknown
 * .part files removed, nothing lost or doubled), replays skipped, a failed
 * write retried, dead letters, the directory lock.
 *
 * Every test works in a fresh temporary directory: out/ (sink.path) and
 * data/ (data.dir).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "exb_catalog.h"
#include "exb_control.h"
#include "exb_schema.h"
#include "exb_sink.h"

#define P1    "370600-GA-0001"
#define TOPIC "exb.deliver.RS." P1

static const char *catalog_text =
        "{\"departments\": [{\"code\": \"GA\", \"name\": \"市公安局\"}],"
        " \"resources\": ["
        "  {\"code\": \"" P1 "\", \"name\": \"人口基本信息\", \"provider\": \"GA\","
        "   \"share_type\": \"unconditional\", \"key\": [\"id_number\"], \"items\": ["
        "    {\"name\": \"id_number\", \"type\": \"C\", \"required\": true},"
        "    {\"name\": \"name\", \"type\": \"C\"},"
        "    {\"name\": \"birth_date\", \"type\": \"D\"}]}]}";

static char tmpdir[64], out[128], datadir[128], resdir[192];

static int setup(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/exb-test-jsonl-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(out, sizeof(out), "%s/out", tmpdir);
        snprintf(datadir, sizeof(datadir), "%s/data", tmpdir);
        snprintf(resdir, sizeof(resdir), "%s/%s", out, P1);
        mkdir(datadir, 0755);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- fixture */

typedef struct {
        exb_catalog_t *cat;
        exb_schema_t *schema;
        void *conf;
        void *sink;
        /* one batch */
        int n;
        exb_sink_rec_t recs[64];
        exb_record_t records[64];
        exb_val_t vals[64][3];
        char ids[64][32], names[64][32];
        exb_sink_pos_t pos[2];
        int npos;
} fx_t;

static void *conf_new(const char *rotate_bytes, const char *rotate_seconds)
{
        char es[256] = "";
        void *conf = calloc(1, exb_sink_jsonl.conf_size);
        exb_conf_defaults(exb_sink_jsonl.props, conf);
        assert_int_equal(
                exb_conf_set(exb_sink_jsonl.props, conf, "sink.path", out, "t", es, sizeof(es)), 0);
        if (rotate_bytes)
                assert_int_equal(exb_conf_set(exb_sink_jsonl.props, conf, "sink.rotate.bytes",
                                              rotate_bytes, "t", es, sizeof(es)),
                                 0);
        if (rotate_seconds)
                assert_int_equal(exb_conf_set(exb_sink_jsonl.props, conf, "sink.rotate.seconds",
                                              rotate_seconds, "t", es, sizeof(es)),
                                 0);
        return conf;
}

static void *sink_open(fx_t *fx, const char *cluster, char *es, size_t es_size)
{
        exb_sink_env_t env = {"RS", datadir, cluster};
        return exb_sink_jsonl.open(fx->conf, &env, es, es_size);
}

static void fx_init(fx_t *fx, const char *rotate_bytes, const char *rotate_seconds)
{
        char es[512] = "";
        memset(fx, 0, sizeof(*fx));
        fx->cat =
                exb_catalog_parse("c", catalog_text, strlen(catalog_text), NULL, 0, es, sizeof(es));
        assert_non_null(fx->cat);
        fx->schema = exb_resource_schema(exb_catalog_resource(fx->cat, P1), es, sizeof(es));
        assert_non_null(fx->schema);
        fx->schema->id = 7;
        fx->conf = conf_new(rotate_bytes, rotate_seconds);
        fx->sink = sink_open(fx, "cluster-A", es, sizeof(es));
        if (!fx->sink)
                print_error("%s\n", es);
        assert_non_null(fx->sink);
}

static void fx_close(fx_t *fx)
{
        exb_sink_jsonl.close(fx->sink);
        exb_conf_free(exb_sink_jsonl.props, fx->conf);
        free(fx->conf);
        exb_schema_destroy(fx->schema);
        exb_catalog_destroy(fx->cat);
}

/* Adds record at offset off of partition 0 (name: "n<off>"). */
static void add(fx_t *fx, int32_t partition, int64_t off, exb_op_t op)
{
        int i = fx->n++;
        snprintf(fx->ids[i], sizeof(fx->ids[i]), "3706%014lld", (long long)off);
        snprintf(fx->names[i], sizeof(fx->names[i]), "张%lld", (long long)off);
        fx->vals[i][0] = (exb_val_t){0, .u.s = exb_str(fx->ids[i])};
        fx->vals[i][1] = (exb_val_t){0, .u.s = exb_str(fx->names[i])};
        fx->vals[i][2] = (exb_val_t){0, .u.i = 7305};
        fx->records[i] = (exb_record_t){op, exb_str(fx->ids[i]), EXB_STR("GA"), 1768465800000LL,
                                        3,  fx->vals[i]};
        fx->recs[i] = (exb_sink_rec_t){.topic = TOPIC,
                                       .partition = partition,
                                       .offset = off,
                                       .value = "x",
                                       .len = 1,
                                       .resource = P1,
                                       .schema = fx->schema,
                                       .rec = &fx->records[i]};
        int k;
        for (k = 0; k < fx->npos; k++)
                if (fx->pos[k].partition == partition)
                        break;
        if (k == fx->npos)
                fx->pos[fx->npos++] = (exb_sink_pos_t){TOPIC, partition, 0};
        fx->pos[k].next_offset = off + 1;
}

static exb_err_t write_batch(fx_t *fx, exb_sink_result_t *res)
{
        char es[512] = "";
        exb_sink_batch_t b = {fx->n, fx->recs, fx->npos, fx->pos};
        memset(res, 0, sizeof(*res));
        exb_err_t e = exb_sink_jsonl.write(fx->sink, &b, res, es, sizeof(es));
        fx->n = fx->npos = 0;
        if (e != EXB_OK)
                print_message("write: %s\n", es);
        return e;
}

/* Writes offsets [from, to) of partition 0 as one batch; must succeed. */
static void write_range(fx_t *fx, int64_t from, int64_t to)
{
        for (int64_t o = from; o < to; o++)
                add(fx, 0, o, EXB_OP_CREATE);
        exb_sink_result_t res;
        assert_int_equal(write_batch(fx, &res), EXB_OK);
}

typedef struct {
        int complete, part;
        int lines;
        int64_t offsets[4096];
        int64_t min_complete_bytes;
        char part_name[256];
} scan_t;

/* Reads every file of the resource directory. */
static void scan(scan_t *s)
{
        memset(s, 0, sizeof(*s));
        s->min_complete_bytes = INT64_MAX;
        DIR *d = opendir(resdir);
        if (!d)
                return;
        struct dirent *de;
        char names[256][256];
        int n = 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && n < 256)
                        snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
        closedir(d);
        qsort(names, (size_t)n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
        for (int i = 0; i < n; i++) {
                size_t len = strlen(names[i]);
                int part = len > 5 && !strcmp(names[i] + len - 5, ".part");
                if (part) {
                        s->part++;
                        snprintf(s->part_name, sizeof(s->part_name), "%s", names[i]);
                } else {
                        assert_int_equal(strcmp(names[i] + len - 6, ".jsonl"), 0);
                        assert_int_equal(strncmp(names[i], P1 "-", strlen(P1) + 1), 0);
                        s->complete++;
                }
                char p[512];
                snprintf(p, sizeof(p), "%s/%s", resdir, names[i]);
                FILE *f = fopen(p, "r");
                assert_non_null(f);
                char line[4096];
                int64_t bytes = 0;
                while (fgets(line, sizeof(line), f)) {
                        bytes += (int64_t)strlen(line);
                        json_error_t jerr;
                        json_t *j = json_loads(line, 0, &jerr);
                        if (!j)
                                print_error("%s: %s: %s\n", names[i], jerr.text, line);
                        assert_non_null(j);
                        assert_string_equal(json_string_value(json_object_get(j, "topic")), TOPIC);
                        s->offsets[s->lines++] = json_integer_value(json_object_get(j, "offset"));
                        json_decref(j);
                }
                fclose(f);
                if (!part && bytes < s->min_complete_bytes)
                        s->min_complete_bytes = bytes;
        }
}

/* Every offset in [0, n) exactly once, in order. */
static void assert_exactly(const scan_t *s, int n)
{
        if (s->lines != n)
                print_error("%d lines, want %d\n", s->lines, n);
        assert_int_equal(s->lines, n);
        for (int i = 0; i < n; i++)
                assert_int_equal(s->offsets[i], i);
}

/* ------------------------------------------------------------------ tests */

static void test_lines(void **state)
{
        (void)state;
        fx_t fx;
        fx_init(&fx, NULL, NULL);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 0, 100), EXB_OFFSET_BEGINNING);
        add(&fx, 0, 0, EXB_OP_CREATE);
        add(&fx, 0, 1, EXB_OP_UPDATE);
        add(&fx, 1, 5, EXB_OP_DELETE);
        exb_sink_result_t res;
        assert_int_equal(write_batch(&fx, &res), EXB_OK);
        assert_int_equal(res.upserts, 2);
        assert_int_equal(res.deletes, 1);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 0, 100), 2);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 1, 100), 6);
        scan_t s;
        scan(&s);
        assert_int_equal(s.part, 1); /* not complete yet: downstream sees nothing */
        assert_int_equal(s.complete, 0);
        assert_int_equal(s.lines, 3);
        /* The first line, in full. */
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", resdir, s.part_name);
        FILE *f = fopen(p, "r");
        char line[1024];
        assert_non_null(fgets(line, sizeof(line), f));
        fclose(f);
        assert_string_equal(line, "{\"topic\":\"" TOPIC "\",\"partition\":0,\"offset\":0,"
                                  "\"op\":\"CREATE\",\"event_id\":\"370600000000000000\","
                                  "\"source\":\"GA\",\"ts_ms\":1768465800000,\"data\":{"
                                  "\"id_number\":\"370600000000000000\",\"name\":\"张0\","
                                  "\"birth_date\":\"1990-01-01\"}}\n");
        /* A clean stop completes the file. */
        fx_close(&fx);
        scan(&s);
        assert_int_equal(s.part, 0);
        assert_int_equal(s.complete, 1);
        assert_int_equal(s.lines, 3);
        /* The offsets survive the restart. */
        fx_init(&fx, NULL, NULL);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 0, 100), 2);
        /* Beyond the partition's end (recreated topic): from the beginning. */
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 1, 3), EXB_OFFSET_BEGINNING);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 1, 100), EXB_OFFSET_BEGINNING);
        fx_close(&fx);
        /* Offsets of another Kafka cluster are forgotten. */
        char es[256];
        fx_init(&fx, NULL, NULL);
        exb_sink_jsonl.close(fx.sink);
        fx.sink = sink_open(&fx, "cluster-B", es, sizeof(es));
        assert_non_null(fx.sink);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 0, 100), EXB_OFFSET_BEGINNING);
        fx_close(&fx);
}

static void test_rotate_bytes(void **state)
{
        (void)state;
        fx_t fx;
        fx_init(&fx, "1024", "0");
        /* ~200-byte lines, batches of 3: a file is completed at the first
         * batch boundary at or past 1024 bytes. */
        for (int64_t o = 0; o < 60; o += 3)
                write_range(&fx, o, o + 3);
        scan_t s;
        scan(&s);
        assert_exactly(&s, 60);
        assert_true(s.complete >= 9);
        assert_true(s.min_complete_bytes >= 1024);
        assert_true(s.part <= 1);
        fx_close(&fx);
        scan(&s);
        assert_exactly(&s, 60);
        assert_int_equal(s.part, 0);
}

static void test_rotate_seconds(void **state)
{
        (void)state;
        fx_t fx;
        fx_init(&fx, NULL, "1");
        write_range(&fx, 0, 2);
        exb_sink_jsonl.tick(fx.sink);
        scan_t s;
        scan(&s);
        assert_int_equal(s.part, 1);
        usleep(1100 * 1000);
        exb_sink_jsonl.tick(fx.sink); /* no records needed */
        scan(&s);
        assert_int_equal(s.part, 0);
        assert_int_equal(s.complete, 1);
        write_range(&fx, 2, 3); /* a new file */
        scan(&s);
        assert_int_equal(s.part, 1);
        assert_exactly(&s, 3);
        fx_close(&fx);
}

/* A consumer killed between batches (the child exits without closing),
 * then a batch that was written but not committed (bytes appended after
 * the committed size) and a .part file of a batch never committed: the
 * restart cuts and removes them, reads from the stored offset, and every
 * record ends up in the files exactly once. */
static void test_crash_recovery(void **state)
{
        (void)state;
        fx_t fx;
        fx_init(&fx, "1024", "0");
        exb_sink_jsonl.close(fx.sink);
        fx.sink = NULL;
        pid_t pid = fork();
        if (pid == 0) {
                char es[256];
                fx.sink = sink_open(&fx, "cluster-A", es, sizeof(es));
                for (int64_t o = 0; o < 20; o += 4)
                        write_range(&fx, o, o + 4);
                _exit(0); /* like kill -9: no close */
        }
        int status;
        waitpid(pid, &status, 0);
        assert_int_equal(WEXITSTATUS(status), 0);
        scan_t s;
        scan(&s);
        assert_exactly(&s, 20);
        assert_int_equal(s.part, 1);
        /* Half a batch after the commit, and an orphan .part. */
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", resdir, s.part_name);
        FILE *f = fopen(p, "a");
        fputs("{\"topic\":\"" TOPIC "\",\"partition\":0,\"offset\":20}\n{\"topic\":", f);
        fclose(f);
        snprintf(p, sizeof(p), "%s/%s-20990101T000000.000Z.jsonl.part", resdir, P1);
        f = fopen(p, "w");
        fputs("{\"partial\":", f);
        fclose(f);

        char es[256] = "";
        fx.sink = sink_open(&fx, "cluster-A", es, sizeof(es));
        assert_non_null(fx.sink);
        scan(&s);
        assert_exactly(&s, 20);
        assert_int_equal(s.part, 1);
        int64_t from = exb_sink_jsonl.offset(fx.sink, TOPIC, 0, -1);
        assert_int_equal(from, 20);
        /* The consumer re-reads from a little earlier (a stale prefetch):
         * what the files have is skipped. */
        for (int64_t o = 17; o < 30; o++)
                add(&fx, 0, o, EXB_OP_CREATE);
        exb_sink_result_t res;
        assert_int_equal(write_batch(&fx, &res), EXB_OK);
        assert_int_equal(res.replays, 3);
        assert_int_equal(res.upserts, 10);
        fx_close(&fx);
        scan(&s);
        assert_exactly(&s, 30);
        assert_int_equal(s.part, 0);
}

/* A write that fails leaves nothing behind; the retry writes it once. */
static void test_write_failure(void **state)
{
        (void)state;
        fx_t fx;
        fx_init(&fx, NULL, NULL);
        write_range(&fx, 0, 3);
        fx_close(&fx);
        /* Stop the resource directory from being usable: a file in its place. */
        char moved[256];
        snprintf(moved, sizeof(moved), "%s.away", resdir);
        assert_int_equal(rename(resdir, moved), 0);
        FILE *f = fopen(resdir, "w");
        fclose(f);
        fx_init(&fx, NULL, NULL);
        for (int64_t o = 3; o < 6; o++)
                add(&fx, 0, o, EXB_OP_CREATE);
        exb_sink_result_t res;
        assert_int_equal(write_batch(&fx, &res), EXB_ERR_RETRY);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 0, -1), 3);
        unlink(resdir);
        assert_int_equal(rename(moved, resdir), 0);
        write_range(&fx, 3, 6);
        fx_close(&fx);
        scan_t s;
        scan(&s);
        assert_exactly(&s, 6);
}

static void test_dead_letters_and_lock(void **state)
{
        (void)state;
        fx_t fx;
        fx_init(&fx, NULL, NULL);
        add(&fx, 0, 0, EXB_OP_CREATE);
        add(&fx, 0, 1, EXB_OP_CREATE);
        fx.recs[1].error = "unknown schema id 99";
        fx.recs[1].schema = NULL;
        fx.recs[1].rec = NULL;
        exb_sink_result_t res;
        assert_int_equal(write_batch(&fx, &res), EXB_OK);
        assert_int_equal(res.upserts, 1);
        assert_int_equal(res.dead_letters, 1);
        assert_int_equal(exb_sink_jsonl.offset(fx.sink, TOPIC, 0, -1), 2);
        sqlite3 *db;
        char p[256];
        snprintf(p, sizeof(p), "%s/consumer-RS-dlq.db", datadir);
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT offset, reason FROM exb_dead_letters", -1,
                                            &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 1);
        assert_string_equal((const char *)sqlite3_column_text(st, 1), "unknown schema id 99");
        sqlite3_finalize(st);
        sqlite3_close(db);

        /* A second consumer on the same directory is refused. */
        char es[256] = "";
        fx_t other = fx;
        assert_null(sink_open(&other, "cluster-A", es, sizeof(es)));
        assert_non_null(strstr(es, "used by another consumer"));
        fx_close(&fx);
        scan_t s;
        scan(&s);
        assert_exactly(&s, 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_seconds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_recovery, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dead_letters_and_lock, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
