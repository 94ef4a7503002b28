/* Tests for src/notify/retry.c: the backoff schedule with fixed random values, and what
 * each HTTP status means. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "notify/retry.h"

static void test_backoff_schedule(void **state)
{
    (void)state;
    /* rnd 0: the lower half of each base; rnd all ones % (half+1): see below. */
    const int64_t low[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (int i = 0; i < 9; i++)
        assert_int_equal(tg_notify_backoff_ms(i + 1, 1000, 60000, 0), low[i]);
    /* The upper end: base itself (rnd % (half + 1) == half). */
    assert_int_equal(tg_notify_backoff_ms(1, 1000, 60000, 500), 1000);
    assert_int_equal(tg_notify_backoff_ms(3, 1000, 60000, 2000), 4000);
    assert_int_equal(tg_notify_backoff_ms(7, 1000, 60000, 30000), 60000);
    /* A jitter in between. */
    assert_int_equal(tg_notify_backoff_ms(2, 1000, 60000, 250), 1250);
    /* Never above max, whatever the failures or the random value. */
    for (int f = 1; f < 200; f += 7)
        for (uint64_t r = 0; r < 5; r++) {
            int64_t w = tg_notify_backoff_ms(f, 1000, 60000, UINT64_MAX - r * 977);
            assert_true(w >= 500 && w <= 60000);
        }
    /* Odd settings are made sane: failures < 1 counts as 1, max < min is min. */
    assert_int_equal(tg_notify_backoff_ms(0, 200, 2000, 0), 100);
    assert_int_equal(tg_notify_backoff_ms(5, 200, 100, 0), 100);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(tg_notify_classify_http(200), TG_NOTIFY_OK);
    assert_int_equal(tg_notify_classify_http(204), TG_NOTIFY_OK);
    assert_int_equal(tg_notify_classify_http(500), TG_NOTIFY_RETRY);
    assert_int_equal(tg_notify_classify_http(503), TG_NOTIFY_RETRY);
    assert_int_equal(tg_notify_classify_http(408), TG_NOTIFY_RETRY);
    assert_int_equal(tg_notify_classify_http(429), TG_NOTIFY_RETRY);
    assert_int_equal(tg_notify_classify_http(0), TG_NOTIFY_RETRY);
    assert_int_equal(tg_notify_classify_http(400), TG_NOTIFY_PERMANENT);
    assert_int_equal(tg_notify_classify_http(401), TG_NOTIFY_PERMANENT);
    assert_int_equal(tg_notify_classify_http(404), TG_NOTIFY_PERMANENT);
    assert_int_equal(tg_notify_classify_http(301), TG_NOTIFY_PERMANENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
