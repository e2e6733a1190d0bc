/*
 * mariadb.c - the MariaDB (and MySQL) driver of db.h (libmariadb).
 *
 * Statements are server-side prepared (mysql_stmt_*) with the :name
 * parameters rewritten as ? at load time: values travel apart from the SQL
 * text. Every value is bound and fetched in its text form (the server
 * converts), then mapped to JSON by the column's type: integers and
 * decimals as numbers with their digits, TINYINT(1) as a boolean,
 * DATETIME/TIMESTAMP in ISO 8601, JSON columns embedded, binary strings in
 * base64. A statement's deadline becomes the session's max_statement_time.
 */
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "connector/db-i.h"
#include "core/buf.h"

#define ROWS_MAX       100000
#define COL_BUF        256
#define BINARY_CHARSET 63
#define IDLE_CHECK_NS  (5ull * 1000000000ull)

/* MariaDB error codes not in every mysqld_error.h */
#define ERR_CONSTRAINT_FAILED 4025 /* MariaDB CHECK */
#define ERR_CHECK_MYSQL       3819
#define ERR_STATEMENT_TIMEOUT 1969 /* MariaDB max_statement_time */
#define ERR_QUERY_TIMEOUT     3024 /* MySQL */
#define ERR_SERVER_GONE       2006
#define ERR_SERVER_LOST       2013

typedef struct conn_s {
    MYSQL *my;
    long timeout_ms; /* max_statement_time set; -1 = none yet */
    uint64_t last_used;
    int in_tx;
} conn_t;

static void classify(unsigned code, const char *msg, pt_db_error_t *err)
{
    pt_proc_error_t k = PT_PERR_DATABASE;
    switch (code) {
    case ER_DUP_ENTRY:
        k = PT_PERR_UNIQUE;
        break;
    case ER_ROW_IS_REFERENCED_2:
    case ER_NO_REFERENCED_ROW_2:
    case ER_ROW_IS_REFERENCED:
    case ER_NO_REFERENCED_ROW:
        k = PT_PERR_FOREIGN_KEY;
        break;
    case ER_BAD_NULL_ERROR:
        k = PT_PERR_NOT_NULL;
        break;
    case ERR_CONSTRAINT_FAILED:
    case ERR_CHECK_MYSQL:
        k = PT_PERR_CHECK;
        break;
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
    case ER_WARN_DATA_OUT_OF_RANGE:
    case ER_TRUNCATED_WRONG_VALUE:
    case ER_DATA_TOO_LONG:
    case ER_WRONG_VALUE_COUNT_ON_ROW:
        k = PT_PERR_INVALID;
        break;
    case ER_LOCK_WAIT_TIMEOUT:
    case ER_LOCK_DEADLOCK:
    case ER_CON_COUNT_ERROR:
        k = PT_PERR_BUSY;
        break;
    default:
        break;
    }
    /* duplicate-entry messages quote the value ("Duplicate entry 'x' for key
     * 'email'"): only the key's name goes out */
    if (k == PT_PERR_UNIQUE) {
        const char *key = strstr(msg, "for key ");
        pt__db_err(err, k, "duplicate entry for key %s", key ? key + 8 : "?");
    } else if (k == PT_PERR_FOREIGN_KEY) {
        pt__db_err(err, k, "foreign key constraint fails");
    } else {
        pt__db_err(err, k, "%s (error %u)", msg, code);
    }
    if (code == ERR_STATEMENT_TIMEOUT || code == ERR_QUERY_TIMEOUT)
        err->timeout = 1;
    if (code == ERR_SERVER_GONE || code == ERR_SERVER_LOST) {
        err->broken = 1;
        err->kind = PT_PERR_BUSY;
    }
}

/* mysql://user:password@host:port/database (also mariadb://); percent-escapes
 * in user and password are decoded. Fills the parts in buf (NUL-separated). */
typedef struct url_s {
    char buf[1024];
    const char *user, *pass, *host, *db;
    unsigned port;
} url_t;

static int pct(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '%' && s[1] && s[2]) {
            char h[3] = {s[1], s[2], 0};
            char *end;
            long v = strtol(h, &end, 16);
            if (*end == '\0') {
                *o++ = (char)v;
                s += 2;
                continue;
            }
        }
        *o++ = *s;
    }
    *o = '\0';
    return 0;
}

static int parse_url(const char *uri, url_t *u)
{
    char *p, *at, *slash, *colon, *q;
    const char *rest = strstr(uri, "://");
    if (rest == NULL || strlen(rest + 3) >= sizeof(u->buf))
        return -1;
    memset(u, 0, sizeof(*u));
    strcpy(u->buf, rest + 3);
    p = u->buf;
    if ((q = strchr(p, '?')) != NULL)
        *q = '\0';
    slash = strchr(p, '/');
    if (slash != NULL) {
        *slash = '\0';
        u->db = slash + 1;
    }
    at = strrchr(p, '@');
    if (at != NULL) {
        *at = '\0';
        u->user = p;
        colon = strchr(p, ':');
        if (colon != NULL) {
            *colon = '\0';
            u->pass = colon + 1;
            pct((char *)u->pass);
        }
        pct((char *)u->user);
        p = at + 1;
    }
    u->host = p;
    u->port = 3306;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (close == NULL)
            return -1;
        *close = '\0';
        u->host = p + 1;
        p = close + 1;
    }
    colon = strrchr(p, ':');
    if (colon != NULL) {
        *colon = '\0';
        u->port = (unsigned)atoi(colon + 1);
    }
    if (u->host[0] == '\0')
        u->host = "127.0.0.1";
    return 0;
}

static void *my_open(const pt_connection_def_t *def, const char *uri, pt_db_error_t *err)
{
    conn_t *c = calloc(1, sizeof(*c));
    url_t u;
    unsigned timeout = 10;
    char sql[96];
    if (c == NULL || parse_url(uri, &u) != 0) {
        free(c);
        pt__db_err(err, PT_PERR_DATABASE, "invalid connection URL");
        return NULL;
    }
    c->my = mysql_init(NULL);
    if (c->my == NULL) {
        free(c);
        pt__db_err(err, PT_PERR_DATABASE, "out of memory");
        return NULL;
    }
    mysql_options(c->my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(c->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(c->my, u.host, u.user, u.pass, u.db, u.port, NULL, 0) == NULL) {
        /* the database is unreachable or full: a transient condition (503) */
        pt__db_err(err, PT_PERR_BUSY, "cannot connect: %s", mysql_error(c->my));
        mysql_close(c->my);
        free(c);
        memset(&u, 0, sizeof(u)); /* the password */
        return NULL;
    }
    memset(&u, 0, sizeof(u));
    snprintf(sql, sizeof(sql), "SET SESSION max_statement_time = %.3f", def->timeout_ms / 1000.0);
    if (mysql_query(c->my, sql) != 0 ||
        (def->read_only && mysql_query(c->my, "SET SESSION TRANSACTION READ ONLY") != 0)) {
        classify(mysql_errno(c->my), mysql_error(c->my), err);
        mysql_close(c->my);
        free(c);
        return NULL;
    }
    c->timeout_ms = (long)def->timeout_ms;
    c->last_used = uv_hrtime();
    return c;
}

static void my_close(void *h)
{
    conn_t *c = h;
    mysql_close(c->my);
    free(c);
}

static int my_check(void *h, int force)
{
    conn_t *c = h;
    if (!force && uv_hrtime() - c->last_used < IDLE_CHECK_NS)
        return 0;
    return mysql_ping(c->my) == 0 ? 0 : -1;
}

static int simple(conn_t *c, const char *sql, pt_db_error_t *err)
{
    if (mysql_query(c->my, sql) != 0) {
        classify(mysql_errno(c->my), mysql_error(c->my), err);
        return PT_ERROR;
    }
    return PT_OK;
}

static int my_begin(void *h, pt_db_error_t *err)
{
    conn_t *c = h;
    int rc = simple(c, "START TRANSACTION", err);
    c->in_tx = rc == PT_OK;
    return rc;
}

static int my_commit(void *h, pt_db_error_t *err)
{
    conn_t *c = h;
    int rc = simple(c, "COMMIT", err);
    if (rc == PT_OK)
        c->in_tx = 0;
    return rc;
}

static void my_rollback(void *h)
{
    conn_t *c = h;
    if (mysql_rollback(c->my) == 0)
        c->in_tx = 0;
}

static int my_in_transaction(void *h)
{
    conn_t *c = h;
    return c->in_tx;
}

/* A MariaDB JSON column (a LONGTEXT whose format name is "json"). */
static int is_json_column(const MYSQL_FIELD *f)
{
    MARIADB_CONST_STRING attr;
    return mariadb_field_attr(&attr, f, MARIADB_FIELD_ATTR_FORMAT_NAME) == 0 && attr.length == 4 &&
           strncasecmp(attr.str, "json", 4) == 0;
}

static pt_json_t *value(const MYSQL_FIELD *f, const char *s, size_t n, pt_arena_t *a)
{
    if (f->type != MYSQL_TYPE_JSON && is_json_column(f)) {
        pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
        pt_json_error_t jerr;
        pt_json_t *v = pt_json_parse(a, s, n, &lim, &jerr);
        if (v != NULL)
            return v;
    }
    switch (f->type) {
    case MYSQL_TYPE_TINY:
        if (f->length == 1)
            return pt_json_bool(a, !(n == 1 && s[0] == '0'));
        /* fall through */
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
    case MYSQL_TYPE_YEAR: {
        pt_json_t *v = pt_json_number_text(a, s, n);
        return v != NULL ? v : pt_json_string(a, s, n);
    }
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_TIMESTAMP: {
        pt_json_t *v = pt_json_string(a, s, n);
        if (v != NULL && n >= 19 && v->u.str.p[10] == ' ')
            ((char *)v->u.str.p)[10] = 'T';
        return v;
    }
    case MYSQL_TYPE_JSON: {
        pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
        pt_json_error_t jerr;
        pt_json_t *v = pt_json_parse(a, s, n, &lim, &jerr);
        return v != NULL ? v : pt_json_string(a, s, n);
    }
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_BIT:
        if (f->charsetnr == BINARY_CHARSET)
            return pt__db_base64(a, (const unsigned char *)s, n);
        return pt_json_string(a, s, n);
    default:
        return pt_json_string(a, s, n);
    }
}

static int my_exec(void *h, const pt_step_def_t *st, pt_json_t *const *args, uint64_t deadline,
                   pt_arena_t *a, pt_json_t **result, pt_db_error_t *err)
{
    conn_t *c = h;
    MYSQL_STMT *stmt;
    MYSQL_BIND *in = NULL, *out = NULL;
    MYSQL_RES *meta = NULL;
    MYSQL_FIELD *fields = NULL;
    unsigned long *lens = NULL;
    my_bool *nulls = NULL, *errs = NULL;
    char **bufs = NULL;
    unsigned ncols = 0, i;
    size_t nrows = 0;
    int rc = PT_ERROR;

    *result = NULL;
    if (deadline != 0) {
        uint64_t now = uv_hrtime();
        long ms = deadline > now ? (long)((deadline - now) / 1000000u) + 1 : 1;
        if (ms < c->timeout_ms || c->timeout_ms < 0) {
            char sql[64];
            snprintf(sql, sizeof(sql), "SET SESSION max_statement_time = %.3f", ms / 1000.0);
            if (simple(c, sql, err) != PT_OK)
                return PT_ERROR;
            c->timeout_ms = ms;
        }
    }
    stmt = mysql_stmt_init(c->my);
    if (stmt == NULL) {
        pt__db_err(err, PT_PERR_DATABASE, "out of memory");
        return PT_ERROR;
    }
    if (mysql_stmt_prepare(stmt, st->sql_qmark, strlen(st->sql_qmark)) != 0)
        goto stmt_err;
    if (st->nqmark > 0) {
        static const char t[] = "1", f[] = "0";
        if ((in = pt_arena_calloc(a, sizeof(*in) * st->nqmark)) == NULL)
            goto nomem;
        for (i = 0; i < st->nqmark; i++) {
            const pt_json_t *v = args[st->qmark[i]];
            MYSQL_BIND *b = &in[i];
            switch (v == NULL ? PT_JSON_NULL : v->type) {
            case PT_JSON_NULL:
                b->buffer_type = MYSQL_TYPE_NULL;
                break;
            case PT_JSON_TRUE:
            case PT_JSON_FALSE:
                b->buffer_type = MYSQL_TYPE_STRING;
                b->buffer = (void *)(v->type == PT_JSON_TRUE ? t : f);
                b->buffer_length = 1;
                break;
            case PT_JSON_NUMBER:
            case PT_JSON_STRING:
                b->buffer_type = MYSQL_TYPE_STRING;
                b->buffer = (void *)v->u.str.p;
                b->buffer_length = v->u.str.len;
                break;
            default: {
                pt_buf_t jb;
                char *copy;
                pt_buf_init(&jb, 0);
                if (pt_json_write(&jb, v) != PT_OK ||
                    (copy = pt_arena_strndup(a, jb.data ? jb.data : "", jb.len)) == NULL) {
                    pt_buf_free(&jb);
                    goto nomem;
                }
                b->buffer_type = MYSQL_TYPE_STRING;
                b->buffer = copy;
                b->buffer_length = jb.len;
                pt_buf_free(&jb);
            }
            }
        }
        if (mysql_stmt_bind_param(stmt, in) != 0)
            goto stmt_err;
    }
    if (mysql_stmt_execute(stmt) != 0)
        goto stmt_err;
    c->last_used = uv_hrtime();
    meta = mysql_stmt_result_metadata(stmt);
    if (meta != NULL) {
        ncols = mysql_num_fields(meta);
        fields = mysql_fetch_fields(meta);
        out = pt_arena_calloc(a, sizeof(*out) * ncols);
        lens = pt_arena_calloc(a, sizeof(*lens) * ncols);
        nulls = pt_arena_calloc(a, sizeof(*nulls) * ncols);
        errs = pt_arena_calloc(a, sizeof(*errs) * ncols);
        bufs = pt_arena_calloc(a, sizeof(*bufs) * ncols);
        if (ncols > 0 &&
            (out == NULL || lens == NULL || nulls == NULL || errs == NULL || bufs == NULL))
            goto nomem;
        for (i = 0; i < ncols; i++) {
            if ((bufs[i] = pt_arena_alloc(a, COL_BUF)) == NULL)
                goto nomem;
            out[i].buffer_type = MYSQL_TYPE_STRING;
            out[i].buffer = bufs[i];
            out[i].buffer_length = COL_BUF;
            out[i].length = &lens[i];
            out[i].is_null = &nulls[i];
            out[i].error = &errs[i];
        }
        if (mysql_stmt_bind_result(stmt, out) != 0)
            goto stmt_err;
        if (st->result == PT_SQL_ROWS && (*result = pt_json_array(a)) == NULL)
            goto nomem;
        for (;;) {
            int f = mysql_stmt_fetch(stmt);
            pt_json_t *row;
            if (f == MYSQL_NO_DATA)
                break;
            if (f == 1)
                goto stmt_err;
            if (++nrows > ROWS_MAX) {
                pt__db_err(err, PT_PERR_DATABASE, "more than %d rows: page the query", ROWS_MAX);
                goto done;
            }
            if (st->result != PT_SQL_ROWS && nrows > 1)
                continue; /* row: the first; affected/key: ignore a result set */
            if ((row = pt_json_object(a)) == NULL)
                goto nomem;
            for (i = 0; i < ncols; i++) {
                const char *s = bufs[i];
                pt_json_t *v;
                if (nulls[i]) {
                    v = pt_json_null(a);
                } else {
                    if (lens[i] > COL_BUF) {
                        /* a longer value: fetch it whole */
                        MYSQL_BIND b;
                        char *big = pt_arena_alloc(a, lens[i] + 1);
                        if (big == NULL)
                            goto nomem;
                        memset(&b, 0, sizeof(b));
                        b.buffer_type = MYSQL_TYPE_STRING;
                        b.buffer = big;
                        b.buffer_length = lens[i];
                        if (mysql_stmt_fetch_column(stmt, &b, i, 0) != 0)
                            goto stmt_err;
                        s = big;
                    }
                    v = value(&fields[i], s, lens[i], a);
                }
                if (v == NULL ||
                    pt_json_object_set(a, row, fields[i].name, strlen(fields[i].name), v) != PT_OK)
                    goto nomem;
            }
            if (st->result == PT_SQL_ROWS) {
                if (pt_json_array_add(a, *result, row) != PT_OK)
                    goto nomem;
            } else if (st->result == PT_SQL_ROW) {
                *result = row;
            }
        }
    } else if (mysql_stmt_errno(stmt) != 0) {
        goto stmt_err;
    }
    if (st->result == PT_SQL_ROW && *result == NULL) {
        rc = PT_ENOENT;
        goto done;
    }
    if (st->result == PT_SQL_AFFECTED || st->result == PT_SQL_KEY) {
        pt_json_t *n = pt_json_int(a, (int64_t)mysql_stmt_affected_rows(stmt));
        if ((*result = pt_json_object(a)) == NULL || n == NULL)
            goto nomem;
        if (st->result == PT_SQL_KEY &&
            pt_json_object_set(a, *result, "key", 3,
                               pt_json_int(a, (int64_t)mysql_stmt_insert_id(stmt))) != PT_OK)
            goto nomem;
        if (pt_json_object_set(a, *result, "affected", 8, n) != PT_OK)
            goto nomem;
    }
    rc = PT_OK;
    goto done;
stmt_err:
    /* an error met while fetching rows is the connection's, not the statement's */
    if (mysql_stmt_errno(stmt) != 0)
        classify(mysql_stmt_errno(stmt), mysql_stmt_error(stmt), err);
    else
        classify(mysql_errno(c->my), mysql_error(c->my), err);
    *result = NULL;
    goto done;
nomem:
    pt__db_err(err, PT_PERR_DATABASE, "out of memory");
    *result = NULL;
done:
    if (meta != NULL)
        mysql_free_result(meta);
    mysql_stmt_close(stmt);
    return rc;
}

static void my_cancel(void *h)
{
    /* MariaDB has no out-of-band cancel on the same connection: abort it
     * (the statement fails, the connection is discarded) */
    mariadb_cancel(((conn_t *)h)->my);
}

const pt_db_driver_t pt_db_mariadb = {
    .name = "mariadb",
    .open = my_open,
    .close = my_close,
    .check = my_check,
    .begin = my_begin,
    .commit = my_commit,
    .rollback = my_rollback,
    .in_transaction = my_in_transaction,
    .exec = my_exec,
    .cancel = my_cancel,
};
