/*
 * fuzz_http.c - libFuzzer target for the HTTP request parser glue: request
 * heads, limits, smuggling checks, pipelining, chunked bodies, routing and
 * the response writer, on a connection without a socket.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "event/worker.h"
#include "gateway/dispatch.h"
#include "gateway/snapshot.h"
#include "http/http.h"

static const char node_yaml[] = "listen:\n"
                                "  - address: 127.0.0.1:0\n"
                                "limits:\n"
                                "  max_header_size: 4KiB\n"
                                "  max_uri_length: 1KiB\n"
                                "  max_headers: 32\n"
                                "  max_body_size: 64KiB\n"
                                "  max_pipelined: 8\n"
                                "log:\n"
                                "  access_log: \"off\"\n";

static const char api_yaml[] = "name: fz\n"
                               "base_path: /fz/v1\n"
                               "kind: service\n"
                               "title: Fuzz\n"
                               "version: \"1\"\n"
                               "routes:\n"
                               "  - method: GET\n"
                               "    path: /items/{id}\n"
                               "    respond: {body: hello}\n"
                               "  - method: POST\n"
                               "    path: /items\n"
                               "    respond: {status: 201, body: {ok: true}}\n"
                               "  - method: \"*\"\n"
                               "    path: /any/{a}/static\n"
                               "    respond: {status: 204}\n";

static pt_worker_t *worker;

static void setup(void)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_load_buffer("fuzz.yaml", node_yaml, sizeof(node_yaml) - 1, &errs);
    pt_snapshot_t *snap;
    char err[256];
    if (cfg == NULL ||
        pt_api_def_load_buffer(cfg, "fz.yaml", api_yaml, sizeof(api_yaml) - 1, &errs) != 0 ||
        pt_config_check_apis(cfg, &errs) != 0)
        abort();
    snap = pt_snapshot_build(cfg, 1, err, sizeof(err));
    if (snap == NULL)
        abort();
    worker = calloc(1, sizeof(*worker));
    if (worker == NULL || pt_worker_init(worker, 0, snap, pt_gateway_handle, NULL) != 0)
        abort();
    pt_snapshot_unref(snap); /* the worker holds its own reference */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (worker == NULL)
        setup();
    pt_http_feed_detached(worker, (const char *)data, size, NULL);
    return 0;
}
