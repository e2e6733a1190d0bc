/*
 * health.c - active health checks of proxy targets (see proxy.h).
 *
 * Runs on the main thread's loop: one probe per target of every proxy API
 * with `health.check`. Every interval a probe opens a connection (TLS for
 * https targets, with the API's TLS settings), sends `GET path`, and reads
 * the status line. A target that fails `fails` checks in a row is marked
 * down (an atomic flag in the snapshot the workers read); `passes` checks in
 * a row bring it back. The workers never wait for a check: they only read
 * the flag.
 */
#include <llhttp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "gateway/snapshot-t.h"
#include "gateway/snapshot.h"
#include "http/tls.h"
#include "proxy/proxy.h"

#define CHECK_READ_MAX 65536 /* bytes read before the status line must have come */

typedef struct probe_s probe_t;

struct pt_health_s {
    uv_loop_t *loop;
    pt_snapshot_t *snap; /* one reference, released when every handle is closed */
    probe_t *probes;
    size_t nprobes;
    unsigned handles; /* open libuv handles (timers and check connections) */
    int stopping;
};

/* One check in flight: its own connection, freed when closed. */
typedef struct check_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    llhttp_t parser;
    probe_t *probe; /* NULL once the probe gave up on it (timeout, stop) */
    SSL *ssl;
    size_t nread;
    int status; /* the response's status, once its head is parsed */
    unsigned done : 1;
} check_t;

struct probe_s {
    pt_health_t *h;
    const pt_proxy_api_t *pa;
    pt_proxy_target_t *t;
    uv_timer_t timer; /* next check, or the current check's timeout */
    check_t *cur;
    unsigned fails, passes;       /* consecutive */
    struct sockaddr_storage addr; /* the target's address, re-resolved after dns_ttl */
    uint64_t resolved_at;         /* loop time */
    uv_getaddrinfo_t gai;
    int resolving;
};

static void probe_start(probe_t *p);

static void health_release(pt_health_t *h)
{
    if (--h->handles > 0 || !h->stopping)
        return;
    pt_snapshot_unref(h->snap);
    free(h->probes);
    free(h);
}

static void timer_closed(uv_handle_t *hd)
{
    probe_t *p = hd->data;
    health_release(p->h);
}

static void check_closed(uv_handle_t *hd)
{
    check_t *c = hd->data;
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    free(c);
}

static void probe_timer_cb(uv_timer_t *t)
{
    probe_start(t->data);
}

/* The check of p ended: counts it, flips the flag when a threshold is met,
 * and schedules the next one. */
static void probe_result(probe_t *p, int ok, const char *why)
{
    const pt_health_check_t *hc = &p->pa->up->check;
    check_t *c = p->cur;
    int down = (int)atomic_load_explicit(&p->t->down, memory_order_relaxed);

    if (c != NULL) {
        p->cur = NULL;
        c->probe = NULL;
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, check_closed);
    }
    if (ok) {
        p->fails = 0;
        p->passes++;
        if (down && p->passes >= hc->passes) {
            atomic_store_explicit(&p->t->down, 0, memory_order_relaxed);
            pt_log_info("upstream %s of API \"%s\" is up again (health check passed %u times)",
                        p->t->key, p->pa->api->name, p->passes);
        }
    } else {
        p->passes = 0;
        p->fails++;
        if (!down && p->fails >= hc->fails) {
            atomic_store_explicit(&p->t->down, 1, memory_order_relaxed);
            pt_log_warn("upstream %s of API \"%s\" is down: health check %s failed %u times (%s)",
                        p->t->key, p->pa->api->name, hc->path, p->fails, why);
        } else {
            pt_log_debug("upstream %s of API \"%s\": health check failed (%s)", p->t->key,
                         p->pa->api->name, why);
        }
    }
    if (!p->h->stopping)
        uv_timer_start(&p->timer, probe_timer_cb, hc->interval_ms, 0);
}

static int on_headers_complete(llhttp_t *ps)
{
    check_t *c = ps->data;
    c->status = ps->status_code;
    if (c->status >= 100 && c->status < 200 && c->status != 101)
        return 0; /* informational: the final response follows */
    c->done = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t check_settings = {.on_headers_complete = on_headers_complete};

static void check_verdict(check_t *c)
{
    probe_t *p = c->probe;
    const pt_health_check_t *hc = &p->pa->up->check;
    char why[64];
    size_t i;
    for (i = 0; i < hc->nexpected; i++)
        if (c->status >= hc->expected[i].lo && c->status <= hc->expected[i].hi) {
            probe_result(p, 1, NULL);
            return;
        }
    snprintf(why, sizeof(why), "status %d", c->status);
    probe_result(p, 0, why);
}

/* Parses response bytes (plaintext). */
static void check_input(check_t *c, const char *data, size_t len)
{
    llhttp_errno_t err;
    c->nread += len;
    err = llhttp_execute(&c->parser, data, len);
    if (c->done) {
        check_verdict(c);
        return;
    }
    if (err != HPE_OK)
        probe_result(c->probe, 0, "invalid response");
    else if (c->nread > CHECK_READ_MAX)
        probe_result(c->probe, 0, "no status line");
}

static void check_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    static char rbuf[16384]; /* the main thread only */
    (void)hd;
    (void)suggested;
    buf->base = rbuf;
    buf->len = sizeof(rbuf);
}

static void check_write_cb(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows as a read error */
    free(w);
}

/* Sends len bytes of data (copied). */
static int check_send(check_t *c, const char *data, size_t len)
{
    uv_write_t *w = malloc(sizeof(*w) + len);
    uv_buf_t b;
    if (w == NULL)
        return -1;
    memcpy(w + 1, data, len);
    b = uv_buf_init((char *)(w + 1), (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, check_write_cb) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* TLS: sends what OpenSSL produced. */
static int check_tls_flush(check_t *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    char *p;
    long n = BIO_get_mem_data(wbio, &p);
    int rc = 0;
    if (n > 0) {
        rc = check_send(c, p, (size_t)n);
        (void)BIO_reset(wbio);
    }
    return rc;
}

/* Sends the check request (encrypted for TLS). */
static int check_request(check_t *c)
{
    probe_t *p = c->probe;
    pt_buf_t b;
    int rc;
    pt_buf_init(&b, 0);
    rc = pt_buf_printf(&b,
                       "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portico-health-check\r\n"
                       "Accept: */*\r\nConnection: close\r\n\r\n",
                       p->pa->up->check.path, p->t->host_header);
    if (rc == 0) {
        if (c->ssl != NULL)
            rc = SSL_write(c->ssl, b.data, (int)b.len) == (int)b.len ? check_tls_flush(c) : -1;
        else
            rc = check_send(c, b.data, b.len);
    }
    pt_buf_free(&b);
    ERR_clear_error();
    return rc;
}

static void check_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    check_t *c = s->data;
    char plain[16384], why[256];
    if (c->probe == NULL || nread == 0)
        return;
    if (nread < 0) {
        probe_result(c->probe, 0,
                     nread == UV_EOF ? "closed before answering" : uv_strerror((int)nread));
        return;
    }
    if (c->ssl == NULL) {
        check_input(c, buf->base, (size_t)nread);
        return;
    }
    if (BIO_write(SSL_get_rbio(c->ssl), buf->base, (int)nread) != (int)nread) {
        probe_result(c->probe, 0, "out of memory");
        return;
    }
    if (!SSL_is_init_finished(c->ssl)) {
        int r = pt_tls_client_handshake(c->ssl, why, sizeof(why));
        if (check_tls_flush(c) != 0)
            r = -1;
        if (r < 0) {
            char msg[300];
            snprintf(msg, sizeof(msg), "TLS: %s", why);
            probe_result(c->probe, 0, msg);
            return;
        }
        if (r == 0)
            return;
        if (check_request(c) != 0) {
            probe_result(c->probe, 0, "cannot send");
            return;
        }
    }
    for (;;) {
        int r = SSL_read(c->ssl, plain, sizeof(plain));
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            probe_result(c->probe, 0, "TLS connection closed before answering");
            return;
        }
        check_input(c, plain, (size_t)r);
        if (c->probe == NULL)
            return;
    }
    (void)check_tls_flush(c);
}

static void check_connect_cb(uv_connect_t *cr, int status)
{
    check_t *c = cr->data;
    probe_t *p = c->probe;
    char why[256];
    if (p == NULL)
        return;
    if (status < 0) {
        probe_result(p, 0, uv_strerror(status));
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, check_alloc, check_read_cb) != 0) {
        probe_result(p, 0, "cannot read");
        return;
    }
    if (p->t->def->https) {
        const pt_upstream_tls_t *tc = &p->pa->up->tls;
        c->ssl = pt_tls_client_new(p->pa->tls, p->t->def->host, tc->server_name, tc->verify);
        if (c->ssl == NULL || pt_tls_client_handshake(c->ssl, why, sizeof(why)) < 0 ||
            check_tls_flush(c) != 0) {
            probe_result(p, 0, "TLS setup failed");
            return;
        }
        return; /* the request follows the handshake */
    }
    if (check_request(c) != 0)
        probe_result(p, 0, "cannot send");
}

static void probe_timeout(uv_timer_t *t)
{
    probe_t *p = t->data;
    probe_result(p, 0, "timed out");
}

static void probe_connect(probe_t *p);

static void probe_resolved(uv_getaddrinfo_t *r, int status, struct addrinfo *res)
{
    probe_t *p = r->data;
    p->resolving = 0;
    p->resolved_at = uv_now(p->h->loop);
    if (status == 0 && res != NULL && res->ai_addrlen <= sizeof(p->addr)) {
        memset(&p->addr, 0, sizeof(p->addr));
        memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
    } else if (status != UV_EAI_CANCELED) {
        pt_log_warn("upstream %s: health check cannot resolve again (%s); keeping the last "
                    "address",
                    p->t->key, uv_strerror(status));
    }
    if (res != NULL)
        uv_freeaddrinfo(res);
    if (p->h->stopping) {
        health_release(p->h); /* the request counted as a handle */
        return;
    }
    p->h->handles--;
    probe_connect(p);
}

/* Starts a check of p (its timer fired): resolves the name again first
 * when its address is older than dns_ttl. */
static void probe_start(probe_t *p)
{
    const pt_upstream_t *u = p->pa->up;
    struct addrinfo hints;
    char port[8];
    if (p->h->stopping || p->resolving)
        return;
    if (!p->t->numeric && u->dns_ttl_ms != 0 &&
        uv_now(p->h->loop) - p->resolved_at >= u->dns_ttl_ms) {
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%u", (unsigned)p->t->def->port);
        p->gai.data = p;
        if (uv_getaddrinfo(p->h->loop, &p->gai, probe_resolved, p->t->def->host, port, &hints) ==
            0) {
            p->resolving = 1;
            p->h->handles++;
            return;
        }
        p->resolved_at = uv_now(p->h->loop);
    }
    probe_connect(p);
}

static void probe_connect(probe_t *p)
{
    check_t *c;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        probe_result(p, 0, "out of memory");
        return;
    }
    c->probe = p;
    uv_tcp_init(p->h->loop, &c->tcp);
    c->tcp.data = c->creq.data = c;
    llhttp_init(&c->parser, HTTP_RESPONSE, &check_settings);
    c->parser.data = c;
    p->cur = c;
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&p->addr, check_connect_cb) !=
        0) {
        probe_result(p, 0, "cannot connect");
        return;
    }
    uv_timer_start(&p->timer, probe_timeout, p->pa->up->check.timeout_ms, 0);
}

pt_health_t *pt_health_start(uv_loop_t *loop, pt_snapshot_t *s)
{
    const pt_config_t *cfg = s->config;
    pt_health_t *h;
    size_t i, j, n = 0, k = 0;

    for (i = 0; i < cfg->napis; i++)
        if (s->proxies[i] != NULL && s->proxies[i]->up->check.path != NULL)
            n += s->proxies[i]->ntargets;
    if (n == 0)
        return NULL;
    h = calloc(1, sizeof(*h));
    if (h == NULL || (h->probes = calloc(n, sizeof(*h->probes))) == NULL) {
        free(h);
        pt_log_error("out of memory: active health checks are off");
        return NULL;
    }
    h->loop = loop;
    h->snap = s;
    pt_snapshot_ref(s);
    h->nprobes = n;
    for (i = 0; i < cfg->napis; i++) {
        pt_proxy_api_t *pa = s->proxies[i];
        if (pa == NULL || pa->up->check.path == NULL)
            continue;
        for (j = 0; j < pa->ntargets; j++, k++) {
            probe_t *p = &h->probes[k];
            p->h = h;
            p->pa = pa;
            p->t = &pa->targets[j];
            p->addr = p->t->addr;
            p->resolved_at = uv_now(loop);
            uv_timer_init(loop, &p->timer);
            p->timer.data = p;
            h->handles++;
            /* spread the first checks over a tenth of the interval */
            uv_timer_start(&p->timer, probe_timer_cb,
                           (uint64_t)k * pa->up->check.interval_ms / 10 / n, 0);
        }
    }
    return h;
}

void pt_health_stop(pt_health_t *h)
{
    size_t i;
    if (h == NULL)
        return;
    h->stopping = 1;
    h->handles++; /* released below, so that a synchronous close cannot free h early */
    for (i = 0; i < h->nprobes; i++) {
        probe_t *p = &h->probes[i];
        check_t *c = p->cur;
        if (c != NULL) {
            p->cur = NULL;
            c->probe = NULL;
            uv_close((uv_handle_t *)&c->tcp, check_closed);
        }
        if (p->resolving)
            uv_cancel((uv_req_t *)&p->gai); /* its callback releases its count */
        uv_close((uv_handle_t *)&p->timer, timer_closed);
    }
    health_release(h);
}
