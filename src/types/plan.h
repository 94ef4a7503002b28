/* Plans and invoices as plain values (issue 12): what the store keeps, what the pricing
 * arithmetic (src/invoice/) reads and writes, and what the CLI prints. Below all three, so
 * none of them includes another's header for its types.
 *
 * A plan prices one UTC calendar month of a tenant's usage: a base fee and meters. Every
 * meter has a price model (flat, per unit, graduated tiers, volume tiers) and included
 * units. Amounts are integer micro-USD; a unit price is micro-USD per tg_plan_scale(meter)
 * units (per 1M requests, tokens, calls and micro-USD of AI cost; per GB = 10^9 bytes). The
 * one rounding rule (docs/billing.md) is applied by src/invoice/invoice.c. */
#ifndef TG_TYPES_PLAN_H
#define TG_TYPES_PLAN_H

#include <stdint.h>
#include <string.h>

#include "util/sizes.h"

/* What a meter counts, over the tenant's events of the month. Every meter but requests
 * counts billable events only (outcome 'billable'). */
typedef enum {
    TG_PMETER_REQUESTS = 0, /* every request recorded, any outcome */
    TG_PMETER_BILLABLE,     /* requests with outcome 'billable' */
    TG_PMETER_GB,           /* body bytes in + out, in bytes; priced per GB (10^9 bytes) */
    TG_PMETER_TOKENS_IN,    /* input tokens (OpenAI's include the cached ones) */
    TG_PMETER_TOKENS_OUT,   /* output tokens */
    TG_PMETER_TOOL_CALLS,   /* events that called an MCP tool */
    TG_PMETER_AI_COST,      /* cost_micros, the AI price tollgate computed; in micro-USD */
    TG_PMETER_COUNT
} tg_pmeter_t;

typedef enum {
    TG_PMODEL_FLAT = 0,  /* flat_micros once when any unit above the included ones is used */
    TG_PMODEL_UNIT,      /* every unit at tiers[0].unit_micros (one unbounded tier) */
    TG_PMODEL_GRADUATED, /* each tier prices the units that fall in it */
    TG_PMODEL_VOLUME,    /* the tier the quantity reaches prices every unit */
    TG_PMODEL_COUNT
} tg_pmodel_t;

#define TG_PLAN_NAME_SIZE  64
#define TG_PLAN_MATCH_SIZE 128
#define TG_PLAN_TIERS      8
#define TG_PLAN_METERS     16

typedef struct tg_plan_tier {
    int64_t up_to;       /* the tier ends after this many units, counted from 0 after the
                            included units; -1 = no end (the last tier only) */
    int64_t unit_micros; /* micro-USD per tg_plan_scale(meter) units */
} tg_plan_tier_t;

typedef struct tg_plan_meter {
    int32_t meter; /* tg_pmeter_t */
    int32_t model; /* tg_pmodel_t */
    /* tokens_in / tokens_out: the model ("*" = every model no other meter of the same kind
     * names); tool_calls: the tool ("*" likewise); "" for the other meters. */
    char match[TG_PLAN_MATCH_SIZE];
    int64_t included;    /* units free each month, taken off before any tier */
    int64_t flat_micros; /* FLAT only */
    int32_t ntiers;      /* UNIT: 1; GRADUATED, VOLUME: 1..TG_PLAN_TIERS; FLAT: 0 */
    tg_plan_tier_t tiers[TG_PLAN_TIERS];
} tg_plan_meter_t;

/* One version of a plan: the version in force at a month's first instant prices the whole
 * month. */
typedef struct tg_plan {
    char name[TG_PLAN_NAME_SIZE];
    int64_t effective_us; /* the first instant of a UTC month */
    int64_t base_micros;  /* the monthly fee */
    int64_t created_us;
    int32_t nmeters;
    tg_plan_meter_t meters[TG_PLAN_METERS];
} tg_plan_t;

/* A tenant's plan from a month on ("YYYY-MM"), until its next row. */
typedef struct tg_tenant_plan_row {
    char tenant[TG_TENANT_SIZE];
    char from_month[8];
    char plan[TG_PLAN_NAME_SIZE];
    int64_t updated_us;
} tg_tenant_plan_row_t;

/* A tenant's billable usage over an interval, per (model, tool) group: what the meters are
 * measured from (the store sums usage_events; src/invoice/ assigns groups to meters). */
typedef struct tg_plan_usage_row {
    const char *model; /* "" when none; valid during the callback */
    const char *tool;  /* "" when none */
    int64_t requests;  /* every outcome */
    int64_t billable;  /* the rest count billable events only */
    int64_t bytes;     /* bytes_in + bytes_out */
    int64_t tokens_in, tokens_out;
    int64_t tool_calls;
    int64_t cost_micros;
} tg_plan_usage_row_t;

typedef enum {
    TG_LINE_BASE = 0, /* the plan's monthly fee */
    TG_LINE_INCLUDED, /* units free under the plan, priced 0 */
    TG_LINE_FLAT,     /* a flat meter's amount */
    TG_LINE_TIER,     /* units of one tier (UNIT: its one tier) */
    TG_LINE_VOLUME,   /* a volume meter: every unit, at the price of the tier reached */
    TG_LINE_ADJUST,   /* a closed month's difference: late events, billed now */
    TG_LINE_COUNT
} tg_line_kind_t;

/* One line of an invoice, as printed and as frozen when its month is closed. */
typedef struct tg_invoice_line {
    int32_t kind;  /* tg_line_kind_t */
    int32_t meter; /* tg_pmeter_t; -1 for the base fee */
    char match[TG_PLAN_MATCH_SIZE];
    int32_t tier;        /* 1-based tier number; 0 when the line is no tier */
    int64_t tier_from;   /* TIER: units after the included ones where the tier starts */
    int64_t tier_to;     /* TIER: where it ends; -1 = no end */
    int64_t quantity;    /* units on this line (ADJUST: the change, may be negative) */
    int64_t unit_micros; /* micro-USD per scale units; 0 where not a unit price */
    int64_t scale;       /* tg_plan_scale(meter); 0 where not a unit price */
    int64_t subtotal_micros;
    char for_month[8]; /* ADJUST: the closed month "YYYY-MM"; else "" */
} tg_invoice_line_t;

/* A closed month's meter as billed so far: frozen at close, moved to the events' values
 * each time a later invoice is closed with an adjustment for it. */
typedef struct tg_invoice_billed {
    char month[8];
    int32_t meter;
    char match[TG_PLAN_MATCH_SIZE];
    int64_t measured;      /* units billed so far (before included units) */
    int64_t amount_micros; /* what they were billed so far */
    /* As frozen when the month was closed (never moved by adjustments); ignored by
     * tg_store_invoice_close's rebilled rows. */
    int64_t closed_measured, closed_amount_micros;
    /* Rebilled rows only: the measured value the adjustment was computed against (0 when
     * the meter had no row). The close is refused when the row says otherwise by then:
     * another close billed the same late events first. */
    int64_t was_measured;
} tg_invoice_billed_t;

/* A closed month's invoice header. */
typedef struct tg_invoice_row {
    char tenant[TG_TENANT_SIZE];
    char month[8];
    char plan[TG_PLAN_NAME_SIZE];
    int64_t plan_effective_us;
    int64_t total_micros;
    int64_t closed_us;
} tg_invoice_row_t;

/* The names the store, the CLI and the documents use: "requests", "billable", "gb",
 * "tokens_in", "tokens_out", "tool_calls", "ai_cost"; "flat", "unit", "graduated",
 * "volume"; "base", "included", "flat", "tier", "volume", "adjustment". "?" when out of range.
 * Parse gives the value, or -1. */
static inline const char *tg_plan_meter_name(int meter)
{
    static const char *const n[TG_PMETER_COUNT] = {
        "requests", "billable", "gb", "tokens_in", "tokens_out", "tool_calls", "ai_cost"};
    return meter >= 0 && meter < TG_PMETER_COUNT ? n[meter] : "?";
}

static inline const char *tg_plan_model_name(int model)
{
    static const char *const n[TG_PMODEL_COUNT] = {"flat", "unit", "graduated", "volume"};
    return model >= 0 && model < TG_PMODEL_COUNT ? n[model] : "?";
}

static inline const char *tg_plan_line_kind_name(int kind)
{
    static const char *const n[TG_LINE_COUNT] = {"base", "included", "flat",
                                                 "tier", "volume",   "adjustment"};
    return kind >= 0 && kind < TG_LINE_COUNT ? n[kind] : "?";
}

/* The value whose name (above) is s, among count: -1 when none. */
static inline int tg_plan_name_parse(const char *(*name)(int), int count, const char *s)
{
    for (int i = 0; i < count; i++)
        if (s && strcmp(s, name(i)) == 0) return i;
    return -1;
}

/* Units per price unit: 10^9 bytes (a GB) for TG_PMETER_GB, else 10^6 (1M requests,
 * tokens or calls; 1 USD of AI cost). */
static inline int64_t tg_plan_scale(int meter)
{
    return meter == TG_PMETER_GB ? 1000000000LL : 1000000LL;
}

#endif
