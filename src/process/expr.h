/*
 * expr.h - the expression language of processes (issue 4): `when:`
 * conditions, `map` fields, SQL parameters, `respond` bodies and templates.
 *
 * An expression is compiled once (at configuration load, into the
 * configuration's arena; the result is immutable and shared by every
 * thread) and evaluated against a context: a JSON object whose members are
 * the roots (`method`, `path`, `query`, `header`, `body`, `user`, `vars`,
 * `steps`, and `item`/`index` inside a per-element map).
 *
 * Grammar (whitespace between tokens is free):
 *   expr    := or
 *   or      := and ( ("||" | "or") and )*
 *   and     := not ( ("&&" | "and") not )*
 *   not     := ("!" | "not") not | cmp
 *   cmp     := add ( ("==" | "!=" | "<" | "<=" | ">" | ">=") add )?
 *   add     := unary ( ("+" | "-") unary )*      numbers only; "+" on strings is an error
 *   unary   := "-" unary | postfix
 *   postfix := primary ( "." ident | "[" expr "]" )*
 *   primary := number | string | "null" | "true" | "false" | ident | call | "(" expr ")"
 *            | "[" (expr ("," expr)*)? "]" | "{" (key ":" expr ("," key ":" expr)*)? "}"
 *   call    := ident "(" (expr ("," expr)*)? ")"
 *   string  := '...' or "..." with \\ \' \" \n \t \r \uXXXX escapes
 *   ident   := [A-Za-z_][A-Za-z0-9_]*     (a root name, or a member after ".")
 *
 * Semantics: a missing member, an index out of range or a member of a
 * non-object is null (never an error), so `coalesce(query.limit, 20)` works.
 * `==`/`!=` compare deeply (pt_json_equal); `<`... compare numbers by value
 * and strings bytewise, other combinations are an evaluation error. `&&`,
 * `||` short-circuit and yield booleans (truthiness: pt_json_truthy).
 * Numbers: integers that fit int64 stay exact in + and -; otherwise double.
 *
 * Functions: lower(s), upper(s), trim(s), concat(a, ...) (strings; numbers
 * and booleans converted, null skipped), length(x) (string in characters,
 * array, object), number(x) (from a number or a numeric string; else error),
 * string(x) (numbers keep their text; objects/arrays as compact JSON),
 * boolean(x) (truthiness), coalesce(a, ...) (first non-null), default(x, d)
 * (x unless null), date(x) (an ISO 8601 date/date-time string normalised to
 * "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS[.fff]Z" (offsets converted to UTC);
 * or a number of seconds since the epoch; else error), now() (UTC date-time),
 * substring(s, start[, length]) (characters), replace(s, from, to),
 * split(s, sep), join(array, sep), contains(haystack, needle) (strings:
 * substring; arrays: element equality), starts_with(s, p), ends_with(s, p),
 * round(x[, digits]), floor(x), ceil(x), abs(x), min(a, ...), max(a, ...),
 * has(object, key) (the member is present, even when null: PATCH semantics),
 * keys(object) (member names in order), url_encode(x) (percent-encodes all
 * but RFC 3986 unreserved characters).
 * Unknown functions and wrong argument counts are compile errors.
 *
 * Templates: text with ${expr} parts ("/customers/${path.id}"; "$$" is a
 * literal "$"); each part's value is inserted as string(x), null as "".
 */
#ifndef PT_EXPR_H
#define PT_EXPR_H

#include <stddef.h>

#include "core/arena.h"
#include "core/json.h"

typedef struct pt_expr_s pt_expr_t;

/* Compiles src[0..len) (at most 64 KiB, nesting at most 64) into arena a.
 * Returns NULL with a message in err ("at 12: expected ')' ...") on error.
 * roots, if not NULL, is a NULL-terminated list of allowed root names; an
 * identifier that is not one of them is a compile error. */
pt_expr_t *pt_expr_compile(pt_arena_t *a, const char *src, size_t len, const char *const *roots,
                           char *err, size_t errlen);

/* Compiles a template (see above) the same way. A template without ${...}
 * evaluates to its text. */
pt_expr_t *pt_expr_compile_template(pt_arena_t *a, const char *src, size_t len,
                                    const char *const *roots, char *err, size_t errlen);

/* A template for URLs: each ${...} value is percent-encoded (all but RFC
 * 3986 unreserved characters), so that a value cannot add path segments, a
 * query or change the host; the literal text is kept as written. */
pt_expr_t *pt_expr_compile_url_template(pt_arena_t *a, const char *src, size_t len,
                                        const char *const *roots, char *err, size_t errlen);

/* Evaluates e against ctx (a JSON object of roots) with results allocated
 * in arena a. Returns the value (never NULL on success: null is a value),
 * or NULL with a message in err (a type error, "out of memory"). The
 * evaluation is bounded: at most 100,000 operations and 1 MiB of strings
 * built, else an error. Thread-safe for a shared e. The value may share
 * memory with ctx and with e (constants): it is read-only, and lives as long
 * as the shortest-lived of a, ctx and e. */
pt_json_t *pt_expr_eval(const pt_expr_t *e, const pt_json_t *ctx, pt_arena_t *a, char *err,
                        size_t errlen);

/* The source text the expression was compiled from (for messages). */
const char *pt_expr_source(const pt_expr_t *e);

/* A constant expression (no identifiers, no now()): its value was computed
 * at compile time. NULL when not constant. */
const pt_json_t *pt_expr_constant(const pt_expr_t *e);

#endif
