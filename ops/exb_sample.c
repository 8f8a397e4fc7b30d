/*
 * exb_sample.c — synthetic records of the sample city (see exb_sample.h).
 */
#include "exb_sample.h"
#include "exb_check.h"

#include <stdio.h>
#include <string.h>

static const char *regions[] = {"370602", "370611", "370612"};

void exb_sample_person(int i, exb_sample_person_t *p)
{
        unsigned year = 1950 + (unsigned)i / 12000 % 60, month = 1 + (unsigned)i / 1000 % 12,
                 day = 1 + (unsigned)i % 28;
        p->region = regions[i % 3];
        snprintf(p->id_number, sizeof(p->id_number), "%s%04u%02u%02u%03u", p->region, year, month,
                 day, (unsigned)i % 1000);
        p->id_number[17] = exb_check_gb11643_digit(p->id_number);
        p->id_number[18] = '\0';
        snprintf(p->name, sizeof(p->name), "居民%d", i);
        p->gender = i % 2 ? "男" : "女";
        snprintf(p->birth_date, sizeof(p->birth_date), "%04u-%02u-%02u", year, month, day);
        snprintf(p->address, sizeof(p->address), "烟台市某区某路%d号", i);
        snprintf(p->phone, sizeof(p->phone), "1380000%04d", i % 10000);
}

void exb_sample_person_record(int i, const char *prefix, exb_sample_person_rec_t *r)
{
        exb_sample_person_t *p = &r->person;
        exb_sample_person(i, p);
        snprintf(r->event_id, sizeof(r->event_id), "%s-%d", prefix, i);
        int64_t days = 0, now = exb_now_ms();
        exb_date_parse(p->birth_date, 10, &days);
        exb_val_t *v = r->vals;
        v[0] = (exb_val_t){0, {.s = exb_str(p->id_number)}};
        v[1] = (exb_val_t){0, {.s = exb_str(p->name)}};
        v[2] = (exb_val_t){0, {.s = exb_str(p->gender)}};
        v[3] = (exb_val_t){0, {.i = days}};
        v[4] = (exb_val_t){0, {.s = exb_str(p->address)}};
        v[5] = (exb_val_t){0, {.s = exb_str(p->region)}};
        v[6] = (exb_val_t){0, {.s = exb_str(p->phone)}};
        v[7] = (exb_val_t){0, {.i = now}};
        r->rec = (exb_record_t){.op = EXB_OP_CREATE,
                                .event_id = exb_str(r->event_id),
                                .source = EXB_STR("GA"),
                                .ts_ms = now,
                                .nvals = 8,
                                .vals = v};
}

void exb_sample_credit_code(int i, char out[19])
{
        snprintf(out, 19, "91370600%09u", (unsigned)i % 1000000000u);
        out[17] = exb_check_gb32100_digit(out);
        out[18] = '\0';
}
