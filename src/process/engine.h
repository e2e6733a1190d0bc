/*
 * engine.h - running a route's process (issue 4, DESIGN.md §5).
 *
 * On the I/O loop, pt_process_handle copies what the process may see of
 * the request (method, path parameters, query, declared headers, body) into
 * an execution that owns its memory, and hands it to the process pool. On a
 * pool thread the execution builds its context, validates the body, runs
 * the steps (SQL through the connectors, map, respond) and renders the
 * response; back on the loop the response is sent, if the client is still
 * there. The client leaving never cuts a running execution short (its
 * transaction commits or rolls back as a whole).
 */
#ifndef PT_PROCESS_ENGINE_H
#define PT_PROCESS_ENGINE_H

#include "config/config-t.h"
#include "core/arena.h"
#include "http/http-t.h"

typedef struct pt_db_s pt_db_t;
typedef struct pt_procpool_s pt_procpool_t;

/* A service API's runtime in a snapshot: a database pool per connection. */
typedef struct pt_service_rt_s {
    const pt_api_def_t *api;
    pt_db_t **dbs; /* per api->connections[i]; NULL for kinds without a driver yet */
} pt_service_rt_t;

/* Builds the runtime of service API api (no database is opened yet).
 * Returns NULL with a message in err. Free with pt_service_rt_free. */
pt_service_rt_t *pt_service_rt_build(const pt_api_def_t *api, char *err, size_t errlen);
void pt_service_rt_free(pt_service_rt_t *rt);

/* Node-wide execution settings (`processes:` of the node configuration). */
typedef struct pt_process_limits_s {
    uint32_t max_execution_ms; /* -> timeout_status */
    int timeout_status;        /* 504 (default) or 522 */
} pt_process_limits_t;

/* Opens the pool.min connections of s's service APIs on a thread of its
 * own (never an I/O loop), holding a reference of s meanwhile; threads are
 * chained to prev and joined by pt_service_warm_join (at shutdown). Returns
 * the new head (prev when there is nothing to open). */
typedef struct pt_warm_s pt_warm_t;
typedef struct pt_snapshot_s pt_snapshot_t;
pt_warm_t *pt_service_warm_start(pt_snapshot_t *s, pt_warm_t *prev);
void pt_service_warm_join(pt_warm_t *w);

/* Runs the process of req's route (req->match.route->kind == PT_DISPATCH_PROCESS)
 * on the worker's process pool. */
void pt_process_handle(pt_req_t *req);

/* POST {base_path}/soap of a service API with operations: a SOAP 1.1
 * (version 1) or 1.2 (2) request; the operation is the element of the
 * envelope's Body (checked against the action when one is given), its
 * content the process's body; the result is answered as
 * <{operation}Response xmlns="{soap_namespace}">; errors are SOAP faults. */
void pt_process_handle_soap(pt_req_t *req, int version);

#endif
