/* The dashboard's data (issue 11): the JSON documents behind GET /dashboard/api/..., built
 * from the store, and the thread that builds them off the admin's loop.
 *
 *   overview[?range=R]  every tenant (the tenants table, and any tenant id with events in
 *                       the range: '' is the unauthenticated) with, over the range, requests,
 *                       billable, failed (upstream errors), rejected, tokens in and out, cost
 *                       (micro-USD) and the p95 of latency (store.h, tg_store_dash_totals);
 *                       and, for the UTC month of now, its budget and the month's spend
 *                       (usage_daily, as `tollgate budget show`). R: today (default, the UTC
 *                       day of now up to now), 1h, 24h, 7d, 30d (the last N up to now).
 *   tenant/ID           one tenant: the last hour by minute (60 points, usage_events), the
 *                       last 30 UTC days by day (30 points, usage_daily), today's totals, the
 *                       budget with the month's spend, its limits (its own rows and the '*'
 *                       rows) with the current use of tenant-scope rules (admitted requests and
 *                       their tokens over the rule's own period up to now), and its last 20
 *                       rejections with their reasons. 404 when the tenant has no row and no
 *                       event at all.
 *
 * "Firing alarms" are not read here: the admin adds them from the server (admin.h).
 * Everything takes now_us (wall clock) from the caller; nothing here reads a clock. */
#ifndef TG_DASH_DASH_H
#define TG_DASH_DASH_H

#include <stdint.h>
#include <uv.h>

#include "store/store.h"
#include "util/err.h"

struct json_t;

/* The answer to `what` ("overview" or "tenant/ID", the path after /dashboard/api/; ID
 * percent-decoded by the caller) with query (the text after '?', or NULL). Sets *status
 * (200, 400 for an unknown range or path, 404 for an unknown tenant, 500 when the store
 * failed, with an {"error":...} body) and returns the body, never NULL but out of memory. */
struct json_t *tg_dash_answer(tg_store_t *s, const char *what, const char *query, int64_t now_us,
                              int *status);

/* The builder thread: one store connection of its own (read only: PRAGMA query_only),
 * opened by the thread, and a queue of jobs. Not libuv's thread pool: the workers resolve
 * upstream names with uv_getaddrinfo on that pool, and a slow dashboard query must not
 * hold their resolutions up. Results come back to the loop given at start, through an
 * uv_async. At most TG_DASH_PENDING_MAX jobs wait or run at once. */
typedef struct tg_dash tg_dash_t;
typedef struct tg_dash_job tg_dash_job_t;
#define TG_DASH_PENDING_MAX 16

/* Called on the loop with the status and the body (the callee owns it). */
typedef void (*tg_dash_done_fn)(void *arg, int status, struct json_t *body);

tg_dash_t *tg_dash_start(uv_loop_t *loop, const char *store_url, tg_err_t *err);
/* Queues one answer (what and query are copied); done is called later on the loop, once,
 * unless the job is cancelled first. NULL when TG_DASH_PENDING_MAX jobs are pending (the
 * caller answers 503) or out of memory. */
tg_dash_job_t *tg_dash_submit(tg_dash_t *d, const char *what, const char *query, int64_t now_us,
                              tg_dash_done_fn done, void *arg);
/* The same thread for other work: a writer's (the admin API's, adminapi/adminapi.h) runs
 * on a connection of its own that is not made read-only. fn(s, req, now_us, &status)
 * runs on the thread and returns the body (as tg_dash_answer); req is freed with req_free
 * (may be NULL) once the job is done or dropped, also when the submission fails (NULL). */
typedef struct json_t *(*tg_dash_fn)(tg_store_t *s, void *req, int64_t now_us, int *status);
tg_dash_t *tg_dash_start_writer(uv_loop_t *loop, const char *store_url, tg_err_t *err);
tg_dash_job_t *tg_dash_submit_fn(tg_dash_t *d, tg_dash_fn fn, void *req, void (*req_free)(void *),
                                 int64_t now_us, tg_dash_done_fn done, void *arg);
/* On the loop: done will not be called for j (its client went away). */
void tg_dash_cancel(tg_dash_job_t *j);
/* On the loop: stops the thread (after the query it runs, if any), drops the jobs left
 * without calling them back, closes the async handle; memory is freed by the loop. */
void tg_dash_stop(tg_dash_t *d);

#endif
