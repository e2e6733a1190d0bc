/*
 * record.c - what a finished request adds to its worker's metrics (on the
 * worker's loop: relaxed stores into its own block, no lock, no
 * allocation).
 */
#include "metrics/metrics.h"

#include "event/worker-t.h"
#include "gateway/router.h"
#include "http/conn-i.h"

void pt_metrics_upstream_failed(pt_worker_t *w, const char *api, const char *target)
{
    pt_mupstream_t *u;
    if (w->metrics == NULL || !pt_metrics_enabled)
        return;
    if ((u = pt_metrics_upstream(w->metrics, api, target)) != NULL)
        PT_M_INC(u->n[0], 1);
    else
        PT_M_INC(w->metrics->upstream_other, 1);
}

void pt_metrics_request(pt_conn_t *c, pt_req_t *req, uint64_t now_ns)
{
    pt_worker_t *w = c->worker;
    pt_wmetrics_t *m = w->metrics;
    const pt_snapshot_t *s = req->snap != NULL ? req->snap->snap : NULL;
    const pt_route_def_t *route = req->match.route;
    const pt_api_def_t *api = req->match.api;
    uint64_t us = (now_ns - req->start_ns) / 1000;
    unsigned mc, cls = (unsigned)req->status / 100;
    uint32_t id;

    if (m == NULL || !pt_metrics_enabled)
        return;
    if (s != NULL && c->listener != NULL && c->listener->index < s->config->nlisteners &&
        s->config->listeners[c->listener->index].admin)
        return; /* the observer's own traffic */
    if (cls > 5)
        cls = 5;
    mc = req->method != NULL ? pt_metrics_method_class(req->method, req->method_len)
                             : PT_M_METHODS - 1;
    if (route != NULL)
        id = route->metric != 0 && route->method[0] == '*' ? route->metric + mc
             : mc == 1 && route->metric_head != 0          ? route->metric_head
                                                           : route->metric;
    else if (api != NULL)
        id = api->metric_any != 0 ? api->metric_any + mc : 0;
    else
        id = pt_metrics_unmatched != 0 ? pt_metrics_unmatched + mc : 0;
    if (id >= PT_M_SERIES_MAX)
        id = 0;
    pt_mseries_record(&m->series[id], (unsigned)req->status, us, req->bytes_in, req->bytes_out);
    if (req->user != NULL) {
        pt_mconsumer_t *u = pt_metrics_consumer(m, req->user->name);
        if (u != NULL)
            PT_M_INC(u->n[cls], 1);
        else
            PT_M_INC(m->consumer_other[cls], 1);
    }
    if (req->upstream != NULL && api != NULL) {
        pt_mupstream_t *u = pt_metrics_upstream(m, api->name, req->upstream);
        if (u == NULL) {
            PT_M_INC(m->upstream_other, 1);
        } else {
            unsigned ucls = req->upstream_status / 100, k;
            PT_M_INC(u->n[ucls <= 5 ? ucls : 5], 1);
            PT_M_INC(u->retries, req->upstream_retries);
            if (req->upstream_connect_us != 0) {
                PT_M_INC(u->connects, 1);
                PT_M_INC(u->connect_us, req->upstream_connect_us);
            }
            if (req->upstream_status != 0) {
                PT_M_INC(u->ttfb_n, 1);
                PT_M_INC(u->ttfb_us, req->upstream_ttfb_us);
                if ((k = pt_prom_index(req->upstream_ttfb_us)) < PT_PROM_BUCKETS)
                    PT_M_INC(u->prom[k], 1);
            }
        }
    }
    if (req->status >= 400)
        pt_metrics_error(m, id, req->status, us, req->request_id, req->request_id_len,
                         req->method != NULL ? req->method : "", req->method_len,
                         req->path.p != NULL ? req->path.p : "", req->path.len,
                         (uint64_t)((int64_t)now_ns + w->wall_offset_ns) / 1000000u);
}
