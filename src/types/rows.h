/* The store's rows as plain values: tenants, keys, usage reports, policy rows (limits,
 * pauses, IP and tool rules), prices, budgets and alerts. They sit below every module that
 * handles them (the store reads and writes them, config builds price rows, policy and the
 * price book snapshot them, the CLI prints them), so none of those needs the store's
 * interface (store/store.h) for a type. Fixed-size strings, no pointers that own memory:
 * a row is copied with =. */
#ifndef TG_TYPES_ROWS_H
#define TG_TYPES_ROWS_H

#include <stdint.h>

#include "util/sizes.h"

typedef struct tg_tenant {
    char id[TG_TENANT_SIZE];
    char name[128];
    char status[16]; /* "active" | "disabled" */
    int64_t created_us;
} tg_tenant_t;

/* A signing secret ("tgs_" + 43 base62 characters, auth/apikey.h) and the same sealed by the
 * KEK (crypt/crypt.h: the secret plus 100 bytes). */
#define TG_SIGNING_SECRET_LEN 47
#define TG_SIGNING_SEALED_LEN 147

typedef struct tg_key {
    char id[32]; /* public id, e.g. "key_7f3a..." */
    char tenant_id[TG_TENANT_SIZE];
    unsigned char sha256[32];
    char prefix[16]; /* display prefix of the secret, e.g. "tg_Ab3dE" */
    char name[128];
    char status[16]; /* "active" | "revoked" */
    int64_t created_us;
    int64_t last_used_us;  /* 0 = never */
    int64_t expires_us;    /* refused from this instant on; 0 = never */
    char rotated_from[32]; /* the key this one replaced (`key rotate`); "" = none */
    int signing;           /* it has a signing secret: key_add stores signing_sealed */
    unsigned char signing_sealed[TG_SIGNING_SEALED_LEN]; /* written by key_add only */
} tg_key_t;

/* What the gateway needs to authenticate: every key, joined with its tenant. */
typedef struct tg_auth_row {
    const unsigned char *sha256; /* 32 bytes */
    const char *key_id;
    const char *tenant_id;
    int key_active;     /* key status is active */
    int tenant_active;  /* tenant status is active */
    int64_t expires_us; /* 0 = never */
    int signing;        /* signing_sealed holds the key's sealed signing secret */
    unsigned char signing_sealed[TG_SIGNING_SEALED_LEN];
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

/* The current state of one alarm rule for one tenant (src/alarm/alarm.h): one row per
 * (name, tenant) that ever left ok. tenant "" = process-wide (kind queue). */
typedef struct tg_alarm_row {
    char name[64];
    char tenant[TG_TENANT_SIZE];
    char kind[16];                     /* quota | error_rate | latency | spend_rate | queue */
    char state[16];                    /* ok | pending | firing | resolved */
    double value, threshold, baseline; /* at the last evaluation stored */
    int64_t since_us;                  /* when it entered the state */
    int64_t started_us;                /* when it last began firing; 0 = never */
    int64_t updated_us;                /* when the row was last written */
    int64_t seq;                       /* transitions so far (the last notice id's number) */
    char action[64]; /* what tollgate did and has not undone: "throttle 0.5", "pause", "" */
} tg_alarm_row_t;

/* One transition of an alarm, as stored in alarm_events. */
typedef struct tg_alarm_event_row {
    int64_t id;          /* in the order stored */
    char notice_id[160]; /* the notice's stable id, e.g. "alarm/errors/acme/3" */
    char name[64];
    char tenant[TG_TENANT_SIZE];
    char kind[16];
    char from_state[16], to_state[16];
    double value, threshold, baseline;
    int64_t window_s;
    int64_t time_us;
    int64_t seq;
    char action[64]; /* what was done at this transition: "throttle 0.5", "pause",
                        "unthrottle", "resume", "pause left: an operator changed it", "" */
    char summary[256];
} tg_alarm_event_row_t;

/* Dashboard reads (issue 11, store.h "dashboard"). One tenant's events over a range. */
typedef struct tg_dash_totals {
    char tenant[TG_TENANT_SIZE];
    int64_t requests, billable, failed, rejected; /* summed by usage_events.requests */
    int64_t tokens_in, tokens_out, cost_micros;
    int64_t events;         /* rows, the latency samples */
    int64_t latency_p95_us; /* nearest-rank 95th percentile of latency_us; -1: no rows */
} tg_dash_totals_t;

/* One bucket of a tenant's time series: index = (ts_us - from_us) / bucket_us. */
typedef struct tg_dash_bucket {
    int64_t index;
    int64_t requests, failed, rejected;
    int64_t tokens_in, tokens_out, cost_micros;
} tg_dash_bucket_t;

/* One rejected request of a tenant, newest first. */
typedef struct tg_dash_rejection {
    int64_t ts_us;
    int status;
    char reason[48];
    char route[64];
    char method[16];
    char path[256];
} tg_dash_rejection_t;

#endif
