/*
 * exb_cmd_roles.c — the long-running infrastructure roles: `exbus broker`
 * and `exbus router`; the loader of a role's configuration.
 *
 * A role reads its properties file (-c FILE) through its exb_prop_t table;
 * -b / --data-dir / EXBUS_BROKERS override its `brokers` key. A bad config
 * stops the role before it touches any data. SIGINT/SIGTERM stop it
 * cleanly (outputs flushed, offsets committed).
 */
#include "exb_cli.h"
#include "exb_router.h"

#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ broker */

/* Writes DIR/bootstrap atomically. */
static int write_bootstrap(const char *dir, const char *bootstraps)
{
        char tmp[4096], path[4096];
        snprintf(tmp, sizeof(tmp), "%s/bootstrap.tmp", dir);
        snprintf(path, sizeof(path), "%s/bootstrap", dir);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) || rename(tmp, path)) {
                fprintf(stderr, "exbus broker: %s: %s\n", path, strerror(errno));
                return -1;
        }
        return 0;
}

/* SIGUSR1 takes the embedded broker down (connections refused, data kept),
 * SIGUSR2 brings it back: for tests of an unreachable cluster. */
static volatile sig_atomic_t broker_down = -1;

static void on_usr(int sig)
{
        broker_down = sig == SIGUSR1;
}

int exb_cmd_broker(exb_cli_t *cli, int argc, char **argv)
{
        static const struct option opts[] = {{"partitions", 1, 0, 'p'}, {0}};
        int partitions = 4, c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c != 'p' || (partitions = atoi(optarg)) < 1)
                        return 2;
        }
        if (!cli->data_dir || optind != argc) {
                fprintf(stderr, "usage: exbus broker --data-dir DIR [--partitions N]\n");
                return 2;
        }
        if (mkdir(cli->data_dir, 0755) && errno != EEXIST) {
                fprintf(stderr, "exbus broker: %s: %s\n", cli->data_dir, strerror(errno));
                return 1;
        }
        exb_cli_signals();
        struct sigaction sa = {0};
        sa.sa_handler = on_usr;
        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGUSR2, &sa, NULL);
        char err[512];
        exb_embedded_t *emb = exb_embedded_new(1, err, sizeof(err));
        if (!emb) {
                fprintf(stderr, "exbus broker: %s\n", err);
                return 1;
        }
        const char *bs = exb_embedded_bootstraps(emb);
        exb_topic_spec_t base[] = {{EXB_CONTROL_TOPIC, 1, 1}, {EXB_AUDIT_TOPIC, 1, 0}};
        exb_control_t *ctl = NULL;
        int rc = 1;
        if (exb_admin_ensure_topics(bs, NULL, 0, base, 2, 10000, err, sizeof(err)) != EXB_OK ||
            !(ctl = exb_control_new(bs, NULL, 0, NULL, 10000, err, sizeof(err)))) {
                fprintf(stderr, "exbus broker: %s\n", err);
                goto done;
        }
        if (write_bootstrap(cli->data_dir, bs))
                goto done;
        EXB_INFO("embedded broker (librdkafka mock cluster: in memory, no authentication, ~5 MiB "
                 "per partition) at %s; bootstrap written to %s/bootstrap",
                 bs, cli->data_dir);
        printf("%s\n", bs);
        fflush(stdout);
        /* The embedded broker has no CreateTopics: create what the catalog implies. */
        uint64_t seen = 0;
        while (!exb_cli_stop) {
                if (broker_down >= 0) {
                        EXB_INFO("embedded broker %s", broker_down ? "down (SIGUSR1)" : "up (SIGUSR2)");
                        exb_embedded_set_down(emb, broker_down);
                        broker_down = -1;
                }
                exb_control_poll(ctl);
                if (exb_control_generation(ctl) != seen) {
                        seen = exb_control_generation(ctl);
                        exb_topic_spec_t *specs;
                        int n = exb_control_topics(ctl, partitions, &specs);
                        if (exb_admin_ensure_topics(bs, NULL, 0, specs, n, 10000, err, sizeof(err)))
                                EXB_WARN("%s", err);
                        exb_topic_specs_free(specs, n);
                }
                sleep_ms(20);
        }
        rc = 0;
done:
        exb_control_destroy(ctl);
        exb_embedded_destroy(emb);
        return rc;
}

/* ------------------------------------------------------------------- roles */

int exb_cli_role_conf(exb_cli_t *cli, const exb_prop_t *props, void *conf, char **brokers,
                      const char *role, int argc, char **argv, int *snapshot, const char **pathp)
{
        static const struct option opts[] = {{"config", 1, 0, 'c'}, {"snapshot", 0, 0, 's'}, {0}};
        const char *path = NULL;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
                if (c == 'c')
                        path = optarg;
                else if (c == 's' && snapshot)
                        *snapshot = 1;
                else
                        return 2;
        }
        if (!path || optind != argc) {
                fprintf(stderr, "usage: exbus %s -c FILE%s\n", role, snapshot ? " [--snapshot]" : "");
                return 2;
        }
        *pathp = path;
        char err[1024];
        if (exb_conf_load(props, conf, path, err, sizeof(err))) {
                fprintf(stderr, "exbus %s: %s\n", role, err);
                return 1;
        }
        const char *b = exb_cli_brokers(cli, *brokers);
        if (!b) {
                fprintf(stderr, "exbus %s: %s: no brokers (set `brokers`, -b, EXBUS_BROKERS or "
                                "--data-dir)\n",
                        role, path);
                return 1;
        }
        if (b != *brokers) {
                free(*brokers);
                *brokers = exb_strdup(b);
        }
        if (exb_conf_check(props, conf, path, err, sizeof(err))) {
                fprintf(stderr, "exbus %s: %s\n", role, err);
                return 1;
        }
        return 0;
}

int exb_cmd_router(exb_cli_t *cli, int argc, char **argv)
{
        exb_router_conf_t conf = {0};
        const char *path;
        int rc = exb_cli_role_conf(cli, exb_router_props, &conf, &conf.brokers, "router", argc, argv,
                                   NULL, &path);
        if (rc) {
                exb_conf_free(exb_router_props, &conf);
                return rc;
        }
        exb_cli_signals();
        char err[1024];
        exb_router_t *rtr = exb_router_new(&conf, err, sizeof(err));
        if (!rtr) {
                fprintf(stderr, "exbus router: %s\n", err);
                exb_conf_free(exb_router_props, &conf);
                return 1;
        }
        EXB_INFO("routing from %s", conf.brokers);
        rc = exb_router_run(rtr, &exb_cli_stop);
        exb_router_destroy(rtr);
        exb_conf_free(exb_router_props, &conf);
        return rc;
}
