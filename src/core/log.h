/*
 * log.h - diagnostic log (levels) and the access log (one JSON line per request).
 *
 * Diagnostic lines go to stderr with one write(2) each, prefixed with time and level:
 *   2026-12-04T16:02:13.123Z info  listening on http://127.0.0.1:8080 (listener "public")
 * The access log never blocks an I/O loop: each worker formats lines into its own
 * buffer (pt_access_log_t) and hands full buffers to a writer thread through a
 * lock-free queue; the writer thread does the write(2) calls.
 */
#ifndef PT_LOG_H
#define PT_LOG_H

#include <stdarg.h>
#include <stdatomic.h>

#include "core/buf.h"

typedef enum pt_log_level_e {
    PT_LOG_DEBUG = 0,
    PT_LOG_INFO,
    PT_LOG_WARN,
    PT_LOG_ERROR,
    PT_LOG_OFF
} pt_log_level_t;

extern _Atomic int pt_log_level;

/* Parses "debug"/"info"/"warn"/"error"/"off"; returns the level or -1. */
int pt_log_level_parse(const char *s);
void pt_log(pt_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pt_log_debug(...)                                                                          \
    do {                                                                                           \
        if (atomic_load_explicit(&pt_log_level, memory_order_relaxed) <= PT_LOG_DEBUG)             \
            pt_log(PT_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define pt_log_info(...)  pt_log(PT_LOG_INFO, __VA_ARGS__)
#define pt_log_warn(...)  pt_log(PT_LOG_WARN, __VA_ARGS__)
#define pt_log_error(...) pt_log(PT_LOG_ERROR, __VA_ARGS__)

/* Access log sink: one writer thread and one file descriptor. */
typedef struct pt_access_sink_s pt_access_sink_t;

/* Opens path ("-" or "stdout" for standard output) and starts the writer thread.
 * Returns NULL (and logs why) on failure. */
pt_access_sink_t *pt_access_sink_open(const char *path);
/* Asks the writer thread to reopen the file (log rotation); no-op for stdout. */
void pt_access_sink_reopen(pt_access_sink_t *s);
/* Flushes everything queued, stops the thread, closes the file. */
void pt_access_sink_close(pt_access_sink_t *s);

/* Per-worker access log buffer. */
typedef struct pt_access_log_s {
    pt_access_sink_t *sink; /* NULL: access log off */
    pt_buf_t buf;
} pt_access_log_t;

/* Returns the buffer to format one line into (NULL if the log is off). The
 * caller appends a complete line ending in '\n', then calls pt_access_log_commit. */
pt_buf_t *pt_access_log_buf(pt_access_log_t *l);
/* Hands the buffer to the writer thread when it is large, or when force is set. */
void pt_access_log_commit(pt_access_log_t *l, int force);

#endif
