/* A fresh store of either backend for each test, so one test runs against SQLite and
 * PostgreSQL alike. Header-only: each test file is its own program.
 *
 *   static const struct CMUnitTest tests[] = {TB_BOTH(test_a), TB_BOTH(test_b)};
 *
 * runs test_a and test_b twice, named "test_a [sqlite]" and "test_a [postgres]", each with
 * a tb_store_t * as *state whose s is open and migrated:
 *   - sqlite: a new file in its own temporary directory, removed afterwards;
 *   - postgres: a new schema (tg_t_PID_N) in the database of TG_TEST_PG_URL, the store's
 *     URL that database with options=-csearch_path=SCHEMA, dropped afterwards. Without
 *     TG_TEST_PG_URL the test fails and says so: `make unit` starts a private server
 *     (scripts/pg-test.sh) and sets it; by hand, `scripts/pg-test.sh start DIR PORT`
 *     prints the URL to export. */
#ifndef TG_TEST_STORE_BACKENDS_H
#define TG_TEST_STORE_BACKENDS_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

typedef struct tb_store {
    int pg;          /* 1: PostgreSQL */
    char dir[64];    /* sqlite: the temporary directory */
    char path[128];  /* sqlite: the database file */
    char schema[64]; /* postgres: the test's schema */
    char url[768];   /* what tg_store_open was given (a second connection opens it too) */
    tg_store_t *s;
} tb_store_t;

static inline void tb_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Runs sql on a new connection to the database of TG_TEST_PG_URL (schema DDL); 0 on
 * success, else prints why. */
static inline int tb_pg_admin(const char *sql)
{
    const char *base = getenv("TG_TEST_PG_URL");
    if (!base || !*base) {
        fprintf(stderr, "TG_TEST_PG_URL is not set: run `make unit`, or start a server with "
                        "scripts/pg-test.sh start DIR PORT and export the URL it prints\n");
        return -1;
    }
    PGconn *c = PQconnectdb(base);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PQsetNoticeProcessor(c, tb_quiet, NULL);
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    if (!ok) fprintf(stderr, "postgres (%s): %s", sql, PQerrorMessage(c));
    PQfinish(c);
    return ok ? 0 : -1;
}

/* A fresh, empty store URL of the backend (nothing opened yet). */
static inline int tb_fresh(tb_store_t *t, int pg)
{
    static int n;
    memset(t, 0, sizeof *t);
    t->pg = pg;
    if (!pg) {
        snprintf(t->dir, sizeof t->dir, "/tmp/tg_test_store_XXXXXX");
        if (!mkdtemp(t->dir)) return -1;
        snprintf(t->path, sizeof t->path, "%s/t.db", t->dir);
        snprintf(t->url, sizeof t->url, "sqlite:%s", t->path);
        return 0;
    }
    snprintf(t->schema, sizeof t->schema, "tg_t_%ld_%d", (long)getpid(), n++);
    char sql[200];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", t->schema,
             t->schema);
    if (tb_pg_admin(sql) != 0) return -1;
    const char *base = getenv("TG_TEST_PG_URL");
    snprintf(t->url, sizeof t->url, "%s%soptions=-csearch_path%%3D%s", base,
             strchr(base, '?') ? "&" : "?", t->schema);
    return 0;
}

/* Removes what tb_fresh made (the store must be closed). */
static inline void tb_remove(tb_store_t *t)
{
    if (t->pg) {
        char sql[160];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", t->schema);
        tb_pg_admin(sql);
        return;
    }
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", t->path, suffix[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

static inline int tb_setup(void **state, int pg)
{
    tb_store_t *t = calloc(1, sizeof *t);
    if (!t || tb_fresh(t, pg) != 0) {
        free(t);
        return -1;
    }
    tg_err_t err;
    if (tg_store_open(t->url, &t->s, &err) != 0) {
        fprintf(stderr, "open %s: %s\n", pg ? "postgres" : "sqlite", err.msg);
        tb_remove(t);
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static inline int tb_setup_sqlite(void **state)
{
    return tb_setup(state, 0);
}

static inline int tb_setup_pg(void **state)
{
    return tb_setup(state, 1);
}

static inline int tb_teardown(void **state)
{
    tb_store_t *t = *state;
    if (!t) return 0;
    tg_store_close(t->s);
    tb_remove(t);
    free(t);
    return 0;
}

/* e[0..n) (n <= 16) appended; on PostgreSQL, until its writer (pg_events.c) is there,
 * written as rows instead (tg_store_rows_put): the columns the read tests look at, path
 * "/", one request each, usage_daily untouched. */
static inline int tb_append(tg_store_t *s, const tg_event_t *e, size_t n, tg_err_t *err)
{
    size_t ins = 0;
    int rc = tg_store_append(s, e, n, &ins, err);
    if (rc == 0 || strcmp(tg_store_dialect(s), "postgres") != 0) return rc;
    static const char *const cols[] = {"id",       "ts_us",       "tenant",   "method",
                                       "path",     "status",      "outcome",  "latency_us",
                                       "bytes_in", "bytes_out",   "model",    "tokens_in",
                                       "tool",     "cost_micros", "requests", "reason"};
    enum { NC = sizeof cols / sizeof cols[0] };
    if (n > 16) return tg_err_set(err, "tb_append: at most 16 events");
    tg_sql_value_t v[16 * NC];
    for (size_t i = 0; i < n && i < 16; i++) {
        tg_sql_value_t *r = &v[i * NC];
#define I(j, x) r[j] = (tg_sql_value_t){.type = TG_SQL_INT, .i = (x)}
#define T(j, x)                                                                                    \
    r[j] = (tg_sql_value_t)                                                                        \
    {                                                                                              \
        .type = TG_SQL_TEXT, .s = (x), .len = strlen(x)                                            \
    }
        I(0, e[i].id);
        I(1, e[i].ts_us);
        T(2, e[i].tenant);
        T(3, e[i].method);
        T(4, "/");
        if (e[i].reason[0])
            T(15, e[i].reason);
        else
            r[15] = (tg_sql_value_t){.type = TG_SQL_NULL};
        I(5, e[i].status);
        T(6, tg_outcome_name(e[i].outcome));
        I(7, e[i].latency_us);
        I(8, e[i].bytes_in);
        I(9, e[i].bytes_out);
        T(10, e[i].model);
        if (e[i].tokens_in < 0)
            r[11] = (tg_sql_value_t){.type = TG_SQL_NULL};
        else
            I(11, e[i].tokens_in);
        if (e[i].tool[0])
            T(12, e[i].tool);
        else
            r[12] = (tg_sql_value_t){.type = TG_SQL_NULL};
        I(13, e[i].cost_micros);
        I(14, 1);
#undef I
#undef T
    }
    return tg_store_rows_put(s, "usage_events", cols, NC, v, n, err);
}

#define TB_BOTH(f)                                                                                 \
    {#f " [sqlite]", (f), tb_setup_sqlite, tb_teardown, NULL},                                     \
    {                                                                                              \
#f " [postgres]", (f), tb_setup_pg, tb_teardown, NULL                                      \
    }

#endif
