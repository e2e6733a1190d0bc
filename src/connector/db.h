/*
 * db.h - databases behind one small interface (DESIGN.md §8: sqlite, pg,
 * mariadb "behind small interfaces"): a pool of connections per connection
 * definition, borrowed by a process execution on a pool thread (blocking
 * calls are fine there; never on an I/O loop).
 */
#ifndef PT_CONNECTOR_DB_H
#define PT_CONNECTOR_DB_H

#include <stdint.h>

#include "config/config-t.h"
#include "core/arena.h"
#include "core/json.h"

typedef struct pt_db_s pt_db_t;
typedef struct pt_dbconn_s pt_dbconn_t;

typedef struct pt_db_error_s {
    pt_proc_error_t kind; /* what on_error maps */
    int timeout;          /* the statement ran out of time (-> 504) */
    int broken;           /* the connection is lost (the server restarted...): return it
                             broken; nothing ran, so the statement may be tried again */
    char message[256];    /* for the log and the problem detail: no secrets, no data values */
} pt_db_error_t;

/* A pool for def (nothing is opened yet). NULL when out of memory or the
 * kind has no driver in this build. */
pt_db_t *pt_db_new(const pt_connection_def_t *def);

/* Opens connections until n are open (pool.min), blocking: call it on a
 * thread that may wait (not an I/O loop). Returns how many are open; a
 * failure is in err. */
unsigned pt_db_warm(pt_db_t *db, unsigned n, pt_db_error_t *err);

/* Closes the idle connections and frees the pool; every connection must
 * have been returned. */
void pt_db_free(pt_db_t *db);

/* Takes an idle connection (checked cheaply first), or opens one, waiting
 * up to wait_ms for one to be returned when pool_max are open. NULL with
 * err filled (BUSY when the wait ran out, DATABASE when it cannot open). */
pt_dbconn_t *pt_db_borrow(pt_db_t *db, uint32_t wait_ms, pt_db_error_t *err);

/* Gives c back; broken: close it instead (after an error that may have
 * left it unusable). */
void pt_db_return(pt_db_t *db, pt_dbconn_t *c, int broken);

/* Transactions. Return PT_OK or PT_ERROR with err filled. */
int pt_db_begin(pt_dbconn_t *c, pt_db_t *db, pt_db_error_t *err);
int pt_db_commit(pt_dbconn_t *c, pt_db_t *db, pt_db_error_t *err);
void pt_db_rollback(pt_dbconn_t *c, pt_db_t *db);

/* Runs the SQL step st with args[i] bound to st->params[i] (JSON values,
 * bound with their types, never interpolated), with a deadline (uv_hrtime
 * nanoseconds; 0 = none). The result, in arena a, per st->result: an array
 * of row objects, one row object (NULL *result with PT_ENOENT when none),
 * {"affected": n}, or {"key": k, "affected": n}. Column values: integers
 * and reals as numbers, decimals with their digits, text as strings,
 * timestamps in ISO 8601, booleans for boolean columns, blobs in base64,
 * NULL as null. Returns PT_OK, PT_ENOENT (no row for ROW), or PT_ERROR with
 * err filled. */
/* From another thread while c runs a statement: stops it (it fails with an
 * error). The caller keeps c from going back to the pool meanwhile. */
void pt_db_cancel(pt_dbconn_t *c, pt_db_t *db);

int pt_db_exec(pt_dbconn_t *c, pt_db_t *db, const pt_step_def_t *st, pt_json_t *const *args,
               uint64_t deadline, pt_arena_t *a, pt_json_t **result, pt_db_error_t *err);

#endif
