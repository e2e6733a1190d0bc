/*
 * dispatch.h - the gateway's request handler: built-ins, routing, dispatch.
 */
#ifndef PT_DISPATCH_H
#define PT_DISPATCH_H

#include "core/buf.h"
#include "http/http-t.h"

/* Called by the HTTP layer once a request head is complete (worker thread).
 * Answers built-ins (/_portico/...), routes the request through the
 * snapshot's route table and dispatches it (static responses for now);
 * answers 404/405 as problem+json otherwise. */
void pt_gateway_handle(pt_req_t *req);

/* What follows the policy chain: the dispatch of a routed request (called
 * by pt_gateway_handle, or by pt_policy_next after a suspension). */
void pt_gateway_dispatch(pt_req_t *req);

/* Appends the origin ("https://api.example.com") the client reached the node
 * at: the listener's scheme and the Host, or X-Forwarded-Proto/-Host from a
 * trusted proxy. For absolute URLs in headers (Location). */
void pt_gateway_origin(pt_req_t *req, pt_buf_t *url);

#endif
