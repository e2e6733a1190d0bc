/*
 * yaml.h - a small, hostile-input-safe YAML document tree built with libyaml's event API.
 *
 * Configuration files are parsed into a tree of pt_ynode_t allocated from an
 * arena; the schema code of config.c and api_def.c then walks the tree. Only
 * the subset of YAML a configuration needs is accepted:
 *   - one document per file (an empty file is an error);
 *   - no anchors and no aliases (they allow "billion laughs" blow-ups and make
 *     line numbers in messages ambiguous);
 *   - mapping keys are scalars, unique within their mapping (compared byte-wise);
 *   - at most PT_YAML_MAX_DEPTH nested collections, PT_YAML_MAX_NODES nodes,
 *     PT_YAML_MAX_SIZE bytes of input;
 *   - tags: only `!!str` and the non-specific `!` (the scalar is then a string,
 *     as if quoted), `!!map` on mappings and `!!seq` on sequences. Any other tag
 *     (`!!int`, `!!binary`, `!custom`, ...) is rejected: the schema decides the
 *     type of every value, and a tag the loader silently ignored would mislead.
 * Every error names the file and the 1-based line.
 */
#ifndef PT_YAML_H
#define PT_YAML_H

#include <stddef.h>

#include "config/config.h"
#include "core/arena.h"

#define PT_YAML_MAX_SIZE  (4u << 20)
#define PT_YAML_MAX_DEPTH 64
#define PT_YAML_MAX_NODES 100000

typedef enum pt_ynode_kind_e {
    PT_YNODE_SCALAR = 1,
    PT_YNODE_MAPPING,
    PT_YNODE_SEQUENCE
} pt_ynode_kind_t;

typedef struct pt_ynode_s pt_ynode_t;

typedef struct pt_ypair_s {
    pt_ynode_t *key; /* always a scalar */
    pt_ynode_t *value;
} pt_ypair_t;

struct pt_ynode_s {
    pt_ynode_kind_t kind;
    unsigned line;      /* 1-based line where the node starts */
    int quoted;         /* scalar written in a non-plain style (quoted, literal, folded)
                           or tagged !!str: always a string, never a number or null */
    const char *value;  /* scalar text, NUL-terminated, may contain NULs */
    size_t len;         /* scalar length in bytes */
    pt_ypair_t *pairs;  /* mapping: n key/value pairs in document order */
    pt_ynode_t **items; /* sequence: n items */
    size_t n;
    pt_ynode_t *next; /* internal: next sibling while the tree is built */
};

/* Parses one YAML document of len bytes. `file` is used in messages. Returns
 * the root node, allocated (with everything below it) from arena a, or NULL
 * with at least one message in errs (syntax error, limit exceeded, empty
 * document, allocation failure). libyaml's own memory is released before
 * returning. */
pt_ynode_t *pt_yaml_parse(pt_arena_t *a, const char *file, const char *data, size_t len,
                          pt_config_errors_t *errs);

/* Reads a whole regular file of at most PT_YAML_MAX_SIZE bytes into a new
 * malloc()ed, NUL-terminated buffer that the caller frees. Returns 0, or
 * PT_EIO / PT_ELIMIT / PT_ENOMEM with a message in errs (*data is then NULL). */
int pt_yaml_read_file(const char *path, char **data, size_t *len, pt_config_errors_t *errs);

/* Returns the value of `key` in mapping m, or NULL when m is not a mapping or
 * has no such key. */
const pt_ynode_t *pt_yaml_get(const pt_ynode_t *m, const char *key);

/* Returns 1 when n is absent or a plain null scalar (``, `~`, `null`, `Null`,
 * `NULL`), else 0. */
int pt_yaml_is_null(const pt_ynode_t *n);

/* Returns "a string", "a number", "a boolean", "null", "a mapping" or "a list",
 * for messages such as "expected an integer, got a mapping". Static storage. */
const char *pt_yaml_describe(const pt_ynode_t *n);

#endif
