/*
 * exb_kafka_acl.c — Kafka ACLs through the Admin API (DescribeAcls,
 * CreateAcls, DeleteAcls), for `exbus acl sync` (see exb_kafka.h).
 *
 * Every ACL exbus manages is ALLOW for any host ("*"). A cluster without an
 * authorizer answers SECURITY_DISABLED; a broker without the ACL APIs (the
 * embedded one) cannot be asked at all: both are "no authorizer", not errors.
 */
#include "exb_kafka_int.h"

#include <stdlib.h>
#include <string.h>

const char *exb_acl_res_name(exb_acl_res_t r)
{
        return r == EXB_ACL_TOPIC ? "topic" : r == EXB_ACL_GROUP ? "group" : "cluster";
}

const char *exb_acl_op_name(exb_acl_op_t op)
{
        return rd_kafka_AclOperation_name((rd_kafka_AclOperation_t)op);
}

void exb_acls_free(exb_acl_t *acls, int n)
{
        for (int i = 0; acls && i < n; i++) {
                free(acls[i].name);
                free(acls[i].principal);
        }
        free(acls);
}

/* Runs one admin request on a fresh handle and waits for its result event. */
typedef void(acl_call_t)(rd_kafka_t *rk, void *arg, const rd_kafka_AdminOptions_t *opts,
                         rd_kafka_queue_t *q);

static rd_kafka_event_t *acl_call(const char *brokers, const exb_kprop_t *props, int nprops,
                                  rd_kafka_admin_op_t op, acl_call_t *call, void *arg,
                                  int timeout_ms, rd_kafka_t **rkp, char *errstr,
                                  size_t errstr_size)
{
        rd_kafka_t *rk = exb_admin_handle(brokers, props, nprops, errstr, errstr_size);
        if (!rk)
                return NULL;
        /* librdkafka's mock cluster (the embedded broker) has no ACL API and
         * would leave the request waiting for a controller until the timeout:
         * recognise it by the cluster id it gives itself. */
        if (exb_kafka_is_embedded(rk, timeout_ms < 5000 ? timeout_ms : 5000)) {
                exb_errf(errstr, errstr_size, "%s is an embedded broker: no ACL API", brokers);
                rd_kafka_destroy(rk);
                return NULL;
        }
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, op);
        char es[256];
        rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, es, sizeof(es));
        call(rk, arg, opts, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        if (!ev) {
                exb_errf(errstr, errstr_size, "ACLs at %s: no answer in %d ms", brokers, timeout_ms);
                rd_kafka_destroy(rk);
                return NULL;
        }
        *rkp = rk;
        return ev;
}

static void describe_call(rd_kafka_t *rk, void *arg, const rd_kafka_AdminOptions_t *opts,
                          rd_kafka_queue_t *q)
{
        rd_kafka_DescribeAcls(rk, arg, opts, q);
}

int exb_admin_acl_list(const char *brokers, const exb_kprop_t *props, int nprops,
                       exb_acl_t **acls, int timeout_ms, char *errstr, size_t errstr_size)
{
        *acls = NULL;
        char es[256];
        rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
            RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
            RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, es, sizeof(es));
        rd_kafka_t *rk = NULL;
        rd_kafka_event_t *ev = acl_call(brokers, props, nprops, RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
                                        describe_call, f, timeout_ms, &rk, errstr, errstr_size);
        rd_kafka_AclBinding_destroy(f);
        if (!ev)
                return strstr(errstr, "no ACL API") ? EXB_ACL_NO_AUTHORIZER : -1;
        int n = -1;
        rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
        if (err == RD_KAFKA_RESP_ERR_SECURITY_DISABLED ||
            err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
            err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION) {
                n = EXB_ACL_NO_AUTHORIZER;
        } else if (err) {
                exb_errf(errstr, errstr_size, "DescribeAcls at %s: %s", brokers,
                         rd_kafka_event_error_string(ev));
        } else {
                size_t cnt;
                const rd_kafka_AclBinding_t **b = rd_kafka_DescribeAcls_result_acls(
                    rd_kafka_event_DescribeAcls_result(ev), &cnt);
                *acls = exb_calloc(cnt + 1, sizeof(**acls));
                n = 0;
                for (size_t i = 0; i < cnt; i++) {
                        if (rd_kafka_AclBinding_permission_type(b[i]) !=
                                RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW ||
                            strcmp(rd_kafka_AclBinding_host(b[i]), "*"))
                                continue; /* not one of ours */
                        (*acls)[n++] = (exb_acl_t){
                            (exb_acl_res_t)rd_kafka_AclBinding_restype(b[i]),
                            (exb_acl_pattern_t)rd_kafka_AclBinding_resource_pattern_type(b[i]),
                            exb_strdup(rd_kafka_AclBinding_name(b[i])),
                            exb_strdup(rd_kafka_AclBinding_principal(b[i])),
                            (exb_acl_op_t)rd_kafka_AclBinding_operation(b[i])};
                }
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_destroy(rk);
        return n;
}

typedef struct acl_arg_s {
        void **items;
        size_t n;
} acl_arg_t;

static void create_call(rd_kafka_t *rk, void *arg, const rd_kafka_AdminOptions_t *opts,
                        rd_kafka_queue_t *q)
{
        acl_arg_t *a = arg;
        rd_kafka_CreateAcls(rk, (rd_kafka_AclBinding_t **)a->items, a->n, opts, q);
}

static void delete_call(rd_kafka_t *rk, void *arg, const rd_kafka_AdminOptions_t *opts,
                        rd_kafka_queue_t *q)
{
        acl_arg_t *a = arg;
        rd_kafka_DeleteAcls(rk, (rd_kafka_AclBindingFilter_t **)a->items, a->n, opts, q);
}

/* Creates or deletes (exact filters) the given ACLs. */
static exb_err_t acl_change(const char *brokers, const exb_kprop_t *props, int nprops,
                            const exb_acl_t *acls, int n, int create, int timeout_ms,
                            char *errstr, size_t errstr_size)
{
        if (n <= 0)
                return EXB_OK;
        acl_arg_t a = {exb_calloc((size_t)n, sizeof(void *)), (size_t)n};
        char es[256];
        for (int i = 0; i < n; i++) {
                rd_kafka_AclBinding_t *(*mk)(rd_kafka_ResourceType_t, const char *,
                                             rd_kafka_ResourcePatternType_t, const char *,
                                             const char *, rd_kafka_AclOperation_t,
                                             rd_kafka_AclPermissionType_t, char *, size_t) =
                    create ? rd_kafka_AclBinding_new : rd_kafka_AclBindingFilter_new;
                a.items[i] = mk((rd_kafka_ResourceType_t)acls[i].restype, acls[i].name,
                                (rd_kafka_ResourcePatternType_t)acls[i].pattern, acls[i].principal,
                                "*", (rd_kafka_AclOperation_t)acls[i].op,
                                RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, es, sizeof(es));
                if (!a.items[i]) {
                        exb_errf(errstr, errstr_size, "ACL %s %s: %s", acls[i].principal,
                                 acls[i].name, es);
                        rd_kafka_AclBinding_destroy_array((rd_kafka_AclBinding_t **)a.items,
                                                          (size_t)i);
                        free(a.items);
                        return EXB_ERR_INVALID;
                }
        }
        rd_kafka_t *rk = NULL;
        rd_kafka_event_t *ev =
            acl_call(brokers, props, nprops,
                     create ? RD_KAFKA_ADMIN_OP_CREATEACLS : RD_KAFKA_ADMIN_OP_DELETEACLS,
                     create ? create_call : delete_call, &a, timeout_ms, &rk, errstr, errstr_size);
        rd_kafka_AclBinding_destroy_array((rd_kafka_AclBinding_t **)a.items, a.n);
        free(a.items);
        if (!ev)
                return EXB_ERR_RETRY;
        exb_err_t ret = EXB_OK;
        if (rd_kafka_event_error(ev)) {
                exb_errf(errstr, errstr_size, "%s at %s: %s", create ? "CreateAcls" : "DeleteAcls",
                         brokers, rd_kafka_event_error_string(ev));
                ret = exb_kerr(rk, rd_kafka_event_error(ev));
        } else if (create) {
                size_t cnt;
                const rd_kafka_acl_result_t **res =
                    rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &cnt);
                for (size_t i = 0; i < cnt && ret == EXB_OK; i++)
                        if (rd_kafka_acl_result_error(res[i])) {
                                exb_errf(errstr, errstr_size, "CreateAcls: %s %s: %s",
                                         acls[i].principal, acls[i].name,
                                         rd_kafka_error_string(rd_kafka_acl_result_error(res[i])));
                                ret = EXB_ERR_INVALID;
                        }
        } else {
                size_t cnt;
                const rd_kafka_DeleteAcls_result_response_t **res =
                    rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev), &cnt);
                for (size_t i = 0; i < cnt && ret == EXB_OK; i++)
                        if (rd_kafka_DeleteAcls_result_response_error(res[i])) {
                                exb_errf(errstr, errstr_size, "DeleteAcls: %s %s: %s",
                                         acls[i].principal, acls[i].name,
                                         rd_kafka_error_string(
                                             rd_kafka_DeleteAcls_result_response_error(res[i])));
                                ret = EXB_ERR_INVALID;
                        }
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_destroy(rk);
        return ret;
}

exb_err_t exb_admin_acl_create(const char *brokers, const exb_kprop_t *props, int nprops,
                               const exb_acl_t *acls, int n, int timeout_ms, char *errstr,
                               size_t errstr_size)
{
        return acl_change(brokers, props, nprops, acls, n, 1, timeout_ms, errstr, errstr_size);
}

exb_err_t exb_admin_acl_delete(const char *brokers, const exb_kprop_t *props, int nprops,
                               const exb_acl_t *acls, int n, int timeout_ms, char *errstr,
                               size_t errstr_size)
{
        return acl_change(brokers, props, nprops, acls, n, 0, timeout_ms, errstr, errstr_size);
}
