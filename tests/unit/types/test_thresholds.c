/* Tests for src/types/thresholds.c: the one check of a budget's alert thresholds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "types/thresholds.h"

static void test_range(void **state)
{
    (void)state;
    assert_int_equal(tg_threshold_check(NULL, 0, 1), TG_THRESHOLD_OK);
    assert_int_equal(tg_threshold_check(NULL, 0, TG_THRESHOLD_MAX_PCT), TG_THRESHOLD_OK);
    assert_int_equal(tg_threshold_check(NULL, 0, 0), TG_THRESHOLD_RANGE);
    assert_int_equal(tg_threshold_check(NULL, 0, -80), TG_THRESHOLD_RANGE);
    assert_int_equal(tg_threshold_check(NULL, 0, TG_THRESHOLD_MAX_PCT + 1), TG_THRESHOLD_RANGE);
    assert_int_equal(tg_threshold_check(NULL, 0, INT64_MAX), TG_THRESHOLD_RANGE);
}

static void test_order_and_count(void **state)
{
    (void)state;
    int prev[TG_THRESHOLDS_MAX] = {10, 20, 30, 40, 50, 60, 70, 80};
    assert_int_equal(tg_threshold_check(prev, 1, 11), TG_THRESHOLD_OK);
    assert_int_equal(tg_threshold_check(prev, 1, 10), TG_THRESHOLD_ORDER);
    assert_int_equal(tg_threshold_check(prev, 1, 9), TG_THRESHOLD_ORDER);
    assert_int_equal(tg_threshold_check(prev, TG_THRESHOLDS_MAX - 1, 71), TG_THRESHOLD_OK);
    assert_int_equal(tg_threshold_check(prev, TG_THRESHOLDS_MAX, 90), TG_THRESHOLD_TOO_MANY);
    /* A value out of range is that, wherever it is. */
    assert_int_equal(tg_threshold_check(prev, TG_THRESHOLDS_MAX, 0), TG_THRESHOLD_RANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_order_and_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
