/*
 * sqltext.h - the text of SQL steps: finding :name parameters (outside
 * quotes, comments and "::" casts), rewriting them as $k (PostgreSQL) and ?
 * (MariaDB), and expanding the ${order} and ${after} markers of sorted,
 * paged lists. Used at load (service.c) and per execution (engine.c).
 */
#ifndef PT_PROCESS_SQLTEXT_H
#define PT_PROCESS_SQLTEXT_H

#include <stddef.h>

#include "config/config-t.h"
#include "core/arena.h"

/* Calls fn for each :name of s[0..len). Returns 0, or -1 with why filled
 * (an unterminated quote or comment, a positional parameter). */
int pt_sql_scan(const char *s, size_t len, void (*fn)(void *arg, const char *name, size_t n),
                void *arg, char *why, size_t wlen);

/* Fills st->sql_numbered, st->sql_qmark, st->qmark and st->nqmark from
 * st->sql and st->params (in arena a). Returns 0, or -1 with why filled. */
int pt_sql_rewrite(pt_arena_t *a, pt_step_def_t *st, char *why, size_t wlen);

#endif
