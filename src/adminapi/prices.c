/* The admin API's prices: GET /admin/v1/prices (as `tollgate price list --format json`:
 * every meter's rows, each with its status now); PUT and DELETE /admin/v1/prices/{model},
 * /prices/route/{name} and /prices/tool/{name} (as `price set|rm MODEL`, `--route NAME`,
 * `--tool NAME`), through the same store functions and types/pricerow.h's checks
 * (tg_price_set_amounts), so both accept and show the same rows. Prices are not tenant
 * data: no tenant-scoped token reaches them.
 *
 * PUT's body: the meter's amounts as the CLI's USD text, read by tg_money_parse (exact,
 * never a float): {"input": "2.50", "output": "10", "cached", "cache_write"} per 1M tokens
 * for a model, {"request", "gb"} for a route, {"call"} for a tool; and "from":
 * "2026-01-01" | "2026-01-01T00:00:00Z" | "now" (the default). A row is keyed by (meter,
 * name, from): setting one again replaces it, as the CLI does. DELETE takes ?from= (one
 * row, as listed) or removes every row of the name. Unlike the CLI, a route price for a
 * route the config lacks is no note: the API has no config (the price applies once the
 * route exists). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adminapi/call.h"
#include "types/pricerow.h"
#include "util/money.h"

#define ERR tg_adminapi__error

/* A row as `price list --format json` shows it (only its own meter's amounts), its times
 * as integers of microseconds as every time of the API: from_us, created_us. */
static json_t *price_json(const tg_price_row_t *p, const char *status)
{
    json_t *o = json_pack("{s:o,s:o,s:I,s:s}", "meter", tg_adminapi__text(p->meter), "name",
                          tg_adminapi__text(p->name), "from_us", (json_int_t)p->effective_us,
                          "status", status);
    for (int i = 0; i < TG_PRICE_NAMOUNTS; i++) {
        if (strcmp(tg_price_amount_meter[i], p->meter) != 0) continue;
        int64_t v = tg_price_amount_get(p, i);
        char usd[32];
        if (v >= 0) tg_money_format(v, usd, sizeof usd);
        json_object_set_new(o, tg_price_amount_name[i], v >= 0 ? json_string(usd) : json_null());
    }
    json_object_set_new(o, "created_us", json_integer(p->created_us));
    return o;
}

typedef struct rows {
    tg_price_row_t *v;
    size_t n, cap;
} rows_t;

static int collect(const tg_price_row_t *r, void *ud)
{
    rows_t *rs = ud;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        tg_price_row_t *v = realloc(rs->v, cap * sizeof *v);
        if (!v) return -1;
        rs->v = v;
        rs->cap = cap;
    }
    rs->v[rs->n++] = *r;
    return 0;
}

/* Every row as JSON with its status at c->now_us; those of (meter, name) only when name is
 * set, and of one effective time only when from >= 0. NULL with *bad on an error. */
static json_t *rows_json(call_t *c, const char *meter, const char *name, int64_t from, json_t **bad)
{
    rows_t rs = {0};
    tg_err_t err = {{0}};
    if (tg_store_price_list(c->s, collect, &rs, &err) != 0) {
        free(rs.v);
        *bad = tg_adminapi__store_error(c, &err);
        return NULL;
    }
    const char **st = calloc(rs.n + 1, sizeof *st);
    if (!st) {
        free(rs.v);
        *bad = ERR(c, 500, "store", "out of memory");
        return NULL;
    }
    tg_price_statuses(rs.v, rs.n, c->now_us, st);
    json_t *a = json_array();
    for (size_t i = 0; i < rs.n; i++) {
        const tg_price_row_t *p = &rs.v[i];
        if (name && (strcmp(p->meter, meter) != 0 || strcmp(p->name, name) != 0)) continue;
        if (from >= 0 && p->effective_us != from) continue;
        json_array_append_new(a, price_json(p, st[i]));
    }
    free(st);
    free(rs.v);
    return a;
}

json_t *tg_adminapi__prices_list(call_t *c)
{
    json_t *bad = tg_adminapi__read_query(c, NULL, 0);
    if (bad) return bad;
    json_t *a = rows_json(c, NULL, NULL, -1, &bad);
    if (!a) return bad;
    c->status = 200;
    return json_pack("{s:o}", "prices", a);
}

/* c->id as the name of a meter's price, as `price set|rm MODEL|--route NAME|--tool NAME`
 * checks it (adminapi.c has already refused bytes that are not UTF-8 text, before the
 * store). */
static json_t *check_name(call_t *c, const char *what)
{
    switch (tg_price_name_check(c->id)) {
    case TG_PRICE_NAME_OK: return NULL;
    case TG_PRICE_NAME_EMPTY: return ERR(c, 422, "invalid_value", "%s must not be empty", what);
    case TG_PRICE_NAME_LONG:
        return ERR(c, 422, "invalid_value", "%s is too long (at most %zu bytes)", what,
                   TG_PRICE_NAME_MAX);
    case TG_PRICE_NAME_TEXT: break;
    }
    return ERR(c, 422, "invalid_value", "%s must be UTF-8 text without control characters", what);
}

/* How the CLI names the priced thing: `price set MODEL`, `--route NAME`, `--tool NAME`. */
static const char *what_of(const char *meter)
{
    return meter[0] == 'm' ? "MODEL" : meter[0] == 'r' ? "route NAME" : "tool NAME";
}

/* The one stored row of (meter, c->id, from) as JSON into *out (NULL when none). */
static int current(call_t *c, const char *meter, int64_t from, json_t **out, json_t **bad)
{
    json_t *a = rows_json(c, meter, c->id, from, bad);
    if (!a) return -1;
    *out = json_array_size(a) ? json_incref(json_array_get(a, 0)) : NULL;
    json_decref(a);
    return 0;
}

/* As `price set MODEL --input USD --output USD [--cached USD] [--cache-write USD]`, `price
 * set --route NAME [--request USD] [--gb USD]` or `price set --tool NAME --call USD`, each
 * with [--from DATE|now]: the body's members are the meter's amounts (a member of another
 * meter's is unknown: 400) and from. */
static json_t *price_set(call_t *c, const char *meter)
{
    const char *allowed[TG_PRICE_NAMOUNTS + 2];
    size_t na = 0;
    for (int i = 0; i < TG_PRICE_NAMOUNTS; i++)
        if (strcmp(tg_price_amount_meter[i], meter) == 0) allowed[na++] = tg_price_amount_name[i];
    allowed[na++] = "from";
    allowed[na] = NULL;
    json_t *bad = tg_adminapi__check_body(c, allowed, 1);
    if (bad) return bad;
    const char *usd[TG_PRICE_NAMOUNTS] = {0};
    for (int i = 0; i < TG_PRICE_NAMOUNTS; i++) {
        usd[i] = tg_adminapi__member_text(c, tg_price_amount_name[i], &bad);
        if (bad) return bad;
    }
    const char *from = tg_adminapi__member_text(c, "from", &bad);
    if (bad) return bad;
    tg_price_row_t row;
    memset(&row, 0, sizeof row);
    snprintf(row.meter, sizeof row.meter, "%s", meter);
    int i = 0;
    switch (tg_price_set_amounts(&row, meter, usd, &i)) {
    case TG_PRICE_SET_OK: break;
    case TG_PRICE_SET_METER: /* check_body refused it already; kept for the switch */
        return ERR(c, 400, "invalid_request", "\"%s\" prices a %s, not a %s",
                   tg_price_amount_name[i], tg_price_amount_meter[i], meter);
    case TG_PRICE_SET_AMOUNT:
        return ERR(c, 422, "invalid_value",
                   "invalid %s \"%.40s\" (expected an amount in USD such as 2.50: digits, "
                   "at most 6 decimals, no sign or currency symbol)",
                   tg_price_amount_name[i], usd[i]);
    case TG_PRICE_SET_MISSING:
        return ERR(c, 400, "invalid_request", "price set %s needs %s (USD%s)", what_of(meter),
                   tg_price_set_needs(meter),
                   meter[0] == 'm'   ? " per 1M tokens"
                   : meter[0] == 't' ? " per call"
                                     : " per request, per GB");
    }
    if (tg_price_parse_from(from ? from : "now", c->now_us, &row.effective_us) != 0)
        return ERR(c, 422, "invalid_value", "invalid from \"%.40s\" (expected YYYY-MM-DD or now)",
                   from);
    if ((bad = check_name(c, what_of(meter)))) return bad;
    snprintf(row.name, sizeof row.name, "%s", c->id);
    char when[25];
    tg_price_fmt_when(row.effective_us, when);
    tg_adminapi__object(c, "price:%s/%s/%s", meter, when, row.name);
    if (current(c, meter, row.effective_us, &c->before, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    if (tg_store_price_set(c->s, &row, &err) != 0) return tg_adminapi__store_error(c, &err);
    if (current(c, meter, row.effective_us, &c->after, &bad) != 0) return bad;
    if (!c->after) return ERR(c, 500, "store", "the price was not stored");
    c->status = 200;
    return json_incref(c->after);
}

/* As `price rm MODEL|--route NAME|--tool NAME [--from DATE]`: one row by its from (as
 * listed), else every row of the name. */
static json_t *price_rm(call_t *c, const char *meter)
{
    char from[32] = "";
    qparam_t ps[] = {{"from", from, sizeof from, 0}};
    json_t *bad = tg_adminapi__read_query(c, ps, 1);
    if (bad) return bad;
    if ((bad = tg_adminapi__check_body(c, (const char *const[]){NULL}, 0))) return bad;
    int64_t at = -1;
    if (ps[0].seen && tg_price_parse_from(from, -1, &at) != 0)
        return ERR(c, 422, "invalid_value",
                   "invalid from \"%.31s\" (expected YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SSZ as "
                   "price list shows)",
                   from);
    if ((bad = check_name(c, what_of(meter)))) return bad;
    char when[25];
    tg_price_fmt_when(at, when);
    tg_adminapi__object(c, "price:%s/%s/%s", meter, at >= 0 ? when : "*", c->id);
    c->before = rows_json(c, meter, c->id, at, &bad);
    if (!c->before) return bad;
    tg_err_t err = {{0}};
    int r = tg_store_price_rm(c->s, meter, c->id, at, &err);
    if (r == TG_STORE_NOTFOUND && at >= 0) /* the CLI's words: the time as listed */
        return ERR(c, 404, "not_found", "no price for %s \"%s\" from %s", meter, c->id, when);
    if (r == TG_STORE_NOTFOUND) return ERR(c, 404, "not_found", "%s", err.msg);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    c->status = 200;
    return json_pack("{s:s,s:o,s:o,s:b}", "meter", meter, "name", tg_adminapi__text(c->id),
                     "from_us", at >= 0 ? json_integer(at) : json_null(), "removed", 1);
}

json_t *tg_adminapi__price_set(call_t *c)
{
    return price_set(c, "model");
}

json_t *tg_adminapi__price_rm(call_t *c)
{
    return price_rm(c, "model");
}

json_t *tg_adminapi__route_price_set(call_t *c)
{
    return price_set(c, "route");
}

json_t *tg_adminapi__route_price_rm(call_t *c)
{
    return price_rm(c, "route");
}

json_t *tg_adminapi__tool_price_set(call_t *c)
{
    return price_set(c, "tool");
}

json_t *tg_adminapi__tool_price_rm(call_t *c)
{
    return price_rm(c, "tool");
}
