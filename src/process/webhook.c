/*
 * webhook.c - webhook deliveries (see webhook.h).
 */
#include "process/webhook.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connector/http.h"
#include "core/log.h"
#include "process/records.h"

#define SENDERS 2

typedef struct delivery_s {
    struct delivery_s *next;
    char *url;
    char exec_id[33];
    char *body;
    size_t len;
    char *secret;
    size_t secret_len;
    uint64_t due_ms;     /* monotonic */
    uint64_t give_up_ms; /* monotonic: no attempt after it */
    uint64_t retry_base_ms;
    uint32_t timeout_ms;
    unsigned attempts;
    char pid[33];  /* its id in the store */
    int persisted; /* inserted there */
} delivery_t;

void (*pt_webhook_persist)(const char *pid, const char *exec_id, const char *url, const char *body,
                           size_t len, unsigned attempts, const char *state, int64_t due_wall_ms,
                           int64_t give_up_wall_ms);

/* Monotonic ms to wall-clock ms and back. */
static int64_t to_wall(uint64_t mono)
{
    return pt_wall_ms() + (int64_t)mono - (int64_t)pt_mono_ms();
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static delivery_t *queue; /* sorted by due_ms */
static unsigned pending;
static pthread_t threads[SENDERS];
static int running, stopping;

static void delivery_free(delivery_t *d)
{
    if (d->secret != NULL) {
        sodium_memzero(d->secret, d->secret_len);
        free(d->secret);
    }
    free(d->url);
    free(d->body);
    free(d);
}

/* Under lock: into the queue, in due order. */
static void insert(delivery_t *d)
{
    delivery_t **pp = &queue;
    while (*pp != NULL && (*pp)->due_ms <= d->due_ms)
        pp = &(*pp)->next;
    d->next = *pp;
    *pp = d;
    pthread_cond_signal(&cond);
}

void pt_webhook_sign(const char *secret, size_t secret_len, int64_t t, const char *body, size_t len,
                     char *out, size_t outlen)
{
    unsigned char mac[32];
    char ts[24], hex[65];
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                            OSSL_PARAM_construct_end()};
    size_t got = 0;
    snprintf(ts, sizeof(ts), "%lld", (long long)t);
    if (ctx != NULL && EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) &&
        EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) &&
        EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
        EVP_MAC_update(ctx, (const unsigned char *)body, len) &&
        EVP_MAC_final(ctx, mac, &got, sizeof(mac)) && got == sizeof(mac))
        sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    else
        memset(hex, '0', 64), hex[64] = '\0';
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    snprintf(out, outlen, "t=%s,v1=%s", ts, hex);
}

/* One attempt: PT_OK delivered; PT_EINVAL refused for good (a 4xx); else
 * retry. *status the HTTP status (0: none), err the reason. */
static int attempt(delivery_t *d, int *status, char *err, size_t errlen)
{
    pt_arena_t a;
    pt_json_t *res = NULL, *body, *st;
    char sig[128], delivery_hdr[48];
    pt_header_kv_t hdrs[4];
    pt_http_call_t call;
    int rc;

    pt_webhook_sign(d->secret, d->secret_len, (int64_t)time(NULL), d->body, d->len, sig,
                    sizeof(sig));
    snprintf(delivery_hdr, sizeof(delivery_hdr), "%u", d->attempts);
    hdrs[0] = (pt_header_kv_t){"Content-Type", "application/json"};
    hdrs[1] = (pt_header_kv_t){"Portico-Signature", sig};
    hdrs[2] = (pt_header_kv_t){"X-Execution-Id", d->exec_id};
    hdrs[3] = (pt_header_kv_t){"Portico-Attempt", delivery_hdr};
    pt_arena_init(&a, NULL);
    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.url = d->url;
    call.headers = hdrs;
    call.nheaders = 4;
    call.body = body = pt_json_string(&a, d->body, d->len); /* sent as is */
    call.timeout_ms = d->timeout_ms;
    call.max_response = 64 * 1024;
    *status = 0;
    err[0] = '\0';
    if (body == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = PT_ERROR;
    } else if (pt_http_call(&call, &a, &res, err, errlen) != PT_OK) {
        rc = PT_ERROR; /* network: retried */
    } else {
        st = pt_json_get(res, "status");
        *status = st != NULL ? (int)pt_json_to_double(st) : 0;
        if (*status >= 200 && *status < 300)
            rc = PT_OK;
        else if (*status >= 400 && *status < 500 && *status != 408 && *status != 429)
            rc = PT_EINVAL;
        else
            rc = PT_ERROR;
        if (rc != PT_OK)
            snprintf(err, errlen, "the receiver answered %d", *status);
    }
    pt_arena_destroy(&a);
    return rc;
}

static void *sender(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        uint64_t now = pt_mono_ms();
        delivery_t *d = queue;
        if (d == NULL || d->due_ms > now) {
            struct timespec ts;
            uint64_t wait = d != NULL ? d->due_ms - now : 60000;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&cond, &lock, &ts);
            continue;
        }
        queue = d->next;
        pthread_mutex_unlock(&lock);
        if (!d->persisted && pt_webhook_persist != NULL) {
            pt_webhook_persist(d->pid, d->exec_id, d->url, d->body, d->len, d->attempts, "pending",
                               to_wall(d->due_ms), to_wall(d->give_up_ms));
            d->persisted = 1;
        }
        {
            int status, rc;
            char err[256];
            const char *state;
            d->attempts++;
            rc = attempt(d, &status, err, sizeof(err));
            if (rc == PT_OK)
                state = "delivered";
            else if (rc == PT_EINVAL)
                state = "failed";
            else if (pt_mono_ms() >= d->give_up_ms)
                state = "gave_up";
            else
                state = "pending";
            pt_exec_rec_webhook(d->exec_id, d->url, d->attempts, status, rc == PT_OK ? NULL : err,
                                state);
            if (rc != PT_OK)
                pt_log_warn("webhook: execution %s to %s: attempt %u: %s (%s)", d->exec_id, d->url,
                            d->attempts, err, state);
            if (strcmp(state, "pending") == 0) {
                /* exponential backoff with jitter: base x 2^(n-1), at most 10 minutes */
                uint64_t delay = d->retry_base_ms << (d->attempts - 1 < 20 ? d->attempts - 1 : 20);
                if (delay > 600000)
                    delay = 600000;
                delay = delay * (750 + randombytes_uniform(501)) / 1000; /* x 0.75..1.25 */
                d->due_ms = pt_mono_ms() + delay;
                if (d->due_ms > d->give_up_ms)
                    d->due_ms = d->give_up_ms;
                if (pt_webhook_persist != NULL)
                    pt_webhook_persist(d->pid, d->exec_id, d->url, d->body, d->len, d->attempts,
                                       state, to_wall(d->due_ms), to_wall(d->give_up_ms));
                pthread_mutex_lock(&lock);
                insert(d);
                continue;
            }
            if (pt_webhook_persist != NULL)
                pt_webhook_persist(d->pid, d->exec_id, d->url, d->body, d->len, d->attempts, state,
                                   to_wall(d->due_ms), to_wall(d->give_up_ms));
            delivery_free(d);
            pthread_mutex_lock(&lock);
            pending--;
        }
    }
    pthread_mutex_unlock(&lock);
    pt_http_thread_cleanup();
    return NULL;
}

int pt_webhook_start(void)
{
    int i, rc = 0;
    pthread_mutex_lock(&lock);
    if (!running) {
        stopping = 0;
        for (i = 0; i < SENDERS; i++)
            if (pthread_create(&threads[i], NULL, sender, NULL) != 0)
                rc = -1;
        running = rc == 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void pt_webhook_stop(void)
{
    int i;
    delivery_t *d;
    pthread_mutex_lock(&lock);
    if (!running) {
        pthread_mutex_unlock(&lock);
        return;
    }
    stopping = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (i = 0; i < SENDERS; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_lock(&lock);
    running = 0;
    while ((d = queue) != NULL) {
        queue = d->next;
        pt_log_warn("webhook: execution %s to %s: not delivered before the node stopped",
                    d->exec_id, d->url);
        delivery_free(d);
        pending--;
    }
    pthread_mutex_unlock(&lock);
}

/* A delivery of body to url with its own copies and the node's settings;
 * NULL out of memory (logged). */
static delivery_t *delivery_new(const pt_webhooks_config_t *w, const char *url, const char *exec_id,
                                const char *body, size_t len)
{
    delivery_t *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->url = strdup(url)) == NULL || (d->body = malloc(len + 1)) == NULL ||
        (d->secret = malloc(w->secret_len + 1)) == NULL) {
        if (d != NULL)
            delivery_free(d);
        pt_log_error("webhook: execution %s to %s: out of memory, not delivered", exec_id, url);
        return NULL;
    }
    memcpy(d->body, body, len);
    d->len = len;
    memcpy(d->secret, w->secret, w->secret_len);
    d->secret_len = w->secret_len;
    snprintf(d->exec_id, sizeof(d->exec_id), "%s", exec_id);
    d->retry_base_ms = w->retry_base_ms;
    d->timeout_ms = w->timeout_ms;
    return d;
}

void pt_webhook_enqueue(const pt_webhooks_config_t *w, const char *url, const char *exec_id,
                        const char *body, size_t len)
{
    delivery_t *d = delivery_new(w, url, exec_id, body, len);
    if (d == NULL)
        return;
    pt_records_new_id(d->pid);
    d->due_ms = pt_mono_ms();
    d->give_up_ms = d->due_ms + w->retry_for_ms;
    pthread_mutex_lock(&lock);
    pending++;
    insert(d);
    pthread_mutex_unlock(&lock);
}

void pt_webhook_resume(const pt_webhooks_config_t *w, const char *pid, const char *url,
                       const char *exec_id, const char *body, size_t len, unsigned attempts,
                       int64_t due_wall_ms, int64_t give_up_wall_ms)
{
    delivery_t *d = delivery_new(w, url, exec_id, body, len);
    int64_t now = pt_wall_ms();
    uint64_t mono = pt_mono_ms();
    if (d == NULL)
        return;
    snprintf(d->pid, sizeof(d->pid), "%s", pid);
    d->persisted = 1;
    d->attempts = attempts;
    d->due_ms = due_wall_ms > now ? mono + (uint64_t)(due_wall_ms - now) : mono;
    d->give_up_ms = give_up_wall_ms > now ? mono + (uint64_t)(give_up_wall_ms - now) : mono;
    pthread_mutex_lock(&lock);
    pending++;
    insert(d);
    pthread_mutex_unlock(&lock);
}

unsigned pt_webhook_pending(void)
{
    unsigned n;
    pthread_mutex_lock(&lock);
    n = pending;
    pthread_mutex_unlock(&lock);
    return n;
}
