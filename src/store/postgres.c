/* PostgreSQL store backend: see store.h for the interface, backend.h for the tables of
 * functions it fills, migrations.c for the tables of the database (their PostgreSQL
 * texts), pg_int.h for what the files of each concern share.
 *
 * One tg_store_t is one libpq connection. Several gateways (and their CLIs) share one
 * database: every change that running gateways must see bumps meta.auth_version or
 * meta.policy_version in its own transaction, as in SQLite, and each gateway's watchers
 * poll them. Migrations are serialized between processes by an advisory lock.
 *
 * The connection URL may hold a password: it is never logged or put in an error; messages
 * name the store as postgres://HOST:PORT/DB. */
#include "store/pg_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/migrations.h"
#include "util/clock.h"

/* statement_timeout of a handle given a busy timeout (session_setup): a batch of 4096
 * events takes ~60 ms; the recorder's queue of 65536 holds ~13 s of 5000 requests/s. */
#define PG_STALL_MS 5000

/* pg_advisory_xact_lock key that serializes migrations between processes ("tg" 13). */
#define MIGRATION_LOCK 0x7467000d

static const struct tg_store_life_ops pg_life_ops;

static const pg_sql_t sql_bump[] = {
    [PG_AUTH] = {.slot = PS_AUTH_BUMP,
                 .sql = "UPDATE meta SET value = value + 1 WHERE key = 'auth_version'"},
    [PG_POLICY] = {.slot = PS_POLICY_BUMP,
                   .sql = "UPDATE meta SET value = value + 1 WHERE key = 'policy_version'"},
};
static const pg_sql_t sql_version[] = {
    [PG_AUTH] = {.slot = PS_AUTH_VERSION,
                 .sql = "SELECT value FROM meta WHERE key = 'auth_version'"},
    [PG_POLICY] = {.slot = PS_POLICY_VERSION,
                   .sql = "SELECT value FROM meta WHERE key = 'policy_version'"},
};
static const char *const version_name[] = {
    [PG_AUTH] = "auth_version", [PG_POLICY] = "policy_version"};

/* ---- parameters ---------------------------------------------------------------------- */

static int p_slot(pg_params_t *p)
{
    /* PG_MAX_PARAMS is a bound of this backend's own statements: a statement with more
     * parameters is a programming error, caught by the store tests. */
    return p->n < PG_MAX_PARAMS ? p->n++ : PG_MAX_PARAMS - 1;
}

void pg_p_text(pg_params_t *p, const char *s)
{
    int i = p_slot(p);
    p->val[i] = s;
    p->len[i] = 0;
    p->fmt[i] = 0;
}

void pg_p_field(pg_params_t *p, const char *f, size_t cap, int null_if_empty)
{
    int i = p_slot(p);
    size_t n = f ? strnlen(f, cap) : 0;
    p->val[i] = f && (n || !null_if_empty) ? f : NULL;
    p->len[i] = (int)n;
    p->fmt[i] = 1; /* a text value's binary form is its bytes */
}

void pg_p_int64(pg_params_t *p, int64_t v)
{
    int i = p_slot(p);
    snprintf(p->num[i], sizeof p->num[i], "%" PRId64, v);
    p->val[i] = p->num[i];
    p->len[i] = 0;
    p->fmt[i] = 0;
}

void pg_p_amount(pg_params_t *p, int64_t v)
{
    if (v < 0)
        pg_p_null(p);
    else
        pg_p_int64(p, v);
}

void pg_p_double(pg_params_t *p, double v)
{
    int i = p_slot(p);
    snprintf(p->num[i], sizeof p->num[i], "%.17g", v);
    p->val[i] = p->num[i];
    p->len[i] = 0;
    p->fmt[i] = 0;
}

void pg_p_null(pg_params_t *p)
{
    int i = p_slot(p);
    p->val[i] = NULL;
    p->len[i] = 0;
    p->fmt[i] = 0;
}

void pg_p_bytea(pg_params_t *p, const void *b, size_t n)
{
    int i = p_slot(p);
    p->val[i] = b;
    p->len[i] = (int)n;
    p->fmt[i] = 1;
}

/* ---- errors -------------------------------------------------------------------------- */

const char *pg_state(const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return st ? st : "";
}

/* SQLSTATEs that mean "not now" rather than "this request is wrong": connection
 * exceptions (08), serialization failure and deadlock (40001, 40P01), insufficient
 * resources (53: disk full, out of memory, too many connections), lock not available
 * (55P03), query canceled (57014: a statement or lock timeout), operator intervention
 * (57P01-57P05: shutdown, crash, cannot connect now), read-only transaction (25006: a
 * standby the URL reached after a failover, a database set read-only for maintenance).
 * tollgate query's own 25006 is a refusal (pg_sql.c), decided before this. */
static int state_busy(const char *st)
{
    return !strncmp(st, "08", 2) || !strcmp(st, "40001") || !strcmp(st, "40P01") ||
           !strncmp(st, "53", 2) || !strcmp(st, "55P03") || !strcmp(st, "57014") ||
           !strncmp(st, "57P", 3) || !strcmp(st, "25006");
}

/* The first line of libpq's message, without its trailing newline. */
static void first_line(char *dst, size_t cap, const char *msg)
{
    size_t n = msg ? strcspn(msg, "\n") : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, msg, n);
    dst[n] = '\0';
}

int pg_fail(pg_store_t *s, const PGresult *r, const char *what, tg_err_t *err)
{
    char msg[200];
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    first_line(msg, sizeof msg, m ? m : PQerrorMessage(s->conn));
    const char *st = pg_state(r);
    snprintf(s->state, sizeof s->state, "%s", st);
    int lost = PQstatus(s->conn) == CONNECTION_BAD;
    if (lost)
        tg_err_set(err, "%s: %s: connection lost (%s); will reconnect", what, s->where,
                   msg[0] ? msg : "no answer");
    else if (st[0])
        tg_err_set(err, "%s: %s (SQLSTATE %s)", what, msg, st);
    else
        tg_err_set(err, "%s: %s", what, msg);
    return lost || state_busy(st) ? TG_STORE_BUSY : -1;
}

/* ---- statements ---------------------------------------------------------------------- */

/* What every session of the handle runs with; a session made again (PQreset after a
 * lost connection, a restarted server) gets it again: the writer's short lock wait and
 * stall bound were lost with the first reconnect, so after a server restart the writer
 * waited on any lock, for as long as it was held, and its queue filled behind it.
 *
 * Times and days are computed in UTC by the views and the reports' SQL. A handle given a
 * busy timeout (the writer, the alarm runner: they would rather hear TG_STORE_BUSY than
 * wait) waits that long for a lock (lock_timeout, SQLSTATE 55P03) and PG_STALL_MS for any
 * statement (statement_timeout, 57014): a server that answers slowly without a lock to
 * wait for (a saturated disk, a trigger that sleeps) costs the writer that much, not the
 * queue. */
static int session_setup(pg_store_t *s, const char *what, tg_err_t *err)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SET TIME ZONE 'UTC'%s",
             s->readonly ? "; SET default_transaction_read_only = on" : "");
    int ret = pg_run(s, sql, what, err);
    if (ret == 0 && s->busy_ms >= 0) {
        snprintf(sql, sizeof sql, "SET lock_timeout = %ld; SET statement_timeout = %d", s->busy_ms,
                 PG_STALL_MS);
        ret = pg_run(s, sql, what, err);
    }
    return ret;
}

/* Makes a lost connection again (blocking, bounded by connect_timeout). Prepared
 * statements die with the old session; its settings are made again. */
static int ensure_conn(pg_store_t *s, const char *what, tg_err_t *err)
{
    if (PQstatus(s->conn) == CONNECTION_OK) return 0;
    PQreset(s->conn);
    memset(s->prepared, 0, sizeof s->prepared);
    if (PQstatus(s->conn) == CONNECTION_OK) return session_setup(s, what, err);
    char msg[200];
    first_line(msg, sizeof msg, PQerrorMessage(s->conn));
    tg_err_set(err, "%s: %s: cannot connect: %s", what, s->where, msg);
    return TG_STORE_BUSY;
}

static int prepare(pg_store_t *s, const pg_sql_t *q, const char *what, tg_err_t *err)
{
    if (s->prepared[q->slot]) return 0;
    char *built = q->build    ? q->build()
                  : q->select ? tg_rowmap_select_sql(q->select, q->sql)
                              : NULL;
    const char *sql = q->build || q->select ? built : q->sql;
    if (!sql) return tg_err_set(err, "%s: out of memory", what);
    char name[16];
    snprintf(name, sizeof name, "s%d", q->slot);
    PGresult *r = PQprepare(s->conn, name, sql, 0, NULL);
    free(built);
    int ret = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        ret = pg_fail(s, r, what, err);
    else
        s->prepared[q->slot] = 1;
    PQclear(r);
    return ret;
}

int pg_exec(pg_store_t *s, const pg_sql_t *q, const pg_params_t *p, PGresult **out,
            const char *what, tg_err_t *err)
{
    if (out) *out = NULL;
    int ret = ensure_conn(s, what, err);
    if (ret == 0) ret = prepare(s, q, what, err);
    if (ret != 0) return ret;
    char name[16];
    snprintf(name, sizeof name, "s%d", q->slot);
    PGresult *r = PQexecPrepared(s->conn, name, p ? p->n : 0, p ? p->val : NULL, p ? p->len : NULL,
                                 p ? p->fmt : NULL, 0);
    ExecStatusType rs = PQresultStatus(r);
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        ret = pg_fail(s, r, what, err);
        PQclear(r);
        return ret;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

int pg_run(pg_store_t *s, const char *sql, const char *what, tg_err_t *err)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType rs = PQresultStatus(r);
    int ret = rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK ? 0 : pg_fail(s, r, what, err);
    PQclear(r);
    return ret;
}

int64_t pg_changes(const PGresult *r)
{
    const char *t = PQcmdTuples((PGresult *)r);
    return t && *t ? strtoll(t, NULL, 10) : 0;
}

int pg_begin(pg_store_t *s, const char *what, tg_err_t *err)
{
    int ret = ensure_conn(s, what, err);
    return ret ? ret : pg_run(s, "BEGIN", what, err);
}

void pg_rollback(pg_store_t *s)
{
    PGTransactionStatusType ts = PQtransactionStatus(s->conn);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) pg_run(s, "ROLLBACK", "rollback", NULL);
}

int pg_commit(pg_store_t *s, const char *what, tg_err_t *err)
{
    PGresult *r = PQexec(s->conn, "COMMIT");
    int ret = 0;
    /* COMMIT of a transaction in error answers ROLLBACK with COMMAND_OK: not a commit. */
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        ret = pg_fail(s, r, what, err);
    else if (strcmp(PQcmdStatus(r), "COMMIT") != 0)
        ret = tg_err_set(err, "%s: transaction rolled back", what);
    PQclear(r);
    if (ret != 0) pg_rollback(s);
    return ret;
}

/* ---- versions and changes ------------------------------------------------------------ */

int pg_read_version(pg_store_t *s, pg_version_t v, const char *what, int64_t *out, tg_err_t *err)
{
    PGresult *r;
    int ret = pg_exec(s, &sql_version[v], NULL, &r, what, err);
    if (ret != 0) return ret;
    if (PQntuples(r) == 1)
        *out = pg_get_int64(r, 0, 0);
    else /* SQLite's words (sq_read_version): the tests compare them */
        ret = tg_err_set(err, "%s: meta row missing", what);
    PQclear(r);
    return ret;
}

int pg_mutate(pg_store_t *s, const pg_sql_t *q, const pg_params_t *p, pg_version_t v,
              const char *what, tg_err_t *err)
{
    int ret = pg_begin(s, what, err);
    if (ret != 0) return ret;
    PGresult *r = NULL;
    s->state[0] = '\0'; /* what pg_fail records for this statement, not an earlier one */
    ret = pg_exec(s, q, p, &r, what, err);
    if (ret != 0 && !strcmp(s->state, "23505"))
        ret = TG_STORE_EXISTS, tg_err_set(err, "%s: already exists", what);
    else if (ret != 0 && !strcmp(s->state, "23503"))
        ret = TG_STORE_NOTFOUND, tg_err_set(err, "%s: no such tenant", what);
    else if (ret == 0 && pg_changes(r) == 0)
        ret = TG_STORE_NOTFOUND, tg_err_set(err, "%s: not found", what);
    PQclear(r);
    if (ret == 0) {
        ret = pg_exec(s, &sql_bump[v], NULL, &r, what, err);
        /* Without its meta row the version would never move and running gateways would
         * miss the change: refuse it instead. */
        if (ret == 0 && pg_changes(r) != 1)
            ret = tg_err_set(err, "%s: meta row %s missing", what, version_name[v]);
        PQclear(r);
    }
    if (ret != 0) {
        pg_rollback(s);
        return ret;
    }
    return pg_commit(s, what, err);
}

/* ---- reading rows ---------------------------------------------------------------------- */

int64_t pg_get_int64(const PGresult *r, int i, int j)
{
    const char *t = pg_val(r, i, j);
    return t ? strtoll(t, NULL, 10) : 0;
}

/* A column as int: booleans arrive as "t" / "f". */
static int as_int(const char *t)
{
    if (!t) return 0;
    if (t[0] == 't' && !t[1]) return 1;
    if (t[0] == 'f' && !t[1]) return 0;
    return (int)strtol(t, NULL, 10);
}

/* Decodes a bytea's text form into dst when it has exactly n bytes; returns 1 if it did. */
static int read_bytea(const char *t, unsigned char *dst, size_t n)
{
    if (!t) return 0;
    size_t len = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)t, &len);
    int ok = b && len == n;
    if (ok) memcpy(dst, b, n);
    PQfreemem(b);
    return ok;
}

void pg_read_row(pg_store_t *s, const PGresult *r, int i, const tg_rowmap_t *m, void *row)
{
    memset(row, 0, m->row_size);
    int nblob = 0;
    for (int j = 0; j < m->ncols; j++) {
        const tg_col_t *c = &m->cols[j];
        char *f = (char *)row + c->off;
        const char *t = pg_val(r, i, j);
        switch (c->kind) {
        case TG_COL_TEXT: snprintf(f, c->size, "%s", t ? t : ""); break;
        case TG_COL_INT64: *(int64_t *)(void *)f = t ? strtoll(t, NULL, 10) : 0; break;
        case TG_COL_INT: *(int *)(void *)f = as_int(t); break;
        case TG_COL_FLAG: *(int *)(void *)f = as_int(t) != 0; break;
        case TG_COL_AMOUNT: *(int64_t *)(void *)f = t ? strtoll(t, NULL, 10) : -1; break;
        case TG_COL_DOUBLE: *(double *)(void *)f = t ? strtod(t, NULL) : 0; break;
        case TG_COL_BLOB: read_bytea(t, (unsigned char *)f, c->size); break;
        case TG_COL_STR: *(const char **)(void *)f = t; break;
        case TG_COL_BLOB_PTR: {
            unsigned char *b = nblob < 4 && c->size <= sizeof s->blob[0] ? s->blob[nblob++] : NULL;
            *(const void **)(void *)f = b && read_bytea(t, b, c->size) ? b : NULL;
            break;
        }
        case TG_COL_ENUM: *(int32_t *)(void *)f = tg_rowmap_enum(c->names, (int)c->size, t); break;
        case TG_COL_CUSTOM: c->read(t, row); break;
        }
    }
}

/* Reads the results of the query just sent, one row at a time. */
static int each_row_sent(pg_store_t *s, pg_emit_fn emit, sink_t k, const char *what, tg_err_t *err)
{
    PQsetSingleRowMode(s->conn);
    PGresult *r;
    int ret = 0, failed = 0;
    while ((r = PQgetResult(s->conn))) {
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_SINGLE_TUPLE) {
            if (ret == 0 && !failed) ret = emit(s, r, 0, &k);
        } else if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK && !failed && ret == 0) {
            failed = 1;
            ret = pg_fail(s, r, what, err);
        }
        /* A callback that stopped the list: the rest is read and dropped, so the
         * connection is ready for the next statement. */
        PQclear(r);
    }
    return ret;
}

int pg_each_row(pg_store_t *s, const pg_sql_t *q, const pg_params_t *p, pg_emit_fn emit, sink_t k,
                const char *what, tg_err_t *err)
{
    int ret = ensure_conn(s, what, err);
    if (ret == 0) ret = prepare(s, q, what, err);
    if (ret != 0) return ret;
    char name[16];
    snprintf(name, sizeof name, "s%d", q->slot);
    if (!PQsendQueryPrepared(s->conn, name, p ? p->n : 0, p ? p->val : NULL, p ? p->len : NULL,
                             p ? p->fmt : NULL, 0))
        return pg_fail(s, NULL, what, err);
    return each_row_sent(s, emit, k, what, err);
}

int pg_each_row_sql(pg_store_t *s, const char *sql, const pg_params_t *p, pg_emit_fn emit, sink_t k,
                    const char *what, tg_err_t *err)
{
    int ret = ensure_conn(s, what, err);
    if (ret != 0) return ret;
    if (!PQsendQueryParams(s->conn, sql, p ? p->n : 0, NULL, p ? p->val : NULL, p ? p->len : NULL,
                           p ? p->fmt : NULL, 0))
        return pg_fail(s, NULL, what, err);
    return each_row_sent(s, emit, k, what, err);
}

int pg_each_tenant_row(pg_store_t *s, const pg_sql_t *q, int tenant_filter, const char *tenant,
                       pg_emit_fn emit, sink_t k, const char *what, tg_err_t *err)
{
    pg_params_t p = {0};
    if (tenant_filter) pg_p_text(&p, tenant);
    return pg_each_row(s, q, &p, emit, k, what, err);
}

/* ---- migrations -------------------------------------------------------------------- */

/* One value of a one-row query without parameters; *found = 0 when there is no row. */
static int query_int(pg_store_t *s, const char *sql, int64_t *out, int *found, const char *what,
                     tg_err_t *err)
{
    PGresult *r = PQexec(s->conn, sql);
    int ret = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        ret = pg_fail(s, r, what, err);
    else {
        *found = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0);
        if (*found) *out = pg_get_int64(r, 0, 0);
    }
    PQclear(r);
    return ret;
}

/* Applies every migration the database has not applied yet, each in its own transaction
 * with its schema_migrations row, under an advisory lock: several gateways starting on a
 * new database at once apply each migration exactly once. */
static int migrate(pg_store_t *s, tg_err_t *err)
{
    /* Every gateway opens several connections (writer, watchers, alarms, senders): on a
     * store that is up to date they read one row and take no lock. */
    int64_t done = 0;
    int found = 0;
    char check[200];
    snprintf(check, sizeof check,
             "SELECT count(*) FROM schema_migrations HAVING count(*) = %zu AND max(version) = %d",
             tg_store_nmigrations, tg_store_migrations[tg_store_nmigrations - 1].version);
    int64_t exists = 0;
    if (query_int(s, "SELECT (to_regclass('schema_migrations') IS NOT NULL)::int", &exists, &found,
                  "migrations", err) != 0)
        return -1;
    if (exists && query_int(s, check, &done, &found, "migrations", err) != 0) return -1;
    if (exists && found) return 0;

    char lock[80];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)", MIGRATION_LOCK);
    if (pg_run(s, "BEGIN", "migrations", err) != 0 || pg_run(s, lock, "migrations", err) != 0 ||
        pg_run(s, tg_store_migrations_bootstrap_pg, "migrations", err) != 0 ||
        pg_commit(s, "migrations", err) != 0) {
        pg_rollback(s);
        return -1;
    }
    const tg_migration_t *last = &tg_store_migrations[tg_store_nmigrations - 1];
    for (size_t i = 0; i < tg_store_nmigrations; i++) {
        const tg_migration_t *m = &tg_store_migrations[i];
        char what[96];
        snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
        if (!m->pg) return tg_err_set(err, "%s: no PostgreSQL text", what);
        if (pg_run(s, "BEGIN", what, err) != 0 || pg_run(s, lock, what, err) != 0) goto fail;
        int64_t cur = 0, had = 0;
        if (query_int(s, "SELECT coalesce(max(version), 0) FROM schema_migrations", &cur, &found,
                      what, err) != 0)
            goto fail;
        if (cur > last->version) {
            pg_rollback(s);
            return tg_err_set(err,
                              "database schema version %lld is newer than this tollgate knows "
                              "(%d): upgrade tollgate",
                              (long long)cur, last->version);
        }
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT 1 FROM schema_migrations WHERE version = %d", m->version);
        if (query_int(s, sql, &had, &found, what, err) != 0) goto fail;
        if (found) {
            pg_rollback(s);
            continue;
        }
        if (pg_run(s, m->pg, what, err) != 0) goto fail;
        pg_params_t p = {0};
        pg_p_int64(&p, m->version);
        pg_p_text(&p, m->name);
        pg_p_int64(&p, tg_wall_us());
        PGresult *r = PQexecParams(s->conn,
                                   "INSERT INTO schema_migrations (version, name, applied_us) "
                                   "VALUES ($1, $2, $3)",
                                   p.n, NULL, p.val, p.len, p.fmt, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) pg_fail(s, r, what, err);
        PQclear(r);
        if (!ok || pg_commit(s, what, err) != 0) goto fail;
        continue;
    fail:
        pg_rollback(s);
        return -1;
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void pg_close(tg_store_t *base)
{
    pg_store_t *s = (pg_store_t *)base;
    PQfinish(s->conn);
    pg_events_free(s);
    free(s);
}

static int pg_writable(tg_store_t *base, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int ret = ensure_conn(s, "store not writable", err);
    if (ret != 0) return TG_STORE_BUSY;
    int64_t recovery = 0;
    int found;
    if (query_int(s, "SELECT pg_is_in_recovery()::int", &recovery, &found, "store not writable",
                  err) != 0)
        return TG_STORE_BUSY;
    if (recovery) {
        tg_err_set(err, "store not writable: %s is a standby (in recovery)", s->where);
        return TG_STORE_BUSY;
    }
    return 0;
}

/* How long a statement waits for another transaction's lock (SQLite's busy timeout):
 * lock_timeout, after which the call fails with TG_STORE_BUSY (SQLSTATE 55P03); and a
 * bound on every statement (session_setup). */
static int pg_set_busy_timeout(tg_store_t *base, long ms, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    s->busy_ms = ms < 0 ? 0 : ms;
    return session_setup(s, "busy timeout", err);
}

/* Server notices ("relation already exists, skipping" from the migrations' IF NOT EXISTS)
 * are not errors; libpq would print them on stderr. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* "postgres://HOST:PORT/DB" of an open (or failed) connection, for messages. */
static void describe(pg_store_t *s)
{
    const char *host = PQhost(s->conn), *port = PQport(s->conn), *db = PQdb(s->conn);
    snprintf(s->where, sizeof s->where, "postgres://%s%s%s/%s", host && *host ? host : "?",
             port && *port ? ":" : "", port ? port : "", db ? db : "?");
}

/* Refuses a URL libpq cannot parse, before it is used. libpq's parse errors quote the
 * token they stumbled on, or the whole URL: a password, percent-encoded wrong, would go to
 * the terminal and the logs. The message is kept up to its quote. */
static int check_url(const char *url, tg_err_t *err)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (opts) {
        PQconninfoFree(opts);
        return 0;
    }
    char msg[200];
    first_line(msg, sizeof msg, perr ? perr : "out of memory");
    PQfreemem(perr);
    char *quote = strstr(msg, ": \"");
    if (quote) *quote = '\0';
    quote = strchr(msg, '"');
    if (quote && !strchr(quote + 1, '"')) *quote = '\0'; /* a quote cut by first_line */
    return tg_err_set(err,
                      "store postgres: bad URL: %s (the URL is not shown: it may hold a "
                      "password)",
                      msg);
}

/* After PQconnectdbParams into s->conn: 0 when it is up (described, its notices ignored);
 * else err says "WHAT HOST:PORT/DB: why", s is freed, and -2 (out of memory) or -1. */
static int connected(pg_store_t *s, const char *what, tg_err_t *err)
{
    if (!s->conn) {
        free(s);
        tg_err_set(err, "store postgres: out of memory");
        return -2;
    }
    describe(s);
    PQsetNoticeProcessor(s->conn, ignore_notice, NULL);
    if (PQstatus(s->conn) == CONNECTION_OK) return 0;
    char msg[200];
    first_line(msg, sizeof msg, PQerrorMessage(s->conn));
    tg_err_set(err, "%s %s: %s", what, s->where, msg);
    pg_close(&s->base);
    return -1;
}

/* A handle with every table of operations and no connection yet. */
static pg_store_t *new_handle(int readonly)
{
    pg_store_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base = (tg_store_t){.life = &pg_life_ops,
                           .events = &pg_event_ops,
                           .tenants = &pg_tenant_ops,
                           .policy = &pg_policy_ops,
                           .prices = &pg_price_ops,
                           .alerts = &pg_alert_ops,
                           .alarms = &pg_alarm_ops,
                           .outbox = &pg_outbox_ops,
                           .dash = &pg_dash_ops,
                           .sql = &pg_sql_ops,
                           .invoices = &pg_invoice_ops,
                           .audit = &pg_audit_ops,
                           .admin_tokens = &pg_admin_token_ops};
    s->readonly = readonly;
    s->busy_ms = -1;
    return s;
}

int pg_open_twin(pg_store_t *s, pg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    PQconninfoOption *opts = PQconninfo(s->conn);
    if (!opts) return tg_err_set(err, "store %s: out of memory", s->where);
    size_t n = 0;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    const char **keys = calloc(n + 1, sizeof *keys), **vals = calloc(n + 1, sizeof *vals);
    pg_store_t *t = new_handle(s->readonly);
    if (!keys || !vals || !t) {
        PQconninfoFree(opts);
        free(keys);
        free(vals);
        free(t);
        return tg_err_set(err, "store %s: out of memory", s->where);
    }
    size_t k = 0;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && *o->val) {
            keys[k] = o->keyword;
            vals[k++] = o->val;
        }
    t->conn = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    free(keys);
    free(vals);
    int ret = connected(t, "cannot open a second connection to", err);
    if (ret != 0) return ret < -1 ? -1 : TG_STORE_BUSY;
    t->busy_ms = s->busy_ms;
    ret = session_setup(t, "store", err);
    if (ret != 0) {
        pg_close(&t->base);
        return ret;
    }
    *out = t;
    return 0;
}

static int open_conn(const char *url, int readonly, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    if (check_url(url, err) != 0) return -1;
    pg_store_t *s = new_handle(readonly);
    if (!s) return tg_err_set(err, "out of memory");
    /* The defaults first: what the URL says (its own connect_timeout, say) wins, since
     * libpq expands dbname in place and later values override earlier ones. Without a
     * connect_timeout libpq waits for an unreachable server forever. A server host that
     * vanishes mid-statement (powered off, a network cut: no reset comes) would hold the
     * statement until the kernel gives the connection up, 15 minutes and more, the
     * writer's queue full behind it: keepalives probe an idle wait after 10 s and end it
     * 3 probes of 5 s later, tcp_user_timeout ends it when what was sent is not
     * acknowledged for 30 s. */
    const char *const keys[] = {"connect_timeout",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "application_name",
                                "dbname",
                                NULL};
    const char *const vals[] = {"5", "10", "5", "3", "30000", "tollgate", url, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (connected(s, "cannot open store", err) != 0) return -1;
    if (session_setup(s, "store", err) != 0) goto fail;
    if (readonly) {
        int64_t v = 0;
        int found = 0;
        if (query_int(s,
                      "SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations' "
                      "AND schemaname = ANY (current_schemas(false))",
                      &v, &found, "store", err) != 0)
            goto fail;
        if (!v) {
            tg_err_set(err, "store %s: not a tollgate store (no schema_migrations table)",
                       s->where);
            goto fail;
        }
        *out = &s->base;
        return 0;
    }
    if (migrate(s, err) != 0) goto fail;
    *out = &s->base;
    return 0;

fail:;
    char msg[sizeof err->msg];
    if (err) {
        snprintf(msg, sizeof msg, "%s", err->msg);
        if (strncmp(msg, "store ", 6) != 0) tg_err_set(err, "store %s: %s", s->where, msg);
    }
    pg_close(&s->base);
    return -1;
}

int tg_postgres_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    return open_conn(url, 0, out, err);
}

int tg_postgres_open_readonly(const char *url, tg_store_t **out, tg_err_t *err)
{
    return open_conn(url, 1, out, err);
}

static const struct tg_store_life_ops pg_life_ops = {
    .dialect = "postgres",
    .close = pg_close,
    .writable = pg_writable,
    .set_busy_timeout = pg_set_busy_timeout,
};
