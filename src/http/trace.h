/*
 * trace.h - W3C Trace Context (https://www.w3.org/TR/trace-context/): the
 * `traceparent` a request came with, kept, or a new trace started; the
 * node's own span id goes upstream as the parent of the next hop and into
 * the access log.
 */
#ifndef PT_HTTP_TRACE_H
#define PT_HTTP_TRACE_H

#include <stddef.h>

#include "http/http-t.h"

/* "00-<32 hex>-<16 hex>-<2 hex>" (version 00, or a later version's first
 * 55 characters followed by '-' or the end): 1 with the trace id, the
 * parent id and the flags copied out (lower-case), 0 when invalid (all-zero
 * ids, upper-case hex, version ff, wrong lengths). */
int pt_traceparent_parse(const char *v, size_t len, char trace_id[33], char parent_id[17],
                         char flags[3]);

/* Gives the request its trace (on the worker's loop). */
void pt_http_trace(pt_req_t *req);

#endif
