/* SQLite store, alarms (the alarm_ops of backend.h): the alarms and alarm_events tables of
 * migration 5. A record, not policy: no version bump. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"

static const sq_sql_t sql_alarm_put = {
    .slot = ST_ALARM_PUT,
    .sql = "INSERT OR REPLACE INTO alarms (name, tenant_id, kind, state, value, threshold, "
           "baseline, since_us, started_us, updated_us, seq, action) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"};
static const sq_sql_t sql_event_add = {
    .slot = ST_ALARM_EVENT_ADD,
    .sql = "INSERT INTO alarm_events (notice_id, name, tenant_id, kind, from_state, to_state, "
           "value, threshold, baseline, window_s, time_us, seq, action, summary) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
           "ON CONFLICT (notice_id) DO NOTHING"};
static const sq_sql_t sql_alarm_events_purge = {
    .slot = ST_ALARM_EVENTS_PURGE, .sql = "DELETE FROM alarm_events WHERE time_us < ?1"};
static const sq_sql_t sql_alarm_list = {
    .slot = ST_ALARM_LIST,
    .select = &tg_map_alarm,
    .sql = "FROM alarms ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 "
           "WHEN 'resolved' THEN 2 ELSE 3 END, name, tenant_id"};
static const sq_sql_t sql_alarm_events = {
    .slot = ST_ALARM_EVENTS,
    .select = &tg_map_alarm_event,
    .sql = "FROM alarm_events WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY id DESC LIMIT ?2"};

static int put_row(sqlite3_stmt *put, const tg_alarm_row_t *row)
{
    BIND_ROW(put, 1, row, name);
    BIND_ROW(put, 2, row, tenant);
    BIND_ROW(put, 3, row, kind);
    BIND_ROW(put, 4, row, state);
    sqlite3_bind_double(put, 5, row->value);
    sqlite3_bind_double(put, 6, row->threshold);
    sqlite3_bind_double(put, 7, row->baseline);
    sqlite3_bind_int64(put, 8, row->since_us);
    sqlite3_bind_int64(put, 9, row->started_us);
    sqlite3_bind_int64(put, 10, row->updated_us);
    sqlite3_bind_int64(put, 11, row->seq);
    BIND_ROW(put, 12, row, action);
    return sq_run(put);
}

static int put_event(sqlite3_stmt *add, const tg_alarm_event_row_t *ev)
{
    BIND_ROW(add, 1, ev, notice_id);
    BIND_ROW(add, 2, ev, name);
    BIND_ROW(add, 3, ev, tenant);
    BIND_ROW(add, 4, ev, kind);
    BIND_ROW(add, 5, ev, from_state);
    BIND_ROW(add, 6, ev, to_state);
    sqlite3_bind_double(add, 7, ev->value);
    sqlite3_bind_double(add, 8, ev->threshold);
    sqlite3_bind_double(add, 9, ev->baseline);
    sqlite3_bind_int64(add, 10, ev->window_s);
    sqlite3_bind_int64(add, 11, ev->time_us);
    sqlite3_bind_int64(add, 12, ev->seq);
    BIND_ROW(add, 13, ev, action);
    BIND_ROW(add, 14, ev, summary);
    return sq_run(add);
}

static int sq_alarm_put(tg_store_t *base, const tg_alarm_row_t *rows, size_t nrows,
                        const tg_alarm_event_row_t *evs, size_t nevs, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (tg_rowcheck_alarm_put(rows, nrows, evs, nevs, err) != 0) return -1;
    if (!nrows && !nevs) return 0;
    sqlite3_stmt *put = nrows ? sq_stmt(s, &sql_alarm_put, err) : NULL;
    sqlite3_stmt *add = nevs ? sq_stmt(s, &sql_event_add, err) : NULL;
    if ((nrows && !put) || (nevs && !add)) return -1;
    int ret = sq_begin(s, "alarm put", err);
    if (ret != 0) return ret;
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < nevs; i++)
        rc = put_event(add, &evs[i]);
    for (size_t i = 0; rc == SQLITE_OK && i < nrows; i++)
        rc = put_row(put, &rows[i]);
    if (rc != SQLITE_OK) {
        ret = sq_fail(s, rc, "alarm put", err);
        sq_rollback(s);
        return ret;
    }
    return sq_commit(s, "alarm put", err);
}

static int emit_alarm(sqlite3_stmt *st, const sink_t *k)
{
    tg_alarm_row_t r;
    sq_read_row(st, &tg_map_alarm, &r);
    return SINK_CALL(tg_alarm_row_t, k, &r);
}

static int emit_event(sqlite3_stmt *st, const sink_t *k)
{
    tg_alarm_event_row_t r;
    sq_read_row(st, &tg_map_alarm_event, &r);
    return SINK_CALL(tg_alarm_event_row_t, k, &r);
}

static int sq_alarm_list(tg_store_t *base, int (*cb)(const tg_alarm_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_alarm_list, NULL, emit_alarm,
                       SINK(tg_alarm_row_t, cb, ud), "alarm list", err);
}

static int sq_alarm_events(tg_store_t *base, const char *tenant, int64_t limit,
                           int (*cb)(const tg_alarm_event_row_t *, void *), void *ud, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_alarm_events, err);
    if (!st) return -1;
    /* ?2 first: sq_each_row binds ?1 (the tenant) and steps. */
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    return sq_each_row(s, &sql_alarm_events, tenant, emit_event, SINK(tg_alarm_event_row_t, cb, ud),
                       "alarm history", err);
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_alarm_maps[] = {&tg_map_alarm, &tg_map_alarm_event, NULL};

const struct tg_store_alarm_ops sq_alarm_ops = {
    .alarm_put = sq_alarm_put,
    .alarm_list = sq_alarm_list,
    .alarm_events = sq_alarm_events,
};

int sq_alarm_events_purge(sq_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_alarm_events_purge, err);
    if (!st) return -1;
    int ret = sq_begin(s, "purge", err);
    if (ret != 0) return ret;
    sqlite3_bind_int64(st, 1, before_us);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) {
        ret = sq_fail(s, rc, "purge", err);
        sq_rollback(s);
        return ret;
    }
    int64_t n = sqlite3_changes(s->db);
    if ((ret = sq_commit(s, "purge", err)) != 0) return ret;
    *deleted += n;
    return 0;
}
