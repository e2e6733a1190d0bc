/*
 * persist.h - execution records and webhook deliveries kept in the store
 * (issue 8), so they outlive the node.
 *
 * Records change in memory (records.c); each change marks the record dirty
 * and one writer thread upserts the dirty ones every 100 ms in one
 * transaction (a record that changed three times is written once). Webhook
 * deliveries are written by their sender threads. At start, the node marks
 * what it owned and left ENQUEUED or INPROCESS (a crash) as ABORTED, fires
 * their webhooks, and resumes its pending deliveries. A record not in memory
 * (after a restart) is read back from the store when asked for.
 *
 * The node is known by an id kept in <data_dir>/node-id.
 */
#ifndef PT_PROCESS_PERSIST_H
#define PT_PROCESS_PERSIST_H

#include <stddef.h>

typedef struct pt_store_s pt_store_t;
typedef struct pt_snapshot_s pt_snapshot_t;

/* Starts persisting to store (migrated) as the node of data_dir; snap gives
 * the webhook settings and routes for what a crash left behind. Blocks
 * (store calls): call at start, off the I/O loops. 0 or -1 (logged). */
int pt_persist_start(pt_store_t *store, const char *data_dir, const pt_snapshot_t *snap);

/* Writes what is dirty and stops the writer. */
void pt_persist_stop(void);

/* This node's id (kept in its data directory); "" before pt_persist_start. */
const char *pt_persist_node_id(void);

/* 1 when records are persisted. */
int pt_persist_on(void);

/* Reads execution id back from the store into memory (blocking: a pool
 * thread). PT_OK, PT_ENOENT, or PT_ERROR. */
int pt_persist_load(const char *id, size_t len);

#endif
