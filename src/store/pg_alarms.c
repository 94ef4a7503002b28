/* PostgreSQL store, alarms (the alarm_ops of backend.h): the alarms and alarm_events tables,
 * as sqlite_alarms.c. A record, not policy: no version bump. */
#include "store/pg_int.h"

#include "store/maps.h"
#include "store/rowcheck.h"

/* SQLite's INSERT OR REPLACE: the row of (name, tenant_id) is replaced as a whole. */
static const pg_sql_t sql_alarm_put = {
    .slot = PS_ALARM_PUT,
    .sql = "INSERT INTO alarms (name, tenant_id, kind, state, value, threshold, baseline, "
           "since_us, started_us, updated_us, seq, action) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
           "ON CONFLICT (name, tenant_id) DO UPDATE SET kind = excluded.kind, "
           "state = excluded.state, value = excluded.value, threshold = excluded.threshold, "
           "baseline = excluded.baseline, since_us = excluded.since_us, "
           "started_us = excluded.started_us, updated_us = excluded.updated_us, "
           "seq = excluded.seq, action = excluded.action"};
static const pg_sql_t sql_event_add = {
    .slot = PS_ALARM_EVENT_ADD,
    .sql = "INSERT INTO alarm_events (notice_id, name, tenant_id, kind, from_state, to_state, "
           "value, threshold, baseline, window_s, time_us, seq, action, summary) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
           "ON CONFLICT (notice_id) DO NOTHING"};
static const pg_sql_t sql_alarm_events_purge = {
    .slot = PS_ALARM_EVENTS_PURGE, .sql = "DELETE FROM alarm_events WHERE time_us < $1"};
static const pg_sql_t sql_alarm_list = {
    .slot = PS_ALARM_LIST,
    .select = &tg_map_alarm,
    .sql = "FROM alarms ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 "
           "WHEN 'resolved' THEN 2 ELSE 3 END, name COLLATE \"C\", tenant_id COLLATE \"C\""};
/* LIMIT NULL is no limit (SQLite's LIMIT -1). */
static const pg_sql_t sql_alarm_events = {
    .slot = PS_ALARM_EVENTS,
    .select = &tg_map_alarm_event,
    .sql = "FROM alarm_events WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY id DESC "
           "LIMIT $2"};

static int put_row(pg_store_t *s, const tg_alarm_row_t *row, tg_err_t *err)
{
    pg_params_t p = {0};
    PG_P_ROW(&p, row, name);
    PG_P_ROW(&p, row, tenant);
    PG_P_ROW(&p, row, kind);
    PG_P_ROW(&p, row, state);
    pg_p_double(&p, row->value);
    pg_p_double(&p, row->threshold);
    pg_p_double(&p, row->baseline);
    pg_p_int64(&p, row->since_us);
    pg_p_int64(&p, row->started_us);
    pg_p_int64(&p, row->updated_us);
    pg_p_int64(&p, row->seq);
    PG_P_ROW(&p, row, action);
    return pg_exec(s, &sql_alarm_put, &p, NULL, "alarm put", err);
}

static int put_event(pg_store_t *s, const tg_alarm_event_row_t *ev, tg_err_t *err)
{
    pg_params_t p = {0};
    PG_P_ROW(&p, ev, notice_id);
    PG_P_ROW(&p, ev, name);
    PG_P_ROW(&p, ev, tenant);
    PG_P_ROW(&p, ev, kind);
    PG_P_ROW(&p, ev, from_state);
    PG_P_ROW(&p, ev, to_state);
    pg_p_double(&p, ev->value);
    pg_p_double(&p, ev->threshold);
    pg_p_double(&p, ev->baseline);
    pg_p_int64(&p, ev->window_s);
    pg_p_int64(&p, ev->time_us);
    pg_p_int64(&p, ev->seq);
    PG_P_ROW(&p, ev, action);
    PG_P_ROW(&p, ev, summary);
    return pg_exec(s, &sql_event_add, &p, NULL, "alarm put", err);
}

/* The transitions and the states in one transaction: a crash leaves both or neither, so a
 * restart never reuses a sequence number a stored transition has. */
static int pg_alarm_put(tg_store_t *base, const tg_alarm_row_t *rows, size_t nrows,
                        const tg_alarm_event_row_t *evs, size_t nevs, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    if (tg_rowcheck_alarm_put(rows, nrows, evs, nevs, err) != 0) return -1;
    if (!nrows && !nevs) return 0;
    int ret = pg_begin(s, "alarm put", err);
    for (size_t i = 0; ret == 0 && i < nevs; i++)
        ret = put_event(s, &evs[i], err);
    for (size_t i = 0; ret == 0 && i < nrows; i++)
        ret = put_row(s, &rows[i], err);
    if (ret != 0) {
        pg_rollback(s);
        return ret;
    }
    return pg_commit(s, "alarm put", err);
}

static int emit_alarm(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_alarm_row_t row;
    pg_read_row(s, r, i, &tg_map_alarm, &row);
    return SINK_CALL(tg_alarm_row_t, k, &row);
}

static int emit_event(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_alarm_event_row_t row;
    pg_read_row(s, r, i, &tg_map_alarm_event, &row);
    return SINK_CALL(tg_alarm_event_row_t, k, &row);
}

static int pg_alarm_list(tg_store_t *base, int (*cb)(const tg_alarm_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return pg_each_row((pg_store_t *)base, &sql_alarm_list, NULL, emit_alarm,
                       SINK(tg_alarm_row_t, cb, ud), "alarm list", err);
}

static int pg_alarm_events(tg_store_t *base, const char *tenant, int64_t limit,
                           int (*cb)(const tg_alarm_event_row_t *, void *), void *ud, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_amount(&p, limit > 0 ? limit : -1);
    return pg_each_row((pg_store_t *)base, &sql_alarm_events, &p, emit_event,
                       SINK(tg_alarm_event_row_t, cb, ud), "alarm history", err);
}

const struct tg_store_alarm_ops pg_alarm_ops = {
    .alarm_put = pg_alarm_put,
    .alarm_list = pg_alarm_list,
    .alarm_events = pg_alarm_events,
};

int pg_alarm_events_purge(pg_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_int64(&p, before_us);
    PGresult *r;
    /* One statement: atomic on its own, or part of the caller's open transaction. */
    int ret = pg_exec(s, &sql_alarm_events_purge, &p, &r, "purge", err);
    if (ret != 0) return ret;
    *deleted += pg_changes(r);
    PQclear(r);
    return 0;
}
