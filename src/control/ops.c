/*
 * ops.c - the changes of the control plane (see ops.h).
 */
#include "control/ops.h"
#include "metrics/metrics.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

#define S(a, s) pt_json_string((a), (s), strlen(s))
#define I(a, n) pt_json_int((a), (n))
#define N(a, s) ((s) != NULL ? S(a, s) : pt_json_null(a))

static void problem(pt_op_result_t *r, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(pt_op_result_t *r, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    r->status = status;
    r->type = type;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
}

/* A store error: 503 (the store cannot be reached) or 500. */
static void store_problem(pt_control_t *c, pt_op_result_t *r, const pt_db_error_t *e)
{
    if (e->broken || e->kind == PT_PERR_DATABASE || e->kind == PT_PERR_BUSY) {
        pt_control_set_store_ok(c, 0);
        problem(r, 503, "store-unavailable", "The store cannot be reached: %s", e->message);
    } else {
        pt_log_error("store: %s", e->message);
        problem(r, 500, "internal-error", "The store refused the change: %s", e->message);
    }
}

static int audit(pt_store_tx_t *tx, pt_arena_t *a, const char *actor, const char *action,
                 const char *target, const char *detail, pt_db_error_t *e)
{
    return pt_store_q(tx, a, PT_SQL_AFFECTED, NULL, e,
                      "INSERT INTO audit_events (at, actor, action, target, detail) "
                      "VALUES (:at, :actor, :action, :target, :detail)",
                      "at", S(a, pt_store_now(a)), "actor", S(a, actor), "action", S(a, action),
                      "target", S(a, target), "detail", N(a, detail), NULL);
}

static char *sha256_hex(pt_arena_t *a, const char *text, size_t len)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char *hex = pt_arena_alloc(a, sizeof(h) * 2 + 1);
    crypto_hash_sha256(h, (const unsigned char *)text, len);
    if (hex != NULL)
        sodium_bin2hex(hex, sizeof(h) * 2 + 1, h, sizeof(h));
    return hex;
}

/* The problems of an invalid definition, without the node's directories. */
static pt_json_t *errors_json(pt_arena_t *a, const pt_config_errors_t *errs)
{
    pt_json_t *arr = pt_json_array(a);
    size_t i;
    for (i = 0; arr != NULL && i < errs->count; i++) {
        const char *m = errs->msgs[i], *colon = strstr(m, ".yaml:"), *slash = m;
        const char *p;
        for (p = m; colon != NULL && p < colon; p++)
            if (*p == '/')
                slash = p + 1;
        pt_json_array_add(a, arr, S(a, slash));
    }
    if (arr != NULL && errs->dropped > 0)
        pt_json_array_add(a, arr, pt_json_string(a, "... and more", 12));
    return arr;
}

void pt_op_push(pt_control_t *c, pt_arena_t *a, const char *text, size_t len, const char *label,
                const char *notes, const char *author, pt_op_result_t *r)
{
    pt_config_errors_t errs = {{0}, 0, 0};
    char *name = NULL, *base = NULL, *hash, *now = pt_store_now(a);
    const char *kind = NULL;
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *rows = NULL, *doc;
    int64_t last = 0;

    memset(&e, 0, sizeof(e));
    if (pt_control_check_definition(c, text, len, a, &name, &base, &kind, &errs) != 0) {
        problem(r, 400, "invalid-definition", "The definition is invalid (%zu problem%s).",
                errs.count + errs.dropped, errs.count + errs.dropped == 1 ? "" : "s");
        r->errors = errors_json(a, &errs);
        pt_config_errors_free(&errs);
        return;
    }
    pt_config_errors_free(&errs);
    if ((hash = sha256_hex(a, text, len)) == NULL || now == NULL) {
        problem(r, 500, "internal-error", "Out of memory.");
        return;
    }
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    if (pt_store_q(&tx, a, PT_SQL_AFFECTED, NULL, &e,
                   "INSERT INTO apis (name, created_at, updated_at) VALUES (:n, :now, :now) "
                   "ON CONFLICT (name) DO NOTHING",
                   "n", S(a, name), "now", S(a, now), NULL) != PT_OK ||
        pt_store_q(&tx, a, PT_SQL_ROWS, &rows, &e,
                   "SELECT revision, hash FROM revisions WHERE api = :n ORDER BY revision DESC "
                   "LIMIT 1",
                   "n", S(a, name), NULL) != PT_OK)
        goto fail;
    if (rows->u.arr.n > 0) {
        const pt_json_t *h = pt_json_get(rows->u.arr.items[0], "hash");
        pt_json_to_int64(pt_json_get(rows->u.arr.items[0], "revision"), &last);
        if (h != NULL && h->type == PT_JSON_STRING && strcmp(h->u.str.p, hash) == 0) {
            pt_store_end(&tx, 0, &e);
            doc = pt_json_object(a);
            pt_json_object_set(a, doc, "api", 3, S(a, name));
            pt_json_object_set(a, doc, "revision", 8, I(a, last));
            pt_json_object_set(a, doc, "hash", 4, S(a, hash));
            pt_json_object_set(a, doc, "created", 7, pt_json_bool(a, 0));
            r->status = 200;
            r->body = doc;
            return;
        }
    }
    if (pt_store_q(&tx, a, PT_SQL_AFFECTED, NULL, &e,
                   "INSERT INTO revisions (api, revision, hash, base_path, kind, label, notes, "
                   "author, created_at, definition) VALUES (:api, :rev, :hash, :base, :kind, "
                   ":label, :notes, :author, :now, :def)",
                   "api", S(a, name), "rev", I(a, last + 1), "hash", S(a, hash), "base", S(a, base),
                   "kind", S(a, kind), "label", N(a, label), "notes", N(a, notes), "author",
                   S(a, author), "now", S(a, now), "def", pt_json_string(a, text, len),
                   NULL) != PT_OK ||
        pt_store_q(&tx, a, PT_SQL_AFFECTED, NULL, &e,
                   "UPDATE apis SET updated_at = :now WHERE name = :n", "now", S(a, now), "n",
                   S(a, name), NULL) != PT_OK ||
        audit(&tx, a, author, "api.push", pt_arena_printf(a, "%s@%lld", name, (long long)last + 1),
              notes, &e) != PT_OK)
        goto fail;
    if (pt_store_end(&tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    doc = pt_json_object(a);
    pt_json_object_set(a, doc, "api", 3, S(a, name));
    pt_json_object_set(a, doc, "revision", 8, I(a, last + 1));
    pt_json_object_set(a, doc, "hash", 4, S(a, hash));
    pt_json_object_set(a, doc, "created", 7, pt_json_bool(a, 1));
    r->status = 201;
    r->body = doc;
    return;
fail:
    pt_store_end(&tx, 0, &e);
    store_problem(c, r, &e);
}

static const char DEPLOYMENT_COLS[] =
    "id, api, revision, environment, status, notes, author, created_at";

/* After a change to env in tx: when env is the node's, builds the snapshot
 * (the change is refused when it does not build), commits, publishes.
 * *s_out: the snapshot to publish after the commit (or NULL). */
static int finish(pt_control_t *c, pt_arena_t *a, pt_store_tx_t *tx, const char *env,
                  pt_op_result_t *r, pt_json_t *doc)
{
    pt_snapshot_t *s = NULL;
    pt_db_error_t e;
    uint64_t t0 = uv_hrtime();
    memset(&e, 0, sizeof(e));
    if (strcmp(env, pt_control_environment(c)) == 0) {
        pt_config_errors_t errs = {{0}, 0, 0};
        char err[512] = "";
        if ((s = pt_control_build(c, tx, &errs, err, sizeof(err))) == NULL) {
            problem(r, 422, "deployment-failed",
                    "The environment's snapshot cannot be built with this change: %s; the "
                    "current one keeps serving.",
                    err);
            r->errors = errors_json(a, &errs);
            pt_config_errors_free(&errs);
            pt_store_end(tx, 0, &e);
            pt_metrics_deployment(0, uv_hrtime() - t0);
            return -1;
        }
        pt_config_errors_free(&errs);
    }
    if (pt_store_end(tx, 1, &e) != PT_OK) {
        if (s != NULL)
            pt_snapshot_unref(s);
        store_problem(c, r, &e);
        return -1;
    }
    if (s != NULL) {
        uint64_t gen = pt_control_publish(c, s);
        pt_json_object_set(a, doc, "generation", 10, I(a, (int64_t)gen));
        pt_metrics_deployment(1, uv_hrtime() - t0);
    }
    return 0;
}

/* Records a failed deployment (its own transaction: the change itself was
 * rolled back). */
static void record_failed(pt_control_t *c, pt_arena_t *a, const char *api, int64_t rev,
                          const char *env, const char *author, const char *why)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK)
        return;
    if (pt_store_q(&tx, a, PT_SQL_AFFECTED, NULL, &e,
                   "INSERT INTO deployments (api, revision, environment, status, notes, author, "
                   "created_at, ended_at) VALUES (:api, :rev, :env, 'failed', :why, :author, "
                   ":now, :now)",
                   "api", S(a, api), "rev", I(a, rev), "env", S(a, env), "why", S(a, why), "author",
                   S(a, author), "now", S(a, pt_store_now(a)), NULL) != PT_OK ||
        audit(&tx, a, author, "deploy.failed",
              pt_arena_printf(a, "%s@%lld/%s", api, (long long)rev, env), why, &e) != PT_OK) {
        pt_store_end(&tx, 0, &e);
        return;
    }
    pt_store_end(&tx, 1, &e);
}

/* Deploys (api, rev) to env in tx: checks, deactivates the active one,
 * inserts the new one. Returns the deployment row or NULL (r filled). */
static pt_json_t *deploy_in(pt_control_t *c, pt_arena_t *a, pt_store_tx_t *tx, const char *api,
                            int64_t *rev, const char *env, const char *notes, const char *author,
                            pt_op_result_t *r)
{
    pt_json_t *row = NULL, *rows = NULL;
    pt_db_error_t e;
    const pt_json_t *base;
    int rc;

    memset(&e, 0, sizeof(e));
    rc = pt_store_q(tx, a, PT_SQL_ROW, &row, &e, "SELECT name FROM environments WHERE name = :env",
                    "env", S(a, env), NULL);
    if (rc == PT_ENOENT) {
        problem(r, 404, "not-found", "No environment named \"%.64s\".", env);
        return NULL;
    }
    if (rc != PT_OK)
        goto fail;
    if (*rev == 0) {
        rc = pt_store_q(tx, a, PT_SQL_ROW, &row, &e,
                        "SELECT revision FROM revisions WHERE api = :api ORDER BY revision DESC "
                        "LIMIT 1",
                        "api", S(a, api), NULL);
        if (rc == PT_OK)
            pt_json_to_int64(pt_json_get(row, "revision"), rev);
    }
    if (*rev > 0)
        rc = pt_store_q(tx, a, PT_SQL_ROW, &row, &e,
                        "SELECT base_path FROM revisions WHERE api = :api AND revision = :rev",
                        "api", S(a, api), "rev", I(a, *rev), NULL);
    if (rc == PT_ENOENT || *rev <= 0) {
        problem(r, 404, "not-found", "No API \"%.100s\" with revision %lld.", api, (long long)*rev);
        return NULL;
    }
    if (rc != PT_OK)
        goto fail;
    base = pt_json_get(row, "base_path");
    if (pt_store_q(tx, a, PT_SQL_ROWS, &rows, &e,
                   "SELECT d.api AS api FROM deployments d JOIN revisions r ON r.api = d.api AND "
                   "r.revision = d.revision WHERE d.environment = :env AND d.status = 'active' "
                   "AND d.api <> :api AND r.base_path = :base",
                   "env", S(a, env), "api", S(a, api), "base", (pt_json_t *)base, NULL) != PT_OK)
        goto fail;
    if (rows->u.arr.n > 0) {
        problem(r, 409, "conflict",
                "The base path %s is already served in \"%s\" by API \"%s\"; undeploy it first.",
                base->u.str.p, env, pt_json_get(rows->u.arr.items[0], "api")->u.str.p);
        return NULL;
    }
    if (pt_store_q(tx, a, PT_SQL_AFFECTED, NULL, &e,
                   "UPDATE deployments SET status = 'inactive', ended_at = :now WHERE api = :api "
                   "AND environment = :env AND status = 'active'",
                   "now", S(a, pt_store_now(a)), "api", S(a, api), "env", S(a, env),
                   NULL) != PT_OK ||
        pt_store_q(tx, a, PT_SQL_ROW, &row, &e,
                   pt_arena_printf(a,
                                   "INSERT INTO deployments (api, revision, environment, status, "
                                   "notes, author, created_at) VALUES (:api, :rev, :env, "
                                   "'active', :notes, :author, :now) RETURNING %s",
                                   DEPLOYMENT_COLS),
                   "api", S(a, api), "rev", I(a, *rev), "env", S(a, env), "notes", N(a, notes),
                   "author", S(a, author), "now", S(a, pt_store_now(a)), NULL) != PT_OK ||
        audit(tx, a, author, "deploy", pt_arena_printf(a, "%s@%lld/%s", api, (long long)*rev, env),
              notes, &e) != PT_OK)
        goto fail;
    return row;
fail:
    store_problem(c, r, &e);
    return NULL;
}

static void deploy(pt_control_t *c, pt_arena_t *a, const char *api, int64_t rev, const char *env,
                   const char *notes, const char *author, int only_if_needed, pt_op_result_t *r)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row;

    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    if (only_if_needed) {
        pt_json_t *cur = NULL;
        int64_t have = 0;
        if (pt_store_q(&tx, a, PT_SQL_ROW, &cur, &e,
                       "SELECT revision FROM deployments WHERE api = :api AND environment = :env "
                       "AND status = 'active'",
                       "api", S(a, api), "env", S(a, env), NULL) == PT_OK &&
            pt_json_to_int64(pt_json_get(cur, "revision"), &have) == PT_OK && have == rev) {
            pt_store_end(&tx, 0, &e);
            r->status = 200;
            return;
        }
    }
    if ((row = deploy_in(c, a, &tx, api, &rev, env, notes, author, r)) == NULL) {
        pt_store_end(&tx, 0, &e);
        return;
    }
    if (finish(c, a, &tx, env, r, row) != 0) {
        if (r->status == 422)
            record_failed(c, a, api, rev, env, author, r->detail);
        return;
    }
    r->status = 201;
    r->body = row;
}

void pt_op_deploy(pt_control_t *c, pt_arena_t *a, const char *api, int64_t revision,
                  const char *env, const char *notes, const char *author, pt_op_result_t *r)
{
    deploy(c, a, api, revision, env, notes, author, 0, r);
}

void pt_op_deploy_if_needed(pt_control_t *c, pt_arena_t *a, const char *api, int64_t revision,
                            const char *author, const char *notes, pt_op_result_t *r)
{
    deploy(c, a, api, revision, pt_control_environment(c), notes, author, 1, r);
}

void pt_op_undeploy(pt_control_t *c, pt_arena_t *a, const char *api, const char *env,
                    const char *author, pt_op_result_t *r)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row = NULL;
    int rc;

    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    rc = pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                    pt_arena_printf(a,
                                    "UPDATE deployments SET status = 'inactive', ended_at = :now "
                                    "WHERE api = :api AND environment = :env AND status = "
                                    "'active' RETURNING %s",
                                    DEPLOYMENT_COLS),
                    "now", S(a, pt_store_now(a)), "api", S(a, api), "env", S(a, env), NULL);
    if (rc == PT_ENOENT) {
        pt_store_end(&tx, 0, &e);
        problem(r, 404, "not-found", "API \"%.100s\" is not deployed in \"%.64s\".", api, env);
        return;
    }
    if (rc != PT_OK ||
        audit(&tx, a, author, "undeploy", pt_arena_printf(a, "%s/%s", api, env), NULL, &e)) {
        pt_store_end(&tx, 0, &e);
        store_problem(c, r, &e);
        return;
    }
    if (finish(c, a, &tx, env, r, row) != 0)
        return;
    r->status = 200;
    r->body = row;
}

void pt_op_rollback(pt_control_t *c, pt_arena_t *a, const char *api, const char *env, int64_t to,
                    const char *notes, const char *author, pt_op_result_t *r)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *cur = NULL, *prev = NULL, *row;
    int64_t id = 0, rev = 0;
    int rc;

    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    rc = pt_store_q(&tx, a, PT_SQL_ROW, &cur, &e,
                    "SELECT id, revision FROM deployments WHERE api = :api AND environment = "
                    ":env AND status = 'active'",
                    "api", S(a, api), "env", S(a, env), NULL);
    if (rc == PT_ENOENT) {
        pt_store_end(&tx, 0, &e);
        problem(r, 409, "conflict",
                "API \"%.100s\" is not deployed in \"%.64s\": nothing to roll "
                "back.",
                api, env);
        return;
    }
    if (rc != PT_OK)
        goto fail;
    pt_json_to_int64(pt_json_get(cur, "id"), &id);
    pt_json_to_int64(pt_json_get(cur, "revision"), &rev);
    if (to == 0) {
        rc = pt_store_q(&tx, a, PT_SQL_ROW, &prev, &e,
                        "SELECT revision FROM deployments WHERE api = :api AND environment = :env "
                        "AND id < :id AND status <> 'failed' AND revision <> :rev ORDER BY id "
                        "DESC LIMIT 1",
                        "api", S(a, api), "env", S(a, env), "id", I(a, id), "rev", I(a, rev), NULL);
        if (rc == PT_ENOENT) {
            pt_store_end(&tx, 0, &e);
            problem(r, 409, "conflict",
                    "API \"%.100s\" has no earlier revision deployed in \"%.64s\".", api, env);
            return;
        }
        if (rc != PT_OK)
            goto fail;
        pt_json_to_int64(pt_json_get(prev, "revision"), &to);
    }
    if ((row = deploy_in(c, a, &tx, api, &to, env,
                         notes != NULL
                             ? notes
                             : pt_arena_printf(a, "rollback from revision %lld", (long long)rev),
                         author, r)) == NULL) {
        pt_store_end(&tx, 0, &e);
        return;
    }
    if (finish(c, a, &tx, env, r, row) != 0) {
        if (r->status == 422)
            record_failed(c, a, api, to, env, author, r->detail);
        return;
    }
    r->status = 201;
    r->body = row;
    return;
fail:
    pt_store_end(&tx, 0, &e);
    store_problem(c, r, &e);
}

void pt_op_env_create(pt_control_t *c, pt_arena_t *a, const char *name, const char *author,
                      pt_op_result_t *r)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row = NULL;
    char *now = pt_store_now(a);
    int rc;

    memset(&e, 0, sizeof(e));
    if (!pt_config_env_name_ok(name)) {
        problem(r, 400, "bad-request",
                "An environment name is 1 to 63 of a-z, 0-9, '_' and '-', starting with a "
                "letter or digit.");
        return;
    }
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    rc = pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                    "INSERT INTO environments (name, created_at) VALUES (:n, :now) ON CONFLICT "
                    "(name) DO NOTHING RETURNING name, created_at",
                    "n", S(a, name), "now", S(a, now), NULL);
    if (rc == PT_ENOENT) {
        pt_store_end(&tx, 0, &e);
        problem(r, 409, "conflict", "The environment \"%s\" exists.", name);
        return;
    }
    if (rc != PT_OK || audit(&tx, a, author, "environment.create", name, NULL, &e) != PT_OK ||
        pt_store_end(&tx, 1, &e) != PT_OK) {
        pt_store_end(&tx, 0, &e);
        store_problem(c, r, &e);
        return;
    }
    r->status = 201;
    r->body = row;
}

/* ------------------------------------------------------------ users */

static const char USER_COLS[] =
    "name, roles, allow_ips, certificates, apis, password IS NOT NULL AS has_password, "
    "created_at, updated_at";

/* A user name: 1 to 64 printable characters, no ':' (basic authentication
 * splits on it), no '/' (a path segment of the admin API). */
static int user_name_ok(const char *s)
{
    size_t i, n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f || s[i] == ':' || s[i] == '/' ||
            s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

/* A list member of the document as JSON text (arrays of strings only), or
 * NULL when absent; *bad set when present and not such a list. */
static pt_json_t *list_text(pt_arena_t *a, const pt_json_t *doc, const char *key, int *bad)
{
    const pt_json_t *v = pt_json_get(doc, key);
    pt_buf_t b;
    pt_json_t *out;
    size_t i;
    if (v == NULL)
        return NULL;
    if (v->type == PT_JSON_NULL)
        return pt_json_null(a);
    if (v->type != PT_JSON_ARRAY || v->u.arr.n > 1000) {
        *bad = 1;
        return NULL;
    }
    for (i = 0; i < v->u.arr.n; i++)
        if (v->u.arr.items[i]->type != PT_JSON_STRING || v->u.arr.items[i]->u.str.len == 0 ||
            v->u.arr.items[i]->u.str.len > 512) {
            *bad = 1;
            return NULL;
        }
    pt_buf_init(&b, 0);
    if (pt_json_write(&b, v) != PT_OK) {
        pt_buf_free(&b);
        *bad = 1;
        return NULL;
    }
    out = pt_json_string(a, b.data, b.len);
    pt_buf_free(&b);
    return out;
}

void pt_op_user_put(pt_control_t *c, pt_arena_t *a, const char *name, const char *text, size_t len,
                    int create, const char *author, pt_op_result_t *r)
{
    static const char *const allowed[] = {"name",         "roles", "password", "allow_ips",
                                          "certificates", "apis",  NULL};
    pt_json_error_t jerr;
    pt_json_t *doc = len > 0 ? pt_json_parse(a, text, len, &PT_JSON_LIMITS_DEFAULT, &jerr) : NULL;
    pt_json_t *row = NULL, *roles, *ips, *certs, *apis, *pw = NULL;
    const pt_json_t *v;
    pt_store_tx_t tx;
    pt_db_error_t e;
    char *now = pt_store_now(a), hash[crypto_pwhash_STRBYTES];
    int bad = 0, rc;
    size_t i, k;

    memset(&e, 0, sizeof(e));
    if (doc == NULL || doc->type != PT_JSON_OBJECT) {
        problem(r, 400, "bad-request",
                "Expected a JSON object: {\"name\", \"roles\": [...], "
                "\"password\", \"allow_ips\", \"certificates\", \"apis\"}.");
        return;
    }
    for (i = 0; i < doc->u.obj.n; i++) {
        for (k = 0; allowed[k] != NULL && strcmp(allowed[k], doc->u.obj.members[i].key) != 0; k++)
            ;
        if (allowed[k] == NULL) {
            problem(r, 400, "bad-request",
                    "Unknown member \"%.60s\" (known: name, roles, "
                    "password, allow_ips, certificates, apis).",
                    doc->u.obj.members[i].key);
            return;
        }
    }
    if (name == NULL) {
        v = pt_json_get(doc, "name");
        name = v != NULL && v->type == PT_JSON_STRING ? v->u.str.p : NULL;
    }
    if (name == NULL || !user_name_ok(name)) {
        problem(r, 400, "bad-request",
                "A user name is 1 to 64 printable characters without spaces, ':', '/', '\"' or "
                "'\\\\'.");
        return;
    }
    roles = list_text(a, doc, "roles", &bad);
    ips = list_text(a, doc, "allow_ips", &bad);
    certs = list_text(a, doc, "certificates", &bad);
    apis = list_text(a, doc, "apis", &bad);
    if (bad) {
        problem(r, 400, "bad-request",
                "roles, allow_ips, certificates and apis are lists of non-empty strings.");
        return;
    }
    if ((v = pt_json_get(doc, "password")) != NULL && v->type != PT_JSON_NULL) {
        if (v->type != PT_JSON_STRING || v->u.str.len < 8 || v->u.str.len > 1024 ||
            strlen(v->u.str.p) != v->u.str.len) {
            problem(r, 400, "bad-request", "A password is 8 to 1024 bytes.");
            return;
        }
        /* Argon2id here, on the control pool: the store never sees the password */
        if (crypto_pwhash_str(hash, v->u.str.p, v->u.str.len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
            problem(r, 503, "busy", "Out of memory hashing the password; try again.");
            return;
        }
        sodium_memzero((void *)v->u.str.p, v->u.str.len);
        pw = S(a, hash);
    } else if (v != NULL) {
        pw = pt_json_null(a); /* "password": null removes it */
    }
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    if (create) {
        rc = pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                        "INSERT INTO users (name, roles, password, allow_ips, certificates, apis, "
                        "created_at, updated_at) VALUES (:n, :r, :p, :i, :c, :a, :now, :now) ON "
                        "CONFLICT (name) DO NOTHING RETURNING name",
                        "n", S(a, name), "r", roles != NULL ? roles : S(a, "[]"), "p",
                        pw != NULL ? pw : pt_json_null(a), "i", ips != NULL ? ips : pt_json_null(a),
                        "c", certs != NULL ? certs : pt_json_null(a), "a",
                        apis != NULL ? apis : pt_json_null(a), "now", S(a, now), NULL);
    } else {
        /* only the members given change; a given null clears */
        rc = pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                        "UPDATE users SET roles = CASE WHEN :hr = 1 THEN :r ELSE roles END, "
                        "password = CASE WHEN :hp = 1 THEN :p ELSE password END, "
                        "allow_ips = CASE WHEN :hi = 1 THEN :i ELSE allow_ips END, "
                        "certificates = CASE WHEN :hc = 1 THEN :c ELSE certificates END, "
                        "apis = CASE WHEN :ha = 1 THEN :a ELSE apis END, updated_at = :now "
                        "WHERE name = :n RETURNING name",
                        "n", S(a, name), "hr", I(a, roles != NULL), "r",
                        roles != NULL && roles->type != PT_JSON_NULL ? roles : S(a, "[]"), "hp",
                        I(a, pw != NULL), "p", pw != NULL ? pw : pt_json_null(a), "hi",
                        I(a, ips != NULL), "i", ips != NULL ? ips : pt_json_null(a), "hc",
                        I(a, certs != NULL), "c", certs != NULL ? certs : pt_json_null(a), "ha",
                        I(a, apis != NULL), "a", apis != NULL ? apis : pt_json_null(a), "now",
                        S(a, now), NULL);
    }
    if (rc == PT_ENOENT) {
        pt_store_end(&tx, 0, &e);
        if (create)
            problem(r, 409, "conflict", "The user \"%s\" exists.", name);
        else
            problem(r, 404, "not-found", "No such user: \"%s\".", name);
        return;
    }
    if (rc != PT_OK ||
        audit(&tx, a, author, create ? "user.create" : "user.update", name, NULL, &e) != PT_OK ||
        pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                   pt_arena_printf(a, "SELECT %s FROM users WHERE name = :n", USER_COLS), "n",
                   S(a, name), NULL) != PT_OK) {
        pt_store_end(&tx, 0, &e);
        store_problem(c, r, &e);
        return;
    }
    if (finish(c, a, &tx, pt_control_environment(c), r, row) != 0) {
        if (r->status == 422)
            snprintf(r->detail, sizeof(r->detail), "%s",
                     "The user is not valid for this node (see errors); nothing was changed.");
        return;
    }
    r->status = create ? 201 : 200;
    r->body = row;
}

void pt_op_user_delete(pt_control_t *c, pt_arena_t *a, const char *name, const char *author,
                       pt_op_result_t *r)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row = NULL, *doc = pt_json_object(a);
    int rc;
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    rc = pt_store_q(&tx, a, PT_SQL_AFFECTED, NULL, &e, "DELETE FROM user_keys WHERE user_name = :n",
                    "n", S(a, name), NULL);
    if (rc == PT_OK)
        rc = pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                        "DELETE FROM users WHERE name = :n RETURNING name", "n", S(a, name), NULL);
    if (rc == PT_ENOENT) {
        pt_store_end(&tx, 0, &e);
        problem(r, 404, "not-found", "No such user: \"%s\".", name);
        return;
    }
    if (rc != PT_OK || audit(&tx, a, author, "user.delete", name, NULL, &e) != PT_OK) {
        pt_store_end(&tx, 0, &e);
        store_problem(c, r, &e);
        return;
    }
    pt_json_object_set(a, doc, "name", 4, S(a, name));
    if (finish(c, a, &tx, pt_control_environment(c), r, doc) != 0)
        return;
    r->status = 200;
    r->body = doc;
}

void pt_op_user_key_create(pt_control_t *c, pt_arena_t *a, const char *name, const char *label,
                           const char *author, pt_op_result_t *r)
{
    unsigned char secret[32], idb[8];
    char key[3 + sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    char id[17], digest[7 + 65];
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row = NULL;
    int rc;

    memset(&e, 0, sizeof(e));
    if (label != NULL && strlen(label) > 200) {
        problem(r, 400, "bad-request", "A key label is at most 200 characters.");
        return;
    }
    randombytes_buf(secret, sizeof(secret));
    randombytes_buf(idb, sizeof(idb));
    memcpy(key, "pk_", 3);
    sodium_bin2base64(key + 3, sizeof(key) - 3, secret, sizeof(secret),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2hex(id, sizeof(id), idb, sizeof(idb));
    snprintf(digest, sizeof(digest), "sha256:%s", sha256_hex(a, key, strlen(key)));
    sodium_memzero(secret, sizeof(secret));
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    rc = pt_store_q(&tx, a, PT_SQL_ROW, &row, &e, "SELECT name FROM users WHERE name = :n", "n",
                    S(a, name), NULL);
    if (rc == PT_ENOENT) {
        pt_store_end(&tx, 0, &e);
        problem(r, 404, "not-found", "No such user: \"%s\".", name);
        sodium_memzero(key, sizeof(key));
        return;
    }
    if (rc != PT_OK ||
        pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                   "INSERT INTO user_keys (id, user_name, label, hash, created_at) VALUES (:i, "
                   ":n, :l, :h, :now) RETURNING id, user_name AS user, label, created_at",
                   "i", S(a, id), "n", S(a, name), "l", N(a, label), "h", S(a, digest), "now",
                   S(a, pt_store_now(a)), NULL) != PT_OK ||
        audit(&tx, a, author, "user.key.create", name, id, &e) != PT_OK) {
        pt_store_end(&tx, 0, &e);
        store_problem(c, r, &e);
        sodium_memzero(key, sizeof(key));
        return;
    }
    if (finish(c, a, &tx, pt_control_environment(c), r, row) != 0) {
        sodium_memzero(key, sizeof(key));
        return;
    }
    /* the key itself: in this answer only, never stored */
    pt_json_object_set(a, row, "key", 3, S(a, key));
    sodium_memzero(key, sizeof(key));
    r->status = 201;
    r->body = row;
}

void pt_op_user_key_revoke(pt_control_t *c, pt_arena_t *a, const char *name, const char *id,
                           const char *author, pt_op_result_t *r)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row = NULL;
    int rc;
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(c), &tx, 1, &e) != PT_OK) {
        store_problem(c, r, &e);
        return;
    }
    rc = pt_store_q(&tx, a, PT_SQL_ROW, &row, &e,
                    "UPDATE user_keys SET revoked_at = :now WHERE id = :i AND user_name = :n AND "
                    "revoked_at IS NULL RETURNING id, user_name AS user, label, created_at, "
                    "revoked_at",
                    "now", S(a, pt_store_now(a)), "i", S(a, id), "n", S(a, name), NULL);
    if (rc == PT_ENOENT) {
        pt_store_end(&tx, 0, &e);
        problem(r, 404, "not-found", "No active key %s of user \"%s\".", id, name);
        return;
    }
    if (rc != PT_OK || audit(&tx, a, author, "user.key.revoke", name, id, &e) != PT_OK) {
        pt_store_end(&tx, 0, &e);
        store_problem(c, r, &e);
        return;
    }
    if (finish(c, a, &tx, pt_control_environment(c), r, row) != 0)
        return;
    r->status = 200;
    r->body = row;
}
