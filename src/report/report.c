/* The report catalogue and how a report reads its view: see report.h. The views
 * themselves are SQL in src/store/migrations.c (migration 8), so `tollgate query` sees
 * exactly what `tollgate report` prints; this file only knows their names, their order and
 * the filter every one of them takes (each has a day and a tenant column). */
#include "report/report.h"

#include <stdio.h>
#include <string.h>

const tg_report_t tg_reports[] = {
    {"daily", "report_daily", "day, tenant", "per tenant and UTC day: requests, tokens"},
    {"hourly", "report_hourly", "hour, tenant", "per tenant and UTC hour: requests, tokens"},
    {"keys", "report_keys", "day, tenant, key_id",
     "per key and day: requests, MB sent and received, average response time"},
    {"endpoints", "report_endpoints", "day, tenant, key_id, path, method",
     "per key, path and method and day: requests, KB sent"},
    {"transfer", "report_transfer", "day, tenant, key_id", "per key and day: GB sent and received"},
    {"cache", "report_cache", "day, tenant, key_id", "per key and day: cache hit and miss shares"},
    {"models", "report_models", "day, tenant, model", "per model and day: requests, tokens, cost"},
    {"tools", "report_tools", "day, tenant, tool", "per MCP tool and day: calls, cost, latency"},
    {NULL, NULL, NULL, NULL},
};

const tg_report_t *tg_report_find(const char *name)
{
    for (const tg_report_t *r = tg_reports; name && r->name; r++)
        if (strcmp(r->name, name) == 0) return r;
    return NULL;
}

const char *tg_report_names(char *buf, size_t cap)
{
    size_t o = 0;
    if (cap) buf[0] = '\0';
    for (const tg_report_t *r = tg_reports; r->name && o < cap; r++) {
        int n = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", r->name);
        if (n < 0) break;
        o += (size_t)n;
    }
    return buf;
}

int tg_report_sql(const tg_report_t *r, char *buf, size_t cap)
{
    /* NULL binds "no bound": one statement for every combination of options. Read alike
     * by both backends: $N is PostgreSQL's parameter and, in SQLite, a named one numbered
     * by first use; the CAST gives PostgreSQL the parameter's type. The views' day and
     * tenant are text in both, compared byte by byte (days are ISO dates). */
    int n = snprintf(buf, cap,
                     "SELECT * FROM %s WHERE (CAST($1 AS TEXT) IS NULL OR day >= $1) AND "
                     "(CAST($2 AS TEXT) IS NULL OR day <= $2) AND (CAST($3 AS TEXT) IS NULL OR "
                     "tenant = $3) ORDER BY %s",
                     r->view, r->order_by);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int tg_report_run(tg_store_t *s, const tg_report_t *r, const tg_report_query_t *q,
                  const tg_sql_sink_t *sink, tg_err_t *err)
{
    char sql[512];
    if (tg_report_sql(r, sql, sizeof sql) != 0)
        return tg_err_set(err, "report %s: too long", r->name);
    const char *params[3] = {q->from_day, q->to_day, q->tenant};
    return tg_store_query(s, sql, params, 3, sink, err);
}
