/*
 * config-t.h - types of the node configuration and of API definitions.
 *
 * Everything hangs off one arena owned by pt_config_t and is immutable once
 * loaded: a configuration is built by the control thread, then read by every
 * worker through the snapshot that references it.
 */
#ifndef PT_CONFIG_T_H
#define PT_CONFIG_T_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef enum pt_client_cert_e {
    PT_CLIENT_CERT_NONE = 0, /* no certificate requested */
    PT_CLIENT_CERT_OPTIONAL, /* requested; verified against the CA bundle if sent */
    PT_CLIENT_CERT_REQUIRED  /* handshake fails without a valid certificate */
} pt_client_cert_t;

typedef struct pt_tls_config_s {
    char *cert_file;      /* PEM certificate chain (required) */
    char *key_file;       /* PEM private key (required) */
    char *client_ca_file; /* PEM CA bundle; required when client_cert != NONE */
    pt_client_cert_t client_cert;
} pt_tls_config_t;

typedef struct pt_listener_config_s {
    char *name;                        /* "listen[0]" unless named */
    char *host;                        /* numeric IPv4 or IPv6 address, e.g. "127.0.0.1", "::" */
    uint16_t port;                     /* 0 = ephemeral (the bound port is logged) */
    pt_tls_config_t *tls;              /* NULL: plain HTTP */
    unsigned line;                     /* where it was defined, for messages */
    int admin;                         /* the admin listener (`admin:`): serves /admin/ only */
    struct pt_policy_list_s *policies; /* the listener's own `policies:` (e.g. the
                                          authentication its port requires); NULL = none */
} pt_listener_config_t;

/* Limits (config key `limits:`); defaults in pt_limits_defaults(). */
typedef struct pt_limits_s {
    uint32_t max_header_size;   /* request line + headers, bytes -> 431 (default 16384) */
    uint32_t max_uri_length;    /* bytes -> 414 (default 8192) */
    uint32_t max_headers;       /* count -> 431 (default 100) */
    uint64_t max_body_size;     /* bytes -> 413 (default 8 MiB) */
    uint32_t header_timeout_ms; /* whole request head must arrive within (default 10000) -> 408 */
    uint32_t body_timeout_ms;   /* max gap between two body reads (default 30000) -> 408 */
    uint32_t keepalive_timeout_ms; /* idle keep-alive connection closed after (default 75000) */
    uint32_t max_connections;      /* per worker; more are refused with 503 (default 8192) */
    uint32_t drain_timeout_ms;     /* graceful shutdown budget (default 10000) */
    uint32_t max_pipelined;        /* requests parsed ahead per read (default 64) */
    uint64_t
        max_output_buffer; /* bytes queued to a slow client before reads pause (default 1 MiB) */
} pt_limits_t;

typedef struct pt_header_kv_s {
    char *name;
    char *value;
} pt_header_kv_t;

/* A static response (`respond:`), the only dispatch kind of the core. */
typedef struct pt_respond_s {
    int status;              /* 100..599, default 200 */
    pt_header_kv_t *headers; /* extra headers, in order */
    size_t nheaders;
    char *content_type; /* from headers (Content-Type) or default "text/plain; charset=utf-8"
                           ("application/json" when body is a YAML mapping/sequence) */
    char *body;         /* may contain NULs; body_len bytes */
    size_t body_len;
} pt_respond_t;

typedef enum pt_dispatch_kind_e {
    PT_DISPATCH_RESPOND = 1, /* a static response */
    PT_DISPATCH_PROCESS      /* runs a process of the API on the process pool */
} pt_dispatch_kind_t;

struct pt_expr_s;
struct pt_jschema_s;
struct pt_jschema_set_s;
struct pt_json_s;

/* A database (or HTTP base URL) a service API's processes use (`connections.<name>`). */
typedef enum pt_conn_kind_e {
    PT_CONN_SQLITE = 1, /* sqlite:path/to/file.db (relative to the definition's folder) */
    PT_CONN_POSTGRESQL, /* postgresql://user:password@host:port/db?... */
    PT_CONN_MARIADB,    /* mysql:// or mariadb://user:password@host:port/db */
    PT_CONN_HTTP        /* http(s)://base for http steps (target: the base URL, a secret) */
} pt_conn_kind_t;

typedef struct pt_connection_def_s {
    char *name;
    pt_conn_kind_t kind;
    char *target;        /* SQLITE: the file path (resolved); others: the URL with its ${...}
                            references resolved - a secret, never logged */
    char *display;       /* for messages and logs: the URL without its password */
    uint32_t pool_max;   /* open connections at most (per node), default 8 */
    uint32_t pool_min;   /* opened ahead when the configuration is published, default 0 */
    uint32_t timeout_ms; /* a statement's longest run (SQLite: also the busy wait), default 30s */
    int read_only;       /* opened read-only (SQLite) / a read-only transaction */
    unsigned line;
} pt_connection_def_t;

/* A name and a compiled expression (SQL parameters, map fields, headers). */
typedef struct pt_named_expr_s {
    char *name;
    struct pt_expr_s *expr;
} pt_named_expr_t;

typedef enum pt_step_kind_e {
    PT_STEP_SQL = 1,
    PT_STEP_MAP,
    PT_STEP_RESPOND,
    PT_STEP_SCRIPT,
    PT_STEP_HTTP
} pt_step_kind_t;

typedef enum pt_sql_result_e {
    PT_SQL_ROWS = 0, /* an array of row objects */
    PT_SQL_ROW,      /* one row object (not_found when none) */
    PT_SQL_AFFECTED, /* {"affected": n} */
    PT_SQL_KEY       /* {"key": <generated key>, "affected": n} */
} pt_sql_result_t;

/* One step of a process (`processes.<name>.steps[i]`). */
typedef struct pt_step_def_s {
    char *name; /* "steps.<name>" in the context holds its result */
    pt_step_kind_t kind;
    struct pt_expr_s *when; /* run only when truthy; NULL = always */
    unsigned line;
    /* SQL */
    size_t connection;  /* index in the API's connections */
    char *sql;          /* the statement as written, with :name parameters */
    char *sql_numbered; /* the same with $1, $2... (PostgreSQL): $k is params[k-1] */
    char *sql_qmark;    /* the same with ? (MariaDB); qmark[i] is the params index of the i-th */
    size_t *qmark;
    size_t nqmark;
    pt_named_expr_t *params; /* one per distinct :name of the statement, in order of first use */
    size_t nparams;
    pt_sql_result_t result;
    int not_found_status; /* ROW without a row: this status (default 404); 0 = the result is null */
    char **page_by;       /* ROWS paged by these columns (keyset): `page` in the context, a
                             cursor and a Link rel="next" header; NULL = not paged */
    size_t npage_by;
    uint32_t page_default_limit; /* default 20 */
    uint32_t page_max_limit;     /* default 100 */
    char **page_sort;            /* columns ?sort= may name ("-col": descending) */
    size_t npage_sort;
    int page_markers; /* the query has ${order} and ${after}: the engine writes the ORDER BY
                         and the keyset condition (required with page_sort) */
    /* MAP */
    struct pt_expr_s *over;  /* map each element of this array (as `item`, `index`); NULL = once */
    pt_named_expr_t *fields; /* output members, in order */
    size_t nfields;
    /* SCRIPT (Lua 5.4, sandboxed) */
    char *script; /* the source text */
    size_t script_len;
    char *script_name;            /* chunk name in messages: "@file.lua" or "=process.step" */
    uint64_t script_memory;       /* bytes, default 8 MiB */
    uint64_t script_instructions; /* VM instructions, default 10,000,000 */
    /* HTTP (libcurl) */
    char *http_method;             /* default GET */
    struct pt_expr_s *http_url;    /* template: the URL, or the path after the connection's base */
    int http_connection;           /* index of an http(s) connection (base URL), -1 = none */
    pt_named_expr_t *http_headers; /* name -> template */
    size_t nhttp_headers;
    struct pt_expr_s *http_body; /* NULL = no body; objects/arrays go as JSON */
    uint32_t http_timeout_ms;    /* default 10s */
    uint64_t http_max_response;  /* bytes, default 8 MiB */
    char *http_xml_root;         /* document element of an XML body; NULL = "request" */
    /* RESPOND */
    int status;               /* default 200 */
    pt_named_expr_t *headers; /* name -> template */
    size_t nheaders;
    struct pt_expr_s *body; /* NULL = no body */
} pt_step_def_t;

/* Error classes a process can map to a status (`on_error`). */
typedef enum pt_proc_error_e {
    PT_PERR_NOT_FOUND = 0, /* default 404 */
    PT_PERR_UNIQUE,        /* unique/primary key violation: 409 */
    PT_PERR_FOREIGN_KEY,   /* 422 */
    PT_PERR_NOT_NULL,      /* 422 */
    PT_PERR_CHECK,         /* 422 */
    PT_PERR_INVALID,       /* a value the database refused (type, range): 400 */
    PT_PERR_BUSY,          /* locked / too many connections: 503 */
    PT_PERR_DATABASE,      /* anything else from the database: 500 */
    PT_PERR_EXPRESSION,    /* an expression failed (type error): 500 */
    PT_PERR_HTTP,          /* an http step could not complete the call: 502 */
    PT_PERR_COUNT
} pt_proc_error_t;

typedef struct pt_process_def_s {
    char *name;
    int low_latency; /* mode: low_latency (no execution record); default general */
    pt_step_def_t *steps;
    size_t nsteps;
    int transaction; /* the SQL steps run in one transaction (default: when more than one
                        writes) */
    int error_status[PT_PERR_COUNT];
    unsigned line;
    uint32_t metric; /* its metrics series (metrics/metrics.h) */
} pt_process_def_t;

/* A declared query parameter of a route (`query.<name>`): converted from text to its type and
 * validated before the process runs. */
typedef struct pt_query_param_s {
    char *name;
    const char *type;                  /* "string", "integer", "number" or "boolean" */
    int required;                      /* absent: 400 */
    const struct pt_jschema_s *schema; /* the declared schema (type, bounds, enum, format) */
    const struct pt_json_s *dflt;      /* `default`: the value when absent; NULL = none */
} pt_query_param_t;

/* A user of the APIs (`users:` in the node configuration): credentials are
 * stored hashed only (API keys: SHA-256 of a high-entropy key). */
typedef struct pt_user_s {
    char *name;
    char **roles;
    size_t nroles;
    char *password;          /* Argon2id hash ("$argon2id$..."), for basic auth; NULL = none */
    struct pt_cidr_s *allow; /* per-user IP allow list; has_allow with none = deny all */
    size_t nallow;
    int has_allow;
    char **subjects; /* client certificate subjects (RFC 2253, as logged) */
    size_t nsubjects;
    unsigned char (*fingerprints)[32]; /* SHA-256 of client certificates (DER) */
    size_t nfingerprints;
    char **apis; /* the APIs this user may call; NULL = any */
    size_t napis;
    unsigned line;
} pt_user_t;

typedef struct pt_key_index_s {
    unsigned char hash[32]; /* SHA-256 of the key */
    const pt_user_t *user;
} pt_key_index_t;

/* Policies (src/policy): a configured instance of a policy type, and a
 * list of them (a scope's `policies:`, or the chain a request runs). */
typedef struct pt_policy_ref_s {
    const struct pt_policy_type_s *type;
    void *conf; /* the type's configuration and runtime state, in the configuration's arena */
    unsigned line;
} pt_policy_ref_t;

typedef struct pt_policy_list_s {
    pt_policy_ref_t *items;
    size_t n;
} pt_policy_list_t;

typedef struct pt_route_def_s {
    char *method; /* upper-case token, e.g. "GET"; "*" = any method */
    char *path;   /* template relative to the base path: "/items/{id}"; "/" for the root */
    char *name;   /* operation name; default "METHOD path" */
    char *description;
    pt_dispatch_kind_t kind;
    pt_respond_t respond;                   /* RESPOND */
    size_t process;                         /* PROCESS: index in the API's processes */
    const struct pt_jschema_s *body_schema; /* PROCESS: validates the request body; NULL = none */
    pt_query_param_t *query;                /* PROCESS: declared query parameters */
    size_t nquery;
    const struct pt_jschema_s *response_schema; /* PROCESS: the answer's schema (contracts) */
    char **webhooks; /* PROCESS: URLs told of every execution's end (allowed hosts only) */
    size_t nwebhooks;
    uint32_t max_wait_ms;          /* PROCESS: how long a client waits when it sends no X-Max-Wait
                                      (0 = until the end); past it: 202 and the execution goes on */
    int async;                     /* PROCESS: answers 202 at once; the execution goes on */
    pt_header_kv_t *match_headers; /* routing headers: lower-case name -> exact value; the route
                                      matches only when the request carries them all */
    size_t nmatch_headers;
    struct pt_route_def_s *alt; /* next route of the same method and template, tried when this
                                   one's routing headers do not match (conditional ones first) */
    int alt_member;             /* reached through another route's alt: not in the route table */
    unsigned line;
    uint32_t metric;           /* its metrics series (metrics/metrics.h); the first of
                                  PT_M_METHODS consecutive ones for a "*" route */
    uint32_t metric_head;      /* a GET route's series of HEAD requests */
    pt_policy_list_t policies; /* the route's own `policies:` */
    pt_policy_list_t *lchains; /* per listener index, when a listener has policies (node +
                                  listener + API + route); NULL otherwise */
    pt_policy_list_t chain;    /* node + API + route policies merged, in chain order (built
                                  with the snapshot) */
} pt_route_def_t;

/* One upstream target of a proxy API (`upstream.targets[i]`). */
typedef struct pt_upstream_target_s {
    char *url;         /* as written: "http://127.0.0.1:9000/prefix" */
    int https;         /* the scheme is https: TLS to the target (upstream.tls) */
    char *host;        /* numeric IPv4, IPv6 (without brackets) or a DNS name */
    uint16_t port;     /* default 80 (http) or 443 (https) */
    char *path_prefix; /* "" or "/prefix" (no trailing '/'); prepended to the forwarded path */
    unsigned weight;   /* 1..1000, default 1 (weighted round-robin) */
    unsigned line;
} pt_upstream_target_t;

/* Header edits of a proxy API (`upstream.request_headers`, `upstream.response_headers`),
 * applied after the proxy has computed its own headers. Names are HTTP tokens as written
 * (compare them case-insensitively), unique within each list, never in both lists, and never
 * one of the headers the proxy manages itself. */
typedef struct pt_header_edit_s {
    pt_header_kv_t *set; /* replace every header of that name, or add it; in order. Values have
                            their ${env:NAME} references resolved: treat them as secrets (never
                            log them) */
    size_t nset;
    char **remove; /* names of headers removed */
    size_t nremove;
} pt_header_edit_t;

/* How the upstream is authenticated (`upstream.auth.mode`). */
typedef enum pt_upstream_auth_e {
    PT_UPSTREAM_AUTH_PASSTHROUGH = 0, /* the client's Authorization is forwarded as is */
    PT_UPSTREAM_AUTH_NONE,            /* the client's Authorization is removed */
    PT_UPSTREAM_AUTH_BASIC            /* replaced by auth_basic */
} pt_upstream_auth_t;

/* TLS toward https targets (`upstream.tls`). */
typedef struct pt_upstream_tls_s {
    int verify;        /* verify the certificate chain and the name; default 1 */
    char *ca_file;     /* PEM bundle the chain is verified against; NULL = the system store */
    char *server_name; /* sent as SNI and verified; NULL = the target's host (no SNI for an IP) */
    char *client_cert; /* PEM certificate (chain) presented to the upstream; NULL = none */
    char *client_key;  /* its PEM private key: set exactly when client_cert is */
    unsigned line;     /* of `tls:` (0 when absent) */
} pt_upstream_tls_t;

/* An inclusive range of expected status codes of an active health check. */
typedef struct pt_status_range_s {
    uint16_t lo, hi;
} pt_status_range_t;

/* Active health checks (`upstream.health.check`): every interval, GET path on each target. */
typedef struct pt_health_check_s {
    char *path;                  /* "/health" or "/health?deep=1"; NULL = no active checks */
    uint32_t interval_ms;        /* default 5000 (1s..1h) */
    uint32_t timeout_ms;         /* connect + answer, default 2000 (1ms..1m), < interval */
    pt_status_range_t *expected; /* statuses that pass; default one range 200..299 */
    size_t nexpected;
    uint32_t fails;  /* consecutive failed checks that mark a target down, default 2 (1..100) */
    uint32_t passes; /* consecutive passed checks that bring it back, default 1 (1..100) */
    unsigned line;
} pt_health_check_t;

/* Where and how a proxy API forwards (`upstream:`). */
typedef struct pt_upstream_s {
    pt_upstream_target_t *targets; /* at least one */
    size_t ntargets;
    uint32_t connect_timeout_ms;        /* default 5000 -> 504 */
    uint32_t read_timeout_ms;           /* request sent -> response head, default 60000 -> 504 */
    uint32_t keepalive_max_idle;        /* idle pooled connections per worker per target,
                                           default 64; 0 = no pooling */
    uint32_t keepalive_idle_timeout_ms; /* default 60000 */
    uint32_t keepalive_max_requests;    /* per upstream connection, default 1000 */
    int preserve_host;         /* forward the client's Host (default: target host[:port]) */
    uint32_t retries;          /* further attempts on another target, default 1: when the connection
                                  could not be opened, or (idempotent methods, requests without a body)
                                  when the upstream failed before answering */
    uint32_t health_max_fails; /* consecutive failures that eject a target, default 3;
                                  0 = never */
    uint32_t health_fail_timeout_ms;   /* how long an ejected target is skipped, default 10000 */
    uint32_t send_timeout_ms;          /* longest wait for the upstream to accept request bytes (a
                                          stalled upload), default 60000 */
    uint32_t total_timeout_ms;         /* the whole exchange, request start to response end;
                                          default 0 = none */
    pt_header_edit_t request_headers;  /* edits of the request sent upstream */
    pt_header_edit_t response_headers; /* edits of the response sent to the client */
    pt_upstream_auth_t auth_mode;      /* default PT_UPSTREAM_AUTH_PASSTHROUGH */
    char *auth_basic; /* BASIC: the whole Authorization value "Basic <base64(user:password)>",
                         precomputed; a secret, never logged. NULL for other modes */
    int auth_forward_original; /* NONE and BASIC: send the client's Authorization (if any) as
                                  X-Forwarded-Authorization */
    pt_upstream_tls_t tls;     /* for https targets */
    pt_health_check_t check;   /* active health checks (check.path NULL: none) */
    uint32_t dns_ttl_ms; /* a target's DNS name is resolved again (off the loop) when its address
                            is older than this; default 60000; 0 = only at load */
    unsigned line;
} pt_upstream_t;

typedef struct pt_api_def_s {
    char *file;      /* definition file it came from */
    char *name;      /* [a-z0-9][a-z0-9_-]* */
    char *base_path; /* "/crm/v1": starts with '/', no trailing '/', no '{' */
    char *kind;      /* "service" | "proxy" */
    char *title;
    char *version;     /* published version label */
    char *description; /* may be NULL */
    /* for the contracts' info (all may be NULL) */
    char *contact_name, *contact_email, *contact_url;
    char *license_name, *license_url;
    char *terms_of_service;
    pt_route_def_t *routes;
    size_t nroutes;
    unsigned name_line; /* lines of `name:` and `base_path:`, for messages */
    unsigned base_path_line;
    pt_upstream_t *upstream; /* kind "proxy": required (and no routes); NULL for "service" */
    /* kind "service" */
    pt_connection_def_t *connections;
    size_t nconnections;
    struct pt_jschema_set_s *schemas; /* NULL when none */
    pt_process_def_t *processes;
    size_t nprocesses;
    char **custom_headers; /* lower-case names of the headers processes see (`header.<name>`) */
    size_t ncustom_headers;
    /* SOAP operations at POST {base_path}/soap (`operations`): each a route of its own (method
       POST, path "/soap", name = the operation = the request's wrapper element, body_schema =
       input, response_schema = output) */
    pt_route_def_t *soap_ops;
    size_t nsoap_ops;
    char *soap_namespace; /* target namespace, default "urn:portico:<api name>" */
    /* kind "proxy": an OpenAPI 3.x document supplied with the definition (`openapi: file`),
       served at {base_path}/openapi.json with its servers rewritten to the gateway */
    char *openapi_file;
    struct pt_json_s *openapi_doc;
    uint32_t metric_any;       /* metrics series of its traffic that matched no route (proxy
                                  APIs: all of it): PT_M_METHODS consecutive ids */
    pt_policy_list_t policies; /* the API's own `policies:` */
    pt_policy_list_t chain;    /* node + API policies merged, in chain order (snapshot) */
    pt_policy_list_t *lchains; /* per listener index, when a listener has policies */
} pt_api_def_t;

/* An address block: "10.0.0.0/8", "::1/128", "127.0.0.1" (= /32). */
typedef struct pt_cidr_s {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order; IPv4 in the first 4 bytes */
    unsigned prefix;        /* 0..32 or 0..128 */
} pt_cidr_t;

typedef struct pt_log_config_s {
    char *level;      /* debug | info | warn | error (default info) */
    char *access_log; /* path, "-"/"stdout", or "off" (default "-") */
} pt_log_config_t;

/* The process pool of the node (`processes:`); read at start (not reloaded). */
/* Webhooks (`webhooks:`, docs/long-running.md). */
typedef struct pt_webhooks_config_s {
    char **allowed_hosts; /* "host" (any port) or "host:port", lower-case */
    size_t nallowed;
    char *secret; /* HMAC-SHA256 key of the signatures (a secret: ${env:} or ${file:}) */
    size_t secret_len;
    uint64_t retry_for_ms;  /* retries stop after it, default 24 h */
    uint64_t retry_base_ms; /* the first retry's delay, doubling, default 1 s */
    uint32_t timeout_ms;    /* one attempt, default 10 s */
} pt_webhooks_config_t;

/* `metrics:` (docs/observability.md) */
typedef struct pt_metrics_config_s {
    int enabled;            /* record requests and executions (default 1) */
    int require_token;      /* GET /metrics needs an admin token (default 0) */
    uint32_t top_consumers; /* consumers named in /metrics and the dashboard (20) */
    uint64_t history_ms;    /* minute aggregates kept in the store (7 days) */
} pt_metrics_config_t;

/* `tracing:` W3C Trace Context */
typedef struct pt_tracing_config_s {
    int traceparent; /* keep or start a trace per request: traceparent to upstreams and HTTP
                        steps, trace_id in the access log (default 1) */
} pt_tracing_config_t;

typedef struct pt_processes_config_s {
    uint32_t max_running;         /* executions at once (pool threads), default 16 */
    uint32_t max_queued;          /* waiting beyond those, default 256; more -> 503 */
    uint32_t queue_timeout_ms;    /* longest wait in the queue, default 10000 -> 503 */
    uint32_t max_execution_ms;    /* longest execution, default 30000 -> timeout_status */
    int timeout_status;           /* 504 (default) or 522 (the reference's code) */
    uint32_t max_wait_ms;         /* the longest X-Max-Wait honoured (longer ones are cut to it),
                                     default 300000 */
    uint64_t result_retention_ms; /* how long the result of a 202 execution is kept, 24 h */
    uint64_t max_result_size;     /* bytes of such a result kept (beyond: cut, flagged), 1 MiB */
    int drop_large_results;       /* result_overflow: drop (not kept at all) instead of truncate */
} pt_processes_config_t;

typedef struct pt_config_s {
    pt_arena_t arena; /* owns everything below */
    char *path;       /* the node configuration file */
    unsigned workers; /* 0 in the file = CPU count (resolved at load) */
    pt_listener_config_t *listeners;
    size_t nlisteners;
    pt_limits_t limits;
    pt_processes_config_t processes;
    pt_webhooks_config_t webhooks;
    pt_metrics_config_t metrics;
    pt_tracing_config_t tracing;
    pt_log_config_t log;
    pt_cidr_t *trusted_proxies; /* peers whose X-Forwarded-* headers are believed */
    size_t ntrusted_proxies;
    char **protected_headers; /* lower-case; stripped from every request (`protected_headers`) */
    size_t nprotected_headers;
    char *apis_dir;     /* absolute or relative to the config file's directory; may be NULL */
    pt_api_def_t *apis; /* loaded from apis_dir (or the store's deployments), sorted by name */
    size_t napis;
    /* control plane (docs/admin-api.md): all NULL without `store:` and `admin:` */
    struct pt_connection_def_s *store; /* sqlite: or postgresql:// */
    char *environment;                 /* the environment this node serves */
    char *data_dir;                    /* the embedded store and the last snapshot */
    pt_policy_list_t *lchains;         /* per listener: node + listener policies, when a
                                          listener has some (requests that match no API) */
    pt_policy_list_t policies;         /* node-wide `policies:` (also the chain of requests that
                                          match no API) */
    pt_user_t *users;                  /* `users:` */
    size_t nusers;
    pt_key_index_t *keys; /* every user's API keys, sorted by hash (bsearch) */
    size_t nkeys;
    const pt_user_t **users_by_name; /* sorted by name (bsearch: basic auth) */
} pt_config_t;

#endif
