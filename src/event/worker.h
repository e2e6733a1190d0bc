/*
 * worker.h - I/O worker threads and the messages the main thread sends them.
 */
#ifndef PT_WORKER_H
#define PT_WORKER_H

#include "event/worker-t.h"

/* Creates the listening sockets of every listener for n workers
 * (SO_REUSEPORT, bound, not yet listening). fds[w * nlisteners + l].
 * A port 0 is resolved by the first bind and reused for the others; the
 * bound ports are written to ports[l]. Returns 0, or a negative errno with
 * a message in err. */
int pt_listen_sockets(const pt_config_t *cfg, unsigned n, int *fds, uint16_t *ports, char *err,
                      size_t errlen);

/* Initialises a worker (not started): its loop, caches, and a holder of
 * snap (the caller's reference is shared: the worker takes its own). */
int pt_worker_init(pt_worker_t *w, unsigned id, pt_snapshot_t *snap, void (*handler)(pt_req_t *req),
                   pt_access_sink_t *sink);

/* Starts the worker thread: adopts fds[0..nlisteners) and runs the loop.
 * on_exit is called from the worker thread when its loop has ended. */
int pt_worker_start(pt_worker_t *w, const int *fds, size_t nlisteners,
                    void (*on_exit)(pt_worker_t *w, void *arg), void *arg);

/* Sends a message (any thread). For PT_MSG_SNAPSHOT the message carries one
 * snapshot reference, given to the worker. */
void pt_worker_send(pt_worker_t *w, pt_msg_kind_t kind, pt_snapshot_t *snap);

/* On w's loop: a task is handed to another thread, which will call
 * pt_worker_complete for it. The worker's loop does not end before every
 * begun task completed (so a completion never finds the loop gone). */
void pt_worker_task_begin(pt_worker_t *w);

/* From any thread: t->done(t, 0) will run on w's loop (in completion
 * order). gone = 1 only for completions found when w is joined (none when
 * every task was begun with pt_worker_task_begin). */
void pt_worker_complete(pt_worker_t *w, pt_task_t *t);

/* Joins the thread and frees what pt_worker_init took. */
void pt_worker_join(pt_worker_t *w);

/* Drops one request reference of a worker-local holder. */
void pt_worker_wsnap_release(pt_wsnap_t *ws);

/* Registers fn to run on the worker's thread when it stops (after its
 * client connections are closed): it must close the handles it owns so the
 * loop can end. Returns 0 or PT_ELIMIT. */
int pt_worker_on_finish(pt_worker_t *w, void (*fn)(pt_worker_t *w));

/* Called by the HTTP layer when a connection has been closed. */
void pt_worker_conn_closed(pt_worker_t *w);

/* Refreshes w->date from the wall clock (called every 500 ms by the worker). */
void pt_worker_update_date(pt_worker_t *w);

#endif
