/*
 * arena.h - region allocator: many small allocations freed in one go.
 *
 * A request (or a configuration, or a snapshot) owns one arena. Allocation is a
 * pointer bump inside the current block; a new block is taken when it is full.
 * Blocks of the standard size may come from a pt_block_cache_t so that a
 * worker serving requests in steady state calls malloc() zero times per request.
 * Non-memory resources register a cleanup that runs when the arena is reset or
 * destroyed (nginx ngx_pool_cleanup_s).
 *
 * Not thread-safe: an arena belongs to one thread at a time.
 */
#ifndef PT_ARENA_H
#define PT_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include "core/common.h"

#define PT_ARENA_BLOCK_SIZE 8192

typedef struct pt_arena_block_s pt_arena_block_t;
typedef struct pt_arena_cleanup_s pt_arena_cleanup_t;

/* A per-thread free list of standard blocks (bounded). */
typedef struct pt_block_cache_s {
    pt_arena_block_t *free;
    size_t count;
    size_t max;
} pt_block_cache_t;

typedef struct pt_arena_s {
    pt_arena_block_t *head; /* current block (list of blocks, newest first) */
    pt_arena_cleanup_t *cleanups;
    pt_block_cache_t *cache; /* may be NULL: blocks come from malloc */
    size_t total;            /* bytes handed out, for limits and metrics */
} pt_arena_t;

/* Initialises an arena; no memory is taken until the first allocation. */
void pt_arena_init(pt_arena_t *a, pt_block_cache_t *cache);

/* Returns size bytes aligned to 16, owned by the arena; NULL on allocation failure. */
void *pt_arena_alloc(pt_arena_t *a, size_t size);
void *pt_arena_calloc(pt_arena_t *a, size_t size);

/* Copies len bytes and a NUL terminator into the arena; NULL on failure. */
char *pt_arena_strndup(pt_arena_t *a, const char *s, size_t len);
char *pt_arena_strdup(pt_arena_t *a, const char *s);

/* Appends n bytes to the NUL-terminated arena string *s of *len bytes
 * (*s may be NULL with *len 0), growing it in place when it is the arena's
 * last allocation. Returns 0, or PT_ENOMEM (*s and *len unchanged). */
int pt_arena_append(pt_arena_t *a, char **s, size_t *len, const char *at, size_t n);

/* printf into the arena; NULL on failure. */
char *pt_arena_printf(pt_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Grows the allocation `old` (of old_size bytes, the most recent one or any)
 * to new_size, copying; returns the new pointer or NULL (old stays valid). */
void *pt_arena_realloc(pt_arena_t *a, void *old, size_t old_size, size_t new_size);

/* Registers fn(data) to run (last registered first) when the arena is reset or
 * destroyed. Returns 0, or PT_ENOMEM (fn is then not registered). */
int pt_arena_cleanup_add(pt_arena_t *a, void (*fn)(void *), void *data);

/* Runs the cleanups and returns all blocks (to the cache when there is room).
 * The arena may be used again afterwards. */
void pt_arena_reset(pt_arena_t *a);
#define pt_arena_destroy pt_arena_reset

/* Frees every block held by a cache. */
void pt_block_cache_drain(pt_block_cache_t *c);

#endif
