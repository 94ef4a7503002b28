/* PostgreSQL store, prices and budgets (the price_ops of backend.h), as sqlite_prices.c.
 * Their changes bump meta.policy_version like the policy rows (pg_mutate). The budget's
 * thresholds are a text column, "80,90,100", written and read by maps.c. */
#include "store/pg_int.h"

#include <stdio.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"
#include "util/clock.h"

/* A row of the same (meter, name, effective_us) is replaced as a whole (SQLite's INSERT OR
 * REPLACE). */
static const pg_sql_t sql_price_set = {
    .slot = PS_PRICE_SET,
    .sql = "INSERT INTO prices (meter, name, effective_us, input_micros, output_micros, "
           "cached_micros, cache_write_micros, request_micros, gb_micros, call_micros, created_us) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
           "ON CONFLICT (meter, name, effective_us) DO UPDATE SET "
           "input_micros = excluded.input_micros, output_micros = excluded.output_micros, "
           "cached_micros = excluded.cached_micros, "
           "cache_write_micros = excluded.cache_write_micros, "
           "request_micros = excluded.request_micros, gb_micros = excluded.gb_micros, "
           "call_micros = excluded.call_micros, created_us = excluded.created_us"};
static const pg_sql_t sql_price_rm = {
    .slot = PS_PRICE_RM,
    .sql = "DELETE FROM prices WHERE meter = $1 AND name = $2 AND effective_us = $3"};
static const pg_sql_t sql_price_rm_all = {
    .slot = PS_PRICE_RM_ALL, .sql = "DELETE FROM prices WHERE meter = $1 AND name = $2"};
/* Oldest first within a (meter, name): the order in which rows take over. */
static const pg_sql_t sql_price_list = {
    .slot = PS_PRICE_LIST,
    .select = &tg_map_price,
    .sql = "FROM prices ORDER BY CASE meter WHEN 'model' THEN 0 WHEN 'route' THEN 1 ELSE 2 END, "
           "name COLLATE \"C\", effective_us"};
static const pg_sql_t sql_budget_set = {
    .slot = PS_BUDGET_SET,
    .sql = "INSERT INTO budgets (tenant_id, monthly_micros, hard, thresholds, updated_us) VALUES "
           "($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET "
           "monthly_micros = excluded.monthly_micros, hard = excluded.hard, "
           "thresholds = excluded.thresholds, updated_us = excluded.updated_us"};
static const pg_sql_t sql_budget_rm = {.slot = PS_BUDGET_RM,
                                       .sql = "DELETE FROM budgets WHERE tenant_id = $1"};
static const pg_sql_t sql_budget_list = {
    .slot = PS_BUDGET_LIST,
    .select = &tg_map_budget,
    .sql =
        "FROM budgets WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id COLLATE \"C\""};

static int pg_price_set(tg_store_t *base, const tg_price_row_t *row, tg_err_t *err)
{
    if (tg_rowcheck_price(row, err) != 0) return -1;
    pg_params_t p = {0};
    PG_P_ROW(&p, row, meter);
    PG_P_ROW(&p, row, name);
    pg_p_int64(&p, row->effective_us);
    /* -1 (not set in this row) is NULL; tg_rowcheck_price refused other negatives. */
    pg_p_amount(&p, row->input_micros);
    pg_p_amount(&p, row->output_micros);
    pg_p_amount(&p, row->cached_micros);
    pg_p_amount(&p, row->cache_write_micros);
    pg_p_amount(&p, row->request_micros);
    pg_p_amount(&p, row->gb_micros);
    pg_p_amount(&p, row->call_micros);
    pg_p_int64(&p, row->created_us ? row->created_us : tg_wall_us());
    return pg_mutate((pg_store_t *)base, &sql_price_set, &p, PG_POLICY, "price set", err);
}

static int pg_price_rm(tg_store_t *base, const char *meter, const char *name, int64_t effective_us,
                       tg_err_t *err)
{
    int all = effective_us == -1;
    pg_params_t p = {0};
    pg_p_text(&p, meter);
    pg_p_text(&p, name);
    if (!all) pg_p_int64(&p, effective_us);
    int ret = pg_mutate((pg_store_t *)base, all ? &sql_price_rm_all : &sql_price_rm, &p, PG_POLICY,
                        "price rm", err);
    if (ret == TG_STORE_NOTFOUND) {
        char when[25];
        if (all)
            tg_err_set(err, "no price for %s \"%s\"", meter, name);
        else
            tg_err_set(err, "no price for %s \"%s\" from %s", meter, name,
                       (tg_utc_iso(effective_us, when), when));
    }
    return ret;
}

static int emit_price(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_price_row_t row;
    pg_read_row(s, r, i, &tg_map_price, &row);
    return SINK_CALL(tg_price_row_t, k, &row);
}

static int pg_price_list(tg_store_t *base, int (*cb)(const tg_price_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return pg_each_row((pg_store_t *)base, &sql_price_list, NULL, emit_price,
                       SINK(tg_price_row_t, cb, ud), "price list", err);
}

static int pg_budget_set(tg_store_t *base, const tg_budget_row_t *row, tg_err_t *err)
{
    if (tg_rowcheck_budget(row, err) != 0) return -1;
    char th[TG_BUDGET_NTHRESHOLDS * 5 + 1];
    tg_budget_thresholds_text(row, th, sizeof th);
    pg_params_t p = {0};
    PG_P_ROW(&p, row, tenant);
    pg_p_int64(&p, row->monthly_micros);
    pg_p_int64(&p, row->hard);
    pg_p_text(&p, th);
    pg_p_int64(&p, row->updated_us ? row->updated_us : tg_wall_us());
    return pg_mutate((pg_store_t *)base, &sql_budget_set, &p, PG_POLICY, "budget set", err);
}

static int pg_budget_rm(tg_store_t *base, const char *tenant, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    int ret = pg_mutate((pg_store_t *)base, &sql_budget_rm, &p, PG_POLICY, "budget rm", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no budget for tenant \"%s\"", tenant);
    return ret;
}

static int emit_budget(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_budget_row_t row;
    pg_read_row(s, r, i, &tg_map_budget, &row);
    return SINK_CALL(tg_budget_row_t, k, &row);
}

static int pg_budget_list(tg_store_t *base, const char *tenant,
                          int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    return pg_each_tenant_row((pg_store_t *)base, &sql_budget_list, 1, tenant, emit_budget,
                              SINK(tg_budget_row_t, cb, ud), "budget list", err);
}

const struct tg_store_price_ops pg_price_ops = {
    .price_set = pg_price_set,
    .price_rm = pg_price_rm,
    .price_list = pg_price_list,
    .budget_set = pg_budget_set,
    .budget_rm = pg_budget_rm,
    .budget_list = pg_budget_list,
};
