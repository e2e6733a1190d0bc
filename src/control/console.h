/*
 * console.h - the console and dashboard in the browser (issue 9,
 * docs/observability.md): its files, its sessions, and the Server-Sent
 * Events stream of the live dashboard. All on the admin listener.
 */
#ifndef PT_CONTROL_CONSOLE_H
#define PT_CONTROL_CONSOLE_H

#include <stddef.h>

#include "http/http-t.h"

/* On the loop: answers /admin/ui/... (the embedded files) and sends /admin
 * and /admin/ there. 1 when it answered. */
int pt_console_static(pt_req_t *req);

/* Sessions (control pool threads). A session is made by logging in with an
 * admin token; its cookie is HttpOnly, SameSite=Strict, Secure on TLS. */
#define PT_SESSION_COOKIE "portico_session"

/* The value of cookie PT_SESSION_COOKIE in a Cookie header: 1 with its 64
 * characters copied out, 0 when absent or not 64 long. */
int pt_session_cookie_value(const char *cookie_header, char out[65]);

/* Creates a session for the token (id, name): its cookie value (64 hex)
 * and CSRF token (64 hex). 0, or -1 when the table is full of live ones. */
int pt_session_create(const char *token_id, const char *name, char cookie[65], char csrf[65]);

/* The session of a Cookie header: 1 with its name, token id and CSRF
 * token copied out; 0 when none or expired. */
int pt_session_find(const char *cookie_header, char name[64], char token_id[17], char csrf[65]);

/* Ends the session of a Cookie header. */
void pt_session_end(const char *cookie_header);

/* Ends every session made with this token (revoked). */
void pt_session_end_token(const char *token_id);

/* Constant-time: 1 when the header carries the session's CSRF token. */
int pt_session_csrf_ok(const char *csrf, const char *header);

/* On the loop, once the caller is authenticated: answers 200
 * text/event-stream and sends the dashboard's tick every second until the
 * client leaves or the node drains. */
void pt_console_stream(pt_req_t *req);

/* The worker's tick (every 500 ms): feeds its streams. */
struct pt_worker_s;
void pt_console_tick(struct pt_worker_s *w);

#endif
