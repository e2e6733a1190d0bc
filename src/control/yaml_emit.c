/*
 * yaml_emit.c - YAML written by hand, every scalar read back as the very
 * string it was (yaml_emit.h).
 */
#include "control/yaml_emit.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_alnum(int c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/* Valid UTF-8 without NUL (YAML carries nothing else). */
int pt_yemit_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned n, i;
        uint32_t cp;
        if (*p < 0x80) {
            p++;
            continue;
        }
        if ((*p & 0xe0) == 0xc0)
            n = 1, cp = *p & 0x1f;
        else if ((*p & 0xf0) == 0xe0)
            n = 2, cp = *p & 0x0f;
        else if ((*p & 0xf8) == 0xf0)
            n = 3, cp = *p & 0x07;
        else
            return 0;
        for (i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* Keeps the first failure. */
static void fail(pt_yemit_t *y, int code)
{
    if (y->failed == 0)
        y->failed = code;
}

static void append(pt_yemit_t *y, const char *s, size_t n)
{
    if (pt_buf_append(&y->out, s, n) != PT_OK)
        fail(y, PT_ENOMEM);
}

/* s as is. */
void pt_yemit_raw(pt_yemit_t *y, const char *s)
{
    append(y, s, strlen(s));
}

/* Formatted, at most 511 bytes (more is a PT_ELIMIT failure). */
void pt_yemit_printf(pt_yemit_t *y, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        fail(y, PT_ELIMIT);
        return;
    }
    append(y, tmp, (size_t)n);
}

/* n spaces, at most 48. */
void pt_yemit_indent(pt_yemit_t *y, int n)
{
    static const char sp[] = "                                                ";
    append(y, sp, (size_t)n < sizeof(sp) - 1 ? (size_t)n : sizeof(sp) - 1);
}

/* Can s be written as a plain scalar, read back as this very string (not a
 * number, boolean or null), in block and flow context alike? */
static int plain_ok(const char *s)
{
    static const char *const special[] = {"y",   "n",    "yes",   "no",   "on",
                                          "off", "true", "false", "null", NULL};
    size_t i;
    if (!(is_alpha((unsigned char)s[0]) || s[0] == '/'))
        return 0;
    for (i = 1; s[i] != '\0'; i++)
        if (!is_alnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '/' && s[i] != '-')
            return 0;
    for (i = 0; special[i] != NULL; i++)
        if (strcasecmp(s, special[i]) == 0)
            return 0;
    return 1;
}

/* Writes s as a YAML scalar: plain when safe, else double-quoted with
 * escapes for '"', '\\', control characters and the characters YAML takes
 * as line breaks or a byte order mark. */
void pt_yemit_str(pt_yemit_t *y, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!pt_yemit_utf8_ok(s)) {
        fail(y, PT_EINVAL);
        return;
    }
    if (plain_ok(s)) {
        pt_yemit_raw(y, s);
        return;
    }
    append(y, "\"", 1);
    for (; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            append(y, "\\", 1);
            append(y, (const char *)p, 1);
        } else if (*p == '\n') {
            pt_yemit_raw(y, "\\n");
        } else if (*p == '\t') {
            pt_yemit_raw(y, "\\t");
        } else if (*p < 0x20 || *p == 0x7f) {
            pt_yemit_printf(y, "\\x%02x", *p);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            pt_yemit_printf(y, "\\u%04x", p[1]); /* C1 controls, NEL */
            p++;
        } else if (*p == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            pt_yemit_printf(y, "\\u%04x", 0x2000 + (p[2] & 0x3f)); /* LS, PS */
            p += 2;
        } else if (*p == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
            pt_yemit_raw(y, "\\ufeff");
            p += 2;
        } else {
            append(y, (const char *)p, 1);
        }
    }
    append(y, "\"", 1);
}

/* "key: value\n" at indent. */
void pt_yemit_kv(pt_yemit_t *y, int indent, const char *key, const char *value)
{
    pt_yemit_indent(y, indent);
    pt_yemit_str(y, key);
    pt_yemit_raw(y, ": ");
    pt_yemit_str(y, value);
    pt_yemit_raw(y, "\n");
}

/* "key:\n" at indent. */
void pt_yemit_key(pt_yemit_t *y, int indent, const char *key)
{
    pt_yemit_indent(y, indent);
    pt_yemit_str(y, key);
    pt_yemit_raw(y, ":\n");
}

/* May text be a literal block scalar (|-) as is? */
static int block_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (*p == ' ' || *p == '\t' || *p == '\0' || !pt_yemit_utf8_ok(s))
        return 0;
    for (; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            return 0;
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            return 0;
        if (*p == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
            return 0;
        if (*p == 0xef && p[1] == 0xbb && p[2] == 0xbf)
            return 0;
        if ((*p == ' ' || *p == '\t') && (p[1] == '\n' || p[1] == '\0'))
            return 0; /* trailing blanks: kept, but invisible */
        if (*p == '\n' && (p[1] == '\n' || p[1] == '\0'))
            return 0;
    }
    return 1;
}

/* key: |- (a multi-line text), or a quoted scalar when the block cannot carry it. */
void pt_yemit_text(pt_yemit_t *y, int indent, const char *key, const char *text)
{
    const char *line, *nl;
    if (strchr(text, '\n') == NULL || !block_ok(text)) {
        pt_yemit_kv(y, indent, key, text);
        return;
    }
    pt_yemit_indent(y, indent);
    pt_yemit_str(y, key);
    pt_yemit_raw(y, ": |-\n");
    for (line = text; line != NULL; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        pt_yemit_indent(y, indent + 2);
        append(y, line, nl ? (size_t)(nl - line) : strlen(line));
        pt_yemit_raw(y, "\n");
    }
}
