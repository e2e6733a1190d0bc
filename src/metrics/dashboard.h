/*
 * dashboard.h - what the live dashboard and Prometheus read (issue 9,
 * docs/observability.md).
 *
 * A sampler thread reads the workers' metrics once a second (their merged
 * cumulative values), and keeps:
 *   - per series, per API and for the node: the last 15 minutes, one point
 *     a second (requests, 4xx, 5xx, p50/p95/p99 of that second);
 *   - minute rows (counts, sizes, status codes, a sparse histogram) for 24
 *     hours in memory, written to the store each minute and read back at
 *     start, so the dashboard's history survives a restart;
 *   - the latest second as JSON, for the Server-Sent Events stream.
 * Readers (admin jobs on the control pool) take the sampler's lock; the
 * I/O loops never do: they copy the latest tick through a seqlock.
 */
#ifndef PT_METRICS_DASHBOARD_H
#define PT_METRICS_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct pt_procpool_s;
struct pt_store_s;

typedef struct pt_mnode_s {
    const char *node;        /* node id */
    const char *environment; /* the environment it serves ("" without a store) */
    struct pt_procpool_s *pool;
    unsigned pool_threads, pool_max_queued;
    unsigned workers;
    unsigned top_consumers;   /* consumers named in /metrics and the dashboard (20) */
    uint64_t history_ms;      /* minute rows kept in the store (7 days) */
    struct pt_store_s *store; /* NULL: history in memory only */
} pt_mnode_t;

/* Starts the sampler (strings are copied). */
int pt_dash_start(const pt_mnode_t *node);
/* Writes the current minute and stops it. */
void pt_dash_stop(void);

/* Dashboard documents (docs/observability.md); api/route NULL or "" = all.
 * env NULL, "" or the node's: the node's live data and history; another
 * environment: the minute rows its nodes wrote to the store. 0, or -1 (out
 * of memory, or the store cannot be read). */
int pt_dash_series(pt_buf_t *out, const char *env, const char *api, const char *route,
                   unsigned window_s);
int pt_dash_summary(pt_buf_t *out, const char *env, const char *api, const char *route,
                    unsigned window_s);
/* The nodes that wrote history (store) and this one. */
int pt_dash_nodes(pt_buf_t *out);

/* The latest tick's JSON into dst (cap bytes) when newer than *seq: its
 * length (and *seq updated), else 0. Lock-free: any thread. */
size_t pt_dash_tick_copy(char *dst, size_t cap, uint64_t *seq);
#define PT_DASH_TICK_MAX (256u << 10)

/* The Prometheus text exposition (GET /metrics). 0, or -1 out of memory. */
int pt_metrics_prometheus(pt_buf_t *out);

/* The node's description, for the exporter and the dashboard. */
const pt_mnode_t *pt_dash_node(void);
int64_t pt_dash_started_ms(void);

#endif
