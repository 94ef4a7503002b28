/* SQLite store, events and aggregates (the event_ops of backend.h): usage_events,
 * usage_daily and api_keys.last_used_us, written by append(); purge, the usage reports
 * and the spend a budget reads.
 *
 * append() is the hot path (the writer thread, ~50 ms batches): one
 * BEGIN IMMEDIATE ... COMMIT per batch; cached INSERT OR IGNORE statements,
 * MULTI_ROWS events per statement where the ids are provably new and one by
 * one otherwise; aggregates summed in memory per (tenant, day) and written
 * with one UPSERT per group. Only rows actually inserted are counted, so
 * replaying a batch (spool, retry after an unknown commit outcome) counts
 * nothing twice. Measured with a throwaway program (50 tenants, a 2-core VM,
 * 5M events into a growing file): ~200k events/s in batches of 1000, ~270k
 * in batches of 4096. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/evbatch.h"
#include "store/maps.h"
#include "util/clock.h"

#define PURGE_CHUNK 5000 /* events per purge transaction */
#define MULTI_ROWS  32   /* events per multi-row INSERT on the fast path */

/* ---- the events INSERT, from one table of columns ----------------------------------- */

/* "INSERT OR IGNORE INTO usage_events (id, ts_us, ...) VALUES (?,...)" with rows rows
 * of EVB_NCOLS parameters: malloc'd, for sq_sql_t's build. */
static char *ev_insert_sql(int rows)
{
    static const char open[] = "INSERT OR IGNORE INTO usage_events (", close[] = ") VALUES ";
    char head[1024];
    int k = evb_column_list(head + sizeof open - 1, sizeof head - sizeof open - sizeof close);
    if (k < 0) return NULL;
    memcpy(head, open, sizeof open - 1);
    memcpy(head + sizeof open - 1 + k, close, sizeof close);
    return sq_rows_sql(head, EVB_NCOLS, rows, "");
}

static char *ev_insert_one_sql(void)
{
    return ev_insert_sql(1);
}

static char *ev_insert_multi_sql(void)
{
    return ev_insert_sql(MULTI_ROWS);
}

static const sq_sql_t sql_ev_insert = {.slot = ST_EV_INSERT, .build = ev_insert_one_sql};
static const sq_sql_t sql_ev_insert_multi = {.slot = ST_EV_INSERT_MULTI,
                                             .build = ev_insert_multi_sql};
static const sq_sql_t sql_ev_max_id = {.slot = ST_EV_MAX_ID,
                                       .sql = "SELECT max(id) FROM usage_events"};
static const sq_sql_t sql_ev_peek = {
    .slot = ST_EV_PEEK, .sql = "SELECT ts_us, request_id FROM usage_events WHERE id = ?1"};
static const sq_sql_t sql_daily_upsert = {
    .slot = ST_DAILY_UPSERT,
    .sql = "INSERT INTO usage_daily (tenant_id, day, requests, billable, failed, rejected, "
           "bytes_in, bytes_out, tokens_in, tokens_out, cost_micros, tokens_cached) VALUES (?1, "
           "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (tenant_id, day) DO UPDATE "
           "SET "
           "requests = requests + excluded.requests, billable = billable + excluded.billable, "
           "failed = failed + excluded.failed, rejected = rejected + excluded.rejected, "
           "bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out, "
           "tokens_in = tokens_in + excluded.tokens_in, "
           "tokens_out = tokens_out + excluded.tokens_out, "
           "cost_micros = cost_micros + excluded.cost_micros, "
           "tokens_cached = tokens_cached + excluded.tokens_cached"};
/* Ids are time-ordered, so a rowid-order scan meets the oldest events
 * first and each chunk reads little more than what it deletes. NOT INDEXED
 * keeps the planner off the (tenant, ts_us) index, whose order would not. */
static const sq_sql_t sql_purge_events = {
    .slot = ST_PURGE_EVENTS,
    .sql = "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events "
           "NOT INDEXED WHERE ts_us < ?1 ORDER BY id LIMIT ?2)"};
static const sq_sql_t sql_purge_daily = {.slot = ST_PURGE_DAILY,
                                         .sql = "DELETE FROM usage_daily WHERE day < ?1"};
static const sq_sql_t sql_spend = {
    .slot = ST_SPEND,
    .sql = "SELECT coalesce(sum(cost_micros), 0) FROM usage_daily WHERE tenant_id = ?1 "
           "AND day >= ?2 AND day <= ?3"};
/* Not an auth change: auth_version stays, no keyring reload follows. */
static const sq_sql_t sql_key_used = {.slot = ST_KEY_USED,
                                      .sql =
                                          "UPDATE api_keys SET last_used_us = ?2 WHERE id = ?1 AND "
                                          "(last_used_us IS NULL OR last_used_us < ?2)"};

static void bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

/* Makes room for a batch of n; before the transaction, so a failure writes
 * nothing. */
static int scratch_reserve(sq_store_t *s, size_t n)
{
    if (n > UINT32_MAX / 4) return -1;
    if (n > s->aggs_cap) {
        agg_t *a = realloc(s->aggs, n * sizeof *a);
        if (!a) return -1;
        s->aggs = a;
        fast_ev_t *f = realloc(s->fast, n * sizeof *f);
        if (!f) return -1;
        s->fast = f;
        unsigned char *d = realloc(s->done, n);
        if (!d) return -1;
        s->done = d;
        int64_t *st = realloc(s->stored, n * sizeof *st);
        if (!st) return -1;
        s->stored = st;
        s->aggs_cap = n;
    }
    size_t want = 16;
    while (want < 2 * n)
        want *= 2;
    if (want > s->slots_cap) {
        uint32_t *sl = realloc(s->slots, want * sizeof *sl);
        if (!sl) return -1;
        s->slots = sl;
        s->slots_cap = want;
    }
    return 0;
}

/* Binds ev to parameters b+1 .. b+EVB_NCOLS, as evb_cols says. */
static void bind_event(sqlite3_stmt *st, int b, const tg_event_t *ev, int64_t id)
{
    /* Unrolled, the table being constant, the compiler folds each column's case: the same
     * code as 27 calls written out (bench_recorder under callgrind: 22,482 instructions an
     * event written out, 22,834 as a loop, 22,483 unrolled). */
#pragma GCC unroll 32
    for (int i = 0; i < EVB_NCOLS; i++) {
        const evb_col_t *c = &evb_cols[i];
        const char *f = (const char *)ev + c->off;
        int at = b + i + 1;
        switch (c->kind) {
        case EW_ID: sqlite3_bind_int64(st, at, id); break;
        case EW_INT64: sqlite3_bind_int64(st, at, *(const int64_t *)(const void *)f); break;
        case EW_INT: sqlite3_bind_int(st, at, *(const int32_t *)(const void *)f); break;
        case EW_TEXT: sq_bind_field(st, at, f, c->size, 0); break;
        case EW_TEXT_OPT: sq_bind_field(st, at, f, c->size, 1); break;
        case EW_TOKENS: bind_opt_int(st, at, *(const int64_t *)(const void *)f); break;
        case EW_OUTCOME:
            sqlite3_bind_text(st, at, evb_outcome_text(*(const int32_t *)(const void *)f), -1,
                              SQLITE_STATIC);
            break;
        case EW_COUNT: sqlite3_bind_int64(st, at, tg_event_count(ev)); break;
        case EW_SOURCE:
            if (*f)
                sq_bind_field(st, at, f, c->size, 0);
            else
                sqlite3_bind_text(st, at, "gateway", 7, SQLITE_STATIC);
            break;
        }
    }
}

/* After an ignored insert: is the stored row with this id the same event (a
 * replay: skip it) or another event that drew the same id (another process,
 * same millisecond, same 22 low bits: keep both)? Same ts and request id =
 * same event. Returns 1 same, 0 different, -2 no such row, or an SQLite error. */
static int same_event(sqlite3_stmt *peek, const tg_event_t *ev, int64_t id)
{
    sqlite3_bind_int64(peek, 1, id);
    int rc = sqlite3_step(peek), ret;
    if (rc == SQLITE_ROW) {
        const unsigned char *rid = sqlite3_column_text(peek, 1);
        size_t len = strnlen(ev->request_id, sizeof ev->request_id);
        int rid_same = rid ? (size_t)sqlite3_column_bytes(peek, 1) == len &&
                                 memcmp(rid, ev->request_id, len) == 0
                           : len == 0;
        ret = sqlite3_column_int64(peek, 0) == ev->ts_us && rid_same;
    } else {
        ret = rc == SQLITE_DONE ? -2 : rc;
    }
    sqlite3_reset(peek);
    return ret;
}

/* api_keys.last_used_us: the newest authenticated request of each key in the batch
 * (evb_keys_used). max() keeps a replayed batch harmless. */
static int key_used(void *ud, const char *key_id, int64_t ts)
{
    sqlite3_stmt *st = ud;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ts);
    return sq_run(st);
}

static int mark_keys_used(sq_store_t *s, const ev_run_t *evs, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_key_used, err);
    if (!st) return SQLITE_ERROR;
    return evb_keys_used(evs, key_used, st);
}

/* The append's statements, prepared before its transaction. */
typedef struct append_st {
    sqlite3_stmt *ins, *multi, *maxid, *peek, *up;
} append_st_t;

/* Prepares the statements and the scratch space for a batch of n. 0, or -1 / TG_STORE_BUSY
 * (nothing begun). */
static int append_prepare(sq_store_t *s, size_t n, append_st_t *a, tg_err_t *err)
{
    a->ins = sq_stmt(s, &sql_ev_insert, err);
    a->multi = a->ins ? sq_stmt(s, &sql_ev_insert_multi, err) : NULL;
    a->maxid = a->multi ? sq_stmt(s, &sql_ev_max_id, err) : NULL;
    a->peek = a->maxid ? sq_stmt(s, &sql_ev_peek, err) : NULL;
    a->up = a->peek ? sq_stmt(s, &sql_daily_upsert, err) : NULL;
    if (!a->up) return s->shm.lost ? TG_STORE_BUSY : -1; /* busy: the recorder spools */
    if (scratch_reserve(s, n) != 0) return tg_err_set(err, "append: out of memory");
    memset(s->slots, 0, s->slots_cap * sizeof *s->slots);
    memset(s->done, 0, n);
    memset(s->stored, 0, n * sizeof *s->stored);
    return 0;
}

/* Inside the caller's transaction: inserts evs and updates usage_daily; *inserted says
 * how many were new. 0, or an error after rolling the transaction back. */
static int append_txn(sq_store_t *s, const append_st_t *a, const ev_run_t *evs, size_t *inserted,
                      tg_err_t *err)
{
    sqlite3_stmt *ins = a->ins, *multi = a->multi, *maxid = a->maxid, *peek = a->peek, *up = a->up;
    size_t added = 0, n = evs->n;
    evb_groups_t gs = {s->aggs, 0, s->slots, s->slots_cap};
    int rc = SQLITE_OK, ret;

    /* Fast path. An id above the largest stored one cannot be taken (we hold
     * the write lock, so nobody adds one meanwhile), and sorting makes ids
     * repeated within the batch adjacent: those events are certain to insert,
     * so they go MULTI_ROWS per statement, which saves a fifth of the CPU of
     * one statement per event, and in id order, which appends to the b-tree.
     * Everything else (replays, repeats, a short tail) takes the general path
     * below, event by event. */
    rc = sqlite3_step(maxid);
    int64_t max_id = rc == SQLITE_ROW && sqlite3_column_type(maxid, 0) != SQLITE_NULL
                         ? sqlite3_column_int64(maxid, 0)
                         : INT64_MIN;
    sqlite3_reset(maxid);
    if (rc != SQLITE_ROW) goto fail;
    size_t nfast = 0;
    for (size_t i = 0; i < n; i++)
        if (!ev_skip(evs, i) && ev_at(evs, i)->id > max_id)
            s->fast[nfast++] = (fast_ev_t){ev_at(evs, i)->id, (uint32_t)i};
    evb_sort(s->fast, nfast);
    size_t u = 0; /* unique ids, compacted to the front */
    for (size_t j = 0; j < nfast; j++)
        if (u == 0 || s->fast[j].id != s->fast[u - 1].id) s->fast[u++] = s->fast[j];
    for (size_t j = 0; j + MULTI_ROWS <= u; j += MULTI_ROWS) {
        for (int r = 0; r < MULTI_ROWS; r++) {
            const tg_event_t *ev = ev_at(evs, s->fast[j + r].idx);
            bind_event(multi, r * EVB_NCOLS, ev, ev->id);
        }
        if ((rc = sq_run(multi)) != SQLITE_OK) goto fail;
        if (sqlite3_changes(s->db) != MULTI_ROWS) {
            tg_err_set(err, "append: fast path inserted %d of %d events", sqlite3_changes(s->db),
                       MULTI_ROWS);
            sq_rollback(s);
            return -1;
        }
        for (int r = 0; r < MULTI_ROWS; r++) {
            s->done[s->fast[j + r].idx] = 1;
            s->stored[s->fast[j + r].idx] = s->fast[j + r].id;
            evb_agg_add(&gs, ev_at(evs, s->fast[j + r].idx));
        }
        added += MULTI_ROWS;
        tg_store_pace(&s->base);
    }

    for (size_t i = 0; i < n; i++) {
        if (s->done[i] || ev_skip(evs, i)) continue;
        const tg_event_t *ev = ev_at(evs, i);
        int64_t id = ev->id;
        for (int attempt = 0;; attempt++) {
            bind_event(ins, 0, ev, id);
            rc = sq_run(ins);
            if (rc != SQLITE_OK) goto fail;
            if (sqlite3_changes(s->db) == 1) {
                s->stored[i] = id;
                added++;
                evb_agg_add(&gs, ev);
                break;
            }
            int same = same_event(peek, ev, id);
            if (same == 1) break; /* already stored: a replay */
            if (same == -2) {
                tg_err_set(err, "append: event %lld refused by a constraint", (long long)id);
                sq_rollback(s);
                return -1;
            }
            if (same != 0) {
                rc = same;
                goto fail;
            }
            if (attempt == EVB_MAX_ID_RETRIES) {
                tg_err_set(err, "append: no free id for event %lld", (long long)ev->id);
                sq_rollback(s);
                return -1;
            }
            id = evb_next_id(ev, ev->id, attempt + 1);
        }
    }

    for (size_t g = 0; g < gs.n; g++) {
        const agg_t *a = &s->aggs[g];
        char day[11];
        tg_utc_day(a->day * EVB_DAY_US, day);
        sqlite3_bind_text(up, 1, a->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, day, 10, SQLITE_STATIC);
        sqlite3_bind_int64(up, 3, a->requests);
        sqlite3_bind_int64(up, 4, a->billable);
        sqlite3_bind_int64(up, 5, a->failed);
        sqlite3_bind_int64(up, 6, a->rejected);
        sqlite3_bind_int64(up, 7, a->bytes_in);
        sqlite3_bind_int64(up, 8, a->bytes_out);
        sqlite3_bind_int64(up, 9, a->tokens_in);
        sqlite3_bind_int64(up, 10, a->tokens_out);
        sqlite3_bind_int64(up, 11, a->cost_micros);
        sqlite3_bind_int64(up, 12, a->tokens_cached);
        rc = sq_run(up);
        if (rc != SQLITE_OK) goto fail;
    }

    rc = mark_keys_used(s, evs, err);
    if (rc != SQLITE_OK) goto fail;
    *inserted = added;
    return 0;

fail:
    ret = sq_fail(s, rc, "append", err);
    sq_rollback(s);
    return ret;
}

static int sq_append(tg_store_t *base, const tg_event_t *evs, size_t n, size_t *inserted,
                     tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (inserted) *inserted = 0;
    if (n == 0) return 0;
    append_st_t a;
    int ret = append_prepare(s, n, &a, err);
    if (ret != 0) return ret;
    if ((ret = sq_begin(s, "append", err)) != 0) return ret;
    size_t added = 0;
    ev_run_t run = {(const char *)evs, sizeof *evs, n, NULL};
    if ((ret = append_txn(s, &a, &run, &added, err)) != 0) return ret;
    if ((ret = sq_audit_calls(s, &run, s->stored, err)) != 0) {
        sq_rollback(s);
        return ret;
    }
    ret = sq_commit(s, "append", err);
    if (ret == 0 && inserted) *inserted = added;
    return ret;
}

/* ---- ingested records (tg_store_ingest) --------------------------------------------- */

#define SEEN_ROWS        32 /* digests per multi-row INSERT into ingest_seen */
#define SEEN_EXACT_AFTER 16 /* batches marked with RETURNING after a mixed one */

/* "INSERT OR IGNORE INTO ingest_seen (ts_us, digest) VALUES (?,?),..." of SEEN_ROWS rows,
 * with "RETURNING ts_us, digest" when returning: RETURNING yields the rows actually
 * inserted, so one statement tells which of 32 records are new (a fifth less CPU than a
 * statement per record). Without it, the change count alone says "all new" or "none". */
static char *seen_multi_sql_as(int returning)
{
    return sq_rows_sql("INSERT OR IGNORE INTO ingest_seen (ts_us, digest) VALUES ", 2, SEEN_ROWS,
                       returning ? " RETURNING ts_us, digest" : "");
}

static char *seen_multi_sql(void)
{
    return seen_multi_sql_as(1);
}

static char *seen_plain_sql(void)
{
    return seen_multi_sql_as(0);
}

static const sq_sql_t sql_ingest_seen = {
    .slot = ST_INGEST_SEEN,
    .sql = "INSERT OR IGNORE INTO ingest_seen (ts_us, digest) VALUES (?1, ?2)"};
static const sq_sql_t sql_ingest_seen_multi = {.slot = ST_INGEST_SEEN_MULTI,
                                               .build = seen_multi_sql};
static const sq_sql_t sql_ingest_seen_plain = {.slot = ST_INGEST_SEEN_PLAIN,
                                               .build = seen_plain_sql};
static const sq_sql_t sql_ingest_unknown = {
    .slot = ST_INGEST_UNKNOWN,
    .sql = "INSERT INTO ingest_unknown_keys (sha256, prefix, source, records, first_us, "
           "last_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sha256) DO UPDATE SET "
           "records = records + excluded.records, first_us = min(first_us, excluded.first_us), "
           "last_us = max(last_us, excluded.last_us)"};

/* The unknown keys of a batch's new records, summed per key before they are written (a
 * log repeats its few unknown keys; one upsert each per batch, not per record). */
typedef struct unk_sum {
    const tg_ingest_item_t *it; /* the first record with the key: its hash and prefix */
    int64_t records, first_us, last_us;
} unk_sum_t;
#define UNK_MAX 64

static int unk_flush(sqlite3_stmt *st, unk_sum_t *u, size_t *nu)
{
    for (size_t i = 0; i < *nu; i++) {
        sqlite3_bind_blob(st, 1, u[i].it->key_sha256, 32, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, u[i].it->key_prefix, -1, SQLITE_STATIC);
        sq_bind_field(st, 3, u[i].it->ev.source, sizeof u[i].it->ev.source, 0);
        sqlite3_bind_int64(st, 4, u[i].records);
        sqlite3_bind_int64(st, 5, u[i].first_us);
        sqlite3_bind_int64(st, 6, u[i].last_us);
        int rc = sq_run(st);
        if (rc != SQLITE_OK) return rc;
    }
    *nu = 0;
    return SQLITE_OK;
}

static int unk_add(sqlite3_stmt *st, unk_sum_t *u, size_t *nu, const tg_ingest_item_t *it)
{
    int64_t ts = it->ev.ts_us;
    for (size_t i = 0; i < *nu; i++)
        if (memcmp(u[i].it->key_sha256, it->key_sha256, 32) == 0) {
            u[i].records++;
            if (ts < u[i].first_us) u[i].first_us = ts;
            if (ts > u[i].last_us) u[i].last_us = ts;
            return SQLITE_OK;
        }
    if (*nu == UNK_MAX) {
        int rc = unk_flush(st, u, nu);
        if (rc != SQLITE_OK) return rc;
    }
    u[(*nu)++] = (unk_sum_t){it, 1, ts, ts};
    return SQLITE_OK;
}

/* Marks in isnew[] which of the n items (n == SEEN_ROWS) the multi-row insert took. */
static int seen_chunk(sqlite3_stmt *st, const tg_ingest_item_t *items, unsigned char *isnew)
{
    for (int r = 0; r < SEEN_ROWS; r++) {
        sqlite3_bind_int64(st, 2 * r + 1, items[r].ev.ts_us);
        sqlite3_bind_blob(st, 2 * r + 2, items[r].digest, 32, SQLITE_STATIC);
        isnew[r] = 0;
    }
    int rc, next = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t ts = sqlite3_column_int64(st, 0);
        const void *d = sqlite3_column_blob(st, 1);
        if (!d || sqlite3_column_bytes(st, 1) != 32) continue;
        /* Rows usually come back in the order given; a record repeated within the chunk
         * was inserted once: the first unmarked match is it. */
        for (int k = 0; k < SEEN_ROWS; k++) {
            int r = (next + k) % SEEN_ROWS;
            if (!isnew[r] && items[r].ev.ts_us == ts && memcmp(items[r].digest, d, 32) == 0) {
                isnew[r] = 1;
                next = r + 1;
                break;
            }
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The statements that mark which records of a batch are new. */
typedef struct seen_st {
    sqlite3_stmt *one, *multi, *plain;
} seen_st_t;

/* Marks isnew[] for items[0..n), inserting their (time, digest) rows. Chunks of SEEN_ROWS
 * go through the plain statement unless exact: a chunk that inserts all its rows is all
 * new, one that inserts none is all seen before (RETURNING's per-row answer was nearly two
 * thirds of the statement, 4.7k of 7.5k instructions a record under callgrind: it runs as a
 * trigger, row by row, into a temporary table). Any other
 * count (a chunk mixing old and new records, or repeating one) sets *mixed and stops: the
 * caller rolls the transaction back and marks the batch again with exact set, where
 * RETURNING says which rows were taken. */
static int seen_mark(sq_store_t *s, const seen_st_t *st, const tg_ingest_item_t *items, size_t n,
                     unsigned char *isnew, int exact, int *mixed)
{
    int rc;
    size_t i = 0;
    *mixed = 0;
    for (; i + SEEN_ROWS <= n; i += SEEN_ROWS) {
        if (exact) {
            if ((rc = seen_chunk(st->multi, items + i, isnew + i)) != SQLITE_OK) return rc;
            continue;
        }
        for (int r = 0; r < SEEN_ROWS; r++) {
            sqlite3_bind_int64(st->plain, 2 * r + 1, items[i + r].ev.ts_us);
            sqlite3_bind_blob(st->plain, 2 * r + 2, items[i + r].digest, 32, SQLITE_STATIC);
        }
        if ((rc = sq_run(st->plain)) != SQLITE_OK) return rc;
        int taken = sqlite3_changes(s->db);
        if (taken != 0 && taken != SEEN_ROWS) {
            *mixed = 1;
            return SQLITE_OK;
        }
        memset(isnew + i, taken == SEEN_ROWS, SEEN_ROWS);
    }
    for (; i < n; i++) {
        sqlite3_bind_int64(st->one, 1, items[i].ev.ts_us);
        sqlite3_bind_blob(st->one, 2, items[i].digest, 32, SQLITE_STATIC);
        if ((rc = sq_run(st->one)) != SQLITE_OK) return rc;
        isnew[i] = sqlite3_changes(s->db) == 1;
    }
    return SQLITE_OK;
}

/* One transaction: each record whose (time, digest) is not in ingest_seen gets its row there
 * and its event appended (usage_daily with it); the others are duplicates. A record and
 * its digest are stored together or not at all, so a failed batch is retried by ingesting
 * the file again. */
static int sq_ingest(tg_store_t *base, const tg_ingest_item_t *items, size_t n, size_t *inserted,
                     size_t *duplicates, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    *inserted = *duplicates = 0;
    if (n == 0) return 0;
    /* The connection ingesting a log is a bulk loader: with SQLite's default 2 MB cache most
     * page visits of the growing events index and ingest_seen were preads from the OS
     * (perf: a third of the run). 128 MiB, this connection only; the gateway's writer
     * never calls ingest(). */
    if (!s->bulk) {
        sqlite3_exec(s->db, "PRAGMA cache_size = -131072", NULL, NULL, NULL);
        s->bulk = 1;
    }
    if (n > s->isnew_cap) {
        unsigned char *m = realloc(s->isnew, n);
        if (!m) return tg_err_set(err, "ingest: out of memory");
        s->isnew = m;
        s->isnew_cap = n;
    }
    unsigned char *isnew = s->isnew;
    unk_sum_t unk[UNK_MAX];
    size_t nunk = 0;
    append_st_t a;
    int ret = append_prepare(s, n, &a, err);
    seen_st_t seen;
    seen.one = ret == 0 ? sq_stmt(s, &sql_ingest_seen, err) : NULL;
    seen.multi = seen.one ? sq_stmt(s, &sql_ingest_seen_multi, err) : NULL;
    seen.plain = seen.multi ? sq_stmt(s, &sql_ingest_seen_plain, err) : NULL;
    sqlite3_stmt *unkst = seen.plain ? sq_stmt(s, &sql_ingest_unknown, err) : NULL;
    if (!unkst) return ret ? ret : -1;
    if ((ret = sq_begin(s, "ingest", err)) != 0) return ret;
    size_t added = 0;
    int mixed;
    /* After a mixed batch the next SEEN_EXACT_AFTER go straight to RETURNING: a log whose
     * identical lines recur (one client's same request twice in a second) would otherwise
     * pay for both passes batch after batch. */
    int exact = s->seen_exact > 0;
    if (exact) s->seen_exact--;
    int rc = seen_mark(s, &seen, items, n, isnew, exact, &mixed);
    if (rc == SQLITE_OK && mixed) {
        s->seen_exact = SEEN_EXACT_AFTER;
        sq_rollback(s);
        if ((ret = sq_begin(s, "ingest", err)) != 0) return ret;
        rc = seen_mark(s, &seen, items, n, isnew, 1, &mixed);
    }
    if (rc != SQLITE_OK) goto fail;
    for (size_t i = 0; i < n; i++) {
        if (!isnew[i]) continue; /* seen before: a duplicate */
        if (items[i].key_prefix[0] && (rc = unk_add(unkst, unk, &nunk, &items[i])) != SQLITE_OK)
            goto fail;
    }
    if ((rc = unk_flush(unkst, unk, &nunk)) != SQLITE_OK) goto fail;
    /* append_txn skips an event only when a stored one has its id, time and request id:
     * the same request (a gateway event rebuilt from the access log), so a duplicate too. */
    ev_run_t run = {(const char *)&items[0].ev, sizeof *items, n, isnew};
    if ((ret = append_txn(s, &a, &run, &added, err)) != 0) return ret;
    if ((ret = sq_commit(s, "ingest", err)) == 0) {
        *inserted = added;
        *duplicates = n - added;
    }
    return ret;
fail:
    ret = sq_fail(s, rc, "ingest", err);
    sq_rollback(s);
    return ret;
}

static int sq_purge(tg_store_t *base, int64_t events_before_us, const char *agg_before_day,
                    int64_t *deleted, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int64_t total = 0;
    int ret = 0, rc;
    if (deleted) *deleted = 0;

    if (events_before_us) {
        sqlite3_stmt *st = sq_stmt(s, &sql_purge_events, err);
        if (!st) return s->shm.lost ? TG_STORE_BUSY : -1;
        for (;;) {
            if ((ret = sq_begin(s, "purge", err)) != 0) goto out;
            sqlite3_bind_int64(st, 1, events_before_us);
            sqlite3_bind_int(st, 2, PURGE_CHUNK);
            if ((rc = sq_run(st)) != SQLITE_OK) {
                ret = sq_fail(s, rc, "purge", err);
                sq_rollback(s);
                goto out;
            }
            int64_t n = sqlite3_changes(s->db);
            if ((ret = sq_commit(s, "purge", err)) != 0) goto out;
            total += n;
            if (n < PURGE_CHUNK) break;
        }
        /* The alarm history follows the events' retention. */
        if ((ret = sq_alarm_events_purge(s, events_before_us, &total, err)) != 0) goto out;
    }
    if (agg_before_day) {
        sqlite3_stmt *st = sq_stmt(s, &sql_purge_daily, err);
        if (!st) {
            ret = -1;
            goto out;
        }
        if ((ret = sq_begin(s, "purge", err)) != 0) goto out;
        sqlite3_bind_text(st, 1, agg_before_day, -1, SQLITE_STATIC);
        if ((rc = sq_run(st)) != SQLITE_OK) {
            ret = sq_fail(s, rc, "purge", err);
            sq_rollback(s);
            goto out;
        }
        int64_t n = sqlite3_changes(s->db);
        if ((ret = sq_commit(s, "purge", err)) != 0) goto out;
        total += n;
    }
out:
    if (deleted) *deleted = total; /* committed chunks stay deleted on error */
    return ret;
}

/* Reports are read rarely, so their SQL is built per call: with the tenant
 * filter only when given, so SQLite can use the (tenant, ts_us) index. */
static int sq_usage(tg_store_t *base, const tg_usage_query_t *q,
                    int (*cb)(const tg_usage_row_t *, void *), void *ud, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    char sql[1536], cols[1024];
    char from_day[11], to_day[11];

    if (q->by == TG_BY_DAY) {
        /* Days are whole: from is the day holding from_us, to the day before
         * the (exclusive) to_us. */
        if (q->from_us) tg_utc_day(q->from_us, from_day);
        if (q->to_us) tg_utc_day(q->to_us - 1, to_day);
        if (tg_rowmap_select(&tg_map_usage_daily, NULL, cols, sizeof cols) < 0)
            return tg_err_set(err, "usage: column list too long");
        snprintf(sql, sizeof sql,
                 "SELECT %s FROM usage_daily WHERE %s"
                 "(?2 IS NULL OR day >= ?2) AND (?3 IS NULL OR day <= ?3) "
                 "ORDER BY tenant_id, day",
                 cols, q->tenant ? "tenant_id = ?1 AND " : "");
    } else {
        const char *grp;
        switch (q->by) {
        case TG_BY_HOUR:
            grp = "strftime('%Y-%m-%dT%H:00Z', (ts_us / 3600000000) * 3600, 'unixepoch')";
            break;
        case TG_BY_ROUTE: grp = "coalesce(route, '')"; break;
        case TG_BY_KEY: grp = "coalesce(key_id, '')"; break;
        case TG_BY_MODEL: grp = "coalesce(model, '')"; break;
        case TG_BY_TOOL: grp = "coalesce(tool, '')"; break;
        default: return tg_err_set(err, "usage: unknown grouping %d", (int)q->by);
        }
        if (tg_rowmap_select(&tg_map_usage_events, grp, cols, sizeof cols) < 0)
            return tg_err_set(err, "usage: column list too long");
        snprintf(sql, sizeof sql,
                 "SELECT %s FROM usage_events WHERE %sts_us >= ?2 AND ts_us < ?3 "
                 "GROUP BY tenant, grp ORDER BY tenant, grp",
                 cols, q->tenant ? "tenant = ?1 AND " : "");
    }

    sqlite3_stmt *st = NULL;
    if (tg_walshm_check(&s->shm, err) != 0) return TG_STORE_BUSY;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "usage", err);
    if (q->tenant) sqlite3_bind_text(st, 1, q->tenant, -1, SQLITE_STATIC);
    if (q->by == TG_BY_DAY) {
        if (q->from_us) sqlite3_bind_text(st, 2, from_day, 10, SQLITE_STATIC);
        if (q->to_us) sqlite3_bind_text(st, 3, to_day, 10, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 2, q->from_us ? q->from_us : INT64_MIN);
        sqlite3_bind_int64(st, 3, q->to_us ? q->to_us : INT64_MAX);
    }

    int ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        tg_usage_row_t r;
        sq_read_row(st, q->by == TG_BY_DAY ? &tg_map_usage_daily : &tg_map_usage_events, &r);
        if (!r.tenant) r.tenant = "";
        if (!r.group) r.group = "";
        ret = cb(&r, ud);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, "usage", err);
    sqlite3_finalize(st);
    return ret;
}

/* A read of the (tenant_id, day) primary key: at most 31 rows for a month. */
static int sq_spend(tg_store_t *base, const char *tenant, const char *from_day, const char *to_day,
                    int64_t *micros, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    *micros = 0;
    if (!tenant || !from_day || !to_day) return tg_err_set(err, "spend: missing argument");
    sqlite3_stmt *st = sq_stmt(s, &sql_spend, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, from_day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, to_day, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        *micros = sqlite3_column_int64(st, 0);
    else
        ret = sq_fail(s, rc, "spend", err);
    sqlite3_reset(st);
    return ret;
}

/* This concern's row mappings, for the schema test (sq_maps in sqlite.c). */
const tg_rowmap_t *const sq_event_maps[] = {&tg_map_usage_daily, &tg_map_usage_events, NULL};

const struct tg_store_event_ops sq_event_ops = {
    .append = sq_append,
    .ingest = sq_ingest,
    .purge = sq_purge,
    .usage = sq_usage,
    .spend = sq_spend,
};
