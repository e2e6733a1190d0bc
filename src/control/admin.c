/*
 * admin.c - the admin API on the admin listener (docs/admin-api.md). The
 * request is read on its I/O loop (bounded body), then answered by a job on
 * the process pool: token check, store calls and deployments block there,
 * never on a loop.
 */
#include "control/admin.h"
#include "control/console.h"
#include "metrics/dashboard.h"
#include "policy/stats.h"
#include "process/persist.h"
#include "process/records.h"

#include <sodium.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/control.h"
#include "control/ops.h"
#include "core/buf.h"
#include "core/log.h"
#include "event/worker-t.h"
#include "http/http.h"
#include "process/pool.h"

#define BODY_MAX     (4u << 20) /* a definition */
#define SEGMENTS     8
#define TOKEN_CACHE  16
#define TOKEN_TTL_NS (60ull * 1000000000ull) /* a revoked token works at most this long */

typedef struct job_s job_t;

pt_procpool_t *pt_admin_pool;

/* Control work (store calls, snapshot builds) yields the CPU to the I/O
 * workers: its threads run niced, so a deploy does not lengthen the
 * requests being served on a busy core. */
#define CONTROL_NICE 10

typedef struct link_s {
    job_t *job;
} link_t;

struct job_s {
    pt_job_t job;
    link_t *link; /* NULL once the request is gone */
    pt_req_t *req;
    pt_arena_t a;
    char *method, *path, *query, *auth, *body;
    char *cookie, *csrf;    /* Cookie and X-CSRF-Token (the console's session) */
    int tls;                /* the admin listener is TLS: cookies are Secure */
    int metrics;            /* GET /metrics */
    int metrics_open;       /* ... which needs no token (metrics.require_token: false) */
    int sse;                /* the answer is the dashboard's event stream */
    const char *ctype;      /* the answer's Content-Type (default application/json) */
    pt_header_kv_t hdrs[2]; /* extra headers of the answer (Set-Cookie) */
    size_t nhdrs;
    size_t body_len;
    int too_large;
    int submitted;
    atomic_int abandoned; /* the client left before the job ran */
    /* the answer */
    int status;
    const char *type;
    char detail[512];
    pt_json_t *errors;
    pt_buf_t out;
    const char *actor;
    void (*fix_row)(job_t *j, pt_json_t *row); /* rows_answer: reshapes each row */
};

/* ------------------------------------------------------------ tokens */

/* Tokens verified once (Argon2id is slow by design): their id and a hash
 * of the whole token, so a cached check is a constant-time compare. */
static struct {
    uv_mutex_t lock;
    uv_once_t once;
    struct {
        char id[17];
        unsigned char digest[crypto_generichash_BYTES];
        char name[64];
        uint64_t until; /* uv_hrtime() */
    } slot[TOKEN_CACHE];
    unsigned next;
} cache = {.once = UV_ONCE_INIT};

static void cache_init(void)
{
    uv_mutex_init(&cache.lock);
}

static int cache_find(const char *id, const unsigned char *digest, char *name, size_t nlen)
{
    unsigned i;
    int found = 0;
    uv_mutex_lock(&cache.lock);
    for (i = 0; i < TOKEN_CACHE && !found; i++)
        if (strcmp(cache.slot[i].id, id) == 0 && cache.slot[i].until > uv_hrtime() &&
            sodium_memcmp(cache.slot[i].digest, digest, sizeof(cache.slot[i].digest)) == 0) {
            snprintf(name, nlen, "%s", cache.slot[i].name);
            found = 1;
        }
    uv_mutex_unlock(&cache.lock);
    return found;
}

static void cache_add(const char *id, const unsigned char *digest, const char *name)
{
    unsigned i;
    uv_mutex_lock(&cache.lock);
    i = cache.next++ % TOKEN_CACHE;
    snprintf(cache.slot[i].id, sizeof(cache.slot[i].id), "%s", id);
    memcpy(cache.slot[i].digest, digest, sizeof(cache.slot[i].digest));
    snprintf(cache.slot[i].name, sizeof(cache.slot[i].name), "%s", name);
    cache.slot[i].until = uv_hrtime() + TOKEN_TTL_NS;
    uv_mutex_unlock(&cache.lock);
}

static const char *verify_token(job_t *j, const char *tok, char token_id[17]);
static void fail(job_t *j, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A console session (cookie): its name, or NULL (with a 403 answered when
 * a change comes without the session's CSRF token). The token it was made
 * with must still be valid: a revoked token ends its sessions. */
static const char *session_auth(job_t *j)
{
    char name[64], tid[17], csrf[65];
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row = NULL;
    int rc;
    if (j->cookie == NULL || !pt_session_find(j->cookie, name, tid, csrf))
        return NULL;
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(pt_control), &tx, 0, &e) != PT_OK)
        return NULL;
    rc = pt_store_q(&tx, &j->a, PT_SQL_ROW, &row, &e,
                    "SELECT id FROM admin_tokens WHERE id = :id AND revoked_at IS NULL", "id",
                    pt_json_string(&j->a, tid, strlen(tid)), NULL);
    pt_store_end(&tx, 0, &e);
    if (rc != PT_OK || row == NULL) {
        pt_session_end_token(tid);
        return NULL;
    }
    if (strcmp(j->method, "GET") != 0 && strcmp(j->method, "HEAD") != 0 &&
        !pt_session_csrf_ok(csrf, j->csrf)) {
        fail(j, 403, "csrf",
             "A change made with a session cookie must carry the session's X-CSRF-Token.");
        return NULL;
    }
    return pt_arena_strdup(&j->a, name);
}

/* "Bearer pt_<16 hex>_<64 hex>" or a session cookie: the caller's name, or NULL. */
static const char *authenticate(job_t *j)
{
    const char *h = j->auth;
    char tid[17];
    if (h == NULL)
        return session_auth(j);
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return verify_token(j, h, tid);
}

/* "pt_<16 hex>_<64 hex>": the token's name (and id), or NULL. */
static const char *verify_token(job_t *j, const char *tok, char token_id[17])
{
    const char *sep;
    char id[17], name[64];
    unsigned char digest[crypto_generichash_BYTES];
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *row = NULL;
    const pt_json_t *hash, *nm;
    int rc;

    uv_once(&cache.once, cache_init);
    if (strncmp(tok, "pt_", 3) != 0 || (sep = strchr(tok + 3, '_')) == NULL ||
        sep - (tok + 3) != 16 || strlen(sep + 1) != 64)
        return NULL;
    memcpy(id, tok + 3, 16);
    id[16] = '\0';
    memcpy(token_id, id, 17);
    crypto_generichash(digest, sizeof(digest), (const unsigned char *)tok, strlen(tok), NULL, 0);
    if (cache_find(id, digest, name, sizeof(name)))
        return pt_arena_strdup(&j->a, name);
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(pt_control), &tx, 0, &e) != PT_OK)
        return NULL;
    rc = pt_store_q(&tx, &j->a, PT_SQL_ROW, &row, &e,
                    "SELECT name, hash FROM admin_tokens WHERE id = :id AND revoked_at IS NULL",
                    "id", pt_json_string(&j->a, id, 16), NULL);
    pt_store_end(&tx, 0, &e);
    if (rc != PT_OK || (hash = pt_json_get(row, "hash")) == NULL ||
        (nm = pt_json_get(row, "name")) == NULL || hash->type != PT_JSON_STRING ||
        crypto_pwhash_str_verify(hash->u.str.p, sep + 1, 64) != 0)
        return NULL;
    cache_add(id, digest, nm->u.str.p);
    return nm->u.str.p;
}

/* ------------------------------------------------------------ helpers */

static void fail(job_t *j, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    j->status = status;
    j->type = type;
    va_start(ap, fmt);
    vsnprintf(j->detail, sizeof(j->detail), fmt, ap);
    va_end(ap);
}

static void answer(job_t *j, int status, const pt_json_t *doc)
{
    j->status = status;
    j->out.len = 0;
    if (pt_json_write(&j->out, doc) != 0)
        fail(j, 500, "internal-error", "Out of memory.");
}

static void answer_op(job_t *j, const pt_op_result_t *r)
{
    if (r->status >= 400) {
        fail(j, r->status, r->type, "%s", r->detail);
        j->errors = r->errors;
    } else {
        answer(j, r->status, r->body != NULL ? r->body : pt_json_object(&j->a));
    }
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes [s, s+n) ('+' as space when form); NULL when malformed
 * or when it decodes to a NUL. */
static char *decode(pt_arena_t *a, const char *s, size_t n, int form)
{
    char *out = pt_arena_alloc(a, n + 1), *o = out;
    size_t i;
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int h, l;
            if (i + 2 >= n || (h = hexval(s[i + 1])) < 0 || (l = hexval(s[i + 2])) < 0 ||
                (h == 0 && l == 0))
                return NULL;
            *o++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *o++ = form && s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

/* The decoded value of query parameter name, or NULL. */
static char *query_param(job_t *j, const char *name)
{
    const char *q = j->query, *end;
    size_t nl = strlen(name);
    while (q != NULL && *q != '\0') {
        end = q + strcspn(q, "&");
        if ((size_t)(end - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=')
            return decode(&j->a, q + nl + 1, (size_t)(end - q - nl - 1), 1);
        q = *end ? end + 1 : end;
    }
    return NULL;
}

/* A positive integer, or -1. */
static int64_t positive(const char *s)
{
    char *end;
    long long v;
    if (s == NULL || *s < '1' || *s > '9')
        return -1;
    v = strtoll(s, &end, 10);
    return *end == '\0' && v > 0 && v < (1ll << 40) ? v : -1;
}

/* The request body as a JSON object ({} when empty), or NULL (j failed). */
static pt_json_t *json_body(job_t *j)
{
    pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
    pt_json_error_t jerr;
    pt_json_t *v;
    if (j->body_len == 0)
        return pt_json_object(&j->a);
    v = pt_json_parse(&j->a, j->body, j->body_len, &lim, &jerr);
    if (v == NULL || v->type != PT_JSON_OBJECT) {
        fail(j, 400, "bad-request", "The body must be a JSON object%s%s.", v == NULL ? ": " : "",
             v == NULL ? jerr.message : "");
        return NULL;
    }
    return v;
}

/* A string member (NULL when absent); *bad set when present but not one. */
static const char *member_str(const pt_json_t *o, const char *k, int *bad)
{
    const pt_json_t *v = pt_json_get(o, k);
    if (v == NULL || v->type == PT_JSON_NULL)
        return NULL;
    if (v->type != PT_JSON_STRING || v->u.str.len > 2000 || memchr(v->u.str.p, 0, v->u.str.len)) {
        *bad = 1;
        return NULL;
    }
    return v->u.str.p;
}

static int64_t member_int(const pt_json_t *o, const char *k, int *bad)
{
    const pt_json_t *v = pt_json_get(o, k);
    int64_t n = 0;
    if (v == NULL || v->type == PT_JSON_NULL)
        return 0;
    if (pt_json_to_int64(v, &n) != PT_OK || n < 1) {
        *bad = 1;
        return 0;
    }
    return n;
}

/* ------------------------------------------------------------ reads */

/* A store call failed: 503 when the store cannot be reached (the probe
 * and /_portico/ready hear of it), else 500 (logged). */
static void store_failed(job_t *j, const pt_db_error_t *e)
{
    if (e->broken || e->kind == PT_PERR_DATABASE || e->kind == PT_PERR_BUSY) {
        pt_control_set_store_ok(pt_control, 0);
        fail(j, 503, "store-unavailable", "The store cannot be reached: %s", e->message);
    } else {
        pt_log_error("admin %s %s: store: %s", j->method, j->path, e->message);
        fail(j, 500, "internal-error", "The store refused the query.");
    }
}

#define PAGE_DEFAULT 100
#define PAGE_MAX     1000

/* A list, a page at a time: sql binds :a and :b (strings or null), :c
 * (the cursor: the key of the last item of the previous page, or null) and
 * :l (the page size + 1), and orders by key. {"items": [...], "next":
 * cursor or null}. */
static void rows_answer(job_t *j, const char *sql, const char *key, int numeric_key, const char *pa,
                        const char *pb)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *rows = NULL, *doc, *cur, *next;
    const char *lim = query_param(j, "limit"), *cs = query_param(j, "cursor");
    int64_t limit = lim != NULL ? positive(lim) : PAGE_DEFAULT;

    if (limit < 1 || limit > PAGE_MAX) {
        fail(j, 400, "bad-request", "limit must be an integer from 1 to %d.", PAGE_MAX);
        return;
    }
    if (cs == NULL)
        cur = pt_json_null(&j->a);
    else if (numeric_key && positive(cs) > 0)
        cur = pt_json_int(&j->a, positive(cs));
    else if (!numeric_key && cs[0] != '\0' && strlen(cs) <= 200)
        cur = pt_json_string(&j->a, cs, strlen(cs));
    else {
        fail(j, 400, "bad-request", "The cursor is not one this list gave.");
        return;
    }
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(pt_control), &tx, 0, &e) != PT_OK ||
        pt_store_q(&tx, &j->a, PT_SQL_ROWS, &rows, &e, sql, "a",
                   pa ? pt_json_string(&j->a, pa, strlen(pa)) : pt_json_null(&j->a), "b",
                   pb ? pt_json_string(&j->a, pb, strlen(pb)) : pt_json_null(&j->a), "c", cur, "l",
                   pt_json_int(&j->a, limit + 1), NULL) != PT_OK) {
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        store_failed(j, &e);
        return;
    }
    pt_store_end(&tx, 0, &e);
    if (j->fix_row != NULL) {
        size_t i;
        for (i = 0; i < rows->u.arr.n; i++)
            j->fix_row(j, rows->u.arr.items[i]);
    }
    next = pt_json_null(&j->a);
    if (rows->u.arr.n > (size_t)limit) {
        const pt_json_t *k;
        rows->u.arr.n = (size_t)limit;
        k = pt_json_get(rows->u.arr.items[limit - 1], key);
        if (k != NULL && k->type == PT_JSON_STRING)
            next = (pt_json_t *)k;
        else if (k != NULL)
            next = pt_json_string(&j->a, k->u.str.p, k->u.str.len); /* the number's text */
    }
    doc = pt_json_object(&j->a);
    pt_json_object_set(&j->a, doc, "items", 5, rows);
    pt_json_object_set(&j->a, doc, "next", 4, next);
    answer(j, 200, doc);
}

/* One row (404 when none) into *out; 0 on success. */
static int one_row(job_t *j, pt_json_t **out, const char *what, const char *sql, const char *pa,
                   int64_t pb)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    int rc;
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(pt_control), &tx, 0, &e) != PT_OK) {
        store_failed(j, &e);
        return -1;
    }
    rc = pt_store_q(&tx, &j->a, PT_SQL_ROW, out, &e, sql, "a",
                    pt_json_string(&j->a, pa, strlen(pa)), "b", pt_json_int(&j->a, pb), NULL);
    pt_store_end(&tx, 0, &e);
    if (rc == PT_ENOENT) {
        fail(j, 404, "not-found", "No %s.", what);
        return -1;
    }
    if (rc != PT_OK) {
        store_failed(j, &e);
        return -1;
    }
    return 0;
}

static const char API_ROW[] =
    "SELECT a.name AS name, r.revision AS latest_revision, r.base_path AS base_path, r.kind AS "
    "kind, a.updated_at AS updated_at FROM apis a JOIN revisions r ON r.api = a.name AND "
    "r.revision = (SELECT max(revision) FROM revisions WHERE api = a.name)";

static const char REVISION_COLS[] = "revision, hash, label, notes, author, created_at";

/* The rows of sql (:a bound to key) as member of row. 0, or -1 (j failed). */
static int add_rows(job_t *j, pt_json_t *row, const char *member, const char *sql, const char *key)
{
    pt_json_t *rows = NULL;
    pt_store_tx_t tx;
    pt_db_error_t e;
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(pt_control), &tx, 0, &e) != PT_OK ||
        pt_store_q(&tx, &j->a, PT_SQL_ROWS, &rows, &e, sql, "a",
                   pt_json_string(&j->a, key, strlen(key)), NULL) != PT_OK) {
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        store_failed(j, &e);
        return -1;
    }
    pt_store_end(&tx, 0, &e);
    pt_json_object_set(&j->a, row, member, strlen(member), rows);
    return 0;
}

static void get_api(job_t *j, const char *name)
{
    pt_json_t *row = NULL;
    if (one_row(j, &row, "such API",
                pt_arena_printf(&j->a, "%s WHERE a.name = :a AND 0 < :b", API_ROW), name, 1) == 0 &&
        add_rows(j, row, "deployments",
                 "SELECT environment, revision FROM deployments WHERE api = :a AND status = "
                 "'active' ORDER BY environment",
                 name) == 0)
        answer(j, 200, row);
}

/* The lines of s in a: their starts and lengths (without '\n'). */
static size_t split_lines(pt_arena_t *a, const char *s, size_t n, const char ***lines,
                          size_t **lens)
{
    size_t count = 0, i, k = 0, start = 0;
    for (i = 0; i < n; i++)
        count += s[i] == '\n';
    count += n > 0 && s[n - 1] != '\n';
    *lines = pt_arena_alloc(a, sizeof(char *) * (count + 1));
    *lens = pt_arena_alloc(a, sizeof(size_t) * (count + 1));
    if (*lines == NULL || *lens == NULL)
        return 0;
    for (i = 0; i <= n && k < count; i++)
        if (i == n || s[i] == '\n') {
            (*lines)[k] = s + start;
            (*lens)[k++] = i - start;
            start = i + 1;
        }
    return count;
}

#define DIFF_CELLS (16u << 20) /* LCS table cells: beyond, the whole file changed */
#define CONTEXT    3

/* A unified diff of two texts (line LCS; written here: a library for one
 * diff of two small files was not worth a dependency). */
static int unified_diff(pt_arena_t *a, pt_buf_t *out, const char *name, int64_t r1, const char *x,
                        size_t xn, int64_t r2, const char *y, size_t yn)
{
    const char **xl, **yl;
    size_t *xlen, *ylen, n, m, i, k;
    uint32_t *t = NULL;
    char *op; /* per edit: ' ', '-', '+' */
    size_t *ox, *oy, ne = 0;

    n = split_lines(a, x, xn, &xl, &xlen);
    m = split_lines(a, y, yn, &yl, &ylen);
    op = pt_arena_alloc(a, n + m + 1);
    ox = pt_arena_alloc(a, sizeof(size_t) * (n + m + 1));
    oy = pt_arena_alloc(a, sizeof(size_t) * (n + m + 1));
    if (op == NULL || ox == NULL || oy == NULL)
        return -1;
    if ((uint64_t)(n + 1) * (m + 1) <= DIFF_CELLS)
        t = calloc((n + 1) * (m + 1), sizeof(*t));
#define T(i, k)  t[(size_t)(i) * (m + 1) + (k)]
#define EQ(i, k) (xlen[i] == ylen[k] && memcmp(xl[i], yl[k], xlen[i]) == 0)
    if (t != NULL) {
        for (i = n; i-- > 0;)
            for (k = m; k-- > 0;)
                T(i, k) = EQ(i, k) ? T(i + 1, k + 1) + 1
                                   : (T(i + 1, k) > T(i, k + 1) ? T(i + 1, k) : T(i, k + 1));
    }
    for (i = 0, k = 0; i < n || k < m;) {
        if (t != NULL && i < n && k < m && EQ(i, k)) {
            op[ne] = ' ', ox[ne] = i++, oy[ne++] = k++;
        } else if (i < n && (k == m || t == NULL || T(i + 1, k) >= T(i, k + 1))) {
            op[ne] = '-', ox[ne] = i++, oy[ne++] = k;
        } else {
            op[ne] = '+', ox[ne] = i, oy[ne++] = k++;
        }
    }
    free(t);
#undef T
#undef EQ
    pt_buf_printf(out, "--- %s@%lld\n+++ %s@%lld\n", name, (long long)r1, name, (long long)r2);
    for (i = 0; i < ne;) {
        size_t s, e, last, xs = 0, xc = 0, ys = 0, yc = 0, q;
        if (op[i] == ' ') {
            i++;
            continue;
        }
        s = i > CONTEXT ? i - CONTEXT : 0;
        while (s < i && op[s] != ' ')
            s++;
        /* extend while the next change is within 2 * CONTEXT */
        last = i;
        for (e = i; e < ne; e++) {
            if (op[e] != ' ')
                last = e;
            else if (e - last > 2 * CONTEXT)
                break;
        }
        e = last + CONTEXT + 1 < ne ? last + CONTEXT + 1 : ne;
        xs = ox[s];
        ys = oy[s];
        for (q = s; q < e; q++) {
            xc += op[q] != '+';
            yc += op[q] != '-';
        }
        pt_buf_printf(out, "@@ -%zu,%zu +%zu,%zu @@\n", xc ? xs + 1 : xs, xc, yc ? ys + 1 : ys, yc);
        for (q = s; q < e; q++) {
            pt_buf_append_char(out, op[q]);
            if (op[q] == '+')
                pt_buf_append(out, yl[oy[q]], ylen[oy[q]]);
            else
                pt_buf_append(out, xl[ox[q]], xlen[ox[q]]);
            pt_buf_append_char(out, '\n');
        }
        i = e;
    }
    return 0;
}

static void diff(job_t *j, const char *name)
{
    int64_t r1 = positive(query_param(j, "from")), r2 = positive(query_param(j, "to"));
    pt_json_t *a = NULL, *b = NULL, *doc;
    const pt_json_t *da, *db;
    pt_buf_t out;
    static const char sql[] = "SELECT definition FROM revisions WHERE api = :a AND revision = :b";
    if (r1 < 0 || r2 < 0) {
        fail(j, 400, "bad-request", "from= and to= must be revision numbers.");
        return;
    }
    if (one_row(j, &a, "such revision", sql, name, r1) != 0 ||
        one_row(j, &b, "such revision", sql, name, r2) != 0)
        return;
    da = pt_json_get(a, "definition");
    db = pt_json_get(b, "definition");
    pt_buf_init(&out, 0);
    doc = pt_json_object(&j->a);
    pt_json_object_set(&j->a, doc, "from", 4, pt_json_int(&j->a, r1));
    pt_json_object_set(&j->a, doc, "to", 2, pt_json_int(&j->a, r2));
    if (da->u.str.len == db->u.str.len && memcmp(da->u.str.p, db->u.str.p, da->u.str.len) == 0) {
        pt_json_object_set(&j->a, doc, "diff", 4, pt_json_string(&j->a, "", 0));
    } else if (unified_diff(&j->a, &out, name, r1, da->u.str.p, da->u.str.len, r2, db->u.str.p,
                            db->u.str.len) != 0 ||
               out.data == NULL) {
        pt_buf_free(&out);
        fail(j, 500, "internal-error", "Out of memory.");
        return;
    } else {
        pt_json_object_set(&j->a, doc, "diff", 4, pt_json_string(&j->a, out.data, out.len));
    }
    pt_buf_free(&out);
    answer(j, 200, doc);
}

static void status(job_t *j)
{
    pt_json_t *doc = pt_json_object(&j->a), *rows = NULL;
    pt_store_tx_t tx;
    pt_db_error_t e;
    int ok;
    const char *env = pt_control_environment(pt_control);
    memset(&e, 0, sizeof(e));
    ok = pt_store_begin(pt_control_store(pt_control), &tx, 0, &e) == PT_OK;
    if (ok) {
        ok = pt_store_q(&tx, &j->a, PT_SQL_ROWS, &rows, &e,
                        "SELECT api, revision FROM deployments WHERE environment = :env AND "
                        "status = 'active' ORDER BY api",
                        "env", pt_json_string(&j->a, env, strlen(env)), NULL) == PT_OK;
        pt_store_end(&tx, 0, &e);
    }
    pt_control_set_store_ok(pt_control, ok);
    pt_json_object_set(&j->a, doc, "environment", 11, pt_json_string(&j->a, env, strlen(env)));
    pt_json_object_set(&j->a, doc, "generation", 10,
                       pt_json_int(&j->a, (int64_t)pt_control_generation(pt_control)));
    pt_json_object_set(&j->a, doc, "store", 5,
                       pt_json_string(&j->a, pt_store_kind(pt_control_store(pt_control)),
                                      strlen(pt_store_kind(pt_control_store(pt_control)))));
    pt_json_object_set(&j->a, doc, "store_ok", 8, pt_json_bool(&j->a, ok));
    {
        const pt_mnode_t *mn = pt_dash_node();
        pt_json_object_set(
            &j->a, doc, "node", 4,
            pt_json_string(&j->a, mn->node ? mn->node : "", mn->node ? strlen(mn->node) : 0));
        pt_json_object_set(&j->a, doc, "version", 7,
                           pt_json_string(&j->a, PT_VERSION, strlen(PT_VERSION)));
        pt_json_object_set(&j->a, doc, "started_ms", 10, pt_json_int(&j->a, pt_dash_started_ms()));
        pt_json_object_set(&j->a, doc, "workers", 7, pt_json_int(&j->a, mn->workers));
    }
    pt_json_object_set(&j->a, doc, "deployed", 8, ok ? rows : pt_json_null(&j->a));
    {
        uint64_t counts[PT_PSTAT_MAX];
        pt_json_t *d = pt_json_object(&j->a);
        size_t k;
        pt_policy_stats_read(counts);
        for (k = 0; k < PT_PSTAT_MAX; k++)
            pt_json_object_set(&j->a, d, pt_pstat_names[k], strlen(pt_pstat_names[k]),
                               pt_json_int(&j->a, (int64_t)counts[k]));
        pt_json_object_set(&j->a, doc, "policy_decisions", 16, d);
    }
    answer(j, 200, doc);
}

/* ------------------------------------------------------------ routing */

static int is(const job_t *j, const char *m)
{
    return strcmp(j->method, m) == 0;
}

/* A stored user row as the API shows it: its lists as JSON arrays (they
 * are kept as JSON text), has_password a boolean on every store. */
static void user_row(job_t *j, pt_json_t *row)
{
    static const char *const lists[] = {"roles", "allow_ips", "certificates", "apis"};
    size_t i, k;
    for (i = 0; row->type == PT_JSON_OBJECT && i < row->u.obj.n; i++) {
        pt_json_member_t *m = &row->u.obj.members[i];
        for (k = 0; k < sizeof(lists) / sizeof(lists[0]); k++)
            if (strcmp(m->key, lists[k]) == 0 && m->value->type == PT_JSON_STRING) {
                pt_json_error_t jerr;
                pt_json_t *v = pt_json_parse(&j->a, m->value->u.str.p, m->value->u.str.len,
                                             &PT_JSON_LIMITS_DEFAULT, &jerr);
                if (v != NULL)
                    m->value = v;
            }
        if (strcmp(m->key, "has_password") == 0)
            m->value = pt_json_bool(&j->a, pt_json_truthy(m->value));
    }
}

/* ------------------------------------------------------------ executions */

#define EXEC_COLS                                                                                  \
    "id, api, route, process, generation, user_name AS user, status, http_status, enqueued_ms, "   \
    "started_ms, ended_ms, bytes_in, bytes_out, message, keep_result, result_truncated, "          \
    "expires_ms, webhooks"

/* A stored execution as the API shows it: webhooks as JSON. */
static void exec_row(job_t *j, pt_json_t *row)
{
    size_t i;
    for (i = 0; row->type == PT_JSON_OBJECT && i < row->u.obj.n; i++) {
        pt_json_member_t *m = &row->u.obj.members[i];
        if (strcmp(m->key, "webhooks") == 0 && m->value->type == PT_JSON_STRING) {
            pt_json_error_t jerr;
            pt_json_t *v = pt_json_parse(&j->a, m->value->u.str.p, m->value->u.str.len,
                                         &PT_JSON_LIMITS_DEFAULT, &jerr);
            if (v != NULL)
                m->value = v;
        }
        if (strcmp(m->key, "keep_result") == 0 || strcmp(m->key, "result_truncated") == 0)
            m->value = pt_json_bool(&j->a, pt_json_truthy(m->value));
    }
}

static pt_json_t *opt_str(job_t *j, const char *name)
{
    char *v = query_param(j, name);
    return v != NULL && v[0] != '\0' ? pt_json_string(&j->a, v, strlen(v)) : pt_json_null(&j->a);
}

/* ms since the epoch from a query parameter (digits), or null; -1: bad. */
static pt_json_t *opt_ms(job_t *j, const char *name, int *bad)
{
    char *v = query_param(j, name), *end;
    long long x;
    if (v == NULL || v[0] == '\0')
        return pt_json_null(&j->a);
    x = strtoll(v, &end, 10);
    if (*end != '\0' || x < 0) {
        *bad = 1;
        return NULL;
    }
    return pt_json_int(&j->a, x);
}

/* GET /admin/executions?api=&route=&status=&user=&from=&to=&limit=&cursor=,
 * newest first (cursor: the last id of the previous page's enqueued time). */
static void executions_list(job_t *j)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    pt_json_t *rows = NULL, *doc, *next, *from, *to, *cur;
    const char *lim = query_param(j, "limit");
    int64_t limit = lim != NULL ? positive(lim) : PAGE_DEFAULT;
    int bad = 0;
    size_t i;
    from = opt_ms(j, "from", &bad);
    to = opt_ms(j, "to", &bad);
    cur = opt_ms(j, "cursor", &bad);
    if (bad || limit < 1 || limit > PAGE_MAX) {
        fail(j, 400, "bad-request",
             "limit is 1 to %d; from, to and cursor are milliseconds since the epoch.", PAGE_MAX);
        return;
    }
    memset(&e, 0, sizeof(e));
    if (pt_store_begin(pt_control_store(pt_control), &tx, 0, &e) != PT_OK ||
        pt_store_q(&tx, &j->a, PT_SQL_ROWS, &rows, &e,
                   "SELECT " EXEC_COLS " FROM executions WHERE "
                   "(CAST(:api AS TEXT) IS NULL OR api = :api) AND "
                   "(CAST(:route AS TEXT) IS NULL OR route = :route) AND "
                   "(CAST(:status AS TEXT) IS NULL OR status = :status) AND "
                   "(CAST(:user AS TEXT) IS NULL OR user_name = :user) AND "
                   "(CAST(:from AS BIGINT) IS NULL OR enqueued_ms >= :from) AND "
                   "(CAST(:to AS BIGINT) IS NULL OR enqueued_ms < :to) AND "
                   "(CAST(:cur AS BIGINT) IS NULL OR enqueued_ms < :cur) "
                   "ORDER BY enqueued_ms DESC, id LIMIT :l",
                   "api", opt_str(j, "api"), "route", opt_str(j, "route"), "status",
                   opt_str(j, "status"), "user", opt_str(j, "user"), "from", from, "to", to, "cur",
                   cur, "l", pt_json_int(&j->a, limit + 1), NULL) != PT_OK) {
        if (tx.conn != NULL)
            pt_store_end(&tx, 0, &e);
        store_failed(j, &e);
        return;
    }
    pt_store_end(&tx, 0, &e);
    next = pt_json_null(&j->a);
    if (rows->u.arr.n > (size_t)limit) {
        const pt_json_t *k = pt_json_get(rows->u.arr.items[limit - 1], "enqueued_ms");
        rows->u.arr.n = (size_t)limit;
        if (k != NULL)
            next = pt_json_string(&j->a, k->u.str.p, k->u.str.len);
    }
    for (i = 0; i < rows->u.arr.n; i++)
        exec_row(j, rows->u.arr.items[i]);
    doc = pt_json_object(&j->a);
    pt_json_object_set(&j->a, doc, "items", 5, rows);
    pt_json_object_set(&j->a, doc, "next", 4, next);
    answer(j, 200, doc);
}

static void executions_route(job_t *j, char **seg, size_t n)
{
    pt_store_tx_t tx;
    pt_db_error_t e;
    memset(&e, 0, sizeof(e));
    if (n == 1 && is(j, "GET")) {
        executions_list(j);
        return;
    }
    if (n == 2 && strcmp(seg[1], "purge") == 0 && is(j, "POST")) {
        /* {"before": ms}: ended records older than it go, with their deliveries */
        pt_json_t *b = json_body(j), *res = NULL, *doc;
        int bad = 0;
        int64_t before = b != NULL ? member_int(b, "before", &bad) : -1;
        if (b == NULL)
            return;
        if (bad || before <= 0) {
            fail(j, 400, "bad-request",
                 "The body is {\"before\": ms since the epoch}: ended executions enqueued "
                 "before it are deleted.");
            return;
        }
        if (pt_store_begin(pt_control_store(pt_control), &tx, 1, &e) != PT_OK ||
            pt_store_q(&tx, &j->a, PT_SQL_AFFECTED, NULL, &e,
                       "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND execution IN "
                       "(SELECT id FROM executions WHERE ended_ms > 0 AND enqueued_ms < :b)",
                       "b", pt_json_int(&j->a, before), NULL) != PT_OK ||
            pt_store_q(&tx, &j->a, PT_SQL_AFFECTED, &res, &e,
                       "DELETE FROM executions WHERE ended_ms > 0 AND enqueued_ms < :b", "b",
                       pt_json_int(&j->a, before), NULL) != PT_OK ||
            pt_store_end(&tx, 1, &e) != PT_OK) {
            if (tx.conn != NULL)
                pt_store_end(&tx, 0, &e);
            store_failed(j, &e);
            return;
        }
        doc = pt_json_object(&j->a);
        pt_json_object_set(&j->a, doc, "deleted", 7,
                           res != NULL && pt_json_get(res, "affected") != NULL
                               ? pt_json_get(res, "affected")
                               : pt_json_int(&j->a, 0));
        answer(j, 200, doc);
        return;
    }
    if (n == 2 && is(j, "GET")) {
        pt_json_t *row = NULL;
        if (one_row(j, &row, "such execution",
                    "SELECT " EXEC_COLS " FROM executions WHERE id = :a AND 0 < :b", seg[1],
                    1) != 0)
            return;
        exec_row(j, row);
        if (add_rows(j, row, "deliveries",
                     "SELECT id, url, attempts, state, due_ms, give_up_ms FROM "
                     "webhook_deliveries WHERE execution = :a ORDER BY id",
                     seg[1]) == 0)
            answer(j, 200, row);
        return;
    }
    if (n == 2 && is(j, "DELETE")) {
        pt_buf_t b;
        int rc;
        pt_buf_init(&b, 0);
        rc = pt_exec_cancel(seg[1], strlen(seg[1]), NULL, 1, &b);
        if (rc == PT_OK) {
            pt_exec_interrupt(seg[1], strlen(seg[1])); /* a control pool thread: may block */
            pt_json_error_t jerr;
            pt_json_t *v = pt_json_parse(&j->a, b.data, b.len, &PT_JSON_LIMITS_DEFAULT, &jerr);
            answer(j, 202, v != NULL ? v : pt_json_object(&j->a));
        } else if (rc == PT_EINVAL) {
            fail(j, 409, "conflict", "The execution has already ended.");
        } else {
            fail(j, 404, "not-found", "No execution running on this node with this id.");
        }
        pt_buf_free(&b);
        return;
    }
    if (n <= 2)
        fail(j, 405, "method-not-allowed", "This admin resource does not accept %s.", j->method);
    else
        fail(j, 404, "not-found", "No admin resource at this path.");
}

/* /admin/users...: the users kept in the store (docs/admin-api.md). */
static void users_route(job_t *j, char **seg, size_t n)
{
    pt_op_result_t r;
    memset(&r, 0, sizeof(r));
    if (n == 1 && is(j, "GET")) {
        j->fix_row = user_row;
        rows_answer(j,
                    "SELECT name, roles, allow_ips, certificates, apis, password IS NOT NULL AS "
                    "has_password, created_at, updated_at FROM users WHERE (CAST(:c AS TEXT) IS "
                    "NULL OR name > :c) ORDER BY name LIMIT :l",
                    "name", 0, NULL, NULL);
        return;
    }
    if ((n == 1 && is(j, "POST")) || (n == 2 && is(j, "PATCH"))) {
        pt_control_lock(pt_control);
        pt_op_user_put(pt_control, &j->a, n == 2 ? seg[1] : NULL, j->body ? j->body : "",
                       j->body_len, n == 1, j->actor, &r);
        pt_control_unlock(pt_control);
        if (j->body != NULL)
            sodium_memzero(j->body, j->body_len); /* it may hold a password */
        if (r.body != NULL)
            user_row(j, r.body);
        answer_op(j, &r);
        return;
    }
    if (n == 2 && is(j, "GET")) {
        pt_json_t *row = NULL;
        if (one_row(j, &row, "such user",
                    "SELECT name, roles, allow_ips, certificates, apis, password IS NOT NULL AS "
                    "has_password, created_at, updated_at FROM users WHERE name = :a AND 0 < :b",
                    seg[1], 1) != 0)
            return;
        user_row(j, row);
        if (add_rows(j, row, "keys",
                     "SELECT id, label, created_at, revoked_at FROM user_keys WHERE user_name = "
                     ":a ORDER BY created_at, id",
                     seg[1]) == 0)
            answer(j, 200, row);
        return;
    }
    if (n == 2 && is(j, "DELETE")) {
        pt_control_lock(pt_control);
        pt_op_user_delete(pt_control, &j->a, seg[1], j->actor, &r);
        pt_control_unlock(pt_control);
        answer_op(j, &r);
        return;
    }
    if (n == 3 && strcmp(seg[2], "keys") == 0 && is(j, "POST")) {
        pt_json_t *b = json_body(j);
        int bad = 0;
        const char *label;
        if (b == NULL)
            return;
        label = member_str(b, "label", &bad);
        if (bad) {
            fail(j, 400, "bad-request", "The body is {\"label\": \"...\"} or empty.");
            return;
        }
        pt_control_lock(pt_control);
        pt_op_user_key_create(pt_control, &j->a, seg[1], label, j->actor, &r);
        pt_control_unlock(pt_control);
        answer_op(j, &r);
        return;
    }
    if (n == 4 && strcmp(seg[2], "keys") == 0 && is(j, "DELETE")) {
        pt_control_lock(pt_control);
        pt_op_user_key_revoke(pt_control, &j->a, seg[1], seg[3], j->actor, &r);
        pt_control_unlock(pt_control);
        answer_op(j, &r);
        return;
    }
    if (n <= 2 || (n <= 4 && strcmp(seg[2], "keys") == 0))
        fail(j, 405, "method-not-allowed", "This admin resource does not accept %s.", j->method);
    else
        fail(j, 404, "not-found", "No admin resource at this path.");
}

/* ------------------------------------------------------------ console and dashboard */

/* POST /admin/session {"token"}: a console session (cookie) for a valid
 * admin token, and its CSRF token. */
static void login(job_t *j)
{
    pt_json_t *b = json_body(j), *doc;
    const pt_json_t *t;
    const char *name;
    char tid[17], cookie[65], csrf[65];
    if (b == NULL)
        return;
    t = pt_json_get(b, "token");
    if (t == NULL || t->type != PT_JSON_STRING || t->u.str.len > 200 ||
        (name = verify_token(j, t->u.str.p, tid)) == NULL) {
        fail(j, 401, "unauthorized", "This is not a valid admin token.");
        return;
    }
    pt_session_create(tid, name, cookie, csrf);
    j->hdrs[0].name = "Set-Cookie";
    j->hdrs[0].value = pt_arena_printf(&j->a,
                                       PT_SESSION_COOKIE "=%s; Path=/admin; HttpOnly; "
                                                         "SameSite=Strict; Max-Age=43200%s",
                                       cookie, j->tls ? "; Secure" : "");
    j->nhdrs = j->hdrs[0].value != NULL;
    sodium_memzero(cookie, sizeof(cookie));
    doc = pt_json_object(&j->a);
    pt_json_object_set(&j->a, doc, "name", 4, pt_json_string(&j->a, name, strlen(name)));
    pt_json_object_set(&j->a, doc, "csrf", 4, pt_json_string(&j->a, csrf, 64));
    pt_log_info("admin: %s logged in to the console", name);
    answer(j, 200, doc);
}

static void session_route(job_t *j)
{
    char name[64], tid[17], csrf[65];
    pt_json_t *doc;
    if (is(j, "DELETE")) {
        pt_session_end(j->cookie);
        j->hdrs[0].name = "Set-Cookie";
        j->hdrs[0].value = PT_SESSION_COOKIE "=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0";
        j->nhdrs = 1;
        j->status = 204;
        return;
    }
    if (!is(j, "GET")) {
        fail(j, 405, "method-not-allowed",
             "A session is made with POST, read with GET, ended "
             "with DELETE.");
        return;
    }
    doc = pt_json_object(&j->a);
    pt_json_object_set(&j->a, doc, "name", 4, pt_json_string(&j->a, j->actor, strlen(j->actor)));
    if (j->auth == NULL && pt_session_find(j->cookie, name, tid, csrf))
        pt_json_object_set(&j->a, doc, "csrf", 4, pt_json_string(&j->a, csrf, 64));
    else
        pt_json_object_set(&j->a, doc, "csrf", 4, pt_json_null(&j->a));
    answer(j, 200, doc);
}

/* window=1m|5m|15m|1h|6h|24h (or seconds, 60..86400): seconds, 0 when bad */
static unsigned window_param(job_t *j)
{
    const char *w = query_param(j, "window");
    char *end;
    unsigned long v;
    if (w == NULL || *w == '\0')
        return 900;
    v = strtoul(w, &end, 10);
    if (end == w)
        return 0;
    if (*end == 'm' && end[1] == '\0')
        v *= 60;
    else if (*end == 'h' && end[1] == '\0')
        v *= 3600;
    else if (*end == 's' && end[1] == '\0')
        ;
    else if (*end != '\0')
        return 0;
    return v >= 60 && v <= 86400 ? (unsigned)v : 0;
}

static void dashboard_route(job_t *j, char **seg, size_t n)
{
    const char *api = query_param(j, "api"), *rt = query_param(j, "route");
    const char *env = query_param(j, "environment");
    unsigned window = window_param(j);
    int rc;
    if (n != 2) {
        fail(j, 404, "not-found", "No admin resource at this path.");
        return;
    }
    if (!is(j, "GET")) {
        fail(j, 405, "method-not-allowed", "The dashboard is read with GET.");
        return;
    }
    if (window == 0) {
        fail(j, 400, "bad-request", "window is one of 1m 5m 15m 1h 6h 24h (or 60..86400 s).");
        return;
    }
    if (env != NULL && *env && !pt_config_env_name_ok(env)) {
        fail(j, 400, "bad-request", "environment is a name like dev or prod.");
        return;
    }
    if (rt != NULL && *rt && (api == NULL || *api == '\0')) {
        fail(j, 400, "bad-request", "A route filter needs its API (api=).");
        return;
    }
    if (strcmp(seg[1], "stream") == 0) {
        j->sse = 1;
        j->status = 200;
        return;
    }
    j->out.len = 0;
    if (strcmp(seg[1], "series") == 0)
        rc = pt_dash_series(&j->out, env, api, rt, window);
    else if (strcmp(seg[1], "summary") == 0)
        rc = pt_dash_summary(&j->out, env, api, rt, window);
    else {
        fail(j, 404, "not-found", "The dashboard has series, summary and stream.");
        return;
    }
    if (rc != 0)
        fail(j, 503, "unavailable", "The dashboard cannot read its data now (the store?).");
    else
        j->status = 200;
}

/* GET /admin/executions/{id}/result: the kept result, wrapped in JSON. */
static void execution_result(job_t *j, const char *id)
{
    pt_buf_t ctype, headers, body;
    int status = 0, rc;
    size_t len = strlen(id), i;
    pt_json_t *doc, *h;
    int text = 1;
    pt_buf_init(&ctype, 0);
    pt_buf_init(&headers, 0);
    pt_buf_init(&body, 0);
    rc = pt_exec_result(id, len, NULL, 1, &status, &ctype, &headers, &body);
    if (rc == PT_ENOENT && pt_persist_on() && pt_persist_load(id, len) == PT_OK) {
        body.len = ctype.len = headers.len = 0;
        rc = pt_exec_result(id, len, NULL, 1, &status, &ctype, &headers, &body);
    }
    if (rc == PT_AGAIN)
        fail(j, 409, "conflict", "The execution has not ended: no result yet.");
    else if (rc == PT_EEXPIRED)
        fail(j, 410, "gone", "The result was kept for its retention time only.");
    else if (rc == PT_ENOENT)
        fail(j, 404, "not-found",
             "No kept result for this execution (unknown, or answered to its client).");
    else if (rc != PT_OK)
        fail(j, 500, "internal-error", "Out of memory.");
    else {
        doc = pt_json_object(&j->a);
        h = pt_json_object(&j->a);
        /* "Name: value\r\n" lines */
        for (i = 0; i < headers.len;) {
            const char *line = headers.data + i, *eol = memchr(line, '\r', headers.len - i);
            const char *colon;
            size_t ll = eol != NULL ? (size_t)(eol - line) : headers.len - i;
            if ((colon = memchr(line, ':', ll)) != NULL) {
                const char *v = colon + 1;
                char *name = pt_arena_strndup(&j->a, line, (size_t)(colon - line));
                while (v < line + ll && *v == ' ')
                    v++;
                if (name == NULL) {
                    fail(j, 500, "internal-error", "Out of memory.");
                    break;
                }
                pt_json_object_set(&j->a, h, name, (size_t)(colon - line),
                                   pt_json_string(&j->a, v, (size_t)(line + ll - v)));
            }
            i += ll + 2;
        }
        for (i = 0; i < body.len && text; i++)
            if (body.data[i] == '\0')
                text = 0;
        pt_json_object_set(&j->a, doc, "id", 2, pt_json_string(&j->a, id, len));
        pt_json_object_set(&j->a, doc, "status", 6, pt_json_int(&j->a, status));
        pt_json_object_set(&j->a, doc, "content_type", 12,
                           pt_json_string(&j->a, ctype.data ? ctype.data : "",
                                          ctype.data ? strlen(ctype.data) : 0));
        pt_json_object_set(&j->a, doc, "headers", 7, h);
        if (text) {
            pt_json_object_set(&j->a, doc, "body", 4,
                               pt_json_string(&j->a, body.data ? body.data : "", body.len));
        } else {
            size_t b64 = sodium_base64_ENCODED_LEN(body.len, sodium_base64_VARIANT_ORIGINAL);
            char *enc = pt_arena_alloc(&j->a, b64);
            if (enc != NULL)
                sodium_bin2base64(enc, b64, (const unsigned char *)body.data, body.len,
                                  sodium_base64_VARIANT_ORIGINAL);
            pt_json_object_set(&j->a, doc, "body", 4,
                               pt_json_string(&j->a, enc ? enc : "", enc ? strlen(enc) : 0));
        }
        pt_json_object_set(&j->a, doc, "body_base64", 11, pt_json_bool(&j->a, !text));
        answer(j, 200, doc);
    }
    pt_buf_free(&ctype);
    pt_buf_free(&headers);
    pt_buf_free(&body);
}

static void route(job_t *j)
{
    char *seg[SEGMENTS];
    size_t n = 0;
    const char *p = j->path + 7; /* after "/admin/" */
    pt_op_result_t r;
    int bad = 0;

    while (*p != '\0' && n < SEGMENTS) {
        const char *e = p + strcspn(p, "/");
        if ((seg[n++] = decode(&j->a, p, (size_t)(e - p), 0)) == NULL || seg[n - 1][0] == '\0') {
            fail(j, 404, "not-found", "No admin resource at this path.");
            return;
        }
        p = *e ? e + 1 : e;
    }
    if (*p != '\0' || n == 0)
        goto notfound;
    memset(&r, 0, sizeof(r));
    if (n == 1 && strcmp(seg[0], "session") == 0) {
        session_route(j);
        return;
    }
    if (strcmp(seg[0], "dashboard") == 0) {
        dashboard_route(j, seg, n);
        return;
    }
    if (n == 1 && strcmp(seg[0], "nodes") == 0) {
        if (!is(j, "GET"))
            goto method;
        j->out.len = 0;
        if (pt_dash_nodes(&j->out) != 0)
            fail(j, 500, "internal-error", "Out of memory.");
        else
            j->status = 200;
        return;
    }
    if (n == 3 && strcmp(seg[0], "executions") == 0 && strcmp(seg[2], "result") == 0) {
        if (!is(j, "GET"))
            goto method;
        execution_result(j, seg[1]);
        return;
    }
    if (n == 1 && strcmp(seg[0], "status") == 0) {
        if (!is(j, "GET"))
            goto method;
        status(j);
        return;
    }
    if (strcmp(seg[0], "apis") == 0) {
        if (n == 1 && is(j, "GET")) {
            rows_answer(j,
                        pt_arena_printf(
                            &j->a,
                            "%s WHERE (CAST(:c AS TEXT) IS NULL OR a.name > :c) ORDER BY a.name "
                            "LIMIT :l",
                            API_ROW),
                        "name", 0, NULL, NULL);
            return;
        }
        if (n == 1 && is(j, "POST")) {
            char *label = query_param(j, "label"), *notes = query_param(j, "notes");
            pt_control_lock(pt_control);
            pt_op_push(pt_control, &j->a, j->body != NULL ? j->body : "", j->body_len, label, notes,
                       j->actor, &r);
            pt_control_unlock(pt_control);
            answer_op(j, &r);
            return;
        }
        if (n == 1)
            goto method;
        if (!is(j, "GET"))
            goto method;
        if (n == 2) {
            get_api(j, seg[1]);
            return;
        }
        if (n == 3 && strcmp(seg[2], "revisions") == 0) {
            rows_answer(j,
                        pt_arena_printf(
                            &j->a,
                            "SELECT %s FROM revisions WHERE api = :a AND (CAST(:c AS BIGINT) IS "
                            "NULL OR revision < :c) ORDER BY revision DESC LIMIT :l",
                            REVISION_COLS),
                        "revision", 1, seg[1], NULL);
            return;
        }
        if (n == 4 && strcmp(seg[2], "revisions") == 0) {
            pt_json_t *row = NULL;
            int64_t rev = positive(seg[3]);
            if (rev < 0)
                goto notfound;
            if (one_row(j, &row, "such revision",
                        pt_arena_printf(&j->a,
                                        "SELECT %s, definition FROM revisions WHERE api = :a "
                                        "AND revision = :b",
                                        REVISION_COLS),
                        seg[1], rev) == 0)
                answer(j, 200, row);
            return;
        }
        if (n == 3 && strcmp(seg[2], "diff") == 0) {
            diff(j, seg[1]);
            return;
        }
        goto notfound;
    }
    if (strcmp(seg[0], "users") == 0) {
        users_route(j, seg, n);
        return;
    }
    if (strcmp(seg[0], "executions") == 0) {
        executions_route(j, seg, n);
        return;
    }
    if (strcmp(seg[0], "environments") == 0) {
        if (n == 1 && is(j, "GET")) {
            rows_answer(j,
                        "SELECT name, created_at FROM environments WHERE (CAST(:c AS TEXT) IS NULL "
                        "OR name > "
                        ":c) ORDER BY name LIMIT :l",
                        "name", 0, NULL, NULL);
            return;
        }
        if (n == 1 && is(j, "POST")) {
            pt_json_t *b = json_body(j);
            const char *name;
            if (b == NULL)
                return;
            name = member_str(b, "name", &bad);
            if (name == NULL || bad) {
                fail(j, 400, "bad-request", "The body must be {\"name\": \"...\"}.");
                return;
            }
            pt_control_lock(pt_control);
            pt_op_env_create(pt_control, &j->a, name, j->actor, &r);
            pt_control_unlock(pt_control);
            answer_op(j, &r);
            return;
        }
        if (n == 1)
            goto method;
        if (n == 3 && strcmp(seg[2], "deployments") == 0) {
            if (is(j, "GET")) {
                char *api = query_param(j, "api");
                rows_answer(
                    j,
                    "SELECT id, api, revision, environment, status, notes, author, "
                    "created_at FROM deployments WHERE environment = :a AND (CAST(:b AS TEXT) "
                    "IS NULL OR api = :b) AND (CAST(:c AS BIGINT) IS NULL OR id < :c) "
                    "ORDER BY id DESC LIMIT :l",
                    "id", 1, seg[1], api);
                return;
            }
            if (is(j, "POST")) {
                pt_json_t *b = json_body(j);
                const char *api, *notes;
                int64_t rev;
                if (b == NULL)
                    return;
                api = member_str(b, "api", &bad);
                notes = member_str(b, "notes", &bad);
                rev = member_int(b, "revision", &bad);
                if (api == NULL || bad) {
                    fail(j, 400, "bad-request",
                         "The body must be {\"api\": name, \"revision\": n (optional), "
                         "\"notes\": text (optional)}.");
                    return;
                }
                pt_control_lock(pt_control);
                pt_op_deploy(pt_control, &j->a, api, rev, seg[1], notes, j->actor, &r);
                pt_control_unlock(pt_control);
                answer_op(j, &r);
                return;
            }
            goto method;
        }
        if (n == 4 && strcmp(seg[2], "apis") == 0) {
            if (!is(j, "DELETE"))
                goto method;
            pt_control_lock(pt_control);
            pt_op_undeploy(pt_control, &j->a, seg[3], seg[1], j->actor, &r);
            pt_control_unlock(pt_control);
            answer_op(j, &r);
            return;
        }
        if (n == 5 && strcmp(seg[2], "apis") == 0 && strcmp(seg[4], "rollback") == 0) {
            pt_json_t *b;
            const char *notes;
            int64_t to;
            if (!is(j, "POST"))
                goto method;
            if ((b = json_body(j)) == NULL)
                return;
            notes = member_str(b, "notes", &bad);
            to = member_int(b, "to", &bad);
            if (bad) {
                fail(j, 400, "bad-request",
                     "The body must be {\"to\": n (optional), \"notes\": text (optional)}.");
                return;
            }
            pt_control_lock(pt_control);
            pt_op_rollback(pt_control, &j->a, seg[3], seg[1], to, notes, j->actor, &r);
            pt_control_unlock(pt_control);
            answer_op(j, &r);
            return;
        }
    }
notfound:
    fail(j, 404, "not-found", "No admin resource at this path.");
    return;
method:
    fail(j, 405, "method-not-allowed", "This admin resource does not accept %s.", j->method);
}

static void metrics_answer(job_t *j)
{
    j->out.len = 0;
    if (pt_metrics_prometheus(&j->out) != 0) {
        fail(j, 500, "internal-error", "Out of memory.");
        return;
    }
    j->status = 200;
    j->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

static void job_run(pt_job_t *pj)
{
    job_t *j = (job_t *)pj;
    static _Thread_local int niced;
    if (!niced) {
        niced = 1;
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), CONTROL_NICE) != 0)
            pt_log_debug("admin: cannot lower the control threads' priority");
    }
    if (atomic_load(&j->abandoned))
        return; /* the client left */
    if (j->too_large) {
        fail(j, 413, "payload-too-large", "A definition is at most 4 MiB.");
        return;
    }
    if (j->metrics && j->metrics_open) {
        metrics_answer(j);
        return;
    }
    if (strcmp(j->path, "/admin/session") == 0 && is(j, "POST")) {
        login(j);
        return;
    }
    if ((j->actor = authenticate(j)) == NULL) {
        if (j->type == NULL)
            fail(j, 401, "unauthorized",
                 "A valid admin token is required (Authorization: Bearer, or the console's "
                 "session).");
        return;
    }
    if (j->metrics)
        metrics_answer(j);
    else
        route(j);
}

static void job_free(job_t *j)
{
    if (j->link != NULL)
        j->link->job = NULL;
    pt_buf_free(&j->out);
    pt_arena_destroy(&j->a);
    free(j);
}

static void job_done(pt_job_t *pj, pt_job_status_t st)
{
    job_t *j = (job_t *)pj;
    pt_req_t *req = j->req; /* NULL once the request is gone */
    static const pt_header_kv_t no_store[] = {{"Cache-Control", "no-store"}};
    static const pt_header_kv_t www[] = {{"WWW-Authenticate", "Bearer realm=\"portico-admin\""}};
    if (req != NULL) {
        if (st != PT_JOB_DONE)
            pt_http_problem(req, 503, "busy", "The node is busy; try again shortly.", NULL, 0);
        else if (j->type != NULL)
            pt_http_problem_ext(req, j->status, j->type, j->detail, j->status == 401 ? www : NULL,
                                j->status == 401 ? 1 : 0, j->errors ? "errors" : NULL, j->errors);
        else if (j->sse)
            pt_console_stream(req);
        else {
            pt_header_kv_t hdrs[3];
            size_t nh = 0, k;
            hdrs[nh++] = no_store[0];
            for (k = 0; k < j->nhdrs; k++)
                hdrs[nh++] = j->hdrs[k];
            pt_http_respond(req, j->status, hdrs, nh,
                            j->status == 204 ? NULL
                            : j->ctype       ? j->ctype
                                             : "application/json",
                            j->out.data, j->status == 204 ? 0 : j->out.len);
        }
    }
    job_free(j);
}

static void submit(job_t *j)
{
    pt_worker_t *w = j->req->snap->worker;
    pt_procpool_t *pool = pt_admin_pool != NULL ? pt_admin_pool : w->procpool;
    j->submitted = 1;
    j->job.run = job_run;
    j->job.done = job_done;
    j->job.worker = w;
    if (pool == NULL || pt_procpool_submit(pool, &j->job) != PT_OK) {
        static const pt_header_kv_t retry[] = {{"Retry-After", "1"}};
        pt_http_problem(j->req, 503, "busy", "Every worker is busy; try again shortly.", retry, 1);
        job_free(j);
    }
}

static void link_cleanup(void *data)
{
    link_t *l = data;
    job_t *j = l->job;
    if (j == NULL)
        return;
    j->link = NULL;
    j->req = NULL;
    if (!j->submitted)
        job_free(j);
    else
        atomic_store(&j->abandoned, 1);
}

static void on_body(pt_req_t *req, const char *data, size_t len)
{
    link_t *l = req->hook_data;
    job_t *j = l->job;
    if (j == NULL || j->too_large)
        return;
    if (j->body_len + len > BODY_MAX) {
        j->too_large = 1;
        return;
    }
    if (pt_arena_append(&j->a, &j->body, &j->body_len, data, len) != PT_OK)
        j->too_large = 1;
}

static void on_complete(pt_req_t *req)
{
    link_t *l = req->hook_data;
    if (l->job != NULL)
        submit(l->job);
}

/* src/control/admin-openapi.json, built in (cmake/embed_text.cmake) */
extern const char pt_admin_openapi[];
extern const size_t pt_admin_openapi_len;

void pt_admin_handle(pt_req_t *req)
{
    const pt_str_t *auth = pt_http_header(req, "authorization");
    link_t *l;
    job_t *j;

    int metrics = req->path.len == 8 && memcmp(req->path.p, "/metrics", 8) == 0;

    if (pt_control != NULL && pt_console_static(req))
        return;
    if (pt_control == NULL ||
        (!metrics && (req->path.len < 7 || memcmp(req->path.p, "/admin/", 7) != 0))) {
        pt_http_problem(req, 404, "not-found",
                        "The admin listener serves /admin/ and /metrics only.", NULL, 0);
        return;
    }
    if (metrics && !(req->method_len == 3 && memcmp(req->method, "GET", 3) == 0) &&
        !(req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0)) {
        static const pt_header_kv_t allow[] = {{"Allow", "GET, HEAD"}};
        pt_http_problem(req, 405, "method-not-allowed", "/metrics is read with GET.", allow, 1);
        return;
    }
    if (req->path.len == 19 && memcmp(req->path.p, "/admin/openapi.json", 19) == 0) {
        static const pt_header_kv_t revalidate[] = {{"Cache-Control", "no-cache"}};
        pt_http_respond(req, 200, revalidate, 1, "application/json", pt_admin_openapi,
                        pt_admin_openapi_len);
        return;
    }
    if (req->content_length > (int64_t)BODY_MAX) {
        pt_http_problem(req, 413, "payload-too-large", "A definition is at most 4 MiB.", NULL, 0);
        return;
    }
    j = calloc(1, sizeof(*j));
    l = pt_arena_calloc(pt_http_req_arena(req), sizeof(*l));
    if (j == NULL || l == NULL ||
        pt_arena_cleanup_add(pt_http_req_arena(req), link_cleanup, l) != PT_OK) {
        free(j);
        pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        return;
    }
    pt_arena_init(&j->a, NULL);
    pt_buf_init(&j->out, 0);
    l->job = j;
    j->link = l;
    j->req = req;
    j->method = pt_arena_strndup(&j->a, req->method, req->method_len);
    j->path = pt_arena_strndup(&j->a, req->path.p, req->path.len);
    j->query = pt_arena_strndup(&j->a, req->query.p != NULL ? req->query.p : "", req->query.len);
    j->auth = auth != NULL ? pt_arena_strndup(&j->a, auth->p, auth->len) : NULL;
    {
        const pt_str_t *ck = pt_http_header(req, "cookie"),
                       *cs = pt_http_header(req, "x-csrf-token");
        const pt_listener_rt_t *lrt = pt_http_listener(req);
        j->cookie = ck != NULL ? pt_arena_strndup(&j->a, ck->p, ck->len) : NULL;
        j->csrf = cs != NULL ? pt_arena_strndup(&j->a, cs->p, cs->len) : NULL;
        j->tls = lrt != NULL && lrt->tls;
        j->metrics = metrics;
        j->metrics_open = metrics && !req->snap->snap->config->metrics.require_token;
    }
    if (j->method == NULL || j->path == NULL || j->query == NULL || (auth != NULL && !j->auth)) {
        pt_http_problem(req, 500, "internal-error", "Out of memory.", NULL, 0);
        job_free(j);
        return;
    }
    if (req->chunked || req->content_length > 0) {
        req->hook_data = l;
        req->on_body = on_body;
        req->on_complete = on_complete;
        return;
    }
    submit(j);
}
