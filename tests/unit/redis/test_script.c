/* Tests src/redis/script.c: key names (hash-tagged by tenant), the GCRA parameters in
 * microseconds, the admission's and the settlement's arguments, the adjustments that undo,
 * journal and settle, and the reply decoded into an admission. No Redis: values only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "redis/script.h"

#define S   1000000000ULL
#define SHA "0123456789abcdef0123456789abcdef01234567"

static const char *arg(const tg_redis_cmd_t *c, int i)
{
    static char buf[TG_REDIS_KEY_MAX];
    assert_true(i < c->argc);
    snprintf(buf, sizeof buf, "%.*s", (int)c->argvlen[i], c->argv[i]);
    return buf;
}

/* A plan: 10/min for the tenant, 5/s burst 2 for the route, a token rule charged 700. */
static void plan_of(tg_admit_plan_t *p)
{
    memset(p, 0, sizeof *p);
    p->rules[0] = (tg_plan_rule_t){"tenant", "tenant", "", {10, 60 * S, 0, 0}, 0};
    p->rules[1] = (tg_plan_rule_t){"route", "route", "chat", {5, S, 2, 0}, 0};
    p->rules[2] = (tg_plan_rule_t){"tokens", "tokens.tenant", "", {1000, 60 * S, 0, 700}, 1};
    p->n = 3;
    p->nrate = 2;
    p->cap = 4;
    p->has_budget = 1;
    p->hard = 1;
    p->budget = 5000000;
    p->spent = 1234;
    p->est_cost = 99;
}

static void test_keys(void **state)
{
    (void)state;
    char k[TG_REDIS_KEY_MAX];
    assert_int_equal(tg_redis_key(k, sizeof k, "acme", "route", "chat"),
                     strlen("tg:{acme}:route:chat"));
    assert_string_equal(k, "tg:{acme}:route:chat");
    tg_redis_key(k, sizeof k, "acme", "tenant", "");
    assert_string_equal(k, "tg:{acme}:tenant:");
    tg_redis_key(k, sizeof k, "acme", "inflight", NULL);
    assert_string_equal(k, "tg:{acme}:inflight");
    char small[12];
    assert_int_equal(tg_redis_key(small, sizeof small, "acme", "route", "chat"), 11);
    assert_string_equal(small, "tg:{acme}:r");
}

static void test_gcra(void **state)
{
    (void)state;
    int64_t t, tau;
    /* 10 per minute, burst = limit: one per 6 s, 9 intervals of tolerance. */
    tg_redis_gcra(&(tg_limit_rule_t){10, 60 * S, 0, 0}, &t, &tau);
    assert_int_equal(t, 6000000);
    assert_int_equal(tau, 54000000);
    /* 3 per second rounds the interval up (the rate never exceeds the limit). */
    tg_redis_gcra(&(tg_limit_rule_t){3, S, 0, 0}, &t, &tau);
    assert_int_equal(t, 333334);
    assert_int_equal(tau, 666668);
    /* burst 1: no tolerance. */
    tg_redis_gcra(&(tg_limit_rule_t){5, S, 1, 0}, &t, &tau);
    assert_int_equal(tau, 0);
    /* limit 0 refuses everything: the script answers with the period. */
    tg_redis_gcra(&(tg_limit_rule_t){0, 60 * S, 0, 0}, &t, &tau);
    assert_int_equal(t, 60000000);
    assert_int_equal(tau, 0);
}

static void test_admit_args(void **state)
{
    (void)state;
    static tg_redis_cmd_t c;
    tg_admit_plan_t p;
    tg_redis_hold_t h;
    plan_of(&p);
    assert_int_equal(tg_redis_admit_cmd(&c, SHA, "acme", "2026-11", &p, "i-0-1", 300000, &h), 0);
    const char *want[] = {"EVALSHA", SHA, "8", "tg:{acme}:inflight", "tg:{acme}:spend:2026-11",
                          "tg:{acme}:resv:2026-11", "tg:{acme}:resvamt:2026-11",
                          "tg:{acme}:resvsum:2026-11", "tg:{acme}:tenant:", "tg:{acme}:route:chat",
                          "tg:{acme}:tokens.tenant:", "A", "i-0-1", "300000", "4", "1", "1",
                          "5000000", "1234", "99", "3",
                          /* t tau cost limit, per rule */
                          "6000000", "54000000", "1", "10", "200000", "200000", "1", "5", "60000",
                          "59940000", "700", "1000"};
    assert_int_equal(c.argc, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < c.argc; i++)
        assert_string_equal(arg(&c, i), want[i]);
    /* What the request holds if admitted: a slot, a reservation, the token charge. */
    assert_int_equal(h.mode, TG_REDIS_HELD);
    assert_string_equal(h.tenant, "acme");
    assert_string_equal(h.month, "2026-11");
    assert_string_equal(h.id, "i-0-1");
    assert_int_equal(h.inflight, 1);
    assert_int_equal(h.reserved, 1);
    assert_int_equal(h.budget, 1);
    assert_int_equal(h.ntok, 1);
    assert_string_equal(h.tok[0].key, "tg:{acme}:tokens.tenant:");
    assert_int_equal(h.tok[0].t_us, 60000);
    assert_int_equal(h.tok[0].units, 700);
    /* Too many arguments for the buffer: refused, never sent half. */
    tg_admit_plan_t big;
    plan_of(&big);
    char longv[120];
    memset(longv, 'v', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    for (big.n = 0; big.n < TG_PLAN_MAX_RULES; big.n++)
        big.rules[big.n] = (tg_plan_rule_t){"tool", "tool", longv, {1, S, 0, 0}, 0};
    static char tenant[TG_TENANT_SIZE];
    memset(tenant, 't', sizeof tenant - 1);
    assert_int_equal(tg_redis_admit_cmd(&c, SHA, tenant, "2026-11", &big, "i", 1, &h), 0);
    assert_int_equal(c.overflow, 0); /* the largest plan fits */
}

static void test_settle_args_and_adjustments(void **state)
{
    (void)state;
    static tg_redis_cmd_t c;
    tg_admit_plan_t p;
    tg_redis_hold_t h;
    plan_of(&p);
    tg_redis_admit_cmd(&c, SHA, "acme", "2026-11", &p, "i-0-1", 300000, &h);
    /* Settled to 250 actual tokens: one adjustment of -450. */
    tg_redis_adj_t adj[TG_PLAN_MAX_RULES];
    size_t n = tg_redis_token_adj(&h, 250, adj);
    assert_int_equal(n, 1);
    assert_int_equal(adj[0].units, -450);
    assert_int_equal(tg_redis_token_adj(&h, 700, adj), 0); /* as charged: nothing */
    assert_int_equal(tg_redis_token_adj(&h, -1, adj), 0);  /* unknown: the estimate stands */
    n = tg_redis_token_adj(&h, 250, adj);
    assert_int_equal(tg_redis_settle_cmd(&c, SHA, &h, "i-0-7", 60000, 1500, adj, n), 0);
    const char *want[] = {"EVALSHA",
                          SHA,
                          "7",
                          "tg:{acme}:inflight",
                          "tg:{acme}:spend:2026-11",
                          "tg:{acme}:resv:2026-11",
                          "tg:{acme}:resvamt:2026-11",
                          "tg:{acme}:resvsum:2026-11",
                          "tg:{acme}:tokens.tenant:",
                          "tg:{acme}:op:i-0-7", /* the settlement's marker: its own id */
                          "S",
                          "i-0-1", /* the admission's */
                          "1500",
                          "1",
                          "1",
                          "1",
                          "60000", /* the marker's life */
                          "60000",
                          "-450",
                          "0"};
    assert_int_equal(c.argc, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < c.argc; i++)
        assert_string_equal(arg(&c, i), want[i]);
    /* The undo of an admission: every rule back by what it took; a journal entry: forward,
     * at the admission's instant. A rule of limit 0 counted nothing. */
    p.rules[p.n++] = (tg_plan_rule_t){"key", "key", "k1", {0, S, 0, 0}, 0};
    n = tg_redis_plan_adj(&p, "acme", -1, 0, adj);
    assert_int_equal(n, 3);
    assert_string_equal(adj[0].key, "tg:{acme}:tenant:");
    assert_int_equal(adj[0].units, -1);
    assert_int_equal(adj[0].t_us, 6000000);
    assert_string_equal(adj[1].key, "tg:{acme}:route:chat");
    assert_int_equal(adj[2].units, -700);
    n = tg_redis_plan_adj(&p, "acme", 1, 1795000000000000LL, adj);
    assert_int_equal(adj[2].units, 700);
    assert_int_equal(adj[0].at_us, 1795000000000000LL);
}

static void test_reply(void **state)
{
    (void)state;
    tg_admit_plan_t p;
    plan_of(&p);
    tg_admission_t a;
    int64_t spend, ahead[3], stamp = -1;
    /* Admitted: the headers show the rate rule with the least remaining (the route's). */
    long long ok[] = {0, 0, 0, 4000, 9, 6000000, 1, 200000, 300, 60000, 1795000000123456LL};
    assert_int_equal(tg_redis_admit_reply(ok, 11, &p, &a, &spend, ahead, &stamp), 3);
    assert_int_equal(a.verdict, TG_ADMIT_OK);
    assert_int_equal(spend, 4000);
    assert_int_equal(a.limited, 1);
    assert_string_equal(a.policy, "route");
    assert_int_equal(a.limit, 5);
    assert_int_equal(a.window_s, 1);
    assert_int_equal(a.remaining, 1);
    assert_int_equal(a.reset_s, 1);
    /* Each rule's state after it, for the local mirror. */
    assert_int_equal(ahead[0], 6000000);
    assert_int_equal(ahead[1], 200000);
    assert_int_equal(ahead[2], 60000);
    assert_int_equal(stamp, 1795000000123456LL); /* Redis's clock: orders the answers */
    /* Refused by the tenant's rule, 2.5 s to wait: Retry-After 3. */
    long long rate[] = {1, 1, 2500000, -1, 0, 56500000, 2, 0, 1, 0, 1795000000200000LL};
    assert_int_equal(tg_redis_admit_reply(rate, 11, &p, &a, &spend, NULL, &stamp), 3);
    assert_int_equal(stamp, 1795000000200000LL);
    assert_int_equal(a.verdict, TG_ADMIT_RATE);
    assert_string_equal(a.reason, "rate_limited");
    assert_string_equal(a.policy, "tenant");
    assert_int_equal(a.retry_after_s, 3);
    assert_string_equal(a.message, "rate limit exceeded (10 per 60 s)");
    assert_int_equal(spend, -1);
    /* Refused by the token rule. */
    long long tok[] = {1, 3, 1000000, 0, 1, 0, 1, 0, 0, 61000000, 1};
    assert_int_equal(tg_redis_admit_reply(tok, 11, &p, &a, &spend, NULL, NULL), 3);
    assert_string_equal(a.reason, "token_limited");
    assert_string_equal(a.message, "token limit exceeded (1000 per 60 s)");
    /* The cap, the budget. */
    long long conc[] = {2, 0, 0, -1};
    assert_int_equal(tg_redis_admit_reply(conc, 4, &p, &a, &spend, ahead, &stamp), 0);
    assert_int_equal(stamp, 0); /* no rule decided: nothing to copy */
    assert_int_equal(a.verdict, TG_ADMIT_CONCURRENCY);
    assert_string_equal(a.message, "too many requests in flight for this tenant (limit 4)");
    long long bud[] = {3, 0, 0, 5000100};
    assert_int_equal(tg_redis_admit_reply(bud, 4, &p, &a, &spend, NULL, NULL), 0);
    assert_int_equal(a.verdict, TG_ADMIT_BUDGET);
    assert_string_equal(a.reason, "budget_exceeded");
    assert_int_equal(spend, 5000100);
    /* Replies of the wrong shape are refused, never read past their end. */
    assert_int_equal(tg_redis_admit_reply(ok, 3, &p, &a, &spend, NULL, NULL), -1);
    assert_int_equal(tg_redis_admit_reply(ok, 8, &p, &a, &spend, NULL, NULL), -1);
    assert_int_equal(tg_redis_admit_reply(ok, 10, &p, &a, &spend, NULL, NULL), -1); /* no clock */
    long long badw[] = {1, 9, 1, -1, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(tg_redis_admit_reply(badw, 11, &p, &a, &spend, NULL, NULL), -1);
    long long badv[] = {7, 0, 0, -1};
    assert_int_equal(tg_redis_admit_reply(badv, 4, &p, &a, &spend, NULL, NULL), -1);
}

static void test_settle_reply_and_resend(void **state)
{
    (void)state;
    long long done[] = {0}, seen[] = {1}, bad[] = {2}, two[] = {0, 0};
    assert_int_equal(tg_redis_settle_reply(done, 1), TG_REDIS_SETTLED);
    assert_int_equal(tg_redis_settle_reply(seen, 1), TG_REDIS_SEEN); /* ran before: a duplicate */
    assert_int_equal(tg_redis_settle_reply(bad, 1), -1);
    assert_int_equal(tg_redis_settle_reply(two, 2), -1);
    assert_int_equal(tg_redis_settle_reply(done, 0), -1);
    /* Sent again only while the marker surely lives: its life less the margin. */
    const uint64_t t0 = 5000000; /* the loop's clock at the first send */
    assert_int_equal(tg_redis_resend_ok(t0, t0, 60000), 1);
    assert_int_equal(tg_redis_resend_ok(t0, t0 + 49999, 60000), 1);
    assert_int_equal(tg_redis_resend_ok(t0, t0 + 50000, 60000), 0);
    assert_int_equal(tg_redis_resend_ok(t0, t0 + 3600000, 60000), 0);
    assert_int_equal(tg_redis_resend_ok(t0, t0 - 5, 60000), 1); /* (a clock never goes back) */
    assert_int_equal(tg_redis_resend_ok(t0, t0, TG_REDIS_RESEND_MARGIN_MS), 0); /* too short */
    assert_int_equal(tg_redis_resend_ok(t0, t0, 1), 0);
}

static void test_script_text(void **state)
{
    (void)state;
    /* Numbers are stored with %d (tostring would write 1.7e+15), time is Redis's own. */
    assert_non_null(strstr(tg_redis_lua, "string.format('%d', x)"));
    assert_non_null(strstr(tg_redis_lua, "redis.call('TIME')"));
    assert_null(strstr(tg_redis_lua, "tostring("));
    /* A settlement's marker is its first write, from KEYS (never a key built in Lua). */
    assert_non_null(
        strstr(tg_redis_lua, "redis.call('SET', KEYS[6 + n], '1', 'NX', 'PX', ARGV[7])"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),        cmocka_unit_test(test_gcra),
        cmocka_unit_test(test_admit_args),  cmocka_unit_test(test_settle_args_and_adjustments),
        cmocka_unit_test(test_reply),       cmocka_unit_test(test_settle_reply_and_resend),
        cmocka_unit_test(test_script_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
