/*
 * records.h - execution records of `mode: general` processes, kept in
 * memory for now (a later issue persists them): the last N executions of
 * the node, found by execution id (GET /_portico/executions/{id}).
 *
 * Writers are pool threads (and, for executions that never ran, I/O loops);
 * the store is a ring under one mutex held for a copy, never across I/O.
 */
#ifndef PT_PROCESS_RECORDS_H
#define PT_PROCESS_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define PT_RECORDS_MAX 10000

typedef struct pt_record_s {
    char id[33]; /* the execution id (random, 128 bits, hex) */
    char api[65];
    char route[128];
    char process[65];
    const char *status; /* COMPLETE, ERROR, DISCARDED (never ran), ABORTED (client left) */
    int http_status;
    int64_t enqueued_ms; /* wall clock, ms since the epoch */
    int64_t started_ms;  /* 0 when it never ran */
    int64_t ended_ms;
    uint64_t bytes_in, bytes_out;
    char message[200]; /* the problem detail when it failed */
} pt_record_t;

/* Stores a copy of r (the oldest record goes when the ring is full). */
void pt_records_add(const pt_record_t *r);

/* Appends the record of execution id as JSON to b. Returns PT_OK, PT_ENOENT
 * (unknown or gone from the ring), or PT_ENOMEM. */
int pt_records_json(const char *id, size_t len, pt_buf_t *b);

/* A fresh execution id: 32 hex digits from the system's CSPRNG (an id is
 * all a client needs to read a record: it must not be guessable). */
void pt_records_new_id(char out[33]);

#endif
