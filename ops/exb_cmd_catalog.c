/*
 * exb_cmd_catalog.c — `exbus catalog import|list|show` and `exbus routes`.
 *
 * Both read the control plane into an in-memory cache (milliseconds for a
 * city-sized catalog) and print from it; --json prints the same as JSON.
 */
#include "exb_cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CATALOG_MAX_BYTES (64 * 1024 * 1024)

static void import_report(void *opaque, const char *what, const char *status)
{
        (void)opaque;
        printf("%-28s %s\n", what, status);
}

static int catalog_import(exb_cli_t *cli, int argc, char **argv)
{
        if (argc < 1) {
                fprintf(stderr, "usage: exbus catalog import FILE...\n");
                return 2;
        }
        char err[1024];
        exb_catalog_t **cats = exb_calloc((size_t)argc, sizeof(*cats));
        exb_control_t *ctl = exb_cli_control(cli);
        int rc = 1;
        if (!ctl)
                goto done;
        /* Parse and validate every file before anything is written. */
        char **known;
        int nknown = exb_control_departments(ctl, &known);
        for (int i = 0; i < argc; i++) {
                size_t len;
                char *text = exb_cli_read_file(argv[i], CATALOG_MAX_BYTES, &len, err, sizeof(err));
                if (text)
                        cats[i] = exb_catalog_parse(argv[i], text, len, (const char *const *)known,
                                                    nknown, err, sizeof(err));
                free(text);
                if (!cats[i]) {
                        fprintf(stderr, "exbus: %s\n", err);
                        exb_cli_strv_free(known, nknown);
                        goto done;
                }
        }
        exb_cli_strv_free(known, nknown);
        for (int i = 0; i < argc; i++)
                if (exb_control_import(ctl, cats[i], import_report, NULL, err, sizeof(err)) != EXB_OK) {
                        fprintf(stderr, "exbus: %s: %s\n", argv[i], err);
                        goto done;
                }
        exb_cli_ensure_topics(cli, ctl);
        rc = 0;
done:
        for (int i = 0; i < argc; i++)
                exb_catalog_destroy(cats[i]);
        free(cats);
        exb_control_destroy(ctl);
        return rc;
}

/* The resource as JSON: the catalog text plus version and schema id. */
static json_t *resource_json(sqlite3_stmt *st)
{
        json_t *res = json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "code", json_string((const char *)sqlite3_column_text(st, 0)));
        json_object_set_new(o, "version", json_integer(sqlite3_column_int(st, 2)));
        json_object_set_new(o, "schema_id", json_integer(sqlite3_column_int(st, 3)));
        const unsigned char *avro = sqlite3_column_text(st, 5);
        json_object_set_new(o, "avro_schema", avro ? json_string((const char *)avro) : json_null());
        json_object_set_new(o, "resource", res ? res : json_null());
        return o;
}

static int catalog_list(exb_cli_t *cli, const char *only)
{
        exb_control_t *ctl = exb_cli_control(cli);
        if (!ctl)
                return 1;
        sqlite3_stmt *st;
        sqlite3_prepare_v2(exb_control_db(ctl),
                           "SELECT code, provider, version, schema_id, json, avro FROM resources"
                           " LEFT JOIN schemas ON schemas.id = resources.schema_id"
                           " WHERE ?1 IS NULL OR code = ?1 ORDER BY code",
                           -1, &st, NULL);
        if (only)
                sqlite3_bind_text(st, 1, only, -1, SQLITE_STATIC);
        json_t *all = json_array();
        int n = 0;
        if (!cli->json && !only)
                printf("%-18s %-8s %-14s %3s %6s %5s  %s\n", "CODE", "PROVIDER", "SHARE", "VER",
                       "SCHEMA", "ITEMS", "NAME");
        while (sqlite3_step(st) == SQLITE_ROW) {
                n++;
                json_t *o = resource_json(st);
                json_t *res = json_object_get(o, "resource");
                if (cli->json) {
                        json_array_append(all, o);
                } else if (!only) {
                        printf("%-18s %-8s %-14s %3d %6d %5zu  %s\n", sqlite3_column_text(st, 0),
                               sqlite3_column_text(st, 1),
                               json_string_value(json_object_get(res, "share_type")),
                               sqlite3_column_int(st, 2), sqlite3_column_int(st, 3),
                               json_array_size(json_object_get(res, "items")),
                               json_string_value(json_object_get(res, "name")));
                } else {
                        printf("code:          %s\nname:          %s\nprovider:      %s%s\n"
                               "share:         %s%s%s\nupdate cycle:  %s\nversion:       %d\n"
                               "schema id:     %d\nkey:           ",
                               sqlite3_column_text(st, 0),
                               json_string_value(json_object_get(res, "name")),
                               sqlite3_column_text(st, 1),
                               exb_control_dept_node(ctl, (const char *)sqlite3_column_text(st, 1))
                                   ? " (an exchange node: exb-path kept)"
                                   : "",
                               json_string_value(json_object_get(res, "share_type")),
                               json_object_get(res, "share_condition") ? " — " : "",
                               json_object_get(res, "share_condition")
                                   ? json_string_value(json_object_get(res, "share_condition"))
                                   : "",
                               json_string_value(json_object_get(res, "update_cycle")),
                               sqlite3_column_int(st, 2), sqlite3_column_int(st, 3));
                        json_t *key = json_object_get(res, "key");
                        for (size_t i = 0; i < json_array_size(key); i++)
                                printf("%s%s", i ? ", " : "", json_string_value(json_array_get(key, i)));
                        printf("\nitems:\n");
                        json_t *items = json_object_get(res, "items");
                        for (size_t i = 0; i < json_array_size(items); i++) {
                                json_t *it = json_array_get(items, i);
                                printf("  %-16s %s %4lld %-9s %-8s %s\n",
                                       json_string_value(json_object_get(it, "name")),
                                       json_string_value(json_object_get(it, "type")),
                                       (long long)json_integer_value(json_object_get(it, "length")),
                                       json_is_true(json_object_get(it, "required")) ? "required" : "",
                                       json_object_get(it, "check")
                                           ? json_string_value(json_object_get(it, "check"))
                                           : "",
                                       json_object_get(it, "title")
                                           ? json_string_value(json_object_get(it, "title"))
                                           : "");
                        }
                }
                json_decref(o);
        }
        sqlite3_finalize(st);
        if (cli->json) {
                json_t *out = only ? json_incref(json_array_get(all, 0)) : json_incref(all);
                if (out)
                        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("\n");
                json_decref(out);
        }
        json_decref(all);
        exb_control_destroy(ctl);
        if (only && !n) {
                fprintf(stderr, "exbus: no resource %s in the catalog\n", only);
                return 1;
        }
        return 0;
}

int exb_cmd_catalog(exb_cli_t *cli, int argc, char **argv)
{
        if (argc >= 2 && !strcmp(argv[1], "import"))
                return catalog_import(cli, argc - 2, argv + 2);
        if (argc == 2 && !strcmp(argv[1], "list"))
                return catalog_list(cli, NULL);
        if (argc == 3 && !strcmp(argv[1], "show"))
                return catalog_list(cli, argv[2]);
        fprintf(stderr, "usage: exbus catalog import FILE... | list | show CODE  [--json]\n");
        return 2;
}

/* ------------------------------------------------------------------ routes */

int exb_cmd_routes(exb_cli_t *cli, int argc, char **argv)
{
        (void)argv;
        if (argc != 1) {
                fprintf(stderr, "usage: exbus routes [--json]\n");
                return 2;
        }
        exb_control_t *ctl = exb_cli_control(cli);
        if (!ctl)
                return 1;
        exb_sub_t *subs;
        int nsubs = exb_control_subs(ctl, &subs);
        sqlite3_stmt *st;
        sqlite3_prepare_v2(exb_control_db(ctl),
                           "SELECT code, provider FROM resources ORDER BY code", -1, &st, NULL);
        json_t *all = json_array();
        int64_t now = exb_now_ms();
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *code = (const char *)sqlite3_column_text(st, 0);
                json_t *r = json_object(), *routes = json_array();
                char ingest[256];
                snprintf(ingest, sizeof(ingest), "exb.ingest.%s.%s", sqlite3_column_text(st, 1), code);
                json_object_set_new(r, "resource", json_string(code));
                json_object_set_new(r, "ingest", json_string(ingest));
                for (int i = 0; i < nsubs; i++) {
                        exb_sub_t *s = &subs[i];
                        if (strcmp(s->resource, code) || !exb_sub_active(s, now))
                                continue;
                        char topic[256];
                        exb_sub_topic(s, topic, sizeof(topic));
                        json_t *masks = exb_cli_masks_json(s);
                        json_array_append_new(
                            routes, json_pack("{s:s, s:s, s:s, s:o, s:o, s:s?, s:s?}", "subscription",
                                              s->id, "subscriber", s->subscriber, "topic", topic,
                                              "items", exb_cli_strv_json(s->items, s->nitems), "masks",
                                              masks, "filter", s->filter, "until", s->until));
                }
                json_object_set_new(r, "deliveries", routes);
                json_array_append_new(all, r);
        }
        sqlite3_finalize(st);
        if (cli->json) {
                json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("\n");
        } else {
                size_t i;
                json_t *r;
                json_array_foreach(all, i, r)
                {
                        printf("%s  <- %s\n", json_string_value(json_object_get(r, "resource")),
                               json_string_value(json_object_get(r, "ingest")));
                        size_t k;
                        json_t *d;
                        json_array_foreach(json_object_get(r, "deliveries"), k, d)
                        {
                                char *items = json_dumps(json_object_get(d, "items"), JSON_COMPACT);
                                char *masks = json_dumps(json_object_get(d, "masks"), JSON_COMPACT);
                                printf("  %s -> %s\n      items %s\n      masks %s\n      filter %s\n"
                                       "      until %s\n",
                                       json_string_value(json_object_get(d, "subscription")),
                                       json_string_value(json_object_get(d, "topic")), items, masks,
                                       json_is_string(json_object_get(d, "filter"))
                                           ? json_string_value(json_object_get(d, "filter"))
                                           : "(all records)",
                                       json_is_string(json_object_get(d, "until"))
                                           ? json_string_value(json_object_get(d, "until"))
                                           : "(no end)");
                                free(items);
                                free(masks);
                        }
                        if (!json_array_size(json_object_get(r, "deliveries")))
                                printf("  (no active subscription)\n");
                }
        }
        json_decref(all);
        exb_subs_free(subs, nsubs);
        exb_control_destroy(ctl);
        return 0;
}
