/* PostgreSQL store, the notification outbox (the outbox_ops of backend.h), as
 * sqlite_outbox.c. A notice row and its delivery rows are written in one transaction; a
 * sender claims due deliveries with a lease and then sets each one's outcome. No version.
 *
 * Several gateways share the store, and each runs a sending lane (its own connection) per
 * notifier: a claim is one statement that picks the due rows FOR UPDATE SKIP LOCKED and
 * moves their next_us to the end of the lease. A row another lane is claiming right now is
 * skipped rather than waited for; a row it claimed and committed is no longer due (read
 * committed re-reads a locked row once its lock is released and re-checks next_us), so a
 * delivery is handed out once per lease. */
#include "store/pg_int.h"

#include <stdlib.h>
#include <string.h>

#include "store/maps.h"
#include "store/rowcheck.h"

static const pg_sql_t sql_add = {
    .slot = PS_OUTBOX_ADD,
    .sql =
        "INSERT INTO outbox (id, kind, alarm, alarm_kind, tenant_id, state, severity, value, "
        "threshold, baseline, window_s, time_us, started_us, summary, created_us, sealed) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
        "ON CONFLICT (id) DO NOTHING"};
static const pg_sql_t sql_delivery_add = {
    .slot = PS_OUTBOX_DELIVERY_ADD,
    .sql = "INSERT INTO outbox_deliveries (notice_id, notifier, status, attempts, next_us, "
           "updated_us) VALUES ($1, $2, 'pending', 0, $3, $3) "
           "ON CONFLICT (notice_id, notifier) DO NOTHING"};

/* $1 now, $2 how many at most, $3 the notifier (NULL: any), $4 the lease's end. The rows
 * come back in the order they were due (their next_us before the claim, kept as due_us). */
#define CLAIM_WITH                                                                                 \
    "WITH c AS (SELECT d.notice_id, d.notifier, d.next_us FROM outbox_deliveries d "               \
    "JOIN outbox o ON o.id = d.notice_id WHERE d.status = 'pending' AND d.next_us <= $1 "          \
    "AND ($3::text IS NULL OR d.notifier = $3) ORDER BY d.next_us, o.created_us LIMIT $2 "         \
    "FOR UPDATE OF d SKIP LOCKED), "                                                               \
    "u AS (UPDATE outbox_deliveries d SET next_us = $4 FROM c WHERE d.notice_id = c.notice_id "    \
    "AND d.notifier = c.notifier RETURNING d.*, c.next_us AS due_us) "
#define CLAIM_REST "FROM u d JOIN outbox o ON o.id = d.notice_id ORDER BY d.due_us, o.created_us"

static char *build_claim(void)
{
    char *sel = tg_rowmap_select_sql(&tg_map_delivery, CLAIM_REST);
    if (!sel) return NULL;
    size_t n = strlen(CLAIM_WITH), m = strlen(sel);
    char *sql = malloc(n + m + 1);
    if (sql) {
        memcpy(sql, CLAIM_WITH, n);
        memcpy(sql + n, sel, m + 1);
    }
    free(sel);
    return sql;
}

static const pg_sql_t sql_claim = {.slot = PS_OUTBOX_CLAIM, .build = build_claim};
static const pg_sql_t sql_set = {
    .slot = PS_OUTBOX_SET,
    .sql = "UPDATE outbox_deliveries SET status = $3, attempts = $4, next_us = $5, error = $6, "
           "updated_us = $7 WHERE notice_id = $1 AND notifier = $2"};
static const pg_sql_t sql_defer = {
    .slot = PS_OUTBOX_DEFER,
    .sql = "UPDATE outbox_deliveries SET next_us = $2, updated_us = $3 WHERE notifier = $1 "
           "AND status = 'pending' AND next_us < $2"};
static const pg_sql_t sql_next = {
    .slot = PS_OUTBOX_NEXT,
    .sql = "SELECT min(next_us) FROM outbox_deliveries WHERE status = 'pending' AND ($1::text "
           "IS NULL OR notifier = $1)"};
static const pg_sql_t sql_notifiers = {
    .slot = PS_OUTBOX_NOTIFIERS,
    .sql = "SELECT notifier FROM outbox_deliveries WHERE status = 'pending' GROUP BY notifier "
           "ORDER BY notifier COLLATE \"C\""};
static const pg_sql_t sql_list = {
    .slot = PS_OUTBOX_LIST,
    .select = &tg_map_delivery,
    .sql = "FROM outbox_deliveries d JOIN outbox o ON o.id = d.notice_id WHERE $1::text IS NULL "
           "OR d.status = $1 ORDER BY o.created_us, o.id COLLATE \"C\", d.notifier COLLATE \"C\""};
static const pg_sql_t sql_sealed_each = {
    .slot = PS_OUTBOX_SEALED_EACH,
    .sql = "SELECT id, sealed FROM outbox WHERE sealed IS NOT NULL ORDER BY id COLLATE \"C\""};
static const pg_sql_t sql_reseal = {
    .slot = PS_OUTBOX_RESEAL, .sql = "UPDATE outbox SET sealed = $3 WHERE id = $1 AND sealed = $2"};
static const pg_sql_t sql_purge = {
    .slot = PS_OUTBOX_PURGE,
    .sql = "DELETE FROM outbox WHERE created_us < $1 AND NOT EXISTS (SELECT 1 FROM "
           "outbox_deliveries d WHERE d.notice_id = outbox.id AND d.status = 'pending')"};

#define P_N(p, n, f) pg_p_field((p), (n)->f, sizeof(n)->f, 0)

/* Two processes adding one notice at once: the second's insert waits on the first's key,
 * then adds nothing (and none of the deliveries), as the notice's deliveries came with it. */
static int pg_outbox_add(tg_store_t *base, const tg_notice_t *n, const char *sealed,
                         const char *const *notifiers, size_t nnotifiers, int64_t now_us,
                         int *inserted, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    if (inserted) *inserted = 0;
    if (!n->id[0]) return tg_err_set(err, "outbox add: the notice has no id");
    if (nnotifiers == 0) return 0;
    pg_params_t p = {0};
    P_N(&p, n, id);
    P_N(&p, n, kind);
    P_N(&p, n, alarm);
    P_N(&p, n, alarm_kind);
    P_N(&p, n, tenant);
    P_N(&p, n, state);
    P_N(&p, n, severity);
    pg_p_double(&p, n->value);
    pg_p_double(&p, n->threshold);
    pg_p_double(&p, n->baseline);
    pg_p_int64(&p, n->window_s);
    pg_p_int64(&p, n->time_us);
    pg_p_int64(&p, n->started_us);
    P_N(&p, n, summary);
    pg_p_int64(&p, now_us);
    pg_p_text(&p, sealed);
    int ret = pg_begin(s, "outbox add", err);
    if (ret != 0) return ret;
    PGresult *r;
    ret = pg_exec(s, &sql_add, &p, &r, "outbox add", err);
    if (ret != 0) goto fail;
    int64_t added = pg_changes(r);
    PQclear(r);
    if (added == 0) { /* already there: its deliveries were added with it */
        pg_rollback(s);
        return 0;
    }
    for (size_t i = 0; i < nnotifiers; i++) {
        pg_params_t d = {0};
        P_N(&d, n, id);
        pg_p_text(&d, notifiers[i]);
        pg_p_int64(&d, now_us);
        ret = pg_exec(s, &sql_delivery_add, &d, NULL, "outbox add", err);
        if (ret != 0) goto fail;
    }
    ret = pg_commit(s, "outbox add", err);
    if (ret == 0 && inserted) *inserted = 1;
    return ret;
fail:
    pg_rollback(s);
    return ret;
}

static int pg_outbox_claim(tg_store_t *base, int64_t now_us, int64_t lease_until_us, size_t max,
                           const char *notifier, int (*cb)(const tg_notice_delivery_t *, void *),
                           void *ud, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    if (max == 0) return 0;
    if (max > 1024) max = 1024;
    pg_params_t p = {0};
    pg_p_int64(&p, now_us);
    pg_p_int64(&p, (int64_t)max);
    pg_p_text(&p, notifier);
    pg_p_int64(&p, lease_until_us);
    PGresult *r;
    /* Autocommit: the claim is committed before the first callback, as SQLite's. */
    int ret = pg_exec(s, &sql_claim, &p, &r, "outbox claim", err);
    if (ret != 0) return ret;
    int rows = PQntuples(r);
    for (int i = 0; ret == 0 && i < rows; i++) {
        tg_notice_delivery_t d;
        pg_read_row(s, r, i, &tg_map_delivery, &d);
        ret = cb(&d, ud);
    }
    PQclear(r);
    return ret;
}

static int pg_outbox_set(tg_store_t *base, const char *notice_id, const char *notifier,
                         const char *status, int attempts, int64_t next_us, const char *error,
                         int64_t now_us, tg_err_t *err)
{
    if (tg_rowcheck_outbox_status(status, err) != 0) return -1;
    pg_params_t p = {0};
    pg_p_text(&p, notice_id);
    pg_p_text(&p, notifier);
    pg_p_text(&p, status);
    pg_p_int64(&p, attempts);
    pg_p_int64(&p, next_us);
    pg_p_text(&p, error && *error ? error : NULL);
    pg_p_int64(&p, now_us);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_set, &p, &r, "outbox set", err);
    if (ret != 0) return ret;
    int64_t changed = pg_changes(r);
    PQclear(r);
    if (changed == 0) {
        tg_err_set(err, "outbox set: no delivery of %s to %s", notice_id, notifier);
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

static int pg_outbox_defer(tg_store_t *base, const char *notifier, int64_t until_us, int64_t now_us,
                           tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, notifier);
    pg_p_int64(&p, until_us);
    pg_p_int64(&p, now_us);
    return pg_exec((pg_store_t *)base, &sql_defer, &p, NULL, "outbox defer", err);
}

static int pg_outbox_next(tg_store_t *base, const char *notifier, int64_t *next_us, int *found,
                          tg_err_t *err)
{
    *found = 0;
    pg_params_t p = {0};
    pg_p_text(&p, notifier);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_next, &p, &r, "outbox next", err);
    if (ret != 0) return ret;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        *next_us = pg_get_int64(r, 0, 0);
        *found = 1;
    }
    PQclear(r);
    return 0;
}

static int emit_notifier(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    (void)s;
    const char *name = pg_val(r, i, 0);
    return SINK_CALL(char, k, name ? name : "");
}

static int pg_outbox_notifiers(tg_store_t *base, int (*cb)(const char *notifier, void *), void *ud,
                               tg_err_t *err)
{
    return pg_each_row((pg_store_t *)base, &sql_notifiers, NULL, emit_notifier, SINK(char, cb, ud),
                       "outbox notifiers", err);
}

static int emit_delivery(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    tg_notice_delivery_t d;
    pg_read_row(s, r, i, &tg_map_delivery, &d);
    return SINK_CALL(tg_notice_delivery_t, k, &d);
}

static int pg_outbox_list(tg_store_t *base, const char *status,
                          int (*cb)(const tg_notice_delivery_t *, void *), void *ud, tg_err_t *err)
{
    return pg_each_tenant_row((pg_store_t *)base, &sql_list, 1, status, emit_delivery,
                              SINK(tg_notice_delivery_t, cb, ud), "outbox list", err);
}

static int pg_outbox_purge(tg_store_t *base, int64_t before_us, int64_t *deleted, tg_err_t *err)
{
    if (deleted) *deleted = 0;
    pg_params_t p = {0};
    pg_p_int64(&p, before_us);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_purge, &p, &r, "outbox purge", err);
    if (ret != 0) return ret;
    if (deleted) *deleted = pg_changes(r);
    PQclear(r);
    return 0;
}

static int pg_outbox_sealed_each(tg_store_t *base,
                                 int (*cb)(const char *id, const char *sealed, void *), void *ud,
                                 tg_err_t *err)
{
    pg_params_t p = {0};
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_sealed_each, &p, &r, "outbox sealed", err);
    if (ret != 0) return ret;
    int rows = PQntuples(r);
    for (int i = 0; ret == 0 && i < rows; i++) {
        const char *id = pg_val(r, i, 0), *sealed = pg_val(r, i, 1);
        ret = cb(id ? id : "", sealed ? sealed : "", ud);
    }
    PQclear(r);
    return ret;
}

static int pg_outbox_reseal(tg_store_t *base, const char *id, const char *from, const char *to,
                            tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, id);
    pg_p_text(&p, from);
    pg_p_text(&p, to);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_reseal, &p, &r, "outbox reseal", err);
    if (ret != 0) return ret;
    int64_t changed = pg_changes(r);
    PQclear(r);
    if (changed == 0) {
        tg_err_set(err, "outbox notice %s: its sealed text changed meanwhile or it is gone", id);
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

const struct tg_store_outbox_ops pg_outbox_ops = {
    .add = pg_outbox_add,
    .claim = pg_outbox_claim,
    .set = pg_outbox_set,
    .defer = pg_outbox_defer,
    .next = pg_outbox_next,
    .notifiers = pg_outbox_notifiers,
    .list = pg_outbox_list,
    .purge = pg_outbox_purge,
    .sealed_each = pg_outbox_sealed_each,
    .reseal = pg_outbox_reseal,
};
