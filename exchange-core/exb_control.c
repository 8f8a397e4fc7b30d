/*
 * exb_control.c — replaying and writing exb.control (see exb_control.h for
 * the record format and the compare-and-set rule).
 *
 * Cache tables (SQLite, one transaction per replayed batch):
 *   meta(k, v)                 next_offset, cluster_id
 *   departments(code, name, node, offset)
 *   schemas(id, subject, resource, fingerprint, avro)
 *   resources(code, provider, version, schema_id, json, offset, record)
 *   resource_versions(code, version, schema_id)
 *   subscriptions(id, subscriber, resource, state, requested, items, masks,
 *                 filter, until_date, purpose, legal_basis, reason,
 *                 delivery_schema_id, requested_at, decided_at, offset, record)
 * `record` keeps the applied record's JSON so a writer that lost a
 * compare-and-set can re-assert the winner verbatim. A cache made with other
 * tables (PRAGMA user_version != CACHE_VERSION) is dropped and replayed.
 */
#include "exb_control.h"
#include "exb_filter.h"
#include "exb_sql.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

struct exb_control_s {
        char *brokers;
        exb_kprop_t *props;
        int nprops;
        sqlite3 *db;
        exb_consumer_t *reader;
        exb_producer_t *writer; /* created on first write */
        int64_t next_offset;    /* next control offset to apply */
        uint64_t generation;
};

#define CACHE_VERSION 2 /* 2: departments.node */

static const char *cache_drop =
    "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS departments; DROP TABLE IF EXISTS schemas;"
    "DROP TABLE IF EXISTS resources; DROP TABLE IF EXISTS resource_versions;"
    "DROP TABLE IF EXISTS subscriptions;";

static const char *cache_ddl =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
    "CREATE TABLE IF NOT EXISTS departments(code TEXT PRIMARY KEY, name TEXT, node INTEGER,"
    " offset INTEGER);"
    "CREATE TABLE IF NOT EXISTS schemas(id INTEGER PRIMARY KEY, subject TEXT, resource TEXT,"
    " fingerprint TEXT, avro TEXT);"
    "CREATE INDEX IF NOT EXISTS schemas_subject ON schemas(subject, fingerprint);"
    "CREATE TABLE IF NOT EXISTS resources(code TEXT PRIMARY KEY, provider TEXT, version INTEGER,"
    " schema_id INTEGER, json TEXT, offset INTEGER, record TEXT);"
    "CREATE TABLE IF NOT EXISTS resource_versions(code TEXT, version INTEGER, schema_id INTEGER,"
    " PRIMARY KEY(code, version));"
    "CREATE TABLE IF NOT EXISTS subscriptions(id TEXT PRIMARY KEY, subscriber TEXT, resource TEXT,"
    " state TEXT, requested TEXT, items TEXT, masks TEXT, filter TEXT, until_date TEXT,"
    " purpose TEXT, legal_basis TEXT, reason TEXT, delivery_schema_id INTEGER,"
    " requested_at INTEGER, decided_at INTEGER, offset INTEGER, record TEXT);";

static const char *state_names[] = {"requested", "approved", "rejected", "revoked", "expired"};

const char *exb_sub_state_name(exb_sub_state_t s)
{
        return (unsigned)s < EXB_ARRAY_CNT(state_names) ? state_names[s] : "?";
}

static int sub_state_parse(const char *s)
{
        for (size_t i = 0; s && i < EXB_ARRAY_CNT(state_names); i++)
                if (!strcmp(s, state_names[i]))
                        return (int)i;
        return -1;
}

/* ------------------------------------------------------------ sqlite helpers */

/* The cache's statements log their errors (the cache can always be rebuilt
 * from the log). */
#define CACHE "control cache", NULL, 0

/* ------------------------------------------------------------------- apply */

static const char *jstr(json_t *o, const char *k)
{
        return json_string_value(json_object_get(o, k));
}

static int64_t jint(json_t *o, const char *k, int64_t def)
{
        json_t *v = json_object_get(o, k);
        return json_is_integer(v) ? json_integer_value(v) : def;
}

/* JSON text of o[k] (NULL if absent or null). Caller frees. */
static char *jdump(json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);
        return v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static void apply_department(exb_control_t *ctl, int64_t off, json_t *v)
{
        if (!jstr(v, "code"))
                return;
        exb_sql_exec(ctl->db, CACHE, "INSERT OR REPLACE INTO departments VALUES(%Q, %Q, %d, %lld)",
                     jstr(v, "code"), jstr(v, "name"), json_is_true(json_object_get(v, "node")),
                     (long long)off);
        ctl->generation++;
}

static void apply_schema(exb_control_t *ctl, int64_t off, json_t *v)
{
        if (!jstr(v, "subject") || !jstr(v, "avro"))
                return;
        exb_sql_exec(ctl->db, CACHE, "INSERT OR IGNORE INTO schemas VALUES(%lld, %Q, %Q, %Q, %Q)", (long long)off,
                jstr(v, "subject"), jstr(v, "resource"), jstr(v, "fingerprint"), jstr(v, "avro"));
        ctl->generation++;
}

static void apply_resource(exb_control_t *ctl, int64_t off, const char *code, json_t *v,
                           const char *text)
{
        int64_t cur = exb_sql_int(ctl->db, -1, "SELECT offset FROM resources WHERE code=%Q", code);
        int64_t prev = jint(v, "prev", -1);
        json_t *res = json_object_get(v, "resource");
        int64_t schema_id = jint(v, "schema_id", -1);
        if (prev < cur || !json_is_object(res)) {
                EXB_DEBUG("control: resource/%s at %lld: stale (prev %lld, current %lld)", code,
                          (long long)off, (long long)prev, (long long)cur);
                return;
        }
        char *subject = exb_sql_text(ctl->db, "SELECT subject FROM schemas WHERE id=%lld",
                                (long long)schema_id);
        char want[256];
        snprintf(want, sizeof(want), "resource:%s", code);
        if (!subject || strcmp(subject, want)) {
                EXB_WARN("control: resource/%s at %lld names schema %lld of %s: ignored", code,
                         (long long)off, (long long)schema_id, subject ? subject : "nobody");
                free(subject);
                return;
        }
        free(subject);
        char *json = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER);
        exb_sql_exec(ctl->db, CACHE, "INSERT OR REPLACE INTO resources VALUES(%Q, %Q, %lld, %lld, %Q, %lld, %Q)",
                code, jstr(res, "provider"), (long long)jint(v, "version", 1), (long long)schema_id,
                json, (long long)off, text);
        exb_sql_exec(ctl->db, CACHE, "INSERT OR REPLACE INTO resource_versions VALUES(%Q, %lld, %lld)", code,
                (long long)jint(v, "version", 1), (long long)schema_id);
        free(json);
        ctl->generation++;
}

static void sub_id_for(int64_t off, char *out, size_t size)
{
        snprintf(out, size, "S-%06lld", (long long)off);
}

static void apply_request(exb_control_t *ctl, int64_t off, json_t *v, const char *text)
{
        char id[32];
        sub_id_for(off, id, sizeof(id));
        char *items = jdump(v, "items");
        exb_sql_exec(ctl->db, CACHE,
                "INSERT OR IGNORE INTO subscriptions(id, subscriber, resource, state, requested,"
                " items, purpose, legal_basis, until_date, requested_at, offset, record, "
                "delivery_schema_id)"
                " VALUES(%Q, %Q, %Q, 'requested', %Q, '[]', %Q, %Q, %Q, %lld, %lld, %Q, -1)",
                id, jstr(v, "subscriber"), jstr(v, "resource"), items ? items : "[]",
                jstr(v, "purpose"), jstr(v, "legal_basis"), jstr(v, "until"),
                (long long)jint(v, "at", 0), (long long)off, text);
        free(items);
        ctl->generation++;
}

/* Allowed transitions of the stored state (expired is derived, never stored). */
static int transition_ok(int from, int to)
{
        return (from == EXB_SUB_REQUESTED && (to == EXB_SUB_APPROVED || to == EXB_SUB_REJECTED)) ||
               (from == EXB_SUB_APPROVED && (to == EXB_SUB_APPROVED || to == EXB_SUB_REVOKED));
}

static void apply_subscription(exb_control_t *ctl, int64_t off, const char *id, json_t *v,
                               const char *text)
{
        char *state = exb_sql_text(ctl->db, "SELECT state FROM subscriptions WHERE id=%Q", id);
        int64_t cur = exb_sql_int(ctl->db, -1, "SELECT offset FROM subscriptions WHERE id=%Q", id);
        int from = sub_state_parse(state), to = sub_state_parse(jstr(v, "state"));
        free(state);
        int64_t prev = jint(v, "prev", -1);
        if (from < 0 || prev < cur || (!transition_ok(from, to) && !(prev > cur && to >= 0))) {
                EXB_DEBUG("control: subscription/%s at %lld: not applied", id, (long long)off);
                return;
        }
        char *items = jdump(v, "items"), *masks = jdump(v, "masks");
        exb_sql_exec(ctl->db, CACHE,
                "UPDATE subscriptions SET state=%Q, items=coalesce(%Q, items), masks=%Q, filter=%Q,"
                " until_date=coalesce(%Q, until_date), reason=%Q, delivery_schema_id=%lld,"
                " decided_at=%lld, offset=%lld, record=%Q WHERE id=%Q",
                jstr(v, "state"), items, masks, jstr(v, "filter"), jstr(v, "until"),
                jstr(v, "reason"), (long long)jint(v, "delivery_schema_id", -1),
                (long long)jint(v, "at", 0), (long long)off, text, id);
        free(items);
        free(masks);
        ctl->generation++;
}

static void apply_record(exb_control_t *ctl, const exb_msg_t *m)
{
        if (!m->key || !m->value)
                return; /* tombstones carry nothing to apply */
        char key[512];
        if (m->key_len >= sizeof(key))
                return;
        memcpy(key, m->key, m->key_len);
        key[m->key_len] = '\0';
        json_error_t jerr;
        json_t *v = json_loadb(m->value, m->len, 0, &jerr);
        if (!json_is_object(v)) {
                EXB_WARN("control: offset %lld key %s: not a JSON object: %s", (long long)m->offset,
                         key, jerr.text);
                json_decref(v);
                return;
        }
        char *text = exb_strndup(m->value, m->len);
        char *slash = strchr(key, '/');
        const char *id = slash ? slash + 1 : "";
        if (slash)
                *slash = '\0';
        if (!strcmp(key, "department"))
                apply_department(ctl, m->offset, v);
        else if (!strcmp(key, "schema"))
                apply_schema(ctl, m->offset, v);
        else if (!strcmp(key, "resource"))
                apply_resource(ctl, m->offset, id, v, text);
        else if (!strcmp(key, "request"))
                apply_request(ctl, m->offset, v, text);
        else if (!strcmp(key, "subscription"))
                apply_subscription(ctl, m->offset, id, v, text);
        else
                EXB_DEBUG("control: offset %lld: unknown kind %s", (long long)m->offset, key);
        free(text);
        json_decref(v);
}

/* Applies up to one batch; returns records seen or -1. */
static int control_read(exb_control_t *ctl, int timeout_ms, char *errstr, size_t errstr_size)
{
        exb_msg_t msgs[256];
        int n = exb_consumer_poll(ctl->reader, msgs, (int)EXB_ARRAY_CNT(msgs), timeout_ms, errstr,
                                  errstr_size);
        if (n <= 0)
                return n;
        exb_sql_exec(ctl->db, CACHE, "BEGIN");
        for (int i = 0; i < n; i++) {
                if (msgs[i].offset >= ctl->next_offset) {
                        apply_record(ctl, &msgs[i]);
                        ctl->next_offset = msgs[i].offset + 1;
                }
                exb_msg_release(&msgs[i]);
        }
        exb_sql_exec(ctl->db, CACHE, "INSERT OR REPLACE INTO meta VALUES('next_offset', %lld)",
                (long long)ctl->next_offset);
        exb_sql_exec(ctl->db, CACHE, "COMMIT");
        return n;
}

int exb_control_sync(exb_control_t *ctl, int timeout_ms, char *errstr, size_t errstr_size)
{
        int64_t lo, hi;
        int64_t deadline = exb_mono_ms() + timeout_ms;
        if (exb_consumer_watermarks(ctl->reader, EXB_CONTROL_TOPIC, 0, &lo, &hi, timeout_ms) !=
            EXB_OK) {
                exb_errf(errstr, errstr_size, "%s: cannot read the high watermark from %s",
                         EXB_CONTROL_TOPIC, ctl->brokers);
                return -1;
        }
        int applied = 0;
        while (ctl->next_offset < hi) {
                int left = (int)(deadline - exb_mono_ms());
                if (left <= 0) {
                        exb_errf(errstr, errstr_size,
                                 "%s: timed out at offset %lld of %lld", EXB_CONTROL_TOPIC,
                                 (long long)ctl->next_offset, (long long)hi);
                        return -1;
                }
                int n = control_read(ctl, left < 200 ? left : 200, errstr, errstr_size);
                if (n < 0)
                        return -1;
                applied += n;
        }
        return applied;
}

int exb_control_poll(exb_control_t *ctl)
{
        char err[256];
        int n = control_read(ctl, 0, err, sizeof(err));
        return n < 0 ? 0 : n;
}

uint64_t exb_control_generation(const exb_control_t *ctl)
{
        return ctl->generation;
}

sqlite3 *exb_control_db(exb_control_t *ctl)
{
        return ctl->db;
}

/* ------------------------------------------------------------- open/close */

static void cache_reset(exb_control_t *ctl)
{
        exb_sql_exec(ctl->db, CACHE, "DELETE FROM departments; DELETE FROM schemas; DELETE FROM resources;"
                         "DELETE FROM resource_versions; DELETE FROM subscriptions;"
                         "DELETE FROM meta");
        ctl->next_offset = 0;
}

exb_control_t *exb_control_new(const char *brokers, const exb_kprop_t *props, int nprops,
                               const char *cache_path, int timeout_ms, char *errstr,
                               size_t errstr_size)
{
        exb_control_t *ctl = exb_calloc(1, sizeof(*ctl));
        ctl->brokers = exb_strdup(brokers);
        ctl->nprops = nprops;
        ctl->props = exb_calloc((size_t)nprops + 1, sizeof(*ctl->props));
        for (int i = 0; i < nprops; i++)
                ctl->props[i] = (exb_kprop_t){exb_strdup(props[i].name), exb_strdup(props[i].value)};
        if (sqlite3_open(cache_path ? cache_path : ":memory:", &ctl->db) != SQLITE_OK) {
                exb_errf(errstr, errstr_size, "control cache %s: %s", cache_path,
                         sqlite3_errmsg(ctl->db));
                goto fail;
        }
        sqlite3_busy_timeout(ctl->db, 5000);
        int old = exb_sql_int(ctl->db, 0, "PRAGMA user_version") != CACHE_VERSION;
        if (exb_sql_exec(ctl->db, CACHE, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL") ||
            (old && exb_sql_exec(ctl->db, CACHE, "%s PRAGMA user_version=%d", cache_drop,
                                 CACHE_VERSION)) ||
            exb_sql_exec(ctl->db, CACHE, "%s", cache_ddl)) {
                exb_errf(errstr, errstr_size, "control cache %s: cannot create tables",
                         cache_path ? cache_path : "(memory)");
                goto fail;
        }
        /* The control topic is tiny: answer fast rather than batch (an empty
         * fetch is held for fetch.wait.max.ms). User props come after and win. */
        exb_kprop_t *rprops = exb_calloc((size_t)nprops + 2, sizeof(*rprops));
        rprops[0] = (exb_kprop_t){"fetch.wait.max.ms", "10"};
        if (nprops)
                memcpy(rprops + 1, props, sizeof(*props) * (size_t)nprops);
        ctl->reader = exb_consumer_new(brokers, NULL, rprops, nprops + 1, NULL, errstr, errstr_size);
        free(rprops);
        if (!ctl->reader)
                goto fail;
        int64_t lo, hi;
        if (exb_consumer_watermarks(ctl->reader, EXB_CONTROL_TOPIC, 0, &lo, &hi, timeout_ms) !=
            EXB_OK) {
                exb_errf(errstr, errstr_size,
                         "%s: cannot reach topic %s at %s (is the broker running and the topic "
                         "created?)",
                         cache_path ? cache_path : "control", EXB_CONTROL_TOPIC, brokers);
                goto fail;
        }
        /* A cache from another cluster, or ahead of the topic, is stale. */
        char *cid = exb_consumer_cluster_id(ctl->reader, timeout_ms);
        char *cached_cid = exb_sql_text(ctl->db, "SELECT v FROM meta WHERE k='cluster_id'");
        ctl->next_offset = exb_sql_int(ctl->db, 0, "SELECT v FROM meta WHERE k='next_offset'");
        if ((cid && cached_cid && strcmp(cid, cached_cid)) || ctl->next_offset > hi ||
            ctl->next_offset < lo) {
                EXB_INFO("control cache %s is from another cluster or log: rebuilding",
                         cache_path ? cache_path : "");
                cache_reset(ctl);
        }
        if (cid)
                exb_sql_exec(ctl->db, CACHE, "INSERT OR REPLACE INTO meta VALUES('cluster_id', %Q)", cid);
        free(cid);
        free(cached_cid);
        if (exb_consumer_assign(ctl->reader, EXB_CONTROL_TOPIC, 0,
                                ctl->next_offset ? ctl->next_offset : EXB_OFFSET_BEGINNING, errstr,
                                errstr_size) != EXB_OK)
                goto fail;
        if (exb_control_sync(ctl, timeout_ms, errstr, errstr_size) < 0)
                goto fail;
        ctl->generation++;
        return ctl;
fail:
        exb_control_destroy(ctl);
        return NULL;
}

void exb_control_destroy(exb_control_t *ctl)
{
        if (!ctl)
                return;
        exb_producer_destroy(ctl->writer);
        exb_consumer_destroy(ctl->reader);
        sqlite3_close(ctl->db);
        for (int i = 0; i < ctl->nprops; i++) {
                free((char *)ctl->props[i].name);
                free((char *)ctl->props[i].value);
        }
        free(ctl->props);
        free(ctl->brokers);
        free(ctl);
}

/* --------------------------------------------------------------- read model */

exb_resource_t *exb_control_resource(exb_control_t *ctl, const char *code, int32_t *schema_id)
{
        char *json = exb_sql_text(ctl->db, "SELECT json FROM resources WHERE code=%Q", code);
        if (!json)
                return NULL;
        char err[512];
        exb_resource_t *res = exb_resource_parse_json(code, json, strlen(json), err, sizeof(err));
        if (!res)
                EXB_ERROR("control cache: resource %s: %s", code, err);
        free(json);
        if (schema_id)
                *schema_id = (int32_t)exb_sql_int(ctl->db, -1,
                                             "SELECT schema_id FROM resources WHERE code=%Q", code);
        return res;
}

exb_schema_t *exb_control_schema(exb_control_t *ctl, int32_t id)
{
        char *avro = exb_sql_text(ctl->db, "SELECT avro FROM schemas WHERE id=%lld", (long long)id);
        if (!avro)
                return NULL;
        char err[512];
        exb_schema_t *s = exb_schema_parse(avro, strlen(avro), err, sizeof(err));
        if (!s)
                EXB_ERROR("control cache: schema %d: %s", (int)id, err);
        else
                s->id = id;
        free(avro);
        return s;
}

char *exb_control_schema_resource(exb_control_t *ctl, int32_t id, const char *kind)
{
        return exb_sql_text(ctl->db, "SELECT resource FROM schemas WHERE id=%lld AND subject GLOB '%q:*'",
                       (long long)id, kind);
}

/* First column of every row as new strings; returns the count. */
static int codes_query(exb_control_t *ctl, char ***codes, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *sql = sqlite3_vmprintf(fmt, ap);
        va_end(ap);
        sqlite3_stmt *st;
        int n = 0;
        *codes = NULL;
        if (sql && sqlite3_prepare_v2(ctl->db, sql, -1, &st, NULL) == SQLITE_OK) {
                while (sqlite3_step(st) == SQLITE_ROW) {
                        *codes = exb_realloc(*codes, sizeof(char *) * (size_t)(n + 1));
                        (*codes)[n++] = exb_strdup((const char *)sqlite3_column_text(st, 0));
                }
                sqlite3_finalize(st);
        }
        sqlite3_free(sql);
        return n;
}

int exb_control_dept_node(exb_control_t *ctl, const char *code)
{
        return exb_sql_int(ctl->db, 0, "SELECT node FROM departments WHERE code=%Q", code) == 1;
}

int exb_control_departments(exb_control_t *ctl, char ***codes)
{
        return codes_query(ctl, codes, "SELECT code FROM departments ORDER BY code");
}

int exb_control_resources(exb_control_t *ctl, const char *provider, char ***codes)
{
        return provider ? codes_query(ctl, codes,
                                      "SELECT code FROM resources WHERE provider=%Q ORDER BY code",
                                      provider)
                        : codes_query(ctl, codes, "SELECT code FROM resources ORDER BY code");
}

/* JSON array of strings -> new char*[] */
static int strarr_from_json(const char *text, char ***out)
{
        *out = NULL;
        json_t *a = text ? json_loads(text, 0, NULL) : NULL;
        int n = 0;
        if (json_is_array(a)) {
                *out = exb_calloc(json_array_size(a) + 1, sizeof(char *));
                for (size_t i = 0; i < json_array_size(a); i++)
                        if (json_is_string(json_array_get(a, i)))
                                (*out)[n++] = exb_strdup(json_string_value(json_array_get(a, i)));
        }
        json_decref(a);
        return n;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? exb_strdup((const char *)t) : NULL;
}

#define SUB_COLS                                                                                   \
        "id, subscriber, resource, state, requested, items, masks, filter, until_date, purpose,"  \
        " legal_basis, reason, delivery_schema_id, requested_at, decided_at, offset"

static void sub_from_row(sqlite3_stmt *st, exb_sub_t *s)
{
        memset(s, 0, sizeof(*s));
        s->id = col_dup(st, 0);
        s->subscriber = col_dup(st, 1);
        s->resource = col_dup(st, 2);
        int state = sub_state_parse((const char *)sqlite3_column_text(st, 3));
        s->state = state < 0 ? EXB_SUB_REJECTED : (exb_sub_state_t)state;
        s->nrequested = strarr_from_json((const char *)sqlite3_column_text(st, 4), &s->requested);
        s->nitems = strarr_from_json((const char *)sqlite3_column_text(st, 5), &s->items);
        s->masks = exb_calloc((size_t)s->nitems + 1, sizeof(*s->masks));
        json_t *masks = sqlite3_column_text(st, 6)
                            ? json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL)
                            : NULL;
        for (int i = 0; i < s->nitems; i++) {
                const char *spec = json_string_value(json_object_get(masks, s->items[i]));
                char err[128];
                if (spec && exb_mask_parse(spec, &s->masks[i], err, sizeof(err)))
                        EXB_WARN("subscription %s: item %s: %s", s->id, s->items[i], err);
        }
        json_decref(masks);
        s->filter = col_dup(st, 7);
        s->until = col_dup(st, 8);
        s->purpose = col_dup(st, 9);
        s->legal_basis = col_dup(st, 10);
        s->reason = col_dup(st, 11);
        s->delivery_schema_id = sqlite3_column_int(st, 12);
        s->requested_at = sqlite3_column_int64(st, 13);
        s->decided_at = sqlite3_column_int64(st, 14);
        s->offset = sqlite3_column_int64(st, 15);
        if (s->state == EXB_SUB_APPROVED && !exb_sub_active(s, exb_now_ms()))
                s->state = EXB_SUB_EXPIRED;
}

static int subs_query(exb_control_t *ctl, exb_sub_t **subs, const char *where_id)
{
        char *sql = where_id ? sqlite3_mprintf("SELECT " SUB_COLS " FROM subscriptions WHERE id=%Q",
                                               where_id)
                             : sqlite3_mprintf("SELECT " SUB_COLS " FROM subscriptions ORDER BY id");
        sqlite3_stmt *st;
        int n = 0;
        *subs = NULL;
        if (sqlite3_prepare_v2(ctl->db, sql, -1, &st, NULL) == SQLITE_OK) {
                while (sqlite3_step(st) == SQLITE_ROW) {
                        *subs = exb_realloc(*subs, sizeof(exb_sub_t) * (size_t)(n + 1));
                        sub_from_row(st, &(*subs)[n++]);
                }
                sqlite3_finalize(st);
        }
        sqlite3_free(sql);
        return n;
}

int exb_control_subs(exb_control_t *ctl, exb_sub_t **subs)
{
        return subs_query(ctl, subs, NULL);
}

exb_sub_t *exb_control_sub(exb_control_t *ctl, const char *id)
{
        exb_sub_t *s;
        return subs_query(ctl, &s, id) == 1 ? s : NULL;
}

static void strarr_free(char **a, int n)
{
        for (int i = 0; i < n; i++)
                free(a[i]);
        free(a);
}

void exb_subs_free(exb_sub_t *subs, int n)
{
        for (int i = 0; subs && i < n; i++) {
                exb_sub_t *s = &subs[i];
                free(s->id);
                free(s->subscriber);
                free(s->resource);
                strarr_free(s->requested, s->nrequested);
                strarr_free(s->items, s->nitems);
                free(s->masks);
                free(s->filter);
                free(s->until);
                free(s->purpose);
                free(s->legal_basis);
                free(s->reason);
        }
        free(subs);
}

int exb_sub_active(const exb_sub_t *sub, int64_t now_ms)
{
        if (sub->state != EXB_SUB_APPROVED)
                return 0;
        int64_t days;
        if (sub->until && !exb_date_parse(sub->until, strlen(sub->until), &days))
                return now_ms < (days + 1) * 86400000LL; /* valid through that day (UTC) */
        return 1;
}

void exb_sub_topic(const exb_sub_t *sub, char *out, size_t out_size)
{
        snprintf(out, out_size, "exb.deliver.%s.%s", sub->subscriber, sub->resource);
}

static void spec_add(exb_topic_spec_t **specs, int *n, char *name, int partitions, int compact)
{
        *specs = exb_realloc(*specs, sizeof(**specs) * (size_t)(*n + 1));
        (*specs)[(*n)++] = (exb_topic_spec_t){name, partitions, compact,
                                              /* a dead letter is the rejected value as it came */
                                              !strncmp(name, "exb.dlq.", 8) ? EXB_DLQ_MAX_BYTES : 0};
}

int exb_control_topics(exb_control_t *ctl, int partitions, exb_topic_spec_t **specs)
{
        int n = 0;
        *specs = NULL;
        spec_add(specs, &n, exb_strdup(EXB_CONTROL_TOPIC), 1, 1);
        spec_add(specs, &n, exb_strdup(EXB_AUDIT_TOPIC), 1, 0);
        sqlite3_stmt *st;
        const char *sql =
            "SELECT 'exb.ingest.' || provider || '.' || code, 0 FROM resources"
            " UNION ALL SELECT 'exb.dlq.' || code, 1 FROM departments"
            " UNION ALL SELECT 'exb.deliver.' || subscriber || '.' || resource, 0"
            "  FROM subscriptions WHERE state='approved'";
        if (sqlite3_prepare_v2(ctl->db, sql, -1, &st, NULL) == SQLITE_OK) {
                while (sqlite3_step(st) == SQLITE_ROW)
                        spec_add(specs, &n, col_dup(st, 0),
                                 sqlite3_column_int(st, 1) ? 1 : partitions, 0);
                sqlite3_finalize(st);
        }
        return n;
}

void exb_topic_specs_free(exb_topic_spec_t *specs, int n)
{
        for (int i = 0; i < n; i++)
                free((char *)specs[i].name);
        free(specs);
}

/* ------------------------------------------------------------------ writes */

typedef struct write_result_s {
        int done;
        exb_err_t err;
        int64_t offset;
        char errstr[256];
} write_result_t;

static void write_dr(void *opaque, void *msg_opaque, exb_err_t err, const char *errstr,
                     int32_t partition, int64_t offset)
{
        (void)opaque;
        (void)partition;
        write_result_t *r = msg_opaque;
        r->done = 1;
        r->err = err;
        r->offset = offset;
        if (errstr)
                snprintf(r->errstr, sizeof(r->errstr), "%s", errstr);
}

/* Appends one record to exb.control and waits for the cache to apply it.
 * Returns its offset, or -1 with errstr. */
static int64_t control_write(exb_control_t *ctl, const char *key, json_t *value, char *errstr,
                             size_t errstr_size)
{
        if (!ctl->writer) {
                ctl->writer = exb_producer_new(ctl->brokers, ctl->props, ctl->nprops, write_dr,
                                               ctl, errstr, errstr_size);
                if (!ctl->writer)
                        return -1;
        }
        char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER);
        write_result_t r = {0};
        exb_topic_t *t = exb_producer_topic(ctl->writer, EXB_CONTROL_TOPIC);
        exb_err_t err = exb_produce(ctl->writer, t, 0, key, strlen(key), text, strlen(text), NULL,
                                    0, &r, errstr, errstr_size);
        free(text);
        if (err != EXB_OK)
                return -1;
        exb_producer_flush(ctl->writer, 30000);
        if (!r.done || r.err != EXB_OK) {
                exb_errf(errstr, errstr_size, "%s: write of %s failed: %s", EXB_CONTROL_TOPIC,
                         key, r.done ? r.errstr : "timed out");
                return -1;
        }
        int64_t deadline = exb_mono_ms() + 30000;
        while (ctl->next_offset <= r.offset) {
                if (exb_mono_ms() > deadline) {
                        exb_errf(errstr, errstr_size, "%s: offset %lld written but not read back",
                                 EXB_CONTROL_TOPIC, (long long)r.offset);
                        return -1;
                }
                if (control_read(ctl, 200, errstr, errstr_size) < 0)
                        return -1;
        }
        return r.offset;
}

/* Compare-and-set write of a resource/subscription record: value gets
 * "prev", the offset of the state the writer based its decision on (read
 * when it looked, not now: writing a schema first may have caught the cache
 * up with another writer's change); after reading back, the key's applied
 * offset must be ours. On a conflict the winner's record is re-asserted
 * (see header). */
static exb_err_t control_cas(exb_control_t *ctl, const char *table, const char *id_col,
                             const char *key, const char *id, int64_t prev, json_t *value,
                             char *errstr, size_t errstr_size)
{
        json_object_set_new(value, "prev", json_integer(prev));
        int64_t off = control_write(ctl, key, value, errstr, errstr_size);
        if (off < 0)
                return EXB_ERR_RETRY;
        int64_t applied = exb_sql_int(ctl->db, -1, "SELECT offset FROM %s WHERE %s=%Q", table, id_col, id);
        if (applied == off)
                return EXB_OK;
        if (applied > prev) { /* another writer won: make its state the key's last record */
                char *winner = exb_sql_text(ctl->db, "SELECT record FROM %s WHERE %s=%Q", table, id_col, id);
                json_t *w = winner ? json_loads(winner, 0, NULL) : NULL;
                if (w) {
                        json_object_set_new(w, "prev", json_integer(applied));
                        control_write(ctl, key, w, errstr, errstr_size);
                }
                json_decref(w);
                free(winner);
                exb_errf(errstr, errstr_size,
                         "%s was changed by another writer at offset %lld: nothing done; "
                         "look at it again and retry",
                         key, (long long)applied);
                return EXB_ERR_RETRY;
        }
        exb_errf(errstr, errstr_size, "%s: the change was not accepted (state changed)", key);
        return EXB_ERR_INVALID;
}

/* Registers schema under subject unless the same text is there. Returns id or -1. */
static int32_t schema_register(exb_control_t *ctl, const char *subject, const char *resource,
                               const exb_schema_t *schema, char *errstr, size_t errstr_size)
{
        char fp[65];
        exb_schema_fingerprint(schema, fp);
        int64_t id = exb_sql_int(ctl->db, -1,
                            "SELECT id FROM schemas WHERE subject=%Q AND fingerprint=%Q", subject, fp);
        if (id >= 0)
                return (int32_t)id;
        char key[300];
        snprintf(key, sizeof(key), "schema/%s/%.16s", subject, fp);
        json_t *v = json_pack("{s:s, s:s, s:s, s:s}", "subject", subject, "resource", resource,
                              "fingerprint", fp, "avro", schema->avro_json);
        int64_t off = control_write(ctl, key, v, errstr, errstr_size);
        json_decref(v);
        if (off > INT32_MAX) {
                exb_errf(errstr, errstr_size, "%s: offset %lld does not fit a schema id",
                         EXB_CONTROL_TOPIC, (long long)off);
                return -1;
        }
        return (int32_t)off;
}

exb_schema_t *exb_resource_schema(const exb_resource_t *res, char *errstr, size_t errstr_size)
{
        exb_field_t *f = exb_calloc((size_t)res->nitems, sizeof(*f));
        for (int i = 0; i < res->nitems; i++)
                f[i] = (exb_field_t){res->items[i].name, res->items[i].title, res->items[i].type,
                                     !res->items[i].is_key};
        char *name = exb_schema_name_for(res->code, NULL);
        exb_schema_t *s = exb_schema_new(name, f, res->nitems, errstr, errstr_size);
        free(name);
        free(f);
        return s;
}

exb_schema_t *exb_sub_delivery_schema(const exb_resource_t *res, const exb_sub_t *sub,
                                      char *errstr, size_t errstr_size)
{
        exb_field_t *f = exb_calloc((size_t)sub->nitems, sizeof(*f));
        for (int i = 0; i < sub->nitems; i++) {
                int idx = exb_resource_item_idx(res, sub->items[i]);
                if (idx < 0) {
                        exb_errf(errstr, errstr_size, "subscription %s: item \"%s\" is not an item of %s",
                                 sub->id, sub->items[i], res->code);
                        free(f);
                        return NULL;
                }
                const exb_item_t *it = &res->items[idx];
                exb_mask_kind_t mk = sub->masks[i].kind;
                f[i] = (exb_field_t){it->name, it->title,
                                     mk == EXB_MASK_PARTIAL || mk == EXB_MASK_HASH ? EXB_T_STRING
                                                                                   : it->type,
                                     !it->is_key || mk == EXB_MASK_REDACT};
        }
        char *name = exb_schema_name_for(res->code, sub->id);
        exb_schema_t *s = exb_schema_new(name, f, sub->nitems, errstr, errstr_size);
        free(name);
        free(f);
        return s;
}

static const char *import_status(exb_control_t *ctl, const exb_resource_t *res, char *buf,
                                 size_t size, int *changed)
{
        *changed = 0;
        exb_resource_t *cur = exb_control_resource(ctl, res->code, NULL);
        if (!cur) {
                *changed = 1;
                return "new";
        }
        const char *status = "unchanged";
        if (!exb_resource_same(cur, res)) {
                char why[512];
                if (!exb_resource_compatible(cur, res, why, sizeof(why))) {
                        snprintf(buf, size, "refused: %s", why);
                        status = buf;
                        *changed = -1;
                } else {
                        snprintf(buf, size, "new version %lld",
                                 (long long)exb_sql_int(ctl->db, 1,
                                                   "SELECT version FROM resources WHERE code=%Q",
                                                   res->code) + 1);
                        status = buf;
                        *changed = 1;
                }
        }
        exb_resource_destroy(cur);
        return status;
}

exb_err_t exb_control_import(exb_control_t *ctl, const exb_catalog_t *cat, exb_import_cb_t *cb,
                             void *opaque, char *errstr, size_t errstr_size)
{
        /* Validate everything first: a refused resource refuses the file. */
        for (int i = 0; i < cat->nresources; i++) {
                char buf[600];
                int changed;
                const char *st = import_status(ctl, cat->resources[i], buf, sizeof(buf), &changed);
                if (changed < 0) {
                        exb_errf(errstr, errstr_size, "resource %s: %s; nothing was imported",
                                 cat->resources[i]->code, st);
                        return EXB_ERR_INVALID;
                }
        }
        for (int i = 0; i < cat->ndepts; i++) {
                const exb_dept_t *d = &cat->depts[i];
                char *name = exb_sql_text(ctl->db, "SELECT name FROM departments WHERE code=%Q", d->code);
                int node = exb_control_dept_node(ctl, d->code);
                int want = d->node < 0 ? node : d->node; /* not given: as it is */
                const char *status = !name                 ? "new"
                                     : strcmp(name, d->name) ? "renamed"
                                     : node != want         ? (want ? "now an exchange node"
                                                                    : "no longer an exchange node")
                                                            : "unchanged";
                int write = strcmp(status, "unchanged");
                free(name);
                if (write) {
                        char key[64];
                        snprintf(key, sizeof(key), "department/%s", d->code);
                        json_t *v = json_pack("{s:s, s:s}", "code", d->code, "name", d->name);
                        if (want)
                                json_object_set_new(v, "node", json_true());
                        int64_t off = control_write(ctl, key, v, errstr, errstr_size);
                        json_decref(v);
                        if (off < 0)
                                return EXB_ERR_RETRY;
                }
                if (cb) {
                        char what[96];
                        snprintf(what, sizeof(what), "department %s", d->code);
                        cb(opaque, what, status);
                }
        }
        for (int i = 0; i < cat->nresources; i++) {
                const exb_resource_t *res = cat->resources[i];
                char buf[600];
                int changed;
                const char *status = import_status(ctl, res, buf, sizeof(buf), &changed);
                if (changed > 0) {
                        int64_t prev = exb_sql_int(ctl->db, -1,
                                              "SELECT offset FROM resources WHERE code=%Q", res->code);
                        exb_schema_t *s = exb_resource_schema(res, errstr, errstr_size);
                        if (!s)
                                return EXB_ERR_INVALID;
                        char subject[128], key[128];
                        snprintf(subject, sizeof(subject), "resource:%s", res->code);
                        int32_t id = schema_register(ctl, subject, res->code, s, errstr, errstr_size);
                        exb_schema_destroy(s);
                        if (id < 0)
                                return EXB_ERR_RETRY;
                        json_error_t jerr;
                        json_t *obj = json_loads(res->json, JSON_DECODE_ANY, &jerr);
                        int64_t version = exb_sql_int(ctl->db, 0,
                                                 "SELECT version FROM resources WHERE code=%Q",
                                                 res->code) + 1;
                        json_t *v = json_pack("{s:I, s:i, s:o}", "version", (json_int_t)version,
                                              "schema_id", (int)id, "resource", obj);
                        snprintf(key, sizeof(key), "resource/%s", res->code);
                        exb_err_t err = control_cas(ctl, "resources", "code", key, res->code, prev,
                                                    v, errstr, errstr_size);
                        json_decref(v);
                        if (err != EXB_OK)
                                return err;
                }
                if (cb) {
                        char what[96];
                        snprintf(what, sizeof(what), "resource %s", res->code);
                        cb(opaque, what, status);
                }
        }
        return EXB_OK;
}

/* ------------------------------------------------------------ subscriptions */

static int strarr_has(char **a, int n, const char *s)
{
        for (int i = 0; i < n; i++)
                if (!strcmp(a[i], s))
                        return 1;
        return 0;
}

exb_err_t exb_control_sub_request(exb_control_t *ctl, const exb_sub_request_t *req,
                                  int auto_approve, char *id_out, size_t id_size, char *errstr,
                                  size_t errstr_size)
{
        if (!exb_sql_int(ctl->db, 0, "SELECT count(*) FROM departments WHERE code=%Q", req->subscriber)) {
                exb_errf(errstr, errstr_size, "subscriber %s is not a department of the catalog",
                         req->subscriber);
                return EXB_ERR_INVALID;
        }
        exb_resource_t *res = exb_control_resource(ctl, req->resource, NULL);
        if (!res) {
                exb_errf(errstr, errstr_size, "resource %s is not in the catalog", req->resource);
                return EXB_ERR_INVALID;
        }
        exb_err_t err = EXB_ERR_INVALID;
        int64_t days;
        if (res->share_type == EXB_SHARE_NONE) {
                exb_errf(errstr, errstr_size, "resource %s is not shared (不予共享): %s", res->code,
                         res->share_condition ? res->share_condition : "no legal basis given");
                goto done;
        }
        if (!strcmp(res->provider, req->subscriber)) {
                exb_errf(errstr, errstr_size, "%s provides %s itself", req->subscriber, res->code);
                goto done;
        }
        if (req->nitems < 1) {
                exb_errf(errstr, errstr_size, "request at least one item of %s", res->code);
                goto done;
        }
        if (!req->purpose || !*req->purpose) {
                exb_errf(errstr, errstr_size, "a subscription needs a purpose (--purpose)");
                goto done;
        }
        if (req->until && exb_date_parse(req->until, strlen(req->until), &days)) {
                exb_errf(errstr, errstr_size, "--until %s: expected YYYY-MM-DD", req->until);
                goto done;
        }
        int all_unconditional = res->share_type == EXB_SHARE_UNCONDITIONAL;
        json_t *items = json_array();
        for (int i = 0; i < req->nitems; i++) {
                int idx = exb_resource_item_idx(res, req->items[i]);
                if (idx < 0 || res->items[idx].share_type == EXB_SHARE_NONE) {
                        exb_errf(errstr, errstr_size,
                                 idx < 0 ? "resource %s has no item \"%s\""
                                         : "resource %s: item \"%s\" is not shared",
                                 res->code, req->items[i]);
                        json_decref(items);
                        goto done;
                }
                if (res->items[idx].share_type != EXB_SHARE_UNCONDITIONAL)
                        all_unconditional = 0;
                json_array_append_new(items, json_string(req->items[i]));
        }
        char *open_id = exb_sql_text(ctl->db,
                                "SELECT id FROM subscriptions WHERE subscriber=%Q AND resource=%Q"
                                " AND state IN ('requested','approved')",
                                req->subscriber, req->resource);
        if (open_id) {
                exb_errf(errstr, errstr_size,
                         "%s already has subscription %s to %s: change or revoke that one",
                         req->subscriber, open_id, req->resource);
                free(open_id);
                json_decref(items);
                goto done;
        }
        unsigned char nonce[8];
        RAND_bytes(nonce, sizeof(nonce));
        char key[160];
        snprintf(key, sizeof(key), "request/%s.%s.%02x%02x%02x%02x%02x%02x%02x%02x",
                 req->subscriber, req->resource, nonce[0], nonce[1], nonce[2], nonce[3], nonce[4],
                 nonce[5], nonce[6], nonce[7]);
        json_t *v = json_pack("{s:s, s:s, s:o, s:s, s:s?, s:s?, s:I}", "subscriber",
                              req->subscriber, "resource", req->resource, "items", items,
                              "purpose", req->purpose, "legal_basis", req->legal_basis, "until",
                              req->until, "at", (json_int_t)exb_now_ms());
        int64_t off = control_write(ctl, key, v, errstr, errstr_size);
        json_decref(v);
        if (off < 0) {
                err = EXB_ERR_RETRY;
                goto done;
        }
        sub_id_for(off, id_out, id_size);
        err = EXB_OK;
        if (auto_approve && all_unconditional) {
                exb_sub_decision_t dec = {.state = EXB_SUB_APPROVED, .until = req->until};
                err = exb_control_sub_decide(ctl, id_out, &dec, errstr, errstr_size);
        }
done:
        exb_resource_destroy(res);
        return err;
}

/* Validates an approval against the resource and the request; fills sub's
 * items/masks/filter for the delivery schema. */
static exb_err_t approval_check(const exb_resource_t *res, exb_sub_t *sub,
                                const exb_sub_decision_t *dec, json_t *items, json_t *masks,
                                char *errstr, size_t errstr_size)
{
        /* Re-approving an approved subscription keeps its items and masks
         * unless new ones are given; a first approval defaults to the request. */
        int keep = sub->state != EXB_SUB_REQUESTED;
        char **cur_items = sub->items;
        int ncur = sub->nitems;
        exb_mask_t *cur_masks = sub->masks;
        const char *const *names = dec->items  ? dec->items
                                   : keep      ? (const char *const *)cur_items
                                               : (const char *const *)sub->requested;
        int n = dec->items ? dec->nitems : keep ? ncur : sub->nrequested;
        sub->items = exb_calloc((size_t)n + 1, sizeof(char *));
        sub->masks = exb_calloc((size_t)n + 1, sizeof(exb_mask_t));
        sub->nitems = 0;
        exb_err_t err = EXB_ERR_INVALID;
        for (int i = 0; i < n; i++) {
                if (exb_resource_item_idx(res, names[i]) < 0) {
                        exb_errf(errstr, errstr_size, "resource %s has no item \"%s\"", res->code,
                                 names[i]);
                        goto out;
                }
                if (!strarr_has(sub->requested, sub->nrequested, names[i])) {
                        exb_errf(errstr, errstr_size,
                                 "item \"%s\" was not requested by %s (requested: see sub list)",
                                 names[i], sub->id);
                        goto out;
                }
                if (strarr_has(sub->items, sub->nitems, names[i]))
                        continue;
                if (keep && !dec->nmasks)
                        for (int k = 0; k < ncur; k++)
                                if (!strcmp(cur_items[k], names[i]) &&
                                    cur_masks[k].kind != EXB_MASK_NONE) {
                                        char spec[64];
                                        sub->masks[sub->nitems] = cur_masks[k];
                                        exb_mask_format(&cur_masks[k], spec, sizeof(spec));
                                        json_object_set_new(masks, names[i], json_string(spec));
                                }
                sub->items[sub->nitems++] = exb_strdup(names[i]);
                json_array_append_new(items, json_string(names[i]));
        }
        for (int i = 0; i < dec->nmasks; i++) {
                const char *eq = strchr(dec->mask_specs[i], '=');
                char item[128];
                if (!eq || eq == dec->mask_specs[i] || (size_t)(eq - dec->mask_specs[i]) >= sizeof(item)) {
                        exb_errf(errstr, errstr_size, "--mask %s: expected ITEM=partial:H:T|hash|redact",
                                 dec->mask_specs[i]);
                        goto out;
                }
                snprintf(item, sizeof(item), "%.*s", (int)(eq - dec->mask_specs[i]), dec->mask_specs[i]);
                int k;
                for (k = 0; k < sub->nitems && strcmp(sub->items[k], item); k++)
                        ;
                if (k == sub->nitems) {
                        exb_errf(errstr, errstr_size, "--mask %s: item \"%s\" is not approved",
                                 dec->mask_specs[i], item);
                        goto out;
                }
                char err[200];
                if (exb_mask_parse(eq + 1, &sub->masks[k], err, sizeof(err))) {
                        exb_errf(errstr, errstr_size, "--mask %s: %s", dec->mask_specs[i], err);
                        goto out;
                }
                int idx = exb_resource_item_idx(res, item);
                if (sub->masks[k].kind == EXB_MASK_REDACT && res->items[idx].is_key) {
                        exb_errf(errstr, errstr_size,
                                 "--mask %s: key item \"%s\" cannot be redacted (use hash or partial)",
                                 dec->mask_specs[i], item);
                        goto out;
                }
                json_object_set_new(masks, item, json_string(eq + 1));
        }
        for (int k = 0; k < res->nkeys; k++)
                if (!strarr_has(sub->items, sub->nitems, res->items[res->key_idx[k]].name)) {
                        exb_errf(errstr, errstr_size,
                                 "key item \"%s\" of %s must be among the approved items",
                                 res->items[res->key_idx[k]].name, res->code);
                        goto out;
                }
        if (dec->filter && *dec->filter) {
                exb_schema_t *schema = exb_resource_schema(res, errstr, errstr_size);
                if (!schema)
                        goto out;
                exb_filter_t *f = exb_filter_parse(dec->filter, schema, errstr, errstr_size);
                exb_schema_destroy(schema);
                if (!f)
                        goto out;
                exb_filter_destroy(f);
        }
        int64_t days;
        if (dec->until && exb_date_parse(dec->until, strlen(dec->until), &days)) {
                exb_errf(errstr, errstr_size, "--until %s: expected YYYY-MM-DD", dec->until);
                goto out;
        }
        err = EXB_OK;
out:
        strarr_free(cur_items, ncur);
        free(cur_masks);
        return err;
}

exb_err_t exb_control_sub_decide(exb_control_t *ctl, const char *id,
                                 const exb_sub_decision_t *dec, char *errstr, size_t errstr_size)
{
        exb_sub_t *sub = exb_control_sub(ctl, id);
        if (!sub) {
                exb_errf(errstr, errstr_size, "no subscription %s", id);
                return EXB_ERR_INVALID;
        }
        exb_err_t err = EXB_ERR_INVALID;
        exb_resource_t *res = NULL;
        json_t *v = NULL;
        exb_sub_state_t from = sub->state == EXB_SUB_EXPIRED ? EXB_SUB_APPROVED : sub->state;
        if (!transition_ok(from, dec->state)) {
                exb_errf(errstr, errstr_size, "subscription %s is %s: it cannot become %s", id,
                         exb_sub_state_name(sub->state), exb_sub_state_name(dec->state));
                goto done;
        }
        if (dec->state != EXB_SUB_APPROVED && (!dec->reason || !*dec->reason)) {
                exb_errf(errstr, errstr_size, "%s %s needs --reason",
                         dec->state == EXB_SUB_REJECTED ? "reject" : "revoke", id);
                goto done;
        }
        v = json_pack("{s:s, s:s?, s:I}", "state", exb_sub_state_name(dec->state), "reason",
                      dec->reason, "at", (json_int_t)exb_now_ms());
        if (dec->state == EXB_SUB_APPROVED) {
                res = exb_control_resource(ctl, sub->resource, NULL);
                if (!res) {
                        exb_errf(errstr, errstr_size, "resource %s is no longer in the catalog",
                                 sub->resource);
                        goto done;
                }
                json_t *items = json_array(), *masks = json_object();
                json_object_set_new(v, "items", items);
                json_object_set_new(v, "masks", masks);
                if ((err = approval_check(res, sub, dec, items, masks, errstr, errstr_size)))
                        goto done;
                err = EXB_ERR_INVALID;
                exb_schema_t *ds = exb_sub_delivery_schema(res, sub, errstr, errstr_size);
                if (!ds)
                        goto done;
                char subject[64];
                snprintf(subject, sizeof(subject), "delivery:%s", id);
                int32_t sid = schema_register(ctl, subject, res->code, ds, errstr, errstr_size);
                exb_schema_destroy(ds);
                if (sid < 0) {
                        err = EXB_ERR_RETRY;
                        goto done;
                }
                json_object_set_new(v, "delivery_schema_id", json_integer(sid));
                /* --filter '' removes the filter; no --filter keeps the current one. */
                const char *filter = dec->filter ? dec->filter : sub->filter;
                if (filter && *filter)
                        json_object_set_new(v, "filter", json_string(filter));
                const char *until = dec->until ? dec->until : sub->until;
                if (until)
                        json_object_set_new(v, "until", json_string(until));
        }
        char key[96];
        snprintf(key, sizeof(key), "subscription/%s", id);
        err = control_cas(ctl, "subscriptions", "id", key, id, sub->offset, v, errstr, errstr_size);
done:
        json_decref(v);
        exb_resource_destroy(res);
        exb_subs_free(sub, 1);
        return err;
}
