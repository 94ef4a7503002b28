/* The shared row mappings: see maps.h. */
#include "store/maps.h"

#include <stddef.h>

#include "types/event.h"
#include "types/plan.h"
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

/* ---- the dashboard's reads --------------------------------------------------------------- */

static const tg_col_t dash_rejection_cols[] = {
    TG_COL(tg_dash_rejection_t, ts_us, "ts_us", TG_COL_INT64),
    TG_COL(tg_dash_rejection_t, status, "status", TG_COL_INT),
    TG_COL(tg_dash_rejection_t, reason, "reason", TG_COL_TEXT),
    TG_COL(tg_dash_rejection_t, route, "route", TG_COL_TEXT),
    TG_COL(tg_dash_rejection_t, method, "method", TG_COL_TEXT),
    TG_COL(tg_dash_rejection_t, path, "path", TG_COL_TEXT),
};
const tg_rowmap_t tg_map_dash_rejection =
    TG_ROWMAP(tg_dash_rejection_t, "usage_events", dash_rejection_cols);

/* ---- plans and invoices (invoice_ops) ---------------------------------------------------- */

static const tg_col_t tenant_plan_cols[] = {
    TG_COL(tg_tenant_plan_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_tenant_plan_row_t, from_month, "from_month", TG_COL_TEXT),
    TG_COL(tg_tenant_plan_row_t, plan, "plan", TG_COL_TEXT),
    TG_COL(tg_tenant_plan_row_t, updated_us, "updated_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_tenant_plan =
    TG_ROWMAP(tg_tenant_plan_row_t, "tenant_plans", tenant_plan_cols);

static const tg_col_t invoice_cols[] = {
    TG_COL(tg_invoice_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_invoice_row_t, month, "month", TG_COL_TEXT),
    TG_COL(tg_invoice_row_t, plan, "plan", TG_COL_TEXT),
    TG_COL(tg_invoice_row_t, plan_effective_us, "plan_effective_us", TG_COL_INT64),
    TG_COL(tg_invoice_row_t, total_micros, "total_micros", TG_COL_INT64),
    TG_COL(tg_invoice_row_t, closed_us, "closed_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_invoice = TG_ROWMAP(tg_invoice_row_t, "invoices", invoice_cols);

static const tg_col_t billed_cols[] = {
    TG_COL(tg_invoice_billed_t, month, "month", TG_COL_TEXT),
    TG_COL_ENUM_OF(tg_invoice_billed_t, meter, "meter", tg_plan_meter_name, TG_PMETER_COUNT),
    TG_COL(tg_invoice_billed_t, match, "match", TG_COL_TEXT),
    TG_COL(tg_invoice_billed_t, measured, "measured", TG_COL_INT64),
    TG_COL(tg_invoice_billed_t, amount_micros, "amount_micros", TG_COL_INT64),
    TG_COL(tg_invoice_billed_t, closed_measured, "closed_measured", TG_COL_INT64),
    TG_COL(tg_invoice_billed_t, closed_amount_micros, "closed_amount_micros", TG_COL_INT64),
};
const tg_rowmap_t tg_map_invoice_billed =
    TG_ROWMAP(tg_invoice_billed_t, "invoice_meters", billed_cols);

static const tg_col_t line_cols[] = {
    TG_COL_ENUM_OF(tg_invoice_line_t, kind, "kind", tg_plan_line_kind_name, TG_LINE_COUNT),
    TG_COL_ENUM_OF(tg_invoice_line_t, meter, "meter", tg_plan_meter_name, TG_PMETER_COUNT),
    TG_COL(tg_invoice_line_t, match, "match", TG_COL_TEXT),
    TG_COL(tg_invoice_line_t, tier, "tier", TG_COL_INT),
    TG_COL(tg_invoice_line_t, tier_from, "tier_from", TG_COL_INT64),
    TG_COL(tg_invoice_line_t, tier_to, "tier_to", TG_COL_AMOUNT),
    TG_COL(tg_invoice_line_t, quantity, "quantity", TG_COL_INT64),
    TG_COL(tg_invoice_line_t, unit_micros, "unit_micros", TG_COL_INT64),
    TG_COL(tg_invoice_line_t, scale, "scale", TG_COL_INT64),
    TG_COL(tg_invoice_line_t, subtotal_micros, "subtotal_micros", TG_COL_INT64),
    TG_COL(tg_invoice_line_t, for_month, "for_month", TG_COL_TEXT),
};
const tg_rowmap_t tg_map_invoice_line = TG_ROWMAP(tg_invoice_line_t, "invoice_lines", line_cols);

/* An event read back whole: token counts NULL are TG_TOKENS_UNKNOWN (-1, as an amount not
 * set), the outcome's text its value, requests the count. */
static const char *outcome_name(int i)
{
    return tg_outcome_name((tg_outcome_t)i);
}

static const tg_col_t event_cols[] = {
    TG_COL(tg_event_t, id, "id", TG_COL_INT64),
    TG_COL(tg_event_t, ts_us, "ts_us", TG_COL_INT64),
    TG_COL(tg_event_t, tenant, "tenant", TG_COL_TEXT),
    TG_COL(tg_event_t, key_id, "key_id", TG_COL_TEXT),
    TG_COL(tg_event_t, route, "route", TG_COL_TEXT),
    TG_COL(tg_event_t, method, "method", TG_COL_TEXT),
    TG_COL(tg_event_t, path, "path", TG_COL_TEXT),
    TG_COL(tg_event_t, status, "status", TG_COL_INT),
    TG_COL_ENUM_OF(tg_event_t, outcome, "outcome", outcome_name, 3),
    TG_COL(tg_event_t, reason, "reason", TG_COL_TEXT),
    TG_COL(tg_event_t, latency_us, "latency_us", TG_COL_INT64),
    TG_COL(tg_event_t, bytes_in, "bytes_in", TG_COL_INT64),
    TG_COL(tg_event_t, bytes_out, "bytes_out", TG_COL_INT64),
    TG_COL(tg_event_t, model, "model", TG_COL_TEXT),
    TG_COL(tg_event_t, tokens_in, "tokens_in", TG_COL_AMOUNT),
    TG_COL(tg_event_t, tokens_out, "tokens_out", TG_COL_AMOUNT),
    TG_COL(tg_event_t, tokens_cached, "tokens_cached", TG_COL_AMOUNT),
    TG_COL(tg_event_t, tokens_cache_write, "tokens_cache_write", TG_COL_AMOUNT),
    TG_COL(tg_event_t, tool, "tool", TG_COL_TEXT),
    TG_COL(tg_event_t, cost_micros, "cost_micros", TG_COL_INT64),
    TG_COL(tg_event_t, cache, "cache", TG_COL_TEXT),
    TG_COL(tg_event_t, client_ip, "client_ip", TG_COL_TEXT),
    TG_COL(tg_event_t, request_id, "request_id", TG_COL_TEXT),
    TG_COL(tg_event_t, upstream, "upstream", TG_COL_TEXT),
    TG_COL(tg_event_t, rpc_method, "rpc_method", TG_COL_TEXT),
    TG_COL(tg_event_t, price_flag, "price_flag", TG_COL_TEXT),
    TG_COL(tg_event_t, count, "requests", TG_COL_INT64),
    TG_COL(tg_event_t, source, "source", TG_COL_TEXT),
};
const tg_rowmap_t tg_map_event = TG_ROWMAP(tg_event_t, "usage_events", event_cols);
