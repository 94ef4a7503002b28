/* Admission policy: pauses (kill switch), IP rules, rate limits and the
 * per-tenant concurrency cap, decided for a request after it was
 * authenticated and routed, before any upstream work.
 *
 * What the store says (limits, pauses, IP rules; changed by the CLI from any
 * process) is held in an immutable snapshot, rebuilt by a refresher thread
 * when meta.policy_version moves (polled every 250 ms) and swapped under a
 * rwlock, like the keyring. Config supplies the defaults (defaults.limits) and
 * the trusted proxies; a reload swaps those in with tg_policy_set_config.
 * Counters (limiter state, in-flight counts) live outside the snapshots, so
 * they survive both a policy refresh and a config reload. */
#ifndef TG_POLICY_POLICY_H
#define TG_POLICY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "policy/budget.h"
#include "policy/iprules.h"
#include "policy/ratelimit.h"
#include "store/store.h"
#include "util/err.h"

typedef enum {
    TG_ADMIT_OK = 0,
    TG_ADMIT_PAUSED,      /* 503: global or tenant pause */
    TG_ADMIT_IP_DENIED,   /* 403: deny rule, or not in an allow list */
    TG_ADMIT_RATE,        /* 429: a rate limit */
    TG_ADMIT_CONCURRENCY, /* 429: the tenant's in-flight cap */
    TG_ADMIT_BUDGET,      /* 402: the tenant's hard monthly budget is reached */
} tg_admit_t;

/* Config-level settings (from tg_config_t). */
typedef struct tg_policy_defaults {
    tg_limit_rule_t rate; /* limit 0 with period 0 = no default rate limit */
    int has_rate;
    int64_t concurrency; /* 0 = none */
} tg_policy_defaults_t;

/* The outcome of an admission, and what the RateLimit headers report. */
typedef struct tg_admission {
    tg_admit_t verdict;
    const char *reason; /* event reason: "paused", "ip_denied", "rate_limited", ... */
    char message[300];  /* for the JSON error (a pause carries the operator's reason) */
    int limited;        /* a rate rule applied: the headers below are set */
    char policy[8];     /* the scope of the rule reported: tenant, route, key, tool */
    uint64_t limit;     /* of the rule with the least remaining */
    uint64_t window_s;
    uint64_t remaining;
    uint64_t reset_s;
    uint64_t retry_after_s; /* on TG_ADMIT_RATE / TG_ADMIT_CONCURRENCY */
    uint64_t conc_key;      /* nonzero: an in-flight slot is held, release it */
    /* Reservations held until tg_policy_settle. */
    size_t ntok; /* token rules charged (tenant, model, key) */
    uint64_t tok_keys[3];
    tg_limit_rule_t tok_rules[3];
    int64_t tok_charged[3];  /* tokens charged to each: the estimate, at most the rule's
                                limit (one request never holds more than a whole window) */
    int64_t budget_reserved; /* micro-USD reserved against the tenant's budget */
} tg_admission_t;

/* What is known of a request at admission. */
typedef struct tg_admit_in {
    const char *tenant, *route, *key_id, *tool, *model; /* "" or NULL = none */
    const tg_ip_t *client;
    int64_t est_tokens; /* tokens to reserve against token limits; 0 = not an AI request */
    int64_t est_cost;   /* micro-USD to reserve against the budget */
    int64_t wall_us;    /* wall clock (the budget's UTC month) */
    uint32_t share;     /* 0 or 1: the rules as written; N: this process's share of rules
                           shared by N gateways (the local fallback of a shared limiter that
                           is down): rate and token limits, bursts and the in-flight cap / N,
                           at least 1 */
} tg_admit_in_t;

/* ---- a shared limiter's view (limits.backend: redis://, src/redis/) -------------------- */

#define TG_PLAN_MAX_RULES 72 /* 8 of one request, and every further tool of an MCP batch */

/* One counter a shared limiter keeps for a request: GCRA state named by (tenant, scope,
 * value), decided with rule (a token rule charged rule.cost units). */
typedef struct tg_plan_rule {
    const char *name;  /* what the RateLimit headers report: tenant, route, key, tool, model,
                          tokens */
    const char *scope; /* tenant, route, key, tool, model, tokens.tenant, tokens.model,
                          tokens.key */
    const char *value; /* "" for the tenant's own; points into the request or the plan */
    tg_limit_rule_t rule;
    int tokens; /* a token rule (settled to the actual count at the end) */
} tg_plan_rule_t;

/* Everything a shared limiter decides for one request at once, all or nothing: the rate
 * rules (the first nrate), the token rules, then the further tools of a batch; the in-flight
 * cap; the budget's terms. Pauses and IP rules are decided here, in memory (they are the
 * store's, not counters). */
typedef struct tg_admit_plan {
    size_t n, nrate;
    tg_plan_rule_t rules[TG_PLAN_MAX_RULES];
    char model[128];  /* the value of the model's rules */
    int64_t cap;      /* in-flight requests of the tenant, 0 = no cap */
    int has_budget;   /* the tenant has a monthly budget: */
    int hard;         /* refused once spend + reservations reach it */
    int64_t budget;   /* micro-USD per month */
    int64_t spent;    /* what this process knows was spent (the shared counter's seed) */
    int64_t est_cost; /* micro-USD to reserve */
} tg_admit_plan_t;

typedef struct tg_policy tg_policy_t;

tg_policy_t *tg_policy_new(void);
void tg_policy_free(tg_policy_t *p);
/* Config defaults; safe while requests run (copied under the lock). */
void tg_policy_set_defaults(tg_policy_t *p, const tg_policy_defaults_t *d);
/* Rebuilds the snapshot from the store now. now_us: the wall clock of the caller (budgets
 * start from the month-to-date spend of the UTC month holding it). */
int tg_policy_load(tg_policy_t *p, tg_store_t *store, int64_t now_us, tg_err_t *err);
int tg_policy_start_refresh(tg_policy_t *p, const char *store_url, long interval_ms, tg_err_t *err);
void tg_policy_stop_refresh(tg_policy_t *p);
/* The store's policy_version the refresher last loaded; -1 before (store/watch.h). */
int64_t tg_policy_loaded_version(const tg_policy_t *p);

/* Decides admission for an authenticated, routed request (in->key_id and in->tool may be
 * "": no such scope). On TG_ADMIT_OK with a->conc_key set, the caller must call
 * tg_policy_release once the request ends (whatever way). After pauses, IP rules and the
 * in-flight cap,
 * the estimated cost is reserved against a budget (402 when a hard one is reached), then
 * every rate rule and every token rule that applies (tokens per minute/hour of the tenant,
 * the model and the key, each charged est_tokens) is decided at once, all-or-nothing; a
 * refusal gives back what was reserved. */
void tg_policy_admit(tg_policy_t *p, const tg_admit_in_t *in, uint64_t now_ns, tg_admission_t *a);
/* For a shared limiter: pauses and IP rules decided as tg_policy_admit does (returns 1 with
 * the refusal in *a), else 0 with what must be decided elsewhere in *plan (values point
 * into *in and *plan) and *a cleared (nothing held here). */
int tg_policy_plan(tg_policy_t *p, const tg_admit_in_t *in, tg_admit_plan_t *plan,
                   tg_admission_t *a);
/* Adds each further tool of a batch that has a rate rule to plan: 0, or -1 when more than
 * TG_PLAN_MAX_RULES rules would apply. */
int tg_policy_plan_tools(tg_policy_t *p, tg_admit_plan_t *plan, const char *tenant,
                         const char *const *tools, size_t n);
/* A shared limiter's answer for plan: ahead_us[i] is rule i's state after it (TAT - now, in
 * microseconds), copied into this process's limiter (tg_limit_mirror) so the tenant's
 * utilisation here (the quota alarm, /metrics) follows the shared counters, and a fallback
 * to the in-memory limits starts from them. stamp_us: the shared limiter's clock when it
 * decided; an answer older than the one copied is ignored. now_ns: monotonic. */
void tg_policy_mirror(tg_policy_t *p, const char *tenant, const tg_admit_plan_t *plan,
                      const int64_t *ahead_us, int64_t stamp_us, uint64_t now_ns);
/* The shared counter's month-to-date spend of tenant (see tg_budgets_observe). */
void tg_policy_observe_spend(tg_policy_t *p, const char *tenant, int64_t spent, int64_t wall_us);

/* A JSON-RPC batch calls several tools: after tg_policy_admit (which counted the first),
 * each further call is counted against its tool's rate rule. Returns 1 when all fit; else
 * 0 with a->verdict TG_ADMIT_RATE and everything the request held given back. */
int tg_policy_admit_more_tools(tg_policy_t *p, tg_admission_t *a, const char *tenant,
                               const char *const *tools, size_t n, uint64_t now_ns,
                               int64_t wall_us);
/* The request ended: token reservations are moved to the actual count (tokens < 0 =
 * unknown: the estimate stands) and the budget reservation replaced by the actual cost.
 * Safe to call for any admission (a no-op when nothing is held); clears what it settled. */
void tg_policy_settle(tg_policy_t *p, tg_admission_t *a, const char *tenant, int64_t tokens,
                      int64_t cost_micros, uint64_t now_ns, int64_t wall_us);
/* The hook that turns each new budget alert into a notice (see tg_budgets_set_notice). */
void tg_policy_set_notice(tg_policy_t *p, tg_budget_notice_fn fn, void *ud);
/* Writes queued budget alerts to the store (the refresher does this every tick). */
int tg_policy_flush_alerts(tg_policy_t *p, tg_store_t *store, tg_err_t *err);
/* Budget state of a tenant (tests, show): see tg_budgets_state. */
int tg_policy_budget_state(tg_policy_t *p, const char *tenant, int64_t *spent, int64_t *reserved,
                           int64_t *budget);
/* Every budget's use this month (/metrics): see tg_budgets_uses. */
int tg_policy_budget_uses(tg_policy_t *p, int64_t now_us, tg_budget_use_t **out, size_t *n);
void tg_policy_release(tg_policy_t *p, uint64_t conc_key);

/* MCP tool policy (store tool_rules, global "*" and the tenant's): a tool matching a deny
 * pattern is refused; when any allow pattern applies to the tenant (its own or global),
 * only tools matching one are allowed. Patterns are fnmatch(3) globs. */
int tg_policy_tool_allowed(tg_policy_t *p, const char *tenant, const char *tool);
/* 0 when p may be stored as a tool rule's pattern (not empty, under cap bytes, UTF-8 text
 * without control characters, a well-formed glob), else -1 with the reason in err, in the
 * words of `tollgate tool` and the admin API, which both check with it. */
int tg_policy_tool_pattern_check(const char *p, size_t cap, tg_err_t *err);

/* In-flight requests of a tenant now (tests, metrics). */
int64_t tg_policy_inflight(tg_policy_t *p, const char *tenant);

/* The tenant's highest utilisation now over the rate and token rules that apply to it:
 * its own (or defaults.limits) and those of its routes, keys, tools and models, each as
 * tg_limit_usage (the units counted in the rule's own window over its limit). -1 when no
 * rule applies to the tenant. For the quota alarm and tollgate_limit_utilisation; the
 * tenant's rows are found in an index of the snapshot (a binary search), under the read
 * lock. */
double tg_policy_tenant_utilisation(tg_policy_t *p, const char *tenant, uint64_t now_ns);

/* Throttle (alarm actions): the tenant's request-rate rules are admitted at factor x their
 * limit and burst (at least 1) from the next request on, until set back with factor >= 1.
 * Token rules, the in-flight cap and budgets are not scaled. A tenant without a rate rule
 * is not limited by a throttle. Per process, in memory (the alarm runner re-applies a
 * throttle of a still-firing alarm at start). 0, or -1 when out of memory. */
int tg_policy_set_scale(tg_policy_t *p, const char *tenant, double factor);
/* The tenant's factor now (1 when none). */
double tg_policy_scale(tg_policy_t *p, const char *tenant);

#endif
