/*
 * openapi.c - the OpenAPI document of a service API (see openapi.h).
 */
#include "protocol/openapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "policy/policy.h"
#include "process/jschema.h"

#define SERVER_MARK "\x01server\x01"

typedef struct gen_s {
    pt_arena_t a;
    int v30;
    int failed;
    pt_json_t *schemes; /* components.securitySchemes the operations named */
} gen_t;

/* Builders that remember a failure instead of checking each call. */
static pt_json_t *obj(gen_t *g)
{
    pt_json_t *o = pt_json_object(&g->a);
    if (o == NULL)
        g->failed = 1;
    return o;
}

static pt_json_t *arr(gen_t *g)
{
    pt_json_t *o = pt_json_array(&g->a);
    if (o == NULL)
        g->failed = 1;
    return o;
}

static pt_json_t *str(gen_t *g, const char *s)
{
    pt_json_t *v = pt_json_string(&g->a, s, strlen(s));
    if (v == NULL)
        g->failed = 1;
    return v;
}

static void set(gen_t *g, pt_json_t *o, const char *k, pt_json_t *v)
{
    if (o == NULL || v == NULL || pt_json_object_set(&g->a, o, k, strlen(k), v) != PT_OK)
        g->failed = 1;
}

static void add(gen_t *g, pt_json_t *a, pt_json_t *v)
{
    if (a == NULL || v == NULL || pt_json_array_add(&g->a, a, v) != PT_OK)
        g->failed = 1;
}

/* A schema document of the definition as OpenAPI wants it: "$ref":
 * "#/schemas/x" -> "#/components/schemas/x"; 3.1: `nullable: true` becomes a
 * "null" among the types; 3.0: a list of types keeps its first (and
 * nullable when "null" is among them). Copies; recursion bounded by the
 * schema nesting (64). */
static pt_json_t *convert(gen_t *g, const pt_json_t *s, int depth)
{
    pt_json_t *o;
    size_t i;
    int nullable = 0;
    const pt_json_t *type;

    if (s == NULL || depth > 64)
        return obj(g);
    if (s->type == PT_JSON_ARRAY) {
        o = arr(g);
        for (i = 0; i < s->u.arr.n; i++)
            add(g, o, convert(g, s->u.arr.items[i], depth + 1));
        return o;
    }
    if (s->type != PT_JSON_OBJECT)
        return (pt_json_t *)s;
    o = obj(g);
    type = pt_json_get(s, "type");
    nullable =
        pt_json_get(s, "nullable") != NULL && pt_json_get(s, "nullable")->type == PT_JSON_TRUE;
    for (i = 0; i < s->u.obj.n; i++) {
        const pt_json_member_t *m = &s->u.obj.members[i];
        if (strcmp(m->key, "$ref") == 0 && m->value->type == PT_JSON_STRING &&
            strncmp(m->value->u.str.p, "#/schemas/", 10) == 0) {
            char *ref = pt_arena_printf(&g->a, "#/components/schemas/%s", m->value->u.str.p + 10);
            set(g, o, "$ref", ref ? str(g, ref) : NULL);
        } else if (strcmp(m->key, "nullable") == 0) {
            if (g->v30)
                set(g, o, "nullable", (pt_json_t *)m->value);
        } else if (strcmp(m->key, "type") == 0) {
            continue; /* below */
        } else if (strcmp(m->key, "properties") == 0 && m->value->type == PT_JSON_OBJECT) {
            pt_json_t *p = obj(g);
            size_t k;
            for (k = 0; k < m->value->u.obj.n; k++)
                set(g, p, m->value->u.obj.members[k].key,
                    convert(g, m->value->u.obj.members[k].value, depth + 1));
            set(g, o, "properties", p);
        } else if (strcmp(m->key, "items") == 0) {
            set(g, o, "items", convert(g, m->value, depth + 1));
        } else {
            set(g, o, m->key, (pt_json_t *)m->value);
        }
    }
    if (type != NULL) {
        if (g->v30) {
            if (type->type == PT_JSON_ARRAY) {
                const pt_json_t *first = NULL;
                for (i = 0; i < type->u.arr.n; i++) {
                    const pt_json_t *t = type->u.arr.items[i];
                    if (t->type == PT_JSON_STRING && strcmp(t->u.str.p, "null") == 0)
                        set(g, o, "nullable", pt_json_bool(&g->a, 1));
                    else if (first == NULL)
                        first = t;
                }
                if (first != NULL)
                    set(g, o, "type", (pt_json_t *)first);
            } else {
                set(g, o, "type", (pt_json_t *)type);
            }
        } else if (nullable && type->type == PT_JSON_STRING) {
            pt_json_t *t = arr(g);
            add(g, t, (pt_json_t *)type);
            add(g, t, str(g, "null"));
            set(g, o, "type", t);
        } else {
            set(g, o, "type", (pt_json_t *)type);
        }
    }
    return o;
}

static pt_json_t *ref(gen_t *g, const char *kind, const char *name)
{
    pt_json_t *o = obj(g);
    char *r = pt_arena_printf(&g->a, "#/components/%s/%s", kind, name);
    set(g, o, "$ref", r ? str(g, r) : NULL);
    return o;
}

/* The schema of route body or response: a $ref to a named schema, or the
 * inline document. */
static pt_json_t *schema_of(gen_t *g, const pt_api_def_t *api, const pt_jschema_t *s)
{
    size_t i, n = pt_jschema_count(api->schemas), len;
    for (i = 0; i < n; i++)
        if (pt_jschema_at(api->schemas, i) == s) {
            const char *name = pt_jschema_name(api->schemas, i, &len);
            char *nm = pt_arena_strndup(&g->a, name, len);
            return nm ? ref(g, "schemas", nm) : NULL;
        }
    return convert(g, pt_jschema_doc(s), 0);
}

static pt_json_t *param(gen_t *g, const char *name, const char *in, int required, pt_json_t *schema,
                        const char *description)
{
    pt_json_t *p = obj(g);
    set(g, p, "name", str(g, name));
    set(g, p, "in", str(g, in));
    set(g, p, "required", pt_json_bool(&g->a, required));
    if (description != NULL)
        set(g, p, "description", str(g, description));
    set(g, p, "schema", schema);
    return p;
}

static pt_json_t *type_schema(gen_t *g, const char *type)
{
    pt_json_t *s = obj(g);
    set(g, s, "type", str(g, type));
    return s;
}

/* operationId: the route's name when it is an identifier, else method and
 * path words ("getCustomersById"), made unique with a number. */
static char *operation_id(gen_t *g, const pt_route_def_t *r, pt_json_t *seen)
{
    pt_buf_t b;
    const char *p;
    char *id;
    int up = 0, n = 2;
    size_t i;

    pt_buf_init(&b, 0);
    for (i = 0; r->method[i] != '\0'; i++)
        pt_buf_append_char(&b, r->method[i] == '*' ? 'a' : (char)(r->method[i] | 0x20));
    if (strcmp(r->method, "*") == 0)
        pt_buf_append_str(&b, "ny");
    for (p = r->path; *p != '\0'; p++) {
        char ch = *p;
        if (ch == '{') {
            pt_buf_append_str(&b, "By");
            up = 1;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))) {
            up = 1;
            continue;
        }
        pt_buf_append_char(&b, up && ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch);
        up = 0;
    }
    if (r->name != NULL && strchr(r->name, ' ') == NULL) {
        b.len = 0;
        pt_buf_append_str(&b, r->name);
    }
    id = pt_arena_strndup(&g->a, b.data ? b.data : "op", b.len);
    while (id != NULL && pt_json_get(seen, id) != NULL)
        id = pt_arena_printf(&g->a, "%.*s%d", (int)b.len, b.data ? b.data : "op", n++);
    pt_buf_free(&b);
    if (id == NULL) {
        g->failed = 1;
        return (char *)"op";
    }
    set(g, seen, id, pt_json_null(&g->a));
    return id;
}

static pt_json_t *problem_response(gen_t *g, const char *what)
{
    pt_json_t *r = obj(g), *c = obj(g), *mt = obj(g);
    set(g, r, "description", str(g, what));
    set(g, mt, "schema", ref(g, "schemas", "Problem"));
    set(g, c, "application/problem+json", mt);
    set(g, r, "content", c);
    return r;
}

static void add_errors(gen_t *g, pt_json_t *responses, const pt_route_def_t *r,
                       const pt_process_def_t *p)
{
    static const struct {
        const char *code, *name;
        int when; /* 0 always, 1 with a body, 2 when the process writes, 3 processes */
    } errs[] = {
        {"400", "BadRequest", 3},           {"404", "NotFound", 0},
        {"405", "MethodNotAllowed", 0},     {"409", "Conflict", 2},
        {"413", "PayloadTooLarge", 1},      {"415", "UnsupportedMediaType", 1},
        {"422", "UnprocessableContent", 2}, {"500", "InternalError", 3},
        {"503", "ServiceUnavailable", 3},   {"504", "GatewayTimeout", 3},
    };
    int writes = 0, body = r->body_schema != NULL ||
                           (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                            strcmp(r->method, "PATCH") == 0);
    size_t i;
    if (p != NULL)
        for (i = 0; i < p->nsteps; i++)
            writes |= p->steps[i].kind == PT_STEP_SQL &&
                      (p->steps[i].result == PT_SQL_AFFECTED || p->steps[i].result == PT_SQL_KEY);
    for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        if ((errs[i].when == 1 && (!body || p == NULL)) || (errs[i].when == 2 && !writes) ||
            (errs[i].when == 3 && p == NULL))
            continue;
        if (pt_json_get(responses, errs[i].code) == NULL)
            set(g, responses, errs[i].code, ref(g, "responses", errs[i].name));
    }
}

/* Success responses of a process route: the statuses of its respond steps,
 * else 200 (with the response schema when declared). */
static void add_success(gen_t *g, pt_json_t *responses, const pt_api_def_t *api,
                        const pt_route_def_t *r, const pt_process_def_t *p)
{
    size_t i;
    int any = 0;
    for (i = 0; i < p->nsteps; i++) {
        const pt_step_def_t *st = &p->steps[i];
        char code[16];
        pt_json_t *resp;
        if (st->kind != PT_STEP_RESPOND || st->status >= 400)
            continue;
        snprintf(code, sizeof(code), "%d", st->status);
        if (pt_json_get(responses, code) != NULL)
            continue;
        resp = obj(g);
        set(g, resp, "description", str(g, st->status == 201 ? "Created" : "Success"));
        if (st->body != NULL && st->status != 204) {
            pt_json_t *c = obj(g), *mt = obj(g);
            set(g, mt, "schema",
                r->response_schema ? schema_of(g, api, r->response_schema) : obj(g));
            set(g, c, "application/json", mt);
            set(g, resp, "content", c);
        }
        set(g, responses, code, resp);
        any = 1;
    }
    if (!any || p->steps[p->nsteps - 1].kind != PT_STEP_RESPOND) {
        pt_json_t *resp = obj(g), *c = obj(g), *mt = obj(g), *mx = obj(g);
        set(g, resp, "description", str(g, "The process's result"));
        set(g, mt, "schema", r->response_schema ? schema_of(g, api, r->response_schema) : obj(g));
        set(g, c, "application/json", mt);
        set(g, mx, "schema", obj(g));
        set(g, c, "application/xml", mx);
        set(g, resp, "content", c);
        if (pt_json_get(responses, "200") == NULL)
            set(g, responses, "200", resp);
    }
}

/* Names a security scheme of components (defining it the first time). */
static void scheme(gen_t *g, pt_json_t *security, const char *name, const char *type, const char *a,
                   const char *b)
{
    pt_json_t *alt = obj(g);
    if (pt_json_get(g->schemes, name) == NULL) {
        pt_json_t *s = obj(g);
        set(g, s, "type", str(g, type));
        if (strcmp(type, "apiKey") == 0) {
            set(g, s, "in", str(g, a));
            set(g, s, "name", str(g, b));
        } else if (strcmp(type, "http") == 0) {
            set(g, s, "scheme", str(g, a));
            if (b != NULL)
                set(g, s, "bearerFormat", str(g, b));
        }
        set(g, g->schemes, name, s);
    }
    set(g, alt, name, arr(g));
    add(g, security, alt);
}

/* What the route's policies add: the security requirements (any one of the
 * methods the auth policy takes) and the answers of the policies (401, 403,
 * 413, 429, 503). */
static void add_policy_answers(gen_t *g, pt_json_t *op, pt_json_t *responses,
                               const pt_policy_list_t *chain)
{
    pt_auth_info_t ai;
    int auth = pt_policy_auth_info(chain, &ai);
    if (auth) {
        pt_json_t *security = arr(g);
        if (ai.methods & PT_AUTH_API_KEY) {
            if (ai.header != NULL)
                scheme(g, security, "apiKeyHeader", "apiKey", "header", ai.header);
            if (ai.query != NULL)
                scheme(g, security, "apiKeyQuery", "apiKey", "query", ai.query);
        }
        if (ai.methods & PT_AUTH_BASIC)
            scheme(g, security, "basicAuth", "http", "basic", NULL);
        if (ai.methods & PT_AUTH_JWT)
            scheme(g, security, "bearerAuth", "http", "bearer", "JWT");
        if ((ai.methods & PT_AUTH_CLIENT_CERT) && !g->v30) /* 3.1 only */
            scheme(g, security, "mutualTLS", "mutualTLS", NULL, NULL);
        if (ai.methods & PT_AUTH_CERT_HEADER)
            scheme(g, security, "clientCertificateHeader", "apiKey", "header", ai.cert_header);
        set(g, op, "security", security);
        if (pt_json_get(responses, "401") == NULL)
            set(g, responses, "401", ref(g, "responses", "Unauthorized"));
    }
    if ((auth || pt_policy_has(chain, "ip_filter")) && pt_json_get(responses, "403") == NULL)
        set(g, responses, "403", ref(g, "responses", "Forbidden"));
    if (pt_policy_has(chain, "body_limit") && pt_json_get(responses, "413") == NULL)
        set(g, responses, "413", ref(g, "responses", "PayloadTooLarge"));
    if (pt_policy_has(chain, "rate_limit") && pt_json_get(responses, "429") == NULL)
        set(g, responses, "429", ref(g, "responses", "TooManyRequests"));
    if (pt_policy_has(chain, "concurrency") && pt_json_get(responses, "503") == NULL)
        set(g, responses, "503", ref(g, "responses", "ServiceUnavailable"));
}

static pt_json_t *operation(gen_t *g, const pt_api_def_t *api, const pt_route_def_t *r,
                            pt_json_t *seen, pt_json_t *tags)
{
    const pt_process_def_t *p = r->kind == PT_DISPATCH_PROCESS && r->process < api->nprocesses
                                    ? &api->processes[r->process]
                                    : NULL;
    pt_json_t *op = obj(g), *params = arr(g), *responses = obj(g), *tl = arr(g);
    const char *s;
    char tag[128];
    size_t i, n = 0;

    set(g, op, "operationId", str(g, operation_id(g, r, seen)));
    set(g, op, "summary", str(g, r->name ? r->name : r->path));
    if (r->description != NULL)
        set(g, op, "description", str(g, r->description));
    /* the resource: the first static segment */
    for (s = r->path; *s == '/'; s++)
        ;
    while (s[n] != '\0' && s[n] != '/' && s[n] != '{' && n < sizeof(tag) - 1) {
        tag[n] = s[n];
        n++;
    }
    tag[n] = '\0';
    if (n == 0)
        snprintf(tag, sizeof(tag), "%s", api->name);
    add(g, tl, str(g, tag));
    set(g, op, "tags", tl);
    if (pt_json_get(tags, tag) == NULL)
        set(g, tags, tag, pt_json_null(&g->a));
    /* parameters */
    for (s = r->path; (s = strchr(s, '{')) != NULL; s++) {
        const char *e = strchr(s, '}');
        char *name = e ? pt_arena_strndup(&g->a, s + 1, (size_t)(e - s - 1)) : NULL;
        if (name != NULL)
            add(g, params, param(g, name, "path", 1, type_schema(g, "string"), NULL));
    }
    for (i = 0; i < r->nquery; i++)
        add(g, params,
            param(g, r->query[i].name, "query", r->query[i].required,
                  convert(g, pt_jschema_doc(r->query[i].schema), 0), NULL));
    for (i = 0; p != NULL && i < p->nsteps; i++) {
        const pt_step_def_t *st = &p->steps[i];
        pt_json_t *lim;
        size_t k;
        int declared_limit = 0, declared_cursor = 0;
        if (st->npage_by == 0)
            continue;
        for (k = 0; k < r->nquery; k++) {
            declared_limit |= strcmp(r->query[k].name, "limit") == 0;
            declared_cursor |= strcmp(r->query[k].name, "cursor") == 0;
        }
        if (!declared_limit) {
            lim = type_schema(g, "integer");
            set(g, lim, "minimum", pt_json_int(&g->a, 1));
            set(g, lim, "maximum", pt_json_int(&g->a, st->page_max_limit));
            set(g, lim, "default", pt_json_int(&g->a, st->page_default_limit));
            add(g, params, param(g, "limit", "query", 0, lim, "Rows per page"));
        }
        if (!declared_cursor)
            add(g, params,
                param(g, "cursor", "query", 0, type_schema(g, "string"),
                      "The opaque cursor of the next page (from the Link header)"));
        if (st->npage_sort > 0) {
            pt_json_t *sc = type_schema(g, "string"), *en = arr(g);
            for (k = 0; k < st->npage_sort; k++) {
                char *d = pt_arena_printf(&g->a, "-%s", st->page_sort[k]);
                add(g, en, str(g, st->page_sort[k]));
                add(g, en, d ? str(g, d) : NULL);
            }
            set(g, sc, "enum", en);
            add(g, params, param(g, "sort", "query", 0, sc, "Sort column ('-' for descending)"));
        }
        break;
    }
    for (i = 0; i < r->nmatch_headers; i++) {
        pt_json_t *hs = type_schema(g, "string"), *en = arr(g);
        add(g, en, str(g, r->match_headers[i].value));
        set(g, hs, "enum", en);
        add(g, params, param(g, r->match_headers[i].name, "header", 1, hs, "Routing header"));
    }
    for (i = 0; p != NULL && i < api->ncustom_headers; i++) {
        size_t k;
        for (k = 0; k < r->nmatch_headers; k++)
            if (strcmp(r->match_headers[k].name, api->custom_headers[i]) == 0)
                break;
        if (k == r->nmatch_headers)
            add(g, params,
                param(g, api->custom_headers[i], "header", 0, type_schema(g, "string"), NULL));
    }
    if (params != NULL && params->u.arr.n > 0)
        set(g, op, "parameters", params);
    /* the request body */
    if (r->body_schema != NULL) {
        pt_json_t *rb = obj(g), *c = obj(g), *mj = obj(g), *mx = obj(g);
        set(g, rb, "required", pt_json_bool(&g->a, 1));
        set(g, mj, "schema", schema_of(g, api, r->body_schema));
        set(g, mx, "schema", schema_of(g, api, r->body_schema));
        set(g, c, "application/json", mj);
        set(g, c, "application/xml", mx);
        set(g, rb, "content", c);
        set(g, op, "requestBody", rb);
    }
    /* the responses */
    if (p != NULL) {
        add_success(g, responses, api, r, p);
    } else {
        char code[16];
        pt_json_t *resp = obj(g);
        snprintf(code, sizeof(code), "%d", r->respond.status);
        set(g, resp, "description", str(g, "The route's static response"));
        if (r->respond.body_len > 0 && r->respond.content_type != NULL) {
            pt_json_t *c = obj(g), *mt = obj(g);
            set(g, mt, "schema", obj(g));
            set(g, c, r->respond.content_type, mt);
            set(g, resp, "content", c);
        }
        set(g, responses, code, resp);
    }
    add_errors(g, responses, r, p);
    add_policy_answers(g, op, responses, &r->chain);
    set(g, op, "responses", responses);
    return op;
}

static pt_json_t *components(gen_t *g, const pt_api_def_t *api)
{
    static const struct {
        const char *name, *what;
    } errs[] = {{"BadRequest", "The request is malformed or does not match its schema"},
                {"NotFound", "No such resource or route"},
                {"MethodNotAllowed", "The path does not take this method"},
                {"Conflict", "A unique constraint refused the change"},
                {"PayloadTooLarge", "The body is larger than the node accepts"},
                {"UnsupportedMediaType", "The body's media type is not accepted"},
                {"UnprocessableContent", "A constraint (foreign key, not null, check) refused it"},
                {"InternalError", "The process failed"},
                {"ServiceUnavailable", "Busy: try again (Retry-After)"},
                {"GatewayTimeout", "The process ran out of time"},
                {"Unauthorized", "Authentication is required (WWW-Authenticate names the ways)"},
                {"Forbidden", "This caller may not call this operation"},
                {"TooManyRequests", "The rate limit is exceeded (Retry-After, RateLimit-*)"}};
    pt_json_t *c = obj(g), *schemas = obj(g), *responses = obj(g), *problem = obj(g),
              *props = obj(g), *violations = obj(g), *vitem = obj(g), *vprops = obj(g);
    size_t i, n = pt_jschema_count(api->schemas), len;

    for (i = 0; i < n; i++) {
        const char *name = pt_jschema_name(api->schemas, i, &len);
        char *nm = pt_arena_strndup(&g->a, name, len);
        if (nm != NULL)
            set(g, schemas, nm, convert(g, pt_jschema_doc(pt_jschema_at(api->schemas, i)), 0));
    }
    /* RFC 9457 problem details, with the node's extensions */
    set(g, problem, "type", str(g, "object"));
    set(g, props, "type", type_schema(g, "string"));
    set(g, props, "title", type_schema(g, "string"));
    set(g, props, "status", type_schema(g, "integer"));
    set(g, props, "detail", type_schema(g, "string"));
    set(g, props, "instance", type_schema(g, "string"));
    set(g, props, "request_id", type_schema(g, "string"));
    set(g, vprops, "pointer", type_schema(g, "string"));
    set(g, vprops, "message", type_schema(g, "string"));
    set(g, vitem, "type", str(g, "object"));
    set(g, vitem, "properties", vprops);
    set(g, violations, "type", str(g, "array"));
    set(g, violations, "items", vitem);
    set(g, props, "errors", violations);
    set(g, problem, "properties", props);
    {
        pt_json_t *req = arr(g);
        add(g, req, str(g, "type"));
        add(g, req, str(g, "title"));
        add(g, req, str(g, "status"));
        set(g, problem, "required", req);
    }
    if (pt_json_get(schemas, "Problem") == NULL)
        set(g, schemas, "Problem", problem);
    for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        set(g, responses, errs[i].name, problem_response(g, errs[i].what));
    set(g, c, "schemas", schemas);
    set(g, c, "responses", responses);
    if (g->schemes != NULL && g->schemes->u.obj.n > 0)
        set(g, c, "securitySchemes", g->schemes);
    return c;
}

/* A template as OpenAPI writes it: "/" for the base path itself. */
static pt_json_t *path_item(gen_t *g, pt_json_t *paths, const char *path)
{
    pt_json_t *it = pt_json_get(paths, path);
    if (it == NULL) {
        it = obj(g);
        set(g, paths, path, it);
    }
    return it;
}

/* Writes doc as JSON into out's two pieces around the server mark. */
static int split(const pt_json_t *doc, pt_contract_t *out, char *err, size_t errlen)
{
    static const char mark_text[] = "\\u0001server\\u0001";
    const char *mark;
    pt_buf_t b;
    pt_buf_init(&b, 0);
    if (pt_json_write(&b, doc) != PT_OK || b.data == NULL ||
        (mark = strstr(b.data, mark_text)) == NULL) {
        pt_buf_free(&b);
        snprintf(err, errlen, "out of memory rendering the OpenAPI document");
        return -1;
    }
    out->head_len = (size_t)(mark - b.data);
    out->tail_len = b.len - out->head_len - (sizeof(mark_text) - 1);
    out->head = malloc(out->head_len + 1);
    out->tail = malloc(out->tail_len + 1);
    if (out->head == NULL || out->tail == NULL) {
        pt_buf_free(&b);
        pt_contract_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(out->head, b.data, out->head_len);
    memcpy(out->tail, mark + sizeof(mark_text) - 1, out->tail_len);
    out->head[out->head_len] = out->tail[out->tail_len] = '\0';
    pt_buf_free(&b);
    return 0;
}

int pt_openapi_render(const pt_api_def_t *api, int v30, pt_contract_t *out, char *err,
                      size_t errlen)
{
    gen_t g;
    pt_json_t *doc, *info, *servers, *server, *paths, *seen, *tags, *tagl;
    size_t i;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    memset(&g, 0, sizeof(g));
    pt_arena_init(&g.a, NULL);
    g.v30 = v30;
    g.schemes = obj(&g);
    doc = obj(&g);
    info = obj(&g);
    servers = arr(&g);
    server = obj(&g);
    paths = obj(&g);
    seen = obj(&g);
    tags = obj(&g);
    set(&g, doc, "openapi", str(&g, v30 ? "3.0.3" : "3.1.0"));
    set(&g, info, "title", str(&g, api->title ? api->title : api->name));
    set(&g, info, "version", str(&g, api->version ? api->version : "1"));
    if (api->description != NULL)
        set(&g, info, "description", str(&g, api->description));
    if (api->terms_of_service != NULL)
        set(&g, info, "termsOfService", str(&g, api->terms_of_service));
    if (api->contact_name || api->contact_email || api->contact_url) {
        pt_json_t *ct = obj(&g);
        if (api->contact_name)
            set(&g, ct, "name", str(&g, api->contact_name));
        if (api->contact_email)
            set(&g, ct, "email", str(&g, api->contact_email));
        if (api->contact_url)
            set(&g, ct, "url", str(&g, api->contact_url));
        set(&g, info, "contact", ct);
    }
    if (api->license_name != NULL) {
        pt_json_t *li = obj(&g);
        set(&g, li, "name", str(&g, api->license_name));
        if (api->license_url)
            set(&g, li, "url", str(&g, api->license_url));
        set(&g, info, "license", li);
    }
    set(&g, doc, "info", info);
    set(&g, server, "url", str(&g, SERVER_MARK));
    add(&g, servers, server);
    set(&g, doc, "servers", servers);
    for (i = 0; i < api->nroutes; i++) {
        const pt_route_def_t *r = &api->routes[i];
        const char *method = strcmp(r->method, "*") == 0 ? NULL : r->method;
        char lower[16];
        size_t k;
        pt_json_t *item;
        if (r->method == NULL || r->path == NULL)
            continue;
        item = path_item(&g, paths, r->path);
        if (method == NULL) {
            /* "*": documented as the methods OpenAPI knows */
            static const char *const all[] = {"get", "put", "post", "delete", "patch"};
            for (k = 0; k < 5; k++)
                if (pt_json_get(item, all[k]) == NULL)
                    set(&g, item, all[k], operation(&g, api, r, seen, tags));
            continue;
        }
        for (k = 0; method[k] != '\0' && k < sizeof(lower) - 1; k++)
            lower[k] = (char)(method[k] | 0x20);
        lower[k] = '\0';
        if (strcmp(lower, "get") && strcmp(lower, "put") && strcmp(lower, "post") &&
            strcmp(lower, "delete") && strcmp(lower, "patch") && strcmp(lower, "head") &&
            strcmp(lower, "options") && strcmp(lower, "trace"))
            continue; /* an extension method: OpenAPI has no place for it */
        if (pt_json_get(item, lower) != NULL)
            continue; /* routing-header variants: the first documents the operation */
        set(&g, item, lower, operation(&g, api, r, seen, tags));
    }
    set(&g, doc, "paths", paths);
    tagl = arr(&g);
    for (i = 0; tags != NULL && i < tags->u.obj.n; i++) {
        pt_json_t *t = obj(&g);
        set(&g, t, "name", str(&g, tags->u.obj.members[i].key));
        add(&g, tagl, t);
    }
    set(&g, doc, "tags", tagl);
    set(&g, doc, "components", components(&g, api));
    if (g.failed) {
        snprintf(err, errlen, "out of memory rendering the OpenAPI document");
        goto out;
    }
    rc = split(doc, out, err, errlen);
out:
    pt_arena_reset(&g.a);
    return rc;
}

int pt_openapi_import(const pt_json_t *doc, pt_contract_t *out, char *err, size_t errlen)
{
    gen_t g;
    pt_json_t *copy, *servers, *server;
    size_t i;
    int rc = -1, placed = 0;

    memset(out, 0, sizeof(*out));
    memset(&g, 0, sizeof(g));
    pt_arena_init(&g.a, NULL);
    copy = obj(&g);
    servers = arr(&g);
    server = obj(&g);
    set(&g, server, "url", str(&g, SERVER_MARK));
    add(&g, servers, server);
    for (i = 0; doc->type == PT_JSON_OBJECT && i < doc->u.obj.n; i++) {
        const pt_json_member_t *m = &doc->u.obj.members[i];
        if (strcmp(m->key, "servers") == 0) {
            set(&g, copy, "servers", servers); /* the gateway, not the upstream */
            placed = 1;
            continue;
        }
        set(&g, copy, m->key, m->value);
        if (!placed && strcmp(m->key, "info") == 0) {
            set(&g, copy, "servers", servers);
            placed = 1;
        }
    }
    if (!placed)
        set(&g, copy, "servers", servers);
    if (g.failed)
        snprintf(err, errlen, "out of memory rendering the OpenAPI document");
    else
        rc = split(copy, out, err, errlen);
    pt_arena_reset(&g.a);
    return rc;
}

void pt_contract_free(pt_contract_t *c)
{
    free(c->head);
    free(c->tail);
    c->head = c->tail = NULL;
}
