/*
 * records.c - execution records in memory (see records.h).
 */
#include "process/records.h"

#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define SHARDS  64
#define BUCKETS 128 /* per shard */

#define HOOKS_MAX    4  /* webhook URLs of an execution shown */
#define ATTEMPTS_MAX 16 /* attempts of each shown (the latest) */

typedef struct hook_attempt_s {
    int64_t at_ms;
    int status;
    char error[120];
} hook_attempt_t;

typedef struct hook_s {
    char url[256];
    char state[12];
    unsigned attempts;
    hook_attempt_t last[ATTEMPTS_MAX]; /* ring of the latest */
} hook_t;

struct pt_exec_rec_s {
    pt_exec_rec_t *hnext;       /* in its hash bucket */
    pt_exec_rec_t *prev, *next; /* in the list, oldest first */
    unsigned refs;              /* under mu: the table's and the holders' */
    atomic_int cancel;          /* asked to stop */
    pt_exec_row_t f;            /* what it says (what the store keeps); f.webhooks unused */
    int drop_large;             /* a result above max_bytes is not kept at all */
    int ending;                 /* pt_exec_rec_ended began: too late to keep the result */
    uint64_t retention_ms, max_bytes;
    hook_t *hooks; /* HOOKS_MAX, allocated by the first webhook (most executions have none) */
    size_t nhooks;
    char *debug;    /* the trace of a debug execution (JSON list), or NULL */
    uv_mutex_t cmu; /* the canceller: set and used under it */
    void (*canceller)(void *arg);
    void *canceller_arg;
};

void (*pt_exec_on_change)(pt_exec_rec_t *r);

static void changed(pt_exec_rec_t *r)
{
    if (pt_exec_on_change != NULL)
        pt_exec_on_change(r);
}

/* The records are spread over shards by id, each with its own lock, table
 * and age list: the loops creating records and the pool threads updating
 * them rarely meet on one lock. */
typedef struct shard_s {
    uv_mutex_t mu;
    pt_exec_rec_t *table[BUCKETS];
    pt_exec_rec_t *oldest, *newest;
    size_t count;
} shard_t;

static uv_once_t once = UV_ONCE_INIT;
static shard_t shards[SHARDS];

static void init(void)
{
    size_t i;
    for (i = 0; i < SHARDS; i++)
        uv_mutex_init(&shards[i].mu);
}

static unsigned hexv(char c)
{
    return c >= '0' && c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 32) - 'a' + 10) & 15;
}

/* The shard of an id (random hex: characters 8 and 9 pick it; the bucket
 * uses the first eight). */
static shard_t *shard_of(const char *id, size_t len)
{
    return &shards[len >= 10 ? (hexv(id[8]) * 16 + hexv(id[9])) % SHARDS : 0];
}

#define SH(r) shard_of((r)->f.id, 32)

const char *pt_exec_status_name(pt_exec_status_t s)
{
    static const char *const names[] = {"ENQUEUED", "INPROCESS", "COMPLETE", "COMPLETE_WARN",
                                        "ERROR",    "ABORTED",   "DISCARDED"};
    return (unsigned)s < PT_ARRAY_SIZE(names) ? names[s] : "UNKNOWN";
}

static size_t bucket(const char *id)
{
    size_t h = 0, i;
    for (i = 0; i < 8 && id[i]; i++) /* random hex: any bits will do */
        h = h * 16 + (size_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    return h % BUCKETS;
}

static void drop_result(pt_exec_rec_t *r)
{
    free(r->f.result_ctype);
    free(r->f.result_headers);
    free(r->f.result_body);
    r->f.result_ctype = r->f.result_headers = r->f.result_body = NULL;
    r->f.result_len = r->f.result_headers_len = 0;
    r->f.has_result = 0;
}

static void rec_free(pt_exec_rec_t *r)
{
    drop_result(r);
    free(r->debug);
    free(r->hooks);
    uv_mutex_destroy(&r->cmu);
    free(r);
}

/* Under mu: takes r out of the table and the list (the table's reference). */
static void unlink_rec(pt_exec_rec_t *r)
{
    shard_t *sh = SH(r);
    pt_exec_rec_t **pp = &sh->table[bucket(r->f.id)];
    while (*pp != NULL && *pp != r)
        pp = &(*pp)->hnext;
    if (*pp == r)
        *pp = r->hnext;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        sh->oldest = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        sh->newest = r->prev;
    sh->count--;
    if (--r->refs == 0)
        rec_free(r);
}

/* Under mu: r into the table and the list (full: the oldest ended record
 * goes; running ones stay). */
static void link_rec(pt_exec_rec_t *r)
{
    shard_t *sh = SH(r);
    size_t b = bucket(r->f.id);
    if (sh->count >= PT_RECORDS_MAX / SHARDS) {
        pt_exec_rec_t *o;
        for (o = sh->oldest; o != NULL && o->f.ended_ms == 0; o = o->next)
            ;
        if (o != NULL)
            unlink_rec(o);
    }
    r->hnext = sh->table[b];
    sh->table[b] = r;
    r->prev = sh->newest;
    if (sh->newest != NULL)
        sh->newest->next = r;
    else
        sh->oldest = r;
    sh->newest = r;
    sh->count++;
}

/* Under mu: a record found by id, or NULL. */
static pt_exec_rec_t *find(const char *id, size_t len)
{
    pt_exec_rec_t *r;
    if (len != 32)
        return NULL;
    for (r = shard_of(id, len)->table[bucket(id)]; r != NULL; r = r->hnext)
        if (memcmp(r->f.id, id, 32) == 0)
            return r;
    return NULL;
}

pt_exec_rec_t *pt_exec_rec_new(const pt_exec_info_t *info)
{
    shard_t *sh;
    pt_exec_rec_t *r = calloc(1, sizeof(*r));
    uv_once(&once, init);
    if (r == NULL)
        return NULL;
    uv_mutex_init(&r->cmu);
    snprintf(r->f.id, sizeof(r->f.id), "%s", info->id);
    snprintf(r->f.api, sizeof(r->f.api), "%s", info->api ? info->api : "");
    snprintf(r->f.route, sizeof(r->f.route), "%s", info->route ? info->route : "");
    snprintf(r->f.process, sizeof(r->f.process), "%s", info->process ? info->process : "");
    if (info->user != NULL) {
        snprintf(r->f.user, sizeof(r->f.user), "%s", info->user);
        r->f.has_user = 1;
    }
    r->f.generation = info->generation;
    r->f.bytes_in = info->bytes_in;
    r->f.status = PT_EXEC_ENQUEUED;
    r->f.enqueued_ms = pt_wall_ms();
    r->refs = 2; /* the table's and the caller's */
    sh = SH(r);
    uv_mutex_lock(&sh->mu);
    link_rec(r);
    uv_mutex_unlock(&sh->mu);
    changed(r);
    return r;
}

void pt_exec_rec_unref(pt_exec_rec_t *r)
{
    shard_t *sh;
    if (r == NULL)
        return;
    sh = SH(r);
    uv_mutex_lock(&sh->mu);
    if (--r->refs == 0)
        rec_free(r);
    uv_mutex_unlock(&sh->mu);
}

void pt_exec_rec_started(pt_exec_rec_t *r)
{
    shard_t *sh = SH(r);
    uv_mutex_lock(&sh->mu);
    r->f.status = PT_EXEC_INPROCESS;
    r->f.started_ms = pt_wall_ms();
    uv_mutex_unlock(&sh->mu);
    changed(r);
}

int pt_exec_rec_keep_result(pt_exec_rec_t *r, uint64_t retention_ms, uint64_t max_bytes,
                            int drop_large)
{
    shard_t *sh = SH(r);
    int ended;
    uv_mutex_lock(&sh->mu);
    if (!(ended = r->ending || r->f.ended_ms != 0)) {
        r->f.keep = 1;
        r->drop_large = drop_large;
        r->retention_ms = retention_ms;
        r->max_bytes = max_bytes;
    }
    uv_mutex_unlock(&sh->mu);
    return ended ? -1 : 0;
}

pt_exec_status_t pt_exec_rec_status(pt_exec_rec_t *r)
{
    shard_t *sh = SH(r);
    pt_exec_status_t st;
    uv_mutex_lock(&sh->mu);
    st = r->f.status;
    uv_mutex_unlock(&sh->mu);
    return st;
}

void pt_exec_rec_set_debug(pt_exec_rec_t *r, const char *json, size_t len)
{
    shard_t *sh = SH(r);
    char *d = malloc(len + 1);
    if (d == NULL)
        return;
    memcpy(d, json, len);
    d[len] = '\0';
    uv_mutex_lock(&sh->mu);
    free(r->debug);
    r->debug = d;
    uv_mutex_unlock(&sh->mu);
}

void pt_exec_rec_set_canceller(pt_exec_rec_t *r, void (*fn)(void *arg), void *arg)
{
    uv_mutex_lock(&r->cmu);
    r->canceller = fn;
    r->canceller_arg = arg;
    uv_mutex_unlock(&r->cmu);
}

void pt_exec_interrupt(const char *id, size_t len)
{
    shard_t *sh = shard_of(id, len);
    pt_exec_rec_t *r;
    uv_once(&once, init);
    uv_mutex_lock(&sh->mu);
    if ((r = find(id, len)) != NULL)
        r->refs++;
    uv_mutex_unlock(&sh->mu);
    if (r == NULL)
        return;
    uv_mutex_lock(&r->cmu);
    if (r->canceller != NULL)
        r->canceller(r->canceller_arg);
    uv_mutex_unlock(&r->cmu);
    pt_exec_rec_unref(r);
}

int pt_exec_rec_cancelled(const pt_exec_rec_t *r)
{
    return atomic_load_explicit(&((pt_exec_rec_t *)r)->cancel, memory_order_relaxed);
}

/* "Name: value\r\n" lines of the headers. */
static char *header_lines(const pt_header_kv_t *h, size_t n, size_t *len)
{
    size_t i, total = 0;
    char *out, *p;
    for (i = 0; i < n; i++)
        total += strlen(h[i].name) + strlen(h[i].value) + 4;
    if ((p = out = malloc(total + 1)) == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        p += sprintf(p, "%s: %s\r\n", h[i].name, h[i].value);
    *len = total;
    return out;
}

void pt_exec_rec_ended(pt_exec_rec_t *r, pt_exec_status_t status, int http_status,
                       const char *message, const char *ctype, const pt_header_kv_t *headers,
                       size_t nheaders, const char *body, size_t len, uint64_t bytes_out)
{
    shard_t *sh = SH(r);
    char *rb = NULL, *rh = NULL, *rc = NULL;
    size_t rhl = 0, keep_len = len;
    int keep, truncated = 0, dropped = 0;

    uv_mutex_lock(&sh->mu);
    r->ending = 1;
    keep = r->f.keep;
    if (keep && len > r->max_bytes) {
        keep_len = (size_t)r->max_bytes;
        truncated = 1;
        if (r->drop_large) {
            keep = 0; /* result_overflow: drop */
            dropped = 1;
        }
    }
    uv_mutex_unlock(&sh->mu);
    if (keep) { /* copied outside the lock */
        rb = malloc(keep_len + 1);
        rh = header_lines(headers, nheaders, &rhl);
        rc = ctype != NULL ? strdup(ctype) : NULL;
        if (rb != NULL && keep_len > 0)
            memcpy(rb, body, keep_len);
    }
    uv_mutex_lock(&sh->mu);
    r->f.status = truncated && status == PT_EXEC_COMPLETE ? PT_EXEC_COMPLETE_WARN : status;
    r->f.http_status = http_status;
    r->f.ended_ms = pt_wall_ms();
    r->f.bytes_out = bytes_out;
    if (message != NULL)
        snprintf(r->f.message, sizeof(r->f.message), "%.199s", message);
    else if (dropped)
        snprintf(r->f.message, sizeof(r->f.message),
                 "the result (%zu bytes) was larger than %zu: not kept", len, keep_len);
    else if (truncated)
        snprintf(r->f.message, sizeof(r->f.message), "the result (%zu bytes) was kept cut at %zu",
                 len, keep_len);
    if (keep && rb != NULL && rh != NULL) {
        drop_result(r);
        r->f.has_result = 1;
        r->f.truncated = truncated;
        r->f.result_status = http_status;
        r->f.result_body = rb;
        r->f.result_len = keep_len;
        r->f.result_headers = rh;
        r->f.result_headers_len = rhl;
        r->f.result_ctype = rc;
        r->f.expires_ms = r->f.ended_ms + (int64_t)r->retention_ms;
        rb = rh = rc = NULL;
    }
    uv_mutex_unlock(&sh->mu);
    free(rb);
    free(rh);
    free(rc);
    changed(r);
}

static int iso(pt_buf_t *b, const char *key, int64_t ms)
{
    char t[40];
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0)
        return pt_buf_printf(b, ",\"%s\":null", key);
    gmtime_r(&s, &tm);
    strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
    return pt_buf_printf(b, ",\"%s\":\"%s.%03dZ\"", key, t, (int)(ms % 1000));
}

static int str_member(pt_buf_t *b, const char *key, const char *v)
{
    return pt_buf_printf(b, ",\"%s\":\"", key) | pt_buf_append_json_str(b, v, strlen(v)) |
           pt_buf_append_char(b, '"');
}

static int hooks_json(const pt_exec_rec_t *r, pt_buf_t *b)
{
    size_t i, k;
    int rc = pt_buf_append_str(b, ",\"webhooks\":[");
    for (i = 0; i < r->nhooks; i++) {
        const hook_t *h = &r->hooks[i];
        unsigned shown = h->attempts < ATTEMPTS_MAX ? h->attempts : ATTEMPTS_MAX;
        rc |= pt_buf_append_str(b, i ? ",{\"url\":\"" : "{\"url\":\"");
        rc |= pt_buf_append_json_str(b, h->url, strlen(h->url));
        rc |= pt_buf_printf(b, "\",\"state\":\"%s\",\"attempts\":%u,\"last_attempts\":[", h->state,
                            h->attempts);
        for (k = 0; k < shown; k++) {
            const hook_attempt_t *a = &h->last[(h->attempts - shown + k) % ATTEMPTS_MAX];
            rc |= pt_buf_append_str(b, k ? ",{" : "{");
            rc |= pt_buf_printf(b, "\"number\":%u", h->attempts - shown + (unsigned)k + 1);
            rc |= iso(b, "at", a->at_ms);
            rc |= pt_buf_printf(b, ",\"status\":%d", a->status);
            if (a->error[0])
                rc |= str_member(b, "error", a->error);
            rc |= pt_buf_append_char(b, '}');
        }
        rc |= pt_buf_append_str(b, "]}");
    }
    return rc | pt_buf_append_char(b, ']');
}

/* r (a copy) as JSON. */
static int to_json(const pt_exec_rec_t *r, pt_buf_t *b)
{
    int rc = 0;
    int64_t end = r->f.ended_ms ? r->f.ended_ms : pt_wall_ms();
    rc |= pt_buf_printf(b, "{\"id\":\"%s\"", r->f.id);
    rc |= str_member(b, "api", r->f.api);
    rc |= str_member(b, "route", r->f.route);
    rc |= str_member(b, "process", r->f.process);
    rc |= pt_buf_printf(b, ",\"generation\":%llu", (unsigned long long)r->f.generation);
    if (r->f.has_user)
        rc |= str_member(b, "user", r->f.user);
    else
        rc |= pt_buf_append_str(b, ",\"user\":null");
    rc |= pt_buf_printf(b, ",\"status\":\"%s\"", pt_exec_status_name(r->f.status));
    if (r->f.ended_ms)
        rc |= pt_buf_printf(b, ",\"http_status\":%d", r->f.http_status);
    rc |= iso(b, "enqueued_at", r->f.enqueued_ms);
    rc |= iso(b, "started_at", r->f.started_ms);
    rc |= iso(b, "ended_at", r->f.ended_ms);
    rc |= pt_buf_printf(b,
                        ",\"queue_ms\":%lld,\"run_ms\":%lld,\"duration_ms\":%lld,"
                        "\"bytes_in\":%llu,\"bytes_out\":%llu",
                        (long long)((r->f.started_ms ? r->f.started_ms : end) - r->f.enqueued_ms),
                        (long long)(r->f.started_ms ? end - r->f.started_ms : 0),
                        (long long)(end - r->f.enqueued_ms), (unsigned long long)r->f.bytes_in,
                        (unsigned long long)r->f.bytes_out);
    if (r->f.keep) {
        rc |= pt_buf_printf(b, ",\"result\":\"%s\"",
                            r->f.has_result ? "kept"
                            : r->f.expired  ? "expired"
                            : r->f.ended_ms ? "not kept"
                                            : "pending");
        if (r->f.has_result && r->f.truncated)
            rc |= pt_buf_append_str(b, ",\"result_truncated\":true");
        if (r->f.has_result)
            rc |= iso(b, "result_expires_at", r->f.expires_ms);
    }
    if (r->f.message[0] != '\0')
        rc |= str_member(b, "message", r->f.message);
    if (r->nhooks > 0)
        rc |= hooks_json(r, b);
    if (r->debug != NULL)
        rc |= pt_buf_printf(b, ",\"debug\":%s", r->debug);
    if (atomic_load_explicit(&((pt_exec_rec_t *)r)->cancel, memory_order_relaxed) &&
        r->f.ended_ms == 0)
        rc |= pt_buf_append_str(b, ",\"cancel_requested\":true");
    rc |= pt_buf_append_char(b, '}');
    return rc != 0 ? PT_ENOMEM : PT_OK;
}

/* Under mu: r may be read by who. */
static int allowed(const pt_exec_rec_t *r, const char *who, int admin)
{
    if (admin || !r->f.has_user)
        return 1; /* no user: whoever holds the unguessable id */
    return who != NULL && strcmp(who, r->f.user) == 0;
}

/* A copy of the record's fields (not its result) under mu. */
static int snapshot_of(const char *id, size_t len, const char *who, int admin, pt_exec_rec_t *copy)
{
    shard_t *sh = shard_of(id, len);
    pt_exec_rec_t *r;
    uv_once(&once, init);
    uv_mutex_lock(&sh->mu);
    r = find(id, len);
    if (r == NULL || !allowed(r, who, admin)) {
        uv_mutex_unlock(&sh->mu);
        return PT_ENOENT;
    }
    *copy = *r;
    copy->f.result_body = copy->f.result_headers = copy->f.result_ctype = NULL;
    /* r may go once unlocked: what the copy points to is its own */
    copy->debug = r->debug != NULL ? strdup(r->debug) : NULL;
    copy->hooks = NULL;
    if (r->nhooks > 0 && (copy->hooks = malloc(sizeof(*r->hooks) * r->nhooks)) != NULL)
        memcpy(copy->hooks, r->hooks, sizeof(*r->hooks) * r->nhooks);
    else
        copy->nhooks = 0;
    uv_mutex_unlock(&sh->mu);
    return PT_OK;
}

int pt_exec_json(const char *id, size_t len, const char *who, int admin, pt_buf_t *b)
{
    pt_exec_rec_t copy;
    int rc = snapshot_of(id, len, who, admin, &copy);
    if (rc != PT_OK)
        return rc;
    rc = to_json(&copy, b);
    free(copy.debug);
    free(copy.hooks);
    return rc;
}

int pt_exec_result(const char *id, size_t len, const char *who, int admin, int *status,
                   pt_buf_t *ctype, pt_buf_t *headers, pt_buf_t *body)
{
    shard_t *sh = shard_of(id, len);
    pt_exec_rec_t *r;
    int rc = PT_OK;
    uv_once(&once, init);
    uv_mutex_lock(&sh->mu);
    r = find(id, len);
    if (r == NULL || !allowed(r, who, admin)) {
        rc = PT_ENOENT;
    } else if (r->f.ended_ms == 0) {
        pt_exec_rec_t copy = *r;
        copy.debug = NULL;
        copy.hooks = NULL; /* not ended: no webhook yet */
        copy.nhooks = 0;
        uv_mutex_unlock(&sh->mu);
        return to_json(&copy, body) == PT_OK ? PT_AGAIN : PT_ENOMEM;
    } else if (r->f.expired || (r->f.has_result && r->f.expires_ms <= pt_wall_ms())) {
        rc = PT_EEXPIRED;
    } else if (!r->f.has_result) {
        rc = PT_ENOENT; /* answered to its client: not kept */
    } else {
        *status = r->f.result_status;
        const char *ct = r->f.result_ctype ? r->f.result_ctype : "";
        if (pt_buf_append(ctype, ct, strlen(ct) + 1) != PT_OK || /* with its NUL */
            pt_buf_append(headers, r->f.result_headers, r->f.result_headers_len) != PT_OK ||
            pt_buf_append(body, r->f.result_body, r->f.result_len) != PT_OK)
            rc = PT_ENOMEM;
    }
    uv_mutex_unlock(&sh->mu);
    return rc;
}

int pt_exec_cancel(const char *id, size_t len, const char *who, int admin, pt_buf_t *b)
{
    shard_t *sh = shard_of(id, len);
    pt_exec_rec_t *r, copy;
    uv_once(&once, init);
    uv_mutex_lock(&sh->mu);
    r = find(id, len);
    if (r == NULL || !allowed(r, who, admin)) {
        uv_mutex_unlock(&sh->mu);
        return PT_ENOENT;
    }
    if (r->f.ended_ms != 0) {
        uv_mutex_unlock(&sh->mu);
        return PT_EINVAL;
    }
    atomic_store_explicit(&r->cancel, 1, memory_order_relaxed);
    copy = *r;
    copy.debug = NULL;
    copy.hooks = NULL;
    copy.nhooks = 0;
    uv_mutex_unlock(&sh->mu);
    return to_json(&copy, b);
}

void pt_exec_rec_webhook(const char *id, const char *url, unsigned attempt, int status,
                         const char *error, const char *state)
{
    shard_t *sh = shard_of(id, strlen(id));
    pt_exec_rec_t *r;
    hook_t *h = NULL;
    size_t i;
    uv_once(&once, init);
    uv_mutex_lock(&sh->mu);
    if ((r = find(id, strlen(id))) != NULL) {
        if (r->hooks == NULL)
            r->hooks = calloc(HOOKS_MAX, sizeof(*r->hooks));
        for (i = 0; r->hooks != NULL && i < r->nhooks && h == NULL; i++)
            if (strncmp(r->hooks[i].url, url, sizeof(r->hooks[i].url) - 1) == 0)
                h = &r->hooks[i];
        if (h == NULL && r->hooks != NULL && r->nhooks < HOOKS_MAX) {
            h = &r->hooks[r->nhooks++];
            snprintf(h->url, sizeof(h->url), "%s", url);
        }
        if (h != NULL && attempt > 0) {
            hook_attempt_t *a = &h->last[(attempt - 1) % ATTEMPTS_MAX];
            h->attempts = attempt;
            a->at_ms = pt_wall_ms();
            a->status = status;
            snprintf(a->error, sizeof(a->error), "%s", error ? error : "");
        }
        if (h != NULL)
            snprintf(h->state, sizeof(h->state), "%s", state);
        if (r != NULL)
            r->refs++; /* held across the notification */
    }
    uv_mutex_unlock(&sh->mu);
    if (r != NULL) {
        changed(r);
        pt_exec_rec_unref(r);
    }
}

int pt_exec_api(const char *id, size_t len, char out[65])
{
    shard_t *sh = shard_of(id, len);
    pt_exec_rec_t *r;
    int rc = PT_ENOENT;
    uv_once(&once, init);
    uv_mutex_lock(&sh->mu);
    if ((r = find(id, len)) != NULL) {
        memcpy(out, r->f.api, sizeof(r->f.api));
        rc = PT_OK;
    }
    uv_mutex_unlock(&sh->mu);
    return rc;
}

unsigned pt_exec_cancel_all(void)
{
    pt_exec_rec_t *r, **all = NULL;
    size_t n = 0, cap = 0, i, k;
    uv_once(&once, init);
    for (k = 0; k < SHARDS; k++) {
        shard_t *sh = &shards[k];
        uv_mutex_lock(&sh->mu);
        for (r = sh->oldest; r != NULL; r = r->next) {
            if (r->f.ended_ms != 0 || r->ending)
                continue;
            if (n == cap) {
                pt_exec_rec_t **v = realloc(all, sizeof(*all) * (cap ? cap * 2 : 64));
                if (v == NULL)
                    break;
                all = v;
                cap = cap ? cap * 2 : 64;
            }
            atomic_store_explicit(&r->cancel, 1, memory_order_relaxed);
            r->refs++;
            all[n++] = r;
        }
        uv_mutex_unlock(&sh->mu);
    }
    for (i = 0; i < n; i++) {
        uv_mutex_lock(&all[i]->cmu);
        if (all[i]->canceller != NULL)
            all[i]->canceller(all[i]->canceller_arg);
        uv_mutex_unlock(&all[i]->cmu);
        pt_exec_rec_unref(all[i]);
    }
    free(all);
    return (unsigned)n;
}

void pt_exec_sweep(void)
{
    pt_exec_rec_t *r;
    int64_t now = pt_wall_ms();
    size_t k;
    uv_once(&once, init);
    for (k = 0; k < SHARDS; k++) {
        shard_t *sh = &shards[k];
        uv_mutex_lock(&sh->mu);
        for (r = sh->oldest; r != NULL; r = r->next)
            if (r->f.has_result && r->f.expires_ms <= now) {
                drop_result(r);
                r->f.expired = 1;
            }
        uv_mutex_unlock(&sh->mu);
    }
}

void pt_records_new_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    size_t i;
    if (RAND_bytes(r, sizeof(r)) != 1) {
        /* the CSPRNG failed (it does not on Linux): libuv's getrandom */
        if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) != 0)
            memset(r, 0, sizeof(r));
    }
    for (i = 0; i < 16; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[32] = '\0';
}

/* ------------------------------------------------------------ persistence */

void pt_exec_rec_ref(pt_exec_rec_t *r)
{
    shard_t *sh = SH(r);
    uv_mutex_lock(&sh->mu);
    r->refs++;
    uv_mutex_unlock(&sh->mu);
}

const char *pt_exec_rec_id(const pt_exec_rec_t *r)
{
    return r->f.id; /* set once, before anyone else sees the record */
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        if (n > 0)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

int pt_exec_rec_row(pt_exec_rec_t *r, pt_exec_row_t *row)
{
    shard_t *sh = SH(r);
    pt_buf_t hooks;
    int rc = PT_OK;
    pt_buf_init(&hooks, 0);
    uv_mutex_lock(&sh->mu);
    *row = r->f; /* then its own copies of what it points to */
    row->result_body = row->result_headers = row->result_ctype = row->webhooks = NULL;
    if (r->f.has_result) {
        row->result_body = dup_n(r->f.result_body, r->f.result_len);
        row->result_headers = dup_n(r->f.result_headers, r->f.result_headers_len);
        row->result_ctype = r->f.result_ctype ? strdup(r->f.result_ctype) : NULL;
        if (row->result_body == NULL || row->result_headers == NULL)
            rc = PT_ENOMEM;
    }
    if (r->nhooks > 0 && (hooks_json(r, &hooks) != PT_OK ||
                          (row->webhooks = dup_n(hooks.data + 12, hooks.len - 12)) == NULL))
        rc = PT_ENOMEM; /* ",\"webhooks\":" is 12 bytes */
    uv_mutex_unlock(&sh->mu);
    pt_buf_free(&hooks);
    if (rc != PT_OK)
        pt_exec_row_free(row);
    return rc;
}

void pt_exec_row_free(pt_exec_row_t *row)
{
    free(row->result_ctype);
    free(row->result_headers);
    free(row->result_body);
    free(row->webhooks);
    row->result_ctype = row->result_headers = row->result_body = row->webhooks = NULL;
}

void pt_exec_rec_restore(pt_exec_row_t *row)
{
    shard_t *sh = shard_of(row->id, strlen(row->id));
    pt_exec_rec_t *r;
    uv_once(&once, init);
    uv_mutex_lock(&sh->mu);
    if (find(row->id, strlen(row->id)) != NULL || (r = calloc(1, sizeof(*r))) == NULL) {
        uv_mutex_unlock(&sh->mu);
        pt_exec_row_free(row);
        return;
    }
    uv_mutex_init(&r->cmu);
    r->f = *row; /* the result's strings taken over */
    r->f.webhooks = NULL;
    r->f.has_result = row->has_result && row->result_body != NULL;
    r->ending = r->f.ended_ms != 0;
    row->result_body = row->result_headers = row->result_ctype = NULL;
    r->refs = 1; /* the table's */
    link_rec(r);
    uv_mutex_unlock(&sh->mu);
    pt_exec_row_free(row);
}
