/*
 * metrics.c - the metrics core: recording on the I/O loops, series ids,
 * merging for readers (see metrics.h).
 */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config-t.h"

const uint64_t pt_prom_le_us[PT_PROM_BUCKETS] = {500,     1000,    2500,    5000,    10000,
                                                 25000,   50000,   100000,  250000,  500000,
                                                 1000000, 2500000, 5000000, 10000000};
const char *const pt_prom_le_text[PT_PROM_BUCKETS] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                                      "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                                      "1",      "2.5",   "5",      "10"};
const char *const pt_m_method_names[PT_M_METHODS] = {"GET",   "HEAD",   "POST",    "PUT",
                                                     "PATCH", "DELETE", "OPTIONS", "OTHER"};
const char *const pt_mexec_names[PT_MX_MAX] = {"ok",      "client_error",  "server_error",
                                               "timeout", "queue_timeout", "canceled"};
const char *const pt_mclose_names[PT_MC_MAX] = {"client", "idle_timeout", "timeout", "error",
                                                "server"};

int pt_metrics_enabled = 1;
uint32_t pt_metrics_unmatched;
uint32_t pt_metrics_qwait;

/* ---------------------------------------------------------------- writing */

void pt_mseries_record(pt_mseries_t *s, unsigned code, uint64_t us, uint64_t in, uint64_t out)
{
    unsigned i;
    double sq;
    uint64_t bits;

    PT_M_INC(s->count, 1);
    PT_M_INC(s->bytes_in, in);
    PT_M_INC(s->bytes_out, out);
    PT_M_INC(s->sum_us, us);
    bits = atomic_load_explicit(&s->sumsq, memory_order_relaxed);
    memcpy(&sq, &bits, sizeof(sq));
    sq += (double)us * (double)us;
    memcpy(&bits, &sq, sizeof(bits));
    atomic_store_explicit(&s->sumsq, bits, memory_order_relaxed);
    PT_M_INC(s->hist.b[pt_hist_index(us)], 1);
    i = pt_prom_index(us);
    if (i < PT_PROM_BUCKETS)
        PT_M_INC(s->prom[i], 1);
    for (i = 0; i < PT_M_CODES; i++) {
        uint32_t k = atomic_load_explicit(&s->code_key[i], memory_order_relaxed);
        if (k == code) {
            PT_M_INC(s->code_n[i], 1);
            return;
        }
        if (k == 0) {
            /* claim the slot: its count first, then the key readers look for */
            atomic_store_explicit(&s->code_n[i], 1, memory_order_relaxed);
            atomic_store_explicit(&s->code_key[i], code, memory_order_release);
            return;
        }
    }
    PT_M_INC(s->code_other, 1);
}

unsigned pt_metrics_method_class(const char *m, size_t len)
{
    unsigned i;
    for (i = 0; i + 1 < PT_M_METHODS; i++)
        if (strlen(pt_m_method_names[i]) == len && memcmp(pt_m_method_names[i], m, len) == 0)
            return i;
    return PT_M_METHODS - 1;
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void copy_name(char *dst, const char *src)
{
    size_t n = strnlen(src, PT_M_NAME_MAX - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

#define PROBES 16

pt_mconsumer_t *pt_metrics_consumer(pt_wmetrics_t *m, const char *name)
{
    uint64_t h = fnv(0xcbf29ce484222325ull, name) | 1;
    unsigned i, k;
    for (i = 0; i < PROBES; i++) {
        pt_mconsumer_t *c = &m->consumers[(h + i) % PT_M_CONSUMERS];
        uint64_t ch = atomic_load_explicit(&c->hash, memory_order_relaxed);
        if (ch == h && strncmp(c->name, name, PT_M_NAME_MAX - 1) == 0)
            return c;
        if (ch == 0) {
            copy_name(c->name, name);
            for (k = 0; k < 6; k++)
                atomic_store_explicit(&c->n[k], 0, memory_order_relaxed);
            atomic_store_explicit(&c->hash, h, memory_order_release);
            return c;
        }
    }
    return NULL;
}

pt_mupstream_t *pt_metrics_upstream(pt_wmetrics_t *m, const char *api, const char *target)
{
    uint64_t h = fnv(fnv(0xcbf29ce484222325ull, api) ^ 0xff, target) | 1;
    unsigned i;
    for (i = 0; i < PROBES; i++) {
        pt_mupstream_t *u = &m->upstreams[(h + i) % PT_M_UPSTREAMS];
        uint64_t uh = atomic_load_explicit(&u->hash, memory_order_relaxed);
        if (uh == h && strncmp(u->api, api, PT_M_NAME_MAX - 1) == 0 &&
            strncmp(u->target, target, PT_M_NAME_MAX - 1) == 0)
            return u;
        if (uh == 0) {
            copy_name(u->api, api);
            copy_name(u->target, target);
            atomic_store_explicit(&u->hash, h, memory_order_release);
            return u;
        }
    }
    return NULL;
}

void pt_metrics_error(pt_wmetrics_t *m, uint32_t series, int status, uint64_t us, const char *rid,
                      size_t rid_len, const char *method, size_t mlen, const char *path,
                      size_t plen, uint64_t time_ms)
{
    uint64_t n = atomic_load_explicit(&m->nerrors, memory_order_relaxed);
    pt_merror_t *e = &m->errors[n % PT_M_RECENT];
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);

    atomic_store_explicit(&e->seq, seq + 1, memory_order_relaxed); /* odd: being written */
    atomic_thread_fence(memory_order_release);
    e->series = series;
    e->status = (uint16_t)status;
    e->duration_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    e->time_ms = time_ms;
    if (rid_len > sizeof(e->request_id) - 1)
        rid_len = sizeof(e->request_id) - 1;
    memcpy(e->request_id, rid, rid_len);
    e->request_id[rid_len] = '\0';
    if (mlen > sizeof(e->method) - 1)
        mlen = sizeof(e->method) - 1;
    memcpy(e->method, method, mlen);
    e->method[mlen] = '\0';
    if (plen > sizeof(e->path) - 1)
        plen = sizeof(e->path) - 1;
    memcpy(e->path, path, plen);
    e->path[plen] = '\0';
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
    atomic_store_explicit(&m->nerrors, n + 1, memory_order_release);
}

/* ---------------------------------------------------------------- series */

static pthread_mutex_t series_lock = PTHREAD_MUTEX_INITIALIZER;
static pt_mlabel_t labels[PT_M_SERIES_MAX];
static _Atomic uint32_t nseries;

uint32_t pt_metrics_series(pt_mkind_t kind, const char *api, const char *name, const char *method)
{
    uint32_t i, n, id = 0;
    pthread_mutex_lock(&series_lock);
    n = atomic_load_explicit(&nseries, memory_order_relaxed);
    if (n == 0) {
        /* id 0: everything past the table */
        labels[0].kind = PT_MK_HTTP;
        snprintf(labels[0].api, sizeof(labels[0].api), "%s", "other");
        snprintf(labels[0].name, sizeof(labels[0].name), "%s", "other");
        snprintf(labels[0].method, sizeof(labels[0].method), "%s", "OTHER");
        n = 1;
        atomic_store_explicit(&nseries, n, memory_order_release);
    }
    for (i = 1; i < n; i++) {
        const pt_mlabel_t *l = &labels[i];
        if (l->kind == kind && strcmp(l->api, api) == 0 && strcmp(l->name, name) == 0 &&
            strcmp(l->method, method) == 0) {
            id = i;
            goto done;
        }
    }
    if (n < PT_M_SERIES_MAX) {
        pt_mlabel_t *l = &labels[n];
        l->kind = (uint8_t)kind;
        snprintf(l->api, sizeof(l->api), "%s", api);
        snprintf(l->name, sizeof(l->name), "%s", name);
        snprintf(l->method, sizeof(l->method), "%s", method);
        id = n;
        atomic_store_explicit(&nseries, n + 1, memory_order_release);
    }
done:
    pthread_mutex_unlock(&series_lock);
    return id;
}

uint32_t pt_metrics_nseries(void)
{
    return atomic_load_explicit(&nseries, memory_order_acquire);
}

void pt_metrics_label(uint32_t id, pt_mlabel_t *out)
{
    /* labels below nseries never change once published */
    *out = labels[id < PT_M_SERIES_MAX ? id : 0];
}

/* The series of a route: one, or one per method class for "*" routes
 * (consecutive ids). */
static uint32_t methods_base(pt_mkind_t kind, const char *api, const char *name)
{
    uint32_t base = 0, id;
    unsigned k;
    for (k = 0; k < PT_M_METHODS; k++) {
        id = pt_metrics_series(kind, api, name, pt_m_method_names[k]);
        if (k == 0)
            base = id;
        else if (id != base + k)
            return 0; /* not consecutive (table full, or registered apart): "other" */
    }
    return base;
}

void pt_metrics_assign(pt_config_t *cfg)
{
    size_t i, r;
    if (pt_metrics_unmatched == 0)
        pt_metrics_unmatched = methods_base(PT_MK_HTTP, "", "");
    if (pt_metrics_qwait == 0)
        pt_metrics_qwait = pt_metrics_series(PT_MK_POOL, "", "queue_wait", "");
    for (i = 0; i < cfg->napis; i++) {
        pt_api_def_t *a = &cfg->apis[i];
        a->metric_any = methods_base(PT_MK_HTTP, a->name, "");
        for (r = 0; r < a->nroutes; r++) {
            pt_route_def_t *rt = &a->routes[r];
            rt->metric = strcmp(rt->method, "*") == 0
                             ? methods_base(PT_MK_HTTP, a->name, rt->name)
                             : pt_metrics_series(PT_MK_HTTP, a->name, rt->name, rt->method);
            if (strcmp(rt->method, "GET") == 0) /* HEAD is answered by GET routes */
                rt->metric_head = pt_metrics_series(PT_MK_HTTP, a->name, rt->name, "HEAD");
        }
        for (r = 0; r < a->nsoap_ops; r++)
            a->soap_ops[r].metric =
                pt_metrics_series(PT_MK_HTTP, a->name, a->soap_ops[r].name, "POST");
        for (r = 0; r < a->nprocesses; r++)
            a->processes[r].metric =
                pt_metrics_series(PT_MK_PROCESS, a->name, a->processes[r].name, "");
    }
}

/* ---------------------------------------------------------------- reading */

static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static pt_wmetrics_t **workers;
static unsigned nworkers;

void pt_metrics_register(pt_wmetrics_t **blocks, unsigned n)
{
    pthread_mutex_lock(&workers_lock);
    workers = blocks;
    nworkers = n;
    pthread_mutex_unlock(&workers_lock);
}

unsigned pt_metrics_lock_workers(pt_wmetrics_t ***blocks)
{
    pthread_mutex_lock(&workers_lock);
    *blocks = workers;
    return nworkers;
}

void pt_metrics_unlock_workers(void)
{
    pthread_mutex_unlock(&workers_lock);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void pt_mseries_add(pt_mseries_sum_t *out, const pt_mseries_t *s)
{
    unsigned i;
    if (LOAD(s->count) == 0)
        return;
    pt_mseries_add_head(&out->h, s);
    for (i = 0; i < PT_HIST_BUCKETS; i++)
        out->hist[i] += LOAD(s->hist.b[i]);
}

void pt_mseries_add_head(pt_mseries_head_t *out, const pt_mseries_t *s)
{
    unsigned i, j;
    uint64_t bits, count = LOAD(s->count);
    double sq;
    if (count == 0)
        return;
    out->count += count;
    out->bytes_in += LOAD(s->bytes_in);
    out->bytes_out += LOAD(s->bytes_out);
    out->sum_us += LOAD(s->sum_us);
    bits = LOAD(s->sumsq);
    memcpy(&sq, &bits, sizeof(sq));
    out->sumsq += sq;
    out->code_other += LOAD(s->code_other);
    for (i = 0; i < PT_PROM_BUCKETS; i++)
        out->prom[i] += LOAD(s->prom[i]);
    for (i = 0; i < PT_M_CODES; i++) {
        uint32_t k = atomic_load_explicit(&s->code_key[i], memory_order_acquire);
        if (k == 0)
            break;
        for (j = 0; j < out->ncodes && out->code_key[j] != k; j++)
            ;
        if (j == out->ncodes) {
            if (j == PT_M_CODES * 4) {
                out->code_other += LOAD(s->code_n[i]);
                continue;
            }
            out->code_key[j] = k;
            out->code_n[j] = 0;
            out->ncodes++;
        }
        out->code_n[j] += LOAD(s->code_n[i]);
    }
}

double pt_hist_quantile(const uint64_t *hist, uint64_t n, double q)
{
    uint64_t rank, seen = 0;
    unsigned i;
    if (n == 0)
        return 0;
    rank = (uint64_t)(q * (double)n + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    for (i = 0; i < PT_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) {
            if (i < PT_HIST_SUB)
                return (double)i; /* exact */
            return (double)pt_hist_lower(i) + (double)pt_hist_width(i) / 2.0;
        }
    }
    return (double)PT_HIST_MAX_US;
}

/* ---------------------------------------------------------------- deployments */

static pthread_mutex_t deploy_lock = PTHREAD_MUTEX_INITIALIZER;
static pt_mdeploy_t deploys;

void pt_metrics_deployment(int ok, uint64_t ns)
{
    uint64_t us = ns / 1000;
    unsigned i = pt_prom_index(us);
    pthread_mutex_lock(&deploy_lock);
    if (ok)
        deploys.ok++;
    else
        deploys.failed++;
    deploys.sum_us += us;
    if (i < PT_PROM_BUCKETS)
        deploys.prom[i]++;
    pthread_mutex_unlock(&deploy_lock);
}

void pt_metrics_deployments(pt_mdeploy_t *out)
{
    pthread_mutex_lock(&deploy_lock);
    *out = deploys;
    pthread_mutex_unlock(&deploy_lock);
}
