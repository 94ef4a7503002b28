/* Tests src/policy/policy.c against a fake store: the order of checks, defaults
 * and overrides, the strictest rule winning, pause messages, IP rules, and the
 * in-flight slot taken and given back. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"
#include "policy/fake_store.h"

#define S 1000000000ULL
/* The wall clock every test passes in: 2026-11-18T07:33:20Z (the budget's month is 2026-11). */
#define WALL 1795000000000000LL

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

/* Admission of a plain (non-AI) request at the fixed wall clock. */
static void admit_plain(tg_policy_t *p, const char *tenant, const char *route, const char *key_id,
                        const char *tool, const tg_ip_t *client, uint64_t now_ns, tg_admission_t *a)
{
    tg_admit_in_t in = {.tenant = tenant,
                        .route = route,
                        .key_id = key_id,
                        .tool = tool,
                        .client = client,
                        .wall_us = WALL};
    tg_policy_admit(p, &in, now_ns, a);
}

static tg_policy_t *fresh(const tg_policy_defaults_t *d)
{
    tg_policy_t *p = tg_policy_new();
    assert_non_null(p);
    if (d) tg_policy_set_defaults(p, d);
    assert_int_equal(tg_policy_load(p, &store, WALL, NULL), 0);
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
    nlimits = npauses = nrules = ntool_rules = nbudgets = nalerts = 0;
    store_spend = 0;
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
        admit_plain(p, "small", "r", "", "", &c, 1 * S, &a);
        assert_int_equal(a.verdict, TG_ADMIT_OK);
        assert_true(a.limited);
        assert_string_equal(a.policy, "tenant");
        assert_int_equal(a.limit, 2);
        assert_int_equal(a.window_s, 60);
        assert_int_equal(a.remaining, (uint64_t)(1 - i));
    }
    admit_plain(p, "small", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_string_equal(a.reason, "rate_limited");
    assert_int_equal(a.retry_after_s, 30); /* one request every 30 s */
    for (int i = 0; i < 5; i++) {
        admit_plain(p, "big", "r", "", "", &c, 1 * S, &a);
        assert_int_equal(a.verdict, TG_ADMIT_OK);
    }
    admit_plain(p, "big", "r", "", "", &c, 1 * S, &a);
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
    admit_plain(p, "t", "chat", "key_1", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_string_equal(a.policy, "route"); /* the rule closest to refusing */
    assert_int_equal(a.remaining, 0);
    admit_plain(p, "t", "chat", "key_1", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_string_equal(a.policy, "route");
    /* Refused all-or-nothing: the key rule was not charged for that request. */
    admit_plain(p, "t", "other", "key_1", "", &c, 1 * S, &a);
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
    admit_plain(p, "acme", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_PAUSED);
    assert_string_equal(a.message, "tenant paused: invoice overdue");
    admit_plain(p, "other", "r", "", "", &c, 1 * S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_false(a.limited);
    snprintf(pauses[1].tenant, sizeof pauses[1].tenant, "*");
    npauses = 2;
    assert_int_equal(tg_policy_load(p, &store, WALL, NULL), 0);
    admit_plain(p, "other", "r", "", "", &c, 1 * S, &a);
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
        admit_plain(p, cases[i].tenant, "r", "", "", &c, 1 * S, &a);
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
    admit_plain(p, "c", "r", "", "", &c, 1 * S, &a1);
    admit_plain(p, "c", "r", "", "", &c, 1 * S, &a2);
    assert_int_equal(a1.verdict, TG_ADMIT_OK);
    assert_int_equal(a2.verdict, TG_ADMIT_OK);
    assert_int_equal(tg_policy_inflight(p, "c"), 2);
    admit_plain(p, "c", "r", "", "", &c, 1 * S, &a3);
    assert_int_equal(a3.verdict, TG_ADMIT_CONCURRENCY);
    assert_int_equal(a3.conc_key, 0);
    tg_policy_release(p, a1.conc_key);
    admit_plain(p, "c", "r", "", "", &c, 1 * S, &a3);
    assert_int_equal(a3.verdict, TG_ADMIT_OK); /* the 3rd of the default rate */
    tg_policy_release(p, a3.conc_key);
    /* A rate refusal gives the slot it took back. */
    admit_plain(p, "c", "r", "", "", &c, 1 * S, &a3);
    assert_int_equal(a3.verdict, TG_ADMIT_RATE);
    assert_int_equal(tg_policy_inflight(p, "c"), 1);
    tg_policy_release(p, a2.conc_key);
    assert_int_equal(tg_policy_inflight(p, "c"), 0);
    tg_policy_free(p);
}

static void tool_rule(const char *tenant, const char *action, const char *pattern)
{
    tg_tool_rule_row_t *r = &tool_rules[ntool_rules++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    snprintf(r->action, sizeof r->action, "%s", action);
    snprintf(r->pattern, sizeof r->pattern, "%s", pattern);
}

static void test_tool_rules(void **state)
{
    (void)state;
    tool_rule("t", "deny", "secret_*");
    tool_rule("*", "deny", "rm_rf");
    tool_rule("a", "allow", "search*");
    tool_rule("a", "allow", "echo");
    tg_policy_t *p = fresh(NULL);
    assert_true(tg_policy_tool_allowed(p, "t", "echo"));
    assert_false(tg_policy_tool_allowed(p, "t", "secret_admin"));
    assert_false(tg_policy_tool_allowed(p, "t", "rm_rf"));           /* global deny */
    assert_true(tg_policy_tool_allowed(p, "other", "secret_admin")); /* t's rule only */
    assert_false(tg_policy_tool_allowed(p, "other", "rm_rf"));
    /* An allow list admits only what it matches. */
    assert_true(tg_policy_tool_allowed(p, "a", "search_web"));
    assert_true(tg_policy_tool_allowed(p, "a", "echo"));
    assert_false(tg_policy_tool_allowed(p, "a", "echo2"));
    assert_false(tg_policy_tool_allowed(p, "a", "rm_rf")); /* deny wins */
    tg_policy_free(p);
}

static void admit_ai(tg_policy_t *p, const char *tenant, const char *model, int64_t tokens,
                     int64_t cost, uint64_t now, tg_admission_t *a)
{
    tg_ip_t c = ip("127.0.0.1");
    tg_admit_in_t in = {.tenant = tenant,
                        .route = "r",
                        .key_id = "k1",
                        .model = model,
                        .client = &c,
                        .est_tokens = tokens,
                        .est_cost = cost,
                        .wall_us = WALL};
    tg_policy_admit(p, &in, now, a);
}

static void test_token_limits(void **state)
{
    (void)state;
    /* 1000 tokens per minute for the tenant; 300 per minute for model "m". */
    limit("t", "tenant", "", 0, 0, 0);
    limits[0].tokens = 1000;
    limits[0].tokens_period_s = 60;
    limit("t", "model", "m", 0, 0, 0);
    limits[1].tokens = 300;
    limits[1].tokens_period_s = 60;
    tg_policy_t *p = fresh(NULL);
    tg_admission_t a;
    uint64_t now = 100 * S;
    /* Admitted while a token is free, then charged the whole estimate (debt). */
    admit_ai(p, "t", "m", 500, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.ntok, 2);
    admit_ai(p, "t", "m", 10, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_string_equal(a.reason, "token_limited");
    assert_true(a.retry_after_s >= 1);
    /* Another model is limited only by the tenant's 1000: 500 used, room left. */
    admit_ai(p, "t", "x", 400, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.ntok, 1);
    /* Settling to the actual count gives back the difference: 400 reserved, 100 used. */
    tg_policy_settle(p, &a, "t", 100, 0, now, 0);
    assert_int_equal(a.ntok, 0);
    /* Tenant: 500 + 100 = 600 used; 400 more fit (one token must be free), model x. */
    admit_ai(p, "t", "x", 399, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    tg_admission_t b;
    admit_ai(p, "t", "x", 1, 0, now, &b);
    assert_int_equal(b.verdict, TG_ADMIT_OK); /* 999 used: one free */
    admit_ai(p, "t", "x", 1, 0, now, &b);
    assert_int_equal(b.verdict, TG_ADMIT_RATE);
    /* Unknown actual count (-1): the estimate stands. */
    tg_policy_settle(p, &a, "t", -1, 0, now, 0);
    admit_ai(p, "t", "x", 1, 0, now, &b);
    assert_int_equal(b.verdict, TG_ADMIT_RATE);
    /* A minute later the window has drained. */
    admit_ai(p, "t", "m", 100, 0, now + 61 * S, &b);
    assert_int_equal(b.verdict, TG_ADMIT_OK);
    /* Requests that are not AI calls (0 tokens) are not held by token limits. */
    admit_ai(p, "t", "m", 0, 0, now, &b);
    assert_int_equal(b.verdict, TG_ADMIT_OK);
    tg_policy_free(p);
}

/* A model's token rule holds every spelling of it and its snapshots and variants, on one
 * counter; a variant with a rule of its own keeps it. */
static void test_token_limits_model_names(void **state)
{
    (void)state;
    limit("t", "model", "GPT-4o-mini", 0, 0, 0); /* written in capitals: folded */
    limits[0].tokens = 300;
    limits[0].tokens_period_s = 60;
    limit("t", "model", "gpt-4o-mini-2024-07-18", 0, 0, 0);
    limits[1].tokens = 5000;
    limits[1].tokens_period_s = 60;
    tg_policy_t *p = fresh(NULL);
    tg_admission_t a;
    uint64_t now = 100 * S;
    admit_ai(p, "t", "gpt-4o-mini", 300, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.ntok, 1);
    static const char *const same[] = {
        "gpt-4o-mini",        "GPT-4O-MINI",   "gpt-4o-mini-2024-08-06",
        "gpt-4o-mini@vertex", "gpt-4o-mini:0", "Gpt-4o-Mini-20240806"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        admit_ai(p, "t", same[i], 10, 0, now, &a);
        assert_int_equal(a.verdict, TG_ADMIT_RATE);
        assert_string_equal(a.reason, "token_limited");
    }
    /* Its own rule (5000), in any case; another model has none. */
    admit_ai(p, "t", "GPT-4o-mini-2024-07-18", 1000, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.ntok, 1);
    admit_ai(p, "t", "gpt-4o", 1000, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.ntok, 0);
    tg_policy_free(p);
}

/* A model's request-rate rule (limit set --model M --rpm N) applies, to every spelling. */
static void test_model_rate(void **state)
{
    (void)state;
    limit("t", "model", "claude-3-5-sonnet", 2, 60, 0);
    tg_policy_t *p = fresh(NULL);
    tg_admission_t a;
    uint64_t now = 100 * S;
    admit_ai(p, "t", "claude-3-5-sonnet", 10, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(a.limited, 1);
    assert_string_equal(a.policy, "model");
    admit_ai(p, "t", "Claude-3-5-Sonnet-20241022", 10, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    admit_ai(p, "t", "claude-3-5-sonnet@20240620", 10, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_string_equal(a.reason, "rate_limited");
    admit_ai(p, "t", "claude-3-opus", 10, 0, now, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    tg_policy_free(p);
}

static void budget(const char *tenant, int64_t micros, int hard)
{
    tg_budget_row_t *r = &budgets[nbudgets++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    r->monthly_micros = micros;
    r->hard = hard;
    r->thresholds[0] = 80;
    r->thresholds[1] = 90;
    r->thresholds[2] = 100;
    r->nthresholds = 3;
}

static void test_budget_hard_stop_and_alerts(void **state)
{
    (void)state;
    budget("t", 10000000, 1); /* 10 USD */
    store_spend = 7000000;    /* 7 USD already spent this month */
    tg_policy_t *p = fresh(NULL);
    int64_t spent, reserved, bud;
    assert_int_equal(tg_policy_budget_state(p, "t", &spent, &reserved, &bud), 0);
    assert_int_equal(spent, 7000000);
    assert_int_equal(bud, 10000000);
    assert_int_equal(tg_policy_budget_state(p, "nobudget", &spent, &reserved, &bud), -1);
    tg_admission_t a, b, c;
    admit_ai(p, "t", "m", 10, 2000000, S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    admit_ai(p, "t", "m", 10, 2000000, S, &b); /* 7 + 2 < 10: admitted, reaches 11 */
    assert_int_equal(b.verdict, TG_ADMIT_OK);
    admit_ai(p, "t", "m", 10, 1, S, &c); /* spend + reservations >= budget */
    assert_int_equal(c.verdict, TG_ADMIT_BUDGET);
    assert_string_equal(c.reason, "budget_exceeded");
    assert_non_null(strstr(c.message, "7.00 USD of 10.00 USD"));
    /* Settling: a cost 1.5 USD (reserved 2), b fails and costs nothing. */
    tg_policy_settle(p, &a, "t", 10, 1500000, S, WALL);
    tg_policy_settle(p, &b, "t", 10, 0, S, WALL);
    assert_int_equal(tg_policy_budget_state(p, "t", &spent, &reserved, &bud), 0);
    assert_int_equal(spent, 8500000);
    assert_int_equal(reserved, 0);
    /* 85%: the 80% alert is queued once; flushing writes it once. */
    assert_int_equal(tg_policy_flush_alerts(p, &store, NULL), 0);
    assert_int_equal(nalerts, 1);
    assert_int_equal(alerts[0].threshold, 80);
    assert_string_equal(alerts[0].kind, "budget");
    assert_int_equal(alerts[0].spend_micros, 8500000);
    admit_ai(p, "t", "m", 10, 1000000, S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    tg_policy_settle(p, &a, "t", 10, 1600000, S, WALL); /* 10.1 USD */
    assert_int_equal(tg_policy_flush_alerts(p, &store, NULL), 0);
    assert_int_equal(nalerts, 3); /* 90 and 100, each once */
    assert_int_equal(alerts[1].threshold, 90);
    assert_int_equal(alerts[2].threshold, 100);
    admit_ai(p, "t", "m", 10, 0, S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_BUDGET);
    /* A reload (another budget set) keeps the spend and does not fire again. */
    assert_int_equal(tg_policy_load(p, &store, WALL, NULL), 0);
    assert_int_equal(tg_policy_budget_state(p, "t", &spent, &reserved, &bud), 0);
    assert_int_equal(spent, 10100000);
    assert_int_equal(tg_policy_flush_alerts(p, &store, NULL), 0);
    assert_int_equal(nalerts, 3);
    tg_policy_free(p);

    /* A soft budget alerts but never refuses. */
    nbudgets = 0;
    nalerts = 0;
    budget("s", 1000000, 0);
    store_spend = 5000000;
    p = fresh(NULL);
    admit_ai(p, "s", "m", 10, 100, S, &a);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    tg_policy_settle(p, &a, "s", 10, 100, S, WALL);
    assert_int_equal(tg_policy_flush_alerts(p, &store, NULL), 0);
    assert_int_equal(nalerts, 3); /* already past every threshold when loaded */
    tg_policy_free(p);
}

/* Bounded overshoot: 8 threads race 50 requests each at a budget with 1 USD left; every
 * request reserves 0.30 USD and costs between 0.10 and 0.30. Spend ends at most budget + one
 * reservation, and every reservation is given back. */
typedef struct race {
    tg_policy_t *p;
    int admitted;
} race_t;

static void *racer(void *arg)
{
    race_t *r = arg;
    for (int i = 0; i < 50; i++) {
        tg_admission_t a;
        admit_ai(r->p, "t", "m", 10, 300000, S, &a);
        if (a.verdict != TG_ADMIT_OK) continue;
        r->admitted++;
        tg_policy_settle(r->p, &a, "t", 10, 100000 + (i % 3) * 100000, S, WALL);
    }
    return NULL;
}

static void test_budget_bounded_overshoot(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        nbudgets = 0;
        budget("t", 10000000, 1);
        store_spend = 9000000;
        tg_policy_t *p = fresh(NULL);
        pthread_t th[8];
        race_t r[8];
        for (int i = 0; i < 8; i++) {
            r[i] = (race_t){.p = p};
            assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
        }
        int admitted = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            admitted += r[i].admitted;
        }
        int64_t spent, reserved, bud;
        assert_int_equal(tg_policy_budget_state(p, "t", &spent, &reserved, &bud), 0);
        assert_int_equal(reserved, 0);
        assert_true(admitted >= 4);
        assert_true(spent >= 10000000);          /* it did use the budget up */
        assert_true(spent <= 10000000 + 300000); /* by at most one reservation */
        tg_policy_free(p);
    }
}

/* The one check of a tool rule's pattern, shared by `tollgate tool` and the admin API. */
static void test_tool_pattern_check(void **state)
{
    (void)state;
    tg_err_t err = {{0}};
    assert_int_equal(tg_policy_tool_pattern_check("github_*", 128, &err), 0);
    assert_int_equal(tg_policy_tool_pattern_check("[a-c]?", 128, &err), 0);
    assert_int_equal(tg_policy_tool_pattern_check("", 128, &err), -1);
    assert_string_equal(err.msg, "the tool pattern must not be empty");
    assert_int_equal(tg_policy_tool_pattern_check("a\x01", 128, &err), -1);
    assert_non_null(strstr(err.msg, "without control characters"));
    assert_int_equal(tg_policy_tool_pattern_check("\xff", 128, &err), -1);
    char p[129];
    memset(p, 'p', 128);
    p[128] = '\0';
    assert_int_equal(tg_policy_tool_pattern_check(p, 128, &err), -1);
    assert_string_equal(err.msg, "the tool pattern is too long (at most 127 bytes)");
    p[127] = '\0';
    assert_int_equal(tg_policy_tool_pattern_check(p, 128, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_and_override, setup),
        cmocka_unit_test_setup(test_strictest_wins, setup),
        cmocka_unit_test_setup(test_pause_messages, setup),
        cmocka_unit_test_setup(test_ip_rules, setup),
        cmocka_unit_test_setup(test_inflight_slots, setup),
        cmocka_unit_test_setup(test_tool_rules, setup),
        cmocka_unit_test(test_tool_pattern_check),
        cmocka_unit_test_setup(test_token_limits, setup),
        cmocka_unit_test_setup(test_token_limits_model_names, setup),
        cmocka_unit_test_setup(test_model_rate, setup),
        cmocka_unit_test_setup(test_budget_hard_stop_and_alerts, setup),
        cmocka_unit_test_setup(test_budget_bounded_overshoot, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
