/* Tests the shared limiter's view of src/policy/policy.c (tg_policy_plan, tg_policy_plan_tools)
 * and the local fallback's arithmetic (tg_admit_in_t.share: rates, bursts and the in-flight
 * cap divided among the gateways), against the fake store, at fixed instants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"
#include "policy/fake_store.h"

#define S    1000000000ULL
#define WALL 1795000000000000LL /* 2026-11-18T07:33:20Z */

static tg_limit_row_t *limit(const char *tenant, const char *scope, const char *value, int64_t n,
                             int64_t period_s)
{
    tg_limit_row_t *r = &limits[nlimits++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    snprintf(r->scope, sizeof r->scope, "%s", scope);
    snprintf(r->value, sizeof r->value, "%s", value);
    r->limit = n;
    r->period_s = period_s;
    return r;
}

static int setup(void **state)
{
    (void)state;
    nlimits = npauses = nrules = ntool_rules = nbudgets = nalerts = 0;
    store_spend = 0;
    return 0;
}

static tg_policy_t *fresh(void)
{
    tg_policy_t *p = tg_policy_new();
    assert_non_null(p);
    assert_int_equal(tg_policy_load(p, &store, WALL, NULL), 0);
    return p;
}

static tg_ip_t any_ip(void)
{
    tg_ip_t a;
    assert_int_equal(tg_ip_parse("10.0.0.1", 8, &a), 0);
    return a;
}

static void test_plan_lists_every_rule(void **state)
{
    (void)state;
    tg_limit_row_t *t = limit("acme", "tenant", "", 10, 60);
    t->concurrency = 4;
    t->tokens = 1000;
    t->tokens_period_s = 60;
    limit("acme", "route", "chat", 5, 1)->burst = 2;
    limit("acme", "model", "gpt-4o", 3, 3600);
    budgets[nbudgets++] = (tg_budget_row_t){.tenant = "acme", .monthly_micros = 5000000, .hard = 1};
    store_spend = 1234;
    tg_policy_t *p = fresh();
    tg_ip_t ip = any_ip();
    tg_admit_in_t in = {.tenant = "acme",
                        .route = "chat",
                        .key_id = "key_1",
                        .model = "GPT-4o-2024-08-06", /* a dated snapshot: its base's rules */
                        .client = &ip,
                        .est_tokens = 700,
                        .est_cost = 99,
                        .wall_us = WALL};
    tg_admit_plan_t plan;
    tg_admission_t a;
    assert_int_equal(tg_policy_plan(p, &in, &plan, &a), 0);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(plan.nrate, 3);
    assert_int_equal(plan.n, 4);
    assert_string_equal(plan.rules[0].scope, "tenant");
    assert_string_equal(plan.rules[0].value, "");
    assert_int_equal(plan.rules[0].rule.limit, 10);
    assert_int_equal(plan.rules[0].rule.period_ns, 60 * S);
    assert_string_equal(plan.rules[1].scope, "route");
    assert_string_equal(plan.rules[1].value, "chat");
    assert_int_equal(plan.rules[1].rule.burst, 2);
    assert_string_equal(plan.rules[2].scope, "model");
    assert_string_equal(plan.rules[2].value, "gpt-4o"); /* the folded base, the plan's copy */
    assert_ptr_equal(plan.rules[2].value, plan.model);
    assert_string_equal(plan.rules[3].scope, "tokens.tenant");
    assert_string_equal(plan.rules[3].name, "tokens");
    assert_int_equal(plan.rules[3].tokens, 1);
    assert_int_equal(plan.rules[3].rule.cost, 700);
    assert_int_equal(plan.cap, 4);
    assert_int_equal(plan.has_budget, 1);
    assert_int_equal(plan.hard, 1);
    assert_int_equal(plan.budget, 5000000);
    assert_int_equal(plan.spent, 1234); /* the store's month to date: the counter's seed */
    assert_int_equal(plan.est_cost, 99);
    /* Nothing is held in this process: the in-flight count is untouched. */
    assert_int_equal(tg_policy_inflight(p, "acme"), 0);
    assert_int_equal(a.conc_key, 0);
    assert_int_equal(a.ntok, 0);
    /* The further tools of a batch: only those with a rate rule. */
    limit("acme", "tool", "search", 2, 60);
    tg_policy_free(p);
    p = fresh();
    assert_int_equal(tg_policy_plan(p, &in, &plan, &a), 0);
    const char *tools[] = {"search", "fetch"};
    assert_int_equal(tg_policy_plan_tools(p, &plan, "acme", tools, 2), 0);
    assert_int_equal(plan.n, 5);
    assert_string_equal(plan.rules[4].scope, "tool");
    assert_string_equal(plan.rules[4].value, "search");
    tg_policy_free(p);
}

static void test_plan_decides_pauses_here(void **state)
{
    (void)state;
    limit("acme", "tenant", "", 10, 60);
    pauses[npauses++] = (tg_pause_row_t){.tenant = "acme", .reason = "maintenance"};
    tg_policy_t *p = fresh();
    tg_ip_t ip = any_ip();
    tg_admit_in_t in = {.tenant = "acme", .client = &ip, .wall_us = WALL};
    tg_admit_plan_t plan;
    tg_admission_t a;
    assert_int_equal(tg_policy_plan(p, &in, &plan, &a), 1);
    assert_int_equal(a.verdict, TG_ADMIT_PAUSED);
    assert_string_equal(a.message, "tenant paused: maintenance");
    tg_policy_free(p);
}

/* The local fallback: 10 per minute shared by 3 gateways is 3 per minute here (burst 3), a
 * cap of 4 is 1; a share never takes a limit below 1. */
static void test_share_divides(void **state)
{
    (void)state;
    limit("acme", "tenant", "", 10, 60)->concurrency = 4;
    limit("tiny", "tenant", "", 2, 60);
    tg_policy_t *p = fresh();
    tg_ip_t ip = any_ip();
    tg_admit_in_t in = {.tenant = "acme", .client = &ip, .wall_us = WALL, .share = 3};
    tg_admission_t a;
    uint64_t now = 1000 * S;
    tg_policy_admit(p, &in, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.limit, 3);
    assert_int_equal(a.remaining, 2);
    /* The cap of 4 / 3 = 1: a second request in flight is refused. */
    tg_admission_t b;
    tg_policy_admit(p, &in, now, &b);
    assert_int_equal(b.verdict, TG_ADMIT_CONCURRENCY);
    tg_policy_release(p, a.conc_key);
    tg_policy_admit(p, &in, now, &a);
    tg_policy_release(p, a.conc_key);
    tg_policy_admit(p, &in, now, &a);
    tg_policy_release(p, a.conc_key);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.remaining, 0);
    tg_policy_admit(p, &in, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_int_equal(a.retry_after_s, 20); /* one per 60/3 s */
    /* 2 / 3 rounds to 0: kept at 1. */
    in.tenant = "tiny";
    tg_policy_admit(p, &in, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.limit, 1);
    tg_policy_admit(p, &in, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    /* share 1 (and 0) is the rule as written. */
    in.tenant = "acme";
    in.share = 1;
    tg_policy_admit(p, &in, now + 3600 * S, &a);
    assert_int_equal(a.limit, 10);
    tg_policy_release(p, a.conc_key);
    tg_policy_free(p);
}

/* The shared spend a reply reports raises what this process knows (never lowers it), and a
 * threshold it crosses fires here too. */
static void test_observe_spend(void **state)
{
    (void)state;
    budgets[nbudgets++] = (tg_budget_row_t){.tenant = "acme",
                                            .monthly_micros = 1000000,
                                            .hard = 1,
                                            .thresholds = {50},
                                            .nthresholds = 1};
    store_spend = 100000;
    tg_policy_t *p = fresh();
    int64_t spent, reserved, budget;
    tg_policy_observe_spend(p, "acme", 600000, WALL);
    assert_int_equal(tg_policy_budget_state(p, "acme", &spent, &reserved, &budget), 0);
    assert_int_equal(spent, 600000);
    tg_policy_observe_spend(p, "acme", 200000, WALL); /* an older figure: kept */
    assert_int_equal(tg_policy_budget_state(p, "acme", &spent, &reserved, &budget), 0);
    assert_int_equal(spent, 600000);
    assert_int_equal(tg_policy_flush_alerts(p, &store, NULL), 0);
    assert_int_equal(nalerts, 1);
    assert_int_equal(alerts[0].threshold, 50);
    tg_policy_observe_spend(p, "nobody", 5, WALL); /* no budget: nothing */
    tg_policy_free(p);
}

/* A shared limiter's answer copied here: the tenant's utilisation follows it, and the local
 * fallback starts from it. */
static void test_mirror(void **state)
{
    (void)state;
    limit("acme", "tenant", "", 10, 60);
    tg_policy_t *p = fresh();
    tg_ip_t ip = any_ip();
    tg_admit_in_t in = {.tenant = "acme", .client = &ip, .wall_us = WALL};
    tg_admit_plan_t plan;
    tg_admission_t a;
    assert_int_equal(tg_policy_plan(p, &in, &plan, &a), 0);
    uint64_t now = 1000 * S;
    assert_true(tg_policy_tenant_utilisation(p, "acme", now) < 0.01);
    int64_t ahead[1] = {60000000};                                    /* the whole minute used */
    tg_policy_mirror(p, "acme", &plan, ahead, 1795000000000000, now); /* Redis's clock */
    double u = tg_policy_tenant_utilisation(p, "acme", now);
    assert_true(u > 0.99 && u < 1.01);
    in.share = 3; /* down now: the local share starts from the shared state */
    tg_policy_admit(p, &in, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    /* A late answer of an older state changes nothing; a newer one does. */
    ahead[0] = 30000000;
    tg_policy_mirror(p, "acme", &plan, ahead, 1794999999000000, now);
    u = tg_policy_tenant_utilisation(p, "acme", now);
    assert_true(u > 0.99 && u < 1.01);
    ahead[0] = 0; /* idle again */
    tg_policy_mirror(p, "acme", &plan, ahead, 1795000001000000, now);
    assert_true(tg_policy_tenant_utilisation(p, "acme", now) < 0.01);
    tg_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plan_lists_every_rule, setup),
        cmocka_unit_test_setup(test_plan_decides_pauses_here, setup),
        cmocka_unit_test_setup(test_share_divides, setup),
        cmocka_unit_test_setup(test_observe_spend, setup),
        cmocka_unit_test_setup(test_mirror, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
