/*
 * worker.c - I/O worker threads (see worker.h).
 */
#include "event/worker.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/snapshot.h"
#include "http/http.h"

#define LISTEN_BACKLOG 4096

/* SO_REUSEPORT lets a second process bind a port that a first one (with
 * the option) listens on, silently sharing its traffic. A bind without the
 * option tells whether anybody holds the port before the workers bind. */
static int probe_in_use(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1, busy;
    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    busy = bind(fd, (const struct sockaddr *)ss, sslen) != 0 && errno == EADDRINUSE;
    close(fd);
    return busy;
}

int pt_listen_sockets(const pt_config_t *cfg, unsigned n, int *fds, uint16_t *ports, char *err,
                      size_t errlen)
{
    size_t l;
    unsigned w;
    for (l = 0; l < cfg->nlisteners; l++) {
        const pt_listener_config_t *lc = &cfg->listeners[l];
        struct sockaddr_storage ss;
        socklen_t sslen;
        uint16_t port = lc->port;
        memset(&ss, 0, sizeof(ss));
        for (w = 0; w < n; w++) {
            int fd, on = 1, rc;
            if (strchr(lc->host, ':') != NULL) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                rc = uv_ip6_addr(lc->host, port, a);
                sslen = sizeof(*a);
            } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                rc = uv_ip4_addr(lc->host, port, a);
                sslen = sizeof(*a);
            }
            if (rc != 0) {
                snprintf(err, errlen, "%s: invalid address %s", lc->name, lc->host);
                goto fail;
            }
            if (w == 0 && port != 0 && probe_in_use(&ss, sslen)) {
                snprintf(err, errlen,
                         "%s: %s port %u is already in use (another portico or server is "
                         "listening there)",
                         lc->name, lc->host, (unsigned)port);
                goto fail;
            }
            fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                snprintf(err, errlen, "%s: socket: %s", lc->name, strerror(errno));
                goto fail;
            }
            fds[w * cfg->nlisteners + l] = fd;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
            if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
                snprintf(err, errlen, "%s: SO_REUSEPORT: %s", lc->name, strerror(errno));
                goto fail;
            }
            if (ss.ss_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
            if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
                snprintf(err, errlen, "%s: cannot bind %s port %u: %s", lc->name, lc->host,
                         (unsigned)port, strerror(errno));
                goto fail;
            }
            /* listening from here: once the port is logged, connections queue
             * in the backlog even before the worker's loop takes the socket */
            if (listen(fd, LISTEN_BACKLOG) != 0) {
                snprintf(err, errlen, "%s: cannot listen on %s port %u: %s", lc->name, lc->host,
                         (unsigned)port, strerror(errno));
                goto fail;
            }
            if (port == 0) {
                struct sockaddr_storage b;
                socklen_t blen = sizeof(b);
                getsockname(fd, (struct sockaddr *)&b, &blen);
                port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                                     : ((struct sockaddr_in *)&b)->sin_port);
            }
        }
        ports[l] = port;
    }
    return 0;
fail:
    for (size_t i = 0; i < cfg->nlisteners * n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return -1;
}

static pt_wsnap_t *wsnap_new(pt_worker_t *w, pt_snapshot_t *s)
{
    pt_wsnap_t *ws = malloc(sizeof(*ws));
    if (ws == NULL)
        return NULL;
    ws->snap = s;
    ws->refs = 1;
    ws->worker = w;
    return ws;
}

void pt_worker_wsnap_release(pt_wsnap_t *ws)
{
    if (ws->refs == 0)
        abort(); /* reference count below zero: a bug */
    if (--ws->refs == 0) {
        pt_snapshot_unref(ws->snap);
        free(ws);
    }
}

void pt_worker_update_date(pt_worker_t *w)
{
    struct timespec ts;
    time_t now;
    struct tm tm;

    /* wall clock = monotonic + offset, re-synchronised here every 500 ms so
     * that a request's log time costs no clock call beyond uv_hrtime() */
    clock_gettime(CLOCK_REALTIME, &ts);
    w->wall_offset_ns =
        (int64_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) - (int64_t)uv_hrtime();
    now = ts.tv_sec;
    if ((uint64_t)now == w->date_sec)
        return;
    gmtime_r(&now, &tm);
    w->date_len = strftime(w->date, sizeof(w->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    w->date_sec = (uint64_t)now;
}

int pt_worker_init(pt_worker_t *w, unsigned id, pt_snapshot_t *snap, void (*handler)(pt_req_t *req),
                   pt_access_sink_t *sink)
{
    int rc;
    memset(w, 0, sizeof(*w));
    w->id = id;
    atomic_init(&w->inbox, NULL);
    if ((rc = uv_loop_init(&w->loop)) != 0)
        return rc;
    w->blocks.max = 256; /* 2 MiB of request blocks kept per worker */
    pt_snapshot_ref(snap);
    w->snap = wsnap_new(w, snap);
    if (w->snap == NULL) {
        pt_snapshot_unref(snap);
        uv_loop_close(&w->loop);
        return UV_ENOMEM;
    }
    w->metrics = calloc(1, sizeof(*w->metrics)); /* mmap'd: pages become memory when used */
    if (w->metrics == NULL) {
        pt_worker_wsnap_release(w->snap);
        uv_loop_close(&w->loop);
        return UV_ENOMEM;
    }
    w->handler = handler;
    w->alog.sink = sink;
    pt_buf_init(&w->alog.buf, 0);
    if (getrandom(w->rid_seed, sizeof(w->rid_seed), 0) != sizeof(w->rid_seed)) {
        w->rid_seed[0] = (uint64_t)time(NULL) ^ ((uint64_t)id << 32);
        w->rid_seed[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
    }
    pt_worker_update_date(w);
    return 0;
}

static void finish(pt_worker_t *w);
static void handle_close_noop(uv_handle_t *h);

static void handle_close_noop(uv_handle_t *h)
{
    (void)h;
}

static void begin_drain(pt_worker_t *w)
{
    size_t i;
    if (w->draining)
        return;
    w->draining = 1;
    pt_log_debug("worker %u: draining (%u connections)", w->id, w->nconns);
    for (i = 0; i < w->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&w->listeners[i].tcp))
            uv_close((uv_handle_t *)&w->listeners[i].tcp, handle_close_noop);
    pt_http_drain(w);
    if (w->nconns == 0)
        finish(w);
}

/* Closes the worker's own handles; the loop ends once connections are gone. */
static void finish(pt_worker_t *w)
{
    size_t i;
    if (w->stopping)
        return;
    w->stopping = 1;
    w->draining = 1;
    for (i = 0; i < w->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&w->listeners[i].tcp))
            uv_close((uv_handle_t *)&w->listeners[i].tcp, handle_close_noop);
    pt_http_close_all(w);
    for (i = 0; i < w->nfinish_hooks; i++)
        w->finish_hooks[i](w);
    uv_close((uv_handle_t *)&w->tick, handle_close_noop);
    /* tasks on other threads will complete here: the async stays until then */
    if (w->tasks == 0)
        uv_close((uv_handle_t *)&w->async, handle_close_noop);
}

int pt_worker_on_finish(pt_worker_t *w, void (*fn)(pt_worker_t *w))
{
    if (w->nfinish_hooks == PT_ARRAY_SIZE(w->finish_hooks))
        return PT_ELIMIT;
    w->finish_hooks[w->nfinish_hooks++] = fn;
    return PT_OK;
}

void pt_worker_conn_closed(pt_worker_t *w)
{
    if (w->draining && !w->stopping && w->nconns == 0)
        finish(w);
}

/* Runs the done callbacks of the tasks other threads completed, oldest
 * first. */
static void run_completed(pt_worker_t *w, int gone)
{
    pt_task_t *list = atomic_exchange(&w->completed, NULL), *rev = NULL, *next;
    while (list != NULL) { /* LIFO -> FIFO */
        next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (; rev != NULL; rev = next) {
        next = rev->next;
        if (w->tasks > 0)
            w->tasks--;
        rev->done(rev, gone);
    }
    if (!gone && w->stopping && w->tasks == 0 && !uv_is_closing((uv_handle_t *)&w->async))
        uv_close((uv_handle_t *)&w->async, handle_close_noop);
}

void pt_worker_task_begin(pt_worker_t *w)
{
    w->tasks++;
}

void pt_worker_complete(pt_worker_t *w, pt_task_t *t)
{
    t->next = atomic_load(&w->completed);
    while (!atomic_compare_exchange_weak(&w->completed, &t->next, t))
        ;
    uv_async_send(&w->async);
}

static void async_cb(uv_async_t *a)
{
    pt_worker_t *w = a->data;
    pt_msg_t *list, *rev = NULL, *next;
    run_completed(w, 0);
    list = atomic_exchange(&w->inbox, NULL);
    while (list != NULL) { /* LIFO -> FIFO */
        next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (; rev != NULL; rev = next) {
        next = rev->next;
        switch (rev->kind) {
        case PT_MSG_SNAPSHOT: {
            pt_wsnap_t *ws = wsnap_new(w, rev->snap);
            if (ws == NULL) {
                pt_log_error("worker %u: out of memory, keeping the previous snapshot", w->id);
                pt_snapshot_unref(rev->snap);
                break;
            }
            pt_worker_wsnap_release(w->snap);
            w->snap = ws;
            break;
        }
        case PT_MSG_DRAIN:
            if (!w->stopping)
                begin_drain(w);
            break;
        case PT_MSG_STOP:
            if (!w->stopping)
                finish(w);
            break;
        }
        free(rev);
    }
}

static void tick_cb(uv_timer_t *t)
{
    pt_worker_t *w = t->data;
    pt_worker_update_date(w);
    pt_access_log_commit(&w->alog, 1);
    if (w->sse_tick != NULL)
        w->sse_tick(w);
}

typedef struct start_s {
    pt_worker_t *w;
    int fds[64];
    void (*on_exit)(pt_worker_t *w, void *arg);
    void *arg;
} start_t;

static void worker_main(void *arg)
{
    start_t *st = arg;
    pt_worker_t *w = st->w;
    size_t i;

    for (i = 0; i < w->nlisteners; i++) {
        pt_listener_rt_t *l = &w->listeners[i];
        int rc;
        uv_tcp_init(&w->loop, &l->tcp);
        l->tcp.data = l;
        if ((rc = uv_tcp_open(&l->tcp, st->fds[i])) != 0 ||
            (rc = pt_http_listen(l, LISTEN_BACKLOG)) != 0) {
            pt_log_error("worker %u: cannot listen: %s", w->id, uv_strerror(rc));
            abort();
        }
        {
            struct sockaddr_storage ss;
            int sslen = sizeof(ss);
            if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &sslen) == 0)
                l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                         : ((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    pt_access_log_commit(&w->alog, 1);
    if (st->on_exit != NULL)
        st->on_exit(w, st->arg);
    free(st);
}

int pt_worker_start(pt_worker_t *w, const int *fds, size_t nlisteners,
                    void (*on_exit)(pt_worker_t *w, void *arg), void *arg)
{
    start_t *st;
    size_t i;
    if (nlisteners > PT_ARRAY_SIZE(st->fds))
        return UV_EINVAL;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return UV_ENOMEM;
    st->w = w;
    st->on_exit = on_exit;
    st->arg = arg;
    memcpy(st->fds, fds, sizeof(int) * nlisteners);
    w->listeners = calloc(nlisteners ? nlisteners : 1, sizeof(*w->listeners));
    if (w->listeners == NULL) {
        free(st);
        return UV_ENOMEM;
    }
    w->nlisteners = nlisteners;
    for (i = 0; i < nlisteners; i++) {
        pt_listener_rt_t *l = &w->listeners[i];
        l->worker = w;
        l->index = (unsigned)i;
        l->fd = fds[i];
        l->tls = w->snap->snap->config->listeners[i].tls != NULL;
    }
    uv_async_init(&w->loop, &w->async, async_cb);
    w->async.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, tick_cb, 500, 500);
    return uv_thread_create(&w->thread, worker_main, st);
}

void pt_worker_send(pt_worker_t *w, pt_msg_kind_t kind, pt_snapshot_t *snap)
{
    pt_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        pt_log_error("out of memory sending a message to worker %u", w->id);
        if (snap != NULL)
            pt_snapshot_unref(snap);
        return;
    }
    m->kind = kind;
    m->snap = snap;
    m->next = atomic_load(&w->inbox);
    while (!atomic_compare_exchange_weak(&w->inbox, &m->next, m))
        ;
    uv_async_send(&w->async);
}

void pt_worker_join(pt_worker_t *w)
{
    pt_msg_t *m, *next;
    uv_thread_join(&w->thread);
    run_completed(w, 1);
    for (m = atomic_exchange(&w->inbox, NULL); m != NULL; m = next) {
        next = m->next;
        if (m->snap != NULL)
            pt_snapshot_unref(m->snap);
        free(m);
    }
    if (w->snap != NULL)
        pt_worker_wsnap_release(w->snap);
    w->snap = NULL;
    uv_loop_close(&w->loop);
    pt_buf_free(&w->alog.buf);
    pt_buf_free(&w->scratch);
    pt_block_cache_drain(&w->blocks);
    while (w->outbufs != NULL) {
        pt_outbuf_t *o = w->outbufs;
        w->outbufs = o->next;
        free(o);
    }
    free(w->listeners);
    w->listeners = NULL;
    free(w->metrics);
    w->metrics = NULL;
}
