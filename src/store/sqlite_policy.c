/* SQLite store, policy rows (the policy_ops of backend.h): limits, pauses, IP rules and
 * tool rules. Every change bumps meta.policy_version in the same transaction
 * (sq_mutate), which running gateways poll; it is apart from auth_version so a new limit
 * does not reload the keyring. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"
#include "util/clock.h"

static const sq_sql_t sql_limit_set = {
    .slot = ST_LIMIT_SET,
    .sql = "INSERT INTO limits (tenant_id, scope, value, requests, period_s, burst, concurrency, "
           "tokens, tokens_period_s, updated_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?10, ?8) "
           "ON CONFLICT (tenant_id, scope, value) DO UPDATE SET requests = excluded.requests, "
           "period_s = excluded.period_s, burst = excluded.burst, "
           "concurrency = excluded.concurrency, tokens = excluded.tokens, "
           "tokens_period_s = excluded.tokens_period_s, updated_us = excluded.updated_us"};
static const sq_sql_t sql_limit_rm = {
    .slot = ST_LIMIT_RM,
    .sql = "DELETE FROM limits WHERE tenant_id = ?1 AND scope = ?2 AND value = ?3"};
/* The tenant-wide row first, then route, tool, key and model rows. */
static const sq_sql_t sql_limit_list = {
    .slot = ST_LIMIT_LIST,
    .select = &tg_map_limit,
    .sql = "FROM limits WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, CASE scope WHEN "
           "'tenant' THEN 0 "
           "WHEN 'route' THEN 1 WHEN 'tool' THEN 2 WHEN 'key' THEN 3 ELSE 4 END, "
           "value"};
/* A second pause of the same tenant changes the reason; the pause is
 * still the one that began first. */
static const sq_sql_t sql_pause_set = {
    .slot = ST_PAUSE_SET,
    .sql = "INSERT INTO pauses (tenant_id, reason, created_us) VALUES (?1, ?2, ?3) "
           "ON CONFLICT (tenant_id) DO UPDATE SET reason = excluded.reason"};
static const sq_sql_t sql_pause_clear = {.slot = ST_PAUSE_CLEAR,
                                         .sql = "DELETE FROM pauses WHERE tenant_id = ?1"};
static const sq_sql_t sql_pause_list = {
    .slot = ST_PAUSE_LIST, .select = &tg_map_pause, .sql = "FROM pauses ORDER BY tenant_id"};
static const sq_sql_t sql_ip_add = {
    .slot = ST_IP_ADD,
    .sql = "INSERT INTO ip_rules (tenant_id, action, cidr, created_us) VALUES (?1, ?2, "
           "?3, ?4)"};
static const sq_sql_t sql_ip_rm = {
    .slot = ST_IP_RM,
    .sql = "DELETE FROM ip_rules WHERE tenant_id = ?1 AND action = ?2 AND cidr = ?3"};
static const sq_sql_t sql_ip_list = {
    .slot = ST_IP_LIST,
    .select = &tg_map_ip_rule,
    .sql = "FROM ip_rules WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, action, cidr"};
static const sq_sql_t sql_tool_add = {
    .slot = ST_TOOL_ADD,
    .sql = "INSERT INTO tool_rules (tenant_id, action, pattern, created_us) VALUES "
           "(?1, ?2, ?3, ?4)"};
static const sq_sql_t sql_tool_rm = {
    .slot = ST_TOOL_RM,
    .sql = "DELETE FROM tool_rules WHERE tenant_id = ?1 AND action = ?2 AND pattern = ?3"};
static const sq_sql_t sql_tool_list = {
    .slot = ST_TOOL_LIST,
    .select = &tg_map_tool_rule,
    .sql = "FROM tool_rules WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, action, "
           "pattern"};

static int sq_policy_version(tg_store_t *base, int64_t *out, tg_err_t *err)
{
    return sq_read_version((sq_store_t *)base, SQ_POLICY, "policy version", out, err);
}

static int sq_limit_set(tg_store_t *base, const tg_limit_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (tg_rowcheck_limit(row, err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_limit_set, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, tenant);
    BIND_ROW(st, 2, row, scope);
    BIND_ROW(st, 3, row, value);
    sqlite3_bind_int64(st, 4, row->limit);
    sqlite3_bind_int64(st, 5, row->period_s);
    sqlite3_bind_int64(st, 6, row->burst);
    sqlite3_bind_int64(st, 7, row->concurrency);
    sqlite3_bind_int64(st, 8, row->updated_us ? row->updated_us : tg_wall_us());
    sqlite3_bind_int64(st, 9, row->tokens);
    sqlite3_bind_int64(st, 10, row->tokens_period_s);
    return sq_mutate(s, st, SQ_POLICY, "limit set", err);
}

static int sq_limit_rm(tg_store_t *base, const char *tenant, const char *scope, const char *value,
                       tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (!value) value = "";
    sqlite3_stmt *st = sq_stmt(s, &sql_limit_rm, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    int ret = sq_mutate(s, st, SQ_POLICY, "limit rm", err);
    if (ret == TG_STORE_NOTFOUND) {
        if (*value)
            tg_err_set(err, "no limit for tenant \"%s\" %s \"%s\"", tenant, scope, value);
        else
            tg_err_set(err, "no tenant-wide limit for tenant \"%s\"", tenant);
    }
    return ret;
}

static int emit_limit(sqlite3_stmt *st, const sink_t *k)
{
    tg_limit_row_t r;
    sq_read_row(st, &tg_map_limit, &r);
    return SINK_CALL(tg_limit_row_t, k, &r);
}

static int sq_limit_list(tg_store_t *base, const char *tenant,
                         int (*cb)(const tg_limit_row_t *, void *), void *ud, tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_limit_list, tenant, emit_limit,
                       SINK(tg_limit_row_t, cb, ud), "limit list", err);
}

static int sq_pause_set(tg_store_t *base, const char *tenant, const char *reason, int64_t now_us,
                        tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (!tenant || !*tenant) return tg_err_set(err, "pause: empty tenant");
    sqlite3_stmt *st = sq_stmt(s, &sql_pause_set, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_us);
    return sq_mutate(s, st, SQ_POLICY, "pause", err);
}

static int sq_pause_clear(tg_store_t *base, const char *tenant, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_pause_clear, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int ret = sq_mutate(s, st, SQ_POLICY, "resume", err);
    if (ret == TG_STORE_NOTFOUND) {
        if (strcmp(tenant, "*") == 0)
            tg_err_set(err, "no global pause");
        else
            tg_err_set(err, "tenant \"%s\" is not paused", tenant);
    }
    return ret;
}

static int emit_pause(sqlite3_stmt *st, const sink_t *k)
{
    tg_pause_row_t r;
    sq_read_row(st, &tg_map_pause, &r);
    return SINK_CALL(tg_pause_row_t, k, &r);
}

static int sq_pause_list(tg_store_t *base, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_pause_list, NULL, emit_pause,
                       SINK(tg_pause_row_t, cb, ud), "pause list", err);
}

/* IP rules and tool rules are one shape, (tenant, action, value) with the value a CIDR
 * or a tool pattern, in two tables because they are matched apart. One add, rm and list
 * serves both, told by a rule_kind which statements and words to use. */
typedef struct rule_kind {
    const char *what;  /* "ip rule": the operations are "ip rule add", ... */
    const char *value; /* what the value is called: "CIDR" */
    const char *q;     /* how messages quote the value: "" (a CIDR has no spaces) or "\"" */
    const sq_sql_t *add, *rm, *list;
} rule_kind_t;

static const rule_kind_t ip_rules = {"ip rule", "CIDR", "", &sql_ip_add, &sql_ip_rm, &sql_ip_list};
static const rule_kind_t tool_rules = {"tool rule",   "pattern",    "\"",
                                       &sql_tool_add, &sql_tool_rm, &sql_tool_list};

static int rule_add(sq_store_t *s, const rule_kind_t *k, const tg_rule_fields_t *r, tg_err_t *err)
{
    char what[32], action[16], owner[96];
    snprintf(what, sizeof what, "%s add", k->what);
    snprintf(action, sizeof action, "%.*s", (int)r->action_cap, r->action);
    if (tg_rowcheck_rule(what, k->value, r, err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, k->add, err);
    if (!st) return -1;
    sq_bind_field(st, 1, r->tenant, r->tenant_cap, 0);
    sq_bind_field(st, 2, r->action, r->action_cap, 0);
    sq_bind_field(st, 3, r->value, r->value_cap, 0);
    sqlite3_bind_int64(st, 4, r->created_us ? r->created_us : tg_wall_us());
    int ret = sq_mutate(s, st, SQ_POLICY, what, err);
    if (ret == TG_STORE_EXISTS)
        tg_err_set(err, "%s %s %s%.*s%s %s already exists", k->what, action, k->q,
                   (int)r->value_cap, r->value, k->q,
                   tg_rowcheck_rule_owner(r->tenant, owner, sizeof owner));
    return ret;
}

static int rule_rm(sq_store_t *s, const rule_kind_t *k, const char *tenant, const char *action,
                   const char *value, tg_err_t *err)
{
    char what[32], owner[96];
    snprintf(what, sizeof what, "%s rm", k->what);
    sqlite3_stmt *st = sq_stmt(s, k->rm, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    int ret = sq_mutate(s, st, SQ_POLICY, what, err);
    if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no %s %s %s%s%s %s", k->what, action, k->q, value, k->q,
                   tg_rowcheck_rule_owner(tenant, owner, sizeof owner));
    return ret;
}

static int rule_list(sq_store_t *s, const rule_kind_t *k, const char *tenant, sq_emit_fn emit,
                     sink_t sink, tg_err_t *err)
{
    char what[32];
    snprintf(what, sizeof what, "%s list", k->what);
    return sq_each_row(s, k->list, tenant, emit, sink, what, err);
}

static int emit_ip_rule(sqlite3_stmt *st, const sink_t *k)
{
    tg_ip_rule_row_t r;
    sq_read_row(st, &tg_map_ip_rule, &r);
    return SINK_CALL(tg_ip_rule_row_t, k, &r);
}

static int sq_ip_rule_add(tg_store_t *base, const tg_ip_rule_row_t *row, tg_err_t *err)
{
    return rule_add((sq_store_t *)base, &ip_rules, &TG_RULE_FIELDS(row, cidr), err);
}

static int sq_ip_rule_rm(tg_store_t *base, const char *tenant, const char *action, const char *cidr,
                         tg_err_t *err)
{
    return rule_rm((sq_store_t *)base, &ip_rules, tenant, action, cidr, err);
}

static int sq_ip_rule_list(tg_store_t *base, const char *tenant,
                           int (*cb)(const tg_ip_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return rule_list((sq_store_t *)base, &ip_rules, tenant, emit_ip_rule,
                     SINK(tg_ip_rule_row_t, cb, ud), err);
}

static int emit_tool_rule(sqlite3_stmt *st, const sink_t *k)
{
    tg_tool_rule_row_t r;
    sq_read_row(st, &tg_map_tool_rule, &r);
    return SINK_CALL(tg_tool_rule_row_t, k, &r);
}

static int sq_tool_rule_add(tg_store_t *base, const tg_tool_rule_row_t *row, tg_err_t *err)
{
    return rule_add((sq_store_t *)base, &tool_rules, &TG_RULE_FIELDS(row, pattern), err);
}

static int sq_tool_rule_rm(tg_store_t *base, const char *tenant, const char *action,
                           const char *pattern, tg_err_t *err)
{
    return rule_rm((sq_store_t *)base, &tool_rules, tenant, action, pattern, err);
}

static int sq_tool_rule_list(tg_store_t *base, const char *tenant,
                             int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return rule_list((sq_store_t *)base, &tool_rules, tenant, emit_tool_rule,
                     SINK(tg_tool_rule_row_t, cb, ud), err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_policy_maps[] = {&tg_map_limit, &tg_map_pause, &tg_map_ip_rule,
                                             &tg_map_tool_rule, NULL};

const struct tg_store_policy_ops sq_policy_ops = {
    .policy_version = sq_policy_version,
    .limit_set = sq_limit_set,
    .limit_rm = sq_limit_rm,
    .limit_list = sq_limit_list,
    .pause_set = sq_pause_set,
    .pause_clear = sq_pause_clear,
    .pause_list = sq_pause_list,
    .ip_rule_add = sq_ip_rule_add,
    .ip_rule_rm = sq_ip_rule_rm,
    .ip_rule_list = sq_ip_rule_list,
    .tool_rule_add = sq_tool_rule_add,
    .tool_rule_rm = sq_tool_rule_rm,
    .tool_rule_list = sq_tool_rule_list,
};
