/*
 * pg.c - the PostgreSQL driver of db.h (libpq).
 *
 * Statements go through PQexecParams with the :name parameters rewritten
 * as $k at load time: values travel apart from the SQL text, as text, with
 * their types left for the server to infer (unknown), so that a string
 * bound to an integer column is refused by the server rather than coerced
 * by us. Results come back as text and are mapped by the column's type
 * OID: integers and numeric keep their digits as JSON numbers, booleans,
 * timestamps in ISO 8601, json/jsonb embedded, bytea in base64.
 *
 * A statement's deadline becomes the connection's statement_timeout when
 * it differs from the one set; SQLSTATE classes map to the process error
 * classes (23505 unique, 23503 foreign key...).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "connector/db-i.h"
#include "core/log.h"
#include "core/buf.h"

#define ROWS_MAX 100000

/* type OIDs (pg_type.h) */
#define OID_BOOL        16
#define OID_BYTEA       17
#define OID_INT8        20
#define OID_INT2        21
#define OID_INT4        23
#define OID_OID         26
#define OID_JSON        114
#define OID_FLOAT4      700
#define OID_FLOAT8      701
#define OID_DATE        1082
#define OID_TIMESTAMP   1114
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC     1700
#define OID_JSONB       3802

#define IDLE_CHECK_NS (5ull * 1000000000ull) /* a connection idle longer is checked on borrow */

typedef struct conn_s {
    PGconn *pg;
    PGcancel *cancel;   /* made at connect: PQcancel is safe from another thread */
    long timeout_ms;    /* statement_timeout last set; -1 = not yet */
    uint64_t last_used; /* uv_hrtime() */
} conn_t;

static void pg_err_conn(PGconn *pg, pt_db_error_t *err, const char *what)
{
    const char *m = pg != NULL ? PQerrorMessage(pg) : "out of memory";
    size_t n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    pt__db_err(err, PT_PERR_DATABASE, "%s: %.*s", what, (int)n, m);
}

/* Classifies a failed result by its SQLSTATE. */
static void pg_err_result(PGresult *res, PGconn *pg, pt_db_error_t *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    pt_proc_error_t k = PT_PERR_DATABASE;
    int timeout = 0;
    if (state != NULL) {
        if (strcmp(state, "23505") == 0)
            k = PT_PERR_UNIQUE;
        else if (strcmp(state, "23503") == 0)
            k = PT_PERR_FOREIGN_KEY;
        else if (strcmp(state, "23502") == 0)
            k = PT_PERR_NOT_NULL;
        else if (strcmp(state, "23514") == 0)
            k = PT_PERR_CHECK;
        else if (strncmp(state, "22", 2) == 0)
            k = PT_PERR_INVALID; /* data exception: bad value, out of range, bad syntax of input */
        else if (strcmp(state, "57014") == 0)
            timeout = 1; /* query_canceled: the statement timeout */
        else if (strcmp(state, "53300") == 0 || strcmp(state, "40001") == 0 ||
                 strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
            k = PT_PERR_BUSY; /* too many connections, serialization, deadlock, lock */
    }
    if (msg == NULL) {
        pg_err_conn(pg, err, "the database connection failed");
        return;
    }
    /* the primary message names the constraint or the type; the DETAIL
     * field would quote the row's values: it stays out of logs and answers */
    (void)detail;
    if (k == PT_PERR_UNIQUE || k == PT_PERR_FOREIGN_KEY || k == PT_PERR_NOT_NULL ||
        k == PT_PERR_CHECK)
        pt__db_err(err, k, "%s", msg);
    else
        pt__db_err(err, k, "%s (SQLSTATE %s)", msg, state ? state : "?");
    err->timeout = timeout;
}

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs are the database's chatter, not ours to print */
}

static void *pq_open(const pt_connection_def_t *def, const char *uri, pt_db_error_t *err)
{
    conn_t *c = calloc(1, sizeof(*c));
    PGresult *res;
    char sql[160];
    if (c == NULL) {
        pt__db_err(err, PT_PERR_DATABASE, "out of memory");
        return NULL;
    }
    c->pg = PQconnectdb(uri);
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        pg_err_conn(c->pg, err, "cannot connect");
        /* the database is unreachable or full: a transient condition (503) */
        err->kind = PT_PERR_BUSY;
        PQfinish(c->pg);
        free(c);
        return NULL;
    }
    PQsetNoticeProcessor(c->pg, notice_ignore, NULL);
    snprintf(sql, sizeof(sql), "SET statement_timeout = %u; SET client_encoding = 'UTF8'%s",
             def->timeout_ms, def->read_only ? "; SET default_transaction_read_only = on" : "");
    res = PQexec(c->pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_err_result(res, c->pg, err);
        PQclear(res);
        PQfinish(c->pg);
        free(c);
        return NULL;
    }
    PQclear(res);
    c->timeout_ms = (long)def->timeout_ms;
    c->last_used = uv_hrtime();
    c->cancel = PQgetCancel(c->pg);
    return c;
}

static void pq_cancel(void *h)
{
    conn_t *c = h;
    char err[256];
    if (c->cancel != NULL && !PQcancel(c->cancel, err, sizeof(err)))
        pt_log_warn("postgresql: the cancel request failed: %s", err);
}

static void pq_close(void *h)
{
    conn_t *c = h;
    PQfreeCancel(c->cancel);
    PQfinish(c->pg);
    free(c);
}

static int pq_check(void *h, int force)
{
    conn_t *c = h;
    /* a server that restarted shows as a bad status once libpq noticed; a
     * closed socket shows on the next exchange, so ask cheaply */
    if (PQstatus(c->pg) != CONNECTION_OK)
        return -1;
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return -1;
    if (!force && uv_hrtime() - c->last_used < IDLE_CHECK_NS)
        return 0; /* in use moments ago: a lost connection shows as err->broken instead */
    {
        PGresult *res = PQexec(c->pg, "");
        int ok = PQresultStatus(res) == PGRES_EMPTY_QUERY;
        PQclear(res);
        return ok ? 0 : -1;
    }
}

static int simple(conn_t *c, const char *sql, pt_db_error_t *err)
{
    PGresult *res = PQexec(c->pg, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pg_err_result(res, c->pg, err);
    PQclear(res);
    return ok ? PT_OK : PT_ERROR;
}

static int pq_begin(void *h, pt_db_error_t *err)
{
    return simple(h, "BEGIN", err);
}

static int pq_commit(void *h, pt_db_error_t *err)
{
    return simple(h, "COMMIT", err);
}

static void pq_rollback(void *h)
{
    conn_t *c = h;
    PGresult *res;
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
        return;
    res = PQexec(c->pg, "ROLLBACK");
    PQclear(res);
}

static int pq_in_transaction(void *h)
{
    conn_t *c = h;
    PGTransactionStatusType t = PQtransactionStatus(c->pg);
    return t != PQTRANS_IDLE;
}

/* "2026-12-04 18:39:56.123+00" -> "2026-12-04T18:39:56.123+00:00" */
static pt_json_t *timestamp(pt_arena_t *a, const char *s, size_t n)
{
    char *o = pt_arena_alloc(a, n + 4);
    size_t len = n;
    if (o == NULL)
        return NULL;
    memcpy(o, s, n);
    if (n >= 19 && o[10] == ' ')
        o[10] = 'T';
    /* a zone offset of hours only ("+00") gets its minutes */
    if (n >= 3 && (o[n - 3] == '+' || o[n - 3] == '-') && n > 19) {
        memcpy(o + n, ":00", 3);
        len += 3;
    }
    o[len] = '\0';
    return pt_json_string(a, o, len);
}

static int hexv(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static pt_json_t *value(PGresult *res, int row, int col, pt_arena_t *a)
{
    const char *s;
    size_t n;
    if (PQgetisnull(res, row, col))
        return pt_json_null(a);
    s = PQgetvalue(res, row, col);
    n = (size_t)PQgetlength(res, row, col);
    switch (PQftype(res, col)) {
    case OID_BOOL:
        return pt_json_bool(a, s[0] == 't');
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_NUMERIC:
    case OID_FLOAT4:
    case OID_FLOAT8: {
        /* digits as the server printed them; NaN and Infinity are not JSON */
        pt_json_t *v = pt_json_number_text(a, s, n);
        return v != NULL ? v : pt_json_string(a, s, n);
    }
    case OID_TIMESTAMP:
    case OID_TIMESTAMPTZ:
        return timestamp(a, s, n);
    case OID_JSON:
    case OID_JSONB: {
        pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
        pt_json_error_t jerr;
        pt_json_t *v = pt_json_parse(a, s, n, &lim, &jerr);
        return v != NULL ? v : pt_json_string(a, s, n);
    }
    case OID_BYTEA: {
        /* text form "\x0102..." */
        unsigned char *bin;
        size_t i, m = 0;
        if (n < 2 || s[0] != '\\' || s[1] != 'x')
            return pt_json_string(a, s, n);
        bin = pt_arena_alloc(a, (n - 2) / 2 + 1);
        if (bin == NULL)
            return NULL;
        for (i = 2; i + 1 < n; i += 2) {
            int h = hexv(s[i]), l = hexv(s[i + 1]);
            if (h < 0 || l < 0)
                return pt_json_string(a, s, n);
            bin[m++] = (unsigned char)(h * 16 + l);
        }
        return pt__db_base64(a, bin, m);
    }
    default:
        return pt_json_string(a, s, n);
    }
}

static pt_json_t *row_object(PGresult *res, int row, pt_arena_t *a)
{
    pt_json_t *obj = pt_json_object(a);
    int col, ncols = PQnfields(res);
    if (obj == NULL)
        return NULL;
    for (col = 0; col < ncols; col++) {
        const char *name = PQfname(res, col);
        pt_json_t *v = value(res, row, col, a);
        if (v == NULL || pt_json_object_set(a, obj, name, strlen(name), v) != PT_OK)
            return NULL;
    }
    return obj;
}

/* Text of a JSON value for a parameter (NULL for SQL NULL). */
static const char *param_text(const pt_json_t *v, pt_arena_t *a, int *len)
{
    pt_buf_t b;
    char *s;
    switch (v == NULL ? PT_JSON_NULL : v->type) {
    case PT_JSON_NULL:
        return NULL;
    case PT_JSON_TRUE:
        *len = 4;
        return "true";
    case PT_JSON_FALSE:
        *len = 5;
        return "false";
    case PT_JSON_NUMBER:
    case PT_JSON_STRING:
        *len = (int)v->u.str.len;
        return v->u.str.p;
    default:
        pt_buf_init(&b, 0);
        if (pt_json_write(&b, v) != PT_OK) {
            pt_buf_free(&b);
            return NULL;
        }
        s = pt_arena_strndup(a, b.data ? b.data : "", b.len);
        *len = (int)b.len;
        pt_buf_free(&b);
        return s;
    }
}

static int pq_exec(void *h, const pt_step_def_t *st, pt_json_t *const *args, uint64_t deadline,
                   pt_arena_t *a, pt_json_t **result, pt_db_error_t *err)
{
    conn_t *c = h;
    const char **values = NULL;
    int *lengths = NULL;
    PGresult *res;
    ExecStatusType rs;
    size_t i;
    int nrows, r;

    *result = NULL;
    if (deadline != 0) {
        /* the process's remaining time bounds the statement */
        uint64_t now = uv_hrtime();
        long ms = deadline > now ? (long)((deadline - now) / 1000000u) + 1 : 1;
        if (ms < c->timeout_ms || c->timeout_ms < 0) {
            char sql[64];
            snprintf(sql, sizeof(sql), "SET statement_timeout = %ld", ms);
            if (simple(c, sql, err) != PT_OK)
                return PT_ERROR;
            c->timeout_ms = ms;
        }
    }
    if (st->nparams > 0) {
        values = pt_arena_calloc(a, sizeof(*values) * st->nparams);
        lengths = pt_arena_calloc(a, sizeof(*lengths) * st->nparams);
        if (values == NULL || lengths == NULL) {
            pt__db_err(err, PT_PERR_DATABASE, "out of memory");
            return PT_ERROR;
        }
        for (i = 0; i < st->nparams; i++) {
            values[i] = param_text(args[i], a, &lengths[i]);
            if (args[i] != NULL && args[i]->type == PT_JSON_STRING &&
                memchr(args[i]->u.str.p, '\0', args[i]->u.str.len) != NULL) {
                pt__db_err(err, PT_PERR_INVALID, "parameter %s contains a NUL character",
                           st->params[i].name);
                return PT_ERROR;
            }
        }
    }
    res = PQexecParams(c->pg, st->sql_numbered, (int)st->nparams, NULL, values, lengths, NULL, 0);
    rs = PQresultStatus(res);
    c->last_used = uv_hrtime();
    if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK) {
        pg_err_result(res, c->pg, err);
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            err->broken = 1;
            err->kind = PT_PERR_BUSY;
        }
        PQclear(res);
        return PT_ERROR;
    }
    nrows = rs == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    switch (st->result) {
    case PT_SQL_ROWS:
        if (nrows > ROWS_MAX) {
            pt__db_err(err, PT_PERR_DATABASE, "more than %d rows: page the query", ROWS_MAX);
            PQclear(res);
            return PT_ERROR;
        }
        if ((*result = pt_json_array(a)) == NULL)
            goto nomem;
        for (r = 0; r < nrows; r++) {
            pt_json_t *row = row_object(res, r, a);
            if (row == NULL || pt_json_array_add(a, *result, row) != PT_OK)
                goto nomem;
        }
        break;
    case PT_SQL_ROW:
        if (nrows == 0) {
            PQclear(res);
            return PT_ENOENT;
        }
        if ((*result = row_object(res, 0, a)) == NULL)
            goto nomem;
        break;
    case PT_SQL_AFFECTED:
    case PT_SQL_KEY: {
        const char *tuples = PQcmdTuples(res);
        pt_json_t *n =
            pt_json_number_text(a, tuples[0] ? tuples : "0", tuples[0] ? strlen(tuples) : 1);
        if ((*result = pt_json_object(a)) == NULL || n == NULL)
            goto nomem;
        if (st->result == PT_SQL_KEY) {
            /* the generated key comes back through RETURNING (first column) */
            pt_json_t *k = nrows > 0 && PQnfields(res) > 0 ? value(res, 0, 0, a) : pt_json_null(a);
            if (k == NULL || pt_json_object_set(a, *result, "key", 3, k) != PT_OK)
                goto nomem;
        }
        if (pt_json_object_set(a, *result, "affected", 8, n) != PT_OK)
            goto nomem;
        break;
    }
    }
    PQclear(res);
    return PT_OK;
nomem:
    PQclear(res);
    pt__db_err(err, PT_PERR_DATABASE, "out of memory");
    return PT_ERROR;
}

const pt_db_driver_t pt_db_postgresql = {
    .name = "postgresql",
    .open = pq_open,
    .close = pq_close,
    .check = pq_check,
    .begin = pq_begin,
    .commit = pq_commit,
    .rollback = pq_rollback,
    .in_transaction = pq_in_transaction,
    .exec = pq_exec,
    .cancel = pq_cancel,
};
