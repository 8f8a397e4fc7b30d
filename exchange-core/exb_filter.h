/*
 * exb_filter.h — subscription filter expressions (DESIGN §5).
 *
 * Grammar (parsed once into a tree, never evaluated as code):
 *
 *   expr    := or
 *   or      := and ( "or" and )*
 *   and     := unary ( "and" unary )*
 *   unary   := "not" unary | primary
 *   primary := "(" expr ")" | cmp
 *   cmp     := ITEM op literal | ITEM "in" "(" literal ( "," literal )* ")"
 *            | ITEM "starts_with" STRING
 *   op      := "==" | "!=" | "<" | "<=" | ">" | ">="
 *   literal := STRING | NUMBER | "true" | "false" | "null"
 *   STRING  := '"' ... '"' with \" and \\ escapes (single quotes too)
 *
 * Keywords are lower case. ITEM must name a field of the schema given to
 * exb_filter_parse(); a literal must fit the item's type (numbers for N/I,
 * strings for C, "YYYY-MM-DD" strings for D, ISO-8601 strings or numbers for
 * T, true/false for L). Errors name the position:
 *   filter: column 12: unknown item "regon"
 *
 * Evaluation: a comparison with a null value is false (except `== null`,
 * `!= null`); strings compare bytewise (UTF-8).
 */
#ifndef EXB_FILTER_H
#define EXB_FILTER_H

#include "exb_common.h"
#include "exb_schema.h"

typedef struct exb_filter_s exb_filter_t;

/* Parses expr against the fields of schema (the resource's ingest schema).
 * Returns a new filter, or NULL with errstr filled in. The filter keeps field
 * NAMES and is bound to a schema by exb_filter_bind() before evaluation. */
exb_filter_t *exb_filter_parse(const char *expr, const exb_schema_t *schema,
                               char *errstr, size_t errstr_size);
void exb_filter_destroy(exb_filter_t *f);

/* Resolves item names to field indexes of `schema` (a writer schema version
 * of the same resource). Items the schema lacks evaluate as null.
 * Returns 0 or -1 with errstr (type mismatch). */
int exb_filter_bind(exb_filter_t *f, const exb_schema_t *schema, char *errstr, size_t errstr_size);

/* Evaluates against rec (decoded with the schema last bound). Returns 1/0. */
int exb_filter_eval(const exb_filter_t *f, const exb_record_t *rec);

/* The expression text as given. */
const char *exb_filter_text(const exb_filter_t *f);

#endif
