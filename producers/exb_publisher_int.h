/*
 * exb_publisher_int.h — internals of the producer agent that its unit tests
 * reach: the pure parts of the restart recovery (see "Restart recovery" at
 * the top of exb_publisher.c). Nothing else includes this header.
 */
#ifndef EXB_PUBLISHER_INT_H
#define EXB_PUBLISHER_INT_H

#include <stddef.h>
#include <stdint.h>

/* One change of the recovery window: a change after the source's last
 * acknowledged one that the previous run may have produced. */
typedef struct exb_pubrec_ent_s {
        int64_t pos;     /* source position (increasing in source order) */
        int topic;       /* index of its ingest topic */
        const char *key; /* the Kafka key (key items joined by '|') */
        size_t key_len;
        const char *event_id; /* NUL-terminated */
        int present;          /* in: found on its topic */
        int skip;             /* out: delivered, not to be produced again */
} exb_pubrec_ent_t;

/* Reads the event id of a framed exbus value without a schema: after the 5
 * frame bytes the envelope starts with op (an enum: one zigzag varint) and
 * event_id (a string: zigzag varint length, bytes), DESIGN §3 and
 * exb_schema.c. Bounded: varints of at most 10 bytes, the length checked
 * against the bytes left. Returns 0 with *eid pointing into value, or -1
 * (not an exbus value). */
int exb_pub_peek_event_id(const void *value, size_t len, const char **eid, size_t *eid_len);

/* Decides which window entries (given in source order) were delivered: an
 * entry is skipped only if it is present and every earlier entry of the same
 * topic and key is present too. After the first missing change of a key,
 * that key's later changes are produced again even if present, so the
 * newest state of a key always arrives last and nothing Kafka does not have
 * is skipped. Sets ents[i].skip; returns how many are skipped. */
int exb_pub_recovery_plan(exb_pubrec_ent_t *ents, int n);

#endif
