/* Limiter decisions per second on one thread, for 1, 10,000 and 1,000,000 tenants.
 *
 *   bench_limiter [-n DECISIONS] [-r RUNS] [-s SHARDS]
 *
 * Each tenant has one key (tg_limit_key(name, "tenant", "")) under one rule, 1000 per hour
 * with the default burst (what `--rph 1000` gives). Keys are drawn uniformly at random from
 * the tenant set; the draws are precomputed (a 4 Mi-entry array read in order), so the
 * headline figure measures tg_limit_check alone: lock, probe, GCRA, store, unlock. A second
 * figure per case ("with key hashing") also hashes the tenant's name with tg_limit_key on
 * every decision, as the gateway does. The clock passed in advances 100 ns per decision (a
 * gateway at 10 M decisions/s). Every tenant is touched once before the timed runs, so the
 * table is at its full size and the timed part does not grow it. Each figure is the best of
 * RUNS runs (default 3), with the range of all runs after it. Memory per tenant is
 * tg_limiter_bytes / tg_limiter_entries once all tenants are in the table (not printed for
 * 1 tenant, where it is the empty shards' fixed overhead; the detail line has the bytes).
 *
 * Prints e.g. `limiter: 1 tenant: 23.1 M decisions/s (target >= 10 M/s)`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/ratelimit.h"

#define DRAWS (1u << 22)
#define STEP  100 /* ns of synthetic clock per decision */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

struct result {
    double best, worst;
    unsigned long long admitted, decisions;
};

static void record(struct result *r, double rate)
{
    if (rate > r->best) r->best = rate;
    if (r->worst == 0 || rate < r->worst) r->worst = rate;
}

static void run_case(size_t tenants, long n, int runs, size_t shards, double target)
{
    char(*names)[16] = malloc(tenants * sizeof *names);
    uint64_t *keys = malloc(tenants * sizeof *keys);
    uint32_t *draw = malloc(DRAWS * sizeof *draw);
    uint64_t *dkey = malloc(DRAWS * sizeof *dkey);
    if (!names || !keys || !draw || !dkey) {
        fprintf(stderr, "bench_limiter: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < tenants; i++) {
        snprintf(names[i], sizeof names[i], "tenant-%07zu", i);
        keys[i] = tg_limit_key(names[i], "tenant", "");
    }
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < DRAWS; i++) {
        draw[i] = (uint32_t)(xorshift(&seed) % tenants);
        dkey[i] = keys[draw[i]];
    }

    tg_limit_rule_t rule = {.limit = 1000, .period_ns = 3600ULL * 1000000000ULL};
    tg_limiter_t *l = tg_limiter_new(shards);
    uint64_t clock = 1000000000ULL;
    for (size_t i = 0; i < tenants; i++, clock += STEP)
        tg_limit_check(l, keys[i], &rule, clock, NULL);
    size_t entries = tg_limiter_entries(l), bytes = tg_limiter_bytes(l);

    struct result pre = {0}, hashed = {0};
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        unsigned long long ok = 0;
        for (long i = 0; i < n; i++, clock += STEP)
            ok += tg_limit_check(l, dkey[i & (DRAWS - 1)], &rule, clock, NULL) == TG_LIMIT_OK;
        double dt = now_s() - t0;
        record(&pre, (double)n / dt);
        pre.admitted += ok;
        pre.decisions += (unsigned long long)n;

        t0 = now_s();
        ok = 0;
        for (long i = 0; i < n; i++, clock += STEP) {
            uint64_t k = tg_limit_key(names[draw[i & (DRAWS - 1)]], "tenant", "");
            ok += tg_limit_check(l, k, &rule, clock, NULL) == TG_LIMIT_OK;
        }
        dt = now_s() - t0;
        record(&hashed, (double)n / dt);
        hashed.admitted += ok;
        hashed.decisions += (unsigned long long)n;
    }

    char tgt[48] = "", mem[48] = "";
    if (target > 0) snprintf(tgt, sizeof tgt, " (target >= %.0f M/s)", target / 1e6);
    /* With one tenant the table is its fixed overhead (empty shards), not a per-tenant cost. */
    if (tenants > 1) snprintf(mem, sizeof mem, ", %.1f bytes/tenant", (double)bytes / entries);
    printf("limiter: %zu tenant%s: %.1f M decisions/s%s%s\n", tenants, tenants == 1 ? "" : "s",
           pre.best / 1e6, tgt, mem);
    printf("limiter:   detail: precomputed keys %.1f-%.1f M/s over %d runs of %ld, %.1f%% admitted;"
           " with key hashing %.1f M/s (%.1f-%.1f); %zu entries, %zu bytes\n",
           pre.worst / 1e6, pre.best / 1e6, runs, n,
           100.0 * (double)pre.admitted / (double)pre.decisions, hashed.best / 1e6,
           hashed.worst / 1e6, hashed.best / 1e6, entries, bytes);
    fflush(stdout);
    tg_limiter_free(l);
    free(names);
    free(keys);
    free(draw);
    free(dkey);
}

int main(int argc, char **argv)
{
    long n = 20000000;
    int runs = 3, c;
    size_t shards = 64;
    while ((c = getopt(argc, argv, "n:r:s:")) != -1) {
        switch (c) {
        case 'n': n = atol(optarg); break;
        case 'r': runs = atoi(optarg); break;
        case 's': shards = (size_t)atol(optarg); break;
        default:
            fprintf(stderr, "usage: bench_limiter [-n DECISIONS] [-r RUNS] [-s SHARDS]\n");
            return 2;
        }
    }
    if (n < 1 || runs < 1 || shards < 1) {
        fprintf(stderr, "bench_limiter: -n, -r and -s must be positive\n");
        return 2;
    }
    run_case(1, n, runs, shards, 10e6);
    run_case(10000, n, runs, shards, 0);
    run_case(1000000, n, runs, shards, 2e6);
    return 0;
}
