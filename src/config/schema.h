/*
 * schema.h - helpers shared by the node configuration (config.c) and the API
 * definition (api_def.c, upstream.c) loaders: typed reads of YAML nodes with
 * messages that name the file, the line and the dotted key, and the character
 * classes of HTTP and URIs those files check values against. Internal to
 * src/config.
 *
 * A pt__cfg_ctx_t tracks the key being read (`listen[1].tls.cert`); push a key
 * or an index before reading a value, pop after. Every reader reports its own
 * error through pt__cfg_err and returns -1, so that callers simply go on with
 * the next key: all errors of a file are collected.
 */
#ifndef PT_CONFIG_SCHEMA_H
#define PT_CONFIG_SCHEMA_H

#include <stdint.h>

#include "config/config.h"
#include "config/yaml.h"

#define PT__CFG_KEY_MAX 512

#define PT__CFG_HEADER_NAME_MAX  256  /* characters of a configured header name */
#define PT__CFG_HEADER_VALUE_MAX 8192 /* bytes of a configured header value */

typedef struct pt__cfg_ctx_s {
    pt_arena_t *arena;   /* where values are copied (the configuration's arena) */
    pt_arena_t *scratch; /* temporary memory, freed when the file is done */
    const char *file;    /* name used in messages */
    const char *dir;     /* directory relative paths are resolved against */
    pt_config_errors_t *errs;
    unsigned nerr; /* errors reported through this context */
    char key[PT__CFG_KEY_MAX];
    size_t klen;
} pt__cfg_ctx_t;

/* Appends ".name" (or "name" at the top) to the current key; returns the
 * length to give back to pt__cfg_pop. Long or non-printable names are escaped
 * and truncated. */
size_t pt__cfg_push(pt__cfg_ctx_t *c, const char *name, size_t len);
/* Appends "[i]". */
size_t pt__cfg_push_index(pt__cfg_ctx_t *c, size_t i);
/* Restores the key to what it was before the push that returned mark. */
void pt__cfg_pop(pt__cfg_ctx_t *c, size_t mark);

/* Reports "file:line: key: message" for the current key and counts it. */
void pt__cfg_err(pt__cfg_ctx_t *c, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats a scalar for a message: quoted, escaped, truncated. Returns out. */
const char *pt__cfg_quote(const pt_ynode_t *n, char *out, size_t outlen);

/* Checks that n is a mapping (else reports "expected a mapping, got ...") and
 * that every key is in the NULL-terminated list `allowed` (else reports each
 * unknown key). Returns 0 if n is a mapping (even with unknown keys), -1 if not. */
int pt__cfg_mapping(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *const *allowed);

/* Reports a missing required key `name` of mapping m. Always returns -1. */
int pt__cfg_missing(pt__cfg_ctx_t *c, const pt_ynode_t *m, const char *name);

/* Reads a string (any non-null scalar, quoted or not; NUL bytes rejected) into
 * c->arena. Returns 0 or -1 (reported). */
int pt__cfg_string(pt__cfg_ctx_t *c, const pt_ynode_t *n, char **out);

/* Reads a boolean: the plain (unquoted) scalar true or false, nothing else
 * (no yes/no/on/off, no quoted "true"). Sets *out to 1 or 0. Returns 0 or -1
 * (reported). */
int pt__cfg_bool(pt__cfg_ctx_t *c, const pt_ynode_t *n, int *out);

/* Reads a plain decimal integer in [min, max]. Returns 0 or -1 (reported). */
int pt__cfg_uint(pt__cfg_ctx_t *c, const pt_ynode_t *n, uint64_t min, uint64_t max, uint64_t *out);

/* Reads a size: an integer (bytes) or a string "<digits><unit>" with unit B,
 * KiB, MiB, GiB (powers of 1024) or k, M, G (powers of 1000); in [min, max]. */
int pt__cfg_size(pt__cfg_ctx_t *c, const pt_ynode_t *n, uint64_t min, uint64_t max, uint64_t *out);

/* Reads a duration in milliseconds: an integer (ms) or a string
 * "<digits><unit>" with unit ms, s, m or h; in [min_ms, max_ms]. */
int pt__cfg_duration(pt__cfg_ctx_t *c, const pt_ynode_t *n, uint64_t min_ms, uint64_t max_ms,
                     uint64_t *out);

/* Resolves a file path from the configuration against c->dir (absolute paths
 * are kept). Returns a string in c->arena, or NULL (out of memory, reported). */
char *pt__cfg_path(pt__cfg_ctx_t *c, unsigned line, const char *path);

/* Formats a size for messages ("1MiB", "16384"). Returns out. */
const char *pt__cfg_size_str(uint64_t v, char *out, size_t outlen);

/* Returns the line of key `key` in mapping m (the key itself, not its value),
 * or m's line when m has no such key. m must be a mapping; nothing is reported. */
unsigned pt__cfg_key_line(const pt_ynode_t *m, const char *key);

/* Returns 1 when the len bytes at s are an HTTP token (RFC 9110: one or more
 * letters, digits or !#$%&'*+-.^_`|~), else 0. Length limits are the caller's. */
int pt__cfg_is_token(const char *s, size_t len);

/* Returns 1 when c is a hexadecimal digit (either case), else 0. */
int pt__cfg_is_hex(unsigned char c);

/* Returns 1 when c is an RFC 3986 pchar other than a percent-encoding
 * (unreserved / sub-delims / ":" / "@"), else 0. '%' is the caller's to check. */
int pt__cfg_is_pchar(unsigned char c);

#endif
