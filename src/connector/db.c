/*
 * db.c - the connection pool shared by the database drivers (see db.h).
 *
 * Pool threads borrow and return connections under a mutex (never an I/O
 * loop: these calls block). A pooled connection is checked before it is
 * handed out; one that fails the check, or that a driver reported broken,
 * is closed and a fresh one opened, so that the node recovers by itself
 * after the database restarts.
 */
#include "connector/db.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "connector/db-i.h"

struct pt_dbconn_s {
    pt_dbconn_t *next;
    void *h;
    uint64_t returned_at; /* uv_hrtime() when it went back to the pool */
};

struct pt_db_s {
    const pt_connection_def_t *def;
    const pt_db_driver_t *drv;
    char *uri;
    uv_mutex_t mu;
    uv_cond_t cv;
    pt_dbconn_t *idle;
    unsigned open;
    uint64_t broken_at; /* the last time a connection was found lost (uv_hrtime) */
};

void pt__db_err(pt_db_error_t *err, pt_proc_error_t kind, const char *fmt, ...)
{
    va_list ap;
    err->kind = kind;
    err->timeout = 0;
    err->broken = 0;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

pt_json_t *pt__db_base64(pt_arena_t *a, const unsigned char *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *out;
    int len = 0;
    if (n > (size_t)1 << 30)
        return NULL;
    out = pt_arena_alloc(a, cap);
    if (out == NULL)
        return NULL;
    if (n > 0)
        len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return pt_json_string(a, out, (size_t)len);
}

pt_db_t *pt_db_new(const pt_connection_def_t *def)
{
    pt_db_t *db;
    const pt_db_driver_t *drv;
    switch (def->kind) {
    case PT_CONN_SQLITE:
        drv = &pt_db_sqlite;
        break;
    case PT_CONN_POSTGRESQL:
        drv = &pt_db_postgresql;
        break;
    case PT_CONN_MARIADB:
        drv = &pt_db_mariadb;
        break;
    default:
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL)
        return NULL;
    db->def = def;
    db->drv = drv;
    if (def->kind == PT_CONN_SQLITE && strcmp(def->target, ":memory:") == 0) {
        /* one database shared by the pool's connections, for the snapshot's life */
        size_t n = strlen(def->name) + 64;
        db->uri = malloc(n);
        if (db->uri != NULL)
            snprintf(db->uri, n, "file:portico-%s-%p?mode=memory&cache=shared", def->name,
                     (void *)db);
    } else {
        db->uri = strdup(def->target);
    }
    if (db->uri == NULL || uv_mutex_init(&db->mu) != 0) {
        free(db->uri);
        free(db);
        return NULL;
    }
    if (uv_cond_init(&db->cv) != 0) {
        uv_mutex_destroy(&db->mu);
        free(db->uri);
        free(db);
        return NULL;
    }
    return db;
}

void pt_db_free(pt_db_t *db)
{
    if (db == NULL)
        return;
    while (db->idle != NULL) {
        pt_dbconn_t *c = db->idle;
        db->idle = c->next;
        db->drv->close(c->h);
        free(c);
    }
    uv_cond_destroy(&db->cv);
    uv_mutex_destroy(&db->mu);
    if (db->uri != NULL)
        memset(db->uri, 0, strlen(db->uri)); /* may hold a password */
    free(db->uri);
    free(db);
}

static pt_dbconn_t *conn_open(pt_db_t *db, pt_db_error_t *err)
{
    pt_dbconn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        pt__db_err(err, PT_PERR_DATABASE, "out of memory");
        return NULL;
    }
    c->h = db->drv->open(db->def, db->uri, err);
    if (c->h == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

unsigned pt_db_warm(pt_db_t *db, unsigned n, pt_db_error_t *err)
{
    for (;;) {
        pt_dbconn_t *c;
        uv_mutex_lock(&db->mu);
        if (db->open >= n || db->open >= db->def->pool_max) {
            unsigned open = db->open;
            uv_mutex_unlock(&db->mu);
            return open;
        }
        db->open++;
        uv_mutex_unlock(&db->mu);
        if ((c = conn_open(db, err)) == NULL) {
            uv_mutex_lock(&db->mu);
            db->open--;
            n = db->open; /* give up: on demand from here */
            uv_cond_signal(&db->cv);
            uv_mutex_unlock(&db->mu);
            return n;
        }
        pt_db_return(db, c, 0);
    }
}

pt_dbconn_t *pt_db_borrow(pt_db_t *db, uint32_t wait_ms, pt_db_error_t *err)
{
    pt_dbconn_t *c = NULL;
    uint64_t until = uv_hrtime() + (uint64_t)wait_ms * 1000000u;
    uv_mutex_lock(&db->mu);
    for (;;) {
        uint64_t now;
        if (db->idle != NULL) {
            int force;
            c = db->idle;
            db->idle = c->next;
            c->next = NULL;
            /* pooled before a sibling was found lost: it may be lost too */
            force = c->returned_at <= db->broken_at;
            uv_mutex_unlock(&db->mu);
            if (db->drv->check(c->h, force) == 0)
                return c;
            /* the database went away (restart, idle timeout): a fresh one */
            db->drv->close(c->h);
            c->h = db->drv->open(db->def, db->uri, err);
            if (c->h != NULL)
                return c;
            free(c);
            uv_mutex_lock(&db->mu);
            db->open--;
            uv_cond_signal(&db->cv);
            uv_mutex_unlock(&db->mu);
            return NULL;
        }
        if (db->open < db->def->pool_max) {
            db->open++;
            uv_mutex_unlock(&db->mu);
            c = conn_open(db, err);
            if (c == NULL) {
                uv_mutex_lock(&db->mu);
                db->open--;
                uv_cond_signal(&db->cv);
                uv_mutex_unlock(&db->mu);
            }
            return c;
        }
        now = uv_hrtime();
        if (now >= until || uv_cond_timedwait(&db->cv, &db->mu, until - now) != 0) {
            if (db->idle != NULL || db->open < db->def->pool_max)
                continue;
            uv_mutex_unlock(&db->mu);
            pt__db_err(err, PT_PERR_BUSY,
                       "every connection of the pool is busy (connections.%s.pool.max is %u)",
                       db->def->name, db->def->pool_max);
            return NULL;
        }
    }
}

void pt_db_return(pt_db_t *db, pt_dbconn_t *c, int broken)
{
    if (!broken && db->drv->in_transaction(c->h))
        db->drv->rollback(c->h); /* never hand out an open transaction */
    if (!broken && db->drv->in_transaction(c->h))
        broken = 1;
    if (broken) {
        db->drv->close(c->h);
        free(c);
    }
    uv_mutex_lock(&db->mu);
    if (broken) {
        db->open--;
        db->broken_at = uv_hrtime();
    } else {
        c->returned_at = uv_hrtime();
        c->next = db->idle;
        db->idle = c;
    }
    uv_cond_signal(&db->cv);
    uv_mutex_unlock(&db->mu);
}

int pt_db_begin(pt_dbconn_t *c, pt_db_t *db, pt_db_error_t *err)
{
    return db->drv->begin(c->h, err);
}

int pt_db_commit(pt_dbconn_t *c, pt_db_t *db, pt_db_error_t *err)
{
    return db->drv->commit(c->h, err);
}

void pt_db_rollback(pt_dbconn_t *c, pt_db_t *db)
{
    db->drv->rollback(c->h);
}

void pt_db_cancel(pt_dbconn_t *c, pt_db_t *db)
{
    if (db->drv->cancel != NULL)
        db->drv->cancel(c->h);
}

int pt_db_exec(pt_dbconn_t *c, pt_db_t *db, const pt_step_def_t *st, pt_json_t *const *args,
               uint64_t deadline, pt_arena_t *a, pt_json_t **result, pt_db_error_t *err)
{
    return db->drv->exec(c->h, st, args, deadline, a, result, err);
}
