/*
 * test_control.c — the control plane (exchange-core/exb_control.c) on an
 * embedded broker hosted in this process.
 *
 * Covers: importing the sample catalog twice writes nothing the second time;
 * schema ids are the offsets of the schema records; two writers holding the
 * same state race and exactly one wins (compare-and-set on the log), the
 * loser is told and the winner's state is re-asserted as the key's last
 * record; a second replica converges to the same state; a cache file written
 * against another cluster is rebuilt; an approval past its end date is
 * expired and inactive; illegal transitions are refused.
 */
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
#include "exb_control.h"
#include "exb_kafka.h"

#include <sqlite3.h>

static char *read_file(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        buf[n] = '\0';
        fclose(f);
        *len = (size_t)n;
        return buf;
}

/* A fresh embedded cluster with exb.control and the sample catalog imported. */
static exb_embedded_t *cluster(exb_control_t **ctl, const char *cache)
{
        char err[1024];
        exb_embedded_t *emb = exb_embedded_new(1, err, sizeof(err));
        assert_non_null(emb);
        exb_topic_spec_t spec = {EXB_CONTROL_TOPIC, 1, 1};
        assert_int_equal(exb_admin_ensure_topics(exb_embedded_bootstraps(emb), NULL, 0, &spec, 1,
                                                 10000, err, sizeof(err)),
                         EXB_OK);
        *ctl = exb_control_new(exb_embedded_bootstraps(emb), NULL, 0, cache, 10000, err,
                               sizeof(err));
        if (!*ctl)
                fail_msg("%s", err);
        return emb;
}

static void import_sample(exb_control_t *ctl)
{
        size_t len;
        char err[1024];
        char *text = read_file("../../ops/examples/catalog.json", &len);
        exb_catalog_t *cat = exb_catalog_parse("catalog.json", text, len, NULL, 0, err, sizeof(err));
        assert_non_null(cat);
        if (exb_control_import(ctl, cat, NULL, NULL, err, sizeof(err)) != EXB_OK)
                fail_msg("%s", err);
        exb_catalog_destroy(cat);
        free(text);
}

static void test_import_idempotent_and_schema_ids(void **state)
{
        (void)state;
        exb_control_t *ctl;
        exb_embedded_t *emb = cluster(&ctl, NULL);
        import_sample(ctl);
        int64_t lo, hi;
        exb_consumer_t *c = exb_consumer_new(exb_embedded_bootstraps(emb), NULL, NULL, 0, NULL, NULL, 0);
        assert_int_equal(exb_consumer_watermarks(c, EXB_CONTROL_TOPIC, 0, &lo, &hi, 5000), EXB_OK);
        import_sample(ctl); /* the same file again */
        int64_t hi2;
        assert_int_equal(exb_consumer_watermarks(c, EXB_CONTROL_TOPIC, 0, &lo, &hi2, 5000), EXB_OK);
        assert_int_equal(hi, hi2); /* nothing written */

        /* The schema id is the offset of its record: read that record back. */
        int32_t sid;
        exb_resource_t *res = exb_control_resource(ctl, "370600-GA-0001", &sid);
        assert_non_null(res);
        char err[256];
        exb_consumer_t *rd = exb_consumer_new(exb_embedded_bootstraps(emb), NULL, NULL, 0, NULL, err,
                                              sizeof(err));
        assert_int_equal(exb_consumer_assign(rd, EXB_CONTROL_TOPIC, 0, sid, err, sizeof(err)), EXB_OK);
        exb_msg_t m;
        int n = 0;
        for (int i = 0; i < 50 && n == 0; i++)
                n = exb_consumer_poll(rd, &m, 1, 100, err, sizeof(err));
        assert_int_equal(n, 1);
        assert_int_equal(m.offset, sid);
        assert_true(m.key_len > 7 && !memcmp(m.key, "schema/resource:370600-GA-0001/", 31));
        exb_msg_release(&m);
        exb_consumer_destroy(rd);
        exb_consumer_destroy(c);
        exb_resource_destroy(res);
        exb_control_destroy(ctl);
        exb_embedded_destroy(emb);
}

static void import_text(exb_control_t *ctl, const char *text)
{
        char err[1024];
        exb_catalog_t *cat = exb_catalog_parse("t.json", text, strlen(text), NULL, 0, err, sizeof(err));
        if (!cat)
                fail_msg("%s", err);
        if (exb_control_import(ctl, cat, NULL, NULL, err, sizeof(err)) != EXB_OK)
                fail_msg("%s", err);
        exb_catalog_destroy(cat);
}

/* "node": true is kept, importing it again (or without "node") writes
 * nothing, "node": false is a change; a cache of another layout
 * (user_version) is rebuilt with it. */
static void test_department_node(void **state)
{
        (void)state;
        exb_control_t *ctl;
        exb_embedded_t *emb = cluster(&ctl, NULL);
        const char *node = "{\"departments\":[{\"code\":\"370602\",\"name\":\"区节点\",\"node\":true}]}";
        import_text(ctl, node);
        assert_int_equal(exb_control_dept_node(ctl, "370602"), 1);
        assert_int_equal(exb_control_dept_node(ctl, "GA"), 0);
        int64_t lo, hi, hi2;
        exb_consumer_t *c = exb_consumer_new(exb_embedded_bootstraps(emb), NULL, NULL, 0, NULL, NULL, 0);
        assert_int_equal(exb_consumer_watermarks(c, EXB_CONTROL_TOPIC, 0, &lo, &hi, 5000), EXB_OK);
        import_text(ctl, node);
        assert_int_equal(exb_consumer_watermarks(c, EXB_CONTROL_TOPIC, 0, &lo, &hi2, 5000), EXB_OK);
        assert_int_equal(hi, hi2);
        /* a file that does not say keeps the mark: nothing written */
        import_text(ctl, "{\"departments\":[{\"code\":\"370602\",\"name\":\"区节点\"}]}");
        assert_int_equal(exb_consumer_watermarks(c, EXB_CONTROL_TOPIC, 0, &lo, &hi2, 5000), EXB_OK);
        assert_int_equal(hi, hi2);
        assert_int_equal(exb_control_dept_node(ctl, "370602"), 1);
        import_text(ctl, "{\"departments\":[{\"code\":\"370602\",\"name\":\"区节点\",\"node\":false}]}");
        assert_int_equal(exb_control_dept_node(ctl, "370602"), 0);
        import_text(ctl, node);

        /* A cache file of the previous layout (no departments.node) */
        char path[] = "/tmp/exb-test-cache-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "CREATE TABLE departments(code TEXT PRIMARY KEY, name TEXT, "
                                      "offset INTEGER); CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT);",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        char err[256];
        exb_control_t *old = exb_control_new(exb_embedded_bootstraps(emb), NULL, 0, path, 5000, err,
                                             sizeof(err));
        if (!old)
                fail_msg("%s", err);
        assert_int_equal(exb_control_sync(old, 5000, err, sizeof(err)), EXB_OK);
        assert_int_equal(exb_control_dept_node(old, "370602"), 1);
        exb_control_destroy(old);
        unlink(path);
        char wal[64];
        snprintf(wal, sizeof(wal), "%s-wal", path);
        unlink(wal);
        snprintf(wal, sizeof(wal), "%s-shm", path);
        unlink(wal);
        exb_consumer_destroy(c);
        exb_control_destroy(ctl);
        exb_embedded_destroy(emb);
}

static void test_cas_conflict(void **state)
{
        (void)state;
        char err[1024], id[32];
        exb_control_t *a;
        exb_embedded_t *emb = cluster(&a, NULL);
        import_sample(a);
        const char *items[] = {"id_number", "name", "region"};
        exb_sub_request_t req = {.subscriber = "GJJ", .resource = "370600-GA-0001",
                                 .purpose = "test", .items = items, .nitems = 3};
        assert_int_equal(exb_control_sub_request(a, &req, 1, id, sizeof(id), err, sizeof(err)), EXB_OK);
        exb_control_t *b = exb_control_new(exb_embedded_bootstraps(emb), NULL, 0, NULL, 10000, err,
                                           sizeof(err));
        assert_non_null(b); /* b has seen the request */

        /* a approves with a mask; b, not yet aware of it, approves without. */
        const char *mask[] = {"id_number=hash"};
        exb_sub_decision_t da = {.state = EXB_SUB_APPROVED, .mask_specs = mask, .nmasks = 1};
        exb_sub_decision_t db = {.state = EXB_SUB_APPROVED};
        assert_int_equal(exb_control_sub_decide(a, id, &da, err, sizeof(err)), EXB_OK);
        assert_int_equal(exb_control_sub_decide(b, id, &db, err, sizeof(err)), EXB_ERR_RETRY);
        assert_non_null(strstr(err, "changed by another writer"));

        /* Both replicas, and a fresh one, agree: a's approval with its mask. */
        exb_control_t *c = exb_control_new(exb_embedded_bootstraps(emb), NULL, 0, NULL, 10000, err,
                                           sizeof(err));
        exb_control_t *all[] = {a, b, c};
        for (int i = 0; i < 3; i++) {
                exb_control_sync(all[i], 5000, err, sizeof(err));
                exb_sub_t *s = exb_control_sub(all[i], id);
                assert_non_null(s);
                assert_int_equal(s->state, EXB_SUB_APPROVED);
                assert_int_equal(s->masks[0].kind, EXB_MASK_HASH);
                exb_subs_free(s, 1);
        }
        /* A decision on the current state now goes through from b. */
        exb_sub_decision_t revoke = {.state = EXB_SUB_REVOKED, .reason = "test"};
        assert_int_equal(exb_control_sub_decide(b, id, &revoke, err, sizeof(err)), EXB_OK);
        exb_control_sync(a, 5000, err, sizeof(err));
        exb_sub_t *s = exb_control_sub(a, id);
        assert_int_equal(s->state, EXB_SUB_REVOKED);
        exb_subs_free(s, 1);
        /* Revoked is final. */
        assert_int_equal(exb_control_sub_decide(a, id, &db, err, sizeof(err)), EXB_ERR_INVALID);
        exb_control_destroy(c);
        exb_control_destroy(b);
        exb_control_destroy(a);
        exb_embedded_destroy(emb);
}

static void test_expiry(void **state)
{
        (void)state;
        char err[1024], id[32];
        exb_control_t *ctl;
        exb_embedded_t *emb = cluster(&ctl, NULL);
        import_sample(ctl);
        const char *items[] = {"credit_code", "name"};
        exb_sub_request_t req = {.subscriber = "RS", .resource = "370600-SC-0001", .purpose = "t",
                                 .items = items, .nitems = 2, .until = "2020-01-31"};
        assert_int_equal(exb_control_sub_request(ctl, &req, 1, id, sizeof(id), err, sizeof(err)), EXB_OK);
        exb_sub_t *s = exb_control_sub(ctl, id);
        assert_int_equal(s->state, EXB_SUB_EXPIRED); /* approved at once, but past its end */
        assert_false(exb_sub_active(s, exb_now_ms()));
        int64_t jan30 = (int64_t)18291 * 86400000; /* 2020-01-30 */
        s->state = EXB_SUB_APPROVED;
        assert_true(exb_sub_active(s, jan30));
        exb_subs_free(s, 1);
        exb_control_destroy(ctl);
        exb_embedded_destroy(emb);
}

static void test_cache_rebuilt_for_another_cluster(void **state)
{
        (void)state;
        char path[] = "/tmp/exb-test-control.XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        exb_control_t *ctl;
        exb_embedded_t *emb = cluster(&ctl, path);
        import_sample(ctl);
        exb_control_destroy(ctl);
        exb_embedded_destroy(emb);
        /* A new embedded broker: empty exb.control. The cache must not keep the old catalog. */
        emb = cluster(&ctl, path);
        exb_resource_t *res = exb_control_resource(ctl, "370600-GA-0001", NULL);
        assert_null(res);
        import_sample(ctl);
        res = exb_control_resource(ctl, "370600-GA-0001", NULL);
        assert_non_null(res);
        exb_resource_destroy(res);
        exb_control_destroy(ctl);
        exb_embedded_destroy(emb);
        char wal[64];
        unlink(path);
        snprintf(wal, sizeof(wal), "%s-wal", path);
        unlink(wal);
        snprintf(wal, sizeof(wal), "%s-shm", path);
        unlink(wal);
}

int main(void)
{
        setenv("EXBUS_LOG_LEVEL", "0", 1);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_import_idempotent_and_schema_ids),
            cmocka_unit_test(test_department_node), cmocka_unit_test(test_cas_conflict),
            cmocka_unit_test(test_expiry),
            cmocka_unit_test(test_cache_rebuilt_for_another_cluster),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
