/*
 * Unit tests of src/process/jschema.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"
#include "process/jschema.h"

static pt_arena_t arena;

static int setup(void **state)
{
    (void)state;
    pt_arena_init(&arena, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pt_arena_destroy(&arena);
    return 0;
}

static pt_json_t *parse(const char *text)
{
    pt_json_error_t e;
    pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
    pt_json_t *v = pt_json_parse(&arena, text, strlen(text), &lim, &e);
    if (v == NULL)
        fail_msg("bad test JSON (%s at %zu): %s", e.message, e.offset, text);
    return v;
}

/* Compiles the set text and returns its schema "s". */
static const pt_jschema_t *schema_of(const char *defs)
{
    char err[256];
    pt_jschema_set_t *set = pt_jschema_compile(&arena, parse(defs), err, sizeof(err));
    if (set == NULL)
        fail_msg("compile failed: %s", err);
    assert_non_null(pt_jschema_get(set, "s"));
    return pt_jschema_get(set, "s");
}

/* Compiles one anonymous schema. */
static const pt_jschema_t *one(const char *doc)
{
    char err[256];
    const pt_jschema_t *s = pt_jschema_compile_one(&arena, NULL, parse(doc), err, sizeof(err));
    if (s == NULL)
        fail_msg("compile failed: %s", err);
    return s;
}

/* The compile error of a set, asserting that it fails. */
static const char *compile_err(const char *defs)
{
    static char err[256];
    memset(err, 'X', sizeof(err));
    assert_null(pt_jschema_compile(&arena, parse(defs), err, sizeof(err)));
    assert_true(strlen(err) > 0 && strlen(err) < sizeof(err));
    return err;
}

static int validate_mode(const pt_jschema_t *s, const char *inst, pt_jschema_mode_t mode,
                         pt_json_t **out)
{
    return pt_jschema_validate(s, parse(inst), mode, &arena, 100, out);
}

static int validate(const pt_jschema_t *s, const char *inst)
{
    pt_json_t *out = NULL;
    int n = validate_mode(s, inst, PT_JSCHEMA_REQUEST, &out);
    assert_true(n >= 0);
    if (n == 0)
        assert_null(out);
    else
        assert_int_equal(out->u.arr.n, n);
    return n;
}

/* Asserts that inst has exactly one violation, with that pointer and message. */
static void expect1_mode(const pt_jschema_t *s, const char *inst, pt_jschema_mode_t mode,
                         const char *pointer, const char *message)
{
    pt_json_t *out = NULL, *o;
    int n = validate_mode(s, inst, mode, &out);

    if (n != 1)
        fail_msg("%s: %d violations, expected 1 (%s %s)", inst, n, pointer, message);
    assert_non_null(out);
    assert_int_equal(out->type, PT_JSON_ARRAY);
    assert_int_equal(out->u.arr.n, 1);
    o = pt_json_at(out, 0);
    assert_string_equal(pt_json_get(o, "pointer")->u.str.p, pointer);
    assert_string_equal(pt_json_get(o, "message")->u.str.p, message);
}

static void expect1(const pt_jschema_t *s, const char *inst, const char *pointer,
                    const char *message)
{
    expect1_mode(s, inst, PT_JSCHEMA_REQUEST, pointer, message);
}

static void test_types(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = one("{\"type\": \"string\"}");
    assert_int_equal(validate(s, "\"x\""), 0);
    expect1(s, "1", "", "must be a string");
    expect1(s, "null", "", "must be a string");
    s = one("{\"type\": \"object\"}");
    assert_int_equal(validate(s, "{}"), 0);
    expect1(s, "[]", "", "must be an object");
    s = one("{\"type\": \"array\"}");
    assert_int_equal(validate(s, "[1]"), 0);
    expect1(s, "{}", "", "must be an array");
    s = one("{\"type\": \"boolean\"}");
    assert_int_equal(validate(s, "false"), 0);
    assert_int_equal(validate(s, "true"), 0);
    expect1(s, "0", "", "must be a boolean");
    s = one("{\"type\": \"null\"}");
    assert_int_equal(validate(s, "null"), 0);
    expect1(s, "false", "", "must be null");
    s = one("{\"type\": \"number\"}");
    assert_int_equal(validate(s, "1.5e-3"), 0);
    assert_int_equal(validate(s, "-7"), 0);
    expect1(s, "\"1\"", "", "must be a number");
    /* No type: anything. */
    s = one("{}");
    assert_int_equal(validate(s, "[{\"a\": null}]"), 0);
    assert_int_equal(validate(s, "null"), 0);
}

static void test_integer(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = one("{\"type\": \"integer\"}");
    assert_int_equal(validate(s, "0"), 0);
    assert_int_equal(validate(s, "-0"), 0);
    assert_int_equal(validate(s, "1.0"), 0);
    assert_int_equal(validate(s, "1e2"), 0);
    assert_int_equal(validate(s, "1.50e1"), 0);
    assert_int_equal(validate(s, "0.0e-5"), 0);
    assert_int_equal(validate(s, "123456789012345678901234567890"), 0);
    assert_int_equal(validate(s, "1e400"), 0);
    expect1(s, "1.5", "", "must be an integer");
    expect1(s, "1e-2", "", "must be an integer");
    expect1(s, "1.05e1", "", "must be an integer");
    expect1(s, "1e-99999999999999999999999", "", "must be an integer");
    expect1(s, "\"1\"", "", "must be an integer");
    /* number and integer: number wins in the message */
    s = one("{\"type\": [\"integer\", \"number\"]}");
    assert_int_equal(validate(s, "1.5"), 0);
    expect1(s, "true", "", "must be a number");
}

static void test_nullable_and_type_lists(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = one("{\"type\": \"string\", \"nullable\": true, \"maxLength\": 2}");
    assert_int_equal(validate(s, "null"), 0);
    assert_int_equal(validate(s, "\"ab\""), 0);
    expect1(s, "3", "", "must be a string or null");
    expect1(s, "\"abc\"", "", "must be at most 2 characters");
    s = one("{\"type\": \"string\", \"nullable\": false}");
    expect1(s, "null", "", "must be a string");
    s = one("{\"type\": [\"string\", \"null\"]}");
    assert_int_equal(validate(s, "null"), 0);
    expect1(s, "[]", "", "must be a string or null");
    s = one("{\"type\": [\"string\", \"integer\", \"boolean\"]}");
    assert_int_equal(validate(s, "true"), 0);
    assert_int_equal(validate(s, "3"), 0);
    expect1(s, "3.5", "", "must be a string, an integer or a boolean");
    /* nullable accepts null beside an enum that does not list it */
    s = one("{\"enum\": [\"a\"], \"nullable\": true}");
    assert_int_equal(validate(s, "null"), 0);
    expect1(s, "\"b\"", "", "must be one of: \"a\"");
}

static void test_strings(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = one("{\"type\": \"string\", \"minLength\": 3, \"maxLength\": 5}");
    assert_int_equal(validate(s, "\"abc\""), 0);
    assert_int_equal(validate(s, "\"abcde\""), 0);
    expect1(s, "\"ab\"", "", "must be at least 3 characters");
    expect1(s, "\"abcdef\"", "", "must be at most 5 characters");
    /* Characters, not bytes: 5 code points in 11 bytes. */
    assert_int_equal(validate(s, "\"h\\u00e9\xe2\x82\xac\xf0\x9f\x98\x80o\""), 0);
    expect1(s, "\"\xc3\xa9\xc3\xa9\"", "", "must be at least 3 characters");
    s = one("{\"maxLength\": 1, \"minLength\": 1}");
    expect1(s, "\"\"", "", "must be at least 1 character");
    expect1(s, "\"ab\"", "", "must be at most 1 character");
    /* String keywords do not apply to other types. */
    assert_int_equal(validate(s, "12345"), 0);
    /* maxLength 0 and a huge maxLength */
    s = one("{\"maxLength\": 0}");
    assert_int_equal(validate(s, "\"\""), 0);
    expect1(s, "\"a\"", "", "must be at most 0 characters");
    s = one("{\"maxLength\": 1e30, \"minLength\": 2.0}");
    assert_int_equal(validate(s, "\"ab\""), 0);
}

static void test_enum_const(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = one("{\"enum\": [\"a\", \"b\", 1, null, {\"k\": [true]}]}");
    assert_int_equal(validate(s, "\"a\""), 0);
    assert_int_equal(validate(s, "1.0"), 0);
    assert_int_equal(validate(s, "null"), 0);
    assert_int_equal(validate(s, "{\"k\": [true]}"), 0);
    expect1(s, "\"c\"", "", "must be one of: \"a\", \"b\", 1, null, {\"k\":[true]}");
    expect1(s, "{\"k\": [false]}", "", "must be one of: \"a\", \"b\", 1, null, {\"k\":[true]}");
    s = one("{\"type\": \"string\", \"enum\": [\"a\", \"b\"]}");
    expect1(s, "\"x\"", "", "must be one of: \"a\", \"b\"");
    /* the type is reported alone */
    expect1(s, "1", "", "must be a string");
    s = one("{\"const\": {\"v\": 2}}");
    assert_int_equal(validate(s, "{\"v\": 2}"), 0);
    expect1(s, "{\"v\": 3}", "", "must be {\"v\":2}");
}

static void test_number_bounds(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = one("{\"type\": \"number\", \"minimum\": 0, \"exclusiveMaximum\": 100}");
    assert_int_equal(validate(s, "0"), 0);
    assert_int_equal(validate(s, "99.999"), 0);
    expect1(s, "-0.0001", "", "must be >= 0");
    expect1(s, "100", "", "must be < 100");
    expect1(s, "1e2", "", "must be < 100");
    expect1(s, "100.0000000000000000000000001", "", "must be < 100");
    s = one("{\"maximum\": 10, \"exclusiveMinimum\": -5.5}");
    assert_int_equal(validate(s, "10"), 0);
    assert_int_equal(validate(s, "-5.49"), 0);
    expect1(s, "10.01", "", "must be <= 10");
    expect1(s, "-5.5", "", "must be > -5.5");
    expect1(s, "-55e-1", "", "must be > -5.5");
    /* OpenAPI 3.0 booleans */
    s = one("{\"minimum\": 1, \"exclusiveMinimum\": true, \"maximum\": 2, "
            "\"exclusiveMaximum\": false}");
    expect1(s, "1", "", "must be > 1");
    assert_int_equal(validate(s, "2"), 0);
    /* Both minimum and a numeric exclusiveMinimum: the stricter bound */
    s = one("{\"minimum\": 5, \"exclusiveMinimum\": 5}");
    expect1(s, "5", "", "must be > 5");
    s = one("{\"minimum\": 5, \"exclusiveMinimum\": 4}");
    expect1(s, "4.5", "", "must be >= 5");
    /* Exact on the text: beyond 2^53 and in long decimals. */
    s = one("{\"maximum\": 9007199254740992}");
    assert_int_equal(validate(s, "9007199254740992"), 0);
    assert_int_equal(validate(s, "9007199254740992.0"), 0);
    assert_int_equal(validate(s, "9.007199254740992e15"), 0);
    expect1(s, "9007199254740993", "", "must be <= 9007199254740992");
    expect1(s, "9007199254740992.000000000000001", "", "must be <= 9007199254740992");
    s = one("{\"minimum\": -12345678901234567890.10}");
    assert_int_equal(validate(s, "-12345678901234567890.1"), 0);
    assert_int_equal(validate(s, "-12345678901234567890.09999"), 0);
    expect1(s, "-12345678901234567890.10001", "", "must be >= -12345678901234567890.10");
    s = one("{\"minimum\": 0}");
    assert_int_equal(validate(s, "-0"), 0);
    assert_int_equal(validate(s, "0e-7"), 0);
    expect1(s, "-1e-400", "", "must be >= 0");
    assert_int_equal(validate(s, "1e-400"), 0);
    s = one("{\"maximum\": 1e300}");
    assert_int_equal(validate(s, "999999999999999999999999999999"), 0);
    expect1(s, "1.0000000000000000000000001e300", "", "must be <= 1e300");
    /* Bounds do not apply to other types. */
    assert_int_equal(validate(s, "\"1e301\""), 0);
}

static void test_arrays(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = one("{\"type\": \"array\", \"minItems\": 1, \"maxItems\": 3, "
            "\"items\": {\"type\": \"integer\"}}");
    assert_int_equal(validate(s, "[1, 2, 3]"), 0);
    expect1(s, "[]", "", "must have at least 1 item");
    expect1(s, "[1, 2, 3, 4]", "", "must have at most 3 items");
    expect1(s, "[1, \"2\", 3]", "/1", "must be an integer");
    s = one("{\"maxItems\": 10}");
    expect1(s, "[0,1,2,3,4,5,6,7,8,9,10]", "", "must have at most 10 items");
}

static void test_objects(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = schema_of("{\"s\": {\"type\": \"object\", \"required\": [\"name\", \"a/b\"], "
                  "\"additionalProperties\": false, \"properties\": {"
                  "\"name\": {\"type\": \"string\", \"maxLength\": 40}, "
                  "\"a/b\": {}, \"m~n\": {\"type\": \"integer\"}, "
                  "\"list\": {\"items\": {\"properties\": {\"x~/\": {\"type\": \"string\"}}}}}}}");
    assert_int_equal(validate(s, "{\"name\": \"x\", \"a/b\": 1}"), 0);
    expect1(s, "{\"a/b\": 1}", "/name", "is required");
    expect1(s, "{\"name\": \"x\"}", "/a~1b", "is required");
    expect1(s, "{\"name\": \"x\", \"a/b\": 1, \"m~n\": 1.5}", "/m~0n", "must be an integer");
    expect1(s, "{\"name\": \"x\", \"a/b\": 1, \"extra\": 1}", "/extra",
            "is not allowed (additionalProperties is false)");
    expect1(s, "{\"name\": \"x\", \"a/b\": 1, \"list\": [{}, {}, {\"x~/\": 5}]}", "/list/2/x~0~1",
            "must be a string");
    expect1(s, "{\"name\": \"x\", \"a/b\": 1, \"\": 0}", "/",
            "is not allowed (additionalProperties is false)");
    /* Default additionalProperties is true; properties only apply to objects */
    s = one("{\"properties\": {\"a\": {\"type\": \"string\"}}}");
    assert_int_equal(validate(s, "{\"b\": 1}"), 0);
    assert_int_equal(validate(s, "[1]"), 0);
    expect1(s, "{\"a\": 1}", "/a", "must be a string");
}

static void test_document_order(void **state)
{
    const pt_jschema_t *s;
    pt_json_t *out = NULL;
    static const char *const expect[][2] = {
        {"/id", "is required"},
        {"/name", "must be at most 3 characters"},
        {"/tags/0", "must be a string"},
        {"/tags/2", "must be a string"},
        {"/zz", "is not allowed (additionalProperties is false)"},
        {"/age", "must be >= 0"},
    };
    size_t i;

    (void)state;
    s = one("{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"id\"], "
            "\"properties\": {\"age\": {\"minimum\": 0}, \"id\": {}, "
            "\"name\": {\"maxLength\": 3}, \"tags\": {\"items\": {\"type\": \"string\"}}}}");
    assert_int_equal(validate_mode(s,
                                   "{\"name\": \"abcd\", \"tags\": [1, \"a\", 2], \"zz\": 1, "
                                   "\"age\": -1}",
                                   PT_JSCHEMA_REQUEST, &out),
                     6);
    for (i = 0; i < PT_ARRAY_SIZE(expect); i++) {
        pt_json_t *o = pt_json_at(out, i);
        assert_string_equal(pt_json_get(o, "pointer")->u.str.p, expect[i][0]);
        assert_string_equal(pt_json_get(o, "message")->u.str.p, expect[i][1]);
    }
}

static void test_max_violations(void **state)
{
    const pt_jschema_t *s;
    pt_json_t *out = NULL, *v;

    (void)state;
    s = one("{\"items\": {\"type\": \"string\"}}");
    v = parse("[1, 2, 3, 4, 5]");
    assert_int_equal(pt_jschema_validate(s, v, PT_JSCHEMA_REQUEST, &arena, 2, &out), 5);
    assert_int_equal(out->u.arr.n, 2);
    assert_string_equal(pt_json_get(pt_json_at(out, 0), "pointer")->u.str.p, "/0");
    assert_string_equal(pt_json_get(pt_json_at(out, 1), "pointer")->u.str.p, "/1");
    assert_int_equal(pt_jschema_validate(s, v, PT_JSCHEMA_REQUEST, &arena, 0, &out), 5);
    assert_non_null(out);
    assert_int_equal(out->u.arr.n, 0);
    assert_int_equal(pt_jschema_validate(s, v, PT_JSCHEMA_REQUEST, &arena, 100, NULL), 5);
    assert_int_equal(pt_jschema_validate(s, v, PT_JSCHEMA_REQUEST, NULL, 100, NULL), 5);
    /* valid: no array */
    out = v;
    assert_int_equal(pt_jschema_validate(s, parse("[\"a\"]"), PT_JSCHEMA_REQUEST, &arena, 2, &out),
                     0);
    assert_null(out);
}

static void test_read_write_only(void **state)
{
    const pt_jschema_t *s;

    (void)state;
    s = schema_of("{\"Id\": {\"type\": \"string\", \"readOnly\": true}, "
                  "\"s\": {\"required\": [\"id\", \"name\", \"password\"], \"properties\": {"
                  "\"id\": {\"$ref\": \"#/schemas/Id\"}, "
                  "\"created\": {\"type\": \"string\", \"readOnly\": true}, "
                  "\"name\": {\"type\": \"string\"}, "
                  "\"password\": {\"type\": \"string\", \"writeOnly\": true}}}}");
    /* A request: readOnly ones absent (even if required), writeOnly ones allowed */
    assert_int_equal(validate(s, "{\"name\": \"a\", \"password\": \"p\"}"), 0);
    expect1(s, "{\"name\": \"a\", \"password\": \"p\", \"created\": \"x\"}", "/created",
            "is read-only");
    expect1(s, "{\"name\": \"a\", \"password\": \"p\", \"id\": \"x\"}", "/id", "is read-only");
    expect1(s, "{\"name\": \"a\"}", "/password", "is required");
    /* A response: the reverse */
    assert_int_equal(validate_mode(s, "{\"name\": \"a\", \"id\": \"1\", \"created\": \"x\"}",
                                   PT_JSCHEMA_RESPONSE, NULL),
                     0);
    expect1_mode(s, "{\"name\": \"a\", \"created\": \"x\"}", PT_JSCHEMA_RESPONSE, "/id",
                 "is required");
    expect1_mode(s, "{\"name\": \"a\", \"id\": \"1\", \"password\": \"p\"}", PT_JSCHEMA_RESPONSE,
                 "/password", "is write-only");
}

static void test_formats(void **state)
{
    static const char *const good_dates[] = {"2024-02-29", "2000-02-29", "1999-12-31",
                                             "0001-01-01"};
    static const char *const bad_dates[] = {
        "2023-02-29", "1900-02-29",           "2024-13-01", "2024-00-10", "2024-04-31",
        "2024-4-01",  "2024-04-01T00:00:00Z", "24-04-01",   "2024/04/01", ""};
    static const char *const good_dts[] = {"2024-02-29T23:59:60Z", "2024-01-01T00:00:00+01:00",
                                           "2024-01-01t00:00:00.123456z",
                                           "2024-06-30T12:30:00-23:59"};
    static const char *const bad_dts[] = {"2024-01-01T00:00:00",
                                          "2024-01-01 00:00:00Z",
                                          "2024-01-01T24:00:00Z",
                                          "2024-01-01T00:60:00Z",
                                          "2024-01-01T00:00:61Z",
                                          "2024-01-01T00:00:00.Z",
                                          "2024-01-01T00:00:00+24:00",
                                          "2024-01-01T00:00:00+0100",
                                          "2023-02-29T00:00:00Z",
                                          "2024-01-01T00:00:00Zjunk",
                                          "2024-01-01"};
    static const char *const good_emails[] = {"a@b.co", "first.last+tag@sub.example.org",
                                              "\xc3\xa9@\xc3\xa9.fr"};
    static const char *const bad_emails[] = {"a.b.co",   "@b.co", "a@b",   "a@@b.co", "a@b@c.co",
                                             "a b@c.co", "a@.co", "a@co.", "a@b..co", ""};
    static const char *const good_uuids[] = {"123e4567-e89b-12d3-a456-426614174000",
                                             "123E4567-E89B-12D3-A456-426614174000"};
    static const char *const bad_uuids[] = {
        "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-42661417400g", "{123e4567-e89b-12d3-a456-426614174000}"};
    static const char *const good_uris[] = {"https://example.com/a?b=c#d", "urn:isbn:0451450523",
                                            "mailto:a@b.co", "a+b-c.d:x%20y", "file:"};
    static const char *const bad_uris[] = {
        "/relative/path", "example.com", "1http://x",       "ht tp://x", "http://x y",
        "http://x/%zz",   "http://x/%2", "http://\xc3\xa9", ":x",        ""};
    static const struct {
        const char *format, *message;
        const char *const *good, *const *bad;
        size_t ngood, nbad;
    } cases[] = {
        {"date", "must be a valid date (YYYY-MM-DD)", good_dates, bad_dates,
         PT_ARRAY_SIZE(good_dates), PT_ARRAY_SIZE(bad_dates)},
        {"date-time", "must be a valid date-time (RFC 3339)", good_dts, bad_dts,
         PT_ARRAY_SIZE(good_dts), PT_ARRAY_SIZE(bad_dts)},
        {"email", "must be a valid email address", good_emails, bad_emails,
         PT_ARRAY_SIZE(good_emails), PT_ARRAY_SIZE(bad_emails)},
        {"uuid", "must be a valid UUID", good_uuids, bad_uuids, PT_ARRAY_SIZE(good_uuids),
         PT_ARRAY_SIZE(bad_uuids)},
        {"uri", "must be an absolute URI", good_uris, bad_uris, PT_ARRAY_SIZE(good_uris),
         PT_ARRAY_SIZE(bad_uris)},
    };
    char doc[64], inst[300];
    size_t i, j;

    (void)state;
    for (i = 0; i < PT_ARRAY_SIZE(cases); i++) {
        const pt_jschema_t *s;
        snprintf(doc, sizeof(doc), "{\"format\": \"%s\"}", cases[i].format);
        s = one(doc);
        for (j = 0; j < cases[i].ngood; j++) {
            snprintf(inst, sizeof(inst), "\"%s\"", cases[i].good[j]);
            if (validate(s, inst) != 0)
                fail_msg("%s should be a valid %s", inst, cases[i].format);
        }
        for (j = 0; j < cases[i].nbad; j++) {
            snprintf(inst, sizeof(inst), "\"%s\"", cases[i].bad[j]);
            expect1(s, inst, "", cases[i].message);
        }
        /* formats only apply to strings */
        assert_int_equal(validate(s, "12"), 0);
    }
    /* An email of 255 bytes is too long. */
    {
        char big[300];
        const pt_jschema_t *s = one("{\"format\": \"email\"}");
        memset(big, 'a', sizeof(big));
        memcpy(big, "\"", 1);
        memcpy(big + 1 + 248, "@b.com\"", 8);
        assert_int_equal(validate(s, big), 0); /* 254 bytes */
        memset(big, 'a', sizeof(big));
        memcpy(big, "\"", 1);
        memcpy(big + 1 + 249, "@b.com\"", 8);
        expect1(s, big, "", "must be a valid email address");
    }
}

static void test_refs(void **state)
{
    char err[256];
    pt_jschema_set_t *set;
    const pt_jschema_t *s, *tree, *anon;

    (void)state;
    /* A forward reference, a backward one and a recursive tree. */
    set = pt_jschema_compile(
        &arena,
        parse("{\"order\": {\"type\": \"object\", \"properties\": {"
              "\"customer\": {\"$ref\": \"#/schemas/customer\", \"nullable\": true}, "
              "\"root\": {\"$ref\": \"#/schemas/tree\"}}}, "
              "\"customer\": {\"type\": \"object\", \"required\": [\"name\"]}, "
              "\"tree\": {\"type\": \"object\", \"required\": [\"value\"], \"properties\": {"
              "\"value\": {\"type\": \"integer\"}, "
              "\"children\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/schemas/tree\"}}}}, "
              "\"we~ird/name\": {\"type\": \"string\"}, "
              "\"uses_weird\": {\"$ref\": \"#/schemas/we~0ird~1name\"}}"),
        err, sizeof(err));
    if (set == NULL)
        fail_msg("%s", err);
    assert_null(pt_jschema_get(set, "nope"));
    assert_null(pt_jschema_get(NULL, "order"));
    s = pt_jschema_get(set, "order");
    tree = pt_jschema_get(set, "tree");
    assert_non_null(s);
    assert_non_null(tree);
    assert_int_equal(pt_jschema_doc(tree)->type, PT_JSON_OBJECT);
    assert_non_null(pt_json_get(pt_jschema_doc(tree), "required"));
    assert_int_equal(validate(s, "{\"customer\": null}"), 0);
    assert_int_equal(validate(s, "{\"customer\": {\"name\": 1}}"), 0);
    expect1(s, "{\"customer\": {}}", "/customer/name", "is required");
    expect1(s, "{\"customer\": 3}", "/customer", "must be an object");
    assert_int_equal(
        validate(tree, "{\"value\": 1, \"children\": [{\"value\": 2}, {\"value\": 3, \"children\": "
                       "[{\"value\": 4, \"children\": []}]}]}"),
        0);
    expect1(s,
            "{\"root\": {\"value\": 1, \"children\": [{\"value\": 2}, {\"value\": 3, "
            "\"children\": [{\"value\": 4.5}]}]}}",
            "/root/children/1/children/0/value", "must be an integer");
    expect1(pt_jschema_get(set, "uses_weird"), "1", "", "must be a string");

    /* An anonymous schema referring to the set */
    anon = pt_jschema_compile_one(
        &arena, set, parse("{\"type\": \"array\", \"items\": {\"$ref\": \"#/schemas/tree\"}}"), err,
        sizeof(err));
    if (anon == NULL)
        fail_msg("%s", err);
    expect1(anon, "[{\"value\": 1}, {}]", "/1/value", "is required");
    /* ... and without a set */
    assert_null(pt_jschema_compile_one(&arena, NULL, parse("{\"$ref\": \"#/schemas/tree\"}"), err,
                                       sizeof(err)));
    assert_string_equal(err, "$ref: no schema named \"tree\"");
    assert_null(pt_jschema_compile_one(
        &arena, set, parse("{\"properties\": {\"a\": {\"pattern\": \"x\"}}}"), err, sizeof(err)));
    assert_string_equal(err, "/properties/a: pattern is not supported");
    /* Keywords beside $ref apply too. */
    s = schema_of("{\"str\": {\"type\": \"string\"}, "
                  "\"s\": {\"$ref\": \"#/schemas/str\", \"maxLength\": 2}}");
    expect1(s, "3", "", "must be a string");
    expect1(s, "\"abc\"", "", "must be at most 2 characters");
}

static void test_compile_errors(void **state)
{
    char err[256];
    static const char *const cases[][2] = {
        {"{\"customer\": {\"properties\": {\"name\": {\"pattern\": \"^a\"}}}}",
         "customer: /properties/name: pattern is not supported"},
        {"{\"customer\": {\"properties\": {\"age\": {\"minimum\": \"1\"}}}}",
         "customer: /properties/age: minimum must be a number"},
        {"{\"c\": {\"tpye\": \"string\"}}", "c: unknown keyword \"tpye\""},
        {"{\"c\": {\"oneOf\": []}}", "c: oneOf is not supported"},
        {"{\"c\": {\"multipleOf\": 2}}", "c: multipleOf is not supported"},
        {"{\"c\": {\"if\": {}}}", "c: if is not supported"},
        {"{\"c\": {\"patternProperties\": {}}}", "c: patternProperties is not supported"},
        {"{\"c\": {\"items\": {\"properties\": {\"a/b~\": {\"allOf\": []}}}}}",
         "c: /items/properties/a~1b~0: allOf is not supported"},
        {"{\"c\": {\"maxLength\": -1}}", "c: maxLength must be a non-negative integer"},
        {"{\"c\": {\"maxLength\": 1.5}}", "c: maxLength must be a non-negative integer"},
        {"{\"c\": {\"minItems\": \"3\"}}", "c: minItems must be a non-negative integer"},
        {"{\"c\": {\"minLength\": 3, \"maxLength\": 2}}",
         "c: minLength must not be greater than maxLength"},
        {"{\"c\": {\"minItems\": 3, \"maxItems\": 2}}",
         "c: minItems must not be greater than maxItems"},
        {"{\"c\": {\"minimum\": 3, \"maximum\": 2.99}}",
         "c: minimum must not be greater than maximum"},
        {"{\"c\": {\"exclusiveMinimum\": true}}", "c: exclusiveMinimum as a boolean needs minimum"},
        {"{\"c\": {\"exclusiveMaximum\": \"1\"}}",
         "c: exclusiveMaximum must be a number or a boolean"},
        {"{\"c\": {\"required\": [\"a\", 1]}}", "c: required must be an array of strings"},
        {"{\"c\": {\"required\": \"a\"}}", "c: required must be an array of strings"},
        {"{\"c\": {\"required\": [\"a\", \"a\"]}}", "c: required lists \"a\" twice"},
        {"{\"c\": {\"type\": \"str\"}}", "c: type \"str\" is not a JSON Schema type"},
        {"{\"c\": {\"type\": []}}", "c: type must be a type name or a non-empty array of them"},
        {"{\"c\": {\"type\": [\"null\", \"null\"]}}", "c: type lists \"null\" twice"},
        {"{\"c\": {\"nullable\": 1}}", "c: nullable must be a boolean"},
        {"{\"c\": {\"additionalProperties\": {}}}",
         "c: additionalProperties must be a boolean (schemas are not supported)"},
        {"{\"c\": {\"items\": [{}]}}", "c: items must be a schema (an object)"},
        {"{\"c\": {\"properties\": []}}", "c: properties must be an object"},
        {"{\"c\": {\"properties\": {\"a\": true}}}",
         "c: /properties/a: a schema must be an object"},
        {"{\"c\": {\"format\": \"ipv4\"}}",
         "c: format \"ipv4\" is not supported (date, date-time, email, uuid, uri are)"},
        {"{\"c\": {\"format\": 1}}", "c: format must be a string"},
        {"{\"c\": {\"enum\": []}}", "c: enum must be a non-empty array"},
        {"{\"c\": {\"readOnly\": true, \"writeOnly\": true}}",
         "c: readOnly and writeOnly cannot both be true"},
        {"{\"c\": {\"description\": 1}}", "c: description must be a string"},
        {"{\"c\": {\"$ref\": \"#/definitions/x\"}}",
         "c: $ref must be of the form \"#/schemas/<name>\""},
        {"{\"c\": {\"$ref\": \"#/schemas/d/properties/x\"}, \"d\": {}}",
         "c: $ref must be of the form \"#/schemas/<name>\""},
        {"{\"c\": {\"$ref\": \"other.json#/schemas/d\"}, \"d\": {}}",
         "c: $ref must be of the form \"#/schemas/<name>\""},
        {"{\"c\": {\"$ref\": \"#/schemas/\"}}", "c: $ref must be of the form \"#/schemas/<name>\""},
        {"{\"c\": {\"$ref\": 1}}", "c: $ref must be a string"},
        {"{\"c\": {\"properties\": {\"x\": {\"$ref\": \"#/schemas/e\"}}}, \"d\": {}}",
         "c: /properties/x: $ref: no schema named \"e\""},
        {"{\"c\": {\"$ref\": \"#/schemas/a~2\"}}", "c: $ref: bad escape in \"#/schemas/a~2\""},
        {"{\"a\": {\"$ref\": \"#/schemas/a\"}}",
         "a: $ref cycle that goes through no properties or items"},
        {"{\"a\": {\"$ref\": \"#/schemas/b\"}, \"b\": {\"$ref\": \"#/schemas/a\"}}",
         "a: $ref cycle that goes through no properties or items"},
        {"{\"c\": []}", "c: a schema must be an object"},
        {"[]", "schemas must be an object (name -> schema)"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < PT_ARRAY_SIZE(cases); i++) {
        const char *got = compile_err(cases[i][0]);
        if (strcmp(got, cases[i][1]) != 0)
            fail_msg("%s:\n got      %s\n expected %s", cases[i][0], got, cases[i][1]);
    }
    /* A small error buffer truncates, NUL-terminated. */
    assert_null(pt_jschema_compile(&arena, parse("{\"customer\": {\"x\": 1}}"), err, 12));
    assert_string_equal(err, "customer: u");
    assert_null(pt_jschema_compile(&arena, parse("{\"customer\": {\"x\": 1}}"), NULL, 0));
    /* An empty set is fine */
    assert_non_null(pt_jschema_compile(&arena, parse("{}"), err, sizeof(err)));
    /* Annotations are accepted */
    assert_non_null(pt_jschema_compile(&arena,
                                       parse("{\"c\": {\"title\": \"t\", \"description\": \"d\", "
                                             "\"example\": [1], \"default\": {}, \"const\": 1, "
                                             "\"writeOnly\": false, \"readOnly\": false}}"),
                                       err, sizeof(err)));
}

/* Schemas nested more than 64 levels are refused (built with the builders: the
 * parser's own depth limit would stop the text first). */
static void test_nesting_limit(void **state)
{
    char err[1024];
    pt_json_t *defs, *doc, *inner;
    int i;

    (void)state;
    for (int levels = 64; levels <= 65; levels++) {
        inner = pt_json_object(&arena);
        for (i = 0; i < levels; i++) {
            doc = pt_json_object(&arena);
            assert_int_equal(pt_json_object_set(&arena, doc, "items", 5, inner), PT_OK);
            inner = doc;
        }
        defs = pt_json_object(&arena);
        assert_int_equal(pt_json_object_set(&arena, defs, "deep", 4, inner), PT_OK);
        if (levels == 64) {
            assert_non_null(pt_jschema_compile(&arena, defs, err, sizeof(err)));
        } else {
            assert_null(pt_jschema_compile(&arena, defs, err, sizeof(err)));
            assert_non_null(strstr(err, "schema nested too deeply (more than 64 levels)"));
            assert_true(strncmp(err, "deep: /items/items/", 19) == 0);
        }
    }
}

/* A value deeper than the validator's guard (built with the builders)
 * against a recursive schema: a violation, no overflow. */
static void test_depth_guard(void **state)
{
    const pt_jschema_t *s;
    pt_json_t *v, *inner, *out = NULL;
    int i;

    (void)state;
    s = schema_of("{\"s\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/schemas/s\"}}}");
    inner = pt_json_array(&arena);
    for (i = 0; i < 1000; i++) {
        v = pt_json_array(&arena);
        assert_int_equal(pt_json_array_add(&arena, v, inner), PT_OK);
        inner = v;
    }
    assert_int_equal(pt_jschema_validate(s, inner, PT_JSCHEMA_REQUEST, &arena, 10, &out), 1);
    assert_string_equal(pt_json_get(pt_json_at(out, 0), "message")->u.str.p,
                        "is nested too deeply to be validated");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nullable_and_type_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum_const, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_document_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_violations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_write_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compile_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_guard, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
