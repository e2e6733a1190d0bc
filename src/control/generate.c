/*
 * generate.c - `portico generate`: a service API definition from the
 * tables of a database (docs/generate.md).
 *
 * The database is read once: a SQLite file through its PRAGMA table-valued
 * functions, a PostgreSQL schema (the first of the search_path, usually
 * public) through pg_catalog. For each table we keep its columns (declared
 * type, NOT NULL, default, generated: INTEGER PRIMARY KEY / serial /
 * identity / GENERATED ALWAYS), its primary key in order, the columns of
 * its unique constraints, the leading columns of its indexes and its
 * foreign keys. From that model the YAML is written by hand, with every
 * string that is not plainly safe quoted and escaped: per table a schema
 * of the row and six processes and routes (a keyset-paged, filterable
 * list; get; create; replace; update of the members present; delete).
 *
 * SQL is written for the database it was read from: identifiers quoted
 * when they are not plain lower-case words or are keywords of that
 * database; on PostgreSQL every parameter is cast to its column's type
 * (the server cannot infer the type of `:x IS NULL`). Writes use RETURNING
 * (SQLite 3.35+, PostgreSQL) so that each write is one statement whose
 * result is the row as stored, with the same JSON typing as a SELECT.
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
#include <libpq-fe.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"

#define NAME_MAX_LEN  64 /* identifiers of the definition (processes, parameters) */
#define IDENT_MAX     56 /* a table's identifier: room for "replace_" */
#define JSON_NAME_MAX 60 /* a member name: room for suffixes, at most a path parameter */
#define PARAMS_MAX    64 /* distinct :parameters of one statement (service.c) */
#define PK_MAX        8  /* key columns: page.by takes at most 8 */
#define PAGE_DEFAULT  20
#define PAGE_MAX      100
#define UNPAGED_LIMIT 100
#define PASSWORD_ENV  "PORTICO_DB_PASSWORD"

/* What a column holds, as far as JSON and the schema are concerned. */
typedef enum ckind_e {
    K_ANY = 0, /* no declared type (SQLite): any value */
    K_INT,
    K_NUM,
    K_BOOL,
    K_TEXT,
    K_DATE,
    K_DATETIME,
    K_UUID,
    K_JSON, /* PostgreSQL json/jsonb */
    K_BLOB  /* base64 in JSON */
} ckind_t;

typedef struct col_s {
    char *name;       /* in the database */
    char *json;       /* the JSON member name: an identifier */
    char *type;       /* the declared type, as the database shows it */
    char *cast;       /* PostgreSQL: the type parameters are cast to (no length) */
    char *dflt;       /* the default's SQL expression, or NULL */
    char *ref;        /* "references t(c)" of a foreign key, or NULL */
    pt_json_t *enums; /* PostgreSQL enum labels (an array), or NULL */
    ckind_t kind;
    long maxlen; /* 0: none */
    int attnum;  /* PostgreSQL attribute number */
    int notnull, generated, pk, unique, indexed, filter;
    int describe; /* PostgreSQL: a type shown as a string: say which */
} col_t;

typedef struct table_s {
    char *name;  /* in the database */
    char *ident; /* schema name, process suffix and path segment */
    char *oid;   /* PostgreSQL */
    char *sql;   /* SQLite: CREATE TABLE text */
    col_t *cols;
    size_t ncols;
    size_t pk[PK_MAX]; /* column indexes, in key order */
    size_t npk;        /* 0: no usable primary key (list only) */
    int read_only;
    int selected;
    int create, replace, update; /* which writes are generated (DELETE: any key) */
} table_t;

typedef struct opts_s {
    const char *db, *tables, *read_only, *name, *base_path, *title, *version, *naming, *conn_url,
        *out;
} opts_t;

typedef struct gen_s {
    pt_arena_t a;
    opts_t o;
    int pg, camel;
    sqlite3 *sq;
    PGconn *pq;
    char *schema;    /* PostgreSQL: the schema read */
    char **keywords; /* PostgreSQL: words that must be quoted */
    size_t nkeywords;
    table_t *t;
    size_t nt;
    const char *name, *base_path, *title, *version, *url_written;
    char *db_display; /* the --db URL without a password */
    int password_env; /* the written url takes the password from PASSWORD_ENV */
    char *secrets[2]; /* the passwords of --db as written there: never printed */
    pt_buf_t y;       /* the YAML being written */
    int failed;       /* out of memory while writing, or a name YAML cannot carry */
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
static void y_printf(gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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

/* Valid UTF-8 without NUL (YAML carries nothing else). */
static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned n, i;
        uint32_t cp;
        if (*p < 0x80) {
            p++;
            continue;
        }
        if ((*p & 0xe0) == 0xc0)
            n = 1, cp = *p & 0x1f;
        else if ((*p & 0xf0) == 0xe0)
            n = 2, cp = *p & 0x0f;
        else if ((*p & 0xf8) == 0xf0)
            n = 3, cp = *p & 0x07;
        else
            return 0;
        for (i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
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

/* ------------------------------------------------------------------ YAML */

static void y_append(gen_t *g, const char *s, size_t n)
{
    if (pt_buf_append(&g->y, s, n) != PT_OK)
        g->failed = 1;
}

static void y_raw(gen_t *g, const char *s)
{
    y_append(g, s, strlen(s));
}

static void y_printf(gen_t *g, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        g->failed = 1;
        return;
    }
    y_append(g, tmp, (size_t)n);
}

static void y_indent(gen_t *g, int n)
{
    static const char sp[] = "                                                ";
    y_append(g, sp, (size_t)n < sizeof(sp) - 1 ? (size_t)n : sizeof(sp) - 1);
}

/* Can s be written as a plain scalar, read back as this very string (not a
 * number, boolean or null), in block and flow context alike? */
static int plain_ok(const char *s)
{
    static const char *const special[] = {"y",   "n",    "yes",   "no",   "on",
                                          "off", "true", "false", "null", NULL};
    size_t i;
    if (!(is_alpha((unsigned char)s[0]) || s[0] == '/'))
        return 0;
    for (i = 1; s[i] != '\0'; i++)
        if (!is_alnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '/' && s[i] != '-')
            return 0;
    for (i = 0; special[i] != NULL; i++)
        if (strcasecmp(s, special[i]) == 0)
            return 0;
    return 1;
}

/* Writes s as a YAML scalar: plain when safe, else double-quoted with
 * escapes for '"', '\\', control characters and the characters YAML takes
 * as line breaks or a byte order mark. */
static void y_str(gen_t *g, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!utf8_ok(s)) {
        gerr("a name or text is not valid UTF-8: YAML cannot carry it");
        g->failed = 1;
        return;
    }
    if (plain_ok(s)) {
        y_raw(g, s);
        return;
    }
    y_append(g, "\"", 1);
    for (; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            y_append(g, "\\", 1);
            y_append(g, (const char *)p, 1);
        } else if (*p == '\n') {
            y_raw(g, "\\n");
        } else if (*p == '\t') {
            y_raw(g, "\\t");
        } else if (*p < 0x20 || *p == 0x7f) {
            y_printf(g, "\\x%02x", *p);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            y_printf(g, "\\u%04x", p[1]); /* C1 controls, NEL */
            p++;
        } else if (*p == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            y_printf(g, "\\u%04x", 0x2000 + (p[2] & 0x3f)); /* LS, PS */
            p += 2;
        } else if (*p == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
            y_raw(g, "\\ufeff");
            p += 2;
        } else {
            y_append(g, (const char *)p, 1);
        }
    }
    y_append(g, "\"", 1);
}

/* "key: value\n" at indent. */
static void y_kv(gen_t *g, int indent, const char *key, const char *value)
{
    y_indent(g, indent);
    y_str(g, key);
    y_raw(g, ": ");
    y_str(g, value);
    y_raw(g, "\n");
}

/* "key:\n" at indent. */
static void y_key(gen_t *g, int indent, const char *key)
{
    y_indent(g, indent);
    y_str(g, key);
    y_raw(g, ":\n");
}

/* May text be a literal block scalar (|-) as is? */
static int block_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (*p == ' ' || *p == '\t' || *p == '\0' || !utf8_ok(s))
        return 0;
    for (; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            return 0;
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            return 0;
        if (*p == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
            return 0;
        if (*p == 0xef && p[1] == 0xbb && p[2] == 0xbf)
            return 0;
        if ((*p == ' ' || *p == '\t') && (p[1] == '\n' || p[1] == '\0'))
            return 0; /* trailing blanks: kept, but invisible */
        if (*p == '\n' && (p[1] == '\n' || p[1] == '\0'))
            return 0;
    }
    return 1;
}

/* key: |- (a multi-line text), or a quoted scalar when the block cannot carry it. */
static void y_text(gen_t *g, int indent, const char *key, const char *text)
{
    const char *line, *nl;
    if (strchr(text, '\n') == NULL || !block_ok(text)) {
        y_kv(g, indent, key, text);
        return;
    }
    y_indent(g, indent);
    y_str(g, key);
    y_raw(g, ": |-\n");
    for (line = text; line != NULL; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        y_indent(g, indent + 2);
        y_append(g, line, nl ? (size_t)(nl - line) : strlen(line));
        y_raw(g, "\n");
    }
}

/* ------------------------------------------------------------------ SQL */

/* Does an identifier need double quotes in this database? */
static int sql_needs_quotes(gen_t *g, const char *s)
{
    size_t i;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 1;
    for (i = 1; s[i] != '\0'; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' || (s[i] >= '0' && s[i] <= '9')))
            return 1;
    if (g->pg)
        return name_taken(g->keywords, g->nkeywords, s);
    return sqlite3_keyword_check(s, (int)i) != 0 || strcmp(s, "rowid") == 0 ||
           strcmp(s, "oid") == 0 || strcmp(s, "_rowid_") == 0;
}

static void sql_ident(gen_t *g, pt_buf_t *b, const char *s)
{
    int rc = PT_OK;
    if (!sql_needs_quotes(g, s)) {
        rc = pt_buf_append_str(b, s);
    } else {
        rc |= pt_buf_append_char(b, '"');
        for (; *s != '\0'; s++) {
            if (*s == '"')
                rc |= pt_buf_append_char(b, '"');
            rc |= pt_buf_append_char(b, *s);
        }
        rc |= pt_buf_append_char(b, '"');
    }
    if (rc != PT_OK)
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
    if (g->pg && strcmp(g->schema, "public") != 0) {
        sql_ident(g, &b->sql, g->schema);
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
    if (g->pg && cast != NULL) {
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

/* A parameter holding a value of column c (base64 bytes decoded on PostgreSQL). */
static void sb_value(gen_t *g, sqlb_t *b, const col_t *c, const char *want, const char *expr)
{
    if (g->pg && c->kind == K_BLOB) {
        sb_str(b, "decode(");
        sb_param(g, b, want, expr, "text");
        sb_str(b, ", 'base64')");
        return;
    }
    sb_param(g, b, want, expr, c->cast);
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
            sb_str(b, " AS \"");
            sb_str(b, c->json);
            sb_str(b, "\"");
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
        sb_value(g, b, c, c->json, member(g, "path", c->json));
    }
}

static char *sb_text(gen_t *g, sqlb_t *b)
{
    return gdupn(g, b->sql.data ? b->sql.data : "", b->sql.len);
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
static void sq_kind(col_t *c)
{
    const char *t = c->type;
    if (t[0] == '\0')
        c->kind = K_ANY;
    else if (has_word(t, "BOOL"))
        c->kind = K_BOOL;
    else if (has_word(t, "INT"))
        c->kind = K_INT;
    else if (has_word(t, "UUID") || has_word(t, "GUID"))
        c->kind = K_UUID;
    else if (has_word(t, "DATETIME") || has_word(t, "TIMESTAMP"))
        c->kind = K_DATETIME;
    else if (has_word(t, "DATE"))
        c->kind = K_DATE;
    else if (has_word(t, "CHAR") || has_word(t, "CLOB") || has_word(t, "TEXT") ||
             has_word(t, "TIME") || has_word(t, "JSON"))
        c->kind = K_TEXT;
    else if (has_word(t, "BLOB"))
        c->kind = K_BLOB;
    else
        c->kind = K_NUM; /* REAL, FLOAT, DOUBLE, DECIMAL, NUMERIC and NUMERIC affinity */
    if (c->kind == K_TEXT && has_word(t, "CHAR"))
        c->maxlen = type_length(t);
}

/* PostgreSQL: the kind of a (base) type name. */
static void pg_kind(col_t *c, const char *typname, const char *category, long typmod)
{
    static const struct {
        const char *name;
        ckind_t kind;
    } map[] = {{"int2", K_INT},           {"int4", K_INT},
               {"int8", K_INT},           {"numeric", K_NUM},
               {"float4", K_NUM},         {"float8", K_NUM},
               {"bool", K_BOOL},          {"date", K_DATE},
               {"timestamp", K_DATETIME}, {"timestamptz", K_DATETIME},
               {"uuid", K_UUID},          {"json", K_JSON},
               {"jsonb", K_JSON},         {"bytea", K_BLOB}};
    size_t i;
    c->kind = K_TEXT; /* text, varchar, enums, arrays (as literals), times, intervals... */
    c->describe = 1;
    if (strcmp(category, "A") == 0)
        return;
    for (i = 0; i < PT_ARRAY_SIZE(map); i++)
        if (strcmp(map[i].name, typname) == 0)
            c->kind = map[i].kind;
    if ((strcmp(typname, "varchar") == 0 || strcmp(typname, "bpchar") == 0) && typmod > 4)
        c->maxlen = typmod - 4;
    c->describe = c->kind == K_TEXT && strcmp(typname, "text") != 0 &&
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

static int sq_prepare(gen_t *g, const char *sql, const char *arg, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(g->sq, sql, -1, st, NULL) != SQLITE_OK ||
        (arg != NULL && sqlite3_bind_text(*st, 1, arg, -1, SQLITE_TRANSIENT) != SQLITE_OK)) {
        gerr("cannot read the database: %s", sqlite3_errmsg(g->sq));
        sqlite3_finalize(*st);
        *st = NULL;
        return -1;
    }
    return 0;
}

static char *sq_text(gen_t *g, sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s != NULL ? gdup(g, (const char *)s) : NULL;
}

static int sq_open_db(gen_t *g, const char *path)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 16;
    int rc;
    if (strcmp(path, ":memory:") == 0 || path[0] == '\0') {
        gerr("--db sqlite: needs the path of a database file");
        return -1;
    }
    if (sqlite3_open_v2(path, &g->sq, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        gerr("cannot open %s: %s", path, g->sq ? sqlite3_errmsg(g->sq) : "out of memory");
        return -1;
    }
    if (sq_prepare(g,
                   "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                   "'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
                   NULL, &st) != 0)
        return -1;
    g->t = gcalloc(g, sizeof(*g->t) * cap);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        table_t *t;
        if (g->nt == cap) {
            table_t *n = gcalloc(g, sizeof(*g->t) * cap * 2);
            memcpy(n, g->t, sizeof(*g->t) * cap);
            g->t = n;
            cap *= 2;
        }
        t = &g->t[g->nt++];
        t->name = sq_text(g, st, 0);
        t->sql = sq_text(g, st, 1);
    }
    if (rc != SQLITE_DONE) {
        gerr("cannot read %s: %s", path, sqlite3_errmsg(g->sq));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

static int sq_load_table(gen_t *g, table_t *t)
{
    sqlite3_stmt *st = NULL, *ist = NULL;
    size_t cap, i, pkpos[PK_MAX + 1] = {0};
    int rc, npk = 0;

    /* columns */
    if (sq_prepare(g,
                   "SELECT name, coalesce(type, ''), \"notnull\", dflt_value, pk, hidden FROM "
                   "pragma_table_xinfo(?1) ORDER BY cid",
                   t->name, &st) != 0)
        return -1;
    cap = 16;
    t->cols = gcalloc(g, sizeof(col_t) * cap);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_t *c;
        int pk = sqlite3_column_int(st, 4), hidden = sqlite3_column_int(st, 5);
        if (hidden == 1)
            continue; /* a virtual table's hidden column */
        if (t->ncols == cap) {
            col_t *n = gcalloc(g, sizeof(col_t) * cap * 2);
            memcpy(n, t->cols, sizeof(col_t) * cap);
            t->cols = n;
            cap *= 2;
        }
        c = &t->cols[t->ncols];
        c->name = sq_text(g, st, 0);
        c->type = sq_text(g, st, 1);
        c->notnull = sqlite3_column_int(st, 2);
        c->dflt = sq_text(g, st, 3);
        c->generated = hidden == 2 || hidden == 3;
        c->pk = pk;
        if (pk > 0 && pk <= PK_MAX)
            pkpos[pk] = t->ncols + 1;
        if (pk > npk)
            npk = pk;
        sq_kind(c);
        t->ncols++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        gerr("cannot read the columns of %s: %s", t->name, sqlite3_errmsg(g->sq));
        return -1;
    }
    if (npk > 0 && npk <= PK_MAX) {
        for (i = 1; i <= (size_t)npk; i++)
            t->pk[i - 1] = pkpos[i] - 1;
        t->npk = (size_t)npk;
        /* INTEGER PRIMARY KEY is the rowid: SQLite assigns it */
        if (npk == 1 && strcasecmp(t->cols[t->pk[0]].type, "INTEGER") == 0 &&
            !sq_without_rowid(t->sql))
            t->cols[t->pk[0]].generated = 1;
    } else if (npk > PK_MAX) {
        fprintf(stderr,
                "portico generate: warning: %s: a primary key of %d columns is not "
                "supported (at most %d): only the list route is generated\n",
                t->name, npk, PK_MAX);
    }

    /* indexes: unique constraints and leading columns */
    if (sq_prepare(g,
                   "SELECT name, \"unique\" AND NOT partial AND origin <> 'pk' FROM "
                   "pragma_index_list(?1)",
                   t->name, &st) != 0)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int uniq = sqlite3_column_int(st, 1), first = 1;
        if (sq_prepare(g, "SELECT cid FROM pragma_index_info(?1) ORDER BY seqno",
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
    if (sq_prepare(g,
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
                t->cols[i].ref = to != NULL ? gprintf(g, "references %s(%s)", ref, to)
                                            : gprintf(g, "references %s", ref);
    }
    sqlite3_finalize(st);
    return 0;
}

/* ------------------------------------------------------------------ PostgreSQL */

static PGresult *pg_query(gen_t *g, const char *sql, const char *arg)
{
    PGresult *r = PQexecParams(g->pq, sql, arg != NULL ? 1 : 0, NULL, arg != NULL ? &arg : NULL,
                               NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        gerr("cannot read the database: %s", m != NULL ? m : PQerrorMessage(g->pq));
        PQclear(r);
        return NULL;
    }
    return r;
}

static char *pg_text(gen_t *g, PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : gdup(g, PQgetvalue(r, row, col));
}

/* msg with the passwords of --db masked: libpq quotes a token of the URI
 * it cannot decode, the password included. */
static char *scrub(gen_t *g, const char *msg)
{
    char *out = gdup(g, msg), *hit;
    size_t i;
    for (i = 0; i < PT_ARRAY_SIZE(g->secrets); i++) {
        const char *sec = g->secrets[i];
        size_t n = sec != NULL ? strlen(sec) : 0;
        while (n > 0 && (hit = strstr(out, sec)) != NULL)
            out = gprintf(g, "%.*s***%s", (int)(hit - out), out, hit + n);
    }
    return out;
}

static int pg_open_db(gen_t *g, const char *url)
{
    PGresult *r;
    int i, n;
    g->pq = PQconnectdb(url);
    if (g->pq == NULL || PQstatus(g->pq) != CONNECTION_OK) {
        char *m = scrub(g, g->pq != NULL ? PQerrorMessage(g->pq) : "out of memory");
        size_t len = strlen(m);
        while (len > 0 && (m[len - 1] == '\n' || m[len - 1] == ' '))
            len--;
        gerr("cannot connect to %s: %.*s", g->db_display, (int)len, m);
        return -1;
    }
    PQclear(PQexec(g->pq, "SET client_encoding = 'UTF8'"));
    if ((r = pg_query(g, "SELECT coalesce((current_schemas(false))[1], 'public')", NULL)) == NULL)
        return -1;
    g->schema = pg_text(g, r, 0, 0);
    PQclear(r);
    if ((r = pg_query(g, "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'", NULL)) == NULL)
        return -1;
    n = PQntuples(r);
    g->keywords = gcalloc(g, sizeof(char *) * (size_t)(n + 1));
    for (i = 0; i < n; i++)
        g->keywords[g->nkeywords++] = pg_text(g, r, i, 0);
    PQclear(r);
    r = pg_query(g,
                 "SELECT c.oid::text, c.relname FROM pg_class c JOIN pg_namespace s ON s.oid = "
                 "c.relnamespace WHERE s.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT "
                 "c.relispartition ORDER BY c.relname",
                 g->schema);
    if (r == NULL)
        return -1;
    n = PQntuples(r);
    g->t = gcalloc(g, sizeof(*g->t) * (size_t)(n + 1));
    for (i = 0; i < n; i++) {
        g->t[g->nt].oid = pg_text(g, r, i, 0);
        g->t[g->nt++].name = pg_text(g, r, i, 1);
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

static col_t *pg_col(table_t *t, int attnum)
{
    size_t i;
    for (i = 0; i < t->ncols; i++)
        if (t->cols[i].attnum == attnum)
            return &t->cols[i];
    return NULL;
}

static int pg_load_table(gen_t *g, table_t *t)
{
    PGresult *r;
    int i, n;
    r = pg_query(g,
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
    t->cols = gcalloc(g, sizeof(col_t) * (size_t)(n + 1));
    for (i = 0; i < n; i++) {
        col_t *c = &t->cols[t->ncols++];
        const char *ident = PQgetvalue(r, i, 7), *gen = PQgetvalue(r, i, 8), *en;
        c->attnum = atoi(PQgetvalue(r, i, 0));
        c->name = pg_text(g, r, i, 1);
        c->type = pg_text(g, r, i, 2);
        c->cast = pg_text(g, r, i, 3);
        c->notnull = PQgetvalue(r, i, 5)[0] == 't';
        c->dflt = pg_text(g, r, i, 6);
        c->generated = ident[0] != '\0' || gen[0] != '\0' ||
                       (c->dflt != NULL && strncmp(c->dflt, "nextval(", 8) == 0);
        if (gen[0] != '\0')
            c->dflt = NULL; /* the generation expression, not a default */
        pg_kind(c, PQgetvalue(r, i, 4), PQgetvalue(r, i, 10), atol(PQgetvalue(r, i, 9)));
        /* without a length, character and bit are of length 1, and an explicit
         * cast truncates: cast to their unbounded kin, so that too long a value
         * fails on assignment instead */
        if (strcmp(c->cast, "character") == 0)
            c->cast = gdup(g, "bpchar");
        else if (strcmp(c->cast, "bit") == 0)
            c->cast = gdup(g, "varbit");
        if (!PQgetisnull(r, i, 11)) {
            pt_json_error_t jerr;
            en = PQgetvalue(r, i, 11);
            c->enums = pt_json_parse(&g->a, en, strlen(en), &PT_JSON_LIMITS_DEFAULT, &jerr);
        }
    }
    PQclear(r);

    r = pg_query(g,
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
            col_t *c = pg_col(t, nums[k]);
            if (c == NULL)
                continue;
            if (type == 'p' && m <= PK_MAX) {
                t->pk[k] = (size_t)(c - t->cols);
                c->pk = (int)k + 1;
            } else if (type == 'u') {
                c->unique = 1;
            } else if (type == 'f' && c->ref == NULL) {
                c->ref = gprintf(g, "references %s(%s)", PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
            }
        }
        if (type == 'p' && m <= PK_MAX)
            t->npk = m;
        else if (type == 'p')
            fprintf(stderr,
                    "portico generate: warning: %s: a primary key of %zu columns is not "
                    "supported (at most %d): only the list route is generated\n",
                    t->name, m, PK_MAX);
    }
    PQclear(r);

    r = pg_query(g,
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
            col_t *c = pg_col(t, nums[k]);
            if (c != NULL && k == 0)
                c->indexed = 1;
            if (c != NULL && uniq)
                c->unique = 1;
        }
    }
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ the model */

/* Splits a comma-separated list into the arena. */
static size_t split_list(gen_t *g, const char *s, char ***out)
{
    size_t n = 1, k = 0;
    const char *p;
    char *copy = gdup(g, s), *save = NULL, *tok;
    for (p = s; *p != '\0'; p++)
        n += *p == ',';
    *out = gcalloc(g, sizeof(char *) * n);
    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (*tok != '\0')
            (*out)[k++] = tok;
    }
    return k;
}

static table_t *find_table(gen_t *g, const char *name)
{
    size_t i;
    for (i = 0; i < g->nt; i++)
        if (strcmp(g->t[i].name, name) == 0)
            return &g->t[i];
    return NULL;
}

/* Applies --tables and --read-only; orders the selection as --tables lists it. */
static int select_tables(gen_t *g)
{
    char **names = NULL;
    size_t n, i;
    if (g->o.tables != NULL) {
        table_t *sel;
        size_t k = 0;
        n = split_list(g, g->o.tables, &names);
        if (n == 0) {
            gerr("--tables lists no table");
            return -1;
        }
        sel = gcalloc(g, sizeof(*sel) * n);
        for (i = 0; i < n; i++) {
            table_t *t = find_table(g, names[i]);
            if (t == NULL) {
                gerr("--tables: no table \"%s\" in %s", names[i],
                     g->pg ? gprintf(g, "schema %s", g->schema) : "the database");
                return -1;
            }
            if (!t->selected) {
                t->selected = 1;
                sel[k++] = *t;
            }
        }
        g->t = sel;
        g->nt = k;
    } else {
        for (i = 0; i < g->nt; i++)
            g->t[i].selected = 1;
    }
    if (g->o.read_only != NULL) {
        n = split_list(g, g->o.read_only, &names);
        for (i = 0; i < n; i++) {
            table_t *t = find_table(g, names[i]);
            if (t == NULL) {
                gerr("--read-only: no table \"%s\" among the tables generated", names[i]);
                return -1;
            }
            t->read_only = 1;
        }
    }
    if (g->nt == 0) {
        gerr("the database has no table");
        return -1;
    }
    return 0;
}

/* Is column c written by a body (not generated, not the key when key_ro)? */
static int writable(const col_t *c, int key_ro)
{
    return !c->generated && !(key_ro && c->pk);
}

/* Which writes table t gets: the runtime binds at most PARAMS_MAX parameters
 * per statement, so a very wide table loses the routes it cannot bind (with
 * a warning) rather than the whole definition. */
static void plan_writes(table_t *t)
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
}

/* Identifiers, JSON names and filters, once the columns are known. */
static void finish_model(gen_t *g)
{
    char **idents = gcalloc(g, sizeof(char *) * g->nt);
    size_t i, j;
    for (i = 0; i < g->nt; i++) {
        table_t *t = &g->t[i];
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
            if (c->kind == K_ANY || c->kind == K_BLOB || c->kind == K_JSON ||
                (!g->pg && c->kind == K_BOOL))
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
        plan_writes(t);
    }
}

/* ------------------------------------------------------------------ writing */

/* ", " between the members of a flow mapping. */
static void y_sep(gen_t *g, int *n)
{
    if ((*n)++ > 0)
        y_raw(g, ", ");
}

/* A column's schema in flow style: {type: string, maxLength: 80, nullable: true};
 * key_ro: key columns are readOnly (bodies of PUT and PATCH). */
static void y_col_schema(gen_t *g, const col_t *c, int key_ro)
{
    static const char *const types[] = {
        /* by ckind_t */
        [K_INT] = "integer", [K_NUM] = "number",      [K_BOOL] = "boolean", [K_TEXT] = "string",
        [K_DATE] = "string", [K_DATETIME] = "string", [K_UUID] = "string",  [K_BLOB] = "string"};
    static const char *const formats[] = {
        [K_DATE] = "date", [K_DATETIME] = "date-time", [K_UUID] = "uuid"};
    int n = 0;
    y_raw(g, "{");
    if (types[c->kind] != NULL) {
        y_sep(g, &n);
        y_printf(g, "type: %s", types[c->kind]);
    } else if (c->kind == K_JSON) {
        /* a parameter is sent as its text: a bare string is not JSON */
        y_sep(g, &n);
        y_raw(g, "type: [object, array, number, boolean]");
    }
    if ((size_t)c->kind < PT_ARRAY_SIZE(formats) && formats[c->kind] != NULL) {
        y_sep(g, &n);
        y_printf(g, "format: %s", formats[c->kind]);
    }
    if (c->maxlen > 0) {
        y_sep(g, &n);
        y_printf(g, "maxLength: %ld", c->maxlen);
    }
    if (c->enums != NULL && c->enums->type == PT_JSON_ARRAY) {
        size_t i;
        y_sep(g, &n);
        y_raw(g, "enum: [");
        for (i = 0; i < c->enums->u.arr.n; i++) {
            const pt_json_t *e = c->enums->u.arr.items[i];
            if (i > 0)
                y_raw(g, ", ");
            if (e->type == PT_JSON_STRING)
                y_str(g, gdupn(g, e->u.str.p, e->u.str.len));
        }
        y_raw(g, "]");
    }
    if (!c->notnull && c->kind != K_ANY) {
        y_sep(g, &n);
        y_raw(g, "nullable: true");
    }
    if (c->generated || (key_ro && c->pk)) {
        y_sep(g, &n);
        y_raw(g, "readOnly: true");
    }
    if (c->kind == K_BLOB || c->ref != NULL || (c->describe && c->enums == NULL)) {
        y_sep(g, &n);
        y_raw(g, "description: ");
        y_str(g, c->kind == K_BLOB ? "base64" : c->ref != NULL ? c->ref : c->type);
    }
    y_raw(g, "}");
}

/* An object schema of table t at indent: the row (key_ro 0, required
 * members), a replacement (key_ro 1: the key comes from the path) or a
 * patch (key_ro 1, nothing required). */
static void y_schema(gen_t *g, int indent, const table_t *t, int key_ro, int with_required)
{
    size_t i, nreq = 0;
    y_kv(g, indent, "type", "object");
    y_indent(g, indent);
    y_raw(g, "additionalProperties: false\n");
    if (with_required) {
        for (i = 0; i < t->ncols; i++) {
            const col_t *c = &t->cols[i];
            if (!c->notnull || c->dflt != NULL || !writable(c, key_ro))
                continue;
            if (nreq++ == 0) {
                y_indent(g, indent);
                y_raw(g, "required: [");
            } else {
                y_raw(g, ", ");
            }
            y_str(g, c->json);
        }
        if (nreq > 0)
            y_raw(g, "]\n");
    }
    y_key(g, indent, "properties");
    for (i = 0; i < t->ncols; i++) {
        y_indent(g, indent + 2);
        y_str(g, t->cols[i].json);
        y_raw(g, ": ");
        y_col_schema(g, &t->cols[i], key_ro);
        y_raw(g, "\n");
    }
}

/* The `params` of statement b at indent. */
static void y_params(gen_t *g, int indent, const sqlb_t *b)
{
    size_t i;
    if (b->n == 0)
        return;
    y_key(g, indent, "params");
    for (i = 0; i < b->n; i++)
        y_kv(g, indent + 2, b->pname[i], b->pexpr[i]);
}

/* "- name: <name>\n  sql:\n    query: ...\n    params: ...\n    result: <result>" */
static void y_sql_step(gen_t *g, const char *name, sqlb_t *b, const char *result)
{
    y_indent(g, 6);
    y_raw(g, "- ");
    y_kv(g, 0, "name", name);
    y_key(g, 8, "sql");
    y_text(g, 10, "query", sb_text(g, b));
    y_params(g, 10, b);
    if (result != NULL)
        y_kv(g, 10, "result", result);
}

static void sb_free(sqlb_t *b)
{
    pt_buf_free(&b->sql);
    memset(b, 0, sizeof(*b));
}

static void y_process(gen_t *g, const char *verb, const table_t *t, int low_latency)
{
    y_indent(g, 2);
    y_printf(g, "%s_%s:\n", verb, t->ident);
    if (low_latency)
        y_kv(g, 4, "mode", "low_latency");
}

static void write_list(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    size_t i, nf = 0;
    y_process(g, "list", t, 1);
    if (t->npk == 0)
        y_raw(g, "    on_error: {expression: 400}\n"); /* ?limit= that is not a number */
    y_key(g, 4, "steps");
    sb_str(&b, "SELECT ");
    sb_columns(g, &b, t);
    sb_str(&b, "\nFROM ");
    sb_table(g, &b, t);
    if (t->npk > 0) {
        /* keyset: rows after the cursor's key, in key order */
        sb_str(&b, "\nWHERE (");
        sb_value(g, &b, &t->cols[t->pk[0]], gprintf(g, "after_%s", t->cols[t->pk[0]].json),
                 member(g, "page.after", t->cols[t->pk[0]].json));
        sb_str(&b, " IS NULL OR ");
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
        expr = member(g, "query", c->json);
        sb_str(&b, nf++ == 0 ? "\nWHERE (" : "\n  AND (");
        sb_value(g, &b, c, want, expr);
        sb_str(&b, " IS NULL OR ");
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
        y_key(g, 10, "page");
        y_indent(g, 12);
        y_raw(g, "by: [");
        for (i = 0; i < t->npk; i++) {
            if (i > 0)
                y_raw(g, ", ");
            y_str(g, t->cols[t->pk[i]].json);
        }
        y_raw(g, "]\n");
        y_printf(g, "            default_limit: %d\n            max_limit: %d\n", PAGE_DEFAULT,
                 PAGE_MAX);
    }
    sb_free(&b);
}

static void write_get(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    y_process(g, "get", t, 1);
    y_key(g, 4, "steps");
    sb_str(&b, "SELECT ");
    sb_columns(g, &b, t);
    sb_str(&b, "\nFROM ");
    sb_table(g, &b, t);
    sb_where_key(g, &b, t);
    y_sql_step(g, "row", &b, "row");
    sb_free(&b);
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

static void write_create(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    size_t i, n = 0;
    y_process(g, "create", t, 0);
    y_key(g, 4, "steps");
    sb_str(&b, "INSERT INTO ");
    sb_table(g, &b, t);
    for (i = 0; i < t->ncols; i++) {
        if (!writable(&t->cols[i], 0))
            continue;
        sb_str(&b, n++ == 0 ? " (" : ", ");
        sql_ident(g, &b.sql, t->cols[i].name);
    }
    if (n == 0) {
        sb_str(&b, "\nDEFAULT VALUES");
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
    sb_str(&b, "\nRETURNING ");
    sb_columns(g, &b, t);
    y_sql_step(g, "row", &b, "row");
    y_raw(g, "      - respond:\n          status: 201\n          headers:\n");
    y_kv(g, 12, "Location", location(g, t));
    y_kv(g, 10, "body", "steps.row");
    sb_free(&b);
}

/* PUT (patch 0: every writable member, absent ones null or their default)
 * and PATCH (patch 1: only the members present). */
static void write_update(gen_t *g, const table_t *t, int patch)
{
    sqlb_t b = {0};
    size_t i, n = 0;
    y_process(g, patch ? "update" : "replace", t, 0);
    y_key(g, 4, "steps");
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
    sb_str(&b, "\nRETURNING ");
    sb_columns(g, &b, t);
    y_sql_step(g, "row", &b, "row");
    sb_free(&b);
}

static void write_delete(gen_t *g, const table_t *t)
{
    sqlb_t b = {0};
    size_t i;
    y_process(g, "delete", t, 0);
    y_key(g, 4, "steps");
    sb_str(&b, "DELETE FROM ");
    sb_table(g, &b, t);
    sb_where_key(g, &b, t);
    sb_str(&b, "\nRETURNING ");
    for (i = 0; i < t->npk; i++) {
        if (i > 0)
            sb_str(&b, ", ");
        sql_ident(g, &b.sql, t->cols[t->pk[i]].name);
    }
    y_sql_step(g, "row", &b, "row");
    y_raw(g, "      - respond:\n          status: 204\n");
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

static void y_route(gen_t *g, const char *method, const char *path, const char *verb,
                    const table_t *t, const char *desc)
{
    y_indent(g, 2);
    y_raw(g, "- ");
    y_kv(g, 0, "method", method);
    y_kv(g, 4, "path", path);
    y_kv(g, 4, "process", gprintf(g, "%s_%s", verb, t->ident));
    y_kv(g, 4, "description", desc);
}

static void write_routes(gen_t *g, const table_t *t)
{
    char *filters = gdup(g, ""), *one = key_path(g, t), *keys = key_names(g, t);
    size_t i;
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
    if (t->npk == 0)
        return;
    y_route(g, "GET", one, "get", t, gprintf(g, "One row of %s by %s", t->name, keys));
    if (!writes)
        return;
    if (t->create) {
        y_route(g, "POST", gprintf(g, "/%s", t->ident), "create", t,
                gprintf(g, "Insert a row into %s: 201 with the row and its Location", t->name));
        y_kv(g, 4, "body_schema", t->ident);
    }
    if (t->replace) {
        y_route(g, "PUT", one, "replace", t,
                gprintf(g,
                        "Replace a row of %s: members left out become null (or the column "
                        "default)",
                        t->name));
        if (key_generated(t)) {
            y_kv(g, 4, "body_schema", t->ident);
        } else {
            y_key(g, 4, "body_schema");
            y_schema(g, 6, t, 1, 1);
        }
    }
    if (t->update) {
        y_route(g, "PATCH", one, "update", t,
                gprintf(g, "Change the members given of a row of %s", t->name));
        y_key(g, 4, "body_schema");
        y_schema(g, 6, t, 1, 0);
    }
    y_route(g, "DELETE", one, "delete", t,
            gprintf(g, "Delete a row of %s: 204, or 404 when there is none", t->name));
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
    for (i = 0; i < g->nt; i++)
        any_write |= !g->t[i].read_only && g->t[i].npk > 0;
    y_kv(g, 0, "name", g->name);
    y_kv(g, 0, "base_path", g->base_path);
    y_kv(g, 0, "kind", "service");
    y_kv(g, 0, "title", g->title);
    y_kv(g, 0, "version", g->version); /* quoted when it looks like a number */
    y_kv(g, 0, "description",
         gprintf(g, "Generated by portico generate from %s on %s", g->db_display, date));
    y_key(g, 0, "connections");
    y_key(g, 2, "db");
    y_kv(g, 4, "url", g->url_written);
    /* nothing writes: the connection itself refuses writes too */
    if (!any_write)
        y_raw(g, "    read_only: true\n");
    y_key(g, 0, "schemas");
    for (i = 0; i < g->nt; i++) {
        y_key(g, 2, g->t[i].ident);
        y_schema(g, 4, &g->t[i], 0, 1);
    }
    y_key(g, 0, "processes");
    for (i = 0; i < g->nt; i++) {
        const table_t *t = &g->t[i];
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
    y_key(g, 0, "routes");
    for (i = 0; i < g->nt; i++)
        write_routes(g, &g->t[i]);
}

/* ------------------------------------------------------------------ options */

static void usage(FILE *f)
{
    fputs("Usage: portico generate --db URL [options]\n"
          "  --db URL               sqlite:path/to/file.db or postgresql://user@host:port/db\n"
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
    return utf8_ok(s);
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

    if (!g->pg) {
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
    /* postgresql://user:password@host:port/db?password=...&sslmode=... */
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
        g->secrets[0] = gprintf(g, "%.*s", (int)(at - colon - 1), colon + 1);
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
                g->secrets[1] = tok + 9;
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
    } else if (g->pg) {
        g->name = api_name_from(g, PQdb(g->pq));
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
    if (!utf8_ok(g->title) || !utf8_ok(g->version) || g->title[0] == '\0' ||
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
    if (fwrite(g->y.data, 1, g->y.len, f) != g->y.len || fflush(f) != 0) {
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
    if (strncmp(g->o.db, "sqlite:", 7) == 0) {
        g->pg = 0;
    } else if (strncmp(g->o.db, "postgresql://", 13) == 0 ||
               strncmp(g->o.db, "postgres://", 11) == 0) {
        g->pg = 1;
    } else {
        gerr("--db: expected sqlite:<path> or postgresql://user@host:port/db");
        return 2;
    }
    if (g->o.naming != NULL && strcmp(g->o.naming, "snake") != 0 &&
        strcmp(g->o.naming, "camel") != 0) {
        gerr("--naming: expected snake or camel, got \"%s\"", g->o.naming);
        return 2;
    }
    g->camel = g->o.naming != NULL && strcmp(g->o.naming, "camel") == 0;
    if (g->o.conn_url != NULL && !utf8_ok(g->o.conn_url)) {
        gerr("--connection-url must be UTF-8 text");
        return 1;
    }
    if (connection_urls(g) != 0)
        return 1;
    if ((g->pg ? pg_open_db(g, g->o.db) : sq_open_db(g, g->o.db + 7)) != 0)
        return 1;
    if (definition_names(g) != 0 || select_tables(g) != 0)
        return 1;
    for (i = 0; i < g->nt; i++)
        if ((g->pg ? pg_load_table(g, &g->t[i]) : sq_load_table(g, &g->t[i])) != 0)
            return 1;
    for (i = 0, k = 0; i < g->nt; i++) {
        if (g->t[i].ncols == 0) { /* PostgreSQL allows it; there is nothing to serve */
            fprintf(stderr, "portico generate: warning: %s has no columns: left out\n",
                    g->t[i].name);
            continue;
        }
        g->t[k++] = g->t[i];
    }
    g->nt = k;
    if (g->nt == 0) {
        gerr("no table to generate");
        return 1;
    }
    finish_model(g);
    write_document(g);
    if (g->failed) {
        gerr("the definition could not be written");
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
    pt_buf_init(&g.y, 0);
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
    if (g.sq != NULL)
        sqlite3_close_v2(g.sq);
    if (g.pq != NULL)
        PQfinish(g.pq);
    pt_buf_free(&g.y);
    pt_arena_destroy(&g.a);
    return rc;
}
