/* A fake store for the policy (tests/unit/policy/test_policy.c) and billing
 * (tests/unit/bill/test_bill.c) tests: limits, pauses, IP rules, tool rules and budgets
 * from arrays the test fills, a month-to-date spend it sets, and alerts kept unique on
 * (tenant, threshold, period) as the real table keeps them. Include once, after cmocka.h;
 * zero the counts between tests. */
#ifndef TG_TESTS_UNIT_POLICY_FAKE_STORE_H
#define TG_TESTS_UNIT_POLICY_FAKE_STORE_H

#include <string.h>

#include "store/backend.h"

static tg_limit_row_t limits[8];
static size_t nlimits;
static tg_pause_row_t pauses[4];
static size_t npauses;
static tg_ip_rule_row_t rules[4];
static size_t nrules;

static int f_limit_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_limit_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)err;
    for (size_t i = 0; i < nlimits; i++)
        if (cb(&limits[i], ud)) return -1;
    return 0;
}

static int f_pause_list(tg_store_t *s, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    (void)s, (void)err;
    for (size_t i = 0; i < npauses; i++)
        if (cb(&pauses[i], ud)) return -1;
    return 0;
}

static int f_ip_list(tg_store_t *s, const char *tenant, int (*cb)(const tg_ip_rule_row_t *, void *),
                     void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)err;
    for (size_t i = 0; i < nrules; i++)
        if (cb(&rules[i], ud)) return -1;
    return 0;
}

static tg_tool_rule_row_t tool_rules[4];
static size_t ntool_rules;
static tg_budget_row_t budgets[2];
static size_t nbudgets;
static int64_t store_spend; /* month-to-date spend the fake store reports */
static tg_alert_row_t alerts[16];
static size_t nalerts;

static int f_tool_list(tg_store_t *s, const char *tenant,
                       int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)err;
    for (size_t i = 0; i < ntool_rules; i++)
        if (cb(&tool_rules[i], ud)) return -1;
    return 0;
}

static int f_budget_list(tg_store_t *s, const char *tenant,
                         int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)err;
    for (size_t i = 0; i < nbudgets; i++)
        if (cb(&budgets[i], ud)) return -1;
    return 0;
}

static int f_spend(tg_store_t *s, const char *tenant, const char *from, const char *to,
                   int64_t *micros, tg_err_t *err)
{
    (void)s, (void)tenant, (void)from, (void)to, (void)err;
    *micros = store_spend;
    return 0;
}

static int f_alert_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)err;
    for (size_t i = 0; i < nalerts; i++)
        if (strcmp(alerts[i].tenant, tenant) == 0 && cb(&alerts[i], ud)) return -1;
    return 0;
}

/* Unique on (kind, tenant, threshold, period), as the real table. */
static int f_alert_add(tg_store_t *s, const tg_alert_row_t *row, int *inserted, tg_err_t *err)
{
    (void)s, (void)err;
    *inserted = 0;
    for (size_t i = 0; i < nalerts; i++)
        if (strcmp(alerts[i].tenant, row->tenant) == 0 && alerts[i].threshold == row->threshold &&
            strcmp(alerts[i].period, row->period) == 0)
            return 0;
    assert_true(nalerts < 16);
    alerts[nalerts++] = *row;
    *inserted = 1;
    return 0;
}

static const struct tg_store_policy_ops policy_ops = {.limit_list = f_limit_list,
                                                      .pause_list = f_pause_list,
                                                      .ip_rule_list = f_ip_list,
                                                      .tool_rule_list = f_tool_list};
static const struct tg_store_price_ops price_ops = {.budget_list = f_budget_list};
static const struct tg_store_event_ops event_ops = {.spend = f_spend};
static const struct tg_store_alert_ops alert_ops = {.alert_list = f_alert_list,
                                                    .alert_add = f_alert_add};
static tg_store_t store = {
    .policy = &policy_ops, .prices = &price_ops, .events = &event_ops, .alerts = &alert_ops};

#endif
