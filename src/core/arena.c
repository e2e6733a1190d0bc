/*
 * arena.c - region allocator (see arena.h).
 */
#include "core/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pt_arena_block_s {
    pt_arena_block_t *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
};

struct pt_arena_cleanup_s {
    pt_arena_cleanup_t *next;
    void (*fn)(void *);
    void *data;
};

#define ALIGN16(n) (((n) + 15u) & ~(size_t)15u)
#define STD_USABLE (PT_ARENA_BLOCK_SIZE - sizeof(pt_arena_block_t))

void pt_arena_init(pt_arena_t *a, pt_block_cache_t *cache)
{
    a->head = NULL;
    a->cleanups = NULL;
    a->cache = cache;
    a->total = 0;
}

static pt_arena_block_t *block_new(pt_arena_t *a, size_t need)
{
    pt_arena_block_t *b;
    if (need <= STD_USABLE) {
        if (a->cache != NULL && a->cache->free != NULL) {
            b = a->cache->free;
            a->cache->free = b->next;
            a->cache->count--;
        } else {
            b = malloc(PT_ARENA_BLOCK_SIZE);
            if (b == NULL)
                return NULL;
            b->size = STD_USABLE;
        }
    } else {
        if (need > SIZE_MAX - sizeof(pt_arena_block_t))
            return NULL;
        b = malloc(sizeof(pt_arena_block_t) + need);
        if (b == NULL)
            return NULL;
        b->size = need;
    }
    b->used = 0;
    return b;
}

void *pt_arena_alloc(pt_arena_t *a, size_t size)
{
    pt_arena_block_t *b = a->head;
    size_t need;
    void *p;

    if (size > SIZE_MAX - 32)
        return NULL;
    need = ALIGN16(size ? size : 1);
    if (b == NULL || b->size - b->used < need) {
        pt_arena_block_t *nb = block_new(a, need);
        if (nb == NULL)
            return NULL;
        if (b != NULL && nb->size > STD_USABLE && b->size - b->used >= 256) {
            /* A large one-off allocation: keep filling the current block. */
            nb->next = b->next;
            b->next = nb;
            nb->used = need;
            a->total += need;
            return nb->data;
        }
        nb->next = b;
        a->head = b = nb;
    }
    p = b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

void *pt_arena_calloc(pt_arena_t *a, size_t size)
{
    void *p = pt_arena_alloc(a, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

char *pt_arena_strndup(pt_arena_t *a, const char *s, size_t len)
{
    char *p = pt_arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *pt_arena_strdup(pt_arena_t *a, const char *s)
{
    return pt_arena_strndup(a, s, strlen(s));
}

char *pt_arena_printf(pt_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = pt_arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *pt_arena_realloc(pt_arena_t *a, void *old, size_t old_size, size_t new_size)
{
    pt_arena_block_t *b = a->head;
    void *p;

    /* Grow in place when old is the last allocation of the current block. */
    if (old != NULL && b != NULL && (unsigned char *)old + ALIGN16(old_size) == b->data + b->used &&
        (unsigned char *)old >= b->data) {
        size_t off = (size_t)((unsigned char *)old - b->data);
        size_t need = ALIGN16(new_size ? new_size : 1);
        if (need <= b->size - off) {
            a->total += need - (b->used - off);
            b->used = off + need;
            return old;
        }
    }
    p = pt_arena_alloc(a, new_size);
    if (p != NULL && old != NULL)
        memcpy(p, old, PT_MIN(old_size, new_size));
    return p;
}

int pt_arena_append(pt_arena_t *a, char **s, size_t *len, const char *at, size_t n)
{
    char *p;
    if (n > SIZE_MAX - *len - 1)
        return PT_ENOMEM;
    p = pt_arena_realloc(a, *s, *len ? *len + 1 : 0, *len + n + 1);
    if (p == NULL)
        return PT_ENOMEM;
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *s = p;
    return PT_OK;
}

int pt_arena_cleanup_add(pt_arena_t *a, void (*fn)(void *), void *data)
{
    pt_arena_cleanup_t *c = pt_arena_alloc(a, sizeof(*c));
    if (c == NULL)
        return PT_ENOMEM;
    c->fn = fn;
    c->data = data;
    c->next = a->cleanups;
    a->cleanups = c;
    return PT_OK;
}

void pt_arena_reset(pt_arena_t *a)
{
    pt_arena_cleanup_t *c;
    pt_arena_block_t *b, *next;

    for (c = a->cleanups; c != NULL; c = c->next)
        c->fn(c->data);
    a->cleanups = NULL;
    for (b = a->head; b != NULL; b = next) {
        next = b->next;
        if (b->size == STD_USABLE && a->cache != NULL && a->cache->count < a->cache->max) {
            b->next = a->cache->free;
            a->cache->free = b;
            a->cache->count++;
        } else {
            free(b);
        }
    }
    a->head = NULL;
    a->total = 0;
}

void pt_block_cache_drain(pt_block_cache_t *c)
{
    pt_arena_block_t *b, *next;
    for (b = c->free; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    c->free = NULL;
    c->count = 0;
}
