/*
 * dashboard.c - the sampler behind the live dashboard (see dashboard.h).
 */
#include "metrics/dashboard.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/store.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "process/pool.h"

#define RING      900  /* seconds of per-second points */
#define MINUTES   1440 /* minutes of rows in memory */
#define CODES_MAX 64
#define CONS_MAX  512
#define ERRS_MAX  50

typedef struct spoint_s {
    int64_t t; /* epoch second; a slot holding another second is empty */
    uint32_t n, n4, n5;
    float p50, p95, p99; /* ms */
} spoint_t;

/* An accumulation: a minute's, or a window's when reading. */
typedef struct macc_s {
    uint64_t n, in, out, sum_us;
    double sumsq;
    uint32_t code_key[CODES_MAX];
    uint64_t code_n[CODES_MAX];
    unsigned ncodes;
    uint64_t hist[PT_HIST_BUCKETS];
} macc_t;

typedef struct sser_s {
    pt_mlabel_t label;
    pt_mseries_sum_t prev; /* cumulative at the last sample */
    spoint_t ring[RING];
    macc_t min; /* the current minute */
} sser_t;

typedef struct sapi_s {
    char name[PT_M_NAME_MAX];
    spoint_t ring[RING];
    macc_t sec; /* this second's, while sampling */
} sapi_t;

/* A minute of one series (or one consumer: sid = UINT32_MAX, name set). */
typedef struct mrow_s {
    uint32_t sid;
    char consumer[PT_M_NAME_MAX];
    uint64_t n, in, out, sum_us;
    double sumsq;
    unsigned ncodes, nh;
    uint32_t *code_key;
    uint64_t *code_n;
    uint16_t *hidx;
    uint64_t *hn;
} mrow_t;

typedef struct mslot_s {
    int64_t minute; /* epoch minute; 0 = empty */
    mrow_t *rows;
    size_t n, cap;
} mslot_t;

typedef struct scons_s {
    char name[PT_M_NAME_MAX];
    uint64_t prev[6], min[6];
} scons_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int running, stopping;
    pt_mnode_t node;
    char node_id[64], env[64];
    int64_t started_ms;
    sser_t *ser[PT_M_SERIES_MAX];
    sapi_t **apis;
    size_t napis;
    spoint_t node_ring[RING];
    macc_t node_sec;
    mslot_t minutes[MINUTES];
    int64_t cur_minute;
    scons_t cons[CONS_MAX];
    size_t ncons;
    uint64_t cons_other_prev[6], cons_other_min[6];
    int64_t last_sweep_ms;
    pt_mseries_sum_t *tmp;
} D = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* the latest tick, for the SSE streams (seqlock: odd while written) */
static struct {
    _Atomic uint64_t seq;
    size_t len;
    char data[PT_DASH_TICK_MAX];
} tick;

const pt_mnode_t *pt_dash_node(void)
{
    return &D.node;
}

int64_t pt_dash_started_ms(void)
{
    return D.started_ms;
}

/* ---------------------------------------------------------------- accumulations */

static void acc_code(macc_t *a, uint32_t k, uint64_t n)
{
    unsigned j;
    if (n == 0)
        return;
    for (j = 0; j < a->ncodes && a->code_key[j] != k; j++)
        ;
    if (j == a->ncodes) {
        if (j == CODES_MAX)
            return;
        a->code_key[j] = k;
        a->code_n[j] = 0;
        a->ncodes++;
    }
    a->code_n[j] += n;
}

static void acc_add(macc_t *a, const macc_t *b)
{
    unsigned i;
    a->n += b->n;
    a->in += b->in;
    a->out += b->out;
    a->sum_us += b->sum_us;
    a->sumsq += b->sumsq;
    for (i = 0; i < b->ncodes; i++)
        acc_code(a, b->code_key[i], b->code_n[i]);
    for (i = 0; i < PT_HIST_BUCKETS; i++)
        a->hist[i] += b->hist[i];
}

static void acc_add_row(macc_t *a, const mrow_t *r)
{
    unsigned i;
    a->n += r->n;
    a->in += r->in;
    a->out += r->out;
    a->sum_us += r->sum_us;
    a->sumsq += r->sumsq;
    for (i = 0; i < r->ncodes; i++)
        acc_code(a, r->code_key[i], r->code_n[i]);
    for (i = 0; i < r->nh; i++)
        if (r->hidx[i] < PT_HIST_BUCKETS)
            a->hist[r->hidx[i]] += r->hn[i];
}

/* requests answered 4xx / 5xx (HTTP series: codes are statuses) */
static void acc_classes(const macc_t *a, uint64_t *n4, uint64_t *n5)
{
    unsigned i;
    *n4 = *n5 = 0;
    for (i = 0; i < a->ncodes; i++) {
        if (a->code_key[i] >= 400 && a->code_key[i] < 500)
            *n4 += a->code_n[i];
        else if (a->code_key[i] >= 500)
            *n5 += a->code_n[i];
    }
}

static double q_ms(const macc_t *a, double q)
{
    return pt_hist_quantile(a->hist, a->n, q) / 1000.0;
}

static double max_ms(const uint64_t *hist)
{
    unsigned i = PT_HIST_BUCKETS;
    while (i > 0 && hist[i - 1] == 0)
        i--;
    if (i == 0)
        return 0;
    i--;
    return (double)(pt_hist_lower(i) + pt_hist_width(i) - 1) / 1000.0;
}

static void point_of(spoint_t *p, int64_t t, const macc_t *a)
{
    uint64_t n4, n5;
    acc_classes(a, &n4, &n5);
    p->t = t;
    p->n = (uint32_t)a->n;
    p->n4 = (uint32_t)n4;
    p->n5 = (uint32_t)n5;
    p->p50 = (float)q_ms(a, 0.50);
    p->p95 = (float)q_ms(a, 0.95);
    p->p99 = (float)q_ms(a, 0.99);
}

/* ---------------------------------------------------------------- minute rows */

static void row_free(mrow_t *r)
{
    free(r->code_n); /* the block's start (row_alloc) */
}

static mrow_t *row_add_in(mslot_t *slots, int64_t minute)
{
    mslot_t *s = &slots[minute % MINUTES];
    if (s->minute != minute) {
        size_t i;
        for (i = 0; i < s->n; i++)
            row_free(&s->rows[i]);
        s->n = 0;
        s->minute = minute;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        mrow_t *r = realloc(s->rows, cap * sizeof(*r));
        if (r == NULL)
            return NULL;
        s->rows = r;
        s->cap = cap;
    }
    memset(&s->rows[s->n], 0, sizeof(mrow_t));
    return &s->rows[s->n++];
}

/* One allocation holds a row's codes and histogram. */
static mrow_t *row_add(int64_t minute)
{
    return row_add_in(D.minutes, minute);
}

static void slots_free(mslot_t *slots)
{
    size_t i, k;
    for (i = 0; i < MINUTES; i++) {
        for (k = 0; k < slots[i].n; k++)
            row_free(&slots[i].rows[k]);
        free(slots[i].rows);
    }
    free(slots);
}

static int row_alloc(mrow_t *r, unsigned ncodes, unsigned nh)
{
    size_t sz = ncodes * (sizeof(uint32_t) + sizeof(uint64_t)) +
                nh * (sizeof(uint16_t) + sizeof(uint64_t)) + 8;
    char *p = malloc(sz);
    if (p == NULL)
        return -1;
    r->code_n = (uint64_t *)(void *)p;
    r->hn = r->code_n + ncodes;
    r->code_key = (uint32_t *)(void *)(r->hn + nh);
    r->hidx = (uint16_t *)(void *)(r->code_key + ncodes);
    r->ncodes = ncodes;
    r->nh = nh;
    return 0; /* code_n is the block's start, for row_free */
}

static int row_from_acc(mrow_t *r, const macc_t *a)
{
    unsigned i, nh = 0, k = 0;
    for (i = 0; i < PT_HIST_BUCKETS; i++)
        nh += a->hist[i] != 0;
    if (row_alloc(r, a->ncodes, nh) != 0)
        return -1;
    r->n = a->n;
    r->in = a->in;
    r->out = a->out;
    r->sum_us = a->sum_us;
    r->sumsq = a->sumsq;
    memcpy(r->code_key, a->code_key, a->ncodes * sizeof(uint32_t));
    memcpy(r->code_n, a->code_n, a->ncodes * sizeof(uint64_t));
    for (i = 0; i < PT_HIST_BUCKETS; i++)
        if (a->hist[i] != 0) {
            r->hidx[k] = (uint16_t)i;
            r->hn[k++] = a->hist[i];
        }
    return 0;
}

/* ---------------------------------------------------------------- the store */

#define S(a, s) pt_json_string((a), (s), strlen(s))
#define I(a, n) pt_json_int((a), (int64_t)(n))

static const char *kind_name(const pt_mlabel_t *l)
{
    return l->kind == PT_MK_PROCESS ? "process" : l->kind == PT_MK_POOL ? "pool" : "http";
}

static void encode_pairs(pt_buf_t *b, const uint64_t *n, const void *keys, int wide, unsigned cnt)
{
    unsigned i;
    b->len = 0;
    for (i = 0; i < cnt; i++)
        pt_buf_printf(b, "%s%u:%llu", i ? "," : "",
                      wide ? ((const uint32_t *)keys)[i] : ((const uint16_t *)keys)[i],
                      (unsigned long long)n[i]);
    pt_buf_append(b, "", 1);
    b->len--;
}

/* Writes a minute's rows (the sampler thread; blocking is fine there). */
static void persist_minute(const mslot_t *s)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    pt_buf_t codes, hist;
    size_t i;
    int ok;
    if (D.node.store == NULL || s->n == 0)
        return;
    pt_arena_init(&a, NULL);
    pt_buf_init(&codes, 0);
    pt_buf_init(&hist, 0);
    ok = pt_store_begin(D.node.store, &tx, 1, &e) == PT_OK;
    for (i = 0; ok && i < s->n; i++) {
        const mrow_t *r = &s->rows[i];
        pt_mlabel_t l;
        if (r->sid == UINT32_MAX) {
            memset(&l, 0, sizeof(l));
            l.kind = 255;
        } else {
            pt_metrics_label(r->sid, &l);
        }
        encode_pairs(&codes, r->code_n, r->code_key, 1, r->ncodes);
        encode_pairs(&hist, r->hn, r->hidx, 0, r->nh);
        ok = pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                        "INSERT INTO metrics_minutes (node, environment, minute, kind, api, name, "
                        "method, n, bytes_in, bytes_out, sum_us, sumsq, codes, hist) VALUES "
                        "(:node, :env, :minute, :kind, :api, :name, :method, :n, :bin, :bout, "
                        ":sum, :sq, :codes, :hist)",
                        "node", S(&a, D.node_id), "env", S(&a, D.env), "minute", I(&a, s->minute),
                        "kind", S(&a, l.kind == 255 ? "consumer" : kind_name(&l)), "api",
                        S(&a, l.api), "name", S(&a, l.kind == 255 ? r->consumer : l.name), "method",
                        S(&a, l.method), "n", I(&a, r->n), "bin", I(&a, r->in), "bout",
                        I(&a, r->out), "sum", I(&a, r->sum_us), "sq", pt_json_double(&a, r->sumsq),
                        "codes", S(&a, codes.data ? codes.data : ""), "hist",
                        S(&a, hist.data ? hist.data : ""), NULL) == PT_OK;
        if ((i & 63) == 63)
            pt_arena_reset(&a);
    }
    if (ok)
        ok = pt_store_end(&tx, 1, &e) == PT_OK;
    else if (tx.conn != NULL)
        pt_store_end(&tx, 0, &e);
    if (!ok)
        pt_log_warn("metrics: minute %lld not written to the store: %s", (long long)s->minute,
                    e.message);
    pt_buf_free(&codes);
    pt_buf_free(&hist);
    pt_arena_destroy(&a);
}

static unsigned parse_pairs(const char *s, uint32_t *k32, uint16_t *k16, uint64_t *n, unsigned max)
{
    unsigned c = 0;
    while (s != NULL && *s && c < max) {
        char *end;
        unsigned long k = strtoul(s, &end, 10);
        if (*end != ':')
            break;
        n[c] = strtoull(end + 1, &end, 10);
        if (k32 != NULL)
            k32[c] = (uint32_t)k;
        else if (k < PT_HIST_BUCKETS)
            k16[c] = (uint16_t)k;
        else
            break;
        c++;
        if (*end != ',')
            break;
        s = end + 1;
    }
    return c;
}

static const char *jstr(const pt_json_t *row, const char *k)
{
    const pt_json_t *v = pt_json_get(row, k);
    return v != NULL && v->type == PT_JSON_STRING ? v->u.str.p : "";
}

static int64_t jint(const pt_json_t *row, const char *k)
{
    const pt_json_t *v = pt_json_get(row, k);
    return v != NULL ? (int64_t)pt_json_to_double(v) : 0;
}

static void rows_into(mslot_t *slots, const pt_json_t *rows);

/* The last 24 hours of this node's rows. */
static void load_history(void)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    pt_json_t *rows = NULL;
    int64_t now_min = pt_wall_ms() / 60000;
    if (D.node.store == NULL)
        return;
    pt_arena_init(&a, NULL);
    if (pt_store_begin(D.node.store, &tx, 0, &e) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_ROWS, &rows, &e,
                   "SELECT * FROM metrics_minutes WHERE node = :node AND minute > :from "
                   "ORDER BY minute",
                   "node", S(&a, D.node_id), "from", I(&a, now_min - MINUTES), NULL) != PT_OK) {
        pt_log_warn("metrics: history not read from the store: %s", e.message);
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        pt_arena_destroy(&a);
        return;
    }
    pt_store_end(&tx, 0, &e);
    pthread_mutex_lock(&D.mu);
    rows_into(D.minutes, rows);
    pthread_mutex_unlock(&D.mu);
    pt_arena_destroy(&a);
}

/* Store rows into minute slots (series ids assigned by their labels). */
static void rows_into(mslot_t *slots, const pt_json_t *rows)
{
    size_t i;
    uint64_t *h64 = malloc(sizeof(uint64_t) * PT_HIST_BUCKETS);
    if (h64 == NULL)
        return;
    for (i = 0; rows != NULL && i < rows->u.arr.n; i++) {
        const pt_json_t *row = rows->u.arr.items[i];
        const char *kind = jstr(row, "kind"), *codes = jstr(row, "codes"),
                   *hist = jstr(row, "hist");
        uint32_t k32[CODES_MAX];
        uint64_t c64[CODES_MAX];
        uint16_t h16[PT_HIST_BUCKETS];
        unsigned nc, nh;
        mrow_t *r;
        nc = parse_pairs(codes, k32, NULL, c64, CODES_MAX);
        nh = parse_pairs(hist, NULL, h16, h64, PT_HIST_BUCKETS);
        if ((r = row_add_in(slots, jint(row, "minute"))) == NULL || row_alloc(r, nc, nh) != 0) {
            if (r != NULL)
                slots[jint(row, "minute") % MINUTES].n--;
            continue;
        }
        if (strcmp(kind, "consumer") == 0) {
            r->sid = UINT32_MAX;
            snprintf(r->consumer, sizeof(r->consumer), "%s", jstr(row, "name"));
        } else {
            r->sid = pt_metrics_series(strcmp(kind, "process") == 0 ? PT_MK_PROCESS
                                       : strcmp(kind, "pool") == 0  ? PT_MK_POOL
                                                                    : PT_MK_HTTP,
                                       jstr(row, "api"), jstr(row, "name"), jstr(row, "method"));
        }
        r->n = (uint64_t)jint(row, "n");
        r->in = (uint64_t)jint(row, "bytes_in");
        r->out = (uint64_t)jint(row, "bytes_out");
        r->sum_us = (uint64_t)jint(row, "sum_us");
        r->sumsq = pt_json_to_double(pt_json_get(row, "sumsq"));
        memcpy(r->code_key, k32, nc * sizeof(*k32));
        memcpy(r->code_n, c64, nc * sizeof(*c64));
        memcpy(r->hidx, h16, nh * sizeof(*h16));
        memcpy(r->hn, h64, nh * sizeof(*h64));
    }
    free(h64);
}

/* Another environment's minute rows (every node of it) since minute
 * `first`, from the store: NULL when none can be read. */
static mslot_t *load_env(const char *env, int64_t first)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    pt_json_t *rows = NULL;
    mslot_t *slots;
    if (D.node.store == NULL || (slots = calloc(MINUTES, sizeof(*slots))) == NULL)
        return NULL;
    pt_arena_init(&a, NULL);
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(D.node.store, &tx, 0, &e) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_ROWS, &rows, &e,
                   "SELECT * FROM metrics_minutes WHERE environment = :env AND minute >= :from",
                   "env", S(&a, env), "from", I(&a, first), NULL) != PT_OK) {
        pt_log_warn("metrics: the history of environment %s not read: %s", env, e.message);
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        pt_arena_destroy(&a);
        free(slots);
        return NULL;
    }
    pt_store_end(&tx, 0, &e);
    rows_into(slots, rows);
    pt_arena_destroy(&a);
    return slots;
}

static void sweep_history(int64_t now)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    if (D.node.store == NULL || now - D.last_sweep_ms < 3600000)
        return;
    D.last_sweep_ms = now;
    pt_arena_init(&a, NULL);
    if (pt_store_begin(D.node.store, &tx, 0, &e) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                   "DELETE FROM metrics_minutes WHERE minute < :old", "old",
                   I(&a, (now - (int64_t)D.node.history_ms) / 60000), NULL) != PT_OK)
        pt_log_warn("metrics: the history retention sweep failed: %s", e.message);
    else
        pt_log_debug("metrics: history before minute %lld deleted",
                     (long long)((now - (int64_t)D.node.history_ms) / 60000));
    if (tx.conn != NULL)
        pt_store_end(&tx, 0, &e);
    pt_arena_destroy(&a);
}

/* ---------------------------------------------------------------- sampling */

static sapi_t *api_state(const char *name)
{
    size_t i;
    sapi_t **v, *s;
    for (i = 0; i < D.napis; i++)
        if (strcmp(D.apis[i]->name, name) == 0)
            return D.apis[i];
    if ((s = calloc(1, sizeof(*s))) == NULL ||
        (v = realloc(D.apis, (D.napis + 1) * sizeof(*v))) == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->name, sizeof(s->name), "%s", name);
    D.apis = v;
    D.apis[D.napis++] = s;
    return s;
}

/* The difference of two cumulative sums (the workers' counters only grow). */
static void delta(macc_t *d, const pt_mseries_sum_t *cur, const pt_mseries_sum_t *prev)
{
    unsigned i, j;
    memset(d, 0, offsetof(macc_t, hist));
    d->n = cur->h.count - prev->h.count;
    if (d->n == 0) {
        memset(d->hist, 0, sizeof(d->hist));
        return;
    }
    d->in = cur->h.bytes_in - prev->h.bytes_in;
    d->out = cur->h.bytes_out - prev->h.bytes_out;
    d->sum_us = cur->h.sum_us - prev->h.sum_us;
    d->sumsq = cur->h.sumsq - prev->h.sumsq;
    for (i = 0; i < cur->h.ncodes; i++) {
        uint64_t before = 0;
        for (j = 0; j < prev->h.ncodes; j++)
            if (prev->h.code_key[j] == cur->h.code_key[i])
                before = prev->h.code_n[j];
        acc_code(d, cur->h.code_key[i], cur->h.code_n[i] - before);
    }
    for (i = 0; i < PT_HIST_BUCKETS; i++)
        d->hist[i] = cur->hist[i] - prev->hist[i];
}

static void emit_minute(int64_t minute)
{
    uint32_t id;
    size_t i;
    for (id = 0; id < PT_M_SERIES_MAX; id++) {
        sser_t *s = D.ser[id];
        mrow_t *r;
        if (s == NULL || s->min.n == 0)
            continue;
        if ((r = row_add(minute)) != NULL) {
            if (row_from_acc(r, &s->min) != 0)
                D.minutes[minute % MINUTES].n--;
            else
                r->sid = id;
        }
        memset(&s->min, 0, sizeof(s->min));
    }
    for (i = 0; i <= D.ncons; i++) {
        uint64_t *m = i < D.ncons ? D.cons[i].min : D.cons_other_min;
        macc_t a;
        unsigned k;
        mrow_t *r;
        memset(&a, 0, offsetof(macc_t, hist));
        for (k = 1; k < 6; k++) {
            a.n += m[k];
            acc_code(&a, k * 100, m[k]);
        }
        if (a.n == 0)
            continue;
        memset(a.hist, 0, sizeof(a.hist));
        if ((r = row_add(minute)) != NULL) {
            if (row_from_acc(r, &a) != 0) {
                D.minutes[minute % MINUTES].n--;
            } else {
                r->sid = UINT32_MAX;
                snprintf(r->consumer, sizeof(r->consumer), "%s",
                         i < D.ncons ? D.cons[i].name : "other");
            }
        }
        memset(m, 0, sizeof(uint64_t) * 6);
    }
}

static scons_t *cons_state(const char *name)
{
    size_t i;
    for (i = 0; i < D.ncons; i++)
        if (strcmp(D.cons[i].name, name) == 0)
            return &D.cons[i];
    if (D.ncons == CONS_MAX)
        return NULL;
    memset(&D.cons[D.ncons], 0, sizeof(D.cons[0]));
    memcpy(D.cons[D.ncons].name, name, strnlen(name, PT_M_NAME_MAX - 1));
    return &D.cons[D.ncons++];
}

static void sample_consumers(pt_wmetrics_t **w, unsigned nw)
{
    uint64_t other[6] = {0};
    size_t i;
    unsigned k, x;
    /* sum the workers' tables by name */
    static struct {
        char name[PT_M_NAME_MAX];
        uint64_t n[6];
    } cur[CONS_MAX];
    size_t ncur = 0;
    for (x = 0; x < nw; x++) {
        for (i = 0; i < PT_M_CONSUMERS; i++) {
            const pt_mconsumer_t *c = &w[x]->consumers[i];
            size_t j;
            if (atomic_load_explicit(&c->hash, memory_order_acquire) == 0)
                continue;
            for (j = 0; j < ncur && strcmp(cur[j].name, c->name) != 0; j++)
                ;
            if (j == ncur) {
                if (ncur == CONS_MAX) {
                    for (k = 0; k < 6; k++)
                        other[k] += atomic_load_explicit(&c->n[k], memory_order_relaxed);
                    continue;
                }
                snprintf(cur[j].name, sizeof(cur[j].name), "%s", c->name);
                memset(cur[j].n, 0, sizeof(cur[j].n));
                ncur++;
            }
            for (k = 0; k < 6; k++)
                cur[j].n[k] += atomic_load_explicit(&c->n[k], memory_order_relaxed);
        }
        for (k = 0; k < 6; k++)
            other[k] += atomic_load_explicit(&w[x]->consumer_other[k], memory_order_relaxed);
    }
    for (i = 0; i < ncur; i++) {
        scons_t *s = cons_state(cur[i].name);
        uint64_t *prev = s != NULL ? s->prev : D.cons_other_prev;
        uint64_t *min = s != NULL ? s->min : D.cons_other_min;
        for (k = 0; k < 6; k++) {
            if (cur[i].n[k] >= prev[k] && s != NULL) {
                min[k] += cur[i].n[k] - prev[k];
                prev[k] = cur[i].n[k];
            }
        }
    }
    for (k = 0; k < 6; k++) {
        if (other[k] >= D.cons_other_prev[k])
            D.cons_other_min[k] += other[k] - D.cons_other_prev[k];
        D.cons_other_prev[k] = other[k];
    }
}

static void json_point(pt_buf_t *b, const spoint_t *p)
{
    pt_buf_printf(b, "\"requests\":%u,\"errors\":%u,\"client_errors\":%u,", p->n, p->n5, p->n4);
    if (p->n == 0)
        pt_buf_printf(b, "\"p50_ms\":null,\"p95_ms\":null,\"p99_ms\":null");
    else
        pt_buf_printf(b, "\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f", p->p50, p->p95, p->p99);
}

static void publish_tick(int64_t t)
{
    pt_buf_t b;
    size_t i;
    uint32_t id;
    uint64_t seq;
    pt_buf_init(&b, 0);
    pt_buf_printf(&b, "{\"t\":%lld,\"node\":{", (long long)t * 1000);
    json_point(&b, &D.node_ring[t % RING]);
    pt_buf_printf(&b, "},\"apis\":[");
    for (i = 0; i < D.napis; i++) {
        const spoint_t *p = &D.apis[i]->ring[t % RING];
        if (p->t != t || p->n == 0)
            continue;
        if (b.data[b.len - 1] == '}')
            pt_buf_append(&b, ",", 1);
        pt_buf_printf(&b, "{\"api\":\"");
        pt_buf_append_json_str(&b, D.apis[i]->name, strlen(D.apis[i]->name));
        pt_buf_printf(&b, "\",");
        json_point(&b, p);
        pt_buf_printf(&b, "}");
    }
    pt_buf_printf(&b, "],\"routes\":[");
    for (id = 0; id < PT_M_SERIES_MAX; id++) {
        const sser_t *s = D.ser[id];
        const spoint_t *p;
        if (s == NULL || s->label.kind != PT_MK_HTTP)
            continue;
        p = &s->ring[t % RING];
        if (p->t != t || p->n == 0)
            continue;
        if (b.data[b.len - 1] == '}')
            pt_buf_append(&b, ",", 1);
        pt_buf_printf(&b, "{\"api\":\"");
        pt_buf_append_json_str(&b, s->label.api, strlen(s->label.api));
        pt_buf_printf(&b, "\",\"route\":\"");
        pt_buf_append_json_str(&b, s->label.name, strlen(s->label.name));
        pt_buf_printf(&b, "\",\"method\":\"%s\",", s->label.method);
        json_point(&b, p);
        pt_buf_printf(&b, "}");
        if (b.len > PT_DASH_TICK_MAX - 4096)
            break; /* the node and the APIs are there; the rest of the routes wait */
    }
    pt_buf_printf(&b, "]}");
    if (b.data != NULL && b.len <= PT_DASH_TICK_MAX) {
        seq = atomic_load_explicit(&tick.seq, memory_order_relaxed);
        atomic_store_explicit(&tick.seq, seq + 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        memcpy(tick.data, b.data, b.len);
        tick.len = b.len;
        atomic_store_explicit(&tick.seq, seq + 2, memory_order_release);
    }
    pt_buf_free(&b);
}

size_t pt_dash_tick_copy(char *dst, size_t cap, uint64_t *seq)
{
    uint64_t s1 = atomic_load_explicit(&tick.seq, memory_order_acquire), s2;
    size_t len;
    if (s1 == 0 || (s1 & 1) || s1 == *seq)
        return 0;
    len = tick.len;
    if (len > cap)
        return 0;
    memcpy(dst, tick.data, len);
    atomic_thread_fence(memory_order_acquire);
    s2 = atomic_load_explicit(&tick.seq, memory_order_relaxed);
    if (s1 != s2)
        return 0; /* rewritten meanwhile: the next second's comes */
    *seq = s1;
    return len;
}

static void sample(int64_t t)
{
    pt_wmetrics_t **w;
    unsigned nw, x;
    uint32_t id, n = pt_metrics_nseries();
    size_t i;
    macc_t *d = malloc(sizeof(*d));
    if (d == NULL)
        return;
    for (i = 0; i < D.napis; i++)
        memset(&D.apis[i]->sec, 0, sizeof(D.apis[i]->sec));
    memset(&D.node_sec, 0, sizeof(D.node_sec));
    nw = pt_metrics_lock_workers(&w);
    pthread_mutex_lock(&D.mu);
    for (id = 0; id < n; id++) {
        sser_t *s = D.ser[id];
        uint64_t count = 0;
        /* a series without new requests costs its count only, not its histogram
           (a count read ahead of its bucket is settled at the next change) */
        for (x = 0; x < nw; x++)
            count += atomic_load_explicit(&w[x]->series[id].count, memory_order_relaxed);
        if (s == NULL ? count == 0 : count == s->prev.h.count) {
            if (s != NULL) {
                static const macc_t none;
                point_of(&s->ring[t % RING], t, &none);
            }
            continue;
        }
        memset(D.tmp, 0, sizeof(*D.tmp));
        for (x = 0; x < nw; x++)
            pt_mseries_add(D.tmp, &w[x]->series[id]);
        if (s == NULL) {
            if ((s = D.ser[id] = calloc(1, sizeof(*s))) == NULL)
                continue;
            pt_metrics_label(id, &s->label);
        }
        delta(d, D.tmp, &s->prev);
        s->prev = *D.tmp;
        point_of(&s->ring[t % RING], t, d);
        if (d->n == 0)
            continue;
        acc_add(&s->min, d);
        if (s->label.kind == PT_MK_HTTP) {
            sapi_t *a = api_state(s->label.api);
            if (a != NULL)
                acc_add(&a->sec, d);
            acc_add(&D.node_sec, d);
        }
    }
    sample_consumers(w, nw);
    pt_metrics_unlock_workers();
    for (i = 0; i < D.napis; i++)
        point_of(&D.apis[i]->ring[t % RING], t, &D.apis[i]->sec);
    point_of(&D.node_ring[t % RING], t, &D.node_sec);
    publish_tick(t);
    pthread_mutex_unlock(&D.mu);
    free(d);
}

static void *sampler_main(void *arg)
{
    int64_t now, t;
    (void)arg;
    sweep_history(pt_wall_ms()); /* the retention, at start and then hourly */
    load_history();
    pthread_mutex_lock(&D.mu);
    D.cur_minute = pt_wall_ms() / 60000;
    pthread_mutex_unlock(&D.mu);
    for (;;) {
        struct timespec until;
        int64_t wake;
        pthread_mutex_lock(&D.mu);
        now = pt_wall_ms();
        wake = (now / 1000 + 1) * 1000 + 5;
        until.tv_sec = wake / 1000;
        until.tv_nsec = (wake % 1000) * 1000000;
        while (!D.stopping && pt_wall_ms() < wake)
            if (pthread_cond_timedwait(&D.cv, &D.mu, &until) != 0)
                break;
        if (D.stopping) {
            pthread_mutex_unlock(&D.mu);
            break;
        }
        now = pt_wall_ms();
        t = now / 1000 - 1; /* the second that just ended */
        if (t / 60 != D.cur_minute) {
            /* its minute is over: a row per series, written to the store */
            int64_t minute = D.cur_minute;
            emit_minute(minute);
            D.cur_minute = t / 60;
            pthread_mutex_unlock(&D.mu);
            persist_minute(&D.minutes[minute % MINUTES]);
            sweep_history(now);
        } else {
            pthread_mutex_unlock(&D.mu);
        }
        sample(t);
    }
    /* the current minute, so a restart loses nothing */
    sample(pt_wall_ms() / 1000);
    pthread_mutex_lock(&D.mu);
    emit_minute(D.cur_minute);
    pthread_mutex_unlock(&D.mu);
    persist_minute(&D.minutes[D.cur_minute % MINUTES]);
    return NULL;
}

int pt_dash_start(const pt_mnode_t *node)
{
    D.node = *node;
    snprintf(D.node_id, sizeof(D.node_id), "%s", node->node ? node->node : "");
    snprintf(D.env, sizeof(D.env), "%s", node->environment ? node->environment : "");
    D.node.node = D.node_id;
    D.node.environment = D.env;
    D.started_ms = pt_wall_ms();
    if ((D.tmp = calloc(1, sizeof(*D.tmp))) == NULL)
        return -1;
    D.stopping = 0;
    if (pthread_create(&D.thread, NULL, sampler_main, NULL) != 0) {
        free(D.tmp);
        D.tmp = NULL;
        return -1;
    }
    D.running = 1;
    return 0;
}

void pt_dash_stop(void)
{
    size_t i, k;
    if (!D.running)
        return;
    pthread_mutex_lock(&D.mu);
    D.stopping = 1;
    pthread_cond_signal(&D.cv);
    pthread_mutex_unlock(&D.mu);
    pthread_join(D.thread, NULL);
    D.running = 0;
    for (i = 0; i < PT_M_SERIES_MAX; i++) {
        free(D.ser[i]);
        D.ser[i] = NULL;
    }
    for (i = 0; i < D.napis; i++)
        free(D.apis[i]);
    free(D.apis);
    D.apis = NULL;
    D.napis = 0;
    for (i = 0; i < MINUTES; i++) {
        for (k = 0; k < D.minutes[i].n; k++)
            row_free(&D.minutes[i].rows[k]);
        free(D.minutes[i].rows);
        memset(&D.minutes[i], 0, sizeof(D.minutes[i]));
    }
    free(D.tmp);
    D.tmp = NULL;
}

/* ---------------------------------------------------------------- reading */

static int label_match(const pt_mlabel_t *l, const char *api, const char *route)
{
    if (api != NULL && *api && strcmp(l->api, api) != 0)
        return 0;
    if (route != NULL && *route && strcmp(l->name, route) != 0)
        return 0;
    return 1;
}

/* The per-second point of a filter at second t (several series: counts
 * added, percentiles weighted by requests - an approximation for the rare
 * "*" route that has a series per method). */
static spoint_t point_at(const char *api, const char *route, int64_t t)
{
    spoint_t p = {0};
    size_t i;
    uint32_t id;
    if (route != NULL && *route) {
        double w50 = 0, w95 = 0, w99 = 0;
        for (id = 0; id < PT_M_SERIES_MAX; id++) {
            const sser_t *s = D.ser[id];
            const spoint_t *q;
            if (s == NULL || s->label.kind != PT_MK_HTTP || !label_match(&s->label, api, route))
                continue;
            q = &s->ring[t % RING];
            if (q->t != t)
                continue;
            p.n += q->n;
            p.n4 += q->n4;
            p.n5 += q->n5;
            w50 += (double)q->p50 * q->n;
            w95 += (double)q->p95 * q->n;
            w99 += (double)q->p99 * q->n;
        }
        if (p.n > 0) {
            p.p50 = (float)(w50 / p.n);
            p.p95 = (float)(w95 / p.n);
            p.p99 = (float)(w99 / p.n);
        }
    } else if (api != NULL && *api) {
        for (i = 0; i < D.napis; i++)
            if (strcmp(D.apis[i]->name, api) == 0 && D.apis[i]->ring[t % RING].t == t)
                p = D.apis[i]->ring[t % RING];
    } else if (D.node_ring[t % RING].t == t) {
        p = D.node_ring[t % RING];
    }
    p.t = t;
    return p;
}

static void json_spoint(pt_buf_t *b, const spoint_t *p, int64_t t_ms)
{
    pt_buf_printf(b, "{\"t\":%lld,", (long long)t_ms);
    json_point(b, p);
    pt_buf_append(b, "}", 1);
}

/* Another environment than the node's: its history, from the store. */
static int remote_env(const char *env)
{
    return env != NULL && *env && strcmp(env, D.env) != 0;
}

static void head(pt_buf_t *b, const char *env, unsigned window_s)
{
    const char *e = remote_env(env) ? env : D.env;
    pt_buf_printf(b, "{\"environment\":\"");
    pt_buf_append_json_str(b, e, strlen(e));
    pt_buf_printf(b, "\",\"node\":\"");
    pt_buf_append_json_str(b, D.node_id, strlen(D.node_id));
    pt_buf_printf(b, "\",\"window_s\":%u,", window_s);
}

int pt_dash_series(pt_buf_t *out, const char *env, const char *api, const char *route,
                   unsigned window_s)
{
    int64_t now = pt_wall_ms() / 1000 - 1, t;
    macc_t *a;
    mslot_t *remote = NULL;
    const mslot_t *slots = D.minutes;
    if (remote_env(env)) {
        /* other nodes' minutes: whole minutes only */
        if ((remote = load_env(env, pt_wall_ms() / 60000 - (int64_t)window_s / 60)) == NULL)
            return -1;
        slots = remote;
    }
    pthread_mutex_lock(&D.mu);
    head(out, env, window_s);
    if (window_s <= RING && remote == NULL) {
        pt_buf_printf(out, "\"resolution_s\":1,\"points\":[");
        for (t = now - (int64_t)window_s + 1; t <= now; t++) {
            spoint_t p = point_at(api, route, t);
            json_spoint(out, &p, t * 1000);
            if (t < now)
                pt_buf_append(out, ",", 1);
        }
    } else if ((a = malloc(sizeof(*a))) != NULL) {
        int64_t m, last = D.cur_minute, first = last - (int64_t)window_s / 60 + 1;
        pt_buf_printf(out, "\"resolution_s\":60,\"points\":[");
        for (m = first; m <= last; m++) {
            const mslot_t *s = &slots[m % MINUTES];
            spoint_t p;
            size_t i;
            memset(a, 0, sizeof(*a));
            for (i = 0; s->minute == m && i < s->n; i++) {
                pt_mlabel_t l;
                if (s->rows[i].sid == UINT32_MAX)
                    continue;
                pt_metrics_label(s->rows[i].sid, &l);
                if (l.kind == PT_MK_HTTP && label_match(&l, api, route))
                    acc_add_row(a, &s->rows[i]);
            }
            if (m == last && remote == NULL) {
                uint32_t id;
                for (id = 0; id < PT_M_SERIES_MAX; id++)
                    if (D.ser[id] != NULL && D.ser[id]->label.kind == PT_MK_HTTP &&
                        label_match(&D.ser[id]->label, api, route))
                        acc_add(a, &D.ser[id]->min);
            }
            point_of(&p, m, a);
            json_spoint(out, &p, m * 60000);
            if (m < last)
                pt_buf_append(out, ",", 1);
        }
        free(a);
    } else {
        pthread_mutex_unlock(&D.mu);
        if (remote != NULL)
            slots_free(remote);
        return -1;
    }
    pt_buf_printf(out, "]}");
    pthread_mutex_unlock(&D.mu);
    if (remote != NULL)
        slots_free(remote);
    return out->data != NULL ? 0 : -1;
}

typedef struct agg_s {
    macc_t *by_sid[PT_M_SERIES_MAX];
    struct {
        char name[PT_M_NAME_MAX];
        uint64_t n[6];
    } cons[CONS_MAX + 1];
    size_t ncons;
} agg_t;

static macc_t *agg_sid(agg_t *g, uint32_t sid)
{
    if (sid >= PT_M_SERIES_MAX)
        return NULL;
    if (g->by_sid[sid] == NULL)
        g->by_sid[sid] = calloc(1, sizeof(macc_t));
    return g->by_sid[sid];
}

static void agg_consumer(agg_t *g, const char *name, const uint32_t *keys, const uint64_t *n,
                         unsigned nk)
{
    size_t j;
    unsigned k;
    for (j = 0; j < g->ncons && strcmp(g->cons[j].name, name) != 0; j++)
        ;
    if (j == g->ncons) {
        if (j == CONS_MAX)
            j = CONS_MAX; /* the last slot: "other" */
        else
            g->ncons++;
        snprintf(g->cons[j].name, sizeof(g->cons[j].name), "%s", j == CONS_MAX ? "other" : name);
    }
    for (k = 0; k < nk; k++)
        if (keys[k] / 100 < 6)
            g->cons[j].n[keys[k] / 100] += n[k];
}

static double rate(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static void json_traffic(pt_buf_t *b, const macc_t *a, double secs)
{
    uint64_t n4, n5;
    acc_classes(a, &n4, &n5);
    pt_buf_printf(b,
                  "\"requests\":%llu,\"rps\":%.3f,\"errors\":%llu,\"client_errors\":%llu,"
                  "\"error_rate\":%.5f,",
                  (unsigned long long)a->n, rate(a->n, secs), (unsigned long long)n5,
                  (unsigned long long)n4, a->n ? (double)n5 / (double)a->n : 0.0);
    if (a->n == 0)
        pt_buf_printf(b, "\"p50_ms\":null,\"p95_ms\":null,\"p99_ms\":null,");
    else
        pt_buf_printf(b, "\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,", q_ms(a, 0.5),
                      q_ms(a, 0.95), q_ms(a, 0.99));
    pt_buf_printf(b, "\"bytes_in\":%llu,\"bytes_out\":%llu", (unsigned long long)a->in,
                  (unsigned long long)a->out);
}

static void json_codes(pt_buf_t *b, const macc_t *a)
{
    unsigned i;
    pt_buf_append(b, "{", 1);
    for (i = 0; i < a->ncodes; i++)
        pt_buf_printf(b, "%s\"%u\":%llu", i ? "," : "", a->code_key[i],
                      (unsigned long long)a->code_n[i]);
    pt_buf_append(b, "}", 1);
}

static void json_name(pt_buf_t *b, const char *k, const char *v, int comma)
{
    pt_buf_printf(b, "%s\"%s\":\"", comma ? "," : "", k);
    pt_buf_append_json_str(b, v, strlen(v));
    pt_buf_append(b, "\"", 1);
}

static int err_cmp(const void *x, const void *y)
{
    const pt_merror_t *a = x, *b = y;
    return a->time_ms < b->time_ms ? 1 : a->time_ms > b->time_ms ? -1 : 0;
}

/* The workers' recent errors matching the filter, newest first. */
static size_t recent_errors(pt_merror_t *out, size_t max, const char *api, const char *route,
                            int64_t since_ms)
{
    pt_wmetrics_t **w;
    unsigned nw = pt_metrics_lock_workers(&w), x, i;
    size_t n = 0;
    pt_merror_t *all = malloc(sizeof(*all) * PT_M_RECENT * (nw ? nw : 1));
    if (all == NULL) {
        pt_metrics_unlock_workers();
        return 0;
    }
    for (x = 0; x < nw; x++) {
        for (i = 0; i < PT_M_RECENT; i++) {
            pt_merror_t *e = &w[x]->errors[i];
            uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire), s2;
            pt_mlabel_t l;
            if (s1 == 0 || (s1 & 1))
                continue;
            memcpy((char *)&all[n] + sizeof(e->seq), (char *)e + sizeof(e->seq),
                   sizeof(*e) - sizeof(e->seq));
            atomic_thread_fence(memory_order_acquire);
            s2 = atomic_load_explicit(&e->seq, memory_order_relaxed);
            if (s1 != s2 || (int64_t)all[n].time_ms < since_ms)
                continue;
            pt_metrics_label(all[n].series, &l);
            if ((api != NULL && *api) || (route != NULL && *route))
                if (!label_match(&l, api, route))
                    continue;
            n++;
        }
    }
    pt_metrics_unlock_workers();
    qsort(all, n, sizeof(*all), err_cmp);
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof(*all));
    free(all);
    return n;
}

static int cons_cmp(const void *x, const void *y)
{
    const uint64_t *a = x, *b = y; /* n[6] first in the struct: compare totals */
    uint64_t ta = a[1] + a[2] + a[3] + a[4] + a[5], tb = b[1] + b[2] + b[3] + b[4] + b[5];
    return ta < tb ? 1 : ta > tb ? -1 : 0;
}

int pt_dash_summary(pt_buf_t *out, const char *env, const char *api, const char *route,
                    unsigned window_s)
{
    mslot_t *remote = NULL;
    const mslot_t *slots = D.minutes;
    agg_t *g = calloc(1, sizeof(*g));
    macc_t *tot = calloc(1, sizeof(macc_t)), *pa = calloc(1, sizeof(macc_t));
    int64_t now = pt_wall_ms(), m, first, last, data_from;
    double secs;
    uint32_t id, n;
    size_t i, k;
    int comma;
    pt_merror_t *errs = malloc(sizeof(*errs) * ERRS_MAX);
    size_t nerrs;
    struct csort {
        uint64_t n[6];
        char name[PT_M_NAME_MAX];
    } *cs = NULL;

    if (g == NULL || tot == NULL || pa == NULL || errs == NULL) {
        free(g);
        free(tot);
        free(pa);
        free(errs);
        return -1;
    }
    last = now / 60000;
    first = last - (int64_t)window_s / 60 + (window_s >= 60 ? 0 : 1);
    if (first > last)
        first = last;
    if (remote_env(env)) {
        /* another environment: its nodes' minutes from the store, no live part */
        if ((remote = load_env(env, first)) == NULL) {
            free(g);
            free(tot);
            free(pa);
            free(errs);
            return -1;
        }
        slots = remote;
        nerrs = 0;
        data_from = INT64_MAX;
    } else {
        nerrs = recent_errors(errs, ERRS_MAX, api, route, now - (int64_t)window_s * 1000);
        data_from = D.started_ms; /* or the oldest history row, read back from the store */
    }
    pthread_mutex_lock(&D.mu);
    for (m = first; m <= last; m++) {
        const mslot_t *s = &slots[m % MINUTES];
        if (s->minute == m && s->n > 0 && m * 60000 < data_from)
            data_from = m * 60000;
        for (i = 0; s->minute == m && i < s->n; i++) {
            const mrow_t *r = &s->rows[i];
            macc_t *a;
            if (r->sid == UINT32_MAX)
                agg_consumer(g, r->consumer, r->code_key, r->code_n, r->ncodes);
            else if ((a = agg_sid(g, r->sid)) != NULL)
                acc_add_row(a, r);
        }
    }
    for (id = 0; remote == NULL && id < PT_M_SERIES_MAX; id++) {
        macc_t *a;
        if (D.ser[id] != NULL && D.ser[id]->min.n > 0 && (a = agg_sid(g, id)) != NULL)
            acc_add(a, &D.ser[id]->min);
    }
    if (data_from == INT64_MAX)
        data_from = first * 60000;
    /* rates over the span the window really covers: a node up for a minute
       has a minute of traffic, not fifteen */
    secs = (double)(now - (first * 60000 > data_from ? first * 60000 : data_from)) / 1000.0;
    if (secs < 1)
        secs = 1;
    for (i = 0; remote == NULL && i <= D.ncons; i++) {
        const uint64_t *c = i < D.ncons ? D.cons[i].min : D.cons_other_min;
        uint32_t keys[6] = {0, 100, 200, 300, 400, 500};
        agg_consumer(g, i < D.ncons ? D.cons[i].name : "other", keys, c, 6);
    }
    pthread_mutex_unlock(&D.mu);
    if (remote != NULL)
        slots_free(remote);

    n = pt_metrics_nseries();
    head(out, env, window_s);
    pt_buf_printf(out, "\"generated_ms\":%lld,\"span_s\":%.0f,", (long long)now, secs);
    /* totals, codes, classes */
    for (id = 0; id < n; id++) {
        pt_mlabel_t l;
        if (g->by_sid[id] == NULL)
            continue;
        pt_metrics_label(id, &l);
        if (l.kind == PT_MK_HTTP && label_match(&l, api, route))
            acc_add(tot, g->by_sid[id]);
    }
    pt_buf_printf(out, "\"totals\":{");
    json_traffic(out, tot, secs);
    pt_buf_printf(out, "},\"status_codes\":");
    json_codes(out, tot);
    {
        uint64_t cls[6] = {0};
        for (k = 0; k < tot->ncodes; k++)
            if (tot->code_key[k] / 100 < 6)
                cls[tot->code_key[k] / 100] += tot->code_n[k];
        pt_buf_printf(out,
                      ",\"status_classes\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,"
                      "\"5xx\":%llu}",
                      (unsigned long long)cls[1], (unsigned long long)cls[2],
                      (unsigned long long)cls[3], (unsigned long long)cls[4],
                      (unsigned long long)cls[5]);
    }
    /* per API: the HTTP series grouped by API name */
    pt_buf_printf(out, ",\"apis\":[");
    comma = 0;
    {
        char done[64][PT_M_NAME_MAX];
        size_t ndone = 0;
        for (id = 0; id < n; id++) {
            pt_mlabel_t l;
            uint32_t j;
            if (g->by_sid[id] == NULL)
                continue;
            pt_metrics_label(id, &l);
            if (l.kind != PT_MK_HTTP || !label_match(&l, api, NULL))
                continue;
            for (k = 0; k < ndone && strcmp(done[k], l.api) != 0; k++)
                ;
            if (k < ndone)
                continue;
            if (ndone < 64)
                snprintf(done[ndone++], PT_M_NAME_MAX, "%s", l.api);
            memset(pa, 0, sizeof(*pa));
            for (j = id; j < n; j++) {
                pt_mlabel_t m2;
                if (g->by_sid[j] == NULL)
                    continue;
                pt_metrics_label(j, &m2);
                if (m2.kind == PT_MK_HTTP && strcmp(m2.api, l.api) == 0)
                    acc_add(pa, g->by_sid[j]);
            }
            pt_buf_printf(out, "%s{", comma++ ? "," : "");
            json_name(out, "api", l.api, 0);
            pt_buf_append(out, ",", 1);
            json_traffic(out, pa, secs);
            pt_buf_append(out, "}", 1);
        }
    }
    pt_buf_printf(out, "],\"routes\":[");
    comma = 0;
    for (id = 0; id < n; id++) {
        pt_mlabel_t l;
        if (g->by_sid[id] == NULL)
            continue;
        pt_metrics_label(id, &l);
        if (l.kind != PT_MK_HTTP || !label_match(&l, api, route))
            continue;
        pt_buf_printf(out, "%s{", comma++ ? "," : "");
        json_name(out, "api", l.api, 0);
        json_name(out, "route", l.name, 1);
        json_name(out, "method", l.method, 1);
        pt_buf_append(out, ",", 1);
        json_traffic(out, g->by_sid[id], secs);
        pt_buf_printf(out, ",\"codes\":");
        json_codes(out, g->by_sid[id]);
        pt_buf_append(out, "}", 1);
    }
    pt_buf_printf(out, "],\"processes\":[");
    comma = 0;
    for (id = 0; id < n; id++) {
        pt_mlabel_t l;
        const macc_t *a = g->by_sid[id];
        uint64_t errors = 0;
        double avg, var;
        if (a == NULL)
            continue;
        pt_metrics_label(id, &l);
        if (l.kind != PT_MK_PROCESS || !label_match(&l, api, NULL))
            continue;
        for (k = 0; k < a->ncodes; k++)
            if (a->code_key[k] != PT_MX_OK + 1)
                errors += a->code_n[k];
        avg = a->n ? (double)a->sum_us / (double)a->n : 0;
        var = a->n ? a->sumsq / (double)a->n - avg * avg : 0;
        pt_buf_printf(out, "%s{", comma++ ? "," : "");
        json_name(out, "api", l.api, 0);
        json_name(out, "process", l.name, 1);
        pt_buf_printf(out,
                      ",\"executions\":%llu,\"errors\":%llu,\"avg_ms\":%.3f,\"stddev_ms\":%.3f,"
                      "\"max_ms\":%.3f,\"p95_ms\":%.3f,\"bytes_in\":%llu,\"bytes_out\":%llu,"
                      "\"statuses\":{",
                      (unsigned long long)a->n, (unsigned long long)errors, avg / 1000.0,
                      var > 0 ? sqrt(var) / 1000.0 : 0.0, max_ms(a->hist), q_ms(a, 0.95),
                      (unsigned long long)a->in, (unsigned long long)a->out);
        for (k = 0; k < a->ncodes; k++)
            if (a->code_key[k] >= 1 && a->code_key[k] <= PT_MX_MAX)
                pt_buf_printf(out, "%s\"%s\":%llu", k ? "," : "",
                              pt_mexec_names[a->code_key[k] - 1], (unsigned long long)a->code_n[k]);
        pt_buf_printf(out, "}}");
    }
    {
        const macc_t *q = pt_metrics_qwait < PT_M_SERIES_MAX ? g->by_sid[pt_metrics_qwait] : NULL;
        pt_procpool_t *pool = remote_env(env) ? NULL : D.node.pool;
        pt_buf_printf(out,
                      "],\"pool\":{\"threads\":%u,\"running\":%u,\"queued\":%u,\"max_queued\":%u,"
                      "\"queue_wait_p95_ms\":%.3f,\"queue_wait_avg_ms\":%.3f},",
                      D.node.pool_threads, pool ? pt_procpool_running(pool) : 0,
                      pool ? pt_procpool_queued(pool) : 0, D.node.pool_max_queued,
                      q != NULL ? q_ms(q, 0.95) : 0.0,
                      q != NULL && q->n ? (double)q->sum_us / (double)q->n / 1000.0 : 0.0);
    }
    /* top consumers */
    pt_buf_printf(out, "\"consumers\":[");
    if (g->ncons > 0 && (cs = malloc(sizeof(*cs) * (g->ncons + 1))) != NULL) {
        uint64_t other[6] = {0};
        size_t nc = 0, top = D.node.top_consumers ? D.node.top_consumers : 20;
        for (i = 0; i < g->ncons; i++) {
            if (strcmp(g->cons[i].name, "other") == 0) {
                for (k = 0; k < 6; k++)
                    other[k] += g->cons[i].n[k];
                continue;
            }
            memcpy(cs[nc].n, g->cons[i].n, sizeof(cs[nc].n));
            snprintf(cs[nc].name, sizeof(cs[nc].name), "%s", g->cons[i].name);
            nc++;
        }
        qsort(cs, nc, sizeof(*cs), cons_cmp);
        comma = 0;
        for (i = 0; i < nc; i++) {
            uint64_t tot_n = 0;
            if (i >= top) {
                for (k = 0; k < 6; k++)
                    other[k] += cs[i].n[k];
                continue;
            }
            for (k = 1; k < 6; k++)
                tot_n += cs[i].n[k];
            if (tot_n == 0)
                continue;
            pt_buf_printf(out, "%s{", comma++ ? "," : "");
            json_name(out, "consumer", cs[i].name, 0);
            pt_buf_printf(out, ",\"requests\":%llu,\"errors\":%llu,\"client_errors\":%llu}",
                          (unsigned long long)tot_n, (unsigned long long)cs[i].n[5],
                          (unsigned long long)cs[i].n[4]);
        }
        if (other[1] + other[2] + other[3] + other[4] + other[5] > 0)
            pt_buf_printf(
                out,
                "%s{\"consumer\":\"other\",\"requests\":%llu,\"errors\":%llu,"
                "\"client_errors\":%llu}",
                comma ? "," : "",
                (unsigned long long)(other[1] + other[2] + other[3] + other[4] + other[5]),
                (unsigned long long)other[5], (unsigned long long)other[4]);
        free(cs);
    }
    pt_buf_printf(out, "],\"recent_errors\":[");
    for (i = 0; i < nerrs; i++) {
        pt_mlabel_t l;
        pt_metrics_label(errs[i].series, &l);
        pt_buf_printf(out, "%s{\"time_ms\":%llu", i ? "," : "",
                      (unsigned long long)errs[i].time_ms);
        json_name(out, "request_id", errs[i].request_id, 1);
        json_name(out, "api", l.api, 1);
        json_name(out, "route", l.name, 1);
        json_name(out, "method", errs[i].method, 1);
        json_name(out, "path", errs[i].path, 1);
        pt_buf_printf(out, ",\"status\":%u,\"duration_ms\":%.3f}", errs[i].status,
                      errs[i].duration_us / 1000.0);
    }
    pt_buf_printf(out, "]}");
    for (id = 0; id < PT_M_SERIES_MAX; id++)
        free(g->by_sid[id]);
    free(g);
    free(tot);
    free(pa);
    free(errs);
    return out->data != NULL ? 0 : -1;
}

int pt_dash_nodes(pt_buf_t *out)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    pt_json_t *rows = NULL;
    size_t i;
    pt_buf_printf(out, "{\"items\":[{\"node\":\"");
    pt_buf_append_json_str(out, D.node_id, strlen(D.node_id));
    pt_buf_printf(out, "\",\"environment\":\"");
    pt_buf_append_json_str(out, D.env, strlen(D.env));
    pt_buf_printf(out,
                  "\",\"this\":true,\"last_seen_ms\":%lld,\"started_ms\":%lld,\"version\":\"%s\","
                  "\"workers\":%u}",
                  (long long)pt_wall_ms(), (long long)D.started_ms, PT_VERSION, D.node.workers);
    pt_arena_init(&a, NULL);
    if (D.node.store != NULL && pt_store_begin(D.node.store, &tx, 0, &e) == PT_OK) {
        if (pt_store_q(&tx, &a, PT_SQL_ROWS, &rows, &e,
                       "SELECT node, environment, MAX(minute) AS last FROM metrics_minutes "
                       "WHERE node <> :node GROUP BY node, environment ORDER BY last DESC",
                       "node", S(&a, D.node_id), NULL) != PT_OK)
            rows = NULL;
        pt_store_end(&tx, 0, &e);
    }
    for (i = 0; rows != NULL && i < rows->u.arr.n && i < 1000; i++) {
        const pt_json_t *r = rows->u.arr.items[i];
        pt_buf_printf(out, ",{");
        json_name(out, "node", jstr(r, "node"), 0);
        json_name(out, "environment", jstr(r, "environment"), 1);
        pt_buf_printf(out, ",\"this\":false,\"last_seen_ms\":%lld}",
                      (long long)(jint(r, "last") * 60000 + 59999));
    }
    pt_buf_printf(out, "]}");
    pt_arena_destroy(&a);
    return out->data != NULL ? 0 : -1;
}
