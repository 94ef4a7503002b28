/* Tests src/gateway/upstream.c: round-robin, passive health, cool-down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/upstream.h"

static tg_target_t targets[3] = {{.url = "http://a"}, {.url = "http://b"}, {.url = "http://c"}};

static tg_upstream_conf_t make(void)
{
    for (int i = 0; i < 3; i++) {
        atomic_store(&targets[i].fails, 0);
        atomic_store(&targets[i].down_until_us, 0);
        atomic_store(&targets[i].fail_streak, 0);
    }
    tg_upstream_conf_t u = {
        .name = "u", .targets = targets, .ntargets = 3, .max_fails = 2, .fail_timeout_ms = 1000};
    return u;
}

static void test_round_robin(void **state)
{
    (void)state;
    tg_upstream_conf_t u = make();
    int seen[3] = {0};
    for (int i = 0; i < 30; i++)
        seen[tg_upstream_pick(&u, 0) - targets]++;
    assert_int_equal(seen[0], 10);
    assert_int_equal(seen[1], 10);
    assert_int_equal(seen[2], 10);
}

static void test_failures_skip_then_recover(void **state)
{
    (void)state;
    tg_upstream_conf_t u = make();
    int64_t now = 1000000;
    tg_upstream_report(&u, &targets[1], 0, now);
    assert_int_equal(tg_upstream_healthy(&u, now), 3); /* one failure is not enough */
    tg_upstream_report(&u, &targets[1], 0, now);
    assert_int_equal(tg_upstream_healthy(&u, now), 2);
    /* The cool-down restarts fails; the streak (for /metrics) goes on until a success. */
    assert_int_equal(atomic_load(&targets[1].fails), 0);
    assert_int_equal(atomic_load(&targets[1].fail_streak), 2);
    tg_upstream_report(&u, &targets[1], 0, now);
    assert_int_equal(atomic_load(&targets[1].fail_streak), 3);
    assert_int_equal(atomic_load(&targets[2].fail_streak), 0);
    for (int i = 0; i < 20; i++)
        assert_ptr_not_equal(tg_upstream_pick(&u, now + 10), &targets[1]);
    /* After the cool-down it is tried again. */
    int seen = 0;
    for (int i = 0; i < 6; i++)
        seen += tg_upstream_pick(&u, now + 1000 * 1000) == &targets[1];
    assert_int_equal(seen, 2);
    assert_int_equal(tg_upstream_healthy(&u, now + 1000 * 1000), 3);
}

static void test_success_resets(void **state)
{
    (void)state;
    tg_upstream_conf_t u = make();
    tg_upstream_report(&u, &targets[0], 0, 0);
    tg_upstream_report(&u, &targets[0], 1, 0);
    assert_int_equal(atomic_load(&targets[0].fail_streak), 0);
    tg_upstream_report(&u, &targets[0], 0, 0);
    assert_int_equal(tg_upstream_healthy(&u, 0), 3);
    assert_int_equal(atomic_load(&targets[0].fail_streak), 1);
}

static void test_all_down_picks_soonest(void **state)
{
    (void)state;
    tg_upstream_conf_t u = make();
    atomic_store(&targets[0].down_until_us, 500);
    atomic_store(&targets[1].down_until_us, 300);
    atomic_store(&targets[2].down_until_us, 900);
    assert_int_equal(tg_upstream_healthy(&u, 100), 0);
    for (int i = 0; i < 5; i++)
        assert_ptr_equal(tg_upstream_pick(&u, 100), &targets[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_failures_skip_then_recover),
        cmocka_unit_test(test_success_resets),
        cmocka_unit_test(test_all_down_picks_soonest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
