/*
 * fuzz_json.c - libFuzzer target for the JSON parser and writer.
 *
 * The input is parsed with small limits. A failure must come with a message
 * and a position inside the input whose line and column agree with its
 * offset. A success is written, and the output must parse again (with the
 * same limits) into an equal value that writes to the same bytes; keys must
 * be unique, and every number's integer and double conversions must agree
 * with its exact value.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_number(pt_arena_t *a, const pt_json_t *v)
{
    pt_json_t *w;
    int64_t i;
    double d;

    if (pt_json_number_text(a, v->u.str.p, v->u.str.len) == NULL)
        abort(); /* the parser kept text the builder refuses */
    if (pt_json_to_int64(v, &i) == PT_OK) {
        /* Exact: the integer written back has the same value. */
        w = pt_json_int(a, i);
        if (w == NULL || !pt_json_equal(v, w) || !pt_json_equal(w, v))
            abort();
        if (pt_json_truthy(v) != (i != 0))
            abort();
    }
    d = pt_json_to_double(v);
    w = pt_json_double(a, d);
    if (isfinite(d)) {
        if (w == NULL || pt_json_to_double(w) != d)
            abort();
    } else if (w != NULL) {
        abort();
    }
}

static void check_tree(pt_arena_t *a, const pt_json_t *v)
{
    size_t i, j;

    switch (v->type) {
    case PT_JSON_NUMBER:
        check_number(a, v);
        break;
    case PT_JSON_STRING:
        if (v->u.str.p[v->u.str.len] != '\0')
            abort();
        break;
    case PT_JSON_ARRAY:
        for (i = 0; i < v->u.arr.n; i++)
            check_tree(a, v->u.arr.items[i]);
        break;
    case PT_JSON_OBJECT:
        for (i = 0; i < v->u.obj.n; i++) {
            const pt_json_member_t *m = &v->u.obj.members[i];
            if (memchr(m->key, '\0', m->key_len) != NULL || m->key[m->key_len] != '\0')
                abort();
            for (j = 0; j < i; j++)
                if (v->u.obj.members[j].key_len == m->key_len &&
                    memcmp(v->u.obj.members[j].key, m->key, m->key_len) == 0)
                    abort();
            if (pt_json_getn(v, m->key, m->key_len) != m->value)
                abort();
            check_tree(a, m->value);
        }
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const pt_json_limits_t lim = {16, 2000, 4096};
    pt_json_error_t err;
    pt_json_t *v, *w;
    pt_arena_t a;
    pt_buf_t b1, b2;
    unsigned line = 1, column = 1;
    size_t i;

    pt_arena_init(&a, NULL);
    v = pt_json_parse(&a, (const char *)data, size, &lim, &err);
    if (v == NULL) {
        if (err.message[0] == '\0' || err.offset > size ||
            memchr(err.message, '\0', sizeof(err.message)) == NULL)
            abort();
        for (i = 0; i < err.offset; i++) {
            if (data[i] == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        if (err.line != line || err.column != column)
            abort();
        pt_arena_destroy(&a);
        return 0;
    }

    check_tree(&a, v);
    if (!pt_json_equal(v, v))
        abort();
    pt_buf_init(&b1, 0);
    pt_buf_init(&b2, 0);
    if (pt_json_write(&b1, v) != PT_OK)
        abort();
    w = pt_json_parse(&a, b1.data, b1.len, &lim, &err);
    if (w == NULL || !pt_json_equal(v, w) || !pt_json_equal(w, v))
        abort();
    if (pt_json_write(&b2, w) != PT_OK || b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
        abort();
    pt_buf_free(&b1);
    pt_buf_free(&b2);
    pt_arena_destroy(&a);
    return 0;
}
