/* Tests src/policy/ratelimit.c: the GCRA math at its edges (bursts, window edges, exact
 * Retry-After, Remaining/Reset, a clock stepping back, zero and huge values), check_all's
 * all-or-nothing, the table (a model check against a reference, 100k keys reclaimed) and
 * exactness under threads. The clock is driven by the tests: times are plain integers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/ratelimit.h"

#define NS   UINT64_C(1000000000)
#define HOUR (3600 * NS)
#define T0   (1000 * NS) /* a start time well away from 0 */

static tg_limit_rule_t rule(uint64_t limit, uint64_t period_ns, uint64_t burst)
{
    tg_limit_rule_t r = {.limit = limit, .period_ns = period_ns, .burst = burst};
    return r;
}

/* The emission interval the implementation promises: ceil(period / limit), >= 1 ns. */
static uint64_t interval(uint64_t limit, uint64_t period_ns)
{
    uint64_t t = period_ns / limit + (period_ns % limit != 0);
    return t ? t : 1;
}

static tg_limit_result_t check(tg_limiter_t *l, uint64_t key, tg_limit_rule_t r, uint64_t now,
                               tg_limit_info_t *info)
{
    return tg_limit_check(l, key, &r, now, info);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_key_hash(void **state)
{
    (void)state;
    uint64_t k = tg_limit_key("acme", "route", "chat");
    assert_int_equal(k, tg_limit_key("acme", "route", "chat"));
    assert_int_not_equal(k, 0);
    /* Field boundaries matter. */
    assert_int_not_equal(tg_limit_key("ab", "c", ""), tg_limit_key("a", "bc", ""));
    assert_int_not_equal(tg_limit_key("a", "", "b"), tg_limit_key("a", "b", ""));
    assert_int_not_equal(tg_limit_key("", "", ""), tg_limit_key("", "", "x"));
    assert_int_not_equal(tg_limit_key("acme", "tenant", ""), tg_limit_key("acme", "inflight", ""));
    /* NULL reads as "". */
    assert_int_equal(tg_limit_key("acme", "tenant", NULL), tg_limit_key("acme", "tenant", ""));
    /* Neighbouring names land far apart: on average half of the 64 bits differ. */
    int bits = 0;
    char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "t%d", i);
        uint64_t a = tg_limit_key(name, "tenant", "");
        snprintf(name, sizeof name, "t%d", i + 1);
        bits += __builtin_popcountll(a ^ tg_limit_key(name, "tenant", ""));
    }
    assert_in_range(bits, 30 * 1000, 34 * 1000);
}

/* ---- GCRA math ----------------------------------------------------------- */

static void test_burst_then_refuse(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    /* 3 per second: T = 333,333,334 ns after rounding up; 3 at once, not 4. */
    tg_limit_rule_t r = rule(3, NS, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(check(l, 1, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 0);
    assert_int_equal(check(l, 1, r, T0, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.limit, 3);
    /* 10 per minute, default burst: 10 at once. */
    r = rule(10, 60 * NS, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(check(l, 2, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(check(l, 2, r, T0, &in), TG_LIMIT_REJECT);
    /* A refusal changed nothing: still refused, same retry-after. */
    uint64_t ra = in.retry_after_ns;
    assert_int_equal(check(l, 2, r, T0, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, ra);
    tg_limiter_free(l);
}

static void test_steady_rate(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    tg_limit_rule_t r = rule(100, 60 * NS, 0);
    uint64_t t = interval(100, 60 * NS), now = T0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(check(l, 7, r, now, &in), TG_LIMIT_OK);
    for (int i = 0; i < 1000; i++) {
        now += t;
        assert_int_equal(check(l, 7, r, now, &in), TG_LIMIT_OK);
        assert_int_equal(in.remaining, 0);
        assert_int_equal(check(l, 7, r, now, &in), TG_LIMIT_REJECT);
    }
    /* Slower than the rate: every request admitted, and the burst refills. */
    for (int i = 0; i < 100; i++) {
        now += 2 * t;
        assert_int_equal(check(l, 7, r, now, &in), TG_LIMIT_OK);
    }
    assert_int_equal(in.remaining, 99);
    tg_limiter_free(l);
}

static void test_window_edges(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    uint64_t periods[] = {NS, 60 * NS, HOUR, 7 * NS + 3};
    uint64_t limits[] = {1, 3, 7, 1000};
    uint64_t key = 100, base = T0; /* the limiter's clock only moves forward */
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++, key++) {
            tg_limit_rule_t r = rule(limits[b], periods[a], 0);
            uint64_t t = interval(limits[b], periods[a]);
            for (uint64_t i = 0; i < limits[b]; i++)
                assert_int_equal(check(l, key, r, base, &in), TG_LIMIT_OK);
            assert_int_equal(check(l, key, r, base, &in), TG_LIMIT_REJECT);
            assert_int_equal(check(l, key, r, base + t - 1, &in), TG_LIMIT_REJECT);
            assert_int_equal(in.retry_after_ns, 1);
            assert_int_equal(check(l, key, r, base + t, &in), TG_LIMIT_OK);
            assert_int_equal(check(l, key, r, base + 2 * t - 1, &in), TG_LIMIT_REJECT);
            assert_int_equal(check(l, key, r, base + 2 * t, &in), TG_LIMIT_OK);
            base += 2 * t + 1;
        }
    tg_limiter_free(l);
}

static void test_retry_after_exact(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    tg_limit_rule_t r = rule(5, NS, 0); /* T = 200 ms, tau = 800 ms */
    uint64_t t = 200000000, tau = 4 * t;
    uint64_t now = T0 + 12345;
    for (int i = 0; i < 5; i++)
        assert_int_equal(check(l, 1, r, now, &in), TG_LIMIT_OK);
    uint64_t tat = now + 5 * t;
    now += 31337; /* some time later, still refused */
    assert_int_equal(check(l, 1, r, now, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, tat - now - tau);
    assert_int_equal(in.remaining, 0);
    assert_int_equal(in.reset_ns, tat - now);
    uint64_t ra = in.retry_after_ns;
    assert_int_equal(check(l, 1, r, now + ra - 1, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, 1);
    /* The client that waits Retry-After is admitted, and only it. */
    assert_int_equal(check(l, 1, r, now + ra, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 0);
    assert_int_equal(check(l, 1, r, now + ra, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, t);
    /* In whole seconds, as Retry-After is sent (rounded up), still admitted. */
    uint64_t base = now + ra;
    assert_int_equal(check(l, 1, r, base, &in), TG_LIMIT_REJECT);
    uint64_t ra_s = (in.retry_after_ns + NS - 1) / NS;
    assert_int_equal(check(l, 1, r, base + ra_s * NS, &in), TG_LIMIT_OK);
    tg_limiter_free(l);
}

static void test_remaining_reset(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    tg_limit_rule_t r = rule(10, 10 * NS, 0); /* T = 1 s, burst 10 */
    /* Idle: the first request leaves 9; reset is one interval. */
    for (uint64_t i = 1; i <= 10; i++) {
        assert_int_equal(check(l, 3, r, T0, &in), TG_LIMIT_OK);
        assert_int_equal(in.remaining, 10 - i);
        assert_int_equal(in.reset_ns, i * NS);
        assert_int_equal(in.retry_after_ns, i < 10 ? 0 : NS);
    }
    /* 2.5 s later two requests are admissible (half an interval is not one): this one and
     * one more. */
    uint64_t now = T0 + 2500000000u;
    assert_int_equal(check(l, 3, r, now, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 1);
    assert_int_equal(in.reset_ns, 11 * NS - 2500000000u);
    /* Remaining is exact: that many more are admitted now, then a refusal. */
    assert_int_equal(check(l, 3, r, now, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 0);
    assert_int_equal(check(l, 3, r, now, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.reset_ns, 12 * NS - 2500000000u);
    assert_int_equal(in.retry_after_ns, 3 * NS - 2500000000u);
    /* Once reset has passed the state is idle: full burst, reset back to one interval. */
    now = T0 + 12 * NS;
    assert_int_equal(check(l, 3, r, now, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 9);
    assert_int_equal(in.reset_ns, NS);
    tg_limiter_free(l);
}

static void test_clock_backwards(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(1);
    tg_limit_info_t in;
    tg_limit_rule_t r = rule(3, 3 * NS, 0); /* T = 1 s */
    uint64_t now = 100 * NS;
    assert_int_equal(check(l, 1, r, now, &in), TG_LIMIT_OK);
    /* The clock steps back 50 s: no time passed, so exactly 2 more, as at 100 s. */
    assert_int_equal(check(l, 1, r, 50 * NS, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 1);
    assert_int_equal(in.reset_ns, 2 * NS);
    assert_int_equal(check(l, 1, r, 0, &in), TG_LIMIT_OK);
    assert_int_equal(check(l, 1, r, 0, &in), TG_LIMIT_REJECT);
    assert_int_equal(check(l, 1, r, 99 * NS, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, NS); /* measured from 100 s */
    /* Time resumes from where it was, not from the stepped-back value. */
    assert_int_equal(check(l, 1, r, now + NS - 1, &in), TG_LIMIT_REJECT);
    assert_int_equal(check(l, 1, r, now + NS, &in), TG_LIMIT_OK);
    /* A key first seen after the step back is decided at the latest time too. */
    assert_int_equal(check(l, 2, r, 1, &in), TG_LIMIT_OK);
    assert_int_equal(in.reset_ns, NS);
    /* Entries reclaimed at a later time stay reclaimed when the clock steps back: a key
     * that was idle at 200 s gets its full burst, and not a request more. */
    tg_limiter_t *l2 = tg_limiter_new(1);
    for (uint64_t k = 0; k < 200; k++)
        for (int i = 0; i < 3; i++)
            assert_int_equal(check(l2, k, r, now, &in), TG_LIMIT_OK);
    for (uint64_t k = 1000; k < 1200; k++) /* probes at 200 s reclaim the idle ones */
        assert_int_equal(check(l2, k, r, 200 * NS, &in), TG_LIMIT_OK);
    for (uint64_t k = 0; k < 200; k++) {
        for (int i = 0; i < 3; i++)
            assert_int_equal(check(l2, k, r, now, &in), TG_LIMIT_OK);
        assert_int_equal(check(l2, k, r, now, &in), TG_LIMIT_REJECT);
    }
    tg_limiter_free(l2);
    tg_limiter_free(l);
}

static void test_limit_zero(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    tg_limit_rule_t r = rule(0, 60 * NS, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(check(l, 1, r, T0 + i * HOUR, &in), TG_LIMIT_REJECT);
        assert_int_equal(in.limit, 0);
        assert_int_equal(in.remaining, 0);
        assert_int_equal(in.retry_after_ns, 60 * NS);
        assert_int_equal(in.reset_ns, 60 * NS);
    }
    r.burst = 5; /* a burst does not open a zero limit */
    assert_int_equal(check(l, 1, r, T0, &in), TG_LIMIT_REJECT);
    assert_int_equal(tg_limiter_entries(l), 0); /* refusing everything needs no state */
    /* info may be NULL. */
    assert_int_equal(tg_limit_check(l, 1, &r, T0, NULL), TG_LIMIT_REJECT);
    tg_limiter_free(l);
}

static void test_huge_values(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    const uint64_t SPAN = UINT64_C(1) << 62;

    /* 1e9 per second: T = 1 ns, burst 1e9. */
    tg_limit_rule_t r = rule(1000000000, NS, 0);
    assert_int_equal(check(l, 1, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 999999999);
    assert_int_equal(in.reset_ns, 1);

    /* 1e9 per 24 hours with burst 1e9: T = 86,400 ns; tau = 8.64e13 * ... fits. */
    r = rule(1000000000, 24 * HOUR, 1000000000);
    assert_int_equal(check(l, 2, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 999999999);
    assert_int_equal(in.reset_ns, 86400);

    /* 1 per hour with burst 1e9: T * (B - 1) = 3.6e21 ns does not fit in 64 bits. The
     * tolerance saturates at 2^62 ns and remaining reports the burst that fits. */
    r = rule(1, HOUR, 1000000000);
    uint64_t eff = SPAN / HOUR + 1; /* requests admitted at once */
    assert_int_equal(check(l, 3, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, eff - 1);
    assert_int_equal(in.reset_ns, HOUR);
    uint64_t admitted = 1;
    while (check(l, 3, r, T0, &in) == TG_LIMIT_OK)
        admitted++;
    assert_int_equal(admitted, eff);
    assert_true(in.reset_ns > SPAN && in.reset_ns <= SPAN + HOUR);
    assert_int_equal(in.retry_after_ns, in.reset_ns - SPAN);

    /* Everything at its maximum: period and tolerance capped at 2^62 ns. */
    r = rule(UINT64_MAX, UINT64_MAX, UINT64_MAX);
    uint64_t t = interval(UINT64_MAX, SPAN); /* 1 ns */
    assert_int_equal(check(l, 4, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.reset_ns, t);
    assert_int_equal(in.remaining, SPAN); /* effective burst 2^62 + 1 */
    r = rule(1, UINT64_MAX, UINT64_MAX);  /* T = 2^62, tau = 2^62: two at once */
    assert_int_equal(check(l, 5, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 1);
    assert_int_equal(check(l, 5, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.reset_ns, 2 * SPAN);
    assert_int_equal(check(l, 5, r, T0, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, SPAN);
    r = rule(0, UINT64_MAX, UINT64_MAX);
    assert_int_equal(check(l, 6, r, T0, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, SPAN);

    /* Period 0 (or a limit above period_ns): one request per ns at most. */
    r = rule(5, 0, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(check(l, 7, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(check(l, 7, r, T0, &in), TG_LIMIT_REJECT);
    assert_int_equal(check(l, 7, r, T0 + 1, &in), TG_LIMIT_OK);

    /* Clock values at the end of the range do not wrap: refused, never admitted extra. */
    tg_limiter_t *l2 = tg_limiter_new(1);
    r = rule(3, NS, 0);
    uint64_t late = UINT64_MAX - 10;
    assert_int_equal(check(l2, 1, r, late, &in), TG_LIMIT_REJECT);
    assert_true(in.retry_after_ns > 0);
    assert_int_equal(check(l2, 1, r, UINT64_MAX, &in), TG_LIMIT_REJECT);
    /* Up to 2^63 (292 years of monotonic clock) everything works. */
    tg_limiter_t *l3 = tg_limiter_new(1);
    r = rule(1, UINT64_MAX, 2);
    late = (UINT64_C(1) << 63) - 1;
    assert_int_equal(check(l3, 1, r, late, &in), TG_LIMIT_OK);
    assert_int_equal(check(l3, 1, r, late, &in), TG_LIMIT_OK);
    assert_int_equal(check(l3, 1, r, late, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, SPAN);
    tg_limiter_free(l3);
    tg_limiter_free(l2);
    tg_limiter_free(l);
}

static void test_burst_vs_limit(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    tg_limit_info_t in;
    /* burst < limit: 2 at once, then one every 100 ms. */
    tg_limit_rule_t r = rule(10, NS, 2);
    uint64_t t = 100000000;
    assert_int_equal(check(l, 1, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 1);
    assert_int_equal(check(l, 1, r, T0, &in), TG_LIMIT_OK);
    assert_int_equal(check(l, 1, r, T0, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.retry_after_ns, t);
    assert_int_equal(in.reset_ns, 2 * t);
    assert_int_equal(check(l, 1, r, T0 + t, &in), TG_LIMIT_OK);
    assert_int_equal(check(l, 1, r, T0 + t, &in), TG_LIMIT_REJECT);
    /* burst > limit: 5 at once with 2 per second, then one every 500 ms. */
    uint64_t T1 = T0 + 10 * NS; /* later: the limiter's clock only moves forward */
    r = rule(2, NS, 5);
    t = 500000000;
    for (uint64_t i = 1; i <= 5; i++) {
        assert_int_equal(check(l, 2, r, T1, &in), TG_LIMIT_OK);
        assert_int_equal(in.remaining, 5 - i);
    }
    assert_int_equal(check(l, 2, r, T1, &in), TG_LIMIT_REJECT);
    assert_int_equal(in.reset_ns, 5 * t);
    assert_int_equal(check(l, 2, r, T1 + t - 1, &in), TG_LIMIT_REJECT);
    assert_int_equal(check(l, 2, r, T1 + t, &in), TG_LIMIT_OK);
    /* burst 1: no bursting at all. */
    uint64_t T2 = T1 + 10 * NS;
    r = rule(4, NS, 1);
    assert_int_equal(check(l, 3, r, T2, &in), TG_LIMIT_OK);
    assert_int_equal(in.remaining, 0);
    assert_int_equal(check(l, 3, r, T2 + 249999999, &in), TG_LIMIT_REJECT);
    assert_int_equal(check(l, 3, r, T2 + 250000000, &in), TG_LIMIT_OK);
    tg_limiter_free(l);
}

/* ---- check_all ------------------------------------------------------------ */

static void test_check_all(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(64);
    tg_limit_info_t in[3], one;
    size_t which = 99;
    uint64_t keys[3] = {tg_limit_key("acme", "tenant", ""), tg_limit_key("acme", "route", "chat"),
                        tg_limit_key("acme", "key", "k1")};
    tg_limit_rule_t rules[3] = {rule(100, 60 * NS, 0), rule(2, 60 * NS, 0), rule(50, NS, 0)};

    /* Admitted: every state moves. */
    assert_int_equal(tg_limit_check_all(l, keys, rules, 3, T0, in, &which), TG_LIMIT_OK);
    assert_int_equal(in[0].remaining, 99);
    assert_int_equal(in[1].remaining, 1);
    assert_int_equal(in[2].remaining, 49);
    assert_int_equal(in[1].limit, 2);
    assert_int_equal(tg_limit_check_all(l, keys, rules, 3, T0, in, &which), TG_LIMIT_OK);
    assert_int_equal(in[1].remaining, 0);

    /* The route rule refuses: nothing changes, which names it, every info is filled. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tg_limit_check_all(l, keys, rules, 3, T0, in, &which), TG_LIMIT_REJECT);
        assert_int_equal(which, 1);
        assert_int_equal(in[0].remaining, 98); /* unchanged state, this request not counted */
        assert_int_equal(in[0].retry_after_ns, 0);
        assert_int_equal(in[1].remaining, 0);
        assert_int_equal(in[1].retry_after_ns, 30 * NS);
        assert_int_equal(in[2].remaining, 48);
    }
    assert_int_equal(check(l, keys[0], rules[0], T0, &one), TG_LIMIT_OK);
    assert_int_equal(one.remaining, 97);
    assert_int_equal(check(l, keys[2], rules[2], T0, &one), TG_LIMIT_OK);
    assert_int_equal(one.remaining, 47);

    /* Two refuse: which is the longer retry-after. */
    rules[2] = rule(1, HOUR, 0);
    assert_int_equal(check(l, keys[2] + 1, rules[2], T0, &one), TG_LIMIT_OK);
    uint64_t k2[3] = {keys[0], keys[1], keys[2] + 1};
    assert_int_equal(tg_limit_check_all(l, k2, rules, 3, T0, in, &which), TG_LIMIT_REJECT);
    assert_int_equal(which, 2);
    assert_int_equal(in[2].retry_after_ns, HOUR);
    assert_int_equal(in[1].retry_after_ns, 30 * NS);
    k2[2] = keys[2] + 2; /* a fresh key admits; the route still refuses */
    assert_int_equal(tg_limit_check_all(l, k2, rules, 3, T0, in, &which), TG_LIMIT_REJECT);
    assert_int_equal(which, 1);
    assert_int_equal(in[2].remaining, 1);
    assert_int_equal(tg_limiter_entries(l), 4); /* the fresh key was not stored */

    /* A zero limit refuses the lot. */
    tg_limit_rule_t zr[2] = {rule(100, 60 * NS, 0), rule(0, 60 * NS, 0)};
    uint64_t zk[2] = {1000, 1001};
    assert_int_equal(tg_limit_check_all(l, zk, zr, 2, T0, in, &which), TG_LIMIT_REJECT);
    assert_int_equal(which, 1);
    assert_int_equal(in[0].remaining, 100);
    assert_int_equal(in[1].retry_after_ns, 60 * NS);

    /* The same key under two rules: evaluated in order against one state. */
    tg_limit_rule_t dr[2] = {rule(3, 3 * NS, 0), rule(3, 3 * NS, 0)};
    uint64_t dk[2] = {2000, 2000};
    assert_int_equal(tg_limit_check_all(l, dk, dr, 2, T0, in, &which), TG_LIMIT_OK);
    assert_int_equal(in[1].remaining, 1);
    assert_int_equal(tg_limit_check_all(l, dk, dr, 2, T0, in, &which), TG_LIMIT_REJECT);
    assert_int_equal(which, 1);
    assert_int_equal(in[0].remaining, 1);
    assert_int_equal(check(l, 2000, dr[0], T0, &one), TG_LIMIT_OK);
    assert_int_equal(one.remaining, 0);

    /* n = 0 admits; info and which may be NULL. */
    assert_int_equal(tg_limit_check_all(l, keys, rules, 0, T0, NULL, NULL), TG_LIMIT_OK);
    assert_int_equal(tg_limit_check_all(l, keys, rules, 1, T0, NULL, NULL), TG_LIMIT_OK);
    tg_limiter_free(l);
}

/* ---- the table --------------------------------------------------------------- */

/* Random keys, rules and clock steps on a small table (many collisions, reclaims, rehashes),
 * checked decision by decision against a plain array holding each key's TAT. */
static void test_model(void **state)
{
    (void)state;
    enum { KEYS = 3000, OPS = 300000 };
    static uint64_t ref[KEYS];
    memset(ref, 0, sizeof ref);
    tg_limiter_t *l = tg_limiter_new(2);
    uint64_t x = 88172645463325252u, now = T0;
    tg_limit_rule_t r = rule(4, 40000, 0); /* T = 10,000 ns, tau = 30,000 ns */
    const uint64_t t = 10000, tau = 30000;
    tg_limit_info_t in;
    for (int op = 0; op < OPS; op++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* Keys cluster in bursts so that some stay live while others go idle. */
        uint64_t k = (x >> 8) % (op % 20000 < 10000 ? KEYS : KEYS / 10);
        now += (x >> 40) % 64;
        uint64_t d = ref[k] > now ? ref[k] - now : 0;
        int admit = d <= tau;
        if (admit) ref[k] = now + d + t;
        tg_limit_result_t got = check(l, k * 0x10001, r, now, &in);
        assert_int_equal(got, admit ? TG_LIMIT_OK : TG_LIMIT_REJECT);
        uint64_t d2 = admit ? d + t : d;
        assert_int_equal(in.reset_ns, d2);
        assert_int_equal(in.remaining, d2 <= tau ? (tau - d2) / t + 1 : 0);
        if (!admit) assert_int_equal(in.retry_after_ns, d - tau);
    }
    size_t live = 0;
    for (int k = 0; k < KEYS; k++)
        live += ref[k] > now;
    assert_true(tg_limiter_entries(l) >= live);
    tg_limiter_free(l);
}

static void test_many_keys_reclaimed(void **state)
{
    (void)state;
    enum { N = 100000 };
    tg_limiter_t *l = tg_limiter_new(64);
    tg_limit_rule_t r = rule(10, NS, 0);
    tg_limit_info_t in;
    uint64_t now = T0;
    size_t base = tg_limiter_bytes(l);
    for (uint64_t k = 0; k < N; k++)
        assert_int_equal(check(l, k, r, now, &in), TG_LIMIT_OK);
    assert_int_equal(tg_limiter_entries(l), N);
    size_t peak = tg_limiter_bytes(l);
    assert_true(peak > base);
    assert_true(peak - base < (size_t)N * 64); /* <= 64 bytes per key */
    /* Each round, the previous round's keys have gone idle (after 1 s); new keys take their
     * place and memory stays where it was. */
    for (uint64_t round = 1; round <= 5; round++) {
        now += 2 * NS;
        for (uint64_t k = round * N; k < (round + 1) * N; k++)
            assert_int_equal(check(l, k, r, now, &in), TG_LIMIT_OK);
        assert_true(tg_limiter_bytes(l) <= peak);
        assert_true(tg_limiter_entries(l) >= N && tg_limiter_entries(l) < 2 * N);
    }
    /* Keys that went idle, reclaimed or not, come back with a full burst, and the live ones
     * kept their state. */
    for (uint64_t k = 0; k < 1000; k++) {
        assert_int_equal(check(l, k, r, now, &in), TG_LIMIT_OK);
        assert_int_equal(in.remaining, 9);
        assert_int_equal(check(l, 5 * N + k, r, now, &in), TG_LIMIT_OK);
        assert_int_equal(in.remaining, 8);
    }
    tg_limiter_free(l);
}

/* ---- threads ------------------------------------------------------------------ */

enum { THREADS = 8 };

struct hammer {
    tg_limiter_t *l;
    pthread_barrier_t *go;
    uint64_t keys[3];
    size_t nkeys;
    int attempts;
    int admitted;
};

static void *hammer(void *arg)
{
    struct hammer *h = arg;
    tg_limit_rule_t rules[3] = {rule(1000, HOUR, 0), rule(1000, HOUR, 0), rule(1000, HOUR, 0)};
    pthread_barrier_wait(h->go);
    for (int i = 0; i < h->attempts; i++) {
        tg_limit_result_t r;
        if (h->nkeys == 1)
            r = tg_limit_check(h->l, h->keys[0], &rules[0], T0, NULL);
        else
            r = tg_limit_check_all(h->l, h->keys, rules, h->nkeys, T0, NULL, NULL);
        h->admitted += r == TG_LIMIT_OK;
    }
    return NULL;
}

static void run_threads(struct hammer *h)
{
    pthread_t th[THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        h[i].go = &go;
        h[i].admitted = 0;
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

static void test_threads_same_key(void **state)
{
    (void)state;
    for (int rep = 0; rep < 20; rep++) {
        tg_limiter_t *l = tg_limiter_new(64);
        struct hammer h[THREADS];
        memset(h, 0, sizeof h);
        for (int i = 0; i < THREADS; i++)
            h[i] = (struct hammer){
                .l = l, .keys = {tg_limit_key("acme", "tenant", "")}, .nkeys = 1, .attempts = 400};
        run_threads(h);
        int total = 0;
        for (int i = 0; i < THREADS; i++)
            total += h[i].admitted;
        assert_int_equal(total, 1000);
        tg_limiter_free(l);
    }
}

static void test_threads_own_keys(void **state)
{
    (void)state;
    for (int rep = 0; rep < 20; rep++) {
        tg_limiter_t *l = tg_limiter_new(4); /* few shards: threads share them */
        struct hammer h[THREADS];
        memset(h, 0, sizeof h);
        for (int i = 0; i < THREADS; i++)
            h[i] = (struct hammer){
                .l = l, .keys = {(uint64_t)rep * 100 + i}, .nkeys = 1, .attempts = 1300};
        run_threads(h);
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(h[i].admitted, 1000);
        tg_limiter_free(l);
    }
}

/* check_all from every thread over two shared keys, taken in opposite orders by odd and
 * even threads (a deadlock would hang here), plus a key of the thread's own: exactly 1000
 * admitted in all, and the two shared states moved together. */
static void test_threads_check_all(void **state)
{
    (void)state;
    for (int rep = 0; rep < 20; rep++) {
        tg_limiter_t *l = tg_limiter_new(64);
        uint64_t a = (uint64_t)rep * 2 + 1, b = (uint64_t)rep * 2 + 2;
        struct hammer h[THREADS];
        memset(h, 0, sizeof h);
        for (int i = 0; i < THREADS; i++) {
            uint64_t own = 1000000 + (uint64_t)i;
            h[i] = (struct hammer){.l = l, .nkeys = 3, .attempts = 400};
            uint64_t *k = h[i].keys;
            if (i % 2)
                k[0] = a, k[1] = b, k[2] = own;
            else
                k[0] = own, k[1] = b, k[2] = a;
        }
        run_threads(h);
        int total = 0;
        for (int i = 0; i < THREADS; i++)
            total += h[i].admitted;
        assert_int_equal(total, 1000);
        tg_limit_info_t in;
        assert_int_equal(check(l, a, rule(1000, HOUR, 0), T0, &in), TG_LIMIT_REJECT);
        assert_int_equal(in.reset_ns, HOUR);
        assert_int_equal(check(l, b, rule(1000, HOUR, 0), T0, &in), TG_LIMIT_REJECT);
        assert_int_equal(in.reset_ns, HOUR);
        tg_limiter_free(l);
    }
}

/* ---- a shared limiter's copy ------------------------------------------------ */

/* Answers from Redis reach the workers over several connections, in any order: the copy
 * follows the newest decision (by Redis's clock), never a late one of an older state. */
static void test_mirror_order(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_new(4);
    assert_non_null(l);
    tg_limit_rule_t r = rule(10, 60 * NS, 0); /* T = 6 s */
    const uint64_t k = 42, t = 6 * NS;
    /* The 10th admission (Redis at 200) arrives first, the 7th (at 100) after it. */
    tg_limit_mirror(l, k, 10 * t, 200, T0);
    tg_limit_mirror(l, k, 7 * t, 100, T0);
    assert_true(tg_limit_usage(l, k, &r, T0) > 0.99);
    /* A refusal decided later still carries the full window, and a newer, lower state (a
     * refund settled meanwhile) replaces it. */
    tg_limit_mirror(l, k, 10 * t, 300, T0);
    assert_true(tg_limit_usage(l, k, &r, T0) > 0.99);
    tg_limit_mirror(l, k, 4 * t, 400, T0);
    assert_true(tg_limit_usage(l, k, &r, T0) > 0.39 && tg_limit_usage(l, k, &r, T0) < 0.41);
    /* Equal stamps (one microsecond): the later call wins. */
    tg_limit_mirror(l, k, 5 * t, 400, T0);
    assert_true(tg_limit_usage(l, k, &r, T0) > 0.49 && tg_limit_usage(l, k, &r, T0) < 0.51);
    /* A local admission (a fallback while Redis is away) builds on the copy. */
    assert_int_equal(check(l, k, r, T0, NULL), TG_LIMIT_OK);
    assert_true(tg_limit_usage(l, k, &r, T0) > 0.59 && tg_limit_usage(l, k, &r, T0) < 0.61);
    /* Once idle, the entry is reclaimed; a new copy starts with its own stamp. */
    tg_limit_mirror(l, k, 2 * t, 50, T0 + HOUR);
    assert_true(tg_limit_usage(l, k, &r, T0 + HOUR) > 0.19);
    tg_limit_mirror(l, k, 0, 40, T0 + HOUR);
    assert_true(tg_limit_usage(l, k, &r, T0 + HOUR) > 0.19);
    tg_limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_hash),
        cmocka_unit_test(test_burst_then_refuse),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_window_edges),
        cmocka_unit_test(test_retry_after_exact),
        cmocka_unit_test(test_remaining_reset),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_limit_zero),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_burst_vs_limit),
        cmocka_unit_test(test_check_all),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_many_keys_reclaimed),
        cmocka_unit_test(test_threads_same_key),
        cmocka_unit_test(test_threads_own_keys),
        cmocka_unit_test(test_threads_check_all),
        cmocka_unit_test(test_mirror_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
