/* Tests for src/store/sqlite_invoices.c and pg_invoices.c over a real migrated store of
 * each backend (TB_BOTH; the migration gap is SQLite's): plan versions written
 * and read back whole (meters in order, tiers with an open end), the version in force at
 * an instant, removal; tenants' plans; closing a month (its rows frozen, a second close
 * refused and writing nothing, earlier months' billed meters moved); the per-(model, tool)
 * usage sums; the event range read whole for the export. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store/backends.h"
#include "store/store.h"
#include "util/clock.h"

#define S 1000000LL

/* The store of the running test (backends.h gives each test a fresh one). */
static tg_store_t *s;

static tg_store_t *use(void **state)
{
    return s = ((tb_store_t *)*state)->s;
}

static int put_events(const tg_event_t *e, size_t n, tg_err_t *err)
{
    return tb_append(s, e, n, err);
}

static int64_t day(const char *d)
{
    int64_t us;
    assert_int_equal(tg_parse_day(d, &us), 0);
    return us;
}

static void make_plan(tg_plan_t *p, const char *name, const char *from, int64_t base)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->effective_us = day(from);
    p->base_micros = base;
    tg_plan_meter_t *m = &p->meters[p->nmeters++];
    m->meter = TG_PMETER_BILLABLE;
    m->model = TG_PMODEL_GRADUATED;
    m->included = 7;
    m->ntiers = 2;
    m->tiers[0] = (tg_plan_tier_t){1000, 3 * S};
    m->tiers[1] = (tg_plan_tier_t){-1, 2 * S};
    m = &p->meters[p->nmeters++];
    m->meter = TG_PMETER_TOKENS_IN;
    m->model = TG_PMODEL_FLAT;
    m->flat_micros = 20 * S;
    snprintf(m->match, sizeof m->match, "gpt-4o");
}

static int count_plans(const tg_plan_t *p, void *ud)
{
    (void)p;
    (*(int *)ud)++;
    return 0;
}

static void test_plans(void **state)
{
    use(state);
    tg_err_t err;
    static tg_plan_t p, q, got;
    make_plan(&p, "pro", "2026-10-01", 49 * S);
    assert_int_equal(tg_store_plan_set(s, &p, &err), 0);
    make_plan(&q, "pro", "2026-12-01", 59 * S);
    q.nmeters = 1;
    assert_int_equal(tg_store_plan_set(s, &q, &err), 0);

    assert_int_equal(tg_store_plan_get(s, "pro", day("2026-09-30"), &got, &err), TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_plan_get(s, "pro", day("2026-11-15"), &got, &err), 0);
    assert_int_equal(got.effective_us, p.effective_us);
    assert_int_equal(got.base_micros, 49 * S);
    assert_int_equal(got.nmeters, 2);
    assert_int_equal(got.meters[0].meter, TG_PMETER_BILLABLE);
    assert_int_equal(got.meters[0].model, TG_PMODEL_GRADUATED);
    assert_int_equal(got.meters[0].included, 7);
    assert_int_equal(got.meters[0].ntiers, 2);
    assert_int_equal(got.meters[0].tiers[0].up_to, 1000);
    assert_int_equal(got.meters[0].tiers[1].up_to, -1);
    assert_int_equal(got.meters[0].tiers[1].unit_micros, 2 * S);
    assert_int_equal(got.meters[1].meter, TG_PMETER_TOKENS_IN);
    assert_string_equal(got.meters[1].match, "gpt-4o");
    assert_int_equal(got.meters[1].flat_micros, 20 * S);
    assert_int_equal(tg_store_plan_get(s, "pro", day("2026-12-01"), &got, &err), 0);
    assert_int_equal(got.base_micros, 59 * S);
    assert_int_equal(got.nmeters, 1);

    /* the same version again replaces it whole: meters and tiers too */
    p.nmeters = 1;
    p.meters[0].ntiers = 1;
    p.meters[0].tiers[0] = (tg_plan_tier_t){-1, 5};
    assert_int_equal(tg_store_plan_set(s, &p, &err), 0);
    assert_int_equal(tg_store_plan_get(s, "pro", day("2026-10-01"), &got, &err), 0);
    assert_int_equal(got.nmeters, 1);
    assert_int_equal(got.meters[0].ntiers, 1);
    assert_int_equal(got.meters[0].tiers[0].unit_micros, 5);

    int n = 0;
    assert_int_equal(tg_store_plan_list(s, NULL, count_plans, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(tg_store_plan_rm(s, "pro", day("2026-12-01"), &err), 0);
    assert_int_equal(tg_store_plan_rm(s, "pro", day("2026-12-01"), &err), TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_plan_get(s, "pro", day("2027-01-01"), &got, &err), 0);
    assert_int_equal(got.base_micros, 49 * S); /* the earlier version is in force again */
    assert_int_equal(tg_store_plan_rm(s, "pro", -1, &err), 0);
    n = 0;
    assert_int_equal(tg_store_plan_list(s, "pro", count_plans, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_store_plan_rm(s, "nope", -1, &err), TG_STORE_NOTFOUND);
}

static int collect_tp(const tg_tenant_plan_row_t *r, void *ud)
{
    char *buf = ud;
    strcat(buf, r->from_month);
    strcat(buf, "=");
    strcat(buf, r->plan);
    strcat(buf, ";");
    return 0;
}

static void test_tenant_plans(void **state)
{
    use(state);
    tg_err_t err;
    tg_tenant_plan_row_t r = {.tenant = "acme", .from_month = "2026-11", .plan = "pro"};
    assert_int_equal(tg_store_tenant_plan_set(s, &r, &err), 0);
    snprintf(r.from_month, sizeof r.from_month, "2026-09");
    assert_int_equal(tg_store_tenant_plan_set(s, &r, &err), 0);
    snprintf(r.plan, sizeof r.plan, "basic"); /* replaces 2026-09 */
    assert_int_equal(tg_store_tenant_plan_set(s, &r, &err), 0);
    char buf[256] = "";
    assert_int_equal(tg_store_tenant_plan_list(s, "acme", collect_tp, buf, &err), 0);
    assert_string_equal(buf, "2026-09=basic;2026-11=pro;");
    assert_int_equal(tg_store_tenant_plan_rm(s, "acme", "2026-09", &err), 0);
    assert_int_equal(tg_store_tenant_plan_rm(s, "acme", "2026-09", &err), TG_STORE_NOTFOUND);
    buf[0] = '\0';
    assert_int_equal(tg_store_tenant_plan_list(s, NULL, collect_tp, buf, &err), 0);
    assert_string_equal(buf, "2026-11=pro;");
}

static int collect_line(const tg_invoice_line_t *l, void *ud)
{
    tg_invoice_line_t *v = ud;
    int i = 0;
    while (v[i].scale != -7)
        i++;
    v[i] = *l;
    v[i + 1].scale = -7;
    return 0;
}

static int collect_billed(const tg_invoice_billed_t *b, void *ud)
{
    tg_invoice_billed_t *v = ud;
    int i = 0;
    while (v[i].measured != -7)
        i++;
    v[i] = *b;
    v[i + 1].measured = -7;
    return 0;
}

static void test_close(void **state)
{
    use(state);
    tg_err_t err;
    tg_invoice_line_t lines[3] = {
        {.kind = TG_LINE_BASE, .meter = -1, .quantity = 1, .subtotal_micros = 49 * S},
        {.kind = TG_LINE_TIER,
         .meter = TG_PMETER_GB,
         .tier = 2,
         .tier_from = 5,
         .tier_to = -1,
         .quantity = 12,
         .unit_micros = 90000,
         .scale = 1000000000,
         .subtotal_micros = 1},
        {.kind = TG_LINE_ADJUST,
         .meter = TG_PMETER_TOKENS_IN,
         .match = "gpt-4o",
         .quantity = -3,
         .subtotal_micros = -2,
         .for_month = "2026-10"},
    };
    tg_invoice_row_t oct = {
        .tenant = "acme", .month = "2026-10", .plan = "pro", .total_micros = 5, .closed_us = 1};
    tg_invoice_billed_t m_oct = {
        .meter = TG_PMETER_TOKENS_IN, .match = "gpt-4o", .measured = 10, .amount_micros = 4};
    assert_int_equal(tg_store_invoice_close(s, &oct, lines, 1, &m_oct, 1, NULL, 0, &err), 0);
    tg_invoice_row_t nov = {.tenant = "acme",
                            .month = "2026-11",
                            .plan = "pro",
                            .plan_effective_us = 77,
                            .total_micros = 49 * S - 1,
                            .closed_us = 2};
    tg_invoice_billed_t m_nov = {.meter = TG_PMETER_GB, .measured = 12, .amount_micros = 1};
    tg_invoice_billed_t re = {.month = "2026-10",
                              .meter = TG_PMETER_TOKENS_IN,
                              .match = "gpt-4o",
                              .measured = 7,
                              .amount_micros = 2,
                              .was_measured = 10};
    assert_int_equal(tg_store_invoice_close(s, &nov, lines, 3, &m_nov, 1, &re, 1, &err), 0);
    /* closed twice: refused, and nothing of the second attempt is written */
    tg_invoice_billed_t re2 = re;
    re2.measured = 999;
    assert_int_equal(tg_store_invoice_close(s, &nov, lines, 3, &m_nov, 1, &re2, 1, &err),
                     TG_STORE_EXISTS);

    tg_invoice_row_t got;
    tg_invoice_line_t v[8] = {[0].scale = -7};
    assert_int_equal(tg_store_invoice_get(s, "acme", "2026-11", &got, collect_line, v, &err), 0);
    assert_int_equal(got.total_micros, 49 * S - 1);
    assert_int_equal(got.plan_effective_us, 77);
    assert_string_equal(got.plan, "pro");
    assert_int_equal(v[0].kind, TG_LINE_BASE);
    assert_int_equal(v[0].meter, -1);
    assert_int_equal(v[1].kind, TG_LINE_TIER);
    assert_int_equal(v[1].meter, TG_PMETER_GB);
    assert_int_equal(v[1].tier_to, -1);
    assert_int_equal(v[1].scale, 1000000000);
    assert_int_equal(v[2].kind, TG_LINE_ADJUST);
    assert_int_equal(v[2].quantity, -3);
    assert_int_equal(v[2].subtotal_micros, -2);
    assert_string_equal(v[2].for_month, "2026-10");
    assert_string_equal(v[2].match, "gpt-4o");
    assert_int_equal(v[3].scale, -7);
    assert_int_equal(tg_store_invoice_get(s, "acme", "2026-12", NULL, NULL, NULL, &err),
                     TG_STORE_NOTFOUND);

    tg_invoice_billed_t b[8] = {[0].measured = -7};
    assert_int_equal(tg_store_invoice_billed(s, "acme", "2026-10", collect_billed, b, &err), 0);
    assert_int_equal(b[0].meter, TG_PMETER_TOKENS_IN);
    assert_int_equal(b[0].measured, 7); /* moved by November's close, not by the refused one */
    assert_int_equal(b[0].amount_micros, 2);
    assert_int_equal(b[0].closed_measured, 10); /* as frozen when October closed */
    assert_int_equal(b[0].closed_amount_micros, 4);
    assert_int_equal(b[1].measured, -7);
}

/* Two processes close November and December at once; both saw October billed at 10 with
 * 15 units in its events now, and both carry an adjustment of 5 for it. The second to
 * commit must be refused (nothing of it written), or October's late units are billed
 * twice. */
static void test_close_race(void **state)
{
    use(state);
    tg_err_t err;
    tg_invoice_line_t base = {.kind = TG_LINE_BASE, .meter = -1, .quantity = 1};
    tg_invoice_row_t oct = {.tenant = "globex", .month = "2026-10", .plan = "pro", .closed_us = 1};
    tg_invoice_billed_t m = {.meter = TG_PMETER_REQUESTS, .measured = 10, .amount_micros = 10};
    assert_int_equal(tg_store_invoice_close(s, &oct, &base, 1, &m, 1, NULL, 0, &err), 0);
    tg_invoice_billed_t re = {.month = "2026-10",
                              .meter = TG_PMETER_REQUESTS,
                              .measured = 15,
                              .amount_micros = 15,
                              .was_measured = 10};
    tg_invoice_row_t nov = oct, dec = oct;
    snprintf(nov.month, sizeof nov.month, "2026-11");
    snprintf(dec.month, sizeof dec.month, "2026-12");
    m.measured = m.amount_micros = 0;
    assert_int_equal(tg_store_invoice_close(s, &nov, &base, 1, &m, 1, &re, 1, &err), 0);
    assert_int_not_equal(tg_store_invoice_close(s, &dec, &base, 1, &m, 1, &re, 1, &err), 0);
    assert_non_null(strstr(err.msg, "another close"));
    assert_int_equal(tg_store_invoice_get(s, "globex", "2026-12", NULL, NULL, NULL, &err),
                     TG_STORE_NOTFOUND);
    /* run again: it sees 15 billed, and bills only what came since */
    re.was_measured = 15;
    re.measured = re.amount_micros = 16;
    assert_int_equal(tg_store_invoice_close(s, &dec, &base, 1, &m, 1, &re, 1, &err), 0);
    tg_invoice_billed_t b[4] = {[0].measured = -7};
    assert_int_equal(tg_store_invoice_billed(s, "globex", "2026-10", collect_billed, b, &err), 0);
    assert_int_equal(b[0].measured, 16);
    assert_int_equal(b[0].closed_measured, 10);
}

typedef struct sums {
    char text[512];
} sums_t;

static int collect_usage(const tg_plan_usage_row_t *r, void *ud)
{
    sums_t *u = ud;
    size_t o = strlen(u->text);
    snprintf(u->text + o, sizeof u->text - o, "[%s|%s %lld %lld %lld %lld %lld %lld %lld]",
             r->model, r->tool, (long long)r->requests, (long long)r->billable, (long long)r->bytes,
             (long long)r->tokens_in, (long long)r->tokens_out, (long long)r->tool_calls,
             (long long)r->cost_micros);
    return 0;
}

static int collect_ids(const tg_event_t *e, void *ud)
{
    sums_t *u = ud;
    size_t o = strlen(u->text);
    snprintf(u->text + o, sizeof u->text - o, "%lld:%s:%d:%lld:%lld ", (long long)e->id, e->tenant,
             e->outcome, (long long)e->tokens_in, (long long)e->count);
    return 0;
}

static void test_usage_and_range(void **state)
{
    use(state);
    tg_err_t err;
    int64_t t0 = day("2026-11-01");
    tg_event_t e[5];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 5; i++) {
        e[i].id = 100 + i;
        e[i].ts_us = t0 + i;
        snprintf(e[i].tenant, sizeof e[i].tenant, "%s", i == 3 ? "bob" : "acme");
        snprintf(e[i].method, sizeof e[i].method, "GET");
        e[i].status = 200;
        e[i].bytes_in = 10;
        e[i].bytes_out = 100;
        e[i].tokens_in = 5;
        e[i].tokens_out = TG_TOKENS_UNKNOWN;
        e[i].tokens_cached = e[i].tokens_cache_write = TG_TOKENS_UNKNOWN;
        e[i].cost_micros = 3;
        snprintf(e[i].model, sizeof e[i].model, "m1");
    }
    e[1].outcome = TG_OUTCOME_FAILED;
    e[1].status = 500;
    snprintf(e[2].tool, sizeof e[2].tool, "search");
    e[4].ts_us = t0 - 1; /* October */
    if (put_events(e, 5, &err) != 0) fail_msg("%s", err.msg);
    sums_t u = {""};
    assert_int_equal(tg_store_plan_usage(s, "acme", t0, t0 + 1000, collect_usage, &u, &err), 0);
    assert_string_equal(u.text, "[m1| 2 1 110 5 0 0 3][m1|search 1 1 110 5 0 1 3]");
    u.text[0] = '\0';
    /* one tenant: time order (104 is the earliest); every tenant: id order */
    assert_int_equal(tg_store_event_range(s, "acme", t0 - 1, t0 + 3, collect_ids, &u, &err), 0);
    assert_string_equal(u.text, "104:acme:0:5:1 100:acme:0:5:1 101:acme:1:5:1 102:acme:0:5:1 ");
    u.text[0] = '\0';
    assert_int_equal(tg_store_event_range(s, NULL, t0 - 1, t0 + 4, collect_ids, &u, &err), 0);
    assert_string_equal(
        u.text, "100:acme:0:5:1 101:acme:1:5:1 102:acme:0:5:1 103:bob:0:5:1 104:acme:0:5:1 ");
    u.text[0] = '\0';
    assert_int_equal(tg_store_event_range(s, "bob", 0, t0 + 1000, collect_ids, &u, &err), 0);
    assert_string_equal(u.text, "103:bob:0:5:1 ");
}

/* A migration missing below the newest one applied (merged after it) is applied at the
 * next open: here 8 (the views) is taken out of a store that has 9. */
static void test_migration_gap(void **state)
{
    const char *path = ((tb_store_t *)*state)->path, *url = ((tb_store_t *)*state)->url;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'view'", -1, &st, NULL),
        SQLITE_OK);
    char drop[4096] = "";
    int views = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t o = strlen(drop);
        snprintf(drop + o, sizeof drop - o, "DROP VIEW \"%s\";", sqlite3_column_text(st, 0));
        views++;
    }
    sqlite3_finalize(st);
    assert_true(views > 0);
    strcat(drop, "DELETE FROM schema_migrations WHERE version = 8;");
    assert_int_equal(sqlite3_exec(db, drop, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    tg_store_t *s2;
    tg_err_t err;
    assert_int_equal(tg_store_open(url, &s2, &err), 0);
    tg_store_close(s2);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM sqlite_master WHERE "
                                        "type = 'view'), (SELECT count(*) FROM schema_migrations "
                                        "WHERE version IN (8, 9))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), views);
    assert_int_equal(sqlite3_column_int(st, 1), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_plans),
        TB_BOTH(test_tenant_plans),
        TB_BOTH(test_close),
        TB_BOTH(test_close_race),
        TB_BOTH(test_usage_and_range),
        cmocka_unit_test_setup_teardown(test_migration_gap, tb_setup_sqlite, tb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
