/* Tests src/meter/flood.c: the per-address, per-minute count of unauthenticated refusals.
 * Every instant is fixed (T0 is the start of a minute); no clock is read. The invariant
 * checked throughout: refusals recorded + surpluses handed out = refusals counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter/flood.h"

#define T0  (1795000020LL * 1000000LL) /* 2026-11-18T11:07:00Z, a minute start */
#define MIN TG_FLOOD_MINUTE

/* Totals of a run: what was recorded one by one and what left as aggregates. */
typedef struct tally {
    int64_t recorded, counted, flushed;
    tg_flood_agg_t last_flushed;
} tally_t;

static void hit_status(tg_flood_t *f, const char *ip, int status, int64_t ts, tally_t *t)
{
    tg_flood_agg_t fl;
    int has = 0;
    tg_flood_verdict_t v = tg_flood_count(f, ip, status, ts, &fl, &has);
    if (v == TG_FLOOD_RECORD)
        t->recorded++;
    else
        t->counted++;
    if (has) {
        assert_true(fl.count > 0);
        t->flushed += fl.count;
        t->last_flushed = fl;
    }
}

static void hit(tg_flood_t *f, const char *ip, int64_t ts, tally_t *t)
{
    hit_status(f, ip, 401, ts, t);
}

static int64_t harvest_all(tg_flood_t *f, int64_t before, tg_flood_agg_t *out, size_t max,
                           size_t *n)
{
    *n = tg_flood_harvest(f, before, out, max);
    int64_t sum = 0;
    for (size_t i = 0; i < *n; i++)
        sum += out[i].count;
    return sum;
}

static void test_t0_is_a_minute_start(void **state)
{
    (void)state;
    assert_int_equal(T0 % MIN, 0);
}

static void test_bound_then_counted(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(100);
    assert_non_null(f);
    tally_t t = {0};
    for (int i = 0; i < 2000; i++)
        hit(f, "192.0.2.1", T0 + i * 1000, &t); /* 2000 within the first 2 s */
    assert_int_equal(t.recorded, 100);
    assert_int_equal(t.counted, 1900);
    assert_int_equal(t.flushed, 0);

    /* The minute has not ended at T0 + 59.999 s: nothing to harvest yet. */
    tg_flood_agg_t out[8];
    size_t n;
    assert_int_equal(harvest_all(f, T0 + MIN - 1, out, 8, &n), 0);
    assert_int_equal(n, 0);
    /* It has at T0 + 60 s: one aggregate with the exact remainder, the minute's start. */
    assert_int_equal(harvest_all(f, T0 + MIN, out, 8, &n), 1900);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].ip, "192.0.2.1");
    assert_int_equal(out[0].minute_us, T0);
    /* Taken once. */
    assert_int_equal(harvest_all(f, T0 + 10 * MIN, out, 8, &n), 0);
    tg_flood_free(f);
}

static void test_addresses_counted_apart(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(3);
    tally_t a = {0}, b = {0};
    for (int i = 0; i < 10; i++) {
        hit(f, "192.0.2.1", T0 + i, &a);
        hit(f, "2001:db8::1", T0 + i, &b);
    }
    assert_int_equal(a.recorded, 3);
    assert_int_equal(b.recorded, 3);
    tg_flood_agg_t out[8];
    size_t n;
    assert_int_equal(harvest_all(f, T0 + MIN, out, 8, &n), 14);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].count, 7);
    assert_int_equal(out[1].count, 7);
    assert_string_not_equal(out[0].ip, out[1].ip);
    tg_flood_free(f);
}

/* IPv6 counts by /64: a client cannot draw a fresh bound from each address of its /64. */
static void test_ipv6_by_prefix(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(2);
    tally_t t = {0};
    hit(f, "2001:db8:1:2::1", T0, &t);
    hit(f, "2001:db8:1:2::2", T0, &t);
    hit(f, "2001:db8:1:2:ffff:ffff:ffff:ffff", T0, &t); /* same /64: past the bound */
    hit(f, "2001:db8:1:3::1", T0, &t);                  /* another /64 */
    hit(f, "::ffff:192.0.2.1", T0, &t);                 /* v4-mapped: per address */
    hit(f, "::ffff:192.0.2.2", T0, &t);
    hit(f, "::ffff:192.0.2.2", T0, &t);
    assert_int_equal(t.recorded, 6);
    assert_int_equal(t.counted, 1);
    tg_flood_agg_t out[4];
    size_t n;
    assert_int_equal(harvest_all(f, T0 + MIN, out, 4, &n), 1);
    assert_string_equal(out[0].ip, "2001:db8:1:2::/64");
    tg_flood_free(f);
}

/* The bound is per minute of the event's timestamp: the last microsecond of a minute and
 * the first of the next are two minutes. */
static void test_minute_boundary(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(2);
    tally_t t = {0};
    for (int i = 0; i < 5; i++)
        hit(f, "192.0.2.7", T0 + MIN - 1, &t); /* minute 0: 2 recorded, 3 counted */
    assert_int_equal(t.recorded, 2);
    /* The next minute's first refusal from the address hands out minute 0's surplus (the
     * writer had not harvested it) and is recorded: a fresh bound. */
    hit(f, "192.0.2.7", T0 + MIN, &t);
    assert_int_equal(t.recorded, 3);
    assert_int_equal(t.flushed, 3);
    assert_int_equal(t.last_flushed.minute_us, T0);
    hit(f, "192.0.2.7", T0 + MIN + 1, &t);
    hit(f, "192.0.2.7", T0 + 2 * MIN - 1, &t);
    assert_int_equal(t.recorded, 4);
    assert_int_equal(t.counted, 4); /* 3 of minute 0, 1 of minute 1 */
    /* A late refusal of minute 0 (a slow worker) is recorded, not counted in minute 1. */
    hit(f, "192.0.2.7", T0 + 5, &t);
    assert_int_equal(t.recorded, 5);
    tg_flood_agg_t out[4];
    size_t n;
    assert_int_equal(harvest_all(f, T0 + 2 * MIN, out, 4, &n), 1);
    assert_int_equal(out[0].minute_us, T0 + MIN);
    assert_int_equal(t.recorded + t.flushed + 1, 9); /* every refusal accounted once */
    tg_flood_free(f);
}

/* Times before 1970 floor to their minute (no rounding toward zero). */
static void test_negative_time_floors(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(1);
    tally_t t = {0};
    hit(f, "192.0.2.9", -1, &t);
    hit(f, "192.0.2.9", -2, &t);
    tg_flood_agg_t out[2];
    size_t n;
    assert_int_equal(harvest_all(f, 0, out, 2, &n), 1);
    assert_int_equal(out[0].minute_us, -MIN);
    tg_flood_free(f);
}

static void test_zero_bound_counts_all(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(0);
    tally_t t = {0};
    for (int i = 0; i < 5; i++)
        hit(f, "192.0.2.1", T0, &t);
    assert_int_equal(t.recorded, 0);
    assert_int_equal(t.counted, 5);
    tg_flood_free(f);
}

/* More addresses than slots in a minute: the rest share the "*" slot, and the total stays
 * exact. The disk cost is bounded whatever the number of addresses. */
static void test_overflow_slot(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(1);
    tally_t t = {0};
    int naddr = TG_FLOOD_SHARDS * TG_FLOOD_SLOTS * 2;
    char ip[48];
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < naddr; i++) {
            snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
            hit(f, ip, T0 + r, &t);
        }
    int64_t total = 3LL * naddr;
    assert_int_equal(t.recorded + t.counted, total);
    /* At most one recorded per slot and minute, plus the overflow slot's one. */
    assert_true(t.recorded <= TG_FLOOD_SHARDS * TG_FLOOD_SLOTS + 1);
    assert_true(t.recorded >= naddr / 4); /* most slots were used */
    tg_flood_agg_t *out = calloc(TG_FLOOD_SHARDS * TG_FLOOD_SLOTS + 1, sizeof *out);
    size_t n, got = 0;
    int64_t sum = 0, star = 0;
    for (;;) { /* in pieces, as the recorder does */
        sum += harvest_all(f, INT64_MAX, out, 1000, &n);
        for (size_t i = 0; i < n; i++)
            if (strcmp(out[i].ip, "*") == 0) star += out[i].count;
        got += n;
        if (n < 1000) break;
    }
    assert_int_equal(t.recorded + sum, total);
    assert_true(star > 0);
    assert_true(got <= (size_t)TG_FLOOD_SHARDS * TG_FLOOD_SLOTS + 1);
    free(out);
    tg_flood_free(f);
}

/* Keyless refusals of different statuses (a 401 flood, a flood of malformed heads) are
 * bounded apart and aggregated apart: an aggregate states one status, exactly. */
static void test_statuses_apart(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(2);
    tally_t t = {0};
    static const int statuses[] = {401, 400, 408, 431};
    for (int i = 0; i < 40; i++)
        hit_status(f, "192.0.2.9", statuses[i % 4], T0 + i, &t);
    assert_int_equal(t.recorded, 8); /* two of each */
    assert_int_equal(t.counted, 32);
    tg_flood_agg_t out[8];
    size_t n;
    assert_int_equal(harvest_all(f, T0 + MIN, out, 8, &n), 32);
    assert_int_equal(n, 4);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].count, 8);
        assert_string_equal(out[i].ip, "192.0.2.9");
        for (int k = 0; k < 4; k++)
            if (out[i].status == statuses[k]) seen |= 1 << k;
    }
    assert_int_equal(seen, 15);

    /* The overflow slot too: more addresses than slots, two statuses, each bounded. */
    int naddr = TG_FLOOD_SHARDS * TG_FLOOD_SLOTS * 2;
    char ip[48];
    tally_t u = {0};
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < naddr; i++) {
            snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
            hit_status(f, ip, r == 1 ? 400 : 401, T0 + MIN + r, &u);
        }
    /* Two recorded per slot and minute, and per status in the overflow slot. */
    assert_true(u.recorded <= 2 * (TG_FLOOD_SHARDS * TG_FLOOD_SLOTS + 2));
    tg_flood_agg_t *big = calloc(TG_FLOOD_SHARDS * TG_FLOOD_SLOTS + 8, sizeof *big);
    int64_t sum = 0, star400 = 0;
    for (;;) {
        sum += harvest_all(f, INT64_MAX, big, 1000, &n);
        for (size_t i = 0; i < n; i++) {
            assert_true(big[i].status == 400 || big[i].status == 401);
            if (!strcmp(big[i].ip, "*") && big[i].status == 400) star400 += big[i].count;
        }
        if (n < 1000) break;
    }
    assert_int_equal(u.recorded + u.flushed + sum, 3LL * naddr);
    assert_true(star400 > 0);
    free(big);
    tg_flood_free(f);
}

/* After close nothing is counted: the recorder's last harvest leaves nothing behind. */
static void test_close(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(1);
    tally_t t = {0};
    hit(f, "192.0.2.1", T0, &t);
    hit(f, "192.0.2.1", T0, &t);
    tg_flood_close(f);
    hit(f, "192.0.2.1", T0, &t);
    assert_int_equal(t.recorded, 2);
    assert_int_equal(t.counted, 1);
    tg_flood_agg_t out[2];
    size_t n;
    assert_int_equal(harvest_all(f, INT64_MAX, out, 2, &n), 1); /* the current minute too */
    tg_flood_free(f);
}

/* Workers counting while the writer harvests: every refusal is recorded or harvested
 * exactly once. */
#define NTHREADS   4
#define PER_THREAD 20000
typedef struct worker {
    tg_flood_t *f;
    int id;
    tally_t t;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    char ip[48];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(ip, sizeof ip, "198.51.100.%d", (i + w->id) % 50);
        hit(w->f, ip, T0 + (int64_t)i * 6000, &w->t); /* 2 minutes over the run */
    }
    return NULL;
}

static void test_concurrent_exact(void **state)
{
    (void)state;
    tg_flood_t *f = tg_flood_new(10);
    worker_t w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){.f = f, .id = i};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    tg_flood_agg_t out[64];
    size_t n;
    int64_t harvested = 0;
    for (int k = 0; k < 200; k++)
        harvested += harvest_all(f, T0 + MIN, out, 64, &n);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    tg_flood_close(f);
    for (;;) {
        harvested += harvest_all(f, INT64_MAX, out, 64, &n);
        if (n < 64) break;
    }
    int64_t recorded = 0, flushed = 0;
    for (int i = 0; i < NTHREADS; i++) {
        recorded += w[i].t.recorded;
        flushed += w[i].t.flushed;
    }
    assert_int_equal(recorded + flushed + harvested, (int64_t)NTHREADS * PER_THREAD);
    tg_flood_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t0_is_a_minute_start),    cmocka_unit_test(test_bound_then_counted),
        cmocka_unit_test(test_addresses_counted_apart), cmocka_unit_test(test_minute_boundary),
        cmocka_unit_test(test_ipv6_by_prefix),          cmocka_unit_test(test_negative_time_floors),
        cmocka_unit_test(test_zero_bound_counts_all),   cmocka_unit_test(test_overflow_slot),
        cmocka_unit_test(test_statuses_apart),          cmocka_unit_test(test_close),
        cmocka_unit_test(test_concurrent_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
