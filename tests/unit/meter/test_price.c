/* Tests src/meter/price.c: every rule of meter/price.h with costs computed by hand
 * (the arithmetic is written next to each expectation), the single half-up rounding,
 * saturation, effective dating, store rows over config rows with -1 fields falling
 * back, the price flags, estimate(), and pricing on several threads while the
 * snapshot is swapped (run under ASan/UBSan by `make unit-asan`).
 *
 * Store rows come from a fake tg_store_t whose ops table has only price_list and
 * policy_version, so these tests do not depend on the sqlite backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "meter/price.h"
#include "store/backend.h"
#include "util/money.h"

#define NOW  1700000000000000LL /* 2023-11-14, Unix microseconds */
#define DAY  86400000000LL
#define USD  1000000LL
#define ANY  (-1)
#define NONE (-1)

/* ---- rows and events ----------------------------------------------------- */

static int64_t usd(const char *s)
{
    int64_t m = 0;
    if (tg_money_parse(s, &m) != 0) fail_msg("bad amount %s", s);
    return m;
}

static tg_price_row_t row(const char *meter, const char *name, int64_t eff)
{
    tg_price_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.meter, sizeof r.meter, "%s", meter);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.effective_us = eff;
    r.input_micros = r.output_micros = r.cached_micros = r.cache_write_micros = NONE;
    r.request_micros = r.gb_micros = r.call_micros = NONE;
    return r;
}

static tg_price_row_t model(const char *name, int64_t eff, const char *in, const char *out,
                            const char *cached, const char *cw)
{
    tg_price_row_t r = row("model", name, eff);
    r.input_micros = in ? usd(in) : NONE;
    r.output_micros = out ? usd(out) : NONE;
    r.cached_micros = cached ? usd(cached) : NONE;
    r.cache_write_micros = cw ? usd(cw) : NONE;
    return r;
}

static tg_price_row_t route(const char *name, int64_t eff, const char *req, const char *gb)
{
    tg_price_row_t r = row("route", name, eff);
    r.request_micros = req ? usd(req) : NONE;
    r.gb_micros = gb ? usd(gb) : NONE;
    return r;
}

static tg_price_row_t tool(const char *name, int64_t eff, const char *call)
{
    tg_price_row_t r = row("tool", name, eff);
    r.call_micros = call ? usd(call) : NONE;
    return r;
}

static tg_event_t ev_ai(const char *route_name, const char *model_name, int64_t in, int64_t out,
                        int64_t cached, int64_t cw)
{
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.ts_us = NOW;
    e.outcome = TG_OUTCOME_BILLABLE;
    e.status = 200;
    e.tokens_in = in;
    e.tokens_out = out;
    e.tokens_cached = cached;
    e.tokens_cache_write = cw;
    e.cost_micros = 12345; /* junk: pricing must overwrite it */
    snprintf(e.price_flag, sizeof e.price_flag, "junk");
    snprintf(e.route, sizeof e.route, "%s", route_name);
    snprintf(e.model, sizeof e.model, "%s", model_name);
    return e;
}

static tg_event_t ev_http(const char *route_name, int64_t bytes_in, int64_t bytes_out)
{
    tg_event_t e = ev_ai(route_name, "", TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN,
                         TG_TOKENS_UNKNOWN);
    e.bytes_in = bytes_in;
    e.bytes_out = bytes_out;
    return e;
}

static tg_pricebook_t *book(const tg_price_row_t *rows, size_t n)
{
    tg_pricebook_t *pb = tg_pricebook_new();
    assert_non_null(pb);
    tg_err_t err = {{0}};
    if (tg_pricebook_set_defaults(pb, rows, n, &err) != 0) fail_msg("%s", err.msg);
    return pb;
}

#define BOOK(...)                                                                                  \
    book((const tg_price_row_t[]){__VA_ARGS__},                                                    \
         sizeof((const tg_price_row_t[]){__VA_ARGS__}) / sizeof(tg_price_row_t))

/* Prices e on a route of kind k; checks cost and flag. */
#define PRICE(pb, e, k, want_cost, want_flag)                                                      \
    do {                                                                                           \
        tg_pricebook_price((pb), &(e), (k));                                                       \
        assert_int_equal((e).cost_micros, (want_cost));                                            \
        assert_string_equal((e).price_flag, (want_flag));                                          \
    } while (0)

/* ---- a fake store: price_list and policy_version ------------------------- */

static tg_price_row_t stored[64];
static size_t nstored;
static int store_fails;

static int f_price_list(tg_store_t *s, int (*cb)(const tg_price_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    (void)s;
    if (store_fails) return tg_err_set(err, "disk on fire");
    for (size_t i = 0; i < nstored; i++) {
        int rc = cb(&stored[i], ud);
        if (rc) return rc;
    }
    return 0;
}

static int f_policy_version(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    (void)s, (void)err;
    *out = 1;
    return 0;
}

static const struct tg_store_price_ops fake_prices = {.price_list = f_price_list};
static const struct tg_store_policy_ops fake_policy = {.policy_version = f_policy_version};
static tg_store_t fake = {.prices = &fake_prices, .policy = &fake_policy};

static void load(tg_pricebook_t *pb)
{
    tg_err_t err = {{0}};
    if (tg_pricebook_load(pb, &fake, &err) != 0) fail_msg("%s", err.msg);
}

static int reset(void **state)
{
    (void)state;
    nstored = 0;
    store_fails = 0;
    return 0;
}

/* ---- the model part ------------------------------------------------------ */

static void test_openai(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(model("gpt-4o-mini", 0, "0.15", "0.60", "0.075", NULL),
                              model("plain", 0, "1", "2", NULL, NULL));
    /* (1234-1000)*150000 + 1000*75000 + 567*600000 = 35,100,000 + 75,000,000 + 340,200,000
     * = 450,300,000 in 10^-6 micro-USD = 450.3 micro-USD -> 450 */
    tg_event_t e = ev_ai("chat", "gpt-4o-mini", 1234, 567, 1000, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 450, "");
    /* one more output token: +0.6 -> 450.9 -> 451 */
    e = ev_ai("chat", "gpt-4o-mini", 1234, 568, 1000, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 451, "");
    /* cached unknown counts as 0: 1234*150000 + 567*600000 = 525,300,000 -> 525.3 -> 525 */
    e = ev_ai("chat", "gpt-4o-mini", 1234, 567, TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN);
    PRICE(pb, e, TG_ROUTE_OPENAI, 525, "");
    /* cache_write is not an openai term: ignored */
    e = ev_ai("chat", "gpt-4o-mini", 1234, 567, 1000, 999999);
    PRICE(pb, e, TG_ROUTE_OPENAI, 450, "");
    /* cached unset defaults to input: (10-4)*1e6 + 4*1e6 + 5*2e6 = 2e7 -> 20 */
    e = ev_ai("chat", "plain", 10, 5, 4, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 20, "");
    /* more cached than input (bad report) is clamped to input: 10*75000 = 0.75 -> 1 */
    e = ev_ai("chat", "gpt-4o-mini", 10, 0, 50, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 1, "");
    /* no tokens at all: 0, still priced by its own row */
    e = ev_ai("chat", "gpt-4o-mini", 0, 0, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 0, "");
    tg_pricebook_free(pb);
}

static void test_anthropic(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(model("claude-sonnet-4", 0, "3", "15", "0.30", "3.75"),
                              model("plain", 0, "1", "2", NULL, NULL));
    /* in excludes cached and cache_write: 100*3e6 + 2000*3e5 + 1000*3.75e6 + 50*15e6
     * = 3e8 + 6e8 + 3.75e9 + 7.5e8 = 5.4e9 -> 5400 */
    tg_event_t e = ev_ai("claude", "claude-sonnet-4", 100, 50, 2000, 1000);
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, 5400, "");
    /* cached and cache_write unset default to input: (10+20+30)*1e6 + 5*2e6 = 7e7 -> 70 */
    e = ev_ai("claude", "plain", 10, 5, 20, 30);
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, 70, "");
    /* unknown cache counts are 0: 10*1e6 + 5*2e6 = 2e7 -> 20 */
    e = ev_ai("claude", "plain", 10, 5, TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN);
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, 20, "");
    /* the same counts on an openai route read in as including cached: 0 */
    e = ev_ai("claude", "claude-sonnet-4", 1, 0, 1, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 0, "");    /* 0*3e6 + 1*3e5 = 0.3 -> 0 */
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, 3, ""); /* 1*3e6 + 1*3e5 = 3.3 -> 3 */
    tg_pricebook_free(pb);
}

/* ---- rounding and saturation ---------------------------------------------- */

static void test_rounding(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(model("half", 0, "0.5", "0.499999", NULL, NULL),
                              model("third", 0, "0.3", "0", NULL, NULL),
                              route("api", 0, NULL, "0.2"), route("fee", 0, "0.000001", "0.5"));
    tg_event_t e = ev_ai("x", "half", 1, 0, 0, 0); /* 0.5 exactly: up */
    PRICE(pb, e, TG_ROUTE_OPENAI, 1, "");
    e = ev_ai("x", "half", 3, 0, 0, 0); /* 1.5 -> 2 */
    PRICE(pb, e, TG_ROUTE_OPENAI, 2, "");
    e = ev_ai("x", "half", 0, 1, 0, 0); /* 0.499999 -> 0 */
    PRICE(pb, e, TG_ROUTE_OPENAI, 0, "");
    e = ev_ai("x", "half", 1, 1, 0, 0); /* 0.5 + 0.499999 = 0.999999 -> 1 */
    PRICE(pb, e, TG_ROUTE_OPENAI, 1, "");
    /* One rounding per event, not per part: 0.3 (one token at 0.3 USD/M) + 0.2 (1000 bytes
     * at 0.2 USD/GB = 1000 * 200000 = 2e8 in 10^-9 micro) = 0.5 -> 1, where rounding each
     * part would give 0 + 0. */
    e = ev_ai("api", "third", 1, 0, 0, 0);
    e.bytes_in = 600;
    e.bytes_out = 400;
    PRICE(pb, e, TG_ROUTE_OPENAI, 1, "");
    e.bytes_in = 599; /* 0.3 + 0.1998 = 0.4998 -> 0 */
    PRICE(pb, e, TG_ROUTE_OPENAI, 0, "");
    /* Whole parts are added as they are: request 1 micro + 1 byte at 0.5 USD/GB
     * (5e5 in 10^-9 micro = 0.0005) -> 1 */
    e = ev_http("fee", 1, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 1, "");
    /* 10^9 bytes at 0.5 USD/GB = 500000 exactly, + 1 */
    e = ev_http("fee", 500000000, 500000000);
    PRICE(pb, e, TG_ROUTE_HTTP, 500001, "");
    /* 1 byte short of 1 GB: 499999.9995 -> 500000, + 1 */
    e = ev_http("fee", 500000000, 499999999);
    PRICE(pb, e, TG_ROUTE_HTTP, 500001, "");
    /* 999,000,999 bytes: 499,500,499,500,000 in 10^-9 micro = 499500.4995 -> 499500, + 1 */
    e = ev_http("fee", 999000999, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 499501, "");
    /* and 999,001,000 bytes: 499500.5 exactly -> 499501, + 1 */
    e = ev_http("fee", 999001000, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 499502, "");
    tg_pricebook_free(pb);
}

static void test_saturation(void **state)
{
    (void)state;
    tg_price_row_t big = model("big", 0, "9000000000000", "9000000000000", NULL, NULL);
    tg_price_row_t huge_route = route("api", 0, "9000000000000", "9000000000000");
    tg_price_row_t huge_tool = tool("t", 0, "9000000000000");
    tg_pricebook_t *pb = BOOK(big, model("m", 0, "1", "1", NULL, NULL), huge_route, huge_tool,
                              route("small", 0, NULL, "1"));
    tg_event_t e = ev_ai("x", "big", INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX);
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, INT64_MAX, "");
    PRICE(pb, e, TG_ROUTE_OPENAI, INT64_MAX, "");
    /* 9e18 request + 9e18 call: saturates too */
    e = ev_http("api", 0, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 9000000000000LL * USD, "");
    snprintf(e.tool, sizeof e.tool, "t");
    PRICE(pb, e, TG_ROUTE_MCP, INT64_MAX, "");
    /* bytes in + out beyond INT64_MAX do not wrap: INT64_MAX * 2 bytes at 1 USD/GB
     * = 2 * 9223372036854775807 / 1000 = 18446744073709551.614 -> ...552 */
    e = ev_http("small", INT64_MAX, INT64_MAX);
    PRICE(pb, e, TG_ROUTE_HTTP, 18446744073709552LL, "");
    /* Large but representable: exact. 10^12 tokens each way at 1 USD/M = 2e12 micro-USD. */
    e = ev_ai("x", "m", 1000000000000LL, 1000000000000LL, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 2000000000000LL, "");
    /* Just below the cap: (INT64_MAX / 10^6 rounded down) * 10^6 tokens at 1 USD/M */
    int64_t t = INT64_MAX / USD * USD;
    e = ev_ai("x", "m", t, 0, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, t, "");
    /* negative byte counts (never produced) count as 0 */
    e = ev_http("small", -5, -7);
    PRICE(pb, e, TG_ROUTE_HTTP, 0, "");
    tg_pricebook_free(pb);
}

/* ---- flags ----------------------------------------------------------------- */

static void test_flags(void **state)
{
    (void)state;
    tg_pricebook_t *pb =
        BOOK(model("gpt-4o-mini", 0, "0.15", "0.60", "0.075", NULL),
             model("*", 0, "10", "30", NULL, NULL), route("chat", 0, "0.0001", NULL));
    /* an unknown model: the fallback row, flagged. 100*10e6 + 10*30e6 = 1.3e9 -> 1300 + 100 */
    tg_event_t e = ev_ai("chat", "gpt-5-turbo", 100, 10, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 1400, "fallback");
    e = ev_ai("chat", "", 100, 10, 0, 0); /* no model named: also the fallback */
    PRICE(pb, e, TG_ROUTE_OPENAI, 1400, "fallback");
    e = ev_ai("chat", "gpt-4o-mini", 100, 10, 0, 0); /* 15000000 + 6000000 -> 21 + 100 */
    PRICE(pb, e, TG_ROUTE_OPENAI, 121, "");
    /* tokens unknown: no model part (the route part stays), flagged */
    e = ev_ai("chat", "gpt-4o-mini", TG_TOKENS_UNKNOWN, 10, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 100, "tokens_unknown");
    e = ev_ai("chat", "gpt-4o-mini", 100, TG_TOKENS_UNKNOWN, 0, 0);
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, 100, "tokens_unknown");
    e = ev_ai("chat", "nobody-knows", TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN, 0, 0);
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, 100, "tokens_unknown");
    /* http and mcp routes have no model part and no token flag */
    e = ev_ai("chat", "gpt-4o-mini", TG_TOKENS_UNKNOWN, TG_TOKENS_UNKNOWN, 0, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 100, "");
    PRICE(pb, e, TG_ROUTE_MCP, 100, "");
    e = ev_ai("chat", "gpt-4o-mini", 100, 10, 0, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 100, "");
    tg_pricebook_free(pb);

    /* No fallback row: unpriced; the route part still applies. */
    pb = BOOK(model("gpt-4o-mini", 0, "0.15", "0.60", NULL, NULL), route("*", 0, "0.001", NULL));
    e = ev_ai("chat", "gpt-5-turbo", 100, 10, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 1000, "unpriced");
    tg_pricebook_free(pb);

    /* An empty book: everything is unpriced and free. */
    pb = tg_pricebook_new();
    assert_non_null(pb);
    e = ev_ai("chat", "gpt-4o-mini", 100, 10, 0, 0);
    PRICE(pb, e, TG_ROUTE_ANTHROPIC, 0, "unpriced");
    e = ev_http("chat", 100, 100);
    PRICE(pb, e, TG_ROUTE_HTTP, 0, "");
    tg_pricebook_free(pb);
}

/* Model names match case-insensitively; a dated snapshot or a provider's variant falls back
 * to its base model's row unless it has its own (util/modelname.h). */
static void test_model_names(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(model("gpt-4o-mini", 0, "0.15", "0.60", NULL, NULL),
                              model("Claude-3-5-Sonnet", 0, "3", "15", NULL, NULL),
                              model("gpt-4o-mini-2024-07-18", 0, "1", "1", NULL, NULL));
    /* 100*150000 + 10*600000 = 21,000,000 -> 21 */
    static const char *const mini[] = {"GPT-4o-mini", "gpt-4o-mini", "GPT-4O-MINI-2024-08-06",
                                       "gpt-4o-mini@x", "gpt-4o-mini:0"};
    for (size_t i = 0; i < sizeof mini / sizeof mini[0]; i++) {
        tg_event_t e = ev_ai("chat", mini[i], 100, 10, 0, 0);
        PRICE(pb, e, TG_ROUTE_OPENAI, 21, "");
        assert_true(tg_pricebook_model_priced(pb, mini[i], NOW));
    }
    /* A snapshot with a row of its own keeps it, in any case: 100*1e6 + 10*1e6 -> 110. */
    tg_event_t e = ev_ai("chat", "GPT-4o-mini-2024-07-18", 100, 10, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 110, "");
    /* A row written in capitals matches lower case; Vertex and Bedrock spellings fall back
     * through two steps: 100*3e6 + 10*15e6 = 450,000,000 -> 450. */
    static const char *const sonnet[] = {"claude-3-5-sonnet", "claude-3-5-sonnet-20241022",
                                         "claude-3-5-sonnet@20240620",
                                         "claude-3-5-sonnet-20240620@vertex"};
    for (size_t i = 0; i < sizeof sonnet / sizeof sonnet[0]; i++) {
        e = ev_ai("chat", sonnet[i], 100, 10, 0, 0);
        PRICE(pb, e, TG_ROUTE_ANTHROPIC, 450, "");
    }
    /* Not a variant of a priced model: unpriced (no "*" row), and so reported. */
    static const char *const other[] = {"gpt-4o", "gpt-4o-mini2", "xgpt-4o-mini", ""};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        e = ev_ai("chat", other[i], 100, 10, 0, 0);
        PRICE(pb, e, TG_ROUTE_OPENAI, 0, "unpriced");
        assert_false(tg_pricebook_model_priced(pb, other[i], NOW));
    }
    tg_pricebook_free(pb);
    /* With a "*" row every model is priced. */
    pb = BOOK(model("*", 0, "1", "1", NULL, NULL));
    assert_true(tg_pricebook_model_priced(pb, "anything", NOW));
    assert_true(tg_pricebook_model_priced(pb, "", NOW));
    tg_pricebook_free(pb);
    /* A row dated later is not in force yet. */
    pb = BOOK(model("gpt-4o", NOW + DAY, "1", "1", NULL, NULL));
    assert_false(tg_pricebook_model_priced(pb, "gpt-4o", NOW));
    assert_true(tg_pricebook_model_priced(pb, "GPT-4o-2024-05-13", NOW + DAY));
    tg_pricebook_free(pb);
}

static void test_not_billable(void **state)
{
    (void)state;
    tg_pricebook_t *pb =
        BOOK(model("*", 0, "10", "30", NULL, NULL), route("*", 0, "1", "1"), tool("*", 0, "1"));
    const int32_t outcomes[] = {TG_OUTCOME_FAILED, TG_OUTCOME_REJECTED};
    for (size_t i = 0; i < 2; i++) {
        tg_event_t e = ev_ai("chat", "unknown-model", 100, 10, 0, 0);
        e.outcome = outcomes[i];
        e.bytes_in = e.bytes_out = 1000000000;
        snprintf(e.tool, sizeof e.tool, "search");
        PRICE(pb, e, TG_ROUTE_OPENAI, 0, ""); /* not "fallback": not priced at all */
        PRICE(pb, e, TG_ROUTE_MCP, 0, "");
        e.tokens_in = TG_TOKENS_UNKNOWN;
        PRICE(pb, e, TG_ROUTE_ANTHROPIC, 0, ""); /* not "tokens_unknown" either */
    }
    tg_pricebook_free(pb);
}

/* ---- route and tool parts -------------------------------------------------- */

static void test_route_part(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(route("api", 0, "0.0001", "0.09"), route("*", 0, "0.00001", NULL),
                              route("bytes", 0, NULL, "0.09"), model("m", 0, "1", "1", NULL, NULL));
    /* 100 + 10^9 bytes (in + out) at 90000 per GB */
    tg_event_t e = ev_http("api", 400000000, 600000000);
    PRICE(pb, e, TG_ROUTE_HTTP, 90100, "");
    /* 1234 bytes: 1234 * 90000 = 111,060,000 in 10^-9 micro = 0.111 -> 100 */
    e = ev_http("api", 1000, 234);
    PRICE(pb, e, TG_ROUTE_HTTP, 100, "");
    /* 5,555,556 bytes: 500,000,040,000 -> 500.00004 -> 500 + 100 */
    e = ev_http("api", 5555556, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 600, "");
    /* another route: the "*" row, no gb: 10, and no flag for a route priced by "*" */
    e = ev_http("other", 1000000000, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 10, "");
    /* request unset: per byte only. 3 GB -> 270000 */
    e = ev_http("bytes", 3000000000LL, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 270000, "");
    /* AI route: model part and route part add up. 1000*1e6 + 1000*1e6 = 2e9 -> 2000; + 100
     * + 10^6 bytes * 90000 = 9e10 -> 90 */
    e = ev_ai("api", "m", 1000, 1000, 0, 0);
    e.bytes_in = 500000;
    e.bytes_out = 500000;
    PRICE(pb, e, TG_ROUTE_OPENAI, 2190, "");
    tg_pricebook_free(pb);
}

static void test_tool_part(void **state)
{
    (void)state;
    tg_pricebook_t *pb =
        BOOK(tool("search", 0, "0.002"), tool("*", 0, "0.0005"), route("mcp", 0, "0.0001", NULL));
    tg_event_t e = ev_http("mcp", 0, 0);
    snprintf(e.tool, sizeof e.tool, "search");
    PRICE(pb, e, TG_ROUTE_MCP, 2100, "");
    snprintf(e.tool, sizeof e.tool, "fetch"); /* the "*" tool row */
    PRICE(pb, e, TG_ROUTE_MCP, 600, "");
    e.tool[0] = '\0'; /* not a tools/call: the route part only */
    PRICE(pb, e, TG_ROUTE_MCP, 100, "");
    snprintf(e.tool, sizeof e.tool, "search"); /* a tool on a non-MCP route is not billed */
    PRICE(pb, e, TG_ROUTE_HTTP, 100, "");
    tg_pricebook_free(pb);

    pb = BOOK(tool("search", 0, "0.002")); /* no "*" tool: other tools cost nothing, no flag */
    e = ev_http("mcp", 0, 0);
    snprintf(e.tool, sizeof e.tool, "fetch");
    PRICE(pb, e, TG_ROUTE_MCP, 0, "");
    tg_pricebook_free(pb);
}

/* ---- effective dating and the store --------------------------------------- */

static void test_effective_dating(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(model("m", 0, "1", "2", NULL, NULL));
    stored[nstored++] = model("m", NOW + DAY, "5", "6", NULL, NULL);     /* tomorrow */
    stored[nstored++] = model("m", NOW - DAY, "3", "4", NULL, NULL);     /* yesterday */
    stored[nstored++] = model("m", NOW - 3 * DAY, "7", "8", NULL, NULL); /* 3 days ago */
    load(pb);
    tg_event_t e = ev_ai("r", "m", 1000, 1000, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 7000, ""); /* yesterday's: 3000 + 4000 */
    e.ts_us = NOW + DAY - 1;                 /* not yet tomorrow */
    PRICE(pb, e, TG_ROUTE_OPENAI, 7000, "");
    e.ts_us = NOW + DAY; /* from its effective_us on */
    PRICE(pb, e, TG_ROUTE_OPENAI, 11000, "");
    e.ts_us = NOW - 2 * DAY; /* an old event keeps the price it had */
    PRICE(pb, e, TG_ROUTE_OPENAI, 15000, "");
    e.ts_us = NOW - 5 * DAY; /* before any store row: the config row */
    PRICE(pb, e, TG_ROUTE_OPENAI, 3000, "");
    tg_pricebook_free(pb);

    /* A model whose only row starts tomorrow is unknown today: the fallback applies. */
    nstored = 0;
    pb = BOOK(model("*", 0, "10", "10", NULL, NULL));
    stored[nstored++] = model("new", NOW + DAY, "1", "1", NULL, NULL);
    load(pb);
    e = ev_ai("r", "new", 1000, 0, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 10000, "fallback");
    e.ts_us = NOW + DAY;
    PRICE(pb, e, TG_ROUTE_OPENAI, 1000, "");
    /* the same for estimate() */
    assert_int_equal(tg_pricebook_estimate(pb, TG_ROUTE_OPENAI, "r", "new", "", 1000, 0, 0, NOW),
                     10000);
    assert_int_equal(
        tg_pricebook_estimate(pb, TG_ROUTE_OPENAI, "r", "new", "", 1000, 0, 0, NOW + DAY), 1000);
    tg_pricebook_free(pb);
}

static void test_store_fallback_fields(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(model("gpt-4o-mini", 0, "0.15", "0.60", "0.075", NULL),
                              route("api", 0, "0.0001", "0.09"), tool("search", 0, "0.002"));
    /* input raised from yesterday; output and cached left -1: the config's */
    stored[nstored++] = model("gpt-4o-mini", NOW - DAY, "0.20", NULL, NULL, NULL);
    /* gb changed, request left -1 */
    stored[nstored++] = route("api", NOW - DAY, NULL, "0.10");
    /* a model with no config row: unset output is 0, unset cached is input */
    stored[nstored++] = model("solo", NOW - DAY, "2", NULL, NULL, NULL);
    /* a tool row with call -1: the config's call */
    stored[nstored++] = tool("search", NOW - DAY, NULL);
    load(pb);
    /* (1000-200)*200000 + 200*75000 + 1000*600000 = 1.6e8 + 1.5e7 + 6e8 = 7.75e8 -> 775 */
    tg_event_t e = ev_ai("none", "gpt-4o-mini", 1000, 1000, 200, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 775, "");
    /* 100 + 10^9 bytes at 0.10 = 100100 */
    e = ev_http("api", 1000000000, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 100100, "");
    snprintf(e.tool, sizeof e.tool, "search");
    PRICE(pb, e, TG_ROUTE_MCP, 102100, "");
    /* solo: (1000-500)*2e6 + 500*2e6 + 1000*0 = 2e9 -> 2000 */
    e = ev_ai("none", "solo", 1000, 1000, 500, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 2000, "");

    /* set_defaults keeps the store rows, and their -1 fields follow the new config. */
    tg_price_row_t cfg2[] = {model("gpt-4o-mini", 0, "0.15", "1.00", "0.05", NULL)};
    assert_int_equal(tg_pricebook_set_defaults(pb, cfg2, 1, NULL), 0);
    /* (800*200000) + 200*50000 + 1000*1000000 = 1.6e8 + 1e7 + 1e9 = 1.17e9 -> 1170 */
    e = ev_ai("none", "gpt-4o-mini", 1000, 1000, 200, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 1170, "");
    /* the route row of the old config is gone; the store row's request -1 now means 0 */
    e = ev_http("api", 1000000000, 0);
    PRICE(pb, e, TG_ROUTE_HTTP, 100000, "");
    /* and an old event, before the store rows, uses the new config row */
    e = ev_ai("none", "gpt-4o-mini", 1000, 1000, 200, 0);
    e.ts_us = NOW - 2 * DAY;
    PRICE(pb, e, TG_ROUTE_OPENAI, 1130, ""); /* 1.2e8 + 1e7 + 1e9 */
    tg_pricebook_free(pb);
}

static void test_ties_and_odd_rows(void **state)
{
    (void)state;
    tg_pricebook_t *pb =
        BOOK(model("m", 0, "1", "1", NULL, NULL), model("dup", 0, "1", "1", NULL, NULL),
             model("dup", 0, "2", "2", NULL, NULL));
    /* two config rows of one (meter, name, effective_us): the later wins */
    tg_event_t e = ev_ai("r", "dup", 1000, 0, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 2000, "");
    /* a store row at the same effective_us as the config row replaces it */
    stored[nstored++] = model("m", 0, "4", NULL, NULL, NULL);
    stored[nstored++] = row("gauge", "m", 0); /* an unknown meter: ignored */
    load(pb);
    e = ev_ai("r", "m", 1000, 1000, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 5000, ""); /* input 4, output from config 1 */
    /* a negative amount other than -1 counts as unset too */
    nstored = 0;
    stored[nstored] = model("m", 0, "9", NULL, NULL, NULL);
    stored[nstored++].output_micros = -42;
    load(pb);
    PRICE(pb, e, TG_ROUTE_OPENAI, 10000, "");
    /* a load that fails keeps the current snapshot and store rows */
    store_fails = 1;
    tg_err_t err = {{0}};
    assert_int_equal(tg_pricebook_load(pb, &fake, &err), -1);
    assert_string_equal(err.msg, "disk on fire");
    PRICE(pb, e, TG_ROUTE_OPENAI, 10000, "");
    assert_int_equal(tg_pricebook_set_defaults(pb, NULL, 0, NULL), 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 9000, ""); /* the store row, output now 0 */
    tg_pricebook_free(pb);
}

/* Many names and dates: the table probes and the dated search stay right. */
static void test_many_rows(void **state)
{
    (void)state;
    enum { N = 700 };
    static tg_price_row_t rows[N * 3];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d", i);
        for (int d = 2; d >= 0; d--) { /* out of order on purpose */
            rows[n] = model(name, NOW - d * DAY, "1", "0", NULL, NULL);
            rows[n++].input_micros = (int64_t)i * 10 + (2 - d); /* micro-USD per 1M */
        }
    }
    tg_pricebook_t *pb = book(rows, n);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d", i);
        for (int d = 0; d <= 3; d++) {
            int64_t ts = NOW - d * DAY + 1;
            int64_t want = d == 3 ? 0 : (int64_t)i * 10 + (2 - d);
            /* 10^6 tokens at input_micros per 1M tokens = input_micros */
            int64_t got =
                tg_pricebook_estimate(pb, TG_ROUTE_OPENAI, "r", name, "", 1000000, 0, 0, ts);
            if (got != want)
                fail_msg("%s at -%d days: %lld, want %lld", name, d, (long long)got,
                         (long long)want);
        }
    }
    tg_pricebook_free(pb);
}

/* ---- estimate --------------------------------------------------------------- */

static void test_estimate(void **state)
{
    (void)state;
    tg_pricebook_t *pb = BOOK(model("gpt-4o-mini", 0, "0.15", "0.60", "0.075", NULL),
                              model("*", 0, "10", "30", NULL, NULL),
                              route("chat", 0, "0.0001", "0.09"), tool("search", 0, "0.002"));
    /* 1000*150000 + 4096*600000 = 1.5e8 + 2.4576e9 = 2.6076e9 -> 2607.6 -> 2608; + 100 */
    assert_int_equal(
        tg_pricebook_estimate(pb, TG_ROUTE_OPENAI, "chat", "gpt-4o-mini", "", 1000, 4096, 0, NOW),
        2708);
    /* + 2,000,000 bytes at 90000/GB = 1.8e11 -> 180 */
    assert_int_equal(tg_pricebook_estimate(pb, TG_ROUTE_OPENAI, "chat", "gpt-4o-mini", "", 1000,
                                           4096, 2000000, NOW),
                     2888);
    /* unknown model and NULLs: the fallback row. 10*10e6 + 10*30e6 = 4e8 -> 400 */
    assert_int_equal(
        tg_pricebook_estimate(pb, TG_ROUTE_ANTHROPIC, NULL, NULL, NULL, 10, 10, 0, NOW), 400);
    /* unknown tokens: no model part */
    assert_int_equal(
        tg_pricebook_estimate(pb, TG_ROUTE_OPENAI, "chat", "gpt-4o-mini", "", -1, 4096, 0, NOW),
        100);
    /* an MCP call: tool + route */
    assert_int_equal(tg_pricebook_estimate(pb, TG_ROUTE_MCP, "chat", "", "search", 0, 0, 0, NOW),
                     2100);
    /* an http route ignores tokens */
    assert_int_equal(
        tg_pricebook_estimate(pb, TG_ROUTE_HTTP, "chat", "gpt-4o-mini", "", 1000, 1000, 0, NOW),
        100);
    /* estimate and price agree on a billable event */
    tg_event_t e = ev_ai("chat", "gpt-4o-mini", 1000, 4096, 0, 0);
    e.bytes_in = 2000000;
    PRICE(pb, e, TG_ROUTE_OPENAI, 2888, "");
    tg_pricebook_free(pb);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void test_refresh_lifecycle(void **state)
{
    (void)state;
    /* The watcher opens its own connection; one that cannot open is retried in the
     * background (logged), never an error for the caller. Stop and free join it. */
    tg_pricebook_t *pb = BOOK(model("m", 0, "1", "1", NULL, NULL));
    tg_err_t err = {{0}};
    assert_int_equal(
        tg_pricebook_start_refresh(pb, "sqlite:/nonexistent-dir/tg-price-test.db", 10, &err), 0);
    tg_event_t e = ev_ai("r", "m", 1000, 0, 0, 0);
    PRICE(pb, e, TG_ROUTE_OPENAI, 1000, "");
    tg_pricebook_stop_refresh(pb);
    tg_pricebook_stop_refresh(pb); /* twice is fine */
    assert_int_equal(
        tg_pricebook_start_refresh(pb, "sqlite:/nonexistent-dir/tg-price-test.db", 10, &err), 0);
    tg_pricebook_free(pb); /* stops it first */
    tg_pricebook_free(NULL);
}

/* ---- threads ------------------------------------------------------------------ */

typedef struct race {
    tg_pricebook_t *pb;
    _Atomic int stop;
    _Atomic long priced;
    _Atomic int bad;
} race_t;

/* Book A: m at 1 USD/M in, route 100 micros. Book B: m at 3 USD/M, route 200. An event
 * of 1000 tokens in costs 1100 under A and 3200 under B; anything else is a torn read. */
static void *reader(void *arg)
{
    race_t *r = arg;
    long n = 0;
    while (!r->stop || n < 1000) {
        tg_event_t e = ev_ai("chat", "m", 1000, 0, 0, 0);
        tg_pricebook_price(r->pb, &e, TG_ROUTE_OPENAI);
        int64_t est =
            tg_pricebook_estimate(r->pb, TG_ROUTE_OPENAI, "chat", "m", "", 1000, 0, 0, NOW);
        if ((e.cost_micros != 1100 && e.cost_micros != 3200) || (est != 1100 && est != 3200) ||
            e.price_flag[0])
            r->bad = 1;
        n++;
    }
    r->priced += n;
    return NULL;
}

static void test_concurrent_swaps(void **state)
{
    (void)state;
    tg_price_row_t a[] = {model("m", 0, "1", "0", NULL, NULL), route("chat", 0, "0.0001", NULL)};
    stored[nstored++] = model("m", 0, "3", "0", NULL, NULL);
    stored[nstored++] = route("chat", 0, "0.0002", NULL);
    race_t r = {.pb = book(a, 2)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
    for (int i = 0; i < 300; i++) {
        /* B: the store rows override (same effective_us); A: no store rows */
        nstored = i % 2 ? 0 : 2;
        load(r.pb);
        assert_int_equal(tg_pricebook_set_defaults(r.pb, a, 2, NULL), 0);
    }
    r.stop = 1;
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_false(r.bad);
    assert_true(r.priced >= 4000);
    tg_pricebook_free(r.pb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_openai, reset),
        cmocka_unit_test_setup(test_anthropic, reset),
        cmocka_unit_test_setup(test_rounding, reset),
        cmocka_unit_test_setup(test_saturation, reset),
        cmocka_unit_test_setup(test_flags, reset),
        cmocka_unit_test_setup(test_model_names, reset),
        cmocka_unit_test_setup(test_not_billable, reset),
        cmocka_unit_test_setup(test_route_part, reset),
        cmocka_unit_test_setup(test_tool_part, reset),
        cmocka_unit_test_setup(test_effective_dating, reset),
        cmocka_unit_test_setup(test_store_fallback_fields, reset),
        cmocka_unit_test_setup(test_ties_and_odd_rows, reset),
        cmocka_unit_test_setup(test_many_rows, reset),
        cmocka_unit_test_setup(test_estimate, reset),
        cmocka_unit_test_setup(test_refresh_lifecycle, reset),
        cmocka_unit_test_setup(test_concurrent_swaps, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
