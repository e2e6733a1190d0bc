/*
 * expr.c - the expression language of processes (see expr.h).
 *
 * Compilation is a recursive-descent parser over a one-token lexer; it builds
 * a tree in the configuration's arena. Left-associative chains (a + b - c,
 * a && b && c, a.b[c].d) become one n-ary node each, so the depth of the tree
 * is bounded by the nesting limit (parentheses, calls, literals, prefix
 * operators, indexes), and so is the recursion of the evaluator.
 *
 * A node whose operands are all constants is evaluated once, at compile time
 * (constant folding), with the same limits as an evaluation (counted over the
 * whole compilation). The error of a constant subexpression ("1 + 'a'",
 * date('2024-13-01')) is therefore a compile error.
 *
 * Evaluation walks the tree and allocates only in the evaluation arena. Its
 * results may share memory with the context and with the compiled expression
 * (constants), so they are read-only. The tree is never written after
 * compilation: one compiled expression serves every thread.
 *
 * Conventions beyond expr.h:
 *  - functions given a value of a type they do not take fail (null too,
 *    except where expr.h says otherwise: concat skips it, join and templates
 *    insert "", string(null) is "null", coalesce/default test for it);
 *  - lower/upper/trim work on ASCII letters and ASCII white space;
 *  - substring(s, start[, length]): a negative start counts from the end,
 *    a negative length is an error; join inserts null items as "";
 *  - min/max take numbers or strings (not mixed), or one array of them;
 *  - round(x, digits) rounds half away from zero, digits 0..15; round, floor
 *    and ceil are exact on decimal text without exponent;
 *  - numbers compare exactly (by their decimal text, like pt_json_equal);
 *  - + and - of two int64 integers are exact even when the result does not
 *    fit int64 (computed in 128 bits); other numbers go through double;
 *  - date() shows milliseconds only when they are not zero (now() always);
 *    a leap second (:60) rolls into the next minute.
 */
#include "process/expr.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EXPR_MAX_SOURCE      65536
#define EXPR_MAX_NESTING     64
#define EXPR_MAX_OPS         100000
#define EXPR_MAX_STRINGS     (1024 * 1024)
#define EXPR_MAX_VALUE_DEPTH 1000
#define VARIADIC             1000000u

/* ------------------------------------------------------------------------
 * The tree
 */

typedef enum node_kind_e {
    N_CONST,
    N_ROOT,
    N_PATH,
    N_NOT,
    N_NEG,
    N_AND,
    N_OR,
    N_CMP,
    N_ARITH,
    N_ARRAY,
    N_OBJECT,
    N_CALL,
    N_TEMPLATE
} node_kind_t;

typedef enum cmp_op_e { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE } cmp_op_t;

typedef struct node_s node_t;

/* One step of a path: ".name" (name set) or "[index]" (index set). */
typedef struct step_s {
    const char *name;
    size_t name_len;
    node_t *index;
    size_t pos;
} step_t;

#define TEMPLATE_URL 1 /* node_s.op of an N_TEMPLATE */
#define LITERAL_PART 1 /* node_s.op of an N_CONST: a template's literal text */

struct node_s {
    node_kind_t kind;
    int op;     /* N_CMP: cmp_op_t; N_CALL: fn_id_t; N_TEMPLATE: TEMPLATE_URL to percent-encode
                   the interpolated parts; N_CONST: LITERAL_PART for a template's literal text */
    size_t pos; /* byte offset in the source, for messages */
    const pt_json_t *value; /* N_CONST */
    const char *name;       /* N_ROOT (not NUL-terminated) */
    size_t name_len;
    node_t **kids; /* operands, arguments, items, member values, template parts;
                      N_PATH: kids[0] is the base */
    size_t nkids;
    step_t *steps; /* N_PATH */
    size_t nsteps;
    const char **keys; /* N_OBJECT: NUL-terminated, unique */
    size_t *key_lens;
    char *ops; /* N_ARITH: '+' or '-' before kids[i], i >= 1 */
};

struct pt_expr_s {
    const node_t *root;
    const char *src;
    size_t len;
};

typedef enum fn_id_e {
    F_LOWER,
    F_UPPER,
    F_TRIM,
    F_CONCAT,
    F_LENGTH,
    F_NUMBER,
    F_STRING,
    F_BOOLEAN,
    F_COALESCE,
    F_DEFAULT,
    F_DATE,
    F_NOW,
    F_SUBSTRING,
    F_REPLACE,
    F_SPLIT,
    F_JOIN,
    F_CONTAINS,
    F_STARTS_WITH,
    F_ENDS_WITH,
    F_ROUND,
    F_FLOOR,
    F_CEIL,
    F_ABS,
    F_MIN,
    F_MAX,
    F_HAS,
    F_KEYS,
    F_URL_ENCODE
} fn_id_t;

/* Indexed by fn_id_t. */
static const struct fn_def_s {
    const char *name;
    unsigned min, max;
} fns[] = {
    {"lower", 1, 1},           {"upper", 1, 1},       {"trim", 1, 1},      {"concat", 1, VARIADIC},
    {"length", 1, 1},          {"number", 1, 1},      {"string", 1, 1},    {"boolean", 1, 1},
    {"coalesce", 1, VARIADIC}, {"default", 2, 2},     {"date", 1, 1},      {"now", 0, 0},
    {"substring", 2, 3},       {"replace", 3, 3},     {"split", 2, 2},     {"join", 2, 2},
    {"contains", 2, 2},        {"starts_with", 2, 2}, {"ends_with", 2, 2}, {"round", 1, 2},
    {"floor", 1, 1},           {"ceil", 1, 1},        {"abs", 1, 1},       {"min", 1, VARIADIC},
    {"max", 1, VARIADIC},      {"has", 2, 2},         {"keys", 1, 1},      {"url_encode", 1, 1},
};

/* Shared read-only values. */
static const pt_json_t v_null = {.type = PT_JSON_NULL};
static const pt_json_t v_true = {.type = PT_JSON_TRUE};
static const pt_json_t v_false = {.type = PT_JSON_FALSE};
static const pt_json_t s_empty = {.type = PT_JSON_STRING, .u = {.str = {"", 0}}};
static const pt_json_t s_null = {.type = PT_JSON_STRING, .u = {.str = {"null", 4}}};
static const pt_json_t s_true = {.type = PT_JSON_STRING, .u = {.str = {"true", 4}}};
static const pt_json_t s_false = {.type = PT_JSON_STRING, .u = {.str = {"false", 5}}};

/* ------------------------------------------------------------------------
 * Evaluation state, errors and budgets
 */

typedef struct ev_s {
    const pt_json_t *ctx;
    pt_arena_t *a;
    char *err;
    size_t errlen;
    size_t ops;   /* operations done, <= EXPR_MAX_OPS */
    size_t bytes; /* string bytes built, <= EXPR_MAX_STRINGS */
    int failed;
} ev_t;

static void ev_vfail(ev_t *ev, size_t pos, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Records the first error as "at <pos>: <message>". */
static void ev_vfail(ev_t *ev, size_t pos, const char *fmt, va_list ap)
{
    int n;

    if (ev->failed)
        return;
    ev->failed = 1;
    if (ev->err == NULL || ev->errlen == 0)
        return;
    n = snprintf(ev->err, ev->errlen, "at %zu: ", pos);
    if (n < 0 || (size_t)n >= ev->errlen)
        return;
    vsnprintf(ev->err + n, ev->errlen - (size_t)n, fmt, ap);
}

static void ev_fail(ev_t *ev, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ev_fail(ev_t *ev, size_t pos, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ev_vfail(ev, pos, fmt, ap);
    va_end(ap);
}

static void ev_oom(ev_t *ev)
{
    if (ev->failed)
        return;
    ev->failed = 1;
    if (ev->err != NULL && ev->errlen > 0)
        snprintf(ev->err, ev->errlen, "out of memory");
}

/* Counts units of work; fails past EXPR_MAX_OPS. */
static int ev_work(ev_t *ev, size_t pos, size_t units)
{
    if (units > EXPR_MAX_OPS - ev->ops) {
        ev->ops = EXPR_MAX_OPS;
        ev_fail(ev, pos, "the evaluation takes more than %d operations", EXPR_MAX_OPS);
        return -1;
    }
    ev->ops += units;
    return 0;
}

/* Counts n bytes of string built; fails past EXPR_MAX_STRINGS. */
static int ev_charge(ev_t *ev, size_t pos, size_t n)
{
    if (n > EXPR_MAX_STRINGS - ev->bytes) {
        ev->bytes = EXPR_MAX_STRINGS;
        ev_fail(ev, pos, "the strings built exceed 1 MiB");
        return -1;
    }
    ev->bytes += n;
    return 0;
}

/* n + 1 bytes (NUL-terminated at n) in the evaluation arena, charged. */
static char *ev_strbuf(ev_t *ev, size_t pos, size_t n)
{
    char *p;

    if (ev_charge(ev, pos, n) != 0)
        return NULL;
    p = pt_arena_alloc(ev->a, n + 1);
    if (p == NULL) {
        ev_oom(ev);
        return NULL;
    }
    p[n] = '\0';
    return p;
}

/* A string value over p[0..n), which must be NUL-terminated and live as long
 * as the arena (it is not copied). */
static const pt_json_t *mkstr(ev_t *ev, const char *p, size_t n)
{
    pt_json_t *v = pt_arena_calloc(ev->a, sizeof(*v));

    if (v == NULL) {
        ev_oom(ev);
        return NULL;
    }
    v->type = PT_JSON_STRING;
    v->u.str.p = p;
    v->u.str.len = n;
    return v;
}

static const pt_json_t *new_str(ev_t *ev, size_t pos, const char *s, size_t n)
{
    char *p = ev_strbuf(ev, pos, n);

    if (p == NULL)
        return NULL;
    if (n)
        memcpy(p, s, n);
    return mkstr(ev, p, n);
}

/* A number from valid JSON number text (charged like a string). */
static const pt_json_t *new_num(ev_t *ev, size_t pos, const char *s, size_t n)
{
    pt_json_t *v;

    if (ev_charge(ev, pos, n) != 0)
        return NULL;
    v = pt_json_number_text(ev->a, s, n);
    if (v == NULL)
        ev_oom(ev);
    return v;
}

static const pt_json_t *new_int(ev_t *ev, int64_t i)
{
    pt_json_t *v = pt_json_int(ev->a, i);

    if (v == NULL)
        ev_oom(ev);
    return v;
}

static const pt_json_t *new_double(ev_t *ev, size_t pos, double d)
{
    pt_json_t *v;

    if (!isfinite(d)) {
        ev_fail(ev, pos, "the result is not a finite number");
        return NULL;
    }
    v = pt_json_double(ev->a, d);
    if (v == NULL)
        ev_oom(ev);
    return v;
}

static const pt_json_t *new_bool(int b)
{
    return b ? &v_true : &v_false;
}

/* A string being built in the evaluation arena, charged as it grows. */
typedef struct sb_s {
    char *p;
    size_t len, cap;
} sb_t;

static int sb_add(ev_t *ev, size_t pos, sb_t *b, const char *s, size_t n)
{
    if (ev_charge(ev, pos, n) != 0)
        return -1;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 32;
        char *p;
        while (cap - b->len < n + 1)
            cap *= 2;
        p = pt_arena_realloc(ev->a, b->p, b->cap, cap);
        if (p == NULL) {
            ev_oom(ev);
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static const pt_json_t *sb_finish(ev_t *ev, sb_t *b)
{
    if (b->p == NULL)
        return &s_empty;
    return mkstr(ev, b->p, b->len);
}

/* Appends s as a JSON string literal, escaped in chunks cut between code
 * points (a cut inside a sequence would turn it into U+FFFD). */
static int sb_json_str(ev_t *ev, size_t pos, sb_t *b, const char *s, size_t n)
{
    char tmp[6 * 256];
    size_t off = 0, end, k;

    if (sb_add(ev, pos, b, "\"", 1) != 0)
        return -1;
    while (off < n) {
        end = n - off > 256 ? off + 256 : n;
        for (k = 0; end < n && k < 3 && ((unsigned char)s[end] & 0xC0) == 0x80; k++)
            end--;
        if (sb_add(ev, pos, b, tmp, pt_json_escape(tmp, s + off, end - off)) != 0)
            return -1;
        off = end;
    }
    return sb_add(ev, pos, b, "\"", 1);
}

/* Appends v as compact JSON. */
static int sb_json(ev_t *ev, size_t pos, sb_t *b, const pt_json_t *v, unsigned depth)
{
    size_t i;

    if (depth > EXPR_MAX_VALUE_DEPTH) {
        ev_fail(ev, pos, "a value is nested too deeply to be written");
        return -1;
    }
    switch (v->type) {
    case PT_JSON_NULL:
        return sb_add(ev, pos, b, "null", 4);
    case PT_JSON_FALSE:
        return sb_add(ev, pos, b, "false", 5);
    case PT_JSON_TRUE:
        return sb_add(ev, pos, b, "true", 4);
    case PT_JSON_NUMBER:
        return sb_add(ev, pos, b, v->u.str.p, v->u.str.len);
    case PT_JSON_STRING:
        return sb_json_str(ev, pos, b, v->u.str.p, v->u.str.len);
    case PT_JSON_ARRAY:
        if (sb_add(ev, pos, b, "[", 1) != 0)
            return -1;
        for (i = 0; i < v->u.arr.n; i++)
            if ((i > 0 && sb_add(ev, pos, b, ",", 1) != 0) ||
                sb_json(ev, pos, b, v->u.arr.items[i], depth + 1) != 0)
                return -1;
        return sb_add(ev, pos, b, "]", 1);
    case PT_JSON_OBJECT:
        if (sb_add(ev, pos, b, "{", 1) != 0)
            return -1;
        for (i = 0; i < v->u.obj.n; i++) {
            const pt_json_member_t *m = &v->u.obj.members[i];
            if ((i > 0 && sb_add(ev, pos, b, ",", 1) != 0) ||
                sb_json_str(ev, pos, b, m->key, m->key_len) != 0 ||
                sb_add(ev, pos, b, ":", 1) != 0 || sb_json(ev, pos, b, m->value, depth + 1) != 0)
                return -1;
        }
        return sb_add(ev, pos, b, "}", 1);
    }
    return -1;
}

/* Appends v as text: strings as they are, numbers as written, booleans as
 * true/false, null as nothing. Arrays and objects are written as JSON when
 * fname is NULL (templates), else they are an error of function fname. */
static int sb_value(ev_t *ev, size_t pos, sb_t *b, const pt_json_t *v, const char *fname)
{
    switch (v->type) {
    case PT_JSON_NULL:
        return 0;
    case PT_JSON_FALSE:
        return sb_add(ev, pos, b, "false", 5);
    case PT_JSON_TRUE:
        return sb_add(ev, pos, b, "true", 4);
    case PT_JSON_NUMBER:
    case PT_JSON_STRING:
        return sb_add(ev, pos, b, v->u.str.p, v->u.str.len);
    default:
        if (fname == NULL)
            return sb_json(ev, pos, b, v, 0);
        ev_fail(ev, pos, "%s cannot turn an %s into text (use string())", fname,
                pt_json_type_name(v->type));
        return -1;
    }
}

/* Appends v as text (sb_value) percent-encoded: everything but the RFC 3986
 * unreserved characters (A-Z a-z 0-9 - . _ ~). */
static int sb_url_value(ev_t *ev, size_t pos, sb_t *b, const pt_json_t *v, const char *fname)
{
    static const char hex[] = "0123456789ABCDEF";
    sb_t t = {0};
    size_t j;
    if (sb_value(ev, pos, &t, v, fname) != 0)
        return -1;
    for (j = 0; j < t.len; j++) {
        unsigned char ch = (unsigned char)t.p[j];
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        int unreserved = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                         (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
                         ch == '~';
        if (sb_add(ev, pos, b, unreserved ? (const char *)t.p + j : enc, unreserved ? 1 : 3) != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Helpers on values
 */

/* A number's text read for an exact comparison: value = sign * 0.d1d2... *
 * 10^(exp10 + 1) where d1 is the first non-zero digit (at p[first]). */
typedef struct dnum_s {
    const char *p; /* the mantissa: digits and at most one '.' */
    size_t first, last;
    int sign;      /* -1, 0 (zero), 1 */
    int64_t exp10; /* power of ten of the first non-zero digit */
} dnum_t;

static void dnum_read(dnum_t *d, const char *s, size_t len)
{
    size_t i = 0, m, dot, k;
    int64_t e = 0;
    int eneg = 0, neg = 0;

    if (len > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    for (m = i; m < len && s[m] != 'e' && s[m] != 'E'; m++)
        ;
    if (m < len) {
        k = m + 1;
        if (k < len && (s[k] == '+' || s[k] == '-'))
            eneg = s[k++] == '-';
        for (; k < len; k++)
            if (e < INT64_C(1000000000000000)) /* saturates: beyond any text length */
                e = e * 10 + (s[k] - '0');
        if (eneg)
            e = -e;
    }
    for (dot = i; dot < m && s[dot] != '.'; dot++)
        ;
    d->p = s;
    d->sign = 0;
    for (k = i; k < m; k++) {
        if (s[k] == '.' || s[k] == '0')
            continue;
        if (d->sign == 0) {
            d->sign = neg ? -1 : 1;
            d->first = k;
            d->exp10 = (k < dot ? (int64_t)(dot - k) - 1 : -(int64_t)(k - dot)) + e;
        }
        d->last = k;
    }
}

/* Exact comparison of two numbers (a fast path for two int64 values). */
static int num_cmp(const pt_json_t *x, const pt_json_t *y)
{
    int64_t a, b;
    dnum_t dx, dy;
    size_t i, j;
    int mag = 0;

    if (pt_json_to_int64(x, &a) == PT_OK && pt_json_to_int64(y, &b) == PT_OK)
        return (a > b) - (a < b);
    dnum_read(&dx, x->u.str.p, x->u.str.len);
    dnum_read(&dy, y->u.str.p, y->u.str.len);
    if (dx.sign != dy.sign)
        return dx.sign < dy.sign ? -1 : 1;
    if (dx.sign == 0)
        return 0;
    if (dx.exp10 != dy.exp10) {
        mag = dx.exp10 > dy.exp10 ? 1 : -1;
    } else {
        for (i = dx.first, j = dy.first; mag == 0; i++, j++) {
            if (dx.p[i] == '.')
                i++;
            if (dy.p[j] == '.')
                j++;
            if (dx.p[i] != dy.p[j])
                mag = dx.p[i] > dy.p[j] ? 1 : -1;
            else if (i >= dx.last || j >= dy.last)
                mag = (i < dx.last) - (j < dy.last);
            if (i >= dx.last && j >= dy.last)
                break;
        }
    }
    return dx.sign * mag;
}

static int str_cmp(const pt_json_t *x, const pt_json_t *y)
{
    size_t n = PT_MIN(x->u.str.len, y->u.str.len);
    int c = n ? memcmp(x->u.str.p, y->u.str.p, n) : 0;

    if (c != 0)
        return c < 0 ? -1 : 1;
    return (x->u.str.len > y->u.str.len) - (x->u.str.len < y->u.str.len);
}

/* Code points in s (continuation bytes are not counted). */
static size_t utf8_count(const char *s, size_t n)
{
    size_t i, c = 0;

    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* Byte offset of code point k of s (n when there are fewer). */
static size_t utf8_offset(const char *s, size_t n, size_t k)
{
    size_t i, c = 0;

    if (k == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && c++ == k)
            return i;
    return n;
}

/* Offset of the first byte that is not valid UTF-8, or n. */
static size_t utf8_check(const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, k, len;
    uint32_t cp, min;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if (s[i] >= 0xC2 && s[i] <= 0xDF) {
            len = 2;
            cp = s[i] & 0x1F;
            min = 0x80;
        } else if (s[i] >= 0xE0 && s[i] <= 0xEF) {
            len = 3;
            cp = s[i] & 0x0F;
            min = 0x800;
        } else if (s[i] >= 0xF0 && s[i] <= 0xF4) {
            len = 4;
            cp = s[i] & 0x07;
            min = 0x10000;
        } else {
            return i;
        }
        if (n - i < len)
            return i;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += len;
    }
    return n;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_ident_start(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_ident_char(int c)
{
    return is_ident_start(c) || is_digit(c);
}

/* ------------------------------------------------------------------------
 * Dates
 */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* The representable range: 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z. */
#define DATE_MIN_S (-62167219200LL)
#define DATE_MAX_S 253402300799LL

/* Formats milliseconds since the epoch (within the range). */
static const pt_json_t *date_format(ev_t *ev, size_t pos, int64_t ms, int force_ms)
{
    char buf[40];
    int64_t days, rem, y;
    unsigned m, d;
    int n;

    days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    rem = ms - days * 86400000;
    civil_from_days(days, &y, &m, &d);
    n = snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, m, d,
                 (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60));
    if (force_ms || rem % 1000 != 0)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%03d", (int)(rem % 1000));
    buf[n++] = 'Z';
    return new_str(ev, pos, buf, (size_t)n);
}

/* Reads exactly n digits. */
static int digits(const char *s, size_t n, unsigned *out)
{
    size_t i;
    unsigned v = 0;

    for (i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static const pt_json_t *date_from_string(ev_t *ev, size_t pos, const pt_json_t *x)
{
    const char *s = x->u.str.p;
    size_t n = x->u.str.len, i;
    unsigned y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, scale = 100;
    int64_t t;
    int sign = 0;

    if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        goto bad;
    if (n == 10)
        return new_str(ev, pos, s, 10);
    if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || n < 20 || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        goto bad;
    if (h > 23 || mi > 59 || sec > 60)
        goto bad;
    i = 19;
    if (s[i] == '.') {
        if (++i >= n || !is_digit(s[i]))
            goto bad;
        for (; i < n && is_digit(s[i]); i++) {
            ms += (unsigned)(s[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '-' ? -1 : 1;
        if (n - i < 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            goto bad;
        i += 6;
    } else {
        goto bad;
    }
    if (i != n)
        goto bad;
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
        sign * (int64_t)(oh * 3600 + om * 60);
    if (t < DATE_MIN_S || t > DATE_MAX_S) {
        ev_fail(ev, pos, "date: \"%.40s\" is out of the range of years 0 to 9999", s);
        return NULL;
    }
    return date_format(ev, pos, t * 1000 + ms, 0);
bad:
    ev_fail(ev, pos,
            "date: \"%.40s\" is not a date (YYYY-MM-DD) or date-time "
            "(YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM))",
            s);
    return NULL;
}

static const pt_json_t *fn_date(ev_t *ev, size_t pos, const pt_json_t *x)
{
    int64_t i;
    double d;

    if (x->type == PT_JSON_STRING)
        return date_from_string(ev, pos, x);
    if (x->type != PT_JSON_NUMBER) {
        ev_fail(ev, pos, "date expects a date string or a number of seconds, got %s",
                pt_json_type_name(x->type));
        return NULL;
    }
    if (pt_json_to_int64(x, &i) == PT_OK) {
        if (i < DATE_MIN_S || i > DATE_MAX_S)
            goto range;
        return date_format(ev, pos, i * 1000, 0);
    }
    d = pt_json_to_double(x);
    if (!(d >= (double)DATE_MIN_S && d < (double)DATE_MAX_S + 1.0))
        goto range;
    i = (int64_t)floor(d * 1000.0 + 0.5);
    if (i > DATE_MAX_S * 1000 + 999)
        i = DATE_MAX_S * 1000 + 999;
    return date_format(ev, pos, i, 0);
range:
    ev_fail(ev, pos, "date: %.40s seconds is out of the range of years 0 to 9999", x->u.str.p);
    return NULL;
}

static const pt_json_t *fn_now(ev_t *ev, size_t pos)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        ev_fail(ev, pos, "now: the clock cannot be read");
        return NULL;
    }
    return date_format(ev, pos, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, 1);
}

/* ------------------------------------------------------------------------
 * Numbers
 */

/* mode: 'r' round half away from zero, 'f' floor, 'c' ceil; to d fraction
 * digits. Exact on decimal text without exponent; through double otherwise. */
static const pt_json_t *num_round(ev_t *ev, size_t pos, const pt_json_t *x, unsigned d, int mode)
{
    const char *s = x->u.str.p, *dot;
    size_t n = x->u.str.len, il, fl, i, total, is, ie, fe;
    int neg = 0, up, nonzero = 0;
    int64_t iv;
    char *buf, *out;

    if (pt_json_to_int64(x, &iv) == PT_OK)
        return x;
    if (memchr(s, 'e', n) != NULL || memchr(s, 'E', n) != NULL) {
        double v = pt_json_to_double(x), p = pow(10.0, (double)d), r;
        if (fabs(v) >= 4503599627370496.0) /* 2^52: already integral */
            return x;
        r = mode == 'r' ? round(v * p) : mode == 'f' ? floor(v * p) : ceil(v * p);
        r /= p;
        if (d == 0 && fabs(r) < 9.2e18)
            return new_int(ev, (int64_t)r);
        return new_double(ev, pos, r);
    }
    if (*s == '-') {
        neg = 1;
        s++;
        n--;
    }
    dot = memchr(s, '.', n);
    if (dot == NULL)
        return x;
    il = (size_t)(dot - s);
    fl = n - il - 1;
    if (fl <= d)
        return x;
    for (i = d + 1; i <= fl; i++)
        if (dot[i] != '0')
            nonzero = 1;
    if (mode == 'r')
        up = dot[1 + d] >= '5';
    else if (mode == 'f')
        up = neg && nonzero;
    else
        up = !neg && nonzero;
    /* A carry slot, the integer digits, the kept fraction digits. */
    total = 1 + il + d;
    buf = pt_arena_alloc(ev->a, total + 1);
    out = pt_arena_alloc(ev->a, total + 3);
    if (buf == NULL || out == NULL) {
        ev_oom(ev);
        return NULL;
    }
    buf[0] = '0';
    memcpy(buf + 1, s, il);
    memcpy(buf + 1 + il, dot + 1, d);
    if (up) {
        for (i = total; i-- > 0;) {
            if (buf[i] != '9') {
                buf[i]++;
                break;
            }
            buf[i] = '0';
        }
    }
    for (is = 0; is < il && buf[is] == '0'; is++)
        ; /* leading zeros, keeping one digit */
    ie = 1 + il;
    for (fe = total; fe > ie && buf[fe - 1] == '0'; fe--)
        ;
    n = 0;
    if (neg && (ie - is > 1 || buf[is] != '0' || fe > ie))
        out[n++] = '-'; /* not for a zero */
    memcpy(out + n, buf + is, ie - is);
    n += ie - is;
    if (fe > ie) {
        out[n++] = '.';
        memcpy(out + n, buf + ie, fe - ie);
        n += fe - ie;
    }
    return new_num(ev, pos, out, n);
}

/* -x; exact: integers through int64, other numbers by their text. */
static const pt_json_t *num_negate(ev_t *ev, size_t pos, const pt_json_t *x, int abs_only)
{
    int64_t i;
    char *t;

    if (pt_json_to_int64(x, &i) == PT_OK && i != INT64_MIN) {
        if (abs_only && i >= 0)
            return x;
        return new_int(ev, -i);
    }
    if (x->u.str.p[0] == '-')
        return new_num(ev, pos, x->u.str.p + 1, x->u.str.len - 1);
    if (abs_only)
        return x;
    t = pt_arena_alloc(ev->a, x->u.str.len + 2);
    if (t == NULL) {
        ev_oom(ev);
        return NULL;
    }
    t[0] = '-';
    memcpy(t + 1, x->u.str.p, x->u.str.len);
    return new_num(ev, pos, t, x->u.str.len + 1);
}

static const pt_json_t *num_arith(ev_t *ev, size_t pos, const pt_json_t *x, const pt_json_t *y,
                                  char op)
{
    int64_t a, b, r;

    if (x->type != PT_JSON_NUMBER || y->type != PT_JSON_NUMBER) {
        ev_fail(ev, pos, "'%c' needs two numbers, got %s and %s%s", op, pt_json_type_name(x->type),
                pt_json_type_name(y->type),
                op == '+' && (x->type == PT_JSON_STRING || y->type == PT_JSON_STRING)
                    ? " (use concat() to join strings)"
                    : "");
        return NULL;
    }
    if (pt_json_to_int64(x, &a) == PT_OK && pt_json_to_int64(y, &b) == PT_OK) {
        __int128 w;
        unsigned __int128 u;
        char buf[48], *t = buf + sizeof(buf);
        if (!(op == '+' ? __builtin_add_overflow(a, b, &r) : __builtin_sub_overflow(a, b, &r)))
            return new_int(ev, r);
        /* Past int64 the exact sum still has a short decimal text: better
         * than a double, whose shortest text may not even be integral. */
        w = op == '+' ? (__int128)a + b : (__int128)a - b;
        u = w < 0 ? -(unsigned __int128)w : (unsigned __int128)w;
        do {
            *--t = (char)('0' + (int)(u % 10));
            u /= 10;
        } while (u != 0);
        if (w < 0)
            *--t = '-';
        return new_num(ev, pos, t, (size_t)(buf + sizeof(buf) - t));
    }
    return new_double(ev, pos,
                      op == '+' ? pt_json_to_double(x) + pt_json_to_double(y)
                                : pt_json_to_double(x) - pt_json_to_double(y));
}

/* number(x): a number, or a string holding one (surrounding white space,
 * a '+' sign and leading zeros allowed). */
static const pt_json_t *fn_number(ev_t *ev, size_t pos, const pt_json_t *x)
{
    const char *s, *e, *p;
    char *out;
    size_t n = 0;
    int neg = 0;

    if (x->type == PT_JSON_NUMBER)
        return x;
    if (x->type != PT_JSON_STRING) {
        ev_fail(ev, pos, "number expects a number or a numeric string, got %s",
                pt_json_type_name(x->type));
        return NULL;
    }
    s = x->u.str.p;
    e = s + x->u.str.len;
    while (s < e && is_space((unsigned char)*s))
        s++;
    while (e > s && is_space((unsigned char)e[-1]))
        e--;
    p = s;
    if (p < e && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    if (p >= e || !is_digit(*p))
        goto bad;
    while (p + 1 < e && *p == '0' && is_digit(p[1]))
        p++; /* leading zeros */
    s = p;
    while (p < e && is_digit(*p))
        p++;
    if (p < e && *p == '.') {
        if (++p >= e || !is_digit(*p))
            goto bad;
        while (p < e && is_digit(*p))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        if (++p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !is_digit(*p))
            goto bad;
        while (p < e && is_digit(*p))
            p++;
    }
    if (p != e)
        goto bad;
    out = pt_arena_alloc(ev->a, (size_t)(e - s) + 2);
    if (out == NULL) {
        ev_oom(ev);
        return NULL;
    }
    if (neg)
        out[n++] = '-';
    memcpy(out + n, s, (size_t)(e - s));
    return new_num(ev, pos, out, n + (size_t)(e - s));
bad:
    ev_fail(ev, pos, "number: \"%.40s\" is not a number", x->u.str.p);
    return NULL;
}

/* ------------------------------------------------------------------------
 * The evaluator
 */

static const pt_json_t *eval(ev_t *ev, const node_t *n);

static int want(ev_t *ev, const node_t *n, size_t i, const pt_json_t *v, pt_json_type_t t)
{
    const char *what = t == PT_JSON_STRING  ? "a string"
                       : t == PT_JSON_ARRAY ? "an array"
                                            : "a number";
    if (v->type == t)
        return 0;
    if (n->nkids == 1)
        ev_fail(ev, n->pos, "%s expects %s, got %s", fns[n->op].name, what,
                pt_json_type_name(v->type));
    else
        ev_fail(ev, n->pos, "%s: argument %zu must be %s, got %s", fns[n->op].name, i + 1, what,
                pt_json_type_name(v->type));
    return -1;
}

static int want_int(ev_t *ev, const node_t *n, size_t i, const pt_json_t *v, int64_t *out)
{
    if (want(ev, n, i, v, PT_JSON_NUMBER) != 0)
        return -1;
    if (pt_json_to_int64(v, out) != PT_OK) {
        ev_fail(ev, n->pos, "%s: argument %zu must be an integer, got %.40s", fns[n->op].name,
                i + 1, v->u.str.p);
        return -1;
    }
    return 0;
}

static const pt_json_t *fn_case(ev_t *ev, const node_t *n, const pt_json_t *x, int upper)
{
    char *p;
    size_t i;

    if (want(ev, n, 0, x, PT_JSON_STRING) != 0 || (p = ev_strbuf(ev, n->pos, x->u.str.len)) == NULL)
        return NULL;
    for (i = 0; i < x->u.str.len; i++) {
        char c = x->u.str.p[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        p[i] = c;
    }
    return mkstr(ev, p, x->u.str.len);
}

static const pt_json_t *fn_substring(ev_t *ev, const node_t *n, const pt_json_t **arg)
{
    const char *s;
    size_t len, chars, from, to;
    int64_t start, count = -1;

    if (want(ev, n, 0, arg[0], PT_JSON_STRING) != 0 || want_int(ev, n, 1, arg[1], &start) != 0 ||
        (n->nkids == 3 && want_int(ev, n, 2, arg[2], &count) != 0))
        return NULL;
    if (n->nkids == 3 && count < 0) {
        ev_fail(ev, n->pos, "substring: the length must not be negative");
        return NULL;
    }
    s = arg[0]->u.str.p;
    len = arg[0]->u.str.len;
    if (ev_work(ev, n->pos, len / 1024) != 0)
        return NULL;
    chars = utf8_count(s, len);
    if (start < 0)
        start = (uint64_t)0 - (uint64_t)start >= chars ? 0 : (int64_t)chars + start;
    if ((uint64_t)start >= chars)
        return &s_empty;
    from = utf8_offset(s, len, (size_t)start);
    if (count < 0 || (uint64_t)count >= chars - (size_t)start)
        to = len;
    else
        to = utf8_offset(s, len, (size_t)start + (size_t)count);
    return new_str(ev, n->pos, s + from, to - from);
}

static const pt_json_t *fn_replace(ev_t *ev, const node_t *n, const pt_json_t **arg)
{
    const char *s, *f, *t, *p, *q, *end;
    size_t sl, fl, tl, count = 0, out_len;
    char *out, *o;

    if (want(ev, n, 0, arg[0], PT_JSON_STRING) != 0 ||
        want(ev, n, 1, arg[1], PT_JSON_STRING) != 0 || want(ev, n, 2, arg[2], PT_JSON_STRING) != 0)
        return NULL;
    s = arg[0]->u.str.p;
    sl = arg[0]->u.str.len;
    f = arg[1]->u.str.p;
    fl = arg[1]->u.str.len;
    t = arg[2]->u.str.p;
    tl = arg[2]->u.str.len;
    if (fl == 0 || fl > sl)
        return arg[0];
    if (ev_work(ev, n->pos, sl / 1024) != 0)
        return NULL;
    end = s + sl;
    for (p = s; (q = memmem(p, (size_t)(end - p), f, fl)) != NULL; p = q + fl)
        count++;
    if (count == 0)
        return arg[0];
    /* Size first: the budget must refuse before anything is allocated. */
    if (tl > fl && count > (SIZE_MAX / 2 - sl) / (tl - fl)) {
        ev_charge(ev, n->pos, SIZE_MAX);
        return NULL;
    }
    out_len = tl >= fl ? sl + count * (tl - fl) : sl - count * (fl - tl);
    if ((out = ev_strbuf(ev, n->pos, out_len)) == NULL)
        return NULL;
    o = out;
    for (p = s; (q = memmem(p, (size_t)(end - p), f, fl)) != NULL; p = q + fl) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, t, tl);
        o += tl;
    }
    memcpy(o, p, (size_t)(end - p));
    return mkstr(ev, out, out_len);
}

static const pt_json_t *fn_split(ev_t *ev, const node_t *n, const pt_json_t **arg)
{
    const char *s, *sep, *p, *q, *end;
    size_t sl, pl;
    pt_json_t *arr;
    const pt_json_t *piece;

    if (want(ev, n, 0, arg[0], PT_JSON_STRING) != 0 || want(ev, n, 1, arg[1], PT_JSON_STRING) != 0)
        return NULL;
    if ((arr = pt_json_array(ev->a)) == NULL) {
        ev_oom(ev);
        return NULL;
    }
    s = arg[0]->u.str.p;
    sl = arg[0]->u.str.len;
    sep = arg[1]->u.str.p;
    pl = arg[1]->u.str.len;
    end = s + sl;
    if (sl == 0)
        return arr;
    for (p = s; p <= end;) {
        if (pl == 0) {
            if (p == end)
                break;
            q = p + 1;
            while (q < end && ((unsigned char)*q & 0xC0) == 0x80)
                q++;
        } else {
            q = memmem(p, (size_t)(end - p), sep, pl);
            if (q == NULL)
                q = end;
        }
        if (ev_work(ev, n->pos, 1) != 0 ||
            (piece = new_str(ev, n->pos, p, (size_t)(q - p))) == NULL)
            return NULL;
        if (pt_json_array_add(ev->a, arr, (pt_json_t *)piece) != PT_OK) {
            ev_oom(ev);
            return NULL;
        }
        if (pl == 0)
            p = q;
        else if (q == end)
            break;
        else
            p = q + pl;
    }
    return arr;
}

static const pt_json_t *fn_join(ev_t *ev, const node_t *n, const pt_json_t **arg)
{
    const pt_json_t *arr = arg[0], *sep = arg[1];
    sb_t b = {0};
    size_t i;

    if (want(ev, n, 0, arr, PT_JSON_ARRAY) != 0 || want(ev, n, 1, sep, PT_JSON_STRING) != 0)
        return NULL;
    for (i = 0; i < arr->u.arr.n; i++) {
        if (ev_work(ev, n->pos, 1) != 0 ||
            (i > 0 && sb_add(ev, n->pos, &b, sep->u.str.p, sep->u.str.len) != 0) ||
            sb_value(ev, n->pos, &b, arr->u.arr.items[i], "join") != 0)
            return NULL;
    }
    return sb_finish(ev, &b);
}

static const pt_json_t *fn_contains(ev_t *ev, const node_t *n, const pt_json_t **arg)
{
    const pt_json_t *h = arg[0], *x = arg[1];
    size_t i;

    if (h->type == PT_JSON_ARRAY) {
        for (i = 0; i < h->u.arr.n; i++) {
            if (ev_work(ev, n->pos, 1) != 0)
                return NULL;
            if (pt_json_equal(h->u.arr.items[i], x))
                return &v_true;
        }
        return &v_false;
    }
    if (h->type != PT_JSON_STRING) {
        ev_fail(ev, n->pos, "contains: argument 1 must be a string or an array, got %s",
                pt_json_type_name(h->type));
        return NULL;
    }
    if (want(ev, n, 1, x, PT_JSON_STRING) != 0 || ev_work(ev, n->pos, h->u.str.len / 1024) != 0)
        return NULL;
    if (x->u.str.len == 0)
        return &v_true;
    return new_bool(memmem(h->u.str.p, h->u.str.len, x->u.str.p, x->u.str.len) != NULL);
}

static const pt_json_t *fn_affix(ev_t *ev, const node_t *n, const pt_json_t **arg, int at_end)
{
    const pt_json_t *s = arg[0], *p = arg[1];

    if (want(ev, n, 0, s, PT_JSON_STRING) != 0 || want(ev, n, 1, p, PT_JSON_STRING) != 0)
        return NULL;
    if (p->u.str.len > s->u.str.len)
        return &v_false;
    return new_bool(memcmp(s->u.str.p + (at_end ? s->u.str.len - p->u.str.len : 0), p->u.str.p,
                           p->u.str.len) == 0);
}

static const pt_json_t *fn_string(ev_t *ev, const node_t *n, const pt_json_t *x)
{
    sb_t b = {0};

    switch (x->type) {
    case PT_JSON_STRING:
        return x;
    case PT_JSON_NUMBER:
        return mkstr(ev, x->u.str.p, x->u.str.len); /* shares the text */
    case PT_JSON_NULL:
        return &s_null;
    case PT_JSON_TRUE:
        return &s_true;
    case PT_JSON_FALSE:
        return &s_false;
    default:
        if (sb_json(ev, n->pos, &b, x, 0) != 0)
            return NULL;
        return sb_finish(ev, &b);
    }
}

static const pt_json_t *fn_length(ev_t *ev, const node_t *n, const pt_json_t *x)
{
    switch (x->type) {
    case PT_JSON_STRING:
        if (ev_work(ev, n->pos, x->u.str.len / 1024) != 0)
            return NULL;
        return new_int(ev, (int64_t)utf8_count(x->u.str.p, x->u.str.len));
    case PT_JSON_ARRAY:
        return new_int(ev, (int64_t)x->u.arr.n);
    case PT_JSON_OBJECT:
        return new_int(ev, (int64_t)x->u.obj.n);
    default:
        ev_fail(ev, n->pos, "length expects a string, an array or an object, got %s",
                pt_json_type_name(x->type));
        return NULL;
    }
}

static const pt_json_t *fn_trim(ev_t *ev, const node_t *n, const pt_json_t *x)
{
    const char *s, *e;

    if (want(ev, n, 0, x, PT_JSON_STRING) != 0)
        return NULL;
    s = x->u.str.p;
    e = s + x->u.str.len;
    while (s < e && is_space((unsigned char)*s))
        s++;
    while (e > s && is_space((unsigned char)e[-1]))
        e--;
    if (s == x->u.str.p && e == s + x->u.str.len)
        return x;
    return new_str(ev, n->pos, s, (size_t)(e - s));
}

static const pt_json_t *fn_minmax(ev_t *ev, const node_t *n, int want_max)
{
    const pt_json_t *best = NULL, *v, *first = NULL, *arr = NULL;
    size_t i, count;
    int c;

    if (n->nkids == 1) {
        if ((first = eval(ev, n->kids[0])) == NULL)
            return NULL;
        if (first->type == PT_JSON_ARRAY)
            arr = first;
    }
    count = arr ? arr->u.arr.n : n->nkids;
    for (i = 0; i < count; i++) {
        if (arr)
            v = arr->u.arr.items[i];
        else if (first)
            v = first;
        else if ((v = eval(ev, n->kids[i])) == NULL)
            return NULL;
        if (ev_work(ev, n->pos, 1) != 0)
            return NULL;
        if (v->type != PT_JSON_NUMBER && v->type != PT_JSON_STRING) {
            ev_fail(ev, n->pos, "%s takes numbers or strings, got %s", fns[n->op].name,
                    pt_json_type_name(v->type));
            return NULL;
        }
        if (best != NULL && best->type != v->type) {
            ev_fail(ev, n->pos, "%s cannot compare a %s and a %s", fns[n->op].name,
                    pt_json_type_name(best->type), pt_json_type_name(v->type));
            return NULL;
        }
        if (best == NULL) {
            best = v;
            continue;
        }
        c = v->type == PT_JSON_NUMBER ? num_cmp(v, best) : str_cmp(v, best);
        if (want_max ? c > 0 : c < 0)
            best = v;
    }
    return best ? best : &v_null;
}

static const pt_json_t *eval_call(ev_t *ev, const node_t *n)
{
    const pt_json_t *arg[3] = {NULL, NULL, NULL}, *v;
    sb_t b = {0};
    int64_t digits_n = 0;
    size_t i;

    /* Functions that evaluate their arguments themselves. */
    switch ((fn_id_t)n->op) {
    case F_COALESCE:
        for (i = 0; i < n->nkids; i++) {
            if ((v = eval(ev, n->kids[i])) == NULL)
                return NULL;
            if (v->type != PT_JSON_NULL)
                return v;
        }
        return &v_null;
    case F_DEFAULT:
        if ((v = eval(ev, n->kids[0])) == NULL)
            return NULL;
        return v->type != PT_JSON_NULL ? v : eval(ev, n->kids[1]);
    case F_CONCAT:
        for (i = 0; i < n->nkids; i++)
            if ((v = eval(ev, n->kids[i])) == NULL || sb_value(ev, n->pos, &b, v, "concat") != 0)
                return NULL;
        return sb_finish(ev, &b);
    case F_MIN:
    case F_MAX:
        return fn_minmax(ev, n, n->op == F_MAX);
    case F_NOW:
        return fn_now(ev, n->pos);
    default:
        break;
    }
    for (i = 0; i < n->nkids && i < 3; i++)
        if ((arg[i] = eval(ev, n->kids[i])) == NULL)
            return NULL;
    switch ((fn_id_t)n->op) {
    case F_LOWER:
        return fn_case(ev, n, arg[0], 0);
    case F_UPPER:
        return fn_case(ev, n, arg[0], 1);
    case F_TRIM:
        return fn_trim(ev, n, arg[0]);
    case F_LENGTH:
        return fn_length(ev, n, arg[0]);
    case F_NUMBER:
        return fn_number(ev, n->pos, arg[0]);
    case F_STRING:
        return fn_string(ev, n, arg[0]);
    case F_BOOLEAN:
        return new_bool(pt_json_truthy(arg[0]));
    case F_DATE:
        return fn_date(ev, n->pos, arg[0]);
    case F_SUBSTRING:
        return fn_substring(ev, n, arg);
    case F_REPLACE:
        return fn_replace(ev, n, arg);
    case F_SPLIT:
        return fn_split(ev, n, arg);
    case F_JOIN:
        return fn_join(ev, n, arg);
    case F_CONTAINS:
        return fn_contains(ev, n, arg);
    case F_URL_ENCODE:
        if (sb_url_value(ev, n->pos, &b, arg[0], "url_encode") != 0)
            return NULL;
        return sb_finish(ev, &b);
    case F_HAS:
        /* has(object, "key"): the member is present, even when null */
        if (want(ev, n, 1, arg[1], PT_JSON_STRING) != 0)
            return NULL;
        return new_bool(arg[0]->type == PT_JSON_OBJECT &&
                        pt_json_getn(arg[0], arg[1]->u.str.p, arg[1]->u.str.len) != NULL);
    case F_KEYS: {
        pt_json_t *arr;
        if (want(ev, n, 0, arg[0], PT_JSON_OBJECT) != 0 ||
            ev_work(ev, n->pos, arg[0]->u.obj.n) != 0)
            return NULL;
        if ((arr = pt_json_array(ev->a)) == NULL) {
            ev_fail(ev, n->pos, "out of memory");
            return NULL;
        }
        for (i = 0; i < arg[0]->u.obj.n; i++)
            if (pt_json_array_add(ev->a, arr,
                                  pt_json_string(ev->a, arg[0]->u.obj.members[i].key,
                                                 arg[0]->u.obj.members[i].key_len)) != PT_OK) {
                ev_fail(ev, n->pos, "out of memory");
                return NULL;
            }
        return arr;
    }
    case F_STARTS_WITH:
        return fn_affix(ev, n, arg, 0);
    case F_ENDS_WITH:
        return fn_affix(ev, n, arg, 1);
    case F_ROUND:
        if (want(ev, n, 0, arg[0], PT_JSON_NUMBER) != 0 ||
            (n->nkids == 2 && want_int(ev, n, 1, arg[1], &digits_n) != 0))
            return NULL;
        if (digits_n < 0 || digits_n > 15) {
            ev_fail(ev, n->pos, "round: the digits must be between 0 and 15");
            return NULL;
        }
        return num_round(ev, n->pos, arg[0], (unsigned)digits_n, 'r');
    case F_FLOOR:
    case F_CEIL:
        if (want(ev, n, 0, arg[0], PT_JSON_NUMBER) != 0)
            return NULL;
        return num_round(ev, n->pos, arg[0], 0, n->op == F_FLOOR ? 'f' : 'c');
    case F_ABS:
        if (want(ev, n, 0, arg[0], PT_JSON_NUMBER) != 0)
            return NULL;
        return num_negate(ev, n->pos, arg[0], 1);
    default:
        break;
    }
    ev_fail(ev, n->pos, "internal error: function %d", n->op);
    return NULL;
}

static const pt_json_t *eval_path(ev_t *ev, const node_t *n)
{
    const pt_json_t *v = eval(ev, n->kids[0]), *k, *next;
    size_t i;
    int64_t idx;

    if (v == NULL)
        return NULL;
    for (i = 0; i < n->nsteps; i++) {
        const step_t *s = &n->steps[i];
        next = NULL;
        if (s->name != NULL) {
            if (v->type == PT_JSON_OBJECT)
                next = pt_json_getn(v, s->name, s->name_len);
        } else {
            if ((k = eval(ev, s->index)) == NULL)
                return NULL;
            switch (k->type) {
            case PT_JSON_STRING:
                if (v->type == PT_JSON_OBJECT)
                    next = pt_json_getn(v, k->u.str.p, k->u.str.len);
                break;
            case PT_JSON_NUMBER:
                if (v->type == PT_JSON_ARRAY && pt_json_to_int64(k, &idx) == PT_OK && idx >= 0 &&
                    (uint64_t)idx < v->u.arr.n)
                    next = v->u.arr.items[idx];
                break;
            case PT_JSON_NULL:
                break;
            default:
                ev_fail(ev, s->pos, "an index must be a number or a string, got %s",
                        pt_json_type_name(k->type));
                return NULL;
            }
        }
        v = next ? next : &v_null;
    }
    return v;
}

static const pt_json_t *eval_cmp(ev_t *ev, const node_t *n)
{
    static const char *const names[] = {"==", "!=", "<", "<=", ">", ">="};
    const pt_json_t *x, *y;
    int c;

    if ((x = eval(ev, n->kids[0])) == NULL || (y = eval(ev, n->kids[1])) == NULL)
        return NULL;
    if (n->op == CMP_EQ || n->op == CMP_NE)
        return new_bool(!pt_json_equal(x, y) == (n->op == CMP_NE));
    if (x->type == PT_JSON_NUMBER && y->type == PT_JSON_NUMBER) {
        c = num_cmp(x, y);
    } else if (x->type == PT_JSON_STRING && y->type == PT_JSON_STRING) {
        c = str_cmp(x, y);
    } else {
        ev_fail(ev, n->pos, "'%s' compares two numbers or two strings, got %s and %s", names[n->op],
                pt_json_type_name(x->type), pt_json_type_name(y->type));
        return NULL;
    }
    switch (n->op) {
    case CMP_LT:
        return new_bool(c < 0);
    case CMP_LE:
        return new_bool(c <= 0);
    case CMP_GT:
        return new_bool(c > 0);
    default:
        return new_bool(c >= 0);
    }
}

static const pt_json_t *eval(ev_t *ev, const node_t *n)
{
    const pt_json_t *v, *w;
    pt_json_t *r;
    size_t i;
    sb_t b = {0};

    if (ev_work(ev, n->pos, 1) != 0)
        return NULL;
    switch (n->kind) {
    case N_CONST:
        return n->value;
    case N_ROOT:
        v = ev->ctx ? pt_json_getn(ev->ctx, n->name, n->name_len) : NULL;
        return v ? v : &v_null;
    case N_PATH:
        return eval_path(ev, n);
    case N_NOT:
        if ((v = eval(ev, n->kids[0])) == NULL)
            return NULL;
        return new_bool(!pt_json_truthy(v));
    case N_NEG:
        if ((v = eval(ev, n->kids[0])) == NULL)
            return NULL;
        if (v->type != PT_JSON_NUMBER) {
            ev_fail(ev, n->pos, "'-' needs a number, got %s", pt_json_type_name(v->type));
            return NULL;
        }
        return num_negate(ev, n->pos, v, 0);
    case N_AND:
    case N_OR:
        for (i = 0; i < n->nkids; i++) {
            if ((v = eval(ev, n->kids[i])) == NULL)
                return NULL;
            if (pt_json_truthy(v) == (n->kind == N_OR))
                return new_bool(n->kind == N_OR);
        }
        return new_bool(n->kind == N_AND);
    case N_CMP:
        return eval_cmp(ev, n);
    case N_ARITH:
        if ((v = eval(ev, n->kids[0])) == NULL)
            return NULL;
        for (i = 1; i < n->nkids; i++)
            if ((w = eval(ev, n->kids[i])) == NULL ||
                (v = num_arith(ev, n->pos, v, w, n->ops[i])) == NULL)
                return NULL;
        return v;
    case N_ARRAY:
    case N_OBJECT:
        /* Built directly: the items are known, and object keys are unique
         * (checked at compile time). */
        r = n->kind == N_ARRAY ? pt_json_array(ev->a) : pt_json_object(ev->a);
        if (r == NULL)
            goto oom;
        if (n->nkids == 0)
            return r;
        if (n->kind == N_ARRAY) {
            r->u.arr.items = pt_arena_alloc(ev->a, n->nkids * sizeof(pt_json_t *));
            if (r->u.arr.items == NULL)
                goto oom;
            r->u.arr.cap = n->nkids;
        } else {
            r->u.obj.members = pt_arena_alloc(ev->a, n->nkids * sizeof(pt_json_member_t));
            if (r->u.obj.members == NULL)
                goto oom;
            r->u.obj.cap = n->nkids;
        }
        for (i = 0; i < n->nkids; i++) {
            if ((v = eval(ev, n->kids[i])) == NULL)
                return NULL;
            if (n->kind == N_ARRAY) {
                r->u.arr.items[r->u.arr.n++] = (pt_json_t *)v;
            } else {
                pt_json_member_t *m = &r->u.obj.members[r->u.obj.n++];
                m->key = n->keys[i];
                m->key_len = n->key_lens[i];
                m->value = (pt_json_t *)v;
            }
        }
        return r;
    case N_CALL:
        return eval_call(ev, n);
    case N_TEMPLATE:
        for (i = 0; i < n->nkids; i++) {
            const node_t *k = n->kids[i];
            if ((v = eval(ev, k)) == NULL)
                return NULL;
            if (n->op == TEMPLATE_URL && !(k->kind == N_CONST && k->op == LITERAL_PART)) {
                /* a value in a URL: it cannot add segments, a query or a host */
                if (sb_url_value(ev, n->pos, &b, v, NULL) != 0)
                    return NULL;
                continue;
            }
            if (sb_value(ev, n->pos, &b, v, NULL) != 0)
                return NULL;
        }
        return sb_finish(ev, &b);
    }
    ev_fail(ev, n->pos, "internal error: node %d", (int)n->kind);
    return NULL;
oom:
    ev_oom(ev);
    return NULL;
}

/* ------------------------------------------------------------------------
 * The lexer
 */

typedef enum tok_kind_e {
    T_EOF,
    T_NUM,
    T_STR,
    T_IDENT,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_LBRACE,
    T_RBRACE,
    T_COMMA,
    T_COLON,
    T_DOT,
    T_PLUS,
    T_MINUS,
    T_NOT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_AND,
    T_OR
} tok_kind_t;

typedef struct tok_s {
    tok_kind_t kind;
    size_t start, end;
    const char *str; /* T_STR: the decoded text, NUL-terminated in the arena */
    size_t str_len;
} tok_t;

typedef struct parser_s {
    ev_t ev; /* errors, budgets and the evaluator of constant folding */
    const char *src;
    size_t len;
    size_t pos; /* where the lexer continues: the end of tok */
    const char *const *roots;
    unsigned depth;
    tok_t tok;
} parser_t;

static void perr(parser_t *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(parser_t *p, size_t at, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ev_vfail(&p->ev, at, fmt, ap);
    va_end(ap);
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int lex_string(parser_t *p, size_t i)
{
    const char *s = p->src;
    char q = s[i], *out;
    size_t j = i + 1, k, o = 0;
    uint32_t cp, lo;

    while (j < p->len && s[j] != q)
        j += s[j] == '\\' ? 2 : 1;
    if (j >= p->len) {
        perr(p, i, "unterminated string");
        return -1;
    }
    /* The decoded text is never longer than the source text. */
    if ((out = pt_arena_alloc(p->ev.a, j - i)) == NULL) {
        ev_oom(&p->ev);
        return -1;
    }
    for (k = i + 1; k < j; k++) {
        if (s[k] != '\\') {
            out[o++] = s[k];
            continue;
        }
        switch (s[++k]) {
        case '\\':
        case '\'':
        case '"':
            out[o++] = s[k];
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 'u':
            if (j - k < 5 || hex4(s + k + 1, &cp) != 0) {
                perr(p, k - 1, "invalid \\u escape (4 hexadecimal digits expected)");
                return -1;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                perr(p, k - 1, "invalid \\u escape: a lone low surrogate");
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j - k < 11 || s[k + 5] != '\\' || s[k + 6] != 'u' ||
                    hex4(s + k + 7, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    perr(p, k - 1, "invalid \\u escape: a high surrogate without its low half");
                    return -1;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += 6;
            }
            o += utf8_put(out + o, cp);
            k += 4;
            break;
        default:
            if (s[k] > 0x20 && s[k] < 0x7f)
                perr(p, k - 1, "invalid escape '\\%c' (use \\\\ \\' \\\" \\n \\t \\r \\uXXXX)",
                     s[k]);
            else
                perr(p, k - 1, "invalid escape (use \\\\ \\' \\\" \\n \\t \\r \\uXXXX)");
            return -1;
        }
    }
    out[o] = '\0';
    p->tok.kind = T_STR;
    p->tok.str = out;
    p->tok.str_len = o;
    p->tok.end = p->pos = j + 1;
    return 0;
}

/* Reads the next token into p->tok. */
static int lex(parser_t *p)
{
    const char *s = p->src;
    size_t i = p->pos, n = p->len;
    tok_t *t = &p->tok;
    unsigned char c;

    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    t->start = i;
    t->str = NULL;
    t->str_len = 0;
    if (i >= n) {
        t->kind = T_EOF;
        t->end = p->pos = i;
        return 0;
    }
    c = (unsigned char)s[i];
    if (is_ident_start(c)) {
        while (i < n && is_ident_char((unsigned char)s[i]))
            i++;
        t->kind = T_IDENT;
    } else if (is_digit(c)) {
        if (s[i] == '0')
            i++;
        else
            while (i < n && is_digit(s[i]))
                i++;
        if (i < n && s[i] == '.') {
            if (++i >= n || !is_digit(s[i]))
                goto bad_number;
            while (i < n && is_digit(s[i]))
                i++;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
            if (++i < n && (s[i] == '+' || s[i] == '-'))
                i++;
            if (i >= n || !is_digit(s[i]))
                goto bad_number;
            while (i < n && is_digit(s[i]))
                i++;
        }
        if (i < n && (is_ident_char((unsigned char)s[i]) || s[i] == '.'))
            goto bad_number;
        t->kind = T_NUM;
    } else if (c == '\'' || c == '"') {
        return lex_string(p, i);
    } else {
        int two = i + 1 < n ? s[i + 1] : 0;
        i++;
        switch (c) {
        case '(':
            t->kind = T_LPAREN;
            break;
        case ')':
            t->kind = T_RPAREN;
            break;
        case '[':
            t->kind = T_LBRACK;
            break;
        case ']':
            t->kind = T_RBRACK;
            break;
        case '{':
            t->kind = T_LBRACE;
            break;
        case '}':
            t->kind = T_RBRACE;
            break;
        case ',':
            t->kind = T_COMMA;
            break;
        case ':':
            t->kind = T_COLON;
            break;
        case '.':
            t->kind = T_DOT;
            break;
        case '+':
            t->kind = T_PLUS;
            break;
        case '-':
            t->kind = T_MINUS;
            break;
        case '!':
            t->kind = two == '=' ? T_NE : T_NOT;
            break;
        case '<':
            t->kind = two == '=' ? T_LE : T_LT;
            break;
        case '>':
            t->kind = two == '=' ? T_GE : T_GT;
            break;
        case '=':
            if (two != '=') {
                perr(p, t->start, "unexpected '=' (use '==' to compare)");
                return -1;
            }
            t->kind = T_EQ;
            break;
        case '&':
            if (two != '&') {
                perr(p, t->start, "unexpected '&' (use '&&')");
                return -1;
            }
            t->kind = T_AND;
            break;
        case '|':
            if (two != '|') {
                perr(p, t->start, "unexpected '|' (use '||')");
                return -1;
            }
            t->kind = T_OR;
            break;
        default:
            if (c > 0x20 && c < 0x7f)
                perr(p, t->start, "unexpected character '%c'", c);
            else if (c < 0x80)
                perr(p, t->start, "unexpected character 0x%02x", c);
            else
                perr(p, t->start, "unexpected non-ASCII character");
            return -1;
        }
        if (t->kind == T_NE || t->kind == T_LE || t->kind == T_GE || t->kind == T_EQ ||
            t->kind == T_AND || t->kind == T_OR)
            i++;
    }
    t->end = p->pos = i;
    return 0;
bad_number:
    perr(p, t->start, "invalid number");
    return -1;
}

/* The current token for messages: "'x'" (source text, cut) or "the end". */
static const char *tok_desc(const parser_t *p, char *buf, size_t size)
{
    size_t n = p->tok.end - p->tok.start;

    if (p->tok.kind == T_EOF)
        return "the end of the expression";
    if (n > 24)
        snprintf(buf, size, "'%.24s...'", p->src + p->tok.start);
    else
        snprintf(buf, size, "'%.*s'", (int)n, p->src + p->tok.start);
    return buf;
}

static int is_kw(const parser_t *p, const char *kw)
{
    size_t n = strlen(kw);
    return p->tok.kind == T_IDENT && p->tok.end - p->tok.start == n &&
           memcmp(p->src + p->tok.start, kw, n) == 0;
}

/* ------------------------------------------------------------------------
 * The parser
 */

static node_t *parse_expr(parser_t *p);

static node_t *node_new(parser_t *p, node_kind_t kind, size_t pos, size_t nkids)
{
    node_t *n = pt_arena_calloc(p->ev.a, sizeof(*n));

    if (n == NULL ||
        (nkids && (n->kids = pt_arena_calloc(p->ev.a, nkids * sizeof(node_t *))) == NULL)) {
        ev_oom(&p->ev);
        return NULL;
    }
    n->kind = kind;
    n->pos = pos;
    n->nkids = nkids;
    return n;
}

static node_t *const_node(parser_t *p, const pt_json_t *v, size_t pos)
{
    node_t *n;

    if (v == NULL) {
        ev_oom(&p->ev);
        return NULL;
    }
    if ((n = node_new(p, N_CONST, pos, 0)) != NULL)
        n->value = v;
    return n;
}

/* A string constant: s[0..len) copied into the arena. */
static node_t *const_str(parser_t *p, const char *s, size_t len, size_t pos)
{
    pt_json_t *v = pt_arena_calloc(p->ev.a, sizeof(*v));
    char *c = pt_arena_strndup(p->ev.a, s, len);

    if (v == NULL || c == NULL) {
        ev_oom(&p->ev);
        return NULL;
    }
    v->type = PT_JSON_STRING;
    v->u.str.p = c;
    v->u.str.len = len;
    return const_node(p, v, pos);
}

/* Makes room for item n of arr (of *cap items of size bytes); returns the
 * array (maybe moved) or NULL. */
static void *grow(parser_t *p, void *arr, size_t *cap, size_t n, size_t size)
{
    size_t nc;
    void *q;

    if (n < *cap)
        return arr;
    nc = *cap ? *cap * 2 : 4;
    q = pt_arena_realloc(p->ev.a, arr, *cap * size, nc * size);
    if (q == NULL) {
        ev_oom(&p->ev);
        return NULL;
    }
    *cap = nc;
    return q;
}

/* Evaluates n now when its operands are constants (not for roots, now()). */
static node_t *fold(parser_t *p, node_t *n)
{
    const pt_json_t *v;
    size_t i;

    if (n->kind == N_ROOT || (n->kind == N_CALL && n->op == F_NOW))
        return n;
    for (i = 0; i < n->nkids; i++)
        if (n->kids[i]->kind != N_CONST)
            return n;
    for (i = 0; i < n->nsteps; i++)
        if (n->steps[i].index != NULL && n->steps[i].index->kind != N_CONST)
            return n;
    if ((v = eval(&p->ev, n)) == NULL)
        return NULL;
    n->kind = N_CONST;
    n->value = v;
    return n;
}

static int enter(parser_t *p)
{
    if (++p->depth > EXPR_MAX_NESTING) {
        perr(p, p->tok.start, "the expression is nested too deeply (at most %d levels)",
             EXPR_MAX_NESTING);
        return -1;
    }
    return 0;
}

static int find_fn(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < PT_ARRAY_SIZE(fns); i++)
        if (strlen(fns[i].name) == len && memcmp(fns[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

static node_t *parse_call(parser_t *p, const char *name, size_t len, size_t pos)
{
    node_t **kids = NULL, *arg, *n;
    size_t nk = 0, cap = 0, i, o = 0;
    const struct fn_def_s *fn;
    char known[400], counts[48];
    int id = find_fn(name, len);

    if (id < 0) {
        for (i = 0; i < PT_ARRAY_SIZE(fns) && o < sizeof(known); i++)
            o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", i ? ", " : "", fns[i].name);
        perr(p, pos, "unknown function \"%.*s\" (known: %s)", (int)PT_MIN(len, 40), name, known);
        return NULL;
    }
    fn = &fns[id];
    if (lex(p) != 0) /* the '(' */
        return NULL;
    if (p->tok.kind != T_RPAREN) {
        for (;;) {
            if ((arg = parse_expr(p)) == NULL ||
                (kids = grow(p, kids, &cap, nk, sizeof(*kids))) == NULL)
                return NULL;
            kids[nk++] = arg;
            if (p->tok.kind == T_COMMA) {
                if (lex(p) != 0)
                    return NULL;
                continue;
            }
            if (p->tok.kind == T_RPAREN)
                break;
            perr(p, p->tok.start, "expected ')' to close the call of %s", fn->name);
            return NULL;
        }
    }
    if (lex(p) != 0)
        return NULL;
    if (nk < fn->min || nk > fn->max) {
        if (fn->min == fn->max)
            snprintf(counts, sizeof(counts), "%u argument%s", fn->min, fn->min == 1 ? "" : "s");
        else if (fn->max == VARIADIC)
            snprintf(counts, sizeof(counts), "at least %u argument%s", fn->min,
                     fn->min == 1 ? "" : "s");
        else
            snprintf(counts, sizeof(counts), "%u to %u arguments", fn->min, fn->max);
        perr(p, pos, "%s takes %s, got %zu", fn->name, counts, nk);
        return NULL;
    }
    if ((n = node_new(p, N_CALL, pos, 0)) == NULL)
        return NULL;
    n->op = id;
    n->kids = kids;
    n->nkids = nk;
    return fold(p, n);
}

static int check_root(parser_t *p, const char *name, size_t len, size_t pos)
{
    char known[300];
    size_t i, o = 0;

    if (p->roots == NULL)
        return 0;
    for (i = 0; p->roots[i] != NULL; i++)
        if (strlen(p->roots[i]) == len && memcmp(p->roots[i], name, len) == 0)
            return 0;
    known[0] = '\0';
    for (i = 0; p->roots[i] != NULL && o < sizeof(known); i++)
        o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", i ? ", " : "", p->roots[i]);
    perr(p, pos, "unknown name \"%.*s\" (known: %s)", (int)PT_MIN(len, 40), name,
         i ? known : "none");
    return -1;
}

static node_t *parse_array(parser_t *p)
{
    node_t **kids = NULL, *item, *n;
    size_t nk = 0, cap = 0, open = p->tok.start;

    if (lex(p) != 0)
        return NULL;
    if (p->tok.kind != T_RBRACK) {
        for (;;) {
            if ((item = parse_expr(p)) == NULL ||
                (kids = grow(p, kids, &cap, nk, sizeof(*kids))) == NULL)
                return NULL;
            kids[nk++] = item;
            if (p->tok.kind == T_COMMA) {
                if (lex(p) != 0)
                    return NULL;
                continue;
            }
            if (p->tok.kind == T_RBRACK)
                break;
            perr(p, p->tok.start, "expected ',' or ']' in the array opened at %zu", open);
            return NULL;
        }
    }
    if (lex(p) != 0 || (n = node_new(p, N_ARRAY, open, 0)) == NULL)
        return NULL;
    n->kids = kids;
    n->nkids = nk;
    return fold(p, n);
}

static node_t *parse_object(parser_t *p)
{
    node_t **kids = NULL, *value, *n;
    const char **keys = NULL, *key;
    size_t *lens = NULL, nk = 0, cap = 0, kcap = 0, lcap = 0, open = p->tok.start, klen, i, kpos;
    char buf[40];

    if (lex(p) != 0)
        return NULL;
    if (p->tok.kind != T_RBRACE) {
        for (;;) {
            kpos = p->tok.start;
            if (p->tok.kind == T_IDENT) {
                klen = p->tok.end - p->tok.start;
                key = pt_arena_strndup(p->ev.a, p->src + p->tok.start, klen);
                if (key == NULL) {
                    ev_oom(&p->ev);
                    return NULL;
                }
            } else if (p->tok.kind == T_STR) {
                key = p->tok.str;
                klen = p->tok.str_len;
                if (memchr(key, '\0', klen) != NULL) {
                    perr(p, kpos, "a key cannot contain a NUL character");
                    return NULL;
                }
            } else {
                perr(p, kpos,
                     "expected a key (a name or a string) in the object opened at %zu, found %s",
                     open, tok_desc(p, buf, sizeof(buf)));
                return NULL;
            }
            for (i = 0; i < nk; i++)
                if (lens[i] == klen && memcmp(keys[i], key, klen) == 0) {
                    perr(p, kpos, "duplicate key \"%.*s\"", (int)PT_MIN(klen, 40), key);
                    return NULL;
                }
            if (lex(p) != 0)
                return NULL;
            if (p->tok.kind != T_COLON) {
                perr(p, p->tok.start, "expected ':' after the key \"%.*s\"", (int)PT_MIN(klen, 40),
                     key);
                return NULL;
            }
            if (lex(p) != 0 || (value = parse_expr(p)) == NULL ||
                (kids = grow(p, kids, &cap, nk, sizeof(*kids))) == NULL ||
                (keys = grow(p, keys, &kcap, nk, sizeof(*keys))) == NULL ||
                (lens = grow(p, lens, &lcap, nk, sizeof(*lens))) == NULL)
                return NULL;
            kids[nk] = value;
            keys[nk] = key;
            lens[nk++] = klen;
            if (p->tok.kind == T_COMMA) {
                if (lex(p) != 0)
                    return NULL;
                continue;
            }
            if (p->tok.kind == T_RBRACE)
                break;
            perr(p, p->tok.start, "expected ',' or '}' in the object opened at %zu", open);
            return NULL;
        }
    }
    if (lex(p) != 0 || (n = node_new(p, N_OBJECT, open, 0)) == NULL)
        return NULL;
    n->kids = kids;
    n->nkids = nk;
    n->keys = keys;
    n->key_lens = lens;
    return fold(p, n);
}

static node_t *parse_primary(parser_t *p)
{
    size_t pos = p->tok.start, len;
    const char *name;
    node_t *n;
    char buf[40];

    switch (p->tok.kind) {
    case T_NUM:
        n = const_node(p, pt_json_number_text(p->ev.a, p->src + pos, p->tok.end - pos), pos);
        return n && lex(p) == 0 ? n : NULL;
    case T_STR:
        n = const_str(p, p->tok.str, p->tok.str_len, pos);
        return n && lex(p) == 0 ? n : NULL;
    case T_IDENT:
        if (is_kw(p, "null") || is_kw(p, "true") || is_kw(p, "false")) {
            n = const_node(p, is_kw(p, "null") ? &v_null : new_bool(is_kw(p, "true")), pos);
            return n && lex(p) == 0 ? n : NULL;
        }
        if (is_kw(p, "and") || is_kw(p, "or") || is_kw(p, "not"))
            break;
        name = p->src + pos;
        len = p->tok.end - pos;
        if (lex(p) != 0)
            return NULL;
        if (p->tok.kind == T_LPAREN)
            return parse_call(p, name, len, pos);
        if (check_root(p, name, len, pos) != 0 || (n = node_new(p, N_ROOT, pos, 0)) == NULL)
            return NULL;
        n->name = name;
        n->name_len = len;
        return n;
    case T_LPAREN:
        if (lex(p) != 0 || (n = parse_expr(p)) == NULL)
            return NULL;
        if (p->tok.kind != T_RPAREN) {
            perr(p, p->tok.start, "expected ')' to close '(' opened at %zu", pos);
            return NULL;
        }
        return lex(p) == 0 ? n : NULL;
    case T_LBRACK:
        return parse_array(p);
    case T_LBRACE:
        return parse_object(p);
    default:
        break;
    }
    perr(p, pos, "expected an expression, found %s", tok_desc(p, buf, sizeof(buf)));
    return NULL;
}

static node_t *parse_postfix(parser_t *p)
{
    node_t *base = parse_primary(p), *n, *idx;
    step_t *steps = NULL;
    size_t ns = 0, cap = 0, open;

    if (base == NULL)
        return NULL;
    if (p->tok.kind != T_DOT && p->tok.kind != T_LBRACK)
        return base;
    while (p->tok.kind == T_DOT || p->tok.kind == T_LBRACK) {
        open = p->tok.start;
        if ((steps = grow(p, steps, &cap, ns, sizeof(*steps))) == NULL || lex(p) != 0)
            return NULL;
        memset(&steps[ns], 0, sizeof(steps[ns]));
        steps[ns].pos = open;
        if (p->src[open] == '.') {
            if (p->tok.kind != T_IDENT) {
                perr(p, p->tok.start, "expected a member name after '.'");
                return NULL;
            }
            steps[ns].name = p->src + p->tok.start;
            steps[ns].name_len = p->tok.end - p->tok.start;
            if (lex(p) != 0)
                return NULL;
        } else {
            if ((idx = parse_expr(p)) == NULL)
                return NULL;
            if (p->tok.kind != T_RBRACK) {
                perr(p, p->tok.start, "expected ']' to close the index opened at %zu", open);
                return NULL;
            }
            steps[ns].index = idx;
            if (lex(p) != 0)
                return NULL;
        }
        ns++;
    }
    if ((n = node_new(p, N_PATH, base->pos, 1)) == NULL)
        return NULL;
    n->kids[0] = base;
    n->steps = steps;
    n->nsteps = ns;
    return fold(p, n);
}

static node_t *parse_unary(parser_t *p)
{
    node_t *kid, *n;
    size_t pos = p->tok.start;

    if (p->tok.kind != T_MINUS)
        return parse_postfix(p);
    if (enter(p) != 0 || lex(p) != 0 || (kid = parse_unary(p)) == NULL)
        return NULL;
    p->depth--;
    if ((n = node_new(p, N_NEG, pos, 1)) == NULL)
        return NULL;
    n->kids[0] = kid;
    return fold(p, n);
}

static node_t *parse_add(parser_t *p)
{
    node_t *first = parse_unary(p), *kid, *n, **kids = NULL;
    char *ops = NULL;
    size_t nk = 0, cap = 0, ocap = 0, pos;

    if (first == NULL)
        return NULL;
    if (p->tok.kind != T_PLUS && p->tok.kind != T_MINUS)
        return first;
    pos = p->tok.start;
    if ((kids = grow(p, kids, &cap, nk, sizeof(*kids))) == NULL ||
        (ops = grow(p, ops, &ocap, nk, 1)) == NULL)
        return NULL;
    ops[0] = 0;
    kids[nk++] = first;
    while (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS) {
        char op = p->tok.kind == T_PLUS ? '+' : '-';
        if (lex(p) != 0 || (kid = parse_unary(p)) == NULL ||
            (kids = grow(p, kids, &cap, nk, sizeof(*kids))) == NULL ||
            (ops = grow(p, ops, &ocap, nk, 1)) == NULL)
            return NULL;
        ops[nk] = op;
        kids[nk++] = kid;
    }
    if ((n = node_new(p, N_ARITH, pos, 0)) == NULL)
        return NULL;
    n->kids = kids;
    n->nkids = nk;
    n->ops = ops;
    return fold(p, n);
}

static int cmp_op(const parser_t *p)
{
    switch (p->tok.kind) {
    case T_EQ:
        return CMP_EQ;
    case T_NE:
        return CMP_NE;
    case T_LT:
        return CMP_LT;
    case T_LE:
        return CMP_LE;
    case T_GT:
        return CMP_GT;
    case T_GE:
        return CMP_GE;
    default:
        return -1;
    }
}

static node_t *parse_cmp(parser_t *p)
{
    node_t *l = parse_add(p), *r, *n;
    size_t pos;
    int op;

    if (l == NULL || (op = cmp_op(p)) < 0)
        return l;
    pos = p->tok.start;
    if (lex(p) != 0 || (r = parse_add(p)) == NULL)
        return NULL;
    if (cmp_op(p) >= 0) {
        perr(p, p->tok.start, "comparisons cannot be chained (join them with && or ||)");
        return NULL;
    }
    if ((n = node_new(p, N_CMP, pos, 2)) == NULL)
        return NULL;
    n->op = op;
    n->kids[0] = l;
    n->kids[1] = r;
    return fold(p, n);
}

static node_t *parse_not(parser_t *p)
{
    node_t *kid, *n;
    size_t pos = p->tok.start;

    if (p->tok.kind != T_NOT && !is_kw(p, "not"))
        return parse_cmp(p);
    if (enter(p) != 0 || lex(p) != 0 || (kid = parse_not(p)) == NULL)
        return NULL;
    p->depth--;
    if ((n = node_new(p, N_NOT, pos, 1)) == NULL)
        return NULL;
    n->kids[0] = kid;
    return fold(p, n);
}

static int at_logic(const parser_t *p, int is_or)
{
    return is_or ? p->tok.kind == T_OR || is_kw(p, "or") : p->tok.kind == T_AND || is_kw(p, "and");
}

/* or := and (("||" | "or") and)*, and := not (("&&" | "and") not)* */
static node_t *parse_logic(parser_t *p, int is_or)
{
    node_t *first = is_or ? parse_logic(p, 0) : parse_not(p), *kid, *n, **kids = NULL;
    size_t nk = 0, cap = 0, pos;

    if (first == NULL || !at_logic(p, is_or))
        return first;
    pos = p->tok.start;
    if ((kids = grow(p, kids, &cap, nk, sizeof(*kids))) == NULL)
        return NULL;
    kids[nk++] = first;
    while (at_logic(p, is_or)) {
        if (lex(p) != 0 || (kid = is_or ? parse_logic(p, 0) : parse_not(p)) == NULL ||
            (kids = grow(p, kids, &cap, nk, sizeof(*kids))) == NULL)
            return NULL;
        kids[nk++] = kid;
    }
    if ((n = node_new(p, is_or ? N_OR : N_AND, pos, 0)) == NULL)
        return NULL;
    n->kids = kids;
    n->nkids = nk;
    return fold(p, n);
}

static node_t *parse_expr(parser_t *p)
{
    node_t *n;

    if (enter(p) != 0)
        return NULL;
    n = parse_logic(p, 1);
    p->depth--;
    return n;
}

/* text with ${expr} parts; "$$" is "$". */
static node_t *parse_template(parser_t *p, int url)
{
    const char *s = p->src;
    size_t i = 0, j, n = p->len, np = 0, cap = 0, ll = 0, lcap = 0, open;
    node_t **parts = NULL, *e, *t;
    char *lit = NULL;
    int dollars;

    while (i <= n) {
        /* The literal text up to the next "${" (or the end) is one part. */
        if (i == n || (s[i] == '$' && i + 1 < n && s[i + 1] == '{')) {
            if (ll > 0) {
                if ((e = const_str(p, lit, ll, i)) == NULL ||
                    (parts = grow(p, parts, &cap, np, sizeof(*parts))) == NULL)
                    return NULL;
                e->op = LITERAL_PART;
                parts[np++] = e;
                ll = 0;
            }
            if (i == n)
                break;
            open = i;
            p->pos = i + 2;
            p->depth = 0;
            if (lex(p) != 0 || (e = parse_expr(p)) == NULL)
                return NULL;
            if (p->tok.kind != T_RBRACE) {
                perr(p, p->tok.start, "expected '}' to close '${' opened at %zu", open);
                return NULL;
            }
            if ((parts = grow(p, parts, &cap, np, sizeof(*parts))) == NULL)
                return NULL;
            parts[np++] = e;
            i = p->tok.end;
            continue;
        }
        j = i + 1;
        dollars = s[i] == '$' && j < n && s[j] == '$';
        if (dollars)
            j++; /* "$$": one '$' */
        else
            while (j < n && s[j] != '$')
                j++;
        while (lcap - ll < j - i + 1)
            if ((lit = grow(p, lit, &lcap, lcap, 1)) == NULL)
                return NULL;
        memcpy(lit + ll, s + i, dollars ? 1 : j - i);
        ll += dollars ? 1 : j - i;
        i = j;
    }
    if (np == 0)
        return const_node(p, &s_empty, 0);
    if (np == 1 && parts[0]->kind == N_CONST && parts[0]->op == LITERAL_PART)
        return parts[0];
    if (np == 1 && !url && parts[0]->kind == N_CONST && parts[0]->value->type == PT_JSON_STRING)
        return parts[0];
    if ((t = node_new(p, N_TEMPLATE, 0, 0)) == NULL)
        return NULL;
    t->op = url ? TEMPLATE_URL : 0;
    t->kids = parts;
    t->nkids = np;
    return fold(p, t);
}

static pt_expr_t *compile(pt_arena_t *a, const char *src, size_t len, const char *const *roots,
                          char *err, size_t errlen, int template)
{
    parser_t p;
    pt_expr_t *e;
    char *copy;
    node_t *root;
    size_t bad;
    char buf[40];

    memset(&p, 0, sizeof(p));
    p.ev.a = a;
    p.ev.err = err;
    p.ev.errlen = errlen;
    p.roots = roots;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (src == NULL)
        len = 0;
    if (len > EXPR_MAX_SOURCE) {
        perr(&p, 0, "the %s is longer than 64 KiB", template ? "template" : "expression");
        return NULL;
    }
    if ((bad = utf8_check(src ? src : "", len)) < len) {
        perr(&p, bad, "invalid UTF-8");
        return NULL;
    }
    e = pt_arena_calloc(a, sizeof(*e));
    copy = pt_arena_strndup(a, src ? src : "", len);
    if (e == NULL || copy == NULL) {
        ev_oom(&p.ev);
        return NULL;
    }
    /* Names in the tree point into the copy. */
    p.src = copy;
    p.len = len;
    if (template) {
        root = parse_template(&p, template == 2);
    } else if (lex(&p) != 0 || (root = parse_expr(&p)) == NULL) {
        root = NULL;
    } else if (p.tok.kind != T_EOF) {
        perr(&p, p.tok.start, "unexpected %s after the end of the expression",
             tok_desc(&p, buf, sizeof(buf)));
        root = NULL;
    }
    if (root == NULL || p.ev.failed) {
        if (err != NULL && errlen > 0 && err[0] == '\0')
            snprintf(err, errlen, "invalid expression");
        return NULL;
    }
    e->root = root;
    e->src = copy;
    e->len = len;
    return e;
}

pt_expr_t *pt_expr_compile(pt_arena_t *a, const char *src, size_t len, const char *const *roots,
                           char *err, size_t errlen)
{
    return compile(a, src, len, roots, err, errlen, 0);
}

pt_expr_t *pt_expr_compile_template(pt_arena_t *a, const char *src, size_t len,
                                    const char *const *roots, char *err, size_t errlen)
{
    return compile(a, src, len, roots, err, errlen, 1);
}

pt_expr_t *pt_expr_compile_url_template(pt_arena_t *a, const char *src, size_t len,
                                        const char *const *roots, char *err, size_t errlen)
{
    return compile(a, src, len, roots, err, errlen, 2);
}

pt_json_t *pt_expr_eval(const pt_expr_t *e, const pt_json_t *ctx, pt_arena_t *a, char *err,
                        size_t errlen)
{
    const pt_json_t *v;
    ev_t ev;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (e->root->kind == N_CONST)
        return (pt_json_t *)e->root->value;
    memset(&ev, 0, sizeof(ev));
    ev.ctx = ctx;
    ev.a = a;
    ev.err = err;
    ev.errlen = errlen;
    v = eval(&ev, e->root);
    if (v == NULL && err != NULL && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "the evaluation failed");
    return (pt_json_t *)v;
}

const char *pt_expr_source(const pt_expr_t *e)
{
    return e->src;
}

const pt_json_t *pt_expr_constant(const pt_expr_t *e)
{
    return e->root->kind == N_CONST ? e->root->value : NULL;
}
