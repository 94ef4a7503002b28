/* Tests for src/util/money.c: exact USD text <-> integer micro-USD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/money.h"

static void test_parse_valid(void **state)
{
    (void)state;
    const struct {
        const char *in;
        int64_t micros;
    } cases[] = {
        {"0", 0},
        {"0.0", 0},
        {"000", 0},
        {".5", 500000},
        {"0.15", 150000},
        {"12", 12000000},
        {"12.5", 12500000},
        {"007.50", 7500000},
        {"1.000001", 1000001},
        {"0.000001", 1},
        {"2.50", 2500000},
        {"1.", 1000000}, /* a trailing dot is a whole number */
        {"9000000000000", 9000000000000000000LL},
        {"9000000000000.999999", 9000000000000999999LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t m = -42;
        if (tg_money_parse(cases[i].in, &m) != 0) fail_msg("\"%s\" refused", cases[i].in);
        assert_int_equal(m, cases[i].micros);
    }
}

static void test_parse_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        ".",
        "-1",
        "-0.5",
        "+1",
        "$1",
        "1.0000001", /* a seventh decimal is an error, never a rounding */
        "0.0000005",
        "1,5",
        "1.2.3",
        " 1",
        "1 ",
        "1e3",
        "0x10",
        "abc",
        "1.5USD",
        "9000000000001", /* over 9e12 USD */
        "9999999999999999999999999",
        "18446744073709551617",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t m = -42;
        if (tg_money_parse(bad[i], &m) != -1) fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(m, -42); /* untouched on error */
    }
    int64_t m = 0;
    assert_int_equal(tg_money_parse(NULL, &m), -1);
}

static void test_format(void **state)
{
    (void)state;
    const struct {
        int64_t in;
        const char *out;
    } cases[] = {
        {0, "0.00"},
        {1, "0.000001"},
        {100, "0.0001"},
        {10000, "0.01"},
        {150000, "0.15"},
        {1000000, "1.00"},
        {1234567, "1.234567"},
        {12500000, "12.50"},
        {2500000, "2.50"},
        {-1, "-0.000001"},
        {-2500000, "-2.50"},
        {9000000000000000000LL, "9000000000000.00"},
        {INT64_MAX, "9223372036854.775807"},
        {INT64_MIN, "-9223372036854.775808"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        memset(buf, 'x', sizeof buf);
        int n = tg_money_format(cases[i].in, buf, sizeof buf);
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(n, (int)strlen(cases[i].out));
    }
}

/* A short buffer is cut and still terminated; the return is the full length, like
 * snprintf, so a caller can tell. */
static void test_format_truncates(void **state)
{
    (void)state;
    char buf[5];
    int n = tg_money_format(12500000, buf, sizeof buf);
    assert_int_equal(n, 5);
    assert_string_equal(buf, "12.5");
    char one[1] = {'x'};
    tg_money_format(1, one, sizeof one);
    assert_int_equal(one[0], '\0');
}

/* What is printed parses back to the same amount, over the whole valid range. */
static void test_round_trip(void **state)
{
    (void)state;
    const int64_t v[] = {0,        1,         9,         10,         99,
                         100,      999999,    1000000,   1000001,    123456789,
                         50000000, 999999999, 10000000,  4294967296, 9000000000000000000LL,
                         1 << 30,  7,         150000000, 1500000,    9000000000000999999LL};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char buf[32];
        tg_money_format(v[i], buf, sizeof buf);
        int64_t back = -1;
        assert_int_equal(tg_money_parse(buf, &back), 0);
        assert_int_equal(back, v[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid), cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_format),      cmocka_unit_test(test_format_truncates),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
