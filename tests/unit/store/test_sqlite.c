/* Tests for src/store/sqlite*.c (and the URL dispatch in store.c), each against a fresh
 * database file in its own temporary directory; those marked TB_BOTH run against a fresh
 * PostgreSQL schema too (backends.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "store/migrations.h"
#include "store/sqlite_int.h"
#include "store/store.h"
#include "types/event.h"
#include "util/clock.h"

#define HOUR_US 3600000000LL
#define DAY_US  (24 * HOUR_US)
/* The wall clock tests pass in: 2027-01-31T23:59:58Z. */
#define WALL 1801439998000000LL

/* Each test's store: a fresh SQLite file, or (TB_BOTH) a fresh PostgreSQL schema too. */
typedef tb_store_t fixture_t;

static int setup(void **state)
{
    return tb_setup_sqlite(state);
}

static int teardown(void **state)
{
    return tb_teardown(state);
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
    e.tokens_in = e.tokens_out = e.tokens_cached = e.tokens_cache_write = TG_TOKENS_UNKNOWN;
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
    /* postgres:// goes to libpq (port 1: refused at once); the password is never echoed */
    assert_int_equal(tg_store_open("postgres://u:pw-secret@127.0.0.1:1/db", &s, &err), -1);
    assert_non_null(strstr(err.msg, "cannot open store postgres://127.0.0.1:1/db: "));
    assert_null(strstr(err.msg, "pw-secret"));
    assert_null(s);
    assert_int_equal(tg_store_open_readonly("postgresql://u:pw-secret@127.0.0.1:1/db", &s, &err),
                     -1);
    assert_null(strstr(err.msg, "pw-secret"));
    /* A URL libpq cannot parse: its message quotes the token or the whole URL (the
     * password with it); the error says what is wrong without it. */
    const char *bad[] = {"postgres://u:pw%zzsecret@127.0.0.1:1/db", "postgres://u:pw-secret@[::1",
                         "postgres://u@127.0.0.1:1/db?password=pw%zzsecret",
                         "postgres://u:pw-secret@127.0.0.1:1/db?bogus=1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(tg_store_open(bad[i], &s, &err), -1);
        assert_null(strstr(err.msg, "secret"));
        assert_non_null(strstr(err.msg, "store postgres: bad URL: "));
        assert_int_equal(tg_store_open_readonly(bad[i], &s, &err), -1);
        assert_null(strstr(err.msg, "secret"));
        assert_null(s);
    }
    assert_int_equal(tg_store_open("postgres://u:pw-secret@127.0.0.1:x/db", &s, &err), -1);
    assert_null(strstr(err.msg, "secret"));
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

/* api_keys.last_used_us is each key's newest event in a batch; a revoked key's refusal is
 * not a use. Keys take turns, as in an ingested log. */
static void test_key_last_used(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), 0);
    const char *ids[3] = {"key_0000000000000001", "key_0000000000000002", "key_0000000000000003"};
    for (int i = 0; i < 3; i++) {
        tg_key_t k = key_make(ids[i], "acme", (unsigned char)(0x11 * (i + 1)));
        assert_int_equal(tg_store_key_add(f->s, &k, &err), 0);
    }
    /* key 1 at 100, 300, 250; key 2 at 200, 150; key 3 refused as revoked at 400 */
    const int who[6] = {0, 1, 0, 2, 1, 0};
    const int64_t ts[6] = {100, 200, 300, 400, 150, 250};
    tg_event_t evs[6];
    for (int i = 0; i < 6; i++) {
        evs[i] = ev_make(700 + i, ts[i], "acme", TG_OUTCOME_BILLABLE);
        snprintf(evs[i].key_id, sizeof evs[i].key_id, "%s", ids[who[i]]);
    }
    evs[3].outcome = TG_OUTCOME_REJECTED;
    snprintf(evs[3].reason, sizeof evs[3].reason, "revoked_key");
    size_t ins = 0;
    assert_int_equal(tg_store_append(f->s, evs, 6, &ins, &err), 0);
    keys_t ks = {0};
    assert_int_equal(tg_store_key_list(f->s, "acme", collect_keys, &ks, &err), 0);
    assert_int_equal(ks.n, 3);
    for (int i = 0; i < 3; i++) {
        int64_t want = i == 0 ? 300 : i == 1 ? 200 : 0;
        for (size_t j = 0; j < ks.n; j++)
            if (strcmp(ks.k[j].id, ids[i]) == 0) assert_int_equal(ks.k[j].last_used_us, want);
    }
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
    tg_event_t e = ev_make(1, WALL, "acme", TG_OUTCOME_BILLABLE);
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
    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events WHERE id = 103 AND "
                               "outcome = 'failed' AND tokens_in IS NULL AND model IS NULL "
                               "AND tool = 'search' AND request_id = 'req-103'"),
                     1);
    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events WHERE id = 106 AND "
                               "tenant = '' AND outcome = 'rejected' AND "
                               "reason = 'unauthorized'"),
                     1);

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

/* An aggregate of unauthenticated refusals (meter/flood.h) stands for `count` requests:
 * usage_events.requests holds it, and every report counts it, so events + aggregate
 * counts = refusals. A replay of the aggregate counts nothing twice. */
static void test_append_flood_aggregate(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t d = day_us("2026-03-01") + 3 * HOUR_US; /* a minute start */
    tg_event_t evs[4];
    for (int i = 0; i < 3; i++) {
        evs[i] = ev_make(200 + i, d + i, "", TG_OUTCOME_REJECTED);
        evs[i].status = 401;
        snprintf(evs[i].client_ip, sizeof evs[i].client_ip, "192.0.2.1");
    }
    evs[3] = ev_make(203, d, "", TG_OUTCOME_REJECTED);
    evs[3].status = 401;
    evs[3].count = 1897;
    evs[3].bytes_in = evs[3].bytes_out = 0;
    snprintf(evs[3].reason, sizeof evs[3].reason, "%s", TG_REASON_FLOOD);
    snprintf(evs[3].client_ip, sizeof evs[3].client_ip, "192.0.2.1");
    size_t ins = 0;
    assert_int_equal(tg_store_append(f->s, evs, 4, &ins, &err), 0);
    assert_int_equal(ins, 4);
    assert_int_equal(tg_store_append(f->s, evs, 4, &ins, &err), 0); /* a replay */
    assert_int_equal(ins, 0);

    rows_t rs;
    usage(f->s, TG_BY_DAY, NULL, 0, 0, &rs);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].requests, 1900);
    assert_int_equal(rs.r[0].rejected, 1900);
    usage(f->s, TG_BY_HOUR, NULL, 0, 0, &rs);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].requests, 1900);
    assert_int_equal(rs.r[0].rejected, 1900);
    assert_int_equal(rs.r[0].billable + rs.r[0].failed, 0);

    assert_int_equal(tb_int(f, "SELECT sum(requests) FROM usage_events WHERE status = 401"), 1900);
    assert_int_equal(tb_int(f, "SELECT requests FROM usage_events WHERE reason = "
                               "'unauthenticated_aggregate' AND client_ip = '192.0.2.1'"),
                     1897);
    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events WHERE requests = 1"), 3);
    /* The documented operator query uses the partial index. */
    /* (PostgreSQL: from the catalog, not pg_indexes, whose pg_get_indexdef() may run on the
     * indexes of another test's schema being dropped in parallel: "could not open relation") */
    assert_int_equal(tb_int(f, f->pg ? "SELECT count(*) FROM pg_index i JOIN pg_class c ON "
                                       "c.oid = i.indexrelid WHERE c.relname = "
                                       "'usage_events_aggregates' AND c.relnamespace = "
                                       "current_schema()::regnamespace AND i.indpred IS NOT NULL"
                                     : "SELECT count(*) FROM pragma_index_list('usage_events') "
                                       "WHERE name = 'usage_events_aggregates' AND partial = 1"),
                     1);
}

/* tg_store_set_pace: SQLite's append calls the function once after each statement of 32
 * new events, on the calling thread; none after the rows inserted one by one (a replay, the
 * short tail), and no more once the function is cleared. */
static void count_pace(void *arg)
{
    (*(int *)arg)++;
}

static void test_append_paces_between_statements(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t d1 = day_us("2026-03-01");
    enum { N = 100 };
    tg_event_t *evs = calloc(N, sizeof *evs);
    assert_non_null(evs);
    for (int i = 0; i < N; i++)
        evs[i] = ev_make(1000 + i, d1 + i, "acme", TG_OUTCOME_BILLABLE);
    int paced = 0;
    size_t ins = 0;
    tg_store_set_pace(f->s, count_pace, &paced);
    assert_int_equal(tg_store_append(f->s, evs, 31, &ins, &err), 0);
    assert_int_equal(ins, 31);
    assert_int_equal(paced, 0); /* 31: one by one */
    assert_int_equal(tg_store_append(f->s, evs + 31, N - 31, &ins, &err), 0);
    assert_int_equal(ins, N - 31);
    assert_int_equal(paced, 2); /* 69: two statements of 32, then 5 one by one */
    assert_int_equal(tg_store_append(f->s, evs, N, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(paced, 2); /* a replay: one by one */
    for (int i = 0; i < N; i++)
        evs[i].id += 10000;
    tg_store_set_pace(f->s, NULL, NULL);
    assert_int_equal(tg_store_append(f->s, evs, N, &ins, &err), 0);
    assert_int_equal(ins, N);
    assert_int_equal(paced, 2);
    free(evs);
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

    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events"), 4);
    assert_int_equal(
        tb_int(f, "SELECT count(*) FROM usage_events WHERE request_id = 'another-process' "
                  "AND id != 777 AND outcome = 'failed'"),
        1);
    assert_int_equal(tb_int(f, "SELECT requests FROM usage_daily WHERE tenant_id = 'acme'"), 4);
    assert_int_equal(tb_int(f, "SELECT failed FROM usage_daily WHERE tenant_id = 'acme'"), 1);
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

    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events"), FIRST + NEW + CLASH);
    assert_int_equal(tb_int(f, "SELECT count(DISTINCT request_id) FROM usage_events"),
                     FIRST + NEW + CLASH);
    assert_int_equal(tb_int(f, "SELECT sum(requests) FROM usage_daily"), FIRST + NEW + CLASH);
    assert_int_equal(tb_int(f, "SELECT (SELECT sum(failed) FROM usage_daily) = "
                               "(SELECT count(*) FROM usage_events WHERE outcome = 'failed')"),
                     1);
    assert_int_equal(tb_int(f, "SELECT (SELECT sum(requests) FROM usage_daily WHERE "
                               "tenant_id = 'beta') = (SELECT count(*) FROM usage_events WHERE "
                               "tenant = 'beta')"),
                     1);
    free(evs);
}

/* The usual batch: ids nearly in order (a few neighbours swapped, one event late by many
 * places, an exact repeat), which the append sorts without qsort: every event lands once. */
static void test_append_nearly_sorted_batch(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t ts = day_us("2026-03-02") + HOUR_US;
    enum { N = 100 };
    tg_event_t *evs = calloc(N + 1, sizeof *evs);
    size_t ins = 0, n = 0;
    for (int i = 0; i < N; i++)
        evs[n++] = ev_make(9000 + i, ts + i, "acme", TG_OUTCOME_BILLABLE);
    for (int i = 10; i < 60; i += 7) { /* neighbours swapped */
        tg_event_t t = evs[i];
        evs[i] = evs[i + 1];
        evs[i + 1] = t;
    }
    tg_event_t late = evs[3]; /* one event 90 places late */
    memmove(&evs[3], &evs[4], (size_t)(N - 4) * sizeof *evs);
    evs[N - 1] = late;
    /* An exact repeat of the 50th, early in the batch: it must meet its twin after the sort,
     * or the two would share a multi-row INSERT (which counts its rows) and fail it. */
    memmove(&evs[21], &evs[20], (size_t)(N - 20) * sizeof *evs);
    evs[20] = evs[51];
    n++;
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, N);
    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events WHERE id BETWEEN 9000 AND 9099"),
                     N);
    assert_int_equal(tb_int(f, "SELECT count(DISTINCT id) FROM usage_events WHERE id BETWEEN "
                               "9000 AND 9099"),
                     N);
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
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), TG_STORE_BUSY);
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

/* ---- policy: limits, pauses, IP rules --------------------------------------- */

typedef struct policy_rows {
    tg_limit_row_t lim[16];
    tg_pause_row_t pause[8];
    tg_ip_rule_row_t ip[16];
    size_t n;
} policy_rows_t;

static int collect_limit(const tg_limit_row_t *r, void *ud)
{
    policy_rows_t *p = ud;
    if (p->n == 16) return -1;
    p->lim[p->n++] = *r;
    return 0;
}

static int collect_pause(const tg_pause_row_t *r, void *ud)
{
    policy_rows_t *p = ud;
    if (p->n == 8) return -1;
    p->pause[p->n++] = *r;
    return 0;
}

static int collect_ip(const tg_ip_rule_row_t *r, void *ud)
{
    policy_rows_t *p = ud;
    if (p->n == 16) return -1;
    p->ip[p->n++] = *r;
    return 0;
}

static tg_limit_row_t limit_make(const char *tenant, const char *scope, const char *value,
                                 int64_t limit, int64_t period_s, int64_t burst, int64_t conc)
{
    tg_limit_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.scope, sizeof r.scope, "%s", scope);
    snprintf(r.value, sizeof r.value, "%s", value);
    r.limit = limit;
    r.period_s = period_s;
    r.burst = burst;
    r.concurrency = conc;
    return r;
}

static tg_ip_rule_row_t ip_make(const char *tenant, const char *action, const char *cidr)
{
    tg_ip_rule_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.action, sizeof r.action, "%s", action);
    snprintf(r.cidr, sizeof r.cidr, "%s", cidr);
    return r;
}

static int64_t policy_version(tg_store_t *s)
{
    int64_t v = 0;
    tg_err_t err;
    assert_int_equal(tg_store_policy_version(s, &v, &err), 0);
    return v;
}

/* SQL run on the test's database behind the store's back, in either backend: a row
 * written by hand, a table emptied. */
static PGconn *both_pg(const fixture_t *f)
{
    PGconn *c = PQconnectdb(f->url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void both_exec(const fixture_t *f, const char *sql)
{
    if (!f->pg) {
        sqlite3 *db = raw_open(f);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        return;
    }
    PGconn *c = both_pg(f);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

static int64_t both_int(const fixture_t *f, const char *sql)
{
    if (!f->pg) {
        sqlite3 *db = raw_open(f);
        int64_t v = raw_int(db, sql);
        sqlite3_close(db);
        return v;
    }
    PGconn *c = both_pg(f);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* Every successful change moves policy_version, seen from another connection;
 * failed ones and non-policy changes do not; policy changes leave
 * auth_version alone (no keyring reload for a new limit). */
static void test_policy_version_two_connections(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_store_t *other = NULL;
    assert_int_equal(tg_store_open(f->url, &other, &err), 0);

    int64_t v0 = policy_version(other), v, a0, a;
    assert_int_equal(tg_store_auth_version(other, &a0, &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), 0);
    assert_int_equal(policy_version(other), v0); /* a tenant is not policy */
    assert_int_equal(tg_store_auth_version(other, &a0, &err), 0);

    tg_limit_row_t l = limit_make("acme", "tenant", "", 100, 60, 20, 4);
    tg_ip_rule_row_t ip = ip_make("*", "deny", "10.0.0.0/8");
#define MOVES(call)                                                                                \
    do {                                                                                           \
        assert_int_equal((call), 0);                                                               \
        v = policy_version(other);                                                                 \
        assert_true(v > v0);                                                                       \
        v0 = v;                                                                                    \
    } while (0)
#define STAYS(call, code)                                                                          \
    do {                                                                                           \
        assert_int_equal((call), (code));                                                          \
        assert_int_equal(policy_version(other), v0);                                               \
    } while (0)
    MOVES(tg_store_limit_set(f->s, &l, &err));
    MOVES(tg_store_limit_set(f->s, &l, &err)); /* the same row again is still a change */
    MOVES(tg_store_limit_rm(f->s, "acme", "tenant", "", &err));
    STAYS(tg_store_limit_rm(f->s, "acme", "tenant", "", &err), TG_STORE_NOTFOUND);
    MOVES(tg_store_pause_set(f->s, "*", "incident", WALL, &err));
    MOVES(tg_store_pause_clear(other, "*", &err)); /* either connection */
    STAYS(tg_store_pause_clear(f->s, "*", &err), TG_STORE_NOTFOUND);
    MOVES(tg_store_ip_rule_add(f->s, &ip, &err));
    STAYS(tg_store_ip_rule_add(f->s, &ip, &err), TG_STORE_EXISTS);
    MOVES(tg_store_ip_rule_rm(f->s, "*", "deny", "10.0.0.0/8", &err));
    STAYS(tg_store_ip_rule_rm(f->s, "*", "deny", "10.0.0.0/8", &err), TG_STORE_NOTFOUND);
    tg_limit_row_t bad = limit_make("acme", "route", "", 1, 60, 0, 0);
    STAYS(tg_store_limit_set(f->s, &bad, &err), -1);
#undef MOVES
#undef STAYS

    assert_int_equal(tg_store_auth_version(other, &a, &err), 0);
    assert_int_equal(a, a0);
    tg_store_close(other);
}

/* Two connections (two gateways' CLIs) changing limits at the same time: every change
 * bumps policy_version once, none is lost to the other (the bump is one row's UPDATE in
 * each change's transaction: the second waits for the first and increments its result). */
typedef struct limit_writer {
    const fixture_t *f;
    const char *tenant;
    int failed;
    pthread_barrier_t *go;
} limit_writer_t;

#define CONCURRENT_SETS 25

static void *write_limits(void *arg)
{
    limit_writer_t *w = arg;
    tg_err_t err;
    tg_store_t *s = NULL;
    if (tg_store_open(w->f->url, &s, &err) != 0) {
        w->failed = 1;
        pthread_barrier_wait(w->go);
        return NULL;
    }
    tg_store_set_busy_timeout(s, 10000, &err);
    pthread_barrier_wait(w->go);
    for (int i = 0; i < CONCURRENT_SETS; i++) {
        tg_limit_row_t l = limit_make(w->tenant, "tenant", "", i, 60, 0, 0);
        if (tg_store_limit_set(s, &l, &err) != 0) w->failed = 1;
    }
    tg_store_close(s);
    return NULL;
}

static void test_policy_version_concurrent(void **state)
{
    fixture_t *f = *state;
    int64_t v0 = policy_version(f->s);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    limit_writer_t w[2] = {{f, "acme", 0, &go}, {f, "beta", 0, &go}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, write_limits, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    assert_int_equal(w[0].failed, 0);
    assert_int_equal(w[1].failed, 0);
    assert_int_equal(policy_version(f->s), v0 + 2 * CONCURRENT_SETS);
    policy_rows_t p = {0};
    tg_err_t err;
    assert_int_equal(tg_store_limit_list(f->s, NULL, collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.lim[0].limit, CONCURRENT_SETS - 1);
    assert_int_equal(p.lim[1].limit, CONCURRENT_SETS - 1);
}

static void test_limit_set_replace_rm_list(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_limit_row_t rows[] = {
        limit_make("beta", "tenant", "", 10, 1, 0, 0),
        limit_make("acme", "key", "key_0000000000000001", 1, 3600, 0, 0),
        limit_make("acme", "route", "chat", 100, 60, 20, 0),
        limit_make("acme", "tenant", "", 0, 0, 0, 8),      /* concurrency only */
        limit_make("acme", "tool", "search", 0, 60, 0, 0), /* 0 = refuse all */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(tg_store_limit_set(f->s, &rows[i], &err), 0);

    policy_rows_t p = {0};
    assert_int_equal(tg_store_limit_list(f->s, NULL, collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 5);
    /* By tenant, then the tenant-wide row, route, tool, key. */
    const char *order[][2] = {{"acme", "tenant"},
                              {"acme", "route"},
                              {"acme", "tool"},
                              {"acme", "key"},
                              {"beta", "tenant"}};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(p.lim[i].tenant, order[i][0]);
        assert_string_equal(p.lim[i].scope, order[i][1]);
        assert_true(p.lim[i].updated_us > 0);
    }
    assert_string_equal(p.lim[0].value, "");
    assert_int_equal(p.lim[0].period_s, 0);
    assert_int_equal(p.lim[0].concurrency, 8);
    assert_string_equal(p.lim[1].value, "chat");
    assert_int_equal(p.lim[1].limit, 100);
    assert_int_equal(p.lim[1].period_s, 60);
    assert_int_equal(p.lim[1].burst, 20);
    assert_int_equal(p.lim[2].limit, 0);
    assert_int_equal(p.lim[2].period_s, 60);

    /* set replaces the whole row of (tenant, scope, value). */
    tg_limit_row_t again = limit_make("acme", "route", "chat", 5, 1, 0, 0);
    again.updated_us = 42;
    assert_int_equal(tg_store_limit_set(f->s, &again, &err), 0);
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_limit_list(f->s, "acme", collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 4); /* the filter; still one row for route chat */
    assert_string_equal(p.lim[1].value, "chat");
    assert_int_equal(p.lim[1].limit, 5);
    assert_int_equal(p.lim[1].period_s, 1);
    assert_int_equal(p.lim[1].burst, 0);
    assert_int_equal(p.lim[1].updated_us, 42);

    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_limit_list(f->s, "nobody", collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 0);

    assert_int_equal(tg_store_limit_rm(f->s, "acme", "route", "chat", &err), 0);
    assert_int_equal(tg_store_limit_rm(f->s, "acme", "route", "chat", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no limit for tenant \"acme\" route \"chat\"");
    assert_int_equal(tg_store_limit_rm(f->s, "beta", "route", "chat", &err), TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_limit_rm(f->s, "beta", "tenant", NULL, &err), 0);
    assert_int_equal(tg_store_limit_rm(f->s, "beta", "tenant", "", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no tenant-wide limit for tenant \"beta\"");
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_limit_list(f->s, NULL, collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 3);

    /* Rows the table would refuse are refused with a message first. */
    tg_limit_row_t bad[] = {
        limit_make("acme", "region", "x", 1, 60, 0, 0),   /* unknown scope */
        limit_make("acme", "route", "", 1, 60, 0, 0),     /* route without a name */
        limit_make("acme", "tenant", "x", 1, 60, 0, 0),   /* tenant scope with a value */
        limit_make("acme", "tenant", "", 1, 120, 0, 0),   /* odd period */
        limit_make("acme", "tenant", "", 5, 0, 0, 0),     /* a limit without a period */
        limit_make("acme", "route", "chat", 1, 60, 0, 3), /* concurrency on a route */
        limit_make("acme", "tenant", "", -1, 60, 0, 0),   limit_make("", "tenant", "", 1, 60, 0, 0),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        assert_int_equal(tg_store_limit_set(f->s, &bad[i], &err), -1);
        assert_true(err.msg[0] != '\0');
    }
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_limit_list(f->s, NULL, collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 3);

    /* A callback's nonzero return stops the iteration and comes back as is. */
    p.n = 16;
    assert_int_equal(tg_store_limit_list(f->s, NULL, collect_limit, &p, &err), -1);
}

static void test_pause_global_and_tenant(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    policy_rows_t p = {0};
    assert_int_equal(tg_store_pause_list(f->s, collect_pause, &p, &err), 0);
    assert_int_equal(p.n, 0);

    assert_int_equal(tg_store_pause_set(f->s, "acme", "billing review", WALL, &err), 0);
    assert_int_equal(tg_store_pause_set(f->s, "*", "incident", WALL, &err), 0);
    assert_int_equal(tg_store_pause_set(f->s, "beta", NULL, WALL, &err), 0);
    assert_int_equal(tg_store_pause_list(f->s, collect_pause, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.pause[0].tenant, "*"); /* global first */
    assert_string_equal(p.pause[0].reason, "incident");
    assert_string_equal(p.pause[1].tenant, "acme");
    assert_string_equal(p.pause[1].reason, "billing review");
    assert_string_equal(p.pause[2].tenant, "beta");
    assert_string_equal(p.pause[2].reason, "");
    int64_t since = p.pause[1].created_us;
    assert_int_equal(since, WALL);

    /* Pausing again changes the reason; the pause still began when it began. */
    assert_int_equal(tg_store_pause_set(f->s, "acme", "still reviewing", WALL + 2000, &err), 0);
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_pause_list(f->s, collect_pause, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.pause[1].reason, "still reviewing");
    assert_int_equal(p.pause[1].created_us, since);

    /* Clearing the global pause leaves tenant pauses, and the reverse. */
    assert_int_equal(tg_store_pause_clear(f->s, "*", &err), 0);
    assert_int_equal(tg_store_pause_clear(f->s, "*", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no global pause");
    assert_int_equal(tg_store_pause_clear(f->s, "acme", &err), 0);
    assert_int_equal(tg_store_pause_clear(f->s, "acme", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "tenant \"acme\" is not paused");
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_pause_list(f->s, collect_pause, &p, &err), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.pause[0].tenant, "beta");
    assert_int_equal(tg_store_pause_set(f->s, "", "x", WALL, &err), -1);
}

static void test_ip_rules(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_ip_rule_row_t rules[] = {
        ip_make("acme", "deny", "192.0.2.0/24"), ip_make("*", "deny", "203.0.113.0/24"),
        ip_make("acme", "allow", "10.0.0.0/8"),  ip_make("acme", "allow", "2001:db8::/32"),
        ip_make("acme", "deny", "10.0.0.0/8"), /* same network, other action: its own rule */
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        assert_int_equal(tg_store_ip_rule_add(f->s, &rules[i], &err), 0);
    assert_int_equal(tg_store_ip_rule_add(f->s, &rules[0], &err), TG_STORE_EXISTS);
    assert_string_equal(err.msg, "ip rule deny 192.0.2.0/24 for tenant \"acme\" already exists");
    assert_int_equal(tg_store_ip_rule_add(f->s, &rules[1], &err), TG_STORE_EXISTS);
    assert_string_equal(err.msg, "ip rule deny 203.0.113.0/24 for all tenants already exists");

    policy_rows_t p = {0};
    assert_int_equal(tg_store_ip_rule_list(f->s, NULL, collect_ip, &p, &err), 0);
    assert_int_equal(p.n, 5);
    assert_string_equal(p.ip[0].tenant, "*");
    assert_string_equal(p.ip[1].action, "allow");
    assert_string_equal(p.ip[1].cidr, "10.0.0.0/8");
    assert_string_equal(p.ip[2].cidr, "2001:db8::/32");
    assert_string_equal(p.ip[3].action, "deny");
    assert_true(p.ip[3].created_us > 0);

    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_ip_rule_list(f->s, "*", collect_ip, &p, &err), 0);
    assert_int_equal(p.n, 1);
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_ip_rule_list(f->s, "acme", collect_ip, &p, &err), 0);
    assert_int_equal(p.n, 4);

    assert_int_equal(tg_store_ip_rule_rm(f->s, "acme", "deny", "10.0.0.0/8", &err), 0);
    assert_int_equal(tg_store_ip_rule_rm(f->s, "acme", "deny", "10.0.0.0/8", &err),
                     TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no ip rule deny 10.0.0.0/8 for tenant \"acme\"");
    assert_int_equal(tg_store_ip_rule_rm(f->s, "*", "allow", "203.0.113.0/24", &err),
                     TG_STORE_NOTFOUND);
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_ip_rule_list(f->s, "acme", collect_ip, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.ip[0].cidr, "10.0.0.0/8");
    assert_string_equal(p.ip[0].action, "allow");

    tg_ip_rule_row_t bad = ip_make("acme", "block", "10.0.0.0/8");
    assert_int_equal(tg_store_ip_rule_add(f->s, &bad, &err), -1);
    bad = ip_make("acme", "deny", "");
    assert_int_equal(tg_store_ip_rule_add(f->s, &bad, &err), -1);
}

/* A database written by a tollgate that knew migration 1 only: opening it
 * applies migration 2 and keeps what was there. */
static void test_migrate_from_v1(void **state)
{
    fixture_t *f = *state;
    tg_store_close(f->s);
    f->s = NULL;
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db, tg_store_migrations_bootstrap, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(tg_store_migrations[0].version, 1);
    assert_int_equal(sqlite3_exec(db, tg_store_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO schema_migrations VALUES (1, 'v1', 0);"
                                  "INSERT INTO tenants (id, name, created_us) VALUES ('old', "
                                  "'Old Co', 1);"
                                  "UPDATE meta SET value = 7 WHERE key = 'auth_version';",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    tg_err_t err;
    assert_int_equal(tg_store_open(f->url, &f->s, &err), 0);
    tg_tenant_t t;
    assert_int_equal(tg_store_tenant_get(f->s, "old", &t, &err), 0);
    assert_string_equal(t.name, "Old Co");
    int64_t a;
    assert_int_equal(tg_store_auth_version(f->s, &a, &err), 0);
    assert_int_equal(a, 7);
    int64_t v0 = policy_version(f->s);
    tg_limit_row_t l = limit_make("old", "tenant", "", 60, 60, 0, 0);
    assert_int_equal(tg_store_limit_set(f->s, &l, &err), 0);
    assert_true(policy_version(f->s) > v0);

    /* Reopening applies nothing more. */
    tg_store_close(f->s);
    assert_int_equal(tg_store_open(f->url, &f->s, &err), 0);
    policy_rows_t p = {0};
    assert_int_equal(tg_store_limit_list(f->s, NULL, collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 1);
    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)tg_store_nmigrations);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('limits', "
                                 "'pauses', 'ip_rules')"),
                     3);
    sqlite3_close(db);
}

/* ---- AI metering: event columns, token limits, prices, budgets, alerts, tools ---- */

/* The three event columns of migration 3 are stored as documented (unknown tokens and
 * empty strings as NULL), and usage_daily.tokens_cached sums the known cached tokens. */
static void test_append_metering_columns(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t d1 = day_us("2026-03-01");
    tg_event_t evs[3];
    evs[0] = ev_make(201, d1 + HOUR_US, "acme", TG_OUTCOME_BILLABLE);
    evs[0].tokens_in = 1000;
    evs[0].tokens_out = 50;
    evs[0].tokens_cached = 600;
    evs[0].tokens_cache_write = 200;
    snprintf(evs[0].model, sizeof evs[0].model, "claude-sonnet");
    snprintf(evs[0].price_flag, sizeof evs[0].price_flag, "fallback");
    evs[1] = ev_make(202, d1 + HOUR_US + 1, "acme", TG_OUTCOME_BILLABLE);
    snprintf(evs[1].tool, sizeof evs[1].tool, "search");
    snprintf(evs[1].rpc_method, sizeof evs[1].rpc_method, "tools/call");
    evs[1].tokens_cached = 7;
    evs[2] = ev_make(203, d1 + HOUR_US + 2, "acme", TG_OUTCOME_FAILED); /* all unknown */
    size_t ins = 0;
    assert_int_equal(tg_store_append(f->s, evs, 3, &ins, &err), 0);
    assert_int_equal(ins, 3);

    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events WHERE id = 201 AND "
                               "tokens_cache_write = 200 AND tokens_cached = 600 AND "
                               "price_flag = 'fallback' AND rpc_method IS NULL"),
                     1);
    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events WHERE id = 202 AND "
                               "rpc_method = 'tools/call' AND price_flag IS NULL AND "
                               "tokens_cache_write IS NULL"),
                     1);
    assert_int_equal(tb_int(f, "SELECT count(*) FROM usage_events WHERE id = 203 AND "
                               "tokens_cache_write IS NULL AND tokens_cached IS NULL AND "
                               "rpc_method IS NULL AND price_flag IS NULL"),
                     1);
    assert_int_equal(tb_int(f, "SELECT tokens_cached FROM usage_daily WHERE tenant_id = "
                               "'acme' AND day = '2026-03-01'"),
                     607);
    /* A replay adds nothing, tokens_cached included. */
    assert_int_equal(tg_store_append(f->s, evs, 3, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(tb_int(f, "SELECT tokens_cached FROM usage_daily WHERE tenant_id = "
                               "'acme' AND day = '2026-03-01'"),
                     607);

    /* --by model and --by tool group the events with tokens and cost. */
    evs[0].id = 204;
    evs[0].cost_micros = 1234;
    snprintf(evs[0].request_id, sizeof evs[0].request_id, "req-204");
    assert_int_equal(tg_store_append(f->s, evs, 1, &ins, &err), 0);
    rows_t rs;
    usage(f->s, TG_BY_MODEL, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[1].group, "claude-sonnet");
    assert_int_equal(rs.r[1].requests, 2);
    assert_int_equal(rs.r[1].tokens_in, 2000);
    assert_int_equal(rs.r[1].tokens_out, 100);
    assert_int_equal(rs.r[1].cost_micros, 1234);
    usage(f->s, TG_BY_TOOL, "acme", 0, 0, &rs);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[1].group, "search");
    assert_int_equal(rs.r[1].requests, 1);
}

static void test_limit_tokens_and_model_scope(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_limit_row_t m = limit_make("acme", "model", "gpt-4o", 0, 0, 0, 0);
    m.tokens = 100000;
    m.tokens_period_s = 60;
    tg_limit_row_t t = limit_make("acme", "tenant", "", 600, 60, 0, 0);
    t.tokens = 2000000;
    t.tokens_period_s = 3600;
    tg_limit_row_t k = limit_make("acme", "key", "key_1", 10, 1, 0, 0);
    assert_int_equal(tg_store_limit_set(f->s, &m, &err), 0);
    assert_int_equal(tg_store_limit_set(f->s, &k, &err), 0);
    assert_int_equal(tg_store_limit_set(f->s, &t, &err), 0);

    policy_rows_t p = {0};
    assert_int_equal(tg_store_limit_list(f->s, "acme", collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.lim[0].scope, "tenant"); /* tenant, ..., key, model */
    assert_int_equal(p.lim[0].limit, 600);
    assert_int_equal(p.lim[0].tokens, 2000000);
    assert_int_equal(p.lim[0].tokens_period_s, 3600);
    assert_string_equal(p.lim[1].scope, "key");
    assert_int_equal(p.lim[1].tokens, 0);
    assert_int_equal(p.lim[1].tokens_period_s, 0);
    assert_string_equal(p.lim[2].scope, "model");
    assert_string_equal(p.lim[2].value, "gpt-4o");
    assert_int_equal(p.lim[2].period_s, 0);
    assert_int_equal(p.lim[2].tokens, 100000);
    assert_int_equal(p.lim[2].tokens_period_s, 60);

    /* set replaces the row: the token limit goes when not given again. */
    t.tokens = 0;
    t.tokens_period_s = 0;
    assert_int_equal(tg_store_limit_set(f->s, &t, &err), 0);
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_limit_list(f->s, "acme", collect_limit, &p, &err), 0);
    assert_int_equal(p.lim[0].tokens_period_s, 0);
    assert_int_equal(tg_store_limit_rm(f->s, "acme", "model", "gpt-4o", &err), 0);

    tg_limit_row_t bad[3];
    bad[0] = limit_make("acme", "model", "x", 0, 0, 0, 0);
    bad[0].tokens = 5; /* tokens without a period */
    bad[1] = limit_make("acme", "model", "x", 0, 0, 0, 0);
    bad[1].tokens = 5;
    bad[1].tokens_period_s = 1; /* per second is not a token period */
    bad[2] = limit_make("acme", "model", "", 0, 0, 0, 0);
    bad[2].tokens = 5;
    bad[2].tokens_period_s = 60; /* model scope without a model */
    for (size_t i = 0; i < 3; i++) {
        err.msg[0] = '\0';
        assert_int_equal(tg_store_limit_set(f->s, &bad[i], &err), -1);
        assert_true(err.msg[0] != '\0');
    }
}

static tg_price_row_t price_make(const char *meter, const char *name, int64_t effective_us)
{
    tg_price_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.meter, sizeof r.meter, "%s", meter);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.effective_us = effective_us;
    r.input_micros = r.output_micros = r.cached_micros = r.cache_write_micros = -1;
    r.request_micros = r.gb_micros = r.call_micros = -1;
    return r;
}

typedef struct prices {
    tg_price_row_t p[16];
    size_t n;
} prices_t;

static int collect_price(const tg_price_row_t *r, void *ud)
{
    prices_t *ps = ud;
    if (ps->n == 16) return -1;
    ps->p[ps->n++] = *r;
    return 0;
}

static void test_prices_effective_dating(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t mar = day_us("2026-03-01"), apr = day_us("2026-04-01");
    int64_t v0 = policy_version(f->s);

    tg_price_row_t later = price_make("model", "gpt-4o", apr);
    later.input_micros = 2000000;
    later.output_micros = 8000000;
    tg_price_row_t first = price_make("model", "gpt-4o", mar);
    first.input_micros = 2500000;
    first.output_micros = 10000000;
    first.cached_micros = 1250000;
    tg_price_row_t fallback = price_make("model", "*", 0);
    fallback.input_micros = 1000000;
    fallback.output_micros = 1000000;
    tg_price_row_t route = price_make("route", "chat", mar);
    route.request_micros = 100;
    route.gb_micros = 50000;
    tg_price_row_t tool = price_make("tool", "*", mar);
    tool.call_micros = 0; /* free is a price, not "unset" */
    tg_price_row_t rows[] = {later, tool, first, route, fallback};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(tg_store_price_set(f->s, &rows[i], &err), 0);
    assert_true(policy_version(f->s) >= v0 + 5);

    prices_t ps = {0};
    assert_int_equal(tg_store_price_list(f->s, collect_price, &ps, &err), 0);
    assert_int_equal(ps.n, 5);
    /* model, route, tool; by name; oldest first. */
    assert_string_equal(ps.p[0].name, "*");
    assert_int_equal(ps.p[0].effective_us, 0);
    assert_string_equal(ps.p[1].name, "gpt-4o");
    assert_int_equal(ps.p[1].effective_us, mar);
    assert_int_equal(ps.p[1].input_micros, 2500000);
    assert_int_equal(ps.p[1].cached_micros, 1250000);
    assert_int_equal(ps.p[1].cache_write_micros, -1); /* unset stays unset */
    assert_int_equal(ps.p[1].request_micros, -1);
    assert_true(ps.p[1].created_us > 0);
    assert_int_equal(ps.p[2].effective_us, apr);
    assert_int_equal(ps.p[2].output_micros, 8000000);
    assert_int_equal(ps.p[2].cached_micros, -1);
    assert_string_equal(ps.p[3].meter, "route");
    assert_int_equal(ps.p[3].gb_micros, 50000);
    assert_int_equal(ps.p[3].input_micros, -1);
    assert_string_equal(ps.p[4].meter, "tool");
    assert_int_equal(ps.p[4].call_micros, 0);

    /* The same (meter, name, effective) replaces that row as a whole. */
    tg_price_row_t again = price_make("model", "gpt-4o", apr);
    again.input_micros = 3000000;
    again.output_micros = 9000000;
    again.created_us = 42;
    assert_int_equal(tg_store_price_set(f->s, &again, &err), 0);
    memset(&ps, 0, sizeof ps);
    assert_int_equal(tg_store_price_list(f->s, collect_price, &ps, &err), 0);
    assert_int_equal(ps.n, 5);
    assert_int_equal(ps.p[2].input_micros, 3000000);
    assert_int_equal(ps.p[2].created_us, 42);

    /* rm: one row by its effective time, or all of (meter, name). */
    assert_int_equal(tg_store_price_rm(f->s, "model", "gpt-4o", apr, &err), 0);
    assert_int_equal(tg_store_price_rm(f->s, "model", "gpt-4o", apr, &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no price for model \"gpt-4o\" from 2026-04-01T00:00:00.000Z");
    assert_int_equal(tg_store_price_rm(f->s, "route", "chat", -1, &err), 0);
    assert_int_equal(tg_store_price_rm(f->s, "route", "chat", -1, &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no price for route \"chat\"");
    assert_int_equal(tg_store_price_rm(f->s, "tool", "chat", -1, &err), TG_STORE_NOTFOUND);
    memset(&ps, 0, sizeof ps);
    assert_int_equal(tg_store_price_list(f->s, collect_price, &ps, &err), 0);
    assert_int_equal(ps.n, 3);

    /* Rows the table would refuse are refused with a message, and bump nothing. */
    tg_price_row_t bad[6];
    bad[0] = price_make("model", "x", mar); /* no amount */
    bad[1] = price_make("model", "x", mar);
    bad[1].call_micros = 5; /* a tool amount on a model */
    bad[2] = price_make("route", "x", mar);
    bad[2].input_micros = 5;
    bad[3] = price_make("disk", "x", mar);
    bad[3].call_micros = 5;
    bad[4] = price_make("tool", "", mar);
    bad[4].call_micros = 5;
    bad[5] = price_make("tool", "x", mar);
    bad[5].call_micros = -7;
    int64_t v1 = policy_version(f->s);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        assert_int_equal(tg_store_price_set(f->s, &bad[i], &err), -1);
        assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(policy_version(f->s), v1);
}

typedef struct budgets {
    tg_budget_row_t b[8];
    size_t n;
} budgets_t;

static int collect_budget(const tg_budget_row_t *r, void *ud)
{
    budgets_t *bs = ud;
    if (bs->n == 8) return -1;
    bs->b[bs->n++] = *r;
    return 0;
}

static tg_budget_row_t budget_make(const char *tenant, int64_t micros, int hard, const int *th,
                                   int n)
{
    tg_budget_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    r.monthly_micros = micros;
    r.hard = hard;
    for (int i = 0; i < n; i++)
        r.thresholds[i] = th[i];
    r.nthresholds = n;
    return r;
}

static void test_budgets(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    const int th[] = {50, 80, 100, 150};
    int64_t v0 = policy_version(f->s);
    tg_budget_row_t b = budget_make("beta", 100000000, 1, th, 3);
    tg_budget_row_t a = budget_make("acme", 5000000, 0, th, 4);
    assert_int_equal(tg_store_budget_set(f->s, &b, &err), 0);
    assert_int_equal(tg_store_budget_set(f->s, &a, &err), 0);
    assert_int_equal(policy_version(f->s), v0 + 2);

    budgets_t bs = {0};
    assert_int_equal(tg_store_budget_list(f->s, NULL, collect_budget, &bs, &err), 0);
    assert_int_equal(bs.n, 2);
    assert_string_equal(bs.b[0].tenant, "acme");
    assert_int_equal(bs.b[0].monthly_micros, 5000000);
    assert_int_equal(bs.b[0].hard, 0);
    assert_int_equal(bs.b[0].nthresholds, 4);
    assert_int_equal(bs.b[0].thresholds[3], 150);
    assert_true(bs.b[0].updated_us > 0);
    assert_int_equal(bs.b[1].hard, 1);
    assert_int_equal(bs.b[1].nthresholds, 3);
    assert_int_equal(bs.b[1].thresholds[0], 50);

    /* set replaces; list filters by tenant. */
    b = budget_make("beta", 1, 0, th + 3, 1);
    assert_int_equal(tg_store_budget_set(f->s, &b, &err), 0);
    memset(&bs, 0, sizeof bs);
    assert_int_equal(tg_store_budget_list(f->s, "beta", collect_budget, &bs, &err), 0);
    assert_int_equal(bs.n, 1);
    assert_int_equal(bs.b[0].monthly_micros, 1);
    assert_int_equal(bs.b[0].hard, 0);
    assert_int_equal(bs.b[0].nthresholds, 1);
    assert_int_equal(bs.b[0].thresholds[0], 150);
    assert_int_equal(both_int(f, "SELECT count(*) FROM budgets WHERE tenant_id = 'acme' AND "
                                 "thresholds = '50,80,100,150'"),
                     1);
    /* A row written by hand is read leniently. */
    both_exec(f, "UPDATE budgets SET thresholds = '70, x,2000,90' WHERE tenant_id = 'beta'");
    memset(&bs, 0, sizeof bs);
    assert_int_equal(tg_store_budget_list(f->s, "beta", collect_budget, &bs, &err), 0);
    assert_int_equal(bs.b[0].nthresholds, 2);
    assert_int_equal(bs.b[0].thresholds[1], 90);

    assert_int_equal(tg_store_budget_rm(f->s, "beta", &err), 0);
    v0 = policy_version(f->s);
    assert_int_equal(tg_store_budget_rm(f->s, "beta", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no budget for tenant \"beta\"");

    const int desc[] = {90, 80}, dup[] = {80, 80}, zero[] = {0}, big[] = {1001};
    const int nine[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    tg_budget_row_t bad[] = {
        budget_make("acme", 0, 1, th, 3),    budget_make("acme", -5, 1, th, 3),
        budget_make("acme", 10, 2, th, 3),   budget_make("acme", 10, 1, desc, 2),
        budget_make("acme", 10, 1, dup, 2),  budget_make("acme", 10, 1, zero, 1),
        budget_make("acme", 10, 1, big, 1),  budget_make("", 10, 1, th, 3),
        budget_make("acme", 10, 1, nine, 8),
    };
    bad[8].nthresholds = 9;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        assert_int_equal(tg_store_budget_set(f->s, &bad[i], &err), -1);
        assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(policy_version(f->s), v0);
}

typedef struct alerts {
    tg_alert_row_t a[8];
    size_t n;
} alerts_t;

static int collect_alert(const tg_alert_row_t *r, void *ud)
{
    alerts_t *as = ud;
    if (as->n == 8) return -1;
    as->a[as->n++] = *r;
    return 0;
}

static tg_alert_row_t alert_make(const char *tenant, int threshold, const char *period,
                                 int64_t spend)
{
    tg_alert_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.kind, sizeof r.kind, "budget");
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    r.threshold = threshold;
    snprintf(r.period, sizeof r.period, "%s", period);
    r.spend_micros = spend;
    r.budget_micros = 1000;
    return r;
}

/* An alert is recorded once per (kind, tenant, threshold, period), by whichever
 * connection comes first; alerts are not policy. */
static void test_alerts_idempotent(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_store_t *other = NULL;
    assert_int_equal(tg_store_open(f->url, &other, &err), 0);
    int64_t v0 = policy_version(f->s);
    int inserted = -1;
    tg_alert_row_t a = alert_make("acme", 80, "2026-03", 800);
    a.fired_us = 1000;
    assert_int_equal(tg_store_alert_add(f->s, &a, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    tg_alert_row_t later = a;
    later.spend_micros = 850;
    later.fired_us = 2000;
    assert_int_equal(tg_store_alert_add(other, &later, &inserted, &err), 0);
    assert_int_equal(inserted, 0);
    assert_int_equal(tg_store_alert_add(f->s, &a, &inserted, &err), 0);
    assert_int_equal(inserted, 0);
    tg_alert_row_t more[] = {alert_make("acme", 90, "2026-03", 900),
                             alert_make("acme", 80, "2026-04", 800),
                             alert_make("beta", 80, "2026-03", 800)};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tg_store_alert_add(other, &more[i], &inserted, &err), 0);
        assert_int_equal(inserted, 1);
    }
    tg_alert_row_t other_kind = alert_make("acme", 80, "2026-03", 800);
    snprintf(other_kind.kind, sizeof other_kind.kind, "spike");
    assert_int_equal(tg_store_alert_add(f->s, &other_kind, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    assert_int_equal(tg_store_alert_add(f->s, &a, NULL, &err), 0); /* inserted may be NULL */
    assert_int_equal(policy_version(f->s), v0);

    alerts_t as = {0};
    assert_int_equal(tg_store_alert_list(f->s, "acme", collect_alert, &as, &err), 0);
    assert_int_equal(as.n, 4);
    assert_int_equal(as.a[0].threshold, 80); /* the first one, kept as it fired */
    assert_string_equal(as.a[0].period, "2026-03");
    assert_string_equal(as.a[0].kind, "budget");
    assert_int_equal(as.a[0].spend_micros, 800);
    assert_int_equal(as.a[0].budget_micros, 1000);
    assert_int_equal(as.a[0].fired_us, 1000);
    assert_true(as.a[1].id > as.a[0].id);
    assert_int_equal(as.a[1].threshold, 90);
    assert_true(as.a[1].fired_us > 0); /* 0 = now */
    memset(&as, 0, sizeof as);
    assert_int_equal(tg_store_alert_list(f->s, NULL, collect_alert, &as, &err), 0);
    assert_int_equal(as.n, 5);

    tg_alert_row_t bad[] = {alert_make("acme", 80, "2026-3", 1), alert_make("acme", 80, "", 1),
                            alert_make("acme", 80, "2026-13", 1), alert_make("", 80, "2026-03", 1)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        inserted = -1;
        assert_int_equal(tg_store_alert_add(f->s, &bad[i], &inserted, &err), -1);
        assert_int_equal(inserted, 0);
    }
    tg_store_close(other);
}

/* Spend is the sum of usage_daily.cost_micros of one tenant over whole days, both ends
 * included, whatever the events' hours. */
static void test_spend_month(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    const char *days[] = {"2026-02-28", "2026-03-01", "2026-03-15", "2026-03-31", "2026-04-01"};
    const int64_t cost[] = {1, 10, 100, 1000, 10000};
    tg_event_t evs[15];
    size_t n = 0;
    for (size_t i = 0; i < 5; i++) {
        evs[n] =
            ev_make(300 + (int64_t)n, day_us(days[i]) + 23 * HOUR_US, "acme", TG_OUTCOME_BILLABLE);
        evs[n++].cost_micros = cost[i];
        evs[n] = ev_make(300 + (int64_t)n, day_us(days[i]), "acme", TG_OUTCOME_BILLABLE);
        evs[n++].cost_micros = cost[i];
        evs[n] = ev_make(300 + (int64_t)n, day_us(days[i]) + HOUR_US, "beta", TG_OUTCOME_BILLABLE);
        evs[n++].cost_micros = 7;
    }
    size_t ins;
    assert_int_equal(tg_store_append(f->s, evs, n, &ins, &err), 0);
    assert_int_equal(ins, n);
    int64_t m = -1;
    assert_int_equal(tg_store_spend(f->s, "acme", "2026-03-01", "2026-03-31", &m, &err), 0);
    assert_int_equal(m, 2 * (10 + 100 + 1000));
    assert_int_equal(tg_store_spend(f->s, "acme", "2026-03-15", "2026-03-15", &m, &err), 0);
    assert_int_equal(m, 200);
    /* A month's last day need not exist: "-31" bounds February as well. */
    assert_int_equal(tg_store_spend(f->s, "acme", "2026-02-01", "2026-02-31", &m, &err), 0);
    assert_int_equal(m, 2);
    assert_int_equal(tg_store_spend(f->s, "beta", "2026-03-01", "2026-03-31", &m, &err), 0);
    assert_int_equal(m, 7 * 3);
    assert_int_equal(tg_store_spend(f->s, "nobody", "2026-03-01", "2026-03-31", &m, &err), 0);
    assert_int_equal(m, 0);
    assert_int_equal(tg_store_spend(f->s, "acme", "2026-04-01", "2026-04-30", &m, &err), 0);
    assert_int_equal(m, 2 * 10000);
    assert_int_equal(tg_store_spend(f->s, "acme", "2026-02-28", "2026-04-01", &m, &err), 0);
    assert_int_equal(m, 2 * 11111);
    assert_int_equal(tg_store_spend(f->s, "acme", "2026-05-01", "2026-05-31", &m, &err), 0);
    assert_int_equal(m, 0);
    assert_int_equal(tg_store_spend(f->s, "acme", NULL, "2026-05-31", &m, &err), -1);
}

typedef struct tool_rules {
    tg_tool_rule_row_t r[8];
    size_t n;
} tool_rules_t;

static int collect_tool(const tg_tool_rule_row_t *r, void *ud)
{
    tool_rules_t *ts = ud;
    if (ts->n == 8) return -1;
    ts->r[ts->n++] = *r;
    return 0;
}

static tg_tool_rule_row_t tool_make(const char *tenant, const char *action, const char *pattern)
{
    tg_tool_rule_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.action, sizeof r.action, "%s", action);
    snprintf(r.pattern, sizeof r.pattern, "%s", pattern);
    return r;
}

static void test_tool_rules(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t v0 = policy_version(f->s);
    tg_tool_rule_row_t rules[] = {
        tool_make("acme", "deny", "delete_*"), tool_make("*", "deny", "shell"),
        tool_make("acme", "allow", "github_*"), tool_make("acme", "allow", "delete_*")};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(tg_store_tool_rule_add(f->s, &rules[i], &err), 0);
    assert_int_equal(policy_version(f->s), v0 + 4);
    assert_int_equal(tg_store_tool_rule_add(f->s, &rules[0], &err), TG_STORE_EXISTS);
    assert_string_equal(err.msg, "tool rule deny \"delete_*\" for tenant \"acme\" already exists");
    assert_int_equal(tg_store_tool_rule_add(f->s, &rules[1], &err), TG_STORE_EXISTS);
    assert_string_equal(err.msg, "tool rule deny \"shell\" for all tenants already exists");
    assert_int_equal(policy_version(f->s), v0 + 4);

    tool_rules_t ts = {0};
    assert_int_equal(tg_store_tool_rule_list(f->s, NULL, collect_tool, &ts, &err), 0);
    assert_int_equal(ts.n, 4);
    assert_string_equal(ts.r[0].tenant, "*");
    assert_string_equal(ts.r[1].action, "allow");
    assert_string_equal(ts.r[1].pattern, "delete_*");
    assert_string_equal(ts.r[2].pattern, "github_*");
    assert_string_equal(ts.r[3].action, "deny");
    assert_true(ts.r[3].created_us > 0);
    memset(&ts, 0, sizeof ts);
    assert_int_equal(tg_store_tool_rule_list(f->s, "*", collect_tool, &ts, &err), 0);
    assert_int_equal(ts.n, 1);

    assert_int_equal(tg_store_tool_rule_rm(f->s, "acme", "allow", "delete_*", &err), 0);
    assert_int_equal(tg_store_tool_rule_rm(f->s, "acme", "allow", "delete_*", &err),
                     TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no tool rule allow \"delete_*\" for tenant \"acme\"");
    assert_int_equal(policy_version(f->s), v0 + 5);
    memset(&ts, 0, sizeof ts);
    assert_int_equal(tg_store_tool_rule_list(f->s, "acme", collect_tool, &ts, &err), 0);
    assert_int_equal(ts.n, 2);

    tg_tool_rule_row_t bad[] = {tool_make("acme", "block", "x"), tool_make("acme", "deny", ""),
                                tool_make("", "deny", "x")};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(tg_store_tool_rule_add(f->s, &bad[i], &err), -1);
}

/* A database at version 2 with rows in every table: opening it applies migration 3,
 * keeps every row (limits are rebuilt, usage_daily too) and fills the new columns. */
static void test_migrate_from_v2(void **state)
{
    fixture_t *f = *state;
    tg_store_close(f->s);
    f->s = NULL;
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db, tg_store_migrations_bootstrap, NULL, NULL, NULL), SQLITE_OK);
    for (int v = 0; v < 2; v++) {
        assert_int_equal(tg_store_migrations[v].version, v + 1);
        assert_int_equal(sqlite3_exec(db, tg_store_migrations[v].sql, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO schema_migrations VALUES (1, 'v1', 0), (2, 'v2', 0);"
                     "INSERT INTO tenants (id, name, created_us) VALUES ('old', 'Old Co', 1);"
                     "UPDATE meta SET value = 9 WHERE key = 'policy_version';"
                     "INSERT INTO limits VALUES ('old', 'tenant', '', 600, 60, 50, 4, 11),"
                     " ('old', 'route', 'chat', 5, 1, 0, 0, 12),"
                     " ('old', 'key', 'key_1', 0, 3600, 0, 0, 13);"
                     "INSERT INTO pauses VALUES ('old', 'billing', 14);"
                     "INSERT INTO ip_rules VALUES ('*', 'deny', '10.0.0.0/8', 15);"
                     /* 2026-03-01 01:00Z and 02:00Z, and 2026-03-02 03:00Z */
                     "INSERT INTO usage_events (id, ts_us, tenant, method, path, status, outcome,"
                     " latency_us, bytes_in, bytes_out, tokens_in, tokens_cached, cost_micros)"
                     " VALUES (1, 1772326800000000, 'old', 'POST', '/v1', 200, 'billable', 1, 10,"
                     " 20, 100, 40, 5), (2, 1772330400000000, 'old', 'POST', '/v1', 200,"
                     " 'billable', 1, 10, 20, 100, NULL, 5), (3, 1772420400000000, 'old', 'GET',"
                     " '/v1', 502, 'failed', 1, 0, 0, NULL, 3, 0);"
                     "INSERT INTO usage_daily (tenant_id, day, requests, billable, bytes_in,"
                     " bytes_out, tokens_in, cost_micros) VALUES ('old', '2026-03-01', 2, 2, 20,"
                     " 40, 200, 10);"
                     "INSERT INTO usage_daily (tenant_id, day, requests, failed) VALUES ('old',"
                     " '2026-03-02', 1, 1), ('old', '2025-01-01', 5, 5);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    tg_err_t err;
    assert_int_equal(tg_store_open(f->url, &f->s, &err), 0);
    assert_int_equal(policy_version(f->s), 9);
    policy_rows_t p = {0};
    assert_int_equal(tg_store_limit_list(f->s, NULL, collect_limit, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.lim[0].scope, "tenant");
    assert_int_equal(p.lim[0].limit, 600);
    assert_int_equal(p.lim[0].period_s, 60);
    assert_int_equal(p.lim[0].burst, 50);
    assert_int_equal(p.lim[0].concurrency, 4);
    assert_int_equal(p.lim[0].updated_us, 11);
    assert_int_equal(p.lim[0].tokens, 0);
    assert_int_equal(p.lim[0].tokens_period_s, 0);
    assert_string_equal(p.lim[1].value, "chat");
    assert_string_equal(p.lim[2].scope, "key");
    assert_int_equal(p.lim[2].period_s, 3600);
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_pause_list(f->s, collect_pause, &p, &err), 0);
    assert_int_equal(p.n, 1);
    memset(&p, 0, sizeof p);
    assert_int_equal(tg_store_ip_rule_list(f->s, NULL, collect_ip, &p, &err), 0);
    assert_int_equal(p.n, 1);

    rows_t rs;
    usage(f->s, TG_BY_DAY, "old", 0, 0, &rs);
    assert_int_equal(rs.n, 3);
    assert_string_equal(rs.r[0].group, "2025-01-01");
    assert_int_equal(rs.r[0].failed, 5);
    assert_string_equal(rs.r[1].group, "2026-03-01");
    assert_int_equal(rs.r[1].requests, 2);
    assert_int_equal(rs.r[1].tokens_in, 200);
    assert_int_equal(rs.r[1].cost_micros, 10);
    assert_int_equal(rs.r[2].failed, 1);

    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)tg_store_nmigrations);
    /* tokens_cached of the copied days: the sum over the events still stored. */
    assert_int_equal(raw_int(db, "SELECT tokens_cached FROM usage_daily WHERE day = "
                                 "'2026-03-01'"),
                     40);
    assert_int_equal(raw_int(db, "SELECT tokens_cached FROM usage_daily WHERE day = "
                                 "'2026-03-02'"),
                     3);
    assert_int_equal(raw_int(db, "SELECT tokens_cached FROM usage_daily WHERE day = "
                                 "'2025-01-01'"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM usage_events WHERE tokens_cache_write IS "
                                 "NULL AND rpc_method IS NULL AND price_flag IS NULL"),
                     3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('prices', "
                                 "'budgets', 'alerts', 'tool_rules')"),
                     4);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v2'"), 0);
    sqlite3_close(db);

    /* The upgraded tables take the new rows and keep counting. */
    tg_limit_row_t m = limit_make("old", "model", "gpt-4o", 0, 0, 0, 0);
    m.tokens = 1000;
    m.tokens_period_s = 60;
    assert_int_equal(tg_store_limit_set(f->s, &m, &err), 0);
    assert_int_equal(policy_version(f->s), 10);
    tg_event_t ev = ev_make(4, day_us("2026-03-01") + 5 * HOUR_US, "old", TG_OUTCOME_BILLABLE);
    ev.tokens_cached = 2;
    ev.cost_micros = 1;
    size_t ins;
    assert_int_equal(tg_store_append(f->s, &ev, 1, &ins, &err), 0);
    int64_t spend;
    assert_int_equal(tg_store_spend(f->s, "old", "2026-03-01", "2026-03-31", &spend, &err), 0);
    assert_int_equal(spend, 11);
    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT tokens_cached FROM usage_daily WHERE day = "
                                 "'2026-03-01'"),
                     42);
    sqlite3_close(db);
}

/* ---- what every list and every rule shares ------------------------------- */

/* A callback of each row type that counts its calls and stops the listing with 7. */
#define STOPPER(name, T)                                                                           \
    static int stop_##name(const T *r, void *ud)                                                   \
    {                                                                                              \
        (void)r;                                                                                   \
        (*(int *)ud)++;                                                                            \
        return 7;                                                                                  \
    }
STOPPER(tenant, tg_tenant_t)
STOPPER(key, tg_key_t)
STOPPER(auth, tg_auth_row_t)
STOPPER(limit, tg_limit_row_t)
STOPPER(pause, tg_pause_row_t)
STOPPER(ip, tg_ip_rule_row_t)
STOPPER(price, tg_price_row_t)
STOPPER(budget, tg_budget_row_t)
STOPPER(alert, tg_alert_row_t)
STOPPER(tool, tg_tool_rule_row_t)

/* Every list hands its rows to the callback until it returns nonzero, which the list
 * returns as is; a list that fails says which list in its error. */
static void test_lists_stop_and_fail(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "beta", "", &err), 0);
    for (int i = 0; i < 2; i++) {
        tg_key_t k;
        memset(&k, 0, sizeof k);
        snprintf(k.id, sizeof k.id, "key_%d", i);
        snprintf(k.tenant_id, sizeof k.tenant_id, "acme");
        memset(k.sha256, i + 1, sizeof k.sha256);
        assert_int_equal(tg_store_key_add(f->s, &k, &err), 0);
        tg_limit_row_t l;
        memset(&l, 0, sizeof l);
        snprintf(l.tenant, sizeof l.tenant, "%s", i ? "beta" : "acme");
        snprintf(l.scope, sizeof l.scope, "tenant");
        l.concurrency = 1;
        assert_int_equal(tg_store_limit_set(f->s, &l, &err), 0);
        assert_int_equal(tg_store_pause_set(f->s, i ? "beta" : "acme", "", WALL, &err), 0);
        tg_ip_rule_row_t ip = ip_make("acme", i ? "allow" : "deny", "10.0.0.0/8");
        assert_int_equal(tg_store_ip_rule_add(f->s, &ip, &err), 0);
        tg_price_row_t p;
        memset(&p, 0, sizeof p);
        snprintf(p.meter, sizeof p.meter, "tool");
        snprintf(p.name, sizeof p.name, "t%d", i);
        p.input_micros = p.output_micros = p.cached_micros = p.cache_write_micros = -1;
        p.request_micros = p.gb_micros = -1;
        p.call_micros = 1;
        assert_int_equal(tg_store_price_set(f->s, &p, &err), 0);
        tg_budget_row_t b;
        memset(&b, 0, sizeof b);
        snprintf(b.tenant, sizeof b.tenant, "%s", i ? "beta" : "acme");
        b.monthly_micros = 1;
        assert_int_equal(tg_store_budget_set(f->s, &b, &err), 0);
        tg_alert_row_t a;
        memset(&a, 0, sizeof a);
        snprintf(a.kind, sizeof a.kind, "budget");
        snprintf(a.tenant, sizeof a.tenant, "acme");
        snprintf(a.period, sizeof a.period, "2026-0%d", i + 1);
        assert_int_equal(tg_store_alert_add(f->s, &a, NULL, &err), 0);
        tg_tool_rule_row_t t = tool_make("acme", i ? "allow" : "deny", "x");
        assert_int_equal(tg_store_tool_rule_add(f->s, &t, &err), 0);
    }
    int n = 0;
    assert_int_equal(tg_store_tenant_list(f->s, stop_tenant, &n, &err), 7);
    assert_int_equal(tg_store_key_list(f->s, NULL, stop_key, &n, &err), 7);
    assert_int_equal(tg_store_key_list(f->s, "acme", stop_key, &n, &err), 7);
    assert_int_equal(tg_store_auth_load(f->s, stop_auth, &n, &err), 7);
    assert_int_equal(tg_store_limit_list(f->s, NULL, stop_limit, &n, &err), 7);
    assert_int_equal(tg_store_pause_list(f->s, stop_pause, &n, &err), 7);
    assert_int_equal(tg_store_ip_rule_list(f->s, NULL, stop_ip, &n, &err), 7);
    assert_int_equal(tg_store_price_list(f->s, stop_price, &n, &err), 7);
    assert_int_equal(tg_store_budget_list(f->s, NULL, stop_budget, &n, &err), 7);
    assert_int_equal(tg_store_alert_list(f->s, "acme", stop_alert, &n, &err), 7);
    assert_int_equal(tg_store_tool_rule_list(f->s, "acme", stop_tool, &n, &err), 7);
    assert_int_equal(n, 11); /* one call each */

    /* With its table gone, a list fails with its own name; the statements are prepared
     * already, so the error is the step's. SQLite's words: PostgreSQL says it otherwise. */
    if (f->pg) return;
    sqlite3 *db = raw_open(f);
    static const char *const tables[] = {"alerts", "ip_rules", "tool_rules", "prices", "budgets",
                                         "pauses", "limits",   "api_keys",   "tenants"};
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL), SQLITE_OK);
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "DROP TABLE %s", tables[i]);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
    assert_int_equal(tg_store_tenant_list(f->s, stop_tenant, &n, &err), -1);
    assert_string_equal(err.msg, "tenant list: no such table: tenants");
    assert_int_equal(tg_store_key_list(f->s, "acme", stop_key, &n, &err), -1);
    assert_string_equal(err.msg, "key list: no such table: api_keys");
    assert_int_equal(tg_store_auth_load(f->s, stop_auth, &n, &err), -1);
    assert_string_equal(err.msg, "auth load: no such table: api_keys");
    assert_int_equal(tg_store_limit_list(f->s, NULL, stop_limit, &n, &err), -1);
    assert_string_equal(err.msg, "limit list: no such table: limits");
    assert_int_equal(tg_store_pause_list(f->s, stop_pause, &n, &err), -1);
    assert_string_equal(err.msg, "pause list: no such table: pauses");
    assert_int_equal(tg_store_ip_rule_list(f->s, NULL, stop_ip, &n, &err), -1);
    assert_string_equal(err.msg, "ip rule list: no such table: ip_rules");
    assert_int_equal(tg_store_price_list(f->s, stop_price, &n, &err), -1);
    assert_string_equal(err.msg, "price list: no such table: prices");
    assert_int_equal(tg_store_budget_list(f->s, NULL, stop_budget, &n, &err), -1);
    assert_string_equal(err.msg, "budget list: no such table: budgets");
    assert_int_equal(tg_store_alert_list(f->s, NULL, stop_alert, &n, &err), -1);
    assert_string_equal(err.msg, "alert list: no such table: alerts");
    assert_int_equal(tg_store_tool_rule_list(f->s, NULL, stop_tool, &n, &err), -1);
    assert_string_equal(err.msg, "tool rule list: no such table: tool_rules");
    assert_int_equal(n, 11);
}

/* IP and tool rules refuse the same bad rows with the same words, each naming its own
 * kind of value; an action filling its field without a NUL is read to the field's end. */
static void test_rule_messages(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_ip_rule_row_t ip = ip_make("", "deny", "10.0.0.0/8");
    assert_int_equal(tg_store_ip_rule_add(f->s, &ip, &err), -1);
    assert_string_equal(err.msg, "ip rule add: empty tenant");
    ip = ip_make("acme", "block", "10.0.0.0/8");
    assert_int_equal(tg_store_ip_rule_add(f->s, &ip, &err), -1);
    assert_string_equal(err.msg, "ip rule add: invalid action \"block\" (expected allow or deny)");
    memcpy(ip.action, "allowxyz", sizeof ip.action);
    assert_int_equal(tg_store_ip_rule_add(f->s, &ip, &err), -1);
    assert_string_equal(err.msg,
                        "ip rule add: invalid action \"allowxyz\" (expected allow or deny)");
    ip = ip_make("acme", "deny", "");
    assert_int_equal(tg_store_ip_rule_add(f->s, &ip, &err), -1);
    assert_string_equal(err.msg, "ip rule add: empty CIDR");
    assert_int_equal(tg_store_ip_rule_rm(f->s, "*", "allow", "10.0.0.0/8", &err),
                     TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no ip rule allow 10.0.0.0/8 for all tenants");

    tg_tool_rule_row_t t = tool_make("", "deny", "x");
    assert_int_equal(tg_store_tool_rule_add(f->s, &t, &err), -1);
    assert_string_equal(err.msg, "tool rule add: empty tenant");
    t = tool_make("acme", "block", "x");
    assert_int_equal(tg_store_tool_rule_add(f->s, &t, &err), -1);
    assert_string_equal(err.msg,
                        "tool rule add: invalid action \"block\" (expected allow or deny)");
    t = tool_make("acme", "deny", "");
    assert_int_equal(tg_store_tool_rule_add(f->s, &t, &err), -1);
    assert_string_equal(err.msg, "tool rule add: empty pattern");
    assert_int_equal(tg_store_tool_rule_rm(f->s, "*", "deny", "a b", &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no tool rule deny \"a b\" for all tenants");

    /* A value filling its field is used to the field's end, in the store and the message. */
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), 0);
    memset(t.pattern, 'p', sizeof t.pattern);
    assert_int_equal(tg_store_tool_rule_add(f->s, &t, &err), 0);
    assert_int_equal(tg_store_tool_rule_add(f->s, &t, &err), TG_STORE_EXISTS);
    char want[256];
    snprintf(want, sizeof want, "tool rule deny \"%.*s\" for tenant \"acme\" already exists",
             (int)sizeof t.pattern, t.pattern);
    assert_string_equal(err.msg, want);
    tool_rules_t ts = {0};
    assert_int_equal(tg_store_tool_rule_list(f->s, "acme", collect_tool, &ts, &err), 0);
    assert_int_equal(ts.n, 1);
    assert_int_equal(strlen(ts.r[0].pattern), sizeof t.pattern - 1); /* copy_col's cap */
}

/* Without their meta rows, the versions are an error rather than a version that never
 * moves. */
static void test_versions_without_meta(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t v;
    assert_int_equal(tg_store_auth_version(f->s, &v, &err), 0);
    assert_int_equal(tg_store_policy_version(f->s, &v, &err), 0);
    both_exec(f, "DELETE FROM meta");
    assert_int_equal(tg_store_auth_version(f->s, &v, &err), -1);
    assert_string_equal(err.msg, "auth version: meta row missing");
    assert_int_equal(tg_store_policy_version(f->s, &v, &err), -1);
    assert_string_equal(err.msg, "policy version: meta row missing");
}

/* ---- row mappings (sqlite_int.h) -------------------------------------------------- */

/* The map reading from `from` (a table), through every concern's list. */
static const tg_rowmap_t *find_map(const char *from)
{
    for (const tg_rowmap_t *const *const *l = sq_maps; *l; l++)
        for (const tg_rowmap_t *const *mp = *l; *mp; mp++)
            if (strcmp((*mp)->from, from) == 0) return *mp;
    fail_msg("no map reads from %s", from);
    return NULL;
}

/* Prepares "SELECT <the map's columns> FROM <its from> LIMIT 0" on db: what the store's
 * own statements select, against the schema the migrations left. 0, or the SQLite code
 * with its message in msg. */
static int map_prepares(sqlite3 *db, const tg_rowmap_t *m, char *msg, size_t cap)
{
    char cols[1024], sql[1300];
    assert_true(tg_rowmap_select(m, "''", cols, sizeof cols) > 0);
    snprintf(sql, sizeof sql, "SELECT %s FROM %s LIMIT 0", cols, m->from);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    snprintf(msg, cap, "%s: %s", m->from, rc == SQLITE_OK ? "ok" : sqlite3_errmsg(db));
    if (rc == SQLITE_OK) assert_int_equal(sqlite3_column_count(st), m->ncols);
    sqlite3_finalize(st);
    return rc;
}

/* Every column name of every row mapping exists in the migrated schema (a renamed
 * column fails here), and each column reads into its own field, inside the row. */
static void test_row_maps_match_schema(void **state)
{
    fixture_t *f = *state;
    sqlite3 *db = raw_open(f);
    size_t nmaps = 0;
    for (const tg_rowmap_t *const *const *l = sq_maps; *l; l++)
        for (const tg_rowmap_t *const *mp = *l; *mp; mp++, nmaps++) {
            const tg_rowmap_t *m = *mp;
            char msg[256];
            int rc = map_prepares(db, m, msg, sizeof msg);
            if (rc != SQLITE_OK) fprintf(stderr, "%s\n", msg);
            assert_int_equal(rc, SQLITE_OK);
            assert_true(m->ncols > 0);
            for (int i = 0; i < m->ncols; i++) {
                const tg_col_t *c = &m->cols[i];
                if (c->kind == TG_COL_CUSTOM) {
                    assert_non_null(c->read);
                    continue;
                }
                if (c->kind == TG_COL_ENUM) assert_non_null(c->names);
                size_t width = c->kind == TG_COL_STR || c->kind == TG_COL_BLOB_PTR ? sizeof(void *)
                               : c->kind == TG_COL_ENUM                            ? sizeof(int32_t)
                                                                                   : c->size;
                assert_true(c->off + width <= m->row_size);
                for (int j = 0; j < i; j++)
                    if (m->cols[j].kind != TG_COL_CUSTOM)
                        assert_int_not_equal(m->cols[j].off, c->off);
            }
        }
    /* the 15 row types (usage read two ways), issue 12's tenant plan, invoice, billed meter,
     * invoice line and whole event, and issue 14's admin token: none left out */
    assert_int_equal(nmaps, 22);
    sqlite3_close(db);
}

/* The check above can fail: after a column is renamed, the map no longer prepares, and
 * the store's list reports the missing column instead of reading a wrong one. */
static void test_row_map_renamed_column(void **state)
{
    fixture_t *f = *state;
    sqlite3 *db = raw_open(f);
    assert_int_equal(
        sqlite3_exec(db, "ALTER TABLE limits RENAME COLUMN burst TO burst_x", NULL, NULL, NULL),
        SQLITE_OK);
    char msg[256];
    assert_int_not_equal(map_prepares(db, find_map("limits"), msg, sizeof msg), SQLITE_OK);
    assert_non_null(strstr(msg, "no such column: burst"));
    assert_int_equal(map_prepares(db, find_map("pauses"), msg, sizeof msg), SQLITE_OK);
    sqlite3_close(db);

    tg_store_t *s2;
    tg_err_t err;
    assert_int_equal(tg_store_open(f->url, &s2, &err), 0);
    assert_int_equal(tg_store_limit_list(s2, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no such column: burst"));
    tg_store_close(s2);
}

/* The column list: names in order, the report's group for the NULL name, and -1 rather
 * than a cut list when the buffer is short. */
static void test_row_map_select_list(void **state)
{
    (void)state;
    char buf[512];
    assert_int_equal(tg_rowmap_select(find_map("pauses"), NULL, buf, sizeof buf),
                     (int)strlen("tenant_id, reason, created_us"));
    assert_string_equal(buf, "tenant_id, reason, created_us");
    assert_true(tg_rowmap_select(find_map("usage_events"), "coalesce(route, '')", buf, sizeof buf) >
                0);
    assert_non_null(strstr(buf, "tenant, coalesce(route, '') AS grp, sum(requests), "));
    assert_int_equal(tg_rowmap_select(find_map("pauses"), NULL, buf, 10), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_dispatch),
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
        TB_BOTH(test_tenant_crud),
        TB_BOTH(test_key_crud),
        TB_BOTH(test_key_last_used),
        TB_BOTH(test_auth_version_two_connections),
        TB_BOTH(test_append_aggregates),
        TB_BOTH(test_append_flood_aggregate),
        TB_BOTH(test_append_replay_counts_nothing),
        TB_BOTH(test_append_id_collision_keeps_both),
        TB_BOTH(test_append_mixed_large_batch),
        TB_BOTH(test_append_nearly_sorted_batch),
        cmocka_unit_test_setup_teardown(test_append_busy_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_paces_between_statements, setup, teardown),
        TB_BOTH(test_purge),
        TB_BOTH(test_usage_groupings),
        TB_BOTH(test_policy_version_two_connections),
        TB_BOTH(test_policy_version_concurrent),
        TB_BOTH(test_limit_set_replace_rm_list),
        TB_BOTH(test_pause_global_and_tenant),
        TB_BOTH(test_ip_rules),
        cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
        TB_BOTH(test_append_metering_columns),
        TB_BOTH(test_limit_tokens_and_model_scope),
        TB_BOTH(test_prices_effective_dating),
        TB_BOTH(test_budgets),
        TB_BOTH(test_alerts_idempotent),
        TB_BOTH(test_spend_month),
        TB_BOTH(test_tool_rules),
        cmocka_unit_test_setup_teardown(test_migrate_from_v2, setup, teardown),
        TB_BOTH(test_lists_stop_and_fail),
        TB_BOTH(test_rule_messages),
        TB_BOTH(test_versions_without_meta),
        cmocka_unit_test_setup_teardown(test_row_maps_match_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_map_renamed_column, setup, teardown),
        cmocka_unit_test(test_row_map_select_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
