/*
 * snapshot.h - building, publishing and releasing snapshots.
 */
#ifndef PT_SNAPSHOT_H
#define PT_SNAPSHOT_H

#include "gateway/snapshot-t.h"

/* Builds a snapshot from cfg (taking ownership of cfg on success and on
 * failure). Creates the route table, the TLS contexts of every listener and
 * the rendered built-in documents. refs starts at 1 (the caller's).
 * Returns NULL with a message in err on failure. */
pt_snapshot_t *pt_snapshot_build(pt_config_t *cfg, uint64_t generation, char *err, size_t errlen);

/* Takes one more reference (any thread). */
void pt_snapshot_ref(pt_snapshot_t *s);

/* Drops one reference (any thread); the last one frees the snapshot. */
void pt_snapshot_unref(pt_snapshot_t *s);

#endif
