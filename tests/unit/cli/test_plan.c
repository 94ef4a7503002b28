/* Tests for src/cli/plan.c: the --meter spec (quantities with suffixes, GB to the byte,
 * USD, tiers, markup, included units), what it refuses, and that `plan show` prints a spec
 * that parses back to the same meter. The file is included (its helpers are static). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>

#include "cli/plan.c"

static void test_quantities(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(parse_count("1M", &v), 0);
    assert_int_equal(v, 1000000);
    assert_int_equal(parse_count("10k", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(parse_count("2G", &v), 0);
    assert_int_equal(v, 2000000000);
    assert_int_equal(parse_count("17", &v), 0);
    assert_int_equal(v, 17);
    const char *bad[] = {"", "M", "1.5M", "-1", "1m", "1 M", "99999999999999999999", "2000000000G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_count(bad[i], &v), -1);
    assert_int_equal(parse_gb("1.5", &v), 0);
    assert_int_equal(v, 1500000000);
    assert_int_equal(parse_gb("0.000000001", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(parse_gb("10", &v), 0);
    assert_int_equal(v, 10000000000LL);
    assert_int_equal(parse_gb("0.0000000001", &v), -1); /* below a byte */
    assert_int_equal(parse_gb("1e3", &v), -1);
    assert_int_equal(parse_gb(".", &v), -1);
    assert_int_equal(parse_gb("99999999999", &v), -1); /* 10^20 bytes */
    char buf[48];
    tg_cli_plan_qty_text(TG_PMETER_GB, 1500000000, buf, sizeof buf);
    assert_string_equal(buf, "1.5");
    tg_cli_plan_qty_text(TG_PMETER_GB, 10000000000LL, buf, sizeof buf);
    assert_string_equal(buf, "10");
    tg_cli_plan_qty_text(TG_PMETER_AI_COST, 1250000, buf, sizeof buf);
    assert_string_equal(buf, "1.25");
}

static void test_specs(void **state)
{
    (void)state;
    tg_plan_meter_t m;
    assert_int_equal(
        tg_cli_plan_parse_meter("billable graduated 1M:3.00 10M:2 -:1 included=1k", &m), 0);
    assert_int_equal(m.meter, TG_PMETER_BILLABLE);
    assert_int_equal(m.model, TG_PMODEL_GRADUATED);
    assert_int_equal(m.included, 1000);
    assert_int_equal(m.ntiers, 3);
    assert_int_equal(m.tiers[0].up_to, 1000000);
    assert_int_equal(m.tiers[1].unit_micros, 2000000);
    assert_int_equal(m.tiers[2].up_to, -1);
    assert_int_equal(tg_cli_plan_parse_meter("tokens_in unit 2.5", &m), 0);
    assert_string_equal(m.match, "*"); /* the default match */
    assert_int_equal(tg_cli_plan_parse_meter("tokens_out:gpt-4o volume 10:1 inf:0.5", &m), 0);
    assert_string_equal(m.match, "gpt-4o");
    assert_int_equal(tg_cli_plan_parse_meter("ai_cost markup 12.5", &m), 0);
    assert_int_equal(m.tiers[0].unit_micros, 1125000);
    assert_int_equal(tg_cli_plan_parse_meter("gb volume 0.5:0.09 -:0.05 included=0.25", &m), 0);
    assert_int_equal(m.tiers[0].up_to, 500000000);
    assert_int_equal(m.included, 250000000);
    assert_int_equal(tg_cli_plan_parse_meter("tool_calls:search flat 20", &m), 0);
    assert_int_equal(m.flat_micros, 20000000);

    const char *bad[] = {
        "",
        "bytes unit 1",                   /* no such meter */
        "billable",                       /* no model */
        "billable unit",                  /* no price */
        "billable unit 1 2",              /* two prices */
        "billable unit -1",               /* negative */
        "billable unit 0.0000001",        /* below a micro-USD */
        "billable graduated 5:1 3:1 -:1", /* not ascending */
        "billable graduated 5:1 10:1",    /* last tier bounded */
        "billable graduated 0:1 -:1",     /* a tier ending at 0 */
        "billable markup 10",             /* markup is ai_cost's */
        "ai_cost markup 0.00001",         /* more than 4 decimals */
        "requests:x unit 1",              /* no match on requests */
        "tokens_in: unit 1",              /* empty match */
        "billable flat 1 2",
        "billable unit 1 included=x",
        "billable volume 1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 -:1", /* 9 tiers */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tg_cli_plan_parse_meter(bad[i], &m), TG_EXIT_USAGE);
}

/* plan show's text parses back to the same meter. */
static void test_round_trip(void **state)
{
    (void)state;
    const char *specs[] = {
        "billable graduated 1M:3.00 10M:2.00 -:1.00 included=100k",
        "gb volume 0.5:0.09 -:0.05 included=10",
        "ai_cost markup 20",
        "ai_cost graduated 100:1.20 -:1.10 included=5.5",
        "tool_calls:search flat 20",
        "tokens_out:claude-3-5-sonnet@x unit 15",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        tg_plan_meter_t a, b;
        char text[1024];
        assert_int_equal(tg_cli_plan_parse_meter(specs[i], &a), 0);
        tg_cli_plan_meter_text(&a, text, sizeof text);
        assert_int_equal(tg_cli_plan_parse_meter(text, &b), 0);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

/* A version that priced a closed month can be neither replaced nor removed; others can. */
static void test_versions_in_use(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg_test_plan_XXXXXX", url[64], path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
    tg_store_t *s;
    tg_err_t err;
    assert_int_equal(tg_store_open(url, &s, &err), 0);
    tg_invoice_row_t inv = {.tenant = "acme",
                            .month = "2026-11",
                            .plan = "pro",
                            .plan_effective_us = 1000,
                            .closed_us = 1};
    assert_int_equal(tg_store_invoice_close(s, &inv, NULL, 0, NULL, 0, NULL, 0, &err), 0);
    assert_int_equal(check_unused(s, "pro", 1000, "replace"), TG_EXIT_RUNTIME);
    assert_int_equal(check_unused(s, "pro", -1, "remove"), TG_EXIT_RUNTIME);
    assert_int_equal(check_unused(s, "pro", 2000, "replace"), TG_EXIT_OK);
    assert_int_equal(check_unused(s, "basic", -1, "remove"), TG_EXIT_OK);
    tg_store_close(s);
    const char *files[] = {"t.db", "t.db-wal", "t.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_versions_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
