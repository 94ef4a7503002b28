/* The row mappings both backends read with (rowmap.h): one per row type whose columns read
 * alike in SQLite and PostgreSQL, defined once in maps.c. A backend whose SQL differs for a
 * row type keeps its own mapping next to that SQL. */
#ifndef TG_STORE_MAPS_H
#define TG_STORE_MAPS_H

#include <stddef.h>

#include "store/rowmap.h"
#include "types/rows.h"

/* tenants and api_keys (tenant_ops) */
extern const tg_rowmap_t tg_map_tenant;      /* tg_tenant_t from tenants */
extern const tg_rowmap_t tg_map_key;         /* tg_key_t from api_keys */
extern const tg_rowmap_t tg_map_auth;        /* tg_auth_row_t: every key joined with its tenant */
extern const tg_rowmap_t tg_map_admin_token; /* tg_admin_token_row_t from admin_tokens */

/* limits, pauses, ip_rules, tool_rules (policy_ops) */
extern const tg_rowmap_t tg_map_limit;     /* tg_limit_row_t from limits */
extern const tg_rowmap_t tg_map_pause;     /* tg_pause_row_t from pauses */
extern const tg_rowmap_t tg_map_ip_rule;   /* tg_ip_rule_row_t from ip_rules */
extern const tg_rowmap_t tg_map_tool_rule; /* tg_tool_rule_row_t from tool_rules */

/* prices and budgets (price_ops) */
extern const tg_rowmap_t tg_map_price;  /* tg_price_row_t; an amount not set is NULL and -1 */
extern const tg_rowmap_t tg_map_budget; /* tg_budget_row_t; thresholds read from their text */
#define TG_BUDGET_MAX_THRESHOLD 1000    /* percent: alerts up to ten times the budget */
#define TG_BUDGET_NTHRESHOLDS   ((int)(sizeof((tg_budget_row_t *)0)->thresholds / sizeof(int)))
/* The thresholds column's text, "80,90,100"; cap of TG_BUDGET_NTHRESHOLDS * 5 + 1 fits all. */
void tg_budget_thresholds_text(const tg_budget_row_t *r, char *buf, size_t cap);

/* alerts, alarms and alarm_events (alert_ops, alarm_ops) */
extern const tg_rowmap_t tg_map_alert;       /* tg_alert_row_t from alerts */
extern const tg_rowmap_t tg_map_alarm;       /* tg_alarm_row_t from alarms */
extern const tg_rowmap_t tg_map_alarm_event; /* tg_alarm_event_row_t from alarm_events */

/* outbox and outbox_deliveries (outbox_ops): each delivery joined with its notice, as
 * "outbox_deliveries d JOIN outbox o" */
extern const tg_rowmap_t tg_map_delivery; /* tg_notice_delivery_t */
/* the dashboard (dash_ops) */
extern const tg_rowmap_t tg_map_dash_rejection; /* tg_dash_rejection_t from usage_events */

/* plans and invoices (invoice_ops) */
extern const tg_rowmap_t tg_map_tenant_plan;    /* tg_tenant_plan_row_t from tenant_plans */
extern const tg_rowmap_t tg_map_invoice;        /* tg_invoice_row_t from invoices */
extern const tg_rowmap_t tg_map_invoice_billed; /* tg_invoice_billed_t from invoice_meters */
extern const tg_rowmap_t tg_map_invoice_line;   /* tg_invoice_line_t from invoice_lines */
extern const tg_rowmap_t tg_map_event; /* tg_event_t, whole, from usage_events (the export) */
/* usage reports (event_ops): tg_usage_row_t from usage_daily (by day), or summed from
 * usage_events per tenant and a group whose expression each query gives (column 2: NULL
 * here, passed to tg_rowmap_select as its grp) */
extern const tg_rowmap_t tg_map_usage_daily;
extern const tg_rowmap_t tg_map_usage_events;

#endif
