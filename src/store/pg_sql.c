/* PostgreSQL store, read-only SQL, the backup's refusal, the archive's purge and the copy's
 * row writer (the sql_ops of backend.h; sqlite_sql.c is the reference).
 *
 * Read only, as in SQLite, by more than one lock: the user's statement runs in a
 * transaction started READ ONLY (a write, a nextval(), a DDL, SELECT ... FOR UPDATE fail
 * with 25006, answered TG_STORE_REFUSED) that is always rolled back, so even what a read-only
 * transaction may change (set_config(), a session variable) is undone; it is prepared
 * unnamed through the extended protocol, which refuses more than one statement by itself,
 * and refused before it runs when it returns no rows (SET, COMMIT, a bare DML). On a
 * read-only handle (tollgate query and report: tg_store_open_readonly) it is also bounded
 * by statement_timeout (the handle's query_timeout_ms, store.h): a query that never ends
 * is cancelled by the server. The archive's export runs on a read-write handle, unbounded, since a
 * month of events may take longer. What a read-only transaction still allows (pg_sleep within the
 * bound, pg_cancel_backend() on the role's own sessions) is the role's to forbid: give
 * `tollgate query` users a role with SELECT only (docs/query.md).
 *
 * Rows are streamed in single-row mode and read by their column type: integers, numeric
 * without a fraction and booleans as integers (as SQLite has them), floats and other
 * numerics as reals, bytea as blobs, the rest as text. */
#include "store/pg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DELETE_CHUNK 5000 /* events per archive purge transaction, as SQLite */

/* Type OIDs of pg_type (stable since PostgreSQL 7). */
enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700,
};

/* The one error line, with the SQL it quotes kept on that line. */
static int refuse(tg_err_t *err, const char *fmt, const char *arg)
{
    tg_err_set(err, fmt, arg);
    for (char *p = err ? err->msg : NULL; p && *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    return TG_STORE_REFUSED;
}

/* The refusal a failed statement gets, when it is one: a write (25006), more than one
 * statement, or SQL the server cannot compile (class 42: syntax, unknown table or column,
 * a parameter without a value); -2 when it is not (a runtime error, a lost connection). */
static int refusal(const PGresult *r, const char *sql, tg_err_t *err)
{
    const char *st = pg_state(r);
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!strcmp(st, "25006"))
        return refuse(
            err, "refused: \"%.80s\" could write to the store (tollgate query only reads)", sql);
    if (m && strstr(m, "multiple commands"))
        return refuse(err,
                      "refused: one statement per query, and more follows the first: \"%.60s\" "
                      "(run each on its own)",
                      sql);
    if (!strncmp(st, "42", 2) || !strcmp(st, "0A000") || !strcmp(st, "22P02"))
        return refuse(err, "SQL error: %s", m ? m : "");
    return -2;
}

/* numeric's text as an integer when it is one that fits, else as a real. */
static void read_numeric(const char *t, tg_sql_value_t *v)
{
    char *end;
    errno = 0;
    long long i = strtoll(t, &end, 10);
    if (*t && !*end && errno == 0) {
        v->type = TG_SQL_INT;
        v->i = i;
        return;
    }
    v->type = TG_SQL_REAL;
    v->r = strtod(t, NULL);
}

/* Value j of r's row i into v; bytea decoded into *blob (PQfreemem'd by the caller). */
static void read_value(const PGresult *r, int i, int j, tg_sql_value_t *v, unsigned char **blob)
{
    memset(v, 0, sizeof *v);
    if (PQgetisnull(r, i, j)) {
        v->type = TG_SQL_NULL;
        return;
    }
    const char *t = PQgetvalue(r, i, j);
    switch (PQftype(r, j)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        v->type = TG_SQL_INT;
        v->i = strtoll(t, NULL, 10);
        break;
    case OID_BOOL:
        v->type = TG_SQL_INT;
        v->i = t[0] == 't';
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
        v->type = TG_SQL_REAL;
        v->r = strtod(t, NULL);
        break;
    case OID_NUMERIC: read_numeric(t, v); break;
    case OID_BYTEA: {
        size_t n = 0;
        *blob = PQunescapeBytea((const unsigned char *)t, &n);
        v->type = TG_SQL_BLOB;
        v->s = *blob ? (const char *)*blob : "";
        v->len = *blob ? n : 0;
        break;
    }
    default:
        v->type = TG_SQL_TEXT;
        v->s = t;
        v->len = (size_t)PQgetlength(r, i, j);
    }
}

/* Sends one row to the sink; 0 to go on. */
static int emit_row(const PGresult *r, int n, tg_sql_value_t *vals, const tg_sql_sink_t *sink)
{
    unsigned char *blobs[n > 0 ? n : 1];
    for (int j = 0; j < n; j++) {
        blobs[j] = NULL;
        read_value(r, 0, j, &vals[j], &blobs[j]);
    }
    int ret = sink->row(vals, (size_t)n, sink->ud);
    for (int j = 0; j < n; j++)
        PQfreemem(blobs[j]);
    return ret;
}

/* Runs the prepared unnamed statement with params and streams its rows; the transaction
 * is the caller's. */
static int stream(pg_store_t *s, const char *sql, const char *const *params, int nparams,
                  const PGresult *desc, const tg_sql_sink_t *sink, tg_err_t *err)
{
    int n = PQnfields(desc);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    tg_sql_value_t *vals = calloc((size_t)n + 1, sizeof *vals);
    int ret = 0;
    if (!names || !vals) {
        ret = tg_err_set(err, "out of memory");
        goto out;
    }
    for (int j = 0; j < n; j++)
        names[j] = PQfname(desc, j);
    if (sink->columns && (ret = sink->columns(names, (size_t)n, sink->ud)) != 0) goto out;
    if (!PQsendQueryPrepared(s->conn, "", nparams, (const char *const *)params, NULL, NULL, 0)) {
        ret = pg_fail(s, NULL, "query", err);
        goto out;
    }
    PQsetSingleRowMode(s->conn);
    PGresult *r;
    int stopped = 0, failed = 0;
    while ((r = PQgetResult(s->conn))) {
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_SINGLE_TUPLE && !stopped && !failed) {
            if ((ret = emit_row(r, n, vals, sink)) != 0) {
                /* The sink is done: the server stops sending instead of streaming the
                 * rest of a huge result only to have it dropped. */
                stopped = 1;
                PGcancel *c = PQgetCancel(s->conn);
                char buf[256];
                if (c) PQcancel(c, buf, sizeof buf);
                PQfreeCancel(c);
            }
        } else if (rs != PGRES_SINGLE_TUPLE && rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK &&
                   !stopped && !failed) {
            failed = 1;
            ret = refusal(r, sql, err);
            const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            /* 57014 is also a cancel from another session (pg_cancel_backend): its own words. */
            if (ret == -2 && !strcmp(pg_state(r), "57014") && s->base.query_timeout_ms > 0 && m &&
                strstr(m, "statement timeout"))
                ret = tg_store_query_timed_out(&s->base, err);
            else if (ret == -2)
                ret = pg_fail(s, r, "query", err);
        }
        PQclear(r);
    }
out:
    free(names);
    free(vals);
    return ret;
}

static int pg_query(tg_store_t *base, const char *sql, const char *const *params, size_t nparams,
                    const tg_sql_sink_t *sink, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int ret = pg_begin(s, "query", err);
    if (ret == 0) ret = pg_run(s, "SET TRANSACTION READ ONLY", "query", err);
    if (ret == 0 && s->base.query_timeout_ms > 0) {
        char set[64];
        snprintf(set, sizeof set, "SET LOCAL statement_timeout = %lld", s->base.query_timeout_ms);
        ret = pg_run(s, set, "query", err);
    }
    if (ret != 0) {
        pg_rollback(s);
        return ret;
    }
    PGresult *prep = PQprepare(s->conn, "", sql, 0, NULL);
    PGresult *desc = NULL;
    if (PQresultStatus(prep) != PGRES_COMMAND_OK) {
        ret = refusal(prep, sql, err);
        if (ret == -2) ret = pg_fail(s, prep, "query", err);
        goto out;
    }
    desc = PQdescribePrepared(s->conn, "");
    if (PQresultStatus(desc) != PGRES_COMMAND_OK) {
        ret = pg_fail(s, desc, "query", err);
        goto out;
    }
    if (PQnfields(desc) == 0) {
        ret = refuse(err,
                     "refused: \"%.80s\" returns no rows (tollgate query runs SELECT, WITH, "
                     "VALUES and EXPLAIN)",
                     sql);
        goto out;
    }
    if ((size_t)PQnparams(desc) > nparams) {
        ret =
            refuse(err, "SQL error: the statement has parameters (%s) no value is given for", "$N");
        goto out;
    }
    ret = stream(s, sql, params, PQnparams(desc), desc, sink, err);
out:
    PQclear(prep);
    PQclear(desc);
    pg_rollback(s); /* never anything to keep */
    return ret;
}

static int pg_backup(tg_store_t *base, const char *dest_path, int pages, int64_t *npages,
                     tg_err_t *err)
{
    (void)base;
    (void)dest_path;
    (void)pages;
    if (npages) *npages = 0;
    return tg_err_set(err, "a postgres store is backed up with pg_dump (see "
                           "docs/operations.md, \"The store\")");
}

/* ---- the archive's purge ---------------------------------------------------------- */

/* The id array's text, "{1,2,3}", grown as needed. */
static char *id_array(const int64_t *ids, size_t n)
{
    char *a = malloc(n * 21 + 3);
    if (!a) return NULL;
    size_t o = 0;
    a[o++] = '{';
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(a + o, "%s%" PRId64, i ? "," : "", ids[i]);
    a[o++] = '}';
    a[o] = '\0';
    return a;
}

static const pg_sql_t sql_delete_ids = {
    .slot = PS_EV_DELETE_IDS,
    .sql = "DELETE FROM usage_events WHERE id = ANY ($1::bigint[]) AND ts_us < $2"};

/* Each chunk is one statement, so one transaction of its own. */
static int pg_events_delete(tg_store_t *base, const int64_t *ids, size_t n, int64_t before_us,
                            int64_t *deleted, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int64_t total = 0;
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i += DELETE_CHUNK) {
        size_t k = n - i < DELETE_CHUNK ? n - i : DELETE_CHUNK;
        char *a = id_array(ids + i, k);
        if (!a) {
            ret = tg_err_set(err, "archive purge: out of memory");
            break;
        }
        pg_params_t p = {0};
        pg_p_text(&p, a);
        pg_p_int64(&p, before_us);
        PGresult *r;
        ret = pg_exec(s, &sql_delete_ids, &p, &r, "archive purge", err);
        free(a);
        if (ret == 0) {
            total += pg_changes(r);
            PQclear(r);
        }
    }
    if (deleted) *deleted = total;
    return ret;
}

/* ---- the copy's rows ---------------------------------------------------------------- */

#define PUT_MAX_PARAMS 60000 /* under the protocol's 65535 parameters a statement */
#define EPOCH_2020_MS  1577836800000LL

/* A growing string; NULL data after a failed allocation. */
typedef struct strbuf {
    char *d;
    size_t n, cap;
} strbuf_t;

static void sb_add(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(strbuf_t *b, const char *fmt, ...)
{
    if (b->cap && !b->d) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + (size_t)n + 1)
            cap *= 2;
        char *d = realloc(b->d, cap);
        if (!d) free(b->d);
        b->d = d;
        b->cap = cap;
        if (!d) return;
    }
    va_start(ap, fmt);
    vsnprintf(b->d + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* Creates the monthly partitions the events' ids fall in (each id's milliseconds since
 * 2020 are its high bits), each in a short transaction of its own, as the writer does. */
static int put_partitions(pg_store_t *s, const char *const *cols, size_t ncols,
                          const tg_sql_value_t *vals, size_t nrows, tg_err_t *err)
{
    size_t idc = ncols;
    for (size_t i = 0; i < ncols; i++)
        if (!strcmp(cols[i], "id")) idc = i;
    if (idc == ncols) return tg_err_set(err, "rows put usage_events: no id column");
    strbuf_t b = {0};
    sb_add(&b, "SELECT DISTINCT tg_usage_partition(x) FROM unnest('{");
    int64_t last_month = INT64_MIN;
    for (size_t r = 0; r < nrows; r++) {
        const tg_sql_value_t *v = &vals[r * ncols + idc];
        if (v->type != TG_SQL_INT) continue; /* refused by the insert */
        int64_t ms = (v->i >> 22) + EPOCH_2020_MS;
        time_t sec = (time_t)(ms / 1000);
        struct tm tm;
        if (!gmtime_r(&sec, &tm)) continue;
        int64_t month = (int64_t)tm.tm_year * 12 + tm.tm_mon;
        if (month == last_month) continue; /* ids come in order: few months per batch */
        last_month = month;
        sb_add(&b, "%s%" PRId64, b.n > 54 ? "," : "", ms * 1000);
    }
    sb_add(&b, "}'::bigint[]) x");
    if (!b.d) return tg_err_set(err, "rows put: out of memory");
    int ret = pg_run(s, b.d, "rows put usage_events partitions", err);
    free(b.d);
    return ret;
}

/* Moves table's identity sequence on "id", if it has one, past the largest id. */
static int bump_identity(pg_store_t *s, const char *table, tg_err_t *err)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT pg_get_serial_sequence('%s', 'id')", table);
    PGresult *r = PQexec(s->conn, sql);
    int ret = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        ret = pg_fail(s, r, "rows put", err);
    else if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        snprintf(sql, sizeof sql,
                 "SELECT setval(pg_get_serial_sequence('%s', 'id'), max(id)) FROM %s "
                 "HAVING max(id) IS NOT NULL",
                 table, table);
        ret = pg_run(s, sql, "rows put", err);
    }
    PQclear(r);
    return ret;
}

/* A text value as PostgreSQL takes it: as is, or (a SQLite store holds whatever bytes it
 * was given: a raw byte of an ingested log line's path) a copy in *own with the bytes a
 * UTF8 database refuses, NUL among them, replaced by '?' as the writer does. NULL when out
 * of memory. */
static const char *put_text(const tg_sql_value_t *v, char **own)
{
    *own = NULL;
    const unsigned char *p = (const unsigned char *)v->s;
    size_t n = v->len, i = 0, k;
    while (i < n && p[i] && (k = pg_utf8_len(p + i, n - i)) != 0)
        i += k;
    if (i == n) return v->s; /* the common case: nothing to copy */
    char *c = malloc(n + 1);
    if (!c) return NULL;
    pg_utf8_clean(c, v->s, n);
    for (i = 0; i < n; i++)
        if (c[i] == '\0') c[i] = '?';
    c[n] = '\0';
    return *own = c;
}

/* Multi-row INSERTs of at most PUT_MAX_PARAMS parameters in one transaction, values as
 * text (the column's type reads them) and blobs as binary bytea. */
static int pg_rows_put(tg_store_t *base, const char *table, const char *const *cols, size_t ncols,
                       const tg_sql_value_t *vals, size_t nrows, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int ret = 0;
    if (!strcmp(table, "usage_events") &&
        (ret = put_partitions(s, cols, ncols, vals, nrows, err)) != 0)
        return ret;
    size_t per = PUT_MAX_PARAMS / ncols;
    if (per == 0) return tg_err_set(err, "rows put %s: too many columns", table);
    if (per > nrows) per = nrows;
    const char **pv = calloc(per * ncols, sizeof *pv);
    int *pl = calloc(per * ncols, sizeof *pl), *pf = calloc(per * ncols, sizeof *pf);
    char(*num)[32] = calloc(per * ncols, sizeof *num);
    char **own = calloc(per * ncols, sizeof *own);
    if (!pv || !pl || !pf || !num || !own) {
        ret = tg_err_set(err, "rows put %s: out of memory", table);
        goto out;
    }
    if ((ret = pg_begin(s, "rows put", err)) != 0) goto out;
    for (size_t r0 = 0; ret == 0 && r0 < nrows; r0 += per) {
        size_t k = nrows - r0 < per ? nrows - r0 : per;
        strbuf_t b = {0};
        sb_add(&b, "INSERT INTO %s (", table);
        for (size_t i = 0; i < ncols; i++)
            sb_add(&b, "%s%s", i ? ", " : "", cols[i]);
        sb_add(&b, ") VALUES ");
        for (size_t r = 0; r < k; r++) {
            sb_add(&b, "%s(", r ? ", " : "");
            for (size_t i = 0; i < ncols; i++) {
                size_t j = r * ncols + i;
                const tg_sql_value_t *v = &vals[(r0 + r) * ncols + i];
                pv[j] = NULL, pl[j] = 0, pf[j] = 0;
                switch (v->type) {
                case TG_SQL_INT:
                    snprintf(num[j], sizeof num[j], "%" PRId64, v->i);
                    pv[j] = num[j];
                    break;
                case TG_SQL_REAL:
                    snprintf(num[j], sizeof num[j], "%.17g", v->r);
                    pv[j] = num[j];
                    break;
                case TG_SQL_TEXT:
                    if (!(pv[j] = put_text(v, &own[j]))) ret = -1;
                    break;
                case TG_SQL_BLOB: pv[j] = v->s, pl[j] = (int)v->len, pf[j] = 1; break;
                default: break;
                }
                sb_add(&b, "%s$%zu", i ? ", " : "", j + 1);
            }
            sb_add(&b, ")");
        }
        PGresult *res = NULL;
        if (!b.d || ret != 0)
            ret = tg_err_set(err, "rows put %s: out of memory", table);
        else
            res = PQexecParams(s->conn, b.d, (int)(k * ncols), NULL, pv, pl, pf, 0);
        free(b.d);
        for (size_t j = 0; j < k * ncols; j++) {
            free(own[j]);
            own[j] = NULL;
        }
        if (!res) break;
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ret = pg_fail(s, res, "rows put", err);
            if (!strcmp(s->state, "23505")) {
                tg_err_set(err, "rows put %s: a row is there already", table);
                ret = TG_STORE_EXISTS;
            }
        }
        PQclear(res);
    }
    /* An identity column (alerts.id, alarm_events.id) goes on after the ids copied. */
    int has_id = 0;
    for (size_t i = 0; i < ncols; i++)
        has_id |= !strcmp(cols[i], "id");
    if (ret == 0 && has_id) ret = bump_identity(s, table, err);
    /* A gateway already on this store reloads keys and policy. */
    if (ret == 0)
        ret = pg_run(s,
                     "UPDATE meta SET value = value + 1 WHERE key IN ('auth_version', "
                     "'policy_version')",
                     "rows put", err);
    if (ret == 0)
        ret = pg_commit(s, "rows put", err);
    else
        pg_rollback(s);
out:
    free(pv);
    free(pl);
    free(pf);
    free(num);
    free(own);
    return ret;
}

const struct tg_store_sql_ops pg_sql_ops = {
    .query = pg_query,
    .backup = pg_backup,
    .events_delete = pg_events_delete,
    .rows_put = pg_rows_put,
};
