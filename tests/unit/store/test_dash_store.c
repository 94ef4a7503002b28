/* Tests for the dashboard's reads of the store (sqlite_dash.c, pg_dash.c) on both
 * backends: per-tenant totals with the nearest-rank p95 (n = 20 and 21, where ceil(0.95 n)
 * is exact and not), a bucketed series, the newest rejections, and the read-only switch.
 * Expected values are worked out by hand from the events below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/backends.h"

#define T0  1796083200000000LL /* 2026-12-01T00:00:00Z */
#define MIN 60000000LL

/* Tenant acme: 21 events, latencies 21, 20, ..., 1 ms (id order), one a minute; every
 * third (i % 3 == 2) rejected, every fifth failed (i % 5 == 4, when not rejected), cost
 * i micro-USD, tokens_in i when i is even. Tenant bob: one event. */
static void fill(tg_store_t *s, int nacme)
{
    tg_event_t e[16];
    tg_err_t err;
    int put = 0;
    while (put < nacme + 1) {
        size_t n = 0;
        for (; n < 16 && put < nacme + 1; n++, put++) {
            tg_event_t *x = &e[n];
            memset(x, 0, sizeof *x);
            int i = put;
            x->id = (int64_t)(1796083200000LL - 1577836800000LL) << 22 | (i + 1);
            x->ts_us = T0 + i * MIN;
            snprintf(x->tenant, sizeof x->tenant, "%s", i < nacme ? "acme" : "bob");
            snprintf(x->method, sizeof x->method, "GET");
            x->status = 200;
            x->outcome = TG_OUTCOME_BILLABLE;
            if (i < nacme && i % 3 == 2) {
                x->outcome = TG_OUTCOME_REJECTED;
                x->status = 429;
                snprintf(x->reason, sizeof x->reason, "rate_%d", i);
            } else if (i < nacme && i % 5 == 4) {
                x->outcome = TG_OUTCOME_FAILED;
                x->status = 502;
            }
            x->latency_us = i < nacme ? (nacme - i) * 1000 : 777;
            x->tokens_in = i % 2 == 0 ? i : TG_TOKENS_UNKNOWN;
            x->tokens_out = x->tokens_cached = x->tokens_cache_write = TG_TOKENS_UNKNOWN;
            x->cost_micros = i;
        }
        if (tb_append(s, e, n, &err) != 0) fail_msg("append: %s", err.msg);
    }
}

static int collect_totals(const tg_dash_totals_t *t, void *ud)
{
    char *out = ud;
    size_t o = strlen(out);
    snprintf(out + o, 512 - o, "%s:%lld/%lld/%lld/%lld/%lld/%lld/%lld/p95=%lld;", t->tenant,
             (long long)t->requests, (long long)t->billable, (long long)t->failed,
             (long long)t->rejected, (long long)t->tokens_in, (long long)t->cost_micros,
             (long long)t->events, (long long)t->latency_p95_us);
    return 0;
}

static void totals(tg_store_t *s, const char *tenant, int64_t from, int64_t to, char *out)
{
    tg_err_t err;
    out[0] = '\0';
    if (tg_store_dash_totals(s, tenant, from, to, collect_totals, out, &err) != 0)
        fail_msg("totals: %s", err.msg);
}

static void test_totals(void **state)
{
    tg_store_t *s = ((tb_store_t *)*state)->s;
    fill(s, 21);
    char out[512];
    /* acme: 21 events; rejected i = 2, 5, 8, 11, 14, 17, 20 (7); failed i = 4, 9, 19 (3,
     * 14 is rejected); billable 11; tokens 0 + 2 + ... + 20 = 110; cost 0..20 = 210; p95
     * rank ceil(19.95) = 20 of latencies 1..21 ms. bob: one event, p95 its own. */
    totals(s, NULL, T0, T0 + 60 * MIN, out);
    assert_string_equal(out, "acme:21/11/3/7/110/210/21/p95=20000;bob:1/1/0/0/0/21/1/p95=777;");
    totals(s, "bob", T0, T0 + 60 * MIN, out);
    assert_string_equal(out, "bob:1/1/0/0/0/21/1/p95=777;");
    /* The first 20 minutes of acme (i 0..19, tokens 0 + 2 + ... + 18 = 90): latencies
     * 2..21 ms, rank ceil(19) = 19: 20 ms. */
    totals(s, "acme", T0, T0 + 20 * MIN, out);
    assert_string_equal(out, "acme:20/11/3/6/90/190/20/p95=20000;");
    /* From minute 1 on: latencies 1..20 ms, n = 20, rank 19: 19 ms. */
    totals(s, "acme", T0 + MIN, T0 + 21 * MIN, out);
    assert_string_equal(out, "acme:20/10/3/7/110/210/20/p95=19000;");
    totals(s, "nobody", T0, T0 + 60 * MIN, out);
    assert_string_equal(out, "");
}

static int collect_bucket(const tg_dash_bucket_t *b, void *ud)
{
    char *out = ud;
    size_t o = strlen(out);
    snprintf(out + o, 512 - o, "%lld:%lld/%lld/%lld/%lld/%lld;", (long long)b->index,
             (long long)b->requests, (long long)b->failed, (long long)b->rejected,
             (long long)b->tokens_in, (long long)b->cost_micros);
    return 0;
}

static void test_series(void **state)
{
    tg_store_t *s = ((tb_store_t *)*state)->s;
    fill(s, 21);
    char out[512] = "";
    tg_err_t err;
    /* Buckets of 10 minutes from minute 3: i 3..12 | 13..20 (21 excluded: bob, not acme). */
    assert_int_equal(tg_store_dash_series(s, "acme", T0 + 3 * MIN, T0 + 40 * MIN, 10 * MIN,
                                          collect_bucket, out, &err),
                     0);
    /* 3..12: failed 4, 9; rejected 5, 8, 11; tokens 4+6+8+10+12 = 40; cost 75.
     * 13..20: failed 19; rejected 14, 17, 20; tokens 14+16+18+20 = 68; cost 132. */
    assert_string_equal(out, "0:10/2/3/40/75;1:8/1/3/68/132;");
    assert_int_not_equal(
        tg_store_dash_series(s, "acme", T0, T0 + MIN, 0, collect_bucket, out, &err), 0);
}

static int collect_rejection(const tg_dash_rejection_t *r, void *ud)
{
    char *out = ud;
    size_t o = strlen(out);
    snprintf(out + o, 512 - o, "%lld:%d:%s;", (long long)((r->ts_us - T0) / MIN), r->status,
             r->reason);
    return 0;
}

static void test_rejections(void **state)
{
    tg_store_t *s = ((tb_store_t *)*state)->s;
    fill(s, 21);
    char out[512] = "";
    tg_err_t err;
    assert_int_equal(tg_store_dash_rejections(s, "acme", 3, collect_rejection, out, &err), 0);
    assert_string_equal(out, "20:429:rate_20;17:429:rate_17;14:429:rate_14;");
    out[0] = '\0';
    assert_int_equal(tg_store_dash_rejections(s, "bob", 3, collect_rejection, out, &err), 0);
    assert_string_equal(out, "");
}

static void test_read_only(void **state)
{
    tg_store_t *s = ((tb_store_t *)*state)->s;
    tg_err_t err;
    assert_int_equal(tg_store_tenant_add(s, "before", "", &err), 0);
    assert_int_equal(tg_store_dash_read_only(s, &err), 0);
    assert_int_not_equal(tg_store_tenant_add(s, "after", "", &err), 0);
    char out[512];
    totals(s, NULL, T0, T0 + MIN, out); /* reads still work */
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_totals),
        TB_BOTH(test_series),
        TB_BOTH(test_rejections),
        TB_BOTH(test_read_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
