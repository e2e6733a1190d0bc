/*
 * fuzz_jschema.c - libFuzzer target for the schema compiler and validator.
 *
 * Input: a schema document, a NUL byte, an instance document (both JSON).
 * The schema is compiled as the set {"s": <schema>} (so that it may $ref
 * itself as "#/schemas/s") and, when it compiles, the instance is validated
 * in both modes with a small and a large violation limit. Compilation must
 * either succeed or explain itself; validation must never crash, and the
 * violations array must hold min(count, max) well-formed entries.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "process/jschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const pt_jschema_t *s, const pt_json_t *v, pt_jschema_mode_t mode, pt_arena_t *a,
                  size_t max)
{
    pt_json_t *out = (pt_json_t *)v;
    int n = pt_jschema_validate(s, v, mode, a, max, &out);
    int n2 = pt_jschema_validate(s, v, mode, NULL, max, NULL);
    size_t i;

    if (n < 0 || n != n2)
        abort();
    if (n == 0) {
        if (out != NULL)
            abort();
        return;
    }
    if (out == NULL || out->type != PT_JSON_ARRAY ||
        out->u.arr.n != ((size_t)n < max ? (size_t)n : max))
        abort();
    for (i = 0; i < out->u.arr.n; i++) {
        const pt_json_t *o = out->u.arr.items[i], *p, *m;
        if (o->type != PT_JSON_OBJECT)
            abort();
        p = pt_json_get(o, "pointer");
        m = pt_json_get(o, "message");
        if (p == NULL || m == NULL || p->type != PT_JSON_STRING || m->type != PT_JSON_STRING ||
            m->u.str.len == 0 || (p->u.str.len > 0 && p->u.str.p[0] != '/'))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
    const char *p = (const char *)data, *nul;
    pt_json_t *schema, *inst, *defs;
    pt_jschema_set_t *set;
    const pt_jschema_t *s;
    pt_json_error_t jerr;
    char err[256];
    pt_arena_t a;

    nul = memchr(p, '\0', size);
    if (nul == NULL)
        return 0;
    lim.max_items = 100000;
    pt_arena_init(&a, NULL);
    schema = pt_json_parse(&a, p, (size_t)(nul - p), &lim, &jerr);
    inst = pt_json_parse(&a, nul + 1, size - (size_t)(nul - p) - 1, &lim, &jerr);
    if (schema == NULL || inst == NULL)
        goto done;
    defs = pt_json_object(&a);
    if (defs == NULL || pt_json_object_set(&a, defs, "s", 1, schema) != PT_OK)
        abort();
    set = pt_jschema_compile(&a, defs, err, sizeof(err));
    if (set == NULL) {
        if (strncmp(err, "s: ", 3) != 0)
            abort();
        goto done;
    }
    s = pt_jschema_get(set, "s");
    if (s == NULL || pt_jschema_doc(s) != schema)
        abort();
    check(s, inst, PT_JSCHEMA_REQUEST, &a, 3);
    check(s, inst, PT_JSCHEMA_RESPONSE, &a, 1000);
    /* The same document as an anonymous schema must compile too. */
    if (pt_jschema_compile_one(&a, set, schema, err, sizeof(err)) == NULL)
        abort();
done:
    pt_arena_destroy(&a);
    return 0;
}
