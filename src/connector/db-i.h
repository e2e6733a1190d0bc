/*
 * db-i.h - what a database driver provides to the pool of db.c. Internal
 * to src/connector.
 */
#ifndef PT_CONNECTOR_DB_I_H
#define PT_CONNECTOR_DB_I_H

#include "connector/db.h"

typedef struct pt_db_driver_s {
    const char *name;
    /* Opens a connection (blocking); NULL with err filled. */
    void *(*open)(const pt_connection_def_t *def, const char *uri, pt_db_error_t *err);
    void (*close)(void *h);
    /* Check before a pooled connection is handed out: 0 when usable. Cheap
     * unless force (a sibling was found broken: the server may have
     * restarted under every idle connection), which asks the server. */
    int (*check)(void *h, int force);
    int (*begin)(void *h, pt_db_error_t *err);
    int (*commit)(void *h, pt_db_error_t *err);
    void (*rollback)(void *h);
    /* Is a transaction open (a connection must not go back to the pool with one)? */
    int (*in_transaction)(void *h);
    int (*exec)(void *h, const pt_step_def_t *st, pt_json_t *const *args, uint64_t deadline,
                pt_arena_t *a, pt_json_t **result, pt_db_error_t *err);
    /* From another thread, while exec runs: asks the server to stop the
     * statement (it then fails). May block briefly (a network call). */
    void (*cancel)(void *h);
} pt_db_driver_t;

extern const pt_db_driver_t pt_db_sqlite;
extern const pt_db_driver_t pt_db_postgresql;
extern const pt_db_driver_t pt_db_mariadb;

/* Fills err (printf format). */
void pt__db_err(pt_db_error_t *err, pt_proc_error_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* base64 of n bytes into the arena, as a JSON string (blobs, bytea). */
pt_json_t *pt__db_base64(pt_arena_t *a, const unsigned char *p, size_t n);

#endif
