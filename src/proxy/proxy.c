/*
 * proxy.c - forwarding requests of proxy APIs to upstream targets (see proxy.h).
 *
 * An exchange (one proxied request) lives in the client request's arena and
 * is cleaned up with it. It borrows an upstream connection from the worker's
 * pool for the target (or opens one), writes the request head, streams the
 * request body as it arrives (re-chunked when the client sent it chunked),
 * parses the upstream response with llhttp and streams it back through the
 * HTTP layer's response API. Backpressure both ways: the client is not read
 * while too much body waits for the upstream, the upstream is not read while
 * too much response waits for the client.
 */
#include "proxy/proxy.h"
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "event/worker-t.h"
#include "event/worker.h"
#include "gateway/snapshot-t.h"
#include "http/http.h"
#include "http/tls.h"

#define UP_QUEUE_MAX                                                                               \
    (1024 * 1024) /* request body bytes queued upstream before the client pauses                   \
                   */
#define SCHEDULE_MAX 65536

typedef struct exchange_s exchange_t;
typedef struct pool_s pool_t;
typedef struct upconn_s upconn_t;

/* Per-worker proxy state: pools by target address, every upstream
 * connection (to close them when the worker stops), the round-robin counter. */
typedef struct proxy_worker_s {
    pool_t *pools;
    upconn_t *all;
    uint64_t rr;
    int stopping;
    pt_buf_t head; /* request heads are formatted here (reused) */
} proxy_worker_t;

typedef struct resolve_s {
    uv_getaddrinfo_t req;
    pool_t *pool; /* NULL once the pool is gone (the worker stopped) */
} resolve_t;

/* A worker's view of one target (by pool key): its idle connections, its
 * passive health, its current address, its TLS session. */
struct pool_s {
    pool_t *next;
    char *key;
    upconn_t *idle; /* stack of idle connections */
    unsigned nidle;
    unsigned fails;         /* consecutive failures of this target (passive health) */
    uint64_t ejected_until; /* loop time (ms) before which the target gets no traffic */
    struct sockaddr_storage addr;
    uint64_t resolved_at; /* loop time of the last resolution (DNS names only) */
    resolve_t *resolving; /* a re-resolution in flight */
    SSL_SESSION *session; /* the last session the target gave (resumption) */
};

typedef enum up_timer_e { UPT_NONE = 0, UPT_CONNECT, UPT_SEND, UPT_READ, UPT_IDLE } up_timer_t;

struct upconn_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t timer;
    llhttp_t parser;
    proxy_worker_t *pw;
    pool_t *pool;
    exchange_t *ex;           /* current exchange; NULL when idle */
    upconn_t *next, *prev;    /* pw->all */
    upconn_t *idle_next;      /* pool->idle */
    uint32_t idle_timeout_ms; /* of the API that last used it */
    unsigned requests;
    up_timer_t timer_kind;
    uint64_t deadline; /* loop time the current wait ends */
    uint64_t armed;    /* loop time the libuv timer fires; 0 = not armed */
    unsigned connected : 1;
    unsigned closing : 1;
    unsigned reading : 1;
    unsigned detached : 1;  /* no socket (fuzzing): no libuv calls */
    unsigned https : 1;     /* TLS to the target (up->ssl once connected) */
    unsigned tls_ready : 1; /* TLS: the handshake completed */
    unsigned handles;
    size_t queued; /* bytes handed to uv_write, not yet written */
    SSL *ssl;      /* https targets; freed with the connection */
    pt_buf_t pre;  /* TLS: plaintext written before the handshake completed */
};

struct exchange_s {
    pt_req_t *req; /* NULL once the client request is gone */
    const pt_proxy_api_t *pa;
    const pt_proxy_target_t *target;
    upconn_t *up;
    pt_header_kv_t *rh; /* response headers for the client */
    size_t nrh, caprh;
    char *hname, *hvalue;
    size_t hname_len, hvalue_len;
    int status;
    uint64_t t_start;           /* uv_hrtime() when the exchange (or its retry) began */
    uint64_t total_deadline;    /* loop time the whole exchange must end by; 0 = none */
    unsigned attempts;          /* retries made on other targets */
    unsigned reused : 1;        /* the connection came from the pool */
    unsigned chunk_body : 1;    /* the client's body is re-chunked upstream */
    unsigned req_done : 1;      /* the whole request went upstream */
    unsigned resp_started : 1;  /* the client response began */
    unsigned informational : 1; /* parsing a 1xx response */
    unsigned head : 1;          /* HEAD request: the response has no body */
    unsigned got_bytes : 1;     /* the upstream sent something */
    unsigned retried : 1;
};

typedef struct wbuf_s {
    uv_write_t w;
    upconn_t *up;
    size_t len;
    char data[];
} wbuf_t;

static void up_close(upconn_t *up);
static void up_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void ex_fail(exchange_t *ex, int status, const char *type, const char *detail);
static void ex_error(exchange_t *ex, int nothing_sent, int status, const char *type,
                     const char *detail);
static int ex_start(exchange_t *ex);
static void pool_free(pool_t *p);
static size_t up_backlog(const upconn_t *up);

/* ------------------------------------------------------------------ snapshot side */

static void ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess);

pt_proxy_api_t *pt_proxy_api_build(pt_arena_t *a, const pt_api_def_t *api, char *err, size_t errlen)
{
    const pt_upstream_t *up = api->upstream;
    pt_proxy_api_t *pa = pt_arena_calloc(a, sizeof(*pa));
    int64_t *cur;
    size_t i, total = 0;

    if (pa == NULL || up == NULL || up->ntargets == 0)
        goto nomem;
    pa->api = api;
    pa->up = up;
    pa->ntargets = up->ntargets;
    pa->targets = pt_arena_calloc(a, sizeof(*pa->targets) * up->ntargets);
    if (pa->targets == NULL)
        goto nomem;
    for (i = 0; i < up->ntargets; i++) {
        const pt_upstream_target_t *t = &up->targets[i];
        pt_proxy_target_t *pt = &pa->targets[i];
        struct addrinfo hints, *res = NULL;
        unsigned char bin[16];
        char port[8];
        int rc, v6 = strchr(t->host, ':') != NULL;
        unsigned dport = t->https ? 443 : 80;

        if (t->https && pa->tls == NULL) {
            char why[512];
            pa->tls = pt_tls_client_ctx_new(&up->tls, why, sizeof(why));
            if (pa->tls == NULL) {
                snprintf(err, errlen, "%s:%u: upstream.tls: %s", api->file,
                         up->tls.line ? up->tls.line : t->line, why);
                return NULL;
            }
            if (pt_arena_cleanup_add(a, ctx_free, pa->tls) != PT_OK) {
                SSL_CTX_free(pa->tls);
                pa->tls = NULL;
                goto nomem;
            }
            SSL_CTX_sess_set_new_cb(pa->tls, new_session_cb);
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%u", (unsigned)t->port);
        rc = getaddrinfo(t->host, port, &hints, &res);
        if (rc != 0 || res == NULL) {
            snprintf(err, errlen, "%s:%u: upstream.targets[%zu].url: cannot resolve %s: %s",
                     api->file, t->line, i, t->host, rc ? gai_strerror(rc) : "no address");
            if (res)
                freeaddrinfo(res);
            return NULL;
        }
        memcpy(&pt->addr, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        pt->def = t;
        pt->numeric =
            inet_pton(AF_INET, t->host, bin) == 1 || inet_pton(AF_INET6, t->host, bin) == 1;
        atomic_init(&pt->down, 0);
        pt->key = pt_arena_printf(a, "%s%s%s%s:%u", t->https ? "https://" : "", v6 ? "[" : "",
                                  t->host, v6 ? "]" : "", (unsigned)t->port);
        /* a TLS connection carries its API's TLS settings: pooled per API */
        pt->pool_key = t->https ? pt_arena_printf(a, "%s %s", pt->key, api->name) : pt->key;
        pt->host_header = t->port == dport
                              ? pt_arena_printf(a, "%s%s%s", v6 ? "[" : "", t->host, v6 ? "]" : "")
                              : pt_arena_printf(a, "%s%s%s:%u", v6 ? "[" : "", t->host,
                                                v6 ? "]" : "", (unsigned)t->port);
        if (pt->host_header == NULL || pt->key == NULL || pt->pool_key == NULL)
            goto nomem;
        total += t->weight ? t->weight : 1;
    }
    if (total > SCHEDULE_MAX)
        total = SCHEDULE_MAX;
    /* smooth weighted round-robin (nginx): interleaves instead of bursts */
    pa->schedule = pt_arena_alloc(a, sizeof(unsigned) * total);
    cur = pt_arena_calloc(a, sizeof(int64_t) * up->ntargets);
    if (pa->schedule == NULL || cur == NULL)
        goto nomem;
    for (pa->nschedule = 0; pa->nschedule < total; pa->nschedule++) {
        size_t best = 0;
        for (i = 0; i < up->ntargets; i++) {
            cur[i] += up->targets[i].weight ? up->targets[i].weight : 1;
            if (cur[i] > cur[best])
                best = i;
        }
        cur[best] -= (int64_t)total;
        pa->schedule[pa->nschedule] = (unsigned)best;
    }
    return pa;
nomem:
    snprintf(err, errlen, "%s: out of memory building the upstream of API \"%s\"", api->file,
             api->name);
    return NULL;
}

/* ------------------------------------------------------------------ worker state */

static void finish_hook(pt_worker_t *w)
{
    proxy_worker_t *pw = w->proxy;
    if (pw == NULL)
        return;
    pw->stopping = 1;
    while (pw->all != NULL) {
        upconn_t *up = pw->all;
        if (up->ex != NULL) {
            up->ex->up = NULL;
            up->ex = NULL;
        }
        up_close(up); /* unlinks it */
    }
    while (pw->pools != NULL) {
        pool_t *p = pw->pools;
        pw->pools = p->next;
        pool_free(p);
    }
    pt_buf_free(&pw->head);
    free(pw);
    w->proxy = NULL;
}

static proxy_worker_t *proxy_worker(pt_worker_t *w)
{
    if (w->proxy == NULL) {
        proxy_worker_t *pw = calloc(1, sizeof(*pw));
        if (pw == NULL)
            return NULL;
        if (pt_worker_on_finish(w, finish_hook) != PT_OK) {
            free(pw);
            return NULL;
        }
        w->proxy = pw;
    }
    return w->proxy;
}

/* The worker's pool of target t (created on first use, with the address the
 * snapshot resolved). */
static pool_t *pool_get(proxy_worker_t *pw, pt_worker_t *w, const pt_proxy_target_t *t)
{
    pool_t *p;
    int slot = w->id < PT_PROXY_WORKER_SLOTS;
    if (slot && t->wpool[w->id] != NULL)
        return t->wpool[w->id];
    for (p = pw->pools; p != NULL; p = p->next)
        if (strcmp(p->key, t->pool_key) == 0)
            break;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL || (p->key = strdup(t->pool_key)) == NULL) {
            free(p);
            return NULL;
        }
        p->addr = t->addr;
        p->resolved_at = uv_now(&w->loop);
        p->next = pw->pools;
        pw->pools = p;
    }
    if (slot)
        ((pt_proxy_target_t *)t)->wpool[w->id] = p; /* this worker's slot only */
    return p;
}

static void pool_free(pool_t *p)
{
    if (p->resolving != NULL) {
        p->resolving->pool = NULL; /* its callback frees it */
        uv_cancel((uv_req_t *)&p->resolving->req);
    }
    if (p->session != NULL)
        SSL_SESSION_free(p->session);
    free(p->key);
    free(p);
}

/* OpenSSL has a session from the target (after the handshake, or a TLS 1.3
 * ticket later): it becomes the pool's, for the next connection. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    upconn_t *up = SSL_get_app_data(ssl);
    if (up == NULL || up->pool == NULL || up->pw->stopping)
        return 0;
    if (up->pool->session != NULL)
        SSL_SESSION_free(up->pool->session);
    up->pool->session = sess;
    return 1; /* the reference is kept */
}

/* ------------------------------------------------------------------ upstream connections */

static void up_timer_cb(uv_timer_t *t);

/* Sets the connection's named wait. Like the client side's timer, the libuv
 * timer is re-armed only when the deadline moves earlier (no timer-heap work
 * per request on a busy pooled connection). */
static void up_timer(upconn_t *up, up_timer_t kind, uint64_t ms)
{
    uint64_t deadline;
    if (up->detached)
        return;
    up->timer_kind = kind;
    deadline = kind == UPT_NONE ? UINT64_MAX : uv_now(up->timer.loop) + ms;
    /* the exchange's total_timeout bounds every wait, and the streaming too */
    if (up->ex != NULL && up->ex->total_deadline != 0 && up->ex->total_deadline < deadline)
        deadline = up->ex->total_deadline;
    if (deadline == UINT64_MAX)
        return;
    ms = deadline > uv_now(up->timer.loop) ? deadline - uv_now(up->timer.loop) : 0;
    up->deadline = deadline;
    if (up->armed == 0 || up->armed > deadline) {
        up->armed = deadline;
        uv_timer_start(&up->timer, up_timer_cb, ms, 0);
    }
}

static void up_free_cb(uv_handle_t *h)
{
    upconn_t *up = h->data;
    if (--up->handles == 0) {
        if (up->ssl != NULL)
            SSL_free(up->ssl);
        pt_buf_free(&up->pre);
        free(up);
    }
}

static void pool_remove_idle(upconn_t *up)
{
    pool_t *p = up->pool;
    upconn_t **pp;
    if (p == NULL)
        return;
    for (pp = &p->idle; *pp != NULL; pp = &(*pp)->idle_next)
        if (*pp == up) {
            *pp = up->idle_next;
            p->nidle--;
            break;
        }
    up->idle_next = NULL;
}

/* Closes an upstream connection (detached from any exchange by the caller). */
static void up_close(upconn_t *up)
{
    proxy_worker_t *pw = up->pw;
    if (up->closing)
        return;
    up->closing = 1;
    if (up->detached)
        return; /* freed by its owner */
    if (up->ex == NULL)
        pool_remove_idle(up);
    if (up->prev != NULL)
        up->prev->next = up->next;
    else if (pw->all == up)
        pw->all = up->next;
    if (up->next != NULL)
        up->next->prev = up->prev;
    up->next = up->prev = NULL;
    if (up->ssl != NULL && up->tls_ready) {
        /* close_notify, best effort: a connection ended this way leaves its
         * session resumable (OpenSSL drops sessions of unclean ends) */
        BIO *wbio = SSL_get_wbio(up->ssl);
        char *p;
        long n;
        (void)SSL_shutdown(up->ssl);
        ERR_clear_error();
        n = BIO_get_mem_data(wbio, &p);
        if (n > 0 && up->queued == 0) {
            uv_buf_t b = uv_buf_init(p, (unsigned)n);
            (void)uv_try_write((uv_stream_t *)&up->tcp, &b, 1);
        }
    }
    uv_close((uv_handle_t *)&up->timer, up_free_cb);
    uv_close((uv_handle_t *)&up->tcp, up_free_cb);
}

/* The exchange is done with its connection: back to the pool when reusable. */
static void up_release(exchange_t *ex, int reusable)
{
    upconn_t *up = ex->up;
    const pt_upstream_t *u = ex->pa->up;
    if (up == NULL)
        return;
    ex->up = NULL;
    up->ex = NULL;
    up_timer(up, UPT_NONE, 0);
    if (!reusable || up->closing || up->detached || up->pool == NULL || up->pw->stopping ||
        up->pool->nidle >= u->keepalive_max_idle || up->requests >= u->keepalive_max_requests ||
        up_backlog(up) > 0) {
        up_close(up);
        return;
    }
    /* idle: keep reading so that a close by the upstream is noticed (the
     * parser is reset by the read callback, outside llhttp's callbacks) */
    up->idle_next = up->pool->idle;
    up->pool->idle = up;
    up->pool->nidle++;
    up->idle_timeout_ms = u->keepalive_idle_timeout_ms;
    up_timer(up, UPT_IDLE, u->keepalive_idle_timeout_ms);
}

static void up_timer_cb(uv_timer_t *t)
{
    upconn_t *up = t->data;
    exchange_t *ex = up->ex;
    up_timer_t kind = up->timer_kind;
    uint64_t now = uv_now(t->loop);
    up->armed = 0;
    if (kind == UPT_NONE && (ex == NULL || ex->total_deadline == 0))
        return;
    if (up->deadline > now) {
        up->armed = up->deadline;
        uv_timer_start(&up->timer, up_timer_cb, up->deadline - now, 0);
        return;
    }
    up->timer_kind = UPT_NONE;
    if (kind == UPT_IDLE || ex == NULL) {
        up_close(up);
        return;
    }
    if (ex->total_deadline != 0 && now >= ex->total_deadline) {
        ex_error(ex, 0, 504, "upstream-timeout", "The upstream exchange exceeded its total time.");
        return;
    }
    if (kind == UPT_SEND) {
        ex_error(ex, 0, 504, "upstream-timeout",
                 "The upstream did not accept the request in time.");
        return;
    }
    if (kind == UPT_CONNECT)
        ex_error(ex, 1, 504, "upstream-timeout",
                 "The upstream did not accept the connection in time.");
    else if (kind == UPT_READ)
        ex_error(ex, 0, 504, "upstream-timeout", "The upstream did not answer in time.");
}

static void up_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    upconn_t *up = h->data;
    pt_worker_t *w = up->ex != NULL && up->ex->req != NULL ? up->ex->req->snap->worker : NULL;
    static _Thread_local char fallback[4096];
    (void)suggested;
    if (w != NULL) {
        /* the worker's read buffer is free: client reads are not running now */
        buf->base = w->rbuf;
        buf->len = sizeof(w->rbuf);
    } else {
        buf->base = fallback;
        buf->len = sizeof(fallback);
    }
}

static void up_read_start(upconn_t *up)
{
    if (!up->reading && !up->closing &&
        uv_read_start((uv_stream_t *)&up->tcp, up_alloc_cb, up_read_cb) == 0)
        up->reading = 1;
}

static void up_read_stop(upconn_t *up)
{
    if (up->reading && !up->detached) {
        uv_read_stop((uv_stream_t *)&up->tcp);
        up->reading = 0;
    }
}

static void up_write_cb(uv_write_t *w, int status)
{
    wbuf_t *wb = (wbuf_t *)w;
    upconn_t *up = wb->up;
    exchange_t *ex = up->ex;
    up->queued -= wb->len;
    free(wb);
    if (status == 0 && ex != NULL && up->timer_kind == UPT_SEND) {
        if (up->queued > 0) /* progress: the wait starts again */
            up_timer(up, UPT_SEND, ex->pa->up->send_timeout_ms);
        else
            up_timer(up, ex->resp_started ? UPT_NONE : UPT_READ, ex->pa->up->read_timeout_ms);
    }
    if (status < 0) {
        if (ex != NULL)
            ex_error(ex, 0, 502, "bad-gateway", "The upstream connection failed while sending.");
        else if (!up->closing)
            up_close(up);
        return;
    }
    if (ex != NULL && ex->req != NULL && ex->req->hold_input && up->queued < UP_QUEUE_MAX / 2)
        pt_http_input_resume(ex->req);
}

/* Sends a, b and c to the upstream: straight to the kernel when the
 * connection is up and nothing is queued (no copy, no write request, no
 * poll change - see pt__conn_flush), else (the rest) copied and queued. */
static int up_write_raw(upconn_t *up, const char *a, size_t alen, const char *b, size_t blen,
                        const char *c, size_t clen)
{
    size_t total = alen + blen + clen, skip = 0, off;
    wbuf_t *wb;
    uv_buf_t ub;

    if (up->connected && up->queued == 0 && !up->detached) {
        uv_buf_t bufs[3];
        unsigned nb = 0;
        int n;
        bufs[nb++] = uv_buf_init((char *)a, (unsigned)alen);
        if (blen)
            bufs[nb++] = uv_buf_init((char *)b, (unsigned)blen);
        if (clen)
            bufs[nb++] = uv_buf_init((char *)c, (unsigned)clen);
        n = uv_try_write((uv_stream_t *)&up->tcp, bufs, nb);
        if (n == (int)total)
            return PT_OK;
        if (n < 0 && n != UV_EAGAIN)
            return PT_EIO;
        if (n > 0)
            skip = (size_t)n;
    }
    wb = malloc(sizeof(*wb) + total - skip);
    if (wb == NULL)
        return PT_ENOMEM;
    wb->up = up;
    wb->len = total - skip;
    /* copy what the kernel did not take, in order */
    off = 0;
    if (skip < alen) {
        memcpy(wb->data, a + skip, alen - skip);
        off = alen - skip;
        skip = 0;
    } else {
        skip -= alen;
    }
    if (blen) {
        if (skip < blen) {
            memcpy(wb->data + off, b + skip, blen - skip);
            off += blen - skip;
            skip = 0;
        } else {
            skip -= blen;
        }
    }
    if (clen)
        memcpy(wb->data + off, c + skip, clen - skip);
    if (up->detached) {
        free(wb);
        return PT_OK;
    }
    ub = uv_buf_init(wb->data, (unsigned)wb->len);
    if (uv_write(&wb->w, (uv_stream_t *)&up->tcp, &ub, 1, up_write_cb) != 0) {
        free(wb);
        return PT_EIO;
    }
    up->queued += wb->len;
    if (up->connected && (up->ssl == NULL || up->tls_ready) && up->ex != NULL)
        up_timer(up, UPT_SEND, up->ex->pa->up->send_timeout_ms);
    return PT_OK;
}

/* TLS: sends what OpenSSL wrote to the write BIO. */
static int up_tls_flush(upconn_t *up)
{
    BIO *wbio = SSL_get_wbio(up->ssl);
    char *p;
    long n = BIO_get_mem_data(wbio, &p);
    int rc = PT_OK;
    if (n > 0) {
        rc = up_write_raw(up, p, (size_t)n, NULL, 0, NULL, 0);
        (void)BIO_reset(wbio);
    }
    return rc;
}

/* TLS: encrypts len bytes (the record layer splits them). */
static int up_tls_write(upconn_t *up, const char *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
        int r = SSL_write(up->ssl, data, chunk);
        if (r <= 0) {
            ERR_clear_error();
            return PT_EIO;
        }
        data += r;
        len -= (size_t)r;
    }
    return PT_OK;
}

/* Sends a, b and c to the upstream: plain (up_write_raw), or encrypted
 * once the TLS handshake is done (until then kept in up->pre). */
static int up_write(upconn_t *up, const char *a, size_t alen, const char *b, size_t blen,
                    const char *c, size_t clen)
{
    if (!up->https)
        return up_write_raw(up, a, alen, b, blen, c, clen);
    if (!up->tls_ready) {
        int rc = pt_buf_append(&up->pre, a, alen);
        if (blen)
            rc |= pt_buf_append(&up->pre, b, blen);
        if (clen)
            rc |= pt_buf_append(&up->pre, c, clen);
        return rc != 0 ? PT_ENOMEM : PT_OK;
    }
    if (up_tls_write(up, a, alen) != PT_OK || (blen && up_tls_write(up, b, blen) != PT_OK) ||
        (clen && up_tls_write(up, c, clen) != PT_OK))
        return PT_EIO;
    return up_tls_flush(up);
}

/* Bytes written to the connection and not yet taken by the kernel. */
static size_t up_backlog(const upconn_t *up)
{
    return up->queued + up->pre.len;
}

/* ------------------------------------------------------------------ response parsing */

static int is_hop_by_hop(const char *n, size_t len)
{
    static const char *const hop[] = {"connection",
                                      "keep-alive",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      "proxy-connection",
                                      "proxy-authenticate",
                                      "proxy-authorization",
                                      NULL};
    size_t i;
    for (i = 0; hop[i] != NULL; i++)
        if (pt_str_ieq(n, len, hop[i]))
            return 1;
    return 0;
}

/* Is `name` one of the comma-separated tokens of a Connection header value? */
static int connection_names(const char *v, size_t vlen, const char *n, size_t nlen)
{
    size_t i = 0;
    while (i < vlen) {
        size_t s, e;
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < vlen && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == nlen && e > s && strncasecmp(v + s, n, nlen) == 0)
            return 1;
    }
    return 0;
}

/* Does a header edit block (set or remove) name this header? */
static int edited(const pt_header_edit_t *e, const char *n, size_t len)
{
    size_t i;
    for (i = 0; i < e->nset; i++)
        if (strlen(e->set[i].name) == len && strncasecmp(e->set[i].name, n, len) == 0)
            return 1;
    for (i = 0; i < e->nremove; i++)
        if (strlen(e->remove[i]) == len && strncasecmp(e->remove[i], n, len) == 0)
            return 1;
    return 0;
}

static int r_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    upconn_t *up = p->data;
    exchange_t *ex = up->ex;
    if (ex == NULL || ex->req == NULL)
        return -1;
    if (ex->hname_len + len > 8192)
        return -1;
    return pt_arena_append(pt_http_req_arena(ex->req), &ex->hname, &ex->hname_len, at, len) == PT_OK
               ? 0
               : -1;
}

static int r_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    upconn_t *up = p->data;
    exchange_t *ex = up->ex;
    size_t i;
    if (ex == NULL || ex->req == NULL)
        return -1;
    if (ex->hvalue_len + len > 65536)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1; /* never relay a header that could split the client response */
    }
    return pt_arena_append(pt_http_req_arena(ex->req), &ex->hvalue, &ex->hvalue_len, at, len) ==
                   PT_OK
               ? 0
               : -1;
}

static int r_on_header_value_complete(llhttp_t *p)
{
    upconn_t *up = p->data;
    exchange_t *ex = up->ex;
    pt_header_kv_t *kv;
    char *v;
    size_t vl;
    if (ex == NULL || ex->req == NULL)
        return -1;
    if (ex->hname_len == 0 || ex->nrh >= 256)
        return -1;
    if (ex->nrh == ex->caprh) {
        size_t cap = ex->caprh ? ex->caprh * 2 : 16;
        pt_header_kv_t *n = pt_arena_realloc(pt_http_req_arena(ex->req), ex->rh,
                                             sizeof(*n) * ex->caprh, sizeof(*n) * cap);
        if (n == NULL)
            return -1;
        ex->rh = n;
        ex->caprh = cap;
    }
    v = ex->hvalue ? ex->hvalue : (char *)"";
    vl = ex->hvalue_len;
    while (vl > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        v[--vl] = '\0';
    kv = &ex->rh[ex->nrh++];
    kv->name = ex->hname;
    kv->value = v;
    ex->hname = ex->hvalue = NULL;
    ex->hname_len = ex->hvalue_len = 0;
    return 0;
}

static int r_on_headers_complete(llhttp_t *p)
{
    upconn_t *up = p->data;
    exchange_t *ex = up->ex;
    pt_req_t *req;
    const char *conn_hdr = NULL;
    int64_t clen = -1;
    size_t i, n = 0;
    pt_header_kv_t *out;

    if (ex == NULL || (req = ex->req) == NULL)
        return -1;
    ex->status = p->status_code;
    if (ex->status >= 100 && ex->status < 200) {
        if (ex->status == 101)
            return -1;         /* no protocol switch was asked for */
        ex->informational = 1; /* 100/102/103: not relayed; the final response follows */
        ex->nrh = 0;
        return 0;
    }
    up_timer(up, UPT_NONE, 0);
    if (up->pool != NULL)
        up->pool->fails = 0; /* passive health: the target answered */
    req->upstream_status = (uint16_t)ex->status;
    req->upstream_ttfb_us = (uint32_t)((uv_hrtime() - ex->t_start) / 1000);
    for (i = 0; i < ex->nrh; i++)
        if (pt_str_ieq(ex->rh[i].name, strlen(ex->rh[i].name), "connection"))
            conn_hdr = ex->rh[i].value;
    out = pt_arena_alloc(pt_http_req_arena(req),
                         sizeof(*out) * (ex->nrh + 1 + ex->pa->up->response_headers.nset));
    if (out == NULL)
        return -1;
    for (i = 0; i < ex->nrh; i++) {
        const char *name = ex->rh[i].name;
        size_t nl = strlen(name);
        if (is_hop_by_hop(name, nl) ||
            (conn_hdr != NULL && connection_names(conn_hdr, strlen(conn_hdr), name, nl)))
            continue;
        /* the server writes these itself (one Date, one X-Request-Id) */
        if (pt_str_ieq(name, nl, "date") || pt_str_ieq(name, nl, "server") ||
            pt_str_ieq(name, nl, "x-request-id"))
            continue;
        if (pt_str_ieq(name, nl, "content-length")) {
            if (!(p->flags & F_CHUNKED))
                clen = (int64_t)p->content_length;
            continue;
        }
        if (edited(&ex->pa->up->response_headers, name, nl))
            continue;
        out[n++] = ex->rh[i];
    }
    for (i = 0; i < ex->pa->up->response_headers.nset; i++)
        out[n++] = ex->pa->up->response_headers.set[i];
    out[n].name = "Via";
    out[n].value = "1.1 portico";
    n++;
    if (ex->status == 204 || ex->status == 304)
        clen = -1;
    ex->resp_started = 1;
    pt_http_respond_start(req, ex->status, out, n, NULL, clen);
    return ex->head ? 1 : 0; /* a response to HEAD has no body, whatever it declares */
}

static int r_on_body(llhttp_t *p, const char *at, size_t len)
{
    upconn_t *up = p->data;
    exchange_t *ex = up->ex;
    if (ex == NULL || ex->req == NULL)
        return -1;
    pt_http_respond_body(ex->req, at, len);
    if (ex->req != NULL && pt_http_output_full(ex->req))
        up_read_stop(up); /* resumed by on_drain */
    return 0;
}

static int r_on_message_complete(llhttp_t *p)
{
    upconn_t *up = p->data;
    exchange_t *ex = up->ex;
    pt_req_t *req;
    int reusable;
    if (ex == NULL || (req = ex->req) == NULL)
        return -1;
    if (ex->informational) {
        ex->informational = 0;
        return 0;
    }
    reusable = llhttp_should_keep_alive(p) && ex->req_done;
    /* Detach first: ending the response may end the request, and with it
     * the exchange (its arena). */
    up_release(ex, reusable);
    pt_http_respond_end(req);
    return HPE_PAUSED; /* anything after the response is not ours to parse */
}

static const llhttp_settings_t response_settings = {
    .on_header_field = r_on_header_field,
    .on_header_value = r_on_header_value,
    .on_header_value_complete = r_on_header_value_complete,
    .on_headers_complete = r_on_headers_complete,
    .on_body = r_on_body,
    .on_message_complete = r_on_message_complete,
};

/* The upstream's end of the stream (UV_EOF, or an error). */
static void up_eof(upconn_t *up, ssize_t nread)
{
    exchange_t *ex = up->ex;
    llhttp_errno_t err;
    if (ex == NULL) {
        up_close(up); /* idle in the pool: the upstream closed it */
        return;
    }
    if (nread == UV_EOF && ex->resp_started && llhttp_message_needs_eof(&up->parser)) {
        /* a response delimited by the connection's end */
        err = llhttp_finish(&up->parser);
        if (err == HPE_OK || err == HPE_PAUSED)
            return;
    }
    if (!ex->got_bytes && ex->reused && !ex->retried && ex->req_done && !ex->chunk_body &&
        ex->req != NULL && ex->req->content_length <= 0) {
        /* a pooled connection the upstream had closed: nothing was
         * consumed, try once on a fresh connection */
        ex->retried = 1;
        ex->up = NULL;
        up->ex = NULL;
        up_close(up);
        if (ex_start(ex) != PT_OK)
            ex_fail(ex, 502, "bad-gateway", "The upstream connection could not be opened.");
        return;
    }
    ex_error(ex, 0, 502, "bad-gateway",
             nread == UV_EOF ? "The upstream closed the connection before responding completely."
                             : "The upstream connection failed.");
}

/* Response bytes (decrypted for TLS) from the upstream. */
static void up_input(upconn_t *up, const char *data, size_t len)
{
    exchange_t *ex = up->ex;
    llhttp_errno_t err;

    if (ex == NULL) {
        up_close(up); /* idle in the pool: the upstream sent something unasked */
        return;
    }
    ex->got_bytes = 1;
    err = llhttp_execute(&up->parser, data, len);
    if (err == HPE_OK)
        return;
    if (err == HPE_PAUSED) {
        /* The response ended (the exchange may be gone: do not touch it).
         * up itself stays valid until its close callback. */
        const char *pos = llhttp_get_error_pos(&up->parser);
        llhttp_resume(&up->parser);
        if (up->ex == NULL && !up->closing) {
            if (pos != NULL && pos < data + len)
                up_close(up); /* bytes after the response: the connection cannot be trusted */
            else
                llhttp_reset(&up->parser); /* ready for the next exchange */
        }
        return;
    }
    if (up->ex != NULL) /* else the exchange ended within the callbacks */
        ex_error(up->ex, 0, 502, "bad-gateway", "The upstream sent an invalid response.");
}

static void up_tls_ready(upconn_t *up);

/* TLS: ciphertext from the upstream; advances the handshake, then
 * decrypts into the response parser. */
static void up_tls_input(upconn_t *up, const char *data, size_t len)
{
    static _Thread_local char plain[16384];
    if (BIO_write(SSL_get_rbio(up->ssl), data, (int)len) != (int)len) {
        up_eof(up, UV_ENOMEM);
        return;
    }
    if (!up->tls_ready) {
        char why[256];
        int r = pt_tls_client_handshake(up->ssl, why, sizeof(why));
        if (up_tls_flush(up) != PT_OK)
            r = -1;
        if (r == 0)
            return;
        if (r < 0) {
            exchange_t *ex = up->ex;
            if (up->pool != NULL && up->pool->session != NULL) {
                SSL_SESSION_free(up->pool->session); /* start afresh next time */
                up->pool->session = NULL;
            }
            if (ex == NULL) {
                up_close(up);
                return;
            }
            pt_log_warn("%.*s: upstream %s of API \"%s\": TLS handshake failed: %s",
                        ex->req ? (int)ex->req->request_id_len : 1,
                        ex->req ? ex->req->request_id : "-", ex->target->key, ex->pa->api->name,
                        why);
            ex_error(ex, 1, 502, "bad-gateway", "The TLS handshake with the upstream failed.");
            return;
        }
        up_tls_ready(up);
        if (up->closing)
            return;
    }
    for (;;) {
        int r = SSL_read(up->ssl, plain, sizeof(plain)), e;
        if (r > 0) {
            up_input(up, plain, (size_t)r);
            if (up->closing)
                return;
            continue;
        }
        e = SSL_get_error(up->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        up_eof(up, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO); /* close_notify, or bad data */
        return;
    }
    if (up_tls_flush(up) != PT_OK && !up->closing)
        up_eof(up, UV_EIO);
}

static void up_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    upconn_t *up = s->data;
    if (nread == 0)
        return;
    if (nread < 0)
        up_eof(up, nread);
    else if (up->https && up->ssl != NULL)
        up_tls_input(up, buf->base, (size_t)nread);
    else
        up_input(up, buf->base, (size_t)nread);
}

/* The connection can carry the request (TCP connected; TLS: handshake done). */
static void up_connected(upconn_t *up)
{
    exchange_t *ex = up->ex;
    if (ex == NULL)
        return;
    if (ex->req != NULL)
        ex->req->upstream_connect_us = (uint32_t)((uv_hrtime() - ex->t_start) / 1000);
    if (up->queued > 0)
        up_timer(up, UPT_SEND, ex->pa->up->send_timeout_ms);
    else
        up_timer(up, ex->req_done ? UPT_READ : UPT_NONE, ex->pa->up->read_timeout_ms);
}

/* TLS handshake done: what was written meanwhile goes out encrypted. */
static void up_tls_ready(upconn_t *up)
{
    exchange_t *ex = up->ex;
    up->tls_ready = 1;
    if (up->pre.len > 0) {
        int rc = up_tls_write(up, up->pre.data, up->pre.len);
        pt_buf_free(&up->pre);
        if (rc != PT_OK || up_tls_flush(up) != PT_OK) {
            if (ex != NULL)
                ex_error(ex, 0, 502, "bad-gateway", "The request could not be sent upstream.");
            else
                up_close(up);
            return;
        }
    } else {
        pt_buf_free(&up->pre);
    }
    up_connected(up);
    if (ex != NULL && ex->req != NULL && ex->req->hold_input && up_backlog(up) < UP_QUEUE_MAX / 2)
        pt_http_input_resume(ex->req);
}

static void up_connect_cb(uv_connect_t *cr, int status)
{
    upconn_t *up = cr->data;
    exchange_t *ex = up->ex;
    if (status == UV_ECANCELED)
        return;
    if (ex == NULL) {
        up_close(up);
        return;
    }
    if (status < 0) {
        ex_error(ex, 1, 502, "bad-gateway",
                 status == UV_ECONNREFUSED ? "The upstream refused the connection."
                                           : "The upstream connection could not be opened.");
        return;
    }
    up->connected = 1;
    uv_tcp_nodelay(&up->tcp, 1);
    if (ex->target->def->https) {
        /* the connect timeout goes on through the handshake */
        const pt_upstream_tls_t *tc = &ex->pa->up->tls;
        char why[256];
        up->ssl =
            pt_tls_client_new(ex->pa->tls, ex->target->def->host, tc->server_name, tc->verify);
        if (up->ssl == NULL) {
            ex_fail(ex, 502, "bad-gateway", "The TLS connection to the upstream failed.");
            return;
        }
        SSL_set_app_data(up->ssl, up);
        if (up->pool != NULL && up->pool->session != NULL)
            SSL_set_session(up->ssl, up->pool->session);
        if (pt_tls_client_handshake(up->ssl, why, sizeof(why)) < 0 || up_tls_flush(up) != PT_OK) {
            ex_error(ex, 1, 502, "bad-gateway", "The TLS handshake with the upstream failed.");
            return;
        }
        up_read_start(up);
        return;
    }
    up_connected(up);
    up_read_start(up);
}

/* ------------------------------------------------------------------ DNS */

static void resolve_cb(uv_getaddrinfo_t *r, int status, struct addrinfo *res)
{
    resolve_t *rs = (resolve_t *)r;
    pool_t *p = rs->pool;
    if (p != NULL) {
        p->resolving = NULL;
        p->resolved_at = uv_now(r->loop);
        if (status != 0 || res == NULL) {
            pt_log_warn("upstream %s: cannot resolve again (%s); keeping the last address", p->key,
                        uv_strerror(status));
        } else if (res->ai_addrlen <= sizeof(p->addr) &&
                   (res->ai_addr->sa_family != p->addr.ss_family ||
                    memcmp(res->ai_addr, &p->addr, res->ai_addrlen) != 0)) {
            char ip[INET6_ADDRSTRLEN] = "?";
            if (res->ai_addr->sa_family == AF_INET6)
                uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof(ip));
            else
                uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof(ip));
            memset(&p->addr, 0, sizeof(p->addr));
            memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
            pt_log_info("upstream %s now resolves to %s", p->key, ip);
            /* idle connections go to the old address: let them go */
            while (p->idle != NULL)
                up_close(p->idle); /* unlinks it */
        }
    }
    if (res != NULL)
        uv_freeaddrinfo(res);
    free(rs);
}

/* Resolves the target's name again, off the loop (libuv's thread pool),
 * when its address is older than dns_ttl; requests meanwhile use the last
 * address. */
static void pool_refresh(pool_t *p, pt_worker_t *w, const pt_proxy_target_t *t,
                         const pt_upstream_t *u)
{
    struct addrinfo hints;
    char port[8];
    resolve_t *rs;
    if (t->numeric || u->dns_ttl_ms == 0 || p->resolving != NULL ||
        uv_now(&w->loop) - p->resolved_at < u->dns_ttl_ms)
        return;
    rs = calloc(1, sizeof(*rs));
    if (rs == NULL)
        return;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", (unsigned)t->def->port);
    rs->pool = p;
    if (uv_getaddrinfo(&w->loop, &rs->req, resolve_cb, t->def->host, port, &hints) != 0) {
        free(rs);
        p->resolved_at = uv_now(&w->loop); /* not before the next TTL */
        return;
    }
    p->resolving = rs;
}

/* ------------------------------------------------------------------ request forwarding */

static int idempotent(const pt_req_t *req)
{
    static const char *const m[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", NULL};
    size_t i;
    for (i = 0; m[i] != NULL; i++)
        if (strlen(m[i]) == req->method_len && memcmp(m[i], req->method, req->method_len) == 0)
            return 1;
    return 0;
}

/* Picks the next target in the weighted schedule that is not ejected (and,
 * when there is a choice, not `avoid`). Returns NULL when every target is
 * ejected, with the loop time the first one comes back in *back_ms. */
static const pt_proxy_target_t *pick_target(proxy_worker_t *pw, pt_worker_t *w,
                                            const pt_proxy_api_t *pa, uint64_t now,
                                            const pt_proxy_target_t *avoid, uint64_t *back_ms)
{
    const pt_proxy_target_t *fallback = NULL;
    size_t i;
    *back_ms = UINT64_MAX;
    for (i = 0; i < pa->nschedule; i++) {
        const pt_proxy_target_t *t = &pa->targets[pa->schedule[pw->rr++ % pa->nschedule]];
        pool_t *pool;
        if (atomic_load_explicit(&t->down, memory_order_relaxed)) {
            /* the active checks say down: back after the next passing check, at best */
            uint64_t back = now + pa->up->check.interval_ms;
            if (back < *back_ms)
                *back_ms = back;
            continue;
        }
        pool = pool_get(pw, w, t);
        if (pool != NULL && pool->ejected_until > now) {
            if (pool->ejected_until < *back_ms)
                *back_ms = pool->ejected_until;
            continue;
        }
        if (t == avoid && pa->ntargets > 1) {
            fallback = t;
            continue;
        }
        return t;
    }
    return fallback;
}

/* Counts a failure of the exchange's target; ejects it after max_fails. */
static void target_failed(exchange_t *ex, proxy_worker_t *pw, pt_worker_t *w, uint64_t now)
{
    const pt_upstream_t *u = ex->pa->up;
    pool_t *pool = pool_get(pw, w, ex->target);
    if (pool == NULL || u->health_max_fails == 0)
        return;
    if (++pool->fails >= u->health_max_fails && pool->ejected_until <= now) {
        pool->ejected_until = now + u->health_fail_timeout_ms;
        pool->fails = 0;
        pt_log_warn("upstream %s of API \"%s\" ejected for %u ms after %u failures",
                    ex->target->key, ex->pa->api->name, u->health_fail_timeout_ms,
                    u->health_max_fails);
    }
}

/* An attempt failed. nothing_sent: the connection was never established.
 * Tries the next healthy target when that is safe - nothing of the
 * response reached the client, retries are left, the request has no body,
 * and either nothing was sent or the method is idempotent - else answers
 * with status (ex_fail). */
static void ex_error(exchange_t *ex, int nothing_sent, int status, const char *type,
                     const char *detail)
{
    pt_req_t *req = ex->req;
    proxy_worker_t *pw;
    const pt_proxy_target_t *next;
    uint64_t now, back;
    upconn_t *up = ex->up;

    if (req == NULL || up == NULL || up->detached) {
        ex_fail(ex, status, type, detail);
        return;
    }
    pw = up->pw;
    now = uv_now(&req->snap->worker->loop);
    target_failed(ex, pw, req->snap->worker, now);
    if (ex->resp_started || ex->attempts >= ex->pa->up->retries || req->chunked ||
        req->content_length > 0 || !(nothing_sent || idempotent(req)))
        goto fail;
    next = pick_target(pw, req->snap->worker, ex->pa, now, ex->target, &back);
    if (next == NULL)
        goto fail;
    pt_log_info("%.*s: upstream %s of API \"%s\": %s; retrying on %s", (int)req->request_id_len,
                req->request_id, ex->target->key, ex->pa->api->name, detail, next->key);
    /* the failed attempt counts against its target, though the request may yet succeed */
    pt_metrics_upstream_failed(req->snap->worker, ex->pa->api->name, ex->target->key);
    ex->up = NULL;
    up->ex = NULL;
    up_close(up);
    ex->attempts++;
    ex->target = next;
    ex->got_bytes = 0;
    if (ex_start(ex) == PT_OK)
        return;
fail:
    ex_fail(ex, status, type, detail);
}

static void ex_fail(exchange_t *ex, int status, const char *type, const char *detail)
{
    pt_req_t *req = ex->req;
    upconn_t *up = ex->up;
    if (up != NULL) {
        ex->up = NULL;
        up->ex = NULL;
        up_close(up);
    }
    if (req == NULL)
        return;
    pt_log_warn("%.*s: upstream %s of API \"%s\": %d %s", (int)req->request_id_len, req->request_id,
                ex->target ? ex->target->key : "-", ex->pa->api->name, status, detail);
    if (!ex->resp_started) {
        ex->resp_started = 1;
        pt_http_problem(req, status, type, detail, NULL, 0);
    } else {
        pt_http_abort(req); /* the response began: all the client can learn is the close */
    }
}

typedef enum hdr_class_e {
    H_PASS = 0, /* forwarded as is */
    H_DROP,     /* hop-by-hop, or rewritten by the proxy */
    H_XFF,
    H_XFPROTO,
    H_XFHOST,
    H_XFPORT,
    H_FORWARDED,
    H_VIA,
    H_TRACE /* traceparent: replaced by the node's own when the request is traced */
} hdr_class_t;

/* What becomes of a client header upstream. Dispatches on the length first
 * (this runs for every header of every proxied request). */
static hdr_class_t classify(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return pt_str_ieq(n, len, "te") ? H_DROP : H_PASS;
    case 3:
        return pt_str_ieq(n, len, "via") ? H_VIA : H_PASS;
    case 4:
        return pt_str_ieq(n, len, "host") ? H_DROP : H_PASS;
    case 6:
        return pt_str_ieq(n, len, "expect") ? H_DROP : H_PASS;
    case 7:
        return pt_str_ieq(n, len, "upgrade") || pt_str_ieq(n, len, "trailer") ? H_DROP : H_PASS;
    case 9:
        return pt_str_ieq(n, len, "forwarded") ? H_FORWARDED : H_PASS;
    case 10:
        return pt_str_ieq(n, len, "connection") || pt_str_ieq(n, len, "keep-alive") ? H_DROP
                                                                                    : H_PASS;
    case 11:
        return pt_str_ieq(n, len, "traceparent") ? H_TRACE : H_PASS;
    case 12:
        return pt_str_ieq(n, len, "x-request-id") ? H_DROP : H_PASS;
    case 14:
        return pt_str_ieq(n, len, "content-length") ? H_DROP : H_PASS;
    case 15:
        return pt_str_ieq(n, len, "x-forwarded-for") ? H_XFF : H_PASS;
    case 16:
        if (pt_str_ieq(n, len, "x-forwarded-host"))
            return H_XFHOST;
        if (pt_str_ieq(n, len, "x-forwarded-port"))
            return H_XFPORT;
        return pt_str_ieq(n, len, "proxy-connection") ? H_DROP : H_PASS;
    case 17:
        if (pt_str_ieq(n, len, "x-forwarded-proto"))
            return H_XFPROTO;
        return pt_str_ieq(n, len, "transfer-encoding") ? H_DROP : H_PASS;
    case 18:
        return pt_str_ieq(n, len, "proxy-authenticate") ? H_DROP : H_PASS;
    case 19:
        return pt_str_ieq(n, len, "proxy-authorization") ? H_DROP : H_PASS;
    default:
        return H_PASS;
    }
}

/* Writes the request head for the upstream into b. */
static int build_head(exchange_t *ex, pt_buf_t *b)
{
    pt_req_t *req = ex->req;
    const pt_api_def_t *api = ex->pa->api;
    const pt_proxy_target_t *t = ex->target;
    const pt_config_t *cfg = req->snap->snap->config;
    const pt_listener_rt_t *l = pt_http_listener(req);
    const struct sockaddr *peer = pt_http_peer_addr(req);
    const pt_str_t *conn_hdr = pt_http_header(req, "connection");
    const pt_str_t *xff = NULL, *xfproto = NULL, *xfhost = NULL, *xfport = NULL, *fwd = NULL,
                   *via = NULL, *auth = NULL;
    const pt_upstream_t *u = ex->pa->up;
    size_t blen = strlen(api->base_path), i;
    const char *rest = req->path.p + blen;
    size_t rest_len = req->path.len - blen;
    char ip[INET6_ADDRSTRLEN] = "unknown";
    const char *proto = l != NULL && l->tls ? "https" : "http";
    int trusted = 0, rc = 0;

    if (peer->sa_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)peer, ip, sizeof(ip));
    else if (peer->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)peer, ip, sizeof(ip));
    if (peer->sa_family != 0 && cfg->ntrusted_proxies > 0)
        trusted = pt_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, peer);

    rc |= pt_buf_append(b, req->method, req->method_len);
    rc |= pt_buf_append_char(b, ' ');
    rc |= pt_buf_append_str(b, t->def->path_prefix);
    if (rest_len == 0 || rest[0] != '/')
        rc |= pt_buf_append_char(b, '/');
    rc |= pt_buf_append(b, rest, rest_len);
    if (req->query.p != NULL && req->query.len > 0) {
        rc |= pt_buf_append_char(b, '?');
        rc |= pt_buf_append(b, req->query.p, req->query.len);
    }
    rc |= pt_buf_append_str(b, " HTTP/1.1\r\nHost: ");
    if (ex->pa->up->preserve_host && req->host.len > 0)
        rc |= pt_buf_append(b, req->host.p, req->host.len);
    else
        rc |= pt_buf_append_str(b, t->host_header);
    rc |= pt_buf_append_str(b, "\r\n");

    for (i = 0; i < req->nheaders; i++) {
        const pt_http_header_t *h = &req->headers[i];
        switch (classify(h->name.p, h->name.len)) {
        case H_XFF:
            xff = &h->value;
            continue;
        case H_XFPROTO:
            xfproto = &h->value;
            continue;
        case H_XFHOST:
            xfhost = &h->value;
            continue;
        case H_XFPORT:
            xfport = &h->value;
            continue;
        case H_FORWARDED:
            fwd = &h->value;
            continue;
        case H_VIA:
            via = &h->value;
            continue;
        case H_TRACE:
            if (req->traced)
                continue;
            break;
        case H_DROP:
            continue;
        case H_PASS:
            break;
        }
        if (conn_hdr != NULL &&
            connection_names(conn_hdr->p, conn_hdr->len, h->name.p, h->name.len))
            continue;
        if (h->name.len == 13 && pt_str_ieq(h->name.p, 13, "authorization")) {
            auth = &h->value;
            if (u->auth_mode != PT_UPSTREAM_AUTH_PASSTHROUGH)
                continue; /* none: removed; basic: replaced below */
        }
        if (edited(&u->request_headers, h->name.p, h->name.len))
            continue;
        rc |= pt_buf_append(b, h->name.p, h->name.len);
        rc |= pt_buf_append(b, ": ", 2);
        rc |= pt_buf_append(b, h->value.p, h->value.len);
        rc |= pt_buf_append(b, "\r\n", 2);
    }
    /* X-Forwarded-* from the client are believed only from trusted proxies */
    rc |= pt_buf_append_str(b, "X-Forwarded-For: ");
    if (trusted && xff != NULL && xff->len > 0) {
        rc |= pt_buf_append(b, xff->p, xff->len);
        rc |= pt_buf_append(b, ", ", 2);
    }
    rc |= pt_buf_append_str(b, ip);
    rc |= pt_buf_append_str(b, "\r\nX-Forwarded-Proto: ");
    if (trusted && xfproto != NULL)
        rc |= pt_buf_append(b, xfproto->p, xfproto->len);
    else
        rc |= pt_buf_append_str(b, proto);
    if (trusted && xfhost != NULL) {
        rc |= pt_buf_append_str(b, "\r\nX-Forwarded-Host: ");
        rc |= pt_buf_append(b, xfhost->p, xfhost->len);
    } else if (req->host.len > 0) {
        rc |= pt_buf_append_str(b, "\r\nX-Forwarded-Host: ");
        rc |= pt_buf_append(b, req->host.p, req->host.len);
    }
    if (trusted && xfport != NULL) {
        rc |= pt_buf_append_str(b, "\r\nX-Forwarded-Port: ");
        rc |= pt_buf_append(b, xfport->p, xfport->len);
    } else if (l != NULL) {
        rc |= pt_buf_append_str(b, "\r\nX-Forwarded-Port: ");
        rc |= pt_buf_append_u64(b, l->port);
    }
    rc |= pt_buf_append_str(b, "\r\nForwarded: ");
    if (trusted && fwd != NULL && fwd->len > 0) {
        rc |= pt_buf_append(b, fwd->p, fwd->len);
        rc |= pt_buf_append(b, ", ", 2);
    }
    rc |= pt_buf_append_str(b, peer->sa_family == AF_INET6 ? "for=\"[" : "for=");
    rc |= pt_buf_append_str(b, ip);
    rc |= pt_buf_append_str(b, peer->sa_family == AF_INET6 ? "]\";proto=" : ";proto=");
    rc |= pt_buf_append_str(b, proto);
    if (req->host.len > 0 && memchr(req->host.p, '"', req->host.len) == NULL) {
        rc |= pt_buf_append_str(b, ";host=\"");
        rc |= pt_buf_append(b, req->host.p, req->host.len);
        rc |= pt_buf_append_char(b, '"');
    }
    rc |= pt_buf_append_str(b, "\r\nVia: ");
    if (via != NULL && via->len > 0) {
        rc |= pt_buf_append(b, via->p, via->len);
        rc |= pt_buf_append(b, ", ", 2);
    }
    rc |= pt_buf_append_str(b, req->http_minor == 0 ? "1.0 portico\r\nX-Request-Id: "
                                                    : "1.1 portico\r\nX-Request-Id: ");
    rc |= pt_buf_append(b, req->request_id, req->request_id_len);
    rc |= pt_buf_append(b, "\r\n", 2);
    if (req->traced) {
        /* the next hop's parent is this node's span */
        rc |= pt_buf_append_str(b, "traceparent: 00-");
        rc |= pt_buf_append(b, req->trace_id, 32);
        rc |= pt_buf_append_char(b, '-');
        rc |= pt_buf_append(b, req->span_id, 16);
        rc |= pt_buf_append_char(b, '-');
        rc |= pt_buf_append(b, req->trace_flags, 2);
        rc |= pt_buf_append(b, "\r\n", 2);
    }
    for (i = 0; i < u->request_headers.nset; i++) {
        rc |= pt_buf_append_str(b, u->request_headers.set[i].name);
        rc |= pt_buf_append(b, ": ", 2);
        rc |= pt_buf_append_str(b, u->request_headers.set[i].value);
        rc |= pt_buf_append(b, "\r\n", 2);
    }
    if (u->auth_mode == PT_UPSTREAM_AUTH_BASIC && u->auth_basic != NULL) {
        rc |= pt_buf_append_str(b, "Authorization: ");
        rc |= pt_buf_append_str(b, u->auth_basic);
        rc |= pt_buf_append(b, "\r\n", 2);
    }
    if (u->auth_forward_original && u->auth_mode != PT_UPSTREAM_AUTH_PASSTHROUGH && auth != NULL) {
        rc |= pt_buf_append_str(b, "X-Forwarded-Authorization: ");
        rc |= pt_buf_append(b, auth->p, auth->len);
        rc |= pt_buf_append(b, "\r\n", 2);
    }
    if (req->chunked) {
        rc |= pt_buf_append_str(b, "Transfer-Encoding: chunked\r\n");
        ex->chunk_body = 1;
    } else if (req->content_length >= 0) {
        rc |= pt_buf_append_str(b, "Content-Length: ");
        rc |= pt_buf_append_u64(b, (uint64_t)req->content_length);
        rc |= pt_buf_append(b, "\r\n", 2);
    }
    rc |= pt_buf_append(b, "\r\n", 2);
    return rc != 0 ? PT_ENOMEM : PT_OK;
}

/* Takes a pooled connection to the exchange's target, or opens one, and
 * writes the request head. Returns 0 or an error (nothing attached). */
static int ex_start(exchange_t *ex)
{
    pt_req_t *req = ex->req;
    pt_worker_t *w = req->snap->worker;
    proxy_worker_t *pw = proxy_worker(w);
    pool_t *pool;
    upconn_t *up;
    pt_buf_t *head;
    int rc;

    if (pw == NULL || (pool = pool_get(pw, w, ex->target)) == NULL)
        return PT_ENOMEM;
    pool_refresh(pool, w, ex->target, ex->pa->up);
    ex->reused = 0;
    ex->t_start = uv_hrtime();
    req->upstream = ex->target->key;
    req->upstream_retries = (uint8_t)(ex->retried + ex->attempts);
    if (!ex->retried && pool->idle != NULL) {
        up = pool->idle;
        pool->idle = up->idle_next;
        pool->nidle--;
        up->idle_next = NULL;
        ex->reused = 1;
    } else {
        up = calloc(1, sizeof(*up));
        if (up == NULL)
            return PT_ENOMEM;
        up->pw = pw;
        up->pool = pool;
        up->https = ex->target->def->https;
        uv_tcp_init(&w->loop, &up->tcp);
        uv_timer_init(&w->loop, &up->timer);
        up->tcp.data = up->timer.data = up->creq.data = up;
        up->handles = 2;
        up->next = pw->all;
        if (pw->all != NULL)
            pw->all->prev = up;
        pw->all = up;
        llhttp_init(&up->parser, HTTP_RESPONSE, &response_settings);
        up->parser.data = up;
        if (uv_tcp_connect(&up->creq, &up->tcp, (const struct sockaddr *)&pool->addr,
                           up_connect_cb) != 0) {
            up_close(up);
            return PT_EIO;
        }
    }
    up->ex = ex;
    up->requests++;
    ex->up = up;
    /* connecting: connect_timeout; then read_timeout from the moment the whole
     * request went out (a body still arriving is the client's body_timeout) */
    if (!up->connected)
        up_timer(up, UPT_CONNECT, ex->pa->up->connect_timeout_ms);
    else
        up_timer(up, ex->req_done ? UPT_READ : UPT_NONE, ex->pa->up->read_timeout_ms);
    head = &pw->head;
    head->len = 0;
    rc = build_head(ex, head);
    if (rc == PT_OK)
        rc = up_write(up, head->data, head->len, NULL, 0, NULL, 0);
    if (head->cap > 65536)
        pt_buf_free(head);
    if (rc != PT_OK) {
        ex->up = NULL;
        up->ex = NULL;
        up_close(up);
        return rc;
    }
    if (up->connected)
        up_read_start(up);
    return PT_OK;
}

static void ex_on_body(pt_req_t *req, const char *data, size_t len)
{
    exchange_t *ex = req->hook_data;
    char size[24];
    int n;
    if (ex->up == NULL || len == 0)
        return; /* answered already (or failed): the rest of the body is discarded */
    if (ex->chunk_body) {
        n = snprintf(size, sizeof(size), "%zx\r\n", len);
        if (up_write(ex->up, size, (size_t)n, data, len, "\r\n", 2) != PT_OK)
            goto fail;
    } else if (up_write(ex->up, data, len, NULL, 0, NULL, 0) != PT_OK) {
        goto fail;
    }
    if (up_backlog(ex->up) > UP_QUEUE_MAX)
        req->hold_input = 1; /* resumed by up_write_cb (or the TLS handshake's end) */
    return;
fail:
    ex_fail(ex, 502, "bad-gateway", "The request body could not be sent upstream.");
}

static void ex_on_complete(pt_req_t *req)
{
    exchange_t *ex = req->hook_data;
    ex->req_done = 1;
    if (ex->up == NULL)
        return;
    if (ex->chunk_body && up_write(ex->up, "0\r\n\r\n", 5, NULL, 0, NULL, 0) != PT_OK) {
        ex_fail(ex, 502, "bad-gateway", "The request body could not be sent upstream.");
        return;
    }
    if (!ex->resp_started && ex->up->connected)
        up_timer(ex->up, UPT_READ, ex->pa->up->read_timeout_ms);
}

static void ex_on_drain(pt_req_t *req)
{
    exchange_t *ex = req->hook_data;
    if (ex->up != NULL && ex->up->connected)
        up_read_start(ex->up);
}

/* Arena cleanup: the client request ended (answered, or the client left). */
static void ex_cleanup(void *data)
{
    exchange_t *ex = data;
    upconn_t *up = ex->up;
    ex->req = NULL;
    if (up != NULL) {
        /* the exchange did not complete: the connection's state is unknown */
        ex->up = NULL;
        up->ex = NULL;
        up_close(up);
    }
}

void pt_proxy_handle(pt_req_t *req, const pt_proxy_api_t *pa)
{
    exchange_t *ex = pt_arena_calloc(pt_http_req_arena(req), sizeof(*ex));
    pt_worker_t *w = req->snap->worker;
    proxy_worker_t *pw = proxy_worker(w);

    if (ex == NULL || pw == NULL ||
        pt_arena_cleanup_add(pt_http_req_arena(req), ex_cleanup, ex) != PT_OK) {
        pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        return;
    }
    ex->req = req;
    ex->pa = pa;
    ex->head = req->is_head;
    {
        uint64_t now = uv_now(&w->loop), back;
        ex->target = pick_target(pw, w, pa, now, NULL, &back);
        if (ex->target == NULL) {
            /* every target is ejected: say when to come back */
            char secs[24];
            pt_header_kv_t retry = {"Retry-After", secs};
            snprintf(secs, sizeof(secs), "%llu",
                     (unsigned long long)((back > now ? back - now : 0) + 999) / 1000);
            pt_log_warn("%.*s: API \"%s\": every upstream target is ejected",
                        (int)req->request_id_len, req->request_id, pa->api->name);
            ex->resp_started = 1;
            pt_http_problem(req, 503, "no-healthy-upstream",
                            "No upstream target is available; try again later.", &retry, 1);
            return;
        }
    }
    ex->req_done = !(req->chunked || req->content_length > 0);
    if (pa->up->total_timeout_ms != 0)
        ex->total_deadline = uv_now(&w->loop) + pa->up->total_timeout_ms;
    req->hook_data = ex;
    req->on_body = ex_on_body;
    req->on_complete = ex_on_complete;
    req->on_drain = ex_on_drain;
    if (ex_start(ex) != PT_OK) {
        pt_log_warn("%.*s: upstream %s of API \"%s\": cannot open a connection",
                    (int)req->request_id_len, req->request_id, ex->target->key, pa->api->name);
        ex->resp_started = 1;
        pt_http_problem(req, 502, "bad-gateway", "The upstream connection could not be opened.",
                        NULL, 0);
    }
}

/* ------------------------------------------------------------------ fuzzing */

int pt_proxy_fuzz_response(pt_req_t *req, const char *data, size_t len)
{
    static const pt_api_def_t api = {.name = "fuzz", .base_path = "/fuzz", .kind = "proxy"};
    static const pt_upstream_t u = {.keepalive_max_idle = 0, .keepalive_max_requests = 1};
    static pt_proxy_target_t target = {.key = "fuzz:0"};
    static const pt_proxy_api_t pa = {.api = &api, .up = &u, .targets = &target, .ntargets = 1};
    exchange_t *ex = pt_arena_calloc(pt_http_req_arena(req), sizeof(*ex));
    upconn_t *up = calloc(1, sizeof(*up));
    llhttp_errno_t err;

    if (ex == NULL || up == NULL ||
        pt_arena_cleanup_add(pt_http_req_arena(req), ex_cleanup, ex) != PT_OK) {
        free(up);
        return -1;
    }
    up->detached = 1;
    up->connected = 1;
    llhttp_init(&up->parser, HTTP_RESPONSE, &response_settings);
    up->parser.data = up;
    ex->req = req;
    ex->pa = &pa;
    ex->target = &target;
    ex->head = req->is_head;
    ex->req_done = 1;
    ex->up = up;
    up->ex = ex;
    req->hook_data = ex;
    req->on_drain = ex_on_drain;
    err = llhttp_execute(&up->parser, data, len);
    if (err == HPE_OK && up->ex != NULL && ex->resp_started &&
        llhttp_message_needs_eof(&up->parser))
        err = llhttp_finish(&up->parser);
    if (up->ex != NULL && err != HPE_PAUSED) {
        /* incomplete or invalid: what up_read_cb does on EOF or garbage */
        ex_fail(ex, 502, "bad-gateway", "The upstream sent an invalid response.");
    }
    free(up);
    return err == HPE_OK || err == HPE_PAUSED ? 0 : -1;
}
