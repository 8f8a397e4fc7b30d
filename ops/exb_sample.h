/*
 * exb_sample.h — the sample city used by `exbus demo` and `exbus bench`:
 * the catalog of ops/examples/catalog.json (compiled in) and synthetic
 * people and companies whose identifiers carry valid check characters.
 */
#ifndef EXB_SAMPLE_H
#define EXB_SAMPLE_H

#include <stddef.h>

#include "exb_common.h"

extern const unsigned char exb_sample_catalog[];
extern const size_t exb_sample_catalog_len;

/* A synthetic person number i (unique for i < 720000). */
typedef struct exb_sample_person_s {
        char id_number[19];
        char name[32];
        const char *gender;
        char birth_date[11];
        char address[96];
        const char *region;
        char phone[16];
} exb_sample_person_t;

void exb_sample_person(int i, exb_sample_person_t *p);

/* Person i as a CREATE record of 370600-GA-0001 (its 8 items in catalog
 * order) with event id "<prefix>-<i>": r->rec, pointing into *r. */
typedef struct exb_sample_person_rec_s {
        exb_sample_person_t person;
        char event_id[48];
        exb_val_t vals[8];
        exb_record_t rec;
} exb_sample_person_rec_t;

void exb_sample_person_record(int i, const char *prefix, exb_sample_person_rec_t *r);

/* Unified social credit code of company i (valid GB 32100). */
void exb_sample_credit_code(int i, char out[19]);

#endif
