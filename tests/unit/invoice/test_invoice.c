/* Tests for src/invoice/invoice.c: the rounding rule, tier edges (at a boundary, one over),
 * included units, graduated against volume, zero usage, flat meters, model and tool
 * matching, huge counts refused rather than wrapped, months, and adjustments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "invoice/invoice.h"

#define M 1000000LL /* 1M units; also micro-USD per USD */

static tg_invoice_t inv;

static tg_plan_meter_t *add_meter(tg_plan_t *p, int meter, const char *match, int model,
                                  int64_t included)
{
    tg_plan_meter_t *m = &p->meters[p->nmeters++];
    memset(m, 0, sizeof *m);
    m->meter = meter;
    m->model = model;
    m->included = included;
    snprintf(m->match, sizeof m->match, "%s", match);
    return m;
}

static void tier(tg_plan_meter_t *m, int64_t up_to, int64_t unit)
{
    m->tiers[m->ntiers].up_to = up_to;
    m->tiers[m->ntiers].unit_micros = unit;
    m->ntiers++;
}

static void plan_init(tg_plan_t *p, int64_t base)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "pro");
    p->base_micros = base;
}

static int64_t price1(const tg_plan_t *p, int64_t q)
{
    tg_err_t err = {{0}};
    int64_t measured[TG_PLAN_METERS] = {q};
    assert_int_equal(tg_invoice_plan_check(p, &err), 0);
    assert_int_equal(tg_invoice_price(p, measured, &inv, &err), 0);
    return inv.total_micros;
}

static void test_amount_rounding(void **state)
{
    (void)state;
    tg_err_t err;
    int64_t v;
    /* $3 per 1M: one request is 3 micro-USD exactly. */
    assert_int_equal(tg_invoice_amount(1, 3 * M, M, &v, &err), 0);
    assert_int_equal(v, 3);
    /* $0.50 per 1M: one unit is 0.5 micro-USD, rounded half up to 1; 3 units 1.5 -> 2. */
    assert_int_equal(tg_invoice_amount(1, 500000, M, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tg_invoice_amount(3, 500000, M, &v, &err), 0);
    assert_int_equal(v, 2);
    /* 0.4999... rounds down. */
    assert_int_equal(tg_invoice_amount(1, 499999, M, &v, &err), 0);
    assert_int_equal(v, 0);
    /* GB: $0.09 per 10^9 bytes; 1.5 GB = 135000 micro-USD; 1 byte = 0.00009 -> 0. */
    assert_int_equal(tg_invoice_amount(1500000000LL, 90000, 1000000000LL, &v, &err), 0);
    assert_int_equal(v, 135000);
    assert_int_equal(tg_invoice_amount(1, 90000, 1000000000LL, &v, &err), 0);
    assert_int_equal(v, 0);
    /* 5555 bytes at $0.09/GB = 0.49995 micro -> 0; 5556 -> 0.50004 -> 1. */
    assert_int_equal(tg_invoice_amount(5555, 90000, 1000000000LL, &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(tg_invoice_amount(5556, 90000, 1000000000LL, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tg_invoice_amount(0, 123, M, &v, &err), 0);
    assert_int_equal(v, 0);
}

static void test_amount_exact_large(void **state)
{
    (void)state;
    tg_err_t err;
    int64_t v;
    /* 10^12 tokens at $15 per 1M: 1.5e19 / 1e6 intermediate would wrap; the result 1.5e13
     * fits and is exact. */
    assert_int_equal(tg_invoice_amount(1000000000000LL, 15 * M, M, &v, &err), 0);
    assert_int_equal(v, 15000000000000LL);
    /* A unit price above the scale and a quantity with a remainder: 1234567 units at
     * 2.5e12 micro-USD per 1M units (2.5 USD a unit). */
    assert_int_equal(tg_invoice_amount(1234567, 2500000000000LL, M, &v, &err), 0);
    assert_int_equal(v, 3086417500000LL);
    /* 9e18 ai-cost micros at 1.2 USD/USD overflows: refused, not wrapped. */
    assert_int_equal(tg_invoice_amount(9000000000000000000LL, 1200000, M, &v, &err), -1);
    assert_non_null(strstr(err.msg, "too large"));
    assert_int_equal(tg_invoice_amount(INT64_MAX, INT64_MAX, M, &v, &err), -1);
    assert_int_equal(tg_invoice_amount(-1, 1, M, &v, &err), -1);
    /* The largest exact case near the top: INT64_MAX units at 1 per 1M. */
    assert_int_equal(tg_invoice_amount(INT64_MAX, M, M, &v, &err), 0);
    assert_int_equal(v, INT64_MAX);
}

static void test_graduated_edges(void **state)
{
    (void)state;
    tg_plan_t p;
    plan_init(&p, 0);
    /* first 1M at $3/1M, next 9M at $2/1M, rest at $1/1M */
    tg_plan_meter_t *m = add_meter(&p, TG_PMETER_BILLABLE, "", TG_PMODEL_GRADUATED, 0);
    tier(m, 1000000, 3 * M);
    tier(m, 10000000, 2 * M);
    tier(m, -1, 1 * M);
    assert_int_equal(price1(&p, 1000000), 3 * M);     /* exactly at the first boundary */
    assert_int_equal(inv.nlines, 2);                  /* base + tier 1 */
    assert_int_equal(price1(&p, 1000001), 3 * M + 2); /* one over: 1 unit at $2/1M */
    assert_int_equal(inv.nlines, 3);
    assert_int_equal(inv.lines[2].tier, 2);
    assert_int_equal(inv.lines[2].quantity, 1);
    assert_int_equal(inv.lines[2].tier_from, 1000000);
    assert_int_equal(inv.lines[2].tier_to, 10000000);
    assert_int_equal(price1(&p, 10000000), 3 * M + 18 * M);
    assert_int_equal(price1(&p, 10000001), 3 * M + 18 * M + 1);
    assert_int_equal(inv.lines[3].tier, 3);
    assert_int_equal(inv.lines[3].tier_to, -1);
    assert_int_equal(price1(&p, 25000000), 3 * M + 18 * M + 15 * M);
    assert_int_equal(price1(&p, 1), 3);
}

static void test_volume_edges(void **state)
{
    (void)state;
    tg_plan_t p;
    plan_init(&p, 0);
    tg_plan_meter_t *m = add_meter(&p, TG_PMETER_BILLABLE, "", TG_PMODEL_VOLUME, 0);
    tier(m, 1000000, 3 * M);
    tier(m, 10000000, 2 * M);
    tier(m, -1, 1 * M);
    assert_int_equal(price1(&p, 1000000), 3 * M);   /* at the boundary: tier 1 */
    assert_int_equal(price1(&p, 1000001), 2000002); /* one over: every unit at tier 2 */
    assert_int_equal(inv.nlines, 2);
    assert_int_equal(inv.lines[1].tier, 2);
    assert_int_equal(inv.lines[1].kind, TG_LINE_VOLUME);
    assert_int_equal(inv.lines[1].quantity, 1000001);
    assert_int_equal(price1(&p, 10000000), 20 * M);
    assert_int_equal(price1(&p, 10000001), 10000001);
    assert_int_equal(inv.lines[1].tier, 3);
    /* graduated and volume differ on the same quantity */
    m->model = TG_PMODEL_GRADUATED;
    assert_int_equal(price1(&p, 10000001), 21000001);
}

static void test_included(void **state)
{
    (void)state;
    tg_plan_t p;
    plan_init(&p, 49 * M);
    tg_plan_meter_t *m = add_meter(&p, TG_PMETER_BILLABLE, "", TG_PMODEL_GRADUATED, 100);
    tier(m, 1000, 1000 * M); /* $0.001 per unit */
    tier(m, -1, 500 * M);
    assert_int_equal(price1(&p, 50), 49 * M); /* inside the included units */
    assert_int_equal(inv.nlines, 3);          /* base, included, a line of 0 */
    assert_int_equal(inv.lines[1].kind, TG_LINE_INCLUDED);
    assert_int_equal(inv.lines[1].quantity, 50);
    assert_int_equal(inv.lines[2].quantity, 0);
    assert_int_equal(price1(&p, 100), 49 * M); /* exactly the included units */
    assert_int_equal(price1(&p, 101), 49 * M + 1000);
    assert_int_equal(inv.lines[1].quantity, 100);
    assert_int_equal(inv.lines[2].quantity, 1);
    /* the tiers count after the included units: 1100 = 100 free + 1000 in tier 1 */
    assert_int_equal(price1(&p, 1100), 49 * M + 1000 * 1000);
    assert_int_equal(price1(&p, 1101), 49 * M + 1000 * 1000 + 500);
}

static void test_zero_usage_base_only(void **state)
{
    (void)state;
    tg_plan_t p;
    plan_init(&p, 19990000);
    tier(add_meter(&p, TG_PMETER_REQUESTS, "", TG_PMODEL_UNIT, 0), -1, 3 * M);
    tier(add_meter(&p, TG_PMETER_TOKENS_IN, "*", TG_PMODEL_VOLUME, 0), -1, 2 * M);
    add_meter(&p, TG_PMETER_TOOL_CALLS, "*", TG_PMODEL_FLAT, 0)->flat_micros = 5 * M;
    assert_int_equal(price1(&p, 0), 19990000);
    assert_int_equal(inv.nlines, 4); /* base, and one line of 0 per meter */
    for (int i = 1; i < 4; i++) {
        assert_int_equal(inv.lines[i].quantity, 0);
        assert_int_equal(inv.lines[i].subtotal_micros, 0);
    }
    assert_int_equal(inv.lines[0].kind, TG_LINE_BASE);
    assert_int_equal(inv.lines[0].subtotal_micros, 19990000);
}

static void test_flat(void **state)
{
    (void)state;
    tg_plan_t p;
    plan_init(&p, 0);
    add_meter(&p, TG_PMETER_TOOL_CALLS, "*", TG_PMODEL_FLAT, 10)->flat_micros = 20 * M;
    assert_int_equal(price1(&p, 10), 0);
    assert_int_equal(price1(&p, 11), 20 * M);
    assert_int_equal(price1(&p, 1000000000), 20 * M);
}

static void test_rounding_once_per_line(void **state)
{
    (void)state;
    tg_plan_t p;
    plan_init(&p, 0);
    /* 0.5 micro-USD per unit in both tiers: 3 units in tier 1 -> 1.5 -> 2; 3 in tier 2 ->
     * 2. Per line: 4 (not round(3.0) = 3 over the whole). */
    tg_plan_meter_t *m = add_meter(&p, TG_PMETER_BILLABLE, "", TG_PMODEL_GRADUATED, 0);
    tier(m, 3, 500000);
    tier(m, -1, 500000);
    assert_int_equal(price1(&p, 6), 4);
    assert_int_equal(inv.lines[1].subtotal_micros, 2);
    assert_int_equal(inv.lines[2].subtotal_micros, 2);
}

static void test_overflow_refused(void **state)
{
    (void)state;
    tg_plan_t p;
    tg_err_t err;
    plan_init(&p, INT64_MAX - 5);
    tier(add_meter(&p, TG_PMETER_BILLABLE, "", TG_PMODEL_UNIT, 0), -1, 10 * M);
    int64_t measured[TG_PLAN_METERS] = {1};
    assert_int_equal(tg_invoice_price(&p, measured, &inv, &err), -1); /* base + 10 wraps */
    assert_non_null(strstr(err.msg, "too large"));
    /* measuring: sums that would wrap are refused */
    plan_init(&p, 0);
    tier(add_meter(&p, TG_PMETER_GB, "", TG_PMODEL_UNIT, 0), -1, 90000);
    int64_t meas[TG_PLAN_METERS] = {0};
    tg_plan_usage_row_t row = {.model = "", .tool = "", .bytes = INT64_MAX};
    assert_int_equal(tg_invoice_measure(&p, &row, meas, &err), 0);
    row.bytes = 1;
    assert_int_equal(tg_invoice_measure(&p, &row, meas, &err), -1);
    /* and a huge byte count still prices exactly: 9.2e18 bytes at $0.09/GB */
    int64_t one[TG_PLAN_METERS] = {INT64_MAX};
    assert_int_equal(tg_invoice_price(&p, one, &inv, &err), 0);
    assert_int_equal(inv.total_micros, 830103483316930LL); /* round(INT64_MAX 9e4 / 1e9) */
}

static void test_measure_matching(void **state)
{
    (void)state;
    tg_plan_t p;
    tg_err_t err;
    plan_init(&p, 0);
    tier(add_meter(&p, TG_PMETER_TOKENS_IN, "gpt-4o", TG_PMODEL_UNIT, 0), -1, 2500000);
    tier(add_meter(&p, TG_PMETER_TOKENS_IN, "gpt-4o-mini", TG_PMODEL_UNIT, 0), -1, 150000);
    tier(add_meter(&p, TG_PMETER_TOKENS_IN, "*", TG_PMODEL_UNIT, 0), -1, 1 * M);
    tier(add_meter(&p, TG_PMETER_TOKENS_OUT, "gpt-4o", TG_PMODEL_UNIT, 0), -1, 10 * M);
    tier(add_meter(&p, TG_PMETER_TOOL_CALLS, "search", TG_PMODEL_UNIT, 0), -1, 1 * M);
    tier(add_meter(&p, TG_PMETER_REQUESTS, "", TG_PMODEL_UNIT, 0), -1, 0);
    tier(add_meter(&p, TG_PMETER_AI_COST, "", TG_PMODEL_UNIT, 0), -1, 1200000);
    assert_int_equal(tg_invoice_plan_check(&p, &err), 0);
    int64_t meas[TG_PLAN_METERS] = {0};
    tg_plan_usage_row_t rows[] = {
        {.model = "GPT-4o-2024-08-06",
         .tool = "",
         .requests = 2,
         .tokens_in = 100,
         .tokens_out = 10,
         .cost_micros = 7},
        {.model = "gpt-4o-mini", .tool = "", .requests = 1, .tokens_in = 1000, .tokens_out = 5},
        {.model = "claude-3", .tool = "", .requests = 1, .tokens_in = 7, .tokens_out = 3},
        {.model = "", .tool = "search", .requests = 4, .tool_calls = 3},
        {.model = "", .tool = "Search", .requests = 1, .tool_calls = 1}, /* tools: exact */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(tg_invoice_measure(&p, &rows[i], meas, &err), 0);
    assert_int_equal(meas[0], 100);  /* the snapshot falls back to gpt-4o, any case */
    assert_int_equal(meas[1], 1000); /* gpt-4o-mini has its own */
    assert_int_equal(meas[2], 7);    /* the rest: "*" */
    assert_int_equal(meas[3], 10);   /* tokens_out: no "*", so claude's 3 and mini's 5 unpriced */
    assert_int_equal(meas[4], 3);
    assert_int_equal(meas[5], 9);
    assert_int_equal(meas[6], 7);
    assert_int_equal(tg_invoice_price(&p, meas, &inv, &err), 0);
    /* 100 x 2.5 = 250 -> 0.00025; ai cost 7 x 1.2 = 8.4 -> 8 */
    int64_t want = 250 + 150 + 7 + 100 + 3 + 0 + 8;
    assert_int_equal(inv.total_micros, want);
}

static void test_plan_check(void **state)
{
    (void)state;
    tg_plan_t p;
    tg_err_t err;
    plan_init(&p, 0);
    tg_plan_meter_t *m = add_meter(&p, TG_PMETER_BILLABLE, "", TG_PMODEL_GRADUATED, 0);
    tier(m, 100, 1);
    tier(m, 100, 1);
    tier(m, -1, 1);
    assert_int_equal(tg_invoice_plan_check(&p, &err), -1); /* not ascending */
    assert_non_null(strstr(err.msg, "not above"));
    m->tiers[1].up_to = 200;
    assert_int_equal(tg_invoice_plan_check(&p, &err), 0);
    m->tiers[2].up_to = 300;
    assert_int_equal(tg_invoice_plan_check(&p, &err), -1); /* last has an end */
    m->tiers[2].up_to = -1;
    tg_plan_meter_t *t = add_meter(&p, TG_PMETER_TOKENS_IN, "", TG_PMODEL_UNIT, 0);
    tier(t, -1, 1);
    assert_int_equal(tg_invoice_plan_check(&p, &err), -1); /* tokens need a model */
    snprintf(t->match, sizeof t->match, "gpt-4o");
    assert_int_equal(tg_invoice_plan_check(&p, &err), 0);
    tier(add_meter(&p, TG_PMETER_TOKENS_IN, "GPT-4o", TG_PMODEL_UNIT, 0), -1, 1);
    assert_int_equal(tg_invoice_plan_check(&p, &err), -1); /* twice */
    p.nmeters--;
    p.base_micros = -1;
    assert_int_equal(tg_invoice_plan_check(&p, &err), -1);
}

static void test_months(void **state)
{
    (void)state;
    int64_t a, b;
    char buf[8];
    assert_int_equal(tg_invoice_month("2026-12", &a, &b), 0);
    assert_int_equal(a, 1796083200LL * M);
    assert_int_equal(b, 1798761600LL * M); /* 2027-01-01 */
    tg_invoice_month_of(b - 1, buf);
    assert_string_equal(buf, "2026-12");
    tg_invoice_month_of(b, buf);
    assert_string_equal(buf, "2027-01");
    assert_int_equal(tg_invoice_month("2024-02", &a, &b), 0);
    assert_int_equal(b - a, 29LL * 86400 * M);
    assert_int_equal(tg_invoice_month_prev("2027-01", buf), 0);
    assert_string_equal(buf, "2026-12");
    assert_int_equal(tg_invoice_month("2026-13", &a, &b), -1);
    assert_int_equal(tg_invoice_month("2026-1", &a, &b), -1);
    assert_int_equal(tg_invoice_month("2026-01-01", &a, &b), -1);
    assert_int_equal(tg_invoice_month("1969-12", &a, &b), -1);
}

static void test_adjust(void **state)
{
    (void)state;
    tg_plan_t p;
    tg_err_t err;
    plan_init(&p, 10 * M);
    tier(add_meter(&p, TG_PMETER_BILLABLE, "", TG_PMODEL_UNIT, 0), -1, 2 * M);
    tier(add_meter(&p, TG_PMETER_REQUESTS, "", TG_PMODEL_UNIT, 0), -1, 1 * M);
    static tg_invoice_t now_inv;
    int64_t meas[TG_PLAN_METERS] = {1000001, 1000003};
    assert_int_equal(tg_invoice_price(&p, meas, &now_inv, &err), 0);
    tg_invoice_billed_t billed[] = {
        {.month = "2026-11",
         .meter = TG_PMETER_BILLABLE,
         .measured = 1000000,
         .amount_micros = 2 * M},
        {.month = "2026-11",
         .meter = TG_PMETER_REQUESTS,
         .measured = 1000003,
         .amount_micros = 1000003},
        {.month = "2026-11", .meter = TG_PMETER_GB, .measured = 5, .amount_micros = 1},
    };
    int64_t empty[TG_PLAN_METERS] = {0};
    assert_int_equal(tg_invoice_price(&p, empty, &inv, &err), 0);
    int64_t before = inv.total_micros;
    int grew[TG_PLAN_METERS];
    assert_int_equal(tg_invoice_adjust(&inv, "2026-11", &p, &now_inv, billed, 3, grew, &err), 0);
    /* billable +1 (2 micro-USD); requests unchanged: no line; gb, billed but no longer in
     * the plan: no credit */
    assert_int_equal(inv.total_micros, before + 2);
    assert_int_equal(grew[0], 1);
    assert_int_equal(grew[1], 0);
    tg_invoice_line_t *l = &inv.lines[inv.nlines - 1];
    assert_int_equal(l->kind, TG_LINE_ADJUST);
    assert_int_equal(l->meter, TG_PMETER_BILLABLE);
    assert_int_equal(l->quantity, 1);
    assert_int_equal(l->subtotal_micros, 2);
    assert_string_equal(l->for_month, "2026-11");
    /* fewer units than billed (events purged by retention or archived): no line */
    int64_t fewer[TG_PLAN_METERS] = {999999, 1000003};
    assert_int_equal(tg_invoice_price(&p, fewer, &now_inv, &err), 0);
    int n = inv.nlines;
    assert_int_equal(tg_invoice_adjust(&inv, "2026-11", &p, &now_inv, billed, 3, grew, &err), 0);
    assert_int_equal(inv.nlines, n);
    assert_int_equal(grew[0], 0);
    /* a volume meter: one more unit crosses into a cheaper tier, the adjustment is negative */
    tg_plan_t v;
    plan_init(&v, 0);
    tg_plan_meter_t *vm = add_meter(&v, TG_PMETER_BILLABLE, "", TG_PMODEL_VOLUME, 0);
    tier(vm, 1000000, 3 * M);
    tier(vm, -1, 2 * M);
    int64_t one_m[TG_PLAN_METERS] = {1000001};
    assert_int_equal(tg_invoice_price(&v, one_m, &now_inv, &err), 0);
    tg_invoice_billed_t vb = {.month = "2026-11",
                              .meter = TG_PMETER_BILLABLE,
                              .measured = 1000000,
                              .amount_micros = 3 * M};
    assert_int_equal(tg_invoice_adjust(&inv, "2026-11", &v, &now_inv, &vb, 1, grew, &err), 0);
    assert_int_equal(inv.lines[inv.nlines - 1].quantity, 1);
    assert_int_equal(inv.lines[inv.nlines - 1].subtotal_micros, 2000002 - 3 * M);
}

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < TG_PMETER_COUNT; i++)
        assert_int_equal(
            tg_plan_name_parse(tg_plan_meter_name, TG_PMETER_COUNT, tg_plan_meter_name(i)), i);
    for (int i = 0; i < TG_PMODEL_COUNT; i++)
        assert_int_equal(
            tg_plan_name_parse(tg_plan_model_name, TG_PMODEL_COUNT, tg_plan_model_name(i)), i);
    assert_int_equal(tg_plan_name_parse(tg_plan_meter_name, TG_PMETER_COUNT, "bytes"), -1);
    assert_string_equal(tg_plan_meter_name(99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amount_rounding),
        cmocka_unit_test(test_amount_exact_large),
        cmocka_unit_test(test_graduated_edges),
        cmocka_unit_test(test_volume_edges),
        cmocka_unit_test(test_included),
        cmocka_unit_test(test_zero_usage_base_only),
        cmocka_unit_test(test_flat),
        cmocka_unit_test(test_rounding_once_per_line),
        cmocka_unit_test(test_overflow_refused),
        cmocka_unit_test(test_measure_matching),
        cmocka_unit_test(test_plan_check),
        cmocka_unit_test(test_months),
        cmocka_unit_test(test_adjust),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
