/*
 * test_catalog.c — catalog file validation (exb_catalog.c).
 *
 * Validation cases are mutations of data/catalog_min.json, a small valid
 * catalog: each case changes (or deletes, or appends) one or two values by
 * path and asserts the exact message, which names file, resource and item.
 * Runs in test/unit (fixtures in data/, the sample catalog in ops/examples).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "exb_catalog.h"

#define MIN    "data/catalog_min.json"
#define SAMPLE "../../ops/examples/catalog.json"
#define R0     MIN ": resource 370600-GA-0001"
#define R1     MIN ": resource 370600-MZ-0001"

static char *slurp(const char *path, size_t *lenp)
{
        FILE *fp = fopen(path, "rb");
        char *buf;
        long n;
        assert_non_null(fp);
        fseek(fp, 0, SEEK_END);
        n = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
        buf[n] = '\0';
        fclose(fp);
        if (lenp)
                *lenp = (size_t)n;
        return buf;
}

/* Applies one mutation: path "resources/0/items/2/type" (numbers index
 * arrays, "+" appends); value JSON text, NULL deletes. */
static void mutate(json_t *root, const char *path, const char *value)
{
        char buf[256], *seg = buf, *slash;
        json_t *cur = root, *v = NULL;

        snprintf(buf, sizeof(buf), "%s", path);
        while ((slash = strchr(seg, '/'))) {
                *slash = '\0';
                cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(seg))
                                         : json_object_get(cur, seg);
                assert_non_null(cur);
                seg = slash + 1;
        }
        if (value) {
                json_error_t jerr;
                v = json_loads(value, JSON_DECODE_ANY, &jerr);
                if (!v)
                        fail_msg("bad test value %s: %s", value, jerr.text);
        }
        if (json_is_array(cur)) {
                if (!strcmp(seg, "+"))
                        assert_int_equal(json_array_append_new(cur, v), 0);
                else if (v)
                        assert_int_equal(json_array_set_new(cur, (size_t)atoi(seg), v), 0);
                else
                        assert_int_equal(json_array_remove(cur, (size_t)atoi(seg)), 0);
        } else {
                if (v)
                        assert_int_equal(json_object_set_new(cur, seg, v), 0);
                else
                        assert_int_equal(json_object_del(cur, seg), 0);
        }
}

/* The minimal fixture with up to two mutations, as text. Caller frees. */
static char *mutated(const char *path1, const char *value1, const char *path2, const char *value2)
{
        char *text = slurp(MIN, NULL), *out;
        json_t *root = json_loads(text, 0, NULL);
        assert_non_null(root);
        free(text);
        if (path1)
                mutate(root, path1, value1);
        if (path2)
                mutate(root, path2, value2);
        out = json_dumps(root, JSON_INDENT(2));
        json_decref(root);
        return out;
}

/* ------------------------------------------------------------ valid files */

static void test_sample_catalog(void **state)
{
        char errstr[512] = "";
        size_t len;
        char *text = slurp(SAMPLE, &len);
        exb_catalog_t *cat;
        int types[128] = {0}, nnone = 0, composite = 0;
        (void)state;

        cat = exb_catalog_parse("catalog.json", text, len, NULL, 0, errstr, sizeof(errstr));
        if (!cat)
                fail_msg("%s", errstr);
        free(text);

        static const char *const depts[] = {"GA", "MZ", "RS", "SC", "GJJ"};
        for (size_t i = 0; i < EXB_ARRAY_CNT(depts); i++)
                assert_non_null(exb_catalog_dept(cat, depts[i]));
        assert_string_equal(exb_catalog_dept(cat, "GJJ")->name, "市住房公积金管理中心");
        assert_true(cat->nresources >= 5);

        const exb_resource_t *ga = exb_catalog_resource(cat, "370600-GA-0001");
        assert_non_null(ga);
        assert_string_equal(ga->name, "人口基本信息");
        assert_int_equal(ga->share_type, EXB_SHARE_CONDITIONAL);
        assert_int_equal(ga->nkeys, 1);
        const exb_item_t *id = &ga->items[ga->key_idx[0]];
        assert_string_equal(id->name, "id_number");
        assert_int_equal(id->check, EXB_CHECK_GB11643);
        assert_int_equal(id->length, 18);
        assert_true(id->is_key && id->required);
        assert_int_equal(ga->items[exb_resource_item_idx(ga, "birth_date")].type, EXB_T_DATE);

        const exb_resource_t *sc = exb_catalog_resource(cat, "370600-SC-0001");
        assert_non_null(sc);
        assert_int_equal(sc->share_type, EXB_SHARE_UNCONDITIONAL);
        assert_int_equal(sc->items[sc->key_idx[0]].check, EXB_CHECK_GB32100);
        assert_true(sc->open);

        const exb_resource_t *mz = exb_catalog_resource(cat, "370600-MZ-0001");
        assert_non_null(mz);
        assert_int_equal(mz->share_type, EXB_SHARE_CONDITIONAL);
        const exb_resource_t *rs = exb_catalog_resource(cat, "370600-RS-0001");
        assert_non_null(rs);

        for (int r = 0; r < cat->nresources; r++) {
                const exb_resource_t *res = cat->resources[r];
                exb_resource_t *back;
                nnone += res->share_type == EXB_SHARE_NONE;
                composite += res->nkeys > 1;
                if (res->share_type != EXB_SHARE_UNCONDITIONAL)
                        assert_non_null(res->share_condition);
                for (int i = 0; i < res->nitems; i++)
                        types[res->items[i].type] = 1;
                /* The kept text reads back as the same resource. */
                back = exb_resource_parse_json("control", res->json, strlen(res->json), errstr,
                                               sizeof(errstr));
                if (!back)
                        fail_msg("%s", errstr);
                assert_true(exb_resource_same(res, back));
                assert_true(exb_resource_compatible(res, back, errstr, sizeof(errstr)));
                exb_resource_destroy(back);
        }
        assert_true(nnone >= 1);
        assert_true(composite >= 1);
        for (const char *t = "CNIDTLB"; *t; t++)
                if (!types[(int)*t])
                        fail_msg("sample catalog uses no item of type %c", *t);
        exb_catalog_destroy(cat);
}

static void test_min_catalog_fields(void **state)
{
        char errstr[512] = "";
        size_t len;
        char *text = slurp(MIN, &len);
        exb_catalog_t *cat;
        (void)state;

        cat = exb_catalog_parse(MIN, text, len, NULL, 0, errstr, sizeof(errstr));
        if (!cat)
                fail_msg("%s", errstr);
        free(text);
        assert_int_equal(cat->ndepts, 2);
        assert_int_equal(cat->nresources, 2);

        const exb_resource_t *ga = cat->resources[0];
        assert_string_equal(ga->code, "370600-GA-0001");
        assert_string_equal(ga->provider, "GA");
        assert_string_equal(ga->category_json, "[\"基础信息资源\",\"人口\"]");
        assert_string_equal(ga->related_json, "[\"370600-GA-0002\"]");
        assert_string_equal(ga->update_cycle, "实时");
        assert_string_equal(ga->publish_date, "2026-01-15");
        assert_string_equal(ga->share_method, "共享平台/数据库");
        assert_int_equal(ga->open, 0);
        assert_int_equal(ga->nitems, 4);
        assert_string_equal(ga->items[1].title, "姓名");
        assert_int_equal(ga->items[1].share_type, EXB_SHARE_CONDITIONAL);
        assert_int_equal(ga->items[2].required, 0);
        assert_int_equal(ga->items[2].is_key, 0);
        assert_int_equal(ga->items[2].length, 0);
        assert_int_equal(exb_resource_item_idx(ga, "region"), 3);
        assert_int_equal(exb_resource_item_idx(ga, "nope"), -1);
        /* Kept as given: compact, in file order, Chinese as UTF-8. */
        assert_true(!strncmp(ga->json, "{\"code\":\"370600-GA-0001\",\"name\":\"人口基本信息\"",
                             strlen("{\"code\":\"370600-GA-0001\",\"name\":\"人口基本信息\"")));

        /* Only the required keys; key items become required; items inherit
         * the resource's share type. */
        const exb_resource_t *mz = cat->resources[1];
        assert_null(mz->summary);
        assert_null(mz->category_json);
        assert_null(mz->publish_date);
        assert_null(mz->update_cycle);
        assert_int_equal(mz->share_type, EXB_SHARE_NONE);
        assert_int_equal(mz->nkeys, 2);
        assert_int_equal(mz->key_idx[0], 0);
        assert_int_equal(mz->key_idx[1], 1);
        assert_true(mz->items[1].required && mz->items[1].is_key);
        assert_int_equal(mz->items[2].share_type, EXB_SHARE_NONE);
        exb_catalog_destroy(cat);
}

/* Mutations that keep the file valid. */
static void test_valid_variants(void **state)
{
        static const struct {
                const char *p1, *v1, *p2, *v2;
        } cases[] = {
                /* an item more restricted than its resource */
                {"resources/0/items/3/share_type", "\"none\""},
                /* check without a length */
                {"resources/0/items/0/length", NULL},
                /* explicit required on a key item */
                {"resources/1/items/1/required", "true"},
                /* unconditional may still state a condition */
                {"resources/0/share_type", "\"unconditional\"", "resources/0/items/3/share_type",
                 "\"conditional\""},
                /* empty optional lists */
                {"resources/0/category", "[]", "resources/0/related", "[]"},
                /* a composite key of 8 items, of every keyable type */
                {"resources/0/items",
                 "[{\"name\":\"a\",\"type\":\"C\"},{\"name\":\"b\",\"type\":\"I\"},"
                 "{\"name\":\"c\",\"type\":\"D\"},{\"name\":\"d\",\"type\":\"T\"},"
                 "{\"name\":\"e\",\"type\":\"L\"},{\"name\":\"f\",\"type\":\"C\"},"
                 "{\"name\":\"g\",\"type\":\"C\"},{\"name\":\"_h9\",\"type\":\"C\"}]",
                 "resources/0/key", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"_h9\"]"},
                /* a departments-only file */
                {"resources", NULL},
                /* an exchange node */
                {"departments/0/node", "true", "departments/1/node", "false"},
                /* leap day */
                {"resources/0/publish_date", "\"2028-02-29\""},
        };
        (void)state;
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                char errstr[512] = "";
                char *text = mutated(cases[i].p1, cases[i].v1, cases[i].p2, cases[i].v2);
                exb_catalog_t *cat =
                        exb_catalog_parse(MIN, text, strlen(text), NULL, 0, errstr, sizeof(errstr));
                if (!cat)
                        fail_msg("case %zu (%s): %s", i, cases[i].p1, errstr);
                exb_catalog_destroy(cat);
                free(text);
        }
}

/* ------------------------------------------------------------ every rule */

static const struct {
        const char *p1, *v1, *p2, *v2;
        const char *expect;
} bad_cases[] = {
        /* file */
        {"resource", "[]", NULL, NULL,
         MIN ": unknown key \"resource\" (did you mean \"resources\"?)"},
        {"version", "1", NULL, NULL, MIN ": unknown key \"version\""},
        {"departments", NULL, "resources", NULL,
         MIN ": nothing to import (no \"departments\" nor \"resources\")"},
        {"departments", "{}", NULL, NULL, MIN ": \"departments\" must be an array"},
        {"resources", "{}", NULL, NULL, MIN ": \"resources\" must be an array"},
        /* departments */
        {"departments/1", "\"MZ\"", NULL, NULL, MIN ": departments[1]: must be an object"},
        {"departments/0/code", NULL, NULL, NULL, MIN ": departments[0]: missing \"code\""},
        {"departments/1/code", "\"GA\"", NULL, NULL, MIN ": departments[1]: duplicate code \"GA\""},
        {"departments/0/code", "\"G A\"", NULL, NULL,
         MIN ": departments[0]: code \"G A\" is not a department code ([A-Za-z0-9_]{1,32})"},
        {"departments/0/code", "\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"", NULL, NULL,
         MIN ": departments[0]: code \"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\" is not a department "
             "code ([A-Za-z0-9_]{1,32})"},
        {"departments/0/name", "\"\"", NULL, NULL,
         MIN ": departments[0]: \"name\" must not be empty"},
        {"departments/0/name", NULL, NULL, NULL, MIN ": departments[0]: missing \"name\""},
        {"departments/0/node", "\"yes\"", NULL, NULL,
         MIN ": departments[0]: \"node\" must be true or false"},
        {"departments/0/nmae", "\"x\"", NULL, NULL,
         MIN ": departments[0]: unknown key \"nmae\" (did you mean \"name\"?)"},
        /* resource identity */
        {"resources/0", "[]", NULL, NULL, MIN ": resources[0]: must be an object"},
        {"resources/0/code", NULL, NULL, NULL, MIN ": resources[0]: missing \"code\""},
        {"resources/1/code", "42", NULL, NULL, MIN ": resources[1]: \"code\" must be a string"},
        {"resources/1/code", "\"370600_MZ\"", NULL, NULL,
         MIN ": resources[1]: code \"370600_MZ\" is not a resource code ([A-Za-z0-9-]{1,64})"},
        {"resources/1/code", "\"370600-GA-0001\"", NULL, NULL,
         MIN ": resource 370600-GA-0001: duplicate code (also resources[0])"},
        {"resources/0/sumary", "\"x\"", NULL, NULL,
         R0 ": unknown key \"sumary\" (did you mean \"summary\"?)"},
        {"resources/0/name", NULL, NULL, NULL, R0 ": missing \"name\""},
        {"resources/0/name", "5", NULL, NULL, R0 ": \"name\" must be a string"},
        {"resources/0/provider", "\"XX\"", NULL, NULL,
         R0 ": provider \"XX\" is not a known department"},
        {"resources/0/provider", "\"G-A\"", NULL, NULL,
         R0 ": provider \"G-A\" is not a department code ([A-Za-z0-9_]{1,32})"},
        {"resources/0/provider", NULL, NULL, NULL, R0 ": missing \"provider\""},
        /* share type and condition */
        {"resources/0/share_type", "\"open\"", NULL, NULL,
         R0 ": share_type \"open\" is not one of unconditional, conditional, none"},
        {"resources/0/share_type", NULL, NULL, NULL, R0 ": missing \"share_type\""},
        {"resources/0/share_condition", NULL, NULL, NULL,
         R0 ": share_type conditional needs \"share_condition\" (the conditions of use)"},
        {"resources/1/share_condition", "\"\"", NULL, NULL,
         R1 ": share_type none needs \"share_condition\" (the legal basis for not sharing)"},
        /* other metadata */
        {"resources/0/update_cycle", "\"每天\"", NULL, NULL,
         R0 ": update_cycle \"每天\" is not one of 实时/每日/每周/每月/每季度/每年/其他"},
        {"resources/0/publish_date", "\"2026-02-30\"", NULL, NULL,
         R0 ": publish_date \"2026-02-30\" is not a date (YYYY-MM-DD)"},
        {"resources/0/publish_date", "\"2026/01/15\"", NULL, NULL,
         R0 ": publish_date \"2026/01/15\" is not a date (YYYY-MM-DD)"},
        {"resources/0/open", "\"no\"", NULL, NULL, R0 ": \"open\" must be true or false"},
        {"resources/0/summary", "[]", NULL, NULL, R0 ": \"summary\" must be a string"},
        {"resources/0/category", "\"人口\"", NULL, NULL,
         R0 ": \"category\" must be an array of strings"},
        {"resources/0/category/1", "\"\"", NULL, NULL,
         R0 ": category[1]: must be a non-empty string"},
        {"resources/0/related/0", "\"370600 GA\"", NULL, NULL,
         R0 ": related[0]: \"370600 GA\" is not a resource code ([A-Za-z0-9-]{1,64})"},
        /* items */
        {"resources/0/items", NULL, NULL, NULL, R0 ": missing \"items\""},
        {"resources/0/items", "[]", NULL, NULL,
         R0 ": \"items\" must be an array of 1 to 512 items"},
        {"resources/0/items/1", "\"name\"", NULL, NULL, R0 ": items[1]: must be an object"},
        {"resources/0/items/2/name", NULL, NULL, NULL, R0 ": items[2]: missing \"name\""},
        {"resources/0/items/2/name", "\"2birth\"", NULL, NULL,
         R0 ": item \"2birth\": invalid name (letters, digits and _, not starting with a digit, "
            "at most 64)"},
        {"resources/0/items/2/name", "\"birth-date\"", NULL, NULL,
         R0 ": item \"birth-date\": invalid name (letters, digits and _, not starting with a "
            "digit, at most 64)"},
        {"resources/0/items/+", "{\"name\":\"Name\",\"type\":\"C\"}", NULL, NULL,
         R0 ": item \"Name\": duplicate item name (items[1] is \"name\")"},
        {"resources/0/items/1/titel", "\"x\"", NULL, NULL,
         R0 ": item \"name\": unknown key \"titel\" (did you mean \"title\"?)"},
        {"resources/0/items/1/title", "1", NULL, NULL,
         R0 ": item \"name\": \"title\" must be a string"},
        {"resources/0/items/2/type", "\"X\"", NULL, NULL,
         R0 ": item \"birth_date\": unknown type \"X\" (one of C N I D T L B)"},
        {"resources/0/items/2/type", "\"DATE\"", NULL, NULL,
         R0 ": item \"birth_date\": unknown type \"DATE\" (one of C N I D T L B)"},
        {"resources/0/items/2/type", "\"d\"", NULL, NULL,
         R0 ": item \"birth_date\": unknown type \"d\" (one of C N I D T L B)"},
        {"resources/0/items/2/type", NULL, NULL, NULL,
         R0 ": item \"birth_date\": missing \"type\""},
        {"resources/0/items/3/length", "-1", NULL, NULL,
         R0 ": item \"region\": \"length\" must be an integer from 0 to 1073741824"},
        {"resources/0/items/3/length", "6.5", NULL, NULL,
         R0 ": item \"region\": \"length\" must be an integer from 0 to 1073741824"},
        {"resources/0/items/1/required", "\"yes\"", NULL, NULL,
         R0 ": item \"name\": \"required\" must be true or false"},
        {"resources/0/items/0/check", "\"gb1164\"", NULL, NULL,
         R0 ": item \"id_number\": unknown check \"gb1164\" (one of gb11643, gb32100)"},
        {"resources/0/items/2/check", "\"gb11643\"", NULL, NULL,
         R0 ": item \"birth_date\": check \"gb11643\" needs type C, not D"},
        {"resources/0/items/0/length", "15", NULL, NULL,
         R0 ": item \"id_number\": length 15 is too short for check \"gb11643\" (18 characters)"},
        {"resources/0/items/1/share_type", "\"unconditional\"", NULL, NULL,
         R0 ": item \"name\": share_type unconditional is more open than the resource's "
            "(conditional)"},
        {"resources/0/items/1/share_type", "\"secret\"", NULL, NULL,
         R0 ": item \"name\": share_type \"secret\" is not one of unconditional, conditional, "
            "none"},
        {"resources/1/items/2/share_type", "\"conditional\"", NULL, NULL,
         R1 ": item \"reg_date\": share_type conditional is more open than the resource's (none)"},
        /* key */
        {"resources/0/key", NULL, NULL, NULL, R0 ": missing \"key\""},
        {"resources/0/key", "[]", NULL, NULL, R0 ": \"key\" must be an array of 1 to 8 item names"},
        {"resources/0/key", "\"id_number\"", NULL, NULL,
         R0 ": \"key\" must be an array of 1 to 8 item names"},
        {"resources/0/key", "[\"id_number\",1]", NULL, NULL, R0 ": key[1]: must be an item name"},
        {"resources/0/key", "[\"idnumber\"]", NULL, NULL, R0 ": key: no item \"idnumber\""},
        {"resources/0/key", "[\"id_number\",\"id_number\"]", NULL, NULL,
         R0 ": key: item \"id_number\" listed twice"},
        {"resources/1/items/0/required", "false", NULL, NULL,
         R1 ": item \"cert_no\": a key item cannot be \"required\": false"},
        {"resources/0/items/3/type", "\"N\"", "resources/0/key", "[\"region\"]",
         R0 ": item \"region\": type N cannot be a key item (use C, I, D, T or L)"},
        {"resources/0/items/3/type", "\"B\"", "resources/0/key", "[\"id_number\",\"region\"]",
         R0 ": item \"region\": type B cannot be a key item (use C, I, D, T or L)"},
};

static void test_bad_catalogs(void **state)
{
        (void)state;
        for (size_t i = 0; i < EXB_ARRAY_CNT(bad_cases); i++) {
                char errstr[512] = "";
                char *text =
                        mutated(bad_cases[i].p1, bad_cases[i].v1, bad_cases[i].p2, bad_cases[i].v2);
                exb_catalog_t *cat =
                        exb_catalog_parse(MIN, text, strlen(text), NULL, 0, errstr, sizeof(errstr));
                if (cat)
                        fail_msg("case %zu (%s): accepted, expected: %s", i, bad_cases[i].p1,
                                 bad_cases[i].expect);
                if (strcmp(errstr, bad_cases[i].expect))
                        fail_msg("case %zu (%s):\n  got:      %s\n  expected: %s", i,
                                 bad_cases[i].p1, errstr, bad_cases[i].expect);
                free(text);
        }
}

static void test_too_many(void **state)
{
        char errstr[512] = "";
        json_t *items = json_array(), *key = json_array();
        char *text, *items_txt, *key_txt;
        (void)state;

        for (int i = 0; i < 513; i++) {
                char name[16];
                snprintf(name, sizeof(name), "i%d", i);
                json_array_append_new(items, json_pack("{s:s,s:s}", "name", name, "type", "C"));
                if (i < 9)
                        json_array_append_new(key, json_string(name));
        }
        items_txt = json_dumps(items, JSON_COMPACT);
        key_txt = json_dumps(key, JSON_COMPACT);

        text = mutated("resources/0/items", items_txt, "resources/0/key", "[\"i0\"]");
        assert_null(exb_catalog_parse(MIN, text, strlen(text), NULL, 0, errstr, sizeof(errstr)));
        assert_string_equal(errstr, R0 ": \"items\" must be an array of 1 to 512 items");
        free(text);

        json_array_remove(items, 512);
        free(items_txt);
        items_txt = json_dumps(items, JSON_COMPACT);
        text = mutated("resources/0/items", items_txt, "resources/0/key", key_txt);
        assert_null(exb_catalog_parse(MIN, text, strlen(text), NULL, 0, errstr, sizeof(errstr)));
        assert_string_equal(errstr, R0 ": \"key\" must be an array of 1 to 8 item names");
        free(text);

        text = mutated("resources/0/items", items_txt, "resources/0/key", "[\"i511\"]");
        exb_catalog_t *cat =
                exb_catalog_parse(MIN, text, strlen(text), NULL, 0, errstr, sizeof(errstr));
        if (!cat)
                fail_msg("%s", errstr);
        assert_int_equal(cat->resources[0]->nitems, 512);
        exb_catalog_destroy(cat);
        free(text);

        free(items_txt);
        free(key_txt);
        json_decref(items);
        json_decref(key);
}

static void test_bad_files(void **state)
{
        static const struct {
                const char *fname; /* fixture, or NULL to parse text */
                const char *text;
                const char *expect_prefix;
        } cases[] = {
                {"data/catalog_syntax.json", NULL, "data/catalog_syntax.json:3:"},
                {"data/catalog_dupkey.json", NULL, "data/catalog_dupkey.json:3:"},
                {NULL, "[]",
                 "t.json: must be a JSON object with \"departments\" and \"resources\""},
                {NULL, "", "t.json:"},
                {NULL, "{\"departments\":[]} trailing", "t.json:1:"},
                {NULL, "{\"departments\":[{\"code\":\"GA\",\"name\":\"\\u0000\"}]}", "t.json:1:"},
                {NULL, "{\"departments\":[{\"code\":\"GA\",\"name\":\"\xff\"}]}", "t.json:"},
        };
        (void)state;
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                char errstr[512] = "";
                size_t len;
                char *text = cases[i].fname ? slurp(cases[i].fname, &len) : strdup(cases[i].text);
                if (!cases[i].fname)
                        len = strlen(text);
                exb_catalog_t *cat = exb_catalog_parse(cases[i].fname ? cases[i].fname : "t.json",
                                                       text, len, NULL, 0, errstr, sizeof(errstr));
                if (cat)
                        fail_msg("case %zu accepted", i);
                if (strncmp(errstr, cases[i].expect_prefix, strlen(cases[i].expect_prefix)))
                        fail_msg("case %zu: got \"%s\", expected a message starting \"%s\"", i,
                                 errstr, cases[i].expect_prefix);
                free(text);
        }
        /* The duplicate key is named. */
        {
                char errstr[512] = "";
                size_t len;
                char *text = slurp("data/catalog_dupkey.json", &len);
                assert_null(exb_catalog_parse("data/catalog_dupkey.json", text, len, NULL, 0,
                                              errstr, sizeof(errstr)));
                assert_non_null(strstr(errstr, "duplicate"));
                assert_non_null(strstr(errstr, "code"));
                free(text);
        }
        /* Text is bounded by len, not by a NUL. */
        {
                char errstr[512] = "";
                const char *text = "{\"departments\":[{\"code\":\"GA\",\"name\":\"x\"}]}GARBAGE";
                exb_catalog_t *cat = exb_catalog_parse("t.json", text, strlen(text) - 7, NULL, 0,
                                                       errstr, sizeof(errstr));
                if (!cat)
                        fail_msg("%s", errstr);
                exb_catalog_destroy(cat);
        }
}

/* A file of resources only, for departments already published. */
static void test_known_depts(void **state)
{
        static const char *const known[] = {"GA", "MZ"};
        char errstr[512] = "";
        char *text = mutated("departments", NULL, NULL, NULL);
        exb_catalog_t *cat;
        (void)state;

        assert_null(exb_catalog_parse(MIN, text, strlen(text), NULL, 0, errstr, sizeof(errstr)));
        assert_string_equal(errstr, R0 ": provider \"GA\" is not a known department");
        assert_null(exb_catalog_parse(MIN, text, strlen(text), known, 1, errstr, sizeof(errstr)));
        assert_string_equal(errstr, R1 ": provider \"MZ\" is not a known department");
        cat = exb_catalog_parse(MIN, text, strlen(text), known, 2, errstr, sizeof(errstr));
        if (!cat)
                fail_msg("%s", errstr);
        assert_int_equal(cat->ndepts, 0);
        assert_int_equal(cat->nresources, 2);
        exb_catalog_destroy(cat);
        free(text);
}

/* ------------------------------------------------------------ one resource */

static exb_resource_t *min_resource(const char *p1, const char *v1, const char *p2, const char *v2)
{
        char errstr[512] = "";
        char *text = mutated(p1, v1, p2, v2);
        json_t *root = json_loads(text, 0, NULL);
        char *res_text = json_dumps(json_array_get(json_object_get(root, "resources"), 0), 0);
        exb_resource_t *res = exb_resource_parse_json("control", res_text, strlen(res_text), errstr,
                                                      sizeof(errstr));
        if (!res)
                fail_msg("%s", errstr);
        free(res_text);
        json_decref(root);
        free(text);
        return res;
}

static void test_resource_parse_json(void **state)
{
        char errstr[512] = "";
        exb_resource_t *res;
        (void)state;

        /* The provider need not be known. */
        res = min_resource("resources/0/provider", "\"ZZ\"", NULL, NULL);
        assert_string_equal(res->provider, "ZZ");
        exb_resource_destroy(res);

        static const struct {
                const char *text, *expect;
        } bad[] = {
                {"{\"code\":\"370600-X-1\"}", "offset 17: resource 370600-X-1: missing \"name\""},
                {"{\"name\":\"x\"}", "offset 17: missing \"code\""},
                {"[]", "offset 17: must be an object"},
                {"{\"code\":", "offset 17:1:"},
                {"{\"code\":\"370600-X-1\",\"name\":\"x\",\"provider\":\"X\","
                 "\"share_type\":\"unconditional\",\"key\":[\"a\"],"
                 "\"items\":[{\"name\":\"a\",\"type\":\"C\",\"check\":\"gb32100\",\"length\":9}]}",
                 "offset 17: resource 370600-X-1: item \"a\": length 9 is too short for check "
                 "\"gb32100\" (18 characters)"},
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(bad); i++) {
                assert_null(exb_resource_parse_json("offset 17", bad[i].text, strlen(bad[i].text),
                                                    errstr, sizeof(errstr)));
                if (strncmp(errstr, bad[i].expect, strlen(bad[i].expect)))
                        fail_msg("case %zu: got \"%s\", expected \"%s\"", i, errstr, bad[i].expect);
        }

        /* The smallest valid resource. */
        const char *small = "{\"code\":\"X-1\",\"name\":\"x\",\"provider\":\"X\","
                            "\"share_type\":\"unconditional\",\"key\":[\"a\"],"
                            "\"items\":[{\"name\":\"a\",\"type\":\"I\"}]}";
        res = exb_resource_parse_json("x", small, strlen(small), errstr, sizeof(errstr));
        if (!res)
                fail_msg("%s", errstr);
        assert_string_equal(res->json, small);
        assert_int_equal(res->items[0].type, EXB_T_INT);
        assert_true(res->items[0].required);
        assert_null(res->share_condition);
        exb_resource_destroy(res);
        exb_resource_destroy(NULL);
        exb_catalog_destroy(NULL);
}

static void test_same(void **state)
{
        exb_resource_t *a = min_resource(NULL, NULL, NULL, NULL);
        exb_resource_t *b;
        (void)state;

        /* Key order and whitespace do not matter. */
        const char *reordered =
                "{ \"items\": [\n"
                "  {\"type\": \"C\", \"name\": \"id_number\", \"title\": \"公民身份号码\", "
                "\"length\": 18,"
                "   \"required\": true, \"check\": \"gb11643\"},\n"
                "  {\"name\": \"name\", \"title\": \"姓名\", \"type\": \"C\", \"length\": 50, "
                "\"required\": true},\n"
                "  {\"name\": \"birth_date\", \"title\": \"出生日期\", \"type\": \"D\"},\n"
                "  {\"name\": \"region\", \"title\": \"行政区划代码\", \"type\": \"C\", "
                "\"length\": 6}],\n"
                " \"key\": [\"id_number\"], \"code\": \"370600-GA-0001\", \"name\": "
                "\"人口基本信息\","
                " \"provider\": \"GA\", \"category\": [\"基础信息资源\", \"人口\"],"
                " \"summary\": \"全市户籍人口基本信息\", \"format\": \"数据库\", \"update_cycle\": "
                "\"实时\", \"share_type\": \"conditional\", \"share_condition\": "
                "\"用于社保、公积金业务身份核验\", \"share_method\": \"共享平台/数据库\", "
                "\"open\": false,"
                " \"publish_date\": \"2026-01-15\", \"related\": [\"370600-GA-0002\"]}";
        char errstr[512];
        b = exb_resource_parse_json("x", reordered, strlen(reordered), errstr, sizeof(errstr));
        if (!b)
                fail_msg("%s", errstr);
        assert_true(exb_resource_same(a, b));
        assert_true(exb_resource_same(b, a));
        exb_resource_destroy(b);

        /* Any value that differs does. */
        static const struct {
                const char *p, *v;
        } diffs[] = {
                {"resources/0/summary", "\"全市户籍人口\""},
                {"resources/0/items/3/length", "12"},
                {"resources/0/items/3/title", "\"区划\""},
                {"resources/0/open", "true"},
                {"resources/0/summary", NULL},
                {"resources/0/items/2/required", "false"}, /* same meaning, other text */
        };
        for (size_t i = 0; i < EXB_ARRAY_CNT(diffs); i++) {
                b = min_resource(diffs[i].p, diffs[i].v, NULL, NULL);
                if (exb_resource_same(a, b))
                        fail_msg("case %zu (%s): reported same", i, diffs[i].p);
                exb_resource_destroy(b);
        }
        exb_resource_destroy(a);
}

static void test_compatible(void **state)
{
        static const struct {
                const char *p1, *v1, *p2, *v2;
                const char *expect; /* NULL = compatible */
        } cases[] = {
                {NULL, NULL, NULL, NULL, NULL},
                {"resources/0/items/+", "{\"name\":\"phone\",\"type\":\"C\",\"length\":20}", NULL,
                 NULL, NULL},
                {"resources/0/summary", "\"新的摘要\"", "resources/0/items/3/length", "12", NULL},
                {"resources/0/share_type", "\"unconditional\"", NULL, NULL, NULL},
                {"resources/0/items/3/required", "true", NULL, NULL, NULL},
                {"resources/0/items/1/check", "\"gb11643\"", NULL, NULL, NULL},
                /* items reordered: Avro resolves fields by name */
                {"resources/0/items/2", NULL, "resources/0/items/+",
                 "{\"name\":\"birth_date\",\"type\":\"D\"}", NULL},
                {"resources/0/items/+", "{\"name\":\"phone\",\"type\":\"C\",\"required\":true}",
                 NULL, NULL,
                 "resource 370600-GA-0001: item \"phone\": an added item cannot be required (older "
                 "records do not have it)"},
                {"resources/0/items/+", "{\"name\":\"phone\",\"type\":\"C\"}", "resources/0/key",
                 "[\"id_number\",\"phone\"]",
                 "resource 370600-GA-0001: key changed from [id_number] to [id_number,phone]"},
                {"resources/0/key", "[\"name\"]", NULL, NULL,
                 "resource 370600-GA-0001: key changed from [id_number] to [name]"},
                {"resources/0/items/3", NULL, NULL, NULL,
                 "resource 370600-GA-0001: item \"region\": removed (items can only be added)"},
                {"resources/0/items/2/type", "\"C\"", NULL, NULL,
                 "resource 370600-GA-0001: item \"birth_date\": type changed from D to C"},
                {"resources/0/items/2/name", "\"birthday\"", NULL, NULL,
                 "resource 370600-GA-0001: item \"birth_date\": removed (items can only be added)"},
                {"resources/0/provider", "\"MZ\"", NULL, NULL,
                 "resource 370600-GA-0001: provider changed from GA to MZ"},
                {"resources/0/code", "\"370600-GA-0009\"", NULL, NULL,
                 "resource 370600-GA-0001: code changed to 370600-GA-0009"},
        };
        exb_resource_t *prev = min_resource(NULL, NULL, NULL, NULL);
        (void)state;
        for (size_t i = 0; i < EXB_ARRAY_CNT(cases); i++) {
                char errstr[512] = "";
                exb_resource_t *next =
                        min_resource(cases[i].p1, cases[i].v1, cases[i].p2, cases[i].v2);
                int ok = exb_resource_compatible(prev, next, errstr, sizeof(errstr));
                if (!cases[i].expect && !ok)
                        fail_msg("case %zu (%s): incompatible: %s", i, cases[i].p1, errstr);
                if (cases[i].expect && ok)
                        fail_msg("case %zu (%s): compatible, expected: %s", i, cases[i].p1,
                                 cases[i].expect);
                if (cases[i].expect && strcmp(errstr, cases[i].expect))
                        fail_msg("case %zu (%s):\n  got:      %s\n  expected: %s", i, cases[i].p1,
                                 errstr, cases[i].expect);
                exb_resource_destroy(next);
        }
        exb_resource_destroy(prev);
}

static void test_names(void **state)
{
        (void)state;
        assert_string_equal(exb_share_name(EXB_SHARE_UNCONDITIONAL), "unconditional");
        assert_string_equal(exb_share_name(EXB_SHARE_CONDITIONAL), "conditional");
        assert_string_equal(exb_share_name(EXB_SHARE_NONE), "none");
        assert_int_equal(exb_share_parse("none"), EXB_SHARE_NONE);
        assert_int_equal(exb_share_parse("conditional"), EXB_SHARE_CONDITIONAL);
        assert_int_equal(exb_share_parse("Conditional"), -1);
        assert_int_equal(exb_share_parse(NULL), -1);
        assert_string_equal(exb_check_name(EXB_CHECK_GB11643), "gb11643");
        assert_string_equal(exb_check_name(EXB_CHECK_GB32100), "gb32100");
        assert_null(exb_check_name(EXB_CHECK_NONE));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sample_catalog), cmocka_unit_test(test_min_catalog_fields),
                cmocka_unit_test(test_valid_variants), cmocka_unit_test(test_bad_catalogs),
                cmocka_unit_test(test_too_many),       cmocka_unit_test(test_bad_files),
                cmocka_unit_test(test_known_depts),    cmocka_unit_test(test_resource_parse_json),
                cmocka_unit_test(test_same),           cmocka_unit_test(test_compatible),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
