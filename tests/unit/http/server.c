/*
 * Unit tests of src/http (server.c, request.c, response.c) through a
 * connection without a socket: request parsing, pipelining, limits, the
 * response writer (Content-Length, chunked, HEAD, HTTP/1.0) and problem
 * responses. End-to-end behaviour over sockets is in tests/e2e.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "event/worker.h"
#include "gateway/dispatch.h"
#include "gateway/snapshot.h"
#include "http/http.h"

static const char node_yaml[] = "listen:\n"
                                "  - address: 127.0.0.1:0\n"
                                "limits:\n"
                                "  max_header_size: 1KiB\n"
                                "  max_uri_length: 256\n"
                                "  max_headers: 8\n"
                                "  max_body_size: 16\n"
                                "  max_pipelined: 2\n"
                                "log:\n"
                                "  access_log: \"off\"\n";

static const char api_yaml[] = "name: t\n"
                               "base_path: /t\n"
                               "kind: service\n"
                               "title: T\n"
                               "version: \"1\"\n"
                               "routes:\n"
                               "  - method: GET\n"
                               "    path: /static\n"
                               "    respond: {body: hello}\n"
                               "  - method: POST\n"
                               "    path: /static\n"
                               "    respond: {status: 201, body: made}\n";

static const pt_header_kv_t extra[] = {{"X-Test", "1"}};

/* Streams for /stream (chunked unless HTTP/1.0), answers /length with a
 * declared length, and hands everything else to the gateway. */
static void handler(pt_req_t *req)
{
    if (req->path.len == 7 && memcmp(req->path.p, "/stream", 7) == 0) {
        pt_http_respond_start(req, 200, extra, 1, "text/plain", -1);
        pt_http_respond_body(req, "hello", 5);
        pt_http_respond_body(req, " world", 6);
        pt_http_respond_end(req);
        return;
    }
    if (req->path.len == 7 && memcmp(req->path.p, "/length", 7) == 0) {
        pt_http_respond_start(req, 200, NULL, 0, "text/plain", 5);
        pt_http_respond_body(req, "hel", 3);
        pt_http_respond_body(req, "lo", 2);
        pt_http_respond_end(req);
        return;
    }
    pt_gateway_handle(req);
}

static int setup(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_load_buffer("t.yaml", node_yaml, sizeof(node_yaml) - 1, &errs);
    pt_snapshot_t *snap;
    pt_worker_t *w;
    char err[256];

    assert_non_null(cfg);
    assert_int_equal(pt_api_def_load_buffer(cfg, "api.yaml", api_yaml, sizeof(api_yaml) - 1, &errs),
                     0);
    assert_int_equal(pt_config_check_apis(cfg, &errs), 0);
    pt_config_errors_free(&errs);
    snap = pt_snapshot_build(cfg, 1, err, sizeof(err));
    assert_non_null(snap);
    w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(pt_worker_init(w, 0, snap, handler, NULL), 0);
    pt_snapshot_unref(snap);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    pt_worker_t *w = *state;
    /* never started: pt_worker_join would join a thread that does not exist */
    pt_worker_wsnap_release(w->snap);
    pt_block_cache_drain(&w->blocks);
    while (w->outbufs != NULL) {
        pt_outbuf_t *o = w->outbufs;
        w->outbufs = o->next;
        free(o);
    }
    pt_buf_free(&w->scratch);
    free(w->metrics);
    uv_loop_close(&w->loop);
    free(w);
    return 0;
}

/* Feeds a request string and returns the response bytes (NUL-terminated, freed by the caller). */
static char *feed(pt_worker_t *w, const char *in)
{
    pt_buf_t out;
    size_t n;
    pt_buf_init(&out, 0);
    n = pt_http_feed_detached(w, in, strlen(in), &out);
    assert_int_equal(n, out.len);
    pt_buf_append_char(&out, '\0');
    return out.data;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    const char *p = hay;
    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

static void test_static_response_has_length_date_and_id(void **state)
{
    char *r = feed(*state, "GET /t/static HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(r, "\r\nContent-Length: 5\r\n"));
    assert_non_null(strstr(r, "\r\nDate: "));
    assert_non_null(strstr(r, " GMT\r\n"));
    assert_non_null(strstr(r, "\r\nX-Request-Id: "));
    assert_null(strstr(r, "Connection:"));
    assert_non_null(strstr(r, "\r\n\r\nhello"));
    free(r);
}

static void test_chunked_response(void **state)
{
    char *r = feed(*state, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_non_null(strstr(r, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_null(strstr(r, "Content-Length"));
    assert_non_null(strstr(r, "\r\nX-Test: 1\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    free(r);
}

static void test_streamed_response_with_length(void **state)
{
    char *r = feed(*state, "GET /length HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_non_null(strstr(r, "\r\nContent-Length: 5\r\n\r\nhello"));
    assert_null(strstr(r, "chunked"));
    free(r);
}

static void test_http10_stream_ends_at_close(void **state)
{
    char *r = feed(*state, "GET /stream HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "\r\nConnection: close\r\n"));
    assert_null(strstr(r, "Transfer-Encoding"));
    assert_non_null(strstr(r, "\r\n\r\nhello world"));
    free(r);
}

static void test_head_has_headers_but_no_body(void **state)
{
    char *r = feed(*state, "HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n"
                           "HEAD /t/static HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(count(r, "HTTP/1.1 200 OK"), 2);
    assert_null(strstr(r, "hello"));
    assert_null(strstr(r, "0\r\n\r\n"));
    assert_non_null(strstr(r, "Content-Length: 5\r\n"));
    assert_int_equal(count(r, "Content-Type: "), 2);
    free(r);
}

static void test_pipelined_responses_in_order_past_the_cap(void **state)
{
    /* max_pipelined is 2: the rest is held back and parsed as output drains */
    char *r =
        feed(*state, "GET /t/static HTTP/1.1\r\nHost: a\r\n\r\n"
                     "POST /t/static HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                     "GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n"
                     "GET /t/static HTTP/1.1\r\nHost: a\r\n\r\n"
                     "POST /t/static HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "2\r\nhi\r\n0\r\n\r\n");
    const char *a = strstr(r, "200 OK"), *b = strstr(r, "201 Created"),
               *c = strstr(r, "404 Not Found");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_int_equal(count(r, "HTTP/1.1 "), 5);
    assert_int_equal(count(r, "201 Created"), 2);
    free(r);
}

static void test_limits(void **state)
{
    char big[2048], *r;
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';

    r = feed(*state, "POST /t/static HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 413 ", 13) == 0);
    assert_non_null(strstr(r, "Connection: close"));
    assert_non_null(strstr(r, "application/problem+json"));
    free(r);

    r = feed(*state, "POST /t/static HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "10\r\n0123456789abcdef\r\n1\r\nx\r\n");
    assert_true(strncmp(r, "HTTP/1.1 413 ", 13) == 0);
    free(r);

    {
        char req[4096];
        snprintf(req, sizeof(req), "GET /%.300s HTTP/1.1\r\nHost: a\r\n\r\n", big);
        r = feed(*state, req);
        assert_true(strncmp(r, "HTTP/1.1 414 ", 13) == 0);
        free(r);
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nX: %.1100s\r\n\r\n", big);
        r = feed(*state, req);
        assert_true(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
        free(r);
    }
    r = feed(*state, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n"
                     "F: 1\r\nG: 1\r\nH: 1\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
    free(r);
}

static void test_refused_shapes_close_the_connection(void **state)
{
    static const char *const bad[] = {
        ("POST /t/static HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
         "Transfer-Encoding: chunked\r\n\r\n"),
        "GET /t/static HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        "GET /t/static HTTP/1.1\r\nHost: a\r\nX:\r\n b\r\n\r\n",
        "GET /t/static HTTP/1.1\r\n\r\n",
        "GET /t/../x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /t/static HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    };
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* a valid request after the bad one must not be answered */
        char req[512], *r;
        snprintf(req, sizeof(req), "%sGET /t/static HTTP/1.1\r\nHost: a\r\n\r\n", bad[i]);
        r = feed(*state, req);
        if (strncmp(r, "HTTP/1.1 400 ", 13) != 0)
            fail_msg("shape %zu answered %s", i, r);
        if (count(r, "\r\nServer: portico\r\n") != 1)
            fail_msg("shape %zu: more than one response: %s", i, r);
        assert_non_null(strstr(r, "Connection: close"));
        free(r);
    }
}

static void test_versions(void **state)
{
    char *r = feed(*state, "GET /t/static HTTP/1.2\r\nHost: a\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 505 ", 13) == 0);
    free(r);
    r = feed(*state, "GET /t/static HTTP/x.y\r\nHost: a\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    free(r);
    r = feed(*state, "GET /t/static HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_non_null(strstr(r, "Connection: keep-alive\r\n"));
    free(r);
}

static void test_request_id_propagated_or_generated(void **state)
{
    char *r = feed(*state, "GET /t/static HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\n\r\n"
                           "GET /t/static HTTP/1.1\r\nHost: a\r\nX-Request-Id: has space\r\n\r\n");
    const char *second;
    assert_non_null(strstr(r, "X-Request-Id: abc-123\r\n"));
    second = strstr(strstr(r, "abc-123") + 1, "X-Request-Id: ");
    assert_non_null(second);
    assert_int_equal(strspn(second + 14, "0123456789abcdef"), 32);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_response_has_length_date_and_id),
        cmocka_unit_test(test_chunked_response),
        cmocka_unit_test(test_streamed_response_with_length),
        cmocka_unit_test(test_http10_stream_ends_at_close),
        cmocka_unit_test(test_head_has_headers_but_no_body),
        cmocka_unit_test(test_pipelined_responses_in_order_past_the_cap),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_refused_shapes_close_the_connection),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_request_id_propagated_or_generated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
