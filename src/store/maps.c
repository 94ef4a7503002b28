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
