/*
 * response.c - responses: reason phrases, connection output buffers (TLS
 * encryption included), status line and headers, streaming bodies,
 * problem+json errors, and the access log line written when a request ends.
 */
#include "http/http.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/json.h"
#include "core/log.h"
#include "event/worker-t.h"
#include "event/worker.h"
#include "gateway/snapshot-t.h"
#include "http/conn-i.h"

/* Plain copies into space reserved beforehand (response heads, log lines). */
#define PUT(p, s, n)      (memcpy((p), (s), (n)), (p) += (n))
#define PUT_LIT(p, lit)   PUT(p, lit, sizeof(lit) - 1)
#define PUT_JSON(p, s, n) ((p) += pt_json_escape((p), (s), (n)))

/* ------------------------------------------------------------------ reasons */

const char *pt_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    case 511:
        return "Network Authentication Required";
    default:
        return "Unknown";
    }
}

/* ------------------------------------------------------------------ output buffers */

/* Output buffers of the standard size come from a per-worker free list so
 * that a steady stream of responses allocates nothing. */
int pt__conn_out_reserve(pt_conn_t *c, pt_buf_t *b, size_t extra)
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

void pt__conn_out_release(pt_conn_t *c, pt_buf_t *b)
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
int pt__conn_tls_drain(pt_conn_t *c)
{
    size_t n;
    int r;
    if (c->wbio == NULL) /* released with the connection */
        return PT_EIO;
    while ((n = BIO_ctrl_pending(c->wbio)) > 0) {
        if (pt__conn_out_reserve(c, &c->out, n) != PT_OK)
            return PT_ENOMEM;
        r = BIO_read(c->wbio, c->out.data + c->out.len, (int)PT_MIN(n, (size_t)INT32_MAX));
        if (r <= 0)
            break;
        c->out.len += (size_t)r;
    }
    return PT_OK;
}

/* Sends plaintext bytes (encrypting them on TLS connections). */
int pt__conn_send(pt_conn_t *c, const void *data, size_t len)
{
    if (c->closing && !c->lingering)
        return PT_EIO;
    if (c->ssl == NULL) {
        if (pt__conn_out_reserve(c, &c->out, len) != PT_OK)
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
    return pt__conn_tls_drain(c);
}

/* Where a response is formatted: straight into the connection's output, or
 * (TLS) into the worker's scratch buffer, encrypted in one go by out_end so
 * that a small response is one TLS record. */
typedef struct out_s {
    pt_conn_t *c;
    pt_buf_t *b;
    size_t start; /* b->len when the response began */
    int err;
} out_t;

static void out_begin(out_t *o, pt_conn_t *c)
{
    o->c = c;
    o->err = 0;
    if (c->ssl == NULL) {
        o->b = &c->out;
    } else {
        o->b = &c->worker->scratch;
        o->b->len = 0;
    }
    o->start = o->b->len;
}

static void out_add(out_t *o, const void *p, size_t n)
{
    if (o->err)
        return;
    if (o->b == &o->c->out) {
        if (pt__conn_out_reserve(o->c, o->b, n) != PT_OK) {
            o->err = 1;
            return;
        }
        memcpy(o->b->data + o->b->len, p, n);
        o->b->len += n;
    } else if (pt_buf_append(o->b, p, n) != PT_OK) {
        o->err = 1;
    }
}

static int out_end(out_t *o)
{
    int rc = o->err ? PT_ENOMEM : PT_OK;
    pt_buf_t *scratch = &o->c->worker->scratch;
    if (o->b == scratch) {
        if (rc == PT_OK)
            rc = pt__conn_send(o->c, scratch->data, scratch->len);
        scratch->len = 0;
        if (scratch->cap > 65536)
            pt_buf_free(scratch); /* do not keep a large body's buffer */
    }
    return rc;
}

/* ------------------------------------------------------------------ responses */

/* Reserves n bytes at the end of the output and returns where to write
 * them (commit with o->b->len += written), or NULL (o->err set). */
static char *out_space(out_t *o, size_t n)
{
    int rc;
    if (o->err)
        return NULL;
    if (o->b == &o->c->out)
        rc = pt__conn_out_reserve(o->c, o->b, n);
    else
        rc = pt_buf_reserve(o->b, n);
    if (rc != PT_OK) {
        o->err = 1;
        return NULL;
    }
    return o->b->data + o->b->len;
}

/* Writes the status line and headers. The size is computed first so the
 * head is written with one reservation and plain copies (this runs once per
 * request). */
int pt_http_resp_add(pt_req_t *req, const pt_header_kv_t *h, size_t n)
{
    pt_header_kv_t *all = pt_arena_alloc(&req->conn->arena, sizeof(*all) * (req->nresp_extra + n));
    if (all == NULL)
        return PT_ENOMEM;
    if (req->nresp_extra > 0)
        memcpy(all, req->resp_extra, sizeof(*all) * req->nresp_extra);
    memcpy(all + req->nresp_extra, h, sizeof(*h) * n);
    req->resp_extra = all;
    req->nresp_extra += (unsigned)n;
    return PT_OK;
}

/* 1 when the handler's header name gives way to the policies': a CORS
 * policy owns every Access-Control-* header, and a policy's header of that
 * family replaces the handler's of the same name. */
static int replaced(const pt_req_t *req, const char *name)
{
    unsigned i;
    if (strncasecmp(name, "access-control-", 15) != 0)
        return 0;
    if (req->cors_owned)
        return 1;
    for (i = 0; i < req->nresp_extra; i++)
        if (strcasecmp(name, req->resp_extra[i].name) == 0)
            return 1;
    return 0;
}

static void resp_head(pt_req_t *req, out_t *o, int status, const pt_header_kv_t *hdrs, size_t nh,
                      const char *ctype, int64_t clen)
{
    pt_conn_t *c = req->conn;
    pt_worker_t *w = c->worker;
    const char *reason = pt_http_reason(status);
    size_t reason_len = strlen(reason), ctype_len = 0, need, i;
    int has_content = status >= 200 && status != 204 && status != 304;
    char *p, *start;

    if (status < 100 || status > 999)
        status = 500;
    if (!req->keepalive || w->draining || c->close_after)
        c->close_after = 1;
    if (has_content && clen < 0 && req->http_minor == 0)
        c->close_after = 1; /* HTTP/1.0 without a length: the body ends at close */
    if (ctype != NULL && has_content)
        ctype_len = strlen(ctype);
    need = 14 + reason_len + 8 + w->date_len + 33 + req->request_id_len + 2 + 16 + ctype_len + 40 +
           28 + 24 + 2;
    for (i = 0; i < nh; i++)
        need += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 4;
    for (i = 0; i < req->nresp_extra; i++)
        need += strlen(req->resp_extra[i].name) + strlen(req->resp_extra[i].value) + 4;
    if ((start = p = out_space(o, need)) == NULL)
        return;
    PUT_LIT(p, "HTTP/1.1 ");
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    PUT(p, reason, reason_len);
    PUT_LIT(p, "\r\nDate: ");
    PUT(p, w->date, w->date_len);
    PUT_LIT(p, "\r\nServer: portico\r\nX-Request-Id: ");
    PUT(p, req->request_id, req->request_id_len);
    PUT_LIT(p, "\r\n");
    /* HEAD gets the headers of GET, Content-Type included */
    if (ctype_len > 0) {
        PUT_LIT(p, "Content-Type: ");
        PUT(p, ctype, ctype_len);
        PUT_LIT(p, "\r\n");
    }
    if (has_content) {
        if (clen >= 0) {
            PUT_LIT(p, "Content-Length: ");
            p += pt_u64_to_str((uint64_t)clen, p);
            PUT_LIT(p, "\r\n");
        } else if (req->http_minor >= 1) {
            PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
            req->resp_chunked = 1;
        }
    }
    if (c->close_after)
        PUT_LIT(p, "Connection: close\r\n");
    else if (req->http_minor == 0)
        PUT_LIT(p, "Connection: keep-alive\r\n");
    for (i = 0; i < nh; i++) {
        if ((req->nresp_extra > 0 || req->cors_owned) && replaced(req, hdrs[i].name))
            continue;
        PUT(p, hdrs[i].name, strlen(hdrs[i].name));
        PUT_LIT(p, ": ");
        PUT(p, hdrs[i].value, strlen(hdrs[i].value));
        PUT_LIT(p, "\r\n");
    }
    for (i = 0; i < req->nresp_extra; i++) {
        PUT(p, req->resp_extra[i].name, strlen(req->resp_extra[i].name));
        PUT_LIT(p, ": ");
        PUT(p, req->resp_extra[i].value, strlen(req->resp_extra[i].value));
        PUT_LIT(p, "\r\n");
    }
    PUT_LIT(p, "\r\n");
    o->b->len += (size_t)(p - start);
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
    if (req->complete)
        pt__conn_finish_request(c);
    /* writes, then parses input held back meanwhile or resumes reading */
    pt__conn_flush(c);
}

void pt_http_respond(pt_req_t *req, int status, const pt_header_kv_t *hdrs, size_t nh,
                     const char *ctype, const void *body, size_t len)
{
    pt_conn_t *c = req->conn;
    out_t o;
    int allowed = body_allowed(req, status);

    if (req->resp_state != PT_RESP_NONE)
        return;
    req->status = status;
    out_begin(&o, c);
    resp_head(req, &o, status, hdrs, nh, ctype, (int64_t)len);
    if (allowed && len > 0)
        out_add(&o, body, len);
    req->bytes_out += o.b->len - o.start;
    if (out_end(&o) != PT_OK)
        c->close_after = 1;
    resp_done(req);
}

void pt_http_respond_start(pt_req_t *req, int status, const pt_header_kv_t *hdrs, size_t nh,
                           const char *ctype, int64_t content_length)
{
    pt_conn_t *c = req->conn;
    out_t o;

    if (req->resp_state != PT_RESP_NONE)
        return;
    req->status = status;
    out_begin(&o, c);
    resp_head(req, &o, status, hdrs, nh, ctype, content_length);
    req->bytes_out += o.b->len - o.start;
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
        pt__conn_send(c, hex, (size_t)n);
        pt__conn_send(c, data, len);
        pt__conn_send(c, "\r\n", 2);
        req->bytes_out += (uint64_t)n + len + 2;
    } else {
        pt__conn_send(c, data, len);
        req->bytes_out += len;
    }
    if (!c->in_input)
        pt__conn_flush(c);
}

void pt_http_respond_end(pt_req_t *req)
{
    if (req->resp_state != PT_RESP_HEAD)
        return;
    if (req->resp_chunked) {
        pt__conn_send(req->conn, "0\r\n\r\n", 5);
        req->bytes_out += 5;
    }
    resp_done(req);
}

typedef enum problem_fmt_e { FMT_JSON = 0, FMT_XML, FMT_SOAP11, FMT_SOAP12 } problem_fmt_t;

/* The media type of a header value (before ';', spaces trimmed) equals t? */
static int media_type_is(const char *v, size_t len, const char *t)
{
    size_t e = 0;
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (e < len && v[e] != ';' && v[e] != ',' && v[e] != ' ' && v[e] != '\t')
        e++;
    return pt_str_ieq(v, e, t);
}

/* The q of one Accept element "type/sub;q=0.5" (1 when absent), 0..1000. */
static unsigned accept_q(const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && v[i] != ';')
            i++;
        if (i >= len)
            break;
        i++;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i + 2 <= len && (v[i] == 'q' || v[i] == 'Q') && v[i + 1] == '=') {
            unsigned q = 0, scale = 1000;
            i += 2;
            if (i < len && v[i] == '1')
                return 1000;
            if (i < len && v[i] == '0')
                i++;
            if (i < len && v[i] == '.')
                for (i++; i < len && v[i] >= '0' && v[i] <= '9' && scale > 1; i++) {
                    scale /= 10;
                    q += (unsigned)(v[i] - '0') * scale;
                }
            return q;
        }
    }
    return 1000;
}

/* How an error is told to this client: a SOAP fault to a SOAP request
 * (SOAP 1.2 by its media type, 1.1 by text/xml with SOAPAction); else
 * problem+xml (RFC 7807 appendix) when Accept prefers XML to JSON; else
 * problem+json. Wildcards in Accept choose nothing (JSON stays). */
static problem_fmt_t problem_format(const pt_req_t *req)
{
    const pt_str_t *ct = pt_http_header(req, "content-type");
    if (ct != NULL) {
        if (media_type_is(ct->p, ct->len, "application/soap+xml"))
            return FMT_SOAP12;
        if (media_type_is(ct->p, ct->len, "text/xml") && pt_http_header(req, "soapaction") != NULL)
            return FMT_SOAP11;
    }
    return pt_http_prefers_xml(req) ? FMT_XML : FMT_JSON;
}

int pt_http_prefers_xml(const pt_req_t *req)
{
    const pt_str_t *acc = pt_http_header(req, "accept");
    unsigned qjson = 0, qxml = 0;
    size_t i = 0;
    if (acc == NULL)
        return 0;
    while (i < acc->len) {
        size_t s = i, e;
        unsigned q;
        while (i < acc->len && acc->p[i] != ',')
            i++;
        e = i++;
        q = accept_q(acc->p + s, e - s);
        if (media_type_is(acc->p + s, e - s, "application/json") ||
            media_type_is(acc->p + s, e - s, "application/problem+json"))
            qjson = q > qjson ? q : qjson;
        else if (media_type_is(acc->p + s, e - s, "application/xml") ||
                 media_type_is(acc->p + s, e - s, "application/problem+xml") ||
                 media_type_is(acc->p + s, e - s, "text/xml"))
            qxml = q > qxml ? q : qxml;
    }
    return qxml > qjson;
}

/* <problem xmlns="urn:ietf:rfc:7807">...</problem> (RFC 7807 appendix A). */
static void problem_xml(pt_buf_t *b, const pt_req_t *req, int status, const char *type,
                        const char *detail)
{
    pt_buf_append_str(b, "<problem xmlns=\"urn:ietf:rfc:7807\"><type>urn:portico:problem:");
    pt_buf_append_xml_str(b, type, strlen(type));
    pt_buf_append_str(b, "</type><title>");
    pt_buf_append_str(b, pt_http_reason(status));
    pt_buf_append_str(b, "</title><status>");
    pt_buf_append_u64(b, (uint64_t)status);
    pt_buf_append_str(b, "</status>");
    if (detail != NULL) {
        pt_buf_append_str(b, "<detail>");
        pt_buf_append_xml_str(b, detail, strlen(detail));
        pt_buf_append_str(b, "</detail>");
    }
    if (req->path.len > 0) {
        pt_buf_append_str(b, "<instance>");
        pt_buf_append_xml_str(b, req->path.p, req->path.len);
        pt_buf_append_str(b, "</instance>");
    }
    pt_buf_append_str(b, "<request_id>");
    pt_buf_append(b, req->request_id, req->request_id_len);
    pt_buf_append_str(b, "</request_id></problem>");
}

/* A SOAP 1.1 or 1.2 envelope with a fault: Server/Receiver for 5xx,
 * Client/Sender otherwise; the problem document is the fault's detail. */
static void problem_soap(pt_buf_t *b, const pt_req_t *req, int soap12, int status, const char *type,
                         const char *detail)
{
    const char *text = detail != NULL ? detail : pt_http_reason(status);
    pt_buf_append_str(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    if (soap12) {
        pt_buf_append_str(b,
                          "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\">"
                          "<soap:Body><soap:Fault><soap:Code><soap:Value>");
        pt_buf_append_str(b, status >= 500 ? "soap:Receiver" : "soap:Sender");
        pt_buf_append_str(b, "</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang=\"en\">");
        pt_buf_append_xml_str(b, text, strlen(text));
        pt_buf_append_str(b, "</soap:Text></soap:Reason><soap:Detail>");
        problem_xml(b, req, status, type, detail);
        pt_buf_append_str(b, "</soap:Detail></soap:Fault></soap:Body></soap:Envelope>");
    } else {
        pt_buf_append_str(b,
                          "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                          "<soap:Body><soap:Fault><faultcode>");
        pt_buf_append_str(b, status >= 500 ? "soap:Server" : "soap:Client");
        /* no xml:lang: the SOAP 1.1 envelope schema types faultstring as
         * a plain xs:string, and schema-validating clients refuse it */
        pt_buf_append_str(b, "</faultcode><faultstring>");
        pt_buf_append_xml_str(b, text, strlen(text));
        pt_buf_append_str(b, "</faultstring><detail>");
        problem_xml(b, req, status, type, detail);
        pt_buf_append_str(b, "</detail></soap:Fault></soap:Body></soap:Envelope>");
    }
}

void pt_http_problem(pt_req_t *req, int status, const char *type, const char *detail,
                     const pt_header_kv_t *hdrs, size_t nh)
{
    pt_http_problem_ext(req, status, type, detail, hdrs, nh, NULL, NULL);
}

/* The HTTP status of a fault. From a SOAP operation: SOAP 1.1 faults are
 * 500 (WS-I Basic Profile R1126), SOAP 1.2 Sender faults 400 and Receiver
 * faults 500 (SOAP 1.2 part 2, 7.5.2); the status meant is in the detail.
 * Refusals at the HTTP layer a client acts on (authenticate, method, size,
 * media type, slow down), and the gateway's own answers before any SOAP
 * endpoint (no route: 404), keep their 4xx status. */
static int soap_fault_status(const pt_req_t *req, int soap12, int status)
{
    if (!req->soap_endpoint)
        return status >= 500 ? 500 : status;
    switch (status) {
    case 401:
    case 403:
    case 405:
    case 413:
    case 415:
    case 429:
        return status;
    default:
        return soap12 && status < 500 ? 400 : 500;
    }
}

void pt_http_problem_ext(pt_req_t *req, int status, const char *type, const char *detail,
                         const pt_header_kv_t *hdrs, size_t nh, const char *ext_name,
                         const struct pt_json_s *ext)
{
    problem_fmt_t fmt = problem_format(req);
    const char *ctype = "application/problem+json";
    pt_buf_t b;
    pt_buf_init(&b, 0);
    switch (fmt) {
    case FMT_SOAP11:
    case FMT_SOAP12:
        problem_soap(&b, req, fmt == FMT_SOAP12, status, type, detail);
        ctype =
            fmt == FMT_SOAP12 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8";
        status = soap_fault_status(req, fmt == FMT_SOAP12, status);
        break;
    case FMT_XML:
        pt_buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        problem_xml(&b, req, status, type, detail);
        ctype = "application/problem+xml";
        break;
    case FMT_JSON:
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
        pt_buf_append_char(&b, '"');
        if (ext_name != NULL && ext != NULL) {
            pt_buf_append_str(&b, ",\"");
            pt_buf_append_str(&b, ext_name);
            pt_buf_append_str(&b, "\":");
            pt_json_write(&b, ext);
        }
        pt_buf_append_char(&b, '}');
        break;
    }
    if (b.data == NULL) {
        pt_http_respond(req, status, hdrs, nh, NULL, NULL, 0);
    } else {
        pt_http_respond(req, status, hdrs, nh, ctype, b.data, b.len);
    }
    pt_buf_free(&b);
}

const char *pt_http_client_subject(const pt_req_t *req)
{
    return req->conn->tls_subject;
}

const unsigned char *pt_http_client_fingerprint(const pt_req_t *req)
{
    return req->conn->tls_subject != NULL ? req->conn->tls_fp : NULL;
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

/* Appends the request's line to the worker's access log buffer. The line is
 * sized first and written with plain copies; a line that cannot be had in
 * memory is dropped whole, never written in part. */
void pt__conn_access_log(pt_conn_t *c, pt_req_t *req, uint64_t now_ns)
{
    pt_worker_t *w = c->worker;
    pt_buf_t *b = pt_access_log_buf(&w->alog);
    const char *api = req->match.api ? req->match.api->name : NULL;
    const char *route = req->match.route ? req->match.route->name : NULL;
    size_t api_len = api ? strlen(api) : 0, route_len = route ? strlen(route) : 0;
    size_t subj_len = c->tls_subject ? strlen(c->tls_subject) : 0, peer_len = strlen(c->peer);
    uint64_t wall_ns, dur_us, ms;
    char *p;

    if (b == NULL)
        return;
    dur_us = (now_ns - req->start_ns) / 1000;
    wall_ns = (uint64_t)((int64_t)now_ns + w->wall_offset_ns);
    if (wall_ns / 1000000000u != w->log_sec) {
        time_t sec = (time_t)(wall_ns / 1000000000u);
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(w->log_time, sizeof(w->log_time), "%Y-%m-%dT%H:%M:%S", &tm);
        w->log_sec = wall_ns / 1000000000u;
    }
    if (pt_buf_reserve(b, 600 + 6 * 64 + req->request_id_len + peer_len + req->method_len +
                              6 * (req->path.len + api_len + route_len + subj_len)) != PT_OK)
        return;
    p = b->data + b->len;
    PUT_LIT(p, "{\"time\":\"");
    PUT(p, w->log_time, strlen(w->log_time));
    ms = wall_ns / 1000000u % 1000;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    PUT_LIT(p, "Z\",\"request_id\":\"");
    PUT(p, req->request_id, req->request_id_len);
    PUT_LIT(p, "\",\"client\":\"");
    PUT(p, c->peer, peer_len);
    PUT_LIT(p, "\",\"method\":\"");
    if (req->method != NULL)
        PUT(p, req->method, req->method_len);
    PUT_LIT(p, "\",\"path\":\"");
    if (req->path.p != NULL)
        PUT_JSON(p, req->path.p, req->path.len);
    PUT_LIT(p, "\",\"status\":");
    p += pt_u64_to_str((uint64_t)req->status, p);
    PUT_LIT(p, ",\"bytes_in\":");
    p += pt_u64_to_str(req->bytes_in, p);
    PUT_LIT(p, ",\"bytes_out\":");
    p += pt_u64_to_str(req->bytes_out, p);
    PUT_LIT(p, ",\"duration_us\":");
    p += pt_u64_to_str(dur_us, p);
    if (api != NULL) {
        PUT_LIT(p, ",\"api\":\"");
        PUT_JSON(p, api, api_len);
        *p++ = '"';
    }
    if (route != NULL) {
        PUT_LIT(p, ",\"route\":\"");
        PUT_JSON(p, route, route_len);
        *p++ = '"';
    }
    if (req->upstream != NULL) {
        PUT_LIT(p, ",\"upstream\":\"");
        PUT(p, req->upstream, strnlen(req->upstream, 64));
        PUT_LIT(p, "\",\"upstream_status\":");
        p += pt_u64_to_str(req->upstream_status, p);
        PUT_LIT(p, ",\"upstream_connect_us\":");
        p += pt_u64_to_str(req->upstream_connect_us, p);
        PUT_LIT(p, ",\"upstream_ttfb_us\":");
        p += pt_u64_to_str(req->upstream_ttfb_us, p);
        PUT_LIT(p, ",\"upstream_retries\":");
        p += pt_u64_to_str(req->upstream_retries, p);
    }
    if (req->user != NULL) {
        PUT_LIT(p, ",\"user\":\"");
        PUT_JSON(p, req->user->name, strnlen(req->user->name, 64));
        *p++ = '"';
    }
    if (req->traced) {
        PUT_LIT(p, ",\"trace_id\":\"");
        PUT(p, req->trace_id, 32);
        PUT_LIT(p, "\",\"span_id\":\"");
        PUT(p, req->span_id, 16);
        *p++ = '"';
        if (req->parent_span_id[0] != '\0') {
            PUT_LIT(p, ",\"parent_span_id\":\"");
            PUT(p, req->parent_span_id, 16);
            *p++ = '"';
        }
    }
    if (c->tls_subject != NULL) {
        PUT_LIT(p, ",\"tls_client\":\"");
        PUT_JSON(p, c->tls_subject, subj_len);
        *p++ = '"';
    }
    PUT_LIT(p, "}\n");
    b->len = (size_t)(p - b->data);
    pt_access_log_commit(&w->alog, 0);
}
