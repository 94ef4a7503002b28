/* Tests for src/cli/price.c: --from parsing, the status of each listed row, and what
 * `price set` accepts. The file is included (its helpers are static), as in
 * test_usage_format.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/price.c"

#define DAY_US (86400 * SEC_US)
/* The "now" tests pass: 2027-01-31T23:59:58.654321Z. */
#define NOW 1801439998654321LL

static void test_parse_from(void **state)
{
    (void)state;
    int64_t us = -1, day = 0;
    assert_int_equal(tg_parse_day("2026-03-01", &day), 0);
    assert_int_equal(parse_from("2026-03-01", NOW, &us), 0);
    assert_int_equal(us, day);
    assert_int_equal(parse_from("2026-03-01T10:20:30Z", -1, &us), 0);
    assert_int_equal(us, day + (10 * 3600 + 20 * 60 + 30) * SEC_US);
    assert_int_equal(parse_from("2026-03-01T23:59:59Z", -1, &us), 0);
    assert_int_equal(us, day + DAY_US - SEC_US);

    assert_int_equal(parse_from("now", NOW, &us), 0);
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
        assert_int_equal(parse_from(bad[i], -1, &us), -1);
    }
    assert_int_equal(parse_from("tomorrow", NOW, &us), -1);
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
    rows_t rs = {v, 6, 6};
    const char *st[6];
    statuses(&rs, 25, st);
    const char *want[] = {"superseded", "current",    "scheduled",
                          "scheduled",  "superseded", "current"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(st[i], want[i]);
}

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
        cmocka_unit_test(test_parse_from),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_check_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
