/*
 * control.h - the control plane of a node with a store (DESIGN.md §7,
 * docs/admin-api.md): it builds the snapshot of the deployments of the
 * node's environment off the request path, hands it to the main loop to
 * publish (one atomic swap per worker), keeps a local copy of what it
 * serves for when the store is down, and pushes the declarative `apis:`
 * folder. Changes (admin API, declarative push) hold the control lock,
 * taken on pool threads and the main thread only, never on an I/O loop.
 */
#ifndef PT_CONTROL_CONTROL_H
#define PT_CONTROL_CONTROL_H

#include <uv.h>

#include "config/config.h"
#include "control/store.h"
#include "gateway/snapshot.h"

typedef struct pt_control_s pt_control_t;

/* The node's control plane, or NULL without one (set by pt_control_open). */
extern pt_control_t *pt_control;

/* Opens the store of cfg (created with its data directory; migrated) and
 * makes sure the node's environment exists. A store that cannot be reached
 * is not fatal (the node serves its last snapshot); a store with a newer
 * schema is. NULL with err on a fatal error. */
pt_control_t *pt_control_open(const char *config_path, const pt_config_t *cfg, char *err,
                              size_t errlen);
void pt_control_close(pt_control_t *c);

/* The first snapshot: pushes and deploys the `apis:` folder, then builds
 * from the store, or from the last snapshot kept when the store is down. */
pt_snapshot_t *pt_control_initial(pt_control_t *c, char *err, size_t errlen);

/* SIGHUP: the same as at start, then publishes (blocking: call it off the
 * main loop, e.g. from uv_queue_work). */
void pt_control_reload(pt_control_t *c);

/* Publication: the main loop's async handle (pt_control_publish sends it)
 * and what it does when woken: takes the pending snapshot (NULL when none)
 * and, once it is published, reports it. */
void pt_control_set_async(pt_control_t *c, uv_async_t *async);
pt_snapshot_t *pt_control_take_pending(pt_control_t *c);
void pt_control_published(pt_control_t *c, uint64_t generation);

/* The control lock (pool threads and the main thread). */
void pt_control_lock(pt_control_t *c);
void pt_control_unlock(pt_control_t *c);

pt_store_t *pt_control_store(pt_control_t *c);
const char *pt_control_environment(const pt_control_t *c);
const char *pt_control_data_dir(const pt_control_t *c);
int pt_control_store_ok(const pt_control_t *c);
void pt_control_set_store_ok(pt_control_t *c, int ok);
uint64_t pt_control_generation(const pt_control_t *c);

/* Builds the snapshot of the environment's active deployments as tx sees
 * them (uncommitted changes included). NULL with the problems in errs
 * (file:line: key: message) or err. Call with the lock held. */
pt_snapshot_t *pt_control_build(pt_control_t *c, pt_store_tx_t *tx, pt_config_errors_t *errs,
                                char *err, size_t errlen);

/* Hands s (one reference, taken) to the main loop and waits until it is
 * published (up to 10 s); keeps a copy of the definitions it serves in the
 * data directory. Returns the generation published. Lock held. */
uint64_t pt_control_publish(pt_control_t *c, pt_snapshot_t *s);

/* Validates an API definition as a push would: its name, base path and
 * kind ("service" or "proxy") in a, or -1 with the problems in errs. */
int pt_control_check_definition(pt_control_t *c, const char *text, size_t len, pt_arena_t *a,
                                char **name, char **base_path, const char **kind,
                                pt_config_errors_t *errs);

/* `portico migrate -c FILE` and `portico admin token create -c FILE --name N`. */
int pt_control_migrate_main(int argc, char **argv);
int pt_control_admin_main(int argc, char **argv);

/* `portico user key` (user.c). */
int pt_user_main(int argc, char **argv);

#endif
