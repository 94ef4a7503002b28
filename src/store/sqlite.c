/* SQLite store backend: see store.h for the interface, backend.h for the tables of
 * functions it fills, migrations.c for the tables of the database.
 *
 * One tg_store_t is one sqlite3 connection, opened in WAL mode so readers (the
 * CLI, the keyring refresher) never block the writer and the writer blocks no
 * reader. synchronous=NORMAL: a commit is durable once the WAL is synced at
 * checkpoint; a power cut may lose the last commits but never corrupts, which
 * is the same promise the recorder makes (SIGKILL loses at most a flush window).
 *
 * This file opens, migrates and closes a connection and holds what every concern shares
 * (statement cache, transactions, version bumps, lists); each concern's operations are
 * in their own file, with their SQL: sqlite_events.c (the writer's hot path),
 * sqlite_tenants.c, sqlite_policy.c, sqlite_prices.c, sqlite_alerts.c. sqlite_int.h is
 * what they share.
 *
 * Every change to tenants or api_keys also bumps meta.auth_version in the
 * same transaction: that is what auth_version() reads, so a gateway in
 * another process notices a revoked key with one cheap query. Changes to the
 * policy tables (limits, pauses, ip_rules, prices, budgets, tool_rules) bump
 * meta.policy_version the same way; the two are separate so a new limit does
 * not reload the keyring. Alerts are a record, not policy: they bump nothing. */
#include "store/sqlite_int.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/migrations.h"
#include "util/clock.h"

/* IMMEDIATE takes the write lock up front: a busy store fails here, before
 * any work, instead of on the first write (where a deferred transaction
 * could not wait for the lock without risking a deadlock). */
static const sq_sql_t sql_begin = {.slot = ST_BEGIN, .sql = "BEGIN IMMEDIATE"};
static const sq_sql_t sql_commit = {.slot = ST_COMMIT, .sql = "COMMIT"};
static const sq_sql_t sql_rollback = {.slot = ST_ROLLBACK, .sql = "ROLLBACK"};
static const sq_sql_t sql_bump[] = {
    [SQ_AUTH] = {.slot = ST_AUTH_BUMP,
                 .sql = "UPDATE meta SET value = value + 1 WHERE key = 'auth_version'"},
    [SQ_POLICY] = {.slot = ST_POLICY_BUMP,
                   .sql = "UPDATE meta SET value = value + 1 WHERE key = 'policy_version'"},
};
static const sq_sql_t sql_version[] = {
    [SQ_AUTH] = {.slot = ST_AUTH_VERSION,
                 .sql = "SELECT value FROM meta WHERE key = 'auth_version'"},
    [SQ_POLICY] = {.slot = ST_POLICY_VERSION,
                   .sql = "SELECT value FROM meta WHERE key = 'policy_version'"},
};
static const char *const version_name[] = {
    [SQ_AUTH] = "auth_version", [SQ_POLICY] = "policy_version"};

static const struct tg_store_life_ops sq_life_ops;

/* ---- statements and transactions ------------------------------------------------- */

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
int sq_fail(sq_store_t *s, int rc, const char *what, tg_err_t *err)
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

char *sq_rows_sql(const char *head, int cols, int rows, const char *tail)
{
    size_t hn = strlen(head), tn = strlen(tail);
    char *sql = malloc(hn + (size_t)rows * (2 * (size_t)cols + 2) + tn + 1);
    if (!sql) return NULL;
    char *o = sql;
    memcpy(o, head, hn);
    o += hn;
    for (int r = 0; r < rows; r++) {
        if (r) *o++ = ',';
        *o++ = '(';
        for (int i = 0; i < cols; i++) {
            if (i) *o++ = ',';
            *o++ = '?';
        }
        *o++ = ')';
    }
    memcpy(o, tail, tn + 1);
    return sql;
}

/* See sqlite_int.h: every use of the connection starts here (or in sq_exec() and the usage
 * report), so this is where the WAL index is checked before SQLite touches its mapping. */
sqlite3_stmt *sq_stmt(sq_store_t *s, const sq_sql_t *q, tg_err_t *err)
{
    int i = q->slot;
    if (tg_walshm_check(&s->shm, err) != 0) return NULL;
    if (!s->st[i]) {
        char *built = q->build    ? q->build()
                      : q->select ? tg_rowmap_select_sql(q->select, q->sql)
                                  : NULL;
        const char *sql = q->build || q->select ? built : q->sql;
        int rc =
            sql ? sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL)
                : SQLITE_NOMEM;
        free(built);
        if (rc != SQLITE_OK) {
            sq_fail(s, rc, "prepare", err);
            s->st[i] = NULL;
        }
    }
    return s->st[i];
}

static int run_cached(sq_store_t *s, const sq_sql_t *q)
{
    sqlite3_stmt *st = sq_stmt(s, q, NULL);
    return st ? sq_run(st) : s->shm.lost ? SQLITE_IOERR : SQLITE_NOMEM;
}

int sq_begin(sq_store_t *s, const char *what, tg_err_t *err)
{
    int rc = run_cached(s, &sql_begin);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, what, err);
}

/* Rolls back whatever is open. Some errors (IOERR, FULL, BUSY on COMMIT in
 * rare cases) already rolled the transaction back; autocommit says so. */
void sq_rollback(sq_store_t *s)
{
    if (!sqlite3_get_autocommit(s->db)) run_cached(s, &sql_rollback);
}

int sq_commit(sq_store_t *s, const char *what, tg_err_t *err)
{
    int rc = run_cached(s, &sql_commit);
    if (rc == SQLITE_OK) return 0;
    int ret = sq_fail(s, rc, what, err);
    sq_rollback(s);
    return ret;
}

/* ---- binding and reading rows --------------------------------------------------- */

/* Column col as text into dst[cap], truncated to fit, always NUL-terminated. */
static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, t, n);
    dst[n] = '\0';
}

void sq_read_row(sqlite3_stmt *st, const tg_rowmap_t *m, void *row)
{
    memset(row, 0, m->row_size);
    for (int i = 0; i < m->ncols; i++) {
        const tg_col_t *c = &m->cols[i];
        char *f = (char *)row + c->off;
        switch (c->kind) {
        case TG_COL_TEXT: copy_col(f, c->size, st, i); break;
        case TG_COL_INT64: *(int64_t *)(void *)f = sqlite3_column_int64(st, i); break;
        case TG_COL_INT: *(int *)(void *)f = sqlite3_column_int(st, i); break;
        case TG_COL_FLAG: *(int *)(void *)f = sqlite3_column_int(st, i) != 0; break;
        case TG_COL_AMOUNT:
            *(int64_t *)(void *)f =
                sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
            break;
        case TG_COL_DOUBLE: *(double *)(void *)f = sqlite3_column_double(st, i); break;
        case TG_COL_BLOB:
            if (sqlite3_column_bytes(st, i) == (int)c->size)
                memcpy(f, sqlite3_column_blob(st, i), c->size);
            break;
        case TG_COL_STR:
            *(const char **)(void *)f = (const char *)sqlite3_column_text(st, i);
            break;
        case TG_COL_BLOB_PTR: {
            const void *b = sqlite3_column_blob(st, i);
            *(const void **)(void *)f = b && sqlite3_column_bytes(st, i) == (int)c->size ? b : NULL;
            break;
        }
        case TG_COL_ENUM:
            *(int32_t *)(void *)f =
                tg_rowmap_enum(c->names, (int)c->size, (const char *)sqlite3_column_text(st, i));
            break;
        case TG_COL_CUSTOM: c->read((const char *)sqlite3_column_text(st, i), row); break;
        }
    }
}

const tg_rowmap_t *const *const sq_maps[] = {sq_tenant_maps,      sq_event_maps, sq_policy_maps,
                                             sq_price_maps,       sq_alert_maps, sq_alarm_maps,
                                             sq_outbox_maps,      sq_dash_maps,  sq_invoice_maps,
                                             sq_admin_token_maps, NULL};

/* Steps statement q and emits each row until a callback returns nonzero, which is
 * returned as is. A statement with a parameter has ?1 for the tenant filter: bound to
 * tenant, NULL meaning every tenant. what names the list in an error. */
int sq_each_row(sq_store_t *s, const sq_sql_t *q, const char *tenant, sq_emit_fn emit, sink_t k,
                const char *what, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, q, err);
    if (!st) return -1;
    if (sqlite3_bind_parameter_count(st) > 0) {
        if (tenant)
            sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 1);
    }
    return sq_step_each(s, st, emit, k, what, err);
}

int sq_step_each(sq_store_t *s, sqlite3_stmt *st, sq_emit_fn emit, sink_t k, const char *what,
                 tg_err_t *err)
{
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ret = emit(st, &k);
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_fail(s, rc, what, err);
    sqlite3_reset(st);
    return ret;
}

/* The value of one meta row: auth_version or policy_version. */
int sq_read_version(sq_store_t *s, sq_version_t v, const char *what, int64_t *out, tg_err_t *err)
{
    sqlite3_stmt *st = sq_stmt(s, &sql_version[v], err);
    if (!st) return -1;
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        ret = tg_err_set(err, "%s: meta row missing", what);
    else
        ret = sq_fail(s, rc, what, err);
    sqlite3_reset(st);
    return ret;
}

/* ---- changes and versions ------------------------------------------------------- */

/* See sqlite_int.h. Tenants and keys bump auth_version, the policy tables, prices and
 * budgets policy_version. */
int sq_mutate(sq_store_t *s, sqlite3_stmt *st, sq_version_t v, const char *what, tg_err_t *err)
{
    int ret = sq_begin(s, what, err);
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
        default: ret = sq_fail(s, rc, what, err);
        }
        sqlite3_reset(st);
        sq_rollback(s);
        return ret;
    }
    sqlite3_reset(st);
    if (sqlite3_changes(s->db) == 0) {
        sq_rollback(s);
        tg_err_set(err, "%s: not found", what);
        return TG_STORE_NOTFOUND;
    }
    rc = run_cached(s, &sql_bump[v]);
    if (rc != SQLITE_OK) {
        ret = sq_fail(s, rc, what, err);
        sq_rollback(s);
        return ret;
    }
    /* Without its meta row the version would never move and running
     * gateways would miss the change: refuse it instead. */
    if (sqlite3_changes(s->db) != 1) {
        sq_rollback(s);
        return tg_err_set(err, "%s: meta row %s missing", what, version_name[v]);
    }
    return sq_commit(s, what, err);
}

/* ---- lifecycle ------------------------------------------------------------------- */

static int sq_writable(tg_store_t *base, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (sq_begin(s, "store not writable", err) != 0) return TG_STORE_BUSY;
    sq_rollback(s);
    return 0;
}

static int sq_set_busy_timeout(tg_store_t *base, long ms, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int rc = sqlite3_busy_timeout(s->db, ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, "busy timeout", err);
}

/* Connections closed after their WAL index was lost: kept open and reachable from here,
 * so leak checkers do not report what is left open on purpose. */
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static sq_store_t *abandoned;

static void sq_close(tg_store_t *base)
{
    sq_store_t *s = (sq_store_t *)base;
    sq_ckpt_stop(s); /* first: its thread and connection, whatever happens to this one */
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
    free(s->stored);
    free(s->audit);
    free(s->isnew);
    free(s);
}

int sq_exec(sq_store_t *s, const char *sql, const char *what, tg_err_t *err)
{
    if (tg_walshm_check(&s->shm, err) != 0) return TG_STORE_BUSY;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, what, err);
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

/* Applies every migration the database has not applied yet, each in its own
 * transaction. Two processes opening a new database at once both get here:
 * the version is checked again under the write lock, so each migration runs
 * exactly once. */
static int migrate(sq_store_t *s, tg_err_t *err)
{
    if (sq_exec(s, tg_store_migrations_bootstrap, "migrations", err) != 0) return -1;
    int64_t cur = 0;
    int found, rc;
    rc = query_int(s, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, &cur, &found);
    if (rc != SQLITE_OK) return sq_fail(s, rc, "migrations", err);
    const tg_migration_t *last = &tg_store_migrations[tg_store_nmigrations - 1];
    if (cur > last->version)
        return tg_err_set(err,
                          "database schema version %lld is newer than this tollgate knows "
                          "(%d): upgrade tollgate",
                          (long long)cur, last->version);

    /* Each version not applied yet is applied, not only those above the newest applied:
     * migrations written in parallel merge in any order (a store that has 9 still gets a
     * 7 merged after it). The check here takes no lock; the one inside the transaction
     * settles a race with another process. */
    for (size_t i = 0; i < tg_store_nmigrations; i++) {
        const tg_migration_t *m = &tg_store_migrations[i];
        int64_t had;
        rc = query_int(s, "SELECT 1 FROM schema_migrations WHERE version = ?1", m->version, &had,
                       &found);
        if (rc != SQLITE_OK) return sq_fail(s, rc, "migrations", err);
        if (found) continue;
        char what[96];
        snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
        if (sq_exec(s, "BEGIN IMMEDIATE", what, err) != 0) return -1;
        int64_t one;
        rc = query_int(s, "SELECT 1 FROM schema_migrations WHERE version = ?1", m->version, &one,
                       &found);
        if (rc == SQLITE_OK && found) { /* another process was first */
            sq_rollback(s);
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
            int ret = sq_fail(s, rc, what, err);
            sq_rollback(s);
            return ret;
        }
    }
    return 0;
}

/* Opens a connection; readonly: for `tollgate query` (store.h, tg_store_open_readonly):
 * SQLITE_OPEN_READONLY, no migrations, PRAGMA query_only and the authorizer of
 * sqlite_sql.c. */
static int open_conn(const char *path, int readonly, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    sq_store_t *s = calloc(1, sizeof *s);
    if (!s) return tg_err_set(err, "out of memory");
    s->base = (tg_store_t){.life = &sq_life_ops,
                           .events = &sq_event_ops,
                           .tenants = &sq_tenant_ops,
                           .policy = &sq_policy_ops,
                           .prices = &sq_price_ops,
                           .alerts = &sq_alert_ops,
                           .alarms = &sq_alarm_ops,
                           .outbox = &sq_outbox_ops,
                           .dash = &sq_dash_ops,
                           .sql = &sq_sql_ops,
                           .invoices = &sq_invoice_ops,
                           .audit = &sq_audit_ops,
                           .admin_tokens = &sq_admin_token_ops};

    /* NOMUTEX: a connection belongs to one thread (store.h), so SQLite's
     * per-connection mutex would only cost. */
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
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
    if (readonly) {
        if (sq_exec(s, "PRAGMA query_only = ON", what, err) != 0) goto err;
        sq_sql_guard(s);
        if (file_backed && tg_walshm_arm(&s->shm, file, err) != 0) goto err;
        *out = &s->base;
        return 0;
    }
    if (sq_exec(s, "PRAGMA journal_mode = WAL", what, err) != 0) goto err;
    if (sq_exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", what, err) != 0)
        goto err;
    /* Checkpoint every SQ_CKPT_PAGES pages (16 MB of WAL) rather than SQLite's 1000:
     * index leaves rewritten by every batch are then copied to the database
     * file once per checkpoint instead of four times, which measured ~10%
     * more appends per second. Only the committing connection checkpoints; the
     * recorder's writer moves its checkpoints to a thread of their own
     * (tg_store_checkpoint_in_background, sqlite_ckpt.c). */
    sqlite3_wal_autocheckpoint(s->db, SQ_CKPT_PAGES);
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

int tg_sqlite_open(const char *path, tg_store_t **out, tg_err_t *err)
{
    return open_conn(path, 0, out, err);
}

int tg_sqlite_open_readonly(const char *path, tg_store_t **out, tg_err_t *err)
{
    return open_conn(path, 1, out, err);
}

/* The newest schema version this build knows: what restore accepts at most. */
int sq_schema_latest(void)
{
    return tg_store_migrations[tg_store_nmigrations - 1].version;
}

static int sq_checkpoint_in_background(tg_store_t *base, tg_err_t *err)
{
    return sq_ckpt_start((sq_store_t *)base, err);
}

static const struct tg_store_life_ops sq_life_ops = {
    .dialect = "sqlite",
    .close = sq_close,
    .writable = sq_writable,
    .set_busy_timeout = sq_set_busy_timeout,
    .checkpoint_in_background = sq_checkpoint_in_background,
};
