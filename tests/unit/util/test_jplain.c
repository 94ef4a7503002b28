/* Tests util/jplain.h: which bytes a JSON string holds unescaped, and the two scanners. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/jplain.h"

static void test_table(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        int want = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
        if (tg_jplain[c] != want) fail_msg("byte 0x%02x: %d", c, tg_jplain[c]);
    }
}

static void test_scanners(void **state)
{
    (void)state;
    assert_int_equal(tg_jplain_span(""), 0);
    assert_int_equal(tg_jplain_span("GET /v1/chat?x=1"), 16);
    assert_int_equal(tg_jplain_span("ab\"cd"), 2);
    assert_int_equal(tg_jplain_span("ab\\cd"), 2);
    assert_int_equal(tg_jplain_span("ab\ncd"), 2);
    assert_int_equal(tg_jplain_span("ab\x7f"), 2);
    assert_int_equal(tg_jplain_span("caf\xc3\xa9"), 3);
    const char with_nul[] = "ab\0cd";
    assert_int_equal(tg_jplain_prefix(with_nul, 5), 2); /* a NUL is not plain */
    assert_int_equal(tg_jplain_prefix("abcdef", 3), 3); /* stops at n */
    assert_int_equal(tg_jplain_prefix("abc\"ef", 6), 3);
    assert_int_equal(tg_jplain_prefix("", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table),
                                       cmocka_unit_test(test_scanners)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
