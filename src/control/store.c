/*
 * store.c - the control plane's store (see store.h).
 */
#include "control/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "process/sqltext.h"

#define PARAMS_MAX 32

struct pt_store_s {
    pt_connection_def_t def; /* the strings below are owned */
    pt_db_t *db;
};

/* The migrations, in order: migration k brings the schema to version k.
 * Statements are portable between SQLite and PostgreSQL but for the
 * generated keys ({ID}). Times are ISO 8601 text written by the node. */
static const char *const migration_1[] = {
    "CREATE TABLE apis (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL)",
    "CREATE TABLE revisions (api TEXT NOT NULL REFERENCES apis(name), revision INTEGER NOT NULL, "
    "hash TEXT NOT NULL, base_path TEXT NOT NULL, kind TEXT NOT NULL, label TEXT, notes TEXT, "
    "author TEXT NOT NULL, created_at TEXT NOT NULL, definition TEXT NOT NULL, "
    "PRIMARY KEY (api, revision))",
    "CREATE TABLE environments (name TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
    "CREATE TABLE deployments (id {ID}, api TEXT NOT NULL, revision INTEGER NOT NULL, "
    "environment TEXT NOT NULL REFERENCES environments(name), status TEXT NOT NULL, "
    "notes TEXT, author TEXT NOT NULL, created_at TEXT NOT NULL, ended_at TEXT, "
    "FOREIGN KEY (api, revision) REFERENCES revisions(api, revision))",
    /* at most one active revision per API per environment, whatever the node */
    "CREATE UNIQUE INDEX deployments_active ON deployments(api, environment) "
    "WHERE status = 'active'",
    "CREATE INDEX deployments_env ON deployments(environment, id)",
    "CREATE TABLE admin_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, "
    "created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE TABLE audit_events (id {ID}, at TEXT NOT NULL, actor TEXT NOT NULL, "
    "action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT)",
    NULL};

/* Users managed through the admin API (issue 7): JSON text lists for roles,
 * allow_ips (NULL: no list; "[]": nothing allowed), certificates and apis;
 * passwords as Argon2id hashes and API keys as SHA-256 hashes only. */
static const char *const migration_2[] = {
    "CREATE TABLE users (name TEXT PRIMARY KEY, roles TEXT NOT NULL, password TEXT, "
    "allow_ips TEXT, certificates TEXT, apis TEXT, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL)",
    "CREATE TABLE user_keys (id TEXT PRIMARY KEY, user_name TEXT NOT NULL REFERENCES "
    "users(name) ON DELETE CASCADE, label TEXT, hash TEXT NOT NULL UNIQUE, created_at TEXT NOT "
    "NULL, revoked_at TEXT)",
    "CREATE INDEX user_keys_user ON user_keys(user_name)", NULL};

/* Execution records and webhook deliveries (issue 8): times in ms since the
 * epoch, a kept result's body in base64, webhook attempts as JSON text. */
static const char *const migration_3[] = {
    "CREATE TABLE executions (id TEXT PRIMARY KEY, node TEXT NOT NULL, api TEXT NOT NULL, "
    "route TEXT NOT NULL, process TEXT NOT NULL, generation BIGINT NOT NULL, user_name TEXT, "
    "status TEXT NOT NULL, http_status INTEGER NOT NULL, enqueued_ms BIGINT NOT NULL, "
    "started_ms BIGINT NOT NULL, ended_ms BIGINT NOT NULL, bytes_in BIGINT NOT NULL, "
    "bytes_out BIGINT NOT NULL, message TEXT NOT NULL, keep_result INTEGER NOT NULL, "
    "result_status INTEGER, result_ctype TEXT, result_headers TEXT, result_body TEXT, "
    "result_truncated INTEGER NOT NULL, expires_ms BIGINT NOT NULL, webhooks TEXT)",
    "CREATE INDEX executions_node_status ON executions(node, status)",
    "CREATE INDEX executions_api ON executions(api, enqueued_ms)",
    "CREATE TABLE webhook_deliveries (id TEXT PRIMARY KEY, execution TEXT NOT NULL, "
    "node TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL, "
    "state TEXT NOT NULL, due_ms BIGINT NOT NULL, give_up_ms BIGINT NOT NULL)",
    "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(node, state)",
    NULL};

/* Minute aggregates of the metrics (issue 9): a row per node, minute and
 * series (kind http|process|pool|consumer); codes and hist are "k:n,..."
 * lists (status or outcome codes; log-linear histogram buckets, see
 * metrics/metrics.h). A node that restarts within a minute writes a second
 * row for it: readers add rows up. */
static const char *const migration_4[] = {
    "CREATE TABLE metrics_minutes (node TEXT NOT NULL, environment TEXT NOT NULL, "
    "minute BIGINT NOT NULL, kind TEXT NOT NULL, api TEXT NOT NULL, name TEXT NOT NULL, "
    "method TEXT NOT NULL, n BIGINT NOT NULL, bytes_in BIGINT NOT NULL, "
    "bytes_out BIGINT NOT NULL, sum_us BIGINT NOT NULL, sumsq DOUBLE PRECISION NOT NULL, "
    "codes TEXT NOT NULL, hist TEXT NOT NULL)",
    "CREATE INDEX metrics_minutes_node ON metrics_minutes(node, minute)",
    "CREATE INDEX metrics_minutes_env ON metrics_minutes(environment, minute)", NULL};

static const char *const *const migrations[] = {migration_1, migration_2, migration_3, migration_4};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == PT_STORE_SCHEMA_VERSION,
               "PT_STORE_SCHEMA_VERSION is the number of migrations");

pt_store_t *pt_store_new(const pt_connection_def_t *def)
{
    pt_store_t *s;
    if (def->kind != PT_CONN_SQLITE && def->kind != PT_CONN_POSTGRESQL)
        return NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->def = *def;
    s->def.name = strdup("store");
    s->def.target = strdup(def->target);
    s->def.display = strdup(def->display ? def->display : def->target);
    s->def.pool_max = 4;
    s->def.pool_min = 0;
    s->def.timeout_ms = 10000;
    s->def.read_only = 0;
    if (def->kind == PT_CONN_SQLITE) {
        /* connections open existing databases only; the store is ours to create */
        int fd = open(def->target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    if (s->def.name == NULL || s->def.target == NULL || s->def.display == NULL ||
        (s->db = pt_db_new(&s->def)) == NULL) {
        pt_store_free(s);
        return NULL;
    }
    return s;
}

void pt_store_free(pt_store_t *s)
{
    if (s == NULL)
        return;
    if (s->db != NULL)
        pt_db_free(s->db);
    free(s->def.name);
    if (s->def.target != NULL) /* a URL may hold a password */
        memset(s->def.target, 0, strlen(s->def.target));
    free(s->def.target);
    free(s->def.display);
    free(s);
}

const char *pt_store_kind(const pt_store_t *s)
{
    return s->def.kind == PT_CONN_SQLITE ? "sqlite" : "postgresql";
}

const char *pt_store_display(const pt_store_t *s)
{
    return s->def.display;
}

char *pt_store_now(pt_arena_t *a)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    return pt_arena_printf(a, "%s.%03ldZ", buf, ts.tv_nsec / 1000000);
}

int pt_store_begin(pt_store_t *s, pt_store_tx_t *tx, int transaction, pt_db_error_t *err)
{
    memset(tx, 0, sizeof(*tx));
    tx->store = s;
    if ((tx->conn = pt_db_borrow(s->db, 5000, err)) == NULL)
        return PT_ERROR;
    if (transaction) {
        if (pt_db_begin(tx->conn, s->db, err) != PT_OK) {
            pt_db_return(s->db, tx->conn, 1);
            tx->conn = NULL;
            return PT_ERROR;
        }
        tx->in_tx = 1;
    }
    return PT_OK;
}

int pt_store_end(pt_store_tx_t *tx, int commit, pt_db_error_t *err)
{
    int rc = PT_OK;
    if (tx->conn == NULL)
        return PT_ERROR;
    if (tx->in_tx) {
        if (commit && !tx->broken) {
            if (pt_db_commit(tx->conn, tx->store->db, err) != PT_OK) {
                pt_db_rollback(tx->conn, tx->store->db);
                rc = PT_ERROR;
            }
        } else {
            pt_db_rollback(tx->conn, tx->store->db);
        }
    }
    pt_db_return(tx->store->db, tx->conn, tx->broken);
    tx->conn = NULL;
    return rc;
}

typedef struct collect_s {
    pt_arena_t *a;
    pt_named_expr_t params[PARAMS_MAX];
    size_t n;
    int overflow;
} collect_t;

/* Each distinct :name of a statement, in order of first use. */
static void collect(void *arg, const char *name, size_t len)
{
    collect_t *c = arg;
    size_t i;
    for (i = 0; i < c->n; i++)
        if (strlen(c->params[i].name) == len && memcmp(c->params[i].name, name, len) == 0)
            return;
    if (c->n == PARAMS_MAX || (c->params[c->n].name = pt_arena_strndup(c->a, name, len)) == NULL)
        c->overflow = 1;
    else
        c->n++;
}

static void store_err(pt_db_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void store_err(pt_db_error_t *err, const char *fmt, ...)
{
    va_list ap;
    memset(err, 0, sizeof(*err));
    err->kind = PT_PERR_INVALID;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

int pt_store_q(pt_store_tx_t *tx, pt_arena_t *a, pt_sql_result_t kind, pt_json_t **out,
               pt_db_error_t *err, const char *sql, ...)
{
    pt_step_def_t st;
    collect_t col;
    const char *names[PARAMS_MAX];
    pt_json_t *values[PARAMS_MAX], *args[PARAMS_MAX], *dummy = NULL;
    size_t n = 0, i, k;
    char why[160];
    va_list ap;
    int rc;

    va_start(ap, sql);
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (name == NULL)
            break;
        if (n == PARAMS_MAX) {
            va_end(ap);
            store_err(err, "store: too many parameters");
            return PT_ERROR;
        }
        names[n] = name;
        values[n++] = va_arg(ap, pt_json_t *);
    }
    va_end(ap);
    memset(&st, 0, sizeof(st));
    st.kind = PT_STEP_SQL;
    st.result = kind;
    st.not_found_status = 404;
    memset(&col, 0, sizeof(col));
    col.a = a;
    if ((st.sql = pt_arena_strdup(a, sql)) == NULL ||
        pt_sql_scan(st.sql, strlen(st.sql), collect, &col, why, sizeof(why)) != 0 || col.overflow) {
        store_err(err, "store: %s", col.overflow ? "too many parameters" : why);
        return PT_ERROR;
    }
    st.params = col.params;
    st.nparams = col.n;
    if (pt_sql_rewrite(a, &st, why, sizeof(why))) {
        store_err(err, "store: %s", why);
        return PT_ERROR;
    }
    for (i = 0; i < st.nparams; i++) {
        args[i] = NULL;
        for (k = 0; k < n; k++)
            if (strcmp(names[k], st.params[i].name) == 0)
                args[i] = values[k];
        if (args[i] == NULL && (args[i] = pt_json_null(a)) == NULL) {
            store_err(err, "store: out of memory");
            return PT_ERROR;
        }
    }
    rc = pt_db_exec(tx->conn, tx->store->db, &st, args, 0, a, out != NULL ? out : &dummy, err);
    if (rc == PT_ERROR && err->broken)
        tx->broken = 1;
    return rc;
}

/* The DDL of one statement for this backend. */
static char *ddl(pt_arena_t *a, const pt_store_t *s, const char *stmt)
{
    const char *id = strstr(stmt, "{ID}");
    const char *key = s->def.kind == PT_CONN_SQLITE ? "INTEGER PRIMARY KEY"
                                                    : "BIGINT GENERATED ALWAYS AS IDENTITY "
                                                      "PRIMARY KEY";
    if (id == NULL)
        return pt_arena_strdup(a, stmt);
    return pt_arena_printf(a, "%.*s%s%s", (int)(id - stmt), stmt, key, id + 4); /* one {ID} */
}

static int64_t version_of(pt_store_tx_t *tx, pt_arena_t *a, pt_db_error_t *err)
{
    pt_json_t *row = NULL, *v;
    int64_t n = 0;
    if (pt_store_q(tx, a, PT_SQL_ROW, &row, err,
                   "SELECT coalesce(max(version), 0) AS v FROM portico_schema", NULL) != PT_OK)
        return -1;
    v = pt_json_get(row, "v");
    if (v == NULL || pt_json_to_int64(v, &n) != PT_OK)
        return -1;
    return n;
}

int pt_store_migrate(pt_store_t *s, char *err, size_t errlen)
{
    pt_arena_t a;
    pt_store_tx_t tx;
    pt_db_error_t e;
    int64_t have;
    size_t m, i;
    int rc = -1;

    pt_arena_init(&a, NULL);
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(s, &tx, 0, &e) != PT_OK) {
        snprintf(err, errlen, "store %s: %s", s->def.display, e.message);
        goto out;
    }
    if (pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                   "CREATE TABLE IF NOT EXISTS portico_schema (version INTEGER NOT NULL)",
                   NULL) != PT_OK) {
        pt_store_end(&tx, 0, &e);
        snprintf(err, errlen, "store %s: %s", s->def.display, e.message);
        goto out;
    }
    pt_store_end(&tx, 0, &e);
    for (m = 0; m < sizeof(migrations) / sizeof(migrations[0]); m++) {
        if (pt_store_begin(s, &tx, 1, &e) != PT_OK) {
            snprintf(err, errlen, "store %s: %s", s->def.display, e.message);
            goto out;
        }
        /* two nodes starting together: one migrates, the other waits */
        if (s->def.kind == PT_CONN_POSTGRESQL &&
            pt_store_q(&tx, &a, PT_SQL_ROWS, NULL, &e,
                       "SELECT pg_advisory_xact_lock(7510301) AS locked", NULL) != PT_OK)
            goto fail;
        if ((have = version_of(&tx, &a, &e)) < 0)
            goto fail;
        if (have > PT_STORE_SCHEMA_VERSION) {
            pt_store_end(&tx, 0, &e);
            snprintf(err, errlen,
                     "store %s has schema version %lld, newer than this build's %d: upgrade "
                     "portico",
                     s->def.display, (long long)have, PT_STORE_SCHEMA_VERSION);
            goto out;
        }
        if ((size_t)have > m) {
            pt_store_end(&tx, 0, &e);
            continue;
        }
        for (i = 0; migrations[m][i] != NULL; i++) {
            char *sql = ddl(&a, s, migrations[m][i]);
            if (sql == NULL || pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e, sql, NULL) != PT_OK)
                goto fail;
        }
        if (pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                       "INSERT INTO portico_schema (version) VALUES (:v)", "v",
                       pt_json_int(&a, (int64_t)m + 1), NULL) != PT_OK)
            goto fail;
        if (pt_store_end(&tx, 1, &e) != PT_OK) {
            snprintf(err, errlen, "store %s: migration %zu: %s", s->def.display, m + 1, e.message);
            goto out;
        }
    }
    rc = PT_STORE_SCHEMA_VERSION;
    goto out;
fail:
    snprintf(err, errlen, "store %s: migration: %s", s->def.display, e.message);
    pt_store_end(&tx, 0, &e);
out:
    pt_arena_destroy(&a);
    return rc;
}
