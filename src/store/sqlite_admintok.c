/* SQLite store, admin API tokens (the admin_token_ops of backend.h, migration 15). Adding
 * and revoking bump meta.auth_version in the same transaction (sq_mutate), so every
 * gateway's snapshot of the tokens (admin/tokens.h) reloads within its interval; touch is
 * the gateway's own note of use and bumps nothing (else every use would reload them). */
#include "store/sqlite_int.h"

#include "store/maps.h"

static const sq_sql_t sql_add = {
    .slot = ST_ADMIN_TOKEN_ADD,
    .sql = "INSERT INTO admin_tokens (id, sha256, name, role, tenant_id, created_us, "
           "expires_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"};
static const sq_sql_t sql_list = {.slot = ST_ADMIN_TOKEN_LIST,
                                  .select = &tg_map_admin_token,
                                  .sql = "FROM admin_tokens ORDER BY id"};
static const sq_sql_t sql_revoke = {
    .slot = ST_ADMIN_TOKEN_REVOKE,
    .sql = "UPDATE admin_tokens SET revoked_us = coalesce(revoked_us, ?2) WHERE id = ?1"};
static const sq_sql_t sql_touch = {
    .slot = ST_ADMIN_TOKEN_TOUCH,
    .sql = "UPDATE admin_tokens SET last_used_us = ?2 WHERE id = ?1 AND "
           "(last_used_us IS NULL OR last_used_us < ?2)"};

static int sq_add(tg_store_t *base, const tg_admin_token_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_add, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, id);
    sqlite3_bind_blob(st, 2, row->sha256, sizeof row->sha256, SQLITE_STATIC);
    BIND_ROW(st, 3, row, name);
    BIND_ROW(st, 4, row, role);
    sq_bind_field(st, 5, row->tenant, sizeof row->tenant, 1);
    sqlite3_bind_int64(st, 6, row->created_us);
    if (row->expires_us)
        sqlite3_bind_int64(st, 7, row->expires_us);
    else
        sqlite3_bind_null(st, 7);
    int ret = sq_mutate(s, st, SQ_AUTH, "admin token add", err);
    if (ret == TG_STORE_EXISTS)
        tg_err_set(err, "admin token \"%.31s\" (or its secret) already exists", row->id);
    else if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no tenant \"%.63s\"", row->tenant);
    return ret;
}

static int emit(sqlite3_stmt *st, const sink_t *k)
{
    tg_admin_token_row_t r;
    sq_read_row(st, &tg_map_admin_token, &r);
    return SINK_CALL(tg_admin_token_row_t, k, &r);
}

static int sq_list(tg_store_t *base, int (*cb)(const tg_admin_token_row_t *, void *), void *ud,
                   tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_list, NULL, emit,
                       SINK(tg_admin_token_row_t, cb, ud), "admin token list", err);
}

static int sq_revoke(tg_store_t *base, const char *id, int64_t now_us, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_revoke, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_us);
    int ret = sq_mutate(s, st, SQ_AUTH, "admin token revoke", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no admin token \"%s\"", id);
    return ret;
}

static int sq_touch(tg_store_t *base, const char *id, int64_t used_us, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_touch, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, used_us);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "admin token touch", err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_admin_token_maps[] = {&tg_map_admin_token, NULL};

const struct tg_store_admin_token_ops sq_admin_token_ops = {
    .add = sq_add,
    .list = sq_list,
    .revoke = sq_revoke,
    .touch = sq_touch,
};
