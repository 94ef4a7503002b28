/* Tests for src/cli/price.c: what `price set` accepts (--from parsing and the rows'
 * statuses are types/pricerow.c's, tested in tests/unit/types/test_pricerow.c). The file is
 * included (its helpers are static), as in test_usage_format.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/price.c"

/* The "now" tests pass: 2027-01-31T23:59:58.654321Z. */
#define NOW 1801439998654321LL

static int set(args_t *a, tg_price_row_t *r)
{
    return check_set(a, NOW, r);
}

static void test_check_set(void **state)
{
    (void)state;
    tg_price_row_t r;
    args_t a = {0};
    a.model = "gpt-4o";
    a.amount[A_INPUT] = "2.50";
    a.amount[A_OUTPUT] = "10";
    a.amount[A_CACHE_WRITE] = ".5";
    a.from = "2026-03-01";
    assert_int_equal(set(&a, &r), 0);
    assert_string_equal(r.meter, "model");
    assert_string_equal(r.name, "gpt-4o");
    assert_int_equal(r.input_micros, 2500000);
    assert_int_equal(r.output_micros, 10000000);
    assert_int_equal(r.cached_micros, -1);
    assert_int_equal(r.cache_write_micros, 500000);
    assert_int_equal(r.request_micros, -1);
    assert_int_equal(r.call_micros, -1);

    args_t t = {0};
    t.tool = "*";
    t.amount[A_CALL] = "0";
    assert_int_equal(set(&t, &r), 0);
    assert_string_equal(r.meter, "tool");
    assert_int_equal(r.call_micros, 0);
    assert_true(r.effective_us > 0); /* now */

    args_t rt = {0};
    rt.route = "chat";
    rt.amount[A_GB] = "0.05";
    assert_int_equal(set(&rt, &r), 0);
    assert_int_equal(r.gb_micros, 50000);
    assert_int_equal(r.request_micros, -1);

    /* Refused: each prints its one line (to stderr) and is a usage error. */
    args_t bad = a;
    bad.amount[A_OUTPUT] = NULL;
    assert_int_equal(set(&bad, &r), TG_EXIT_USAGE);
    bad = a;
    bad.amount[A_INPUT] = "1.0000001";
    assert_int_equal(set(&bad, &r), TG_EXIT_USAGE);
    bad = a;
    bad.amount[A_GB] = "1";
    assert_int_equal(set(&bad, &r), TG_EXIT_USAGE);
    bad = a;
    bad.route = "chat";
    assert_int_equal(set(&bad, &r), TG_EXIT_USAGE);
    bad = a;
    bad.model = "";
    assert_int_equal(set(&bad, &r), TG_EXIT_USAGE);
    bad = a;
    bad.model = "bad\tname";
    assert_int_equal(set(&bad, &r), TG_EXIT_USAGE);
    bad = rt;
    bad.amount[A_GB] = NULL;
    assert_int_equal(set(&bad, &r), TG_EXIT_USAGE);
    args_t none = {0};
    assert_int_equal(set(&none, &r), TG_EXIT_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
