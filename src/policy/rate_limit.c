/*
 * rate_limit.c - the `rate_limit` policy: a token bucket (rate and burst)
 * for the scope it is configured on (node, listener, API or route), shared
 * by every request of that scope (`key: scope`), one per client address
 * (`key: client`) or one per authenticated user (`key: user`; anonymous
 * requests by address). A list of limits applies them all (a request takes
 * a token from each, or from none). Over the limit: 429 with Retry-After and RateLimit-Limit,
 * -Remaining, -Reset (or 503, `status: 503`, as the reference answers).
 *
 *   policies:
 *     rate_limit: {rate: 100/s, burst: 20, key: client}
 *     rate_limit: [{rate: 10000/s}, {rate: 50/s, key: user}]
 *
 * The bucket is GCRA (the generic cell rate algorithm): one 64-bit
 * "theoretical arrival time" per bucket, advanced with a compare-and-swap,
 * so every I/O worker shares it without a lock and the rate is exact. Client
 * buckets are a fixed table indexed by a hash of the address (clients whose
 * hashes collide share a bucket). The limiter behind this interface is what
 * a cluster-wide one (Redis) will replace.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "http/http.h"
#include "policy/policy.h"

#define CLIENT_SLOTS 4096
#define NS           1000000000ull

enum { KEY_SCOPE = 0, KEY_CLIENT, KEY_USER };

#define LIMITS_MAX 8

typedef struct rate_limit_s {
    uint64_t interval_ns;         /* one token per interval */
    uint64_t burst;               /* bucket size */
    uint64_t tolerance;           /* (burst - 1) * interval */
    int per_client;               /* KEY_* */
    int status;                   /* 429 (default) or 503 */
    _Atomic uint64_t tat;         /* key: scope */
    _Atomic uint64_t *client_tat; /* key: client: CLIENT_SLOTS of them */
} rate_limit_t;

typedef struct rate_limits_s {
    rate_limit_t *items[LIMITS_MAX];
    size_t n;
} rate_limits_t;

static const char *const keys[] = {"rate", "burst", "key", "status", NULL};

/* "100/s", "6000/m", "36000/h" (or "/min", "/hour"...): tokens per second x 1e9. */
static int parse_rate(const char *s, double *per_s)
{
    char *end;
    double n = strtod(s, &end);
    if (end == s || *end != '/' || !(n > 0) || n > 1e9)
        return -1;
    end++;
    if (strcmp(end, "s") == 0 || strcmp(end, "sec") == 0 || strcmp(end, "second") == 0)
        *per_s = n;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0 || strcmp(end, "minute") == 0)
        *per_s = n / 60;
    else if (strcmp(end, "h") == 0 || strcmp(end, "hour") == 0)
        *per_s = n / 3600;
    else
        return -1;
    return 0;
}

static rate_limit_t *parse_one(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    rate_limit_t *r = pt_arena_calloc(c->arena, sizeof(*r));
    const pt_ynode_t *v;
    char *s, tmp[300];
    double per_s = 0;
    uint64_t x;
    size_t mark;

    if (r == NULL || pt__cfg_mapping(c, n, keys) != 0)
        return NULL;
    mark = pt__cfg_push(c, "rate", 4);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "rate"))) {
        pt__cfg_err(c, n->line, "required key is missing (e.g. rate: 100/s)");
        pt__cfg_pop(c, mark);
        return NULL;
    }
    if (pt__cfg_string(c, v, &s) != 0 || parse_rate(s, &per_s) != 0) {
        pt__cfg_err(c, v->line, "expected a rate like 100/s, 600/m or 1000/h, got %s",
                    pt__cfg_quote(v, tmp, sizeof(tmp)));
        pt__cfg_pop(c, mark);
        return NULL;
    }
    pt__cfg_pop(c, mark);
    r->interval_ns = (uint64_t)((double)NS / per_s);
    if (r->interval_ns == 0)
        r->interval_ns = 1;
    r->burst = per_s >= 1 ? (uint64_t)per_s : 1; /* default: one second's worth */
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "burst"))) {
        mark = pt__cfg_push(c, "burst", 5);
        if (pt__cfg_uint(c, v, 1, 100000000, &x) == 0)
            r->burst = x;
        pt__cfg_pop(c, mark);
    }
    r->tolerance = (r->burst - 1) * r->interval_ns;
    r->status = 429;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "status"))) {
        mark = pt__cfg_push(c, "status", 6);
        if (pt__cfg_uint(c, v, 429, 503, &x) == 0) {
            if (x != 429 && x != 503)
                pt__cfg_err(c, v->line, "expected 429 (default) or 503");
            r->status = (int)x;
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "key"))) {
        mark = pt__cfg_push(c, "key", 3);
        if (pt__cfg_string(c, v, &s) == 0) {
            if (strcmp(s, "client") == 0)
                r->per_client = KEY_CLIENT;
            else if (strcmp(s, "user") == 0)
                r->per_client = KEY_USER;
            else if (strcmp(s, "scope") != 0)
                pt__cfg_err(c, v->line, "expected scope (one bucket, default), client or user");
        }
        pt__cfg_pop(c, mark);
    }
    if (r->per_client && (r->client_tat = pt_arena_calloc(c->arena, sizeof(*r->client_tat) *
                                                                        CLIENT_SLOTS)) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return NULL;
    }
    return r;
}

static void *parse(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    rate_limits_t *l = pt_arena_calloc(c->arena, sizeof(*l));
    size_t i, mark;
    if (l == NULL)
        return NULL;
    if (n->kind != PT_YNODE_SEQUENCE) {
        if ((l->items[0] = parse_one(c, n)) == NULL)
            return NULL;
        l->n = 1;
        return l;
    }
    if (n->n == 0 || n->n > LIMITS_MAX) {
        pt__cfg_err(c, n->line, "expected 1 to %d limits", LIMITS_MAX);
        return NULL;
    }
    for (i = 0; i < n->n; i++) {
        mark = pt__cfg_push_index(c, i);
        l->items[l->n] = parse_one(c, n->items[i]);
        pt__cfg_pop(c, mark);
        if (l->items[l->n] == NULL)
            return NULL;
        l->n++;
    }
    return l;
}

static size_t slot_of_user(pt_req_t *req)
{
    const char *p = req->user->name;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)(h % CLIENT_SLOTS);
}

static size_t slot_of(pt_req_t *req)
{
    struct sockaddr_storage a;
    const unsigned char *p;
    size_t n, i;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    pt_policy_client_addr(req, &a);
    if (a.ss_family == AF_INET6) {
        p = (const unsigned char *)&((struct sockaddr_in6 *)&a)->sin6_addr;
        n = 16;
    } else {
        p = (const unsigned char *)&((struct sockaddr_in *)&a)->sin_addr;
        n = 4;
    }
    for (i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return (size_t)(h % CLIENT_SLOTS);
}

/* RateLimit-Limit, -Remaining (tokens left after this request) and -Reset
 * (seconds until the bucket is full again) on an allowed request. */
static int success_headers(const rate_limit_t *r, pt_req_t *req, uint64_t now, uint64_t next)
{
    pt_arena_t *a = pt_http_req_arena(req);
    pt_header_kv_t h[3];
    char *v = pt_arena_alloc(a, 3 * 24);
    uint64_t left =
        now + r->tolerance >= next ? (now + r->tolerance - next) / r->interval_ns + 1 : 0;
    if (v == NULL)
        return PT_POLICY_NEXT;
    v[pt_u64_to_str(r->burst, v)] = '\0';
    v[24 + pt_u64_to_str(left, v + 24)] = '\0';
    v[48 + pt_u64_to_str((next - now + NS - 1) / NS, v + 48)] = '\0';
    h[0] = (pt_header_kv_t){"RateLimit-Limit", v};
    h[1] = (pt_header_kv_t){"RateLimit-Remaining", v + 24};
    h[2] = (pt_header_kv_t){"RateLimit-Reset", v + 48};
    pt_http_resp_add(req, h, 3);
    return PT_POLICY_NEXT;
}

/* Takes a token from r's bucket for req: 1 (and *next, *now) or 0 (over,
 * *wait_ns until a token is back). */
static int take(rate_limit_t *r, pt_req_t *req, _Atomic uint64_t **tatp, uint64_t *now_out,
                uint64_t *next_out, uint64_t *wait_ns)
{
    _Atomic uint64_t *tat = r->per_client == KEY_SCOPE ? &r->tat
                            : r->per_client == KEY_USER && req->user != NULL
                                ? &r->client_tat[slot_of_user(req)]
                                : &r->client_tat[slot_of(req)];
    uint64_t now = uv_hrtime() + r->tolerance + r->interval_ns; /* > 0 from the start */
    uint64_t old = atomic_load_explicit(tat, memory_order_relaxed), t, next;
    for (;;) {
        t = old > now ? old : now;
        if (t - now > r->tolerance) {
            *wait_ns = t - now - r->tolerance;
            return 0;
        }
        next = t + r->interval_ns;
        if (atomic_compare_exchange_weak_explicit(tat, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *tatp = tat;
            *now_out = now;
            *next_out = next;
            return 1;
        }
    }
}

static int handle(const void *conf, pt_req_t *req)
{
    const rate_limits_t *l = conf;
    _Atomic uint64_t *taken[LIMITS_MAX];
    uint64_t now[LIMITS_MAX], next[LIMITS_MAX], wait = 0, best = UINT64_MAX, left;
    char limit[24], remaining[24], reset[24], retry[24];
    pt_header_kv_t hdrs[4];
    size_t i, k, tight = 0;
    rate_limit_t *r;

    for (i = 0; i < l->n; i++) {
        r = l->items[i]; /* the buckets are its mutable part */
        if (!take(r, req, &taken[i], &now[i], &next[i], &wait)) {
            /* none taken: give back the tokens of the limits before it */
            for (k = 0; k < i; k++)
                atomic_fetch_sub_explicit(taken[k], l->items[k]->interval_ns, memory_order_relaxed);
            break;
        }
        left = now[i] + r->tolerance >= next[i] ? (now[i] + r->tolerance - next[i]) / r->interval_ns
                                                : 0;
        if (left < best) {
            best = left;
            tight = i;
        }
    }
    if (i == l->n) {
        pt_policy_count(req, PT_PSTAT_RATE_ALLOWED);
        /* the headers of the limit closest to refusing */
        return success_headers(l->items[tight], req, now[tight], next[tight]);
    }
    r = l->items[i];
    snprintf(limit, sizeof(limit), "%llu", (unsigned long long)r->burst);
    snprintf(remaining, sizeof(remaining), "0");
    snprintf(retry, sizeof(retry), "%llu", (unsigned long long)((wait + NS - 1) / NS));
    snprintf(reset, sizeof(reset), "%s", retry);
    hdrs[0] = (pt_header_kv_t){"Retry-After", retry};
    hdrs[1] = (pt_header_kv_t){"RateLimit-Limit", limit};
    hdrs[2] = (pt_header_kv_t){"RateLimit-Remaining", remaining};
    hdrs[3] = (pt_header_kv_t){"RateLimit-Reset", reset};
    pt_policy_count(req, PT_PSTAT_RATE_LIMITED);
    pt_http_problem(req, r->status, "rate-limited",
                    "Too many requests: the rate limit is exceeded; retry later.", hdrs, 4);
    return PT_POLICY_ANSWERED;
}

const pt_policy_type_t pt_policy_rate_limit = {"rate_limit", PT_ORDER_RATE_LIMIT, parse, handle,
                                               NULL};
