/* Tests the audit trail on both backends (store/sqlite_audit.c, store/pg_audit.c, and
 * audit/audit.c's verification over them): records chained across days, call records
 * written with their events and not twice on a replay, each kind of tamper made directly in
 * the database (SQL as sqlite3 or psql would run it) and found by verify, tenant erase
 * leaving the chain verifiable with the values gone, retention by whole days, two
 * connections appending at once without forking the chain, and the sealed bodies of
 * audit.bodies: encrypt (stored with their record, bound to it, erased, re-wrapped, purged).
 * Fixed instants only. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "crypt/crypt.h"
#include "types/bodies.h"
#include "store/migrations.h"
#include "backends.h"

#define DAY1 1796256000000000LL /* 2026-12-03T00:00:00Z */
#define HOUR 3600000000LL
#define DAY  (24 * HOUR)

/* Runs sql on a new connection to t's store, as an intruder with the database would. */
static void tamper(const tb_store_t *t, const char *sql)
{
    if (!t->pg) {
        sqlite3 *db = NULL;
        char *msg = NULL;
        assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
        sqlite3_close(db);
        return;
    }
    PGconn *c = PQconnectdb(t->url);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* n admin records, two a day from DAY1 (records 1, 2 on day 1; 3, 4 on day 2 ...). */
static void add_admin(tb_store_t *t, int n)
{
    tg_err_t err = {{0}};
    for (int i = 0; i < n; i++) {
        char obj[16], after[64];
        snprintf(obj, sizeof obj, "t%d", i);
        snprintf(after, sizeof after, "{\"tenants\":[{\"id\":\"t%d\"}]}", i);
        assert_int_equal(tg_audit_admin(t->s, "alice", "tenant.add", obj, i % 2 ? "acme" : "", NULL,
                                        after, DAY1 + (i / 2) * DAY + i * HOUR, &err),
                         0);
    }
}

/* Verifies the whole chain; the fault found (TG_AUDIT_OK when none), *id the record. */
static int verify(tb_store_t *t, const char *from, const char *to, tg_audit_report_t *rep)
{
    tg_store_t *finder;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_open(t->url, &finder, &err), 0);
    int r = tg_audit_verify(t->s, finder, from, to, rep, &err);
    tg_store_close(finder);
    if (r != 0) fail_msg("verify: %s", err.msg);
    return rep->v.fault;
}

static void test_chain_across_days(void **state)
{
    tb_store_t *t = *state;
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 0);
    add_admin(t, 6);
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 6);
    assert_string_equal(rep.v.first_day, "2026-12-03");
    assert_string_equal(rep.v.last_day, "2026-12-05");
    assert_int_equal(rep.head.last_id, 6);
    assert_int_equal(tb_int(t, "SELECT seq FROM audit WHERE id = 3"), 1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit a JOIN audit b ON b.id = a.id + 1 "
                               "WHERE b.prev_hash = a.hash"),
                     5);
    /* A day range checks its own records, anchored at its first one. */
    assert_int_equal(verify(t, "2026-12-04", "2026-12-04", &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 2);
    assert_int_equal(rep.v.first_id, 3);
}

static void test_tamper_edit(void **state)
{
    tb_store_t *t = *state;
    tg_audit_report_t rep;
    add_admin(t, 6);
    tamper(t, "UPDATE audit SET actor = 'mallory' WHERE id = 4");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_EDITED);
    assert_int_equal(rep.v.fault_id, 4);
}

static void test_tamper_delete(void **state)
{
    tb_store_t *t = *state;
    tg_audit_report_t rep;
    add_admin(t, 6);
    tamper(t, "DELETE FROM audit WHERE id = 3");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_DELETED);
    assert_int_equal(rep.v.fault_id, 4);
}

static void test_tamper_delete_last(void **state)
{
    tb_store_t *t = *state;
    tg_audit_report_t rep;
    add_admin(t, 6);
    tamper(t, "DELETE FROM audit WHERE id = 6");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_DELETED);
    assert_int_equal(rep.v.fault_id, 6);
}

static void test_tamper_insert(void **state)
{
    tb_store_t *t = *state;
    tg_audit_report_t rep;
    add_admin(t, 6);
    /* Records 3.. moved up one, and a copy of record 3 (its hash valid for its content, its
     * prev_hash record 2's) put in the gap. */
    tamper(t, "UPDATE audit SET id = id + 100 WHERE id >= 3");
    tamper(t, "UPDATE audit SET id = id - 99 WHERE id >= 100");
    tamper(t,
           "INSERT INTO audit (id, day, seq, ts_us, kind, actor, action, object, tenant, "
           "after_json, prev_hash, hash, format) SELECT 3, day, seq, ts_us, kind, 'mallory', "
           "action, object, tenant, after_json, prev_hash, hash, format FROM audit WHERE id = 4");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_EDITED); /* the copy's hash */
    assert_int_equal(rep.v.fault_id, 3);
    tamper(t, "UPDATE audit SET actor = 'alice' WHERE id = 3");
    /* Now an exact copy: its hash is record 4's, and record 4 follows record 2. */
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_INSERTED);
    assert_int_equal(rep.v.fault_id, 3);
}

static void test_tamper_insert_after_head(void **state)
{
    tb_store_t *t = *state;
    tg_audit_report_t rep;
    add_admin(t, 3);
    tamper(t, "INSERT INTO audit (id, day, seq, ts_us, kind, action, prev_hash, hash) SELECT 4, "
              "day, seq + 1, ts_us, kind, 'tenant.add', hash, 'x' FROM audit WHERE id = 3");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_EDITED); /* 'x' is no hash of it */
    assert_int_equal(rep.v.fault_id, 4);
}

static void test_tamper_reorder(void **state)
{
    tb_store_t *t = *state;
    tg_audit_report_t rep;
    add_admin(t, 6);
    tamper(t, "UPDATE audit SET id = -1 WHERE id = 4");
    tamper(t, "UPDATE audit SET id = 4 WHERE id = 5");
    tamper(t, "UPDATE audit SET id = 5 WHERE id = -1");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_REORDERED);
    assert_int_equal(rep.v.fault_id, 4);
}

static tg_event_t call_event(int64_t id, int64_t ts, const char *model)
{
    tg_event_t e = {0};
    e.id = id;
    e.ts_us = ts;
    e.status = 200;
    e.tokens_in = 3;
    e.tokens_out = 5;
    e.cost_micros = 11;
    strcpy(e.tenant, "acme");
    strcpy(e.key_id, "key_1");
    strcpy(e.route, "ai");
    strcpy(e.method, "POST");
    strcpy(e.path, "/v1/chat/completions?user=bob");
    strcpy(e.client_ip, "203.0.113.9");
    if (model) strcpy(e.model, model);
    return e;
}

static void test_calls_with_events(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    add_admin(t, 1);
    tg_event_t evs[3] = {call_event(tg_event_new_id(DAY1 + HOUR), DAY1 + HOUR, "gpt-4o"),
                         call_event(tg_event_new_id(DAY1 + HOUR), DAY1 + HOUR, NULL),
                         call_event(tg_event_new_id(DAY1 + 2 * HOUR), DAY1 + 2 * HOUR, "claude")};
    assert_int_equal(tb_append(t->s, evs, 3, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE kind = 'call'"), 2);
    /* A replayed batch (the spool) adds no record. */
    assert_int_equal(tb_append(t->s, evs, 3, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE kind = 'call'"), 2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE kind = 'call' AND data LIKE "
                               "'%\"tokens_out\":5%' AND path LIKE '%user=bob%'"),
                     2);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 3);
}

/* tg_store_set_pace on SQLite: after each statement of 32 new events and each of 32 call
 * records (after their sealed bodies, if any), and not after a shorter run of records. */
static void count_pace(void *arg)
{
    (*(int *)arg)++;
}

static void test_calls_paced(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    enum { N = 70 }; /* 70 events: 2 statements of 32 and 6 one by one; 68 calls: 2 of 32 */
    tg_event_t *evs = calloc(N, sizeof *evs);
    assert_non_null(evs);
    for (int i = 0; i < N; i++)
        evs[i] = call_event(tg_event_new_id(DAY1 + i), DAY1 + i, i % 35 ? "gpt-4o" : NULL);
    int paced = 0;
    tg_store_set_pace(t->s, count_pace, &paced);
    assert_int_equal(tb_append(t->s, evs, N, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE kind = 'call'"), N - 2);
    assert_int_equal(paced, 2 + 2);
    tg_store_set_pace(t->s, NULL, NULL);
    free(evs);
}

/* A batch larger than PostgreSQL's chunks (128 records: two whole chunks, prepared, and a
 * tail), half of it a replay: every call once, in one chain. */
static void test_calls_large_batch(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    enum { N = 300 };
    tg_event_t *evs = calloc(N, sizeof *evs);
    assert_non_null(evs);
    for (int i = 0; i < N; i++)
        evs[i] = call_event(tg_event_new_id(DAY1 + i), DAY1 + i, i % 7 ? "gpt-4o" : NULL);
    assert_int_equal(tb_append(t->s, evs, N / 2, &err), 0);
    /* The same event twice in one batch (a repeat in the spool): one record. */
    evs[N - 1] = evs[N - 2];
    assert_int_equal(tb_append(t->s, evs, N, &err), 0);
    int calls = N - (N + 6) / 7 - ((N - 1) % 7 != 0); /* the last one was made a repeat */
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit"), calls);
    assert_int_equal(tb_int(t, "SELECT count(DISTINCT event_id) FROM audit"), calls);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, calls);
    free(evs);
}

/* Two different events that drew the same id in one batch (two gateways, one millisecond):
 * the store keeps both, the second under another id, and each has its record, naming the id
 * its event was stored under (a unique index on event_id kept one record only). */
static void test_calls_id_collision(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    int64_t id = tg_event_new_id(DAY1 + HOUR);
    tg_event_t evs[2] = {call_event(id, DAY1 + HOUR, "gpt-4o"), call_event(id, DAY1 + HOUR, "o3")};
    strcpy(evs[0].request_id, "req-a");
    strcpy(evs[1].request_id, "req-b");
    assert_int_equal(tb_append(t->s, evs, 2, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events"), 2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit a JOIN usage_events e ON e.id = "
                               "a.event_id AND a.data LIKE '%\"model\":\"' || e.model || '\"%'"),
                     2);
    /* Replayed, in the other order: nothing more. */
    tg_event_t again[2] = {evs[1], evs[0]};
    assert_int_equal(tb_append(t->s, again, 2, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit"), 2);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
}

/* A literal for SQL text: the values here hold no single quote. */
static const char *lit(const char *v, char *buf, size_t cap)
{
    if (!v) return "NULL";
    snprintf(buf, cap, "'%s'", v);
    return buf;
}

/* rec as the release before migration 16 wrote it: format 1, into the table of 14. */
static void insert_v1(const tb_store_t *t, const tg_audit_rec_t *r)
{
    char sql[8192], ev[24] = "NULL", b[9][512];
    if (r->event_id) snprintf(ev, sizeof ev, "%lld", (long long)r->event_id);
    snprintf(sql, sizeof sql,
             "INSERT INTO audit (id, day, seq, ts_us, kind, actor, action, object, tenant, "
             "event_id, data, before_json, after_json, client_ip, path, prev_hash, hash) VALUES "
             "(%lld, '%s', %lld, %lld, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '%s', '%s')",
             (long long)r->id, r->day, (long long)r->seq, (long long)r->ts_us,
             lit(r->kind, b[0], 512), lit(r->actor, b[1], 512), lit(r->action, b[2], 512),
             lit(r->object, b[3], 512), lit(r->tenant, b[4], 512), ev, lit(r->data, b[5], 512),
             lit(r->before, b[6], 512), lit(r->after, b[7], 512), lit(r->client_ip, b[8], 512),
             "NULL", r->prev_hash, r->hash);
    tamper(t, sql);
}

/* Migration 16 on a trail written before it (the table of migration 14, its UNIQUE on
 * event_id, its index on day, every record in format 1): the records verify as before, day
 * ranges and retention find their records by id, a replay adds nothing, and the chain goes
 * on in format 2 from its head. */
static void test_migration_16_keeps_chain(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    tg_event_t evs[3];
    for (int i = 0; i < 3; i++)
        evs[i] = call_event(tg_event_new_id(DAY1 + 2 * DAY + i), DAY1 + 2 * DAY + i, "gpt-4o");
    assert_int_equal(tb_append(t->s, evs, 3, &err), 0); /* the events, stored */
    /* Back to the schema before 16, its trail written as the release before wrote it. */
    const char *m14 = NULL;
    for (size_t i = 0; i < tg_store_nmigrations; i++)
        if (tg_store_migrations[i].version == 14)
            m14 = t->pg ? tg_store_migrations[i].pg : tg_store_migrations[i].sql;
    assert_non_null(m14);
    tamper(t, "DROP TABLE audit; DROP TABLE audit_head; DELETE FROM schema_migrations WHERE "
              "version = 16;");
    tamper(t, m14);
    tg_audit_head_t h;
    tg_audit_head_init(&h);
    tg_audit_rec_t recs[7];
    char data[3][TG_AUDIT_DATA_MAX];
    for (int i = 0; i < 7; i++) {
        tg_audit_rec_t *r = &recs[i];
        if (i < 4) { /* two admin records a day, days 1 and 2 */
            memset(r, 0, sizeof *r);
            r->ts_us = DAY1 + (i / 2) * DAY + i * HOUR;
            r->kind = "admin";
            r->actor = "alice";
            r->action = "tenant.add";
            r->object = "t";
            r->tenant = i % 2 ? "acme" : "";
            r->after = "{\"tenants\":[{\"id\":\"t\"}]}";
        } else { /* the calls of day 3, path NULL: the values hold no quote */
            assert_int_equal(tg_audit_from_event(&evs[i - 4], r, data[i - 4], TG_AUDIT_DATA_MAX),
                             1);
            r->path = NULL;
        }
        r->format = 1;
        assert_int_equal(tg_audit_link(&h, r), 0);
        insert_v1(t, r);
    }
    char head[400];
    snprintf(head, sizeof head, "INSERT INTO audit_head VALUES (1, %lld, '%s', %lld, '%s')",
             (long long)h.last_id, h.last_day, (long long)h.last_seq, h.last_hash);
    tamper(t, head);
    tg_store_close(t->s);
    assert_int_equal(tg_store_open(t->url, &t->s, &err), 0); /* migration 16 runs */
    assert_int_equal(tb_int(t, "SELECT count(*) FROM schema_migrations WHERE version = 16"), 1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE format = 1"), 7);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 7);
    assert_int_equal(verify(t, "2026-12-04", "2026-12-05", &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 5);
    assert_int_equal(rep.v.first_id, 3);
    assert_int_equal(verify(t, NULL, "2026-12-03", &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 2);
    /* A replay of the old batch adds nothing; the chain goes on, in format 2. */
    assert_int_equal(tb_append(t->s, evs, 3, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit"), 7);
    add_admin(t, 1);
    evs[0] = call_event(tg_event_new_id(DAY1 + 3 * DAY), DAY1 + 3 * DAY, "o3");
    assert_int_equal(tb_append(t->s, evs, 1, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE format = 2 AND id > 7"), 2);
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 9);
    /* An old record edited is still found, in its own format. */
    tamper(t, "UPDATE audit SET actor = 'mallory' WHERE id = 2");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_EDITED);
    assert_int_equal(rep.v.fault_id, 2);
    tamper(t, "UPDATE audit SET actor = 'alice' WHERE id = 2");
    /* A new record passed off as format 1 is an edit too. */
    tamper(t, "UPDATE audit SET format = 1 WHERE id = 9");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_EDITED);
    assert_int_equal(rep.v.fault_id, 9);
    tamper(t, "UPDATE audit SET format = 2 WHERE id = 9");
    int64_t deleted = 0;
    assert_int_equal(tg_store_audit_purge(t->s, "2026-12-05", &deleted, &err), 0);
    assert_int_equal(deleted, 4); /* days 1 and 2 */
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.first_id, 5);
}

static void test_erase(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    add_admin(t, 4); /* records 2 and 4 are acme's */
    tg_event_t e = call_event(tg_event_new_id(DAY1 + HOUR), DAY1 + HOUR, "gpt-4o");
    assert_int_equal(tb_append(t->s, &e, 1, &err), 0);
    int64_t changed = 0;
    assert_int_equal(tg_store_audit_erase(t->s, "acme", &changed, &err), 0);
    assert_true(changed >= 4);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE after_json LIKE '%t1%' OR "
                               "client_ip LIKE '203.%' OR path LIKE '%bob%'"),
                     0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE after_json LIKE 'erased:%'"), 2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE after_json LIKE '%t0%'"), 1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE client_ip IS NOT NULL OR "
                               "path <> '/v1/chat/completions'"),
                     0);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    /* Erasing again changes no record's value, and still verifies. */
    assert_int_equal(tg_store_audit_erase(t->s, "acme", &changed, &err), 0);
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
}

static void test_purge_whole_days(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    add_admin(t, 6);
    int64_t deleted = 0;
    assert_int_equal(tg_store_audit_purge(t->s, "2026-12-04", &deleted, &err), 0);
    assert_int_equal(deleted, 2);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.first_id, 3);
    assert_int_equal(tb_int(t,
                            "SELECT count(*) FROM audit WHERE id = 3 AND prev_hash <> "
                            "'0000000000000000000000000000000000000000000000000000000000000000'"),
                     1);
    /* The head's day is never purged, whatever the cut. */
    assert_int_equal(tg_store_audit_purge(t->s, "2027-01-01", &deleted, &err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 2);
    /* The first record of a day deleted by hand is not retention. */
    tamper(t, "DELETE FROM audit WHERE id = 5");
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_DELETED);
    assert_int_equal(rep.v.fault_id, 6);
}

/* Two connections appending at once (a CLI and a gateway's writer, or two gateways on one
 * PostgreSQL): every record lands in one chain. */
typedef struct racer {
    const char *url;
    int who;
    int failed;
} racer_t;

#define RACE 40

static void *race(void *ud)
{
    racer_t *r = ud;
    tg_store_t *s;
    tg_err_t err = {{0}};
    if (tg_store_open(r->url, &s, &err) != 0) {
        fprintf(stderr, "racer %d: %s\n", r->who, err.msg);
        r->failed = 1;
        return NULL;
    }
    tg_store_set_busy_timeout(s, 10000, &err);
    for (int i = 0; i < RACE; i++) {
        char obj[32];
        snprintf(obj, sizeof obj, "w%d-%d", r->who, i);
        if (tg_audit_admin(s, "racer", "race", obj, "", NULL, NULL, DAY1 + i, &err) != 0) {
            fprintf(stderr, "racer %d: %s\n", r->who, err.msg);
            r->failed = 1;
        }
    }
    tg_store_close(s);
    return NULL;
}

static void test_concurrent_appends(void **state)
{
    tb_store_t *t = *state;
    pthread_t th[2];
    racer_t rs[2] = {{t->url, 0, 0}, {t->url, 1, 0}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, race, &rs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_false(rs[0].failed || rs[1].failed);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    assert_int_equal(rep.v.n, 2 * RACE);
}

/* ---- audit.bodies: encrypt ---------------------------------------------------------------- */

#define KEK_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEK_B "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f"

static tg_kek_t kek_of(const char *hex)
{
    tg_kek_t k;
    tg_err_t err = {{0}};
    assert_int_equal(tg_kek_parse(hex, strlen(hex), "test", &k, &err), 0);
    return k;
}

/* e's bodies as the writer leaves them (meter/recorder.c seal_bodies): sealed, bound. */
static void seal_into(tg_event_t *e, const tg_kek_t *k, const char *in, const char *out,
                      uint32_t flags)
{
    e->bodies = tg_bodies_new(in, strlen(in), out, strlen(out),
                              flags | TG_BODIES_HAS_IN | TG_BODIES_HAS_OUT);
    assert_non_null(e->bodies);
    unsigned char aad[TG_BODIES_AAD_MAX];
    size_t alen = tg_bodies_aad(e->id, e->tenant, aad);
    tg_err_t err = {{0}};
    assert_int_equal(tg_crypt_seal(k, e->bodies->plain, e->bodies->plain_len, aad, alen,
                                   &e->bodies->sealed, &e->bodies->sealed_len, &err),
                     0);
    e->bodies_state = TG_BODIES_SEALED;
}

/* Record id's bodies opened as `audit bodies` does; -1 when they do not open. */
static int open_bodies(tb_store_t *t, int64_t id, const tg_kek_t *k, char *in, char *out,
                       uint32_t *flags)
{
    tg_audit_body_t b;
    tg_err_t err = {{0}};
    int rc = tg_store_audit_body_get(t->s, id, &b, &err);
    if (rc != 0) return rc;
    unsigned char aad[TG_BODIES_AAD_MAX], *pt = NULL;
    size_t alen = tg_bodies_aad(b.event_id, b.tenant, aad), pn = 0, il, ol;
    rc = tg_crypt_open(k, b.sealed, b.len, aad, alen, &pt, &pn, &err);
    free(b.sealed);
    if (rc != 0) return -1;
    const unsigned char *ip, *op;
    assert_int_equal(tg_bodies_parse(pt, pn, flags, &ip, &il, &op, &ol), 0);
    memcpy(in, ip, il);
    in[il] = '\0';
    memcpy(out, op, ol);
    out[ol] = '\0';
    tg_crypt_free(pt, pn);
    return 0;
}

static int64_t record_of(tb_store_t *t, int64_t event_id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id FROM audit WHERE event_id = %lld", (long long)event_id);
    return tb_int(t, sql);
}

static void test_bodies_sealed(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    tg_kek_t k = kek_of(KEK_A);
    tg_event_t evs[3] = {call_event(tg_event_new_id(DAY1 + HOUR), DAY1 + HOUR, "gpt-4o"),
                         call_event(tg_event_new_id(DAY1 + HOUR), DAY1 + HOUR, "o3"),
                         call_event(tg_event_new_id(DAY1 + HOUR), DAY1 + HOUR, "o4")};
    seal_into(&evs[0], &k, "{\"prompt\":\"SECRET-PROMPT-ONE\"}", "ANSWER-ONE", 0);
    seal_into(&evs[1], &k, "{\"prompt\":\"SECRET-PROMPT-TWO\"}", "ANSWER-TW", TG_BODIES_OUT_TRUNC);
    evs[2].bodies_state = TG_BODIES_DROPPED_SPOOLED; /* went through the spool: none */
    assert_int_equal(tb_append(t->s, evs, 3, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit_bodies"), 2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE data LIKE "
                               "'{\"bodies\":\"sealed\",%'"),
                     2);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE data LIKE "
                               "'{\"bodies\":\"dropped_spooled\",%'"),
                     1);
    int64_t r0 = record_of(t, evs[0].id), r1 = record_of(t, evs[1].id);
    char in[256], out[256];
    uint32_t flags;
    assert_int_equal(open_bodies(t, r0, &k, in, out, &flags), 0);
    assert_string_equal(in, "{\"prompt\":\"SECRET-PROMPT-ONE\"}");
    assert_string_equal(out, "ANSWER-ONE");
    assert_false(flags & (TG_BODIES_IN_TRUNC | TG_BODIES_OUT_TRUNC));
    assert_int_equal(open_bodies(t, r1, &k, in, out, &flags), 0);
    assert_true(flags & TG_BODIES_OUT_TRUNC);
    assert_int_equal(open_bodies(t, record_of(t, evs[2].id), &k, in, out, &flags),
                     TG_STORE_NOTFOUND);
    /* Another KEK does not open them. */
    tg_kek_t other = kek_of(KEK_B);
    assert_int_equal(open_bodies(t, r0, &other, in, out, &flags), -1);
    /* A replay of the batch (the spool) adds nothing. */
    assert_int_equal(tb_append(t->s, evs, 3, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit_bodies"), 2);
    /* A blob moved to another record does not open there. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE audit_bodies SET sealed = (SELECT sealed FROM audit_bodies WHERE record_id "
             "= %lld) WHERE record_id = %lld",
             (long long)r0, (long long)r1);
    tamper(t, sql);
    assert_int_equal(open_bodies(t, r1, &k, in, out, &flags), -1);
    assert_int_equal(open_bodies(t, r0, &k, in, out, &flags), 0);
    /* The plain text is in no row. */
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit WHERE data LIKE '%SECRET%'"), 0);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    for (int i = 0; i < 3; i++)
        tg_bodies_free(evs[i].bodies);
}

/* tenant erase deletes the tenant's bodies, the chain (hashes and data) stays verifiable;
 * re-wrapping replaces a blob only while unchanged; retention purges them with their record. */
static void test_bodies_erase_rewrap_purge(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    tg_kek_t a = kek_of(KEK_A), b = kek_of(KEK_B);
    tg_event_t e[3] = {call_event(tg_event_new_id(DAY1 + HOUR), DAY1 + HOUR, "gpt-4o"),
                       call_event(tg_event_new_id(DAY1 + 2 * HOUR), DAY1 + 2 * HOUR, "gpt-4o"),
                       call_event(tg_event_new_id(DAY1 + 3 * HOUR), DAY1 + 3 * HOUR, "o3")};
    strcpy(e[2].tenant, "globex");
    for (int i = 0; i < 3; i++)
        seal_into(&e[i], &a, "PROMPT", "ANSWER", 0);
    assert_int_equal(tb_append(t->s, e, 3, &err), 0);
    int64_t r0 = record_of(t, e[0].id), r1 = record_of(t, e[1].id), r2 = record_of(t, e[2].id);
    /* Re-wrap record r0's under b: the old blob no longer matches a second time. */
    tg_audit_body_t got;
    unsigned char *nb = NULL;
    assert_int_equal(tg_store_audit_body_get(t->s, r0, &got, &err), 0);
    assert_int_equal(tg_crypt_rewrap(&a, &b, got.sealed, got.len, &nb, &err), 0);
    assert_int_equal(tg_store_audit_body_reseal(t->s, r0, got.sealed, nb, got.len, &err), 0);
    assert_int_equal(tg_store_audit_body_reseal(t->s, r0, got.sealed, nb, got.len, &err),
                     TG_STORE_NOTFOUND);
    free(got.sealed);
    free(nb);
    char in[64], out[64];
    uint32_t flags;
    assert_int_equal(open_bodies(t, r0, &b, in, out, &flags), 0);
    assert_string_equal(in, "PROMPT");
    assert_int_equal(open_bodies(t, r0, &a, in, out, &flags), -1);
    /* Erase: acme's bodies go, globex's stay, the chain verifies. */
    int64_t changed = 0;
    assert_int_equal(tg_store_audit_erase(t->s, "acme", &changed, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit_bodies WHERE tenant = 'acme'"), 0);
    assert_int_equal(open_bodies(t, r2, &a, in, out, &flags), 0);
    assert_int_equal(open_bodies(t, r1, &a, in, out, &flags), TG_STORE_NOTFOUND);
    assert_int_equal(
        tb_int(t, "SELECT count(*) FROM audit WHERE data LIKE '%\"bodies\":\"sealed\"%'"), 3);
    tg_audit_report_t rep;
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    /* Retention: day 1's records go, and globex's bodies with them (a record of day 2 holds
     * the head: its day is never purged). */
    assert_int_equal(tg_audit_admin(t->s, "alice", "x", "y", "", NULL, NULL, DAY1 + DAY, &err), 0);
    int64_t deleted = 0;
    assert_int_equal(tg_store_audit_purge(t->s, "2026-12-04", &deleted, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit_bodies"), 0);
    assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
    for (int i = 0; i < 3; i++)
        tg_bodies_free(e[i].bodies);
}

/* Every sealed body is visited once, in record order, however many there are (PostgreSQL
 * reads them a page at a time: more than two pages here), and the callback may re-wrap
 * the one it holds (kek rotate does) without the walk skipping or repeating one. */
typedef struct walk {
    int n;
    int64_t last;
    int ordered;
    tg_store_t *s;
    const tg_kek_t *from, *to;
} walk_t;

static int walk_body(int64_t id, const unsigned char *b, size_t n, void *ud)
{
    walk_t *w = ud;
    if (id <= w->last) w->ordered = 0;
    w->last = id;
    w->n++;
    unsigned char *nb = NULL;
    tg_err_t err = {{0}};
    if (tg_crypt_rewrap(w->from, w->to, b, n, &nb, &err) != 0) return -1;
    int rc = tg_store_audit_body_reseal(w->s, id, b, nb, n, &err);
    free(nb);
    return rc;
}

static void test_bodies_each_pages(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    tg_kek_t a = kek_of(KEK_A), b = kek_of(KEK_B);
    enum { N = 600 };
    tg_event_t *e = calloc(N, sizeof *e);
    assert_non_null(e);
    for (int i = 0; i < N; i++) {
        e[i] = call_event(tg_event_new_id(DAY1 + HOUR + i), DAY1 + HOUR + i, "gpt-4o");
        seal_into(&e[i], &a, "P", "A", 0);
    }
    assert_int_equal(tb_append(t->s, e, N, &err), 0);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM audit_bodies"), N);
    walk_t w = {0, INT64_MIN, 1, t->s, &a, &b};
    assert_int_equal(tg_store_audit_bodies_each(t->s, walk_body, &w, &err), 0);
    assert_int_equal(w.n, N);
    assert_true(w.ordered);
    /* Each was re-wrapped once: all open under b now. */
    char in[16], out[16];
    uint32_t flags;
    assert_int_equal(open_bodies(t, record_of(t, e[0].id), &b, in, out, &flags), 0);
    assert_int_equal(open_bodies(t, record_of(t, e[N - 1].id), &b, in, out, &flags), 0);
    assert_int_equal(open_bodies(t, record_of(t, e[N / 2].id), &a, in, out, &flags), -1);
    for (int i = 0; i < N; i++)
        tg_bodies_free(e[i].bodies);
    free(e);
}

/* The writer's records 32 to an INSERT (sqlite_audit.c insert_rows): batches of 31, 32, 33,
 * 64, 65 and 97 events, a fifth of them no call, a quarter stored before (a replay in the
 * batch), one pair that drew the same id, two of three sealed: each call has one record, in
 * the batch's order, naming its event, its own bodies under it, and the chain verifies. */
static void test_calls_rows_edges(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err = {{0}};
    tg_kek_t k = kek_of(KEK_A);
    static const int sizes[] = {31, 32, 33, 64, 65, 97};
    int64_t base = DAY1, calls = 0;
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        int n = sizes[z];
        tg_event_t *e = calloc((size_t)n, sizeof *e), *pre = calloc((size_t)n, sizeof *e);
        assert_non_null(e);
        assert_non_null(pre);
        int npre = 0, ci = n / 2; /* the collision: neither event stored before, both calls */
        while (ci % 4 != 3 || ci % 5 == 4 || (ci - 1) % 5 == 4)
            ci++;
        for (int i = 0; i < n; i++) {
            char model[32];
            snprintf(model, sizeof model, "m-%d-%d", n, i);
            e[i] = call_event(tg_event_new_id(base + i), base + i, i % 5 == 4 ? NULL : model);
            snprintf(e[i].request_id, sizeof e[i].request_id, "r-%d-%d", n, i);
            if (i % 2) strcpy(e[i].tenant, "globex");
            if (i == ci) e[i].id = e[i - 1].id;
            if (i % 3) {
                char in[32], out[32];
                snprintf(in, sizeof in, "P-%d-%d", n, i);
                snprintf(out, sizeof out, "A-%d-%d", n, i);
                seal_into(&e[i], &k, in, out, 0);
            }
            if (i % 4 == 1) pre[npre++] = e[i];
        }
        assert_int_equal(tb_append(t->s, pre, (size_t)npre, &err), 0);
        assert_int_equal(tb_append(t->s, e, (size_t)n, &err), 0);
        int64_t last = 0;
        for (int i = 0; i < n; i++) {
            if (i % 5 == 4) continue;
            calls++;
            char sql[256], model[32];
            snprintf(model, sizeof model, "m-%d-%d", n, i);
            snprintf(sql, sizeof sql,
                     "SELECT a.id FROM audit a JOIN usage_events e ON e.id = a.event_id WHERE "
                     "e.request_id = 'r-%d-%d' AND a.tenant = e.tenant AND a.data LIKE "
                     "'%%\"model\":\"%s\"%%'",
                     n, i, model);
            int64_t rid = tb_int(t, sql);
            assert_true(rid > 0);
            if (i % 4 != 1) { /* this batch's: after the previous one of this batch */
                assert_true(rid > last);
                last = rid;
            }
            char in[32], out[32], want[32];
            uint32_t flags;
            int rc = open_bodies(t, rid, &k, in, out, &flags);
            if (i % 3 == 0 || i == ci) {
                assert_int_equal(rc, TG_STORE_NOTFOUND);
                continue;
            }
            assert_int_equal(rc, 0);
            snprintf(want, sizeof want, "P-%d-%d", n, i);
            assert_string_equal(in, want);
            snprintf(want, sizeof want, "A-%d-%d", n, i);
            assert_string_equal(out, want);
        }
        assert_int_equal(tb_int(t, "SELECT count(*) FROM audit"), calls);
        tg_audit_report_t rep;
        assert_int_equal(verify(t, NULL, NULL, &rep), TG_AUDIT_OK);
        assert_int_equal(rep.v.n, calls);
        for (int i = 0; i < n; i++)
            tg_bodies_free(e[i].bodies);
        free(e);
        free(pre);
        base += HOUR;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_chain_across_days),
        TB_BOTH(test_tamper_edit),
        TB_BOTH(test_tamper_delete),
        TB_BOTH(test_tamper_delete_last),
        TB_BOTH(test_tamper_insert),
        TB_BOTH(test_tamper_insert_after_head),
        TB_BOTH(test_tamper_reorder),
        TB_BOTH(test_calls_with_events),
        TB_BOTH(test_calls_large_batch),
        TB_BOTH(test_erase),
        TB_BOTH(test_purge_whole_days),
        TB_BOTH(test_concurrent_appends),
        TB_BOTH(test_calls_id_collision),
        TB_BOTH(test_migration_16_keeps_chain),
        TB_BOTH(test_bodies_sealed),
        TB_BOTH(test_bodies_erase_rewrap_purge),
        TB_BOTH(test_bodies_each_pages),
        TB_BOTH(test_calls_rows_edges),
        {"test_calls_paced [sqlite]", test_calls_paced, tb_setup_sqlite, tb_teardown, NULL},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
