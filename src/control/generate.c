/*
 * generate.c - `portico generate`: a service API definition from the
 * tables of a database (docs/generate.md).
 *
 * The database is read once (introspect.c): a SQLite file, a PostgreSQL
 * schema or a MariaDB/MySQL database, into a model of its tables: columns
 * with their JSON kind, NOT NULL, default and whether the database assigns
 * the value, the primary key in order, unique and indexed columns, foreign
 * keys. From that model the YAML is written by hand, with every string
 * that is not plainly safe quoted and escaped: per table a schema of the
 * row and six processes and routes (a keyset-paged, filterable list; get;
 * create; replace; update of the members present; delete).
 *
 * SQL is written for the database it was read from: identifiers quoted
 * (double quotes, MariaDB backticks) when they are not plain lower-case
 * words or are keywords of that database; on PostgreSQL every parameter is
 * cast to its column's type (the server cannot infer the type of `:x IS
 * NULL`). Writes use RETURNING (SQLite 3.35+, PostgreSQL) so that each
 * write is one statement whose result is the row as stored, with the same
 * JSON typing as a SELECT. MariaDB has INSERT ... RETURNING (10.5+) but no
 * UPDATE/DELETE ... RETURNING, and MySQL none: there a write and a SELECT
 * of the row by its key run in one transaction (the new row by its
 * AUTO_INCREMENT id or the key members of the body).
 *
 * Memory: one arena for the whole run, released before returning; an
 * allocation failure ends the run with a message (a one-shot command has
 * nothing to recover). The document is built in a buffer and written only
 * when complete, so a failure never leaves half a file.
 */
#include "control/generate.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"
#include "control/introspect.h"
#include "control/yaml_emit.h"

#define NAME_MAX_LEN  64 /* identifiers of the definition (processes, parameters) */
#define IDENT_MAX     56 /* a table's identifier: room for "replace_" */
#define JSON_NAME_MAX 60 /* a member name: room for suffixes, at most a path parameter */
#define PARAMS_MAX    64 /* distinct :parameters of one statement (service.c) */
#define PAGE_DEFAULT  20
#define PAGE_MAX      100
#define UNPAGED_LIMIT 100
#define PASSWORD_ENV  "PORTICO_DB_PASSWORD"

typedef pt_introspect_column_t col_t;
typedef pt_introspect_table_t table_t;

typedef struct opts_s {
    const char *db, *tables, *read_only, *name, *base_path, *title, *version, *naming, *conn_url,
        *out;
} opts_t;

typedef struct gen_s {
    pt_arena_t a;
    opts_t o;
    int camel;
    pt_introspect_t db; /* the database and its tables (db.t, db.nt: those generated) */
    const char *name, *base_path, *title, *version, *url_written;
    char *db_display; /* the --db URL without a password */
    int password_env; /* the written url takes the password from PASSWORD_ENV */
    pt_yemit_t y;     /* the YAML being written */
} gen_t;

/* A statement being written with its :parameters. */
typedef struct sqlb_s {
    pt_buf_t sql;
    const char *pname[PARAMS_MAX];
    const char *pexpr[PARAMS_MAX];
    size_t n;
} sqlb_t;

static void gerr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *gprintf(gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void gerr(const char *fmt, ...)
{
    va_list ap;
    fputs("portico generate: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void oom(void)
{
    fputs("portico generate: out of memory\n", stderr);
    exit(1);
}

static char *gdup(gen_t *g, const char *s)
{
    char *d = pt_arena_strdup(&g->a, s != NULL ? s : "");
    if (d == NULL)
        oom();
    return d;
}

static char *gdupn(gen_t *g, const char *s, size_t n)
{
    char *d = pt_arena_strndup(&g->a, s, n);
    if (d == NULL)
        oom();
    return d;
}

static char *gprintf(gen_t *g, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (s = pt_arena_alloc(&g->a, (size_t)n + 1)) == NULL)
        oom();
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void *gcalloc(gen_t *g, size_t n)
{
    void *p = pt_arena_calloc(&g->a, n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

/* ------------------------------------------------------------------ names */

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_alnum(int c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/* An identifier from any name: runs of other characters become one '_',
 * a leading digit gets a '_' before it, at most max bytes. */
static char *sanitize(gen_t *g, const char *s, size_t max, const char *empty)
{
    char *o = gcalloc(g, strlen(s) + 2);
    size_t n = 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (is_alnum(c)) {
            if (n == 0 && c >= '0' && c <= '9')
                o[n++] = '_';
            o[n++] = (char)c;
        } else if (n > 0 && o[n - 1] != '_') {
            o[n++] = '_';
        }
    }
    while (n > 1 && o[n - 1] == '_')
        n--;
    if (n == 0 || (n == 1 && o[0] == '_'))
        return gdup(g, empty);
    o[n > max ? max : n] = '\0';
    return o;
}

/* first_name -> firstName (s is an identifier). */
static char *camel_case(gen_t *g, const char *s)
{
    char *o = gcalloc(g, strlen(s) + 2);
    size_t n = 0;
    int up = 0;
    for (; *s != '\0'; s++) {
        if (*s == '_') {
            if (n > 0)
                up = 1;
            continue;
        }
        o[n++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 32) : *s;
        up = 0;
    }
    if (n == 0 || (o[0] >= '0' && o[0] <= '9'))
        return gprintf(g, "_%s", o);
    return o;
}

/* Is name among the n strings of list? */
static int name_taken(char *const *list, size_t n, const char *name)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (list[i] != NULL && strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* name, or name_2, name_3 (name2... when camel) the first not in list, at most max bytes. */
static char *unique_name(gen_t *g, char *const *list, size_t n, char *name, size_t max)
{
    unsigned k;
    char *cand = name;
    for (k = 2; name_taken(list, n, cand); k++) {
        char sfx[16];
        int sl = snprintf(sfx, sizeof(sfx), "%s%u", g->camel ? "" : "_", k);
        size_t keep = strlen(name);
        if (keep + (size_t)sl > max)
            keep = max - (size_t)sl;
        cand = gprintf(g, "%.*s%s", (int)keep, name, sfx);
    }
    return cand;
}

/* root.member, or root['member'] when member is a word of the expression language. */
static char *member(gen_t *g, const char *root, const char *m)
{
    static const char *const words[] = {"and", "or", "not", "null", "true", "false", NULL};
    size_t i;
    for (i = 0; words[i] != NULL; i++)
        if (strcmp(words[i], m) == 0)
            return gprintf(g, "%s['%s']", root, m);
    return gprintf(g, "%s.%s", root, m);
}

/* ------------------------------------------------------------------ SQL */

static int is_pg(const gen_t *g)
{
    return g->db.kind == PT_INTROSPECT_POSTGRESQL;
}

static int is_my(const gen_t *g)
{
    return g->db.kind == PT_INTROSPECT_MARIADB;
}

/* Does an identifier need quotes in this database? */
static int sql_needs_quotes(gen_t *g, const char *s)
{
    size_t i;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 1;
    for (i = 1; s[i] != '\0'; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' || (s[i] >= '0' && s[i] <= '9')))
            return 1;
    return pt_introspect_reserved(&g->db, s);
}

/* s in the quotes of this database ("s", MariaDB `s`), the quote doubled inside. */
static void sql_quoted(gen_t *g, pt_buf_t *b, const char *s)
{
    char q = is_my(g) ? '`' : '"';
    int rc = pt_buf_append_char(b, q);
    for (; *s != '\0'; s++) {
        if (*s == q)
            rc |= pt_buf_append_char(b, q);
        rc |= pt_buf_append_char(b, *s);
    }
    rc |= pt_buf_append_char(b, q);
    if (rc != PT_OK)
        oom();
}

static void sql_ident(gen_t *g, pt_buf_t *b, const char *s)
{
    if (sql_needs_quotes(g, s))
        sql_quoted(g, b, s);
    else if (pt_buf_append_str(b, s) != PT_OK)
        oom();
}

static void sb_str(sqlb_t *b, const char *s)
{
    if (pt_buf_append_str(&b->sql, s) != PT_OK)
        oom();
}

/* The table's name in SQL (schema-qualified on PostgreSQL outside public). */
static void sb_table(gen_t *g, sqlb_t *b, const table_t *t)
{
    if (is_pg(g) && strcmp(g->db.schema, "public") != 0) {
        sql_ident(g, &b->sql, g->db.schema);
        sb_str(b, ".");
    }
    sql_ident(g, &b->sql, t->name);
}

/* Appends a parameter bound to expression expr: ":name", or on PostgreSQL
 * "CAST(:name AS cast)" when cast is given. The same expression under the
 * same wanted name is one parameter; another expression gets another name. */
static void sb_param(gen_t *g, sqlb_t *b, const char *want, const char *expr, const char *cast)
{
    char *base = sanitize(g, want, NAME_MAX_LEN - 4, "p"), *name = base;
    size_t i;
    unsigned k = 2;
    for (;;) {
        for (i = 0; i < b->n; i++)
            if (strcmp(b->pname[i], name) == 0)
                break;
        if (i == b->n || strcmp(b->pexpr[i], expr) == 0)
            break;
        name = gprintf(g, "%s_%u", base, k++);
    }
    if (i == b->n) {
        if (b->n == PARAMS_MAX) {
            gerr("a statement needs more than %d parameters", PARAMS_MAX);
            exit(1);
        }
        b->pname[b->n] = name;
        b->pexpr[b->n++] = expr;
    }
    if (is_pg(g) && cast != NULL) {
        sb_str(b, "CAST(:");
        sb_str(b, name);
        sb_str(b, " AS ");
        sb_str(b, cast);
        sb_str(b, ")");
    } else {
        sb_str(b, ":");
        sb_str(b, name);
    }
}

/* A parameter holding a value of column c: base64 bytes decoded
 * (PostgreSQL, MariaDB); on MariaDB, an ISO 8601 date-time, whose offset
 * the server refuses, taken to the session's time zone (the zone TIMESTAMP
 * columns convert from, and the one NOW() fills DATETIME columns in). */
static void sb_value(gen_t *g, sqlb_t *b, const col_t *c, const char *want, const char *expr)
{
    if (is_pg(g) && c->kind == PT_COL_BLOB) {
        sb_str(b, "decode(");
        sb_param(g, b, want, expr, "text");
        sb_str(b, ", 'base64')");
    } else if (is_my(g) && c->kind == PT_COL_BLOB) {
        sb_str(b, "FROM_BASE64(");
        sb_param(g, b, want, expr, NULL);
        sb_str(b, ")");
    } else if (is_my(g) && c->kind == PT_COL_DATETIME) {
        sb_str(b, "CONVERT_TZ(REGEXP_REPLACE(");
        sb_param(g, b, want, expr, NULL);
        sb_str(b, ", '(Z|[+-][0-9]{2}:[0-9]{2})$', ''), IF(");
        sb_param(g, b, want, expr, NULL);
        sb_str(b, " LIKE '%Z', '+00:00', COALESCE(NULLIF(REGEXP_SUBSTR(");
        sb_param(g, b, want, expr, NULL);
        sb_str(b, ", '[+-][0-9]{2}:[0-9]{2}$'), ''), @@time_zone)), @@time_zone)");
    } else {
        sb_param(g, b, want, expr, c->cast);
    }
}

/* "<value of c> IS NULL": on MariaDB the bare parameter, so that a value
 * the conversion of sb_value turns into NULL is not taken for an absent one. */
static void sb_is_null(gen_t *g, sqlb_t *b, const col_t *c, const char *want, const char *expr)
{
    if (is_my(g))
        sb_param(g, b, want, expr, NULL);
    else
        sb_value(g, b, c, want, expr);
    sb_str(b, " IS NULL");
}

/* SELECT list: every column, aliased to its JSON name when that differs. */
static void sb_columns(gen_t *g, sqlb_t *b, const table_t *t)
{
    size_t i, line = b->sql.len;
    for (i = 0; i < t->ncols; i++) {
        const col_t *c = &t->cols[i];
        if (i > 0) {
            sb_str(b, ",");
            if (b->sql.len - line > 72) {
                sb_str(b, "\n       ");
                line = b->sql.len - 7;
            } else {
                sb_str(b, " ");
            }
        }
        sql_ident(g, &b->sql, c->name);
        if (strcmp(c->name, c->json) != 0) {
            sb_str(b, " AS ");
            sql_quoted(g, &b->sql, c->json);
        }
    }
}

/* WHERE k1 = :k1 AND k2 = :k2 with values from path parameters. */
static void sb_where_key(gen_t *g, sqlb_t *b, const table_t *t)
{
    size_t i;
    sb_str(b, "\nWHERE ");
    for (i = 0; i < t->npk; i++) {
        const col_t *c = &t->cols[t->pk[i]];
        if (i > 0)
            sb_str(b, " AND ");
        sql_ident(g, &b->sql, c->name);
        sb_str(b, " = ");
        /* REST: the path; SOAP operations: the payload */
        sb_value(
            g, b, c, c->json,
            gprintf(g, "coalesce(%s, %s)", member(g, "path", c->json), member(g, "body", c->json)));
    }
}

static char *sb_text(gen_t *g, sqlb_t *b)
{
    return gdupn(g, b->sql.data ? b->sql.data : "", b->sql.len);
}

/* ------------------------------------------------------------------ the model */

/* Is column c written by a body (not generated, not the key when key_ro)? */
/* key_ro: 1 = key columns are read-only (PUT/PATCH bodies); -1 = key
 * columns are written even when the database generates them (the inputs of
 * SOAP operations, which carry the key in the payload). */
static int writable(const col_t *c, int key_ro)
{
    if (key_ro < 0 && c->pk)
        return 1;
    return !c->generated && !(key_ro > 0 && c->pk);
}

/* MariaDB/MySQL without RETURNING: can the row an INSERT made be read
 * back by its key? Every key column is the AUTO_INCREMENT one (its id is
 * the step's key) or comes from the body (no default, not generated). */
static int key_known_after_insert(const table_t *t)
{
    size_t i;
    for (i = 0; i < t->npk; i++) {
        const col_t *c = &t->cols[t->pk[i]];
        if (!c->auto_increment && (c->generated || c->dflt != NULL))
            return 0;
    }
    return 1;
}

/* Which writes table t gets: the runtime binds at most PARAMS_MAX parameters
 * per statement, so a very wide table loses the routes it cannot bind (with
 * a warning) rather than the whole definition. */
static void plan_writes(gen_t *g, table_t *t)
{
    size_t i, nf = 0, ins = 0, put = t->npk, patch = t->npk, nset = 0;
    for (i = 0; i < t->ncols; i++) {
        const col_t *c = &t->cols[i];
        if (c->filter && ++nf + t->npk + 1 > PARAMS_MAX) {
            t->cols[i].filter = 0;
            fprintf(stderr,
                    "portico generate: warning: %s.%s: no ?%s= filter (a statement binds "
                    "at most %d parameters)\n",
                    t->name, c->name, c->json, PARAMS_MAX);
        }
        if (writable(c, 0))
            ins += 1 + (c->dflt != NULL);
        if (writable(c, 1)) {
            put += 1 + (c->dflt != NULL);
            patch += 2;
            nset++;
        }
    }
    if (t->npk == 0 || t->read_only)
        return;
    t->create = ins <= PARAMS_MAX;
    t->replace = nset > 0 && put <= PARAMS_MAX;
    t->update = nset > 0 && patch <= PARAMS_MAX;
    if (!t->create || (nset > 0 && (!t->replace || !t->update)))
        fprintf(stderr,
                "portico generate: warning: %s has too many columns for%s%s%s (a statement binds "
                "at most %d parameters): those routes are not generated\n",
                t->name, t->create ? "" : " POST", nset > 0 && !t->replace ? " PUT" : "",
                nset > 0 && !t->update ? " PATCH" : "", PARAMS_MAX);
    if (t->create && is_my(g) && !g->db.returning && !key_known_after_insert(t)) {
        t->create = 0;
        fprintf(stderr,
                "portico generate: warning: %s: no POST route: its key takes a value the "
                "request does not give (a default), which only INSERT ... RETURNING "
                "(MariaDB 10.5 or later) can read back\n",
                t->name);
    }
}

/* Identifiers, JSON names and filters, once the columns are known. */
static void finish_model(gen_t *g)
{
    char **idents = gcalloc(g, sizeof(char *) * g->db.nt);
    size_t i, j;
    for (i = 0; i < g->db.nt; i++) {
        table_t *t = &g->db.t[i];
        char **names = gcalloc(g, sizeof(char *) * (t->ncols + 1));
        idents[i] = t->ident =
            unique_name(g, idents, i, sanitize(g, t->name, IDENT_MAX, "t"), IDENT_MAX);
        for (j = 0; j < t->ncols; j++) {
            col_t *c = &t->cols[j];
            char *base = sanitize(g, c->name, JSON_NAME_MAX, "c");
            if (g->camel)
                base = camel_case(g, base);
            if (strlen(base) > JSON_NAME_MAX)
                base[JSON_NAME_MAX] = '\0';
            names[j] = c->json = unique_name(g, names, j, base, JSON_NAME_MAX);
            if (c->pk)
                c->notnull = 1;
        }
        if (t->npk == 0)
            fprintf(stderr,
                    "portico generate: warning: %s has no primary key: only GET /%s (not paged, "
                    "?limit= up to %d) is generated\n",
                    t->name, t->ident, UNPAGED_LIMIT);
        for (j = 0; j < t->ncols; j++) {
            col_t *c = &t->cols[j];
            if (!(c->indexed || c->unique) || (t->npk == 1 && c->pk == 1))
                continue;
            if (c->kind == PT_COL_ANY || c->kind == PT_COL_BLOB || c->kind == PT_COL_JSON ||
                (!is_pg(g) && c->kind == PT_COL_BOOL))
                continue;
            if (strcmp(c->json, "limit") == 0 || strcmp(c->json, "cursor") == 0) {
                fprintf(stderr,
                        "portico generate: warning: %s.%s: no ?%s= filter (the name is the "
                        "paging parameter)\n",
                        t->name, c->name, c->json);
                continue;
            }
            c->filter = 1;
        }
        plan_writes(g, t);
    }
}

/* ------------------------------------------------------------------ writing */

/* ", " between the members of a flow mapping. */
static void y_sep(gen_t *g, int *n)
{
    if ((*n)++ > 0)
        pt_yemit_raw(&g->y, ", ");
}

/* A column's schema in flow style: {type: string, maxLength: 80, nullable: true};
 * key_ro: key columns are readOnly (bodies of PUT and PATCH). */
static void y_col_schema(gen_t *g, const col_t *c, int key_ro)
{
    static const char *const types[] = {
        /* by ckind_t */
        [PT_COL_INT] = "integer", [PT_COL_NUM] = "number",  [PT_COL_BOOL] = "boolean",
        [PT_COL_TEXT] = "string", [PT_COL_DATE] = "string", [PT_COL_DATETIME] = "string",
        [PT_COL_UUID] = "string", [PT_COL_BLOB] = "string"};
    static const char *const formats[] = {
        [PT_COL_DATE] = "date", [PT_COL_DATETIME] = "date-time", [PT_COL_UUID] = "uuid"};
    int n = 0;
    pt_yemit_raw(&g->y, "{");
    if (types[c->kind] != NULL) {
        y_sep(g, &n);
        pt_yemit_printf(&g->y, "type: %s", types[c->kind]);
    } else if (c->kind == PT_COL_JSON) {
        /* a parameter is sent as its text: a bare string is not JSON */
        y_sep(g, &n);
        pt_yemit_raw(&g->y, "type: [object, array, number, boolean]");
    }
    if ((size_t)c->kind < PT_ARRAY_SIZE(formats) && formats[c->kind] != NULL) {
        y_sep(g, &n);
        pt_yemit_printf(&g->y, "format: %s", formats[c->kind]);
    }
    if (c->maxlen > 0) {
        y_sep(g, &n);
        pt_yemit_printf(&g->y, "maxLength: %ld", c->maxlen);
    }
    if (c->enums != NULL && c->enums->type == PT_JSON_ARRAY) {
        size_t i;
        y_sep(g, &n);
        pt_yemit_raw(&g->y, "enum: [");
        for (i = 0; i < c->enums->u.arr.n; i++) {
            const pt_json_t *e = c->enums->u.arr.items[i];
            if (i > 0)
                pt_yemit_raw(&g->y, ", ");
            if (e->type == PT_JSON_STRING)
                pt_yemit_str(&g->y, gdupn(g, e->u.str.p, e->u.str.len));
        }
        pt_yemit_raw(&g->y, "]");
    }
    if (!c->notnull && c->kind != PT_COL_ANY) {
        y_sep(g, &n);
        pt_yemit_raw(&g->y, "nullable: true");
    }
    if (!writable(c, key_ro)) {
        y_sep(g, &n);
        pt_yemit_raw(&g->y, "readOnly: true");
    }
    if (c->kind == PT_COL_BLOB || c->ref != NULL || (c->describe && c->enums == NULL)) {
        y_sep(g, &n);
        pt_yemit_raw(&g->y, "description: ");
        pt_yemit_str(&g->y, c->kind == PT_COL_BLOB ? "base64" : c->ref != NULL ? c->ref : c->type);
    }
    pt_yemit_raw(&g->y, "}");
}

/* An object schema of table t at indent: the row (key_ro 0, required
 * members), a replacement (key_ro 1: the key comes from the path) or a
 * patch (key_ro 1, nothing required). */
static void y_schema(gen_t *g, int indent, const table_t *t, int key_ro, int with_required)
{
    size_t i, nreq = 0;
    pt_yemit_kv(&g->y, indent, "type", "object");
    pt_yemit_indent(&g->y, indent);
    pt_yemit_raw(&g->y, "additionalProperties: false\n");
    if (with_required) {
        for (i = 0; i < t->ncols; i++) {
            const col_t *c = &t->cols[i];
            if (!c->notnull || c->dflt != NULL || !writable(c, key_ro))
                continue;
            if (nreq++ == 0) {
                pt_yemit_indent(&g->y, indent);
                pt_yemit_raw(&g->y, "required: [");
            } else {
                pt_yemit_raw(&g->y, ", ");
            }
            pt_yemit_str(&g->y, c->json);
        }
        if (nreq > 0)
            pt_yemit_raw(&g->y, "]\n");
    }
    pt_yemit_key(&g->y, indent, "properties");
    for (i = 0; i < t->ncols; i++) {
        pt_yemit_indent(&g->y, indent + 2);
        pt_yemit_str(&g->y, t->cols[i].json);
        pt_yemit_raw(&g->y, ": ");
        y_col_schema(g, &t->cols[i], key_ro);
        pt_yemit_raw(&g->y, "\n");
    }
}

/* The `params` of statement b at indent. */
static void y_params(gen_t *g, int indent, const sqlb_t *b)
{
    size_t i;
    if (b->n == 0)
        return;
    pt_yemit_key(&g->y, indent, "params");
    for (i = 0; i < b->n; i++)
        pt_yemit_kv(&g->y, indent + 2, b->pname[i], b->pexpr[i]);
}

/* "- name: <name>\n  sql:\n    query: ...\n    params: ...\n    result: <result>" */
static void y_sql_step(gen_t *g, const char *name, sqlb_t *b, const char *result)
{
    pt_yemit_indent(&g->y, 6);
    pt_yemit_raw(&g->y, "- ");
    pt_yemit_kv(&g->y, 0, "name", name);
    pt_yemit_key(&g->y, 8, "sql");
    pt_yemit_text(&g->y, 10, "query", sb_text(g, b));
    y_params(g, 10, b);
    if (result != NULL)
        pt_yemit_kv(&g->y, 10, "result", result);
}

static void sb_free(sqlb_t *b)
{
    pt_buf_free(&b->sql);
    memset(b, 0, sizeof(*b));
}

static void y_process(gen_t *g, const char *verb, const table_t *t, int low_latency)
{
    pt_yemit_indent(&g->y, 2);
    pt_yemit_printf(&g->y, "%s_%s:\n", verb, t->ident);
    if (low_latency)
        pt_yemit_kv(&g->y, 4, "mode", "low_latency");
}

static void write_list(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    size_t i, nf = 0;
    y_process(g, "list", t, 1);
    if (t->npk == 0)
        pt_yemit_raw(&g->y, "    on_error: {expression: 400}\n"); /* ?limit= that is not a number */
    pt_yemit_key(&g->y, 4, "steps");
    sb_str(&b, "SELECT ");
    sb_columns(g, &b, t);
    sb_str(&b, "\nFROM ");
    sb_table(g, &b, t);
    if (t->npk > 0) {
        /* keyset: rows after the cursor's key, in key order */
        sb_str(&b, "\nWHERE (");
        sb_is_null(g, &b, &t->cols[t->pk[0]], gprintf(g, "after_%s", t->cols[t->pk[0]].json),
                   member(g, "page.after", t->cols[t->pk[0]].json));
        sb_str(&b, " OR ");
        if (t->npk > 1)
            sb_str(&b, "(");
        for (i = 0; i < t->npk; i++) {
            if (i > 0)
                sb_str(&b, ", ");
            sql_ident(g, &b.sql, t->cols[t->pk[i]].name);
        }
        sb_str(&b, t->npk > 1 ? ") > (" : " > ");
        for (i = 0; i < t->npk; i++) {
            const col_t *c = &t->cols[t->pk[i]];
            if (i > 0)
                sb_str(&b, ", ");
            sb_value(g, &b, c, gprintf(g, "after_%s", c->json), member(g, "page.after", c->json));
        }
        sb_str(&b, t->npk > 1 ? "))" : ")");
        nf = 1;
    }
    for (i = 0; i < t->ncols; i++) {
        const col_t *c = &t->cols[i];
        char *want, *expr;
        if (!c->filter)
            continue;
        want = gprintf(g, "f_%s", c->json);
        expr =
            gprintf(g, "coalesce(%s, %s)", member(g, "query", c->json), member(g, "body", c->json));
        sb_str(&b, nf++ == 0 ? "\nWHERE (" : "\n  AND (");
        sb_is_null(g, &b, c, want, expr);
        sb_str(&b, " OR ");
        sql_ident(g, &b.sql, c->name);
        sb_str(&b, " = ");
        sb_value(g, &b, c, want, expr);
        sb_str(&b, ")");
    }
    if (t->npk > 0) {
        sb_str(&b, "\nORDER BY ");
        for (i = 0; i < t->npk; i++) {
            if (i > 0)
                sb_str(&b, ", ");
            sql_ident(g, &b.sql, t->cols[t->pk[i]].name);
        }
        sb_str(&b, "\nLIMIT ");
        sb_param(g, &b, "limit", "page.fetch", "bigint");
    } else {
        sb_str(&b, "\nLIMIT ");
        sb_param(g, &b, "limit",
                 gprintf(g, "max(1, min(floor(number(coalesce(query.limit, %d))), %d))",
                         UNPAGED_LIMIT, UNPAGED_LIMIT),
                 "bigint");
    }
    y_sql_step(g, "rows", &b, NULL);
    if (t->npk > 0) {
        pt_yemit_key(&g->y, 10, "page");
        pt_yemit_indent(&g->y, 12);
        pt_yemit_raw(&g->y, "by: [");
        for (i = 0; i < t->npk; i++) {
            if (i > 0)
                pt_yemit_raw(&g->y, ", ");
            pt_yemit_str(&g->y, t->cols[t->pk[i]].json);
        }
        pt_yemit_raw(&g->y, "]\n");
        pt_yemit_printf(&g->y, "            default_limit: %d\n            max_limit: %d\n",
                        PAGE_DEFAULT, PAGE_MAX);
    }
    sb_free(&b);
}

/* The step "row": SELECT of the row whose key is in the path (404 without). */
static void y_select_row(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    sb_str(&b, "SELECT ");
    sb_columns(g, &b, t);
    sb_str(&b, "\nFROM ");
    sb_table(g, &b, t);
    sb_where_key(g, &b, t);
    y_sql_step(g, "row", &b, "row");
    sb_free(&b);
}

static void write_get(gen_t *g, const table_t *t)
{
    y_process(g, "get", t, 1);
    pt_yemit_key(&g->y, 4, "steps");
    y_select_row(g, t);
}

/* The value a write gives column c: the body's member; when the member is
 * absent and the column has a default (put_default), that default. */
static void sb_written(gen_t *g, sqlb_t *b, const col_t *c, int use_default)
{
    const char *expr = member(g, "body", c->json);
    if (use_default && c->dflt != NULL) {
        sb_str(b, "CASE WHEN ");
        sb_param(g, b, gprintf(g, "has_%s", c->json), gprintf(g, "has(body, '%s')", c->json),
                 "boolean");
        sb_str(b, " THEN ");
        sb_value(g, b, c, c->json, expr);
        sb_str(b, " ELSE (");
        sb_str(b, c->dflt);
        sb_str(b, ") END");
    } else {
        sb_value(g, b, c, c->json, expr);
    }
}

/* "$" -> "$$" (connection urls go through ${env:NAME} expansion). */
static char *dollars(gen_t *g, const char *s)
{
    char *o = gcalloc(g, strlen(s) * 2 + 1), *p = o;
    for (; *s != '\0'; s++) {
        *p++ = *s;
        if (*s == '$')
            *p++ = '$';
    }
    return o;
}

/* "/base/ident/${steps.row.k1}/${steps.row.k2}" ('$' of the base path doubled). */
static char *location(gen_t *g, const table_t *t)
{
    char *s = gprintf(g, "%s/%s", dollars(g, g->base_path), t->ident);
    size_t i;
    for (i = 0; i < t->npk; i++)
        s = gprintf(g, "%s/${%s}", s, member(g, "steps.row", t->cols[t->pk[i]].json));
    return s;
}

/* INSERT, then on MariaDB (unless the key is only known with RETURNING)
 * a SELECT of the row by its key, in one transaction. */
static void write_create(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    size_t i, n = 0;
    int returning = !is_my(g) || !key_known_after_insert(t);
    y_process(g, "create", t, 0);
    if (!returning)
        pt_yemit_raw(&g->y, "    transaction: true\n");
    pt_yemit_key(&g->y, 4, "steps");
    sb_str(&b, "INSERT INTO ");
    sb_table(g, &b, t);
    for (i = 0; i < t->ncols; i++) {
        if (!writable(&t->cols[i], 0))
            continue;
        sb_str(&b, n++ == 0 ? " (" : ", ");
        sql_ident(g, &b.sql, t->cols[i].name);
    }
    if (n == 0) {
        sb_str(&b, is_my(g) ? " ()\nVALUES ()" : "\nDEFAULT VALUES");
    } else {
        sb_str(&b, ")\nVALUES (");
        for (i = 0, n = 0; i < t->ncols; i++) {
            if (!writable(&t->cols[i], 0))
                continue;
            if (n++ > 0)
                sb_str(&b, ",\n        ");
            sb_written(g, &b, &t->cols[i], 1);
        }
        sb_str(&b, ")");
    }
    if (returning) {
        sb_str(&b, "\nRETURNING ");
        sb_columns(g, &b, t);
        y_sql_step(g, "row", &b, "row");
    } else {
        y_sql_step(g, "ins", &b, "key");
        sb_free(&b);
        sb_str(&b, "SELECT ");
        sb_columns(g, &b, t);
        sb_str(&b, "\nFROM ");
        sb_table(g, &b, t);
        for (i = 0; i < t->npk; i++) {
            const col_t *c = &t->cols[t->pk[i]];
            sb_str(&b, i == 0 ? "\nWHERE " : " AND ");
            sql_ident(g, &b.sql, c->name);
            sb_str(&b, " = ");
            sb_value(g, &b, c, c->json,
                     c->auto_increment ? "steps.ins.key" : member(g, "body", c->json));
        }
        y_sql_step(g, "row", &b, "row");
    }
    pt_yemit_raw(&g->y, "      - respond:\n          status: 201\n          headers:\n");
    pt_yemit_kv(&g->y, 12, "Location", location(g, t));
    pt_yemit_kv(&g->y, 10, "body", "steps.row");
    sb_free(&b);
}

/* PUT (patch 0: every writable member, absent ones null or their default)
 * and PATCH (patch 1: only the members present): UPDATE ... RETURNING; on
 * MariaDB, which has no UPDATE ... RETURNING, the UPDATE and then a SELECT
 * of the row (404 when there is none), in one transaction. */
static void write_update(gen_t *g, const table_t *t, int patch)
{
    sqlb_t b = {0};
    size_t i, n = 0;
    y_process(g, patch ? "update" : "replace", t, 0);
    if (is_my(g))
        pt_yemit_raw(&g->y, "    transaction: true\n");
    pt_yemit_key(&g->y, 4, "steps");
    sb_str(&b, "UPDATE ");
    sb_table(g, &b, t);
    for (i = 0; i < t->ncols; i++) {
        const col_t *c = &t->cols[i];
        if (!writable(c, 1))
            continue;
        sb_str(&b, n++ == 0 ? "\nSET " : ",\n    ");
        sql_ident(g, &b.sql, c->name);
        sb_str(&b, " = ");
        if (patch) {
            sb_str(&b, "CASE WHEN ");
            sb_param(g, &b, gprintf(g, "has_%s", c->json), gprintf(g, "has(body, '%s')", c->json),
                     "boolean");
            sb_str(&b, " THEN ");
            sb_value(g, &b, c, c->json, member(g, "body", c->json));
            sb_str(&b, " ELSE ");
            sql_ident(g, &b.sql, c->name);
            sb_str(&b, " END");
        } else {
            sb_written(g, &b, c, 1);
        }
    }
    sb_where_key(g, &b, t);
    if (is_my(g)) {
        y_sql_step(g, "change", &b, "affected");
        y_select_row(g, t);
    } else {
        sb_str(&b, "\nRETURNING ");
        sb_columns(g, &b, t);
        y_sql_step(g, "row", &b, "row");
    }
    sb_free(&b);
}

/* DELETE ... RETURNING the key (404 without a row), then 204; on MariaDB
 * the row is locked by a SELECT ... FOR UPDATE (404) and then deleted. */
static void write_delete(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    size_t i;
    y_process(g, "delete", t, 0);
    if (is_my(g))
        pt_yemit_raw(&g->y, "    transaction: true\n");
    pt_yemit_key(&g->y, 4, "steps");
    if (is_my(g)) {
        sb_str(&b, "SELECT ");
        for (i = 0; i < t->npk; i++) {
            if (i > 0)
                sb_str(&b, ", ");
            sql_ident(g, &b.sql, t->cols[t->pk[i]].name);
        }
        sb_str(&b, "\nFROM ");
        sb_table(g, &b, t);
        sb_where_key(g, &b, t);
        sb_str(&b, "\nFOR UPDATE");
        y_sql_step(g, "row", &b, "row");
        sb_free(&b);
    }
    sb_str(&b, "DELETE FROM ");
    sb_table(g, &b, t);
    sb_where_key(g, &b, t);
    if (is_my(g)) {
        y_sql_step(g, "gone", &b, "affected");
    } else {
        sb_str(&b, "\nRETURNING ");
        for (i = 0; i < t->npk; i++) {
            if (i > 0)
                sb_str(&b, ", ");
            sql_ident(g, &b.sql, t->cols[t->pk[i]].name);
        }
        y_sql_step(g, "row", &b, "row");
    }
    pt_yemit_raw(&g->y, "      - respond:\n          status: 204\n");
    sb_free(&b);
}

/* Are all key columns generated (so the row schema already keeps them out of bodies)? */
static int key_generated(const table_t *t)
{
    size_t i;
    for (i = 0; i < t->npk; i++)
        if (!t->cols[t->pk[i]].generated)
            return 0;
    return 1;
}

static char *key_path(gen_t *g, const table_t *t)
{
    char *p = gprintf(g, "/%s", t->ident);
    size_t i;
    for (i = 0; i < t->npk; i++)
        p = gprintf(g, "%s/{%s}", p, t->cols[t->pk[i]].json);
    return p;
}

static char *key_names(gen_t *g, const table_t *t)
{
    char *s = gdup(g, "");
    size_t i;
    for (i = 0; i < t->npk; i++)
        s = gprintf(g, "%s%s%s", s, i ? ", " : "", t->cols[t->pk[i]].json);
    return s;
}

/* Whether table t has a filter column named `name`. */
static int has_filter(const table_t *t, const char *name)
{
    size_t i;
    for (i = 0; i < t->ncols; i++)
        if (t->cols[i].filter && strcmp(t->cols[i].json, name) == 0)
            return 1;
    return 0;
}

/* The list's schemas: `<t>List`, an array of rows (the list route's answer
 * and the SOAP query's output) and `<t>Filter`, the SOAP query's input: the
 * filter columns and, for a paged list, the page size. */
static void y_list_schemas(gen_t *g, const table_t *t)
{
    size_t i;
    int n = 0;
    pt_yemit_key(&g->y, 2, gprintf(g, "%sList", t->ident));
    pt_yemit_kv(&g->y, 4, "type", "array");
    pt_yemit_indent(&g->y, 4);
    pt_yemit_raw(&g->y, "items: {$ref: ");
    pt_yemit_str(&g->y, gprintf(g, "#/schemas/%s", t->ident));
    pt_yemit_raw(&g->y, "}\n");
    pt_yemit_key(&g->y, 2, gprintf(g, "%sFilter", t->ident));
    pt_yemit_kv(&g->y, 4, "type", "object");
    pt_yemit_indent(&g->y, 4);
    pt_yemit_raw(&g->y, "additionalProperties: false\n");
    for (i = 0; i < t->ncols; i++) {
        if (!t->cols[i].filter)
            continue;
        if (n++ == 0)
            pt_yemit_key(&g->y, 4, "properties");
        pt_yemit_indent(&g->y, 6);
        pt_yemit_str(&g->y, t->cols[i].json);
        pt_yemit_raw(&g->y, ": ");
        y_col_schema(g, &t->cols[i], -1);
        pt_yemit_raw(&g->y, "\n");
    }
    if (t->npk > 0 && !has_filter(t, "limit")) {
        if (n++ == 0)
            pt_yemit_key(&g->y, 4, "properties");
        pt_yemit_indent(&g->y, 6);
        pt_yemit_printf(&g->y, "limit: {type: integer, minimum: 1, maximum: %d, default: %d}\n",
                        PAGE_MAX, PAGE_DEFAULT);
    }
    if (n == 0)
        pt_yemit_raw(&g->y, "    properties: {}\n");
}

/* The type of a column's query parameter. */
static const char *query_type(const col_t *c)
{
    switch (c->kind) {
    case PT_COL_INT:
        return "integer";
    case PT_COL_NUM:
        return "number";
    case PT_COL_BOOL:
        return "boolean";
    default:
        return "string";
    }
}

static void y_route(gen_t *g, const char *method, const char *path, const char *verb,
                    const table_t *t, const char *desc)
{
    pt_yemit_indent(&g->y, 2);
    pt_yemit_raw(&g->y, "- ");
    pt_yemit_kv(&g->y, 0, "method", method);
    pt_yemit_kv(&g->y, 4, "path", path);
    pt_yemit_kv(&g->y, 4, "process", gprintf(g, "%s_%s", verb, t->ident));
    pt_yemit_kv(&g->y, 4, "description", desc);
}

static void write_routes(gen_t *g, const table_t *t)
{
    char *filters = gdup(g, ""), *one = key_path(g, t), *keys = key_names(g, t);
    size_t i, nf;
    int writes = !t->read_only && t->npk > 0;
    for (i = 0; i < t->ncols; i++)
        if (t->cols[i].filter)
            filters = gprintf(g, "%s%s?%s=", filters, filters[0] ? ", " : "", t->cols[i].json);
    y_route(g, "GET", gprintf(g, "/%s", t->ident), "list", t,
            t->npk > 0 ? gprintf(g,
                                 "List %s in %s order: ?limit= (at most %d), then the "
                                 "Link rel=\"next\" URL%s%s",
                                 t->name, keys, PAGE_MAX, filters[0] ? "; filters: " : "", filters)
                       : gprintf(g, "List %s (not paged: no primary key): ?limit= (at most %d)%s%s",
                                 t->name, UNPAGED_LIMIT, filters[0] ? "; filters: " : "", filters));
    for (i = 0, nf = 0; i < t->ncols; i++) {
        /* typed: ?customerId=abc is a 400 naming the parameter */
        if (!t->cols[i].filter)
            continue;
        if (nf++ == 0)
            pt_yemit_key(&g->y, 4, "query");
        pt_yemit_indent(&g->y, 6);
        pt_yemit_str(&g->y, t->cols[i].json);
        pt_yemit_printf(&g->y, ": %s\n", query_type(&t->cols[i]));
    }
    pt_yemit_kv(&g->y, 4, "response_schema", gprintf(g, "%sList", t->ident));
    if (t->npk == 0)
        return;
    y_route(g, "GET", one, "get", t, gprintf(g, "One row of %s by %s", t->name, keys));
    pt_yemit_kv(&g->y, 4, "response_schema", t->ident);
    if (!writes)
        return;
    if (t->create) {
        y_route(g, "POST", gprintf(g, "/%s", t->ident), "create", t,
                gprintf(g, "Insert a row into %s: 201 with the row and its Location", t->name));
        pt_yemit_kv(&g->y, 4, "body_schema", t->ident);
        pt_yemit_kv(&g->y, 4, "response_schema", t->ident);
    }
    if (t->replace) {
        y_route(g, "PUT", one, "replace", t,
                gprintf(g,
                        "Replace a row of %s: members left out become null (or the column "
                        "default)",
                        t->name));
        if (key_generated(t)) {
            pt_yemit_kv(&g->y, 4, "body_schema", t->ident);
        } else {
            pt_yemit_key(&g->y, 4, "body_schema");
            y_schema(g, 6, t, 1, 1);
        }
        pt_yemit_kv(&g->y, 4, "response_schema", t->ident);
    }
    if (t->update) {
        y_route(g, "PATCH", one, "update", t,
                gprintf(g, "Change the members given of a row of %s", t->name));
        pt_yemit_key(&g->y, 4, "body_schema");
        y_schema(g, 6, t, 1, 0);
        pt_yemit_kv(&g->y, 4, "response_schema", t->ident);
    }
    y_route(g, "DELETE", one, "delete", t,
            gprintf(g, "Delete a row of %s: 204, or 404 when there is none", t->name));
}

/* "customers" -> "Customer" (naive singular), "order_lines" -> "OrderLine". */
static char *object_name(gen_t *g, const char *ident, int plural)
{
    char *c = camel_case(g, ident);
    size_t n = strlen(c);
    if (c[0] >= 'a' && c[0] <= 'z')
        c[0] = (char)(c[0] - 32);
    if (!plural && n > 1 && c[n - 1] == 's' && c[n - 2] != 's')
        c[n - 1] = '\0';
    return c;
}

/* SOAP operations over the same processes: get<Object>, query<Objects>,
 * create<Object>, update<Object>, delete<Object>. */
static void write_operations(gen_t *g)
{
    size_t i;
    int any = 0;
    for (i = 0; i < g->db.nt; i++) {
        const table_t *t = &g->db.t[i];
        char *one = object_name(g, t->ident, 0), *many = object_name(g, t->ident, 1);
        if (!any++)
            pt_yemit_key(&g->y, 0, "operations");
        pt_yemit_raw(&g->y, gprintf(g,
                                    "  - {name: query%s, process: list_%s, input: %sFilter, "
                                    "output: %sList}\n",
                                    strcmp(one, many) == 0 ? gprintf(g, "%sList", many) : many,
                                    t->ident, t->ident, t->ident));
        if (t->npk == 0)
            continue;
        pt_yemit_raw(&g->y,
                     gprintf(g, "  - {name: get%s, process: get_%s, input: %sKey, output: %s}\n",
                             one, t->ident, t->ident, t->ident));
        if (t->read_only)
            continue;
        if (t->create)
            pt_yemit_raw(&g->y, gprintf(g,
                                        "  - {name: create%s, process: create_%s, input: %s, "
                                        "output: %s}\n",
                                        one, t->ident, t->ident, t->ident));
        if (t->replace)
            pt_yemit_raw(&g->y, gprintf(g,
                                        "  - {name: update%s, process: replace_%s, input: "
                                        "%sUpdate, output: %s}\n",
                                        one, t->ident, t->ident, t->ident));
        pt_yemit_raw(&g->y, gprintf(g, "  - {name: delete%s, process: delete_%s, input: %sKey}\n",
                                    one, t->ident, t->ident));
    }
}

static void write_document(gen_t *g)
{
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    size_t i;
    int any_write = 0;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    for (i = 0; i < g->db.nt; i++)
        any_write |= !g->db.t[i].read_only && g->db.t[i].npk > 0;
    pt_yemit_kv(&g->y, 0, "name", g->name);
    pt_yemit_kv(&g->y, 0, "base_path", g->base_path);
    pt_yemit_kv(&g->y, 0, "kind", "service");
    pt_yemit_kv(&g->y, 0, "title", g->title);
    pt_yemit_kv(&g->y, 0, "version", g->version); /* quoted when it looks like a number */
    pt_yemit_kv(&g->y, 0, "description",
                gprintf(g, "Generated by portico generate from %s on %s", g->db_display, date));
    pt_yemit_key(&g->y, 0, "connections");
    pt_yemit_key(&g->y, 2, "db");
    pt_yemit_kv(&g->y, 4, "url", g->url_written);
    /* nothing writes: the connection itself refuses writes too */
    if (!any_write)
        pt_yemit_raw(&g->y, "    read_only: true\n");
    pt_yemit_key(&g->y, 0, "schemas");
    for (i = 0; i < g->db.nt; i++) {
        pt_yemit_key(&g->y, 2, g->db.t[i].ident);
        y_schema(g, 4, &g->db.t[i], 0, 1);
    }
    for (i = 0; i < g->db.nt; i++) {
        /* SOAP inputs: the key, and (update) the row with its key */
        const table_t *t = &g->db.t[i];
        size_t k;
        if (t->npk == 0)
            continue;
        pt_yemit_key(&g->y, 2, gprintf(g, "%sKey", t->ident));
        pt_yemit_kv(&g->y, 4, "type", "object");
        pt_yemit_indent(&g->y, 4);
        pt_yemit_raw(&g->y, "required: [");
        for (k = 0; k < t->npk; k++) {
            if (k > 0)
                pt_yemit_raw(&g->y, ", ");
            pt_yemit_str(&g->y, t->cols[t->pk[k]].json);
        }
        pt_yemit_raw(&g->y, "]\n");
        pt_yemit_key(&g->y, 4, "properties");
        for (k = 0; k < t->npk; k++) {
            pt_yemit_indent(&g->y, 6);
            pt_yemit_str(&g->y, t->cols[t->pk[k]].json);
            pt_yemit_raw(&g->y, ": ");
            y_col_schema(g, &t->cols[t->pk[k]], -1);
            pt_yemit_raw(&g->y, "\n");
        }
        if (!t->read_only && t->replace) {
            pt_yemit_key(&g->y, 2, gprintf(g, "%sUpdate", t->ident));
            y_schema(g, 4, t, -1, 1);
        }
    }
    for (i = 0; i < g->db.nt; i++)
        y_list_schemas(g, &g->db.t[i]);
    pt_yemit_key(&g->y, 0, "processes");
    for (i = 0; i < g->db.nt; i++) {
        const table_t *t = &g->db.t[i];
        write_list(g, t);
        if (t->npk == 0)
            continue;
        write_get(g, t);
        if (t->read_only)
            continue;
        if (t->create)
            write_create(g, t);
        if (t->replace)
            write_update(g, t, 0);
        if (t->update)
            write_update(g, t, 1);
        write_delete(g, t);
    }
    pt_yemit_key(&g->y, 0, "routes");
    for (i = 0; i < g->db.nt; i++)
        write_routes(g, &g->db.t[i]);
    write_operations(g);
}

/* ------------------------------------------------------------------ options */

static void usage(FILE *f)
{
    fputs("Usage: portico generate --db URL [options]\n"
          "  --db URL               sqlite:path/to/file.db, postgresql://user@host:port/db or\n"
          "                         mysql://user@host:port/db (also mariadb://)\n"
          "  --tables t1,t2         only these tables (default: all)\n"
          "  --read-only t3,t4      only GET routes for these tables\n"
          "  --name NAME            the API name (default: from the database name)\n"
          "  --base-path PATH       default /<name>/v1\n"
          "  --title TEXT           default: the name\n"
          "  --version TEXT         default 1\n"
          "  --naming snake|camel   JSON member names: as the columns (default) or camelCase\n"
          "  --connection-url TEXT  the url written into connections.db (default: derived "
          "from --db)\n"
          "  -o FILE                write the definition to FILE instead of stdout\n",
          f);
}

/* [a-z0-9][a-z0-9_-]{0,63} from any text */
static char *api_name_from(gen_t *g, const char *s)
{
    char *o = gcalloc(g, 65);
    size_t n = 0;
    for (; *s != '\0' && n < 64; s++) {
        char c = *s >= 'A' && *s <= 'Z' ? (char)(*s + 32) : *s;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            o[n++] = c;
        else if (n > 0 && o[n - 1] != '_' && o[n - 1] != '-')
            o[n++] = c == '-' ? '-' : '_';
    }
    while (n > 0 && (o[n - 1] == '_' || o[n - 1] == '-'))
        n--;
    o[n] = '\0';
    return n > 0 ? o : gdup(g, "db");
}

static int api_name_ok(const char *s)
{
    size_t i;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (i = 1; s[i] != '\0'; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return 0;
    return i <= 64;
}

static int base_path_ok(const char *s)
{
    size_t n = strlen(s);
    if (s[0] != '/' || n > 256 || strchr(s, '{') != NULL || strchr(s, '}') != NULL ||
        strstr(s, "//") != NULL || strstr(s, "/./") != NULL || strstr(s, "/../") != NULL)
        return 0;
    if (n > 1 && s[n - 1] == '/')
        return 0;
    if ((n >= 2 && strcmp(s + n - 2, "/.") == 0) || (n >= 3 && strcmp(s + n - 3, "/..") == 0))
        return 0;
    return pt_yemit_utf8_ok(s);
}

/* The path of file `target` relative to directory `dir` (both absolute, canonical). */
static char *relative_to(gen_t *g, const char *target, const char *dir)
{
    size_t common = 0, i;
    char *out = gdup(g, "");
    /* the longest common prefix ending at a '/' boundary */
    for (i = 0; target[i] != '\0' && target[i] == dir[i]; i++)
        if (target[i] == '/')
            common = i;
    if (dir[i] == '\0' && target[i] == '/')
        common = i;
    else if (strcmp(dir, "/") == 0)
        common = 0;
    for (i = common; dir[i] != '\0'; i++)
        if (dir[i] == '/' && dir[i + 1] != '\0')
            out = gprintf(g, "%s../", out);
    return gprintf(g, "%s%s", out, target + common + 1);
}

/* connections.db.url and the --db URL as shown (without a password). */
static int connection_urls(gen_t *g)
{
    const char *db = g->o.db, *qm, *auth, *at = NULL, *colon = NULL, *p;
    char *head, *written, *shown;
    int replaced = 0;

    if (g->db.kind == PT_INTROSPECT_SQLITE) {
        const char *path = db + 7;
        g->db_display = gdup(g, db);
        if (g->o.conn_url != NULL) {
            g->url_written = g->o.conn_url;
        } else if (g->o.out != NULL && strncmp(path, "file:", 5) != 0) {
            /* the runtime resolves the path from the definition's directory */
            char real_db[PATH_MAX], real_dir[PATH_MAX];
            char *out_copy = gdup(g, g->o.out);
            if (realpath(path, real_db) == NULL || realpath(dirname(out_copy), real_dir) == NULL) {
                gerr("cannot resolve the paths of --db and -o: %s", strerror(errno));
                return -1;
            }
            g->url_written = gprintf(g, "sqlite:%s", dollars(g, relative_to(g, real_db, real_dir)));
        } else {
            g->url_written = gprintf(g, "sqlite:%s", dollars(g, path));
        }
        return 0;
    }
    /* postgresql://user:password@host:port/db?password=...&sslmode=...,
     * mysql://user:password@host:port/db */
    qm = strchr(db, '?');
    head = qm != NULL ? gprintf(g, "%.*s", (int)(qm - db), db) : gdup(g, db);
    auth = strstr(head, "://") + 3;
    for (p = auth; *p != '\0' && *p != '/' && *p != '#'; p++)
        if (*p == '@')
            at = p;
    if (at != NULL)
        colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon != NULL) {
        char *user = gprintf(g, "%.*s", (int)(colon - head), head);
        g->db.secrets[0] = gprintf(g, "%.*s", (int)(at - colon - 1), colon + 1);
        written = gprintf(g, "%s:${env:%s}%s", dollars(g, user), PASSWORD_ENV, dollars(g, at));
        shown = gprintf(g, "%s%s", user, at);
        replaced = 1;
    } else {
        written = dollars(g, head);
        shown = head;
    }
    if (qm != NULL) {
        char *params = gdup(g, qm + 1), *save = NULL, *tok;
        int first = 1, sfirst = 1;
        for (tok = strtok_r(params, "&", &save); tok != NULL; tok = strtok_r(NULL, "&", &save)) {
            if (strncmp(tok, "password=", 9) == 0) {
                g->db.secrets[1] = tok + 9;
                written =
                    gprintf(g, "%s%cpassword=${env:%s}", written, first ? '?' : '&', PASSWORD_ENV);
                replaced = 1;
            } else {
                written = gprintf(g, "%s%c%s", written, first ? '?' : '&', dollars(g, tok));
                shown = gprintf(g, "%s%c%s", shown, sfirst ? '?' : '&', tok);
                sfirst = 0;
            }
            first = 0;
        }
    }
    g->db_display = shown;
    if (g->o.conn_url != NULL) {
        g->url_written = g->o.conn_url;
    } else {
        g->url_written = written;
        g->password_env = replaced;
    }
    return 0;
}

/* Fills the names of the definition from the options (and the database). */
static int definition_names(gen_t *g)
{
    if (g->o.name != NULL) {
        if (!api_name_ok(g->o.name)) {
            gerr("invalid --name \"%s\": expected [a-z0-9][a-z0-9_-]{0,63}", g->o.name);
            return -1;
        }
        g->name = g->o.name;
    } else if (g->db.dbname != NULL) {
        g->name = api_name_from(g, g->db.dbname);
    } else {
        char *copy = gdup(g, g->o.db + 7), *base = basename(copy), *dot = strrchr(base, '.');
        if (dot != NULL && dot != base)
            *dot = '\0';
        g->name = api_name_from(g, base);
    }
    g->version = g->o.version != NULL ? g->o.version : "1";
    g->base_path = g->o.base_path != NULL ? g->o.base_path : gprintf(g, "/%s/v1", g->name);
    if (!base_path_ok(g->base_path)) {
        gerr("invalid --base-path \"%s\": it starts with '/', has no trailing '/', no empty, "
             "'.' or '..' segment and no '{' '}'",
             g->base_path);
        return -1;
    }
    g->title = g->o.title != NULL ? g->o.title : g->name;
    if (!pt_yemit_utf8_ok(g->title) || !pt_yemit_utf8_ok(g->version) || g->title[0] == '\0' ||
        g->version[0] == '\0') {
        gerr("--title and --version must be non-empty UTF-8 text");
        return -1;
    }
    return 0;
}

static int write_output(gen_t *g)
{
    FILE *f = stdout;
    if (g->o.out != NULL && (f = fopen(g->o.out, "w")) == NULL) {
        gerr("cannot write %s: %s", g->o.out, strerror(errno));
        return -1;
    }
    if (fwrite(g->y.out.data, 1, g->y.out.len, f) != g->y.out.len || fflush(f) != 0) {
        gerr("cannot write %s: %s", g->o.out ? g->o.out : "the output", strerror(errno));
        if (f != stdout)
            fclose(f);
        return -1;
    }
    if (f != stdout && fclose(f) != 0) {
        gerr("cannot write %s: %s", g->o.out, strerror(errno));
        return -1;
    }
    return 0;
}

static int run(gen_t *g)
{
    size_t i, k;
    const char *db = g->o.db;
    if (strncmp(db, "sqlite:", 7) == 0) {
        g->db.kind = PT_INTROSPECT_SQLITE;
    } else if (strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0) {
        g->db.kind = PT_INTROSPECT_POSTGRESQL;
    } else if (strncmp(db, "mysql://", 8) == 0 || strncmp(db, "mariadb://", 10) == 0) {
        g->db.kind = PT_INTROSPECT_MARIADB;
    } else {
        gerr("--db: expected sqlite:<path>, postgresql://user@host:port/db or "
             "mysql://user@host:port/db");
        return 2;
    }
    if (g->o.naming != NULL && strcmp(g->o.naming, "snake") != 0 &&
        strcmp(g->o.naming, "camel") != 0) {
        gerr("--naming: expected snake or camel, got \"%s\"", g->o.naming);
        return 2;
    }
    g->camel = g->o.naming != NULL && strcmp(g->o.naming, "camel") == 0;
    if (g->o.conn_url != NULL && !pt_yemit_utf8_ok(g->o.conn_url)) {
        gerr("--connection-url must be UTF-8 text");
        return 1;
    }
    if (connection_urls(g) != 0)
        return 1;
    g->db.a = &g->a;
    g->db.display = g->db_display;
    if (pt_introspect_open(&g->db, db) != 0 || definition_names(g) != 0 ||
        pt_introspect_select(&g->db, g->o.tables, g->o.read_only) != 0 ||
        pt_introspect_load(&g->db) != 0)
        return 1;
    for (i = 0, k = 0; i < g->db.nt; i++) {
        if (g->db.t[i].ncols == 0) { /* PostgreSQL allows it; there is nothing to serve */
            fprintf(stderr, "portico generate: warning: %s has no columns: left out\n",
                    g->db.t[i].name);
            continue;
        }
        g->db.t[k++] = g->db.t[i];
    }
    g->db.nt = k;
    if (g->db.nt == 0) {
        gerr("no table to generate");
        return 1;
    }
    finish_model(g);
    write_document(g);
    if (g->y.failed) {
        gerr("the definition could not be written%s",
             g->y.failed == PT_EINVAL ? ": a name or text is not valid UTF-8" : "");
        return 1;
    }
    if (write_output(g) != 0)
        return 1;
    if (g->password_env)
        fprintf(stderr,
                "portico generate: note: the password of --db is not written: "
                "connections.db.url takes it from the environment variable %s "
                "(percent-encoded), which validate and serve need\n",
                PASSWORD_ENV);
    return 0;
}

int pt_generate_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, NULL, 'd'},
                                             {"tables", required_argument, NULL, 't'},
                                             {"read-only", required_argument, NULL, 'r'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"base-path", required_argument, NULL, 'b'},
                                             {"title", required_argument, NULL, 'T'},
                                             {"version", required_argument, NULL, 'v'},
                                             {"naming", required_argument, NULL, 'N'},
                                             {"connection-url", required_argument, NULL, 'c'},
                                             {"output", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    gen_t g;
    int ch, rc;

    memset(&g, 0, sizeof(g));
    pt_arena_init(&g.a, NULL);
    pt_buf_init(&g.y.out, 0);
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            g.o.db = optarg;
            break;
        case 't':
            g.o.tables = optarg;
            break;
        case 'r':
            g.o.read_only = optarg;
            break;
        case 'n':
            g.o.name = optarg;
            break;
        case 'b':
            g.o.base_path = optarg;
            break;
        case 'T':
            g.o.title = optarg;
            break;
        case 'v':
            g.o.version = optarg;
            break;
        case 'N':
            g.o.naming = optarg;
            break;
        case 'c':
            g.o.conn_url = optarg;
            break;
        case 'o':
            g.o.out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            gerr("%s needs a value", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            gerr("unknown option \"%s\"", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        gerr("unexpected argument \"%s\"", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (g.o.db == NULL) {
        gerr("--db is required");
        usage(stderr);
        return 2;
    }
    rc = run(&g);
    pt_introspect_close(&g.db);
    pt_buf_free(&g.y.out);
    pt_arena_destroy(&g.a);
    return rc;
}
