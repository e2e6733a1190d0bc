/*
 * http.h - the HTTP/1.1 server side: accepting connections, parsing requests
 * (llhttp), writing responses.
 *
 * Request lifecycle: the worker's handler (the gateway) is called once the
 * request head has been parsed and checked; it may answer at once
 * (pt_http_respond) or register body hooks and answer later. A request ends
 * when its message has been read completely and its response has been
 * completely queued; only then is the next pipelined request parsed, so
 * responses leave in request order.
 */
#ifndef PT_HTTP_H
#define PT_HTTP_H

#include "http/http-t.h"

typedef struct ssl_ctx_st SSL_CTX;

/* Starts accepting on a listener whose tcp handle is initialised and bound
 * (called by the worker). Returns 0 or a negative libuv error. */
int pt_http_listen(pt_listener_rt_t *l, int backlog);

/* Shutdown: closes idle connections and makes the others close after their
 * current response. */
void pt_http_drain(pt_worker_t *w);
/* Closes every connection of the worker now. */
void pt_http_close_all(pt_worker_t *w);

/* --- Responses -------------------------------------------------------- */

/* Queues a complete response: status line, Date, Server, X-Request-Id,
 * Content-Type (if ctype != NULL), Content-Length, Connection when needed,
 * then hdrs[0..nh), then the body (omitted for HEAD, 1xx, 204 and 304).
 * Must be called at most once per request, from the worker's thread. */
void pt_http_respond(pt_req_t *req, int status, const pt_header_kv_t *hdrs, size_t nh,
                     const char *ctype, const void *body, size_t len);

/* Streaming: head with content_length >= 0, or -1 for chunked encoding
 * (HTTP/1.1 clients) / read-until-close (HTTP/1.0 clients). */
void pt_http_respond_start(pt_req_t *req, int status, const pt_header_kv_t *hdrs, size_t nh,
                           const char *ctype, int64_t content_length);
void pt_http_respond_body(pt_req_t *req, const void *data, size_t len);
void pt_http_respond_end(pt_req_t *req);

/* Answers with an application/problem+json body (RFC 9457), the one place
 * where error bodies are built:
 *   {"type":"urn:portico:problem:<type>","title":"<reason>","status":N,
 *    "detail":"<detail>","instance":"<path>","request_id":"<id>"}
 * `type` is a stable slug ("not-found", "payload-too-large", ...); detail
 * must not contain secrets (it is shown to the client). extra headers may be
 * given (e.g. Allow for 405). */
void pt_http_problem(pt_req_t *req, int status, const char *type, const char *detail,
                     const pt_header_kv_t *hdrs, size_t nh);

/* Returns the reason phrase of a status code ("Not Found"), or "Unknown". */
/* pt_http_problem with one extension member: in problem+json, "ext_name":
 * ext (a JSON value, e.g. the list of schema violations); the XML forms
 * leave it out. */
struct pt_json_s;
void pt_http_problem_ext(pt_req_t *req, int status, const char *type, const char *detail,
                         const pt_header_kv_t *hdrs, size_t nh, const char *ext_name,
                         const struct pt_json_s *ext);

const char *pt_http_reason(int status);

/* Does the request's Accept prefer XML (application/xml, text/xml,
 * application/problem+xml) to JSON, by q? Wildcards choose nothing. */
int pt_http_prefers_xml(const pt_req_t *req);

/* Returns the first header with this name (compared case-insensitively
 * against the lower-case `lname`), or NULL. */
const pt_str_t *pt_http_header(const pt_req_t *req, const char *lname);

/* The verified client certificate subject (RFC 2253) of the request's
 * connection, or NULL when none was presented/verified. */
const char *pt_http_client_subject(const pt_req_t *req);
/* The SHA-256 fingerprint (32 bytes) of that certificate, or NULL. */
const unsigned char *pt_http_client_fingerprint(const pt_req_t *req);

/* The request's arena (memory freed when the request ends). */
pt_arena_t *pt_http_req_arena(pt_req_t *req);

/* The listener index and remote address text of the request's connection. */
unsigned pt_http_listener_index(const pt_req_t *req);
const char *pt_http_peer(const pt_req_t *req);

/* --- For dispatch kinds that stream (proxy) ---------------------------- */

/* 1 when the response output queued for the client exceeds
 * limits.max_output_buffer: the producer should pause until on_drain. */
int pt_http_output_full(const pt_req_t *req);

/* Clears hold_input and resumes reading the client when nothing else
 * holds it back. */
void pt_http_input_resume(pt_req_t *req);

/* Removes every request header named lname (lower-case) / every query
 * parameter name (credentials consumed by the auth policy). */
void pt_http_header_remove(pt_req_t *req, const char *lname);
void pt_http_query_remove(pt_req_t *req, const char *name);

/* Adds n headers (names and values kept by the caller for the request's
 * life: arena or static) to whatever response the request gets. PT_OK or
 * PT_ENOMEM. */
int pt_http_resp_add(pt_req_t *req, const pt_header_kv_t *h, size_t n);

/* --- Suspending a request (a policy waiting for work off the loop) ----- */

/* Marks req as waiting: body bytes that arrive meanwhile are held in the
 * request's arena (reading stops past 64 KiB). Call from the handler; the
 * request then stays open until pt_http_resume. If the client leaves
 * meanwhile, the arena's cleanups run (req->aborted set): whoever suspends
 * registers one to learn it. */
void pt_http_suspend(pt_req_t *req);

/* Ends the suspension: runs cont(req) (the rest of the handling, which sets
 * the body hooks or answers), then replays the held body into the hooks
 * cont set (and on_complete when the message is complete). */
void pt_http_resume(pt_req_t *req, void (*cont)(pt_req_t *req));

/* Closes the client connection now (a response that cannot be completed).
 * The request's arena cleanups run, with req->aborted set, before this
 * returns: the caller must not touch request memory afterwards. */
void pt_http_abort(pt_req_t *req);

/* The client's address (sockaddr_in or sockaddr_in6; zeroed on a socketless
 * connection) and the listener the request arrived on (NULL without one). */
const struct sockaddr *pt_http_peer_addr(const pt_req_t *req);
const pt_listener_rt_t *pt_http_listener(const pt_req_t *req);

/* --- Testing ---------------------------------------------------------- */

/* Feeds bytes to a connection object that has no socket (fuzzing and unit
 * tests): parses, dispatches to the worker's handler against its snapshot,
 * and returns the number of response bytes produced; when out is not NULL
 * they are appended to it (the caller owns and frees out). The connection
 * is torn down before returning; a handler must answer synchronously. */
size_t pt_http_feed_detached(pt_worker_t *w, const char *data, size_t len, pt_buf_t *out);

#endif
