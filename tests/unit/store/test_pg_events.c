/* Tests for what only the PostgreSQL events path has (src/store/pg_events.c): several
 * gateways appending at once, a connection lost between batches, months as partitions
 * (purge by dropping them, events before 2020), the COPY text encoding and a lock held by
 * another session. Each against a fresh schema (backends.h) of TG_TEST_PG_URL's server;
 * what both backends share is tested in test_sqlite.c and test_sqlite_ingest.c (TB_BOTH). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "store/pg_int.h"
#include "store/store.h"
#include "types/event.h"
#include "util/clock.h"

#define HOUR_US      3600000000LL
#define EPOCH2020_MS 1577836800000LL

static int setup(void **state)
{
    return tb_setup_pg(state);
}

static int teardown(void **state)
{
    return tb_teardown(state);
}

static int64_t day_us(const char *day)
{
    int64_t us = 0;
    assert_int_equal(tg_parse_day(day, &us), 0);
    return us;
}

/* An id as tg_event_new_id makes it: the millisecond since 2020 over 22 low bits. */
static int64_t id_at(int64_t ts_us, int64_t low)
{
    return ((ts_us / 1000 - EPOCH2020_MS) * (1LL << 22)) + low;
}

static tg_event_t ev_make(int64_t ts, int64_t low, const char *tenant, tg_outcome_t outcome)
{
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.id = id_at(ts, low);
    e.ts_us = ts;
    e.latency_us = 1000;
    e.bytes_in = 100;
    e.bytes_out = 1000 + low % 7;
    e.tokens_in = 10 + low % 5;
    e.tokens_out = e.tokens_cached = e.tokens_cache_write = TG_TOKENS_UNKNOWN;
    e.cost_micros = 3 * (low % 11);
    e.status = outcome == TG_OUTCOME_BILLABLE ? 200 : 502;
    e.outcome = outcome;
    snprintf(e.tenant, sizeof e.tenant, "%s", tenant);
    snprintf(e.method, sizeof e.method, "POST");
    snprintf(e.path, sizeof e.path, "/v1/chat/completions");
    snprintf(e.request_id, sizeof e.request_id, "req-%lld", (long long)low);
    return e;
}

/* usage_daily equals the sums over usage_events, per column that both hold. */
static void assert_daily_matches_events(const tb_store_t *t)
{
    assert_int_equal(
        tb_int(t, "SELECT count(*) FROM (SELECT tenant, to_char(to_timestamp(ts_us / 1e6) AT "
                  "TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, sum(requests) AS r, "
                  "sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END) AS b, "
                  "sum(bytes_out) AS bo, coalesce(sum(tokens_in), 0) AS ti, sum(cost_micros) AS c "
                  "FROM usage_events GROUP BY 1, 2) e FULL JOIN usage_daily d ON "
                  "d.tenant_id = e.tenant AND d.day = e.day WHERE d.requests IS DISTINCT FROM "
                  "e.r OR d.billable IS DISTINCT FROM e.b OR d.bytes_out IS DISTINCT FROM e.bo "
                  "OR d.tokens_in IS DISTINCT FROM e.ti OR d.cost_micros IS DISTINCT FROM e.c"),
        0);
}

/* ---- two gateways at once ------------------------------------------------------------ */

enum { BATCHES = 12, BATCH = 1500, SHIFT = 700 };

typedef struct writer {
    tb_store_t *t;
    int which;
    int failures;
    size_t inserted;
} writer_t;

/* Writer w appends batches b = 0..BATCHES-1 of events [b * SHIFT + w * SHIFT / 2, + BATCH):
 * each overlaps its own previous batch and the other writer's, so the same ids meet in two
 * transactions at once. A batch refused as busy (a deadlock between them) is replayed, as
 * the recorder does. */
static void *write_batches(void *arg)
{
    writer_t *w = arg;
    tg_store_t *s = NULL;
    tg_err_t err;
    if (tg_store_open(w->t->url, &s, &err) != 0) {
        w->failures++;
        return NULL;
    }
    int64_t ts0 = day_us("2026-03-31") + 23 * HOUR_US; /* the batches cross into April */
    tg_event_t *evs = calloc(BATCH, sizeof *evs);
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            int64_t k = (int64_t)b * SHIFT + w->which * SHIFT / 2 + i;
            evs[i] = ev_make(ts0 + k * 1000000, k, k % 3 ? "acme" : "beta",
                             k % 5 ? TG_OUTCOME_BILLABLE : TG_OUTCOME_FAILED);
        }
        for (int tries = 0;; tries++) {
            size_t ins = 0;
            int rc = tg_store_append(s, evs, BATCH, &ins, &err);
            if (rc == 0) {
                w->inserted += ins;
                break;
            }
            if (rc != TG_STORE_BUSY || tries == 20) {
                fprintf(stderr, "writer %d: %s\n", w->which, err.msg);
                w->failures++;
                break;
            }
        }
    }
    free(evs);
    tg_store_close(s);
    return NULL;
}

static void test_two_writers_overlapping(void **state)
{
    tb_store_t *t = *state;
    writer_t w[2] = {{t, 0, 0, 0}, {t, 1, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, write_batches, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(w[0].failures + w[1].failures, 0);
    int64_t distinct = (BATCHES - 1) * SHIFT + SHIFT / 2 + BATCH;
    assert_int_equal(w[0].inserted + w[1].inserted, distinct);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), distinct);
    assert_int_equal(tb_int(t, "SELECT count(DISTINCT request_id) FROM usage_events"), distinct);
    assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), distinct);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_daily"), 4); /* 2 tenants, 2 days */
    assert_daily_matches_events(t);
}

/* Another process drew the same id for a different event: both are kept, from either
 * connection, and replays from both count nothing. */
static void test_collision_from_another_process(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_store_t *other = NULL;
    assert_int_equal(tg_store_open(t->url, &other, &err), 0);
    int64_t ts = day_us("2026-05-01") + HOUR_US;
    tg_event_t a[3], b[3];
    for (int i = 0; i < 3; i++) {
        a[i] = ev_make(ts + i, 40 + i, "acme", TG_OUTCOME_BILLABLE);
        b[i] = a[i];
        snprintf(b[i].request_id, sizeof b[i].request_id, "other-%d", i);
        b[i].cost_micros = 1000;
    }
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, a, 3, &ins, &err), 0);
    assert_int_equal(ins, 3);
    assert_int_equal(tg_store_append(other, b, 3, &ins, &err), 0);
    assert_int_equal(ins, 3);
    assert_int_equal(tg_store_append(other, b, 3, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(tg_store_append(t->s, a, 3, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 6);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE request_id LIKE 'other-%' "
                               "AND cost_micros = 1000"),
                     3);
    assert_int_equal(tb_int(t, "SELECT cost_micros FROM usage_daily"), 3000 + 21 + 24 + 27);
    assert_daily_matches_events(t);
    tg_store_close(other);
}

/* The server ends the store's session between two batches: the next append is busy (it
 * wrote nothing), the one after reconnects, and a replay of both batches adds only what
 * was missing. */
static void test_replay_after_connection_loss(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    int64_t ts = day_us("2026-06-10");
    enum { N = 300 };
    tg_event_t evs[2 * N];
    for (int i = 0; i < 2 * N; i++)
        evs[i] = ev_make(ts + i * 1000, i, i % 2 ? "acme" : "beta", TG_OUTCOME_BILLABLE);
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, evs, N, &ins, &err), 0);
    assert_int_equal(ins, N);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)",
             PQbackendPID(((pg_store_t *)t->s)->conn));
    assert_int_equal(tb_pg_admin(sql), 0);
    assert_int_equal(tg_store_append(t->s, evs, 2 * N, &ins, &err), TG_STORE_BUSY);
    assert_int_equal(ins, 0);
    assert_non_null(strstr(err.msg, "connection"));
    assert_null(strstr(err.msg, "postgres@")); /* names the server, never the URL */
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), N);
    assert_int_equal(tg_store_append(t->s, evs, 2 * N, &ins, &err), 0);
    assert_int_equal(ins, N);
    assert_int_equal(tg_store_append(t->s, evs, 2 * N, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 2 * N);
    assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), 2 * N);
    assert_daily_matches_events(t);
}

/* Three months of events; a cutoff in the third drops the first two months' partitions
 * and deletes the third's older events; aggregates stay. */
static void test_purge_three_months(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    const char *days[3] = {"2026-01-15", "2026-02-15", "2026-03-01"};
    enum { PER = 50 };
    tg_event_t evs[3 * PER];
    for (int m = 0; m < 3; m++)
        for (int i = 0; i < PER; i++)
            evs[m * PER + i] =
                ev_make(day_us(days[m]) + i * HOUR_US, m * PER + i, "acme", TG_OUTCOME_BILLABLE);
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, evs, 3 * PER, &ins, &err), 0);
    assert_int_equal(ins, 3 * PER);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events_202601"), PER);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events_202603"), PER);
    /* Cutoff 2026-03-01T20:00Z: the March events at hours 0..19 go, 20..49 stay. */
    int64_t cutoff = day_us("2026-03-01") + 20 * HOUR_US, deleted = 0;
    tg_store_t *other = NULL; /* another process purges */
    assert_int_equal(tg_store_open(t->url, &other, &err), 0);
    assert_int_equal(tg_store_purge(other, cutoff, NULL, &deleted, &err), 0);
    tg_store_close(other);
    assert_int_equal(deleted, 2 * PER + 20);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM pg_class WHERE relname IN "
                               "('usage_events_202601', 'usage_events_202602') AND "
                               "relnamespace = current_schema()::regnamespace"),
                     0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events_202603"), PER - 20);
    assert_int_equal(tb_int(t, "SELECT min(ts_us) FROM usage_events"), cutoff);
    assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), 3 * PER);
    /* The writer's connection still believes in January's partition: an old event
     * appended again (a spool replayed late) is busy once, then makes it again. */
    assert_int_equal(tg_store_append(t->s, evs, 1, &ins, &err), TG_STORE_BUSY);
    assert_int_equal(tg_store_append(t->s, evs, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events_202601"), 1);
}

/* A wrong clock before 2020: negative ids, in usage_events_pre2020; purged by DELETE. */
static void test_events_before_2020(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    int64_t ts = day_us("2019-06-01");
    tg_event_t evs[3];
    for (int i = 0; i < 3; i++)
        evs[i] = ev_make(ts + i * HOUR_US, i, "acme", TG_OUTCOME_BILLABLE);
    assert_true(evs[0].id < 0);
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, evs, 3, &ins, &err), 0);
    assert_int_equal(ins, 3);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events_pre2020"), 3);
    assert_int_equal(tg_store_append(t->s, evs, 3, &ins, &err), 0);
    assert_int_equal(ins, 0);
    int64_t deleted = 0;
    assert_int_equal(tg_store_purge(t->s, ts + HOUR_US + 1, NULL, &deleted, &err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events_pre2020"), 1);
}

/* Events far in the future (an ingested log's year 2095 or 9999, a clock gone wrong) are
 * stored with the ids tg_event_new_id gives them, in the last month ids hold: that month's
 * partition can be made (2089-09's upper bound does not fit in an id: 42P17, the whole
 * batch refused, as `tollgate ingest` was). */
static void test_events_far_future(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    const char *days[] = {"2089-09-03", "2095-06-01", "9999-12-31"};
    tg_event_t evs[3];
    for (int i = 0; i < 3; i++) {
        evs[i] = ev_make(day_us("2026-01-01"), i, "acme", TG_OUTCOME_BILLABLE);
        evs[i].ts_us = day_us(days[i]); /* ev_make's id_at would overflow */
        evs[i].id = tg_event_new_id(evs[i].ts_us);
    }
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, evs, 3, &ins, &err), 0);
    assert_int_equal(ins, 3);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events_208908"), 3);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_daily WHERE day = '9999-12-31'"), 1);
    assert_int_equal(tg_store_append(t->s, evs, 3, &ins, &err), 0);
    assert_int_equal(ins, 0);
}

/* COPY (binary format): backslash, tab, newline and CR come back as sent; bytes PostgreSQL
 * refuses in UTF-8 text (a character cut by a field's end, a stray byte) become '?', and
 * the batch is stored rather than refused. The one-by-one path (a collision) does the
 * same. */
static void test_copy_text_encoding(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    int64_t ts = day_us("2026-07-01");
    tg_event_t e[2];
    e[0] = ev_make(ts, 1, "acme", TG_OUTCOME_BILLABLE);
    snprintf(e[0].path, sizeof e[0].path, "/a\\b\tc\nd\re\\N");
    snprintf(e[0].model, sizeof e[0].model, "caf\xc3\xa9 \xe2\x82"); /* é, then a cut € */
    snprintf(e[0].tool, sizeof e[0].tool,
             "x\xff\xc0\xafy\xed\xa0\x80"); /* stray, overlong, surrogate */
    e[1] = e[0];                            /* the same id, another event: inserted one by one */
    snprintf(e[1].request_id, sizeof e[1].request_id, "req-other");
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, e, 2, &ins, &err), 0);
    assert_int_equal(ins, 2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE path = "
                               "E'/a\\\\b\\tc\\nd\\re\\\\N'"),
                     2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE model = 'café ?"
                               "?'"),
                     2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE tool = 'x?"
                               "?"
                               "?y?"
                               "?"
                               "?'"),
                     2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE source = 'gateway' AND "
                               "key_id IS NULL AND tokens_out IS NULL"),
                     2);
}

/* Another session holds usage_daily: the append waits the busy timeout, answers busy and
 * writes nothing; once the lock is gone the same batch goes in. */
static void test_busy_lock_writes_nothing(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(t->s, 50, &err), 0);
    PGconn *c = PQconnectdb(t->url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "BEGIN; LOCK TABLE usage_daily IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    tg_event_t evs[4];
    for (int i = 0; i < 4; i++)
        evs[i] = ev_make(day_us("2026-08-01") + i, i, "acme", TG_OUTCOME_BILLABLE);
    size_t ins = 99;
    assert_int_equal(tg_store_append(t->s, evs, 4, &ins, &err), TG_STORE_BUSY);
    assert_int_equal(ins, 0);
    PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 0);
    assert_int_equal(tg_store_append(t->s, evs, 4, &ins, &err), 0);
    assert_int_equal(ins, 4);
}

/* A server that answers slowly (here a trigger that sleeps; a saturated disk, a stalled
 * checkpoint alike) without a lock to wait for: the writer's append, with its short busy
 * timeout, gives up within PG_STALL_MS as TG_STORE_BUSY and writes nothing, so the
 * recorder spools instead of blocking its queue (and, once full, every worker) for as
 * long as the server takes. Before, lock_timeout alone bounded it: the append waited the
 * whole 30 s. */
static void test_slow_server_busy(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(t->s, 150, &err), 0);
    PGconn *c = PQconnectdb(t->url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
                            "$$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$; "
                            "CREATE TRIGGER slow BEFORE INSERT ON usage_daily "
                            "FOR EACH ROW EXECUTE FUNCTION slow()");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    tg_event_t evs[4];
    for (int i = 0; i < 4; i++)
        evs[i] = ev_make(day_us("2026-08-01") + i, i, "acme", TG_OUTCOME_BILLABLE);
    size_t ins = 99;
    int64_t t0 = tg_mono_us();
    assert_int_equal(tg_store_append(t->s, evs, 4, &ins, &err), TG_STORE_BUSY);
    assert_true(tg_mono_us() - t0 < 10 * 1000000LL);
    assert_int_equal(ins, 0);
    PQclear(PQexec(c, "DROP TRIGGER slow ON usage_daily"));
    PQfinish(c);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 0);
    assert_int_equal(tg_store_append(t->s, evs, 4, &ins, &err), 0);
    assert_int_equal(ins, 4);
    assert_daily_matches_events(t);
}

/* The writer's session ends (a server restart, an idle timeout): the new session keeps the
 * short lock wait. Before, PQreset's session had none, and an append behind another
 * session's lock waited until that lock went (here 4 s: the holder's idle timeout). */
static void test_busy_timeout_survives_reconnect(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(t->s, 50, &err), 0);
    tg_event_t evs[2];
    for (int i = 0; i < 2; i++)
        evs[i] = ev_make(day_us("2026-08-01") + i, i, "acme", TG_OUTCOME_BILLABLE);
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, evs, 1, &ins, &err), 0);
    pg_store_t *ps = (pg_store_t *)t->s;
    char sql[80];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(ps->conn));
    assert_int_equal(tb_int(t, sql), 1);
    assert_int_equal(tg_store_append(t->s, evs + 1, 1, &ins, &err), TG_STORE_BUSY); /* lost */
    assert_int_equal(tg_store_append(t->s, evs + 1, 1, &ins, &err), 0); /* a new session */
    PGconn *c = PQconnectdb(t->url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SET idle_in_transaction_session_timeout = 4000; BEGIN; "
                            "LOCK TABLE usage_daily IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    tg_event_t late = ev_make(day_us("2026-08-02"), 7, "acme", TG_OUTCOME_BILLABLE);
    int64_t t0 = tg_mono_us();
    assert_int_equal(tg_store_append(t->s, &late, 1, &ins, &err), TG_STORE_BUSY);
    assert_true(tg_mono_us() - t0 < 2 * 1000000LL);
    PQfinish(c);
    assert_int_equal(tg_store_append(t->s, &late, 1, &ins, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 3);
}

/* A server host gone without a reset (powered off, a network cut) ends a statement in
 * about 25 s (keepalives) rather than when the kernel gives up on the connection (15
 * minutes and more, the writer's queue full behind it); what the URL says wins. */
static const char *conn_option(PGconn *c, const char *key, char *buf, size_t cap)
{
    PQconninfoOption *o = PQconninfo(c);
    buf[0] = '\0';
    for (PQconninfoOption *i = o; i && i->keyword; i++)
        if (!strcmp(i->keyword, key) && i->val) snprintf(buf, cap, "%s", i->val);
    PQconninfoFree(o);
    return buf;
}

static void test_dead_host_bounded(void **state)
{
    tb_store_t *t = *state;
    PGconn *c = ((pg_store_t *)t->s)->conn;
    char v[32];
    assert_string_equal(conn_option(c, "keepalives_idle", v, sizeof v), "10");
    assert_string_equal(conn_option(c, "keepalives_interval", v, sizeof v), "5");
    assert_string_equal(conn_option(c, "keepalives_count", v, sizeof v), "3");
    assert_string_equal(conn_option(c, "tcp_user_timeout", v, sizeof v), "30000");
    char url[1024];
    snprintf(url, sizeof url, "%s%skeepalives_idle=60", t->url, strchr(t->url, '?') ? "&" : "?");
    tg_store_t *s = NULL;
    tg_err_t err;
    assert_int_equal(tg_store_open(url, &s, &err), 0);
    assert_string_equal(conn_option(((pg_store_t *)s)->conn, "keepalives_idle", v, sizeof v), "60");
    tg_store_close(s);
}

/* Retention on the writer's connection (busy timeout set): dropping months counts their
 * rows, longer than the writer's 5 s stall bound on a big store (here the function made
 * to take 6 s); the drop is not cut by it, or retention would fail every hour. */
static void test_purge_drop_not_bounded(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(t->s, 150, &err), 0);
    PGconn *c = PQconnectdb(t->url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r =
        PQexec(c, "ALTER FUNCTION tg_usage_drop_before(bigint) RENAME TO real_drop; "
                  "CREATE FUNCTION tg_usage_drop_before(cutoff_us bigint) RETURNS bigint "
                  "LANGUAGE sql AS $$ SELECT pg_sleep(6); SELECT real_drop(cutoff_us) $$");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    tg_event_t ev = ev_make(day_us("2026-01-10"), 1, "acme", TG_OUTCOME_BILLABLE);
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, &ev, 1, &ins, &err), 0);
    int64_t deleted = 0;
    assert_int_equal(tg_store_purge(t->s, day_us("2026-03-05"), NULL, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM pg_tables WHERE tablename = "
                               "'usage_events_202601' AND schemaname = current_schema()"),
                     0);
}

/* A server that takes no writes for now (a standby after a failover, a database set
 * read-only for maintenance: SQLSTATE 25006) is busy, as documented: try again later. */
static void test_read_only_server_busy(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    PGresult *r = PQexec(((pg_store_t *)t->s)->conn, "SET default_transaction_read_only = on");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    tg_event_t ev = ev_make(day_us("2026-08-01"), 1, "acme", TG_OUTCOME_BILLABLE);
    size_t ins = 9;
    assert_int_equal(tg_store_append(t->s, &ev, 1, &ins, &err), TG_STORE_BUSY);
    assert_int_equal(ins, 0);
    assert_int_equal(tg_store_tenant_add(t->s, "acme", "", &err), TG_STORE_BUSY);
}

/* ---- a large batch in two halves (the second writer) ---------------------------------- */

enum { BIG = 2000 }; /* split: >= 1024 events */

static void big_batch(tg_event_t *evs, int64_t ts)
{
    for (int i = 0; i < BIG; i++) {
        evs[i] = ev_make(ts + i * 1000, i, i % 3 ? "acme" : "beta",
                         i % 7 ? TG_OUTCOME_BILLABLE : TG_OUTCOME_FAILED);
        snprintf(evs[i].key_id, sizeof evs[i].key_id, "k%d", i % 2);
    }
}

/* Both halves land, each with its usage_daily, and the keys' last use is the batch's. */
static void test_split_batch(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_tenant_add(t->s, "acme", "", &err), 0);
    char sql[320];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.api_keys (id, tenant_id, sha256, prefix, created_us) VALUES "
             "('k0', 'acme', decode(repeat('aa', 32), 'hex'), 'tg_k0', 0), "
             "('k1', 'acme', decode(repeat('bb', 32), 'hex'), 'tg_k1', 0)",
             t->schema);
    assert_int_equal(tb_pg_admin(sql), 0);
    static tg_event_t evs[BIG];
    int64_t ts = day_us("2026-09-30") + 23 * HOUR_US + 59 * 60 * 1000000LL; /* into October */
    big_batch(evs, ts);
    size_t ins = 0;
    assert_int_equal(tg_store_append(t->s, evs, BIG, &ins, &err), 0);
    assert_int_equal(ins, BIG);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), BIG);
    assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), BIG);
    assert_daily_matches_events(t);
    /* k1's last event is in the second half */
    char want[128];
    snprintf(want, sizeof want, "SELECT last_used_us = %lld FROM api_keys WHERE id = 'k1'",
             (long long)evs[BIG - 1].ts_us);
    assert_int_equal(tb_int(t, want), 1);
    assert_int_equal(tg_store_append(t->s, evs, BIG, &ins, &err), 0); /* a replay */
    assert_int_equal(ins, 0);
    assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), BIG);
}

/* One half refused (a trigger raising for one event of it): the append fails, the other
 * half is stored and said inserted; the same batch again adds exactly the rest. Each half
 * in turn. */
static void test_split_half_fails(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION %s.tg_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.tenant = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$; "
             "CREATE TRIGGER boom BEFORE INSERT ON %s.usage_events FOR EACH ROW EXECUTE "
             "FUNCTION %s.tg_boom()",
             t->schema, t->schema, t->schema);
    assert_int_equal(tb_pg_admin(sql), 0);
    static tg_event_t evs[BIG];
    for (int half = 0; half < 2; half++) {
        big_batch(evs, day_us("2026-10-05") + half * 24 * HOUR_US);
        int boom = half ? BIG - 5 : 5;
        snprintf(evs[boom].tenant, sizeof evs[boom].tenant, "boom");
        size_t ins = 0;
        assert_int_not_equal(tg_store_append(t->s, evs, BIG, &ins, &err), 0);
        assert_non_null(strstr(err.msg, "boom"));
        assert_int_equal(ins, BIG / 2);
        assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), half * BIG + BIG / 2);
        assert_daily_matches_events(t);
        snprintf(evs[boom].tenant, sizeof evs[boom].tenant, "acme");
        assert_int_equal(tg_store_append(t->s, evs, BIG, &ins, &err), 0);
        assert_int_equal(ins, BIG / 2);
        assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), (half + 1) * BIG);
        assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), (half + 1) * BIG);
        assert_daily_matches_events(t);
    }
}

/* Both sessions end (a server restart): the append is busy, the next one makes both
 * connections again and stores the batch once. */
static void test_split_sessions_lost(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    char url[900], sql[256];
    snprintf(url, sizeof url, "%s&application_name=tg_split_%d", t->url, (int)getpid());
    tg_store_t *s = NULL;
    assert_int_equal(tg_store_open(url, &s, &err), 0);
    static tg_event_t evs[BIG];
    big_batch(evs, day_us("2026-11-11"));
    size_t ins = 0;
    assert_int_equal(tg_store_append(s, evs, BIG / 4, &ins, &err), 0); /* sessions made */
    assert_int_equal(tg_store_append(s, evs + BIG / 4, 1200, &ins, &err), 0);
    assert_int_equal(ins, 1200);
    /* two sessions: the large batch was split */
    char count[128];
    snprintf(count, sizeof count,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tg_split_%d'",
             (int)getpid());
    assert_int_equal(tb_int(t, count), 2);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
             "'tg_split_%d'",
             (int)getpid());
    assert_int_equal(tb_pg_admin(sql), 0);
    assert_int_equal(tg_store_append(s, evs, BIG, &ins, &err), TG_STORE_BUSY);
    assert_int_equal(ins, 0);
    assert_int_equal(tg_store_append(s, evs, BIG, &ins, &err), 0);
    assert_int_equal(ins, BIG - BIG / 4 - 1200);
    assert_int_equal(tb_int(t, count), 2); /* both made again */
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), BIG);
    assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), BIG);
    assert_daily_matches_events(t);
    tg_store_close(s);
}

/* A commit that takes 300 ms (a deferred trigger here; a synchronous standby far away, a
 * slow disk) on a writer that waits 150 ms for a lock. Whole, such a batch is slow but
 * stored; split, the half that upserts usage_daily's (tenant, day) second waits for the
 * other's commit and gave up (55P03): every large batch failed once, to the spool, and its
 * retries behind the recorder's backoff. A half that fails busy once the other committed is
 * appended again, alone. */
static void test_split_slow_commit(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(t->s, 150, &err), 0);
    char sql[600];
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION %s.tg_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "PERFORM pg_sleep(0.3); RETURN NULL; END $$; "
             "CREATE CONSTRAINT TRIGGER slow AFTER INSERT OR UPDATE ON %s.usage_daily "
             "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION %s.tg_slow()",
             t->schema, t->schema, t->schema);
    assert_int_equal(tb_pg_admin(sql), 0);
    static tg_event_t evs[BIG];
    for (int round = 0; round < 2; round++) {
        big_batch(evs, day_us("2026-05-01") + round * 10 * 1000000LL);
        for (int i = 0; i < BIG; i++) /* one usage_daily row, in both halves */
            snprintf(evs[i].tenant, sizeof evs[i].tenant, "acme");
        size_t ins = 0;
        assert_int_equal(tg_store_append(t->s, evs, BIG, &ins, &err), 0);
        assert_int_equal(ins, BIG);
    }
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 2 * BIG);
    assert_int_equal(tb_int(t, "SELECT sum(requests) FROM usage_daily"), 2 * BIG);
    assert_daily_matches_events(t);
}

/* The twin's session ends and the server refuses a new one (here the role's connection
 * limit, reached by the store's own session; max_connections alike). Before, every large
 * batch failed from then on: the first half stored, the second refused, for as long as the
 * limit held, the spool growing behind. Now the second half goes on the first connection,
 * and no error names the password. */
static void test_split_twin_refused_again(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    char role[64], sql[600], url[1024];
    snprintf(role, sizeof role, "tg_twin_%d", (int)getpid());
    snprintf(sql, sizeof sql,
             "DROP SCHEMA IF EXISTS %s CASCADE; DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN "
             "PASSWORD 'sekret-twin'; CREATE SCHEMA %s AUTHORIZATION %s",
             role, role, role, role, role);
    assert_int_equal(tb_pg_admin(sql), 0);
    const char *base = getenv("TG_TEST_PG_URL");
    snprintf(url, sizeof url,
             "%s%suser=%s&password=sekret-twin&options=-csearch_path%%3D%s&application_name=%s",
             base, strchr(base, '?') ? "&" : "?", role, role, role);
    tg_store_t *s = NULL;
    assert_int_equal(tg_store_open(url, &s, &err), 0);
    assert_int_equal(tg_store_set_busy_timeout(s, 150, &err), 0);
    static tg_event_t evs[BIG];
    big_batch(evs, day_us("2026-05-01"));
    size_t ins = 0;
    assert_int_equal(tg_store_append(s, evs, BIG, &ins, &err), 0);
    char count[160];
    snprintf(count, sizeof count,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", role);
    assert_int_equal(tb_int(t, count), 2); /* split: the twin is open */
    snprintf(sql, sizeof sql,
             "ALTER ROLE %s CONNECTION LIMIT 1; SELECT pg_terminate_backend(pid) FROM "
             "pg_stat_activity WHERE application_name = '%s' AND pid <> %d",
             role, role, PQbackendPID(((pg_store_t *)s)->conn));
    assert_int_equal(tb_pg_admin(sql), 0);
    for (int round = 1; round <= 3; round++) {
        big_batch(evs, day_us("2026-05-01") + round * 10 * 1000000LL);
        err.msg[0] = '\0';
        int rc = tg_store_append(s, evs, BIG, &ins, &err);
        assert_null(strstr(err.msg, "sekret"));
        assert_int_equal(rc, 0);
        assert_int_equal(ins, BIG);
    }
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.usage_events", role);
    assert_int_equal(tb_int(t, sql), 4 * BIG);
    snprintf(sql, sizeof sql, "SELECT sum(requests) FROM %s.usage_daily", role);
    assert_int_equal(tb_int(t, sql), 4 * BIG);
    tg_store_close(s);
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE; DROP ROLE %s", role, role);
    assert_int_equal(tb_pg_admin(sql), 0);
}

/* ---- months made ahead, without an exclusive lock -------------------------------------- */

/* A batch in May makes June's partition too, so June's first events wait for nothing. */
static void test_next_month_ahead(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_event_t ev = ev_make(day_us("2026-05-20"), 1, "acme", TG_OUTCOME_BILLABLE);
    assert_int_equal(tb_append(t->s, &ev, 1, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = "
                               "i.inhrelid WHERE i.inhparent = 'usage_events'::regclass AND "
                               "c.relname IN ('usage_events_202605', 'usage_events_202606')"),
                     2);
    /* In this schema only: the unit binaries run at once on one server, and another one's
     * events of June 2026 made its own usage_events_202607 (seen failing a clean clone). */
    assert_int_equal(tb_int(t, "SELECT count(*) FROM pg_class WHERE relname = "
                               "'usage_events_202607' AND relnamespace = "
                               "current_schema()::regnamespace"),
                     0);
}

/* A long reader of usage_events (a report in its transaction) does not hold the writer up
 * when a batch reaches a new month: the partition is attached, not created under ACCESS
 * EXCLUSIVE, which would wait for the reader past the writer's lock_timeout. */
static void test_new_month_beside_reader(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(t->s, 150, &err), 0);
    tg_event_t ev = ev_make(day_us("2026-01-10"), 1, "acme", TG_OUTCOME_BILLABLE);
    assert_int_equal(tb_append(t->s, &ev, 1, &err), 0);
    PGconn *reader = PQconnectdb(t->url);
    assert_int_equal(PQstatus(reader), CONNECTION_OK);
    PGresult *r = PQexec(reader, "BEGIN; SELECT count(*) FROM usage_events");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    /* March: two months past the one made ahead */
    ev = ev_make(day_us("2026-03-02"), 2, "acme", TG_OUTCOME_BILLABLE);
    size_t ins = 0;
    int rc = tg_store_append(t->s, &ev, 1, &ins, &err);
    r = PQexec(reader, "SELECT count(*) FROM usage_events");
    int read_ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    PQclear(PQexec(reader, "COMMIT"));
    PQfinish(reader); /* before any assert: the teardown's DROP SCHEMA would wait for it */
    if (rc != 0) fail_msg("append beside a reader: %s", err.msg);
    assert_int_equal(ins, 1);
    assert_true(read_ok);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_writers_overlapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collision_from_another_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_after_connection_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_three_months, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_before_2020, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_far_future, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_text_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_lock_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_server_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_timeout_survives_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_host_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_server_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_drop_not_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_half_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_sessions_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_slow_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_twin_refused_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_month_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_month_beside_reader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
