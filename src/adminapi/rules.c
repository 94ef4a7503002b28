/* The admin API's access rules: IP rules (`tollgate ip`) and MCP tool rules (`tollgate
 * tool`), through the same store functions as the CLI (store.h, "policy rows"), each change
 * bumping policy_version so every gateway takes it within a second.
 *
 * The two are one shape, (tenant or "*", allow|deny, value), so one set of handlers serves
 * both through a rule_kind_t: what differs is the value's name, its check and its spelling.
 * A CIDR is checked and normalized by tg_cidr_parse/tg_cidr_format (types/cidr.h), a tool
 * pattern by tg_policy_tool_pattern_check (policy/policy.h): the CLI calls the same ones, so
 * both accept and store exactly the same text. As in the CLI, an IP rule without a tenant is
 * every tenant's ("*"), while a tool rule must name its tenant or "*". */
#include <stdio.h>
#include <string.h>

#include "adminapi/call.h"
#include "policy/policy.h"
#include "types/cidr.h"
#include "types/text.h"

#define ERR tg_adminapi__error

/* One rule of either kind, as the handlers see it. */
typedef struct rule {
    char tenant[TG_TENANT_SIZE];
    char action[8];
    char value[256]; /* the CIDR or the pattern; each kind's row caps it lower */
    int64_t created_us;
} rule_t;

typedef int (*rule_cb)(const rule_t *r, void *ud);

typedef struct rule_kind {
    const char *what;   /* "ip" or "tool": the CLI's command, the audit object's prefix */
    const char *list;   /* the list's member */
    const char *member; /* the value's member and query parameter */
    size_t cap;         /* the value's bytes in its row, with the NUL */
    int tenant_needed;  /* 0: no tenant means "*" */
    /* Checks text as the CLI does and writes the stored spelling into out (cap bytes). For
     * a removal (rm) a CIDR that does not parse is tried as written, as `ip rm` does. */
    json_t *(*norm)(call_t *c, const char *text, int rm, char *out, size_t cap, int *parsed);
    int (*list_fn)(tg_store_t *s, const char *tenant, rule_cb cb, void *ud, tg_err_t *err);
    int (*add_fn)(tg_store_t *s, const rule_t *r, tg_err_t *err);
    int (*rm_fn)(tg_store_t *s, const char *tenant, const char *action, const char *value,
                 tg_err_t *err);
} rule_kind_t;

/* ---- the two kinds ------------------------------------------------------------------ */

typedef struct relay {
    rule_cb cb;
    void *ud;
} relay_t;

static json_t *norm_cidr(call_t *c, const char *text, int rm, char *out, size_t cap, int *parsed)
{
    tg_cidr_t cidr;
    tg_err_t err = {{0}};
    *parsed = tg_cidr_parse(text, &cidr, &err) == 0;
    if (*parsed) {
        tg_cidr_format(&cidr, out, cap);
        return NULL;
    }
    if (!rm || strlen(text) >= cap || !tg_text_valid_utf8(text))
        return ERR(c, 422, "invalid_value", "invalid CIDR %s", err.msg);
    snprintf(out, cap, "%s", text);
    return NULL;
}

static json_t *norm_pattern(call_t *c, const char *text, int rm, char *out, size_t cap, int *parsed)
{
    tg_err_t err = {{0}};
    /* `tool rm` takes a pattern as listed; one that could not be stored matches nothing. */
    if (!rm && tg_policy_tool_pattern_check(text, cap, &err) != 0)
        return ERR(c, 422, "invalid_value", "%s", err.msg);
    if (rm && (strlen(text) >= cap || !tg_text_valid_utf8(text)))
        return ERR(c, 404, "not_found", "no such tool rule");
    snprintf(out, cap, "%s", text);
    *parsed = 1;
    return NULL;
}

static int ip_relay(const tg_ip_rule_row_t *row, void *ud)
{
    relay_t *k = ud;
    rule_t r = {.created_us = row->created_us};
    snprintf(r.tenant, sizeof r.tenant, "%s", row->tenant);
    snprintf(r.action, sizeof r.action, "%s", row->action);
    snprintf(r.value, sizeof r.value, "%s", row->cidr);
    return k->cb(&r, k->ud);
}

static int ip_list(tg_store_t *s, const char *tenant, rule_cb cb, void *ud, tg_err_t *err)
{
    relay_t k = {cb, ud};
    return tg_store_ip_rule_list(s, tenant, ip_relay, &k, err);
}

static int ip_add(tg_store_t *s, const rule_t *r, tg_err_t *err)
{
    tg_ip_rule_row_t row;
    memset(&row, 0, sizeof row);
    snprintf(row.tenant, sizeof row.tenant, "%s", r->tenant);
    snprintf(row.action, sizeof row.action, "%s", r->action);
    snprintf(row.cidr, sizeof row.cidr, "%.*s", (int)sizeof row.cidr - 1, r->value);
    return tg_store_ip_rule_add(s, &row, err);
}

static int tool_relay(const tg_tool_rule_row_t *row, void *ud)
{
    relay_t *k = ud;
    rule_t r = {.created_us = row->created_us};
    snprintf(r.tenant, sizeof r.tenant, "%s", row->tenant);
    snprintf(r.action, sizeof r.action, "%s", row->action);
    snprintf(r.value, sizeof r.value, "%s", row->pattern);
    return k->cb(&r, k->ud);
}

static int tool_list(tg_store_t *s, const char *tenant, rule_cb cb, void *ud, tg_err_t *err)
{
    relay_t k = {cb, ud};
    return tg_store_tool_rule_list(s, tenant, tool_relay, &k, err);
}

static int tool_add(tg_store_t *s, const rule_t *r, tg_err_t *err)
{
    tg_tool_rule_row_t row;
    memset(&row, 0, sizeof row);
    snprintf(row.tenant, sizeof row.tenant, "%s", r->tenant);
    snprintf(row.action, sizeof row.action, "%s", r->action);
    snprintf(row.pattern, sizeof row.pattern, "%.*s", (int)sizeof row.pattern - 1, r->value);
    return tg_store_tool_rule_add(s, &row, err);
}

static const rule_kind_t ip_kind = {
    .what = "ip",
    .list = "ip_rules",
    .member = "cidr",
    .cap = sizeof((tg_ip_rule_row_t *)0)->cidr,
    .tenant_needed = 0,
    .norm = norm_cidr,
    .list_fn = ip_list,
    .add_fn = ip_add,
    .rm_fn = tg_store_ip_rule_rm,
};

static const rule_kind_t tool_kind = {
    .what = "tool",
    .list = "tool_rules",
    .member = "pattern",
    .cap = sizeof((tg_tool_rule_row_t *)0)->pattern,
    .tenant_needed = 1,
    .norm = norm_pattern,
    .list_fn = tool_list,
    .add_fn = tool_add,
    .rm_fn = tg_store_tool_rule_rm,
};

/* ---- the handlers ------------------------------------------------------------------- */

static json_t *rule_json(const rule_kind_t *k, const rule_t *r)
{
    return json_pack("{s:o,s:o,s:o,s:I}", "tenant", tg_adminapi__text(r->tenant), "action",
                     tg_adminapi__text(r->action), k->member, tg_adminapi__text(r->value),
                     "created_us", (json_int_t)r->created_us);
}

typedef struct lister {
    const rule_kind_t *k;
    json_t *a;
} lister_t;

static int on_rule(const rule_t *r, void *ud)
{
    lister_t *l = ud;
    return json_array_append_new(l->a, rule_json(l->k, r));
}

/* A tenant id or "*", which must exist unless "*". */
static int rule_tenant(call_t *c, const char *tenant, json_t **bad)
{
    if (strcmp(tenant, "*") == 0) return 0;
    return tg_adminapi__need_tenant(c, tenant, bad);
}

static json_t *rules_list(call_t *c, const rule_kind_t *k)
{
    char tenant[80] = "";
    qparam_t ps[] = {{"tenant", tenant, sizeof tenant, 0}};
    json_t *bad = tg_adminapi__read_query(c, ps, 1);
    if (bad) return bad;
    if (ps[0].seen && rule_tenant(c, tenant, &bad) != 0) return bad;
    lister_t l = {k, json_array()};
    tg_err_t err = {{0}};
    if (k->list_fn(c->s, ps[0].seen ? tenant : NULL, on_rule, &l, &err) != 0) {
        json_decref(l.a);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", k->list, l.a);
}

typedef struct finder {
    const rule_t *want;
    rule_t row;
    int found;
} finder_t;

static int on_find(const rule_t *r, void *ud)
{
    finder_t *f = ud;
    if (strcmp(r->action, f->want->action) != 0 || strcmp(r->value, f->want->value) != 0) return 0;
    f->row = *r;
    f->found = 1;
    return 1;
}

/* The stored rule equal to want as JSON into *out (NULL when none). */
static int current_rule(call_t *c, const rule_kind_t *k, const rule_t *want, json_t **out,
                        json_t **bad)
{
    finder_t f = {.want = want};
    tg_err_t err = {{0}};
    if (k->list_fn(c->s, want->tenant, on_find, &f, &err) < 0) {
        *bad = tg_adminapi__store_error(c, &err);
        return -1;
    }
    *out = f.found ? rule_json(k, &f.row) : NULL;
    return 0;
}

static json_t *check_action(call_t *c, const char *action)
{
    if (!action) return ERR(c, 400, "invalid_request", "\"action\" is required");
    if (strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0)
        return ERR(c, 422, "invalid_value", "invalid action \"%.20s\" (expected allow or deny)",
                   action);
    return NULL;
}

/* The tenant given (NULL: absent) into r, "*" when the kind allows none. */
static json_t *check_tenant(call_t *c, const rule_kind_t *k, const char *tenant, rule_t *r)
{
    if (!tenant && k->tenant_needed)
        return ERR(c, 400, "invalid_request",
                   "\"tenant\" is required: a tenant id, or \"*\" for every tenant");
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant ? tenant : "*");
    /* Bytes that are not UTF-8 name no tenant, and must not reach the audit record's
     * object (PostgreSQL refuses them). */
    if (tenant && (strlen(tenant) >= sizeof r->tenant || !tg_text_valid_utf8(tenant)))
        return ERR(c, 404, "not_found", "no tenant \"%.80s\"", tenant);
    return NULL;
}

static void set_object(call_t *c, const rule_kind_t *k, const rule_t *r)
{
    tg_adminapi__object(c, "%s:%s/%s/%s", k->what, r->tenant, r->action, r->value);
    if (strcmp(r->tenant, "*") != 0) snprintf(c->tenant, sizeof c->tenant, "%s", r->tenant);
}

/* As `ip allow|deny CIDR [--tenant ID]` and `tool allow|deny --tenant ID PATTERN`. */
static json_t *rule_add(call_t *c, const rule_kind_t *k)
{
    const char *const allowed[] = {"tenant", "action", k->member, NULL};
    json_t *bad = tg_adminapi__check_body(c, allowed, 1);
    if (bad) return bad;
    const char *tenant = tg_adminapi__member_text(c, "tenant", &bad);
    if (bad) return bad;
    const char *action = tg_adminapi__member_text(c, "action", &bad);
    if (bad) return bad;
    const char *value = tg_adminapi__member_text(c, k->member, &bad);
    if (bad) return bad;
    rule_t r;
    memset(&r, 0, sizeof r);
    if ((bad = check_tenant(c, k, tenant, &r))) return bad;
    if ((bad = check_action(c, action))) return bad;
    snprintf(r.action, sizeof r.action, "%.7s", action); /* allow or deny */
    if (!value) return ERR(c, 400, "invalid_request", "\"%s\" is required", k->member);
    int parsed;
    if ((bad = k->norm(c, value, 0, r.value, k->cap, &parsed))) return bad;
    set_object(c, k, &r);
    if (rule_tenant(c, r.tenant, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    int rc = k->add_fn(c->s, &r, &err);
    if (rc == TG_STORE_EXISTS) return ERR(c, 409, "exists", "%s", err.msg);
    if (rc != 0) return tg_adminapi__store_error(c, &err);
    if (current_rule(c, k, &r, &c->after, &bad) != 0) return bad;
    if (!c->after) return ERR(c, 500, "store", "the rule was not stored");
    c->status = 201;
    return json_incref(c->after);
}

/* As `ip rm allow|deny CIDR [--tenant ID]` and `tool rm --tenant ID allow|deny PATTERN`,
 * the three in the query. */
static json_t *rule_rm(call_t *c, const rule_kind_t *k)
{
    char tenant[80] = "", action[16] = "", value[512] = "";
    qparam_t ps[] = {{"tenant", tenant, sizeof tenant, 0},
                     {"action", action, sizeof action, 0},
                     {k->member, value, sizeof value, 0}};
    json_t *bad = tg_adminapi__read_query(c, ps, 3);
    if (bad) return bad;
    if ((bad = tg_adminapi__check_body(c, (const char *const[]){NULL}, 0))) return bad;
    rule_t r;
    memset(&r, 0, sizeof r);
    if ((bad = check_tenant(c, k, ps[0].seen ? tenant : NULL, &r))) return bad;
    if ((bad = check_action(c, ps[1].seen ? action : NULL))) return bad;
    snprintf(r.action, sizeof r.action, "%.7s", action); /* allow or deny */
    if (!ps[2].seen) return ERR(c, 400, "invalid_request", "\"%s\" is required", k->member);
    int parsed;
    if ((bad = k->norm(c, value, 1, r.value, k->cap, &parsed))) return bad;
    set_object(c, k, &r);
    if (rule_tenant(c, r.tenant, &bad) != 0) return bad;
    if (current_rule(c, k, &r, &c->before, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    int rc = k->rm_fn(c->s, r.tenant, r.action, r.value, &err);
    if (rc == TG_STORE_NOTFOUND && !parsed) {
        /* Not a CIDR, and not a row written by other means either: say why. */
        tg_cidr_t cidr;
        tg_cidr_parse(value, &cidr, &err);
        return ERR(c, 422, "invalid_value", "invalid CIDR %s", err.msg);
    }
    if (rc == TG_STORE_NOTFOUND) return ERR(c, 404, "not_found", "%s", err.msg);
    if (rc != 0) return tg_adminapi__store_error(c, &err);
    c->status = 200;
    json_t *o = rule_json(k, &r);
    json_object_del(o, "created_us");
    json_object_set_new(o, "removed", json_true());
    return o;
}

json_t *tg_adminapi__ip_rules_list(call_t *c)
{
    return rules_list(c, &ip_kind);
}

json_t *tg_adminapi__ip_rule_add(call_t *c)
{
    return rule_add(c, &ip_kind);
}

json_t *tg_adminapi__ip_rule_rm(call_t *c)
{
    return rule_rm(c, &ip_kind);
}

json_t *tg_adminapi__tool_rules_list(call_t *c)
{
    return rules_list(c, &tool_kind);
}

json_t *tg_adminapi__tool_rule_add(call_t *c)
{
    return rule_add(c, &tool_kind);
}

json_t *tg_adminapi__tool_rule_rm(call_t *c)
{
    return rule_rm(c, &tool_kind);
}
