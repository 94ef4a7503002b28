/* SQLite store, tenants and keys (the tenant_ops of backend.h): tenants, api_keys and
 * the keyring's load. Every change bumps meta.auth_version in the same transaction
 * (sq_mutate), so a gateway in another process notices a revoked key with one cheap
 * query. Marking keys used belongs to the writer's append (sqlite_events.c). */
#include "store/sqlite_int.h"

#include "store/maps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

static const sq_sql_t sql_tenant_add = {
    .slot = ST_TENANT_ADD,
    .sql = "INSERT INTO tenants (id, name, status, created_us) VALUES (?1, ?2, "
           "'active', ?3)"};
static const sq_sql_t sql_tenant_get = {
    .slot = ST_TENANT_GET, .select = &tg_map_tenant, .sql = "FROM tenants WHERE id = ?1"};
static const sq_sql_t sql_tenant_list = {
    .slot = ST_TENANT_LIST, .select = &tg_map_tenant, .sql = "FROM tenants ORDER BY id"};
static const sq_sql_t sql_tenant_status = {.slot = ST_TENANT_STATUS,
                                           .sql = "UPDATE tenants SET status = ?2 WHERE id = ?1"};
static const sq_sql_t sql_key_add = {
    .slot = ST_KEY_ADD,
    .sql = "INSERT INTO api_keys (id, tenant_id, sha256, prefix, name, status, "
           "created_us, last_used_us, expires_us, rotated_from, signing_secret) VALUES (?1, ?2, "
           "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"};
static const sq_sql_t sql_key_list = {
    .slot = ST_KEY_LIST,
    .select = &tg_map_key,
    .sql = "FROM api_keys WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, created_us, id"};
static const sq_sql_t sql_key_revoke = {
    .slot = ST_KEY_REVOKE, .sql = "UPDATE api_keys SET status = 'revoked' WHERE id = ?1"};
static const sq_sql_t sql_key_get = {
    .slot = ST_KEY_GET, .select = &tg_map_key, .sql = "FROM api_keys WHERE id = ?1"};
static const sq_sql_t sql_key_expire = {
    .slot = ST_KEY_EXPIRE,
    .sql = "UPDATE api_keys SET expires_us = ?2 WHERE id = ?1 AND status = 'active' AND "
           "(expires_us IS NULL OR expires_us > ?2)"};
static const sq_sql_t sql_key_reseal = {
    .slot = ST_KEY_RESEAL,
    .sql = "UPDATE api_keys SET signing_secret = ?3 WHERE id = ?1 AND signing_secret = ?2"};
static const sq_sql_t sql_auth_load = {.slot = ST_AUTH_LOAD,
                                       .select = &tg_map_auth,
                                       .sql =
                                           "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"};

static int sq_tenant_add(tg_store_t *base, const char *id, const char *name, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_tenant_add, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, tg_wall_us());
    int ret = sq_mutate(s, st, SQ_AUTH, "tenant add", err);
    if (ret == TG_STORE_EXISTS) tg_err_set(err, "tenant \"%s\" already exists", id);
    return ret;
}

static int sq_tenant_get(tg_store_t *base, const char *id, tg_tenant_t *out, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_tenant_get, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        sq_read_row(st, &tg_map_tenant, out);
    else if (rc == SQLITE_DONE) {
        tg_err_set(err, "no tenant \"%s\"", id);
        ret = TG_STORE_NOTFOUND;
    } else
        ret = sq_fail(s, rc, "tenant get", err);
    sqlite3_reset(st);
    return ret;
}

static int emit_tenant(sqlite3_stmt *st, const sink_t *k)
{
    tg_tenant_t t;
    sq_read_row(st, &tg_map_tenant, &t);
    return SINK_CALL(tg_tenant_t, k, &t);
}

static int sq_tenant_list(tg_store_t *base, int (*cb)(const tg_tenant_t *, void *), void *ud,
                          tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_tenant_list, NULL, emit_tenant,
                       SINK(tg_tenant_t, cb, ud), "tenant list", err);
}

static int sq_tenant_set_status(tg_store_t *base, const char *id, const char *status, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (strcmp(status, "active") != 0 && strcmp(status, "disabled") != 0)
        return tg_err_set(err, "invalid tenant status \"%s\"", status);
    sqlite3_stmt *st = sq_stmt(s, &sql_tenant_status, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    int ret = sq_mutate(s, st, SQ_AUTH, "tenant set status", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no tenant \"%s\"", id);
    return ret;
}

static int sq_key_add(tg_store_t *base, const tg_key_t *k, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_key_add, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, k->id, (int)strnlen(k->id, sizeof k->id), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->tenant_id, (int)strnlen(k->tenant_id, sizeof k->tenant_id),
                      SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, k->sha256, sizeof k->sha256, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, k->prefix, (int)strnlen(k->prefix, sizeof k->prefix), SQLITE_STATIC);
    sqlite3_bind_text(st, 5, k->name, (int)strnlen(k->name, sizeof k->name), SQLITE_STATIC);
    sqlite3_bind_text(st, 6, k->status[0] ? k->status : "active", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, k->created_us ? k->created_us : tg_wall_us());
    if (k->last_used_us)
        sqlite3_bind_int64(st, 8, k->last_used_us);
    else
        sqlite3_bind_null(st, 8);
    if (k->expires_us)
        sqlite3_bind_int64(st, 9, k->expires_us);
    else
        sqlite3_bind_null(st, 9);
    if (k->rotated_from[0])
        sqlite3_bind_text(st, 10, k->rotated_from,
                          (int)strnlen(k->rotated_from, sizeof k->rotated_from), SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 10);
    if (k->signing)
        sqlite3_bind_blob(st, 11, k->signing_sealed, sizeof k->signing_sealed, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 11);
    int ret = sq_mutate(s, st, SQ_AUTH, "key add", err);
    if (ret == TG_STORE_EXISTS)
        tg_err_set(err, "key \"%.31s\" (or its secret) already exists", k->id);
    else if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no tenant \"%.63s\"", k->tenant_id);
    return ret;
}

static int emit_key(sqlite3_stmt *st, const sink_t *k)
{
    tg_key_t key;
    sq_read_row(st, &tg_map_key, &key);
    return SINK_CALL(tg_key_t, k, &key);
}

static int sq_key_list(tg_store_t *base, const char *tenant, int (*cb)(const tg_key_t *, void *),
                       void *ud, tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_key_list, tenant, emit_key, SINK(tg_key_t, cb, ud),
                       "key list", err);
}

static int sq_key_revoke(tg_store_t *base, const char *key_id, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_key_revoke, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    int ret = sq_mutate(s, st, SQ_AUTH, "key revoke", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no key \"%s\"", key_id);
    return ret;
}

static int sq_key_get(tg_store_t *base, const char *key_id, tg_key_t *out, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_key_get, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        sq_read_row(st, &tg_map_key, out);
    else if (rc == SQLITE_DONE)
        ret = TG_STORE_NOTFOUND, tg_err_set(err, "no key \"%s\"", key_id);
    else
        ret = sq_fail(s, rc, "key get", err);
    sqlite3_reset(st);
    return ret;
}

static int sq_key_expire(tg_store_t *base, const char *key_id, int64_t at_us, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_key_expire, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, at_us);
    int ret = sq_mutate(s, st, SQ_AUTH, "key expire", err);
    if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no active key \"%s\" expiring after that", key_id);
    return ret;
}

static int sq_key_reseal(tg_store_t *base, const char *key_id, const unsigned char *from,
                         const unsigned char *to, size_t n, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_key_reseal, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, from, (int)n, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, to, (int)n, SQLITE_STATIC);
    int ret = sq_mutate(s, st, SQ_AUTH, "key reseal", err);
    if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "key \"%s\": its signing secret changed meanwhile", key_id);
    return ret;
}

static int emit_auth(sqlite3_stmt *st, const sink_t *k)
{
    tg_auth_row_t r;
    sq_read_row(st, &tg_map_auth, &r);
    if (!r.sha256 || !r.key_id || !r.tenant_id) return 0; /* the table's CHECKs forbid it */
    return SINK_CALL(tg_auth_row_t, k, &r);
}

static int sq_auth_load(tg_store_t *base, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_auth_load, NULL, emit_auth,
                       SINK(tg_auth_row_t, cb, ud), "auth load", err);
}

static int sq_auth_version(tg_store_t *base, int64_t *out, tg_err_t *err)
{
    return sq_read_version((sq_store_t *)base, SQ_AUTH, "auth version", out, err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_tenant_maps[] = {&tg_map_tenant, &tg_map_key, &tg_map_auth, NULL};

const struct tg_store_tenant_ops sq_tenant_ops = {
    .tenant_add = sq_tenant_add,
    .tenant_get = sq_tenant_get,
    .tenant_list = sq_tenant_list,
    .tenant_set_status = sq_tenant_set_status,
    .key_add = sq_key_add,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .key_get = sq_key_get,
    .key_expire = sq_key_expire,
    .key_reseal = sq_key_reseal,
    .auth_load = sq_auth_load,
    .auth_version = sq_auth_version,
};
