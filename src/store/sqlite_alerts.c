/* SQLite store, alerts (the alert_ops of backend.h). Alerts are a record, not policy:
 * they bump no version. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"
#include "util/clock.h"

static const sq_sql_t sql_alert_add = {
    .slot = ST_ALERT_ADD,
    .sql = "INSERT INTO alerts (kind, tenant_id, threshold, period, spend_micros, "
           "budget_micros, fired_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
           "ON CONFLICT (kind, tenant_id, threshold, period) DO NOTHING"};
static const sq_sql_t sql_alert_list = {
    .slot = ST_ALERT_LIST,
    .select = &tg_map_alert,
    .sql = "FROM alerts WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY id"};

/* One statement in autocommit: atomic on its own, and whether it inserted is what
 * sqlite3_changes says. */
static int sq_alert_add(tg_store_t *base, const tg_alert_row_t *row, int *inserted, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (inserted) *inserted = 0;
    if (tg_rowcheck_alert(row, err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_alert_add, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, kind);
    BIND_ROW(st, 2, row, tenant);
    sqlite3_bind_int(st, 3, row->threshold);
    BIND_ROW(st, 4, row, period);
    sqlite3_bind_int64(st, 5, row->spend_micros);
    sqlite3_bind_int64(st, 6, row->budget_micros);
    sqlite3_bind_int64(st, 7, row->fired_us ? row->fired_us : tg_wall_us());
    int rc = sq_run(st);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "alert add", err);
    if (inserted) *inserted = sqlite3_changes(s->db) > 0;
    return 0;
}

static int emit_alert(sqlite3_stmt *st, const sink_t *k)
{
    tg_alert_row_t r;
    sq_read_row(st, &tg_map_alert, &r);
    return SINK_CALL(tg_alert_row_t, k, &r);
}

static int sq_alert_list(tg_store_t *base, const char *tenant,
                         int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_alert_list, tenant, emit_alert,
                       SINK(tg_alert_row_t, cb, ud), "alert list", err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_alert_maps[] = {&tg_map_alert, NULL};

const struct tg_store_alert_ops sq_alert_ops = {
    .alert_add = sq_alert_add,
    .alert_list = sq_alert_list,
};
