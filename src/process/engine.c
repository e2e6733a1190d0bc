/*
 * engine.c - running a route's process (see engine.h).
 */
#include "process/engine.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "config/config.h"
#include "connector/db.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xml.h"
#include "event/worker-t.h"
#include "gateway/router.h"
#include "gateway/snapshot-t.h"
#include "gateway/snapshot.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "process/expr.h"
#include "process/jschema.h"
#include "connector/http.h"
#include "process/pool.h"
#include "gateway/dispatch.h"
#include "process/records.h"
#include "process/webhook.h"
#include "process/sqltext.h"
#include "protocol/soap.h"
#include "script/lua.h"

#define MAX_VIOLATIONS  50
#define HEADERS_OUT_MAX 64

/* ------------------------------------------------------------------ runtime */

pt_service_rt_t *pt_service_rt_build(const pt_api_def_t *api, char *err, size_t errlen)
{
    pt_service_rt_t *rt = calloc(1, sizeof(*rt));
    size_t i;
    if (rt == NULL || (rt->dbs = calloc(api->nconnections + 1, sizeof(*rt->dbs))) == NULL) {
        free(rt);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rt->api = api;
    for (i = 0; i < api->nconnections; i++) {
        const pt_connection_def_t *cd = &api->connections[i];
        if (cd->kind == PT_CONN_HTTP)
            continue; /* http steps: libcurl keeps connections, per pool thread */
        rt->dbs[i] = pt_db_new(cd);
        if (rt->dbs[i] == NULL) {
            snprintf(err, errlen, "%s:%u: connections.%s: out of memory", api->file, cd->line,
                     cd->name);
            pt_service_rt_free(rt);
            return NULL;
        }
    }
    return rt;
}

void pt_service_rt_free(pt_service_rt_t *rt)
{
    size_t i;
    if (rt == NULL)
        return;
    for (i = 0; i < rt->api->nconnections; i++)
        pt_db_free(rt->dbs[i]);
    free(rt->dbs);
    free(rt);
}

/* ------------------------------------------------------------------ executions */

typedef struct link_s link_t;

typedef struct exec_s {
    pt_job_t job;
    pt_arena_t arena;    /* everything of the execution (malloc'd blocks: it crosses threads) */
    link_t *link;        /* in the request's arena while the request lives */
    pt_req_t *req;       /* NULL once the request is gone */
    pt_snapshot_t *snap; /* one reference while the execution exists */
    const pt_api_def_t *api;
    const pt_route_def_t *route;
    const pt_process_def_t *proc;
    pt_service_rt_t *rt;
    pt_process_limits_t limits;
    /* inputs (copies) */
    char *method;
    char *path;  /* the request path, for the Link of a paged list */
    char *query; /* raw, without '?' */
    size_t query_len;
    pt_json_t *path_params; /* built on the loop: small */
    pt_json_t *headers;     /* declared headers only */
    pt_json_t *user;        /* {name, roles} of the authenticated user, or NULL */
    char *ctype;            /* request Content-Type or NULL */
    char *body;
    size_t body_len;
    int submitted;
    int want_xml; /* the client's Accept prefers XML: results are written as XML */
    int soap;     /* a SOAP request (1 or 2: the version); the operation is its Body's element */
    char *soap_action;    /* SOAPAction (1.1) or the action parameter (1.2); NULL when none */
    atomic_int abandoned; /* the client left before the execution started: it does not run */
    char request_id[40];
    char traceparent[56]; /* the request's trace, for http steps ("" when not traced) */
    char exec_id[33];     /* X-Execution-Id: random, the key of the execution record */
    pt_exec_rec_t *rec;   /* its record (general mode, async, or waited for at most a while) */
    uint32_t wait_ms;     /* answer 202 past this (X-Max-Wait or the route's max_wait); 0: no */
    int async;            /* answer 202 at once */
    uv_timer_t *timer;    /* wait_ms's timer (on the worker's loop) */
    char *status_link;    /* absolute URL of the record */
    uint64_t retention_ms, max_result;
    int drop_large;
    char *client_webhook; /* X-Portico-Webhook (an allowed host), or NULL */
    int refused;          /* refused at once (503): its client knows, no webhook */
    int debug;            /* X-Portico-Debug from a user with the debug role: traced */
    int64_t enqueued_ms;  /* wall clock, for the record */
    /* outputs */
    int status;
    pt_header_kv_t out_headers[HEADERS_OUT_MAX];
    size_t nout_headers;
    const char *out_ctype;
    pt_buf_t out;      /* body */
    char *next_link;   /* Link header of a paged list (next page), or NULL */
    const char *ptype; /* problem type when the execution failed */
    char detail[320];
    pt_json_t *violations;
} exec_t;

struct link_s {
    exec_t *exec;
};

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void exec_free(exec_t *x)
{
    if (x->timer != NULL) /* on the loop: exec_free never runs on a pool thread */
        uv_close((uv_handle_t *)x->timer, timer_closed);
    pt_exec_rec_unref(x->rec);
    if (x->link != NULL)
        x->link->exec = NULL;
    if (x->snap != NULL)
        pt_snapshot_unref(x->snap);
    pt_buf_free(&x->out);
    pt_arena_reset(&x->arena);
    free(x);
}

/* Request arena cleanup: the request ended (answered, or the client left). */
static void link_cleanup(void *data)
{
    link_t *l = data;
    exec_t *x = l->exec;
    if (x == NULL)
        return;
    x->link = NULL;
    x->req = NULL;
    if (!x->submitted)
        exec_free(x); /* the body was still arriving: nothing runs */
    else
        atomic_store_explicit(&x->abandoned, 1, memory_order_relaxed);
}

static void fail(exec_t *x, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(exec_t *x, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    x->status = status;
    x->ptype = type;
    va_start(ap, fmt);
    vsnprintf(x->detail, sizeof(x->detail), fmt, ap);
    va_end(ap);
}

static const char *error_type(pt_proc_error_t k)
{
    static const char *const types[PT_PERR_COUNT] = {
        "not-found",   "conflict", "unprocessable",  "unprocessable",    "unprocessable",
        "bad-request", "busy",     "database-error", "expression-error", "bad-gateway"};
    return types[k];
}

/* ------------------------------------------------------------------ records */

/* The end of the execution into its record (when it has one): its status,
 * and the response it answers with (kept when nobody waits for it). */
/* Tells the execution's webhooks (route's, and the client's) of its end. */
static void fire_webhooks(exec_t *x, const char *ctype, const pt_header_kv_t *hdrs, size_t nh,
                          const char *body, size_t len)
{
    const pt_webhooks_config_t *w = &x->snap->config->webhooks;
    size_t n = x->route->nwebhooks + (x->client_webhook != NULL), i;
    pt_buf_t b;
    int rc = 0;
    if (n == 0 || x->rec == NULL || x->refused)
        return;
    pt_buf_init(&b, 0);
    rc |= pt_buf_append_str(&b, "{\"execution\":");
    rc |= pt_exec_json(x->exec_id, 32, NULL, 1, &b);
    rc |= pt_buf_printf(&b, ",\"response\":{\"status\":%d,\"headers\":{", x->status);
    for (i = 0; i < nh; i++) {
        rc |= pt_buf_append_str(&b, i ? ",\"" : "\"");
        rc |= pt_buf_append_json_str(&b, hdrs[i].name, strlen(hdrs[i].name));
        rc |= pt_buf_append_str(&b, "\":\"");
        rc |= pt_buf_append_json_str(&b, hdrs[i].value, strlen(hdrs[i].value));
        rc |= pt_buf_append_char(&b, '"');
    }
    if (ctype != NULL) {
        rc |= pt_buf_append_str(&b, nh ? ",\"Content-Type\":\"" : "\"Content-Type\":\"");
        rc |= pt_buf_append_json_str(&b, ctype, strlen(ctype));
        rc |= pt_buf_append_char(&b, '"');
    }
    rc |= pt_buf_append_str(&b, "},\"body\":");
    if (len > 0 && ctype != NULL && strstr(ctype, "json") != NULL) {
        rc |= pt_buf_append(&b, body, len); /* ours: valid JSON */
    } else if (len > 0) {
        rc |= pt_buf_append_char(&b, '"');
        rc |= pt_buf_append_json_str(&b, body, len);
        rc |= pt_buf_append_char(&b, '"');
    } else {
        rc |= pt_buf_append_str(&b, "null");
    }
    rc |= pt_buf_append_str(&b, "}}");
    if (rc == 0) {
        for (i = 0; i < x->route->nwebhooks; i++) {
            pt_exec_rec_webhook(x->exec_id, x->route->webhooks[i], 0, 0, NULL, "pending");
            pt_webhook_enqueue(w, x->route->webhooks[i], x->exec_id, b.data, b.len);
        }
        if (x->client_webhook != NULL) {
            pt_exec_rec_webhook(x->exec_id, x->client_webhook, 0, 0, NULL, "pending");
            pt_webhook_enqueue(w, x->client_webhook, x->exec_id, b.data, b.len);
        }
    } else {
        pt_log_error("%s: execution %s: out of memory building its webhook", x->request_id,
                     x->exec_id);
    }
    pt_buf_free(&b);
}

static void record(exec_t *x, pt_exec_status_t status, int ran)
{
    pt_header_kv_t hdrs[HEADERS_OUT_MAX + 1];
    size_t nh = 0, i;
    pt_buf_t problem;
    (void)ran;
    if (x->rec == NULL)
        return;
    pt_buf_init(&problem, 0);
    if (x->ptype != NULL) {
        /* the problem document the client would have had */
        pt_buf_printf(&problem, "{\"type\":\"urn:portico:problem:%s\",\"title\":\"", x->ptype);
        pt_buf_append_json_str(&problem, pt_http_reason(x->status),
                               strlen(pt_http_reason(x->status)));
        pt_buf_printf(&problem, "\",\"status\":%d,\"detail\":\"", x->status);
        pt_buf_append_json_str(&problem, x->detail, strlen(x->detail));
        pt_buf_printf(&problem, "\",\"execution_id\":\"%s\"}", x->exec_id);
        pt_exec_rec_ended(x->rec, status, x->status, x->detail, "application/problem+json", NULL, 0,
                          problem.data, problem.len, problem.len);
        fire_webhooks(x, "application/problem+json", NULL, 0, problem.data, problem.len);
    } else {
        if (x->next_link != NULL)
            hdrs[nh++] = (pt_header_kv_t){"Link", x->next_link};
        for (i = 0; i < x->nout_headers && nh < PT_ARRAY_SIZE(hdrs); i++)
            hdrs[nh++] = x->out_headers[i];
        pt_exec_rec_ended(x->rec, status, x->status, NULL, x->out_ctype, hdrs, nh, x->out.data,
                          x->out.len, x->out.len);
        fire_webhooks(x, x->out_ctype, hdrs, nh, x->out.data, x->out.len);
    }
    pt_buf_free(&problem);
}

/* ------------------------------------------------------------------ context */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes (and '+' -> ' ' when form) s into the arena; NULL when
 * out of memory. Invalid escapes are kept as written. */
static char *pct_decode(pt_arena_t *a, const char *s, size_t len, int form, size_t *out_len)
{
    char *o = pt_arena_alloc(a, len + 1);
    size_t i, n = 0;
    if (o == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < len && (h = hexval(s[i + 1])) >= 0 &&
            (l = hexval(s[i + 2])) >= 0) {
            o[n++] = (char)(h * 16 + l);
            i += 2;
        } else if (form && s[i] == '+') {
            o[n++] = ' ';
        } else {
            o[n++] = s[i];
        }
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

/* The query string as an object: name -> string, or an array of strings
 * when the name repeats. */
static pt_json_t *query_object(pt_arena_t *a, const char *q, size_t len)
{
    pt_json_t *obj = pt_json_object(a);
    size_t i = 0;
    if (obj == NULL)
        return NULL;
    while (i < len) {
        size_t s = i, eq, e, kl, vl;
        char *k, *v;
        pt_json_t *val, *prev;
        while (i < len && q[i] != '&')
            i++;
        e = i++;
        if (e == s)
            continue;
        for (eq = s; eq < e && q[eq] != '='; eq++)
            ;
        k = pct_decode(a, q + s, eq - s, 1, &kl);
        v = eq < e ? pct_decode(a, q + eq + 1, e - eq - 1, 1, &vl) : pct_decode(a, "", 0, 1, &vl);
        if (k == NULL || v == NULL || (val = pt_json_string(a, v, vl)) == NULL)
            return NULL;
        if (memchr(k, '\0', kl) != NULL)
            continue;
        prev = pt_json_getn(obj, k, kl);
        if (prev == NULL) {
            if (pt_json_object_set(a, obj, k, kl, val) != PT_OK)
                return NULL;
        } else if (prev->type == PT_JSON_ARRAY) {
            if (pt_json_array_add(a, prev, val) != PT_OK)
                return NULL;
        } else {
            pt_json_t *arr = pt_json_array(a);
            if (arr == NULL || pt_json_array_add(a, arr, prev) != PT_OK ||
                pt_json_array_add(a, arr, val) != PT_OK ||
                pt_json_object_set(a, obj, k, kl, arr) != PT_OK)
                return NULL;
        }
    }
    return obj;
}

static int media_is_json(const char *ct)
{
    size_t n;
    if (ct == NULL)
        return 1; /* no type: taken as JSON */
    n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

static int media_is_xml(const char *ct)
{
    size_t n;
    if (ct == NULL)
        return 0;
    n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return (n == 15 && strncasecmp(ct, "application/xml", 15) == 0) ||
           (n == 8 && strncasecmp(ct, "text/xml", 8) == 0) ||
           (n > 4 && strncasecmp(ct + n - 4, "+xml", 4) == 0);
}

static int media_is_text(const char *ct)
{
    return ct != NULL && strncasecmp(ct, "text/plain", 10) == 0;
}

/* Adds a violation {pointer, message} to the array *viol (created on first use). */
static int add_violation(pt_arena_t *a, pt_json_t **viol, const char *pointer, const char *msg)
{
    pt_json_t *o = pt_json_object(a);
    if (*viol == NULL && (*viol = pt_json_array(a)) == NULL)
        return PT_ENOMEM;
    if (o == NULL ||
        pt_json_object_set(a, o, "pointer", 7, pt_json_string(a, pointer, strlen(pointer))) ||
        pt_json_object_set(a, o, "message", 7, pt_json_string(a, msg, strlen(msg))) ||
        pt_json_array_add(a, *viol, o))
        return PT_ENOMEM;
    return PT_OK;
}

/* The route's declared query parameters: each converted from its text to
 * its type and validated; the typed values replace the strings in q. */
static int typed_query(exec_t *x, pt_json_t *q)
{
    pt_arena_t *a = &x->arena;
    pt_json_t *viol = NULL;
    size_t i, n = 0;
    char ptr[96];

    for (i = 0; i < x->route->nquery; i++) {
        const pt_query_param_t *qp = &x->route->query[i];
        pt_json_t *v = pt_json_get(q, qp->name), *typed = NULL, *sub = NULL;
        int k;
        snprintf(ptr, sizeof(ptr), "/query/%s", qp->name);
        if (v == NULL) {
            if (qp->dflt != NULL) {
                if (pt_json_object_set(a, q, qp->name, strlen(qp->name), (pt_json_t *)qp->dflt))
                    return PT_ENOMEM;
            } else if (qp->required && add_violation(a, &viol, ptr, "is required") != PT_OK) {
                return PT_ENOMEM;
            }
            n += qp->required && qp->dflt == NULL;
            continue;
        }
        if (v->type != PT_JSON_STRING) {
            if (add_violation(a, &viol, ptr, "must be given once") != PT_OK)
                return PT_ENOMEM;
            n++;
            continue;
        }
        if (strcmp(qp->type, "string") == 0) {
            typed = v;
        } else if (strcmp(qp->type, "boolean") == 0) {
            if (strcmp(v->u.str.p, "true") == 0 || strcmp(v->u.str.p, "1") == 0)
                typed = pt_json_bool(a, 1);
            else if (strcmp(v->u.str.p, "false") == 0 || strcmp(v->u.str.p, "0") == 0)
                typed = pt_json_bool(a, 0);
        } else {
            typed = pt_json_number_text(a, v->u.str.p, v->u.str.len);
        }
        if (typed == NULL) {
            char msg[64];
            snprintf(msg, sizeof(msg), "must be %s",
                     strcmp(qp->type, "integer") == 0  ? "an integer"
                     : strcmp(qp->type, "number") == 0 ? "a number"
                                                       : "true or false");
            if (add_violation(a, &viol, ptr, msg) != PT_OK)
                return PT_ENOMEM;
            n++;
            continue;
        }
        k = pt_jschema_validate(qp->schema, typed, PT_JSCHEMA_REQUEST, a, 8, &sub);
        if (k < 0)
            return PT_ENOMEM;
        if (k > 0) {
            size_t j;
            for (j = 0; sub != NULL && j < sub->u.arr.n; j++) {
                const pt_json_t *m = pt_json_get(sub->u.arr.items[j], "message");
                if (add_violation(a, &viol, ptr, m ? m->u.str.p : "is invalid") != PT_OK)
                    return PT_ENOMEM;
            }
            n += (size_t)k;
            continue;
        }
        if (pt_json_object_set(a, q, qp->name, strlen(qp->name), typed) != PT_OK)
            return PT_ENOMEM;
    }
    if (n > 0) {
        fail(x, 400, "validation-failed",
             "The query does not match the route's parameters (%zu %s).", n,
             n == 1 ? "violation" : "violations");
        x->violations = viol;
        return PT_ERROR;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------ paging */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_encode(pt_buf_t *b, const unsigned char *p, size_t n)
{
    size_t i;
    int rc = 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char o[4] = {b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63],
                     b64url[v & 63]};
        rc |= pt_buf_append(b, o, 4);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        char o[2] = {b64url[v >> 18], b64url[(v >> 12) & 63]};
        rc |= pt_buf_append(b, o, 2);
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        char o[3] = {b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63]};
        rc |= pt_buf_append(b, o, 3);
    }
    return rc;
}

/* Decodes unpadded base64url; NULL when invalid. */
static char *b64url_decode(pt_arena_t *a, const char *s, size_t n, size_t *out_len)
{
    char *o;
    size_t i, m = 0;
    unsigned acc = 0, bits = 0;
    if (n % 4 == 1 || (o = pt_arena_alloc(a, n * 3 / 4 + 1)) == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        const char *pos = s[i] ? memchr(b64url, s[i], 64) : NULL;
        if (pos == NULL)
            return NULL;
        acc = (acc << 6) | (unsigned)(pos - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[m++] = (char)((acc >> bits) & 0xff);
        }
    }
    o[m] = '\0';
    *out_len = m;
    return o;
}

/* The `page` root: {limit, fetch, after} from ?limit= and ?cursor= (a SOAP
 * operation, which has no query, gives its limit in the payload). */
static int page_context(exec_t *x, const pt_step_def_t *st, const pt_json_t *q,
                        const pt_json_t *body, pt_json_t **out)
{
    pt_arena_t *a = &x->arena;
    const pt_json_t *lim = pt_json_get(q, "limit"), *cur = pt_json_get(q, "cursor");
    const pt_json_t *sort = pt_json_get(q, "sort");
    pt_json_t *page = pt_json_object(a), *after = NULL, *sortv = NULL;
    const char *sortcol = NULL;
    int64_t limit = st->page_default_limit;
    size_t i, nkeys;

    if (page == NULL)
        return PT_ENOMEM;
    if (lim == NULL && x->soap && body != NULL && body->type == PT_JSON_OBJECT)
        lim = pt_json_get(body, "limit");
    if (sort != NULL && st->npage_sort > 0) {
        /* ?sort=col or ?sort=-col, col among page.sort */
        const char *s = sort->type == PT_JSON_STRING ? sort->u.str.p : "";
        const char *col = s[0] == '-' ? s + 1 : s;
        for (i = 0; i < st->npage_sort; i++)
            if (strcmp(st->page_sort[i], col) == 0)
                break;
        if (i == st->npage_sort) {
            pt_buf_t allowed;
            pt_buf_init(&allowed, 0);
            for (i = 0; i < st->npage_sort; i++)
                pt_buf_printf(&allowed, "%s%s, -%s", i ? ", " : "", st->page_sort[i],
                              st->page_sort[i]);
            fail(x, 400, "bad-request", "sort must be one of: %.200s",
                 allowed.data ? allowed.data : "");
            pt_buf_free(&allowed);
            return PT_ERROR;
        }
        sortcol = st->page_sort[i];
        sortv = (pt_json_t *)sort;
    }
    nkeys = st->npage_by + (sortcol != NULL ? 2 : 0); /* the sort column and "~sort" */
    if (lim != NULL) {
        char *end = NULL;
        long long v = 0;
        int ok = 0;
        if (lim->type == PT_JSON_STRING) {
            v = strtoll(lim->u.str.p, &end, 10);
            ok = end != lim->u.str.p && *end == '\0';
        } else if (lim->type == PT_JSON_NUMBER) { /* a declared integer parameter */
            int64_t n64;
            ok = pt_json_to_int64(lim, &n64) == PT_OK;
            v = ok ? (long long)n64 : 0;
        }
        if (!ok || v < 1 || v > (long long)st->page_max_limit) {
            fail(x, 400, "bad-request", "limit must be an integer from 1 to %u",
                 st->page_max_limit);
            return PT_ERROR;
        }
        limit = v;
    }
    if (cur != NULL) {
        size_t n;
        char *json;
        pt_json_limits_t jl = {4, 64, 4096};
        pt_json_error_t jerr;
        if (cur->type != PT_JSON_STRING || cur->u.str.len > 8192 ||
            (json = b64url_decode(a, cur->u.str.p, cur->u.str.len, &n)) == NULL ||
            (after = pt_json_parse(a, json, n, &jl, &jerr)) == NULL ||
            after->type != PT_JSON_OBJECT || after->u.obj.n != nkeys)
            goto bad;
        for (i = 0; i < st->npage_by; i++) {
            const pt_json_t *v = pt_json_get(after, st->page_by[i]);
            if (v == NULL || v->type == PT_JSON_ARRAY || v->type == PT_JSON_OBJECT)
                goto bad;
        }
        if (sortcol != NULL) {
            /* a cursor of this sort only */
            const pt_json_t *v = pt_json_get(after, sortcol), *s = pt_json_get(after, "~sort");
            if (v == NULL || v->type == PT_JSON_ARRAY || v->type == PT_JSON_OBJECT || s == NULL ||
                !pt_json_equal(s, sortv))
                goto bad;
        } else if (pt_json_get(after, "~sort") != NULL) {
            goto bad;
        }
    }
    if (sortv != NULL && pt_json_object_set(a, page, "sort", 4, sortv) != PT_OK)
        return PT_ENOMEM;
    if (pt_json_object_set(a, page, "limit", 5, pt_json_int(a, limit)) ||
        pt_json_object_set(a, page, "fetch", 5, pt_json_int(a, limit + 1)) ||
        pt_json_object_set(a, page, "after", 5, after != NULL ? after : pt_json_null(a)))
        return PT_ENOMEM;
    *out = page;
    return PT_OK;
bad:
    fail(x, 400, "bad-request", "%s", "The cursor is not one this list gave.");
    return PT_ERROR;
}

/* A paged step returned rows (up to limit + 1): keeps limit of them and,
 * when there was one more, sets the Link to the next page. */
static int page_result(exec_t *x, const pt_step_def_t *st, const pt_json_t *page, pt_json_t *rows)
{
    pt_arena_t *a = &x->arena;
    int64_t limit = 0;
    const pt_json_t *last;
    pt_json_t *key;
    pt_buf_t j, link;
    size_t i, qi;
    int rc = 0;

    if (pt_json_to_int64(pt_json_get(page, "limit"), &limit) != PT_OK ||
        rows->type != PT_JSON_ARRAY || rows->u.arr.n <= (size_t)limit)
        return PT_OK;
    rows->u.arr.n = (size_t)limit; /* the extra row only said that there is more */
    last = rows->u.arr.items[limit - 1];
    if ((key = pt_json_object(a)) == NULL)
        return PT_ENOMEM;
    for (i = 0; i < st->npage_by; i++) {
        pt_json_t *v = pt_json_get(last, st->page_by[i]);
        if (v == NULL) {
            fail(x, 500, "internal-error", "page.by: the rows have no column %s", st->page_by[i]);
            return PT_ERROR;
        }
        if (pt_json_object_set(a, key, st->page_by[i], strlen(st->page_by[i]), v) != PT_OK)
            return PT_ENOMEM;
    }
    if (pt_json_get(page, "sort") != NULL) {
        const pt_json_t *sv = pt_json_get(page, "sort");
        const char *col = sv->u.str.p[0] == '-' ? sv->u.str.p + 1 : sv->u.str.p;
        pt_json_t *v = pt_json_get(last, col);
        if (v == NULL) {
            fail(x, 500, "internal-error", "page.sort: the rows have no column %s", col);
            return PT_ERROR;
        }
        if (pt_json_object_set(a, key, col, strlen(col), v) != PT_OK ||
            pt_json_object_set(a, key, "~sort", 5, (pt_json_t *)sv) != PT_OK)
            return PT_ENOMEM;
    }
    pt_buf_init(&j, 0);
    pt_buf_init(&link, 0);
    rc |= pt_json_write(&j, key);
    rc |= pt_buf_append_char(&link, '<');
    rc |= pt_buf_append_str(&link, x->path);
    rc |= pt_buf_append_char(&link, '?');
    /* the same query without its cursor, then the next cursor */
    for (qi = 0; x->query != NULL && qi < x->query_len;) {
        size_t s = qi, e;
        while (qi < x->query_len && x->query[qi] != '&')
            qi++;
        e = qi++;
        if (e == s || (e - s >= 7 && memcmp(x->query + s, "cursor=", 7) == 0) ||
            (e - s == 6 && memcmp(x->query + s, "cursor", 6) == 0))
            continue;
        rc |= pt_buf_append(&link, x->query + s, e - s);
        rc |= pt_buf_append_char(&link, '&');
    }
    rc |= pt_buf_append_str(&link, "cursor=");
    if (rc == 0)
        rc |= b64url_encode(&link, (const unsigned char *)j.data, j.len);
    rc |= pt_buf_append_str(&link, ">; rel=\"next\"");
    if (rc == 0)
        x->next_link = pt_arena_strndup(a, link.data, link.len);
    pt_buf_free(&j);
    pt_buf_free(&link);
    return rc != 0 || x->next_link == NULL ? PT_ENOMEM : PT_OK;
}

/* ------------------------------------------------------------------ steps */

typedef struct run_s {
    exec_t *x;
    pt_json_t *ctx, *steps;
    pt_dbconn_t **conns; /* per connection, borrowed on first use */
    int *in_tx;
    uint64_t deadline;
    pt_json_t *last;
    int responded;
    pt_json_t *trace;         /* debug: [{step, kind, ms, input, output}] */
    pt_json_t *step_input;    /* debug: what the current step was given (SQL parameters) */
    pt_dbconn_t *cancel_conn; /* the connection a cancel interrupts */
    pt_db_t *cancel_db;
} run_t;

/* The execution's canceller while a statement runs (pt_exec_interrupt). */
static void sql_cancel(void *arg)
{
    struct run_s *r = arg;
    pt_db_cancel(r->cancel_conn, r->cancel_db);
}

static int eval(run_t *r, const pt_expr_t *e, pt_json_t **out)
{
    char err[256];
    *out = pt_expr_eval(e, r->ctx, &r->x->arena, err, sizeof(err));
    if (*out == NULL) {
        pt_log_warn("%s: process \"%s\": expression %s: %s", r->x->request_id, r->x->proc->name,
                    pt_expr_source(e), err);
        fail(r->x, r->x->proc->error_status[PT_PERR_EXPRESSION], "expression-error",
             "An expression of the process failed: %s", err);
        return PT_ERROR;
    }
    return PT_OK;
}

static int db_failed(run_t *r, const pt_step_def_t *st, const pt_db_error_t *e)
{
    exec_t *x = r->x;
    const pt_connection_def_t *cd = &x->api->connections[st->connection];
    if (e->timeout) {
        fail(x, x->limits.timeout_status, "execution-timeout", "%s",
             "The process ran out of time.");
        return PT_ERROR;
    }
    pt_log_warn("%s: process \"%s\" step \"%s\" on %s: %s", x->request_id, x->proc->name, st->name,
                cd->display, e->message);
    if (e->kind == PT_PERR_DATABASE)
        fail(x, x->proc->error_status[e->kind], "database-error", "%s",
             "The database could not run the operation.");
    else
        fail(x, x->proc->error_status[e->kind], error_type(e->kind), "%s", e->message);
    return PT_ERROR;
}

/* Appends an identifier quoted for the connection's dialect. */
static int quote_ident(pt_buf_t *b, const char *name, int mariadb)
{
    char q = mariadb ? '`' : '"';
    return pt_buf_append_char(b, q) | pt_buf_append_str(b, name) | pt_buf_append_char(b, q);
}

/* A paged step with ${order} and ${after}: a copy of the step whose text has
 * the ORDER BY (the ?sort= column, then page.by, all in the sort's
 * direction) and the keyset condition (the row value after the cursor's),
 * with the cursor's values as extra bound parameters. Identifiers come from
 * the definition (checked at load), values are bound: nothing of the request
 * is spliced into the text. */
static int expand_markers(run_t *r, const pt_step_def_t **stp, pt_json_t ***argsp)
{
    exec_t *x = r->x;
    pt_arena_t *a = &x->arena;
    const pt_step_def_t *st = *stp;
    const pt_json_t *page = pt_json_get(r->ctx, "page");
    const pt_json_t *sort = pt_json_get(page, "sort"), *after = pt_json_get(page, "after");
    int mariadb = x->api->connections[st->connection].kind == PT_CONN_MARIADB;
    int desc = sort != NULL && sort->u.str.p[0] == '-';
    const char *cols[9];
    size_t ncols = 0, i, k;
    pt_buf_t order, cond, sql;
    pt_step_def_t *d;
    pt_json_t **args;
    char why[256];
    const char *p;
    int rc = 0;

    if (sort != NULL)
        cols[ncols++] = desc ? sort->u.str.p + 1 : sort->u.str.p;
    for (i = 0; i < st->npage_by && ncols < PT_ARRAY_SIZE(cols); i++)
        if (ncols == 0 || strcmp(cols[0], st->page_by[i]) != 0)
            cols[ncols++] = st->page_by[i];
    pt_buf_init(&order, 0);
    pt_buf_init(&cond, 0);
    pt_buf_init(&sql, 0);
    for (i = 0; i < ncols; i++) {
        rc |= i ? pt_buf_append_str(&order, ", ") : 0;
        rc |= quote_ident(&order, cols[i], mariadb);
        rc |= pt_buf_append_str(&order, desc ? " DESC" : " ASC");
    }
    if (after == NULL || after->type != PT_JSON_OBJECT) {
        rc |= pt_buf_append_str(&cond, "1 = 1");
    } else {
        rc |= pt_buf_append_char(&cond, '(');
        for (i = 0; i < ncols; i++) {
            rc |= i ? pt_buf_append_str(&cond, ", ") : 0;
            rc |= quote_ident(&cond, cols[i], mariadb);
        }
        rc |= pt_buf_append_str(&cond, desc ? ") < (" : ") > (");
        for (i = 0; i < ncols; i++)
            rc |= pt_buf_printf(&cond, "%s:__after%zu", i ? ", " : "", i);
        rc |= pt_buf_append_char(&cond, ')');
    }
    /* the text with both markers replaced */
    for (p = st->sql; *p != '\0';) {
        if (strncmp(p, "${order}", 8) == 0) {
            rc |= pt_buf_append(&sql, order.data, order.len);
            p += 8;
        } else if (strncmp(p, "${after}", 8) == 0) {
            rc |= pt_buf_append(&sql, cond.data, cond.len);
            p += 8;
        } else {
            rc |= pt_buf_append_char(&sql, *p++);
        }
    }
    d = pt_arena_alloc(a, sizeof(*d));
    if (rc != 0 || d == NULL)
        goto nomem;
    *d = *st;
    d->sql = pt_arena_strndup(a, sql.data, sql.len);
    k = after != NULL && after->type == PT_JSON_OBJECT ? ncols : 0;
    d->params = pt_arena_alloc(a, sizeof(*d->params) * (st->nparams + k + 1));
    args = pt_arena_alloc(a, sizeof(*args) * (st->nparams + k + 1));
    if (d->sql == NULL || d->params == NULL || args == NULL)
        goto nomem;
    if (st->nparams > 0) {
        memcpy(d->params, st->params, sizeof(*d->params) * st->nparams);
        memcpy(args, *argsp, sizeof(*args) * st->nparams);
    }
    for (i = 0; i < k; i++) {
        d->params[st->nparams + i].name = pt_arena_printf(a, "__after%zu", i);
        d->params[st->nparams + i].expr = NULL;
        args[st->nparams + i] = pt_json_get(after, cols[i]);
        if (d->params[st->nparams + i].name == NULL)
            goto nomem;
    }
    d->nparams = st->nparams + k;
    if (pt_sql_rewrite(a, d, why, sizeof(why)) != 0) {
        fail(x, 500, "internal-error", "page: %s", why);
        goto fail;
    }
    pt_buf_free(&order);
    pt_buf_free(&cond);
    pt_buf_free(&sql);
    *stp = d;
    *argsp = args;
    return PT_OK;
nomem:
    fail(x, 500, "internal-error", "%s", "Out of memory.");
fail:
    pt_buf_free(&order);
    pt_buf_free(&cond);
    pt_buf_free(&sql);
    return PT_ERROR;
}

static int step_sql(run_t *r, const pt_step_def_t *st, pt_json_t **result)
{
    exec_t *x = r->x;
    pt_db_t *db = x->rt->dbs[st->connection];
    pt_json_t **args = NULL;
    pt_db_error_t e;
    size_t i;
    int rc;

    if (db == NULL) {
        fail(x, 501, "not-implemented", "The %s connection kind has no driver in this build.",
             x->api->connections[st->connection].name);
        return PT_ERROR;
    }
    if (r->conns[st->connection] == NULL) {
        uint64_t now = uv_hrtime();
        uint32_t wait = r->deadline > now ? (uint32_t)((r->deadline - now) / 1000000u) : 0;
        r->conns[st->connection] = pt_db_borrow(db, wait, &e);
        if (r->conns[st->connection] == NULL)
            return db_failed(r, st, &e);
    }
    if (x->proc->transaction && !r->in_tx[st->connection]) {
        if (pt_db_begin(r->conns[st->connection], db, &e) != PT_OK)
            return db_failed(r, st, &e);
        r->in_tx[st->connection] = 1;
    }
    if (st->nparams > 0 && (args = pt_arena_calloc(&x->arena, sizeof(*args) * st->nparams)) == NULL)
        goto nomem;
    for (i = 0; i < st->nparams; i++)
        if (eval(r, st->params[i].expr, &args[i]) != PT_OK)
            return PT_ERROR;
    if (st->page_markers && (rc = expand_markers(r, &st, &args)) != PT_OK)
        return rc;
    if (r->trace != NULL && (r->step_input = pt_json_object(&x->arena)) != NULL)
        for (i = 0; i < st->nparams; i++)
            pt_json_object_set(&x->arena, r->step_input, st->params[i].name,
                               strlen(st->params[i].name), args[i]);
    if (x->rec != NULL) {
        r->cancel_conn = r->conns[st->connection];
        r->cancel_db = db;
        pt_exec_rec_set_canceller(x->rec, sql_cancel, r);
    }
    rc = pt_db_exec(r->conns[st->connection], db, st, args, r->deadline, &x->arena, result, &e);
    if (x->rec != NULL)
        pt_exec_rec_set_canceller(x->rec, NULL, NULL); /* waits for a cancel under way */
    if (rc != PT_OK && x->rec != NULL && pt_exec_rec_cancelled(x->rec)) {
        fail(x, 499, "cancelled", "Cancelled during step \"%s\".", st->name);
        return PT_EINVAL;
    }
    if (rc == PT_ERROR && e.broken) {
        /* the database dropped the connection (a restart): a fresh one, once,
         * unless a transaction was under way on the lost one */
        pt_db_return(db, r->conns[st->connection], 1);
        r->conns[st->connection] = NULL;
        if (r->in_tx[st->connection])
            return db_failed(r, st, &e);
        pt_log_info("%s: %s: connection lost, trying a fresh one", x->request_id,
                    x->api->connections[st->connection].display);
        r->conns[st->connection] = pt_db_borrow(db, 1000, &e);
        if (r->conns[st->connection] == NULL)
            return db_failed(r, st, &e);
        rc = pt_db_exec(r->conns[st->connection], db, st, args, r->deadline, &x->arena, result, &e);
        if (rc == PT_ERROR && e.broken) {
            pt_db_return(db, r->conns[st->connection], 1);
            r->conns[st->connection] = NULL;
        }
    }
    if (rc == PT_ENOENT) {
        if (st->not_found_status == 0)
            return (*result = pt_json_null(&x->arena)) != NULL ? PT_OK : PT_ENOMEM;
        fail(x,
             st->not_found_status == 404 ? x->proc->error_status[PT_PERR_NOT_FOUND]
                                         : st->not_found_status,
             "not-found", "%s", "No such resource.");
        return PT_ERROR;
    }
    if (rc != PT_OK)
        return db_failed(r, st, &e);
    return PT_OK;
nomem:
    fail(x, 500, "internal-error", "%s", "Out of memory.");
    return PT_ERROR;
}

static int map_fields(run_t *r, const pt_step_def_t *st, pt_json_t **out)
{
    pt_json_t *obj = pt_json_object(&r->x->arena), *v;
    size_t i;
    if (obj == NULL)
        return PT_ENOMEM;
    for (i = 0; i < st->nfields; i++) {
        if (eval(r, st->fields[i].expr, &v) != PT_OK)
            return PT_ERROR;
        if (pt_json_object_set(&r->x->arena, obj, st->fields[i].name, strlen(st->fields[i].name),
                               v) != PT_OK)
            return PT_ENOMEM;
    }
    *out = obj;
    return PT_OK;
}

static int step_map(run_t *r, const pt_step_def_t *st, pt_json_t **result)
{
    pt_arena_t *a = &r->x->arena;
    pt_json_t *over, *arr, *one;
    size_t i;
    int rc;
    if (st->over == NULL)
        return map_fields(r, st, result);
    if (eval(r, st->over, &over) != PT_OK)
        return PT_ERROR;
    if ((arr = pt_json_array(a)) == NULL)
        return PT_ENOMEM;
    if (over->type == PT_JSON_NULL) {
        *result = arr;
        return PT_OK;
    }
    if (over->type != PT_JSON_ARRAY) {
        fail(r->x, r->x->proc->error_status[PT_PERR_EXPRESSION], "expression-error",
             "map over: expected an array, got %s", pt_json_type_name(over->type));
        return PT_ERROR;
    }
    for (i = 0; i < over->u.arr.n; i++) {
        pt_json_t *idx = pt_json_int(a, (int64_t)i);
        if (idx == NULL || pt_json_object_set(a, r->ctx, "item", 4, over->u.arr.items[i]) ||
            pt_json_object_set(a, r->ctx, "index", 5, idx))
            return PT_ENOMEM;
        if ((rc = map_fields(r, st, &one)) != PT_OK)
            return rc;
        if (pt_json_array_add(a, arr, one) != PT_OK)
            return PT_ENOMEM;
    }
    *result = arr;
    return PT_OK;
}

static int step_http(run_t *r, const pt_step_def_t *st, pt_json_t **result)
{
    exec_t *x = r->x;
    const pt_connection_def_t *cd =
        st->http_connection >= 0 ? &x->api->connections[st->http_connection] : NULL;
    pt_http_call_t call;
    pt_json_t *v;
    size_t i;
    char err[256];
    int rc;

    memset(&call, 0, sizeof(call));
    call.method = st->http_method ? st->http_method : "GET";
    if (eval(r, st->http_url, &v) != PT_OK)
        return PT_ERROR;
    if (v->type != PT_JSON_STRING) {
        fail(x, x->proc->error_status[PT_PERR_EXPRESSION], "expression-error",
             "http step %s: the url is not a string", st->name);
        return PT_ERROR;
    }
    call.url = cd != NULL ? pt_arena_printf(&x->arena, "%s%s", cd->target, v->u.str.p) : v->u.str.p;
    call.headers = pt_arena_calloc(&x->arena, sizeof(*call.headers) * (st->nhttp_headers + 2));
    if (call.url == NULL || call.headers == NULL)
        return PT_ENOMEM;
    for (i = 0; i < st->nhttp_headers; i++) {
        pt_json_t *hv;
        if (eval(r, st->http_headers[i].expr, &hv) != PT_OK)
            return PT_ERROR;
        call.headers[call.nheaders].name = st->http_headers[i].name;
        call.headers[call.nheaders].value =
            hv->type == PT_JSON_STRING ? (char *)hv->u.str.p : (char *)"";
        call.nheaders++;
    }
    /* the call is a hop of the request's trace, unless the step sets its own */
    for (i = 0; i < call.nheaders && strcasecmp(call.headers[i].name, "traceparent") != 0; i++)
        ;
    if (x->traceparent[0] != '\0' && i == call.nheaders) {
        call.headers[call.nheaders].name = "traceparent";
        call.headers[call.nheaders++].value = x->traceparent;
    }
    if (st->http_body != NULL) {
        pt_json_t *b;
        if (eval(r, st->http_body, &b) != PT_OK)
            return PT_ERROR;
        call.body = b;
    }
    call.timeout_ms = st->http_timeout_ms;
    if (r->deadline != 0) {
        uint64_t now = uv_hrtime();
        uint64_t left = r->deadline > now ? (r->deadline - now) / 1000000u + 1 : 1;
        if (left < call.timeout_ms)
            call.timeout_ms = (uint32_t)left;
    }
    call.max_response = st->http_max_response;
    call.xml_root = st->http_xml_root;
    rc = pt_http_call(&call, &x->arena, result, err, sizeof(err));
    if (rc == PT_OK)
        return PT_OK;
    /* the URL of a connection may hold credentials: its display form goes to the log */
    pt_log_warn("%s: process \"%s\" step \"%s\": %s %s%s: %s", x->request_id, x->proc->name,
                st->name, call.method, cd != NULL ? cd->display : call.url,
                cd != NULL ? "/..." : "", err);
    if (rc == PT_AGAIN && r->deadline != 0 && uv_hrtime() >= r->deadline)
        fail(x, x->limits.timeout_status, "execution-timeout", "%s",
             "The process ran out of time.");
    else
        fail(x, x->proc->error_status[PT_PERR_HTTP], "bad-gateway",
             "The call of step %s failed: %s", st->name, err);
    return PT_ERROR;
}

static int step_script(run_t *r, const pt_step_def_t *st, pt_json_t **result)
{
    exec_t *x = r->x;
    pt_lua_limits_t lim = {st->script_memory, st->script_instructions, r->deadline};
    char err[512];
    pt_lua_status_t s = pt_lua_run(st->script_name, st->script, st->script_len, r->ctx, &lim,
                                   &x->arena, result, err, sizeof(err));
    static const char *const why[] = {"",
                                      "failed",
                                      "went over its memory cap",
                                      "went over its instruction budget",
                                      "ran out of time",
                                      "returned a value JSON cannot carry"};
    if (s == PT_LUA_OK)
        return PT_OK;
    pt_log_warn("%s: process \"%s\" step \"%s\": the script %s: %s", x->request_id, x->proc->name,
                st->name, why[s], err);
    if (s == PT_LUA_TIMEOUT)
        fail(x, x->limits.timeout_status, "execution-timeout", "%s",
             "The process ran out of time.");
    else
        fail(x, 500, "script-error", "The script of step %s %s.", st->name, why[s]);
    return PT_ERROR;
}

/* Renders a value as a response body: strings as text, the rest as JSON. */
static int render_soap(exec_t *x, const pt_json_t *v);

static int render_body(exec_t *x, const pt_json_t *v, int text_ok)
{
    if (x->soap)
        return render_soap(x, v);
    x->out.len = 0;
    if (v->type == PT_JSON_STRING && text_ok) {
        x->out_ctype = "text/plain; charset=utf-8";
        return pt_buf_append(&x->out, v->u.str.p, v->u.str.len);
    }
    if (x->want_xml) {
        x->out_ctype = "application/xml; charset=utf-8";
        return pt_xml_write(&x->out, "result", v);
    }
    x->out_ctype = "application/json";
    return pt_json_write(&x->out, v);
}

static int step_respond(run_t *r, const pt_step_def_t *st)
{
    exec_t *x = r->x;
    pt_json_t *v;
    size_t i;
    int has_ctype = 0;
    x->status = st->status;
    for (i = 0; i < st->nheaders && x->nout_headers < HEADERS_OUT_MAX; i++) {
        pt_buf_t hb;
        size_t k;
        char *val;
        if (eval(r, st->headers[i].expr, &v) != PT_OK)
            return PT_ERROR;
        pt_buf_init(&hb, 0);
        if (v->type == PT_JSON_STRING)
            pt_buf_append(&hb, v->u.str.p, v->u.str.len);
        else if (v->type != PT_JSON_NULL)
            pt_json_write(&hb, v);
        val = pt_arena_strndup(&x->arena, hb.data ? hb.data : "", hb.len);
        pt_buf_free(&hb);
        if (val == NULL)
            return PT_ENOMEM;
        for (k = 0; val[k] != '\0'; k++)
            if ((unsigned char)val[k] < 0x20 && val[k] != '\t')
                val[k] = ' '; /* a value never splits the response head */
        if (strcasecmp(st->headers[i].name, "content-type") == 0) {
            x->out_ctype = val;
            has_ctype = 1;
            continue;
        }
        x->out_headers[x->nout_headers].name = st->headers[i].name;
        x->out_headers[x->nout_headers].value = val;
        x->nout_headers++;
    }
    x->out.len = 0;
    if (st->body != NULL) {
        const char *keep = x->out_ctype;
        if (eval(r, st->body, &v) != PT_OK)
            return PT_ERROR;
        if (render_body(x, v, 1) != PT_OK)
            return PT_ENOMEM;
        if (has_ctype)
            x->out_ctype = keep;
    } else if (!has_ctype) {
        x->out_ctype = NULL;
    }
    r->responded = 1;
    return PT_OK;
}

/* Builds the context: method, path, query, header, body, user, vars, steps. */
#define SOAP11_NS PT_SOAP11_NS
#define SOAP12_NS PT_SOAP12_NS

/* A SOAP request: the envelope, its one Body element (the operation's
 * wrapper), the operation; *body becomes the wrapper's content. */
static int soap_request(exec_t *x, pt_json_t **body)
{
    const char *opname;
    char why[256];
    size_t i;

    if (pt_soap_read(&x->arena, x->body, x->body_len, x->soap, &opname, body, why, sizeof(why)) !=
        0) {
        fail(x, 400, strncmp(why, "The envelope is not", 19) == 0 ? "invalid-xml" : "bad-request",
             "%s", why);
        return PT_ERROR;
    }
    for (i = 0; i < x->api->nsoap_ops; i++)
        if (strcmp(x->api->soap_ops[i].name, opname) == 0)
            break;
    if (i == x->api->nsoap_ops) {
        fail(x, 400, "bad-request", "No operation %.80s in this API.", opname);
        return PT_ERROR;
    }
    if (x->soap_action != NULL && x->soap_action[0] != '\0') {
        /* the action, when given, names the same operation */
        size_t al = strlen(x->soap_action), ol = strlen(opname);
        if (al < ol || strcmp(x->soap_action + al - ol, opname) != 0 ||
            (al > ol && strchr("/#:", x->soap_action[al - ol - 1]) == NULL)) {
            fail(x, 400, "bad-request", "The SOAP action does not name operation %.80s.", opname);
            return PT_ERROR;
        }
    }
    x->route = &x->api->soap_ops[i];
    x->proc = &x->api->processes[x->route->process];
    if (x->route->body_schema != NULL)
        *body = pt_jschema_coerce(x->route->body_schema, *body, &x->arena);
    return PT_OK;
}

/* The answer of a SOAP operation: <{op}Response xmlns="{namespace}"> with
 * the result's members as (qualified) child elements. */
static int render_soap(exec_t *x, const pt_json_t *v)
{
    pt_buf_t *b = &x->out;
    const char *env = x->soap == 2 ? SOAP12_NS : SOAP11_NS;
    size_t i;
    int rc = 0;
    b->len = 0;
    x->out_ctype = x->soap == 2 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8";
    rc |=
        pt_buf_printf(b,
                      "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"%s\" "
                      "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soap:Body>"
                      "<%sResponse xmlns=\"",
                      env, x->route->name);
    rc |= pt_buf_append_xml_str(b, x->api->soap_namespace, strlen(x->api->soap_namespace));
    rc |= pt_buf_append_str(b, "\">");
    if (v != NULL && v->type == PT_JSON_OBJECT) {
        for (i = 0; i < v->u.obj.n; i++)
            rc |= pt_xml_write_element(b, v->u.obj.members[i].key, v->u.obj.members[i].value);
    } else if (v != NULL && v->type == PT_JSON_ARRAY) {
        rc |= pt_xml_write_element(b, "item", v);
    } else if (v != NULL && v->type != PT_JSON_NULL) {
        rc |= pt_xml_write_element(b, "result", v);
    }
    rc |= pt_buf_printf(b, "</%sResponse></soap:Body></soap:Envelope>", x->route->name);
    return rc != 0 ? PT_ENOMEM : PT_OK;
}

static int build_context(run_t *r)
{
    exec_t *x = r->x;
    pt_arena_t *a = &x->arena;
    pt_json_t *ctx = pt_json_object(a), *body = NULL, *q, *m;
    pt_json_error_t jerr;
    size_t i;

    if (ctx == NULL || (m = pt_json_string(a, x->method, strlen(x->method))) == NULL ||
        (q = query_object(a, x->query ? x->query : "", x->query_len)) == NULL ||
        (r->steps = pt_json_object(a)) == NULL)
        return PT_ENOMEM;
    if (x->route->nquery > 0) {
        int rc = typed_query(x, q);
        if (rc != PT_OK)
            return rc;
    }
    if (x->soap) {
        int rc = soap_request(x, &body);
        if (rc != PT_OK)
            return rc;
    } else if (x->body_len > 0) {
        if (media_is_json(x->ctype)) {
            pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
            body = pt_json_parse(a, x->body, x->body_len, &lim, &jerr);
            if (body == NULL) {
                char msg[200];
                snprintf(msg, sizeof(msg), "line %u, column %u: %s", jerr.line, jerr.column,
                         jerr.message);
                fail(x, 400, "invalid-json", "The body is not valid JSON: %s", msg);
                return PT_ERROR;
            }
        } else if (media_is_xml(x->ctype)) {
            /* the same tree as a JSON body; typed by the schema */
            pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
            const char *root, *ns;
            body = pt_xml_parse(a, x->body, x->body_len, &lim, &root, &ns, &jerr);
            if (body == NULL) {
                char msg[200];
                snprintf(msg, sizeof(msg), "line %u: %s", jerr.line, jerr.message);
                fail(x, 400, "invalid-xml", "The body is not acceptable XML: %s", msg);
                return PT_ERROR;
            }
            if (x->route->body_schema != NULL)
                body = pt_jschema_coerce(x->route->body_schema, body, a);
        } else if (media_is_text(x->ctype) && x->route->body_schema == NULL) {
            body = pt_json_string(a, x->body, x->body_len);
        } else {
            fail(x, 415, "unsupported-media-type", "This route takes %s bodies.",
                 x->route->body_schema != NULL ? "application/json or application/xml"
                                               : "application/json, application/xml or text/plain");
            return PT_ERROR;
        }
    } else {
        body = pt_json_null(a);
    }
    if (body == NULL)
        return PT_ENOMEM;
    if (x->route->body_schema != NULL) {
        pt_json_t *viol = NULL;
        int n = pt_jschema_validate(x->route->body_schema, body, PT_JSCHEMA_REQUEST, a,
                                    MAX_VIOLATIONS, &viol);
        if (n < 0)
            return PT_ENOMEM;
        if (n > 0) {
            char msg[32];
            snprintf(msg, sizeof(msg), "%d", n);
            fail(x, 400, "validation-failed", "The body does not match the schema (%s violations).",
                 msg);
            x->violations = viol;
            return PT_ERROR;
        }
    }
    for (i = 0; i < x->proc->nsteps; i++)
        if (x->proc->steps[i].npage_by > 0) {
            pt_json_t *page = NULL;
            int rc = page_context(x, &x->proc->steps[i], q, body, &page);
            if (rc != PT_OK)
                return rc;
            if (pt_json_object_set(a, ctx, "page", 4, page) != PT_OK)
                return PT_ENOMEM;
            break;
        }
    if (pt_json_object_set(a, ctx, "method", 6, m) ||
        pt_json_object_set(a, ctx, "path", 4, x->path_params) ||
        pt_json_object_set(a, ctx, "query", 5, q) ||
        pt_json_object_set(a, ctx, "header", 6, x->headers) ||
        pt_json_object_set(a, ctx, "body", 4, body) ||
        pt_json_object_set(a, ctx, "user", 4, x->user != NULL ? x->user : pt_json_null(a)) ||
        pt_json_object_set(a, ctx, "vars", 4, pt_json_object(a)) ||
        pt_json_object_set(a, ctx, "steps", 5, r->steps))
        return PT_ENOMEM;
    r->ctx = ctx;
    return PT_OK;
}

/* On a pool thread. */
/* A copy of v with the values of secret-looking members replaced. */
static pt_json_t *redacted(pt_arena_t *a, const pt_json_t *v, int depth)
{
    static const char *const secret[] = {"password",      "passwd",     "secret", "token",
                                         "authorization", "api_key",    "apikey", "x-api-key",
                                         "cookie",        "credential", NULL};
    pt_json_t *out;
    size_t i, k;
    if (v == NULL || depth > 32)
        return pt_json_null(a);
    if (v->type == PT_JSON_OBJECT) {
        if ((out = pt_json_object(a)) == NULL)
            return NULL;
        for (i = 0; i < v->u.obj.n; i++) {
            const pt_json_member_t *m = &v->u.obj.members[i];
            int hide = 0;
            for (k = 0; secret[k] != NULL && !hide; k++)
                hide = strcasestr(m->key, secret[k]) != NULL;
            pt_json_object_set(a, out, m->key, m->key_len,
                               hide ? pt_json_string(a, "[redacted]", 10)
                                    : redacted(a, m->value, depth + 1));
        }
        return out;
    }
    if (v->type == PT_JSON_ARRAY) {
        if ((out = pt_json_array(a)) == NULL)
            return NULL;
        for (i = 0; i < v->u.arr.n; i++)
            pt_json_array_add(a, out, redacted(a, v->u.arr.items[i], depth + 1));
        return out;
    }
    return (pt_json_t *)v;
}

static void trace_step(run_t *r, const pt_step_def_t *st, uint64_t t0, pt_json_t *res)
{
    static const char *const kinds[] = {"?", "sql", "map", "respond", "script", "http"};
    pt_arena_t *a = &r->x->arena;
    pt_json_t *e = pt_json_object(a);
    if (e == NULL)
        return;
    pt_json_object_set(a, e, "step", 4, pt_json_string(a, st->name, strlen(st->name)));
    pt_json_object_set(a, e, "kind", 4,
                       pt_json_string(a, kinds[st->kind % 6], strlen(kinds[st->kind % 6])));
    pt_json_object_set(a, e, "ms", 2, pt_json_double(a, (double)(uv_hrtime() - t0) / 1e6));
    if (r->step_input != NULL)
        pt_json_object_set(a, e, "input", 5, redacted(a, r->step_input, 0));
    pt_json_object_set(a, e, "output", 6, redacted(a, res, 0));
    pt_json_array_add(a, r->trace, e);
    r->step_input = NULL;
}

static void trace_store(run_t *r)
{
    pt_buf_t b;
    pt_json_t *doc;
    if (r->trace == NULL || r->x->rec == NULL)
        return;
    pt_buf_init(&b, 0);
    doc = pt_json_object(&r->x->arena);
    if (doc != NULL &&
        pt_json_object_set(&r->x->arena, doc, "request", 7, redacted(&r->x->arena, r->ctx, 0)) ==
            PT_OK &&
        pt_json_object_set(&r->x->arena, doc, "steps", 5, r->trace) == PT_OK &&
        pt_json_write(&b, doc) == PT_OK)
        pt_exec_rec_set_debug(r->x->rec, b.data, b.len);
    pt_buf_free(&b);
}

static void exec_run(pt_job_t *job)
{
    exec_t *x = pt_container_of(job, exec_t, job);
    const pt_process_def_t *p = x->proc;
    size_t nconn = x->api->nconnections, i;
    run_t r;
    int rc = PT_OK;

    memset(&r, 0, sizeof(r));
    r.x = x;
    if (atomic_load_explicit(&x->abandoned, memory_order_relaxed)) {
        /* nobody waits for it: under overload, queued work of clients that
         * gave up is not done (once started, an execution runs to its end) */
        pt_log_debug("%s: process \"%s\" not run: the client left while it waited", x->request_id,
                     p->name);
        fail(x, 499, "client-closed-request", "%s", "The client left.");
        record(x, PT_EXEC_ABORTED, 0);
        return;
    }
    if (x->rec != NULL && pt_exec_rec_cancelled(x->rec)) {
        fail(x, 499, "cancelled", "%s", "Cancelled before it ran.");
        record(x, PT_EXEC_ABORTED, 0);
        return;
    }
    if (x->rec != NULL)
        pt_exec_rec_started(x->rec);
    r.deadline = x->limits.max_execution_ms
                     ? job->queued_ns + (uint64_t)x->limits.max_execution_ms * 1000000u
                     : 0;
    x->status = 200;
    r.conns = pt_arena_calloc(&x->arena, sizeof(*r.conns) * (nconn + 1));
    r.in_tx = pt_arena_calloc(&x->arena, sizeof(*r.in_tx) * (nconn + 1));
    if (r.conns == NULL || r.in_tx == NULL)
        rc = PT_ENOMEM;
    else
        rc = build_context(&r);
    if (x->debug)
        r.trace = pt_json_array(&x->arena);
    p = x->proc; /* SOAP: the operation is known once the envelope is read */
    for (i = 0; rc == PT_OK && i < p->nsteps && !r.responded; i++) {
        const pt_step_def_t *st = &p->steps[i];
        pt_json_t *res = NULL, *cond;
        uint64_t t0 = uv_hrtime();
        if (r.deadline != 0 && uv_hrtime() > r.deadline) {
            fail(x, x->limits.timeout_status, "execution-timeout", "%s",
                 "The process ran out of time.");
            rc = PT_ERROR;
            break;
        }
        if (x->rec != NULL && pt_exec_rec_cancelled(x->rec)) {
            /* cooperative: between steps; the transaction is rolled back below */
            fail(x, 499, "cancelled", "Cancelled before step \"%s\".", st->name);
            rc = PT_EINVAL;
            break;
        }
        if (st->when != NULL) {
            if ((rc = eval(&r, st->when, &cond)) != PT_OK)
                break;
            if (!pt_json_truthy(cond))
                continue;
        }
        switch (st->kind) {
        case PT_STEP_SQL:
            rc = step_sql(&r, st, &res);
            if (rc == PT_OK && st->npage_by > 0 && res != NULL)
                rc = page_result(x, st, pt_json_get(r.ctx, "page"), res);
            break;
        case PT_STEP_MAP:
            rc = step_map(&r, st, &res);
            break;
        case PT_STEP_RESPOND:
            rc = step_respond(&r, st);
            res = NULL;
            break;
        case PT_STEP_SCRIPT:
            rc = step_script(&r, st, &res);
            break;
        case PT_STEP_HTTP:
            rc = step_http(&r, st, &res);
            break;
        }
        if (r.trace != NULL)
            trace_step(&r, st, t0, rc == PT_OK ? res : NULL);
        if (rc == PT_OK && res != NULL) {
            r.last = res;
            if (pt_json_object_set(&x->arena, r.steps, st->name, strlen(st->name), res) != PT_OK)
                rc = PT_ENOMEM;
        }
    }
    trace_store(&r);
    /* all or nothing */
    for (i = 0; i < nconn; i++) {
        if (r.conns == NULL || r.conns[i] == NULL)
            continue;
        if (r.in_tx[i]) {
            pt_db_error_t e;
            if (rc == PT_OK && pt_db_commit(r.conns[i], x->rt->dbs[i], &e) != PT_OK) {
                pt_log_warn("%s: process \"%s\": commit failed: %s", x->request_id, p->name,
                            e.message);
                fail(x, x->proc->error_status[e.kind], error_type(e.kind), "%s",
                     "The transaction could not be committed.");
                rc = PT_ERROR;
            }
            if (rc != PT_OK)
                pt_db_rollback(r.conns[i], x->rt->dbs[i]);
        }
        pt_db_return(x->rt->dbs[i], r.conns[i], 0);
    }
    if (rc == PT_ENOMEM)
        fail(x, 500, "internal-error", "%s", "Out of memory.");
    if (rc == PT_OK && r.responded && x->soap && x->status < 300) {
        /* SOAP: success is a 200 with a response element, even without a body */
        if (x->out.len == 0 && render_soap(x, NULL) != PT_OK)
            fail(x, 500, "internal-error", "%s", "Out of memory.");
        else
            x->status = 200;
    }
    if (rc != PT_OK || r.responded) {
        record(x,
               rc == PT_EINVAL && x->ptype != NULL && strcmp(x->ptype, "cancelled") == 0
                   ? PT_EXEC_ABORTED
               : x->ptype != NULL ? PT_EXEC_ERROR
                                  : PT_EXEC_COMPLETE,
               1);
        return;
    }
    /* no respond step: the last result as JSON */
    if (r.last == NULL && !x->soap) {
        x->status = 204;
        x->out_ctype = NULL;
        record(x, PT_EXEC_COMPLETE, 1);
        return;
    }
    if (render_body(x, r.last, 0) != PT_OK)
        fail(x, 500, "internal-error", "%s", "Out of memory.");
    record(x, x->ptype != NULL ? PT_EXEC_ERROR : PT_EXEC_COMPLETE, 1);
}

/* Back on the loop. */
/* The execution's outcome, run time and sizes, and its wait in the queue,
 * into the worker's metrics (on its loop). */
static void exec_metrics(exec_t *x, pt_job_status_t status)
{
    pt_wmetrics_t *m = x->job.worker != NULL ? x->job.worker->metrics : NULL;
    pt_mexec_t o;
    uint64_t ran_us = 0;
    if (m == NULL || !pt_metrics_enabled)
        return;
    if (status == PT_JOB_QUEUE_TIMEOUT)
        o = PT_MX_QUEUE_TIMEOUT;
    else if (status == PT_JOB_CANCELED ||
             (x->ptype != NULL && (strcmp(x->ptype, "cancelled") == 0 ||
                                   strcmp(x->ptype, "client-closed-request") == 0)))
        o = PT_MX_CANCELED;
    else if (x->ptype != NULL && strcmp(x->ptype, "execution-timeout") == 0)
        o = PT_MX_TIMEOUT;
    else if (x->status >= 500)
        o = PT_MX_SERVER_ERROR;
    else if (x->status >= 400)
        o = PT_MX_CLIENT_ERROR;
    else
        o = PT_MX_OK;
    if (x->job.started_ns != 0) {
        if (status == PT_JOB_DONE)
            ran_us = (x->job.ended_ns - x->job.started_ns) / 1000;
        if (pt_metrics_qwait != 0)
            pt_mseries_record(&m->series[pt_metrics_qwait], 1,
                              (x->job.started_ns - x->job.queued_ns) / 1000, 0, 0);
    }
    pt_mseries_record(&m->series[x->proc->metric < PT_M_SERIES_MAX ? x->proc->metric : 0],
                      (unsigned)o + 1, ran_us, x->body_len, x->out.len);
}

static void exec_done(pt_job_t *job, pt_job_status_t status)
{
    exec_t *x = pt_container_of(job, exec_t, job);
    pt_req_t *req = x->req;
    pt_header_kv_t hdrs[HEADERS_OUT_MAX + 3];
    size_t nh = 0, i;

    exec_metrics(x, status);
    if (req == NULL && (status == PT_JOB_QUEUE_TIMEOUT || status == PT_JOB_CANCELED)) {
        /* answered 202 before: its record says it never ran */
        fail(x, 503, "busy", "%s",
             status == PT_JOB_CANCELED ? "The node stopped before it ran."
                                       : "It waited too long for a free process worker.");
        record(x, status == PT_JOB_CANCELED ? PT_EXEC_ABORTED : PT_EXEC_DISCARDED, 0);
    }
    if (req != NULL) {
        hdrs[nh].name = "X-Execution-Id";
        hdrs[nh++].value = x->exec_id;
        if (status == PT_JOB_QUEUE_TIMEOUT || status == PT_JOB_CANCELED) {
            x->status = 503;
            record(x, PT_EXEC_DISCARDED, 0);
            hdrs[nh].name = "Retry-After";
            hdrs[nh++].value = "1";
            pt_http_problem(req, 503, "busy",
                            status == PT_JOB_CANCELED
                                ? "The node is stopping."
                                : "The process waited too long for a free process worker.",
                            hdrs, nh);
        } else if (x->ptype != NULL) {
            if (x->status == 503) {
                hdrs[nh].name = "Retry-After";
                hdrs[nh++].value = "1";
            }
            pt_http_problem_ext(req, x->status, x->ptype, x->detail, hdrs, nh, "errors",
                                x->violations);
        } else {
            if (x->next_link != NULL) {
                hdrs[nh].name = "Link";
                hdrs[nh++].value = x->next_link;
            }
            for (i = 0; i < x->nout_headers && nh < PT_ARRAY_SIZE(hdrs); i++)
                hdrs[nh++] = x->out_headers[i];
            pt_http_respond(req, x->status, hdrs, nh, x->out_ctype, x->out.data, x->out.len);
        }
    }
    exec_free(x);
}

/* Nobody will wait for the execution any more: 202 to its client, which
 * may poll the record; the result is kept for it. 0, or -1 when the
 * execution already ended (its own answer is on the way: no 202). */
static int answer_accepted(exec_t *x, int kept)
{
    pt_req_t *req = x->req;
    pt_header_kv_t hdrs[5];
    char body[512];
    int n;
    if (!kept &&
        pt_exec_rec_keep_result(x->rec, x->retention_ms, x->max_result, x->drop_large) != 0)
        return -1;
    /* the client may leave now: the execution goes on */
    x->link->exec = NULL;
    x->link = NULL;
    x->req = NULL;
    hdrs[0] = (pt_header_kv_t){"X-Execution-Id", x->exec_id};
    hdrs[1] = (pt_header_kv_t){"X-Execution-Status-Link", x->status_link};
    hdrs[2] = (pt_header_kv_t){"Location", x->status_link};
    hdrs[3] = (pt_header_kv_t){"Retry-After", "1"};
    hdrs[4] = (pt_header_kv_t){"Cache-Control", "no-store"};
    n = snprintf(body, sizeof(body),
                 "{\"id\":\"%s\",\"status\":\"%s\",\"links\":{\"status\":\"%s\","
                 "\"result\":\"%s/result\"}}",
                 x->exec_id, pt_exec_status_name(pt_exec_rec_status(x->rec)), x->status_link,
                 x->status_link);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = snprintf(body, sizeof(body), "{\"id\":\"%s\"}", x->exec_id);
    pt_http_respond(req, 202, hdrs, 5, "application/json", body, (size_t)n);
    return 0;
}

static void on_max_wait(uv_timer_t *t)
{
    exec_t *x = t->data;
    if (x->req != NULL && answer_accepted(x, 0) == 0)
        pt_log_debug("%s: process \"%s\": past X-Max-Wait (%u ms): 202, execution %s goes on",
                     x->request_id, x->proc->name, (unsigned)x->wait_ms, x->exec_id);
}

static void exec_submit(exec_t *x)
{
    pt_req_t *req = x->req;
    pt_worker_t *w = req->snap->worker;
    x->submitted = 1;
    x->enqueued_ms = pt_wall_ms();
    x->snap = req->snap->snap;
    pt_snapshot_ref(x->snap);
    x->job.run = exec_run;
    x->job.done = exec_done;
    x->job.worker = w;
    if (!x->proc->low_latency || x->async || x->wait_ms > 0 || x->route->nwebhooks > 0 ||
        x->client_webhook != NULL || x->debug) {
        pt_exec_info_t info = {x->exec_id,
                               x->api->name,
                               x->route->name,
                               x->proc->name,
                               req->user != NULL ? req->user->name : NULL,
                               x->snap->generation,
                               x->body_len};
        if ((x->rec = pt_exec_rec_new(&info)) == NULL) {
            pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
            exec_free(x);
            return;
        }
    }
    if (x->async) /* nobody waits: kept from the start, whenever it ends */
        pt_exec_rec_keep_result(x->rec, x->retention_ms, x->max_result, x->drop_large);
    if (w->procpool == NULL || pt_procpool_submit(w->procpool, &x->job) != PT_OK) {
        static const pt_header_kv_t retry[] = {{"Retry-After", "1"}};
        pt_log_warn("%s: process \"%s\": the process pool is full", x->request_id, x->proc->name);
        if (x->rec != NULL) {
            fail(x, 503, "busy", "%s", "Every process worker was busy.");
            x->refused = 1;
            record(x, PT_EXEC_DISCARDED, 0);
        }
        pt_http_problem(req, 503, "busy", "Every process worker is busy; try again shortly.", retry,
                        1);
        exec_free(x); /* after the answer: the link is still set until here */
        return;
    }
    if (x->async) {
        answer_accepted(x, 1);
    } else if (x->wait_ms > 0 && (x->timer = malloc(sizeof(*x->timer))) != NULL) {
        uv_timer_init(&w->loop, x->timer);
        x->timer->data = x;
        uv_timer_start(x->timer, on_max_wait, x->wait_ms, 0);
    }
}

static void on_body(pt_req_t *req, const char *data, size_t len)
{
    link_t *l = req->hook_data;
    exec_t *x = l->exec;
    if (x == NULL || x->ptype != NULL)
        return;
    if (pt_arena_append(&x->arena, &x->body, &x->body_len, data, len) != PT_OK)
        fail(x, 500, "internal-error", "%s", "Out of memory.");
}

static void on_complete(pt_req_t *req)
{
    link_t *l = req->hook_data;
    exec_t *x = l->exec;
    if (x == NULL)
        return;
    if (x->ptype != NULL) {
        x->submitted = 1; /* freed here, not by the request's cleanup */
        pt_http_problem(req, x->status, x->ptype, x->detail, NULL, 0);
        exec_free(x);
        return;
    }
    exec_submit(x);
}

/* Copies what the process may see of req into x (on the loop). */
static int copy_inputs(exec_t *x, pt_req_t *req)
{
    pt_arena_t *a = &x->arena;
    const pt_str_t *ct = pt_http_header(req, "content-type");
    unsigned i;
    size_t k;

    if ((x->method = pt_arena_strndup(a, req->method, req->method_len)) == NULL ||
        (x->path = pt_arena_strndup(a, req->path.p, req->path.len)) == NULL ||
        (x->path_params = pt_json_object(a)) == NULL || (x->headers = pt_json_object(a)) == NULL)
        return PT_ENOMEM;
    if (req->query.len > 0 &&
        (x->query = pt_arena_strndup(a, req->query.p, req->query.len)) == NULL)
        return PT_ENOMEM;
    x->query_len = req->query.len;
    if (ct != NULL && (x->ctype = pt_arena_strndup(a, ct->p, ct->len)) == NULL)
        return PT_ENOMEM;
    if (req->user != NULL) {
        /* copied: the process may outlive the snapshot's users */
        pt_json_t *roles = pt_json_array(a);
        if ((x->user = pt_json_object(a)) == NULL || roles == NULL ||
            pt_json_object_set(a, x->user, "name", 4,
                               pt_json_string(a, req->user->name, strlen(req->user->name))) ||
            pt_json_object_set(a, x->user, "roles", 5, roles))
            return PT_ENOMEM;
        for (k = 0; k < req->user->nroles; k++)
            if (pt_json_array_add(
                    a, roles,
                    pt_json_string(a, req->user->roles[k], strlen(req->user->roles[k]))) != PT_OK)
                return PT_ENOMEM;
    }
    for (i = 0; i < req->match.nparams; i++) {
        const pt_route_param_t *pp = &req->match.params[i];
        size_t vl;
        char *v = pct_decode(a, pp->value.p, pp->value.len, 0, &vl);
        pt_json_t *jv = v ? pt_json_string(a, v, vl) : NULL;
        if (jv == NULL ||
            pt_json_object_set(a, x->path_params, pp->name.p, pp->name.len, jv) != PT_OK)
            return PT_ENOMEM;
    }
    /* only the API's declared headers, and X-WSS-* (DESIGN.md §9) */
    for (i = 0; i < req->nheaders; i++) {
        const pt_http_header_t *h = &req->headers[i];
        int ok = h->name.len > 6 && strncasecmp(h->name.p, "x-wss-", 6) == 0;
        char *lname;
        pt_json_t *jv;
        for (k = 0; !ok && k < x->api->ncustom_headers; k++)
            ok = pt_str_ieq(h->name.p, h->name.len, x->api->custom_headers[k]);
        if (!ok)
            continue;
        if ((lname = pt_arena_strndup(a, h->name.p, h->name.len)) == NULL ||
            (jv = pt_json_string(a, h->value.p, h->value.len)) == NULL)
            return PT_ENOMEM;
        for (k = 0; lname[k] != '\0'; k++)
            if (lname[k] >= 'A' && lname[k] <= 'Z')
                lname[k] = (char)(lname[k] + 32);
        if (pt_json_object_set(a, x->headers, lname, h->name.len, jv) != PT_OK)
            return PT_ENOMEM;
    }
    return PT_OK;
}

static void start(pt_req_t *req, const pt_route_def_t *route, int soap);

void pt_process_handle(pt_req_t *req)
{
    start(req, req->match.route, 0);
}

void pt_process_handle_soap(pt_req_t *req, int version)
{
    req->soap_endpoint = 1;
    start(req, &req->match.api->soap_ops[0], version);
}

static void start(pt_req_t *req, const pt_route_def_t *route, int soap)
{
    const pt_snapshot_t *s = req->snap->snap;
    const pt_api_def_t *api = req->match.api;
    size_t ai = (size_t)(api - s->config->apis);
    exec_t *x = calloc(1, sizeof(*x));
    link_t *l = pt_arena_calloc(pt_http_req_arena(req), sizeof(*l));

    if (x == NULL || l == NULL || s->services == NULL || s->services[ai] == NULL ||
        pt_arena_cleanup_add(pt_http_req_arena(req), link_cleanup, l) != PT_OK) {
        free(x);
        pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        return;
    }
    pt_arena_init(&x->arena, NULL);
    pt_buf_init(&x->out, 0);
    l->exec = x;
    x->link = l;
    x->req = req;
    x->api = api;
    x->route = route;
    x->proc = &api->processes[x->route->process];
    x->soap = soap;
    x->rt = s->services[ai];
    x->limits.max_execution_ms = s->config->processes.max_execution_ms;
    x->limits.timeout_status = s->config->processes.timeout_status;
    x->retention_ms = s->config->processes.result_retention_ms;
    x->max_result = s->config->processes.max_result_size;
    x->drop_large = s->config->processes.drop_large_results;
    x->async = route->async;
    x->wait_ms = route->max_wait_ms;
    snprintf(x->request_id, sizeof(x->request_id), "%.*s", (int)req->request_id_len,
             req->request_id);
    if (req->traced)
        snprintf(x->traceparent, sizeof(x->traceparent), "00-%s-%s-%s", req->trace_id, req->span_id,
                 req->trace_flags);
    pt_records_new_id(x->exec_id);
    x->want_xml = pt_http_prefers_xml(req);
    {
        /* X-Max-Wait: milliseconds (at most processes.max_wait) */
        const pt_str_t *mw = pt_http_header(req, "x-max-wait");
        if (mw != NULL) {
            uint64_t v = 0;
            size_t k;
            for (k = 0; k < mw->len && k < 10 && mw->p[k] >= '0' && mw->p[k] <= '9'; k++)
                v = v * 10 + (uint64_t)(mw->p[k] - '0');
            if (mw->len == 0 || k != mw->len || v == 0) {
                x->submitted = 1; /* freed here, not by the request's cleanup */
                pt_http_problem(req, 400, "bad-request",
                                "X-Max-Wait is a positive number of milliseconds.", NULL, 0);
                exec_free(x);
                return;
            }
            x->wait_ms = (uint32_t)PT_MIN(v, (uint64_t)s->config->processes.max_wait_ms);
        } else if (x->wait_ms > s->config->processes.max_wait_ms) {
            x->wait_ms = s->config->processes.max_wait_ms;
        }
    }
    {
        /* X-Portico-Debug: true records this execution in full, for users
         * with the debug role (ignored for anyone else) */
        const pt_str_t *dbg = pt_http_header(req, "x-portico-debug");
        size_t k;
        if (dbg != NULL && pt_str_ieq(dbg->p, dbg->len, "true") && req->user != NULL)
            for (k = 0; k < req->user->nroles; k++)
                if (strcmp(req->user->roles[k], "debug") == 0)
                    x->debug = 1;
    }
    {
        /* X-Portico-Webhook: the client's own URL, on an allowed host only */
        const pt_str_t *wh = pt_http_header(req, "x-portico-webhook");
        if (wh != NULL) {
            if (!pt_webhook_url_allowed(&s->config->webhooks, wh->p, wh->len) ||
                s->config->webhooks.secret == NULL || wh->len > 1024) {
                x->submitted = 1;
                pt_http_problem(req, 400, "bad-request",
                                "X-Portico-Webhook must be an http(s) URL on one of the node's "
                                "allowed webhook hosts.",
                                NULL, 0);
                exec_free(x);
                return;
            }
            x->client_webhook = pt_arena_strndup(&x->arena, wh->p, wh->len);
        }
    }
    if (x->async || x->wait_ms > 0) {
        pt_buf_t link;
        pt_buf_init(&link, 0);
        pt_gateway_origin(req, &link);
        pt_buf_printf(&link, "/_portico/executions/%s", x->exec_id);
        x->status_link =
            link.data != NULL ? pt_arena_strndup(&x->arena, link.data, link.len) : NULL;
        pt_buf_free(&link);
        if (x->status_link == NULL) {
            x->submitted = 1;
            pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
            exec_free(x);
            return;
        }
    }
    if (soap) {
        /* SOAPAction (1.1, quoted) or the action parameter of the media type (1.2) */
        const pt_str_t *h = pt_http_header(req, soap == 1 ? "soapaction" : "content-type");
        if (h != NULL) {
            const char *p = h->p, *e = h->p + h->len, *q;
            if (soap == 2) {
                const char *act = memmem(h->p, h->len, "action=", 7);
                p = act != NULL ? act + 7 : e;
            }
            while (p < e && (*p == '"' || *p == ' '))
                p++;
            for (q = p; q < e && *q != '"' && *q != ';'; q++)
                ;
            x->soap_action = pt_arena_strndup(&x->arena, p, (size_t)(q - p));
        }
    }
    if (copy_inputs(x, req) != PT_OK) {
        x->submitted = 1; /* freed here, not by the request's cleanup */
        pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        exec_free(x);
        return;
    }
    if (req->chunked || req->content_length > 0) {
        req->hook_data = l;
        req->on_body = on_body;
        req->on_complete = on_complete;
        return;
    }
    exec_submit(x);
}

/* ------------------------------------------------------------------ warm-up */

struct pt_warm_s {
    uv_thread_t thread;
    pt_snapshot_t *snap; /* one reference while the thread runs */
    struct pt_warm_s *next;
};

static void warm_main(void *arg)
{
    pt_warm_t *w = arg;
    const pt_config_t *cfg = w->snap->config;
    size_t i, j;
    for (i = 0; i < cfg->napis; i++) {
        const pt_service_rt_t *rt = w->snap->services[i];
        if (rt == NULL)
            continue;
        for (j = 0; j < rt->api->nconnections; j++) {
            const pt_connection_def_t *cd = &rt->api->connections[j];
            pt_db_error_t e;
            unsigned open;
            if (cd->pool_min == 0 || rt->dbs[j] == NULL)
                continue;
            memset(&e, 0, sizeof(e));
            open = pt_db_warm(rt->dbs[j], cd->pool_min, &e);
            if (open < cd->pool_min)
                pt_log_warn("API \"%s\": connections.%s: %u of pool.min %u open (%s); the rest "
                            "on demand",
                            rt->api->name, cd->name, open, cd->pool_min, e.message);
            else
                pt_log_info("API \"%s\": connections.%s: %u connections open (pool.min)",
                            rt->api->name, cd->name, open);
        }
    }
    pt_snapshot_unref(w->snap);
    w->snap = NULL;
}

pt_warm_t *pt_service_warm_start(pt_snapshot_t *s, pt_warm_t *prev)
{
    const pt_config_t *cfg = s->config;
    pt_warm_t *w;
    size_t i, j;
    int any = 0;
    for (i = 0; i < cfg->napis && !any; i++)
        for (j = 0; s->services != NULL && s->services[i] != NULL && j < cfg->apis[i].nconnections;
             j++)
            any |= cfg->apis[i].connections[j].pool_min > 0;
    if (!any || (w = calloc(1, sizeof(*w))) == NULL)
        return prev;
    w->snap = s;
    pt_snapshot_ref(s);
    w->next = prev;
    if (uv_thread_create(&w->thread, warm_main, w) != 0) {
        pt_snapshot_unref(s);
        free(w);
        return prev;
    }
    return w;
}

void pt_service_warm_join(pt_warm_t *w)
{
    while (w != NULL) {
        pt_warm_t *next = w->next;
        uv_thread_join(&w->thread);
        free(w);
        w = next;
    }
}
