/*
 * dispatch.c - built-ins, routing and dispatch (see dispatch.h).
 */
#include "gateway/dispatch.h"
#include "http/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "event/worker-t.h"
#include "gateway/router.h"
#include "gateway/snapshot-t.h"
#include "http/http.h"
#include "core/buf.h"
#include "core/json.h"
#include "config/config.h"
#include "control/admin.h"
#include "control/control.h"
#include "process/engine.h"
#include "protocol/openapi.h"
#include "protocol/wsdl.h"
#include "process/persist.h"
#include "process/pool.h"
#include "process/records.h"
#include "policy/policy.h"
#include "proxy/proxy.h"

#define BUILTIN_PREFIX "/_portico/"

static const pt_header_kv_t no_store[] = {{"Cache-Control", "no-store"}};

static int is_get(const pt_req_t *req)
{
    return (req->method_len == 3 && memcmp(req->method, "GET", 3) == 0) || req->is_head;
}

/* ------------------------------------------------------------ executions */

static int api_cmp(const void *k, const void *e)
{
    return strcmp(k, ((const pt_api_def_t *)e)->name);
}

/* The caller, once the execution's API policies authenticated it: 1 when
 * it may see every execution (role "admin"). */
static int is_admin(const pt_req_t *req)
{
    size_t i;
    for (i = 0; req->user != NULL && i < req->user->nroles; i++)
        if (strcmp(req->user->roles[i], "admin") == 0)
            return 1;
    return 0;
}

/* Splits "Name: value\r\n" lines into kv pairs in the request's arena. */
static size_t header_pairs(pt_req_t *req, char *lines, size_t len, pt_header_kv_t *out, size_t max)
{
    size_t n = 0;
    char *p = lines, *end = lines + len;
    while (p < end && n < max) {
        char *eol = memchr(p, '\r', (size_t)(end - p)), *colon;
        if (eol == NULL)
            break;
        *eol = '\0';
        if ((colon = strchr(p, ':')) != NULL && colon[1] == ' ') {
            *colon = '\0';
            out[n].name = p;
            out[n++].value = colon + 2;
        }
        p = eol + 2;
    }
    (void)req;
    return n;
}

/* A statement the cancelled execution is blocked in is stopped through its
 * driver, on libuv's thread pool (a cancel is a network call). */
typedef struct interrupt_s {
    uv_work_t work;
    char id[33];
} interrupt_t;

static void interrupt_work(uv_work_t *w)
{
    interrupt_t *it = w->data;
    pt_exec_interrupt(it->id, 32);
}

static void interrupt_done(uv_work_t *w, int status)
{
    (void)status;
    free(w->data);
}

static void interrupt_later(pt_req_t *req, const char *id, size_t len)
{
    interrupt_t *it;
    if (len != 32 || (it = calloc(1, sizeof(*it))) == NULL)
        return;
    memcpy(it->id, id, 32);
    it->work.data = it;
    if (uv_queue_work(&req->snap->worker->loop, &it->work, interrupt_work, interrupt_done) != 0)
        free(it);
}

/* GET /_portico/executions/{id}[/result], DELETE /_portico/executions/{id},
 * once the caller went through the execution's API policies. */
static void executions_answer(pt_req_t *req)
{
    const char *id = req->path.p + sizeof(BUILTIN_PREFIX) - 1 + 11;
    size_t len = req->path.len - (sizeof(BUILTIN_PREFIX) - 1 + 11);
    const char *who = req->user != NULL ? req->user->name : NULL;
    int admin = is_admin(req), result = 0, rc, status = 0;
    static const pt_header_kv_t allow_rec[] = {{"Allow", "GET, HEAD, DELETE"}};
    static const pt_header_kv_t allow_res[] = {{"Allow", "GET, HEAD"}};
    pt_buf_t b, ctype, headers;

    if (len > 7 && memcmp(id + len - 7, "/result", 7) == 0) {
        len -= 7;
        result = 1;
    }
    pt_buf_init(&b, 0);
    pt_buf_init(&ctype, 0);
    pt_buf_init(&headers, 0);
    if (result && !is_get(req)) {
        pt_http_problem(req, 405, "method-not-allowed", "A result is read with GET.", allow_res, 1);
    } else if (result) {
        rc = pt_exec_result(id, len, who, admin, &status, &ctype, &headers, &b);
        if (rc == PT_OK) {
            pt_header_kv_t hdrs[34];
            size_t nh = 0;
            hdrs[nh++] = (pt_header_kv_t){"X-Execution-Id",
                                          pt_arena_strndup(pt_http_req_arena(req), id, len)};
            hdrs[nh++] = no_store[0];
            nh += header_pairs(req, headers.data, headers.len, hdrs + nh, 32);
            pt_http_respond(req, status, hdrs, nh, ctype.len > 1 ? ctype.data : NULL, b.data,
                            b.len);
        } else if (rc == PT_AGAIN) {
            /* the record (with its status) in the problem */
            pt_json_error_t jerr;
            pt_json_t *rec = pt_json_parse(pt_http_req_arena(req), b.data, b.len,
                                           &PT_JSON_LIMITS_DEFAULT, &jerr);
            pt_http_problem_ext(req, 404, "not-ready",
                                "The execution has not ended: no result yet.", no_store, 1,
                                "execution", rec);
        } else if (rc == PT_EEXPIRED) {
            pt_http_problem(req, 410, "gone", "The result was kept for its retention time only.",
                            NULL, 0);
        } else if (rc == PT_ENOENT) {
            pt_http_problem(req, 404, "not-found",
                            "No kept result with this id (unknown, another user's, or answered to "
                            "its client).",
                            NULL, 0);
        } else {
            pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        }
    } else if (req->method_len == 6 && memcmp(req->method, "DELETE", 6) == 0) {
        rc = pt_exec_cancel(id, len, who, admin, &b);
        if (rc == PT_OK) {
            interrupt_later(req, id, len);
            pt_http_respond(req, 202, no_store, 1, "application/json", b.data, b.len);
        } else if (rc == PT_EINVAL)
            pt_http_problem(req, 409, "conflict", "The execution has already ended.", NULL, 0);
        else
            pt_http_problem(req, 404, "not-found", "No execution with this id.", NULL, 0);
    } else if (!is_get(req)) {
        pt_http_problem(req, 405, "method-not-allowed",
                        "An execution is read with GET and cancelled with DELETE.", allow_rec, 1);
    } else {
        rc = pt_exec_json(id, len, who, admin, &b);
        if (rc == PT_OK)
            pt_http_respond(req, 200, no_store, 1, "application/json", b.data, b.len);
        else if (rc == PT_ENOENT)
            pt_http_problem(req, 404, "not-found",
                            "No execution record with this id (unknown, low_latency, another "
                            "user's, or too old).",
                            NULL, 0);
        else
            pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
    }
    pt_buf_free(&b);
    pt_buf_free(&ctype);
    pt_buf_free(&headers);
}

static void executions(pt_req_t *req, const pt_snapshot_t *s);

/* A record not in memory, read back from the store on the control pool. */
typedef struct load_job_s {
    pt_job_t job;
    pt_req_t *req; /* NULL once the client left */
    struct load_link_s *link;
    char id[33];
    size_t len;
} load_job_t;

typedef struct load_link_s {
    load_job_t *job;
} load_link_t;

static void load_cleanup(void *data)
{
    load_link_t *l = data;
    if (l->job != NULL)
        l->job->req = NULL;
}

static void load_run(pt_job_t *job)
{
    load_job_t *j = (load_job_t *)job;
    pt_persist_load(j->id, j->len);
}

static void load_done(pt_job_t *job, pt_job_status_t status)
{
    load_job_t *j = (load_job_t *)job;
    pt_req_t *req = j->req;
    (void)status;
    if (req != NULL) {
        j->link->job = NULL;
        req->hook_data = NULL;
        /* in memory now (or not in the store either): answered as usual */
        req->exec_loaded = 1; /* the second pass: no new load */
        executions(req, req->snap->snap);
    }
    free(j);
}

/* Starts reading id from the store: 1 when it will answer later. */
static int load_later(pt_req_t *req, const char *id, size_t len)
{
    load_job_t *j;
    load_link_t *l;
    if (!pt_persist_on() || pt_admin_pool == NULL || len != 32 || req->exec_loaded)
        return 0;
    if ((j = calloc(1, sizeof(*j))) == NULL ||
        (l = pt_arena_alloc(pt_http_req_arena(req), sizeof(*l))) == NULL ||
        pt_arena_cleanup_add(pt_http_req_arena(req), load_cleanup, l) != PT_OK) {
        free(j);
        return 0;
    }
    memcpy(j->id, id, 32);
    j->len = 32;
    j->req = req;
    j->link = l;
    l->job = j;
    j->job.run = load_run;
    j->job.done = load_done;
    j->job.worker = req->snap->worker;
    if (pt_procpool_submit(pt_admin_pool, &j->job) != PT_OK) {
        l->job = NULL;
        free(j);
        return 0;
    }
    return 1;
}

/* The caller goes through the policies of the execution's API (its
 * authentication tells who may see the execution), then the answer. */
static void executions(pt_req_t *req, const pt_snapshot_t *s)
{
    const char *id = req->path.p + sizeof(BUILTIN_PREFIX) - 1 + 11;
    size_t len = req->path.len - (sizeof(BUILTIN_PREFIX) - 1 + 11);
    char api_name[65];
    const pt_api_def_t *api;
    const pt_policy_list_t *chain;
    if (len > 7 && memcmp(id + len - 7, "/result", 7) == 0)
        len -= 7;
    if (pt_exec_api(id, len, api_name) != PT_OK && load_later(req, id, len))
        return; /* answered once read back from the store */
    if (pt_exec_api(id, len, api_name) != PT_OK ||
        (api = bsearch(api_name, s->config->apis, s->config->napis, sizeof(*s->config->apis),
                       api_cmp)) == NULL) {
        /* unknown, or its API is not deployed any more: nobody can be told apart */
        executions_answer(req);
        return;
    }
    req->match.api = api;
    chain = s->config->lchains != NULL ? &api->lchains[pt_http_listener_index(req)] : &api->chain;
    req->after_policies = executions_answer;
    if (chain->n == 0 || pt_policy_run(chain, req) == PT_POLICY_NEXT)
        executions_answer(req);
}

static void builtin(pt_req_t *req, const pt_snapshot_t *s, int draining)
{
    const char *name = req->path.p + sizeof(BUILTIN_PREFIX) - 1;
    size_t len = req->path.len - (sizeof(BUILTIN_PREFIX) - 1);
    static const pt_header_kv_t allow[] = {{"Allow", "GET, HEAD"}};
    char body[160];
    int n;

    if (len == 6 && memcmp(name, "health", 6) == 0) {
        if (!is_get(req))
            goto method;
        pt_http_respond(req, 200, no_store, 1, "application/json", "{\"status\":\"ok\"}", 15);
        return;
    }
    if (len == 5 && memcmp(name, "ready", 5) == 0) {
        if (!is_get(req))
            goto method;
        if (draining) {
            n = snprintf(body, sizeof(body), "{\"status\":\"draining\",\"generation\":%llu}",
                         (unsigned long long)s->generation);
            pt_http_respond(req, 503, no_store, 1, "application/json", body, (size_t)n);
        } else {
            n = snprintf(body, sizeof(body),
                         "{\"status\":\"ready\",\"generation\":%llu,\"apis\":%zu%s%s}",
                         (unsigned long long)s->generation, s->config->napis,
                         pt_control == NULL                ? ""
                         : pt_control_store_ok(pt_control) ? ",\"store\":\"ok\""
                                                           : ",\"store\":\"unreachable\"",
                         "");
            pt_http_respond(req, 200, no_store, 1, "application/json", body, (size_t)n);
        }
        return;
    }
    if (len > 11 && memcmp(name, "executions/", 11) == 0) {
        executions(req, s);
        return;
    }
    if (len == 4 && memcmp(name, "apis", 4) == 0) {
        if (!is_get(req))
            goto method;
        pt_http_respond(req, 200, no_store, 1, "application/json", s->apis_json, s->apis_json_len);
        return;
    }
    pt_http_problem(req, 404, "not-found", "No built-in resource at this path.", NULL, 0);
    return;
method:
    pt_http_problem(req, 405, "method-not-allowed", "This resource supports GET and HEAD.", allow,
                    1);
}

/* The API's URL as this client reached the node (the listener's scheme,
 * Host; X-Forwarded-Proto and -Host only from trusted proxies), escaped for
 * JSON (xml = 0) or XML. */
/* The origin (scheme://host) this client reached the node at (the
 * listener's scheme, Host; X-Forwarded-Proto and -Host only from trusted
 * proxies), then the API's base path when api is given; each piece through
 * esc (escaping for JSON or XML, or a plain copy). */
static void origin_with(pt_req_t *req, const pt_snapshot_t *s, const pt_api_def_t *api,
                        pt_buf_t *url, int (*esc)(pt_buf_t *, const char *, size_t))
{
    const pt_config_t *cfg = s->config;
    const struct sockaddr *peer = pt_http_peer_addr(req);
    const pt_listener_rt_t *l = pt_http_listener(req);
    int trusted = peer->sa_family != 0 && cfg->ntrusted_proxies > 0 &&
                  pt_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, peer);
    const pt_str_t *xfp = trusted ? pt_http_header(req, "x-forwarded-proto") : NULL;
    const pt_str_t *xfh = trusted ? pt_http_header(req, "x-forwarded-host") : NULL;
    size_t bl = api != NULL ? strlen(api->base_path) : 0;
    if (xfp != NULL)
        esc(url, xfp->p, xfp->len);
    else
        pt_buf_append_str(url, l != NULL && l->tls ? "https" : "http");
    pt_buf_append_str(url, "://");
    if (xfh != NULL)
        esc(url, xfh->p, xfh->len);
    else if (req->host.len > 0)
        esc(url, req->host.p, req->host.len);
    else
        pt_buf_append_str(url, "localhost");
    if (bl > 1)
        esc(url, api->base_path, bl);
}

static void server_url(pt_req_t *req, const pt_snapshot_t *s, const pt_api_def_t *api,
                       pt_buf_t *url, int xml)
{
    origin_with(req, s, api, url, xml ? pt_buf_append_xml_str : pt_buf_append_json_str);
}

static int append_raw(pt_buf_t *b, const char *p, size_t n)
{
    return pt_buf_append(b, p, n);
}

void pt_gateway_origin(pt_req_t *req, pt_buf_t *url)
{
    /* header values: llhttp let no CR, LF or NUL through */
    origin_with(req, req->snap->snap, NULL, url, append_raw);
}

/* Is req (a GET below api's base path) for the API's OpenAPI document or
 * its WSDL? */
static int is_contract(const pt_req_t *req, const pt_api_def_t *api)
{
    size_t bl = strlen(api->base_path);
    const char *rest = bl == 1 ? req->path.p : req->path.p + bl;
    size_t rest_len;
    if (req->path.len < bl)
        return 0;
    rest_len = req->path.len - (size_t)(rest - req->path.p);
    if (rest_len == 13 &&
        (memcmp(rest, "/openapi.json", 13) == 0 || memcmp(rest, "/openapi.yaml", 13) == 0))
        return 1;
    return rest_len == 5 && memcmp(rest, "/soap", 5) == 0 && req->query.len == 4 &&
           memcmp(req->query.p, "wsdl", 4) == 0;
}

/* {base_path}/openapi.json and .yaml of a service API (a route of that
 * path, if any, wins): the document rendered with the snapshot, around
 * the server URL of this request. Returns 1 when it answered. */
static int serve_contract(pt_req_t *req, const pt_snapshot_t *s)
{
    const pt_api_def_t *api = req->match.api;
    size_t ai = (size_t)(api - s->config->apis), bl = strlen(api->base_path), rest_len;
    const char *rest = req->path.p + bl;
    const pt_contract_t *c;
    const pt_str_t *ver;
    static const pt_header_kv_t hdrs[] = {{"Cache-Control", "no-cache"}};
    int yaml;
    pt_buf_t url;

    if (s->openapi == NULL || s->openapi[2 * ai].head == NULL || req->path.len < bl)
        return 0;
    if (bl == 1)
        rest = req->path.p; /* the catch-all base path "/" */
    rest_len = req->path.len - (size_t)(rest - req->path.p);
    if (rest_len == 13 && memcmp(rest, "/openapi.json", 13) == 0)
        yaml = 0;
    else if (rest_len == 13 && memcmp(rest, "/openapi.yaml", 13) == 0)
        yaml = 1;
    else
        return 0;
    if (!is_get(req)) {
        static const pt_header_kv_t allow[] = {{"Allow", "GET, HEAD"}};
        pt_http_problem(req, 405, "method-not-allowed", "The contract is read with GET.", allow, 1);
        return 1;
    }
    /* ?version=3.0 for OpenAPI 3.0.3 */
    c = &s->openapi[2 * ai];
    ver = &req->query;
    if (ver->len >= 11 && memmem(ver->p, ver->len, "version=3.0", 11) != NULL &&
        s->openapi[2 * ai + 1].head != NULL)
        c = &s->openapi[2 * ai + 1];
    pt_buf_init(&url, 0);
    server_url(req, s, api, &url, 0);
    if (url.data == NULL) {
        pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        return 1;
    }
    pt_http_respond_start(req, 200, hdrs, 1,
                          yaml ? "application/yaml; charset=utf-8" : "application/json",
                          (int64_t)(c->head_len + url.len + c->tail_len));
    pt_http_respond_body(req, c->head, c->head_len);
    pt_http_respond_body(req, url.data, url.len);
    pt_http_respond_body(req, c->tail, c->tail_len);
    pt_http_respond_end(req);
    pt_buf_free(&url);
    return 1;
}

/* POST {base_path}/soap of a service API with operations. Returns 1 when
 * it answered. */
static int serve_soap(pt_req_t *req, const pt_snapshot_t *s)
{
    const pt_api_def_t *api = req->match.api;
    size_t ai = (size_t)(api - s->config->apis);
    size_t bl = strlen(api->base_path);
    const char *rest = bl == 1 ? req->path.p : req->path.p + bl;
    size_t rest_len = req->path.len - (size_t)(rest - req->path.p);
    const pt_str_t *ct;
    static const pt_header_kv_t allow[] = {{"Allow", "POST"}};

    if (req->path.len < bl || rest_len != 5 || memcmp(rest, "/soap", 5) != 0)
        return 0;
    if (is_get(req) && req->query.len == 4 && memcmp(req->query.p, "wsdl", 4) == 0 &&
        s->wsdl != NULL && s->wsdl[ai].head != NULL) {
        /* ?wsdl: rendered with the snapshot, the address spliced at both ports */
        static const pt_header_kv_t hdrs[] = {{"Cache-Control", "no-cache"}};
        const pt_wsdl_t *w = &s->wsdl[ai];
        pt_buf_t url;
        pt_buf_init(&url, 0);
        server_url(req, s, api, &url, 1);
        pt_buf_append_str(&url, "/soap");
        if (url.data == NULL) {
            pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
            return 1;
        }
        pt_http_respond_start(req, 200, hdrs, 1, "text/xml; charset=utf-8",
                              (int64_t)(w->head_len + w->middle_len + w->tail_len + 2 * url.len));
        pt_http_respond_body(req, w->head, w->head_len);
        pt_http_respond_body(req, url.data, url.len);
        pt_http_respond_body(req, w->middle, w->middle_len);
        pt_http_respond_body(req, url.data, url.len);
        pt_http_respond_body(req, w->tail, w->tail_len);
        pt_http_respond_end(req);
        pt_buf_free(&url);
        return 1;
    }
    if (req->method_len != 4 || memcmp(req->method, "POST", 4) != 0) {
        pt_http_problem(req, 405, "method-not-allowed",
                        "SOAP operations are called with POST; the WSDL is at ?wsdl.", allow, 1);
        return 1;
    }
    ct = pt_http_header(req, "content-type");
    if (ct != NULL && ct->len >= 20 && strncasecmp(ct->p, "application/soap+xml", 20) == 0) {
        pt_process_handle_soap(req, 2);
    } else if (ct != NULL && ct->len >= 8 && strncasecmp(ct->p, "text/xml", 8) == 0) {
        pt_process_handle_soap(req, 1);
    } else {
        pt_http_problem(req, 415, "unsupported-media-type",
                        "SOAP 1.1 is text/xml, SOAP 1.2 application/soap+xml.", NULL, 0);
    }
    return 1;
}

/* Does req carry every routing header of rt (exact values)? */
static int headers_match(const pt_req_t *req, const pt_route_def_t *rt)
{
    size_t i;
    for (i = 0; i < rt->nmatch_headers; i++) {
        const pt_str_t *v = pt_http_header(req, rt->match_headers[i].name);
        size_t n = strlen(rt->match_headers[i].value);
        if (v == NULL || v->len != n || memcmp(v->p, rt->match_headers[i].value, n) != 0)
            return 0;
    }
    return 1;
}

static void respond_static(pt_req_t *req)
{
    const pt_respond_t *r = &req->match.route->respond;
    pt_http_respond(req, r->status, r->headers, r->nheaders, r->content_type, r->body, r->body_len);
}

void pt_gateway_handle(pt_req_t *req)
{
    const pt_snapshot_t *s = req->snap->snap;
    const pt_listener_rt_t *l = pt_http_listener(req);
    pt_route_result_t rr;

    if (l != NULL && l->index < s->config->nlisteners && s->config->listeners[l->index].admin) {
        pt_admin_handle(req); /* the admin listener serves nothing else */
        return;
    }
    if (s->config->tracing.traceparent)
        pt_http_trace(req);

    if (req->path.len >= sizeof(BUILTIN_PREFIX) - 1 &&
        memcmp(req->path.p, BUILTIN_PREFIX, sizeof(BUILTIN_PREFIX) - 1) == 0) {
        builtin(req, s, req->snap->worker->draining);
        return;
    }
    if (req->path.len == 1 && req->path.p[0] == '*') { /* OPTIONS * */
        static const pt_header_kv_t allow[] = {
            {"Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"}};
        pt_http_respond(req, 204, allow, 1, NULL, NULL, 0);
        return;
    }
    if (s->config->nprotected_headers > 0) { /* never reach a process or an upstream */
        size_t i;
        for (i = 0; i < s->config->nprotected_headers; i++)
            pt_http_header_remove(req, s->config->protected_headers[i]);
    }
    rr = pt_router_match(s->router, req->method, req->method_len, req->path.p, req->path.len,
                         &req->match);
    req->route_result = (int)rr;
    if (rr != PT_ROUTE_FOUND && req->match.api != NULL && is_get(req))
        req->contract = is_contract(req, req->match.api);
    {
        /* the policy chain of the route, else of the API, else the node's */
        const pt_policy_list_t *chain;
        unsigned li = pt_http_listener_index(req);
        if (s->config->lchains == NULL) /* no listener has policies of its own */
            chain = req->match.api == NULL ? &s->config->policies
                    : rr == PT_ROUTE_FOUND ? &req->match.route->chain
                                           : &req->match.api->chain;
        else
            chain = req->match.api == NULL ? &s->config->lchains[li]
                    : rr == PT_ROUTE_FOUND ? &req->match.route->lchains[li]
                                           : &req->match.api->lchains[li];
        if (chain->n > 0 && pt_policy_run(chain, req) != PT_POLICY_NEXT)
            return;
    }
    pt_gateway_dispatch(req);
}

void pt_gateway_dispatch(pt_req_t *req)
{
    const pt_snapshot_t *s = req->snap->snap;
    pt_route_result_t rr = (pt_route_result_t)req->route_result;

    if (rr == PT_ROUTE_NOT_FOUND && req->match.api != NULL && req->match.api->upstream != NULL &&
        req->match.api->openapi_doc != NULL && serve_contract(req, s))
        return; /* a proxy API's imported contract */
    if (rr == PT_ROUTE_NOT_FOUND && req->match.api != NULL && req->match.api->upstream != NULL) {
        /* a proxy API forwards everything under its base path */
        pt_proxy_handle(req, s->proxies[req->match.api - s->config->apis]);
        return;
    }
    if (rr != PT_ROUTE_FOUND && req->match.api != NULL && serve_contract(req, s))
        return;
    if (rr != PT_ROUTE_FOUND && req->match.api != NULL && req->match.api->nsoap_ops > 0 &&
        serve_soap(req, s))
        return;
    if (rr == PT_ROUTE_NOT_FOUND) {
        pt_http_problem(req, 404, "not-found", "No route matches this path.", NULL, 0);
        return;
    }
    if (rr == PT_ROUTE_METHOD_NOT_ALLOWED) {
        pt_header_kv_t allow = {"Allow", (char *)req->match.allow};
        pt_http_problem(req, 405, "method-not-allowed", "The route does not accept this method.",
                        &allow, 1);
        return;
    }
    if (req->match.route->nmatch_headers > 0 || req->match.route->alt != NULL) {
        /* routing headers: the first route of this method and template whose
         * headers the request carries (the most specific first) */
        const pt_route_def_t *rt = req->match.route;
        while (rt != NULL && !headers_match(req, rt))
            rt = rt->alt;
        if (rt == NULL) {
            pt_http_problem(req, 404, "not-found",
                            "No route matches this path with these request headers.", NULL, 0);
            return;
        }
        req->match.route = rt;
    }
    switch (req->match.route->kind) {
    case PT_DISPATCH_RESPOND:
        /* With a body, answer once it has been read: the client gets
         * "100 Continue" when it asked, and the connection stays usable. */
        if (req->chunked || req->content_length > 0)
            req->on_complete = respond_static;
        else
            respond_static(req);
        return;
    case PT_DISPATCH_PROCESS:
        pt_process_handle(req);
        return;
    }
    pt_http_problem(req, 500, "internal-error", "The route has no dispatch kind.", NULL, 0);
}
