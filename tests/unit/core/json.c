/*
 * Unit tests of src/core/json.c.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/json.h"

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

static pt_json_t *parse_n(const char *s, size_t n)
{
    pt_json_error_t err;
    pt_json_t *v = pt_json_parse(&arena, s, n, NULL, &err);
    if (v == NULL)
        fail_msg("parse of '%.*s' failed: %s at %zu", (int)n, s, err.message, err.offset);
    return v;
}

static pt_json_t *parse(const char *s)
{
    return parse_n(s, strlen(s));
}

/* Parses in, writes it compactly and compares with out (in when NULL). */
static void expect_write(const char *in, const char *out)
{
    pt_json_t *v = parse(in), *w;
    pt_buf_t b;

    if (out == NULL)
        out = in;
    pt_buf_init(&b, 0);
    assert_int_equal(pt_json_write(&b, v), PT_OK);
    if (b.len != strlen(out) || memcmp(b.data, out, b.len) != 0)
        fail_msg("'%s' wrote '%.*s', expected '%s'", in, (int)b.len, b.data, out);
    /* The output parses back to an equal value. */
    w = parse_n(b.data, b.len);
    assert_true(pt_json_equal(v, w));
    pt_buf_free(&b);
}

static void expect_error_n(const char *in, size_t n, const char *msg, size_t offset, unsigned line,
                           unsigned column, const pt_json_limits_t *lim)
{
    pt_json_error_t err;
    memset(&err, 0x5a, sizeof(err));
    if (pt_json_parse(&arena, in, n, lim, &err) != NULL)
        fail_msg("'%.*s' parsed, expected error '%s'", (int)n, in, msg);
    if (strncmp(err.message, msg, strlen(msg)) != 0 || err.offset != offset || err.line != line ||
        err.column != column)
        fail_msg("'%.*s': got '%s' at %zu (%u:%u), expected '%s' at %zu (%u:%u)", (int)n, in,
                 err.message, err.offset, err.line, err.column, msg, offset, line, column);
}

static void expect_error(const char *in, const char *msg, size_t offset, unsigned line,
                         unsigned column)
{
    expect_error_n(in, strlen(in), msg, offset, line, column, NULL);
}

static void test_roundtrip(void **state)
{
    (void)state;
    expect_write("null", NULL);
    expect_write("true", NULL);
    expect_write("false", NULL);
    expect_write("0", NULL);
    expect_write("-0", NULL);
    expect_write("\"\"", NULL);
    expect_write("[]", NULL);
    expect_write("{}", NULL);
    expect_write(" \t\r\n [ 1 , 2.50 , -3e+07 , 4E-2 , 0.0e0 ] \n", "[1,2.50,-3e+07,4E-2,0.0e0]");
    expect_write("12345678901234567890.10", NULL);
    expect_write("{\"a\" : {\"b\":[true,false,null,{}]} , \"c\":\"d\"}",
                 "{\"a\":{\"b\":[true,false,null,{}]},\"c\":\"d\"}");
    expect_write("[[[[[[]]]]],[{}],{\"\":[]}]", NULL);
    /* Escapes normalised by the writer; "/" not escaped. */
    expect_write("\"a\\/b\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\"",
                 "\"a/b\\\"\\\\\\u0008\\u000c\\n\\r\\t\\u0001\\u001f\"");
    expect_write("\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"",
                 "\"A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    expect_write("\"\\u0000\"", NULL);
    expect_write("\"\x7f\"", NULL);
    /* Member order kept. */
    expect_write("{\"z\":1,\"a\":2,\"m\":3}", NULL);
}

static void test_parse_values(void **state)
{
    pt_json_t *v;

    (void)state;
    v = parse("{\"k\":[1,\"two\",null],\"e\":{}}");
    assert_int_equal(v->type, PT_JSON_OBJECT);
    assert_int_equal(v->u.obj.n, 2);
    assert_string_equal(v->u.obj.members[0].key, "k");
    assert_int_equal(v->u.obj.members[0].key_len, 1);
    assert_int_equal(pt_json_get(v, "k")->type, PT_JSON_ARRAY);
    assert_int_equal(pt_json_at(pt_json_get(v, "k"), 0)->type, PT_JSON_NUMBER);
    assert_string_equal(pt_json_at(pt_json_get(v, "k"), 1)->u.str.p, "two");
    assert_int_equal(pt_json_at(pt_json_get(v, "k"), 2)->type, PT_JSON_NULL);
    assert_null(pt_json_at(pt_json_get(v, "k"), 3));
    assert_null(pt_json_at(v, 0));
    assert_null(pt_json_get(v, "x"));
    assert_null(pt_json_get(pt_json_get(v, "k"), "k"));
    assert_null(pt_json_get(NULL, "k"));
    assert_non_null(pt_json_getn(v, "kk", 1)); /* "k" */
    assert_int_equal(pt_json_get(v, "e")->u.obj.n, 0);

    /* A string with NUL inside keeps its length. */
    v = parse("\"a\\u0000b\"");
    assert_int_equal(v->u.str.len, 3);
    assert_memory_equal(v->u.str.p, "a\0b", 4);

    /* NULL data with length 0 and a NULL error pointer. */
    assert_null(pt_json_parse(&arena, NULL, 0, NULL, NULL));
    assert_non_null(pt_json_parse(&arena, "1", 1, NULL, NULL));
    /* Only len bytes are read. */
    v = pt_json_parse(&arena, "[1]garbage", 3, NULL, NULL);
    assert_non_null(v);

    assert_string_equal(pt_json_type_name(PT_JSON_NULL), "null");
    assert_string_equal(pt_json_type_name(PT_JSON_TRUE), "boolean");
    assert_string_equal(pt_json_type_name(PT_JSON_FALSE), "boolean");
    assert_string_equal(pt_json_type_name(PT_JSON_NUMBER), "number");
    assert_string_equal(pt_json_type_name(PT_JSON_STRING), "string");
    assert_string_equal(pt_json_type_name(PT_JSON_ARRAY), "array");
    assert_string_equal(pt_json_type_name(PT_JSON_OBJECT), "object");
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("", "empty document", 0, 1, 1);
    expect_error(" \n\t ", "empty document", 4, 2, 3);
    expect_error("\xef\xbb\xbf{}", "byte order mark not allowed", 0, 1, 1);
    expect_error("{} x", "unexpected 'x', expected the end of the document", 3, 1, 4);
    expect_error("1 2", "unexpected '2', expected the end", 2, 1, 3);
    expect_error("[1,]", "unexpected ']', expected a value", 3, 1, 4);
    expect_error("[1 2]", "unexpected '2', expected ',' or ']' after an array item", 3, 1, 4);
    expect_error("[1", "unexpected end of input, expected ',' or ']'", 2, 1, 3);
    expect_error("[", "unexpected end of input, expected a value", 1, 1, 2);
    expect_error("{\"a\":1,}", "unexpected '}', expected a string key", 7, 1, 8);
    expect_error("{,}", "unexpected ',', expected a string key or '}'", 1, 1, 2);
    expect_error("{a:1}", "unexpected 'a', expected a string key or '}'", 1, 1, 2);
    expect_error("{\"a\" 1}", "unexpected '1', expected ':' after an object key", 5, 1, 6);
    expect_error("{\"a\":1 \"b\":2}", "unexpected '\"', expected ',' or '}' after an object member",
                 7, 1, 8);
    expect_error("{\"a\":}", "unexpected '}', expected a value", 5, 1, 6);
    expect_error("{\"a\":1,\n \"a\":2}", "duplicate key \"a\"", 9, 2, 2);
    expect_error("{\"a\\u0000b\":1}", "object key contains a NUL character", 1, 1, 2);
    expect_error("// c\n1", "unexpected '/', expected a value", 0, 1, 1);
    expect_error("'a'", "unexpected ''', expected a value", 0, 1, 1);
    expect_error("\x01", "unexpected byte 0x01, expected a value", 0, 1, 1);
    expect_error("\xc3\xa9", "unexpected byte 0xc3, expected a value", 0, 1, 1);
    /* Literals */
    expect_error("tru", "invalid literal (expected 'true')", 3, 1, 4);
    expect_error("nul", "invalid literal (expected 'null')", 3, 1, 4);
    expect_error("[falsy]", "invalid literal (expected 'false')", 5, 1, 6);
    expect_error("truex", "unexpected 'x', expected the end", 4, 1, 5);
    expect_error("NaN", "unexpected 'N', expected a value", 0, 1, 1);
    expect_error("Infinity", "unexpected 'I', expected a value", 0, 1, 1);
    expect_error("-Infinity", "invalid number: expected a digit", 1, 1, 2);
    /* Numbers */
    expect_error("01", "invalid number: leading zero", 1, 1, 2);
    expect_error("-01", "invalid number: leading zero", 2, 1, 3);
    expect_error("+1", "unexpected '+', expected a value", 0, 1, 1);
    expect_error(".5", "unexpected '.', expected a value", 0, 1, 1);
    expect_error("5.", "invalid number: expected a digit after '.'", 2, 1, 3);
    expect_error("5.e3", "invalid number: expected a digit after '.'", 2, 1, 3);
    expect_error("1e", "invalid number: expected a digit in the exponent", 2, 1, 3);
    expect_error("1e+", "invalid number: expected a digit in the exponent", 3, 1, 4);
    expect_error("1E-x", "invalid number: expected a digit in the exponent", 3, 1, 4);
    expect_error("-", "invalid number: expected a digit", 1, 1, 2);
    expect_error("0x10", "unexpected 'x', expected the end", 1, 1, 2);
    expect_error("[1.5.2]", "unexpected '.', expected ',' or ']'", 4, 1, 5);
    /* Strings */
    expect_error("\"abc", "unterminated string", 4, 1, 5);
    expect_error("\"abc\\", "unterminated string", 5, 1, 6);
    expect_error("\"\\u12", "unterminated string", 5, 1, 6);
    expect_error("\"a\tb\"", "control character 0x09 in a string", 2, 1, 3);
    expect_error("[\n\"a\nb\"]", "control character 0x0a in a string", 4, 2, 3);
    expect_error_n("\"a\0b\"", 5, "control character 0x00 in a string", 2, 1, 3, NULL);
    expect_error("\"\\x\"", "invalid escape sequence", 1, 1, 2);
    expect_error("\"\\U0041\"", "invalid escape sequence", 1, 1, 2);
    expect_error("\"\\u00g1\"", "invalid \\u escape", 1, 1, 2);
    expect_error("\"ab\\'\"", "invalid escape sequence", 3, 1, 4);
    /* Line and column count bytes, lines end with LF. */
    expect_error("{\n  \"a\": [1,\n  2,\n  x]}", "unexpected 'x', expected a value", 20, 4, 3);
    expect_error("\r\n\r\n  ]", "unexpected ']', expected a value", 6, 3, 3);
}

static void test_unicode(void **state)
{
    pt_json_t *v;

    (void)state;
    v = parse("\"\\ud83d\\ude00\"");
    assert_int_equal(v->u.str.len, 4);
    assert_memory_equal(v->u.str.p, "\xf0\x9f\x98\x80", 4);
    v = parse("\"\\uDBFF\\uDFFF\""); /* U+10FFFF, upper-case hex */
    assert_memory_equal(v->u.str.p, "\xf4\x8f\xbf\xbf", 5);
    v = parse("\"\\u07ff\\u0800\\uffff\"");
    assert_memory_equal(v->u.str.p, "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 9);
    /* Raw UTF-8 of every length, boundaries included. */
    v = parse("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf"
              "\xbf\"");
    assert_int_equal(v->u.str.len, 21);

    /* Lone surrogates */
    expect_error("\"\\ud800\"", "lone surrogate \\ud800", 1, 1, 2);
    expect_error("\"x\\udc00\"", "lone surrogate \\udc00", 2, 1, 3);
    expect_error("\"\\ud800\\u0041\"", "lone surrogate \\ud800", 1, 1, 2);
    expect_error("\"\\ud800\\ud800\"", "lone surrogate \\ud800", 1, 1, 2);
    expect_error("\"\\ud800x\"", "lone surrogate \\ud800", 1, 1, 2);
    expect_error("\"\\ud800\\n\"", "lone surrogate \\ud800", 1, 1, 2);
    expect_error("\"\\ud800\\uzzzz\"", "invalid \\u escape", 7, 1, 8);
    expect_error("\"\\ud800", "unterminated string", 7, 1, 8);
    expect_error("\"\\ud800\\udc0", "unterminated string", 12, 1, 13);
    /* Invalid raw UTF-8 */
    expect_error("\"\x80\"", "invalid UTF-8 in a string", 1, 1, 2);
    expect_error("\"a\xc0\xaf\"", "invalid UTF-8", 2, 1, 3);        /* overlong '/' */
    expect_error("\"\xc1\xbf\"", "invalid UTF-8", 1, 1, 2);         /* overlong */
    expect_error("\"\xe0\x9f\xbf\"", "invalid UTF-8", 1, 1, 2);     /* overlong U+07FF */
    expect_error("\"\xf0\x8f\xbf\xbf\"", "invalid UTF-8", 1, 1, 2); /* overlong U+FFFF */
    expect_error("\"\xed\xa0\x80\"", "invalid UTF-8", 1, 1, 2);     /* U+D800 */
    expect_error("\"\xed\xbf\xbf\"", "invalid UTF-8", 1, 1, 2);     /* U+DFFF */
    expect_error("\"\xf4\x90\x80\x80\"", "invalid UTF-8", 1, 1, 2); /* U+110000 */
    expect_error("\"\xf5\x80\x80\x80\"", "invalid UTF-8", 1, 1, 2); /* lead F5 */
    expect_error("\"\xff\"", "invalid UTF-8", 1, 1, 2);
    expect_error("\"\xe2\x82\"", "invalid UTF-8", 1, 1, 2);                 /* truncated */
    expect_error("\"\xe2\x82", "invalid UTF-8", 1, 1, 2);                   /* truncated at end */
    expect_error("\"\xc3\xa9\xc3(\"", "invalid UTF-8", 3, 1, 4);            /* bad continuation */
    expect_error("{\"\xc3\xa9\":1,\"\x80\":2}", "invalid UTF-8", 9, 1, 10); /* in a key */
}

static void test_duplicates(void **state)
{
    pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
    pt_buf_t b;
    size_t i, off = 0, n;
    char *doc;

    (void)state;
    expect_error("{\"a\":1,\"b\":2,\"a\":3}", "duplicate key \"a\"", 13, 1, 14);
    /* Keys compare after unescaping. */
    expect_error("{\"\\u0061\":1,\"a\":3}", "duplicate key \"a\"", 12, 1, 13);
    /* The key is shown escaped and cut. */
    expect_error("{\"q\\\"\\n\":1,\"q\\\"\\n\":3}", "duplicate key \"q\\\"\\n\"", 11, 1, 12);
    {
        char in[300];
        const char *k = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                        "kkkkkkkkkkkkkk";
        pt_json_error_t err;
        snprintf(in, sizeof(in), "{\"%s\":1,\"%s\":2}", k, k);
        assert_null(pt_json_parse(&arena, in, strlen(in), NULL, &err));
        assert_string_equal(
            err.message, "duplicate key \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\"");
        assert_int_equal(err.offset, strlen(k) + 6);
    }
    /* Same keys in different objects are fine. */
    parse("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}");

    /* Large objects: the check happens when the object closes, at the right key. */
    pt_buf_init(&b, 0);
    for (n = 0; n < 3; n++) {
        pt_buf_reset(&b);
        pt_buf_append_str(&b, "{");
        for (i = 0; i < 200; i++) {
            if (i > 0)
                pt_buf_append_str(&b, ",");
            if ((n == 1 && i == 150) || (n == 2 && i == 33)) {
                off = b.len;
                pt_buf_printf(&b, "\"k%zu\":%zu", n == 1 ? (size_t)40 : (size_t)32, i);
            } else if (n == 2 && i == 180) {
                pt_buf_printf(&b, "\"k%zu\":%zu", (size_t)3, i);
            } else {
                pt_buf_printf(&b, "\"k%zu\":%zu", i, i);
            }
        }
        pt_buf_append_str(&b, "}");
        doc = b.data;
        if (n == 0) {
            pt_json_t *v = parse_n(doc, b.len);
            assert_int_equal(v->u.obj.n, 200);
            assert_int_equal(pt_json_get(v, "k199")->u.str.len, 3);
        } else {
            expect_error_n(doc, b.len, n == 1 ? "duplicate key \"k40\"" : "duplicate key \"k32\"",
                           off, 1, (unsigned)off + 1, &lim);
        }
    }
    pt_buf_free(&b);
}

static void test_limits(void **state)
{
    pt_json_limits_t lim;
    pt_json_error_t err;
    char deep[200];

    (void)state;
    lim = (pt_json_limits_t){3, 100, 0};
    assert_non_null(pt_json_parse(&arena, "[[[1]]]", 7, &lim, &err));
    assert_non_null(pt_json_parse(&arena, "{\"a\":[{}]}", 10, &lim, &err));
    expect_error_n("[[[[1]]]]", 9, "too deep", 3, 1, 4, &lim);
    expect_error_n("[{\"a\":{\"b\":[]}}]", 16, "too deep", 11, 1, 12, &lim);
    lim.max_depth = 0;
    assert_non_null(pt_json_parse(&arena, "1", 1, &lim, &err));
    expect_error_n("[]", 2, "too deep", 0, 1, 1, &lim);

    /* Default: 64 levels. */
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    assert_non_null(pt_json_parse(&arena, deep, 128, NULL, &err));
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    expect_error_n(deep, 130, "too deep", 64, 1, 65, NULL);

    /* Items: every value counts, containers included, keys not. */
    lim = (pt_json_limits_t){64, 4, 0};
    assert_non_null(pt_json_parse(&arena, "[1,2,3]", 7, &lim, &err));
    assert_non_null(pt_json_parse(&arena, "{\"a\":1,\"b\":[2]}", 15, &lim, &err));
    expect_error_n("[1,2,3,4]", 9, "too many values", 7, 1, 8, &lim);
    lim.max_items = 0; /* no limit */
    assert_non_null(pt_json_parse(&arena, "[1,2,3,4,5,6]", 13, &lim, &err));

    /* String length after unescaping, keys included. */
    lim = (pt_json_limits_t){64, 100, 3};
    assert_non_null(pt_json_parse(&arena, "\"abc\"", 5, &lim, &err));
    assert_non_null(pt_json_parse(&arena, "\"\\u0061\\u0062\\u0063\"", 20, &lim, &err));
    assert_non_null(pt_json_parse(&arena, "\"\xe2\x82\xac\"", 5, &lim, &err));
    expect_error_n("\"abcd\"", 6, "string too long", 0, 1, 1, &lim);
    expect_error_n("[\"\xc3\xa9\xc3\xa9\"]", 7, "string too long", 1, 1, 2, &lim);
    expect_error_n("{\"abcd\":1}", 10, "string too long", 1, 1, 2, &lim);
    expect_error_n("\"ab\\ud83d\\ude00\"", 16, "string too long", 0, 1, 1, &lim);
}

static void expect_int(const char *text, int rc, int64_t want)
{
    pt_json_t *v = pt_json_number_text(&arena, text, strlen(text));
    int64_t out = 12345;
    assert_non_null(v);
    if (pt_json_to_int64(v, &out) != rc || (rc == PT_OK && out != want))
        fail_msg("to_int64(%s): rc %d out %" PRId64 ", expected rc %d out %" PRId64, text,
                 pt_json_to_int64(v, &out), out, rc, want);
}

static void test_to_int64(void **state)
{
    int64_t out;

    (void)state;
    expect_int("0", PT_OK, 0);
    expect_int("-0", PT_OK, 0);
    expect_int("0.000", PT_OK, 0);
    expect_int("0e999999999999999999999", PT_OK, 0);
    expect_int("42", PT_OK, 42);
    expect_int("-42", PT_OK, -42);
    expect_int("1e2", PT_OK, 100);
    expect_int("1E+2", PT_OK, 100);
    expect_int("100.0", PT_OK, 100);
    expect_int("1000e-1", PT_OK, 100);
    expect_int("12.5e1", PT_OK, 125);
    expect_int("0.5e1", PT_OK, 5);
    expect_int("1.5", PT_EINVAL, 0);
    expect_int("1e-1", PT_EINVAL, 0);
    expect_int("1.000000000000000000001", PT_EINVAL, 0);
    expect_int("9223372036854775807", PT_OK, INT64_MAX);
    expect_int("-9223372036854775808", PT_OK, INT64_MIN);
    expect_int("9223372036854775808", PT_EINVAL, 0);
    expect_int("-9223372036854775809", PT_EINVAL, 0);
    expect_int("92233720368547758.07e2", PT_OK, INT64_MAX);
    expect_int("9.223372036854775808e18", PT_EINVAL, 0);
    expect_int("18446744073709551616", PT_EINVAL, 0);
    expect_int("99999999999999999999", PT_EINVAL, 0);
    expect_int("1e18", PT_OK, 1000000000000000000);
    expect_int("1e19", PT_EINVAL, 0);
    expect_int("1e400", PT_EINVAL, 0);
    expect_int("1e-400", PT_EINVAL, 0);
    expect_int("1e99999999999999999999", PT_EINVAL, 0);
    expect_int("123456789012345678", PT_OK, 123456789012345678);
    assert_int_equal(pt_json_to_int64(parse("\"1\""), &out), PT_EINVAL);
    assert_int_equal(pt_json_to_int64(NULL, &out), PT_EINVAL);
    assert_true(pt_json_to_double(parse("0.1")) == 0.1);
    assert_true(pt_json_to_double(parse("-1.5e3")) == -1500.0);
    assert_true(pt_json_to_double(parse("null")) == 0.0);
}

static void expect_num_eq(const char *x, const char *y, int eq)
{
    pt_json_t *a = parse(x), *b = parse(y);
    if (pt_json_equal(a, b) != eq || pt_json_equal(b, a) != eq)
        fail_msg("%s == %s should be %d", x, y, eq);
}

static void test_number_equal(void **state)
{
    (void)state;
    expect_num_eq("1", "1", 1);
    expect_num_eq("1.0", "1", 1);
    expect_num_eq("1", "1e0", 1);
    expect_num_eq("1.0", "1e0", 1);
    expect_num_eq("100", "1e2", 1);
    expect_num_eq("100", "1E+2", 1);
    expect_num_eq("0.01", "1e-2", 1);
    expect_num_eq("123.456", "123456e-3", 1);
    expect_num_eq("0.00123", "1.23e-3", 1);
    expect_num_eq("-0", "0", 1);
    expect_num_eq("-0.0e5", "0", 1);
    expect_num_eq("0e-7", "0.000", 1);
    expect_num_eq("12345678901234567890.10", "1234567890123456789.01e1", 1);
    expect_num_eq("1e400", "10e399", 1);
    expect_num_eq("1e99999999999999999999", "1e99999999999999999999", 1);
    expect_num_eq("1e099999999999999999999", "1.0e99999999999999999999", 1);
    expect_num_eq("0.1", "0.10000000000000001", 0);
    expect_num_eq("1", "-1", 0);
    expect_num_eq("1", "2", 0);
    expect_num_eq("1", "10", 0);
    expect_num_eq("1", "0.1", 0);
    expect_num_eq("12", "21", 0);
    expect_num_eq("1e2", "1e3", 0);
    expect_num_eq("1e400", "1e401", 0);
    expect_num_eq("9007199254740993", "9007199254740992", 0);
    expect_num_eq("1e99999999999999999999", "1e99999999999999999998", 0);
    expect_num_eq("1e99999999999999999999", "1e9", 0);
    expect_num_eq("0", "0.0000000001", 0);
    /* A number never equals a string of its text. */
    expect_num_eq("1", "\"1\"", 0);
}

static void expect_double(double d, const char *text)
{
    pt_json_t *v = pt_json_double(&arena, d);
    assert_non_null(v);
    if (strcmp(v->u.str.p, text) != 0)
        fail_msg("double %.17g wrote %s, expected %s", d, v->u.str.p, text);
    assert_int_equal(v->u.str.len, strlen(text));
    assert_true(pt_json_to_double(v) == d);
    /* The text is valid JSON. */
    assert_non_null(parse(text));
}

static void test_double(void **state)
{
    double zero = 0.0;

    (void)state;
    expect_double(0.1, "0.1");
    expect_double(0.0, "0");
    expect_double(-0.0, "-0");
    expect_double(1.0, "1");
    expect_double(-2.5, "-2.5");
    expect_double(100.0, "100");
    expect_double(1e15, "1000000000000000");
    expect_double(1e16, "1e+16");
    expect_double(0.0001, "0.0001");
    expect_double(0.00001, "1e-05");
    expect_double(9007199254740993.0, "9007199254740992");
    expect_double(36028797018963968.0, "3.602879701896397e+16");
    expect_double(1e21, "1e+21");
    expect_double(1e20, "1e+20");
    expect_double(1.5e-7, "1.5e-07");
    expect_double(0.1 + 0.2, "0.30000000000000004");
    expect_double(1.0 / 3.0, "0.3333333333333333");
    expect_double(123456789012345678.0, "1.2345678901234568e+17");
    expect_double(5e-324, "5e-324");
    expect_double(1.7976931348623157e308, "1.7976931348623157e+308");
    assert_null(pt_json_double(&arena, 1.0 / zero));
    assert_null(pt_json_double(&arena, -1.0 / zero));
    assert_null(pt_json_double(&arena, zero / zero));
}

static void test_builders(void **state)
{
    pt_json_t *o, *arr, *v;
    pt_buf_t b;
    int i;

    (void)state;
    pt_buf_init(&b, 0);
    o = pt_json_object(&arena);
    arr = pt_json_array(&arena);
    assert_int_equal(pt_json_object_set(&arena, o, "name", 4, pt_json_string(&arena, "x\"y", 3)),
                     PT_OK);
    assert_int_equal(pt_json_object_set(&arena, o, "n", 1, pt_json_int(&arena, INT64_MIN)), PT_OK);
    assert_int_equal(pt_json_object_set(&arena, o, "list", 4, arr), PT_OK);
    assert_int_equal(pt_json_object_set(&arena, o, "ok", 2, pt_json_bool(&arena, 1)), PT_OK);
    for (i = 0; i < 20; i++)
        assert_int_equal(pt_json_array_add(&arena, arr, pt_json_int(&arena, i)), PT_OK);
    assert_int_equal(pt_json_array_add(&arena, arr, pt_json_null(&arena)), PT_OK);
    assert_int_equal(pt_json_array_add(&arena, arr, pt_json_bool(&arena, 0)), PT_OK);
    assert_int_equal(pt_json_array_add(&arena, arr, pt_json_number_text(&arena, "1.50", 4)), PT_OK);
    /* Replace in place: order kept. */
    assert_int_equal(pt_json_object_set(&arena, o, "n", 1, pt_json_double(&arena, 0.5)), PT_OK);
    assert_int_equal(o->u.obj.n, 4);
    assert_int_equal(pt_json_write(&b, o), PT_OK);
    assert_int_equal(b.len,
                     strlen("{\"name\":\"x\\\"y\",\"n\":0.5,\"list\":[0,1,2,3,4,5,6,7,8,9,10,"
                            "11,12,13,14,15,16,17,18,19,null,false,1.50],\"ok\":true}"));
    assert_memory_equal(b.data,
                        "{\"name\":\"x\\\"y\",\"n\":0.5,\"list\":[0,1,2,3,4,5,6,7,8,9,10,"
                        "11,12,13,14,15,16,17,18,19,null,false,1.50],\"ok\":true}",
                        b.len);
    /* Keys and strings are copied. */
    {
        char key[4] = "abc", s[4] = "xyz";
        assert_int_equal(pt_json_object_set(&arena, o, key, 3, pt_json_string(&arena, s, 3)),
                         PT_OK);
        key[0] = s[0] = '!';
        assert_string_equal(pt_json_get(o, "abc")->u.str.p, "xyz");
    }
    /* Keys with NUL inside go through getn. */
    assert_int_equal(pt_json_object_set(&arena, o, "a\0b", 3, pt_json_null(&arena)), PT_OK);
    assert_non_null(pt_json_getn(o, "a\0b", 3));
    assert_null(pt_json_get(o, "a"));
    assert_int_equal(pt_json_object_set(&arena, o, "", 0, pt_json_null(&arena)), PT_OK);
    assert_non_null(pt_json_getn(o, "", 0));

    /* Failed builders pass along; wrong containers refused. */
    assert_int_equal(pt_json_array_add(&arena, arr, NULL), PT_ENOMEM);
    assert_int_equal(pt_json_object_set(&arena, o, "x", 1, NULL), PT_ENOMEM);
    assert_int_equal(pt_json_array_add(&arena, o, pt_json_null(&arena)), PT_EINVAL);
    assert_int_equal(pt_json_object_set(&arena, arr, "x", 1, pt_json_null(&arena)), PT_EINVAL);

    /* Number syntax checked. */
    assert_null(pt_json_number_text(&arena, "", 0));
    assert_null(pt_json_number_text(&arena, "01", 2));
    assert_null(pt_json_number_text(&arena, "+1", 2));
    assert_null(pt_json_number_text(&arena, ".5", 2));
    assert_null(pt_json_number_text(&arena, "5.", 2));
    assert_null(pt_json_number_text(&arena, "1e", 2));
    assert_null(pt_json_number_text(&arena, "1 ", 2));
    assert_null(pt_json_number_text(&arena, "NaN", 3));
    v = pt_json_number_text(&arena, "-1.5E+10", 8);
    assert_non_null(v);
    assert_string_equal(v->u.str.p, "-1.5E+10");
    assert_string_equal(pt_json_int(&arena, 123456789012345678)->u.str.p, "123456789012345678");
    assert_string_equal(pt_json_int(&arena, -1)->u.str.p, "-1");

    /* Invalid UTF-8 in a built string is written as U+FFFD. */
    pt_buf_reset(&b);
    assert_int_equal(pt_json_write(&b, pt_json_string(&arena, "a\xff", 2)), PT_OK);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "\"a\xef\xbf\xbd\"", 6);
    pt_buf_free(&b);

    /* A buffer limit: the buffer is left as it was. */
    pt_buf_init(&b, 8);
    assert_int_equal(pt_buf_append(&b, "ab", 2), PT_OK);
    assert_int_equal(pt_json_write(&b, parse("[1,2,3,4,5]")), PT_ELIMIT);
    assert_int_equal(b.len, 2);
    assert_int_equal(pt_json_write(&b, parse("[1,2]")), PT_OK);
    assert_memory_equal(b.data, "ab[1,2]", 7);
    pt_buf_free(&b);
}

static void test_equal(void **state)
{
    (void)state;
    assert_true(pt_json_equal(parse("{\"a\":1,\"b\":[1,{\"c\":null}]}"),
                              parse("{\"b\":[1.0,{\"c\":null}],\"a\":1e0}")));
    assert_false(pt_json_equal(parse("{\"a\":1,\"b\":2}"), parse("{\"a\":1,\"c\":2}")));
    assert_false(pt_json_equal(parse("{\"a\":1}"), parse("{\"a\":1,\"b\":2}")));
    assert_false(pt_json_equal(parse("[1,2]"), parse("[2,1]")));
    assert_false(pt_json_equal(parse("[1,2]"), parse("[1,2,3]")));
    assert_false(pt_json_equal(parse("true"), parse("false")));
    assert_false(pt_json_equal(parse("null"), parse("false")));
    assert_false(pt_json_equal(parse("[]"), parse("{}")));
    assert_true(pt_json_equal(parse("\"a\\u0000\""), parse("\"a\\u0000\"")));
    assert_false(pt_json_equal(parse("\"a\\u0000\""), parse("\"a\"")));
    assert_true(pt_json_equal(parse("\"\\u00e9\""), parse("\"\xc3\xa9\"")));
    assert_true(pt_json_equal(NULL, NULL));
    assert_false(pt_json_equal(parse("null"), NULL));
}

static void test_truthy(void **state)
{
    (void)state;
    assert_false(pt_json_truthy(NULL));
    assert_false(pt_json_truthy(parse("null")));
    assert_false(pt_json_truthy(parse("false")));
    assert_false(pt_json_truthy(parse("0")));
    assert_false(pt_json_truthy(parse("-0.0e10")));
    assert_false(pt_json_truthy(parse("\"\"")));
    assert_false(pt_json_truthy(parse("[]")));
    assert_false(pt_json_truthy(parse("{}")));
    assert_true(pt_json_truthy(parse("true")));
    assert_true(pt_json_truthy(parse("0.001")));
    assert_true(pt_json_truthy(parse("-1")));
    assert_true(pt_json_truthy(parse("\"0\"")));
    assert_true(pt_json_truthy(parse("\"false\"")));
    assert_true(pt_json_truthy(parse("[0]")));
    assert_true(pt_json_truthy(parse("{\"a\":null}")));
}

static void test_large(void **state)
{
    size_t n = 1 << 20, i;
    char *doc = malloc(n + 2);
    pt_json_t *v;
    pt_buf_t b;
    clock_t t0 = clock();

    (void)state;
    assert_non_null(doc);
    /* A 1 MB string. */
    doc[0] = '"';
    for (i = 1; i <= n; i++)
        doc[i] = (char)('a' + i % 26);
    doc[n + 1] = '"';
    v = parse_n(doc, n + 2);
    assert_int_equal(v->u.str.len, n);
    assert_int_equal(v->u.str.p[n - 1], 'a' + n % 26);
    free(doc);

    /* A 100k element array, and an object of 100k members. */
    pt_buf_init(&b, 0);
    pt_buf_append_char(&b, '[');
    for (i = 0; i < 100000; i++)
        pt_buf_printf(&b, "%s%zu", i ? "," : "", i);
    pt_buf_append_char(&b, ']');
    v = parse_n(b.data, b.len);
    assert_int_equal(v->u.arr.n, 100000);
    assert_string_equal(pt_json_at(v, 99999)->u.str.p, "99999");
    pt_buf_reset(&b);
    pt_buf_append_char(&b, '{');
    for (i = 0; i < 100000; i++)
        pt_buf_printf(&b, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    pt_buf_append_char(&b, '}');
    v = parse_n(b.data, b.len);
    assert_int_equal(v->u.obj.n, 100000);
    assert_true(pt_json_equal(v, v));
    pt_buf_free(&b);
    /* A sanity bound, far above the expected time even under sanitizers. */
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 20.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unicode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_to_int64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_double, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
