/* Tests src/bill/bill.c with values only (no socket, no loop): the estimate admission
 * reserves, a batch's tools admitted in one call, the outcome of an answer and its reason,
 * the estimate of unknown tokens (a client that left a drained answer vs one that did
 * not), Anthropic's cache tokens in what limits are settled with, the price of a batch
 * whose calls got mixed results, the asked model's price, decode flags, and the budget
 * settled to the actual cost. A fake store gives the policy its budget and tool limit
 * (as tests/unit/policy/test_policy.c does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bill/bill.h"
#include "policy/fake_store.h"

#define S 1000000000ULL
/* 2026-11-18T07:33:20Z: the wall clock of every event and admission. */
#define WALL 1795000000000000LL
#define USD  1000000LL /* micro-USD */

/* The fake store: tests/unit/policy/fake_store.h. */

static void limit(const char *tenant, const char *scope, const char *value, int64_t n,
                  int64_t period_s)
{
    tg_limit_row_t *r = &limits[nlimits++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    snprintf(r->scope, sizeof r->scope, "%s", scope);
    snprintf(r->value, sizeof r->value, "%s", value);
    r->limit = n;
    r->period_s = period_s;
}

static void budget(const char *tenant, int64_t micros)
{
    tg_budget_row_t *r = &budgets[nbudgets++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    r->monthly_micros = micros;
    r->hard = 1;
    r->thresholds[0] = 100;
    r->nthresholds = 1;
}

/* ---- prices -------------------------------------------------------------------------- */

static tg_price_row_t row(const char *meter, const char *name)
{
    tg_price_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.meter, sizeof r.meter, "%s", meter);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.input_micros = r.output_micros = r.cached_micros = r.cache_write_micros = -1;
    r.request_micros = r.gb_micros = r.call_micros = -1;
    return r;
}

/* Per 1M tokens: "m" 1 USD in, 2 USD out, 0.5 cached, 1.25 cache write. Route "mcp" 0.01
 * USD a request; tools "a" 0.5 USD and "b" 0.25 USD a call. No "*" row: other models are
 * unpriced. */
static tg_pricebook_t *book(void)
{
    tg_price_row_t rows[4];
    rows[0] = row("model", "m");
    rows[0].input_micros = 1 * USD;
    rows[0].output_micros = 2 * USD;
    rows[0].cached_micros = USD / 2;
    rows[0].cache_write_micros = USD + USD / 4;
    rows[1] = row("route", "mcp");
    rows[1].request_micros = USD / 100;
    rows[2] = row("tool", "a");
    rows[2].call_micros = USD / 2;
    rows[3] = row("tool", "b");
    rows[3].call_micros = USD / 4;
    tg_pricebook_t *pb = tg_pricebook_new();
    assert_non_null(pb);
    tg_err_t err = {{0}};
    if (tg_pricebook_set_defaults(pb, rows, 4, &err) != 0) fail_msg("%s", err.msg);
    return pb;
}

typedef struct fix {
    tg_bill_env_t env;
    tg_ip_t client;
} fix_t;

static fix_t fix;

static int setup(void **state)
{
    (void)state;
    nlimits = npauses = nrules = ntool_rules = nbudgets = nalerts = 0;
    store_spend = 0;
    return 0;
}

/* The environment, once the fake store holds what the test wants. */
static void env_up(int with_prices, int64_t concurrency)
{
    fix.env.policy = tg_policy_new();
    assert_non_null(fix.env.policy);
    tg_policy_defaults_t d = {.concurrency = concurrency};
    tg_policy_set_defaults(fix.env.policy, &d);
    assert_int_equal(tg_policy_load(fix.env.policy, &store, WALL, NULL), 0);
    fix.env.prices = with_prices ? book() : NULL;
    assert_int_equal(tg_ip_parse("192.0.2.1", 9, &fix.client), 0);
}

static void env_down(void)
{
    tg_policy_free(fix.env.policy);
    tg_pricebook_free(fix.env.prices);
}

static tg_event_t event(const char *tenant, const char *route, const char *model, const char *tool)
{
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.ts_us = WALL;
    e.tokens_in = e.tokens_out = e.tokens_cached = e.tokens_cache_write = TG_TOKENS_UNKNOWN;
    TG_EVENT_SET(&e, tenant, tenant, strlen(tenant));
    TG_EVENT_SET(&e, route, route, strlen(route));
    TG_EVENT_SET(&e, model, model, strlen(model));
    TG_EVENT_SET(&e, tool, tool, strlen(tool));
    return e;
}

static tg_bill_ask_t ask_ai(int64_t body, int64_t max_output, int64_t choices)
{
    tg_bill_ask_t a = {.kind = TG_ROUTE_OPENAI,
                       .route = "ai",
                       .ai = 1,
                       .body_bytes = body,
                       .forward_bytes = body,
                       .max_output = max_output,
                       .choices = choices,
                       .default_output = 4096};
    return a;
}

static tg_bill_ask_t ask_mcp(const char *const *tools, size_t n, int64_t bytes)
{
    tg_bill_ask_t a = {.kind = TG_ROUTE_MCP, .route = "mcp", .forward_bytes = bytes};
    for (size_t i = 0; i < n; i++)
        a.tools[a.ntools++] = tools[i];
    return a;
}

static tg_bill_answer_t answer(tg_route_kind_t kind)
{
    tg_bill_answer_t a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    a.out_est = -1;
    a.default_output = 4096;
    a.asked_model = "";
    a.decode_flag = "";
    return a;
}

/* ---- admission ------------------------------------------------------------------------ */

static void test_output_bound(void **state)
{
    (void)state;
    assert_int_equal(tg_bill_output_bound(500, 3, 4096), 500);            /* the request's own */
    assert_int_equal(tg_bill_output_bound(0, 3, 4096), 0);                /* embeddings */
    assert_int_equal(tg_bill_output_bound(-1, 3, 4096), 3 * 4096);        /* default per answer */
    assert_int_equal(tg_bill_output_bound(-1, 1024, 1000000), 100000000); /* capped */
    assert_int_equal(tg_bill_output_bound(INT64_C(1) << 40, 1, 4096), TG_BILL_MAX_OUTPUT_EST);
}

static void test_estimate_ai(void **state)
{
    (void)state;
    env_up(1, 0);
    tg_event_t ev = event("t", "ai", "m", "");
    tg_bill_ask_t ask = ask_ai(1000, 500, 1);
    int64_t tok, cost;
    assert_int_equal(tg_bill_estimate(&fix.env, &ask, &ev, &tok, &cost), 0);
    assert_int_equal(tok, 1500); /* a byte per token at most, plus the output bound */
    /* 1000 in at 1 USD/M + 500 out at 2 USD/M. */
    assert_int_equal(cost, 1000 + 1000);
    /* No bound named: the default for each of the 2 answers. */
    ask = ask_ai(1000, -1, 2);
    assert_int_equal(tg_bill_estimate(&fix.env, &ask, &ev, &tok, &cost), 0);
    assert_int_equal(tok, 1000 + 2 * 4096);
    assert_int_equal(cost, 1000 + 2 * 2 * 4096);
    /* Without prices: tokens reserved, no cost. */
    tg_bill_env_t bare = {fix.env.policy, NULL, 0};
    assert_int_equal(tg_bill_estimate(&bare, &ask, &ev, &tok, &cost), 0);
    assert_int_equal(tok, 1000 + 2 * 4096);
    assert_int_equal(cost, 0);
    /* Not an AI call and not MCP: nothing reserved. */
    tg_bill_ask_t http = {.kind = TG_ROUTE_HTTP, .route = "api", .forward_bytes = 10};
    assert_int_equal(tg_bill_estimate(&fix.env, &http, &ev, &tok, &cost), 0);
    assert_int_equal(tok, 0);
    assert_int_equal(cost, 0);
    env_down();
}

static void test_unpriced_model_on_budget(void **state)
{
    (void)state;
    budget("t", 10 * USD);
    env_up(1, 0);
    tg_bill_ask_t ask = ask_ai(100, 10, 1);
    int64_t tok, cost;
    tg_event_t ev = event("t", "ai", "other", "");
    assert_int_equal(tg_bill_estimate(&fix.env, &ask, &ev, &tok, &cost), -1);
    tg_admission_t adm;
    tg_bill_refusal_t r;
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 400);
    assert_string_equal(r.type, "model_not_priced");
    assert_string_equal(r.reason, "model_not_priced");
    assert_int_equal(adm.conc_key, 0);
    /* The same model for a tenant without a budget: admitted (priced "unpriced" later). */
    ev = event("u", "ai", "other", "");
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 0);
    assert_int_equal(r.status, 0);
    tg_bill_answer_t a = answer(TG_ROUTE_OPENAI);
    tg_bill_settle(&fix.env, &a, &adm, &ev, S);
    env_down();
}

static void test_estimate_mcp_batch(void **state)
{
    (void)state;
    env_up(1, 0);
    const char *tools[] = {"a", "b", "a"};
    tg_bill_ask_t ask = ask_mcp(tools, 3, 200);
    tg_event_t ev = event("t", "mcp", "", "a");
    int64_t tok, cost;
    assert_int_equal(tg_bill_estimate(&fix.env, &ask, &ev, &tok, &cost), 0);
    assert_int_equal(tok, 0);
    /* The route's request, then each call: a, b, a. */
    assert_int_equal(cost, USD / 100 + USD / 2 + USD / 4 + USD / 2);
    /* No tools/call (a tools/list): the route part only, not the calls. */
    ev = event("t", "mcp", "", "");
    ask = ask_mcp(tools, 0, 200);
    assert_int_equal(tg_bill_estimate(&fix.env, &ask, &ev, &tok, &cost), 0);
    assert_int_equal(cost, 0);
    env_down();
}

static void test_admit_batch_in_one_call(void **state)
{
    (void)state;
    limit("t", "tool", "b", 2, 60); /* two calls of b a minute */
    env_up(1, 10);
    tg_admission_t adm;
    tg_bill_refusal_t r;
    /* a, b, b: both b fit; the in-flight slot is held until settled. */
    const char *ok[] = {"a", "b", "b"};
    tg_bill_ask_t ask = ask_mcp(ok, 3, 100);
    tg_event_t ev = event("t", "mcp", "", "a");
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 0);
    assert_int_equal(tg_policy_inflight(fix.env.policy, "t"), 1);
    tg_bill_answer_t a = answer(TG_ROUTE_MCP);
    ev.status = 200;
    tg_bill_settle(&fix.env, &a, &adm, &ev, S);
    assert_int_equal(tg_policy_inflight(fix.env.policy, "t"), 0);
    /* One more b in a batch: refused as a whole, 429 for the tool, nothing held. */
    const char *more[] = {"a", "b"};
    ask = ask_mcp(more, 2, 100);
    ev = event("t", "mcp", "", "a");
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 429);
    assert_string_equal(r.type, "rate_limited");
    assert_string_equal(r.reason, "rate_limited");
    assert_non_null(strstr(r.message, "tool \"b\""));
    assert_string_equal(adm.policy, "tool");
    assert_true(adm.retry_after_s > 0);
    assert_int_equal(tg_policy_inflight(fix.env.policy, "t"), 0);
    /* The first tool alone is the event's tool: b first is counted by the admission. */
    const char *first[] = {"b"};
    ask = ask_mcp(first, 1, 100);
    ev = event("t", "mcp", "", "b");
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 429);
    env_down();
}

static void test_admit_concurrency(void **state)
{
    (void)state;
    env_up(0, 1);
    tg_bill_ask_t ask = {.kind = TG_ROUTE_HTTP, .route = "api"};
    tg_event_t ev = event("t", "api", "", "");
    tg_admission_t a1, a2;
    tg_bill_refusal_t r;
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &a1, &r), 0);
    assert_null(r.type);
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &a2, &r), 429);
    assert_string_equal(r.type, "rate_limited");
    assert_string_equal(r.reason, a2.reason);
    assert_ptr_equal(r.message, a2.message);
    tg_bill_answer_t a = answer(TG_ROUTE_HTTP);
    ev.status = 200;
    tg_bill_settle(&fix.env, &a, &a1, &ev, S);
    assert_int_equal(a1.conc_key, 0);
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &a2, &r), 0);
    tg_bill_settle(&fix.env, &a, &a2, &ev, S);
    env_down();
}

/* ---- the answer ------------------------------------------------------------------------ */

static int outcome_of(int status, const char *reason, int drained)
{
    tg_event_t ev = event("t", "r", "", "");
    ev.status = status;
    TG_EVENT_SET(&ev, reason, reason, strlen(reason));
    tg_bill_outcome(&ev, drained);
    return ev.outcome;
}

static void test_outcome(void **state)
{
    (void)state;
    assert_int_equal(outcome_of(200, "", 0), TG_OUTCOME_BILLABLE);
    assert_int_equal(outcome_of(204, "", 0), TG_OUTCOME_BILLABLE);
    assert_int_equal(outcome_of(200, "endpoint_unknown", 0), TG_OUTCOME_BILLABLE);
    assert_int_equal(outcome_of(200, "partial:1/2", 0), TG_OUTCOME_BILLABLE);
    /* A client that left: billed only when the answer was drained for its usage. */
    assert_int_equal(outcome_of(200, "client_closed", 1), TG_OUTCOME_BILLABLE);
    assert_int_equal(outcome_of(200, "client_stalled", 1), TG_OUTCOME_BILLABLE);
    assert_int_equal(outcome_of(200, "client_closed", 0), TG_OUTCOME_FAILED);
    assert_int_equal(outcome_of(200, "client_stalled", 0), TG_OUTCOME_FAILED);
    assert_int_equal(outcome_of(200, "tool_error", 0), TG_OUTCOME_FAILED);
    assert_int_equal(outcome_of(200, "upstream_reset", 1), TG_OUTCOME_FAILED);
    assert_int_equal(outcome_of(199, "", 0), TG_OUTCOME_FAILED);
    assert_int_equal(outcome_of(300, "", 0), TG_OUTCOME_FAILED);
    assert_int_equal(outcome_of(502, "upstream_unreachable", 0), TG_OUTCOME_FAILED);
    assert_int_equal(outcome_of(499, "client_closed", 1), TG_OUTCOME_FAILED);
    /* Rejected stays rejected, whatever the status. */
    tg_event_t ev = event("t", "r", "", "");
    ev.status = 200;
    ev.outcome = TG_OUTCOME_REJECTED;
    tg_bill_outcome(&ev, 1);
    assert_int_equal(ev.outcome, TG_OUTCOME_REJECTED);
    assert_true(tg_bill_billable_reason("", 0));
    assert_false(tg_bill_billable_reason("partial", 0)); /* the prefix has its colon */
}

static void test_estimate_tokens(void **state)
{
    (void)state;
    tg_bill_answer_t a = answer(TG_ROUTE_OPENAI);
    a.estimable = 1;
    a.out_est = 7;
    tg_event_t ev = event("t", "ai", "m", "");
    ev.outcome = TG_OUTCOME_BILLABLE;
    ev.bytes_in = 10;
    assert_int_equal(tg_bill_estimate_tokens(&ev, &a), 1);
    assert_int_equal(ev.tokens_in, 3); /* (10 + 3) / 4 */
    assert_int_equal(ev.tokens_out, 7);
    assert_int_equal(ev.tokens_cached, 0);
    assert_int_equal(ev.tokens_cache_write, 0);
    /* What the upstream reported stands; no estimate of output: the default bound. */
    ev = event("t", "ai", "m", "");
    ev.outcome = TG_OUTCOME_BILLABLE;
    ev.tokens_in = 40;
    a.out_est = -1;
    assert_int_equal(tg_bill_estimate_tokens(&ev, &a), 1);
    assert_int_equal(ev.tokens_in, 40);
    assert_int_equal(ev.tokens_out, 4096);
    /* A default over the cap counts as the cap. */
    ev = event("t", "ai", "m", "");
    ev.outcome = TG_OUTCOME_BILLABLE;
    a.default_output = INT64_C(1) << 40;
    assert_int_equal(tg_bill_estimate_tokens(&ev, &a), 1);
    assert_int_equal(ev.tokens_out, TG_BILL_MAX_OUTPUT_EST);
    /* Not estimable, not billable, or fully known: untouched. */
    ev = event("t", "ai", "m", "");
    ev.outcome = TG_OUTCOME_FAILED;
    assert_int_equal(tg_bill_estimate_tokens(&ev, &a), 0);
    assert_int_equal(ev.tokens_in, TG_TOKENS_UNKNOWN);
    ev.outcome = TG_OUTCOME_BILLABLE;
    a.estimable = 0;
    assert_int_equal(tg_bill_estimate_tokens(&ev, &a), 0);
    assert_int_equal(ev.tokens_out, TG_TOKENS_UNKNOWN);
    a.estimable = 1;
    ev.tokens_in = 1, ev.tokens_out = 2;
    assert_int_equal(tg_bill_estimate_tokens(&ev, &a), 0);
    assert_int_equal(ev.tokens_cached, TG_TOKENS_UNKNOWN);
}

static void test_tokens_and_cache(void **state)
{
    (void)state;
    tg_event_t ev = event("t", "ai", "m", "");
    assert_int_equal(tg_bill_tokens(&ev, TG_ROUTE_OPENAI), -1);
    ev.tokens_in = 100;
    assert_int_equal(tg_bill_tokens(&ev, TG_ROUTE_OPENAI), -1);
    ev.tokens_out = 50;
    ev.tokens_cached = 30;
    ev.tokens_cache_write = 20;
    /* OpenAI's input holds its cached tokens; Anthropic's excludes reads and writes. */
    assert_int_equal(tg_bill_tokens(&ev, TG_ROUTE_OPENAI), 150);
    assert_int_equal(tg_bill_tokens(&ev, TG_ROUTE_ANTHROPIC), 200);
    ev.tokens_cache_write = TG_TOKENS_UNKNOWN;
    assert_int_equal(tg_bill_tokens(&ev, TG_ROUTE_ANTHROPIC), 180);
    ev.tokens_cached = TG_TOKENS_UNKNOWN;
    assert_int_equal(tg_bill_tokens(&ev, TG_ROUTE_ANTHROPIC), 150);
}

static void test_price_batch_mixed_results(void **state)
{
    (void)state;
    env_up(1, 0);
    tg_bill_answer_t a = answer(TG_ROUTE_MCP);
    a.ntools = 3;
    a.tools[0] = "a", a.tools[1] = "b", a.tools[2] = "a";
    a.billed[0] = 1, a.billed[1] = 0, a.billed[2] = 1; /* b's call failed */
    tg_event_t ev = event("t", "mcp", "", "a");
    ev.status = 200;
    TG_EVENT_SET(&ev, reason, "partial:2/3", 11);
    tg_bill_outcome(&ev, 0);
    assert_int_equal(ev.outcome, TG_OUTCOME_BILLABLE);
    tg_bill_price(&fix.env, &ev, &a, 0);
    /* The route's request once, then each call with a result: a twice, b not. */
    assert_int_equal(ev.cost_micros, USD / 100 + USD / 2 + USD / 2);
    assert_string_equal(ev.tool, "a"); /* set aside while the route part was priced */
    assert_string_equal(ev.price_flag, "");
    /* A failed answer costs nothing, whatever its calls. */
    ev = event("t", "mcp", "", "a");
    ev.status = 200;
    TG_EVENT_SET(&ev, reason, "rpc_error", 9);
    tg_bill_outcome(&ev, 0);
    tg_bill_price(&fix.env, &ev, &a, 0);
    assert_int_equal(ev.cost_micros, 0);
    env_down();
}

static void test_price_asked_model_and_flags(void **state)
{
    (void)state;
    env_up(1, 0);
    /* The upstream reports a model without a price: the asked one prices it, flagged. */
    tg_bill_answer_t a = answer(TG_ROUTE_OPENAI);
    a.asked_model = "m";
    tg_event_t ev = event("t", "ai", "router-pick", "");
    ev.status = 200;
    ev.outcome = TG_OUTCOME_BILLABLE;
    ev.tokens_in = 1000000, ev.tokens_out = 500000, ev.tokens_cached = 0;
    tg_bill_price(&fix.env, &ev, &a, 0);
    assert_int_equal(ev.cost_micros, 1 * USD + 1 * USD);
    assert_string_equal(ev.price_flag, "model_asked");
    assert_string_equal(ev.model, "router-pick");
    /* Nothing asked: unpriced. */
    a.asked_model = "";
    ev.cost_micros = 0;
    ev.price_flag[0] = '\0';
    tg_bill_price(&fix.env, &ev, &a, 0);
    assert_int_equal(ev.cost_micros, 0);
    assert_string_equal(ev.price_flag, "unpriced");
    /* A compressed answer not decoded whole: its flag replaces "tokens_unknown" or "",
     * never a flag that explains the cost. */
    a.decode_flag = "decode_error";
    ev = event("t", "ai", "m", "");
    ev.status = 200;
    ev.outcome = TG_OUTCOME_BILLABLE;
    tg_bill_price(&fix.env, &ev, &a, 0);
    assert_string_equal(ev.price_flag, "decode_error");
    ev.tokens_in = 10, ev.tokens_out = 10;
    tg_bill_price(&fix.env, &ev, &a, 0);
    assert_string_equal(ev.price_flag, "decode_error");
    ev.model[0] = 'x';
    a.asked_model = "";
    tg_bill_price(&fix.env, &ev, &a, 0);
    assert_string_equal(ev.price_flag, "unpriced");
    /* Without a price book: no cost, but the decode flag still says why. */
    tg_bill_env_t bare = {fix.env.policy, NULL, 0};
    ev = event("t", "ai", "m", "");
    ev.outcome = TG_OUTCOME_BILLABLE;
    tg_bill_price(&bare, &ev, &a, 1);
    assert_string_equal(ev.price_flag, "decode_error");
    env_down();
}

/* A client that left a 2xx AI answer: drained, it is billable on an estimate ("estimated");
 * not drained (the client left, nothing read on), it is a failure and costs nothing. */
static void test_client_closed_drain_vs_not(void **state)
{
    (void)state;
    env_up(1, 0);
    tg_bill_answer_t a = answer(TG_ROUTE_OPENAI);
    a.estimable = 1;
    a.drained = 1;
    a.out_est = 1000;
    tg_event_t ev = event("t", "ai", "m", "");
    ev.status = 200;
    ev.bytes_in = 4000;
    TG_EVENT_SET(&ev, reason, "client_closed", 13);
    tg_admission_t adm;
    memset(&adm, 0, sizeof adm);
    tg_bill_settle(&fix.env, &a, &adm, &ev, S);
    assert_int_equal(ev.outcome, TG_OUTCOME_BILLABLE);
    assert_int_equal(ev.tokens_in, 1000);
    assert_int_equal(ev.tokens_out, 1000);
    assert_int_equal(ev.cost_micros, 1000 + 2000);
    assert_string_equal(ev.price_flag, "estimated");
    /* The same without the drain. */
    a.drained = 0;
    ev = event("t", "ai", "m", "");
    ev.status = 200;
    ev.bytes_in = 4000;
    TG_EVENT_SET(&ev, reason, "client_closed", 13);
    tg_bill_settle(&fix.env, &a, &adm, &ev, S);
    assert_int_equal(ev.outcome, TG_OUTCOME_FAILED);
    assert_int_equal(ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(ev.cost_micros, 0);
    assert_string_equal(ev.price_flag, "");
    env_down();
}

/* Admission reserves the estimate against the budget; settling replaces it with the cost
 * of the actual counts (Anthropic: cache reads and writes priced on their own). */
static void test_settle_to_actual(void **state)
{
    (void)state;
    budget("t", 10 * USD);
    store_spend = 1 * USD;
    env_up(1, 0);
    tg_bill_ask_t ask = ask_ai(1000000, 1000000, 1);
    ask.kind = TG_ROUTE_ANTHROPIC;
    tg_event_t ev = event("t", "ai", "m", "");
    tg_admission_t adm;
    tg_bill_refusal_t r;
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 0);
    int64_t spent, reserved, bud;
    assert_int_equal(tg_policy_budget_state(fix.env.policy, "t", &spent, &reserved, &bud), 0);
    assert_int_equal(spent, 1 * USD);
    assert_int_equal(reserved, 1 * USD + 2 * USD); /* 1M in, 1M out at most */
    ev.status = 200;
    ev.tokens_in = 100000, ev.tokens_out = 200000;
    ev.tokens_cached = 400000, ev.tokens_cache_write = 80000;
    tg_bill_answer_t a = answer(TG_ROUTE_ANTHROPIC);
    tg_bill_settle(&fix.env, &a, &adm, &ev, S);
    /* 0.1 USD in + 0.4 out + 0.2 cache reads + 0.1 cache writes. */
    int64_t cost = USD / 10 + 4 * USD / 10 + 2 * USD / 10 + USD / 10;
    assert_int_equal(ev.cost_micros, cost);
    assert_int_equal(ev.outcome, TG_OUTCOME_BILLABLE);
    assert_int_equal(tg_policy_budget_state(fix.env.policy, "t", &spent, &reserved, &bud), 0);
    assert_int_equal(spent, 1 * USD + cost);
    assert_int_equal(reserved, 0);
    /* A refusal from upstream settles to nothing: the reservation is given back. */
    ev = event("t", "ai", "m", "");
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 0);
    ev.status = 500;
    tg_bill_settle(&fix.env, &a, &adm, &ev, S);
    assert_int_equal(ev.outcome, TG_OUTCOME_FAILED);
    assert_int_equal(tg_policy_budget_state(fix.env.policy, "t", &spent, &reserved, &bud), 0);
    assert_int_equal(spent, 1 * USD + cost);
    assert_int_equal(reserved, 0);
    env_down();
}

/* A plain HTTP request has no exchange: the structs are filled from NULL. */
static void test_from_no_exchange(void **state)
{
    (void)state;
    env_up(1, 0);
    tg_bill_ask_t ask;
    tg_bill_ask_from(&ask, NULL, 0, 0, TG_ROUTE_MCP, "mcp", 5, 5, 4096);
    assert_int_equal(ask.kind, TG_ROUTE_HTTP);
    assert_false(ask.ai);
    assert_int_equal(ask.ntools, 0);
    tg_bill_answer_t a;
    tg_bill_answer_from(&a, NULL, 0, 0, TG_ROUTE_HTTP, 0);
    assert_false(a.estimable);
    assert_string_equal(a.asked_model, "");
    assert_string_equal(a.decode_flag, "");
    assert_int_equal(a.ntools, 0);
    tg_event_t ev = event("t", "mcp", "", "");
    ev.status = 200;
    tg_admission_t adm;
    tg_bill_refusal_t r;
    assert_int_equal(tg_bill_admit(&fix.env, &ask, &ev, &fix.client, S, &adm, &r), 0);
    tg_bill_settle(&fix.env, &a, &adm, &ev, S);
    assert_int_equal(ev.outcome, TG_OUTCOME_BILLABLE);
    assert_int_equal(ev.cost_micros, USD / 100); /* the route's request, no tool part */
    env_down();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_output_bound, setup),
        cmocka_unit_test_setup(test_estimate_ai, setup),
        cmocka_unit_test_setup(test_unpriced_model_on_budget, setup),
        cmocka_unit_test_setup(test_estimate_mcp_batch, setup),
        cmocka_unit_test_setup(test_admit_batch_in_one_call, setup),
        cmocka_unit_test_setup(test_admit_concurrency, setup),
        cmocka_unit_test_setup(test_outcome, setup),
        cmocka_unit_test_setup(test_estimate_tokens, setup),
        cmocka_unit_test_setup(test_tokens_and_cache, setup),
        cmocka_unit_test_setup(test_price_batch_mixed_results, setup),
        cmocka_unit_test_setup(test_price_asked_model_and_flags, setup),
        cmocka_unit_test_setup(test_client_closed_drain_vs_not, setup),
        cmocka_unit_test_setup(test_settle_to_actual, setup),
        cmocka_unit_test_setup(test_from_no_exchange, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
