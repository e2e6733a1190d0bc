/*
 * json.c - JSON values in an arena: strict parser, builders, writer (see json.h).
 *
 * The parser is iterative: open arrays and objects live on an explicit stack
 * of frames (in the arena), so hostile nesting costs memory bounded by
 * max_depth, never C stack. Strings are scanned twice: a first pass
 * validates them (escapes, UTF-8, control characters, limits) and measures
 * the unescaped length, a second copies or decodes them into one allocation
 * of exactly that size.
 *
 * Numbers keep their text; comparisons and integer conversions work on the
 * decimal digits of that text (struct dec_s), never through a double.
 */
#include "core/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Objects up to this many members are checked for a duplicate key as each
 * key is read (linear scan); members beyond it are checked when the object
 * closes, by sorting the keys (O(n log n) whatever the input). */
#define DUP_LINEAR 32

typedef struct frame_s {
    pt_json_t *v; /* the open array or object */
    char *key;    /* object: key read, waiting for its value */
    size_t key_len;
    size_t *key_offs; /* object: input offsets of keys DUP_LINEAR.. */
    size_t offs_cap;
} frame_t;

typedef struct parser_s {
    pt_arena_t *a;
    const unsigned char *start, *p, *end;
    pt_json_limits_t lim;
    pt_json_error_t *err;
    size_t items;
    frame_t *stack;
    size_t depth, stack_cap;
} parser_t;

/* ---- errors ---- */

/* Fills the error at `at` (line and column counted from the start) and
 * returns NULL, so that error paths read `return fail(...)`. */
static void *fail(parser_t *ps, const unsigned char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *fail(parser_t *ps, const unsigned char *at, const char *fmt, ...)
{
    const unsigned char *q, *bol = ps->start;
    unsigned line = 1;
    va_list ap;

    for (q = ps->start; q < at; q++)
        if (*q == '\n') {
            line++;
            bol = q + 1;
        }
    ps->err->offset = (size_t)(at - ps->start);
    ps->err->line = line;
    ps->err->column = (unsigned)(at - bol) + 1;
    va_start(ap, fmt);
    vsnprintf(ps->err->message, sizeof(ps->err->message), fmt, ap);
    va_end(ap);
    return NULL;
}

static void *fail_oom(parser_t *ps)
{
    return fail(ps, ps->p, "out of memory");
}

/* Describes the byte at p for "unexpected ..." messages. */
static void *fail_unexpected(parser_t *ps, const unsigned char *p, const char *what)
{
    if (p == ps->end)
        return fail(ps, p, "unexpected end of input, %s", what);
    if (*p > 0x20 && *p < 0x7f)
        return fail(ps, p, "unexpected '%c', %s", *p, what);
    return fail(ps, p, "unexpected byte 0x%02x, %s", *p, what);
}

/* Writes `duplicate key "<key>"`, the key escaped and cut to fit. */
static void *fail_duplicate(parser_t *ps, const unsigned char *at, const char *key, size_t len)
{
    char esc[6 * 48 + 1];
    size_t m = PT_MIN(len, (size_t)48), n;

    for (;;) {
        /* Cut on a UTF-8 boundary so that the message stays valid UTF-8. */
        while (m > 0 && m < len && ((unsigned char)key[m] & 0xc0) == 0x80)
            m--;
        n = pt_json_escape(esc, key, m);
        if (n <= 48 || m == 0)
            break;
        m--;
    }
    esc[n] = '\0';
    return fail(ps, at, "duplicate key \"%s%s\"", esc, m < len ? "..." : "");
}

/* ---- scanning helpers ---- */

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* Length of the valid UTF-8 sequence at s (2..4), 0 when invalid (overlong,
 * surrogate, above U+10FFFF, truncated). s[0] >= 0x80. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0; /* overlong, above U+10FFFF */
        return 4;
    }
    return 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits at p: the code unit, -1 when a non-hex byte comes
 * first, -2 when the input ends first. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    long v = 0;
    int i, h;
    for (i = 0; i < 4; i++) {
        if (p + i >= end)
            return -2;
        if ((h = hexval(p[i])) < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(unsigned char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Bytes that stand for themselves inside a string: 0x20..0x7f but '"', '\'. */
static int plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Parses the string at ps->p (on its opening quote) into a NUL-terminated
 * arena copy; ps->p ends after the closing quote. Returns PT_OK or PT_ERROR
 * (error filled). */
static int parse_string(parser_t *ps, char **out, size_t *out_len)
{
    const unsigned char *open = ps->p, *q = open + 1, *end = ps->end, *r;
    size_t n = 0, k, max = ps->lim.max_string;
    int escapes = 0;
    unsigned char *o, *buf;
    long cu, lo;

    /* Pass 1: validate and measure. */
    for (;;) {
        r = q;
        while (q < end && plain(*q))
            q++;
        n += (size_t)(q - r);
        if (max != 0 && n > max)
            goto too_long;
        if (q == end) {
            fail(ps, q, "unterminated string");
            return PT_ERROR;
        }
        if (*q == '"')
            break;
        if (*q < 0x20) {
            fail(ps, q, "control character 0x%02x in a string (must be escaped)", *q);
            return PT_ERROR;
        }
        if (*q >= 0x80) {
            if ((k = utf8_len(q, (size_t)(end - q))) == 0) {
                fail(ps, q, "invalid UTF-8 in a string");
                return PT_ERROR;
            }
            q += k;
            n += k;
        } else { /* backslash */
            escapes = 1;
            if (q + 1 == end) {
                fail(ps, end, "unterminated string");
                return PT_ERROR;
            }
            switch (q[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                q += 2;
                n++;
                break;
            case 'u':
                cu = hex4(q + 2, end);
                if (cu == -2) {
                    fail(ps, end, "unterminated string");
                    return PT_ERROR;
                }
                if (cu < 0) {
                    fail(ps, q, "invalid \\u escape (needs 4 hex digits)");
                    return PT_ERROR;
                }
                if (cu >= 0xdc00 && cu <= 0xdfff) {
                    fail(ps, q, "lone surrogate \\u%04lx in a string", cu);
                    return PT_ERROR;
                }
                if (cu >= 0xd800 && cu <= 0xdbff) {
                    if (q + 6 == end) {
                        fail(ps, end, "unterminated string");
                        return PT_ERROR;
                    }
                    if (q + 7 >= end || q[6] != '\\' || q[7] != 'u') {
                        fail(ps, q, "lone surrogate \\u%04lx in a string", cu);
                        return PT_ERROR;
                    }
                    lo = hex4(q + 8, end);
                    if (lo == -2) {
                        fail(ps, end, "unterminated string");
                        return PT_ERROR;
                    }
                    if (lo == -1) {
                        fail(ps, q + 6, "invalid \\u escape (needs 4 hex digits)");
                        return PT_ERROR;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        fail(ps, q, "lone surrogate \\u%04lx in a string", cu);
                        return PT_ERROR;
                    }
                    q += 12;
                    n += 4;
                } else {
                    q += 6;
                    n += cu < 0x80 ? 1 : cu < 0x800 ? 2 : 3;
                }
                break;
            default:
                fail(ps, q, "invalid escape sequence in a string");
                return PT_ERROR;
            }
        }
        if (max != 0 && n > max)
            goto too_long;
    }

    /* Pass 2: copy or decode; the input is known to be valid. */
    buf = pt_arena_alloc(ps->a, n + 1);
    if (buf == NULL) {
        fail_oom(ps);
        return PT_ERROR;
    }
    if (!escapes) {
        memcpy(buf, open + 1, n);
    } else {
        o = buf;
        for (r = open + 1; r < q;) {
            if (*r != '\\') {
                *o++ = *r++;
                continue;
            }
            switch (r[1]) {
            case 'b':
                *o++ = '\b';
                break;
            case 'f':
                *o++ = '\f';
                break;
            case 'n':
                *o++ = '\n';
                break;
            case 'r':
                *o++ = '\r';
                break;
            case 't':
                *o++ = '\t';
                break;
            case 'u':
                cu = hex4(r + 2, end);
                if (cu >= 0xd800 && cu <= 0xdbff) {
                    lo = hex4(r + 8, end);
                    o += utf8_put(o, 0x10000 + (((unsigned long)cu - 0xd800) << 10) +
                                         ((unsigned long)lo - 0xdc00));
                    r += 6;
                } else {
                    o += utf8_put(o, (unsigned long)cu);
                }
                r += 4;
                break;
            default: /* '"', '\\', '/' */
                *o++ = r[1];
            }
            r += 2;
        }
    }
    buf[n] = '\0';
    *out = (char *)buf;
    *out_len = n;
    ps->p = q + 1;
    return PT_OK;

too_long:
    fail(ps, open, "string too long (more than %zu bytes)", max);
    return PT_ERROR;
}

/* Checks the JSON number grammar at p; returns the end of the number, or
 * NULL with *bad at the offending byte and *why its description. */
static const unsigned char *scan_number(const unsigned char *p, const unsigned char *end,
                                        const unsigned char **bad, const char **why)
{
    if (p < end && *p == '-')
        p++;
    if (p == end || *p < '0' || *p > '9') {
        *why = "invalid number: expected a digit";
        goto bad;
    }
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') {
            *why = "invalid number: leading zero";
            goto bad;
        }
    } else {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || *p < '0' || *p > '9') {
            *why = "invalid number: expected a digit after '.'";
            goto bad;
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || *p < '0' || *p > '9') {
            *why = "invalid number: expected a digit in the exponent";
            goto bad;
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    return p;
bad:
    *bad = p;
    return NULL;
}

/* ---- parser ---- */

static pt_json_t *new_value(pt_arena_t *a, pt_json_type_t t)
{
    pt_json_t *v = pt_arena_alloc(a, sizeof(*v));
    if (v != NULL) {
        memset(v, 0, sizeof(*v));
        v->type = t;
    }
    return v;
}

static int push_frame(parser_t *ps, pt_json_t *v)
{
    frame_t *f;
    if (ps->depth == ps->stack_cap) {
        size_t cap = ps->stack_cap ? ps->stack_cap * 2 : 16;
        f = pt_arena_realloc(ps->a, ps->stack, ps->stack_cap * sizeof(*f), cap * sizeof(*f));
        if (f == NULL)
            return PT_ENOMEM;
        ps->stack = f;
        ps->stack_cap = cap;
    }
    f = &ps->stack[ps->depth++];
    memset(f, 0, sizeof(*f));
    f->v = v;
    return PT_OK;
}

/* Makes room for element n of arr (cap elements of sz bytes, growing by
 * doubling). Returns arr, its moved copy, or NULL when out of memory (arr
 * then stays valid and *cap unchanged). */
static void *grow(pt_arena_t *a, void *arr, size_t *cap, size_t n, size_t sz)
{
    size_t nc;
    void *p;
    if (n < *cap)
        return arr;
    nc = *cap ? *cap * 2 : 4;
    if (nc > SIZE_MAX / sz / 2)
        return NULL;
    p = pt_arena_realloc(a, arr, *cap * sz, nc * sz);
    if (p != NULL)
        *cap = nc;
    return p;
}

static int key_cmp(const pt_json_member_t *x, const pt_json_member_t *y)
{
    int c = memcmp(x->key, y->key, PT_MIN(x->key_len, y->key_len));
    if (c != 0)
        return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/* Finds a duplicate among the keys of a large object (n > DUP_LINEAR) by a
 * stable merge sort of member indices. Returns the index of the first
 * member (in document order) whose key appeared before, or SIZE_MAX; sets
 * *oom when the scratch space could not be had. */
static size_t find_duplicate(pt_arena_t *a, const pt_json_t *obj, int *oom)
{
    const pt_json_member_t *m = obj->u.obj.members;
    size_t n = obj->u.obj.n, w, i, j, k, lo, mid, hi, best = SIZE_MAX;
    size_t *x, *y, *t;

    x = pt_arena_alloc(a, n * sizeof(*x));
    y = pt_arena_alloc(a, n * sizeof(*y));
    if (x == NULL || y == NULL) {
        *oom = 1;
        return SIZE_MAX;
    }
    for (i = 0; i < n; i++)
        x[i] = i;
    for (w = 1; w < n; w *= 2) {
        for (lo = 0; lo < n; lo += 2 * w) {
            mid = PT_MIN(lo + w, n);
            hi = PT_MIN(lo + 2 * w, n);
            i = lo;
            j = mid;
            k = lo;
            while (i < mid && j < hi)
                y[k++] = key_cmp(&m[x[j]], &m[x[i]]) < 0 ? x[j++] : x[i++];
            while (i < mid)
                y[k++] = x[i++];
            while (j < hi)
                y[k++] = x[j++];
        }
        t = x;
        x = y;
        y = t;
    }
    /* Stable: within a run of equal keys, indices increase. */
    for (i = 1; i < n; i++)
        if (key_cmp(&m[x[i - 1]], &m[x[i]]) == 0 && x[i] < best)
            best = x[i];
    return best;
}

pt_json_t *pt_json_parse(pt_arena_t *a, const char *data, size_t len,
                         const pt_json_limits_t *limits, pt_json_error_t *err)
{
    parser_t ps;
    pt_json_error_t dummy;
    pt_json_t *v;
    frame_t *f;
    pt_json_member_t *m;
    const unsigned char *q, *bad = NULL;
    const char *why = "";
    char *key;
    size_t key_len, i, n, *offs;
    int oom;

    if (err == NULL)
        err = &dummy;
    err->offset = 0;
    err->line = 1;
    err->column = 1;
    err->message[0] = '\0';
    memset(&ps, 0, sizeof(ps));
    ps.a = a;
    ps.start = (const unsigned char *)(data != NULL ? data : "");
    ps.end = ps.start + (data != NULL ? len : 0);
    ps.p = ps.start;
    ps.lim = limits != NULL ? *limits : PT_JSON_LIMITS_DEFAULT;
    ps.err = err;

    if (ps.end - ps.start >= 3 && memcmp(ps.start, "\xef\xbb\xbf", 3) == 0)
        return fail(&ps, ps.start, "byte order mark not allowed");
    ps.p = skip_ws(ps.p, ps.end);
    if (ps.p == ps.end)
        return fail(&ps, ps.p, "empty document");

value:
    /* A value starts at (or after whitespace from) ps.p. */
    ps.p = skip_ws(ps.p, ps.end);
    if (ps.p == ps.end)
        return fail_unexpected(&ps, ps.p, "expected a value");
    if (ps.lim.max_items != 0 && ++ps.items > ps.lim.max_items)
        return fail(&ps, ps.p, "too many values (more than %zu)", ps.lim.max_items);
    switch (*ps.p) {
    case '{':
    case '[':
        if (ps.depth >= ps.lim.max_depth)
            return fail(&ps, ps.p, "too deep (more than %u levels)", ps.lim.max_depth);
        v = new_value(a, *ps.p == '{' ? PT_JSON_OBJECT : PT_JSON_ARRAY);
        if (v == NULL || push_frame(&ps, v) != PT_OK)
            return fail_oom(&ps);
        ps.p = skip_ws(ps.p + 1, ps.end);
        if (v->type == PT_JSON_ARRAY) {
            if (ps.p < ps.end && *ps.p == ']') {
                ps.p++;
                ps.depth--;
                goto done;
            }
            goto value;
        }
        if (ps.p < ps.end && *ps.p == '}') {
            ps.p++;
            ps.depth--;
            goto done;
        }
        if (ps.p == ps.end || *ps.p != '"')
            return fail_unexpected(&ps, ps.p, "expected a string key or '}'");
        goto key;
    case '"':
        v = new_value(a, PT_JSON_STRING);
        if (v == NULL)
            return fail_oom(&ps);
        if (parse_string(&ps, &key, &key_len) != PT_OK)
            return NULL;
        v->u.str.p = key;
        v->u.str.len = key_len;
        goto done;
    case 't':
    case 'f':
    case 'n': {
        const char *lit = *ps.p == 't' ? "true" : *ps.p == 'f' ? "false" : "null";
        for (i = 0; lit[i] != '\0'; i++)
            if (ps.p + i == ps.end || ps.p[i] != (unsigned char)lit[i])
                return fail(&ps, ps.p + i, "invalid literal (expected '%s')", lit);
        v = new_value(a, *ps.p == 't' ? PT_JSON_TRUE : *ps.p == 'f' ? PT_JSON_FALSE : PT_JSON_NULL);
        if (v == NULL)
            return fail_oom(&ps);
        ps.p += i;
        goto done;
    }
    default:
        if (*ps.p != '-' && (*ps.p < '0' || *ps.p > '9'))
            return fail_unexpected(&ps, ps.p, "expected a value");
        q = scan_number(ps.p, ps.end, &bad, &why);
        if (q == NULL)
            return fail(&ps, bad, "%s", why);
        v = new_value(a, PT_JSON_NUMBER);
        if (v == NULL ||
            (v->u.str.p = pt_arena_strndup(a, (const char *)ps.p, (size_t)(q - ps.p))) == NULL)
            return fail_oom(&ps);
        v->u.str.len = (size_t)(q - ps.p);
        ps.p = q;
        goto done;
    }

done:
    /* v is complete and ps.p is just after it: attach it to its parent. */
    if (ps.depth == 0) {
        ps.p = skip_ws(ps.p, ps.end);
        if (ps.p != ps.end)
            return fail_unexpected(&ps, ps.p, "expected the end of the document");
        return v;
    }
    f = &ps.stack[ps.depth - 1];
    if (f->v->type == PT_JSON_ARRAY) {
        if (pt_json_array_add(a, f->v, v) != PT_OK)
            return fail_oom(&ps);
        ps.p = skip_ws(ps.p, ps.end);
        if (ps.p < ps.end && *ps.p == ',') {
            ps.p++;
            goto value;
        }
        if (ps.p < ps.end && *ps.p == ']') {
            ps.p++;
            v = f->v;
            ps.depth--;
            goto done;
        }
        return fail_unexpected(&ps, ps.p, "expected ',' or ']' after an array item");
    }
    n = f->v->u.obj.n;
    m = grow(a, f->v->u.obj.members, &f->v->u.obj.cap, n, sizeof(*m));
    if (m == NULL)
        return fail_oom(&ps);
    f->v->u.obj.members = m;
    f->v->u.obj.members[n].key = f->key;
    f->v->u.obj.members[n].key_len = f->key_len;
    f->v->u.obj.members[n].value = v;
    f->v->u.obj.n = n + 1;
    ps.p = skip_ws(ps.p, ps.end);
    if (ps.p < ps.end && *ps.p == ',') {
        ps.p = skip_ws(ps.p + 1, ps.end);
        if (ps.p == ps.end || *ps.p != '"')
            return fail_unexpected(&ps, ps.p, "expected a string key");
        goto key;
    }
    if (ps.p < ps.end && *ps.p == '}') {
        if (f->v->u.obj.n > DUP_LINEAR) {
            oom = 0;
            i = find_duplicate(a, f->v, &oom);
            if (oom)
                return fail_oom(&ps);
            if (i != SIZE_MAX)
                return fail_duplicate(&ps, ps.start + f->key_offs[i - DUP_LINEAR],
                                      f->v->u.obj.members[i].key, f->v->u.obj.members[i].key_len);
        }
        ps.p++;
        v = f->v;
        ps.depth--;
        goto done;
    }
    return fail_unexpected(&ps, ps.p, "expected ',' or '}' after an object member");

key:
    /* ps.p is on the opening quote of a key of the innermost object. */
    q = ps.p;
    if (parse_string(&ps, &key, &key_len) != PT_OK)
        return NULL;
    if (memchr(key, '\0', key_len) != NULL)
        return fail(&ps, q, "object key contains a NUL character");
    f = &ps.stack[ps.depth - 1];
    n = f->v->u.obj.n;
    if (n < DUP_LINEAR) {
        for (i = 0; i < n; i++)
            if (f->v->u.obj.members[i].key_len == key_len &&
                memcmp(f->v->u.obj.members[i].key, key, key_len) == 0)
                return fail_duplicate(&ps, q, key, key_len);
    } else {
        offs = grow(a, f->key_offs, &f->offs_cap, n - DUP_LINEAR, sizeof(*offs));
        if (offs == NULL)
            return fail_oom(&ps);
        f->key_offs = offs;
        f->key_offs[n - DUP_LINEAR] = (size_t)(q - ps.start);
    }
    f->key = key;
    f->key_len = key_len;
    ps.p = skip_ws(ps.p, ps.end);
    if (ps.p == ps.end || *ps.p != ':')
        return fail_unexpected(&ps, ps.p, "expected ':' after an object key");
    ps.p++;
    goto value;
}

/* ---- builders ---- */

pt_json_t *pt_json_null(pt_arena_t *a)
{
    return new_value(a, PT_JSON_NULL);
}

pt_json_t *pt_json_bool(pt_arena_t *a, int v)
{
    return new_value(a, v ? PT_JSON_TRUE : PT_JSON_FALSE);
}

static pt_json_t *new_text(pt_arena_t *a, pt_json_type_t t, const char *s, size_t len)
{
    pt_json_t *v = new_value(a, t);
    if (v == NULL)
        return NULL;
    v->u.str.p = pt_arena_strndup(a, s, len);
    if (v->u.str.p == NULL)
        return NULL;
    v->u.str.len = len;
    return v;
}

pt_json_t *pt_json_string(pt_arena_t *a, const char *s, size_t len)
{
    return new_text(a, PT_JSON_STRING, s != NULL ? s : "", s != NULL ? len : 0);
}

pt_json_t *pt_json_number_text(pt_arena_t *a, const char *s, size_t len)
{
    const unsigned char *bad, *e;
    const char *why;
    if (s == NULL || len == 0)
        return NULL;
    e = scan_number((const unsigned char *)s, (const unsigned char *)s + len, &bad, &why);
    if (e != (const unsigned char *)s + len)
        return NULL;
    return new_text(a, PT_JSON_NUMBER, s, len);
}

pt_json_t *pt_json_int(pt_arena_t *a, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    return new_text(a, PT_JSON_NUMBER, tmp, (size_t)n);
}

pt_json_t *pt_json_double(pt_arena_t *a, double v)
{
    char tmp[48], *c;
    int prec, x, n = 0;

    if (!isfinite(v))
        return NULL;
    for (prec = 1; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* Like Python's repr: positional notation for decimal exponents -4..15
     * ("100", not "1e+02"); the digits added are the exact value's. */
    snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
    x = atoi(strchr(tmp, 'e') + 1);
    n = snprintf(tmp, sizeof(tmp), "%.*g", x >= -4 && x < 16 && x + 1 > prec ? x + 1 : prec, v);
    /* A locale with a decimal comma would break the JSON syntax. */
    if ((c = strchr(tmp, ',')) != NULL)
        *c = '.';
    return pt_json_number_text(a, tmp, (size_t)n);
}

pt_json_t *pt_json_array(pt_arena_t *a)
{
    return new_value(a, PT_JSON_ARRAY);
}

pt_json_t *pt_json_object(pt_arena_t *a)
{
    return new_value(a, PT_JSON_OBJECT);
}

int pt_json_array_add(pt_arena_t *a, pt_json_t *arr, pt_json_t *v)
{
    pt_json_t **items;

    if (v == NULL)
        return PT_ENOMEM; /* a builder's failure passed along */
    if (arr == NULL || arr->type != PT_JSON_ARRAY)
        return PT_EINVAL;
    items = grow(a, arr->u.arr.items, &arr->u.arr.cap, arr->u.arr.n, sizeof(*items));
    if (items == NULL)
        return PT_ENOMEM;
    arr->u.arr.items = items;
    arr->u.arr.items[arr->u.arr.n++] = v;
    return PT_OK;
}

int pt_json_object_set(pt_arena_t *a, pt_json_t *obj, const char *key, size_t key_len, pt_json_t *v)
{
    pt_json_member_t *m;
    size_t i;
    char *k;

    if (v == NULL)
        return PT_ENOMEM; /* a builder's failure passed along */
    if (obj == NULL || obj->type != PT_JSON_OBJECT || (key == NULL && key_len != 0))
        return PT_EINVAL;
    for (i = 0; i < obj->u.obj.n; i++) {
        m = &obj->u.obj.members[i];
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0) {
            m->value = v;
            return PT_OK;
        }
    }
    if ((k = pt_arena_strndup(a, key != NULL ? key : "", key_len)) == NULL)
        return PT_ENOMEM;
    m = grow(a, obj->u.obj.members, &obj->u.obj.cap, obj->u.obj.n, sizeof(*m));
    if (m == NULL)
        return PT_ENOMEM;
    obj->u.obj.members = m;
    m += obj->u.obj.n++;
    m->key = k;
    m->key_len = key_len;
    m->value = v;
    return PT_OK;
}

/* ---- lookups ---- */

pt_json_t *pt_json_getn(const pt_json_t *obj, const char *key, size_t key_len)
{
    size_t i;
    if (obj == NULL || obj->type != PT_JSON_OBJECT || (key == NULL && key_len != 0))
        return NULL;
    for (i = 0; i < obj->u.obj.n; i++) {
        const pt_json_member_t *m = &obj->u.obj.members[i];
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0)
            return m->value;
    }
    return NULL;
}

pt_json_t *pt_json_get(const pt_json_t *obj, const char *key)
{
    if (key == NULL)
        return NULL;
    return pt_json_getn(obj, key, strlen(key));
}

pt_json_t *pt_json_at(const pt_json_t *arr, size_t i)
{
    if (arr == NULL || arr->type != PT_JSON_ARRAY || i >= arr->u.arr.n)
        return NULL;
    return arr->u.arr.items[i];
}

/* ---- numbers as exact decimals ---- */

/* A number's text seen as sign, significant digits and a decimal exponent.
 * The digits are the integer digits followed by the fraction digits (the
 * "virtual" sequence, index 0..il+fl); f and l are its first and last
 * non-zero digits, and the value is d[f].d[f+1]..d[l] x 10^adj. */
typedef struct dec_s {
    const char *t;
    size_t ip, il, fp, fl;
    int neg, zero;
    size_t f, l;
    int64_t exp; /* the written exponent, when !huge */
    int huge;    /* the exponent has more than 18 significant digits */
    int eneg;    /* huge: the exponent's sign and digits (leading zeros off) */
    const char *ed;
    size_t el;
} dec_t;

static char dec_digit(const dec_t *d, size_t i)
{
    return i < d->il ? d->t[d->ip + i] : d->t[d->fp + i - d->il];
}

/* Reads a number's text (any text: what is not the grammar ends it). */
static void dec_parse(dec_t *d, const char *t, size_t len)
{
    size_t i = 0, n;

    memset(d, 0, sizeof(*d));
    d->t = t;
    if (t == NULL)
        len = 0;
    if (i < len && t[i] == '-') {
        d->neg = 1;
        i++;
    }
    d->ip = i;
    while (i < len && t[i] >= '0' && t[i] <= '9')
        i++;
    d->il = i - d->ip;
    if (i < len && t[i] == '.') {
        d->fp = ++i;
        while (i < len && t[i] >= '0' && t[i] <= '9')
            i++;
        d->fl = i - d->fp;
    }
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < len && (t[i] == '+' || t[i] == '-'))
            d->eneg = t[i++] == '-';
        while (i < len && t[i] == '0')
            i++;
        d->ed = t + i;
        while (i < len && t[i] >= '0' && t[i] <= '9')
            i++;
        d->el = (size_t)(t + i - d->ed);
        if (d->el > 18) {
            d->huge = 1;
        } else {
            for (n = 0; n < d->el; n++)
                d->exp = d->exp * 10 + (d->ed[n] - '0');
            if (d->eneg)
                d->exp = -d->exp;
        }
    }
    n = d->il + d->fl;
    for (d->f = 0; d->f < n && dec_digit(d, d->f) == '0'; d->f++)
        ;
    d->zero = d->f == n;
    if (!d->zero)
        for (d->l = n - 1; dec_digit(d, d->l) == '0'; d->l--)
            ;
}

/* The power of ten of the digit at virtual index i, without the exponent. */
static int64_t dec_place(const dec_t *d, size_t i)
{
    return (int64_t)d->il - 1 - (int64_t)i;
}

static int num_equal(const pt_json_t *x, const pt_json_t *y)
{
    dec_t a, b;
    size_t i;

    dec_parse(&a, x->u.str.p, x->u.str.len);
    dec_parse(&b, y->u.str.p, y->u.str.len);
    if (a.zero || b.zero)
        return a.zero && b.zero; /* -0 == 0 */
    if (a.neg != b.neg || a.l - a.f != b.l - b.f)
        return 0;
    if (a.huge || b.huge) {
        /* Exponents of 19+ digits: equal when written alike (no false positive). */
        if (!a.huge || !b.huge || a.eneg != b.eneg || a.el != b.el ||
            memcmp(a.ed, b.ed, a.el) != 0 || dec_place(&a, a.f) != dec_place(&b, b.f))
            return 0;
    } else if (dec_place(&a, a.f) + a.exp != dec_place(&b, b.f) + b.exp) {
        return 0;
    }
    for (i = 0; i <= a.l - a.f; i++)
        if (dec_digit(&a, a.f + i) != dec_digit(&b, b.f + i))
            return 0;
    return 1;
}

int pt_json_to_int64(const pt_json_t *v, int64_t *out)
{
    dec_t d;
    uint64_t m = 0;
    int64_t top, low;
    size_t i;

    if (v == NULL || v->type != PT_JSON_NUMBER)
        return PT_EINVAL;
    dec_parse(&d, v->u.str.p, v->u.str.len);
    if (d.zero) {
        *out = 0;
        return PT_OK;
    }
    if (d.huge)
        return PT_EINVAL;
    top = dec_place(&d, d.f) + d.exp; /* power of ten of the first digit */
    low = dec_place(&d, d.l) + d.exp; /* ... and of the last non-zero one */
    if (low < 0 || top > 18)
        return PT_EINVAL;
    for (i = d.f; i <= d.l; i++)
        m = m * 10 + (uint64_t)(dec_digit(&d, i) - '0');
    for (; low > 0; low--)
        m *= 10;
    if (d.neg) {
        if (m > (uint64_t)INT64_MAX + 1)
            return PT_EINVAL;
        *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX)
            return PT_EINVAL;
        *out = (int64_t)m;
    }
    return PT_OK;
}

double pt_json_to_double(const pt_json_t *v)
{
    if (v == NULL || v->type != PT_JSON_NUMBER || v->u.str.p == NULL)
        return 0.0;
    return strtod(v->u.str.p, NULL);
}

/* ---- truthiness, equality, writing ---- */

int pt_json_truthy(const pt_json_t *v)
{
    dec_t d;
    if (v == NULL)
        return 0;
    switch (v->type) {
    case PT_JSON_NULL:
    case PT_JSON_FALSE:
        return 0;
    case PT_JSON_TRUE:
        return 1;
    case PT_JSON_NUMBER:
        dec_parse(&d, v->u.str.p, v->u.str.len);
        return !d.zero;
    case PT_JSON_STRING:
        return v->u.str.len != 0;
    case PT_JSON_ARRAY:
        return v->u.arr.n != 0;
    case PT_JSON_OBJECT:
        return v->u.obj.n != 0;
    }
    return 0;
}

/* Recursion: one frame per nesting level of the values (the parser's
 * max_depth bounds it for parsed documents). */
int pt_json_equal(const pt_json_t *x, const pt_json_t *y)
{
    size_t i, n;

    if (x == NULL || y == NULL)
        return x == y;
    if (x == y)
        return 1;
    if (x->type != y->type)
        return 0;
    switch (x->type) {
    case PT_JSON_NULL:
    case PT_JSON_FALSE:
    case PT_JSON_TRUE:
        return 1;
    case PT_JSON_NUMBER:
        return num_equal(x, y);
    case PT_JSON_STRING:
        return x->u.str.len == y->u.str.len &&
               (x->u.str.len == 0 || memcmp(x->u.str.p, y->u.str.p, x->u.str.len) == 0);
    case PT_JSON_ARRAY:
        if (x->u.arr.n != y->u.arr.n)
            return 0;
        for (i = 0; i < x->u.arr.n; i++)
            if (!pt_json_equal(x->u.arr.items[i], y->u.arr.items[i]))
                return 0;
        return 1;
    case PT_JSON_OBJECT:
        n = x->u.obj.n;
        if (n != y->u.obj.n)
            return 0;
        for (i = 0; i < n; i++) {
            const pt_json_member_t *mx = &x->u.obj.members[i], *my = &y->u.obj.members[i];
            const pt_json_t *vy;
            /* Same order is the common case: no lookup then. */
            if (mx->key_len == my->key_len && memcmp(mx->key, my->key, mx->key_len) == 0)
                vy = my->value;
            else if ((vy = pt_json_getn(y, mx->key, mx->key_len)) == NULL)
                return 0;
            if (!pt_json_equal(mx->value, vy))
                return 0;
        }
        return 1;
    }
    return 0;
}

static int write_string(pt_buf_t *b, const char *s, size_t n)
{
    int rc;
    if ((rc = pt_buf_append_char(b, '"')) != PT_OK ||
        (rc = pt_buf_append_json_str(b, s, n)) != PT_OK)
        return rc;
    return pt_buf_append_char(b, '"');
}

static int write_value(pt_buf_t *b, const pt_json_t *v)
{
    size_t i;
    int rc;

    if (v == NULL)
        return PT_EINVAL;
    switch (v->type) {
    case PT_JSON_NULL:
        return pt_buf_append(b, "null", 4);
    case PT_JSON_FALSE:
        return pt_buf_append(b, "false", 5);
    case PT_JSON_TRUE:
        return pt_buf_append(b, "true", 4);
    case PT_JSON_NUMBER:
        return pt_buf_append(b, v->u.str.p, v->u.str.len);
    case PT_JSON_STRING:
        return write_string(b, v->u.str.p, v->u.str.len);
    case PT_JSON_ARRAY:
        if ((rc = pt_buf_append_char(b, '[')) != PT_OK)
            return rc;
        for (i = 0; i < v->u.arr.n; i++)
            if ((i > 0 && (rc = pt_buf_append_char(b, ',')) != PT_OK) ||
                (rc = write_value(b, v->u.arr.items[i])) != PT_OK)
                return rc;
        return pt_buf_append_char(b, ']');
    case PT_JSON_OBJECT:
        if ((rc = pt_buf_append_char(b, '{')) != PT_OK)
            return rc;
        for (i = 0; i < v->u.obj.n; i++) {
            const pt_json_member_t *m = &v->u.obj.members[i];
            if ((i > 0 && (rc = pt_buf_append_char(b, ',')) != PT_OK) ||
                (rc = write_string(b, m->key, m->key_len)) != PT_OK ||
                (rc = pt_buf_append_char(b, ':')) != PT_OK ||
                (rc = write_value(b, m->value)) != PT_OK)
                return rc;
        }
        return pt_buf_append_char(b, '}');
    }
    return PT_EINVAL;
}

int pt_json_write(pt_buf_t *b, const pt_json_t *v)
{
    size_t len = b->len;
    int rc = write_value(b, v);
    if (rc != PT_OK)
        b->len = len; /* nothing half-written */
    return rc;
}

const char *pt_json_type_name(pt_json_type_t t)
{
    switch (t) {
    case PT_JSON_NULL:
        return "null";
    case PT_JSON_FALSE:
    case PT_JSON_TRUE:
        return "boolean";
    case PT_JSON_NUMBER:
        return "number";
    case PT_JSON_STRING:
        return "string";
    case PT_JSON_ARRAY:
        return "array";
    case PT_JSON_OBJECT:
        return "object";
    }
    return "unknown";
}
