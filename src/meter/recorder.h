/* The recorder: a bounded in-memory queue of usage events and the one writer
 * thread that drains it into the store.
 *
 * Workers call tg_recorder_push() on the request path: it copies the event
 * into a ring under a mutex and never blocks on I/O. The writer wakes every
 * flush_ms (or sooner, once 256 events wait), writes the batch's access-log lines,
 * then commits the batch in one store transaction (aggregates included).
 * When the store cannot be written, the batch is appended to the spool file
 * and replayed later (ids make the replay idempotent). A full ring is counted
 * and logged as an alarm; the push then waits for room rather than drop. */
#ifndef TG_METER_RECORDER_H
#define TG_METER_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#include "crypt/crypt.h"
#include "types/event.h"
#include "util/err.h"

typedef struct tg_recorder tg_recorder_t;

typedef struct tg_recorder_opts {
    const char *store_url;         /* the writer opens its own connection */
    const char *spool_path;        /* append-only fallback file; NULL = none (a failing
                                      store then holds the batch and the queue fills) */
    const char *access_log;        /* "stdout", "off" or a file path */
    size_t queue_size;             /* events; 0 = 65536 */
    long flush_ms;                 /* <= 0: 50 */
    int retention_events_days;     /* 0 = keep forever */
    int retention_aggregates_days; /* 0 = keep forever */
    int retention_audit_days;      /* audit records, whole UTC days; 0 = keep forever */
    int64_t (*wall_clock)(void);   /* the writer's wall clock (retention's cut-off days);
                                      NULL = tg_wall_us. Tests pass a fixed instant. */
    int64_t (*pace_clock)(void);   /* the monotonic clock a batch is timed and paced on
                                      (writer_pace, the batch-time histogram); NULL =
                                      tg_mono_us. Tests move their own by hand. */
    int64_t unauth_per_minute;     /* refusals without a valid key (401) recorded one by one
                                      per client address and UTC minute; the rest become one
                                      aggregate event (meter/flood.h). 0 = no bound: every
                                      refusal is an event */
    const tg_kek_t *kek;           /* encryption configured: the spool is sealed by it (copied
                                      at start); NULL: written in plain */
    size_t bodies_max;             /* audit.bodies: encrypt: plain bytes of call bodies held for
                                      the writer at most (past it a call's are dropped, counted);
                                      0 = 256 MB */
} tg_recorder_opts_t;

/* The upper bounds of the writer's batch-time histogram, in microseconds: 0.5 ms .. 5 s
 * (a batch is one SQLite transaction of up to 4096 events; the writer's lock wait alone
 * is up to 150 ms). */
#define TG_RECORDER_BATCH_BUCKETS 13
extern const int64_t tg_recorder_batch_bucket_us[TG_RECORDER_BATCH_BUCKETS];

typedef struct tg_recorder_stats {
    uint64_t pushed;         /* events accepted into the queue */
    uint64_t committed;      /* events committed to the store (replays included) */
    uint64_t spooled;        /* events written to the spool file, total */
    uint64_t queue_full;     /* pushes that found the ring full */
    size_t queued;           /* in the ring now */
    uint64_t dropped;        /* events not recorded: pushed after tg_recorder_stop began
                                (a caller bug), or neither store nor spool took them
                                at stop; each is also logged as an error */
    int spooling;            /* 1 while the spool holds events not yet in the store */
    uint64_t aggregated;     /* refusals counted into aggregates instead of pushed */
    uint64_t aggregates;     /* aggregate events made of them (pushed or batched) */
    uint64_t bodies_dropped; /* audit.bodies: encrypt: calls whose bodies were not kept (their
                                event spooled, or sealing failed); each logged */
    /* The writer's time per batch (each attempt to write one: its access-log lines, then
     * the store transaction or the spool write), by bucket of tg_recorder_batch_bucket_us
     * (counts per bucket, not cumulative; +Inf last), and their sum. */
    uint64_t batch_buckets[TG_RECORDER_BATCH_BUCKETS + 1];
    uint64_t batch_sum_us;
    int64_t spool_bytes; /* bytes of events in the spool file (0: empty, or no spool) */
} tg_recorder_stats_t;

/* Opens the store (applying migrations), opens the spool (cutting a torn last
 * record) and starts the writer thread, whose first act is to replay a spool
 * left by a previous run; while the store is busy the spool is kept and stats
 * say spooling = 1. The writer's connection waits at most 150 ms for a lock. */
int tg_recorder_start(const tg_recorder_opts_t *opts, tg_recorder_t **out, tg_err_t *err);
/* As tg_recorder_start, on a store the caller opened (tests, benchmarks, a
 * backend opened some other way); opts->store_url is ignored. The writer
 * thread uses the store alone from here until tg_recorder_stop returns, its pace
 * function set (tg_store_set_pace; cleared at stop); the caller keeps ownership and
 * closes it after that. */
struct tg_store;
int tg_recorder_start_with_store(const tg_recorder_opts_t *opts, struct tg_store *store,
                                 tg_recorder_t **out, tg_err_t *err);
/* Copies ev into the queue. Thread-safe. Waits (never drops) while the queue
 * is full. A refusal without a valid key past the per-address bound of its minute is
 * only counted (no queue slot): it reaches the store in that minute's aggregate. */
void tg_recorder_push(tg_recorder_t *r, const tg_event_t *ev);
/* Asks the writer to reopen a file access log at its next tick (after
 * logrotate moved it). One atomic store: safe from a signal handler. */
void tg_recorder_reopen_accesslog(tg_recorder_t *r);
void tg_recorder_stats(tg_recorder_t *r, tg_recorder_stats_t *out);
/* `kek rotate`: re-wraps the sealed spool at path from the KEK from to the KEK to, frame by
 * frame, holding its lock (a running gateway holds it: refused, "in use"). 1 when done
 * (*frames of them), 0 when there is nothing to do (no file, a plain or empty spool, or
 * sealed by to already), -1 with err (in use, sealed by a third KEK, damaged). A torn last
 * frame is left out, as the next start would cut it. */
int tg_recorder_spool_rekey(const char *path, const tg_kek_t *from, const tg_kek_t *to,
                            size_t *frames, tg_err_t *err);
/* Drains the queue into the store (or spool), stops the thread, frees r. */
void tg_recorder_stop(tg_recorder_t *r);

#endif
