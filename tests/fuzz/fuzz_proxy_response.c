/*
 * fuzz_proxy_response.c - libFuzzer target for the upstream response glue of
 * proxy APIs: an arbitrary upstream response is relayed to a client request
 * (GET, or HEAD when the first byte is odd) through the same llhttp callbacks
 * as a real upstream connection, and the client response is written to a
 * socketless connection.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "event/worker.h"
#include "gateway/snapshot.h"
#include "http/http.h"
#include "proxy/proxy.h"

static const char node_yaml[] = "listen:\n"
                                "  - address: 127.0.0.1:0\n"
                                "log:\n"
                                "  access_log: \"off\"\n";

static pt_worker_t *worker;
static const char *fz_data;
static size_t fz_len;

static void handler(pt_req_t *req)
{
    pt_proxy_fuzz_response(req, fz_data, fz_len);
}

static void setup(void)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_load_buffer("fuzz.yaml", node_yaml, sizeof(node_yaml) - 1, &errs);
    pt_snapshot_t *snap;
    char err[256];
    if (cfg == NULL)
        abort();
    snap = pt_snapshot_build(cfg, 1, err, sizeof(err));
    if (snap == NULL)
        abort();
    worker = calloc(1, sizeof(*worker));
    if (worker == NULL || pt_worker_init(worker, 0, snap, handler, NULL) != 0)
        abort();
    pt_snapshot_unref(snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char get[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    static const char head[] = "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n";
    int is_head;
    if (worker == NULL)
        setup();
    if (size == 0)
        return 0;
    is_head = data[0] & 1;
    fz_data = (const char *)data + 1;
    fz_len = size - 1;
    if (is_head)
        pt_http_feed_detached(worker, head, sizeof(head) - 1, NULL);
    else
        pt_http_feed_detached(worker, get, sizeof(get) - 1, NULL);
    return 0;
}
