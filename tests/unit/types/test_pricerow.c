/* Tests for src/types/pricerow.c: effective times both ways, the name check and the
 * status of each listed row (what `price list` and GET /admin/v1/prices show). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "types/pricerow.h"
#include "util/clock.h"

#define SEC_US 1000000LL
#define DAY_US (86400 * SEC_US)
/* The "now" tests pass: 2027-01-31T23:59:58.654321Z. */
#define NOW 1801439998654321LL

static void test_parse_from(void **state)
{
    (void)state;
    int64_t us = -1, day = 0;
    assert_int_equal(tg_parse_day("2026-03-01", &day), 0);
    assert_int_equal(tg_price_parse_from("2026-03-01", NOW, &us), 0);
    assert_int_equal(us, day);
    assert_int_equal(tg_price_parse_from("2026-03-01T10:20:30Z", -1, &us), 0);
    assert_int_equal(us, day + (10 * 3600 + 20 * 60 + 30) * SEC_US);
    assert_int_equal(tg_price_parse_from("2026-03-01T23:59:59Z", -1, &us), 0);
    assert_int_equal(us, day + DAY_US - SEC_US);

    assert_int_equal(tg_price_parse_from("now", NOW, &us), 0);
    assert_int_equal(us, NOW - 654321); /* the whole second, as listed */

    const char *bad[] = {"",
                         "now", /* where now is not allowed */
                         "2026-02-30",
                         "2026-3-1",
                         "2026-03-01T24:00:00Z",
                         "2026-03-01T10:60:00Z",
                         "2026-03-01T10:00:60Z",
                         "2026-03-01T10:00:00",
                         "2026-03-01 10:00:00Z",
                         "2026-03-01T1a:00:00Z",
                         "2026-03-01T10:00:00.000Z",
                         "yesterday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        us = -7;
        assert_int_equal(tg_price_parse_from(bad[i], -1, &us), -1);
    }
    assert_int_equal(tg_price_parse_from("tomorrow", NOW, &us), -1);
}

static tg_price_row_t row(const char *meter, const char *name, int64_t eff)
{
    tg_price_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.meter, sizeof r.meter, "%s", meter);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.effective_us = eff;
    return r;
}

/* Per (meter, name): the latest row at or before now is current, earlier ones are
 * superseded, later ones scheduled; a name with only future rows has no current one. */
static void test_statuses(void **state)
{
    (void)state;
    tg_price_row_t v[] = {
        row("model", "a", 10), row("model", "a", 20), row("model", "a", 30),
        row("model", "b", 40), row("route", "a", 5),  row("route", "a", 25),
    };
    const char *st[6];
    tg_price_statuses(v, 6, 25, st);
    const char *want[] = {"superseded", "current",    "scheduled",
                          "scheduled",  "superseded", "current"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(st[i], want[i]);
}

static void test_fmt_when_and_name(void **state)
{
    (void)state;
    char buf[25];
    tg_price_fmt_when(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    int64_t us = 0;
    assert_int_equal(tg_price_parse_from("2099-01-01T00:00:01Z", -1, &us), 0);
    tg_price_fmt_when(us, buf);
    assert_string_equal(buf, "2099-01-01T00:00:01Z");
    char long_name[200];
    memset(long_name, 'm', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(tg_price_name_check("gpt-4o"), TG_PRICE_NAME_OK);
    assert_int_equal(tg_price_name_check(""), TG_PRICE_NAME_EMPTY);
    assert_int_equal(tg_price_name_check(long_name), TG_PRICE_NAME_LONG);
    long_name[TG_PRICE_NAME_MAX] = '\0';
    assert_int_equal(tg_price_name_check(long_name), TG_PRICE_NAME_OK);
    assert_int_equal(tg_price_name_check("bad\tname"), TG_PRICE_NAME_TEXT);
    assert_int_equal(tg_price_name_check("\xff"), TG_PRICE_NAME_TEXT);
}

/* price set's amount rules, for the CLI and the admin API alike. */
static void test_set_amounts(void **state)
{
    (void)state;
    tg_price_row_t r;
    int which = -1;
    const char *model[TG_PRICE_NAMOUNTS] = {"2.50", "10", NULL, "0.000001"};
    assert_int_equal(tg_price_set_amounts(&r, "model", model, &which), TG_PRICE_SET_OK);
    assert_int_equal(r.input_micros, 2500000);
    assert_int_equal(r.output_micros, 10000000);
    assert_int_equal(r.cached_micros, -1);
    assert_int_equal(r.cache_write_micros, 1);
    assert_int_equal(r.request_micros, -1);
    assert_int_equal(r.call_micros, -1);
    const char *half[TG_PRICE_NAMOUNTS] = {"2.50"};
    assert_int_equal(tg_price_set_amounts(&r, "model", half, &which), TG_PRICE_SET_MISSING);
    const char *route[TG_PRICE_NAMOUNTS] = {[TG_PRICE_GB] = "0.09"};
    assert_int_equal(tg_price_set_amounts(&r, "route", route, &which), TG_PRICE_SET_OK);
    assert_int_equal(r.gb_micros, 90000);
    assert_int_equal(r.request_micros, -1);
    const char *none[TG_PRICE_NAMOUNTS] = {0};
    assert_int_equal(tg_price_set_amounts(&r, "route", none, &which), TG_PRICE_SET_MISSING);
    assert_int_equal(tg_price_set_amounts(&r, "tool", none, &which), TG_PRICE_SET_MISSING);
    assert_string_equal(tg_price_set_needs("route"), "request or gb");
    assert_string_equal(tg_price_set_needs("tool"), "call");
    assert_string_equal(tg_price_set_needs("model"), "input and output");
    /* Another meter's amount, named by its index; then a bad amount, by its index. */
    const char *wrong[TG_PRICE_NAMOUNTS] = {[TG_PRICE_REQUEST] = "1", [TG_PRICE_CALL] = "1"};
    assert_int_equal(tg_price_set_amounts(&r, "tool", wrong, &which), TG_PRICE_SET_METER);
    assert_int_equal(which, TG_PRICE_REQUEST);
    const char *bad[] = {"-1", "abc", "1.0000001", "$1", "", "1e3", "+1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *tool[TG_PRICE_NAMOUNTS] = {[TG_PRICE_CALL] = bad[i]};
        which = -1;
        assert_int_equal(tg_price_set_amounts(&r, "tool", tool, &which), TG_PRICE_SET_AMOUNT);
        assert_int_equal(which, TG_PRICE_CALL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_from),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_fmt_when_and_name),
        cmocka_unit_test(test_set_amounts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
