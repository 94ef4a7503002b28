/* Tests tg_parse_instant (src/util/clock.c): dates, RFC 3339 times with fractions and
 * zones, and what is refused; tg_utc_day across day, month and year ends, in and out of
 * the day it remembers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/clock.h"

static void test_instants(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t us;
    } ok[] = {
        {"2027-01-01", 1798761600000000},
        {"2027-01-01T00:00:00Z", 1798761600000000},
        {"2027-01-01t00:00:00z", 1798761600000000},
        {"2027-01-01 00:00:00Z", 1798761600000000},
        {"2027-01-01T01:00:00+01:00", 1798761600000000},
        {"2026-12-31T19:30:00-04:30", 1798761600000000},
        {"2027-01-01T00:00:00.5Z", 1798761600500000},
        {"2027-01-01T00:00:00.1234567Z", 1798761600123456},
        {"2028-02-29T12:00:00Z", 1835438400000000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t us = 0;
        if (tg_parse_instant(ok[i].s, &us) != 0) fail_msg("refused %s", ok[i].s);
        assert_int_equal(us, ok[i].us);
    }
    static const char *const bad[] = {
        "",
        "2027",
        "2027-02-29",
        "2027-01-01T",
        "2027-01-01T00:00:00",
        "2027-01-01T24:00:00Z",
        "2027-01-01T00:00Z",
        "2027-01-01T00:00:00.Z",
        "2027-01-01T00:00:00+0100",
        "2027-01-01T00:00:00+25:00",
        "2027-01-01T00:00:00Zjunk",
        "2027-01-01X00:00:00Z",
        "tomorrow",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 0;
        if (tg_parse_instant(bad[i], &us) == 0) fail_msg("accepted %s", bad[i]);
    }
}

/* Every answer as gmtime would give it, whatever day was asked before (it keeps the last). */
static void test_utc_day(void **state)
{
    (void)state;
    static const struct {
        int64_t us;
        const char *day;
    } cases[] = {
        {1798761599999999, "2026-12-31"}, /* the last microsecond of a year */
        {1798761600000000, "2027-01-01"}, /* the first of the next */
        {1798761599000000, "2026-12-31"}, /* back: the remembered day is not the answer */
        {1798847999999999, "2027-01-01"},
        {1798848000000000, "2027-01-02"},
        {1835395200000000, "2028-02-29"}, /* a leap day, and far from the last */
        {1835481599999999, "2028-02-29"},
        {1835481600000000, "2028-03-01"},
        {0, "1970-01-01"},
        {86399999999, "1970-01-01"},
        {86400000000, "1970-01-02"},
        {1798761600000000, "2027-01-01"},
    };
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char day[11];
            memset(day, 'x', sizeof day);
            tg_utc_day(cases[i].us, day);
            assert_string_equal(day, cases[i].day);
            tg_utc_day(cases[i].us, day); /* the same day again: from what it keeps */
            assert_string_equal(day, cases[i].day);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_instants),
                                       cmocka_unit_test(test_utc_day)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
