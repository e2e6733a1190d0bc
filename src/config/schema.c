/*
 * schema.c - typed reads of YAML nodes with precise messages (see schema.h).
 */
#include "config/schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct unit_s {
    const char *name;
    uint64_t mult;
} unit_t;

static const unit_t size_units[] = {
    {"", 1},
    {"B", 1},
    {"KiB", 1024ull},
    {"MiB", 1024ull * 1024},
    {"GiB", 1024ull * 1024 * 1024},
    {"k", 1000ull},
    {"M", 1000ull * 1000},
    {"G", 1000ull * 1000 * 1000},
    {NULL, 0},
};

static const unit_t duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0},
};

static void key_append(pt__cfg_ctx_t *c, const char *s, size_t len, int escape)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        /* Keep room for "..." and the NUL. */
        if (c->klen + 8 >= sizeof(c->key) || (escape && i == 64)) {
            memcpy(c->key + c->klen, "...", 3);
            c->klen += 3;
            break;
        }
        if (!escape || (ch > 0x20 && ch < 0x7f && ch != '\\')) {
            c->key[c->klen++] = (char)ch;
        } else {
            c->key[c->klen++] = '\\';
            c->key[c->klen++] = 'x';
            c->key[c->klen++] = hex[ch >> 4];
            c->key[c->klen++] = hex[ch & 15];
        }
    }
    c->key[c->klen] = '\0';
}

size_t pt__cfg_push(pt__cfg_ctx_t *c, const char *name, size_t len)
{
    size_t mark = c->klen;
    if (c->klen > 0)
        key_append(c, ".", 1, 0);
    if (len == 0)
        key_append(c, "\"\"", 2, 0);
    else
        key_append(c, name, len, 1);
    return mark;
}

size_t pt__cfg_push_index(pt__cfg_ctx_t *c, size_t i)
{
    size_t mark = c->klen;
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "[%zu]", i);
    key_append(c, tmp, (size_t)n, 0);
    return mark;
}

void pt__cfg_pop(pt__cfg_ctx_t *c, size_t mark)
{
    c->klen = mark;
    c->key[mark] = '\0';
}

void pt__cfg_err(pt__cfg_ctx_t *c, unsigned line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->nerr++;
    pt_config_error(c->errs, c->file, line, c->klen ? c->key : NULL, "%s", msg);
}

const char *pt__cfg_quote(const pt_ynode_t *n, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;

    if (n == NULL || pt_yaml_is_null(n) || n->kind != PT_YNODE_SCALAR) {
        snprintf(out, outlen, "%s", pt_yaml_describe(n));
        return out;
    }
    if (n->quoted) {
        o = (size_t)snprintf(out, outlen, "the string ");
        if (o >= outlen)
            o = outlen - 1;
    }
    if (o + 1 < outlen)
        out[o++] = '"';
    for (i = 0; i < n->len && o + 10 < outlen; i++) {
        unsigned char ch = (unsigned char)n->value[i];
        if (i == 60) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (o + 1 < outlen)
        out[o++] = '"';
    out[o] = '\0';
    return out;
}

int pt__cfg_mapping(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *const *allowed)
{
    char got[300], list[512];
    size_t i, j, o;

    if (n == NULL || n->kind != PT_YNODE_MAPPING) {
        pt__cfg_err(c, n ? n->line : 0, "expected a mapping, got %s",
                    pt__cfg_quote(n, got, sizeof(got)));
        return -1;
    }
    for (i = 0; i < n->n; i++) {
        const pt_ynode_t *k = n->pairs[i].key;
        size_t mark;
        for (j = 0; allowed[j] != NULL; j++)
            if (strlen(allowed[j]) == k->len && memcmp(allowed[j], k->value, k->len) == 0)
                break;
        if (allowed[j] != NULL)
            continue;
        o = 0;
        list[0] = '\0';
        for (j = 0; allowed[j] != NULL && o < sizeof(list); j++)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", allowed[j]);
        mark = pt__cfg_push(c, k->value, k->len);
        pt__cfg_err(c, k->line, "unknown key (expected one of: %s)", list);
        pt__cfg_pop(c, mark);
    }
    return 0;
}

int pt__cfg_missing(pt__cfg_ctx_t *c, const pt_ynode_t *m, const char *name)
{
    size_t mark = pt__cfg_push(c, name, strlen(name));
    pt__cfg_err(c, m ? m->line : 0, "required key is missing");
    pt__cfg_pop(c, mark);
    return -1;
}

int pt__cfg_string(pt__cfg_ctx_t *c, const pt_ynode_t *n, char **out)
{
    char got[300];

    if (n == NULL || n->kind != PT_YNODE_SCALAR || pt_yaml_is_null(n)) {
        pt__cfg_err(c, n ? n->line : 0, "expected a string, got %s",
                    pt__cfg_quote(n, got, sizeof(got)));
        return -1;
    }
    if (memchr(n->value, '\0', n->len) != NULL) {
        pt__cfg_err(c, n->line, "must not contain NUL characters");
        return -1;
    }
    *out = pt_arena_strndup(c->arena, n->value, n->len);
    if (*out == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return -1;
    }
    return 0;
}

int pt__cfg_bool(pt__cfg_ctx_t *c, const pt_ynode_t *n, int *out)
{
    char got[300];

    if (n != NULL && n->kind == PT_YNODE_SCALAR && !n->quoted) {
        if (n->len == 4 && memcmp(n->value, "true", 4) == 0)
            return *out = 1, 0;
        if (n->len == 5 && memcmp(n->value, "false", 5) == 0)
            return *out = 0, 0;
    }
    pt__cfg_err(c, n ? n->line : 0, "expected true or false, got %s",
                pt__cfg_quote(n, got, sizeof(got)));
    return -1;
}

/* Parses "<digits><unit>" with a unit from the table; returns 0, -1 (syntax)
 * or -2 (overflow). */
static int parse_scaled(const char *s, size_t len, const unit_t *units, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0, j;

    while (i < len && s[i] >= '0' && s[i] <= '9') {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
        i++;
    }
    if (i == 0)
        return -1;
    for (j = 0; units[j].name != NULL; j++) {
        if (strlen(units[j].name) == len - i && memcmp(units[j].name, s + i, len - i) == 0) {
            if (units[j].mult != 0 && v > UINT64_MAX / units[j].mult)
                return -2;
            *out = v * units[j].mult;
            return 0;
        }
    }
    return -1;
}

/* Formats v with the largest unit of show[] that divides it exactly, else
 * as a plain number followed by `plain` ("1MiB", "90s", "1500ms"). */
static const char *units_str(uint64_t v, const unit_t *show, size_t n, const char *plain, char *out,
                             size_t outlen)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (v >= show[i].mult && v % show[i].mult == 0) {
            snprintf(out, outlen, "%llu%s", (unsigned long long)(v / show[i].mult), show[i].name);
            return out;
        }
    snprintf(out, outlen, "%llu%s", (unsigned long long)v, plain);
    return out;
}

const char *pt__cfg_size_str(uint64_t v, char *out, size_t outlen)
{
    static const unit_t show[] = {{"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
    return units_str(v, show, PT_ARRAY_SIZE(show), "", out, outlen);
}

static const char *duration_str(uint64_t v, char *out, size_t outlen)
{
    static const unit_t show[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}};
    return units_str(v, show, PT_ARRAY_SIZE(show), "ms", out, outlen);
}

static int read_scaled(pt__cfg_ctx_t *c, const pt_ynode_t *n, const unit_t *units, int is_size,
                       uint64_t min, uint64_t max, uint64_t *out)
{
    char got[300], lo[32], hi[32], val[32];
    uint64_t v = 0;
    int rc = -1;
    const char *(*fmt)(uint64_t, char *, size_t) = is_size ? pt__cfg_size_str : duration_str;

    if (n != NULL && n->kind == PT_YNODE_SCALAR && !pt_yaml_is_null(n))
        rc = parse_scaled(n->value, n->len, units, &v);
    if (rc == -1) {
        if (is_size)
            pt__cfg_err(c, n ? n->line : 0,
                        "expected a size like 8MiB (units B, KiB, MiB, GiB, k, M, G), got %s",
                        pt__cfg_quote(n, got, sizeof(got)));
        else
            pt__cfg_err(c, n ? n->line : 0,
                        "expected a duration like 10s (integer milliseconds or units ms, s, m, "
                        "h), got %s",
                        pt__cfg_quote(n, got, sizeof(got)));
        return -1;
    }
    if (rc == -2 || v < min || v > max) {
        pt__cfg_err(c, n->line, "must be between %s and %s, got %s", fmt(min, lo, sizeof(lo)),
                    fmt(max, hi, sizeof(hi)),
                    rc == -2 ? pt__cfg_quote(n, got, sizeof(got)) : fmt(v, val, sizeof(val)));
        return -1;
    }
    *out = v;
    return 0;
}

int pt__cfg_uint(pt__cfg_ctx_t *c, const pt_ynode_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    char got[300];
    uint64_t v = 0;
    int rc = -1;

    if (n != NULL && n->kind == PT_YNODE_SCALAR && !n->quoted)
        rc = parse_scaled(n->value, n->len, size_units, &v);
    /* Only bare digits: parse_scaled also accepts units, which an integer may not have. */
    if (rc != -1 && n->value[n->len - 1] >= '0' && n->value[n->len - 1] <= '9') {
        if (rc == -2 || v < min || v > max) {
            pt__cfg_err(c, n->line, "must be between %llu and %llu, got %.40s",
                        (unsigned long long)min, (unsigned long long)max, n->value);
            return -1;
        }
        *out = v;
        return 0;
    }
    if (n != NULL && n->kind == PT_YNODE_SCALAR && !n->quoted && n->len > 1 && n->value[0] == '-' &&
        parse_scaled(n->value + 1, n->len - 1, duration_units, &v) == 0 &&
        n->value[n->len - 1] >= '0' && n->value[n->len - 1] <= '9') {
        pt__cfg_err(c, n->line, "must be between %llu and %llu, got %.40s", (unsigned long long)min,
                    (unsigned long long)max, n->value);
        return -1;
    }
    pt__cfg_err(c, n ? n->line : 0, "expected an integer, got %s",
                pt__cfg_quote(n, got, sizeof(got)));
    return -1;
}

int pt__cfg_size(pt__cfg_ctx_t *c, const pt_ynode_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    return read_scaled(c, n, size_units, 1, min, max, out);
}

int pt__cfg_duration(pt__cfg_ctx_t *c, const pt_ynode_t *n, uint64_t min_ms, uint64_t max_ms,
                     uint64_t *out)
{
    return read_scaled(c, n, duration_units, 0, min_ms, max_ms, out);
}

char *pt__cfg_path(pt__cfg_ctx_t *c, unsigned line, const char *path)
{
    char *p;

    if (path[0] == '/' || c->dir == NULL || strcmp(c->dir, ".") == 0)
        p = pt_arena_strdup(c->arena, path);
    else
        p = pt_arena_printf(c->arena, "%s/%s", c->dir, path);
    if (p == NULL)
        pt__cfg_err(c, line, "out of memory");
    return p;
}

unsigned pt__cfg_key_line(const pt_ynode_t *m, const char *key)
{
    size_t i, len = strlen(key);
    for (i = 0; i < m->n; i++)
        if (m->pairs[i].key->len == len && memcmp(m->pairs[i].key->value, key, len) == 0)
            return m->pairs[i].key->line;
    return m->line;
}

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int pt__cfg_is_token(const char *s, size_t len)
{
    size_t i;
    if (len == 0)
        return 0;
    for (i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

int pt__cfg_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int pt__cfg_is_pchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL);
}
