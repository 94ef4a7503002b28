/* The alarm engine: see alarm.h for the windows, the baseline and the states.
 *
 * Tenants live in a fixed array (slot 0 is the process-wide one) found through an
 * open-addressing index by name; each holds its ring of snapshots and one rstate_t per
 * rule. Nothing here allocates per tick once a tenant has its slot. */
#include "alarm/alarm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sizes.h"

typedef struct snap {
    int64_t t;
    uint64_t req, err, cost;
    uint64_t b[TG_ALARM_BUCKETS];
} snap_t;

typedef struct rstate {
    tg_alarm_state_t state;
    int streak; /* pending: fires in a row since; firing: clears in a row */
    int64_t seq;
    int64_t since_us, started_us, updated_us;
    double value, level;
    double base; /* EWMA of previous windows' values */
    int nbase;   /* windows folded in */
    int64_t last_fold_us;
} rstate_t;

typedef struct tenant {
    char name[TG_TENANT_SIZE];
    snap_t ring[TG_ALARM_RING];
    int head, count; /* ring[head] is the newest of count */
    rstate_t *rs;    /* [nrules] */
} tenant_t;

struct tg_alarm_engine {
    tg_alarm_conf_t *rules;
    size_t nrules;
    int64_t spacing_us;
    tenant_t **tenants; /* [cap], made when first seen (~7.3 KiB each); slot 0 = the
                           process-wide one ("") */
    size_t cap, n;
    uint32_t *index; /* slot + 1 by hash of the name; 0 = empty */
    size_t imask;
    int64_t last_tick_us;
    tg_alarm_transition_t *out;
    size_t nout, outcap;
};

static const char *const state_names[] = {"ok", "pending", "firing", "resolved"};

const char *tg_alarm_state_name(tg_alarm_state_t s)
{
    return (unsigned)s < 4 ? state_names[s] : "?";
}

int tg_alarm_state_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, state_names[i])) return i;
    return -1;
}

/* ---- rules ------------------------------------------------------------------------- */

static void rules_free(tg_alarm_conf_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].name);
        free(r[i].severity);
    }
    free(r);
}

static int has_window(tg_alarm_kind_t k)
{
    return k == TG_ALARM_ERROR_RATE || k == TG_ALARM_LATENCY || k == TG_ALARM_SPEND_RATE;
}

static void rstate_init(rstate_t *s)
{
    memset(s, 0, sizeof *s);
    s->last_fold_us = -1; /* set at the first evaluation */
}

int tg_alarm_set_rules(tg_alarm_engine_t *e, const tg_alarm_conf_t *rules, size_t n)
{
    tg_alarm_conf_t *nr = calloc(n ? n : 1, sizeof *nr);
    rstate_t **nrs = calloc(e->n ? e->n : 1, sizeof *nrs);
    int ok = nr && nrs;
    for (size_t i = 0; ok && i < n; i++) {
        nr[i] = rules[i];
        nr[i].name = strdup(rules[i].name ? rules[i].name : "");
        nr[i].severity = strdup(rules[i].severity ? rules[i].severity : "warning");
        ok = nr[i].name && nr[i].severity;
    }
    for (size_t t = 0; ok && t < e->n; t++)
        ok = (nrs[t] = calloc(n ? n : 1, sizeof(rstate_t))) != NULL;
    if (!ok) {
        if (nrs)
            for (size_t t = 0; t < e->n; t++)
                free(nrs[t]);
        free(nrs);
        if (nr) rules_free(nr, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t old = e->nrules;
        for (size_t j = 0; j < e->nrules; j++)
            if (!strcmp(e->rules[j].name, nr[i].name) && e->rules[j].kind == nr[i].kind) old = j;
        for (size_t t = 0; t < e->n; t++) {
            if (old < e->nrules)
                nrs[t][i] = e->tenants[t]->rs[old];
            else
                rstate_init(&nrs[t][i]);
        }
    }
    for (size_t t = 0; t < e->n; t++) {
        free(e->tenants[t]->rs);
        e->tenants[t]->rs = nrs[t];
    }
    free(nrs);
    rules_free(e->rules, e->nrules);
    e->rules = nr;
    e->nrules = n;
    int64_t longest = 0;
    for (size_t i = 0; i < n; i++)
        if (has_window(nr[i].kind) && nr[i].window_ms > longest) longest = nr[i].window_ms;
    e->spacing_us = longest * 1000 / (TG_ALARM_RING - 8);
    return 0;
}

/* ---- tenants ----------------------------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* The slot of name, made when absent and there is room; -1 otherwise. */
static int tenant_slot(tg_alarm_engine_t *e, const char *name, int create)
{
    size_t i = hash_name(name) & e->imask;
    for (; e->index[i]; i = (i + 1) & e->imask)
        if (!strncmp(e->tenants[e->index[i] - 1]->name, name, TG_TENANT_SIZE - 1))
            return (int)e->index[i] - 1;
    if (!create || e->n == e->cap) return -1;
    tenant_t *t = calloc(1, sizeof *t);
    if (!t) return -1;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rs = calloc(e->nrules ? e->nrules : 1, sizeof *t->rs);
    if (!t->rs) {
        free(t);
        return -1;
    }
    e->tenants[e->n] = t;
    for (size_t r = 0; r < e->nrules; r++)
        rstate_init(&t->rs[r]);
    e->index[i] = (uint32_t)e->n + 1;
    return (int)e->n++;
}

tg_alarm_engine_t *tg_alarm_new(size_t max_tenants)
{
    tg_alarm_engine_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->cap = max_tenants + 2; /* "_other" and the process-wide slot */
    size_t isz = 16;
    while (isz < e->cap * 2)
        isz *= 2;
    e->imask = isz - 1;
    e->tenants = calloc(e->cap, sizeof *e->tenants);
    e->index = calloc(isz, sizeof *e->index);
    e->rules = calloc(1, sizeof *e->rules);
    if (!e->tenants || !e->index || !e->rules || tenant_slot(e, "", 1) != 0) {
        tg_alarm_free(e);
        return NULL;
    }
    return e;
}

void tg_alarm_free(tg_alarm_engine_t *e)
{
    if (!e) return;
    for (size_t t = 0; t < e->n; t++) {
        free(e->tenants[t]->rs);
        free(e->tenants[t]);
    }
    free(e->tenants);
    free(e->index);
    rules_free(e->rules, e->nrules);
    free(e->out);
    free(e);
}

int tg_alarm_rule_index(const tg_alarm_engine_t *e, const char *name)
{
    for (size_t r = 0; r < e->nrules; r++)
        if (!strcmp(e->rules[r].name, name)) return (int)r;
    return -1;
}

int tg_alarm_restore(tg_alarm_engine_t *e, const char *rule, const char *tenant,
                     tg_alarm_state_t state, int64_t seq, int64_t since_us, int64_t started_us)
{
    size_t r = 0;
    while (r < e->nrules && strcmp(e->rules[r].name, rule))
        r++;
    if (r == e->nrules) return 0;
    int slot = tenant_slot(e, tenant, 1);
    if (slot < 0) return -1;
    if ((e->rules[r].kind == TG_ALARM_QUEUE) != (slot == 0)) return 0; /* not this rule's */
    rstate_t *s = &e->tenants[slot]->rs[r];
    s->state = state;
    s->seq = seq;
    s->since_us = since_us;
    s->started_us = started_us;
    return 0;
}

int tg_alarm_raise_seq(tg_alarm_engine_t *e, const char *rule, const char *tenant, int64_t seq)
{
    int r = tg_alarm_rule_index(e, rule);
    if (r < 0) return 0;
    int slot = tenant_slot(e, tenant, 1);
    if (slot < 0) return -1;
    rstate_t *s = &e->tenants[slot]->rs[r];
    if (s->seq < seq) s->seq = seq;
    return 0;
}

/* ---- measuring ----------------------------------------------------------------------- */

double tg_alarm_quantile_ms(const uint64_t *d, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < TG_ALARM_BUCKETS; i++)
        total += d[i];
    if (!total) return 0;
    double rank = q * (double)total, cum = 0;
    for (int i = 0; i < TG_ALARM_BUCKETS; i++) {
        double lo = i ? (double)tg_metrics_bucket_us[i - 1] : 0;
        if (i == TG_ALARM_BUCKETS - 1) return lo / 1000; /* +Inf: its lower bound */
        if (d[i] && cum + (double)d[i] >= rank) {
            double hi = (double)tg_metrics_bucket_us[i];
            return (lo + (hi - lo) * (rank - cum) / (double)d[i]) / 1000;
        }
        cum += (double)d[i];
    }
    return 0;
}

/* The snapshot a window of w_us ending now starts from: the newest one at least w_us old,
 * else the oldest there is. NULL when the ring is empty. */
static const snap_t *window_start(const tenant_t *t, int64_t now, int64_t w_us)
{
    const snap_t *best = NULL;
    for (int k = 0; k < t->count; k++) {
        const snap_t *s = &t->ring[(t->head - k + TG_ALARM_RING) % TG_ALARM_RING];
        best = s;
        if (now - s->t >= w_us) break;
    }
    return best;
}

typedef struct meas {
    double value;
    uint64_t count; /* requests in the window (1 for quota and queue when known) */
} meas_t;

static meas_t measure(const tg_alarm_conf_t *r, const tenant_t *t, const snap_t *cur,
                      const tg_alarm_inputs_t *in, const tg_alarm_tenant_in_t *ti, int64_t now)
{
    meas_t m = {0, 0};
    if (r->kind == TG_ALARM_QUOTA) {
        if (ti && ti->quota >= 0) m = (meas_t){ti->quota, 1};
        return m;
    }
    if (r->kind == TG_ALARM_QUEUE) {
        if (in->queue >= 0) m = (meas_t){in->queue, 1};
        return m;
    }
    const snap_t *s = window_start(t, now, r->window_ms * 1000);
    if (!s) return m;
    uint64_t req = cur->req - s->req, err = cur->err - s->err;
    switch (r->kind) {
    case TG_ALARM_ERROR_RATE:
        m.count = req;
        m.value = req ? (double)err / (double)req : 0;
        break;
    case TG_ALARM_LATENCY: {
        uint64_t d[TG_ALARM_BUCKETS];
        for (int i = 0; i < TG_ALARM_BUCKETS; i++) {
            d[i] = cur->b[i] - s->b[i];
            m.count += d[i];
        }
        m.value = tg_alarm_quantile_ms(d, r->quantile);
        break;
    }
    case TG_ALARM_SPEND_RATE: {
        int64_t span = now - s->t;
        m.count = req;
        m.value = span > 0 ? (double)(cur->cost - s->cost) * 3600e6 / (double)span : 0;
        break;
    }
    default: break;
    }
    return m;
}

/* ---- judging ----------------------------------------------------------------------- */

static int baseline_known(const tg_alarm_conf_t *r, const rstate_t *s)
{
    return r->baseline_factor > 0 && s->nbase >= TG_ALARM_WARMUP;
}

static const char *unit_fmt(const tg_alarm_conf_t *r, double v, char *buf, size_t cap)
{
    switch (r->kind) {
    case TG_ALARM_QUOTA:
    case TG_ALARM_QUEUE:
    case TG_ALARM_ERROR_RATE: snprintf(buf, cap, "%.1f%%", v * 100); break;
    case TG_ALARM_LATENCY: snprintf(buf, cap, "%.0f ms", v); break;
    case TG_ALARM_SPEND_RATE: snprintf(buf, cap, "%.2f USD/h", v / 1e6); break;
    }
    return buf;
}

static const char *what_of(tg_alarm_kind_t k)
{
    switch (k) {
    case TG_ALARM_QUOTA: return "limit utilisation";
    case TG_ALARM_ERROR_RATE: return "error rate";
    case TG_ALARM_LATENCY: return "latency";
    case TG_ALARM_SPEND_RATE: return "spend rate";
    case TG_ALARM_QUEUE: return "event queue";
    }
    return "value";
}

static int emit(tg_alarm_engine_t *e, size_t ri, int slot, rstate_t *s, tg_alarm_state_t to,
                int64_t now)
{
    if (e->nout == e->outcap) {
        size_t cap = e->outcap ? e->outcap * 2 : 16;
        tg_alarm_transition_t *n = realloc(e->out, cap * sizeof *n);
        if (!n) return -1; /* the state does not move: tried again next tick */
        e->out = n;
        e->outcap = cap;
    }
    const tg_alarm_conf_t *r = &e->rules[ri];
    const tenant_t *t = e->tenants[slot];
    tg_alarm_transition_t *x = &e->out[e->nout++];
    memset(x, 0, sizeof *x);
    x->from = s->state;
    x->to = to;
    x->seq = ++s->seq;
    x->rule = ri;
    x->tenant_id = slot;
    if (to == TG_ALARM_FIRING) s->started_us = now;
    s->state = to;
    s->since_us = now;
    s->streak = 0;
    tg_notice_t *nt = &x->notice;
    snprintf(nt->id, sizeof nt->id, "alarm/%s/%s/%lld", r->name, slot ? t->name : "-",
             (long long)x->seq);
    snprintf(nt->kind, sizeof nt->kind, "alarm");
    snprintf(nt->alarm, sizeof nt->alarm, "%s", r->name);
    snprintf(nt->alarm_kind, sizeof nt->alarm_kind, "%s", tg_alarm_kind_name(r->kind));
    snprintf(nt->tenant, sizeof nt->tenant, "%s", slot ? t->name : "");
    snprintf(nt->state, sizeof nt->state, "%s", tg_alarm_state_name(to));
    snprintf(nt->severity, sizeof nt->severity, "%s", r->severity);
    nt->value = s->value;
    nt->threshold = s->level;
    nt->baseline = baseline_known(r, s) ? s->base : 0;
    nt->window_s = r->window_ms / 1000;
    nt->time_us = now;
    nt->started_us = to == TG_ALARM_PENDING ? now : s->started_us;
    char v[48], l[48], win[32] = "";
    if (r->window_ms) snprintf(win, sizeof win, " over %lds", r->window_ms / 1000);
    snprintf(nt->summary, sizeof nt->summary, "%s: %s %s%s %s (fires at %s)%s%s: %s", r->name,
             what_of(r->kind), unit_fmt(r, s->value, v, sizeof v), win,
             slot ? "for tenant" : "process-wide", unit_fmt(r, s->level, l, sizeof l),
             slot ? " " : "", slot ? t->name : "", tg_alarm_state_name(to));
    return 0;
}

/* now: the wall clock (dates); clk: the windows' clock. */
static void judge(tg_alarm_engine_t *e, size_t ri, int slot, meas_t m, int64_t now, int64_t clk)
{
    const tg_alarm_conf_t *r = &e->rules[ri];
    rstate_t *s = &e->tenants[slot]->rs[ri];
    int known = baseline_known(r, s);
    double level = r->threshold;
    if (r->kind == TG_ALARM_LATENCY && (double)r->min_ms > level) level = (double)r->min_ms;
    if (known && r->baseline_factor * s->base > level) level = r->baseline_factor * s->base;
    /* Latency and spend without a threshold are anomaly rules: nothing to judge until the
     * tenant has a baseline. */
    int judged = !(has_window(r->kind) && r->threshold <= 0 && !known);
    uint64_t min_req = has_window(r->kind) ? (uint64_t)r->min_requests : 1;
    if (min_req == 0) min_req = 1;
    int fires = judged && m.count >= min_req && m.value > 0 && m.value >= level;
    int clear = !judged || m.count < min_req || m.value < level * (1 - r->resolve_margin);
    s->value = m.value;
    s->level = level;
    s->updated_us = now;
    switch (s->state) {
    case TG_ALARM_OK:
        if (fires) emit(e, ri, slot, s, TG_ALARM_PENDING, now);
        break;
    case TG_ALARM_PENDING:
        if (fires) {
            if (++s->streak >= r->for_evals) emit(e, ri, slot, s, TG_ALARM_FIRING, now);
        } else if (clear) {
            emit(e, ri, slot, s, TG_ALARM_RESOLVED, now);
        }
        break;
    case TG_ALARM_FIRING:
        if (!clear)
            s->streak = 0;
        else if (++s->streak >= r->for_evals)
            emit(e, ri, slot, s, TG_ALARM_RESOLVED, now);
        break;
    case TG_ALARM_RESOLVED:
        emit(e, ri, slot, s, fires ? TG_ALARM_PENDING : TG_ALARM_OK, now);
        break;
    }
    /* The window just ended goes into the baseline after it was judged. */
    if (!has_window(r->kind) || r->baseline_factor <= 0) return;
    if (s->last_fold_us < 0) s->last_fold_us = clk;
    if (clk - s->last_fold_us < r->window_ms * 1000) return;
    s->last_fold_us = clk;
    if (m.count < min_req) return;
    s->base =
        s->nbase ? (1 - TG_ALARM_EWMA_ALPHA) * s->base + TG_ALARM_EWMA_ALPHA * m.value : m.value;
    s->nbase++;
}

static void push(tenant_t *t, const snap_t *s)
{
    t->head = (t->head + 1) % TG_ALARM_RING;
    t->ring[t->head] = *s;
    if (t->count < TG_ALARM_RING) t->count++;
}

size_t tg_alarm_tick(tg_alarm_engine_t *e, const tg_alarm_inputs_t *in, int64_t now_us,
                     const tg_alarm_transition_t **out)
{
    int64_t clk = in->mono_us ? in->mono_us : now_us;
    e->nout = 0;
    for (size_t i = 0; i < in->ntenants; i++) {
        const tg_alarm_tenant_in_t *ti = &in->tenants[i];
        if (!ti->tenant || !ti->tenant[0]) continue; /* "" is the process-wide slot */
        int slot = tenant_slot(e, ti->tenant, 1);
        if (slot < 0) continue;
        tenant_t *t = e->tenants[slot];
        snap_t cur = {.t = clk, .req = ti->requests, .err = ti->errors, .cost = ti->cost_micros};
        memcpy(cur.b, ti->buckets, sizeof cur.b);
        if (!t->count) {
            /* First seen: its counters were zero at the previous tick (they start at zero
             * with the process). At the first tick there is no such instant: the totals
             * so far start its history. */
            snap_t zero = {.t = e->last_tick_us};
            push(t, e->last_tick_us ? &zero : &cur);
        }
        for (size_t r = 0; r < e->nrules; r++)
            if (e->rules[r].kind != TG_ALARM_QUEUE)
                judge(e, r, slot, measure(&e->rules[r], t, &cur, in, ti, clk), now_us, clk);
        if (clk - t->ring[t->head].t >= e->spacing_us) push(t, &cur);
    }
    for (size_t r = 0; r < e->nrules; r++)
        if (e->rules[r].kind == TG_ALARM_QUEUE)
            judge(e, r, 0, measure(&e->rules[r], e->tenants[0], NULL, in, NULL, clk), now_us, clk);
    e->last_tick_us = clk;
    *out = e->out;
    return e->nout;
}

static void status_fill(tg_alarm_engine_t *e, size_t r, size_t t, tg_alarm_status_t *st)
{
    const rstate_t *s = &e->tenants[t]->rs[r];
    *st = (tg_alarm_status_t){
        .rule = e->rules[r].name,
        .tenant = e->tenants[t]->name,
        .conf = &e->rules[r],
        .rule_idx = r,
        .tenant_id = (int)t,
        .state = s->state,
        .value = s->value,
        .level = s->level,
        .baseline = baseline_known(&e->rules[r], s) ? s->base : 0,
        .since_us = s->since_us,
        .started_us = s->started_us,
        .updated_us = s->updated_us,
        .seq = s->seq,
    };
}

int tg_alarm_status_of(tg_alarm_engine_t *e, size_t rule, int tenant_id, tg_alarm_status_t *out)
{
    if (rule >= e->nrules || tenant_id < 0 || (size_t)tenant_id >= e->n) return -1;
    status_fill(e, rule, (size_t)tenant_id, out);
    return 0;
}

int tg_alarm_each(tg_alarm_engine_t *e, int all, int (*cb)(const tg_alarm_status_t *, void *),
                  void *ud)
{
    for (size_t t = 0; t < e->n; t++)
        for (size_t r = 0; r < e->nrules; r++) {
            const rstate_t *s = &e->tenants[t]->rs[r];
            if (s->state == TG_ALARM_OK && !(all && s->seq > 0)) continue;
            tg_alarm_status_t st;
            status_fill(e, r, t, &st);
            int rc = cb(&st, ud);
            if (rc) return rc;
        }
    return 0;
}
