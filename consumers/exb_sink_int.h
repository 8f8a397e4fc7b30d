/*
 * exb_sink_int.h — what sinks share internally.
 *
 * The local dead-letter store of sinks that have no database of their own
 * (http, jsonl, uplink): data.dir/consumer-<dept>-dlq.db, table
 *   exb_dead_letters(topic, partition, offset, key, value, reason, at)
 *   PRIMARY KEY(topic, partition, offset)
 * as in the SQLite sink. Adding the same record again replaces it, so a
 * batch that is retried never duplicates its dead letters.
 */
#ifndef EXB_SINK_INT_H
#define EXB_SINK_INT_H

#include "exb_sink.h"

typedef struct exb_sink_dlq_s exb_sink_dlq_t;

/* Opens (creating) the store. NULL with errstr on failure. */
exb_sink_dlq_t *exb_sink_dlq_open(const char *data_dir, const char *dept, char *errstr,
                                  size_t errstr_size);
void exb_sink_dlq_close(exb_sink_dlq_t *dlq); /* NULL is a no-op */

/* Keeps rec (raw key and value) with the reason, durably. Returns 0, or -1
 * with errstr (the store is unwritable: the batch must be retried). */
int exb_sink_dlq_add(exb_sink_dlq_t *dlq, const exb_sink_rec_t *rec, const char *reason,
                     char *errstr, size_t errstr_size);

#endif
