/*
 * conn-i.h - the server connection object, internal to src/http.
 *
 * A connection embeds its socket, timer and parser; server.c owns its life
 * cycle and I/O, request.c parses requests into it, response.c writes
 * responses out of it.
 */
#ifndef PT_HTTP_CONN_I_H
#define PT_HTTP_CONN_I_H

#include <llhttp.h>
#include <netinet/in.h>
#include <uv.h>

#include "http/http-t.h"

typedef enum scan_state_e {
    SCAN_IDLE = 0, /* before the first byte of a message */
    SCAN_LINE,     /* inside a line of the head */
    SCAN_BOL,      /* at the beginning of a line */
    SCAN_BLANK_CR, /* CR at the beginning of a line: the head may end */
    SCAN_DONE      /* the head ended; body bytes are not scanned */
} scan_state_t;

typedef enum conn_timer_e {
    TIMER_NONE = 0,
    TIMER_HANDSHAKE, /* TLS handshake: header_timeout */
    TIMER_HEADER,    /* request head: header_timeout, from its first byte */
    TIMER_BODY,      /* gap between body reads: body_timeout */
    TIMER_IDLE,      /* keep-alive: keepalive_timeout */
    TIMER_LINGER     /* after the final response: discard input for a while */
} conn_timer_t;

#define CONN_LINGER_MS    2000
#define CONN_LINGER_MAX   (1024 * 1024)
#define CONN_PENDING_MAX  (256 * 1024) /* held-back input beyond this: 400 and close */
#define CONN_PENDING_SOFT (16 * 1024)  /* held-back input beyond this: stop reading */

struct pt_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    llhttp_t parser;
    pt_worker_t *worker;
    pt_listener_rt_t *listener;
    pt_conn_t *next, *prev;
    pt_arena_t arena;   /* the current request's memory */
    pt_req_t *req;      /* current request, or NULL between requests */
    pt_limits_t limits; /* copied from the snapshot of the last request: a connection
                         * outlives the snapshots it served requests on */
    pt_buf_t out;       /* queued output not yet handed to the kernel */
    pt_buf_t inflight;  /* output being written */
    char *pending;      /* unparsed input kept while a request is being answered */
    size_t pending_len;
    SSL *ssl;
    BIO *rbio, *wbio;
    char *tls_subject;        /* verified client certificate subject (heap) */
    unsigned char tls_fp[32]; /* its SHA-256 fingerprint (DER), when tls_subject is set */
    conn_timer_t timer_kind;
    uint64_t timer_deadline; /* loop time (ms) at which the current wait ends */
    uint64_t timer_armed;    /* loop time the libuv timer fires at; 0 = not armed */
    unsigned handles_open;   /* tcp + timer; freed when both are closed */
    unsigned reading : 1;
    unsigned writing : 1;
    unsigned waiting : 1;       /* a dispatched request has not been answered yet */
    unsigned out_full : 1;      /* reads paused: too much output queued */
    unsigned close_after : 1;   /* close once the output is flushed */
    unsigned closing : 1;       /* uv_close called or lingering */
    unsigned close_reason : 3;  /* pt_mclose_t, for the metrics (default: the client) */
    unsigned close_counted : 1; /* counted in the metrics */
    unsigned lingering : 1;
    unsigned handshake_done : 1;
    unsigned peer_eof : 1; /* the client half-closed: close once answered */
    unsigned noio : 1;     /* detached (fuzzing): no socket */
    unsigned in_input;     /* depth inside pt__conn_input (re-entrancy guard) */
    unsigned requests;
    uint64_t linger_bytes;
    scan_state_t scan; /* obs-fold scan of the current request head */
    char peer[INET6_ADDRSTRLEN + 8];
    struct sockaddr_storage peer_addr;
};

/* Shared between server.c (connections), request.c (parsing) and
 * response.c (responses); not part of the HTTP layer's interface. */
extern const llhttp_settings_t pt__http_parser_settings;

/* request.c */
pt_req_t *pt__req_new(pt_conn_t *c);
void pt__req_snap_release(pt_req_t *req);
void pt__req_id_generate(pt_worker_t *w, pt_req_t *req);
/* Writes a new 32-hex-digit request id and a NUL into out. */
void pt__request_id(pt_worker_t *w, char out[33]);

/* response.c */
int pt__conn_out_reserve(pt_conn_t *c, pt_buf_t *b, size_t extra);
void pt__conn_out_release(pt_conn_t *c, pt_buf_t *b);
int pt__conn_tls_drain(pt_conn_t *c);
int pt__conn_send(pt_conn_t *c, const void *data, size_t len);
void pt__conn_access_log(pt_conn_t *c, pt_req_t *req, uint64_t now_ns);

/* server.c */
void pt__conn_timer(pt_conn_t *c, conn_timer_t kind, uint64_t ms);
void pt__conn_flush(pt_conn_t *c);
void pt__conn_input(pt_conn_t *c, const char *data, size_t len);
void pt__conn_update_reading(pt_conn_t *c);
void pt__conn_finish_request(pt_conn_t *c);
void pt__conn_fail(pt_conn_t *c, int status, const char *type, const char *detail);
void pt__conn_close(pt_conn_t *c);

#endif
