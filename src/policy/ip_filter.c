/*
 * ip_filter.c - the `ip_filter` policy: allow and deny lists of IPv4/IPv6
 * addresses and CIDR blocks, matched against the client's address (the
 * peer, or behind trusted proxies the rightmost untrusted address of
 * X-Forwarded-For). A denied address, or one outside a non-empty allow
 * list, gets 403.
 *
 *   policies:
 *     ip_filter: {allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.9.0.0/16]}
 */
#include <string.h>

#include "config/config.h"
#include "config/upstream-i.h"
#include "http/http.h"
#include "policy/policy.h"

typedef struct ip_filter_s {
    pt_cidr_t *allow, *deny;
    size_t nallow, ndeny;
} ip_filter_t;

static const char *const keys[] = {"allow", "deny", NULL};

static int list(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *key, pt_cidr_t **out,
                size_t *count)
{
    const pt_ynode_t *v = pt_yaml_get(n, key);
    size_t i, mark;
    int bad = 0;
    if (pt_yaml_is_null(v))
        return 0;
    mark = pt__cfg_push(c, key, strlen(key));
    if (v->kind != PT_YNODE_SEQUENCE) {
        pt__cfg_err(c, v->line, "expected a list of addresses and CIDR blocks");
        bad = 1;
    } else if ((*out = pt_arena_calloc(c->arena, sizeof(**out) * (v->n ? v->n : 1))) == NULL) {
        pt__cfg_err(c, v->line, "out of memory");
        bad = 1;
    } else {
        for (i = 0; i < v->n; i++) {
            size_t m2 = pt__cfg_push_index(c, i);
            if (pt__cfg_cidr(c, v->items[i], &(*out)[*count]) == 0)
                (*count)++;
            else
                bad = 1;
            pt__cfg_pop(c, m2);
        }
    }
    pt__cfg_pop(c, mark);
    return bad ? -1 : 0;
}

static void *parse(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    ip_filter_t *f = pt_arena_calloc(c->arena, sizeof(*f));
    if (f == NULL || pt__cfg_mapping(c, n, keys) != 0)
        return NULL;
    if (list(c, n, "allow", &f->allow, &f->nallow) != 0 ||
        list(c, n, "deny", &f->deny, &f->ndeny) != 0)
        return NULL;
    if (f->nallow == 0 && f->ndeny == 0) {
        pt__cfg_err(c, n->line, "give allow, deny or both");
        return NULL;
    }
    return f;
}

static int handle(const void *conf, pt_req_t *req)
{
    const ip_filter_t *f = conf;
    struct sockaddr_storage a;
    pt_policy_client_addr(req, &a);
    if ((f->ndeny > 0 && pt_cidr_match(f->deny, f->ndeny, (const struct sockaddr *)&a)) ||
        (f->nallow > 0 && !pt_cidr_match(f->allow, f->nallow, (const struct sockaddr *)&a))) {
        pt_policy_count(req, PT_PSTAT_IP_DENIED);
        pt_http_problem(req, 403, "forbidden-address",
                        "Requests from this address are not allowed.", NULL, 0);
        return 1;
    }
    pt_policy_count(req, PT_PSTAT_IP_ALLOWED);
    return 0;
}

const pt_policy_type_t pt_policy_ip_filter = {"ip_filter", PT_ORDER_IP_FILTER, parse, handle, NULL};
