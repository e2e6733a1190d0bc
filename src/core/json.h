/*
 * json.h - JSON values in an arena: parsing (RFC 8259, strict), building and
 * writing.
 *
 * Why not jansson (DESIGN.md §8 names it): a process builds and drops many
 * small values per request, and jansson allocates each with malloc; here a
 * value lives in the request's arena and goes with it. And numbers keep their
 * text: a decimal such as 12345678901234567890.10 from a body or a NUMERIC
 * column reaches the database or the client digit for digit, never through a
 * double.
 *
 * Values are immutable once built, except through the pt_json_*_add/set
 * builders on values the caller created.
 */
#ifndef PT_JSON_H
#define PT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"

typedef enum pt_json_type_e {
    PT_JSON_NULL = 0,
    PT_JSON_FALSE,
    PT_JSON_TRUE,
    PT_JSON_NUMBER, /* text kept as written (valid JSON number syntax) */
    PT_JSON_STRING, /* UTF-8, may contain NUL (use len) */
    PT_JSON_ARRAY,
    PT_JSON_OBJECT
} pt_json_type_t;

typedef struct pt_json_s pt_json_t;

/* One member of an object. Keys are unique (the parser refuses duplicates). */
typedef struct pt_json_member_s {
    const char *key; /* NUL-terminated (a key with a NUL inside is refused) */
    size_t key_len;
    pt_json_t *value;
} pt_json_member_t;

struct pt_json_s {
    pt_json_type_t type;
    union {
        struct {
            const char *p; /* NUL-terminated copy in the arena */
            size_t len;
        } str; /* STRING and NUMBER */
        struct {
            pt_json_t **items;
            size_t n, cap;
        } arr;
        struct {
            pt_json_member_t *members; /* in document order */
            size_t n, cap;
        } obj;
    } u;
};

/* Limits of the parser. */
typedef struct pt_json_limits_s {
    unsigned max_depth; /* nesting of arrays/objects, e.g. 64 */
    size_t max_items;   /* values in the whole document, e.g. 1,000,000; 0 = no limit */
    size_t max_string;  /* bytes of one string after unescaping, 0 = no limit but the input */
} pt_json_limits_t;

#define PT_JSON_LIMITS_DEFAULT ((pt_json_limits_t){64, 1000000, 0})

/* Where and why parsing failed. */
typedef struct pt_json_error_s {
    size_t offset;    /* byte offset of the problem in the input */
    unsigned line;    /* 1-based */
    unsigned column;  /* 1-based, in bytes */
    char message[96]; /* e.g. "expected ',' or '}' after an object member" */
} pt_json_error_t;

/* Parses exactly one JSON value (surrounding whitespace allowed, nothing
 * else) from data[0..len) into arena a (limits NULL: PT_JSON_LIMITS_DEFAULT).
 * Iterative: nesting costs no C stack. Strict RFC 8259: no comments, no
 * trailing commas, no NaN/Infinity, no leading zeros or '+', strings valid
 * UTF-8 (also as \u escapes: lone surrogates are errors), control characters
 * escaped, duplicate keys refused. Returns the value, or NULL with err
 * filled (err->message "out of memory" when the arena failed; "too deep",
 * "too many values", "string too long" for the limits). */
pt_json_t *pt_json_parse(pt_arena_t *a, const char *data, size_t len,
                         const pt_json_limits_t *limits, pt_json_error_t *err);

/* Builders (NULL when out of memory). Strings and numbers are copied. */
pt_json_t *pt_json_null(pt_arena_t *a);
pt_json_t *pt_json_bool(pt_arena_t *a, int v);
pt_json_t *pt_json_string(pt_arena_t *a, const char *s, size_t len);
pt_json_t *pt_json_number_text(pt_arena_t *a, const char *s, size_t len); /* must be valid syntax:
                                                                            NULL otherwise */
pt_json_t *pt_json_int(pt_arena_t *a, int64_t v);
pt_json_t *pt_json_double(pt_arena_t *a, double v); /* shortest text that reads back the same
                                                       (%.17g at most); NaN/Inf: NULL */
pt_json_t *pt_json_array(pt_arena_t *a);
pt_json_t *pt_json_object(pt_arena_t *a);
/* Appends v to array arr. Returns PT_OK or PT_ENOMEM (also when v is NULL,
 * so that a failed builder can be passed straight in); PT_EINVAL when arr is
 * not an array. */
int pt_json_array_add(pt_arena_t *a, pt_json_t *arr, pt_json_t *v);
/* Sets key (copied) of object obj to v, replacing an existing member of that
 * key in place (order kept), else appending. Returns PT_OK or PT_ENOMEM (also
 * when v is NULL); PT_EINVAL when obj is not an object. */
int pt_json_object_set(pt_arena_t *a, pt_json_t *obj, const char *key, size_t key_len,
                       pt_json_t *v);

/* Lookups (NULL when absent or not of that type). */
pt_json_t *pt_json_get(const pt_json_t *obj, const char *key); /* object member */
pt_json_t *pt_json_getn(const pt_json_t *obj, const char *key, size_t key_len);
pt_json_t *pt_json_at(const pt_json_t *arr, size_t i); /* array item */

/* Number conversions. pt_json_to_int64: PT_OK when the number is an integer
 * (no fraction or exponent that makes it non-integral, e.g. "1e2" is 100, "1.5"
 * is not) within int64; PT_EINVAL otherwise. pt_json_to_double: strtod of the
 * text (may round). */
int pt_json_to_int64(const pt_json_t *v, int64_t *out);
double pt_json_to_double(const pt_json_t *v);

/* Is v "truthy" for conditions: false for null, false, 0 (any zero number),
 * "" and empty arrays/objects; true otherwise. */
int pt_json_truthy(const pt_json_t *v);

/* Deep equality (numbers compared by exact decimal value on their text:
 * "1" == "1.0" == "1e0", -0 == 0, "0.1" != "0.10000000000000001"; object
 * member order ignored). Recurses once per nesting level. */
int pt_json_equal(const pt_json_t *x, const pt_json_t *y);

/* Writes v as compact JSON (no spaces), strings escaped like
 * pt_buf_append_json_str (invalid UTF-8 -> U+FFFD, "/" not escaped).
 * Returns PT_OK or PT_ENOMEM (PT_ELIMIT when b has a limit); on failure b is
 * left as it was. Recurses once per nesting level. */
int pt_json_write(pt_buf_t *b, const pt_json_t *v);

/* The type's name: "null", "boolean", "number", "string", "array", "object". */
const char *pt_json_type_name(pt_json_type_t t);

#endif
