/* Per-tenant metrics: counters fed by finished requests, rendered in the Prometheus text
 * format (0.0.4) for the admin listener's /metrics.
 *
 * One registry (tg_metrics_t) per server; one block (tg_metrics_block_t) per worker thread.
 * A block is written by its worker only: the RECORD phase hands it each finished event
 * (tg_metrics_observe). Nothing on that path takes a lock or does an atomic
 * read-modify-write: every counter lives in memory only its worker writes, updated with a
 * relaxed load and a relaxed store (a plain load, add and store on x86 and arm64), and the
 * scrape (tg_metrics_render, any thread) reads every block with relaxed loads and sums them.
 * A scrape racing a worker sees each counter either before or after an update, never torn;
 * a histogram's _count is the sum of the bucket counts read, so it always equals its +Inf
 * bucket.
 *
 * Series are found by label values, interned: each label value (tenant, route, model, tool,
 * reason) gets a small integer id from the registry once (a mutex, taken only the first time
 * a worker meets the value), and the worker keeps its own open-addressing table from the
 * value to the id and another from the ids to the series. In the steady state a request
 * allocates nothing and takes no lock: a few hashes and probes.
 *
 * Cardinality is capped (tg_metrics_caps_t): past max_tenants distinct tenants, the
 * others are counted under tenant="_other"; the same for models, tools, routes and reasons.
 * The cap is of the whole registry, not per worker, and a name once given its own series
 * keeps it (counters never move from one series to another). A tenant literally named
 * "_other" is summed with them.
 *
 * Label values come from clients and upstreams (tenant ids, model names, tool names): they
 * are made valid UTF-8 when interned (bytes that are not, and control characters other than
 * newline, become U+FFFD; two names that differ only there share a series) and escaped at
 * render (backslash, double quote, newline), so the text always parses.
 *
 * No clock is read here: latency comes from the event. */
#ifndef TG_OBSERVE_METRICS_H
#define TG_OBSERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "types/event.h"
#include "util/buf.h"

typedef struct tg_metrics tg_metrics_t;
typedef struct tg_metrics_block tg_metrics_block_t;

/* Distinct label values with a series of their own; past them, "_other". */
typedef struct tg_metrics_caps {
    size_t max_tenants; /* metrics.max_tenants, default 1000 */
    size_t max_models;  /* metrics.max_models, default 200 */
    size_t max_tools;   /* metrics.max_tools, default 200 */
} tg_metrics_caps_t;

#define TG_METRICS_MAX_TENANTS 1000
#define TG_METRICS_MAX_MODELS  200
#define TG_METRICS_MAX_TOOLS   200
/* Route names come from the config and reasons from tollgate's own code; both are capped
 * anyway, so a reload loop cannot grow the registry without bound. */
#define TG_METRICS_MAX_ROUTES  1024
#define TG_METRICS_MAX_REASONS 256
/* Every cap is at most this (ids are kept in 24 bits). */
#define TG_METRICS_CAP_LIMIT 1000000

/* The request and upstream latency histograms' upper bounds, in microseconds (the rendered le=
 * values are seconds): 5 ms .. 60 s, roughly 1-2.5-5 per decade, as Prometheus client libraries
 * default to, widened to a minute for AI answers. Plus +Inf. */
#define TG_METRICS_BUCKETS 14
extern const int64_t tg_metrics_bucket_us[TG_METRICS_BUCKETS];

/* A registry with these caps (each 1..TG_METRICS_CAP_LIMIT; 0 takes the default).
 * NULL when out of memory. */
tg_metrics_t *tg_metrics_new(const tg_metrics_caps_t *caps);
/* Frees the registry and all its blocks; no worker may use a block any more. */
void tg_metrics_free(tg_metrics_t *m);

/* A new block for one writer thread (freed with the registry). NULL when out of memory. */
tg_metrics_block_t *tg_metrics_block_new(tg_metrics_t *m);

/* Counts one finished request (its tg_event_count: an aggregate counts its requests):
 * requests by tenant, route, outcome and status class; its latency (total, and the
 * upstream call's when upstream_latency_us > 0: tollgate_upstream_duration_seconds) and
 * bytes by tenant and route; tokens by tenant and model when the upstream reported any; cost by
 * tenant; a rejection by tenant and reason. Called by the block's own thread only; b may be NULL
 * (nothing is counted). Out of memory, the request is counted under "_other" or not at
 * all, never fails the request. */
void tg_metrics_observe(tg_metrics_block_t *b, const tg_event_t *ev);
/* One MCP tools/call of a finished request by tenant and tool; error when it got no billed
 * result (an error, isError, no answer). Same thread rule as tg_metrics_observe. */
void tg_metrics_observe_tool(tg_metrics_block_t *b, const char *tenant, const char *tool,
                             int error);

/* Appends the families of every block, summed, to out: HELP and TYPE lines, then the
 * samples, one family after another. Any thread, concurrently with the writers. 0, or -1
 * when out could not hold it (out keeps what was appended). */
int tg_metrics_render(tg_metrics_t *m, tg_buf_t *out);

/* A per-tenant ratio the caller knows (budget utilisation: spend / budget). */
typedef struct tg_metrics_ratio {
    const char *tenant;
    int64_t num, den; /* den <= 0: left out */
} tg_metrics_ratio_t;

/* Appends a gauge family name{tenant=".."} num/den for the n ratios, under the registry's
 * tenant cap: a tenant without a label value of its own (past metrics.max_tenants) is summed
 * into tenant="_other" as sum(num) / sum(den). Values are the shortest decimal that reads
 * back as the double num/den. Any thread (it may intern a tenant: the registry's mutex,
 * once per new name). 0, or -1 when out could not hold it or out of memory. */
int tg_metrics_tenant_ratio(tg_metrics_t *m, tg_buf_t *out, const char *name, const char *help,
                            const tg_metrics_ratio_t *v, size_t n);

/* One family's HELP and TYPE lines (help is a constant without backslash or newline):
 * for the families a caller adds itself (the server's process gauges). 0 or -1. */
int tg_metrics_family(tg_buf_t *out, const char *name, const char *type, const char *help);
/* A sample without labels: "name value\n". 0 or -1. */
int tg_metrics_sample(tg_buf_t *out, const char *name, long long value);
/* The samples of a histogram without labels (its family line is the caller's): counts[i]
 * observations in bucket i (at most bounds_us[i], not cumulative; counts[n] above the last
 * bound), sum_us their sum; rendered cumulative with le= in seconds, then _sum and _count.
 * For the families a caller measures itself (the writer's batch time). 0 or -1. */
int tg_metrics_histogram(tg_buf_t *out, const char *name, const int64_t *bounds_us, size_t n,
                         const uint64_t *counts, uint64_t sum_us);

/* The label value s[0..n) escaped for the text format (\\, \", \n) into out. 0 or -1. */
int tg_metrics_escape(tg_buf_t *out, const char *s, size_t n);

/* One tenant's counters summed over every block (the alarm engine's input): requests of
 * every outcome; errors = requests with a 5xx status that were not tollgate's own refusals
 * (outcome rejected), i.e. upstream 5xx and the 502/504 of an upstream that failed; the
 * latency histogram's counts per bucket (not cumulative; +Inf last); billed cost. */
typedef struct tg_metrics_tenant_totals {
    const char *tenant; /* the label value ("_other" included); valid during the call */
    uint64_t requests, errors, cost_micros;
    uint64_t buckets[TG_METRICS_BUCKETS + 1];
} tg_metrics_tenant_totals_t;

/* Calls cb once per tenant with a series, in id order, read as tg_metrics_render reads
 * (relaxed loads, any thread). 0, the callback's nonzero return, or -1 when out of
 * memory. */
int tg_metrics_tenant_totals(tg_metrics_t *m, int (*cb)(const tg_metrics_tenant_totals_t *, void *),
                             void *ud);

#endif
