/*
 * jschema.h - the schemas of service APIs (issue 4): a JSON Schema subset
 * that validates request bodies (and, later, generates contracts).
 *
 * Supported keywords: type ("object", "array", "string", "integer",
 * "number", "boolean", "null"; a list of types is allowed), nullable
 * (OpenAPI 3.0 style: null also accepted), properties, required,
 * additionalProperties (boolean, default true), items, minItems, maxItems,
 * minLength, maxLength (characters, not bytes), pattern (not supported:
 * refused at compile), format ("date", "date-time", "email", "uuid", "uri"
 * checked; others refused at compile), enum (any JSON values), const,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers, compared
 * exactly for integers and decimal text; see pt_json), multipleOf is
 * refused, readOnly (a property marked readOnly must not be in a request
 * body: a violation "is read-only"), writeOnly (accepted, kept), description,
 * title, example, default (kept for contracts), $ref ("#/schemas/<name>":
 * another named schema of the same API; resolved at compile; cycles allowed
 * through properties/items).
 * Unknown keywords are compile errors (a typo must not silently validate
 * nothing).
 */
#ifndef PT_JSCHEMA_H
#define PT_JSCHEMA_H

#include <stddef.h>

#include "core/arena.h"
#include "core/json.h"

typedef struct pt_jschema_s pt_jschema_t;

/* A set of named schemas compiled together (so that $ref can point to any). */
typedef struct pt_jschema_set_s pt_jschema_set_t;

/* Compiles the named schemas of `defs` (a JSON object: name -> schema
 * document) into arena a. Returns NULL with a message in err naming the
 * schema and the JSON pointer of the problem ("customer: /properties/age:
 * minimum must be a number"). */
pt_jschema_set_t *pt_jschema_compile(pt_arena_t *a, const pt_json_t *defs, char *err,
                                     size_t errlen);

/* The schema of that name, or NULL. */
const pt_jschema_t *pt_jschema_get(const pt_jschema_set_t *set, const char *name);

/* Compiles one anonymous schema document (it may $ref schemas of set,
 * which may be NULL). Same errors as above. */
const pt_jschema_t *pt_jschema_compile_one(pt_arena_t *a, const pt_jschema_set_t *set,
                                           const pt_json_t *doc, char *err, size_t errlen);

/* Validation mode: a request body (readOnly properties are violations) or a
 * response (writeOnly ones are). */
typedef enum pt_jschema_mode_e { PT_JSCHEMA_REQUEST = 0, PT_JSCHEMA_RESPONSE } pt_jschema_mode_t;

/* Validates v. Returns 0 when valid; otherwise the number of violations,
 * with *violations (if not NULL) set to a JSON array (in arena a) of at most
 * max_violations objects {"pointer": "/items/3/name", "message": "must be at
 * most 40 characters"} in document order. Bounded work: recursion depth of
 * the value is bounded by the parser's limits. Thread-safe for a shared
 * schema. Returns -1 when out of memory. */
int pt_jschema_validate(const pt_jschema_t *s, const pt_json_t *v, pt_jschema_mode_t mode,
                        pt_arena_t *a, size_t max_violations, pt_json_t **violations);

/* Converts, in place, the text values of v that the schema types otherwise:
 * a string where the schema wants an integer/number (valid number text) or
 * a boolean ("true"/"false"/"1"/"0"), and a single value where it wants an
 * array (one repeated XML element). Used for XML bodies and SOAP payloads,
 * whose values are all text, before validation. Returns the (possibly new)
 * value; what cannot be converted is left for validation to report. */
pt_json_t *pt_jschema_coerce(const pt_jschema_t *s, pt_json_t *v, pt_arena_t *a);

/* Accessors for contract generators (later issues): the compiled schema's
 * source document. */
const pt_json_t *pt_jschema_doc(const pt_jschema_t *s);

/* The named schemas of a set, in definition order (contract generators). */
size_t pt_jschema_count(const pt_jschema_set_t *set);
const char *pt_jschema_name(const pt_jschema_set_t *set, size_t i, size_t *len);
const pt_jschema_t *pt_jschema_at(const pt_jschema_set_t *set, size_t i);

#endif
