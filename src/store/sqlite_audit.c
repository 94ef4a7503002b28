/* SQLite store, the audit trail (the audit_ops of backend.h; docs/audit.md). An append
 * reads the chain head, links its records after it (types/audit.h) and moves the head, all
 * inside one BEGIN IMMEDIATE: SQLite's single writer is the chain's lock, so the CLI and a
 * gateway's writer appending at once take turns and never fork the chain. The writer's
 * call records are appended inside its own append transaction (sq_audit_calls), so an
 * event and its audit record commit together or not at all. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

#define REC_COLS                                                                                   \
    "id, day, seq, ts_us, kind, actor, action, object, tenant, event_id, data, before_json, "      \
    "after_json, client_ip, path, prev_hash, hash, format"

static const sq_sql_t sql_head = {
    .slot = ST_AUDIT_HEAD,
    .sql = "SELECT last_id, last_day, last_seq, last_hash FROM audit_head WHERE id = 1"};
/* No index but the id: a replayed batch adds no record because its events are not
 * inserted again (sq_audit_calls is told which were), not by a unique index on event_id. */
static const sq_sql_t sql_insert = {.slot = ST_AUDIT_INSERT,
                                    .sql = "INSERT INTO audit (" REC_COLS
                                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                                           "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"};

/* The writer's call records go in AUDIT_ROWS at a time (sq_audit_calls): one statement
 * for 32 rows costs SQLite's per-statement work (cursor, program start, reset) once. */
#define REC_NCOLS  18
#define AUDIT_ROWS 32

static char *insert_multi_sql(void)
{
    return sq_rows_sql("INSERT INTO audit (" REC_COLS ") VALUES ", REC_NCOLS, AUDIT_ROWS, "");
}

static const sq_sql_t sql_insert_multi = {.slot = ST_AUDIT_INSERT_MULTI, .build = insert_multi_sql};

/* Records linked and waiting for their INSERT, with what their pointers point into. */
typedef struct sq_audit_rows {
    tg_audit_rec_t rec[AUDIT_ROWS];
    const tg_event_t *ev[AUDIT_ROWS]; /* its event (sealed bodies) */
    int64_t stored[AUDIT_ROWS];       /* the id that event was inserted under */
    char data[AUDIT_ROWS][TG_AUDIT_DATA_MAX];
} sq_audit_rows_t;
static const sq_sql_t sql_head_set = {
    .slot = ST_AUDIT_HEAD_SET,
    .sql = "INSERT INTO audit_head (id, last_id, last_day, last_seq, last_hash) VALUES (1, ?1, ?2, "
           "?3, ?4) ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, "
           "last_day = excluded.last_day, last_seq = excluded.last_seq, "
           "last_hash = excluded.last_hash"};
static const sq_sql_t sql_range = {.slot = ST_AUDIT_RANGE,
                                   .sql = "SELECT " REC_COLS
                                          " FROM audit WHERE id >= ?1 AND id < ?2 ORDER BY id"};
static const sq_sql_t sql_ids = {.slot = ST_AUDIT_IDS, .sql = "SELECT min(id), max(id) FROM audit"};
static const sq_sql_t sql_day_from = {
    .slot = ST_AUDIT_DAY_FROM, .sql = "SELECT day FROM audit WHERE id >= ?1 ORDER BY id LIMIT 1"};
static const sq_sql_t sql_find = {.slot = ST_AUDIT_FIND,
                                  .sql = "SELECT id FROM audit WHERE hash = ?1 LIMIT 1"};
static const sq_sql_t sql_erase_sel = {
    .slot = ST_AUDIT_ERASE_SEL,
    .sql = "SELECT id, before_json, after_json, client_ip, path FROM audit WHERE tenant = ?1"};
static const sq_sql_t sql_erase_set = {
    .slot = ST_AUDIT_ERASE_SET,
    .sql = "UPDATE audit SET before_json = ?2, after_json = ?3, client_ip = ?4, path = ?5 "
           "WHERE id = ?1"};
static const sq_sql_t sql_erase_events = {
    .slot = ST_AUDIT_ERASE_EVENTS,
    .sql = "UPDATE usage_events SET client_ip = NULL, path = CASE WHEN instr(path, '?') > 0 "
           "THEN substr(path, 1, instr(path, '?') - 1) ELSE path END "
           "WHERE tenant = ?1 AND (client_ip IS NOT NULL OR instr(path, '?') > 0)"};
static const sq_sql_t sql_erase_keys = {
    .slot = ST_AUDIT_ERASE_KEYS,
    .sql = "UPDATE api_keys SET name = '' WHERE tenant_id = ?1 AND name <> ''"};
/* The records before id ?1: whole days, found by tg_audit_day_bound. */
static const sq_sql_t sql_purge = {.slot = ST_AUDIT_PURGE,
                                   .sql = "DELETE FROM audit WHERE id < ?1"};

/* audit.bodies: encrypt (types/bodies.h): a call record's sealed bodies. */
static const sq_sql_t sql_body_put = {
    .slot = ST_AUDIT_BODY_PUT,
    .sql = "INSERT INTO audit_bodies (record_id, tenant, sealed) VALUES (?1, ?2, ?3)"};
static const sq_sql_t sql_body_get = {
    .slot = ST_AUDIT_BODY_GET,
    .sql = "SELECT b.sealed, a.event_id, a.tenant FROM audit_bodies b JOIN audit a ON a.id = "
           "b.record_id WHERE b.record_id = ?1"};
static const sq_sql_t sql_body_each = {
    .slot = ST_AUDIT_BODY_EACH,
    .sql = "SELECT record_id, sealed FROM audit_bodies ORDER BY record_id"};
static const sq_sql_t sql_body_reseal = {
    .slot = ST_AUDIT_BODY_RESEAL,
    .sql = "UPDATE audit_bodies SET sealed = ?3 WHERE record_id = ?1 AND sealed = ?2"};
static const sq_sql_t sql_body_erase = {.slot = ST_AUDIT_BODY_ERASE,
                                        .sql = "DELETE FROM audit_bodies WHERE tenant = ?1"};
static const sq_sql_t sql_body_purge = {.slot = ST_AUDIT_BODY_PURGE,
                                        .sql = "DELETE FROM audit_bodies WHERE record_id < ?1"};

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? t : "");
}

static int head_read(sq_store_t *s, tg_audit_head_t *h, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_head, err);
    if (!st) return -1;
    tg_audit_head_init(h);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        h->last_id = sqlite3_column_int64(st, 0);
        col_copy(st, 1, h->last_day, sizeof h->last_day);
        h->last_seq = sqlite3_column_int64(st, 2);
        col_copy(st, 3, h->last_hash, sizeof h->last_hash);
    } else if (rc != SQLITE_DONE) { /* DONE, no row: an empty chain, head as initialised */
        ret = sq_fail(s, rc, "audit head", err);
    }
    sqlite3_reset(st);
    return ret;
}

static int head_write(sq_store_t *s, const tg_audit_head_t *h, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_head_set, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, h->last_id);
    sqlite3_bind_text(st, 2, h->last_day, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, h->last_seq);
    sqlite3_bind_text(st, 4, h->last_hash, -1, SQLITE_STATIC);
    int rc = sq_run(st);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, "audit head", err);
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Binds a linked rec to parameters b+1 .. b+REC_NCOLS of st. */
static void bind_rec(sqlite3_stmt *st, int b, const tg_audit_rec_t *rec)
{
    sqlite3_bind_int64(st, b + 1, rec->id);
    sqlite3_bind_text(st, b + 2, rec->day, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, b + 3, rec->seq);
    sqlite3_bind_int64(st, b + 4, rec->ts_us);
    bind_opt(st, b + 5, rec->kind);
    bind_opt(st, b + 6, rec->actor ? rec->actor : "");
    bind_opt(st, b + 7, rec->action);
    bind_opt(st, b + 8, rec->object ? rec->object : "");
    bind_opt(st, b + 9, rec->tenant ? rec->tenant : "");
    if (rec->event_id)
        sqlite3_bind_int64(st, b + 10, rec->event_id);
    else
        sqlite3_bind_null(st, b + 10);
    bind_opt(st, b + 11, rec->data);
    bind_opt(st, b + 12, rec->before);
    bind_opt(st, b + 13, rec->after);
    bind_opt(st, b + 14, rec->client_ip);
    bind_opt(st, b + 15, rec->path);
    sqlite3_bind_text(st, b + 16, rec->prev_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, b + 17, rec->hash, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, b + 18, rec->format);
}

/* Links rec after *head and inserts it with st (sql_insert, fetched once per batch: each
 * sq_stmt checks the WAL index, a stat() call); *head moves once it is inserted. */
static int put(sq_store_t *s, sqlite3_stmt *st, tg_audit_head_t *head, tg_audit_rec_t *rec,
               tg_err_t *err)
{
    tg_audit_head_t next = *head;
    if (tg_audit_link(&next, rec) != 0) return tg_err_set(err, "audit: out of memory");
    bind_rec(st, 0, rec);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "audit append", err);
    *head = next;
    return 0;
}

static int sq_audit_append(tg_store_t *base, tg_audit_rec_t *recs, size_t n, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int ret = sq_begin(s, "audit append", err);
    if (ret != 0) return ret;
    tg_audit_head_t h;
    sqlite3_stmt *st = sq_stmt(s, &sql_insert, err);
    ret = st ? head_read(s, &h, err) : -1;
    for (size_t i = 0; ret == 0 && i < n; i++)
        ret = put(s, st, &h, &recs[i], err);
    if (ret == 0) ret = head_write(s, &h, err);
    if (ret != 0) {
        sq_rollback(s);
        return ret;
    }
    return sq_commit(s, "audit append", err);
}

/* The call record rec's sealed bodies, in its transaction. */
static int body_put(sq_store_t *s, const tg_audit_rec_t *rec, const tg_event_t *ev, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_body_put, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, rec->id);
    sqlite3_bind_text(st, 2, rec->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, ev->bodies->sealed, (int)ev->bodies->sealed_len, SQLITE_STATIC);
    int rc = sq_run(st);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, "audit bodies", err);
}

/* Inserts the n (>= 1) linked records waiting in a (AUDIT_ROWS in one statement, fewer
 * one by one), then their sealed bodies (audit_bodies refers to the record). *multi and
 * *one are the statements, fetched on first use and kept for the batch: each sq_stmt
 * checks the WAL index, a stat() call. */
static int insert_rows(sq_store_t *s, sq_audit_rows_t *a, size_t n, sqlite3_stmt **multi,
                       sqlite3_stmt **one, tg_err_t *err)
{
    int whole = n == AUDIT_ROWS;
    sqlite3_stmt **stp = whole ? multi : one;
    if (!*stp && !(*stp = sq_stmt(s, whole ? &sql_insert_multi : &sql_insert, err))) return -1;
    for (size_t k = 0; k < n; k++) {
        bind_rec(*stp, whole ? (int)k * REC_NCOLS : 0, &a->rec[k]);
        if (whole && k + 1 < n) continue; /* one statement for all of them */
        int rc = sq_run(*stp);
        if (rc != SQLITE_OK) return sq_fail(s, rc, "audit append", err);
    }
    for (size_t k = 0; k < n; k++)
        if (tg_audit_body_of(a->ev[k], a->stored[k]) && body_put(s, &a->rec[k], a->ev[k], err) != 0)
            return -1;
    if (whole) tg_store_pace(&s->base);
    return 0;
}

int sq_audit_calls(sq_store_t *s, const ev_run_t *evs, const int64_t *stored, tg_err_t *err)
{
    tg_audit_head_t h;
    int have_head = 0, ret = 0;
    size_t n = 0;
    sq_audit_rows_t *a = s->audit;
    sqlite3_stmt *multi = NULL, *one = NULL;
    for (size_t i = 0; ret == 0 && i < evs->n; i++) {
        if (ev_skip(evs, i) || stored[i] == 0) continue;
        const tg_event_t *ev = ev_at(evs, i);
        if (!tg_audit_is_call(ev)) continue;
        if (!a && !(a = s->audit = malloc(sizeof *a)))
            return tg_err_set(err, "audit: out of memory");
        tg_audit_rec_t *rec = &a->rec[n];
        /* (1: a call, checked above) */
        if (tg_audit_from_event(ev, rec, a->data[n], sizeof a->data[n]) < 0)
            return tg_err_set(err, "audit: call record of event %lld", (long long)ev->id);
        rec->event_id = stored[i]; /* another id than its own when another event held that */
        if (!have_head && (ret = head_read(s, &h, err)) != 0) return ret;
        have_head = 1;
        /* Linked in order; the head is written once the batch's last record is in. */
        if (tg_audit_link(&h, rec) != 0) return tg_err_set(err, "audit: out of memory");
        a->ev[n] = ev;
        a->stored[n] = stored[i];
        if (++n == AUDIT_ROWS) {
            ret = insert_rows(s, a, n, &multi, &one, err);
            n = 0;
        }
    }
    if (ret == 0 && n) ret = insert_rows(s, a, n, &multi, &one, err);
    if (ret == 0 && have_head) ret = head_write(s, &h, err);
    return ret;
}

static int sq_audit_head(tg_store_t *base, tg_audit_head_t *out, tg_err_t *err)
{
    return head_read((sq_store_t *)base, out, err);
}

static const char *opt_col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

typedef struct probe {
    sq_store_t *s;
    sqlite3_stmt *st; /* sql_day_from */
    tg_err_t *err;
} probe_t;

static int day_from(int64_t x, char day[11], void *ud)
{
    probe_t *p = ud;
    sqlite3_bind_int64(p->st, 1, x);
    int rc = sqlite3_step(p->st);
    if (rc == SQLITE_ROW) col_copy(p->st, 0, day, 11);
    sqlite3_reset(p->st);
    return rc == SQLITE_ROW
               ? 0
               : sq_fail(p->s, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "audit days", p->err);
}

/* The id range [*lo, *hi) of the records of days from..to (NULL: unbounded). */
static int day_ids(sq_store_t *s, const char *from, const char *to, int64_t *lo, int64_t *hi,
                   tg_err_t *err)
{
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    if (!from && !to) return 0;
    sqlite3_stmt *ids = sq_stmt(s, &sql_ids, err);
    probe_t p = {s, ids ? sq_stmt(s, &sql_day_from, err) : NULL, err};
    if (!p.st) return -1;
    int rc = sqlite3_step(ids);
    int64_t first = sqlite3_column_int64(ids, 0), last = sqlite3_column_int64(ids, 1);
    int empty = rc == SQLITE_ROW && sqlite3_column_type(ids, 0) == SQLITE_NULL;
    sqlite3_reset(ids);
    if (rc != SQLITE_ROW) return sq_fail(s, rc, "audit days", err);
    if (empty) return 0;
    if (from && tg_audit_day_bound(first, last, from, 0, day_from, &p, lo) != 0) return -1;
    if (to && tg_audit_day_bound(first, last, to, 1, day_from, &p, hi) != 0) return -1;
    return 0;
}

static int sq_audit_range(tg_store_t *base, const char *from_day, const char *to_day,
                          int (*cb)(const tg_audit_rec_t *, void *), void *ud, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int64_t lo, hi;
    if (day_ids(s, from_day, to_day, &lo, &hi, err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_range, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi);
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        tg_audit_rec_t r = {0};
        r.id = sqlite3_column_int64(st, 0);
        col_copy(st, 1, r.day, sizeof r.day);
        r.seq = sqlite3_column_int64(st, 2);
        r.ts_us = sqlite3_column_int64(st, 3);
        r.kind = opt_col(st, 4);
        r.actor = opt_col(st, 5);
        r.action = opt_col(st, 6);
        r.object = opt_col(st, 7);
        r.tenant = opt_col(st, 8);
        r.event_id = sqlite3_column_int64(st, 9);
        r.data = opt_col(st, 10);
        r.before = opt_col(st, 11);
        r.after = opt_col(st, 12);
        r.client_ip = opt_col(st, 13);
        r.path = opt_col(st, 14);
        col_copy(st, 15, r.prev_hash, sizeof r.prev_hash);
        col_copy(st, 16, r.hash, sizeof r.hash);
        r.format = sqlite3_column_int(st, 17);
        ret = cb(&r, ud);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "audit range", err);
    sqlite3_reset(st);
    return ret;
}

static int sq_audit_find(tg_store_t *base, const char *hash, int64_t *id, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_find, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "audit find", err);
}

/* The erased form of column i, into out (NULL stays NULL). */
static const char *erased_col(sqlite3_stmt *st, int i, char out[80])
{
    const char *v = opt_col(st, i);
    if (!v) return NULL;
    tg_audit_erased(v, out);
    return out;
}

static int erase_txn(sq_store_t *s, const char *tenant, int64_t *changed, tg_err_t *err)
{
    sqlite3_stmt *sel = sq_stmt(s, &sql_erase_sel, err);
    sqlite3_stmt *set = sel ? sq_stmt(s, &sql_erase_set, err) : NULL;
    sqlite3_stmt *evs = set ? sq_stmt(s, &sql_erase_events, err) : NULL;
    sqlite3_stmt *keys = evs ? sq_stmt(s, &sql_erase_keys, err) : NULL;
    sqlite3_stmt *bodies = keys ? sq_stmt(s, &sql_body_erase, err) : NULL;
    if (!bodies) return -1;
    int rc;
    sqlite3_bind_text(sel, 1, tenant, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        char e[4][80];
        sqlite3_bind_int64(set, 1, sqlite3_column_int64(sel, 0));
        for (int c = 0; c < 4; c++)
            bind_opt(set, 2 + c, erased_col(sel, 1 + c, e[c]));
        if ((rc = sq_run(set)) != SQLITE_OK) break;
        *changed += 1;
    }
    sqlite3_reset(sel);
    if (rc != SQLITE_DONE && rc != SQLITE_OK) return sq_fail(s, rc, "tenant erase", err);
    sqlite3_stmt *more[] = {evs, keys, bodies};
    for (int i = 0; i < 3; i++) {
        sqlite3_bind_text(more[i], 1, tenant, -1, SQLITE_STATIC);
        if ((rc = sq_run(more[i])) != SQLITE_OK) return sq_fail(s, rc, "tenant erase", err);
        *changed += sqlite3_changes(s->db);
    }
    return 0;
}

/* The erase's TRUNCATE checkpoint. SQLite refuses it at once (SQLITE_BUSY, without the busy
 * handler) while another checkpoint holds the checkpoint lock, and a gateway's tg-checkpoint
 * (sqlite_ckpt.c) holds it for each of its rounds, under load one every 20 ms: tried
 * again every 10 ms until the busy timeout has passed. A reader that holds
 * the checkpoint back makes one try wait that long already (the busy handler), so it is
 * not tried again. */
static void erase_truncate(sq_store_t *s)
{
    int64_t until = tg_mono_us() + (int64_t)TG_STORE_BUSY_TIMEOUT_MS * 1000;
    for (;;) {
        if (tg_walshm_check(&s->shm, NULL) != 0) return;
        int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || tg_mono_us() >= until) return;
        sqlite3_sleep(10);
    }
}

/* secure_delete overwrites the erased values' old bytes in the pages it rewrites, and the
 * TRUNCATE checkpoint moves the pages into the database and empties the WAL, which held
 * the pages as they were before: afterwards the values are in neither file. A checkpoint
 * that a reader holds back, or that another checkpoint keeps out past the busy timeout,
 * leaves the old frames in the WAL until a later one; the erase still succeeded and says
 * nothing of it. */
static int sq_audit_erase(tg_store_t *base, const char *tenant, int64_t *changed, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    *changed = 0;
    int ret = sq_exec(s, "PRAGMA secure_delete = ON", "tenant erase", err);
    if (ret == 0) ret = sq_begin(s, "tenant erase", err);
    if (ret != 0) return ret;
    if ((ret = erase_txn(s, tenant, changed, err)) != 0) {
        sq_rollback(s);
        return ret;
    }
    if ((ret = sq_commit(s, "tenant erase", err)) != 0) return ret;
    erase_truncate(s);
    return 0;
}

static int sq_audit_purge(tg_store_t *base, const char *before_day, int64_t *deleted, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    tg_audit_head_t h;
    int64_t lo, hi;
    *deleted = 0;
    if (head_read(s, &h, err) != 0) return -1;
    /* The head's day is always kept: the chain's last record anchors the next append. */
    const char *day = strcmp(before_day, h.last_day) < 0 ? before_day : h.last_day;
    if (day_ids(s, day, NULL, &lo, &hi, err) != 0) return -1;
    sqlite3_stmt *st = sq_stmt(s, &sql_purge, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, lo);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "audit purge", err);
    *deleted = sqlite3_changes(s->db);
    /* Their bodies (and any left by a purge stopped between the two). */
    if (!(st = sq_stmt(s, &sql_body_purge, err))) return -1;
    sqlite3_bind_int64(st, 1, lo);
    if ((rc = sq_run(st)) != SQLITE_OK) return sq_fail(s, rc, "audit purge", err);
    *deleted += sqlite3_changes(s->db);
    return 0;
}

static int sq_audit_body_get(tg_store_t *base, int64_t record_id, tg_audit_body_t *out,
                             tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_body_get, err);
    if (!st) return -1;
    memset(out, 0, sizeof *out);
    sqlite3_bind_int64(st, 1, record_id);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        const void *p = sqlite3_column_blob(st, 0);
        out->record_id = record_id;
        out->event_id = sqlite3_column_int64(st, 1);
        col_copy(st, 2, out->tenant, sizeof out->tenant);
        if (!(out->sealed = malloc(n ? n : 1)))
            ret = tg_err_set(err, "audit bodies: out of memory");
        else if (n)
            memcpy(out->sealed, p, n);
        out->len = n;
    } else if (rc == SQLITE_DONE) {
        ret = TG_STORE_NOTFOUND;
    } else {
        ret = sq_fail(s, rc, "audit bodies", err);
    }
    sqlite3_reset(st);
    return ret;
}

static int sq_audit_bodies_each(tg_store_t *base,
                                int (*cb)(int64_t, const unsigned char *, size_t, void *), void *ud,
                                tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_body_each, err);
    if (!st) return -1;
    int rc = SQLITE_DONE, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ret = cb(sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                 (size_t)sqlite3_column_bytes(st, 1), ud);
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "audit bodies", err);
    sqlite3_reset(st);
    return ret;
}

static int sq_audit_body_reseal(tg_store_t *base, int64_t record_id, const unsigned char *from,
                                const unsigned char *to, size_t n, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = sq_stmt(s, &sql_body_reseal, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, record_id);
    sqlite3_bind_blob(st, 2, from, (int)n, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, to, (int)n, SQLITE_STATIC);
    int rc = sq_run(st);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "audit bodies reseal", err);
    if (sqlite3_changes(s->db) == 0) {
        tg_err_set(err, "audit record %lld: its bodies changed meanwhile or are gone",
                   (long long)record_id);
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

const struct tg_store_audit_ops sq_audit_ops = {
    .append = sq_audit_append,
    .head = sq_audit_head,
    .range = sq_audit_range,
    .find = sq_audit_find,
    .erase = sq_audit_erase,
    .purge = sq_audit_purge,
    .body_get = sq_audit_body_get,
    .bodies_each = sq_audit_bodies_each,
    .body_reseal = sq_audit_body_reseal,
};
