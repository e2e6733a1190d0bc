/*
 * server.c - HTTP/1.1 server connections: accept, TLS, llhttp glue, limits,
 * timeouts, pipelining, responses, graceful close.
 *
 * One connection = one pt_conn_t embedding its uv_tcp_t, its timer and its
 * parser. Input is parsed straight out of the worker's shared read buffer;
 * the parts of a request that must outlive the read (URL, headers) are
 * copied into the request's arena. Requests are handled one at a time: the
 * parser is paused at the end of each message and resumed when the response
 * is complete, so pipelined responses leave in order.
 */
#include "http/http.h"
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "event/worker-t.h"
#include "event/worker.h"
#include "gateway/snapshot-t.h"
#include "http/conn-i.h"

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* ------------------------------------------------------------------ timers */

static void timer_cb(uv_timer_t *t)
{
    pt_conn_t *c = pt_container_of(t, pt_conn_t, timer);
    conn_timer_t kind = c->timer_kind;
    uint64_t now = uv_now(t->loop);

    c->timer_armed = 0;
    if (kind == TIMER_NONE)
        return;
    if (c->timer_deadline > now) {
        /* the wait was extended since the timer was armed */
        c->timer_armed = c->timer_deadline;
        uv_timer_start(&c->timer, timer_cb, c->timer_deadline - now, 0);
        return;
    }
    c->timer_kind = TIMER_NONE;
    switch (kind) {
    case TIMER_HEADER:
    case TIMER_BODY:
        if (c->req == NULL || c->req->complete)
            break; /* the request arrived meanwhile */
        pt_log_debug("%s: %s timeout", c->peer, kind == TIMER_HEADER ? "header" : "body");
        c->close_reason = PT_MC_TIMEOUT;
        if (c->req->resp_state == PT_RESP_NONE) {
            pt__conn_fail(c, 408, "request-timeout",
                          kind == TIMER_HEADER ? "The request head did not arrive in time."
                                               : "The request body did not arrive in time.");
            pt__conn_flush(c);
        } else {
            pt__conn_close(c); /* answered already; the rest of the body never came */
        }
        break;
    case TIMER_HANDSHAKE:
    case TIMER_IDLE:
    case TIMER_LINGER:
        if (kind != TIMER_LINGER)
            c->close_reason = kind == TIMER_IDLE ? PT_MC_IDLE : PT_MC_TIMEOUT;
        else if (c->close_reason == PT_MC_CLIENT)
            c->close_reason = PT_MC_SERVER;
        pt__conn_close(c);
        break;
    case TIMER_NONE:
        break;
    }
}

/* Sets the connection's single named wait (TIMER_NONE: no wait). The libuv
 * timer is re-armed only when the new deadline is earlier than the armed
 * one; a timer that fires early re-arms itself for the rest. This keeps
 * keep-alive traffic at zero timer-heap operations per request in the
 * steady state. */
void pt__conn_timer(pt_conn_t *c, conn_timer_t kind, uint64_t ms)
{
    uint64_t deadline;
    if (c->noio)
        return;
    c->timer_kind = kind;
    if (kind == TIMER_NONE)
        return;
    deadline = uv_now(c->timer.loop) + ms;
    c->timer_deadline = deadline;
    if (c->timer_armed == 0 || c->timer_armed > deadline) {
        c->timer_armed = deadline;
        uv_timer_start(&c->timer, timer_cb, ms, 0);
    }
}

/* ------------------------------------------------------------------ connection */

/* Ends the current request: log it, release its snapshot and memory, and
 * prepare the connection for the next one (or for closing). */
void pt__conn_finish_request(pt_conn_t *c)
{
    pt_req_t *req = c->req;
    if (req == NULL)
        return;
    pt_wsnap_t *ws;
    if (req->status != 0) {
        uint64_t now_ns = uv_hrtime();
        pt__conn_access_log(c, req, now_ns);
        pt_metrics_request(c, req, now_ns);
    }
    /* the arena's cleanups (a dispatch kind's resources) run while the
     * snapshot the request started on is still held */
    ws = req->snap;
    req->snap = NULL;
    c->req = NULL;
    c->waiting = 0;
    pt_arena_reset(&c->arena);
    if (ws != NULL)
        pt_worker_wsnap_release(ws);
    c->requests++;
    if (c->worker->draining)
        c->close_after = 1; /* a response whose head went out before the drain (a stream) */
    if (c->close_after)
        return; /* the flush that follows starts the close */
    pt__conn_timer(c, TIMER_IDLE, c->limits.keepalive_timeout_ms);
}

/* Refuses the current request (or a connection-level error) and closes the
 * connection after the response. */
void pt__conn_fail(pt_conn_t *c, int status, const char *type, const char *detail)
{
    pt_req_t *req = c->req;
    c->close_after = 1;
    if (c->close_reason == PT_MC_CLIENT)
        c->close_reason = PT_MC_ERROR;
    if (req == NULL) {
        req = pt__req_new(c);
        if (req == NULL) {
            pt__conn_close(c);
            return;
        }
        c->req = req;
        pt__req_id_generate(c->worker, req);
    }
    if (req->request_id_len == 0)
        pt__req_id_generate(c->worker, req);
    if (req->resp_state == PT_RESP_NONE) {
        c->in_input++;
        pt_http_problem(req, status, type, detail, NULL, 0);
        c->in_input--;
    }
    req->complete = 1;
    c->waiting = 0;
    pt__conn_finish_request(c);
}

static void parse_error(pt_conn_t *c, llhttp_errno_t err)
{
    pt_req_t *req = c->req;
    int status = 400;
    const char *type = "bad-request", *detail = "The request could not be parsed.";

    if (req != NULL && req->error_status) {
        status = req->error_status;
        type = req->error_type;
        detail = req->error_detail;
    } else if (err == HPE_INVALID_VERSION) {
        /* not "HTTP/<digit>.<digit>": malformed (a well-formed version other
         * than 1.0 and 1.1 gets 505 from the head checks) */
        detail = "Malformed HTTP version.";
    } else if (err == HPE_INVALID_METHOD) {
        detail = "Unknown request method.";
    } else if (err == HPE_PAUSED_UPGRADE) {
        status = 501;
        type = "not-implemented";
        detail = "Protocol upgrades are not supported.";
    } else if (c->close_after && req != NULL && req->resp_state == PT_RESP_DONE) {
        /* answered already (e.g. final response instead of 100 Continue) */
        pt__conn_finish_request(c);
        return;
    }
    pt_log_debug("%s: parse error %s (%s)", c->peer, llhttp_errno_name(err),
                 llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser) : "");
    if (req != NULL && req->resp_state != PT_RESP_NONE) {
        /* the response has started: nothing more can be said, just close */
        c->close_after = 1;
        req->complete = 1;
        pt__conn_finish_request(c);
        return;
    }
    pt__conn_fail(c, status, type, detail);
}

static void conn_save_pending(pt_conn_t *c, const char *data, size_t len)
{
    char *p;
    if (len == 0)
        return;
    if (c->pending_len + len > CONN_PENDING_MAX) {
        pt__conn_fail(c, 400, "bad-request", "Too much pipelined input.");
        return;
    }
    p = realloc(c->pending, c->pending_len + len);
    if (p == NULL) {
        pt__conn_close(c);
        return;
    }
    memcpy(p + c->pending_len, data, len);
    c->pending = p;
    c->pending_len += len;
}

/* Parses input, dispatching each complete request head; stops (keeping the
 * rest) while a request waits for an asynchronous answer. */
/* Finds obs-fold (a header line starting with SP or HTAB, RFC 9112 §5.2)
 * in the raw bytes of a request head, whatever the segmentation: llhttp
 * accepts folds and, after an empty value, hands the folded text over as
 * the value itself. Scans from the message's first byte to the blank line
 * ending the head; c->scan keeps the state across reads. Returns -1 on a
 * fold. */
static int head_scan(pt_conn_t *c, const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char ch = p[i];
        switch (c->scan) {
        case SCAN_IDLE: /* empty lines before the request line are skipped by llhttp */
            if (ch != '\r' && ch != '\n')
                c->scan = SCAN_LINE;
            break;
        case SCAN_LINE: {
            const char *nl = memchr(p + i, '\n', n - i);
            if (nl == NULL)
                return 0;
            i = (size_t)(nl - p);
            c->scan = SCAN_BOL;
            break;
        }
        case SCAN_BOL:
            if (ch == ' ' || ch == '\t')
                return -1;
            c->scan = ch == '\r' ? SCAN_BLANK_CR : ch == '\n' ? SCAN_DONE : SCAN_LINE;
            break;
        case SCAN_BLANK_CR:
            c->scan = ch == '\n' ? SCAN_DONE : SCAN_LINE;
            break;
        case SCAN_DONE:
            return 0;
        }
    }
    return 0;
}

/* llhttp refuses every version but a few with one error code; tell a
 * well-formed "HTTP/<digit>.<digit>" (505) from garbage (400) by looking at
 * the request line around the error position. */
static int version_well_formed(const char *start, const char *pos, const char *end)
{
    const char *p = pos - PT_MIN((size_t)(pos - start), (size_t)12);
    const char *v = NULL;
    for (; p + 5 <= pos + 1 && p + 5 <= end; p++)
        if (memcmp(p, "HTTP/", 5) == 0)
            v = p + 5;
    if (v == NULL || v + 4 > end)
        return 0;
    return v[0] >= '0' && v[0] <= '9' && v[1] == '.' && v[2] >= '0' && v[2] <= '9' && v[3] == '\r';
}

void pt__conn_input(pt_conn_t *c, const char *data, size_t len)
{
    unsigned served = 0;
    int body_seen = 0;

    if (c->pending_len > 0) {
        /* older input is held back: keep the order, parse it all later */
        conn_save_pending(c, data, len);
        if (!c->closing)
            pt__conn_update_reading(c);
        return;
    }
    c->in_input++;
    while (len > 0 && !c->closing && !c->close_after) {
        llhttp_errno_t err;
        if (c->waiting && c->req != NULL && c->req->complete) {
            conn_save_pending(c, data, len);
            break;
        }
        if (c->req == NULL && served >= c->limits.max_pipelined) {
            /* Enough work for one callback: continue once the output drains. */
            conn_save_pending(c, data, len);
            break;
        }
        if (c->scan != SCAN_DONE && head_scan(c, data, len) != 0) {
            pt__conn_fail(c, 400, "bad-request", "Obsolete line folding in a header is refused.");
            break;
        }
        err = llhttp_execute(&c->parser, data, len);
        if (err == HPE_OK) {
            if (c->req != NULL) {
                c->req->bytes_in += len;
                body_seen = c->req->dispatched && !c->req->complete;
            }
            break;
        }
        if (err == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            size_t used = (size_t)(pos - data);
            llhttp_resume(&c->parser);
            data = pos;
            len -= used;
            served++;
            c->scan = SCAN_IDLE; /* what follows is the next message */
            if (c->req != NULL) {
                c->req->bytes_in += used;
                if (c->req->resp_state == PT_RESP_DONE)
                    pt__conn_finish_request(c);
            }
            continue;
        }
        if (c->req != NULL) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            if (pos != NULL && pos >= data && pos <= data + len) {
                c->req->bytes_in += (size_t)(pos - data);
                if (err == HPE_INVALID_VERSION && c->req->error_status == 0 &&
                    version_well_formed(data, pos, data + len)) {
                    c->req->error_status = 505;
                    c->req->error_type = "http-version-not-supported";
                    c->req->error_detail = "Only HTTP/1.0 and HTTP/1.1 are served.";
                }
            }
        }
        parse_error(c, err);
        break;
    }
    c->in_input--;
    if (body_seen && c->timer_kind == TIMER_BODY)
        pt__conn_timer(c, TIMER_BODY, c->limits.body_timeout_ms);
    if (!c->closing)
        pt__conn_update_reading(c);
}

void pt__conn_update_reading(pt_conn_t *c)
{
    int want;
    if (c->noio || c->closing)
        return;
    c->out_full = c->out.len + c->inflight.len > c->limits.max_output_buffer;
    /* Reading goes on while a request is answered asynchronously (what
     * arrives meanwhile is held back): stopping and restarting would cost
     * two epoll_ctl calls per proxied request. It stops when too much is
     * held back, when output backs up, or when the handler asks. */
    want = !c->out_full && c->pending_len < CONN_PENDING_SOFT &&
           !(c->req != NULL && c->req->hold_input) && !c->close_after && !c->peer_eof;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
            c->reading = 1;
    } else if (!want && c->reading && !c->close_after) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void close_cb(uv_handle_t *h)
{
    pt_conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    free(c);
}

static void conn_unlink(pt_conn_t *c)
{
    pt_worker_t *w = c->worker;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (w->conns == c)
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    w->nconns--;
    pt_worker_conn_closed(w);
}

static void conn_release(pt_conn_t *c)
{
    pt_wsnap_t *ws = c->req != NULL ? c->req->snap : NULL;
    if (c->req != NULL && c->req->status != 0 && !c->noio) {
        /* answered but never finished: refused before its body arrived (a 413
           on Content-Length), or a response the client left (a stream) */
        uint64_t now_ns = uv_hrtime();
        pt__conn_access_log(c, c->req, now_ns);
        pt_metrics_request(c, c->req, now_ns);
    }
    if (c->req != NULL)
        c->req->aborted = 1; /* tells cleanups that the client is gone */
    c->req = NULL;
    pt_arena_reset(&c->arena);
    if (ws != NULL)
        pt_worker_wsnap_release(ws);
    pt__conn_out_release(c, &c->out);
    pt__conn_out_release(c, &c->inflight);
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    if (c->ssl != NULL) {
        SSL_free(c->ssl); /* frees the BIOs */
        c->ssl = NULL;
    }
    c->rbio = c->wbio = NULL;
    free(c->tls_subject);
    c->tls_subject = NULL;
}

/* Closes the connection now; memory is freed once libuv has closed both handles. */
void pt__conn_close(pt_conn_t *c)
{
    if (c->closing && !c->lingering)
        return;
    c->closing = 1;
    c->lingering = 0;
    if (!c->close_counted && !c->noio && c->worker->metrics != NULL) {
        pt_wmetrics_t *m = c->worker->metrics;
        unsigned r = c->close_reason;
        if (r == PT_MC_CLIENT && c->close_after && !c->peer_eof)
            r = PT_MC_SERVER; /* the node said Connection: close */
        c->close_counted = 1;
        PT_M_INC(m->closed[r < PT_MC_MAX ? r : PT_MC_ERROR], 1);
    }
    if (c->noio) {
        conn_release(c);
        return;
    }
    conn_release(c);
    conn_unlink(c);
    uv_close((uv_handle_t *)&c->timer, close_cb);
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void shutdown_cb(uv_shutdown_t *r, int status)
{
    pt_conn_t *c = r->data;
    if (status < 0 || !c->lingering) {
        pt__conn_close(c);
        return;
    }
}

/* After the final response: half-close and read (discarding) for a while,
 * so that the client sees the response rather than a reset (nginx
 * "lingering close"). */
static void conn_linger(pt_conn_t *c)
{
    if (c->closing)
        return;
    if (c->ssl != NULL && c->handshake_done) {
        SSL_shutdown(c->ssl);
        pt__conn_tls_drain(c);
        if (c->out.len > 0) {
            pt__conn_flush(c);
            return; /* called again once written */
        }
    }
    c->closing = 1;
    c->lingering = 1;
    c->sreq.data = c;
    if (!c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
            c->reading = 1;
    }
    pt__conn_timer(c, TIMER_LINGER, CONN_LINGER_MS);
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) != 0)
        pt__conn_close(c);
}

/* Parses the input held back while a request was answered or while the
 * output drained (it is taken first: parsing may hold some back again). */
static void conn_parse_pending(pt_conn_t *c)
{
    char *data = c->pending;
    size_t len = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    pt__conn_input(c, data, len);
    free(data);
}

static void write_cb(uv_write_t *wr, int status)
{
    pt_conn_t *c = wr->data;
    c->writing = 0;
    pt__conn_out_release(c, &c->inflight);
    if (status < 0) {
        pt__conn_close(c);
        return;
    }
    if (c->closing && !c->lingering)
        return;
    pt__conn_flush(c);
}

/* Hands queued output to the kernel. Tries a direct write first: when the
 * kernel takes everything (the common case) no write request, callback or
 * poll change is needed; otherwise the rest goes to uv_write, one write in
 * flight at a time, and write_cb calls back here. Once everything is
 * written: start the close that was asked for, parse input held back, close
 * after a client's half-close, or resume reading. */
void pt__conn_flush(pt_conn_t *c)
{
    for (;;) {
        if (c->noio || c->writing || (c->closing && !c->lingering))
            return;
        if (c->out.len > 0) {
            uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
            if (c->worker->metrics != NULL)
                PT_M_INC(c->worker->metrics->tx, c->out.len);
            int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (n < 0 && n != UV_EAGAIN) {
                pt__conn_close(c);
                return;
            }
            if (n != (int)c->out.len) {
                if (n > 0)
                    pt_buf_consume(&c->out, (size_t)n);
                c->inflight = c->out;
                pt_buf_init(&c->out, 0);
                b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
                c->wreq.data = c;
                if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
                    pt__conn_close(c);
                    return;
                }
                c->writing = 1;
                if (!c->closing)
                    pt__conn_update_reading(c);
                return;
            }
            pt__conn_out_release(c, &c->out);
        }
        if (c->lingering)
            return;
        if (c->close_after && c->req == NULL) {
            conn_linger(c);
            return;
        }
        if (c->pending_len > 0 && !c->waiting) {
            conn_parse_pending(c);
            continue;
        }
        if (c->peer_eof && c->req == NULL) {
            pt__conn_close(c); /* the client half-closed and everything is answered */
            return;
        }
        if (c->req != NULL && c->req->on_drain != NULL)
            c->req->on_drain(c->req); /* may only restart its producer, not write */
        pt__conn_update_reading(c);
        return;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pt_conn_t *c = h->data;
    (void)suggested;
    buf->base = c->worker->rbuf;
    buf->len = sizeof(c->worker->rbuf);
}

static void tls_handshake_done(pt_conn_t *c)
{
    X509 *cert;
    c->handshake_done = 1;
    cert = SSL_get0_peer_certificate(c->ssl);
    if (cert != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK) {
        BIO *mem = BIO_new(BIO_s_mem());
        if (mem != NULL) {
            char *p;
            long n;
            unsigned fplen = 0;
            X509_digest(cert, EVP_sha256(), c->tls_fp, &fplen);
            X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
            n = BIO_get_mem_data(mem, &p);
            if (n > 0) {
                c->tls_subject = malloc((size_t)n + 1);
                if (c->tls_subject != NULL) {
                    memcpy(c->tls_subject, p, (size_t)n);
                    c->tls_subject[n] = '\0';
                }
            }
            BIO_free(mem);
        }
    }
    pt__conn_timer(c, TIMER_IDLE, c->limits.header_timeout_ms);
}

static void tls_input(pt_conn_t *c, const char *data, size_t len)
{
    pt_worker_t *w = c->worker;
    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        pt__conn_close(c);
        return;
    }
    if (!c->handshake_done) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            pt__conn_tls_drain(c);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                pt__conn_flush(c);
                return;
            }
            {
                unsigned long oe = ERR_peek_error();
                pt_log_debug("%s: TLS handshake failed: %s", c->peer,
                             oe ? ERR_reason_error_string(oe) : "protocol error");
            }
            ERR_clear_error();
            if (w->metrics != NULL)
                PT_M_INC(w->metrics->tls_failed, 1);
            c->close_reason = PT_MC_ERROR;
            /* send the alert, if any, then close */
            c->close_after = 1;
            if (c->out.len > 0 && !c->noio) {
                c->handshake_done = 0;
                pt__conn_flush(c);
                pt__conn_timer(c, TIMER_LINGER, 1000);
            } else {
                pt__conn_close(c);
            }
            return;
        }
        tls_handshake_done(c);
        if (w->metrics != NULL)
            PT_M_INC(w->metrics->tls_ok, 1);
        pt__conn_tls_drain(c);
    }
    for (;;) {
        int r = SSL_read(c->ssl, w->tlsbuf, sizeof(w->tlsbuf));
        if (r > 0) {
            if (c->lingering)
                continue;
            pt__conn_input(c, w->tlsbuf, (size_t)r);
            if (c->closing && !c->lingering)
                return;
            continue;
        }
        {
            int e = SSL_get_error(c->ssl, r);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
                if (c->req == NULL || c->close_after) {
                    pt__conn_close(c); /* frees the SSL object and its BIOs */
                    return;
                }
                break;
            }
            pt__conn_close(c);
            return;
        }
    }
    pt__conn_tls_drain(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pt_conn_t *c = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* A client that half-closes after sending complete requests still
         * gets its responses (then the connection closes); otherwise EOF or
         * an error closes now, abandoning a request still being answered
         * (later dispatch kinds decide what that means for their work). */
        /* (like nginx, a client that leaves while its request waits for an
         * asynchronous answer - a proxied response - aborts it) */
        if (nread == UV_EOF && !c->lingering && !c->close_after && !c->waiting &&
            (c->req == NULL || c->req->complete) &&
            (c->req != NULL || c->pending_len > 0 || c->writing || c->out.len > 0)) {
            c->peer_eof = 1;
            uv_read_stop(s);
            c->reading = 0;
            pt__conn_flush(c);
            return;
        }
        pt__conn_close(c);
        return;
    }
    if (c->worker->metrics != NULL)
        PT_M_INC(c->worker->metrics->rx, (uint64_t)nread);
    if (c->lingering) {
        c->linger_bytes += (uint64_t)nread;
        if (c->linger_bytes > CONN_LINGER_MAX)
            pt__conn_close(c);
        return;
    }
    if (c->ssl != NULL)
        tls_input(c, c->worker->rbuf, (size_t)nread);
    else
        pt__conn_input(c, c->worker->rbuf, (size_t)nread);
    if (!c->closing || c->lingering)
        pt__conn_flush(c);
}

static void conn_init(pt_conn_t *c, pt_worker_t *w)
{
    c->worker = w;
    c->limits = w->snap->snap->config->limits;
    pt_arena_init(&c->arena, &w->blocks);
    pt_buf_init(&c->out, 0);
    pt_buf_init(&c->inflight, 0);
    llhttp_init(&c->parser, HTTP_REQUEST, &pt__http_parser_settings);
    c->parser.data = c;
}

/* Refuses a connection over the limit with a minimal 503, best effort. */
static void refuse(pt_worker_t *w, uv_tcp_t *tcp)
{
#define REFUSE_BODY                                                                                \
    "{\"type\":\"urn:portico:problem:too-many-connections\",\"title\":\"Service "                  \
    "Unavailable\",\"status\":503,\"detail\":\"The server has too many open connections.\"}"
    static const char body[] = REFUSE_BODY;
    char resp[512], rid[33];
    int n;
    pt__request_id(w, rid);
    n = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 503 Service Unavailable\r\nDate: %.*s\r\nServer: portico\r\n"
                 "X-Request-Id: %s\r\nContent-Type: application/problem+json\r\n"
                 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
                 (int)w->date_len, w->date, rid, sizeof(body) - 1, body);
    uv_buf_t b = uv_buf_init(resp, (unsigned)n);
#undef REFUSE_BODY
    /* best effort: a fresh socket takes this without blocking */
    uv_try_write((uv_stream_t *)tcp, &b, 1);
}

static void refuse_close_cb(uv_handle_t *h)
{
    free(h);
}

static void accept_cb(uv_stream_t *server, int status)
{
    pt_listener_rt_t *l = pt_container_of(server, pt_listener_rt_t, tcp);
    pt_worker_t *w = l->worker;
    pt_conn_t *c;
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);

    if (status < 0 || w->draining)
        return;
    if (w->nconns >= w->snap->snap->config->limits.max_connections) {
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t == NULL)
            return;
        uv_tcp_init(&w->loop, t);
        if (uv_accept(server, (uv_stream_t *)t) == 0) {
            refuse(w, t);
            if (w->metrics != NULL)
                PT_M_INC(w->metrics->refused, 1);
        }
        uv_close((uv_handle_t *)t, refuse_close_cb);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    conn_init(c, w);
    c->listener = l;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    /* link first: conn_close unlinks */
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    if (w->metrics != NULL)
        PT_M_INC(w->metrics->accepted, 1);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        pt__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        memcpy(&c->peer_addr, &ss, sizeof(ss));
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
            snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
            snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
        }
    }
    if (l->tls) {
        SSL_CTX *ctx = w->snap->snap->tls[l->index];
        c->ssl = ctx != NULL ? SSL_new(ctx) : NULL;
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
            if (c->ssl == NULL) {
                BIO_free(c->rbio);
                BIO_free(c->wbio);
            } else {
                if (c->rbio)
                    SSL_set0_rbio(c->ssl, c->rbio);
                else
                    BIO_free(c->wbio);
                if (c->rbio && c->wbio)
                    SSL_set0_wbio(c->ssl, c->wbio);
                else if (c->rbio)
                    BIO_free(c->wbio);
            }
            ERR_clear_error();
            pt__conn_close(c);
            return;
        }
        BIO_set_mem_eof_return(c->rbio, -1);
        BIO_set_mem_eof_return(c->wbio, -1);
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_accept_state(c->ssl);
        pt__conn_timer(c, TIMER_HANDSHAKE, c->limits.header_timeout_ms);
    } else {
        c->handshake_done = 1;
        pt__conn_timer(c, TIMER_IDLE, c->limits.header_timeout_ms);
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
        pt__conn_close(c);
        return;
    }
    c->reading = 1;
}

int pt_http_output_full(const pt_req_t *req)
{
    const pt_conn_t *c = req->conn;
    return c->out.len + c->inflight.len > c->limits.max_output_buffer;
}

void pt_http_input_resume(pt_req_t *req)
{
    req->hold_input = 0;
    if (!req->conn->closing)
        pt__conn_update_reading(req->conn);
}

void pt_http_suspend(pt_req_t *req)
{
    req->suspended = 1;
    req->on_body = NULL;
    req->on_complete = NULL;
}

void pt_http_resume(pt_req_t *req, void (*cont)(pt_req_t *req))
{
    pt_conn_t *c = req->conn;
    char *held = req->held;
    size_t held_len = req->held_len;

    req->suspended = 0;
    req->held = NULL;
    req->held_len = 0;
    if (req->held_hold) {
        req->hold_input = 0;
        req->held_hold = 0;
    }
    c->in_input++; /* answers made here finish the request below, not inside cont */
    cont(req);
    if (c->req == req && !c->closing && req->expect_continue && !req->complete &&
        req->body_bytes == 0) {
        if (req->resp_state == PT_RESP_NONE) {
            static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
            pt__conn_send(c, go_on, sizeof(go_on) - 1);
        } else if (req->resp_state == PT_RESP_DONE) {
            /* answered without "100 Continue": the body may never come */
            c->in_input--;
            c->close_after = 1;
            pt__conn_finish_request(c);
            pt__conn_flush(c);
            return;
        }
    }
    if (c->req == req && !c->closing && held_len > 0 && req->on_body != NULL)
        req->on_body(req, held, held_len);
    if (c->req == req && !c->closing && req->complete && req->on_complete != NULL)
        req->on_complete(req);
    c->in_input--;
    if (c->closing || c->req != req)
        return;
    if (req->resp_state == PT_RESP_DONE && req->complete)
        pt__conn_finish_request(c);
    pt__conn_flush(c); /* writes, parses what was held back, or resumes reading */
}

void pt_http_abort(pt_req_t *req)
{
    pt__conn_close(req->conn);
}

const struct sockaddr *pt_http_peer_addr(const pt_req_t *req)
{
    return (const struct sockaddr *)&req->conn->peer_addr;
}

const pt_listener_rt_t *pt_http_listener(const pt_req_t *req)
{
    return req->conn->listener;
}

int pt_http_listen(pt_listener_rt_t *l, int backlog)
{
    return uv_listen((uv_stream_t *)&l->tcp, backlog, accept_cb);
}

void pt_http_drain(pt_worker_t *w)
{
    pt_conn_t *c, *next;
    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        /* Idle connections close now; a request in progress (even one whose
         * head or body is still arriving) is finished and its response says
         * "Connection: close" (resp_head checks w->draining). */
        if (c->req == NULL && !c->writing && c->out.len == 0)
            pt__conn_close(c);
        else if (c->req == NULL)
            c->close_after = 1;
    }
}

void pt_http_close_all(pt_worker_t *w)
{
    pt_conn_t *c, *next;
    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        c->lingering = 0;
        c->closing = 0;
        pt__conn_close(c);
    }
}

size_t pt_http_feed_detached(pt_worker_t *w, const char *data, size_t len, pt_buf_t *out)
{
    pt_conn_t *c = calloc(1, sizeof(*c));
    size_t total = 0;
    if (c == NULL)
        return 0;
    conn_init(c, w);
    c->noio = 1;
    c->handshake_done = 1;
    snprintf(c->peer, sizeof(c->peer), "detached");
    pt__conn_input(c, data, len);
    for (;;) {
        total += c->out.len;
        if (out != NULL && c->out.len > 0 && pt_buf_append(out, c->out.data, c->out.len) != PT_OK)
            break;
        pt_buf_reset(&c->out);
        /* input held back (pipelining cap) is parsed once the output drained */
        if (c->closing || c->pending_len == 0 || c->waiting)
            break;
        conn_parse_pending(c);
    }
    conn_release(c);
    free(c);
    return total;
}
