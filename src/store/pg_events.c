/* PostgreSQL store, events and aggregates (the event_ops of backend.h): usage_events,
 * usage_daily and api_keys.last_used_us, written by append(); ingest, purge, the usage
 * reports and the spend a budget reads. The SQLite twin (sqlite_events.c) is the reference:
 * same results, same replays, same collisions; what both share is in evbatch.c.
 *
 * append() is the writer's hot path (batches of up to ~4096 events every ~50 ms). One
 * transaction per batch (per half of a batch of SPLIT_MIN events or more: "the second
 * writer" below):
 *   1. before it, each month the batch's ids fall in gets its partition
 *      (tg_usage_partition, in its own short transaction; cached per connection);
 *   2. the batch, sorted by id with repeated ids left out, is COPYed (binary format)
 *      straight into usage_events under a savepoint; a unique violation (a replay, an id
 *      another gateway drew too) undoes it, and that batch and the next STAGE_AFTER go
 *      through a temporary staging table (ON COMMIT DELETE ROWS, made once per session)
 *      and INSERT INTO usage_events SELECT ... ON CONFLICT (id) DO NOTHING RETURNING id,
 *      which says which events are new;
 *   3. if some were not, one query finds those whose id is held by a DIFFERENT event (same
 *      id, another time or request id: another gateway drew the same id); they and the
 *      repeated ids take the path of sqlite_events.c, event by event: the next id of
 *      evb_next_id's deterministic sequence until one is free or holds the same event, so
 *      a replay of the batch finds its earlier copies;
 *   4. usage_daily gets one upsert per (tenant, day) of the events actually inserted,
 *      summed in C, in (tenant, day) order so two writers lock its rows in the same order;
 *      api_keys.last_used_us as in SQLite.
 * Two gateways appending at once: ON CONFLICT waits for the other transaction holding an
 * id and then skips or inserts; a deadlock between them (two batches locking the same ids
 * in another order) is SQLSTATE 40P01, TG_STORE_BUSY: the recorder replays the batch and
 * counts nothing twice. Measured in bench/RESULTS.md (bench/recorder/run.sh with
 * TG_BENCH_PG). Multi-row INSERTs of 32 events were ~25% slower than COPY there. */
#include "store/pg_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/evbatch.h"
#include "store/maps.h"
#include "util/clock.h"
#include "util/log.h"

#define PURGE_CHUNK  5000         /* events per purge transaction */
#define MONTHS_MAX   32           /* months whose partitions this connection knows exist */
#define COPY_FLUSH   (256 * 1024) /* COPY data sent in pieces of about this size */
#define EPOCH2020_MS 1577836800000LL
#define STAGE_AFTER  8    /* batches staged after one that met a stored id */
#define SPLIT_MIN    1024 /* a batch of this many events or more: two halves, two connections */
#define TWIN_RETRY   64   /* large batches appended alone before a refused twin is tried again */
#define AHEAD_RETRY  64   /* batches before a month that could not be made ahead is tried again */
/* The months ahead are made up to the last ids there are (ids end in 2089): a month whose
 * end, 62 days on, would not fit in an id is not made ahead. */
#define AHEAD_MAX_ID (((INT64_MAX >> EVB_ID_LOW_BITS) - 62LL * 86400000) << EVB_ID_LOW_BITS)
/* A COPY tuple's longest encoding: the text fields, a length and 8 bytes a column. */
#define ROW_MAX (sizeof(tg_event_t) + 16 * EVB_NCOLS)
/* pg_audit.c's tuples (call records) are copied through the same buffer. */
#define COPY_ROW_MAX (ROW_MAX > PG_AUDIT_ROW_MAX ? ROW_MAX : PG_AUDIT_ROW_MAX)

/* The months known to have their partition: [lo, hi) ranges of ids. */
typedef struct month {
    int64_t lo, hi;
} month_t;

struct pg_events {
    /* append() scratch, kept between calls: groups and their index, the batch sorted by
     * id, which events were inserted, the COPY buffer, ingest's marks */
    agg_t *aggs;
    uint32_t *slots;
    size_t cap, slots_cap;
    fast_ev_t *fast;
    unsigned char *done;
    int64_t *stored; /* per event: the id append_txn inserted it under; 0 = not (a replay) */
    char *copy;
    unsigned char *isnew;
    month_t months[MONTHS_MAX];
    struct twin *twin;   /* the second writer (append_split), NULL until a large batch */
    unsigned twin_wait;  /* large batches to append alone before opening it again */
    unsigned ahead_wait; /* batches before next month's partition is tried again */
    size_t nmonths;
    int stage_pid;       /* the backend whose session holds the staging tables; 0 = none */
    unsigned stage_next; /* batches left to stage before COPY straight in is tried again */
};

/* ---- statements ---------------------------------------------------------------------- */

static char *stage_insert_sql(void)
{
    char cols[1024];
    if (evb_column_list(cols, sizeof cols) < 0) return NULL;
    size_t cap = 2 * sizeof cols + 200;
    char *sql = malloc(cap);
    if (sql)
        snprintf(sql, cap,
                 "INSERT INTO usage_events (%s) SELECT %s FROM pg_temp.tg_stage "
                 "ON CONFLICT (id) DO NOTHING RETURNING id",
                 cols, cols);
    return sql;
}

static char *insert_one_sql(void)
{
    char cols[1024], vals[256];
    if (evb_column_list(cols, sizeof cols) < 0) return NULL;
    size_t o = 0;
    for (int i = 0; i < EVB_NCOLS; i++)
        o += (size_t)snprintf(vals + o, sizeof vals - o, "%s$%d", i ? ", " : "", i + 1);
    size_t cap = sizeof cols + sizeof vals + 120;
    char *sql = malloc(cap);
    if (sql)
        snprintf(sql, cap,
                 "INSERT INTO usage_events (%s) VALUES (%s) ON CONFLICT (id) DO NOTHING "
                 "RETURNING id",
                 cols, vals);
    return sql;
}

static const pg_sql_t sql_partition = {.slot = PS_EV_PARTITION,
                                       .sql = "SELECT tg_usage_partition($1)"};
static const pg_sql_t sql_stage_insert = {.slot = PS_EV_STAGE_INSERT, .build = stage_insert_sql};
/* The staged events whose id a different event holds (another time or request id). */
static const pg_sql_t sql_stage_clash = {
    .slot = PS_EV_STAGE_CLASH,
    .sql = "SELECT s.id FROM pg_temp.tg_stage s JOIN usage_events e ON e.id = s.id "
           "WHERE e.ts_us <> s.ts_us OR e.request_id IS DISTINCT FROM s.request_id"};
static const pg_sql_t sql_insert_one = {.slot = PS_EV_INSERT_ONE, .build = insert_one_sql};
static const pg_sql_t sql_peek = {
    .slot = PS_EV_PEEK, .sql = "SELECT ts_us, request_id FROM usage_events WHERE id = $1"};
static const pg_sql_t sql_daily_upsert = {
    .slot = PS_DAILY_UPSERT,
    .sql = "INSERT INTO usage_daily AS d (tenant_id, day, requests, billable, failed, rejected, "
           "bytes_in, bytes_out, tokens_in, tokens_out, cost_micros, tokens_cached) VALUES ($1, "
           "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (tenant_id, day) DO UPDATE "
           "SET requests = d.requests + excluded.requests, "
           "billable = d.billable + excluded.billable, failed = d.failed + excluded.failed, "
           "rejected = d.rejected + excluded.rejected, bytes_in = d.bytes_in + excluded.bytes_in, "
           "bytes_out = d.bytes_out + excluded.bytes_out, "
           "tokens_in = d.tokens_in + excluded.tokens_in, "
           "tokens_out = d.tokens_out + excluded.tokens_out, "
           "cost_micros = d.cost_micros + excluded.cost_micros, "
           "tokens_cached = d.tokens_cached + excluded.tokens_cached"};
/* Not an auth change: auth_version stays, no keyring reload follows. */
static const pg_sql_t sql_key_used = {.slot = PS_KEY_USED,
                                      .sql =
                                          "UPDATE api_keys SET last_used_us = $2 WHERE id = $1 AND "
                                          "(last_used_us IS NULL OR last_used_us < $2)"};
/* The first item of each (time, digest) the insert took: the records new to the store. */
static const pg_sql_t sql_ingest_seen = {
    .slot = PS_INGEST_SEEN,
    .sql = "WITH ins AS (INSERT INTO ingest_seen (ts_us, digest) SELECT ts_us, digest FROM "
           "pg_temp.tg_seen_stage ORDER BY n ON CONFLICT DO NOTHING RETURNING ts_us, digest) "
           "SELECT min(s.n) FROM pg_temp.tg_seen_stage s JOIN ins USING (ts_us, digest) "
           "GROUP BY s.ts_us, s.digest"};
static const pg_sql_t sql_ingest_unknown = {
    .slot = PS_INGEST_UNKNOWN,
    .sql = "INSERT INTO ingest_unknown_keys AS u (sha256, prefix, source, records, first_us, "
           "last_us) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO UPDATE SET "
           "records = u.records + excluded.records, first_us = least(u.first_us, "
           "excluded.first_us), last_us = greatest(u.last_us, excluded.last_us)"};
static const pg_sql_t sql_purge_drop = {.slot = PS_PURGE_DROP,
                                        .sql = "SELECT tg_usage_drop_before($1)"};
/* Is any event in the months before $1 (the first id of the cutoff's month) as recent as
 * the cutoff $2? Then dropping those months would lose it: their rows go by DELETE. */
static const pg_sql_t sql_purge_misplaced = {
    .slot = PS_PURGE_MISPLACED,
    .sql = "SELECT EXISTS (SELECT 1 FROM usage_events WHERE id >= 0 AND id < $1 AND "
           "ts_us >= $2)"};
static const pg_sql_t sql_purge_events = {
    .slot = PS_PURGE_EVENTS,
    .sql = "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE ts_us < $1 "
           "ORDER BY id LIMIT $2)"};
static const pg_sql_t sql_purge_daily = {.slot = PS_PURGE_DAILY,
                                         .sql = "DELETE FROM usage_daily WHERE day < $1"};
static const pg_sql_t sql_spend = {
    .slot = PS_SPEND,
    .sql = "SELECT coalesce(sum(cost_micros), 0) FROM usage_daily WHERE tenant_id = $1 "
           "AND day >= $2 AND day <= $3"};

/* ---- per-connection state -------------------------------------------------------------- */

static void twin_free(struct twin *t);

void pg_events_free(pg_store_t *s)
{
    struct pg_events *e = s->ev;
    if (!e) return;
    twin_free(e->twin);
    free(e->aggs);
    free(e->slots);
    free(e->fast);
    free(e->done);
    free(e->stored);
    free(e->copy);
    free(e->isnew);
    free(e);
    s->ev = NULL;
}

/* Makes room for a batch of n; before any transaction, so a failure writes nothing. */
static int reserve(pg_store_t *s, size_t n, tg_err_t *err)
{
    if (!s->ev && !(s->ev = calloc(1, sizeof *s->ev))) goto oom;
    struct pg_events *e = s->ev;
    if (!e->copy && !(e->copy = malloc(COPY_FLUSH + COPY_ROW_MAX))) goto oom;
    if (n > UINT32_MAX / 4) return tg_err_set(err, "append: batch of %zu events too large", n);
    if (n > e->cap) {
        agg_t *a = realloc(e->aggs, n * sizeof *a);
        if (!a) goto oom;
        e->aggs = a;
        fast_ev_t *f = realloc(e->fast, n * sizeof *f);
        if (!f) goto oom;
        e->fast = f;
        unsigned char *d = realloc(e->done, n);
        if (!d) goto oom;
        e->done = d;
        int64_t *st = realloc(e->stored, n * sizeof *st);
        if (!st) goto oom;
        e->stored = st;
        unsigned char *m = realloc(e->isnew, n);
        if (!m) goto oom;
        e->isnew = m;
        e->cap = n;
    }
    size_t want = 16;
    while (want < 2 * n)
        want *= 2;
    if (want > e->slots_cap) {
        uint32_t *sl = realloc(e->slots, want * sizeof *sl);
        if (!sl) goto oom;
        e->slots = sl;
        e->slots_cap = want;
    }
    memset(e->slots, 0, e->slots_cap * sizeof *e->slots);
    memset(e->done, 0, n);
    memset(e->stored, 0, n * sizeof *e->stored);
    return 0;
oom:
    return tg_err_set(err, "append: out of memory");
}

/* The temporary staging tables live as long as the session: made again after a reconnect
 * (a new backend), before the batch's transaction so a rollback does not take them. */
static int ensure_stage(pg_store_t *s, const char *what, tg_err_t *err)
{
    if (PQstatus(s->conn) == CONNECTION_OK && s->ev->stage_pid == PQbackendPID(s->conn)) return 0;
    int ret = pg_begin(s, what, err); /* reconnects if it must */
    if (ret != 0) return ret;
    ret = pg_run(s,
                 "CREATE TEMP TABLE IF NOT EXISTS tg_stage (LIKE usage_events) "
                 "ON COMMIT DELETE ROWS; "
                 "CREATE TEMP TABLE IF NOT EXISTS tg_seen_stage (n integer, ts_us bigint, "
                 "digest bytea) ON COMMIT DELETE ROWS",
                 what, err);
    if (ret == 0) ret = pg_commit(s, what, err);
    if (ret != 0) {
        pg_rollback(s);
        return ret;
    }
    s->ev->stage_pid = PQbackendPID(s->conn);
    return 0;
}

/* Begins the batch's transaction on the session that holds the staging tables: a
 * connection lost and made again in between is TG_STORE_BUSY (try again). */
static int begin_staged(pg_store_t *s, const char *what, tg_err_t *err)
{
    int ret = pg_begin(s, what, err);
    if (ret == 0 && s->ev->stage_pid != PQbackendPID(s->conn)) {
        pg_rollback(s);
        tg_err_set(err, "%s: %s: connection made again; will retry", what, s->where);
        return TG_STORE_BUSY;
    }
    return ret;
}

/* ---- partitions ------------------------------------------------------------------------ */

/* Creates the partition of each month the batch's ids fall in, unless this connection
 * knows it exists. Ids carry their millisecond (id >> 22 since 2020), so a month is a
 * range of ids: [first id of its first day, first id of the next month's). Negative ids
 * (before 2020) go to usage_events_pre2020, which always exists. A retried id (evb_next_id)
 * keeps its millisecond, so its month is the event's. */
static int ensure_month(pg_store_t *s, int64_t id, const month_t **out, const char *what,
                        tg_err_t *err);

static int ensure_months(pg_store_t *s, const ev_run_t *evs, const char *what, tg_err_t *err)
{
    struct pg_events *e = s->ev;
    const month_t *last = NULL;
    int64_t newest = -1; /* the end of the latest month the batch reaches */
    for (size_t i = 0; i < evs->n; i++) {
        if (ev_skip(evs, i)) continue;
        int64_t id = ev_at(evs, i)->id;
        if (id < 0) continue;
        if (!last || id < last->lo || id >= last->hi) {
            int ret = ensure_month(s, id, &last, what, err);
            if (ret != 0) return ret;
        }
        if (last->hi > newest) newest = last->hi;
    }
    /* The next month ahead of time (its first id is the end of this one): made while
     * nothing waits for it, so the first events of a month do not. It failing (a lock
     * held by a purge, say) fails nothing; asked again AHEAD_RETRY batches later. */
    if (newest > 0 && newest < AHEAD_MAX_ID && e->ahead_wait == 0) {
        const month_t *next;
        tg_err_t ignored = {{0}};
        if (ensure_month(s, newest, &next, what, &ignored) != 0) e->ahead_wait = AHEAD_RETRY;
    } else if (e->ahead_wait > 0) {
        e->ahead_wait--;
    }
    return 0;
}

/* The month holding id (>= 0): from the cache, or made (tg_usage_partition) and cached. */
static int ensure_month(pg_store_t *s, int64_t id, const month_t **out, const char *what,
                        tg_err_t *err)
{
    struct pg_events *e = s->ev;
    for (size_t m = 0; m < e->nmonths; m++)
        if (id >= e->months[m].lo && id < e->months[m].hi) {
            *out = &e->months[m];
            return 0;
        }
    char day[11];
    tg_utc_day(((id >> EVB_ID_LOW_BITS) + EPOCH2020_MS) * 1000, day);
    int y = atoi(day), mon = atoi(day + 5);
    char first[32], next[32];
    snprintf(first, sizeof first, "%04d-%02d-01", y, mon);
    snprintf(next, sizeof next, "%04d-%02d-01", mon == 12 ? y + 1 : y, mon == 12 ? 1 : mon + 1);
    int64_t lo_us = 0, hi_us = 0;
    if (tg_parse_day(first, &lo_us) != 0 || tg_parse_day(next, &hi_us) != 0)
        return tg_err_set(err, "%s: event id %lld: no month", what, (long long)id);
    pg_params_t p = {0};
    pg_p_int64(&p, lo_us);
    int ret = pg_exec(s, &sql_partition, &p, NULL, what, err);
    if (ret != 0) return ret;
    if (e->nmonths == MONTHS_MAX) e->nmonths = 0; /* forget them all: asked again */
    e->months[e->nmonths] = (month_t){(lo_us / 1000 - EPOCH2020_MS) << EVB_ID_LOW_BITS,
                                      (hi_us / 1000 - EPOCH2020_MS) << EVB_ID_LOW_BITS};
    *out = &e->months[e->nmonths++];
    return 0;
}

/* ---- COPY, binary format ----------------------------------------------------------------- */

/* Binary COPY's big-endian integers. */
char *pg_copy_be(char *o, uint64_t v, int bytes)
{
    for (int b = bytes - 1; b >= 0; b--)
        *o++ = (char)(v >> (8 * b));
    return o;
}

char *pg_copy_int8(char *o, int64_t v)
{
    o = pg_copy_be(o, 8, 4); /* the field's length */
    return pg_copy_be(o, (uint64_t)v, 8);
}

char *pg_copy_null(char *o)
{
    return pg_copy_be(o, UINT32_MAX, 4); /* length -1 */
}

char *pg_copy_text(char *o, const char *f, size_t n)
{
    o = pg_copy_be(o, n, 4);
    pg_utf8_clean(o, f, n);
    return o + n;
}

/* One event as a binary COPY tuple, its columns as evb_cols says (each text or bigint);
 * returns its length. */
static size_t copy_event(char *dst, const tg_event_t *ev)
{
    char *o = pg_copy_be(dst, EVB_NCOLS, 2);
#pragma GCC unroll 32
    for (int i = 0; i < EVB_NCOLS; i++) {
        const evb_col_t *c = &evb_cols[i];
        const char *f = (const char *)ev + c->off;
        switch (c->kind) {
        case EW_ID: o = pg_copy_int8(o, ev->id); break;
        case EW_INT64: o = pg_copy_int8(o, *(const int64_t *)(const void *)f); break;
        case EW_INT: o = pg_copy_int8(o, *(const int32_t *)(const void *)f); break;
        case EW_TEXT: o = pg_copy_text(o, f, strnlen(f, c->size)); break;
        case EW_TEXT_OPT:
        case EW_SOURCE: {
            size_t n = strnlen(f, c->size);
            if (n)
                o = pg_copy_text(o, f, n);
            else if (c->kind == EW_SOURCE)
                o = pg_copy_text(o, "gateway", 7);
            else
                o = pg_copy_null(o);
            break;
        }
        case EW_TOKENS: {
            int64_t v = *(const int64_t *)(const void *)f;
            o = v < 0 ? pg_copy_null(o) : pg_copy_int8(o, v);
            break;
        }
        case EW_OUTCOME: {
            const char *t = evb_outcome_text(*(const int32_t *)(const void *)f);
            o = pg_copy_text(o, t, strlen(t));
            break;
        }
        case EW_COUNT: o = pg_copy_int8(o, tg_event_count(ev)); break;
        }
    }
    return (size_t)(o - dst);
}

/* Sends copy_sql (COPY ... FROM STDIN (FORMAT binary)), the header, n tuples made by
 * line(i) and the trailer, and ends it. 0, or
 * the failure (the transaction is in error then); *dup (may be NULL) = 1 when the failure
 * was a unique violation (SQLSTATE 23505). */
int pg_copy_rows(pg_store_t *s, const char *copy_sql, size_t n,
                 size_t (*line)(char *dst, const void *ud, size_t i), const void *ud, int *dup,
                 const char *what, tg_err_t *err)
{
    if (dup) *dup = 0;
    PGresult *r = PQexec(s->conn, copy_sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        int ret = pg_fail(s, r, what, err);
        PQclear(r);
        return ret;
    }
    PQclear(r);
    char *buf = s->ev->copy;
    /* signature, flags, header extension length */
    static const char head[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    memcpy(buf, head, sizeof head);
    size_t len = sizeof head;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        len += line(buf + len, ud, i);
        if (len >= COPY_FLUSH) {
            ok = PQputCopyData(s->conn, buf, (int)len) == 1;
            len = 0;
        }
    }
    buf[len++] = '\xff', buf[len++] = '\xff'; /* the trailer: a tuple of -1 fields */
    if (ok) ok = PQputCopyData(s->conn, buf, (int)len) == 1;
    ok = PQputCopyEnd(s->conn, ok ? NULL : "tollgate: copy failed") == 1 && ok;
    int ret = 0;
    while ((r = PQgetResult(s->conn))) {
        if (ret == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
            ret = pg_fail(s, r, what, err);
            if (dup) *dup = strcmp(pg_state(r), "23505") == 0;
        }
        PQclear(r);
    }
    if (ret == 0 && !ok) ret = pg_fail(s, NULL, what, err);
    return ret;
}

/* ---- append ------------------------------------------------------------------------------ */

typedef struct staged {
    const ev_run_t *evs;
    const fast_ev_t *fast;
} staged_t;

static size_t stage_line(char *dst, const void *ud, size_t i)
{
    const staged_t *st = ud;
    return copy_event(dst, ev_at(st->evs, st->fast[i].idx));
}

/* The index in f[0..n) (sorted by id, unique) of id, or -1. */
static long find_id(const fast_ev_t *f, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && f[lo].id == id ? (long)lo : -1;
}

/* A text field as a parameter: as is when it is UTF-8, else cleaned into scratch (as in
 * COPY; scratch holds the field's size). */
static void p_text(pg_params_t *p, const char *f, size_t cap, int null_if_empty, char *scratch)
{
    size_t n = strnlen(f, cap);
    if (pg_utf8_clean(scratch, f, n))
        pg_p_field(p, scratch, n, null_if_empty);
    else
        pg_p_field(p, f, cap, null_if_empty);
}

/* Inserts ev under id, one statement; *taken = 1 if it did. */
static int insert_one(pg_store_t *s, const tg_event_t *ev, int64_t id, int *taken, tg_err_t *err)
{
    char scratch[EVB_NCOLS][256]; /* cleaned text fields (p_text) */
    _Static_assert(sizeof ev->path <= 256, "a field larger than the scratch");
    pg_params_t p = {0};
    for (int i = 0; i < EVB_NCOLS; i++) {
        const evb_col_t *c = &evb_cols[i];
        const char *f = (const char *)ev + c->off;
        switch (c->kind) {
        case EW_ID: pg_p_int64(&p, id); break;
        case EW_INT64: pg_p_int64(&p, *(const int64_t *)(const void *)f); break;
        case EW_INT: pg_p_int64(&p, *(const int32_t *)(const void *)f); break;
        case EW_TEXT: p_text(&p, f, c->size, 0, scratch[i]); break;
        case EW_TEXT_OPT: p_text(&p, f, c->size, 1, scratch[i]); break;
        case EW_TOKENS: pg_p_amount(&p, *(const int64_t *)(const void *)f); break;
        case EW_OUTCOME: pg_p_text(&p, evb_outcome_text(*(const int32_t *)(const void *)f)); break;
        case EW_COUNT: pg_p_int64(&p, tg_event_count(ev)); break;
        case EW_SOURCE:
            if (*f)
                p_text(&p, f, c->size, 0, scratch[i]);
            else
                pg_p_text(&p, "gateway");
            break;
        }
    }
    PGresult *r;
    int ret = pg_exec(s, &sql_insert_one, &p, &r, "append", err);
    if (ret != 0) return ret;
    *taken = PQntuples(r) == 1;
    PQclear(r);
    return 0;
}

/* Is the stored row with this id ev (a replay: skip it) or another event that drew the
 * same id? Same time and request id = same event. 1 same, 0 different, -2 no such row. */
static int same_event(pg_store_t *s, const tg_event_t *ev, int64_t id, int *same, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_int64(&p, id);
    PGresult *r;
    int ret = pg_exec(s, &sql_peek, &p, &r, "append", err);
    if (ret != 0) return ret;
    if (PQntuples(r) != 1) {
        *same = -2;
    } else {
        const char *rid = pg_val(r, 0, 1);
        size_t len = strnlen(ev->request_id, sizeof ev->request_id);
        int rid_same = rid ? strlen(rid) == len && memcmp(rid, ev->request_id, len) == 0 : len == 0;
        *same = pg_get_int64(r, 0, 0) == ev->ts_us && rid_same;
    }
    PQclear(r);
    return 0;
}

/* An event the staged insert did not take: tried under its id (from attempt 0) or, when a
 * different event is known to hold it, the next ones; *added = the id it was inserted
 * under, 0 when it was not (a replay). */
static int insert_slow(pg_store_t *s, const tg_event_t *ev, int attempt, int64_t *added,
                       tg_err_t *err)
{
    *added = 0;
    int64_t id = attempt ? evb_next_id(ev, ev->id, attempt) : ev->id;
    for (;; attempt++) {
        int taken, same, ret = insert_one(s, ev, id, &taken, err);
        if (ret != 0) return ret;
        if (taken) {
            *added = id;
            return 0;
        }
        if ((ret = same_event(s, ev, id, &same, err)) != 0) return ret;
        if (same == 1) return 0; /* already stored: a replay */
        if (same == -2)
            return tg_err_set(err, "append: event %lld refused by a constraint", (long long)id);
        if (attempt == EVB_MAX_ID_RETRIES)
            return tg_err_set(err, "append: no free id for event %lld", (long long)ev->id);
        id = evb_next_id(ev, ev->id, attempt + 1);
    }
}

typedef struct key_ctx {
    pg_store_t *s;
    tg_err_t *err;
} key_ctx_t;

static int key_used(void *ud, const char *key_id, int64_t ts)
{
    key_ctx_t *k = ud;
    pg_params_t p = {0};
    pg_p_text(&p, key_id);
    pg_p_int64(&p, ts);
    return pg_exec(k->s, &sql_key_used, &p, NULL, "append", k->err);
}

static int write_groups(pg_store_t *s, evb_groups_t *gs, tg_err_t *err)
{
    evb_agg_sort(gs);
    for (size_t g = 0; g < gs->n; g++) {
        const agg_t *a = &gs->aggs[g];
        char day[11];
        tg_utc_day(a->day * EVB_DAY_US, day);
        pg_params_t p = {0};
        pg_p_text(&p, a->tenant);
        pg_p_text(&p, day);
        pg_p_int64(&p, a->requests);
        pg_p_int64(&p, a->billable);
        pg_p_int64(&p, a->failed);
        pg_p_int64(&p, a->rejected);
        pg_p_int64(&p, a->bytes_in);
        pg_p_int64(&p, a->bytes_out);
        pg_p_int64(&p, a->tokens_in);
        pg_p_int64(&p, a->tokens_out);
        pg_p_int64(&p, a->cost_micros);
        pg_p_int64(&p, a->tokens_cached);
        int ret = pg_exec(s, &sql_daily_upsert, &p, NULL, "append", err);
        if (ret != 0) return ret;
    }
    return 0;
}

/* Inside the caller's transaction: inserts evs and updates usage_daily, and the
 * last_used_us of the keys of keys (evs, or a whole batch of which evs is a half, or NULL:
 * none); *inserted says how many were new. 0, or the failure (the caller rolls back). */
static int append_txn(pg_store_t *s, const ev_run_t *evs, const ev_run_t *keys, size_t *inserted,
                      tg_err_t *err)
{
    struct pg_events *e = s->ev;
    size_t n = evs->n, nfast = 0, added = 0;
    for (size_t i = 0; i < n; i++)
        if (!ev_skip(evs, i)) e->fast[nfast++] = (fast_ev_t){ev_at(evs, i)->id, (uint32_t)i};
    evb_sort(e->fast, nfast);
    /* Unique ids to the front, each the first of its id in the batch (whatever the sort
     * did with ties); a repeat (the same event twice, or two events with one id) waits for
     * the slow path. */
    size_t u = 0;
    for (size_t j = 0; j < nfast; j++) {
        if (u == 0 || e->fast[j].id != e->fast[u - 1].id)
            e->fast[u++] = e->fast[j];
        else if (e->fast[j].idx < e->fast[u - 1].idx)
            e->fast[u - 1] = e->fast[j];
    }
    evb_groups_t gs = {e->aggs, 0, e->slots, e->slots_cap};

    char cols[1024], copy_sql[1200];
    if (evb_column_list(cols, sizeof cols) < 0) return tg_err_set(err, "append: columns");
    staged_t st = {evs, e->fast};
    int ret, dup = 1;
    /* Optimistic: every event new, COPY straight into usage_events (a third of the time of
     * staging them and INSERT ... SELECT ON CONFLICT). A unique violation (a replay, an id
     * another gateway drew too) undoes it to the savepoint and takes the staging path; so
     * do the next STAGE_AFTER batches (a spool being replayed collides chunk after chunk). */
    if (e->stage_next == 0) {
        snprintf(copy_sql, sizeof copy_sql, "COPY usage_events (%s) FROM STDIN (FORMAT binary)",
                 cols);
        if ((ret = pg_run(s, "SAVEPOINT tg_direct", "append", err)) != 0) return ret;
        ret = pg_copy_rows(s, copy_sql, u, stage_line, &st, &dup, "append", err);
        if (ret != 0 && !dup) return ret;
        if (ret != 0) {
            e->stage_next = STAGE_AFTER;
            if ((ret = pg_run(s, "ROLLBACK TO SAVEPOINT tg_direct", "append", err)) != 0)
                return ret;
        }
    } else {
        e->stage_next--;
    }
    if (!dup) {
        for (size_t j = 0; j < u; j++) {
            e->done[e->fast[j].idx] = 1;
            e->stored[e->fast[j].idx] = e->fast[j].id;
            evb_agg_add(&gs, ev_at(evs, e->fast[j].idx));
        }
        added = u;
    } else {
        snprintf(copy_sql, sizeof copy_sql, "COPY pg_temp.tg_stage (%s) FROM STDIN (FORMAT binary)",
                 cols);
        if ((ret = pg_copy_rows(s, copy_sql, u, stage_line, &st, NULL, "append", err)) != 0)
            return ret;
        PGresult *r;
        if ((ret = pg_exec(s, &sql_stage_insert, NULL, &r, "append", err)) != 0) return ret;
        for (int i = 0; i < PQntuples(r); i++) {
            long j = find_id(e->fast, u, pg_get_int64(r, i, 0));
            if (j < 0 || e->done[e->fast[j].idx]) continue; /* cannot be: ids staged once */
            e->done[e->fast[j].idx] = 1;
            e->stored[e->fast[j].idx] = e->fast[j].id;
            evb_agg_add(&gs, ev_at(evs, e->fast[j].idx));
            added++;
        }
        PQclear(r);
    }
    int missed = added < u;

    /* Staged events held by a different event: the slow path from attempt 1. The others
     * not taken are stored already (a replay). */
    if (missed) {
        PGresult *r;
        if ((ret = pg_exec(s, &sql_stage_clash, NULL, &r, "append", err)) != 0) return ret;
        for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
            long j = find_id(e->fast, u, pg_get_int64(r, i, 0));
            if (j < 0) continue;
            const tg_event_t *ev = ev_at(evs, e->fast[j].idx);
            int64_t one;
            if ((ret = insert_slow(s, ev, 1, &one, err)) == 0 && one) {
                e->stored[e->fast[j].idx] = one;
                evb_agg_add(&gs, ev);
                added++;
            }
        }
        PQclear(r);
        if (ret != 0) return ret;
    }
    /* Events whose id another event of the batch was staged under, in batch order. */
    if (u < nfast) {
        for (size_t j = 0; j < u; j++)
            e->done[e->fast[j].idx] = 1;
        for (size_t i = 0; i < n; i++) {
            if (e->done[i] || ev_skip(evs, i)) continue;
            const tg_event_t *ev = ev_at(evs, i);
            int64_t one;
            if ((ret = insert_slow(s, ev, 0, &one, err)) != 0) return ret;
            if (one) {
                e->stored[i] = one;
                evb_agg_add(&gs, ev);
                added++;
            }
        }
    }

    if ((ret = write_groups(s, &gs, err)) != 0) return ret;
    key_ctx_t k = {s, err};
    if (keys && (ret = evb_keys_used(keys, key_used, &k)) != 0) return ret;
    *inserted = added;
    return 0;
}

/* A row of a month whose partition another process dropped since this connection saw it
 * (SQLSTATE 23514, no partition for the row): forget the months, so the retry creates it. */
static int append_failed(pg_store_t *s, int ret, tg_err_t *err)
{
    if (ret != 0 && strstr(err ? err->msg : "", "23514")) {
        s->ev->nmonths = 0;
        ret = TG_STORE_BUSY;
    }
    pg_rollback(s);
    return ret;
}

/* Everything an append and an ingest do before their transaction. */
static int prepare_batch(pg_store_t *s, const ev_run_t *evs, const char *what, tg_err_t *err)
{
    int ret = reserve(s, evs->n, err);
    if (ret == 0) ret = ensure_stage(s, what, err);
    if (ret == 0) ret = ensure_months(s, evs, what, err);
    return ret;
}

/* One transaction: the events of run, their usage_daily, the keys of keys (see append_txn);
 * *added = how many were new once it committed. */
static int append_run(pg_store_t *s, const ev_run_t *run, const ev_run_t *keys, size_t *added,
                      tg_err_t *err)
{
    *added = 0;
    int ret = prepare_batch(s, run, "append", err);
    if (ret == 0) ret = begin_staged(s, "append", err);
    if (ret != 0) return ret;
    size_t n = 0;
    if ((ret = append_txn(s, run, keys, &n, err)) != 0) return append_failed(s, ret, err);
    /* Last: the audit chain's head is locked until the commit (pg_audit.c). */
    if ((ret = pg_audit_calls(s, run, s->ev->stored, err)) != 0) return append_failed(s, ret, err);
    ret = pg_commit(s, "append", err);
    if (ret == 0) *added = n;
    return ret;
}

/* ---- the second writer -------------------------------------------------------------------
 * The server's COPY into usage_events (one backend: one core) is where a batch's time goes:
 * here one session copies 84-135k rows/s into the table with its indexes, two at once
 * 142-198k (bench/RESULTS.md). So a batch of SPLIT_MIN events or more is appended in two
 * halves at once, the first on this connection, the second on a twin connection by a thread
 * of its own, each half one transaction with its own usage_daily upsert (usage_daily still
 * equals the sum of the stored events at every commit). The halves do not wait for each
 * other but on usage_daily's rows, taken in (tenant, day) order by both, so they cannot
 * deadlock on them; the keys' last_used_us is updated by the first half only, for the whole
 * batch. The second of them to upsert a row waits for the other's commit: a commit slower
 * than the writer's lock_timeout (a distant synchronous standby, a slow disk) failed that
 * half (55P03), so every large batch went to the spool once. So a half that fails busy
 * while the other committed is appended again at once, alone, on this connection, the
 * other's rows free by then; so is the twin's half when its session was lost and the
 * server refuses a new one. When a half still fails, the append fails (the recorder keeps
 * the batch and appends it again) though the other half may be stored: its events are then
 * skipped as stored, as in any replay, and *inserted says what the committed half added. A
 * twin whose session is lost is closed: the next large batch opens a new one, and a twin
 * the server refuses (max_connections) leaves the batches whole, and is asked for again
 * TWIN_RETRY large batches later (a lost twin kept was asked for again at every batch). */

typedef struct twin {
    pg_store_t *s; /* its connection */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job;      /* a half is posted and not yet appended */
    int stop;     /* asked to end */
    ev_run_t run; /* the half */
    size_t added; /* its result */
    int ret;
    tg_err_t err;
} twin_t;

static void *twin_main(void *arg)
{
    twin_t *t = arg;
    pthread_setname_np(pthread_self(), "tg-pg-twin");
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->job && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        if (!t->job) break;
        ev_run_t run = t->run;
        pthread_mutex_unlock(&t->mu);
        size_t added = 0;
        tg_err_t err = {{0}};
        int ret = append_run(t->s, &run, NULL, &added, &err);
        pthread_mutex_lock(&t->mu);
        t->added = added;
        t->ret = ret;
        t->err = err;
        t->job = 0;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void twin_free(twin_t *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->th, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    t->s->base.life->close(&t->s->base);
    free(t);
}

/* The twin, opened and started when there is none; NULL when it cannot be (the batch is
 * then appended whole; why is logged once a refusal). */
static twin_t *twin_get(pg_store_t *s)
{
    struct pg_events *e = s->ev;
    if (e->twin) {
        if (e->twin->s->busy_ms != s->busy_ms) {
            tg_err_t err = {{0}};
            if (tg_store_set_busy_timeout(&e->twin->s->base, s->busy_ms, &err) != 0) return NULL;
        }
        return e->twin;
    }
    if (e->twin_wait > 0) {
        e->twin_wait--;
        return NULL;
    }
    twin_t *t = calloc(1, sizeof *t);
    tg_err_t err = {{0}};
    if (!t || pg_open_twin(s, &t->s, &err) != 0) {
        TG_WARN("store %s: large batches appended on one connection: %s", s->where,
                t ? err.msg : "out of memory");
        free(t);
        e->twin_wait = TWIN_RETRY;
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (pthread_create(&t->th, NULL, twin_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        t->s->base.life->close(&t->s->base);
        free(t);
        e->twin_wait = TWIN_RETRY;
        return NULL;
    }
    e->twin = t;
    return t;
}

/* The two halves at once (above). */
static int append_split(pg_store_t *s, twin_t *t, const ev_run_t *run, size_t *inserted,
                        tg_err_t *err)
{
    size_t h = run->n / 2;
    ev_run_t first = {run->base, run->stride, h, NULL};
    ev_run_t second = {run->base + h * run->stride, run->stride, run->n - h, NULL};
    pthread_mutex_lock(&t->mu);
    t->run = second;
    t->job = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);

    size_t added = 0;
    int ret = append_run(s, &first, run, &added, err);

    pthread_mutex_lock(&t->mu);
    while (t->job)
        pthread_cond_wait(&t->cv, &t->mu);
    size_t added2 = t->added;
    int ret2 = t->ret;
    tg_err_t err2 = t->err;
    pthread_mutex_unlock(&t->mu);
    if (ret2 != 0 && PQstatus(t->s->conn) == CONNECTION_BAD) {
        twin_free(t);
        s->ev->twin = NULL;
    }

    /* One half failed busy, the other committed: that half again, alone (above). */
    if (ret == 0 && ret2 == TG_STORE_BUSY) {
        size_t more = 0;
        ret2 = append_run(s, &second, NULL, &more, &err2);
        added2 += more;
    } else if (ret == TG_STORE_BUSY && ret2 == 0) {
        ret = append_run(s, &first, run, &added, err);
    }

    *inserted = added + added2;
    if (ret != 0) return ret;
    if (ret2 != 0 && err) *err = err2;
    return ret2;
}

static int pg_append(tg_store_t *base, const tg_event_t *evs, size_t n, size_t *inserted,
                     tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    size_t added = 0;
    if (inserted) *inserted = 0;
    if (n == 0) return 0;
    ev_run_t run = {(const char *)evs, sizeof *evs, n, NULL};
    int ret;
    twin_t *t = NULL;
    if (n >= SPLIT_MIN && (ret = reserve(s, n, err)) != 0) return ret;
    if (n >= SPLIT_MIN && (t = twin_get(s)) != NULL)
        ret = append_split(s, t, &run, &added, err);
    else
        ret = append_run(s, &run, &run, &added, err);
    if (inserted) *inserted = added;
    return ret;
}

/* ---- ingested records (tg_store_ingest) ---------------------------------------------- */

static size_t seen_line(char *dst, const void *ud, size_t i)
{
    const tg_ingest_item_t *it = (const tg_ingest_item_t *)ud + i;
    char *o = pg_copy_be(dst, 3, 2);
    o = pg_copy_be(pg_copy_be(o, 4, 4), i, 4); /* n integer */
    o = pg_copy_int8(o, it->ev.ts_us);
    o = pg_copy_be(o, sizeof it->digest, 4);
    memcpy(o, it->digest, sizeof it->digest);
    return (size_t)(o + sizeof it->digest - dst);
}

/* Marks in isnew[] the items whose (time, digest) ingest_seen did not hold, inserting
 * them: the first of a record repeated in the batch is the new one. */
static int seen_mark(pg_store_t *s, const tg_ingest_item_t *items, size_t n, unsigned char *isnew,
                     tg_err_t *err)
{
    memset(isnew, 0, n);
    int ret =
        pg_copy_rows(s, "COPY pg_temp.tg_seen_stage (n, ts_us, digest) FROM STDIN (FORMAT binary)",
                     n, seen_line, items, NULL, "ingest", err);
    if (ret != 0) return ret;
    PGresult *r;
    if ((ret = pg_exec(s, &sql_ingest_seen, NULL, &r, "ingest", err)) != 0) return ret;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t k = pg_get_int64(r, i, 0);
        if (k >= 0 && (size_t)k < n) isnew[k] = 1;
    }
    PQclear(r);
    return 0;
}

/* The unknown keys of the batch's new records, summed per key: one upsert each. */
static int unknown_keys(pg_store_t *s, const tg_ingest_item_t *items, size_t n,
                        const unsigned char *isnew, tg_err_t *err)
{
    unsigned char *done = s->ev->done; /* free until append_txn, which clears what it uses */
    memset(done, 0, n);
    for (size_t i = 0; i < n; i++) {
        if (!isnew[i] || done[i] || !items[i].key_prefix[0]) continue;
        int64_t records = 0, first = items[i].ev.ts_us, last = first;
        for (size_t j = i; j < n; j++) {
            if (!isnew[j] || done[j] || !items[j].key_prefix[0] ||
                memcmp(items[j].key_sha256, items[i].key_sha256, 32) != 0)
                continue;
            done[j] = 1;
            records++;
            if (items[j].ev.ts_us < first) first = items[j].ev.ts_us;
            if (items[j].ev.ts_us > last) last = items[j].ev.ts_us;
        }
        pg_params_t p = {0};
        pg_p_bytea(&p, items[i].key_sha256, 32);
        pg_p_text(&p, items[i].key_prefix);
        PG_P_ROW(&p, &items[i].ev, source);
        pg_p_int64(&p, records);
        pg_p_int64(&p, first);
        pg_p_int64(&p, last);
        int ret = pg_exec(s, &sql_ingest_unknown, &p, NULL, "ingest", err);
        if (ret != 0) return ret;
    }
    memset(done, 0, n);
    return 0;
}

/* One transaction: ingest_seen's new rows, the unknown keys, the events of the new records
 * and their usage_daily (append_txn: an event is skipped only when a stored one has its
 * id, time and request id, the same request, so a duplicate too). */
static int pg_ingest(tg_store_t *base, const tg_ingest_item_t *items, size_t n, size_t *inserted,
                     size_t *duplicates, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    *inserted = *duplicates = 0;
    if (n == 0) return 0;
    ev_run_t run = {(const char *)&items[0].ev, sizeof *items, n, NULL};
    int ret = prepare_batch(s, &run, "ingest", err);
    if (ret == 0) ret = begin_staged(s, "ingest", err);
    if (ret != 0) return ret;
    unsigned char *isnew = s->ev->isnew;
    size_t added = 0;
    run.keep = isnew;
    if ((ret = seen_mark(s, items, n, isnew, err)) != 0 ||
        (ret = unknown_keys(s, items, n, isnew, err)) != 0 ||
        (ret = append_txn(s, &run, &run, &added, err)) != 0)
        return append_failed(s, ret, err);
    if ((ret = pg_commit(s, "ingest", err)) == 0) {
        *inserted = added;
        *duplicates = n - added;
    }
    return ret;
}

/* ---- purge ------------------------------------------------------------------------------ */

/* Runs q with p in its own transaction; *changed += its rows. */
static int purge_step(pg_store_t *s, const pg_sql_t *q, const pg_params_t *p, int64_t *changed,
                      tg_err_t *err)
{
    int ret = pg_begin(s, "purge", err);
    if (ret != 0) return ret;
    /* Not cut by the writer's stall bound (postgres.c, PG_STALL_MS): dropping months counts
     * their rows first (the purge's total), and a chunk's DELETE looks for old rows through
     * every month's (tenant, ts_us) index; on a big store either takes longer, and
     * retention would fail every hour. Locks stay bounded by lock_timeout. */
    if ((ret = pg_run(s, "SET LOCAL statement_timeout = 0", "purge", err)) != 0) {
        pg_rollback(s);
        return ret;
    }
    PGresult *r;
    if ((ret = pg_exec(s, q, p, &r, "purge", err)) != 0) {
        pg_rollback(s);
        return ret;
    }
    int64_t n = q == &sql_purge_drop ? pg_get_int64(r, 0, 0) : pg_changes(r);
    PQclear(r);
    if ((ret = pg_commit(s, "purge", err)) == 0) *changed += n;
    return ret;
}

/* Whole months before the cutoff's month go with their partitions, unless one of them
 * holds an event as recent as the cutoff (an id not drawn from its time); the rest, in
 * the boundary month and the pre-2020 partition, by DELETE in chunks, as in SQLite. */
static int purge_events(pg_store_t *s, int64_t before_us, int64_t *total, tg_err_t *err)
{
    char day[11], first[11];
    tg_utc_day(before_us, day);
    snprintf(first, sizeof first, "%.7s-01", day);
    int64_t month_us = 0;
    int ret = 0;
    if (tg_parse_day(first, &month_us) == 0 && month_us / 1000 > EPOCH2020_MS) {
        pg_params_t p = {0};
        pg_p_int64(&p, (month_us / 1000 - EPOCH2020_MS) << EVB_ID_LOW_BITS);
        pg_p_int64(&p, before_us);
        PGresult *r;
        if ((ret = pg_exec(s, &sql_purge_misplaced, &p, &r, "purge", err)) != 0) return ret;
        int misplaced = PQntuples(r) == 1 && pg_val(r, 0, 0) && pg_val(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!misplaced) {
            pg_params_t d = {0};
            pg_p_int64(&d, month_us);
            if ((ret = purge_step(s, &sql_purge_drop, &d, total, err)) != 0) return ret;
            if (s->ev) s->ev->nmonths = 0; /* some are gone */
        }
    }
    for (;;) {
        pg_params_t p = {0};
        pg_p_int64(&p, before_us);
        pg_p_int64(&p, PURGE_CHUNK);
        int64_t n = 0;
        if ((ret = purge_step(s, &sql_purge_events, &p, &n, err)) != 0) return ret;
        *total += n;
        if (n < PURGE_CHUNK) return 0;
    }
}

static int pg_purge(tg_store_t *base, int64_t events_before_us, const char *agg_before_day,
                    int64_t *deleted, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int64_t total = 0;
    int ret = 0;
    if (deleted) *deleted = 0;
    if (events_before_us) {
        ret = purge_events(s, events_before_us, &total, err);
        /* The alarm history follows the events' retention. */
        /* alarm_events belong to the alarm concern (pg_alarms.c); one statement. */
        if (ret == 0) ret = pg_alarm_events_purge(s, events_before_us, &total, err);
    }
    if (ret == 0 && agg_before_day) {
        pg_params_t p = {0};
        pg_p_text(&p, agg_before_day);
        ret = purge_step(s, &sql_purge_daily, &p, &total, err);
    }
    if (deleted) *deleted = total; /* committed steps stay deleted on error */
    return ret;
}

/* ---- reports ---------------------------------------------------------------------------- */

/* The strings point into the result row. */
static int emit_usage(pg_store_t *s, const PGresult *r, int i, const sink_t *k,
                      const tg_rowmap_t *m)
{
    tg_usage_row_t row;
    pg_read_row(s, r, i, m, &row);
    if (!row.tenant) row.tenant = "";
    if (!row.group) row.group = "";
    return SINK_CALL(tg_usage_row_t, k, &row);
}

static int emit_usage_daily(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    return emit_usage(s, r, i, k, &tg_map_usage_daily);
}

static int emit_usage_events(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    return emit_usage(s, r, i, k, &tg_map_usage_events);
}

/* Built per call (reports are rare), with the tenant filter only when given, so the
 * (tenant, ts_us) index serves it. */
static int pg_usage(tg_store_t *base, const tg_usage_query_t *q,
                    int (*cb)(const tg_usage_row_t *, void *), void *ud, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    char sql[1536], cols[1024], from_day[11], to_day[11];
    pg_params_t p = {0};
    pg_p_text(&p, q->tenant ? q->tenant : "");
    const tg_rowmap_t *m = q->by == TG_BY_DAY ? &tg_map_usage_daily : &tg_map_usage_events;
    if (q->by == TG_BY_DAY) {
        /* Days are whole: from is the day holding from_us, to the day before the
         * (exclusive) to_us. */
        if (q->from_us) tg_utc_day(q->from_us, from_day);
        if (q->to_us) tg_utc_day(q->to_us - 1, to_day);
        pg_p_text(&p, q->from_us ? from_day : NULL);
        pg_p_text(&p, q->to_us ? to_day : NULL);
        if (tg_rowmap_select(m, NULL, cols, sizeof cols) < 0)
            return tg_err_set(err, "usage: column list too long");
        snprintf(sql, sizeof sql,
                 "SELECT %s FROM usage_daily WHERE %s($2::text IS NULL OR day >= $2) AND "
                 "($3::text IS NULL OR day <= $3) ORDER BY tenant_id, day",
                 cols, q->tenant ? "tenant_id = $1 AND " : "$1::text IS NOT NULL AND ");
    } else {
        const char *grp;
        switch (q->by) {
        case TG_BY_HOUR:
            grp = "to_char(to_timestamp((ts_us / 3600000000) * 3600) AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24\":00Z\"')";
            break;
        case TG_BY_ROUTE: grp = "coalesce(route, '')"; break;
        case TG_BY_KEY: grp = "coalesce(key_id, '')"; break;
        case TG_BY_MODEL: grp = "coalesce(model, '')"; break;
        case TG_BY_TOOL: grp = "coalesce(tool, '')"; break;
        default: return tg_err_set(err, "usage: unknown grouping %d", (int)q->by);
        }
        pg_p_int64(&p, q->from_us ? q->from_us : INT64_MIN);
        pg_p_int64(&p, q->to_us ? q->to_us : INT64_MAX);
        if (tg_rowmap_select(m, grp, cols, sizeof cols) < 0)
            return tg_err_set(err, "usage: column list too long");
        snprintf(sql, sizeof sql,
                 "SELECT %s FROM usage_events WHERE %sts_us >= $2 AND ts_us < $3 "
                 "GROUP BY tenant, grp ORDER BY tenant, grp",
                 cols, q->tenant ? "tenant = $1 AND " : "$1::text IS NOT NULL AND ");
    }
    return pg_each_row_sql(s, sql, &p, q->by == TG_BY_DAY ? emit_usage_daily : emit_usage_events,
                           SINK(tg_usage_row_t, cb, ud), "usage", err);
}

/* A read of the (tenant_id, day) primary key: at most 31 rows for a month. */
static int pg_spend(tg_store_t *base, const char *tenant, const char *from_day, const char *to_day,
                    int64_t *micros, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    *micros = 0;
    if (!tenant || !from_day || !to_day) return tg_err_set(err, "spend: missing argument");
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    pg_p_text(&p, from_day);
    pg_p_text(&p, to_day);
    PGresult *r;
    int ret = pg_exec(s, &sql_spend, &p, &r, "spend", err);
    if (ret != 0) return ret;
    if (PQntuples(r) == 1) *micros = pg_get_int64(r, 0, 0);
    PQclear(r);
    return 0;
}

const struct tg_store_event_ops pg_event_ops = {
    .append = pg_append,
    .ingest = pg_ingest,
    .purge = pg_purge,
    .usage = pg_usage,
    .spend = pg_spend,
};
