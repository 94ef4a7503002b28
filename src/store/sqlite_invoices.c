/* SQLite store, plans and invoices (the invoice_ops of backend.h): plan versions with
 * their meters and tiers, tenants' plans, the per-(model, tool) sums a month's meters are
 * measured from, closed months frozen with their lines and billed meters, and the events
 * of an interval read whole for the export. Plans are not policy: nothing here bumps a
 * version. The tables are described in migrations.c (migration 9). */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "util/clock.h"

/* ---- statements -------------------------------------------------------------------- */

static const sq_sql_t sql_plan_insert = {
    .slot = ST_PLAN_INSERT,
    .sql = "INSERT INTO plans (name, effective_us, base_micros, created_us) "
           "VALUES (?1, ?2, ?3, ?4)"};
/* Also inside plan_set: the version replaced, its meters and tiers by cascade. */
static const sq_sql_t sql_plan_rm = {
    .slot = ST_PLAN_RM, .sql = "DELETE FROM plans WHERE name = ?1 AND effective_us = ?2"};
static const sq_sql_t sql_plan_rm_all = {.slot = ST_PLAN_RM_ALL,
                                         .sql = "DELETE FROM plans WHERE name = ?1"};
static const sq_sql_t sql_plan_list = {
    .slot = ST_PLAN_LIST,
    .sql = "SELECT name, effective_us, base_micros, created_us FROM plans "
           "WHERE ?1 IS NULL OR name = ?1 ORDER BY name, effective_us"};
static const sq_sql_t sql_plan_get = {
    .slot = ST_PLAN_GET,
    .sql = "SELECT name, effective_us, base_micros, created_us FROM plans "
           "WHERE name = ?1 AND effective_us <= ?2 ORDER BY effective_us DESC LIMIT 1"};
static const sq_sql_t sql_meter_insert = {
    .slot = ST_PLAN_METER_INSERT,
    .sql = "INSERT INTO plan_meters (plan, effective_us, seq, meter, match, model, included, "
           "flat_micros) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"};
static const sq_sql_t sql_meters = {
    .slot = ST_PLAN_METERS,
    .sql = "SELECT seq, meter, match, model, included, flat_micros FROM plan_meters "
           "WHERE plan = ?1 AND effective_us = ?2 ORDER BY seq"};
static const sq_sql_t sql_tier_insert = {
    .slot = ST_PLAN_TIER_INSERT,
    .sql = "INSERT INTO plan_tiers (plan, effective_us, seq, tier, up_to, unit_micros) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"};
static const sq_sql_t sql_tiers = {.slot = ST_PLAN_TIERS,
                                   .sql =
                                       "SELECT seq, tier, up_to, unit_micros FROM plan_tiers "
                                       "WHERE plan = ?1 AND effective_us = ?2 ORDER BY seq, tier"};
static const sq_sql_t sql_tenant_plan_set = {
    .slot = ST_TENANT_PLAN_SET,
    .sql = "INSERT OR REPLACE INTO tenant_plans (tenant_id, from_month, plan, updated_us) "
           "VALUES (?1, ?2, ?3, ?4)"};
static const sq_sql_t sql_tenant_plan_rm = {
    .slot = ST_TENANT_PLAN_RM,
    .sql = "DELETE FROM tenant_plans WHERE tenant_id = ?1 AND from_month = ?2"};
static const sq_sql_t sql_tenant_plan_list = {
    .slot = ST_TENANT_PLAN_LIST,
    .select = &tg_map_tenant_plan,
    .sql = "FROM tenant_plans WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, from_month"};
/* Through the (tenant, ts_us) index. requests counts what each row stands for (an
 * aggregate of refusals is several); the rest count billable rows only. */
static const sq_sql_t sql_usage = {
    .slot = ST_PLAN_USAGE,
    .sql = "SELECT coalesce(model, ''), coalesce(tool, ''), sum(requests), "
           "sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN bytes_in + bytes_out ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN coalesce(tokens_in, 0) ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN coalesce(tokens_out, 0) ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' AND coalesce(tool, '') <> '' THEN 1 ELSE 0 END), "
           "sum(CASE WHEN outcome = 'billable' THEN cost_micros ELSE 0 END) "
           "FROM usage_events WHERE tenant = ?1 AND ts_us >= ?2 AND ts_us < ?3 "
           "GROUP BY 1, 2 ORDER BY 1, 2"};
static const sq_sql_t sql_invoice_insert = {
    .slot = ST_INVOICE_INSERT,
    .sql = "INSERT INTO invoices (tenant_id, month, plan, plan_effective_us, total_micros, "
           "closed_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"};
static const sq_sql_t sql_line_insert = {
    .slot = ST_INVOICE_LINE_INSERT,
    .sql = "INSERT INTO invoice_lines (tenant_id, month, seq, kind, meter, match, tier, tier_from, "
           "tier_to, quantity, unit_micros, scale, subtotal_micros, for_month) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"};
/* A month's own meters at close (frozen and billed alike), or an earlier month's billed
 * values moved by an adjustment: its frozen ones are kept (a meter new in that month's
 * plan since it closed starts at 0 frozen). */
static const sq_sql_t sql_meter_put = {
    .slot = ST_INVOICE_METER_PUT,
    .sql =
        "INSERT INTO invoice_meters (tenant_id, month, meter, match, closed_measured, "
        "closed_amount_micros, measured, amount_micros, updated_us) "
        "VALUES (?1, ?2, ?3, ?4, CASE WHEN ?8 THEN ?5 ELSE 0 END, "
        "CASE WHEN ?8 THEN ?6 ELSE 0 END, ?5, ?6, ?7) "
        "ON CONFLICT (tenant_id, month, meter, match) DO UPDATE SET measured = excluded.measured, "
        "amount_micros = excluded.amount_micros, updated_us = excluded.updated_us "
        "WHERE invoice_meters.measured = ?9"};
static const sq_sql_t sql_invoice_get = {.slot = ST_INVOICE_GET,
                                         .select = &tg_map_invoice,
                                         .sql =
                                             "FROM invoices WHERE tenant_id = ?1 AND month = ?2"};
static const sq_sql_t sql_invoice_lines = {
    .slot = ST_INVOICE_LINES,
    .select = &tg_map_invoice_line,
    .sql = "FROM invoice_lines WHERE tenant_id = ?1 AND month = ?2 ORDER BY seq"};
static const sq_sql_t sql_invoice_list = {
    .slot = ST_INVOICE_LIST,
    .select = &tg_map_invoice,
    .sql = "FROM invoices WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, month"};
static const sq_sql_t sql_invoice_billed = {
    .slot = ST_INVOICE_BILLED,
    .select = &tg_map_invoice_billed,
    .sql = "FROM invoice_meters WHERE tenant_id = ?1 AND month = ?2 ORDER BY meter, match"};
/* One tenant's range comes through the (tenant, ts_us) index in time order; every
 * tenant's in id order, the rowid's, so neither sorts the range in a temporary b-tree
 * ("?1 IS NULL OR tenant = ?1" would make SQLite do both: scan the index, then sort). */
static const sq_sql_t sql_event_range = {
    .slot = ST_EVENT_RANGE,
    .select = &tg_map_event,
    .sql = "FROM usage_events WHERE tenant = ?1 AND ts_us >= ?2 AND ts_us < ?3 "
           "ORDER BY ts_us, id"};
static const sq_sql_t sql_event_range_all = {
    .slot = ST_EVENT_RANGE_ALL,
    .select = &tg_map_event,
    .sql = "FROM usage_events WHERE ?1 IS NULL AND ts_us >= ?2 AND ts_us < ?3 ORDER BY id"};

/* ---- plans ------------------------------------------------------------------------- */

static int step_done(sq_store_t *s, sqlite3_stmt *st, const char *what, tg_err_t *err)
{
    int rc = sq_run(st);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, what, err);
}

static int put_meter(sq_store_t *s, const tg_plan_t *p, int i, tg_err_t *err)
{
    const tg_plan_meter_t *m = &p->meters[i];
    sqlite3_stmt *st = sq_stmt(s, &sql_meter_insert, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->effective_us);
    sqlite3_bind_int(st, 3, i);
    sqlite3_bind_text(st, 4, tg_plan_meter_name(m->meter), -1, SQLITE_STATIC);
    BIND_ROW(st, 5, m, match);
    sqlite3_bind_text(st, 6, tg_plan_model_name(m->model), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, m->included);
    sqlite3_bind_int64(st, 8, m->flat_micros);
    if (step_done(s, st, "plan set", err) != 0) return -1;
    for (int t = 0; t < m->ntiers && t < TG_PLAN_TIERS; t++) {
        if (!(st = sq_stmt(s, &sql_tier_insert, err))) return -1;
        sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, p->effective_us);
        sqlite3_bind_int(st, 3, i);
        sqlite3_bind_int(st, 4, t + 1);
        if (m->tiers[t].up_to < 0)
            sqlite3_bind_null(st, 5);
        else
            sqlite3_bind_int64(st, 5, m->tiers[t].up_to);
        sqlite3_bind_int64(st, 6, m->tiers[t].unit_micros);
        if (step_done(s, st, "plan set", err) != 0) return -1;
    }
    return 0;
}

static int sq_plan_set(tg_store_t *base, const tg_plan_t *p, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (p->nmeters < 0 || p->nmeters > TG_PLAN_METERS)
        return tg_err_set(err, "plan set: %d meters (at most %d)", p->nmeters, TG_PLAN_METERS);
    if (sq_begin(s, "plan set", err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_plan_rm, err);
    if (!st) goto fail;
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->effective_us);
    if (step_done(s, st, "plan set", err) != 0) goto fail;
    if (!(st = sq_stmt(s, &sql_plan_insert, err))) goto fail;
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->effective_us);
    sqlite3_bind_int64(st, 3, p->base_micros);
    sqlite3_bind_int64(st, 4, p->created_us ? p->created_us : tg_wall_us());
    if (step_done(s, st, "plan set", err) != 0) goto fail;
    for (int i = 0; i < p->nmeters; i++)
        if (put_meter(s, p, i, err) != 0) goto fail;
    return sq_commit(s, "plan set", err);
fail:
    sq_rollback(s);
    return -1;
}

static int sq_plan_rm(tg_store_t *base, const char *name, int64_t effective_us, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, effective_us < 0 ? &sql_plan_rm_all : &sql_plan_rm, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (effective_us >= 0) sqlite3_bind_int64(st, 2, effective_us);
    if (step_done(s, st, "plan rm", err) != 0) return -1;
    if (sqlite3_changes(s->db) == 0) {
        tg_err_set(err, "no plan \"%s\"%s", name, effective_us >= 0 ? " from that month" : "");
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

/* The meters and tiers of the version p->name, p->effective_us. */
static int load_meters(sq_store_t *s, tg_plan_t *p, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_meters, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->effective_us);
    int rc;
    p->nmeters = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && p->nmeters < TG_PLAN_METERS) {
        tg_plan_meter_t *m = &p->meters[p->nmeters++];
        memset(m, 0, sizeof *m);
        m->meter = tg_plan_name_parse(tg_plan_meter_name, TG_PMETER_COUNT,
                                      (const char *)sqlite3_column_text(st, 1));
        const char *match = (const char *)sqlite3_column_text(st, 2);
        snprintf(m->match, sizeof m->match, "%s", match ? match : "");
        const char *model = (const char *)sqlite3_column_text(st, 3);
        m->model = tg_plan_name_parse(tg_plan_model_name, TG_PMODEL_COUNT, model);
        m->included = sqlite3_column_int64(st, 4);
        m->flat_micros = sqlite3_column_int64(st, 5);
        if (sqlite3_column_int(st, 0) != p->nmeters - 1) rc = SQLITE_CORRUPT;
        if (rc != SQLITE_ROW) break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sq_fail(s, rc, "plan meters", err);
    if (!(st = sq_stmt(s, &sql_tiers, err))) return -1;
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->effective_us);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int seq = sqlite3_column_int(st, 0);
        if (seq < 0 || seq >= p->nmeters) continue;
        tg_plan_meter_t *m = &p->meters[seq];
        if (m->ntiers >= TG_PLAN_TIERS) continue;
        tg_plan_tier_t *t = &m->tiers[m->ntiers++];
        t->up_to = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
        t->unit_micros = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "plan tiers", err);
}

static void read_plan_head(sqlite3_stmt *st, tg_plan_t *p)
{
    memset(p, 0, sizeof *p);
    const char *name = (const char *)sqlite3_column_text(st, 0);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    p->effective_us = sqlite3_column_int64(st, 1);
    p->base_micros = sqlite3_column_int64(st, 2);
    p->created_us = sqlite3_column_int64(st, 3);
}

static int sq_plan_list(tg_store_t *base, const char *name, int (*cb)(const tg_plan_t *, void *),
                        void *ud, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    /* The heads first: the meters' statements are stepped per plan, and a plan list is
     * small (versions of a few plans), so they are collected rather than nested. */
    sqlite3_stmt *st = sq_stmt(s, &sql_plan_list, err);
    if (!st) return -1;
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    tg_plan_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            tg_plan_t *nv = realloc(v, nc * sizeof *v);
            if (!nv) {
                rc = SQLITE_NOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        read_plan_head(st, &v[n++]);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) ret = sq_fail(s, rc, "plan list", err);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        ret = load_meters(s, &v[i], err);
        if (ret == 0) ret = cb(&v[i], ud);
    }
    free(v);
    return ret;
}

static int sq_plan_get(tg_store_t *base, const char *name, int64_t at_us, tg_plan_t *out,
                       tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_plan_get, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, at_us);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) read_plan_head(st, out);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        tg_err_set(err, "no plan \"%s\" in force then", name);
        return TG_STORE_NOTFOUND;
    }
    if (rc != SQLITE_ROW) return sq_fail(s, rc, "plan get", err);
    return load_meters(s, out, err);
}

/* ---- tenants' plans ---------------------------------------------------------------- */

static int sq_tenant_plan_set(tg_store_t *base, const tg_tenant_plan_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_tenant_plan_set, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, tenant);
    BIND_ROW(st, 2, row, from_month);
    BIND_ROW(st, 3, row, plan);
    sqlite3_bind_int64(st, 4, row->updated_us ? row->updated_us : tg_wall_us());
    return step_done(s, st, "tenant set-plan", err);
}

static int sq_tenant_plan_rm(tg_store_t *base, const char *tenant, const char *from_month,
                             tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_tenant_plan_rm, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, from_month, -1, SQLITE_STATIC);
    if (step_done(s, st, "tenant plan rm", err) != 0) return -1;
    if (sqlite3_changes(s->db) == 0) {
        tg_err_set(err, "tenant \"%s\" has no plan from %s", tenant, from_month);
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

static int emit_tenant_plan(sqlite3_stmt *st, const sink_t *k)
{
    tg_tenant_plan_row_t r;
    sq_read_row(st, &tg_map_tenant_plan, &r);
    return SINK_CALL(tg_tenant_plan_row_t, k, &r);
}

static int sq_tenant_plan_list(tg_store_t *base, const char *tenant,
                               int (*cb)(const tg_tenant_plan_row_t *, void *), void *ud,
                               tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_tenant_plan_list, tenant, emit_tenant_plan,
                       SINK(tg_tenant_plan_row_t, cb, ud), "tenant plan list", err);
}

/* ---- usage ------------------------------------------------------------------------- */

/* tenant (NULL: every tenant), then the interval, bound to q's ?1 to ?3. */
static int each_in_range(sq_store_t *s, const sq_sql_t *q, const char *tenant, int64_t from_us,
                         int64_t to_us, sq_emit_fn emit, sink_t k, const char *what, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, q, err);
    if (!st) return -1;
    if (tenant)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_int64(st, 2, from_us);
    sqlite3_bind_int64(st, 3, to_us);
    return sq_step_each(s, st, emit, k, what, err);
}

static int emit_usage(sqlite3_stmt *st, const sink_t *k)
{
    tg_plan_usage_row_t r = {
        .model = (const char *)sqlite3_column_text(st, 0),
        .tool = (const char *)sqlite3_column_text(st, 1),
        .requests = sqlite3_column_int64(st, 2),
        .billable = sqlite3_column_int64(st, 3),
        .bytes = sqlite3_column_int64(st, 4),
        .tokens_in = sqlite3_column_int64(st, 5),
        .tokens_out = sqlite3_column_int64(st, 6),
        .tool_calls = sqlite3_column_int64(st, 7),
        .cost_micros = sqlite3_column_int64(st, 8),
    };
    return SINK_CALL(tg_plan_usage_row_t, k, &r);
}

static int sq_plan_usage(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                         int (*cb)(const tg_plan_usage_row_t *, void *), void *ud, tg_err_t *err)
{
    if (!tenant) return tg_err_set(err, "plan usage: a tenant is required");
    return each_in_range((sq_store_t *)base, &sql_usage, tenant, from_us, to_us, emit_usage,
                         SINK(tg_plan_usage_row_t, cb, ud), "plan usage", err);
}

/* ---- invoices ---------------------------------------------------------------------- */

static int put_billed(sq_store_t *s, const char *tenant, const tg_invoice_billed_t *b, int closing,
                      int64_t now_us, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_meter_put, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    BIND_ROW(st, 2, b, month);
    sqlite3_bind_text(st, 3, tg_plan_meter_name(b->meter), -1, SQLITE_STATIC);
    BIND_ROW(st, 4, b, match);
    sqlite3_bind_int64(st, 5, b->measured);
    sqlite3_bind_int64(st, 6, b->amount_micros);
    sqlite3_bind_int64(st, 7, now_us);
    sqlite3_bind_int(st, 8, closing);
    sqlite3_bind_int64(st, 9, b->was_measured);
    if (step_done(s, st, "invoice close", err) != 0) return -1;
    /* No row changed: another process closed a month whose adjustment billed these late
     * events since ours was computed; writing ours would bill them twice. */
    if (!closing && sqlite3_changes(s->db) == 0)
        return tg_err_set(err,
                          "the late events of %s were billed by another close meanwhile: "
                          "nothing was closed, run it again",
                          b->month);
    return 0;
}

static int put_line(sq_store_t *s, const tg_invoice_row_t *inv, int seq, const tg_invoice_line_t *l,
                    tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_line_insert, err);
    if (!st) return -1;
    BIND_ROW(st, 1, inv, tenant);
    BIND_ROW(st, 2, inv, month);
    sqlite3_bind_int(st, 3, seq);
    sqlite3_bind_text(st, 4, tg_plan_line_kind_name(l->kind), -1, SQLITE_STATIC);
    if (l->meter < 0)
        sqlite3_bind_null(st, 5);
    else
        sqlite3_bind_text(st, 5, tg_plan_meter_name(l->meter), -1, SQLITE_STATIC);
    BIND_ROW(st, 6, l, match);
    sqlite3_bind_int(st, 7, l->tier);
    sqlite3_bind_int64(st, 8, l->tier_from);
    if (l->tier_to < 0)
        sqlite3_bind_null(st, 9);
    else
        sqlite3_bind_int64(st, 9, l->tier_to);
    sqlite3_bind_int64(st, 10, l->quantity);
    sqlite3_bind_int64(st, 11, l->unit_micros);
    sqlite3_bind_int64(st, 12, l->scale);
    sqlite3_bind_int64(st, 13, l->subtotal_micros);
    sq_bind_field(st, 14, l->for_month, sizeof l->for_month, 1);
    return step_done(s, st, "invoice close", err);
}

static int sq_invoice_close(tg_store_t *base, const tg_invoice_row_t *inv,
                            const tg_invoice_line_t *lines, size_t nlines,
                            const tg_invoice_billed_t *meters, size_t nmeters,
                            const tg_invoice_billed_t *rebilled, size_t nrebilled, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int64_t now = inv->closed_us ? inv->closed_us : tg_wall_us();
    if (sq_begin(s, "invoice close", err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_invoice_insert, err);
    if (!st) goto fail;
    BIND_ROW(st, 1, inv, tenant);
    BIND_ROW(st, 2, inv, month);
    BIND_ROW(st, 3, inv, plan);
    sqlite3_bind_int64(st, 4, inv->plan_effective_us);
    sqlite3_bind_int64(st, 5, inv->total_micros);
    sqlite3_bind_int64(st, 6, now);
    int rc = sq_run(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        sq_rollback(s);
        tg_err_set(err, "%s is already closed for tenant \"%s\"", inv->month, inv->tenant);
        return TG_STORE_EXISTS;
    }
    if (rc != SQLITE_OK) {
        sq_fail(s, rc, "invoice close", err);
        goto fail;
    }
    for (size_t i = 0; i < nlines; i++)
        if (put_line(s, inv, (int)i, &lines[i], err) != 0) goto fail;
    for (size_t i = 0; i < nmeters; i++) {
        tg_invoice_billed_t b = meters[i];
        snprintf(b.month, sizeof b.month, "%s", inv->month);
        if (put_billed(s, inv->tenant, &b, 1, now, err) != 0) goto fail;
    }
    for (size_t i = 0; i < nrebilled; i++)
        if (put_billed(s, inv->tenant, &rebilled[i], 0, now, err) != 0) goto fail;
    return sq_commit(s, "invoice close", err);
fail:
    sq_rollback(s);
    return -1;
}

static int emit_line(sqlite3_stmt *st, const sink_t *k)
{
    tg_invoice_line_t r;
    sq_read_row(st, &tg_map_invoice_line, &r);
    return SINK_CALL(tg_invoice_line_t, k, &r);
}

/* tenant and month bound to q's ?1 and ?2, rows stepped to emit. */
static int each_of_month(sq_store_t *s, const sq_sql_t *q, const char *tenant, const char *month,
                         sq_emit_fn emit, sink_t k, const char *what, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, q, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, month, -1, SQLITE_STATIC);
    return sq_step_each(s, st, emit, k, what, err);
}

static int sq_invoice_get(tg_store_t *base, const char *tenant, const char *month,
                          tg_invoice_row_t *out, int (*cb)(const tg_invoice_line_t *, void *),
                          void *ud, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_invoice_get, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, month, -1, SQLITE_STATIC);
    tg_invoice_row_t row;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) sq_read_row(st, &tg_map_invoice, &row);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        tg_err_set(err, "%s is not closed for tenant \"%s\"", month, tenant);
        return TG_STORE_NOTFOUND;
    }
    if (rc != SQLITE_ROW) return sq_fail(s, rc, "invoice get", err);
    if (out) *out = row;
    if (!cb) return 0;
    return each_of_month(s, &sql_invoice_lines, tenant, month, emit_line,
                         SINK(tg_invoice_line_t, cb, ud), "invoice lines", err);
}

static int emit_invoice(sqlite3_stmt *st, const sink_t *k)
{
    tg_invoice_row_t r;
    sq_read_row(st, &tg_map_invoice, &r);
    return SINK_CALL(tg_invoice_row_t, k, &r);
}

static int sq_invoice_list(tg_store_t *base, const char *tenant,
                           int (*cb)(const tg_invoice_row_t *, void *), void *ud, tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_invoice_list, tenant, emit_invoice,
                       SINK(tg_invoice_row_t, cb, ud), "invoice list", err);
}

static int emit_billed(sqlite3_stmt *st, const sink_t *k)
{
    tg_invoice_billed_t r;
    sq_read_row(st, &tg_map_invoice_billed, &r);
    return SINK_CALL(tg_invoice_billed_t, k, &r);
}

static int sq_invoice_billed(tg_store_t *base, const char *tenant, const char *month,
                             int (*cb)(const tg_invoice_billed_t *, void *), void *ud,
                             tg_err_t *err)
{
    return each_of_month((sq_store_t *)base, &sql_invoice_billed, tenant, month, emit_billed,
                         SINK(tg_invoice_billed_t, cb, ud), "invoice billed", err);
}

/* ---- the export -------------------------------------------------------------------- */

static int emit_event(sqlite3_stmt *st, const sink_t *k)
{
    tg_event_t e;
    sq_read_row(st, &tg_map_event, &e);
    return SINK_CALL(tg_event_t, k, &e);
}

static int sq_event_range(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                          int (*cb)(const tg_event_t *, void *), void *ud, tg_err_t *err)
{
    return each_in_range((sq_store_t *)base, tenant ? &sql_event_range : &sql_event_range_all,
                         tenant, from_us, to_us, emit_event, SINK(tg_event_t, cb, ud),
                         "event range", err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_invoice_maps[] = {&tg_map_tenant_plan,    &tg_map_invoice,
                                              &tg_map_invoice_billed, &tg_map_invoice_line,
                                              &tg_map_event,          NULL};

const struct tg_store_invoice_ops sq_invoice_ops = {
    .plan_set = sq_plan_set,
    .plan_rm = sq_plan_rm,
    .plan_list = sq_plan_list,
    .plan_get = sq_plan_get,
    .tenant_plan_set = sq_tenant_plan_set,
    .tenant_plan_rm = sq_tenant_plan_rm,
    .tenant_plan_list = sq_tenant_plan_list,
    .usage = sq_plan_usage,
    .close = sq_invoice_close,
    .get = sq_invoice_get,
    .list = sq_invoice_list,
    .billed = sq_invoice_billed,
    .event_range = sq_event_range,
};
