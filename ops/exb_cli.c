/*
 * exb_cli.c — `exbus` command dispatch and the plumbing its subcommands share.
 *
 * Global options may stand anywhere on the line and are taken out before the
 * subcommand parses the rest:  -b/--brokers BROKERS, --data-dir DIR, --json.
 */
#include "exb_cli.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t exb_cli_stop;
static unsigned shutdown_s; /* see on_signal */

/* A stop request starts a deadline. An orderly shutdown (flush, commit,
 * leave the group) takes seconds, and everything that must be committed is
 * committed before the clients are destroyed; but librdkafka 2.0.2 can hang
 * for ever in rd_kafka_destroy() once topics were deleted under a running
 * client (its broker threads never finish). So after the deadline
 * (EXBUS_SHUTDOWN_TIMEOUT_S, default 90) the process exits with status 3;
 * a second SIGINT/SIGTERM does that at once. */
static void quit(const char *msg)
{
        ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
        (void)r;
        _exit(3);
}

static void on_alarm(int sig)
{
        (void)sig;
        quit("exbus: shutdown did not finish within EXBUS_SHUTDOWN_TIMEOUT_S: exiting (status 3)\n");
}

static void on_signal(int sig)
{
        (void)sig;
        if (exb_cli_stop)
                quit("exbus: second stop signal: exiting now (status 3)\n");
        exb_cli_stop = 1;
        alarm(shutdown_s);
}

void exb_cli_signals(void)
{
        const char *env = getenv("EXBUS_SHUTDOWN_TIMEOUT_S");
        shutdown_s = env && atoi(env) > 0 ? (unsigned)atoi(env) : 90;
        struct sigaction sa = {0};
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
}

char *exb_cli_read_file(const char *path, size_t max, size_t *len, char *errstr, size_t errstr_size)
{
        FILE *f = fopen(path, "rb");
        if (!f) {
                exb_errf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return NULL;
        }
        exb_buf_t b;
        exb_buf_init(&b, max);
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                if (exb_buf_append(&b, chunk, n)) {
                        exb_errf(errstr, errstr_size, "%s: larger than %zu bytes", path, max);
                        fclose(f);
                        exb_buf_free(&b);
                        return NULL;
                }
        int err = ferror(f);
        fclose(f);
        if (err || exb_buf_cstr(&b)) {
                exb_errf(errstr, errstr_size, "%s: read error", path);
                exb_buf_free(&b);
                return NULL;
        }
        if (len)
                *len = b.len;
        return (char *)b.p;
}

const char *exb_cli_brokers(exb_cli_t *cli, const char *fallback)
{
        if (cli->brokers)
                return cli->brokers;
        const char *env = getenv("EXBUS_BROKERS");
        if (env && *env)
                return env;
        if (cli->data_dir && !cli->bootstrap) {
                char path[4096], err[256];
                snprintf(path, sizeof(path), "%s/bootstrap", cli->data_dir);
                cli->bootstrap = exb_cli_read_file(path, 4096, NULL, err, sizeof(err));
                if (cli->bootstrap)
                        cli->bootstrap[strcspn(cli->bootstrap, "\r\n")] = '\0';
                else if (!fallback)
                        fprintf(stderr, "exbus: %s (is `exbus broker --data-dir %s` running?)\n", err,
                                cli->data_dir);
        }
        if (cli->bootstrap)
                return cli->bootstrap;
        return fallback;
}

exb_control_t *exb_cli_control(exb_cli_t *cli)
{
        const char *brokers = exb_cli_brokers(cli, NULL);
        if (!brokers) {
                fprintf(stderr, "exbus: no brokers: use -b BROKERS, EXBUS_BROKERS or --data-dir DIR\n");
                return NULL;
        }
        char err[512];
        exb_control_t *ctl = exb_control_new(brokers, NULL, 0, NULL, 10000, err, sizeof(err));
        if (!ctl)
                fprintf(stderr, "exbus: %s\n", err);
        return ctl;
}

void exb_cli_ensure_topics(exb_cli_t *cli, exb_control_t *ctl)
{
        exb_topic_spec_t *specs;
        int n = exb_control_topics(ctl, 4, &specs);
        char err[512];
        if (exb_admin_ensure_topics(exb_cli_brokers(cli, NULL), NULL, 0, specs, n, 15000, err,
                                    sizeof(err)) != EXB_OK)
                fprintf(stderr, "exbus: warning: %s\n", err);
        exb_topic_specs_free(specs, n);
}

int exb_cli_split(const char *s, char ***out)
{
        int n = 0;
        *out = NULL;
        while (s && *s) {
                size_t len = strcspn(s, ",");
                if (len) {
                        *out = exb_realloc(*out, sizeof(char *) * (size_t)(n + 1));
                        (*out)[n++] = exb_strndup(s, len);
                }
                s += len + (s[len] == ',');
        }
        return n;
}

void exb_cli_strv_free(char **v, int n)
{
        for (int i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

const char *exb_cli_router_principal(void)
{
        const char *p = getenv("EXBUS_ROUTER_PRINCIPAL");
        return p && *p ? p : "User:exbus-router";
}

json_t *exb_cli_strv_json(char **v, int n)
{
        json_t *a = json_array();
        for (int i = 0; i < n; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

json_t *exb_cli_masks_json(const exb_sub_t *sub)
{
        json_t *masks = json_object();
        for (int k = 0; k < sub->nitems; k++)
                if (sub->masks[k].kind != EXB_MASK_NONE) {
                        char spec[64];
                        exb_mask_format(&sub->masks[k], spec, sizeof(spec));
                        json_object_set_new(masks, sub->items[k], json_string(spec));
                }
        return masks;
}

static const struct {
        const char *name;
        int (*fn)(exb_cli_t *, int, char **);
        const char *usage;
} commands[] = {
    {"demo", exb_cmd_demo, "demo                            all roles in one process on the embedded broker"},
    {"broker", exb_cmd_broker, "broker --data-dir DIR           host the embedded broker (writes DIR/bootstrap)"},
    {"catalog", exb_cmd_catalog, "catalog import FILE... | list | show CODE"},
    {"sub", exb_cmd_sub, "sub request|approve|reject|revoke|list ..."},
    {"routes", exb_cmd_routes, "routes                          ingest topic and active deliveries per resource"},
    {"acl", exb_cmd_acl, "acl sync [--dry-run] | acl list   per-department Kafka ACLs from catalog and subscriptions"},
    {"lag", exb_cmd_lag, "lag [--group G]...               consumer groups: members, committed offsets, lag"},
    {"dlq", exb_cmd_dlq, "dlq list [--provider DEPT]      dead letters with their reasons"},
    {"producer", exb_cmd_producer, "producer -c FILE [--snapshot]   producer agent of a department"},
    {"router", exb_cmd_router, "router -c FILE                  the router"},
    {"consumer", exb_cmd_consumer, "consumer -c FILE                consumer agent of a department"},
    {"conf", exb_cmd_conf, "conf list                       every configuration key (Markdown)"},
    {"bench", exb_cmd_bench, "bench [--records N]             router throughput vs raw Kafka pass-through"},
};

static void usage(FILE *out)
{
        fprintf(out, "usage: exbus [-b BROKERS | --data-dir DIR] [--json] COMMAND ...\n\ncommands:\n");
        for (size_t i = 0; i < EXB_ARRAY_CNT(commands); i++)
                fprintf(out, "  %s\n", commands[i].usage);
}

int exb_cli_main(int argc, char **argv)
{
        exb_cli_t cli = {0};
        int n = 0;
        for (int i = 0; i < argc; i++) { /* take the global options out */
                int has_arg = i + 1 < argc;
                if ((!strcmp(argv[i], "-b") || !strcmp(argv[i], "--brokers")) && has_arg)
                        cli.brokers = argv[++i];
                else if (!strcmp(argv[i], "--data-dir") && has_arg)
                        cli.data_dir = argv[++i];
                else if (!strcmp(argv[i], "--json"))
                        cli.json = 1;
                else
                        argv[n++] = argv[i];
        }
        argc = n;
        if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
            !strcmp(argv[1], "help")) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        for (size_t i = 0; i < EXB_ARRAY_CNT(commands); i++)
                if (!strcmp(argv[1], commands[i].name)) {
                        exb_log_role(commands[i].name);
                        int rc = commands[i].fn(&cli, argc - 1, argv + 1);
                        free(cli.bootstrap);
                        return rc;
                }
        fprintf(stderr, "exbus: unknown command \"%s\"\n", argv[1]);
        usage(stderr);
        return 2;
}
