/* PostgreSQL store, tenants and keys (the tenant_ops of backend.h): tenants, api_keys and
 * the keyring's load. Every change bumps meta.auth_version in the same transaction
 * (pg_mutate), so the gateways polling it notice a revoked key within their interval.
 * Marking keys used belongs to the writer's append (pg_events.c). */
#include "store/pg_int.h"

#include <string.h>

#include "store/maps.h"
#include "util/clock.h"

static const pg_sql_t sql_tenant_add = {
    .slot = PS_TENANT_ADD,
    .sql = "INSERT INTO tenants (id, name, status, created_us) VALUES ($1, $2, 'active', $3)"};
static const pg_sql_t sql_tenant_get = {
    .slot = PS_TENANT_GET, .select = &tg_map_tenant, .sql = "FROM tenants WHERE id = $1"};
static const pg_sql_t sql_tenant_list = {.slot = PS_TENANT_LIST,
                                         .select = &tg_map_tenant,
                                         .sql = "FROM tenants ORDER BY id COLLATE \"C\""};
static const pg_sql_t sql_tenant_status = {.slot = PS_TENANT_STATUS,
                                           .sql = "UPDATE tenants SET status = $2 WHERE id = $1"};
static const pg_sql_t sql_key_add = {
    .slot = PS_KEY_ADD,
    .sql = "INSERT INTO api_keys (id, tenant_id, sha256, prefix, name, status, created_us, "
           "last_used_us, expires_us, rotated_from, signing_secret) VALUES ($1, $2, $3, $4, $5, "
           "$6, $7, $8, $9, $10, $11)"};
static const pg_sql_t sql_key_list = {
    .slot = PS_KEY_LIST,
    .select = &tg_map_key,
    .sql = "FROM api_keys WHERE $1::text IS NULL OR tenant_id = "
           "$1 ORDER BY tenant_id COLLATE \"C\", created_us, id COLLATE \"C\""};
static const pg_sql_t sql_key_revoke = {
    .slot = PS_KEY_REVOKE, .sql = "UPDATE api_keys SET status = 'revoked' WHERE id = $1"};
static const pg_sql_t sql_key_get = {
    .slot = PS_KEY_GET, .select = &tg_map_key, .sql = "FROM api_keys WHERE id = $1"};
static const pg_sql_t sql_key_expire = {
    .slot = PS_KEY_EXPIRE,
    .sql = "UPDATE api_keys SET expires_us = $2 WHERE id = $1 AND status = 'active' AND "
           "(expires_us IS NULL OR expires_us > $2)"};
static const pg_sql_t sql_key_reseal = {
    .slot = PS_KEY_RESEAL,
    .sql = "UPDATE api_keys SET signing_secret = $3 WHERE id = $1 AND signing_secret = $2"};
static const pg_sql_t sql_auth_load = {.slot = PS_AUTH_LOAD,
                                       .select = &tg_map_auth,
                                       .sql =
                                           "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"};

static int pg_tenant_add(tg_store_t *base, const char *id, const char *name, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, id);
    pg_p_text(&p, name ? name : "");
    pg_p_int64(&p, tg_wall_us());
    int ret = pg_mutate((pg_store_t *)base, &sql_tenant_add, &p, PG_AUTH, "tenant add", err);
    if (ret == TG_STORE_EXISTS) tg_err_set(err, "tenant \"%s\" already exists", id);
    return ret;
}

static int pg_tenant_get(tg_store_t *base, const char *id, tg_tenant_t *out, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    pg_params_t p = {0};
    pg_p_text(&p, id);
    PGresult *r;
    int ret = pg_exec(s, &sql_tenant_get, &p, &r, "tenant get", err);
    if (ret != 0) return ret;
    if (PQntuples(r) > 0)
        pg_read_row(s, r, 0, &tg_map_tenant, out);
    else {
        tg_err_set(err, "no tenant \"%s\"", id);
        ret = TG_STORE_NOTFOUND;
    }
    PQclear(r);
    return ret;
}

static int emit_tenant(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_tenant_t t;
    pg_read_row(s, r, i, &tg_map_tenant, &t);
    return SINK_CALL(tg_tenant_t, k, &t);
}

static int pg_tenant_list(tg_store_t *base, int (*cb)(const tg_tenant_t *, void *), void *ud,
                          tg_err_t *err)
{
    return pg_each_row((pg_store_t *)base, &sql_tenant_list, NULL, emit_tenant,
                       SINK(tg_tenant_t, cb, ud), "tenant list", err);
}

static int pg_tenant_set_status(tg_store_t *base, const char *id, const char *status, tg_err_t *err)
{
    if (strcmp(status, "active") != 0 && strcmp(status, "disabled") != 0)
        return tg_err_set(err, "invalid tenant status \"%s\"", status);
    pg_params_t p = {0};
    pg_p_text(&p, id);
    pg_p_text(&p, status);
    int ret =
        pg_mutate((pg_store_t *)base, &sql_tenant_status, &p, PG_AUTH, "tenant set status", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no tenant \"%s\"", id);
    return ret;
}

static int pg_key_add(tg_store_t *base, const tg_key_t *k, tg_err_t *err)
{
    pg_params_t p = {0};
    PG_P_ROW(&p, k, id);
    PG_P_ROW(&p, k, tenant_id);
    pg_p_bytea(&p, k->sha256, sizeof k->sha256);
    PG_P_ROW(&p, k, prefix);
    PG_P_ROW(&p, k, name);
    pg_p_text(&p, k->status[0] ? k->status : "active");
    pg_p_int64(&p, k->created_us ? k->created_us : tg_wall_us());
    if (k->last_used_us)
        pg_p_int64(&p, k->last_used_us);
    else
        pg_p_null(&p);
    if (k->expires_us)
        pg_p_int64(&p, k->expires_us);
    else
        pg_p_null(&p);
    if (k->rotated_from[0])
        PG_P_ROW(&p, k, rotated_from);
    else
        pg_p_null(&p);
    if (k->signing)
        pg_p_bytea(&p, k->signing_sealed, sizeof k->signing_sealed);
    else
        pg_p_null(&p);
    int ret = pg_mutate((pg_store_t *)base, &sql_key_add, &p, PG_AUTH, "key add", err);
    if (ret == TG_STORE_EXISTS)
        tg_err_set(err, "key \"%.31s\" (or its secret) already exists", k->id);
    else if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no tenant \"%.63s\"", k->tenant_id);
    return ret;
}

static int emit_key(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_key_t key;
    pg_read_row(s, r, i, &tg_map_key, &key);
    return SINK_CALL(tg_key_t, k, &key);
}

static int pg_key_list(tg_store_t *base, const char *tenant, int (*cb)(const tg_key_t *, void *),
                       void *ud, tg_err_t *err)
{
    return pg_each_tenant_row((pg_store_t *)base, &sql_key_list, 1, tenant, emit_key,
                              SINK(tg_key_t, cb, ud), "key list", err);
}

static int pg_key_revoke(tg_store_t *base, const char *key_id, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, key_id);
    int ret = pg_mutate((pg_store_t *)base, &sql_key_revoke, &p, PG_AUTH, "key revoke", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no key \"%s\"", key_id);
    return ret;
}

static int pg_key_get(tg_store_t *base, const char *key_id, tg_key_t *out, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    pg_params_t p = {0};
    pg_p_text(&p, key_id);
    PGresult *r;
    int ret = pg_exec(s, &sql_key_get, &p, &r, "key get", err);
    if (ret != 0) return ret;
    if (PQntuples(r) > 0)
        pg_read_row(s, r, 0, &tg_map_key, out);
    else
        ret = TG_STORE_NOTFOUND, tg_err_set(err, "no key \"%s\"", key_id);
    PQclear(r);
    return ret;
}

static int pg_key_expire(tg_store_t *base, const char *key_id, int64_t at_us, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, key_id);
    pg_p_int64(&p, at_us);
    int ret = pg_mutate((pg_store_t *)base, &sql_key_expire, &p, PG_AUTH, "key expire", err);
    if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no active key \"%s\" expiring after that", key_id);
    return ret;
}

static int pg_key_reseal(tg_store_t *base, const char *key_id, const unsigned char *from,
                         const unsigned char *to, size_t n, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, key_id);
    pg_p_bytea(&p, from, n);
    pg_p_bytea(&p, to, n);
    int ret = pg_mutate((pg_store_t *)base, &sql_key_reseal, &p, PG_AUTH, "key reseal", err);
    if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "key \"%s\": its signing secret changed meanwhile", key_id);
    return ret;
}

static int emit_auth(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_auth_row_t a;
    pg_read_row(s, r, i, &tg_map_auth, &a);
    if (!a.sha256 || !a.key_id || !a.tenant_id) return 0; /* the table's CHECKs forbid it */
    return SINK_CALL(tg_auth_row_t, k, &a);
}

static int pg_auth_load(tg_store_t *base, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    return pg_each_row((pg_store_t *)base, &sql_auth_load, NULL, emit_auth,
                       SINK(tg_auth_row_t, cb, ud), "auth load", err);
}

static int pg_auth_version(tg_store_t *base, int64_t *out, tg_err_t *err)
{
    return pg_read_version((pg_store_t *)base, PG_AUTH, "auth version", out, err);
}

const struct tg_store_tenant_ops pg_tenant_ops = {
    .tenant_add = pg_tenant_add,
    .tenant_get = pg_tenant_get,
    .tenant_list = pg_tenant_list,
    .tenant_set_status = pg_tenant_set_status,
    .key_add = pg_key_add,
    .key_list = pg_key_list,
    .key_revoke = pg_key_revoke,
    .key_get = pg_key_get,
    .key_expire = pg_key_expire,
    .key_reseal = pg_key_reseal,
    .auth_load = pg_auth_load,
    .auth_version = pg_auth_version,
};
