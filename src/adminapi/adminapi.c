/* The admin API: see adminapi.h. A call is matched against the route table (method and
 * path template), checked against the caller's scope, its query and body read into plain
 * values with the CLI's checks, then run against the store; the answer is JSON, errors
 * {"error":{"type","message"}}. A handler sets the status and, for the audit record, the
 * object and what it was before and after. */
#include "adminapi/adminapi.h"

#include "adminapi/call.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/apikey.h"
#include "types/text.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/pct.h"

#define DAY_US   86400000000LL
#define PREFIX   "/admin/v1"
#define MAX_SEGS 8

typedef json_t *(*handler_fn)(call_t *c);

#define SCOPED 0x1u /* a tenant-scoped read token may call it, for its own tenant */

typedef struct route {
    const char *method, *path;
    unsigned flags;
    handler_fn fn;
} route_t;

/* ---- tenants ----------------------------------------------------------------------- */

static json_t *tenant_json(const tg_tenant_t *t)
{
    return json_pack("{s:o,s:o,s:s,s:I}", "id", tg_adminapi__text(t->id), "name",
                     tg_adminapi__text(t->name), "status", t->status, "created_us",
                     (json_int_t)t->created_us);
}

static int on_tenant(const tg_tenant_t *t, void *ud)
{
    return json_array_append_new(ud, tenant_json(t));
}

static json_t *tenants_list(call_t *c)
{
    json_t *a = json_array();
    tg_err_t err = {{0}};
    if (tg_store_tenant_list(c->s, on_tenant, a, &err) != 0) {
        json_decref(a);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", "tenants", a);
}

static json_t *tenants_create(call_t *c)
{
    static const char *const allowed[] = {"id", "name", NULL};
    json_t *bad = tg_adminapi__check_body(c, allowed, 1);
    if (bad) return bad;
    const char *id = tg_adminapi__member_text(c, "id", &bad);
    if (bad) return bad;
    if (!id) return tg_adminapi__error(c, 400, "invalid_request", "\"id\" is required");
    snprintf(c->object, sizeof c->object, "tenant:%.63s", id);
    if (!tg_text_new_tenant_id(id))
        return tg_adminapi__error(
            c, 422, "invalid_value",
            "invalid tenant id \"%.80s\": " TG_TENANT_ID_RULE " (not . or ..)", id);
    const char *name = tg_adminapi__member_name(c, sizeof((tg_tenant_t *)0)->name, &bad);
    if (bad) return bad;
    tg_err_t err = {{0}};
    int r = tg_store_tenant_add(c->s, id, name ? name : "", &err);
    if (r == TG_STORE_EXISTS)
        return tg_adminapi__error(c, 409, "exists", "tenant \"%s\" already exists", id);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    tg_tenant_t t;
    if (tg_store_tenant_get(c->s, id, &t, &err) != 0) return tg_adminapi__store_error(c, &err);
    c->status = 201;
    c->after = tenant_json(&t);
    return json_incref(c->after);
}

static int count_key(const tg_key_t *k, void *ud)
{
    int *n = ud;
    n[0]++;
    n[1] += strcmp(k->status, "active") == 0;
    return 0;
}

static json_t *tenants_show(call_t *c)
{
    tg_tenant_t t;
    tg_err_t err = {{0}};
    int r = tg_store_tenant_get(c->s, c->id, &t, &err);
    if (r == TG_STORE_NOTFOUND)
        return tg_adminapi__error(c, 404, "not_found", "no tenant \"%s\"", c->id);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    int n[2] = {0, 0};
    if (tg_store_key_list(c->s, c->id, count_key, n, &err) != 0)
        return tg_adminapi__store_error(c, &err);
    json_t *o = tenant_json(&t);
    json_object_set_new(o, "keys", json_pack("{s:i,s:i}", "all", n[0], "active", n[1]));
    c->status = 200;
    return o;
}

static json_t *set_status(call_t *c, const char *status)
{
    json_t *bad = tg_adminapi__check_body(c, (const char *const[]){NULL}, 0);
    if (bad) return bad;
    tg_tenant_t t;
    tg_err_t err = {{0}};
    int r = tg_store_tenant_get(c->s, c->id, &t, &err);
    if (r == TG_STORE_NOTFOUND)
        return tg_adminapi__error(c, 404, "not_found", "no tenant \"%s\"", c->id);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    c->before = tenant_json(&t);
    r = tg_store_tenant_set_status(c->s, c->id, status, &err);
    if (r == TG_STORE_NOTFOUND)
        return tg_adminapi__error(c, 404, "not_found", "no tenant \"%s\"", c->id);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    snprintf(t.status, sizeof t.status, "%s", status);
    c->after = tenant_json(&t);
    c->status = 200;
    return json_incref(c->after);
}

static json_t *tenants_disable(call_t *c)
{
    return set_status(c, "disabled");
}

static json_t *tenants_enable(call_t *c)
{
    return set_status(c, "active");
}

/* ---- usage ------------------------------------------------------------------------- */

static int parse_by(const char *s, tg_usage_by_t *by)
{
    static const char *const names[] = {"day", "hour", "route", "key", "model", "tool"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0) {
            *by = (tg_usage_by_t)i;
            return 0;
        }
    return -1;
}

typedef struct usage_ctx {
    json_t *rows;
    const char *group; /* the group's member name: day, hour, route, key_id, model, tool */
} usage_ctx_t;

static int on_usage(const tg_usage_row_t *r, void *ud)
{
    usage_ctx_t *u = ud;
    uint64_t mag =
        r->cost_micros < 0 ? (uint64_t)0 - (uint64_t)r->cost_micros : (uint64_t)r->cost_micros;
    char usd[32];
    snprintf(usd, sizeof usd, "%s%llu.%06llu", r->cost_micros < 0 ? "-" : "",
             (unsigned long long)(mag / 1000000), (unsigned long long)(mag % 1000000));
    json_t *o = json_pack(
        "{s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "tenant", tg_adminapi__text(r->tenant),
        u->group, tg_adminapi__text(r->group), "requests", (json_int_t)r->requests, "billable",
        (json_int_t)r->billable, "failed", (json_int_t)r->failed, "rejected",
        (json_int_t)r->rejected, "bytes_in", (json_int_t)r->bytes_in, "bytes_out",
        (json_int_t)r->bytes_out, "tokens_in", (json_int_t)r->tokens_in, "tokens_out",
        (json_int_t)r->tokens_out, "cost_micros", (json_int_t)r->cost_micros, "cost_usd", usd);
    return json_array_append_new(u->rows, o);
}

/* As `tollgate usage`: the same query, the same rows (its JSON format's members). A scoped
 * token sees its own tenant's only: tenant defaults to it, and another one is 404. */
static json_t *usage(call_t *c)
{
    char tenant[80] = "", from[16] = "", to[16] = "", by[16] = "";
    qparam_t ps[] = {{"tenant", tenant, sizeof tenant, 0},
                     {"from", from, sizeof from, 0},
                     {"to", to, sizeof to, 0},
                     {"by", by, sizeof by, 0}};
    json_t *bad = tg_adminapi__read_query(c, ps, 4);
    if (bad) return bad;
    const char *scope = c->req->who.tenant;
    if (scope[0] && !ps[0].seen) snprintf(tenant, sizeof tenant, "%s", scope);
    if (scope[0] && strcmp(tenant, scope) != 0)
        return tg_adminapi__error(c, 404, "not_found", "no tenant \"%.80s\"", tenant);
    if (!tg_text_valid_utf8(tenant))
        return tg_adminapi__error(c, 404, "not_found", "no tenant \"%.80s\"", tenant);
    tg_usage_query_t q = {.tenant = ps[0].seen || scope[0] ? tenant : NULL, .by = TG_BY_DAY};
    if (ps[1].seen && tg_parse_day(from, &q.from_us) != 0)
        return tg_adminapi__error(c, 400, "invalid_request",
                                  "invalid from \"%s\" (expected YYYY-MM-DD)", from);
    if (ps[2].seen) {
        if (tg_parse_day(to, &q.to_us) != 0)
            return tg_adminapi__error(c, 400, "invalid_request",
                                      "invalid to \"%s\" (expected YYYY-MM-DD)", to);
        q.to_us += DAY_US; /* inclusive day -> exclusive bound */
    }
    if (ps[1].seen && ps[2].seen && q.from_us >= q.to_us)
        return tg_adminapi__error(c, 400, "invalid_request", "from %s is after to %s", from, to);
    if (ps[3].seen && parse_by(by, &q.by) != 0)
        return tg_adminapi__error(
            c, 400, "invalid_request",
            "invalid by \"%s\" (expected day, hour, route, key, model or tool)", by);
    static const char *const group[] = {"day", "hour", "route", "key_id", "model", "tool"};
    usage_ctx_t u = {json_array(), group[q.by]};
    tg_err_t err = {{0}};
    if (tg_store_usage(c->s, &q, on_usage, &u, &err) != 0) {
        json_decref(u.rows);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", "rows", u.rows);
}

/* ---- budget ------------------------------------------------------------------------ */

static int on_budget(const tg_budget_row_t *b, void *ud)
{
    *(tg_budget_row_t *)ud = *b;
    return 1;
}

/* As `budget show ID`: the budget and what the UTC month of now has spent. */
static json_t *budget_show(call_t *c)
{
    json_t *e;
    if (tg_adminapi__need_tenant(c, c->id, &e) != 0) return e;
    tg_budget_row_t b;
    memset(&b, 0, sizeof b);
    tg_err_t err = {{0}};
    int r = tg_store_budget_list(c->s, c->id, on_budget, &b, &err);
    if (r < 0) return tg_adminapi__store_error(c, &err);
    if (r == 0)
        return tg_adminapi__error(c, 404, "not_found", "no budget for tenant \"%s\"", c->id);
    char day[11], first[11], last[11];
    tg_utc_day(c->now_us, day);
    /* The month's days compare as text: "-01" to "-31" holds every one of them. */
    snprintf(first, sizeof first, "%.8s01", day);
    snprintf(last, sizeof last, "%.8s31", day);
    int64_t spent = 0;
    if (tg_store_spend(c->s, c->id, first, last, &spent, &err) != 0)
        return tg_adminapi__store_error(c, &err);
    json_t *th = json_array();
    for (int i = 0; i < b.nthresholds; i++)
        json_array_append_new(th, json_integer(b.thresholds[i]));
    char month[8];
    memcpy(month, day, 7);
    month[7] = '\0';
    c->status = 200;
    return json_pack("{s:o,s:I,s:s,s:o,s:s,s:I}", "tenant", tg_adminapi__text(b.tenant),
                     "monthly_micros", (json_int_t)b.monthly_micros, "mode",
                     b.hard ? "hard" : "soft", "thresholds", th, "month", month, "spent_micros",
                     (json_int_t)spent);
}

/* ---- the route table --------------------------------------------------------------- */

static json_t *index_(call_t *c);

static const route_t routes[] = {
    {"GET", PREFIX "/", 0, index_},
    {"GET", PREFIX "/tenants", 0, tenants_list},
    {"POST", PREFIX "/tenants", 0, tenants_create},
    {"GET", PREFIX "/tenants/{id}", SCOPED, tenants_show},
    {"POST", PREFIX "/tenants/{id}/disable", 0, tenants_disable},
    {"POST", PREFIX "/tenants/{id}/enable", 0, tenants_enable},
    {"GET", PREFIX "/tenants/{id}/keys", 0, tg_adminapi__keys_list},
    {"POST", PREFIX "/tenants/{id}/keys", 0, tg_adminapi__keys_create},
    {"DELETE", PREFIX "/keys/{id}", 0, tg_adminapi__keys_revoke},
    {"POST", PREFIX "/keys/{id}/rotate", 0, tg_adminapi__keys_rotate},
    {"GET", PREFIX "/tenants/{id}/budget", SCOPED, budget_show},
    {"PUT", PREFIX "/tenants/{id}/budget", 0, tg_adminapi__budget_set},
    {"DELETE", PREFIX "/tenants/{id}/budget", 0, tg_adminapi__budget_rm},
    {"GET", PREFIX "/usage", SCOPED, usage},
    {"GET", PREFIX "/reports/{name}", SCOPED, tg_adminapi__report},
    {"GET", PREFIX "/pauses", 0, tg_adminapi__pauses_list},
    {"PUT", PREFIX "/pauses/{id}", 0, tg_adminapi__pause_set},
    {"DELETE", PREFIX "/pauses/{id}", 0, tg_adminapi__pause_clear},
    {"GET", PREFIX "/limits", 0, tg_adminapi__limits_list},
    {"PUT", PREFIX "/tenants/{id}/limits", 0, tg_adminapi__limit_set},
    {"DELETE", PREFIX "/tenants/{id}/limits", 0, tg_adminapi__limit_rm},
    {"GET", PREFIX "/ip-rules", 0, tg_adminapi__ip_rules_list},
    {"POST", PREFIX "/ip-rules", 0, tg_adminapi__ip_rule_add},
    {"DELETE", PREFIX "/ip-rules", 0, tg_adminapi__ip_rule_rm},
    {"GET", PREFIX "/tool-rules", 0, tg_adminapi__tool_rules_list},
    {"POST", PREFIX "/tool-rules", 0, tg_adminapi__tool_rule_add},
    {"DELETE", PREFIX "/tool-rules", 0, tg_adminapi__tool_rule_rm},
    {"GET", PREFIX "/prices", 0, tg_adminapi__prices_list},
    {"PUT", PREFIX "/prices/{model}", 0, tg_adminapi__price_set},
    {"DELETE", PREFIX "/prices/{model}", 0, tg_adminapi__price_rm},
    {"PUT", PREFIX "/prices/route/{name}", 0, tg_adminapi__route_price_set},
    {"DELETE", PREFIX "/prices/route/{name}", 0, tg_adminapi__route_price_rm},
    {"PUT", PREFIX "/prices/tool/{name}", 0, tg_adminapi__tool_price_set},
    {"DELETE", PREFIX "/prices/tool/{name}", 0, tg_adminapi__tool_price_rm},
    {"GET", PREFIX "/alarms", SCOPED, tg_adminapi__alarms_list},
    {"GET", PREFIX "/alarms/history", SCOPED, tg_adminapi__alarms_history},
    /* Answered by the listener itself (an embedded file): listed for the index and the
     * OpenAPI test. */
    {"GET", PREFIX "/openapi.json", SCOPED, NULL},
};
#define NROUTES (sizeof routes / sizeof routes[0])

size_t tg_adminapi_routes(const tg_adminapi_route_info_t **out)
{
    static tg_adminapi_route_info_t info[NROUTES];
    for (size_t i = 0; i < NROUTES; i++)
        info[i] = (tg_adminapi_route_info_t){routes[i].method, routes[i].path};
    *out = info;
    return NROUTES;
}

static json_t *index_(call_t *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < NROUTES; i++)
        json_array_append_new(
            a, json_pack("{s:s,s:s}", "method", routes[i].method, "path", routes[i].path));
    c->status = 200;
    return json_pack("{s:o}", "routes", a);
}

/* Does path match template t? The one "{id}" (or "{name}", "{model}") segment, percent-decoded,
 * goes to id; only a model may hold a "/" once decoded (%2F: "meta-llama/Llama-3-70b" as
 * providers and routers name models). Only "{id}" names a tenant's object, which a scoped token
 * reaches for its own tenant only; a route with "{name}" (a report) holds its scope to the tenant
 * itself, and one with "{model}" (a price) is no tenant's data, so none is SCOPED. */
static int match(const char *t, const char *path, char *id, size_t cap)
{
    while (*t && *path) {
        size_t ph = strncmp(t, "{id}", 4) == 0      ? 4
                    : strncmp(t, "{name}", 6) == 0  ? 6
                    : strncmp(t, "{model}", 7) == 0 ? 7
                                                    : 0;
        if (ph) {
            size_t n = strcspn(path, "/");
            if (n == 0 || tg_pct_decode(path, n, id, cap) != 0 || (ph != 7 && strchr(id, '/')))
                return 0;
            t += ph;
            path += n;
            continue;
        }
        if (*t != *path) return 0;
        t++, path++;
    }
    return *t == '\0' && *path == '\0';
}

void tg_adminapi_audit(tg_store_t *s, const tg_admin_principal_t *who, const char *action,
                       const char *object, const char *tenant, int status, const json_t *before,
                       const json_t *after, int64_t now_us)
{
    char what[160];
    snprintf(what, sizeof what, "%s %d", action, status);
    char *b = before ? json_dumps(before, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *a = after ? json_dumps(after, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    tg_err_t err = {{0}};
    if ((before && !b) || (after && !a))
        tg_err_set(&err, "out of memory");
    else
        tg_audit_admin(s, who->actor, what, object, tenant, b, a, now_us, &err);
    if (err.msg[0])
        TG_ERROR("admin audit: the record of %s by %s on \"%s\" was not written: %s", what,
                 who->actor, object, err.msg);
    free(b);
    free(a);
}

json_t *tg_adminapi_answer(tg_store_t *s, void *arg, int64_t now_us, int *status)
{
    const tg_adminapi_req_t *req = arg;
    char id[256] = "";
    call_t c = {.s = s, .req = req, .now_us = now_us, .id = id, .status = 500};
    const route_t *hit = NULL;
    int path_known = 0, scoped_known = 0;
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    for (size_t i = 0; i < NROUTES && !hit; i++) {
        char rid[256] = "";
        if (!match(routes[i].path, req->path, rid, sizeof rid)) continue;
        path_known = 1;
        scoped_known |= (routes[i].flags & SCOPED) != 0;
        if (strcmp(routes[i].method, method) == 0) {
            hit = &routes[i];
            memcpy(id, rid, sizeof id);
        }
    }
    json_t *out;
    const char *action = hit ? hit->path : req->path;
    /* Which routes exist is public (the OpenAPI document): a read token's write is 403
     * wherever it points; a scoped token learns nothing about other tenants' objects. */
    if (path_known && req->who.read_only && strcmp(method, "GET") != 0) {
        out =
            tg_adminapi__error(&c, 403, "forbidden", "this admin token may only read (role read)");
    } else if (req->who.tenant[0] && (hit ? !(hit->flags & SCOPED) : !scoped_known)) {
        out = tg_adminapi__error(&c, 404, "not_found", "no such admin endpoint");
    } else if (!hit && path_known) {
        out = tg_adminapi__error(&c, 405, "method_not_allowed", "%s is not allowed on %s",
                                 req->method, req->path);
    } else if (!hit || !hit->fn) {
        out = tg_adminapi__error(&c, 404, "not_found", "no such admin endpoint");
    } else if (req->who.tenant[0] && strstr(hit->path, "{id}") &&
               strcmp(id, req->who.tenant) != 0) {
        /* Another tenant's object: as if it did not exist. */
        out = tg_adminapi__error(&c, 404, "not_found", "no tenant \"%.80s\"", id);
    } else if (!tg_text_valid_utf8(id)) {
        /* No id is anything but text: PostgreSQL refuses such bytes (a 500), and the audit
         * record's object must be text too. */
        snprintf(c.object, sizeof c.object, "(not UTF-8 text)");
        out = tg_adminapi__error(&c, 404, "not_found", "no such object \"%.80s\"", id);
    } else {
        if (id[0]) snprintf(c.object, sizeof c.object, "%.150s", id);
        out = hit->fn(&c);
    }
    char full_action[128];
    snprintf(full_action, sizeof full_action, "%s %s", req->method, action);
    /* Routes under /tenants/{id} name the tenant whose data they touch (the path's, also
     * when the object is another: a key made under it); others may name it themselves. */
    const char *tenant =
        hit && !strncmp(hit->path, "/admin/v1/tenants/{id}", 22) && tg_text_valid_utf8(id)
            ? id
            : c.tenant;
    tg_adminapi_audit(s, &req->who, full_action, c.object, tenant, c.status, c.before, c.after,
                      now_us);
    json_decref(c.body);
    json_decref(c.before);
    json_decref(c.after);
    *status = c.status;
    return out;
}

tg_adminapi_req_t *tg_adminapi_req_new(const char *method, const char *path, const char *query,
                                       const char *body, size_t body_len,
                                       const tg_admin_principal_t *who, const tg_kek_t *kek)
{
    tg_adminapi_req_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->method, sizeof r->method, "%s", method);
    r->path = strdup(path);
    r->query = query ? strdup(query) : NULL;
    if (body) {
        r->body = malloc(body_len + 1);
        if (r->body) {
            memcpy(r->body, body, body_len);
            r->body[body_len] = '\0';
            r->body_len = body_len;
        }
    }
    r->who = *who;
    if (kek) {
        r->has_kek = 1;
        r->kek = *kek;
    }
    if (!r->path || (query && !r->query) || (body && !r->body)) {
        tg_adminapi_req_free(r);
        return NULL;
    }
    return r;
}

void tg_adminapi_req_free(void *arg)
{
    tg_adminapi_req_t *r = arg;
    if (!r) return;
    free(r->path);
    free(r->query);
    if (r->body) OPENSSL_cleanse(r->body, r->body_len);
    OPENSSL_cleanse(&r->kek, sizeof r->kek);
    free(r->body);
    free(r);
}
