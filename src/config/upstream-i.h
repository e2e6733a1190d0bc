/*
 * upstream-i.h - reading the upstream of a proxy API (upstream.c), for the API
 * definition loader (api_def.c). Internal to src/config.
 */
#ifndef PT_CONFIG_UPSTREAM_I_H
#define PT_CONFIG_UPSTREAM_I_H

#include "config/config.h"
#include "config/schema.h"

/* Reads `upstream:` node n of an API definition into a new pt_upstream_t,
 * defaults for absent keys. The upstream and everything it points to (targets,
 * header edits, the encoded Basic credentials) are allocated in c->arena and
 * freed with it; resolved ${env:NAME} values and credentials register a
 * cleanup that zeroes them when their arena (c->arena, or c->scratch for
 * temporaries) is freed. Every error is reported through c (counted in
 * c->nerr) under the current key, which the caller has pushed ("upstream").
 * Returns NULL when n is not a mapping or memory ran out; on other errors
 * returns the upstream with the offending fields at their defaults, and the
 * caller must check c->nerr before using it.
 * Files named by `tls:` (ca_file, client_cert, client_key) are resolved like
 * the node configuration's: absolute paths as written, relative ones against
 * the directory of the definition file (c->dir if set, else the directory part
 * of c->file); each must be a readable regular file when this runs (stat and
 * access; the files are not opened nor parsed). Defaults are set even for
 * absent blocks: tls.verify 1, dns_ttl_ms 60000, and every check.* field
 * (expected = one range 200..299) with check.path NULL (no active checks). */
pt_upstream_t *pt__cfg_upstream(pt__cfg_ctx_t *c, const pt_ynode_t *n);

#endif
