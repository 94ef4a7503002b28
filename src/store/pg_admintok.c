/* PostgreSQL store, admin API tokens (the admin_token_ops of backend.h, migration 15): as
 * sqlite_admintok.c. Adding and revoking bump meta.auth_version (pg_mutate); touch does
 * not. */
#include "store/pg_int.h"

#include "store/maps.h"

static const pg_sql_t sql_add = {
    .slot = PS_ADMIN_TOKEN_ADD,
    .sql = "INSERT INTO admin_tokens (id, sha256, name, role, tenant_id, created_us, "
           "expires_us) VALUES ($1, $2, $3, $4, $5, $6, $7)"};
static const pg_sql_t sql_list = {.slot = PS_ADMIN_TOKEN_LIST,
                                  .select = &tg_map_admin_token,
                                  .sql = "FROM admin_tokens ORDER BY id COLLATE \"C\""};
static const pg_sql_t sql_revoke = {
    .slot = PS_ADMIN_TOKEN_REVOKE,
    .sql = "UPDATE admin_tokens SET revoked_us = coalesce(revoked_us, $2) WHERE id = $1"};
static const pg_sql_t sql_touch = {
    .slot = PS_ADMIN_TOKEN_TOUCH,
    .sql = "UPDATE admin_tokens SET last_used_us = $2 WHERE id = $1 AND "
           "(last_used_us IS NULL OR last_used_us < $2)"};

static int pg_add(tg_store_t *base, const tg_admin_token_row_t *row, tg_err_t *err)
{
    pg_params_t p = {0};
    PG_P_ROW(&p, row, id);
    pg_p_bytea(&p, row->sha256, sizeof row->sha256);
    PG_P_ROW(&p, row, name);
    PG_P_ROW(&p, row, role);
    pg_p_field(&p, row->tenant, sizeof row->tenant, 1);
    pg_p_int64(&p, row->created_us);
    if (row->expires_us)
        pg_p_int64(&p, row->expires_us);
    else
        pg_p_null(&p);
    int ret = pg_mutate((pg_store_t *)base, &sql_add, &p, PG_AUTH, "admin token add", err);
    if (ret == TG_STORE_EXISTS)
        tg_err_set(err, "admin token \"%.31s\" (or its secret) already exists", row->id);
    else if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no tenant \"%.63s\"", row->tenant);
    return ret;
}

static int emit(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_admin_token_row_t row;
    pg_read_row(s, r, i, &tg_map_admin_token, &row);
    return SINK_CALL(tg_admin_token_row_t, k, &row);
}

static int pg_list(tg_store_t *base, int (*cb)(const tg_admin_token_row_t *, void *), void *ud,
                   tg_err_t *err)
{
    return pg_each_row((pg_store_t *)base, &sql_list, NULL, emit,
                       SINK(tg_admin_token_row_t, cb, ud), "admin token list", err);
}

static int pg_revoke(tg_store_t *base, const char *id, int64_t now_us, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, id);
    pg_p_int64(&p, now_us);
    int ret = pg_mutate((pg_store_t *)base, &sql_revoke, &p, PG_AUTH, "admin token revoke", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no admin token \"%s\"", id);
    return ret;
}

static int pg_touch(tg_store_t *base, const char *id, int64_t used_us, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, id);
    pg_p_int64(&p, used_us);
    PGresult *r = NULL;
    int ret = pg_exec((pg_store_t *)base, &sql_touch, &p, &r, "admin token touch", err);
    PQclear(r);
    return ret;
}

const struct tg_store_admin_token_ops pg_admin_token_ops = {
    .add = pg_add,
    .list = pg_list,
    .revoke = pg_revoke,
    .touch = pg_touch,
};
