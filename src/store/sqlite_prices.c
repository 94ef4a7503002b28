/* SQLite store, prices and budgets (the price_ops of backend.h). Their changes bump
 * meta.policy_version like the policy rows (sq_mutate). What a budget has spent is read
 * from the daily aggregates (sq_spend, sqlite_events.c). */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"
#include "util/clock.h"

/* A row of the same (meter, name, effective_us) is replaced as a whole. */
static const sq_sql_t sql_price_set = {
    .slot = ST_PRICE_SET,
    .sql = "INSERT OR REPLACE INTO prices (meter, name, effective_us, input_micros, output_micros, "
           "cached_micros, cache_write_micros, request_micros, gb_micros, call_micros, created_us) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"};
static const sq_sql_t sql_price_rm = {
    .slot = ST_PRICE_RM,
    .sql = "DELETE FROM prices WHERE meter = ?1 AND name = ?2 AND effective_us = ?3"};
static const sq_sql_t sql_price_rm_all = {
    .slot = ST_PRICE_RM_ALL, .sql = "DELETE FROM prices WHERE meter = ?1 AND name = ?2"};
/* Oldest first within a (meter, name): the order in which rows take over. */
static const sq_sql_t sql_price_list = {
    .slot = ST_PRICE_LIST,
    .select = &tg_map_price,
    .sql = "FROM prices ORDER BY CASE meter WHEN 'model' "
           "THEN 0 WHEN 'route' THEN 1 ELSE 2 END, name, effective_us"};
static const sq_sql_t sql_budget_set = {
    .slot = ST_BUDGET_SET,
    .sql = "INSERT INTO budgets (tenant_id, monthly_micros, hard, thresholds, updated_us) VALUES "
           "(?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant_id) DO UPDATE SET "
           "monthly_micros = excluded.monthly_micros, hard = excluded.hard, "
           "thresholds = excluded.thresholds, updated_us = excluded.updated_us"};
static const sq_sql_t sql_budget_rm = {.slot = ST_BUDGET_RM,
                                       .sql = "DELETE FROM budgets WHERE tenant_id = ?1"};
static const sq_sql_t sql_budget_list = {
    .slot = ST_BUDGET_LIST,
    .select = &tg_map_budget,
    .sql = "FROM budgets WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id"};

/* Amounts: -1 (not set in this row) is NULL in the table, and back. */
static void bind_amount(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == -1)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static int sq_price_set(tg_store_t *base, const tg_price_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (tg_rowcheck_price(row, err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_price_set, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, meter);
    BIND_ROW(st, 2, row, name);
    sqlite3_bind_int64(st, 3, row->effective_us);
    bind_amount(st, 4, row->input_micros);
    bind_amount(st, 5, row->output_micros);
    bind_amount(st, 6, row->cached_micros);
    bind_amount(st, 7, row->cache_write_micros);
    bind_amount(st, 8, row->request_micros);
    bind_amount(st, 9, row->gb_micros);
    bind_amount(st, 10, row->call_micros);
    sqlite3_bind_int64(st, 11, row->created_us ? row->created_us : tg_wall_us());
    return sq_mutate(s, st, SQ_POLICY, "price set", err);
}

static int sq_price_rm(tg_store_t *base, const char *meter, const char *name, int64_t effective_us,
                       tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int all = effective_us == -1;
    sqlite3_stmt *st = sq_stmt(s, all ? &sql_price_rm_all : &sql_price_rm, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, meter, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (!all) sqlite3_bind_int64(st, 3, effective_us);
    int ret = sq_mutate(s, st, SQ_POLICY, "price rm", err);
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

static int emit_price(sqlite3_stmt *st, const sink_t *k)
{
    tg_price_row_t r;
    sq_read_row(st, &tg_map_price, &r);
    return SINK_CALL(tg_price_row_t, k, &r);
}

static int sq_price_list(tg_store_t *base, int (*cb)(const tg_price_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_price_list, NULL, emit_price,
                       SINK(tg_price_row_t, cb, ud), "price list", err);
}

static int sq_budget_set(tg_store_t *base, const tg_budget_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (tg_rowcheck_budget(row, err) != 0) return -1;
    char th[TG_BUDGET_NTHRESHOLDS * 5 + 1];
    tg_budget_thresholds_text(row, th, sizeof th);
    sqlite3_stmt *st = sq_stmt(s, &sql_budget_set, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, tenant);
    sqlite3_bind_int64(st, 2, row->monthly_micros);
    sqlite3_bind_int(st, 3, row->hard);
    sqlite3_bind_text(st, 4, th, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, row->updated_us ? row->updated_us : tg_wall_us());
    return sq_mutate(s, st, SQ_POLICY, "budget set", err);
}

static int sq_budget_rm(tg_store_t *base, const char *tenant, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_budget_rm, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int ret = sq_mutate(s, st, SQ_POLICY, "budget rm", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no budget for tenant \"%s\"", tenant);
    return ret;
}

static int emit_budget(sqlite3_stmt *st, const sink_t *k)
{
    tg_budget_row_t r;
    sq_read_row(st, &tg_map_budget, &r);
    return SINK_CALL(tg_budget_row_t, k, &r);
}

static int sq_budget_list(tg_store_t *base, const char *tenant,
                          int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_budget_list, tenant, emit_budget,
                       SINK(tg_budget_row_t, cb, ud), "budget list", err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_price_maps[] = {&tg_map_price, &tg_map_budget, NULL};

const struct tg_store_price_ops sq_price_ops = {
    .price_set = sq_price_set,
    .price_rm = sq_price_rm,
    .price_list = sq_price_list,
    .budget_set = sq_budget_set,
    .budget_rm = sq_budget_rm,
    .budget_list = sq_budget_list,
};
