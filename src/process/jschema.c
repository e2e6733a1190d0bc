/*
 * jschema.c - a JSON Schema subset: compilation of named schemas and
 * validation of JSON values against them (see jschema.h).
 *
 * Compilation turns each schema document into a tree of pt_jschema_t nodes
 * in the caller's arena. A set is compiled in two passes: the first takes a
 * node for every named schema, the second compiles each document into its
 * node, so that a "$ref" simply points at the node of its target whether the
 * target was compiled before, is compiled later, or is the schema itself.
 *
 * Validation walks the value and the schema together and never allocates
 * for a valid value: the JSON pointer of the current place is kept as a stack
 * of segments and written out only when a violation is reported.
 *
 * Numbers are compared on their decimal text (sign, significant digits,
 * exponent), never through a double, so that bounds hold exactly for
 * integers beyond 2^53 and for long decimals.
 */
#include "process/jschema.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define PT_JSCHEMA_MAX_NESTING  64  /* schema levels (properties/items) */
#define PT_JSCHEMA_MAX_DEPTH    256 /* validation recursion (values and $ref) */
#define PT_JSCHEMA_REF_PREFIX   "#/schemas/"
#define PT_JSCHEMA_ENUM_MSG_MAX 256 /* bytes of values listed in an enum message */

/* Types of the "type" keyword, as bits. */
enum {
    T_NULL = 1 << 0,
    T_BOOLEAN = 1 << 1,
    T_INTEGER = 1 << 2,
    T_NUMBER = 1 << 3,
    T_STRING = 1 << 4,
    T_ARRAY = 1 << 5,
    T_OBJECT = 1 << 6
};

typedef enum jformat_e { F_NONE = 0, F_DATE, F_DATE_TIME, F_EMAIL, F_UUID, F_URI } jformat_t;

/* A number's text taken apart: value = 0.D * 10^e where D is the digit
 * string of n significant digits (no leading or trailing zeros), read
 * through jdec_digit(). Zero has n == 0. */
typedef struct jdec_s {
    int neg;
    const char *ip; /* integer part digits as written */
    size_t il;
    const char *fp; /* fraction digits as written */
    size_t fl;
    size_t s; /* index of the first significant digit in ip || fp */
    size_t n; /* number of significant digits */
    int64_t e;
} jdec_t;

/* A numeric bound: the schema's number and whether it is exclusive. */
typedef struct jbound_s {
    const pt_json_t *num; /* NULL: no bound */
    jdec_t dec;
    int exclusive;
} jbound_t;

typedef struct jprop_s {
    const char *key;
    size_t key_len;
    pt_jschema_t *schema;
} jprop_t;

struct pt_jschema_s {
    const pt_json_t *doc;
    const pt_jschema_t *ref; /* "$ref" target (a named schema) or NULL */
    unsigned types;          /* T_* bits; 0: any type */
    int nullable;
    int read_only, write_only;
    jformat_t format;
    jprop_t *props; /* sorted by key (length, then bytes) for bsearch */
    size_t nprops;
    const pt_json_member_t **required; /* the strings of "required" */
    size_t nrequired;
    int additional; /* additionalProperties, default 1 */
    const pt_jschema_t *items;
    uint64_t min_items, max_items, min_length, max_length; /* max: UINT64_MAX = none */
    const pt_json_t *enumv;                                /* array, or NULL */
    const pt_json_t *constv;                               /* or NULL */
    jbound_t min, max;
};

struct pt_jschema_set_s {
    size_t n;
    const char **names;
    size_t *name_lens;
    pt_jschema_t **schemas;
};

/* ---------------------------------------------------------------------
 * Decimal numbers
 */

static char jdec_digit(const jdec_t *d, size_t k)
{
    size_t i = d->s + k;
    return i < d->il ? d->ip[i] : d->fp[i - d->il];
}

/* Takes apart the JSON number text p[0..len). Returns 0, or -1 when the text
 * is not a JSON number (never for values from the parser or the builders). */
static int jdec_parse(jdec_t *d, const char *p, size_t len)
{
    const char *end = p + len;
    int64_t exp = 0;
    int eneg = 0;
    size_t total, i;

    memset(d, 0, sizeof(*d));
    if (p < end && *p == '-') {
        d->neg = 1;
        p++;
    }
    d->ip = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    d->il = (size_t)(p - d->ip);
    if (d->il == 0)
        return -1;
    d->fp = p;
    if (p < end && *p == '.') {
        d->fp = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        d->fl = (size_t)(p - d->fp);
        if (d->fl == 0)
            return -1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int ndig = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        while (p < end && *p >= '0' && *p <= '9') {
            /* Saturate: beyond 10^17 the exponent dominates any digit count
             * that fits in memory. */
            if (exp < 100000000000000000LL)
                exp = exp * 10 + (*p - '0');
            p++;
            ndig++;
        }
        if (ndig == 0)
            return -1;
    }
    if (p != end)
        return -1;
    total = d->il + d->fl;
    for (i = 0; i < total; i++) {
        size_t k = i;
        char c = k < d->il ? d->ip[k] : d->fp[k - d->il];
        if (c != '0')
            break;
    }
    if (i == total) {
        d->n = 0; /* zero, whatever its sign */
        d->neg = 0;
        return 0;
    }
    d->s = i;
    d->n = total - i;
    while (d->n > 0 && jdec_digit(d, d->n - 1) == '0')
        d->n--;
    /* value = D(all digits) * 10^(exp - fl) = 0.D' * 10^(total - s + exp - fl) */
    d->e = (int64_t)(total - d->s) - (int64_t)d->fl + (eneg ? -exp : exp);
    return 0;
}

/* Compares two decimals exactly: <0, 0 or >0. */
static int jdec_cmp(const jdec_t *x, const jdec_t *y)
{
    int sx = x->n == 0 ? 0 : x->neg ? -1 : 1;
    int sy = y->n == 0 ? 0 : y->neg ? -1 : 1;
    int mag = 0;
    size_t k, n;

    if (sx != sy)
        return sx < sy ? -1 : 1;
    if (sx == 0)
        return 0;
    if (x->e != y->e) {
        mag = x->e < y->e ? -1 : 1;
    } else {
        n = x->n > y->n ? x->n : y->n;
        for (k = 0; k < n && mag == 0; k++) {
            char a = k < x->n ? jdec_digit(x, k) : '0';
            char b = k < y->n ? jdec_digit(y, k) : '0';
            if (a != b)
                mag = a < b ? -1 : 1;
        }
    }
    return sx < 0 ? -mag : mag;
}

static int jdec_is_integer(const jdec_t *d)
{
    return d->n == 0 || (d->e > 0 && (uint64_t)d->e >= d->n);
}

/* The value of a non-negative integral decimal, saturated at UINT64_MAX. */
static uint64_t jdec_to_u64(const jdec_t *d)
{
    uint64_t v = 0;
    int64_t k;

    if (d->n == 0)
        return 0;
    if (d->e > 20)
        return UINT64_MAX;
    for (k = 0; k < d->e; k++) {
        unsigned dig = (uint64_t)k < d->n ? (unsigned)(jdec_digit(d, (size_t)k) - '0') : 0;
        if (v > (UINT64_MAX - dig) / 10)
            return UINT64_MAX;
        v = v * 10 + dig;
    }
    return v;
}

/* ---------------------------------------------------------------------
 * JSON pointers: a stack of segments (a key or an array index)
 */

typedef struct jseg_s {
    const char *key; /* NULL: index */
    size_t len;      /* key length, or the index */
} jseg_t;

/* Bytes of the pointer of segs[0..n) with RFC 6901 escaping (~0, ~1). */
static size_t jptr_len(const jseg_t *segs, size_t n)
{
    size_t len = 0, i, j;
    char num[24];

    for (i = 0; i < n; i++) {
        len++;
        if (segs[i].key == NULL) {
            len += (size_t)snprintf(num, sizeof(num), "%zu", segs[i].len);
            continue;
        }
        for (j = 0; j < segs[i].len; j++)
            len += (segs[i].key[j] == '~' || segs[i].key[j] == '/') ? 2 : 1;
    }
    return len;
}

/* Writes the pointer into out (jptr_len + 1 bytes, NUL-terminated). */
static void jptr_write(char *out, const jseg_t *segs, size_t n)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        *out++ = '/';
        if (segs[i].key == NULL) {
            out += sprintf(out, "%zu", segs[i].len);
            continue;
        }
        for (j = 0; j < segs[i].len; j++) {
            char c = segs[i].key[j];
            if (c == '~') {
                *out++ = '~';
                *out++ = '0';
            } else if (c == '/') {
                *out++ = '~';
                *out++ = '1';
            } else {
                *out++ = c;
            }
        }
    }
    *out = '\0';
}

/* ---------------------------------------------------------------------
 * Compilation
 */

/* Schema levels of nesting give at most two segments each ("properties",
 * name) plus a keyword. */
#define CSEG_MAX (2 * PT_JSCHEMA_MAX_NESTING + 8)

typedef struct jcompile_s {
    pt_arena_t *a;
    const pt_jschema_set_t *set;
    const char *name; /* of the schema being compiled; NULL: anonymous */
    char *err;
    size_t errlen;
    jseg_t segs[CSEG_MAX];
    size_t nsegs;
} jcompile_t;

/* Fills err with "<name>: <pointer>: <message>" (parts left out when empty)
 * and returns -1. */
static int cfail(jcompile_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cfail(jcompile_t *c, const char *fmt, ...)
{
    char ptr[512], *p = NULL;
    size_t plen, off = 0;
    va_list ap;
    int n;

    if (c->err == NULL || c->errlen == 0)
        return -1;
    c->err[0] = '\0';
    if (c->name != NULL) {
        n = snprintf(c->err, c->errlen, "%s: ", c->name);
        off = n < 0 ? 0 : PT_MIN((size_t)n, c->errlen - 1);
    }
    plen = jptr_len(c->segs, c->nsegs);
    if (plen > 0 && off < c->errlen - 1) {
        p = plen < sizeof(ptr) ? ptr : malloc(plen + 1);
        if (p != NULL) {
            jptr_write(p, c->segs, c->nsegs);
            n = snprintf(c->err + off, c->errlen - off, "%s: ", p);
            off = n < 0 ? off : PT_MIN(off + (size_t)n, c->errlen - 1);
            if (p != ptr)
                free(p);
        }
    }
    if (off < c->errlen - 1) {
        va_start(ap, fmt);
        vsnprintf(c->err + off, c->errlen - off, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int key_is(const pt_json_member_t *m, const char *lit)
{
    size_t n = strlen(lit);
    return m->key_len == n && memcmp(m->key, lit, n) == 0;
}

/* Keywords of JSON Schema or OpenAPI refused on purpose: they would be
 * silently ignored otherwise, or need engines (regular expressions,
 * combinators) not provided here. */
/* clang-format off */
static const char *const unsupported_keywords[] = {
    "pattern", "multipleOf", "oneOf", "anyOf", "allOf", "not", "if", "then", "else",
    "patternProperties", "dependencies", "dependentRequired", "dependentSchemas",
    "propertyNames", "minProperties", "maxProperties", "uniqueItems", "contains",
    "minContains", "maxContains", "prefixItems", "additionalItems", "unevaluatedItems",
    "unevaluatedProperties", "discriminator", "$id", "$schema", "$defs", "definitions",
    "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
    "$vocabulary", "$comment", "contentEncoding", "contentMediaType", "contentSchema",
    "examples", "deprecated", "xml", "externalDocs"};
/* clang-format on */

static int type_bit(const pt_json_t *v)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"null", T_NULL},     {"boolean", T_BOOLEAN}, {"integer", T_INTEGER},
                 {"number", T_NUMBER}, {"string", T_STRING},   {"array", T_ARRAY},
                 {"object", T_OBJECT}};
    size_t i;

    if (v->type != PT_JSON_STRING)
        return -1;
    for (i = 0; i < PT_ARRAY_SIZE(names); i++)
        if (v->u.str.len == strlen(names[i].name) &&
            memcmp(v->u.str.p, names[i].name, v->u.str.len) == 0)
            return (int)names[i].bit;
    return 0;
}

/* A non-negative integer keyword into *out (saturated). */
static int c_count(jcompile_t *c, const pt_json_member_t *m, uint64_t *out)
{
    jdec_t d;

    if (m->value->type != PT_JSON_NUMBER ||
        jdec_parse(&d, m->value->u.str.p, m->value->u.str.len) != 0 || d.neg ||
        !jdec_is_integer(&d))
        return cfail(c, "%s must be a non-negative integer", m->key);
    *out = jdec_to_u64(&d);
    return 0;
}

static int c_bound(jcompile_t *c, const pt_json_member_t *m, jbound_t *b)
{
    if (m->value->type != PT_JSON_NUMBER ||
        jdec_parse(&b->dec, m->value->u.str.p, m->value->u.str.len) != 0)
        return cfail(c, "%s must be a number", m->key);
    b->num = m->value;
    b->exclusive = 0;
    return 0;
}

static int prop_cmp(const void *x, const void *y)
{
    const jprop_t *a = x, *b = y;
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len ? -1 : 1;
    return memcmp(a->key, b->key, a->key_len);
}

static int c_node(jcompile_t *c, pt_jschema_t *s, const pt_json_t *doc, unsigned level);

/* Resolves "$ref": "#/schemas/<name>" (name escaped as a JSON pointer token). */
static int c_ref(jcompile_t *c, pt_jschema_t *s, const pt_json_t *v)
{
    const size_t plen = sizeof(PT_JSCHEMA_REF_PREFIX) - 1;
    const char *p;
    char *name;
    size_t len, i, j;

    if (v->type != PT_JSON_STRING)
        return cfail(c, "$ref must be a string");
    p = v->u.str.p;
    len = v->u.str.len;
    if (len <= plen || memcmp(p, PT_JSCHEMA_REF_PREFIX, plen) != 0 ||
        memchr(p + plen, '/', len - plen) != NULL || memchr(p, '\0', len) != NULL)
        return cfail(c, "$ref must be of the form \"#/schemas/<name>\"");
    p += plen;
    len -= plen;
    name = pt_arena_alloc(c->a, len + 1);
    if (name == NULL)
        return cfail(c, "out of memory");
    for (i = 0, j = 0; i < len; i++) {
        if (p[i] == '~') {
            if (i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1')) {
                name[j++] = p[i + 1] == '0' ? '~' : '/';
                i++;
                continue;
            }
            return cfail(c, "$ref: bad escape in \"%s\"", v->u.str.p);
        }
        name[j++] = p[i];
    }
    name[j] = '\0';
    if (c->set != NULL) {
        for (i = 0; i < c->set->n; i++) {
            if (c->set->name_lens[i] == j && memcmp(c->set->names[i], name, j) == 0) {
                s->ref = c->set->schemas[i];
                return 0;
            }
        }
    }
    return cfail(c, "$ref: no schema named \"%s\"", name);
}

static int c_push(jcompile_t *c, const char *key, size_t len)
{
    if (c->nsegs >= CSEG_MAX)
        return cfail(c, "schema nested too deeply");
    c->segs[c->nsegs].key = key;
    c->segs[c->nsegs].len = len;
    c->nsegs++;
    return 0;
}

static int c_properties(jcompile_t *c, pt_jschema_t *s, const pt_json_member_t *m, unsigned level)
{
    const pt_json_t *v = m->value;
    size_t i;

    if (v->type != PT_JSON_OBJECT)
        return cfail(c, "properties must be an object");
    s->nprops = v->u.obj.n;
    if (s->nprops == 0)
        return 0;
    s->props = pt_arena_calloc(c->a, s->nprops * sizeof(*s->props));
    if (s->props == NULL)
        return cfail(c, "out of memory");
    for (i = 0; i < s->nprops; i++) {
        const pt_json_member_t *pm = &v->u.obj.members[i];
        jprop_t *p = &s->props[i];
        p->key = pm->key;
        p->key_len = pm->key_len;
        p->schema = pt_arena_calloc(c->a, sizeof(*p->schema));
        if (p->schema == NULL)
            return cfail(c, "out of memory");
        if (c_push(c, "properties", 10) != 0 || c_push(c, pm->key, pm->key_len) != 0)
            return -1;
        if (c_node(c, p->schema, pm->value, level + 1) != 0)
            return -1;
        c->nsegs -= 2;
    }
    qsort(s->props, s->nprops, sizeof(*s->props), prop_cmp);
    return 0;
}

static int c_required(jcompile_t *c, pt_jschema_t *s, const pt_json_t *v)
{
    size_t i, j;

    if (v->type != PT_JSON_ARRAY)
        return cfail(c, "required must be an array of strings");
    s->nrequired = v->u.arr.n;
    if (s->nrequired == 0)
        return 0;
    s->required = pt_arena_alloc(c->a, s->nrequired * sizeof(*s->required));
    if (s->required == NULL)
        return cfail(c, "out of memory");
    for (i = 0; i < v->u.arr.n; i++) {
        const pt_json_t *it = v->u.arr.items[i];
        pt_json_member_t *m;
        if (it->type != PT_JSON_STRING)
            return cfail(c, "required must be an array of strings");
        for (j = 0; j < i; j++)
            if (s->required[j]->key_len == it->u.str.len &&
                memcmp(s->required[j]->key, it->u.str.p, it->u.str.len) == 0)
                return cfail(c, "required lists \"%s\" twice", it->u.str.p);
        /* Kept as a member so that validation reports it like a key. */
        m = pt_arena_alloc(c->a, sizeof(*m));
        if (m == NULL)
            return cfail(c, "out of memory");
        m->key = it->u.str.p;
        m->key_len = it->u.str.len;
        m->value = NULL;
        s->required[i] = m;
    }
    return 0;
}

static int c_type(jcompile_t *c, pt_jschema_t *s, const pt_json_t *v)
{
    size_t i;
    int bit;

    if (v->type == PT_JSON_STRING) {
        if ((bit = type_bit(v)) <= 0)
            return cfail(c, "type \"%s\" is not a JSON Schema type", v->u.str.p);
        s->types = (unsigned)bit;
        return 0;
    }
    if (v->type != PT_JSON_ARRAY || v->u.arr.n == 0)
        return cfail(c, "type must be a type name or a non-empty array of them");
    for (i = 0; i < v->u.arr.n; i++) {
        bit = type_bit(v->u.arr.items[i]);
        if (bit < 0)
            return cfail(c, "type must be a type name or a non-empty array of them");
        if (bit == 0)
            return cfail(c, "type \"%s\" is not a JSON Schema type", v->u.arr.items[i]->u.str.p);
        if (s->types & (unsigned)bit)
            return cfail(c, "type lists \"%s\" twice", v->u.arr.items[i]->u.str.p);
        s->types |= (unsigned)bit;
    }
    return 0;
}

static int c_format(jcompile_t *c, pt_jschema_t *s, const pt_json_t *v)
{
    static const struct {
        const char *name;
        jformat_t f;
    } formats[] = {{"date", F_DATE},
                   {"date-time", F_DATE_TIME},
                   {"email", F_EMAIL},
                   {"uuid", F_UUID},
                   {"uri", F_URI}};
    size_t i;

    if (v->type != PT_JSON_STRING)
        return cfail(c, "format must be a string");
    for (i = 0; i < PT_ARRAY_SIZE(formats); i++)
        if (v->u.str.len == strlen(formats[i].name) &&
            memcmp(v->u.str.p, formats[i].name, v->u.str.len) == 0) {
            s->format = formats[i].f;
            return 0;
        }
    return cfail(c, "format \"%s\" is not supported (date, date-time, email, uuid, uri are)",
                 v->u.str.p);
}

static int c_bool(jcompile_t *c, const pt_json_member_t *m, int *out)
{
    if (m->value->type != PT_JSON_TRUE && m->value->type != PT_JSON_FALSE)
        return cfail(c, "%s must be a boolean", m->key);
    *out = m->value->type == PT_JSON_TRUE;
    return 0;
}

/* Compiles the schema document doc into s (zeroed), level schemas deep. */
static int c_node(jcompile_t *c, pt_jschema_t *s, const pt_json_t *doc, unsigned level)
{
    const pt_json_member_t *excl_min = NULL, *excl_max = NULL;
    size_t i, k;

    if (level > PT_JSCHEMA_MAX_NESTING)
        return cfail(c, "schema nested too deeply (more than %d levels)", PT_JSCHEMA_MAX_NESTING);
    if (doc->type != PT_JSON_OBJECT)
        return cfail(c, "a schema must be an object");
    s->doc = doc;
    s->additional = 1;
    s->max_items = UINT64_MAX;
    s->max_length = UINT64_MAX;

    for (i = 0; i < doc->u.obj.n; i++) {
        const pt_json_member_t *m = &doc->u.obj.members[i];
        const pt_json_t *v = m->value;
        int rc = 0;

        if (key_is(m, "type")) {
            rc = c_type(c, s, v);
        } else if (key_is(m, "nullable")) {
            rc = c_bool(c, m, &s->nullable);
        } else if (key_is(m, "properties")) {
            rc = c_properties(c, s, m, level);
        } else if (key_is(m, "required")) {
            rc = c_required(c, s, v);
        } else if (key_is(m, "additionalProperties")) {
            if (v->type == PT_JSON_OBJECT)
                rc = cfail(c, "additionalProperties must be a boolean (schemas are not "
                              "supported)");
            else
                rc = c_bool(c, m, &s->additional);
        } else if (key_is(m, "items")) {
            pt_jschema_t *it;
            if (v->type != PT_JSON_OBJECT)
                return cfail(c, "items must be a schema (an object)");
            it = pt_arena_calloc(c->a, sizeof(*it));
            if (it == NULL)
                return cfail(c, "out of memory");
            if (c_push(c, "items", 5) != 0 || c_node(c, it, v, level + 1) != 0)
                return -1;
            c->nsegs--;
            s->items = it;
        } else if (key_is(m, "minItems")) {
            rc = c_count(c, m, &s->min_items);
        } else if (key_is(m, "maxItems")) {
            rc = c_count(c, m, &s->max_items);
        } else if (key_is(m, "minLength")) {
            rc = c_count(c, m, &s->min_length);
        } else if (key_is(m, "maxLength")) {
            rc = c_count(c, m, &s->max_length);
        } else if (key_is(m, "format")) {
            rc = c_format(c, s, v);
        } else if (key_is(m, "enum")) {
            if (v->type != PT_JSON_ARRAY || v->u.arr.n == 0)
                rc = cfail(c, "enum must be a non-empty array");
            s->enumv = v;
        } else if (key_is(m, "const")) {
            s->constv = v;
        } else if (key_is(m, "minimum")) {
            rc = c_bound(c, m, &s->min);
        } else if (key_is(m, "maximum")) {
            rc = c_bound(c, m, &s->max);
        } else if (key_is(m, "exclusiveMinimum")) {
            excl_min = m; /* after the loop: it may be OpenAPI 3.0's boolean */
        } else if (key_is(m, "exclusiveMaximum")) {
            excl_max = m;
        } else if (key_is(m, "readOnly")) {
            rc = c_bool(c, m, &s->read_only);
        } else if (key_is(m, "writeOnly")) {
            rc = c_bool(c, m, &s->write_only);
        } else if (key_is(m, "description") || key_is(m, "title")) {
            if (v->type != PT_JSON_STRING)
                rc = cfail(c, "%s must be a string", m->key);
        } else if (key_is(m, "example") || key_is(m, "default")) {
            /* kept in the document for contracts */
        } else if (key_is(m, "$ref")) {
            rc = c_ref(c, s, v);
        } else {
            for (k = 0; k < PT_ARRAY_SIZE(unsupported_keywords); k++)
                if (key_is(m, unsupported_keywords[k]))
                    return cfail(c, "%s is not supported", m->key);
            return cfail(c, "unknown keyword \"%s\"", m->key);
        }
        if (rc != 0)
            return -1;
    }

    /* exclusiveMinimum/Maximum: a number (JSON Schema) is a bound of its own;
     * a boolean (OpenAPI 3.0) makes minimum/maximum exclusive. With both a
     * number and minimum, the stricter bound wins. */
    for (k = 0; k < 2; k++) {
        const pt_json_member_t *m = k == 0 ? excl_min : excl_max;
        jbound_t *bd = k == 0 ? &s->min : &s->max;
        const char *plain = k == 0 ? "minimum" : "maximum";
        jbound_t nb;

        if (m == NULL)
            continue;
        if (m->value->type == PT_JSON_TRUE || m->value->type == PT_JSON_FALSE) {
            if (bd->num == NULL)
                return cfail(c, "%s as a boolean needs %s", m->key, plain);
            bd->exclusive = m->value->type == PT_JSON_TRUE;
            continue;
        }
        if (m->value->type != PT_JSON_NUMBER ||
            jdec_parse(&nb.dec, m->value->u.str.p, m->value->u.str.len) != 0)
            return cfail(c, "%s must be a number or a boolean", m->key);
        nb.num = m->value;
        nb.exclusive = 1;
        if (bd->num != NULL) {
            int cmp = jdec_cmp(&nb.dec, &bd->dec);
            /* Exclusive x vs inclusive y: x is stricter when x >= y for a
             * minimum, x <= y for a maximum. */
            if (k == 0 ? cmp < 0 : cmp > 0)
                continue;
        }
        *bd = nb;
    }

    if (s->read_only && s->write_only)
        return cfail(c, "readOnly and writeOnly cannot both be true");
    if (s->min_length > s->max_length)
        return cfail(c, "minLength must not be greater than maxLength");
    if (s->min_items > s->max_items)
        return cfail(c, "minItems must not be greater than maxItems");
    if (s->min.num != NULL && s->max.num != NULL && jdec_cmp(&s->min.dec, &s->max.dec) > 0)
        return cfail(c, "minimum must not be greater than maximum");
    return 0;
}

/* A $ref chain that returns to where it started without going through
 * properties or items would make validation loop on the same value. */
static int c_check_ref_cycles(jcompile_t *c, const pt_jschema_set_t *set)
{
    size_t i, steps;

    for (i = 0; i < set->n; i++) {
        const pt_jschema_t *r = set->schemas[i];
        for (steps = 0; r->ref != NULL; steps++) {
            if (steps > set->n) {
                c->name = set->names[i];
                c->nsegs = 0;
                return cfail(c, "$ref cycle that goes through no properties or items");
            }
            r = r->ref;
        }
    }
    return 0;
}

/* Compiles the named schemas of defs (see jschema.h). The set, its names and
 * nodes live in arena a (and point into defs, which must outlive them). */
pt_jschema_set_t *pt_jschema_compile(pt_arena_t *a, const pt_json_t *defs, char *err, size_t errlen)
{
    pt_jschema_set_t *set;
    jcompile_t c;
    size_t i, n;

    memset(&c, 0, sizeof(c));
    c.a = a;
    c.err = err;
    c.errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (defs == NULL || defs->type != PT_JSON_OBJECT) {
        cfail(&c, "schemas must be an object (name -> schema)");
        return NULL;
    }
    n = defs->u.obj.n;
    set = pt_arena_calloc(a, sizeof(*set));
    if (set == NULL)
        goto nomem;
    set->n = n;
    if (n > 0) {
        set->names = pt_arena_alloc(a, n * sizeof(*set->names));
        set->name_lens = pt_arena_alloc(a, n * sizeof(*set->name_lens));
        set->schemas = pt_arena_alloc(a, n * sizeof(*set->schemas));
        if (set->names == NULL || set->name_lens == NULL || set->schemas == NULL)
            goto nomem;
    }
    /* Pass 1: a node for every name, so that $ref can point anywhere. */
    for (i = 0; i < n; i++) {
        set->names[i] = defs->u.obj.members[i].key;
        set->name_lens[i] = defs->u.obj.members[i].key_len;
        set->schemas[i] = pt_arena_calloc(a, sizeof(**set->schemas));
        if (set->schemas[i] == NULL)
            goto nomem;
    }
    /* Pass 2: compile each document into its node. */
    c.set = set;
    for (i = 0; i < n; i++) {
        c.name = set->names[i];
        c.nsegs = 0;
        if (c_node(&c, set->schemas[i], defs->u.obj.members[i].value, 0) != 0)
            return NULL;
    }
    if (c_check_ref_cycles(&c, set) != 0)
        return NULL;
    return set;

nomem:
    cfail(&c, "out of memory");
    return NULL;
}

/* The compiled schema of that name in set, or NULL (also for a NULL set). */
const pt_jschema_t *pt_jschema_get(const pt_jschema_set_t *set, const char *name)
{
    size_t i, len;

    if (set == NULL || name == NULL)
        return NULL;
    len = strlen(name);
    for (i = 0; i < set->n; i++)
        if (set->name_lens[i] == len && memcmp(set->names[i], name, len) == 0)
            return set->schemas[i];
    return NULL;
}

/* Compiles one anonymous schema (its $refs resolve in set, which may be
 * NULL). Errors have no schema name, only the pointer and the message. */
const pt_jschema_t *pt_jschema_compile_one(pt_arena_t *a, const pt_jschema_set_t *set,
                                           const pt_json_t *doc, char *err, size_t errlen)
{
    pt_jschema_t *s;
    jcompile_t c;

    memset(&c, 0, sizeof(c));
    c.a = a;
    c.set = set;
    c.err = err;
    c.errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (doc == NULL) {
        cfail(&c, "a schema must be an object");
        return NULL;
    }
    s = pt_arena_calloc(a, sizeof(*s));
    if (s == NULL) {
        cfail(&c, "out of memory");
        return NULL;
    }
    if (c_node(&c, s, doc, 0) != 0)
        return NULL;
    return s;
}

const pt_json_t *pt_jschema_doc(const pt_jschema_t *s)
{
    return s != NULL ? s->doc : NULL;
}

/* ---------------------------------------------------------------------
 * Formats
 */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* n digits at p as a number, or -1. */
static int digits(const char *p, int n)
{
    int v = 0, i;
    for (i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* full-date of RFC 3339: YYYY-MM-DD, a real day of the proleptic
 * Gregorian calendar. p has at least 10 bytes. */
static int check_full_date(const char *p)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = digits(p, 4), m = digits(p + 5, 2), d = digits(p + 8, 2), max;

    if (y < 0 || m < 0 || d < 0 || p[4] != '-' || p[7] != '-')
        return 0;
    if (m < 1 || m > 12 || d < 1)
        return 0;
    max = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        max = 29;
    return d <= max;
}

static int check_date(const char *p, size_t len)
{
    return len == 10 && check_full_date(p);
}

/* RFC 3339 date-time: full-date "T" partial-time time-offset, where
 * partial-time is HH:MM:SS[.frac] and time-offset "Z" or +HH:MM / -HH:MM.
 * "t" and "z" are allowed (RFC 3339 §5.6 note); seconds may be 60 (leap). */
static int check_date_time(const char *p, size_t len)
{
    size_t i;
    int h, mi, se;

    if (len < 20 || !check_full_date(p) || (p[10] != 'T' && p[10] != 't'))
        return 0;
    h = digits(p + 11, 2);
    mi = digits(p + 14, 2);
    se = digits(p + 17, 2);
    if (h < 0 || mi < 0 || se < 0 || p[13] != ':' || p[16] != ':' || h > 23 || mi > 59 || se > 60)
        return 0;
    i = 19;
    if (p[i] == '.') {
        size_t start = ++i;
        while (i < len && is_digit(p[i]))
            i++;
        if (i == start)
            return 0;
    }
    if (i < len && (p[i] == 'Z' || p[i] == 'z'))
        return i + 1 == len;
    if (i < len && (p[i] == '+' || p[i] == '-')) {
        if (len - i != 6 || p[i + 3] != ':')
            return 0;
        h = digits(p + i + 1, 2);
        mi = digits(p + i + 4, 2);
        return h >= 0 && mi >= 0 && h <= 23 && mi <= 59;
    }
    return 0;
}

/* A pragmatic address check, not RFC 5321's grammar: at most 254 bytes,
 * exactly one "@", a non-empty local part, a domain with a dot that neither
 * starts nor ends it, no whitespace or control characters anywhere. */
static int check_email(const char *p, size_t len)
{
    const char *at, *dom;
    size_t i, dl;

    if (len == 0 || len > 254)
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
            return 0;
    at = memchr(p, '@', len);
    if (at == NULL || at == p || memchr(at + 1, '@', len - (size_t)(at - p) - 1) != NULL)
        return 0;
    dom = at + 1;
    dl = len - (size_t)(dom - p);
    if (dl < 3 || memchr(dom, '.', dl) == NULL || dom[0] == '.' || dom[dl - 1] == '.')
        return 0;
    for (i = 0; i + 1 < dl; i++)
        if (dom[i] == '.' && dom[i + 1] == '.')
            return 0;
    return 1;
}

/* 8-4-4-4-12 hexadecimal digits, either case. */
static int check_uuid(const char *p, size_t len)
{
    size_t i;

    if (len != 36)
        return 0;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-')
                return 0;
        } else if (!is_hex(p[i])) {
            return 0;
        }
    }
    return 1;
}

/* An absolute URI (RFC 3986 §4.3): scheme ":" rest, where scheme is
 * ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), and rest uses only characters
 * a URI may contain (no spaces, controls, non-ASCII or "<>\"\\^`{|}"), with
 * "%" followed by two hex digits. The rest is not parsed further. */
static int check_uri(const char *p, size_t len)
{
    size_t i = 0;

    if (len == 0 || !is_alpha(p[0]))
        return 0;
    for (i = 1; i < len && p[i] != ':'; i++)
        if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '+' && p[i] != '-' && p[i] != '.')
            return 0;
    if (i == len)
        return 0;
    for (i++; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("<>\"\\^`{|}", ch) != NULL)
            return 0;
        if (ch == '%') {
            if (i + 2 >= len || !is_hex(p[i + 1]) || !is_hex(p[i + 2]))
                return 0;
            i += 2;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------
 * Validation
 */

typedef struct jvalidate_s {
    pt_arena_t *a;
    pt_jschema_mode_t mode;
    size_t max;
    pt_json_t *out; /* the violations array; NULL until the first one, or when not wanted */
    int want;       /* the caller wants the array */
    int count;
    int oom;
    jseg_t segs[PT_JSCHEMA_MAX_DEPTH + 2];
    size_t nsegs;
} jvalidate_t;

/* Records one violation at the current pointer (plus key/len when key is not
 * NULL: a member that is missing or not allowed). */
static void report_msg(jvalidate_t *v, const char *key, size_t klen, const char *msg, size_t mlen)
{
    pt_json_t *o, *ps, *ms;
    char *ptr;
    size_t plen;

    if (v->count < INT_MAX)
        v->count++;
    if (!v->want || v->oom || (size_t)v->count > v->max)
        return;
    if (key != NULL) {
        v->segs[v->nsegs].key = key;
        v->segs[v->nsegs].len = klen;
    }
    plen = jptr_len(v->segs, v->nsegs + (key != NULL));
    ptr = pt_arena_alloc(v->a, plen + 1);
    if (ptr == NULL)
        goto nomem;
    jptr_write(ptr, v->segs, v->nsegs + (key != NULL));
    if (v->out == NULL && (v->out = pt_json_array(v->a)) == NULL)
        goto nomem;
    if ((o = pt_json_object(v->a)) == NULL || (ps = pt_json_string(v->a, ptr, plen)) == NULL ||
        (ms = pt_json_string(v->a, msg, mlen)) == NULL ||
        pt_json_object_set(v->a, o, "pointer", 7, ps) != PT_OK ||
        pt_json_object_set(v->a, o, "message", 7, ms) != PT_OK ||
        pt_json_array_add(v->a, v->out, o) != PT_OK)
        goto nomem;
    return;
nomem:
    v->oom = 1;
}

static void report(jvalidate_t *v, const char *key, size_t klen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(jvalidate_t *v, const char *key, size_t klen, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    int n;

    /* Format only what will be kept. */
    if (!v->want || v->oom || (size_t)v->count >= v->max) {
        report_msg(v, NULL, 0, NULL, 0);
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    report_msg(v, key, klen, msg, PT_MIN((size_t)n, sizeof(msg) - 1));
}

static const char *type_phrase(unsigned bit)
{
    switch (bit) {
    case T_NULL:
        return "null";
    case T_BOOLEAN:
        return "a boolean";
    case T_INTEGER:
        return "an integer";
    case T_NUMBER:
        return "a number";
    case T_STRING:
        return "a string";
    case T_ARRAY:
        return "an array";
    default:
        return "an object";
    }
}

/* "must be a string, an integer or null" */
static void report_type(jvalidate_t *v, unsigned types)
{
    static const unsigned order[] = {T_OBJECT, T_ARRAY,   T_STRING, T_INTEGER,
                                     T_NUMBER, T_BOOLEAN, T_NULL};
    const char *names[PT_ARRAY_SIZE(order)];
    char msg[160];
    size_t n = 0, i, off;

    if (types & T_NUMBER)
        types &= ~(unsigned)T_INTEGER;
    for (i = 0; i < PT_ARRAY_SIZE(order); i++)
        if (types & order[i])
            names[n++] = type_phrase(order[i]);
    off = (size_t)snprintf(msg, sizeof(msg), "must be ");
    for (i = 0; i < n; i++)
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s",
                                i == 0       ? ""
                                : i + 1 == n ? " or "
                                             : ", ",
                                names[i]);
    report(v, NULL, 0, "%s", msg);
}

/* "must be one of: "a", "b"", the list cut after PT_JSCHEMA_ENUM_MSG_MAX bytes. */
static void report_enum(jvalidate_t *v, const pt_json_t *e)
{
    pt_buf_t b;
    size_t i;

    if (!v->want || v->oom || (size_t)v->count >= v->max) {
        report_msg(v, NULL, 0, NULL, 0);
        return;
    }
    pt_buf_init(&b, 0);
    if (pt_buf_append_str(&b, "must be one of: ") != PT_OK)
        goto nomem;
    for (i = 0; i < e->u.arr.n; i++) {
        if (b.len > PT_JSCHEMA_ENUM_MSG_MAX) {
            if (pt_buf_append_str(&b, ", ...") != PT_OK)
                goto nomem;
            break;
        }
        if ((i > 0 && pt_buf_append_str(&b, ", ") != PT_OK) ||
            pt_json_write(&b, e->u.arr.items[i]) != PT_OK)
            goto nomem;
    }
    report_msg(v, NULL, 0, b.data, b.len);
    pt_buf_free(&b);
    return;
nomem:
    pt_buf_free(&b);
    if (v->count < INT_MAX)
        v->count++;
    v->oom = 1;
}

static size_t utf8_chars(const char *p, size_t len)
{
    size_t n = 0, i;
    for (i = 0; i < len; i++)
        n += ((unsigned char)p[i] & 0xC0) != 0x80;
    return n;
}

static int matches_type(unsigned types, const pt_json_t *x, const jdec_t *num)
{
    switch (x->type) {
    case PT_JSON_NULL:
        return types & T_NULL;
    case PT_JSON_TRUE:
    case PT_JSON_FALSE:
        return types & T_BOOLEAN;
    case PT_JSON_NUMBER:
        return (types & T_NUMBER) || ((types & T_INTEGER) && jdec_is_integer(num));
    case PT_JSON_STRING:
        return types & T_STRING;
    case PT_JSON_ARRAY:
        return types & T_ARRAY;
    case PT_JSON_OBJECT:
        return types & T_OBJECT;
    }
    return 0;
}

static const jprop_t *find_prop(const pt_jschema_t *s, const char *key, size_t len)
{
    jprop_t k;
    k.key = key;
    k.key_len = len;
    k.schema = NULL;
    if (s->nprops == 0)
        return NULL;
    return bsearch(&k, s->props, s->nprops, sizeof(*s->props), prop_cmp);
}

/* readOnly / writeOnly of a property schema, through its $ref chain (which
 * compilation proved finite). */
static int prop_flag(const pt_jschema_t *s, int write)
{
    int steps;
    for (steps = 0; s != NULL && steps <= PT_JSCHEMA_MAX_DEPTH; s = s->ref, steps++)
        if (write ? s->write_only : s->read_only)
            return 1;
    return 0;
}

static void v_node(jvalidate_t *v, const pt_jschema_t *s, const pt_json_t *x, unsigned depth);

static void v_object(jvalidate_t *v, const pt_jschema_t *s, const pt_json_t *x, unsigned depth)
{
    int skip_flag = v->mode == PT_JSCHEMA_REQUEST ? 0 : 1; /* 0: readOnly, 1: writeOnly */
    size_t i;

    for (i = 0; i < s->nrequired; i++) {
        const pt_json_member_t *r = s->required[i];
        const jprop_t *p;
        if (pt_json_getn(x, r->key, r->key_len) != NULL)
            continue;
        /* OpenAPI: a required readOnly property is required in responses
         * only, a writeOnly one in requests only. */
        p = find_prop(s, r->key, r->key_len);
        if (p != NULL && prop_flag(p->schema, skip_flag))
            continue;
        report(v, r->key, r->key_len, "is required");
    }
    for (i = 0; i < x->u.obj.n; i++) {
        const pt_json_member_t *m = &x->u.obj.members[i];
        const jprop_t *p = find_prop(s, m->key, m->key_len);

        if (p == NULL) {
            if (!s->additional)
                report(v, m->key, m->key_len, "is not allowed (additionalProperties is false)");
            continue;
        }
        if (prop_flag(p->schema, skip_flag)) {
            report(v, m->key, m->key_len, skip_flag ? "is write-only" : "is read-only");
            continue;
        }
        v->segs[v->nsegs].key = m->key;
        v->segs[v->nsegs].len = m->key_len;
        v->nsegs++;
        v_node(v, p->schema, m->value, depth + 1);
        v->nsegs--;
    }
}

static void v_bounds(jvalidate_t *v, const pt_jschema_t *s, const jdec_t *num)
{
    if (s->min.num != NULL) {
        int cmp = jdec_cmp(num, &s->min.dec);
        if (s->min.exclusive ? cmp <= 0 : cmp < 0)
            report(v, NULL, 0, "must be %s %s", s->min.exclusive ? ">" : ">=", s->min.num->u.str.p);
    }
    if (s->max.num != NULL) {
        int cmp = jdec_cmp(num, &s->max.dec);
        if (s->max.exclusive ? cmp >= 0 : cmp > 0)
            report(v, NULL, 0, "must be %s %s", s->max.exclusive ? "<" : "<=", s->max.num->u.str.p);
    }
}

static void v_string(jvalidate_t *v, const pt_jschema_t *s, const pt_json_t *x)
{
    const char *p = x->u.str.p;
    size_t len = x->u.str.len;
    static const char *const fmsg[] = {
        NULL,
        "must be a valid date (YYYY-MM-DD)",
        "must be a valid date-time (RFC 3339)",
        "must be a valid email address",
        "must be a valid UUID",
        "must be an absolute URI",
    };
    int ok = 1;

    if (s->min_length > 0 || s->max_length != UINT64_MAX) {
        uint64_t n = utf8_chars(p, len);
        if (n > s->max_length)
            report(v, NULL, 0, "must be at most %llu character%s",
                   (unsigned long long)s->max_length, s->max_length == 1 ? "" : "s");
        else if (n < s->min_length)
            report(v, NULL, 0, "must be at least %llu character%s",
                   (unsigned long long)s->min_length, s->min_length == 1 ? "" : "s");
    }
    switch (s->format) {
    case F_NONE:
        break;
    case F_DATE:
        ok = check_date(p, len);
        break;
    case F_DATE_TIME:
        ok = check_date_time(p, len);
        break;
    case F_EMAIL:
        ok = check_email(p, len);
        break;
    case F_UUID:
        ok = check_uuid(p, len);
        break;
    case F_URI:
        ok = check_uri(p, len);
        break;
    }
    if (!ok)
        report(v, NULL, 0, "%s", fmsg[s->format]);
}

static void v_node(jvalidate_t *v, const pt_jschema_t *s, const pt_json_t *x, unsigned depth)
{
    jdec_t num = {0};
    size_t i;

    if (depth > PT_JSCHEMA_MAX_DEPTH) {
        report(v, NULL, 0, "is nested too deeply to be validated");
        return;
    }
    /* nullable (OpenAPI 3.0): null is valid whatever else is said, $ref included. */
    if (x->type == PT_JSON_NULL && s->nullable)
        return;
    if (x->type == PT_JSON_NUMBER && jdec_parse(&num, x->u.str.p, x->u.str.len) != 0) {
        report(v, NULL, 0, "must be a valid number");
        return;
    }
    if (s->ref != NULL) {
        int before = v->count;
        v_node(v, s->ref, x, depth + 1);
        /* The target's violations are enough: the keywords beside $ref would
         * mostly repeat them (a type check twice). */
        if (v->count != before)
            return;
    }
    if (s->types != 0 && !matches_type(s->types, x, &num)) {
        report_type(v, s->types | (s->nullable ? T_NULL : 0));
        return;
    }
    if (s->constv != NULL && !pt_json_equal(x, s->constv)) {
        pt_buf_t b;
        pt_buf_init(&b, 0);
        if (pt_json_write(&b, s->constv) == PT_OK && b.len <= PT_JSCHEMA_ENUM_MSG_MAX)
            report(v, NULL, 0, "must be %.*s", (int)b.len, b.data);
        else
            report(v, NULL, 0, "must be the constant value");
        pt_buf_free(&b);
    }
    if (s->enumv != NULL) {
        for (i = 0; i < s->enumv->u.arr.n; i++)
            if (pt_json_equal(x, s->enumv->u.arr.items[i]))
                break;
        if (i == s->enumv->u.arr.n)
            report_enum(v, s->enumv);
    }
    switch (x->type) {
    case PT_JSON_NUMBER:
        v_bounds(v, s, &num);
        break;
    case PT_JSON_STRING:
        v_string(v, s, x);
        break;
    case PT_JSON_ARRAY:
        if ((uint64_t)x->u.arr.n < s->min_items)
            report(v, NULL, 0, "must have at least %llu item%s", (unsigned long long)s->min_items,
                   s->min_items == 1 ? "" : "s");
        if ((uint64_t)x->u.arr.n > s->max_items)
            report(v, NULL, 0, "must have at most %llu item%s", (unsigned long long)s->max_items,
                   s->max_items == 1 ? "" : "s");
        if (s->items != NULL) {
            for (i = 0; i < x->u.arr.n; i++) {
                v->segs[v->nsegs].key = NULL;
                v->segs[v->nsegs].len = i;
                v->nsegs++;
                v_node(v, s->items, x->u.arr.items[i], depth + 1);
                v->nsegs--;
            }
        }
        break;
    case PT_JSON_OBJECT:
        v_object(v, s, x, depth);
        break;
    default:
        break;
    }
}

/* Validates x against s (see jschema.h). Allocates nothing when x is valid;
 * otherwise the violations array and its strings are in arena a.
 * *violations is NULL when x is valid (or on failure), an array of at most
 * max_violations objects otherwise. */
int pt_jschema_validate(const pt_jschema_t *s, const pt_json_t *x, pt_jschema_mode_t mode,
                        pt_arena_t *a, size_t max_violations, pt_json_t **violations)
{
    jvalidate_t vs, *v = &vs;

    if (violations != NULL)
        *violations = NULL;
    if (s == NULL || x == NULL)
        return -1;
    v->a = a;
    v->mode = mode;
    v->max = max_violations;
    v->out = NULL;
    v->want = violations != NULL && a != NULL;
    v->count = 0;
    v->oom = 0;
    v->nsegs = 0;
    v_node(v, s, x, 0);
    if (v->oom)
        return -1;
    if (v->count > 0 && v->want) {
        /* max_violations 0: the array is empty but there is one */
        if (v->out == NULL && (v->out = pt_json_array(a)) == NULL)
            return -1;
        *violations = v->out;
    }
    return v->count;
}

/* ---------------------------------------------------------------------
 * Coercion of text-typed values (XML bodies)
 */

/* The type bits that apply to s, following $ref (keywords beside a $ref
 * narrow it). */
static unsigned effective_types(const pt_jschema_t *s, const pt_jschema_t **props_of,
                                const pt_jschema_t **items_of)
{
    unsigned t = 0;
    int depth = 0;
    *props_of = NULL;
    *items_of = NULL;
    for (; s != NULL && depth < 64; s = s->ref, depth++) {
        if (t == 0)
            t = s->types;
        if (*props_of == NULL && s->nprops > 0)
            *props_of = s;
        if (*items_of == NULL && s->items != NULL)
            *items_of = s->items;
    }
    return t;
}

static pt_json_t *coerce(const pt_jschema_t *s, pt_json_t *v, pt_arena_t *a, int depth)
{
    const pt_jschema_t *po, *io;
    unsigned t;
    size_t i;
    if (s == NULL || v == NULL || depth > 256)
        return v;
    t = effective_types(s, &po, &io);
    if (v->type == PT_JSON_STRING) {
        const char *p = v->u.str.p;
        size_t n = v->u.str.len;
        if ((t & (T_INTEGER | T_NUMBER)) && !(t & T_STRING)) {
            pt_json_t *num = pt_json_number_text(a, p, n);
            if (num != NULL)
                return num;
        }
        if ((t & T_BOOLEAN) && !(t & T_STRING)) {
            if ((n == 4 && memcmp(p, "true", 4) == 0) || (n == 1 && p[0] == '1'))
                return pt_json_bool(a, 1);
            if ((n == 5 && memcmp(p, "false", 5) == 0) || (n == 1 && p[0] == '0'))
                return pt_json_bool(a, 0);
        }
    }
    if ((t & T_ARRAY) && !(t & T_OBJECT) && v->type != PT_JSON_ARRAY && v->type != PT_JSON_NULL) {
        /* one repeated element came as a single value */
        pt_json_t *arr = pt_json_array(a);
        if (arr == NULL || pt_json_array_add(a, arr, v) != PT_OK)
            return v;
        v = arr;
    }
    if (v->type == PT_JSON_ARRAY && io != NULL)
        for (i = 0; i < v->u.arr.n; i++)
            v->u.arr.items[i] = coerce(io, v->u.arr.items[i], a, depth + 1);
    if (v->type == PT_JSON_OBJECT && po != NULL)
        for (i = 0; i < v->u.obj.n; i++) {
            pt_json_member_t *m = &v->u.obj.members[i];
            const jprop_t *p = find_prop(po, m->key, m->key_len);
            if (p != NULL)
                m->value = coerce(p->schema, m->value, a, depth + 1);
        }
    return v;
}

pt_json_t *pt_jschema_coerce(const pt_jschema_t *s, pt_json_t *v, pt_arena_t *a)
{
    return coerce(s, v, a, 0);
}

size_t pt_jschema_count(const pt_jschema_set_t *set)
{
    return set != NULL ? set->n : 0;
}

const char *pt_jschema_name(const pt_jschema_set_t *set, size_t i, size_t *len)
{
    if (set == NULL || i >= set->n)
        return NULL;
    *len = set->name_lens[i];
    return set->names[i];
}

const pt_jschema_t *pt_jschema_at(const pt_jschema_set_t *set, size_t i)
{
    return set != NULL && i < set->n ? set->schemas[i] : NULL;
}
