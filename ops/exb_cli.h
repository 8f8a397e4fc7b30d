/*
 * exb_cli.h — shared plumbing of the `exbus` subcommands (ops/).
 *
 * Where the brokers come from, in order: -b BROKERS, the EXBUS_BROKERS
 * environment variable, DIR/bootstrap of --data-dir DIR (written by
 * `exbus broker`), then the `brokers` key of a role's config file.
 */
#ifndef EXB_CLI_H
#define EXB_CLI_H

#include <signal.h>
#include <stdio.h>
#include "exb_common.h"
#include "exb_conf.h"
#include "exb_control.h"

typedef struct exb_cli_s {
        const char *brokers;  /* -b */
        const char *data_dir; /* --data-dir */
        int json;             /* --json */
        char *bootstrap;      /* read from DIR/bootstrap (owned) */
} exb_cli_t;

/* Set by SIGINT/SIGTERM once exb_cli_signals() was called. */
extern volatile sig_atomic_t exb_cli_stop;
void exb_cli_signals(void);

/* The brokers to use (see header comment), or NULL. `fallback` is a
 * config file's value. */
const char *exb_cli_brokers(exb_cli_t *cli, const char *fallback);

/* Opens the control plane with an in-memory cache, or prints why not and
 * returns NULL. */
exb_control_t *exb_cli_control(exb_cli_t *cli);

/* Reads a whole file (at most max bytes). Returns a new NUL-terminated
 * buffer or NULL with errstr. */
char *exb_cli_read_file(const char *path, size_t max, size_t *len, char *errstr, size_t errstr_size);

/* Creates the topics the catalog implies (after import/approve); against an
 * embedded broker in another process, that process creates them. */
void exb_cli_ensure_topics(exb_cli_t *cli, exb_control_t *ctl);

/* Loads a role's configuration: parses -c FILE (and --snapshot when
 * snapshot != NULL) from argv, loads the file through props into conf,
 * applies the brokers override to *brokers and checks required keys.
 * *path gets the file's name (borrowed from argv).
 * Returns 0, or the exit code after printing why. */
int exb_cli_role_conf(exb_cli_t *cli, const exb_prop_t *props, void *conf, char **brokers,
                      const char *role, int argc, char **argv, int *snapshot, const char **path);

/* Splits "a,b,c" into a new array of new strings; returns the count. */
int exb_cli_split(const char *s, char ***out);
void exb_cli_strv_free(char **v, int n);

/* JSON array of the strings; {"item": "mask spec", ...} of a subscription's
 * masked items. New references. */
struct json_t;
struct json_t *exb_cli_strv_json(char **v, int n);
struct json_t *exb_cli_masks_json(const exb_sub_t *sub);

/* Computes the ACLs the catalog and subscriptions call for and applies the
 * difference (see exb_cmd_acl.c). A cluster without authorization is left
 * alone. Returns 0, or 1 after printing why. */
int exb_cli_acl_sync(exb_cli_t *cli, exb_control_t *ctl, const char *router, int dry_run,
                     int quiet);
/* The router's principal: EXBUS_ROUTER_PRINCIPAL or User:exbus-router. */
const char *exb_cli_router_principal(void);

/* Subcommands: argc/argv start at the subcommand's own name. Return the
 * process exit code: 0 ok, 1 failure, 2 usage. */
int exb_cmd_catalog(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_sub(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_routes(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_dlq(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_lag(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_broker(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_producer(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_router(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_consumer(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_conf(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_demo(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_bench(exb_cli_t *cli, int argc, char **argv);
int exb_cmd_acl(exb_cli_t *cli, int argc, char **argv);

#endif
