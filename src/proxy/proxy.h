/*
 * proxy.h - proxy APIs: forwarding a request to an upstream target and
 * streaming the response back (DESIGN.md §2, issue 3).
 *
 * A snapshot holds one pt_proxy_api_t per proxy API: the resolved target
 * addresses and the weighted round-robin schedule. Each worker keeps its own
 * pools of idle upstream connections (per target address), so nothing is
 * shared between loops.
 */
#ifndef PT_PROXY_H
#define PT_PROXY_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>

#include "config/config-t.h"
#include "core/arena.h"
#include "http/http-t.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct pt_snapshot_s pt_snapshot_t;
typedef struct uv_loop_s uv_loop_t;

#define PT_PROXY_WORKER_SLOTS 64

typedef struct pt_proxy_target_s {
    const pt_upstream_target_t *def;
    struct sockaddr_storage addr; /* resolved when the snapshot was built (workers re-resolve
                                     their own copy when dns_ttl passes) */
    char *key;                    /* "host:port" or "https://host:port": logs, access log */
    char *pool_key;    /* identity of the worker pools: key, and the API for https (its TLS) */
    char *host_header; /* "host" or "host:port" */
    int numeric;       /* the host is an IP address: never re-resolved */
    atomic_uint down;  /* set by the active health checks (main thread), read by workers */
    /* each worker's pool of this target, found without a lookup (index: worker id;
     * written and read by that worker only) */
    void *wpool[PT_PROXY_WORKER_SLOTS];
} pt_proxy_target_t;

typedef struct pt_proxy_api_s {
    const pt_api_def_t *api;
    const pt_upstream_t *up;
    pt_proxy_target_t *targets;
    size_t ntargets;
    unsigned *schedule; /* target indexes, interleaved by weight (smooth WRR) */
    size_t nschedule;
    SSL_CTX *tls; /* for https targets; freed with the snapshot arena */
} pt_proxy_api_t;

/* Builds the runtime view of a proxy API in arena a: resolves every target
 * (getaddrinfo: call it off the I/O loops, e.g. while building a snapshot)
 * and computes the schedule. Returns NULL with a message in err. */
pt_proxy_api_t *pt_proxy_api_build(pt_arena_t *a, const pt_api_def_t *api, char *err,
                                   size_t errlen);

/* Forwards req (its head is complete; the body, if any, is still arriving)
 * to one of pa's targets. Answers 502/504/503 as problem+json when the
 * upstream cannot be reached or times out before the response began; once
 * it began, an upstream failure closes the client connection. */
void pt_proxy_handle(pt_req_t *req, const pt_proxy_api_t *pa);

/* Active health checks (health.c): probes every target of s's proxy APIs
 * that have `health.check`, on loop (the main thread's), and sets their
 * `down` flags. Holds a reference of s until stopped. Returns NULL when
 * there is nothing to check (or no memory: then nothing is checked, logged). */
typedef struct pt_health_s pt_health_t;
pt_health_t *pt_health_start(uv_loop_t *loop, pt_snapshot_t *s);

/* Stops the checks; memory and the snapshot reference are released once
 * libuv has closed the handles (run the loop). NULL is ignored. */
void pt_health_stop(pt_health_t *h);

/* Relays an upstream response given as bytes to req, through the same
 * parser callbacks as a real upstream connection but without a socket
 * (fuzzing). Returns 0 when the bytes held a valid response, -1 otherwise
 * (the client then got a 502 or a closed connection). */
int pt_proxy_fuzz_response(pt_req_t *req, const char *data, size_t len);

#endif
