/*
 * yaml_emit.h - YAML written by hand for `portico generate`: block mappings
 * at a given indent, flow collections written raw by the caller, and
 * scalars that read back as the very string written (plain when that is
 * safe, else double-quoted and escaped; multi-line text as a literal block
 * when it can be one).
 *
 * Output goes to a growing buffer; the first failure is kept in `failed`
 * and everything after it is still attempted, so a caller checks once at
 * the end. Not thread-safe; the emitter owns its buffer (pt_buf_free it).
 */
#ifndef PT_CONTROL_YAML_EMIT_H
#define PT_CONTROL_YAML_EMIT_H

#include "core/buf.h"

typedef struct pt_yemit_s {
    pt_buf_t out; /* the document so far */
    int failed;   /* 0, PT_ENOMEM, PT_EINVAL (text that is not UTF-8: YAML cannot
                   * carry it) or PT_ELIMIT (a pt_yemit_printf over 511 bytes) */
} pt_yemit_t;

/* Is s valid UTF-8 (no overlong forms, no surrogates), without NUL? */
int pt_yemit_utf8_ok(const char *s);

/* s as is (the caller knows it is valid YAML there). */
void pt_yemit_raw(pt_yemit_t *y, const char *s);

/* Formatted text as is, at most 511 bytes. */
void pt_yemit_printf(pt_yemit_t *y, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* n spaces (at most 48). */
void pt_yemit_indent(pt_yemit_t *y, int n);

/* s as a scalar: plain when it reads back as this string (not a number,
 * boolean or null) in block and flow context alike, else double-quoted. */
void pt_yemit_str(pt_yemit_t *y, const char *s);

/* "key: value\n" at indent, both scalars. */
void pt_yemit_kv(pt_yemit_t *y, int indent, const char *key, const char *value);

/* "key:\n" at indent (a nested block follows). */
void pt_yemit_key(pt_yemit_t *y, int indent, const char *key);

/* "key: |-" and the lines of text indented by two more, or "key: value"
 * when text has one line or a literal block cannot carry it exactly. */
void pt_yemit_text(pt_yemit_t *y, int indent, const char *key, const char *text);

#endif
