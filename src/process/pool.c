/*
 * pool.c - the process worker pool (see pool.h).
 */
#include "process/pool.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "core/log.h"
#include "event/worker.h"

struct pt_procpool_s {
    uv_mutex_t mu;
    uv_cond_t cv;
    pt_job_t *head, *tail; /* FIFO */
    unsigned nqueued, max_queued;
    uint64_t queue_timeout_ns;
    int stopping;
    atomic_uint running, queued_view;
    unsigned nthreads;
    uv_thread_t *threads;
    void (*thread_exit)(void);
};

static void job_task_done(pt_task_t *t, int gone)
{
    pt_job_t *job = pt_container_of(t, pt_job_t, task);
    (void)gone;
    job->done(job, job->status);
}

static void complete(pt_job_t *job, pt_job_status_t status)
{
    job->status = status;
    job->ended_ns = uv_hrtime();
    job->task.done = job_task_done;
    pt_worker_complete(job->worker, &job->task);
}

static void thread_main(void *arg)
{
    pt_procpool_t *p = arg;
    for (;;) {
        pt_job_t *job;
        pt_job_status_t status;
        uv_mutex_lock(&p->mu);
        while (p->head == NULL && !p->stopping)
            uv_cond_wait(&p->cv, &p->mu);
        if (p->head == NULL) { /* stopping, and nothing left */
            uv_mutex_unlock(&p->mu);
            if (p->thread_exit != NULL)
                p->thread_exit();
            return;
        }
        job = p->head;
        p->head = job->qnext;
        if (p->head == NULL)
            p->tail = NULL;
        p->nqueued--;
        atomic_store_explicit(&p->queued_view, p->nqueued, memory_order_relaxed);
        /* counted as running from the moment it leaves the queue (see submit) */
        atomic_fetch_add_explicit(&p->running, 1, memory_order_relaxed);
        uv_mutex_unlock(&p->mu);
        job->qnext = NULL;
        job->started_ns = uv_hrtime();
        if (p->stopping) {
            status = PT_JOB_CANCELED;
        } else if (p->queue_timeout_ns != 0 &&
                   job->started_ns - job->queued_ns > p->queue_timeout_ns) {
            status = PT_JOB_QUEUE_TIMEOUT;
        } else {
            job->run(job);
            status = PT_JOB_DONE;
        }
        atomic_fetch_sub_explicit(&p->running, 1, memory_order_relaxed);
        complete(job, status);
    }
}

pt_procpool_t *pt_procpool_start(unsigned threads, unsigned max_queued, uint32_t queue_timeout_ms,
                                 void (*thread_exit)(void))
{
    pt_procpool_t *p;
    unsigned i;
    if (threads == 0 || threads > 256)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->threads = calloc(threads, sizeof(*p->threads));
    if (p->threads == NULL || uv_mutex_init(&p->mu) != 0) {
        free(p->threads);
        free(p);
        return NULL;
    }
    if (uv_cond_init(&p->cv) != 0) {
        uv_mutex_destroy(&p->mu);
        free(p->threads);
        free(p);
        return NULL;
    }
    p->max_queued = max_queued;
    p->thread_exit = thread_exit;
    p->queue_timeout_ns = (uint64_t)queue_timeout_ms * 1000000u;
    for (i = 0; i < threads; i++) {
        uv_thread_options_t o = {UV_THREAD_HAS_STACK_SIZE, 1024 * 1024};
        if (uv_thread_create_ex(&p->threads[i], &o, thread_main, p) != 0) {
            pt_log_error("cannot start process thread %u", i);
            p->nthreads = i;
            pt_procpool_stop(p);
            return NULL;
        }
        p->nthreads = i + 1;
    }
    return p;
}

int pt_procpool_submit(pt_procpool_t *p, pt_job_t *job)
{
    uv_mutex_lock(&p->mu);
    /* a job may wait only while every thread is busy: max_queued counts the
     * jobs beyond those being picked up right now */
    if (p->stopping ||
        p->nqueued >=
            p->max_queued +
                (p->nthreads -
                 PT_MIN(p->nthreads, atomic_load_explicit(&p->running, memory_order_relaxed)))) {
        uv_mutex_unlock(&p->mu);
        return PT_ELIMIT;
    }
    job->qnext = NULL;
    job->queued_ns = uv_hrtime();
    if (p->tail != NULL)
        p->tail->qnext = job;
    else
        p->head = job;
    p->tail = job;
    p->nqueued++;
    atomic_store_explicit(&p->queued_view, p->nqueued, memory_order_relaxed);
    pt_worker_task_begin(job->worker);
    uv_cond_signal(&p->cv);
    uv_mutex_unlock(&p->mu);
    return PT_OK;
}

unsigned pt_procpool_queued(const pt_procpool_t *p)
{
    return atomic_load_explicit(&p->queued_view, memory_order_relaxed);
}

unsigned pt_procpool_running(const pt_procpool_t *p)
{
    return atomic_load_explicit(&p->running, memory_order_relaxed);
}

void pt_procpool_stop(pt_procpool_t *p)
{
    unsigned i;
    if (p == NULL)
        return;
    uv_mutex_lock(&p->mu);
    p->stopping = 1;
    uv_cond_broadcast(&p->cv);
    uv_mutex_unlock(&p->mu);
    for (i = 0; i < p->nthreads; i++)
        uv_thread_join(&p->threads[i]);
    uv_cond_destroy(&p->cv);
    uv_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
