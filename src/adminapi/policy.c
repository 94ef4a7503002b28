/* The admin API's policy resources: pauses (the kill switch, `tollgate pause|resume`) and
 * limits (`tollgate limit`), through the same store functions as the CLI (store.h, "policy
 * rows"), each change bumping policy_version so every gateway takes it within a second.
 *
 * A body names what the CLI's options name, with the CLI's rules and words: a limit's
 * {"route"|"tool"|"key"|"model": TEXT} scope (at most one), one of rps/rpm/rph (0 to 1e9),
 * burst (needs a rate), one of tpm/tph (not with a tool), concurrency (the whole tenant
 * only), as JSON integers. The CLI's note when a route is not in the config is not given:
 * the API has no config (a limit of a route still to come is valid, as in the CLI). */
#include <stdio.h>
#include <string.h>

#include "adminapi/call.h"
#include "types/text.h"

#define MAX_N      1000000000LL    /* as src/cli/limit.c: a rate past a billion is no limit */
#define MAX_TOKENS 1000000000000LL /* as src/cli/limit.c */

#define ERR tg_adminapi__error

/* ---- pauses ------------------------------------------------------------------------ */

static json_t *pause_json(const tg_pause_row_t *p)
{
    return json_pack("{s:o,s:o,s:I}", "tenant", tg_adminapi__text(p->tenant), "reason",
                     tg_adminapi__text(p->reason), "created_us", (json_int_t)p->created_us);
}

static int on_pause(const tg_pause_row_t *p, void *ud)
{
    return json_array_append_new(ud, pause_json(p));
}

json_t *tg_adminapi__pauses_list(call_t *c)
{
    json_t *a = json_array();
    tg_err_t err = {{0}};
    if (tg_store_pause_list(c->s, on_pause, a, &err) != 0) {
        json_decref(a);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", "pauses", a);
}

typedef struct find_pause {
    const char *tenant;
    tg_pause_row_t row;
    int found;
} find_pause_t;

static int on_find_pause(const tg_pause_row_t *p, void *ud)
{
    find_pause_t *f = ud;
    if (strcmp(p->tenant, f->tenant) != 0) return 0;
    f->row = *p;
    f->found = 1;
    return 1;
}

/* The pause of tenant into *out (NULL when none); -1 with the error answer in *bad. */
static int current_pause(call_t *c, const char *tenant, json_t **out, json_t **bad)
{
    find_pause_t f = {.tenant = tenant};
    tg_err_t err = {{0}};
    if (tg_store_pause_list(c->s, on_find_pause, &f, &err) < 0) {
        *bad = tg_adminapi__store_error(c, &err);
        return -1;
    }
    *out = f.found ? pause_json(&f.row) : NULL;
    return 0;
}

/* {id} is a tenant or "*" (every tenant), as pause's --tenant. */
static int pause_target(call_t *c, json_t **bad)
{
    snprintf(c->object, sizeof c->object, "pause:%.80s", c->id);
    if (strcmp(c->id, "*") == 0) return 0;
    snprintf(c->tenant, sizeof c->tenant, "%.63s", c->id);
    return tg_adminapi__need_tenant(c, c->id, bad);
}

/* As `pause --tenant ID --reason TEXT`: idempotent, a new reason replaces the old one and
 * the pause keeps its start. */
json_t *tg_adminapi__pause_set(call_t *c)
{
    static const char *const allowed[] = {"reason", NULL};
    json_t *bad = tg_adminapi__check_body(c, allowed, 0);
    if (bad) return bad;
    const char *reason = tg_adminapi__member_text(c, "reason", &bad);
    if (bad) return bad;
    if (!reason) reason = "";
    if (strlen(reason) >= sizeof((tg_pause_row_t *)0)->reason)
        return ERR(c, 422, "invalid_value", "reason is too long (at most %zu bytes)",
                   sizeof((tg_pause_row_t *)0)->reason - 1);
    if (!tg_text_valid_label(reason))
        return ERR(c, 422, "invalid_value", "reason must be UTF-8 text without control characters");
    if (pause_target(c, &bad) != 0) return bad;
    if (current_pause(c, c->id, &c->before, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    if (tg_store_pause_set(c->s, c->id, reason, c->now_us, &err) != 0)
        return tg_adminapi__store_error(c, &err);
    if (current_pause(c, c->id, &c->after, &bad) != 0) return bad;
    if (!c->after) return ERR(c, 500, "store", "the pause was not stored");
    c->status = 200;
    return json_incref(c->after);
}

/* As `resume --tenant ID`: resuming what is not paused succeeds and says so. */
json_t *tg_adminapi__pause_clear(call_t *c)
{
    json_t *bad = tg_adminapi__check_body(c, (const char *const[]){NULL}, 0);
    if (bad) return bad;
    if (pause_target(c, &bad) != 0) return bad;
    if (current_pause(c, c->id, &c->before, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    int r = tg_store_pause_clear(c->s, c->id, &err);
    if (r != 0 && r != TG_STORE_NOTFOUND) return tg_adminapi__store_error(c, &err);
    c->status = 200;
    return json_pack("{s:o,s:b}", "tenant", tg_adminapi__text(c->id), "was_paused",
                     r != TG_STORE_NOTFOUND);
}

/* ---- limits ------------------------------------------------------------------------ */

/* What `limit list --format json` shows: null for what a row does not set, the burst in
 * effect (a row stored with burst 0 admits `limit` at once). */
static json_t *limit_json(const tg_limit_row_t *r)
{
    int rate = r->period_s > 0, tokens = r->tokens_period_s > 0;
#define OR_NULL(set, v) ((set) ? json_integer(v) : json_null())
    json_t *o = json_pack("{s:o,s:s,s:o}", "tenant", tg_adminapi__text(r->tenant), "scope",
                          r->scope, "value", tg_adminapi__text(r->value));
    json_object_set_new(o, "limit", OR_NULL(rate, r->limit));
    json_object_set_new(o, "period_s", OR_NULL(rate, r->period_s));
    json_object_set_new(o, "burst", OR_NULL(rate, r->burst ? r->burst : r->limit));
    json_object_set_new(o, "tokens", OR_NULL(tokens, r->tokens));
    json_object_set_new(o, "tokens_period_s", OR_NULL(tokens, r->tokens_period_s));
    json_object_set_new(o, "concurrency", OR_NULL(r->concurrency > 0, r->concurrency));
    json_object_set_new(o, "updated_us", json_integer(r->updated_us));
#undef OR_NULL
    return o;
}

static int on_limit(const tg_limit_row_t *r, void *ud)
{
    return json_array_append_new(ud, limit_json(r));
}

json_t *tg_adminapi__limits_list(call_t *c)
{
    char tenant[80] = "";
    qparam_t ps[] = {{"tenant", tenant, sizeof tenant, 0}};
    json_t *bad = tg_adminapi__read_query(c, ps, 1);
    if (bad) return bad;
    if (ps[0].seen && tg_adminapi__need_tenant(c, tenant, &bad) != 0) return bad;
    json_t *a = json_array();
    tg_err_t err = {{0}};
    if (tg_store_limit_list(c->s, ps[0].seen ? tenant : NULL, on_limit, a, &err) != 0) {
        json_decref(a);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", "limits", a);
}

static const char *const scope_names[4] = {"route", "tool", "key", "model"};

/* The scope named by at most one of route/tool/key/model (as limit's --route ...): "tenant"
 * and "" when none. vals are the members' texts (NULL = absent). */
static json_t *check_scope(call_t *c, const char *const vals[4], const char **scope,
                           const char **value)
{
    *scope = "tenant";
    *value = "";
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (!vals[i]) continue;
        if (n++)
            return ERR(c, 422, "invalid_value", "give at most one of route, tool, key and model");
        *scope = scope_names[i];
        *value = vals[i];
        if (!*vals[i]) return ERR(c, 422, "invalid_value", "%s must not be empty", scope_names[i]);
        if (strlen(vals[i]) >= sizeof((tg_limit_row_t *)0)->value)
            return ERR(c, 422, "invalid_value", "%s is too long (at most %zu bytes)",
                       scope_names[i], sizeof((tg_limit_row_t *)0)->value - 1);
        if (!tg_text_valid_label(vals[i]))
            return ERR(c, 422, "invalid_value", "%s must be UTF-8 text without control characters",
                       scope_names[i]);
    }
    return NULL;
}

/* An optional integer member in [lo, hi]: 0 absent, 1 given (*v), -1 with *bad. */
static int member_count(call_t *c, const char *name, int64_t lo, int64_t hi, int64_t *v,
                        json_t **bad)
{
    json_t *j = json_object_get(c->body, name);
    if (!j) return 0;
    if (!json_is_integer(j)) {
        *bad = ERR(c, 400, "invalid_request", "\"%s\" must be an integer", name);
        return -1;
    }
    if (json_integer_value(j) < lo || json_integer_value(j) > hi) {
        *bad = ERR(c, 422, "invalid_value", "invalid %s (expected an integer from %lld to %lld)",
                   name, (long long)lo, (long long)hi);
        return -1;
    }
    *v = json_integer_value(j);
    return 1;
}

typedef struct key_find {
    const char *id;
    int found;
} key_find_t;

static int find_key(const tg_key_t *k, void *ud)
{
    key_find_t *f = ud;
    if (strcmp(k->id, f->id) == 0) f->found = 1;
    return 0;
}

/* Everything `limit set` checks (src/cli/limit.c, check_set and cmd_set), into row. */
static json_t *read_limit(call_t *c, tg_limit_row_t *row)
{
    static const char *const allowed[] = {"route", "tool",  "key", "model", "rps",         "rpm",
                                          "rph",   "burst", "tpm", "tph",   "concurrency", NULL};
    static const char *const rate_name[3] = {"rps", "rpm", "rph"};
    static const int64_t rate_period[3] = {1, 60, 3600};
    static const char *const tokens_name[2] = {"tpm", "tph"};
    static const int64_t tokens_period[2] = {60, 3600};
    json_t *bad = tg_adminapi__check_body(c, allowed, 1);
    if (bad) return bad;
    const char *vals[4];
    for (int i = 0; i < 4; i++) {
        vals[i] = tg_adminapi__member_text(c, scope_names[i], &bad);
        if (bad) return bad;
    }
    const char *scope, *value;
    if ((bad = check_scope(c, vals, &scope, &value))) return bad;
    memset(row, 0, sizeof *row);
    snprintf(row->tenant, sizeof row->tenant, "%s", c->id);
    snprintf(row->scope, sizeof row->scope, "%s", scope);
    snprintf(row->value, sizeof row->value, "%s", value);
    int which = -1, twhich = -1, r;
    for (int i = 0; i < 3; i++) {
        if ((r = member_count(c, rate_name[i], 0, MAX_N, &row->limit, &bad)) < 0) return bad;
        if (!r) continue;
        if (which >= 0)
            return ERR(c, 422, "invalid_value", "give one of rps, rpm and rph, not %s and %s",
                       rate_name[which], rate_name[i]);
        which = i;
        row->period_s = rate_period[i];
    }
    if ((r = member_count(c, "burst", 1, MAX_N, &row->burst, &bad)) < 0) return bad;
    if (r && which < 0) return ERR(c, 422, "invalid_value", "burst needs a rate: rps, rpm or rph");
    for (int i = 0; i < 2; i++) {
        if ((r = member_count(c, tokens_name[i], 1, MAX_TOKENS, &row->tokens, &bad)) < 0)
            return bad;
        if (!r) continue;
        if (twhich >= 0) return ERR(c, 422, "invalid_value", "give one of tpm and tph, not both");
        twhich = i;
        row->tokens_period_s = tokens_period[i];
        /* An MCP tool call carries no tokens: such a limit could never count one. */
        if (strcmp(scope, "tool") == 0)
            return ERR(c, 422, "invalid_value",
                       "%s does not go with tool: tool calls have no tokens", tokens_name[i]);
    }
    if ((r = member_count(c, "concurrency", 1, MAX_N, &row->concurrency, &bad)) < 0) return bad;
    if (r && strcmp(scope, "tenant") != 0)
        return ERR(c, 422, "invalid_value",
                   "concurrency caps the whole tenant: it does not go with route, tool, key or "
                   "model");
    if (which < 0 && twhich < 0 && !r)
        return ERR(c, 422, "invalid_value",
                   "a limit needs rps, rpm or rph, tpm or tph, or concurrency");
    if (tg_adminapi__need_tenant(c, c->id, &bad) != 0) return bad;
    if (strcmp(scope, "key") == 0) {
        /* A key's limit is looked up under the key's own tenant: another's never matches. */
        key_find_t f = {value, 0};
        tg_err_t err = {{0}};
        if (tg_store_key_list(c->s, c->id, find_key, &f, &err) != 0)
            return tg_adminapi__store_error(c, &err);
        if (!f.found)
            return ERR(c, 422, "invalid_value", "no key \"%s\" of tenant \"%s\"", value, c->id);
    }
    return NULL;
}

typedef struct find_limit {
    const char *scope, *value;
    tg_limit_row_t row;
    int found;
} find_limit_t;

static int on_find_limit(const tg_limit_row_t *r, void *ud)
{
    find_limit_t *f = ud;
    if (strcmp(r->scope, f->scope) != 0 || strcmp(r->value, f->value) != 0) return 0;
    f->row = *r;
    f->found = 1;
    return 1;
}

/* The limit row of (c->id, scope, value) as JSON into *out (NULL when none). */
static int current_limit(call_t *c, const char *scope, const char *value, json_t **out,
                         json_t **bad)
{
    find_limit_t f = {.scope = scope, .value = value};
    tg_err_t err = {{0}};
    if (tg_store_limit_list(c->s, c->id, on_find_limit, &f, &err) < 0) {
        *bad = tg_adminapi__store_error(c, &err);
        return -1;
    }
    *out = f.found ? limit_json(&f.row) : NULL;
    return 0;
}

/* As `limit set --tenant ID ...`: the row of (tenant, scope, value) replaced whole. */
json_t *tg_adminapi__limit_set(call_t *c)
{
    tg_limit_row_t row;
    json_t *bad = read_limit(c, &row);
    if (bad) return bad;
    snprintf(c->object, sizeof c->object, "limit:%.63s/%s/%.80s", row.tenant, row.scope, row.value);
    if (current_limit(c, row.scope, row.value, &c->before, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    if (tg_store_limit_set(c->s, &row, &err) != 0) return tg_adminapi__store_error(c, &err);
    if (current_limit(c, row.scope, row.value, &c->after, &bad) != 0) return bad;
    if (!c->after) return ERR(c, 500, "store", "the limit was not stored");
    c->status = 200;
    return json_incref(c->after);
}

/* As `limit rm --tenant ID [--route R | ...]`: the scope in the query (?route=R, ...). */
json_t *tg_adminapi__limit_rm(call_t *c)
{
    char v[4][sizeof((tg_limit_row_t *)0)->value + 1];
    qparam_t ps[4];
    for (int i = 0; i < 4; i++) {
        v[i][0] = '\0';
        ps[i] = (qparam_t){scope_names[i], v[i], sizeof v[i], 0};
    }
    json_t *bad = tg_adminapi__read_query(c, ps, 4);
    if (bad) return bad;
    if ((bad = tg_adminapi__check_body(c, (const char *const[]){NULL}, 0))) return bad;
    const char *vals[4];
    for (int i = 0; i < 4; i++)
        vals[i] = ps[i].seen ? v[i] : NULL;
    const char *scope, *value;
    if ((bad = check_scope(c, vals, &scope, &value))) return bad;
    snprintf(c->object, sizeof c->object, "limit:%.63s/%s/%.80s", c->id, scope, value);
    if (tg_adminapi__need_tenant(c, c->id, &bad) != 0) return bad;
    if (current_limit(c, scope, value, &c->before, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    int r = tg_store_limit_rm(c->s, c->id, scope, value, &err);
    if (r == TG_STORE_NOTFOUND)
        return ERR(c, 404, "not_found", "no limit of tenant \"%s\" for %s%s%s", c->id, scope,
                   *value ? " " : "", value);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    c->status = 200;
    return json_pack("{s:o,s:s,s:o,s:b}", "tenant", tg_adminapi__text(c->id), "scope", scope,
                     "value", tg_adminapi__text(value), "removed", 1);
}
