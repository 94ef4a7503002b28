/* Tests for src/cli/budget.c: --thresholds, the month, and the status arithmetic
 * (integers only, no overflow at the largest amounts). The file is included (its helpers
 * are static), as in test_usage_format.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/budget.c"

static void test_parse_thresholds(void **state)
{
    (void)state;
    tg_budget_row_t r;
    memset(&r, 0, sizeof r);
    assert_int_equal(parse_thresholds("80,90,100", &r), 0);
    assert_int_equal(r.nthresholds, 3);
    assert_int_equal(r.thresholds[2], 100);
    assert_int_equal(parse_thresholds("1000", &r), 0);
    assert_int_equal(r.nthresholds, 1);
    assert_int_equal(parse_thresholds("1,2,3,4,5,6,7,8", &r), 0);
    assert_int_equal(r.nthresholds, 8);
    const char *bad[] = {
        "",      ",",  "80,", ",80",   "80,,90", "0",    "1001",     "90,80",
        "80,80", "-5", "8 0", "80;90", "1e2",    "0x50", "12345678", "1,2,3,4,5,6,7,8,9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_thresholds(bad[i], &r), TG_EXIT_USAGE);
}

static void test_status(void **state)
{
    (void)state;
    tg_budget_row_t b;
    memset(&b, 0, sizeof b);
    b.monthly_micros = 100000000; /* 100 USD */
    b.nthresholds = 2;
    b.thresholds[0] = 80;
    b.thresholds[1] = 100;
    status_t s;
    budget_status(&b, 42500001, &s);
    assert_string_equal(s.monthly, "100.00");
    assert_string_equal(s.spend_usd, "42.500001");
    assert_string_equal(s.remaining_usd, "57.499999");
    assert_string_equal(s.used, "42.5%");
    assert_string_equal(s.thresholds, "80,100");
    budget_status(&b, 0, &s);
    assert_string_equal(s.used, "0.0%");
    budget_status(&b, 150000000, &s); /* over: nothing remains */
    assert_string_equal(s.used, "150.0%");
    assert_int_equal(s.remaining, 0);
    assert_string_equal(s.remaining_usd, "0.00");
    b.monthly_micros = 3;
    budget_status(&b, 1, &s); /* 33.33...% is cut, not rounded up */
    assert_string_equal(s.used, "33.3%");
    /* spend * 1000 would overflow an int64 here. */
    b.monthly_micros = 9000000000000000000LL;
    budget_status(&b, 4500000000000000000LL, &s);
    assert_string_equal(s.used, "50.0%");
    b.monthly_micros = 1;
    budget_status(&b, INT64_MAX, &s);
    assert_int_equal(s.tenths, INT64_MAX);
    b.nthresholds = 0;
    budget_status(&b, 0, &s);
    assert_string_equal(s.thresholds, "none");
}

/* The month of a fixed instant, at the edges where a clock-based test would break. */
static void test_this_month(void **state)
{
    (void)state;
    static const struct {
        const char *when; /* a day at noon UTC, or "" with us */
        int64_t us;
        const char *period, *first, *last;
    } cases[] = {
        {"", 1801439998000000LL, "2027-01", "2027-01-01", "2027-01-31"}, /* 2027-01-31 23:59:58 */
        {"", 1801440000000000LL, "2027-02", "2027-02-01", "2027-02-28"}, /* two seconds later */
        {"2028-02-29", 0, "2028-02", "2028-02-01", "2028-02-29"},        /* a leap day */
        {"2100-02-10", 0, "2100-02", "2100-02-01", "2100-02-28"},        /* not a leap year */
        {"2000-02-10", 0, "2000-02", "2000-02-01", "2000-02-29"},        /* a leap year */
        {"", 1830297599000000LL, "2027-12", "2027-12-01", "2027-12-31"}, /* 2027-12-31 23:59:59 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = cases[i].us;
        if (cases[i].when[0]) {
            assert_int_equal(tg_parse_day(cases[i].when, &us), 0);
            us += 12 * 3600 * 1000000LL;
        }
        month_t m;
        this_month(us, &m);
        assert_string_equal(m.period, cases[i].period);
        assert_string_equal(m.first, cases[i].first);
        assert_string_equal(m.last, cases[i].last);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_thresholds),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_this_month),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
