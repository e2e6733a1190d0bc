/*
 * introspect.c - the tables of a database, read once for `portico generate`
 * (introspect.h, docs/generate.md).
 *
 * SQLite: the PRAGMA table-valued functions, table by table. PostgreSQL:
 * pg_catalog, for the first schema of the search_path (usually public).
 * MariaDB and MySQL: information_schema for the database of the URL, one
 * query per kind of fact (columns, indexes, foreign keys, JSON checks) for
 * the whole database, whose rows are then dealt out to the tables kept.
 *
 * What a column becomes in JSON follows what the runtime's driver makes of
 * its values (src/connector/): SQLite by the affinity rules (BOOL names a
 * boolean), PostgreSQL by the base type, MariaDB by DATA_TYPE (TINYINT(1)
 * is a boolean; MariaDB's JSON is LONGTEXT with a json_valid() check, and
 * its values come back as text).
 */
#include "control/introspect.h"

#include <libpq-fe.h>
#include <mysql.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SQ(db) ((sqlite3 *)(db)->conn)
#define PQ(db) ((PGconn *)(db)->conn)
#define MY(db) ((MYSQL *)(db)->conn)

static void ierr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void ierr(const char *fmt, ...)
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

static char *idup(pt_introspect_t *db, const char *s)
{
    char *d = pt_arena_strdup(db->a, s != NULL ? s : "");
    if (d == NULL)
        oom();
    return d;
}

static void *icalloc(pt_introspect_t *db, size_t n)
{
    void *p = pt_arena_calloc(db->a, n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

static char *checked(char *s)
{
    if (s == NULL)
        oom();
    return s;
}

/* pt_arena_printf into db's arena; out of memory ends the run. */
#define ifmt(db, ...) checked(pt_arena_printf((db)->a, __VA_ARGS__))

/* msg with the secrets of the URL masked: libpq quotes a token of the URI
 * it cannot decode, the password included. */
static char *scrub(pt_introspect_t *db, const char *msg)
{
    char *out = idup(db, msg), *hit;
    size_t i;
    for (i = 0; i < PT_ARRAY_SIZE(db->secrets); i++) {
        const char *sec = db->secrets[i];
        size_t n = sec != NULL ? strlen(sec) : 0;
        while (n > 0 && (hit = strstr(out, sec)) != NULL)
            out = ifmt(db, "%.*s***%s", (int)(hit - out), out, hit + n);
    }
    return out;
}

/* Splits a comma-separated list into the arena. */
static size_t split_list(pt_introspect_t *db, const char *s, char ***out)
{
    size_t n = 1, k = 0;
    const char *p;
    char *copy = idup(db, s), *save = NULL, *tok;
    for (p = s; *p != '\0'; p++)
        n += *p == ',';
    *out = icalloc(db, sizeof(char *) * n);
    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (*tok != '\0')
            (*out)[k++] = tok;
    }
    return k;
}

static pt_introspect_table_t *find_table(pt_introspect_t *db, const char *name)
{
    size_t i;
    for (i = 0; i < db->nt; i++)
        if (strcmp(db->t[i].name, name) == 0)
            return &db->t[i];
    return NULL;
}

/* ------------------------------------------------------------------ types */

static int has_word(const char *type, const char *word)
{
    size_t n = strlen(word);
    for (; *type != '\0'; type++)
        if (strncasecmp(type, word, n) == 0)
            return 1;
    return 0;
}

/* "VARCHAR(80)" -> 80 */
static long type_length(const char *type)
{
    const char *p = strchr(type, '(');
    long n;
    if (p == NULL)
        return 0;
    n = strtol(p + 1, NULL, 10);
    return n > 0 && n < 1000000000L ? n : 0;
}

/* SQLite: the kind of a declared type, after SQLite's affinity rules and
 * what the connector makes of values (BOOL -> boolean, DATE/TIME text). */
static void sq_kind(pt_introspect_column_t *c)
{
    const char *t = c->type;
    if (t[0] == '\0')
        c->kind = PT_COL_ANY;
    else if (has_word(t, "BOOL"))
        c->kind = PT_COL_BOOL;
    else if (has_word(t, "INT"))
        c->kind = PT_COL_INT;
    else if (has_word(t, "UUID") || has_word(t, "GUID"))
        c->kind = PT_COL_UUID;
    else if (has_word(t, "DATETIME") || has_word(t, "TIMESTAMP"))
        c->kind = PT_COL_DATETIME;
    else if (has_word(t, "DATE"))
        c->kind = PT_COL_DATE;
    else if (has_word(t, "CHAR") || has_word(t, "CLOB") || has_word(t, "TEXT") ||
             has_word(t, "TIME") || has_word(t, "JSON"))
        c->kind = PT_COL_TEXT;
    else if (has_word(t, "BLOB"))
        c->kind = PT_COL_BLOB;
    else
        c->kind = PT_COL_NUM; /* REAL, FLOAT, DOUBLE, DECIMAL, NUMERIC and NUMERIC affinity */
    if (c->kind == PT_COL_TEXT && has_word(t, "CHAR"))
        c->maxlen = type_length(t);
}

/* PostgreSQL: the kind of a (base) type name. */
static void pg_kind(pt_introspect_column_t *c, const char *typname, const char *category,
                    long typmod)
{
    static const struct {
        const char *name;
        pt_column_kind_t kind;
    } map[] = {{"int2", PT_COL_INT},           {"int4", PT_COL_INT},
               {"int8", PT_COL_INT},           {"numeric", PT_COL_NUM},
               {"float4", PT_COL_NUM},         {"float8", PT_COL_NUM},
               {"bool", PT_COL_BOOL},          {"date", PT_COL_DATE},
               {"timestamp", PT_COL_DATETIME}, {"timestamptz", PT_COL_DATETIME},
               {"uuid", PT_COL_UUID},          {"json", PT_COL_JSON},
               {"jsonb", PT_COL_JSON},         {"bytea", PT_COL_BLOB}};
    size_t i;
    c->kind = PT_COL_TEXT; /* text, varchar, enums, arrays (as literals), times, intervals... */
    c->describe = 1;
    if (strcmp(category, "A") == 0)
        return;
    for (i = 0; i < PT_ARRAY_SIZE(map); i++)
        if (strcmp(map[i].name, typname) == 0)
            c->kind = map[i].kind;
    if ((strcmp(typname, "varchar") == 0 || strcmp(typname, "bpchar") == 0) && typmod > 4)
        c->maxlen = typmod - 4;
    c->describe = c->kind == PT_COL_TEXT && strcmp(typname, "text") != 0 &&
                  strcmp(typname, "varchar") != 0 && strcmp(typname, "bpchar") != 0 &&
                  strcmp(typname, "name") != 0 && strcmp(typname, "citext") != 0;
}

/* ------------------------------------------------------------------ SQLite */

/* "CREATE TABLE ... ) WITHOUT ROWID" */
static int sq_without_rowid(const char *sql)
{
    const char *p = sql != NULL ? strrchr(sql, ')') : NULL;
    return p != NULL && has_word(p, "WITHOUT") && has_word(p, "ROWID");
}

static int sq_prepare(pt_introspect_t *db, const char *sql, const char *arg, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(SQ(db), sql, -1, st, NULL) != SQLITE_OK ||
        (arg != NULL && sqlite3_bind_text(*st, 1, arg, -1, SQLITE_TRANSIENT) != SQLITE_OK)) {
        ierr("cannot read the database: %s", sqlite3_errmsg(SQ(db)));
        sqlite3_finalize(*st);
        *st = NULL;
        return -1;
    }
    return 0;
}

static char *sq_text(pt_introspect_t *db, sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s != NULL ? idup(db, (const char *)s) : NULL;
}

static int sq_open_db(pt_introspect_t *db, const char *path)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *sq = NULL;
    size_t cap = 16;
    int rc;
    if (strcmp(path, ":memory:") == 0 || path[0] == '\0') {
        ierr("--db sqlite: needs the path of a database file");
        return -1;
    }
    rc = sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL);
    db->conn = sq;
    if (rc != SQLITE_OK) {
        ierr("cannot open %s: %s", path, sq ? sqlite3_errmsg(sq) : "out of memory");
        return -1;
    }
    if (sq_prepare(db,
                   "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                   "'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
                   NULL, &st) != 0)
        return -1;
    db->t = icalloc(db, sizeof(*db->t) * cap);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pt_introspect_table_t *t;
        if (db->nt == cap) {
            pt_introspect_table_t *n = icalloc(db, sizeof(*db->t) * cap * 2);
            memcpy(n, db->t, sizeof(*db->t) * cap);
            db->t = n;
            cap *= 2;
        }
        t = &db->t[db->nt++];
        t->name = sq_text(db, st, 0);
        t->sql = sq_text(db, st, 1);
    }
    if (rc != SQLITE_DONE) {
        ierr("cannot read %s: %s", path, sqlite3_errmsg(SQ(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

static int sq_load_table(pt_introspect_t *db, pt_introspect_table_t *t)
{
    sqlite3_stmt *st = NULL, *ist = NULL;
    size_t cap, i, pkpos[PT_INTROSPECT_PK_MAX + 1] = {0};
    int rc, npk = 0;

    /* columns */
    if (sq_prepare(db,
                   "SELECT name, coalesce(type, ''), \"notnull\", dflt_value, pk, hidden FROM "
                   "pragma_table_xinfo(?1) ORDER BY cid",
                   t->name, &st) != 0)
        return -1;
    cap = 16;
    t->cols = icalloc(db, sizeof(pt_introspect_column_t) * cap);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pt_introspect_column_t *c;
        int pk = sqlite3_column_int(st, 4), hidden = sqlite3_column_int(st, 5);
        if (hidden == 1)
            continue; /* a virtual table's hidden column */
        if (t->ncols == cap) {
            pt_introspect_column_t *n = icalloc(db, sizeof(pt_introspect_column_t) * cap * 2);
            memcpy(n, t->cols, sizeof(pt_introspect_column_t) * cap);
            t->cols = n;
            cap *= 2;
        }
        c = &t->cols[t->ncols];
        c->name = sq_text(db, st, 0);
        c->type = sq_text(db, st, 1);
        c->notnull = sqlite3_column_int(st, 2);
        c->dflt = sq_text(db, st, 3);
        c->generated = hidden == 2 || hidden == 3;
        c->pk = pk;
        if (pk > 0 && pk <= PT_INTROSPECT_PK_MAX)
            pkpos[pk] = t->ncols + 1;
        if (pk > npk)
            npk = pk;
        sq_kind(c);
        t->ncols++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        ierr("cannot read the columns of %s: %s", t->name, sqlite3_errmsg(SQ(db)));
        return -1;
    }
    if (npk > 0 && npk <= PT_INTROSPECT_PK_MAX) {
        for (i = 1; i <= (size_t)npk; i++)
            t->pk[i - 1] = pkpos[i] - 1;
        t->npk = (size_t)npk;
        /* INTEGER PRIMARY KEY is the rowid: SQLite assigns it */
        if (npk == 1 && strcasecmp(t->cols[t->pk[0]].type, "INTEGER") == 0 &&
            !sq_without_rowid(t->sql))
            t->cols[t->pk[0]].generated = 1;
    } else if (npk > PT_INTROSPECT_PK_MAX) {
        fprintf(stderr,
                "portico generate: warning: %s: a primary key of %d columns is not "
                "supported (at most %d): only the list route is generated\n",
                t->name, npk, PT_INTROSPECT_PK_MAX);
    }

    /* indexes: unique constraints and leading columns */
    if (sq_prepare(db,
                   "SELECT name, \"unique\" AND NOT partial AND origin <> 'pk' FROM "
                   "pragma_index_list(?1)",
                   t->name, &st) != 0)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int uniq = sqlite3_column_int(st, 1), first = 1;
        if (sq_prepare(db, "SELECT cid FROM pragma_index_info(?1) ORDER BY seqno",
                       (const char *)sqlite3_column_text(st, 0), &ist) != 0) {
            sqlite3_finalize(st);
            return -1;
        }
        while (sqlite3_step(ist) == SQLITE_ROW) {
            /* cid: the column's rank in the table (the cid of table_xinfo); -1 is the
             * rowid, -2 an expression */
            int cid = sqlite3_column_int(ist, 0);
            if (cid >= 0 && (size_t)cid < t->ncols) {
                t->cols[cid].indexed |= first;
                t->cols[cid].unique |= uniq;
            }
            first = 0;
        }
        sqlite3_finalize(ist);
    }
    sqlite3_finalize(st);

    /* foreign keys */
    if (sq_prepare(db,
                   "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) "
                   "ORDER BY id, seq",
                   t->name, &st) != 0)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *ref = (const char *)sqlite3_column_text(st, 1);
        const char *from = (const char *)sqlite3_column_text(st, 2);
        const char *to = (const char *)sqlite3_column_text(st, 3);
        for (i = 0; i < t->ncols && from != NULL; i++)
            if (strcmp(t->cols[i].name, from) == 0 && t->cols[i].ref == NULL)
                t->cols[i].ref = to != NULL ? ifmt(db, "references %s(%s)", ref, to)
                                            : ifmt(db, "references %s", ref);
    }
    sqlite3_finalize(st);
    return 0;
}

/* ------------------------------------------------------------------ PostgreSQL */

static PGresult *pg_query(pt_introspect_t *db, const char *sql, const char *arg)
{
    PGresult *r = PQexecParams(PQ(db), sql, arg != NULL ? 1 : 0, NULL, arg != NULL ? &arg : NULL,
                               NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        ierr("cannot read the database: %s", m != NULL ? m : PQerrorMessage(PQ(db)));
        PQclear(r);
        return NULL;
    }
    return r;
}

static char *pg_text(pt_introspect_t *db, PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : idup(db, PQgetvalue(r, row, col));
}

static int pg_open_db(pt_introspect_t *db, const char *url)
{
    PGresult *r;
    int i, n;
    db->conn = PQconnectdb(url);
    if (PQ(db) == NULL || PQstatus(PQ(db)) != CONNECTION_OK) {
        char *m = scrub(db, PQ(db) != NULL ? PQerrorMessage(PQ(db)) : "out of memory");
        size_t len = strlen(m);
        while (len > 0 && (m[len - 1] == '\n' || m[len - 1] == ' '))
            len--;
        ierr("cannot connect to %s: %.*s", db->display, (int)len, m);
        return -1;
    }
    PQclear(PQexec(PQ(db), "SET client_encoding = 'UTF8'"));
    if ((r = pg_query(db, "SELECT coalesce((current_schemas(false))[1], 'public')", NULL)) == NULL)
        return -1;
    db->schema = pg_text(db, r, 0, 0);
    PQclear(r);
    if ((r = pg_query(db, "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'", NULL)) == NULL)
        return -1;
    n = PQntuples(r);
    db->keywords = icalloc(db, sizeof(char *) * (size_t)(n + 1));
    for (i = 0; i < n; i++)
        db->keywords[db->nkeywords++] = pg_text(db, r, i, 0);
    PQclear(r);
    r = pg_query(db,
                 "SELECT c.oid::text, c.relname FROM pg_class c JOIN pg_namespace s ON s.oid = "
                 "c.relnamespace WHERE s.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT "
                 "c.relispartition ORDER BY c.relname",
                 db->schema);
    if (r == NULL)
        return -1;
    n = PQntuples(r);
    db->t = icalloc(db, sizeof(*db->t) * (size_t)(n + 1));
    for (i = 0; i < n; i++) {
        db->t[db->nt].oid = pg_text(db, r, i, 0);
        db->t[db->nt++].name = pg_text(db, r, i, 1);
    }
    PQclear(r);
    return 0;
}

/* "{1,2}" or "1 2" -> attribute numbers; returns how many (at most max). */
static size_t pg_attnums(const char *s, int *out, size_t max)
{
    size_t n = 0;
    while (s != NULL && *s != '\0' && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) {
            s++;
            continue;
        }
        out[n++] = (int)v;
        s = end;
    }
    return n;
}

static pt_introspect_column_t *pg_col(pt_introspect_table_t *t, int attnum)
{
    size_t i;
    for (i = 0; i < t->ncols; i++)
        if (t->cols[i].attnum == attnum)
            return &t->cols[i];
    return NULL;
}

static int pg_load_table(pt_introspect_t *db, pt_introspect_table_t *t)
{
    PGresult *r;
    int i, n;
    r = pg_query(db,
                 "SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), "
                 "format_type(a.atttypid, NULL), coalesce(bt.typname, t.typname), a.attnotnull, "
                 "pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, "
                 "CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, "
                 "coalesce(bt.typcategory, t.typcategory), "
                 "CASE WHEN t.typtype = 'e' THEN array_to_json(ARRAY(SELECT e.enumlabel FROM "
                 "pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder))::text END "
                 "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                 "LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
                 "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                 "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
                 "ORDER BY a.attnum",
                 t->oid);
    if (r == NULL)
        return -1;
    n = PQntuples(r);
    t->cols = icalloc(db, sizeof(pt_introspect_column_t) * (size_t)(n + 1));
    for (i = 0; i < n; i++) {
        pt_introspect_column_t *c = &t->cols[t->ncols++];
        const char *ident = PQgetvalue(r, i, 7), *gen = PQgetvalue(r, i, 8), *en;
        c->attnum = atoi(PQgetvalue(r, i, 0));
        c->name = pg_text(db, r, i, 1);
        c->type = pg_text(db, r, i, 2);
        c->cast = pg_text(db, r, i, 3);
        c->notnull = PQgetvalue(r, i, 5)[0] == 't';
        c->dflt = pg_text(db, r, i, 6);
        c->generated = ident[0] != '\0' || gen[0] != '\0' ||
                       (c->dflt != NULL && strncmp(c->dflt, "nextval(", 8) == 0);
        if (gen[0] != '\0')
            c->dflt = NULL; /* the generation expression, not a default */
        pg_kind(c, PQgetvalue(r, i, 4), PQgetvalue(r, i, 10), atol(PQgetvalue(r, i, 9)));
        /* without a length, character and bit are of length 1, and an explicit
         * cast truncates: cast to their unbounded kin, so that too long a value
         * fails on assignment instead */
        if (strcmp(c->cast, "character") == 0)
            c->cast = idup(db, "bpchar");
        else if (strcmp(c->cast, "bit") == 0)
            c->cast = idup(db, "varbit");
        if (!PQgetisnull(r, i, 11)) {
            pt_json_error_t jerr;
            en = PQgetvalue(r, i, 11);
            c->enums = pt_json_parse(db->a, en, strlen(en), &PT_JSON_LIMITS_DEFAULT, &jerr);
        }
    }
    PQclear(r);

    r = pg_query(db,
                 "SELECT con.contype, con.conkey::text, con.confrelid::regclass::text, "
                 "(SELECT string_agg(fa.attname, ', ' ORDER BY k.i) FROM unnest(con.confkey) "
                 "WITH ORDINALITY AS k(n, i) JOIN pg_attribute fa ON fa.attrelid = con.confrelid "
                 "AND fa.attnum = k.n) FROM pg_constraint con WHERE con.conrelid = $1::oid AND "
                 "con.contype IN ('p', 'u', 'f') ORDER BY con.contype, con.conname",
                 t->oid);
    if (r == NULL)
        return -1;
    for (i = 0; i < PQntuples(r); i++) {
        char type = PQgetvalue(r, i, 0)[0];
        int nums[64];
        size_t k, m = pg_attnums(PQgetvalue(r, i, 1), nums, PT_ARRAY_SIZE(nums));
        for (k = 0; k < m; k++) {
            pt_introspect_column_t *c = pg_col(t, nums[k]);
            if (c == NULL)
                continue;
            if (type == 'p' && m <= PT_INTROSPECT_PK_MAX) {
                t->pk[k] = (size_t)(c - t->cols);
                c->pk = (int)k + 1;
            } else if (type == 'u') {
                c->unique = 1;
            } else if (type == 'f' && c->ref == NULL) {
                c->ref = ifmt(db, "references %s(%s)", PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
            }
        }
        if (type == 'p' && m <= PT_INTROSPECT_PK_MAX)
            t->npk = m;
        else if (type == 'p')
            fprintf(stderr,
                    "portico generate: warning: %s: a primary key of %zu columns is not "
                    "supported (at most %d): only the list route is generated\n",
                    t->name, m, PT_INTROSPECT_PK_MAX);
    }
    PQclear(r);

    r = pg_query(db,
                 "SELECT indkey::text, indisunique AND NOT indisprimary, indpred IS NOT NULL "
                 "FROM pg_index WHERE indrelid = $1::oid",
                 t->oid);
    if (r == NULL)
        return -1;
    for (i = 0; i < PQntuples(r); i++) {
        int nums[64];
        size_t k, m = pg_attnums(PQgetvalue(r, i, 0), nums, PT_ARRAY_SIZE(nums));
        int uniq = PQgetvalue(r, i, 1)[0] == 't' && PQgetvalue(r, i, 2)[0] != 't';
        for (k = 0; k < m; k++) {
            pt_introspect_column_t *c = pg_col(t, nums[k]);
            if (c != NULL && k == 0)
                c->indexed = 1;
            if (c != NULL && uniq)
                c->unique = 1;
        }
    }
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ MariaDB */

/* Reserved words of MariaDB 10.11 (those that fail unquoted as a column or
 * table name) and of MySQL 8, sorted for bsearch. Other keywords (id, name,
 * status...) work as plain identifiers. */
/* clang-format off */
static const char *const my_reserved[] = {
    "accessible", "account", "add", "all", "alter", "analyze", "and", "as", "asc", "asensitive",
    "before", "between", "bigint", "binary", "blob", "both", "by", "call", "cascade", "case",
    "change", "char", "character", "check", "collate", "column", "condition", "constraint",
    "continue", "convert", "create", "cross", "cube", "cume_dist", "current_date", "current_role",
    "current_time", "current_timestamp", "current_user", "cursor", "database", "databases",
    "day_hour", "day_microsecond", "day_minute", "day_second", "dec", "decimal", "declare",
    "default", "delayed", "delete", "delete_domain_id", "dense_rank", "desc", "describe",
    "deterministic", "distinct", "distinctrow", "div", "do_domain_ids", "double", "drop", "dual",
    "each", "else", "elseif", "empty", "enclosed", "escaped", "except", "exists", "exit",
    "explain", "false", "fetch", "first_value", "float", "float4", "float8", "for", "force",
    "foreign", "from", "fulltext", "function", "generated", "get", "grant", "group", "grouping",
    "groups", "having", "high_priority", "hour_microsecond", "hour_minute", "hour_second", "if",
    "ignore", "ignore_domain_ids", "in", "index", "infile", "inner", "inout", "insensitive",
    "insert", "int", "int1", "int2", "int3", "int4", "int8", "integer", "intersect", "interval",
    "into", "io_after_gtids", "io_before_gtids", "is", "iterate", "join", "json_table", "key",
    "keys", "kill", "lag", "last_value", "lateral", "lead", "leading", "leave", "left", "like",
    "limit", "linear", "lines", "load", "localtime", "localtimestamp", "lock", "long", "longblob",
    "longtext", "loop", "low_priority", "manual", "master_bind", "master_demote_to_replica",
    "master_demote_to_slave", "master_heartbeat_period", "master_ssl_verify_server_cert", "match",
    "maxvalue", "mediumblob", "mediumint", "mediumtext", "middleint", "minute_microsecond",
    "minute_second", "mod", "modifies", "natural", "no_write_to_binlog", "not", "nth_value",
    "ntile", "null", "numeric", "of", "offset", "on", "optimize", "optimizer_costs", "optionally",
    "or", "order", "out", "outer", "outfile", "over", "page_checksum", "parallel",
    "parse_vcol_expr", "partition", "percent_rank", "portion", "precision", "primary",
    "procedure", "purge", "qualify", "range", "rank", "read", "read_write", "reads", "real",
    "recursive", "ref_system_id", "references", "regexp", "release", "rename", "repeat",
    "replace", "require", "resignal", "restrict", "return", "returning", "revoke", "right",
    "rlike", "row", "row_number", "rows", "schema", "schemas", "second_microsecond", "select",
    "sensitive", "separator", "set", "show", "signal", "smallint", "spatial", "specific", "sql",
    "sql_big_result", "sql_buffer_result", "sql_cache", "sql_calc_found_rows", "sql_no_cache",
    "sql_small_result", "sqlexception", "sqlstate", "sqlwarning", "ssl", "starting",
    "stats_auto_recalc", "stats_persistent", "stats_sample_pages", "stored", "straight_join",
    "system", "table", "terminated", "then", "tinyblob", "tinyint", "tinytext", "to", "trailing",
    "trigger", "true", "undo", "union", "unique", "unlock", "unsigned", "update", "usage", "use",
    "using", "utc_date", "utc_time", "utc_timestamp", "value", "values", "varbinary", "varchar",
    "varcharacter", "varying", "virtual", "when", "where", "while", "window", "with", "write",
    "xor", "year_month", "zerofill",
};
/* clang-format on */

static int cmp_word(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

/* "%xx" escapes decoded in place (as the runtime's driver does). */
static void pct_decode(char *s)
{
    char *o = s;
    for (; *s != '\0'; s++) {
        if (*s == '%' && s[1] != '\0' && s[2] != '\0') {
            char h[3] = {s[1], s[2], '\0'}, *end;
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
}

typedef struct my_url_s {
    char *user, *pass, *host, *db;
    unsigned port;
} my_url_t;

/* mysql://user:password@host:port/database (also mariadb://), read as the
 * runtime's driver reads it: user and password percent-decoded, the host
 * 127.0.0.1 and the port 3306 when left out, a query string ignored. */
static int my_parse_url(pt_introspect_t *db, const char *url, my_url_t *u)
{
    char *p = idup(db, strstr(url, "://") + 3), *q, *at, *colon;
    memset(u, 0, sizeof(*u));
    if ((q = strchr(p, '?')) != NULL)
        *q = '\0';
    if ((q = strchr(p, '/')) != NULL) {
        *q = '\0';
        u->db = q + 1;
    }
    if (u->db == NULL || u->db[0] == '\0') {
        ierr("--db %s: the URL names no database (mysql://user@host:port/database)", db->display);
        return -1;
    }
    if ((at = strrchr(p, '@')) != NULL) {
        *at = '\0';
        u->user = p;
        if ((colon = strchr(p, ':')) != NULL) {
            *colon = '\0';
            u->pass = colon + 1;
            pct_decode(u->pass);
        }
        pct_decode(u->user);
        p = at + 1;
    }
    u->host = p;
    u->port = 3306;
    if (*p == '[' && (q = strchr(p, ']')) != NULL) {
        *q = '\0';
        u->host = p + 1;
        p = q + 1;
    }
    if ((colon = strrchr(p, ':')) != NULL) {
        *colon = '\0';
        u->port = (unsigned)atoi(colon + 1);
    }
    if (u->host[0] == '\0')
        u->host = "127.0.0.1";
    return 0;
}

/* A stored result of sql, or NULL (with a message unless quiet). */
static MYSQL_RES *my_query(pt_introspect_t *db, const char *sql, int quiet)
{
    MYSQL_RES *r = NULL;
    if (mysql_query(MY(db), sql) != 0 || (r = mysql_store_result(MY(db))) == NULL) {
        if (!quiet)
            ierr("cannot read the database: %s", scrub(db, mysql_error(MY(db))));
        return NULL;
    }
    return r;
}

static int my_open_db(pt_introspect_t *db, const char *url)
{
    unsigned timeout = 10;
    my_url_t u;
    MYSQL_RES *r;
    MYSQL_ROW row;
    MYSQL *my;
    int ok;
    unsigned long major = 0, minor = 0;

    if (my_parse_url(db, url, &u) != 0)
        return -1;
    if ((my = mysql_init(NULL)) == NULL)
        oom();
    db->conn = my;
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    ok = mysql_real_connect(my, u.host, u.user, u.pass, u.db, u.port, NULL, 0) != NULL;
    if (u.pass != NULL)
        memset(u.pass, 0, strlen(u.pass));
    if (!ok) {
        ierr("cannot connect to %s: %s", db->display, scrub(db, mysql_error(my)));
        return -1;
    }
    if ((r = my_query(db, "SELECT DATABASE(), VERSION()", 0)) == NULL)
        return -1;
    if ((row = mysql_fetch_row(r)) != NULL && row[0] != NULL) {
        db->dbname = idup(db, row[0]);
        sscanf(row[1] != NULL ? row[1] : "", "%lu.%lu", &major, &minor);
        /* INSERT ... RETURNING: MariaDB 10.5; MySQL has none */
        db->returning = row[1] != NULL && strstr(row[1], "MariaDB") != NULL &&
                        (major > 10 || (major == 10 && minor >= 5));
    }
    mysql_free_result(r);
    if (db->dbname == NULL) {
        ierr("--db %s: no database selected", db->display);
        return -1;
    }
    r = my_query(db,
                 "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                 "DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') "
                 "ORDER BY BINARY TABLE_NAME",
                 0);
    if (r == NULL)
        return -1;
    db->t = icalloc(db, sizeof(*db->t) * ((size_t)mysql_num_rows(r) + 1));
    while ((row = mysql_fetch_row(r)) != NULL)
        db->t[db->nt++].name = idup(db, row[0]);
    mysql_free_result(r);
    return 0;
}

static pt_introspect_column_t *my_col(pt_introspect_table_t *t, const char *name)
{
    size_t i;
    for (i = 0; t != NULL && name != NULL && i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

/* ENUM('a','it''s','b\\c') -> ["a", "it's", "b\c"] */
static pt_json_t *my_enum_labels(pt_introspect_t *db, const char *type)
{
    pt_json_t *arr = pt_json_array(db->a);
    const char *p = strchr(type, '(');
    if (arr == NULL)
        oom();
    while (p != NULL && *p != '\0' && *p != ')') {
        char *label, *o;
        if (*p++ != '\'')
            continue;
        label = o = icalloc(db, strlen(p) + 1);
        for (; *p != '\0'; p++) {
            if (*p == '\'' && p[1] == '\'') {
                *o++ = *p++;
            } else if (*p == '\\' && p[1] != '\0') {
                *o++ = *++p;
            } else if (*p == '\'') {
                p++;
                break;
            } else {
                *o++ = *p;
            }
        }
        if (pt_json_array_add(db->a, arr, pt_json_string(db->a, label, (size_t)(o - label))) !=
            PT_OK)
            oom();
    }
    return arr;
}

/* The kind of a column from information_schema's DATA_TYPE and COLUMN_TYPE. */
static void my_kind(pt_introspect_t *db, pt_introspect_column_t *c, const char *dt,
                    const char *maxlen)
{
    static const struct {
        const char *name;
        pt_column_kind_t kind;
    } map[] = {{"tinyint", PT_COL_INT},
               {"smallint", PT_COL_INT},
               {"mediumint", PT_COL_INT},
               {"int", PT_COL_INT},
               {"bigint", PT_COL_INT},
               {"year", PT_COL_INT},
               {"decimal", PT_COL_NUM},
               {"float", PT_COL_NUM},
               {"double", PT_COL_NUM},
               {"date", PT_COL_DATE},
               {"datetime", PT_COL_DATETIME},
               {"timestamp", PT_COL_DATETIME},
               {"uuid", PT_COL_UUID},
               {"json", PT_COL_JSON},
               {"binary", PT_COL_BLOB},
               {"varbinary", PT_COL_BLOB},
               {"tinyblob", PT_COL_BLOB},
               {"blob", PT_COL_BLOB},
               {"mediumblob", PT_COL_BLOB},
               {"longblob", PT_COL_BLOB},
               {"bit", PT_COL_BLOB},
               {"geometry", PT_COL_BLOB},
               {"point", PT_COL_BLOB},
               {"linestring", PT_COL_BLOB},
               {"polygon", PT_COL_BLOB},
               {"multipoint", PT_COL_BLOB},
               {"multilinestring", PT_COL_BLOB},
               {"multipolygon", PT_COL_BLOB},
               {"geometrycollection", PT_COL_BLOB}};
    static const char *const texts[] = {"char", "varchar",    "tinytext",
                                        "text", "mediumtext", "longtext"};
    size_t i;
    c->kind = PT_COL_TEXT; /* texts, time, set, inet6, ... */
    for (i = 0; i < PT_ARRAY_SIZE(map); i++)
        if (strcasecmp(map[i].name, dt) == 0)
            c->kind = map[i].kind;
    /* BOOLEAN is TINYINT(1): the driver reads it as a boolean */
    if (strcasecmp(dt, "tinyint") == 0 && strncasecmp(c->type, "tinyint(1)", 10) == 0)
        c->kind = PT_COL_BOOL;
    if (strcasecmp(dt, "char") == 0 || strcasecmp(dt, "varchar") == 0)
        c->maxlen = maxlen != NULL ? atol(maxlen) : 0;
    if (strcasecmp(dt, "enum") == 0)
        c->enums = my_enum_labels(db, c->type);
    c->describe = c->kind == PT_COL_TEXT && c->enums == NULL;
    for (i = 0; i < PT_ARRAY_SIZE(texts); i++)
        if (strcasecmp(texts[i], dt) == 0)
            c->describe = 0;
}

/* `name` with backticks doubled. */
static char *my_quoted(pt_introspect_t *db, const char *name)
{
    char *o = icalloc(db, strlen(name) * 2 + 3), *p = o;
    *p++ = '`';
    for (; *name != '\0'; name++) {
        if (*name == '`')
            *p++ = '`';
        *p++ = *name;
    }
    *p = '`';
    return o;
}

static void my_fill_column(pt_introspect_t *db, pt_introspect_column_t *c, MYSQL_ROW row)
{
    const char *extra = row[6] != NULL ? row[6] : "";
    c->name = idup(db, row[1]);
    c->type = idup(db, row[2]);
    c->notnull = row[4] != NULL && strcmp(row[4], "NO") == 0;
    c->auto_increment = has_word(extra, "auto_increment");
    c->generated = c->auto_increment || has_word(extra, "VIRTUAL GENERATED") ||
                   has_word(extra, "STORED GENERATED") || has_word(extra, "PERSISTENT GENERATED") ||
                   has_word(extra, "ROW START") || has_word(extra, "ROW END");
    /* the default: MariaDB shows an expression ('NULL' for DEFAULT NULL),
     * MySQL a bare literal; DEFAULT(col) stands for either, except a MySQL
     * expression default, which DEFAULT() refuses: that is copied */
    if (!c->generated && row[5] != NULL && strcmp(row[5], "NULL") != 0)
        c->dflt = has_word(extra, "DEFAULT_GENERATED")
                      ? ifmt(db, "(%s)", row[5])
                      : ifmt(db, "DEFAULT(%s)", my_quoted(db, c->name));
    my_kind(db, c, row[3] != NULL ? row[3] : "", row[7]);
}

/* Columns of the tables kept, from one query for the whole database. */
static int my_load_columns(pt_introspect_t *db)
{
    MYSQL_RES *r;
    MYSQL_ROW row;
    pt_introspect_table_t *t;
    size_t i;
    r = my_query(db,
                 "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, "
                 "COLUMN_DEFAULT, EXTRA, CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS "
                 "WHERE TABLE_SCHEMA = DATABASE() ORDER BY BINARY TABLE_NAME, ORDINAL_POSITION",
                 0);
    if (r == NULL)
        return -1;
    while ((row = mysql_fetch_row(r)) != NULL) /* count, then fill */
        if ((t = find_table(db, row[0])) != NULL)
            t->ncols++;
    for (i = 0; i < db->nt; i++) {
        db->t[i].cols = icalloc(db, sizeof(pt_introspect_column_t) * (db->t[i].ncols + 1));
        db->t[i].ncols = 0;
    }
    mysql_data_seek(r, 0);
    while ((row = mysql_fetch_row(r)) != NULL)
        if ((t = find_table(db, row[0])) != NULL)
            my_fill_column(db, &t->cols[t->ncols++], row);
    mysql_free_result(r);

    /* MariaDB's JSON is LONGTEXT with CHECK (json_valid(`col`)); MySQL has
     * no CHECK_CONSTRAINTS.TABLE_NAME (and a real JSON type): no error */
    r = my_query(db,
                 "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM "
                 "information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() "
                 "AND LEVEL = 'Column'",
                 1);
    while (r != NULL && (row = mysql_fetch_row(r)) != NULL) {
        pt_introspect_column_t *c = my_col(find_table(db, row[0]), row[1]);
        if (c != NULL && c->kind == PT_COL_TEXT && row[2] != NULL &&
            strcmp(row[2], ifmt(db, "json_valid(%s)", my_quoted(db, c->name))) == 0) {
            /* the runtime reads it as JSON (its format name is "json") */
            c->kind = PT_COL_JSON;
        }
    }
    if (r != NULL)
        mysql_free_result(r);
    return 0;
}

/* Primary keys, unique and leading columns from the indexes. */
static int my_load_indexes(pt_introspect_t *db)
{
    MYSQL_RES *r;
    MYSQL_ROW row;
    size_t i, *nkey = icalloc(db, sizeof(size_t) * (db->nt + 1));
    r = my_query(db,
                 "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME FROM "
                 "information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                 "ORDER BY BINARY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
                 0);
    if (r == NULL)
        return -1;
    while ((row = mysql_fetch_row(r)) != NULL) {
        pt_introspect_table_t *t = find_table(db, row[0]);
        pt_introspect_column_t *c = my_col(t, row[4]); /* NULL: an expression (MySQL) */
        long seq = row[3] != NULL ? atol(row[3]) : 0;
        int primary = row[1] != NULL && strcmp(row[1], "PRIMARY") == 0;
        if (t == NULL)
            continue;
        if (primary && seq >= 1) {
            size_t *n = &nkey[t - db->t];
            if ((size_t)seq > *n)
                *n = (size_t)seq;
            if (c != NULL && seq <= PT_INTROSPECT_PK_MAX) {
                t->pk[seq - 1] = (size_t)(c - t->cols);
                c->pk = (int)seq;
            }
        }
        if (c == NULL)
            continue;
        if (seq == 1)
            c->indexed = 1;
        if (!primary && row[2] != NULL && strcmp(row[2], "0") == 0)
            c->unique = 1;
    }
    mysql_free_result(r);
    for (i = 0; i < db->nt; i++) {
        pt_introspect_table_t *t = &db->t[i];
        size_t k;
        if (nkey[i] <= PT_INTROSPECT_PK_MAX) {
            t->npk = nkey[i];
            continue;
        }
        for (k = 0; k < t->ncols; k++)
            t->cols[k].pk = 0;
        fprintf(stderr,
                "portico generate: warning: %s: a primary key of %zu columns is not "
                "supported (at most %d): only the list route is generated\n",
                t->name, nkey[i], PT_INTROSPECT_PK_MAX);
    }
    return 0;
}

/* Foreign keys: "references t(a, b)" on each of their columns. */
static int my_load_foreign_keys(pt_introspect_t *db)
{
    MYSQL_RES *r;
    MYSQL_ROW *rows;
    size_t n, i, j, k;
    r = my_query(db,
                 "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, "
                 "k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME "
                 "FROM information_schema.KEY_COLUMN_USAGE k JOIN "
                 "information_schema.REFERENTIAL_CONSTRAINTS rc ON rc.CONSTRAINT_SCHEMA = "
                 "k.CONSTRAINT_SCHEMA AND rc.TABLE_NAME = k.TABLE_NAME AND rc.CONSTRAINT_NAME = "
                 "k.CONSTRAINT_NAME WHERE k.TABLE_SCHEMA = DATABASE() "
                 "ORDER BY BINARY k.TABLE_NAME, BINARY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
                 0);
    if (r == NULL)
        return -1;
    n = (size_t)mysql_num_rows(r);
    rows = icalloc(db, sizeof(*rows) * (n + 1));
    for (i = 0; i < n; i++)
        rows[i] = mysql_fetch_row(r);
    /* the rows of one constraint follow each other, in key order */
    for (i = 0; i < n; i = j) {
        pt_introspect_table_t *t = find_table(db, rows[i][0]);
        const char *schema = rows[i][3];
        char *to = idup(db, rows[i][5]), *ref;
        for (j = i + 1;
             j < n && strcmp(rows[j][0], rows[i][0]) == 0 && strcmp(rows[j][1], rows[i][1]) == 0;
             j++)
            to = ifmt(db, "%s, %s", to, rows[j][5] != NULL ? rows[j][5] : "?");
        if (t == NULL)
            continue;
        ref = schema != NULL && strcmp(schema, db->dbname) != 0
                  ? ifmt(db, "references %s.%s(%s)", schema, rows[i][4], to)
                  : ifmt(db, "references %s(%s)", rows[i][4], to);
        for (k = i; k < j; k++) {
            pt_introspect_column_t *c = my_col(t, rows[k][2]);
            if (c != NULL && c->ref == NULL)
                c->ref = ref;
        }
    }
    mysql_free_result(r);
    return 0;
}

static int my_load(pt_introspect_t *db)
{
    if (my_load_columns(db) != 0 || my_load_indexes(db) != 0 || my_load_foreign_keys(db) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ selection */

/* Keeps the tables of --tables (in that order) and marks those of
 * --read-only (introspect.h). */
int pt_introspect_select(pt_introspect_t *db, const char *tables, const char *read_only)
{
    char **names = NULL;
    size_t n, i;
    if (tables != NULL) {
        pt_introspect_table_t *sel;
        char *seen = icalloc(db, db->nt);
        size_t k = 0;
        n = split_list(db, tables, &names);
        if (n == 0) {
            ierr("--tables lists no table");
            return -1;
        }
        sel = icalloc(db, sizeof(*sel) * n);
        for (i = 0; i < n; i++) {
            pt_introspect_table_t *t = find_table(db, names[i]);
            if (t == NULL) {
                ierr("--tables: no table \"%s\" in %s", names[i],
                     db->kind == PT_INTROSPECT_POSTGRESQL ? ifmt(db, "schema %s", db->schema)
                                                          : "the database");
                return -1;
            }
            if (!seen[t - db->t]) {
                seen[t - db->t] = 1;
                sel[k++] = *t;
            }
        }
        db->t = sel;
        db->nt = k;
    }
    if (read_only != NULL) {
        n = split_list(db, read_only, &names);
        for (i = 0; i < n; i++) {
            pt_introspect_table_t *t = find_table(db, names[i]);
            if (t == NULL) {
                ierr("--read-only: no table \"%s\" among the tables generated", names[i]);
                return -1;
            }
            t->read_only = 1;
        }
    }
    if (db->nt == 0) {
        ierr("the database has no table");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ interface */

/* Opens the database of db->kind and lists its tables (introspect.h). */
int pt_introspect_open(pt_introspect_t *db, const char *url)
{
    switch (db->kind) {
    case PT_INTROSPECT_SQLITE:
        return sq_open_db(db, url + 7);
    case PT_INTROSPECT_POSTGRESQL:
        return pg_open_db(db, url);
    case PT_INTROSPECT_MARIADB:
        return my_open_db(db, url);
    }
    return -1;
}

/* Columns, keys, indexes and foreign keys of the tables kept (introspect.h):
 * MariaDB in one pass over the database, the others table by table. */
int pt_introspect_load(pt_introspect_t *db)
{
    size_t i;
    if (db->kind == PT_INTROSPECT_MARIADB)
        return my_load(db);
    for (i = 0; i < db->nt; i++)
        if ((db->kind == PT_INTROSPECT_POSTGRESQL ? pg_load_table(db, &db->t[i])
                                                  : sq_load_table(db, &db->t[i])) != 0)
            return -1;
    return 0;
}

/* Must word be quoted as an identifier here? (introspect.h) */
int pt_introspect_reserved(const pt_introspect_t *db, const char *word)
{
    size_t i;
    switch (db->kind) {
    case PT_INTROSPECT_SQLITE:
        return sqlite3_keyword_check(word, (int)strlen(word)) != 0 || strcmp(word, "rowid") == 0 ||
               strcmp(word, "oid") == 0 || strcmp(word, "_rowid_") == 0;
    case PT_INTROSPECT_POSTGRESQL:
        for (i = 0; i < db->nkeywords; i++)
            if (strcmp(db->keywords[i], word) == 0)
                return 1;
        return 0;
    case PT_INTROSPECT_MARIADB:
        return bsearch(word, my_reserved, PT_ARRAY_SIZE(my_reserved), sizeof(my_reserved[0]),
                       cmp_word) != NULL;
    }
    return 1;
}

/* Closes the connection, if any; the model stays in db->a. */
void pt_introspect_close(pt_introspect_t *db)
{
    if (db->conn == NULL)
        return;
    switch (db->kind) {
    case PT_INTROSPECT_SQLITE:
        sqlite3_close_v2(SQ(db));
        break;
    case PT_INTROSPECT_POSTGRESQL:
        PQfinish(PQ(db));
        break;
    case PT_INTROSPECT_MARIADB:
        mysql_close(MY(db));
        break;
    }
    db->conn = NULL;
}
