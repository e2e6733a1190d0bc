/*
 * log.c - diagnostic log and asynchronous access log (see log.h).
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int pt_log_level = PT_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int pt_log_level_parse(const char *s)
{
    int i;
    for (i = 0; i <= PT_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void pt_log(pt_log_level_t level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    if ((int)level < atomic_load_explicit(&pt_log_level, memory_order_relaxed))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03dZ %-5s ", (int)(tv.tv_usec / 1000),
                 level_names[level]);
    n += (size_t)(k > 0 ? k : 0);
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (k < 0)
        k = 0;
    n += (size_t)k;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    /* Never let a control character from a log argument forge a new line. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    line[n++] = '\n';
    /* One write(2) per line: lines of concurrent threads do not interleave. */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nothing sensible to do */
    }
}

/* ------------------------------------------------------------------ access log */

typedef struct chunk_s {
    struct chunk_s *next;
    size_t len;
    char data[];
} chunk_t;

struct pt_access_sink_s {
    int fd;
    int owns_fd;
    pthread_t thread;
    sem_t wake;
    _Atomic(chunk_t *) head; /* lock-free LIFO of chunks from all workers */
    atomic_int stop;
    atomic_int reopen;
    atomic_ulong dropped;
    char *path; /* NULL for standard output */
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void drain(pt_access_sink_t *s)
{
    chunk_t *list = atomic_exchange(&s->head, NULL), *rev = NULL, *next;
    /* The stack is newest first: reverse to keep each worker's order. */
    while (list != NULL) {
        next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (; rev != NULL; rev = next) {
        next = rev->next;
        write_all(s->fd, rev->data, rev->len);
        free(rev);
    }
}

static void reopen_file(pt_access_sink_t *s)
{
    int fd;
    if (s->path == NULL)
        return;
    fd = open(s->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        pt_log_error("cannot reopen access log %s: %s (still writing to the old file)", s->path,
                     strerror(errno));
        return;
    }
    close(s->fd);
    s->fd = fd;
}

static void *writer_main(void *arg)
{
    pt_access_sink_t *s = arg;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        sem_timedwait(&s->wake, &ts);
        drain(s);
        if (atomic_exchange(&s->reopen, 0))
            reopen_file(s);
        if (atomic_load(&s->stop)) {
            drain(s);
            return NULL;
        }
    }
}

pt_access_sink_t *pt_access_sink_open(const char *path)
{
    pt_access_sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (strcmp(path, "-") == 0 || strcmp(path, "stdout") == 0) {
        s->fd = STDOUT_FILENO;
    } else {
        s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (s->fd < 0) {
            pt_log_error("cannot open access log %s: %s", path, strerror(errno));
            free(s);
            return NULL;
        }
        s->owns_fd = 1;
        s->path = strdup(path);
        if (s->path == NULL) {
            close(s->fd);
            free(s);
            return NULL;
        }
    }
    atomic_init(&s->head, NULL);
    sem_init(&s->wake, 0, 0);
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        pt_log_error("cannot start the access log thread");
        if (s->owns_fd)
            close(s->fd);
        sem_destroy(&s->wake);
        free(s->path);
        free(s);
        return NULL;
    }
    return s;
}

void pt_access_sink_close(pt_access_sink_t *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, 1);
    sem_post(&s->wake);
    pthread_join(s->thread, NULL);
    drain(s);
    if (s->owns_fd)
        close(s->fd);
    sem_destroy(&s->wake);
    free(s->path);
    free(s);
}

void pt_access_sink_reopen(pt_access_sink_t *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->reopen, 1);
    sem_post(&s->wake);
}

pt_buf_t *pt_access_log_buf(pt_access_log_t *l)
{
    return l->sink != NULL ? &l->buf : NULL;
}

#define ACCESS_FLUSH_BYTES 65536

void pt_access_log_commit(pt_access_log_t *l, int force)
{
    chunk_t *c;
    pt_access_sink_t *s = l->sink;

    if (s == NULL || l->buf.len == 0 || (!force && l->buf.len < ACCESS_FLUSH_BYTES))
        return;
    c = malloc(sizeof(*c) + l->buf.len);
    if (c == NULL) {
        atomic_fetch_add(&s->dropped, 1);
        pt_buf_reset(&l->buf);
        return;
    }
    memcpy(c->data, l->buf.data, l->buf.len);
    c->len = l->buf.len;
    pt_buf_reset(&l->buf);
    c->next = atomic_load(&s->head);
    while (!atomic_compare_exchange_weak(&s->head, &c->next, c))
        ;
    if (force || c->len >= ACCESS_FLUSH_BYTES)
        sem_post(&s->wake);
}
