/* The store: tenants, API keys, usage events and daily aggregates.
 *
 * One interface, backends behind a function table (struct tg_store_ops):
 * sqlite.c today, postgres.c later. Callers never know which one they talk to.
 * A tg_store_t is one connection and is not thread-safe: each thread opens its
 * own (the writer thread, the auth refresher, a CLI command).
 *
 * The tables are described once, in src/store/migrations.c (numbered
 * migrations, applied by tg_store_open).
 *
 * Functions taking a callback call it once per row, in order; the row and its
 * strings are valid only during the call. A nonzero return from the callback
 * stops the iteration and is returned as is. */
#ifndef TG_STORE_STORE_H
#define TG_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "meter/event.h"
#include "util/err.h"
#include "util/sizes.h"

/* Result codes beyond 0 / -1. */
#define TG_STORE_NOTFOUND (-2)
#define TG_STORE_EXISTS   (-3)
#define TG_STORE_BUSY     (-4) /* locked or not writable right now: try again later */

typedef struct tg_tenant {
    char id[64];
    char name[128];
    char status[16]; /* "active" | "disabled" */
    int64_t created_us;
} tg_tenant_t;

typedef struct tg_key {
    char id[32]; /* public id, e.g. "key_7f3a..." */
    char tenant_id[64];
    unsigned char sha256[32];
    char prefix[16]; /* display prefix of the secret, e.g. "tg_Ab3dE" */
    char name[128];
    char status[16]; /* "active" | "revoked" */
    int64_t created_us;
    int64_t last_used_us; /* 0 = never */
} tg_key_t;

/* What the gateway needs to authenticate: every key, joined with its tenant. */
typedef struct tg_auth_row {
    const unsigned char *sha256; /* 32 bytes */
    const char *key_id;
    const char *tenant_id;
    int key_active;    /* key status is active */
    int tenant_active; /* tenant status is active */
} tg_auth_row_t;

typedef enum {
    TG_BY_DAY = 0,
    TG_BY_HOUR,
    TG_BY_ROUTE,
    TG_BY_KEY,
    TG_BY_MODEL,
    TG_BY_TOOL,
} tg_usage_by_t;

typedef struct tg_usage_query {
    const char *tenant; /* NULL = all */
    int64_t from_us;    /* inclusive UTC midnight; 0 = no bound */
    int64_t to_us;      /* exclusive: the midnight after the --to day; 0 = no bound */
    tg_usage_by_t by;
} tg_usage_query_t;

typedef struct tg_usage_row {
    const char *tenant;
    const char *group; /* the day, hour, route, key, model or tool */
    int64_t requests, billable, failed, rejected;
    int64_t bytes_in, bytes_out;
    int64_t tokens_in, tokens_out;
    int64_t cost_micros;
} tg_usage_row_t;

/* Policy: rate limits, concurrency caps, pauses and IP rules (limits issue).
 * "*" as tenant means every tenant (global). */
typedef struct tg_limit_row {
    char tenant[TG_TENANT_SIZE];
    char scope[8];           /* "tenant" | "route" | "tool" | "key" | "model" */
    char value[128];         /* route name, tool name, key id or model; "" for scope "tenant" */
    int64_t limit;           /* requests per period; with period_s 0 = no rate limit */
    int64_t period_s;        /* 1, 60 or 3600 (--rps, --rpm, --rph); 0 = no rate limit */
    int64_t burst;           /* 0 = same as limit */
    int64_t concurrency;     /* in-flight cap, scope "tenant" only; 0 = none */
    int64_t tokens;          /* tokens (input + output) per tokens_period_s; with period 0 = none */
    int64_t tokens_period_s; /* 60 or 3600 (--tpm, --tph); 0 = no token limit */
    int64_t updated_us;
} tg_limit_row_t;

/* Prices (AI metering issue). A row prices one meter from effective_us on; the row in force
 * for an event is the one with the latest effective_us <= the event's ts_us, so an event
 * keeps the price it had (and cost_micros is fixed when the event is recorded anyway).
 * Amounts are integer micro-USD; -1 = not set in this row (the config default applies).
 *   meter "model": name is the model as the client requested it ("*" = the fallback for
 *     unknown models); input/output/cached/cache_write per 1M tokens.
 *   meter "route": name is a route name ("*" = every route); request per request, gb per
 *     10^9 body bytes (in + out).
 *   meter "tool": name is an MCP tool ("*" = every tool); call per tools/call. */
typedef struct tg_price_row {
    char meter[8];
    char name[128];
    int64_t effective_us;
    int64_t input_micros, output_micros, cached_micros, cache_write_micros;
    int64_t request_micros, gb_micros, call_micros;
    int64_t created_us;
} tg_price_row_t;

/* A tenant's monthly budget (UTC calendar month). */
typedef struct tg_budget_row {
    char tenant[TG_TENANT_SIZE];
    int64_t monthly_micros;
    int hard;          /* 1: refuse with 402 at the budget; 0 (--soft): alerts only */
    int thresholds[8]; /* percent, ascending, e.g. 80, 90, 100 */
    int nthresholds;
    int64_t updated_us;
} tg_budget_row_t;

/* One alert that fired; (kind, tenant, threshold, period) is unique, so an alert is
 * recorded once per period however many processes see the crossing. */
typedef struct tg_alert_row {
    int64_t id;
    char kind[32]; /* "budget" */
    char tenant[TG_TENANT_SIZE];
    int threshold;                       /* percent */
    char period[8];                      /* "YYYY-MM" (UTC) */
    int64_t spend_micros, budget_micros; /* when it fired */
    int64_t fired_us;
} tg_alert_row_t;

/* Per-tenant MCP tool policy: glob patterns (fnmatch(3)); deny wins; once a tenant has an
 * allow pattern, only tools matching one are allowed. "*" as tenant = every tenant. */
typedef struct tg_tool_rule_row {
    char tenant[TG_TENANT_SIZE];
    char action[8]; /* "allow" | "deny" */
    char pattern[128];
    int64_t created_us;
} tg_tool_rule_row_t;

typedef struct tg_pause_row {
    char tenant[TG_TENANT_SIZE]; /* "*" = everything */
    char reason[256];
    int64_t created_us;
} tg_pause_row_t;

typedef struct tg_ip_rule_row {
    char tenant[TG_TENANT_SIZE]; /* "*" = global */
    char action[8];              /* "allow" | "deny" */
    char cidr[64];               /* normalized text, e.g. "10.0.0.0/8" */
    int64_t created_us;
} tg_ip_rule_row_t;

typedef struct tg_store tg_store_t;

struct tg_store_ops {
    void (*close)(tg_store_t *s);
    int (*tenant_add)(tg_store_t *s, const char *id, const char *name, tg_err_t *err);
    int (*tenant_get)(tg_store_t *s, const char *id, tg_tenant_t *out, tg_err_t *err);
    int (*tenant_list)(tg_store_t *s, int (*cb)(const tg_tenant_t *, void *), void *ud,
                       tg_err_t *err);
    int (*tenant_set_status)(tg_store_t *s, const char *id, const char *status, tg_err_t *err);
    int (*key_add)(tg_store_t *s, const tg_key_t *k, tg_err_t *err);
    int (*key_list)(tg_store_t *s, const char *tenant, int (*cb)(const tg_key_t *, void *),
                    void *ud, tg_err_t *err);
    int (*key_revoke)(tg_store_t *s, const char *key_id, tg_err_t *err);
    int (*auth_load)(tg_store_t *s, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                     tg_err_t *err);
    /* A number that changes whenever any connection (any process) committed a
     * change to tenants or keys; cheap enough to poll several times a second. */
    int (*auth_version)(tg_store_t *s, int64_t *out, tg_err_t *err);
    /* Inserts events and updates usage_daily in one transaction. An event
     * whose id is already stored is skipped (so a replay counts nothing twice);
     * *inserted says how many were new. TG_STORE_BUSY when the store cannot
     * be written now (nothing was written). */
    int (*append)(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted, tg_err_t *err);
    /* Deletes events with ts before events_before_us (0 = none) and
     * aggregates for days before agg_before_day "YYYY-MM-DD" (NULL = none).
     * *deleted (may be NULL) is the number of rows deleted, both kinds. Events
     * go in short transactions of a few thousand rows, so a large purge does
     * not hold the write lock against the writer for long. */
    int (*purge)(tg_store_t *s, int64_t events_before_us, const char *agg_before_day,
                 int64_t *deleted, tg_err_t *err);
    int (*usage)(tg_store_t *s, const tg_usage_query_t *q,
                 int (*cb)(const tg_usage_row_t *, void *), void *ud, tg_err_t *err);
    /* 0 when a write transaction can be taken now. */
    int (*writable)(tg_store_t *s, tg_err_t *err);
    /* Policy. Every change bumps meta.policy_version in the same transaction,
     * which a running gateway polls (like auth_version). limit_set replaces
     * the row of (tenant, scope, value). *_rm and pause_clear return
     * TG_STORE_NOTFOUND when there was nothing to remove. */
    int (*policy_version)(tg_store_t *s, int64_t *out, tg_err_t *err);
    int (*limit_set)(tg_store_t *s, const tg_limit_row_t *row, tg_err_t *err);
    int (*limit_rm)(tg_store_t *s, const char *tenant, const char *scope, const char *value,
                    tg_err_t *err);
    int (*limit_list)(tg_store_t *s, const char *tenant, int (*cb)(const tg_limit_row_t *, void *),
                      void *ud, tg_err_t *err);
    /* now_us: when the pause begins (kept when an existing pause gets a new reason). */
    int (*pause_set)(tg_store_t *s, const char *tenant, const char *reason, int64_t now_us,
                     tg_err_t *err);
    int (*pause_clear)(tg_store_t *s, const char *tenant, tg_err_t *err);
    int (*pause_list)(tg_store_t *s, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                      tg_err_t *err);
    int (*ip_rule_add)(tg_store_t *s, const tg_ip_rule_row_t *row, tg_err_t *err);
    int (*ip_rule_rm)(tg_store_t *s, const char *tenant, const char *action, const char *cidr,
                      tg_err_t *err);
    int (*ip_rule_list)(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_ip_rule_row_t *, void *), void *ud, tg_err_t *err);
    /* Prices, budgets and tool rules bump meta.policy_version like the policy tables.
     * price_rm removes every row of (meter, name) when effective_us is -1, else that one
     * row. alert_add inserts unless (kind, tenant, threshold, period) exists; *inserted
     * says which. spend is the sum of usage_daily.cost_micros of tenant for days in
     * [from_day, to_day] ("YYYY-MM-DD", inclusive). */
    int (*price_set)(tg_store_t *s, const tg_price_row_t *row, tg_err_t *err);
    int (*price_rm)(tg_store_t *s, const char *meter, const char *name, int64_t effective_us,
                    tg_err_t *err);
    int (*price_list)(tg_store_t *s, int (*cb)(const tg_price_row_t *, void *), void *ud,
                      tg_err_t *err);
    int (*budget_set)(tg_store_t *s, const tg_budget_row_t *row, tg_err_t *err);
    int (*budget_rm)(tg_store_t *s, const char *tenant, tg_err_t *err);
    int (*budget_list)(tg_store_t *s, const char *tenant,
                       int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err);
    int (*alert_add)(tg_store_t *s, const tg_alert_row_t *row, int *inserted, tg_err_t *err);
    int (*alert_list)(tg_store_t *s, const char *tenant, int (*cb)(const tg_alert_row_t *, void *),
                      void *ud, tg_err_t *err);
    int (*spend)(tg_store_t *s, const char *tenant, const char *from_day, const char *to_day,
                 int64_t *micros, tg_err_t *err);
    int (*tool_rule_add)(tg_store_t *s, const tg_tool_rule_row_t *row, tg_err_t *err);
    int (*tool_rule_rm)(tg_store_t *s, const char *tenant, const char *action, const char *pattern,
                        tg_err_t *err);
    int (*tool_rule_list)(tg_store_t *s, const char *tenant,
                          int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err);
    /* How long a call waits for another connection's lock before giving up
     * with TG_STORE_BUSY. tg_store_open sets 5000 ms, right for the CLI and
     * readers; the recorder's writer sets a short one (it spools instead of
     * stalling the queue). May be NULL in a backend without the notion. */
    int (*set_busy_timeout)(tg_store_t *s, long ms, tg_err_t *err);
};

struct tg_store {
    const struct tg_store_ops *ops;
};

/* Opens "sqlite:PATH" (creating it and applying migrations). */
int tg_store_open(const char *url, tg_store_t **out, tg_err_t *err);

/* Thin wrappers so call sites read as tg_store_*(). */
static inline void tg_store_close(tg_store_t *s)
{
    if (s) s->ops->close(s);
}
#define tg_store_tenant_add(s, ...)        ((s)->ops->tenant_add((s), __VA_ARGS__))
#define tg_store_tenant_get(s, ...)        ((s)->ops->tenant_get((s), __VA_ARGS__))
#define tg_store_tenant_list(s, ...)       ((s)->ops->tenant_list((s), __VA_ARGS__))
#define tg_store_tenant_set_status(s, ...) ((s)->ops->tenant_set_status((s), __VA_ARGS__))
#define tg_store_key_add(s, ...)           ((s)->ops->key_add((s), __VA_ARGS__))
#define tg_store_key_list(s, ...)          ((s)->ops->key_list((s), __VA_ARGS__))
#define tg_store_key_revoke(s, ...)        ((s)->ops->key_revoke((s), __VA_ARGS__))
#define tg_store_auth_load(s, ...)         ((s)->ops->auth_load((s), __VA_ARGS__))
#define tg_store_auth_version(s, ...)      ((s)->ops->auth_version((s), __VA_ARGS__))
#define tg_store_append(s, ...)            ((s)->ops->append((s), __VA_ARGS__))
#define tg_store_purge(s, ...)             ((s)->ops->purge((s), __VA_ARGS__))
#define tg_store_usage(s, ...)             ((s)->ops->usage((s), __VA_ARGS__))
#define tg_store_writable(s, ...)          ((s)->ops->writable((s), __VA_ARGS__))
#define tg_store_policy_version(s, ...)    ((s)->ops->policy_version((s), __VA_ARGS__))
#define tg_store_limit_set(s, ...)         ((s)->ops->limit_set((s), __VA_ARGS__))
#define tg_store_limit_rm(s, ...)          ((s)->ops->limit_rm((s), __VA_ARGS__))
#define tg_store_limit_list(s, ...)        ((s)->ops->limit_list((s), __VA_ARGS__))
#define tg_store_pause_set(s, ...)         ((s)->ops->pause_set((s), __VA_ARGS__))
#define tg_store_pause_clear(s, ...)       ((s)->ops->pause_clear((s), __VA_ARGS__))
#define tg_store_pause_list(s, ...)        ((s)->ops->pause_list((s), __VA_ARGS__))
#define tg_store_ip_rule_add(s, ...)       ((s)->ops->ip_rule_add((s), __VA_ARGS__))
#define tg_store_ip_rule_rm(s, ...)        ((s)->ops->ip_rule_rm((s), __VA_ARGS__))
#define tg_store_ip_rule_list(s, ...)      ((s)->ops->ip_rule_list((s), __VA_ARGS__))
#define tg_store_price_set(s, ...)         ((s)->ops->price_set((s), __VA_ARGS__))
#define tg_store_price_rm(s, ...)          ((s)->ops->price_rm((s), __VA_ARGS__))
#define tg_store_price_list(s, ...)        ((s)->ops->price_list((s), __VA_ARGS__))
#define tg_store_budget_set(s, ...)        ((s)->ops->budget_set((s), __VA_ARGS__))
#define tg_store_budget_rm(s, ...)         ((s)->ops->budget_rm((s), __VA_ARGS__))
#define tg_store_budget_list(s, ...)       ((s)->ops->budget_list((s), __VA_ARGS__))
#define tg_store_alert_add(s, ...)         ((s)->ops->alert_add((s), __VA_ARGS__))
#define tg_store_alert_list(s, ...)        ((s)->ops->alert_list((s), __VA_ARGS__))
#define tg_store_spend(s, ...)             ((s)->ops->spend((s), __VA_ARGS__))
#define tg_store_tool_rule_add(s, ...)     ((s)->ops->tool_rule_add((s), __VA_ARGS__))
#define tg_store_tool_rule_rm(s, ...)      ((s)->ops->tool_rule_rm((s), __VA_ARGS__))
#define tg_store_tool_rule_list(s, ...)    ((s)->ops->tool_rule_list((s), __VA_ARGS__))
static inline int tg_store_set_busy_timeout(tg_store_t *s, long ms, tg_err_t *err)
{
    return s->ops->set_busy_timeout ? s->ops->set_busy_timeout(s, ms, err) : 0;
}

#define TG_STORE_BUSY_TIMEOUT_MS 5000 /* the default set by tg_store_open */

/* Backend constructors (store.c dispatches on the URL scheme). */
int tg_sqlite_open(const char *path, tg_store_t **out, tg_err_t *err);

#endif
