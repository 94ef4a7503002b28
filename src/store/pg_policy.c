/* PostgreSQL store, policy rows (the policy_ops of backend.h): limits, pauses, IP rules and
 * tool rules, as sqlite_policy.c. Every change bumps meta.policy_version in the same
 * transaction (pg_mutate): two gateways changing rows at once each bump it, since the bump
 * is an UPDATE of one row that the second waits on (row lock) and then increments again.
 * Lists order text COLLATE "C" (here and in pg_prices.c, pg_alarms.c, pg_outbox.c): SQLite's
 * byte order, whatever the database's locale ("*" first, then "acme-2" before "acme_1"). */
#include "store/pg_int.h"

#include <stdio.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"
#include "util/clock.h"

static const pg_sql_t sql_limit_set = {
    .slot = PS_LIMIT_SET,
    .sql = "INSERT INTO limits (tenant_id, scope, value, requests, period_s, burst, concurrency, "
           "tokens, tokens_period_s, updated_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
           "ON CONFLICT (tenant_id, scope, value) DO UPDATE SET requests = excluded.requests, "
           "period_s = excluded.period_s, burst = excluded.burst, "
           "concurrency = excluded.concurrency, tokens = excluded.tokens, "
           "tokens_period_s = excluded.tokens_period_s, updated_us = excluded.updated_us"};
static const pg_sql_t sql_limit_rm = {
    .slot = PS_LIMIT_RM,
    .sql = "DELETE FROM limits WHERE tenant_id = $1 AND scope = $2 AND value = $3"};
/* The tenant-wide row first, then route, tool, key and model rows. */
static const pg_sql_t sql_limit_list = {
    .slot = PS_LIMIT_LIST,
    .select = &tg_map_limit,
    .sql = "FROM limits WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id COLLATE \"C\", "
           "CASE "
           "scope WHEN 'tenant' THEN 0 WHEN 'route' THEN 1 WHEN 'tool' THEN 2 WHEN 'key' THEN 3 "
           "ELSE 4 END, value COLLATE \"C\""};
/* A second pause of the same tenant changes the reason; the pause is still the one that
 * began first. */
static const pg_sql_t sql_pause_set = {
    .slot = PS_PAUSE_SET,
    .sql = "INSERT INTO pauses (tenant_id, reason, created_us) VALUES ($1, $2, $3) "
           "ON CONFLICT (tenant_id) DO UPDATE SET reason = excluded.reason"};
static const pg_sql_t sql_pause_clear = {.slot = PS_PAUSE_CLEAR,
                                         .sql = "DELETE FROM pauses WHERE tenant_id = $1"};
static const pg_sql_t sql_pause_list = {.slot = PS_PAUSE_LIST,
                                        .select = &tg_map_pause,
                                        .sql = "FROM pauses ORDER BY tenant_id COLLATE \"C\""};
static const pg_sql_t sql_ip_add = {
    .slot = PS_IP_ADD,
    .sql = "INSERT INTO ip_rules (tenant_id, action, cidr, created_us) VALUES ($1, $2, $3, $4)"};
static const pg_sql_t sql_ip_rm = {
    .slot = PS_IP_RM,
    .sql = "DELETE FROM ip_rules WHERE tenant_id = $1 AND action = $2 AND cidr = $3"};
static const pg_sql_t sql_ip_list = {
    .slot = PS_IP_LIST,
    .select = &tg_map_ip_rule,
    .sql =
        "FROM ip_rules WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id COLLATE \"C\", "
        "action, cidr COLLATE \"C\""};
static const pg_sql_t sql_tool_add = {
    .slot = PS_TOOL_ADD,
    .sql = "INSERT INTO tool_rules (tenant_id, action, pattern, created_us) VALUES ($1, $2, $3, "
           "$4)"};
static const pg_sql_t sql_tool_rm = {
    .slot = PS_TOOL_RM,
    .sql = "DELETE FROM tool_rules WHERE tenant_id = $1 AND action = $2 AND pattern = $3"};
static const pg_sql_t sql_tool_list = {.slot = PS_TOOL_LIST,
                                       .select = &tg_map_tool_rule,
                                       .sql = "FROM tool_rules WHERE $1::text IS NULL OR tenant_id "
                                              "= $1 ORDER BY tenant_id COLLATE \"C\", "
                                              "action, pattern COLLATE \"C\""};

static int pg_policy_version(tg_store_t *base, int64_t *out, tg_err_t *err)
{
    return pg_read_version((pg_store_t *)base, PG_POLICY, "policy version", out, err);
}

static int pg_limit_set(tg_store_t *base, const tg_limit_row_t *row, tg_err_t *err)
{
    if (tg_rowcheck_limit(row, err) != 0) return -1;
    pg_params_t p = {0};
    PG_P_ROW(&p, row, tenant);
    PG_P_ROW(&p, row, scope);
    PG_P_ROW(&p, row, value);
    pg_p_int64(&p, row->limit);
    pg_p_int64(&p, row->period_s);
    pg_p_int64(&p, row->burst);
    pg_p_int64(&p, row->concurrency);
    pg_p_int64(&p, row->tokens);
    pg_p_int64(&p, row->tokens_period_s);
    pg_p_int64(&p, row->updated_us ? row->updated_us : tg_wall_us());
    return pg_mutate((pg_store_t *)base, &sql_limit_set, &p, PG_POLICY, "limit set", err);
}

static int pg_limit_rm(tg_store_t *base, const char *tenant, const char *scope, const char *value,
                       tg_err_t *err)
{
    if (!value) value = "";
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_text(&p, scope);
    pg_p_text(&p, value);
    int ret = pg_mutate((pg_store_t *)base, &sql_limit_rm, &p, PG_POLICY, "limit rm", err);
    if (ret == TG_STORE_NOTFOUND) {
        if (*value)
            tg_err_set(err, "no limit for tenant \"%s\" %s \"%s\"", tenant, scope, value);
        else
            tg_err_set(err, "no tenant-wide limit for tenant \"%s\"", tenant);
    }
    return ret;
}

static int emit_limit(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_limit_row_t row;
    pg_read_row(s, r, i, &tg_map_limit, &row);
    return SINK_CALL(tg_limit_row_t, k, &row);
}

static int pg_limit_list(tg_store_t *base, const char *tenant,
                         int (*cb)(const tg_limit_row_t *, void *), void *ud, tg_err_t *err)
{
    return pg_each_tenant_row((pg_store_t *)base, &sql_limit_list, 1, tenant, emit_limit,
                              SINK(tg_limit_row_t, cb, ud), "limit list", err);
}

static int pg_pause_set(tg_store_t *base, const char *tenant, const char *reason, int64_t now_us,
                        tg_err_t *err)
{
    if (!tenant || !*tenant) return tg_err_set(err, "pause: empty tenant");
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_text(&p, reason ? reason : "");
    pg_p_int64(&p, now_us);
    return pg_mutate((pg_store_t *)base, &sql_pause_set, &p, PG_POLICY, "pause", err);
}

static int pg_pause_clear(tg_store_t *base, const char *tenant, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    int ret = pg_mutate((pg_store_t *)base, &sql_pause_clear, &p, PG_POLICY, "resume", err);
    if (ret == TG_STORE_NOTFOUND) {
        if (strcmp(tenant, "*") == 0)
            tg_err_set(err, "no global pause");
        else
            tg_err_set(err, "tenant \"%s\" is not paused", tenant);
    }
    return ret;
}

static int emit_pause(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_pause_row_t row;
    pg_read_row(s, r, i, &tg_map_pause, &row);
    return SINK_CALL(tg_pause_row_t, k, &row);
}

static int pg_pause_list(tg_store_t *base, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return pg_each_row((pg_store_t *)base, &sql_pause_list, NULL, emit_pause,
                       SINK(tg_pause_row_t, cb, ud), "pause list", err);
}

/* IP rules and tool rules: one shape, (tenant, action, value), in two tables; one add, rm
 * and list serves both, told by a rule_kind which statements and words to use (as in
 * sqlite_policy.c). */
typedef struct rule_kind {
    const char *what;  /* "ip rule": the operations are "ip rule add", ... */
    const char *value; /* what the value is called: "CIDR" */
    const char *q;     /* how messages quote the value: "" (a CIDR has no spaces) or "\"" */
    const pg_sql_t *add, *rm, *list;
} rule_kind_t;

static const rule_kind_t ip_rules = {"ip rule", "CIDR", "", &sql_ip_add, &sql_ip_rm, &sql_ip_list};
static const rule_kind_t tool_rules = {"tool rule",   "pattern",    "\"",
                                       &sql_tool_add, &sql_tool_rm, &sql_tool_list};

static int rule_add(pg_store_t *s, const rule_kind_t *k, const tg_rule_fields_t *r, tg_err_t *err)
{
    char what[32], action[16], owner[96], tenant[80];
    snprintf(what, sizeof what, "%s add", k->what);
    snprintf(action, sizeof action, "%.*s", (int)r->action_cap, r->action);
    if (tg_rowcheck_rule(what, k->value, r, err) != 0) return -1;
    pg_params_t p = {0};
    pg_p_field(&p, r->tenant, r->tenant_cap, 0);
    pg_p_field(&p, r->action, r->action_cap, 0);
    pg_p_field(&p, r->value, r->value_cap, 0);
    pg_p_int64(&p, r->created_us ? r->created_us : tg_wall_us());
    int ret = pg_mutate(s, k->add, &p, PG_POLICY, what, err);
    if (ret == TG_STORE_EXISTS) {
        snprintf(tenant, sizeof tenant, "%.*s", (int)r->tenant_cap, r->tenant);
        tg_err_set(err, "%s %s %s%.*s%s %s already exists", k->what, action, k->q,
                   (int)r->value_cap, r->value, k->q,
                   tg_rowcheck_rule_owner(tenant, owner, sizeof owner));
    }
    return ret;
}

static int rule_rm(pg_store_t *s, const rule_kind_t *k, const char *tenant, const char *action,
                   const char *value, tg_err_t *err)
{
    char what[32], owner[96];
    snprintf(what, sizeof what, "%s rm", k->what);
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_text(&p, action);
    pg_p_text(&p, value);
    int ret = pg_mutate(s, k->rm, &p, PG_POLICY, what, err);
    if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no %s %s %s%s%s %s", k->what, action, k->q, value, k->q,
                   tg_rowcheck_rule_owner(tenant, owner, sizeof owner));
    return ret;
}

static int rule_list(pg_store_t *s, const rule_kind_t *k, const char *tenant, pg_emit_fn emit,
                     sink_t sink, tg_err_t *err)
{
    char what[32];
    snprintf(what, sizeof what, "%s list", k->what);
    return pg_each_tenant_row(s, k->list, 1, tenant, emit, sink, what, err);
}

static int emit_ip_rule(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_ip_rule_row_t row;
    pg_read_row(s, r, i, &tg_map_ip_rule, &row);
    return SINK_CALL(tg_ip_rule_row_t, k, &row);
}

static int pg_ip_rule_add(tg_store_t *base, const tg_ip_rule_row_t *row, tg_err_t *err)
{
    return rule_add((pg_store_t *)base, &ip_rules, &TG_RULE_FIELDS(row, cidr), err);
}

static int pg_ip_rule_rm(tg_store_t *base, const char *tenant, const char *action, const char *cidr,
                         tg_err_t *err)
{
    return rule_rm((pg_store_t *)base, &ip_rules, tenant, action, cidr, err);
}

static int pg_ip_rule_list(tg_store_t *base, const char *tenant,
                           int (*cb)(const tg_ip_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return rule_list((pg_store_t *)base, &ip_rules, tenant, emit_ip_rule,
                     SINK(tg_ip_rule_row_t, cb, ud), err);
}

static int emit_tool_rule(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_tool_rule_row_t row;
    pg_read_row(s, r, i, &tg_map_tool_rule, &row);
    return SINK_CALL(tg_tool_rule_row_t, k, &row);
}

static int pg_tool_rule_add(tg_store_t *base, const tg_tool_rule_row_t *row, tg_err_t *err)
{
    return rule_add((pg_store_t *)base, &tool_rules, &TG_RULE_FIELDS(row, pattern), err);
}

static int pg_tool_rule_rm(tg_store_t *base, const char *tenant, const char *action,
                           const char *pattern, tg_err_t *err)
{
    return rule_rm((pg_store_t *)base, &tool_rules, tenant, action, pattern, err);
}

static int pg_tool_rule_list(tg_store_t *base, const char *tenant,
                             int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return rule_list((pg_store_t *)base, &tool_rules, tenant, emit_tool_rule,
                     SINK(tg_tool_rule_row_t, cb, ud), err);
}

const struct tg_store_policy_ops pg_policy_ops = {
    .policy_version = pg_policy_version,
    .limit_set = pg_limit_set,
    .limit_rm = pg_limit_rm,
    .limit_list = pg_limit_list,
    .pause_set = pg_pause_set,
    .pause_clear = pg_pause_clear,
    .pause_list = pg_pause_list,
    .ip_rule_add = pg_ip_rule_add,
    .ip_rule_rm = pg_ip_rule_rm,
    .ip_rule_list = pg_ip_rule_list,
    .tool_rule_add = pg_tool_rule_add,
    .tool_rule_rm = pg_tool_rule_rm,
    .tool_rule_list = pg_tool_rule_list,
};
