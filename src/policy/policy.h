/*
 * policy.h - the policy chain (issue 7, DESIGN.md §4): each policy is a
 * type - a name, its place in the fixed chain order, a configuration
 * parser and a per-request hook - configured node-wide, per API and per
 * route (`policies:` mappings of type name to configuration; a narrower
 * scope replaces a wider one's configuration of the same type). Adding a
 * policy is one file defining a pt_policy_type_t and one line in the
 * registry (policy.c).
 */
#ifndef PT_POLICY_POLICY_H
#define PT_POLICY_POLICY_H

#include <sys/socket.h>

#include "config/config-t.h"
#include "config/schema.h"
#include "http/http-t.h"
#include "policy/stats.h"

/* The documented order: CORS, IP filter, authentication, per-user IP
 * filter, access, rate limit, concurrency. CORS comes first so that
 * preflights are answered without credentials and the refusals of the
 * others (401, 403, 429) carry the headers a browser needs to read them. */
enum {
    PT_ORDER_CORS = 5,
    PT_ORDER_IP_FILTER = 10,
    PT_ORDER_AUTH = 20,
    PT_ORDER_USER_IP = 30,
    PT_ORDER_ACCESS = 40,
    PT_ORDER_RATE_LIMIT = 50,
    PT_ORDER_CONCURRENCY = 60
};

enum { PT_POLICY_NEXT = 0, PT_POLICY_ANSWERED = 1, PT_POLICY_SUSPENDED = 2 };

typedef struct pt_policy_type_s {
    const char *name; /* the key in `policies:` */
    unsigned order;   /* place in the chain (PT_ORDER_*) */
    /* Reads the configuration n into the configuration's arena (errors
     * reported through c, which holds the key path); NULL on error. */
    void *(*parse)(pt__cfg_ctx_t *c, const pt_ynode_t *n);
    /* Runs for a request on its I/O loop: PT_POLICY_NEXT to continue,
     * PT_POLICY_ANSWERED when it answered (the chain stops), or
     * PT_POLICY_SUSPENDED when it suspended the request (pt_http_suspend)
     * for work off the loop, after which it calls pt_http_resume with
     * pt_policy_next (the chain goes on) or its own answer. Never blocks. */
    int (*handle)(const void *conf, pt_req_t *req);
    /* Optional: answers a CORS preflight (OPTIONS with Origin and
     * Access-Control-Request-Method) in place of the whole chain. */
    int (*preflight)(const void *conf, pt_req_t *req);
} pt_policy_type_t;

/* Reads a `policies:` mapping into list. */
void pt__cfg_policies(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_policy_list_t *list);

/* Builds every API's and route's chain (node, then API, then route
 * policies; narrower replaces wider), in cfg's arena. 0, or -1 (memory). */
int pt_policy_build_chains(pt_config_t *cfg);

/* Runs chain for req: PT_POLICY_NEXT when every policy let it through,
 * else PT_POLICY_ANSWERED or PT_POLICY_SUSPENDED (the request then goes on
 * through pt_policy_next). */
int pt_policy_run(const pt_policy_list_t *chain, pt_req_t *req);

/* A pt_http_resume continuation: runs the rest of the request's chain,
 * then the gateway's dispatch (pt_gateway_dispatch). */
void pt_policy_next(pt_req_t *req);

/* The client's address: the peer, or when the peer is a trusted proxy the
 * rightmost address of X-Forwarded-For that is not a trusted proxy. */
void pt_policy_client_addr(pt_req_t *req, struct sockaddr_storage *out);

/* The same from a Forwarded value (RFC 7239: the for= of each element). */
void pt_policy_forwarded_header_client(const pt_cidr_t *trusted, size_t ntrusted, const char *fwd,
                                       size_t len, struct sockaddr_storage *out);

/* The same from an X-Forwarded-For value: *out (the peer on entry) becomes
 * the rightmost address not in trusted; unparsable entries stop the walk. */
void pt_policy_forwarded_client(const pt_cidr_t *trusted, size_t ntrusted, const char *xff,
                                size_t len, struct sockaddr_storage *out);

/* The authentication a chain asks for, for contracts (OpenAPI security). */
enum {
    PT_AUTH_API_KEY = 1,
    PT_AUTH_BASIC = 2,
    PT_AUTH_JWT = 4,
    PT_AUTH_CLIENT_CERT = 8,
    PT_AUTH_CERT_HEADER = 16
};
typedef struct pt_auth_info_s {
    unsigned methods;        /* PT_AUTH_* */
    const char *header;      /* the API key header (lower-case) or NULL */
    const char *query;       /* the API key query parameter or NULL */
    const char *cert_header; /* lower-case, with PT_AUTH_CERT_HEADER */
    int roles;               /* it also checks roles (a 403 is possible) */
} pt_auth_info_t;

/* 1 (and *out) when chain has an auth policy, else 0. */
int pt_policy_auth_info(const pt_policy_list_t *chain, pt_auth_info_t *out);

/* 1 when chain has a policy of that name ("rate_limit"). */
int pt_policy_has(const pt_policy_list_t *chain, const char *name);

/* Counts a decision in the request's worker (stats.h). */
void pt_policy_count(pt_req_t *req, pt_pstat_t k);

#endif
