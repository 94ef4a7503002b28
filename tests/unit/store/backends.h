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
#include <sqlite3.h>
#include <stdint.h>
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

/* e[0..n) appended through the store (both backends have the writer). */
static inline int tb_append(tg_store_t *s, const tg_event_t *e, size_t n, tg_err_t *err)
{
    size_t ins = 0;
    return tg_store_append(s, e, n, &ins, err);
}

/* One integer that sql answers on a new connection to t's store, either backend (a check
 * of what was stored); a boolean ('t' / 'f') reads as 1 / 0, NULL as 0. INT64_MIN, and
 * why on stderr, when the query fails. */
static inline int64_t tb_int(const tb_store_t *t, const char *sql)
{
    int64_t v = INT64_MIN;
    if (!t->pg) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        if (sqlite3_open(t->path, &db) == SQLITE_OK &&
            sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        else
            fprintf(stderr, "sqlite (%s): %s\n", sql, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
    }
    PGconn *c = PQconnectdb(t->url);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        const char *x = PQgetvalue(r, 0, 0);
        v = x[0] == 't' ? 1 : x[0] == 'f' ? 0 : strtoll(x, NULL, 10);
    } else {
        fprintf(stderr, "postgres (%s): %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    return v;
}

#define TB_BOTH(f)                                                                                 \
    {#f " [sqlite]", (f), tb_setup_sqlite, tb_teardown, NULL},                                     \
    {                                                                                              \
#f " [postgres]", (f), tb_setup_pg, tb_teardown, NULL                                      \
    }

#endif
