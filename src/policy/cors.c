/*
 * cors.c - the `cors` policy (Fetch standard, CORS protocol): which web
 * origins may call an API from a browser.
 *
 * ("(star)" stands for '*': one or more host characters.)
 * It runs first in the chain: a preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered 204 here, without
 * authentication, and the answers of later policies (401, 403, 429) carry
 * the headers a browser needs to read them. An allowed origin gets
 * Access-Control-Allow-Origin (the origin itself, or "*" for `origins: ["*"]`
 * without credentials), -Allow-Credentials, -Expose-Headers and, on
 * preflights, -Allow-Methods, -Allow-Headers and -Max-Age. A refused origin
 * (or method or header) gets no Access-Control-* header at all, whatever the
 * handler or the upstream would send.
 *
 *   policies:
 *     cors:
 *       origins: ["https://app.example.com", "https://(star).example.com"]
 *       methods: [GET, POST]          # default GET, HEAD, POST, PUT, PATCH, DELETE
 *       headers: [Content-Type, Authorization]   # default: any the browser asks for
 *       expose_headers: [X-Request-Id]
 *       credentials: true
 *       max_age: 10m
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "http/http.h"
#include "policy/policy.h"

typedef struct cors_s {
    char **origins; /* exact, or with one '*' (one or more of [A-Za-z0-9.-]) */
    size_t norigins;
    int any_origin; /* "*" */
    char *methods;  /* "GET, POST" */
    char **headers; /* lower-case; NULL = any requested */
    size_t nheaders;
    char *headers_value; /* "Content-Type, Authorization" */
    char *expose;        /* NULL = none */
    int credentials;
    char max_age[24]; /* "" = not sent */
} cors_t;

static const char *const keys[] = {"origins",     "methods", "headers", "expose_headers",
                                   "credentials", "max_age", NULL};

/* A list of tokens into "a, b" (and the list itself when out is not NULL). */
static char *join(pt__cfg_ctx_t *c, const pt_ynode_t *v, int header_names, char ***out, size_t *n)
{
    size_t i, len = 0;
    char *s, *joined, **items;
    if (v->kind != PT_YNODE_SEQUENCE || v->n == 0) {
        pt__cfg_err(c, v->line, "expected a non-empty list");
        return NULL;
    }
    if ((items = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) == NULL)
        return NULL;
    for (i = 0; i < v->n; i++) {
        if (pt__cfg_string(c, v->items[i], &s) != 0)
            return NULL;
        if (!pt__cfg_is_token(s, strlen(s))) {
            pt__cfg_err(c, v->items[i]->line, "expected a %s name, got \"%.60s\"",
                        header_names ? "header" : "method", s);
            return NULL;
        }
        items[i] = s;
        len += strlen(s) + 2;
    }
    if ((joined = pt_arena_alloc(c->arena, len + 1)) == NULL)
        return NULL;
    joined[0] = '\0';
    for (i = 0, len = 0; i < v->n; i++)
        len += (size_t)sprintf(joined + len, "%s%s", i ? ", " : "", items[i]);
    if (out != NULL) {
        for (i = 0; i < v->n; i++) {
            char *p, *low = pt_arena_strdup(c->arena, items[i]);
            if (low == NULL)
                return NULL;
            for (p = low; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p + 32);
            items[i] = low;
        }
        *out = items;
        *n = v->n;
    }
    return joined;
}

static void *parse(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    cors_t *k = pt_arena_calloc(c->arena, sizeof(*k));
    const pt_ynode_t *v;
    size_t i, mark;
    uint64_t ms;
    char *s;
    int bad = 0;

    if (k == NULL || pt__cfg_mapping(c, n, keys) != 0)
        return NULL;
    mark = pt__cfg_push(c, "origins", 7);
    if ((v = pt_yaml_get(n, "origins")) == NULL || v->kind != PT_YNODE_SEQUENCE || v->n == 0 ||
        (k->origins = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) == NULL) {
        pt__cfg_err(c, v ? v->line : n->line,
                    "expected a list of origins, e.g. origins: [\"https://app.example.com\"]");
        bad = 1;
    } else {
        for (i = 0; i < v->n; i++) {
            if (pt__cfg_string(c, v->items[i], &s) != 0) {
                bad = 1;
                continue;
            }
            if (strcmp(s, "*") == 0) {
                k->any_origin = 1;
            } else if (strcmp(s, "null") != 0 &&
                       ((strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0) ||
                        strchr(strstr(s, "//") + 2, '/') != NULL ||
                        (strchr(s, '*') != NULL && strchr(s, '*') != strrchr(s, '*')))) {
                pt__cfg_err(c, v->items[i]->line,
                            "expected an origin such as \"https://app.example.com\", "
                            "\"https://*.example.com\" or \"*\" (scheme and host, no path), got "
                            "\"%.80s\"",
                            s);
                bad = 1;
            } else {
                k->origins[k->norigins++] = s;
            }
        }
    }
    pt__cfg_pop(c, mark);
    k->methods = "GET, HEAD, POST, PUT, PATCH, DELETE";
    if ((v = pt_yaml_get(n, "methods")) != NULL) {
        mark = pt__cfg_push(c, "methods", 7);
        if ((k->methods = join(c, v, 0, NULL, NULL)) == NULL)
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "headers")) != NULL) {
        mark = pt__cfg_push(c, "headers", 7);
        if ((k->headers_value = join(c, v, 1, &k->headers, &k->nheaders)) == NULL)
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "expose_headers")) != NULL) {
        mark = pt__cfg_push(c, "expose_headers", 14);
        if ((k->expose = join(c, v, 1, NULL, NULL)) == NULL)
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "credentials")) != NULL && pt__cfg_bool(c, v, &k->credentials) != 0)
        bad = 1;
    if ((v = pt_yaml_get(n, "max_age")) != NULL) {
        mark = pt__cfg_push(c, "max_age", 7);
        if (pt__cfg_duration(c, v, 0, 86400000, &ms) == 0)
            snprintf(k->max_age, sizeof(k->max_age), "%llu", (unsigned long long)(ms / 1000));
        else
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if (k->any_origin && k->credentials) {
        pt__cfg_err(c, n->line,
                    "credentials: true cannot go with the \"*\" origin (browsers refuse it): "
                    "list the origins");
        bad = 1;
    }
    return bad ? NULL : k;
}

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.';
}

/* origin against a pattern with at most one '*' (one or more host characters). */
static int origin_match(const char *pat, const char *o, size_t olen)
{
    const char *star = strchr(pat, '*');
    size_t plen = strlen(pat), pre, post, i;
    if (star == NULL)
        return plen == olen && strncasecmp(pat, o, olen) == 0;
    pre = (size_t)(star - pat);
    post = plen - pre - 1;
    if (olen < pre + post + 1 || strncasecmp(pat, o, pre) != 0 ||
        strncasecmp(star + 1, o + olen - post, post) != 0)
        return 0;
    for (i = pre; i < olen - post; i++)
        if (!host_char(o[i]))
            return 0;
    return 1;
}

static int allowed_origin(const cors_t *k, const pt_str_t *o)
{
    size_t i;
    if (o->len == 0 || o->len > 512)
        return 0;
    if (k->any_origin)
        return 1;
    for (i = 0; i < k->norigins; i++)
        if (origin_match(k->origins[i], o->p, o->len))
            return 1;
    return 0;
}

static int method_listed(const char *list, const char *m, size_t mlen)
{
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == mlen && memcmp(p, m, mlen) == 0)
            return 1;
        if (e == NULL)
            return 0;
        p = e + 2; /* ", " */
    }
}

/* Each of the comma-separated request headers is allowed. */
static int headers_allowed(const cors_t *k, const pt_str_t *h)
{
    size_t i = 0, j, n;
    if (h == NULL || k->headers == NULL)
        return 1;
    while (i < h->len) {
        while (i < h->len && (h->p[i] == ' ' || h->p[i] == ',' || h->p[i] == '\t'))
            i++;
        for (n = 0; i + n < h->len && h->p[i + n] != ',' && h->p[i + n] != ' '; n++)
            ;
        if (n > 0) {
            int ok = 0;
            for (j = 0; j < k->nheaders && !ok; j++)
                ok = strlen(k->headers[j]) == n && strncasecmp(k->headers[j], h->p + i, n) == 0;
            if (!ok)
                return 0;
        }
        i += n;
    }
    return 1;
}

/* The headers an allowed origin gets on every answer, into the request. */
static pt_header_kv_t *grant(const cors_t *k, pt_req_t *req, const pt_str_t *origin, size_t room,
                             size_t *n)
{
    pt_arena_t *a = pt_http_req_arena(req);
    pt_header_kv_t *h = pt_arena_alloc(a, sizeof(*h) * (4 + room));
    char *o;
    if (h == NULL)
        return NULL;
    *n = 0;
    if (k->any_origin && !k->credentials) {
        h[(*n)++] = (pt_header_kv_t){"Access-Control-Allow-Origin", "*"};
    } else {
        if ((o = pt_arena_strndup(a, origin->p, origin->len)) == NULL)
            return NULL;
        h[(*n)++] = (pt_header_kv_t){"Access-Control-Allow-Origin", o};
        h[(*n)++] = (pt_header_kv_t){"Vary", "Origin"};
    }
    if (k->credentials)
        h[(*n)++] = (pt_header_kv_t){"Access-Control-Allow-Credentials", "true"};
    if (k->expose != NULL)
        h[(*n)++] = (pt_header_kv_t){"Access-Control-Expose-Headers", k->expose};
    return h;
}

static int handle(const void *conf, pt_req_t *req)
{
    const cors_t *k = conf;
    const pt_str_t *origin = pt_http_header(req, "origin");
    pt_header_kv_t *h;
    size_t n;
    req->cors_owned = 1;
    if (origin == NULL || !allowed_origin(k, origin))
        return PT_POLICY_NEXT; /* not a cross-origin call, or not one we allow */
    if ((h = grant(k, req, origin, 0, &n)) != NULL)
        pt_http_resp_add(req, h, n);
    return PT_POLICY_NEXT;
}

static int preflight(const void *conf, pt_req_t *req)
{
    const cors_t *k = conf;
    const pt_str_t *origin = pt_http_header(req, "origin");
    const pt_str_t *method = pt_http_header(req, "access-control-request-method");
    const pt_str_t *hdrs = pt_http_header(req, "access-control-request-headers");
    static const pt_header_kv_t vary[] = {{"Vary", "Origin"}};
    pt_header_kv_t *h;
    size_t n;

    if (origin == NULL || method == NULL || !allowed_origin(k, origin) ||
        !method_listed(k->methods, method->p, method->len) || !headers_allowed(k, hdrs) ||
        (h = grant(k, req, origin, 3, &n)) == NULL) {
        /* refused: an answer without any Access-Control-* header */
        pt_policy_count(req, PT_PSTAT_CORS_REFUSED);
        pt_http_respond(req, 204, vary, 1, NULL, NULL, 0);
        return PT_POLICY_ANSWERED;
    }
    h[n++] = (pt_header_kv_t){"Access-Control-Allow-Methods", k->methods};
    if (hdrs != NULL && hdrs->len > 0) {
        char *v = k->headers_value
                      ? k->headers_value
                      : pt_arena_strndup(pt_http_req_arena(req), hdrs->p, PT_MIN(hdrs->len, 1024));
        if (v != NULL)
            h[n++] = (pt_header_kv_t){"Access-Control-Allow-Headers", v};
    }
    pt_policy_count(req, PT_PSTAT_CORS_PREFLIGHT);
    if (k->max_age[0])
        h[n++] = (pt_header_kv_t){"Access-Control-Max-Age", (char *)k->max_age};
    pt_http_respond(req, 204, h, n, NULL, NULL, 0);
    return PT_POLICY_ANSWERED;
}

const pt_policy_type_t pt_policy_cors = {"cors", PT_ORDER_CORS, parse, handle, preflight};
