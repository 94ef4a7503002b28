/* Tests for src/report/report.c and the report views of migration 8: every report over
 * the six known events of store/sql_fixture.h, against numbers worked out by hand (the
 * fixture's comment lists the events), including the event at 23:59:59.999999 on
 * 2026-11-30 and the one at 00:00:00 on 2026-12-01, and --from/--to (inclusive) and
 * --tenant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "report/report.h"
#include "store/sql_fixture.h"

/* Runs report name with the bounds, into r; asserts it succeeded. */
static void run(fx_t *f, const char *name, const char *from, const char *to, const char *tenant,
                fx_rows_t *r)
{
    const tg_report_t *rep = tg_report_find(name);
    assert_non_null(rep);
    tg_sql_sink_t sink = fx_sink(r);
    tg_report_query_t q = {from, to, tenant};
    tg_err_t err = {{0}};
    int rc = tg_report_run(f->s, rep, &q, &sink, &err);
    if (rc != 0) fail_msg("report %s: %s", name, err.msg);
}

static void expect(const fx_rows_t *r, const char *cols, const char *const *rows, size_t n)
{
    if (cols) assert_string_equal(r->cols, cols);
    for (size_t i = 0; i < n && i < r->n; i++)
        assert_string_equal(r->row[i], rows[i]);
    assert_int_equal(r->n, n);
}
#define EXPECT(r, cols, ...)                                                                       \
    do {                                                                                           \
        static const char *const rows_[] = {__VA_ARGS__};                                          \
        expect((r), (cols), rows_, sizeof rows_ / sizeof rows_[0]);                                \
    } while (0)

static void test_daily(void **state)
{
    fx_rows_t r;
    run(*state, "daily", NULL, NULL, NULL, &r);
    /* Nov 30: events 1-3 (the last at 23:59:59.999999), 600 tokens over 3 requests. */
    EXPECT(&r, "day|tenant|requests|billable|tokens_in|tokens_out|avg_tokens_per_request",
           "2026-11-30|acme|3|3|400|200|200", "2026-12-01|acme|2|1|0|0|0",
           "2026-12-01|beta|1|0|0|0|0");
}

static void test_daily_bounds_inclusive(void **state)
{
    fx_rows_t r;
    run(*state, "daily", "2026-11-30", "2026-11-30", NULL, &r);
    EXPECT(&r, NULL, "2026-11-30|acme|3|3|400|200|200");
    run(*state, "daily", "2026-12-01", NULL, NULL, &r);
    EXPECT(&r, NULL, "2026-12-01|acme|2|1|0|0|0", "2026-12-01|beta|1|0|0|0|0");
    run(*state, "daily", NULL, NULL, "beta", &r);
    EXPECT(&r, NULL, "2026-12-01|beta|1|0|0|0|0");
    run(*state, "daily", "2026-12-02", "2026-12-31", NULL, &r);
    assert_int_equal(r.n, 0);
}

static void test_hourly(void **state)
{
    fx_rows_t r;
    run(*state, "hourly", NULL, NULL, NULL, &r);
    EXPECT(&r, "hour|day|tenant|requests|billable|tokens_in|tokens_out|avg_tokens_per_request",
           "2026-11-30T10:00:00Z|2026-11-30|acme|2|2|400|200|300",
           "2026-11-30T23:00:00Z|2026-11-30|acme|1|1|0|0|0",
           "2026-12-01T00:00:00Z|2026-12-01|acme|2|1|0|0|0",
           "2026-12-01T12:00:00Z|2026-12-01|beta|1|0|0|0|0");
    run(*state, "hourly", "2026-12-01", "2026-12-01", "acme", &r);
    EXPECT(&r, NULL, "2026-12-01T00:00:00Z|2026-12-01|acme|2|1|0|0|0");
}

static void test_keys(void **state)
{
    fx_rows_t r;
    run(*state, "keys", NULL, NULL, NULL, &r);
    /* key_a on Nov 30: 3,000,000 bytes sent = 3 MB, 4000 received = 0.004 MB, latency
     * (100 + 300) / 2 ms; on Dec 1: 900 sent, 300 received, (20 + 40) / 2 ms. */
    EXPECT(&r,
           "day|tenant|key_id|key_prefix|key_name|requests|bytes_sent|bytes_received|mb_sent|"
           "mb_received|avg_response_ms",
           "2026-11-30|acme|key_a|tg_AAAAA|n0|2|3000000|4000|3|0.004|200",
           "2026-11-30|acme|key_b|tg_BBBBB|n1|1|2400|0|0.002|0|50",
           "2026-12-01|acme|key_a|tg_AAAAA|n0|2|900|300|0.001|0|30",
           "2026-12-01|beta|key_c|tg_CCCCC|n2|1|90|10|0|0|1000");
}

static void test_endpoints(void **state)
{
    fx_rows_t r;
    run(*state, "endpoints", NULL, NULL, NULL, &r);
    EXPECT(&r, "day|tenant|key_id|method|path|requests|bytes_sent|kb_sent",
           "2026-11-30|acme|key_a|POST|/v1/chat|2|3000000|3000",
           "2026-11-30|acme|key_b|GET|/v1/models|1|2400|2.4",
           "2026-12-01|acme|key_a|POST|/mcp|2|900|0.9",
           "2026-12-01|beta|key_c|POST|/v1/chat|1|90|0.09");
}

static void test_transfer(void **state)
{
    fx_rows_t r;
    run(*state, "transfer", "2026-11-30", "2026-11-30", "acme", &r);
    EXPECT(&r,
           "day|tenant|key_id|key_prefix|bytes_sent|bytes_received|gb_sent|gb_received|gb_total",
           "2026-11-30|acme|key_a|tg_AAAAA|3000000|4000|0.003|4e-06|0.003004",
           "2026-11-30|acme|key_b|tg_BBBBB|2400|0|2e-06|0|2e-06" /* 6 decimals */);
}

static void test_cache(void **state)
{
    fx_rows_t r;
    run(*state, "cache", NULL, NULL, "acme", &r);
    /* RefreshHit is a hit; key_a on Dec 1 has no cache status: no shares. */
    EXPECT(&r, "day|tenant|key_id|requests|hits|misses|hit_share|miss_share",
           "2026-11-30|acme|key_a|2|1|1|0.5|0.5", "2026-11-30|acme|key_b|1|1|0|1|0",
           "2026-12-01|acme|key_a|2|0|0|NULL|NULL");
}

static void test_models_and_tools(void **state)
{
    fx_rows_t r;
    run(*state, "models", NULL, NULL, NULL, &r);
    EXPECT(&r,
           "day|tenant|model|requests|billable|tokens_in|tokens_out|tokens_cached|cost_micros|"
           "avg_tokens_per_request",
           "2026-11-30|acme|gpt-4o|2|2|400|200|0|6000|300", "2026-12-01|beta|claude|1|0|0|0|0|0|0");
    run(*state, "tools", NULL, NULL, NULL, &r);
    EXPECT(&r, "day|tenant|tool|calls|billable|failed|cost_micros|avg_response_ms",
           "2026-12-01|acme|search|2|1|1|100|30");
}

/* The report adds up to the daily aggregates the budgets and invoices read. */
static void test_daily_matches_events(void **state)
{
    fx_t *f = *state;
    fx_rows_t r;
    tg_sql_sink_t sink = fx_sink(&r);
    tg_err_t err;
    assert_int_equal(tg_store_query(f->s,
                                    "SELECT (SELECT sum(requests) FROM report_daily), "
                                    "(SELECT sum(requests) FROM events), "
                                    "(SELECT sum(requests) FROM report_hourly)",
                                    NULL, 0, &sink, &err),
                     0);
    EXPECT(&r, NULL, "6|6|6");
}

static void test_catalogue(void **state)
{
    (void)state;
    assert_null(tg_report_find("nope"));
    assert_null(tg_report_find(NULL));
    char names[200];
    assert_string_equal(tg_report_names(names, sizeof names),
                        "daily, hourly, keys, endpoints, transfer, cache, models, tools");
    char sql[64];
    assert_int_equal(tg_report_sql(tg_report_find("daily"), sql, sizeof sql), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_BOTH(test_daily),
        FX_BOTH(test_daily_bounds_inclusive),
        FX_BOTH(test_hourly),
        FX_BOTH(test_keys),
        FX_BOTH(test_endpoints),
        FX_BOTH(test_transfer),
        FX_BOTH(test_cache),
        FX_BOTH(test_models_and_tools),
        FX_BOTH(test_daily_matches_events),
        cmocka_unit_test(test_catalogue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
