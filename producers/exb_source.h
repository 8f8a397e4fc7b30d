/*
 * exb_source.h — where the producer agent's changes come from: the source
 * plugin interface.
 *
 * A source is a struct of callbacks (Fluent Bit's input plugins), so a new
 * kind of source (the drop directory of CSV/JSONL files, ODBC) is a new file
 * and one line in the publisher's plugin list, never an `if` in the agent.
 *
 * Division of labour:
 *  - the source knows its storage: it checks that the configured tables can
 *    feed their resources (bind), installs its change capture (start), hands
 *    out changes in order with the values already mapped to the resource's
 *    item types (next), forgets changes once they are delivered (ack), and
 *    keeps rejected changes locally with their reason (reject);
 *  - the publisher knows the exchange: catalog lookups, validation
 *    (exb_validate), encoding, producing, delivery reports. It never looks
 *    inside the source's storage.
 *
 * Positions. Every change has a position `pos` (> 0), strictly increasing
 * in the order next() returns changes; ack(pos) means "every change up to and
 * including pos was delivered or rejected". A source must never later hand
 * out a change with a position <= one it has already handed out, except
 * after rewind(). Snapshot rows have their own positions per table (for
 * SQLite: the rowid).
 *
 * Values. A change carries one exb_val_t per field of its table's schema, in
 * schema field order, with the types of exb_common.h. A value that does not
 * fit its item type is not an error of the source: the change is returned
 * with `error` set (e.g. `item "birth_date": "15/01/2026" is not a date
 * (YYYY-MM-DD)`), and the publisher rejects it. String and bytes values are
 * borrowed from the source and valid until its next call.
 *
 * Threading: a source is used by one thread (the publisher's).
 */
#ifndef EXB_SOURCE_H
#define EXB_SOURCE_H

#include <stdint.h>
#include "exb_common.h"
#include "exb_catalog.h"
#include "exb_conf.h"
#include "exb_schema.h"

typedef struct exb_source_s exb_source_t; /* each plugin defines its own */

typedef struct exb_source_conf_s {
        const char *where;    /* config file name, prefixes messages */
        const char *dept;     /* department code: first part of event ids */
        const char *path;     /* source.path: a database file, a directory... */
        const char *data_dir; /* the agent's own files */
        int batch_size;       /* changes read from storage at a time */
        /* The other source.* keys of the producer's configuration, without
         * "source." (e.g. "files.settle.ms"), as configured; NULL or empty
         * when there are none. Only a plugin with props receives any (the
         * publisher refuses them for a plugin without), and its open()
         * checks them against props. */
        const exb_conf_kvs_t *opts;
} exb_source_conf_t;

/* One configured table (or file pattern) and what it feeds. */
typedef struct exb_source_table_s {
        const char *name;           /* as configured: source.table.<name> */
        const exb_resource_t *res;  /* latest version of the resource (borrowed) */
        const exb_schema_t *schema; /* its ingest schema (borrowed) */
} exb_source_table_t;

typedef struct exb_change_s {
        int64_t pos; /* position, see above */
        int table;   /* index into the bound tables, -1 if the change
                      * names a table that is not (any longer) bound */
        exb_op_t op;
        int64_t ts_ms;        /* when the change happened (snapshot: when read) */
        const char *event_id; /* stable for this change: "<dept>-<db id>-<seq>" */
        int nvals;            /* the table's schema field count */
        exb_val_t *vals;      /* schema field order */
        const char *error;    /* non-NULL: could not be mapped, why (vals unusable) */
        const char *raw;      /* the change as stored (JSON), for logs; may be NULL */
} exb_change_t;

typedef struct exb_source_plugin_s {
        const char *name; /* source.type value */
        const char *description;

        /* Opens the source at conf->path without changing anything.
         * Returns NULL with errstr ("source.path /x/ga.db: unable to open ..."). */
        exb_source_t *(*open)(const exb_source_conf_t *conf, char *errstr, size_t errstr_size);

        /* Checks that each table can feed its resource (the table exists,
         * every key and required item is a column...) and prepares the value
         * mapping. Reads only. May be called again with a new table set (a
         * new resource version); on error the previous binding stays.
         * Tables are copied; res/schema must outlive the binding.
         * Returns 0, or -1 with errstr naming table, column and item. */
        int (*bind)(exb_source_t *src, const exb_source_table_t *tables, int ntables, char *errstr,
                    size_t errstr_size);

        /* Installs (again: idempotent) the change capture for the bound tables
         * and rewinds to the first unacknowledged change. Returns 0 or -1. */
        int (*start)(exb_source_t *src, char *errstr, size_t errstr_size);

        /* The next change after the read position. Returns 1 (chg filled),
         * 0 (none pending now), -1 with errstr (storage error; retry later). */
        int (*next)(exb_source_t *src, exb_change_t *chg, char *errstr, size_t errstr_size);

        /* Moves the read position back: the next change returned is the first
         * one after `pos` (0 = the oldest unacknowledged). */
        void (*rewind)(exb_source_t *src, int64_t pos);

        /* Every change up to and including pos (0: none) is delivered: forget
         * them; and write the rejections held since the last ack, in the same
         * transaction. Returns 0, or -1 with errstr (storage busy: nothing
         * was done, call again later). */
        int (*ack)(exb_source_t *src, int64_t pos, char *errstr, size_t errstr_size);

        /* Keeps a change that may not leave (mapping or validation failed)
         * locally, with its reason, and forgets it as a pending change. Also
         * for snapshot rows. The source may hold the rejection until the next
         * ack() (so that many are written in one transaction); until then a
         * crash leaves the change pending, to be rejected again. Returns 0 or
         * -1 with errstr. */
        int (*reject)(exb_source_t *src, const exb_change_t *chg, const char *reason, char *errstr,
                      size_t errstr_size);

        /* Snapshot (optional, NULL if the source has no full state): the rows
         * of table `table` after position `after`, as op SNAPSHOT changes with
         * event ids "<dept>-<db id>-snap<run>-<pos>". Returns 1, 0 at the end,
         * -1 with errstr. */
        int (*snapshot_next)(exb_source_t *src, int table, int64_t after, int run,
                             exb_change_t *chg, char *errstr, size_t errstr_size);
        /* Rows of table in total and at positions <= after (for progress). */
        int (*snapshot_count)(exb_source_t *src, int table, int64_t after, int64_t *total,
                              int64_t *done);

        /* An id of the source's storage that changes when it is recreated
         * (SQLite: the random id kept in exb_meta). Borrowed. */
        const char *(*id)(exb_source_t *src);

        void (*close)(exb_source_t *src); /* NULL is a no-op */

        /* The plugin's own keys, spelled in full ("source.files.settle.ms"),
         * or NULL if it takes none. */
        const exb_prop_t *props;
} exb_source_plugin_t;

/* The SQLite source (exb_source_sqlite.c). */
extern const exb_source_plugin_t exb_source_sqlite;
/* The drop directory of CSV and JSONL files (exb_source_files.c). */
extern const exb_source_plugin_t exb_source_files;

#endif
