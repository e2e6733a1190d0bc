/*
 * sqltext.c - the text of SQL steps (see sqltext.h).
 */
#include "process/sqltext.h"

#include <stdio.h>
#include <string.h>

#include "core/buf.h"

/* Finds the :name parameters of statement s (outside quotes, comments and
 * PostgreSQL "::" casts). Calls fn for each occurrence. Returns 0, or -1
 * with why filled (an unterminated quote or comment). */
int pt_sql_scan(const char *s, size_t len, void (*fn)(void *arg, const char *name, size_t n),
                void *arg, char *why, size_t wlen)
{
    size_t i = 0;
    while (i < len) {
        char ch = s[i];
        if (ch == '\'' || ch == '"' || ch == '`') {
            size_t j = i + 1;
            for (;;) {
                if (j >= len) {
                    snprintf(why, wlen, "unterminated %c quote at byte %zu", ch, i + 1);
                    return -1;
                }
                if (s[j] == ch) {
                    if (j + 1 < len && s[j + 1] == ch) { /* doubled: an escaped quote */
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
            i = j + 1;
        } else if (ch == '-' && i + 1 < len && s[i + 1] == '-') {
            while (i < len && s[i] != '\n')
                i++;
        } else if (ch == '/' && i + 1 < len && s[i + 1] == '*') {
            const char *e = NULL;
            size_t j;
            for (j = i + 2; j + 1 < len; j++)
                if (s[j] == '*' && s[j + 1] == '/') {
                    e = s + j;
                    break;
                }
            if (e == NULL) {
                snprintf(why, wlen, "unterminated /* comment at byte %zu", i + 1);
                return -1;
            }
            i = (size_t)(e - s) + 2;
        } else if (ch == ':' && i + 1 < len && s[i + 1] == ':') {
            i += 2; /* a cast */
        } else if (ch == ':' && i + 1 < len &&
                   ((s[i + 1] >= 'a' && s[i + 1] <= 'z') || (s[i + 1] >= 'A' && s[i + 1] <= 'Z') ||
                    s[i + 1] == '_')) {
            size_t j = i + 1;
            while (j < len && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                               (s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
                j++;
            fn(arg, s + i + 1, j - i - 1);
            i = j;
        } else if (ch == '?' || ch == '$') {
            if (ch == '?' || (i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9')) {
                snprintf(why, wlen,
                         "positional parameter at byte %zu: use named parameters (:name) bound "
                         "through params",
                         i + 1);
                return -1;
            }
            i++;
        } else {
            i++;
        }
    }
    return 0;
}

/* Rewriting a statement's :name parameters into $k and ? placeholders. */
typedef struct rewrite_s {
    const char *sql;
    const pt_step_def_t *st;
    pt_buf_t numbered, qmark;
    size_t done; /* bytes of sql copied */
    size_t order[1024];
    size_t norder;
    int overflow;
} rewrite_t;

static void rewrite_param(void *arg, const char *name, size_t n)
{
    rewrite_t *rw = arg;
    size_t at = (size_t)(name - 1 - rw->sql), k;
    for (k = 0; k < rw->st->nparams; k++)
        if (strlen(rw->st->params[k].name) == n && memcmp(rw->st->params[k].name, name, n) == 0)
            break;
    pt_buf_append(&rw->numbered, rw->sql + rw->done, at - rw->done);
    pt_buf_append(&rw->qmark, rw->sql + rw->done, at - rw->done);
    pt_buf_printf(&rw->numbered, "$%zu", k + 1);
    pt_buf_append_char(&rw->qmark, '?');
    if (rw->norder < PT_ARRAY_SIZE(rw->order))
        rw->order[rw->norder++] = k;
    else
        rw->overflow = 1;
    rw->done = at + 1 + n;
}

int pt_sql_rewrite(pt_arena_t *a, pt_step_def_t *st, char *why, size_t wlen)
{
    rewrite_t rw;
    size_t len = strlen(st->sql);
    int rc = 0;

    memset(&rw, 0, sizeof(rw));
    rw.sql = st->sql;
    rw.st = st;
    pt_buf_init(&rw.numbered, 0);
    pt_buf_init(&rw.qmark, 0);
    if (pt_sql_scan(st->sql, len, rewrite_param, &rw, why, wlen) != 0) {
        rc = -1;
    } else if (rw.overflow) {
        snprintf(why, wlen, "more than %zu parameter uses", PT_ARRAY_SIZE(rw.order));
        rc = -1;
    } else {
        pt_buf_append(&rw.numbered, st->sql + rw.done, len - rw.done);
        pt_buf_append(&rw.qmark, st->sql + rw.done, len - rw.done);
        st->sql_numbered =
            pt_arena_strndup(a, rw.numbered.data ? rw.numbered.data : "", rw.numbered.len);
        st->sql_qmark = pt_arena_strndup(a, rw.qmark.data ? rw.qmark.data : "", rw.qmark.len);
        st->qmark = pt_arena_alloc(a, sizeof(size_t) * (rw.norder ? rw.norder : 1));
        if (st->sql_numbered == NULL || st->sql_qmark == NULL || st->qmark == NULL) {
            snprintf(why, wlen, "out of memory");
            rc = -1;
        } else {
            memcpy(st->qmark, rw.order, sizeof(size_t) * rw.norder);
            st->nqmark = rw.norder;
        }
    }
    pt_buf_free(&rw.numbered);
    pt_buf_free(&rw.qmark);
    return rc;
}
