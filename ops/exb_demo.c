/*
 * exb_demo.c — `exbus demo`: a whole city exchange in one process.
 *
 * An embedded broker, the sample catalog (公安 GA, 民政 MZ, 人社 RS,
 * 市场监管 SC, 公积金 GJJ, 大数据局 DSJ), two providers publishing from their
 * own SQLite databases (GA people, SC companies), the router, and three
 * subscribers receiving into their own SQLite databases — all driven from
 * one thread through the roles' poll functions, exactly the code the
 * separate `exbus producer|router|consumer` processes run.
 *
 * The story: subscriptions are requested and decided (conditional ones
 * approved with masks and filters, one rejected, a `none` resource refused);
 * people and companies are inserted, some updated out of a filter, some
 * deleted; a few records are deliberately bad (kept by the producer with
 * their reason, or dead-lettered by the router); one subscription is revoked
 * and receives nothing afterwards. The summary shows, per route, records
 * in/out/filtered/dead-lettered and a few delivered rows with their masks.
 * The databases stay in the data directory for a closer look.
 */
#include "exb_cli.h"
#include "exb_publisher.h"
#include "exb_receiver.h"
#include "exb_router.h"
#include "exb_sample.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEMO_PEOPLE 300
#define DEMO_COMPANIES 60

typedef struct demo_s {
        char dir[1024];
        const char *bs;
        exb_control_t *ctl;
        exb_publisher_t *ga, *sc;
        exb_router_t *rtr;
        exb_receiver_t *gjj, *rs, *mz;
        char sub_gjj_person[32], sub_rs_person[32], sub_mz_company[32], sub_gjj_company[32];
} demo_t;

/* ------------------------------------------------------------------ helpers */

static int demo_sql(const char *db, const char *sql)
{
        sqlite3 *h;
        char *err = NULL;
        int rc = sqlite3_open(db, &h);
        if (rc == SQLITE_OK) {
                sqlite3_busy_timeout(h, 5000);
                rc = sqlite3_exec(h, sql, NULL, NULL, &err);
        }
        if (rc != SQLITE_OK)
                fprintf(stderr, "exbus demo: %s: %s\n", db, err ? err : sqlite3_errmsg(h));
        sqlite3_free(err);
        sqlite3_close(h);
        return rc == SQLITE_OK ? 0 : -1;
}

static int64_t demo_count(const char *db, const char *table)
{
        sqlite3 *h;
        sqlite3_stmt *st;
        int64_t n = 0;
        char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", table);
        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
                if (sqlite3_step(st) == SQLITE_ROW)
                        n = sqlite3_column_int64(st, 0);
                sqlite3_finalize(st);
        }
        sqlite3_close(h);
        sqlite3_free(sql);
        return n;
}

static void path_in(const demo_t *d, const char *name, char *out, size_t size)
{
        snprintf(out, size, "%s/%s", d->dir, name);
}

/* Polls every role once. Returns records moved, or -1 if a role failed. */
static int pump_once(demo_t *d)
{
        char err[1024];
        int moved = 0, n;
        exb_publisher_t *pubs[] = {d->ga, d->sc};
        exb_receiver_t *rcvs[] = {d->gjj, d->rs, d->mz};
        for (size_t i = 0; i < EXB_ARRAY_CNT(pubs); i++) {
                if ((n = exb_publisher_poll(pubs[i], 0, err, sizeof(err))) < 0)
                        goto fail;
                moved += n;
        }
        if ((n = exb_router_poll(d->rtr, 20, err, sizeof(err))) < 0)
                goto fail;
        moved += n;
        for (size_t i = 0; i < EXB_ARRAY_CNT(rcvs); i++) {
                if ((n = exb_receiver_poll(rcvs[i], 0, err, sizeof(err))) < 0)
                        goto fail;
                moved += n;
        }
        return moved;
fail:
        fprintf(stderr, "exbus demo: %s\n", err);
        return -1;
}

/* Pumps until `db`.`table` has `want` rows (want < 0: until 1.5 s of quiet). */
static int pump_until(demo_t *d, const char *db, const char *table, int64_t want, int timeout_s)
{
        int64_t deadline = exb_mono_ms() + timeout_s * 1000, quiet_since = exb_mono_ms();
        while (exb_mono_ms() < deadline && !exb_cli_stop) {
                int n = pump_once(d);
                if (n < 0)
                        return -1;
                if (n > 0)
                        quiet_since = exb_mono_ms();
                if (want >= 0 && demo_count(db, table) == want)
                        return 0;
                if (want < 0 && exb_mono_ms() - quiet_since > 1500)
                        return 0;
        }
        if (!exb_cli_stop)
                fprintf(stderr, "exbus demo: timed out waiting for %s %s\n", db, table);
        return -1;
}

static int demo_set(const exb_prop_t *props, void *conf, const char *key, const char *value)
{
        char err[512];
        if (exb_conf_set(props, conf, key, value, "demo", err, sizeof(err))) {
                fprintf(stderr, "exbus demo: %s\n", err);
                return -1;
        }
        return 0;
}

/* ---------------------------------------------------------- subscriptions */

static int request(demo_t *d, const char *who, const char *code, const char *items,
                   const char *purpose, char *id, size_t id_size)
{
        char **v, err[1024];
        int n = exb_cli_split(items, &v);
        exb_sub_request_t req = {.subscriber = who, .resource = code, .purpose = purpose,
                                 .items = (const char *const *)v, .nitems = n};
        exb_err_t e = exb_control_sub_request(d->ctl, &req, 1, id, id_size, err, sizeof(err));
        exb_cli_strv_free(v, n);
        if (e != EXB_OK) {
                printf("  %-4s -> %-16s refused: %s\n", who, code, err);
                return -1;
        }
        exb_sub_t *sub = exb_control_sub(d->ctl, id);
        printf("  %-4s -> %-16s %s  %s (%s)\n", who, code, id, exb_sub_state_name(sub->state),
               purpose);
        exb_subs_free(sub, 1);
        return 0;
}

static int decide(demo_t *d, const char *id, exb_sub_state_t state, const char *mask1,
                  const char *mask2, const char *filter, const char *reason)
{
        const char *masks[2] = {mask1, mask2};
        exb_sub_decision_t dec = {.state = state, .mask_specs = masks,
                                  .nmasks = mask2 ? 2 : mask1 ? 1 : 0, .filter = filter,
                                  .reason = reason};
        char err[1024];
        if (exb_control_sub_decide(d->ctl, id, &dec, err, sizeof(err)) != EXB_OK) {
                fprintf(stderr, "exbus demo: %s: %s\n", id, err);
                return -1;
        }
        printf("       %s %s%s%s%s%s%s%s%s\n", id, exb_sub_state_name(state),
               mask1 ? "  mask " : "", mask1 ? mask1 : "", mask2 ? ", " : "", mask2 ? mask2 : "",
               filter ? "  filter " : "", filter ? filter : "", reason ? reason : "");
        return 0;
}

static int subscriptions(demo_t *d)
{
        char id[32];
        printf("\n供需对接 — subscriptions\n");
        if (request(d, "GJJ", "370600-GA-0001", "id_number,name,birth_date,region",
                    "住房公积金提取身份核验", d->sub_gjj_person, sizeof(d->sub_gjj_person)) ||
            decide(d, d->sub_gjj_person, EXB_SUB_APPROVED, "id_number=partial:6:4",
                   "name=partial:1:0", "region == \"370602\"", NULL) ||
            request(d, "RS", "370600-GA-0001", "id_number,name,gender,birth_date,region",
                    "社保参保登记身份核验", d->sub_rs_person, sizeof(d->sub_rs_person)) ||
            decide(d, d->sub_rs_person, EXB_SUB_APPROVED, "id_number=hash", NULL, NULL, NULL) ||
            request(d, "MZ", "370600-SC-0001", "credit_code,name,legal_rep,reg_capital,status",
                    "社会组织登记核查", d->sub_mz_company, sizeof(d->sub_mz_company)) ||
            request(d, "GJJ", "370600-SC-0001", "credit_code,name,status,region",
                    "缴存单位核验", d->sub_gjj_company, sizeof(d->sub_gjj_company)) ||
            decide(d, d->sub_gjj_company, EXB_SUB_APPROVED, NULL, NULL, "status == \"存续\"",
                   NULL))
                return -1;
        if (request(d, "RS", "370600-MZ-0001", "cert_no,id_number,reg_type", "核查参保人婚姻状况",
                    id, sizeof(id)) == 0)
                decide(d, id, EXB_SUB_REJECTED, NULL, NULL, NULL,
                       "  reason: 参保登记不需要婚姻信息（数据最小化）");
        request(d, "RS", "370600-GA-0002", "id_number,photo", "人脸比对", id, sizeof(id));
        exb_cli_t cli = {.brokers = d->bs};
        exb_cli_ensure_topics(&cli, d->ctl);
        return 0;
}

/* -------------------------------------------------------------- providers */

static int insert_people(const char *db, int from, int to)
{
        exb_buf_t sql;
        exb_buf_init(&sql, 0);
        exb_buf_printf(&sql, "BEGIN;");
        for (int i = from; i < to; i++) {
                exb_sample_person_t p;
                exb_sample_person(i, &p);
                char *row = sqlite3_mprintf(
                    "INSERT INTO person VALUES(%Q,%Q,%Q,%Q,%Q,%Q,%Q,'2026-11-23T08:00:00Z');",
                    p.id_number, p.name, p.gender, p.birth_date, p.address, p.region, p.phone);
                exb_buf_printf(&sql, "%s", row);
                sqlite3_free(row);
        }
        exb_buf_printf(&sql, "COMMIT;");
        exb_buf_cstr(&sql);
        int rc = demo_sql(db, (const char *)sql.p);
        exb_buf_free(&sql);
        return rc;
}

static int insert_companies(const char *db, int from, int to)
{
        exb_buf_t sql;
        exb_buf_init(&sql, 0);
        exb_buf_printf(&sql, "BEGIN;");
        for (int i = from; i < to; i++) {
                char code[19];
                exb_sample_credit_code(i, code);
                exb_sample_person_t rep;
                exb_sample_person(100000 + i, &rep);
                exb_buf_printf(&sql,
                               "INSERT INTO company VALUES('%s','烟台示例%d号有限公司','%s','%s',%d.0,"
                               "'2015-06-01','存续','370602',1763884800000);",
                               code, i, rep.name, rep.id_number, 100 + i * 10);
        }
        exb_buf_printf(&sql, "COMMIT;");
        exb_buf_cstr(&sql);
        int rc = demo_sql(db, (const char *)sql.p);
        exb_buf_free(&sql);
        return rc;
}

static exb_publisher_t *publisher(demo_t *d, const char *dept, const char *db, const char *table,
                                  const char *code)
{
        exb_publisher_conf_t conf = {0};
        char dir[1100], key[64], err[1024];
        snprintf(dir, sizeof(dir), "%s/producer-%s", d->dir, dept);
        mkdir(dir, 0755);
        snprintf(key, sizeof(key), "source.table.%s", table);
        exb_conf_defaults(exb_publisher_props, &conf);
        exb_publisher_t *pub = NULL;
        if (!demo_set(exb_publisher_props, &conf, "dept", dept) &&
            !demo_set(exb_publisher_props, &conf, "brokers", d->bs) &&
            !demo_set(exb_publisher_props, &conf, "data.dir", dir) &&
            !demo_set(exb_publisher_props, &conf, "source.type", "sqlite") &&
            !demo_set(exb_publisher_props, &conf, "source.path", db) &&
            !demo_set(exb_publisher_props, &conf, key, code)) {
                conf.where = "demo";
                pub = exb_publisher_new(&conf, err, sizeof(err));
                if (!pub)
                        fprintf(stderr, "exbus demo: producer %s: %s\n", dept, err);
        }
        exb_conf_free(exb_publisher_props, &conf);
        return pub;
}

static exb_receiver_t *receiver(demo_t *d, const char *dept)
{
        exb_receiver_conf_t conf = {0};
        char dir[1100], db[1100], err[1024];
        snprintf(dir, sizeof(dir), "%s/consumer-%s", d->dir, dept);
        snprintf(db, sizeof(db), "%s/%s.db", d->dir, dept);
        mkdir(dir, 0755);
        exb_conf_defaults(exb_receiver_props, &conf);
        exb_receiver_t *rcv = NULL;
        if (!demo_set(exb_receiver_props, &conf, "dept", dept) &&
            !demo_set(exb_receiver_props, &conf, "brokers", d->bs) &&
            !demo_set(exb_receiver_props, &conf, "data.dir", dir) &&
            !demo_set(exb_receiver_props, &conf, "sink.type", "sqlite") &&
            !demo_set(exb_receiver_props, &conf, "sink.path", db)) {
                rcv = exb_receiver_new(&conf, err, sizeof(err));
                if (!rcv)
                        fprintf(stderr, "exbus demo: consumer %s: %s\n", dept, err);
        }
        exb_conf_free(exb_receiver_props, &conf);
        return rcv;
}

static exb_router_t *router(demo_t *d)
{
        exb_router_conf_t conf = {0};
        char dir[1100], err[1024];
        unsigned char rnd[16];
        char secret[33];
        snprintf(dir, sizeof(dir), "%s/router", d->dir);
        mkdir(dir, 0755);
        RAND_bytes(rnd, sizeof(rnd));
        for (int i = 0; i < 16; i++)
                snprintf(secret + 2 * i, 3, "%02x", rnd[i]);
        exb_conf_defaults(exb_router_props, &conf);
        exb_router_t *rtr = NULL;
        if (!demo_set(exb_router_props, &conf, "brokers", d->bs) &&
            !demo_set(exb_router_props, &conf, "data.dir", dir) &&
            !demo_set(exb_router_props, &conf, "mask.secret",
                      getenv("EXBUS_MASK_SECRET") ? getenv("EXBUS_MASK_SECRET") : secret)) {
                rtr = exb_router_new(&conf, err, sizeof(err));
                if (!rtr)
                        fprintf(stderr, "exbus demo: router: %s\n", err);
        }
        exb_conf_free(exb_router_props, &conf);
        return rtr;
}

/* Bytes that are no Avro of ours, straight onto GA's ingest topic. */
static void inject_garbage(demo_t *d)
{
        char err[256];
        exb_producer_t *p = exb_producer_new(d->bs, NULL, 0, NULL, NULL, err, sizeof(err));
        if (!p)
                return;
        exb_topic_t *t = exb_producer_topic(p, "exb.ingest.GA.370600-GA-0001");
        static const char junk[] = "id_number,name\n370602199001010017,张三\n"; /* a CSV line */
        static const unsigned char unknown[] = {0x00, 0x00, 0x0f, 0x42, 0x3f, 0x00}; /* id 999999 */
        exb_produce(p, t, -1, "csv", 3, junk, sizeof(junk) - 1, NULL, 0, NULL, err, sizeof(err));
        exb_produce(p, t, -1, "unknown-schema", 14, unknown, sizeof(unknown), NULL, 0, NULL, err,
                    sizeof(err));
        exb_producer_flush(p, 10000);
        exb_producer_destroy(p);
}

/* ----------------------------------------------------------------- summary */

static void print_rows(const char *title, const char *db, const char *sql)
{
        sqlite3 *h;
        sqlite3_stmt *st;
        printf("\n%s\n", title);
        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
                sqlite3_close(h);
                return;
        }
        int cols = sqlite3_column_count(st);
        printf("  ");
        for (int c = 0; c < cols; c++)
                printf("%-*s", c == 0 ? 22 : 14, sqlite3_column_name(st, c));
        printf("\n");
        while (sqlite3_step(st) == SQLITE_ROW) {
                printf("  ");
                for (int c = 0; c < cols; c++) {
                        const unsigned char *v = sqlite3_column_text(st, c);
                        printf("%-*.*s ", c == 0 ? 21 : 13, c == 0 ? 120 : 22, v ? (const char *)v : "NULL");
                }
                printf("\n");
        }
        sqlite3_finalize(st);
        sqlite3_close(h);
}

static void summary(demo_t *d)
{
        exb_route_stats_t *st;
        int n = exb_router_stats(d->rtr, &st);
        printf("\n路由统计 — per route (router counters)\n");
        printf("  %-16s %-9s %-4s %6s %6s %8s %9s %4s\n", "RESOURCE", "SUB", "TO", "IN", "OUT",
               "FILTERED", "->DELETE", "DLQ");
        for (int i = 0; i < n; i++) {
                if (!st[i].in && !st[i].dlq)
                        continue;
                if (st[i].sub_id[0])
                        printf("  %-16s %-9s %-4s %6llu %6llu %8llu %9llu\n", st[i].resource,
                               st[i].sub_id, st[i].subscriber, (unsigned long long)st[i].in,
                               (unsigned long long)st[i].out, (unsigned long long)st[i].filtered,
                               (unsigned long long)st[i].to_delete);
                else
                        printf("  %-16s %-9s %-4s %6llu %6s %8s %9s %4llu\n", st[i].resource,
                               "(ingest)", st[i].subscriber, (unsigned long long)st[i].in, "", "", "",
                               (unsigned long long)st[i].dlq);
        }
        free(st);
        exb_publisher_stats_t ps;
        const char *names[] = {"GA", "SC"};
        exb_publisher_t *pubs[] = {d->ga, d->sc};
        printf("\n前置机 — producer agents\n");
        for (int i = 0; i < 2; i++) {
                exb_publisher_stats(pubs[i], &ps);
                printf("  %-3s published %llu, rejected %llu (kept in %s/%s.db table exb_rejects)\n",
                       names[i], (unsigned long long)ps.published, (unsigned long long)ps.rejected,
                       d->dir, names[i]);
        }
        char db[1100];
        path_in(d, "GA.db", db, sizeof(db));
        print_rows("GA rejected locally, with the reason (never left the department)", db,
                   "SELECT substr(reason, 1, 90) AS reason FROM exb_rejects");
        exb_cli_t cli = {.brokers = d->bs};
        printf("\n死信 — dead letters of the router (exbus dlq list)\n");
        fflush(stdout);
        char *argv[] = {"dlq", "list"};
        exb_cmd_dlq(&cli, 2, argv);
        path_in(d, "GJJ.db", db, sizeof(db));
        print_rows("GJJ receives people of region 370602 only; id and name masked", db,
                   "SELECT id_number, name, birth_date, region FROM \"370600-GA-0001\" LIMIT 4");
        path_in(d, "RS.db", db, sizeof(db));
        print_rows("RS receives everyone; the citizen id is a keyed hash (same person, same value)",
                   db,
                   "SELECT substr(id_number, 1, 20) || '…' AS id_number, name, gender, birth_date, "
                   "region FROM \"370600-GA-0001\" LIMIT 3");
        path_in(d, "MZ.db", db, sizeof(db));
        printf("\n  MZ holds %lld companies: those published before its subscription %s was "
               "revoked.\n",
               (long long)demo_count(db, "370600-SC-0001"), d->sub_mz_company);
        path_in(d, "GJJ.db", db, sizeof(db));
        printf("  GJJ holds %lld companies: only those with status 存续 (deregistered ones were "
               "deleted from its copy).\n",
               (long long)demo_count(db, "370600-SC-0001"));
        printf("\nEverything is in %s: the providers' databases (GA.db, SC.db), the subscribers' "
               "(GJJ.db, RS.db, MZ.db).\n  e.g. sqlite3 %s/GJJ.db 'SELECT * FROM \"370600-GA-0001\" "
               "LIMIT 5'\n",
               d->dir, d->dir);
}

/* -------------------------------------------------------------------- main */

static int story(demo_t *d)
{
        char ga[1100], sc[1100], gjj[1100], rs[1100], mz[1100];
        path_in(d, "GA.db", ga, sizeof(ga));
        path_in(d, "SC.db", sc, sizeof(sc));
        path_in(d, "GJJ.db", gjj, sizeof(gjj));
        path_in(d, "RS.db", rs, sizeof(rs));
        path_in(d, "MZ.db", mz, sizeof(mz));
        if (demo_sql(ga, "CREATE TABLE IF NOT EXISTS person(id_number TEXT PRIMARY KEY, name TEXT,"
                         " gender TEXT, birth_date TEXT, address TEXT, region TEXT, phone TEXT,"
                         " updated_at TEXT)") ||
            demo_sql(sc, "CREATE TABLE IF NOT EXISTS company(credit_code TEXT PRIMARY KEY, name TEXT,"
                         " legal_rep TEXT, legal_rep_id TEXT, reg_capital REAL, established TEXT,"
                         " status TEXT, region TEXT, updated_at INTEGER)"))
                return -1;
        printf("\n启动 — starting producer agents (GA, SC), the router, consumer agents (GJJ, RS, MZ)\n");
        if (!(d->ga = publisher(d, "GA", ga, "person", "370600-GA-0001")) ||
            !(d->sc = publisher(d, "SC", sc, "company", "370600-SC-0001")) ||
            !(d->rtr = router(d)) || !(d->gjj = receiver(d, "GJJ")) ||
            !(d->rs = receiver(d, "RS")) || !(d->mz = receiver(d, "MZ")))
                return -1;

        printf("\n增量 — GA registers %d people, SC %d companies, in their own databases\n",
               DEMO_PEOPLE, DEMO_COMPANIES);
        if (insert_people(ga, 0, DEMO_PEOPLE) || insert_companies(sc, 0, DEMO_COMPANIES))
                return -1;
        printf("       and 3 bad people records: a wrong check digit, no name, a 7-digit region\n");
        demo_sql(ga, "INSERT INTO person(id_number, name, region) VALUES"
                     " ('370602199001010013', '校验位错', '370602'),"
                     " ('370602199001010025', NULL, '370602'),"
                     " ('370602199001010033', '区划过长', '3706021')");
        if (pump_until(d, rs, "370600-GA-0001", DEMO_PEOPLE, 60) ||
            pump_until(d, mz, "370600-SC-0001", DEMO_COMPANIES, 30))
                return -1;
        printf("       delivered: RS %lld people, GJJ %lld people (region 370602), MZ %lld, GJJ %lld "
               "companies\n",
               (long long)demo_count(rs, "370600-GA-0001"), (long long)demo_count(gjj, "370600-GA-0001"),
               (long long)demo_count(mz, "370600-SC-0001"), (long long)demo_count(gjj, "370600-SC-0001"));

        printf("\n变更 — 30 people move from 370602 to 370611 (out of GJJ's filter: deleted from its "
               "copy),\n       10 people are deleted, 5 companies are deregistered (注销)\n");
        demo_sql(ga, "UPDATE person SET region = '370611' WHERE rowid IN (SELECT rowid FROM person"
                     " WHERE region = '370602' ORDER BY rowid LIMIT 30);"
                     "DELETE FROM person WHERE rowid IN (SELECT rowid FROM person WHERE region ="
                     " '370612' ORDER BY rowid LIMIT 10)");
        demo_sql(sc, "UPDATE company SET status = '注销' WHERE rowid <= 5");
        if (pump_until(d, rs, "370600-GA-0001", DEMO_PEOPLE - 10, 30) ||
            pump_until(d, gjj, "370600-SC-0001", DEMO_COMPANIES - 5, 30))
                return -1;

        printf("\n撤销 — %s (MZ's access to company data) is revoked; SC then registers 20 more "
               "companies\n",
               d->sub_mz_company);
        if (decide(d, d->sub_mz_company, EXB_SUB_REVOKED, NULL, NULL, NULL,
                   "  reason: 核查任务完成"))
                return -1;
        pump_until(d, NULL, NULL, -1, 5); /* the router applies it between batches */
        insert_companies(sc, DEMO_COMPANIES, DEMO_COMPANIES + 20);
        printf("\n死信 — bytes that are not our Avro are put straight onto GA's ingest topic\n");
        inject_garbage(d);
        if (pump_until(d, gjj, "370600-SC-0001", DEMO_COMPANIES + 15, 30))
                return -1;
        return pump_until(d, NULL, NULL, -1, 10);
}

int exb_cmd_demo(exb_cli_t *cli, int argc, char **argv)
{
        (void)argv;
        if (argc != 1) {
                fprintf(stderr, "usage: exbus demo [--data-dir DIR]\n");
                return 2;
        }
        demo_t d = {0};
        if (cli->data_dir) {
                snprintf(d.dir, sizeof(d.dir), "%s", cli->data_dir);
                if (mkdir(d.dir, 0755) && errno != EEXIST) {
                        fprintf(stderr, "exbus demo: %s: %s\n", d.dir, strerror(errno));
                        return 1;
                }
        } else {
                snprintf(d.dir, sizeof(d.dir), "/tmp/exbus-demo.XXXXXX");
                if (!mkdtemp(d.dir)) {
                        fprintf(stderr, "exbus demo: cannot create a temporary directory\n");
                        return 1;
                }
        }
        if (!getenv("EXBUS_LOG_LEVEL"))
                setenv("EXBUS_LOG_LEVEL", "1", 1); /* warnings and errors only */
        exb_cli_signals();
        printf("exbus demo — a city exchange (政务信息资源共享交换) in one process\n"
               "  embedded broker: librdkafka's mock cluster, in memory (for trying exbus, not "
               "production)\n");
        char err[1024];
        int rc = 1;
        exb_catalog_t *cat = NULL;
        exb_embedded_t *emb = exb_embedded_new(1, err, sizeof(err));
        if (!emb) {
                fprintf(stderr, "exbus demo: %s\n", err);
                return 1;
        }
        d.bs = exb_embedded_bootstraps(emb);
        exb_topic_spec_t base[] = {{EXB_CONTROL_TOPIC, 1, 1}, {EXB_AUDIT_TOPIC, 1, 0}};
        if (exb_admin_ensure_topics(d.bs, NULL, 0, base, 2, 10000, err, sizeof(err)) ||
            !(d.ctl = exb_control_new(d.bs, NULL, 0, NULL, 10000, err, sizeof(err))) ||
            !(cat = exb_catalog_parse("sample catalog", (const char *)exb_sample_catalog,
                                      exb_sample_catalog_len, NULL, 0, err, sizeof(err))) ||
            exb_control_import(d.ctl, cat, NULL, NULL, err, sizeof(err))) {
                fprintf(stderr, "exbus demo: %s\n", err);
                goto done;
        }
        printf("\n目录 — catalog: %d departments, %d resources (exbus catalog list)\n", cat->ndepts,
               cat->nresources);
        for (int i = 0; i < cat->nresources; i++)
                printf("  %-16s %-3s %-14s %s\n", cat->resources[i]->code,
                       cat->resources[i]->provider, exb_share_name(cat->resources[i]->share_type),
                       cat->resources[i]->name);
        if (subscriptions(&d) || story(&d))
                goto done;
        summary(&d);
        rc = 0;
done:
        exb_receiver_destroy(d.mz);
        exb_receiver_destroy(d.rs);
        exb_receiver_destroy(d.gjj);
        exb_router_destroy(d.rtr);
        exb_publisher_destroy(d.sc);
        exb_publisher_destroy(d.ga);
        exb_catalog_destroy(cat);
        exb_control_destroy(d.ctl);
        exb_embedded_destroy(emb);
        return rc;
}
