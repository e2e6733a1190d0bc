/*
 * http-t.h - types of the HTTP/1.1 server side: connections and requests.
 */
#ifndef PT_HTTP_T_H
#define PT_HTTP_T_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "config/config-t.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/common.h"
#include "gateway/router.h"

typedef struct pt_worker_s pt_worker_t;
typedef struct pt_wsnap_s pt_wsnap_t;
typedef struct pt_conn_s pt_conn_t;
typedef struct pt_req_s pt_req_t;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

#define PT_REQUEST_ID_MAX 64
#define PT_HTTP_HELD_MAX  65536 /* body bytes held while a request is suspended */

typedef struct pt_http_header_s {
    pt_str_t name;  /* as received */
    pt_str_t value; /* OWS trimmed */
} pt_http_header_t;

/* A listener as a worker sees it. */
typedef struct pt_listener_rt_s {
    uv_tcp_t tcp;
    pt_worker_t *worker;
    unsigned index; /* in config->listeners */
    int tls;        /* listener terminates TLS */
    uint16_t port;
    int fd; /* the SO_REUSEPORT socket handed over by the main thread */
} pt_listener_rt_t;

typedef enum pt_resp_state_e {
    PT_RESP_NONE = 0, /* nothing sent yet */
    PT_RESP_HEAD,     /* status and headers sent, body streaming */
    PT_RESP_DONE      /* complete */
} pt_resp_state_t;

struct pt_req_s {
    pt_conn_t *conn;
    pt_wsnap_t *snap;   /* the snapshot the request started on (one reference) */
    uint64_t start_ns;  /* uv_hrtime() at the first byte */
    const char *method; /* "GET": static string from llhttp */
    size_t method_len;
    char *url; /* raw request-target, NUL-terminated (arena) */
    size_t url_len;
    pt_str_t path;  /* origin-form path (into url) */
    pt_str_t query; /* after '?', without it; len 0 if none */
    pt_str_t host;  /* Host (or absolute-form authority) */
    uint8_t http_major, http_minor;
    pt_http_header_t *headers; /* arena */
    unsigned nheaders, headers_cap;
    char *hname, *hvalue; /* header being received (arena) */
    size_t hname_len, hvalue_len;
    size_t head_bytes;            /* request line + headers received */
    int64_t content_length;       /* -1: none */
    uint64_t max_body;            /* a policy's smaller body limit (body_limit); 0 = the node's */
    const struct pt_user_s *user; /* authenticated by the auth policy; NULL = anonymous */
    uint64_t body_bytes;          /* body bytes received */
    unsigned chunked : 1;
    unsigned expect_continue : 1;
    unsigned keepalive : 1;
    unsigned is_head : 1;
    unsigned complete : 1; /* whole request message received */
    unsigned dispatched : 1;
    unsigned soap_endpoint : 1; /* a SOAP operation call: its faults follow WS-I statuses */
    unsigned exec_loaded : 1;   /* an execution record was read back from the store for it */
    unsigned contract : 1;      /* a GET of the API's contract (OpenAPI, WSDL): authentication
                                   lets it through unless the API protects its contracts */
    int error_status;           /* set by a parser callback to refuse the request */
    const char *error_type;     /* problem type slug for error_status */
    const char *error_detail;
    char request_id[PT_REQUEST_ID_MAX + 1];
    uint8_t request_id_len;
    /* W3C trace context (http/trace.h), when `tracing.traceparent` is on */
    unsigned traced : 1;
    char trace_id[33];       /* the client's, or a new one */
    char span_id[17];        /* the node's own hop */
    char parent_span_id[17]; /* the client's span; "" when the trace starts here */
    char trace_flags[3];
    pt_route_match_t match;
    /* hooks set by the handler at dispatch time (called on the worker thread) */
    void (*on_body)(pt_req_t *req, const char *data, size_t len); /* each body span */
    void (*on_complete)(pt_req_t *req);                           /* message fully read */
    void (*on_drain)(pt_req_t *req); /* response output fell below the buffer limit */
    void *hook_data;
    unsigned hold_input : 1; /* the handler cannot take more body: stop reading the client */
    unsigned aborted : 1;    /* the client connection is gone (set before cleanups run) */
    unsigned suspended : 1;  /* handling waits for work off the loop (pt_http_suspend) */
    unsigned held_hold : 1;  /* hold_input was set because too much body is held */
    char *held;              /* body received while suspended (arena) */
    size_t held_len;
    /* the gateway's place in the policy chain, to go on after a suspension */
    const struct pt_policy_list_s *policy_chain;
    unsigned policy_next;
    void (*after_policies)(pt_req_t *req); /* what follows the chain; NULL: the dispatch */
    int route_result;
    /* set by the proxy, for the access log */
    const char *upstream;     /* target address "ip:port"; NULL when not proxied */
    uint16_t upstream_status; /* 0 when no response head came */
    uint8_t upstream_retries;
    uint32_t upstream_connect_us; /* 0 when a pooled connection was reused */
    uint32_t upstream_ttfb_us;    /* from the exchange's start to the response head */
    /* response */
    const pt_header_kv_t *resp_extra; /* added to the response head by policies (CORS,
                                         RateLimit-*); an Access-Control-* one replaces the
                                         handler's header of the same name */
    unsigned nresp_extra;
    unsigned cors_owned : 1; /* a CORS policy answers for this request: every
                                Access-Control-* header of the handler is dropped */
    pt_resp_state_t resp_state;
    int status;
    unsigned resp_chunked : 1;
    uint64_t bytes_out; /* response bytes (head + body) handed to the connection */
    uint64_t bytes_in;  /* request bytes (head + body) */
};

#endif
