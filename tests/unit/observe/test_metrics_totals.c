/* Tests tg_metrics_tenant_totals (src/observe/metrics.c): per tenant, over every block and
 * route, requests of every outcome, errors (5xx not refused by tollgate), latency buckets
 * and cost; the "_other" tenant past the cap is one tenant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "observe/metrics.h"

#define SET(ev, field, s) TG_EVENT_SET((ev), field, (s), strlen(s))

static tg_event_t ev_of(const char *tenant, const char *route, int status, int outcome,
                        int64_t lat_us, int64_t cost)
{
    tg_event_t ev;
    memset(&ev, 0, sizeof ev);
    SET(&ev, tenant, tenant);
    SET(&ev, route, route);
    ev.status = status;
    ev.outcome = outcome;
    ev.latency_us = lat_us;
    ev.cost_micros = cost;
    ev.tokens_in = ev.tokens_out = ev.tokens_cached = ev.tokens_cache_write = TG_TOKENS_UNKNOWN;
    return ev;
}

typedef struct got {
    tg_metrics_tenant_totals_t t[8];
    char names[8][64];
    int n;
} got_t;

static int collect(const tg_metrics_tenant_totals_t *t, void *ud)
{
    got_t *g = ud;
    assert_true(g->n < 8);
    g->t[g->n] = *t;
    snprintf(g->names[g->n], sizeof g->names[0], "%s", t->tenant);
    g->n++;
    return 0;
}

static const tg_metrics_tenant_totals_t *find(const got_t *g, const char *tenant)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->names[i], tenant)) return &g->t[i];
    return NULL;
}

static void test_totals(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(&(tg_metrics_caps_t){.max_tenants = 2});
    tg_metrics_block_t *b1 = tg_metrics_block_new(m), *b2 = tg_metrics_block_new(m);
    tg_event_t evs[] = {
        ev_of("acme", "chat", 200, TG_OUTCOME_BILLABLE, 3000, 10),
        ev_of("acme", "embed", 200, TG_OUTCOME_BILLABLE, 30000, 5),
        ev_of("acme", "chat", 502, TG_OUTCOME_FAILED, 3000, 0),  /* an error */
        ev_of("acme", "chat", 500, TG_OUTCOME_FAILED, 3000, 0),  /* an error */
        ev_of("acme", "chat", 503, TG_OUTCOME_REJECTED, 100, 0), /* paused: not an error */
        ev_of("acme", "chat", 429, TG_OUTCOME_REJECTED, 100, 0), /* not an error */
        ev_of("acme", "chat", 404, TG_OUTCOME_FAILED, 3000, 0),  /* upstream 4xx: no */
        ev_of("beta", "chat", 200, TG_OUTCOME_BILLABLE, 70000000, 7),
        ev_of("c", "chat", 500, TG_OUTCOME_FAILED, 1000, 0), /* past the cap: _other */
        ev_of("d", "chat", 200, TG_OUTCOME_BILLABLE, 1000, 1),
    };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        tg_metrics_observe(i % 2 ? b2 : b1, &evs[i]);
    got_t g = {0};
    assert_int_equal(tg_metrics_tenant_totals(m, collect, &g), 0);
    assert_int_equal(g.n, 3);
    const tg_metrics_tenant_totals_t *a = find(&g, "acme");
    assert_non_null(a);
    assert_int_equal(a->requests, 7);
    assert_int_equal(a->errors, 2);
    assert_int_equal(a->cost_micros, 15);
    assert_int_equal(a->buckets[0], 6); /* <= 5 ms */
    assert_int_equal(a->buckets[3], 1); /* (25, 50] ms */
    const tg_metrics_tenant_totals_t *b = find(&g, "beta");
    assert_int_equal(b->requests, 1);
    assert_int_equal(b->buckets[TG_METRICS_BUCKETS], 1); /* +Inf */
    assert_int_equal(b->cost_micros, 7);
    const tg_metrics_tenant_totals_t *o = find(&g, "_other");
    assert_non_null(o);
    assert_int_equal(o->requests, 2);
    assert_int_equal(o->errors, 1);
    assert_int_equal(o->cost_micros, 1);
    tg_metrics_free(m);
}

static int stop(const tg_metrics_tenant_totals_t *t, void *ud)
{
    (void)t;
    (*(int *)ud)++;
    return 7;
}

static void test_empty_and_stop(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    int calls = 0;
    assert_int_equal(tg_metrics_tenant_totals(m, stop, &calls), 0);
    assert_int_equal(calls, 0);
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    tg_event_t e1 = ev_of("a", "r", 200, TG_OUTCOME_BILLABLE, 1, 0);
    tg_event_t e2 = ev_of("b", "r", 200, TG_OUTCOME_BILLABLE, 1, 0);
    tg_metrics_observe(b, &e1);
    tg_metrics_observe(b, &e2);
    assert_int_equal(tg_metrics_tenant_totals(m, stop, &calls), 7);
    assert_int_equal(calls, 1);
    tg_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totals),
        cmocka_unit_test(test_empty_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
