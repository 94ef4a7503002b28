/* Tests for src/store/sqlite.c (and the URL dispatch in store.c), each against
 * a fresh database file in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meter/event.h"
#include "store/migrations.h"
#include "store/store.h"
#include "util/clock.h"

#define HOUR_US 3600000000LL
#define DAY_US  (24 * HOUR_US)

typedef struct fixture {
    char dir[64];
    char path[128];
    char url[160];
    tg_store_t *s;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_test_sqlite_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->path);
    tg_err_t err;
    if (tg_store_open(f->url, &f->s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tg_store_close(f->s);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static sqlite3 *raw_open(const fixture_t *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t day_us(const char *day)
{
    int64_t us = 0;
    assert_int_equal(tg_parse_day(day, &us), 0);
    return us;
}

static tg_event_t ev_make(int64_t id, int64_t ts, const char *tenant, tg_outcome_t outcome)
{
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.id = id;
    e.ts_us = ts;
    e.latency_us = 1000;
    e.bytes_in = 100;
    e.bytes_out = 1000;
    e.tokens_in = e.tokens_out = e.tokens_cached = TG_TOKENS_UNKNOWN;
    e.status = outcome == TG_OUTCOME_BILLABLE ? 200 : outcome == TG_OUTCOME_FAILED ? 502 : 401;
    e.outcome = outcome;
    snprintf(e.tenant, sizeof e.tenant, "%s", tenant);
    snprintf(e.method, sizeof e.method, "POST");
    snprintf(e.path, sizeof e.path, "/v1/chat/completions");
    snprintf(e.request_id, sizeof e.request_id, "req-%lld", (long long)id);
    if (outcome == TG_OUTCOME_REJECTED) snprintf(e.reason, sizeof e.reason, "unauthorized");
    return e;
}

/* ---- collecting callbacks ----------------------------------------------- */

typedef struct rows {
    tg_usage_row_t r[64];
    char tenant[64][64];
    char group[64][64];
    size_t n;
} rows_t;

static int collect_usage(const tg_usage_row_t *row, void *ud)
{
    rows_t *rs = ud;
    if (rs->n == 64) return -1;
    size_t i = rs->n++;
    rs->r[i] = *row;
    snprintf(rs->tenant[i], sizeof rs->tenant[i], "%s", row->tenant);
    snprintf(rs->group[i], sizeof rs->group[i], "%s", row->group);
    rs->r[i].tenant = rs->tenant[i];
    rs->r[i].group = rs->group[i];
    return 0;
}

static void usage(tg_store_t *s, tg_usage_by_t by, const char *tenant, int64_t from, int64_t to,
                  rows_t *out)
{
    memset(out, 0, sizeof *out);
    tg_usage_query_t q = {.tenant = tenant, .from_us = from, .to_us = to, .by = by};
    tg_err_t err;
    int rc = tg_store_usage(s, &q, collect_usage, out, &err);
    if (rc != 0) fprintf(stderr, "usage: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static int count_tenants(const tg_tenant_t *t, void *ud)
{
    (void)t;
    ++*(int *)ud;
    return 0;
}

typedef struct keys {
    tg_key_t k[8];
    size_t n;
} keys_t;

static int collect_keys(const tg_key_t *k, void *ud)
{
    keys_t *ks = ud;
    if (ks->n < 8) ks->k[ks->n] = *k;
    ks->n++;
    return 0;
}

typedef struct auths {
    char key_id[8][32];
    int key_active[8], tenant_active[8];
    size_t n;
} auths_t;

static int collect_auth(const tg_auth_row_t *r, void *ud)
{
    auths_t *a = ud;
    if (a->n == 8) return -1;
    snprintf(a->key_id[a->n], 32, "%s", r->key_id);
    a->key_active[a->n] = r->key_active;
    a->tenant_active[a->n] = r->tenant_active;
    a->n++;
    return 0;
}

static tg_key_t key_make(const char *id, const char *tenant, unsigned char fill)
{
    tg_key_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.id, sizeof k.id, "%s", id);
    snprintf(k.tenant_id, sizeof k.tenant_id, "%s", tenant);
    memset(k.sha256, fill, sizeof k.sha256);
    snprintf(k.prefix, sizeof k.prefix, "tg_Ab3dE");
    snprintf(k.name, sizeof k.name, "ci");
    return k;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_url_dispatch(void **state)
{
    (void)state;
    tg_store_t *s = NULL;
    tg_err_t err;
    assert_int_equal(tg_store_open("postgres://u@h/db", &s, &err), -1);
    assert_string_equal(err.msg, "postgres store is not supported yet");
    assert_null(s);
    assert_int_equal(tg_store_open("mysql://root:secret@h/db", &s, &err), -1);
    assert_null(strstr(err.msg, "secret"));
    assert_int_equal(tg_store_open("sqlite:", &s, &err), -1);
    assert_int_equal(tg_store_open("sqlite::memory:", &s, &err), 0);
    tg_store_close(s);
}

static void test_migrations_idempotent(void **state)
{
    fixture_t *f = *state;
    tg_store_close(f->s);
    tg_err_t err;
    assert_int_equal(tg_store_open(f->url, &f->s, &err), 0); /* reopen: nothing to apply */
    tg_store_t *again = NULL;
    assert_int_equal(tg_store_open(f->url, &again, &err), 0);
    tg_store_close(again);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)tg_store_nmigrations);
    assert_int_equal(raw_int(db, "SELECT max(version) FROM schema_migrations"),
                     tg_store_migrations[tg_store_nmigrations - 1].version);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('tenants', "
                                 "'api_keys', 'usage_events', 'usage_daily', 'meta')"),
                     5);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);

    /* A database from a newer tollgate is refused, not half-understood. */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (999, 'future', 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(tg_store_open(f->url, &again, &err), -1);
    assert_non_null(strstr(err.msg, "newer"));
}

static void test_tenant_crud(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "Acme Inc", &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "beta", NULL, &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "again", &err), TG_STORE_EXISTS);
    assert_string_equal(err.msg, "tenant \"acme\" already exists");

    tg_tenant_t t;
    assert_int_equal(tg_store_tenant_get(f->s, "acme", &t, &err), 0);
    assert_string_equal(t.id, "acme");
    assert_string_equal(t.name, "Acme Inc");
    assert_string_equal(t.status, "active");
    assert_true(t.created_us > 0);
    assert_int_equal(tg_store_tenant_get(f->s, "nope", &t, &err), TG_STORE_NOTFOUND);

    int n = 0;
    assert_int_equal(tg_store_tenant_list(f->s, count_tenants, &n, &err), 0);
    assert_int_equal(n, 2);

    assert_int_equal(tg_store_tenant_set_status(f->s, "acme", "disabled", &err), 0);
    assert_int_equal(tg_store_tenant_get(f->s, "acme", &t, &err), 0);
    assert_string_equal(t.status, "disabled");
    assert_int_equal(tg_store_tenant_set_status(f->s, "acme", "active", &err), 0);
    assert_int_equal(tg_store_tenant_get(f->s, "acme", &t, &err), 0);
    assert_string_equal(t.status, "active");
    assert_int_equal(tg_store_tenant_set_status(f->s, "nope", "disabled", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no tenant \"nope\"");
    assert_int_equal(tg_store_tenant_set_status(f->s, "acme", "paused", &err), -1);
}

static void test_key_crud(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_key_t k1 = key_make("key_0000000000000001", "acme", 0x11);
    assert_int_equal(tg_store_key_add(f->s, &k1, &err), TG_STORE_NOTFOUND); /* no tenant yet */
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "beta", "", &err), 0);
    assert_int_equal(tg_store_key_add(f->s, &k1, &err), 0);
    assert_int_equal(tg_store_key_add(f->s, &k1, &err), TG_STORE_EXISTS);
    tg_key_t dup_sha = key_make("key_0000000000000009", "acme", 0x11);
    assert_int_equal(tg_store_key_add(f->s, &dup_sha, &err), TG_STORE_EXISTS);
    tg_key_t k2 = key_make("key_0000000000000002", "beta", 0x22);
    assert_int_equal(tg_store_key_add(f->s, &k2, &err), 0);

    keys_t ks = {0};
    assert_int_equal(tg_store_key_list(f->s, NULL, collect_keys, &ks, &err), 0);
    assert_int_equal(ks.n, 2);
    memset(&ks, 0, sizeof ks);
    assert_int_equal(tg_store_key_list(f->s, "beta", collect_keys, &ks, &err), 0);
    assert_int_equal(ks.n, 1);
    assert_string_equal(ks.k[0].id, "key_0000000000000002");
    assert_string_equal(ks.k[0].tenant_id, "beta");
    assert_string_equal(ks.k[0].prefix, "tg_Ab3dE");
    assert_string_equal(ks.k[0].name, "ci");
    assert_string_equal(ks.k[0].status, "active");
    assert_int_equal(ks.k[0].sha256[31], 0x22);
    assert_true(ks.k[0].created_us > 0);
    assert_int_equal(ks.k[0].last_used_us, 0);

    assert_int_equal(tg_store_key_revoke(f->s, "key_0000000000000001", &err), 0);
    assert_int_equal(tg_store_key_revoke(f->s, "key_nope", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no key \"key_nope\"");
    assert_int_equal(tg_store_tenant_set_status(f->s, "beta", "disabled", &err), 0);

    auths_t a = {0};
    assert_int_equal(tg_store_auth_load(f->s, collect_auth, &a, &err), 0);
    assert_int_equal(a.n, 2);
    for (size_t i = 0; i < a.n; i++) {
        if (strcmp(a.key_id[i], "key_0000000000000001") == 0) {
            assert_int_equal(a.key_active[i], 0);
            assert_int_equal(a.tenant_active[i], 1);
        } else {
            assert_string_equal(a.key_id[i], "key_0000000000000002");
            assert_int_equal(a.key_active[i], 1);
            assert_int_equal(a.tenant_active[i], 0);
        }
    }
    /* A callback's nonzero return stops the iteration and comes back as is. */
    a.n = 8;
    assert_int_equal(tg_store_auth_load(f->s, collect_auth, &a, &err), -1);
}

static void test_auth_version_two_connections(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_store_t *other = NULL;
    assert_int_equal(tg_store_open(f->url, &other, &err), 0);

    int64_t v0, v;
    assert_int_equal(tg_store_auth_version(other, &v0, &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), 0);
    assert_int_equal(tg_store_auth_version(other, &v, &err), 0);
    assert_true(v != v0);
    v0 = v;

    tg_key_t k = key_make("key_00000000000000aa", "acme", 0xaa);
    assert_int_equal(tg_store_key_add(f->s, &k, &err), 0);
    assert_int_equal(tg_store_auth_version(other, &v, &err), 0);
    assert_true(v != v0);
    v0 = v;

    /* Events are not an auth change; failed mutations neither. */
    tg_event_t e = ev_make(1, tg_wall_us(), "acme", TG_OUTCOME_BILLABLE);
    size_t ins;
    assert_int_equal(tg_store_append(f->s, &e, 1, &ins, &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), TG_STORE_EXISTS);
    assert_int_equal(tg_store_key_revoke(f->s, "key_nope", &err), TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_auth_version(other, &v, &err), 0);
    assert_int_equal(v, v0);

    assert_int_equal(tg_store_key_revoke(f->s, k.id, &err), 0);
    assert_int_equal(tg_store_auth_version(other, &v, &err), 0);
    assert_true(v != v0);
    v0 = v;
    assert_int_equal(tg_store_tenant_set_status(other, "acme", "disabled", &err), 0);
    assert_int_equal(tg_store_auth_version(f->s, &v, &err), 0);
    assert_true(v != v0);
    tg_store_close(other);
}

/* Two tenants over two days with every outcome, plus an unauthenticated
 * rejection: the fixture for the aggregate and report tests. */
static size_t batch_two_days(tg_event_t *evs, int64_t d1, int64_t d2)
{
    size_t n = 0;
    evs[n] = ev_make(101, d1 + 1 * HOUR_US, "acme", TG_OUTCOME_BILLABLE);
    evs[n].tokens_in = 10, evs[n].tokens_out = 20, evs[n].cost_micros = 1500;
    snprintf(evs[n].route, sizeof evs[n].route, "chat");
    snprintf(evs[n].model, sizeof evs[n].model, "gpt-4o");
    snprintf(evs[n].key_id, sizeof evs[n].key_id, "key_a");
    n++;
    evs[n] = ev_make(102, d1 + 1 * HOUR_US + 5, "acme", TG_OUTCOME_BILLABLE);
    evs[n].tokens_in = 5, evs[n].tokens_out = 7, evs[n].cost_micros = 500;
    snprintf(evs[n].route, sizeof evs[n].route, "chat");
    snprintf(evs[n].model, sizeof evs[n].model, "gpt-4o-mini");
    snprintf(evs[n].key_id, sizeof evs[n].key_id, "key_a");
    n++;
    evs[n] = ev_make(103, d1 + 2 * HOUR_US, "acme", TG_OUTCOME_FAILED);
    snprintf(evs[n].route, sizeof evs[n].route, "tools");
    snprintf(evs[n].tool, sizeof evs[n].tool, "search");
    snprintf(evs[n].key_id, sizeof evs[n].key_id, "key_b");
    n++;
    evs[n] = ev_make(104, d2 + 3 * HOUR_US, "acme", TG_OUTCOME_BILLABLE);
    evs[n].cost_micros = 1000000;
    snprintf(evs[n].route, sizeof evs[n].route, "tools");
    snprintf(evs[n].tool, sizeof evs[n].tool, "search");
    snprintf(evs[n].key_id, sizeof evs[n].key_id, "key_b");
    n++;
    evs[n] = ev_make(105, d2 + 4 * HOUR_US, "beta", TG_OUTCOME_BILLABLE);
    snprintf(evs[n].route, sizeof evs[n].route, "chat");
    n++;
    evs[n] = ev_make(106, d2 + 4 * HOUR_US, "", TG_OUTCOME_REJECTED);
    n++;
    return n;
}

static void test_append_aggregates(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t d1 = day_us("2026-03-01"), d2 = day_us("2026-03-02");
    tg_event_t evs[8];
    size_t n = batch_two_days(evs, d1, d2), ins = 0;
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, n);

    rows_t rs;
    usage(f->s, TG_BY_DAY, NULL, 0, 0, &rs);
    assert_int_equal(rs.n, 4); /* ("",d2) (acme,d1) (acme,d2) (beta,d2) */
    assert_string_equal(rs.r[0].tenant, "");
    assert_string_equal(rs.r[0].group, "2026-03-02");
    assert_int_equal(rs.r[0].rejected, 1);
    assert_int_equal(rs.r[0].requests, 1);

    tg_usage_row_t *a1 = &rs.r[1];
    assert_string_equal(a1->tenant, "acme");
    assert_string_equal(a1->group, "2026-03-01");
    assert_int_equal(a1->requests, 3);
    assert_int_equal(a1->billable, 2);
    assert_int_equal(a1->failed, 1);
    assert_int_equal(a1->rejected, 0);
    assert_int_equal(a1->bytes_in, 300);
    assert_int_equal(a1->bytes_out, 3000);
    assert_int_equal(a1->tokens_in, 15); /* the unknown (-1) counts as nothing */
    assert_int_equal(a1->tokens_out, 27);
    assert_int_equal(a1->cost_micros, 2000);

    assert_string_equal(rs.r[2].tenant, "acme");
    assert_string_equal(rs.r[2].group, "2026-03-02");
    assert_int_equal(rs.r[2].requests, 1);
    assert_int_equal(rs.r[2].cost_micros, 1000000);
    assert_string_equal(rs.r[3].tenant, "beta");
    assert_int_equal(rs.r[3].billable, 1);

    /* Stored as documented: outcome as text, unknown tokens as NULL. */
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_events WHERE id = 103 AND "
                                 "outcome = 'failed' AND tokens_in IS NULL AND model IS NULL "
                                 "AND tool = 'search' AND request_id = 'req-103'"),
                     1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_events WHERE id = 106 AND "
                                 "tenant = '' AND outcome = 'rejected' AND "
                                 "reason = 'unauthorized'"),
                     1);
    sqlite3_close(db);

    /* Totals from the aggregates equal those from the events. */
    rows_t by_route;
    usage(f->s, TG_BY_ROUTE, NULL, 0, 0, &by_route);
    int64_t req_day = 0, req_route = 0, cost_day = 0, cost_route = 0;
    for (size_t i = 0; i < rs.n; i++)
        req_day += rs.r[i].requests, cost_day += rs.r[i].cost_micros;
    for (size_t i = 0; i < by_route.n; i++)
        req_route += by_route.r[i].requests, cost_route += by_route.r[i].cost_micros;
    assert_int_equal(req_day, (int64_t)n);
    assert_int_equal(req_route, (int64_t)n);
    assert_int_equal(cost_day, cost_route);
}

static void test_append_replay_counts_nothing(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t d1 = day_us("2026-03-01"), d2 = day_us("2026-03-02");
    tg_event_t evs[8];
    size_t n = batch_two_days(evs, d1, d2), ins = 99;
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    rows_t before, after;
    usage(f->s, TG_BY_DAY, NULL, 0, 0, &before);
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, 0);
    /* A partial overlap counts only the new ones. */
    tg_event_t more[2] = {evs[0], ev_make(200, d1 + 5 * HOUR_US, "acme", TG_OUTCOME_FAILED)};
    assert_int_equal(tg_store_append(f->s, more, 2, &ins, &err), 0);
    assert_int_equal(ins, 1);
    usage(f->s, TG_BY_DAY, NULL, 0, 0, &after);
    assert_int_equal(after.n, before.n);
    assert_string_equal(after.r[1].group, "2026-03-01");
    assert_int_equal(after.r[1].requests, before.r[1].requests + 1);
    assert_int_equal(after.r[1].failed, before.r[1].failed + 1);
    assert_int_equal(after.r[1].cost_micros, before.r[1].cost_micros);
    for (size_t i = 2; i < after.n; i++)
        assert_memory_equal(&after.r[i].requests, &before.r[i].requests,
                            sizeof(int64_t) * 9); /* requests .. cost_micros */

    assert_int_equal(tg_store_append(f->s, evs, 0, &ins, &err), 0); /* empty batch */
    assert_int_equal(ins, 0);
}

static void test_append_id_collision_keeps_both(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t ts = day_us("2026-03-01") + HOUR_US;
    tg_event_t a = ev_make(777, ts, "acme", TG_OUTCOME_BILLABLE);
    tg_event_t b = ev_make(777, ts, "acme", TG_OUTCOME_FAILED);
    snprintf(b.request_id, sizeof b.request_id, "another-process");
    size_t ins;
    assert_int_equal(tg_store_append(f->s, &a, 1, &ins, &err), 0);
    assert_int_equal(tg_store_append(f->s, &b, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
    /* Both in one batch, too. */
    tg_event_t c = ev_make(888, ts, "acme", TG_OUTCOME_BILLABLE);
    tg_event_t d = c;
    snprintf(d.request_id, sizeof d.request_id, "req-other");
    tg_event_t pair[2] = {c, d};
    assert_int_equal(tg_store_append(f->s, pair, 2, &ins, &err), 0);
    assert_int_equal(ins, 2);
    /* Replays count nothing: the original, and the moved event too (its
     * other id is derived from the event, so the replay finds it again). */
    assert_int_equal(tg_store_append(f->s, &a, 1, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(tg_store_append(f->s, &b, 1, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(tg_store_append(f->s, pair, 2, &ins, &err), 0);
    assert_int_equal(ins, 0);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_events"), 4);
    assert_int_equal(
        raw_int(db, "SELECT count(*) FROM usage_events WHERE request_id = 'another-process' "
                    "AND id != 777 AND outcome = 'failed'"),
        1);
    assert_int_equal(raw_int(db, "SELECT requests FROM usage_daily WHERE tenant_id = 'acme'"), 4);
    assert_int_equal(raw_int(db, "SELECT failed FROM usage_daily WHERE tenant_id = 'acme'"), 1);
    sqlite3_close(db);
}

/* A batch large enough for the multi-row fast path, mixing new events out of
 * id order, replays, exact repeats and id collisions. */
static void test_append_mixed_large_batch(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t ts = day_us("2026-03-01") + HOUR_US;
    enum { FIRST = 40, NEW = 150, REPLAY = 20, REPEAT = 5, CLASH = 3 };
    tg_event_t *evs = calloc(FIRST + NEW + REPLAY + REPEAT + CLASH, sizeof *evs);
    size_t ins = 0, n = 0;
    for (int i = 0; i < FIRST; i++)
        evs[n++] = ev_make(1000 + i, ts + i, "acme", TG_OUTCOME_BILLABLE);
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, FIRST);

    n = 0;
    for (int i = 0; i < NEW; i++) /* descending: the worst order for the fast path */
        evs[n++] = ev_make(5000 - i, ts + 100 + i, i % 2 ? "acme" : "beta",
                           i % 3 ? TG_OUTCOME_BILLABLE : TG_OUTCOME_FAILED);
    for (int i = 0; i < REPLAY; i++)
        evs[n++] = ev_make(1000 + i, ts + i, "acme", TG_OUTCOME_BILLABLE);
    for (int i = 0; i < REPEAT; i++)
        evs[n++] = evs[i * 7];
    for (int i = 0; i < CLASH; i++) {
        evs[n] = evs[i * 11 + 1];
        snprintf(evs[n].request_id, sizeof evs[n].request_id, "clash-%d", i);
        n++;
    }
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, NEW + CLASH);
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, 0);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_events"), FIRST + NEW + CLASH);
    assert_int_equal(raw_int(db, "SELECT count(DISTINCT request_id) FROM usage_events"),
                     FIRST + NEW + CLASH);
    assert_int_equal(raw_int(db, "SELECT sum(requests) FROM usage_daily"), FIRST + NEW + CLASH);
    assert_int_equal(raw_int(db, "SELECT (SELECT sum(failed) FROM usage_daily) = "
                                 "(SELECT count(*) FROM usage_events WHERE outcome = 'failed')"),
                     1);
    assert_int_equal(raw_int(db, "SELECT (SELECT sum(requests) FROM usage_daily WHERE "
                                 "tenant_id = 'beta') = (SELECT count(*) FROM usage_events WHERE "
                                 "tenant = 'beta')"),
                     1);
    sqlite3_close(db);
    free(evs);
}

static void test_append_busy_writes_nothing(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(f->s, 50, &err), 0);
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    int64_t d1 = day_us("2026-03-01"), d2 = day_us("2026-03-02");
    tg_event_t evs[8];
    size_t n = batch_two_days(evs, d1, d2), ins = 99;
    int64_t t0 = tg_mono_us();
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), TG_STORE_BUSY);
    assert_true(tg_mono_us() - t0 < 2000000); /* the short timeout, not 5 s */
    assert_int_equal(ins, 0);
    assert_int_equal(tg_store_writable(f->s, &err), TG_STORE_BUSY);
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), TG_STORE_BUSY);

    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_events"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_daily"), 0);

    assert_int_equal(tg_store_writable(f->s, &err), 0);
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, n);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_events"), (int64_t)n);
    sqlite3_close(db);
}

static void test_purge(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t d1 = day_us("2026-03-01"), d2 = day_us("2026-03-02");
    tg_event_t evs[8];
    size_t n = batch_two_days(evs, d1, d2), ins;
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);

    /* Many old events, more than one purge chunk. */
    enum { OLD = 12000 };
    tg_event_t *old = calloc(OLD, sizeof *old);
    int64_t d0 = day_us("2026-02-01");
    for (size_t i = 0; i < OLD; i++)
        old[i] = ev_make(1000 + (int64_t)i, d0 + (int64_t)i, "acme", TG_OUTCOME_BILLABLE);
    assert_int_equal(tg_store_append(f->s, old, OLD, &ins, &err), 0);
    assert_int_equal(ins, OLD);
    free(old);

    int64_t deleted = 0;
    assert_int_equal(tg_store_purge(f->s, d1, "2026-03-01", &deleted, &err), 0);
    assert_int_equal(deleted, OLD + 1); /* the events, and the 2026-02-01 aggregate */
    rows_t rs;
    usage(f->s, TG_BY_DAY, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].group, "2026-03-01");

    /* Events of day 1 go; its aggregate stays (aggregates outlive events). */
    assert_int_equal(tg_store_purge(f->s, d2, NULL, &deleted, &err), 0);
    assert_int_equal(deleted, 3);
    usage(f->s, TG_BY_ROUTE, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].requests, 1);
    usage(f->s, TG_BY_DAY, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 2);
    assert_int_equal(tg_store_purge(f->s, 0, NULL, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
}

static void test_usage_groupings(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t d1 = day_us("2026-03-01"), d2 = day_us("2026-03-02");
    tg_event_t evs[8];
    size_t n = batch_two_days(evs, d1, d2), ins;
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    rows_t rs;

    /* day, with --from/--to bounds on the day string (to is exclusive). */
    usage(f->s, TG_BY_DAY, "acme", d2, 0, &rs);
    assert_int_equal(rs.n, 1);
    assert_string_equal(rs.r[0].group, "2026-03-02");
    usage(f->s, TG_BY_DAY, NULL, 0, d2, &rs);
    assert_int_equal(rs.n, 1);
    assert_string_equal(rs.r[0].group, "2026-03-01");
    usage(f->s, TG_BY_DAY, NULL, d1, d2 + DAY_US, &rs);
    assert_int_equal(rs.n, 4);
    usage(f->s, TG_BY_DAY, "nobody", 0, 0, &rs);
    assert_int_equal(rs.n, 0);

    usage(f->s, TG_BY_HOUR, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 3);
    assert_string_equal(rs.r[0].group, "2026-03-01T01:00Z");
    assert_int_equal(rs.r[0].requests, 2);
    assert_int_equal(rs.r[0].tokens_in, 15);
    assert_string_equal(rs.r[1].group, "2026-03-01T02:00Z");
    assert_string_equal(rs.r[2].group, "2026-03-02T03:00Z");
    usage(f->s, TG_BY_HOUR, "acme", d1, d2, &rs);
    assert_int_equal(rs.n, 2);

    usage(f->s, TG_BY_ROUTE, NULL, 0, 0, &rs);
    assert_int_equal(rs.n, 4); /* ("",""), (acme,chat), (acme,tools), (beta,chat) */
    assert_string_equal(rs.r[0].tenant, "");
    assert_string_equal(rs.r[0].group, "");
    assert_string_equal(rs.r[1].group, "chat");
    assert_int_equal(rs.r[1].requests, 2);
    assert_string_equal(rs.r[2].group, "tools");
    assert_int_equal(rs.r[2].failed, 1);
    assert_int_equal(rs.r[2].billable, 1);
    assert_string_equal(rs.r[3].tenant, "beta");

    usage(f->s, TG_BY_KEY, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].group, "key_a");
    assert_string_equal(rs.r[1].group, "key_b");
    assert_int_equal(rs.r[1].cost_micros, 1000000);

    usage(f->s, TG_BY_MODEL, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 3);
    assert_string_equal(rs.r[0].group, "");
    assert_string_equal(rs.r[1].group, "gpt-4o");
    assert_int_equal(rs.r[1].tokens_out, 20);
    assert_string_equal(rs.r[2].group, "gpt-4o-mini");

    usage(f->s, TG_BY_TOOL, "acme", d2, d2 + DAY_US, &rs);
    assert_int_equal(rs.n, 1);
    assert_string_equal(rs.r[0].group, "search");
    assert_int_equal(rs.r[0].requests, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_dispatch),
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_version_two_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_aggregates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_replay_counts_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_id_collision_keeps_both, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_mixed_large_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_busy_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_groupings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
