/*
 * stats.h - counters of the policies' decisions (issue 7 item 7), kept per
 * I/O worker: each worker's loop is the only writer of its counters (a
 * relaxed load and store: no lock, no locked instruction), readers on other
 * threads sum them (pt_policy_stats_read). The dashboard and Prometheus
 * exporter of the observability issue read them from here.
 */
#ifndef PT_POLICY_STATS_H
#define PT_POLICY_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct pt_worker_s;

typedef enum pt_pstat_e {
    PT_PSTAT_AUTH_ALLOWED = 0,
    PT_PSTAT_AUTH_NO_CREDENTIALS,
    PT_PSTAT_AUTH_MALFORMED,
    PT_PSTAT_AUTH_UNKNOWN,      /* unknown key, user or certificate */
    PT_PSTAT_AUTH_BAD_PASSWORD, /* a known user, a wrong password */
    PT_PSTAT_AUTH_BAD_TOKEN,    /* signature, algorithm, key */
    PT_PSTAT_AUTH_EXPIRED,      /* exp, nbf, no exp */
    PT_PSTAT_AUTH_CLAIMS,       /* issuer, audience, no user claim */
    PT_PSTAT_AUTH_UNTRUSTED,    /* certificate header from elsewhere, or from another CA */
    PT_PSTAT_AUTH_FORBIDDEN,    /* authenticated, not allowed: roles, APIs, addresses */
    PT_PSTAT_AUTH_BUSY,         /* the authentication pool was full */
    PT_PSTAT_IP_ALLOWED,
    PT_PSTAT_IP_DENIED,
    PT_PSTAT_RATE_ALLOWED,
    PT_PSTAT_RATE_LIMITED,
    PT_PSTAT_CONCURRENCY_ALLOWED,
    PT_PSTAT_CONCURRENCY_REJECTED,
    PT_PSTAT_BODY_TOO_LARGE,
    PT_PSTAT_CORS_PREFLIGHT,
    PT_PSTAT_CORS_REFUSED,
    PT_PSTAT_MAX
} pt_pstat_t;

/* "auth.allowed", "auth.no_credentials", ... */
extern const char *const pt_pstat_names[PT_PSTAT_MAX];

typedef struct pt_pstats_s {
    _Atomic uint64_t n[PT_PSTAT_MAX];
} pt_pstats_t;

static inline void pt_pstat_inc(pt_pstats_t *s, pt_pstat_t k)
{
    atomic_store_explicit(&s->n[k], atomic_load_explicit(&s->n[k], memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Sums every worker's counters into out (each worker's metrics block holds
 * its counters: metrics/metrics.h). */
void pt_policy_stats_read(uint64_t out[PT_PSTAT_MAX]);

#endif
