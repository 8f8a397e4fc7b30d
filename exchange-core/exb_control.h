/*
 * exb_control.h — the control plane: the exb.control topic and its local cache.
 *
 * exb.control (1 partition, compacted) is the only shared state besides the
 * data topics (DESIGN §2). Every process replays it into a local SQLite cache
 * (a file under data.dir, or memory) and keeps following it. Reading never
 * uses a consumer group: partition 0 is assigned from the cache's next
 * offset (or the beginning) and read to the high watermark.
 *
 * Records: key "<kind>/<id>", value a JSON object.
 *
 *   department/<code>          {"code","name"}
 *   schema/<subject>/<fp16>    {"subject","resource","fingerprint","avro"}
 *                              subject "resource:<code>" (ingest) or
 *                              "delivery:<sub id>"; the schema id IS the
 *                              record's offset.
 *   resource/<code>            {"prev","version","schema_id","resource":{...}}
 *   request/<nonce>            {"subscriber","resource","items":[..],"purpose",
 *                              "legal_basis","until","at"}  -> the subscription
 *                              id is "S-" + the record's offset (6+ digits).
 *   subscription/<id>          {"prev","state","items","masks":{item:spec},
 *                              "filter","until","reason","delivery_schema_id","at"}
 *
 * Compare-and-set on a log: a resource or subscription record names in
 * "prev" the offset of the state it replaces. Replay applies it only if prev
 * is >= the offset of the state currently applied for that key (== in an
 * uncompacted log; > only when compaction removed the records between), and
 * the state transition is allowed. Every replayer therefore reaches the same
 * verdict. A writer reads its own record back: applied, or it reports the
 * conflict and re-asserts the winning state so that, after compaction, the
 * last record of the key is still the winner's.
 *
 * Subscription lifecycle: requested -> approved | rejected;
 * approved -> approved (changed rules) | revoked. An approved subscription
 * past its "until" date is reported as expired and is not routed.
 */
#ifndef EXB_CONTROL_H
#define EXB_CONTROL_H

#include <sqlite3.h>
#include "exb_common.h"
#include "exb_catalog.h"
#include "exb_schema.h"
#include "exb_mask.h"
#include "exb_kafka.h"

#define EXB_CONTROL_TOPIC "exb.control"
#define EXB_AUDIT_TOPIC "exb.audit"

typedef struct exb_control_s exb_control_t;

/* Opens (creating) the cache at cache_path (NULL = in memory) and starts
 * reading exb.control. A cache written against another cluster, or ahead of
 * the topic (a new embedded broker), is rebuilt from scratch.
 * Returns NULL with errstr (broker unreachable within timeout_ms, cache unusable). */
exb_control_t *exb_control_new(const char *brokers, const exb_kprop_t *props, int nprops,
                               const char *cache_path, int timeout_ms, char *errstr,
                               size_t errstr_size);
void exb_control_destroy(exb_control_t *ctl);

/* Reads up to the current high watermark, waiting up to timeout_ms.
 * Returns the number of records applied, or -1 with errstr. */
int exb_control_sync(exb_control_t *ctl, int timeout_ms, char *errstr, size_t errstr_size);

/* Applies whatever has already arrived, without waiting. Returns the count. */
int exb_control_poll(exb_control_t *ctl);

/* Incremented every time a record changes the cached state. */
uint64_t exb_control_generation(const exb_control_t *ctl);

/* The cache, for read-only queries by ops commands. */
sqlite3 *exb_control_db(exb_control_t *ctl);

/* --------------------------------------------------------------- read model */

/* Returns the latest version of a resource (caller destroys), or NULL. */
exb_resource_t *exb_control_resource(exb_control_t *ctl, const char *code, int32_t *schema_id);
/* Schema by id (caller destroys), or NULL if unknown. */
exb_schema_t *exb_control_schema(exb_control_t *ctl, int32_t id);
/* Resource code of schema `id` if its subject is of `kind` ("resource" for
 * ingest schemas, "delivery" for delivery schemas), or NULL. Caller frees. */
char *exb_control_schema_resource(exb_control_t *ctl, int32_t id, const char *kind);
/* 1 if department `code` is another exchange node ("node": true), else 0. */
int exb_control_dept_node(exb_control_t *ctl, const char *code);
/* Department codes (caller frees each and the array); returns count. */
int exb_control_departments(exb_control_t *ctl, char ***codes);
/* Resource codes, of one provider or all (provider NULL); freed like the above. */
int exb_control_resources(exb_control_t *ctl, const char *provider, char ***codes);

typedef enum {
        EXB_SUB_REQUESTED = 0,
        EXB_SUB_APPROVED,
        EXB_SUB_REJECTED,
        EXB_SUB_REVOKED,
        EXB_SUB_EXPIRED /* derived: approved and past "until" */
} exb_sub_state_t;
const char *exb_sub_state_name(exb_sub_state_t s);

typedef struct exb_sub_s {
        char *id;          /* S-000042 */
        char *subscriber;  /* department code */
        char *resource;    /* resource code */
        exb_sub_state_t state;
        int nrequested;
        char **requested;  /* requested item names */
        int nitems;
        char **items;      /* approved item names (projection) */
        exb_mask_t *masks; /* parallel to items */
        char *filter;      /* NULL = all records */
        char *until;       /* YYYY-MM-DD or NULL */
        char *purpose, *legal_basis, *reason;
        int32_t delivery_schema_id;
        int64_t requested_at, decided_at; /* ms */
        int64_t offset;    /* offset of the applied state record */
} exb_sub_t;

/* All subscriptions (caller frees with exb_subs_free). Returns the count. */
int exb_control_subs(exb_control_t *ctl, exb_sub_t **subs);
/* One subscription, or NULL. Free with exb_subs_free(sub, 1). */
exb_sub_t *exb_control_sub(exb_control_t *ctl, const char *id);
void exb_subs_free(exb_sub_t *subs, int n);
/* Is the subscription to be routed now (approved and not past until)? */
int exb_sub_active(const exb_sub_t *sub, int64_t now_ms);
/* "exb.deliver.<subscriber>.<resource>" into out. */
void exb_sub_topic(const exb_sub_t *sub, char *out, size_t out_size);

/* max.message.bytes of the dead-letter topics exb.dlq.*: the largest value the
 * router accepts (64 MiB) plus room for key, headers and batch overhead. */
#define EXB_DLQ_MAX_BYTES (65 * 1024 * 1024)

/* Topics the catalog and subscriptions imply (ingest per resource, dlq per
 * department, deliver per approved subscription, control, audit). Caller
 * frees with exb_topic_specs_free. Returns the count. */
int exb_control_topics(exb_control_t *ctl, int partitions, exb_topic_spec_t **specs);
void exb_topic_specs_free(exb_topic_spec_t *specs, int n);

/* ------------------------------------------------------------------ writes */

/* Import report: one line per department/resource: "new", "unchanged",
 * "new version 2", or the reason it was refused. */
typedef void(exb_import_cb_t)(void *opaque, const char *what, const char *status);

/* Publishes the catalog: departments, derived ingest schemas, resources.
 * Unchanged entries are skipped (importing twice changes nothing); a
 * changed resource becomes a new version only if compatible, otherwise the
 * whole import is refused before anything is written.
 * Returns EXB_OK, EXB_ERR_INVALID with errstr, or EXB_ERR_RETRY. */
exb_err_t exb_control_import(exb_control_t *ctl, const exb_catalog_t *cat, exb_import_cb_t *cb,
                             void *opaque, char *errstr, size_t errstr_size);

typedef struct exb_sub_request_s {
        const char *subscriber, *resource, *purpose, *legal_basis, *until;
        const char *const *items;
        int nitems;
} exb_sub_request_t;

/* Requests a subscription; writes its id (S-000042) into id_out. Fails if
 * the resource is `none`, an item does not exist or may not be shared, or
 * the subscriber already has an open subscription to the resource.
 * An unconditional resource is approved at once when auto_approve is set. */
exb_err_t exb_control_sub_request(exb_control_t *ctl, const exb_sub_request_t *req,
                                  int auto_approve, char *id_out, size_t id_size, char *errstr,
                                  size_t errstr_size);

typedef struct exb_sub_decision_s {
        exb_sub_state_t state; /* APPROVED, REJECTED or REVOKED */
        const char *const *items; /* APPROVED: NULL = the requested items */
        int nitems;
        const char *const *mask_specs; /* "item=partial:6:4", ... */
        int nmasks;
        const char *filter;
        const char *until;
        const char *reason; /* required for REJECTED / REVOKED */
} exb_sub_decision_t;

/* Changes a subscription's state by compare-and-set; reports a conflict if
 * another writer changed it first (EXB_ERR_RETRY with errstr), an invalid
 * transition or rule (bad item, mask, filter) with EXB_ERR_INVALID. */
exb_err_t exb_control_sub_decide(exb_control_t *ctl, const char *id,
                                 const exb_sub_decision_t *dec, char *errstr, size_t errstr_size);

/* Builds the delivery schema of an approved subscription: the approved
 * items of the resource, masked items as strings (partial/hash) or nullable
 * (redact), key items not nullable. Caller destroys. */
exb_schema_t *exb_sub_delivery_schema(const exb_resource_t *res, const exb_sub_t *sub,
                                      char *errstr, size_t errstr_size);

/* Ingest schema of a resource version (all items, keys required). */
exb_schema_t *exb_resource_schema(const exb_resource_t *res, char *errstr, size_t errstr_size);

#endif
