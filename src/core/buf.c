/*
 * buf.c - growable byte buffer (see buf.h).
 */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pt_buf_init(pt_buf_t *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

int pt_buf_reserve(pt_buf_t *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > SIZE_MAX - b->len)
        return PT_ENOMEM;
    need = b->len + extra;
    if (b->limit != 0 && need > b->limit)
        return PT_ELIMIT;
    if (need <= b->cap)
        return PT_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->limit != 0 && cap > b->limit)
        cap = b->limit;
    p = realloc(b->data, cap);
    if (p == NULL)
        return PT_ENOMEM;
    b->data = p;
    b->cap = cap;
    return PT_OK;
}

int pt_buf_append(pt_buf_t *b, const void *p, size_t n)
{
    int rc = pt_buf_reserve(b, n);
    if (rc != PT_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return PT_OK;
}

int pt_buf_append_str(pt_buf_t *b, const char *s)
{
    return pt_buf_append(b, s, strlen(s));
}

int pt_buf_append_char(pt_buf_t *b, char c)
{
    return pt_buf_append(b, &c, 1);
}

int pt_buf_printf(pt_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PT_EINVAL;
    if ((rc = pt_buf_reserve(b, (size_t)n + 1)) != PT_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PT_OK;
}

size_t pt_u64_to_str(uint64_t v, char *out)
{
    char tmp[21];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

int pt_buf_append_u64(pt_buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t n = pt_u64_to_str(v, tmp);
    return pt_buf_append(b, tmp, n);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len, i;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

size_t pt_json_escape(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    char *o = out;
    size_t i = 0, k;

    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80 && (k = utf8_seq(p + i, n - i)) > 0) {
            memcpy(o, p + i, k);
            o += k;
            i += k;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            if (c < 0x20) {
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            } else { /* invalid UTF-8 byte: U+FFFD, replacing the backslash */
                o--;
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
            }
        }
        i++;
    }
    return (size_t)(o - out);
}

int pt_buf_append_json_str(pt_buf_t *b, const char *s, size_t n)
{
    int rc;
    if (n > (SIZE_MAX - 16) / 6)
        return PT_ENOMEM;
    if ((rc = pt_buf_reserve(b, n * 6)) != PT_OK)
        return rc;
    b->len += pt_json_escape(b->data + b->len, s, n);
    return PT_OK;
}

int pt_buf_append_xml_str(pt_buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char *o;
    size_t i = 0, k;
    int rc;
    if (n > (SIZE_MAX - 16) / 6)
        return PT_ENOMEM;
    if ((rc = pt_buf_reserve(b, n * 6)) != PT_OK)
        return rc;
    o = b->data + b->len;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            if ((k = utf8_seq(p + i, n - i)) > 0) {
                memcpy(o, p + i, k);
                o += k;
                i += k;
            } else { /* invalid UTF-8 byte: U+FFFD */
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i++;
            }
            continue;
        }
        switch (c) {
        case '&':
            memcpy(o, "&amp;", 5);
            o += 5;
            break;
        case '<':
            memcpy(o, "&lt;", 4);
            o += 4;
            break;
        case '>':
            memcpy(o, "&gt;", 4);
            o += 4;
            break;
        case '"':
            memcpy(o, "&quot;", 6);
            o += 6;
            break;
        case '\'':
            memcpy(o, "&apos;", 6);
            o += 6;
            break;
        default:
            /* XML 1.0 has no other C0 control than tab, LF and CR: dropped */
            if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
                *o++ = (char)c;
        }
        i++;
    }
    b->len = (size_t)(o - b->data);
    return PT_OK;
}

void pt_buf_consume(pt_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void pt_buf_reset(pt_buf_t *b)
{
    b->len = 0;
}

void pt_buf_free(pt_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
