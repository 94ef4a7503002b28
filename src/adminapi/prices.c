/* The admin API's model prices: GET /admin/v1/prices (as `tollgate price list --format
 * json`: every meter's rows, each with its status now), PUT /admin/v1/prices/{model} (as
 * `price set MODEL`) and DELETE /admin/v1/prices/{model} (as `price rm MODEL`), through
 * the same store functions and types/pricerow.h's checks, so both accept and show the
 * same rows. Prices are not tenant data: no tenant-scoped token reaches them.
 *
 * PUT's body: {"input": "2.50", "output": "10", "cached": ..., "cache_write": ..., "from":
 * "2026-01-01" | "2026-01-01T00:00:00Z" | "now" (the default)}: amounts are the CLI's USD
 * text per 1M tokens, read by tg_money_parse (exact, never a float). A row is keyed by
 * (model, from): setting one again replaces it, as the CLI does. DELETE takes ?from= (one
 * row, as listed) or removes every row of the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adminapi/call.h"
#include "types/pricerow.h"
#include "util/money.h"

#define ERR tg_adminapi__error

/* A row as `price list --format json` shows it: only its own meter's amounts. */
static json_t *price_json(const tg_price_row_t *p, const char *status)
{
    char from[25], created[25];
    tg_price_fmt_when(p->effective_us, from);
    tg_price_fmt_when(p->created_us, created);
    json_t *o = json_pack("{s:o,s:o,s:s,s:s}", "meter", tg_adminapi__text(p->meter), "name",
                          tg_adminapi__text(p->name), "from", from, "status", status);
    for (int i = 0; i < TG_PRICE_NAMOUNTS; i++) {
        if (strcmp(tg_price_amount_meter[i], p->meter) != 0) continue;
        int64_t v = tg_price_amount_get(p, i);
        char usd[32];
        if (v >= 0) tg_money_format(v, usd, sizeof usd);
        json_object_set_new(o, tg_price_amount_name[i], v >= 0 ? json_string(usd) : json_null());
    }
    json_object_set_new(o, "created", json_string(created));
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

/* Every row as JSON with its status at c->now_us; those of model name only when name is
 * set, and of one effective time only when from >= 0. NULL with *bad on an error. */
static json_t *rows_json(call_t *c, const char *name, int64_t from, json_t **bad)
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
        if (name && (strcmp(p->meter, "model") != 0 || strcmp(p->name, name) != 0)) continue;
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
    json_t *a = rows_json(c, NULL, -1, &bad);
    if (!a) return bad;
    c->status = 200;
    return json_pack("{s:o}", "prices", a);
}

/* c->id as a model name, as `price set|rm MODEL` checks it (adminapi.c has already refused
 * bytes that are not UTF-8 text, before the store). */
static json_t *check_model(call_t *c)
{
    switch (tg_price_name_check(c->id)) {
    case TG_PRICE_NAME_OK: return NULL;
    case TG_PRICE_NAME_EMPTY: return ERR(c, 422, "invalid_value", "MODEL must not be empty");
    case TG_PRICE_NAME_LONG:
        return ERR(c, 422, "invalid_value", "MODEL is too long (at most %zu bytes)",
                   TG_PRICE_NAME_MAX);
    case TG_PRICE_NAME_TEXT: break;
    }
    return ERR(c, 422, "invalid_value", "MODEL must be UTF-8 text without control characters");
}

/* The one stored row of (model, from) as JSON into *out (NULL when none). */
static int current(call_t *c, int64_t from, json_t **out, json_t **bad)
{
    json_t *a = rows_json(c, c->id, from, bad);
    if (!a) return -1;
    *out = json_array_size(a) ? json_incref(json_array_get(a, 0)) : NULL;
    json_decref(a);
    return 0;
}

/* As `price set MODEL --input USD --output USD [--cached USD] [--cache-write USD]
 * [--from DATE|now]`. */
json_t *tg_adminapi__price_set(call_t *c)
{
    static const char *const allowed[] = {"input", "output", "cached", "cache_write", "from", NULL};
    json_t *bad = tg_adminapi__check_body(c, allowed, 1);
    if (bad) return bad;
    tg_price_row_t row;
    memset(&row, 0, sizeof row);
    snprintf(row.meter, sizeof row.meter, "model");
    for (int i = 0; i < TG_PRICE_NAMOUNTS; i++) {
        int64_t *f = tg_price_amount(&row, i);
        *f = -1;
        if (strcmp(tg_price_amount_meter[i], "model") != 0) continue;
        const char *usd = tg_adminapi__member_text(c, tg_price_amount_name[i], &bad);
        if (bad) return bad;
        if (usd && tg_money_parse(usd, f) != 0)
            return ERR(c, 422, "invalid_value",
                       "invalid %s \"%.40s\" (expected an amount in USD such as 2.50: digits, "
                       "at most 6 decimals, no sign or currency symbol)",
                       tg_price_amount_name[i], usd);
    }
    const char *from = tg_adminapi__member_text(c, "from", &bad);
    if (bad) return bad;
    if (row.input_micros < 0 || row.output_micros < 0)
        return ERR(c, 400, "invalid_request",
                   "price set MODEL needs \"input\" and \"output\" (USD per 1M tokens)");
    if (tg_price_parse_from(from ? from : "now", c->now_us, &row.effective_us) != 0)
        return ERR(c, 422, "invalid_value", "invalid from \"%.40s\" (expected YYYY-MM-DD or now)",
                   from);
    if ((bad = check_model(c))) return bad;
    snprintf(row.name, sizeof row.name, "%s", c->id);
    char when[25];
    tg_price_fmt_when(row.effective_us, when);
    tg_adminapi__object(c, "price:model/%s/%s", when, row.name);
    if (current(c, row.effective_us, &c->before, &bad) != 0) return bad;
    tg_err_t err = {{0}};
    if (tg_store_price_set(c->s, &row, &err) != 0) return tg_adminapi__store_error(c, &err);
    if (current(c, row.effective_us, &c->after, &bad) != 0) return bad;
    if (!c->after) return ERR(c, 500, "store", "the price was not stored");
    c->status = 200;
    return json_incref(c->after);
}

/* As `price rm MODEL [--from DATE]`: one row by its from (as listed), else every row. */
json_t *tg_adminapi__price_rm(call_t *c)
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
    if ((bad = check_model(c))) return bad;
    char when[25];
    tg_price_fmt_when(at, when);
    tg_adminapi__object(c, "price:model/%s/%s", at >= 0 ? when : "*", c->id);
    c->before = rows_json(c, c->id, at, &bad);
    if (!c->before) return bad;
    tg_err_t err = {{0}};
    int r = tg_store_price_rm(c->s, "model", c->id, at, &err);
    if (r == TG_STORE_NOTFOUND && at >= 0) /* the CLI's words: the time as listed */
        return ERR(c, 404, "not_found", "no price for model \"%s\" from %s", c->id, when);
    if (r == TG_STORE_NOTFOUND) return ERR(c, 404, "not_found", "%s", err.msg);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    c->status = 200;
    return json_pack("{s:s,s:o,s:o,s:b}", "meter", "model", "name", tg_adminapi__text(c->id),
                     "from", at >= 0 ? json_string(when) : json_null(), "removed", 1);
}
