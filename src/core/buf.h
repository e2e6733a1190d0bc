/*
 * buf.h - growable byte buffer on the heap.
 *
 * Used for connection output, log lines and generated documents. The buffer
 * owns its memory; pt_buf_free releases it. Appends fail with PT_ENOMEM (the
 * buffer is unchanged) or PT_ELIMIT when the buffer would exceed `limit`
 * (0 = no limit).
 */
#ifndef PT_BUF_H
#define PT_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/common.h"

typedef struct pt_buf_s {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
} pt_buf_t;

void pt_buf_init(pt_buf_t *b, size_t limit);
int pt_buf_reserve(pt_buf_t *b, size_t extra);
int pt_buf_append(pt_buf_t *b, const void *p, size_t n);
int pt_buf_append_str(pt_buf_t *b, const char *s);
int pt_buf_append_char(pt_buf_t *b, char c);
int pt_buf_printf(pt_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pt_buf_append_u64(pt_buf_t *b, uint64_t v);
/* Appends s as the inside of a JSON string (quotes not included): escapes
 * quotes, backslashes and control characters; invalid UTF-8 bytes become U+FFFD. */
int pt_buf_append_json_str(pt_buf_t *b, const char *s, size_t n);
/* Writes s escaped for the inside of a JSON string into out, which must
 * have room for 6 * n bytes; returns the bytes written. */
size_t pt_json_escape(char *out, const char *s, size_t n);
/* Appends s as XML character data or attribute value: escapes & < > " ',
 * drops the control characters XML 1.0 cannot carry; invalid UTF-8 bytes
 * become U+FFFD. */
int pt_buf_append_xml_str(pt_buf_t *b, const char *s, size_t n);
/* Removes the first n bytes. */
void pt_buf_consume(pt_buf_t *b, size_t n);
void pt_buf_reset(pt_buf_t *b);
void pt_buf_free(pt_buf_t *b);
/* Formats v in decimal into out (at least 21 bytes); returns the length. */
size_t pt_u64_to_str(uint64_t v, char *out);

#endif
