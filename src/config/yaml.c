/*
 * yaml.c - YAML document tree from libyaml events (see yaml.h).
 *
 * The event API is streaming: limits (depth, node count) are enforced as the
 * events arrive, so a hostile document is rejected before it costs memory.
 * Children are linked through `next` while their collection is open and turned
 * into an array when it closes.
 */
#include "config/yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define TAG_STR "tag:yaml.org,2002:str"
#define TAG_MAP "tag:yaml.org,2002:map"
#define TAG_SEQ "tag:yaml.org,2002:seq"

typedef struct frame_s {
    pt_ynode_t *node;
    pt_ynode_t *first, *last; /* children so far (keys and values alternate in a mapping) */
    size_t count;
} frame_t;

typedef struct builder_s {
    pt_arena_t *a;
    const char *file;
    pt_config_errors_t *errs;
    frame_t stack[PT_YAML_MAX_DEPTH + 1];
    size_t depth;
    size_t nodes;
    pt_ynode_t *root;
} builder_t;

/* Copies at most 48 bytes of s into out (size >= 200) with non-printable bytes
 * escaped, so that hostile text cannot forge lines in messages. */
static const char *printable(const char *s, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;

    for (i = 0; i < len && o + 8 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 48) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* Line (1-based) of byte offset off in data. */
static unsigned line_of_offset(const char *data, size_t len, size_t off)
{
    unsigned line = 1;
    size_t i;
    for (i = 0; i < off && i < len; i++)
        if (data[i] == '\n')
            line++;
    return line;
}

static pt_ynode_t *node_new(builder_t *b, pt_ynode_kind_t kind, unsigned line)
{
    pt_ynode_t *n;

    if (++b->nodes > PT_YAML_MAX_NODES) {
        pt_config_error(b->errs, b->file, line, NULL, "too many YAML nodes (more than %u)",
                        PT_YAML_MAX_NODES);
        return NULL;
    }
    n = pt_arena_calloc(b->a, sizeof(*n));
    if (n == NULL) {
        pt_config_error(b->errs, b->file, line, NULL, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    return n;
}

/* Links n below the innermost open collection (or makes it the root). */
static int attach(builder_t *b, pt_ynode_t *n)
{
    frame_t *f;

    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    f = &b->stack[b->depth - 1];
    if (f->node->kind == PT_YNODE_MAPPING && f->count % 2 == 0 && n->kind != PT_YNODE_SCALAR) {
        pt_config_error(b->errs, b->file, n->line, NULL, "mapping keys must be strings, not %s",
                        pt_yaml_describe(n));
        return -1;
    }
    if (f->last != NULL)
        f->last->next = n;
    else
        f->first = n;
    f->last = n;
    f->count++;
    return 0;
}

static int key_cmp(const pt_ynode_t *x, const pt_ynode_t *y)
{
    int c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    c = memcmp(x->value, y->value, x->len);
    if (c != 0)
        return c;
    /* Equal keys: document order, so that the later one is reported. */
    return x->line < y->line ? -1 : x->line > y->line;
}

static int pair_ptr_cmp(const void *x, const void *y)
{
    const pt_ypair_t *const *a = x, *const *b = y;
    int c = key_cmp((*a)->key, (*b)->key);
    if (c != 0)
        return c;
    return *a < *b ? -1 : *a > *b;
}

static int dup_report(builder_t *b, const pt_ynode_t *k)
{
    char tmp[200];
    pt_config_error(b->errs, b->file, k->line, NULL, "duplicate key \"%s\"",
                    printable(k->value, k->len, tmp, sizeof(tmp)));
    return -1;
}

/* Rejects duplicate keys: quadratic for small mappings, sorting for large ones
 * (a mapping may have tens of thousands of keys). */
static int check_duplicates(builder_t *b, pt_ynode_t *m)
{
    size_t i, j;
    pt_ypair_t **idx;

    if (m->n < 16) {
        for (i = 1; i < m->n; i++)
            for (j = 0; j < i; j++)
                if (m->pairs[i].key->len == m->pairs[j].key->len &&
                    memcmp(m->pairs[i].key->value, m->pairs[j].key->value, m->pairs[i].key->len) ==
                        0)
                    return dup_report(b, m->pairs[i].key);
        return 0;
    }
    idx = pt_arena_alloc(b->a, m->n * sizeof(*idx));
    if (idx == NULL) {
        pt_config_error(b->errs, b->file, m->line, NULL, "out of memory");
        return -1;
    }
    for (i = 0; i < m->n; i++)
        idx[i] = &m->pairs[i];
    qsort(idx, m->n, sizeof(*idx), pair_ptr_cmp);
    for (i = 1; i < m->n; i++)
        if (idx[i]->key->len == idx[i - 1]->key->len &&
            memcmp(idx[i]->key->value, idx[i - 1]->key->value, idx[i]->key->len) == 0)
            return dup_report(b, idx[i - 1] > idx[i] ? idx[i - 1]->key : idx[i]->key);
    return 0;
}

/* Turns the linked children of the innermost collection into an array. */
static int close_collection(builder_t *b)
{
    frame_t *f = &b->stack[--b->depth];
    pt_ynode_t *n = f->node, *c;
    size_t i = 0;

    if (n->kind == PT_YNODE_MAPPING) {
        n->n = f->count / 2;
        if (n->n) {
            n->pairs = pt_arena_alloc(b->a, n->n * sizeof(*n->pairs));
            if (n->pairs == NULL)
                goto nomem;
        }
        for (c = f->first; c != NULL && c->next != NULL; c = c->next->next, i++) {
            n->pairs[i].key = c;
            n->pairs[i].value = c->next;
        }
        return check_duplicates(b, n);
    }
    n->n = f->count;
    if (n->n) {
        n->items = pt_arena_alloc(b->a, n->n * sizeof(*n->items));
        if (n->items == NULL)
            goto nomem;
    }
    for (c = f->first; c != NULL; c = c->next)
        n->items[i++] = c;
    return 0;

nomem:
    pt_config_error(b->errs, b->file, n->line, NULL, "out of memory");
    return -1;
}

static int check_anchor_tag(builder_t *b, const yaml_event_t *ev, unsigned line, int *force_str)
{
    const char *anchor = NULL, *tag = NULL, *allowed = NULL;
    char tmp[200];

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        anchor = (const char *)ev->data.scalar.anchor;
        tag = (const char *)ev->data.scalar.tag;
        allowed = TAG_STR;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = (const char *)ev->data.sequence_start.anchor;
        tag = (const char *)ev->data.sequence_start.tag;
        allowed = TAG_SEQ;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = (const char *)ev->data.mapping_start.anchor;
        tag = (const char *)ev->data.mapping_start.tag;
        allowed = TAG_MAP;
        break;
    default:
        break;
    }
    if (anchor != NULL) {
        pt_config_error(b->errs, b->file, line, NULL, "aliases and anchors are not allowed");
        return -1;
    }
    if (tag == NULL)
        return 0;
    if (strcmp(tag, allowed) == 0 || (ev->type == YAML_SCALAR_EVENT && strcmp(tag, "!") == 0)) {
        *force_str = ev->type == YAML_SCALAR_EVENT;
        return 0;
    }
    pt_config_error(b->errs, b->file, line, NULL,
                    "tag \"%s\" is not supported (only !!str, !!map and !!seq)",
                    printable(tag, strlen(tag), tmp, sizeof(tmp)));
    return -1;
}

/* Handles one event; returns 1 at the end of the stream, 0 to go on, -1 on error. */
static int on_event(builder_t *b, const yaml_event_t *ev, int *ndocs)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    int force_str = 0;
    pt_ynode_t *n;

    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++*ndocs > 1) {
            pt_config_error(b->errs, b->file, line, NULL,
                            "multiple documents are not allowed in one file");
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        pt_config_error(b->errs, b->file, line, NULL, "aliases and anchors are not allowed");
        return -1;
    case YAML_SCALAR_EVENT:
        if (check_anchor_tag(b, ev, line, &force_str) != 0)
            return -1;
        if ((n = node_new(b, PT_YNODE_SCALAR, line)) == NULL)
            return -1;
        n->len = ev->data.scalar.length;
        n->value = pt_arena_strndup(b->a, (const char *)ev->data.scalar.value, n->len);
        if (n->value == NULL) {
            pt_config_error(b->errs, b->file, line, NULL, "out of memory");
            return -1;
        }
        n->quoted = force_str || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        return attach(b, n);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (check_anchor_tag(b, ev, line, &force_str) != 0)
            return -1;
        if (b->depth >= PT_YAML_MAX_DEPTH) {
            pt_config_error(b->errs, b->file, line, NULL, "nesting deeper than %d levels",
                            PT_YAML_MAX_DEPTH);
            return -1;
        }
        n = node_new(b, ev->type == YAML_MAPPING_START_EVENT ? PT_YNODE_MAPPING : PT_YNODE_SEQUENCE,
                     line);
        if (n == NULL || attach(b, n) != 0)
            return -1;
        b->stack[b->depth].node = n;
        b->stack[b->depth].first = b->stack[b->depth].last = NULL;
        b->stack[b->depth].count = 0;
        b->depth++;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth == 0)
            return -1; /* cannot happen: libyaml balances events */
        return close_collection(b);
    default:
        return 0;
    }
}

pt_ynode_t *pt_yaml_parse(pt_arena_t *a, const char *file, const char *data, size_t len,
                          pt_config_errors_t *errs)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    builder_t b;
    int rc = 0, ndocs = 0;

    if (len > PT_YAML_MAX_SIZE) {
        pt_config_error(errs, file, 0, NULL, "file is larger than %u MiB", PT_YAML_MAX_SIZE >> 20);
        return NULL;
    }
    memset(&b, 0, sizeof(b));
    b.a = a;
    b.file = file;
    b.errs = errs;
    if (!yaml_parser_initialize(&parser)) {
        pt_config_error(errs, file, 0, NULL, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    while (rc == 0) {
        if (!yaml_parser_parse(&parser, &ev)) {
            unsigned line = (unsigned)parser.problem_mark.line + 1;
            if (parser.error == YAML_READER_ERROR)
                line = line_of_offset(data, len, parser.problem_offset);
            if (parser.error == YAML_MEMORY_ERROR)
                pt_config_error(errs, file, line, NULL, "out of memory");
            else
                pt_config_error(errs, file, line, NULL, "invalid YAML: %s%s%s",
                                parser.problem ? parser.problem : "syntax error",
                                parser.context ? " " : "", parser.context ? parser.context : "");
            rc = -1;
            break;
        }
        rc = on_event(&b, &ev, &ndocs);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc < 0)
        return NULL;
    if (b.root == NULL) {
        pt_config_error(errs, file, 1, NULL, "empty document");
        return NULL;
    }
    return b.root;
}

int pt_yaml_read_file(const char *path, char **data, size_t *len, pt_config_errors_t *errs)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd, rc;

    *data = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pt_config_error(errs, path, 0, NULL, "cannot open: %s", strerror(errno));
        return PT_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        pt_config_error(errs, path, 0, NULL, "not a regular file");
        rc = PT_EIO;
        goto fail;
    }
    if ((uint64_t)st.st_size > PT_YAML_MAX_SIZE) {
        pt_config_error(errs, path, 0, NULL, "file is larger than %u MiB", PT_YAML_MAX_SIZE >> 20);
        rc = PT_ELIMIT;
        goto fail;
    }
    /* One byte more than the limit detects a file that grew after fstat. */
    buf = malloc(PT_YAML_MAX_SIZE + 2);
    if (buf == NULL) {
        pt_config_error(errs, path, 0, NULL, "out of memory");
        rc = PT_ENOMEM;
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, PT_YAML_MAX_SIZE + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pt_config_error(errs, path, 0, NULL, "read error: %s", strerror(errno));
            rc = PT_EIO;
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > PT_YAML_MAX_SIZE) {
            pt_config_error(errs, path, 0, NULL, "file is larger than %u MiB",
                            PT_YAML_MAX_SIZE >> 20);
            rc = PT_ELIMIT;
            goto fail;
        }
    }
    buf[got] = '\0';
    close(fd);
    *data = buf;
    *len = got;
    return 0;

fail:
    free(buf);
    close(fd);
    return rc;
}

const pt_ynode_t *pt_yaml_get(const pt_ynode_t *m, const char *key)
{
    size_t i, klen;

    if (m == NULL || m->kind != PT_YNODE_MAPPING)
        return NULL;
    klen = strlen(key);
    for (i = 0; i < m->n; i++)
        if (m->pairs[i].key->len == klen && memcmp(m->pairs[i].key->value, key, klen) == 0)
            return m->pairs[i].value;
    return NULL;
}

int pt_yaml_is_null(const pt_ynode_t *n)
{
    if (n == NULL)
        return 1;
    if (n->kind != PT_YNODE_SCALAR || n->quoted)
        return 0;
    return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
           strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

static int looks_numeric(const char *s, size_t len)
{
    size_t i = 0;
    int digits = 0;

    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (s[i] != '.' && s[i] != 'e' && s[i] != 'E' && s[i] != '-' && s[i] != '+')
            return 0;
    }
    return digits > 0;
}

const char *pt_yaml_describe(const pt_ynode_t *n)
{
    if (n == NULL || pt_yaml_is_null(n))
        return "null";
    if (n->kind == PT_YNODE_MAPPING)
        return "a mapping";
    if (n->kind == PT_YNODE_SEQUENCE)
        return "a list";
    if (!n->quoted) {
        if (strcmp(n->value, "true") == 0 || strcmp(n->value, "false") == 0 ||
            strcmp(n->value, "True") == 0 || strcmp(n->value, "False") == 0 ||
            strcmp(n->value, "TRUE") == 0 || strcmp(n->value, "FALSE") == 0)
            return "a boolean";
        if (looks_numeric(n->value, n->len))
            return "a number";
    }
    return "a string";
}
