/* `tollgate invoice`: a tenant's invoice for a UTC calendar month, as a table, JSON, CSV or
 * a printable HTML page (docs/billing.md).
 *
 * An open month is priced from its events each time (usage_events with ts_us in [month
 * start, next month start), through src/invoice/), under the plan the tenant is on that
 * month (tenant_plans) in the version in force at the month's first instant. --close
 * freezes a month that has ended: its lines, total and measured meters are stored
 * (invoices, invoice_lines, invoice_meters) and from then on the invoice is printed from
 * those rows, whatever events arrive later. Late events of a closed month are billed by
 * adjustment lines on the next invoice made (any later month): the closed month priced
 * again from its events, less what was billed for it; closing that later month records
 * the closed month's meters as billed at the new values, so a difference is billed once. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan.h"
#include "invoice/invoice.h"
#include "util/clock.h"
#include "util/money.h"

#define USAGE                                                                                      \
    "usage: tollgate invoice --tenant ID|--all --month YYYY-MM [--format table|json|csv|html] "    \
    "[--out FILE|DIR] [--close]"

typedef enum { F_TABLE, F_JSON, F_CSV, F_HTML } fmt_t;
static const char *const fmt_ext[] = {"txt", "json", "csv", "html"};

/* One invoice as printed: the tenant, the month, the plan and the priced lines. */
typedef struct doc {
    tg_tenant_t tenant;
    char month[8];
    int64_t start_us, next_us;
    tg_plan_t plan;
    int have_plan; /* a closed month whose plan version is gone prints without it */
    tg_invoice_t inv;
    int closed;
    int64_t closed_us;
    /* Closed months that began before this get no adjustment (retention.events_days
     * before now; 0 = none). */
    int64_t horizon_us;
    /* A closed month's meters, as frozen and as billed since (tg_store_invoice_billed). */
    tg_invoice_billed_t *billed;
    size_t nbilled, billed_cap;
    /* For --close: the earlier closed months' meters at the values the adjustments billed. */
    tg_invoice_billed_t *rebilled;
    size_t nrebilled, rebilled_cap;
} doc_t;

/* ---- building ---------------------------------------------------------------------- */

typedef struct measure_ctx {
    const tg_plan_t *plan;
    int64_t *measured;
    tg_err_t *err;
} measure_ctx_t;

static int on_usage(const tg_plan_usage_row_t *row, void *ud)
{
    measure_ctx_t *m = ud;
    return tg_invoice_measure(m->plan, row, m->measured, m->err) == 0 ? 0 : -1;
}

/* Prices month [start, next) of tenant from its events under plan into inv. */
static int price_month(tg_store_t *store, const char *tenant, const tg_plan_t *plan, int64_t start,
                       int64_t next, tg_invoice_t *inv, tg_err_t *err)
{
    int64_t measured[TG_PLAN_METERS] = {0};
    measure_ctx_t m = {plan, measured, err};
    err->msg[0] = '\0';
    /* A row written into the store by hand is checked as plan set checks it. */
    if (tg_invoice_plan_check(plan, err) != 0) return -1;
    if (tg_store_plan_usage(store, tenant, start, next, on_usage, &m, err) != 0) return -1;
    return tg_invoice_price(plan, measured, inv, err);
}

static int collect_line(const tg_invoice_line_t *l, void *ud)
{
    tg_invoice_t *inv = ud;
    if (inv->nlines >= TG_INVOICE_LINES) return -1;
    inv->lines[inv->nlines++] = *l;
    return 0;
}

typedef struct rows {
    void *v;
    size_t n, cap;
} rows_t;

static int collect_invoice(const tg_invoice_row_t *r, void *ud)
{
    rows_t *rs = ud;
    return tg_cli_push(&rs->v, &rs->n, &rs->cap, r, sizeof *r);
}

static int collect_billed(const tg_invoice_billed_t *b, void *ud)
{
    rows_t *rs = ud;
    return tg_cli_push(&rs->v, &rs->n, &rs->cap, b, sizeof *b);
}

static int push_rebilled(doc_t *d, const char *month, int meter, const char *match,
                         int64_t measured, int64_t amount, const rows_t *billed)
{
    tg_invoice_billed_t b = {.meter = meter, .measured = measured, .amount_micros = amount};
    const tg_invoice_billed_t *was = billed->v;
    for (size_t i = 0; i < billed->n; i++)
        if (was[i].meter == meter && strcmp(was[i].match, match) == 0)
            b.was_measured = was[i].measured;
    snprintf(b.month, sizeof b.month, "%s", month);
    snprintf(b.match, sizeof b.match, "%s", match);
    return tg_cli_push((void **)&d->rebilled, &d->nrebilled, &d->rebilled_cap, &b, sizeof b);
}

/* Adjustment lines for every closed month before d->month whose events now say more than
 * was billed. A month that began before d->horizon_us is left alone: retention may have
 * purged some of its events, and the ones that came late would be purged too. */
static int adjustments(tg_store_t *store, doc_t *d, tg_err_t *err)
{
    rows_t closed = {0};
    int ret = tg_store_invoice_list(store, d->tenant.id, collect_invoice, &closed, err);
    tg_invoice_t *now_inv = ret == 0 ? malloc(sizeof *now_inv) : NULL;
    tg_plan_t *plan = now_inv ? malloc(sizeof *plan) : NULL;
    if (ret == 0 && !plan) ret = tg_err_set(err, "out of memory");
    const tg_invoice_row_t *rows = closed.v;
    for (size_t i = 0; ret == 0 && i < closed.n; i++) {
        const tg_invoice_row_t *c = &rows[i];
        if (strcmp(c->month, d->month) >= 0) continue;
        int64_t start, next;
        if (tg_invoice_month(c->month, &start, &next) != 0) continue; /* a hand-made row */
        if (start < d->horizon_us) continue;
        /* The version that priced it: the one effective at the instant stored with it. */
        int r = tg_store_plan_get(store, c->plan, c->plan_effective_us, plan, err);
        if (r == TG_STORE_NOTFOUND || (r == 0 && plan->effective_us != c->plan_effective_us)) {
            ret = tg_err_set(err,
                             "closed month %s was priced by a version of plan \"%s\" that is "
                             "gone: its late events cannot be priced",
                             c->month, c->plan);
            break;
        }
        if (r != 0 || price_month(store, d->tenant.id, plan, start, next, now_inv, err) != 0) {
            ret = -1;
            break;
        }
        rows_t billed = {0};
        int grew[TG_PLAN_METERS];
        if (tg_store_invoice_billed(store, d->tenant.id, c->month, collect_billed, &billed, err) !=
                0 ||
            tg_invoice_adjust(&d->inv, c->month, plan, now_inv, billed.v, billed.n, grew, err) !=
                0) {
            free(billed.v);
            ret = -1;
            break;
        }
        /* What closing d->month records as billed for c->month: the events' values now,
         * for the meters billed more; the others keep what was billed (never lowered). */
        for (int m = 0; ret == 0 && m < plan->nmeters; m++)
            if (grew[m])
                ret = push_rebilled(d, c->month, plan->meters[m].meter, plan->meters[m].match,
                                    now_inv->measured[m], now_inv->amount_micros[m], &billed);
        if (ret != 0 && !err->msg[0]) tg_err_set(err, "out of memory");
        free(billed.v);
    }
    free(plan);
    free(now_inv);
    free(closed.v);
    return ret;
}

/* The plan a tenant is on in a month: the tenant_plans row with the latest from_month not
 * after it. */
typedef struct plan_pick {
    const char *month;
    tg_tenant_plan_row_t best;
    int found;
} plan_pick_t;

static int pick_plan(const tg_tenant_plan_row_t *r, void *ud)
{
    plan_pick_t *pk = ud;
    if (strcmp(r->from_month, pk->month) <= 0 &&
        (!pk->found || strcmp(r->from_month, pk->best.from_month) > 0)) {
        pk->best = *r;
        pk->found = 1;
    }
    return 0;
}

/* Fills d for tenant and d->month: from the frozen rows when the month is closed, else
 * priced from the events with the adjustments of earlier closed months. An exit code. */
static int build(tg_store_t *store, const char *tenant, doc_t *d)
{
    tg_err_t err = {{0}};
    if (tg_store_tenant_get(store, tenant, &d->tenant, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", tenant);
    tg_invoice_row_t row;
    d->inv.nlines = 0;
    int r = tg_store_invoice_get(store, tenant, d->month, &row, collect_line, &d->inv, &err);
    if (r == 0) {
        d->closed = 1;
        d->closed_us = row.closed_us;
        d->inv.total_micros = row.total_micros;
        d->have_plan = tg_store_plan_get(store, row.plan, d->start_us, &d->plan, &err) == 0 &&
                       d->plan.effective_us == row.plan_effective_us;
        if (!d->have_plan) snprintf(d->plan.name, sizeof d->plan.name, "%s", row.plan);
        rows_t b = {0};
        r = tg_store_invoice_billed(store, tenant, d->month, collect_billed, &b, &err);
        d->billed = b.v;
        d->nbilled = b.n;
        d->billed_cap = b.cap;
        if (r != 0)
            return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg[0] ? err.msg : "out of memory");
        return TG_EXIT_OK;
    }
    if (r != TG_STORE_NOTFOUND)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg[0] ? err.msg : "out of memory");
    plan_pick_t pk = {.month = d->month};
    if (tg_store_tenant_plan_list(store, tenant, pick_plan, &pk, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (!pk.found)
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "tenant \"%s\" has no plan in %s (tollgate tenant set-plan)", tenant,
                             d->month);
    r = tg_store_plan_get(store, pk.best.plan, d->start_us, &d->plan, &err);
    if (r == TG_STORE_NOTFOUND)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "tenant \"%s\" is on plan \"%s\", not in force in %s",
                             tenant, pk.best.plan, d->month);
    d->have_plan = r == 0;
    if (r != 0 ||
        price_month(store, tenant, &d->plan, d->start_us, d->next_us, &d->inv, &err) != 0 ||
        adjustments(store, d, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "invoice %s %s: %s", tenant, d->month, err.msg);
    return TG_EXIT_OK;
}

/* Freezes d (an open month that has ended at now). */
static int close_month(tg_store_t *store, doc_t *d, int64_t now)
{
    if (now < d->next_us) {
        char next[8];
        tg_invoice_month_of(d->next_us, next);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s has not ended: it can be closed from %s-01",
                             d->month, next);
    }
    tg_invoice_billed_t meters[TG_PLAN_METERS];
    for (int i = 0; i < d->plan.nmeters; i++) {
        memset(&meters[i], 0, sizeof meters[i]);
        meters[i].meter = d->plan.meters[i].meter;
        snprintf(meters[i].match, sizeof meters[i].match, "%s", d->plan.meters[i].match);
        meters[i].measured = d->inv.measured[i];
        meters[i].amount_micros = d->inv.amount_micros[i];
    }
    tg_invoice_row_t row = {.plan_effective_us = d->plan.effective_us,
                            .total_micros = d->inv.total_micros,
                            .closed_us = now};
    snprintf(row.tenant, sizeof row.tenant, "%s", d->tenant.id);
    snprintf(row.month, sizeof row.month, "%s", d->month);
    snprintf(row.plan, sizeof row.plan, "%s", d->plan.name);
    tg_err_t err = {{0}};
    if (tg_store_invoice_close(store, &row, d->inv.lines, (size_t)d->inv.nlines, meters,
                               (size_t)d->plan.nmeters, d->rebilled, d->nrebilled, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    d->closed = 1;
    d->closed_us = now;
    return TG_EXIT_OK;
}

/* ---- lines as text ----------------------------------------------------------------- */

static const char *unit_name(int meter, int64_t q)
{
    switch (meter) {
    case TG_PMETER_GB: return "GB";
    case TG_PMETER_AI_COST: return "USD";
    case TG_PMETER_TOKENS_IN:
    case TG_PMETER_TOKENS_OUT: return q == 1 ? "token" : "tokens";
    case TG_PMETER_TOOL_CALLS: return q == 1 ? "call" : "calls";
    default: return q == 1 ? "request" : "requests";
    }
}

/* A quantity for people: the meter's unit text with its integer part grouped by threes
 * ("1,843,211", "24.6 GB" stays "24.6"). */
static void human_qty(int meter, int64_t q, char *buf, size_t cap)
{
    char raw[48];
    tg_cli_plan_qty_text(meter, q, raw, sizeof raw);
    size_t n = strcspn(raw, "."), o = 0;
    for (size_t i = 0; raw[i] && o + 2 < cap; i++) {
        if (i > 0 && i < n && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
}

/* What a meter counts, for people: "Input tokens, gpt-4o"; a "*" meter is "all models"
 * when the plan has no other of its kind, else "other models". */
static void meter_label(const tg_plan_t *p, int meter, const char *match, char *buf, size_t cap)
{
    int others = 0;
    for (int i = 0; i < p->nmeters; i++)
        others += p->meters[i].meter == meter && strcmp(p->meters[i].match, "*") != 0;
    const char *what = meter == TG_PMETER_REQUESTS     ? "Requests"
                       : meter == TG_PMETER_BILLABLE   ? "Billable requests"
                       : meter == TG_PMETER_GB         ? "Data transfer"
                       : meter == TG_PMETER_TOKENS_IN  ? "Input tokens"
                       : meter == TG_PMETER_TOKENS_OUT ? "Output tokens"
                       : meter == TG_PMETER_TOOL_CALLS ? "MCP tool calls"
                       : meter == TG_PMETER_AI_COST    ? "AI usage at cost"
                                                       : "?";
    int tools = meter == TG_PMETER_TOOL_CALLS;
    if (!match[0])
        snprintf(buf, cap, "%s", what);
    else if (strcmp(match, "*") == 0)
        snprintf(buf, cap, "%s, %s %s", what, others ? "other" : "all", tools ? "tools" : "models");
    else
        snprintf(buf, cap, "%s, %s", what, match);
}

/* What a line is, in words: "Billable requests, tier 2 (1,000,000 to 10,000,000)". */
static void line_desc(const doc_t *d, const tg_invoice_line_t *l, char *buf, size_t cap)
{
    char what[200], a[64], b[64];
    meter_label(&d->plan, l->meter, l->match, what, sizeof what);
    switch (l->kind) {
    case TG_LINE_BASE: snprintf(buf, cap, "Base fee, plan %s", d->plan.name); break;
    case TG_LINE_INCLUDED: snprintf(buf, cap, "%s, included in the plan", what); break;
    case TG_LINE_FLAT: snprintf(buf, cap, "%s, flat fee", what); break;
    case TG_LINE_ADJUST:
        snprintf(buf, cap, "Adjustment for %s (late events): %s", l->for_month, what);
        break;
    default:
        if (l->tier == 0) {
            snprintf(buf, cap, "%s", what);
            break;
        }
        human_qty(l->meter, l->tier_from, a, sizeof a);
        human_qty(l->meter, l->tier_to, b, sizeof b);
        const char *vol = l->kind == TG_LINE_VOLUME ? ", every unit" : "";
        if (l->tier_to < 0)
            snprintf(buf, cap, "%s, tier %d (above %s)%s", what, l->tier, a, vol);
        else if (l->tier_from == 0)
            snprintf(buf, cap, "%s, tier %d (first %s)%s", what, l->tier, b, vol);
        else
            snprintf(buf, cap, "%s, tier %d (%s to %s)%s", what, l->tier, a, b, vol);
    }
}

static void qty_text(const tg_invoice_line_t *l, char *buf, size_t cap)
{
    if (l->kind == TG_LINE_BASE) {
        snprintf(buf, cap, "1");
        return;
    }
    int neg = l->quantity < 0;
    char q[64];
    human_qty(l->meter, neg ? -l->quantity : l->quantity, q, sizeof q);
    snprintf(buf, cap, "%s%s %s",
             neg                         ? "-"
             : l->kind == TG_LINE_ADJUST ? "+"
                                         : "",
             q, unit_name(l->meter, neg ? -l->quantity : l->quantity));
}

/* "3.00 per 1M" / "0.09 per GB" / "1.20 per USD"; "" when the line has no unit price. */
static void price_text(const tg_invoice_line_t *l, char *buf, size_t cap)
{
    if (!l->scale) {
        buf[0] = '\0';
        return;
    }
    char usd[48];
    tg_money_format(l->unit_micros, usd, sizeof usd);
    snprintf(buf, cap, "%s per %s", usd,
             l->meter == TG_PMETER_GB        ? "GB"
             : l->meter == TG_PMETER_AI_COST ? "USD"
                                             : "1M");
}

/* One line as people read it, in every output. */
typedef struct line_text {
    char desc[400], qty[96], price[64], amount[48];
} line_text_t;

static void line_text(const doc_t *d, const tg_invoice_line_t *l, line_text_t *t)
{
    line_desc(d, l, t->desc, sizeof t->desc);
    qty_text(l, t->qty, sizeof t->qty);
    price_text(l, t->price, sizeof t->price);
    tg_money_format(l->subtotal_micros, t->amount, sizeof t->amount);
}

/* ---- outputs ----------------------------------------------------------------------- */

static json_t *doc_json(const doc_t *d)
{
    char usd[48], when[25], from[25], to[25];
    tg_cli_fmt_time(d->start_us, from);
    tg_cli_fmt_time(d->next_us, to);
    json_t *lines = json_array();
    for (int i = 0; i < d->inv.nlines; i++) {
        const tg_invoice_line_t *l = &d->inv.lines[i];
        char desc[400], price[64];
        line_desc(d, l, desc, sizeof desc);
        price_text(l, price, sizeof price);
        tg_money_format(l->subtotal_micros, usd, sizeof usd);
        json_t *o = json_pack(
            "{s:s, s:o, s:o, s:i, s:I, s:I, s:s, s:I, s:I, s:s, s:I, s:o}", "kind",
            tg_plan_line_kind_name(l->kind), "meter",
            l->meter < 0 ? json_null() : json_string(tg_plan_meter_name(l->meter)), "match",
            l->match[0] ? tg_cli_json_text(l->match) : json_null(), "tier", l->tier, "quantity",
            (json_int_t)l->quantity, "unit_micros", (json_int_t)l->unit_micros, "unit_price", price,
            "per", (json_int_t)l->scale, "subtotal_micros", (json_int_t)l->subtotal_micros,
            "subtotal", usd, "tier_from", (json_int_t)l->tier_from, "tier_to",
            l->tier_to < 0 || !l->tier ? json_null() : json_integer(l->tier_to));
        json_object_set_new(o, "description", tg_cli_json_text(desc));
        json_object_set_new(o, "for_month",
                            l->for_month[0] ? json_string(l->for_month) : json_null());
        json_array_append_new(lines, o);
    }
    json_t *meters = json_array();
    /* closed: as frozen, and as billed since by later invoices' adjustments */
    for (size_t i = 0; d->closed && i < d->nbilled; i++) {
        const tg_invoice_billed_t *b = &d->billed[i];
        tg_money_format(b->closed_amount_micros, usd, sizeof usd);
        json_array_append_new(meters,
                              json_pack("{s:s, s:o, s:I, s:I, s:s, s:I, s:I}", "meter",
                                        tg_plan_meter_name(b->meter), "match",
                                        b->match[0] ? tg_cli_json_text(b->match) : json_null(),
                                        "measured", (json_int_t)b->closed_measured, "amount_micros",
                                        (json_int_t)b->closed_amount_micros, "amount", usd,
                                        "billed_measured", (json_int_t)b->measured,
                                        "billed_amount_micros", (json_int_t)b->amount_micros));
    }
    for (int i = 0; !d->closed && i < d->plan.nmeters; i++) {
        const tg_plan_meter_t *m = &d->plan.meters[i];
        tg_money_format(d->inv.amount_micros[i], usd, sizeof usd);
        json_array_append_new(
            meters,
            json_pack("{s:s, s:o, s:I, s:I, s:I, s:s}", "meter", tg_plan_meter_name(m->meter),
                      "match", m->match[0] ? tg_cli_json_text(m->match) : json_null(), "measured",
                      (json_int_t)d->inv.measured[i], "included", (json_int_t)m->included,
                      "amount_micros", (json_int_t)d->inv.amount_micros[i], "amount", usd));
    }
    tg_money_format(d->inv.total_micros, usd, sizeof usd);
    tg_cli_fmt_time(d->closed_us, when);
    json_t *o =
        json_pack("{s:o, s:o, s:s, s:{s:s, s:s}, s:s, s:s, s:o, s:o, s:s, s:I, s:s}", "tenant",
                  tg_cli_json_text(d->tenant.id), "tenant_name", tg_cli_json_text(d->tenant.name),
                  "month", d->month, "period", "from", from, "to", to, "plan", d->plan.name,
                  "status", d->closed ? "closed" : "open", "lines", lines, "meters", meters,
                  "currency", "USD", "total_micros", (json_int_t)d->inv.total_micros, "total", usd);
    if (o && d->closed) json_object_set_new(o, "closed", json_string(when));
    if (o)
        json_object_set_new(o, "rounding",
                            json_string("each line: quantity x unit price / per, rounded half up "
                                        "to the micro-USD; total = sum of lines"));
    return o;
}

static int write_json(FILE *out, const doc_t *d)
{
    json_t *o = doc_json(d);
    if (!o) return -1;
    int r = json_dumpf(o, out, JSON_INDENT(2));
    json_decref(o);
    return r == 0 && fputc('\n', out) != EOF ? 0 : -1;
}

static void csv_int(FILE *out, int64_t v)
{
    fprintf(out, "%lld", (long long)v);
}

static int write_csv(FILE *out, const doc_t *d)
{
    fputs("tenant,month,kind,meter,match,tier,quantity,unit_micros,per,subtotal_micros,subtotal,"
          "for_month,description\n",
          out);
    char usd[48], desc[400];
    for (int i = 0; i <= d->inv.nlines; i++) {
        const tg_invoice_line_t *l = i < d->inv.nlines ? &d->inv.lines[i] : NULL;
        tg_cli_csv_field(out, d->tenant.id);
        fprintf(out, ",%s,%s,", d->month, l ? tg_plan_line_kind_name(l->kind) : "total");
        if (l && l->meter >= 0) fputs(tg_plan_meter_name(l->meter), out);
        fputc(',', out);
        if (l) tg_cli_csv_field(out, l->match);
        fputc(',', out);
        if (l) {
            fprintf(out, "%d,", l->tier);
            csv_int(out, l->quantity);
            fputc(',', out);
            csv_int(out, l->unit_micros);
            fputc(',', out);
            csv_int(out, l->scale);
        } else {
            fputs(",,,", out);
        }
        int64_t sub = l ? l->subtotal_micros : d->inv.total_micros;
        tg_money_format(sub, usd, sizeof usd);
        fputc(',', out);
        csv_int(out, sub);
        fprintf(out, ",%s,%s,", usd, l ? l->for_month : "");
        if (l) line_desc(d, l, desc, sizeof desc);
        tg_cli_csv_field(out, l ? desc : "total");
        fputc('\n', out);
    }
    return ferror(out) ? -1 : 0;
}

/* Text from the store into HTML: the five special characters as entities, control
 * characters dropped. */
static void html(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            fputs("&amp;", out);
        else if (c == '<')
            fputs("&lt;", out);
        else if (c == '>')
            fputs("&gt;", out);
        else if (c == '"')
            fputs("&quot;", out);
        else if (c == '\'')
            fputs("&#39;", out);
        else if (c >= 0x20 && c != 0x7f)
            fputc(c, out);
    }
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<style>\n"
    "  @page { size: A4; margin: 18mm; }\n"
    "  body { font: 14px/1.45 -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
    "sans-serif; color: #1d2330; margin: 0; background: #f4f5f7; }\n"
    "  main { max-width: 820px; margin: 32px auto; background: #fff; padding: 48px 56px; "
    "box-shadow: 0 1px 3px rgba(0,0,0,.12); }\n"
    "  header { display: flex; justify-content: space-between; align-items: flex-start; "
    "border-bottom: 2px solid #1d2330; padding-bottom: 16px; margin-bottom: 28px; }\n"
    "  h1 { font-size: 28px; margin: 0; letter-spacing: .02em; }\n"
    "  .brand { font-weight: 600; color: #56607a; }\n"
    "  .meta { text-align: right; color: #56607a; }\n"
    "  .meta b { color: #1d2330; }\n"
    "  .status { display: inline-block; padding: 2px 10px; border-radius: 10px; font-size: 12px; "
    "text-transform: uppercase; letter-spacing: .06em; }\n"
    "  .open { background: #fff4d6; color: #7a5600; }\n"
    "  .closed { background: #e2f3e6; color: #1e6b34; }\n"
    "  .billto { margin-bottom: 28px; }\n"
    "  .billto small { color: #56607a; text-transform: uppercase; letter-spacing: .06em; }\n"
    "  table { width: 100%; border-collapse: collapse; }\n"
    "  th { text-align: left; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; "
    "color: #56607a; border-bottom: 1px solid #c9ced8; padding: 8px 6px; }\n"
    "  td { padding: 8px 6px; border-bottom: 1px solid #eceef2; vertical-align: top; }\n"
    "  .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }\n"
    "  tr.adjust td { background: #fbf7ee; }\n"
    "  tr.total td { border-top: 2px solid #1d2330; border-bottom: none; font-weight: 700; "
    "font-size: 16px; padding-top: 12px; }\n"
    "  footer { margin-top: 32px; font-size: 12px; color: #56607a; }\n"
    "  @media print { body { background: #fff; } main { box-shadow: none; margin: 0; "
    "padding: 0; max-width: none; } }\n"
    "</style>\n";

static int write_html(FILE *out, const doc_t *d)
{
    char usd[48], from[11], to[11], when[25];
    tg_utc_day(d->start_us, from);
    tg_utc_day(d->next_us - 1, to);
    fputs(html_head, out);
    fputs("<title>Invoice ", out);
    html(out, d->tenant.id);
    fprintf(out,
            " %s</title>\n</head>\n<body>\n<main>\n<header>\n<div>\n<h1>Invoice</h1>\n"
            "<div class=\"brand\">tollgate usage billing</div>\n</div>\n"
            "<div class=\"meta\">\n<div>Period <b>%s</b></div>\n",
            d->month, d->month);
    fprintf(out, "<div>%s to %s, UTC</div>\n", from, to);
    fputs("<div>Plan <b>", out);
    html(out, d->plan.name);
    fprintf(out, "</b></div>\n<div><span class=\"status %s\">%s</span></div>\n",
            d->closed ? "closed" : "open", d->closed ? "closed" : "open, not final");
    if (d->closed) {
        tg_cli_fmt_time(d->closed_us, when);
        fprintf(out, "<div>closed %s</div>\n", when);
    }
    fputs("</div>\n</header>\n<section class=\"billto\">\n<small>Bill to</small>\n<div><b>", out);
    html(out, d->tenant.name[0] ? d->tenant.name : d->tenant.id);
    fputs("</b></div>\n<div>tenant ", out);
    html(out, d->tenant.id);
    fputs("</div>\n</section>\n<table>\n<thead><tr><th>Description</th>"
          "<th class=\"num\">Quantity</th><th class=\"num\">Unit price (USD)</th>"
          "<th class=\"num\">Amount (USD)</th></tr></thead>\n<tbody>\n",
          out);
    for (int i = 0; i < d->inv.nlines; i++) {
        const tg_invoice_line_t *l = &d->inv.lines[i];
        line_text_t t;
        line_text(d, l, &t);
        fprintf(out, "<tr%s><td>", l->kind == TG_LINE_ADJUST ? " class=\"adjust\"" : "");
        html(out, t.desc);
        fputs("</td><td class=\"num\">", out);
        html(out, t.qty);
        fputs("</td><td class=\"num\">", out);
        html(out, t.price);
        fprintf(out, "</td><td class=\"num\">%s</td></tr>\n", t.amount);
    }
    tg_money_format(d->inv.total_micros, usd, sizeof usd);
    fprintf(out,
            "<tr class=\"total\"><td colspan=\"3\">Total due</td><td class=\"num\">USD %s</td>"
            "</tr>\n</tbody>\n</table>\n<footer>\n<p>Amounts are exact to the micro-dollar "
            "(0.000001 USD). Each line is its quantity times its unit price, rounded half up "
            "once to the micro-dollar; the total is the sum of the lines.</p>\n",
            usd);
    fputs("<p>Usage is counted from the events recorded with a time in the period above; only "
          "successful (2xx) requests are billable. Events that arrive after a month is closed "
          "are billed as adjustment lines on a later invoice.</p>\n</footer>\n</main>\n"
          "</body>\n</html>\n",
          out);
    return ferror(out) ? -1 : 0;
}

static const tg_cli_col_t table_cols[] = {
    {.name = "description", .type = TG_CLI_COL_TEXT},
    {.name = "quantity", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_RIGHT},
    {.name = "unit price", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_RIGHT},
    {.name = "amount", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_RIGHT},
};

static int write_table(FILE *out, const doc_t *d)
{
    char usd[48];
    fprintf(out, "invoice %s %s, plan %s, %s\n", d->tenant.id, d->month, d->plan.name,
            d->closed ? "closed" : "open");
    tg_cli_rows_t t = TG_CLI_ROWS(table_cols);
    for (int i = 0; i < d->inv.nlines; i++) {
        line_text_t lt;
        line_text(d, &d->inv.lines[i], &lt);
        tg_cli_cell_text(&t, lt.desc);
        tg_cli_cell_text(&t, lt.qty);
        tg_cli_cell_text(&t, lt.price);
        tg_cli_cell_text(&t, lt.amount);
        tg_cli_row_done(&t);
    }
    tg_money_format(d->inv.total_micros, usd, sizeof usd);
    tg_cli_cell_text(&t, "total USD");
    tg_cli_cell_text(&t, "");
    tg_cli_cell_text(&t, "");
    tg_cli_cell_text(&t, usd);
    tg_cli_row_done(&t);
    int r = tg_cli_rows_print(&t, out, TG_CLI_TABLE);
    tg_cli_rows_free(&t);
    return r;
}

static int write_doc(FILE *out, const doc_t *d, fmt_t f)
{
    switch (f) {
    case F_JSON: return write_json(out, d);
    case F_CSV: return write_csv(out, d);
    case F_HTML: return write_html(out, d);
    default: return write_table(out, d);
    }
}

/* ---- the command ------------------------------------------------------------------- */

typedef struct args {
    const char *tenant, *month, *format, *out;
    int all, close;
    fmt_t fmt;
    int64_t now;
    int64_t horizon_us; /* see doc_t */
} args_t;

/* One tenant's invoice to out (NULL: to the file DIR/ID-MONTH.EXT). */
static int one(tg_store_t *store, const args_t *a, const char *tenant, const char *dir, FILE *out)
{
    doc_t *d = calloc(1, sizeof *d);
    if (!d) return tg_cli_errorf(TG_EXIT_RUNTIME, "out of memory");
    snprintf(d->month, sizeof d->month, "%s", a->month);
    tg_invoice_month(d->month, &d->start_us, &d->next_us);
    d->horizon_us = a->horizon_us;
    int rc = build(store, tenant, d);
    if (rc == 0 && !d->closed && d->start_us < a->horizon_us)
        fprintf(stderr,
                "tollgate: warning: %s began before retention.events_days: events of its first "
                "days may be purged already, and this invoice counts only the events stored\n",
                d->month);
    if (rc == 0 && a->close && !d->closed) rc = close_month(store, d, a->now);
    char path[4096];
    if (rc == 0 && !out) {
        snprintf(path, sizeof path, "%s/%s-%s.%s", dir, tenant, d->month, fmt_ext[a->fmt]);
        /* Not through a symlink: DIR may be shared (/tmp), and a link planted at a
         * tenant's file name would have the invoice overwrite its target. */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (fd >= 0 && !f) close(fd);
        if (!f) {
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write %s: %s", path, strerror(errno));
        } else {
            int w = write_doc(f, d, a->fmt);
            if (fclose(f) != 0 || w != 0)
                rc = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write %s", path);
            else {
                char usd[48];
                tg_money_format(d->inv.total_micros, usd, sizeof usd);
                printf("%s: %s %s total %s USD (%s)\n", path, tenant, d->month, usd,
                       d->closed ? "closed" : "open");
            }
        }
    } else if (rc == 0) {
        if (write_doc(out, d, a->fmt) != 0 || fflush(out) != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the invoice");
    }
    free(d->rebilled);
    free(d->billed);
    free(d);
    return rc;
}

static int collect_tenant(const tg_tenant_t *t, void *ud)
{
    rows_t *rs = ud;
    return tg_cli_push(&rs->v, &rs->n, &rs->cap, t, sizeof *t);
}

static int has_plan(const tg_tenant_plan_row_t *r, void *ud)
{
    (void)r;
    *(int *)ud = 1;
    return 1;
}

static int all(tg_store_t *store, const args_t *a)
{
    const char *dir = a->out ? a->out : ".";
    rows_t ids = {0};
    tg_err_t err = {{0}};
    int r = tg_store_tenant_list(store, collect_tenant, &ids, &err);
    if (r != 0) {
        free(ids.v);
        return tg_cli_list_error(r, &err);
    }
    const tg_tenant_t *tenants = ids.v;
    int rc = TG_EXIT_OK, written = 0;
    for (size_t i = 0; i < ids.n; i++) {
        int any = 0;
        tg_store_tenant_plan_list(store, tenants[i].id, has_plan, &any, &err);
        if (!any &&
            tg_store_invoice_get(store, tenants[i].id, a->month, NULL, NULL, NULL, &err) != 0)
            continue; /* never on a plan: nothing to invoice */
        r = one(store, a, tenants[i].id, dir, NULL);
        if (r != 0)
            rc = r;
        else
            written++;
    }
    free(ids.v);
    fprintf(stderr, "tollgate: %d invoice%s for %s in %s\n", written, written == 1 ? "" : "s",
            a->month, dir);
    return rc;
}

int tg_cli_invoice(int argc, char **argv, const char *config_path)
{
    args_t a = {0};
    a.now = tg_wall_us();
    int help = 0;
    a.close = tg_cli_take_flag(&argc, argv, 1, "--close");
    a.all = tg_cli_take_flag(&argc, argv, 1, "--all");
    if (a.close < 0 || a.all < 0) return TG_EXIT_USAGE;
    const tg_cli_opt_t opts[] = {
        {"--tenant", &a.tenant}, {"--month", &a.month}, {"--format", &a.format}, {"--out", &a.out}};
    int rc = tg_cli_parse(argc, argv, 1, opts, sizeof opts / sizeof opts[0], NULL, 0, NULL, &help,
                          USAGE);
    if (rc != 0) return rc;
    if (help) return puts(USAGE) >= 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    if (!a.tenant == !a.all)
        return tg_cli_errorf(TG_EXIT_USAGE, "invoice needs --tenant ID or --all (%s)", USAGE);
    if (a.tenant && (rc = tg_cli_check_tenant(a.tenant, 0)) != 0) return rc;
    int64_t s, n;
    if (!a.month || tg_invoice_month(a.month, &s, &n) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invoice needs --month YYYY-MM (%s)", USAGE);
    const char *f = a.format ? a.format : "table";
    a.fmt = strcmp(f, "table") == 0  ? F_TABLE
            : strcmp(f, "json") == 0 ? F_JSON
            : strcmp(f, "csv") == 0  ? F_CSV
            : strcmp(f, "html") == 0 ? F_HTML
                                     : (fmt_t)-1;
    if ((int)a.fmt < 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid --format \"%s\" (table, json, csv or html)",
                             f);
    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (cfg->retention.events_days > 0)
        a.horizon_us = a.now - (int64_t)cfg->retention.events_days * 86400 * 1000000;
    if (a.all) {
        rc = all(store, &a);
    } else {
        FILE *out = a.out ? fopen(a.out, "w") : stdout;
        if (!out) {
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write %s: %s", a.out, strerror(errno));
        } else {
            rc = one(store, &a, a.tenant, NULL, out);
            if (a.out && fclose(out) != 0 && rc == 0)
                rc = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write %s", a.out);
        }
    }
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
