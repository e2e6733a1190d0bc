/*
 * lua.h - the `script` step of processes: Lua 5.4 in a sandbox (issue 4).
 *
 * Each execution gets a fresh Lua state with only the safe parts of the
 * standard library (base without dofile/loadfile/require and with a
 * text-only load, string without dump, table, math, utf8, and os.time,
 * os.clock, os.date), a memory cap enforced by the allocator and an
 * instruction budget enforced by a count hook (which also watches the
 * execution's deadline). The context is given as the global `ctx` (JSON
 * objects and arrays as tables, null as the sentinel `null`); the chunk's
 * return value becomes the step's result.
 */
#ifndef PT_SCRIPT_LUA_H
#define PT_SCRIPT_LUA_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/json.h"

/* Checks that src compiles (at configuration load). Returns 0, or -1 with
 * the message ("name:3: unexpected symbol near 'x'") in err. */
int pt_lua_check(const char *name, const char *src, size_t len, char *err, size_t errlen);

typedef struct pt_lua_limits_s {
    size_t memory;         /* bytes the state may hold */
    uint64_t instructions; /* VM instructions the chunk may run */
    uint64_t deadline;     /* uv_hrtime() nanoseconds; 0 = none */
} pt_lua_limits_t;

typedef enum pt_lua_status_e {
    PT_LUA_OK = 0,
    PT_LUA_ERROR,        /* the script raised an error (message in err) */
    PT_LUA_MEMORY,       /* over its memory cap */
    PT_LUA_INSTRUCTIONS, /* over its instruction budget */
    PT_LUA_TIMEOUT,      /* the execution's deadline passed */
    PT_LUA_RESULT        /* the returned value cannot be JSON (message in err) */
} pt_lua_status_t;

/* Runs src with ctx as the global `ctx`; the returned value (converted to
 * JSON in arena a) in *result. */
pt_lua_status_t pt_lua_run(const char *name, const char *src, size_t len, const pt_json_t *ctx,
                           const pt_lua_limits_t *limits, pt_arena_t *a, pt_json_t **result,
                           char *err, size_t errlen);

#endif
