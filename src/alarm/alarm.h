/* The alarm engine: the rules of `alarms:` (config.h, tg_alarm_conf_t) judged per tenant
 * (process-wide for kind queue) from cumulative totals handed in at each tick. Pure logic:
 * no clock, no store, no lock; one thread (the server's main loop) calls it.
 *
 * Inputs (tg_alarm_inputs_t), at every tick: per tenant its cumulative requests, errors,
 * latency histogram bucket counts and cost since the process started (summed from the
 * metrics blocks: tg_metrics_tenant_totals), its quota utilisation now (policy), and the
 * process-wide queue utilisation.
 *
 * Windows: each tenant keeps a ring of TG_ALARM_RING snapshots of its totals. A snapshot
 * is kept when at least `spacing` passed since the last one kept, spacing = the longest
 * window of the rules / (TG_ALARM_RING - 8) (so the ring always reaches a whole window
 * back, to within one spacing). A window's value is the current totals minus the newest
 * snapshot at least `window` old (or the oldest one, while the tenant is younger than the
 * window):
 *   error_rate  errors / requests (errors: answers with a 5xx status that tollgate did not
 *               refuse itself, i.e. upstream 5xx and tollgate's 502/504 for an upstream
 *               that failed; 4xx and tollgate's own refusals are not errors)
 *   latency     the quantile of the latency histogram's bucket deltas, interpolated
 *               linearly inside the bucket (as Prometheus' histogram_quantile), in ms
 *   spend_rate  cost delta scaled to micro-USD per hour
 *   quota       the tenant's highest rate/token rule utilisation now (no window)
 *   queue       the event queue's fill, or 1 while the spool holds events (no window)
 *
 * Baseline (error_rate, latency, spend_rate with baseline_factor): an EWMA of the rule's
 * value over the tenant's previous whole windows: every `window`, the value of the window
 * just ended is folded in with weight TG_ALARM_EWMA_ALPHA (0.2), after it was judged;
 * windows with fewer than min_requests requests carry no information and are skipped. It
 * counts once TG_ALARM_WARMUP (3) windows were folded. A lasting change becomes the
 * tenant's new normal after a few windows (an always-slow tenant stops firing), a sudden
 * one fires at once. The level that fires is max(threshold, min_ms, baseline_factor x
 * baseline); latency and spend_rate rules without a threshold judge nothing until the
 * baseline counts (their factor is all they have), error_rate judges its threshold from
 * the start.
 *
 * States and hysteresis, per (rule, tenant):
 *   ok --fires--> pending --fires `for` more times in a row--> firing
 *   pending --clear--> resolved;   firing --clear `for` times in a row--> resolved
 *   resolved --fires--> pending, else --> ok at the next tick
 * "fires": at least min_requests requests in the window, a value above 0 and at or above
 * the level. "clear": fewer requests than min_requests (no evidence), or a value below
 * (1 - resolve_margin) x the level. Between the two, the state holds. Every change is a
 * transition with a sequence number per (rule, tenant) that only grows (restored from the
 * store at start), which makes the notice id stable: "alarm/RULE/TENANT/SEQ" ("-" for the
 * process-wide tenant).
 *
 * Memory: tenants are the metrics registry's label values, at most metrics.max_tenants
 * plus "_other" (the caller passes that cap); a tenant never seen again keeps its slot
 * (metrics counters never reset either). Per tenant, made when it is first seen: the ring
 * (48 x 152 bytes, ~7.3 KiB) and one small state per rule: about 8 MiB for 1000 tenants;
 * up front only a pointer and an index slot per possible tenant. */
#ifndef TG_ALARM_ALARM_H
#define TG_ALARM_ALARM_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "observe/metrics.h"
#include "types/notice.h"

#define TG_ALARM_BUCKETS    (TG_METRICS_BUCKETS + 1) /* the latency buckets, +Inf last */
#define TG_ALARM_RING       48
#define TG_ALARM_WARMUP     3
#define TG_ALARM_EWMA_ALPHA 0.2

/* One tenant's totals since the process started (never decreasing). */
typedef struct tg_alarm_tenant_in {
    const char *tenant;                 /* a metrics label value ("_other" included) */
    uint64_t requests;                  /* every request, refusals included */
    uint64_t errors;                    /* see "error_rate" above */
    uint64_t cost_micros;               /* billed cost */
    uint64_t buckets[TG_ALARM_BUCKETS]; /* requests per latency bucket (not cumulative) */
    double quota;                       /* highest limit utilisation now; < 0: no rule */
} tg_alarm_tenant_in_t;

typedef struct tg_alarm_inputs {
    const tg_alarm_tenant_in_t *tenants;
    size_t ntenants;
    double queue;    /* process-wide queue utilisation; < 0: unknown */
    int64_t mono_us; /* a monotonic clock for the windows (durations), so a wall clock that
                        steps does not stretch or shrink them; 0: the wall time of the tick
                        is used (tests) */
} tg_alarm_inputs_t;

typedef enum {
    TG_ALARM_OK = 0,
    TG_ALARM_PENDING,
    TG_ALARM_FIRING,
    TG_ALARM_RESOLVED,
} tg_alarm_state_t;

const char *tg_alarm_state_name(tg_alarm_state_t s); /* "ok", "pending", ... */
/* -1 for an unknown name. */
int tg_alarm_state_parse(const char *name);

/* One state change. The notice is complete (id, kind "alarm", state, values, summary);
 * its state is the new one ("ok" for resolved -> ok, which no notifier is sent). */
typedef struct tg_alarm_transition {
    tg_notice_t notice;
    tg_alarm_state_t from, to;
    int64_t seq;   /* this transition's number for (rule, tenant), from 1 */
    size_t rule;   /* index in the rules given to tg_alarm_set_rules */
    int tenant_id; /* the engine's slot of the tenant (tg_alarm_status_t.tenant_id) */
} tg_alarm_transition_t;

/* The current state of one (rule, tenant). */
typedef struct tg_alarm_status {
    const char *rule, *tenant; /* valid until the next call on the engine */
    const tg_alarm_conf_t *conf;
    size_t rule_idx;
    int tenant_id;
    tg_alarm_state_t state;
    double value, level, baseline; /* last evaluation; level = what fires; baseline 0 if none */
    int64_t since_us;              /* when it entered the state */
    int64_t started_us;            /* when it last began firing (0: never) */
    int64_t updated_us;            /* last evaluation */
    int64_t seq;                   /* transitions so far */
} tg_alarm_status_t;

typedef struct tg_alarm_engine tg_alarm_engine_t;

/* An engine for at most max_tenants tenants (metrics.max_tenants; "_other" and the
 * process-wide slot come on top). NULL when out of memory. */
tg_alarm_engine_t *tg_alarm_new(size_t max_tenants);
void tg_alarm_free(tg_alarm_engine_t *e);

/* Takes the rules (copied). A rule whose name and kind are unchanged keeps its state,
 * sequence and baseline per tenant (SIGHUP); the others start at ok. 0, or -1 when out of
 * memory (the old rules stay). */
int tg_alarm_set_rules(tg_alarm_engine_t *e, const tg_alarm_conf_t *rules, size_t n);

/* The index of the rule named name, or -1. */
int tg_alarm_rule_index(const tg_alarm_engine_t *e, const char *name);

/* Raises the sequence number of (rule, tenant) to at least seq (the store's, after a
 * reload brought the rule back or changed its kind): a rule that starts again at ok never
 * reuses the ids of its earlier transitions. Unknown rules are ignored (0); -1 when the
 * tenant table is full or out of memory. */
int tg_alarm_raise_seq(tg_alarm_engine_t *e, const char *rule, const char *tenant, int64_t seq);

/* Puts back what the store remembers of (rule, tenant) before the first tick: its state,
 * sequence number and times. Unknown rules are ignored (0); -1 when the tenant table is
 * full or out of memory. */
int tg_alarm_restore(tg_alarm_engine_t *e, const char *rule, const char *tenant,
                     tg_alarm_state_t state, int64_t seq, int64_t since_us, int64_t started_us);

/* One evaluation at wall time now_us. *out points at the transitions (owned by the engine,
 * valid until the next call); returns how many. Tenants beyond the cap are ignored. */
size_t tg_alarm_tick(tg_alarm_engine_t *e, const tg_alarm_inputs_t *in, int64_t now_us,
                     const tg_alarm_transition_t **out);

/* Calls cb for every (rule, tenant) that is not ok, or that has had a transition
 * (seq > 0) when all is nonzero. A nonzero return stops and is returned. */
int tg_alarm_each(tg_alarm_engine_t *e, int all, int (*cb)(const tg_alarm_status_t *, void *),
                  void *ud);

/* The status of (rule, tenant_id) as tg_alarm_each gives it (a transition's rule and
 * tenant_id). 0, or -1 when there is no such pair. */
int tg_alarm_status_of(tg_alarm_engine_t *e, size_t rule, int tenant_id, tg_alarm_status_t *out);

/* The quantile q (0..1) of a histogram with bucket counts d (TG_ALARM_BUCKETS, not
 * cumulative) over the bounds tg_metrics_bucket_us, in ms; 0 when empty. */
double tg_alarm_quantile_ms(const uint64_t *d, double q);

#endif
