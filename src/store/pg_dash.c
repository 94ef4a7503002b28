/* PostgreSQL store, the dashboard's reads (the dash_ops of backend.h): totals, a bucketed
 * series and recent rejections over usage_events, through its (tenant, ts_us) index, as
 * sqlite_dash.c reads them. Read only: the dashboard's connection sets
 * default_transaction_read_only, so every transaction it starts is READ ONLY.
 *
 * The p95 is the nearest rank, the row at offset ceil(0.95 n) - 1 in latency order, in
 * integer arithmetic as SQLite computes it: percentile_disc(0.95) finds the same row in
 * exact arithmetic, but PostgreSQL computes its rank in floating point, where 0.95 * n may
 * land a hair either side of a whole number. */
#include "store/pg_int.h"

#include <stdio.h>
#include <string.h>

#include "store/maps.h"

#define DASH_RANGE "ts_us >= $2 AND ts_us < $3"

/* One statement: the sums of each tenant, then its p95 by a subquery on the same range. */
static const pg_sql_t sql_totals = {
    .slot = PS_DASH_TOTALS,
    .sql = "SELECT g.tenant, g.requests, g.billable, g.failed, g.rejected, g.tokens_in, "
           "g.tokens_out, g.cost, g.n, (SELECT e.latency_us FROM usage_events e "
           "WHERE e.tenant = g.tenant AND e.ts_us >= $2 AND e.ts_us < $3 "
           "ORDER BY e.latency_us LIMIT 1 OFFSET (95 * g.n + 99) / 100 - 1) "
           "FROM (SELECT tenant, sum(requests) AS requests, "
           "sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END) AS billable, "
           "sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END) AS failed, "
           "sum(CASE WHEN outcome = 'rejected' THEN requests ELSE 0 END) AS rejected, "
           "coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out, "
           "sum(cost_micros) AS cost, count(*) AS n FROM usage_events "
           "WHERE ($1::text IS NULL OR tenant = $1) AND " DASH_RANGE " GROUP BY tenant) g "
           "ORDER BY g.tenant"};
static const pg_sql_t sql_series = {
    .slot = PS_DASH_SERIES,
    .sql = "SELECT (ts_us - $2) / $4 AS b, sum(requests), "
           "sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END), "
           "sum(CASE WHEN outcome = 'rejected' THEN requests ELSE 0 END), "
           "coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), sum(cost_micros) "
           "FROM usage_events WHERE tenant = $1 AND " DASH_RANGE " GROUP BY b ORDER BY b"};
static const pg_sql_t sql_rejections = {
    .slot = PS_DASH_REJECTIONS,
    .select = &tg_map_dash_rejection,
    .sql = "FROM usage_events WHERE tenant = $1 AND outcome = 'rejected' "
           "ORDER BY ts_us DESC, id DESC LIMIT $2"};

static int pg_dash_read_only(tg_store_t *base, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int ret = pg_run(s, "SET default_transaction_read_only = on", "dashboard read-only", err);
    /* A reconnection (ensure_conn) sets it again from this flag. */
    if (ret == 0) s->readonly = 1;
    return ret;
}

static int emit_totals(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    (void)s;
    tg_dash_totals_t t;
    memset(&t, 0, sizeof t);
    const char *id = pg_val(r, i, 0);
    snprintf(t.tenant, sizeof t.tenant, "%s", id ? id : "");
    int64_t *f[] = {&t.requests,  &t.billable,   &t.failed,      &t.rejected,
                    &t.tokens_in, &t.tokens_out, &t.cost_micros, &t.events};
    for (int j = 0; j < 8; j++)
        *f[j] = pg_get_int64(r, i, j + 1);
    t.latency_p95_us = pg_val(r, i, 9) ? pg_get_int64(r, i, 9) : -1;
    return SINK_CALL(tg_dash_totals_t, k, &t);
}

static int pg_dash_totals(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                          int (*cb)(const tg_dash_totals_t *, void *), void *ud, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_int64(&p, from_us);
    pg_p_int64(&p, to_us);
    return pg_each_row((pg_store_t *)base, &sql_totals, &p, emit_totals,
                       SINK(tg_dash_totals_t, cb, ud), "dashboard totals", err);
}

static int emit_bucket(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    (void)s;
    tg_dash_bucket_t b;
    int64_t *f[] = {&b.index,     &b.requests,   &b.failed,     &b.rejected,
                    &b.tokens_in, &b.tokens_out, &b.cost_micros};
    for (int j = 0; j < 7; j++)
        *f[j] = pg_get_int64(r, i, j);
    return SINK_CALL(tg_dash_bucket_t, k, &b);
}

static int pg_dash_series(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                          int64_t bucket_us, int (*cb)(const tg_dash_bucket_t *, void *), void *ud,
                          tg_err_t *err)
{
    if (bucket_us <= 0) return tg_err_set(err, "dashboard series: bucket must be positive");
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_int64(&p, from_us);
    pg_p_int64(&p, to_us);
    pg_p_int64(&p, bucket_us);
    return pg_each_row((pg_store_t *)base, &sql_series, &p, emit_bucket,
                       SINK(tg_dash_bucket_t, cb, ud), "dashboard series", err);
}

static int emit_rejection(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_dash_rejection_t row;
    pg_read_row(s, r, i, &tg_map_dash_rejection, &row);
    return SINK_CALL(tg_dash_rejection_t, k, &row);
}

static int pg_dash_rejections(tg_store_t *base, const char *tenant, int limit,
                              int (*cb)(const tg_dash_rejection_t *, void *), void *ud,
                              tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    /* SQLite reads a negative LIMIT as none; PostgreSQL refuses it: NULL is none there. */
    if (limit < 0)
        pg_p_null(&p);
    else
        pg_p_int64(&p, limit);
    return pg_each_row((pg_store_t *)base, &sql_rejections, &p, emit_rejection,
                       SINK(tg_dash_rejection_t, cb, ud), "dashboard rejections", err);
}

const struct tg_store_dash_ops pg_dash_ops = {
    .read_only = pg_dash_read_only,
    .totals = pg_dash_totals,
    .series = pg_dash_series,
    .rejections = pg_dash_rejections,
};
