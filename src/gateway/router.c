/*
 * router.c - the immutable route table of a snapshot (see router.h).
 *
 * Base paths live in an open-addressing hash table. A request path is scanned
 * once: at each segment boundary (up to the longest base path) the prefix is
 * looked up, and the last hit is the longest matching base path; prefixes are
 * only taken at boundaries, so "/api" matches "/api" and "/api/x" but never
 * "/apix".
 *
 * Below its base path, each API has a segment trie: a node has its static
 * children in an array sorted by bytes (binary search), at most one parameter
 * child and, when a template ends there, a leaf with the routes of that
 * template sorted by method. Matching is a depth-first walk that tries the
 * static child before the parameter child and backtracks when the static
 * branch fails deeper; each trie node is visited at most once, so a match
 * costs O(path length + trie nodes on the way) and never allocates.
 *
 * The trie is built from the routes sorted segment by segment (parameters
 * before static text, then method), so static children are appended in order
 * and routes with the same template and method end up next to each other: a
 * duplicate is the previous entry of the same leaf.
 */
#include "gateway/router.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMPLATE_MAX   1024
#define BASE_PATH_MAX  1024
#define PARAM_NAME_MAX 64

typedef struct rnode_s rnode_t;

typedef struct rentry_s {
    const char *method; /* "*" for any */
    size_t mlen;
    const pt_route_def_t *route;
    pt_str_t *names; /* parameter names, in path order (point into route->path) */
} rentry_t;

typedef struct rleaf_s {
    rentry_t *entries; /* sorted by method (bytes) */
    size_t n, cap;
    const rentry_t *get, *head, *any;
    const char *allow;
    struct rleaf_s *next; /* all leaves, for the final pass of the build */
} rleaf_t;

typedef struct rchild_s {
    const char *seg;
    size_t len;
    rnode_t *node;
} rchild_t;

struct rnode_s {
    rchild_t *statics; /* sorted by bytes */
    size_t nstatic, cap;
    rnode_t *param;
    rleaf_t *leaf;
};

typedef struct rapi_s {
    const pt_api_def_t *api;
    const char *base;
    size_t len;
    uint64_t hash;
    rnode_t *root;
} rapi_t;

struct pt_router_s {
    rapi_t **table; /* open addressing, NULL = empty */
    size_t mask;
    size_t max_base;  /* longest base path */
    rapi_t *root_api; /* the API with base path "/" (a catch-all), or NULL */
};

typedef struct seg_s {
    const char *p;
    size_t len;
    int param; /* "{name}": p/len is the name */
} seg_t;

/* ------------------------------------------------------------ templates */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar minus '%' (checked by the caller with its two hex digits). */
static int is_pchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static const char *show_char(unsigned char c, char *out)
{
    if (c > 0x20 && c < 0x7f)
        snprintf(out, 8, "'%c'", c);
    else
        snprintf(out, 8, "0x%02x", c);
    return out;
}

/* Reads the segment of t starting at *pos (which points at a '/'); advances
 * *pos to the next '/' or the end. */
static void next_seg(const char *t, size_t *pos, seg_t *s)
{
    size_t i = *pos + 1, start = i;
    while (t[i] != '\0' && t[i] != '/')
        i++;
    s->p = t + start;
    s->len = i - start;
    s->param = s->len >= 2 && t[start] == '{';
    if (s->param) {
        s->p++;
        s->len -= 2;
    }
    *pos = i;
}

int pt_route_template_check(const char *tmpl, char *err, size_t errlen)
{
    seg_t names[PT_ROUTE_MAX_PARAMS];
    size_t len, pos = 0, i, k, nparams = 0;
    char ch[8];

    if (tmpl == NULL || tmpl[0] != '/') {
        set_err(err, errlen, "must start with '/'");
        return PT_EINVAL;
    }
    len = strlen(tmpl);
    if (len > TEMPLATE_MAX) {
        set_err(err, errlen, "longer than %d characters", TEMPLATE_MAX);
        return PT_EINVAL;
    }
    if (len == 1)
        return 0;
    if (tmpl[len - 1] == '/') {
        set_err(err, errlen, "must not end with '/' (a trailing slash is significant)");
        return PT_EINVAL;
    }
    while (pos < len) {
        size_t start = pos + 1;
        seg_t s;
        next_seg(tmpl, &pos, &s);
        if (pos == start) {
            set_err(err, errlen, "empty segment (\"//\") at offset %zu", start);
            return PT_EINVAL;
        }
        if (tmpl[start] == '{') {
            if (tmpl[pos - 1] != '}' || pos - start < 3) {
                set_err(err, errlen,
                        "a parameter must be a whole segment \"{name}\" (at offset %zu)", start);
                return PT_EINVAL;
            }
            for (i = 0; i < s.len; i++) {
                unsigned char c = (unsigned char)s.p[i];
                int ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (i > 0 && c >= '0' && c <= '9');
                if (!ok) {
                    set_err(err, errlen,
                            "invalid parameter name at offset %zu: expected "
                            "[A-Za-z_][A-Za-z0-9_]*, found %s",
                            start + 1 + i, show_char(c, ch));
                    return PT_EINVAL;
                }
            }
            if (s.len > PARAM_NAME_MAX) {
                set_err(err, errlen, "parameter name longer than %d characters", PARAM_NAME_MAX);
                return PT_EINVAL;
            }
            for (k = 0; k < nparams; k++)
                if (names[k].len == s.len && memcmp(names[k].p, s.p, s.len) == 0) {
                    set_err(err, errlen, "parameter {%.*s} appears twice", (int)s.len, s.p);
                    return PT_EINVAL;
                }
            if (nparams == PT_ROUTE_MAX_PARAMS) {
                set_err(err, errlen, "more than %d parameters", PT_ROUTE_MAX_PARAMS);
                return PT_EINVAL;
            }
            names[nparams++] = s;
            continue;
        }
        if ((s.len == 1 && s.p[0] == '.') || (s.len == 2 && s.p[0] == '.' && s.p[1] == '.')) {
            set_err(err, errlen, "\".\" and \"..\" segments are not allowed");
            return PT_EINVAL;
        }
        for (i = 0; i < s.len; i++) {
            unsigned char c = (unsigned char)s.p[i];
            if (c == '%') {
                if (i + 2 >= s.len || !is_hex((unsigned char)s.p[i + 1]) ||
                    !is_hex((unsigned char)s.p[i + 2])) {
                    set_err(err, errlen, "'%%' must be followed by two hex digits (offset %zu)",
                            start + i);
                    return PT_EINVAL;
                }
                i += 2;
                continue;
            }
            if (c == '{' || c == '}') {
                set_err(err, errlen,
                        "'{' and '}' are only allowed around a whole segment \"{name}\" "
                        "(offset %zu)",
                        start + i);
                return PT_EINVAL;
            }
            if (!is_pchar(c)) {
                set_err(err, errlen, "invalid character %s at offset %zu", show_char(c, ch),
                        start + i);
                return PT_EINVAL;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------ build */

static uint64_t fnv_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * 1099511628211ull;
}

#define FNV_INIT 14695981039346656037ull

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = FNV_INIT;
    size_t i;
    for (i = 0; i < n; i++)
        h = fnv_step(h, (unsigned char)p[i]);
    return h;
}

static int seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, PT_MIN(alen, blen));
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Orders routes segment by segment (a parameter sorts before static text,
 * parameter names are ignored), shorter templates first, then by method. */
static int route_cmp(const void *x, const void *y)
{
    const pt_route_def_t *a = *(const pt_route_def_t *const *)x;
    const pt_route_def_t *b = *(const pt_route_def_t *const *)y;
    size_t pa = 0, pb = 0, la = strlen(a->path), lb = strlen(b->path);
    seg_t sa, sb;
    int c;

    /* "/" has no segments. */
    if (la == 1)
        la = 0;
    if (lb == 1)
        lb = 0;
    for (;;) {
        if (pa >= la || pb >= lb) {
            if (pa < la || pb < lb)
                return pa < la ? 1 : -1;
            return strcmp(a->method, b->method);
        }
        next_seg(a->path, &pa, &sa);
        next_seg(b->path, &pb, &sb);
        if (sa.param != sb.param)
            return sa.param ? -1 : 1;
        if (!sa.param && (c = seg_cmp(sa.p, sa.len, sb.p, sb.len)) != 0)
            return c;
    }
}

static void *grow(pt_arena_t *a, void *old, size_t *cap, size_t n, size_t size)
{
    size_t ncap;
    void *p;
    if (n < *cap)
        return old;
    ncap = *cap ? *cap * 2 : 4;
    p = pt_arena_realloc(a, old, *cap * size, ncap * size);
    if (p != NULL)
        *cap = ncap;
    return p;
}

static int insert_route(pt_arena_t *a, rnode_t *root, const pt_api_def_t *api,
                        const pt_route_def_t *r, rleaf_t **leaves, char *err, size_t errlen)
{
    pt_str_t names[PT_ROUTE_MAX_PARAMS];
    size_t pos = 0, len = strlen(r->path), np = 0;
    rnode_t *n = root;
    rleaf_t *leaf;
    rentry_t *e;
    seg_t s;

    if (len == 1)
        len = 0;
    while (pos < len) {
        next_seg(r->path, &pos, &s);
        if (s.param) {
            names[np].p = s.p;
            names[np++].len = s.len;
            if (n->param == NULL && (n->param = pt_arena_calloc(a, sizeof(rnode_t))) == NULL)
                goto nomem;
            n = n->param;
            continue;
        }
        if (n->nstatic == 0 ||
            seg_cmp(n->statics[n->nstatic - 1].seg, n->statics[n->nstatic - 1].len, s.p, s.len)) {
            rchild_t *ch = grow(a, n->statics, &n->cap, n->nstatic, sizeof(rchild_t));
            if (ch == NULL)
                goto nomem;
            n->statics = ch;
            ch[n->nstatic].seg = s.p;
            ch[n->nstatic].len = s.len;
            if ((ch[n->nstatic].node = pt_arena_calloc(a, sizeof(rnode_t))) == NULL)
                goto nomem;
            n->nstatic++;
        }
        n = n->statics[n->nstatic - 1].node;
    }
    if ((leaf = n->leaf) == NULL) {
        if ((leaf = n->leaf = pt_arena_calloc(a, sizeof(rleaf_t))) == NULL)
            goto nomem;
        leaf->next = *leaves;
        *leaves = leaf;
    }
    if (leaf->n > 0 && strcmp(leaf->entries[leaf->n - 1].method, r->method) == 0) {
        const pt_route_def_t *prev = leaf->entries[leaf->n - 1].route;
        set_err(err, errlen,
                "%s:%u: API \"%s\": duplicate route %s %s (same method and template as %s %s "
                "at line %u)",
                api->file ? api->file : "-", r->line, api->name ? api->name : "", r->method,
                r->path, prev->method, prev->path, prev->line);
        return PT_EINVAL;
    }
    e = grow(a, leaf->entries, &leaf->cap, leaf->n, sizeof(rentry_t));
    if (e == NULL)
        goto nomem;
    leaf->entries = e;
    e = &e[leaf->n++];
    e->method = r->method;
    e->mlen = strlen(r->method);
    e->route = r;
    e->names = NULL;
    if (np > 0) {
        if ((e->names = pt_arena_alloc(a, np * sizeof(pt_str_t))) == NULL)
            goto nomem;
        memcpy(e->names, names, np * sizeof(pt_str_t));
    }
    return 0;

nomem:
    set_err(err, errlen, "out of memory building the route table");
    return PT_ENOMEM;
}

static int str_ptr_cmp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Sets the shortcuts and the Allow list of a leaf. */
static int finish_leaf(pt_arena_t *a, rleaf_t *leaf)
{
    const char **methods;
    size_t i, n = 0, total = 0;
    char *allow, *o;

    methods = pt_arena_alloc(a, (leaf->n + 1) * sizeof(*methods));
    if (methods == NULL)
        return PT_ENOMEM;
    for (i = 0; i < leaf->n; i++) {
        const rentry_t *e = &leaf->entries[i];
        if (strcmp(e->method, "*") == 0) {
            leaf->any = e;
            continue;
        }
        if (strcmp(e->method, "GET") == 0)
            leaf->get = e;
        else if (strcmp(e->method, "HEAD") == 0)
            leaf->head = e;
        methods[n++] = e->method;
    }
    if (leaf->get != NULL && leaf->head == NULL)
        methods[n++] = "HEAD";
    qsort(methods, n, sizeof(*methods), str_ptr_cmp);
    for (i = 0; i < n; i++)
        total += strlen(methods[i]) + 2;
    if ((allow = o = pt_arena_alloc(a, total + 1)) == NULL)
        return PT_ENOMEM;
    for (i = 0; i < n; i++) {
        size_t l = strlen(methods[i]);
        if (i > 0) {
            memcpy(o, ", ", 2);
            o += 2;
        }
        memcpy(o, methods[i], l);
        o += l;
    }
    *o = '\0';
    leaf->allow = allow;
    return 0;
}

static int check_base(const pt_api_def_t *api, char *err, size_t errlen)
{
    const char *b = api->base_path;
    size_t len = b ? strlen(b) : 0;

    if (len == 1 && b[0] == '/')
        return 0; /* the catch-all base path */
    if (len < 2 || b[0] != '/' || b[len - 1] == '/' || len > BASE_PATH_MAX) {
        set_err(err, errlen,
                "%s: API \"%s\": base path \"%.64s\" must start with '/', not end with '/' and "
                "have at most %d characters",
                api->file ? api->file : "-", api->name ? api->name : "", b ? b : "", BASE_PATH_MAX);
        return PT_EINVAL;
    }
    return 0;
}

pt_router_t *pt_router_build(pt_arena_t *a, const pt_api_def_t *apis, size_t n, char *err,
                             size_t errlen)
{
    const pt_route_def_t **sorted = NULL;
    pt_router_t *r;
    rleaf_t *leaves = NULL, *l;
    size_t i, j, size = 8, maxroutes = 0;
    char why[256];

    if ((r = pt_arena_calloc(a, sizeof(*r))) == NULL)
        goto nomem;
    while (size < 2 * n)
        size *= 2;
    if ((r->table = pt_arena_calloc(a, size * sizeof(*r->table))) == NULL)
        goto nomem;
    r->mask = size - 1;
    for (i = 0; i < n; i++)
        maxroutes = PT_MAX(maxroutes, apis[i].nroutes);
    /* Scratch index for sorting; from malloc so that it does not stay in the arena. */
    if (maxroutes > 0 && (sorted = malloc(maxroutes * sizeof(*sorted))) == NULL)
        goto nomem;

    for (i = 0; i < n; i++) {
        const pt_api_def_t *api = &apis[i];
        rapi_t *ra;
        size_t slot;

        if (check_base(api, err, errlen) != 0)
            goto fail;
        if ((ra = pt_arena_calloc(a, sizeof(*ra))) == NULL ||
            (ra->root = pt_arena_calloc(a, sizeof(rnode_t))) == NULL)
            goto nomem;
        ra->api = api;
        ra->base = api->base_path;
        ra->len = strlen(api->base_path);
        if (ra->len == 1) {
            /* "/": matched when no other base path is a prefix; relative
             * paths keep their leading '/' */
            if (r->root_api != NULL) {
                set_err(err, errlen,
                        "%s: API \"%s\": base path / is already used by API \"%s\" (%s)",
                        api->file ? api->file : "-", api->name ? api->name : "",
                        r->root_api->api->name ? r->root_api->api->name : "",
                        r->root_api->api->file ? r->root_api->api->file : "-");
                goto fail;
            }
            ra->len = 0;
            r->root_api = ra;
            goto routes;
        }
        ra->hash = fnv(ra->base, ra->len);
        for (slot = ra->hash & r->mask; r->table[slot] != NULL; slot = (slot + 1) & r->mask) {
            const rapi_t *o = r->table[slot];
            if (o->len == ra->len && memcmp(o->base, ra->base, ra->len) == 0) {
                set_err(err, errlen,
                        "%s: API \"%s\": base path %s is already used by API \"%s\" (%s)",
                        api->file ? api->file : "-", api->name ? api->name : "", ra->base,
                        o->api->name ? o->api->name : "", o->api->file ? o->api->file : "-");
                goto fail;
            }
        }
        r->table[slot] = ra;
        r->max_base = PT_MAX(r->max_base, ra->len);
    routes:
        for (j = 0; j < api->nroutes; j++) {
            const pt_route_def_t *rt = &api->routes[j];
            if (rt->method == NULL || rt->method[0] == '\0' ||
                pt_route_template_check(rt->path, why, sizeof(why)) != 0) {
                set_err(err, errlen, "%s:%u: API \"%s\": route path \"%.64s\": %s",
                        api->file ? api->file : "-", rt->line, api->name ? api->name : "",
                        rt->path ? rt->path : "", rt->method ? why : "no method");
                goto fail;
            }
            sorted[j] = rt;
        }
        if (api->nroutes > 1)
            qsort(sorted, api->nroutes, sizeof(*sorted), route_cmp);
        for (j = 0; j < api->nroutes; j++)
            if (!sorted[j]->alt_member && /* reached through another route's alt */
                insert_route(a, ra->root, api, sorted[j], &leaves, err, errlen) != 0)
                goto fail;
    }
    for (l = leaves; l != NULL; l = l->next)
        if (finish_leaf(a, l) != 0)
            goto nomem;
    free(sorted);
    return r;

nomem:
    set_err(err, errlen, "out of memory building the route table");
fail:
    free(sorted);
    return NULL;
}

/* ------------------------------------------------------------ match */

static const rapi_t *find_api(const pt_router_t *r, const char *path, size_t len)
{
    const rapi_t *best = NULL;
    uint64_t h = FNV_INIT;
    size_t i;

    if (len == 0 || path[0] != '/')
        return NULL;
    h = fnv_step(h, '/');
    for (i = 1; i <= len && i <= r->max_base; i++) {
        if (i == len || path[i] == '/') {
            size_t slot;
            for (slot = h & r->mask; r->table[slot] != NULL; slot = (slot + 1) & r->mask) {
                const rapi_t *ra = r->table[slot];
                if (ra->hash == h && ra->len == i && memcmp(ra->base, path, i) == 0) {
                    best = ra;
                    break;
                }
            }
            if (i == len)
                break;
        }
        h = fnv_step(h, (unsigned char)path[i]);
    }
    return best != NULL ? best : r->root_api;
}

static const rnode_t *find_static(const rnode_t *n, const char *seg, size_t len)
{
    size_t lo = 0, hi = n->nstatic;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(n->statics[mid].seg, n->statics[mid].len, seg, len);
        if (c == 0)
            return n->statics[mid].node;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* p is at a '/' or at end. Records parameter values in vals[np..]; on success
 * returns the leaf and sets *nparams. */
static const rleaf_t *walk(const rnode_t *n, const char *p, const char *end, pt_str_t *vals,
                           unsigned np, unsigned *nparams)
{
    const char *seg, *q;
    const rnode_t *child;
    const rleaf_t *leaf;

    if (p == end) {
        *nparams = np;
        return n->leaf;
    }
    seg = p + 1;
    for (q = seg; q < end && *q != '/'; q++)
        ;
    if (n->nstatic > 0 && (child = find_static(n, seg, (size_t)(q - seg))) != NULL &&
        (leaf = walk(child, q, end, vals, np, nparams)) != NULL)
        return leaf;
    if (n->param != NULL && q > seg && np < PT_ROUTE_MAX_PARAMS) {
        vals[np].p = seg;
        vals[np].len = (size_t)(q - seg);
        return walk(n->param, q, end, vals, np + 1, nparams);
    }
    return NULL;
}

static const rentry_t *find_method(const rleaf_t *leaf, const char *m, size_t len)
{
    size_t lo = 0, hi = leaf->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rentry_t *e = &leaf->entries[mid];
        int c = memcmp(e->method, m, PT_MIN(e->mlen, len));
        if (c == 0)
            c = e->mlen < len ? -1 : e->mlen > len;
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

pt_route_result_t pt_router_match(const pt_router_t *r, const char *method, size_t method_len,
                                  const char *path, size_t path_len, pt_route_match_t *m)
{
    pt_str_t vals[PT_ROUTE_MAX_PARAMS];
    const rapi_t *ra;
    const rleaf_t *leaf;
    const rentry_t *e;
    const char *rel, *end = path + path_len;
    unsigned np = 0, i;

    m->api = NULL;
    m->route = NULL;
    m->nparams = 0;
    m->allow = NULL;
    if (r == NULL || (ra = find_api(r, path, path_len)) == NULL)
        return PT_ROUTE_NOT_FOUND;
    m->api = ra->api;
    rel = path + ra->len;
    /* The base path itself and the base path with a '/' are the root "/". */
    if (end - rel == 1)
        rel = end;
    leaf = walk(ra->root, rel, end, vals, 0, &np);
    if (leaf == NULL || leaf->n == 0)
        return PT_ROUTE_NOT_FOUND;
    e = find_method(leaf, method, method_len);
    if (e == NULL && method_len == 4 && memcmp(method, "HEAD", 4) == 0)
        e = leaf->get;
    if (e == NULL)
        e = leaf->any;
    if (e == NULL) {
        m->allow = leaf->allow;
        return PT_ROUTE_METHOD_NOT_ALLOWED;
    }
    m->route = e->route;
    m->nparams = np;
    for (i = 0; i < np; i++) {
        m->params[i].name = e->names[i];
        m->params[i].value = vals[i];
    }
    return PT_ROUTE_FOUND;
}
