/*
 * fuzz_route_template.c - libFuzzer target for route templates and matching.
 *
 * Input: the first line is a route template, every further line a request
 * path. The template is checked; when it is valid, a router is built with it
 * (next to fixed routes that compete with it: a static one, a parameter one
 * and a "*" one) and every path is matched, raw and under the base path. A
 * valid template must build, and matching must never crash, read out of
 * bounds or return parameters that do not point into the path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_match(const pt_router_t *r, const char *method, const char *path, size_t len)
{
    pt_route_match_t m;
    pt_route_result_t rc = pt_router_match(r, method, strlen(method), path, len, &m);
    unsigned i;

    if (rc == PT_ROUTE_FOUND) {
        if (m.route == NULL || m.api == NULL || m.nparams > PT_ROUTE_MAX_PARAMS)
            abort();
        for (i = 0; i < m.nparams; i++)
            if (m.params[i].value.len == 0 || m.params[i].value.p < path ||
                m.params[i].value.p + m.params[i].value.len > path + len ||
                memchr(m.params[i].value.p, '/', m.params[i].value.len) != NULL)
                abort();
    } else if (rc == PT_ROUTE_METHOD_NOT_ALLOWED) {
        if (m.allow == NULL || m.api == NULL)
            abort();
    } else if (rc != PT_ROUTE_NOT_FOUND) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size, *nl;
    char tmpl[1100], path[4096], err[256];
    pt_route_def_t routes[4];
    pt_api_def_t api;
    pt_arena_t a;
    pt_router_t *r;
    size_t tl;

    nl = memchr(p, '\n', size);
    tl = nl ? (size_t)(nl - p) : size;
    if (tl >= sizeof(tmpl))
        return 0;
    memcpy(tmpl, p, tl);
    tmpl[tl] = '\0';
    /* The template is a C string: an embedded NUL ends it. */
    tl = strlen(tmpl);
    if (pt_route_template_check(tmpl, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }

    memset(routes, 0, sizeof(routes));
    routes[0].method = "GET";
    routes[0].path = tmpl;
    routes[0].name = "fuzzed";
    routes[1].method = "POST";
    routes[1].path = "/static/a/b";
    routes[1].name = "static";
    routes[2].method = "GET";
    routes[2].path = "/{x}/a/{y}";
    routes[2].name = "param";
    routes[3].method = "*";
    routes[3].path = "/{any}";
    routes[3].name = "any";
    memset(&api, 0, sizeof(api));
    api.name = "fz";
    api.file = "fz.yaml";
    api.base_path = "/fz";
    api.routes = routes;
    api.nroutes = 4;

    pt_arena_init(&a, NULL);
    r = pt_router_build(&a, &api, 1, err, sizeof(err));
    if (r == NULL) {
        /* Only a duplicate of one of the fixed routes may fail. */
        if (strstr(err, "duplicate route") == NULL)
            abort();
        pt_arena_destroy(&a);
        return 0;
    }
    /* The template itself, taken as a path, must be routed into the API. */
    memcpy(path, "/fz", 3);
    memcpy(path + 3, tmpl, tl);
    check_match(r, "GET", path, 3 + tl);
    if (strchr(tmpl, '{') == NULL) {
        pt_route_match_t m;
        if (pt_router_match(r, "GET", 3, path, 3 + tl, &m) != PT_ROUTE_FOUND ||
            m.route != &routes[0])
            abort();
    }
    p = nl ? nl + 1 : end;
    while (p < end) {
        size_t len;
        nl = memchr(p, '\n', (size_t)(end - p));
        len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len + 3 <= sizeof(path)) {
            check_match(r, "GET", p, len);
            check_match(r, "HEAD", p, len);
            check_match(r, "DELETE", p, len);
            memcpy(path + 3, p, len);
            check_match(r, "GET", path, len + 3);
            check_match(r, "POST", path, len + 3);
        }
        p = nl ? nl + 1 : end;
    }
    pt_arena_destroy(&a);
    return 0;
}
