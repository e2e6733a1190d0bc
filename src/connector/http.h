/*
 * http.h - outbound HTTP calls of `http` steps (libcurl), on pool threads.
 *
 * Each pool thread keeps one libcurl easy handle, so keep-alive connections
 * (and TLS sessions) are reused across that thread's calls. Only http and
 * https, no redirects followed, TLS peers verified against the system
 * store, a total timeout and a response size cap.
 */
#ifndef PT_CONNECTOR_HTTP_H
#define PT_CONNECTOR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "config/config-t.h"
#include "core/arena.h"
#include "core/json.h"

typedef struct pt_http_call_s {
    const char *method;
    const char *url;
    pt_header_kv_t *headers;
    size_t nheaders;
    const pt_json_t *body; /* NULL: none; a string goes as is (text/plain unless a Content-Type
                              header says otherwise), anything else as JSON, or as XML when the
                              Content-Type header is an XML type */
    const char *xml_root;  /* the document element of an XML body; NULL = "request" */
    uint32_t timeout_ms;
    uint64_t max_response;
} pt_http_call_t;

/* Once, before any thread calls (curl_global_init). Returns 0 or -1. */
int pt_http_client_init(void);
void pt_http_client_cleanup(void);

/* Releases the calling thread's libcurl handle (a pool thread ending). */
void pt_http_thread_cleanup(void);

/* Makes the call. On PT_OK, *result is {"status": n, "headers": {lower-case
 * name: value}, "body": JSON when the response says it is JSON (and parses),
 * or XML (the tree of core/xml.h), else a string} in arena a; whatever the status (a 404 is a
 * result, for `when:` to look at). PT_AGAIN when it timed out, PT_ERROR otherwise, with err filled
 * (no header values, no body). */
int pt_http_call(const pt_http_call_t *call, pt_arena_t *a, pt_json_t **result, char *err,
                 size_t errlen);

#endif
