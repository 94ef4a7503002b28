/* PostgreSQL store, plans and invoices (the invoice_ops of backend.h), as sqlite_invoices.c:
 * plan versions with their meters and tiers (written whole in one transaction), tenants'
 * plans, the per-(model, tool) sums a month's meters are measured from, closed months
 * frozen with their lines and billed meters (one transaction), and the events of an
 * interval streamed for the export. Nothing here bumps a version.
 *
 * Two processes closing at once: the invoice's primary key makes the second close of a
 * month fail (23505, TG_STORE_EXISTS); an adjustment's billed meters are written only where
 * the measured value is still the one the close was computed from (the UPDATE's WHERE is
 * evaluated again on the row the other transaction committed), as in SQLite. */
#include "store/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "util/clock.h"

/* ---- statements -------------------------------------------------------------------- */

#define PLAN_HEAD "SELECT name, effective_us, base_micros, created_us FROM plans "

static const pg_sql_t sql_plan_insert = {
    .slot = PS_PLAN_INSERT,
    .sql = "INSERT INTO plans (name, effective_us, base_micros, created_us) "
           "VALUES ($1, $2, $3, $4)"};
static const pg_sql_t sql_plan_rm = {
    .slot = PS_PLAN_RM, .sql = "DELETE FROM plans WHERE name = $1 AND effective_us = $2"};
static const pg_sql_t sql_plan_rm_all = {.slot = PS_PLAN_RM_ALL,
                                         .sql = "DELETE FROM plans WHERE name = $1"};
static const pg_sql_t sql_plan_list = {
    .slot = PS_PLAN_LIST,
    .sql = PLAN_HEAD "WHERE $1::text IS NULL OR name = $1 ORDER BY name, effective_us"};
static const pg_sql_t sql_plan_get = {
    .slot = PS_PLAN_GET,
    .sql = PLAN_HEAD "WHERE name = $1 AND effective_us <= $2 ORDER BY effective_us DESC LIMIT 1"};
static const pg_sql_t sql_meter_insert = {
    .slot = PS_PLAN_METER_INSERT,
    .sql = "INSERT INTO plan_meters (plan, effective_us, seq, meter, match, model, included, "
           "flat_micros) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"};
static const pg_sql_t sql_meters = {
    .slot = PS_PLAN_METERS,
    .sql = "SELECT seq, meter, match, model, included, flat_micros FROM plan_meters "
           "WHERE plan = $1 AND effective_us = $2 ORDER BY seq"};
static const pg_sql_t sql_tier_insert = {
    .slot = PS_PLAN_TIER_INSERT,
    .sql = "INSERT INTO plan_tiers (plan, effective_us, seq, tier, up_to, unit_micros) "
           "VALUES ($1, $2, $3, $4, $5, $6)"};
static const pg_sql_t sql_tiers = {.slot = PS_PLAN_TIERS,
                                   .sql =
                                       "SELECT seq, tier, up_to, unit_micros FROM plan_tiers "
                                       "WHERE plan = $1 AND effective_us = $2 ORDER BY seq, tier"};
static const pg_sql_t sql_tenant_plan_set = {
    .slot = PS_TENANT_PLAN_SET,
    .sql = "INSERT INTO tenant_plans (tenant_id, from_month, plan, updated_us) "
           "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, from_month) DO UPDATE SET "
           "plan = excluded.plan, updated_us = excluded.updated_us"};
static const pg_sql_t sql_tenant_plan_rm = {
    .slot = PS_TENANT_PLAN_RM,
    .sql = "DELETE FROM tenant_plans WHERE tenant_id = $1 AND from_month = $2"};
static const pg_sql_t sql_tenant_plan_list = {.slot = PS_TENANT_PLAN_LIST,
                                              .select = &tg_map_tenant_plan,
                                              .sql = "FROM tenant_plans WHERE $1::text IS NULL OR "
                                                     "tenant_id = $1 ORDER BY tenant_id, "
                                                     "from_month"};
/* requests counts what each row stands for; the rest count billable rows only. */
static const pg_sql_t sql_usage = {
    .slot = PS_PLAN_USAGE,
    .sql = "SELECT coalesce(model, ''), coalesce(tool, ''), sum(requests), "
           "sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN bytes_in + bytes_out ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN coalesce(tokens_in, 0) ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN coalesce(tokens_out, 0) ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' AND coalesce(tool, '') <> '' THEN 1 ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN cost_micros ELSE 0 END) "
           "FROM usage_events WHERE tenant = $1 AND ts_us >= $2 AND ts_us < $3 "
           "GROUP BY 1, 2 ORDER BY 1, 2"};
static const pg_sql_t sql_invoice_insert = {
    .slot = PS_INVOICE_INSERT,
    .sql = "INSERT INTO invoices (tenant_id, month, plan, plan_effective_us, total_micros, "
           "closed_us) VALUES ($1, $2, $3, $4, $5, $6)"};
static const pg_sql_t sql_line_insert = {
    .slot = PS_INVOICE_LINE_INSERT,
    .sql = "INSERT INTO invoice_lines (tenant_id, month, seq, kind, meter, match, tier, tier_from, "
           "tier_to, quantity, unit_micros, scale, subtotal_micros, for_month) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"};
/* As sqlite_invoices.c's: a month's own meters at close ($8 = 1: frozen and billed alike),
 * or an earlier month's billed values moved by an adjustment, only where measured is still
 * $9. */
static const pg_sql_t sql_meter_put = {
    .slot = PS_INVOICE_METER_PUT,
    .sql =
        "INSERT INTO invoice_meters (tenant_id, month, meter, match, closed_measured, "
        "closed_amount_micros, measured, amount_micros, updated_us) "
        "VALUES ($1, $2, $3, $4, CASE WHEN $8::int <> 0 THEN $5::bigint ELSE 0 END, "
        "CASE WHEN $8::int <> 0 THEN $6::bigint ELSE 0 END, $5::bigint, $6::bigint, $7) "
        "ON CONFLICT (tenant_id, month, meter, match) DO UPDATE SET measured = excluded.measured, "
        "amount_micros = excluded.amount_micros, updated_us = excluded.updated_us "
        "WHERE invoice_meters.measured = $9"};
static const pg_sql_t sql_invoice_get = {.slot = PS_INVOICE_GET,
                                         .select = &tg_map_invoice,
                                         .sql =
                                             "FROM invoices WHERE tenant_id = $1 AND month = $2"};
static const pg_sql_t sql_invoice_lines = {
    .slot = PS_INVOICE_LINES,
    .select = &tg_map_invoice_line,
    .sql = "FROM invoice_lines WHERE tenant_id = $1 AND month = $2 ORDER BY seq"};
static const pg_sql_t sql_invoice_list = {
    .slot = PS_INVOICE_LIST,
    .select = &tg_map_invoice,
    .sql = "FROM invoices WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id, month"};
static const pg_sql_t sql_invoice_billed = {
    .slot = PS_INVOICE_BILLED,
    .select = &tg_map_invoice_billed,
    .sql = "FROM invoice_meters WHERE tenant_id = $1 AND month = $2 ORDER BY meter, match"};
static const pg_sql_t sql_event_range = {
    .slot = PS_EVENT_RANGE,
    .select = &tg_map_event,
    .sql = "FROM usage_events WHERE tenant = $1 AND ts_us >= $2 AND ts_us < $3 "
           "ORDER BY ts_us, id"};
static const pg_sql_t sql_event_range_all = {
    .slot = PS_EVENT_RANGE_ALL,
    .select = &tg_map_event,
    .sql = "FROM usage_events WHERE $1::text IS NULL AND ts_us >= $2 AND ts_us < $3 ORDER BY id"};

/* ---- plans ------------------------------------------------------------------------- */

static int put_meter(pg_store_t *s, const tg_plan_t *p, int i, tg_err_t *err)
{
    const tg_plan_meter_t *m = &p->meters[i];
    pg_params_t q = {0};
    pg_p_text(&q, p->name);
    pg_p_int64(&q, p->effective_us);
    pg_p_int64(&q, i);
    pg_p_text(&q, tg_plan_meter_name(m->meter));
    PG_P_ROW(&q, m, match);
    pg_p_text(&q, tg_plan_model_name(m->model));
    pg_p_int64(&q, m->included);
    pg_p_int64(&q, m->flat_micros);
    int ret = pg_exec(s, &sql_meter_insert, &q, NULL, "plan set", err);
    for (int t = 0; ret == 0 && t < m->ntiers && t < TG_PLAN_TIERS; t++) {
        pg_params_t tq = {0};
        pg_p_text(&tq, p->name);
        pg_p_int64(&tq, p->effective_us);
        pg_p_int64(&tq, i);
        pg_p_int64(&tq, t + 1);
        pg_p_amount(&tq, m->tiers[t].up_to);
        pg_p_int64(&tq, m->tiers[t].unit_micros);
        ret = pg_exec(s, &sql_tier_insert, &tq, NULL, "plan set", err);
    }
    return ret;
}

static int pg_plan_set(tg_store_t *base, const tg_plan_t *p, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    if (p->nmeters < 0 || p->nmeters > TG_PLAN_METERS)
        return tg_err_set(err, "plan set: %d meters (at most %d)", p->nmeters, TG_PLAN_METERS);
    int ret = pg_begin(s, "plan set", err);
    if (ret != 0) return ret;
    pg_params_t q = {0};
    pg_p_text(&q, p->name);
    pg_p_int64(&q, p->effective_us);
    ret = pg_exec(s, &sql_plan_rm, &q, NULL, "plan set", err);
    if (ret == 0) {
        pg_p_int64(&q, p->base_micros);
        pg_p_int64(&q, p->created_us ? p->created_us : tg_wall_us());
        ret = pg_exec(s, &sql_plan_insert, &q, NULL, "plan set", err);
    }
    for (int i = 0; ret == 0 && i < p->nmeters; i++)
        ret = put_meter(s, p, i, err);
    if (ret != 0) {
        pg_rollback(s);
        return ret;
    }
    return pg_commit(s, "plan set", err);
}

static int pg_plan_rm(tg_store_t *base, const char *name, int64_t effective_us, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    pg_params_t q = {0};
    pg_p_text(&q, name);
    if (effective_us >= 0) pg_p_int64(&q, effective_us);
    PGresult *r;
    int ret =
        pg_exec(s, effective_us < 0 ? &sql_plan_rm_all : &sql_plan_rm, &q, &r, "plan rm", err);
    if (ret != 0) return ret;
    if (pg_changes(r) == 0) {
        tg_err_set(err, "no plan \"%s\"%s", name, effective_us >= 0 ? " from that month" : "");
        ret = TG_STORE_NOTFOUND;
    }
    PQclear(r);
    return ret;
}

/* The meters and tiers of the version p->name, p->effective_us (a handful of rows). */
static int load_meters(pg_store_t *s, tg_plan_t *p, tg_err_t *err)
{
    pg_params_t q = {0};
    pg_p_text(&q, p->name);
    pg_p_int64(&q, p->effective_us);
    PGresult *r;
    int ret = pg_exec(s, &sql_meters, &q, &r, "plan meters", err);
    if (ret != 0) return ret;
    p->nmeters = 0;
    for (int i = 0; i < PQntuples(r) && p->nmeters < TG_PLAN_METERS; i++) {
        if (pg_get_int64(r, i, 0) != p->nmeters) {
            ret = tg_err_set(err, "plan meters: plan \"%s\": meters out of sequence", p->name);
            break;
        }
        tg_plan_meter_t *m = &p->meters[p->nmeters++];
        memset(m, 0, sizeof *m);
        m->meter = tg_plan_name_parse(tg_plan_meter_name, TG_PMETER_COUNT, pg_val(r, i, 1));
        const char *match = pg_val(r, i, 2);
        snprintf(m->match, sizeof m->match, "%s", match ? match : "");
        m->model = tg_plan_name_parse(tg_plan_model_name, TG_PMODEL_COUNT, pg_val(r, i, 3));
        m->included = pg_get_int64(r, i, 4);
        m->flat_micros = pg_get_int64(r, i, 5);
    }
    PQclear(r);
    if (ret != 0) return ret;
    if ((ret = pg_exec(s, &sql_tiers, &q, &r, "plan tiers", err)) != 0) return ret;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t seq = pg_get_int64(r, i, 0);
        if (seq < 0 || seq >= p->nmeters) continue;
        tg_plan_meter_t *m = &p->meters[seq];
        if (m->ntiers >= TG_PLAN_TIERS) continue;
        tg_plan_tier_t *t = &m->tiers[m->ntiers++];
        t->up_to = pg_val(r, i, 2) ? pg_get_int64(r, i, 2) : -1;
        t->unit_micros = pg_get_int64(r, i, 3);
    }
    PQclear(r);
    return 0;
}

static void read_plan_head(const PGresult *r, int i, tg_plan_t *p)
{
    memset(p, 0, sizeof *p);
    const char *name = pg_val(r, i, 0);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    p->effective_us = pg_get_int64(r, i, 1);
    p->base_micros = pg_get_int64(r, i, 2);
    p->created_us = pg_get_int64(r, i, 3);
}

static int pg_plan_list(tg_store_t *base, const char *name, int (*cb)(const tg_plan_t *, void *),
                        void *ud, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    /* The heads whole first (versions of a few plans): the meters are read per plan. */
    pg_params_t q = {0};
    pg_p_text(&q, name);
    PGresult *r;
    int ret = pg_exec(s, &sql_plan_list, &q, &r, "plan list", err);
    if (ret != 0) return ret;
    for (int i = 0; ret == 0 && i < PQntuples(r); i++) {
        tg_plan_t p;
        read_plan_head(r, i, &p);
        ret = load_meters(s, &p, err);
        if (ret == 0) ret = cb(&p, ud);
    }
    PQclear(r);
    return ret;
}

static int pg_plan_get(tg_store_t *base, const char *name, int64_t at_us, tg_plan_t *out,
                       tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    pg_params_t q = {0};
    pg_p_text(&q, name);
    pg_p_int64(&q, at_us);
    PGresult *r;
    int ret = pg_exec(s, &sql_plan_get, &q, &r, "plan get", err);
    if (ret != 0) return ret;
    int found = PQntuples(r) > 0;
    if (found) read_plan_head(r, 0, out);
    PQclear(r);
    if (!found) {
        tg_err_set(err, "no plan \"%s\" in force then", name);
        return TG_STORE_NOTFOUND;
    }
    return load_meters(s, out, err);
}

/* ---- tenants' plans ---------------------------------------------------------------- */

static int pg_tenant_plan_set(tg_store_t *base, const tg_tenant_plan_row_t *row, tg_err_t *err)
{
    pg_params_t q = {0};
    PG_P_ROW(&q, row, tenant);
    PG_P_ROW(&q, row, from_month);
    PG_P_ROW(&q, row, plan);
    pg_p_int64(&q, row->updated_us ? row->updated_us : tg_wall_us());
    return pg_exec((pg_store_t *)base, &sql_tenant_plan_set, &q, NULL, "tenant set-plan", err);
}

static int pg_tenant_plan_rm(tg_store_t *base, const char *tenant, const char *from_month,
                             tg_err_t *err)
{
    pg_params_t q = {0};
    pg_p_text(&q, tenant);
    pg_p_text(&q, from_month);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_tenant_plan_rm, &q, &r, "tenant plan rm", err);
    if (ret != 0) return ret;
    if (pg_changes(r) == 0) {
        tg_err_set(err, "tenant \"%s\" has no plan from %s", tenant, from_month);
        ret = TG_STORE_NOTFOUND;
    }
    PQclear(r);
    return ret;
}

static int emit_tenant_plan(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_tenant_plan_row_t row;
    pg_read_row(s, r, i, &tg_map_tenant_plan, &row);
    return SINK_CALL(tg_tenant_plan_row_t, k, &row);
}

static int pg_tenant_plan_list(tg_store_t *base, const char *tenant,
                               int (*cb)(const tg_tenant_plan_row_t *, void *), void *ud,
                               tg_err_t *err)
{
    return pg_each_tenant_row((pg_store_t *)base, &sql_tenant_plan_list, 1, tenant,
                              emit_tenant_plan, SINK(tg_tenant_plan_row_t, cb, ud),
                              "tenant plan list", err);
}

/* ---- usage ------------------------------------------------------------------------- */

/* tenant (NULL: every tenant), then the interval, as q's $1 to $3. */
static int each_in_range(pg_store_t *s, const pg_sql_t *q, const char *tenant, int64_t from_us,
                         int64_t to_us, pg_emit_fn emit, sink_t k, const char *what, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_int64(&p, from_us);
    pg_p_int64(&p, to_us);
    return pg_each_row(s, q, &p, emit, k, what, err);
}

static int emit_usage(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    (void)s;
    const char *model = pg_val(r, i, 0), *tool = pg_val(r, i, 1);
    tg_plan_usage_row_t row = {
        .model = model ? model : "",
        .tool = tool ? tool : "",
        .requests = pg_get_int64(r, i, 2),
        .billable = pg_get_int64(r, i, 3),
        .bytes = pg_get_int64(r, i, 4),
        .tokens_in = pg_get_int64(r, i, 5),
        .tokens_out = pg_get_int64(r, i, 6),
        .tool_calls = pg_get_int64(r, i, 7),
        .cost_micros = pg_get_int64(r, i, 8),
    };
    return SINK_CALL(tg_plan_usage_row_t, k, &row);
}

static int pg_plan_usage(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                         int (*cb)(const tg_plan_usage_row_t *, void *), void *ud, tg_err_t *err)
{
    if (!tenant) return tg_err_set(err, "plan usage: a tenant is required");
    return each_in_range((pg_store_t *)base, &sql_usage, tenant, from_us, to_us, emit_usage,
                         SINK(tg_plan_usage_row_t, cb, ud), "plan usage", err);
}

/* ---- invoices ---------------------------------------------------------------------- */

static int put_billed(pg_store_t *s, const char *tenant, const tg_invoice_billed_t *b, int closing,
                      int64_t now_us, tg_err_t *err)
{
    pg_params_t q = {0};
    pg_p_text(&q, tenant);
    PG_P_ROW(&q, b, month);
    pg_p_text(&q, tg_plan_meter_name(b->meter));
    PG_P_ROW(&q, b, match);
    pg_p_int64(&q, b->measured);
    pg_p_int64(&q, b->amount_micros);
    pg_p_int64(&q, now_us);
    pg_p_int64(&q, closing);
    pg_p_int64(&q, b->was_measured);
    PGresult *r;
    int ret = pg_exec(s, &sql_meter_put, &q, &r, "invoice close", err);
    if (ret != 0) return ret;
    int64_t changed = pg_changes(r);
    PQclear(r);
    /* No row changed: another process closed a month whose adjustment billed these late
     * events since ours was computed; writing ours would bill them twice. */
    if (!closing && changed == 0)
        return tg_err_set(err,
                          "the late events of %s were billed by another close meanwhile: "
                          "nothing was closed, run it again",
                          b->month);
    return 0;
}

static int put_line(pg_store_t *s, const tg_invoice_row_t *inv, int seq, const tg_invoice_line_t *l,
                    tg_err_t *err)
{
    pg_params_t q = {0};
    PG_P_ROW(&q, inv, tenant);
    PG_P_ROW(&q, inv, month);
    pg_p_int64(&q, seq);
    pg_p_text(&q, tg_plan_line_kind_name(l->kind));
    pg_p_text(&q, l->meter < 0 ? NULL : tg_plan_meter_name(l->meter));
    PG_P_ROW(&q, l, match);
    pg_p_int64(&q, l->tier);
    pg_p_int64(&q, l->tier_from);
    pg_p_amount(&q, l->tier_to);
    pg_p_int64(&q, l->quantity);
    pg_p_int64(&q, l->unit_micros);
    pg_p_int64(&q, l->scale);
    pg_p_int64(&q, l->subtotal_micros);
    pg_p_field(&q, l->for_month, sizeof l->for_month, 1);
    return pg_exec(s, &sql_line_insert, &q, NULL, "invoice close", err);
}

static int pg_invoice_close(tg_store_t *base, const tg_invoice_row_t *inv,
                            const tg_invoice_line_t *lines, size_t nlines,
                            const tg_invoice_billed_t *meters, size_t nmeters,
                            const tg_invoice_billed_t *rebilled, size_t nrebilled, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int64_t now = inv->closed_us ? inv->closed_us : tg_wall_us();
    int ret = pg_begin(s, "invoice close", err);
    if (ret != 0) return ret;
    pg_params_t q = {0};
    PG_P_ROW(&q, inv, tenant);
    PG_P_ROW(&q, inv, month);
    PG_P_ROW(&q, inv, plan);
    pg_p_int64(&q, inv->plan_effective_us);
    pg_p_int64(&q, inv->total_micros);
    pg_p_int64(&q, now);
    ret = pg_exec(s, &sql_invoice_insert, &q, NULL, "invoice close", err);
    if (ret != 0 && !strcmp(s->state, "23505")) {
        pg_rollback(s);
        tg_err_set(err, "%s is already closed for tenant \"%s\"", inv->month, inv->tenant);
        return TG_STORE_EXISTS;
    }
    for (size_t i = 0; ret == 0 && i < nlines; i++)
        ret = put_line(s, inv, (int)i, &lines[i], err);
    for (size_t i = 0; ret == 0 && i < nmeters; i++) {
        tg_invoice_billed_t b = meters[i];
        snprintf(b.month, sizeof b.month, "%s", inv->month);
        ret = put_billed(s, inv->tenant, &b, 1, now, err);
    }
    for (size_t i = 0; ret == 0 && i < nrebilled; i++)
        ret = put_billed(s, inv->tenant, &rebilled[i], 0, now, err);
    if (ret != 0) {
        pg_rollback(s);
        return ret;
    }
    return pg_commit(s, "invoice close", err);
}

static int emit_line(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_invoice_line_t row;
    pg_read_row(s, r, i, &tg_map_invoice_line, &row);
    return SINK_CALL(tg_invoice_line_t, k, &row);
}

/* tenant and month as q's $1 and $2, rows streamed to emit. */
static int each_of_month(pg_store_t *s, const pg_sql_t *q, const char *tenant, const char *month,
                         pg_emit_fn emit, sink_t k, const char *what, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_text(&p, month);
    return pg_each_row(s, q, &p, emit, k, what, err);
}

static int pg_invoice_get(tg_store_t *base, const char *tenant, const char *month,
                          tg_invoice_row_t *out, int (*cb)(const tg_invoice_line_t *, void *),
                          void *ud, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    pg_params_t q = {0};
    pg_p_text(&q, tenant);
    pg_p_text(&q, month);
    PGresult *r;
    int ret = pg_exec(s, &sql_invoice_get, &q, &r, "invoice get", err);
    if (ret != 0) return ret;
    int found = PQntuples(r) > 0;
    tg_invoice_row_t row;
    if (found) pg_read_row(s, r, 0, &tg_map_invoice, &row);
    PQclear(r);
    if (!found) {
        tg_err_set(err, "%s is not closed for tenant \"%s\"", month, tenant);
        return TG_STORE_NOTFOUND;
    }
    if (out) *out = row;
    if (!cb) return 0;
    return each_of_month(s, &sql_invoice_lines, tenant, month, emit_line,
                         SINK(tg_invoice_line_t, cb, ud), "invoice lines", err);
}

static int emit_invoice(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_invoice_row_t row;
    pg_read_row(s, r, i, &tg_map_invoice, &row);
    return SINK_CALL(tg_invoice_row_t, k, &row);
}

static int pg_invoice_list(tg_store_t *base, const char *tenant,
                           int (*cb)(const tg_invoice_row_t *, void *), void *ud, tg_err_t *err)
{
    return pg_each_tenant_row((pg_store_t *)base, &sql_invoice_list, 1, tenant, emit_invoice,
                              SINK(tg_invoice_row_t, cb, ud), "invoice list", err);
}

static int emit_billed(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_invoice_billed_t row;
    pg_read_row(s, r, i, &tg_map_invoice_billed, &row);
    return SINK_CALL(tg_invoice_billed_t, k, &row);
}

static int pg_invoice_billed(tg_store_t *base, const char *tenant, const char *month,
                             int (*cb)(const tg_invoice_billed_t *, void *), void *ud,
                             tg_err_t *err)
{
    return each_of_month((pg_store_t *)base, &sql_invoice_billed, tenant, month, emit_billed,
                         SINK(tg_invoice_billed_t, cb, ud), "invoice billed", err);
}

/* ---- the export -------------------------------------------------------------------- */

static int emit_event(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_event_t e;
    pg_read_row(s, r, i, &tg_map_event, &e);
    return SINK_CALL(tg_event_t, k, &e);
}

/* Streamed (single-row mode): a month of events is never held whole. */
static int pg_event_range(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                          int (*cb)(const tg_event_t *, void *), void *ud, tg_err_t *err)
{
    return each_in_range((pg_store_t *)base, tenant ? &sql_event_range : &sql_event_range_all,
                         tenant, from_us, to_us, emit_event, SINK(tg_event_t, cb, ud),
                         "event range", err);
}

const struct tg_store_invoice_ops pg_invoice_ops = {
    .plan_set = pg_plan_set,
    .plan_rm = pg_plan_rm,
    .plan_list = pg_plan_list,
    .plan_get = pg_plan_get,
    .tenant_plan_set = pg_tenant_plan_set,
    .tenant_plan_rm = pg_tenant_plan_rm,
    .tenant_plan_list = pg_tenant_plan_list,
    .usage = pg_plan_usage,
    .close = pg_invoice_close,
    .get = pg_invoice_get,
    .list = pg_invoice_list,
    .billed = pg_invoice_billed,
    .event_range = pg_event_range,
};
