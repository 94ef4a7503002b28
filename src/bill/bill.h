/* Billing of one request, apart from the connection that carries it.
 *
 * Two moments of a request are billing's: admission (what it may cost at worst is
 * reserved against the tenant's token limits and budget, and every tools/call of an MCP
 * batch is counted against its tool's rate rule, all in one call) and settling (is the
 * answer billable, failed or rejected; its price per model, route and tool; an estimate
 * when the usage never came; the reservations moved to the actual counts; the event's
 * price fields filled). The gateway gathers what the meter saw (meter/exchange.h) into
 * the plain structs below and calls tg_bill_admit and tg_bill_settle; nothing here knows
 * of sockets or the event loop, so all of it is unit-tested with values
 * (tests/unit/bill/test_bill.c). The policy (policy/policy.h) keeps the counters and
 * rules; the price book (meter/price.h) the prices; this module decides what to ask them.
 *
 * Nothing allocates: the structs live on the caller's stack or in its request. */
#ifndef TG_BILL_BILL_H
#define TG_BILL_BILL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "types/event.h"
#include "meter/exchange.h"
#include "meter/price.h"
#include "policy/policy.h"

#define TG_BILL_MAX_TOOLS      64        /* tools/call in one JSON-RPC batch (more: 400) */
#define TG_BILL_MAX_OUTPUT_EST 100000000 /* a larger output bound counts as this */

/* The services billing asks: both thread-safe, shared by the workers. */
typedef struct tg_bill_env {
    tg_policy_t *policy;
    tg_pricebook_t *prices; /* NULL: no prices configured, nothing is priced */
    uint32_t share;         /* 0: the rules as written; N: this gateway's share of rules
                               shared by N (tg_admit_in_t.share) */
} tg_bill_env_t;

/* What admission knows of a request besides its event (tenant, route, key, model, tool,
 * wall clock). */
typedef struct tg_bill_ask {
    tg_route_kind_t kind;   /* TG_ROUTE_HTTP when nothing is metered */
    const char *route;      /* the route's name */
    int ai;                 /* an AI call that counts tokens, its body read whole */
    int64_t body_bytes;     /* AI: the body as the client sent it (it bounds the input) */
    int64_t forward_bytes;  /* MCP: the body as forwarded (the route part of the estimate) */
    int64_t max_output;     /* AI: output tokens the request allows (all its answers), -1 =
                               it named no bound */
    int64_t choices;        /* AI: answers asked for (n), each bounded by the default */
    int64_t default_output; /* the configured bound when the request names none */
    size_t ntools;          /* MCP: the tools/call of the body, in order */
    const char *tools[TG_BILL_MAX_TOOLS];
} tg_bill_ask_t;

/* A refusal to answer with: status 0 = admitted. The strings are constants, or point into
 * the admission (its message), and live as long as it. */
typedef struct tg_bill_refusal {
    int status;
    const char *type;    /* the JSON error type */
    const char *message; /* for the client */
    const char *reason;  /* the event's reason */
} tg_bill_refusal_t;

/* What the meter saw of the answer, once it is over. */
typedef struct tg_bill_answer {
    tg_route_kind_t kind;    /* TG_ROUTE_HTTP when the request was never routed */
    int drained;             /* the client left (or stalled) and the answer was read on
                                for its usage: "client_closed" / "client_stalled" bill */
    int estimable;           /* an AI call whose unknown tokens are estimated (a client
                                that left, an unknown endpoint, a background call, a body
                                tollgate could not read) */
    int64_t out_est;         /* output tokens estimated from what the upstream sent
                                      (tg_xchg_estimate_out), -1 = none */
    int64_t default_output;  /* the configured output bound (the estimate's fallback) */
    const char *asked_model; /* AI: the model the request asked for, "" */
    const char *decode_flag; /* a compressed answer not decoded whole, "" */
    size_t ntools;           /* MCP: tools/call of the batch, in order */
    const char *tools[TG_BILL_MAX_TOOLS];
    unsigned char billed[TG_BILL_MAX_TOOLS]; /* call i got a result that is billed */
} tg_bill_answer_t;

/* ---- admission ---------------------------------------------------------------------- */

/* The output tokens an AI call may produce: max_output, else default_output per answer,
 * at most TG_BILL_MAX_OUTPUT_EST. */
int64_t tg_bill_output_bound(int64_t max_output, int64_t choices, int64_t default_output);

/* What admission reserves: *tokens against token limits (AI: the body's bytes, a token
 * never being shorter than a byte, plus the output bound; else 0) and *cost against the
 * budget (AI: its price at those counts; MCP: the route part and every call of the batch;
 * 0 without prices). Returns 0, or -1 when an AI call's model has no price (nor a base
 * model's, nor "*") while the tenant has a budget: it would be free (400). */
int tg_bill_estimate(const tg_bill_env_t *env, const tg_bill_ask_t *ask, const tg_event_t *ev,
                     int64_t *tokens, int64_t *cost);

/* What admission asks the policy (tenant, scopes, the estimate, the wall clock): 0, or the
 * refusal's status with r filled (an AI call whose model has no price on a budget: 400). */
int tg_bill_admit_in(const tg_bill_env_t *env, const tg_bill_ask_t *ask, const tg_event_t *ev,
                     const tg_ip_t *client, tg_admit_in_t *in, tg_bill_refusal_t *r);
/* The refusal that answers an admission's verdict into r: its status, 0 when admitted. */
int tg_bill_refusal(const tg_admission_t *adm, tg_bill_refusal_t *r);

/* Admits the request (policy.h: pauses, IP rules, in-flight cap, budget, rate and token
 * limits, then each further tool of a batch). Returns 0 with r->status 0 when admitted (a
 * held in-flight slot and reservations are in *adm until tg_bill_settle), else the
 * refusal's status with r filled (nothing is held then). */
int tg_bill_admit(const tg_bill_env_t *env, const tg_bill_ask_t *ask, const tg_event_t *ev,
                  const tg_ip_t *client, uint64_t now_ns, tg_admission_t *adm,
                  tg_bill_refusal_t *r);

/* ---- the answer --------------------------------------------------------------------- */

/* A 2xx answer is billable unless its reason says otherwise: no reason, an endpoint
 * tollgate does not know, a client that left a drained answer, a partial MCP batch. */
int tg_bill_billable_reason(const char *reason, int drained);

/* Sets ev->outcome (a rejected event stays rejected): billable or failed. */
void tg_bill_outcome(tg_event_t *ev, int drained);

/* An estimable billable call with unknown tokens gets them estimated: input one token per
 * 4 bytes of the body, output what reached the client (else the default bound), unknown
 * cache counts 0. Returns 1 when it did (the price is then flagged "estimated"). */
int tg_bill_estimate_tokens(tg_event_t *ev, const tg_bill_answer_t *a);

/* Tokens the limits are settled with: input + output (and Anthropic's cache reads and
 * writes, which its input excludes), or -1 when unknown (the estimate stands). */
int64_t tg_bill_tokens(const tg_event_t *ev, tg_route_kind_t kind);

/* The price of the finished event: model and route part, the asked model's price when
 * the upstream reported an unpriced one ("model_asked"), each billed tools/call of a
 * batch; the flags "estimated" and the decode flag. */
void tg_bill_price(const tg_bill_env_t *env, tg_event_t *ev, const tg_bill_answer_t *a,
                   int estimated);

/* The request is over (ev holds what the meter read: status, reason, tokens, model):
 * gives back the in-flight slot, decides the outcome, estimates, prices and settles the
 * reservations of *adm to the actual counts. The event is then ready to record. */
void tg_bill_settle(const tg_bill_env_t *env, const tg_bill_answer_t *a, tg_admission_t *adm,
                    tg_event_t *ev, uint64_t now_ns);

/* ---- from the meter ------------------------------------------------------------------ */

/* Fill the structs above from an exchange (x may be NULL: a plain HTTP request). */
/* metered: the exchange follows this request (x begun for it); held: its body was read
 * whole before admission. */
void tg_bill_ask_from(tg_bill_ask_t *ask, const tg_xchg_t *x, int metered, int held,
                      tg_route_kind_t kind, const char *route, int64_t body_bytes,
                      int64_t forward_bytes, int64_t default_output);
/* x may be one a previous request of the connection used (metered 0): as before the split,
 * only the batch's tools and the asked model are read from it then. */
void tg_bill_answer_from(tg_bill_answer_t *a, const tg_xchg_t *x, int metered, int drained,
                         tg_route_kind_t kind, int64_t default_output);

#endif
