/*
 * sqlite.c - the SQLite driver of db.h.
 *
 * Connections are opened in WAL mode with foreign keys on and a busy
 * timeout, one per borrower (SQLITE_OPEN_NOMUTEX: the pool makes sure a
 * connection is used by one thread at a time). Statements are prepared per
 * execution (sqlite3_prepare_v3; SQLite's parser is fast and this keeps the
 * pool free of per-statement caches for now). A statement's deadline is
 * enforced with a progress handler that interrupts it.
 */
#include <sqlite3.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "connector/db-i.h"
#include "core/log.h"

#define ROWS_MAX 100000 /* rows one statement may return */

typedef struct conn_s {
    sqlite3 *db;
    uint64_t deadline; /* of the running statement (progress handler) */
} conn_t;

/* Classifies SQLite's error of db. */
static void db_err(sqlite3 *db, int rc, pt_db_error_t *err)
{
    int ext = db != NULL ? sqlite3_extended_errcode(db) : rc;
    pt_proc_error_t k = PT_PERR_DATABASE;
    switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        k = PT_PERR_UNIQUE;
        break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        k = PT_PERR_FOREIGN_KEY;
        break;
    case SQLITE_CONSTRAINT_NOTNULL:
        k = PT_PERR_NOT_NULL;
        break;
    case SQLITE_CONSTRAINT_CHECK:
        k = PT_PERR_CHECK;
        break;
    case SQLITE_CONSTRAINT_DATATYPE:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
        k = PT_PERR_INVALID;
        break;
    default:
        if ((ext & 0xff) == SQLITE_BUSY || (ext & 0xff) == SQLITE_LOCKED)
            k = PT_PERR_BUSY;
        else if ((ext & 0xff) == SQLITE_CONSTRAINT)
            k = PT_PERR_CHECK;
    }
    pt__db_err(err, k, "%s", db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int progress_cb(void *arg)
{
    conn_t *c = arg;
    return c->deadline != 0 && uv_hrtime() > c->deadline; /* non-zero interrupts */
}

static void *sq_open(const pt_connection_def_t *def, const char *uri, pt_db_error_t *err)
{
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI |
                (def->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
    conn_t *c = calloc(1, sizeof(*c));
    char *msg = NULL;
    int rc;
    if (c == NULL) {
        pt__db_err(err, PT_PERR_DATABASE, "out of memory");
        return NULL;
    }
    rc = sqlite3_open_v2(uri, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        pt__db_err(err, PT_PERR_DATABASE, "cannot open the database: %s",
                   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sqlite3_close_v2(c->db);
        free(c);
        return NULL;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, (int)(def->timeout_ms < 5000 ? def->timeout_ms : 5000));
    sqlite3_progress_handler(c->db, 1000, progress_cb, c);
    rc = sqlite3_exec(c->db, "PRAGMA foreign_keys = ON", NULL, NULL, &msg);
    if (rc == SQLITE_OK && !def->read_only && strcmp(def->target, ":memory:") != 0)
        rc = sqlite3_exec(c->db, "PRAGMA journal_mode = WAL", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        pt__db_err(err, PT_PERR_DATABASE, "cannot set up the database: %s",
                   msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_close_v2(c->db);
        free(c);
        return NULL;
    }
    return c;
}

static void sq_close(void *h)
{
    conn_t *c = h;
    sqlite3_close_v2(c->db);
    free(c);
}

static int sq_check(void *h, int force)
{
    (void)h;
    (void)force;
    return 0; /* a file does not go away like a server */
}

static int sq_in_transaction(void *h)
{
    conn_t *c = h;
    return !sqlite3_get_autocommit(c->db);
}

static int simple(conn_t *c, const char *sql, pt_db_error_t *err)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        db_err(c->db, rc, err);
        return PT_ERROR;
    }
    return PT_OK;
}

static int sq_begin(void *h, pt_db_error_t *err)
{
    return simple(h, "BEGIN IMMEDIATE", err);
}

static int sq_commit(void *h, pt_db_error_t *err)
{
    return simple(h, "COMMIT", err);
}

static void sq_rollback(void *h)
{
    conn_t *c = h;
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Binds JSON value v to parameter i of stmt. */
static int bind_value(sqlite3_stmt *stmt, int i, const pt_json_t *v, pt_arena_t *a)
{
    int64_t n;
    switch (v == NULL ? PT_JSON_NULL : v->type) {
    case PT_JSON_NULL:
        return sqlite3_bind_null(stmt, i);
    case PT_JSON_FALSE:
        return sqlite3_bind_int(stmt, i, 0);
    case PT_JSON_TRUE:
        return sqlite3_bind_int(stmt, i, 1);
    case PT_JSON_NUMBER:
        if (pt_json_to_int64(v, &n) == PT_OK)
            return sqlite3_bind_int64(stmt, i, n);
        return sqlite3_bind_double(stmt, i, pt_json_to_double(v));
    case PT_JSON_STRING:
        return sqlite3_bind_text64(stmt, i, v->u.str.p, v->u.str.len, SQLITE_STATIC, SQLITE_UTF8);
    default: { /* arrays and objects go in as their JSON text */
        pt_buf_t b;
        char *copy;
        int rc;
        pt_buf_init(&b, 0);
        if (pt_json_write(&b, v) != PT_OK ||
            (copy = pt_arena_strndup(a, b.data ? b.data : "", b.len)) == NULL) {
            pt_buf_free(&b);
            return SQLITE_NOMEM;
        }
        rc = sqlite3_bind_text64(stmt, i, copy, b.len, SQLITE_STATIC, SQLITE_UTF8);
        pt_buf_free(&b);
        return rc;
    }
    }
}

/* Does the declared type name contain word (case-insensitive)? */
static int decl_has(const char *decl, const char *word)
{
    size_t n = strlen(word);
    if (decl == NULL)
        return 0;
    for (; *decl != '\0'; decl++)
        if (strncasecmp(decl, word, n) == 0)
            return 1;
    return 0;
}

/* "YYYY-MM-DD HH:MM:SS[.fff]" -> with 'T' (ISO 8601), when the text has that shape. */
static pt_json_t *timestamp_text(pt_arena_t *a, const char *s, size_t len)
{
    pt_json_t *v = pt_json_string(a, s, len);
    if (v != NULL && len >= 19 && s[4] == '-' && s[7] == '-' && s[10] == ' ' && s[13] == ':' &&
        s[16] == ':')
        ((char *)v->u.str.p)[10] = 'T';
    return v;
}

static pt_json_t *column_value(sqlite3_stmt *stmt, int i, pt_arena_t *a)
{
    const char *decl = sqlite3_column_decltype(stmt, i);
    switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_NULL:
        return pt_json_null(a);
    case SQLITE_INTEGER:
        if (decl_has(decl, "BOOL"))
            return pt_json_bool(a, sqlite3_column_int64(stmt, i) != 0);
        return pt_json_int(a, sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT: {
        /* infinities are not JSON numbers: PostgreSQL's spelling, as strings */
        double d = sqlite3_column_double(stmt, i);
        if (isnan(d))
            return pt_json_string(a, "NaN", 3);
        if (isinf(d))
            return d > 0 ? pt_json_string(a, "Infinity", 8) : pt_json_string(a, "-Infinity", 9);
        return pt_json_double(a, d);
    }
    case SQLITE_BLOB:
        return pt__db_base64(a, sqlite3_column_blob(stmt, i),
                             (size_t)sqlite3_column_bytes(stmt, i));
    default: {
        const char *s = (const char *)sqlite3_column_text(stmt, i);
        size_t n = (size_t)sqlite3_column_bytes(stmt, i);
        if (s == NULL)
            return pt_json_null(a);
        if (decl_has(decl, "DATE") || decl_has(decl, "TIME"))
            return timestamp_text(a, s, n);
        if ((decl_has(decl, "DEC") || decl_has(decl, "NUMERIC"))) {
            /* a decimal kept as text: a number with its digits when it is one */
            pt_json_t *num = pt_json_number_text(a, s, n);
            if (num != NULL)
                return num;
        }
        return pt_json_string(a, s, n);
    }
    }
}

static pt_json_t *row_object(sqlite3_stmt *stmt, int ncols, pt_arena_t *a)
{
    pt_json_t *row = pt_json_object(a);
    int i;
    if (row == NULL)
        return NULL;
    for (i = 0; i < ncols; i++) {
        const char *name = sqlite3_column_name(stmt, i);
        pt_json_t *v = column_value(stmt, i, a);
        if (v == NULL || name == NULL || pt_json_object_set(a, row, name, strlen(name), v) != PT_OK)
            return NULL;
    }
    return row;
}

static int sq_exec(void *h, const pt_step_def_t *st, pt_json_t *const *args, uint64_t deadline,
                   pt_arena_t *a, pt_json_t **result, pt_db_error_t *err)
{
    conn_t *c = h;
    sqlite3_stmt *stmt = NULL;
    pt_json_t *out = NULL;
    size_t i, nrows = 0;
    int rc, ncols;

    *result = NULL;
    c->deadline = deadline;
    rc = sqlite3_prepare_v3(c->db, st->sql, -1, 0, &stmt, NULL);
    if (rc != SQLITE_OK) {
        db_err(c->db, rc, err);
        goto fail;
    }
    for (i = 0; i < st->nparams; i++) {
        char name[80];
        int idx;
        snprintf(name, sizeof(name), ":%s", st->params[i].name);
        idx = sqlite3_bind_parameter_index(stmt, name);
        if (idx == 0)
            continue; /* in a comment SQLite's parser skipped; nothing to bind */
        if (args[i] != NULL && args[i]->type == PT_JSON_NUMBER) {
            int64_t n;
            if (pt_json_to_int64(args[i], &n) != PT_OK && !isfinite(pt_json_to_double(args[i]))) {
                pt__db_err(err, PT_PERR_INVALID, "parameter %s: the number is out of range",
                           st->params[i].name);
                goto fail;
            }
        }
        if ((rc = bind_value(stmt, idx, args[i], a)) != SQLITE_OK) {
            db_err(c->db, rc, err);
            goto fail;
        }
    }
    ncols = sqlite3_column_count(stmt);
    if (st->result == PT_SQL_ROWS && (out = pt_json_array(a)) == NULL)
        goto nomem;
    for (;;) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            db_err(c->db, rc, err);
            if (rc == SQLITE_INTERRUPT) {
                err->timeout = 1;
                snprintf(err->message, sizeof(err->message), "the statement ran out of time");
            }
            goto fail;
        }
        if (st->result == PT_SQL_ROWS) {
            pt_json_t *row;
            if (++nrows > ROWS_MAX) {
                pt__db_err(err, PT_PERR_DATABASE, "more than %d rows: page the query", ROWS_MAX);
                goto fail;
            }
            if ((row = row_object(stmt, ncols, a)) == NULL ||
                pt_json_array_add(a, out, row) != PT_OK)
                goto nomem;
        } else if (st->result == PT_SQL_ROW && out == NULL) {
            if ((out = row_object(stmt, ncols, a)) == NULL)
                goto nomem;
        }
    }
    if (st->result == PT_SQL_AFFECTED || st->result == PT_SQL_KEY) {
        pt_json_t *n = pt_json_int(a, sqlite3_changes64(c->db));
        if ((out = pt_json_object(a)) == NULL || n == NULL)
            goto nomem;
        if (st->result == PT_SQL_KEY) {
            pt_json_t *k = pt_json_int(a, sqlite3_last_insert_rowid(c->db));
            if (k == NULL || pt_json_object_set(a, out, "key", 3, k) != PT_OK)
                goto nomem;
        }
        if (pt_json_object_set(a, out, "affected", 8, n) != PT_OK)
            goto nomem;
    }
    sqlite3_finalize(stmt);
    c->deadline = 0;
    *result = out;
    return out == NULL && st->result == PT_SQL_ROW ? PT_ENOENT : PT_OK;
nomem:
    pt__db_err(err, PT_PERR_DATABASE, "out of memory");
fail:
    sqlite3_finalize(stmt);
    c->deadline = 0;
    return PT_ERROR;
}

static void sq_cancel(void *h)
{
    sqlite3_interrupt(((conn_t *)h)->db); /* safe from another thread */
}

const pt_db_driver_t pt_db_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .check = sq_check,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .in_transaction = sq_in_transaction,
    .exec = sq_exec,
    .cancel = sq_cancel,
};
