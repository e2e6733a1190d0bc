/*
 * fuzz_expr.c - libFuzzer target for the expression language (process/expr).
 *
 * Input: an expression, then (after the first NUL byte or newline) a JSON
 * context. The expression is compiled as an expression (without and with a
 * list of roots) and as a template; when it compiles and the context parses
 * as an object, it is evaluated twice. Nothing may crash, leak or hang; a
 * failure must come with a message; a constant is returned as such; an
 * evaluation is deterministic (unless it reads the clock) and every string
 * it produces is valid UTF-8 (the context and the source are).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "process/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ROOTS[] = {"method", "path",  "query", "header", "body", "user",
                                    "vars",   "steps", "item",  "index",  NULL};

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0, k, len;
    uint32_t cp, min;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if (s[i] >= 0xC2 && s[i] <= 0xDF) {
            len = 2, cp = s[i] & 0x1F, min = 0x80;
        } else if (s[i] >= 0xE0 && s[i] <= 0xEF) {
            len = 3, cp = s[i] & 0x0F, min = 0x800;
        } else if (s[i] >= 0xF0 && s[i] <= 0xF4) {
            len = 4, cp = s[i] & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Every string of v is valid UTF-8 and NUL-terminated; the tree is sound. */
static void check_value(const pt_json_t *v, unsigned depth)
{
    size_t i;

    if (v == NULL || depth > 2000)
        abort();
    switch (v->type) {
    case PT_JSON_NULL:
    case PT_JSON_TRUE:
    case PT_JSON_FALSE:
        break;
    case PT_JSON_NUMBER:
        if (v->u.str.len == 0 || v->u.str.p[v->u.str.len] != '\0')
            abort();
        break;
    case PT_JSON_STRING:
        if (v->u.str.p[v->u.str.len] != '\0' ||
            !utf8_valid((const unsigned char *)v->u.str.p, v->u.str.len))
            abort();
        break;
    case PT_JSON_ARRAY:
        for (i = 0; i < v->u.arr.n; i++)
            check_value(v->u.arr.items[i], depth + 1);
        break;
    case PT_JSON_OBJECT:
        for (i = 0; i < v->u.obj.n; i++) {
            if (v->u.obj.members[i].key == NULL)
                abort();
            check_value(v->u.obj.members[i].value, depth + 1);
        }
        break;
    default:
        abort();
    }
}

static void check_failure(const char *err)
{
    if (err[0] == '\0' || (strncmp(err, "at ", 3) != 0 && strcmp(err, "out of memory") != 0))
        abort();
}

static void run(const char *src, size_t len, const pt_json_t *ctx, int tmpl,
                const char *const *roots)
{
    char err[256];
    pt_arena_t ca, ea;
    pt_expr_t *e;
    const pt_json_t *c;
    pt_json_t *v, *w;

    pt_arena_init(&ca, NULL);
    pt_arena_init(&ea, NULL);
    e = tmpl ? pt_expr_compile_template(&ca, src, len, roots, err, sizeof(err))
             : pt_expr_compile(&ca, src, len, roots, err, sizeof(err));
    if (e == NULL) {
        check_failure(err);
        goto out;
    }
    if (memcmp(pt_expr_source(e), src, len) != 0 || pt_expr_source(e)[len] != '\0')
        abort();
    c = pt_expr_constant(e);
    if (c != NULL)
        check_value(c, 0);
    if (ctx == NULL)
        goto out;
    v = pt_expr_eval(e, ctx, &ea, err, sizeof(err));
    if (v == NULL) {
        if (c != NULL)
            abort();
        check_failure(err);
        goto out;
    }
    if (c != NULL && v != c)
        abort();
    check_value(v, 0);
    w = pt_expr_eval(e, ctx, &ea, err, sizeof(err));
    if (w == NULL || (memmem(src, len, "now", 3) == NULL && !pt_json_equal(v, w)))
        abort();
out:
    pt_arena_destroy(&ea);
    pt_arena_destroy(&ca);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *cut = memchr(p, '\0', size), *nl = memchr(p, '\n', size);
    pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
    pt_json_error_t jerr;
    pt_json_t *ctx = NULL;
    pt_arena_t a;
    size_t el;

    if (cut == NULL || (nl != NULL && nl < cut))
        cut = nl;
    el = cut ? (size_t)(cut - p) : size;
    pt_arena_init(&a, NULL);
    if (cut != NULL) {
        ctx = pt_json_parse(&a, cut + 1, size - el - 1, &lim, &jerr);
        if (ctx != NULL && ctx->type != PT_JSON_OBJECT)
            ctx = NULL;
    }
    run(p, el, ctx, 0, NULL);
    run(p, el, ctx, 0, ROOTS);
    run(p, el, ctx, 1, NULL);
    pt_arena_destroy(&a);
    return 0;
}
