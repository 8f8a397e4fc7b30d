/*
 * exb_cmd_sub.c — `exbus sub request|approve|reject|revoke|list` (供需对接).
 *
 * Every state change is a compare-and-set record on exb.control; the command
 * returns once it has read its own record back as applied, or reports the
 * conflict. A conditional request must be decided within a deadline of
 * working days (EXBUS_APPROVAL_DAYS, default 10); `sub list` shows it and
 * flags overdue requests.
 */
#include "exb_cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* requested_at plus `days` working days (Monday..Friday), as YYYY-MM-DD. */
static void deadline(int64_t requested_ms, char out[11])
{
        const char *env = getenv("EXBUS_APPROVAL_DAYS");
        int days = env ? atoi(env) : 10;
        int64_t d = requested_ms / 86400000;
        while (days > 0) {
                d++;
                int wday = (int)((d + 4) % 7); /* 1970-01-01 was a Thursday (4) */
                if (wday != 0 && wday != 6)
                        days--;
        }
        exb_date_format(d, out);
}

static int sub_request(exb_cli_t *cli, int argc, char **argv)
{
        static const struct option opts[] = {{"subscriber", 1, 0, 's'}, {"resource", 1, 0, 'r'},
                                             {"items", 1, 0, 'i'},      {"purpose", 1, 0, 'p'},
                                             {"legal-basis", 1, 0, 'l'}, {"until", 1, 0, 'u'},
                                             {"no-auto-approve", 0, 0, 'n'}, {0}};
        exb_sub_request_t req = {0};
        const char *items = NULL;
        int auto_approve = 1, c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 's': req.subscriber = optarg; break;
                case 'r': req.resource = optarg; break;
                case 'i': items = optarg; break;
                case 'p': req.purpose = optarg; break;
                case 'l': req.legal_basis = optarg; break;
                case 'u': req.until = optarg; break;
                case 'n': auto_approve = 0; break;
                default: return 2;
                }
        }
        if (!req.subscriber || !req.resource || !items || optind != argc) {
                fprintf(stderr, "usage: exbus sub request --subscriber DEPT --resource CODE "
                                "--items a,b,c --purpose TEXT [--legal-basis TEXT] [--until "
                                "YYYY-MM-DD] [--no-auto-approve]\n");
                return 2;
        }
        char **v;
        req.nitems = exb_cli_split(items, &v);
        req.items = (const char *const *)v;
        exb_control_t *ctl = exb_cli_control(cli);
        int rc = 1;
        if (ctl) {
                char id[32], err[1024];
                exb_err_t e = exb_control_sub_request(ctl, &req, auto_approve, id, sizeof(id), err,
                                                      sizeof(err));
                if (e == EXB_OK || (id[0] && e != EXB_ERR_INVALID)) {
                        printf("%s\n", id);
                        exb_cli_ensure_topics(cli, ctl);
                        rc = e == EXB_OK ? exb_cli_acl_sync(cli, ctl, exb_cli_router_principal(), 0, 1) : 1;
                }
                if (e != EXB_OK)
                        fprintf(stderr, "exbus: %s\n", err);
        }
        exb_cli_strv_free(v, req.nitems);
        exb_control_destroy(ctl);
        return rc;
}

static int sub_decide(exb_cli_t *cli, exb_sub_state_t state, int argc, char **argv)
{
        static const struct option opts[] = {{"items", 1, 0, 'i'}, {"mask", 1, 0, 'm'},
                                             {"filter", 1, 0, 'f'}, {"until", 1, 0, 'u'},
                                             {"reason", 1, 0, 'r'}, {0}};
        exb_sub_decision_t dec = {.state = state};
        char **items = NULL, **masks = NULL;
        int nitems = 0, nmasks = 0, c, rc = 2;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'i':
                        exb_cli_strv_free(items, nitems);
                        nitems = exb_cli_split(optarg, &items);
                        dec.items = (const char *const *)items;
                        dec.nitems = nitems;
                        break;
                case 'm':
                        masks = exb_realloc(masks, sizeof(char *) * (size_t)(nmasks + 1));
                        masks[nmasks++] = exb_strdup(optarg);
                        break;
                case 'f': dec.filter = optarg; break;
                case 'u': dec.until = optarg; break;
                case 'r': dec.reason = optarg; break;
                default: goto done;
                }
        }
        dec.mask_specs = (const char *const *)masks;
        dec.nmasks = nmasks;
        if (optind != argc - 1 ||
            (state != EXB_SUB_APPROVED && (dec.items || nmasks || dec.filter || dec.until))) {
                fprintf(stderr, state == EXB_SUB_APPROVED
                                    ? "usage: exbus sub approve ID [--items a,b] [--mask "
                                      "ITEM=partial:H:T|hash|redact ...] [--filter EXPR] [--until "
                                      "YYYY-MM-DD]\n"
                                    : "usage: exbus sub reject|revoke ID --reason TEXT\n");
                goto done;
        }
        exb_control_t *ctl = exb_cli_control(cli);
        rc = 1;
        if (ctl) {
                char err[1024];
                if (exb_control_sub_decide(ctl, argv[optind], &dec, err, sizeof(err)) == EXB_OK) {
                        printf("%s %s\n", argv[optind], exb_sub_state_name(state));
                        if (state == EXB_SUB_APPROVED)
                                exb_cli_ensure_topics(cli, ctl);
                        /* Approving grants the subscriber its topic, revoking takes it away. */
                        rc = exb_cli_acl_sync(cli, ctl, exb_cli_router_principal(), 0, 1);
                } else {
                        fprintf(stderr, "exbus: %s\n", err);
                }
                exb_control_destroy(ctl);
        }
done:
        exb_cli_strv_free(items, nitems);
        exb_cli_strv_free(masks, nmasks);
        return rc;
}

static int sub_list(exb_cli_t *cli)
{
        exb_control_t *ctl = exb_cli_control(cli);
        if (!ctl)
                return 1;
        exb_sub_t *subs;
        int n = exb_control_subs(ctl, &subs);
        json_t *all = json_array();
        if (!cli->json)
                printf("%-9s %-10s %-16s %-9s %-24s %s\n", "ID", "SUBSCRIBER", "RESOURCE", "STATE",
                       "ITEMS", "NOTE");
        char today[11];
        exb_date_format(exb_now_ms() / 86400000, today);
        for (int i = 0; i < n; i++) {
                exb_sub_t *s = &subs[i];
                char due[11], note[256] = "";
                deadline(s->requested_at, due);
                if (s->state == EXB_SUB_REQUESTED)
                        snprintf(note, sizeof(note), "decide by %s%s", due,
                                 strcmp(today, due) > 0 ? " (OVERDUE)" : "");
                else if (s->state == EXB_SUB_APPROVED || s->state == EXB_SUB_EXPIRED)
                        snprintf(note, sizeof(note), "%s%s%s", s->until ? "until " : "",
                                 s->until ? s->until : "", s->filter ? " filtered" : "");
                else if (s->reason)
                        snprintf(note, sizeof(note), "%s", s->reason);
                char **shown = s->nitems ? s->items : s->requested;
                int nshown = s->nitems ? s->nitems : s->nrequested;
                json_t *items = exb_cli_strv_json(shown, nshown);
                if (cli->json) {
                        json_t *masks = exb_cli_masks_json(s);
                        json_array_append_new(
                            all, json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s?, s:s?, s:s?, "
                                           "s:s?, s:s?, s:s}",
                                           "id", s->id, "subscriber", s->subscriber, "resource",
                                           s->resource, "state", exb_sub_state_name(s->state),
                                           "requested", exb_cli_strv_json(s->requested, s->nrequested),
                                           "items", items, "masks", masks, "filter", s->filter,
                                           "until", s->until, "purpose", s->purpose, "legal_basis",
                                           s->legal_basis, "reason", s->reason, "deadline", due));
                } else {
                        char *text = json_dumps(items, JSON_COMPACT);
                        printf("%-9s %-10s %-16s %-9s %-24s %s\n", s->id, s->subscriber, s->resource,
                               exb_sub_state_name(s->state), text, note);
                        free(text);
                        json_decref(items);
                }
        }
        if (cli->json) {
                json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("\n");
        }
        json_decref(all);
        exb_subs_free(subs, n);
        exb_control_destroy(ctl);
        return 0;
}

int exb_cmd_sub(exb_cli_t *cli, int argc, char **argv)
{
        const char *what = argc >= 2 ? argv[1] : "";
        if (!strcmp(what, "request"))
                return sub_request(cli, argc - 1, argv + 1);
        if (!strcmp(what, "approve"))
                return sub_decide(cli, EXB_SUB_APPROVED, argc - 1, argv + 1);
        if (!strcmp(what, "reject"))
                return sub_decide(cli, EXB_SUB_REJECTED, argc - 1, argv + 1);
        if (!strcmp(what, "revoke"))
                return sub_decide(cli, EXB_SUB_REVOKED, argc - 1, argv + 1);
        if (!strcmp(what, "list") && argc == 2)
                return sub_list(cli);
        fprintf(stderr, "usage: exbus sub request|approve|reject|revoke|list ...\n");
        return 2;
}
