/* SQLite store, the dashboard's reads (the dash_ops of backend.h): totals, a bucketed
 * series and recent rejections over usage_events, through its (tenant, ts_us) index. Read
 * only: the dashboard's connection also sets PRAGMA query_only. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "store/maps.h"

/* The sums of one group of events, in the order of the SELECTs below. */
#define DASH_SUMS                                                                                  \
    "sum(requests), "                                                                              \
    "sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END), "                               \
    "sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END), "                                 \
    "sum(CASE WHEN outcome = 'rejected' THEN requests ELSE 0 END), "                               \
    "coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), sum(cost_micros), count(*) "

static const sq_sql_t sql_totals = {
    .slot = ST_DASH_TOTALS,
    .sql = "SELECT tenant, " DASH_SUMS "FROM usage_events "
           "WHERE (?1 IS NULL OR tenant = ?1) AND ts_us >= ?2 AND ts_us < ?3 "
           "GROUP BY tenant ORDER BY tenant"};
/* Nearest rank: the row at offset ceil(0.95 n) - 1 in latency order. */
static const sq_sql_t sql_p95 = {
    .slot = ST_DASH_P95,
    .sql = "SELECT latency_us FROM usage_events WHERE tenant = ?1 AND ts_us >= ?2 AND ts_us < ?3 "
           "ORDER BY latency_us LIMIT 1 OFFSET ?4"};
static const sq_sql_t sql_series = {
    .slot = ST_DASH_SERIES,
    .sql = "SELECT (ts_us - ?2) / ?4 AS b, sum(requests), "
           "sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END), "
           "sum(CASE WHEN outcome = 'rejected' THEN requests ELSE 0 END), "
           "coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), sum(cost_micros) "
           "FROM usage_events WHERE tenant = ?1 AND ts_us >= ?2 AND ts_us < ?3 "
           "GROUP BY b ORDER BY b"};

static const sq_sql_t sql_rejections = {
    .slot = ST_DASH_REJECTIONS,
    .select = &tg_map_dash_rejection,
    .sql = "FROM usage_events WHERE tenant = ?1 AND outcome = 'rejected' "
           "ORDER BY ts_us DESC, id DESC LIMIT ?2"};

static int sq_dash_read_only(tg_store_t *base, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int rc = sqlite3_exec(s->db, "PRAGMA query_only = ON", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, "dashboard read-only", err);
}

static int p95_of(sq_store_t *s, tg_dash_totals_t *t, int64_t from_us, int64_t to_us, tg_err_t *err)
{
    t->latency_p95_us = -1;
    if (t->events <= 0) return 0;
    sqlite3_stmt *st = sq_stmt(s, &sql_p95, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, t->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from_us);
    sqlite3_bind_int64(st, 3, to_us);
    sqlite3_bind_int64(st, 4, (95 * t->events + 99) / 100 - 1);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) t->latency_p95_us = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "dashboard p95", err);
}

static int sq_dash_totals(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                          int (*cb)(const tg_dash_totals_t *, void *), void *ud, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_totals, err);
    if (!st) return -1;
    if (tenant)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_int64(st, 2, from_us);
    sqlite3_bind_int64(st, 3, to_us);
    /* The groups are read whole first: the p95 of each is a second statement. */
    tg_dash_totals_t *rows = NULL;
    size_t n = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            tg_dash_totals_t *g = realloc(rows, nc * sizeof *rows);
            if (!g) {
                ret = tg_err_set(err, "dashboard totals: out of memory");
                break;
            }
            rows = g;
            cap = nc;
        }
        tg_dash_totals_t *t = &rows[n++];
        memset(t, 0, sizeof *t);
        const unsigned char *id = sqlite3_column_text(st, 0);
        snprintf(t->tenant, sizeof t->tenant, "%s", id ? (const char *)id : "");
        int64_t *f[] = {&t->requests,  &t->billable,   &t->failed,      &t->rejected,
                        &t->tokens_in, &t->tokens_out, &t->cost_micros, &t->events};
        for (int i = 0; i < 8; i++)
            *f[i] = sqlite3_column_int64(st, i + 1);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "dashboard totals", err);
    sqlite3_reset(st);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        ret = p95_of(s, &rows[i], from_us, to_us, err);
        if (ret == 0) ret = cb(&rows[i], ud);
    }
    free(rows);
    return ret;
}

static int sq_dash_series(tg_store_t *base, const char *tenant, int64_t from_us, int64_t to_us,
                          int64_t bucket_us, int (*cb)(const tg_dash_bucket_t *, void *), void *ud,
                          tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (bucket_us <= 0) return tg_err_set(err, "dashboard series: bucket must be positive");
    sqlite3_stmt *st = sq_stmt(s, &sql_series, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from_us);
    sqlite3_bind_int64(st, 3, to_us);
    sqlite3_bind_int64(st, 4, bucket_us);
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        tg_dash_bucket_t b;
        int64_t *f[] = {&b.index,     &b.requests,   &b.failed,     &b.rejected,
                        &b.tokens_in, &b.tokens_out, &b.cost_micros};
        for (int i = 0; i < 7; i++)
            *f[i] = sqlite3_column_int64(st, i);
        ret = cb(&b, ud);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "dashboard series", err);
    sqlite3_reset(st);
    return ret;
}

static int sq_dash_rejections(tg_store_t *base, const char *tenant, int limit,
                              int (*cb)(const tg_dash_rejection_t *, void *), void *ud,
                              tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_rejections, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit);
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        tg_dash_rejection_t r;
        sq_read_row(st, &tg_map_dash_rejection, &r);
        ret = cb(&r, ud);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "dashboard rejections", err);
    sqlite3_reset(st);
    return ret;
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_dash_maps[] = {&tg_map_dash_rejection, NULL};

const struct tg_store_dash_ops sq_dash_ops = {
    .read_only = sq_dash_read_only,
    .totals = sq_dash_totals,
    .series = sq_dash_series,
    .rejections = sq_dash_rejections,
};
