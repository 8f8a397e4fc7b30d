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
 * exb_filter_parse(). A literal must fit the item's type, and is converted
 * once, at parse time:
 *   C, B  strings (compared bytewise, UTF-8; starts_with applies to these only)
 *   N     numbers
 *   I     numbers (an integral literal compares exactly; 17.5 as a double)
 *   D     "YYYY-MM-DD" strings (a real date)
 *   T     ISO-8601 strings ("2026-01-15T08:30:00Z", "2026-01-15 16:30:00+08:00")
 *         or whole epoch milliseconds
 *   L     true / false, with == and != only
 *   null  with == and != only, and in `in` lists
 * Numbers are decimal: -12, 3.5, 1e3 (no hex, inf, nan). Expressions are at
 * most 64 KiB and nested at most 64 deep (parentheses and `not`s).
 *
 * Errors name the column, counted in characters from 1:
 *   filter: column 12: unknown item "regon" (did you mean "region"?)
 *   filter: column 20: expected ')' to close the '(' at column 1, found end of expression
 *   filter: column 11: unterminated string
 *   filter: column 8: item "age" is I (integer): expected a number, found string "18"
 *   (numbers are not quoted)
 *
 * Evaluation: a comparison with a null value is false, except `== null`;
 * `!= null` is true for a non-null value; `x in (..., null)` matches a null
 * x. So `x != "a"` is false for a null x, while `not x == "a"` is true.
 * Evaluation reads only the record's values: no parsing, no allocation.
 */
#ifndef EXB_FILTER_H
#define EXB_FILTER_H

#include "exb_common.h"
#include "exb_schema.h"

typedef struct exb_filter_s exb_filter_t;

/* Parses expr against the fields of schema (the resource's ingest schema;
 * only nfields and fields are read). Returns a new filter, bound to that
 * schema, or NULL with errstr filled in. The filter keeps item NAMES, so it
 * can be bound to other writer schemas of the resource by exb_filter_bind(). */
exb_filter_t *exb_filter_parse(const char *expr, const exb_schema_t *schema, char *errstr,
                               size_t errstr_size);
void exb_filter_destroy(exb_filter_t *f); /* NULL is a no-op */

/* Resolves item names to field indexes of `schema` (a writer schema version
 * of the same resource). Items the schema lacks evaluate as null.
 * Returns 0, or -1 with errstr if an item has another type there, e.g.
 *   filter: item "age" is I (integer) in the filter but N (number) in schema R370600_GA_0001
 * in which case the previous binding stays. Binding to the schema id bound
 * last (id >= 0; ids are unique per schema) returns at once, so the router
 * may call this before every evaluation; schemas with id -1 are always
 * re-resolved. Not thread-safe against a concurrent exb_filter_eval(). */
int exb_filter_bind(exb_filter_t *f, const exb_schema_t *schema, char *errstr, size_t errstr_size);

/* Evaluates against rec (decoded with the schema last bound; a value index
 * at or beyond rec->nvals reads as null). Returns 1 (passes) or 0. */
int exb_filter_eval(const exb_filter_t *f, const exb_record_t *rec);

/* The expression text as given. */
const char *exb_filter_text(const exb_filter_t *f);

#endif
