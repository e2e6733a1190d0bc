/*
 * concurrency.c - the `concurrency` policy: at most `max` requests of the
 * scope (API or route) in progress at once, across the node's workers (one
 * atomic counter, taken here and given back when the request ends); beyond
 * it, 503 with Retry-After.
 *
 *   policies:
 *     concurrency: {max: 100}
 */
#include <stdatomic.h>

#include "config/config.h"
#include "core/arena.h"
#include "http/http.h"
#include "policy/policy.h"

typedef struct concurrency_s {
    uint64_t max;
    atomic_uint_fast64_t running;
} concurrency_t;

static const char *const keys[] = {"max", NULL};

static void *parse(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    concurrency_t *k = pt_arena_calloc(c->arena, sizeof(*k));
    const pt_ynode_t *v;
    size_t mark;
    if (k == NULL || pt__cfg_mapping(c, n, keys) != 0)
        return NULL;
    mark = pt__cfg_push(c, "max", 3);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "max"))) {
        pt__cfg_err(c, n->line, "required key is missing (e.g. max: 100)");
        k = NULL;
    } else if (pt__cfg_uint(c, v, 1, 1000000, &k->max) != 0) {
        k = NULL;
    }
    pt__cfg_pop(c, mark);
    return k;
}

/* The request ended (answered, or the client left). */
static void release(void *data)
{
    concurrency_t *k = data;
    atomic_fetch_sub_explicit(&k->running, 1, memory_order_release);
}

static int handle(const void *conf, pt_req_t *req)
{
    concurrency_t *k = (concurrency_t *)conf; /* the counter is its mutable part */
    static const pt_header_kv_t retry[] = {{"Retry-After", "1"}};
    if (atomic_fetch_add_explicit(&k->running, 1, memory_order_acquire) >= k->max) {
        atomic_fetch_sub_explicit(&k->running, 1, memory_order_release);
        pt_policy_count(req, PT_PSTAT_CONCURRENCY_REJECTED);
        pt_http_problem(req, 503, "too-many-concurrent",
                        "Too many requests in progress for this API; retry shortly.", retry, 1);
        return 1;
    }
    if (pt_arena_cleanup_add(pt_http_req_arena(req), release, k) != PT_OK) {
        release(k);
        pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        return 1;
    }
    pt_policy_count(req, PT_PSTAT_CONCURRENCY_ALLOWED);
    return 0;
}

const pt_policy_type_t pt_policy_concurrency = {"concurrency", PT_ORDER_CONCURRENCY, parse, handle,
                                                NULL};
