/*
 * records.h - execution records (issue 8): what happened to an execution,
 * found by its unguessable id at /_portico/executions/{id}, and the stored
 * result of the executions nobody waited for (answered 202: past
 * X-Max-Wait, or an async route) for GET .../result.
 *
 * Kept in memory for the node: at most PT_RECORDS_MAX records (the oldest
 * ended ones go first) and each result for the retention time. A record is
 * shared by the execution that writes it (a pool thread) and the readers
 * (I/O loops): reference counted, its fields under one mutex held for a
 * copy, never across I/O.
 */
#ifndef PT_PROCESS_RECORDS_H
#define PT_PROCESS_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config-t.h"
#include "core/buf.h"

#define PT_RECORDS_MAX 10000

typedef enum pt_exec_status_e {
    PT_EXEC_ENQUEUED = 0,
    PT_EXEC_INPROCESS,
    PT_EXEC_COMPLETE,
    PT_EXEC_COMPLETE_WARN, /* complete, but its result was too large to keep whole */
    PT_EXEC_ERROR,
    PT_EXEC_ABORTED,  /* cancelled, or the client left before it ran, or the node stopped */
    PT_EXEC_DISCARDED /* never ran: the queue was full or too slow */
} pt_exec_status_t;

const char *pt_exec_status_name(pt_exec_status_t s);

typedef struct pt_exec_rec_s pt_exec_rec_t;

typedef struct pt_exec_info_s {
    const char *id; /* 32 hex digits */
    const char *api, *route, *process;
    const char *user; /* the authenticated user, or NULL */
    uint64_t generation;
    uint64_t bytes_in;
} pt_exec_info_t;

/* A new record (ENQUEUED, enqueued now), registered under info->id; the
 * caller holds one reference. NULL when out of memory. */
pt_exec_rec_t *pt_exec_rec_new(const pt_exec_info_t *info);
void pt_exec_rec_unref(pt_exec_rec_t *r);

/* The execution starts (INPROCESS). */
void pt_exec_rec_started(pt_exec_rec_t *r);

/* From now on the result is kept (nobody else will receive it), for
 * retention_ms, at most max_bytes of body (beyond: COMPLETE_WARN, the body
 * cut there, `result_truncated`). 0, or -1 when the execution has already
 * ended (its own answer goes to its client: nothing is kept). */
int pt_exec_rec_keep_result(pt_exec_rec_t *r, uint64_t retention_ms, uint64_t max_bytes,
                            int drop_large);

/* The execution ended: its status, the HTTP status it answers with, the
 * problem detail when it failed (or NULL), and the response (kept only
 * after pt_exec_rec_keep_result). */
void pt_exec_rec_ended(pt_exec_rec_t *r, pt_exec_status_t status, int http_status,
                       const char *message, const char *ctype, const pt_header_kv_t *headers,
                       size_t nheaders, const char *body, size_t len, uint64_t bytes_out);

/* Its status now. */
pt_exec_status_t pt_exec_rec_status(pt_exec_rec_t *r);

/* While a step of the execution blocks in a driver: fn(arg) stops it from
 * another thread (pt_exec_interrupt). NULL clears it, waiting for an
 * interruption under way to finish (so the connection stays valid). */
void pt_exec_rec_set_canceller(pt_exec_rec_t *r, void (*fn)(void *arg), void *arg);

/* Interrupts what execution id is blocked in (after pt_exec_cancel asked it
 * to stop). Blocks (a driver's cancel is a network call): a pool thread. */
void pt_exec_interrupt(const char *id, size_t len);

/* The execution's debug trace (X-Portico-Debug): a JSON list, copied. */
void pt_exec_rec_set_debug(pt_exec_rec_t *r, const char *json, size_t len);

/* Has a cancellation been asked for (pt_exec_cancel)? Any thread. */
int pt_exec_rec_cancelled(const pt_exec_rec_t *r);

/* --- Readers (any thread). `who` is the caller's user name (NULL:
 * anonymous); admin 1 when the caller may see every execution. A record
 * of another user is PT_ENOENT, as an unknown one: ids are not revealed. */

/* The record as JSON into b. PT_OK, PT_ENOENT or PT_ENOMEM. */
int pt_exec_json(const char *id, size_t len, const char *who, int admin, pt_buf_t *b);

/* The stored response: *status, its Content-Type (into ctype, NUL-terminated, "" when none),
 * its headers as "Name: value\r\n" lines (into headers) and its body (into
 * body). PT_OK; PT_AGAIN while it runs (b holds the record as JSON);
 * PT_ENOENT unknown (or not kept: it was answered to the client); PT_EEXPIRED
 * when its retention has passed. */
int pt_exec_result(const char *id, size_t len, const char *who, int admin, int *status,
                   pt_buf_t *ctype, pt_buf_t *headers, pt_buf_t *body);

/* Asks the execution to stop: a queued one does not run, a running one stops
 * at its next step (its transaction rolled back). PT_OK (the record as JSON
 * in b), PT_ENOENT, or PT_EINVAL when it has already ended. */
int pt_exec_cancel(const char *id, size_t len, const char *who, int admin, pt_buf_t *b);

/* A webhook attempt of execution id: to url, the attempt's number, the
 * receiver's status (0: none), the error (NULL when delivered), and the
 * delivery's state after it (pending, delivered, failed, gave_up). */
void pt_exec_rec_webhook(const char *id, const char *url, unsigned attempt, int status,
                         const char *error, const char *state);

/* The API name of execution id into out (65 bytes): the caller is then
 * authenticated the way that API's requests are. PT_OK or PT_ENOENT. */
int pt_exec_api(const char *id, size_t len, char out[65]);

/* The node stops and the drain time is over: every execution not ended is
 * asked to stop (and interrupted in its driver); returns how many. Blocks
 * (drivers' cancels): the main thread at shutdown. */
unsigned pt_exec_cancel_all(void);

/* Drops results past their retention (called now and then). */
void pt_exec_sweep(void);

/* --- Persistence (process/persist.c) ------------------------------------ */

/* A record's fields, copied out (the strings malloc'd) or to restore one. */
typedef struct pt_exec_row_s {
    char id[33], api[65], route[128], process[65], user[65];
    int has_user;
    uint64_t generation;
    pt_exec_status_t status;
    int http_status;
    int64_t enqueued_ms, started_ms, ended_ms, expires_ms;
    uint64_t bytes_in, bytes_out;
    char message[200];
    int keep, has_result, truncated, expired, result_status;
    char *result_ctype, *result_headers, *result_body, *webhooks; /* webhooks: JSON list */
    size_t result_headers_len, result_len;
} pt_exec_row_t;

/* Called (outside the records' lock) whenever a record changes; the
 * persister takes a reference (pt_exec_rec_ref) to write it later. */
extern void (*pt_exec_on_change)(pt_exec_rec_t *r);

void pt_exec_rec_ref(pt_exec_rec_t *r);
const char *pt_exec_rec_id(const pt_exec_rec_t *r);
/* Copies r's fields into row (free with pt_exec_row_free). PT_OK or PT_ENOMEM. */
int pt_exec_rec_row(pt_exec_rec_t *r, pt_exec_row_t *row);
void pt_exec_row_free(pt_exec_row_t *row);
/* Puts a record read back from the store into the table (unless one with
 * its id is there). The row's strings are taken over. */
void pt_exec_rec_restore(pt_exec_row_t *row);

/* A fresh execution id: 32 hex digits from the system's CSPRNG (an id is
 * all a client needs to read a record: it must not be guessable). */
void pt_records_new_id(char out[33]);

#endif
