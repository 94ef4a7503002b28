/* What the two backends' append() share (sqlite_events.c, pg_events.c): the columns an
 * event writes, the batch seen through a stride, the per-(tenant, UTC day) sums written to
 * usage_daily, each key's newest use, the sort of a batch by id and the id an event tries
 * next when another event holds its own. Private to src/store. */
#ifndef TG_STORE_EVBATCH_H
#define TG_STORE_EVBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "store/rowmap.h"
#include "types/event.h"

#define EVB_DAY_US         86400000000LL
#define EVB_MAX_ID_RETRIES 8  /* other ids tried for one colliding event */
#define EVB_ID_LOW_BITS    22 /* the per-process part of an event id: see event.h */

/* How one column of usage_events is written from a tg_event_t. */
typedef enum {
    EW_ID,       /* the id the caller passes (an event's own, or a retry's) */
    EW_INT64,    /* int64_t */
    EW_INT,      /* int32_t */
    EW_TEXT,     /* char[size], "" stays "" */
    EW_TEXT_OPT, /* char[size], "" is NULL */
    EW_TOKENS,   /* int64_t, TG_TOKENS_UNKNOWN (any negative) is NULL */
    EW_OUTCOME,  /* int32_t tg_outcome_t, as its text (evb_outcome_text) */
    EW_COUNT,    /* the requests the event stands for (tg_event_count) */
    EW_SOURCE,   /* char[size], "" is 'gateway' */
} evb_kind_t;

typedef struct evb_col {
    const char *name; /* the column */
    evb_kind_t kind;
    size_t off, size; /* the field of tg_event_t */
} evb_col_t;

#define EVB_FIELD(f, kind)                                                                         \
    {                                                                                              \
#f, (kind), offsetof(tg_event_t, f), TG_FIELD_SIZE(tg_event_t, f)                          \
    }

/* Every column an event writes, in the order of each backend's column list and of its
 * values: both are made from this table, so no list of positions is kept in step by hand,
 * and a renamed column fails in the store tests (which append and read back every column).
 * Static in the header so each backend's writer loop over it unrolls into constant cases. */
static const evb_col_t evb_cols[] __attribute__((unused)) = {
    {"id", EW_ID, 0, 0},
    EVB_FIELD(ts_us, EW_INT64),
    EVB_FIELD(tenant, EW_TEXT),
    EVB_FIELD(key_id, EW_TEXT_OPT),
    EVB_FIELD(route, EW_TEXT_OPT),
    EVB_FIELD(method, EW_TEXT),
    EVB_FIELD(path, EW_TEXT),
    EVB_FIELD(status, EW_INT),
    EVB_FIELD(outcome, EW_OUTCOME),
    EVB_FIELD(reason, EW_TEXT_OPT),
    EVB_FIELD(latency_us, EW_INT64),
    EVB_FIELD(bytes_in, EW_INT64),
    EVB_FIELD(bytes_out, EW_INT64),
    EVB_FIELD(model, EW_TEXT_OPT),
    EVB_FIELD(tokens_in, EW_TOKENS),
    EVB_FIELD(tokens_out, EW_TOKENS),
    EVB_FIELD(tokens_cached, EW_TOKENS),
    EVB_FIELD(tool, EW_TEXT_OPT),
    EVB_FIELD(cost_micros, EW_INT64),
    EVB_FIELD(cache, EW_TEXT_OPT),
    EVB_FIELD(client_ip, EW_TEXT_OPT),
    EVB_FIELD(request_id, EW_TEXT_OPT),
    EVB_FIELD(upstream, EW_TEXT_OPT),
    EVB_FIELD(tokens_cache_write, EW_TOKENS),
    EVB_FIELD(rpc_method, EW_TEXT_OPT),
    EVB_FIELD(price_flag, EW_TEXT_OPT),
    {"requests", EW_COUNT, 0, 0},
    EVB_FIELD(source, EW_SOURCE),
    EVB_FIELD(auth, EW_TEXT_OPT),
    EVB_FIELD(subject, EW_TEXT_OPT),
};
#define EVB_NCOLS ((int)(sizeof evb_cols / sizeof evb_cols[0]))

/* "id, ts_us, tenant, ..." (the columns of evb_cols) into dst; its length, or -1 when it
 * does not fit. */
int evb_column_list(char *dst, size_t cap);

/* The outcome as stored. An out-of-range outcome is a recorder bug; recording it as
 * failed keeps the event (and never bills it) rather than letting the CHECK constraint
 * refuse it. */
const char *evb_outcome_text(int32_t o);

/* A batch's events, each stride bytes after the one before: an array of tg_event_t (the
 * gateway's), or the events inside ingest's items, read where they lie with keep[] naming
 * the new ones: copying a batch's new records out to an array of their own was 3% of the
 * CPU of `tollgate ingest`. */
typedef struct ev_run {
    const char *base;
    size_t stride, n;
    const unsigned char *keep; /* NULL: all; else keep[i] = 0 skips event i (a duplicate) */
} ev_run_t;

static inline const tg_event_t *ev_at(const ev_run_t *r, size_t i)
{
    return (const tg_event_t *)(const void *)(r->base + i * r->stride);
}

static inline int ev_skip(const ev_run_t *r, size_t i)
{
    return r->keep && !r->keep[i];
}

/* One (tenant, UTC day) group of a batch being appended. */
typedef struct agg {
    const char *tenant; /* points into the caller's events, valid during append */
    int64_t day;        /* days since 1970-01-01 */
    int64_t requests, billable, failed, rejected;
    int64_t bytes_in, bytes_out, tokens_in, tokens_out, tokens_cached, cost_micros;
} agg_t;

/* The groups of one batch: at most one per event, and an open-addressing index over them.
 * The arrays are the caller's scratch, kept between batches (evb_reserve). */
typedef struct evb_groups {
    agg_t *aggs;
    size_t n;         /* groups so far */
    uint32_t *slots;  /* 0 = empty, else index into aggs + 1 */
    size_t slots_cap; /* power of two, >= 2 * the batch */
} evb_groups_t;

/* Adds ev's counts to its group. */
void evb_agg_add(evb_groups_t *g, const tg_event_t *ev);
/* Sorts the groups by (tenant, day): two writers then lock usage_daily's rows in the same
 * order. */
void evb_agg_sort(evb_groups_t *g);
/* floor(ts_us / day) */
int64_t evb_day(int64_t ts_us);

/* An event of a batch and its id. */
typedef struct fast_ev {
    int64_t id;
    uint32_t idx; /* into the caller's events */
} fast_ev_t;

/* Sorts f[0..n) by id (nearly sorted input in one pass; see evbatch.c). */
void evb_sort(fast_ev_t *f, size_t n);

/* The id to try next for an event whose id another event holds (see evbatch.c). */
int64_t evb_next_id(const tg_event_t *ev, int64_t id, int attempt);

/* api_keys.last_used_us: calls use(ud, key_id, ts) for each key of the batch's new events
 * with its newest authenticated request (a refused revoked key or disabled tenant is not a
 * use); a key may be reported more than once (max() in the UPDATE keeps that harmless).
 * Returns the first nonzero use() answer, else 0. */
int evb_keys_used(const ev_run_t *evs, int (*use)(void *ud, const char *key_id, int64_t ts),
                  void *ud);

#endif
