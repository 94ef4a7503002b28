/* Tests src/observe/metrics.c: counting by tenant, route, outcome and status class; sums
 * over several workers' blocks (also while they write); the "_other" guard at each cap,
 * global across blocks; hostile label values escaped and made valid UTF-8; histogram
 * buckets cumulative with _count and _sum consistent; every line of the text in the
 * format's grammar, and `promtool check metrics` passing on it (promtool missing is a
 * failure: scripts/deps.sh installs the Debian package prometheus). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "observe/metrics.h"
#include "types/event.h"

#define SET(ev, field, s) TG_EVENT_SET((ev), field, (s), strlen(s))

static tg_event_t ev_of(const char *tenant, const char *route, int status, int outcome)
{
    tg_event_t ev;
    memset(&ev, 0, sizeof ev);
    SET(&ev, tenant, tenant);
    SET(&ev, route, route);
    ev.status = status;
    ev.outcome = outcome;
    ev.latency_us = 1000;
    ev.tokens_in = ev.tokens_out = ev.tokens_cached = ev.tokens_cache_write = TG_TOKENS_UNKNOWN;
    return ev;
}

static char *render(tg_metrics_t *m)
{
    tg_buf_t b = TG_BUF_INIT(SIZE_MAX);
    assert_int_equal(tg_metrics_render(m, &b), 0);
    return tg_buf_take(&b);
}

/* The value of the sample whose name and labels are exactly series ("name{...}"), or -1
 * when there is none. Fails on a series found twice. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    double v = -1;
    int found = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) || p[n] != ' ') continue;
        assert_int_equal(found, 0);
        found = 1;
        v = strtod(p + n + 1, NULL);
    }
    return v;
}

static void test_counts_by_labels(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    tg_event_t ok = ev_of("acme", "chat", 200, TG_OUTCOME_BILLABLE);
    ok.bytes_in = 100;
    ok.bytes_out = 1000;
    ok.tokens_in = 12;
    ok.tokens_out = 5;
    ok.tokens_cached = 2;
    ok.cost_micros = 70;
    SET(&ok, model, "gpt-4o-mini");
    for (int i = 0; i < 3; i++)
        tg_metrics_observe(b, &ok);
    tg_event_t bad = ev_of("acme", "chat", 502, TG_OUTCOME_FAILED);
    tg_metrics_observe(b, &bad);
    tg_event_t rl = ev_of("acme", "chat", 429, TG_OUTCOME_REJECTED);
    SET(&rl, reason, "rate_limited");
    tg_metrics_observe(b, &rl);
    tg_metrics_observe(b, &rl);
    tg_event_t anon = ev_of("", "", 401, TG_OUTCOME_REJECTED);
    SET(&anon, reason, "unauthorized");
    tg_metrics_observe(b, &anon);
    tg_event_t other = ev_of("beta", "chat", 0, TG_OUTCOME_FAILED); /* no status sent */
    tg_metrics_observe(b, &other);
    tg_metrics_observe_tool(b, "acme", "search", 0);
    tg_metrics_observe_tool(b, "acme", "search", 1);
    tg_metrics_observe_tool(b, "acme", "fetch", 0);
    tg_metrics_observe(NULL, &ok); /* no block: nothing */

    char *t = render(m);
#define REQ(ten, rt, o, c)                                                                         \
    "tollgate_requests_total{tenant=\"" ten "\",route=\"" rt "\",outcome=\"" o                     \
    "\",status_class=\"" c "\"}"
    assert_true(value(t, REQ("acme", "chat", "billable", "2xx")) == 3);
    assert_true(value(t, REQ("acme", "chat", "failed", "5xx")) == 1);
    assert_true(value(t, REQ("acme", "chat", "rejected", "4xx")) == 2);
    assert_true(value(t, REQ("", "", "rejected", "4xx")) == 1);
    assert_true(value(t, REQ("beta", "chat", "failed", "other")) == 1);
    assert_true(value(t, REQ("acme", "chat", "billable", "5xx")) == -1); /* zero: not shown */
    assert_true(value(t, "tollgate_request_bytes_total{tenant=\"acme\",route=\"chat\"}") == 300);
    assert_true(value(t, "tollgate_response_bytes_total{tenant=\"acme\",route=\"chat\"}") == 3000);
    assert_true(value(t, "tollgate_input_tokens_total{tenant=\"acme\",model=\"gpt-4o-mini\"}") ==
                36);
    assert_true(value(t, "tollgate_output_tokens_total{tenant=\"acme\",model=\"gpt-4o-mini\"}") ==
                15);
    assert_true(value(t, "tollgate_cached_tokens_total{tenant=\"acme\",model=\"gpt-4o-mini\"}") ==
                6);
    assert_true(value(t, "tollgate_cost_micro_usd_total{tenant=\"acme\"}") == 210);
    assert_true(value(t, "tollgate_cost_micro_usd_total{tenant=\"beta\"}") == -1);
    assert_true(value(t, "tollgate_rejections_total{tenant=\"acme\",reason=\"rate_limited\"}") ==
                2);
    assert_true(value(t, "tollgate_rejections_total{tenant=\"\",reason=\"unauthorized\"}") == 1);
    assert_true(value(t, "tollgate_mcp_tool_calls_total{tenant=\"acme\",tool=\"search\"}") == 2);
    assert_true(value(t, "tollgate_mcp_tool_errors_total{tenant=\"acme\",tool=\"search\"}") == 1);
    assert_true(value(t, "tollgate_mcp_tool_calls_total{tenant=\"acme\",tool=\"fetch\"}") == 1);
    assert_true(value(t, "tollgate_mcp_tool_errors_total{tenant=\"acme\",tool=\"fetch\"}") == 0);
    /* Unknown tokens count nothing; an HTTP route has no token series. */
    assert_null(strstr(t, "tollgate_input_tokens_total{tenant=\"beta\""));
    free(t);
    tg_metrics_free(m);
}

static void test_sums_over_blocks(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    tg_metrics_block_t *b[3];
    for (int i = 0; i < 3; i++)
        b[i] = tg_metrics_block_new(m);
    tg_event_t ev = ev_of("acme", "api", 200, TG_OUTCOME_BILLABLE);
    ev.cost_micros = 5;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k <= i; k++)
            tg_metrics_observe(b[i], &ev); /* 1 + 2 + 3 */
    tg_event_t only2 = ev_of("solo", "api", 404, TG_OUTCOME_REJECTED);
    SET(&only2, reason, "no_route");
    tg_metrics_observe(b[2], &only2);
    char *t = render(m);
    assert_true(value(t, REQ("acme", "api", "billable", "2xx")) == 6);
    assert_true(value(t, "tollgate_cost_micro_usd_total{tenant=\"acme\"}") == 30);
    assert_true(
        value(t, "tollgate_request_duration_seconds_count{tenant=\"acme\",route=\"api\"}") == 6);
    assert_true(value(t, REQ("solo", "api", "rejected", "4xx")) == 1);
    free(t);
    tg_metrics_free(m);
}

/* Writers on their own threads, a scrape in a loop meanwhile: every scrape sees counts
 * that only grow and a histogram whose _count is its +Inf bucket, the last one the total.
 * Every other request is of a new tenant each 1000: series and names are published while
 * scrapes run. */
#define WRITES 200000
static void *writer(void *arg)
{
    tg_metrics_block_t *b = arg;
    tg_event_t ev = ev_of("acme", "api", 200, TG_OUTCOME_BILLABLE);
    for (int i = 0; i < WRITES; i++) {
        char t[16];
        snprintf(t, sizeof t, "t%d", i / 1000);
        SET(&ev, tenant, i % 2 ? "acme" : t);
        ev.latency_us = i % 7000;
        tg_metrics_observe(b, &ev);
    }
    return NULL;
}

/* The sum of every sample of the family name (lines "name{..." or "name "). */
static double family_sum(const char *text, const char *name)
{
    size_t n = strlen(name);
    double v = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == '{' || p[n] == ' '))
            v += strtod(strchr(p + n, ' '), NULL);
    return v;
}

static void test_scrape_while_writing(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, tg_metrics_block_new(m)), 0);
    double last = 0, last_cnt = 0;
    int scrapes = 0;
    for (;;) {
        char *t = render(m);
        double v = family_sum(t, "tollgate_requests_total");
        double cnt = family_sum(t, "tollgate_request_duration_seconds_count");
        double acme =
            value(t, "tollgate_request_duration_seconds_count{tenant=\"acme\",route=\"api\"}");
        double inf = value(
            t,
            "tollgate_request_duration_seconds_bucket{tenant=\"acme\",route=\"api\",le=\"+Inf\"}");
        free(t);
        scrapes++;
        assert_true(v >= last);
        assert_true(cnt >= last_cnt);
        assert_true(acme == inf);
        last = v;
        last_cnt = cnt;
        if (v == 2.0 * WRITES && cnt == v) break;
        assert_true(scrapes < 1000000);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    char *t = render(m);
    assert_true(value(t, REQ("acme", "api", "billable", "2xx")) == WRITES);
    assert_true(value(t, REQ("t199", "api", "billable", "2xx")) == 1000);
    free(t);
    tg_metrics_free(m);
}

static void test_other_at_the_caps(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(&(tg_metrics_caps_t){3, 2, 1});
    tg_metrics_block_t *b1 = tg_metrics_block_new(m), *b2 = tg_metrics_block_new(m);
    tg_event_t ev = ev_of("t1", "r", 200, TG_OUTCOME_BILLABLE);
    tg_metrics_observe(b1, &ev);
    SET(&ev, tenant, "t2");
    tg_metrics_observe(b2, &ev);
    SET(&ev, tenant, "t3");
    tg_metrics_observe(b1, &ev); /* the third: the cap is global, not per block */
    SET(&ev, tenant, "t4");
    tg_metrics_observe(b2, &ev);
    SET(&ev, tenant, "t5");
    tg_metrics_observe(b1, &ev);
    tg_metrics_observe(b1, &ev);
    SET(&ev, tenant, "t2");
    tg_metrics_observe(b1, &ev); /* named before the cap: keeps its series in every block */
    SET(&ev, tenant, "_other");
    tg_metrics_observe(b2, &ev); /* a tenant named so is summed with the rest */
    /* Models: 2 named, then "_other"; tools: 1. */
    ev = ev_of("t1", "r", 200, TG_OUTCOME_BILLABLE);
    ev.tokens_in = 1;
    const char *models[] = {"m1", "m2", "m3", "m4", "m1"};
    for (int i = 0; i < 5; i++) {
        SET(&ev, model, models[i]);
        tg_metrics_observe(i % 2 ? b2 : b1, &ev);
    }
    tg_metrics_observe_tool(b1, "t1", "x", 0);
    tg_metrics_observe_tool(b2, "t1", "y", 1);
    tg_metrics_observe_tool(b2, "t1", "z", 0);
    tg_metrics_observe_tool(b2, "t9", "x", 0);

    char *t = render(m);
    assert_true(value(t, REQ("t1", "r", "billable", "2xx")) == 6); /* 1 + 5 of the models */
    assert_true(value(t, REQ("t2", "r", "billable", "2xx")) == 2);
    assert_true(value(t, REQ("t3", "r", "billable", "2xx")) == 1);
    assert_true(value(t, REQ("t4", "r", "billable", "2xx")) == -1);
    assert_true(value(t, REQ("t5", "r", "billable", "2xx")) == -1);
    assert_true(value(t, REQ("_other", "r", "billable", "2xx")) == 4);
    assert_true(value(t, "tollgate_input_tokens_total{tenant=\"t1\",model=\"m1\"}") == 2);
    assert_true(value(t, "tollgate_input_tokens_total{tenant=\"t1\",model=\"m2\"}") == 1);
    assert_true(value(t, "tollgate_input_tokens_total{tenant=\"t1\",model=\"_other\"}") == 2);
    assert_null(strstr(t, "model=\"m3\""));
    assert_true(value(t, "tollgate_mcp_tool_calls_total{tenant=\"t1\",tool=\"x\"}") == 1);
    assert_true(value(t, "tollgate_mcp_tool_calls_total{tenant=\"t1\",tool=\"_other\"}") == 2);
    assert_true(value(t, "tollgate_mcp_tool_errors_total{tenant=\"t1\",tool=\"_other\"}") == 1);
    assert_true(value(t, "tollgate_mcp_tool_calls_total{tenant=\"_other\",tool=\"x\"}") == 1);
    /* Distinct tenant label values: 3 own and _other. */
    int distinct = 0;
    const char *names[] = {"t1", "t2", "t3", "t4", "t5", "_other"};
    for (int i = 0; i < 6; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "{tenant=\"%s\"", names[i]);
        distinct += strstr(t, pat) != NULL;
    }
    assert_int_equal(distinct, 4);
    free(t);
    tg_metrics_free(m);
}

static void test_other_does_not_allocate_per_value(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(&(tg_metrics_caps_t){1, 1, 1});
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    tg_event_t ev = ev_of("t1", "r", 200, TG_OUTCOME_BILLABLE);
    ev.tokens_out = 1;
    SET(&ev, model, "m0");
    tg_metrics_observe(b, &ev);
    SET(&ev, tenant, "t2");
    tg_metrics_observe(b, &ev); /* the _other series made */
    SET(&ev, model, "m1");
    tg_metrics_observe(b, &ev); /* and _other's tokens of the other models */
#if !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 before = mallinfo2();
#endif
    /* A client inventing a model per request, and a tenant past the cap. */
    for (int i = 0; i < 20000; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d", i);
        SET(&ev, model, name);
        snprintf(name, sizeof name, "tenant-%d", i);
        SET(&ev, tenant, name);
        tg_metrics_observe(b, &ev);
    }
#if !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(after.uordblks, before.uordblks);
#endif
    char *t = render(m);
    assert_true(value(t, "tollgate_output_tokens_total{tenant=\"_other\",model=\"_other\"}") ==
                20001);
    free(t);
    tg_metrics_free(m);
}

static void test_hostile_label_values(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    tg_event_t ev = ev_of("a\"b\\c\nd", "r", 200, TG_OUTCOME_BILLABLE);
    ev.tokens_in = 1;
    /* Invalid UTF-8 (a lone continuation, a cut sequence, an overlong slash, a surrogate),
     * a tab and DEL, valid multi-byte text kept. */
    SET(&ev, model,
        "x\x80y\xe2\x82z\xc0\xaf\xed\xa0\x80\t\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    tg_metrics_observe(b, &ev);
    tg_metrics_observe_tool(b, "a\"b\\c\nd", "} 1\n# TYPE evil counter\nevil", 0);
    char *t = render(m);
    assert_true(value(t, REQ("a\\\"b\\\\c\\nd", "r", "billable", "2xx")) == 1);
    const char *fffd = "\xef\xbf\xbd";
    char want[256];
    snprintf(
        want, sizeof want,
        "tollgate_input_tokens_total{tenant=\"a\\\"b\\\\c\\nd\",model=\"x%sy%s%sz%s%s%s%s%s%s%s"
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        fffd, fffd, fffd, fffd, fffd, fffd, fffd, fffd, fffd, fffd);
    assert_true(value(t, want) == 1);
    assert_true(
        value(t, "tollgate_mcp_tool_calls_total{tenant=\"a\\\"b\\\\c\\nd\",tool=\"} 1\\n# TYPE "
                 "evil counter\\nevil\"}") == 1);
    assert_null(strstr(t, "\n# TYPE evil"));
    free(t);

    tg_buf_t o = TG_BUF_INIT(SIZE_MAX);
    assert_int_equal(tg_metrics_escape(&o, TG_LIT("\\\"\n plain")), 0);
    assert_string_equal(tg_buf_str(&o), "\\\\\\\"\\n plain");
    tg_buf_free(&o);
    tg_metrics_free(m);
}

/* A name that sanitizes to the same text as another shares its series. */
static void test_values_equal_once_cleaned_share_a_series(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    tg_event_t ev = ev_of("t\x01", "r", 200, TG_OUTCOME_BILLABLE);
    tg_metrics_observe(b, &ev);
    SET(&ev, tenant, "t\x02");
    tg_metrics_observe(b, &ev);
    char *t = render(m);
    assert_true(value(t, REQ("t\xef\xbf\xbd", "r", "billable", "2xx")) == 2);
    free(t);
    tg_metrics_free(m);
}

static void test_histogram(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    const int64_t lat[] = {0,       4999,     5000,     5001,     250000,
                           2500000, 59999999, 60000000, 60000001, 3600000000LL};
    int64_t sum = 0;
    for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++) {
        tg_event_t ev = ev_of("acme", "chat", 200, TG_OUTCOME_BILLABLE);
        ev.latency_us = lat[i];
        sum += lat[i];
        tg_metrics_observe(b, &ev);
    }
    char *t = render(m);
    const char *les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                         "2.5",   "5",    "10",    "20",   "30",  "60",   "+Inf"};
    const double want[] = {3, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6, 8, 10};
    double prev = 0;
    for (int i = 0; i <= TG_METRICS_BUCKETS; i++) {
        char s[160];
        snprintf(
            s, sizeof s,
            "tollgate_request_duration_seconds_bucket{tenant=\"acme\",route=\"chat\",le=\"%s\"}",
            les[i]);
        double v = value(t, s);
        if (v != want[i]) fail_msg("le=%s: %g, expected %g", les[i], v, want[i]);
        assert_true(v >= prev);
        prev = v;
    }
    assert_true(
        value(t, "tollgate_request_duration_seconds_count{tenant=\"acme\",route=\"chat\"}") ==
        prev);
    double got = value(t, "tollgate_request_duration_seconds_sum{tenant=\"acme\",route=\"chat\"}");
    if (fabs(got - (double)sum / 1e6) > 1e-7)
        fail_msg("_sum %.6f, expected %lld us", got, (long long)sum);
    free(t);
    tg_metrics_free(m);
}

/* The upstream histogram counts only requests that made an upstream call (upstream_latency_us
 * > 0), in its own buckets, beside the total latency; a label set that never reached the
 * upstream has none. */
static void test_upstream_histogram(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(NULL);
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    const int64_t up[] = {1, 5000, 5001, 70000, 61000000};
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) {
        tg_event_t ev = ev_of("acme", "chat", 200, TG_OUTCOME_BILLABLE);
        ev.latency_us = up[i] + 300; /* the total: always later */
        ev.upstream_latency_us = up[i];
        tg_metrics_observe(b, &ev);
    }
    tg_event_t rej = ev_of("acme", "chat", 429, TG_OUTCOME_REJECTED); /* no upstream call */
    SET(&rej, reason, "rate_limited");
    tg_metrics_observe(b, &rej);
    tg_event_t only = ev_of("acme", "admin", 401, TG_OUTCOME_REJECTED);
    SET(&only, reason, "unauthorized");
    tg_metrics_observe(b, &only);
    char *t = render(m);
#define UP(le)                                                                                     \
    "tollgate_upstream_duration_seconds_bucket{tenant=\"acme\",route=\"chat\",le=\"" le "\"}"
    assert_true(value(t, UP("0.005")) == 2);
    assert_true(value(t, UP("0.01")) == 3);
    assert_true(value(t, UP("0.1")) == 4);
    assert_true(value(t, UP("60")) == 4);
    assert_true(value(t, UP("+Inf")) == 5);
    assert_true(
        value(t, "tollgate_upstream_duration_seconds_count{tenant=\"acme\",route=\"chat\"}") == 5);
    double sum = value(t, "tollgate_upstream_duration_seconds_sum{tenant=\"acme\",route=\"chat\"}");
    if (fabs(sum - 61.080002) > 1e-7) fail_msg("_sum %.6f, expected 61.080002", sum);
    /* The total counts all six requests of the route; the refused-only route has no
     * upstream series. */
    assert_true(
        value(t, "tollgate_request_duration_seconds_count{tenant=\"acme\",route=\"chat\"}") == 6);
    assert_true(
        value(t, "tollgate_upstream_duration_seconds_count{tenant=\"acme\",route=\"admin\"}") ==
        -1);
    assert_true(
        value(t, "tollgate_request_duration_seconds_count{tenant=\"acme\",route=\"admin\"}") == 1);
    free(t);
    tg_metrics_free(m);
}

/* A histogram the caller measured (the writer's batch time): per-bucket counts rendered
 * cumulative, le= in seconds, _count the total. */
static void test_caller_histogram(void **state)
{
    (void)state;
    const int64_t bounds[3] = {500, 1000, 2500000};
    const uint64_t counts[4] = {1, 0, 2, 1};
    tg_buf_t b = TG_BUF_INIT(SIZE_MAX);
    assert_int_equal(tg_metrics_histogram(&b, "w", bounds, 3, counts, 2601234), 0);
    assert_string_equal(tg_buf_str(&b), "w_bucket{le=\"0.0005\"} 1\n"
                                        "w_bucket{le=\"0.001\"} 1\n"
                                        "w_bucket{le=\"2.5\"} 3\n"
                                        "w_bucket{le=\"+Inf\"} 4\n"
                                        "w_sum 2.601234\n"
                                        "w_count 4\n");
    tg_buf_free(&b);
}

/* A per-tenant ratio from the caller (budget utilisation): under the tenant cap, the
 * tenants past it (and one named "_other") summed as sum(num) / sum(den); no budget (den 0)
 * left out; values the shortest decimal that reads back. */
static void test_tenant_ratio(void **state)
{
    (void)state;
    tg_metrics_t *m = tg_metrics_new(&(tg_metrics_caps_t){.max_tenants = 2});
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    tg_event_t ev = ev_of("acme", "r", 200, TG_OUTCOME_BILLABLE);
    tg_metrics_observe(b, &ev); /* acme: the first tenant name */
    const tg_metrics_ratio_t v[] = {
        {"acme", 1, 10}, {"be\"ta", 5, 4}, /* the second, and the cap reached */
        {"gamma", 1, 2}, {"delta", 1, 2},  {"_other", 1, 1}, {"nobudget", 7, 0}, {"acme", 0, 0},
    };
    tg_buf_t out = TG_BUF_INIT(SIZE_MAX);
    assert_int_equal(tg_metrics_tenant_ratio(m, &out, "u", "Use.", v, sizeof v / sizeof v[0]), 0);
    assert_string_equal(tg_buf_str(&out), "# HELP u Use.\n# TYPE u gauge\n"
                                          "u{tenant=\"_other\"} 0.6\n"
                                          "u{tenant=\"acme\"} 0.1\n"
                                          "u{tenant=\"be\\\"ta\"} 1.25\n");
    tg_buf_reset(&out);
    /* Nothing to show: the family alone. */
    assert_int_equal(tg_metrics_tenant_ratio(m, &out, "u", "Use.", NULL, 0), 0);
    assert_string_equal(tg_buf_str(&out), "# HELP u Use.\n# TYPE u gauge\n");
    tg_buf_free(&out);
    /* The registry's cap is shared: the request counters see the same two names. */
    ev = ev_of("gamma", "r", 200, TG_OUTCOME_BILLABLE);
    tg_metrics_observe(b, &ev);
    char *t = render(m);
    assert_true(value(t, REQ("_other", "r", "billable", "2xx")) == 1);
    free(t);
    tg_metrics_free(m);
}

/* The registry, filled with one of each, plus the process families a server adds. */
static char *full_text(void)
{
    tg_metrics_t *m = tg_metrics_new(NULL);
    tg_metrics_block_t *b = tg_metrics_block_new(m);
    tg_event_t ev = ev_of("acme", "chat", 200, TG_OUTCOME_BILLABLE);
    ev.tokens_in = 10;
    ev.tokens_out = 3;
    ev.cost_micros = 9;
    ev.latency_us = 123456;
    ev.upstream_latency_us = 120000;
    SET(&ev, model, "gpt-\"4o\"\n\xff");
    tg_metrics_observe(b, &ev);
    ev = ev_of("we\\ird\"\n", "", 429, TG_OUTCOME_REJECTED);
    SET(&ev, reason, "rate_limited");
    tg_metrics_observe(b, &ev);
    tg_metrics_observe_tool(b, "acme", "t\"ool\n", 1);
    tg_buf_t out = TG_BUF_INIT(SIZE_MAX);
    assert_int_equal(tg_metrics_family(&out, "tollgate_requests_inflight", "gauge", "In flight."),
                     0);
    assert_int_equal(tg_metrics_sample(&out, "tollgate_requests_inflight", -2), 0);
    const int64_t bounds[3] = {500, 1000, 2500000};
    const uint64_t counts[4] = {1, 0, 2, 1};
    assert_int_equal(tg_metrics_family(&out, "tollgate_writer_batch_duration_seconds", "histogram",
                                       "Batch time."),
                     0);
    assert_int_equal(tg_metrics_histogram(&out, "tollgate_writer_batch_duration_seconds", bounds, 3,
                                          counts, 7000),
                     0);
    assert_int_equal(tg_metrics_render(m, &out), 0);
    const tg_metrics_ratio_t use[] = {{"acme", 1, 3}, {"we\\ird\"\n", 9, 8}};
    assert_int_equal(tg_metrics_tenant_ratio(m, &out, "tollgate_budget_utilisation",
                                             "Spend over budget.", use, 2),
                     0);
    tg_metrics_free(m);
    return tg_buf_take(&out);
}

static void test_every_line_parses(void **state)
{
    (void)state;
    char *t = full_text();
    regex_t help, type, sample;
    const char *name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
    const char *label = "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\"";
    char re[1024];
    snprintf(re, sizeof re, "^# HELP %s [^\n]*$", name);
    assert_int_equal(regcomp(&help, re, REG_EXTENDED | REG_NOSUB), 0);
    snprintf(re, sizeof re, "^# TYPE %s (counter|gauge|histogram)$", name);
    assert_int_equal(regcomp(&type, re, REG_EXTENDED | REG_NOSUB), 0);
    snprintf(re, sizeof re, "^%s(\\{%s(,%s)*\\})? -?[0-9]+(\\.[0-9]+)?$", name, label, label);
    assert_int_equal(regcomp(&sample, re, REG_EXTENDED | REG_NOSUB), 0);
    int nsamples = 0, ntypes = 0;
    char typed[64][80];
    for (char *line = t, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        assert_non_null(end); /* the text ends with a newline */
        *end = '\0';
        if (!strncmp(line, "# HELP ", 7)) {
            assert_int_equal(regexec(&help, line, 0, NULL, 0), 0);
        } else if (!strncmp(line, "# TYPE ", 7)) {
            if (regexec(&type, line, 0, NULL, 0)) fail_msg("bad TYPE line: %s", line);
            assert_true(ntypes < 64);
            snprintf(typed[ntypes++], 80, "%.*s", (int)strcspn(line + 7, " "), line + 7);
        } else {
            if (regexec(&sample, line, 0, NULL, 0)) fail_msg("bad sample line: %s", line);
            /* A sample belongs to the family whose TYPE came last. */
            assert_true(ntypes > 0);
            const char *fam = typed[ntypes - 1];
            if (strncmp(line, fam, strlen(fam))) fail_msg("%s outside its family %s", line, fam);
            nsamples++;
        }
    }
    assert_true(nsamples > 20);
    assert_int_equal(ntypes, 15);
    regfree(&help);
    regfree(&type);
    regfree(&sample);
    free(t);
}

static void test_promtool_check_metrics(void **state)
{
    (void)state;
    char *t = full_text();
    /* Not finding promtool fails: the sh exit code 127. */
    FILE *p = popen("promtool check metrics >/dev/null 2>promtool.err", "w");
    assert_non_null(p);
    fputs(t, p);
    int st = pclose(p);
    free(t);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        FILE *e = fopen("promtool.err", "r");
        char msg[2048] = "";
        if (e) {
            msg[fread(msg, 1, sizeof msg - 1, e)] = '\0';
            fclose(e);
        }
        remove("promtool.err");
        fail_msg("promtool check metrics: exit %d%s: %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 WIFEXITED(st) && WEXITSTATUS(st) == 127
                     ? " (promtool not found: scripts/deps.sh installs the Debian package "
                       "prometheus)"
                     : "",
                 msg);
    }
    remove("promtool.err");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_by_labels),
        cmocka_unit_test(test_sums_over_blocks),
        cmocka_unit_test(test_scrape_while_writing),
        cmocka_unit_test(test_other_at_the_caps),
        cmocka_unit_test(test_other_does_not_allocate_per_value),
        cmocka_unit_test(test_hostile_label_values),
        cmocka_unit_test(test_values_equal_once_cleaned_share_a_series),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_upstream_histogram),
        cmocka_unit_test(test_caller_histogram),
        cmocka_unit_test(test_tenant_ratio),
        cmocka_unit_test(test_every_line_parses),
        cmocka_unit_test(test_promtool_check_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
