/* The recorder: a bounded in-memory queue of usage events and the one writer
 * thread that drains it into the store.
 *
 * Workers call tg_recorder_push() on the request path: it copies the event
 * into a ring under a mutex and never blocks on I/O. The writer wakes every
 * flush_ms (or when the ring is half full), writes the batch's access-log lines,
 * then commits the batch in one store transaction (aggregates included).
 * When the store cannot be written, the batch is appended to the spool file
 * and replayed later (ids make the replay idempotent). A full ring is counted
 * and logged as an alarm; the push then waits for room rather than drop. */
#ifndef TG_METER_RECORDER_H
#define TG_METER_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#include "meter/event.h"
#include "util/err.h"

typedef struct tg_recorder tg_recorder_t;

typedef struct tg_recorder_opts {
    const char *store_url;  /* the writer opens its own connection */
    const char *spool_path; /* append-only fallback file */
    const char *access_log; /* "stdout", "off" or a file path */
    size_t queue_size;      /* events */
    long flush_ms;
    int retention_events_days;     /* 0 = keep forever */
    int retention_aggregates_days; /* 0 = keep forever */
} tg_recorder_opts_t;

typedef struct tg_recorder_stats {
    uint64_t pushed;    /* events accepted into the queue */
    uint64_t committed; /* events committed to the store (replays included) */
    uint64_t spooled;   /* events written to the spool file, total */
    uint64_t queue_full; /* pushes that found the ring full */
    size_t queued;      /* in the ring now */
    int spooling;       /* 1 while the spool holds events not yet in the store */
} tg_recorder_stats_t;

/* Opens the store (applying migrations), replays any spool left by a previous
 * run, and starts the writer thread. */
int tg_recorder_start(const tg_recorder_opts_t *opts, tg_recorder_t **out, tg_err_t *err);
/* Copies ev into the queue. Thread-safe. */
void tg_recorder_push(tg_recorder_t *r, const tg_event_t *ev);
void tg_recorder_stats(tg_recorder_t *r, tg_recorder_stats_t *out);
/* Drains the queue into the store (or spool), stops the thread, frees r. */
void tg_recorder_stop(tg_recorder_t *r);

#endif
