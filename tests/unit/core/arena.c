/*
 * Unit tests of src/core/arena.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"

static void test_alignment(void **state)
{
    pt_arena_t a;
    size_t sizes[] = {1, 3, 7, 15, 16, 17, 31, 100, 1000, 5000, 20000};
    size_t i;

    (void)state;
    pt_arena_init(&a, NULL);
    for (i = 0; i < PT_ARRAY_SIZE(sizes); i++) {
        unsigned char *p = pt_arena_alloc(&a, sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, sizes[i]); /* ASan: the whole range is ours */
    }
    /* Zero bytes still gives a distinct, aligned pointer. */
    assert_non_null(pt_arena_alloc(&a, 0));
    assert_null(pt_arena_alloc(&a, SIZE_MAX - 8));
    pt_arena_destroy(&a);
    assert_int_equal(a.total, 0);
    assert_null(a.head);
}

static void test_small_allocations_are_contiguous(void **state)
{
    pt_arena_t a;
    char *p, *q;

    (void)state;
    pt_arena_init(&a, NULL);
    p = pt_arena_alloc(&a, 10);
    q = pt_arena_alloc(&a, 10);
    assert_ptr_equal(q, p + 16);
    assert_int_equal(a.total, 32);
    pt_arena_destroy(&a);
}

static void test_big_allocations(void **state)
{
    pt_arena_t a;
    char *small1, *big, *small2, *big2;

    (void)state;
    pt_arena_init(&a, NULL);
    small1 = pt_arena_alloc(&a, 16);
    big = pt_arena_alloc(&a, 3 * PT_ARENA_BLOCK_SIZE);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    memset(big, 1, 3 * PT_ARENA_BLOCK_SIZE);
    /* The current block had room: small allocations continue in it. */
    small2 = pt_arena_alloc(&a, 16);
    assert_ptr_equal(small2, small1 + 16);
    big2 = pt_arena_alloc(&a, 1u << 20);
    assert_non_null(big2);
    memset(big2, 2, 1u << 20);
    assert_true(a.total >= 3 * PT_ARENA_BLOCK_SIZE + (1u << 20) + 32);
    pt_arena_destroy(&a);
}

static void test_calloc_strdup_printf(void **state)
{
    pt_arena_t a;
    unsigned char *z;
    char *s;
    size_t i;

    (void)state;
    pt_arena_init(&a, NULL);
    z = pt_arena_calloc(&a, 300);
    for (i = 0; i < 300; i++)
        assert_int_equal(z[i], 0);
    s = pt_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_string_equal(pt_arena_strdup(&a, ""), "");
    s = pt_arena_printf(&a, "%s-%d-%05.1f", "x", 42, 3.14159);
    assert_string_equal(s, "x-42-003.1");
    pt_arena_destroy(&a);
}

static void test_realloc_in_place(void **state)
{
    pt_arena_t a;
    char *p, *q;

    (void)state;
    pt_arena_init(&a, NULL);
    p = pt_arena_alloc(&a, 16);
    memcpy(p, "0123456789abcdef", 16);
    q = pt_arena_realloc(&a, p, 16, 200);
    assert_ptr_equal(p, q);
    assert_memory_equal(q, "0123456789abcdef", 16);
    assert_int_equal(a.total, 208);
    /* The next allocation starts after the grown one. */
    assert_ptr_equal(pt_arena_alloc(&a, 1), q + 208);
    pt_arena_destroy(&a);
}

static void test_realloc_by_copy(void **state)
{
    pt_arena_t a;
    char *p, *other, *q, *big;

    (void)state;
    pt_arena_init(&a, NULL);
    p = pt_arena_alloc(&a, 16);
    memcpy(p, "0123456789abcdef", 16);
    other = pt_arena_alloc(&a, 16);
    memset(other, 'x', 16);
    /* Not the last allocation: moved. */
    q = pt_arena_realloc(&a, p, 16, 64);
    assert_ptr_not_equal(p, q);
    assert_memory_equal(q, "0123456789abcdef", 16);
    /* Last allocation but too big for the block: moved to a new block. */
    big = pt_arena_realloc(&a, q, 64, 4 * PT_ARENA_BLOCK_SIZE);
    assert_non_null(big);
    assert_ptr_not_equal(big, q);
    assert_memory_equal(big, "0123456789abcdef", 16);
    memset(big, 0, 4 * PT_ARENA_BLOCK_SIZE);
    /* Shrinking keeps the pointer when it is the last allocation. */
    assert_memory_equal(other, "xxxxxxxxxxxxxxxx", 16);
    /* realloc(NULL) is an allocation. */
    assert_non_null(pt_arena_realloc(&a, NULL, 0, 32));
    pt_arena_destroy(&a);
}

static int order[8];
static int norder;

static void record_cb(void *data)
{
    order[norder++] = (int)(intptr_t)data;
}

static void test_cleanups_reverse_order(void **state)
{
    pt_arena_t a;

    (void)state;
    norder = 0;
    pt_arena_init(&a, NULL);
    assert_int_equal(pt_arena_cleanup_add(&a, record_cb, (void *)1), 0);
    pt_arena_alloc(&a, 100);
    assert_int_equal(pt_arena_cleanup_add(&a, record_cb, (void *)2), 0);
    assert_int_equal(pt_arena_cleanup_add(&a, record_cb, (void *)3), 0);
    pt_arena_reset(&a);
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1);
    /* Each runs once: a second reset runs nothing. */
    pt_arena_reset(&a);
    assert_int_equal(norder, 3);
    /* The arena is usable after a reset. */
    assert_non_null(pt_arena_alloc(&a, 10));
    assert_int_equal(pt_arena_cleanup_add(&a, record_cb, (void *)4), 0);
    pt_arena_destroy(&a);
    assert_int_equal(norder, 4);
    assert_int_equal(order[3], 4);
}

static void test_block_cache_bounded(void **state)
{
    pt_block_cache_t cache = {NULL, 0, 2};
    pt_arena_t a;
    int i;

    (void)state;
    pt_arena_init(&a, &cache);
    /* Four standard blocks (5000 bytes do not fit twice in one) and a big one. */
    for (i = 0; i < 4; i++)
        assert_non_null(pt_arena_alloc(&a, 5000));
    assert_non_null(pt_arena_alloc(&a, 10 * PT_ARENA_BLOCK_SIZE));
    pt_arena_reset(&a);
    /* Only `max` standard blocks are kept; the big one is never cached. */
    assert_int_equal(cache.count, 2);
    assert_non_null(cache.free);

    /* A new arena takes its blocks from the cache first. */
    pt_arena_init(&a, &cache);
    assert_non_null(pt_arena_alloc(&a, 5000));
    assert_int_equal(cache.count, 1);
    assert_non_null(pt_arena_alloc(&a, 5000));
    assert_int_equal(cache.count, 0);
    assert_non_null(pt_arena_alloc(&a, 5000)); /* from malloc */
    pt_arena_destroy(&a);
    assert_int_equal(cache.count, 2);
    pt_block_cache_drain(&cache);
    assert_int_equal(cache.count, 0);
    assert_null(cache.free);
}

static void test_append_grows_a_string(void **state)
{
    pt_arena_t a;
    char *s = NULL;
    size_t len = 0;
    int i;

    (void)state;
    pt_arena_init(&a, NULL);
    assert_int_equal(pt_arena_append(&a, &s, &len, "ab", 2), PT_OK);
    assert_int_equal(pt_arena_append(&a, &s, &len, "", 0), PT_OK);
    assert_int_equal(pt_arena_append(&a, &s, &len, "cd", 2), PT_OK);
    assert_string_equal(s, "abcd");
    assert_int_equal(len, 4);
    /* past a block: copied, still one string */
    for (i = 0; i < 5000; i++)
        assert_int_equal(pt_arena_append(&a, &s, &len, "xy", 2), PT_OK);
    assert_int_equal(len, 10004);
    assert_int_equal(strlen(s), 10004);
    assert_memory_equal(s, "abcdxy", 6);
    pt_arena_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grows_a_string),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_small_allocations_are_contiguous),
        cmocka_unit_test(test_big_allocations),
        cmocka_unit_test(test_calloc_strdup_printf),
        cmocka_unit_test(test_realloc_in_place),
        cmocka_unit_test(test_realloc_by_copy),
        cmocka_unit_test(test_cleanups_reverse_order),
        cmocka_unit_test(test_block_cache_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
