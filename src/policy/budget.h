/* Monthly budgets: spend per tenant per UTC calendar month, reservations, hard stops and
 * threshold alerts.
 *
 * A tenant with a budget (store table budgets, `tollgate budget set`) has, in memory, its
 * spend this month and what requests in flight have reserved. Admission reserves the
 * request's estimated cost; a hard budget refuses once spend + reservations reach it, so
 * requests racing at the last dollar can overshoot by at most one reservation (the last
 * one admitted), as long as no request costs more than it reserved. When the request ends,
 * its reservation is replaced by its actual cost.
 *
 * Spend starts from the store (usage_daily, month to date) when a tenant's budget is first
 * loaded in a period, then grows with every settled request of this process. Several
 * gateway processes on one store each count their own requests (unless they share a Redis:
 * limits.backend, src/redis/, where this is the seed of the shared spend and the local
 * fallback's view; documented limit without it
 * budget counters live in Redis). A new month starts from zero.
 *
 * Alerts: when spend reaches a threshold (percent of the budget; 80/90/100 by default),
 * one alert per (tenant, threshold, month) is queued and written by tg_budgets_flush (the
 * policy's refresher thread) to the alerts table, whose unique key keeps it once however
 * many processes see the crossing, and logged when it is new. Thread-safe; one mutex, held
 * for a hash lookup and a few additions. */
#ifndef TG_POLICY_BUDGET_H
#define TG_POLICY_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "types/notice.h"
#include "util/err.h"
#include "util/sizes.h"

typedef struct tg_budgets tg_budgets_t;

tg_budgets_t *tg_budgets_new(void);
void tg_budgets_free(tg_budgets_t *b);

/* Replaces the set of budgets with the store's; keeps the spend, reservations and fired
 * alerts of tenants already known this period; reads month-to-date spend and this month's
 * alerts for the others. now_us: wall clock (the UTC month). */
int tg_budgets_load(tg_budgets_t *b, tg_store_t *store, int64_t now_us, tg_err_t *err);

/* Reserves est_micros for a request of tenant. Returns 0 (reserved; *reserved says how
 * much, 0 when the tenant has no budget), or 1 when a hard budget is reached (nothing
 * reserved; message says so). */
int tg_budgets_reserve(tg_budgets_t *b, const char *tenant, int64_t est_micros, int64_t now_us,
                       int64_t *reserved, char *message, size_t cap);
/* The request ended: its reservation is released and actual_micros added to the spend. */
void tg_budgets_settle(tg_budgets_t *b, const char *tenant, int64_t reserved, int64_t actual_micros,
                       int64_t now_us);

/* Writes queued alerts to the store (and logs the new ones). */
int tg_budgets_flush(tg_budgets_t *b, tg_store_t *store, tg_err_t *err);

/* Notices for threshold alerts (issue 11). policy/ and notify/ are peers and include none of
 * each other: the server sets this hook (notify's enqueue into the outbox). tg_budgets_flush
 * calls it with each queued alert's notice (tg_budget_notice) and its own store connection
 * BEFORE it stores the alert row, and keeps the alert queued when it fails, so a crash
 * between the two writes loses no notice; the notice's id ("budget/TENANT/YYYY-MM/PCT")
 * makes the outbox keep it once, so an alert already stored by another process (its
 * notice too) adds nothing. NULL fn: no notices. Set before the refresher starts. */
typedef int (*tg_budget_notice_fn)(void *ud, tg_store_t *store, const tg_notice_t *n,
                                   tg_err_t *err);
void tg_budgets_set_notice(tg_budgets_t *b, tg_budget_notice_fn fn, void *ud);
/* The notice of alert row r: kind and alarm "budget", state firing, severity critical from
 * 100% on (else warning), value spend / budget, threshold percent / 100, time the firing. */
void tg_budget_notice(const tg_alert_row_t *r, tg_notice_t *out);

/* What a shared limiter (Redis) needs to decide for tenant in the UTC month of now_us: its
 * monthly budget, whether it is hard, and the spend this process knows (the store's month
 * to date when loaded, plus what it settled or observed since): the seed of the shared
 * spend counter when that is missing. 0, or -1 when the tenant has no budget. */
int tg_budgets_terms(tg_budgets_t *b, const char *tenant, int64_t now_us, int64_t *budget,
                     int *hard, int64_t *spent);
/* The shared counter said the tenant has spent this much this month: a larger figure than
 * the one known here replaces it (threshold alerts fire from it; the local fallback
 * reserves against it while the shared limiter is down). */
void tg_budgets_observe(tg_budgets_t *b, const char *tenant, int64_t spent, int64_t now_us);

/* The state of tenant now (tests): 0, or -1 when it has no budget. */
int tg_budgets_state(tg_budgets_t *b, const char *tenant, int64_t *spent, int64_t *reserved,
                     int64_t *budget);

/* One budget's use: the tenant's spend this month as admission sees it (the store's month
 * to date when loaded, plus this process's settled requests) and its monthly budget. */
typedef struct tg_budget_use {
    char tenant[TG_TENANT_SIZE];
    int64_t spent;  /* micro-USD */
    int64_t budget; /* micro-USD per month */
} tg_budget_use_t;

/* Every budget's use in the UTC month of now_us (wall clock): a tenant with no request
 * settled since that month began has spent 0 in it. *out is malloc'd (n entries; NULL
 * when there are none) for the caller to free. 0, or -1 when out of memory. */
int tg_budgets_uses(tg_budgets_t *b, int64_t now_us, tg_budget_use_t **out, size_t *n);

/* "YYYY-MM" of a wall-clock time (UTC) into buf (>= 8 bytes), and the first and last day
 * of that month as "YYYY-MM-DD" (buffers >= 11 bytes; either may be NULL). */
void tg_budget_period(int64_t now_us, char *month, char *first_day, char *last_day);

#endif
