/* Tests src/types/event.c: event ids (time order, the range they hold) and the helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "types/event.h"
#include "util/clock.h"

#define EPOCH2020_MS 1577836800000LL

static int64_t at(const char *day)
{
    int64_t us = 0;
    assert_int_equal(tg_parse_day(day, &us), 0);
    return us;
}

/* The millisecond since 2020 an id says. */
static int64_t id_ms(int64_t id)
{
    return id >> 22;
}

static void test_id_is_time(void **state)
{
    (void)state;
    int64_t ts = at("2026-03-01") + 123456;
    int64_t id = tg_event_new_id(ts);
    assert_int_equal(id_ms(id), ts / 1000 - EPOCH2020_MS);
    assert_true(tg_event_new_id(at("2019-06-01")) < 0); /* before 2020: negative */
    assert_int_equal(id_ms(tg_event_new_id(at("2019-06-01"))),
                     at("2019-06-01") / 1000 - EPOCH2020_MS);
}

/* An instant past what 41 bits of milliseconds hold does not wrap into another time: it
 * takes the last millisecond of August 2089 (whose month's partition bound still fits in
 * an id); ids keep their order. Shifted as is, 2095 came out negative (before 2020) and
 * 9999 in 2055, and 2089-09-03 fell in a month PostgreSQL could not make a partition for. */
static void test_id_far_future_clamped(void **state)
{
    (void)state;
    int64_t last = at("2089-09-01") / 1000 - EPOCH2020_MS - 1;
    int64_t now = tg_event_new_id(at("2026-06-01"));
    const char *days[] = {"2089-09-03", "2095-06-01", "2159-09-03", "9999-12-31"};
    for (size_t i = 0; i < sizeof days / sizeof *days; i++) {
        int64_t id = tg_event_new_id(at(days[i]));
        assert_true(id > now);
        assert_int_equal(id_ms(id), last);
    }
    assert_int_equal(id_ms(tg_event_new_id(at("2089-08-31") + 1000)),
                     (at("2089-08-31") + 1000) / 1000 - EPOCH2020_MS);
}

/* Before 1950 (a clock gone wrong): the first millisecond, not a wrap to the future. */
static void test_id_far_past_clamped(void **state)
{
    (void)state;
    int64_t id = tg_event_new_id(at("1900-01-01"));
    assert_true(id < 0);
    assert_int_equal(id_ms(id), -(1LL << 41));
}

static void test_event_str_truncates(void **state)
{
    (void)state;
    char f[4];
    tg_event_str(f, sizeof f, "abcdef", 6);
    assert_string_equal(f, "abc");
    tg_event_str(f, sizeof f, NULL, 3);
    assert_string_equal(f, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_is_time),
        cmocka_unit_test(test_id_far_future_clamped),
        cmocka_unit_test(test_id_far_past_clamped),
        cmocka_unit_test(test_event_str_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
