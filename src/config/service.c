/*
 * service.c - the service-specific parts of an API definition (issue 4):
 * `connections` (databases, with secrets from the environment), `schemas`
 * (compiled JSON Schema subset), `headers` (what processes may see),
 * `processes` (steps with compiled expressions), and a route's `process`
 * and `body_schema`.
 *
 * Everything is checked at load: an SQL statement's :parameters against
 * the step's `params`, expressions compiled (with the roots they may use),
 * schema names and process names resolved, so that a definition that loads
 * runs without surprises.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/schema.h"
#include "config/upstream-i.h"
#include "core/buf.h"
#include "core/json.h"
#include "process/expr.h"
#include "process/jschema.h"
#include "process/sqltext.h"
#include "script/lua.h"

#define SQL_MAX      65536 /* bytes of one statement */
#define PARAMS_MAX   64    /* distinct :parameters of one statement */
#define STEPS_MAX    64
#define FIELDS_MAX   256
#define NAME_MAX_LEN 64

static const char *const connection_keys[] = {"url", "pool", "timeout", "read_only", NULL};
static const char *const pool_keys[] = {"min", "max", NULL};
static const char *const process_keys[] = {"mode", "transaction", "on_error", "steps", NULL};
static const char *const step_keys[] = {"name",    "when",   "sql",  "map",
                                        "respond", "script", "http", NULL};
static const char *const http_keys[] = {"method",  "url",          "connection", "headers", "body",
                                        "timeout", "max_response", "xml_root",   NULL};
static const char *const script_keys[] = {"source", "file", "memory", "instructions", NULL};
static const char *const sql_keys[] = {"connection", "query", "params", "result",
                                       "not_found",  "page",  NULL};
static const char *const page_keys[] = {"by", "sort", "default_limit", "max_limit", NULL};
static const char *const map_keys[] = {"over", "fields", NULL};
static const char *const respond_keys[] = {"status", "headers", "body", NULL};

/* on_error keys, in pt_proc_error_t order, with their default statuses */
static const char *const error_names[PT_PERR_COUNT] = {"not_found",
                                                       "unique_violation",
                                                       "foreign_key_violation",
                                                       "not_null_violation",
                                                       "check_violation",
                                                       "invalid_value",
                                                       "busy",
                                                       "database",
                                                       "expression",
                                                       "http"};
static const int error_defaults[PT_PERR_COUNT] = {404, 409, 422, 422, 422, 400, 503, 500, 500, 502};

/* What expressions may name, by where they are. */
static const char *const roots_request[] = {"method", "path", "query", "header", "body",
                                            "user",   "vars", "steps", "page",   NULL};
static const char *const roots_item[] = {"method", "path",  "query", "header", "body",  "user",
                                         "vars",   "steps", "page",  "item",   "index", NULL};

/* Headers a process never sees, whatever the definition declares (DESIGN.md §9). */
static const char *const protected_headers[] = {"connection",
                                                "upgrade",
                                                "via",
                                                "host",
                                                "proxy-authorization",
                                                "x-forwarded-for",
                                                "x-forwarded-proto",
                                                "x-forwarded-host",
                                                "x-forwarded-port",
                                                "forwarded",
                                                "keep-alive",
                                                "te",
                                                "trailer",
                                                "transfer-encoding",
                                                "content-length",
                                                "proxy-connection",
                                                NULL};

/* [a-zA-Z_][a-zA-Z0-9_]{0,63} */
static int check_ident(const char *s)
{
    size_t i;
    if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return -1;
    for (i = 1; s[i] != '\0'; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
              (s[i] >= '0' && s[i] <= '9')))
            return -1;
    return i <= NAME_MAX_LEN ? 0 : -1;
}

/* Compiles scalar n as an expression (template: as a template). NULL when invalid (reported). */
static pt_expr_t *expr_node(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *const *roots,
                            int template)
{
    char err[256], tmp[300];
    pt_expr_t *e;
    if (n == NULL || n->kind != PT_YNODE_SCALAR) {
        pt__cfg_err(c, n ? n->line : 0, "expected an expression (a string), got %s",
                    pt__cfg_quote(n, tmp, sizeof(tmp)));
        return NULL;
    }
    if (!template && !n->quoted && pt_yaml_is_null(n))
        return pt_expr_compile(c->arena, "null", 4, roots, err, sizeof(err));
    e = template == 2
            ? pt_expr_compile_url_template(c->arena, n->value, n->len, roots, err, sizeof(err))
        : template ? pt_expr_compile_template(c->arena, n->value, n->len, roots, err, sizeof(err))
                   : pt_expr_compile(c->arena, n->value, n->len, roots, err, sizeof(err));
    if (e == NULL)
        pt__cfg_err(c, n->line, "invalid %s: %s", template ? "template" : "expression", err);
    return e;
}

/* ------------------------------------------------------------------ connections */

/* "scheme://user:password@host..." -> "scheme://user@host..." for messages. */
static char *url_display(pt_arena_t *a, const char *url)
{
    const char *auth = strstr(url, "://"), *at, *colon, *end;
    if (auth == NULL)
        return pt_arena_strdup(a, url);
    auth += 3;
    end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(end - auth));
    if (at == NULL)
        return pt_arena_strdup(a, url);
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL)
        return pt_arena_strdup(a, url);
    return pt_arena_printf(a, "%.*s%s", (int)(colon - url), url, at);
}

static void parse_connection(pt__cfg_ctx_t *c, const pt_ynode_t *key, const pt_ynode_t *n,
                             pt_connection_def_t *cd)
{
    const pt_ynode_t *v;
    char shown[300], tmp[300];
    char *url = NULL;
    size_t mark;
    uint64_t x;

    cd->line = key->line;
    cd->pool_max = 8;
    cd->timeout_ms = 30000;
    if (check_ident(key->value) != 0)
        pt__cfg_err(c, key->line, "invalid connection name %s: expected [A-Za-z_][A-Za-z0-9_]*",
                    pt__cfg_quote(key, tmp, sizeof(tmp)));
    cd->name = pt_arena_strndup(c->arena, key->value, key->len);
    if (pt__cfg_mapping(c, n, connection_keys) != 0)
        return;
    mark = pt__cfg_push(c, "url", 3);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "url"))) {
        pt__cfg_err(c, n->line, "required key is missing");
    } else if (pt__cfg_secret(c, v, &url, shown, sizeof(shown)) == 0) {
        if (strncmp(url, "sqlite:", 7) == 0) {
            cd->kind = PT_CONN_SQLITE;
            if (url[7] == '\0')
                pt__cfg_err(c, v->line, "sqlite: needs a file path, e.g. sqlite:data/erp.db");
            else if (strcmp(url + 7, ":memory:") == 0)
                cd->target = pt_arena_strdup(c->arena, ":memory:");
            else
                cd->target = pt__cfg_def_path(c, v->line, url + 7);
            cd->display = cd->target;
        } else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
            cd->kind = PT_CONN_POSTGRESQL;
            cd->target = url;
            cd->display = url_display(c->arena, url);
        } else if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
            size_t l = strlen(url);
            cd->kind = PT_CONN_HTTP;
            while (l > 0 && url[l - 1] == '/')
                url[--l] = '\0'; /* the step's path brings the '/' */
            cd->target = url;
            cd->display = url_display(c->arena, url);
        } else if (strncmp(url, "mysql://", 8) == 0 || strncmp(url, "mariadb://", 10) == 0) {
            cd->kind = PT_CONN_MARIADB;
            cd->target = url;
            cd->display = url_display(c->arena, url);
        } else {
            pt__cfg_err(c, v->line,
                        "expected sqlite:<path>, postgresql://..., mysql://... (mariadb://...) or "
                        "http(s)://... (for http steps)%s%s",
                        shown[0] ? "; the value comes from " : "", shown);
        }
    }
    pt__cfg_pop(c, mark);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "pool"))) {
        mark = pt__cfg_push(c, "pool", 4);
        if (pt__cfg_mapping(c, v, pool_keys) == 0) {
            if (!pt_yaml_is_null(pt_yaml_get(v, "max"))) {
                size_t m2 = pt__cfg_push(c, "max", 3);
                if (pt__cfg_uint(c, pt_yaml_get(v, "max"), 1, 1024, &x) == 0)
                    cd->pool_max = (uint32_t)x;
                pt__cfg_pop(c, m2);
            }
            if (!pt_yaml_is_null(pt_yaml_get(v, "min"))) {
                size_t m2 = pt__cfg_push(c, "min", 3);
                if (pt__cfg_uint(c, pt_yaml_get(v, "min"), 0, 1024, &x) == 0) {
                    if (x > cd->pool_max)
                        pt__cfg_err(c, pt_yaml_get(v, "min")->line,
                                    "must not exceed max (%u), got %llu", cd->pool_max,
                                    (unsigned long long)x);
                    else
                        cd->pool_min = (uint32_t)x;
                }
                pt__cfg_pop(c, m2);
            }
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "timeout"))) {
        mark = pt__cfg_push(c, "timeout", 7);
        if (pt__cfg_duration(c, v, 1, 3600000, &x) == 0)
            cd->timeout_ms = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "read_only"))) {
        mark = pt__cfg_push(c, "read_only", 9);
        pt__cfg_bool(c, v, &cd->read_only);
        pt__cfg_pop(c, mark);
    }
}

/* ------------------------------------------------------------------ schemas */

static void parse_schemas(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_api_def_t *api)
{
    pt_buf_t b;
    pt_json_error_t jerr;
    pt_json_t *defs;
    char err[512];

    if (n->kind != PT_YNODE_MAPPING) {
        pt__cfg_err(c, n->line, "expected a mapping of schema names to schemas");
        return;
    }
    pt_buf_init(&b, 0);
    if (pt__cfg_yaml_json(&b, n) != 0) {
        pt__cfg_err(c, n->line, "out of memory");
        pt_buf_free(&b);
        return;
    }
    defs = pt_json_parse(c->arena, b.data, b.len, &PT_JSON_LIMITS_DEFAULT, &jerr);
    pt_buf_free(&b);
    if (defs == NULL) {
        pt__cfg_err(c, n->line, "cannot read the schemas: %s", jerr.message);
        return;
    }
    api->schemas = pt_jschema_compile(c->arena, defs, err, sizeof(err));
    if (api->schemas == NULL)
        pt__cfg_err(c, n->line, "%s", err);
}

/* ------------------------------------------------------------------ headers */

static void parse_headers_list(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_api_def_t *api)
{
    size_t i, j, k;
    char tmp[300];
    if (n->kind != PT_YNODE_SEQUENCE) {
        pt__cfg_err(c, n->line, "expected a list of header names");
        return;
    }
    api->custom_headers = pt_arena_calloc(c->arena, sizeof(char *) * (n->n ? n->n : 1));
    if (api->custom_headers == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return;
    }
    for (i = 0; i < n->n; i++) {
        const pt_ynode_t *v = n->items[i];
        size_t mark = pt__cfg_push_index(c, i);
        char *name;
        if (pt__cfg_string(c, v, &name) != 0) {
            pt__cfg_pop(c, mark);
            continue;
        }
        if (!pt__cfg_is_token(name, v->len) || v->len > PT__CFG_HEADER_NAME_MAX) {
            pt__cfg_err(c, v->line, "invalid header name %s", pt__cfg_quote(v, tmp, sizeof(tmp)));
            pt__cfg_pop(c, mark);
            continue;
        }
        for (k = 0; name[k] != '\0'; k++)
            if (name[k] >= 'A' && name[k] <= 'Z')
                name[k] = (char)(name[k] + 32);
        for (k = 0; protected_headers[k] != NULL; k++)
            if (strcmp(protected_headers[k], name) == 0)
                break;
        if (protected_headers[k] != NULL) {
            pt__cfg_err(c, v->line, "%s is a protected header: processes never see it", name);
            pt__cfg_pop(c, mark);
            continue;
        }
        for (j = 0; j < api->ncustom_headers; j++)
            if (strcmp(api->custom_headers[j], name) == 0)
                break;
        if (j < api->ncustom_headers)
            pt__cfg_err(c, v->line, "%s is listed twice", name);
        else
            api->custom_headers[api->ncustom_headers++] = name;
        pt__cfg_pop(c, mark);
    }
}

/* ------------------------------------------------------------------ processes */

typedef struct param_scan_s {
    char names[PARAMS_MAX][NAME_MAX_LEN + 1];
    size_t n;
    int too_many, too_long;
} param_scan_t;

static void param_seen(void *arg, const char *name, size_t n)
{
    param_scan_t *ps = arg;
    size_t i;
    if (n > NAME_MAX_LEN) {
        ps->too_long = 1;
        return;
    }
    for (i = 0; i < ps->n; i++)
        if (strlen(ps->names[i]) == n && memcmp(ps->names[i], name, n) == 0)
            return;
    if (ps->n == PARAMS_MAX) {
        ps->too_many = 1;
        return;
    }
    memcpy(ps->names[ps->n], name, n);
    ps->names[ps->n][n] = '\0';
    ps->n++;
}

/* Rewrites the statement's :name parameters as $k and ? (sqltext.c). */
static void sql_rewrite(pt__cfg_ctx_t *c, unsigned line, pt_step_def_t *st)
{
    char why[256];
    if (pt_sql_rewrite(c->arena, st, why, sizeof(why)) != 0)
        pt__cfg_err(c, line, "%s", why);
}

/* `page: {by: [columns], default_limit, max_limit}` of a rows step. */
static void parse_page(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_step_def_t *st)
{
    const pt_ynode_t *v;
    size_t mark, i;
    uint64_t x;
    char tmp[300];

    st->page_default_limit = 20;
    st->page_max_limit = 100;
    if (st->result != PT_SQL_ROWS) {
        pt__cfg_err(c, n->line, "only for result: rows");
        return;
    }
    if (pt__cfg_mapping(c, n, page_keys) != 0)
        return;
    mark = pt__cfg_push(c, "by", 2);
    v = pt_yaml_get(n, "by");
    if (pt_yaml_is_null(v)) {
        pt__cfg_err(c, n->line, "required key is missing (the ordered key columns)");
    } else if (v->kind != PT_YNODE_SEQUENCE || v->n == 0 || v->n > 8) {
        pt__cfg_err(c, v->line, "expected a list of 1 to 8 column names (the ORDER BY keys)");
    } else if ((st->page_by = pt_arena_calloc(c->arena, sizeof(char *) * v->n)) == NULL) {
        pt__cfg_err(c, v->line, "out of memory");
    } else {
        for (i = 0; i < v->n; i++) {
            size_t m2 = pt__cfg_push_index(c, i);
            if (pt__cfg_string(c, v->items[i], &st->page_by[i]) == 0 &&
                check_ident(st->page_by[i]) != 0)
                pt__cfg_err(c, v->items[i]->line, "invalid column name %s",
                            pt__cfg_quote(v->items[i], tmp, sizeof(tmp)));
            pt__cfg_pop(c, m2);
        }
        st->npage_by = v->n;
    }
    pt__cfg_pop(c, mark);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "sort"))) {
        mark = pt__cfg_push(c, "sort", 4);
        if (v->kind != PT_YNODE_SEQUENCE || v->n == 0 || v->n > 32) {
            pt__cfg_err(c, v->line, "expected a list of 1 to 32 column names ?sort= may name");
        } else if ((st->page_sort = pt_arena_calloc(c->arena, sizeof(char *) * v->n)) == NULL) {
            pt__cfg_err(c, v->line, "out of memory");
        } else {
            for (i = 0; i < v->n; i++) {
                size_t m2 = pt__cfg_push_index(c, i);
                if (pt__cfg_string(c, v->items[i], &st->page_sort[i]) == 0 &&
                    check_ident(st->page_sort[i]) != 0)
                    pt__cfg_err(c, v->items[i]->line, "invalid column name %s",
                                pt__cfg_quote(v->items[i], tmp, sizeof(tmp)));
                pt__cfg_pop(c, m2);
            }
            st->npage_sort = v->n;
        }
        pt__cfg_pop(c, mark);
    }
    if (st->sql != NULL) {
        int has_order = strstr(st->sql, "${order}") != NULL;
        int has_after = strstr(st->sql, "${after}") != NULL;
        if (has_order != has_after)
            pt__cfg_err(c, n->line,
                        "the query has %s but not %s: with page, the engine writes both the "
                        "ORDER BY (${order}) and the keyset condition (${after})",
                        has_order ? "${order}" : "${after}", has_order ? "${after}" : "${order}");
        else if (st->npage_sort > 0 && !has_order)
            pt__cfg_err(c, n->line,
                        "sort needs ${order} and ${after} in the query (e.g. WHERE ${after} "
                        "ORDER BY ${order} LIMIT :limit)");
        st->page_markers = has_order && has_after;
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_limit"))) {
        mark = pt__cfg_push(c, "max_limit", 9);
        if (pt__cfg_uint(c, v, 1, 10000, &x) == 0)
            st->page_max_limit = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "default_limit"))) {
        mark = pt__cfg_push(c, "default_limit", 13);
        if (pt__cfg_uint(c, v, 1, st->page_max_limit, &x) == 0)
            st->page_default_limit = (uint32_t)x;
        pt__cfg_pop(c, mark);
    } else if (st->page_default_limit > st->page_max_limit) {
        st->page_default_limit = st->page_max_limit;
    }
}

static void parse_sql(pt__cfg_ctx_t *c, const pt_ynode_t *n, const pt_api_def_t *api,
                      pt_step_def_t *st)
{
    const pt_ynode_t *v, *pn;
    char tmp[300], why[256];
    char *conn = NULL;
    size_t mark, i;
    param_scan_t *ps;

    st->kind = PT_STEP_SQL;
    st->not_found_status = 404;
    if (pt__cfg_mapping(c, n, sql_keys) != 0)
        return;
    mark = pt__cfg_push(c, "connection", 10);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "connection"))) {
        size_t ndb = 0;
        for (i = 0; i < api->nconnections; i++)
            if (api->connections[i].kind != PT_CONN_HTTP) {
                st->connection = i; /* the only database, if it is */
                ndb++;
            }
        if (ndb != 1)
            pt__cfg_err(c, n->line, "required key is missing (the API has %zu databases)", ndb);
    } else if (pt__cfg_string(c, v, &conn) == 0) {
        for (i = 0; i < api->nconnections; i++)
            if (api->connections[i].name && strcmp(api->connections[i].name, conn) == 0)
                break;
        if (i == api->nconnections)
            pt__cfg_err(c, v->line, "no connection named %s in this API",
                        pt__cfg_quote(v, tmp, sizeof(tmp)));
        else if (api->connections[i].kind == PT_CONN_HTTP)
            pt__cfg_err(c, v->line, "%s is an http(s) connection: sql steps need a database",
                        pt__cfg_quote(v, tmp, sizeof(tmp)));
        st->connection = i;
    }
    pt__cfg_pop(c, mark);

    mark = pt__cfg_push(c, "query", 5);
    ps = pt_arena_calloc(c->scratch, sizeof(*ps));
    if (ps == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        pt__cfg_pop(c, mark);
        return;
    }
    if (pt_yaml_is_null(v = pt_yaml_get(n, "query"))) {
        pt__cfg_err(c, n->line, "required key is missing (the SQL statement)");
    } else if (pt__cfg_string(c, v, &st->sql) == 0) {
        if (v->len > SQL_MAX)
            pt__cfg_err(c, v->line, "longer than %d bytes", SQL_MAX);
        else if (pt_sql_scan(st->sql, v->len, param_seen, ps, why, sizeof(why)) != 0)
            pt__cfg_err(c, v->line, "%s", why);
        else if (ps->too_long)
            pt__cfg_err(c, v->line, "a parameter name is longer than %d characters", NAME_MAX_LEN);
        else if (ps->too_many)
            pt__cfg_err(c, v->line, "more than %d distinct parameters", PARAMS_MAX);
    }
    pt__cfg_pop(c, mark);

    /* every :name of the statement is bound by params, and every param is used */
    pn = pt_yaml_get(n, "params");
    mark = pt__cfg_push(c, "params", 6);
    if (!pt_yaml_is_null(pn) && pn->kind != PT_YNODE_MAPPING) {
        pt__cfg_err(c, pn->line, "expected a mapping of parameter names to expressions");
        pn = NULL;
    }
    if (ps->n > 0) {
        st->params = pt_arena_calloc(c->arena, sizeof(*st->params) * ps->n);
        if (st->params == NULL) {
            pt__cfg_err(c, n->line, "out of memory");
            pt__cfg_pop(c, mark);
            return;
        }
        st->nparams = ps->n;
    }
    for (i = 0; i < ps->n; i++) {
        const pt_ynode_t *e = pt_yaml_is_null(pn) ? NULL : pt_yaml_get(pn, ps->names[i]);
        size_t m2 = pt__cfg_push(c, ps->names[i], strlen(ps->names[i]));
        st->params[i].name = pt_arena_strdup(c->arena, ps->names[i]);
        if (e == NULL)
            pt__cfg_err(c, pn ? pn->line : n->line,
                        "the statement uses :%s: bind it here (e.g. %s: path.%s)", ps->names[i],
                        ps->names[i], ps->names[i]);
        else
            st->params[i].expr = expr_node(c, e, roots_request, 0);
        pt__cfg_pop(c, m2);
    }
    if (!pt_yaml_is_null(pn))
        for (i = 0; i < pn->n; i++) {
            const pt_ynode_t *k = pn->pairs[i].key;
            size_t j;
            for (j = 0; j < ps->n; j++)
                if (strlen(ps->names[j]) == k->len && memcmp(ps->names[j], k->value, k->len) == 0)
                    break;
            if (j == ps->n)
                pt__cfg_err(c, k->line, "%s is not a parameter of the statement (no :%s in it)",
                            pt__cfg_quote(k, tmp, sizeof(tmp)), k->value);
        }
    pt__cfg_pop(c, mark);
    if (st->sql != NULL && c->nerr == 0)
        sql_rewrite(c, n->line, st);

    if (!pt_yaml_is_null(v = pt_yaml_get(n, "result"))) {
        static const char *const names[] = {"rows", "row", "affected", "key"};
        char *r = NULL;
        mark = pt__cfg_push(c, "result", 6);
        if (pt__cfg_string(c, v, &r) == 0) {
            for (i = 0; i < PT_ARRAY_SIZE(names); i++)
                if (strcmp(r, names[i]) == 0)
                    break;
            if (i == PT_ARRAY_SIZE(names))
                pt__cfg_err(c, v->line, "expected rows, row, affected or key, got %s",
                            pt__cfg_quote(v, tmp, sizeof(tmp)));
            else
                st->result = (pt_sql_result_t)i;
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "page"))) {
        mark = pt__cfg_push(c, "page", 4);
        parse_page(c, v, st);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "not_found"))) {
        uint64_t x;
        mark = pt__cfg_push(c, "not_found", 9);
        if (st->result != PT_SQL_ROW)
            pt__cfg_err(c, v->line, "only for result: row");
        else if (!v->quoted && strcmp(v->value, "null") == 0)
            st->not_found_status = 0;
        else if (pt__cfg_uint(c, v, 200, 599, &x) == 0)
            st->not_found_status = (int)x;
        pt__cfg_pop(c, mark);
    }
}

/* Reads a mapping of names to expressions (templates when template) into *out. */
static void named_exprs(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *const *roots,
                        int template, int header_names, pt_named_expr_t **out, size_t *nout)
{
    size_t i;
    char tmp[300];
    if (n->kind != PT_YNODE_MAPPING) {
        pt__cfg_err(c, n->line, "expected a mapping of names to %s",
                    template ? "templates" : "expressions");
        return;
    }
    if (n->n > FIELDS_MAX) {
        pt__cfg_err(c, n->line, "more than %d entries", FIELDS_MAX);
        return;
    }
    *out = pt_arena_calloc(c->arena, sizeof(**out) * (n->n ? n->n : 1));
    if (*out == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return;
    }
    for (i = 0; i < n->n; i++) {
        const pt_ynode_t *k = n->pairs[i].key;
        size_t mark = pt__cfg_push(c, k->value, k->len);
        if (header_names && (!pt__cfg_is_token(k->value, k->len) || k->len > 256))
            pt__cfg_err(c, k->line, "invalid header name %s", pt__cfg_quote(k, tmp, sizeof(tmp)));
        (*out)[i].name = pt_arena_strndup(c->arena, k->value, k->len);
        (*out)[i].expr = expr_node(c, n->pairs[i].value, roots, template);
        pt__cfg_pop(c, mark);
    }
    *nout = n->n;
}

static void parse_map(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_step_def_t *st)
{
    const pt_ynode_t *v;
    size_t mark;
    st->kind = PT_STEP_MAP;
    if (pt__cfg_mapping(c, n, map_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "over"))) {
        mark = pt__cfg_push(c, "over", 4);
        st->over = expr_node(c, v, roots_request, 0);
        pt__cfg_pop(c, mark);
    }
    mark = pt__cfg_push(c, "fields", 6);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "fields")))
        pt__cfg_err(c, n->line, "required key is missing");
    else
        named_exprs(c, v, st->over ? roots_item : roots_request, 0, 0, &st->fields, &st->nfields);
    pt__cfg_pop(c, mark);
}

static void parse_step_respond(pt__cfg_ctx_t *c, const pt_ynode_t *n, pt_step_def_t *st)
{
    const pt_ynode_t *v;
    size_t mark;
    uint64_t x;
    st->kind = PT_STEP_RESPOND;
    st->status = 200;
    if (pt__cfg_mapping(c, n, respond_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "status"))) {
        mark = pt__cfg_push(c, "status", 6);
        if (pt__cfg_uint(c, v, 200, 599, &x) == 0)
            st->status = (int)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "headers"))) {
        mark = pt__cfg_push(c, "headers", 7);
        named_exprs(c, v, roots_request, 1, 1, &st->headers, &st->nheaders);
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "body")) != NULL) {
        mark = pt__cfg_push(c, "body", 4);
        st->body = expr_node(c, v, roots_request, 0);
        pt__cfg_pop(c, mark);
    }
}

/* `http: {method, url | connection + url, headers, body, timeout, max_response}` */
static void parse_http(pt__cfg_ctx_t *c, const pt_ynode_t *n, const pt_api_def_t *api,
                       pt_step_def_t *st)
{
    const pt_ynode_t *v;
    char tmp[300], *name = NULL;
    size_t mark, i;
    uint64_t x;

    st->kind = PT_STEP_HTTP;
    st->http_connection = -1;
    st->http_timeout_ms = 10000;
    st->http_max_response = 8u << 20;
    if (pt__cfg_mapping(c, n, http_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "method"))) {
        mark = pt__cfg_push(c, "method", 6);
        if (pt__cfg_string(c, v, &st->http_method) == 0) {
            if (!pt__cfg_is_token(st->http_method, v->len) || v->len > 32)
                pt__cfg_err(c, v->line, "expected an HTTP method such as GET or POST");
            for (i = 0; st->http_method[i] != '\0'; i++)
                if (st->http_method[i] >= 'a' && st->http_method[i] <= 'z')
                    st->http_method[i] = (char)(st->http_method[i] - 32);
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "connection"))) {
        mark = pt__cfg_push(c, "connection", 10);
        if (pt__cfg_string(c, v, &name) == 0) {
            for (i = 0; i < api->nconnections; i++)
                if (api->connections[i].name && strcmp(api->connections[i].name, name) == 0)
                    break;
            if (i == api->nconnections || api->connections[i].kind != PT_CONN_HTTP)
                pt__cfg_err(c, v->line, "no http(s) connection named %s in this API",
                            pt__cfg_quote(v, tmp, sizeof(tmp)));
            else
                st->http_connection = (int)i;
        }
        pt__cfg_pop(c, mark);
    }
    mark = pt__cfg_push(c, "url", 3);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "url"))) {
        pt__cfg_err(c, n->line, "required key is missing (%s)",
                    name ? "the path after the connection's base URL" : "the URL");
    } else if ((st->http_url = expr_node(c, v, roots_request, 2)) != NULL) {
        if (name == NULL && strncmp(v->value, "http://", 7) != 0 &&
            strncmp(v->value, "https://", 8) != 0)
            pt__cfg_err(c, v->line, "must start with http:// or https:// (or use a connection)");
        else if (name != NULL && v->value[0] != '/')
            pt__cfg_err(c, v->line, "with a connection, the url is a path starting with '/'");
    }
    pt__cfg_pop(c, mark);
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "headers"))) {
        mark = pt__cfg_push(c, "headers", 7);
        named_exprs(c, v, roots_request, 1, 1, &st->http_headers, &st->nhttp_headers);
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "body")) != NULL) {
        mark = pt__cfg_push(c, "body", 4);
        st->http_body = expr_node(c, v, roots_request, 0);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "timeout"))) {
        mark = pt__cfg_push(c, "timeout", 7);
        if (pt__cfg_duration(c, v, 1, 600000, &x) == 0)
            st->http_timeout_ms = (uint32_t)x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "xml_root"))) {
        mark = pt__cfg_push(c, "xml_root", 8);
        if (pt__cfg_string(c, v, &st->http_xml_root) == 0 && check_ident(st->http_xml_root) != 0)
            pt__cfg_err(c, v->line, "expected an element name ([A-Za-z_][A-Za-z0-9_]*)");
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "max_response"))) {
        mark = pt__cfg_push(c, "max_response", 12);
        if (pt__cfg_size(c, v, 1, 1u << 30, &x) == 0)
            st->http_max_response = x;
        pt__cfg_pop(c, mark);
    }
}

/* `script: {source | file, memory, instructions}` */
static void parse_script(pt__cfg_ctx_t *c, const pt_ynode_t *n, const pt_process_def_t *pd,
                         pt_step_def_t *st)
{
    const pt_ynode_t *src = pt_yaml_get(n, "source"), *file = pt_yaml_get(n, "file"), *v;
    char err[512];
    size_t mark;
    uint64_t x;

    st->kind = PT_STEP_SCRIPT;
    st->script_memory = 8u << 20;
    st->script_instructions = 10000000u;
    if (pt__cfg_mapping(c, n, script_keys) != 0)
        return;
    if (pt_yaml_is_null(src) == pt_yaml_is_null(file)) {
        pt__cfg_err(c, n->line, "give the Lua code as `source` (inline) or `file` (a path)");
        return;
    }
    if (!pt_yaml_is_null(src)) {
        mark = pt__cfg_push(c, "source", 6);
        if (pt__cfg_string(c, src, &st->script) == 0) {
            st->script_len = src->len;
            st->script_name = pt_arena_printf(c->arena, "=%s.%s", pd->name ? pd->name : "?",
                                              st->name ? st->name : "?");
        }
        pt__cfg_pop(c, mark);
    } else {
        char *path = NULL;
        mark = pt__cfg_push(c, "file", 4);
        if (pt__cfg_string(c, file, &path) == 0 &&
            (path = pt__cfg_def_path(c, file->line, path)) != NULL) {
            FILE *f = fopen(path, "rb");
            long len = -1;
            if (f != NULL && fseek(f, 0, SEEK_END) == 0)
                len = ftell(f);
            if (f == NULL || len < 0 || len > (1 << 20) || fseek(f, 0, SEEK_SET) != 0) {
                pt__cfg_err(c, file->line, "cannot read %s%s", path,
                            len > (1 << 20) ? ": larger than 1 MiB" : "");
            } else if ((st->script = pt_arena_alloc(c->arena, (size_t)len + 1)) == NULL ||
                       fread(st->script, 1, (size_t)len, f) != (size_t)len) {
                pt__cfg_err(c, file->line, "cannot read %s", path);
                st->script = NULL;
            } else {
                st->script[len] = '\0';
                st->script_len = (size_t)len;
                st->script_name = pt_arena_printf(c->arena, "@%s", path);
            }
            if (f != NULL)
                fclose(f);
        }
        pt__cfg_pop(c, mark);
    }
    if (st->script != NULL && st->script_name != NULL &&
        pt_lua_check(st->script_name, st->script, st->script_len, err, sizeof(err)) != 0) {
        mark = src ? pt__cfg_push(c, "source", 6) : pt__cfg_push(c, "file", 4);
        pt__cfg_err(c, (src ? src : file)->line, "the Lua code does not compile: %s", err);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "memory"))) {
        mark = pt__cfg_push(c, "memory", 6);
        if (pt__cfg_size(c, v, 256u << 10, 1u << 30, &x) == 0)
            st->script_memory = x;
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "instructions"))) {
        mark = pt__cfg_push(c, "instructions", 12);
        if (pt__cfg_uint(c, v, 1000, 100000000000ull, &x) == 0)
            st->script_instructions = x;
        pt__cfg_pop(c, mark);
    }
}

static void parse_step(pt__cfg_ctx_t *c, const pt_ynode_t *n, size_t index, const pt_api_def_t *api,
                       pt_process_def_t *pd, pt_step_def_t *st)
{
    static const char *const kinds[] = {"sql", "map", "respond", "script", "http"};
    const pt_ynode_t *v, *body = NULL;
    const char *kind = NULL;
    size_t mark, i, j;
    char tmp[300];

    st->line = n->line;
    if (pt__cfg_mapping(c, n, step_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "name"))) {
        mark = pt__cfg_push(c, "name", 4);
        if (pt__cfg_string(c, v, &st->name) == 0 && check_ident(st->name) != 0)
            pt__cfg_err(c, v->line, "invalid step name %s: expected [A-Za-z_][A-Za-z0-9_]*",
                        pt__cfg_quote(v, tmp, sizeof(tmp)));
        pt__cfg_pop(c, mark);
        for (j = 0; j < index; j++)
            if (pd->steps[j].name && st->name && strcmp(pd->steps[j].name, st->name) == 0)
                pt__cfg_err(c, v->line, "a step named %s comes before", st->name);
    } else {
        st->name = pt_arena_printf(c->arena, "step%zu", index + 1);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "when"))) {
        mark = pt__cfg_push(c, "when", 4);
        st->when = expr_node(c, v, roots_request, 0);
        pt__cfg_pop(c, mark);
    }
    for (i = 0; i < PT_ARRAY_SIZE(kinds); i++)
        if (!pt_yaml_is_null(pt_yaml_get(n, kinds[i]))) {
            if (kind != NULL) {
                pt__cfg_err(c, pt__cfg_key_line(n, kinds[i]),
                            "a step does one thing: %s and %s are both given", kind, kinds[i]);
                return;
            }
            kind = kinds[i];
            body = pt_yaml_get(n, kinds[i]);
        }
    if (kind == NULL) {
        pt__cfg_err(c, n->line, "a step needs one of: sql, map, respond, script, http");
        return;
    }
    mark = pt__cfg_push(c, kind, strlen(kind));
    if (strcmp(kind, "sql") == 0)
        parse_sql(c, body, api, st);
    else if (strcmp(kind, "map") == 0)
        parse_map(c, body, st);
    else if (strcmp(kind, "script") == 0)
        parse_script(c, body, pd, st);
    else if (strcmp(kind, "http") == 0)
        parse_http(c, body, api, st);
    else
        parse_step_respond(c, body, st);
    pt__cfg_pop(c, mark);
}

static void parse_process(pt__cfg_ctx_t *c, const pt_ynode_t *key, const pt_ynode_t *n,
                          const pt_api_def_t *api, pt_process_def_t *pd)
{
    const pt_ynode_t *v;
    char tmp[300];
    size_t mark, i, nsql_writes = 0;

    pd->line = key->line;
    memcpy(pd->error_status, error_defaults, sizeof(pd->error_status));
    if (check_ident(key->value) != 0)
        pt__cfg_err(c, key->line, "invalid process name %s: expected [A-Za-z_][A-Za-z0-9_]*",
                    pt__cfg_quote(key, tmp, sizeof(tmp)));
    pd->name = pt_arena_strndup(c->arena, key->value, key->len);
    if (pt__cfg_mapping(c, n, process_keys) != 0)
        return;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "mode"))) {
        char *m = NULL;
        mark = pt__cfg_push(c, "mode", 4);
        if (pt__cfg_string(c, v, &m) == 0) {
            if (strcmp(m, "low_latency") == 0)
                pd->low_latency = 1;
            else if (strcmp(m, "general") != 0)
                pt__cfg_err(c, v->line, "expected general or low_latency, got %s",
                            pt__cfg_quote(v, tmp, sizeof(tmp)));
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "on_error"))) {
        mark = pt__cfg_push(c, "on_error", 8);
        if (v->kind != PT_YNODE_MAPPING) {
            pt__cfg_err(c, v->line, "expected a mapping of error classes to statuses");
        } else {
            for (i = 0; i < v->n; i++) {
                const pt_ynode_t *k = v->pairs[i].key;
                size_t e;
                uint64_t x;
                size_t m2 = pt__cfg_push(c, k->value, k->len);
                for (e = 0; e < PT_PERR_COUNT; e++)
                    if (strcmp(error_names[e], k->value) == 0)
                        break;
                if (e == PT_PERR_COUNT)
                    pt__cfg_err(c, k->line,
                                "unknown error class (expected one of: not_found, "
                                "unique_violation, foreign_key_violation, not_null_violation, "
                                "check_violation, invalid_value, busy, database, expression, "
                                "http)");
                else if (pt__cfg_uint(c, v->pairs[i].value, 400, 599, &x) == 0)
                    pd->error_status[e] = (int)x;
                pt__cfg_pop(c, m2);
            }
        }
        pt__cfg_pop(c, mark);
    }
    mark = pt__cfg_push(c, "steps", 5);
    v = pt_yaml_get(n, "steps");
    if (pt_yaml_is_null(v)) {
        pt__cfg_err(c, n->line, "required key is missing");
    } else if (v->kind != PT_YNODE_SEQUENCE || v->n == 0) {
        pt__cfg_err(c, v->line, "expected a non-empty list of steps");
    } else if (v->n > STEPS_MAX) {
        pt__cfg_err(c, v->line, "more than %d steps", STEPS_MAX);
    } else if ((pd->steps = pt_arena_calloc(c->arena, sizeof(*pd->steps) * v->n)) == NULL) {
        pt__cfg_err(c, v->line, "out of memory");
    } else {
        pd->nsteps = v->n;
        for (i = 0; i < v->n; i++) {
            size_t m2 = pt__cfg_push_index(c, i);
            parse_step(c, v->items[i], i, api, pd, &pd->steps[i]);
            pt__cfg_pop(c, m2);
            if (pd->steps[i].kind == PT_STEP_SQL && pd->steps[i].result != PT_SQL_ROWS &&
                pd->steps[i].result != PT_SQL_ROW)
                nsql_writes++;
        }
    }
    pt__cfg_pop(c, mark);
    pd->transaction = nsql_writes > 1;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "transaction"))) {
        mark = pt__cfg_push(c, "transaction", 11);
        pt__cfg_bool(c, v, &pd->transaction);
        pt__cfg_pop(c, mark);
    }
}

void pt__cfg_service(pt__cfg_ctx_t *c, const pt_ynode_t *root, pt_api_def_t *api)
{
    const pt_ynode_t *v;
    size_t mark, i;

    if (!pt_yaml_is_null(v = pt_yaml_get(root, "connections"))) {
        mark = pt__cfg_push(c, "connections", 11);
        if (v->kind != PT_YNODE_MAPPING)
            pt__cfg_err(c, v->line, "expected a mapping of connection names to connections");
        else if ((api->connections = pt_arena_calloc(c->arena, sizeof(*api->connections) *
                                                                   (v->n ? v->n : 1))) == NULL)
            pt__cfg_err(c, v->line, "out of memory");
        else {
            api->nconnections = v->n;
            for (i = 0; i < v->n; i++) {
                const pt_ynode_t *k = v->pairs[i].key;
                size_t m2 = pt__cfg_push(c, k->value, k->len);
                parse_connection(c, k, v->pairs[i].value, &api->connections[i]);
                pt__cfg_pop(c, m2);
            }
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "schemas"))) {
        mark = pt__cfg_push(c, "schemas", 7);
        parse_schemas(c, v, api);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "headers"))) {
        mark = pt__cfg_push(c, "headers", 7);
        parse_headers_list(c, v, api);
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(root, "processes"))) {
        mark = pt__cfg_push(c, "processes", 9);
        if (v->kind != PT_YNODE_MAPPING)
            pt__cfg_err(c, v->line, "expected a mapping of process names to processes");
        else if ((api->processes = pt_arena_calloc(c->arena, sizeof(*api->processes) *
                                                                 (v->n ? v->n : 1))) == NULL)
            pt__cfg_err(c, v->line, "out of memory");
        else {
            api->nprocesses = v->n;
            for (i = 0; i < v->n; i++) {
                const pt_ynode_t *k = v->pairs[i].key;
                size_t m2 = pt__cfg_push(c, k->value, k->len);
                parse_process(c, k, v->pairs[i].value, api, &api->processes[i]);
                pt__cfg_pop(c, m2);
            }
        }
        pt__cfg_pop(c, mark);
    }
}

/* A YAML node as a JSON document in the arena (NULL reported). */
static pt_json_t *yaml_doc(pt__cfg_ctx_t *c, const pt_ynode_t *v)
{
    pt_buf_t b;
    pt_json_error_t jerr;
    pt_json_t *doc = NULL;
    pt_buf_init(&b, 0);
    if (pt__cfg_yaml_json(&b, v) != 0)
        pt__cfg_err(c, v->line, "out of memory");
    else if ((doc = pt_json_parse(c->arena, b.data, b.len, &PT_JSON_LIMITS_DEFAULT, &jerr)) == NULL)
        pt__cfg_err(c, v->line, "cannot read it: %s", jerr.message);
    pt_buf_free(&b);
    return doc;
}

/* `query: {name: type | {type, required, default, minimum, enum, ...}}` */
static void parse_query_params(pt__cfg_ctx_t *c, const pt_ynode_t *n, const pt_api_def_t *api,
                               pt_route_def_t *r)
{
    static const char *const types[] = {"string", "integer", "number", "boolean"};
    char err[512], tmp[300];
    size_t i, k;

    if (n->kind != PT_YNODE_MAPPING || n->n > 64) {
        pt__cfg_err(c, n->line, "expected a mapping of up to 64 parameter names to types");
        return;
    }
    if ((r->query = pt_arena_calloc(c->arena, sizeof(*r->query) * (n->n ? n->n : 1))) == NULL) {
        pt__cfg_err(c, n->line, "out of memory");
        return;
    }
    for (i = 0; i < n->n; i++) {
        const pt_ynode_t *key = n->pairs[i].key, *v = n->pairs[i].value;
        pt_query_param_t *q = &r->query[r->nquery];
        pt_json_t *doc, *t, *req;
        size_t mark = pt__cfg_push(c, key->value, key->len);
        q->name = pt_arena_strndup(c->arena, key->value, key->len);
        if (v->kind == PT_YNODE_SCALAR) {
            /* a bare type name */
            char *s = NULL;
            if (pt__cfg_string(c, v, &s) != 0) {
                pt__cfg_pop(c, mark);
                continue;
            }
            doc = pt_json_object(c->arena);
            if (doc == NULL || pt_json_object_set(c->arena, doc, "type", 4,
                                                  pt_json_string(c->arena, s, strlen(s))) != 0) {
                pt__cfg_err(c, v->line, "out of memory");
                pt__cfg_pop(c, mark);
                continue;
            }
        } else if ((doc = yaml_doc(c, v)) == NULL) {
            pt__cfg_pop(c, mark);
            continue;
        }
        /* `required` belongs to the parameter, not to its schema */
        if ((req = pt_json_get(doc, "required")) != NULL) {
            size_t m;
            if (req->type != PT_JSON_TRUE && req->type != PT_JSON_FALSE) {
                pt__cfg_err(c, v->line, "required: expected true or false");
                pt__cfg_pop(c, mark);
                continue;
            }
            q->required = req->type == PT_JSON_TRUE;
            for (m = 0; m < doc->u.obj.n; m++)
                if (strcmp(doc->u.obj.members[m].key, "required") == 0) {
                    memmove(&doc->u.obj.members[m], &doc->u.obj.members[m + 1],
                            sizeof(doc->u.obj.members[0]) * (doc->u.obj.n - m - 1));
                    doc->u.obj.n--;
                    break;
                }
        }
        t = pt_json_get(doc, "type");
        for (k = 0; t != NULL && t->type == PT_JSON_STRING && k < PT_ARRAY_SIZE(types); k++)
            if (strcmp(t->u.str.p, types[k]) == 0)
                break;
        if (t == NULL || t->type != PT_JSON_STRING || k == PT_ARRAY_SIZE(types)) {
            pt__cfg_err(c, v->line, "expected a type: string, integer, number or boolean, got %s",
                        pt__cfg_quote(v->kind == PT_YNODE_SCALAR ? v : key, tmp, sizeof(tmp)));
            pt__cfg_pop(c, mark);
            continue;
        }
        q->type = types[k];
        q->dflt = pt_json_get(doc, "default");
        if ((q->schema = pt_jschema_compile_one(c->arena, api->schemas, doc, err, sizeof(err))) ==
            NULL) {
            pt__cfg_err(c, v->line, "%s", err);
            pt__cfg_pop(c, mark);
            continue;
        }
        r->nquery++;
        pt__cfg_pop(c, mark);
    }
}

/* Reads key `key` of route n: the name of one of the API's schemas, or an
 * inline schema; *out stays NULL when absent or invalid (reported). */
static void route_schema(pt__cfg_ctx_t *c, const pt_ynode_t *n, const char *key,
                         const pt_api_def_t *api, const pt_jschema_t **out)
{
    const pt_ynode_t *v = pt_yaml_get(n, key);
    char *name = NULL, tmp[300], err[512];
    size_t mark;
    pt_json_t *doc;

    if (pt_yaml_is_null(v))
        return;
    mark = pt__cfg_push(c, key, strlen(key));
    if (v->kind == PT_YNODE_SCALAR) {
        if (pt__cfg_string(c, v, &name) == 0 &&
            (api->schemas == NULL || (*out = pt_jschema_get(api->schemas, name)) == NULL))
            pt__cfg_err(c, v->line, "no schema named %s in this API's schemas",
                        pt__cfg_quote(v, tmp, sizeof(tmp)));
    } else if ((doc = yaml_doc(c, v)) != NULL &&
               (*out = pt_jschema_compile_one(c->arena, api->schemas, doc, err, sizeof(err))) ==
                   NULL) {
        pt__cfg_err(c, v->line, "%s", err);
    }
    pt__cfg_pop(c, mark);
}

void pt__cfg_route_process(pt__cfg_ctx_t *c, const pt_ynode_t *n, const pt_api_def_t *api,
                           pt_route_def_t *r)
{
    const pt_ynode_t *v;
    char *name = NULL, tmp[300];
    size_t mark, i;

    r->kind = PT_DISPATCH_PROCESS;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "query"))) {
        mark = pt__cfg_push(c, "query", 5);
        parse_query_params(c, v, api, r);
        pt__cfg_pop(c, mark);
    }
    mark = pt__cfg_push(c, "process", 7);
    v = pt_yaml_get(n, "process");
    if (pt__cfg_string(c, v, &name) == 0) {
        for (i = 0; i < api->nprocesses; i++)
            if (api->processes[i].name && strcmp(api->processes[i].name, name) == 0)
                break;
        if (i == api->nprocesses)
            pt__cfg_err(c, v->line, "no process named %s in this API",
                        pt__cfg_quote(v, tmp, sizeof(tmp)));
        r->process = i;
    }
    pt__cfg_pop(c, mark);
    route_schema(c, n, "body_schema", api, &r->body_schema);
    route_schema(c, n, "response_schema", api, &r->response_schema);
}

/* `operations: [{name, process, input, output, description}]` and
 * `soap_namespace`: the SOAP operations of a service API. */
void pt__cfg_operations(pt__cfg_ctx_t *c, const pt_ynode_t *root, pt_api_def_t *api)
{
    static const char *const op_keys[] = {"name",   "process",     "input",
                                          "output", "description", NULL};
    const pt_ynode_t *v = pt_yaml_get(root, "operations"), *ns;
    char tmp[300];
    size_t mark, i, j;

    if (!pt_yaml_is_null(ns = pt_yaml_get(root, "soap_namespace"))) {
        mark = pt__cfg_push(c, "soap_namespace", 14);
        pt__cfg_string(c, ns, &api->soap_namespace);
        pt__cfg_pop(c, mark);
    } else if (api->name != NULL) {
        api->soap_namespace = pt_arena_printf(c->arena, "urn:portico:%s", api->name);
    }
    if (pt_yaml_is_null(v))
        return;
    mark = pt__cfg_push(c, "operations", 10);
    if (v->kind != PT_YNODE_SEQUENCE || v->n == 0 || v->n > 256) {
        pt__cfg_err(c, v->line, "expected a list of 1 to 256 operations");
        pt__cfg_pop(c, mark);
        return;
    }
    if ((api->soap_ops = pt_arena_calloc(c->arena, sizeof(*api->soap_ops) * v->n)) == NULL) {
        pt__cfg_err(c, v->line, "out of memory");
        pt__cfg_pop(c, mark);
        return;
    }
    for (i = 0; i < v->n; i++) {
        const pt_ynode_t *n = v->items[i], *x;
        pt_route_def_t *r = &api->soap_ops[api->nsoap_ops];
        char *pname = NULL;
        size_t m2 = pt__cfg_push_index(c, i), m3;
        r->line = n->line;
        r->kind = PT_DISPATCH_PROCESS;
        r->method = (char *)"POST";
        r->path = (char *)"/soap";
        r->process = api->nprocesses;
        if (pt__cfg_mapping(c, n, op_keys) != 0) {
            pt__cfg_pop(c, m2);
            continue;
        }
        m3 = pt__cfg_push(c, "name", 4);
        if (pt_yaml_is_null(x = pt_yaml_get(n, "name")))
            pt__cfg_err(c, n->line, "required key is missing (the operation's element name)");
        else if (pt__cfg_string(c, x, &r->name) == 0 && check_ident(r->name) != 0)
            pt__cfg_err(c, x->line,
                        "invalid operation name %s: an XML element name "
                        "[A-Za-z_][A-Za-z0-9_]*",
                        pt__cfg_quote(x, tmp, sizeof(tmp)));
        for (j = 0; r->name != NULL && j < api->nsoap_ops; j++)
            if (strcmp(api->soap_ops[j].name, r->name) == 0)
                pt__cfg_err(c, x->line, "operation %s is defined twice", r->name);
        pt__cfg_pop(c, m3);
        m3 = pt__cfg_push(c, "process", 7);
        if (pt_yaml_is_null(x = pt_yaml_get(n, "process"))) {
            pt__cfg_err(c, n->line, "required key is missing");
        } else if (pt__cfg_string(c, x, &pname) == 0) {
            for (j = 0; j < api->nprocesses; j++)
                if (api->processes[j].name && strcmp(api->processes[j].name, pname) == 0)
                    break;
            if (j == api->nprocesses)
                pt__cfg_err(c, x->line, "no process named %s in this API",
                            pt__cfg_quote(x, tmp, sizeof(tmp)));
            r->process = j;
        }
        pt__cfg_pop(c, m3);
        if (!pt_yaml_is_null(x = pt_yaml_get(n, "description"))) {
            m3 = pt__cfg_push(c, "description", 11);
            pt__cfg_string(c, x, &r->description);
            pt__cfg_pop(c, m3);
        }
        route_schema(c, n, "input", api, &r->body_schema);
        route_schema(c, n, "output", api, &r->response_schema);
        api->nsoap_ops++;
        pt__cfg_pop(c, m2);
    }
    pt__cfg_pop(c, mark);
}
