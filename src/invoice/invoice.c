/* Plan pricing: measured quantities to invoice lines, in integer micro-USD (invoice.h).
 *
 * Products are exact without a wider integer type: q * p / S is split into whole blocks
 * of S and the remainders (q = a S + r, p = b S + c), so every partial product fits in
 * int64 whenever the result does, and each one is checked (__builtin_*_overflow). A float
 * was rejected: a double holds 53 bits, and a month of tokens times a price in micro-USD
 * needs more to stay exact to the micro-dollar. */
#include "invoice/invoice.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/clock.h"
#include "util/modelname.h"

#define DAY_US 86400000000LL

static int overflow(tg_err_t *err)
{
    return tg_err_set(err, "amount too large: it does not fit in 64 bits of micro-USD");
}

int tg_invoice_amount(int64_t q, int64_t unit, int64_t scale, int64_t *out, tg_err_t *err)
{
    if (q < 0 || unit < 0 || scale <= 0 || scale > 1000000000LL)
        return tg_err_set(err, "invalid amount: %lld units at %lld per %lld", (long long)q,
                          (long long)unit, (long long)scale);
    int64_t a = q / scale, r = q % scale, b = unit / scale, c = unit % scale;
    /* q p / S = a b S + a c + r b + r c / S; r c < S^2 <= 10^18 always fits. */
    int64_t t, sum = 0;
    if (__builtin_mul_overflow(a, b, &t) || __builtin_mul_overflow(t, scale, &t) ||
        __builtin_add_overflow(sum, t, &sum))
        return overflow(err);
    if (__builtin_mul_overflow(a, c, &t) || __builtin_add_overflow(sum, t, &sum))
        return overflow(err);
    if (__builtin_mul_overflow(r, b, &t) || __builtin_add_overflow(sum, t, &sum))
        return overflow(err);
    if (__builtin_add_overflow(sum, (r * c + scale / 2) / scale, &sum)) return overflow(err);
    *out = sum;
    return 0;
}

int tg_invoice_month(const char *s, int64_t *start_us, int64_t *next_us)
{
    /* "YYYY-MM-01" checked by tg_parse_day; the next month is the one 31 days on (a month
     * has 28 to 31). */
    char day[11], next[8];
    if (strlen(s) != 7 || s[4] != '-') return -1;
    memcpy(day, s, 7);
    memcpy(day + 7, "-01", 4);
    if (tg_parse_day(day, start_us) != 0 || *start_us < 0) return -1;
    if (strcmp(s, "9999-12") == 0) {
        *next_us = *start_us + 31 * DAY_US;
        return 0;
    }
    tg_invoice_month_of(*start_us + 31 * DAY_US, next);
    memcpy(day, next, 7);
    return tg_parse_day(day, next_us);
}

void tg_invoice_month_of(int64_t us, char buf[8])
{
    char day[11];
    tg_utc_day(us, day);
    memcpy(buf, day, 7);
    buf[7] = '\0';
}

int tg_invoice_month_prev(const char *month, char buf[8])
{
    int64_t start, next;
    if (tg_invoice_month(month, &start, &next) != 0 || strcmp(month, "1970-01") == 0) return -1;
    tg_invoice_month_of(start - 1, buf);
    return 0;
}

static int has_match(int meter)
{
    return meter == TG_PMETER_TOKENS_IN || meter == TG_PMETER_TOKENS_OUT ||
           meter == TG_PMETER_TOOL_CALLS;
}

static int check_meter(const tg_plan_meter_t *m, int i, tg_err_t *err)
{
    if (m->meter < 0 || m->meter >= TG_PMETER_COUNT)
        return tg_err_set(err, "plan meter %d: unknown meter %d", i + 1, m->meter);
    const char *name = tg_plan_meter_name(m->meter);
    size_t mlen = strnlen(m->match, sizeof m->match);
    if (mlen == sizeof m->match) return tg_err_set(err, "plan meter %s: match too long", name);
    if (has_match(m->meter) && mlen == 0)
        return tg_err_set(err, "plan meter %s needs a %s (or \"*\")", name,
                          m->meter == TG_PMETER_TOOL_CALLS ? "tool" : "model");
    if (!has_match(m->meter) && mlen != 0)
        return tg_err_set(err, "plan meter %s takes no model or tool (\"%s\")", name, m->match);
    if (m->model < 0 || m->model >= TG_PMODEL_COUNT)
        return tg_err_set(err, "plan meter %s: unknown price model %d", name, m->model);
    if (m->included < 0) return tg_err_set(err, "plan meter %s: included is negative", name);
    if (m->flat_micros < 0 || (m->model != TG_PMODEL_FLAT && m->flat_micros != 0))
        return tg_err_set(err, "plan meter %s: a flat amount belongs to the flat model only", name);
    int want_min = m->model == TG_PMODEL_FLAT ? 0 : 1;
    int want_max = m->model == TG_PMODEL_FLAT ? 0 : m->model == TG_PMODEL_UNIT ? 1 : TG_PLAN_TIERS;
    if (m->ntiers < want_min || m->ntiers > want_max)
        return tg_err_set(err, "plan meter %s: %s takes %d to %d tiers, not %d", name,
                          tg_plan_model_name(m->model), want_min, want_max, m->ntiers);
    int64_t prev = 0;
    for (int t = 0; t < m->ntiers; t++) {
        const tg_plan_tier_t *tr = &m->tiers[t];
        int last = t == m->ntiers - 1;
        if (tr->unit_micros < 0)
            return tg_err_set(err, "plan meter %s tier %d: negative price", name, t + 1);
        if (last && tr->up_to != -1)
            return tg_err_set(err, "plan meter %s: the last tier must have no end", name);
        if (!last && tr->up_to <= prev)
            return tg_err_set(err, "plan meter %s tier %d: ends at %lld, not above %lld", name,
                              t + 1, (long long)tr->up_to, (long long)prev);
        if (!last) prev = tr->up_to;
    }
    return 0;
}

int tg_invoice_plan_check(const tg_plan_t *p, tg_err_t *err)
{
    size_t n = strnlen(p->name, sizeof p->name);
    if (n == 0 || n == sizeof p->name) return tg_err_set(err, "plan name empty or too long");
    if (p->base_micros < 0) return tg_err_set(err, "plan %s: negative base fee", p->name);
    if (p->nmeters < 0 || p->nmeters > TG_PLAN_METERS)
        return tg_err_set(err, "plan %s: %d meters (at most %d)", p->name, p->nmeters,
                          TG_PLAN_METERS);
    for (int i = 0; i < p->nmeters; i++) {
        if (check_meter(&p->meters[i], i, err) != 0) return -1;
        for (int j = 0; j < i; j++)
            if (p->meters[j].meter == p->meters[i].meter &&
                strcasecmp(p->meters[j].match, p->meters[i].match) == 0)
                return tg_err_set(err, "plan %s: meter %s%s%s given twice", p->name,
                                  tg_plan_meter_name(p->meters[i].meter),
                                  p->meters[i].match[0] ? ":" : "", p->meters[i].match);
    }
    return 0;
}

/* The meter of kind among p's that takes name: one naming it (models: or a base of it),
 * else the "*" one; -1 when none. */
static int meter_for(const tg_plan_t *p, int kind, const char *name)
{
    size_t len = strlen(name);
    if (len) {
        for (int tries = 0; tries < TG_MODELNAME_TRIES && len; tries++) {
            for (int i = 0; i < p->nmeters; i++) {
                const tg_plan_meter_t *m = &p->meters[i];
                if (m->meter != kind || strcmp(m->match, "*") == 0) continue;
                if (kind == TG_PMETER_TOOL_CALLS
                        ? strcmp(m->match, name) == 0
                        : strlen(m->match) == len && strncasecmp(m->match, name, len) == 0)
                    return i;
            }
            if (kind == TG_PMETER_TOOL_CALLS) break;
            len = tg_modelname_base(name, len);
        }
    }
    for (int i = 0; i < p->nmeters; i++)
        if (p->meters[i].meter == kind && strcmp(p->meters[i].match, "*") == 0) return i;
    return -1;
}

static int add_to(int64_t *acc, int64_t v, tg_err_t *err)
{
    if (v < 0) return tg_err_set(err, "negative usage quantity %lld", (long long)v);
    if (__builtin_add_overflow(*acc, v, acc))
        return tg_err_set(err, "usage quantity too large: it does not fit in 64 bits");
    return 0;
}

int tg_invoice_measure(const tg_plan_t *p, const tg_plan_usage_row_t *row, int64_t *measured,
                       tg_err_t *err)
{
    const char *model = row->model ? row->model : "", *tool = row->tool ? row->tool : "";
    for (int i = 0; i < p->nmeters; i++) {
        int64_t v;
        switch (p->meters[i].meter) {
        case TG_PMETER_REQUESTS: v = row->requests; break;
        case TG_PMETER_BILLABLE: v = row->billable; break;
        case TG_PMETER_GB: v = row->bytes; break;
        case TG_PMETER_AI_COST: v = row->cost_micros; break;
        default: continue; /* matched below, once per row */
        }
        if (add_to(&measured[i], v, err) != 0) return -1;
    }
    int mi = meter_for(p, TG_PMETER_TOKENS_IN, model);
    if (mi >= 0 && add_to(&measured[mi], row->tokens_in, err) != 0) return -1;
    mi = meter_for(p, TG_PMETER_TOKENS_OUT, model);
    if (mi >= 0 && add_to(&measured[mi], row->tokens_out, err) != 0) return -1;
    mi = meter_for(p, TG_PMETER_TOOL_CALLS, tool);
    if (mi >= 0 && add_to(&measured[mi], row->tool_calls, err) != 0) return -1;
    return 0;
}

static tg_invoice_line_t *new_line(tg_invoice_t *inv, int kind, const tg_plan_meter_t *m,
                                   tg_err_t *err)
{
    if (inv->nlines >= TG_INVOICE_LINES) {
        tg_err_set(err, "invoice has more than %d lines", TG_INVOICE_LINES);
        return NULL;
    }
    tg_invoice_line_t *l = &inv->lines[inv->nlines++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->meter = m ? m->meter : -1;
    if (m) snprintf(l->match, sizeof l->match, "%s", m->match);
    return l;
}

/* One tier line: n units of tier t (1-based) priced at its unit price. */
static int tier_line(tg_invoice_t *inv, const tg_plan_meter_t *m, int t, int64_t from, int64_t n,
                     int64_t *amount, tg_err_t *err)
{
    int kind = m->model == TG_PMODEL_VOLUME ? TG_LINE_VOLUME : TG_LINE_TIER;
    tg_invoice_line_t *l = new_line(inv, kind, m, err);
    if (!l) return -1;
    const tg_plan_tier_t *tr = &m->tiers[t - 1];
    l->tier = m->model == TG_PMODEL_UNIT ? 0 : t;
    l->tier_from = m->model == TG_PMODEL_UNIT ? 0 : from;
    l->tier_to = m->model == TG_PMODEL_UNIT ? -1 : tr->up_to;
    l->quantity = n;
    l->unit_micros = tr->unit_micros;
    l->scale = tg_plan_scale(m->meter);
    if (tg_invoice_amount(n, tr->unit_micros, l->scale, &l->subtotal_micros, err) != 0) return -1;
    if (__builtin_add_overflow(*amount, l->subtotal_micros, amount)) return overflow(err);
    return 0;
}

static int price_meter(tg_invoice_t *inv, const tg_plan_meter_t *m, int64_t measured,
                       int64_t *amount, tg_err_t *err)
{
    *amount = 0;
    int first = inv->nlines;
    if (m->included > 0) {
        tg_invoice_line_t *l = new_line(inv, TG_LINE_INCLUDED, m, err);
        if (!l) return -1;
        l->quantity = measured < m->included ? measured : m->included;
    }
    int64_t q = measured > m->included ? measured - m->included : 0;
    if (m->model == TG_PMODEL_FLAT) {
        tg_invoice_line_t *l = new_line(inv, TG_LINE_FLAT, m, err);
        if (!l) return -1;
        l->quantity = q;
        l->subtotal_micros = q > 0 ? m->flat_micros : 0;
        *amount = l->subtotal_micros;
        return 0;
    }
    if (m->model == TG_PMODEL_VOLUME) {
        int t = 0;
        while (t < m->ntiers - 1 && q > m->tiers[t].up_to)
            t++;
        int64_t from = t ? m->tiers[t - 1].up_to : 0;
        return tier_line(inv, m, t + 1, from, q, amount, err);
    }
    /* UNIT (one unbounded tier) and GRADUATED: each tier takes the units inside it. */
    int64_t from = 0;
    for (int t = 0; t < m->ntiers && q > from; t++) {
        int64_t to = m->tiers[t].up_to, n = (to < 0 || q < to ? q : to) - from;
        if (tier_line(inv, m, t + 1, from, n, amount, err) != 0) return -1;
        from = to;
    }
    if (inv->nlines == first || (inv->nlines == first + 1 && m->included > 0))
        return tier_line(inv, m, 1, 0, 0, amount, err); /* nothing used: one line of 0 */
    return 0;
}

int tg_invoice_price(const tg_plan_t *p, const int64_t *measured, tg_invoice_t *inv, tg_err_t *err)
{
    inv->nlines = 0;
    inv->nmeters = p->nmeters;
    inv->total_micros = 0;
    tg_invoice_line_t *base = new_line(inv, TG_LINE_BASE, NULL, err);
    if (!base) return -1;
    base->quantity = 1;
    base->subtotal_micros = p->base_micros;
    int64_t total = p->base_micros;
    for (int i = 0; i < p->nmeters; i++) {
        if (measured[i] < 0) return tg_err_set(err, "negative usage quantity");
        inv->measured[i] = measured[i];
        if (price_meter(inv, &p->meters[i], measured[i], &inv->amount_micros[i], err) != 0)
            return -1;
        if (__builtin_add_overflow(total, inv->amount_micros[i], &total)) return overflow(err);
    }
    inv->total_micros = total;
    return 0;
}

static const tg_invoice_billed_t *billed_of(const tg_invoice_billed_t *b, size_t n, int meter,
                                            const char *match)
{
    for (size_t i = 0; i < n; i++)
        if (b[i].meter == meter && strcmp(b[i].match, match) == 0) return &b[i];
    return NULL;
}

static int adjust_line(tg_invoice_t *inv, const char *for_month, int meter, const char *match,
                       int64_t dq, int64_t da, tg_err_t *err)
{
    tg_plan_meter_t m = {.meter = meter};
    snprintf(m.match, sizeof m.match, "%s", match);
    tg_invoice_line_t *l = new_line(inv, TG_LINE_ADJUST, &m, err);
    if (!l) return -1;
    l->quantity = dq;
    l->subtotal_micros = da;
    snprintf(l->for_month, sizeof l->for_month, "%s", for_month);
    if (__builtin_add_overflow(inv->total_micros, da, &inv->total_micros)) return overflow(err);
    return 0;
}

int tg_invoice_adjust(tg_invoice_t *inv, const char *for_month, const tg_plan_t *p,
                      const tg_invoice_t *now_inv, const tg_invoice_billed_t *billed,
                      size_t nbilled, int *grew, tg_err_t *err)
{
    for (int i = 0; i < p->nmeters; i++) {
        const tg_plan_meter_t *m = &p->meters[i];
        const tg_invoice_billed_t *b = billed_of(billed, nbilled, m->meter, m->match);
        int64_t dq, da;
        if (__builtin_sub_overflow(now_inv->measured[i], b ? b->measured : 0, &dq) ||
            __builtin_sub_overflow(now_inv->amount_micros[i], b ? b->amount_micros : 0, &da))
            return overflow(err);
        if (grew) grew[i] = dq > 0;
        if (dq > 0 && adjust_line(inv, for_month, m->meter, m->match, dq, da, err) != 0) return -1;
    }
    return 0;
}
