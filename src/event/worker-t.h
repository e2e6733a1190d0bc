/*
 * worker-t.h - an I/O worker: one thread, one libuv loop, its own listening
 * sockets (SO_REUSEPORT), its own caches. Nothing in here is touched by another
 * thread except `inbox` (atomic) and `async`.
 */
#ifndef PT_WORKER_T_H
#define PT_WORKER_T_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "core/arena.h"
#include "core/log.h"
#include "gateway/snapshot-t.h"
#include "http/http-t.h"

#define PT_WORKER_READ_BUF  65536
#define PT_WORKER_TLS_BUF   (16384 + 512)
#define PT_OUTBUF_SIZE      16384
#define PT_OUTBUF_CACHE_MAX 64

/* A worker's reference to a snapshot: requests count here without atomics;
 * the holder owns one atomic reference of the snapshot. */
struct pt_wsnap_s {
    pt_snapshot_t *snap;
    unsigned refs; /* worker's own (while current) + one per request */
    pt_worker_t *worker;
};

typedef enum pt_msg_kind_e {
    PT_MSG_SNAPSHOT = 1, /* publish msg->snap (the message carries one reference) */
    PT_MSG_DRAIN,        /* stop accepting, finish in-flight requests, exit the loop */
    PT_MSG_STOP          /* close everything now */
} pt_msg_kind_t;

typedef struct pt_msg_s {
    struct pt_msg_s *next;
    pt_msg_kind_t kind;
    pt_snapshot_t *snap;
} pt_msg_t;

/* Work done on another thread whose completion runs on a worker's loop
 * (pt_worker_complete): embed it, and set done. */
typedef struct pt_task_s {
    struct pt_task_s *next;
    /* on the worker's loop; gone is 1 when the worker has stopped (its loop
     * is over: only free what the task owns) */
    void (*done)(struct pt_task_s *t, int gone);
} pt_task_t;

typedef struct pt_outbuf_s {
    struct pt_outbuf_s *next;
} pt_outbuf_t;

struct pt_worker_s {
    unsigned id;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t async;
    uv_timer_t tick;
    _Atomic(pt_msg_t *) inbox;
    _Atomic(pt_task_t *) completed; /* tasks other threads finished, for async_cb */
    unsigned tasks; /* begun and not completed: the loop (and its async) lives until 0 */
    pt_listener_rt_t *listeners;
    size_t nlisteners;
    pt_wsnap_t *snap;        /* current snapshot */
    pt_block_cache_t blocks; /* arena blocks for requests */
    pt_outbuf_t *outbufs;    /* free output buffers of PT_OUTBUF_SIZE */
    size_t noutbufs;
    pt_conn_t *conns; /* all open connections (doubly linked) */
    unsigned nconns;
    int draining;
    int stopping;
    uint64_t drain_deadline_ms;
    char date[40]; /* current "Date" value, e.g. "Fri, 04 Dec 2026 16:02:13 GMT" */
    size_t date_len;
    uint64_t date_sec;
    uint64_t rid_seed[2]; /* per-worker random for request ids */
    uint64_t rid_counter;
    pt_access_log_t alog;
    char log_time[24]; /* "2026-12-04T16:02:13" for the access log, per second */
    uint64_t log_sec;
    int64_t wall_offset_ns;         /* wall clock minus uv_hrtime(), refreshed by the tick */
    pt_buf_t scratch;               /* TLS responses are formatted here before encryption */
    void (*handler)(pt_req_t *req); /* the gateway's dispatch */
    /* per-worker state of dispatch kinds (the proxy's upstream pools), and
     * what closes it when the worker stops */
    void *proxy;
    struct pt_procpool_s *procpool; /* the node's process pool (set before the worker starts) */
    struct pt_procpool_s *authpool; /* password verifications (basic auth), off the loop */
    void *auth;                     /* the auth policy's per-worker state (cache) */
    struct pt_wmetrics_s *metrics;  /* its metrics (metrics/metrics.h); written by its loop only */
    void *sse;                      /* the dashboard's event streams on it (control/console.c) */
    void (*sse_tick)(pt_worker_t *w); /* feeds them, from the tick */
    void (*finish_hooks[4])(pt_worker_t *w);
    unsigned nfinish_hooks;
    char rbuf[PT_WORKER_READ_BUF];
    char tlsbuf[PT_WORKER_TLS_BUF];
};

#endif
