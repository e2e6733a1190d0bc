/*
 * store.h - the control plane's store (DESIGN.md §7): APIs, revisions,
 * environments, deployments, admin tokens and audit events, in SQLite
 * (embedded, WAL) or PostgreSQL (a cluster's shared store), behind one
 * interface. It runs on the database connectors of src/connector (the same
 * binding, typing and error mapping as process steps) and blocks: call it
 * from the control thread or a pool thread, never from an I/O loop.
 */
#ifndef PT_CONTROL_STORE_H
#define PT_CONTROL_STORE_H

#include "config/config-t.h"
#include "connector/db.h"
#include "core/arena.h"
#include "core/json.h"

/* The schema version this build knows; a store with a newer one is refused. */
#define PT_STORE_SCHEMA_VERSION 4

typedef struct pt_store_s pt_store_t;

/* A store on def (copied; a sqlite: path or a postgresql:// URL). Nothing
 * is opened yet. NULL when out of memory or the kind is not a store kind. */
pt_store_t *pt_store_new(const pt_connection_def_t *def);
void pt_store_free(pt_store_t *s);

/* "sqlite" or "postgresql". */
const char *pt_store_kind(const pt_store_t *s);

/* Where it is, without its password, for messages. */
const char *pt_store_display(const pt_store_t *s);

/* Applies the migrations the store lacks, each in a transaction (safe to
 * run twice, and by two nodes at once on PostgreSQL). Returns the schema
 * version, or -1 with a message in err (unreachable, newer schema...). */
int pt_store_migrate(pt_store_t *s, char *err, size_t errlen);

/* A borrowed connection, optionally inside a transaction. */
typedef struct pt_store_tx_s {
    pt_store_t *store;
    pt_dbconn_t *conn;
    int in_tx;
    int broken; /* an error left the connection unusable: it is closed at the end */
} pt_store_tx_t;

/* Borrows a connection (waiting up to 5 s) and, when transaction, begins
 * one. PT_OK, or PT_ERROR with err filled. */
int pt_store_begin(pt_store_t *s, pt_store_tx_t *tx, int transaction, pt_db_error_t *err);

/* Commits (commit != 0; PT_ERROR with err filled when that fails) or rolls
 * back, and gives the connection back. */
int pt_store_end(pt_store_tx_t *tx, int commit, pt_db_error_t *err);

/* Runs sql (with :name parameters) binding the (name, pt_json_t *value)
 * pairs that follow, NULL-terminated; result as for pt_db_exec (rows, one
 * row, affected count) in arena a. PT_OK, PT_ENOENT (ROW without a row),
 * or PT_ERROR with err filled. */
int pt_store_q(pt_store_tx_t *tx, pt_arena_t *a, pt_sql_result_t kind, pt_json_t **out,
               pt_db_error_t *err, const char *sql, ...);

/* The time now as stored: ISO 8601 UTC with milliseconds. */
char *pt_store_now(pt_arena_t *a);

#endif
