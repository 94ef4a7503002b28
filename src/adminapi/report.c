/* The admin API's reports: GET /admin/v1/reports/{name}?from&to&tenant, the rows of
 * `tollgate report NAME --format json` (src/report/report.h: the same view, filter and
 * order), as {"report", "columns", "rows": [{column: value}]}.
 *
 * A tenant-scoped token gets its tenant's rows only: no tenant is its own, another is 404,
 * as for /usage. The rows are held in memory to make one JSON answer, so a report stops at
 * MAX_ROWS with a 422 saying to narrow it (from, to, tenant) rather than grow without bound;
 * the CLI, which streams, has no such cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adminapi/call.h"
#include "report/report.h"
#include "types/text.h"
#include "util/clock.h"

#define ERR      tg_adminapi__error
#define MAX_ROWS 50000
#define TOO_MANY 1 /* the sink's stop */

typedef struct collect {
    json_t *cols, *rows;
    size_t n;
} collect_t;

static int on_columns(const char *const *names, size_t n, void *ud)
{
    collect_t *c = ud;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(c->cols, tg_adminapi__text(names[i]));
    return 0;
}

static json_t *value_json(const tg_sql_value_t *v)
{
    switch (v->type) {
    case TG_SQL_INT: return json_integer(v->i);
    case TG_SQL_REAL: return json_real(v->r);
    case TG_SQL_TEXT:
    case TG_SQL_BLOB: {
        /* A view's text is NUL-free; a blob (none today) is shown as its bytes' text. */
        char *s = strndup(v->s, v->len);
        json_t *j = s ? tg_adminapi__text(s) : NULL;
        free(s);
        return j ? j : json_null();
    }
    case TG_SQL_NULL: break;
    }
    return json_null();
}

static int on_row(const tg_sql_value_t *vals, size_t n, void *ud)
{
    collect_t *c = ud;
    if (c->n++ >= MAX_ROWS) return TOO_MANY;
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, json_string_value(json_array_get(c->cols, i)), value_json(&vals[i]));
    return json_array_append_new(c->rows, o);
}

/* A from or to day into buf as "YYYY-MM-DD"; the error answer when it is not one. */
static json_t *read_day(call_t *c, const char *name, const char *s, char buf[11])
{
    int64_t us;
    if (tg_parse_day(s, &us) != 0)
        return ERR(c, 400, "invalid_request", "invalid %s \"%.20s\" (expected YYYY-MM-DD)", name,
                   s);
    tg_utc_day(us, buf);
    return NULL;
}

json_t *tg_adminapi__report(call_t *c)
{
    char names[200];
    const tg_report_t *r = tg_report_find(c->id);
    tg_adminapi__object(c, "report:%s", c->id);
    if (!r)
        return ERR(c, 404, "not_found", "unknown report \"%.40s\" (reports: %s)", c->id,
                   tg_report_names(names, sizeof names));
    char tenant[80] = "", from[16] = "", to[16] = "";
    qparam_t ps[] = {{"tenant", tenant, sizeof tenant, 0},
                     {"from", from, sizeof from, 0},
                     {"to", to, sizeof to, 0}};
    json_t *bad = tg_adminapi__read_query(c, ps, 3);
    if (bad) return bad;
    const char *scope = c->req->who.tenant;
    if (scope[0] && !ps[0].seen) snprintf(tenant, sizeof tenant, "%s", scope);
    if ((scope[0] && strcmp(tenant, scope) != 0) || !tg_text_valid_utf8(tenant))
        return ERR(c, 404, "not_found", "no tenant \"%.80s\"", tenant);
    char from_day[11], to_day[11];
    tg_report_query_t q = {.tenant = ps[0].seen || scope[0] ? tenant : NULL};
    if (ps[1].seen && (bad = read_day(c, "from", from, from_day))) return bad;
    if (ps[2].seen && (bad = read_day(c, "to", to, to_day))) return bad;
    if (ps[1].seen) q.from_day = from_day;
    if (ps[2].seen) q.to_day = to_day;
    if (q.from_day && q.to_day && strcmp(from_day, to_day) > 0)
        return ERR(c, 400, "invalid_request", "from %s is after to %s", from_day, to_day);
    if (q.tenant) {
        snprintf(c->tenant, sizeof c->tenant, "%.63s", q.tenant);
        if (tg_adminapi__need_tenant(c, q.tenant, &bad) != 0) return bad;
    }
    collect_t k = {json_array(), json_array(), 0};
    const tg_sql_sink_t sink = {on_columns, on_row, &k};
    tg_err_t err = {{0}};
    int rc = tg_report_run(c->s, r, &q, &sink, &err);
    if (rc != 0) {
        json_decref(k.cols);
        json_decref(k.rows);
        if (rc == TOO_MANY)
            return ERR(c, 422, "invalid_value",
                       "report %s has more than %d rows: narrow it with from, to or tenant",
                       r->name, MAX_ROWS);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:s,s:o,s:o}", "report", r->name, "columns", k.cols, "rows", k.rows);
}
