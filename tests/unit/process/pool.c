/*
 * pool.c - unit tests of the process worker pool: limits (max running, max
 * queued), FIFO order, queue timeout, cancellation at stop, and completions
 * delivered on the submitting loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#include "event/worker-t.h"
#include "process/pool.h"

typedef struct tjob_s {
    pt_job_t job;
    uv_sem_t *gate; /* run() waits on it when set */
    int id;
    int ran;
    int done;
    pt_job_status_t status;
    uv_thread_t done_thread;
} tjob_t;

static int order[16], norder;

static void tjob_run(pt_job_t *j)
{
    tjob_t *t = (tjob_t *)j;
    if (t->gate != NULL)
        uv_sem_wait(t->gate);
    t->ran = 1;
}

static void tjob_done(pt_job_t *j, pt_job_status_t status)
{
    tjob_t *t = (tjob_t *)j;
    t->done = 1;
    t->status = status;
    t->done_thread = uv_thread_self();
    order[norder++] = t->id;
}

/* What the worker's async callback does with completions. */
static void async_cb(uv_async_t *a)
{
    pt_worker_t *w = a->data;
    pt_task_t *list = atomic_exchange(&w->completed, NULL), *rev = NULL, *next;
    while (list != NULL) {
        next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (; rev != NULL; rev = next) {
        next = rev->next;
        w->tasks--;
        rev->done(rev, 0);
    }
}

static pt_worker_t *worker_new(void)
{
    pt_worker_t *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    assert_int_equal(uv_async_init(&w->loop, &w->async, async_cb), 0);
    w->async.data = w;
    return w;
}

static void worker_free(pt_worker_t *w)
{
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    free(w);
}

/* Runs w's loop until n jobs of js completed. */
static void wait_done(pt_worker_t *w, tjob_t *js, int n)
{
    for (;;) {
        int i, c = 0;
        for (i = 0; i < n; i++)
            c += js[i].done;
        if (c == n)
            return;
        uv_run(&w->loop, UV_RUN_ONCE);
    }
}

static void tjob_init(tjob_t *t, pt_worker_t *w, int id, uv_sem_t *gate)
{
    memset(t, 0, sizeof(*t));
    t->job.run = tjob_run;
    t->job.done = tjob_done;
    t->job.worker = w;
    t->id = id;
    t->gate = gate;
}

static void test_limits(void **state)
{
    pt_worker_t *w = worker_new();
    pt_procpool_t *p = pt_procpool_start(2, 1, 0, NULL);
    tjob_t js[5];
    uv_sem_t gate;
    int i, accepted = 0;
    uv_thread_t self = uv_thread_self();
    (void)state;
    assert_non_null(p);
    uv_sem_init(&gate, 0);
    for (i = 0; i < 5; i++) {
        tjob_init(&js[i], w, i, &gate);
        if (pt_procpool_submit(p, &js[i].job) == PT_OK)
            accepted++;
        else
            js[i].done = 1; /* refused: never completes */
    }
    /* two run, one waits, the rest is refused whatever the threads' timing */
    assert_int_equal(accepted, 3);
    assert_int_equal(w->tasks, 3);
    for (i = 0; i < 3; i++)
        uv_sem_post(&gate);
    wait_done(w, js, 5);
    for (i = 0; i < 3; i++) {
        assert_int_equal(js[i].status, PT_JOB_DONE);
        assert_int_equal(js[i].ran, 1);
        assert_true(uv_thread_equal(&js[i].done_thread, &self));
    }
    assert_int_equal(js[3].ran, 0);
    assert_int_equal(w->tasks, 0);
    assert_int_equal(pt_procpool_running(p), 0);
    pt_procpool_stop(p);
    uv_sem_destroy(&gate);
    worker_free(w);
}

static void test_fifo_and_queue_timeout(void **state)
{
    pt_worker_t *w = worker_new();
    pt_procpool_t *p = pt_procpool_start(1, 8, 50, NULL);
    tjob_t js[3];
    uv_sem_t gate;
    (void)state;
    assert_non_null(p);
    uv_sem_init(&gate, 0);
    norder = 0;
    tjob_init(&js[0], w, 0, &gate);
    tjob_init(&js[1], w, 1, NULL);
    tjob_init(&js[2], w, 2, NULL);
    assert_int_equal(pt_procpool_submit(p, &js[0].job), PT_OK);
    assert_int_equal(pt_procpool_submit(p, &js[1].job), PT_OK);
    assert_int_equal(pt_procpool_submit(p, &js[2].job), PT_OK);
    uv_sleep(120); /* the two behind the blocked one wait longer than 50 ms */
    uv_sem_post(&gate);
    wait_done(w, js, 3);
    assert_int_equal(js[0].status, PT_JOB_DONE);
    assert_int_equal(js[1].status, PT_JOB_QUEUE_TIMEOUT);
    assert_int_equal(js[2].status, PT_JOB_QUEUE_TIMEOUT);
    assert_int_equal(js[1].ran, 0);
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);
    pt_procpool_stop(p);
    uv_sem_destroy(&gate);
    worker_free(w);
}

static void release_later(void *arg)
{
    uv_sleep(100);
    uv_sem_post(arg);
}

static void test_stop_cancels_queued(void **state)
{
    pt_worker_t *w = worker_new();
    pt_procpool_t *p = pt_procpool_start(1, 8, 0, NULL);
    tjob_t js[3];
    uv_sem_t gate;
    uv_thread_t th;
    int i;
    (void)state;
    assert_non_null(p);
    uv_sem_init(&gate, 0);
    for (i = 0; i < 3; i++) {
        tjob_init(&js[i], w, i, i == 0 ? &gate : NULL);
        assert_int_equal(pt_procpool_submit(p, &js[i].job), PT_OK);
    }
    uv_sleep(20); /* the first is running */
    uv_thread_create(&th, release_later, &gate);
    pt_procpool_stop(p); /* waits for the running one */
    uv_thread_join(&th);
    wait_done(w, js, 3);
    assert_int_equal(js[0].status, PT_JOB_DONE);
    assert_int_equal(js[1].status, PT_JOB_CANCELED);
    assert_int_equal(js[2].status, PT_JOB_CANCELED);
    assert_int_equal(w->tasks, 0);
    uv_sem_destroy(&gate);
    worker_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_fifo_and_queue_timeout),
        cmocka_unit_test(test_stop_cancels_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
