/* SQLite store, prices and budgets (the price_ops of backend.h). Their changes bump
 * meta.policy_version like the policy rows (sq_mutate). What a budget has spent is read
 * from the daily aggregates (sq_spend, sqlite_events.c). */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

static void read_thresholds(const char *text, void *row); /* "80,90,100", below */

/* An amount not set in a row is NULL in the table and -1 in the row (TG_COL_AMOUNT). */
static const tg_col_t price_cols[] = {
    TG_COL(tg_price_row_t, meter, "meter", TG_COL_TEXT),
    TG_COL(tg_price_row_t, name, "name", TG_COL_TEXT),
    TG_COL(tg_price_row_t, effective_us, "effective_us", TG_COL_INT64),
    TG_COL(tg_price_row_t, input_micros, "input_micros", TG_COL_AMOUNT),
    TG_COL(tg_price_row_t, output_micros, "output_micros", TG_COL_AMOUNT),
    TG_COL(tg_price_row_t, cached_micros, "cached_micros", TG_COL_AMOUNT),
    TG_COL(tg_price_row_t, cache_write_micros, "cache_write_micros", TG_COL_AMOUNT),
    TG_COL(tg_price_row_t, request_micros, "request_micros", TG_COL_AMOUNT),
    TG_COL(tg_price_row_t, gb_micros, "gb_micros", TG_COL_AMOUNT),
    TG_COL(tg_price_row_t, call_micros, "call_micros", TG_COL_AMOUNT),
    TG_COL(tg_price_row_t, created_us, "created_us", TG_COL_INT64),
};
static const tg_rowmap_t price_map = TG_ROWMAP(tg_price_row_t, "prices", price_cols);

static const tg_col_t budget_cols[] = {
    TG_COL(tg_budget_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_budget_row_t, monthly_micros, "monthly_micros", TG_COL_INT64),
    TG_COL(tg_budget_row_t, hard, "hard", TG_COL_FLAG),
    TG_COL_CUSTOM_FN(tg_budget_row_t, "thresholds", read_thresholds),
    TG_COL(tg_budget_row_t, updated_us, "updated_us", TG_COL_INT64),
};
static const tg_rowmap_t budget_map = TG_ROWMAP(tg_budget_row_t, "budgets", budget_cols);

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
    .select = &price_map,
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
    .select = &budget_map,
    .sql = "FROM budgets WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id"};

static int valid_meter(const char *m)
{
    return strcmp(m, "model") == 0 || strcmp(m, "route") == 0 || strcmp(m, "tool") == 0;
}

/* Amounts: -1 (not set in this row) is NULL in the table, and back. */
static void bind_amount(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == -1)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

/* "2026-03-01T00:00:00.000Z", for messages about an effective time. */
static const char *iso(int64_t us, char buf[25])
{
    tg_utc_iso(us, buf);
    return buf;
}

/* The table's CHECKs in words: each meter has its own amounts; a row sets at least one. */
static int check_price(const tg_price_row_t *r, tg_err_t *err)
{
    char meter[sizeof r->meter + 1];
    snprintf(meter, sizeof meter, "%.*s", (int)sizeof r->meter, r->meter);
    if (!valid_meter(meter))
        return tg_err_set(err, "price set: invalid meter \"%s\" (expected model, route or tool)",
                          meter);
    if (!r->name[0]) return tg_err_set(err, "price set: empty name");
    if (r->effective_us < 0) return tg_err_set(err, "price set: effective time before 1970");
    static const char *const names[7] = {"input",   "output", "cached", "cache_write",
                                         "request", "gb",     "call"};
    static const char *const owner[7] = {"model", "model", "model", "model",
                                         "route", "route", "tool"};
    const int64_t v[7] = {r->input_micros,       r->output_micros,  r->cached_micros,
                          r->cache_write_micros, r->request_micros, r->gb_micros,
                          r->call_micros};
    int any = 0;
    for (int i = 0; i < 7; i++) {
        if (v[i] == -1) continue;
        if (v[i] < 0)
            return tg_err_set(err, "price set: negative %s amount %lld", names[i], (long long)v[i]);
        if (strcmp(owner[i], meter) != 0)
            return tg_err_set(err, "price set: a %s price has no %s amount", meter, names[i]);
        any = 1;
    }
    if (!any) return tg_err_set(err, "price set: the row sets no amount");
    return 0;
}

static int sq_price_set(tg_store_t *base, const tg_price_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (check_price(row, err) != 0) return -1;
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
            tg_err_set(err, "no price for %s \"%s\" from %s", meter, name, iso(effective_us, when));
    }
    return ret;
}

static int emit_price(sqlite3_stmt *st, const sink_t *k)
{
    tg_price_row_t r;
    sq_read_row(st, &price_map, &r);
    return SINK_CALL(tg_price_row_t, k, &r);
}

static int sq_price_list(tg_store_t *base, int (*cb)(const tg_price_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_price_list, NULL, emit_price,
                       SINK(tg_price_row_t, cb, ud), "price list", err);
}

#define MAX_THRESHOLD 1000 /* percent: alerts up to ten times the budget */
#define NTHRESHOLDS   ((int)(sizeof((tg_budget_row_t *)0)->thresholds / sizeof(int)))

static int check_budget(const tg_budget_row_t *r, tg_err_t *err)
{
    if (!r->tenant[0]) return tg_err_set(err, "budget set: empty tenant");
    if (r->monthly_micros <= 0) return tg_err_set(err, "budget set: the budget must be above 0");
    if (r->hard != 0 && r->hard != 1) return tg_err_set(err, "budget set: hard must be 0 or 1");
    if (r->nthresholds < 0 || r->nthresholds > NTHRESHOLDS)
        return tg_err_set(err, "budget set: %d thresholds (at most %d)", r->nthresholds,
                          NTHRESHOLDS);
    for (int i = 0; i < r->nthresholds; i++) {
        if (r->thresholds[i] < 1 || r->thresholds[i] > MAX_THRESHOLD)
            return tg_err_set(err, "budget set: threshold %d%% (expected 1 to %d)",
                              r->thresholds[i], MAX_THRESHOLD);
        if (i && r->thresholds[i] <= r->thresholds[i - 1])
            return tg_err_set(err, "budget set: thresholds must ascend (%d after %d)",
                              r->thresholds[i], r->thresholds[i - 1]);
    }
    return 0;
}

/* "80,90,100" and back. Reading is lenient (a row written by hand): what is not a
 * number in range is skipped, and at most NTHRESHOLDS are kept. */
static void thresholds_text(const tg_budget_row_t *r, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->nthresholds && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", r->thresholds[i]);
}

static void thresholds_parse(const char *s, tg_budget_row_t *r)
{
    r->nthresholds = 0;
    while (s && *s && r->nthresholds < NTHRESHOLDS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end != s && v >= 1 && v <= MAX_THRESHOLD) r->thresholds[r->nthresholds++] = (int)v;
        s = end != s ? end : s + 1;
        while (*s == ',' || *s == ' ')
            s++;
    }
}

static int sq_budget_set(tg_store_t *base, const tg_budget_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (check_budget(row, err) != 0) return -1;
    char th[NTHRESHOLDS * 5 + 1];
    thresholds_text(row, th, sizeof th);
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

static void read_thresholds(const char *text, void *row)
{
    thresholds_parse(text, row);
}

static int emit_budget(sqlite3_stmt *st, const sink_t *k)
{
    tg_budget_row_t r;
    sq_read_row(st, &budget_map, &r);
    return SINK_CALL(tg_budget_row_t, k, &r);
}

static int sq_budget_list(tg_store_t *base, const char *tenant,
                          int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_budget_list, tenant, emit_budget,
                       SINK(tg_budget_row_t, cb, ud), "budget list", err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_price_maps[] = {&price_map, &budget_map, NULL};

const struct tg_store_price_ops sq_price_ops = {
    .price_set = sq_price_set,
    .price_rm = sq_price_rm,
    .price_list = sq_price_list,
    .budget_set = sq_budget_set,
    .budget_rm = sq_budget_rm,
    .budget_list = sq_budget_list,
};
