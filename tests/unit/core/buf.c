/*
 * Unit tests of src/core/buf.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void test_append(void **state)
{
    pt_buf_t b;

    (void)state;
    pt_buf_init(&b, 0);
    assert_int_equal(pt_buf_append(&b, "abc", 3), 0);
    assert_int_equal(pt_buf_append_str(&b, "def"), 0);
    assert_int_equal(pt_buf_append_char(&b, '!'), 0);
    assert_int_equal(pt_buf_printf(&b, "[%d|%s]", 42, "x"), 0);
    assert_int_equal(pt_buf_append_u64(&b, 18446744073709551615ull), 0);
    assert_int_equal(b.len, strlen("abcdef![42|x]18446744073709551615"));
    assert_memory_equal(b.data, "abcdef![42|x]18446744073709551615", b.len);
    assert_int_equal(pt_buf_append(&b, NULL, 0), 0);
    pt_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_true(b.cap > 0);
    pt_buf_free(&b);
    assert_null(b.data);
}

static void test_growth(void **state)
{
    pt_buf_t b;
    char chunk[1000];
    int i;

    (void)state;
    memset(chunk, 'z', sizeof(chunk));
    pt_buf_init(&b, 0);
    for (i = 0; i < 100; i++)
        assert_int_equal(pt_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(b.len, 100000);
    assert_true(b.cap >= b.len);
    assert_int_equal(b.data[99999], 'z');
    pt_buf_free(&b);
}

static void test_limit(void **state)
{
    pt_buf_t b;

    (void)state;
    pt_buf_init(&b, 10);
    assert_int_equal(pt_buf_append(&b, "12345678", 8), 0);
    assert_int_equal(pt_buf_append(&b, "abc", 3), PT_ELIMIT);
    /* A failed append leaves the buffer unchanged. */
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "12345678", 8);
    assert_int_equal(pt_buf_append(&b, "ab", 2), 0);
    assert_int_equal(b.len, 10);
    assert_true(b.cap <= 10);
    assert_int_equal(pt_buf_append_char(&b, 'x'), PT_ELIMIT);
    assert_int_equal(pt_buf_printf(&b, "%d", 1), PT_ELIMIT);
    assert_int_equal(pt_buf_reserve(&b, SIZE_MAX), PT_ENOMEM);
    pt_buf_free(&b);
}

static void expect_json(const char *in, size_t n, const char *out)
{
    pt_buf_t b;
    pt_buf_init(&b, 0);
    assert_int_equal(pt_buf_append_json_str(&b, in, n), 0);
    assert_int_equal(b.len, strlen(out));
    assert_memory_equal(b.data, out, b.len);
    pt_buf_free(&b);
}

static void test_json_escaping(void **state)
{
    (void)state;
    expect_json("plain text", 10, "plain text");
    expect_json("", 0, "");
    expect_json("a\"b\\c/d", 7, "a\\\"b\\\\c/d");
    expect_json("\n\r\t", 3, "\\n\\r\\t");
    expect_json("\x01\x1f\x7f", 3, "\\u0001\\u001f\x7f");
    expect_json("a\0b", 3, "a\\u0000b");
    expect_json("\b\f", 2, "\\u0008\\u000c");
}

static void test_json_utf8(void **state)
{
    (void)state;
    /* Valid sequences of 2, 3 and 4 bytes are copied. */
    expect_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
                "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Invalid bytes become U+FFFD, one per byte. */
    expect_json("\xff", 1, "\xef\xbf\xbd");
    expect_json("a\x80z", 3, "a\xef\xbf\xbdz");
    /* Overlong encoding of '/'. */
    expect_json("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd");
    /* UTF-16 surrogate encoded in UTF-8. */
    expect_json("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    /* Truncated sequence at the end. */
    expect_json("\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd");
    /* Above U+10FFFF. */
    expect_json("\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

static void expect_xml(const char *in, size_t n, const char *want)
{
    pt_buf_t b;
    pt_buf_init(&b, 0);
    assert_int_equal(pt_buf_append_str(&b, "<"), PT_OK);
    assert_int_equal(pt_buf_append_xml_str(&b, in, n), PT_OK);
    assert_int_equal(b.len, 1 + strlen(want));
    assert_memory_equal(b.data + 1, want, strlen(want));
    pt_buf_free(&b);
}

static void test_xml_escaping(void **state)
{
    (void)state;
    expect_xml("plain", 5, "plain");
    expect_xml("", 0, "");
    expect_xml("<a href=\"x\">&'</a>", 19, "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
    /* tab, LF, CR stay; other C0 controls (and NUL) cannot be in XML 1.0 */
    expect_xml("a\tb\nc\rd", 7, "a\tb\nc\rd");
    expect_xml("a\0b\x01\x1f", 5, "ab");
    expect_xml("caf\xc3\xa9", 5, "caf\xc3\xa9");
    expect_xml("a\xffz", 3, "a\xef\xbf\xbdz");
}

static void test_json_limit(void **state)
{
    pt_buf_t b;

    (void)state;
    pt_buf_init(&b, 8);
    assert_int_equal(pt_buf_append_json_str(&b, "\"\"\"\"\"", 5), PT_ELIMIT);
    pt_buf_free(&b);
}

static void test_consume(void **state)
{
    pt_buf_t b;

    (void)state;
    pt_buf_init(&b, 0);
    assert_int_equal(pt_buf_append_str(&b, "hello world"), 0);
    pt_buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    pt_buf_consume(&b, 0);
    assert_int_equal(b.len, 5);
    pt_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_int_equal(pt_buf_append_str(&b, "again"), 0);
    assert_memory_equal(b.data, "again", 5);
    pt_buf_free(&b);
}

static void test_u64_to_str(void **state)
{
    char out[24];

    (void)state;
    assert_int_equal(pt_u64_to_str(0, out), 1);
    assert_string_equal(out, "0");
    assert_int_equal(pt_u64_to_str(1234567890, out), 10);
    assert_string_equal(out, "1234567890");
    assert_int_equal(pt_u64_to_str(UINT64_MAX, out), 20);
    assert_string_equal(out, "18446744073709551615");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append),     cmocka_unit_test(test_growth),
        cmocka_unit_test(test_limit),      cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_json_utf8),  cmocka_unit_test(test_json_limit),
        cmocka_unit_test(test_consume),    cmocka_unit_test(test_xml_escaping),
        cmocka_unit_test(test_u64_to_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
