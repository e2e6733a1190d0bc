/*
 * router.h - the immutable route table of a snapshot.
 *
 * Matching order (DESIGN.md §3): longest matching base path -> most specific
 * route (at each segment a static segment beats `{param}`; then the longer
 * template) -> method. A path that matches a route template but not its
 * method gives PT_ROUTE_METHOD_NOT_ALLOWED with the `Allow` list.
 *
 * Route templates: "/" or one or more "/segment" where a segment is either
 * static text (RFC 3986 pchar without '{' '}') or exactly "{name}" with name
 * matching [A-Za-z_][A-Za-z0-9_]{0,63}; a parameter matches one non-empty
 * segment. A trailing '/' on a request path is not ignored ("/a/" != "/a").
 * Matching is on the raw (still percent-encoded) path; param values are
 * returned raw too.
 */
#ifndef PT_ROUTER_H
#define PT_ROUTER_H

#include "config/config-t.h"
#include "core/common.h"

#define PT_ROUTE_MAX_PARAMS 16

typedef struct pt_router_s pt_router_t;

typedef struct pt_route_param_s {
    pt_str_t name;
    pt_str_t value; /* points into the request path */
} pt_route_param_t;

typedef enum pt_route_result_e {
    PT_ROUTE_FOUND = 0,
    PT_ROUTE_NOT_FOUND = 1,         /* no API base path or no template matches */
    PT_ROUTE_METHOD_NOT_ALLOWED = 2 /* template matched; `allow` lists the methods */
} pt_route_result_t;

typedef struct pt_route_match_s {
    const pt_api_def_t *api;     /* set when a base path matched (also for 404 inside an API) */
    const pt_route_def_t *route; /* set when PT_ROUTE_FOUND */
    pt_route_param_t params[PT_ROUTE_MAX_PARAMS];
    unsigned nparams;
    const char *allow; /* "GET, HEAD, POST" when PT_ROUTE_METHOD_NOT_ALLOWED */
} pt_route_match_t;

/* Checks a route template. Returns 0, or PT_EINVAL with a message in err. */
int pt_route_template_check(const char *tmpl, char *err, size_t errlen);

/* Builds the table for apis[0..n) in arena a (all memory from a). Returns the
 * router, or NULL with a message in err (invalid template, duplicate base
 * path, duplicate METHOD+template, allocation failure). */
pt_router_t *pt_router_build(pt_arena_t *a, const pt_api_def_t *apis, size_t n, char *err,
                             size_t errlen);

/* Matches method (e.g. "GET") and path (origin-form path without the query).
 * HEAD matches a GET route when no HEAD route exists. Thread-safe (read only),
 * no allocation. */
pt_route_result_t pt_router_match(const pt_router_t *r, const char *method, size_t method_len,
                                  const char *path, size_t path_len, pt_route_match_t *m);

#endif
