/*
 * persist.c - execution records and webhook deliveries in the store (see
 * persist.h).
 */
#include "process/persist.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "control/store.h"
#include "core/log.h"
#include "gateway/snapshot-t.h"
#include "process/records.h"
#include "process/webhook.h"

#define FLUSH_MS 100

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pt_exec_rec_t **dirty;
static size_t ndirty, capdirty;
static pthread_t writer;
static int running, stopping;
static pt_store_t *store;
static char node_id[33];

#define S(a, s) pt_json_string((a), (s), strlen(s))
#define I(a, n) pt_json_int((a), (int64_t)(n))
#define N(a, s) ((s) != NULL ? S(a, s) : pt_json_null(a))

const char *pt_persist_node_id(void)
{
    return node_id;
}

int pt_persist_on(void)
{
    return store != NULL;
}

/* A record changed (any thread, outside the records' lock). */
static void on_change(pt_exec_rec_t *r)
{
    pthread_mutex_lock(&lock);
    if (ndirty == capdirty) {
        size_t cap = capdirty ? capdirty * 2 : 256;
        pt_exec_rec_t **d = realloc(dirty, sizeof(*d) * cap);
        if (d == NULL) {
            pthread_mutex_unlock(&lock);
            pt_log_error("executions: out of memory: a record change is not persisted");
            return;
        }
        dirty = d;
        capdirty = cap;
    }
    pt_exec_rec_ref(r);
    dirty[ndirty++] = r;
    pthread_mutex_unlock(&lock);
}

static pt_json_t *b64(pt_arena_t *a, const char *p, size_t n)
{
    size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *out = pt_arena_alloc(a, len);
    if (out == NULL)
        return NULL;
    sodium_bin2base64(out, len, (const unsigned char *)p, n, sodium_base64_VARIANT_ORIGINAL);
    return S(a, out);
}

static int upsert(pt_store_tx_t *tx, pt_arena_t *a, const pt_exec_row_t *row, pt_db_error_t *e)
{
    return pt_store_q(
        tx, a, PT_SQL_AFFECTED, NULL, e,
        "INSERT INTO executions (id, node, api, route, process, generation, user_name, status, "
        "http_status, enqueued_ms, started_ms, ended_ms, bytes_in, bytes_out, message, "
        "keep_result, result_status, result_ctype, result_headers, result_body, "
        "result_truncated, expires_ms, webhooks) VALUES (:id, :node, :api, :route, :process, "
        ":gen, :user, :status, :hs, :enq, :sta, :end, :bin, :bout, :msg, :keep, :rs, :rct, :rh, "
        ":rb, :rtr, :exp, :wh) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
        "http_status = excluded.http_status, started_ms = excluded.started_ms, ended_ms = "
        "excluded.ended_ms, bytes_out = excluded.bytes_out, message = excluded.message, "
        "keep_result = excluded.keep_result, result_status = excluded.result_status, "
        "result_ctype = excluded.result_ctype, result_headers = excluded.result_headers, "
        "result_body = excluded.result_body, result_truncated = excluded.result_truncated, "
        "expires_ms = excluded.expires_ms, webhooks = excluded.webhooks",
        "id", S(a, row->id), "node", S(a, node_id), "api", S(a, row->api), "route",
        S(a, row->route), "process", S(a, row->process), "gen", I(a, row->generation), "user",
        row->has_user ? S(a, row->user) : pt_json_null(a), "status",
        S(a, pt_exec_status_name(row->status)), "hs", I(a, row->http_status), "enq",
        I(a, row->enqueued_ms), "sta", I(a, row->started_ms), "end", I(a, row->ended_ms), "bin",
        I(a, row->bytes_in), "bout", I(a, row->bytes_out), "msg", S(a, row->message), "keep",
        I(a, row->keep), "rs", row->has_result ? I(a, row->result_status) : pt_json_null(a), "rct",
        N(a, row->result_ctype), "rh",
        row->has_result ? pt_json_string(a, row->result_headers, row->result_headers_len)
                        : pt_json_null(a),
        "rb", row->has_result ? b64(a, row->result_body, row->result_len) : pt_json_null(a), "rtr",
        I(a, row->truncated), "exp", I(a, row->expires_ms), "wh", N(a, row->webhooks), NULL);
}

/* Writes the dirty records (the writer thread). */
static void flush(void)
{
    pt_exec_rec_t **batch;
    size_t n, i;
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    int ok;

    pthread_mutex_lock(&lock);
    batch = dirty;
    n = ndirty;
    dirty = NULL;
    ndirty = capdirty = 0;
    pthread_mutex_unlock(&lock);
    if (n == 0) {
        free(batch);
        return;
    }
    memset(&e, 0, sizeof(e));
    pt_arena_init(&a, NULL);
    ok = pt_store_begin(store, &tx, 1, &e) == PT_OK;
    for (i = 0; i < n; i++) {
        pt_exec_row_t row;
        size_t k;
        int seen = 0;
        /* a record queued twice is written once, with its latest state */
        for (k = i + 1; k < n && !seen; k++)
            seen = batch[k] == batch[i];
        if (ok && !seen && pt_exec_rec_row(batch[i], &row) == PT_OK) {
            if (upsert(&tx, &a, &row, &e) != PT_OK)
                ok = 0;
            pt_exec_row_free(&row);
        }
        pt_exec_rec_unref(batch[i]);
    }
    if (ok && pt_store_end(&tx, 1, &e) != PT_OK)
        ok = 0;
    if (!ok) {
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        pt_log_warn("executions: %zu record changes not written to the store: %s", n, e.message);
    }
    pt_arena_destroy(&a);
    free(batch);
}

/* Retention in the store: results past their time are dropped, records and
 * finished deliveries a week after. */
static void sweep(void)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    int64_t now = pt_wall_ms();
    memset(&e, 0, sizeof(e));
    pt_arena_init(&a, NULL);
    if (pt_store_begin(store, &tx, 1, &e) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                   "UPDATE executions SET result_body = NULL, result_headers = NULL WHERE "
                   "result_body IS NOT NULL AND expires_ms > 0 AND expires_ms < :now",
                   "now", I(&a, now), NULL) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                   "DELETE FROM executions WHERE ended_ms > 0 AND ended_ms < :old AND "
                   "(expires_ms = 0 OR expires_ms < :now)",
                   "old", I(&a, now - 7 * 86400000LL), "now", I(&a, now), NULL) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                   "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND due_ms < :old",
                   "old", I(&a, now - 7 * 86400000LL), NULL) != PT_OK ||
        pt_store_end(&tx, 1, &e) != PT_OK) {
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        pt_log_warn("executions: the retention sweep failed: %s", e.message);
    }
    pt_arena_destroy(&a);
}

static void *writer_main(void *arg)
{
    unsigned ticks = 0;
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += FLUSH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cond, &lock, &ts);
        pthread_mutex_unlock(&lock);
        flush();
        if (++ticks % (60000 / FLUSH_MS) == 0)
            sweep();
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    flush(); /* the last changes */
    OPENSSL_thread_stop();
    return NULL;
}

/* Webhook deliveries, from a sender thread. */
static void save_delivery(const char *pid, const char *exec_id, const char *url, const char *body,
                          size_t len, unsigned attempts, const char *state, int64_t due_wall_ms,
                          int64_t give_up_wall_ms)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    memset(&e, 0, sizeof(e));
    pt_arena_init(&a, NULL);
    if (pt_store_begin(store, &tx, 0, &e) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                   "INSERT INTO webhook_deliveries (id, execution, node, url, body, attempts, "
                   "state, due_ms, give_up_ms) VALUES (:id, :ex, :node, :url, :body, :att, :st, "
                   ":due, :gu) ON CONFLICT (id) DO UPDATE SET attempts = excluded.attempts, "
                   "state = excluded.state, due_ms = excluded.due_ms",
                   "id", S(&a, pid), "ex", S(&a, exec_id), "node", S(&a, node_id), "url",
                   S(&a, url), "body", pt_json_string(&a, body, len), "att", I(&a, attempts), "st",
                   S(&a, state), "due", I(&a, due_wall_ms), "gu", I(&a, give_up_wall_ms),
                   NULL) != PT_OK)
        pt_log_warn("webhook: delivery %s of execution %s not written to the store: %s", pid,
                    exec_id, e.message);
    if (tx.conn != NULL)
        pt_store_end(&tx, 0, &e);
    pt_arena_destroy(&a);
}

/* <data_dir>/node-id, made once. */
static int load_node_id(const char *data_dir)
{
    char path[4096];
    FILE *f;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/node-id", data_dir ? data_dir : "data");
    if ((f = fopen(path, "r")) != NULL) {
        n = fread(node_id, 1, 32, f);
        fclose(f);
        node_id[n] = '\0';
        if (n == 32)
            return 0;
    }
    pt_records_new_id(node_id);
    mkdir(data_dir ? data_dir : "data", 0700);
    if ((f = fopen(path, "w")) == NULL || fwrite(node_id, 1, 32, f) != 32 || fclose(f) != 0) {
        pt_log_error("executions: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int64_t jint(const pt_json_t *row, const char *k)
{
    int64_t v = 0;
    const pt_json_t *x = pt_json_get(row, k);
    if (x != NULL && x->type == PT_JSON_NUMBER)
        pt_json_to_int64(x, &v);
    return v;
}

static const char *jstr(const pt_json_t *row, const char *k)
{
    const pt_json_t *x = pt_json_get(row, k);
    return x != NULL && x->type == PT_JSON_STRING ? x->u.str.p : NULL;
}

static pt_exec_status_t status_of(const char *s)
{
    pt_exec_status_t k;
    for (k = PT_EXEC_ENQUEUED; k <= PT_EXEC_DISCARDED; k++)
        if (s != NULL && strcmp(s, pt_exec_status_name(k)) == 0)
            return k;
    return PT_EXEC_ERROR;
}

/* A store row into memory. */
static void restore_row(const pt_json_t *row)
{
    pt_exec_row_t r;
    const char *s;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", jstr(row, "id") ? jstr(row, "id") : "");
    snprintf(r.api, sizeof(r.api), "%s", jstr(row, "api") ? jstr(row, "api") : "");
    snprintf(r.route, sizeof(r.route), "%s", jstr(row, "route") ? jstr(row, "route") : "");
    snprintf(r.process, sizeof(r.process), "%s", jstr(row, "process") ? jstr(row, "process") : "");
    if ((s = jstr(row, "user_name")) != NULL) {
        snprintf(r.user, sizeof(r.user), "%s", s);
        r.has_user = 1;
    }
    r.generation = (uint64_t)jint(row, "generation");
    r.status = status_of(jstr(row, "status"));
    r.http_status = (int)jint(row, "http_status");
    r.enqueued_ms = jint(row, "enqueued_ms");
    r.started_ms = jint(row, "started_ms");
    r.ended_ms = jint(row, "ended_ms");
    r.expires_ms = jint(row, "expires_ms");
    r.bytes_in = (uint64_t)jint(row, "bytes_in");
    r.bytes_out = (uint64_t)jint(row, "bytes_out");
    snprintf(r.message, sizeof(r.message), "%s", jstr(row, "message") ? jstr(row, "message") : "");
    r.keep = (int)jint(row, "keep_result");
    r.truncated = (int)jint(row, "result_truncated");
    if ((s = jstr(row, "result_body")) != NULL) {
        size_t len = strlen(s), n = 0;
        const char *h = jstr(row, "result_headers"), *ct = jstr(row, "result_ctype");
        if ((r.result_body = malloc(len + 1)) != NULL &&
            sodium_base642bin((unsigned char *)r.result_body, len, s, len, NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) == 0) {
            r.result_len = n;
            r.has_result = 1;
            r.result_status = (int)jint(row, "result_status");
            r.result_headers = strdup(h ? h : "");
            r.result_headers_len = h ? strlen(h) : 0;
            r.result_ctype = ct ? strdup(ct) : NULL;
        }
    } else if (r.keep && r.ended_ms != 0) {
        r.expired = 1;
    }
    pt_exec_rec_restore(&r);
}

int pt_persist_load(const char *id, size_t len)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    pt_json_t *row = NULL;
    int rc;
    if (store == NULL || len != 32)
        return PT_ENOENT;
    memset(&e, 0, sizeof(e));
    pt_arena_init(&a, NULL);
    if (pt_store_begin(store, &tx, 0, &e) != PT_OK) {
        pt_arena_destroy(&a);
        return PT_ERROR;
    }
    rc = pt_store_q(&tx, &a, PT_SQL_ROW, &row, &e, "SELECT * FROM executions WHERE id = :id", "id",
                    pt_json_string(&a, id, len), NULL);
    pt_store_end(&tx, 0, &e);
    if (rc == PT_OK)
        restore_row(row);
    pt_arena_destroy(&a);
    return rc == PT_OK ? PT_OK : rc == PT_ENOENT ? PT_ENOENT : PT_ERROR;
}

/* The route of a record, in snap (for the webhooks of what a crash left). */
static const pt_route_def_t *route_of(const pt_snapshot_t *snap, const char *api, const char *route)
{
    size_t i, r;
    for (i = 0; i < snap->config->napis; i++) {
        const pt_api_def_t *ad = &snap->config->apis[i];
        if (strcmp(ad->name, api) != 0)
            continue;
        for (r = 0; r < ad->nroutes; r++)
            if (ad->routes[r].name != NULL && strcmp(ad->routes[r].name, route) == 0)
                return &ad->routes[r];
    }
    return NULL;
}

/* What this node left behind when it stopped without draining. */
static void crash_truth(const pt_snapshot_t *snap)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    pt_json_t *rows = NULL, *pend = NULL;
    size_t i, k;
    int64_t now = pt_wall_ms();
    memset(&e, 0, sizeof(e));
    pt_arena_init(&a, NULL);
    if (pt_store_begin(store, &tx, 1, &e) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_ROWS, &rows, &e,
                   "UPDATE executions SET status = 'ABORTED', ended_ms = :now, http_status = 503, "
                   "message = 'the node stopped while it was queued or running' WHERE node = "
                   ":node AND status IN ('ENQUEUED', 'INPROCESS') RETURNING *",
                   "now", I(&a, now), "node", S(&a, node_id), NULL) != PT_OK ||
        pt_store_q(&tx, &a, PT_SQL_ROWS, &pend, &e,
                   "SELECT * FROM webhook_deliveries WHERE node = :node AND state = 'pending' "
                   "ORDER BY due_ms",
                   "node", S(&a, node_id), NULL) != PT_OK ||
        pt_store_end(&tx, 1, &e) != PT_OK) {
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        pt_log_error("executions: cannot read what the last run left: %s", e.message);
        pt_arena_destroy(&a);
        return;
    }
    /* deliveries that were pending go on */
    for (i = 0; pend != NULL && i < pend->u.arr.n; i++) {
        const pt_json_t *d = pend->u.arr.items[i];
        const char *body = jstr(d, "body");
        if (snap->config->webhooks.secret == NULL || body == NULL)
            continue;
        pt_webhook_resume(&snap->config->webhooks, jstr(d, "id"), jstr(d, "url"),
                          jstr(d, "execution"), body, strlen(body), (unsigned)jint(d, "attempts"),
                          jint(d, "due_ms"), jint(d, "give_up_ms"));
    }
    /* executions it never finished: ABORTED, and their webhooks told */
    for (i = 0; rows != NULL && i < rows->u.arr.n; i++) {
        const pt_json_t *row = rows->u.arr.items[i];
        const char *id = jstr(row, "id");
        const pt_route_def_t *rt = route_of(snap, jstr(row, "api") ? jstr(row, "api") : "",
                                            jstr(row, "route") ? jstr(row, "route") : "");
        pt_buf_t body;
        restore_row(row);
        pt_log_warn("execution %s (%s) was %s when the node stopped: now ABORTED", id,
                    jstr(row, "api"), "queued or running");
        if (rt == NULL || rt->nwebhooks == 0 || snap->config->webhooks.secret == NULL)
            continue;
        pt_buf_init(&body, 0);
        if (pt_buf_append_str(&body, "{\"execution\":") == PT_OK &&
            pt_exec_json(id, strlen(id), NULL, 1, &body) == PT_OK &&
            pt_buf_append_str(&body, ",\"response\":null}") == PT_OK)
            for (k = 0; k < rt->nwebhooks; k++) {
                pt_exec_rec_webhook(id, rt->webhooks[k], 0, 0, NULL, "pending");
                pt_webhook_enqueue(&snap->config->webhooks, rt->webhooks[k], id, body.data,
                                   body.len);
            }
        pt_buf_free(&body);
    }
    if (rows != NULL && rows->u.arr.n > 0)
        pt_log_warn("executions: %zu left queued or running by the last run marked ABORTED",
                    rows->u.arr.n);
    pt_arena_destroy(&a);
}

int pt_persist_start(pt_store_t *s, const char *data_dir, const pt_snapshot_t *snap)
{
    if (load_node_id(data_dir) != 0)
        return -1;
    store = s;
    crash_truth(snap);
    pt_webhook_persist = save_delivery;
    pt_exec_on_change = on_change;
    stopping = 0;
    if (pthread_create(&writer, NULL, writer_main, NULL) != 0) {
        pt_exec_on_change = NULL;
        pt_webhook_persist = NULL;
        store = NULL;
        return -1;
    }
    running = 1;
    pt_log_info("executions: kept in the store as node %s", node_id);
    return 0;
}

void pt_persist_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(writer, NULL);
    running = 0;
    pt_exec_on_change = NULL;
    pt_webhook_persist = NULL;
    store = NULL;
    free(dirty);
    dirty = NULL;
    ndirty = capdirty = 0;
}
