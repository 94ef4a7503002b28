/* Tests the alarm side of src/policy/policy.c (and tg_limit_usage in ratelimit.c): a
 * tenant's highest limit utilisation over its rate and token rules, and throttles (the
 * tenant's rate rules scaled while an alarm action holds), against the fake store. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/fake_store.h"
#include "policy/policy.h"

#define S    1000000000ULL
#define WALL 1795000000000000LL

static void limit(const char *tenant, const char *scope, const char *value, int64_t n,
                  int64_t period_s)
{
    tg_limit_row_t *r = &limits[nlimits++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    snprintf(r->scope, sizeof r->scope, "%s", scope);
    snprintf(r->value, sizeof r->value, "%s", value);
    r->limit = n;
    r->period_s = period_s;
}

static int admit(tg_policy_t *p, const char *tenant, const char *route, uint64_t now_ns)
{
    tg_ip_t c;
    assert_int_equal(tg_ip_parse("127.0.0.1", 9, &c), 0);
    tg_admit_in_t in = {.tenant = tenant, .route = route, .client = &c, .wall_us = WALL};
    tg_admission_t a;
    tg_policy_admit(p, &in, now_ns, &a);
    if (a.conc_key) tg_policy_release(p, a.conc_key);
    return a.verdict;
}

static tg_policy_t *fresh(const tg_policy_defaults_t *d)
{
    tg_policy_t *p = tg_policy_new();
    assert_non_null(p);
    if (d) tg_policy_set_defaults(p, d);
    assert_int_equal(tg_policy_load(p, &store, WALL, NULL), 0);
    return p;
}

static int setup(void **state)
{
    (void)state;
    nlimits = npauses = nrules = ntool_rules = nbudgets = nalerts = 0;
    return 0;
}

static void test_utilisation(void **state)
{
    (void)state;
    limit("acme", "tenant", "", 10, 60);
    limit("acme", "route", "chat", 4, 60);
    limits[nlimits - 1].tokens = 1000;
    limits[nlimits - 1].tokens_period_s = 60;
    tg_policy_defaults_t d = {.has_rate = 1, .rate = {.limit = 100, .period_ns = 60 * S}};
    tg_policy_t *p = fresh(&d);
    /* No request yet: 0 (rules apply); a tenant with only the default: 0. */
    assert_true(tg_policy_tenant_utilisation(p, "acme", 1 * S) == 0);
    assert_true(tg_policy_tenant_utilisation(p, "other", 1 * S) == 0);
    /* 3 requests on route chat: 3/10 of the tenant's, 3/4 of the route's: 0.75. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(admit(p, "acme", "chat", 1 * S), TG_ADMIT_OK);
    double u = tg_policy_tenant_utilisation(p, "acme", 1 * S);
    assert_true(u > 0.74 && u < 0.76);
    /* 30 s later, 2 of the route's 3 have drained (one per 15 s): 1/4. */
    u = tg_policy_tenant_utilisation(p, "acme", 31 * S);
    assert_true(u > 0.24 && u < 0.26);
    /* A request elsewhere counts only against the tenant's 10. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(admit(p, "acme", "embed", 61 * S), TG_ADMIT_OK);
    u = tg_policy_tenant_utilisation(p, "acme", 61 * S);
    assert_true(u > 0.49 && u < 0.51);
    tg_policy_free(p);
    /* Without any rule: -1. */
    nlimits = 0;
    p = fresh(NULL);
    assert_true(tg_policy_tenant_utilisation(p, "acme", 1 * S) < 0);
    tg_policy_free(p);
}

static void test_throttle(void **state)
{
    (void)state;
    limit("acme", "tenant", "", 10, 60);
    tg_policy_t *p = fresh(NULL);
    assert_true(tg_policy_scale(p, "acme") == 1);
    assert_int_equal(tg_policy_set_scale(p, "acme", 0.5), 0);
    assert_true(tg_policy_scale(p, "acme") == 0.5);
    /* 5 of the 10 are admitted, the 6th refused. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(admit(p, "acme", "r", 1 * S), TG_ADMIT_OK);
    assert_int_equal(admit(p, "acme", "r", 1 * S), TG_ADMIT_RATE);
    /* Against the throttled limit the tenant is at its whole window. */
    double u = tg_policy_tenant_utilisation(p, "acme", 1 * S);
    assert_true(u > 0.99 && u < 1.01);
    /* Another tenant is not throttled. */
    assert_int_equal(tg_policy_set_scale(p, "beta", 1), 0);
    /* Undone: what was counted stays counted (the window drains at the normal rate), and
     * once it has, the whole limit of 10 is there again. */
    assert_int_equal(tg_policy_set_scale(p, "acme", 1), 0);
    assert_true(tg_policy_scale(p, "acme") == 1);
    int ok = 0;
    for (int i = 0; i < 12; i++)
        ok += admit(p, "acme", "r", 61 * S) == TG_ADMIT_OK;
    assert_int_equal(ok, 10);
    tg_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_utilisation, setup),
        cmocka_unit_test_setup(test_throttle, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
