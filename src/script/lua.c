/*
 * lua.c - the Lua sandbox of `script` steps (see lua.h).
 */
#include "script/lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define HOOK_EVERY 1000 /* instructions between two hook calls */
#define MAX_DEPTH  64   /* nesting of tables converted either way */

typedef struct sandbox_s {
    size_t used, cap;
    int over_memory;
    uint64_t count, budget, deadline;
    pt_lua_status_t stop; /* why the hook stopped the script */
} sandbox_t;

static const char NULL_KEY = 0; /* registry address of the `null` sentinel */

/* The allocator: refuses to grow past the cap (Lua then raises a memory error). */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sandbox_t *sb = ud;
    size_t old = ptr != NULL ? osize : 0;
    void *p;
    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (nsize > old && sb->used - old + nsize > sb->cap) {
        sb->over_memory = 1;
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p != NULL)
        sb->used = sb->used - old + nsize;
    return p;
}

static void hook(lua_State *L, lua_Debug *ar)
{
    sandbox_t *sb;
    (void)ar;
    lua_getallocf(L, (void **)&sb);
    sb->count += HOOK_EVERY;
    if (sb->budget != 0 && sb->count > sb->budget) {
        sb->stop = PT_LUA_INSTRUCTIONS;
        luaL_error(L, "instruction budget exceeded");
    }
    if (sb->deadline != 0 && uv_hrtime() > sb->deadline) {
        sb->stop = PT_LUA_TIMEOUT;
        luaL_error(L, "execution time exceeded");
    }
}

/* load(text[, name[, mode, env]]): text chunks only (never bytecode). */
static int safe_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* Opens the safe libraries and removes what reaches outside. */
static void open_sandbox(lua_State *L)
{
    static const char *const base_drop[] = {"dofile",         "loadfile", "require",
                                            "collectgarbage", "print",    NULL};
    size_t i;
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 1);
    lua_pop(L, 1);
    for (i = 0; base_drop[i] != NULL; i++) {
        lua_pushnil(L);
        lua_setglobal(L, base_drop[i]);
    }
    lua_pushcfunction(L, safe_load);
    lua_setglobal(L, "load");
    /* string.dump would hand out bytecode; the string metatable keeps the rest */
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    /* os: the clock and dates only */
    lua_newtable(L);
    lua_getglobal(L, LUA_OSLIBNAME);
    lua_getfield(L, -1, "time");
    lua_setfield(L, -3, "time");
    lua_getfield(L, -1, "clock");
    lua_setfield(L, -3, "clock");
    lua_getfield(L, -1, "date");
    lua_setfield(L, -3, "date");
    lua_pop(L, 1);
    lua_setglobal(L, LUA_OSLIBNAME);
    /* the JSON null */
    lua_pushlightuserdata(L, (void *)&NULL_KEY);
    lua_setglobal(L, "null");
}

/* ------------------------------------------------------------------ JSON -> Lua */

static int push_json(lua_State *L, const pt_json_t *v, int depth)
{
    size_t i;
    if (depth > MAX_DEPTH || !lua_checkstack(L, 4))
        return -1;
    switch (v->type) {
    case PT_JSON_NULL:
        lua_pushlightuserdata(L, (void *)&NULL_KEY);
        return 0;
    case PT_JSON_FALSE:
    case PT_JSON_TRUE:
        lua_pushboolean(L, v->type == PT_JSON_TRUE);
        return 0;
    case PT_JSON_NUMBER: {
        int64_t n;
        if (pt_json_to_int64(v, &n) == PT_OK && strpbrk(v->u.str.p, ".eE") == NULL)
            lua_pushinteger(L, (lua_Integer)n);
        else
            lua_pushnumber(L, pt_json_to_double(v));
        return 0;
    }
    case PT_JSON_STRING:
        lua_pushlstring(L, v->u.str.p, v->u.str.len);
        return 0;
    case PT_JSON_ARRAY:
        lua_createtable(L, (int)v->u.arr.n, 0);
        for (i = 0; i < v->u.arr.n; i++) {
            if (push_json(L, v->u.arr.items[i], depth + 1) != 0)
                return -1;
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return 0;
    case PT_JSON_OBJECT:
        lua_createtable(L, 0, (int)v->u.obj.n);
        for (i = 0; i < v->u.obj.n; i++) {
            lua_pushlstring(L, v->u.obj.members[i].key, v->u.obj.members[i].key_len);
            if (push_json(L, v->u.obj.members[i].value, depth + 1) != 0)
                return -1;
            lua_rawset(L, -3);
        }
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------------ Lua -> JSON */

static pt_json_t *to_json(lua_State *L, int idx, pt_arena_t *a, int depth, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "the result is nested more than %d levels", MAX_DEPTH);
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return pt_json_null(a);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == (void *)&NULL_KEY)
            return pt_json_null(a);
        break;
    case LUA_TBOOLEAN:
        return pt_json_bool(a, lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return pt_json_int(a, (int64_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx))) {
            snprintf(err, errlen, "the result holds a number that is not finite");
            return NULL;
        }
        return pt_json_double(a, lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return pt_json_string(a, s, n);
    }
    case LUA_TTABLE: {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0, k;
        pt_json_t *out;
        if (!lua_checkstack(L, 4))
            break;
        /* a sequence 1..n with nothing else is an array */
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            count++;
            lua_pop(L, 1);
        }
        if (n > 0 && count == n) {
            if ((out = pt_json_array(a)) == NULL)
                return NULL;
            for (k = 1; k <= n; k++) {
                pt_json_t *v;
                lua_rawgeti(L, idx, k);
                v = to_json(L, -1, a, depth + 1, err, errlen);
                lua_pop(L, 1);
                if (v == NULL || pt_json_array_add(a, out, v) != PT_OK)
                    return NULL;
            }
            return out;
        }
        if ((out = pt_json_object(a)) == NULL)
            return NULL;
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            size_t kl;
            const char *key;
            pt_json_t *v;
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 2);
                snprintf(err, errlen,
                         "the result has a table with non-string keys that is not a sequence");
                return NULL;
            }
            key = lua_tolstring(L, -2, &kl);
            v = to_json(L, -1, a, depth + 1, err, errlen);
            if (v == NULL || memchr(key, '\0', kl) != NULL ||
                pt_json_object_set(a, out, key, kl, v) != PT_OK) {
                lua_pop(L, 2);
                if (err[0] == '\0')
                    snprintf(err, errlen, "the result cannot be JSON");
                return NULL;
            }
            lua_pop(L, 1);
        }
        return out;
    }
    default:
        break;
    }
    snprintf(err, errlen, "the result holds a %s, which JSON cannot carry", luaL_typename(L, idx));
    return NULL;
}

/* ------------------------------------------------------------------ API */

int pt_lua_check(const char *name, const char *src, size_t len, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    int rc = 0;
    if (L == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (luaL_loadbufferx(L, src, len, name, "t") != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        rc = -1;
    }
    lua_close(L);
    return rc;
}

pt_lua_status_t pt_lua_run(const char *name, const char *src, size_t len, const pt_json_t *ctx,
                           const pt_lua_limits_t *limits, pt_arena_t *a, pt_json_t **result,
                           char *err, size_t errlen)
{
    sandbox_t sb;
    lua_State *L;
    pt_lua_status_t st = PT_LUA_OK;
    int rc;

    memset(&sb, 0, sizeof(sb));
    sb.cap = limits->memory;
    sb.budget = limits->instructions;
    sb.deadline = limits->deadline;
    err[0] = '\0';
    *result = NULL;
    L = lua_newstate(sb_alloc, &sb);
    if (L == NULL) {
        snprintf(err, errlen, "the script's memory cap is too small to start");
        return PT_LUA_MEMORY;
    }
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
    open_sandbox(L);
    if (push_json(L, ctx, 0) != 0) {
        snprintf(err, errlen, "the context is too deep or too large for the script");
        st = sb.over_memory ? PT_LUA_MEMORY : PT_LUA_ERROR;
        goto out;
    }
    lua_setglobal(L, "ctx");
    rc = luaL_loadbufferx(L, src, len, name, "t");
    if (rc == LUA_OK)
        rc = lua_pcall(L, 0, 1, 0);
    if (rc != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", m != NULL ? m : "error object is not a string");
        if (sb.stop != PT_LUA_OK)
            st = sb.stop;
        else if (rc == LUA_ERRMEM || sb.over_memory)
            st = PT_LUA_MEMORY;
        else
            st = PT_LUA_ERROR;
        goto out;
    }
    *result = to_json(L, -1, a, 0, err, errlen);
    if (*result == NULL)
        st = PT_LUA_RESULT;
out:
    lua_close(L);
    return st;
}
