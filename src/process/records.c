/*
 * records.c - execution records in memory (see records.h).
 */
#include "process/records.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static pt_record_t *ring; /* PT_RECORDS_MAX, allocated on first use */
static size_t next, count;

static void init(void)
{
    uv_mutex_init(&mu);
    ring = calloc(PT_RECORDS_MAX, sizeof(*ring));
}

void pt_records_add(const pt_record_t *r)
{
    uv_once(&once, init);
    if (ring == NULL)
        return; /* no memory at start: records are off */
    uv_mutex_lock(&mu);
    ring[next] = *r;
    next = (next + 1) % PT_RECORDS_MAX;
    if (count < PT_RECORDS_MAX)
        count++;
    uv_mutex_unlock(&mu);
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

int pt_records_json(const char *id, size_t len, pt_buf_t *b)
{
    pt_record_t r;
    size_t i;
    int found = 0, rc = 0;

    uv_once(&once, init);
    if (ring == NULL || len != 32)
        return PT_ENOENT;
    uv_mutex_lock(&mu);
    for (i = 0; i < count; i++) {
        const pt_record_t *x = &ring[(next + PT_RECORDS_MAX - 1 - i) % PT_RECORDS_MAX];
        if (memcmp(x->id, id, 32) == 0) {
            r = *x; /* copied out: formatting happens without the lock */
            found = 1;
            break;
        }
    }
    uv_mutex_unlock(&mu);
    if (!found)
        return PT_ENOENT;
    rc |= pt_buf_printf(b, "{\"id\":\"%s\",\"api\":\"", r.id);
    rc |= pt_buf_append_json_str(b, r.api, strlen(r.api));
    rc |= pt_buf_append_str(b, "\",\"route\":\"");
    rc |= pt_buf_append_json_str(b, r.route, strlen(r.route));
    rc |= pt_buf_append_str(b, "\",\"process\":\"");
    rc |= pt_buf_append_json_str(b, r.process, strlen(r.process));
    rc |= pt_buf_printf(b, "\",\"status\":\"%s\",\"http_status\":%d", r.status, r.http_status);
    rc |= iso(b, "enqueued_at", r.enqueued_ms);
    rc |= iso(b, "started_at", r.started_ms);
    rc |= iso(b, "ended_at", r.ended_ms);
    rc |=
        pt_buf_printf(b, ",\"queue_ms\":%lld,\"run_ms\":%lld,\"bytes_in\":%llu,\"bytes_out\":%llu",
                      (long long)(r.started_ms ? r.started_ms - r.enqueued_ms : 0),
                      (long long)(r.started_ms ? r.ended_ms - r.started_ms : 0),
                      (unsigned long long)r.bytes_in, (unsigned long long)r.bytes_out);
    if (r.message[0] != '\0') {
        rc |= pt_buf_append_str(b, ",\"message\":\"");
        rc |= pt_buf_append_json_str(b, r.message, strlen(r.message));
        rc |= pt_buf_append_char(b, '"');
    }
    rc |= pt_buf_append_char(b, '}');
    return rc != 0 ? PT_ENOMEM : PT_OK;
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
