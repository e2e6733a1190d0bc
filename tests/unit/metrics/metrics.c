/*
 * Unit tests of src/metrics/metrics.c: the histogram's precision against
 * exact percentiles, and counters merged across workers while they count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>

#include "metrics/metrics.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double uniform01(void)
{
    return (double)(next_rand() >> 11) / 9007199254740992.0;
}

static void test_buckets_cover_every_value(void **state)
{
    uint64_t v;
    (void)state;
    for (v = 0; v < 5000000; v += 1 + v / 1000) {
        unsigned i = pt_hist_index(v);
        assert_true(i < PT_HIST_BUCKETS);
        assert_true(pt_hist_lower(i) <= v);
        assert_true(v < pt_hist_lower(i) + pt_hist_width(i));
        /* a bucket is at most 1/32 of its values wide */
        if (v >= PT_HIST_SUB)
            assert_true(pt_hist_width(i) * PT_HIST_SUB <= pt_hist_lower(i));
    }
    /* beyond the range: the last bucket */
    assert_int_equal(pt_hist_index(UINT64_MAX), pt_hist_index(PT_HIST_MAX_US));
    assert_true(pt_hist_index(PT_HIST_MAX_US) < PT_HIST_BUCKETS);
    /* Prometheus buckets: le is inclusive */
    assert_int_equal(pt_prom_index(500), 0);
    assert_int_equal(pt_prom_index(501), 1);
    assert_int_equal(pt_prom_index(10000000), PT_PROM_BUCKETS - 1);
    assert_int_equal(pt_prom_index(10000001), PT_PROM_BUCKETS);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Records n values from a distribution, then compares the histogram's
 * percentiles with the exact ones of the same sample (nearest rank). */
static void check_sample(uint64_t (*draw)(void), size_t n)
{
    static const double qs[] = {0.5, 0.75, 0.9, 0.95, 0.99, 0.999};
    pt_mseries_t *s = calloc(1, sizeof(*s));
    pt_mseries_sum_t *sum = calloc(1, sizeof(*sum));
    uint64_t *v = malloc(n * sizeof(*v));
    size_t i, k;
    assert_non_null(s);
    assert_non_null(sum);
    assert_non_null(v);
    for (i = 0; i < n; i++) {
        v[i] = draw();
        pt_mseries_record(s, 200, v[i], 0, 0);
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    pt_mseries_add(sum, s);
    assert_int_equal(sum->h.count, n);
    for (k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        uint64_t rank = (uint64_t)(qs[k] * (double)n + 0.5);
        double exact = (double)v[(rank ? rank : 1) - 1];
        double got = pt_hist_quantile(sum->hist, sum->h.count, qs[k]);
        double err = exact > 0 ? fabs(got - exact) / exact : got;
        if (err > 0.02)
            fail_msg("q=%.3f: exact %.0f µs, histogram %.1f µs (error %.2f%%)", qs[k], exact, got,
                     err * 100);
    }
    free(v);
    free(sum);
    free(s);
}

static uint64_t draw_lognormal(void) /* around 2 ms, a long tail */
{
    double u1 = uniform01() + 1e-12, u2 = uniform01();
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
    return (uint64_t)exp(log(2000.0) + 1.2 * z);
}
static uint64_t draw_uniform(void) /* 1 µs .. 10 s */
{
    return 1 + next_rand() % 10000000;
}
static uint64_t draw_bimodal(void) /* cache hits and database trips */
{
    return uniform01() < 0.8 ? 40 + next_rand() % 30 : 15000 + next_rand() % 40000;
}
static uint64_t draw_small(void) /* below 100 µs: the exact range and the first octaves */
{
    return next_rand() % 100;
}

static void test_percentiles_within_2_percent(void **state)
{
    (void)state;
    check_sample(draw_lognormal, 200000);
    check_sample(draw_uniform, 200000);
    check_sample(draw_bimodal, 200000);
    check_sample(draw_small, 50000);
}

/* ---------------------------------------------------------------- merging */

#define WORKERS    4
#define PER_WORKER 400000

static pt_wmetrics_t *blocks[WORKERS];
static volatile int writers_done;

static void *writer(void *arg)
{
    pt_wmetrics_t *m = arg;
    unsigned i;
    for (i = 0; i < PER_WORKER; i++) {
        /* codes appear while the reader reads: slots are claimed meanwhile */
        unsigned code = i % 7 == 0 ? 500 + i % 3 : i % 5 == 0 ? 404 : 200;
        pt_mseries_record(&m->series[1 + i % 3], code, i % 5000, 10, 20);
        PT_M_INC(m->accepted, 1);
    }
    return NULL;
}

static void *reader(void *arg)
{
    uint64_t last = 0, last_hist = 0;
    (void)arg;
    while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE)) {
        pt_mseries_sum_t *s = calloc(1, sizeof(*s));
        uint64_t h = 0;
        unsigned w, id, i;
        for (id = 1; id <= 3; id++)
            for (w = 0; w < WORKERS; w++)
                pt_mseries_add(s, &blocks[w]->series[id]);
        for (i = 0; i < PT_HIST_BUCKETS; i++)
            h += s->hist[i];
        /* what a reader sees never goes back */
        assert_true(s->h.count >= last);
        assert_true(h >= last_hist);
        last = s->h.count;
        last_hist = h;
        free(s);
    }
    return NULL;
}

static void test_merge_while_counting(void **state)
{
    pthread_t wt[WORKERS], rt;
    pt_mseries_sum_t *s = calloc(1, sizeof(*s));
    uint64_t total = 0, c200 = 0, c404 = 0, c5xx = 0, h = 0, acc = 0;
    unsigned w, id, i;
    (void)state;
    for (w = 0; w < WORKERS; w++)
        assert_non_null(blocks[w] = calloc(1, sizeof(pt_wmetrics_t)));
    assert_int_equal(pthread_create(&rt, NULL, reader, NULL), 0);
    for (w = 0; w < WORKERS; w++)
        assert_int_equal(pthread_create(&wt[w], NULL, writer, blocks[w]), 0);
    for (w = 0; w < WORKERS; w++)
        pthread_join(wt[w], NULL);
    __atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
    pthread_join(rt, NULL);
    for (id = 1; id <= 3; id++)
        for (w = 0; w < WORKERS; w++)
            pt_mseries_add(s, &blocks[w]->series[id]);
    for (i = 0; i < s->h.ncodes; i++) {
        total += s->h.code_n[i];
        if (s->h.code_key[i] == 200)
            c200 += s->h.code_n[i];
        else if (s->h.code_key[i] == 404)
            c404 += s->h.code_n[i];
        else if (s->h.code_key[i] >= 500)
            c5xx += s->h.code_n[i];
    }
    for (i = 0; i < PT_HIST_BUCKETS; i++)
        h += s->hist[i];
    for (w = 0; w < WORKERS; w++)
        acc += blocks[w]->accepted;
    /* no increment lost */
    assert_int_equal(s->h.count, (uint64_t)WORKERS * PER_WORKER);
    assert_int_equal(total, s->h.count);
    assert_int_equal(h, s->h.count);
    assert_int_equal(acc, s->h.count);
    assert_int_equal(s->h.bytes_in, 10ull * WORKERS * PER_WORKER);
    assert_int_equal(s->h.bytes_out, 20ull * WORKERS * PER_WORKER);
    {
        uint64_t e5 = 0, e4 = 0, e2 = 0;
        for (i = 0; i < PER_WORKER; i++) {
            if (i % 7 == 0)
                e5++;
            else if (i % 5 == 0)
                e4++;
            else
                e2++;
        }
        assert_int_equal(c5xx, e5 * WORKERS);
        assert_int_equal(c404, e4 * WORKERS);
        assert_int_equal(c200, e2 * WORKERS);
    }
    for (w = 0; w < WORKERS; w++)
        free(blocks[w]);
    free(s);
}

static void test_series_and_tables(void **state)
{
    pt_wmetrics_t *m = calloc(1, sizeof(*m));
    uint32_t a, b, c;
    pt_mlabel_t l;
    unsigned i;
    char name[32];
    (void)state;
    a = pt_metrics_series(PT_MK_HTTP, "crm", "GET /x", "GET");
    b = pt_metrics_series(PT_MK_HTTP, "crm", "GET /x", "GET");
    c = pt_metrics_series(PT_MK_PROCESS, "crm", "GET /x", "");
    assert_true(a != 0);
    assert_int_equal(a, b);
    assert_true(c != a);
    pt_metrics_label(a, &l);
    assert_string_equal(l.api, "crm");
    assert_string_equal(l.name, "GET /x");
    /* consumers: the same name, the same slot; a full table says so */
    assert_ptr_equal(pt_metrics_consumer(m, "alice"), pt_metrics_consumer(m, "alice"));
    assert_ptr_not_equal(pt_metrics_consumer(m, "alice"), pt_metrics_consumer(m, "bob"));
    for (i = 0; i < 4 * PT_M_CONSUMERS; i++) {
        snprintf(name, sizeof(name), "user%u", i);
        if (pt_metrics_consumer(m, name) == NULL)
            break;
    }
    assert_true(i <= PT_M_CONSUMERS);
    assert_non_null(pt_metrics_consumer(m, "alice")); /* still found */
    /* a code past the distinct ones a series keeps is counted, as "other" */
    for (i = 0; i < PT_M_CODES + 3; i++)
        pt_mseries_record(&m->series[5], 200 + i, 1, 0, 0);
    assert_int_equal(m->series[5].code_other, 3);
    assert_int_equal(m->series[5].count, PT_M_CODES + 3);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_cover_every_value),
        cmocka_unit_test(test_percentiles_within_2_percent),
        cmocka_unit_test(test_merge_while_counting),
        cmocka_unit_test(test_series_and_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
