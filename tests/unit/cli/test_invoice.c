/* Tests for src/cli/invoice.c over a real migrated store with events at fixed instants:
 * each invoice's quantities equal what the events say for that tenant and month, to the
 * unit and the micro-dollar (the expected figures are computed here from the event list,
 * with 128-bit arithmetic, not by the code under test); the month boundary at 00:00:00 UTC
 * (23:59:59.999999 is the old month); non-2xx events are not billable; a closed month is
 * frozen, and its late events are billed once by an adjustment line of the next invoice.
 * The file is included (its functions are static), as test_price.c does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>

#include "cli/invoice.c"

#define S 1000000LL

static tg_store_t *store;
static char dir[64];
static int64_t next_id = 1;

typedef struct ev {
    const char *tenant, *ts, *model, *tool;
    int status;
    int64_t bytes_in, bytes_out, tin, tout, cost;
} ev_t;

/* "2026-11-30T23:59:59.999999" */
static int64_t at(const char *ts)
{
    char day[11];
    memcpy(day, ts, 10);
    day[10] = '\0';
    int64_t us;
    assert_int_equal(tg_parse_day(day, &us), 0);
    int h, m, s;
    long frac = 0;
    assert_true(sscanf(ts + 11, "%d:%d:%d.%ld", &h, &m, &s, &frac) >= 3);
    return us + ((int64_t)h * 3600 + m * 60 + s) * S + frac;
}

static void append(const ev_t *v)
{
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.id = next_id++;
    e.ts_us = at(v->ts);
    e.status = v->status;
    e.outcome = v->status / 100 == 2 ? TG_OUTCOME_BILLABLE
                : v->status == 429   ? TG_OUTCOME_REJECTED
                                     : TG_OUTCOME_FAILED;
    e.bytes_in = v->bytes_in;
    e.bytes_out = v->bytes_out;
    e.tokens_in = v->tin;
    e.tokens_out = v->tout;
    e.tokens_cached = e.tokens_cache_write = TG_TOKENS_UNKNOWN;
    e.cost_micros = v->cost;
    snprintf(e.tenant, sizeof e.tenant, "%s", v->tenant);
    snprintf(e.method, sizeof e.method, "POST");
    snprintf(e.path, sizeof e.path, "/v1/x");
    if (v->model) snprintf(e.model, sizeof e.model, "%s", v->model);
    if (v->tool) snprintf(e.tool, sizeof e.tool, "%s", v->tool);
    size_t ins = 0;
    tg_err_t err;
    assert_int_equal(tg_store_append(store, &e, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
}

/* The plan: every meter kind, tiers, included units, a markup. */
static const char *const specs[] = {
    "requests unit 100",                          /* 0.0001 USD a request */
    "billable graduated 2:1000 -:500 included=1", /* 0.001, then 0.0005 a request */
    "gb unit 0.09",
    "tokens_in:gpt-4o unit 2.50",
    "tokens_in:* volume 100:1.00 -:0.50",
    "tokens_out:* unit 10",
    "tool_calls unit 1000",
    "ai_cost markup 20",
};
#define NMETERS ((int)(sizeof specs / sizeof specs[0]))

/* Every event the store holds, in order of appending. */
static ev_t evs[64];
static int nevs;

static void add(ev_t v)
{
    evs[nevs++] = v;
    append(&v);
}

/* ---- the expected figures, from evs alone ---- */

typedef __int128 i128;

static int64_t line(int64_t q, int64_t unit, int64_t scale)
{
    i128 p = (i128)q * unit;
    return (int64_t)((p + scale / 2) / scale);
}

/* measured[] and the total for tenant over [from, to), following docs/billing.md. */
static int64_t expect(const char *tenant, int64_t from, int64_t to, int64_t *m)
{
    memset(m, 0, sizeof(int64_t) * NMETERS);
    for (int i = 0; i < nevs; i++) {
        const ev_t *v = &evs[i];
        int64_t ts = at(v->ts);
        if (strcmp(v->tenant, tenant) != 0 || ts < from || ts >= to) continue;
        m[0]++;
        if (v->status / 100 != 2) continue;
        m[1]++;
        m[2] += v->bytes_in + v->bytes_out;
        int64_t tin = v->tin > 0 ? v->tin : 0, tout = v->tout > 0 ? v->tout : 0;
        if (v->model && strncasecmp(v->model, "gpt-4o", 6) == 0 &&
            (v->model[6] == '\0' || v->model[6] == '-') && strncasecmp(v->model, "gpt-4o-mini", 11))
            m[3] += tin;
        else
            m[4] += tin;
        m[5] += tout;
        if (v->tool) m[6]++;
        m[7] += v->cost;
    }
    int64_t billable = m[1] > 1 ? m[1] - 1 : 0;
    int64_t t1 = billable < 2 ? billable : 2, t2 = billable - t1;
    int64_t tin_rate = m[4] > 100 ? 500000 : 1000000; /* volume */
    return 10 * S + line(m[0], 100 * S, S) + line(t1, 1000 * S, S) + line(t2, 500 * S, S) +
           line(m[2], 90000, 1000000000) + line(m[3], 2500000, S) + line(m[4], tin_rate, S) +
           line(m[5], 10 * S, S) + line(m[6], 1000 * S, S) + line(m[7], 1200000, S);
}

static void setup_store(void)
{
    snprintf(dir, sizeof dir, "/tmp/tg_test_invoice_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
    tg_err_t err;
    assert_int_equal(tg_store_open(url, &store, &err), 0);
    assert_int_equal(tg_store_tenant_add(store, "acme", "Acme", &err), 0);
    assert_int_equal(tg_store_tenant_add(store, "bob", "Bob", &err), 0);
    static tg_plan_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "pro");
    p.base_micros = 10 * S;
    int64_t next;
    assert_int_equal(tg_invoice_month("2026-10", &p.effective_us, &next), 0);
    for (int i = 0; i < NMETERS; i++)
        assert_int_equal(tg_cli_plan_parse_meter(specs[i], &p.meters[p.nmeters++]), 0);
    assert_int_equal(tg_invoice_plan_check(&p, &err), 0);
    assert_int_equal(tg_store_plan_set(store, &p, &err), 0);
    tg_tenant_plan_row_t tp = {.tenant = "acme", .from_month = "2026-10", .plan = "pro"};
    assert_int_equal(tg_store_tenant_plan_set(store, &tp, &err), 0);
    snprintf(tp.tenant, sizeof tp.tenant, "bob");
    assert_int_equal(tg_store_tenant_plan_set(store, &tp, &err), 0);
}

/* build() with closed months that began before horizon left out of the adjustments. */
static doc_t *invoice_h(const char *tenant, const char *month, int64_t horizon)
{
    doc_t *d = calloc(1, sizeof *d);
    d->horizon_us = horizon;
    snprintf(d->month, sizeof d->month, "%s", month);
    assert_int_equal(tg_invoice_month(month, &d->start_us, &d->next_us), 0);
    assert_int_equal(build(store, tenant, d), 0);
    return d;
}

static doc_t *invoice(const char *tenant, const char *month)
{
    return invoice_h(tenant, month, 0);
}

/* build() refusing: the exit code 1, the doc handed back to be freed. */
static doc_t *invoice_fails(const char *tenant, const char *month)
{
    doc_t *d = calloc(1, sizeof *d);
    snprintf(d->month, sizeof d->month, "%s", month);
    assert_int_equal(tg_invoice_month(month, &d->start_us, &d->next_us), 0);
    assert_int_equal(build(store, tenant, d), TG_EXIT_RUNTIME);
    return d;
}

static void free_doc(doc_t *d)
{
    free(d->billed);
    free(d->rebilled);
    free(d);
}

/* d's measured meters and total equal what the events say. */
static void reconciles(const doc_t *d, const char *tenant)
{
    int64_t m[NMETERS];
    int64_t total = expect(tenant, d->start_us, d->next_us, m);
    assert_int_equal(d->inv.nmeters, NMETERS);
    for (int i = 0; i < NMETERS; i++)
        assert_int_equal(d->inv.measured[i], m[i]);
    assert_int_equal(d->inv.total_micros, total);
    int64_t sum = 0;
    for (int i = 0; i < d->inv.nlines; i++)
        sum += d->inv.lines[i].subtotal_micros;
    assert_int_equal(sum, total);
}

static int count_adjust(const doc_t *d, const char *for_month, int64_t *amount)
{
    int n = 0;
    *amount = 0;
    for (int i = 0; i < d->inv.nlines; i++)
        if (d->inv.lines[i].kind == TG_LINE_ADJUST &&
            strcmp(d->inv.lines[i].for_month, for_month) == 0) {
            n++;
            *amount += d->inv.lines[i].subtotal_micros;
        }
    return n;
}

static void test_reconcile(void **state)
{
    (void)state;
    setup_store();
    /* acme */
    add((ev_t){"acme", "2026-10-31T23:59:59.999999", "gpt-4o", NULL, 200, 10, 20, 5, 6, 70});
    add((ev_t){"acme", "2026-11-01T00:00:00.000000", "gpt-4o", NULL, 200, 1500, 2500, 1000, 200,
               777});
    add((ev_t){"acme", "2026-11-15T10:00:00.5", NULL, "search", 200, 300, 400, -1, -1, 0});
    add((ev_t){"acme", "2026-11-20T10:00:00", "gpt-4o", NULL, 502, 999, 999, 50, 50, 0});
    add((ev_t){"acme", "2026-11-20T11:00:00", NULL, NULL, 429, 10, 0, -1, -1, 0});
    add((ev_t){"acme", "2026-11-21T11:00:00", "GPT-4o-2024-08-06", NULL, 201, 7, 9, 33, 44, 1234});
    add((ev_t){"acme", "2026-11-30T23:59:59.999999", "gpt-4o-mini", NULL, 200, 1, 1, 300, 30,
               4321});
    add((ev_t){"acme", "2026-12-01T00:00:00", "claude-3", NULL, 200, 5, 5, 80, 8, 99});
    /* bob, in the same months: never in acme's invoices */
    add((ev_t){"bob", "2026-11-10T00:00:00", "gpt-4o", "search", 200, 1, 1, 10, 10, 10});
    add((ev_t){"bob", "2026-11-30T23:59:59.999999", NULL, NULL, 200, 1, 1, -1, -1, 0});

    doc_t *nov = invoice("acme", "2026-11");
    reconciles(nov, "acme");
    /* the boundary events: Oct 31 23:59:59.999999 is October, Dec 1 00:00 is December */
    assert_int_equal(nov->inv.measured[0], 6);
    assert_int_equal(nov->inv.measured[1], 4); /* the 502 and the 429 are not billable */
    assert_int_equal(nov->inv.measured[3], 1033);
    assert_int_equal(nov->inv.measured[4], 300);
    assert_int_equal(nov->inv.measured[7], 777 + 1234 + 4321);
    doc_t *oct = invoice("acme", "2026-10");
    reconciles(oct, "acme");
    assert_int_equal(oct->inv.measured[0], 1);
    doc_t *bob = invoice("bob", "2026-11");
    reconciles(bob, "bob");
    assert_int_equal(bob->inv.measured[0], 2);

    /* Closing: refused before the month ends, allowed from its next month's first instant. */
    assert_int_equal(close_month(store, nov, at("2026-11-30T23:59:59.999999")), TG_EXIT_RUNTIME);
    assert_int_equal(close_month(store, nov, at("2026-12-01T00:00:00")), 0);
    int64_t frozen = nov->inv.total_micros;
    free_doc(nov);

    /* A late event for November after it was closed. */
    add((ev_t){"acme", "2026-11-29T12:00:00", "gpt-4o", "search", 200, 100, 100, 10, 10, 500});
    nov = invoice("acme", "2026-11");
    assert_true(nov->closed);
    assert_int_equal(nov->inv.total_micros, frozen); /* frozen: the late event changes nothing */
    int64_t m[NMETERS];
    int64_t nov_now = expect("acme", nov->start_us, nov->next_us, m);
    assert_true(nov_now > frozen);

    /* December: its own events, plus the difference for November, billed once. */
    doc_t *dec = invoice("acme", "2026-12");
    int64_t adj;
    assert_true(count_adjust(dec, "2026-11", &adj) > 0);
    assert_int_equal(adj, nov_now - frozen);
    int64_t dec_own = expect("acme", dec->start_us, dec->next_us, m);
    for (int i = 0; i < NMETERS; i++)
        assert_int_equal(dec->inv.measured[i], m[i]);
    assert_int_equal(dec->inv.total_micros, dec_own + nov_now - frozen);
    /* the adjustment's units: one more request, billable request and tool call */
    for (int i = 0; i < dec->inv.nlines; i++) {
        const tg_invoice_line_t *l = &dec->inv.lines[i];
        if (l->kind != TG_LINE_ADJUST) continue;
        if (l->meter == TG_PMETER_REQUESTS || l->meter == TG_PMETER_BILLABLE ||
            l->meter == TG_PMETER_TOOL_CALLS)
            assert_int_equal(l->quantity, 1);
        if (l->meter == TG_PMETER_GB) assert_int_equal(l->quantity, 200);
    }
    assert_int_equal(close_month(store, dec, at("2027-01-01T00:00:00")), 0);
    free_doc(dec);

    /* January: November's difference was billed in December: no adjustment now. */
    doc_t *jan = invoice("acme", "2027-01");
    assert_int_equal(count_adjust(jan, "2026-11", &adj), 0);
    free_doc(jan);
    /* Another late November event, after December closed: January bills only it. */
    int64_t before = expect("acme", nov->start_us, nov->next_us, m);
    add((ev_t){"acme", "2026-11-02T00:00:00", NULL, NULL, 200, 0, 0, -1, -1, 0});
    int64_t after = expect("acme", nov->start_us, nov->next_us, m);
    jan = invoice("acme", "2027-01");
    assert_int_equal(count_adjust(jan, "2026-11", &adj), 2); /* requests, billable */
    assert_int_equal(adj, after - before);
    /* A late December event is billed in January too, and a re-print of December stays. */
    add((ev_t){"acme", "2026-12-31T23:59:59.999999", NULL, NULL, 200, 0, 0, -1, -1, 0});
    free_doc(jan);
    jan = invoice("acme", "2027-01");
    assert_int_equal(count_adjust(jan, "2026-12", &adj), 2);
    /* November's meters: as frozen, and as billed since (December's adjustment) */
    doc_t *nov2 = invoice("acme", "2026-11");
    assert_int_equal(nov2->nbilled, NMETERS);
    for (size_t i = 0; i < nov2->nbilled; i++)
        if (nov2->billed[i].meter == TG_PMETER_REQUESTS) {
            assert_int_equal(nov2->billed[i].closed_measured, 6);
            assert_int_equal(nov2->billed[i].measured, 7);
        }
    free_doc(nov2);
    dec = invoice("acme", "2026-12");
    assert_true(dec->closed);
    assert_int_equal(dec->inv.total_micros, dec_own + nov_now - frozen);
    free_doc(dec);
    free_doc(jan);
    free_doc(nov);
    free_doc(oct);
    free_doc(bob);

    tg_err_t err;
    doc_t *d;
    /* Closing a month twice: the second is already closed (printed from its rows). */
    doc_t *again = invoice("acme", "2026-11");
    assert_true(again->closed);
    free_doc(again);
    /* Retention purges November's events: that credits nothing (no line, no negative
     * amount), and what was billed for November is not lowered. */
    int64_t purged = 0;
    assert_int_equal(tg_store_purge(store, at("2026-12-01T00:00:00"), NULL, &purged, &err), 0);
    assert_true(purged > 0);
    jan = invoice("acme", "2027-01");
    assert_int_equal(count_adjust(jan, "2026-11", &adj), 0);
    for (int i = 0; i < jan->inv.nlines; i++)
        assert_true(jan->inv.lines[i].quantity >= 0 && jan->inv.lines[i].subtotal_micros >= 0);
    free_doc(jan);
    /* A closed month that began before the retention horizon gets no adjustment. */
    add((ev_t){"acme", "2026-12-15T00:00:00", NULL, NULL, 200, 0, 0, -1, -1, 0});
    jan = invoice_h("acme", "2027-01", at("2026-12-01T00:00:01"));
    assert_int_equal(count_adjust(jan, "2026-12", &adj), 0);
    free_doc(jan);
    jan = invoice_h("acme", "2027-01", at("2026-12-01T00:00:00"));
    assert_int_equal(count_adjust(jan, "2026-12", &adj), 2); /* requests, billable: 2 each */
    free_doc(jan);

    /* The plan version that priced the closed months removed: their late events cannot be
     * priced, and the invoice says so rather than guess. */
    static tg_plan_t p;
    assert_int_equal(tg_store_plan_get(store, "pro", at("2027-01-01T00:00:00"), &p, &err), 0);
    assert_int_equal(tg_store_plan_rm(store, "pro", -1, &err), 0);
    int64_t next;
    assert_int_equal(tg_invoice_month("2027-01", &p.effective_us, &next), 0);
    assert_int_equal(tg_store_plan_set(store, &p, &err), 0);
    d = invoice_fails("acme", "2027-02");
    free_doc(d);
    /* No plan: a clear error. */
    assert_int_equal(tg_store_tenant_add(store, "free", "", &err), 0);
    d = calloc(1, sizeof *d);
    snprintf(d->month, sizeof d->month, "2026-11");
    tg_invoice_month(d->month, &d->start_us, &d->next_us);
    assert_int_equal(build(store, "free", d), TG_EXIT_RUNTIME);
    free_doc(d);
    tg_store_close(store);
    const char *files[] = {"t.db", "t.db-wal", "t.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The JSON, CSV and HTML of an invoice carry the same lines and total; HTML escapes. */
static void test_outputs(void **state)
{
    (void)state;
    static doc_t d;
    memset(&d, 0, sizeof d);
    snprintf(d.tenant.id, sizeof d.tenant.id, "acme");
    snprintf(d.tenant.name, sizeof d.tenant.name, "<script>x</script> & \"co\"");
    snprintf(d.month, sizeof d.month, "2026-11");
    tg_invoice_month(d.month, &d.start_us, &d.next_us);
    snprintf(d.plan.name, sizeof d.plan.name, "pro");
    d.plan.base_micros = 5 * S;
    tg_err_t err;
    assert_int_equal(tg_cli_plan_parse_meter("billable unit 3", &d.plan.meters[0]), 0);
    d.plan.nmeters = 1;
    int64_t meas[TG_PLAN_METERS] = {1000001};
    assert_int_equal(tg_invoice_price(&d.plan, meas, &d.inv, &err), 0);
    json_t *j = doc_json(&d);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "total_micros")), 8000003);
    assert_string_equal(json_string_value(json_object_get(j, "total")), "8.000003");
    json_t *m0 = json_array_get(json_object_get(j, "meters"), 0);
    assert_int_equal(json_integer_value(json_object_get(m0, "measured")), 1000001);
    json_decref(j);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(write_html(f, &d), 0);
    fclose(f);
    assert_null(strstr(buf, "<script>"));
    assert_non_null(strstr(buf, "&lt;script&gt;x&lt;/script&gt; &amp; &quot;co&quot;"));
    assert_non_null(strstr(buf, "USD 8.000003"));
    free(buf);
    f = open_memstream(&buf, &len);
    assert_int_equal(write_csv(f, &d), 0);
    fclose(f);
    assert_non_null(strstr(buf, "acme,2026-11,total,,,,,,,8000003,8.000003,,total\n"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconcile),
        cmocka_unit_test(test_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
