/*
 * Unit tests of src/process/expr.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "process/expr.h"

static const char CONTEXT[] =
    "{\"method\":\"GET\",\"path\":\"/customers/42\","
    "\"query\":{\"limit\":\"10\",\"q\":\" Hello World \"},"
    "\"header\":{\"x-api-key\":\"k1\",\"content-type\":\"application/json\"},"
    "\"body\":{\"name\":\"Ada\",\"age\":36,\"tags\":[\"a\",\"b\",\"c\"],"
    "\"items\":[{\"id\":1,\"price\":2.5},{\"id\":2,\"price\":10}],"
    "\"key with space\":\"sp\",\"nested\":{\"deep\":{\"x\":true}},"
    "\"big\":9223372036854775807,\"huge\":123456789012345678901234567890,"
    "\"dec\":\"12.50\",\"zero\":0,\"empty\":\"\",\"uni\":\"h\\u00e9llo w\\u00f6rld\","
    "\"when\":\"2024-02-29T23:30:00+01:00\"},"
    "\"user\":{\"sub\":\"u1\",\"roles\":[\"admin\",\"dev\"]},"
    "\"vars\":{\"f\":false,\"t\":true,\"s\":\"a\",\"n\":null,\"one\":1},"
    "\"steps\":{}}";

static const char *const ROOTS[] = {"method", "path",  "user", "query", "header", "body",
                                    "vars",   "steps", "item", "index", NULL};

static pt_arena_t arena;
static pt_json_t *ctx;
static char out[8192];

static int setup(void **state)
{
    pt_json_error_t jerr;
    pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;

    (void)state;
    pt_arena_init(&arena, NULL);
    ctx = pt_json_parse(&arena, CONTEXT, strlen(CONTEXT), &lim, &jerr);
    if (ctx == NULL) {
        fprintf(stderr, "context: %s at %zu\n", jerr.message, jerr.offset);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pt_arena_destroy(&arena);
    return 0;
}

/* Compact JSON of v into out. */
static const char *to_json(const pt_json_t *v)
{
    pt_buf_t b;

    pt_buf_init(&b, 0);
    assert_int_equal(pt_json_write(&b, v), 0);
    snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data ? b.data : "");
    pt_buf_free(&b);
    return out;
}

/* Compiles (with ROOTS) and evaluates src against the context; returns the
 * result as compact JSON, or "compile: <message>" / "eval: <message>". */
static const char *run_with(const char *src, int tmpl, const pt_json_t *c)
{
    char err[512];
    pt_expr_t *e;
    pt_json_t *v;

    memset(err, 'x', sizeof(err));
    e = tmpl == 2 ? pt_expr_compile_url_template(&arena, src, strlen(src), ROOTS, err, sizeof(err))
        : tmpl    ? pt_expr_compile_template(&arena, src, strlen(src), ROOTS, err, sizeof(err))
                  : pt_expr_compile(&arena, src, strlen(src), ROOTS, err, sizeof(err));
    if (e == NULL) {
        assert_true(strlen(err) > 0);
        snprintf(out, sizeof(out), "compile: %s", err);
        return out;
    }
    assert_string_equal(pt_expr_source(e), src);
    v = pt_expr_eval(e, c, &arena, err, sizeof(err));
    if (v == NULL) {
        assert_true(strlen(err) > 0);
        snprintf(out, sizeof(out), "eval: %s", err);
        return out;
    }
    return to_json(v);
}

#define RUN(src)              run_with((src), 0, ctx)
#define TPL(src)              run_with((src), 1, ctx)
#define EXPECT(src, json)     assert_string_equal(RUN(src), (json))
#define EXPECT_TPL(src, json) assert_string_equal(TPL(src), (json))
#define COMPILE(src)          pt_expr_compile(&arena, (src), strlen(src), ROOTS, err, sizeof(err))
#define COMPILE_TPL(src)                                                                           \
    pt_expr_compile_template(&arena, (src), strlen(src), ROOTS, err, sizeof(err))

static void expect_prefix(const char *got, const char *want)
{
    if (strncmp(got, want, strlen(want)) != 0)
        fail_msg("got \"%s\", want it to start with \"%s\"", got, want);
}

static void expect_contains(const char *got, const char *want)
{
    if (strstr(got, want) == NULL)
        fail_msg("got \"%s\", want it to contain \"%s\"", got, want);
}

static void test_literals(void **state)
{
    (void)state;
    EXPECT("42", "42");
    EXPECT("1.50", "1.50");
    EXPECT("1e3", "1e3");
    EXPECT("'it\\'s'", "\"it's\"");
    EXPECT("\"a\\\"b\\\\c\\n\\t\\r\"", "\"a\\\"b\\\\c\\n\\t\\r\"");
    EXPECT("'\\u00e9\\ud83d\\ude00'", "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    EXPECT("'h\xc3\xa9'", "\"h\xc3\xa9\"");
    EXPECT("null", "null");
    EXPECT("true", "true");
    EXPECT("false", "false");
    EXPECT("[]", "[]");
    EXPECT("[1, 'a', [true]]", "[1,\"a\",[true]]");
    EXPECT("{}", "{}");
    EXPECT("{a: 1, 'b c': [null], \"d\": {e: 'f'}}",
           "{\"a\":1,\"b c\":[null],\"d\":{\"e\":\"f\"}}");
    EXPECT("{n: body.name, t: body.tags[1]}", "{\"n\":\"Ada\",\"t\":\"b\"}");
    EXPECT("  ( 1 )  ", "1");
}

static void test_arithmetic(void **state)
{
    (void)state;
    EXPECT("1 + 2", "3");
    EXPECT("5 - 7", "-2");
    EXPECT("1 - 2 - 3", "-4");
    EXPECT("10 - 2 + 3", "11");
    EXPECT("1.5 + 1", "2.5");
    EXPECT("0.1 + 0.2", "0.30000000000000004");
    EXPECT("1.0 + 1", "2");
    EXPECT("body.age + 4", "40");
    EXPECT("body.items[0].price + body.items[1].price", "12.5");
    /* Exact in int64, then double on overflow. */
    EXPECT("9007199254740993 + 0", "9007199254740993");
    EXPECT("body.big - 1", "9223372036854775806");
    EXPECT("body.big + 1", "9223372036854775808");
    EXPECT("body.big + body.big", "18446744073709551614");
    EXPECT("-body.big - body.big", "-18446744073709551614");
    EXPECT("-body.big - body.big - 2", "-1.8446744073709552e+19"); /* no longer int64 */
    EXPECT("body.big + 1 > body.big", "true");
    EXPECT("body.huge + 1", "1.2345678901234568e+29");
    EXPECT("-9223372036854775807 - 1", "-9223372036854775808");
    EXPECT("-5", "-5");
    EXPECT("- -5", "5");
    EXPECT("-(1.5)", "-1.5");
    EXPECT("-(-1.5)", "1.5");
    EXPECT("-body.age", "-36");
    EXPECT("-body.huge", "-123456789012345678901234567890");
    EXPECT("-2 + 3", "1");
    assert_string_equal(RUN("vars.s + 1"), "eval: at 7: '+' needs two numbers, got string and "
                                           "number (use concat() to join strings)");
    assert_string_equal(RUN("1 + 'a'"), "compile: at 2: '+' needs two numbers, got number and "
                                        "string (use concat() to join strings)");
    assert_string_equal(RUN("vars.n - 1"),
                        "eval: at 7: '-' needs two numbers, got null and number");
    assert_string_equal(RUN("-vars.s"), "eval: at 0: '-' needs a number, got string");
    expect_prefix(RUN("1e308 + 1e308"), "compile: at 6: the result is not a finite number");
}

static void test_comparisons(void **state)
{
    (void)state;
    EXPECT("1 < 2", "true");
    EXPECT("2 < 1", "false");
    EXPECT("2 <= 2", "true");
    EXPECT("3 > 2.5", "true");
    EXPECT("2.5 >= 3", "false");
    EXPECT("9007199254740993 > 9007199254740992", "true");
    EXPECT("body.huge > body.big", "true");
    /* Exact, where doubles would round. */
    EXPECT("123456789012345678901234567891 > body.huge", "true");
    EXPECT("body.huge < 123456789012345678901234567891", "true");
    EXPECT("body.huge >= 1.2345678901234567890123456789e29", "true");
    EXPECT("body.huge > 1.2345678901234567890123456789e29", "false");
    EXPECT("1e400 > 1e399", "true");
    EXPECT("0.1 < 0.10000000000000001", "true");
    EXPECT("-1e-400 < 0", "true");
    EXPECT("-2.5 < -2.4", "true");
    EXPECT("-2.5 < -25", "false");
    EXPECT("1.50 < 1.5", "false");
    EXPECT("1.5 <= 1.50", "true");
    EXPECT("0.0 < -0.0", "false");
    EXPECT("100.5 > 99.75", "true");
    EXPECT("0.015 > 0.0149", "true");
    EXPECT("12e-1 < 1.21", "true");
    EXPECT("'a' < 'b'", "true");
    EXPECT("'ab' < 'a'", "false");
    EXPECT("'a' < 'ab'", "true");
    EXPECT("'B' < 'a'", "true");
    EXPECT("1 == 1.0", "true");
    EXPECT("1 == 1e0", "true");
    EXPECT("1 != 2", "true");
    EXPECT("'1' == 1", "false");
    EXPECT("null == vars.n", "true");
    EXPECT("body.missing == null", "true");
    EXPECT("[1, 'a'] == [1, 'a']", "true");
    EXPECT("{a: 1, b: 2} == {b: 2, a: 1}", "true");
    EXPECT("body.tags == ['a', 'b', 'c']", "true");
    EXPECT("method == 'GET'", "true");
    assert_string_equal(
        RUN("vars.one < 'a'"),
        "eval: at 9: '<' compares two numbers or two strings, got number and string");
    expect_prefix(RUN("vars.n >= 1"), "eval: at 7: '>=' compares two numbers or two strings");
    assert_string_equal(RUN("1 == 2 == 3"),
                        "compile: at 7: comparisons cannot be chained (join them with && or ||)");
}

static void test_logic(void **state)
{
    (void)state;
    EXPECT("true && false", "false");
    EXPECT("true and true", "true");
    EXPECT("false || true", "true");
    EXPECT("false or false", "false");
    EXPECT("!true", "false");
    EXPECT("not false", "true");
    EXPECT("!!'x'", "true");
    EXPECT("not not 0", "false");
    /* Results are booleans, by truthiness. */
    EXPECT("'a' && 1", "true");
    EXPECT("'' || 0", "false");
    EXPECT("[] || {}", "false");
    EXPECT("body.tags && body.name", "true");
    EXPECT("vars.t && vars.one && body.name && body.zero", "false");
    /* Short-circuit: the failing operand is not evaluated. */
    EXPECT("vars.f && (vars.s + 1)", "false");
    EXPECT("vars.t || (vars.s + 1)", "true");
    EXPECT("vars.f and vars.s + 1 > 0", "false");
    expect_prefix(RUN("vars.t && (vars.s + 1)"), "eval: at 18: '+' needs two numbers");
    expect_prefix(RUN("vars.f || (vars.s + 1)"), "eval: at 18: '+' needs two numbers");
}

static void test_precedence(void **state)
{
    (void)state;
    EXPECT("1 + 2 == 3 && !false || false", "true");
    EXPECT("true || false && false", "true");
    EXPECT("(true || false) && false", "false");
    EXPECT("false && false || true", "true");
    /* "not" binds looser than a comparison (grammar: not := "!" not | cmp). */
    EXPECT("!1 == 2", "true");
    EXPECT("not body.age > 40", "true");
    EXPECT("1 + 2 < 2 + 2", "true");
    EXPECT("-1 + -2", "-3");
    EXPECT("2 - -2", "4");
    EXPECT("body.age - body.items[1].price + 1", "27");
    EXPECT("vars.t or vars.f and vars.f", "true");
}

static void test_access(void **state)
{
    (void)state;
    EXPECT("body.name", "\"Ada\"");
    EXPECT("body['key with space']", "\"sp\"");
    EXPECT("body[\"key with space\"]", "\"sp\"");
    EXPECT("header['x-api-key']", "\"k1\"");
    EXPECT("body.tags[0]", "\"a\"");
    EXPECT("body.tags[2]", "\"c\"");
    EXPECT("body['tags'][1]", "\"b\"");
    EXPECT("body.tags[vars.one]", "\"b\"");
    EXPECT("body.tags[1 + 1]", "\"c\"");
    EXPECT("body.items[1].price", "10");
    EXPECT("body.nested.deep.x", "true");
    EXPECT("body.nested['deep'].x", "true");
    EXPECT("user.roles[0]", "\"admin\"");
    EXPECT("[10, 20, 30][1]", "20");
    EXPECT("{a: {b: 7}}.a.b", "7");
    EXPECT("(body).name", "\"Ada\"");
    EXPECT("body.null", "null");
    /* Missing things are null. */
    EXPECT("body.tags[-1]", "null");
    EXPECT("body.tags[3]", "null");
    EXPECT("body.tags[1.5]", "null");
    EXPECT("body.tags[99999999999999999999]", "null");
    EXPECT("body.tags['0']", "null");
    EXPECT("body[0]", "null");
    EXPECT("body[vars.n]", "null");
    EXPECT("body.missing", "null");
    EXPECT("body.missing.x.y[0]", "null");
    EXPECT("body.name.x", "null");
    EXPECT("body.name[0]", "null");
    EXPECT("steps.nothing", "null");
    EXPECT("item", "null");
    EXPECT("'abc'.length", "null");
    assert_string_equal(RUN("body[true]"),
                        "eval: at 4: an index must be a number or a string, got boolean");
    assert_string_equal(RUN("body[[1]]"),
                        "eval: at 4: an index must be a number or a string, got array");
    /* A context that is not an object has no roots. */
    assert_string_equal(run_with("body.name", 0, pt_json_get(pt_json_get(ctx, "body"), "tags")),
                        "null");
}

static void test_functions_strings(void **state)
{
    (void)state;
    EXPECT("lower('AbC-\xc3\x89')", "\"abc-\xc3\x89\"");
    EXPECT("upper(body.uni)", "\"H\xc3\xa9LLO W\xc3\xb6RLD\"");
    EXPECT("trim(query.q)", "\"Hello World\"");
    EXPECT("trim('x')", "\"x\"");
    EXPECT("trim(' \\t\\n ')", "\"\"");
    EXPECT("concat('a', 1, true, null, 2.50, body.name)", "\"a1true2.50Ada\"");
    EXPECT("concat(vars.n)", "\"\"");
    EXPECT("length('h\xc3\xa9llo')", "5");
    EXPECT("length(body.uni)", "11");
    EXPECT("length(body.tags)", "3");
    EXPECT("length({a: 1, b: 2})", "2");
    EXPECT("length('')", "0");
    EXPECT("substring('h\xc3\xa9llo', 1, 3)", "\"\xc3\xa9ll\"");
    EXPECT("substring('hello', 1)", "\"ello\"");
    EXPECT("substring('hello', -3)", "\"llo\"");
    EXPECT("substring('hello', -10, 2)", "\"he\"");
    EXPECT("substring('hello', 10)", "\"\"");
    EXPECT("substring('hello', 0, 0)", "\"\"");
    EXPECT("substring('hello', 3, 100)", "\"lo\"");
    EXPECT("replace('a-b-c', '-', '+')", "\"a+b+c\"");
    EXPECT("replace('aaa', 'a', 'bb')", "\"bbbbbb\"");
    EXPECT("replace('abcabc', 'bc', '')", "\"aa\"");
    EXPECT("replace('abc', '', 'x')", "\"abc\"");
    EXPECT("replace('abc', 'z', 'x')", "\"abc\"");
    EXPECT("split('a,b,,c', ',')", "[\"a\",\"b\",\"\",\"c\"]");
    EXPECT("split('a, b', ', ')", "[\"a\",\"b\"]");
    EXPECT("split('a,', ',')", "[\"a\",\"\"]");
    EXPECT("split('abc', ',')", "[\"abc\"]");
    EXPECT("split('h\xc3\xa9y', '')", "[\"h\",\"\xc3\xa9\",\"y\"]");
    EXPECT("split('', ',')", "[]");
    EXPECT("split(path, '/')[2]", "\"42\"");
    EXPECT("join(['a', 1, true, null, 'z'], '-')", "\"a-1-true--z\"");
    EXPECT("join([], ',')", "\"\"");
    EXPECT("join(split('a b c', ' '), '+')", "\"a+b+c\"");
    EXPECT("contains('hello', 'ell')", "true");
    EXPECT("contains('hello', 'xyz')", "false");
    EXPECT("contains('hello', '')", "true");
    EXPECT("contains(user.roles, 'admin')", "true");
    EXPECT("contains([1, 2], 3)", "false");
    EXPECT("contains([1, 2], 2.0)", "true");
    EXPECT("contains([{a: 1}], {a: 1})", "true");
    EXPECT("starts_with(path, '/customers/')", "true");
    EXPECT("starts_with('he', 'hello')", "false");
    EXPECT("ends_with('hello', 'lo')", "true");
    EXPECT("ends_with('lo', 'hello')", "false");
    EXPECT("ends_with('hello', '')", "true");
    EXPECT("string(1.50)", "\"1.50\"");
    EXPECT("string(body.age)", "\"36\"");
    EXPECT("string('s')", "\"s\"");
    EXPECT("string(null)", "\"null\"");
    EXPECT("string(true)", "\"true\"");
    EXPECT("string(false)", "\"false\"");
    EXPECT("string({a: [1, 'x\"y'], b: {}})",
           "\"{\\\"a\\\":[1,\\\"x\\\\\\\"y\\\"],\\\"b\\\":{}}\"");
    EXPECT("string(body.items)",
           "\"[{\\\"id\\\":1,\\\"price\\\":2.5},{\\\"id\\\":2,\\\"price\\\":10}]\"");

    /* Type errors. */
    assert_string_equal(RUN("lower(vars.n)"), "eval: at 0: lower expects a string, got null");
    assert_string_equal(RUN("upper(1)"), "compile: at 0: upper expects a string, got number");
    expect_prefix(RUN("concat('a', [1])"), "compile: at 0: concat cannot turn an array into text");
    expect_prefix(RUN("length(1)"),
                  "compile: at 0: length expects a string, an array or an object");
    assert_string_equal(RUN("substring('hello', 1, -1)"),
                        "compile: at 0: substring: the length must not be negative");
    assert_string_equal(RUN("substring('hello', 1.5)"),
                        "compile: at 0: substring: argument 2 must be an integer, got 1.5");
    assert_string_equal(RUN("substring(body.tags, 1)"),
                        "eval: at 0: substring: argument 1 must be a string, got array");
    expect_prefix(RUN("join([[1]], ',')"), "compile: at 0: join cannot turn an array into text");
    expect_prefix(RUN("join('a', ',')"), "compile: at 0: join: argument 1 must be an array");
    expect_prefix(RUN("contains(1, 1)"), "compile: at 0: contains: argument 1 must be a string");
    expect_prefix(RUN("contains('a', 1)"), "compile: at 0: contains: argument 2 must be a string");
    expect_prefix(RUN("split('a', 1)"), "compile: at 0: split: argument 2 must be a string");
}

static void test_functions_values(void **state)
{
    (void)state;
    EXPECT("has(vars, 'n')", "true"); /* present, though null */
    EXPECT("has(vars, 'nope')", "false");
    EXPECT("url_encode('a/b c?d=é')", "\"a%2Fb%20c%3Fd%3D%C3%A9\"");
    EXPECT("url_encode(42)", "\"42\"");
    EXPECT("has(body.tags, 'x')", "false"); /* not an object */
    EXPECT("length(keys(vars)) > 0", "true");
    EXPECT("keys({b: 1, a: 2})", "[\"b\",\"a\"]");
    EXPECT("boolean(0)", "false");
    EXPECT("boolean('x')", "true");
    EXPECT("boolean([])", "false");
    EXPECT("boolean(body.tags)", "true");
    EXPECT("boolean(vars.n)", "false");
    EXPECT("coalesce(vars.n, query.missing, 20, 30)", "20");
    EXPECT("coalesce(vars.n)", "null");
    EXPECT("coalesce(vars.f, 1)", "false");
    EXPECT("coalesce(query.limit, vars.s + 1)", "\"10\""); /* lazy */
    EXPECT("default(query.limit, 20)", "\"10\"");
    EXPECT("default(query.nope, 20)", "20");
    EXPECT("default(body.zero, 20)", "0");
    EXPECT("number('42')", "42");
    EXPECT("number(' 007 ')", "7");
    EXPECT("number('-1.5e3')", "-1.5e3");
    EXPECT("number('+3')", "3");
    EXPECT("number('0.5')", "0.5");
    EXPECT("number(body.dec)", "12.50");
    EXPECT("number(12)", "12");
    EXPECT("number(query.limit) + 1", "11");
    assert_string_equal(RUN("number('abc')"), "compile: at 0: number: \"abc\" is not a number");
    expect_prefix(RUN("number('1.')"), "compile: at 0: number: \"1.\" is not a number");
    expect_prefix(RUN("number('')"), "compile: at 0: number:");
    expect_prefix(RUN("number(true)"),
                  "compile: at 0: number expects a number or a numeric string");
    expect_prefix(RUN("number(vars.n)"), "eval: at 0: number expects");

    EXPECT("round(2.5)", "3");
    EXPECT("round(-2.5)", "-3");
    EXPECT("round(2.4)", "2");
    EXPECT("round(2.675, 2)", "2.68");
    EXPECT("round(1.005, 2)", "1.01");
    EXPECT("round(9.999, 2)", "10");
    EXPECT("round(-0.001, 2)", "0");
    EXPECT("round(1.25, 5)", "1.25");
    EXPECT("round(5)", "5");
    EXPECT("round(5, 3)", "5");
    EXPECT("round(15e-1)", "2");
    EXPECT("round(body.items[0].price)", "3");
    EXPECT("floor(1.5)", "1");
    EXPECT("floor(-1.5)", "-2");
    EXPECT("floor(-1.0)", "-1"); /* -1.0 is -(1.0): an integer */
    EXPECT("floor(body.items[0].price - 3)", "-1");
    EXPECT("ceil(1.2)", "2");
    EXPECT("ceil(-1.2)", "-1");
    EXPECT("ceil(0.000)", "0.000");
    EXPECT("ceil(2.5e-1)", "1");
    EXPECT("abs(-3)", "3");
    EXPECT("abs(3)", "3");
    EXPECT("abs(-1.5)", "1.5");
    EXPECT("abs(-9223372036854775807 - 1)", "9223372036854775808");
    EXPECT("min(3, 1, 2)", "1");
    EXPECT("max(3, 1, 2)", "3");
    EXPECT("max(3)", "3");
    EXPECT("min([4, 2, 8])", "2");
    EXPECT("max(body.items[0].price, body.items[1].price)", "10");
    EXPECT("max('a', 'c', 'b')", "\"c\"");
    EXPECT("min([])", "null");
    expect_prefix(RUN("round(1, 16)"), "compile: at 0: round: the digits must be between 0 and 15");
    expect_prefix(RUN("round('1')"), "compile: at 0: round expects a number, got string");
    expect_prefix(RUN("round('1', 2)"), "compile: at 0: round: argument 1 must be a number");
    expect_prefix(RUN("floor(vars.s)"), "eval: at 0: floor expects a number, got string");
    expect_prefix(RUN("min(1, 'a')"), "compile: at 0: min cannot compare a number and a string");
    expect_prefix(RUN("max(vars.n, 1)"), "eval: at 0: max takes numbers or strings, got null");
}

static void test_dates(void **state)
{
    const char *s;
    size_t i;

    (void)state;
    EXPECT("date('2024-02-29')", "\"2024-02-29\"");
    EXPECT("date(body.when)", "\"2024-02-29T22:30:00Z\"");
    EXPECT("date('2024-12-31T23:30:00-01:00')", "\"2025-01-01T00:30:00Z\"");
    EXPECT("date('2024-03-01T00:30:00+05:30')", "\"2024-02-29T19:00:00Z\"");
    EXPECT("date('2024-01-01 10:00:00.5Z')", "\"2024-01-01T10:00:00.500Z\"");
    EXPECT("date('2024-01-01t10:00:00.123456z')", "\"2024-01-01T10:00:00.123Z\"");
    EXPECT("date('2024-01-01T10:00:00.000Z')", "\"2024-01-01T10:00:00Z\"");
    EXPECT("date('2016-12-31T23:59:60Z')", "\"2017-01-01T00:00:00Z\"");
    EXPECT("date('2000-02-29')", "\"2000-02-29\"");
    EXPECT("date(0)", "\"1970-01-01T00:00:00Z\"");
    EXPECT("date(1700000000)", "\"2023-11-14T22:13:20Z\"");
    EXPECT("date(1700000000.25)", "\"2023-11-14T22:13:20.250Z\"");
    EXPECT("date(-1)", "\"1969-12-31T23:59:59Z\"");
    EXPECT("date(-0.5)", "\"1969-12-31T23:59:59.500Z\"");
    EXPECT("date(253402300799)", "\"9999-12-31T23:59:59Z\"");
    EXPECT("date(-62167219200)", "\"0000-01-01T00:00:00Z\"");
    EXPECT("date(date(body.when))", "\"2024-02-29T22:30:00Z\"");
    expect_prefix(RUN("date('2023-02-29')"), "compile: at 0: date: \"2023-02-29\" is not a date");
    expect_prefix(RUN("date('1900-02-29')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-13-01')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-04-31')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-00')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-1-01')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T24:00:00Z')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T10:60:00Z')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T10:00:61Z')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T10:00:00')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T10:00:00+0100')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T10:00:00+24:00')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T10:00:00.Z')"), "compile: at 0: date:");
    expect_prefix(RUN("date('2024-01-01T10:00:00Zx')"), "compile: at 0: date:");
    expect_prefix(RUN("date('0000-01-01T00:30:00+01:00')"),
                  "compile: at 0: date: \"0000-01-01T00:30:00+01:00\" is out of the range");
    expect_prefix(RUN("date(1e20)"), "compile: at 0: date: 1e20 seconds is out of the range");
    expect_prefix(RUN("date(true)"), "compile: at 0: date expects a date string or a number");
    expect_prefix(RUN("date(vars.n)"), "eval: at 0: date expects");

    /* now(): "YYYY-MM-DDTHH:MM:SS.fffZ", and never constant. */
    s = RUN("now()");
    assert_int_equal(strlen(s), 26);
    for (i = 1; i < 24; i++) {
        if (i == 5 || i == 8)
            assert_int_equal(s[i], '-');
        else if (i == 11)
            assert_int_equal(s[i], 'T');
        else if (i == 14 || i == 17)
            assert_int_equal(s[i], ':');
        else if (i == 20)
            assert_int_equal(s[i], '.');
        else
            assert_true(s[i] >= '0' && s[i] <= '9');
    }
    assert_memory_equal(s + 24, "Z\"", 2);
    EXPECT("date(now()) > '2020'", "true");
    EXPECT("length(now())", "24");
}

static void test_compile_errors(void **state)
{
    (void)state;
    assert_string_equal(RUN("concat('a', 'b'"),
                        "compile: at 15: expected ')' to close the call of concat");
    assert_string_equal(RUN("concat('a' 'b')"),
                        "compile: at 11: expected ')' to close the call of concat");
    expect_prefix(RUN("lowr(body.name)"), "compile: at 0: unknown function \"lowr\" (known: lower, "
                                          "upper, trim, concat");
    expect_contains(RUN("lowr(body.name)"), "has, keys, url_encode)");
    assert_string_equal(RUN("lower()"), "compile: at 0: lower takes 1 argument, got 0");
    assert_string_equal(RUN("  now(1)"), "compile: at 2: now takes 0 arguments, got 1");
    assert_string_equal(RUN("substring('a')"),
                        "compile: at 0: substring takes 2 to 3 arguments, got 1");
    assert_string_equal(RUN("concat()"), "compile: at 0: concat takes at least 1 argument, got 0");
    assert_string_equal(RUN("default(1)"), "compile: at 0: default takes 2 arguments, got 1");
    assert_string_equal(RUN("1 +"),
                        "compile: at 3: expected an expression, found the end of the expression");
    assert_string_equal(RUN(""), "compile: at 0: expected an expression, found the end of the "
                                 "expression");
    assert_string_equal(RUN("(1 + 2"), "compile: at 6: expected ')' to close '(' opened at 0");
    assert_string_equal(RUN("body.tags[0"),
                        "compile: at 11: expected ']' to close the index opened at 9");
    assert_string_equal(RUN("[1, 2"),
                        "compile: at 5: expected ',' or ']' in the array opened at 0");
    assert_string_equal(RUN("[1,]"), "compile: at 3: expected an expression, found ']'");
    assert_string_equal(RUN("{a 1}"), "compile: at 3: expected ':' after the key \"a\"");
    assert_string_equal(RUN("{a: 1, a: 2}"), "compile: at 7: duplicate key \"a\"");
    assert_string_equal(RUN("{1: 2}"),
                        "compile: at 1: expected a key (a name or a string) in the object opened "
                        "at 0, found '1'");
    assert_string_equal(RUN("{a: 1 b: 2}"),
                        "compile: at 6: expected ',' or '}' in the object opened at 0");
    assert_string_equal(RUN("body."), "compile: at 5: expected a member name after '.'");
    assert_string_equal(RUN("body.1"), "compile: at 5: expected a member name after '.'");
    assert_string_equal(RUN("a = 1"), "compile: at 2: unexpected '=' (use '==' to compare)");
    assert_string_equal(RUN("vars.t & vars.f"), "compile: at 7: unexpected '&' (use '&&')");
    assert_string_equal(RUN("vars.t | vars.f"), "compile: at 7: unexpected '|' (use '||')");
    assert_string_equal(RUN("1 # 2"), "compile: at 2: unexpected character '#'");
    assert_string_equal(RUN("'abc"), "compile: at 0: unterminated string");
    assert_string_equal(RUN("vars.s + 'abc\\'"), "compile: at 9: unterminated string");
    expect_prefix(RUN("'a\\x'"), "compile: at 2: invalid escape '\\x'");
    expect_prefix(RUN("'\\u12'"), "compile: at 1: invalid \\u escape");
    expect_prefix(RUN("'\\ud800'"), "compile: at 1: invalid \\u escape: a high surrogate");
    expect_prefix(RUN("'\\udc00'"), "compile: at 1: invalid \\u escape: a lone low surrogate");
    assert_string_equal(RUN("01"), "compile: at 0: invalid number");
    assert_string_equal(RUN("1.x"), "compile: at 0: invalid number");
    assert_string_equal(RUN("1e"), "compile: at 0: invalid number");
    assert_string_equal(RUN("2abc"), "compile: at 0: invalid number");
    assert_string_equal(RUN("body.name )"),
                        "compile: at 10: unexpected ')' after the end of the expression");
    assert_string_equal(RUN("body and"),
                        "compile: at 8: expected an expression, found the end of the expression");
    assert_string_equal(RUN("true(1)"),
                        "compile: at 4: unexpected '(' after the end of the expression");
    assert_string_equal(RUN("1 + and"), "compile: at 4: expected an expression, found 'and'");
    assert_string_equal(RUN("'\xff'"), "compile: at 1: invalid UTF-8");
    expect_prefix(RUN("\xc3\xa9"), "compile: at 0: unexpected non-ASCII character");
}

static void test_roots(void **state)
{
    const char *const only[] = {"a", "b", NULL};
    const char *const none[] = {NULL};
    char err[256];
    pt_expr_t *e;

    (void)state;
    assert_string_equal(RUN("foo"),
                        "compile: at 0: unknown name \"foo\" (known: method, path, user, query, "
                        "header, body, vars, steps, item, index)");
    assert_string_equal(RUN("1 + bodyy.x"), "compile: at 4: unknown name \"bodyy\" (known: "
                                            "method, path, user, query, header, body, vars, steps, "
                                            "item, index)");
    /* Members and function names are not roots. */
    EXPECT("body.foo", "null");
    EXPECT("{foo: 1}.foo", "1");
    e = pt_expr_compile(&arena, "a + b", 5, only, err, sizeof(err));
    assert_non_null(e);
    e = pt_expr_compile(&arena, "a + c", 5, only, err, sizeof(err));
    assert_null(e);
    assert_string_equal(err, "at 4: unknown name \"c\" (known: a, b)");
    e = pt_expr_compile(&arena, "x", 1, none, err, sizeof(err));
    assert_null(e);
    assert_string_equal(err, "at 0: unknown name \"x\" (known: none)");
    e = pt_expr_compile(&arena, "1 + 1", 5, none, err, sizeof(err));
    assert_non_null(e);
    /* Without a list, any name is a root. */
    e = pt_expr_compile(&arena, "anything.x", 10, NULL, err, sizeof(err));
    assert_non_null(e);
    assert_string_equal(to_json(pt_expr_eval(e, ctx, &arena, err, sizeof(err))), "null");
}

static void test_url_templates(void **state)
{
    (void)state;
    /* interpolated values are percent-encoded; the literal text is kept */
    assert_string_equal(run_with("https://h/a b/${'x/../y?z=1#f'}", 2, ctx),
                        "\"https://h/a b/x%2F..%2Fy%3Fz%3D1%23f\"");
    assert_string_equal(run_with("/c/${body.name}?q=${'a&b c'}&n=${body.age}", 2, ctx),
                        "\"/c/Ada?q=a%26b%20c&n=36\"");
    assert_string_equal(run_with("/u/${'caf\xc3\xa9~_.-'}", 2, ctx), "\"/u/caf%C3%A9~_.-\"");
    assert_string_equal(run_with("/plain", 2, ctx), "\"/plain\"");
    assert_string_equal(run_with("${vars.n}", 2, ctx), "\"\"");
}

static void test_templates(void **state)
{
    (void)state;
    EXPECT_TPL("/customers/${split(path, '/')[2]}", "\"/customers/42\"");
    EXPECT_TPL("Hello ${body.name}!", "\"Hello Ada!\"");
    EXPECT_TPL("${body.age}", "\"36\"");
    EXPECT_TPL("$$5 and ${1 + 1} $x $", "\"$5 and 2 $x $\"");
    EXPECT_TPL("$${x}", "\"${x}\"");
    EXPECT_TPL("${ '}' }", "\"}\"");
    EXPECT_TPL("${ \"a}b\" }${'{'}", "\"a}b{\"");
    EXPECT_TPL("${ {a: '}'}.a }", "\"}\"");
    EXPECT_TPL("[${vars.n}]", "\"[]\"");
    EXPECT_TPL("${vars.t}-${body.items[1].price}", "\"true-10\"");
    EXPECT_TPL("${body.tags}", "\"[\\\"a\\\",\\\"b\\\",\\\"c\\\"]\"");
    EXPECT_TPL("${body.nested}", "\"{\\\"deep\\\":{\\\"x\\\":true}}\"");
    EXPECT_TPL("no parts", "\"no parts\"");
    EXPECT_TPL("", "\"\"");
    EXPECT_TPL("multi\nline ${\n  body.name\n}", "\"multi\\nline Ada\"");
    EXPECT_TPL("${method}${path}", "\"GET/customers/42\"");
    assert_string_equal(TPL("/x/${body.name"),
                        "compile: at 14: expected '}' to close '${' opened at 3");
    assert_string_equal(TPL("/x/${"),
                        "compile: at 5: expected an expression, found the end of the expression");
    assert_string_equal(TPL("a${}"), "compile: at 3: expected an expression, found '}'");
    assert_string_equal(TPL("${body.name )}"),
                        "compile: at 12: expected '}' to close '${' opened at 0");
    assert_string_equal(TPL("${ 'a }"), "compile: at 3: unterminated string");
    assert_string_equal(TPL("ok ${foo}"), "compile: at 5: unknown name \"foo\" (known: method, "
                                          "path, user, query, header, body, vars, steps, item, "
                                          "index)");
    expect_prefix(TPL("${vars.s + 1}"), "eval: at 9: '+' needs two numbers");
}

static void test_constants(void **state)
{
    char err[256];
    pt_expr_t *e;
    const pt_json_t *c;

    (void)state;
    e = COMPILE("1 + 2");
    assert_non_null(e);
    assert_non_null(c = pt_expr_constant(e));
    assert_string_equal(to_json(c), "3");
    assert_ptr_equal(pt_expr_eval(e, ctx, &arena, err, sizeof(err)), c);
    assert_string_equal(pt_expr_source(e), "1 + 2");

    e = COMPILE("concat('a', upper('b'), [1, 2][1])");
    assert_non_null(e);
    assert_non_null(c = pt_expr_constant(e));
    assert_string_equal(to_json(c), "\"aB2\"");

    e = COMPILE("{a: [1, -2], b: !true}");
    assert_non_null(c = pt_expr_constant(e));
    assert_string_equal(to_json(c), "{\"a\":[1,-2],\"b\":false}");

    e = COMPILE("body.x");
    assert_non_null(e);
    assert_null(pt_expr_constant(e));
    e = COMPILE("now()");
    assert_null(pt_expr_constant(e));
    e = COMPILE("length(now()) + 1");
    assert_null(pt_expr_constant(e));
    e = COMPILE("[1, body]");
    assert_null(pt_expr_constant(e));
    e = COMPILE_TPL("abc$$");
    assert_non_null(c = pt_expr_constant(e));
    assert_string_equal(to_json(c), "\"abc$\"");
    e = COMPILE_TPL("a${1 + 1}b");
    assert_non_null(c = pt_expr_constant(e));
    assert_string_equal(to_json(c), "\"a2b\"");
    e = COMPILE_TPL("a${path}");
    assert_null(pt_expr_constant(e));
}

/* A string of n copies of c, as "${c}"-style source for nesting tests. */
static char *repeat(const char *s, size_t n)
{
    size_t l = strlen(s), i;
    char *p = pt_arena_alloc(&arena, l * n + 1);

    for (i = 0; i < n; i++)
        memcpy(p + i * l, s, l);
    p[l * n] = '\0';
    return p;
}

static const char *nested(const char *open, const char *mid, const char *close, size_t n)
{
    char *s = pt_arena_printf(&arena, "%s%s%s", repeat(open, n), mid, repeat(close, n));
    return RUN(s);
}

static void test_limits(void **state)
{
    char err[256], *src;
    pt_expr_t *e;
    pt_json_t *c, *vars;
    size_t i;

    (void)state;
    /* Nesting: 64 levels in all, the whole expression being the first. */
    assert_string_equal(nested("(", "1", ")", 63), "1");
    expect_prefix(nested("(", "1", ")", 64), "compile: at 64: the expression is nested too deeply");
    expect_prefix(nested("(", "1", ")", 10000), "compile: at 64: the expression is nested too "
                                                "deeply (at most 64 levels)");
    assert_string_equal(nested("[", "1", "]", 63),
                        pt_arena_printf(&arena, "%s1%s", repeat("[", 63), repeat("]", 63)));
    expect_prefix(nested("[", "1", "]", 100),
                  "compile: at 64: the expression is nested too deeply");
    expect_prefix(nested("{a:", "1", "}", 100), "compile: ");
    expect_prefix(nested("!", "1", "", 100), "compile: at 63: the expression is nested too deeply");
    expect_prefix(nested("-", "1", "", 100), "compile: at 63: the expression is nested too deeply");
    expect_prefix(nested("lower(", "'a'", ")", 100), "compile: ");
    expect_prefix(nested("body[", "'a'", "]", 100), "compile: ");
    /* Long chains are not nesting. */
    src = pt_arena_printf(&arena, "0%s", repeat(" + 1", 5000));
    assert_string_equal(RUN(src), "5000");
    src = pt_arena_printf(&arena, "body%s", repeat(".x", 5000));
    assert_string_equal(RUN(src), "null");
    src = pt_arena_printf(&arena, "vars.t%s", repeat(" && vars.t", 5000));
    assert_string_equal(RUN(src), "true");
    src = pt_arena_printf(&arena, "vars.one%s", repeat(" - vars.one", 5000));
    assert_string_equal(RUN(src), "-4999");

    /* The source size. */
    src = repeat(" ", 65537);
    src[0] = '1';
    assert_string_equal(RUN(src), "compile: at 0: the expression is longer than 64 KiB");
    src[65536] = '\0';
    assert_string_equal(RUN(src), "1");

    /* Exponential string growth: each replace doubles the string. */
    src = pt_arena_printf(&arena, "%svars.s%s", repeat("replace(", 21), repeat(", 'a', 'aa')", 21));
    assert_string_equal(RUN(src), "eval: at 8: the strings built exceed 1 MiB");
    src = pt_arena_printf(&arena, "%s'a'%s", repeat("replace(", 21), repeat(", 'a', 'aa')", 21));
    assert_string_equal(RUN(src), "compile: at 8: the strings built exceed 1 MiB");
    src = pt_arena_printf(&arena, "length(%svars.s%s)", repeat("replace(", 18),
                          repeat(", 'a', 'aa')", 18));
    assert_string_equal(RUN(src), "262144");
    src = pt_arena_printf(&arena, "length(%svars.s%s)", repeat("concat(", 30),
                          repeat(", vars.s, vars.s, vars.s)", 30));
    assert_string_equal(RUN(src), "91");

    /* Operations: a string of 150,000 characters split in characters. */
    c = pt_json_object(&arena);
    vars = pt_json_object(&arena);
    src = repeat("a", 150000);
    assert_int_equal(
        pt_json_object_set(&arena, vars, "long", 4, pt_json_string(&arena, src, 150000)), 0);
    assert_int_equal(pt_json_object_set(&arena, c, "vars", 4, vars), 0);
    assert_string_equal(run_with("length(split(vars.long, ''))", 0, c),
                        "eval: at 7: the evaluation takes more than 100000 operations");
    assert_string_equal(run_with("length(split(substring(vars.long, 0, 50000), ''))", 0, c),
                        "50000");
    assert_string_equal(run_with("length(vars.long)", 0, c), "150000");
    /* The compiled expression is reusable after a failed evaluation. */
    e = pt_expr_compile(&arena, "length(split(vars.long, sep))", 29, NULL, err, sizeof(err));
    assert_non_null(e);
    assert_null(pt_expr_eval(e, c, &arena, err, sizeof(err)));
    assert_int_equal(pt_json_object_set(&arena, c, "sep", 3, pt_json_string(&arena, "aaaaa", 5)),
                     0);
    assert_string_equal(to_json(pt_expr_eval(e, c, &arena, err, sizeof(err))), "30001");
    for (i = 0; i < 3; i++)
        assert_non_null(pt_expr_eval(e, c, &arena, err, sizeof(err)));
}

static void test_error_buffer(void **state)
{
    char err[8];
    pt_expr_t *e;

    (void)state;
    /* Messages are cut to the buffer; a NULL buffer is allowed. */
    assert_null(pt_expr_compile(&arena, "1 +", 3, NULL, err, sizeof(err)));
    assert_string_equal(err, "at 3: e");
    assert_null(pt_expr_compile(&arena, "1 +", 3, NULL, NULL, 0));
    e = pt_expr_compile(&arena, "x + 1", 5, NULL, NULL, 0);
    assert_non_null(e);
    assert_null(pt_expr_eval(e, ctx, &arena, NULL, 0));
    assert_null(pt_expr_eval(e, ctx, &arena, err, sizeof(err)));
    assert_string_equal(err, "at 2: '");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_arithmetic),
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_logic),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_access),
        cmocka_unit_test(test_functions_strings),
        cmocka_unit_test(test_functions_values),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_roots),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_url_templates),
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_buffer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
