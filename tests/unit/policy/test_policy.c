/* Tests src/policy/policy.c against a fake store: the order of checks, defaults
 * and overrides, the strictest rule winning, pause messages, IP rules, and the
 * in-flight slot taken and given back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

#define S 1000000000ULL

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

static const struct tg_store_ops ops = {
    .limit_list = f_limit_list, .pause_list = f_pause_list, .ip_rule_list = f_ip_list};
static tg_store_t store = {.ops = &ops};

static void limit(const char *tenant, const char *scope, const char *value, int64_t n,
                  int64_t period_s, int64_t conc)
{
    tg_limit_row_t *r = &limits[nlimits++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    snprintf(r->scope, sizeof r->scope, "%s", scope);
    snprintf(r->value, sizeof r->value, "%s", value);
    r->limit = n;
    r->period_s = period_s;
    r->concurrency = conc;
}

static tg_policy_t *fresh(const tg_policy_defaults_t *d)
{
    tg_policy_t *p = tg_policy_new();
    assert_non_null(p);
    if (d) tg_policy_set_defaults(p, d);
    assert_int_equal(tg_policy_load(p, &store, NULL), 0);
    return p;
}

static tg_ip_t ip(const char *s)
{
    tg_ip_t a;
    assert_int_equal(tg_ip_parse(s, strlen(s), &a), 0);
    return a;
}

static int setup(void **state)
{
    (void)state;
    nlimits = npauses = nrules = 0;
    return 0;
}

static void test_defaults_and_override(void **state)
{
    (void)state;
    tg_policy_defaults_t d = {.has_rate = 1, .rate = {.limit = 2, .period_ns = 60 * S}};
    limit("big", "tenant", "", 5, 60, 0);
    tg_policy_t *p = fresh(&d);
    tg_ip_t c = ip("127.0.0.1");
    tg_admission_t a;
    for (int i = 0; i < 2; i++) {
        tg_policy_admit(p, "small", "r", "", "", &c, 1 * S, &a);
        assert_int_equal(a.verdict, TG_ADMIT_OK);
        assert_true(a.limited);
        assert_string_equal(a.policy, "tenant");
        assert_int_equal(a.limit, 2);
        assert_int_equal(a.window_s, 60);
        assert_int_equal(a.remaining, (uint64_t)(1 - i));
    }
    tg_policy_admit(p, "small", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_string_equal(a.reason, "rate_limited");
    assert_int_equal(a.retry_after_s, 30); /* one request every 30 s */
    for (int i = 0; i < 5; i++) {
        tg_policy_admit(p, "big", "r", "", "", &c, 1 * S, &a);
        assert_int_equal(a.verdict, TG_ADMIT_OK);
    }
    tg_policy_admit(p, "big", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    tg_policy_free(p);
}

static void test_strictest_wins(void **state)
{
    (void)state;
    limit("t", "tenant", "", 100, 60, 0);
    limit("t", "route", "chat", 1, 60, 0);
    limit("t", "key", "key_1", 3, 60, 0);
    tg_policy_t *p = fresh(NULL);
    tg_ip_t c = ip("127.0.0.1");
    tg_admission_t a;
    tg_policy_admit(p, "t", "chat", "key_1", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_string_equal(a.policy, "route"); /* the rule closest to refusing */
    assert_int_equal(a.remaining, 0);
    tg_policy_admit(p, "t", "chat", "key_1", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_string_equal(a.policy, "route");
    /* Refused all-or-nothing: the key rule was not charged for that request. */
    tg_policy_admit(p, "t", "other", "key_1", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_string_equal(a.policy, "key");
    assert_int_equal(a.remaining, 1);
    tg_policy_free(p);
}

static void test_pause_messages(void **state)
{
    (void)state;
    snprintf(pauses[0].tenant, sizeof pauses[0].tenant, "acme");
    snprintf(pauses[0].reason, sizeof pauses[0].reason, "invoice overdue");
    npauses = 1;
    tg_policy_t *p = fresh(NULL);
    tg_ip_t c = ip("127.0.0.1");
    tg_admission_t a;
    tg_policy_admit(p, "acme", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_PAUSED);
    assert_string_equal(a.message, "tenant paused: invoice overdue");
    tg_policy_admit(p, "other", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_false(a.limited);
    snprintf(pauses[1].tenant, sizeof pauses[1].tenant, "*");
    npauses = 2;
    assert_int_equal(tg_policy_load(p, &store, NULL), 0);
    tg_policy_admit(p, "other", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_PAUSED);
    assert_string_equal(a.message, "service paused");
    tg_policy_free(p);
}

static void test_ip_rules(void **state)
{
    (void)state;
    const char *rows[][3] = {{"*", "deny", "203.0.113.0/24"},
                             {"acme", "allow", "10.0.0.0/8"},
                             {"acme", "deny", "10.6.6.0/24"},
                             {"v6", "deny", "2001:db8::/32"}};
    for (size_t i = 0; i < 4; i++) {
        snprintf(rules[i].tenant, sizeof rules[i].tenant, "%s", rows[i][0]);
        snprintf(rules[i].action, sizeof rules[i].action, "%s", rows[i][1]);
        snprintf(rules[i].cidr, sizeof rules[i].cidr, "%s", rows[i][2]);
    }
    nrules = 4;
    tg_policy_t *p = fresh(NULL);
    tg_admission_t a;
    struct {
        const char *tenant, *addr;
        tg_admit_t want;
    } cases[] = {
        {"x", "203.0.113.5", TG_ADMIT_IP_DENIED},    {"x", "198.51.100.1", TG_ADMIT_OK},
        {"acme", "10.1.1.1", TG_ADMIT_OK},           {"acme", "10.6.6.1", TG_ADMIT_IP_DENIED},
        {"acme", "192.168.1.1", TG_ADMIT_IP_DENIED}, {"v6", "2001:db8::1", TG_ADMIT_IP_DENIED},
        {"v6", "2001:db9::1", TG_ADMIT_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_ip_t c = ip(cases[i].addr);
        tg_policy_admit(p, cases[i].tenant, "r", "", "", &c, 1 * S, &a);
        assert_int_equal(a.verdict, cases[i].want);
    }
    tg_policy_free(p);
}

static void test_inflight_slots(void **state)
{
    (void)state;
    tg_policy_defaults_t d = {.has_rate = 1, .rate = {.limit = 3, .period_ns = 60 * S}};
    limit("c", "tenant", "", 0, 0, 2); /* only a cap: the default rate still applies */
    tg_policy_t *p = fresh(&d);
    tg_ip_t c = ip("127.0.0.1");
    tg_admission_t a1, a2, a3;
    tg_policy_admit(p, "c", "r", "", "", &c, 1 * S, &a1);
    tg_policy_admit(p, "c", "r", "", "", &c, 1 * S, &a2);
    assert_int_equal(a1.verdict, TG_ADMIT_OK);
    assert_int_equal(a2.verdict, TG_ADMIT_OK);
    assert_int_equal(tg_policy_inflight(p, "c"), 2);
    tg_policy_admit(p, "c", "r", "", "", &c, 1 * S, &a3);
    assert_int_equal(a3.verdict, TG_ADMIT_CONCURRENCY);
    assert_int_equal(a3.conc_key, 0);
    tg_policy_release(p, a1.conc_key);
    tg_policy_admit(p, "c", "r", "", "", &c, 1 * S, &a3);
    assert_int_equal(a3.verdict, TG_ADMIT_OK); /* the 3rd of the default rate */
    tg_policy_release(p, a3.conc_key);
    /* A rate refusal gives the slot it took back. */
    tg_policy_admit(p, "c", "r", "", "", &c, 1 * S, &a3);
    assert_int_equal(a3.verdict, TG_ADMIT_RATE);
    assert_int_equal(tg_policy_inflight(p, "c"), 1);
    tg_policy_release(p, a2.conc_key);
    assert_int_equal(tg_policy_inflight(p, "c"), 0);
    tg_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_and_override, setup),
        cmocka_unit_test_setup(test_strictest_wins, setup),
        cmocka_unit_test_setup(test_pause_messages, setup),
        cmocka_unit_test_setup(test_ip_rules, setup),
        cmocka_unit_test_setup(test_inflight_slots, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
