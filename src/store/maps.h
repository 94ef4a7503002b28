/* The row mappings both backends read with (rowmap.h): one per row type whose columns read
 * alike in SQLite and PostgreSQL, defined once in maps.c. A backend whose SQL differs for a
 * row type keeps its own mapping next to that SQL. */
#ifndef TG_STORE_MAPS_H
#define TG_STORE_MAPS_H

#include "store/rowmap.h"

/* tenants and api_keys (tenant_ops) */
extern const tg_rowmap_t tg_map_tenant; /* tg_tenant_t from tenants */
extern const tg_rowmap_t tg_map_key;    /* tg_key_t from api_keys */
extern const tg_rowmap_t tg_map_auth;   /* tg_auth_row_t: every key joined with its tenant */

/* the dashboard (dash_ops) */
extern const tg_rowmap_t tg_map_dash_rejection; /* tg_dash_rejection_t from usage_events */

/* plans and invoices (invoice_ops) */
extern const tg_rowmap_t tg_map_tenant_plan;    /* tg_tenant_plan_row_t from tenant_plans */
extern const tg_rowmap_t tg_map_invoice;        /* tg_invoice_row_t from invoices */
extern const tg_rowmap_t tg_map_invoice_billed; /* tg_invoice_billed_t from invoice_meters */
extern const tg_rowmap_t tg_map_invoice_line;   /* tg_invoice_line_t from invoice_lines */
extern const tg_rowmap_t tg_map_event; /* tg_event_t, whole, from usage_events (the export) */

#endif
