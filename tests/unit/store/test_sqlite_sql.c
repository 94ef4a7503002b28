/* Tests for src/store/sqlite_sql.c and pg_sql.c: read-only SQL (refusals on the read-only
 * handle and on a normal one, one statement per call, no secret in the views), the online
 * backup (while another connection writes), restore and the archive's purge. What goes
 * through the store's API alone runs on both backends ([sqlite], [postgres]); backup and
 * restore are SQLite's (PostgreSQL's is pg_dump). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "store/backend.h"
#include "store/migrations.h"
#include "store/sql_fixture.h"

typedef struct t {
    fx_t *f;
    tg_store_t *ro; /* the read-only handle on the same file */
} t_t;

static int setup_on(void **state, int pg)
{
    t_t *t = calloc(1, sizeof *t);
    if (fx_setup_on((void **)&t->f, pg) != 0) return -1;
    tg_err_t err;
    if (tg_store_open_readonly(t->f->url, &t->ro, &err) != 0) {
        fprintf(stderr, "open ro: %s\n", err.msg);
        return -1;
    }
    *state = t;
    return 0;
}

static int setup(void **state)
{
    return setup_on(state, 0);
}

static int setup_pg(void **state)
{
    return setup_on(state, 1);
}

static int teardown(void **state)
{
    t_t *t = *state;
    if (!t) return 0;
    tg_store_close(t->ro);
    fx_close(t->f);
    free(t);
    return 0;
}

/* Runs sql on s; returns the code, rows into r, err into err. */
static int q(tg_store_t *s, const char *sql, fx_rows_t *r, tg_err_t *err)
{
    tg_sql_sink_t sink = fx_sink(r);
    err->msg[0] = '\0';
    return tg_store_query(s, sql, NULL, 0, &sink, err);
}

static int64_t count(tg_store_t *s, const char *sql)
{
    fx_rows_t r;
    tg_err_t err;
    if (q(s, sql, &r, &err) != 0) fail_msg("%s: %s", sql, err.msg);
    assert_int_equal(r.n, 1);
    return strtoll(r.row[0], NULL, 10);
}

/* sql on handle h is refused with why in the message. */
static void expect_refused(tg_store_t *s, size_t h, const char *sql, const char *why)
{
    fx_rows_t r;
    tg_err_t err;
    int rc = q(s, sql, &r, &err);
    if (rc != TG_STORE_REFUSED || !strstr(err.msg, why))
        fail_msg("handle %zu, \"%s\": rc %d, \"%s\" (expected \"%s\")", h, sql, rc, err.msg, why);
}

static void test_reads(void **state)
{
    t_t *t = *state;
    fx_rows_t r;
    tg_err_t err;
    assert_int_equal(q(t->ro,
                       "SELECT tenant, count(*) AS n FROM events GROUP BY tenant ORDER BY 1;  "
                       "-- a comment after the statement is fine",
                       &r, &err),
                     0);
    assert_string_equal(r.cols, "tenant|n");
    assert_int_equal(r.n, 2);
    assert_string_equal(r.row[0], "acme|5");
    assert_string_equal(r.row[1], "beta|1");
    if (!t->f->pg) {
        assert_int_equal(q(t->ro, "PRAGMA table_info(events)", &r, &err), 0);
        assert_true(r.n > 20);
    }
    assert_int_equal(q(t->ro,
                       "WITH x(v) AS (VALUES (CAST(1.5 AS REAL)), (NULL), (2)) SELECT v FROM x", &r,
                       &err),
                     0);
    assert_string_equal(r.row[0], "1.5");
    assert_string_equal(r.row[1], "NULL");
    assert_string_equal(r.row[2], "2");
    /* Sums and counts read as integers on both (PostgreSQL's sum of a bigint is numeric). */
    assert_int_equal(q(t->ro,
                       "SELECT sum(cost_micros) AS c, count(*) AS n, max(tenant) AS m FROM events",
                       &r, &err),
                     0);
    assert_string_equal(r.row[0], "6100|6|beta");
    /* A callback's nonzero stops the rows and comes back as is. */
    tg_sql_sink_t sink = fx_sink(&r);
    r.stop_after = 2;
    assert_int_equal(tg_store_query(t->ro, "SELECT id FROM events", NULL, 0, &sink, &err), 7);
    assert_int_equal(r.n, 2);
    /* The handle is usable after a stopped query. */
    assert_int_equal(count(t->ro, "SELECT count(*) FROM tenants"), 2);
    /* Parameters are bound as text ($N on both); NULL binds NULL; a missing one is refused. */
    const char *params[2] = {"beta", NULL};
    sink = fx_sink(&r);
    assert_int_equal(tg_store_query(t->ro,
                                    "SELECT count(*) AS n, CAST($2 AS TEXT) IS NULL AS x FROM "
                                    "events WHERE tenant = $1",
                                    params, 2, &sink, &err),
                     0);
    assert_string_equal(r.row[0], "1|1");
    assert_int_equal(q(t->ro, "SELECT $1", &r, &err), TG_STORE_REFUSED);
}

/* What PostgreSQL refuses, on the read-only handle and on a normal one: nothing writes. */
static void test_refusals_pg(void **state)
{
    t_t *t = *state;
    static const struct {
        const char *sql, *why;
    } cases[] = {
        {"INSERT INTO tenants (id, created_us) VALUES ('x', 0) RETURNING id", "could write"},
        {"DELETE FROM usage_events RETURNING id", "could write"},
        {"WITH d AS (DELETE FROM tenants RETURNING id) SELECT * FROM d", "could write"},
        {"UPDATE tenants SET name = 'x'", "returns no rows"},
        {"UPDATE tenants\n\tSET name = 'x' RETURNING\nid", "\"UPDATE tenants  SET name"},
        {"DROP TABLE usage_daily", "returns no rows"},
        {"CREATE TABLE z AS SELECT 1 AS x", "returns no rows"},
        {"SELECT * FROM tenants FOR UPDATE", "could write"},
        {"SELECT nextval('alerts_id_seq')", "could write"},
        {"SELECT tg_usage_partition(1893456000000000)", "could write"}, /* creates a table */
        {"SET default_transaction_read_only = off", "returns no rows"},
        {"COMMIT", "returns no rows"},
        {"BEGIN", "returns no rows"},
        {"SELECT 1; DELETE FROM tenants", "one statement"},
        {"SELECT 1; SELECT 2", "one statement"},
        {"", "returns no rows"},
        {"SELEKT 1", "SQL error"},
        {"SELECT sha256 FROM keys", "SQL error"},
    };
    tg_store_t *handles[2] = {t->ro, t->f->s};
    for (size_t h = 0; h < 2; h++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            expect_refused(handles[h], h, cases[i].sql, cases[i].why);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM tenants"), 2);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM events"), 6);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM pg_tables WHERE tablename = "
                                  "'usage_events_203001' AND schemaname = current_schema()"),
                     0);
    /* A set_config() inside the query is rolled back with it. */
    assert_int_equal(count(t->f->s, "SELECT count(*) FROM (SELECT set_config('statement_timeout', "
                                    "'1', false)) x"),
                     1);
    assert_int_equal(count(t->f->s, "SELECT count(*) FROM pg_sleep(0.05)"), 1);
    /* A query cancelled by someone (here itself: pg_cancel_backend, as another session's
     * operator may) says so; it was reported as the 60 s statement timeout. */
    fx_rows_t r;
    tg_err_t qerr;
    assert_int_not_equal(
        q(t->ro, "SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(5)", &r, &qerr), 0);
    assert_null(strstr(qerr.msg, "60 s"));
    assert_non_null(strstr(qerr.msg, "canceling statement due to user request"));
    /* The read-only handle cannot be written by the other operations either. */
    tg_err_t err;
    assert_int_not_equal(tg_store_tenant_add(t->ro, "gamma", "", &err), 0);
    /* The backup is pg_dump's. */
    assert_int_equal(tg_store_backup(t->f->s, "/tmp/tg_test_pg_backup.db", 0, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "pg_dump"));
}

/* No view shows a key's hash; the views list their columns. */
static void test_no_secret(void **state)
{
    t_t *t = *state;
    fx_rows_t r;
    tg_err_t err;
    assert_int_equal(q(t->ro, "SELECT * FROM keys ORDER BY id", &r, &err), 0);
    assert_string_equal(r.cols, "id|tenant|prefix|name|status|created_us|created|last_used_us|"
                                "expires_us|rotated_from|signing");
    assert_null(strstr(r.row[0], "aaaa"));
    assert_int_equal(q(t->ro, "SELECT signing_secret FROM keys", &r, &err), TG_STORE_REFUSED);
    assert_int_equal(q(t->ro, "SELECT sha256 FROM keys", &r, &err), TG_STORE_REFUSED);
    assert_non_null(strstr(err.msg, t->f->pg ? "does not exist" : "no such column"));
    assert_int_equal(q(t->ro, "SELECT * FROM daily LIMIT 0", &r, &err), 0);
    assert_string_equal(r.cols, "day|tenant|requests|billable|failed|rejected|bytes_in|bytes_out|"
                                "tokens_in|tokens_out|tokens_cached|cost_micros");
    assert_int_equal(q(t->ro, "SELECT * FROM tenants LIMIT 0", &r, &err), 0);
    assert_string_equal(r.cols, "id|name|status|created_us");
}

/* A query past the read-only handle's timeout is cancelled with the timeout's words; the
 * handle then serves the next query (refused or not) normally, and a read-write handle has
 * no bound. Endless: a recursive WITH without a stop. */
static void test_query_timeout(void **state)
{
    t_t *t = *state;
    static const char endless[] =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    fx_rows_t r;
    tg_err_t err;
    tg_store_set_query_timeout(t->ro, 100);
    assert_int_equal(q(t->ro, endless, &r, &err), -1);
    assert_string_equal(err.msg, "query: cancelled after 100 ms (the query timeout): narrow it "
                                 "down, or give it longer with --timeout");
    /* A refusal before any step, then a query that steps: nothing is left of the first
     * deadline (a short one, so that no machine is too slow for the bound of 100 ms). */
    assert_int_equal(q(t->ro, "SELECT $1", &r, &err), TG_STORE_REFUSED);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM tenants"), 2);
    tg_store_set_query_timeout(t->ro, 1000);
    assert_int_equal(q(t->ro,
                       "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                       "SELECT x FROM c WHERE x = -1",
                       &r, &err),
                     -1);
    assert_string_equal(err.msg, "query: cancelled after 1 s (the query timeout): narrow it down, "
                                 "or give it longer with --timeout");
    /* Read-write handles (the archive's) are not bounded, and cannot be given a bound. */
    tg_store_set_query_timeout(t->f->s, 100);
    assert_int_equal(t->f->s->query_timeout_ms, 0);
    assert_int_equal(t->ro->query_timeout_ms, 1000);
}

static void test_refusals(void **state)
{
    t_t *t = *state;
    static const struct {
        const char *sql, *why;
    } cases[] = {
        {"INSERT INTO tenants (id, created_us) VALUES ('x', 0)", "could write"},
        {"DELETE FROM usage_events", "could write"},
        {"UPDATE tenants SET name = 'x'", "could write"},
        {"UPDATE tenants\n\tSET name = 'x'", "\"UPDATE tenants  SET name"}, /* one line */
        {"DROP TABLE usage_daily", "could write"},
        {"CREATE TEMP TABLE z (x)", "could write"},
        {"VACUUM INTO '/tmp/tg_test_sql_vacuum.db'", "could write"},
        {"ATTACH '/tmp/tg_test_sql_attach.db' AS z", "ATTACH"},
        {"PRAGMA query_only = 0", "PRAGMA query_only"},
        {"PRAGMA user_version = 3", "PRAGMA user_version"},
        {"PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"},
        {"REINDEX", "REINDEX"},
        {"ANALYZE", "ANALYZE"},
        {"SELECT load_extension('/tmp/x.so')", "load_extension"},
        {"BEGIN", "returns no rows"},
        {"SELECT 1; DELETE FROM tenants", "one statement"},
        {"SELECT 1; SELECT 2", "one statement"},
        {"SELECT 1; garbage", "one statement"},
        {"", "no SQL statement"},
        {"-- only a comment", "no SQL statement"},
        {"SELEKT 1", "SQL error"},
    };
    tg_store_t *handles[2] = {t->ro, t->f->s};
    for (size_t h = 0; h < 2; h++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            /* The normal handle has no authorizer: what it lets through still writes
             * nothing (no columns, or a read). */
            if (h == 1 &&
                (strstr(cases[i].why, "PRAGMA query_only") || !strcmp(cases[i].why, "REINDEX") ||
                 !strcmp(cases[i].why, "ATTACH") || !strcmp(cases[i].why, "load_extension")))
                continue;
            expect_refused(handles[h], h, cases[i].sql, cases[i].why);
        }
    struct stat sb;
    assert_int_not_equal(stat("/tmp/tg_test_sql_vacuum.db", &sb), 0);
    assert_int_not_equal(stat("/tmp/tg_test_sql_attach.db", &sb), 0);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM tenants"), 2);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM events"), 6);
    /* The read-only handle cannot be written by the other operations either. */
    tg_err_t err;
    assert_int_not_equal(tg_store_tenant_add(t->ro, "gamma", "", &err), 0);
}

/* ---- backup ---- */

typedef struct writer_arg {
    const char *url;
    volatile int stop;
    int64_t written;
} writer_arg_t;

/* Appends one event per batch until told to stop: a gateway's writer. */
static void *writer(void *p)
{
    writer_arg_t *a = p;
    tg_store_t *s;
    tg_err_t err;
    if (tg_store_open(a->url, &s, &err) != 0) return NULL;
    for (int64_t id = 1000; !a->stop && id < 200000; id++) {
        tg_event_t e = fx_event(0);
        e.id = id;
        size_t n = 0;
        if (tg_store_append(s, &e, 1, &n, &err) == 0) a->written += (int64_t)n;
    }
    tg_store_close(s);
    return NULL;
}

static void test_backup_while_writing(void **state)
{
    t_t *t = *state;
    /* Make the store big enough to take many one-page steps. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(t->f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE pad (b BLOB); WITH RECURSIVE c(x) AS (SELECT 1 "
                                  "UNION ALL SELECT x + 1 FROM c WHERE x < 400) INSERT INTO pad "
                                  "SELECT randomblob(3000) FROM c",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    writer_arg_t a = {.url = t->f->url};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer, &a), 0);
    while (a.written < 20)
        usleep(1000);
    char dest[160];
    snprintf(dest, sizeof dest, "%s/copy.db", t->f->dir);
    int64_t pages = 0;
    tg_err_t err;
    int64_t before = a.written;
    int rc = tg_store_backup(t->f->s, dest, 1, &pages, &err);
    int64_t during = a.written - before;
    a.stop = 1;
    pthread_join(th, NULL);
    if (rc != 0) fail_msg("backup: %s", err.msg);
    assert_true(pages > 300);
    assert_true(during > 0); /* the writer was not held up by the copy */

    /* The copy is one snapshot: its events and its daily sums agree. */
    tg_store_t *c;
    char url[200];
    snprintf(url, sizeof url, "sqlite:%s", dest);
    assert_int_equal(tg_store_open_readonly(url, &c, &err), 0);
    int64_t evs = count(c, "SELECT count(*) FROM events");
    assert_true(evs >= 6 + 20);
    assert_int_equal(count(c, "SELECT sum(requests) FROM daily"), evs);
    tg_store_close(c);

    /* An existing file is never written over. */
    assert_int_equal(tg_store_backup(t->f->s, dest, 64, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "already exists"));
    assert_int_equal(tg_store_open_readonly(url, &c, &err), 0);
    assert_int_equal(count(c, "SELECT count(*) FROM events"), evs);
    tg_store_close(c);
}

/* ---- restore ---- */

static void test_restore(void **state)
{
    t_t *t = *state;
    tg_err_t err;
    char copy[160], bak[4200], junk[160];
    snprintf(copy, sizeof copy, "%s/copy.db", t->f->dir);
    assert_int_equal(tg_store_backup(t->f->s, copy, 0, NULL, &err), 0);
    assert_int_equal(tg_store_tenant_add(t->f->s, "gamma", "", &err), 0);
    tg_store_close(t->ro);
    t->ro = NULL;
    tg_store_close(t->f->s);
    t->f->s = NULL;

    /* Not a database; not a tollgate store; a newer schema: refused, store untouched. */
    snprintf(junk, sizeof junk, "%s/junk.db", t->f->dir);
    FILE *fp = fopen(junk, "w");
    fputs("not sqlite at all, not sqlite at all, not sqlite at all, not sqlite at all", fp);
    fclose(fp);
    assert_int_equal(tg_store_restore(t->f->url, junk, bak, sizeof bak, &err), -1);
    sqlite3 *db;
    snprintf(junk, sizeof junk, "%s/other.db", t->f->dir);
    assert_int_equal(sqlite3_open(junk, &db), SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE x (y)", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(tg_store_restore(t->f->url, junk, bak, sizeof bak, &err), -1);
    assert_non_null(strstr(err.msg, "not a tollgate store"));
    char newer[160];
    snprintf(newer, sizeof newer, "%s/newer.db", t->f->dir);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", copy, newer);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(sqlite3_open(newer, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (999, 'future', 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(tg_store_restore(t->f->url, newer, bak, sizeof bak, &err), -1);
    assert_non_null(strstr(err.msg, "newer"));
    assert_string_equal(bak, "");

    /* The store onto itself. */
    assert_int_equal(tg_store_restore(t->f->url, t->f->path, bak, sizeof bak, &err), -1);
    assert_non_null(strstr(err.msg, "is the store itself"));

    /* The backup comes back; the store as it was is kept in .bak. */
    assert_int_equal(tg_store_restore(t->f->url, copy, bak, sizeof bak, &err), 0);
    char want[200];
    snprintf(want, sizeof want, "%s.bak", t->f->path);
    assert_string_equal(bak, want);
    assert_int_equal(tg_store_open(t->f->url, &t->f->s, &err), 0);
    assert_int_equal(count(t->f->s, "SELECT count(*) FROM tenants WHERE id = 'gamma'"), 0);
    assert_int_equal(count(t->f->s, "SELECT count(*) FROM events"), 6);
    tg_store_t *old;
    snprintf(want, sizeof want, "sqlite:%s.bak", t->f->path);
    assert_int_equal(tg_store_open_readonly(want, &old, &err), 0);
    assert_int_equal(count(old, "SELECT count(*) FROM tenants WHERE id = 'gamma'"), 1);
    tg_store_close(old);
    /* While any connection has the store open: refused (before the .bak is looked at). */
    assert_int_equal(tg_store_restore(t->f->url, copy, bak, sizeof bak, &err), -1);
    assert_non_null(strstr(err.msg, "open in another process"));
    tg_store_close(t->f->s);
    t->f->s = NULL;
    /* A second restore would overwrite that .bak: refused. */
    assert_int_equal(tg_store_restore(t->f->url, copy, bak, sizeof bak, &err), -1);
    assert_non_null(strstr(err.msg, "already exists"));
}

/* A store at version `version`, built as tollgate built it then (the migrations up to it but
 * `skip`, each with its row), then `extra` run on it; into path. */
static void old_store(const char *path, int version, int skip, const char *extra)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, tg_store_migrations_bootstrap, NULL, NULL, NULL), SQLITE_OK);
    for (size_t i = 0; i < tg_store_nmigrations && tg_store_migrations[i].version <= version; i++) {
        if (tg_store_migrations[i].version == skip) continue;
        char row[120];
        snprintf(row, sizeof row, "INSERT INTO schema_migrations VALUES (%d, 'm', 0)",
                 tg_store_migrations[i].version);
        assert_int_equal(sqlite3_exec(db, tg_store_migrations[i].sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, row, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO tenants VALUES ('old', '', 'active', 1)", NULL, NULL, NULL),
        SQLITE_OK);
    if (extra) assert_int_equal(sqlite3_exec(db, extra, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A store from before the views (version 6) is restored and upgraded at the next open; the
 * same with anything tollgate did not create is refused, the store untouched. */
static void test_restore_schema(void **state)
{
    t_t *t = *state;
    tg_err_t err;
    char old[160], bak[4200];
    tg_store_close(t->ro);
    t->ro = NULL;
    tg_store_close(t->f->s);
    t->f->s = NULL;
    static const struct {
        const char *extra, *says;
    } bad[] = {
        {"CREATE TRIGGER t AFTER INSERT ON usage_events BEGIN DELETE FROM usage_events; END",
         "trigger t is not part of tollgate's schema (version 6)"},
        {"CREATE VIEW events AS SELECT 1", "view events is not part of"},
        {"DROP INDEX api_keys_tenant", "index api_keys_tenant of tollgate's schema (version 6) is "
                                       "missing"},
        {"ALTER TABLE tenants ADD COLUMN x", "table tenants differs"},
        /* Named as ANALYZE's statistics, written in with writable_schema: still a trigger. */
        {"PRAGMA writable_schema = ON; INSERT INTO sqlite_schema VALUES ('trigger', "
         "'sqlite_stat9', 'usage_events', 0, 'CREATE TRIGGER sqlite_stat9 BEFORE INSERT ON "
         "usage_events BEGIN SELECT RAISE(IGNORE); END')",
         "trigger sqlite_stat9 is not part of"},
        {"ANALYZE; PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE TABLE "
         "sqlite_stat1(tbl,idx,stat,x CHECK (x > 0))' WHERE name = 'sqlite_stat1'",
         "table sqlite_stat1 is not part of"},
        /* The version says 5: migration 6's tables are extra. */
        {"DELETE FROM schema_migrations WHERE version = 6", "of tollgate's schema (version 5)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(old, sizeof old, "%s/old%zu.db", t->f->dir, i);
        old_store(old, 6, 0, bad[i].extra);
        assert_int_equal(tg_store_restore(t->f->url, old, bak, sizeof bak, &err), -1);
        if (!strstr(err.msg, bad[i].says)) fail_msg("%s: %s", bad[i].extra, err.msg);
        assert_string_equal(bak, "");
    }
    snprintf(old, sizeof old, "%s/old.db", t->f->dir);
    old_store(old, 6, 0, "ANALYZE"); /* sqlite_stat1: statistics, not code */
    if (tg_store_restore(t->f->url, old, bak, sizeof bak, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tg_store_open(t->f->url, &t->f->s, &err), 0);
    assert_int_equal(count(t->f->s, "SELECT count(*) FROM tenants WHERE id = 'old'"), 1);
    assert_int_equal(count(t->f->s, "SELECT max(version) FROM schema_migrations"),
                     tg_store_migrations[tg_store_nmigrations - 1].version);
    assert_int_equal(count(t->f->s, "SELECT count(*) FROM events"), 0);

    /* A store made before a migration written in parallel was merged (8 without 7): what
     * it has applied is what it is checked against; the next open applies 7. */
    tg_store_close(t->f->s);
    t->f->s = NULL;
    char bak2[200];
    snprintf(bak2, sizeof bak2, "%s.bak", t->f->path);
    unlink(bak2);
    snprintf(old, sizeof old, "%s/no7.db", t->f->dir);
    old_store(old, 8, 7, NULL);
    if (tg_store_restore(t->f->url, old, bak, sizeof bak, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tg_store_open(t->f->url, &t->f->s, &err), 0);
    assert_int_equal(count(t->f->s, "SELECT count(*) FROM schema_migrations WHERE version = 7"), 1);
    /* Upgraded so (7 after 8), its backup is restored again. */
    char again[160];
    snprintf(again, sizeof again, "%s/again.db", t->f->dir);
    assert_int_equal(tg_store_backup(t->f->s, again, 0, NULL, &err), 0);
    tg_store_close(t->f->s);
    t->f->s = NULL;
    unlink(bak2);
    if (tg_store_restore(t->f->url, again, bak, sizeof bak, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tg_store_open(t->f->url, &t->f->s, &err), 0);
    /* The same file with 7's row but not its tables: refused. */
    tg_store_close(t->f->s);
    t->f->s = NULL;
    unlink(bak2);
    snprintf(old, sizeof old, "%s/no7b.db", t->f->dir);
    old_store(old, 8, 7, "INSERT INTO schema_migrations VALUES (7, 'm', 0)");
    assert_int_equal(tg_store_restore(t->f->url, old, bak, sizeof bak, &err), -1);
    assert_non_null(strstr(err.msg, "is missing"));
}

/* ---- the archive's purge ---- */

static void test_events_delete(void **state)
{
    t_t *t = *state;
    const int64_t ids[] = {1, 2, 5, 77};
    int64_t deleted = -1;
    tg_err_t err;
    /* Event 5 is on Dec 1: newer than the bound, kept; 77 does not exist. */
    assert_int_equal(tg_store_events_delete(t->f->s, ids, 4, FX_DEC01, &deleted, &err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM events"), 4);
    assert_int_equal(count(t->ro, "SELECT count(*) FROM events WHERE id IN (1, 2)"), 0);
    assert_int_equal(count(t->ro, "SELECT sum(requests) FROM daily"), 6); /* kept */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_query_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_timeout, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_pg, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_backup_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_delete, setup_pg, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
