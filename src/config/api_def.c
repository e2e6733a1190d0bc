/*
 * api_def.c - API definitions (one YAML file per API in the apis directory) and their cross-checks.
 *
 * One file defines one API: name, base path, kind, title, version, and either
 * routes (kind service; each answers with a static response, `respond:`, for
 * now) or an upstream (kind proxy: everything under the base path is forwarded
 * to the upstream's targets; read by upstream.c). Values are copied into the
 * configuration's arena; the YAML tree lives in a scratch arena freed when the
 * file is done. See docs/api-definitions.md for the schema.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/schema.h"
#include "policy/policy.h"
#include "config/upstream-i.h"
#include "core/buf.h"
#include "core/json.h"
#include "gateway/router.h"

#define API_NAME_MAX  64
#define BASE_PATH_MAX 256
#define METHOD_MAX    32
#define HEADERS_MAX   100
#define BODY_MAX      (1u << 20)

static const char *const api_keys[] = {
    "name",     "base_path",  "kind",           "title",    "version",     "description",
    "routes",   "operations", "soap_namespace", "upstream", "connections", "schemas",
    "headers",  "processes",  "openapi",        "contact",  "license",     "terms_of_service",
    "policies", NULL};
static const char *const contact_keys[] = {"name", "email", "url", NULL};
static const char *const license_keys[] = {"name", "url", NULL};
static const char *const route_keys[] = {
    "method",   "path",        "name",  "respond", "description",
    "process",  "body_schema", "query", "headers", "response_schema",
    "policies", "max_wait",    "async", "webhook", NULL};
static const char *const respond_keys[] = {"status", "headers", "body", NULL};

/* Headers the server writes itself: a definition may not set them. */
static const char *const forbidden_headers[] = {"content-length",
                                                "transfer-encoding",
                                                "connection",
                                                "date",
                                                "keep-alive",
                                                "upgrade",
                                                "te",
                                                "trailer",
                                                "proxy-connection",
                                                "server",
                                                "x-request-id",
                                                NULL};

static int check_api_name(const char *s)
{
    size_t i, len = strlen(s);
    if (len == 0 || len > API_NAME_MAX)
        return -1;
    for (i = 0; i < len; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 (i > 0 && (ch == '_' || ch == '-'));
        if (!ok)
            return -1;
    }
    return 0;
}

/* Returns NULL when p is a valid base path, else why it is not. */
static const char *check_base_path(const char *p)
{
    size_t len = strlen(p), i, start;

    if (p[0] != '/')
        return "must start with '/'";
    if (len == 1)
        return NULL; /* "/": the catch-all API, matched when no other base path is */
    if (len > BASE_PATH_MAX)
        return "must not be longer than 256 characters";
    if (p[len - 1] == '/')
        return "must not end with '/'";
    for (i = 0; i < len; i = start) {
        size_t seglen;
        start = i + 1;
        while (start < len && p[start] != '/')
            start++;
        seglen = start - i - 1;
        if (seglen == 0)
            return "must not contain an empty segment (\"//\")";
        if ((seglen == 1 && p[i + 1] == '.') || (seglen == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
            return "must not contain \".\" or \"..\" segments";
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '/')
            continue;
        if (c == '{' || c == '}')
            return "must not contain '{' or '}' (a base path has no parameters)";
        if (c == '%') {
            if (i + 2 >= len || !pt__cfg_is_hex((unsigned char)p[i + 1]) ||
                !pt__cfg_is_hex((unsigned char)p[i + 2]))
                return "'%' must be followed by two hex digits";
            i += 2;
            continue;
        }
        if (!pt__cfg_is_pchar(c))
            return "contains a character that is not allowed in a URI path (RFC 3986 pchar)";
    }
    return NULL;
}

/* ------------------------------------------------------------ JSON bodies */

static int is_bool(const char *s, int *v)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return *v = 1, 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return *v = 0, 1;
    return 0;
}

/* Appends a YAML 1.2 core-schema decimal number as a JSON number (no '+',
 * no leading zeros, "5." -> "5", ".5" -> "0.5"). Returns 1 if s was a
 * number, 0 if not (nothing appended), or a negative PT_E* code. */
static int json_number(pt_buf_t *b, const char *s, size_t len)
{
    size_t i = 0, int_start, int_end, frac_start, frac_end, exp_start = 0;
    int neg = 0, rc;

    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    int_start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    int_end = frac_start = frac_end = i;
    if (i < len && s[i] == '.') {
        frac_start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        frac_end = i;
    }
    if (int_end == int_start && frac_end == frac_start)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        exp_start = ++i;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        if (i == len)
            return 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (s[i - 1] < '0' || s[i - 1] > '9')
            return 0;
    }
    if (i != len)
        return 0;
    while (int_start + 1 < int_end && s[int_start] == '0')
        int_start++;
    if ((neg && (rc = pt_buf_append_char(b, '-')) != 0) ||
        (rc = int_end > int_start ? pt_buf_append(b, s + int_start, int_end - int_start)
                                  : pt_buf_append_char(b, '0')) != 0)
        return rc;
    if (frac_end > frac_start &&
        ((rc = pt_buf_append_char(b, '.')) != 0 ||
         (rc = pt_buf_append(b, s + frac_start, frac_end - frac_start)) != 0))
        return rc;
    if (exp_start && ((rc = pt_buf_append_char(b, 'e')) != 0 ||
                      (rc = pt_buf_append(b, s + exp_start, len - exp_start)) != 0))
        return rc;
    return 1;
}

static int json_string(pt_buf_t *b, const char *s, size_t len)
{
    int rc;
    if ((rc = pt_buf_append_char(b, '"')) != 0 || (rc = pt_buf_append_json_str(b, s, len)) != 0)
        return rc;
    return pt_buf_append_char(b, '"');
}

/* Serialises a YAML tree as compact JSON. Plain scalars follow the YAML 1.2
 * core schema (null, true/false, decimal numbers); everything else, and every
 * quoted scalar, is a string. Depth is bounded by the YAML parser. */
static int json_emit(pt_buf_t *b, const pt_ynode_t *n)
{
    size_t i;
    int rc, v;

    switch (n->kind) {
    case PT_YNODE_MAPPING:
        if ((rc = pt_buf_append_char(b, '{')) != 0)
            return rc;
        for (i = 0; i < n->n; i++) {
            const pt_ynode_t *k = n->pairs[i].key;
            if ((i > 0 && (rc = pt_buf_append_char(b, ',')) != 0) ||
                (rc = json_string(b, k->value, k->len)) != 0 ||
                (rc = pt_buf_append_char(b, ':')) != 0 ||
                (rc = json_emit(b, n->pairs[i].value)) != 0)
                return rc;
        }
        return pt_buf_append_char(b, '}');
    case PT_YNODE_SEQUENCE:
        if ((rc = pt_buf_append_char(b, '[')) != 0)
            return rc;
        for (i = 0; i < n->n; i++)
            if ((i > 0 && (rc = pt_buf_append_char(b, ',')) != 0) ||
                (rc = json_emit(b, n->items[i])) != 0)
                return rc;
        return pt_buf_append_char(b, ']');
    default:
        if (!n->quoted) {
            if (pt_yaml_is_null(n))
                return pt_buf_append_str(b, "null");
            if (is_bool(n->value, &v))
                return pt_buf_append_str(b, v ? "true" : "false");
            if ((rc = json_number(b, n->value, n->len)) != 0)
                return rc < 0 ? rc : 0;
        }
        return json_string(b, n->value, n->len);
    }
}

int pt__cfg_yaml_json(pt_buf_t *b, const pt_ynode_t *n)
{
    return json_emit(b, n) != 0 ? -1 : 0;
}

/* ------------------------------------------------------------ routes */

static int header_value_ok(const char *v, size_t len, const char **why)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *why = "must not contain control characters (CR, LF, NUL, ...)";
            return 0;
        }
    }
    if (len > 0 && (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' || v[len - 1] == '\t')) {
        *why = "must not start or end with whitespace";
        return 0;
    }
    if (len > PT__CFG_HEADER_VALUE_MAX) {
        *why = "must not be longer than 8192 bytes";
        return 0;
    }
    return 1;
}

static void parse_headers(pt__cfg_ctx_t *c, const pt_ynode_t *hn, pt_respond_t *rs)
{
    size_t i, j, mark;
    const char *why;
    char tmp[300];

    if (hn->kind != PT_YNODE_MAPPING) {
        pt__cfg_err(c, hn->line, "expected a mapping of header names to values, got %s",
                    pt__cfg_quote(hn, tmp, sizeof(tmp)));
        return;
    }
    if (hn->n > HEADERS_MAX) {
        pt__cfg_err(c, hn->line, "more than %d headers", HEADERS_MAX);
        return;
    }
    if (hn->n > 0 &&
        (rs->headers = pt_arena_calloc(c->arena, hn->n * sizeof(*rs->headers))) == NULL) {
        pt__cfg_err(c, hn->line, "out of memory");
        return;
    }
    for (i = 0; i < hn->n; i++) {
        const pt_ynode_t *k = hn->pairs[i].key, *v = hn->pairs[i].value;
        char *value = NULL;

        mark = pt__cfg_push(c, k->value, k->len);
        if (!pt__cfg_is_token(k->value, k->len) || k->len > PT__CFG_HEADER_NAME_MAX) {
            pt__cfg_err(c, k->line,
                        "invalid header name (expected an HTTP token: letters, "
                        "digits and !#$%%&'*+-.^_`|~)");
            goto next;
        }
        for (j = 0; forbidden_headers[j] != NULL; j++)
            if (pt_str_ieq(k->value, k->len, forbidden_headers[j]))
                break;
        if (forbidden_headers[j] != NULL) {
            pt__cfg_err(c, k->line, "this header is set by the server and cannot be configured");
            goto next;
        }
        for (j = 0; j < i; j++) {
            const pt_ynode_t *o = hn->pairs[j].key;
            char lower[PT__CFG_HEADER_NAME_MAX + 1];
            size_t l;
            if (o->len != k->len)
                continue;
            for (l = 0; l < o->len; l++)
                lower[l] = (char)((o->value[l] >= 'A' && o->value[l] <= 'Z') ? o->value[l] + 32
                                                                             : o->value[l]);
            lower[l] = '\0';
            if (pt_str_ieq(k->value, k->len, lower)) {
                pt__cfg_err(c, k->line, "duplicate header (names are case-insensitive; line %u)",
                            o->line);
                goto next;
            }
        }
        if (pt__cfg_string(c, v, &value) != 0)
            goto next;
        if (!header_value_ok(value, v->len, &why)) {
            pt__cfg_err(c, v->line, "invalid header value: %s", why);
            goto next;
        }
        if (pt_str_ieq(k->value, k->len, "content-type")) {
            if (v->len == 0)
                pt__cfg_err(c, v->line, "Content-Type must not be empty");
            rs->content_type = value;
            goto next;
        }
        rs->headers[rs->nheaders].name = pt_arena_strndup(c->arena, k->value, k->len);
        rs->headers[rs->nheaders].value = value;
        if (rs->headers[rs->nheaders].name == NULL)
            pt__cfg_err(c, k->line, "out of memory");
        rs->nheaders++;
    next:
        pt__cfg_pop(c, mark);
    }
}

static void parse_body(pt__cfg_ctx_t *c, const pt_ynode_t *bn, pt_respond_t *rs, int *is_json)
{
    pt_buf_t b;
    int rc;

    if (bn->kind == PT_YNODE_SCALAR) {
        if (bn->len > BODY_MAX) {
            pt__cfg_err(c, bn->line, "body is larger than 1 MiB");
            return;
        }
        /* Kept as bytes: a double-quoted body may contain "\0". */
        if ((rs->body = pt_arena_strndup(c->arena, bn->value, bn->len)) == NULL) {
            pt__cfg_err(c, bn->line, "out of memory");
            return;
        }
        rs->body_len = bn->len;
        return;
    }
    pt_buf_init(&b, BODY_MAX);
    rc = json_emit(&b, bn);
    if (rc == PT_ELIMIT)
        pt__cfg_err(c, bn->line, "body is larger than 1 MiB once serialised to JSON");
    else if (rc != 0)
        pt__cfg_err(c, bn->line, "out of memory");
    else if ((rs->body = pt_arena_strndup(c->arena, b.data ? b.data : "", b.len)) == NULL)
        pt__cfg_err(c, bn->line, "out of memory");
    else {
        rs->body_len = b.len;
        *is_json = 1;
    }
    pt_buf_free(&b);
}

static void parse_respond(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_respond_t *rs)
{
    const pt_ynode_t *v;
    uint64_t status = 200;
    size_t mark;
    int is_json = 0;

    rs->status = 200;
    if (pt__cfg_mapping(c, n, respond_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "status"))) {
        mark = pt__cfg_push(c, "status", 6);
        /* 1xx are interim responses: a handler must end with a final one. */
        if (pt__cfg_uint(c, v, 200, 599, &status) == 0)
            rs->status = (int)status;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "headers"))) {
        mark = pt__cfg_push(c, "headers", 7);
        parse_headers(c, v, rs);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "body"))) {
        mark = pt__cfg_push(c, "body", 4);
        if (rs->status == 204 || rs->status == 304)
            pt__cfg_err(c, v->line, "a %d response cannot have a body", rs->status);
        else
            parse_body(c, v, rs, &is_json);
        pt__cfg_pop(c, mark);
    }
    if (rs->content_type == NULL) {
        rs->content_type =
            pt_arena_strdup(c->arena, is_json ? "application/json" : "text/plain; charset=utf-8");
        if (rs->content_type == NULL)
            pt__cfg_err(c, n->line, "out of memory");
    }
}

static void parse_route(pt__cfg_ctx_t *c, const pt_ynode_t *n, const pt_api_def_t *api,
                        pt_route_def_t *r)
{
    const pt_ynode_t *v;
    char why[256];
    size_t mark, i;

    r->line = n->line;
    r->kind = PT_DISPATCH_RESPOND;
    if (pt__cfg_mapping(c, n, route_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "policies")))
        pt__cfg_policies(c, v, &r->policies);

    mark = pt__cfg_push(c, "method", 6);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "method")))
        pt__cfg_err(c, n->line, "required key is missing");
    else if (pt__cfg_string(c, v, &r->method) == 0) {
        if (strcmp(r->method, "*") != 0 &&
            (!pt__cfg_is_token(r->method, v->len) || v->len > METHOD_MAX)) {
            pt__cfg_err(c, v->line, "expected an HTTP method (a token such as GET) or \"*\"");
            r->method = NULL;
        } else {
            for (i = 0; r->method[i] != '\0'; i++)
                if (r->method[i] >= 'a' && r->method[i] <= 'z')
                    r->method[i] = (char)(r->method[i] - 32);
        }
    }
    pt__cfg_pop(c, mark);

    mark = pt__cfg_push(c, "path", 4);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "path")))
        pt__cfg_err(c, n->line, "required key is missing");
    else if (pt__cfg_string(c, v, &r->path) == 0 &&
             pt_route_template_check(r->path, why, sizeof(why)) != 0) {
        pt__cfg_err(c, v->line, "invalid route template: %s", why);
        r->path = NULL;
    }
    pt__cfg_pop(c, mark);

    if (!pt_yaml_is_null(v = pt_yaml_get(n, "name"))) {
        mark = pt__cfg_push(c, "name", 4);
        pt__cfg_string(c, v, &r->name);
        pt__cfg_pop(c, mark);
    } else if (r->method != NULL && r->path != NULL) {
        if ((r->name = pt_arena_printf(c->arena, "%s %s", r->method, r->path)) == NULL)
            pt__cfg_err(c, n->line, "out of memory");
    }

    if (!pt_yaml_is_null(v = pt_yaml_get(n, "description"))) {
        mark = pt__cfg_push(c, "description", 11);
        pt__cfg_string(c, v, &r->description);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "headers"))) {
        /* routing headers: name -> exact value */
        mark = pt__cfg_push(c, "headers", 7);
        if (v->kind != PT_YNODE_MAPPING || v->n == 0 || v->n > 8) {
            pt__cfg_err(c, v->line, "expected a mapping of 1 to 8 header names to values");
        } else if ((r->match_headers =
                        pt_arena_calloc(c->arena, sizeof(*r->match_headers) * v->n)) == NULL) {
            pt__cfg_err(c, v->line, "out of memory");
        } else {
            for (i = 0; i < v->n; i++) {
                const pt_ynode_t *k = v->pairs[i].key;
                size_t m2 = pt__cfg_push(c, k->value, k->len), j;
                char *name = pt_arena_strndup(c->arena, k->value, k->len), *val = NULL;
                if (name == NULL || !pt__cfg_is_token(k->value, k->len) || k->len > 256) {
                    pt__cfg_err(c, k->line, "invalid header name");
                } else if (pt__cfg_string(c, v->pairs[i].value, &val) == 0) {
                    for (j = 0; name[j] != '\0'; j++)
                        if (name[j] >= 'A' && name[j] <= 'Z')
                            name[j] = (char)(name[j] + 32);
                    r->match_headers[r->nmatch_headers].name = name;
                    r->match_headers[r->nmatch_headers].value = val;
                    r->nmatch_headers++;
                }
                pt__cfg_pop(c, m2);
            }
        }
        pt__cfg_pop(c, mark);
    }

    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_wait"))) {
        uint64_t ms;
        mark = pt__cfg_push(c, "max_wait", 8);
        if (pt_yaml_is_null(pt_yaml_get(n, "process")))
            pt__cfg_err(c, v->line, "only routes that run a process wait");
        else if (pt__cfg_duration(c, v, 1, 86400000, &ms) == 0)
            r->max_wait_ms = (uint32_t)ms;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "webhook"))) {
        mark = pt__cfg_push(c, "webhook", 7);
        if (pt_yaml_is_null(pt_yaml_get(n, "process"))) {
            pt__cfg_err(c, v->line, "only routes that run a process have webhooks");
        } else if (v->kind == PT_YNODE_SCALAR) {
            if ((r->webhooks = pt_arena_calloc(c->arena, sizeof(char *) * 2)) != NULL &&
                pt__cfg_string(c, v, &r->webhooks[0]) == 0)
                r->nwebhooks = 1;
        } else if (v->kind == PT_YNODE_SEQUENCE && v->n > 0 && v->n <= 4 &&
                   (r->webhooks = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) != NULL) {
            for (i = 0; i < v->n; i++)
                if (pt__cfg_string(c, v->items[i], &r->webhooks[r->nwebhooks]) == 0)
                    r->nwebhooks++;
        } else {
            pt__cfg_err(c, v->line, "expected a URL or a list of 1 to 4 URLs");
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "async"))) {
        mark = pt__cfg_push(c, "async", 5);
        if (pt_yaml_is_null(pt_yaml_get(n, "process")))
            pt__cfg_err(c, v->line, "only routes that run a process can be async");
        else
            pt__cfg_bool(c, v, &r->async);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(pt_yaml_get(n, "process"))) {
        if (!pt_yaml_is_null(pt_yaml_get(n, "respond")))
            pt__cfg_err(c, pt__cfg_key_line(n, "respond"),
                        "respond: a route either responds statically or runs a process, not both");
        pt__cfg_route_process(c, n, api, r);
        return;
    }
    if (!pt_yaml_is_null(pt_yaml_get(n, "body_schema")))
        pt__cfg_err(c, pt__cfg_key_line(n, "body_schema"),
                    "body_schema: only routes that run a process validate bodies");
    if (!pt_yaml_is_null(pt_yaml_get(n, "response_schema")))
        pt__cfg_err(c, pt__cfg_key_line(n, "response_schema"),
                    "response_schema: only routes that run a process declare one");
    if (!pt_yaml_is_null(pt_yaml_get(n, "query")))
        pt__cfg_err(c, pt__cfg_key_line(n, "query"),
                    "query: only routes that run a process declare query parameters");
    mark = pt__cfg_push(c, "respond", 7);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "respond")))
        pt__cfg_err(c, n->line, "required key is missing (a route has `respond` or `process`)");
    else
        parse_respond(c, v, &r->respond);
    pt__cfg_pop(c, mark);
}

/* Reads a required or optional string key of m into *out. */
static void string_key(pt__cfg_ctx_t *c, const pt_ynode_t *m, const char *key, int required,
                       char **out)
{
    const pt_ynode_t *v = pt_yaml_get(m, key);
    size_t mark;

    if (pt_yaml_is_null(v)) {
        if (required)
            pt__cfg_missing(c, m, key);
        return;
    }
    mark = pt__cfg_push(c, key, strlen(key));
    pt__cfg_string(c, v, out);
    pt__cfg_pop(c, mark);
}

/* `openapi: file` of a proxy API: an OpenAPI 3.x document (JSON or YAML),
 * read and checked at load. */
static void load_openapi(pt__cfg_ctx_t *c, const pt_ynode_t *v, pt_api_def_t *api)
{
    pt_config_errors_t errs = {0};
    char *path = NULL, *data = NULL;
    size_t len = 0;
    pt_json_t *doc = NULL;
    const pt_json_t *ver;
    pt_json_error_t jerr;

    if (pt__cfg_string(c, v, &path) != 0 || (path = pt__cfg_def_path(c, v->line, path)) == NULL)
        return;
    if (pt_yaml_read_file(path, &data, &len, &errs) != 0) {
        pt__cfg_err(c, v->line, "cannot read %s%s%s", path, errs.count ? ": " : "",
                    errs.count ? errs.msgs[0] : "");
        pt_config_errors_free(&errs);
        return;
    }
    if (len > 0 && (data[0] == '{' || data[0] == '[')) {
        doc = pt_json_parse(c->arena, data, len, &PT_JSON_LIMITS_DEFAULT, &jerr);
        if (doc == NULL)
            pt__cfg_err(c, v->line, "%s: line %u: %s", path, jerr.line, jerr.message);
    } else {
        const pt_ynode_t *y = pt_yaml_parse(c->scratch, path, data, len, &errs);
        pt_buf_t b;
        pt_buf_init(&b, 0);
        if (y == NULL)
            pt__cfg_err(c, v->line, "%s: %s", path, errs.count ? errs.msgs[0] : "not YAML");
        else if (pt__cfg_yaml_json(&b, y) != 0 ||
                 (doc = pt_json_parse(c->arena, b.data, b.len, &PT_JSON_LIMITS_DEFAULT, &jerr)) ==
                     NULL)
            pt__cfg_err(c, v->line, "%s: cannot read it as a document", path);
        pt_buf_free(&b);
        pt_config_errors_free(&errs);
    }
    free(data);
    if (doc == NULL)
        return;
    ver = pt_json_get(doc, "openapi");
    if (doc->type != PT_JSON_OBJECT || ver == NULL || ver->type != PT_JSON_STRING ||
        strncmp(ver->u.str.p, "3.", 2) != 0 || pt_json_get(doc, "paths") == NULL) {
        pt__cfg_err(c, v->line,
                    "%s is not an OpenAPI 3.x document (an \"openapi\": \"3.x\" member and "
                    "\"paths\")",
                    path);
        return;
    }
    api->openapi_file = path;
    api->openapi_doc = doc;
}

static void parse_api(pt__cfg_ctx_t *c, const pt_ynode_t *root, pt_api_def_t *api)
{
    const pt_ynode_t *v;
    const char *why;
    size_t i, mark, mark2;
    char tmp[300];
    int is_proxy, is_service;

    if (pt__cfg_mapping(c, root, api_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "policies")))
        pt__cfg_policies(c, v, &api->policies);

    string_key(c, root, "name", 1, &api->name);
    if ((v = pt_yaml_get(root, "name")) != NULL)
        api->name_line = v->line;
    if (api->name != NULL && check_api_name(api->name) != 0) {
        mark = pt__cfg_push(c, "name", 4);
        pt__cfg_err(c, v->line, "invalid API name %s: expected [a-z0-9][a-z0-9_-]{0,63}",
                    pt__cfg_quote(v, tmp, sizeof(tmp)));
        pt__cfg_pop(c, mark);
    }

    string_key(c, root, "base_path", 1, &api->base_path);
    if ((v = pt_yaml_get(root, "base_path")) != NULL)
        api->base_path_line = v->line;
    if (api->base_path != NULL && (why = check_base_path(api->base_path)) != NULL) {
        mark = pt__cfg_push(c, "base_path", 9);
        pt__cfg_err(c, v->line, "invalid base path %s: %s", pt__cfg_quote(v, tmp, sizeof(tmp)),
                    why);
        pt__cfg_pop(c, mark);
    }

    string_key(c, root, "kind", 1, &api->kind);
    if (api->kind != NULL && strcmp(api->kind, "service") != 0 && strcmp(api->kind, "proxy") != 0) {
        v = pt_yaml_get(root, "kind");
        mark = pt__cfg_push(c, "kind", 4);
        pt__cfg_err(c, v->line, "expected \"service\" or \"proxy\", got %s",
                    pt__cfg_quote(v, tmp, sizeof(tmp)));
        pt__cfg_pop(c, mark);
    }
    string_key(c, root, "title", 1, &api->title);
    string_key(c, root, "version", 1, &api->version);
    string_key(c, root, "description", 0, &api->description);
    string_key(c, root, "terms_of_service", 0, &api->terms_of_service);
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "contact"))) {
        mark = pt__cfg_push(c, "contact", 7);
        if (pt__cfg_mapping(c, v, contact_keys) == 0) {
            string_key(c, v, "name", 0, &api->contact_name);
            string_key(c, v, "email", 0, &api->contact_email);
            string_key(c, v, "url", 0, &api->contact_url);
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "license"))) {
        mark = pt__cfg_push(c, "license", 7);
        if (pt__cfg_mapping(c, v, license_keys) == 0) {
            string_key(c, v, "name", 1, &api->license_name);
            string_key(c, v, "url", 0, &api->license_url);
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "openapi"))) {
        mark = pt__cfg_push(c, "openapi", 7);
        if (api->kind != NULL && strcmp(api->kind, "proxy") != 0)
            pt__cfg_err(
                c, v->line,
                "only proxy APIs import an OpenAPI document (service APIs generate theirs)");
        else
            load_openapi(c, v, api);
        pt__cfg_pop(c, mark);
    }

    /* With a missing or invalid kind, both parts are read so that their errors show too. */
    is_proxy = api->kind != NULL && strcmp(api->kind, "proxy") == 0;
    is_service = api->kind != NULL && strcmp(api->kind, "service") == 0;
    mark = pt__cfg_push(c, "upstream", 8);
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "upstream"))) {
        if (is_service)
            pt__cfg_err(c, pt__cfg_key_line(root, "upstream"),
                        "only proxy APIs have an upstream (this API is kind: service)");
        else
            api->upstream = pt__cfg_upstream(c, v);
    } else if (is_proxy) {
        pt__cfg_err(c, root->line, "required key is missing (where a proxy API forwards to)");
    }
    pt__cfg_pop(c, mark);

    if (is_service) {
        pt__cfg_service(c, root, api);
        pt__cfg_operations(c, root, api);
    } else if (is_proxy) {
        static const char *const service_only[] = {"connections", "schemas",    "headers",
                                                   "processes",   "operations", NULL};
        for (i = 0; service_only[i] != NULL; i++)
            if (!pt_yaml_is_null(pt_yaml_get(root, service_only[i])))
                pt__cfg_err(c, pt__cfg_key_line(root, service_only[i]),
                            "%s: only service APIs have %s", service_only[i], service_only[i]);
    }

    if (pt_yaml_is_null(v = pt_yaml_get(root, "routes")))
        return;
    mark = pt__cfg_push(c, "routes", 6);
    if (is_proxy) {
        pt__cfg_err(c, pt__cfg_key_line(root, "routes"),
                    "a proxy API forwards everything under its base path; routes are for "
                    "service APIs");
    } else if (v->kind != PT_YNODE_SEQUENCE) {
        pt__cfg_err(c, v->line, "expected a list of routes, got %s",
                    pt__cfg_quote(v, tmp, sizeof(tmp)));
    } else if (v->n > 0) {
        api->routes = pt_arena_calloc(c->arena, v->n * sizeof(*api->routes));
        if (api->routes == NULL) {
            pt__cfg_err(c, v->line, "out of memory");
        } else {
            api->nroutes = v->n;
            for (i = 0; i < v->n; i++) {
                mark2 = pt__cfg_push_index(c, i);
                parse_route(c, v->items[i], api, &api->routes[i]);
                pt__cfg_pop(c, mark2);
            }
        }
    }
    pt__cfg_pop(c, mark);
}

/* Capacity of cfg->apis for n entries: 0, then powers of two from 4. */
static size_t apis_cap(size_t n)
{
    size_t c = 4;
    if (n == 0)
        return 0;
    while (c < n)
        c *= 2;
    return c;
}

/* Appends api to cfg->apis, growing the array in the configuration's arena. */
static int append_api(pt_config_t *cfg, const pt_api_def_t *api)
{
    size_t n = cfg->napis;
    if (n == apis_cap(n)) {
        pt_api_def_t *p =
            pt_arena_realloc(&cfg->arena, cfg->apis, n * sizeof(*p), (n ? n * 2 : 4) * sizeof(*p));
        if (p == NULL)
            return PT_ENOMEM;
        cfg->apis = p;
    }
    cfg->apis[n] = *api;
    cfg->napis = n + 1;
    return 0;
}

int pt_api_def_load_buffer(pt_config_t *cfg, const char *name, const char *data, size_t len,
                           pt_config_errors_t *errs)
{
    pt__cfg_ctx_t c;
    pt_arena_t scratch;
    pt_api_def_t api;
    const pt_ynode_t *root;
    int rc = PT_EINVAL;

    memset(&c, 0, sizeof(c));
    memset(&api, 0, sizeof(api));
    pt_arena_init(&scratch, NULL);
    c.arena = &cfg->arena;
    c.scratch = &scratch;
    c.errs = errs;
    if ((c.file = api.file = pt_arena_strdup(&cfg->arena, name)) == NULL) {
        pt_config_error(errs, name, 0, NULL, "out of memory");
        goto done;
    }
    if ((root = pt_yaml_parse(&scratch, name, data, len, errs)) == NULL)
        goto done;
    parse_api(&c, root, &api);
    if (c.nerr > 0)
        goto done;
    if (append_api(cfg, &api) != 0) {
        pt_config_error(errs, name, 0, NULL, "out of memory");
        goto done;
    }
    rc = 0;
done:
    pt_arena_destroy(&scratch);
    return rc;
}

int pt_api_def_load(pt_config_t *cfg, const char *path, pt_config_errors_t *errs)
{
    char *data;
    size_t len;
    int rc;

    if (pt_yaml_read_file(path, &data, &len, errs) != 0)
        return PT_EINVAL;
    rc = pt_api_def_load_buffer(cfg, path, data, len, errs);
    free(data);
    return rc;
}

/* ------------------------------------------------------------ cross-checks */

static int api_name_cmp(const void *x, const void *y)
{
    const pt_api_def_t *a = *(const pt_api_def_t *const *)x, *b = *(const pt_api_def_t *const *)y;
    int c = strcmp(a->name, b->name);
    if (c == 0)
        c = strcmp(a->file, b->file);
    return c != 0 ? c : (a < b ? -1 : a > b);
}

static int api_base_cmp(const void *x, const void *y)
{
    const pt_api_def_t *a = *(const pt_api_def_t *const *)x, *b = *(const pt_api_def_t *const *)y;
    int c = strcmp(a->base_path, b->base_path);
    if (c == 0)
        c = strcmp(a->file, b->file);
    return c != 0 ? c : (a < b ? -1 : a > b);
}

typedef struct route_key_s {
    char *key; /* "METHOD /template/{}" */
    size_t index;
} route_key_t;

static int route_key_cmp(const void *x, const void *y)
{
    const route_key_t *a = x, *b = y;
    int c = strcmp(a->key, b->key);
    return c != 0 ? c : (a->index < b->index ? -1 : a->index > b->index);
}

/* "GET /a/{x}/b" -> "GET /a/{}/b": parameter names do not make routes differ. */
static char *route_key(pt_arena_t *a, const pt_route_def_t *r)
{
    size_t ml = strlen(r->method), pl = strlen(r->path), i, o;
    char *k = pt_arena_alloc(a, ml + pl + 2);

    if (k == NULL)
        return NULL;
    memcpy(k, r->method, ml);
    k[ml] = ' ';
    o = ml + 1;
    for (i = 0; i < pl; i++) {
        k[o++] = r->path[i];
        if (r->path[i] == '{') {
            while (i + 1 < pl && r->path[i + 1] != '}')
                i++;
        }
    }
    k[o] = '\0';
    return k;
}

/* Do routes a and b carry the same routing headers (as a set)? */
static int same_match_headers(const pt_route_def_t *a, const pt_route_def_t *b)
{
    size_t i, j;
    if (a->nmatch_headers != b->nmatch_headers)
        return 0;
    for (i = 0; i < a->nmatch_headers; i++) {
        for (j = 0; j < b->nmatch_headers; j++)
            if (strcmp(a->match_headers[i].name, b->match_headers[j].name) == 0 &&
                strcmp(a->match_headers[i].value, b->match_headers[j].value) == 0)
                break;
        if (j == b->nmatch_headers)
            return 0;
    }
    return 1;
}

static int check_routes(pt_arena_t *scratch, pt_api_def_t *api, pt_config_errors_t *errs)
{
    route_key_t *keys;
    size_t i, n = 0, first = 0;
    int bad = 0;

    if (api->nroutes < 2)
        return 0;
    if ((keys = pt_arena_alloc(scratch, api->nroutes * sizeof(*keys))) == NULL)
        goto nomem;
    for (i = 0; i < api->nroutes; i++) {
        if (api->routes[i].method == NULL || api->routes[i].path == NULL)
            continue;
        if ((keys[n].key = route_key(scratch, &api->routes[i])) == NULL)
            goto nomem;
        keys[n++].index = i;
    }
    qsort(keys, n, sizeof(*keys), route_key_cmp);
    for (i = 0; i < n; i = first) {
        /* a group of routes of one method and template: distinct routing
         * headers, at most one without; chained conditional ones first */
        size_t j, k;
        int dup = 0;
        pt_route_def_t *head = NULL, *tail = NULL;
        for (first = i + 1; first < n && strcmp(keys[first].key, keys[i].key) == 0; first++)
            ;
        for (j = i + 1; j < first; j++)
            for (k = i; k < j; k++) {
                pt_route_def_t *r = &api->routes[keys[j].index], *o = &api->routes[keys[k].index];
                char key[32];
                if (!same_match_headers(r, o))
                    continue;
                snprintf(key, sizeof(key), "routes[%zu]", keys[j].index);
                pt_config_error(errs, api->file, r->line, key,
                                "duplicate route %s %s: same method%s template as routes[%zu] "
                                "(%s %s) at line %u",
                                r->method, r->path,
                                r->nmatch_headers ? ", routing headers and" : " and", keys[k].index,
                                o->method, o->path, o->line);
                dup = bad = 1;
                break;
            }
        if (dup || first - i < 2)
            continue;
        /* the most specific first: by routing header count, then file order;
         * the route without routing headers (if any) last */
        {
            size_t idx[64], m = 0, a, b;
            for (j = i; j < first && m < PT_ARRAY_SIZE(idx); j++)
                idx[m++] = keys[j].index;
            for (a = 1; a < m; a++) /* insertion sort: groups are small */
                for (b = a; b > 0; b--) {
                    const pt_route_def_t *x = &api->routes[idx[b - 1]], *y = &api->routes[idx[b]];
                    if (x->nmatch_headers > y->nmatch_headers ||
                        (x->nmatch_headers == y->nmatch_headers && idx[b - 1] < idx[b]))
                        break;
                    k = idx[b - 1];
                    idx[b - 1] = idx[b];
                    idx[b] = k;
                }
            for (a = 0; a < m; a++) {
                pt_route_def_t *r = &api->routes[idx[a]];
                r->alt = NULL;
                r->alt_member = tail != NULL;
                if (tail != NULL)
                    tail->alt = r;
                else
                    head = r;
                tail = r;
            }
        }
        (void)head;
    }
    return bad ? -1 : 0;

nomem:
    pt_config_error(errs, api->file, 0, NULL, "out of memory");
    return -1;
}

int pt_config_check_apis(pt_config_t *cfg, pt_config_errors_t *errs)
{
    const pt_api_def_t **idx = NULL;
    pt_arena_t scratch;
    size_t i, first;
    int bad = 0;
    char err[512];

    pt_arena_init(&scratch, NULL);
    if (cfg->napis == 0)
        return 0;
    if ((idx = pt_arena_alloc(&scratch, cfg->napis * sizeof(*idx))) == NULL)
        goto nomem;
    /* Only complete definitions are ever appended, so names and paths are set. */
    for (i = 0; i < cfg->napis; i++)
        idx[i] = &cfg->apis[i];

    qsort(idx, cfg->napis, sizeof(*idx), api_name_cmp);
    for (i = 1, first = 0; i < cfg->napis; i++) {
        if (strcmp(idx[i]->name, idx[first]->name) != 0) {
            first = i;
            continue;
        }
        pt_config_error(errs, idx[i]->file, idx[i]->name_line, "name",
                        "API name \"%s\" is already used by %s:%u", idx[i]->name, idx[first]->file,
                        idx[first]->name_line);
        bad = 1;
    }
    qsort(idx, cfg->napis, sizeof(*idx), api_base_cmp);
    for (i = 1, first = 0; i < cfg->napis; i++) {
        if (strcmp(idx[i]->base_path, idx[first]->base_path) != 0) {
            first = i;
            continue;
        }
        pt_config_error(errs, idx[i]->file, idx[i]->base_path_line, "base_path",
                        "base path %s is already used by API \"%s\" (%s:%u)", idx[i]->base_path,
                        idx[first]->name, idx[first]->file, idx[first]->base_path_line);
        bad = 1;
    }
    for (i = 0; i < cfg->napis; i++)
        if (check_routes(&scratch, &cfg->apis[i], errs) != 0)
            bad = 1;
    /* webhooks only to the node's allowed hosts, and signed */
    for (i = 0; cfg->nlisteners > 0 && i < cfg->napis; i++) { /* with the node's settings */
        const pt_api_def_t *api = &cfg->apis[i];
        size_t r, k;
        for (r = 0; r < api->nroutes; r++)
            for (k = 0; k < api->routes[r].nwebhooks; k++) {
                const char *u = api->routes[r].webhooks[k];
                if (!pt_webhook_url_allowed(&cfg->webhooks, u, strlen(u))) {
                    pt_config_error(errs, api->file, api->routes[r].line, "webhook",
                                    "%.200s is not an http(s) URL of one of the node's "
                                    "webhooks.allowed_hosts",
                                    u);
                    bad = 1;
                } else if (cfg->webhooks.secret == NULL) {
                    pt_config_error(errs, api->file, api->routes[r].line, "webhook",
                                    "the node has no webhooks.secret to sign deliveries with");
                    bad = 1;
                }
            }
    }
    /* The table the server will build: catches anything the checks above missed. */
    if (!bad && pt_router_build(&scratch, cfg->apis, cfg->napis, err, sizeof(err)) == NULL) {
        pt_config_error(errs, cfg->path ? cfg->path : cfg->apis[0].file, 0, NULL, "%s", err);
        bad = 1;
    }
    pt_arena_destroy(&scratch);
    return bad ? PT_EINVAL : 0;

nomem:
    pt_config_error(errs, cfg->path ? cfg->path : cfg->apis[0].file, 0, NULL, "out of memory");
    pt_arena_destroy(&scratch);
    return PT_EINVAL;
}
