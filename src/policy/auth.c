/*
 * auth.c - the `auth` policy: who is calling, and may they.
 *
 * Methods (any several at once; the credential the request presents picks
 * the method, in this order):
 *   client_cert  the TLS client certificate the listener verified, mapped
 *                to a user by subject or SHA-256 fingerprint (`certificates`);
 *   cert_header  a URL-encoded PEM certificate in a header set by a trusted
 *                proxy that terminated TLS (refused from anyone else);
 *   basic        Authorization: Basic, against the user's Argon2id hash. The
 *                verification runs on the auth pool, off the I/O loop (the
 *                request is suspended meanwhile); a successful one is
 *                remembered per worker for cache_ttl, keyed by a keyed hash
 *                of the configuration generation, name and password;
 *   jwt          Authorization: Bearer, a JWT verified against keys from PEM
 *                files, a shared secret, a JWK Set file or URL (jwt.c); the
 *                user is the token's (user_claim), the roles its roles_claim;
 *   api_key      a header and/or a query parameter, matched against the
 *                SHA-256 hashes of the users' keys.
 * Then access: the user's own IP allow list (present and empty: nothing is
 * allowed), its `apis`, and the policy's `roles` (any of them): 403.
 * Failures are 401 with one WWW-Authenticate per configured method, the same
 * answer whatever was wrong, and one audit log line (method, reason code,
 * client address, user when known; never the credential).
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "config/upstream-i.h"
#include "core/log.h"
#include "event/worker-t.h"
#include "event/worker.h"
#include "gateway/snapshot-t.h"
#include "http/http.h"
#include "policy/jwt.h"
#include "policy/policy.h"
#include "process/pool.h"

extern const pt_policy_type_t pt_policy_auth;

enum {
    M_API_KEY = PT_AUTH_API_KEY,
    M_BASIC = PT_AUTH_BASIC,
    M_JWT = PT_AUTH_JWT,
    M_CERT = PT_AUTH_CLIENT_CERT,
    M_CERT_HEADER = PT_AUTH_CERT_HEADER
};

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {{"api_key", M_API_KEY},
               {"basic", M_BASIC},
               {"jwt", M_JWT},
               {"client_cert", M_CERT},
               {"cert_header", M_CERT_HEADER}};

typedef struct jwt_conf_s {
    pt_jwt_keyset_t *keys;    /* keys, secret, jwks_file (freed with the configuration) */
    pt_jwks_source_t *source; /* jwks_url */
    unsigned algs;
    pt_jwt_rules_t rules;
    char **user_claims;
    size_t nuser_claims;
    char *roles_claim;
} jwt_conf_t;

typedef struct auth_s {
    unsigned methods;
    char *header; /* api_key: lower-case; NULL = not from a header */
    char *query;  /* api_key: query parameter name; NULL = not from the query */
    uint64_t cache_ttl_ms;
    jwt_conf_t jwt;
    char *cert_header;   /* lower-case */
    X509_STORE *cert_ca; /* cert_header certificates are verified against it when set */
    char **roles;        /* any of them grants access; NULL = any user */
    size_t nroles;
    int protect_contracts; /* contracts: protected (the OpenAPI document and WSDL need
                              credentials too; default: public) */
    int hide; /* -1: default (API keys, passwords and certificate headers hidden, bearer tokens
                 passed on); 0 or 1: `hide_credentials` */
    pt_header_kv_t challenges[3];
    size_t nchallenges;
} auth_t;

static const char *const keys[] = {"methods", "api_key",          "basic",     "jwt", "cert_header",
                                   "roles",   "hide_credentials", "contracts", NULL};
static const char *const api_key_keys[] = {"header", "query", NULL};
static const char *const basic_keys[] = {"cache_ttl", NULL};
static const char *const jwt_keys[] = {
    "keys",     "secret", "jwks_file",  "jwks_url",    "jwks_refresh", "algorithms", "issuer",
    "audience", "leeway", "user_claim", "roles_claim", "require_exp",  NULL};
static const char *const cert_header_keys[] = {"header", "ca_file", NULL};

/* ------------------------------------------------------------ configuration */

static void free_keyset(void *ks)
{
    pt_jwt_keyset_free(ks);
}

static void free_store(void *st)
{
    X509_STORE_free(st);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= 1024 * 1024 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

static int strings(pt__cfg_ctx_t *c, const pt_ynode_t *v, char ***out, size_t *n)
{
    size_t i;
    if (v->kind == PT_YNODE_SCALAR) { /* one value */
        if ((*out = pt_arena_calloc(c->arena, sizeof(char *) * 2)) == NULL ||
            pt__cfg_string(c, v, &(*out)[0]) != 0)
            return -1;
        *n = 1;
        return 0;
    }
    if (v->kind != PT_YNODE_SEQUENCE || v->n == 0 ||
        (*out = pt_arena_calloc(c->arena, sizeof(char *) * (v->n + 1))) == NULL) {
        pt__cfg_err(c, v->line, "expected a list");
        return -1;
    }
    for (i = 0; i < v->n; i++)
        if (pt__cfg_string(c, v->items[i], &(*out)[*n]) == 0)
            (*n)++;
    return *n == v->n ? 0 : -1;
}

static int parse_jwt(pt__cfg_ctx_t *c, const pt_ynode_t *n, jwt_conf_t *j)
{
    const pt_ynode_t *v;
    char err[256], **list = NULL, *s;
    size_t i, nlist = 0, mark;
    uint64_t u;
    int bad = 0;

    j->algs = PT_JWT_RS256 | PT_JWT_RS384 | PT_JWT_RS512 | PT_JWT_ES256 | PT_JWT_ES384;
    j->rules.leeway_s = 60;
    j->rules.require_exp = 1;
    if (pt__cfg_mapping(c, n, jwt_keys) != 0)
        return -1;
    if ((v = pt_yaml_get(n, "keys")) != NULL) {
        mark = pt__cfg_push(c, "keys", 4);
        if (strings(c, v, &list, &nlist) == 0)
            for (i = 0; i < nlist; i++) {
                char *path = pt__cfg_path(c, v->line, list[i]), *pem;
                size_t len = 0;
                if (path == NULL || (pem = read_file(path, &len)) == NULL) {
                    pt__cfg_err(c, v->line, "cannot read %s", list[i]);
                    bad = 1;
                    continue;
                }
                if (pt_jwt_keyset_add_pem(&j->keys, pem, len, NULL, err, sizeof(err)) != 0) {
                    pt__cfg_err(c, v->line, "%s: %s", list[i], err);
                    bad = 1;
                }
                free(pem);
            }
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "secret")) != NULL) {
        char shown[128];
        mark = pt__cfg_push(c, "secret", 6);
        if (pt__cfg_secret(c, v, &s, shown, sizeof(shown)) == 0) {
            if (shown[0] == '\0') {
                pt__cfg_err(c, v->line,
                            "give the secret through ${env:NAME} or ${file:/path}, not in the "
                            "configuration itself");
                bad = 1;
            } else if (pt_jwt_keyset_add_secret(&j->keys, (const unsigned char *)s, strlen(s), NULL,
                                                err, sizeof(err)) != 0) {
                pt__cfg_err(c, v->line, "%s: %s", shown, err);
                bad = 1;
            } else {
                j->algs |= PT_JWT_HS256 | PT_JWT_HS384 | PT_JWT_HS512;
            }
        } else {
            bad = 1;
        }
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "jwks_file")) != NULL) {
        mark = pt__cfg_push(c, "jwks_file", 9);
        if (pt__cfg_string(c, v, &s) == 0) {
            char *path = pt__cfg_path(c, v->line, s), *doc;
            size_t len = 0;
            pt_jwt_keyset_t *ks;
            if (path == NULL || (doc = read_file(path, &len)) == NULL) {
                pt__cfg_err(c, v->line, "cannot read %s", s);
                bad = 1;
            } else {
                if ((ks = pt_jwt_keyset_jwks(doc, len, err, sizeof(err))) == NULL) {
                    pt__cfg_err(c, v->line, "%s: %s", s, err);
                    bad = 1;
                } else {
                    if (j->keys == NULL) {
                        j->keys = ks;
                    } else {
                        pt__cfg_err(c, v->line,
                                    "give jwks_file alone, or keys and secret without it");
                        pt_jwt_keyset_free(ks);
                        bad = 1;
                    }
                }
                free(doc);
            }
        }
        pt__cfg_pop(c, mark);
    }
    if (j->keys != NULL && pt_arena_cleanup_add(c->arena, free_keyset, j->keys) != PT_OK) {
        pt_jwt_keyset_free(j->keys);
        j->keys = NULL;
        bad = 1;
    }
    if ((v = pt_yaml_get(n, "jwks_url")) != NULL) {
        uint64_t refresh = 300000;
        const pt_ynode_t *r = pt_yaml_get(n, "jwks_refresh");
        mark = pt__cfg_push(c, "jwks_refresh", 12);
        if (r != NULL && pt__cfg_duration(c, r, 10000, 86400000, &refresh) != 0)
            bad = 1;
        pt__cfg_pop(c, mark);
        mark = pt__cfg_push(c, "jwks_url", 8);
        if (pt__cfg_string(c, v, &s) == 0) {
            if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0) {
                pt__cfg_err(c, v->line, "expected an http:// or https:// URL");
                bad = 1;
            } else if (j->keys != NULL) {
                pt__cfg_err(c, v->line, "give jwks_url alone, without keys, secret or jwks_file");
                bad = 1;
            } else if ((j->source = pt_jwks_source(s, (uint32_t)refresh)) == NULL) {
                pt__cfg_err(c, v->line, "out of memory");
                bad = 1;
            }
        }
        pt__cfg_pop(c, mark);
    }
    if (j->keys == NULL && j->source == NULL && !bad) {
        pt__cfg_err(c, n->line, "give the verification keys: keys, secret, jwks_file or jwks_url");
        bad = 1;
    }
    if ((v = pt_yaml_get(n, "algorithms")) != NULL) {
        mark = pt__cfg_push(c, "algorithms", 10);
        list = NULL;
        nlist = 0;
        j->algs = 0;
        if (strings(c, v, &list, &nlist) == 0)
            for (i = 0; i < nlist; i++) {
                unsigned bit = pt_jwt_alg(list[i], strlen(list[i]));
                if (bit == 0) {
                    pt__cfg_err(c, v->line,
                                "unknown algorithm \"%s\" (HS256, HS384, HS512, RS256, RS384, "
                                "RS512, ES256, ES384; never none)",
                                list[i]);
                    bad = 1;
                }
                j->algs |= bit;
            }
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "issuer")) != NULL)
        bad |= pt__cfg_string(c, v, (char **)&j->rules.issuer) != 0;
    if ((v = pt_yaml_get(n, "audience")) != NULL)
        bad |= pt__cfg_string(c, v, (char **)&j->rules.audience) != 0;
    if ((v = pt_yaml_get(n, "leeway")) != NULL) {
        mark = pt__cfg_push(c, "leeway", 6);
        if (pt__cfg_duration(c, v, 0, 3600000, &u) == 0)
            j->rules.leeway_s = (int64_t)(u / 1000);
        else
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "require_exp")) != NULL)
        bad |= pt__cfg_bool(c, v, &j->rules.require_exp) != 0;
    if ((v = pt_yaml_get(n, "user_claim")) != NULL) {
        mark = pt__cfg_push(c, "user_claim", 10);
        bad |= strings(c, v, &j->user_claims, &j->nuser_claims) != 0;
        pt__cfg_pop(c, mark);
    } else {
        static char *def[] = {"preferred_username", "sub", NULL};
        j->user_claims = def;
        j->nuser_claims = 2;
    }
    j->roles_claim = "roles";
    if ((v = pt_yaml_get(n, "roles_claim")) != NULL)
        bad |= pt__cfg_string(c, v, &j->roles_claim) != 0;
    return bad ? -1 : 0;
}

static int parse_cert_header(pt__cfg_ctx_t *c, const pt_ynode_t *n, auth_t *a)
{
    const pt_ynode_t *v;
    char *s;
    a->cert_header = "x-client-cert";
    if (pt_yaml_is_null(n))
        return 0;
    if (pt__cfg_mapping(c, n, cert_header_keys) != 0)
        return -1;
    if ((v = pt_yaml_get(n, "header")) != NULL) {
        if (pt__cfg_string(c, v, &a->cert_header) != 0)
            return -1;
        if (!pt__cfg_is_token(a->cert_header, strlen(a->cert_header))) {
            pt__cfg_err(c, v->line, "expected a header name");
            return -1;
        }
        lower(a->cert_header);
    }
    if ((v = pt_yaml_get(n, "ca_file")) != NULL && pt__cfg_string(c, v, &s) == 0) {
        char *path = pt__cfg_path(c, v->line, s);
        if ((a->cert_ca = X509_STORE_new()) == NULL ||
            pt_arena_cleanup_add(c->arena, free_store, a->cert_ca) != PT_OK) {
            X509_STORE_free(a->cert_ca);
            a->cert_ca = NULL;
            pt__cfg_err(c, v->line, "out of memory");
            return -1;
        }
        if (path == NULL || X509_STORE_load_file(a->cert_ca, path) != 1) {
            pt__cfg_err(c, v->line, "cannot read the CA certificates in %s", s);
            return -1;
        }
    }
    return 0;
}

static void *parse(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    auth_t *a = pt_arena_calloc(c->arena, sizeof(*a));
    const pt_ynode_t *v, *k;
    size_t i, m, mark;
    char *s, tmp[300];
    int bad = 0;

    if (a == NULL || pt__cfg_mapping(c, n, keys) != 0)
        return NULL;
    mark = pt__cfg_push(c, "methods", 7);
    if ((v = pt_yaml_get(n, "methods")) == NULL || v->kind != PT_YNODE_SEQUENCE || v->n == 0) {
        pt__cfg_err(c, n->line, "expected a list of methods, e.g. methods: [api_key]");
        bad = 1;
    } else {
        for (i = 0; i < v->n; i++) {
            if (pt__cfg_string(c, v->items[i], &s) != 0) {
                bad = 1;
                continue;
            }
            for (m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
                if (strcmp(s, methods[m].name) == 0)
                    break;
            if (m < sizeof(methods) / sizeof(methods[0])) {
                a->methods |= methods[m].bit;
            } else {
                pt__cfg_err(c, v->items[i]->line,
                            "unknown method %s (api_key, basic, jwt, client_cert, cert_header)",
                            pt__cfg_quote(v->items[i], tmp, sizeof(tmp)));
                bad = 1;
            }
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
                lower(a->header);
            }
            if ((k = pt_yaml_get(v, "query")) != NULL)
                pt__cfg_string(c, k, &a->query);
            if (a->header == NULL && a->query == NULL)
                pt__cfg_err(c, v->line, "give header, query or both");
        }
        pt__cfg_pop(c, mark);
    }
    a->cache_ttl_ms = 60000;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "basic"))) {
        mark = pt__cfg_push(c, "basic", 5);
        if (pt__cfg_mapping(c, v, basic_keys) != 0 ||
            ((k = pt_yaml_get(v, "cache_ttl")) != NULL &&
             pt__cfg_duration(c, k, 0, 3600000, &a->cache_ttl_ms) != 0))
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if (a->methods & M_JWT) {
        mark = pt__cfg_push(c, "jwt", 3);
        if ((v = pt_yaml_get(n, "jwt")) == NULL) {
            pt__cfg_err(c, n->line, "the jwt method needs a jwt: block (its keys at least)");
            bad = 1;
        } else if (parse_jwt(c, v, &a->jwt) != 0) {
            bad = 1;
        }
        pt__cfg_pop(c, mark);
    }
    if (a->methods & M_CERT_HEADER) {
        mark = pt__cfg_push(c, "cert_header", 11);
        if (parse_cert_header(c, pt_yaml_get(n, "cert_header"), a) != 0)
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if ((v = pt_yaml_get(n, "contracts")) != NULL && pt__cfg_string(c, v, &s) == 0) {
        if (strcmp(s, "protected") == 0)
            a->protect_contracts = 1;
        else if (strcmp(s, "public") != 0) {
            pt__cfg_err(c, v->line, "expected public (default) or protected");
            bad = 1;
        }
    }
    a->hide = -1;
    if ((v = pt_yaml_get(n, "hide_credentials")) != NULL && pt__cfg_bool(c, v, &a->hide) != 0)
        bad = 1;
    if (!pt_yaml_is_null(v = pt_yaml_get(n, "roles"))) {
        mark = pt__cfg_push(c, "roles", 5);
        if (strings(c, v, &a->roles, &a->nroles) != 0)
            bad = 1;
        pt__cfg_pop(c, mark);
    }
    if (a->methods & M_API_KEY) {
        char *ch = pt_arena_printf(c->arena, "APIKey realm=\"portico\"%s%.60s%s%s%.60s%s",
                                   a->header ? ", header=\"" : "", a->header ? a->header : "",
                                   a->header ? "\"" : "", a->query ? ", query=\"" : "",
                                   a->query ? a->query : "", a->query ? "\"" : "");
        a->challenges[a->nchallenges++] = (pt_header_kv_t){"WWW-Authenticate", ch};
    }
    if (a->methods & M_BASIC)
        a->challenges[a->nchallenges++] =
            (pt_header_kv_t){"WWW-Authenticate", "Basic realm=\"portico\", charset=\"UTF-8\""};
    if (a->methods & M_JWT)
        a->challenges[a->nchallenges++] =
            (pt_header_kv_t){"WWW-Authenticate", "Bearer realm=\"portico\""};
    if (a->nchallenges == 0) /* certificates only: no HTTP scheme names them */
        a->challenges[a->nchallenges++] =
            (pt_header_kv_t){"WWW-Authenticate", "Certificate realm=\"portico\""};
    return bad ? NULL : a;
}

/* ------------------------------------------------------------ answers */

static const char *method_name(unsigned m)
{
    size_t i;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].bit == m)
            return methods[i].name;
    return "none";
}

/* The counter of a refusal's reason code. */
static pt_pstat_t reason_stat(const char *reason, int forbidden)
{
    static const struct {
        const char *reason;
        pt_pstat_t stat;
    } map[] = {{"no-credentials", PT_PSTAT_AUTH_NO_CREDENTIALS},
               {"malformed", PT_PSTAT_AUTH_MALFORMED},
               {"unknown-key", PT_PSTAT_AUTH_UNKNOWN},
               {"unknown-user", PT_PSTAT_AUTH_UNKNOWN},
               {"unknown-certificate", PT_PSTAT_AUTH_UNKNOWN},
               {"bad-password", PT_PSTAT_AUTH_BAD_PASSWORD},
               {"expired", PT_PSTAT_AUTH_EXPIRED},
               {"not-yet-valid", PT_PSTAT_AUTH_EXPIRED},
               {"no-expiry", PT_PSTAT_AUTH_EXPIRED},
               {"wrong-issuer", PT_PSTAT_AUTH_CLAIMS},
               {"wrong-audience", PT_PSTAT_AUTH_CLAIMS},
               {"no-user-claim", PT_PSTAT_AUTH_CLAIMS},
               {"untrusted-proxy", PT_PSTAT_AUTH_UNTRUSTED},
               {"untrusted-certificate", PT_PSTAT_AUTH_UNTRUSTED},
               {"memory", PT_PSTAT_AUTH_BUSY}};
    size_t i;
    if (forbidden)
        return PT_PSTAT_AUTH_FORBIDDEN;
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].reason, reason) == 0)
            return map[i].stat;
    return PT_PSTAT_AUTH_BAD_TOKEN; /* signature, algorithm, key, header */
}

/* 401, or 403 once the user is known (req->user), and the audit line
 * (user: a name to log, when there is one). */
static int refuse(const auth_t *a, pt_req_t *req, unsigned method, const char *reason,
                  const char *user)
{
    char name[80];
    size_t i;
    /* a user name from a token or a header is the client's text: keep it printable */
    for (i = 0; user != NULL && user[i] && i < sizeof(name) - 1; i++)
        name[i] =
            (unsigned char)user[i] < 0x20 || user[i] == 0x7f || user[i] == '"' ? '?' : user[i];
    name[i] = '\0';
    pt_policy_count(req, reason_stat(reason, req->user != NULL));
    pt_log_warn("auth: %.*s refused: method=%s reason=%s client=%s%s%s%s", (int)req->request_id_len,
                req->request_id, method_name(method), reason, pt_http_peer(req),
                user ? " user=\"" : "", user ? name : "", user ? "\"" : "");
    if (req->user != NULL) { /* authenticated, not allowed */
        pt_http_problem(req, 403, "forbidden", "This user may not call this resource.", NULL, 0);
        return PT_POLICY_ANSWERED;
    }
    pt_http_problem(req, 401, "unauthorized", "Authentication is required.", a->challenges,
                    a->nchallenges);
    return PT_POLICY_ANSWERED;
}

static int has(char **list, size_t n, const char *s)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* The access checks once the user is known: its IP allow list, its APIs,
 * the policy's roles. */
static int check_access(const auth_t *a, pt_req_t *req, const pt_user_t *user, unsigned method)
{
    size_t i;
    int ok;
    req->user = user; /* known from here on (403s name it) */
    if (user->has_allow) {
        struct sockaddr_storage addr;
        pt_policy_client_addr(req, &addr);
        if (!pt_cidr_match(user->allow, user->nallow, (const struct sockaddr *)&addr))
            return refuse(a, req, method, "address-not-allowed", user->name);
    }
    if (user->apis != NULL && req->match.api != NULL &&
        !has(user->apis, user->napis, req->match.api->name))
        return refuse(a, req, method, "api-not-allowed", user->name);
    if (a->nroles > 0) {
        for (ok = 0, i = 0; i < a->nroles && !ok; i++)
            ok = has(user->roles, user->nroles, a->roles[i]);
        if (!ok)
            return refuse(a, req, method, "role", user->name);
    }
    pt_policy_count(req, PT_PSTAT_AUTH_ALLOWED);
    /* the credential was for the gateway: the upstream or process does not get it */
    if (a->hide == 1 || (a->hide == -1 && method != M_JWT)) {
        if (method == M_BASIC || method == M_JWT)
            pt_http_header_remove(req, "authorization");
        else if (method == M_CERT_HEADER)
            pt_http_header_remove(req, a->cert_header);
        else if (method == M_API_KEY) {
            if (a->header != NULL)
                pt_http_header_remove(req, a->header);
            if (a->query != NULL)
                pt_http_query_remove(req, a->query);
        }
    }
    return PT_POLICY_NEXT;
}

/* ------------------------------------------------------------ api keys */

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

static int api_key(const auth_t *a, pt_req_t *req, const char *key, size_t len)
{
    const pt_config_t *cfg = req->snap->snap->config;
    unsigned char digest[crypto_hash_sha256_BYTES];
    const pt_key_index_t *hit;
    if (len == 0 || len > 256)
        return refuse(a, req, M_API_KEY, "malformed", NULL);
    crypto_hash_sha256(digest, (const unsigned char *)key, len);
    hit =
        cfg->nkeys > 0 ? bsearch(digest, cfg->keys, cfg->nkeys, sizeof(*cfg->keys), key_cmp) : NULL;
    if (hit == NULL || sodium_memcmp(hit->hash, digest, sizeof(digest)) != 0)
        return refuse(a, req, M_API_KEY, "unknown-key", NULL);
    return check_access(a, req, hit->user, M_API_KEY);
}

/* ------------------------------------------------------------ certificates */

static const pt_user_t *cert_user(const pt_config_t *cfg, const char *subject,
                                  const unsigned char *fp)
{
    size_t i, k;
    for (i = 0; i < cfg->nusers; i++) {
        const pt_user_t *u = &cfg->users[i];
        for (k = 0; fp != NULL && k < u->nfingerprints; k++)
            if (sodium_memcmp(u->fingerprints[k], fp, 32) == 0)
                return u;
        for (k = 0; subject != NULL && k < u->nsubjects; k++)
            if (strcmp(u->subjects[k], subject) == 0)
                return u;
    }
    return NULL;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A certificate from the cert_header (URL-encoded PEM, as nginx's
 * $ssl_client_escaped_cert; or PEM with its newlines as spaces). */
static int cert_from_header(const auth_t *a, pt_req_t *req, const pt_str_t *h)
{
    pt_arena_t *arena = pt_http_req_arena(req);
    const pt_config_t *cfg = req->snap->snap->config;
    char *pem, *subject = NULL;
    size_t i, n = 0;
    BIO *bio;
    X509 *x = NULL;
    unsigned char fp[32];
    unsigned fplen = 0;
    const pt_user_t *user;
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";

    if (!pt_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, pt_http_peer_addr(req)))
        return refuse(a, req, M_CERT_HEADER, "untrusted-proxy", NULL);
    if (h->len > 16384 || (pem = pt_arena_alloc(arena, h->len + 2)) == NULL)
        return refuse(a, req, M_CERT_HEADER, "malformed", NULL);
    for (i = 0; i < h->len; i++) {
        int c = (unsigned char)h->p[i];
        if (c == '%' && i + 2 < h->len && hexval(h->p[i + 1]) >= 0 && hexval(h->p[i + 2]) >= 0) {
            c = hexval(h->p[i + 1]) * 16 + hexval(h->p[i + 2]);
            i += 2;
        }
        pem[n++] = (char)c;
    }
    pem[n] = '\0';
    /* newlines turned into spaces by a proxy: put them back between the markers */
    if (n > sizeof(begin) + sizeof(end) && memcmp(pem, begin, sizeof(begin) - 1) == 0) {
        char *e = strstr(pem, end);
        for (i = sizeof(begin) - 1; e != NULL && pem + i < e; i++)
            if (pem[i] == ' ')
                pem[i] = '\n';
    }
    if ((bio = BIO_new_mem_buf(pem, (int)n)) != NULL) {
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    if (x == NULL)
        return refuse(a, req, M_CERT_HEADER, "malformed", NULL);
    if (a->cert_ca != NULL) {
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        int ok = ctx != NULL && X509_STORE_CTX_init(ctx, a->cert_ca, x, NULL) == 1 &&
                 X509_verify_cert(ctx) == 1;
        X509_STORE_CTX_free(ctx);
        if (!ok) {
            X509_free(x);
            return refuse(a, req, M_CERT_HEADER, "untrusted-certificate", NULL);
        }
    }
    X509_digest(x, EVP_sha256(), fp, &fplen);
    if ((bio = BIO_new(BIO_s_mem())) != NULL) {
        char *p;
        long len;
        X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
        if ((len = BIO_get_mem_data(bio, &p)) > 0)
            subject = pt_arena_strndup(arena, p, (size_t)len);
        BIO_free(bio);
    }
    X509_free(x);
    if ((user = cert_user(cfg, subject, fp)) == NULL)
        return refuse(a, req, M_CERT_HEADER, "unknown-certificate", subject);
    return check_access(a, req, user, M_CERT_HEADER);
}

/* ------------------------------------------------------------ per-worker state */

#define CACHE_SLOTS 1024

typedef struct cache_entry_s {
    unsigned char digest[32]; /* keyed hash of generation, name, password */
    uint64_t expires_ms;      /* loop time */
    const pt_user_t *user;    /* of that generation's configuration */
} cache_entry_t;

typedef struct verify_job_s verify_job_t;

/* A verified token (its signature only: the claims are checked each time). */
typedef struct token_entry_s {
    unsigned char digest[16]; /* keyed hash of the policy, key set, generation and token */
    uint64_t expires_ms;      /* loop time */
} token_entry_t;

typedef struct auth_worker_s {
    unsigned char key[crypto_generichash_KEYBYTES]; /* random, never leaves the worker */
    cache_entry_t slots[CACHE_SLOTS];
    token_entry_t tokens[CACHE_SLOTS];
    verify_job_t *pending[64]; /* password verifications in flight, by digest */
} auth_worker_t;

static void worker_finish(pt_worker_t *w)
{
    if (w->auth != NULL) {
        sodium_memzero(w->auth, sizeof(auth_worker_t));
        free(w->auth);
        w->auth = NULL;
    }
}

static auth_worker_t *worker_state(pt_worker_t *w)
{
    auth_worker_t *aw = w->auth;
    if (aw != NULL || w->stopping)
        return aw; /* a finished worker has none any more */
    if ((aw = calloc(1, sizeof(*aw))) == NULL)
        return NULL;
    if (pt_worker_on_finish(w, worker_finish) != PT_OK) {
        free(aw);
        return NULL;
    }
    randombytes_buf(aw->key, sizeof(aw->key));
    w->auth = aw;
    return aw;
}

static void cache_digest(const auth_worker_t *aw, uint64_t generation, const char *name,
                         size_t nlen, const char *pass, size_t plen, unsigned char out[32])
{
    crypto_generichash_state st;
    unsigned char zero = 0;
    crypto_generichash_init(&st, aw->key, sizeof(aw->key), 32);
    crypto_generichash_update(&st, (const unsigned char *)&generation, sizeof(generation));
    crypto_generichash_update(&st, (const unsigned char *)name, nlen);
    crypto_generichash_update(&st, &zero, 1);
    crypto_generichash_update(&st, (const unsigned char *)pass, plen);
    crypto_generichash_final(&st, out, 32);
}

/* ------------------------------------------------------------ JWT */

/* A token whose signature this worker verified lately (with this policy and
 * key set, in this configuration generation) is not verified again: RSA and
 * ECDSA cost tens of microseconds and a client sends the same token for
 * minutes. Its claims (exp, nbf, iss, aud) are still checked every time. */
#define TOKEN_TTL_MS 300000

static void token_digest(const auth_worker_t *aw, const auth_t *a, const pt_req_t *req,
                         const pt_jwt_keyset_t *ks, const char *token, size_t len,
                         unsigned char out[16])
{
    crypto_generichash_state st;
    uint64_t gen = req->snap->snap->generation;
    crypto_generichash_init(&st, aw->key, sizeof(aw->key), 16);
    crypto_generichash_update(&st, (const unsigned char *)&a, sizeof(a));
    crypto_generichash_update(&st, (const unsigned char *)&ks->serial, sizeof(ks->serial));
    crypto_generichash_update(&st, (const unsigned char *)&gen, sizeof(gen));
    crypto_generichash_update(&st, (const unsigned char *)token, len);
    crypto_generichash_final(&st, out, 16);
}

static int token_known(const auth_t *a, pt_req_t *req, const pt_jwt_keyset_t *ks, const char *token,
                       size_t len)
{
    pt_worker_t *w = req->snap->worker;
    auth_worker_t *aw = worker_state(w);
    unsigned char d[16];
    const token_entry_t *e;
    if (aw == NULL || ks == NULL)
        return 0;
    token_digest(aw, a, req, ks, token, len, d);
    e = &aw->tokens[(d[0] | d[1] << 8) % CACHE_SLOTS];
    return e->expires_ms > uv_now(&w->loop) && sodium_memcmp(e->digest, d, 16) == 0;
}

static void token_remember(const auth_t *a, pt_req_t *req, const pt_jwt_keyset_t *ks,
                           const char *token, size_t len)
{
    pt_worker_t *w = req->snap->worker;
    auth_worker_t *aw = worker_state(w);
    unsigned char d[16];
    token_entry_t *e;
    if (aw == NULL || ks == NULL)
        return;
    token_digest(aw, a, req, ks, token, len, d);
    e = &aw->tokens[(d[0] | d[1] << 8) % CACHE_SLOTS];
    memcpy(e->digest, d, 16);
    e->expires_ms = uv_now(&w->loop) + TOKEN_TTL_MS;
}

static int jwt(const auth_t *a, pt_req_t *req, const char *token, size_t len)
{
    pt_arena_t *arena = pt_http_req_arena(req);
    const jwt_conf_t *j = &a->jwt;
    const pt_jwt_keyset_t *ks = j->source != NULL ? pt_jwks_current(j->source) : j->keys;
    const char *reason, *name = NULL;
    const pt_json_t *roles;
    pt_jwt_t t;
    pt_user_t *user;
    size_t i;

    if (pt_jwt_decode(arena, token, len, &t, &reason) != 0)
        return refuse(a, req, M_JWT, reason, NULL);
    if (!token_known(a, req, ks, token, len)) {
        if (pt_jwt_verify(&t, ks, j->algs, &reason) != 0)
            return refuse(a, req, M_JWT, reason, NULL);
        token_remember(a, req, ks, token, len);
    }
    if (pt_jwt_check_claims(&t, &j->rules, (int64_t)time(NULL), &reason) != 0)
        return refuse(a, req, M_JWT, reason, NULL);
    for (i = 0; i < j->nuser_claims && name == NULL; i++) {
        const pt_json_t *v = pt_jwt_claim(&t, j->user_claims[i]);
        if (v != NULL && v->type == PT_JSON_STRING && v->u.str.len > 0 && v->u.str.len <= 256 &&
            strlen(v->u.str.p) == v->u.str.len)
            name = v->u.str.p;
    }
    if (name == NULL)
        return refuse(a, req, M_JWT, "no-user-claim", NULL);
    if ((user = pt_arena_calloc(arena, sizeof(*user))) == NULL)
        return refuse(a, req, M_JWT, "memory", NULL);
    user->name = (char *)name;
    roles = pt_jwt_claim(&t, j->roles_claim);
    if (roles != NULL && roles->type == PT_JSON_ARRAY) {
        user->roles = pt_arena_calloc(arena, sizeof(char *) * (roles->u.arr.n + 1));
        for (i = 0; user->roles != NULL && i < roles->u.arr.n; i++)
            if (roles->u.arr.items[i]->type == PT_JSON_STRING)
                user->roles[user->nroles++] = (char *)roles->u.arr.items[i]->u.str.p;
    } else if (roles != NULL && roles->type == PT_JSON_STRING) { /* "a b c", as scope */
        char *s = pt_arena_strndup(arena, roles->u.str.p, roles->u.str.len), *tok, *save = NULL;
        user->roles = pt_arena_calloc(arena, sizeof(char *) * (roles->u.str.len / 2 + 2));
        for (tok = s ? strtok_r(s, " ", &save) : NULL; tok != NULL && user->roles != NULL;
             tok = strtok_r(NULL, " ", &save))
            user->roles[user->nroles++] = tok;
    }
    return check_access(a, req, user, M_JWT);
}

/* ------------------------------------------------------------ basic */

/* One password verification, and the requests waiting for its result: the
 * same credentials arriving while it runs (a client opening many
 * connections at once) wait for it rather than verify again. */
typedef struct waiter_s {
    pt_req_t *req; /* NULL once the client left */
    struct verify_link_s *link;
} waiter_t;

/* In a request's arena: its side of the link to the job it waits for. */
typedef struct verify_link_s {
    verify_job_t *job; /* NULL once the job is done */
    size_t index;      /* in job->waiters */
} verify_link_t;

#define WAITERS_MAX 4096

struct verify_job_s {
    pt_job_t job;
    verify_job_t *next_pending; /* in the worker's pending table */
    waiter_t *waiters;
    size_t nwaiters, cap;
    const auth_t *a;
    const pt_user_t *user; /* NULL: unknown name (verified against another hash anyway) */
    uint64_t generation;
    char hash[crypto_pwhash_STRBYTES];
    char *pass;
    size_t plen;
    int ok;
    pt_job_status_t status;
    unsigned char digest[32];
};

static void job_free(verify_job_t *j)
{
    if (j->pass != NULL) {
        sodium_memzero(j->pass, j->plen);
        free(j->pass);
    }
    free(j->waiters);
    free(j);
}

static void link_cleanup(void *data)
{
    verify_link_t *l = data;
    if (l->job != NULL)
        l->job->waiters[l->index].req = NULL; /* the client left */
}

static verify_job_t **pending_slot(auth_worker_t *aw, const unsigned char *digest)
{
    return &aw->pending[digest[0] % (sizeof(aw->pending) / sizeof(aw->pending[0]))];
}

/* Makes req wait for j's result (suspended). PT_OK or PT_ENOMEM. */
static int wait_for(verify_job_t *j, pt_req_t *req)
{
    verify_link_t *l = pt_arena_alloc(pt_http_req_arena(req), sizeof(*l));
    if (l == NULL || j->nwaiters >= WAITERS_MAX)
        return PT_ENOMEM;
    if (j->nwaiters == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 4;
        waiter_t *w = realloc(j->waiters, sizeof(*w) * cap);
        if (w == NULL)
            return PT_ENOMEM;
        j->waiters = w;
        j->cap = cap;
    }
    l->job = j;
    l->index = j->nwaiters;
    if (pt_arena_cleanup_add(pt_http_req_arena(req), link_cleanup, l) != PT_OK)
        return PT_ENOMEM;
    j->waiters[j->nwaiters].req = req;
    j->waiters[j->nwaiters++].link = l;
    pt_http_suspend(req);
    return PT_OK;
}

static void verify_run(pt_job_t *job)
{
    verify_job_t *j = (verify_job_t *)job;
    j->ok = crypto_pwhash_str_verify(j->hash, j->pass, j->plen) == 0 && j->user != NULL;
}

static void verify_cont(pt_req_t *req)
{
    verify_job_t *j = req->hook_data;
    req->hook_data = NULL;
    if (j->status != PT_JOB_DONE) {
        static const pt_header_kv_t retry[] = {{"Retry-After", "1"}};
        pt_policy_count(req, PT_PSTAT_AUTH_BUSY);
        pt_http_problem(req, 503, "busy", "Authentication is busy; try again shortly.", retry, 1);
        return;
    }
    if (!j->ok) {
        refuse(j->a, req, M_BASIC, j->user != NULL ? "bad-password" : "unknown-user", NULL);
        return;
    }
    if (check_access(j->a, req, j->user, M_BASIC) == PT_POLICY_NEXT)
        pt_policy_next(req);
}

static void verify_done(pt_job_t *job, pt_job_status_t status)
{
    verify_job_t *j = (verify_job_t *)job, **pp;
    auth_worker_t *aw = job->worker->auth; /* NULL once the worker finished */
    size_t i;
    j->status = status;
    for (pp = aw != NULL ? pending_slot(aw, j->digest) : NULL; pp != NULL && *pp != NULL;
         pp = &(*pp)->next_pending)
        if (*pp == j) {
            *pp = j->next_pending;
            break;
        }
    if (aw != NULL && status == PT_JOB_DONE && j->ok && j->a->cache_ttl_ms > 0) {
        cache_entry_t *e = &aw->slots[(j->digest[0] | j->digest[1] << 8) % CACHE_SLOTS];
        memcpy(e->digest, j->digest, 32);
        e->expires_ms = uv_now(&job->worker->loop) + j->a->cache_ttl_ms;
        e->user = j->user;
    }
    for (i = 0; i < j->nwaiters; i++) {
        pt_req_t *req = j->waiters[i].req;
        if (req == NULL)
            continue; /* that client left */
        j->waiters[i].link->job = NULL;
        req->hook_data = j;
        pt_http_resume(req, verify_cont);
    }
    job_free(j);
}

static int user_cmp(const void *k, const void *e)
{
    return strcmp(k, (*(const pt_user_t *const *)e)->name);
}

static int basic(const auth_t *a, pt_req_t *req, const char *b64, size_t len)
{
    const pt_config_t *cfg = req->snap->snap->config;
    pt_worker_t *w = req->snap->worker;
    auth_worker_t *aw = worker_state(w);
    char buf[400], *colon;
    size_t n = 0, i;
    const pt_user_t *const *hit;
    const pt_user_t *user;
    const char *hash = NULL;
    unsigned char digest[32];
    cache_entry_t *e;
    verify_job_t *j, **slot;
    uint64_t gen = req->snap->snap->generation;

    if (aw == NULL)
        return refuse(a, req, M_BASIC, "memory", NULL);
    if (len == 0 || len > 512 ||
        sodium_base642bin((unsigned char *)buf, sizeof(buf) - 1, b64, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        (colon = memchr(buf, ':', n)) == NULL || colon == buf)
        return refuse(a, req, M_BASIC, "malformed", NULL);
    buf[n] = '\0';
    *colon = '\0';
    if (memchr(buf, '\0', (size_t)(colon - buf)) != NULL)
        return refuse(a, req, M_BASIC, "malformed", NULL);
    hit = cfg->nusers > 0
              ? bsearch(buf, cfg->users_by_name, cfg->nusers, sizeof(pt_user_t *), user_cmp)
              : NULL;
    user = hit != NULL && (*hit)->password != NULL ? *hit : NULL;
    cache_digest(aw, gen, buf, (size_t)(colon - buf), colon + 1, n - (size_t)(colon - buf) - 1,
                 digest);
    e = &aw->slots[(digest[0] | digest[1] << 8) % CACHE_SLOTS];
    if (user != NULL && e->user == user && e->expires_ms > uv_now(&w->loop) &&
        sodium_memcmp(e->digest, digest, 32) == 0) {
        sodium_memzero(buf, sizeof(buf));
        return check_access(a, req, user, M_BASIC);
    }
    /* the same credentials (and policy, and configuration) being verified: wait for that */
    slot = pending_slot(aw, digest);
    for (j = *slot; j != NULL; j = j->next_pending)
        if (j->a == a && j->generation == gen && sodium_memcmp(j->digest, digest, 32) == 0)
            break;
    if (j != NULL) {
        sodium_memzero(buf, sizeof(buf));
        if (wait_for(j, req) != PT_OK)
            return refuse(a, req, M_BASIC, "memory", NULL);
        return PT_POLICY_SUSPENDED;
    }
    /* An unknown name costs the same as a wrong password: it is checked
     * against some user's hash (or refused at once when there is none). */
    if (user != NULL)
        hash = user->password;
    for (i = 0; hash == NULL && i < cfg->nusers; i++)
        hash = cfg->users[i].password;
    if (hash == NULL) {
        sodium_memzero(buf, sizeof(buf));
        return refuse(a, req, M_BASIC, "unknown-user", NULL);
    }
    if (w->authpool == NULL || (j = calloc(1, sizeof(*j))) == NULL) {
        sodium_memzero(buf, sizeof(buf));
        return refuse(a, req, M_BASIC, "memory", NULL);
    }
    j->plen = n - (size_t)(colon - buf) - 1;
    if ((j->pass = malloc(j->plen + 1)) == NULL) {
        free(j);
        sodium_memzero(buf, sizeof(buf));
        return refuse(a, req, M_BASIC, "memory", NULL);
    }
    memcpy(j->pass, colon + 1, j->plen);
    sodium_memzero(buf, sizeof(buf));
    snprintf(j->hash, sizeof(j->hash), "%s", hash);
    memcpy(j->digest, digest, 32);
    j->a = a;
    j->user = user;
    j->generation = gen;
    j->job.run = verify_run;
    j->job.done = verify_done;
    j->job.worker = w;
    if (wait_for(j, req) != PT_OK) {
        if (j->nwaiters > 0) /* its cleanup is registered: it must not find the job */
            j->waiters[0].link->job = NULL;
        job_free(j);
        return refuse(a, req, M_BASIC, "memory", NULL);
    }
    if (pt_procpool_submit(w->authpool, &j->job) != PT_OK) {
        static const pt_header_kv_t retry[] = {{"Retry-After", "1"}};
        j->waiters[0].link->job = NULL;
        job_free(j);
        req->suspended = 0; /* answered here, synchronously */
        pt_policy_count(req, PT_PSTAT_AUTH_BUSY);
        pt_log_warn("auth: %.*s: the authentication pool is full", (int)req->request_id_len,
                    req->request_id);
        pt_http_problem(req, 503, "busy", "Authentication is busy; try again shortly.", retry, 1);
        return PT_POLICY_ANSWERED;
    }
    j->next_pending = *slot;
    *slot = j;
    pt_log_debug("auth: %.*s: a password verification starts on the auth pool",
                 (int)req->request_id_len, req->request_id);
    return PT_POLICY_SUSPENDED;
}

/* ------------------------------------------------------------ the hook */

static int scheme(const pt_str_t *h, const char *name, size_t nlen, const char **rest, size_t *rlen)
{
    size_t i;
    if (h->len <= nlen || strncasecmp(h->p, name, nlen) != 0 || h->p[nlen] != ' ')
        return 0;
    for (i = nlen; i < h->len && h->p[i] == ' '; i++)
        ;
    *rest = h->p + i;
    *rlen = h->len - i;
    return 1;
}

static int handle(const void *conf, pt_req_t *req)
{
    const auth_t *a = conf;
    const pt_config_t *cfg = req->snap->snap->config;
    const pt_str_t *h, *authz = pt_http_header(req, "authorization");
    const char *subject, *cred = NULL;
    size_t len = 0;

    if (req->contract && !a->protect_contracts)
        return PT_POLICY_NEXT; /* how to call the API is no secret: the contract says how to
                                  authenticate */
    if ((a->methods & M_CERT) && (subject = pt_http_client_subject(req)) != NULL) {
        const pt_user_t *user = cert_user(cfg, subject, pt_http_client_fingerprint(req));
        if (user == NULL)
            return refuse(a, req, M_CERT, "unknown-certificate", subject);
        return check_access(a, req, user, M_CERT);
    }
    if ((a->methods & M_CERT_HEADER) && (h = pt_http_header(req, a->cert_header)) != NULL)
        return cert_from_header(a, req, h);
    if (authz != NULL && (a->methods & M_BASIC) && scheme(authz, "Basic", 5, &cred, &len))
        return basic(a, req, cred, len);
    if (authz != NULL && (a->methods & M_JWT) && scheme(authz, "Bearer", 6, &cred, &len))
        return jwt(a, req, cred, len);
    if (a->methods & M_API_KEY) {
        if (a->header != NULL && (h = pt_http_header(req, a->header)) != NULL)
            return api_key(a, req, h->p, h->len);
        if (a->query != NULL && query_value(req, a->query, &cred, &len))
            return api_key(a, req, cred, len);
    }
    return refuse(a, req, 0, "no-credentials", NULL);
}

int pt_policy_auth_info(const pt_policy_list_t *chain, pt_auth_info_t *out)
{
    size_t i;
    for (i = 0; i < chain->n; i++)
        if (chain->items[i].type == &pt_policy_auth) {
            const auth_t *a = chain->items[i].conf;
            out->methods = a->methods;
            out->header = a->methods & M_API_KEY ? a->header : NULL;
            out->query = a->methods & M_API_KEY ? a->query : NULL;
            out->cert_header = a->methods & M_CERT_HEADER ? a->cert_header : NULL;
            out->roles = a->nroles > 0;
            return 1;
        }
    return 0;
}

const pt_policy_type_t pt_policy_auth = {"auth", PT_ORDER_AUTH, parse, handle, NULL};
