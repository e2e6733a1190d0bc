/*
 * auth.c - the `auth` policy: who is calling. Methods so far: API keys (a
 * header and/or a query parameter), matched against the SHA-256 hashes of
 * the keys of the node's `users:` (the keys themselves are never stored:
 * `portico user key` prints a new key once, with the hash to configure).
 * An optional `roles` list is the access rule: the user must have one of
 * them (403 otherwise). Failures are 401 with WWW-Authenticate, the same
 * answer whatever was wrong, and one audit log line (method, reason,
 * client address, user when known; never the credential).
 *
 *   policies:
 *     auth: {methods: [api_key], api_key: {header: X-API-Key, query: apikey}, roles: [ops]}
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "gateway/snapshot-t.h"
#include "event/worker-t.h"
#include "http/http.h"
#include "policy/policy.h"

typedef struct auth_s {
    char *header; /* lower-case; NULL = not from a header */
    char *query;  /* query parameter name; NULL = not from the query */
    char **roles; /* any of them grants access; NULL = any user */
    size_t nroles;
    char challenge[160]; /* WWW-Authenticate */
} auth_t;

static const char *const keys[] = {"methods", "api_key", "roles", NULL};
static const char *const api_key_keys[] = {"header", "query", NULL};

static void *parse(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    auth_t *a = pt_arena_calloc(c->arena, sizeof(*a));
    const pt_ynode_t *v, *k;
    size_t i, mark;
    char *s, tmp[300];
    int bad = 0;

    if (a == NULL || pt__cfg_mapping(c, n, keys) != 0)
        return NULL;
    mark = pt__cfg_push(c, "methods", 7);
    if ((v = pt_yaml_get(n, "methods")) == NULL || v->kind != PT_YNODE_SEQUENCE || v->n == 0) {
        pt__cfg_err(c, n->line, "expected a list of methods, e.g. methods: [api_key]");
        bad = 1;
    } else {
        for (i = 0; i < v->n; i++)
            if (pt__cfg_string(c, v->items[i], &s) == 0 && strcmp(s, "api_key") != 0) {
                pt__cfg_err(c, v->items[i]->line, "%s is not available yet (available: api_key)",
                            pt__cfg_quote(v->items[i], tmp, sizeof(tmp)));
                bad = 1;
            }
    }
    pt__cfg_pop(c, mark);
    a->header = "x-api-key";
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "api_key"))) {
        mark = pt__cfg_push(c, "api_key", 7);
        if (pt__cfg_mapping(c, v, api_key_keys) == 0) {
            a->header = NULL;
            if ((k = pt_yaml_get(v, "header")) != NULL && pt__cfg_string(c, k, &a->header) == 0) {
                if (!pt__cfg_is_token(a->header, strlen(a->header)))
                    pt__cfg_err(c, k->line, "expected a header name");
                for (s = a->header; *s; s++)
                    if (*s >= 'A' && *s <= 'Z')
                        *s = (char)(*s + 32);
            }
            if ((k = pt_yaml_get(v, "query")) != NULL)
                pt__cfg_string(c, k, &a->query);
            if (a->header == NULL && a->query == NULL)
                pt__cfg_err(c, v->line, "give header, query or both");
        }
        pt__cfg_pop(c, mark);
    }
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "roles"))) {
        mark = pt__cfg_push(c, "roles", 5);
        if (v->kind != PT_YNODE_SEQUENCE ||
            (a->roles = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) == NULL)
            pt__cfg_err(c, v->line, "expected a list of role names");
        else
            for (i = 0; i < v->n; i++)
                if (pt__cfg_string(c, v->items[i], &a->roles[a->nroles]) == 0)
                    a->nroles++;
        pt__cfg_pop(c, mark);
    }
    snprintf(a->challenge, sizeof(a->challenge), "APIKey realm=\"portico\"%s%.60s%s%s%.60s%s",
             a->header ? ", header=\"" : "", a->header ? a->header : "", a->header ? "\"" : "",
             a->query ? ", query=\"" : "", a->query ? a->query : "", a->query ? "\"" : "");
    return bad ? NULL : a;
}

/* The value of query parameter name (not decoded: keys are URL-safe). */
static int query_value(const pt_req_t *req, const char *name, const char **out, size_t *len)
{
    const char *q = req->query.p, *end = q + req->query.len;
    size_t nl = strlen(name);
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp != NULL ? amp : end;
        if ((size_t)(e - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            *out = q + nl + 1;
            *len = (size_t)(e - q - nl - 1);
            return 1;
        }
        q = e + 1;
    }
    return 0;
}

static int key_cmp(const void *k, const void *e)
{
    return memcmp(k, ((const pt_key_index_t *)e)->hash, 32);
}

static int refuse(const auth_t *a, pt_req_t *req, const char *reason, const pt_user_t *user)
{
    pt_header_kv_t h = {"WWW-Authenticate", (char *)a->challenge};
    pt_log_warn("auth: %.*s refused: method=api_key reason=%s client=%s%s%s",
                (int)req->request_id_len, req->request_id, reason, pt_http_peer(req),
                user ? " user=" : "", user ? user->name : "");
    if (user != NULL) {
        pt_http_problem(req, 403, "forbidden", "This user may not call this resource.", NULL, 0);
        return 1;
    }
    pt_http_problem(req, 401, "unauthorized", "Authentication is required.", &h, 1);
    return 1;
}

static int handle(const void *conf, pt_req_t *req)
{
    const auth_t *a = conf;
    const pt_config_t *cfg = req->snap->snap->config;
    const pt_str_t *h = a->header != NULL ? pt_http_header(req, a->header) : NULL;
    const char *key = NULL;
    size_t len = 0, i, k;
    unsigned char digest[crypto_hash_sha256_BYTES];
    const pt_key_index_t *hit;

    if (h != NULL) {
        key = h->p;
        len = h->len;
    } else if (a->query == NULL || !query_value(req, a->query, &key, &len)) {
        return refuse(a, req, "no-credentials", NULL);
    }
    if (len == 0 || len > 256)
        return refuse(a, req, "malformed", NULL);
    crypto_hash_sha256(digest, (const unsigned char *)key, len);
    hit =
        cfg->nkeys > 0 ? bsearch(digest, cfg->keys, cfg->nkeys, sizeof(*cfg->keys), key_cmp) : NULL;
    if (hit == NULL || sodium_memcmp(hit->hash, digest, sizeof(digest)) != 0)
        return refuse(a, req, "unknown-key", NULL);
    if (a->nroles > 0) {
        int ok = 0;
        for (i = 0; i < a->nroles && !ok; i++)
            for (k = 0; k < hit->user->nroles && !ok; k++)
                ok = strcmp(a->roles[i], hit->user->roles[k]) == 0;
        if (!ok)
            return refuse(a, req, "role", hit->user);
    }
    req->user = hit->user;
    return 0;
}

const pt_policy_type_t pt_policy_auth = {"auth", PT_ORDER_AUTH, parse, handle};
