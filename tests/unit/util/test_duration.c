/* Tests for src/util/duration.c: every unit, a bare number as milliseconds, the bound
 * checked after the unit (so "2h" over a 1 h bound is too large, not accepted), and what
 * is not a duration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/duration.h"

#define DAY_MS (24LL * 3600 * 1000)

static long long ms(const char *s)
{
    long long v = -7;
    assert_int_equal(tg_duration_parse(s, DAY_MS, &v), 0);
    return v;
}

static void test_units(void **state)
{
    (void)state;
    assert_int_equal(ms("0"), 0);
    assert_int_equal(ms("250"), 250);
    assert_int_equal(ms("250ms"), 250);
    assert_int_equal(ms("5s"), 5000);
    assert_int_equal(ms("2m"), 120000);
    assert_int_equal(ms("1h"), 3600000);
    assert_int_equal(ms("24h"), DAY_MS);
    assert_int_equal(ms("1d"), DAY_MS);
    assert_int_equal(ms("86400000"), DAY_MS);
}

static void test_too_large(void **state)
{
    (void)state;
    long long v = -7;
    assert_int_equal(tg_duration_parse("25h", DAY_MS, &v), -2);
    assert_int_equal(tg_duration_parse("86400001", DAY_MS, &v), -2);
    assert_int_equal(tg_duration_parse("1441m", DAY_MS, &v), -2);
    assert_int_equal(tg_duration_parse("2d", DAY_MS, &v), -2);
    assert_int_equal(tg_duration_parse("99999999999999999999999999s", DAY_MS, &v), -2);
    assert_int_equal(tg_duration_parse("2h", 3600000, &v), -2);
    assert_int_equal(v, -7); /* untouched on failure */
}

static void test_not_a_duration(void **state)
{
    (void)state;
    long long v = -7;
    const char *bad[] = {"",
                         "s",
                         "-1s",
                         "+1s",
                         "1.5s",
                         "5 s",
                         " 5s",
                         "5S",
                         "1w",
                         "5sec",
                         "5ms ",
                         "0x10",
                         "99999999999999999999999999w"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tg_duration_parse(bad[i], DAY_MS, &v), -1);
    assert_int_equal(tg_duration_parse(NULL, DAY_MS, &v), -1);
    assert_int_equal(v, -7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_not_a_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
