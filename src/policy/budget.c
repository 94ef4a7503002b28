/* Monthly budgets: see budget.h. Tenants with a budget are few next to requests, so a
 * plain array searched linearly under one mutex would do for hundreds; an open-addressing
 * index over it keeps the lookup O(1) for the thousands a SaaS may set. */
#include "policy/budget.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/ratelimit.h"
#include "util/log.h"
#include "util/sizes.h"
#include "util/money.h"

#define MAX_THRESHOLDS 8

typedef struct entry {
    char tenant[TG_TENANT_SIZE];
    int64_t budget;
    int hard;
    int thresholds[MAX_THRESHOLDS];
    int nthr;
    int period;       /* yyyymm of spent/reserved/fired */
    int64_t spent;    /* this period */
    int64_t reserved; /* by requests in flight */
    unsigned fired;   /* bit i: thresholds[i] queued or found in the store */
    int live;         /* still in the store's set */
} entry_t;

typedef struct pending {
    tg_alert_row_t row;
} pending_t;

struct tg_budgets {
    atomic_size_t count; /* budgets loaded: 0 lets requests skip the mutex entirely */
    pthread_mutex_t mu;  /* guards everything below */
    entry_t *v;
    size_t n, cap;
    size_t *index; /* open addressing: 1 + position in v, 0 = empty */
    size_t mask;
    pending_t *q; /* alerts to write */
    size_t nq, qcap;
    tg_budget_notice_fn notice; /* set before the refresher starts, then only read */
    void *notice_ud;
};

/* ---- periods ------------------------------------------------------------- */

static int period_of(int64_t now_us, struct tm *tm)
{
    time_t t = (time_t)(now_us / 1000000);
    gmtime_r(&t, tm);
    return (tm->tm_year + 1900) * 100 + tm->tm_mon + 1;
}

void tg_budget_period(int64_t now_us, char *month, char *first_day, char *last_day)
{
    struct tm tm;
    period_of(now_us, &tm);
    unsigned y = (unsigned)(tm.tm_year + 1900) % 10000u, m = (unsigned)tm.tm_mon % 12u + 1u;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned last =
        (unsigned)mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (month) snprintf(month, 8, "%04u-%02u", y, m);
    if (first_day) snprintf(first_day, 11, "%04u-%02u-01", y, m);
    if (last_day) snprintf(last_day, 11, "%04u-%02u-%02u", y, m, last % 32u);
}

/* ---- the table ----------------------------------------------------------- */

tg_budgets_t *tg_budgets_new(void)
{
    tg_budgets_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void tg_budgets_free(tg_budgets_t *b)
{
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b->v);
    free(b->index);
    free(b->q);
    free(b);
}

static size_t slot_of(const char *tenant)
{
    return (size_t)tg_limit_key(tenant, "budget", "");
}

static entry_t *find(tg_budgets_t *b, const char *tenant)
{
    if (!b->index) return NULL;
    for (size_t i = slot_of(tenant) & b->mask; b->index[i]; i = (i + 1) & b->mask) {
        entry_t *e = &b->v[b->index[i] - 1];
        if (strcmp(e->tenant, tenant) == 0) return e;
    }
    return NULL;
}

/* Rebuilds the index over v[0..n). */
static int reindex(tg_budgets_t *b)
{
    size_t cap = 16;
    while (cap < b->n * 2)
        cap <<= 1;
    size_t *ix = calloc(cap, sizeof *ix);
    if (!ix) return -1;
    for (size_t k = 0; k < b->n; k++) {
        size_t i = slot_of(b->v[k].tenant) & (cap - 1);
        while (ix[i])
            i = (i + 1) & (cap - 1);
        ix[i] = k + 1;
    }
    free(b->index);
    b->index = ix;
    b->mask = cap - 1;
    return 0;
}

/* Queues the alerts for thresholds e's spend has reached and that have not fired. */
static void check_thresholds(tg_budgets_t *b, entry_t *e, int64_t now_us)
{
    if (e->budget <= 0) return;
    for (int i = 0; i < e->nthr; i++) {
        if (e->fired & (1u << i)) continue;
        /* spent / budget >= thr / 100, in integers (both below 2^63 / 1000). */
        if ((__int128)e->spent * 100 < (__int128)e->budget * e->thresholds[i]) continue;
        e->fired |= 1u << i;
        if (b->nq == b->qcap) {
            size_t cap = b->qcap ? b->qcap * 2 : 8;
            pending_t *q = realloc(b->q, cap * sizeof *q);
            if (!q) continue; /* lost from the store only; logged below instead */
            b->q = q;
            b->qcap = cap;
        }
        tg_alert_row_t *r = &b->q[b->nq++].row;
        memset(r, 0, sizeof *r);
        snprintf(r->kind, sizeof r->kind, "budget");
        snprintf(r->tenant, sizeof r->tenant, "%s", e->tenant);
        r->threshold = e->thresholds[i];
        tg_budget_period(now_us, r->period, NULL, NULL);
        r->spend_micros = e->spent;
        r->budget_micros = e->budget;
        r->fired_us = now_us;
    }
}

/* Moves e into the period of now: a new month starts from zero. */
static void roll(entry_t *e, int64_t now_us)
{
    struct tm tm;
    int p = period_of(now_us, &tm);
    if (p == e->period) return;
    e->period = p;
    e->spent = 0;
    e->reserved = 0;
    e->fired = 0;
}

/* ---- loading --------------------------------------------------------------- */

typedef struct load {
    tg_budgets_t *b;
    tg_budget_row_t *rows;
    size_t n, cap;
} load_t;

static int on_budget(const tg_budget_row_t *r, void *ud)
{
    load_t *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tg_budget_row_t *v = realloc(l->rows, cap * sizeof *v);
        if (!v) return -1;
        l->rows = v;
        l->cap = cap;
    }
    l->rows[l->n++] = *r;
    return 0;
}

typedef struct fired_ctx {
    const char *month;
    const int *thresholds;
    int nthr;
    unsigned mask;
} fired_ctx_t;

static int on_alert(const tg_alert_row_t *r, void *ud)
{
    fired_ctx_t *f = ud;
    if (strcmp(r->kind, "budget") != 0 || strcmp(r->period, f->month) != 0) return 0;
    for (int i = 0; i < f->nthr; i++)
        if (f->thresholds[i] == r->threshold) f->mask |= 1u << i;
    return 0;
}

int tg_budgets_load(tg_budgets_t *b, tg_store_t *store, int64_t now_us, tg_err_t *err)
{
    load_t l = {.b = b};
    if (tg_store_budget_list(store, NULL, on_budget, &l, err) != 0) {
        free(l.rows);
        return -1;
    }
    char month[8], first[11], last[11];
    tg_budget_period(now_us, month, first, last);
    struct tm tm;
    int period = period_of(now_us, &tm);
    /* Store reads first, outside the lock: spend and fired alerts of tenants this process
     * does not know yet in this period. */
    entry_t *fresh = calloc(l.n ? l.n : 1, sizeof *fresh);
    if (!fresh) {
        free(l.rows);
        return tg_err_set(err, "out of memory loading budgets");
    }
    for (size_t i = 0; i < l.n; i++) {
        entry_t *e = &fresh[i];
        const tg_budget_row_t *r = &l.rows[i];
        snprintf(e->tenant, sizeof e->tenant, "%s", r->tenant);
        e->budget = r->monthly_micros;
        e->hard = r->hard;
        e->nthr = r->nthresholds < MAX_THRESHOLDS ? r->nthresholds : MAX_THRESHOLDS;
        memcpy(e->thresholds, r->thresholds, (size_t)e->nthr * sizeof e->thresholds[0]);
        e->period = period;
        e->live = 1;
        pthread_mutex_lock(&b->mu);
        entry_t *old = find(b, e->tenant);
        int known = old && old->period == period;
        pthread_mutex_unlock(&b->mu);
        if (known) continue;
        if (tg_store_spend(store, e->tenant, first, last, &e->spent, err) != 0) goto fail;
        fired_ctx_t f = {.month = month, .thresholds = e->thresholds, .nthr = e->nthr};
        if (tg_store_alert_list(store, e->tenant, on_alert, &f, err) != 0) goto fail;
        e->fired = f.mask;
        e->live = 2; /* read from the store */
    }
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < l.n; i++) {
        entry_t *e = &fresh[i];
        entry_t *old = find(b, e->tenant);
        if (old && old->period == period && e->live == 1) {
            /* Known this period: keep spend, reservations; fired bits follow thresholds. */
            unsigned fired = 0;
            for (int k = 0; k < e->nthr; k++)
                for (int j = 0; j < old->nthr; j++)
                    if ((old->fired & (1u << j)) && old->thresholds[j] == e->thresholds[k])
                        fired |= 1u << k;
            e->spent = old->spent;
            e->reserved = old->reserved;
            e->fired = fired;
        }
        e->live = 1;
        check_thresholds(b, e, now_us);
    }
    free(b->v);
    b->v = fresh;
    b->n = b->cap = l.n;
    int rc = reindex(b);
    atomic_store_explicit(&b->count, rc == 0 ? l.n : 0, memory_order_release);
    pthread_mutex_unlock(&b->mu);
    free(l.rows);
    return rc == 0 ? 0 : tg_err_set(err, "out of memory indexing budgets");
fail:
    free(fresh);
    free(l.rows);
    return -1;
}

/* ---- admission and settling ---------------------------------------------- */

int tg_budgets_reserve(tg_budgets_t *b, const char *tenant, int64_t est_micros, int64_t now_us,
                       int64_t *reserved, char *message, size_t cap)
{
    *reserved = 0;
    if (est_micros < 0) est_micros = 0;
    if (atomic_load_explicit(&b->count, memory_order_acquire) == 0) return 0;
    pthread_mutex_lock(&b->mu);
    entry_t *e = find(b, tenant);
    if (!e) {
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    roll(e, now_us);
    if (e->hard && (__int128)e->spent + e->reserved >= e->budget) {
        char s[32], bud[32];
        tg_money_format(e->spent, s, sizeof s);
        tg_money_format(e->budget, bud, sizeof bud);
        snprintf(message, cap, "monthly budget reached (spend %s USD of %s USD)", s, bud);
        pthread_mutex_unlock(&b->mu);
        return 1;
    }
    e->reserved = e->reserved > INT64_MAX - est_micros ? INT64_MAX : e->reserved + est_micros;
    *reserved = est_micros;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

void tg_budgets_settle(tg_budgets_t *b, const char *tenant, int64_t reserved, int64_t actual_micros,
                       int64_t now_us)
{
    /* Nothing was reserved when there was no budget; a budget loaded since is settled
     * under the lock as usual. */
    if (reserved == 0 && atomic_load_explicit(&b->count, memory_order_acquire) == 0) return;
    pthread_mutex_lock(&b->mu);
    entry_t *e = find(b, tenant);
    if (e) {
        roll(e, now_us);
        e->reserved -= reserved;
        if (e->reserved < 0) e->reserved = 0; /* reserved in a month since rolled over */
        if (actual_micros > 0)
            e->spent = e->spent > INT64_MAX - actual_micros ? INT64_MAX : e->spent + actual_micros;
        check_thresholds(b, e, now_us);
    }
    pthread_mutex_unlock(&b->mu);
}

void tg_budgets_set_notice(tg_budgets_t *b, tg_budget_notice_fn fn, void *ud)
{
    pthread_mutex_lock(&b->mu);
    b->notice = fn;
    b->notice_ud = ud;
    pthread_mutex_unlock(&b->mu);
}

void tg_budget_notice(const tg_alert_row_t *r, tg_notice_t *n)
{
    char s[32], bud[32];
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "budget/%s/%s/%d", r->tenant, r->period, r->threshold);
    snprintf(n->kind, sizeof n->kind, "budget");
    snprintf(n->alarm, sizeof n->alarm, "budget");
    snprintf(n->alarm_kind, sizeof n->alarm_kind, "budget");
    snprintf(n->tenant, sizeof n->tenant, "%s", r->tenant);
    snprintf(n->state, sizeof n->state, "firing");
    snprintf(n->severity, sizeof n->severity, "%s", r->threshold >= 100 ? "critical" : "warning");
    n->value = r->budget_micros > 0 ? (double)r->spend_micros / (double)r->budget_micros : 0;
    n->threshold = r->threshold / 100.0;
    n->time_us = n->started_us = r->fired_us;
    tg_money_format(r->spend_micros, s, sizeof s);
    tg_money_format(r->budget_micros, bud, sizeof bud);
    snprintf(n->summary, sizeof n->summary,
             "tenant %s reached %d%% of its monthly budget for %s (spend %s USD of %s USD)",
             r->tenant, r->threshold, r->period, s, bud);
}

int tg_budgets_flush(tg_budgets_t *b, tg_store_t *store, tg_err_t *err)
{
    pthread_mutex_lock(&b->mu);
    pending_t *q = b->q;
    size_t n = b->nq;
    b->q = NULL;
    b->nq = b->qcap = 0;
    tg_budget_notice_fn notice = b->notice;
    void *notice_ud = b->notice_ud;
    pthread_mutex_unlock(&b->mu);
    int rc = 0;
    size_t done = 0;
    for (; done < n; done++) {
        const tg_alert_row_t *r = &q[done].row;
        int inserted = 0;
        if (notice) { /* the notice first: see tg_budgets_set_notice */
            tg_notice_t nt;
            tg_budget_notice(r, &nt);
            if (notice(notice_ud, store, &nt, err) != 0) {
                rc = -1;
                break;
            }
        }
        if (tg_store_alert_add(store, r, &inserted, err) != 0) {
            rc = -1;
            break;
        }
        if (!inserted) continue;
        char s[32], bud[32];
        tg_money_format(r->spend_micros, s, sizeof s);
        tg_money_format(r->budget_micros, bud, sizeof bud);
        TG_WARN("budget alert: tenant %s reached %d%% of its monthly budget for %s "
                "(spend %s USD of %s USD)",
                r->tenant, r->threshold, r->period, s, bud);
    }
    if (done < n) {
        /* The store refused: put the rest back for the next tick. */
        pthread_mutex_lock(&b->mu);
        for (size_t i = done; i < n; i++) {
            if (b->nq == b->qcap) {
                size_t cap = b->qcap ? b->qcap * 2 : 8;
                pending_t *nq = realloc(b->q, cap * sizeof *nq);
                if (!nq) break;
                b->q = nq;
                b->qcap = cap;
            }
            b->q[b->nq++] = q[i];
        }
        pthread_mutex_unlock(&b->mu);
    }
    free(q);
    return rc;
}

int tg_budgets_terms(tg_budgets_t *b, const char *tenant, int64_t now_us, int64_t *budget,
                     int *hard, int64_t *spent)
{
    if (atomic_load_explicit(&b->count, memory_order_acquire) == 0) return -1;
    pthread_mutex_lock(&b->mu);
    entry_t *e = find(b, tenant);
    if (e) {
        roll(e, now_us);
        *budget = e->budget;
        *hard = e->hard;
        *spent = e->spent;
    }
    pthread_mutex_unlock(&b->mu);
    return e ? 0 : -1;
}

void tg_budgets_observe(tg_budgets_t *b, const char *tenant, int64_t spent, int64_t now_us)
{
    if (atomic_load_explicit(&b->count, memory_order_acquire) == 0) return;
    pthread_mutex_lock(&b->mu);
    entry_t *e = find(b, tenant);
    if (e) {
        roll(e, now_us);
        if (spent > e->spent) {
            e->spent = spent;
            check_thresholds(b, e, now_us);
        }
    }
    pthread_mutex_unlock(&b->mu);
}

int tg_budgets_state(tg_budgets_t *b, const char *tenant, int64_t *spent, int64_t *reserved,
                     int64_t *budget)
{
    pthread_mutex_lock(&b->mu);
    entry_t *e = find(b, tenant);
    if (e) {
        *spent = e->spent;
        *reserved = e->reserved;
        *budget = e->budget;
    }
    pthread_mutex_unlock(&b->mu);
    return e ? 0 : -1;
}

int tg_budgets_uses(tg_budgets_t *b, int64_t now_us, tg_budget_use_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct tm tm;
    int period = period_of(now_us, &tm);
    pthread_mutex_lock(&b->mu);
    tg_budget_use_t *v = b->n ? malloc(b->n * sizeof *v) : NULL;
    if (b->n && !v) {
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        const entry_t *e = &b->v[i];
        memcpy(v[i].tenant, e->tenant, sizeof v[i].tenant);
        v[i].spent = e->period == period ? e->spent : 0; /* not rolled yet: a new month */
        v[i].budget = e->budget;
    }
    *n = b->n;
    pthread_mutex_unlock(&b->mu);
    *out = v;
    return 0;
}
