/*
 * exb_cmd_lag.c — `exbus lag [--group G]... [--json]`: the consumer groups
 * of the exchange, their members, and per partition how far each group is
 * behind (see exb_kafka_group.h for how each figure is read).
 *
 * Which groups: those given with --group; otherwise every group whose id
 * starts with "exbus-" (where the cluster can list groups), plus the groups
 * the topics call for even if they have never run: `exbus-router` when an
 * exb.ingest.* topic exists and `exbus-consumer-<dept>` for each
 * exb.deliver.<dept>.* — a router or a consumer agent that is not running is
 * exactly what an operator looks for here.
 *
 * Which partitions: those with a committed offset, those assigned to a
 * member, and for exbus-router / exbus-consumer-<dept> every partition of
 * exb.ingest.* / exb.deliver.<dept>.*, so a backlog nobody has started on
 * counts too.
 *
 * JSON (--json), stable: groups sorted by id, members by client id, then
 * member id, partitions by topic, then partition:
 *   [{"group", "state", "described", "members": [{"member_id", "client_id",
 *     "host", "partitions"}], "partitions": [{"topic", "partition",
 *     "committed" (null: none), "low", "end", "offset_lag", "lag" (null:
 *     unknown; see exb_kafka_group.h for the two lags),
 *     "owner" ({"member_id", "client_id", "host"}, null: unassigned or
 *     unknown)}], "lag", "error" (null, or what could not be read)}]
 * "described" is false on a cluster that cannot describe groups (the
 * embedded broker): state "unknown", members and owners unknown.
 *
 * The table (default) shows the same, except partitions with nothing to
 * read and no committed offset (a router owns every ingest partition of
 * every resource; most are empty), which it only counts.
 */
#include "exb_cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "exb_kafka_group.h"

#define ROUTER_GROUP   "exbus-router"
#define CONSUMER_GROUP "exbus-consumer-"
#define INGEST         "exb.ingest."
#define DELIVER        "exb.deliver."

/* Adds s to the set v (sorted at the end), unless it is there already. */
static void set_add(char ***v, int *n, const char *s)
{
        for (int i = 0; i < *n; i++)
                if (!strcmp((*v)[i], s))
                        return;
        *v = exb_realloc(*v, sizeof(char *) * (size_t)(*n + 1));
        (*v)[(*n)++] = exb_strdup(s);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The groups the exchange's topics call for, and every exbus-* group the
 * cluster lists. Returns 0, or 1 after printing why. */
static int find_groups(const char *brokers, char ***groups, int *n)
{
        char err[512];
        exb_topic_info_t *topics;
        int nt = exb_admin_list_topics(brokers, NULL, 0, "exb.", &topics, 10000, err, sizeof(err));
        if (nt < 0) {
                fprintf(stderr, "exbus: %s\n", err);
                return 1;
        }
        for (int i = 0; i < nt; i++) {
                const char *t = topics[i].name;
                if (!strncmp(t, INGEST, strlen(INGEST))) {
                        set_add(groups, n, ROUTER_GROUP);
                } else if (!strncmp(t, DELIVER, strlen(DELIVER))) {
                        const char *dept = t + strlen(DELIVER);
                        size_t len = strcspn(dept, ".");
                        if (len && dept[len] == '.') {
                                char g[256];
                                snprintf(g, sizeof(g), "%s%.*s", CONSUMER_GROUP, (int)len, dept);
                                set_add(groups, n, g);
                        }
                }
        }
        exb_topic_infos_free(topics, nt);

        char **listed;
        int nl = exb_admin_group_list(brokers, NULL, 0, "exbus-", &listed, 10000, err, sizeof(err));
        if (nl == -1) {
                fprintf(stderr, "exbus: %s\n", err);
                return 1;
        }
        for (int i = 0; i < nl; i++)
                set_add(groups, n, listed[i]);
        exb_group_list_free(listed, nl);
        return 0;
}

/* The topics group is meant to consume, or NULL (buf holds it). */
static const char *topic_prefix(const char *group, char *buf, size_t size)
{
        if (!strcmp(group, ROUTER_GROUP))
                return INGEST;
        size_t cl = strlen(CONSUMER_GROUP);
        if (!strncmp(group, CONSUMER_GROUP, cl) && group[cl] && !strchr(group + cl, '.')) {
                snprintf(buf, size, "%s%s.", DELIVER, group + cl);
                return buf;
        }
        return NULL;
}

static json_t *json_offset(int64_t v)
{
        return v < 0 ? json_null() : json_integer((json_int_t)v);
}

static json_t *group_json(const exb_group_desc_t *d)
{
        json_t *members = json_array();
        for (int k = 0; k < d->nmembers; k++) {
                const exb_group_member_t *m = &d->members[k];
                json_array_append_new(members,
                                      json_pack("{s:s, s:s, s:s, s:i}", "member_id", m->member_id,
                                                "client_id", m->client_id, "host", m->host,
                                                "partitions", m->partitions));
        }
        json_t *parts = json_array();
        for (int k = 0; k < d->nparts; k++) {
                const exb_group_part_t *p = &d->parts[k];
                json_t *owner = json_null();
                if (p->owner >= 0) {
                        const exb_group_member_t *m = &d->members[p->owner];
                        owner = json_pack("{s:s, s:s, s:s}", "member_id", m->member_id, "client_id",
                                          m->client_id, "host", m->host);
                }
                json_array_append_new(parts,
                                      json_pack("{s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "topic",
                                                p->topic, "partition", (int)p->partition,
                                                "committed", json_offset(p->committed), "low",
                                                json_offset(p->low), "end", json_offset(p->end),
                                                "offset_lag", json_offset(p->offset_lag), "lag",
                                                json_offset(p->lag), "owner", owner));
        }
        return json_pack("{s:s, s:s, s:b, s:o, s:o, s:I, s:o}", "group", d->group, "state",
                         d->state, "described", d->described, "members", members, "partitions",
                         parts, "lag", (json_int_t)d->lag, "error",
                         d->error ? json_string(d->error) : json_null());
}

/* ------------------------------------------------------------ the table */

#define MAX_COLS 6

/* Rows of cells printed with aligned columns; numeric columns (bit i of
 * right) are aligned right. */
typedef struct table_s {
        int ncols;
        unsigned right;
        char **cells; /* nrows * ncols */
        int nrows;
} table_t;

static void table_row(table_t *t, ...)
{
        va_list ap;
        va_start(ap, t);
        t->cells = exb_realloc(t->cells, sizeof(char *) * (size_t)((t->nrows + 1) * t->ncols));
        for (int c = 0; c < t->ncols; c++)
                t->cells[t->nrows * t->ncols + c] = exb_strdup(va_arg(ap, const char *));
        va_end(ap);
        t->nrows++;
}

/* Characters of a UTF-8 string (ids and names are ASCII in practice). */
static int chars(const char *s)
{
        int n = 0;
        for (; *s; s++)
                n += (*s & 0xC0) != 0x80;
        return n;
}

static void table_print_free(table_t *t)
{
        for (int i = 0; i < t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        t->cells = NULL;
        t->nrows = 0;
}

/* Prints the rows, then frees them. */
static void table_print(table_t *t, const char *indent)
{
        int w[MAX_COLS] = {0};
        for (int r = 0; r < t->nrows; r++)
                for (int c = 0; c < t->ncols; c++) {
                        int len = chars(t->cells[r * t->ncols + c]);
                        if (len > w[c])
                                w[c] = len;
                }
        for (int r = 0; r < t->nrows; r++) {
                fputs(indent, stdout);
                for (int c = 0; c < t->ncols; c++) {
                        const char *s = t->cells[r * t->ncols + c];
                        int pad = w[c] - chars(s);
                        int last = c == t->ncols - 1;
                        if (t->right & (1u << c))
                                printf("%*s%s", pad, "", s);
                        else
                                printf("%s%*s", s, last ? 0 : pad, "");
                        fputs(last ? "\n" : "  ", stdout);
                }
        }
        table_print_free(t);
}

static const char *num(char *buf, int64_t v)
{
        if (v < 0)
                return "-";
        snprintf(buf, 24, "%" PRId64, v);
        return buf;
}

static void group_print(const exb_group_desc_t *d)
{
        char a[24], b[24], c[24], e[24], owner[512];
        if (d->described)
                printf("GROUP %s  state %s  members %d  lag %" PRId64 "%s\n", d->group, d->state,
                       d->nmembers, d->lag,
                       !strcmp(d->state, "Dead") ? "  (not on the cluster: never ran, or its "
                                                   "offsets expired)"
                                                 : "");
        else if (d->error)
                printf("GROUP %s  lag %" PRId64 "\n", d->group, d->lag);
        else
                printf("GROUP %s  lag %" PRId64
                       "  (state and members unknown: this broker cannot describe groups)\n",
                       d->group, d->lag);
        if (d->error)
                printf("  error: %s\n", d->error);
        if (d->nmembers) {
                table_t t = {4, 1u << 3};
                table_row(&t, "MEMBER", "CLIENT-ID", "HOST", "PARTITIONS");
                for (int k = 0; k < d->nmembers; k++) {
                        const exb_group_member_t *m = &d->members[k];
                        snprintf(a, sizeof(a), "%d", m->partitions);
                        table_row(&t, m->member_id, m->client_id, m->host, a);
                }
                table_print(&t, "  ");
        }
        if (d->nparts) {
                table_t t = {6, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4)};
                table_row(&t, "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "OWNER");
                int idle = 0;
                for (int k = 0; k < d->nparts; k++) {
                        const exb_group_part_t *p = &d->parts[k];
                        if (p->committed < 0 && p->lag == 0) {
                                idle++; /* nothing to read, never read */
                                continue;
                        }
                        snprintf(a, sizeof(a), "%d", (int)p->partition);
                        if (p->owner >= 0)
                                snprintf(owner, sizeof(owner), "%s %s",
                                         d->members[p->owner].client_id, d->members[p->owner].host);
                        else
                                snprintf(owner, sizeof(owner), "%s", d->described ? "-" : "?");
                        table_row(&t, p->topic, a, num(b, p->committed), num(c, p->end),
                                  num(e, p->lag), owner);
                }
                if (t.nrows > 1)
                        table_print(&t, "  ");
                else
                        table_print_free(&t);
                if (idle)
                        printf("  (%d partition%s with nothing to read and no committed offset "
                               "not shown; --json lists all)\n",
                               idle, idle > 1 ? "s" : "");
        } else {
                printf("  no partitions\n");
        }
}

int exb_cmd_lag(exb_cli_t *cli, int argc, char **argv)
{
        static const struct option opts[] = {{"group", 1, 0, 'g'}, {"help", 0, 0, 'h'}, {0}};
        char **groups = NULL;
        int ngroups = 0, given = 0, c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "g:h", opts, NULL)) != -1) {
                if (c != 'g' || !*optarg) {
                        exb_cli_strv_free(groups, ngroups);
                        fprintf(c == 'h' ? stdout : stderr,
                                "usage: exbus lag [-b BROKERS | --data-dir DIR] [--group G]... "
                                "[--json]\n");
                        return c == 'h' ? 0 : 2;
                }
                set_add(&groups, &ngroups, optarg);
                given = 1;
        }
        if (optind != argc) {
                exb_cli_strv_free(groups, ngroups);
                fprintf(stderr, "usage: exbus lag [-b BROKERS | --data-dir DIR] [--group G]... "
                                "[--json]\n");
                return 2;
        }
        const char *brokers = exb_cli_brokers(cli, NULL);
        if (!brokers) {
                exb_cli_strv_free(groups, ngroups);
                fprintf(stderr,
                        "exbus: no brokers: use -b BROKERS, EXBUS_BROKERS or --data-dir DIR\n");
                return 1;
        }
        if (!given && find_groups(brokers, &groups, &ngroups)) {
                exb_cli_strv_free(groups, ngroups);
                return 1;
        }
        if (ngroups)
                qsort(groups, (size_t)ngroups, sizeof(*groups), cmp_str);

        exb_group_query_t *q = exb_calloc((size_t)ngroups + 1, sizeof(*q));
        char(*prefix)[256] = exb_calloc((size_t)ngroups + 1, sizeof(*prefix));
        for (int i = 0; i < ngroups; i++) {
                q[i].group = groups[i];
                q[i].topic_prefix = topic_prefix(groups[i], prefix[i], sizeof(prefix[i]));
        }
        char err[512];
        exb_group_desc_t *d = NULL;
        int rc = 0;
        if (exb_admin_groups_describe(brokers, NULL, 0, q, ngroups, &d, 30000, err, sizeof(err)) !=
            EXB_OK) {
                fprintf(stderr, "exbus: %s\n", err);
                rc = 1;
        }
        for (int i = 0; d && i < ngroups; i++)
                if (d[i].error) {
                        fprintf(stderr, "exbus: group %s: %s\n", d[i].group, d[i].error);
                        rc = 1;
                }
        if (d && cli->json) {
                json_t *all = json_array();
                for (int i = 0; i < ngroups; i++)
                        json_array_append_new(all, group_json(&d[i]));
                json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("\n");
                json_decref(all);
        } else if (d) {
                if (!ngroups)
                        printf("no exbus consumer groups (and no exb.ingest.* or exb.deliver.* "
                               "topics)\n");
                for (int i = 0; i < ngroups; i++) {
                        if (i)
                                printf("\n");
                        group_print(&d[i]);
                }
        }
        exb_group_descs_free(d, ngroups);
        free(prefix);
        free(q);
        exb_cli_strv_free(groups, ngroups);
        return rc;
}
