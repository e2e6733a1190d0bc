/*
 * config.h - loading and validating the node configuration and API definitions.
 *
 * Errors name the file, the line and the key (dotted path):
 *   examples/portico.yaml:12: limits.max_body_size: expected a size like 8MiB, got "lots"
 * and go into a caller-provided pt_config_errors_t (all errors are collected,
 * not just the first, up to a cap).
 */
#ifndef PT_CONFIG_H
#define PT_CONFIG_H

#include "config/config-t.h"

struct sockaddr;

#define PT_CONFIG_MAX_ERRORS 64

typedef struct pt_config_errors_s {
    char *msgs[PT_CONFIG_MAX_ERRORS]; /* heap strings "file:line: key: message" */
    size_t count;
    size_t dropped; /* errors beyond the cap */
} pt_config_errors_t;

/* Sets the defaults of every limit. */
void pt_limits_defaults(pt_limits_t *l);

/* Returns an empty configuration: default limits and log settings, no
 * listeners, no APIs, `path` (may be NULL) copied into its arena. Used to load
 * API definitions on their own (tests, `portico validate`). The caller frees
 * it with pt_config_free. NULL when out of memory. */
pt_config_t *pt_config_new(const char *path);

/* Loads the node configuration at path and every *.yaml definition of its
 * apis directory. Returns a new configuration owned by the caller (free with
 * pt_config_free), or NULL with at least one message in errs. */
pt_config_t *pt_config_load(const char *path, pt_config_errors_t *errs);

/* Like pt_config_load, but from memory (for tests and fuzzing); `name` is used
 * in messages; the apis directory, if any, is read from disk. */
/* The node configuration alone: the `apis` folder is recorded, not read
 * (a node with a store serves the deployments of its environment). */
pt_config_t *pt_config_load_node(const char *path, pt_config_errors_t *errs);

/* After API definitions were added with pt_api_def_load_buffer: sorts them
 * and checks them together (base paths). 0, or -1 with errors. */
int pt_config_finish_apis(pt_config_t *cfg, pt_config_errors_t *errs);

pt_config_t *pt_config_load_buffer(const char *name, const char *data, size_t len,
                                   pt_config_errors_t *errs);

/* Loads one API definition file into cfg (appends to cfg->apis).
 * Returns 0, or PT_EINVAL with messages in errs. */
int pt_api_def_load(pt_config_t *cfg, const char *path, pt_config_errors_t *errs);

/* Loads one API definition from memory into cfg (appends). Same contract.
 * On failure nothing is appended; memory already taken stays in cfg's arena
 * until pt_config_free. */
int pt_api_def_load_buffer(pt_config_t *cfg, const char *name, const char *data, size_t len,
                           pt_config_errors_t *errs);

/* Cross-checks of the whole set (unique names, unique base paths, route
 * templates parse, no duplicate METHOD+path in one API). Returns 0 or PT_EINVAL. */
/* An environment name: [a-z0-9][a-z0-9_-]{0,62}. */
int pt_config_env_name_ok(const char *s);

int pt_config_check_apis(pt_config_t *cfg, pt_config_errors_t *errs);

/* `portico validate FILE...`: each file is a node configuration (has `listen`)
 * or an API definition (has `base_path`). Prints errors to stderr, "FILE: ok"
 * to stdout; returns the process exit code (0 all valid, 1 otherwise).
 * argv[0..argc) are the FILE arguments only (not the program name nor the
 * `validate` word). A node configuration is loaded with its apis directory;
 * API definitions given together are also cross-checked as one set. */
int pt_config_validate_files(int argc, char **argv);

/* Returns 1 when the address (struct sockaddr_in or sockaddr_in6; an IPv4-mapped IPv6
 * address counts as IPv4) is inside one of the n blocks, else 0 (also for NULL or another
 * address family). IPv4 addresses are compared with the IPv4 blocks only, IPv6 addresses with
 * the IPv6 blocks only: "::/0" does not cover IPv4 peers. Reads only; no allocation. */
int pt_cidr_match(const pt_cidr_t *blocks, size_t n, const struct sockaddr *sa);

/* Adds the users of a `users:` document (YAML, or JSON) to cfg's, checked
 * as the node file's are (origin names it in messages: "store"). 0, or
 * PT_EINVAL with errs filled. */
int pt_config_add_users(pt_config_t *cfg, const char *origin, const char *text, size_t len,
                        pt_config_errors_t *errs);

/* Is url (len bytes) an http(s) URL whose host is among w's allowed hosts? */
int pt_webhook_url_allowed(const pt_webhooks_config_t *w, const char *url, size_t len);

/* Parses "addr" or "addr/prefix" (IPv4 or IPv6; ::ffff:a.b.c.d/96+ becomes
 * the IPv4 block) of len bytes into b. 0, or PT_CIDR_BAD_ADDRESS,
 * PT_CIDR_BAD_PREFIX, or PT_CIDR_HOST_BITS (b then holds the block meant). */
enum { PT_CIDR_BAD_ADDRESS = -1, PT_CIDR_BAD_PREFIX = -2, PT_CIDR_HOST_BITS = -3 };
int pt_cidr_parse(const char *s, size_t len, pt_cidr_t *b);

/* Destroys cfg's arena (everything the configuration owns) and frees cfg.
 * NULL is allowed. */
void pt_config_free(pt_config_t *cfg);
/* Frees every message of errs and empties it (errs itself is the caller's). */
void pt_config_errors_free(pt_config_errors_t *errs);
/* Appends a formatted error; used by the loader and by callers. */
void pt_config_error(pt_config_errors_t *errs, const char *file, unsigned line, const char *key,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
