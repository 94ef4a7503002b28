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

/* usage reports (event_ops): tg_usage_row_t from usage_daily (by day), or summed from
 * usage_events per tenant and a group whose expression each query gives (column 2: NULL
 * here, passed to tg_rowmap_select as its grp) */
extern const tg_rowmap_t tg_map_usage_daily;
extern const tg_rowmap_t tg_map_usage_events;

#endif
