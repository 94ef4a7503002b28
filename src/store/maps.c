/* The shared row mappings: see maps.h. */
#include "store/maps.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "types/notice.h"
#include "types/event.h"
#include "types/plan.h"
#include "types/rows.h"
#include "store/store.h"

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
    TG_COL(tg_key_t, expires_us, "expires_us", TG_COL_INT64),
    TG_COL(tg_key_t, rotated_from, "rotated_from", TG_COL_TEXT),
    TG_COL(tg_key_t, signing, "signing_secret IS NOT NULL", TG_COL_FLAG),
};
const tg_rowmap_t tg_map_key = TG_ROWMAP(tg_key_t, "api_keys", key_cols);

/* The row's strings point into the statement's result. */
static const tg_col_t auth_cols[] = {
    TG_COL_BLOB_PTR_N(tg_auth_row_t, sha256, "k.sha256", 32),
    TG_COL(tg_auth_row_t, key_id, "k.id", TG_COL_STR),
    TG_COL(tg_auth_row_t, tenant_id, "k.tenant_id", TG_COL_STR),
    TG_COL(tg_auth_row_t, key_active, "k.status = 'active'", TG_COL_INT),
    TG_COL(tg_auth_row_t, tenant_active, "t.status = 'active'", TG_COL_INT),
    TG_COL(tg_auth_row_t, expires_us, "k.expires_us", TG_COL_INT64),
    TG_COL(tg_auth_row_t, signing, "k.signing_secret IS NOT NULL", TG_COL_FLAG),
    TG_COL(tg_auth_row_t, signing_sealed, "k.signing_secret", TG_COL_BLOB),
};
const tg_rowmap_t tg_map_auth =
    TG_ROWMAP(tg_auth_row_t, "api_keys k JOIN tenants t ON t.id = k.tenant_id", auth_cols);

/* ---- admin_tokens (admin_token_ops) ------------------------------------------------------- */

static const tg_col_t admin_token_cols[] = {
    TG_COL(tg_admin_token_row_t, id, "id", TG_COL_TEXT),
    TG_COL(tg_admin_token_row_t, sha256, "sha256", TG_COL_BLOB),
    TG_COL(tg_admin_token_row_t, name, "name", TG_COL_TEXT),
    TG_COL(tg_admin_token_row_t, role, "role", TG_COL_TEXT),
    TG_COL(tg_admin_token_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_admin_token_row_t, created_us, "created_us", TG_COL_INT64),
    TG_COL(tg_admin_token_row_t, expires_us, "expires_us", TG_COL_INT64),
    TG_COL(tg_admin_token_row_t, revoked_us, "revoked_us", TG_COL_INT64),
    TG_COL(tg_admin_token_row_t, last_used_us, "last_used_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_admin_token =
    TG_ROWMAP(tg_admin_token_row_t, "admin_tokens", admin_token_cols);

/* ---- limits, pauses, ip_rules, tool_rules (policy_ops) ------------------------------------ */

static const tg_col_t limit_cols[] = {
    TG_COL(tg_limit_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_limit_row_t, scope, "scope", TG_COL_TEXT),
    TG_COL(tg_limit_row_t, value, "value", TG_COL_TEXT),
    TG_COL(tg_limit_row_t, limit, "requests", TG_COL_INT64),
    TG_COL(tg_limit_row_t, period_s, "period_s", TG_COL_INT64),
    TG_COL(tg_limit_row_t, burst, "burst", TG_COL_INT64),
    TG_COL(tg_limit_row_t, concurrency, "concurrency", TG_COL_INT64),
    TG_COL(tg_limit_row_t, updated_us, "updated_us", TG_COL_INT64),
    TG_COL(tg_limit_row_t, tokens, "tokens", TG_COL_INT64),
    TG_COL(tg_limit_row_t, tokens_period_s, "tokens_period_s", TG_COL_INT64),
};
const tg_rowmap_t tg_map_limit = TG_ROWMAP(tg_limit_row_t, "limits", limit_cols);

static const tg_col_t pause_cols[] = {
    TG_COL(tg_pause_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_pause_row_t, reason, "reason", TG_COL_TEXT),
    TG_COL(tg_pause_row_t, created_us, "created_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_pause = TG_ROWMAP(tg_pause_row_t, "pauses", pause_cols);

/* IP rules and tool rules: one shape, (tenant, action, value), in two tables. */
static const tg_col_t ip_rule_cols[] = {
    TG_COL(tg_ip_rule_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_ip_rule_row_t, action, "action", TG_COL_TEXT),
    TG_COL(tg_ip_rule_row_t, cidr, "cidr", TG_COL_TEXT),
    TG_COL(tg_ip_rule_row_t, created_us, "created_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_ip_rule = TG_ROWMAP(tg_ip_rule_row_t, "ip_rules", ip_rule_cols);

static const tg_col_t tool_rule_cols[] = {
    TG_COL(tg_tool_rule_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_tool_rule_row_t, action, "action", TG_COL_TEXT),
    TG_COL(tg_tool_rule_row_t, pattern, "pattern", TG_COL_TEXT),
    TG_COL(tg_tool_rule_row_t, created_us, "created_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_tool_rule = TG_ROWMAP(tg_tool_rule_row_t, "tool_rules", tool_rule_cols);

/* ---- prices and budgets (price_ops) ------------------------------------------------------ */

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
const tg_rowmap_t tg_map_price = TG_ROWMAP(tg_price_row_t, "prices", price_cols);

/* budgets.thresholds is text, "80,90,100": written by tg_budget_thresholds_text, read back
 * leniently (a row written by hand): what is not a number in range is skipped, and at most
 * TG_BUDGET_NTHRESHOLDS are kept. */
void tg_budget_thresholds_text(const tg_budget_row_t *r, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->nthresholds && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", r->thresholds[i]);
}

static void read_thresholds(const char *s, void *row)
{
    tg_budget_row_t *r = row;
    r->nthresholds = 0;
    while (s && *s && r->nthresholds < TG_BUDGET_NTHRESHOLDS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end != s && v >= 1 && v <= TG_BUDGET_MAX_THRESHOLD)
            r->thresholds[r->nthresholds++] = (int)v;
        s = end != s ? end : s + 1;
        while (*s == ',' || *s == ' ')
            s++;
    }
}

static const tg_col_t budget_cols[] = {
    TG_COL(tg_budget_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_budget_row_t, monthly_micros, "monthly_micros", TG_COL_INT64),
    TG_COL(tg_budget_row_t, hard, "hard", TG_COL_FLAG),
    TG_COL_CUSTOM_FN(tg_budget_row_t, "thresholds", read_thresholds),
    TG_COL(tg_budget_row_t, updated_us, "updated_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_budget = TG_ROWMAP(tg_budget_row_t, "budgets", budget_cols);

/* ---- alerts, alarms, alarm_events ----------------------------------------------------------- */

static const tg_col_t alert_cols[] = {
    TG_COL(tg_alert_row_t, id, "id", TG_COL_INT64),
    TG_COL(tg_alert_row_t, kind, "kind", TG_COL_TEXT),
    TG_COL(tg_alert_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_alert_row_t, threshold, "threshold", TG_COL_INT),
    TG_COL(tg_alert_row_t, period, "period", TG_COL_TEXT),
    TG_COL(tg_alert_row_t, spend_micros, "spend_micros", TG_COL_INT64),
    TG_COL(tg_alert_row_t, budget_micros, "budget_micros", TG_COL_INT64),
    TG_COL(tg_alert_row_t, fired_us, "fired_us", TG_COL_INT64),
};
const tg_rowmap_t tg_map_alert = TG_ROWMAP(tg_alert_row_t, "alerts", alert_cols);

static const tg_col_t alarm_cols[] = {
    TG_COL(tg_alarm_row_t, name, "name", TG_COL_TEXT),
    TG_COL(tg_alarm_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_alarm_row_t, kind, "kind", TG_COL_TEXT),
    TG_COL(tg_alarm_row_t, state, "state", TG_COL_TEXT),
    TG_COL(tg_alarm_row_t, value, "value", TG_COL_DOUBLE),
    TG_COL(tg_alarm_row_t, threshold, "threshold", TG_COL_DOUBLE),
    TG_COL(tg_alarm_row_t, baseline, "baseline", TG_COL_DOUBLE),
    TG_COL(tg_alarm_row_t, since_us, "since_us", TG_COL_INT64),
    TG_COL(tg_alarm_row_t, started_us, "started_us", TG_COL_INT64),
    TG_COL(tg_alarm_row_t, updated_us, "updated_us", TG_COL_INT64),
    TG_COL(tg_alarm_row_t, seq, "seq", TG_COL_INT64),
    TG_COL(tg_alarm_row_t, action, "action", TG_COL_TEXT),
};
const tg_rowmap_t tg_map_alarm = TG_ROWMAP(tg_alarm_row_t, "alarms", alarm_cols);

static const tg_col_t alarm_event_cols[] = {
    TG_COL(tg_alarm_event_row_t, id, "id", TG_COL_INT64),
    TG_COL(tg_alarm_event_row_t, notice_id, "notice_id", TG_COL_TEXT),
    TG_COL(tg_alarm_event_row_t, name, "name", TG_COL_TEXT),
    TG_COL(tg_alarm_event_row_t, tenant, "tenant_id", TG_COL_TEXT),
    TG_COL(tg_alarm_event_row_t, kind, "kind", TG_COL_TEXT),
    TG_COL(tg_alarm_event_row_t, from_state, "from_state", TG_COL_TEXT),
    TG_COL(tg_alarm_event_row_t, to_state, "to_state", TG_COL_TEXT),
    TG_COL(tg_alarm_event_row_t, value, "value", TG_COL_DOUBLE),
    TG_COL(tg_alarm_event_row_t, threshold, "threshold", TG_COL_DOUBLE),
    TG_COL(tg_alarm_event_row_t, baseline, "baseline", TG_COL_DOUBLE),
    TG_COL(tg_alarm_event_row_t, window_s, "window_s", TG_COL_INT64),
    TG_COL(tg_alarm_event_row_t, time_us, "time_us", TG_COL_INT64),
    TG_COL(tg_alarm_event_row_t, seq, "seq", TG_COL_INT64),
    TG_COL(tg_alarm_event_row_t, action, "action", TG_COL_TEXT),
    TG_COL(tg_alarm_event_row_t, summary, "summary", TG_COL_TEXT),
};
const tg_rowmap_t tg_map_alarm_event =
    TG_ROWMAP(tg_alarm_event_row_t, "alarm_events", alarm_event_cols);

/* ---- outbox and outbox_deliveries ----------------------------------------------------------- */

#define NOTICE(f)    offsetof(tg_notice_delivery_t, notice.f)
#define NOTICE_SZ(f) TG_FIELD_SIZE(tg_notice_delivery_t, notice.f)

#define NCOL(f, name, kind)                                                                        \
    {                                                                                              \
        (name), (kind), NOTICE(f), NOTICE_SZ(f), NULL, NULL                                        \
    }

static const tg_col_t delivery_cols[] = {
    NCOL(id, "o.id", TG_COL_TEXT),
    NCOL(kind, "o.kind", TG_COL_TEXT),
    NCOL(alarm, "o.alarm", TG_COL_TEXT),
    NCOL(alarm_kind, "o.alarm_kind", TG_COL_TEXT),
    NCOL(tenant, "o.tenant_id", TG_COL_TEXT),
    NCOL(state, "o.state", TG_COL_TEXT),
    NCOL(severity, "o.severity", TG_COL_TEXT),
    NCOL(value, "o.value", TG_COL_DOUBLE),
    NCOL(threshold, "o.threshold", TG_COL_DOUBLE),
    NCOL(baseline, "o.baseline", TG_COL_DOUBLE),
    NCOL(window_s, "o.window_s", TG_COL_INT64),
    NCOL(time_us, "o.time_us", TG_COL_INT64),
    NCOL(started_us, "o.started_us", TG_COL_INT64),
    NCOL(summary, "o.summary", TG_COL_TEXT),
    TG_COL(tg_notice_delivery_t, created_us, "o.created_us", TG_COL_INT64),
    TG_COL(tg_notice_delivery_t, notifier, "d.notifier", TG_COL_TEXT),
    TG_COL(tg_notice_delivery_t, status, "d.status", TG_COL_TEXT),
    TG_COL(tg_notice_delivery_t, attempts, "d.attempts", TG_COL_INT),
    TG_COL(tg_notice_delivery_t, next_us, "d.next_us", TG_COL_INT64),
    TG_COL(tg_notice_delivery_t, updated_us, "d.updated_us", TG_COL_INT64),
    TG_COL(tg_notice_delivery_t, error, "d.error", TG_COL_TEXT),
    TG_COL(tg_notice_delivery_t, sealed, "o.sealed", TG_COL_TEXT),
};
const tg_rowmap_t tg_map_delivery = TG_ROWMAP(
    tg_notice_delivery_t, "outbox_deliveries d JOIN outbox o ON o.id = d.notice_id", delivery_cols);
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
    TG_COL(tg_event_t, auth, "auth", TG_COL_TEXT),
    TG_COL(tg_event_t, subject, "subject", TG_COL_TEXT),
};
const tg_rowmap_t tg_map_event = TG_ROWMAP(tg_event_t, "usage_events", event_cols);
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
