/* Target choice and passive health: see upstream.h. */
#include "gateway/upstream.h"

#include "util/log.h"

tg_target_t *tg_upstream_pick(tg_upstream_conf_t *u, int64_t now)
{
    size_t n = u->ntargets;
    unsigned start = atomic_fetch_add_explicit(&u->rr, 1, memory_order_relaxed);
    tg_target_t *soonest = &u->targets[start % n];
    for (size_t i = 0; i < n; i++) {
        tg_target_t *t = &u->targets[(start + i) % n];
        long long until = atomic_load_explicit(&t->down_until_us, memory_order_relaxed);
        if (until <= now) return t;
        if (until < atomic_load_explicit(&soonest->down_until_us, memory_order_relaxed))
            soonest = t;
    }
    return soonest;
}

void tg_upstream_report(tg_upstream_conf_t *u, tg_target_t *t, int ok, int64_t now)
{
    if (ok) {
        if (atomic_load_explicit(&t->fails, memory_order_relaxed) != 0)
            atomic_store_explicit(&t->fails, 0, memory_order_relaxed);
        if (atomic_load_explicit(&t->fail_streak, memory_order_relaxed) != 0)
            atomic_store_explicit(&t->fail_streak, 0, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&t->fail_streak, 1, memory_order_relaxed);
    int fails = atomic_fetch_add_explicit(&t->fails, 1, memory_order_relaxed) + 1;
    if (u->max_fails > 0 && fails >= u->max_fails) {
        atomic_store_explicit(&t->down_until_us, now + (int64_t)u->fail_timeout_ms * 1000,
                              memory_order_relaxed);
        atomic_store_explicit(&t->fails, 0, memory_order_relaxed);
        TG_WARN("upstream %s: target %s failed %d times, skipped for %ld ms", u->name, t->url,
                fails, u->fail_timeout_ms);
    }
}

int tg_upstream_healthy(const tg_upstream_conf_t *u, int64_t now)
{
    int n = 0;
    for (size_t i = 0; i < u->ntargets; i++)
        if (atomic_load_explicit(&u->targets[i].down_until_us, memory_order_relaxed) <= now) n++;
    return n;
}
