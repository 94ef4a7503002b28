/* The admin API's budget changes: PUT and DELETE /admin/v1/tenants/{id}/budget, as
 * `tollgate budget set|rm` through the same store functions (the GET, with this month's
 * spend, is adminapi.c's budget_show).
 *
 * The body: {"monthly_usd": "250" | "12.50"} (the CLI's --monthly text, read by
 * tg_money_parse: exact, never a float), "mode": "hard" (402 once spent, the default, as the
 * CLI without --soft) or "soft", "thresholds": [80, 90, 100] (tg_threshold_check). The CLI
 * takes missing thresholds from the config's defaults.budget_thresholds; the API has no
 * config, so it keeps the tenant's current ones, and for a new budget uses that setting's
 * own default, 80, 90, 100. A budget is replaced whole otherwise. */
#include <stdio.h>
#include <string.h>

#include "adminapi/call.h"
#include "types/thresholds.h"
#include "util/money.h"

#define ERR tg_adminapi__error

static const int default_thresholds[] = {80, 90, 100}; /* config's defaults.budget_thresholds */

/* The row as the API shows a budget's terms: GET's members without the month's spend. */
static json_t *terms_json(const tg_budget_row_t *b)
{
    json_t *th = json_array();
    for (int i = 0; i < b->nthresholds; i++)
        json_array_append_new(th, json_integer(b->thresholds[i]));
    return json_pack("{s:o,s:I,s:s,s:o}", "tenant", tg_adminapi__text(b->tenant), "monthly_micros",
                     (json_int_t)b->monthly_micros, "mode", b->hard ? "hard" : "soft", "thresholds",
                     th);
}

static int on_row(const tg_budget_row_t *r, void *ud)
{
    *(tg_budget_row_t *)ud = *r;
    return 1;
}

/* The tenant's budget into *row; 1 found, 0 none, -1 with the error answer in *bad. */
static int current(call_t *c, tg_budget_row_t *row, json_t **bad)
{
    tg_err_t err = {{0}};
    memset(row, 0, sizeof *row);
    int r = tg_store_budget_list(c->s, c->id, on_row, row, &err);
    if (r < 0) *bad = tg_adminapi__store_error(c, &err);
    return r < 0 ? -1 : r > 0;
}

static json_t *read_thresholds(call_t *c, const json_t *a, tg_budget_row_t *row)
{
    if (!json_is_array(a))
        return ERR(c, 400, "invalid_request", "\"thresholds\" must be an array of integers");
    row->nthresholds = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v))
            return ERR(c, 400, "invalid_request", "\"thresholds\" must be an array of integers");
        int64_t x = json_integer_value(v);
        switch (tg_threshold_check(row->thresholds, i, x)) {
        case TG_THRESHOLD_OK: break;
        case TG_THRESHOLD_RANGE:
            return ERR(c, 422, "invalid_value",
                       "invalid thresholds (expected ascending percents from 1 to %d)",
                       TG_THRESHOLD_MAX_PCT);
        case TG_THRESHOLD_TOO_MANY:
            return ERR(c, 422, "invalid_value", "invalid thresholds: at most %d",
                       TG_THRESHOLDS_MAX);
        case TG_THRESHOLD_ORDER:
            return ERR(c, 422, "invalid_value",
                       "invalid thresholds: percents must ascend (%lld after %d)", (long long)x,
                       row->thresholds[i - 1]);
        }
        row->thresholds[row->nthresholds++] = (int)x;
    }
    if (row->nthresholds == 0)
        return ERR(c, 422, "invalid_value",
                   "invalid thresholds (expected ascending percents from 1 to %d)",
                   TG_THRESHOLD_MAX_PCT);
    return NULL;
}

/* As `budget set --tenant ID --monthly USD [--soft] [--thresholds ...]`. */
json_t *tg_adminapi__budget_set(call_t *c)
{
    static const char *const allowed[] = {"monthly_usd", "mode", "thresholds", NULL};
    json_t *bad = tg_adminapi__check_body(c, allowed, 1);
    if (bad) return bad;
    const char *monthly = tg_adminapi__member_text(c, "monthly_usd", &bad);
    if (bad) return bad;
    const char *mode = tg_adminapi__member_text(c, "mode", &bad);
    if (bad) return bad;
    if (!monthly) return ERR(c, 400, "invalid_request", "\"monthly_usd\" is required");
    tg_budget_row_t row;
    memset(&row, 0, sizeof row);
    if (tg_money_parse(monthly, &row.monthly_micros) != 0)
        return ERR(c, 422, "invalid_value",
                   "invalid monthly_usd \"%.40s\" (expected an amount in USD such as 2.50: "
                   "digits, at most 6 decimals, no sign or currency symbol)",
                   monthly);
    if (row.monthly_micros == 0)
        return ERR(c, 422, "invalid_value",
                   "monthly_usd must be more than 0 (to stop a tenant, pause it)");
    if (mode && strcmp(mode, "hard") != 0 && strcmp(mode, "soft") != 0)
        return ERR(c, 422, "invalid_value", "invalid mode \"%.20s\" (expected hard or soft)", mode);
    row.hard = !mode || strcmp(mode, "hard") == 0;
    json_t *th = json_object_get(c->body, "thresholds");
    if (th && (bad = read_thresholds(c, th, &row))) return bad;
    tg_adminapi__object(c, "budget:%s", c->id);
    if (tg_adminapi__need_tenant(c, c->id, &bad) != 0) return bad;
    tg_budget_row_t old;
    int had = current(c, &old, &bad);
    if (had < 0) return bad;
    if (had) c->before = terms_json(&old);
    if (!th && had) {
        row.nthresholds = old.nthresholds;
        memcpy(row.thresholds, old.thresholds, sizeof row.thresholds);
    } else if (!th) {
        row.nthresholds = (int)(sizeof default_thresholds / sizeof default_thresholds[0]);
        memcpy(row.thresholds, default_thresholds, sizeof default_thresholds);
    }
    snprintf(row.tenant, sizeof row.tenant, "%s", c->id);
    tg_err_t err = {{0}};
    if (tg_store_budget_set(c->s, &row, &err) != 0) return tg_adminapi__store_error(c, &err);
    tg_budget_row_t now;
    int got = current(c, &now, &bad);
    if (got < 0) return bad;
    if (!got) return ERR(c, 500, "store", "the budget was not stored");
    c->after = terms_json(&now);
    c->status = 200;
    return json_incref(c->after);
}

/* As `budget rm --tenant ID`: 404 when there was none. */
json_t *tg_adminapi__budget_rm(call_t *c)
{
    json_t *bad = tg_adminapi__check_body(c, (const char *const[]){NULL}, 0);
    if (bad) return bad;
    tg_adminapi__object(c, "budget:%s", c->id);
    if (tg_adminapi__need_tenant(c, c->id, &bad) != 0) return bad;
    tg_budget_row_t old;
    int had = current(c, &old, &bad);
    if (had < 0) return bad;
    if (had) c->before = terms_json(&old);
    tg_err_t err = {{0}};
    int r = tg_store_budget_rm(c->s, c->id, &err);
    if (r == TG_STORE_NOTFOUND) return ERR(c, 404, "not_found", "%s", err.msg);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    c->status = 200;
    return json_pack("{s:o,s:b}", "tenant", tg_adminapi__text(c->id), "removed", 1);
}
