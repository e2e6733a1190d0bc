/*
 * config.c - the node configuration (`portico.yaml`): workers, listeners, TLS,
 * limits, logging, trusted proxies and the directory of API definitions; plus
 * error collection and `portico validate`.
 *
 * Validation is strict: an unknown key, a value of the wrong type, a missing
 * required key or a value out of range is an error naming the file, the line
 * and the dotted key, and every error of a file is reported, not just the
 * first. See docs/configuration.md for the schema.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sched.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/schema.h"
#include "config/upstream-i.h"
#include "policy/policy.h"
#include "config/yaml.h"

#define WORKERS_MAX       256
#define LISTENER_NAME_MAX 64

static const char *const top_keys[] = {"workers",     "listen",
                                       "limits",      "log",
                                       "processes",   "trusted_proxies",
                                       "apis",        "store",
                                       "environment", "admin",
                                       "data_dir",    "policies",
                                       "users",       "protected_headers",
                                       "webhooks",    "metrics",
                                       "tracing",     NULL};
static const char *const metrics_keys[] = {"enabled", "require_token", "top_consumers", "history",
                                           NULL};
static const char *const tracing_keys[] = {"traceparent", NULL};
static const char *const admin_keys[] = {"address", NULL};
static const char *const user_keys[] = {"name",      "roles",        "api_keys", "password",
                                        "allow_ips", "certificates", "apis",     NULL};
static const char *const processes_keys[] = {
    "max_running", "max_queued",       "queue_timeout",   "max_execution_time", "timeout_status",
    "max_wait",    "result_retention", "max_result_size", "result_overflow",    NULL};
static const char *const listen_keys[] = {"address", "name", "tls", "policies", NULL};
static const char *const tls_keys[] = {"cert", "key", "client_ca", "client_cert", NULL};
static const char *const log_keys[] = {"level", "access_log", NULL};

typedef enum limit_kind_e { LIMIT_COUNT, LIMIT_SIZE, LIMIT_DURATION } limit_kind_t;

typedef struct limit_def_s {
    const char *key;
    limit_kind_t kind;
    uint64_t min, max;
    size_t off;
    int wide; /* uint64_t field (else uint32_t) */
} limit_def_t;

#define KIB  1024ull
#define MIB  (1024ull * 1024)
#define HOUR 3600000ull

static const limit_def_t limit_defs[] = {
    {"max_header_size", LIMIT_SIZE, KIB, MIB, offsetof(pt_limits_t, max_header_size), 0},
    {"max_uri_length", LIMIT_SIZE, 64, MIB, offsetof(pt_limits_t, max_uri_length), 0},
    {"max_headers", LIMIT_COUNT, 1, 10000, offsetof(pt_limits_t, max_headers), 0},
    {"max_body_size", LIMIT_SIZE, 0, 1ull << 40, offsetof(pt_limits_t, max_body_size), 1},
    {"header_timeout", LIMIT_DURATION, 100, HOUR, offsetof(pt_limits_t, header_timeout_ms), 0},
    {"body_timeout", LIMIT_DURATION, 100, HOUR, offsetof(pt_limits_t, body_timeout_ms), 0},
    /* 0 disables keep-alive: the connection is closed after each response. */
    {"keepalive_timeout", LIMIT_DURATION, 0, HOUR, offsetof(pt_limits_t, keepalive_timeout_ms), 0},
    {"max_connections", LIMIT_COUNT, 1, 1000000, offsetof(pt_limits_t, max_connections), 0},
    /* 0: in-flight requests are cut at once on shutdown. */
    {"drain_timeout", LIMIT_DURATION, 0, HOUR, offsetof(pt_limits_t, drain_timeout_ms), 0},
    {"max_pipelined", LIMIT_COUNT, 1, 1024, offsetof(pt_limits_t, max_pipelined), 0},
    {"max_output_buffer", LIMIT_SIZE, 16 * KIB, 1024 * MIB,
     offsetof(pt_limits_t, max_output_buffer), 1},
};

static const char *const limit_keys[] = {"max_header_size",   "max_uri_length",    "max_headers",
                                         "max_body_size",     "header_timeout",    "body_timeout",
                                         "keepalive_timeout", "max_connections",   "drain_timeout",
                                         "max_pipelined",     "max_output_buffer", NULL};

/* ------------------------------------------------------------ errors */

void pt_config_error(pt_config_errors_t *errs, const char *file, unsigned line, const char *key,
                     const char *fmt, ...)
{
    char msg[1024], lines[16] = "";
    va_list ap;
    char *s;
    int n;

    if (errs == NULL)
        return;
    if (errs->count >= PT_CONFIG_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(lines, sizeof(lines), ":%u", line);
    n = snprintf(NULL, 0, "%s%s: %s%s%s", file ? file : "-", lines, key && *key ? key : "",
                 key && *key ? ": " : "", msg);
    if (n < 0 || (s = malloc((size_t)n + 1)) == NULL) {
        errs->dropped++;
        return;
    }
    snprintf(s, (size_t)n + 1, "%s%s: %s%s%s", file ? file : "-", lines, key && *key ? key : "",
             key && *key ? ": " : "", msg);
    errs->msgs[errs->count++] = s;
}

void pt_config_errors_free(pt_config_errors_t *errs)
{
    size_t i;
    if (errs == NULL)
        return;
    for (i = 0; i < errs->count; i++)
        free(errs->msgs[i]);
    errs->count = 0;
    errs->dropped = 0;
}

/* ------------------------------------------------------------ lifecycle */

void pt_limits_defaults(pt_limits_t *l)
{
    l->max_header_size = 16384;
    l->max_uri_length = 8192;
    l->max_headers = 100;
    l->max_body_size = 8 * MIB;
    l->header_timeout_ms = 10000;
    l->body_timeout_ms = 30000;
    l->keepalive_timeout_ms = 75000;
    l->max_connections = 8192;
    l->drain_timeout_ms = 10000;
    l->max_pipelined = 64;
    l->max_output_buffer = MIB;
}

pt_config_t *pt_config_new(const char *path)
{
    pt_config_t *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return NULL;
    pt_arena_init(&cfg->arena, NULL);
    pt_limits_defaults(&cfg->limits);
    cfg->processes.max_running = 16;
    cfg->processes.max_queued = 256;
    cfg->processes.queue_timeout_ms = 10000;
    cfg->processes.max_execution_ms = 30000;
    cfg->processes.timeout_status = 504;
    cfg->processes.max_wait_ms = 300000;
    cfg->processes.result_retention_ms = 86400000;
    cfg->processes.max_result_size = 1u << 20;
    cfg->webhooks.retry_for_ms = 86400000;
    cfg->webhooks.retry_base_ms = 1000;
    cfg->webhooks.timeout_ms = 10000;
    cfg->metrics.enabled = 1;
    cfg->metrics.top_consumers = 20;
    cfg->metrics.history_ms = 7ull * 86400000;
    cfg->tracing.traceparent = 1;
    cfg->log.level = pt_arena_strdup(&cfg->arena, "info");
    cfg->log.access_log = pt_arena_strdup(&cfg->arena, "-");
    if (path != NULL)
        cfg->path = pt_arena_strdup(&cfg->arena, path);
    if (cfg->log.level == NULL || cfg->log.access_log == NULL || (path && cfg->path == NULL)) {
        pt_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void pt_config_free(pt_config_t *cfg)
{
    if (cfg == NULL)
        return;
    pt_arena_destroy(&cfg->arena);
    free(cfg);
}

/* ------------------------------------------------------------ node schema */

typedef struct addr_key_s {
    int family;
    unsigned char addr[16];
    uint16_t port;
} addr_key_t;

static int parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned v = 0;
    size_t i;
    if (len == 0 || len > 5)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* Parses "host:port" / "[v6]:port" into l->host, l->port and k. */
static int parse_address(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_listener_config_t *l,
                         addr_key_t *k)
{
    char *s, host[64];
    const char *colon, *port;
    size_t hlen;

    if (pt__cfg_string(c, n, &s) != 0)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            pt__cfg_err(c, n->line, "expected \"[IPv6]:port\", e.g. \"[::1]:8080\"");
            return -1;
        }
        hlen = (size_t)(close - s - 1);
        memcpy(host, s + 1, PT_MIN(hlen, sizeof(host) - 1));
        host[PT_MIN(hlen, sizeof(host) - 1)] = '\0';
        port = close + 2;
        k->family = AF_INET6;
        if (hlen >= sizeof(host) || inet_pton(AF_INET6, host, k->addr) != 1) {
            pt__cfg_err(c, n->line, "\"%s\" is not a numeric IPv6 address", host);
            return -1;
        }
    } else {
        if ((colon = strrchr(s, ':')) == NULL) {
            pt__cfg_err(c, n->line, "expected \"host:port\", e.g. \"127.0.0.1:8080\"");
            return -1;
        }
        if (strchr(s, ':') != colon) {
            pt__cfg_err(c, n->line, "an IPv6 address must be in brackets, e.g. \"[::1]:8080\"");
            return -1;
        }
        hlen = (size_t)(colon - s);
        if (hlen == 0) {
            pt__cfg_err(c, n->line, "missing host (use 0.0.0.0 or [::] for every address)");
            return -1;
        }
        memcpy(host, s, PT_MIN(hlen, sizeof(host) - 1));
        host[PT_MIN(hlen, sizeof(host) - 1)] = '\0';
        port = colon + 1;
        k->family = AF_INET;
        if (hlen >= sizeof(host) || inet_pton(AF_INET, host, k->addr) != 1) {
            pt__cfg_err(c, n->line,
                        "host must be a numeric IP address (host names are not resolved)");
            return -1;
        }
    }
    if (parse_port(port, strlen(port), &k->port) != 0) {
        pt__cfg_err(c, n->line, "port must be an integer between 0 and 65535 (0 = ephemeral)");
        return -1;
    }
    l->port = k->port;
    if ((l->host = pt_arena_strdup(c->arena, host)) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return -1;
    }
    return 0;
}

/* Checks that a file named in the configuration exists and can be read now. */
static void check_readable(pt__cfg_ctx_t *c, unsigned line, const char *path)
{
    struct stat st;
    int fd;

    if (stat(path, &st) != 0) {
        pt__cfg_err(c, line, "cannot read \"%s\": %s", path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        pt__cfg_err(c, line, "\"%s\" is not a regular file", path);
        return;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        pt__cfg_err(c, line, "cannot read \"%s\": %s", path, strerror(errno));
        return;
    }
    close(fd);
}

/* Reads a key naming a file that must be readable; returns the resolved path or NULL. */
static char *file_key(pt__cfg_ctx_t *c, const pt_ynode_t *m, const char *key, int required)
{
    const pt_ynode_t *v = pt_yaml_get(m, key);
    char *s = NULL, *path = NULL;
    size_t mark;

    if (pt_yaml_is_null(v)) {
        if (required)
            pt__cfg_missing(c, m, key);
        return NULL;
    }
    mark = pt__cfg_push(c, key, strlen(key));
    if (pt__cfg_string(c, v, &s) == 0) {
        if (s[0] == '\0')
            pt__cfg_err(c, v->line, "must not be empty");
        else if ((path = pt__cfg_path(c, v->line, s)) != NULL)
            check_readable(c, v->line, path);
    }
    pt__cfg_pop(c, mark);
    return path;
}

static pt_tls_config_t *parse_tls(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    pt_tls_config_t *tls;
    const pt_ynode_t *v;
    char tmp[300];
    size_t mark;

    if (pt__cfg_mapping(c, n, tls_keys) != 0)
        return NULL;
    if ((tls = pt_arena_calloc(c->arena, sizeof(*tls))) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return NULL;
    }
    tls->cert_file = file_key(c, n, "cert", 1);
    tls->key_file = file_key(c, n, "key", 1);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "client_cert"))) {
        mark = pt__cfg_push(c, "client_cert", 11);
        if (v->kind == PT_YNODE_SCALAR && strcmp(v->value, "none") == 0)
            tls->client_cert = PT_CLIENT_CERT_NONE;
        else if (v->kind == PT_YNODE_SCALAR && strcmp(v->value, "optional") == 0)
            tls->client_cert = PT_CLIENT_CERT_OPTIONAL;
        else if (v->kind == PT_YNODE_SCALAR && strcmp(v->value, "required") == 0)
            tls->client_cert = PT_CLIENT_CERT_REQUIRED;
        else
            pt__cfg_err(c, v->line, "expected none, optional or required, got %s",
                        pt__cfg_quote(v, tmp, sizeof(tmp)));
        pt__cfg_pop(c, mark);
    }
    tls->client_ca_file = file_key(c, n, "client_ca", 0);
    if (tls->client_cert != PT_CLIENT_CERT_NONE && pt_yaml_is_null(pt_yaml_get(n, "client_ca"))) {
        mark = pt__cfg_push(c, "client_ca", 9);
        pt__cfg_err(c, n->line,
                    "required when client_cert is optional or required (the CA bundle that "
                    "verifies client certificates)");
        pt__cfg_pop(c, mark);
    }
    return tls;
}

static int name_ok(const char *s)
{
    size_t i, len = strlen(s);
    if (len == 0 || len > LISTENER_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '"')
            return 0;
    return 1;
}

static void parse_listener(pt__cfg_ctx_t *c, const pt_ynode_t *n, size_t i, pt_listener_config_t *l,
                           addr_key_t *k)
{
    const pt_ynode_t *v;
    size_t mark;

    l->line = n->line;
    if (pt__cfg_mapping(c, n, listen_keys) != 0)
        return;
    mark = pt__cfg_push(c, "address", 7);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "address")))
        pt__cfg_err(c, n->line, "required key is missing");
    else
        parse_address(c, v, l, k);
    pt__cfg_pop(c, mark);

    if (!pt_yaml_is_null(v = pt_yaml_get(n, "name"))) {
        mark = pt__cfg_push(c, "name", 4);
        if (pt__cfg_string(c, v, &l->name) == 0 && !name_ok(l->name)) {
            pt__cfg_err(c, v->line,
                        "expected 1 to %d printable characters without spaces or quotes",
                        LISTENER_NAME_MAX);
            l->name = NULL;
        }
        pt__cfg_pop(c, mark);
    } else if ((l->name = pt_arena_printf(c->arena, "listen[%zu]", i)) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
    }

    if (!pt_yaml_is_null(v = pt_yaml_get(n, "tls"))) {
        mark = pt__cfg_push(c, "tls", 3);
        l->tls = parse_tls(c, v);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "policies"))) {
        if ((l->policies = pt_arena_calloc(c->arena, sizeof(*l->policies))) == NULL)
            pt__cfg_err(c, v->line, "out of memory");
        else
            pt__cfg_policies(c, v, l->policies);
    }
}

static void parse_listeners(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_config_t *cfg)
{
    addr_key_t *keys;
    char tmp[300];
    size_t i, j, mark;

    if (n->kind != PT_YNODE_SEQUENCE || n->n == 0) {
        pt__cfg_err(c, n->line, "expected a list of at least one listener, got %s",
                    n->kind == PT_YNODE_SEQUENCE ? "an empty list"
                                                 : pt__cfg_quote(n, tmp, sizeof(tmp)));
        return;
    }
    cfg->listeners = pt_arena_calloc(c->arena, n->n * sizeof(*cfg->listeners));
    keys = pt_arena_calloc(c->scratch, n->n * sizeof(*keys));
    if (cfg->listeners == NULL || keys == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return;
    }
    cfg->nlisteners = n->n;
    for (i = 0; i < n->n; i++) {
        pt_listener_config_t *l = &cfg->listeners[i];
        mark = pt__cfg_push_index(c, i);
        parse_listener(c, n->items[i], i, l, &keys[i]);
        /* Two ephemeral ports never collide; a same name would make logs ambiguous. */
        for (j = 0; j < i; j++) {
            const pt_listener_config_t *o = &cfg->listeners[j];
            if (l->host != NULL && o->host != NULL && keys[i].port != 0 &&
                keys[i].family == keys[j].family && keys[i].port == keys[j].port &&
                memcmp(keys[i].addr, keys[j].addr, sizeof(keys[i].addr)) == 0)
                pt__cfg_err(c, l->line,
                            "address %s%s%s:%u is already used by listen[%zu] (line %u)",
                            keys[i].family == AF_INET6 ? "[" : "", l->host,
                            keys[i].family == AF_INET6 ? "]" : "", l->port, j, o->line);
            if (l->name != NULL && o->name != NULL && strcmp(l->name, o->name) == 0)
                pt__cfg_err(c, l->line, "name \"%s\" is already used by listen[%zu] (line %u)",
                            l->name, j, o->line);
        }
        pt__cfg_pop(c, mark);
    }
}

static void parse_limits(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_limits_t *lim)
{
    const pt_ynode_t *v;
    char a[32], b[32];
    size_t i, mark;
    uint64_t x;
    int rc;

    if (pt__cfg_mapping(c, n, limit_keys) != 0)
        return;
    for (i = 0; i < PT_ARRAY_SIZE(limit_defs); i++) {
        const limit_def_t *d = &limit_defs[i];
        if (pt_yaml_is_null(v = pt_yaml_get(n, d->key)))
            continue;
        mark = pt__cfg_push(c, d->key, strlen(d->key));
        if (d->kind == LIMIT_COUNT)
            rc = pt__cfg_uint(c, v, d->min, d->max, &x);
        else if (d->kind == LIMIT_SIZE)
            rc = pt__cfg_size(c, v, d->min, d->max, &x);
        else
            rc = pt__cfg_duration(c, v, d->min, d->max, &x);
        if (rc == 0 && d->wide)
            *(uint64_t *)(void *)((char *)lim + d->off) = x;
        else if (rc == 0)
            *(uint32_t *)(void *)((char *)lim + d->off) = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (lim->max_uri_length > lim->max_header_size) {
        v = pt_yaml_get(n, "max_uri_length");
        mark = pt__cfg_push(c, "max_uri_length", 14);
        pt__cfg_err(c, v ? v->line : n->line, "must not exceed max_header_size (%s), got %s",
                    pt__cfg_size_str(lim->max_header_size, a, sizeof(a)),
                    pt__cfg_size_str(lim->max_uri_length, b, sizeof(b)));
        pt__cfg_pop(c, mark);
    }
}

static void parse_processes(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_processes_config_t *p)
{
    const pt_ynode_t *v;
    size_t mark;
    uint64_t x;

    if (pt__cfg_mapping(c, n, processes_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_running"))) {
        mark = pt__cfg_push(c, "max_running", 11);
        if (pt__cfg_uint(c, v, 1, 256, &x) == 0)
            p->max_running = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_queued"))) {
        mark = pt__cfg_push(c, "max_queued", 10);
        if (pt__cfg_uint(c, v, 0, 1000000, &x) == 0)
            p->max_queued = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "queue_timeout"))) {
        mark = pt__cfg_push(c, "queue_timeout", 13);
        if (pt__cfg_duration(c, v, 1, 3600000, &x) == 0)
            p->queue_timeout_ms = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_execution_time"))) {
        mark = pt__cfg_push(c, "max_execution_time", 18);
        if (pt__cfg_duration(c, v, 1, 86400000, &x) == 0)
            p->max_execution_ms = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_wait"))) {
        mark = pt__cfg_push(c, "max_wait", 8);
        if (pt__cfg_duration(c, v, 1, 86400000, &x) == 0)
            p->max_wait_ms = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "result_retention"))) {
        mark = pt__cfg_push(c, "result_retention", 16);
        if (pt__cfg_duration(c, v, 1000, 30ull * 86400000, &x) == 0)
            p->result_retention_ms = x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "result_overflow"))) {
        char *s;
        mark = pt__cfg_push(c, "result_overflow", 15);
        if (pt__cfg_string(c, v, &s) == 0) {
            if (strcmp(s, "drop") == 0)
                p->drop_large_results = 1;
            else if (strcmp(s, "truncate") != 0)
                pt__cfg_err(c, v->line, "expected truncate (default) or drop");
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_result_size"))) {
        mark = pt__cfg_push(c, "max_result_size", 15);
        if (pt__cfg_size(c, v, 0, 1ull << 30, &x) == 0)
            p->max_result_size = x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "timeout_status"))) {
        mark = pt__cfg_push(c, "timeout_status", 14);
        if (pt__cfg_uint(c, v, 504, 522, &x) == 0) {
            if (x != 504 && x != 522)
                pt__cfg_err(c, v->line, "expected 504 or 522 (the reference's code), got %llu",
                            (unsigned long long)x);
            else
                p->timeout_status = (int)x;
        }
        pt__cfg_pop(c, mark);
    }
}

static const char *const webhook_keys[] = {"allowed_hosts", "secret",  "retry_for",
                                           "retry_base",    "timeout", NULL};

static void parse_metrics(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_metrics_config_t *m)
{
    const pt_ynode_t *v;
    size_t mark;
    uint64_t x;
    if (pt__cfg_mapping(c, n, metrics_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "enabled"))) {
        mark = pt__cfg_push(c, "enabled", 7);
        pt__cfg_bool(c, v, &m->enabled);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "require_token"))) {
        mark = pt__cfg_push(c, "require_token", 13);
        pt__cfg_bool(c, v, &m->require_token);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "top_consumers"))) {
        mark = pt__cfg_push(c, "top_consumers", 13);
        if (pt__cfg_uint(c, v, 1, 200, &x) == 0)
            m->top_consumers = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "history"))) {
        mark = pt__cfg_push(c, "history", 7);
        if (pt__cfg_duration(c, v, 3600000, 366ull * 86400000, &x) == 0)
            m->history_ms = x;
        pt__cfg_pop(c, mark);
    }
}

static void parse_tracing(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_tracing_config_t *t)
{
    const pt_ynode_t *v;
    size_t mark;
    if (pt__cfg_mapping(c, n, tracing_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "traceparent"))) {
        mark = pt__cfg_push(c, "traceparent", 11);
        pt__cfg_bool(c, v, &t->traceparent);
        pt__cfg_pop(c, mark);
    }
}

static void parse_webhooks(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_webhooks_config_t *w)
{
    const pt_ynode_t *v;
    size_t mark, i;
    uint64_t x;
    char *s, shown[128];
    if (pt__cfg_mapping(c, n, webhook_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "allowed_hosts"))) {
        mark = pt__cfg_push(c, "allowed_hosts", 13);
        if (v->kind != PT_YNODE_SEQUENCE ||
            (w->allowed_hosts = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) == NULL) {
            pt__cfg_err(c, v->line,
                        "expected a list of hosts (\"hooks.example.com\" or "
                        "\"hooks.example.com:8443\")");
        } else {
            for (i = 0; i < v->n; i++)
                if (pt__cfg_string(c, v->items[i], &s) == 0) {
                    char *p;
                    for (p = s; *p; p++)
                        if (*p >= 'A' && *p <= 'Z')
                            *p = (char)(*p + 32);
                    if (s[0] == '\0' || strpbrk(s, "/@ ?#") != NULL)
                        pt__cfg_err(c, v->items[i]->line,
                                    "expected a host or host:port, got \"%.60s\"", s);
                    else
                        w->allowed_hosts[w->nallowed++] = s;
                }
        }
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "secret")) != NULL) {
        mark = pt__cfg_push(c, "secret", 6);
        if (pt__cfg_secret(c, v, &w->secret, shown, sizeof(shown)) == 0) {
            if (shown[0] == '\0') {
                pt__cfg_err(c, v->line,
                            "give the secret through ${env:NAME} or ${file:/path}, not in the "
                            "configuration itself");
                w->secret = NULL;
            } else if (strlen(w->secret) < 16) {
                pt__cfg_err(c, v->line, "%s: at least 16 bytes", shown);
                w->secret = NULL;
            } else {
                w->secret_len = strlen(w->secret);
            }
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "retry_for"))) {
        mark = pt__cfg_push(c, "retry_for", 9);
        if (pt__cfg_duration(c, v, 0, 30ull * 86400000, &x) == 0)
            w->retry_for_ms = x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "retry_base"))) {
        mark = pt__cfg_push(c, "retry_base", 10);
        if (pt__cfg_duration(c, v, 100, 3600000, &x) == 0)
            w->retry_base_ms = x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "timeout"))) {
        mark = pt__cfg_push(c, "timeout", 7);
        if (pt__cfg_duration(c, v, 100, 600000, &x) == 0)
            w->timeout_ms = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
}

int pt_webhook_url_allowed(const pt_webhooks_config_t *w, const char *url, size_t len)
{
    const char *h, *end = url + len;
    size_t hl, i, k;
    char host[256];
    if (len > 7 && strncmp(url, "http://", 7) == 0)
        h = url + 7;
    else if (len > 8 && strncmp(url, "https://", 8) == 0)
        h = url + 8;
    else
        return 0;
    for (hl = 0; h + hl < end && h[hl] != '/' && h[hl] != '?' && h[hl] != '#'; hl++)
        ;
    if (hl == 0 || hl >= sizeof(host) || memchr(h, '@', hl) != NULL)
        return 0; /* no user:password@ tricks */
    for (i = 0; i < (size_t)(end - url); i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return 0;
    for (k = 0; k < hl; k++)
        host[k] = (char)(h[k] >= 'A' && h[k] <= 'Z' ? h[k] + 32 : h[k]);
    host[hl] = '\0';
    for (i = 0; i < w->nallowed; i++) {
        const char *a = w->allowed_hosts[i];
        size_t al = strlen(a);
        if (strcmp(a, host) == 0)
            return 1;
        /* "host" allows any port of it */
        if (strchr(a, ':') == NULL && strncmp(host, a, al) == 0 && host[al] == ':')
            return 1;
    }
    return 0;
}

static void parse_log(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_log_config_t *log)
{
    const pt_ynode_t *v;
    char *s, tmp[300];
    size_t mark;

    if (pt__cfg_mapping(c, n, log_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "level"))) {
        mark = pt__cfg_push(c, "level", 5);
        if (v->kind == PT_YNODE_SCALAR &&
            (strcmp(v->value, "debug") == 0 || strcmp(v->value, "info") == 0 ||
             strcmp(v->value, "warn") == 0 || strcmp(v->value, "error") == 0))
            pt__cfg_string(c, v, &log->level);
        else
            pt__cfg_err(c, v->line, "expected debug, info, warn or error, got %s",
                        pt__cfg_quote(v, tmp, sizeof(tmp)));
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "access_log"))) {
        mark = pt__cfg_push(c, "access_log", 10);
        if (pt__cfg_string(c, v, &s) == 0) {
            if (s[0] == '\0')
                pt__cfg_err(c, v->line, "must not be empty (use \"off\" to disable)");
            else if (strcmp(s, "-") == 0 || strcmp(s, "stdout") == 0 || strcmp(s, "off") == 0)
                log->access_log = s;
            else if ((s = pt__cfg_path(c, v->line, s)) != NULL)
                log->access_log = s;
        }
        pt__cfg_pop(c, mark);
    }
}

/* ------------------------------------------------------------ trusted proxies */

/* Returns 1 when the first `prefix` bits of a and b are equal. */
static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned bytes = prefix / 8, bits = prefix % 8;
    unsigned char mask;

    if (memcmp(a, b, bytes) != 0)
        return 0;
    if (bits == 0)
        return 1;
    mask = (unsigned char)(0xff << (8 - bits));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

/* ::ffff:a.b.c.d (RFC 4291 2.5.5.2). */
static int is_v4_mapped(const unsigned char *a)
{
    static const unsigned char pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pfx, sizeof(pfx)) == 0;
}

int pt_cidr_match(const pt_cidr_t *blocks, size_t n, const struct sockaddr *sa)
{
    unsigned char addr[16];
    int family;
    size_t i;

    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        family = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        family = AF_INET6;
        /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d. */
        if (is_v4_mapped(addr)) {
            memmove(addr, addr + 12, 4);
            family = AF_INET;
        }
    } else {
        return 0;
    }
    for (i = 0; i < n; i++)
        if (blocks[i].family == family && prefix_eq(blocks[i].addr, addr, blocks[i].prefix))
            return 1;
    return 0;
}

int pt_cidr_parse(const char *s, size_t len, pt_cidr_t *b)
{
    char host[64];
    const char *slash = memchr(s, '/', len);
    unsigned max, prefix = 0, bits;
    unsigned char masked[16];
    size_t hlen = slash != NULL ? (size_t)(slash - s) : len, i;

    memset(b, 0, sizeof(*b));
    b->family = memchr(s, ':', hlen) != NULL ? AF_INET6 : AF_INET;
    max = b->family == AF_INET ? 32 : 128;
    if (hlen == 0 || hlen >= sizeof(host) || memchr(s, '\0', len) != NULL)
        return PT_CIDR_BAD_ADDRESS;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (inet_pton(b->family, host, b->addr) != 1)
        return PT_CIDR_BAD_ADDRESS;
    if (slash == NULL) {
        prefix = max;
    } else {
        size_t plen = len - hlen - 1;
        for (i = 0; i < plen && i < 4 && slash[1 + i] >= '0' && slash[1 + i] <= '9'; i++)
            prefix = prefix * 10 + (unsigned)(slash[1 + i] - '0');
        if (i == 0 || i != plen || prefix > max)
            return PT_CIDR_BAD_PREFIX;
    }
    /* Written as ::ffff:a.b.c.d/96+: an IPv4 block, which is how such peers are matched. */
    if (b->family == AF_INET6 && prefix >= 96 && is_v4_mapped(b->addr)) {
        memmove(b->addr, b->addr + 12, 4);
        memset(b->addr + 4, 0, 12);
        b->family = AF_INET;
        prefix -= 96;
    }
    b->prefix = prefix;
    memset(masked, 0, sizeof(masked));
    for (i = 0; i < (b->family == AF_INET ? 4u : 16u); i++) {
        bits = prefix > i * 8 ? PT_MIN(prefix - (unsigned)i * 8, 8u) : 0;
        masked[i] = (unsigned char)(b->addr[i] & (unsigned char)(0xff00 >> bits));
    }
    if (memcmp(masked, b->addr, sizeof(masked)) != 0) {
        memcpy(b->addr, masked, sizeof(masked)); /* the block meant, for the message */
        return PT_CIDR_HOST_BITS;
    }
    return 0;
}

int pt__cfg_cidr(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_cidr_t *b)
{
    char *s, tmp[300], shown[INET6_ADDRSTRLEN];
    int rc;

    if (pt__cfg_string(c, n, &s) != 0)
        return -1;
    rc = pt_cidr_parse(s, strlen(s), b);
    if (rc == PT_CIDR_BAD_ADDRESS) {
        size_t hlen = strcspn(s, "/");
        if (hlen == 0 || hlen >= 64)
            pt__cfg_err(c, n->line,
                        "expected an IP address or a CIDR block like 10.0.0.0/8 or ::1/128, got %s",
                        pt__cfg_quote(n, tmp, sizeof(tmp)));
        else
            pt__cfg_err(c, n->line,
                        "expected an IP address or a CIDR block like 10.0.0.0/8 or ::1/128, got %s "
                        "(\"%.*s\" is not a numeric %s address)",
                        pt__cfg_quote(n, tmp, sizeof(tmp)), (int)hlen, s,
                        b->family == AF_INET ? "IPv4" : "IPv6");
        return -1;
    }
    if (rc == PT_CIDR_BAD_PREFIX) {
        pt__cfg_err(c, n->line, "the prefix length after '/' must be an integer between 0 and %u",
                    b->family == AF_INET ? 32 : 128);
        return -1;
    }
    if (rc == PT_CIDR_HOST_BITS) {
        inet_ntop(b->family, b->addr, shown, sizeof(shown));
        pt__cfg_err(c, n->line, "host bits set; did you mean %s/%u?", shown, b->prefix);
        return -1;
    }
    return 0;
}

static void parse_trusted_proxies(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_config_t *cfg)
{
    char tmp[300];
    size_t i, mark;

    if (n->kind != PT_YNODE_SEQUENCE) {
        pt__cfg_err(c, n->line, "expected a list of addresses or CIDR blocks, got %s",
                    pt__cfg_quote(n, tmp, sizeof(tmp)));
        return;
    }
    if (n->n == 0)
        return;
    if ((cfg->trusted_proxies = pt_arena_calloc(c->arena, n->n * sizeof(pt_cidr_t))) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return;
    }
    cfg->ntrusted_proxies = n->n;
    for (i = 0; i < n->n; i++) {
        mark = pt__cfg_push_index(c, i);
        pt__cfg_cidr(c, n->items[i], &cfg->trusted_proxies[i]);
        pt__cfg_pop(c, mark);
    }
}

static void parse_apis_dir(pt__cfg_ctx_t *c, const pt_ynode_t *v, pt_config_t *cfg)
{
    struct stat st;
    char *s, *path, *real;
    size_t mark = pt__cfg_push(c, "apis", 4);

    if (pt__cfg_string(c, v, &s) != 0 || (path = pt__cfg_path(c, v->line, s)) == NULL)
        goto done;
    if ((real = realpath(path, NULL)) == NULL) {
        pt__cfg_err(c, v->line, "directory \"%s\" does not exist (%s)", path, strerror(errno));
        goto done;
    }
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        pt__cfg_err(c, v->line, "\"%s\" is not a directory", real);
    else if ((cfg->apis_dir = pt_arena_strdup(c->arena, real)) == NULL)
        pt__cfg_err(c, v->line, "out of memory");
    free(real);
done:
    pt__cfg_pop(c, mark);
}

/* ------------------------------------------------------------ control plane */

#define ADMIN_DEFAULT "127.0.0.1:9901"

/* A URL without its password, for messages. */
static char *url_without_password(pt_arena_t *a, const char *url)
{
    const char *scheme = strstr(url, "://"), *at, *colon, *end;
    if (scheme == NULL)
        return pt_arena_strdup(a, url);
    end = scheme + 3 + strcspn(scheme + 3, "/?#");
    at = memchr(scheme + 3, '@', (size_t)(end - scheme - 3));
    if (at == NULL)
        return pt_arena_strdup(a, url);
    colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
    if (colon == NULL)
        return pt_arena_strdup(a, url);
    return pt_arena_printf(a, "%.*s:***%s", (int)(colon - url), url, at);
}

/* `store: sqlite:<path>` (relative to the configuration) or
 * `store: postgresql://...` (${env:...} / ${file:...} resolved). */
static void parse_store(pt__cfg_ctx_t *c, const pt_ynode_t *v, pt_config_t *cfg)
{
    pt_connection_def_t *d = pt_arena_calloc(c->arena, sizeof(*d));
    char *url = NULL, shown[300];
    size_t mark = pt__cfg_push(c, "store", 5);
    if (d == NULL) {
        pt__cfg_err(c, v->line, "out of memory");
    } else if (pt__cfg_secret(c, v, &url, shown, sizeof(shown)) == 0) {
        d->name = "store";
        d->line = v->line;
        if (strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0' && strcmp(url + 7, ":memory:")) {
            d->kind = PT_CONN_SQLITE;
            d->target = pt__cfg_path(c, v->line, url + 7);
            d->display = d->target;
            cfg->store = d;
        } else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
            d->kind = PT_CONN_POSTGRESQL;
            d->target = url;
            d->display = url_without_password(c->arena, url);
            cfg->store = d;
        } else {
            pt__cfg_err(c, v->line, "expected sqlite:<file> or postgresql://...%s%s",
                        shown[0] ? "; the value comes from " : "", shown);
        }
    }
    pt__cfg_pop(c, mark);
}

int pt_config_env_name_ok(const char *s)
{
    size_t i, n = strlen(s);
    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return 0;
    return 1;
}

/* `admin: {address}`: one more listener, flagged, named "admin". */
static void parse_admin(pt__cfg_ctx_t *c, const pt_ynode_t *v, pt_config_t *cfg)
{
    pt_listener_config_t *ls;
    addr_key_t key;
    const pt_ynode_t *addr;
    pt_ynode_t dflt;
    size_t mark = pt__cfg_push(c, "admin", 5), m2;

    if (v != NULL && pt__cfg_mapping(c, v, admin_keys) != 0)
        goto done;
    ls = pt_arena_calloc(c->arena, (cfg->nlisteners + 1) * sizeof(*ls));
    if (ls == NULL) {
        pt__cfg_err(c, 0, "out of memory");
        goto done;
    }
    if (cfg->nlisteners > 0)
        memcpy(ls, cfg->listeners, cfg->nlisteners * sizeof(*ls));
    addr = v != NULL ? pt_yaml_get(v, "address") : NULL;
    if (pt_yaml_is_null(addr)) {
        memset(&dflt, 0, sizeof(dflt));
        dflt.kind = PT_YNODE_SCALAR;
        dflt.value = ADMIN_DEFAULT;
        dflt.len = sizeof(ADMIN_DEFAULT) - 1;
        dflt.line = v != NULL ? v->line : 0;
        addr = &dflt;
    }
    memset(&key, 0, sizeof(key));
    m2 = pt__cfg_push(c, "address", 7);
    parse_address(c, addr, &ls[cfg->nlisteners], &key);
    pt__cfg_pop(c, m2);
    ls[cfg->nlisteners].name = "admin";
    ls[cfg->nlisteners].admin = 1;
    ls[cfg->nlisteners].line = addr->line;
    cfg->listeners = ls;
    cfg->nlisteners++;
done:
    pt__cfg_pop(c, mark);
}

static void parse_control(pt__cfg_ctx_t *c, const pt_ynode_t *root, pt_config_t *cfg)
{
    const pt_ynode_t *v, *admin = pt_yaml_get(root, "admin");
    size_t mark;
    char *s;

    if (!pt_yaml_is_null(v = pt_yaml_get(root, "data_dir"))) {
        mark = pt__cfg_push(c, "data_dir", 8);
        if (pt__cfg_string(c, v, &s) == 0)
            cfg->data_dir = pt__cfg_path(c, v->line, s);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "store")))
        parse_store(c, v, cfg);
    if (admin != NULL)
        parse_admin(c, admin->kind == PT_YNODE_MAPPING ? admin : NULL, cfg);
    if (cfg->store == NULL && admin == NULL) {
        if (!pt_yaml_is_null(v = pt_yaml_get(root, "environment")))
            pt__cfg_err(c, v->line, "environment: needs a store (store: or admin:)");
        return;
    }
    if (cfg->data_dir == NULL)
        cfg->data_dir = pt__cfg_path(c, root->line, "data");
    if (cfg->store == NULL && cfg->data_dir != NULL) {
        pt_connection_def_t *d = pt_arena_calloc(c->arena, sizeof(*d));
        if (d != NULL) {
            d->name = "store";
            d->kind = PT_CONN_SQLITE;
            d->target = pt_arena_printf(c->arena, "%s/portico.db", cfg->data_dir);
            d->display = d->target;
            cfg->store = d;
        }
    }
    cfg->environment = "default";
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "environment"))) {
        mark = pt__cfg_push(c, "environment", 11);
        if (pt__cfg_string(c, v, &s) == 0) {
            if (!pt_config_env_name_ok(s))
                pt__cfg_err(c, v->line, "expected [a-z0-9][a-z0-9_-]{0,62}, got \"%.64s\"", s);
            else
                cfg->environment = s;
        }
        pt__cfg_pop(c, mark);
    }
}

/* ------------------------------------------------------------ users */

static int key_cmp(const void *x, const void *y)
{
    return memcmp(((const pt_key_index_t *)x)->hash, ((const pt_key_index_t *)y)->hash, 32);
}

/* "sha256:<64 hex digits>" into out. */
static int key_hash(const char *s, unsigned char *out)
{
    size_t i;
    if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
        return -1;
    for (i = 0; i < 32; i++) {
        int h = s[7 + 2 * i], l = s[8 + 2 * i];
        if (!pt__cfg_is_hex((unsigned char)h) || !pt__cfg_is_hex((unsigned char)l))
            return -1;
        h = h <= '9' ? h - '0' : (h | 32) - 'a' + 10;
        l = l <= '9' ? l - '0' : (l | 32) - 'a' + 10;
        out[i] = (unsigned char)(h * 16 + l);
    }
    return 0;
}

static int user_cmp(const void *x, const void *y)
{
    return strcmp((*(const pt_user_t *const *)x)->name, (*(const pt_user_t *const *)y)->name);
}

/* A list of strings at key of u into *out (NULL-terminated, arena). */
static int string_list(pt__cfg_ctx_t *c, const pt_ynode_t *v, char ***out, size_t *n)
{
    size_t k;
    if (v->kind != PT_YNODE_SEQUENCE ||
        (*out = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) == NULL) {
        pt__cfg_err(c, v->line, "expected a list");
        return -1;
    }
    for (k = 0; k < v->n; k++)
        if (pt__cfg_string(c, v->items[k], &(*out)[*n]) == 0)
            (*n)++;
    return 0;
}

/* password, allow_ips, certificates, apis */
static void parse_user_more(pt__cfg_ctx_t *c, const pt_ynode_t *u, pt_user_t *user)
{
    const pt_ynode_t *v;
    char tmp[300], **certs = NULL;
    size_t k, m, ncerts = 0;

    if (!pt_yaml_is_null(v = pt_yaml_get(u, "password"))) {
        m = pt__cfg_push(c, "password", 8);
        if (pt__cfg_string(c, v, &user->password) == 0 &&
            (strncmp(user->password, "$argon2id$", 10) != 0 ||
             strlen(user->password) >= crypto_pwhash_STRBYTES))
            pt__cfg_err(c, v->line,
                        "expected an Argon2id hash (\"$argon2id$...\", from `portico user "
                        "password`), never the password itself");
        pt__cfg_pop(c, m);
    }
    if ((v = pt_yaml_get(u, "allow_ips")) != NULL) {
        m = pt__cfg_push(c, "allow_ips", 9);
        user->has_allow = 1; /* present and empty: every address is refused */
        if (pt_yaml_is_null(v)) {
            ;
        } else if (v->kind != PT_YNODE_SEQUENCE ||
                   (user->allow = pt_arena_calloc(c->arena, sizeof(pt_cidr_t) * (v->n + 1))) ==
                       NULL) {
            pt__cfg_err(c, v->line, "expected a list of addresses or CIDR blocks");
        } else {
            for (k = 0; k < v->n; k++)
                if (pt__cfg_cidr(c, v->items[k], &user->allow[user->nallow]) == 0)
                    user->nallow++;
        }
        pt__cfg_pop(c, m);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(u, "certificates"))) {
        m = pt__cfg_push(c, "certificates", 12);
        if (string_list(c, v, &certs, &ncerts) == 0) {
            user->subjects = pt_arena_calloc(c->arena, sizeof(char *) * (ncerts + 1));
            user->fingerprints = pt_arena_calloc(c->arena, 32 * (ncerts + 1));
            for (k = 0; k < ncerts && user->subjects != NULL && user->fingerprints != NULL; k++) {
                if (strncmp(certs[k], "sha256:", 7) == 0 ||
                    strncasecmp(certs[k], "sha256 ", 7) == 0) {
                    /* as openssl prints it ("AB:CD:...") or plain hex */
                    char fp[7 + 64 + 1], *q = fp;
                    const char *p = certs[k] + 7;
                    memcpy(fp, "sha256:", 7);
                    q += 7;
                    for (; *p && q < fp + sizeof(fp) - 1; p++)
                        if (*p != ':')
                            *q++ = *p;
                    *q = '\0';
                    if (*p == '\0' && key_hash(fp, user->fingerprints[user->nfingerprints]) == 0)
                        user->nfingerprints++;
                    else
                        pt__cfg_err(c, v->items[k]->line,
                                    "expected sha256:<64 hex digits> (the certificate's "
                                    "fingerprint) or a subject such as \"CN=alice,O=Example\", "
                                    "got %s",
                                    pt__cfg_quote(v->items[k], tmp, sizeof(tmp)));
                } else if (strchr(certs[k], '=') == NULL) {
                    pt__cfg_err(c, v->items[k]->line,
                                "expected a subject such as \"CN=alice,O=Example\" or "
                                "sha256:<fingerprint>, got %s",
                                pt__cfg_quote(v->items[k], tmp, sizeof(tmp)));
                } else {
                    user->subjects[user->nsubjects++] = certs[k];
                }
            }
        }
        pt__cfg_pop(c, m);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(u, "apis"))) {
        m = pt__cfg_push(c, "apis", 4);
        string_list(c, v, &user->apis, &user->napis);
        pt__cfg_pop(c, m);
    }
}

/* `users: [{name, roles: [...], api_keys: ["sha256:..."]}]`: keys only as
 * hashes (`portico user key` makes a key and its hash). */
static void parse_users(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_config_t *cfg);

int pt_config_add_users(pt_config_t *cfg, const char *origin, const char *text, size_t len,
                        pt_config_errors_t *errs)
{
    pt__cfg_ctx_t c;
    pt_arena_t scratch;
    const pt_ynode_t *root, *users;
    int rc = PT_EINVAL;

    memset(&c, 0, sizeof(c));
    pt_arena_init(&scratch, NULL);
    c.arena = &cfg->arena;
    c.scratch = &scratch;
    c.errs = errs;
    c.file = origin;
    if ((root = pt_yaml_parse(&scratch, origin, text, len, errs)) == NULL)
        goto done;
    if ((users = pt_yaml_get(root, "users")) != NULL)
        parse_users(&c, users, cfg);
    if (c.nerr == 0)
        rc = 0;
done:
    pt_arena_destroy(&scratch);
    return rc;
}

static void parse_users(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_config_t *cfg)
{
    size_t i, k, total = 0, mark = pt__cfg_push(c, "users", 5);
    char tmp[300];
    if (n->kind != PT_YNODE_SEQUENCE) {
        pt__cfg_err(c, n->line, "expected a list of users");
        goto done;
    }
    for (i = 0; i < n->n; i++) {
        const pt_ynode_t *keys = pt_yaml_get(n->items[i], "api_keys");
        total += keys != NULL && keys->kind == PT_YNODE_SEQUENCE ? keys->n : 0;
    }
    {
        /* appended to the users already there (the node file's, then the store's) */
        pt_user_t *users = pt_arena_calloc(c->arena, sizeof(*users) * (cfg->nusers + n->n + 1));
        pt_key_index_t *keys = pt_arena_calloc(c->arena, sizeof(*keys) * (cfg->nkeys + total + 1));
        if (users == NULL || keys == NULL) {
            pt__cfg_err(c, n->line, "out of memory");
            goto done;
        }
        if (cfg->nusers > 0)
            memcpy(users, cfg->users, sizeof(*users) * cfg->nusers);
        for (k = 0; k < cfg->nkeys; k++) {
            keys[k] = cfg->keys[k];
            keys[k].user = users + (cfg->keys[k].user - cfg->users);
        }
        cfg->users = users;
        cfg->keys = keys;
    }
    for (i = 0; i < n->n; i++) {
        const pt_ynode_t *u = n->items[i], *v;
        pt_user_t *user = &cfg->users[cfg->nusers];
        size_t m2 = pt__cfg_push_index(c, i), m3;
        user->line = u->line;
        if (pt__cfg_mapping(c, u, user_keys) != 0) {
            pt__cfg_pop(c, m2);
            continue;
        }
        m3 = pt__cfg_push(c, "name", 4);
        if (pt_yaml_is_null(v = pt_yaml_get(u, "name")))
            pt__cfg_err(c, u->line, "required key is missing");
        else if (pt__cfg_string(c, v, &user->name) == 0 &&
                 (user->name[0] == '\0' || strlen(user->name) > 64))
            pt__cfg_err(c, v->line, "expected 1 to 64 characters");
        for (k = 0; k < cfg->nusers && user->name != NULL; k++)
            if (strcmp(cfg->users[k].name, user->name) == 0)
                pt__cfg_err(c, v->line, "user \"%s\" is already defined (line %u)", user->name,
                            cfg->users[k].line);
        pt__cfg_pop(c, m3);
        if (!pt_yaml_is_null(v = pt_yaml_get(u, "roles"))) {
            m3 = pt__cfg_push(c, "roles", 5);
            if (v->kind != PT_YNODE_SEQUENCE ||
                (user->roles = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) == NULL)
                pt__cfg_err(c, v->line, "expected a list of role names");
            else
                for (k = 0; k < v->n; k++)
                    if (pt__cfg_string(c, v->items[k], &user->roles[user->nroles]) == 0)
                        user->nroles++;
            pt__cfg_pop(c, m3);
        }
        if (!pt_yaml_is_null(v = pt_yaml_get(u, "api_keys"))) {
            m3 = pt__cfg_push(c, "api_keys", 8);
            if (v->kind != PT_YNODE_SEQUENCE) {
                pt__cfg_err(c, v->line, "expected a list of key hashes (sha256:...)");
            } else {
                for (k = 0; k < v->n; k++) {
                    char *h;
                    if (pt__cfg_string(c, v->items[k], &h) != 0)
                        continue;
                    if (key_hash(h, cfg->keys[cfg->nkeys].hash) != 0) {
                        pt__cfg_err(c, v->items[k]->line,
                                    "expected sha256:<64 hex digits> (the key's hash from "
                                    "`portico user key`), got %s",
                                    pt__cfg_quote(v->items[k], tmp, sizeof(tmp)));
                        continue;
                    }
                    cfg->keys[cfg->nkeys++].user = user;
                }
            }
            pt__cfg_pop(c, m3);
        }
        parse_user_more(c, u, user);
        if (user->name != NULL)
            cfg->nusers++;
        pt__cfg_pop(c, m2);
    }
    if ((cfg->users_by_name = pt_arena_calloc(c->arena, sizeof(pt_user_t *) * (cfg->nusers + 1))) ==
        NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        goto done;
    }
    for (i = 0; i < cfg->nusers; i++)
        cfg->users_by_name[i] = &cfg->users[i];
    qsort(cfg->users_by_name, cfg->nusers, sizeof(pt_user_t *), user_cmp);
    if (cfg->nkeys > 1) {
        qsort(cfg->keys, cfg->nkeys, sizeof(*cfg->keys), key_cmp);
        for (i = 1; i < cfg->nkeys; i++)
            if (memcmp(cfg->keys[i].hash, cfg->keys[i - 1].hash, 32) == 0)
                pt__cfg_err(c, n->line, "an API key is given to both \"%s\" and \"%s\"",
                            cfg->keys[i - 1].user->name, cfg->keys[i].user->name);
    }
done:
    pt__cfg_pop(c, mark);
}

static void parse_node(pt__cfg_ctx_t *c, const pt_ynode_t *root, pt_config_t *cfg)
{
    const pt_ynode_t *v;
    uint64_t workers = 0;
    size_t mark;

    if (pt__cfg_mapping(c, root, top_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "workers"))) {
        mark = pt__cfg_push(c, "workers", 7);
        pt__cfg_uint(c, v, 0, WORKERS_MAX, &workers);
        pt__cfg_pop(c, mark);
    }
    if (workers == 0) {
        /* the CPUs this process may run on (taskset, cgroup cpusets), not
         * every CPU of the machine */
        cpu_set_t set;
        long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                              : sysconf(_SC_NPROCESSORS_ONLN);
        workers = n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : (uint64_t)n;
    }
    cfg->workers = (unsigned)workers;

    mark = pt__cfg_push(c, "listen", 6);
    if (pt_yaml_is_null(v = pt_yaml_get(root, "listen")))
        pt__cfg_err(c, root->line, "required key is missing (at least one listener)");
    else
        parse_listeners(c, v, cfg);
    pt__cfg_pop(c, mark);

    if (!pt_yaml_is_null(v = pt_yaml_get(root, "limits"))) {
        mark = pt__cfg_push(c, "limits", 6);
        parse_limits(c, v, &cfg->limits);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "processes"))) {
        mark = pt__cfg_push(c, "processes", 9);
        parse_processes(c, v, &cfg->processes);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "log"))) {
        mark = pt__cfg_push(c, "log", 3);
        parse_log(c, v, &cfg->log);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "webhooks"))) {
        mark = pt__cfg_push(c, "webhooks", 8);
        parse_webhooks(c, v, &cfg->webhooks);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "metrics"))) {
        mark = pt__cfg_push(c, "metrics", 7);
        parse_metrics(c, v, &cfg->metrics);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "tracing"))) {
        mark = pt__cfg_push(c, "tracing", 7);
        parse_tracing(c, v, &cfg->tracing);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "protected_headers"))) {
        size_t k;
        mark = pt__cfg_push(c, "protected_headers", 17);
        if (string_list(c, v, &cfg->protected_headers, &cfg->nprotected_headers) == 0)
            for (k = 0; k < cfg->nprotected_headers; k++) {
                char *h;
                if (!pt__cfg_is_token(cfg->protected_headers[k], strlen(cfg->protected_headers[k])))
                    pt__cfg_err(c, v->line, "\"%.60s\" is not a header name",
                                cfg->protected_headers[k]);
                for (h = cfg->protected_headers[k]; *h; h++)
                    if (*h >= 'A' && *h <= 'Z')
                        *h = (char)(*h + 32);
            }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "trusted_proxies"))) {
        mark = pt__cfg_push(c, "trusted_proxies", 15);
        parse_trusted_proxies(c, v, cfg);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "apis")))
        parse_apis_dir(c, v, cfg);
    parse_control(c, root, cfg);
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "users")))
        parse_users(c, v, cfg);
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "policies")))
        pt__cfg_policies(c, v, &cfg->policies);
}

/* ------------------------------------------------------------ loading */

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int api_cmp(const void *x, const void *y)
{
    const pt_api_def_t *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c != 0 ? c : strcmp(a->file, b->file);
}

/* Loads every visible *.yaml file of cfg->apis_dir, in file name order. */
static int load_apis_dir(pt_config_t *cfg, pt_arena_t *scratch, pt_config_errors_t *errs)
{
    struct dirent *de;
    char **names = NULL, *path;
    size_t n = 0, cap = 0, i;
    DIR *d;
    int bad = 0;

    if ((d = opendir(cfg->apis_dir)) == NULL) {
        pt_config_error(errs, cfg->apis_dir, 0, NULL, "cannot open directory: %s", strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".yaml") != 0)
            continue;
        if (n == cap) {
            char **p = pt_arena_realloc(scratch, names, cap * sizeof(*names),
                                        (cap ? cap * 2 : 16) * sizeof(*names));
            if (p == NULL)
                goto nomem;
            names = p;
            cap = cap ? cap * 2 : 16;
        }
        if ((names[n++] = pt_arena_strdup(scratch, de->d_name)) == NULL)
            goto nomem;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), name_cmp);
    for (i = 0; i < n; i++) {
        if ((path = pt_arena_printf(scratch, "%s/%s", cfg->apis_dir, names[i])) == NULL) {
            pt_config_error(errs, cfg->apis_dir, 0, NULL, "out of memory");
            return -1;
        }
        if (pt_api_def_load(cfg, path, errs) != 0)
            bad = 1;
    }
    return bad ? -1 : 0;

nomem:
    closedir(d);
    pt_config_error(errs, cfg->apis_dir, 0, NULL, "out of memory");
    return -1;
}

static char *dir_of(pt_arena_t *a, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return pt_arena_strdup(a, ".");
    if (slash == path)
        return pt_arena_strdup(a, "/");
    return pt_arena_strndup(a, path, (size_t)(slash - path));
}

static pt_config_t *load_buffer(const char *name, const char *data, size_t len,
                                pt_config_errors_t *errs, int with_apis)
{
    pt_config_errors_t local = {{0}, 0, 0};
    pt_config_t *cfg;
    pt__cfg_ctx_t c;
    pt_arena_t scratch;
    const pt_ynode_t *root;

    if (errs == NULL)
        errs = &local;
    pt_arena_init(&scratch, NULL);
    if ((cfg = pt_config_new(name)) == NULL) {
        pt_config_error(errs, name, 0, NULL, "out of memory");
        goto fail;
    }
    memset(&c, 0, sizeof(c));
    c.arena = &cfg->arena;
    c.scratch = &scratch;
    c.file = name;
    c.errs = errs;
    if ((c.dir = dir_of(&scratch, name)) == NULL) {
        pt_config_error(errs, name, 0, NULL, "out of memory");
        goto fail;
    }
    if ((root = pt_yaml_parse(&scratch, name, data, len, errs)) == NULL)
        goto fail;
    parse_node(&c, root, cfg);
    if (c.nerr > 0)
        goto fail;
    if (with_apis && cfg->apis_dir != NULL && load_apis_dir(cfg, &scratch, errs) != 0)
        goto fail;
    if (cfg->napis > 1)
        qsort(cfg->apis, cfg->napis, sizeof(*cfg->apis), api_cmp);
    if (pt_config_check_apis(cfg, errs) != 0)
        goto fail;
    pt_arena_destroy(&scratch);
    pt_config_errors_free(&local);
    return cfg;

fail:
    pt_arena_destroy(&scratch);
    pt_config_free(cfg);
    pt_config_errors_free(&local);
    return NULL;
}

pt_config_t *pt_config_load_buffer(const char *name, const char *data, size_t len,
                                   pt_config_errors_t *errs)
{
    return load_buffer(name, data, len, errs, 1);
}

static pt_config_t *load_file(const char *path, pt_config_errors_t *errs, int with_apis)
{
    pt_config_t *cfg;
    char *data;
    size_t len;

    if (pt_yaml_read_file(path, &data, &len, errs) != 0)
        return NULL;
    cfg = load_buffer(path, data, len, errs, with_apis);
    free(data);
    return cfg;
}

pt_config_t *pt_config_load(const char *path, pt_config_errors_t *errs)
{
    return load_file(path, errs, 1);
}

pt_config_t *pt_config_load_node(const char *path, pt_config_errors_t *errs)
{
    return load_file(path, errs, 0);
}

int pt_config_finish_apis(pt_config_t *cfg, pt_config_errors_t *errs)
{
    if (cfg->napis > 1)
        qsort(cfg->apis, cfg->napis, sizeof(*cfg->apis), api_cmp);
    return pt_config_check_apis(cfg, errs);
}

/* ------------------------------------------------------------ portico validate */

typedef enum file_kind_e { FILE_BAD, FILE_NODE, FILE_API } file_kind_t;

/* Decides what a file is from its top-level keys. */
static file_kind_t detect(const char *path, pt_config_errors_t *errs)
{
    pt_arena_t a;
    const pt_ynode_t *root;
    file_kind_t kind = FILE_BAD;
    char *data;
    size_t len;

    if (pt_yaml_read_file(path, &data, &len, errs) != 0)
        return FILE_BAD;
    pt_arena_init(&a, NULL);
    if ((root = pt_yaml_parse(&a, path, data, len, errs)) != NULL) {
        if (pt_yaml_get(root, "listen") != NULL)
            kind = FILE_NODE;
        else if (pt_yaml_get(root, "base_path") != NULL)
            kind = FILE_API;
        else
            pt_config_error(errs, path, root->line, NULL,
                            "neither a node configuration (no `listen` key) nor an API "
                            "definition (no `base_path` key)");
    }
    pt_arena_destroy(&a);
    free(data);
    return kind;
}

int pt_config_validate_files(int argc, char **argv)
{
    pt_config_errors_t *errs, cross = {{0}, 0, 0};
    pt_config_t *apis = NULL;
    int i, status = 0;
    size_t k;

    if (argc <= 0) {
        fputs("portico validate: no file given\n", stderr);
        return 1;
    }
    if ((errs = calloc((size_t)argc, sizeof(*errs))) == NULL ||
        (apis = pt_config_new(NULL)) == NULL) {
        fputs("portico validate: out of memory\n", stderr);
        free(errs);
        return 1;
    }
    for (i = 0; i < argc; i++) {
        pt_config_t *cfg;
        switch (detect(argv[i], &errs[i])) {
        case FILE_NODE:
            if ((cfg = pt_config_load(argv[i], &errs[i])) != NULL)
                pt_config_free(cfg);
            break;
        case FILE_API:
            pt_api_def_load(apis, argv[i], &errs[i]);
            break;
        default:
            break;
        }
    }
    /* API definitions given together are checked as one set (names, base paths, routes). */
    pt_config_check_apis(apis, &cross);
    for (k = 0; k < cross.count; k++) {
        for (i = argc - 1; i >= 0; i--) {
            size_t l = strlen(argv[i]);
            if (strncmp(cross.msgs[k], argv[i], l) == 0 && cross.msgs[k][l] == ':')
                break;
        }
        i = i < 0 ? 0 : i;
        if (errs[i].count < PT_CONFIG_MAX_ERRORS) {
            errs[i].msgs[errs[i].count++] = cross.msgs[k];
            cross.msgs[k] = NULL;
        } else {
            errs[i].dropped++;
        }
    }
    if (cross.dropped > 0)
        errs[0].dropped += cross.dropped;
    for (i = 0; i < argc; i++) {
        if (errs[i].count == 0 && errs[i].dropped == 0) {
            printf("%s: ok\n", argv[i]);
            continue;
        }
        status = 1;
        for (k = 0; k < errs[i].count; k++)
            fprintf(stderr, "%s\n", errs[i].msgs[k]);
        if (errs[i].dropped > 0)
            fprintf(stderr, "%s: %zu more errors not shown\n", argv[i], errs[i].dropped);
        pt_config_errors_free(&errs[i]);
    }
    fflush(stdout);
    pt_config_errors_free(&cross);
    pt_config_free(apis);
    free(errs);
    return status;
}
