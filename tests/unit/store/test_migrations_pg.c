/* Tests for the PostgreSQL dialect of src/store/migrations.c against a real server: the
 * schema after every migration has SQLite's tables, views, columns, primary keys and
 * CHECKs; usage_events' monthly partitions are created, routed to and dropped as
 * migrations.h says; every view gives SQLite's answer on the same rows (days and times
 * before 1970 and on a leap day, the reports' rounded ratios).
 *
 * The server is TG_TEST_PG_URL (`make unit` starts a private one with scripts/pg-test.sh).
 * Without it the test fails: a skipped test is a check that cannot fail. Each test works
 * in a schema of its own, dropped at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/migrations.h"
#include "types/event.h"

#define LEAP_DAY_US   1709164800000000LL /* 2024-02-29T00:00:00Z */
#define MARCH_2024_US 1709251200000000LL /* 2024-03-01T00:00:00Z */
#define APRIL_2024_US 1711929600000000LL /* 2024-04-01T00:00:00Z */

typedef struct t {
    PGconn *pg;
    sqlite3 *lite;
    char schema[64];
} t_t;

static int nschemas;

static void pg_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("postgres: %s\n  in: %.300s", PQresultErrorMessage(r), sql);
    PQclear(r);
}

/* The one value of a one-row answer, as text ("" for NULL), into a static buffer. */
static const char *pg_value(PGconn *pg, const char *sql)
{
    static char v[4096];
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("postgres: %s (%d rows)\n  in: %s", PQresultErrorMessage(r), PQntuples(r), sql);
    snprintf(v, sizeof v, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* The SQLSTATE a statement fails with ("" when it succeeds). */
static const char *pg_state(PGconn *pg, const char *sql)
{
    static char code[8];
    PGresult *r = PQexec(pg, sql);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(code, sizeof code, "%s", s ? s : "");
    PQclear(r);
    return code;
}

static void lite_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s\n  in: %.300s", msg, sql);
}

/* Both databases at the last migration, each text in its own transaction as the runners
 * apply them. */
static int setup(void **state)
{
    t_t *t = calloc(1, sizeof *t);
    t->pg = PQconnectdb(getenv("TG_TEST_PG_URL"));
    if (PQstatus(t->pg) != CONNECTION_OK) {
        fprintf(stderr, "TG_TEST_PG_URL: %s", PQerrorMessage(t->pg));
        return -1;
    }
    pg_ok(t->pg, "SET client_min_messages = warning");
    snprintf(t->schema, sizeof t->schema, "t_%ld_%d", (long)getpid(), nschemas++);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s; SET search_path = %s", t->schema, t->schema);
    pg_ok(t->pg, sql);
    assert_int_equal(sqlite3_open(":memory:", &t->lite), SQLITE_OK);

    pg_ok(t->pg, tg_store_migrations_bootstrap_pg);
    lite_ok(t->lite, tg_store_migrations_bootstrap);
    for (size_t i = 0; i < tg_store_nmigrations; i++) {
        pg_ok(t->pg, "BEGIN");
        pg_ok(t->pg, tg_store_migrations[i].pg);
        pg_ok(t->pg, "COMMIT");
        lite_ok(t->lite, "BEGIN");
        lite_ok(t->lite, tg_store_migrations[i].sql);
        lite_ok(t->lite, "COMMIT");
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    t_t *t = *state;
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", t->schema);
    pg_ok(t->pg, sql);
    PQfinish(t->pg);
    sqlite3_close(t->lite);
    free(t);
    return 0;
}

/* SQLite's objects: "name kind" per line, kind 'table' or 'view', by name. */
static char *lite_objects(sqlite3 *db)
{
    static char out[8192];
    out[0] = '\0';
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name, type FROM sqlite_schema WHERE type IN "
                                        "('table', 'view') AND name NOT LIKE 'sqlite_%' "
                                        "ORDER BY name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = strlen(out);
        snprintf(out + n, sizeof out - n, "%s %s\n", sqlite3_column_text(st, 0),
                 sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return out;
}

/* One text column of every row of a SQLite query, joined with commas. */
static void lite_list(sqlite3 *db, const char *sql, const char *arg, char *out, size_t cap)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("sqlite: %s\n  in: %s", sqlite3_errmsg(db), sql);
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? "," : "", sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
}

/* The same from PostgreSQL, $1 = arg. */
static void pg_list(PGconn *pg, const char *sql, const char *arg, char *out, size_t cap)
{
    PGresult *r = PQexecParams(pg, sql, 1, NULL, &arg, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("postgres: %s\n  in: %s", PQresultErrorMessage(r), sql);
    out[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? "," : "", PQgetvalue(r, i, 0));
    }
    PQclear(r);
}

/* Occurrences of "CHECK (" in a table's CREATE TABLE text (columns added later included). */
static int lite_checks(sqlite3 *db, const char *table)
{
    char sql[8192];
    lite_list(db, "SELECT sql FROM sqlite_schema WHERE name = ?1", table, sql, sizeof sql);
    int n = 0;
    for (const char *p = sql; (p = strstr(p, "CHECK (")); p++)
        n++;
    return n;
}

static void test_same_schema(void **state)
{
    t_t *t = *state;
    /* The same objects, partitions aside (a partition is storage of usage_events). */
    char pg_objects[8192];
    pg_list(t->pg,
            "SELECT c.relname || ' ' || CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END "
            "|| E'\\n' FROM pg_class c WHERE c.relnamespace = to_regnamespace($1) "
            "AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition ORDER BY c.relname",
            t->schema, pg_objects, sizeof pg_objects);
    char want[8192], *w = want;
    for (const char *p = lite_objects(t->lite); *p; p++) {
        *w++ = *p;
        if (*p == '\n' && p[1]) *w++ = ','; /* pg_list's separator */
    }
    *w = '\0';
    assert_string_equal(pg_objects, want);

    /* Per object: column names in order, primary key columns, number of CHECKs. */
    char objects[8192];
    snprintf(objects, sizeof objects, "%s", lite_objects(t->lite));
    int nobjects = 0;
    for (char *line = strtok(objects, "\n"); line; line = strtok(NULL, "\n")) {
        char *kind = strchr(line, ' ');
        *kind++ = '\0';
        char a[2048], b[2048];
        lite_list(t->lite, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", line, a,
                  sizeof a);
        pg_list(t->pg,
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                line, b, sizeof b);
        if (strcmp(a, b) != 0)
            fail_msg("%s %s: columns\n  sqlite:   %s\n  postgres: %s", kind, line, a, b);
        nobjects++;
        if (strcmp(kind, "table") != 0) continue;
        lite_list(t->lite, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", line,
                  a, sizeof a);
        pg_list(t->pg,
                "SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, n), "
                "pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = k.att "
                "AND i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.n",
                line, b, sizeof b);
        if (strcmp(a, b) != 0)
            fail_msg("table %s: primary key\n  sqlite:   %s\n  postgres: %s", line, a, b);
        pg_list(t->pg,
                "SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass($1) "
                "AND contype = 'c'",
                line, b, sizeof b);
        if (atoi(b) != lite_checks(t->lite, line))
            fail_msg("table %s: %d CHECKs in sqlite, %s in postgres", line,
                     lite_checks(t->lite, line), b);
    }
    assert_int_equal(nobjects, 42); /* 30 tables (audit, audit_head: 14; admin_tokens: 15;
                                       audit_bodies: 18), 12 views */
}

/* A minimal event of id and ts_us, in both databases' SQL. */
static void insert_event(t_t *t, int64_t id, int64_t ts_us)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO usage_events (id, ts_us, tenant, method, path, status, outcome, "
             "latency_us, bytes_in, bytes_out, cost_micros) VALUES (%lld, %lld, 'acme', "
             "'POST', '/v1/chat', 200, 'billable', 1500, 10, 20, 7)",
             (long long)id, (long long)ts_us);
    pg_ok(t->pg, sql);
    lite_ok(t->lite, sql);
}

static const char *partition_of(t_t *t, int64_t id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT tableoid::regclass::text FROM usage_events WHERE id = %lld",
             (long long)id);
    return pg_value(t->pg, sql);
}

static const char *call(t_t *t, const char *fn, int64_t us)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s(%lld)", fn, (long long)us);
    return pg_value(t->pg, sql);
}

static void test_partitions(void **state)
{
    t_t *t = *state;
    /* Twice in a row is the same partition, created once. */
    assert_string_equal(call(t, "tg_usage_partition", LEAP_DAY_US), "usage_events_202402");
    assert_string_equal(call(t, "tg_usage_partition", MARCH_2024_US - 1), "usage_events_202402");
    assert_string_equal(call(t, "tg_usage_partition", MARCH_2024_US), "usage_events_202403");
    assert_string_equal(call(t, "tg_usage_partition", 1500000000000000LL), "usage_events_pre2020");

    /* Rows go where their ids say: a month's last microsecond and the next one's first. */
    int64_t feb_a = tg_event_new_id(LEAP_DAY_US), feb_b = tg_event_new_id(MARCH_2024_US - 1);
    int64_t mar = tg_event_new_id(MARCH_2024_US);
    insert_event(t, feb_a, LEAP_DAY_US);
    insert_event(t, feb_b, MARCH_2024_US - 1);
    insert_event(t, mar, MARCH_2024_US);
    insert_event(t, -5, 1500000000000000LL); /* 2017: a negative id */
    assert_string_equal(partition_of(t, feb_a), "usage_events_202402");
    assert_string_equal(partition_of(t, feb_b), "usage_events_202402");
    assert_string_equal(partition_of(t, mar), "usage_events_202403");
    assert_string_equal(partition_of(t, -5), "usage_events_pre2020");

    /* A duplicate id is refused; so is a month nobody created (no DEFAULT partition). */
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO usage_events (id, ts_us, tenant, method, path, status, outcome, "
             "latency_us, bytes_in, bytes_out, cost_micros) VALUES (%lld, %lld, 'acme', 'GET', "
             "'/', 200, 'billable', 1, 0, 0, 0)",
             (long long)mar, (long long)MARCH_2024_US);
    assert_string_equal(pg_state(t->pg, sql), "23505");
    snprintf(sql, sizeof sql,
             "INSERT INTO usage_events (id, ts_us, tenant, method, path, status, outcome, "
             "latency_us, bytes_in, bytes_out, cost_micros) VALUES (%lld, %lld, 'acme', 'GET', "
             "'/', 200, 'billable', 1, 0, 0, 0)",
             (long long)tg_event_new_id(APRIL_2024_US), (long long)APRIL_2024_US);
    assert_string_equal(pg_state(t->pg, sql), "23514");

    /* Retention: a month goes once its whole range is before the cutoff, not before. */
    assert_string_equal(call(t, "tg_usage_drop_before", MARCH_2024_US - 1), "0");
    assert_string_equal(call(t, "tg_usage_drop_before", MARCH_2024_US), "2");
    assert_string_equal(pg_value(t->pg, "SELECT to_regclass('usage_events_202402') IS NULL"), "t");
    assert_string_equal(call(t, "tg_usage_drop_before", APRIL_2024_US - 1), "0");
    assert_string_equal(pg_value(t->pg, "SELECT count(*) FROM usage_events"), "2");
    assert_string_equal(call(t, "tg_usage_drop_before", APRIL_2024_US), "1");
    assert_string_equal(pg_value(t->pg, "SELECT count(*) FROM usage_events"), "1");
    assert_string_equal(partition_of(t, -5), "usage_events_pre2020");
}

/* Two sessions create the same month at once: the second waits on the first's advisory
 * lock, then finds the partition there. Without the lock it fails (42P07 or 23505). */
static void test_partition_race(void **state)
{
    t_t *t = *state;
    PGconn *other = PQconnectdb(getenv("TG_TEST_PG_URL"));
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    char sql[256];
    snprintf(sql, sizeof sql, "SET client_min_messages = warning; SET search_path = %s", t->schema);
    pg_ok(other, sql);

    pg_ok(t->pg, "BEGIN");
    assert_string_equal(call(t, "tg_usage_partition", APRIL_2024_US), "usage_events_202404");
    pg_ok(other, "BEGIN");
    snprintf(sql, sizeof sql, "SELECT tg_usage_partition(%lld)", (long long)APRIL_2024_US + 1);
    assert_int_equal(PQsendQuery(other, sql), 1);
    /* Until the other session waits for a lock (a bounded number of round trips). */
    int waiting = 0;
    for (int i = 0; i < 5000 && !waiting; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_locks WHERE pid = %d AND NOT granted",
                 PQbackendPID(other));
        waiting = atoi(pg_value(t->pg, sql)) > 0;
    }
    assert_true(waiting);
    pg_ok(t->pg, "COMMIT");

    PGresult *r = PQgetResult(other);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("second session: %s", PQresultErrorMessage(r));
    assert_string_equal(PQgetvalue(r, 0, 0), "usage_events_202404");
    PQclear(r);
    while ((r = PQgetResult(other)))
        PQclear(r);
    pg_ok(other, "COMMIT");
    PQfinish(other);
}

/* Every row of a query in both databases, cells compared as numbers when both are numbers
 * (a SQLite REAL against a PostgreSQL numeric), else as text; NULL only equals NULL. */
static void same_rows(t_t *t, const char *sql)
{
    PGresult *r = PQexec(t->pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("postgres: %s\n  in: %s", PQresultErrorMessage(r), sql);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(t->lite, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("sqlite: %s\n  in: %s", sqlite3_errmsg(t->lite), sql);
    int ncols = PQnfields(r), row = 0;
    assert_int_equal(sqlite3_column_count(st), ncols);
    for (; sqlite3_step(st) == SQLITE_ROW; row++) {
        if (row >= PQntuples(r)) fail_msg("%s: sqlite has more than %d rows", sql, row);
        for (int c = 0; c < ncols; c++) {
            const char *a = (const char *)sqlite3_column_text(st, c);
            const char *b = PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
            char *ea, *eb;
            if (!a || !b) {
                if (a || b)
                    fail_msg("%s: row %d column %s: sqlite %s, postgres %s", sql, row,
                             PQfname(r, c), a ? a : "NULL", b ? b : "NULL");
                continue;
            }
            double x = strtod(a, &ea), y = strtod(b, &eb);
            if (*a && *b && !*ea && !*eb ? fabs(x - y) > 1e-9 * fmax(1, fabs(x))
                                         : strcmp(a, b) != 0)
                fail_msg("%s: row %d column %s: sqlite '%s', postgres '%s'", sql, row,
                         PQfname(r, c), a, b);
        }
    }
    assert_int_equal(PQntuples(r), row);
    sqlite3_finalize(st);
    PQclear(r);
}

static void test_views_same_answers(void **state)
{
    t_t *t = *state;
    static const char *setup_sql =
        "INSERT INTO tenants (id, name, created_us) VALUES ('acme', 'Acme', 0);\n"
        "INSERT INTO usage_daily (tenant_id, day, requests, billable, tokens_in, tokens_out,\n"
        "  cost_micros) VALUES ('acme', '2024-02-29', 3, 2, 100, 50, 70),\n"
        "  ('acme', '2024-03-01', 7, 0, 0, 0, 0), ('b', '2024-02-29', 0, 0, 0, 0, 0);\n";
    pg_ok(t->pg, setup_sql);
    lite_ok(t->lite, setup_sql);
    pg_ok(t->pg, "INSERT INTO api_keys (id, tenant_id, sha256, prefix, name, created_us) VALUES "
                 "('key_1', 'acme', decode(repeat('ab', 32), 'hex'), 'tg_abcd', 'ci', "
                 "-1500000)");
    lite_ok(t->lite, "INSERT INTO api_keys (id, tenant_id, sha256, prefix, name, created_us) "
                     "VALUES ('key_1', 'acme', randomblob(32), 'tg_abcd', 'ci', -1500000)");

    /* Before 1970 (whole seconds truncate toward zero in both), the epoch, a leap day's
     * first and last microseconds, the last microsecond before 2020. */
    static const int64_t old[] = {-1500000, -86400000000LL, 0, 951782400000000LL,
                                  1577836799999999LL};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        insert_event(t, -1000 - (int64_t)i, old[i]);
    call(t, "tg_usage_partition", LEAP_DAY_US);
    call(t, "tg_usage_partition", MARCH_2024_US);
    insert_event(t, tg_event_new_id(LEAP_DAY_US), LEAP_DAY_US);
    /* The richer rows: keys, models, cache, tools, tokens, an aggregate; two hours, two days. */
    static const struct {
        int64_t ts;
        const char *values; /* key_id .. bytes_out, as in the INSERT below */
    } rows[] = {
        {LEAP_DAY_US + 1, "'key_1', 'gpt-4o', 100, 33, 5, 'hit', NULL, 'billable', 1, 1000, 2000"},
        {LEAP_DAY_US + 3600000000LL,
         "'key_1', 'gpt-4o', 7, 0, NULL, 'MISS', NULL, 'billable', 2, 1, 1"},
        {MARCH_2024_US - 1,
         "NULL, NULL, NULL, NULL, NULL, 'RefreshHit', 'search', 'billable', 1, 5, 999"},
        {MARCH_2024_US, "'key_x', 'claude', 1, 2, 0, NULL, 'search', 'failed', 3, 123456789, 7"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "INSERT INTO usage_events (id, ts_us, tenant, method, path, status, latency_us, "
                 "cost_micros, key_id, model, tokens_in, tokens_out, tokens_cached, cache, tool, "
                 "outcome, requests, bytes_in, bytes_out) VALUES (%lld, %lld, 'acme', 'POST', "
                 "'/v1/x', 200, %d, 11, %s)",
                 (long long)tg_event_new_id(rows[i].ts), (long long)rows[i].ts,
                 1234 + 1000 * (int)i, rows[i].values);
        pg_ok(t->pg, sql);
        lite_ok(t->lite, sql);
    }

    char objects[8192];
    snprintf(objects, sizeof objects, "%s", lite_objects(t->lite));
    int nviews = 0;
    for (char *line = strtok(objects, "\n"); line; line = strtok(NULL, "\n")) {
        char *kind = strchr(line, ' ');
        *kind++ = '\0';
        if (strcmp(kind, "view") != 0) continue;
        char cols[2048], order[4096] = "", sql[4352];
        lite_list(t->lite, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", line, cols,
                  sizeof cols);
        int n = 1;
        for (const char *p = cols; *p; p++)
            n += *p == ',';
        for (int i = 1; i <= n; i++) {
            size_t len = strlen(order);
            snprintf(order + len, sizeof order - len, "%s%d NULLS FIRST", i > 1 ? ", " : "", i);
        }
        snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY %s", line, order);
        same_rows(t, sql);
        nviews++;
    }
    assert_int_equal(nviews, 12);
    /* The days and times themselves, as SQLite spells them. */
    assert_string_equal(pg_value(t->pg, "SELECT time || ' ' || day FROM events WHERE id = -1000"),
                        "1969-12-31T23:59:59Z 1969-12-31");
    assert_string_equal(pg_value(t->pg, "SELECT max(hour) FROM hourly WHERE day = '2024-02-29'"),
                        "2024-02-29T23:00:00Z");
    assert_string_equal(pg_value(t->pg, "SELECT created FROM keys"), "1969-12-31T23:59:59Z");
}

int main(void)
{
    if (!getenv("TG_TEST_PG_URL") || !*getenv("TG_TEST_PG_URL")) {
        fprintf(stderr, "test_migrations_pg: TG_TEST_PG_URL is not set: this test needs a "
                        "PostgreSQL server (`make unit` starts one with scripts/pg-test.sh; "
                        "by hand: scripts/pg-test.sh start DIR PORT)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views_same_answers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
