/*
 * request.c - request parsing: the llhttp callbacks, limits on the request
 * head, and the checks that refuse ambiguous requests (request smuggling,
 * Host, request target, version) before anything is dispatched.
 */
#include "http/http.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "event/worker-t.h"
#include "event/worker.h"
#include "gateway/snapshot-t.h"
#include "http/conn-i.h"

/* ------------------------------------------------------------------ requests */

void pt__req_snap_release(pt_req_t *req)
{
    pt_wsnap_t *ws = req->snap;
    if (ws != NULL) {
        req->snap = NULL;
        pt_worker_wsnap_release(ws);
    }
}

pt_req_t *pt__req_new(pt_conn_t *c)
{
    pt_worker_t *w = c->worker;
    pt_req_t *req = pt_arena_calloc(&c->arena, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->conn = c;
    req->snap = w->snap;
    w->snap->refs++;
    c->limits = w->snap->snap->config->limits;
    req->start_ns = uv_hrtime();
    req->content_length = -1;
    req->headers_cap = 16;
    req->headers = pt_arena_alloc(&c->arena, sizeof(pt_http_header_t) * req->headers_cap);
    if (req->headers == NULL) {
        pt__req_snap_release(req);
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

static int head_account(pt_conn_t *c, size_t n)
{
    pt_req_t *req = c->req;
    req->head_bytes += n;
    if (req->head_bytes > c->limits.max_header_size) {
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
    c->req = pt__req_new(c);
    if (c->req == NULL)
        return -1;
    pt__conn_timer(c, TIMER_HEADER, c->limits.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    if (req->url_len + len > c->limits.max_uri_length) {
        req_set_error(req, 414, "uri-too-long",
                      "The request target exceeds the configured maximum length.");
        return -1;
    }
    if (head_account(c, len) != 0)
        return -1;
    return pt_arena_append(&c->arena, &req->url, &req->url_len, at, len) == PT_OK ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    if (head_account(c, len) != 0)
        return -1;
    return pt_arena_append(&c->arena, &req->hname, &req->hname_len, at, len) == PT_OK ? 0 : -1;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    size_t i;
    if (head_account(c, len) != 0)
        return -1;
    /* RFC 9110 §5.5: field values are VCHAR, SP, HTAB and obs-text. NUL, CR,
     * LF and other controls are a smuggling vector: refuse the request. */
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            req_set_error(req, 400, "bad-request", "A header value contains a control character.");
            return -1;
        }
    }
    return pt_arena_append(&c->arena, &req->hvalue, &req->hvalue_len, at, len) == PT_OK ? 0 : -1;
}

static int on_header_value_complete(llhttp_t *p)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    pt_http_header_t *h;
    const char *v = req->hvalue ? req->hvalue : "";
    size_t vl = req->hvalue_len;

    if (req->hname_len == 0) {
        req_set_error(req, 400, "bad-request", "A header has an empty name.");
        return -1;
    }
    if (req->dispatched) {
        /* a trailer field of a chunked body: checked and counted, not kept
         * (the head was checked and dispatched already) */
        req->hname = req->hvalue = NULL;
        req->hname_len = req->hvalue_len = 0;
        return head_account(c, 4);
    }
    if (req->nheaders >= c->limits.max_headers) {
        req_set_error(req, 431, "request-header-fields-too-large", "Too many request headers.");
        return -1;
    }
    if (req->nheaders == req->headers_cap) {
        pt_http_header_t *nh =
            pt_arena_realloc(&c->arena, req->headers, sizeof(*nh) * req->headers_cap,
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

void pt_http_header_remove(pt_req_t *req, const char *lname)
{
    unsigned i, k = 0;
    for (i = 0; i < req->nheaders; i++)
        if (!pt_str_ieq(req->headers[i].name.p, req->headers[i].name.len, lname))
            req->headers[k++] = req->headers[i];
    req->nheaders = k;
}

void pt_http_query_remove(pt_req_t *req, const char *name)
{
    const char *q = req->query.p, *end = q + req->query.len;
    size_t nl = strlen(name), len = 0;
    char *out;
    if (q == NULL || req->query.len == 0 ||
        (out = pt_arena_alloc(&req->conn->arena, req->query.len + 1)) == NULL)
        return;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp != NULL ? amp : end;
        if (!((size_t)(e - q) >= nl && memcmp(q, name, nl) == 0 && (q + nl == e || q[nl] == '='))) {
            if (len > 0)
                out[len++] = '&';
            memcpy(out + len, q, (size_t)(e - q));
            len += (size_t)(e - q);
        }
        q = e + 1;
    }
    out[len] = '\0';
    req->query.p = out;
    req->query.len = len;
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
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~' ||
                  ch == '%'))
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

void pt__request_id(pt_worker_t *w, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t n = ++w->rid_counter;
    uint64_t a = splitmix64(w->rid_seed[0] ^ n), b = splitmix64(w->rid_seed[1] + n);
    int i;
    for (i = 0; i < 16; i++) {
        out[i] = hex[(a >> (60 - 4 * i)) & 15];
        out[16 + i] = hex[(b >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
}

void pt__req_id_generate(pt_worker_t *w, pt_req_t *req)
{
    pt__request_id(w, req->request_id);
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
        req_set_error(req, 505, "http-version-not-supported",
                      "Only HTTP/1.0 and HTTP/1.1 are served.");
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
        req_set_error(req, 400, "bad-request",
                      "Content-Length and Transfer-Encoding together are refused.");
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
            req_set_error(req, 417, "expectation-failed",
                          "Only \"Expect: 100-continue\" is supported.");
            return -1;
        }
        req->expect_continue = req->http_minor == 1;
    }
    if (req->content_length > 0 && (uint64_t)req->content_length > c->limits.max_body_size) {
        req_set_error(req, 413, "payload-too-large",
                      "The request body exceeds the configured maximum size.");
        return -1;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    int has_body;

    /* Upgrade (RFC 9110 §7.8) is ignored: the request is answered as plain
     * HTTP and the connection stays HTTP/1.1, so llhttp must not stop
     * parsing after it. */
    p->upgrade = 0;
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    req->method = llhttp_method_name((llhttp_method_t)p->method);
    req->method_len = strlen(req->method);
    req->is_head = p->method == HTTP_HEAD;
    if (head_check(c, req) != 0) {
        if (req->request_id_len == 0)
            pt__req_id_generate(c->worker, req);
        return -1;
    }
    if (req->request_id_len == 0)
        pt__req_id_generate(c->worker, req);
    /* keepalive_timeout 0 disables keep-alive: say so with Connection: close */
    req->keepalive = llhttp_should_keep_alive(p) != 0 && c->limits.keepalive_timeout_ms > 0;
    has_body = req->chunked || req->content_length > 0;
    if (has_body)
        pt__conn_timer(c, TIMER_BODY, c->limits.body_timeout_ms);
    else
        pt__conn_timer(c, TIMER_NONE, 0);

    req->dispatched = 1;
    c->waiting = 1;
    c->worker->handler(req);
    if (c->req != req) /* the connection failed while handling */
        return -1;
    if (has_body && !req->suspended) { /* else decided by pt_http_resume */
        if (req->resp_state == PT_RESP_NONE && req->expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            pt__conn_send(c, cont, sizeof(cont) - 1);
            pt__conn_flush(c);
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
    if (req->body_bytes > c->limits.max_body_size ||
        (req->max_body > 0 && req->body_bytes > req->max_body)) {
        req_set_error(req, 413, "payload-too-large",
                      "The request body exceeds the configured maximum size.");
        return -1;
    }
    if (req->suspended) {
        /* held until the handling goes on (pt_http_resume) */
        if (pt_arena_append(&c->arena, &req->held, &req->held_len, at, len) != PT_OK) {
            req_set_error(req, 503, "service-unavailable", "Out of memory.");
            return -1;
        }
        if (req->held_len >= PT_HTTP_HELD_MAX && !req->hold_input)
            req->hold_input = req->held_hold = 1;
        return 0;
    }
    /* Dispatch kinds that consume the body register on_body; otherwise
     * (static responses, errors answered early) it is discarded. */
    if (req->on_body != NULL)
        req->on_body(req, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    pt_conn_t *c = p->data;
    pt_req_t *req = c->req;
    req->complete = 1;
    pt__conn_timer(c, TIMER_NONE, 0);
    if (req->on_complete != NULL)
        req->on_complete(req); /* also when a response began early (a proxy streaming back) */
    return HPE_PAUSED;
}

/* Immutable and shared by every connection of every worker (no lazy
 * initialisation: workers start concurrently). */
const llhttp_settings_t pt__http_parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
