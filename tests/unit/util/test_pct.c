/* Tests for src/util/pct.c: escapes decoded in either case, '+' kept, and every bad escape,
 * a %00 and an output that does not fit refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/pct.h"

static int dec(const char *s, char *out, size_t cap)
{
    return tg_pct_decode(s, strlen(s), out, cap);
}

static void test_decodes(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(dec("p%40ss%2fw%2Fd+x", out, sizeof out), 0);
    assert_string_equal(out, "p@ss/w/d+x");
    assert_int_equal(dec("", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(dec("%25", out, sizeof out), 0);
    assert_string_equal(out, "%");
}

static void test_refuses(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(dec("a%", out, sizeof out), -1);
    assert_int_equal(dec("a%4", out, sizeof out), -1);
    assert_int_equal(dec("a%4g", out, sizeof out), -1);
    assert_int_equal(dec("a%00b", out, sizeof out), -1);
    assert_int_equal(dec("12345678", out, sizeof out), -1); /* 8 bytes and the NUL in 8 */
    assert_int_equal(dec("1234567", out, sizeof out), 0);
    assert_int_equal(tg_pct_decode("", 0, out, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decodes),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
