/*
 * upstream-i.h - reading the upstream of a proxy API (upstream.c), for the API
 * definition loader (api_def.c). Internal to src/config.
 */
#ifndef PT_CONFIG_UPSTREAM_I_H
#define PT_CONFIG_UPSTREAM_I_H

#include "config/config.h"
#include "config/schema.h"
#include "core/buf.h"

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

/* Parses "addr" or "addr/prefix" into b. Returns 0, or -1 with a message reported. */
int pt__cfg_cidr(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_cidr_t *b);

/* Reads scalar n as a string with its ${env:NAME} references resolved
 * (and "$$" for '$') into c->arena; when it had references, the value is a
 * secret, zeroed when the arena is freed. shown (if not NULL) receives the
 * names of the variables used ("${env:A}, ${env:B}"; "" when none), for
 * messages. Returns 0, or -1 (reported, naming variables, never values). */
int pt__cfg_secret(pt__cfg_ctx_t *c, const pt_ynode_t *n, char **out, char *shown,
                   size_t shown_len);

/* Reads the `connections`, `schemas`, `headers` and `processes` of a
 * service API (service.c) into api; errors are reported through c. Call
 * before the routes are read (they name processes and schemas). */
void pt__cfg_service(pt__cfg_ctx_t *c, const pt_ynode_t *root, pt_api_def_t *api);

/* Reads the `process`, `body_schema` of a route of a service API (service.c):
 * n is the route's mapping; sets r->kind, r->process, r->body_schema. */
void pt__cfg_route_process(pt__cfg_ctx_t *c, const pt_ynode_t *n, const pt_api_def_t *api,
                           pt_route_def_t *r);

/* Reads the `operations` (SOAP) and `soap_namespace` of a service API
 * (service.c); after its processes and schemas. */
void pt__cfg_operations(pt__cfg_ctx_t *c, const pt_ynode_t *root, pt_api_def_t *api);

/* Converts a YAML node into JSON text (YAML 1.2 core scalars: null, booleans and numbers
 * unquoted; the rest strings) appended to b (api_def.c). Returns 0 or -1 (out of memory). */
int pt__cfg_yaml_json(pt_buf_t *b, const pt_ynode_t *n);

/* Resolves a file path of an API definition: absolute kept, relative to the
 * directory of the definition file (upstream.c). NULL when out of memory
 * (reported). */
char *pt__cfg_def_path(pt__cfg_ctx_t *c, unsigned line, const char *path);

#endif
