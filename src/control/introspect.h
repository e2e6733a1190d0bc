/*
 * introspect.h - the tables of a database as `portico generate` needs them
 * (docs/generate.md): a SQLite file through its PRAGMA table-valued
 * functions, a PostgreSQL schema through pg_catalog, a MariaDB (or MySQL)
 * database through information_schema.
 *
 * The model is plain data in an arena the caller owns: per table its
 * columns (declared type and the JSON kind it maps to, NOT NULL, default,
 * whether the database assigns the value), its primary key in key order,
 * which columns are unique or lead an index, and their foreign keys. The
 * members named "set by the caller" are left zero for the generator to
 * fill in.
 *
 * Errors are reported on stderr as "portico generate: ..." (never a
 * password: the secrets given are masked in every message); an allocation
 * failure ends the process with a message, as `portico generate` is a
 * one-shot command with nothing to recover.
 */
#ifndef PT_CONTROL_INTROSPECT_H
#define PT_CONTROL_INTROSPECT_H

#include <stddef.h>

#include "core/arena.h"
#include "core/json.h"

#define PT_INTROSPECT_PK_MAX 8 /* key columns kept: page.by takes at most 8 */

typedef enum pt_introspect_kind_e {
    PT_INTROSPECT_SQLITE = 0,
    PT_INTROSPECT_POSTGRESQL,
    PT_INTROSPECT_MARIADB /* MariaDB or MySQL */
} pt_introspect_kind_t;

/* What a column holds, as far as JSON and the schema are concerned. */
typedef enum pt_column_kind_e {
    PT_COL_ANY = 0, /* no declared type (SQLite): any value */
    PT_COL_INT,
    PT_COL_NUM,
    PT_COL_BOOL,
    PT_COL_TEXT,
    PT_COL_DATE,
    PT_COL_DATETIME,
    PT_COL_UUID,
    PT_COL_JSON, /* PostgreSQL json/jsonb, MySQL json */
    PT_COL_BLOB  /* base64 in JSON */
} pt_column_kind_t;

typedef struct pt_introspect_column_s {
    char *name;       /* in the database */
    char *type;       /* the declared type, as the database shows it */
    char *cast;       /* PostgreSQL: the type parameters are cast to (no length) */
    char *dflt;       /* the default: SQL to write where the member is absent, or NULL */
    char *ref;        /* "references t(c)" of a foreign key, or NULL */
    pt_json_t *enums; /* enum labels (an array), or NULL */
    pt_column_kind_t kind;
    long maxlen;        /* characters; 0: none */
    int attnum;         /* PostgreSQL attribute number */
    int notnull;        /* NOT NULL (key columns included) */
    int generated;      /* the database assigns the value: never written by a request */
    int auto_increment; /* MariaDB: the AUTO_INCREMENT column (also generated) */
    int pk;             /* 1-based position in the primary key, 0: not a key column */
    int unique, indexed;
    int describe; /* a type shown as a string: say which in the description */
    char *json;   /* set by the caller: the JSON member name */
    int filter;   /* set by the caller: an equality filter of the list */
} pt_introspect_column_t;

typedef struct pt_introspect_table_s {
    char *name; /* in the database */
    char *oid;  /* PostgreSQL */
    char *sql;  /* SQLite: CREATE TABLE text */
    pt_introspect_column_t *cols;
    size_t ncols;
    size_t pk[PT_INTROSPECT_PK_MAX]; /* column indexes, in key order */
    size_t npk;                      /* 0: no usable primary key */
    int read_only;                   /* --read-only */
    char *ident;                     /* set by the caller: schema name, path segment */
    int create, replace, update;     /* set by the caller: which writes are generated */
} pt_introspect_table_t;

typedef struct pt_introspect_s {
    pt_arena_t *a; /* borrowed: what is read is allocated here */
    pt_introspect_kind_t kind;
    const char *display;    /* the URL without a password, for messages */
    const char *secrets[2]; /* masked in every message; NULL: none */
    void *conn;             /* sqlite3 *, PGconn * or MYSQL * */
    char *schema;           /* PostgreSQL: the schema read */
    char *dbname;           /* PostgreSQL, MariaDB: the database's name */
    int returning;          /* MariaDB 10.5+: INSERT ... RETURNING */
    char **keywords;        /* PostgreSQL: words that must be quoted */
    size_t nkeywords;
    pt_introspect_table_t *t; /* after pt_introspect_select: the tables generated */
    size_t nt;
} pt_introspect_t;

/* Connects to (opens) the database of url (sqlite:<path>, postgresql:// or
 * postgres://, mysql:// or mariadb://) as db->kind says, and reads the names
 * of its tables into db->t. db->a, kind, display and secrets are set by the
 * caller; the rest is filled here. Returns 0, or -1 with a message (the
 * connection, if any, is closed by pt_introspect_close either way). */
int pt_introspect_open(pt_introspect_t *db, const char *url);

/* Keeps the tables of the comma-separated list `tables` (every table when
 * NULL), in that order, and marks those of `read_only`. Returns 0, or -1
 * with a message when a name is not a table or nothing is left. */
int pt_introspect_select(pt_introspect_t *db, const char *tables, const char *read_only);

/* Reads the columns, keys, indexes and foreign keys of the tables kept.
 * Returns 0, or -1 with a message. */
int pt_introspect_load(pt_introspect_t *db);

/* Is word (lower-case letters, digits, '_') a keyword this database needs
 * quoted as an identifier? */
int pt_introspect_reserved(const pt_introspect_t *db, const char *word);

/* Closes the connection; the model stays (it is in db->a). */
void pt_introspect_close(pt_introspect_t *db);

#endif
