/*
 * exb_filter.c — subscription filter expressions (see exb_filter.h).
 *
 * Three stages, each with one job:
 *
 *  1. Tokenizer: the text becomes tokens (item names and keywords, strings,
 *     numbers, operators, parentheses, commas). Every token keeps its byte
 *     offset so an error can name the column (counted in UTF-8 characters,
 *     from 1, as an operator's editor shows it).
 *  2. Recursive-descent parser, one function per grammar rule, building a
 *     small tree in one node array (children are indexes into it). `and` and
 *     `or` nodes are n-ary, so `a or b or c ...` is one node and evaluation
 *     recurses only as deep as the parentheses/`not`s, which are limited to
 *     EXB_FILTER_MAX_DEPTH. Each literal is type-checked against its item
 *     and converted ONCE here: dates to days, timestamps to ms, numbers to
 *     int64 and/or double, strings unescaped. Each literal also records its
 *     comparison class (how the value is read and compared), so evaluation
 *     never looks at types, parses, or allocates.
 *  3. Evaluation walks the tree over an exb_record_t. Items are referred to
 *     by slot in f->items; exb_filter_bind() maps each slot to a field index
 *     of the writer schema the record was decoded with (-1: the schema lacks
 *     the item, which reads as null).
 *
 * Null rule: any comparison with a null value is false, except `== null`
 * (true) and `!= null`; `x in (..., null)` matches a null x. So `not (x ==
 * "a")` is true for a null x, while `x != "a"` is false.
 */
#include "exb_filter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXB_FILTER_MAX_DEPTH 64
#define EXB_FILTER_MAX_LEN   65536

/* ------------------------------------------------------------ the tree */

typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } cmp_op_t;
static const char *const op_names[] = {"==", "!=", "<", "<=", ">", ">="};

/* How a literal is compared with a value, fixed at parse time. */
typedef enum {
        CLS_NULL, /* `== null` / `!= null` */
        CLS_STR,  /* C, B: bytewise on u.s */
        CLS_I64,  /* I with an integral literal, D (days), T (ms), L (0/1): on u.i */
        CLS_F64,  /* N: on u.d */
        CLS_I_F64 /* I with a fractional literal: (double)u.i */
} cmp_cls_t;

typedef struct lit_s {
        cmp_cls_t cls;
        int64_t i;
        double d;
        char *s; /* CLS_STR: unescaped, owned */
        size_t len;
} lit_t;

typedef enum { N_OR, N_AND, N_NOT, N_CMP, N_IN, N_STARTS } node_kind_t;

typedef struct node_s {
        node_kind_t kind;
        cmp_op_t op; /* N_CMP */
        int item;    /* N_CMP, N_IN, N_STARTS: slot in f->items */
        lit_t lit;   /* N_CMP, N_STARTS */
        lit_t *lits; /* N_IN */
        int nlits;
        int *kids; /* N_OR, N_AND (n-ary), N_NOT (one) */
        int nkids;
} node_t;

typedef struct item_s {
        char *name;
        exb_type_t type;
        int idx; /* field index in the bound schema, -1 if absent */
} item_t;

struct exb_filter_s {
        char *text;
        node_t *nodes;
        int nnodes, cap;
        int root;
        item_t *items;
        int nitems;
        int bound_id; /* schema id last bound, -1: re-bind always */
};

/* ------------------------------------------------------------ tokenizer */

typedef enum {
        T_EOF,
        T_IDENT,
        T_STRING,
        T_NUMBER,
        T_OP,
        T_LPAREN,
        T_RPAREN,
        T_COMMA,
} tok_kind_t;

typedef struct tok_s {
        tok_kind_t kind;
        size_t pos; /* byte offset in the text */
        size_t len; /* bytes, incl. quotes for strings */
        cmp_op_t op;
} tok_t;

typedef struct parser_s {
        const char *src;
        size_t srclen;
        size_t pos; /* where the tokenizer continues */
        tok_t tok;  /* current token */
        const exb_schema_t *schema;
        exb_filter_t *f;
        int depth;
        int failed;
        char *errstr;
        size_t errstr_size;
} parser_t;

/* Column (1-based, in UTF-8 characters) of byte offset pos. */
static int column_of(const parser_t *p, size_t pos)
{
        int col = 1;
        size_t i;
        for (i = 0; i < pos && i < p->srclen; i++)
                if (((unsigned char)p->src[i] & 0xc0) != 0x80)
                        col++;
        return col;
}

/* Records the first error only: later ones are consequences. */
static void perr(parser_t *p, size_t pos, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void perr(parser_t *p, size_t pos, const char *fmt, ...)
{
        char msg[384];
        va_list ap;
        if (p->failed)
                return;
        p->failed = 1;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        exb_errf(p->errstr, p->errstr_size, "filter: column %d: %s", column_of(p, pos), msg);
}

static int is_ident_start(int c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident_char(int c)
{
        return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Reads the next token into p->tok. On a lexical error, fails and returns
 * T_EOF so the parser unwinds. */
static void next(parser_t *p)
{
        const char *s = p->src;
        size_t i = p->pos, n = p->srclen;
        tok_t *t = &p->tok;

        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
                i++;
        memset(t, 0, sizeof(*t));
        t->pos = i;
        if (p->failed || i >= n) {
                t->kind = T_EOF;
                p->pos = n;
                return;
        }
        switch (s[i]) {
        case '(':
                t->kind = T_LPAREN;
                t->len = 1;
                break;
        case ')':
                t->kind = T_RPAREN;
                t->len = 1;
                break;
        case ',':
                t->kind = T_COMMA;
                t->len = 1;
                break;
        case '=':
        case '!':
                if (i + 1 < n && s[i + 1] == '=') {
                        t->kind = T_OP;
                        t->op = s[i] == '=' ? OP_EQ : OP_NE;
                        t->len = 2;
                } else {
                        perr(p, i, "unknown operator '%c' (did you mean '%c=')", s[i], s[i]);
                }
                break;
        case '<':
        case '>':
                t->kind = T_OP;
                t->len = (i + 1 < n && s[i + 1] == '=') ? 2 : 1;
                t->op = s[i] == '<' ? (t->len == 2 ? OP_LE : OP_LT) : (t->len == 2 ? OP_GE : OP_GT);
                break;
        case '"':
        case '\'': {
                char q = s[i];
                size_t j = i + 1;
                while (j < n && s[j] != q) {
                        if (s[j] == '\\') {
                                if (j + 1 < n &&
                                    (s[j + 1] == '"' || s[j + 1] == '\'' || s[j + 1] == '\\')) {
                                        j += 2;
                                        continue;
                                }
                                if (j + 1 < n) {
                                        perr(p, j,
                                             "unknown escape '\\%c' in string (only \\\", \\' "
                                             "and \\\\)",
                                             s[j + 1]);
                                        break;
                                }
                        }
                        j++;
                }
                if (!p->failed && j >= n)
                        perr(p, i, "unterminated string");
                t->kind = T_STRING;
                t->len = j + 1 - i;
                break;
        }
        default:
                if (is_ident_start((unsigned char)s[i])) {
                        size_t j = i;
                        while (j < n && is_ident_char((unsigned char)s[j]))
                                j++;
                        t->kind = T_IDENT;
                        t->len = j - i;
                } else if ((s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.') {
                        size_t j = i;
                        while (j < n && (is_ident_char((unsigned char)s[j]) || s[j] == '.' ||
                                         ((s[j] == '-' || s[j] == '+') && j > i &&
                                          (s[j - 1] == 'e' || s[j - 1] == 'E')) ||
                                         (s[j] == '-' && j == i)))
                                j++;
                        t->kind = T_NUMBER;
                        t->len = j - i;
                } else {
                        unsigned char c = (unsigned char)s[i];
                        if (c >= 0x20 && c < 0x7f)
                                perr(p, i, "unexpected character '%c'", c);
                        else
                                perr(p, i, "unexpected character (byte 0x%02x)", c);
                }
                break;
        }
        if (p->failed) {
                t->kind = T_EOF;
                p->pos = n;
                return;
        }
        p->pos = i + t->len;
}

static int tok_is(const parser_t *p, const char *kw)
{
        size_t l = strlen(kw);
        return p->tok.kind == T_IDENT && p->tok.len == l && !memcmp(p->src + p->tok.pos, kw, l);
}

static int tok_is_keyword(const parser_t *p)
{
        static const char *const kws[] = {"and",  "or",    "not",  "in",
                                          "true", "false", "null", "starts_with"};
        size_t i;
        for (i = 0; i < EXB_ARRAY_CNT(kws); i++)
                if (tok_is(p, kws[i]))
                        return 1;
        return 0;
}

/* Describes the current token for "expected X, found Y" messages. */
static const char *tok_desc(const parser_t *p, char *buf, size_t size)
{
        const tok_t *t = &p->tok;
        int l = t->len > 40 ? 40 : (int)t->len;
        const char *dots = t->len > 40 ? "..." : "";
        switch (t->kind) {
        case T_EOF:
                return "end of expression";
        case T_IDENT:
                snprintf(buf, size, "\"%.*s%s\"", l, p->src + t->pos, dots);
                return buf;
        case T_STRING:
                snprintf(buf, size, "string %.*s%s", l, p->src + t->pos, dots);
                return buf;
        case T_NUMBER:
                snprintf(buf, size, "number %.*s%s", l, p->src + t->pos, dots);
                return buf;
        case T_OP:
                snprintf(buf, size, "'%s'", op_names[t->op]);
                return buf;
        case T_LPAREN:
                return "'('";
        case T_RPAREN:
                return "')'";
        case T_COMMA:
                return "','";
        }
        return "?";
}

/* ------------------------------------------------------------ literals */

static const char *type_desc(exb_type_t t)
{
        switch (t) {
        case EXB_T_STRING:
                return "C (string)";
        case EXB_T_NUMBER:
                return "N (number)";
        case EXB_T_INT:
                return "I (integer)";
        case EXB_T_DATE:
                return "D (date)";
        case EXB_T_TIMESTAMP:
                return "T (timestamp)";
        case EXB_T_BOOL:
                return "L (boolean)";
        case EXB_T_BYTES:
                return "B (bytes)";
        }
        return "?";
}

/* Unescapes the current string token into a new NUL-terminated buffer. */
static char *tok_string(const parser_t *p, size_t *lenp)
{
        const char *s = p->src + p->tok.pos + 1;
        size_t n = p->tok.len - 2, i, o = 0;
        char *out = exb_calloc(1, n + 1);
        for (i = 0; i < n; i++) {
                if (s[i] == '\\' && i + 1 < n)
                        i++;
                out[o++] = s[i];
        }
        out[o] = '\0';
        *lenp = o;
        return out;
}

/* Parses the current number token. Returns 0, or -1 (error reported). Sets
 * *is_int when the value is integral and fits int64. */
static int tok_number(parser_t *p, double *d, int64_t *i, int *is_int)
{
        char buf[64], *end;
        size_t n = p->tok.len;
        const char *s = p->src + p->tok.pos;
        int plain = 1;
        size_t k;

        if (n >= sizeof(buf)) {
                perr(p, p->tok.pos, "number too long");
                return -1;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        for (k = 0; k < n; k++) {
                if (!((buf[k] >= '0' && buf[k] <= '9') || (k == 0 && buf[k] == '-')))
                        plain = 0;
        }
        /* Only decimal forms: strtod would also take hex, "inf" and "nan". */
        for (k = 0; k < n; k++) {
                char c = buf[k];
                if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' ||
                      c == 'E'))
                        goto bad;
        }
        errno = 0;
        *d = strtod(buf, &end);
        if (end == buf || *end != '\0' || errno == ERANGE ||
            !(buf[n - 1] >= '0' && buf[n - 1] <= '9'))
                goto bad;
        *is_int = 0;
        if (plain) {
                errno = 0;
                long long ll = strtoll(buf, &end, 10);
                if (errno == 0 && *end == '\0') {
                        *i = ll;
                        *is_int = 1;
                }
        } else if (*d >= -9223372036854775808.0 && *d < 9223372036854775808.0 &&
                   *d == (double)(int64_t)*d) {
                *i = (int64_t)*d;
                *is_int = 1;
        }
        return 0;
bad:
        perr(p, p->tok.pos, "invalid number \"%s\"", buf);
        return -1;
}

/* Reads the current token as a literal for `item` used with `op` (OP_EQ and
 * in_list set for `in` lists), checks it fits the item's type, converts it,
 * advances. Returns 0 or -1 (error reported). */
static int parse_literal(parser_t *p, const item_t *item, cmp_op_t op, int in_list, lit_t *lit)
{
        char desc[64];
        size_t pos = p->tok.pos;
        exb_type_t ty = item->type;
        int ordering = op != OP_EQ && op != OP_NE;

        memset(lit, 0, sizeof(*lit));
        if (tok_is(p, "null")) {
                if (ordering) {
                        perr(p, pos, "null can only be compared with == or !=");
                        return -1;
                }
                lit->cls = CLS_NULL;
                next(p);
                return 0;
        }
        if (p->tok.kind != T_STRING && p->tok.kind != T_NUMBER && !tok_is(p, "true") &&
            !tok_is(p, "false")) {
                if (in_list)
                        perr(p, pos, "expected a value in the \"in\" list of \"%s\", found %s",
                             item->name, tok_desc(p, desc, sizeof(desc)));
                else
                        perr(p, pos, "expected a value after \"%s\" %s, found %s", item->name,
                             op_names[op], tok_desc(p, desc, sizeof(desc)));
                return -1;
        }

        switch (ty) {
        case EXB_T_STRING:
        case EXB_T_BYTES:
                if (p->tok.kind != T_STRING) {
                        perr(p, pos, "item \"%s\" is %s: expected a string literal, found %s%s",
                             item->name, type_desc(ty), tok_desc(p, desc, sizeof(desc)),
                             p->tok.kind == T_NUMBER ? " (quote it)" : "");
                        return -1;
                }
                lit->cls = CLS_STR;
                lit->s = tok_string(p, &lit->len);
                break;

        case EXB_T_NUMBER:
        case EXB_T_INT: {
                int is_int;
                if (p->tok.kind != T_NUMBER) {
                        perr(p, pos, "item \"%s\" is %s: expected a number, found %s%s", item->name,
                             type_desc(ty), tok_desc(p, desc, sizeof(desc)),
                             p->tok.kind == T_STRING ? " (numbers are not quoted)" : "");
                        return -1;
                }
                if (tok_number(p, &lit->d, &lit->i, &is_int))
                        return -1;
                lit->cls = ty == EXB_T_NUMBER ? CLS_F64 : is_int ? CLS_I64 : CLS_I_F64;
                break;
        }

        case EXB_T_DATE:
                if (p->tok.kind != T_STRING ||
                    exb_date_parse(p->src + pos + 1, p->tok.len - 2, &lit->i)) {
                        perr(p, pos, "item \"%s\" is %s: expected a date \"YYYY-MM-DD\", found %s",
                             item->name, type_desc(ty), tok_desc(p, desc, sizeof(desc)));
                        return -1;
                }
                lit->cls = CLS_I64;
                break;

        case EXB_T_TIMESTAMP:
                if (p->tok.kind == T_NUMBER) {
                        int is_int;
                        if (tok_number(p, &lit->d, &lit->i, &is_int))
                                return -1;
                        if (!is_int) {
                                perr(p, pos,
                                     "item \"%s\" is %s: a number must be whole "
                                     "milliseconds since 1970-01-01T00:00:00Z",
                                     item->name, type_desc(ty));
                                return -1;
                        }
                } else if (p->tok.kind != T_STRING ||
                           exb_ts_parse(p->src + pos + 1, p->tok.len - 2, &lit->i)) {
                        perr(p, pos,
                             "item \"%s\" is %s: expected an ISO-8601 time "
                             "(\"2026-01-15T08:30:00Z\") or epoch milliseconds, found %s",
                             item->name, type_desc(ty), tok_desc(p, desc, sizeof(desc)));
                        return -1;
                }
                lit->cls = CLS_I64;
                break;

        case EXB_T_BOOL:
                if (!tok_is(p, "true") && !tok_is(p, "false")) {
                        perr(p, pos, "item \"%s\" is %s: expected true or false, found %s",
                             item->name, type_desc(ty), tok_desc(p, desc, sizeof(desc)));
                        return -1;
                }
                if (ordering) {
                        perr(p, pos, "item \"%s\" is %s: only == and != apply", item->name,
                             type_desc(ty));
                        return -1;
                }
                lit->cls = CLS_I64;
                lit->i = tok_is(p, "true");
                break;
        }
        next(p);
        return 0;
}

static void lit_free(lit_t *lit)
{
        free(lit->s);
        lit->s = NULL;
}

/* ------------------------------------------------------------ parser */

static int new_node(parser_t *p, node_kind_t kind)
{
        exb_filter_t *f = p->f;
        if (f->nnodes == f->cap) {
                f->cap = f->cap ? f->cap * 2 : 16;
                f->nodes = exb_realloc(f->nodes, (size_t)f->cap * sizeof(*f->nodes));
        }
        memset(&f->nodes[f->nnodes], 0, sizeof(*f->nodes));
        f->nodes[f->nnodes].kind = kind;
        return f->nnodes++;
}

static void add_kid(parser_t *p, int n, int kid)
{
        node_t *nd = &p->f->nodes[n];
        nd->kids = exb_realloc(nd->kids, (size_t)(nd->nkids + 1) * sizeof(*nd->kids));
        nd->kids[nd->nkids++] = kid;
}

/* Reads the current IDENT as an item of the schema; returns its slot in
 * f->items (adding it on first use) or -1 (error reported). */
static int parse_item(parser_t *p)
{
        const exb_schema_t *sc = p->schema;
        const char *name = p->src + p->tok.pos;
        size_t len = p->tok.len;
        char desc[64];
        int i, best = -1, best_d = 3;

        if (p->tok.kind != T_IDENT || tok_is_keyword(p)) {
                perr(p, p->tok.pos, "expected an item name, found %s",
                     tok_desc(p, desc, sizeof(desc)));
                return -1;
        }
        for (i = 0; i < sc->nfields; i++) {
                const char *fn = sc->fields[i].name;
                if (strlen(fn) == len && !memcmp(fn, name, len))
                        break;
        }
        if (i == sc->nfields) {
                int k;
                for (k = 0; k < sc->nfields; k++) {
                        int d = exb_edit_distance(name, len, sc->fields[k].name);
                        if (d < best_d) {
                                best_d = d;
                                best = k;
                        }
                }
                if (best >= 0)
                        perr(p, p->tok.pos, "unknown item \"%.*s\" (did you mean \"%s\"?)",
                             (int)len, name, sc->fields[best].name);
                else
                        perr(p, p->tok.pos, "unknown item \"%.*s\"", (int)len, name);
                return -1;
        }
        {
                exb_filter_t *f = p->f;
                int slot;
                for (slot = 0; slot < f->nitems; slot++)
                        if (!strcmp(f->items[slot].name, sc->fields[i].name))
                                break;
                if (slot == f->nitems) {
                        f->items =
                                exb_realloc(f->items, (size_t)(f->nitems + 1) * sizeof(*f->items));
                        f->items[slot].name = exb_strdup(sc->fields[i].name);
                        f->items[slot].type = sc->fields[i].type;
                        f->items[slot].idx = i;
                        f->nitems++;
                }
                next(p);
                return slot;
        }
}

static int parse_or(parser_t *p);

/* cmp := ITEM op literal | ITEM "in" "(" literal ("," literal)* ")"
 *      | ITEM "starts_with" STRING */
static int parse_cmp(parser_t *p)
{
        char desc[64];
        int slot, n;
        const item_t *item;

        if ((slot = parse_item(p)) < 0)
                return -1;
        item = &p->f->items[slot];

        if (p->tok.kind == T_OP) {
                cmp_op_t op = p->tok.op;
                lit_t lit;
                next(p);
                if (parse_literal(p, item, op, 0, &lit))
                        return -1;
                n = new_node(p, N_CMP);
                p->f->nodes[n].op = op;
                p->f->nodes[n].item = slot;
                p->f->nodes[n].lit = lit;
                return n;
        }
        if (tok_is(p, "in")) {
                n = new_node(p, N_IN);
                p->f->nodes[n].item = slot;
                next(p);
                if (p->tok.kind != T_LPAREN) {
                        perr(p, p->tok.pos, "expected '(' after \"in\", found %s",
                             tok_desc(p, desc, sizeof(desc)));
                        return -1;
                }
                next(p);
                for (;;) {
                        lit_t lit;
                        node_t *nd;
                        if (parse_literal(p, item, OP_EQ, 1, &lit))
                                return -1;
                        nd = &p->f->nodes[n];
                        nd->lits = exb_realloc(nd->lits, (size_t)(nd->nlits + 1) * sizeof(lit));
                        nd->lits[nd->nlits++] = lit;
                        if (p->tok.kind == T_COMMA) {
                                next(p);
                                continue;
                        }
                        if (p->tok.kind == T_RPAREN)
                                break;
                        perr(p, p->tok.pos, "expected ',' or ')' in the \"in\" list, found %s",
                             tok_desc(p, desc, sizeof(desc)));
                        return -1;
                }
                next(p);
                return n;
        }
        if (tok_is(p, "starts_with")) {
                lit_t lit;
                size_t pos;
                next(p);
                pos = p->tok.pos;
                if (item->type != EXB_T_STRING && item->type != EXB_T_BYTES) {
                        perr(p, pos, "item \"%s\" is %s: starts_with applies to strings only",
                             item->name, type_desc(item->type));
                        return -1;
                }
                if (p->tok.kind != T_STRING) {
                        perr(p, pos, "expected a string after starts_with, found %s",
                             tok_desc(p, desc, sizeof(desc)));
                        return -1;
                }
                if (parse_literal(p, item, OP_EQ, 0, &lit))
                        return -1;
                n = new_node(p, N_STARTS);
                p->f->nodes[n].item = slot;
                p->f->nodes[n].lit = lit;
                return n;
        }
        perr(p, p->tok.pos,
             "expected an operator (== != < <= > >= in starts_with) after \"%s\", found %s",
             item->name, tok_desc(p, desc, sizeof(desc)));
        return -1;
}

/* unary := "not" unary | "(" expr ")" | cmp */
static int parse_unary(parser_t *p)
{
        char desc[64];
        int n, kid;
        size_t open;

        if (tok_is(p, "not") || p->tok.kind == T_LPAREN) {
                if (++p->depth > EXB_FILTER_MAX_DEPTH) {
                        perr(p, p->tok.pos, "expression nested deeper than %d",
                             EXB_FILTER_MAX_DEPTH);
                        return -1;
                }
                if (tok_is(p, "not")) {
                        next(p);
                        if ((kid = parse_unary(p)) < 0)
                                return -1;
                        n = new_node(p, N_NOT);
                        add_kid(p, n, kid);
                } else {
                        open = p->tok.pos;
                        next(p);
                        if ((n = parse_or(p)) < 0)
                                return -1;
                        if (p->tok.kind != T_RPAREN) {
                                perr(p, p->tok.pos,
                                     "expected ')' to close the '(' at column %d, found %s",
                                     column_of(p, open), tok_desc(p, desc, sizeof(desc)));
                                return -1;
                        }
                        next(p);
                }
                p->depth--;
                return n;
        }
        return parse_cmp(p);
}

/* and := unary ("and" unary)*     or := and ("or" and)*
 * A chain becomes one n-ary node. */
static int parse_chain(parser_t *p, const char *kw, node_kind_t kind, int (*sub)(parser_t *))
{
        int first, n, kid;
        if ((first = sub(p)) < 0)
                return -1;
        if (!tok_is(p, kw))
                return first;
        n = new_node(p, kind);
        add_kid(p, n, first);
        while (tok_is(p, kw)) {
                next(p);
                if ((kid = sub(p)) < 0)
                        return -1;
                add_kid(p, n, kid);
        }
        return n;
}

static int parse_and(parser_t *p)
{
        return parse_chain(p, "and", N_AND, parse_unary);
}

static int parse_or(parser_t *p)
{
        return parse_chain(p, "or", N_OR, parse_and);
}

/* ------------------------------------------------------------ public */

void exb_filter_destroy(exb_filter_t *f)
{
        int i, j;
        if (!f)
                return;
        for (i = 0; i < f->nnodes; i++) {
                node_t *nd = &f->nodes[i];
                lit_free(&nd->lit);
                for (j = 0; j < nd->nlits; j++)
                        lit_free(&nd->lits[j]);
                free(nd->lits);
                free(nd->kids);
        }
        free(f->nodes);
        for (i = 0; i < f->nitems; i++)
                free(f->items[i].name);
        free(f->items);
        free(f->text);
        free(f);
}

exb_filter_t *exb_filter_parse(const char *expr, const exb_schema_t *schema, char *errstr,
                               size_t errstr_size)
{
        parser_t p;
        char desc[64];

        if (!expr || !schema) {
                exb_errf(errstr, errstr_size, "filter: %s", !expr ? "no expression" : "no schema");
                return NULL;
        }
        memset(&p, 0, sizeof(p));
        p.src = expr;
        p.srclen = strlen(expr);
        p.schema = schema;
        p.errstr = errstr;
        p.errstr_size = errstr_size;
        if (p.srclen > EXB_FILTER_MAX_LEN) {
                exb_errf(errstr, errstr_size, "filter: expression longer than %d bytes",
                         EXB_FILTER_MAX_LEN);
                return NULL;
        }
        p.f = exb_calloc(1, sizeof(*p.f));
        p.f->text = exb_strdup(expr);
        p.f->bound_id = schema->id >= 0 ? schema->id : -1;

        next(&p);
        if (p.tok.kind == T_EOF && !p.failed)
                perr(&p, p.tok.pos, "empty expression");
        if (!p.failed)
                p.f->root = parse_or(&p);
        if (!p.failed && p.tok.kind != T_EOF)
                perr(&p, p.tok.pos, "expected \"and\", \"or\" or the end, found %s",
                     tok_desc(&p, desc, sizeof(desc)));
        if (p.failed) {
                exb_filter_destroy(p.f);
                return NULL;
        }
        return p.f;
}

int exb_filter_bind(exb_filter_t *f, const exb_schema_t *schema, char *errstr, size_t errstr_size)
{
        int i, k;

        if (schema->id >= 0 && schema->id == f->bound_id)
                return 0;
        /* Check everything first, so a failed bind keeps the old binding. */
        for (i = 0; i < f->nitems; i++) {
                for (k = 0; k < schema->nfields; k++)
                        if (!strcmp(schema->fields[k].name, f->items[i].name))
                                break;
                if (k < schema->nfields && schema->fields[k].type != f->items[i].type) {
                        exb_errf(errstr, errstr_size,
                                 "filter: item \"%s\" is %s in the filter but %s in schema %s",
                                 f->items[i].name, type_desc(f->items[i].type),
                                 type_desc(schema->fields[k].type),
                                 schema->name ? schema->name : "(unnamed)");
                        return -1;
                }
        }
        for (i = 0; i < f->nitems; i++) {
                f->items[i].idx = -1;
                for (k = 0; k < schema->nfields; k++)
                        if (!strcmp(schema->fields[k].name, f->items[i].name)) {
                                f->items[i].idx = k;
                                break;
                        }
        }
        f->bound_id = schema->id >= 0 ? schema->id : -1;
        return 0;
}

const char *exb_filter_text(const exb_filter_t *f)
{
        return f->text;
}

/* ------------------------------------------------------------ evaluation */

/* The value of item slot in rec, or NULL if it is null or absent. */
static inline const exb_val_t *value_of(const exb_filter_t *f, int slot, const exb_record_t *rec)
{
        int idx = f->items[slot].idx;
        if (idx < 0 || idx >= rec->nvals || rec->vals[idx].is_null)
                return NULL;
        return &rec->vals[idx];
}

static inline int order(int c, cmp_op_t op)
{
        switch (op) {
        case OP_EQ:
                return c == 0;
        case OP_NE:
                return c != 0;
        case OP_LT:
                return c < 0;
        case OP_LE:
                return c <= 0;
        case OP_GT:
                return c > 0;
        case OP_GE:
                return c >= 0;
        }
        return 0;
}

static inline int order_f64(double a, double b, cmp_op_t op)
{
        switch (op) { /* direct comparisons, so NaN compares as IEEE says */
        case OP_EQ:
                return a == b;
        case OP_NE:
                return a != b;
        case OP_LT:
                return a < b;
        case OP_LE:
                return a <= b;
        case OP_GT:
                return a > b;
        case OP_GE:
                return a >= b;
        }
        return 0;
}

static int match(const exb_val_t *v, const lit_t *lit, cmp_op_t op)
{
        if (lit->cls == CLS_NULL)
                return op == OP_EQ ? v == NULL : v != NULL;
        if (!v)
                return 0;
        switch (lit->cls) {
        case CLS_STR: {
                size_t n = v->u.s.len < lit->len ? v->u.s.len : lit->len;
                int c = n ? memcmp(v->u.s.p, lit->s, n) : 0;
                if (c == 0)
                        c = (v->u.s.len > lit->len) - (v->u.s.len < lit->len);
                return order(c, op);
        }
        case CLS_I64:
                return order((v->u.i > lit->i) - (v->u.i < lit->i), op);
        case CLS_F64:
                return order_f64(v->u.d, lit->d, op);
        case CLS_I_F64:
                return order_f64((double)v->u.i, lit->d, op);
        case CLS_NULL:
                break;
        }
        return 0;
}

static int eval_node(const exb_filter_t *f, int n, const exb_record_t *rec)
{
        const node_t *nd = &f->nodes[n];
        const exb_val_t *v;
        int i;

        switch (nd->kind) {
        case N_OR:
                for (i = 0; i < nd->nkids; i++)
                        if (eval_node(f, nd->kids[i], rec))
                                return 1;
                return 0;
        case N_AND:
                for (i = 0; i < nd->nkids; i++)
                        if (!eval_node(f, nd->kids[i], rec))
                                return 0;
                return 1;
        case N_NOT:
                return !eval_node(f, nd->kids[0], rec);
        case N_CMP:
                return match(value_of(f, nd->item, rec), &nd->lit, nd->op);
        case N_IN:
                v = value_of(f, nd->item, rec);
                for (i = 0; i < nd->nlits; i++)
                        if (match(v, &nd->lits[i], OP_EQ))
                                return 1;
                return 0;
        case N_STARTS:
                v = value_of(f, nd->item, rec);
                return v && v->u.s.len >= nd->lit.len &&
                       (nd->lit.len == 0 || !memcmp(v->u.s.p, nd->lit.s, nd->lit.len));
        }
        return 0;
}

int exb_filter_eval(const exb_filter_t *f, const exb_record_t *rec)
{
        return eval_node(f, f->root, rec);
}
