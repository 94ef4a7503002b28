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

#endif
