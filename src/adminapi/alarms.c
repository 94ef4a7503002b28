/* The admin API's alarms: GET /admin/v1/alarms (as `tollgate alarms list --format json`:
 * every alarm's stored state, firing first) and GET /admin/v1/alarms/history?tenant=&limit=
 * (as `alarms history`: transitions, newest first, 50 unless limit says otherwise, 0 =
 * all), read from the tables the serving gateway's alarm runner writes, with the CLI's
 * members. Read tokens may read them.
 *
 * A tenant-scoped token sees its own tenant's alarms only: not another tenant's (404 when
 * it names one, as an unknown tenant), and not the process-wide ones (tenant ""): their
 * values (the gateway's error rate, its queue) are every tenant's traffic together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adminapi/call.h"
#include "types/text.h"
#include "util/clock.h"
#include "util/sizes.h"

#define ERR           tg_adminapi__error
#define LIMIT_DEFAULT 50      /* as the CLI's */
#define LIMIT_MAX     1000000 /* as the CLI's */

/* As the CLI's times: whole seconds, "-" for none. */
static json_t *when(int64_t us)
{
    char buf[25];
    if (us <= 0) return json_string("-");
    tg_utc_iso(us, buf);
    buf[19] = 'Z';
    buf[20] = '\0';
    return json_string(buf);
}

typedef struct list_ctx {
    json_t *rows;
    const char *scope; /* the token's tenant, "" for none */
} list_ctx_t;

static int on_alarm(const tg_alarm_row_t *r, void *ud)
{
    list_ctx_t *l = ud;
    if (l->scope[0] && strcmp(r->tenant, l->scope) != 0) return 0;
    json_t *o =
        json_pack("{s:o,s:o,s:o,s:o,s:f,s:f,s:f,s:o,s:I,s:o}", "alarm", tg_adminapi__text(r->name),
                  "tenant", tg_adminapi__text(r->tenant), "kind", tg_adminapi__text(r->kind),
                  "state", tg_adminapi__text(r->state), "value", r->value, "threshold",
                  r->threshold, "baseline", r->baseline, "since", when(r->since_us), "seq",
                  (json_int_t)r->seq, "action", tg_adminapi__text(r->action));
    return o ? json_array_append_new(l->rows, o) : -1;
}

json_t *tg_adminapi__alarms_list(call_t *c)
{
    json_t *bad = tg_adminapi__read_query(c, NULL, 0);
    if (bad) return bad;
    list_ctx_t l = {json_array(), c->req->who.tenant};
    tg_err_t err = {{0}};
    if (tg_store_alarm_list(c->s, on_alarm, &l, &err) != 0) {
        json_decref(l.rows);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", "alarms", l.rows);
}

static int on_event(const tg_alarm_event_row_t *r, void *ud)
{
    json_t *o = json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:f,s:f,s:f,s:o,s:I,s:o,s:o,s:o}", "time", when(r->time_us), "alarm",
        tg_adminapi__text(r->name), "tenant", tg_adminapi__text(r->tenant), "from",
        tg_adminapi__text(r->from_state), "to", tg_adminapi__text(r->to_state), "value", r->value,
        "threshold", r->threshold, "baseline", r->baseline, "kind", tg_adminapi__text(r->kind),
        "window_s", (json_int_t)r->window_s, "id", tg_adminapi__text(r->notice_id), "action",
        tg_adminapi__text(r->action), "summary", tg_adminapi__text(r->summary));
    return o ? json_array_append_new(ud, o) : -1;
}

/* limit as the CLI's --limit: a count of digits only, at most LIMIT_MAX. */
static int parse_limit(const char *s, int64_t *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 7) return -1;
    long long v = strtoll(s, NULL, 10);
    if (v > LIMIT_MAX) return -1;
    *out = v;
    return 0;
}

json_t *tg_adminapi__alarms_history(call_t *c)
{
    char tenant[80] = "", limit[16] = "";
    qparam_t ps[] = {{"tenant", tenant, sizeof tenant, 0}, {"limit", limit, sizeof limit, 0}};
    json_t *bad = tg_adminapi__read_query(c, ps, 2);
    if (bad) return bad;
    const char *scope = c->req->who.tenant;
    if (scope[0] && !ps[0].seen) snprintf(tenant, sizeof tenant, "%s", scope);
    /* Another tenant, or the process-wide alarms (tenant=""), are not the scoped token's. */
    if ((scope[0] && strcmp(tenant, scope) != 0) || !tg_text_valid_utf8(tenant))
        return ERR(c, 404, "not_found", "no tenant \"%.80s\"", tenant);
    if (tenant[0] && !tg_tenant_id_valid(tenant))
        return ERR(c, 422, "invalid_value", "invalid tenant id \"%.80s\": " TG_TENANT_ID_RULE,
                   tenant);
    int64_t n = LIMIT_DEFAULT;
    if (ps[1].seen && parse_limit(limit, &n) != 0)
        return ERR(c, 400, "invalid_request", "invalid limit \"%.15s\" (a count, 0 = all)", limit);
    if (tenant[0]) /* checked: TG_TENANT_SIZE - 1 bytes at most */
        snprintf(c->tenant, sizeof c->tenant, "%.*s", (int)sizeof c->tenant - 1, tenant);
    json_t *rows = json_array();
    tg_err_t err = {{0}};
    if (tg_store_alarm_events(c->s, ps[0].seen || scope[0] ? tenant : NULL, n, on_event, rows,
                              &err) != 0) {
        json_decref(rows);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", "history", rows);
}
