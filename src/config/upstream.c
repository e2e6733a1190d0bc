/*
 * upstream.c - the upstream of a proxy API (`upstream:` of an API definition):
 * targets and their URLs, timeouts, keep-alive, retries, passive and active
 * health checks, TLS toward https targets, DNS re-resolution, header edits and
 * credentials.
 *
 * Values are copied into the configuration's arena. Header edits and
 * credentials may reference environment variables (`${env:NAME}`), resolved
 * at load: resolved values are secrets, zeroed when their arena is freed and
 * never shown in a message. Files named by `tls:` must be readable at load.
 * See docs/api-definitions.md for the schema.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config/upstream-i.h"

#define TARGETS_MAX     64
#define URL_MAX         2048
#define HOST_MAX        253
#define EDIT_MAX        64    /* entries of a request_headers/response_headers list */
#define ENV_NAME_MAX    128   /* characters of NAME in ${env:NAME} */
#define ENV_VALUE_MAX   65536 /* bytes of a value once its references are resolved */
#define ENV_NAMES_SHOWN 160   /* bytes of the variable names a message may list */
#define AUTH_BASIC_MAX  6138  /* bytes of "user:password": "Basic " + base64 <= 8192 */
#define CHECK_PATH_MAX  1024  /* characters of health.check.path (with its query) */
#define STATUSES_MAX    64    /* entries of health.check.expected_status */

static const char *const upstream_keys[] = {"targets",
                                            "connect_timeout",
                                            "read_timeout",
                                            "send_timeout",
                                            "total_timeout",
                                            "keepalive",
                                            "preserve_host",
                                            "retries",
                                            "health",
                                            "request_headers",
                                            "response_headers",
                                            "auth",
                                            "tls",
                                            "dns_ttl",
                                            NULL};
static const char *const header_edit_keys[] = {"set", "remove", NULL};
static const char *const auth_keys[] = {"mode", "username", "password", "forward_original", NULL};
static const char *const health_keys[] = {"max_fails", "fail_timeout", "check", NULL};
static const char *const check_keys[] = {"path",  "interval", "timeout", "expected_status",
                                         "fails", "passes",   NULL};
static const char *const tls_keys[] = {"verify",      "ca_file",    "server_name",
                                       "client_cert", "client_key", NULL};
static const char *const target_keys[] = {"url", "weight", NULL};
static const char *const keepalive_keys[] = {"max_idle", "idle_timeout", "max_requests", NULL};

/* ------------------------------------------------------------ targets */

/* Returns 1 when the len bytes at s are "." or "..", each dot possibly written "%2e"/"%2E"
 * (RFC 3986 6.2.2.2: percent-encoded unreserved characters are equivalent to the plain ones). */
static int is_dot_segment(const char *s, size_t len)
{
    size_t i = 0, dots = 0;

    while (i < len) {
        if (s[i] == '.') {
            i++;
        } else if (i + 2 < len && s[i] == '%' && s[i + 1] == '2' &&
                   (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            i += 3;
        } else {
            return 0;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

/* Returns NULL when the len bytes at p are a valid path prefix for an upstream ("" or
 * "/seg/seg", trailing '/' already removed), else why it is not. */
static const char *check_url_path(const char *p, size_t len)
{
    size_t i, start, seglen;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '/' || pt__cfg_is_pchar(ch))
            continue;
        if (ch == '%') {
            if (i + 2 >= len || !pt__cfg_is_hex((unsigned char)p[i + 1]) ||
                !pt__cfg_is_hex((unsigned char)p[i + 2]))
                return "'%' must be followed by two hex digits";
            i += 2;
            continue;
        }
        return "the path contains a character that is not allowed in a URI path (RFC 3986 "
               "pchar)";
    }
    for (i = 0; i < len; i = start) {
        start = i + 1;
        while (start < len && p[start] != '/')
            start++;
        seglen = start - i - 1;
        if (seglen == 0)
            return "the path must not contain an empty segment (\"//\")";
        if (is_dot_segment(p + i + 1, seglen))
            return "the path must not contain \".\" or \"..\" segments";
    }
    return NULL;
}

/* Checks a host that is not a bracketed IPv6 address: a numeric IPv4 address, or a DNS name
 * of letters, digits, '-' and '.' (labels of 1 to 63 characters, at most 253 in all). A name
 * whose last label is numeric would be read as an IPv4 address by resolvers, so it must be a
 * valid one. Returns 0, or -1 with why filled. */
static int check_host(const char *h, size_t len, char *why, size_t wlen)
{
    unsigned char bin[4];
    size_t i, label = 0, last;
    int numeric = 1;

    if (len > HOST_MAX) {
        snprintf(why, wlen, "the host name must not be longer than %d characters", HOST_MAX);
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch == '.') {
            if (label == 0) {
                snprintf(why, wlen,
                         "the host name has an empty label (\"..\" or a leading or "
                         "trailing '.')");
                return -1;
            }
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-')) {
            snprintf(why, wlen,
                     "the host must be a numeric IPv4 address, an IPv6 address in brackets or a "
                     "DNS name (letters, digits, '-' and '.')");
            return -1;
        }
        if (++label > 63) {
            snprintf(why, wlen, "a label of the host name is longer than 63 characters");
            return -1;
        }
    }
    if (label == 0) {
        snprintf(why, wlen,
                 "the host name has an empty label (\"..\" or a leading or trailing '.')");
        return -1;
    }
    last = len - label;
    if (label > 2 && h[last] == '0' && (h[last + 1] == 'x' || h[last + 1] == 'X')) {
        for (i = last + 2; i < len && pt__cfg_is_hex((unsigned char)h[i]); i++)
            ;
        numeric = i == len;
    } else {
        for (i = last; i < len && h[i] >= '0' && h[i] <= '9'; i++)
            ;
        numeric = i == len;
    }
    if (numeric && inet_pton(AF_INET, h, bin) != 1) {
        snprintf(why, wlen, "\"%.*s\" is not a valid IPv4 address (dotted decimal a.b.c.d)",
                 (int)PT_MIN(len, 64), h);
        return -1;
    }
    return 0;
}

typedef struct url_parts_s {
    int https;               /* the scheme is https */
    char host[HOST_MAX + 1]; /* without brackets */
    uint16_t port;           /* default 80 (http) or 443 (https) */
    const char *path;        /* into the URL; trailing '/' removed */
    size_t path_len;
} url_parts_t;

/* Splits an upstream URL "http://" or "https://" (either in any case), then host [":" port]
 * [path] (NUL-free, len bytes) into u. Returns 0, or -1 with why filled. */
static int split_url(const char *s, size_t len, url_parts_t *u, char *why, size_t wlen)
{
    const char *auth, *end, *hend, *port = NULL, *perr;
    unsigned char bin[16];
    size_t alen, hlen, i, slen;
    unsigned v = 0;

    if (len >= 8 && strncasecmp(s, "https://", 8) == 0) {
        u->https = 1;
        slen = 8;
    } else if (len >= 7 && strncasecmp(s, "http://", 7) == 0) {
        u->https = 0;
        slen = 7;
    } else {
        snprintf(why, wlen, "expected http://host[:port][/path] or https://host[:port][/path]");
        return -1;
    }
    if (memchr(s, '?', len) != NULL) {
        snprintf(why, wlen, "must not have a query ('?'); the client's query is forwarded");
        return -1;
    }
    if (memchr(s, '#', len) != NULL) {
        snprintf(why, wlen, "must not have a fragment ('#')");
        return -1;
    }
    auth = s + slen;
    end = memchr(auth, '/', len - slen);
    if (end == NULL)
        end = s + len;
    alen = (size_t)(end - auth);
    if (memchr(auth, '@', alen) != NULL) {
        snprintf(why, wlen,
                 "must not contain user information (\"user@\"); credentials in "
                 "upstream URLs are not supported");
        return -1;
    }
    if (alen == 0) {
        snprintf(why, wlen, "missing host");
        return -1;
    }
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL) {
            snprintf(why, wlen, "missing ']' after the IPv6 address");
            return -1;
        }
        hlen = (size_t)(close - auth - 1);
        if (hlen == 0 || hlen >= 64) {
            snprintf(why, wlen, "invalid IPv6 address in brackets");
            return -1;
        }
        memcpy(u->host, auth + 1, hlen);
        u->host[hlen] = '\0';
        if (inet_pton(AF_INET6, u->host, bin) != 1) {
            snprintf(why, wlen, "\"%.64s\" is not a valid IPv6 address", u->host);
            return -1;
        }
        hend = close + 1;
        if (hend < end && *hend != ':') {
            snprintf(why, wlen, "expected ':' and a port after the IPv6 address");
            return -1;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hend = colon != NULL ? colon : end;
        if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL) {
            snprintf(why, wlen, "an IPv6 address must be in brackets, e.g. http://[::1]:8080");
            return -1;
        }
        hlen = (size_t)(hend - auth);
        if (hlen == 0) {
            snprintf(why, wlen, "missing host");
            return -1;
        }
        if (hlen > HOST_MAX) {
            snprintf(why, wlen, "the host name must not be longer than %d characters", HOST_MAX);
            return -1;
        }
        memcpy(u->host, auth, hlen);
        u->host[hlen] = '\0';
        if (check_host(u->host, hlen, why, wlen) != 0)
            return -1;
    }
    u->port = u->https ? 443 : 80;
    if (hend < end) {
        port = hend + 1;
        for (i = 0; port + i < end && i < 6 && port[i] >= '0' && port[i] <= '9'; i++)
            v = v * 10 + (unsigned)(port[i] - '0');
        if (i == 0 || port + i != end || v < 1 || v > 65535) {
            snprintf(why, wlen, "the port must be an integer between 1 and 65535");
            return -1;
        }
        u->port = (uint16_t)v;
    }
    u->path = end;
    u->path_len = (size_t)(s + len - end);
    if (u->path_len > 0 && u->path[u->path_len - 1] == '/')
        u->path_len--;
    if ((perr = check_url_path(u->path, u->path_len)) != NULL) {
        snprintf(why, wlen, "%s", perr);
        return -1;
    }
    return 0;
}

static void parse_target(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_upstream_target_t *t)
{
    const pt_ynode_t *v;
    pt_ynode_t shown;
    url_parts_t u;
    char why[256], tmp[300];
    uint64_t w;
    size_t mark;

    t->line = n->line;
    t->weight = 1;
    if (pt__cfg_mapping(c, n, target_keys) != 0)
        return;
    mark = pt__cfg_push(c, "url", 3);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "url"))) {
        pt__cfg_err(c, n->line, "required key is missing");
    } else if (pt__cfg_string(c, v, &t->url) == 0) {
        /* Quoted or not, a URL is a string: show it without "the string". */
        shown = *v;
        shown.quoted = 0;
        if (v->len > URL_MAX)
            pt__cfg_err(c, v->line, "must not be longer than %d characters", URL_MAX);
        else if (split_url(t->url, v->len, &u, why, sizeof(why)) != 0)
            pt__cfg_err(c, v->line, "invalid upstream URL %s: %s",
                        pt__cfg_quote(&shown, tmp, sizeof(tmp)), why);
        else if ((t->host = pt_arena_strdup(c->arena, u.host)) == NULL ||
                 (t->path_prefix = pt_arena_strndup(c->arena, u.path, u.path_len)) == NULL)
            pt__cfg_err(c, v->line, "out of memory");
        else {
            t->https = u.https;
            t->port = u.port;
        }
    }
    pt__cfg_pop(c, mark);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "weight"))) {
        mark = pt__cfg_push(c, "weight", 6);
        if (pt__cfg_uint(c, v, 1, 1000, &w) == 0)
            t->weight = (unsigned)w;
        pt__cfg_pop(c, mark);
    }
}

/* Reads optional key `key` of mapping m: an integer (is_duration 0) or a duration in ms, in
 * [min, max], into *out; *out keeps its default when the key is absent or invalid. */
static void uint32_key(pt__cfg_ctx_t *c, const pt_ynode_t *m, const char *key, int is_duration,
                       uint64_t min, uint64_t max, uint32_t *out)
{
    const pt_ynode_t *v = pt_yaml_get(m, key);
    uint64_t x;
    size_t mark;
    int rc;

    if (pt_yaml_is_null(v))
        return;
    mark = pt__cfg_push(c, key, strlen(key));
    rc = is_duration ? pt__cfg_duration(c, v, min, max, &x) : pt__cfg_uint(c, v, min, max, &x);
    if (rc == 0)
        *out = (uint32_t)x;
    pt__cfg_pop(c, mark);
}

/* ------------------------------------------------------------ TLS and active health checks */

/* Formats a duration in ms for messages, with the largest unit that divides it ("2s", "90m",
 * "1500ms"). Returns out. */
static const char *ms_str(uint32_t ms, char *out, size_t outlen)
{
    if (ms > 0 && ms % 3600000 == 0)
        snprintf(out, outlen, "%uh", (unsigned)(ms / 3600000));
    else if (ms > 0 && ms % 60000 == 0)
        snprintf(out, outlen, "%um", (unsigned)(ms / 60000));
    else if (ms > 0 && ms % 1000 == 0)
        snprintf(out, outlen, "%us", (unsigned)(ms / 1000));
    else
        snprintf(out, outlen, "%ums", (unsigned)ms);
    return out;
}

/* Resolves a file path written in an API definition the way the node configuration resolves
 * its own (pt__cfg_path): absolute paths are kept, relative ones are taken from the directory
 * of the file that names them - c->dir when the loader set it, else the directory part of
 * c->file (a file name without a directory leaves the path as written, relative to the working
 * directory). Returns a string in c->arena, or NULL (out of memory, reported). */
char *pt__cfg_def_path(pt__cfg_ctx_t *c, unsigned line, const char *path)
{
    const char *slash;
    char *p;

    if (path[0] == '/' || c->dir != NULL || c->file == NULL ||
        (slash = strrchr(c->file, '/')) == NULL)
        return pt__cfg_path(c, line, path);
    if ((p = pt_arena_printf(c->arena, "%.*s/%s", (int)(slash - c->file), c->file, path)) == NULL)
        pt__cfg_err(c, line, "out of memory");
    return p;
}

/* Reads optional key `key` of tls mapping n: a file that must be a readable regular file now
 * (`what` names it in messages, e.g. "CA file"). Returns the resolved path (in c->arena), or
 * NULL when the key is absent or invalid (reported). */
static char *tls_file_key(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *key, const char *what)
{
    const pt_ynode_t *v = pt_yaml_get(n, key);
    const char *why = NULL;
    char *s, *path = NULL;
    struct stat st;
    size_t mark;

    if (pt_yaml_is_null(v))
        return NULL;
    mark = pt__cfg_push(c, key, strlen(key));
    if (pt__cfg_string(c, v, &s) != 0)
        goto done;
    if (s[0] == '\0') {
        pt__cfg_err(c, v->line, "must not be empty");
        goto done;
    }
    if ((path = pt__cfg_def_path(c, v->line, s)) == NULL)
        goto done;
    /* stat first: access() alone accepts a directory, and opening a FIFO could block. */
    if (stat(path, &st) != 0)
        why = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        why = strerror(EISDIR);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (access(path, R_OK) != 0)
        why = strerror(errno);
    if (why != NULL) {
        pt__cfg_err(c, v->line, "cannot read %s \"%s\": %s", what, path, why);
        path = NULL;
    }
done:
    pt__cfg_pop(c, mark);
    return path;
}

/* Reads optional `server_name` of tls mapping n: a DNS name, as for the host of a URL, but not
 * an IP address. */
static void tls_server_name(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_upstream_tls_t *tls)
{
    const pt_ynode_t *v = pt_yaml_get(n, "server_name");
    unsigned char bin[16];
    char why[256], tmp[300], *s;
    pt_ynode_t shown;
    size_t mark;
    int bad = 1;

    if (pt_yaml_is_null(v))
        return;
    mark = pt__cfg_push(c, "server_name", 11);
    if (pt__cfg_string(c, v, &s) != 0)
        goto done;
    if (v->len == 0) {
        pt__cfg_err(c, v->line, "must not be empty");
        goto done;
    }
    if (inet_pton(AF_INET6, s, bin) == 1 || (s[0] == '[' && s[v->len - 1] == ']'))
        snprintf(why, sizeof(why), "must be a DNS name, not an IP address");
    else if (check_host(s, v->len, why, sizeof(why)) != 0)
        ; /* why is filled */
    else if (inet_pton(AF_INET, s, bin) == 1)
        snprintf(why, sizeof(why), "must be a DNS name, not an IP address");
    else
        bad = 0;
    if (bad) {
        /* Quoted or not, a name is a string: show it without "the string". */
        shown = *v;
        shown.quoted = 0;
        pt__cfg_err(c, v->line, "invalid server name %s: %s",
                    pt__cfg_quote(&shown, tmp, sizeof(tmp)), why);
        goto done;
    }
    tls->server_name = s;
done:
    pt__cfg_pop(c, mark);
}

/* Reads `tls:` mapping n into tls (whose verify is already 1). */
static void parse_tls(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_upstream_tls_t *tls)
{
    const pt_ynode_t *v;
    int verify_ok = 1, has_cert, has_key;
    const char *missing;
    size_t mark;

    tls->line = n->line;
    if (pt__cfg_mapping(c, n, tls_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "verify"))) {
        mark = pt__cfg_push(c, "verify", 6);
        verify_ok = pt__cfg_bool(c, v, &tls->verify) == 0;
        pt__cfg_pop(c, mark);
    }
    if (verify_ok && !tls->verify && !pt_yaml_is_null(v = pt_yaml_get(n, "ca_file"))) {
        /* Said instead of checking the file: a bundle nobody reads is the mistake. */
        mark = pt__cfg_push(c, "ca_file", 7);
        pt__cfg_err(c, v->line, "ca_file is useless with verify: false");
        pt__cfg_pop(c, mark);
    } else {
        tls->ca_file = tls_file_key(c, n, "ca_file", "CA file");
    }
    tls_server_name(c, n, tls);
    tls->client_cert = tls_file_key(c, n, "client_cert", "client certificate");
    tls->client_key = tls_file_key(c, n, "client_key", "client key");
    has_cert = !pt_yaml_is_null(pt_yaml_get(n, "client_cert"));
    has_key = !pt_yaml_is_null(pt_yaml_get(n, "client_key"));
    if (has_cert != has_key) {
        missing = has_cert ? "client_key" : "client_cert";
        mark = pt__cfg_push(c, missing, strlen(missing));
        pt__cfg_err(c, n->line, "client_cert and client_key go together");
        pt__cfg_pop(c, mark);
    }
}

/* Returns NULL when the len bytes at p are a valid health check request target, else why
 * not: a path as for an upstream URL (one trailing '/' allowed), then optionally '?' and a
 * query of RFC 3986 pchars, '/', '?' and %XX escapes. */
static const char *check_path_why(const char *p, size_t len)
{
    const char *q = memchr(p, '?', len), *why;
    size_t plen = q != NULL ? (size_t)(q - p) : len, i;

    if (len == 0 || p[0] != '/')
        return "must start with '/'";
    if (len > CHECK_PATH_MAX)
        return "must not be longer than 1024 characters";
    if ((why = check_url_path(p, plen - (p[plen - 1] == '/'))) != NULL)
        return why;
    for (i = plen + 1; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '/' || ch == '?' || pt__cfg_is_pchar(ch))
            continue;
        if (ch == '%') {
            if (i + 2 >= len || !pt__cfg_is_hex((unsigned char)p[i + 1]) ||
                !pt__cfg_is_hex((unsigned char)p[i + 2]))
                return "'%' must be followed by two hex digits";
            i += 2;
            continue;
        }
        return "the query contains a character that is not allowed in a URI query (RFC 3986)";
    }
    return NULL;
}

/* Reads one expected status of a health check, v: an integer 100..599 or a class "1xx" to
 * "5xx" (either case), into *r. Returns 0, or -1 (reported). */
static int status_item(pt__cfg_ctx_t *c, const pt_ynode_t *v, pt_status_range_t *r)
{
    char tmp[300];
    uint64_t x;
    size_t i;

    if (v->kind == PT_YNODE_SCALAR && v->len == 3 && (v->value[1] | 0x20) == 'x' &&
        (v->value[2] | 0x20) == 'x') {
        if (v->value[0] >= '1' && v->value[0] <= '5') {
            r->lo = (uint16_t)((v->value[0] - '0') * 100);
            r->hi = (uint16_t)(r->lo + 99);
            return 0;
        }
    } else if (v->kind == PT_YNODE_SCALAR && !v->quoted && v->len > 0) {
        for (i = 0; i < v->len && v->value[i] >= '0' && v->value[i] <= '9'; i++)
            ;
        if (i == v->len) {
            if (pt__cfg_uint(c, v, 100, 599, &x) != 0)
                return -1;
            r->lo = r->hi = (uint16_t)x;
            return 0;
        }
    }
    pt__cfg_err(c, v->line, "expected a status code (100 to 599) or a class (1xx to 5xx), got %s",
                pt__cfg_quote(v, tmp, sizeof(tmp)));
    return -1;
}

/* Reads `expected_status:` v (one status or class, or a non-empty list of them) into
 * hc->expected; hc keeps its default when v is invalid. */
static void parse_expected(pt__cfg_ctx_t *c, const pt_ynode_t *v, pt_health_check_t *hc)
{
    pt_status_range_t *r;
    size_t i, n, ok = 0, mark;

    if (v->kind != PT_YNODE_SEQUENCE) {
        pt_status_range_t one;
        if (status_item(c, v, &one) != 0)
            return;
        if ((r = pt_arena_calloc(c->arena, sizeof(*r))) == NULL) {
            pt__cfg_err(c, v->line, "out of memory");
            return;
        }
        *r = one;
        hc->expected = r;
        hc->nexpected = 1;
        return;
    }
    n = v->n;
    if (n == 0) {
        pt__cfg_err(c, v->line,
                    "expected a status code, a class or a list of them, got an empty list");
        return;
    }
    if (n > STATUSES_MAX) {
        pt__cfg_err(c, v->line, "at most %d statuses, got %zu", STATUSES_MAX, n);
        return;
    }
    if ((r = pt_arena_calloc(c->arena, n * sizeof(*r))) == NULL) {
        pt__cfg_err(c, v->line, "out of memory");
        return;
    }
    for (i = 0; i < n; i++) {
        mark = pt__cfg_push_index(c, i);
        ok += status_item(c, v->items[i], &r[ok]) == 0;
        pt__cfg_pop(c, mark);
    }
    if (ok == n) {
        hc->expected = r;
        hc->nexpected = n;
    }
}

/* Reads `health.check:` mapping n into hc (whose fields are at their defaults). */
static void parse_check(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_health_check_t *hc)
{
    const pt_ynode_t *v;
    pt_ynode_t shown;
    char tmp[300], a[32], b[32], *s;
    const char *why;
    unsigned nerr;
    size_t mark;

    hc->line = n->line;
    if (pt__cfg_mapping(c, n, check_keys) != 0)
        return;
    mark = pt__cfg_push(c, "path", 4);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "path"))) {
        pt__cfg_err(c, n->line, "required key is missing (the path the check requests)");
    } else if (pt__cfg_string(c, v, &s) == 0) {
        /* Quoted or not, a path is a string: show it without "the string". */
        shown = *v;
        shown.quoted = 0;
        if (v->len == 0)
            pt__cfg_err(c, v->line, "must not be empty");
        else if ((why = check_path_why(s, v->len)) != NULL)
            pt__cfg_err(c, v->line, "invalid health check path %s: %s",
                        pt__cfg_quote(&shown, tmp, sizeof(tmp)), why);
        else
            hc->path = s;
    }
    pt__cfg_pop(c, mark);

    nerr = c->nerr;
    uint32_key(c, n, "interval", 1, 1000, 3600000, &hc->interval_ms);
    uint32_key(c, n, "timeout", 1, 1, 60000, &hc->timeout_ms);
    if (c->nerr == nerr && hc->timeout_ms >= hc->interval_ms) {
        v = pt_yaml_get(n, "timeout");
        mark = pt__cfg_push(c, "timeout", 7);
        pt__cfg_err(c, pt_yaml_is_null(v) ? n->line : v->line,
                    "must be shorter than interval (%s), got %s%s",
                    ms_str(hc->interval_ms, a, sizeof(a)), ms_str(hc->timeout_ms, b, sizeof(b)),
                    pt_yaml_is_null(v) ? " (the default)" : "");
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "expected_status"))) {
        mark = pt__cfg_push(c, "expected_status", 15);
        parse_expected(c, v, hc);
        pt__cfg_pop(c, mark);
    }
    uint32_key(c, n, "fails", 0, 1, 100, &hc->fails);
    uint32_key(c, n, "passes", 0, 1, 100, &hc->passes);
}

/* ------------------------------------------------------------ header edits and auth */

/* Headers the proxy computes for the request it sends upstream (hop-by-hop, framing, tracing
 * and forwarding headers): request_headers may neither set nor remove them. */
static const char *const proxy_request_headers[] = {"host",
                                                    "content-length",
                                                    "transfer-encoding",
                                                    "connection",
                                                    "keep-alive",
                                                    "te",
                                                    "trailer",
                                                    "upgrade",
                                                    "proxy-connection",
                                                    "x-request-id",
                                                    "via",
                                                    "x-forwarded-for",
                                                    "x-forwarded-proto",
                                                    "x-forwarded-host",
                                                    "x-forwarded-port",
                                                    "forwarded",
                                                    NULL};
/* Headers the server writes on every response: response_headers may not touch them. */
static const char *const proxy_response_headers[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "date",
    "server",         "x-request-id",      NULL};
static const char *const auth_mode_names[] = {"passthrough", "none", "basic"};

/* Returns 1 when the a_len bytes at a and the b_len bytes at b are equal ignoring ASCII case. */
static int name_ieq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && strncasecmp(a, b, a_len) == 0;
}

/* A value read through env_string. */
typedef struct env_value_s {
    char *s; /* resolved, NUL-terminated (no NUL inside); a secret when nrefs > 0 */
    size_t len;
    unsigned nrefs;              /* ${env:...} references resolved */
    char names[ENV_NAMES_SHOWN]; /* "${env:A}, ${env:B}": what messages show instead of s */
} env_value_t;

/* Returns the length of PATH when the len - i bytes at s + i start with "${file:PATH}" (PATH
 * absolute, without '}' or control characters), else 0. */
static size_t file_ref_path(const char *s, size_t len, size_t i)
{
    size_t j;
    if (len - i < 9 || memcmp(s + i, "${file:/", 8) != 0)
        return 0;
    for (j = i + 7; j < len && s[j] != '}'; j++)
        if ((unsigned char)s[j] < 0x20)
            return 0;
    return j < len ? j - i - 7 : 0;
}

/* Reads a secret file whole (at most ENV_VALUE_MAX bytes; one trailing newline dropped) into
 * a malloc'd buffer, zeroed and freed by the caller. NULL with errno-style why. */
static char *read_secret_file(const char *path, size_t *out_len, const char **why)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    if (f == NULL) {
        *why = strerror(errno);
        return NULL;
    }
    buf = malloc(ENV_VALUE_MAX + 2);
    if (buf == NULL) {
        fclose(f);
        *why = "out of memory";
        return NULL;
    }
    n = fread(buf, 1, ENV_VALUE_MAX + 1, f);
    fclose(f);
    if (n > ENV_VALUE_MAX) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        *why = "larger than 64 KiB";
        return NULL;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (memchr(buf, '\0', n) != NULL) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        *why = "contains a NUL byte";
        return NULL;
    }
    *out_len = n;
    return buf;
}

/* Returns the length of NAME when the len - i bytes at s + i start with "${env:NAME}" (NAME =
 * [A-Za-z_][A-Za-z0-9_]*), else 0. */
static size_t env_ref_name(const char *s, size_t len, size_t i)
{
    size_t j;

    if (len - i < 8 || memcmp(s + i, "${env:", 6) != 0)
        return 0;
    for (j = i + 6; j < len; j++) {
        char ch = s[j];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
              (j > i + 6 && ch >= '0' && ch <= '9')))
            break;
    }
    return j > i + 6 && j < len && s[j] == '}' ? j - i - 6 : 0;
}

/* Zeroes a NUL-terminated secret: an arena cleanup, so that resolved values do not linger in
 * freed memory. */
static void cleanse_cb(void *p)
{
    OPENSSL_cleanse(p, strlen(p));
}

/* Appends "${env:name}" to the list of names shown in messages, or ", ..." once full. */
static void env_names_add(env_value_t *ev, const char *kind, const char *name)
{
    size_t used = strlen(ev->names), need = strlen(name) + 5 + strlen(kind) + (used ? 2 : 0);

    if (used >= 5 && strcmp(ev->names + used - 5, ", ...") == 0)
        return;
    if (used + need < sizeof(ev->names) - 5)
        snprintf(ev->names + used, sizeof(ev->names) - used, "%s${%s:%s}", used ? ", " : "", kind,
                 name);
    else
        snprintf(ev->names + used, sizeof(ev->names) - used, ", ...");
}

/* Reads scalar n as a string and resolves its references: "${env:NAME}" is replaced by the
 * value of environment variable NAME (getenv, at load time; it must be set, possibly to ""),
 * "$$" by '$'; any other '$' is an error. Resolved text is not scanned again. On success ev->s
 * is in arena a and, when ev->nrefs > 0, a cleanup of a zeroes it. Returns 0, or -1 with every
 * problem reported (not a string, a bad reference, an unset variable, too long, out of memory).
 * Messages name the variables, never their values. */
static int env_string(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_arena_t *a, env_value_t *ev)
{
    const char *s, *val;
    char got[300], name[ENV_NAME_MAX + 1];
    size_t len, i, o, nl;
    int pass, bad = 0;

    memset(ev, 0, sizeof(*ev));
    if (n == NULL || n->kind != PT_YNODE_SCALAR || pt_yaml_is_null(n)) {
        pt__cfg_err(c, n ? n->line : 0, "expected a string, got %s",
                    pt__cfg_quote(n, got, sizeof(got)));
        return -1;
    }
    s = n->value;
    len = n->len;
    if (memchr(s, '\0', len) != NULL) {
        pt__cfg_err(c, n->line, "must not contain NUL characters");
        return -1;
    }
    /* Pass 0 checks and measures; pass 1 copies straight into the arena, so that a secret is
     * never left behind in a freed temporary buffer. */
    for (pass = 0; pass < 2; pass++) {
        for (i = o = 0; i < len; i++) {
            if (s[i] != '$' || (i + 1 < len && s[i + 1] == '$')) {
                if (pass)
                    ev->s[o] = s[i];
                o++;
                i += s[i] == '$';
                continue;
            }
            if ((nl = file_ref_path(s, len, i)) > 0) {
                /* ${file:/path}: the file's content (a mounted secret) */
                char path[1024];
                const char *why = NULL;
                char *fv;
                size_t fl = 0;
                if (nl >= sizeof(path)) {
                    pt__cfg_err(c, n->line, "secret file path longer than %zu bytes",
                                sizeof(path) - 1);
                    return -1;
                }
                memcpy(path, s + i + 7, nl);
                path[nl] = '\0';
                i += 7 + nl; /* on the '}' */
                if ((fv = read_secret_file(path, &fl, &why)) == NULL) {
                    if (pass == 0)
                        pt__cfg_err(c, n->line, "cannot read secret file %s: %s", path, why);
                    bad = 1;
                    continue;
                }
                if (pass == 0) {
                    ev->nrefs++;
                    env_names_add(ev, "file", path);
                    if (o + fl > ENV_VALUE_MAX) {
                        OPENSSL_cleanse(fv, fl);
                        free(fv);
                        pt__cfg_err(c, n->line, "longer than %d bytes once %s is resolved",
                                    ENV_VALUE_MAX, ev->names);
                        return -1;
                    }
                } else if (o + fl > ev->len) {
                    bad = 1; /* the file changed between the passes */
                } else {
                    memcpy(ev->s + o, fv, fl);
                }
                OPENSSL_cleanse(fv, fl);
                free(fv);
                if (bad)
                    break;
                o += fl;
                continue;
            }
            if ((nl = env_ref_name(s, len, i)) == 0) {
                pt__cfg_err(c, n->line,
                            "invalid '$' at byte %zu: expected ${env:NAME} (NAME: letters, digits "
                            "and '_', not starting with a digit), ${file:/absolute/path}, or $$ "
                            "for a literal '$'",
                            i + 1);
                bad = 1;
                continue;
            }
            i += 6 + nl; /* on the '}' */
            if (nl > ENV_NAME_MAX) {
                pt__cfg_err(c, n->line, "environment variable name longer than %d characters",
                            ENV_NAME_MAX);
                bad = 1;
                continue;
            }
            memcpy(name, s + i - nl, nl);
            name[nl] = '\0';
            if ((val = getenv(name)) == NULL) {
                if (pass == 0)
                    pt__cfg_err(c, n->line, "environment variable %s is not set", name);
                bad = 1;
                continue;
            }
            nl = strlen(val);
            if (pass == 0) {
                ev->nrefs++;
                env_names_add(ev, "env", name);
                if (o + nl > ENV_VALUE_MAX) {
                    pt__cfg_err(c, n->line, "longer than %d bytes once %s is resolved",
                                ENV_VALUE_MAX, ev->names);
                    return -1;
                }
            } else if (o + nl > ev->len) {
                bad = 1; /* the environment changed between the passes */
                break;
            } else {
                memcpy(ev->s + o, val, nl);
            }
            o += nl;
        }
        if (bad || (pass == 1 && o != ev->len)) {
            if (pass == 1)
                pt__cfg_err(c, n->line,
                            "the environment or a secret file changed while %s was read",
                            ev->names);
            return -1;
        }
        if (pass == 0) {
            ev->len = o;
            if ((ev->s = pt_arena_calloc(a, o + 1)) == NULL ||
                (ev->nrefs > 0 && pt_arena_cleanup_add(a, cleanse_cb, ev->s) != 0)) {
                pt__cfg_err(c, n->line, "out of memory");
                return -1;
            }
        }
    }
    ev->s[ev->len] = '\0';
    return 0;
}

int pt__cfg_secret(pt__cfg_ctx_t *c, const pt_ynode_t *n, char **out, char *shown, size_t shown_len)
{
    env_value_t ev;
    if (env_string(c, n, c->arena, &ev) != 0)
        return -1;
    *out = ev.s;
    if (shown != NULL)
        snprintf(shown, shown_len, "%s", ev.nrefs > 0 ? ev.names : "");
    return 0;
}

/* Returns 1 when the len bytes at v contain a control character other than HTAB. */
static int has_ctl(const char *v, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
            return 1;
    return 0;
}

/* Returns NULL when the len bytes at v may be (part of) a header value, else why not: no
 * control characters but HTAB, no leading or trailing whitespace. */
static const char *value_chars_why(const char *v, size_t len)
{
    if (has_ctl(v, len))
        return "must not contain control characters (CR, LF, NUL, ...)";
    if (len > 0 && (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        return "must not start or end with whitespace";
    return NULL;
}

/* Reports why a value read through env_string is invalid, without showing it: "invalid
 * <what>: <why>", or "invalid <what> once ${env:X} is resolved: <why>". */
static void env_value_err(pt__cfg_ctx_t *c, unsigned line, const env_value_t *ev, const char *what,
                          const char *why)
{
    if (ev->nrefs > 0)
        pt__cfg_err(c, line, "invalid %s once %s is resolved: %s", what, ev->names, why);
    else
        pt__cfg_err(c, line, "invalid %s: %s", what, why);
}

/* Checks a header name of request_headers (is_request) or response_headers: a token, not
 * managed by the proxy, and compatible with upstream.auth. Reports and returns -1 if not. */
static int check_edit_name(pt__cfg_ctx_t *c, unsigned line, const char *s, size_t len,
                           int is_request, const pt_upstream_t *up, int mode_known)
{
    const char *const *managed = is_request ? proxy_request_headers : proxy_response_headers;
    size_t i;

    if (!pt__cfg_is_token(s, len) || len > PT__CFG_HEADER_NAME_MAX) {
        pt__cfg_err(c, line,
                    "invalid header name (expected an HTTP token of at most %d characters: "
                    "letters, digits and !#$%%&'*+-.^_`|~)",
                    PT__CFG_HEADER_NAME_MAX);
        return -1;
    }
    for (i = 0; managed[i] != NULL; i++)
        if (pt_str_ieq(s, len, managed[i])) {
            pt__cfg_err(
                c, line, "%.*s is managed by the proxy and cannot be set or removed%s", (int)len, s,
                pt_str_ieq(s, len, "host") ? " (preserve_host: true forwards the client's Host)"
                                           : "");
            return -1;
        }
    if (!is_request)
        return 0;
    if (mode_known && up->auth_mode != PT_UPSTREAM_AUTH_PASSTHROUGH &&
        pt_str_ieq(s, len, "authorization")) {
        pt__cfg_err(c, line,
                    "Authorization cannot be configured as a header with auth mode %s: use "
                    "upstream.auth",
                    auth_mode_names[up->auth_mode]);
        return -1;
    }
    if (up->auth_forward_original && pt_str_ieq(s, len, "x-forwarded-authorization")) {
        pt__cfg_err(c, line,
                    "X-Forwarded-Authorization is set by upstream.auth.forward_original and "
                    "cannot be configured as a header");
        return -1;
    }
    return 0;
}

static void parse_edit_set(pt__cfg_ctx_t *c, const pt_ynode_t *sn, int is_request,
                           const pt_upstream_t *up, int mode_known, pt_header_edit_t *ed)
{
    size_t i, j, mark;
    const char *why;
    char tmp[300];
    env_value_t ev;

    if (sn->kind != PT_YNODE_MAPPING) {
        pt__cfg_err(c, sn->line, "expected a mapping of header names to values, got %s",
                    pt__cfg_quote(sn, tmp, sizeof(tmp)));
        return;
    }
    if (sn->n > EDIT_MAX) {
        pt__cfg_err(c, sn->line, "at most %d headers, got %zu", EDIT_MAX, sn->n);
        return;
    }
    if (sn->n > 0 && (ed->set = pt_arena_calloc(c->arena, sn->n * sizeof(*ed->set))) == NULL) {
        pt__cfg_err(c, sn->line, "out of memory");
        return;
    }
    for (i = 0; i < sn->n; i++) {
        const pt_ynode_t *k = sn->pairs[i].key, *v = sn->pairs[i].value;

        mark = pt__cfg_push(c, k->value, k->len);
        if (check_edit_name(c, k->line, k->value, k->len, is_request, up, mode_known) != 0)
            goto next;
        for (j = 0; j < i; j++)
            if (name_ieq(k->value, k->len, sn->pairs[j].key->value, sn->pairs[j].key->len))
                break;
        if (j < i) {
            pt__cfg_err(c, k->line, "duplicate header (names are case-insensitive; line %u)",
                        sn->pairs[j].key->line);
            goto next;
        }
        /* The value as written is checked first, so that a mistake in it is not blamed on a
         * variable; what a variable brings in is checked once resolved. */
        if (v->kind == PT_YNODE_SCALAR && (why = value_chars_why(v->value, v->len)) != NULL) {
            pt__cfg_err(c, v->line, "invalid header value: %s", why);
            goto next;
        }
        if (env_string(c, v, c->arena, &ev) != 0)
            goto next;
        if ((why = value_chars_why(ev.s, ev.len)) != NULL ||
            (ev.len > PT__CFG_HEADER_VALUE_MAX &&
             (why = "must not be longer than 8192 bytes") != NULL)) {
            env_value_err(c, v->line, &ev, "header value", why);
            goto next;
        }
        ed->set[ed->nset].value = ev.s;
        if ((ed->set[ed->nset].name = pt_arena_strndup(c->arena, k->value, k->len)) == NULL) {
            pt__cfg_err(c, k->line, "out of memory");
            goto next;
        }
        ed->nset++;
    next:
        pt__cfg_pop(c, mark);
    }
}

static void parse_edit_remove(pt__cfg_ctx_t *c, const pt_ynode_t *rn, const pt_ynode_t *sn,
                              int is_request, const pt_upstream_t *up, int mode_known,
                              pt_header_edit_t *ed)
{
    size_t i, j, mark;
    char tmp[300];

    if (rn->kind != PT_YNODE_SEQUENCE) {
        pt__cfg_err(c, rn->line, "expected a list of header names, got %s",
                    pt__cfg_quote(rn, tmp, sizeof(tmp)));
        return;
    }
    if (rn->n > EDIT_MAX) {
        pt__cfg_err(c, rn->line, "at most %d headers, got %zu", EDIT_MAX, rn->n);
        return;
    }
    if (rn->n > 0 &&
        (ed->remove = pt_arena_calloc(c->arena, rn->n * sizeof(*ed->remove))) == NULL) {
        pt__cfg_err(c, rn->line, "out of memory");
        return;
    }
    for (i = 0; i < rn->n; i++) {
        const pt_ynode_t *v = rn->items[i];
        char *name;

        mark = pt__cfg_push_index(c, i);
        if (pt__cfg_string(c, v, &name) != 0 ||
            check_edit_name(c, v->line, v->value, v->len, is_request, up, mode_known) != 0)
            goto next;
        for (j = 0; j < i; j++)
            if (name_ieq(v->value, v->len, rn->items[j]->value, rn->items[j]->len))
                break;
        if (j < i) {
            pt__cfg_err(c, v->line,
                        "%s is already in the list (remove[%zu]; names are "
                        "case-insensitive)",
                        name, j);
            goto next;
        }
        for (j = 0; sn != NULL && sn->kind == PT_YNODE_MAPPING && j < sn->n; j++)
            if (name_ieq(v->value, v->len, sn->pairs[j].key->value, sn->pairs[j].key->len))
                break;
        if (sn != NULL && sn->kind == PT_YNODE_MAPPING && j < sn->n) {
            pt__cfg_err(c, v->line,
                        "%s is also in set (line %u): a header is either set or removed", name,
                        sn->pairs[j].key->line);
            goto next;
        }
        ed->remove[ed->nremove++] = name;
    next:
        pt__cfg_pop(c, mark);
    }
}

/* Reads `request_headers:` (is_request) or `response_headers:` into ed. up->auth_mode and
 * up->auth_forward_original must be read already (mode_known: auth.mode was valid). */
static void parse_header_edit(pt__cfg_ctx_t *c, const pt_ynode_t *n, int is_request,
                              const pt_upstream_t *up, int mode_known, pt_header_edit_t *ed)
{
    const pt_ynode_t *sn, *rn;
    size_t mark;

    if (pt__cfg_mapping(c, n, header_edit_keys) != 0)
        return;
    if (!pt_yaml_is_null(sn = pt_yaml_get(n, "set"))) {
        mark = pt__cfg_push(c, "set", 3);
        parse_edit_set(c, sn, is_request, up, mode_known, ed);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(rn = pt_yaml_get(n, "remove"))) {
        mark = pt__cfg_push(c, "remove", 6);
        parse_edit_remove(c, rn, sn, is_request, up, mode_known, ed);
        pt__cfg_pop(c, mark);
    }
}

/* Reads a basic-auth credential (`username` or `password`) of auth mapping n into *ev (in the
 * scratch arena, zeroed when it is freed). Returns 0, or -1 (reported). */
static int auth_credential(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *key, env_value_t *ev)
{
    const pt_ynode_t *v = pt_yaml_get(n, key);
    int is_user = key[0] == 'u', rc = -1;
    const char *why = NULL;
    size_t mark = pt__cfg_push(c, key, strlen(key));

    if (pt_yaml_is_null(v)) {
        pt__cfg_err(c, n->line, "required key is missing (auth mode basic)");
        goto done;
    }
    if (env_string(c, v, c->scratch, ev) != 0)
        goto done;
    if (!is_user && ev->nrefs == 0) {
        /* Definition files are versioned and shared: a password must not be in one. */
        pt__cfg_err(c, v->line,
                    "write the password as a reference to an environment variable, "
                    "${env:NAME}; it may not be written in the file");
        goto done;
    }
    if (is_user && ev->len == 0)
        why = "must not be empty";
    else if (is_user && memchr(ev->s, ':', ev->len) != NULL)
        why = "must not contain ':' (it separates the username from the password)";
    else if (has_ctl(ev->s, ev->len))
        why = "must not contain control characters (RFC 7617)";
    if (why != NULL) {
        env_value_err(c, v->line, ev, is_user ? "username" : "password", why);
        goto done;
    }
    rc = 0;
done:
    pt__cfg_pop(c, mark);
    return rc;
}

/* Reads `auth:` into up->auth_*. *mode_known is cleared when the mode could not be read. */
static void parse_auth(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_upstream_t *up, int *mode_known)
{
    const pt_ynode_t *v;
    env_value_t user, pass;
    char tmp[300], *mode;
    unsigned char *joined;
    size_t mark, i, len;
    int ok;

    if (pt__cfg_mapping(c, n, auth_keys) != 0) {
        *mode_known = 0;
        return;
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "mode"))) {
        mark = pt__cfg_push(c, "mode", 4);
        *mode_known = 0;
        if (pt__cfg_string(c, v, &mode) == 0) {
            for (i = 0; i < PT_ARRAY_SIZE(auth_mode_names); i++)
                if (strcmp(mode, auth_mode_names[i]) == 0)
                    break;
            if (i < PT_ARRAY_SIZE(auth_mode_names)) {
                up->auth_mode = (pt_upstream_auth_t)i;
                *mode_known = 1;
            } else {
                pt__cfg_err(c, v->line, "expected none, basic or passthrough, got %s",
                            pt__cfg_quote(v, tmp, sizeof(tmp)));
            }
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "forward_original"))) {
        mark = pt__cfg_push(c, "forward_original", 16);
        if (pt__cfg_bool(c, v, &up->auth_forward_original) == 0 && up->auth_forward_original &&
            *mode_known && up->auth_mode == PT_UPSTREAM_AUTH_PASSTHROUGH)
            pt__cfg_err(c, v->line,
                        "only for auth modes none and basic (mode passthrough forwards the "
                        "client's Authorization as is)");
        pt__cfg_pop(c, mark);
    }
    if (!*mode_known)
        return;
    if (up->auth_mode != PT_UPSTREAM_AUTH_BASIC) {
        /* Credentials that would be ignored are a mistake worth reporting. */
        for (i = 0; i < 2; i++) {
            const char *key = i == 0 ? "username" : "password";
            if ((v = pt_yaml_get(n, key)) == NULL)
                continue;
            mark = pt__cfg_push(c, key, strlen(key));
            pt__cfg_err(c, pt__cfg_key_line(n, key), "only used with auth mode basic (mode is %s)",
                        auth_mode_names[up->auth_mode]);
            pt__cfg_pop(c, mark);
        }
        return;
    }
    ok = auth_credential(c, n, "username", &user) == 0;
    ok = auth_credential(c, n, "password", &pass) == 0 && ok;
    if (!ok)
        return;
    len = user.len + 1 + pass.len;
    if (len > AUTH_BASIC_MAX) {
        pt__cfg_err(c, pt__cfg_key_line(n, "password"),
                    "the username and the password together must not be longer than %d bytes "
                    "(the Authorization header is at most %d)",
                    AUTH_BASIC_MAX - 1, PT__CFG_HEADER_VALUE_MAX);
        return;
    }
    /* "user:password" is built in the scratch arena (zeroed by its cleanup), encoded into the
     * configuration's (zeroed when the configuration is freed). */
    if ((joined = pt_arena_calloc(c->scratch, len + 1)) == NULL ||
        pt_arena_cleanup_add(c->scratch, cleanse_cb, joined) != 0 ||
        (up->auth_basic = pt_arena_calloc(c->arena, 6 + 4 * ((len + 2) / 3) + 1)) == NULL ||
        pt_arena_cleanup_add(c->arena, cleanse_cb, up->auth_basic) != 0) {
        pt__cfg_err(c, n->line, "out of memory");
        return;
    }
    memcpy(joined, user.s, user.len);
    joined[user.len] = ':';
    memcpy(joined + user.len + 1, pass.s, pass.len);
    memcpy(up->auth_basic, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)up->auth_basic + 6, joined, (int)len);
}

/* Contract and ownership in upstream-i.h. */
pt_upstream_t *pt__cfg_upstream(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    pt_upstream_t *up;
    const pt_ynode_t *v, *cv;
    char tmp[300];
    size_t i, mark, mark2;
    unsigned nerr;
    int mode_known = 1, targets_ok, any_https = 0;

    if (pt__cfg_mapping(c, n, upstream_keys) != 0)
        return NULL;
    if ((up = pt_arena_calloc(c->arena, sizeof(*up))) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return NULL;
    }
    up->line = n->line;
    up->connect_timeout_ms = 5000;
    up->read_timeout_ms = 60000;
    up->keepalive_max_idle = 64;
    up->retries = 1;
    up->health_max_fails = 3;
    up->health_fail_timeout_ms = 10000;
    up->keepalive_idle_timeout_ms = 60000;
    up->keepalive_max_requests = 1000;
    up->send_timeout_ms = 60000;
    up->dns_ttl_ms = 60000;
    up->tls.verify = 1;
    /* Active checks: every field at its default, path NULL (none) unless `check:` says. */
    up->check.interval_ms = 5000;
    up->check.timeout_ms = 2000;
    up->check.fails = 2;
    up->check.passes = 1;
    if ((up->check.expected = pt_arena_calloc(c->arena, sizeof(*up->check.expected))) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return up;
    }
    up->check.expected->lo = 200;
    up->check.expected->hi = 299;
    up->check.nexpected = 1;

    nerr = c->nerr;

    mark = pt__cfg_push(c, "targets", 7);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "targets"))) {
        pt__cfg_err(c, n->line, "required key is missing (at least one target)");
    } else if (v->kind != PT_YNODE_SEQUENCE || v->n == 0) {
        pt__cfg_err(c, v->line, "expected a list of 1 to %d targets, got %s", TARGETS_MAX,
                    v->kind == PT_YNODE_SEQUENCE ? "an empty list"
                                                 : pt__cfg_quote(v, tmp, sizeof(tmp)));
    } else if (v->n > TARGETS_MAX) {
        pt__cfg_err(c, v->line, "at most %d targets, got %zu", TARGETS_MAX, v->n);
    } else if ((up->targets = pt_arena_calloc(c->arena, v->n * sizeof(*up->targets))) == NULL) {
        pt__cfg_err(c, v->line, "out of memory");
    } else {
        up->ntargets = v->n;
        for (i = 0; i < v->n; i++) {
            mark2 = pt__cfg_push_index(c, i);
            parse_target(c, v->items[i], &up->targets[i]);
            any_https |= up->targets[i].https;
            pt__cfg_pop(c, mark2);
        }
    }
    pt__cfg_pop(c, mark);
    /* Whether tls applies is known only when every target could be read. */
    targets_ok = c->nerr == nerr && up->ntargets > 0;

    uint32_key(c, n, "connect_timeout", 1, 1, 600000, &up->connect_timeout_ms);
    uint32_key(c, n, "read_timeout", 1, 1, 3600000, &up->read_timeout_ms);
    uint32_key(c, n, "send_timeout", 1, 1, 3600000, &up->send_timeout_ms);
    uint32_key(c, n, "total_timeout", 1, 0, 86400000, &up->total_timeout_ms);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "keepalive"))) {
        mark = pt__cfg_push(c, "keepalive", 9);
        if (pt__cfg_mapping(c, v, keepalive_keys) == 0) {
            uint32_key(c, v, "max_idle", 0, 0, 10000, &up->keepalive_max_idle);
            uint32_key(c, v, "idle_timeout", 1, 1000, 3600000, &up->keepalive_idle_timeout_ms);
            uint32_key(c, v, "max_requests", 0, 1, 1000000, &up->keepalive_max_requests);
        }
        pt__cfg_pop(c, mark);
    }
    uint32_key(c, n, "retries", 0, 0, 10, &up->retries);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "health"))) {
        mark = pt__cfg_push(c, "health", 6);
        if (pt__cfg_mapping(c, v, health_keys) == 0) {
            uint32_key(c, v, "max_fails", 0, 0, 100, &up->health_max_fails);
            uint32_key(c, v, "fail_timeout", 1, 1000, 3600000, &up->health_fail_timeout_ms);
            if (!pt_yaml_is_null(cv = pt_yaml_get(v, "check"))) {
                mark2 = pt__cfg_push(c, "check", 5);
                parse_check(c, cv, &up->check);
                pt__cfg_pop(c, mark2);
            }
        }
        pt__cfg_pop(c, mark);
    }
    uint32_key(c, n, "dns_ttl", 1, 0, 86400000, &up->dns_ttl_ms);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "tls"))) {
        mark = pt__cfg_push(c, "tls", 3);
        parse_tls(c, v, &up->tls);
        if (targets_ok && !any_https)
            pt__cfg_err(c, pt__cfg_key_line(n, "tls"),
                        "tls applies to https targets; no target is https");
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "preserve_host"))) {
        mark = pt__cfg_push(c, "preserve_host", 13);
        pt__cfg_bool(c, v, &up->preserve_host);
        pt__cfg_pop(c, mark);
    }
    /* auth first: it decides whether request_headers may name Authorization. */
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "auth"))) {
        mark = pt__cfg_push(c, "auth", 4);
        parse_auth(c, v, up, &mode_known);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "request_headers"))) {
        mark = pt__cfg_push(c, "request_headers", 15);
        parse_header_edit(c, v, 1, up, mode_known, &up->request_headers);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "response_headers"))) {
        mark = pt__cfg_push(c, "response_headers", 16);
        parse_header_edit(c, v, 0, up, mode_known, &up->response_headers);
        pt__cfg_pop(c, mark);
    }
    return up;
}
