/* Tests for src/alarm/alarm.c: the engine driven with fixed instants (a tick every 10 s of
 * made-up time) and cumulative totals built by the test: error spikes fire and resolve,
 * a quiet tenant never fires on one error, latency is judged against the tenant's own
 * baseline, hysteresis holds a state between the two levels, ids are stable across a
 * reload and a restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alarm/alarm.h"

#define S    1000000LL
#define T0   (1700000000LL * S)
#define STEP (10 * S)

/* A tenant's running totals. */
typedef struct sim {
    tg_alarm_tenant_in_t in[4];
    size_t n;
    double queue;
    int64_t now;
} sim_t;

static tg_alarm_tenant_in_t *ten(sim_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->in[i].tenant, name)) return &s->in[i];
    tg_alarm_tenant_in_t *t = &s->in[s->n++];
    memset(t, 0, sizeof *t);
    t->tenant = name;
    t->quota = -1;
    return t;
}

/* n requests of which err errors, each taking lat_us, costing cost micro-USD. */
static void traffic(sim_t *s, const char *name, uint64_t n, uint64_t err, int64_t lat_us,
                    uint64_t cost)
{
    tg_alarm_tenant_in_t *t = ten(s, name);
    t->requests += n;
    t->errors += err;
    t->cost_micros += cost * n;
    int b = 0;
    while (b < TG_METRICS_BUCKETS && lat_us > tg_metrics_bucket_us[b])
        b++;
    t->buckets[b] += n;
}

/* One tick 10 s after the last; returns the transitions. */
static size_t tick(tg_alarm_engine_t *e, sim_t *s, const tg_alarm_transition_t **out)
{
    s->now += STEP;
    /* The windows on a monotonic clock of another origin than the wall clock. */
    tg_alarm_inputs_t in = {s->in, s->n, s->queue, s->now - T0 + 5 * S};
    return tg_alarm_tick(e, &in, s->now, out);
}

static tg_alarm_conf_t rule(const char *name, tg_alarm_kind_t kind)
{
    return (tg_alarm_conf_t){.name = (char *)name,
                             .kind = kind,
                             .quantile = 0.95,
                             .min_requests = 20,
                             .for_evals = 1,
                             .resolve_margin = 0.1,
                             .severity = "warning"};
}

static tg_alarm_engine_t *engine(const tg_alarm_conf_t *r, size_t n)
{
    tg_alarm_engine_t *e = tg_alarm_new(100);
    assert_non_null(e);
    assert_int_equal(tg_alarm_set_rules(e, r, n), 0);
    return e;
}

static void expect_tr(const tg_alarm_transition_t *x, tg_alarm_state_t from, tg_alarm_state_t to,
                      const char *id)
{
    assert_int_equal(x->from, from);
    assert_int_equal(x->to, to);
    assert_string_equal(x->notice.id, id);
    assert_string_equal(x->notice.state, tg_alarm_state_name(to));
}

static void test_error_spike(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("errors", TG_ALARM_ERROR_RATE);
    r.window_ms = 60000;
    r.threshold = 0.05;
    r.baseline_factor = 3;
    tg_alarm_engine_t *e = engine(&r, 1);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    /* 2 minutes of clean traffic, 1% errors: no transition. */
    for (int i = 0; i < 12; i++) {
        traffic(&s, "acme", 100, 1, 20000, 0);
        assert_int_equal(tick(e, &s, &x), 0);
    }
    /* 50% errors: pending at the first tick, firing at the next. */
    traffic(&s, "acme", 100, 50, 20000, 0);
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_OK, TG_ALARM_PENDING, "alarm/errors/acme/1");
    assert_string_equal(x[0].notice.tenant, "acme");
    assert_string_equal(x[0].notice.alarm_kind, "error_rate");
    assert_int_equal(x[0].notice.window_s, 60);
    assert_true(x[0].notice.value > 0.05 && x[0].notice.value < 0.2); /* 50 of 700 */
    traffic(&s, "acme", 100, 50, 20000, 0);
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_PENDING, TG_ALARM_FIRING, "alarm/errors/acme/2");
    assert_int_equal(x[0].notice.started_us, s.now);
    int64_t fired = s.now;
    /* Errors stop; the window still holds them for a while, then it resolves, then ok. */
    int resolved = 0;
    for (int i = 0; i < 10 && !resolved; i++) {
        traffic(&s, "acme", 100, 0, 20000, 0);
        size_t n = tick(e, &s, &x);
        if (n) {
            expect_tr(&x[0], TG_ALARM_FIRING, TG_ALARM_RESOLVED, "alarm/errors/acme/3");
            assert_int_equal(x[0].notice.started_us, fired);
            resolved = 1;
        }
    }
    assert_true(resolved);
    traffic(&s, "acme", 100, 0, 20000, 0);
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_RESOLVED, TG_ALARM_OK, "alarm/errors/acme/4");
    tg_alarm_free(e);
}

static void test_quiet_tenant(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("errors", TG_ALARM_ERROR_RATE);
    r.window_ms = 60000;
    r.threshold = 0.05;
    tg_alarm_engine_t *e = engine(&r, 1);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    /* Three requests a minute, one an error: 33% but far below min_requests. */
    for (int i = 0; i < 30; i++) {
        if (i % 6 == 0) traffic(&s, "quiet", 3, 1, 20000, 0);
        assert_int_equal(tick(e, &s, &x), 0);
    }
    /* The same rate over enough requests fires. */
    traffic(&s, "busy", 30, 10, 20000, 0);
    assert_int_equal(tick(e, &s, &x), 1);
    assert_string_equal(x[0].notice.tenant, "busy");
    tg_alarm_free(e);
}

static void test_latency_baseline(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("slow", TG_ALARM_LATENCY);
    r.window_ms = 30000;
    r.baseline_factor = 2;
    r.min_ms = 100;
    tg_alarm_engine_t *e = engine(&r, 1);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    /* "always" is slow all along (400 ms); "fast" answers in 40 ms. Neither fires while
     * their baselines form, nor after. */
    for (int i = 0; i < 30; i++) {
        traffic(&s, "always", 50, 0, 400000, 0);
        traffic(&s, "fast", 50, 0, 40000, 0);
        assert_int_equal(tick(e, &s, &x), 0);
    }
    /* fast jumps to 400 ms: ten times its baseline, above min_ms: fires. always, at the
     * same 400 ms, does not. */
    int pending = 0, firing = 0;
    for (int i = 0; i < 3; i++) {
        traffic(&s, "always", 50, 0, 400000, 0);
        traffic(&s, "fast", 50, 0, 400000, 0);
        size_t n = tick(e, &s, &x);
        for (size_t k = 0; k < n; k++) {
            assert_string_equal(x[k].notice.tenant, "fast");
            pending += x[k].to == TG_ALARM_PENDING;
            firing += x[k].to == TG_ALARM_FIRING;
            if (x[k].to == TG_ALARM_PENDING) /* p95 of 25..50 ms, interpolated */
                assert_true(x[k].notice.baseline > 48 && x[k].notice.baseline < 49);
        }
    }
    assert_int_equal(pending, 1);
    assert_int_equal(firing, 1);
    /* always doubles (1.5 s against a 400 ms baseline): fires too. */
    int always = 0;
    for (int i = 0; i < 3; i++) {
        traffic(&s, "always", 50, 0, 1500000, 0);
        traffic(&s, "fast", 50, 0, 400000, 0);
        size_t n = tick(e, &s, &x);
        for (size_t k = 0; k < n; k++)
            always += !strcmp(x[k].notice.tenant, "always") && x[k].to == TG_ALARM_FIRING;
    }
    assert_int_equal(always, 1);
    /* A lasting change becomes the new normal: fast stays at 400 ms and resolves. */
    int fast_resolved = 0;
    for (int i = 0; i < 60 && !fast_resolved; i++) {
        traffic(&s, "always", 50, 0, 1500000, 0);
        traffic(&s, "fast", 50, 0, 400000, 0);
        size_t n = tick(e, &s, &x);
        for (size_t k = 0; k < n; k++)
            fast_resolved |= !strcmp(x[k].notice.tenant, "fast") && x[k].to == TG_ALARM_RESOLVED;
    }
    assert_true(fast_resolved);
    tg_alarm_free(e);
}

static void test_quota_hysteresis(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("quota", TG_ALARM_QUOTA);
    r.threshold = 0.8;
    r.for_evals = 2;
    tg_alarm_engine_t *e = engine(&r, 1);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    tg_alarm_tenant_in_t *t = ten(&s, "acme");
    t->quota = 0.5;
    assert_int_equal(tick(e, &s, &x), 0);
    t = ten(&s, "acme");
    t->quota = 0.85;
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_OK, TG_ALARM_PENDING, "alarm/quota/acme/1");
    assert_true(x[0].notice.threshold == 0.8);
    assert_int_equal(tick(e, &s, &x), 0); /* for: 2: one more */
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_PENDING, TG_ALARM_FIRING, "alarm/quota/acme/2");
    /* Between 0.72 and 0.8: holds. */
    t->quota = 0.75;
    for (int i = 0; i < 5; i++)
        assert_int_equal(tick(e, &s, &x), 0);
    /* Clear, but for: 2 wants two in a row; an interruption starts over. */
    t->quota = 0.5;
    assert_int_equal(tick(e, &s, &x), 0);
    t->quota = 0.9;
    assert_int_equal(tick(e, &s, &x), 0);
    t->quota = 0.5;
    assert_int_equal(tick(e, &s, &x), 0);
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_FIRING, TG_ALARM_RESOLVED, "alarm/quota/acme/3");
    /* Back up straight from resolved: pending again. */
    t->quota = 0.9;
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_RESOLVED, TG_ALARM_PENDING, "alarm/quota/acme/4");
    /* A pending that clears resolves. */
    t->quota = 0.1;
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_PENDING, TG_ALARM_RESOLVED, "alarm/quota/acme/5");
    /* A tenant without any limit (quota < 0) is never judged. */
    ten(&s, "nolimit")->requests = 1000;
    for (int i = 0; i < 3; i++) {
        size_t n = tick(e, &s, &x);
        for (size_t k = 0; k < n; k++)
            assert_string_not_equal(x[k].notice.tenant, "nolimit");
    }
    tg_alarm_free(e);
}

static void test_queue_process_wide(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("backlog", TG_ALARM_QUEUE);
    r.threshold = 0.8;
    r.severity = "critical";
    tg_alarm_engine_t *e = engine(&r, 1);
    sim_t s = {.now = T0, .queue = 0.1};
    traffic(&s, "acme", 10, 0, 1000, 0);
    const tg_alarm_transition_t *x;
    assert_int_equal(tick(e, &s, &x), 0);
    s.queue = 1;
    assert_int_equal(tick(e, &s, &x), 1);
    expect_tr(&x[0], TG_ALARM_OK, TG_ALARM_PENDING, "alarm/backlog/-/1");
    assert_string_equal(x[0].notice.tenant, "");
    assert_string_equal(x[0].notice.severity, "critical");
    assert_int_equal(x[0].notice.window_s, 0);
    s.queue = -1; /* unknown: clear */
    assert_int_equal(tick(e, &s, &x), 1);
    assert_int_equal(x[0].to, TG_ALARM_RESOLVED);
    tg_alarm_free(e);
}

static void test_spend_rate(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("spend", TG_ALARM_SPEND_RATE);
    r.window_ms = 60000;
    r.baseline_factor = 4;
    tg_alarm_engine_t *e = engine(&r, 1);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    /* 100 requests of 10 micro-USD per 10 s: 360,000 micro-USD an hour. */
    for (int i = 0; i < 40; i++) {
        traffic(&s, "acme", 100, 0, 1000, 10);
        assert_int_equal(tick(e, &s, &x), 0);
    }
    traffic(&s, "acme", 100, 0, 1000, 500);
    assert_int_equal(tick(e, &s, &x), 1);
    assert_int_equal(x[0].to, TG_ALARM_PENDING);
    assert_true(x[0].notice.baseline > 359999 && x[0].notice.baseline < 360001);
    assert_true(x[0].notice.value > 4 * 360000);
    tg_alarm_free(e);
}

static int count_cb(const tg_alarm_status_t *st, void *ud)
{
    int *n = ud;
    assert_non_null(st->rule);
    (*n)++;
    return 0;
}

static void test_reload_and_restore(void **state)
{
    (void)state;
    tg_alarm_conf_t r[2] = {rule("quota", TG_ALARM_QUOTA), rule("other", TG_ALARM_QUOTA)};
    r[0].threshold = r[1].threshold = 0.8;
    tg_alarm_engine_t *e = engine(r, 1);
    /* The store said: quota/acme is firing after 7 transitions. */
    assert_int_equal(tg_alarm_restore(e, "quota", "acme", TG_ALARM_FIRING, 7, T0 - S, T0 - S), 0);
    assert_int_equal(tg_alarm_restore(e, "gone", "acme", TG_ALARM_FIRING, 3, T0, T0), 0);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    ten(&s, "acme")->quota = 0.9;
    assert_int_equal(tick(e, &s, &x), 0); /* still firing */
    /* A reload with one more rule keeps quota's state. */
    assert_int_equal(tg_alarm_set_rules(e, r, 2), 0);
    ten(&s, "acme")->quota = 0.1;
    size_t n = tick(e, &s, &x);
    assert_int_equal(n, 1);
    expect_tr(&x[0], TG_ALARM_FIRING, TG_ALARM_RESOLVED, "alarm/quota/acme/8");
    assert_int_equal(x[0].notice.started_us, T0 - S);
    /* A rule whose kind changed starts over. */
    r[0].kind = TG_ALARM_QUEUE;
    assert_int_equal(tg_alarm_set_rules(e, r, 1), 0);
    int cnt = 0;
    assert_int_equal(tg_alarm_each(e, 1, count_cb, &cnt), 0);
    assert_int_equal(cnt, 0);
    tg_alarm_free(e);
}

static void test_each(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("quota", TG_ALARM_QUOTA);
    r.threshold = 0.5;
    tg_alarm_engine_t *e = engine(&r, 1);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    ten(&s, "a")->quota = 0.9;
    ten(&s, "b")->quota = 0.1;
    assert_int_equal(tick(e, &s, &x), 1);
    int n = 0;
    assert_int_equal(tg_alarm_each(e, 0, count_cb, &n), 0);
    assert_int_equal(n, 1);
    ten(&s, "a")->quota = 0.1;
    tick(e, &s, &x); /* resolved */
    tick(e, &s, &x); /* ok */
    n = 0;
    assert_int_equal(tg_alarm_each(e, 0, count_cb, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_alarm_each(e, 1, count_cb, &n), 0);
    assert_int_equal(n, 1); /* a has a history */
    tg_alarm_free(e);
}

static void test_tenant_cap(void **state)
{
    (void)state;
    tg_alarm_conf_t r = rule("quota", TG_ALARM_QUOTA);
    r.threshold = 0.5;
    tg_alarm_engine_t *e = tg_alarm_new(1); /* one tenant plus "_other" */
    assert_int_equal(tg_alarm_set_rules(e, &r, 1), 0);
    sim_t s = {.now = T0};
    const tg_alarm_transition_t *x;
    ten(&s, "a")->quota = 0.9;
    ten(&s, "_other")->quota = 0.9;
    ten(&s, "c")->quota = 0.9;
    assert_int_equal(tick(e, &s, &x), 2);
    assert_string_equal(x[0].notice.tenant, "a");
    assert_string_equal(x[1].notice.tenant, "_other");
    tg_alarm_free(e);
}

static void test_quantile(void **state)
{
    (void)state;
    uint64_t d[TG_ALARM_BUCKETS] = {0};
    assert_true(tg_alarm_quantile_ms(d, 0.95) == 0);
    d[2] = 100; /* all in (10 ms, 25 ms] */
    double q = tg_alarm_quantile_ms(d, 0.5);
    assert_true(q > 17.4 && q < 17.6);
    q = tg_alarm_quantile_ms(d, 0.95);
    assert_true(q > 24.2 && q < 24.3);
    memset(d, 0, sizeof d);
    d[TG_ALARM_BUCKETS - 1] = 10; /* beyond the last bound: its lower bound, 60 s */
    assert_true(tg_alarm_quantile_ms(d, 0.5) == 60000);
    assert_string_equal(tg_alarm_state_name(TG_ALARM_RESOLVED), "resolved");
    assert_int_equal(tg_alarm_state_parse("firing"), TG_ALARM_FIRING);
    assert_int_equal(tg_alarm_state_parse("nope"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_spike),        cmocka_unit_test(test_quiet_tenant),
        cmocka_unit_test(test_latency_baseline),   cmocka_unit_test(test_quota_hysteresis),
        cmocka_unit_test(test_queue_process_wide), cmocka_unit_test(test_spend_rate),
        cmocka_unit_test(test_reload_and_restore), cmocka_unit_test(test_each),
        cmocka_unit_test(test_tenant_cap),         cmocka_unit_test(test_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
