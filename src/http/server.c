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

typedef enum conn_timer_e {
    TIMER_NONE = 0,
    TIMER_HANDSHAKE, /* TLS handshake: header_timeout */
    TIMER_HEADER,    /* request head: header_timeout, from its first byte */
    TIMER_BODY,      /* gap between body reads: body_timeout */
    TIMER_IDLE,      /* keep-alive: keepalive_timeout */
    TIMER_LINGER     /* after the final response: discard input for a while */
} conn_timer_t;

#define CONN_LINGER_MS       2000
#define CONN_LINGER_MAX      (1024 * 1024)
#define CONN_PENDING_MAX     (256 * 1024)

struct pt_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    llhttp_t parser;
    pt_worker_t *worker;
    pt_listener_rt_t *listener;
    pt_conn_t *next, *prev;
    pt_arena_t arena;         /* the current request's memory */
    pt_req_t *req;            /* current request, or NULL between requests */
    const pt_limits_t *limits; /* of the snapshot the connection started on / last request */
    pt_buf_t out;             /* queued output not yet handed to the kernel */
    pt_buf_t inflight;        /* output being written */
    char *pending;            /* unparsed input kept while a request is being answered */
    size_t pending_len;
    SSL *ssl;
    BIO *rbio, *wbio;
    char *tls_subject;        /* verified client certificate subject (heap) */
    conn_timer_t timer_kind;
    uint64_t timer_deadline;  /* loop time (ms) at which the current wait ends */
    uint64_t timer_armed;     /* loop time the libuv timer fires at; 0 = not armed */
    unsigned handles_open;    /* tcp + timer; freed when both are closed */
    unsigned reading : 1;
    unsigned writing : 1;
    unsigned waiting : 1;        /* a dispatched request has not been answered yet */
    unsigned out_full : 1;       /* reads paused: too much output queued */
    unsigned close_after : 1;    /* close once the output is flushed */
    unsigned closing : 1;        /* uv_close called or lingering */
    unsigned lingering : 1;
    unsigned handshake_done : 1;
    unsigned noio : 1;           /* detached (fuzzing): no socket */
    unsigned in_input : 1;       /* inside conn_input (re-entrancy guard) */
    unsigned requests;
    uint64_t linger_bytes;
    const char *in_base;      /* start of the buffer being parsed */
    char in_prev;             /* last byte of the previous buffer parsed */
    char peer[INET6_ADDRSTRLEN + 8];
};

static llhttp_settings_t parser_settings;
static int parser_settings_ready;

static void conn_close(pt_conn_t *c);
static void conn_flush(pt_conn_t *c);
static void conn_input(pt_conn_t *c, const char *data, size_t len);
static void conn_update_reading(pt_conn_t *c);
static void conn_finish_request(pt_conn_t *c);
static void conn_fail(pt_conn_t *c, int status, const char *type, const char *detail);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* ------------------------------------------------------------------ reasons */

const char *pt_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

/* ------------------------------------------------------------------ output buffers */

/* Output buffers of the standard size come from a per-worker free list so
 * that a steady stream of responses allocates nothing. */
static int out_reserve(pt_conn_t *c, pt_buf_t *b, size_t extra)
{
    pt_worker_t *w = c->worker;
    if (b->data == NULL && extra <= PT_OUTBUF_SIZE) {
        if (w->outbufs != NULL) {
            pt_outbuf_t *o = w->outbufs;
            w->outbufs = o->next;
            w->noutbufs--;
            b->data = (char *)o;
        } else {
            b->data = malloc(PT_OUTBUF_SIZE);
            if (b->data == NULL)
                return PT_ENOMEM;
        }
        b->cap = PT_OUTBUF_SIZE;
        b->len = 0;
        return PT_OK;
    }
    return pt_buf_reserve(b, extra);
}

static void out_release(pt_conn_t *c, pt_buf_t *b)
{
    pt_worker_t *w = c->worker;
    if (b->data != NULL && b->cap == PT_OUTBUF_SIZE && w->noutbufs < PT_OUTBUF_CACHE_MAX) {
        pt_outbuf_t *o = (pt_outbuf_t *)b->data;
        o->next = w->outbufs;
        w->outbufs = o;
        w->noutbufs++;
    } else {
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Moves whatever TLS produced into the output buffer. */
static int tls_drain_wbio(pt_conn_t *c)
{
    size_t n;
    int r;
    while ((n = BIO_ctrl_pending(c->wbio)) > 0) {
        if (out_reserve(c, &c->out, n) != PT_OK)
            return PT_ENOMEM;
        r = BIO_read(c->wbio, c->out.data + c->out.len, (int)PT_MIN(n, (size_t)INT32_MAX));
        if (r <= 0)
            break;
        c->out.len += (size_t)r;
    }
    return PT_OK;
}

/* Sends plaintext bytes (encrypting them on TLS connections). */
static int conn_send(pt_conn_t *c, const void *data, size_t len)
{
    if (c->closing && !c->lingering)
        return PT_EIO;
    if (c->ssl == NULL) {
        if (out_reserve(c, &c->out, len) != PT_OK)
            return PT_ENOMEM;
        memcpy(c->out.data + c->out.len, data, len);
        c->out.len += len;
        return PT_OK;
    }
    while (len > 0) {
        int chunk = (int)PT_MIN(len, (size_t)16384);
        int r = SSL_write(c->ssl, data, chunk);
        if (r <= 0) {
            ERR_clear_error();
            return PT_EIO;
        }
        data = (const char *)data + r;
        len -= (size_t)r;
    }
    return tls_drain_wbio(c);
}

/* Formats into a scratch buffer then sends: one TLS record per response. */
typedef struct out_s {
    pt_conn_t *c;
    pt_buf_t *b;
    pt_buf_t scratch;
    int err;
} out_t;

static void out_begin(out_t *o, pt_conn_t *c)
{
    o->c = c;
    o->err = 0;
    pt_buf_init(&o->scratch, 0);
    if (c->ssl == NULL) {
        o->b = &c->out;
    } else {
        o->b = &o->scratch;
    }
}

static void out_add(out_t *o, const void *p, size_t n)
{
    if (o->err)
        return;
    if (o->b == &o->c->out) {
        if (out_reserve(o->c, o->b, n) != PT_OK) {
            o->err = 1;
            return;
        }
        memcpy(o->b->data + o->b->len, p, n);
        o->b->len += n;
    } else if (pt_buf_append(o->b, p, n) != PT_OK) {
        o->err = 1;
    }
}

static void out_str(out_t *o, const char *s)
{
    out_add(o, s, strlen(s));
}

static void out_u64(out_t *o, uint64_t v)
{
    char tmp[24];
    out_add(o, tmp, pt_u64_to_str(v, tmp));
}

static int out_end(out_t *o)
{
    int rc = o->err ? PT_ENOMEM : PT_OK;
    if (o->b == &o->scratch) {
        if (rc == PT_OK)
            rc = conn_send(o->c, o->scratch.data, o->scratch.len);
        pt_buf_free(&o->scratch);
    }
    return rc;
}

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
        pt_log_debug("%s: %s timeout", c->peer, kind == TIMER_HEADER ? "header" : "body");
        if (c->req != NULL && c->req->resp_state == PT_RESP_NONE && !c->waiting) {
            conn_fail(c, 408, "request-timeout",
                      kind == TIMER_HEADER ? "The request head did not arrive in time."
                                           : "The request body did not arrive in time.");
            conn_flush(c);
        } else if (!c->waiting) {
            conn_close(c);
        }
        break;
    case TIMER_HANDSHAKE:
    case TIMER_IDLE:
    case TIMER_LINGER:
        conn_close(c);
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
static void conn_timer(pt_conn_t *c, conn_timer_t kind, uint64_t ms)
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

/* ------------------------------------------------------------------ requests */

static void req_snap_release(pt_req_t *req)
{
    pt_wsnap_t *ws = req->snap;
    if (ws != NULL) {
        req->snap = NULL;
        pt_worker_wsnap_release(ws);
    }
}

static pt_req_t *req_new(pt_conn_t *c)
{
    pt_worker_t *w = c->worker;
    pt_req_t *req = pt_arena_calloc(&c->arena, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->conn = c;
    req->snap = w->snap;
    w->snap->refs++;
    c->limits = &w->snap->snap->config->limits;
    req->start_ns = uv_hrtime();
    req->content_length = -1;
    req->headers_cap = 16;
    req->headers = pt_arena_alloc(&c->arena, sizeof(pt_http_header_t) * req->headers_cap);
    if (req->headers == NULL) {
        req_snap_release(req);
        return NULL;
    }
    return req;
}

static void req_set_error(pt_req_t *req, int status, const char *type, const char *detail)
{
    if (req->error_status == 0) {
        req->error_status = status;
        req->error_type = type;
        req->error_detail = detail;
    }
}

/* Appends a span to an arena string, growing it. */
static int span_append(pt_arena_t *a, char **s, size_t *len, const char *at, size_t n)
{
    char *p = pt_arena_realloc(a, *s, *len ? *len + 1 : 0, *len + n + 1);
    if (p == NULL)
        return PT_ENOMEM;
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *s = p;
    return PT_OK;
}

static int head_account(pt_conn_t *c, size_t n)
{
    pt_req_t *req = c->req;
    req->head_bytes += n;
    if (req->head_bytes > c->limits->max_header_size) {
        req_set_error(req, 431, "request-header-fields-too-large",
                      "The request line and headers exceed the configured maximum size.");
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    pt_conn_t *c = p->data;
    if (c->req != NULL) /* cannot happen: the parser is paused between messages */
        return -1;
    c->req = req_new(c);
    if (c->req == NULL)
        return -1;
    conn_timer(c, TIMER_HEADER, c->limits->header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    if (req->url_len + len > c->limits->max_uri_length) {
        req_set_error(req, 414, "uri-too-long", "The request target exceeds the configured maximum length.");
        return -1;
    }
    if (head_account(c, len) != 0)
        return -1;
    return span_append(&c->arena, &req->url, &req->url_len, at, len) == PT_OK ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    if (head_account(c, len) != 0)
        return -1;
    return span_append(&c->arena, &req->hname, &req->hname_len, at, len) == PT_OK ? 0 : -1;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    size_t i;
    char before = at > c->in_base ? at[-1] : c->in_prev;
    if (head_account(c, len) != 0)
        return -1;
    /* A value span that starts right after a line break is an obs-fold
     * continuation line (RFC 9112 §5.2): refused, as a server may. */
    if (before == '\n') {
        req_set_error(req, 400, "bad-request", "Obsolete line folding in a header is refused.");
        return -1;
    }
    /* RFC 9110 §5.5: field values are VCHAR, SP, HTAB and obs-text. NUL, CR,
     * LF and other controls are a smuggling vector: refuse the request. */
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            req_set_error(req, 400, "bad-request", "A header value contains a control character.");
            return -1;
        }
    }
    return span_append(&c->arena, &req->hvalue, &req->hvalue_len, at, len) == PT_OK ? 0 : -1;
}

static int on_header_value_complete(llhttp_t *p)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    pt_http_header_t *h;
    const char *v = req->hvalue ? req->hvalue : "";
    size_t vl = req->hvalue_len;

    if (req->nheaders >= c->limits->max_headers) {
        req_set_error(req, 431, "request-header-fields-too-large", "Too many request headers.");
        return -1;
    }
    if (req->nheaders == req->headers_cap) {
        pt_http_header_t *nh = pt_arena_realloc(&c->arena, req->headers,
                                                sizeof(*nh) * req->headers_cap,
                                                sizeof(*nh) * req->headers_cap * 2);
        if (nh == NULL)
            return -1;
        req->headers = nh;
        req->headers_cap *= 2;
    }
    while (vl > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vl--;
    }
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    h = &req->headers[req->nheaders++];
    h->name.p = req->hname ? req->hname : "";
    h->name.len = req->hname_len;
    h->value.p = v;
    h->value.len = vl;
    req->hname = req->hvalue = NULL;
    req->hname_len = req->hvalue_len = 0;
    head_account(c, 4); /* ": " and CRLF */
    return req->error_status ? -1 : 0;
}

const pt_str_t *pt_http_header(const pt_req_t *req, const char *lname)
{
    unsigned i;
    for (i = 0; i < req->nheaders; i++)
        if (pt_str_ieq(req->headers[i].name.p, req->headers[i].name.len, lname))
            return &req->headers[i].value;
    return NULL;
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2): reg-name / IPv4 / [IPv6]. */
static int host_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0 || n > 255)
        return 0;
    if (p[0] == '[') {
        while (i < n && p[i] != ']') {
            unsigned char ch = (unsigned char)p[i];
            if (i > 0 && !(ch == ':' || ch == '.' || (ch >= '0' && ch <= '9') ||
                           (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
                return 0;
            i++;
        }
        if (i == n)
            return 0;
        i++;
    } else {
        for (; i < n && p[i] != ':'; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '%'))
                return 0;
        }
        if (i == 0)
            return 0;
    }
    if (i < n) {
        size_t digits = 0;
        if (p[i] != ':')
            return 0;
        for (i++; i < n; i++, digits++)
            if (p[i] < '0' || p[i] > '9')
                return 0;
        if (digits > 5)
            return 0;
    }
    return 1;
}

static int request_id_valid(const pt_str_t *v)
{
    size_t i;
    if (v->len == 0 || v->len > PT_REQUEST_ID_MAX)
        return 0;
    for (i = 0; i < v->len; i++) {
        unsigned char ch = (unsigned char)v->p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return 0;
    }
    return 1;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void request_id_generate(pt_worker_t *w, pt_req_t *req)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t n = ++w->rid_counter;
    uint64_t a = splitmix64(w->rid_seed[0] ^ n), b = splitmix64(w->rid_seed[1] + n);
    int i;
    for (i = 0; i < 16; i++) {
        req->request_id[i] = hex[(a >> (60 - 4 * i)) & 15];
        req->request_id[16 + i] = hex[(b >> (60 - 4 * i)) & 15];
    }
    req->request_id[32] = '\0';
    req->request_id_len = 32;
}

/* A path segment "." or ".." (raw or percent-encoded) would let a client
 * escape a base path once it is forwarded; refuse them. */
static int path_has_dot_segment(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t start, j, dots = 0, other = 0;
        if (p[i] != '/')
            return 1;
        start = ++i;
        while (i < n && p[i] != '/')
            i++;
        for (j = start; j < i; j++) {
            if (p[j] == '.')
                dots++;
            else if (p[j] == '%' && j + 2 < i && p[j + 1] == '2' &&
                     (p[j + 2] == 'e' || p[j + 2] == 'E')) {
                dots++;
                j += 2;
            } else
                other++;
        }
        if (other == 0 && (dots == 1 || dots == 2))
            return 1;
    }
    return 0;
}

/* Splits the request target into host, path and query (RFC 9112 §3.2). */
static int parse_target(pt_req_t *req)
{
    char *u = req->url;
    size_t n = req->url_len, i;
    const char *path;
    size_t plen;

    if (n == 0)
        return -1;
    if (u[0] == '/') {
        path = u;
        plen = n;
    } else if ((n > 7 && pt_str_ieq(u, 7, "http://")) || (n > 8 && pt_str_ieq(u, 8, "https://"))) {
        /* absolute-form: the authority replaces Host */
        size_t a = u[4] == ':' ? 7 : 8, e = a;
        while (e < n && u[e] != '/' && u[e] != '?' && u[e] != '#')
            e++;
        if (memchr(u + a, '@', e - a) != NULL || !host_valid(u + a, e - a))
            return -1;
        req->host.p = u + a;
        req->host.len = e - a;
        if (e == n || u[e] != '/') {
            /* "http://h" or "http://h?q": the path is "/" */
            path = "/";
            plen = 1;
            if (e < n && u[e] == '?') {
                req->path.p = path;
                req->path.len = 1;
                req->query.p = u + e + 1;
                req->query.len = n - e - 1;
                return 0;
            }
            req->path.p = path;
            req->path.len = 1;
            return 0;
        }
        path = u + e;
        plen = n - e;
    } else if (n == 1 && u[0] == '*') {
        req->path.p = u;
        req->path.len = 1;
        return 0;
    } else {
        return -1; /* authority-form (CONNECT) is not served */
    }
    for (i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch == '?' || ch == '#')
            break;
        if (ch <= 0x20 || ch >= 0x7f || ch == '\\')
            return -1;
    }
    req->path.p = path;
    req->path.len = i;
    if (i < plen && path[i] == '?') {
        size_t q = i + 1, e = q;
        while (e < plen && path[e] != '#')
            e++;
        req->query.p = path + q;
        req->query.len = e - q;
    }
    if (path_has_dot_segment(req->path.p, req->path.len))
        return -1;
    return 0;
}

/* Checks the request head once it is complete: version, Host, framing. */
static int head_check(pt_conn_t *c, pt_req_t *req)
{
    unsigned i, nhost = 0, ncl = 0, nte = 0;
    const pt_str_t *cl = NULL, *te = NULL, *rid = NULL, *expect = NULL;

    if (req->http_major != 1 || req->http_minor > 1) {
        req_set_error(req, 505, "http-version-not-supported", "Only HTTP/1.0 and HTTP/1.1 are served.");
        return -1;
    }
    for (i = 0; i < req->nheaders; i++) {
        const pt_http_header_t *h = &req->headers[i];
        if (pt_str_ieq(h->name.p, h->name.len, "host")) {
            nhost++;
            req->host = h->value;
        } else if (pt_str_ieq(h->name.p, h->name.len, "content-length")) {
            ncl++;
            cl = &h->value;
        } else if (pt_str_ieq(h->name.p, h->name.len, "transfer-encoding")) {
            nte++;
            te = &h->value;
        } else if (pt_str_ieq(h->name.p, h->name.len, "x-request-id")) {
            rid = &h->value;
        } else if (pt_str_ieq(h->name.p, h->name.len, "expect")) {
            expect = &h->value;
        }
    }
    if (cl != NULL && te != NULL) {
        req_set_error(req, 400, "bad-request", "Content-Length and Transfer-Encoding together are refused.");
        return -1;
    }
    if (ncl >= 2) {
        /* several Content-Length headers: refused even when equal (RFC 9112 §6.3 allows
         * either; refusing closes the door on parsers that disagree) */
        req_set_error(req, 400, "bad-request", "Duplicate Content-Length headers.");
        return -1;
    }
    if (te != NULL) {
        if (req->http_minor == 0 || nte > 1 || !pt_str_ieq(te->p, te->len, "chunked")) {
            req_set_error(req, 400, "bad-request",
                          "Transfer-Encoding must be exactly \"chunked\" on HTTP/1.1 requests.");
            return -1;
        }
        req->chunked = 1;
    }
    if (cl != NULL) {
        uint64_t v = 0;
        size_t k;
        if (cl->len == 0 || cl->len > 19) {
            req_set_error(req, 400, "bad-request", "Invalid Content-Length.");
            return -1;
        }
        for (k = 0; k < cl->len; k++) {
            if (cl->p[k] < '0' || cl->p[k] > '9') {
                req_set_error(req, 400, "bad-request", "Invalid Content-Length.");
                return -1;
            }
            v = v * 10 + (uint64_t)(cl->p[k] - '0');
        }
        req->content_length = (int64_t)v;
    }
    if (nhost > 1) {
        req_set_error(req, 400, "bad-request", "More than one Host header.");
        return -1;
    }
    if (nhost == 0 && req->http_minor == 1) {
        req_set_error(req, 400, "bad-request", "HTTP/1.1 requests must carry a Host header.");
        return -1;
    }
    if (nhost == 1 && !host_valid(req->host.p, req->host.len)) {
        req_set_error(req, 400, "bad-request", "Invalid Host header.");
        return -1;
    }
    if (parse_target(req) != 0) {
        req_set_error(req, 400, "bad-request", "Invalid request target.");
        return -1;
    }
    if (req->path.len == 1 && req->path.p[0] == '*' &&
        !(req->method_len == 7 && memcmp(req->method, "OPTIONS", 7) == 0)) {
        req_set_error(req, 400, "bad-request", "Asterisk-form is only valid for OPTIONS.");
        return -1;
    }
    if (rid != NULL && request_id_valid(rid)) {
        memcpy(req->request_id, rid->p, rid->len);
        req->request_id[rid->len] = '\0';
        req->request_id_len = (uint8_t)rid->len;
    }
    if (expect != NULL) {
        if (!pt_str_ieq(expect->p, expect->len, "100-continue")) {
            req_set_error(req, 417, "expectation-failed", "Only \"Expect: 100-continue\" is supported.");
            return -1;
        }
        req->expect_continue = req->http_minor == 1;
    }
    if (req->content_length > 0 && (uint64_t)req->content_length > c->limits->max_body_size) {
        req_set_error(req, 413, "payload-too-large", "The request body exceeds the configured maximum size.");
        return -1;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    int has_body;

    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    req->method = llhttp_method_name((llhttp_method_t)p->method);
    req->method_len = strlen(req->method);
    req->is_head = p->method == HTTP_HEAD;
    req->bytes_in = req->head_bytes + 2;
    if (head_check(c, req) != 0) {
        if (req->request_id_len == 0)
            request_id_generate(c->worker, req);
        return -1;
    }
    if (req->request_id_len == 0)
        request_id_generate(c->worker, req);
    /* keepalive_timeout 0 disables keep-alive: say so with Connection: close */
    req->keepalive = llhttp_should_keep_alive(p) != 0 && c->limits->keepalive_timeout_ms > 0;
    has_body = req->chunked || req->content_length > 0;
    if (has_body)
        conn_timer(c, TIMER_BODY, c->limits->body_timeout_ms);
    else
        conn_timer(c, TIMER_NONE, 0);

    req->dispatched = 1;
    c->waiting = 1;
    c->worker->handler(req);
    if (c->req != req) /* the connection failed while handling */
        return -1;
    if (has_body) {
        if (req->resp_state == PT_RESP_NONE && req->expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            conn_send(c, cont, sizeof(cont) - 1);
            conn_flush(c);
        } else if (req->resp_state == PT_RESP_DONE && req->expect_continue) {
            /* Answered without "100 Continue": the client may never send the
             * body, so the connection cannot be reused. */
            c->close_after = 1;
            return -1;
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    req->body_bytes += len;
    req->bytes_in += len;
    if (req->body_bytes > c->limits->max_body_size) {
        req_set_error(req, 413, "payload-too-large", "The request body exceeds the configured maximum size.");
        return -1;
    }
    /* Dispatch kinds that consume the body register on_body; otherwise
     * (static responses, errors answered early) it is discarded. */
    if (req->on_body != NULL && req->resp_state == PT_RESP_NONE)
        req->on_body(req, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    req->complete = 1;
    conn_timer(c, TIMER_NONE, 0);
    if (req->on_complete != NULL && req->resp_state == PT_RESP_NONE)
        req->on_complete(req);
    return HPE_PAUSED;
}

static void settings_init(void)
{
    if (parser_settings_ready)
        return;
    llhttp_settings_init(&parser_settings);
    parser_settings.on_message_begin = on_message_begin;
    parser_settings.on_url = on_url;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_header_value_complete = on_header_value_complete;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;
    parser_settings_ready = 1;
}

/* ------------------------------------------------------------------ responses */

static void resp_head(pt_req_t *req, out_t *o, int status, const pt_header_kv_t *hdrs, size_t nh,
                      const char *ctype, int64_t clen, int body_allowed)
{
    pt_conn_t *c = req->conn;
    pt_worker_t *w = c->worker;
    char line[64];
    int n;
    size_t i;

    if (!req->keepalive || w->draining || c->close_after)
        c->close_after = 1;
    n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    out_add(o, line, (size_t)n);
    out_str(o, pt_http_reason(status));
    out_add(o, "\r\nDate: ", 8);
    out_add(o, w->date, w->date_len);
    out_add(o, "\r\nServer: portico\r\nX-Request-Id: ", 33);
    out_add(o, req->request_id, req->request_id_len);
    out_add(o, "\r\n", 2);
    if (ctype != NULL && body_allowed) {
        out_add(o, "Content-Type: ", 14);
        out_str(o, ctype);
        out_add(o, "\r\n", 2);
    }
    if (status >= 200 && status != 204 && status != 304) {
        if (clen >= 0) {
            out_add(o, "Content-Length: ", 16);
            out_u64(o, (uint64_t)clen);
            out_add(o, "\r\n", 2);
        } else if (req->http_minor >= 1) {
            out_add(o, "Transfer-Encoding: chunked\r\n", 28);
            req->resp_chunked = 1;
        } else {
            c->close_after = 1; /* HTTP/1.0: the body ends at close */
        }
    }
    if (c->close_after)
        out_add(o, "Connection: close\r\n", 19);
    else if (req->http_minor == 0)
        out_add(o, "Connection: keep-alive\r\n", 24);
    for (i = 0; i < nh; i++) {
        out_str(o, hdrs[i].name);
        out_add(o, ": ", 2);
        out_str(o, hdrs[i].value);
        out_add(o, "\r\n", 2);
    }
    out_add(o, "\r\n", 2);
}

static int body_allowed(const pt_req_t *req, int status)
{
    return !req->is_head && status >= 200 && status != 204 && status != 304;
}

static void resp_done(pt_req_t *req)
{
    pt_conn_t *c = req->conn;
    req->resp_state = PT_RESP_DONE;
    c->waiting = 0;
    if (c->in_input)
        return; /* conn_input finishes the request when the message is complete */
    if (req->complete) {
        conn_finish_request(c);
        if (!c->closing && c->pending_len > 0) {
            char *data = c->pending;
            size_t len = c->pending_len;
            c->pending = NULL;
            c->pending_len = 0;
            conn_input(c, data, len);
            free(data);
        }
    }
    if (!c->closing)
        conn_update_reading(c);
    conn_flush(c);
}

void pt_http_respond(pt_req_t *req, int status, const pt_header_kv_t *hdrs, size_t nh,
                     const char *ctype, const void *body, size_t len)
{
    pt_conn_t *c = req->conn;
    out_t o;
    int allowed = body_allowed(req, status);
    uint64_t before = c->out.len;

    if (req->resp_state != PT_RESP_NONE)
        return;
    req->status = status;
    out_begin(&o, c);
    resp_head(req, &o, status, hdrs, nh, ctype, (int64_t)len, allowed);
    if (allowed && len > 0)
        out_add(&o, body, len);
    if (c->ssl == NULL)
        req->bytes_out += o.b->len - before;
    else
        req->bytes_out += o.scratch.len;
    if (out_end(&o) != PT_OK)
        c->close_after = 1;
    resp_done(req);
}

void pt_http_respond_start(pt_req_t *req, int status, const pt_header_kv_t *hdrs, size_t nh,
                           const char *ctype, int64_t content_length)
{
    pt_conn_t *c = req->conn;
    out_t o;
    uint64_t before = c->out.len;

    if (req->resp_state != PT_RESP_NONE)
        return;
    req->status = status;
    out_begin(&o, c);
    resp_head(req, &o, status, hdrs, nh, ctype, content_length, body_allowed(req, status));
    req->bytes_out += c->ssl == NULL ? o.b->len - before : o.scratch.len;
    if (out_end(&o) != PT_OK)
        c->close_after = 1;
    req->resp_state = PT_RESP_HEAD;
    if (!body_allowed(req, status))
        req->resp_chunked = 0;
}

void pt_http_respond_body(pt_req_t *req, const void *data, size_t len)
{
    pt_conn_t *c = req->conn;
    if (req->resp_state != PT_RESP_HEAD || len == 0 || !body_allowed(req, req->status))
        return;
    if (req->resp_chunked) {
        char hex[24];
        int n = snprintf(hex, sizeof(hex), "%zx\r\n", len);
        conn_send(c, hex, (size_t)n);
        conn_send(c, data, len);
        conn_send(c, "\r\n", 2);
        req->bytes_out += (uint64_t)n + len + 2;
    } else {
        conn_send(c, data, len);
        req->bytes_out += len;
    }
    if (!c->in_input)
        conn_flush(c);
}

void pt_http_respond_end(pt_req_t *req)
{
    if (req->resp_state != PT_RESP_HEAD)
        return;
    if (req->resp_chunked) {
        conn_send(req->conn, "0\r\n\r\n", 5);
        req->bytes_out += 5;
    }
    resp_done(req);
}

void pt_http_problem(pt_req_t *req, int status, const char *type, const char *detail,
                     const pt_header_kv_t *hdrs, size_t nh)
{
    pt_buf_t b;
    pt_buf_init(&b, 0);
    pt_buf_append_str(&b, "{\"type\":\"urn:portico:problem:");
    pt_buf_append_str(&b, type);
    pt_buf_append_str(&b, "\",\"title\":\"");
    pt_buf_append_str(&b, pt_http_reason(status));
    pt_buf_append_str(&b, "\",\"status\":");
    pt_buf_append_u64(&b, (uint64_t)status);
    if (detail != NULL) {
        pt_buf_append_str(&b, ",\"detail\":\"");
        pt_buf_append_json_str(&b, detail, strlen(detail));
        pt_buf_append_char(&b, '"');
    }
    if (req->path.len > 0) {
        pt_buf_append_str(&b, ",\"instance\":\"");
        pt_buf_append_json_str(&b, req->path.p, req->path.len);
        pt_buf_append_char(&b, '"');
    }
    pt_buf_append_str(&b, ",\"request_id\":\"");
    pt_buf_append(&b, req->request_id, req->request_id_len);
    pt_buf_append_str(&b, "\"}");
    if (b.data == NULL) {
        pt_http_respond(req, status, hdrs, nh, NULL, NULL, 0);
    } else {
        pt_http_respond(req, status, hdrs, nh, "application/problem+json", b.data, b.len);
    }
    pt_buf_free(&b);
}

const char *pt_http_client_subject(const pt_req_t *req)
{
    return req->conn->tls_subject;
}

pt_arena_t *pt_http_req_arena(pt_req_t *req)
{
    return &req->conn->arena;
}

unsigned pt_http_listener_index(const pt_req_t *req)
{
    return req->conn->listener != NULL ? req->conn->listener->index : 0;
}

const char *pt_http_peer(const pt_req_t *req)
{
    return req->conn->peer;
}

/* ------------------------------------------------------------------ access log */

static void access_log(pt_conn_t *c, pt_req_t *req)
{
    pt_worker_t *w = c->worker;
    pt_buf_t *b = pt_access_log_buf(&w->alog);
    struct timespec ts;
    struct tm tm;
    char tbuf[40];
    size_t n;
    uint64_t dur_us = (uv_hrtime() - req->start_ns) / 1000;

    if (b == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(tbuf + n, sizeof(tbuf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    pt_buf_append_str(b, "{\"time\":\"");
    pt_buf_append(b, tbuf, n);
    pt_buf_append_str(b, "\",\"request_id\":\"");
    pt_buf_append(b, req->request_id, req->request_id_len);
    pt_buf_append_str(b, "\",\"client\":\"");
    pt_buf_append_str(b, c->peer);
    pt_buf_append_str(b, "\",\"method\":\"");
    if (req->method != NULL)
        pt_buf_append(b, req->method, req->method_len);
    pt_buf_append_str(b, "\",\"path\":\"");
    pt_buf_append_json_str(b, req->path.p ? req->path.p : "", req->path.len);
    pt_buf_append_str(b, "\",\"status\":");
    pt_buf_append_u64(b, (uint64_t)req->status);
    pt_buf_append_str(b, ",\"bytes_in\":");
    pt_buf_append_u64(b, req->bytes_in);
    pt_buf_append_str(b, ",\"bytes_out\":");
    pt_buf_append_u64(b, req->bytes_out);
    pt_buf_append_str(b, ",\"duration_us\":");
    pt_buf_append_u64(b, dur_us);
    if (req->match.api != NULL) {
        pt_buf_append_str(b, ",\"api\":\"");
        pt_buf_append_json_str(b, req->match.api->name, strlen(req->match.api->name));
        pt_buf_append_char(b, '"');
    }
    if (req->match.route != NULL) {
        pt_buf_append_str(b, ",\"route\":\"");
        pt_buf_append_json_str(b, req->match.route->name, strlen(req->match.route->name));
        pt_buf_append_char(b, '"');
    }
    if (c->tls_subject != NULL) {
        pt_buf_append_str(b, ",\"tls_client\":\"");
        pt_buf_append_json_str(b, c->tls_subject, strlen(c->tls_subject));
        pt_buf_append_char(b, '"');
    }
    pt_buf_append_str(b, "}\n");
    pt_access_log_commit(&w->alog, 0);
}

/* ------------------------------------------------------------------ connection */

/* Ends the current request: log it, release its snapshot and memory, and
 * prepare the connection for the next one (or for closing). */
static void conn_finish_request(pt_conn_t *c)
{
    pt_req_t *req = c->req;
    if (req == NULL)
        return;
    if (req->status != 0)
        access_log(c, req);
    req_snap_release(req);
    c->req = NULL;
    c->waiting = 0;
    pt_arena_reset(&c->arena);
    c->requests++;
    if (c->close_after)
        return; /* the flush that follows starts the close */
    conn_timer(c, TIMER_IDLE, c->limits->keepalive_timeout_ms);
}

/* Refuses the current request (or a connection-level error) and closes the
 * connection after the response. */
static void conn_fail(pt_conn_t *c, int status, const char *type, const char *detail)
{
    pt_req_t *req = c->req;
    c->close_after = 1;
    if (req == NULL) {
        req = req_new(c);
        if (req == NULL) {
            conn_close(c);
            return;
        }
        c->req = req;
        request_id_generate(c->worker, req);
    }
    if (req->request_id_len == 0)
        request_id_generate(c->worker, req);
    if (req->resp_state == PT_RESP_NONE) {
        c->in_input++;
        pt_http_problem(req, status, type, detail, NULL, 0);
        c->in_input--;
    }
    req->complete = 1;
    c->waiting = 0;
    conn_finish_request(c);
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
        status = 505;
        type = "http-version-not-supported";
        detail = "Only HTTP/1.0 and HTTP/1.1 are served.";
    } else if (err == HPE_INVALID_METHOD) {
        detail = "Unknown request method.";
    } else if (err == HPE_PAUSED_UPGRADE) {
        status = 501;
        type = "not-implemented";
        detail = "Protocol upgrades are not supported.";
    } else if (c->close_after && req != NULL && req->resp_state == PT_RESP_DONE) {
        /* answered already (e.g. final response instead of 100 Continue) */
        conn_finish_request(c);
        return;
    }
    pt_log_debug("%s: parse error %s (%s)", c->peer, llhttp_errno_name(err),
                 llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser) : "");
    if (req != NULL && req->resp_state != PT_RESP_NONE) {
        /* the response has started: nothing more can be said, just close */
        c->close_after = 1;
        req->complete = 1;
        conn_finish_request(c);
        return;
    }
    conn_fail(c, status, type, detail);
}

static void conn_save_pending(pt_conn_t *c, const char *data, size_t len)
{
    char *p;
    if (len == 0)
        return;
    if (c->pending_len + len > CONN_PENDING_MAX) {
        conn_fail(c, 400, "bad-request", "Too much pipelined input.");
        return;
    }
    p = realloc(c->pending, c->pending_len + len);
    if (p == NULL) {
        conn_close(c);
        return;
    }
    memcpy(p + c->pending_len, data, len);
    c->pending = p;
    c->pending_len += len;
}

/* Parses input, dispatching each complete request head; stops (keeping the
 * rest) while a request waits for an asynchronous answer. */
static void conn_input(pt_conn_t *c, const char *data, size_t len)
{
    unsigned served = 0;
    int body_seen = 0;
    const char *last = len > 0 ? data + len - 1 : NULL;
    char last_byte = last != NULL ? *last : c->in_prev;

    c->in_base = data;
    c->in_input++;
    while (len > 0 && !c->closing && !c->close_after) {
        llhttp_errno_t err;
        if (c->waiting && c->req != NULL && c->req->complete) {
            conn_save_pending(c, data, len);
            break;
        }
        if (c->req == NULL && served >= c->limits->max_pipelined) {
            /* Enough work for one callback: continue once the output drains. */
            conn_save_pending(c, data, len);
            break;
        }
        err = llhttp_execute(&c->parser, data, len);
        if (err == HPE_OK) {
            if (c->req != NULL && c->req->dispatched && !c->req->complete)
                body_seen = 1;
            break;
        }
        if (err == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            size_t used = (size_t)(pos - data);
            llhttp_resume(&c->parser);
            data = pos;
            len -= used;
            served++;
            if (c->req != NULL && c->req->resp_state == PT_RESP_DONE)
                conn_finish_request(c);
            continue;
        }
        parse_error(c, err);
        break;
    }
    c->in_input--;
    c->in_prev = last_byte;
    if (body_seen && c->timer_kind == TIMER_BODY)
        conn_timer(c, TIMER_BODY, c->limits->body_timeout_ms);
    if (!c->closing)
        conn_update_reading(c);
}

static void conn_update_reading(pt_conn_t *c)
{
    int want;
    if (c->noio || c->closing)
        return;
    c->out_full = c->out.len + c->inflight.len > c->limits->max_output_buffer;
    want = !c->out_full && c->pending_len == 0 && !(c->waiting && c->req && c->req->complete) &&
           !c->close_after;
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
    if (c->req != NULL) {
        req_snap_release(c->req);
        c->req = NULL;
    }
    pt_arena_reset(&c->arena);
    out_release(c, &c->out);
    out_release(c, &c->inflight);
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    if (c->ssl != NULL) {
        SSL_free(c->ssl); /* frees the BIOs */
        c->ssl = NULL;
    }
    free(c->tls_subject);
    c->tls_subject = NULL;
}

/* Closes the connection now; memory is freed once libuv has closed both handles. */
static void conn_close(pt_conn_t *c)
{
    if (c->closing && !c->lingering)
        return;
    c->closing = 1;
    c->lingering = 0;
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
        conn_close(c);
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
        tls_drain_wbio(c);
        if (c->out.len > 0) {
            conn_flush(c);
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
    conn_timer(c, TIMER_LINGER, CONN_LINGER_MS);
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) != 0)
        conn_close(c);
}

static void write_cb(uv_write_t *wr, int status)
{
    pt_conn_t *c = wr->data;
    c->writing = 0;
    out_release(c, &c->inflight);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->closing && !c->lingering)
        return;
    if (c->out.len > 0) {
        conn_flush(c);
        return;
    }
    if (c->close_after && c->req == NULL) {
        conn_linger(c);
        return;
    }
    if (c->pending_len > 0 && !c->waiting) {
        char *data = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        conn_input(c, data, len);
        free(data);
        if (c->closing)
            return;
        conn_flush(c);
        return;
    }
    conn_update_reading(c);
}

/* Hands queued output to the kernel. Tries a direct write first: when the
 * kernel takes everything (the common case) no write request, callback or
 * poll change is needed. Otherwise the rest goes to uv_write, one write in
 * flight at a time. Does what write_cb does after a completed write. */
static void conn_flush(pt_conn_t *c)
{
    for (;;) {
        uv_buf_t b;
        int n;
        if (c->noio || c->writing || (c->closing && !c->lingering))
            return;
        if (c->out.len == 0) {
            if (c->close_after && c->req == NULL && !c->lingering)
                conn_linger(c);
            return;
        }
        b = uv_buf_init(c->out.data, (unsigned)c->out.len);
        n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)c->out.len) {
            out_release(c, &c->out);
            if (c->close_after && c->req == NULL) {
                conn_linger(c);
                return;
            }
            if (c->pending_len > 0 && !c->waiting) {
                char *data = c->pending;
                size_t len = c->pending_len;
                c->pending = NULL;
                c->pending_len = 0;
                conn_input(c, data, len);
                free(data);
                continue;
            }
            if (!c->closing)
                conn_update_reading(c);
            return;
        }
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        if (n > 0)
            pt_buf_consume(&c->out, (size_t)n);
        c->inflight = c->out;
        pt_buf_init(&c->out, 0);
        b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
        c->wreq.data = c;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
            conn_close(c);
            return;
        }
        c->writing = 1;
        if (!c->closing)
            conn_update_reading(c);
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
    conn_timer(c, TIMER_IDLE, c->limits->header_timeout_ms);
}

static void tls_input(pt_conn_t *c, const char *data, size_t len)
{
    pt_worker_t *w = c->worker;
    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        conn_close(c);
        return;
    }
    if (!c->handshake_done) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            tls_drain_wbio(c);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                conn_flush(c);
                return;
            }
            {
                unsigned long oe = ERR_peek_error();
                pt_log_debug("%s: TLS handshake failed: %s", c->peer,
                             oe ? ERR_reason_error_string(oe) : "protocol error");
            }
            ERR_clear_error();
            /* send the alert, if any, then close */
            c->close_after = 1;
            if (c->out.len > 0 && !c->noio) {
                c->handshake_done = 0;
                conn_flush(c);
                conn_timer(c, TIMER_LINGER, 1000);
            } else {
                conn_close(c);
            }
            return;
        }
        tls_handshake_done(c);
        tls_drain_wbio(c);
    }
    for (;;) {
        int r = SSL_read(c->ssl, w->tlsbuf, sizeof(w->tlsbuf));
        if (r > 0) {
            if (c->lingering)
                continue;
            conn_input(c, w->tlsbuf, (size_t)r);
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
                if (c->req == NULL || c->close_after)
                    conn_close(c);
                break;
            }
            conn_close(c);
            return;
        }
    }
    tls_drain_wbio(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pt_conn_t *c = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error. A request still being answered is abandoned (the
         * dispatch kinds of later issues decide what to do with it). */
        conn_close(c);
        return;
    }
    if (c->lingering) {
        c->linger_bytes += (uint64_t)nread;
        if (c->linger_bytes > CONN_LINGER_MAX)
            conn_close(c);
        return;
    }
    if (c->ssl != NULL)
        tls_input(c, c->worker->rbuf, (size_t)nread);
    else
        conn_input(c, c->worker->rbuf, (size_t)nread);
    if (!c->closing || c->lingering)
        conn_flush(c);
}

static void conn_init(pt_conn_t *c, pt_worker_t *w)
{
    settings_init();
    c->worker = w;
    c->limits = &w->snap->snap->config->limits;
    pt_arena_init(&c->arena, &w->blocks);
    pt_buf_init(&c->out, 0);
    pt_buf_init(&c->inflight, 0);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
}

/* Refuses a connection over the limit with a minimal 503, best effort. */
static void refuse(pt_worker_t *w, uv_tcp_t *tcp)
{
    static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                               "application/problem+json\r\nContent-Length: 115\r\nConnection: "
                               "close\r\n\r\n{\"type\":\"urn:portico:problem:too-many-connections\","
                               "\"title\":\"Service Unavailable\",\"status\":503}            ";
    uv_buf_t b = uv_buf_init((char *)resp, sizeof(resp) - 1);
    (void)w;
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
            w->refused++;
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
    w->accepted++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
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
            conn_close(c);
            return;
        }
        BIO_set_mem_eof_return(c->rbio, -1);
        BIO_set_mem_eof_return(c->wbio, -1);
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_accept_state(c->ssl);
        conn_timer(c, TIMER_HANDSHAKE, c->limits->header_timeout_ms);
    } else {
        c->handshake_done = 1;
        conn_timer(c, TIMER_IDLE, c->limits->header_timeout_ms);
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
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
        if (c->req == NULL && !c->writing && c->out.len == 0)
            conn_close(c);
        else
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
        conn_close(c);
    }
}

size_t pt_http_feed_detached(pt_worker_t *w, const char *data, size_t len)
{
    pt_conn_t *c = calloc(1, sizeof(*c));
    size_t n;
    if (c == NULL)
        return 0;
    conn_init(c, w);
    c->noio = 1;
    c->handshake_done = 1;
    snprintf(c->peer, sizeof(c->peer), "fuzz");
    conn_input(c, data, len);
    /* input that was held back (pipelining cap) is parsed as the output drains */
    while (!c->closing && c->pending_len > 0 && !c->waiting) {
        char *p = c->pending;
        size_t plen = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        pt_buf_reset(&c->out);
        conn_input(c, p, plen);
        free(p);
    }
    n = c->out.len;
    conn_release(c);
    free(c);
    return n;
}
