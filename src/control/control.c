/*
 * control.c - the control plane of a node with a store (see control.h).
 */
#include "control/control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/ops.h"

#include <openssl/crypto.h>
#include <sodium.h>
#include "core/buf.h"
#include "core/log.h"

#define PUBLISH_WAIT_NS (10ull * 1000000000ull)

struct pt_control_s {
    uv_mutex_t lock; /* changes and builds */
    char *config_path;
    char *environment;
    char *data_dir;
    char *apis_dir; /* NULL without `apis:` */
    pt_store_t *store;
    atomic_int store_ok;
    atomic_uint_fast64_t generation; /* the last one built */
    /* publication: a pending snapshot for the main loop, then its report */
    uv_mutex_t pub_lock;
    uv_cond_t pub_cond;
    pt_snapshot_t *pending;
    uint64_t published;
    uv_async_t *async;
    pt_buf_t copy; /* the rows of the last build (JSON), written once published */
    /* the probe: notices when the store goes away or comes back */
    uv_thread_t probe;
    uv_mutex_t probe_lock;
    uv_cond_t probe_cond;
    int stopping, probing;
};

pt_control_t *pt_control;

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t i, n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (i = 1; i <= n; i++)
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    return 0;
}

static void ensure_environment(pt_control_t *c)
{
    pt_arena_t a;
    pt_op_result_t r;
    pt_arena_init(&a, NULL);
    memset(&r, 0, sizeof(r));
    pt_op_env_create(c, &a, c->environment, "node", &r);
    if (r.status >= 400 && r.status != 409)
        pt_log_warn("store: cannot create environment \"%s\": %s", c->environment, r.detail);
    pt_arena_destroy(&a);
}

#define PROBE_EVERY_NS (2ull * 1000000000ull)

/* Is the store there? When it was not: migrations (a store down at start
 * never had them) and the node's environment, so the next deploy works. */
static void probe_once(pt_control_t *c)
{
    char err[512];
    if (!pt_control_store_ok(c)) {
        if (pt_store_migrate(c->store, err, sizeof(err)) >= 0) {
            pt_control_lock(c);
            ensure_environment(c);
            pt_control_unlock(c);
            pt_control_set_store_ok(c, 1);
        }
    } else {
        pt_arena_t a;
        pt_store_tx_t tx;
        pt_db_error_t e;
        int ok;
        pt_arena_init(&a, NULL);
        memset(&e, 0, sizeof(e));
        ok = pt_store_begin(c->store, &tx, 0, &e) == PT_OK;
        if (ok) {
            ok = pt_store_q(&tx, &a, PT_SQL_ROWS, NULL, &e, "SELECT 1 AS one", NULL) == PT_OK;
            pt_store_end(&tx, 0, &e);
        }
        pt_arena_destroy(&a);
        pt_control_set_store_ok(c, ok);
    }
}

static void probe_main(void *arg)
{
    pt_control_t *c = arg;
    uv_mutex_lock(&c->probe_lock);
    while (!c->stopping) {
        uv_cond_timedwait(&c->probe_cond, &c->probe_lock, PROBE_EVERY_NS);
        if (c->stopping)
            break;
        uv_mutex_unlock(&c->probe_lock);
        probe_once(c);
        uv_mutex_lock(&c->probe_lock);
    }
    uv_mutex_unlock(&c->probe_lock);
    OPENSSL_thread_stop(); /* libpq's TLS state of this thread */
}

pt_control_t *pt_control_open(const char *config_path, const pt_config_t *cfg, char *err,
                              size_t errlen)
{
    pt_control_t *c = calloc(1, sizeof(*c));
    int v;
    if (c == NULL || (c->config_path = strdup(config_path)) == NULL ||
        (c->environment = strdup(cfg->environment)) == NULL ||
        (c->data_dir = strdup(cfg->data_dir)) == NULL ||
        (cfg->apis_dir != NULL && (c->apis_dir = strdup(cfg->apis_dir)) == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    uv_mutex_init(&c->lock);
    uv_mutex_init(&c->pub_lock);
    uv_cond_init(&c->pub_cond);
    if (mkdir_p(c->data_dir) != 0) {
        snprintf(err, errlen, "data directory %s: %s", c->data_dir, strerror(errno));
        goto fail_sync;
    }
    if ((c->store = pt_store_new(cfg->store)) == NULL) {
        snprintf(err, errlen, "store: out of memory");
        goto fail_sync;
    }
    v = pt_store_migrate(c->store, err, errlen);
    if (v < 0 && strstr(err, "newer than this build") != NULL)
        goto fail_sync;
    if (v < 0) {
        pt_log_error("%s: serving the last snapshot kept in %s", err, c->data_dir);
        atomic_store(&c->store_ok, 0);
    } else {
        atomic_store(&c->store_ok, 1);
        pt_log_info("store %s (%s), schema version %d; environment \"%s\"",
                    pt_store_display(c->store), pt_store_kind(c->store), v, c->environment);
        ensure_environment(c);
    }
    uv_mutex_init(&c->probe_lock);
    uv_cond_init(&c->probe_cond);
    if (uv_thread_create(&c->probe, probe_main, c) == 0)
        c->probing = 1;
    pt_control = c;
    return c;
fail_sync:
    uv_cond_destroy(&c->pub_cond);
    uv_mutex_destroy(&c->pub_lock);
    uv_mutex_destroy(&c->lock);
fail:
    if (c != NULL) {
        pt_store_free(c->store);
        free(c->config_path);
        free(c->environment);
        free(c->data_dir);
        free(c->apis_dir);
        free(c);
    }
    return NULL;
}

void pt_control_close(pt_control_t *c)
{
    if (c == NULL)
        return;
    if (c->probing) {
        uv_mutex_lock(&c->probe_lock);
        c->stopping = 1;
        uv_cond_signal(&c->probe_cond);
        uv_mutex_unlock(&c->probe_lock);
        uv_thread_join(&c->probe);
    }
    uv_cond_destroy(&c->probe_cond);
    uv_mutex_destroy(&c->probe_lock);
    if (pt_control == c)
        pt_control = NULL;
    if (c->pending != NULL)
        pt_snapshot_unref(c->pending);
    pt_store_free(c->store);
    pt_buf_free(&c->copy);
    uv_cond_destroy(&c->pub_cond);
    uv_mutex_destroy(&c->pub_lock);
    uv_mutex_destroy(&c->lock);
    free(c->config_path);
    free(c->environment);
    free(c->data_dir);
    free(c->apis_dir);
    free(c);
}

void pt_control_lock(pt_control_t *c)
{
    uv_mutex_lock(&c->lock);
}

void pt_control_unlock(pt_control_t *c)
{
    uv_mutex_unlock(&c->lock);
}

pt_store_t *pt_control_store(pt_control_t *c)
{
    return c->store;
}

const char *pt_control_environment(const pt_control_t *c)
{
    return c->environment;
}

const char *pt_control_data_dir(const pt_control_t *c)
{
    return c->data_dir;
}

int pt_control_store_ok(const pt_control_t *c)
{
    return atomic_load(&c->store_ok);
}

void pt_control_set_store_ok(pt_control_t *c, int ok)
{
    if (atomic_exchange(&c->store_ok, ok) != ok)
        pt_log(ok ? PT_LOG_INFO : PT_LOG_WARN, "store %s is %s", pt_store_display(c->store),
               ok ? "reachable again" : "unreachable: the node keeps serving its snapshot");
}

uint64_t pt_control_generation(const pt_control_t *c)
{
    return atomic_load(&c->generation);
}

/* Where a definition "lives" for its relative paths (sqlite: files, Lua
 * files): the apis folder when there is one, else the configuration's. */
static char *definition_name(pt_control_t *c, pt_arena_t *a, const char *api)
{
    if (c->apis_dir != NULL)
        return pt_arena_printf(a, "%s/%s.yaml", c->apis_dir, api);
    {
        const char *slash = strrchr(c->config_path, '/');
        if (slash == NULL)
            return pt_arena_printf(a, "%s.yaml", api);
        return pt_arena_printf(a, "%.*s/%s.yaml", (int)(slash - c->config_path), c->config_path,
                               api);
    }
}

int pt_control_check_definition(pt_control_t *c, const char *text, size_t len, pt_arena_t *a,
                                char **name, char **base_path, const char **kind,
                                pt_config_errors_t *errs)
{
    pt_config_t *cfg = pt_config_new(c->apis_dir != NULL ? c->apis_dir : c->config_path);
    char *file = definition_name(c, a, "definition");
    int rc = -1;
    if (cfg == NULL || file == NULL) {
        pt_config_error(errs, "definition", 0, NULL, "out of memory");
        goto out;
    }
    if (pt_api_def_load_buffer(cfg, file, text, len, errs) != 0 || cfg->napis != 1 ||
        pt_config_finish_apis(cfg, errs) != 0)
        goto out;
    *name = pt_arena_strdup(a, cfg->apis[0].name);
    *base_path = pt_arena_strdup(a, cfg->apis[0].base_path);
    *kind = cfg->apis[0].upstream != NULL ? "proxy" : "service";
    rc = *name != NULL && *base_path != NULL ? 0 : -1;
out:
    pt_config_free(cfg);
    return rc;
}

/* Adds the definitions of rows [{api, revision, definition}] to cfg. */
static int add_definitions(pt_control_t *c, pt_config_t *cfg, const pt_json_t *rows, pt_arena_t *a,
                           pt_config_errors_t *errs)
{
    size_t i;
    int bad = 0;
    for (i = 0; rows != NULL && i < rows->u.arr.n; i++) {
        const pt_json_t *row = rows->u.arr.items[i];
        const pt_json_t *api = pt_json_get(row, "api"), *def = pt_json_get(row, "definition");
        char *file;
        if (api == NULL || def == NULL || api->type != PT_JSON_STRING ||
            def->type != PT_JSON_STRING)
            continue;
        file = definition_name(c, a, api->u.str.p);
        if (file == NULL || pt_api_def_load_buffer(cfg, file, def->u.str.p, def->u.str.len, errs))
            bad = 1;
    }
    if (!bad && pt_config_finish_apis(cfg, errs) != 0)
        bad = 1;
    return bad ? -1 : 0;
}

/* The store's users (a JSON array of `users:` entries) added to cfg's. */
static int add_users(pt_config_t *cfg, const pt_json_t *users, pt_config_errors_t *errs)
{
    pt_buf_t b;
    int rc;
    if (users == NULL || users->type != PT_JSON_ARRAY || users->u.arr.n == 0)
        return 0;
    pt_buf_init(&b, 0);
    rc = pt_buf_append(&b, "{\"users\": ", 10) != PT_OK || pt_json_write(&b, users) != PT_OK ||
                 pt_buf_append(&b, "}", 1) != PT_OK
             ? -1
             : pt_config_add_users(cfg, "store users", b.data, b.len, errs);
    pt_buf_free(&b);
    return rc;
}

/* The store's users and their active key hashes, as `users:` entries. */
static pt_json_t *store_users(pt_store_tx_t *tx, pt_arena_t *a, pt_db_error_t *e)
{
    pt_json_t *rows = NULL, *keys = NULL, *out = pt_json_array(a);
    size_t i, k;
    static const char *const lists[] = {"roles", "allow_ips", "certificates", "apis"};
    if (out == NULL ||
        pt_store_q(tx, a, PT_SQL_ROWS, &rows, e,
                   "SELECT name, roles, password, allow_ips, certificates, apis FROM users "
                   "ORDER BY name",
                   NULL) != PT_OK ||
        pt_store_q(tx, a, PT_SQL_ROWS, &keys, e,
                   "SELECT user_name, hash FROM user_keys WHERE revoked_at IS NULL ORDER BY id",
                   NULL) != PT_OK)
        return NULL;
    for (i = 0; i < rows->u.arr.n; i++) {
        const pt_json_t *row = rows->u.arr.items[i], *name = pt_json_get(row, "name"), *v;
        pt_json_t *u = pt_json_object(a), *hashes = pt_json_array(a);
        pt_json_error_t jerr;
        if (u == NULL || hashes == NULL || name == NULL || name->type != PT_JSON_STRING)
            return NULL;
        pt_json_object_set(a, u, "name", 4, (pt_json_t *)name);
        for (k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
            pt_json_t *list;
            v = pt_json_get(row, lists[k]);
            if (v == NULL || v->type != PT_JSON_STRING)
                continue; /* NULL: not set */
            list = pt_json_parse(a, v->u.str.p, v->u.str.len, &PT_JSON_LIMITS_DEFAULT, &jerr);
            if (list != NULL)
                pt_json_object_set(a, u, lists[k], strlen(lists[k]), list);
        }
        if ((v = pt_json_get(row, "password")) != NULL && v->type == PT_JSON_STRING)
            pt_json_object_set(a, u, "password", 8, (pt_json_t *)v);
        for (k = 0; k < keys->u.arr.n; k++) {
            const pt_json_t *owner = pt_json_get(keys->u.arr.items[k], "user_name");
            if (owner != NULL && owner->type == PT_JSON_STRING &&
                strcmp(owner->u.str.p, name->u.str.p) == 0)
                pt_json_array_add(a, hashes, pt_json_get(keys->u.arr.items[k], "hash"));
        }
        if (hashes->u.arr.n > 0)
            pt_json_object_set(a, u, "api_keys", 8, hashes);
        pt_json_array_add(a, out, u);
    }
    return out;
}

static pt_snapshot_t *build_from(pt_control_t *c, const pt_json_t *rows, const pt_json_t *users,
                                 pt_config_errors_t *errs, char *err, size_t errlen)
{
    pt_arena_t a;
    pt_config_t *cfg;
    pt_snapshot_t *s = NULL;
    pt_arena_init(&a, NULL);
    cfg = pt_config_load_node(c->config_path, errs);
    if (cfg == NULL) {
        snprintf(err, errlen, "the node configuration %s is invalid", c->config_path);
    } else if (add_users(cfg, users, errs) != 0) {
        snprintf(err, errlen, "the store's users do not fit the node configuration's");
        pt_config_free(cfg);
    } else if (add_definitions(c, cfg, rows, &a, errs) != 0) {
        snprintf(err, errlen, "the deployed definitions do not build");
        pt_config_free(cfg);
    } else {
        uint64_t gen = atomic_fetch_add(&c->generation, 1) + 1;
        s = pt_snapshot_build(cfg, gen, err, errlen); /* takes cfg */
    }
    pt_arena_destroy(&a);
    return s;
}

pt_snapshot_t *pt_control_build(pt_control_t *c, pt_store_tx_t *tx, pt_config_errors_t *errs,
                                char *err, size_t errlen)
{
    pt_arena_t a;
    pt_json_t *rows = NULL, *users = NULL;
    pt_db_error_t e;
    pt_snapshot_t *s = NULL;
    pt_arena_init(&a, NULL);
    memset(&e, 0, sizeof(e));
    if (pt_store_q(tx, &a, PT_SQL_ROWS, &rows, &e,
                   "SELECT d.api AS api, d.revision AS revision, r.definition AS definition "
                   "FROM deployments d JOIN revisions r ON r.api = d.api AND r.revision = "
                   "d.revision WHERE d.environment = :env AND d.status = 'active' ORDER BY d.api",
                   "env", pt_json_string(&a, c->environment, strlen(c->environment)),
                   NULL) != PT_OK ||
        (users = store_users(tx, &a, &e)) == NULL)
        snprintf(err, errlen, "store: %s", e.message[0] ? e.message : "out of memory");
    else
        s = build_from(c, rows, users, errs, err, errlen);
    if (s != NULL) {
        /* what it serves, kept on disk once published */
        pt_json_t *copy = pt_json_object(&a);
        pt_buf_free(&c->copy);
        pt_buf_init(&c->copy, 0);
        if (copy == NULL || pt_json_object_set(&a, copy, "deployments", 11, rows) != PT_OK ||
            pt_json_object_set(&a, copy, "users", 5, users) != PT_OK ||
            pt_json_write(&c->copy, copy) != 0)
            pt_buf_free(&c->copy);
    }
    pt_arena_destroy(&a);
    return s;
}

/* Writes the definitions served to <data dir>/last-snapshot.json (a new
 * file renamed over the old: never half written). */
static void keep_copy(pt_control_t *c)
{
    char path[4096], tmp[4200];
    int fd;
    ssize_t w = 0;
    if (c->copy.data == NULL)
        return;
    snprintf(path, sizeof(path), "%s/last-snapshot.json", c->data_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        size_t off = 0;
        while (off < c->copy.len && (w = write(fd, c->copy.data + off, c->copy.len - off)) > 0)
            off += (size_t)w;
        if (off == c->copy.len && fsync(fd) == 0 && close(fd) == 0 && rename(tmp, path) == 0)
            return;
        if (fd >= 0)
            close(fd);
    }
    pt_log_warn("cannot keep the last snapshot in %s: %s", path, strerror(errno));
}

/* The snapshot kept on disk: for a start with the store down. */
static pt_snapshot_t *build_from_copy(pt_control_t *c, char *err, size_t errlen)
{
    char path[4096];
    pt_arena_t a;
    pt_config_errors_t errs = {{0}, 0, 0};
    pt_json_limits_t lim = {64, 100000, 256u << 20};
    pt_json_error_t jerr;
    pt_json_t *rows, *users = NULL;
    pt_snapshot_t *s = NULL;
    char *data = NULL;
    size_t len = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/last-snapshot.json", c->data_dir);
    pt_arena_init(&a, NULL);
    if ((f = fopen(path, "rb")) == NULL) {
        /* never deployed anything: the node configuration alone */
        rows = pt_json_array(&a);
    } else {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            if (pt_arena_append(&a, &data, &len, buf, n) != PT_OK)
                break;
        fclose(f);
        rows = data != NULL ? pt_json_parse(&a, data, len, &lim, &jerr) : NULL;
    }
    if (rows != NULL && rows->type == PT_JSON_OBJECT) { /* {"deployments", "users"} */
        users = pt_json_get(rows, "users");
        rows = pt_json_get(rows, "deployments");
    }
    if (rows == NULL || rows->type != PT_JSON_ARRAY)
        snprintf(err, errlen, "%s is not a snapshot copy", path);
    else
        s = build_from(c, rows, users, &errs, err, errlen);
    if (s == NULL && errs.count > 0)
        snprintf(err, errlen, "%s", errs.msgs[0]);
    pt_config_errors_free(&errs);
    pt_arena_destroy(&a);
    return s;
}

void pt_control_set_async(pt_control_t *c, uv_async_t *async)
{
    c->async = async;
}

pt_snapshot_t *pt_control_take_pending(pt_control_t *c)
{
    pt_snapshot_t *s;
    uv_mutex_lock(&c->pub_lock);
    s = c->pending;
    c->pending = NULL;
    uv_mutex_unlock(&c->pub_lock);
    return s;
}

void pt_control_published(pt_control_t *c, uint64_t generation)
{
    uv_mutex_lock(&c->pub_lock);
    if (generation > c->published)
        c->published = generation;
    uv_cond_broadcast(&c->pub_cond);
    uv_mutex_unlock(&c->pub_lock);
}

uint64_t pt_control_publish(pt_control_t *c, pt_snapshot_t *s)
{
    uint64_t gen = s->generation, deadline = uv_hrtime() + PUBLISH_WAIT_NS;
    uv_mutex_lock(&c->pub_lock);
    if (c->pending != NULL) /* superseded before the main loop took it */
        pt_snapshot_unref(c->pending);
    c->pending = s;
    if (c->async != NULL)
        uv_async_send(c->async);
    while (c->async != NULL && c->published < gen) {
        uint64_t now = uv_hrtime();
        if (now >= deadline ||
            uv_cond_timedwait(&c->pub_cond, &c->pub_lock, deadline - now) == UV_ETIMEDOUT)
            break;
    }
    if (c->published < gen && c->async != NULL)
        pt_log_warn("generation %llu not published within 10 s", (unsigned long long)gen);
    uv_mutex_unlock(&c->pub_lock);
    keep_copy(c);
    return gen;
}

/* Pushes each *.yaml of the apis folder and deploys it to the node's
 * environment when its latest revision is not the one deployed. */
static void push_folder(pt_control_t *c)
{
    DIR *d;
    struct dirent *de;
    if (c->apis_dir == NULL || (d = opendir(c->apis_dir)) == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        char path[4096], *data = NULL;
        size_t len = 0;
        pt_arena_t a;
        pt_op_result_t r;
        FILE *f;
        if (de->d_name[0] == '.' || n <= 5 || strcmp(de->d_name + n - 5, ".yaml") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", c->apis_dir, de->d_name);
        if ((f = fopen(path, "rb")) == NULL)
            continue;
        pt_arena_init(&a, NULL);
        {
            char buf[65536];
            size_t k;
            while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
                if (pt_arena_append(&a, &data, &len, buf, k) != PT_OK)
                    break;
        }
        fclose(f);
        memset(&r, 0, sizeof(r));
        pt_op_push(c, &a, data != NULL ? data : "", len, NULL, path, "declarative", &r);
        if (r.status >= 400) {
            size_t i;
            pt_log_error("%s: not pushed: %s", path, r.detail);
            for (i = 0; r.errors != NULL && i < r.errors->u.arr.n; i++)
                pt_log_error("  %s", r.errors->u.arr.items[i]->u.str.p);
        } else {
            const pt_json_t *api = pt_json_get(r.body, "api"),
                            *rev = pt_json_get(r.body, "revision");
            int64_t revn = 0;
            pt_json_to_int64(rev, &revn);
            memset(&r, 0, sizeof(r));
            pt_op_deploy_if_needed(c, &a, api->u.str.p, revn, "declarative", de->d_name, &r);
            if (r.status >= 400)
                pt_log_error("%s: not deployed: %s", path, r.detail);
        }
        pt_arena_destroy(&a);
    }
    closedir(d);
}

pt_snapshot_t *pt_control_initial(pt_control_t *c, char *err, size_t errlen)
{
    pt_snapshot_t *s = NULL;
    pt_config_errors_t errs = {{0}, 0, 0};
    pt_store_tx_t tx;
    pt_db_error_t e;

    pt_control_lock(c);
    if (pt_control_store_ok(c)) {
        push_folder(c);
        memset(&e, 0, sizeof(e));
        if (pt_store_begin(c->store, &tx, 0, &e) == PT_OK) {
            s = pt_control_build(c, &tx, &errs, err, errlen);
            pt_store_end(&tx, 0, &e);
            if (s == NULL && errs.count > 0) {
                size_t i;
                for (i = 0; i < errs.count; i++)
                    pt_log_error("%s", errs.msgs[i]);
            }
        } else {
            pt_control_set_store_ok(c, 0);
        }
    }
    if (s == NULL && !pt_control_store_ok(c)) {
        s = build_from_copy(c, err, errlen);
        if (s != NULL)
            pt_log_warn("store unreachable: serving the last snapshot kept in %s", c->data_dir);
    } else if (s != NULL) {
        keep_copy(c);
    }
    pt_config_errors_free(&errs);
    pt_control_unlock(c);
    return s;
}

void pt_control_reload(pt_control_t *c)
{
    pt_snapshot_t *s;
    pt_config_errors_t errs = {{0}, 0, 0};
    pt_store_tx_t tx;
    pt_db_error_t e;
    char err[512];

    pt_control_lock(c);
    push_folder(c);
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(c->store, &tx, 0, &e) != PT_OK) {
        pt_control_set_store_ok(c, 0);
        pt_log_error("reload: store: %s; keeping the current snapshot", e.message);
    } else {
        pt_control_set_store_ok(c, 1);
        s = pt_control_build(c, &tx, &errs, err, sizeof(err));
        pt_store_end(&tx, 0, &e);
        if (s == NULL) {
            size_t i;
            pt_log_error("reload refused: %s", err);
            for (i = 0; i < errs.count; i++)
                pt_log_error("%s", errs.msgs[i]);
        } else {
            pt_control_publish(c, s);
        }
    }
    pt_config_errors_free(&errs);
    pt_control_unlock(c);
}

/* ------------------------------------------------------------ commands */

/* -c FILE (or --config FILE) among argv; NULL when absent. */
static const char *config_arg(int argc, char **argv, const char **name)
{
    const char *cfg = NULL;
    int i;
    for (i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            cfg = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc && name != NULL)
            *name = argv[++i];
    }
    return cfg;
}

/* The store of the node configuration at path, migrated; NULL (said). */
static pt_store_t *open_store(const char *path, const char *cmd)
{
    pt_config_errors_t errs = {{0}, 0, 0};
    pt_config_t *cfg = pt_config_load_node(path, &errs);
    pt_store_t *s = NULL;
    char err[512];
    size_t i;
    if (cfg == NULL) {
        for (i = 0; i < errs.count; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        pt_config_errors_free(&errs);
        return NULL;
    }
    pt_config_errors_free(&errs);
    if (cfg->store == NULL) {
        fprintf(stderr, "portico %s: %s has no store (store: or admin:)\n", cmd, path);
    } else if (cfg->store->kind == PT_CONN_SQLITE && cfg->data_dir != NULL &&
               mkdir_p(cfg->data_dir) != 0) {
        fprintf(stderr, "portico %s: data directory %s: %s\n", cmd, cfg->data_dir, strerror(errno));
    } else if ((s = pt_store_new(cfg->store)) == NULL) {
        fprintf(stderr, "portico %s: out of memory\n", cmd);
    } else if (pt_store_migrate(s, err, sizeof(err)) < 0) {
        fprintf(stderr, "portico %s: %s\n", cmd, err);
        pt_store_free(s);
        s = NULL;
    }
    pt_config_free(cfg);
    return s;
}

int pt_control_migrate_main(int argc, char **argv)
{
    const char *path = config_arg(argc, argv, NULL);
    pt_store_t *s;
    if (path == NULL) {
        fputs("usage: portico migrate -c NODE.yaml\n", stderr);
        return 2;
    }
    if ((s = open_store(path, "migrate")) == NULL)
        return 1;
    printf("store %s: schema version %d\n", pt_store_display(s), PT_STORE_SCHEMA_VERSION);
    pt_store_free(s);
    return 0;
}

/* `portico admin token revoke|list`: the tokens by name, without secrets. */
static int token_other(const char *cmd, const char *path, const char *name)
{
    pt_store_t *s;
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    pt_json_t *rows = NULL;
    int rc = 1;
    size_t i;

    if ((s = open_store(path, "admin")) == NULL)
        return 1;
    pt_arena_init(&a, NULL);
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(s, &tx, 1, &e) == PT_OK) {
        if (strcmp(cmd, "list") == 0) {
            if (pt_store_q(&tx, &a, PT_SQL_ROWS, &rows, &e,
                           "SELECT name, created_at, revoked_at FROM admin_tokens ORDER BY "
                           "created_at",
                           NULL) == PT_OK) {
                printf("%-24s %-26s %s\n", "NAME", "CREATED", "REVOKED");
                for (i = 0; i < rows->u.arr.n; i++) {
                    const pt_json_t *r = rows->u.arr.items[i], *rv = pt_json_get(r, "revoked_at");
                    printf("%-24s %-26s %s\n", pt_json_get(r, "name")->u.str.p,
                           pt_json_get(r, "created_at")->u.str.p,
                           rv != NULL && rv->type == PT_JSON_STRING ? rv->u.str.p : "-");
                }
                rc = 0;
            }
        } else {
            pt_json_t *n = NULL;
            int q = pt_store_q(&tx, &a, PT_SQL_ROWS, &n, &e,
                               "UPDATE admin_tokens SET revoked_at = :now WHERE name = :n AND "
                               "revoked_at IS NULL RETURNING id",
                               "now", pt_json_string(&a, pt_store_now(&a), 24), "n",
                               pt_json_string(&a, name, strlen(name)), NULL);
            if (q == PT_OK && n->u.arr.n == 0) {
                fprintf(stderr, "portico admin: no active token named \"%s\"\n", name);
            } else if (q == PT_OK &&
                       pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                                  "INSERT INTO audit_events (at, actor, action, target) VALUES "
                                  "(:now, 'cli', 'token.revoke', :n)",
                                  "now", pt_json_string(&a, pt_store_now(&a), 24), "n",
                                  pt_json_string(&a, name, strlen(name)), NULL) == PT_OK) {
                fprintf(stderr,
                        "revoked %zu token%s named \"%s\" (nodes forget it within a "
                        "minute)\n",
                        n->u.arr.n, n->u.arr.n == 1 ? "" : "s", name);
                rc = 0;
            }
        }
        if (pt_store_end(&tx, rc == 0, &e) != PT_OK)
            rc = 1;
    }
    if (rc != 0 && e.message[0] != '\0')
        fprintf(stderr, "portico admin: store: %s\n", e.message);
    pt_arena_destroy(&a);
    pt_store_free(s);
    return rc;
}

int pt_control_admin_main(int argc, char **argv)
{
    const char *name = NULL, *path = config_arg(argc, argv, &name);
    unsigned char id[8], secret[32];
    char idhex[17], sechex[65], hash[crypto_pwhash_STRBYTES];
    pt_store_t *s;
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_arena_t a;
    int rc = 1;

    if (argc >= 3 && strcmp(argv[1], "token") == 0 && path != NULL &&
        (strcmp(argv[2], "list") == 0 || (strcmp(argv[2], "revoke") == 0 && name != NULL)))
        return token_other(argv[2], path, name);
    if (argc < 3 || strcmp(argv[1], "token") != 0 || strcmp(argv[2], "create") != 0 ||
        path == NULL || name == NULL || name[0] == '\0' || strlen(name) > 63) {
        fputs("usage: portico admin token create -c NODE.yaml --name NAME\n"
              "  prints a new admin API token (shown once; the store keeps an Argon2id hash)\n"
              "       portico admin token revoke -c NODE.yaml --name NAME\n"
              "       portico admin token list -c NODE.yaml\n",
              stderr);
        return 2;
    }
    if (sodium_init() < 0 || (s = open_store(path, "admin")) == NULL)
        return 1;
    randombytes_buf(id, sizeof(id));
    randombytes_buf(secret, sizeof(secret));
    sodium_bin2hex(idhex, sizeof(idhex), id, sizeof(id));
    sodium_bin2hex(sechex, sizeof(sechex), secret, sizeof(secret));
    if (crypto_pwhash_str(hash, sechex, 64, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        fputs("portico admin: out of memory hashing the token\n", stderr);
        pt_store_free(s);
        return 1;
    }
    pt_arena_init(&a, NULL);
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(s, &tx, 1, &e) == PT_OK) {
        if (pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                       "INSERT INTO admin_tokens (id, name, hash, created_at) VALUES (:id, :n, "
                       ":h, :now)",
                       "id", pt_json_string(&a, idhex, 16), "n",
                       pt_json_string(&a, name, strlen(name)), "h",
                       pt_json_string(&a, hash, strlen(hash)), "now",
                       pt_json_string(&a, pt_store_now(&a), 24), NULL) == PT_OK &&
            pt_store_q(&tx, &a, PT_SQL_AFFECTED, NULL, &e,
                       "INSERT INTO audit_events (at, actor, action, target) VALUES (:now, "
                       "'cli', 'token.create', :n)",
                       "now", pt_json_string(&a, pt_store_now(&a), 24), "n",
                       pt_json_string(&a, name, strlen(name)), NULL) == PT_OK &&
            pt_store_end(&tx, 1, &e) == PT_OK)
            rc = 0;
        else if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
    }
    if (rc == 0) {
        fprintf(stderr, "token \"%s\" created; it is shown once:\n", name);
        printf("pt_%s_%s\n", idhex, sechex);
    } else {
        fprintf(stderr, "portico admin: store: %s\n", e.message);
    }
    sodium_memzero(sechex, sizeof(sechex));
    sodium_memzero(secret, sizeof(secret));
    pt_arena_destroy(&a);
    pt_store_free(s);
    return rc;
}
