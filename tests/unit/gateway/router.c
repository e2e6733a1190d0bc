/*
 * Unit tests of src/gateway/router.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/router.h"

/* Builds an API from "METHOD /template" strings (NULL-terminated); route i has line i + 1. */
static pt_api_def_t make_api(pt_arena_t *a, const char *name, const char *base,
                             const char *const *spec)
{
    pt_api_def_t api;
    size_t n = 0, i;

    memset(&api, 0, sizeof(api));
    api.name = (char *)name;
    api.base_path = (char *)base;
    api.file = pt_arena_printf(a, "%s.yaml", name);
    while (spec != NULL && spec[n] != NULL)
        n++;
    api.routes = pt_arena_calloc(a, (n ? n : 1) * sizeof(*api.routes));
    api.nroutes = n;
    for (i = 0; i < n; i++) {
        const char *sp = strchr(spec[i], ' ');
        pt_route_def_t *r = &api.routes[i];
        r->method = pt_arena_strndup(a, spec[i], (size_t)(sp - spec[i]));
        r->path = pt_arena_strdup(a, sp + 1);
        r->name = pt_arena_strdup(a, spec[i]);
        r->kind = PT_DISPATCH_RESPOND;
        r->line = (unsigned)i + 1;
    }
    return api;
}

static pt_route_result_t match(const pt_router_t *r, const char *method, const char *path,
                               pt_route_match_t *m)
{
    return pt_router_match(r, method, strlen(method), path, strlen(path), m);
}

static void assert_found(const pt_router_t *r, const char *method, const char *path,
                         const char *route_name)
{
    pt_route_match_t m;
    pt_route_result_t rc = match(r, method, path, &m);
    if (rc != PT_ROUTE_FOUND)
        fail_msg("%s %s: expected %s, got result %d", method, path, route_name, (int)rc);
    assert_non_null(m.api);
    assert_string_equal(m.route->name, route_name);
}

static void assert_param(const pt_route_match_t *m, unsigned i, const char *name, const char *value)
{
    assert_true(i < m->nparams);
    assert_int_equal(m->params[i].name.len, strlen(name));
    assert_memory_equal(m->params[i].name.p, name, strlen(name));
    assert_int_equal(m->params[i].value.len, strlen(value));
    assert_memory_equal(m->params[i].value.p, value, strlen(value));
}

static void test_template_check(void **state)
{
    static const char *const good[] = {
        "/",
        "/a",
        "/a/b/c",
        "/{id}",
        "/items/{id}/parts/{part_no}",
        "/_x/{_}",
        "/a-b.c~_!$&'()*+,;=:@",
        "/%20x%7E",
        "/.well-known",
        "/a..b",
    };
    static const char *const bad[] = {
        "",      "a",       "a/b",   "/a/",    "//",       "/a//b", "/{",           "/{}",  "/{1x}",
        "/a{b}", "/{a}b",   "/x{a}", "/{a-b}", "/{a}/{a}", "/%zz",  "/%2",          "/a b", "/.",
        "/..",   "/a/../b", "/a}",   "/a?b",   "/a#b",     "/\x01", "/caf\xc3\xa9",
    };
    char err[256], big[1100];
    size_t i;

    (void)state;
    for (i = 0; i < PT_ARRAY_SIZE(good); i++)
        if (pt_route_template_check(good[i], err, sizeof(err)) != 0)
            fail_msg("\"%s\" rejected: %s", good[i], err);
    for (i = 0; i < PT_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        if (pt_route_template_check(bad[i], err, sizeof(err)) != PT_EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(pt_route_template_check(NULL, NULL, 0), PT_EINVAL);
    /* 16 parameters are fine, 17 are not. */
    strcpy(big, "");
    for (i = 0; i < 16; i++)
        sprintf(big + strlen(big), "/{p%zu}", i);
    assert_int_equal(pt_route_template_check(big, err, sizeof(err)), 0);
    strcat(big, "/{p16}");
    assert_int_equal(pt_route_template_check(big, err, sizeof(err)), PT_EINVAL);
    assert_non_null(strstr(err, "more than 16"));
    /* Length cap. */
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(pt_route_template_check(big, err, sizeof(err)), PT_EINVAL);
    /* Messages are specific. */
    pt_route_template_check("/a/", err, sizeof(err));
    assert_non_null(strstr(err, "end with '/'"));
    pt_route_template_check("/{a}/{a}", err, sizeof(err));
    assert_non_null(strstr(err, "{a} appears twice"));
}

static void test_longest_base_path(void **state)
{
    static const char *const r1[] = {"GET /x", "GET /v2/x", NULL};
    static const char *const r2[] = {"GET /x", NULL};
    pt_arena_t a;
    pt_api_def_t apis[2];
    pt_router_t *r;
    pt_route_match_t m;
    char err[256];

    (void)state;
    pt_arena_init(&a, NULL);
    apis[0] = make_api(&a, "short", "/api", r1);
    apis[1] = make_api(&a, "long", "/api/v2", r2);
    r = pt_router_build(&a, apis, 2, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(match(r, "GET", "/api/v2/x", &m), PT_ROUTE_FOUND);
    assert_string_equal(m.api->name, "long");
    assert_int_equal(match(r, "GET", "/api/x", &m), PT_ROUTE_FOUND);
    assert_string_equal(m.api->name, "short");
    /* The longer API takes everything below it, even what the shorter one routes. */
    assert_int_equal(match(r, "GET", "/api/v2/v2/x", &m), PT_ROUTE_NOT_FOUND);
    assert_string_equal(m.api->name, "long");
    assert_int_equal(match(r, "GET", "/api/v3/x", &m), PT_ROUTE_NOT_FOUND);
    assert_string_equal(m.api->name, "short");
    pt_arena_destroy(&a);
}

static void test_root_base_path_is_the_catch_all(void **state)
{
    static const char *const rroot[] = {"GET /", "GET /items/{id}", NULL};
    static const char *const rapi[] = {"GET /x", NULL};
    pt_arena_t a;
    pt_api_def_t apis[3];
    pt_router_t *r;
    pt_route_match_t m;
    char err[256];

    (void)state;
    pt_arena_init(&a, NULL);
    apis[0] = make_api(&a, "root", "/", rroot);
    apis[1] = make_api(&a, "api", "/api", rapi);
    r = pt_router_build(&a, apis, 2, err, sizeof(err));
    assert_non_null(r);
    assert_found(r, "GET", "/", "GET /");
    assert_found(r, "GET", "/items/7", "GET /items/{id}");
    assert_found(r, "GET", "/api/x", "GET /x");
    /* not under /api (segment boundary): the catch-all */
    assert_int_equal(match(r, "GET", "/apix", &m), PT_ROUTE_NOT_FOUND);
    assert_string_equal(m.api->name, "root");
    assert_int_equal(match(r, "GET", "/api/y", &m), PT_ROUTE_NOT_FOUND);
    assert_string_equal(m.api->name, "api");
    /* only one catch-all */
    apis[2] = make_api(&a, "root2", "/", rapi);
    assert_null(pt_router_build(&a, apis, 3, err, sizeof(err)));
    assert_non_null(strstr(err, "base path / is already used by API \"root\""));
    pt_arena_destroy(&a);
}

static void test_segment_boundary(void **state)
{
    static const char *const rs[] = {"GET /", "GET /x", NULL};
    pt_arena_t a;
    pt_api_def_t api;
    pt_router_t *r;
    pt_route_match_t m;

    (void)state;
    pt_arena_init(&a, NULL);
    api = make_api(&a, "api", "/api", rs);
    r = pt_router_build(&a, &api, 1, NULL, 0);
    assert_non_null(r);
    assert_int_equal(match(r, "GET", "/apix", &m), PT_ROUTE_NOT_FOUND);
    assert_null(m.api);
    assert_int_equal(match(r, "GET", "/apix/x", &m), PT_ROUTE_NOT_FOUND);
    assert_null(m.api);
    assert_int_equal(match(r, "GET", "/ap", &m), PT_ROUTE_NOT_FOUND);
    assert_null(m.api);
    assert_int_equal(match(r, "GET", "", &m), PT_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "*", &m), PT_ROUTE_NOT_FOUND);
    assert_found(r, "GET", "/api", "GET /");
    assert_found(r, "GET", "/api/", "GET /");
    assert_found(r, "GET", "/api/x", "GET /x");
    /* Matching is case-sensitive and on raw bytes. */
    assert_int_equal(match(r, "GET", "/API/x", &m), PT_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "/api/%78", &m), PT_ROUTE_NOT_FOUND);
    pt_arena_destroy(&a);
}

static void test_static_beats_param(void **state)
{
    static const char *const rs[] = {
        "GET /users/{id}",
        "GET /users/me",
        "GET /a/{x}/d",
        "GET /a/b/c",
        "GET /{p}/q",
        "GET /users/me/friends/{f}",
        "GET /users/{id}/photos",
        NULL,
    };
    pt_arena_t a;
    pt_api_def_t api;
    pt_router_t *r;
    pt_route_match_t m;

    (void)state;
    pt_arena_init(&a, NULL);
    api = make_api(&a, "api", "/v1", rs);
    r = pt_router_build(&a, &api, 1, NULL, 0);
    assert_non_null(r);
    assert_found(r, "GET", "/v1/users/me", "GET /users/me");
    assert_found(r, "GET", "/v1/users/42", "GET /users/{id}");
    /* Backtracking: the static "b" branch fails deeper, the parameter branch matches. */
    assert_found(r, "GET", "/v1/a/b/c", "GET /a/b/c");
    assert_int_equal(match(r, "GET", "/v1/a/b/d", &m), PT_ROUTE_FOUND);
    assert_string_equal(m.route->name, "GET /a/{x}/d");
    assert_param(&m, 0, "x", "b");
    /* Two levels of backtracking: /users/me/... has no "photos" -> /users/{id}/photos. */
    assert_int_equal(match(r, "GET", "/v1/users/me/photos", &m), PT_ROUTE_FOUND);
    assert_string_equal(m.route->name, "GET /users/{id}/photos");
    assert_param(&m, 0, "id", "me");
    assert_found(r, "GET", "/v1/users/me/friends/7", "GET /users/me/friends/{f}");
    /* The root parameter catches anything that fails below static "users"/"a". */
    assert_int_equal(match(r, "GET", "/v1/users/q", &m), PT_ROUTE_FOUND);
    assert_string_equal(m.route->name, "GET /users/{id}");
    assert_int_equal(match(r, "GET", "/v1/a/q", &m), PT_ROUTE_FOUND);
    assert_string_equal(m.route->name, "GET /{p}/q");
    assert_param(&m, 0, "p", "a");
    pt_arena_destroy(&a);
}

static void test_not_found_inside_and_outside(void **state)
{
    static const char *const rs[] = {"GET /items", "GET /items/{id}", NULL};
    pt_arena_t a;
    pt_api_def_t api;
    pt_router_t *r;
    pt_route_match_t m;

    (void)state;
    pt_arena_init(&a, NULL);
    api = make_api(&a, "shop", "/shop/v1", rs);
    r = pt_router_build(&a, &api, 1, NULL, 0);
    assert_non_null(r);
    assert_int_equal(match(r, "GET", "/shop/v1/nothing", &m), PT_ROUTE_NOT_FOUND);
    assert_non_null(m.api);
    assert_string_equal(m.api->name, "shop");
    assert_null(m.route);
    assert_null(m.allow);
    /* No "/" route: the base path itself is a 404 inside the API. */
    assert_int_equal(match(r, "GET", "/shop/v1", &m), PT_ROUTE_NOT_FOUND);
    assert_non_null(m.api);
    assert_int_equal(match(r, "GET", "/shop/v2/items", &m), PT_ROUTE_NOT_FOUND);
    assert_null(m.api);
    assert_int_equal(match(r, "GET", "/", &m), PT_ROUTE_NOT_FOUND);
    assert_null(m.api);
    /* Empty router. */
    r = pt_router_build(&a, NULL, 0, NULL, 0);
    assert_non_null(r);
    assert_int_equal(match(r, "GET", "/shop/v1/items", &m), PT_ROUTE_NOT_FOUND);
    assert_null(m.api);
    pt_arena_destroy(&a);
}

static void test_method_not_allowed(void **state)
{
    static const char *const rs[] = {"POST /items",     "GET /items",  "DELETE /items",
                                     "HEAD /only-head", "PUT /x/{id}", NULL};
    pt_arena_t a;
    pt_api_def_t api;
    pt_router_t *r;
    pt_route_match_t m;

    (void)state;
    pt_arena_init(&a, NULL);
    api = make_api(&a, "api", "/api", rs);
    r = pt_router_build(&a, &api, 1, NULL, 0);
    assert_non_null(r);
    assert_int_equal(match(r, "PUT", "/api/items", &m), PT_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "DELETE, GET, HEAD, POST");
    assert_non_null(m.api);
    assert_null(m.route);
    assert_int_equal(match(r, "GET", "/api/only-head", &m), PT_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "HEAD");
    assert_int_equal(match(r, "GET", "/api/x/1", &m), PT_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "PUT");
    /* Methods are case-sensitive. */
    assert_int_equal(match(r, "get", "/api/items", &m), PT_ROUTE_METHOD_NOT_ALLOWED);
    assert_found(r, "POST", "/api/items", "POST /items");
    assert_found(r, "DELETE", "/api/items", "DELETE /items");
    pt_arena_destroy(&a);
}

static void test_head_and_any(void **state)
{
    static const char *const rs[] = {"GET /g",        "GET /gh",     "HEAD /gh",
                                     "* /any",        "GET /any",    "* /only-any",
                                     "GET /both/{x}", "* /both/{y}", NULL};
    pt_arena_t a;
    pt_api_def_t api;
    pt_router_t *r;
    pt_route_match_t m;

    (void)state;
    pt_arena_init(&a, NULL);
    api = make_api(&a, "api", "/api", rs);
    r = pt_router_build(&a, &api, 1, NULL, 0);
    assert_non_null(r);
    assert_found(r, "HEAD", "/api/g", "GET /g");
    assert_found(r, "HEAD", "/api/gh", "HEAD /gh");
    assert_found(r, "GET", "/api/gh", "GET /gh");
    assert_found(r, "GET", "/api/any", "GET /any");
    assert_found(r, "HEAD", "/api/any", "GET /any");
    assert_found(r, "PATCH", "/api/any", "* /any");
    assert_found(r, "BREW", "/api/only-any", "* /only-any");
    assert_found(r, "GET", "/api/only-any", "* /only-any");
    /* The route found decides the parameter names. */
    assert_int_equal(match(r, "GET", "/api/both/1", &m), PT_ROUTE_FOUND);
    assert_param(&m, 0, "x", "1");
    assert_int_equal(match(r, "POST", "/api/both/1", &m), PT_ROUTE_FOUND);
    assert_param(&m, 0, "y", "1");
    assert_int_equal(match(r, "POST", "/api/g", &m), PT_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, HEAD");
    pt_arena_destroy(&a);
}

static void test_params(void **state)
{
    static const char *const rs[] = {"GET /a/{x}/b/{y}", "GET /{only}", NULL};
    pt_arena_t a;
    pt_api_def_t api;
    pt_router_t *r;
    pt_route_match_t m;
    const char *path = "/p/a/hello%20world/b/42";

    (void)state;
    pt_arena_init(&a, NULL);
    api = make_api(&a, "api", "/p", rs);
    r = pt_router_build(&a, &api, 1, NULL, 0);
    assert_non_null(r);
    assert_int_equal(match(r, "GET", path, &m), PT_ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_param(&m, 0, "x", "hello%20world");
    assert_param(&m, 1, "y", "42");
    /* Values point into the request path. */
    assert_ptr_equal(m.params[1].value.p, path + strlen(path) - 2);
    /* A parameter matches one non-empty segment. */
    assert_int_equal(match(r, "GET", "/p/a//b/42", &m), PT_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "/p/a/x/y/b/42", &m), PT_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "/p/zz", &m), PT_ROUTE_FOUND);
    assert_param(&m, 0, "only", "zz");
    /* The path length is honoured: no NUL terminator needed. */
    assert_int_equal(pt_router_match(r, "GET", 3, "/p/zzzz", 5, &m), PT_ROUTE_FOUND);
    assert_param(&m, 0, "only", "zz");
    assert_int_equal(pt_router_match(r, "GETX", 3, "/p/zz", 5, &m), PT_ROUTE_FOUND);
    pt_arena_destroy(&a);
}

static void test_trailing_slash(void **state)
{
    static const char *const rs[] = {"GET /items", "GET /dir/", NULL};
    static const char *const ok[] = {"GET /items", NULL};
    pt_arena_t a;
    pt_api_def_t api;
    pt_router_t *r;
    pt_route_match_t m;
    char err[256];

    (void)state;
    pt_arena_init(&a, NULL);
    /* A template may not end with '/'. */
    api = make_api(&a, "api", "/api", rs);
    assert_null(pt_router_build(&a, &api, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "/dir/"));
    api = make_api(&a, "api", "/api", ok);
    r = pt_router_build(&a, &api, 1, NULL, 0);
    assert_non_null(r);
    assert_found(r, "GET", "/api/items", "GET /items");
    assert_int_equal(match(r, "GET", "/api/items/", &m), PT_ROUTE_NOT_FOUND);
    assert_non_null(m.api);
    assert_int_equal(match(r, "GET", "/api//items", &m), PT_ROUTE_NOT_FOUND);
    pt_arena_destroy(&a);
}

static void test_build_errors(void **state)
{
    static const char *const dup[] = {"GET /a", "GET /a/{x}", "POST /a/{z}", "GET /a/{y}", NULL};
    static const char *const dup_root[] = {"GET /", "GET /", NULL};
    static const char *const ok[] = {"GET /a", NULL};
    static const char *const badt[] = {"GET /a/{", NULL};
    pt_arena_t a;
    pt_api_def_t apis[2];
    char err[512];

    (void)state;
    pt_arena_init(&a, NULL);
    apis[0] = make_api(&a, "dupe", "/d", dup);
    assert_null(pt_router_build(&a, apis, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "dupe.yaml:"));
    assert_non_null(strstr(err, "API \"dupe\""));
    assert_non_null(strstr(err, "duplicate route GET /a/{"));
    apis[0] = make_api(&a, "dupe", "/d", dup_root);
    assert_null(pt_router_build(&a, apis, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "duplicate route GET /"));

    apis[0] = make_api(&a, "one", "/same", ok);
    apis[1] = make_api(&a, "two", "/same", ok);
    assert_null(pt_router_build(&a, apis, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "already used by API \"one\""));

    apis[0] = make_api(&a, "bad", "/b", badt);
    assert_null(pt_router_build(&a, apis, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "bad.yaml:1"));

    apis[0] = make_api(&a, "slash", "/b/", ok);
    assert_null(pt_router_build(&a, apis, 1, err, sizeof(err)));
    apis[0] = make_api(&a, "root", "//", ok);
    assert_null(pt_router_build(&a, apis, 1, err, sizeof(err)));
    apis[0] = make_api(&a, "rel", "b", ok);
    assert_null(pt_router_build(&a, apis, 1, NULL, 0));
    pt_arena_destroy(&a);
}

static void test_many_routes_and_apis(void **state)
{
    enum { NAPIS = 50, NROUTES = 400 };
    pt_arena_t a;
    pt_api_def_t apis[NAPIS];
    pt_router_t *r;
    pt_route_match_t m;
    char path[128], err[256];
    size_t i, j;

    (void)state;
    pt_arena_init(&a, NULL);
    for (i = 0; i < NAPIS; i++) {
        memset(&apis[i], 0, sizeof(apis[i]));
        apis[i].name = pt_arena_printf(&a, "api%zu", i);
        apis[i].file = apis[i].name;
        /* Nested bases: /s, /s/0, /s/0/1, ... interleaved with siblings. */
        apis[i].base_path = i == 0 ? "/s" : pt_arena_printf(&a, "/s/%zu", i);
        apis[i].routes = pt_arena_calloc(&a, NROUTES * sizeof(pt_route_def_t));
        apis[i].nroutes = NROUTES;
        /* Routes in reverse order: the build sorts them. */
        for (j = 0; j < NROUTES; j++) {
            pt_route_def_t *rt = &apis[i].routes[j];
            rt->method = j % 3 == 0 ? "POST" : "GET";
            rt->path = pt_arena_printf(&a, "/r%zu/{id}", NROUTES - j);
            rt->name = rt->path;
            rt->line = (unsigned)j;
        }
    }
    r = pt_router_build(&a, apis, NAPIS, err, sizeof(err));
    if (r == NULL)
        fail_msg("%s", err);
    for (i = 0; i < NAPIS; i++)
        for (j = 0; j < NROUTES; j++) {
            const char *method = j % 3 == 0 ? "POST" : "GET";
            snprintf(path, sizeof(path), "%s/r%zu/x", apis[i].base_path, NROUTES - j);
            if (match(r, method, path, &m) != PT_ROUTE_FOUND)
                fail_msg("%s %s not found", method, path);
            assert_ptr_equal(m.api, &apis[i]);
            assert_ptr_equal(m.route, &apis[i].routes[j]);
        }
    pt_arena_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_check),
        cmocka_unit_test(test_longest_base_path),
        cmocka_unit_test(test_root_base_path_is_the_catch_all),
        cmocka_unit_test(test_segment_boundary),
        cmocka_unit_test(test_static_beats_param),
        cmocka_unit_test(test_not_found_inside_and_outside),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_head_and_any),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_many_routes_and_apis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
