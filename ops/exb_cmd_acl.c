/*
 * exb_cmd_acl.c — `exbus acl sync [--dry-run]` and `exbus acl list`:
 * per-department Kafka ACLs derived from the catalog and the approved
 * subscriptions (DESIGN §7).
 *
 * Each department authenticates as the principal User:<department code>.
 *   every department   READ, DESCRIBE  topic exb.control            (replays the catalog)
 *   (and the router)   DESCRIBE        group prefix exbus-groupless- (see below)
 *   a provider         WRITE, DESCRIBE topic prefix exb.ingest.<code>.
 *   a subscriber       READ, DESCRIBE  topic exb.deliver.<code>.<resource>, one per
 *                                      active subscription (revoking removes it)
 *                      READ            group prefix exbus-consumer-<code>
 *   the router         READ, DESCRIBE  topic prefix exb.ingest.
 *   (--router, default WRITE, DESCRIBE, CREATE topic prefixes exb.deliver., exb.dlq.
 *    User:exbus-router) WRITE, DESCRIBE, CREATE topic exb.audit; READ, DESCRIBE exb.control
 *                      READ            group exbus-router
 * Control-plane reads are group-less, but librdkafka still looks up the
 * coordinator of their private group exbus-groupless-<pid> (FindCoordinator
 * needs DESCRIBE on the group): without that grant every agent logs "Group
 * authorization failed" for its whole life. Such a group is never joined and
 * never commits, so DESCRIBE on it shows nothing of anyone's.
 * Operators (catalog import, sub approve, acl sync) are super users of the
 * cluster (super.users), and so is nothing else. librdkafka 2.0.2 cannot
 * express TransactionalId ACLs: for exactly-once routing on a cluster with
 * ACLs, grant the router WRITE, DESCRIBE on transactional id prefix
 * exbus-router with kafka-acls (printed by sync).
 *
 * sync compares the wanted set with the cluster's ALLOW ACLs of the
 * principals it manages (the catalog's departments and the router) on
 * exbus resources (topics exb.*, groups exbus-*), creates what is missing
 * and deletes what is no longer wanted; --dry-run prints the difference.
 */
#include "exb_cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>


typedef struct acl_set_s {
        exb_acl_t *v;
        int n;
} acl_set_t;

static void want(acl_set_t *s, exb_acl_res_t res, exb_acl_pattern_t pat, const char *name,
                 const char *principal, const exb_acl_op_t *ops, int nops)
{
        for (int i = 0; i < nops; i++) {
                s->v = exb_realloc(s->v, sizeof(*s->v) * (size_t)(s->n + 1));
                s->v[s->n++] = (exb_acl_t){res, pat, exb_strdup(name), exb_strdup(principal), ops[i]};
        }
}

static int acl_eq(const exb_acl_t *a, const exb_acl_t *b)
{
        return a->restype == b->restype && a->pattern == b->pattern && a->op == b->op &&
               !strcmp(a->name, b->name) && !strcmp(a->principal, b->principal);
}

static int acl_in(const exb_acl_t *a, const acl_set_t *s)
{
        for (int i = 0; i < s->n; i++)
                if (acl_eq(a, &s->v[i]))
                        return 1;
        return 0;
}

/* The ACLs the catalog and the active subscriptions call for. */
static void wanted(exb_control_t *ctl, const char *router, acl_set_t *s)
{
        static const exb_acl_op_t rd[] = {EXB_ACL_READ, EXB_ACL_DESCRIBE};
        static const exb_acl_op_t wr[] = {EXB_ACL_WRITE, EXB_ACL_DESCRIBE};
        static const exb_acl_op_t wrc[] = {EXB_ACL_WRITE, EXB_ACL_DESCRIBE, EXB_ACL_CREATE};
        static const exb_acl_op_t grp[] = {EXB_ACL_READ};
        static const exb_acl_op_t gdesc[] = {EXB_ACL_DESCRIBE};
        char **depts, name[256], principal[80];
        int nd = exb_control_departments(ctl, &depts);
        for (int i = 0; i < nd; i++) {
                snprintf(principal, sizeof(principal), "User:%s", depts[i]);
                want(s, EXB_ACL_TOPIC, EXB_ACL_LITERAL, EXB_CONTROL_TOPIC, principal, rd, 2);
                want(s, EXB_ACL_GROUP, EXB_ACL_PREFIXED, "exbus-groupless-", principal, gdesc, 1);
                snprintf(name, sizeof(name), "exbus-consumer-%s", depts[i]);
                want(s, EXB_ACL_GROUP, EXB_ACL_PREFIXED, name, principal, grp, 1);
                char **provided;
                int np = exb_control_resources(ctl, depts[i], &provided);
                if (np) {
                        snprintf(name, sizeof(name), "exb.ingest.%s.", depts[i]);
                        want(s, EXB_ACL_TOPIC, EXB_ACL_PREFIXED, name, principal, wr, 2);
                }
                exb_cli_strv_free(provided, np);
        }
        exb_cli_strv_free(depts, nd);
        exb_sub_t *subs;
        int ns = exb_control_subs(ctl, &subs);
        int64_t now = exb_now_ms();
        for (int i = 0; i < ns; i++) {
                if (!exb_sub_active(&subs[i], now))
                        continue;
                snprintf(principal, sizeof(principal), "User:%s", subs[i].subscriber);
                exb_sub_topic(&subs[i], name, sizeof(name));
                want(s, EXB_ACL_TOPIC, EXB_ACL_LITERAL, name, principal, rd, 2);
        }
        exb_subs_free(subs, ns);
        want(s, EXB_ACL_TOPIC, EXB_ACL_PREFIXED, "exb.ingest.", router, rd, 2);
        want(s, EXB_ACL_TOPIC, EXB_ACL_PREFIXED, "exb.deliver.", router, wrc, 3);
        want(s, EXB_ACL_TOPIC, EXB_ACL_PREFIXED, "exb.dlq.", router, wrc, 3);
        want(s, EXB_ACL_TOPIC, EXB_ACL_LITERAL, EXB_AUDIT_TOPIC, router, wrc, 3);
        want(s, EXB_ACL_TOPIC, EXB_ACL_LITERAL, EXB_CONTROL_TOPIC, router, rd, 2);
        want(s, EXB_ACL_GROUP, EXB_ACL_LITERAL, "exbus-router", router, grp, 1);
        want(s, EXB_ACL_GROUP, EXB_ACL_PREFIXED, "exbus-groupless-", router, gdesc, 1);
}

/* Is a cluster ACL one exbus manages (a managed principal on an exbus resource)?
 * depts: the catalog's department codes. */
static int managed(const exb_acl_t *a, char **depts, int nd, const char *router)
{
        if (a->restype == EXB_ACL_TOPIC ? strncmp(a->name, "exb.", 4)
            : a->restype == EXB_ACL_GROUP ? strncmp(a->name, "exbus-", 6)
                                          : 1)
                return 0;
        if (!strcmp(a->principal, router))
                return 1;
        for (int i = 0; !strncmp(a->principal, "User:", 5) && i < nd; i++)
                if (!strcmp(a->principal + 5, depts[i]))
                        return 1;
        return 0;
}

static void print_acl(const char *sign, const exb_acl_t *a)
{
        printf("%s %-22s %-7s %-9s %-44s %s\n", sign, a->principal, exb_acl_res_name(a->restype),
               a->pattern == EXB_ACL_PREFIXED ? "prefixed" : "literal", a->name,
               exb_acl_op_name(a->op));
}

int exb_cli_acl_sync(exb_cli_t *cli, exb_control_t *ctl, const char *router, int dry_run,
                     int quiet)
{
        const char *brokers = exb_cli_brokers(cli, NULL);
        char err[1024];
        exb_acl_t *have;
        int nh = exb_admin_acl_list(brokers, NULL, 0, &have, 15000, err, sizeof(err));
        if (nh == EXB_ACL_NO_AUTHORIZER) {
                if (!quiet)
                        printf("the cluster at %s does no authorization: no ACLs to sync\n", brokers);
                return 0;
        }
        if (nh < 0) {
                fprintf(stderr, "exbus: %s\n", err);
                return 1;
        }
        acl_set_t w = {0}, add = {0}, del = {0}, cur = {have, nh};
        wanted(ctl, router, &w);
        for (int i = 0; i < w.n; i++)
                if (!acl_in(&w.v[i], &cur) && !acl_in(&w.v[i], &add))
                        want(&add, w.v[i].restype, w.v[i].pattern, w.v[i].name, w.v[i].principal,
                             &w.v[i].op, 1);
        char **depts;
        int nd = exb_control_departments(ctl, &depts);
        for (int i = 0; i < nh; i++)
                if (managed(&have[i], depts, nd, router) && !acl_in(&have[i], &w))
                        want(&del, have[i].restype, have[i].pattern, have[i].name,
                             have[i].principal, &have[i].op, 1);
        for (int i = 0; i < add.n && !quiet; i++)
                print_acl("+", &add.v[i]);
        for (int i = 0; i < del.n && !quiet; i++)
                print_acl("-", &del.v[i]);
        int rc = 0;
        if (!dry_run) {
                if (exb_admin_acl_create(brokers, NULL, 0, add.v, add.n, 15000, err, sizeof(err)) ||
                    exb_admin_acl_delete(brokers, NULL, 0, del.v, del.n, 15000, err, sizeof(err))) {
                        fprintf(stderr, "exbus: %s\n", err);
                        rc = 1;
                } else if (!quiet) {
                        printf("ACLs in sync: %d added, %d removed\n", add.n, del.n);
                }
        }
        if (!quiet)
                printf("note: grant %s WRITE, DESCRIBE on transactional id prefix exbus-router "
                       "with kafka-acls for exactly-once routing (librdkafka 2.0.2 cannot)\n",
                       router);
        exb_acls_free(w.v, w.n);
        exb_acls_free(add.v, add.n);
        exb_acls_free(del.v, del.n);
        exb_acls_free(have, nh);
        exb_cli_strv_free(depts, nd);
        return rc;
}

int exb_cmd_acl(exb_cli_t *cli, int argc, char **argv)
{
        static const struct option opts[] = {{"dry-run", 0, 0, 'n'}, {"router", 1, 0, 'r'}, {0}};
        const char *router = exb_cli_router_principal();
        int dry_run = 0, c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'n')
                        dry_run = 1;
                else if (c == 'r')
                        router = optarg;
                else
                        return 2;
        }
        int list = optind == argc - 1 && !strcmp(argv[optind], "list");
        if (!list && !(optind == argc - 1 && !strcmp(argv[optind], "sync"))) {
                fprintf(stderr, "usage: exbus acl sync [--dry-run] [--router PRINCIPAL] | acl list\n");
                return 2;
        }
        exb_control_t *ctl = exb_cli_control(cli);
        if (!ctl)
                return 1;
        int rc;
        if (list) {
                acl_set_t w = {0};
                wanted(ctl, router, &w);
                for (int i = 0; i < w.n; i++)
                        print_acl(" ", &w.v[i]);
                exb_acls_free(w.v, w.n);
                rc = 0;
        } else {
                rc = exb_cli_acl_sync(cli, ctl, router, dry_run, 0);
        }
        exb_control_destroy(ctl);
        return rc;
}
