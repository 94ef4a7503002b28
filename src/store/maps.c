/* The shared row mappings: see maps.h. */
#include "store/maps.h"

#include <stddef.h>

#include "types/rows.h"

/* ---- tenants and api_keys ---------------------------------------------------------------- */

static const tg_col_t tenant_cols[] = {
    TG_COL(tg_tenant_t, id, "id", TG_COL_TEXT),
    TG_COL(tg_tenant_t, name, "name", TG_COL_TEXT),
    TG_COL(tg_tenant_t, status, "status", TG_COL_TEXT),
    TG_COL(tg_tenant_t, created_us, "created_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_tenant = TG_ROWMAP(tg_tenant_t, "tenants", tenant_cols);

static const tg_col_t key_cols[] = {
    TG_COL(tg_key_t, id, "id", TG_COL_TEXT),
    TG_COL(tg_key_t, tenant_id, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_key_t, sha256, "sha256", TG_COL_BLOB),
    TG_COL(tg_key_t, prefix, "prefix", TG_COL_TEXT),
    TG_COL(tg_key_t, name, "name", TG_COL_TEXT),
    TG_COL(tg_key_t, status, "status", TG_COL_TEXT),
    TG_COL(tg_key_t, created_us, "created_us", TG_COL_INT64),
    TG_COL(tg_key_t, last_used_us, "last_used_us", TG_COL_INT64), /* NULL reads as 0 = never */
};
const tg_rowmap_t tg_map_key = TG_ROWMAP(tg_key_t, "api_keys", key_cols);

/* The row's strings point into the statement's result. */
static const tg_col_t auth_cols[] = {
    TG_COL_BLOB_PTR_N(tg_auth_row_t, sha256, "k.sha256", 32),
    TG_COL(tg_auth_row_t, key_id, "k.id", TG_COL_STR),
    TG_COL(tg_auth_row_t, tenant_id, "k.tenant_id", TG_COL_STR),
    TG_COL(tg_auth_row_t, key_active, "k.status = 'active'", TG_COL_INT),
    TG_COL(tg_auth_row_t, tenant_active, "t.status = 'active'", TG_COL_INT),
};
const tg_rowmap_t tg_map_auth =
    TG_ROWMAP(tg_auth_row_t, "api_keys k JOIN tenants t ON t.id = k.tenant_id", auth_cols);

/* ---- usage reports (event_ops) --------------------------------------------------------- */

/* A usage report's row: from the daily aggregates when by day, else summed from the
 * events per tenant and group (the group's expression depends on the report: NULL here,
 * given to tg_rowmap_select per query). The strings point into the statement (or result). The
 * outcome sums are CASE expressions, not SQLite's boolean arithmetic, so both dialects read them.
 */
static const tg_col_t usage_daily_cols[] = {
    TG_COL(tg_usage_row_t, tenant, "tenant_id", TG_COL_STR),
    TG_COL(tg_usage_row_t, group, "day", TG_COL_STR),
    TG_COL(tg_usage_row_t, requests, "requests", TG_COL_INT64),
    TG_COL(tg_usage_row_t, billable, "billable", TG_COL_INT64),
    TG_COL(tg_usage_row_t, failed, "failed", TG_COL_INT64),
    TG_COL(tg_usage_row_t, rejected, "rejected", TG_COL_INT64),
    TG_COL(tg_usage_row_t, bytes_in, "bytes_in", TG_COL_INT64),
    TG_COL(tg_usage_row_t, bytes_out, "bytes_out", TG_COL_INT64),
    TG_COL(tg_usage_row_t, tokens_in, "tokens_in", TG_COL_INT64),
    TG_COL(tg_usage_row_t, tokens_out, "tokens_out", TG_COL_INT64),
    TG_COL(tg_usage_row_t, cost_micros, "cost_micros", TG_COL_INT64),
};
const tg_rowmap_t tg_map_usage_daily = TG_ROWMAP(tg_usage_row_t, "usage_daily", usage_daily_cols);

static const tg_col_t usage_events_cols[] = {
    TG_COL(tg_usage_row_t, tenant, "tenant", TG_COL_STR),
    TG_COL(tg_usage_row_t, group, NULL, TG_COL_STR),
    TG_COL(tg_usage_row_t, requests, "sum(requests)", TG_COL_INT64),
    TG_COL(tg_usage_row_t, billable, "sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END)",
           TG_COL_INT64),
    TG_COL(tg_usage_row_t, failed, "sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END)",
           TG_COL_INT64),
    TG_COL(tg_usage_row_t, rejected, "sum(CASE WHEN outcome = 'rejected' THEN requests ELSE 0 END)",
           TG_COL_INT64),
    TG_COL(tg_usage_row_t, bytes_in, "sum(bytes_in)", TG_COL_INT64),
    TG_COL(tg_usage_row_t, bytes_out, "sum(bytes_out)", TG_COL_INT64),
    TG_COL(tg_usage_row_t, tokens_in, "coalesce(sum(tokens_in), 0)", TG_COL_INT64),
    TG_COL(tg_usage_row_t, tokens_out, "coalesce(sum(tokens_out), 0)", TG_COL_INT64),
    TG_COL(tg_usage_row_t, cost_micros, "sum(cost_micros)", TG_COL_INT64),
};
const tg_rowmap_t tg_map_usage_events =
    TG_ROWMAP(tg_usage_row_t, "usage_events", usage_events_cols);
