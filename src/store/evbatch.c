/* What both backends' append() share: see evbatch.h. */
#include "store/evbatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int evb_column_list(char *dst, size_t cap)
{
    size_t o = 0;
    for (int i = 0; i < EVB_NCOLS; i++) {
        int k = snprintf(dst + o, cap - o, "%s%s", i ? ", " : "", evb_cols[i].name);
        if (k < 0 || (size_t)k >= cap - o) return -1;
        o += (size_t)k;
    }
    return (int)o;
}

const char *evb_outcome_text(int32_t o)
{
    switch (o) {
    case TG_OUTCOME_BILLABLE: return "billable";
    case TG_OUTCOME_REJECTED: return "rejected";
    default: return "failed";
    }
}

/* *a += b, held at INT64_MAX (or MIN) instead of overflowing: a batch's sums of what
 * events claim (a cost priced at its cap, counts an upstream made up) stay defined. */
static void sat_add(int64_t *a, int64_t b)
{
    if (__builtin_add_overflow(*a, b, a)) *a = b > 0 ? INT64_MAX : INT64_MIN;
}

int64_t evb_day(int64_t ts_us)
{
    int64_t q = ts_us / EVB_DAY_US;
    return (ts_us % EVB_DAY_US != 0 && ts_us < 0) ? q - 1 : q;
}

static uint32_t agg_hash(const char *tenant, int64_t day)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (h ^ (uint32_t)day) * 16777619u;
}

void evb_agg_add(evb_groups_t *gs, const tg_event_t *ev)
{
    int64_t day = evb_day(ev->ts_us);
    size_t mask = gs->slots_cap - 1;
    size_t i = agg_hash(ev->tenant, day) & mask;
    agg_t *g = NULL;
    for (; gs->slots[i]; i = (i + 1) & mask) {
        agg_t *c = &gs->aggs[gs->slots[i] - 1];
        if (c->day == day && strcmp(c->tenant, ev->tenant) == 0) {
            g = c;
            break;
        }
    }
    if (!g) {
        g = &gs->aggs[gs->n];
        memset(g, 0, sizeof *g);
        g->tenant = ev->tenant;
        g->day = day;
        gs->slots[i] = (uint32_t)++gs->n;
    }
    int64_t n = tg_event_count(ev); /* an aggregate of refusals stands for n requests */
    g->requests += n;
    g->billable += n * (ev->outcome == TG_OUTCOME_BILLABLE);
    g->rejected += n * (ev->outcome == TG_OUTCOME_REJECTED);
    g->failed += n * (ev->outcome != TG_OUTCOME_BILLABLE && ev->outcome != TG_OUTCOME_REJECTED);
    sat_add(&g->bytes_in, ev->bytes_in);
    sat_add(&g->bytes_out, ev->bytes_out);
    if (ev->tokens_in > 0) sat_add(&g->tokens_in, ev->tokens_in);
    if (ev->tokens_out > 0) sat_add(&g->tokens_out, ev->tokens_out);
    if (ev->tokens_cached > 0) sat_add(&g->tokens_cached, ev->tokens_cached);
    sat_add(&g->cost_micros, ev->cost_micros);
}

static int cmp_agg(const void *a, const void *b)
{
    const agg_t *x = a, *y = b;
    int c = strcmp(x->tenant, y->tenant);
    return c ? c : (x->day > y->day) - (x->day < y->day);
}

void evb_agg_sort(evb_groups_t *g)
{
    /* The index is not used after this: the groups are only written out. */
    qsort(g->aggs, g->n, sizeof *g->aggs, cmp_agg);
}

static int cmp_fast(const void *a, const void *b)
{
    int64_t x = ((const fast_ev_t *)a)->id, y = ((const fast_ev_t *)b)->id;
    return (x > y) - (x < y);
}

/* The ids come nearly in order (made when an event is pushed, from its request's start,
 * so only requests that overlapped a millisecond boundary are out of place): an insertion
 * sort does the usual batch in one pass, where qsort's merge sort through a comparator
 * cost ~1,000 instructions an event even on sorted input. A batch far out of order goes to
 * qsort after 8 moves an event, so it is never quadratic. */
void evb_sort(fast_ev_t *f, size_t n)
{
    size_t moves = 0;
    for (size_t i = 1; i < n; i++) {
        fast_ev_t x = f[i];
        size_t j = i;
        while (j > 0 && f[j - 1].id > x.id) {
            f[j] = f[j - 1];
            j--;
            if (++moves > 8 * n) {
                f[j] = x; /* (the hole filled: still a permutation) */
                qsort(f, n, sizeof *f, cmp_fast);
                return;
            }
        }
        f[j] = x;
    }
}

/* Derived from the event itself, not drawn at random, so a replay of the same batch walks
 * the same sequence, finds its earlier copy and skips it. The top bits (the millisecond)
 * stay, so the id stays time-ordered (and in its month's partition, in PostgreSQL). */
int64_t evb_next_id(const tg_event_t *ev, int64_t id, int attempt)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
    const unsigned char *p = (const unsigned char *)ev->request_id;
    for (size_t i = 0; i < sizeof ev->request_id && p[i]; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    p = (const unsigned char *)ev->tenant;
    for (size_t i = 0; i < sizeof ev->tenant && p[i]; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    uint64_t mix[2] = {(uint64_t)ev->ts_us, (uint64_t)attempt};
    p = (const unsigned char *)mix;
    for (size_t i = 0; i < sizeof mix; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    const int64_t low = (1 << EVB_ID_LOW_BITS) - 1;
    return (id & ~low) | (int64_t)(h & (uint64_t)low);
}

/* Batches hold few distinct keys, so a short linear table, searched by a hash of the id
 * before its bytes are compared (an ingested log's 50 keys taking turns cost 25 strcmp
 * calls an event); past its size it is written out and started again. */
int evb_keys_used(const ev_run_t *evs, int (*use)(void *ud, const char *key_id, int64_t ts),
                  void *ud)
{
    enum { MAXK = 64 };
    const char *ids[MAXK];
    uint32_t hs[MAXK];
    int64_t ts[MAXK];
    size_t k = 0, n = evs->n;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || k == MAXK) {
            for (size_t j = 0; j < k; j++) {
                int rc = use(ud, ids[j], ts[j]);
                if (rc != 0) return rc;
            }
            k = 0;
            if (i == n) break;
        }
        const tg_event_t *ev = ev_at(evs, i);
        if (ev_skip(evs, i) || !ev->key_id[0] ||
            (ev->reason[0] && (strcmp(ev->reason, "revoked_key") == 0 ||
                               strcmp(ev->reason, "tenant_disabled") == 0)))
            continue;
        uint32_t h = 2166136261u; /* FNV-1a */
        for (size_t b = 0; b < sizeof ev->key_id && ev->key_id[b]; b++)
            h = (h ^ (unsigned char)ev->key_id[b]) * 16777619u;
        size_t j = 0;
        while (j < k && (hs[j] != h || strcmp(ids[j], ev->key_id) != 0))
            j++;
        if (j == k) {
            ids[k] = ev->key_id;
            hs[k] = h;
            ts[k++] = ev->ts_us;
        } else if (ev->ts_us > ts[j]) {
            ts[j] = ev->ts_us;
        }
    }
    return 0;
}
