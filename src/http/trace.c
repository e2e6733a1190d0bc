/*
 * trace.c - W3C Trace Context for requests (see trace.h).
 */
#include "http/trace.h"

#include <string.h>

#include "http/conn-i.h"
#include "http/http.h"

static int lhex(const char *p, size_t n)
{
    size_t i;
    int nonzero = 0;
    for (i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        nonzero |= c != '0';
    }
    return nonzero;
}

int pt_traceparent_parse(const char *v, size_t len, char trace_id[33], char parent_id[17],
                         char flags[3])
{
    /* version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55 */
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    if (len < 55 || lhex(v, 2) < 0 || (v[0] == 'f' && v[1] == 'f'))
        return 0;
    if (v[0] == '0' && v[1] == '0' ? len != 55 : (len > 55 && v[55] != '-'))
        return 0; /* version 00 is exactly 55; later ones may add fields */
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return 0;
    if (lhex(v + 3, 32) != 1 || lhex(v + 36, 16) != 1 || lhex(v + 53, 2) < 0)
        return 0;
    memcpy(trace_id, v + 3, 32);
    trace_id[32] = '\0';
    memcpy(parent_id, v + 36, 16);
    parent_id[16] = '\0';
    memcpy(flags, v + 53, 2);
    flags[2] = '\0';
    return 1;
}

void pt_http_trace(pt_req_t *req)
{
    pt_worker_t *w = req->conn->worker;
    const pt_http_header_t *found = NULL;
    char ids[33];
    unsigned i, n = 0;

    for (i = 0; i < req->nheaders; i++)
        if (req->headers[i].name.len == 11 &&
            pt_str_ieq(req->headers[i].name.p, 11, "traceparent")) {
            found = &req->headers[i];
            n++;
        }
    /* more than one is invalid (the spec): a new trace */
    if (n != 1 || !pt_traceparent_parse(found->value.p, found->value.len, req->trace_id,
                                        req->parent_span_id, req->trace_flags)) {
        pt__request_id(w, req->trace_id);
        req->parent_span_id[0] = '\0';
        memcpy(req->trace_flags, "01", 3);
    }
    pt__request_id(w, ids);
    memcpy(req->span_id, ids, 16);
    req->span_id[16] = '\0';
    req->traced = 1;
}
