/* The rows' checks shared by the backends: see rowcheck.h. */
#include "store/rowcheck.h"

#include <stdio.h>
#include <string.h>

#include "store/maps.h"

/* ---- limits and rules ------------------------------------------------------------------ */

static int valid_scope(const char *scope)
{
    return strcmp(scope, "tenant") == 0 || strcmp(scope, "route") == 0 ||
           strcmp(scope, "tool") == 0 || strcmp(scope, "key") == 0 || strcmp(scope, "model") == 0;
}

int tg_rowcheck_limit(const tg_limit_row_t *r, tg_err_t *err)
{
    char scope[sizeof r->scope + 1];
    snprintf(scope, sizeof scope, "%.*s", (int)sizeof r->scope, r->scope);
    if (!r->tenant[0]) return tg_err_set(err, "limit set: empty tenant");
    if (!valid_scope(scope)) return tg_err_set(err, "limit set: invalid scope \"%s\"", scope);
    int tenant_scope = strcmp(scope, "tenant") == 0;
    if (tenant_scope != !r->value[0])
        return tg_err_set(err, "limit set: scope %s %s", scope,
                          tenant_scope ? "takes no value" : "needs a value");
    if (r->period_s != 0 && r->period_s != 1 && r->period_s != 60 && r->period_s != 3600)
        return tg_err_set(err, "limit set: period %lld s (expected 1, 60 or 3600)",
                          (long long)r->period_s);
    if (r->tokens_period_s != 0 && r->tokens_period_s != 60 && r->tokens_period_s != 3600)
        return tg_err_set(err, "limit set: token period %lld s (expected 60 or 3600)",
                          (long long)r->tokens_period_s);
    if (r->limit < 0 || r->burst < 0 || r->concurrency < 0 || r->tokens < 0)
        return tg_err_set(err, "limit set: negative limit, burst, concurrency or tokens");
    if (r->period_s == 0 && r->limit != 0)
        return tg_err_set(err, "limit set: a limit of %lld needs a period", (long long)r->limit);
    if (r->tokens_period_s == 0 && r->tokens != 0)
        return tg_err_set(err, "limit set: a token limit of %lld needs a period",
                          (long long)r->tokens);
    if (r->concurrency && !tenant_scope)
        return tg_err_set(err, "limit set: concurrency applies to scope tenant only");
    return 0;
}

static int valid_action(const char *a)
{
    return strcmp(a, "allow") == 0 || strcmp(a, "deny") == 0;
}

int tg_rowcheck_rule(const char *what, const char *value_name, const tg_rule_fields_t *r,
                     tg_err_t *err)
{
    char a[16];
    snprintf(a, sizeof a, "%.*s", (int)r->action_cap, r->action);
    if (!r->tenant[0]) return tg_err_set(err, "%s: empty tenant", what);
    if (!valid_action(a))
        return tg_err_set(err, "%s: invalid action \"%s\" (expected allow or deny)", what, a);
    if (!r->value[0]) return tg_err_set(err, "%s: empty %s", what, value_name);
    return 0;
}

const char *tg_rowcheck_rule_owner(const char *tenant, char *buf, size_t cap)
{
    if (strcmp(tenant, "*") == 0) return "for all tenants";
    snprintf(buf, cap, "for tenant \"%s\"", tenant);
    return buf;
}

/* ---- prices and budgets ------------------------------------------------------------------ */

static int valid_meter(const char *m)
{
    return strcmp(m, "model") == 0 || strcmp(m, "route") == 0 || strcmp(m, "tool") == 0;
}

/* The table's CHECKs in words: each meter has its own amounts; a row sets at least one. */
int tg_rowcheck_price(const tg_price_row_t *r, tg_err_t *err)
{
    char meter[sizeof r->meter + 1];
    snprintf(meter, sizeof meter, "%.*s", (int)sizeof r->meter, r->meter);
    if (!valid_meter(meter))
        return tg_err_set(err, "price set: invalid meter \"%s\" (expected model, route or tool)",
                          meter);
    if (!r->name[0]) return tg_err_set(err, "price set: empty name");
    if (r->effective_us < 0) return tg_err_set(err, "price set: effective time before 1970");
    static const char *const names[7] = {"input",   "output", "cached", "cache_write",
                                         "request", "gb",     "call"};
    static const char *const owner[7] = {"model", "model", "model", "model",
                                         "route", "route", "tool"};
    const int64_t v[7] = {r->input_micros,       r->output_micros,  r->cached_micros,
                          r->cache_write_micros, r->request_micros, r->gb_micros,
                          r->call_micros};
    int any = 0;
    for (int i = 0; i < 7; i++) {
        if (v[i] == -1) continue;
        if (v[i] < 0)
            return tg_err_set(err, "price set: negative %s amount %lld", names[i], (long long)v[i]);
        if (strcmp(owner[i], meter) != 0)
            return tg_err_set(err, "price set: a %s price has no %s amount", meter, names[i]);
        any = 1;
    }
    if (!any) return tg_err_set(err, "price set: the row sets no amount");
    return 0;
}

int tg_rowcheck_budget(const tg_budget_row_t *r, tg_err_t *err)
{
    if (!r->tenant[0]) return tg_err_set(err, "budget set: empty tenant");
    if (r->monthly_micros <= 0) return tg_err_set(err, "budget set: the budget must be above 0");
    if (r->hard != 0 && r->hard != 1) return tg_err_set(err, "budget set: hard must be 0 or 1");
    if (r->nthresholds < 0 || r->nthresholds > TG_BUDGET_NTHRESHOLDS)
        return tg_err_set(err, "budget set: %d thresholds (at most %d)", r->nthresholds,
                          TG_BUDGET_NTHRESHOLDS);
    for (int i = 0; i < r->nthresholds; i++) {
        if (r->thresholds[i] < 1 || r->thresholds[i] > TG_BUDGET_MAX_THRESHOLD)
            return tg_err_set(err, "budget set: threshold %d%% (expected 1 to %d)",
                              r->thresholds[i], TG_BUDGET_MAX_THRESHOLD);
        if (i && r->thresholds[i] <= r->thresholds[i - 1])
            return tg_err_set(err, "budget set: thresholds must ascend (%d after %d)",
                              r->thresholds[i], r->thresholds[i - 1]);
    }
    return 0;
}

/* ---- alerts, alarms, outbox ---------------------------------------------------------------- */

/* "YYYY-MM" with a month from 01 to 12. */
static int valid_period(const char *p, size_t cap)
{
    if (strnlen(p, cap) != 7 || p[4] != '-') return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (p[i] < '0' || p[i] > '9')) return 0;
    int month = (p[5] - '0') * 10 + (p[6] - '0');
    return month >= 1 && month <= 12;
}

int tg_rowcheck_alert(const tg_alert_row_t *r, tg_err_t *err)
{
    if (!r->kind[0] || !r->tenant[0]) return tg_err_set(err, "alert add: empty kind or tenant");
    if (!valid_period(r->period, sizeof r->period))
        return tg_err_set(err, "alert add: invalid period \"%.*s\" (expected YYYY-MM)",
                          (int)sizeof r->period, r->period);
    return 0;
}

static int valid_state(const char *s)
{
    return !strcmp(s, "ok") || !strcmp(s, "pending") || !strcmp(s, "firing") ||
           !strcmp(s, "resolved");
}

int tg_rowcheck_alarm_put(const tg_alarm_row_t *rows, size_t nrows, const tg_alarm_event_row_t *evs,
                          size_t nevs, tg_err_t *err)
{
    for (size_t i = 0; i < nrows; i++)
        if (!rows[i].name[0] || !valid_state(rows[i].state))
            return tg_err_set(err, "alarm put: empty name or unknown state \"%.16s\"",
                              rows[i].state);
    for (size_t i = 0; i < nevs; i++)
        if (!evs[i].notice_id[0] || !valid_state(evs[i].from_state) ||
            !valid_state(evs[i].to_state))
            return tg_err_set(err, "alarm put: a transition needs a notice id and two states");
    return 0;
}

int tg_rowcheck_outbox_status(const char *st, tg_err_t *err)
{
    if (st && (!strcmp(st, "pending") || !strcmp(st, "delivered") || !strcmp(st, "failed")))
        return 0;
    return tg_err_set(err, "outbox set: status must be pending, delivered or failed");
}
