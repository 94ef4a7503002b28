/* Tests src/policy/budget.c on its own, against a fake store: UTC month periods (leap
 * years, year ends), a new month starting from zero, reservations given back, a budget
 * removed while requests are in flight, and alerts kept queued while the store refuses
 * them. (Admission through the policy, the bounded overshoot under threads and alert
 * de-duplication are in test_policy.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/budget.h"
#include "store/backend.h"

#define US 1000000LL

static tg_budget_row_t rows[2];
static size_t nrows;
static int64_t store_spend;
static int refuse_alerts;
static tg_alert_row_t stored[8];
static size_t nstored;

static int f_budget_list(tg_store_t *s, const char *tenant,
                         int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)err;
    for (size_t i = 0; i < nrows; i++)
        if (cb(&rows[i], ud)) return -1;
    return 0;
}

static int f_spend(tg_store_t *s, const char *tenant, const char *from, const char *to,
                   int64_t *micros, tg_err_t *err)
{
    (void)s, (void)tenant, (void)err;
    /* The month asked for is the month of the load time used below. */
    assert_string_equal(from, "2028-02-01");
    assert_string_equal(to, "2028-02-29");
    *micros = store_spend;
    return 0;
}

static int f_alert_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)cb, (void)ud, (void)err;
    return 0;
}

static int f_alert_add(tg_store_t *s, const tg_alert_row_t *row, int *inserted, tg_err_t *err)
{
    (void)s;
    if (refuse_alerts) return tg_err_set(err, "database is locked");
    assert_true(nstored < 8);
    stored[nstored++] = *row;
    *inserted = 1;
    return 0;
}

static const struct tg_store_price_ops price_ops = {.budget_list = f_budget_list};
static const struct tg_store_event_ops event_ops = {.spend = f_spend};
static const struct tg_store_alert_ops alert_ops = {.alert_list = f_alert_list,
                                                    .alert_add = f_alert_add};
static tg_store_t store = {.prices = &price_ops, .events = &event_ops, .alerts = &alert_ops};

/* 2028-02-14T12:00:00Z, a leap year's February. */
static const int64_t FEB14 = 1834142400LL * US;
static const int64_t MAR01 = 1835481600LL * US; /* 2028-03-01T00:00:00Z */

static void budget_row(const char *tenant, int64_t micros, int hard)
{
    tg_budget_row_t *r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    r->monthly_micros = micros;
    r->hard = hard;
    r->thresholds[0] = 50;
    r->thresholds[1] = 100;
    r->nthresholds = 2;
}

static int setup(void **state)
{
    (void)state;
    nrows = nstored = 0;
    store_spend = 0;
    refuse_alerts = 0;
    return 0;
}

static void test_periods(void **state)
{
    (void)state;
    char m[8], first[11], last[11];
    tg_budget_period(FEB14, m, first, last);
    assert_string_equal(m, "2028-02");
    assert_string_equal(first, "2028-02-01");
    assert_string_equal(last, "2028-02-29");
    tg_budget_period(MAR01 - 1, m, NULL, last); /* the last microsecond of February */
    assert_string_equal(m, "2028-02");
    tg_budget_period(MAR01, m, first, NULL);
    assert_string_equal(m, "2028-03");
    assert_string_equal(first, "2028-03-01");
    tg_budget_period(1803859200LL * US, m, NULL, last); /* 2027-03-01: 2027 is not leap */
    tg_budget_period(1803859200LL * US - 1, m, NULL, last);
    assert_string_equal(m, "2027-02");
    assert_string_equal(last, "2027-02-28");
    tg_budget_period(1830297599LL * US, m, NULL, last); /* 2027-12-31T23:59:59Z */
    assert_string_equal(m, "2027-12");
    assert_string_equal(last, "2027-12-31");
}

static void test_new_month_starts_from_zero(void **state)
{
    (void)state;
    budget_row("t", 10 * US, 1);
    store_spend = 10 * US; /* February is spent */
    tg_budgets_t *b = tg_budgets_new();
    assert_int_equal(tg_budgets_load(b, &store, FEB14, NULL), 0);
    int64_t res;
    char msg[200];
    assert_int_equal(tg_budgets_reserve(b, "t", 1, FEB14, &res, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "monthly budget reached"));
    /* March: nothing spent yet. */
    assert_int_equal(tg_budgets_reserve(b, "t", 2 * US, MAR01, &res, msg, sizeof msg), 0);
    assert_int_equal(res, 2 * US);
    int64_t spent, reserved, budget;
    assert_int_equal(tg_budgets_state(b, "t", &spent, &reserved, &budget), 0);
    assert_int_equal(spent, 0);
    assert_int_equal(reserved, 2 * US);
    tg_budgets_settle(b, "t", res, 3 * US, MAR01);
    assert_int_equal(tg_budgets_state(b, "t", &spent, &reserved, &budget), 0);
    assert_int_equal(spent, 3 * US);
    assert_int_equal(reserved, 0);
    /* A tenant without a budget reserves nothing and is never refused. */
    assert_int_equal(tg_budgets_reserve(b, "other", 5 * US, MAR01, &res, msg, sizeof msg), 0);
    assert_int_equal(res, 0);
    tg_budgets_free(b);
}

/* The uses /metrics reads: each budget's spend this month (loaded from the store, plus what
 * settled) and the budget; a month with nothing settled yet reads 0 spent. */
static void test_uses(void **state)
{
    (void)state;
    budget_row("a", 10 * US, 1);
    budget_row("b", 4 * US, 0);
    store_spend = 2 * US; /* each tenant's month to date, from the fake store */
    tg_budgets_t *b = tg_budgets_new();
    tg_budget_use_t *u;
    size_t n;
    assert_int_equal(tg_budgets_uses(b, FEB14, &u, &n), 0); /* nothing loaded */
    assert_int_equal(n, 0);
    assert_null(u);
    assert_int_equal(tg_budgets_load(b, &store, FEB14, NULL), 0);
    int64_t res;
    char msg[200];
    assert_int_equal(tg_budgets_reserve(b, "b", US, FEB14, &res, msg, sizeof msg), 0);
    tg_budgets_settle(b, "b", res, 3 * US, FEB14); /* a soft budget passed: 5 of 4 */
    assert_int_equal(tg_budgets_uses(b, FEB14, &u, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        int is_a = strcmp(u[i].tenant, "a") == 0;
        assert_true(is_a || strcmp(u[i].tenant, "b") == 0);
        assert_int_equal(u[i].spent, is_a ? 2 * US : 5 * US);
        assert_int_equal(u[i].budget, is_a ? 10 * US : 4 * US);
    }
    free(u);
    /* March, before any request of March settled: nothing spent in it. */
    assert_int_equal(tg_budgets_uses(b, MAR01, &u, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(u[0].spent, 0);
    assert_int_equal(u[1].spent, 0);
    free(u);
    tg_budgets_free(b);
}

static void test_budget_removed_in_flight(void **state)
{
    (void)state;
    budget_row("t", 10 * US, 1);
    tg_budgets_t *b = tg_budgets_new();
    assert_int_equal(tg_budgets_load(b, &store, FEB14, NULL), 0);
    int64_t res;
    char msg[200];
    assert_int_equal(tg_budgets_reserve(b, "t", 4 * US, FEB14, &res, msg, sizeof msg), 0);
    nrows = 0; /* budget rm */
    assert_int_equal(tg_budgets_load(b, &store, FEB14, NULL), 0);
    tg_budgets_settle(b, "t", res, 1 * US, FEB14); /* no entry: nothing to do, no crash */
    int64_t spent, reserved, budget;
    assert_int_equal(tg_budgets_state(b, "t", &spent, &reserved, &budget), -1);
    tg_budgets_free(b);
}

static void test_alerts_kept_while_store_refuses(void **state)
{
    (void)state;
    budget_row("t", 10 * US, 0);
    tg_budgets_t *b = tg_budgets_new();
    assert_int_equal(tg_budgets_load(b, &store, FEB14, NULL), 0);
    int64_t res;
    char msg[200];
    assert_int_equal(tg_budgets_reserve(b, "t", 0, FEB14, &res, msg, sizeof msg), 0);
    tg_budgets_settle(b, "t", res, 11 * US, FEB14); /* past 50% and 100% at once */
    refuse_alerts = 1;
    tg_err_t err;
    assert_int_equal(tg_budgets_flush(b, &store, &err), -1);
    assert_int_equal(nstored, 0);
    refuse_alerts = 0;
    assert_int_equal(tg_budgets_flush(b, &store, &err), 0);
    assert_int_equal(nstored, 2);
    assert_int_equal(stored[0].threshold, 50);
    assert_int_equal(stored[1].threshold, 100);
    assert_string_equal(stored[0].period, "2028-02");
    assert_int_equal(stored[1].spend_micros, 11 * US);
    assert_int_equal(tg_budgets_flush(b, &store, &err), 0);
    assert_int_equal(nstored, 2); /* nothing queued twice */
    tg_budgets_free(b);
}

/* The notice hook (issue 11): called with each alert's notice before the alert is stored;
 * when it fails nothing is stored and the alert stays queued. */
static tg_notice_t hooked[8];
static size_t nhooked;
static size_t stored_at_hook[8];
static int hook_fails;

static int hook(void *ud, tg_store_t *s, const tg_notice_t *n, tg_err_t *err)
{
    assert_ptr_equal(ud, &hooked);
    assert_ptr_equal(s, &store);
    if (hook_fails) return tg_err_set(err, "outbox busy");
    assert_true(nhooked < 8);
    stored_at_hook[nhooked] = nstored;
    hooked[nhooked++] = *n;
    return 0;
}

static void test_notice_hook(void **state)
{
    (void)state;
    budget_row("acme", 10 * US, 0);
    tg_budgets_t *b = tg_budgets_new();
    tg_budgets_set_notice(b, hook, &hooked);
    assert_int_equal(tg_budgets_load(b, &store, FEB14, NULL), 0);
    int64_t res;
    char msg[200];
    assert_int_equal(tg_budgets_reserve(b, "acme", 0, FEB14, &res, msg, sizeof msg), 0);
    tg_budgets_settle(b, "acme", res, 11 * US, FEB14); /* past 50% and 100% */
    tg_err_t err;
    hook_fails = 1;
    assert_int_equal(tg_budgets_flush(b, &store, &err), -1);
    assert_int_equal(nstored, 0); /* no alert stored without its notice */
    hook_fails = 0;
    assert_int_equal(tg_budgets_flush(b, &store, &err), 0);
    assert_int_equal(nhooked, 2);
    assert_int_equal(nstored, 2);
    assert_int_equal(stored_at_hook[0], 0); /* the notice before the alert row */
    assert_int_equal(stored_at_hook[1], 1);
    const tg_notice_t *n = &hooked[0];
    assert_string_equal(n->id, "budget/acme/2028-02/50");
    assert_string_equal(n->kind, "budget");
    assert_string_equal(n->alarm, "budget");
    assert_string_equal(n->alarm_kind, "budget");
    assert_string_equal(n->tenant, "acme");
    assert_string_equal(n->state, "firing");
    assert_string_equal(n->severity, "warning");
    assert_true(n->value == 1.1 && n->threshold == 0.5);
    assert_int_equal(n->time_us, FEB14);
    assert_string_equal(n->summary, "tenant acme reached 50% of its monthly budget for 2028-02 "
                                    "(spend 11.00 USD of 10.00 USD)");
    assert_string_equal(hooked[1].id, "budget/acme/2028-02/100");
    assert_string_equal(hooked[1].severity, "critical");
    assert_int_equal(tg_budgets_flush(b, &store, &err), 0);
    assert_int_equal(nhooked, 2);
    tg_budgets_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_periods, setup),
        cmocka_unit_test_setup(test_notice_hook, setup),
        cmocka_unit_test_setup(test_new_month_starts_from_zero, setup),
        cmocka_unit_test_setup(test_uses, setup),
        cmocka_unit_test_setup(test_budget_removed_in_flight, setup),
        cmocka_unit_test_setup(test_alerts_kept_while_store_refuses, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
