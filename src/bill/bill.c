/* Billing of one request: see bill.h. The arithmetic moved here from the connection
 * (gateway/conn.c) unchanged; the order of the steps in tg_bill_settle is the order the
 * event needs (the outcome decides whether an estimate and a price apply; the price
 * decides what the budget is settled with). */
#include "bill/bill.h"

#include <string.h>

#define LEN(lit)               (sizeof(lit) - 1)
#define EV_SET(ev, field, lit) TG_EVENT_SET(ev, field, lit, LEN(lit))

/* ---- admission ---------------------------------------------------------------------- */

int64_t tg_bill_output_bound(int64_t max_output, int64_t choices, int64_t default_output)
{
    /* The output is bounded by max_tokens (or the configured default when the request
     * names none) times the answers it asks for (n), counted as at most
     * TG_BILL_MAX_OUTPUT_EST (choices is at most 1024: no overflow). */
    int64_t out = max_output >= 0 ? max_output : default_output * choices;
    return out > TG_BILL_MAX_OUTPUT_EST ? TG_BILL_MAX_OUTPUT_EST : out;
}

int tg_bill_estimate(const tg_bill_env_t *env, const tg_bill_ask_t *ask, const tg_event_t *ev,
                     int64_t *tokens, int64_t *cost)
{
    *tokens = *cost = 0;
    if (ask->ai) {
        /* An AI call: reserve its worst case. A token is never shorter than a byte, so
         * the body's length (as the client sent it) bounds the input. */
        int64_t out = tg_bill_output_bound(ask->max_output, ask->choices, ask->default_output);
        int64_t body = ask->body_bytes;
        *tokens = body + out; /* both below 2^40: no overflow */
        int64_t spent, held, budget;
        if (env->prices && !tg_pricebook_model_priced(env->prices, ev->model, ev->ts_us) &&
            tg_policy_budget_state(env->policy, ev->tenant, &spent, &held, &budget) == 0)
            /* No price for it, its base model's or "*": on a budget it would be free. A
             * body that names no model (or not as a string) asks for whatever the upstream
             * picks, which may have no price either: only a "*" price admits it. */
            return -1;
        if (env->prices)
            *cost = tg_pricebook_estimate(env->prices, ask->kind, ask->route, ev->model, "", body,
                                          out, body, ev->ts_us);
    } else if (ask->kind == TG_ROUTE_MCP && ev->tool[0] && env->prices) {
        *cost = tg_pricebook_estimate(env->prices, ask->kind, ask->route, "", ev->tool, 0, 0,
                                      ask->forward_bytes, ev->ts_us);
        for (size_t i = 1; i < ask->ntools; i++) /* a batch's further calls */
            *cost += tg_pricebook_call(env->prices, ask->tools[i], ev->ts_us);
    }
    return 0;
}

/* The two halves of tg_bill_admit, inlined there (the in-memory path, every request) and
 * exported for a shared limiter's admission (gateway/phase_admit.c). */
static inline int admit_in(const tg_bill_env_t *env, const tg_bill_ask_t *ask, const tg_event_t *ev,
                           const tg_ip_t *client, tg_admit_in_t *in, tg_bill_refusal_t *r)
{
    *in = (tg_admit_in_t){.tenant = ev->tenant,
                          .route = ask->route,
                          .key_id = ev->key_id,
                          .tool = ev->tool,
                          .model = ev->model,
                          .client = client,
                          .wall_us = ev->ts_us,
                          .share = env->share};
    if (tg_bill_estimate(env, ask, ev, &in->est_tokens, &in->est_cost) != 0) {
        *r = (tg_bill_refusal_t){400, "model_not_priced", "no price is configured for this model",
                                 "model_not_priced"};
        return r->status;
    }
    return 0;
}

static inline int refusal_of(const tg_admission_t *adm, tg_bill_refusal_t *r)
{
    *r = (tg_bill_refusal_t){0};
    if (adm->verdict == TG_ADMIT_OK) return 0;
    r->message = adm->message;
    r->reason = adm->reason;
    switch (adm->verdict) {
    case TG_ADMIT_OK: break;
    case TG_ADMIT_BUDGET: r->status = 402, r->type = "budget_exceeded"; break;
    case TG_ADMIT_PAUSED: r->status = 503, r->type = "paused"; break;
    case TG_ADMIT_IP_DENIED: r->status = 403, r->type = "forbidden"; break;
    case TG_ADMIT_RATE:
    case TG_ADMIT_CONCURRENCY: r->status = 429, r->type = "rate_limited"; break;
    }
    return r->status;
}

int tg_bill_admit_in(const tg_bill_env_t *env, const tg_bill_ask_t *ask, const tg_event_t *ev,
                     const tg_ip_t *client, tg_admit_in_t *in, tg_bill_refusal_t *r)
{
    *r = (tg_bill_refusal_t){0};
    return admit_in(env, ask, ev, client, in, r);
}

int tg_bill_refusal(const tg_admission_t *adm, tg_bill_refusal_t *r)
{
    return refusal_of(adm, r);
}

int tg_bill_admit(const tg_bill_env_t *env, const tg_bill_ask_t *ask, const tg_event_t *ev,
                  const tg_ip_t *client, uint64_t now_ns, tg_admission_t *adm, tg_bill_refusal_t *r)
{
    tg_admit_in_t in;
    if (admit_in(env, ask, ev, client, &in, r) != 0) {
        memset(adm, 0, sizeof *adm); /* nothing held */
        return r->status;
    }
    tg_policy_admit(env->policy, &in, now_ns, adm);
    if (adm->verdict == TG_ADMIT_OK && ask->kind == TG_ROUTE_MCP && ask->ntools > 1)
        /* A batch: every further tools/call counts against its tool's rate rule too. */
        tg_policy_admit_more_tools(env->policy, adm, ev->tenant, ask->tools + 1, ask->ntools - 1,
                                   now_ns, ev->ts_us);
    return refusal_of(adm, r);
}

/* ---- the answer --------------------------------------------------------------------- */

int tg_bill_billable_reason(const char *reason, int drained)
{
    /* These reasons only note why a 2xx is billed as it is: a client that left, or stopped
     * reading, and still pays what the upstream served (the gateway's drain), an endpoint
     * tollgate does not recognise, an MCP batch of which only some calls got a result. */
    return !reason[0] || strcmp(reason, "endpoint_unknown") == 0 ||
           (drained &&
            (strcmp(reason, "client_closed") == 0 || strcmp(reason, "client_stalled") == 0)) ||
           strncmp(reason, "partial:", LEN("partial:")) == 0;
}

void tg_bill_outcome(tg_event_t *ev, int drained)
{
    if (ev->outcome == TG_OUTCOME_REJECTED) return;
    ev->outcome =
        ev->status >= 200 && ev->status < 300 && tg_bill_billable_reason(ev->reason, drained)
            ? TG_OUTCOME_BILLABLE
            : TG_OUTCOME_FAILED;
}

int tg_bill_estimate_tokens(tg_event_t *ev, const tg_bill_answer_t *a)
{
    /* A client that left before the usage came, an unknown endpoint whose answer had
     * none, a body tollgate could not read (a BOM, UTF-16: a provider may read it, and
     * stream without the usage tollgate could not ask for), or a background Responses
     * call (its usage never passes here): charged on an estimate, never free. Input: one
     * token per 4 bytes of the body (the usual rule for text; admission reserved the
     * body's whole length); output: what reached the client, for a background call the
     * bound admission reserved. What the upstream did report stands. */
    if (!a->estimable || ev->outcome != TG_OUTCOME_BILLABLE ||
        (ev->tokens_in >= 0 && ev->tokens_out >= 0))
        return 0;
    if (ev->tokens_in < 0) ev->tokens_in = (ev->bytes_in + 3) / 4;
    if (ev->tokens_out < 0) {
        int64_t o = a->out_est >= 0 ? a->out_est : a->default_output;
        ev->tokens_out = o > TG_BILL_MAX_OUTPUT_EST ? TG_BILL_MAX_OUTPUT_EST : o;
    }
    if (ev->tokens_cached < 0) ev->tokens_cached = 0;
    if (ev->tokens_cache_write < 0) ev->tokens_cache_write = 0;
    return 1;
}

int64_t tg_bill_tokens(const tg_event_t *ev, tg_route_kind_t kind)
{
    if (ev->tokens_in < 0 || ev->tokens_out < 0) return -1;
    int64_t tokens = ev->tokens_in + ev->tokens_out;
    if (kind == TG_ROUTE_ANTHROPIC) /* its input count excludes the cache's */
        tokens += (ev->tokens_cached > 0 ? ev->tokens_cached : 0) +
                  (ev->tokens_cache_write > 0 ? ev->tokens_cache_write : 0);
    return tokens;
}

void tg_bill_price(const tg_bill_env_t *env, tg_event_t *ev, const tg_bill_answer_t *a,
                   int estimated)
{
    tg_pricebook_t *pb = env->prices;
    if (pb) {
        /* MCP: each tools/call is billed by its own result (the event's tool, the first,
         * is set aside while the route part is priced). */
        size_t ntools = a->kind == TG_ROUTE_MCP ? a->ntools : 0;
        char first[sizeof ev->tool];
        if (ntools) {
            memcpy(first, ev->tool, sizeof first);
            ev->tool[0] = '\0';
        }
        tg_pricebook_price(pb, ev, a->kind);
        if (ntools) memcpy(ev->tool, first, sizeof first);
        const char *asked = a->asked_model ? a->asked_model : "";
        if (asked[0] && strcmp(ev->price_flag, "unpriced") == 0 &&
            tg_pricebook_model_priced(pb, asked, ev->ts_us)) {
            /* The upstream reported a model with no price (a router's pick, a deployment
             * that ignores the body's model): the model asked for, which was admitted
             * and reserved, prices it, flagged; never free. The event keeps the model
             * the upstream reported. */
            char reported[sizeof ev->model];
            memcpy(reported, ev->model, sizeof reported);
            TG_EVENT_SET(ev, model, asked, strlen(asked));
            tg_pricebook_price(pb, ev, a->kind);
            memcpy(ev->model, reported, sizeof reported);
            if (!ev->price_flag[0]) EV_SET(ev, price_flag, "model_asked");
        }
        for (size_t i = 0; ev->outcome == TG_OUTCOME_BILLABLE && i < ntools; i++) {
            if (!a->billed[i]) continue;
            int64_t p = tg_pricebook_call(pb, a->tools[i], ev->ts_us);
            ev->cost_micros = ev->cost_micros > INT64_MAX - p ? INT64_MAX : ev->cost_micros + p;
        }
        if (estimated) EV_SET(ev, price_flag, "estimated");
    }
    /* Why the tokens are unknown (or suspect), unless a price flag explains the cost. */
    const char *dflag = a->decode_flag ? a->decode_flag : "";
    if (dflag[0] && ev->outcome == TG_OUTCOME_BILLABLE &&
        (!ev->price_flag[0] || strcmp(ev->price_flag, "tokens_unknown") == 0))
        TG_EVENT_SET(ev, price_flag, dflag, strlen(dflag));
}

void tg_bill_settle(const tg_bill_env_t *env, const tg_bill_answer_t *a, tg_admission_t *adm,
                    tg_event_t *ev, uint64_t now_ns)
{
    tg_policy_release(env->policy, adm->conc_key); /* the in-flight slot */
    adm->conc_key = 0;
    tg_bill_outcome(ev, a->drained);
    int estimated = tg_bill_estimate_tokens(ev, a);
    tg_bill_price(env, ev, a, estimated);
    /* Token limits and the budget: reservations become the actual counts. */
    tg_policy_settle(env->policy, adm, ev->tenant, tg_bill_tokens(ev, a->kind), ev->cost_micros,
                     now_ns, ev->ts_us);
}

/* ---- from the meter ------------------------------------------------------------------ */

void tg_bill_ask_from(tg_bill_ask_t *ask, const tg_xchg_t *x, int metered, int held,
                      tg_route_kind_t kind, const char *route, int64_t body_bytes,
                      int64_t forward_bytes, int64_t default_output)
{
    ask->kind = metered ? kind : TG_ROUTE_HTTP;
    ask->route = route;
    ask->ai = metered && held && tg_xchg_counts_tokens(x);
    ask->body_bytes = body_bytes;
    ask->forward_bytes = forward_bytes;
    ask->max_output = ask->ai ? tg_xchg_max_output(x) : -1;
    ask->choices = ask->ai ? tg_xchg_choices(x) : 1;
    ask->default_output = default_output;
    ask->ntools = 0;
    /* (More than TG_BILL_MAX_TOOLS never reach admission: the gateway refuses them.) */
    size_t n = metered && kind == TG_ROUTE_MCP ? tg_xchg_ntools(x) : 0;
    for (size_t i = 0; i < n && i < TG_BILL_MAX_TOOLS; i++)
        ask->tools[ask->ntools++] = tg_xchg_tool(x, i);
}

void tg_bill_answer_from(tg_bill_answer_t *a, const tg_xchg_t *x, int metered, int drained,
                         tg_route_kind_t kind, int64_t default_output)
{
    a->kind = kind;
    a->drained = drained;
    a->estimable = metered && kind != TG_ROUTE_MCP && tg_xchg_counts_tokens(x) &&
                   (drained || tg_xchg_unknown_endpoint(x) || tg_xchg_background(x) ||
                    tg_xchg_request_unreadable(x));
    a->out_est = a->estimable ? tg_xchg_estimate_out(x) : -1;
    a->default_output = default_output;
    a->asked_model =
        x && (kind == TG_ROUTE_OPENAI || kind == TG_ROUTE_ANTHROPIC) ? tg_xchg_model(x) : "";
    a->decode_flag = metered ? tg_xchg_decode_flag(x) : "";
    a->ntools = 0;
    /* (A billable batch has at most TG_BILL_MAX_TOOLS calls: more were refused.) */
    size_t n = kind == TG_ROUTE_MCP && x ? tg_xchg_ntools(x) : 0;
    for (size_t i = 0; i < n && i < TG_BILL_MAX_TOOLS; i++) {
        a->tools[a->ntools] = tg_xchg_tool(x, i);
        a->billed[a->ntools++] = (unsigned char)(tg_xchg_call_billed(x, i) != 0);
    }
}
