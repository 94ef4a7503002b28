/* PostgreSQL store, alerts (the alert_ops of backend.h), as sqlite_alerts.c. Alerts are a
 * record, not policy: they bump no version. */
#include "store/pg_int.h"

#include "store/maps.h"
#include "store/rowcheck.h"
#include "util/clock.h"

static const pg_sql_t sql_alert_add = {
    .slot = PS_ALERT_ADD,
    .sql = "INSERT INTO alerts (kind, tenant_id, threshold, period, spend_micros, "
           "budget_micros, fired_us) VALUES ($1, $2, $3, $4, $5, $6, $7) "
           "ON CONFLICT (kind, tenant_id, threshold, period) DO NOTHING"};
static const pg_sql_t sql_alert_list = {
    .slot = PS_ALERT_LIST,
    .select = &tg_map_alert,
    .sql = "FROM alerts WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY id"};

/* One statement in autocommit: atomic on its own. Two processes recording the same crossing
 * at once: the second waits on the first's unique-index entry, then inserts nothing, so
 * exactly one of them sees *inserted = 1 (and sends the notice). */
static int pg_alert_add(tg_store_t *base, const tg_alert_row_t *row, int *inserted, tg_err_t *err)
{
    if (inserted) *inserted = 0;
    if (tg_rowcheck_alert(row, err) != 0) return -1;
    pg_params_t p = {0};
    PG_P_ROW(&p, row, kind);
    PG_P_ROW(&p, row, tenant);
    pg_p_int64(&p, row->threshold);
    PG_P_ROW(&p, row, period);
    pg_p_int64(&p, row->spend_micros);
    pg_p_int64(&p, row->budget_micros);
    pg_p_int64(&p, row->fired_us ? row->fired_us : tg_wall_us());
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_alert_add, &p, &r, "alert add", err);
    if (ret != 0) return ret;
    if (inserted) *inserted = pg_changes(r) > 0;
    PQclear(r);
    return 0;
}

static int emit_alert(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_alert_row_t row;
    pg_read_row(s, r, i, &tg_map_alert, &row);
    return SINK_CALL(tg_alert_row_t, k, &row);
}

static int pg_alert_list(tg_store_t *base, const char *tenant,
                         int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err)
{
    return pg_each_tenant_row((pg_store_t *)base, &sql_alert_list, 1, tenant, emit_alert,
                              SINK(tg_alert_row_t, cb, ud), "alert list", err);
}

const struct tg_store_alert_ops pg_alert_ops = {
    .alert_add = pg_alert_add,
    .alert_list = pg_alert_list,
};
