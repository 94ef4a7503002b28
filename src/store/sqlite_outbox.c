/* SQLite store, the notification outbox (the outbox_ops of backend.h; the tables are
 * migration 6). A notice row and its delivery rows are written in one transaction; a
 * sender claims due deliveries (next_us moved to the end of its lease, in a transaction,
 * so two senders on one store never take the same row) and then sets each one's outcome.
 * Outbox rows are a record of what was sent, not policy: they bump no version. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"

static const sq_sql_t sql_add = {
    .slot = ST_OUTBOX_ADD,
    .sql =
        "INSERT INTO outbox (id, kind, alarm, alarm_kind, tenant_id, state, severity, value, "
        "threshold, baseline, window_s, time_us, started_us, summary, created_us, sealed) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
        "ON CONFLICT (id) DO NOTHING"};
static const sq_sql_t sql_delivery_add = {
    .slot = ST_OUTBOX_DELIVERY_ADD,
    .sql = "INSERT INTO outbox_deliveries (notice_id, notifier, status, attempts, next_us, "
           "updated_us) VALUES (?1, ?2, 'pending', 0, ?3, ?3) "
           "ON CONFLICT (notice_id, notifier) DO NOTHING"};
static const sq_sql_t sql_due = {.slot = ST_OUTBOX_DUE,
                                 .select = &tg_map_delivery,
                                 .sql = "FROM outbox_deliveries d JOIN outbox o ON o.id = "
                                        "d.notice_id WHERE d.status = 'pending' AND d.next_us "
                                        "<= ?1 AND (?3 IS NULL OR d.notifier = ?3) ORDER BY "
                                        "d.next_us, o.created_us LIMIT ?2"};
static const sq_sql_t sql_claim = {
    .slot = ST_OUTBOX_CLAIM,
    .sql = "UPDATE outbox_deliveries SET next_us = ?3 WHERE notice_id = ?1 AND notifier = ?2 "
           "AND status = 'pending'"};
static const sq_sql_t sql_set = {
    .slot = ST_OUTBOX_SET,
    .sql = "UPDATE outbox_deliveries SET status = ?3, attempts = ?4, next_us = ?5, error = ?6, "
           "updated_us = ?7 WHERE notice_id = ?1 AND notifier = ?2"};
static const sq_sql_t sql_defer = {
    .slot = ST_OUTBOX_DEFER,
    .sql = "UPDATE outbox_deliveries SET next_us = ?2, updated_us = ?3 WHERE notifier = ?1 "
           "AND status = 'pending' AND next_us < ?2"};
static const sq_sql_t sql_next = {
    .slot = ST_OUTBOX_NEXT,
    .sql = "SELECT min(next_us) FROM outbox_deliveries WHERE status = 'pending' AND (?1 IS "
           "NULL OR notifier = ?1)"};
static const sq_sql_t sql_notifiers = {
    .slot = ST_OUTBOX_NOTIFIERS,
    .sql = "SELECT DISTINCT notifier FROM outbox_deliveries WHERE status = 'pending' ORDER BY "
           "notifier"};
static const sq_sql_t sql_list = {
    .slot = ST_OUTBOX_LIST,
    .select = &tg_map_delivery,
    .sql = "FROM outbox_deliveries d JOIN outbox o ON o.id = d.notice_id WHERE ?1 IS NULL OR "
           "d.status = ?1 ORDER BY o.created_us, o.id, d.notifier"};
static const sq_sql_t sql_sealed_each = {
    .slot = ST_OUTBOX_SEALED_EACH,
    .sql = "SELECT id, sealed FROM outbox WHERE sealed IS NOT NULL ORDER BY id"};
static const sq_sql_t sql_reseal = {
    .slot = ST_OUTBOX_RESEAL, .sql = "UPDATE outbox SET sealed = ?3 WHERE id = ?1 AND sealed = ?2"};
static const sq_sql_t sql_purge = {
    .slot = ST_OUTBOX_PURGE,
    .sql = "DELETE FROM outbox WHERE created_us < ?1 AND NOT EXISTS (SELECT 1 FROM "
           "outbox_deliveries d WHERE d.notice_id = outbox.id AND d.status = 'pending')"};

#define BIND_N(st, i, n, f) sq_bind_field((st), (i), (n)->f, sizeof(n)->f, 0)

static int sq_outbox_add(tg_store_t *base, const tg_notice_t *n, const char *sealed,
                         const char *const *notifiers, size_t nnotifiers, int64_t now_us,
                         int *inserted, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (inserted) *inserted = 0;
    if (!n->id[0]) return tg_err_set(err, "outbox add: the notice has no id");
    if (nnotifiers == 0) return 0;
    int ret = sq_begin(s, "outbox add", err);
    if (ret != 0) return ret;
    sqlite3_stmt *st = sq_stmt(s, &sql_add, err);
    if (!st) goto fail;
    BIND_N(st, 1, n, id);
    BIND_N(st, 2, n, kind);
    BIND_N(st, 3, n, alarm);
    BIND_N(st, 4, n, alarm_kind);
    BIND_N(st, 5, n, tenant);
    BIND_N(st, 6, n, state);
    BIND_N(st, 7, n, severity);
    sqlite3_bind_double(st, 8, n->value);
    sqlite3_bind_double(st, 9, n->threshold);
    sqlite3_bind_double(st, 10, n->baseline);
    sqlite3_bind_int64(st, 11, n->window_s);
    sqlite3_bind_int64(st, 12, n->time_us);
    sqlite3_bind_int64(st, 13, n->started_us);
    BIND_N(st, 14, n, summary);
    sqlite3_bind_int64(st, 15, now_us);
    if (sealed)
        sqlite3_bind_text(st, 16, sealed, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 16);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) {
        ret = sq_fail(s, rc, "outbox add", err);
        goto fail;
    }
    if (sqlite3_changes(s->db) == 0) { /* already there: its deliveries were added with it */
        sq_rollback(s);
        return 0;
    }
    sqlite3_stmt *dst = sq_stmt(s, &sql_delivery_add, err);
    if (!dst) goto fail;
    for (size_t i = 0; i < nnotifiers; i++) {
        BIND_N(dst, 1, n, id);
        sqlite3_bind_text(dst, 2, notifiers[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(dst, 3, now_us);
        rc = sq_run(dst);
        if (rc != SQLITE_OK) {
            ret = sq_fail(s, rc, "outbox add", err);
            goto fail;
        }
    }
    ret = sq_commit(s, "outbox add", err);
    if (ret == 0 && inserted) *inserted = 1;
    return ret;
fail:
    sq_rollback(s);
    return ret ? ret : -1;
}

static int sq_outbox_claim(tg_store_t *base, int64_t now_us, int64_t lease_until_us, size_t max,
                           const char *notifier, int (*cb)(const tg_notice_delivery_t *, void *),
                           void *ud, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (max == 0) return 0;
    if (max > 1024) max = 1024;
    tg_notice_delivery_t *v = calloc(max, sizeof *v);
    if (!v) return tg_err_set(err, "outbox claim: out of memory");
    size_t n = 0;
    int ret = sq_begin(s, "outbox claim", err);
    if (ret != 0) goto out;
    sqlite3_stmt *st = sq_stmt(s, &sql_due, err);
    sqlite3_stmt *cl = st ? sq_stmt(s, &sql_claim, err) : NULL;
    if (!cl) {
        ret = -1;
        sq_rollback(s);
        goto out;
    }
    sqlite3_bind_int64(st, 1, now_us);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    if (notifier)
        sqlite3_bind_text(st, 3, notifier, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    int rc;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        sq_read_row(st, &tg_map_delivery, &v[n++]);
    if (n < max && rc != SQLITE_DONE) {
        ret = sq_fail(s, rc, "outbox claim", err);
        sqlite3_reset(st);
        sq_rollback(s);
        goto out;
    }
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(cl, 1, v[i].notice.id, -1, SQLITE_STATIC);
        sqlite3_bind_text(cl, 2, v[i].notifier, -1, SQLITE_STATIC);
        sqlite3_bind_int64(cl, 3, lease_until_us);
        rc = sq_run(cl);
        if (rc != SQLITE_OK) {
            ret = sq_fail(s, rc, "outbox claim", err);
            sq_rollback(s);
            goto out;
        }
        v[i].next_us = lease_until_us;
    }
    ret = sq_commit(s, "outbox claim", err);
    for (size_t i = 0; ret == 0 && i < n; i++)
        ret = cb(&v[i], ud);
out:
    free(v);
    return ret;
}

static int sq_outbox_set(tg_store_t *base, const char *notice_id, const char *notifier,
                         const char *status, int attempts, int64_t next_us, const char *error,
                         int64_t now_us, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (tg_rowcheck_outbox_status(status, err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_set, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, notice_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, notifier, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, attempts);
    sqlite3_bind_int64(st, 5, next_us);
    if (error && *error)
        sqlite3_bind_text(st, 6, error, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int64(st, 7, now_us);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "outbox set", err);
    if (sqlite3_changes(s->db) == 0) {
        tg_err_set(err, "outbox set: no delivery of %s to %s", notice_id, notifier);
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

static int sq_outbox_defer(tg_store_t *base, const char *notifier, int64_t until_us, int64_t now_us,
                           tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_defer, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, notifier, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, until_us);
    sqlite3_bind_int64(st, 3, now_us);
    int rc = sq_run(st);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, "outbox defer", err);
}

static int sq_outbox_next(tg_store_t *base, const char *notifier, int64_t *next_us, int *found,
                          tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    *found = 0;
    sqlite3_stmt *st = sq_stmt(s, &sql_next, err);
    if (!st) return -1;
    if (notifier)
        sqlite3_bind_text(st, 1, notifier, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *next_us = sqlite3_column_int64(st, 0);
        *found = 1;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "outbox next", err);
}

static int sq_outbox_notifiers(tg_store_t *base, int (*cb)(const char *notifier, void *), void *ud,
                               tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_notifiers, err);
    if (!st) return -1;
    int rc = SQLITE_DONE, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 0);
        ret = cb(name ? (const char *)name : "", ud);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "outbox notifiers", err);
    sqlite3_reset(st);
    return ret;
}

static int emit_delivery(sqlite3_stmt *st, const sink_t *k)
{
    tg_notice_delivery_t d;
    sq_read_row(st, &tg_map_delivery, &d);
    return SINK_CALL(tg_notice_delivery_t, k, &d);
}

static int sq_outbox_list(tg_store_t *base, const char *status,
                          int (*cb)(const tg_notice_delivery_t *, void *), void *ud, tg_err_t *err)
{
    return sq_each_row((sq_store_t *)base, &sql_list, status, emit_delivery,
                       SINK(tg_notice_delivery_t, cb, ud), "outbox list", err);
}

static int sq_outbox_purge(tg_store_t *base, int64_t before_us, int64_t *deleted, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (deleted) *deleted = 0;
    sqlite3_stmt *st = sq_stmt(s, &sql_purge, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, before_us);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "outbox purge", err);
    if (deleted) *deleted = sqlite3_changes(s->db);
    return 0;
}

static int sq_outbox_sealed_each(tg_store_t *base,
                                 int (*cb)(const char *id, const char *sealed, void *), void *ud,
                                 tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_sealed_each, err);
    if (!st) return -1;
    int rc = SQLITE_DONE, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0), *sealed = sqlite3_column_text(st, 1);
        ret = cb(id ? (const char *)id : "", sealed ? (const char *)sealed : "", ud);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "outbox sealed", err);
    sqlite3_reset(st);
    return ret;
}

static int sq_outbox_reseal(tg_store_t *base, const char *id, const char *from, const char *to,
                            tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_reseal, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, to, -1, SQLITE_STATIC);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "outbox reseal", err);
    if (sqlite3_changes(s->db) == 0) {
        tg_err_set(err, "outbox notice %s: its sealed text changed meanwhile or it is gone", id);
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_outbox_maps[] = {&tg_map_delivery, NULL};

const struct tg_store_outbox_ops sq_outbox_ops = {
    .add = sq_outbox_add,
    .claim = sq_outbox_claim,
    .set = sq_outbox_set,
    .defer = sq_outbox_defer,
    .next = sq_outbox_next,
    .notifiers = sq_outbox_notifiers,
    .list = sq_outbox_list,
    .purge = sq_outbox_purge,
    .sealed_each = sq_outbox_sealed_each,
    .reseal = sq_outbox_reseal,
};
