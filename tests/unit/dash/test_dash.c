/* Tests for src/dash/dash.c (the dashboard's JSON) over a real migrated SQLite store with
 * events appended at fixed instants around a fixed "now": the overview's per-tenant totals,
 * p95 (nearest rank), budget and month's spend, ranges; a tenant's minute and day series,
 * limits with their use, rejections; unknown tenants and paths. Also the store's dashboard
 * connection refusing writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "dash/dash.h"
#include "util/clock.h"

#define S 1000000LL

typedef struct fixture {
    char dir[64], path[128], url[160];
    tg_store_t *s;
    int64_t now;
} fixture_t;

static int64_t at(const char *day, int h, int m, int sec)
{
    int64_t us = 0;
    assert_int_equal(tg_parse_day(day, &us), 0);
    return us + ((int64_t)h * 3600 + m * 60 + sec) * S;
}

static int64_t next_id = 1;

static void add(fixture_t *f, int64_t ts, const char *tenant, tg_outcome_t o, int64_t latency,
                int64_t tin, int64_t tout, int64_t cost, const char *reason)
{
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.id = next_id++;
    e.ts_us = ts;
    e.latency_us = latency;
    e.tokens_in = tin;
    e.tokens_out = tout;
    e.tokens_cached = e.tokens_cache_write = TG_TOKENS_UNKNOWN;
    e.cost_micros = cost;
    e.outcome = o;
    e.status = o == TG_OUTCOME_BILLABLE ? 200 : o == TG_OUTCOME_FAILED ? 502 : 429;
    snprintf(e.tenant, sizeof e.tenant, "%s", tenant);
    snprintf(e.method, sizeof e.method, "POST");
    snprintf(e.path, sizeof e.path, "/v1/chat/completions");
    snprintf(e.request_id, sizeof e.request_id, "req-%lld", (long long)e.id);
    if (reason) snprintf(e.reason, sizeof e.reason, "%s", reason);
    size_t ins = 0;
    tg_err_t err;
    assert_int_equal(tg_store_append(f->s, &e, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_test_dash_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->path);
    tg_err_t err;
    if (tg_store_open(f->url, &f->s, &err) != 0) return -1;
    f->now = at("2026-03-15", 12, 30, 30);
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "<b>Acme</b>", &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "bob", "Bob", &err), 0);
    assert_int_equal(tg_store_tenant_add(f->s, "quiet", "Quiet", &err), 0);
    /* acme today: 20 billable in the 12:20 minute, latencies 1..20 ms; 2 failed at 12:28:30
     * and 1 rejected at 12:30:00, 100 us each. Yesterday: 1 billable costing 7. */
    for (int i = 0; i < 20; i++)
        add(f, f->now - 10 * 60 * S + i * S, "acme", TG_OUTCOME_BILLABLE, (i + 1) * 1000, 10, 5,
            100, NULL);
    add(f, f->now - 120 * S, "acme", TG_OUTCOME_FAILED, 100, TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN,
        0, "upstream_error");
    add(f, f->now - 120 * S, "acme", TG_OUTCOME_FAILED, 100, TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN,
        0, "upstream_error");
    add(f, f->now - 30 * S, "acme", TG_OUTCOME_REJECTED, 100, TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN,
        0, "rate_limited");
    add(f, at("2026-03-14", 9, 0, 0), "acme", TG_OUTCOME_BILLABLE, 5000, 1, 1, 7, NULL);
    add(f, f->now - 5 * S, "bob", TG_OUTCOME_BILLABLE, 4000, 0, 0, 3, NULL);
    /* After now: never counted. */
    add(f, f->now + 10 * S, "acme", TG_OUTCOME_BILLABLE, 1, 0, 0, 1000, NULL);
    tg_budget_row_t b = {.tenant = "acme",
                         .monthly_micros = 1000000,
                         .hard = 1,
                         .thresholds = {80, 100},
                         .nthresholds = 2,
                         .updated_us = f->now};
    assert_int_equal(tg_store_budget_set(f->s, &b, &err), 0);
    tg_limit_row_t l = {.tenant = "acme",
                        .scope = "tenant",
                        .limit = 100,
                        .period_s = 60,
                        .tokens = 1000,
                        .tokens_period_s = 3600,
                        .updated_us = f->now};
    assert_int_equal(tg_store_limit_set(f->s, &l, &err), 0);
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

static json_int_t num(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) {
        if (tok[0] >= '0' && tok[0] <= '9')
            cur = json_array_get(cur, (size_t)atoi(tok));
        else
            cur = json_object_get(cur, tok);
        assert_non_null(cur);
    }
    assert_true(json_is_integer(cur));
    return json_integer_value(cur);
}

static void test_overview_today(void **state)
{
    fixture_t *f = *state;
    int status = 0;
    json_t *o = tg_dash_answer(f->s, "overview", NULL, f->now, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(o, "range")), "today");
    assert_int_equal(num(o, "from_us"), at("2026-03-15", 0, 0, 0));
    json_t *ts = json_object_get(o, "tenants");
    assert_int_equal(json_array_size(ts), 3); /* quiet has no event: listed with zeros */
    json_t *acme = json_array_get(ts, 0);
    assert_string_equal(json_string_value(json_object_get(acme, "id")), "acme");
    assert_string_equal(json_string_value(json_object_get(acme, "name")), "<b>Acme</b>");
    assert_int_equal(num(acme, "range.requests"), 23);
    assert_int_equal(num(acme, "range.billable"), 20);
    assert_int_equal(num(acme, "range.failed"), 2);
    assert_int_equal(num(acme, "range.rejected"), 1);
    assert_int_equal(num(acme, "range.tokens_in"), 200);
    assert_int_equal(num(acme, "range.tokens_out"), 100);
    assert_int_equal(num(acme, "range.cost_micros"), 2000);
    /* 23 samples: 3 x 100 us, then 1..20 ms; rank ceil(0.95 * 23) = 22 is 19 ms. */
    assert_int_equal(num(acme, "range.latency_p95_us"), 19000);
    assert_int_equal(num(acme, "budget.monthly_micros"), 1000000);
    /* usage_daily of the month to date: yesterday too, and all of today as stored (the
     * event dated after now included, as `tollgate budget show` counts it). */
    assert_int_equal(num(acme, "budget.spend_micros"), 3007);
    assert_true(json_real_value(json_object_get(json_object_get(acme, "budget"), "used")) ==
                3007.0 / 1000000.0);
    json_t *bob = json_array_get(ts, 1);
    assert_int_equal(num(bob, "range.requests"), 1);
    assert_int_equal(num(bob, "range.latency_p95_us"), 4000);
    assert_true(json_is_null(json_object_get(bob, "budget")));
    json_t *quiet = json_array_get(ts, 2);
    assert_int_equal(num(quiet, "range.requests"), 0);
    assert_true(json_is_null(json_object_get(json_object_get(quiet, "range"), "latency_p95_us")));
    assert_int_equal(num(o, "totals.requests"), 24);
    assert_int_equal(num(o, "totals.cost_micros"), 2003);
    json_decref(o);
}

static void test_overview_ranges(void **state)
{
    fixture_t *f = *state;
    int status = 0;
    json_t *o = tg_dash_answer(f->s, "overview", "range=30d", f->now, &status);
    assert_int_equal(status, 200);
    assert_int_equal(num(o, "tenants.0.range.requests"), 24); /* yesterday's too */
    json_decref(o);
    o = tg_dash_answer(f->s, "overview", "x=1&range=1h", f->now, &status);
    assert_int_equal(status, 200);
    assert_int_equal(num(o, "tenants.0.range.requests"), 23);
    json_decref(o);
    o = tg_dash_answer(f->s, "overview", "range=2y", f->now, &status);
    assert_int_equal(status, 400);
    json_decref(o);
    o = tg_dash_answer(f->s, "overview", "range=", f->now, &status);
    assert_int_equal(status, 400);
    json_decref(o);
}

static void test_tenant(void **state)
{
    fixture_t *f = *state;
    int status = 0;
    json_t *o = tg_dash_answer(f->s, "tenant/acme", NULL, f->now, &status);
    assert_int_equal(status, 200);
    json_t *pts = json_object_get(json_object_get(o, "minutes"), "points");
    assert_int_equal(json_array_size(pts), 60);
    /* The 60 minutes end with 12:30: 11:31 is point 0, 12:20 point 49. */
    assert_int_equal(num(o, "minutes.from_us"), at("2026-03-15", 11, 31, 0));
    assert_int_equal(num(o, "minutes.points.49.requests"), 20);
    assert_int_equal(num(o, "minutes.points.49.cost_micros"), 2000);
    assert_int_equal(num(o, "minutes.points.49.tokens_in"), 200);
    assert_int_equal(num(o, "minutes.points.57.failed"), 2);
    assert_int_equal(num(o, "minutes.points.59.rejected"), 1);
    assert_int_equal(num(o, "minutes.points.59.t"), at("2026-03-15", 12, 30, 0));
    json_int_t sum = 0;
    for (size_t i = 0; i < 60; i++)
        sum += json_integer_value(json_object_get(json_array_get(pts, i), "requests"));
    assert_int_equal(sum, 23);
    json_t *days = json_object_get(json_object_get(o, "days"), "points");
    assert_int_equal(json_array_size(days), 30);
    assert_string_equal(json_string_value(json_object_get(json_array_get(days, 29), "day")),
                        "2026-03-15");
    assert_string_equal(json_string_value(json_object_get(json_array_get(days, 0), "day")),
                        "2026-02-14");
    assert_int_equal(num(o, "days.points.29.requests"), 24); /* usage_daily: the future one too */
    assert_int_equal(num(o, "days.points.28.requests"), 1);
    assert_int_equal(num(o, "days.points.28.cost_micros"), 7);
    assert_int_equal(num(o, "today.requests"), 23);
    assert_int_equal(num(o, "budget.spend_micros"), 3007);
    /* The tenant rule: in the last 60 s only the rejection, which the limiter did not
     * count; tokens of the hour's admitted requests. */
    assert_int_equal(json_array_size(json_object_get(o, "limits")), 1);
    assert_int_equal(num(o, "limits.0.requests"), 100);
    assert_int_equal(num(o, "limits.0.used_requests"), 0);
    assert_int_equal(num(o, "limits.0.used_tokens"), 300);
    json_t *rej = json_object_get(o, "rejections");
    assert_int_equal(json_array_size(rej), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rej, 0), "reason")),
                        "rate_limited");
    assert_int_equal(num(o, "rejections.0.status"), 429);
    json_decref(o);
}

static void test_unknown(void **state)
{
    fixture_t *f = *state;
    int status = 0;
    json_t *o = tg_dash_answer(f->s, "tenant/nobody", NULL, f->now, &status);
    assert_int_equal(status, 404);
    json_decref(o);
    o = tg_dash_answer(f->s, "tenant/quiet", NULL, f->now, &status); /* a row, no events */
    assert_int_equal(status, 200);
    assert_int_equal(num(o, "today.requests"), 0);
    json_decref(o);
    o = tg_dash_answer(f->s, "tenants", NULL, f->now, &status);
    assert_int_equal(status, 404);
    json_decref(o);
}

/* Text that is not UTF-8 (a raw request path, a name given to the CLI): jansson refuses it,
 * and the rejection vanished from the list (the tenant page's name: no answer at all). */
static void test_not_utf8(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    add(f, f->now - 1 * S, "acme", TG_OUTCOME_REJECTED, 100, TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN,
        0, "rate_limited");
    assert_int_equal(tg_store_tenant_add(f->s, "bin", "N\xffme", &err), 0);
    /* the last event's path, raw bytes as a client may send them */
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE usage_events SET path = '/a' || X'FFFE' WHERE id = %lld",
             (long long)(next_id - 1));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    int status = 0;
    json_t *o = tg_dash_answer(f->s, "tenant/acme", NULL, f->now, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(json_object_get(o, "rejections")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(o, "rejections"), 0), "path")),
                        "/a??");
    json_decref(o);
    o = tg_dash_answer(f->s, "tenant/bin", NULL, f->now, &status);
    assert_non_null(o);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "tenant"), "name")),
                        "N?me");
    json_decref(o);
    o = tg_dash_answer(f->s, "overview", NULL, f->now, &status);
    assert_int_equal(status, 200);
    json_t *row = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(o, "tenants"), i,
                       r) if (strcmp(json_string_value(json_object_get(r, "id")), "bin") == 0) row =
        r;
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "name")), "N?me");
    json_decref(o);
}

/* A fresh store (no tenant, no event): an empty overview, 200. It sorted its rows with
 * qsort(NULL, 0, ...), undefined behaviour that aborted the sanitizer build. */
static void test_overview_empty(void **state)
{
    (void)state;
    char dir[64] = "/tmp/tg_test_dash_empty_XXXXXX", path[128], url[160];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", path);
    tg_store_t *s = NULL;
    tg_err_t err;
    assert_int_equal(tg_store_open(url, &s, &err), 0);
    int status = 0;
    json_t *o = tg_dash_answer(s, "overview", NULL, at("2026-03-15", 12, 0, 0), &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(json_object_get(o, "tenants")), 0);
    assert_int_equal(num(o, "totals.requests"), 0);
    json_decref(o);
    tg_store_close(s);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* A tenant id with events but no row (a removed tenant): listed, in id order. */
static void test_order(void **state)
{
    fixture_t *f = *state;
    add(f, f->now - 1 * S, "0rphan", TG_OUTCOME_BILLABLE, 10, 0, 0, 0, NULL);
    int status = 0;
    json_t *o = tg_dash_answer(f->s, "overview", NULL, f->now, &status);
    assert_int_equal(status, 200);
    json_t *ts = json_object_get(o, "tenants");
    assert_int_equal(json_array_size(ts), 4);
    const char *want[] = {"0rphan", "acme", "bob", "quiet"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(ts, i), "id")),
                            want[i]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ts, 0), "status")),
                        "unknown");
    json_decref(o);
}

static void test_read_only(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    assert_int_equal(tg_store_dash_read_only(f->s, &err), 0);
    assert_int_not_equal(tg_store_tenant_add(f->s, "new", "New", &err), 0);
    int status = 0;
    json_t *o = tg_dash_answer(f->s, "overview", NULL, f->now, &status);
    assert_int_equal(status, 200);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_overview_today, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overview_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test(test_overview_empty),
        cmocka_unit_test_setup_teardown(test_not_utf8, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
