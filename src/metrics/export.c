/*
 * export.c - the Prometheus text exposition format 0.0.4 (GET /metrics on
 * the admin listener; docs/observability.md lists every family). Read on a
 * control pool thread: the workers' blocks are summed under the readers'
 * lock, never on an I/O loop.
 */
#include "metrics/dashboard.h"

#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "policy/stats.h"
#include "process/pool.h"

/* Label values: \ " and newline escaped. */
static void lv(pt_buf_t *b, const char *s)
{
    const char *p;
    for (p = s; *p; p++) {
        if (*p == '\\')
            pt_buf_append(b, "\\\\", 2);
        else if (*p == '"')
            pt_buf_append(b, "\\\"", 2);
        else if (*p == '\n')
            pt_buf_append(b, "\\n", 2);
        else
            pt_buf_append(b, p, 1);
    }
}

static void family(pt_buf_t *b, const char *name, const char *type, const char *help)
{
    pt_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* {api="..",route="..",method=".."} without the closing brace */
static void http_labels(pt_buf_t *b, const pt_mlabel_t *l)
{
    pt_buf_printf(b, "{api=\"");
    lv(b, l->api);
    pt_buf_printf(b, "\",route=\"");
    lv(b, l->name);
    pt_buf_printf(b, "\",method=\"");
    lv(b, l->method);
    pt_buf_printf(b, "\"");
}

static void proc_labels(pt_buf_t *b, const pt_mlabel_t *l)
{
    pt_buf_printf(b, "{api=\"");
    lv(b, l->api);
    pt_buf_printf(b, "\",process=\"");
    lv(b, l->name);
    pt_buf_printf(b, "\"");
}

/* A histogram's lines: labels is "{a=..,b=.." (no closing brace) or "". */
static void histogram(pt_buf_t *b, const char *name, const char *labels, const uint64_t *prom,
                      uint64_t count, double sum_s)
{
    uint64_t cum = 0;
    unsigned k;
    for (k = 0; k < PT_PROM_BUCKETS; k++) {
        cum += prom[k];
        pt_buf_printf(b, "%s_bucket%s%sle=\"%s\"} %llu\n", name, *labels ? labels : "{",
                      *labels ? "," : "", pt_prom_le_text[k], (unsigned long long)cum);
    }
    pt_buf_printf(b, "%s_bucket%s%sle=\"+Inf\"} %llu\n", name, *labels ? labels : "{",
                  *labels ? "," : "", (unsigned long long)count);
    pt_buf_printf(b, "%s_sum%s%s %.6f\n", name, labels, *labels ? "}" : "", sum_s);
    pt_buf_printf(b, "%s_count%s%s %llu\n", name, labels, *labels ? "}" : "",
                  (unsigned long long)count);
}

typedef struct lsum_s { /* a series summed over the workers, without its fine histogram */
    pt_mlabel_t l;
    pt_mseries_head_t h;
} lsum_t;

/* The counts can be read while a worker adds to them: a count may be read
 * before its bucket. The exposition keeps its own rules anyway: the +Inf
 * bucket is the count, never less than the finite buckets. */
static void lsum_settle(pt_mseries_head_t *o)
{
    uint64_t sum = 0;
    unsigned k;
    for (k = 0; k < PT_PROM_BUCKETS; k++)
        sum += o->prom[k];
    if (sum > o->count)
        o->count = sum;
    sum = o->code_other;
    for (k = 0; k < o->ncodes; k++)
        sum += o->code_n[k];
    if (sum > o->count)
        o->count = sum;
}

typedef struct consumer_sum_s {
    char name[PT_M_NAME_MAX];
    uint64_t n[6];
} consumer_sum_t;

static int consumer_cmp(const void *x, const void *y)
{
    const consumer_sum_t *a = x, *b = y;
    uint64_t ta = a->n[1] + a->n[2] + a->n[3] + a->n[4] + a->n[5];
    uint64_t tb = b->n[1] + b->n[2] + b->n[3] + b->n[4] + b->n[5];
    if (ta != tb)
        return ta < tb ? 1 : -1;
    return strcmp(a->name, b->name);
}

#define NAMED_MAX 200 /* metrics.top_consumers at most */
static pthread_mutex_t named_lock = PTHREAD_MUTEX_INITIALIZER;
static char named[NAMED_MAX][PT_M_NAME_MAX];
static size_t nnamed;

typedef struct upstream_sum_s {
    char api[PT_M_NAME_MAX], target[PT_M_NAME_MAX];
    uint64_t n[6], retries, connects, connect_us, ttfb_us, ttfb_n;
    uint64_t prom[PT_PROM_BUCKETS];
} upstream_sum_t;

/* {api="..",target=".." (no closing brace) */
static void upstream_labels(pt_buf_t *b, const upstream_sum_t *u)
{
    pt_buf_printf(b, "{api=\"");
    lv(b, u->api);
    pt_buf_printf(b, "\",target=\"");
    lv(b, u->target);
    pt_buf_printf(b, "\"");
}

/* A counter family of the upstream targets: the uint64_t at `field` of
 * each, divided by `scale` (1e6: microseconds as seconds). */
static void upstream_counter(pt_buf_t *b, const upstream_sum_t *us, size_t nus, const char *name,
                             const char *help, size_t field, double scale)
{
    size_t i;
    family(b, name, "counter", help);
    for (i = 0; i < nus; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&us[i] + field, sizeof(v));
        pt_buf_printf(b, "%s", name);
        upstream_labels(b, &us[i]);
        if (scale == 1)
            pt_buf_printf(b, "} %llu\n", (unsigned long long)v);
        else
            pt_buf_printf(b, "} %.6f\n", (double)v / scale);
    }
}

static void series_labels(pt_buf_t *b, const pt_mlabel_t *l)
{
    if (l->kind == PT_MK_HTTP)
        http_labels(b, l);
    else
        proc_labels(b, l);
}

/* The duration histograms of the series of a kind (lab: scratch). */
static void durations(pt_buf_t *b, pt_buf_t *lab, const lsum_t *s, uint32_t n, pt_mkind_t kind,
                      const char *name, const char *help)
{
    uint32_t id;
    family(b, name, "histogram", help);
    for (id = 0; id < n; id++) {
        if (s[id].l.kind != kind || s[id].h.count == 0)
            continue;
        lab->len = 0;
        series_labels(lab, &s[id].l);
        pt_buf_append(lab, "", 1);
        histogram(b, name, lab->data, s[id].h.prom, s[id].h.count, (double)s[id].h.sum_us / 1e6);
    }
}

/* The request (out 0) or response (out 1) bytes of the series of a kind. */
static void sizes(pt_buf_t *b, const lsum_t *s, uint32_t n, pt_mkind_t kind, const char *name,
                  const char *help, int out)
{
    uint32_t id;
    family(b, name, "counter", help);
    for (id = 0; id < n; id++) {
        if (s[id].l.kind != kind || s[id].h.count == 0)
            continue;
        pt_buf_printf(b, "%s", name);
        series_labels(b, &s[id].l);
        pt_buf_printf(b, "} %llu\n",
                      (unsigned long long)(out ? s[id].h.bytes_out : s[id].h.bytes_in));
    }
}

static void process_stats(pt_buf_t *b)
{
    FILE *f;
    long pages = 0, ticks = sysconf(_SC_CLK_TCK);
    unsigned long ut = 0, st = 0;
    unsigned long long start = 0;
    unsigned fds = 0;
    DIR *d;
    struct rlimit rl;
    double boot = 0;
    if ((f = fopen("/proc/self/statm", "r")) != NULL) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &pages) != 2)
            pages = 0;
        fclose(f);
    }
    if ((f = fopen("/proc/self/stat", "r")) != NULL) {
        char buf[1024], *p;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* the fields after the command's ")" */
        if ((p = strrchr(buf, ')')) != NULL &&
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                   "%*d %llu",
                   &ut, &st, &start) != 3)
            ut = st = 0;
    }
    if ((f = fopen("/proc/stat", "r")) != NULL) {
        char line[256];
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "btime ", 6) == 0)
                boot = strtod(line + 6, NULL);
        fclose(f);
    }
    if ((d = opendir("/proc/self/fd")) != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory's own */
    }
    family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
    pt_buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)(ut + st) / (double)ticks);
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size.");
    pt_buf_printf(b, "process_resident_memory_bytes %llu\n",
                  (unsigned long long)pages * (unsigned long long)sysconf(_SC_PAGESIZE));
    family(b, "process_open_fds", "gauge", "Open file descriptors.");
    pt_buf_printf(b, "process_open_fds %u\n", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        family(b, "process_max_fds", "gauge", "The limit of open file descriptors.");
        pt_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    family(b, "process_start_time_seconds", "gauge", "Start time since the epoch, in seconds.");
    pt_buf_printf(b, "process_start_time_seconds %.2f\n", boot + (double)start / (double)ticks);
}

int pt_metrics_prometheus(pt_buf_t *b)
{
    const pt_mnode_t *node = pt_dash_node();
    pt_wmetrics_t **w;
    unsigned nw, x, k;
    uint32_t id, n = pt_metrics_nseries();
    lsum_t *s = calloc(n ? n : 1, sizeof(*s));
    consumer_sum_t *cs = calloc(PT_M_CONSUMERS * 4 + 1, sizeof(*cs));
    upstream_sum_t *us = calloc(PT_M_UPSTREAMS * 4, sizeof(*us));
    size_t ncs = 0, nus = 0, i, j;
    uint64_t cother[6] = {0}, uother = 0, conn[PT_MC_MAX] = {0}, acc = 0, tls_ok = 0,
             tls_failed = 0, rx = 0, tx = 0, refused = 0;
    uint64_t pstat[PT_PSTAT_MAX];
    pt_mdeploy_t dep;
    pt_buf_t lab;

    if (s == NULL || cs == NULL || us == NULL) {
        free(s);
        free(cs);
        free(us);
        return -1;
    }
    pt_buf_init(&lab, 0);
    nw = pt_metrics_lock_workers(&w);
    for (id = 0; id < n; id++) {
        pt_metrics_label(id, &s[id].l);
        for (x = 0; x < nw; x++)
            pt_mseries_add_head(&s[id].h, &w[x]->series[id]);
        lsum_settle(&s[id].h);
    }
    for (x = 0; x < nw; x++) {
        const pt_wmetrics_t *m = w[x];
        for (i = 0; i < PT_M_CONSUMERS; i++) {
            const pt_mconsumer_t *c = &m->consumers[i];
            if (atomic_load_explicit(&c->hash, memory_order_acquire) == 0)
                continue;
            for (j = 0; j < ncs && strcmp(cs[j].name, c->name) != 0; j++)
                ;
            if (j == ncs) {
                if (ncs == PT_M_CONSUMERS * 4) {
                    for (k = 0; k < 6; k++)
                        cother[k] += atomic_load_explicit(&c->n[k], memory_order_relaxed);
                    continue;
                }
                snprintf(cs[ncs++].name, PT_M_NAME_MAX, "%s", c->name);
            }
            for (k = 0; k < 6; k++)
                cs[j].n[k] += atomic_load_explicit(&c->n[k], memory_order_relaxed);
        }
        for (k = 0; k < 6; k++)
            cother[k] += atomic_load_explicit(&m->consumer_other[k], memory_order_relaxed);
        for (i = 0; i < PT_M_UPSTREAMS; i++) {
            const pt_mupstream_t *u = &m->upstreams[i];
            if (atomic_load_explicit(&u->hash, memory_order_acquire) == 0)
                continue;
            for (j = 0; j < nus &&
                        (strcmp(us[j].api, u->api) != 0 || strcmp(us[j].target, u->target) != 0);
                 j++)
                ;
            if (j == nus && nus == PT_M_UPSTREAMS * 4) {
                uother++;
                continue;
            }
            if (j == nus) {
                snprintf(us[nus].api, PT_M_NAME_MAX, "%s", u->api);
                snprintf(us[nus++].target, PT_M_NAME_MAX, "%s", u->target);
            }
            for (k = 0; k < 6; k++)
                us[j].n[k] += atomic_load_explicit(&u->n[k], memory_order_relaxed);
            us[j].retries += atomic_load_explicit(&u->retries, memory_order_relaxed);
            us[j].connects += atomic_load_explicit(&u->connects, memory_order_relaxed);
            us[j].connect_us += atomic_load_explicit(&u->connect_us, memory_order_relaxed);
            us[j].ttfb_us += atomic_load_explicit(&u->ttfb_us, memory_order_relaxed);
            us[j].ttfb_n += atomic_load_explicit(&u->ttfb_n, memory_order_relaxed);
            for (k = 0; k < PT_PROM_BUCKETS; k++)
                us[j].prom[k] += atomic_load_explicit(&u->prom[k], memory_order_relaxed);
        }
        uother += atomic_load_explicit(&m->upstream_other, memory_order_relaxed);
        acc += atomic_load_explicit(&m->accepted, memory_order_relaxed);
        refused += atomic_load_explicit(&m->refused, memory_order_relaxed);
        for (k = 0; k < PT_MC_MAX; k++)
            conn[k] += atomic_load_explicit(&m->closed[k], memory_order_relaxed);
        tls_ok += atomic_load_explicit(&m->tls_ok, memory_order_relaxed);
        tls_failed += atomic_load_explicit(&m->tls_failed, memory_order_relaxed);
        rx += atomic_load_explicit(&m->rx, memory_order_relaxed);
        tx += atomic_load_explicit(&m->tx, memory_order_relaxed);
    }
    pt_metrics_unlock_workers();
    pt_policy_stats_read(pstat);
    pt_metrics_deployments(&dep);

    family(b, "portico_info", "gauge", "The node: version, node id and environment (always 1).");
    pt_buf_printf(b, "portico_info{version=\"%s\",node=\"", PT_VERSION);
    lv(b, node->node ? node->node : "");
    pt_buf_printf(b, "\",environment=\"");
    lv(b, node->environment ? node->environment : "");
    pt_buf_printf(b, "\"} 1\n");
    family(b, "portico_start_time_seconds", "gauge", "When the node started, since the epoch.");
    pt_buf_printf(b, "portico_start_time_seconds %.3f\n", (double)pt_dash_started_ms() / 1000.0);

    /* HTTP traffic (the admin listener's own is not counted) */
    family(b, "portico_http_requests_total", "counter",
           "Requests answered, by API, route, method and status code.");
    for (id = 0; id < n; id++) {
        if (s[id].l.kind != PT_MK_HTTP || s[id].h.count == 0)
            continue;
        for (k = 0; k < s[id].h.ncodes; k++) {
            pt_buf_printf(b, "portico_http_requests_total");
            http_labels(b, &s[id].l);
            pt_buf_printf(b, ",code=\"%u\"} %llu\n", s[id].h.code_key[k],
                          (unsigned long long)s[id].h.code_n[k]);
        }
        if (s[id].h.code_other > 0) {
            pt_buf_printf(b, "portico_http_requests_total");
            http_labels(b, &s[id].l);
            pt_buf_printf(b, ",code=\"other\"} %llu\n", (unsigned long long)s[id].h.code_other);
        }
    }
    durations(b, &lab, s, n, PT_MK_HTTP, "portico_http_request_duration_seconds",
              "Time from a request's first byte to its last response byte queued.");
    sizes(b, s, n, PT_MK_HTTP, "portico_http_request_size_bytes_total",
          "Request bytes received (head and body).", 0);
    sizes(b, s, n, PT_MK_HTTP, "portico_http_response_size_bytes_total",
          "Response bytes sent (head and body).", 1);

    /* consumers: the named ones keep their series for the node's life, so
       that "other" never goes down (a counter that falls reads as a reset):
       the busiest at the scrape where there was room are named */
    qsort(cs, ncs, sizeof(*cs), consumer_cmp);
    pthread_mutex_lock(&named_lock);
    for (i = 0; i < ncs && nnamed < node->top_consumers && nnamed < NAMED_MAX; i++) {
        for (j = 0; j < nnamed && strcmp(named[j], cs[i].name) != 0; j++)
            ;
        if (j == nnamed)
            snprintf(named[nnamed++], PT_M_NAME_MAX, "%s", cs[i].name);
    }
    {
        size_t keep = 0;
        for (i = 0; i < ncs; i++) {
            for (j = 0; j < nnamed && strcmp(named[j], cs[i].name) != 0; j++)
                ;
            if (j < nnamed)
                cs[keep++] = cs[i];
            else
                for (k = 0; k < 6; k++)
                    cother[k] += cs[i].n[k];
        }
        ncs = keep;
    }
    pthread_mutex_unlock(&named_lock);
    family(b, "portico_consumer_requests_total", "counter",
           "Requests of authenticated users (metrics.top_consumers of them by name, the rest as "
           "consumer=\"other\"), by status class.");
    for (i = 0; i <= ncs; i++) {
        const uint64_t *c = i < ncs ? cs[i].n : cother;
        for (k = 1; k < 6; k++) {
            if (c[k] == 0)
                continue;
            pt_buf_printf(b, "portico_consumer_requests_total{consumer=\"");
            lv(b, i < ncs ? cs[i].name : "other");
            pt_buf_printf(b, "\",class=\"%uxx\"} %llu\n", k, (unsigned long long)c[k]);
        }
    }

    /* upstreams */
    family(b, "portico_upstream_requests_total", "counter",
           "Proxied exchanges by API, target and the upstream's status class (none: no "
           "response).");
    for (i = 0; i < nus; i++)
        for (k = 0; k < 6; k++) {
            if (us[i].n[k] == 0)
                continue;
            pt_buf_printf(b, "portico_upstream_requests_total");
            upstream_labels(b, &us[i]);
            if (k == 0)
                pt_buf_printf(b, ",class=\"none\"} %llu\n", (unsigned long long)us[i].n[k]);
            else
                pt_buf_printf(b, ",class=\"%uxx\"} %llu\n", k, (unsigned long long)us[i].n[k]);
        }
    upstream_counter(b, us, nus, "portico_upstream_retries_total", "Retries to another target.",
                     offsetof(upstream_sum_t, retries), 1);
    upstream_counter(b, us, nus, "portico_upstream_connects_total",
                     "New connections to the target (pooled ones reused are not counted).",
                     offsetof(upstream_sum_t, connects), 1);
    upstream_counter(b, us, nus, "portico_upstream_connect_seconds_total",
                     "Time spent connecting to the target.", offsetof(upstream_sum_t, connect_us),
                     1e6);
    family(b, "portico_upstream_response_seconds", "histogram",
           "Time from the exchange's start to the upstream's response head.");
    for (i = 0; i < nus; i++) {
        uint64_t sum = 0;
        lab.len = 0;
        upstream_labels(&lab, &us[i]);
        for (k = 0; k < PT_PROM_BUCKETS; k++)
            sum += us[i].prom[k];
        histogram(b, "portico_upstream_response_seconds", lab.data, us[i].prom,
                  us[i].ttfb_n > sum ? us[i].ttfb_n : sum, (double)us[i].ttfb_us / 1e6);
    }
    (void)uother;

    /* processes */
    family(b, "portico_process_executions_total", "counter",
           "Process executions by API, process and outcome.");
    for (id = 0; id < n; id++) {
        if (s[id].l.kind != PT_MK_PROCESS || s[id].h.count == 0)
            continue;
        for (k = 0; k < s[id].h.ncodes; k++) {
            if (s[id].h.code_key[k] < 1 || s[id].h.code_key[k] > PT_MX_MAX)
                continue;
            pt_buf_printf(b, "portico_process_executions_total");
            proc_labels(b, &s[id].l);
            pt_buf_printf(b, ",status=\"%s\"} %llu\n", pt_mexec_names[s[id].h.code_key[k] - 1],
                          (unsigned long long)s[id].h.code_n[k]);
        }
    }
    durations(b, &lab, s, n, PT_MK_PROCESS, "portico_process_duration_seconds",
              "How long process executions ran (not counting their wait in the queue).");
    sizes(b, s, n, PT_MK_PROCESS, "portico_process_request_size_bytes_total",
          "Request body bytes given to process executions.", 0);
    sizes(b, s, n, PT_MK_PROCESS, "portico_process_response_size_bytes_total",
          "Result bytes of process executions.", 1);
    family(b, "portico_process_pool_threads", "gauge", "Threads of the process pool.");
    pt_buf_printf(b, "portico_process_pool_threads %u\n", node->pool_threads);
    family(b, "portico_process_pool_running", "gauge", "Executions running now.");
    pt_buf_printf(b, "portico_process_pool_running %u\n",
                  node->pool ? pt_procpool_running(node->pool) : 0);
    family(b, "portico_process_pool_queued", "gauge", "Executions waiting for a thread now.");
    pt_buf_printf(b, "portico_process_pool_queued %u\n",
                  node->pool ? pt_procpool_queued(node->pool) : 0);
    family(b, "portico_process_pool_max_queued", "gauge",
           "Executions that may wait; past it the node answers 503.");
    pt_buf_printf(b, "portico_process_pool_max_queued %u\n", node->pool_max_queued);
    family(b, "portico_process_queue_wait_seconds", "histogram",
           "How long executions waited for a pool thread.");
    if (pt_metrics_qwait != 0 && pt_metrics_qwait < n)
        histogram(b, "portico_process_queue_wait_seconds", "", s[pt_metrics_qwait].h.prom,
                  s[pt_metrics_qwait].h.count, (double)s[pt_metrics_qwait].h.sum_us / 1e6);
    else {
        static const uint64_t zero[PT_PROM_BUCKETS];
        histogram(b, "portico_process_queue_wait_seconds", "", zero, 0, 0);
    }

    /* policies: "auth.unknown" -> policy="auth", decision="unknown" */
    family(b, "portico_policy_decisions_total", "counter",
           "Decisions of the policies (docs/security.md).");
    for (k = 0; k < PT_PSTAT_MAX; k++) {
        const char *name = pt_pstat_names[k], *dot = strchr(name, '.');
        if (dot == NULL)
            continue;
        pt_buf_printf(b, "portico_policy_decisions_total{policy=\"%.*s\",decision=\"%s\"} %llu\n",
                      (int)(dot - name), name, dot + 1, (unsigned long long)pstat[k]);
    }

    /* connections */
    {
        uint64_t closed = 0;
        for (k = 0; k < PT_MC_MAX; k++)
            closed += conn[k];
        family(b, "portico_connections_open", "gauge", "Client connections open now.");
        pt_buf_printf(b, "portico_connections_open %llu\n",
                      (unsigned long long)(acc > closed ? acc - closed : 0));
    }
    family(b, "portico_connections_accepted_total", "counter", "Client connections accepted.");
    pt_buf_printf(b, "portico_connections_accepted_total %llu\n", (unsigned long long)acc);
    family(b, "portico_connections_refused_total", "counter",
           "Client connections closed at once: the worker was at limits.max_connections.");
    pt_buf_printf(b, "portico_connections_refused_total %llu\n", (unsigned long long)refused);
    family(b, "portico_connections_closed_total", "counter",
           "Client connections closed, by reason.");
    for (k = 0; k < PT_MC_MAX; k++)
        pt_buf_printf(b, "portico_connections_closed_total{reason=\"%s\"} %llu\n",
                      pt_mclose_names[k], (unsigned long long)conn[k]);
    family(b, "portico_tls_handshakes_total", "counter", "TLS handshakes with clients.");
    pt_buf_printf(b, "portico_tls_handshakes_total{result=\"ok\"} %llu\n",
                  (unsigned long long)tls_ok);
    pt_buf_printf(b, "portico_tls_handshakes_total{result=\"failed\"} %llu\n",
                  (unsigned long long)tls_failed);
    family(b, "portico_network_received_bytes_total", "counter",
           "Bytes read from client connections (before TLS decryption).");
    pt_buf_printf(b, "portico_network_received_bytes_total %llu\n", (unsigned long long)rx);
    family(b, "portico_network_sent_bytes_total", "counter",
           "Bytes written to client connections (after TLS encryption).");
    pt_buf_printf(b, "portico_network_sent_bytes_total %llu\n", (unsigned long long)tx);

    /* deployments */
    family(b, "portico_deployments_total", "counter",
           "Deployment changes of this node's environment made through it, by result.");
    pt_buf_printf(b, "portico_deployments_total{result=\"ok\"} %llu\n", (unsigned long long)dep.ok);
    pt_buf_printf(b, "portico_deployments_total{result=\"failed\"} %llu\n",
                  (unsigned long long)dep.failed);
    family(b, "portico_deployment_duration_seconds", "histogram",
           "From the admin call to the new snapshot published on every worker.");
    histogram(b, "portico_deployment_duration_seconds", "", dep.prom, dep.ok + dep.failed,
              (double)dep.sum_us / 1e6);

    process_stats(b);
    pt_buf_free(&lab);
    free(s);
    free(cs);
    free(us);
    return b->data != NULL ? 0 : -1;
}
