/*
 * metrics.h - the metrics core (issue 9, docs/observability.md).
 *
 * Recording: each I/O worker owns a pt_wmetrics_t. Its loop is the only
 * writer (a relaxed load and a relaxed store per counter: no lock, no locked
 * instruction, no allocation); any thread may read it at any time, and
 * readers merge the workers (pt_metrics_lock_workers). The one allocation,
 * a worker's block, is made when the worker is created: it is large and
 * calloc'd (mmap), so only the pages of the series used become memory.
 *
 * Series: one per (API, route, method) of the HTTP traffic, and one per
 * (API, process). A series id is assigned when a snapshot is built
 * (pt_metrics_assign) and kept for the life of the node, so counters stay
 * monotonic across deployments. Beyond PT_M_SERIES_MAX series the rest
 * share id 0 ("other").
 *
 * Latency histograms are log-linear: exact below 32 µs, then 32 linear
 * sub-buckets per power of two up to 2^36 µs (19 h). A value's bucket is
 * at most 1/32 of it wide, so a percentile read at the bucket's middle is
 * within 1/64 (1.6 %) of the exact one. Prometheus buckets (le, seconds)
 * are counted exactly beside them.
 */
#ifndef PT_METRICS_H
#define PT_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/stats.h"

#define PT_HIST_SUB     32
#define PT_HIST_OCTAVES 32 /* 2^5 .. 2^36 µs */
#define PT_HIST_BUCKETS (PT_HIST_SUB + PT_HIST_OCTAVES * PT_HIST_SUB)
#define PT_HIST_MAX_US  ((1ull << 37) - 1)
#define PT_PROM_BUCKETS 14 /* finite le bounds; +Inf is the count */
#define PT_M_SERIES_MAX 2048
#define PT_M_CODES      16
#define PT_M_CONSUMERS  256
#define PT_M_UPSTREAMS  128
#define PT_M_RECENT     64
#define PT_M_METHODS    8 /* GET HEAD POST PUT PATCH DELETE OPTIONS OTHER */
#define PT_M_NAME_MAX   64

/* le bounds of the Prometheus duration histograms, in µs and as text */
extern const uint64_t pt_prom_le_us[PT_PROM_BUCKETS];
extern const char *const pt_prom_le_text[PT_PROM_BUCKETS];
extern const char *const pt_m_method_names[PT_M_METHODS];

/* HTTP: (API, route, method); PROCESS: (API, process); POOL: the process
 * pool's queue wait (one series, "queue_wait") */
typedef enum pt_mkind_e { PT_MK_HTTP = 0, PT_MK_PROCESS, PT_MK_POOL } pt_mkind_t;

/* A process execution's outcome (the label "status"); also the code slot
 * of a process series. */
typedef enum pt_mexec_e {
    PT_MX_OK = 0,
    PT_MX_CLIENT_ERROR,
    PT_MX_SERVER_ERROR,
    PT_MX_TIMEOUT,
    PT_MX_QUEUE_TIMEOUT,
    PT_MX_CANCELED,
    PT_MX_MAX
} pt_mexec_t;
extern const char *const pt_mexec_names[PT_MX_MAX];

typedef enum pt_mclose_e {
    PT_MC_CLIENT = 0, /* the client closed (or reset) */
    PT_MC_IDLE,       /* keep-alive timeout */
    PT_MC_TIMEOUT,    /* header, body or send timeout */
    PT_MC_ERROR,      /* a protocol error or an I/O error */
    PT_MC_SERVER,     /* the node closed: Connection: close, drain, stop */
    PT_MC_MAX
} pt_mclose_t;
extern const char *const pt_mclose_names[PT_MC_MAX];

typedef struct pt_hist_s {
    _Atomic uint64_t b[PT_HIST_BUCKETS];
} pt_hist_t;

/* One series in one worker. */
typedef struct pt_mseries_s {
    _Atomic uint64_t count, bytes_in, bytes_out, sum_us;
    _Atomic uint64_t sumsq;                /* a double's bits: sum of squared µs */
    _Atomic uint32_t code_key[PT_M_CODES]; /* status codes (HTTP) or pt_mexec_t + 1 */
    _Atomic uint64_t code_n[PT_M_CODES];
    _Atomic uint64_t code_other;            /* codes past PT_M_CODES distinct ones */
    _Atomic uint64_t prom[PT_PROM_BUCKETS]; /* non-cumulative: values in (le[k-1], le[k]] */
    pt_hist_t hist;
} pt_mseries_t;

typedef struct pt_mconsumer_s {
    _Atomic uint64_t hash; /* 0 = free; published after name */
    char name[PT_M_NAME_MAX];
    _Atomic uint64_t n[6]; /* by class: [1..5] = 1xx..5xx */
} pt_mconsumer_t;

typedef struct pt_mupstream_s {
    _Atomic uint64_t hash; /* 0 = free; published after api and target */
    char api[PT_M_NAME_MAX];
    char target[PT_M_NAME_MAX];
    _Atomic uint64_t n[6]; /* [0] = no response, [1..5] = 1xx..5xx */
    _Atomic uint64_t retries, connects, connect_us, ttfb_us, ttfb_n;
    _Atomic uint64_t prom[PT_PROM_BUCKETS];
} pt_mupstream_t;

/* A recent error (status >= 400): a seqlock per slot (odd = being written). */
typedef struct pt_merror_s {
    _Atomic uint32_t seq;
    uint32_t series;
    uint16_t status;
    uint32_t duration_us;
    uint64_t time_ms;
    char request_id[41];
    char method[8];
    char path[96];
} pt_merror_t;

typedef struct pt_wmetrics_s {
    pt_mseries_t series[PT_M_SERIES_MAX];
    pt_mconsumer_t consumers[PT_M_CONSUMERS];
    _Atomic uint64_t consumer_other[6];
    pt_mupstream_t upstreams[PT_M_UPSTREAMS];
    _Atomic uint64_t upstream_other;
    pt_merror_t errors[PT_M_RECENT];
    _Atomic uint64_t nerrors;
    pt_pstats_t pstats; /* the policies' decisions (policy/stats.h) */
    /* connections and bytes */
    _Atomic uint64_t accepted, closed[PT_MC_MAX], tls_ok, tls_failed, rx, tx;
    _Atomic uint64_t refused; /* closed at once: the node was at limits.max_connections */
    _Atomic uint64_t open;    /* gauge */
} pt_wmetrics_t;

/* ---------------------------------------------------------------- writing */

#define PT_M_INC(x, d)                                                                             \
    atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + (d),            \
                          memory_order_relaxed)

/* The histogram bucket of a value in µs. */
static inline unsigned pt_hist_index(uint64_t us)
{
    unsigned k;
    if (us < PT_HIST_SUB)
        return (unsigned)us;
    if (us > PT_HIST_MAX_US)
        us = PT_HIST_MAX_US;
    k = 63u - (unsigned)__builtin_clzll(us); /* 5 .. 36 */
    return PT_HIST_SUB + (k - 5) * PT_HIST_SUB + (unsigned)((us >> (k - 5)) & (PT_HIST_SUB - 1));
}

/* The smallest value of bucket i and its width, in µs. */
static inline uint64_t pt_hist_lower(unsigned i)
{
    unsigned k, s;
    if (i < PT_HIST_SUB)
        return i;
    k = (i - PT_HIST_SUB) / PT_HIST_SUB + 5;
    s = (i - PT_HIST_SUB) % PT_HIST_SUB;
    return ((uint64_t)(PT_HIST_SUB + s)) << (k - 5);
}
static inline uint64_t pt_hist_width(unsigned i)
{
    return i < PT_HIST_SUB ? 1 : 1ull << ((i - PT_HIST_SUB) / PT_HIST_SUB);
}

static inline unsigned pt_prom_index(uint64_t us)
{
    unsigned k = 0;
    while (k < PT_PROM_BUCKETS && us > pt_prom_le_us[k])
        k++;
    return k; /* PT_PROM_BUCKETS: only +Inf */
}

/* Records one value in a series (its code slot, duration, sizes). */
void pt_mseries_record(pt_mseries_t *s, unsigned code, uint64_t us, uint64_t in, uint64_t out);

/* The method class of a request method (GET..OPTIONS, else OTHER). */
unsigned pt_metrics_method_class(const char *m, size_t len);

/* The consumer and upstream tables: find (or claim) a slot; NULL = full. */
pt_mconsumer_t *pt_metrics_consumer(pt_wmetrics_t *m, const char *name);
pt_mupstream_t *pt_metrics_upstream(pt_wmetrics_t *m, const char *api, const char *target);

void pt_metrics_error(pt_wmetrics_t *m, uint32_t series, int status, uint64_t us, const char *rid,
                      size_t rid_len, const char *method, size_t mlen, const char *path,
                      size_t plen, uint64_t time_ms);

struct pt_conn_s;
struct pt_req_s;
/* A finished request (on its worker's loop). */
void pt_metrics_request(struct pt_conn_s *c, struct pt_req_s *req, uint64_t now_ns);

/* A proxied attempt that failed and was retried on another target (the
 * request's own outcome is counted when it ends). */
struct pt_worker_s;
void pt_metrics_upstream_failed(struct pt_worker_s *w, const char *api, const char *target);

/* 1 unless `metrics: {enabled: false}` (set at start). */
extern int pt_metrics_enabled;

/* ---------------------------------------------------------------- series */

typedef struct pt_mlabel_s {
    uint8_t kind; /* pt_mkind_t */
    char api[PT_M_NAME_MAX];
    char name[128]; /* route or process; "" for traffic of no route */
    char method[8]; /* HTTP only */
} pt_mlabel_t;

/* The id of a series, assigned on first use (any thread but the I/O loops:
 * snapshot builds). 0 ("other") when the table is full. */
uint32_t pt_metrics_series(pt_mkind_t kind, const char *api, const char *name, const char *method);

/* How many ids are assigned, and a copy of one's labels. */
uint32_t pt_metrics_nseries(void);
void pt_metrics_label(uint32_t id, pt_mlabel_t *out);

/* Series of the requests that matched no API: base + method class; the
 * process pool's queue wait (code slot: pt_mexec_t of the job). */
extern uint32_t pt_metrics_unmatched;
extern uint32_t pt_metrics_qwait;

struct pt_config_s;
/* Gives every route, API and process of cfg its series ids. */
void pt_metrics_assign(struct pt_config_s *cfg);

/* ---------------------------------------------------------------- reading */

/* The workers' blocks, for readers: set by main once they run and cleared
 * (NULL, 0) before they are freed. Readers hold the lock while reading. */
void pt_metrics_register(pt_wmetrics_t **blocks, unsigned n);
unsigned pt_metrics_lock_workers(pt_wmetrics_t ***blocks);
void pt_metrics_unlock_workers(void);

/* A series summed over the workers (non-atomic copy): its counters, and
 * with them its fine histogram. */
typedef struct pt_mseries_head_s {
    uint64_t count, bytes_in, bytes_out, sum_us;
    double sumsq;
    uint32_t code_key[PT_M_CODES * 4];
    uint64_t code_n[PT_M_CODES * 4];
    unsigned ncodes;
    uint64_t code_other;
    uint64_t prom[PT_PROM_BUCKETS];
} pt_mseries_head_t;

typedef struct pt_mseries_sum_s {
    pt_mseries_head_t h;
    uint64_t hist[PT_HIST_BUCKETS];
} pt_mseries_sum_t;

/* Adds worker series s into out (codes merged by key). */
void pt_mseries_add_head(pt_mseries_head_t *out, const pt_mseries_t *s);
void pt_mseries_add(pt_mseries_sum_t *out, const pt_mseries_t *s);

/* The value at quantile q (0..1) of a histogram of n values, in µs (the
 * middle of its bucket); 0 when n is 0. */
double pt_hist_quantile(const uint64_t *hist, uint64_t n, double q);

/* Deployments (any thread). */
void pt_metrics_deployment(int ok, uint64_t ns);

/* Deployment counters, for the exporter. */
typedef struct pt_mdeploy_s {
    uint64_t ok, failed, sum_us;
    uint64_t prom[PT_PROM_BUCKETS];
} pt_mdeploy_t;
void pt_metrics_deployments(pt_mdeploy_t *out);

#endif
