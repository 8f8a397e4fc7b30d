/*
 * exb_cmd_dlq.c — `exbus dlq list [--provider DEPT] [--json]`: the dead
 * letters of exb.dlq.* with their reasons and origin, read without a
 * consumer group from the beginning to the high watermark.
 */
#include "exb_cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Header value as a new NUL-terminated string ("" if absent). */
static char *header_str(const exb_msg_t *m, const char *name)
{
        const void *v;
        size_t len;
        if (!exb_msg_header(m, name, &v, &len))
                return exb_strdup("");
        return exb_strndup(v, len);
}

int exb_cmd_dlq(exb_cli_t *cli, int argc, char **argv)
{
        static const struct option opts[] = {{"provider", 1, 0, 'p'}, {0}};
        const char *provider = NULL;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c != 'p')
                        return 2;
                provider = optarg;
        }
        if (optind != argc - 1 || strcmp(argv[optind], "list")) {
                fprintf(stderr, "usage: exbus dlq list [--provider DEPT] [--json]\n");
                return 2;
        }
        const char *brokers = exb_cli_brokers(cli, NULL);
        if (!brokers) {
                fprintf(stderr, "exbus: no brokers: use -b BROKERS, EXBUS_BROKERS or --data-dir DIR\n");
                return 1;
        }
        char prefix[128], err[512];
        snprintf(prefix, sizeof(prefix), "exb.dlq.%s", provider ? provider : "");
        exb_topic_info_t *topics;
        int ntopics = exb_admin_list_topics(brokers, NULL, 0, prefix, &topics, 10000, err, sizeof(err));
        if (ntopics < 0) {
                fprintf(stderr, "exbus: %s\n", err);
                return 1;
        }
        exb_consumer_t *cons = exb_consumer_new(brokers, NULL, NULL, 0, NULL, err, sizeof(err));
        if (!cons) {
                fprintf(stderr, "exbus: %s\n", err);
                exb_topic_infos_free(topics, ntopics);
                return 1;
        }
        json_t *all = json_array();
        int rc = 0;
        for (int t = 0; t < ntopics && !rc; t++) {
                if (provider && strcmp(topics[t].name, prefix))
                        continue; /* exb.dlq.GA must not match exb.dlq.GAX */
                for (int p = 0; p < topics[t].partitions && !rc; p++) {
                        int64_t lo, hi;
                        if (exb_consumer_watermarks(cons, topics[t].name, p, &lo, &hi, 10000) ||
                            hi <= lo)
                                continue;
                        exb_consumer_t *rd = exb_consumer_new(brokers, NULL, NULL, 0, NULL, err,
                                                              sizeof(err));
                        if (!rd || exb_consumer_assign(rd, topics[t].name, p, lo, err, sizeof(err))) {
                                fprintf(stderr, "exbus: %s\n", err);
                                exb_consumer_destroy(rd);
                                rc = 1;
                                break;
                        }
                        int64_t deadline = exb_mono_ms() + 30000;
                        while (exb_consumer_position(rd, topics[t].name, p) < hi &&
                               exb_mono_ms() < deadline) {
                                exb_msg_t msgs[256];
                                int n = exb_consumer_poll(rd, msgs, 256, 500, err, sizeof(err));
                                for (int i = 0; i < n; i++) {
                                        exb_msg_t *m = &msgs[i];
                                        char *error = header_str(m, "exb-error");
                                        char *stage = header_str(m, "exb-error-stage");
                                        char *otopic = header_str(m, "exb-origin-topic");
                                        char *opart = header_str(m, "exb-origin-partition");
                                        char *ooff = header_str(m, "exb-origin-offset");
                                        json_array_append_new(
                                            all,
                                            json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:s#, s:I}",
                                                      "topic", m->topic, "partition", (int)m->partition,
                                                      "offset", (json_int_t)m->offset, "stage", stage,
                                                      "error", error, "origin_topic", otopic,
                                                      "origin_partition", opart, "origin_offset", ooff,
                                                      "key", m->key ? (const char *)m->key : "",
                                                      m->key ? m->key_len : 0, "value_bytes",
                                                      (json_int_t)m->len));
                                        free(error);
                                        free(stage);
                                        free(otopic);
                                        free(opart);
                                        free(ooff);
                                        exb_msg_release(m);
                                }
                        }
                        exb_consumer_destroy(rd);
                }
        }
        if (cli->json) {
                json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("\n");
        } else {
                size_t i;
                json_t *d;
                printf("%-18s %-8s %-34s %s\n", "DLQ", "STAGE", "ORIGIN", "ERROR");
                json_array_foreach(all, i, d)
                {
                        char origin[256];
                        snprintf(origin, sizeof(origin), "%s[%s]@%s",
                                 json_string_value(json_object_get(d, "origin_topic")),
                                 json_string_value(json_object_get(d, "origin_partition")),
                                 json_string_value(json_object_get(d, "origin_offset")));
                        printf("%-18s %-8s %-34s %s\n", json_string_value(json_object_get(d, "topic")),
                               json_string_value(json_object_get(d, "stage")), origin,
                               json_string_value(json_object_get(d, "error")));
                }
        }
        json_decref(all);
        exb_consumer_destroy(cons);
        exb_topic_infos_free(topics, ntopics);
        return rc;
}
