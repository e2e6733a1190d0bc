/*
 * policy.c - the policy chain (see policy.h).
 */
#include "policy/policy.h"
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "gateway/dispatch.h"
#include "gateway/snapshot-t.h"
#include "http/http.h"
#include "event/worker-t.h"

extern const pt_policy_type_t pt_policy_ip_filter, pt_policy_body_limit, pt_policy_auth,
    pt_policy_rate_limit, pt_policy_concurrency, pt_policy_cors;

/* The registry: one line per policy type. */
static const pt_policy_type_t *const types[] = {
    &pt_policy_ip_filter,  &pt_policy_body_limit,  &pt_policy_auth,
    &pt_policy_rate_limit, &pt_policy_concurrency, &pt_policy_cors,
};

void pt__cfg_policies(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_policy_list_t *list)
{
    size_t i, k, mark = pt__cfg_push(c, "policies", 8);
    char tmp[300];
    if (n->kind != PT_YNODE_MAPPING) {
        pt__cfg_err(c, n->line, "expected a mapping of policy names to their settings, got %s",
                    pt__cfg_quote(n, tmp, sizeof(tmp)));
        goto done;
    }
    list->items = pt_arena_calloc(c->arena, sizeof(*list->items) * (n->n ? n->n : 1));
    if (list->items == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        goto done;
    }
    for (i = 0; i < n->n; i++) {
        const pt_ynode_t *key = n->pairs[i].key, *v = n->pairs[i].value;
        size_t m2 = pt__cfg_push(c, key->value, key->len);
        for (k = 0; k < sizeof(types) / sizeof(types[0]); k++)
            if (strlen(types[k]->name) == key->len &&
                memcmp(types[k]->name, key->value, key->len) == 0)
                break;
        if (k == sizeof(types) / sizeof(types[0])) {
            pt__cfg_err(
                c, key->line,
                "unknown policy %s (known: ip_filter, body_limit, auth, rate_limit, concurrency, "
                "cors)",
                pt__cfg_quote(key, tmp, sizeof(tmp)));
        } else {
            void *conf = types[k]->parse(c, v);
            if (conf != NULL) {
                list->items[list->n].type = types[k];
                list->items[list->n].conf = conf;
                list->items[list->n++].line = key->line;
            }
        }
        pt__cfg_pop(c, m2);
    }
done:
    pt__cfg_pop(c, mark);
}

static int by_order(const void *x, const void *y)
{
    const pt_policy_ref_t *a = x, *b = y;
    return a->type->order < b->type->order ? -1 : a->type->order > b->type->order;
}

/* chain = wide, with the same types replaced by narrow's (and narrow's others added). */
static int merge(pt_arena_t *a, const pt_policy_list_t *wide, const pt_policy_list_t *narrow,
                 pt_policy_list_t *chain)
{
    size_t i, k, n = 0;
    pt_policy_ref_t *items;
    if (wide->n + narrow->n == 0) {
        chain->items = NULL;
        chain->n = 0;
        return 0;
    }
    if ((items = pt_arena_alloc(a, sizeof(*items) * (wide->n + narrow->n))) == NULL)
        return -1;
    for (i = 0; i < wide->n; i++) {
        for (k = 0; k < narrow->n && narrow->items[k].type != wide->items[i].type; k++)
            ;
        if (k == narrow->n)
            items[n++] = wide->items[i];
    }
    for (k = 0; k < narrow->n; k++)
        items[n++] = narrow->items[k];
    qsort(items, n, sizeof(*items), by_order);
    chain->items = items;
    chain->n = n;
    return 0;
}

/* With listener policies: every chain once per listener (node, listener,
 * API, route). */
static int build_listener_chains(pt_config_t *cfg)
{
    size_t i, r, l, nl = cfg->nlisteners;
    pt_arena_t *a = &cfg->arena;
    static const pt_policy_list_t none = {NULL, 0};
    if ((cfg->lchains = pt_arena_calloc(a, sizeof(*cfg->lchains) * nl)) == NULL)
        return -1;
    for (l = 0; l < nl; l++)
        if (merge(a, &cfg->policies,
                  cfg->listeners[l].policies ? cfg->listeners[l].policies : &none,
                  &cfg->lchains[l]) != 0)
            return -1;
    for (i = 0; i < cfg->napis; i++) {
        pt_api_def_t *api = &cfg->apis[i];
        if ((api->lchains = pt_arena_calloc(a, sizeof(*api->lchains) * nl)) == NULL)
            return -1;
        for (l = 0; l < nl; l++)
            if (merge(a, &cfg->lchains[l], &api->policies, &api->lchains[l]) != 0)
                return -1;
        for (r = 0; r < api->nroutes; r++) {
            pt_route_def_t *rt = &api->routes[r];
            if ((rt->lchains = pt_arena_calloc(a, sizeof(*rt->lchains) * nl)) == NULL)
                return -1;
            for (l = 0; l < nl; l++)
                if (merge(a, &api->lchains[l], &rt->policies, &rt->lchains[l]) != 0)
                    return -1;
        }
        for (r = 0; r < api->nsoap_ops; r++)
            api->soap_ops[r].lchains = api->lchains;
    }
    return 0;
}

int pt_policy_build_chains(pt_config_t *cfg)
{
    size_t i, r;
    int listeners = 0;
    /* the node's own list is the chain of requests that match no API */
    if (cfg->policies.n > 1)
        qsort(cfg->policies.items, cfg->policies.n, sizeof(*cfg->policies.items), by_order);
    for (i = 0; i < cfg->nlisteners; i++)
        listeners |= cfg->listeners[i].policies != NULL && cfg->listeners[i].policies->n > 0;
    if (listeners && build_listener_chains(cfg) != 0)
        return -1;
    for (i = 0; i < cfg->napis; i++) {
        pt_api_def_t *api = &cfg->apis[i];
        if (merge(&cfg->arena, &cfg->policies, &api->policies, &api->chain) != 0)
            return -1;
        for (r = 0; r < api->nroutes; r++)
            if (merge(&cfg->arena, &api->chain, &api->routes[r].policies, &api->routes[r].chain) !=
                0)
                return -1;
        for (r = 0; r < api->nsoap_ops; r++)
            api->soap_ops[r].chain = api->chain;
    }
    return 0;
}

/* A CORS preflight, answered by the chain's policy that knows how. */
static int preflight(const pt_policy_list_t *chain, pt_req_t *req)
{
    size_t i;
    if (req->method_len != 7 || memcmp(req->method, "OPTIONS", 7) != 0 ||
        pt_http_header(req, "access-control-request-method") == NULL ||
        pt_http_header(req, "origin") == NULL)
        return PT_POLICY_NEXT;
    for (i = 0; i < chain->n; i++)
        if (chain->items[i].type->preflight != NULL)
            return chain->items[i].type->preflight(chain->items[i].conf, req);
    return PT_POLICY_NEXT;
}

int pt_policy_run(const pt_policy_list_t *chain, pt_req_t *req)
{
    int rc;
    if (req->policy_next == 0 && req->method[0] == 'O' &&
        (rc = preflight(chain, req)) != PT_POLICY_NEXT)
        return rc;
    req->policy_chain = chain;
    while (req->policy_next < chain->n) {
        const pt_policy_ref_t *p = &chain->items[req->policy_next++];
        if ((rc = p->type->handle(p->conf, req)) != PT_POLICY_NEXT)
            return rc;
    }
    return PT_POLICY_NEXT;
}

int pt_policy_has(const pt_policy_list_t *chain, const char *name)
{
    size_t i;
    for (i = 0; i < chain->n; i++)
        if (strcmp(chain->items[i].type->name, name) == 0)
            return 1;
    return 0;
}

void pt_policy_next(pt_req_t *req)
{
    if (pt_policy_run(req->policy_chain, req) == PT_POLICY_NEXT) {
        if (req->after_policies != NULL)
            req->after_policies(req);
        else
            pt_gateway_dispatch(req);
    }
}

/* Parses one address of X-Forwarded-For ("1.2.3.4", "::1", "[::1]:80" or
 * "1.2.3.4:80"). */
static int parse_addr(const char *p, size_t n, struct sockaddr_storage *out)
{
    char host[64];
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    const char *colon;
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n > 0 && p[0] == '[') {
        const char *e = memchr(p, ']', n);
        if (e == NULL)
            return -1;
        n = (size_t)(e - p - 1);
        p++;
    } else if ((colon = memchr(p, ':', n)) != NULL &&
               memchr(colon + 1, ':', n - (size_t)(colon + 1 - p)) == NULL) {
        n = (size_t)(colon - p); /* a.b.c.d:port */
    }
    if (n == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, p, n);
    host[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

void pt_policy_forwarded_client(const pt_cidr_t *trusted, size_t ntrusted, const char *xff,
                                size_t len, struct sockaddr_storage *out)
{
    /* from the right: the first address that is not one of ours */
    size_t end = len;
    while (end > 0) {
        size_t start = end;
        struct sockaddr_storage a;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        if (parse_addr(xff + start, end - start, &a) != 0)
            return; /* garbage: keep the last address we could trust */
        memcpy(out, &a, sizeof(a));
        if (!pt_cidr_match(trusted, ntrusted, (const struct sockaddr *)&a))
            return;
        end = start > 0 ? start - 1 : 0;
    }
}

/* The for= address of one Forwarded element (RFC 7239 §4-6: for=1.2.3.4,
 * for="[2001:db8::1]:4711", for="1.2.3.4:80"); -1 when it has none, or an
 * obfuscated or unknown one. */
static int forwarded_for(const char *p, size_t n, struct sockaddr_storage *out)
{
    size_t i = 0;
    while (i < n) {
        size_t start, end;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ';'))
            i++;
        start = i;
        while (i < n && p[i] != ';')
            i++;
        end = i;
        if (end - start > 4 && strncasecmp(p + start, "for=", 4) == 0) {
            const char *v = p + start + 4;
            size_t vl = end - start - 4;
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= 2 && v[0] == '"') {
                if (v[vl - 1] != '"')
                    return -1;
                v++;
                vl -= 2;
            }
            return parse_addr(v, vl, out);
        }
    }
    return -1;
}

#define FORWARDED_ELEMENTS_MAX 64

void pt_policy_forwarded_header_client(const pt_cidr_t *trusted, size_t ntrusted, const char *fwd,
                                       size_t len, struct sockaddr_storage *out)
{
    /* the elements' bounds in one pass (a comma inside quotes separates nothing),
     * then from the right, as X-Forwarded-For */
    size_t starts[FORWARDED_ELEMENTS_MAX + 1], n = 0, i;
    int quoted = 0;
    starts[n++] = 0;
    for (i = 0; i < len; i++) {
        if (fwd[i] == '"')
            quoted = !quoted;
        else if (fwd[i] == ',' && !quoted) {
            if (n == FORWARDED_ELEMENTS_MAX)
                return; /* more hops than any real chain: not believed */
            starts[n++] = i + 1;
        }
    }
    if (quoted)
        return; /* an unterminated quote: malformed */
    starts[n] = len + 1;
    while (n > 0) {
        struct sockaddr_storage a;
        n--;
        if (forwarded_for(fwd + starts[n], starts[n + 1] - 1 - starts[n], &a) != 0)
            return; /* garbage or hidden: keep the last address we could trust */
        memcpy(out, &a, sizeof(a));
        if (!pt_cidr_match(trusted, ntrusted, (const struct sockaddr *)&a))
            return;
    }
}

void pt_policy_client_addr(pt_req_t *req, struct sockaddr_storage *out)
{
    const pt_config_t *cfg = req->snap->snap->config;
    const struct sockaddr *peer = pt_http_peer_addr(req);
    const pt_str_t *xff;
    size_t len =
        peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memset(out, 0, sizeof(*out));
    memcpy(out, peer, len);
    if (cfg->ntrusted_proxies == 0 ||
        !pt_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, peer))
        return;
    /* the standard header when the proxies send it, else the common one */
    if ((xff = pt_http_header(req, "forwarded")) != NULL)
        pt_policy_forwarded_header_client(cfg->trusted_proxies, cfg->ntrusted_proxies, xff->p,
                                          xff->len, out);
    else if ((xff = pt_http_header(req, "x-forwarded-for")) != NULL)
        pt_policy_forwarded_client(cfg->trusted_proxies, cfg->ntrusted_proxies, xff->p, xff->len,
                                   out);
}

/* ------------------------------------------------------------ decision counters */

const char *const pt_pstat_names[PT_PSTAT_MAX] = {
    "auth.allowed",         "auth.no_credentials",  "auth.malformed",     "auth.unknown",
    "auth.bad_password",    "auth.bad_token",       "auth.expired",       "auth.claims",
    "auth.untrusted",       "auth.forbidden",       "auth.busy",          "ip_filter.allowed",
    "ip_filter.denied",     "rate_limit.allowed",   "rate_limit.limited", "concurrency.allowed",
    "concurrency.rejected", "body_limit.too_large", "cors.preflight",     "cors.refused"};

void pt_policy_stats_read(uint64_t out[PT_PSTAT_MAX])
{
    pt_wmetrics_t **w;
    unsigned i, k, n = pt_metrics_lock_workers(&w);
    memset(out, 0, sizeof(uint64_t) * PT_PSTAT_MAX);
    for (i = 0; i < n; i++)
        for (k = 0; k < PT_PSTAT_MAX; k++)
            out[k] += atomic_load_explicit(&w[i]->pstats.n[k], memory_order_relaxed);
    pt_metrics_unlock_workers();
}

void pt_policy_count(pt_req_t *req, pt_pstat_t k)
{
    pt_pstat_inc(&req->snap->worker->metrics->pstats, k);
}
