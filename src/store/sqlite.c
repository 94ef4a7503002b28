/* SQLite store backend: see store.h for the interface, migrations.c for the
 * tables.
 *
 * One tg_store_t is one sqlite3 connection, opened in WAL mode so readers (the
 * CLI, the keyring refresher) never block the writer and the writer blocks no
 * reader. synchronous=NORMAL: a commit is durable once the WAL is synced at
 * checkpoint; a power cut may lose the last commits but never corrupts, which
 * is the same promise the recorder makes (SIGKILL loses at most a flush window).
 *
 * append() is the hot path (the writer thread, ~50 ms batches): one
 * BEGIN IMMEDIATE ... COMMIT per batch; cached INSERT OR IGNORE statements,
 * MULTI_ROWS events per statement where the ids are provably new and one by
 * one otherwise; aggregates summed in memory per (tenant, day) and written
 * with one UPSERT per group. Only rows actually inserted are counted, so
 * replaying a batch (spool, retry after an unknown commit outcome) counts
 * nothing twice. Measured with a throwaway program (50 tenants, a 2-core VM,
 * 5M events into a growing file): ~200k events/s in batches of 1000, ~270k
 * in batches of 4096.
 *
 * Every change to tenants or api_keys also bumps meta.auth_version in the
 * same transaction: that is what auth_version() reads, so a gateway in
 * another process notices a revoked key with one cheap query. Changes to the
 * policy tables (limits, pauses, ip_rules, prices, budgets, tool_rules) bump
 * meta.policy_version the same way; the two are separate so a new limit does
 * not reload the keyring. Alerts are a record, not policy: they bump nothing. */
#include "store/store.h"

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/migrations.h"
#include "store/walshm.h"
#include "util/clock.h"

#define DAY_US         86400000000LL
#define PURGE_CHUNK    5000 /* events per purge transaction */
#define MAX_ID_RETRIES 8    /* other ids tried for one colliding event */
#define ID_LOW_BITS    22   /* the per-process part of an event id: see event.h */
#define MULTI_ROWS     32   /* events per multi-row INSERT on the fast path */
#define EV_NCOLS       27

/* Statements prepared once per connection, on first use. */
enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_AUTH_BUMP,
    ST_AUTH_VERSION,
    ST_TENANT_ADD,
    ST_TENANT_GET,
    ST_TENANT_LIST,
    ST_TENANT_STATUS,
    ST_KEY_ADD,
    ST_KEY_LIST,
    ST_KEY_REVOKE,
    ST_KEY_USED,
    ST_AUTH_LOAD,
    ST_EV_INSERT,
    ST_EV_INSERT_MULTI, /* SQL built by multi_insert_sql() */
    ST_EV_MAX_ID,
    ST_EV_PEEK,
    ST_DAILY_UPSERT,
    ST_PURGE_EVENTS,
    ST_PURGE_DAILY,
    ST_POLICY_BUMP,
    ST_POLICY_VERSION,
    ST_LIMIT_SET,
    ST_LIMIT_RM,
    ST_LIMIT_LIST,
    ST_PAUSE_SET,
    ST_PAUSE_CLEAR,
    ST_PAUSE_LIST,
    ST_IP_ADD,
    ST_IP_RM,
    ST_IP_LIST,
    ST_PRICE_SET,
    ST_PRICE_RM,
    ST_PRICE_RM_ALL,
    ST_PRICE_LIST,
    ST_BUDGET_SET,
    ST_BUDGET_RM,
    ST_BUDGET_LIST,
    ST_ALERT_ADD,
    ST_ALERT_LIST,
    ST_SPEND,
    ST_TOOL_ADD,
    ST_TOOL_RM,
    ST_TOOL_LIST,
    ST_COUNT
};

/* The columns bound by bind_event(), in order. */
#define EV_INSERT                                                                                  \
    "INSERT OR IGNORE INTO usage_events (id, ts_us, tenant, key_id, route, method, path, "         \
    "status, outcome, reason, latency_us, bytes_in, bytes_out, model, tokens_in, tokens_out, "     \
    "tokens_cached, tool, cost_micros, cache, client_ip, request_id, upstream, "                   \
    "tokens_cache_write, rpc_method, price_flag, requests) VALUES "

static const char *const stmt_sql[ST_COUNT] = {
    /* IMMEDIATE takes the write lock up front: a busy store fails here, before
     * any work, instead of on the first write (where a deferred transaction
     * could not wait for the lock without risking a deadlock). */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_AUTH_BUMP] = "UPDATE meta SET value = value + 1 WHERE key = 'auth_version'",
    [ST_AUTH_VERSION] = "SELECT value FROM meta WHERE key = 'auth_version'",
    [ST_TENANT_ADD] = "INSERT INTO tenants (id, name, status, created_us) VALUES (?1, ?2, "
                      "'active', ?3)",
    [ST_TENANT_GET] = "SELECT id, name, status, created_us FROM tenants WHERE id = ?1",
    [ST_TENANT_LIST] = "SELECT id, name, status, created_us FROM tenants ORDER BY id",
    [ST_TENANT_STATUS] = "UPDATE tenants SET status = ?2 WHERE id = ?1",
    [ST_KEY_ADD] = "INSERT INTO api_keys (id, tenant_id, sha256, prefix, name, status, "
                   "created_us, last_used_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_KEY_LIST] = "SELECT id, tenant_id, sha256, prefix, name, status, created_us, "
                    "last_used_us FROM api_keys WHERE ?1 IS NULL OR tenant_id = ?1 "
                    "ORDER BY tenant_id, created_us, id",
    [ST_KEY_REVOKE] = "UPDATE api_keys SET status = 'revoked' WHERE id = ?1",
    /* Not an auth change: auth_version stays, no keyring reload follows. */
    [ST_KEY_USED] = "UPDATE api_keys SET last_used_us = ?2 WHERE id = ?1 AND "
                    "(last_used_us IS NULL OR last_used_us < ?2)",
    [ST_AUTH_LOAD] = "SELECT k.sha256, k.id, k.tenant_id, k.status = 'active', "
                     "t.status = 'active' FROM api_keys k JOIN tenants t ON t.id = k.tenant_id",
    [ST_EV_INSERT] = EV_INSERT
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_EV_MAX_ID] = "SELECT max(id) FROM usage_events",
    [ST_EV_PEEK] = "SELECT ts_us, request_id FROM usage_events WHERE id = ?1",
    [ST_DAILY_UPSERT] =
        "INSERT INTO usage_daily (tenant_id, day, requests, billable, failed, rejected, "
        "bytes_in, bytes_out, tokens_in, tokens_out, cost_micros, tokens_cached) VALUES (?1, "
        "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (tenant_id, day) DO UPDATE SET "
        "requests = requests + excluded.requests, billable = billable + excluded.billable, "
        "failed = failed + excluded.failed, rejected = rejected + excluded.rejected, "
        "bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out, "
        "tokens_in = tokens_in + excluded.tokens_in, "
        "tokens_out = tokens_out + excluded.tokens_out, "
        "cost_micros = cost_micros + excluded.cost_micros, "
        "tokens_cached = tokens_cached + excluded.tokens_cached",
    /* Ids are time-ordered, so a rowid-order scan meets the oldest events
     * first and each chunk reads little more than what it deletes. NOT INDEXED
     * keeps the planner off the (tenant, ts_us) index, whose order would not. */
    [ST_PURGE_EVENTS] = "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events "
                        "NOT INDEXED WHERE ts_us < ?1 ORDER BY id LIMIT ?2)",
    [ST_PURGE_DAILY] = "DELETE FROM usage_daily WHERE day < ?1",
    [ST_POLICY_BUMP] = "UPDATE meta SET value = value + 1 WHERE key = 'policy_version'",
    [ST_POLICY_VERSION] = "SELECT value FROM meta WHERE key = 'policy_version'",
    [ST_LIMIT_SET] =
        "INSERT INTO limits (tenant_id, scope, value, requests, period_s, burst, concurrency, "
        "tokens, tokens_period_s, updated_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?10, ?8) "
        "ON CONFLICT (tenant_id, scope, value) DO UPDATE SET requests = excluded.requests, "
        "period_s = excluded.period_s, burst = excluded.burst, "
        "concurrency = excluded.concurrency, tokens = excluded.tokens, "
        "tokens_period_s = excluded.tokens_period_s, updated_us = excluded.updated_us",
    [ST_LIMIT_RM] = "DELETE FROM limits WHERE tenant_id = ?1 AND scope = ?2 AND value = ?3",
    /* The tenant-wide row first, then route, tool, key and model rows. */
    [ST_LIMIT_LIST] = "SELECT tenant_id, scope, value, requests, period_s, burst, concurrency, "
                      "updated_us, tokens, tokens_period_s FROM limits WHERE ?1 IS NULL OR "
                      "tenant_id = ?1 ORDER BY tenant_id, CASE scope WHEN 'tenant' THEN 0 "
                      "WHEN 'route' THEN 1 WHEN 'tool' THEN 2 WHEN 'key' THEN 3 ELSE 4 END, "
                      "value",
    /* A second pause of the same tenant changes the reason; the pause is
     * still the one that began first. */
    [ST_PAUSE_SET] = "INSERT INTO pauses (tenant_id, reason, created_us) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT (tenant_id) DO UPDATE SET reason = excluded.reason",
    [ST_PAUSE_CLEAR] = "DELETE FROM pauses WHERE tenant_id = ?1",
    [ST_PAUSE_LIST] = "SELECT tenant_id, reason, created_us FROM pauses ORDER BY tenant_id",
    [ST_IP_ADD] = "INSERT INTO ip_rules (tenant_id, action, cidr, created_us) VALUES (?1, ?2, "
                  "?3, ?4)",
    [ST_IP_RM] = "DELETE FROM ip_rules WHERE tenant_id = ?1 AND action = ?2 AND cidr = ?3",
    [ST_IP_LIST] = "SELECT tenant_id, action, cidr, created_us FROM ip_rules WHERE ?1 IS NULL "
                   "OR tenant_id = ?1 ORDER BY tenant_id, action, cidr",
    /* A row of the same (meter, name, effective_us) is replaced as a whole. */
    [ST_PRICE_SET] =
        "INSERT OR REPLACE INTO prices (meter, name, effective_us, input_micros, output_micros, "
        "cached_micros, cache_write_micros, request_micros, gb_micros, call_micros, created_us) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_PRICE_RM] = "DELETE FROM prices WHERE meter = ?1 AND name = ?2 AND effective_us = ?3",
    [ST_PRICE_RM_ALL] = "DELETE FROM prices WHERE meter = ?1 AND name = ?2",
    /* Oldest first within a (meter, name): the order in which rows take over. */
    [ST_PRICE_LIST] = "SELECT meter, name, effective_us, input_micros, output_micros, "
                      "cached_micros, cache_write_micros, request_micros, gb_micros, "
                      "call_micros, created_us FROM prices ORDER BY CASE meter WHEN 'model' "
                      "THEN 0 WHEN 'route' THEN 1 ELSE 2 END, name, effective_us",
    [ST_BUDGET_SET] =
        "INSERT INTO budgets (tenant_id, monthly_micros, hard, thresholds, updated_us) VALUES "
        "(?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant_id) DO UPDATE SET "
        "monthly_micros = excluded.monthly_micros, hard = excluded.hard, "
        "thresholds = excluded.thresholds, updated_us = excluded.updated_us",
    [ST_BUDGET_RM] = "DELETE FROM budgets WHERE tenant_id = ?1",
    [ST_BUDGET_LIST] = "SELECT tenant_id, monthly_micros, hard, thresholds, updated_us FROM "
                       "budgets WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id",
    [ST_ALERT_ADD] = "INSERT INTO alerts (kind, tenant_id, threshold, period, spend_micros, "
                     "budget_micros, fired_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                     "ON CONFLICT (kind, tenant_id, threshold, period) DO NOTHING",
    [ST_ALERT_LIST] = "SELECT id, kind, tenant_id, threshold, period, spend_micros, "
                      "budget_micros, fired_us FROM alerts WHERE ?1 IS NULL OR tenant_id = ?1 "
                      "ORDER BY id",
    [ST_SPEND] = "SELECT coalesce(sum(cost_micros), 0) FROM usage_daily WHERE tenant_id = ?1 "
                 "AND day >= ?2 AND day <= ?3",
    [ST_TOOL_ADD] = "INSERT INTO tool_rules (tenant_id, action, pattern, created_us) VALUES "
                    "(?1, ?2, ?3, ?4)",
    [ST_TOOL_RM] = "DELETE FROM tool_rules WHERE tenant_id = ?1 AND action = ?2 AND pattern = ?3",
    [ST_TOOL_LIST] = "SELECT tenant_id, action, pattern, created_us FROM tool_rules WHERE ?1 IS "
                     "NULL OR tenant_id = ?1 ORDER BY tenant_id, action, pattern",
};

/* One (tenant, UTC day) group of a batch being appended. */
typedef struct agg {
    const char *tenant; /* points into the caller's events, valid during append */
    int64_t day;        /* days since 1970-01-01 */
    int64_t requests, billable, failed, rejected;
    int64_t bytes_in, bytes_out, tokens_in, tokens_out, tokens_cached, cost_micros;
} agg_t;

/* A fast-path candidate: an event whose id is above every stored one. */
typedef struct fast_ev {
    int64_t id;
    uint32_t idx; /* into the caller's events */
} fast_ev_t;

typedef struct sq_store {
    tg_store_t base;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    /* append() scratch, kept between calls so a steady writer allocates once:
     * groups (at most one per event) and an open-addressing index over them,
     * and the fast path's events sorted by id, with a done flag per event. */
    agg_t *aggs;
    size_t aggs_cap;
    uint32_t *slots;  /* 0 = empty, else index into aggs + 1 */
    size_t slots_cap; /* power of two, >= 2 * aggs_cap */
    fast_ev_t *fast;
    unsigned char *done; /* per event: inserted by the fast path */
    /* The -shm this connection mapped (walshm.h): checked before every use; once it is
     * lost the connection is never touched again, not even to close it. */
    tg_walshm_t shm;
    struct sq_store *abandoned_next; /* in `abandoned` once closed with its index lost */
} sq_store_t;

static const tg_store_t sqlite_tables;

/* Errors that mean "the store cannot be written right now" rather than "this
 * request is wrong": the caller (the recorder) spools and retries later. */
static int is_busy(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN: return 1;
    }
    return 0;
}

/* Fills err from the connection and returns TG_STORE_BUSY or -1. */
static int fail(sq_store_t *s, int rc, const char *what, tg_err_t *err)
{
    if (s->shm.lost) { /* not SQLite's error: the connection was not even used */
        tg_err_set(err, "%s: %s; restart tollgate", what, s->shm.why);
        return TG_STORE_BUSY;
    }
    const char *msg = sqlite3_errcode(s->db) == rc ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    if ((rc & 0xff) == SQLITE_BUSY)
        tg_err_set(err, "%s: %s (another connection holds the write lock; try again)", what, msg);
    else
        tg_err_set(err, "%s: %s", what, msg);
    return is_busy(rc) ? TG_STORE_BUSY : -1;
}

/* EV_INSERT with MULTI_ROWS rows of EV_NCOLS anonymous parameters. */
static char *multi_insert_sql(void)
{
    static const char row[] = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    _Static_assert(sizeof row - 1 == 2 * EV_NCOLS + 1, "one ? per column");
    size_t cap = sizeof EV_INSERT + MULTI_ROWS * sizeof row;
    char *sql = malloc(cap);
    if (!sql) return NULL;
    size_t o = (size_t)snprintf(sql, cap, "%s", EV_INSERT);
    for (int r = 0; r < MULTI_ROWS; r++)
        o += (size_t)snprintf(sql + o, cap - o, "%s%s", r ? "," : "", row);
    return sql;
}

/* Every use of the connection starts here (or in exec() and sq_usage()), so this is where
 * the WAL index is checked before SQLite touches its mapping. */
static sqlite3_stmt *stmt(sq_store_t *s, int i, tg_err_t *err)
{
    if (tg_walshm_check(&s->shm, err) != 0) return NULL;
    if (!s->st[i]) {
        char *built = i == ST_EV_INSERT_MULTI ? multi_insert_sql() : NULL;
        const char *sql = i == ST_EV_INSERT_MULTI ? built : stmt_sql[i];
        int rc =
            sql ? sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL)
                : SQLITE_NOMEM;
        free(built);
        if (rc != SQLITE_OK) {
            fail(s, rc, "prepare", err);
            s->st[i] = NULL;
        }
    }
    return s->st[i];
}

/* Steps a statement that returns no rows we need, then resets it (a statement
 * left un-reset would keep its read transaction, and its snapshot, open). */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int run_cached(sq_store_t *s, int i)
{
    sqlite3_stmt *st = stmt(s, i, NULL);
    return st ? run(st) : s->shm.lost ? SQLITE_IOERR : SQLITE_NOMEM;
}

static int begin(sq_store_t *s, const char *what, tg_err_t *err)
{
    int rc = run_cached(s, ST_BEGIN);
    return rc == SQLITE_OK ? 0 : fail(s, rc, what, err);
}

/* Rolls back whatever is open. Some errors (IOERR, FULL, BUSY on COMMIT in
 * rare cases) already rolled the transaction back; autocommit says so. */
static void rollback(sq_store_t *s)
{
    if (!sqlite3_get_autocommit(s->db)) run_cached(s, ST_ROLLBACK);
}

static int commit(sq_store_t *s, const char *what, tg_err_t *err)
{
    int rc = run_cached(s, ST_COMMIT);
    if (rc == SQLITE_OK) return 0;
    int ret = fail(s, rc, what, err);
    rollback(s);
    return ret;
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, t, n);
    dst[n] = '\0';
}

/* Binds a fixed-size event field; strnlen so a field without its NUL cannot
 * make SQLite read past it. */
static void bind_field(sqlite3_stmt *st, int i, const char *f, size_t cap, int null_if_empty)
{
    size_t n = strnlen(f, cap);
    if (n == 0 && null_if_empty)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, f, (int)n, SQLITE_STATIC);
}
#define BIND_OPT(st, i, ev, field) bind_field((st), (i), (ev)->field, sizeof(ev)->field, 1)
#define BIND_STR(st, i, ev, field) bind_field((st), (i), (ev)->field, sizeof(ev)->field, 0)

static void bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

/* ---- reading rows ------------------------------------------------------- */

/* Where a list hands its rows: the caller's callback and ud. The callback's type names
 * the row type, so it is kept as void (*)(void) (a function pointer converts to another
 * function pointer type and back unchanged, C11 6.3.2.3p8) and called as its own type
 * again by the emit_* function that reads that row type. SINK checks at compile time that
 * cb takes a const T *. */
typedef struct sink {
    void (*cb)(void);
    void *ud;
} sink_t;
#define SINK_CB(T, cb)       ((void (*)(void))(1 ? (cb) : (int (*)(const T *, void *))0))
#define SINK(T, cb, ud)      ((sink_t){SINK_CB(T, cb), (ud)})
#define SINK_CALL(T, k, row) (((int (*)(const T *, void *))(k)->cb)((row), (k)->ud))

/* Reads the current row of st into its row type and hands it to k; returns what the
 * callback returns (0 to go on), or 0 for a row it skips. */
typedef int (*emit_fn)(sqlite3_stmt *st, const sink_t *k);

/* Steps statement id and emits each row until a callback returns nonzero, which is
 * returned as is. A statement with a parameter has ?1 for the tenant filter: bound to
 * tenant, NULL meaning every tenant. what names the list in an error. */
static int each_row(sq_store_t *s, int id, const char *tenant, emit_fn emit, sink_t k,
                    const char *what, tg_err_t *err)
{
    sqlite3_stmt *st = stmt(s, id, err);
    if (!st) return -1;
    if (sqlite3_bind_parameter_count(st) > 0) {
        if (tenant)
            sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 1);
    }
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ret = emit(st, &k);
    if (ret == 0 && rc != SQLITE_DONE) ret = fail(s, rc, what, err);
    sqlite3_reset(st);
    return ret;
}

/* The value of one meta row (statement id): auth_version or policy_version. */
static int read_version(sq_store_t *s, int id, const char *what, int64_t *out, tg_err_t *err)
{
    sqlite3_stmt *st = stmt(s, id, err);
    if (!st) return -1;
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        ret = tg_err_set(err, "%s: meta row missing", what);
    else
        ret = fail(s, rc, what, err);
    sqlite3_reset(st);
    return ret;
}

/* ---- tenants and keys ------------------------------------------------- */

/* Runs one bound statement in its own transaction together with bump (the
 * ST_AUTH_BUMP or ST_POLICY_BUMP of the version it changes). Returns 0,
 * TG_STORE_NOTFOUND (no row changed, or a missing parent), TG_STORE_EXISTS
 * (duplicate), TG_STORE_BUSY or -1. A change that fails bumps nothing. */
static int mutate_bump(sq_store_t *s, sqlite3_stmt *st, int bump, const char *what, tg_err_t *err)
{
    int ret = begin(s, what, err);
    if (ret != 0) {
        sqlite3_reset(st);
        return ret;
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        switch (sqlite3_extended_errcode(s->db)) {
        case SQLITE_CONSTRAINT_PRIMARYKEY:
        case SQLITE_CONSTRAINT_UNIQUE:
            ret = TG_STORE_EXISTS;
            tg_err_set(err, "%s: already exists", what);
            break;
        case SQLITE_CONSTRAINT_FOREIGNKEY:
            ret = TG_STORE_NOTFOUND;
            tg_err_set(err, "%s: no such tenant", what);
            break;
        default: ret = fail(s, rc, what, err);
        }
        sqlite3_reset(st);
        rollback(s);
        return ret;
    }
    sqlite3_reset(st);
    if (sqlite3_changes(s->db) == 0) {
        rollback(s);
        tg_err_set(err, "%s: not found", what);
        return TG_STORE_NOTFOUND;
    }
    rc = run_cached(s, bump);
    if (rc != SQLITE_OK) {
        ret = fail(s, rc, what, err);
        rollback(s);
        return ret;
    }
    /* Without its meta row the version would never move and running
     * gateways would miss the change: refuse it instead. */
    if (sqlite3_changes(s->db) != 1) {
        rollback(s);
        return tg_err_set(err, "%s: meta row %s missing", what,
                          bump == ST_AUTH_BUMP ? "auth_version" : "policy_version");
    }
    return commit(s, what, err);
}

/* Tenants and keys: the keyring's version. */
static int mutate(sq_store_t *s, sqlite3_stmt *st, const char *what, tg_err_t *err)
{
    return mutate_bump(s, st, ST_AUTH_BUMP, what, err);
}

static int sq_tenant_add(tg_store_t *base, const char *id, const char *name, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = stmt(s, ST_TENANT_ADD, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, tg_wall_us());
    int ret = mutate(s, st, "tenant add", err);
    if (ret == TG_STORE_EXISTS) tg_err_set(err, "tenant \"%s\" already exists", id);
    return ret;
}

static void read_tenant(sqlite3_stmt *st, tg_tenant_t *t)
{
    copy_col(t->id, sizeof t->id, st, 0);
    copy_col(t->name, sizeof t->name, st, 1);
    copy_col(t->status, sizeof t->status, st, 2);
    t->created_us = sqlite3_column_int64(st, 3);
}

static int sq_tenant_get(tg_store_t *base, const char *id, tg_tenant_t *out, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = stmt(s, ST_TENANT_GET, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        read_tenant(st, out);
    else if (rc == SQLITE_DONE) {
        tg_err_set(err, "no tenant \"%s\"", id);
        ret = TG_STORE_NOTFOUND;
    } else
        ret = fail(s, rc, "tenant get", err);
    sqlite3_reset(st);
    return ret;
}

static int emit_tenant(sqlite3_stmt *st, const sink_t *k)
{
    tg_tenant_t t;
    read_tenant(st, &t);
    return SINK_CALL(tg_tenant_t, k, &t);
}

static int sq_tenant_list(tg_store_t *base, int (*cb)(const tg_tenant_t *, void *), void *ud,
                          tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_TENANT_LIST, NULL, emit_tenant,
                    SINK(tg_tenant_t, cb, ud), "tenant list", err);
}

static int sq_tenant_set_status(tg_store_t *base, const char *id, const char *status, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (strcmp(status, "active") != 0 && strcmp(status, "disabled") != 0)
        return tg_err_set(err, "invalid tenant status \"%s\"", status);
    sqlite3_stmt *st = stmt(s, ST_TENANT_STATUS, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    int ret = mutate(s, st, "tenant set status", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no tenant \"%s\"", id);
    return ret;
}

static int sq_key_add(tg_store_t *base, const tg_key_t *k, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_ADD, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, k->id, (int)strnlen(k->id, sizeof k->id), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->tenant_id, (int)strnlen(k->tenant_id, sizeof k->tenant_id),
                      SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, k->sha256, sizeof k->sha256, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, k->prefix, (int)strnlen(k->prefix, sizeof k->prefix), SQLITE_STATIC);
    sqlite3_bind_text(st, 5, k->name, (int)strnlen(k->name, sizeof k->name), SQLITE_STATIC);
    sqlite3_bind_text(st, 6, k->status[0] ? k->status : "active", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, k->created_us ? k->created_us : tg_wall_us());
    if (k->last_used_us)
        sqlite3_bind_int64(st, 8, k->last_used_us);
    else
        sqlite3_bind_null(st, 8);
    int ret = mutate(s, st, "key add", err);
    if (ret == TG_STORE_EXISTS)
        tg_err_set(err, "key \"%.31s\" (or its secret) already exists", k->id);
    else if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no tenant \"%.63s\"", k->tenant_id);
    return ret;
}

static int emit_key(sqlite3_stmt *st, const sink_t *k)
{
    tg_key_t key;
    memset(&key, 0, sizeof key);
    copy_col(key.id, sizeof key.id, st, 0);
    copy_col(key.tenant_id, sizeof key.tenant_id, st, 1);
    if (sqlite3_column_bytes(st, 2) == (int)sizeof key.sha256)
        memcpy(key.sha256, sqlite3_column_blob(st, 2), sizeof key.sha256);
    copy_col(key.prefix, sizeof key.prefix, st, 3);
    copy_col(key.name, sizeof key.name, st, 4);
    copy_col(key.status, sizeof key.status, st, 5);
    key.created_us = sqlite3_column_int64(st, 6);
    key.last_used_us = sqlite3_column_int64(st, 7); /* NULL reads as 0 = never */
    return SINK_CALL(tg_key_t, k, &key);
}

static int sq_key_list(tg_store_t *base, const char *tenant, int (*cb)(const tg_key_t *, void *),
                       void *ud, tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_KEY_LIST, tenant, emit_key, SINK(tg_key_t, cb, ud),
                    "key list", err);
}

static int sq_key_revoke(tg_store_t *base, const char *key_id, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_REVOKE, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    int ret = mutate(s, st, "key revoke", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no key \"%s\"", key_id);
    return ret;
}

static int emit_auth(sqlite3_stmt *st, const sink_t *k)
{
    tg_auth_row_t r;
    r.sha256 = sqlite3_column_blob(st, 0);
    if (!r.sha256 || sqlite3_column_bytes(st, 0) != 32) return 0; /* CHECK forbids it */
    r.key_id = (const char *)sqlite3_column_text(st, 1);
    r.tenant_id = (const char *)sqlite3_column_text(st, 2);
    r.key_active = sqlite3_column_int(st, 3);
    r.tenant_active = sqlite3_column_int(st, 4);
    if (!r.key_id || !r.tenant_id) return 0;
    return SINK_CALL(tg_auth_row_t, k, &r);
}

static int sq_auth_load(tg_store_t *base, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_AUTH_LOAD, NULL, emit_auth, SINK(tg_auth_row_t, cb, ud),
                    "auth load", err);
}

static int sq_auth_version(tg_store_t *base, int64_t *out, tg_err_t *err)
{
    return read_version((sq_store_t *)base, ST_AUTH_VERSION, "auth version", out, err);
}

/* ---- policy: limits, pauses, IP rules ------------------------------------ */

static int sq_policy_version(tg_store_t *base, int64_t *out, tg_err_t *err)
{
    return read_version((sq_store_t *)base, ST_POLICY_VERSION, "policy version", out, err);
}

/* Binds a fixed-size row field (strnlen: a field without its NUL stops at
 * the array's end). */
#define BIND_ROW(st, i, row, field)                                                                \
    sqlite3_bind_text((st), (i), (row)->field, (int)strnlen((row)->field, sizeof(row)->field),     \
                      SQLITE_STATIC)

static int valid_scope(const char *scope)
{
    return strcmp(scope, "tenant") == 0 || strcmp(scope, "route") == 0 ||
           strcmp(scope, "tool") == 0 || strcmp(scope, "key") == 0 || strcmp(scope, "model") == 0;
}

/* The table's CHECKs, said in words before SQLite says "CHECK constraint
 * failed". */
static int check_limit(const tg_limit_row_t *r, tg_err_t *err)
{
    char scope[sizeof r->scope + 1];
    snprintf(scope, sizeof scope, "%.*s", (int)sizeof r->scope, r->scope);
    if (!r->tenant[0]) return tg_err_set(err, "limit set: empty tenant");
    if (!valid_scope(scope)) return tg_err_set(err, "limit set: invalid scope \"%s\"", scope);
    int tenant_scope = strcmp(scope, "tenant") == 0;
    if (tenant_scope != !r->value[0])
        return tg_err_set(err, "limit set: scope %s %s", scope,
                          tenant_scope ? "takes no value" : "needs a value");
    if (r->period_s != 0 && r->period_s != 1 && r->period_s != 60 && r->period_s != 3600)
        return tg_err_set(err, "limit set: period %lld s (expected 1, 60 or 3600)",
                          (long long)r->period_s);
    if (r->tokens_period_s != 0 && r->tokens_period_s != 60 && r->tokens_period_s != 3600)
        return tg_err_set(err, "limit set: token period %lld s (expected 60 or 3600)",
                          (long long)r->tokens_period_s);
    if (r->limit < 0 || r->burst < 0 || r->concurrency < 0 || r->tokens < 0)
        return tg_err_set(err, "limit set: negative limit, burst, concurrency or tokens");
    if (r->period_s == 0 && r->limit != 0)
        return tg_err_set(err, "limit set: a limit of %lld needs a period", (long long)r->limit);
    if (r->tokens_period_s == 0 && r->tokens != 0)
        return tg_err_set(err, "limit set: a token limit of %lld needs a period",
                          (long long)r->tokens);
    if (r->concurrency && !tenant_scope)
        return tg_err_set(err, "limit set: concurrency applies to scope tenant only");
    return 0;
}

static int sq_limit_set(tg_store_t *base, const tg_limit_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (check_limit(row, err) != 0) return -1;
    sqlite3_stmt *st = stmt(s, ST_LIMIT_SET, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, tenant);
    BIND_ROW(st, 2, row, scope);
    BIND_ROW(st, 3, row, value);
    sqlite3_bind_int64(st, 4, row->limit);
    sqlite3_bind_int64(st, 5, row->period_s);
    sqlite3_bind_int64(st, 6, row->burst);
    sqlite3_bind_int64(st, 7, row->concurrency);
    sqlite3_bind_int64(st, 8, row->updated_us ? row->updated_us : tg_wall_us());
    sqlite3_bind_int64(st, 9, row->tokens);
    sqlite3_bind_int64(st, 10, row->tokens_period_s);
    return mutate_bump(s, st, ST_POLICY_BUMP, "limit set", err);
}

static int sq_limit_rm(tg_store_t *base, const char *tenant, const char *scope, const char *value,
                       tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (!value) value = "";
    sqlite3_stmt *st = stmt(s, ST_LIMIT_RM, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    int ret = mutate_bump(s, st, ST_POLICY_BUMP, "limit rm", err);
    if (ret == TG_STORE_NOTFOUND) {
        if (*value)
            tg_err_set(err, "no limit for tenant \"%s\" %s \"%s\"", tenant, scope, value);
        else
            tg_err_set(err, "no tenant-wide limit for tenant \"%s\"", tenant);
    }
    return ret;
}

static int emit_limit(sqlite3_stmt *st, const sink_t *k)
{
    tg_limit_row_t r;
    memset(&r, 0, sizeof r);
    copy_col(r.tenant, sizeof r.tenant, st, 0);
    copy_col(r.scope, sizeof r.scope, st, 1);
    copy_col(r.value, sizeof r.value, st, 2);
    r.limit = sqlite3_column_int64(st, 3);
    r.period_s = sqlite3_column_int64(st, 4);
    r.burst = sqlite3_column_int64(st, 5);
    r.concurrency = sqlite3_column_int64(st, 6);
    r.updated_us = sqlite3_column_int64(st, 7);
    r.tokens = sqlite3_column_int64(st, 8);
    r.tokens_period_s = sqlite3_column_int64(st, 9);
    return SINK_CALL(tg_limit_row_t, k, &r);
}

static int sq_limit_list(tg_store_t *base, const char *tenant,
                         int (*cb)(const tg_limit_row_t *, void *), void *ud, tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_LIMIT_LIST, tenant, emit_limit,
                    SINK(tg_limit_row_t, cb, ud), "limit list", err);
}

static int sq_pause_set(tg_store_t *base, const char *tenant, const char *reason, int64_t now_us,
                        tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (!tenant || !*tenant) return tg_err_set(err, "pause: empty tenant");
    sqlite3_stmt *st = stmt(s, ST_PAUSE_SET, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_us);
    return mutate_bump(s, st, ST_POLICY_BUMP, "pause", err);
}

static int sq_pause_clear(tg_store_t *base, const char *tenant, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = stmt(s, ST_PAUSE_CLEAR, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int ret = mutate_bump(s, st, ST_POLICY_BUMP, "resume", err);
    if (ret == TG_STORE_NOTFOUND) {
        if (strcmp(tenant, "*") == 0)
            tg_err_set(err, "no global pause");
        else
            tg_err_set(err, "tenant \"%s\" is not paused", tenant);
    }
    return ret;
}

static int emit_pause(sqlite3_stmt *st, const sink_t *k)
{
    tg_pause_row_t r;
    memset(&r, 0, sizeof r);
    copy_col(r.tenant, sizeof r.tenant, st, 0);
    copy_col(r.reason, sizeof r.reason, st, 1);
    r.created_us = sqlite3_column_int64(st, 2);
    return SINK_CALL(tg_pause_row_t, k, &r);
}

static int sq_pause_list(tg_store_t *base, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_PAUSE_LIST, NULL, emit_pause,
                    SINK(tg_pause_row_t, cb, ud), "pause list", err);
}

static int valid_action(const char *a)
{
    return strcmp(a, "allow") == 0 || strcmp(a, "deny") == 0;
}

/* "for tenant "acme"" or "for all tenants", for messages about a rule. */
static const char *rule_owner(const char *tenant, char *buf, size_t cap)
{
    if (strcmp(tenant, "*") == 0) return "for all tenants";
    snprintf(buf, cap, "for tenant \"%s\"", tenant);
    return buf;
}

/* IP rules and tool rules are one shape, (tenant, action, value) with the value a CIDR
 * or a tool pattern, in two tables because they are matched apart. One add, rm and list
 * serves both, told by a rule_kind which statements and words to use. */
typedef struct rule_kind {
    const char *what;  /* "ip rule": the operations are "ip rule add", ... */
    const char *value; /* what the value is called: "CIDR" */
    const char *q;     /* how messages quote the value: "" (a CIDR has no spaces) or "\"" */
    int st_add, st_rm, st_list;
} rule_kind_t;

static const rule_kind_t ip_rules = {"ip rule", "CIDR", "", ST_IP_ADD, ST_IP_RM, ST_IP_LIST};
static const rule_kind_t tool_rules = {"tool rule", "pattern",  "\"",
                                       ST_TOOL_ADD, ST_TOOL_RM, ST_TOOL_LIST};

/* The fields of a tg_ip_rule_row_t or tg_tool_rule_row_t to add: fixed-size arrays,
 * maybe filled without a NUL, so each comes with its size. */
typedef struct rule_fields {
    const char *tenant, *action, *value;
    size_t tenant_cap, action_cap, value_cap;
    int64_t created_us;
} rule_fields_t;
#define RULE_FIELDS(row, value_field)                                                              \
    ((rule_fields_t){(row)->tenant, (row)->action, (row)->value_field, sizeof(row)->tenant,        \
                     sizeof(row)->action, sizeof(row)->value_field, (row)->created_us})

static int rule_add(sq_store_t *s, const rule_kind_t *k, rule_fields_t r, tg_err_t *err)
{
    char what[32], action[16], owner[96];
    snprintf(what, sizeof what, "%s add", k->what);
    snprintf(action, sizeof action, "%.*s", (int)r.action_cap, r.action);
    if (!r.tenant[0]) return tg_err_set(err, "%s: empty tenant", what);
    if (!valid_action(action))
        return tg_err_set(err, "%s: invalid action \"%s\" (expected allow or deny)", what, action);
    if (!r.value[0]) return tg_err_set(err, "%s: empty %s", what, k->value);
    sqlite3_stmt *st = stmt(s, k->st_add, err);
    if (!st) return -1;
    bind_field(st, 1, r.tenant, r.tenant_cap, 0);
    bind_field(st, 2, r.action, r.action_cap, 0);
    bind_field(st, 3, r.value, r.value_cap, 0);
    sqlite3_bind_int64(st, 4, r.created_us ? r.created_us : tg_wall_us());
    int ret = mutate_bump(s, st, ST_POLICY_BUMP, what, err);
    if (ret == TG_STORE_EXISTS)
        tg_err_set(err, "%s %s %s%.*s%s %s already exists", k->what, action, k->q, (int)r.value_cap,
                   r.value, k->q, rule_owner(r.tenant, owner, sizeof owner));
    return ret;
}

static int rule_rm(sq_store_t *s, const rule_kind_t *k, const char *tenant, const char *action,
                   const char *value, tg_err_t *err)
{
    char what[32], owner[96];
    snprintf(what, sizeof what, "%s rm", k->what);
    sqlite3_stmt *st = stmt(s, k->st_rm, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    int ret = mutate_bump(s, st, ST_POLICY_BUMP, what, err);
    if (ret == TG_STORE_NOTFOUND)
        tg_err_set(err, "no %s %s %s%s%s %s", k->what, action, k->q, value, k->q,
                   rule_owner(tenant, owner, sizeof owner));
    return ret;
}

static int rule_list(sq_store_t *s, const rule_kind_t *k, const char *tenant, emit_fn emit,
                     sink_t sink, tg_err_t *err)
{
    char what[32];
    snprintf(what, sizeof what, "%s list", k->what);
    return each_row(s, k->st_list, tenant, emit, sink, what, err);
}

/* A rule row's columns: tenant, action, value, created_us. */
static void read_rule(sqlite3_stmt *st, char *tenant, size_t tcap, char *action, size_t acap,
                      char *value, size_t vcap, int64_t *created_us)
{
    copy_col(tenant, tcap, st, 0);
    copy_col(action, acap, st, 1);
    copy_col(value, vcap, st, 2);
    *created_us = sqlite3_column_int64(st, 3);
}

static int emit_ip_rule(sqlite3_stmt *st, const sink_t *k)
{
    tg_ip_rule_row_t r;
    memset(&r, 0, sizeof r);
    read_rule(st, r.tenant, sizeof r.tenant, r.action, sizeof r.action, r.cidr, sizeof r.cidr,
              &r.created_us);
    return SINK_CALL(tg_ip_rule_row_t, k, &r);
}

static int sq_ip_rule_add(tg_store_t *base, const tg_ip_rule_row_t *row, tg_err_t *err)
{
    return rule_add((sq_store_t *)base, &ip_rules, RULE_FIELDS(row, cidr), err);
}

static int sq_ip_rule_rm(tg_store_t *base, const char *tenant, const char *action, const char *cidr,
                         tg_err_t *err)
{
    return rule_rm((sq_store_t *)base, &ip_rules, tenant, action, cidr, err);
}

static int sq_ip_rule_list(tg_store_t *base, const char *tenant,
                           int (*cb)(const tg_ip_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return rule_list((sq_store_t *)base, &ip_rules, tenant, emit_ip_rule,
                     SINK(tg_ip_rule_row_t, cb, ud), err);
}

/* ---- prices, budgets, alerts, tool rules --------------------------------- */

static int valid_meter(const char *m)
{
    return strcmp(m, "model") == 0 || strcmp(m, "route") == 0 || strcmp(m, "tool") == 0;
}

/* Amounts: -1 (not set in this row) is NULL in the table, and back. */
static void bind_amount(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == -1)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static int64_t col_amount(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
}

/* "2026-03-01T00:00:00.000Z", for messages about an effective time. */
static const char *iso(int64_t us, char buf[25])
{
    tg_utc_iso(us, buf);
    return buf;
}

/* The table's CHECKs in words: each meter has its own amounts; a row sets at least one. */
static int check_price(const tg_price_row_t *r, tg_err_t *err)
{
    char meter[sizeof r->meter + 1];
    snprintf(meter, sizeof meter, "%.*s", (int)sizeof r->meter, r->meter);
    if (!valid_meter(meter))
        return tg_err_set(err, "price set: invalid meter \"%s\" (expected model, route or tool)",
                          meter);
    if (!r->name[0]) return tg_err_set(err, "price set: empty name");
    if (r->effective_us < 0) return tg_err_set(err, "price set: effective time before 1970");
    static const char *const names[7] = {"input",   "output", "cached", "cache_write",
                                         "request", "gb",     "call"};
    static const char *const owner[7] = {"model", "model", "model", "model",
                                         "route", "route", "tool"};
    const int64_t v[7] = {r->input_micros,       r->output_micros,  r->cached_micros,
                          r->cache_write_micros, r->request_micros, r->gb_micros,
                          r->call_micros};
    int any = 0;
    for (int i = 0; i < 7; i++) {
        if (v[i] == -1) continue;
        if (v[i] < 0)
            return tg_err_set(err, "price set: negative %s amount %lld", names[i], (long long)v[i]);
        if (strcmp(owner[i], meter) != 0)
            return tg_err_set(err, "price set: a %s price has no %s amount", meter, names[i]);
        any = 1;
    }
    if (!any) return tg_err_set(err, "price set: the row sets no amount");
    return 0;
}

static int sq_price_set(tg_store_t *base, const tg_price_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (check_price(row, err) != 0) return -1;
    sqlite3_stmt *st = stmt(s, ST_PRICE_SET, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, meter);
    BIND_ROW(st, 2, row, name);
    sqlite3_bind_int64(st, 3, row->effective_us);
    bind_amount(st, 4, row->input_micros);
    bind_amount(st, 5, row->output_micros);
    bind_amount(st, 6, row->cached_micros);
    bind_amount(st, 7, row->cache_write_micros);
    bind_amount(st, 8, row->request_micros);
    bind_amount(st, 9, row->gb_micros);
    bind_amount(st, 10, row->call_micros);
    sqlite3_bind_int64(st, 11, row->created_us ? row->created_us : tg_wall_us());
    return mutate_bump(s, st, ST_POLICY_BUMP, "price set", err);
}

static int sq_price_rm(tg_store_t *base, const char *meter, const char *name, int64_t effective_us,
                       tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int all = effective_us == -1;
    sqlite3_stmt *st = stmt(s, all ? ST_PRICE_RM_ALL : ST_PRICE_RM, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, meter, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (!all) sqlite3_bind_int64(st, 3, effective_us);
    int ret = mutate_bump(s, st, ST_POLICY_BUMP, "price rm", err);
    if (ret == TG_STORE_NOTFOUND) {
        char when[25];
        if (all)
            tg_err_set(err, "no price for %s \"%s\"", meter, name);
        else
            tg_err_set(err, "no price for %s \"%s\" from %s", meter, name, iso(effective_us, when));
    }
    return ret;
}

static int emit_price(sqlite3_stmt *st, const sink_t *k)
{
    tg_price_row_t r;
    memset(&r, 0, sizeof r);
    copy_col(r.meter, sizeof r.meter, st, 0);
    copy_col(r.name, sizeof r.name, st, 1);
    r.effective_us = sqlite3_column_int64(st, 2);
    r.input_micros = col_amount(st, 3);
    r.output_micros = col_amount(st, 4);
    r.cached_micros = col_amount(st, 5);
    r.cache_write_micros = col_amount(st, 6);
    r.request_micros = col_amount(st, 7);
    r.gb_micros = col_amount(st, 8);
    r.call_micros = col_amount(st, 9);
    r.created_us = sqlite3_column_int64(st, 10);
    return SINK_CALL(tg_price_row_t, k, &r);
}

static int sq_price_list(tg_store_t *base, int (*cb)(const tg_price_row_t *, void *), void *ud,
                         tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_PRICE_LIST, NULL, emit_price,
                    SINK(tg_price_row_t, cb, ud), "price list", err);
}

#define MAX_THRESHOLD 1000 /* percent: alerts up to ten times the budget */
#define NTHRESHOLDS   ((int)(sizeof((tg_budget_row_t *)0)->thresholds / sizeof(int)))

static int check_budget(const tg_budget_row_t *r, tg_err_t *err)
{
    if (!r->tenant[0]) return tg_err_set(err, "budget set: empty tenant");
    if (r->monthly_micros <= 0) return tg_err_set(err, "budget set: the budget must be above 0");
    if (r->hard != 0 && r->hard != 1) return tg_err_set(err, "budget set: hard must be 0 or 1");
    if (r->nthresholds < 0 || r->nthresholds > NTHRESHOLDS)
        return tg_err_set(err, "budget set: %d thresholds (at most %d)", r->nthresholds,
                          NTHRESHOLDS);
    for (int i = 0; i < r->nthresholds; i++) {
        if (r->thresholds[i] < 1 || r->thresholds[i] > MAX_THRESHOLD)
            return tg_err_set(err, "budget set: threshold %d%% (expected 1 to %d)",
                              r->thresholds[i], MAX_THRESHOLD);
        if (i && r->thresholds[i] <= r->thresholds[i - 1])
            return tg_err_set(err, "budget set: thresholds must ascend (%d after %d)",
                              r->thresholds[i], r->thresholds[i - 1]);
    }
    return 0;
}

/* "80,90,100" and back. Reading is lenient (a row written by hand): what is not a
 * number in range is skipped, and at most NTHRESHOLDS are kept. */
static void thresholds_text(const tg_budget_row_t *r, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->nthresholds && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", r->thresholds[i]);
}

static void thresholds_parse(const char *s, tg_budget_row_t *r)
{
    r->nthresholds = 0;
    while (s && *s && r->nthresholds < NTHRESHOLDS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end != s && v >= 1 && v <= MAX_THRESHOLD) r->thresholds[r->nthresholds++] = (int)v;
        s = end != s ? end : s + 1;
        while (*s == ',' || *s == ' ')
            s++;
    }
}

static int sq_budget_set(tg_store_t *base, const tg_budget_row_t *row, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (check_budget(row, err) != 0) return -1;
    char th[NTHRESHOLDS * 5 + 1];
    thresholds_text(row, th, sizeof th);
    sqlite3_stmt *st = stmt(s, ST_BUDGET_SET, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, tenant);
    sqlite3_bind_int64(st, 2, row->monthly_micros);
    sqlite3_bind_int(st, 3, row->hard);
    sqlite3_bind_text(st, 4, th, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, row->updated_us ? row->updated_us : tg_wall_us());
    return mutate_bump(s, st, ST_POLICY_BUMP, "budget set", err);
}

static int sq_budget_rm(tg_store_t *base, const char *tenant, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_stmt *st = stmt(s, ST_BUDGET_RM, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int ret = mutate_bump(s, st, ST_POLICY_BUMP, "budget rm", err);
    if (ret == TG_STORE_NOTFOUND) tg_err_set(err, "no budget for tenant \"%s\"", tenant);
    return ret;
}

static int emit_budget(sqlite3_stmt *st, const sink_t *k)
{
    tg_budget_row_t r;
    memset(&r, 0, sizeof r);
    copy_col(r.tenant, sizeof r.tenant, st, 0);
    r.monthly_micros = sqlite3_column_int64(st, 1);
    r.hard = sqlite3_column_int(st, 2) != 0;
    thresholds_parse((const char *)sqlite3_column_text(st, 3), &r);
    r.updated_us = sqlite3_column_int64(st, 4);
    return SINK_CALL(tg_budget_row_t, k, &r);
}

static int sq_budget_list(tg_store_t *base, const char *tenant,
                          int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_BUDGET_LIST, tenant, emit_budget,
                    SINK(tg_budget_row_t, cb, ud), "budget list", err);
}

/* "YYYY-MM" with a month from 01 to 12. */
static int valid_period(const char *p, size_t cap)
{
    if (strnlen(p, cap) != 7 || p[4] != '-') return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (p[i] < '0' || p[i] > '9')) return 0;
    int month = (p[5] - '0') * 10 + (p[6] - '0');
    return month >= 1 && month <= 12;
}

/* One statement in autocommit: atomic on its own, and whether it inserted is what
 * sqlite3_changes says. */
static int sq_alert_add(tg_store_t *base, const tg_alert_row_t *row, int *inserted, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (inserted) *inserted = 0;
    if (!row->kind[0] || !row->tenant[0]) return tg_err_set(err, "alert add: empty kind or tenant");
    if (!valid_period(row->period, sizeof row->period))
        return tg_err_set(err, "alert add: invalid period \"%.*s\" (expected YYYY-MM)",
                          (int)sizeof row->period, row->period);
    sqlite3_stmt *st = stmt(s, ST_ALERT_ADD, err);
    if (!st) return -1;
    BIND_ROW(st, 1, row, kind);
    BIND_ROW(st, 2, row, tenant);
    sqlite3_bind_int(st, 3, row->threshold);
    BIND_ROW(st, 4, row, period);
    sqlite3_bind_int64(st, 5, row->spend_micros);
    sqlite3_bind_int64(st, 6, row->budget_micros);
    sqlite3_bind_int64(st, 7, row->fired_us ? row->fired_us : tg_wall_us());
    int rc = run(st);
    if (rc != SQLITE_OK) return fail(s, rc, "alert add", err);
    if (inserted) *inserted = sqlite3_changes(s->db) > 0;
    return 0;
}

static int emit_alert(sqlite3_stmt *st, const sink_t *k)
{
    tg_alert_row_t r;
    memset(&r, 0, sizeof r);
    r.id = sqlite3_column_int64(st, 0);
    copy_col(r.kind, sizeof r.kind, st, 1);
    copy_col(r.tenant, sizeof r.tenant, st, 2);
    r.threshold = sqlite3_column_int(st, 3);
    copy_col(r.period, sizeof r.period, st, 4);
    r.spend_micros = sqlite3_column_int64(st, 5);
    r.budget_micros = sqlite3_column_int64(st, 6);
    r.fired_us = sqlite3_column_int64(st, 7);
    return SINK_CALL(tg_alert_row_t, k, &r);
}

static int sq_alert_list(tg_store_t *base, const char *tenant,
                         int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err)
{
    return each_row((sq_store_t *)base, ST_ALERT_LIST, tenant, emit_alert,
                    SINK(tg_alert_row_t, cb, ud), "alert list", err);
}

/* A read of the (tenant_id, day) primary key: at most 31 rows for a month. */
static int sq_spend(tg_store_t *base, const char *tenant, const char *from_day, const char *to_day,
                    int64_t *micros, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    *micros = 0;
    if (!tenant || !from_day || !to_day) return tg_err_set(err, "spend: missing argument");
    sqlite3_stmt *st = stmt(s, ST_SPEND, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, from_day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, to_day, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        *micros = sqlite3_column_int64(st, 0);
    else
        ret = fail(s, rc, "spend", err);
    sqlite3_reset(st);
    return ret;
}

static int emit_tool_rule(sqlite3_stmt *st, const sink_t *k)
{
    tg_tool_rule_row_t r;
    memset(&r, 0, sizeof r);
    read_rule(st, r.tenant, sizeof r.tenant, r.action, sizeof r.action, r.pattern, sizeof r.pattern,
              &r.created_us);
    return SINK_CALL(tg_tool_rule_row_t, k, &r);
}

static int sq_tool_rule_add(tg_store_t *base, const tg_tool_rule_row_t *row, tg_err_t *err)
{
    return rule_add((sq_store_t *)base, &tool_rules, RULE_FIELDS(row, pattern), err);
}

static int sq_tool_rule_rm(tg_store_t *base, const char *tenant, const char *action,
                           const char *pattern, tg_err_t *err)
{
    return rule_rm((sq_store_t *)base, &tool_rules, tenant, action, pattern, err);
}

static int sq_tool_rule_list(tg_store_t *base, const char *tenant,
                             int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return rule_list((sq_store_t *)base, &tool_rules, tenant, emit_tool_rule,
                     SINK(tg_tool_rule_row_t, cb, ud), err);
}

/* ---- usage events ------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static uint32_t agg_hash(const char *tenant, int64_t day)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (h ^ (uint32_t)day) * 16777619u;
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

static const char *outcome_text(int32_t o)
{
    /* An out-of-range outcome is a recorder bug; recording it as failed keeps
     * the event (and never bills it) rather than letting the CHECK constraint
     * make INSERT OR IGNORE drop it silently. */
    switch (o) {
    case TG_OUTCOME_BILLABLE: return "billable";
    case TG_OUTCOME_REJECTED: return "rejected";
    default: return "failed";
    }
}

/* Binds ev to parameters b+1 .. b+EV_NCOLS. */
static void bind_event(sqlite3_stmt *st, int b, const tg_event_t *ev, int64_t id)
{
    sqlite3_bind_int64(st, b + 1, id);
    sqlite3_bind_int64(st, b + 2, ev->ts_us);
    BIND_STR(st, b + 3, ev, tenant);
    BIND_OPT(st, b + 4, ev, key_id);
    BIND_OPT(st, b + 5, ev, route);
    BIND_STR(st, b + 6, ev, method);
    BIND_STR(st, b + 7, ev, path);
    sqlite3_bind_int(st, b + 8, ev->status);
    sqlite3_bind_text(st, b + 9, outcome_text(ev->outcome), -1, SQLITE_STATIC);
    BIND_OPT(st, b + 10, ev, reason);
    sqlite3_bind_int64(st, b + 11, ev->latency_us);
    sqlite3_bind_int64(st, b + 12, ev->bytes_in);
    sqlite3_bind_int64(st, b + 13, ev->bytes_out);
    BIND_OPT(st, b + 14, ev, model);
    bind_opt_int(st, b + 15, ev->tokens_in);
    bind_opt_int(st, b + 16, ev->tokens_out);
    bind_opt_int(st, b + 17, ev->tokens_cached);
    BIND_OPT(st, b + 18, ev, tool);
    sqlite3_bind_int64(st, b + 19, ev->cost_micros);
    BIND_OPT(st, b + 20, ev, cache);
    BIND_OPT(st, b + 21, ev, client_ip);
    BIND_OPT(st, b + 22, ev, request_id);
    BIND_OPT(st, b + 23, ev, upstream);
    bind_opt_int(st, b + 24, ev->tokens_cache_write);
    BIND_OPT(st, b + 25, ev, rpc_method);
    BIND_OPT(st, b + 26, ev, price_flag);
    sqlite3_bind_int64(st, b + 27, tg_event_count(ev));
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

/* The id to try next for an event whose id another event holds. Derived from
 * the event itself, not drawn at random, so a replay of the same batch walks
 * the same sequence, finds its earlier copy and skips it. The top bits (the
 * millisecond) stay, so the id stays time-ordered. */
static int64_t next_id(const tg_event_t *ev, int64_t id, int attempt)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
    const unsigned char *p = (const unsigned char *)ev->request_id;
    for (size_t i = 0; i < sizeof ev->request_id && p[i]; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    p = (const unsigned char *)ev->tenant;
    for (size_t i = 0; i < sizeof ev->tenant && p[i]; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    uint64_t mix[2] = {(uint64_t)ev->ts_us, (uint64_t)attempt};
    p = (const unsigned char *)mix;
    for (size_t i = 0; i < sizeof mix; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    const int64_t low = (1 << ID_LOW_BITS) - 1;
    return (id & ~low) | (int64_t)(h & (uint64_t)low);
}

static void agg_add(sq_store_t *s, size_t *ngroups, const tg_event_t *ev)
{
    int64_t day = floor_div(ev->ts_us, DAY_US);
    size_t mask = s->slots_cap - 1;
    size_t i = agg_hash(ev->tenant, day) & mask;
    agg_t *g = NULL;
    for (; s->slots[i]; i = (i + 1) & mask) {
        agg_t *c = &s->aggs[s->slots[i] - 1];
        if (c->day == day && strcmp(c->tenant, ev->tenant) == 0) {
            g = c;
            break;
        }
    }
    if (!g) {
        g = &s->aggs[*ngroups];
        memset(g, 0, sizeof *g);
        g->tenant = ev->tenant;
        g->day = day;
        s->slots[i] = (uint32_t)++ * ngroups;
    }
    int64_t n = tg_event_count(ev); /* an aggregate of refusals stands for n requests */
    g->requests += n;
    g->billable += n * (ev->outcome == TG_OUTCOME_BILLABLE);
    g->rejected += n * (ev->outcome == TG_OUTCOME_REJECTED);
    g->failed += n * (ev->outcome != TG_OUTCOME_BILLABLE && ev->outcome != TG_OUTCOME_REJECTED);
    g->bytes_in += ev->bytes_in;
    g->bytes_out += ev->bytes_out;
    if (ev->tokens_in > 0) g->tokens_in += ev->tokens_in;
    if (ev->tokens_out > 0) g->tokens_out += ev->tokens_out;
    if (ev->tokens_cached > 0) g->tokens_cached += ev->tokens_cached;
    g->cost_micros += ev->cost_micros;
}

/* api_keys.last_used_us: the newest authenticated request of each key in the
 * batch (a refused revoked key or disabled tenant is not a use). max() keeps a
 * replayed batch harmless. Batches hold few distinct keys, so a short linear
 * table; past its size it is written out and started again. */
static int mark_keys_used(sq_store_t *s, const tg_event_t *evs, size_t n, tg_err_t *err)
{
    enum { MAXK = 64 };
    const char *ids[MAXK];
    int64_t ts[MAXK];
    size_t k = 0;
    sqlite3_stmt *st = stmt(s, ST_KEY_USED, err);
    if (!st) return SQLITE_ERROR;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || k == MAXK) {
            for (size_t j = 0; j < k; j++) {
                sqlite3_bind_text(st, 1, ids[j], -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, ts[j]);
                int rc = run(st);
                if (rc != SQLITE_OK) return rc;
            }
            k = 0;
            if (i == n) break;
        }
        const tg_event_t *ev = &evs[i];
        if (!ev->key_id[0] || strcmp(ev->reason, "revoked_key") == 0 ||
            strcmp(ev->reason, "tenant_disabled") == 0)
            continue;
        size_t j = 0;
        while (j < k && strcmp(ids[j], ev->key_id) != 0)
            j++;
        if (j == k) {
            ids[k] = ev->key_id;
            ts[k++] = ev->ts_us;
        } else if (ev->ts_us > ts[j]) {
            ts[j] = ev->ts_us;
        }
    }
    return SQLITE_OK;
}

static int cmp_fast(const void *a, const void *b)
{
    int64_t x = ((const fast_ev_t *)a)->id, y = ((const fast_ev_t *)b)->id;
    return (x > y) - (x < y);
}

static int sq_append(tg_store_t *base, const tg_event_t *evs, size_t n, size_t *inserted,
                     tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (inserted) *inserted = 0;
    if (n == 0) return 0;

    sqlite3_stmt *ins = stmt(s, ST_EV_INSERT, err);
    sqlite3_stmt *multi = ins ? stmt(s, ST_EV_INSERT_MULTI, err) : NULL;
    sqlite3_stmt *maxid = multi ? stmt(s, ST_EV_MAX_ID, err) : NULL;
    sqlite3_stmt *peek = maxid ? stmt(s, ST_EV_PEEK, err) : NULL;
    sqlite3_stmt *up = peek ? stmt(s, ST_DAILY_UPSERT, err) : NULL;
    if (!up) return s->shm.lost ? TG_STORE_BUSY : -1; /* busy: the recorder spools */
    if (scratch_reserve(s, n) != 0) return tg_err_set(err, "append: out of memory");
    memset(s->slots, 0, s->slots_cap * sizeof *s->slots);
    memset(s->done, 0, n);

    int ret = begin(s, "append", err);
    if (ret != 0) return ret;

    size_t added = 0, ngroups = 0;
    int rc = SQLITE_OK;

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
        if (evs[i].id > max_id) s->fast[nfast++] = (fast_ev_t){evs[i].id, (uint32_t)i};
    qsort(s->fast, nfast, sizeof *s->fast, cmp_fast);
    size_t u = 0; /* unique ids, compacted to the front */
    for (size_t j = 0; j < nfast; j++)
        if (u == 0 || s->fast[j].id != s->fast[u - 1].id) s->fast[u++] = s->fast[j];
    for (size_t j = 0; j + MULTI_ROWS <= u; j += MULTI_ROWS) {
        for (int r = 0; r < MULTI_ROWS; r++) {
            const tg_event_t *ev = &evs[s->fast[j + r].idx];
            bind_event(multi, r * EV_NCOLS, ev, ev->id);
        }
        if ((rc = run(multi)) != SQLITE_OK) goto fail;
        if (sqlite3_changes(s->db) != MULTI_ROWS) {
            tg_err_set(err, "append: fast path inserted %d of %d events", sqlite3_changes(s->db),
                       MULTI_ROWS);
            rollback(s);
            return -1;
        }
        for (int r = 0; r < MULTI_ROWS; r++) {
            s->done[s->fast[j + r].idx] = 1;
            agg_add(s, &ngroups, &evs[s->fast[j + r].idx]);
        }
        added += MULTI_ROWS;
    }

    for (size_t i = 0; i < n; i++) {
        if (s->done[i]) continue;
        const tg_event_t *ev = &evs[i];
        int64_t id = ev->id;
        for (int attempt = 0;; attempt++) {
            bind_event(ins, 0, ev, id);
            rc = run(ins);
            if (rc != SQLITE_OK) goto fail;
            if (sqlite3_changes(s->db) == 1) {
                added++;
                agg_add(s, &ngroups, ev);
                break;
            }
            int same = same_event(peek, ev, id);
            if (same == 1) break; /* already stored: a replay */
            if (same == -2) {
                tg_err_set(err, "append: event %lld refused by a constraint", (long long)id);
                rollback(s);
                return -1;
            }
            if (same != 0) {
                rc = same;
                goto fail;
            }
            if (attempt == MAX_ID_RETRIES) {
                tg_err_set(err, "append: no free id for event %lld", (long long)ev->id);
                rollback(s);
                return -1;
            }
            id = next_id(ev, ev->id, attempt + 1);
        }
    }

    for (size_t g = 0; g < ngroups; g++) {
        const agg_t *a = &s->aggs[g];
        char day[11];
        tg_utc_day(a->day * DAY_US, day);
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
        rc = run(up);
        if (rc != SQLITE_OK) goto fail;
    }

    rc = mark_keys_used(s, evs, n, err);
    if (rc != SQLITE_OK) goto fail;

    ret = commit(s, "append", err);
    if (ret == 0 && inserted) *inserted = added;
    return ret;

fail:
    ret = fail(s, rc, "append", err);
    rollback(s);
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
        sqlite3_stmt *st = stmt(s, ST_PURGE_EVENTS, err);
        if (!st) return s->shm.lost ? TG_STORE_BUSY : -1;
        for (;;) {
            if ((ret = begin(s, "purge", err)) != 0) goto out;
            sqlite3_bind_int64(st, 1, events_before_us);
            sqlite3_bind_int(st, 2, PURGE_CHUNK);
            if ((rc = run(st)) != SQLITE_OK) {
                ret = fail(s, rc, "purge", err);
                rollback(s);
                goto out;
            }
            int64_t n = sqlite3_changes(s->db);
            if ((ret = commit(s, "purge", err)) != 0) goto out;
            total += n;
            if (n < PURGE_CHUNK) break;
        }
    }
    if (agg_before_day) {
        sqlite3_stmt *st = stmt(s, ST_PURGE_DAILY, err);
        if (!st) {
            ret = -1;
            goto out;
        }
        if ((ret = begin(s, "purge", err)) != 0) goto out;
        sqlite3_bind_text(st, 1, agg_before_day, -1, SQLITE_STATIC);
        if ((rc = run(st)) != SQLITE_OK) {
            ret = fail(s, rc, "purge", err);
            rollback(s);
            goto out;
        }
        int64_t n = sqlite3_changes(s->db);
        if ((ret = commit(s, "purge", err)) != 0) goto out;
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
    char sql[1024];
    char from_day[11], to_day[11];

    if (q->by == TG_BY_DAY) {
        /* Days are whole: from is the day holding from_us, to the day before
         * the (exclusive) to_us. */
        if (q->from_us) tg_utc_day(q->from_us, from_day);
        if (q->to_us) tg_utc_day(q->to_us - 1, to_day);
        snprintf(sql, sizeof sql,
                 "SELECT tenant_id, day, requests, billable, failed, rejected, bytes_in, "
                 "bytes_out, tokens_in, tokens_out, cost_micros FROM usage_daily WHERE %s"
                 "(?2 IS NULL OR day >= ?2) AND (?3 IS NULL OR day <= ?3) "
                 "ORDER BY tenant_id, day",
                 q->tenant ? "tenant_id = ?1 AND " : "");
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
        snprintf(sql, sizeof sql,
                 "SELECT tenant, %s AS grp, sum(requests), sum(requests * (outcome = 'billable')), "
                 "sum(requests * (outcome = 'failed')), sum(requests * (outcome = 'rejected')), "
                 "sum(bytes_in), "
                 "sum(bytes_out), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
                 "sum(cost_micros) FROM usage_events WHERE %sts_us >= ?2 AND ts_us < ?3 "
                 "GROUP BY tenant, grp ORDER BY tenant, grp",
                 grp, q->tenant ? "tenant = ?1 AND " : "");
    }

    sqlite3_stmt *st = NULL;
    if (tg_walshm_check(&s->shm, err) != 0) return TG_STORE_BUSY;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return fail(s, rc, "usage", err);
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
        r.tenant = (const char *)sqlite3_column_text(st, 0);
        r.group = (const char *)sqlite3_column_text(st, 1);
        if (!r.tenant) r.tenant = "";
        if (!r.group) r.group = "";
        r.requests = sqlite3_column_int64(st, 2);
        r.billable = sqlite3_column_int64(st, 3);
        r.failed = sqlite3_column_int64(st, 4);
        r.rejected = sqlite3_column_int64(st, 5);
        r.bytes_in = sqlite3_column_int64(st, 6);
        r.bytes_out = sqlite3_column_int64(st, 7);
        r.tokens_in = sqlite3_column_int64(st, 8);
        r.tokens_out = sqlite3_column_int64(st, 9);
        r.cost_micros = sqlite3_column_int64(st, 10);
        ret = cb(&r, ud);
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = fail(s, rc, "usage", err);
    sqlite3_finalize(st);
    return ret;
}

static int sq_writable(tg_store_t *base, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (begin(s, "store not writable", err) != 0) return TG_STORE_BUSY;
    rollback(s);
    return 0;
}

static int sq_set_busy_timeout(tg_store_t *base, long ms, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int rc = sqlite3_busy_timeout(s->db, ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms);
    return rc == SQLITE_OK ? 0 : fail(s, rc, "busy timeout", err);
}

/* ---- open, migrate, close ---------------------------------------------- */

/* Connections closed after their WAL index was lost: kept open and reachable from here,
 * so leak checkers do not report what is left open on purpose. */
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static sq_store_t *abandoned;

static void sq_close(tg_store_t *base)
{
    sq_store_t *s = (sq_store_t *)base;
    /* With its WAL index lost, closing (which may checkpoint through the mapping) could
     * be SIGBUS: the connection is left open, and the process ends soon anyway. */
    if (tg_walshm_check(&s->shm, NULL) != 0) {
        pthread_mutex_lock(&abandoned_mu);
        s->abandoned_next = abandoned;
        abandoned = s;
        pthread_mutex_unlock(&abandoned_mu);
        return;
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db);
    tg_walshm_release(&s->shm);
    free(s->aggs);
    free(s->slots);
    free(s->fast);
    free(s->done);
    free(s);
}

static int exec(sq_store_t *s, const char *sql, const char *what, tg_err_t *err)
{
    if (tg_walshm_check(&s->shm, err) != 0) return TG_STORE_BUSY;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(s, rc, what, err);
}

static int query_int(sq_store_t *s, const char *sql, int64_t bind, int64_t *out, int *found)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, bind);
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Applies every migration newer than the database, each in its own
 * transaction. Two processes opening a new database at once both get here:
 * the version is checked again under the write lock, so each migration runs
 * exactly once. */
static int migrate(sq_store_t *s, tg_err_t *err)
{
    if (exec(s, tg_store_migrations_bootstrap, "migrations", err) != 0) return -1;
    int64_t cur = 0;
    int found, rc;
    rc = query_int(s, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, &cur, &found);
    if (rc != SQLITE_OK) return fail(s, rc, "migrations", err);
    const tg_migration_t *last = &tg_store_migrations[tg_store_nmigrations - 1];
    if (cur > last->version)
        return tg_err_set(err,
                          "database schema version %lld is newer than this tollgate knows "
                          "(%d): upgrade tollgate",
                          (long long)cur, last->version);

    for (size_t i = 0; i < tg_store_nmigrations; i++) {
        const tg_migration_t *m = &tg_store_migrations[i];
        if (m->version <= cur) continue;
        char what[96];
        snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
        if (exec(s, "BEGIN IMMEDIATE", what, err) != 0) return -1;
        int64_t one;
        rc = query_int(s, "SELECT 1 FROM schema_migrations WHERE version = ?1", m->version, &one,
                       &found);
        if (rc == SQLITE_OK && found) { /* another process was first */
            rollback(s);
            continue;
        }
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, m->sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_stmt *st = NULL;
            rc = sqlite3_prepare_v2(s->db,
                                    "INSERT INTO schema_migrations (version, name, applied_us) "
                                    "VALUES (?1, ?2, ?3)",
                                    -1, &st, NULL);
            if (rc == SQLITE_OK) {
                sqlite3_bind_int(st, 1, m->version);
                sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, tg_wall_us());
                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE) rc = SQLITE_OK;
            }
            sqlite3_finalize(st);
        }
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            int ret = fail(s, rc, what, err);
            rollback(s);
            return ret;
        }
    }
    return 0;
}

int tg_sqlite_open(const char *path, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    sq_store_t *s = calloc(1, sizeof *s);
    if (!s) return tg_err_set(err, "out of memory");
    s->base = sqlite_tables;

    /* NOMUTEX: a connection belongs to one thread (store.h), so SQLite's
     * per-connection mutex would only cost. */
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        tg_err_set(err, "cannot open store %s: %s", path,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto err;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, TG_STORE_BUSY_TIMEOUT_MS);

    /* Before the first statement maps the WAL index: a -shm that cannot be written is
     * refused here, with its name, rather than found later (walshm.h). A read-only
     * connection (a read-only database file) does not need to write it. */
    const char *file = sqlite3_db_filename(s->db, "main");
    int file_backed = file && *file;
    if (file_backed && !sqlite3_db_readonly(s->db, "main") && tg_walshm_precheck(file, err) != 0) {
        char msg[sizeof err->msg];
        if (err) {
            snprintf(msg, sizeof msg, "%s", err->msg);
            tg_err_set(err, "store %s: %s", path, msg);
        }
        goto err;
    }

    /* WAL is a property of the file and persists; setting it again is a no-op.
     * An in-memory database answers "memory", which is fine for tests. */
    char what[300];
    snprintf(what, sizeof what, "store %s", path);
    if (exec(s, "PRAGMA journal_mode = WAL", what, err) != 0) goto err;
    if (exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", what, err) != 0) goto err;
    /* Checkpoint every 4000 pages (16 MB of WAL) rather than SQLite's 1000:
     * index leaves rewritten by every batch are then copied to the database
     * file once per checkpoint instead of four times, which measured ~10%
     * more appends per second. Only the committing connection checkpoints,
     * so this is the writer's setting in practice. */
    if (exec(s, "PRAGMA wal_autocheckpoint = 4000", what, err) != 0) goto err;
    if (migrate(s, err) != 0) {
        char msg[sizeof err->msg];
        if (err) {
            snprintf(msg, sizeof msg, "%s", err->msg);
            tg_err_set(err, "store %s: %s", path, msg);
        }
        goto err;
    }
    /* Mapped now (migrations read it): guard the file SQLite mapped. */
    if (file_backed && tg_walshm_arm(&s->shm, file, err) != 0) goto err;
    *out = &s->base;
    return 0;

err:
    sq_close(&s->base);
    return -1;
}

static const struct tg_store_life_ops life_ops = {
    .close = sq_close,
    .writable = sq_writable,
    .set_busy_timeout = sq_set_busy_timeout,
};

static const struct tg_store_event_ops event_ops = {
    .append = sq_append,
    .purge = sq_purge,
    .usage = sq_usage,
    .spend = sq_spend,
};

static const struct tg_store_tenant_ops tenant_ops = {
    .tenant_add = sq_tenant_add,
    .tenant_get = sq_tenant_get,
    .tenant_list = sq_tenant_list,
    .tenant_set_status = sq_tenant_set_status,
    .key_add = sq_key_add,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .auth_load = sq_auth_load,
    .auth_version = sq_auth_version,
};

static const struct tg_store_policy_ops policy_ops = {
    .policy_version = sq_policy_version,
    .limit_set = sq_limit_set,
    .limit_rm = sq_limit_rm,
    .limit_list = sq_limit_list,
    .pause_set = sq_pause_set,
    .pause_clear = sq_pause_clear,
    .pause_list = sq_pause_list,
    .ip_rule_add = sq_ip_rule_add,
    .ip_rule_rm = sq_ip_rule_rm,
    .ip_rule_list = sq_ip_rule_list,
    .tool_rule_add = sq_tool_rule_add,
    .tool_rule_rm = sq_tool_rule_rm,
    .tool_rule_list = sq_tool_rule_list,
};

static const struct tg_store_price_ops price_ops = {
    .price_set = sq_price_set,
    .price_rm = sq_price_rm,
    .price_list = sq_price_list,
    .budget_set = sq_budget_set,
    .budget_rm = sq_budget_rm,
    .budget_list = sq_budget_list,
};

static const struct tg_store_alert_ops alert_ops = {
    .alert_add = sq_alert_add,
    .alert_list = sq_alert_list,
};

static const tg_store_t sqlite_tables = {
    .life = &life_ops,
    .events = &event_ops,
    .tenants = &tenant_ops,
    .policy = &policy_ops,
    .prices = &price_ops,
    .alerts = &alert_ops,
};
