/*
 * pool.h - the process worker pool (DESIGN.md §7, issue 4): threads that
 * run process executions off the I/O loops, with per-node limits.
 *
 * An I/O worker submits a job; a pool thread runs it (blocking calls such
 * as database queries are fine there); its completion runs back on the
 * submitting worker's loop (pt_worker_complete). At most `threads` jobs run
 * at once and at most `max_queued` wait; a job that waited longer than
 * `queue_timeout_ms` is not run (its status says so). The queue is a mutex
 * and a condition variable shared by the submitting loops and the pool
 * threads, taken only to link or unlink a job (libuv's own thread pool
 * works the same way).
 */
#ifndef PT_PROCESS_POOL_H
#define PT_PROCESS_POOL_H

#include <stdint.h>

#include "event/worker-t.h"

typedef struct pt_job_s pt_job_t;

typedef enum pt_job_status_e {
    PT_JOB_DONE = 0,      /* run() ran */
    PT_JOB_QUEUE_TIMEOUT, /* waited longer than queue_timeout_ms: run() was not called */
    PT_JOB_CANCELED       /* the pool stopped before it ran */
} pt_job_status_t;

struct pt_job_s {
    pt_task_t task;                                   /* completion (internal) */
    pt_job_t *qnext;                                  /* queue (internal) */
    void (*run)(pt_job_t *);                          /* on a pool thread */
    void (*done)(pt_job_t *, pt_job_status_t status); /* on the submitting worker's loop */
    pt_worker_t *worker;
    pt_job_status_t status;
    uint64_t queued_ns, started_ns, ended_ns; /* uv_hrtime() */
};

typedef struct pt_procpool_s pt_procpool_t;

/* Starts `threads` threads (1..256); each calls thread_exit (if not NULL)
 * before it ends (per-thread resources of the steps: libcurl handles).
 * Returns NULL when they cannot start. */
pt_procpool_t *pt_procpool_start(unsigned threads, unsigned max_queued, uint32_t queue_timeout_ms,
                                 void (*thread_exit)(void));

/* On an I/O worker's loop: queues job (job->run, job->done, job->worker
 * set). Returns PT_OK, or PT_ELIMIT when max_queued jobs already wait (the
 * job is untouched: answer 503). */
int pt_procpool_submit(pt_procpool_t *p, pt_job_t *job);

/* Jobs waiting / running now (approximate, for metrics and Retry-After). */
unsigned pt_procpool_queued(const pt_procpool_t *p);
unsigned pt_procpool_running(const pt_procpool_t *p);

/* Cancels the queued jobs (they complete with PT_JOB_CANCELED), waits for
 * the running ones, joins the threads and frees the pool. */
void pt_procpool_stop(pt_procpool_t *p);

#endif
