/* Pricing: what a usage event costs, in integer micro-USD.
 *
 * The price book is an immutable snapshot of price rows (types/rows.h, tg_price_row_t):
 * config defaults (prices: in tollgate.yaml, effective from the epoch) overlaid by store
 * rows (`tollgate price set`, effective-dated). It is rebuilt by a refresher thread when
 * meta.policy_version moves, like the admission policy, and swapped under a rwlock, so
 * pricing an event on a worker thread takes a read lock and allocates nothing.
 *
 * Which row applies: for each (meter, name) the row with the latest effective_us <= the
 * event's ts_us; a store row overrides a config row of the same (meter, name) from its
 * effective_us on (and wins a tie of effective_us); a field left -1 in a store row falls
 * back to the value of the config row of that (meter, name) in force at the store row's
 * effective_us. A name with no row in force at ts_us (only rows dated later) is unknown
 * at ts_us, so the "*" row applies. Amounts still unset after that count as 0, except
 * cached and cache_write (input).
 *
 * The cost of an event (tg_pricebook_price):
 *   - 0 unless the event is billable (outcome TG_OUTCOME_BILLABLE): failed and rejected
 *     requests are never billed, and their price_flag is "" (they were not priced, so
 *     no flag is computed for them).
 *   - model part, AI routes (openai, anthropic) with known tokens: the model's row, else
 *     its base model's (util/modelname.h: `gpt-4o-mini-2024-07-18`, `claude@2024`, `x:0`
 *     fall back to the model they name; names compare case-insensitively), else the
 *     fallback row (model "*", flag "fallback"), else nothing (flag "unpriced").
 *       openai:    (tokens_in - tokens_cached) * input + tokens_cached * cached
 *                  + tokens_out * output
 *       anthropic: tokens_in * input + tokens_cached * cached
 *                  + tokens_cache_write * cache_write + tokens_out * output
 *     prices per 1M tokens; cached and cache_write default to input when unset.
 *     An unknown tokens_cached / tokens_cache_write counts as 0; openai's tokens_cached is
 *     clamped to tokens_in. A model "" has no row of its own (the fallback applies).
 *     Tokens unknown on an AI route (tokens_in or tokens_out < 0): no model part, flag
 *     "tokens_unknown". An event with no model and no tokens (GET /v1/models, an upload)
 *     is not a model call: no model part and no flag.
 *   - route part, any route: the route's row (else route "*"): request + gb per 10^9 bytes
 *     of bytes_in + bytes_out.
 *   - tool part, MCP tools/call (ev->tool set): the tool's row (else tool "*"): call.
 *   Rounding, once per event: the fractional parts (per-token and per-byte amounts) are
 *   summed exactly in units of 10^-9 micro-USD and the sum rounded half up to a whole
 *   micro-USD; whole-micro parts (request, call) are added as they are.
 * Every intermediate is 128-bit; a result beyond INT64_MAX saturates. */
#ifndef TG_METER_PRICE_H
#define TG_METER_PRICE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"
#include "types/event.h"
#include "util/err.h"

typedef struct tg_pricebook tg_pricebook_t;

tg_pricebook_t *tg_pricebook_new(void);
void tg_pricebook_free(tg_pricebook_t *pb); /* stops the refresher first */

/* The config's rows (copied); safe while requests run. */
int tg_pricebook_set_defaults(tg_pricebook_t *pb, const tg_price_row_t *rows, size_t n,
                              tg_err_t *err);
/* Rebuilds the snapshot from the store's rows now. */
int tg_pricebook_load(tg_pricebook_t *pb, tg_store_t *store, tg_err_t *err);
int tg_pricebook_start_refresh(tg_pricebook_t *pb, const char *store_url, long interval_ms,
                               tg_err_t *err);
void tg_pricebook_stop_refresh(tg_pricebook_t *pb);
/* The store's policy_version the refresher last loaded prices at; -1 before. */
int64_t tg_pricebook_loaded_version(const tg_pricebook_t *pb);

/* Sets ev->cost_micros and ev->price_flag (see above) for a finished event on a route of
 * the given kind. Thread-safe. */
void tg_pricebook_price(tg_pricebook_t *pb, tg_event_t *ev, tg_route_kind_t kind);

/* The call price of one MCP tool (its row, else "*"; 0 when none) in force at ts_us: a
 * batch's further tools/call are added with it to the event priced above. Thread-safe. */
int64_t tg_pricebook_call(tg_pricebook_t *pb, const char *tool, int64_t ts_us);

/* 1 when a model part can be priced for model at ts_us: a row of its own or of its base
 * model, or a "*" row. Thread-safe. */
int tg_pricebook_model_priced(tg_pricebook_t *pb, const char *model, int64_t ts_us);

/* What a request would cost with these counts, by the rules above as if billable (for
 * budget reservations), with no cached or cache-write tokens. model, tool: "" (or NULL)
 * when none; tokens < 0 means unknown (no model part, as above). Thread-safe. */
int64_t tg_pricebook_estimate(tg_pricebook_t *pb, tg_route_kind_t kind, const char *route,
                              const char *model, const char *tool, int64_t tokens_in,
                              int64_t tokens_out, int64_t bytes, int64_t ts_us);

#endif
