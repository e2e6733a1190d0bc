/*
 * console.c - the console's files, its sessions and the dashboard's event
 * stream (see console.h).
 */
#include "control/console.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "control/web.h"
#include "core/arena.h"
#include "event/worker.h"
#include "http/http.h"
#include "metrics/dashboard.h"

/* ---------------------------------------------------------------- files */

/* Every file of the console is served with these: nothing but the node's
 * own files and calls, no inline script or style, no framing. */
static const pt_header_kv_t page_headers[] = {
    {"Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"X-Frame-Options", "DENY"},
    {"Cache-Control", "no-cache"}};

int pt_console_static(pt_req_t *req)
{
    const char *p = req->path.p;
    size_t n = req->path.len, i;
    int get = (req->method_len == 3 && memcmp(req->method, "GET", 3) == 0) ||
              (req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0);
    static const pt_header_kv_t to_ui[] = {{"Location", "/admin/ui/"}};

    if ((n == 6 && memcmp(p, "/admin", 6) == 0) || (n == 7 && memcmp(p, "/admin/", 7) == 0) ||
        (n == 9 && memcmp(p, "/admin/ui", 9) == 0)) {
        pt_http_respond(req, 302, to_ui, 1, NULL, NULL, 0);
        return 1;
    }
    if (n < 10 || memcmp(p, "/admin/ui/", 10) != 0)
        return 0;
    p += 10;
    n -= 10;
    if (n == 0) {
        p = "index.html";
        n = 10;
    }
    if (!get) {
        static const pt_header_kv_t allow[] = {{"Allow", "GET, HEAD"}};
        pt_http_problem(req, 405, "method-not-allowed", "The console's files are read with GET.",
                        allow, 1);
        return 1;
    }
    for (i = 0; pt_web_assets[i].path != NULL; i++)
        if (strlen(pt_web_assets[i].path) == n && memcmp(pt_web_assets[i].path, p, n) == 0) {
            pt_http_respond(req, 200, page_headers, PT_ARRAY_SIZE(page_headers),
                            pt_web_assets[i].ctype, pt_web_assets[i].data, pt_web_assets[i].len);
            return 1;
        }
    pt_http_problem(req, 404, "not-found", "No such file in the console.", NULL, 0);
    return 1;
}

/* ---------------------------------------------------------------- sessions */

#define SESSIONS     256
#define SESSION_TTL  (12ull * 3600 * 1000000000) /* ns: a working day */
#define SESSION_IDLE (2ull * 3600 * 1000000000)  /* ns without a call */

static struct {
    pthread_mutex_t lock;
    struct {
        unsigned char key[32]; /* the cookie's hash: a leaked table reveals no cookie */
        char csrf[65];
        char name[64];
        char token_id[17];
        uint64_t until, idle_until; /* uv_hrtime() */
    } s[SESSIONS];
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void hex(char *out, const unsigned char *in, size_t n)
{
    static const char d[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The value of cookie PT_SESSION_COOKIE in a Cookie header: 64 hex, or 0. */
int pt_session_cookie_value(const char *h, char out[65])
{
    const char *p = h;
    size_t nl = strlen(PT_SESSION_COOKIE);
    while (p != NULL && *p) {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, PT_SESSION_COOKIE, nl) == 0 && p[nl] == '=') {
            size_t len = strcspn(p + nl + 1, "; ");
            if (len != 64)
                return 0;
            memcpy(out, p + nl + 1, 64);
            out[64] = '\0';
            return 1;
        }
        p = strchr(p, ';');
    }
    return 0;
}

int pt_session_create(const char *token_id, const char *name, char cookie[65], char csrf[65])
{
    unsigned char raw[32], key[32];
    uint64_t now = uv_hrtime(), oldest = UINT64_MAX;
    unsigned i, pick = SESSIONS;
    randombytes_buf(raw, sizeof(raw));
    hex(cookie, raw, sizeof(raw));
    crypto_generichash(key, sizeof(key), (const unsigned char *)cookie, 64, NULL, 0);
    randombytes_buf(raw, sizeof(raw));
    hex(csrf, raw, sizeof(raw));
    pthread_mutex_lock(&S.lock);
    for (i = 0; i < SESSIONS; i++) {
        uint64_t end = S.s[i].until < S.s[i].idle_until ? S.s[i].until : S.s[i].idle_until;
        if (end <= now) {
            pick = i;
            break;
        }
        if (end < oldest) {
            oldest = end;
            pick = i;
        }
    }
    /* full of live sessions: the one closest to its end makes room */
    memcpy(S.s[pick].key, key, sizeof(key));
    memcpy(S.s[pick].csrf, csrf, 65);
    snprintf(S.s[pick].name, sizeof(S.s[pick].name), "%s", name);
    snprintf(S.s[pick].token_id, sizeof(S.s[pick].token_id), "%s", token_id);
    S.s[pick].until = now + SESSION_TTL;
    S.s[pick].idle_until = now + SESSION_IDLE;
    pthread_mutex_unlock(&S.lock);
    sodium_memzero(raw, sizeof(raw));
    return 0;
}

static int find_slot(const char *cookie_header, uint64_t now)
{
    char v[65];
    unsigned char key[32];
    unsigned i;
    if (cookie_header == NULL || !pt_session_cookie_value(cookie_header, v))
        return -1;
    crypto_generichash(key, sizeof(key), (const unsigned char *)v, 64, NULL, 0);
    for (i = 0; i < SESSIONS; i++)
        if (S.s[i].until > now && S.s[i].idle_until > now &&
            sodium_memcmp(S.s[i].key, key, sizeof(key)) == 0)
            return (int)i;
    return -1;
}

int pt_session_find(const char *cookie_header, char name[64], char token_id[17], char csrf[65])
{
    uint64_t now = uv_hrtime();
    int i;
    pthread_mutex_lock(&S.lock);
    if ((i = find_slot(cookie_header, now)) >= 0) {
        S.s[i].idle_until = now + SESSION_IDLE;
        memcpy(name, S.s[i].name, 64);
        memcpy(token_id, S.s[i].token_id, 17);
        memcpy(csrf, S.s[i].csrf, 65);
    }
    pthread_mutex_unlock(&S.lock);
    return i >= 0;
}

void pt_session_end(const char *cookie_header)
{
    int i;
    pthread_mutex_lock(&S.lock);
    if ((i = find_slot(cookie_header, uv_hrtime())) >= 0)
        memset(&S.s[i], 0, sizeof(S.s[i]));
    pthread_mutex_unlock(&S.lock);
}

void pt_session_end_token(const char *token_id)
{
    unsigned i;
    pthread_mutex_lock(&S.lock);
    for (i = 0; i < SESSIONS; i++)
        if (strcmp(S.s[i].token_id, token_id) == 0)
            memset(&S.s[i], 0, sizeof(S.s[i]));
    pthread_mutex_unlock(&S.lock);
}

int pt_session_csrf_ok(const char *csrf, const char *header)
{
    size_t n = header != NULL ? strlen(header) : 0;
    while (n > 0 && header[n - 1] == ' ')
        n--;
    return n == 64 && sodium_memcmp(csrf, header, 64) == 0;
}

/* ---------------------------------------------------------------- the stream */

typedef struct stream_s stream_t;

struct stream_s {
    stream_t *prev, *next;
    int linked;
    pt_worker_t *w; /* (the request's snapshot is gone when its cleanups run) */
    pt_req_t *req;
    uint64_t seq;      /* the last tick sent */
    uint64_t quiet_ns; /* when something was last sent */
};

typedef struct sse_s {
    stream_t *streams;
    char buf[PT_DASH_TICK_MAX];
} sse_t;

static void stream_unlink(void *data)
{
    stream_t *s = data;
    sse_t *x = s->w->sse;
    if (x == NULL || !s->linked)
        return;
    s->linked = 0;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        x->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void sse_finish(pt_worker_t *w)
{
    free(w->sse);
    w->sse = NULL;
    w->sse_tick = NULL;
}

void pt_console_tick(pt_worker_t *w)
{
    sse_t *x = w->sse;
    stream_t *s, *next;
    uint64_t now = uv_hrtime();
    if (x == NULL)
        return;
    for (s = x->streams; s != NULL; s = next) {
        size_t len;
        next = s->next;
        if (w->draining) {
            /* the node stops: the browser reconnects to another node or later */
            pt_req_t *req = s->req;
            stream_unlink(s);
            pt_http_respond_end(req);
            continue;
        }
        if (pt_http_output_full(s->req))
            continue; /* a slow reader skips seconds, it never queues them */
        len = pt_dash_tick_copy(x->buf, sizeof(x->buf), &s->seq);
        if (len > 0) {
            pt_http_respond_body(s->req, "event: tick\ndata: ", 18);
            pt_http_respond_body(s->req, x->buf, len);
            pt_http_respond_body(s->req, "\n\n", 2);
            s->quiet_ns = now;
        } else if (now - s->quiet_ns > 15000000000ull) {
            pt_http_respond_body(s->req, ": ping\n\n", 8);
            s->quiet_ns = now;
        }
    }
}

void pt_console_stream(pt_req_t *req)
{
    pt_worker_t *w = req->snap->worker;
    stream_t *s = pt_arena_calloc(pt_http_req_arena(req), sizeof(*s));
    static const pt_header_kv_t hdrs[] = {{"Cache-Control", "no-store"},
                                          {"X-Accel-Buffering", "no"}};
    if (w->sse == NULL) {
        if ((w->sse = calloc(1, sizeof(sse_t))) == NULL ||
            pt_worker_on_finish(w, sse_finish) != PT_OK) {
            free(w->sse);
            w->sse = NULL;
        }
    }
    if (s == NULL || w->sse == NULL ||
        pt_arena_cleanup_add(pt_http_req_arena(req), stream_unlink, s) != PT_OK) {
        pt_http_problem(req, 503, "busy", "The stream cannot start now.", NULL, 0);
        return;
    }
    w->sse_tick = pt_console_tick;
    s->w = w;
    s->linked = 1;
    s->req = req;
    s->quiet_ns = uv_hrtime();
    s->next = ((sse_t *)w->sse)->streams;
    if (s->next != NULL)
        s->next->prev = s;
    ((sse_t *)w->sse)->streams = s;
    pt_http_respond_start(req, 200, hdrs, PT_ARRAY_SIZE(hdrs), "text/event-stream", -1);
    pt_http_respond_body(req, "retry: 2000\n\n", 13);
}
