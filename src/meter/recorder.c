/* The recorder: a ring of usage events filled by the workers and drained by
 * one writer thread into the store; see recorder.h and DESIGN.md "Durability".
 *
 * Push is lock, memcpy, unlock. The writer is signalled only when WAKE_BATCH
 * events (or half the ring, if smaller) wait and it is asleep; otherwise it
 * wakes on its flush_ms timer, so a busy gateway pays one futex wake per few
 * hundred events and a crash loses at most one flush window. The writer copies a batch out in short
 * chunks (the lock is dropped between chunks so pushers are not held behind a
 * 4 MB memcpy), writes the access-log lines, then commits the batch with one
 * tg_store_append() on its own connection. While it writes a batch it gives up its core
 * every ~100 us (writer_pace), so it never holds one against the workers for long.
 *
 * When the store refuses a batch (TG_STORE_BUSY or an error) the batch goes to
 * the spool, and so does every later batch while the spool holds anything:
 * the store then receives events in the order they were pushed. The spool is a
 * 16-byte header (magic, version, sizeof(tg_event_t)) followed by raw events,
 * written with pwrite at a tracked end (no fsync: a crash may leave a torn last
 * record, which the next open cuts off). Replay appends records in chunks;
 * the store skips ids it already has, so replaying a chunk twice (after a
 * crash between commit and truncate) counts nothing twice. When all of it is
 * in, the file is truncated back to its header.
 *
 * With a KEK (encryption configured) the spool is sealed: a 24-byte header naming the
 * KEK's id, then one sealed frame per appended batch (crypt/chunk.h: length, then the
 * batch under its own data key, bound to the frame's offset). A torn write leaves a torn
 * last frame, cut at open like a torn record; every whole frame before it opens alone.
 * At open every frame is authenticated once, so replay meets no surprise later. A plain
 * spool found when a KEK is configured is sealed first (into PATH.sealing, renamed over
 * it); a sealed spool with events and no KEK, or another KEK, refuses to start naming
 * the KEK id it needs (its events are not lost, nor replayed unread).
 *
 * Never drop: a full ring makes push wait on a condvar (counted, and logged at
 * most once a second); a batch that neither the store nor the spool took is
 * held by the writer and retried, which in time fills the ring. Only at stop,
 * after STOP_GIVEUP_US of failures, are events given up, with an error. */
#include "meter/recorder.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypt/chunk.h"
#include "meter/flood.h"
#include "observe/accesslog.h"
#include "store/store.h"
#include "types/bodies.h"
#include "util/clock.h"
#include "util/log.h"

/* A refused store is retried after RETRY_US, doubling up to RETRY_MAX_US: each
 * attempt on a busy store costs the writer up to WRITER_BUSY_MS. */
#define WAKE_BATCH     256 /* events that wake the writer before its timer */
#define DEFAULT_QUEUE  65536
#define DEFAULT_FLUSH  50
#define BATCH_MAX      4096 /* events per store transaction */
#define PACE_LINES     32   /* access-log lines written between two calls of writer_pace */
#define PACE_SLICE_US  100  /* the writer's longest run on a core while it paces itself */
#define PACE_SHARE     4    /* writer_pace yields during the first 1/PACE_SHARE of a window */
#define PACE_AWAY_US   1000 /* a batch's yields, in all, past which it no longer paces */
#define COPY_CHUNK     256  /* events copied out per lock hold (~256 KB, a few us) */
#define REPLAY_CHUNKS  8    /* spool chunks (of BATCH_MAX) replayed per tick */
#define RETRY_US       250000LL
#define RETRY_MAX_US   2000000LL
#define WRITER_BUSY_MS 150 /* writer's store lock wait: it spools rather than stall */
#define PURGE_EVERY_US (3600 * 1000000LL)
#define PURGE_RETRY_US (60 * 1000000LL)
#define STOP_GIVEUP_US (10 * 1000000LL)
#define DAY_US         (86400 * 1000000LL)
/* audit.bodies: encrypt: the plain bytes of bodies waiting in the ring or in the writer's
 * batch, at most. A writer that falls behind (a slow store) would otherwise hold up to
 * queue_size x 2 x audit.max_body; past this a call's bodies are dropped at the push (counted,
 * logged, its record says "dropped"), never the event. */
#define BODIES_QUEUED_MAX ((int64_t)256 << 20) /* the default of opts.bodies_max */
#define RS                ((off_t)sizeof(tg_event_t))

const int64_t tg_recorder_batch_bucket_us[TG_RECORDER_BATCH_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

/* The spool header. A file whose header does not match (another version or
 * build of tollgate, with a different tg_event_t) is moved aside, not read. */
struct spool_hdr {
    char magic[8]; /* SPOOL_MAGIC */
    uint32_t version;
    uint32_t record_size; /* sizeof(tg_event_t) of the writer */
};
#define SPOOL_MAGIC "TGSPOOL"
#define SPOOL_VERSION                                                                              \
    8 /* 2: tokens_cache_write, rpc_method, price_flag; 3: model[128];                             \
         4: count (aggregates of unauthenticated refusals); 5: upstream_latency_us;                \
         6: source; 7: the bodies' hashes (audit.bodies: hash); 8: bodies_state, bodies */
#define HDR ((off_t)sizeof(struct spool_hdr))

/* The sealed spool's header: the plain one's fields with another magic, and the id of the
 * KEK its frames need (not a secret). */
struct spool_shdr {
    char magic[8]; /* SPOOL_SEALED_MAGIC, no NUL */
    uint32_t version;
    uint32_t record_size;
    unsigned char kek_id[TG_KEK_ID_LEN];
};
#define SPOOL_SEALED_MAGIC "TGSPOOLS"
#define SHDR               ((off_t)sizeof(struct spool_shdr))
#define FRAME_MAX          ((size_t)BATCH_MAX * sizeof(tg_event_t) + TG_SEAL_OVERHEAD)

struct tg_recorder {
    /* ---- shared with pushers: guarded by mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t wake;         /* the writer sleeps here: timer, half full, stop */
    pthread_cond_t room;         /* pushers wait here while the ring is full */
    tg_event_t *ring;            /* cap slots (the pointer is immutable; slots: mu) */
    size_t cap, half;            /* immutable after start; half >= 1 */
    size_t head;                 /* mu: slot of the oldest event */
    size_t count;                /* mu: events in the ring */
    size_t waiters;              /* mu: pushers blocked on room */
    int writer_sleeping;         /* mu: writer is in its timed wait (a signal is useful) */
    int stopping;                /* mu: tg_recorder_stop began; new pushes are refused */
    int closed;                  /* mu: the writer took its last batch */
    uint64_t pushed;             /* mu */
    uint64_t queue_full;         /* mu */
    int64_t last_full_warn_us;   /* mu: monotonic */
    int64_t last_bodies_warn_us; /* mu: monotonic */
    int64_t bodies_max;          /* immutable after start: BODIES_QUEUED_MAX or opts' */
    _Atomic int64_t body_bytes;  /* plain bytes of the bodies held (BODIES_QUEUED_MAX): added
                                    by pushers under mu, taken off by the writer as it frees */

    /* ---- written by the writer (dropped: also pushers), read by stats ---- */
    _Atomic uint64_t committed;
    _Atomic uint64_t spooled;
    _Atomic uint64_t dropped;
    atomic_int spooling;
    atomic_int reopen_log; /* set by anyone, cleared by the writer */
    _Atomic uint64_t aggregated;
    _Atomic uint64_t aggregates;
    _Atomic uint64_t bodies_dropped; /* audit.bodies: encrypt: bodies not kept (spooled, seal) */
    /* The batch-time histogram and the spool's size: written by the writer alone (a relaxed
     * load and store, no lock, no read-modify-write), read by stats. */
    _Atomic uint64_t batch_buckets[TG_RECORDER_BATCH_BUCKETS + 1];
    _Atomic uint64_t batch_sum_us;
    _Atomic int64_t spool_bytes;

    /* Immutable after start (thread-safe itself): the per-address counts of
     * unauthenticated refusals; NULL when unbounded. */
    tg_flood_t *flood;

    /* ---- the writer thread's alone (start/stop touch them only while it is
     * not running) ---- */
    tg_store_t *store;
    int64_t (*wall_clock)(void); /* immutable after start */
    int64_t (*pace_clock)(void); /* immutable after start: opts.pace_clock or tg_mono_us */
    int own_store;
    tg_accesslog_t *alog;
    tg_event_t *batch; /* BATCH_MAX: taken from the ring, not yet stored or spooled */
    size_t nbatch;
    int batch_logged; /* its access-log lines are written (not again on retry) */
    tg_event_t *rbuf; /* BATCH_MAX: one spool chunk being replayed */
    char *spool_path; /* NULL: no spool */
    int spool_fd;
    off_t spool_size;    /* end of the last whole record written */
    off_t spool_done;    /* records before this offset are in the store */
    off_t spool_hdr;     /* the header's length: HDR, or SHDR when sealed */
    int sealed;          /* a KEK was given: the spool is written sealed */
    tg_kek_t kek;        /* immutable after start; wiped at destroy */
    unsigned char *fbuf; /* sealed: TG_CHUNK_HEAD + FRAME_MAX, one frame read back */
    int64_t flush_us;
    int64_t retry_at_us;   /* monotonic: no store attempt before this */
    int64_t retry_wait_us; /* the wait after the next refusal (backs off) */
    int store_down;        /* last store call failed (for log transitions) */
    int64_t last_err_log_us;
    int ret_events_days, ret_agg_days, ret_audit_days;
    int64_t next_purge_us;
    int flood_closed;      /* tg_flood_close() called: the last harvests are running */
    int64_t pace_until_us; /* monotonic: writer_pace yields before it; 0: never */
    int64_t pace_last_us;  /* monotonic: the batch's start, or writer_pace's last yield */
    int64_t pace_away_us;  /* the batch's time spent yielded so far */
    tg_flood_agg_t *fagg;  /* BATCH_MAX: surpluses taken out of the flood table */
    pthread_t thread;
};

/* ------------------------------------------------------------------------ */
/* push side                                                                */

static void push_one(tg_recorder_t *r, const tg_event_t *ev);

/* The event standing for a (client address, minute) surplus of refusals. */
static void aggregate_event(const tg_flood_agg_t *a, tg_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->ts_us = a->minute_us;
    ev->id = tg_event_new_id(a->minute_us);
    ev->count = a->count;
    ev->status = a->status;
    ev->outcome = TG_OUTCOME_REJECTED;
    ev->tokens_in = ev->tokens_out = ev->tokens_cached = ev->tokens_cache_write = TG_TOKENS_UNKNOWN;
    TG_EVENT_SET(ev, reason, TG_REASON_FLOOD, strlen(TG_REASON_FLOOD));
    TG_EVENT_SET(ev, client_ip, a->ip, strnlen(a->ip, sizeof a->ip));
    /* Distinct per address and status, so two aggregates of one minute that drew the same
     * id in two processes are not mistaken for a replay of one another (store/sqlite_events.c). */
    if (a->status == 401)
        snprintf(ev->request_id, sizeof ev->request_id, "aggregate:%s", ev->client_ip);
    else
        snprintf(ev->request_id, sizeof ev->request_id, "aggregate:%d:%s", a->status,
                 ev->client_ip);
}

void tg_recorder_push(tg_recorder_t *r, const tg_event_t *ev)
{
    if (r->flood && tg_event_unauthenticated(ev) && tg_event_count(ev) == 1) {
        tg_flood_agg_t fl;
        int has = 0;
        tg_flood_verdict_t v =
            tg_flood_count(r->flood, ev->client_ip, ev->status, ev->ts_us, &fl, &has);
        if (has) { /* the address's previous minute, not harvested yet */
            tg_event_t agg;
            aggregate_event(&fl, &agg);
            atomic_fetch_add_explicit(&r->aggregates, 1, memory_order_relaxed);
            push_one(r, &agg);
        }
        if (v == TG_FLOOD_COUNTED) {
            tg_bodies_free(ev->bodies); /* (an unauthenticated refusal has none: defensive) */
            atomic_fetch_add_explicit(&r->aggregated, 1, memory_order_relaxed);
            return;
        }
    }
    push_one(r, ev);
}

static void push_one(tg_recorder_t *r, const tg_event_t *ev)
{
    int warn = 0;
    uint64_t full_count = 0;
    pthread_mutex_lock(&r->mu);
    if (r->stopping) {
        pthread_mutex_unlock(&r->mu);
        tg_bodies_free(ev->bodies); /* the event's, handed over with it */
        if (atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed) == 0)
            TG_ERROR("recorder: event %lld pushed after stop began: not recorded (and any "
                     "later ones; see the dropped count)",
                     (long long)ev->id);
        return;
    }
    if (r->count == r->cap) {
        full_count = ++r->queue_full;
        int64_t now = tg_mono_us();
        if (r->last_full_warn_us == 0 || now - r->last_full_warn_us >= 1000000) {
            r->last_full_warn_us = now;
            warn = 1;
        }
        if (r->writer_sleeping) {
            r->writer_sleeping = 0;
            pthread_cond_signal(&r->wake);
        }
        r->waiters++;
        /* The writer does not close while waiters > 0, so this ends in room. */
        while (r->count == r->cap)
            pthread_cond_wait(&r->room, &r->mu);
        r->waiters--;
    }
    size_t i = r->head + r->count;
    if (i >= r->cap) i -= r->cap;
    memcpy(&r->ring[i], ev, sizeof *ev);
    int bodies_over = 0;
    if (ev->bodies) {
        int64_t n = (int64_t)ev->bodies->plain_len;
        if (atomic_load_explicit(&r->body_bytes, memory_order_relaxed) + n > r->bodies_max) {
            tg_bodies_free(ev->bodies);
            r->ring[i].bodies = NULL;
            r->ring[i].bodies_state = TG_BODIES_DROPPED;
            atomic_fetch_add_explicit(&r->bodies_dropped, 1, memory_order_relaxed);
            int64_t now = tg_mono_us();
            if (now - r->last_bodies_warn_us >= 1000000) {
                r->last_bodies_warn_us = now;
                bodies_over = 1;
            }
        } else {
            atomic_fetch_add_explicit(&r->body_bytes, n, memory_order_relaxed);
        }
    }
    r->count++;
    r->pushed++;
    if (r->writer_sleeping && (r->count >= r->half || r->stopping)) {
        r->writer_sleeping = 0;
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->mu);
    if (bodies_over)
        TG_WARN("recorder: %lld MB of call bodies wait for the writer: this call's bodies are "
                "not kept (its record says bodies: dropped; see "
                "tollgate_audit_bodies_dropped_total)",
                (long long)(r->bodies_max >> 20));
    if (warn)
        TG_WARN("recorder: event queue full (%zu events): requests wait for the writer "
                "(%llu times so far); the store is too slow or the queue too small",
                r->cap, (unsigned long long)full_count);
}

void tg_recorder_stats(tg_recorder_t *r, tg_recorder_stats_t *out)
{
    pthread_mutex_lock(&r->mu);
    out->pushed = r->pushed;
    out->queue_full = r->queue_full;
    out->queued = r->count;
    pthread_mutex_unlock(&r->mu);
    out->committed = atomic_load_explicit(&r->committed, memory_order_relaxed);
    out->spooled = atomic_load_explicit(&r->spooled, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&r->dropped, memory_order_relaxed);
    out->spooling = atomic_load_explicit(&r->spooling, memory_order_relaxed);
    out->aggregated = atomic_load_explicit(&r->aggregated, memory_order_relaxed);
    out->aggregates = atomic_load_explicit(&r->aggregates, memory_order_relaxed);
    out->bodies_dropped = atomic_load_explicit(&r->bodies_dropped, memory_order_relaxed);
    for (int i = 0; i <= TG_RECORDER_BATCH_BUCKETS; i++)
        out->batch_buckets[i] = atomic_load_explicit(&r->batch_buckets[i], memory_order_relaxed);
    out->batch_sum_us = atomic_load_explicit(&r->batch_sum_us, memory_order_relaxed);
    out->spool_bytes = atomic_load_explicit(&r->spool_bytes, memory_order_relaxed);
}

void tg_recorder_reopen_accesslog(tg_recorder_t *r)
{
    atomic_store_explicit(&r->reopen_log, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* the store side (writer thread)                                           */

static void note_store_ok(tg_recorder_t *r)
{
    if (r->store_down) TG_INFO("recorder: store writable again");
    r->store_down = 0;
    r->retry_at_us = 0;
    r->retry_wait_us = RETRY_US;
}

static void note_store_failed(tg_recorder_t *r, int rc, const tg_err_t *err)
{
    int64_t now = tg_mono_us();
    r->retry_at_us = now + r->retry_wait_us;
    r->retry_wait_us = r->retry_wait_us * 2 < RETRY_MAX_US ? r->retry_wait_us * 2 : RETRY_MAX_US;
    if (r->store_down && now - r->last_err_log_us < 60 * 1000000LL) return;
    r->last_err_log_us = now;
    const char *where = r->spool_path ? r->spool_path : "memory (no spool configured)";
    if (rc == TG_STORE_BUSY)
        TG_WARN("recorder: store busy; holding events in %s until it is writable", where);
    else
        TG_ERROR("recorder: store append failed: %s; holding events in %s", err->msg, where);
    r->store_down = 1;
}

static int store_append(tg_recorder_t *r, const tg_event_t *evs, size_t n)
{
    size_t inserted = 0;
    tg_err_t err = {{0}};
    int rc = tg_store_append(r->store, evs, n, &inserted, &err);
    /* A failed append may still have committed a part (PostgreSQL's halves): counted now,
     * skipped as stored when the batch comes again. */
    atomic_fetch_add_explicit(&r->committed, inserted, memory_order_relaxed);
    if (rc != 0) {
        note_store_failed(r, rc, &err);
        return -1;
    }
    note_store_ok(r);
    return 0;
}

/* The spool's size for stats (the writer's, or start's before the writer runs). */
static void publish_spool(tg_recorder_t *r)
{
    atomic_store_explicit(&r->spool_bytes, (int64_t)(r->spool_size - r->spool_hdr),
                          memory_order_relaxed);
}

/* One more batch written (or tried) in us microseconds: the writer's only. */
static void observe_batch(tg_recorder_t *r, int64_t us)
{
    if (us < 0) us = 0;
    int i = 0;
    while (i < TG_RECORDER_BATCH_BUCKETS && us > tg_recorder_batch_bucket_us[i])
        i++;
    _Atomic uint64_t *c = &r->batch_buckets[i];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&r->batch_sum_us,
                          atomic_load_explicit(&r->batch_sum_us, memory_order_relaxed) +
                              (uint64_t)us,
                          memory_order_relaxed);
}

static int spool_pending(const tg_recorder_t *r)
{
    return r->spool_fd >= 0 && r->spool_done < r->spool_size;
}

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, len -= (size_t)w, off += w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n, len -= (size_t)n, off += n;
    }
    return 0;
}

/* ---- audit.bodies: encrypt: the writer owns each event's bodies (types/bodies.h) ---- */

/* Events read back from the spool: a pointer there means nothing (spool_append wrote none;
 * never freed, whatever a file holds). */
static void forget_bodies(tg_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        evs[i].bodies = NULL;
}

/* Frees one event's bodies, taken off the bytes held. */
static void release(tg_recorder_t *r, tg_bodies_t *b)
{
    if (!b) return;
    atomic_fetch_sub_explicit(&r->body_bytes, (int64_t)b->plain_len, memory_order_relaxed);
    tg_bodies_free(b);
}

/* Frees the bodies of evs[0..n) (stored, or given up) and clears the pointers. */
static void free_bodies(tg_recorder_t *r, tg_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (evs[i].bodies) {
            release(r, evs[i].bodies);
            evs[i].bodies = NULL;
        }
}

/* Before the store sees the batch: each call's bodies sealed by the KEK, bound to its
 * event (the store writes the blob beside the call record), the plain bytes wiped. Once per
 * event: a held batch is retried with its blobs. Here, on the writer thread, so the
 * workers never wait for AES. */
static void seal_bodies(tg_recorder_t *r)
{
    for (size_t i = 0; i < r->nbatch; i++) {
        tg_event_t *ev = &r->batch[i];
        tg_bodies_t *b = ev->bodies;
        if (!b || b->sealed) continue;
        unsigned char aad[TG_BODIES_AAD_MAX];
        size_t alen = tg_bodies_aad(ev->id, ev->tenant, aad);
        tg_err_t err = {{0}};
        if (r->sealed && tg_crypt_seal(&r->kek, b->plain, b->plain_len, aad, alen, &b->sealed,
                                       &b->sealed_len, &err) == 0) {
            tg_crypt_free(b->plain, b->plain_len);
            b->plain = NULL;
            ev->bodies_state = TG_BODIES_SEALED;
            continue;
        }
        TG_ERROR("recorder: the bodies of event %lld are not kept: %s", (long long)ev->id,
                 r->sealed ? err.msg : "no KEK");
        atomic_fetch_add_explicit(&r->bodies_dropped, 1, memory_order_relaxed);
        ev->bodies_state = TG_BODIES_DROPPED;
        release(r, b);
        ev->bodies = NULL;
    }
}

/* A batch going to the spool (the store down) leaves its bodies behind: the spool holds
 * events only (docs/audit.md, "Bodies"); each call record will say dropped_spooled. The
 * event itself is never held back for them. */
static void spool_drop_bodies(tg_recorder_t *r, tg_event_t *evs, size_t n)
{
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (evs[i].bodies) {
            release(r, evs[i].bodies);
            evs[i].bodies = NULL;
            evs[i].bodies_state = TG_BODIES_DROPPED_SPOOLED;
            k++;
        }
    if (!k) return;
    atomic_fetch_add_explicit(&r->bodies_dropped, k, memory_order_relaxed);
    TG_WARN("recorder: the store is down: %llu calls' bodies not kept (their events go to the "
            "spool; each record says bodies: dropped_spooled)",
            (unsigned long long)k);
}

static int spool_append(tg_recorder_t *r, tg_event_t *evs, size_t n)
{
    if (r->spool_fd < 0) return -1;
    spool_drop_bodies(r, evs, n);
    unsigned char *frame = NULL;
    size_t flen = (size_t)n * sizeof *evs;
    if (r->sealed) {
        tg_err_t err = {{0}};
        if (tg_chunk_seal(&r->kek, evs, flen, (uint64_t)r->spool_size, 0, &frame, &flen, &err) !=
            0) {
            TG_ERROR("recorder: spool %s: %s; holding %zu events in memory", r->spool_path, err.msg,
                     n);
            return -1;
        }
    }
    int wrc = write_all(r->spool_fd, frame ? (const void *)frame : (const void *)evs, flen,
                        r->spool_size);
    free(frame);
    if (wrc != 0) {
        int e = errno;
        /* A short write leaves a partial record: cut it off, so the file stays
         * whole records and the batch can be retried at the same offset. If
         * the cut fails too, the retry overwrites it or the next open cuts it
         * (whole records in it are events of this batch: a replay skips them). */
        int cut = ftruncate(r->spool_fd, r->spool_size);
        (void)cut;
        int64_t now = tg_mono_us();
        if (now - r->last_err_log_us >= 1000000) {
            r->last_err_log_us = now;
            TG_ERROR("recorder: spool %s: write failed: %s; holding %zu events in memory",
                     r->spool_path, strerror(e), n);
        }
        return -1;
    }
    r->spool_size += (off_t)flen;
    publish_spool(r);
    atomic_fetch_add_explicit(&r->spooled, n, memory_order_relaxed);
    atomic_store_explicit(&r->spooling, 1, memory_order_relaxed);
    return 0;
}

/* Reads the sealed frame at spool_done (authenticated once already, at open) into the
 * store. 0, or -1 (the store refused it, or reading failed: retried later). */
static int replay_frame(tg_recorder_t *r)
{
    off_t off = r->spool_done;
    unsigned char *pt = NULL;
    size_t bn = 0, pn = 0;
    tg_err_t err = {{0}};
    int ok =
        read_all(r->spool_fd, r->fbuf, TG_CHUNK_HEAD, off) == 0 &&
        (bn = tg_chunk_len(r->fbuf, FRAME_MAX)) != 0 &&
        read_all(r->spool_fd, r->fbuf + TG_CHUNK_HEAD, bn, off + TG_CHUNK_HEAD) == 0 &&
        tg_chunk_open(&r->kek, r->fbuf + TG_CHUNK_HEAD, bn, (uint64_t)off, 0, &pt, &pn, &err) == 0;
    if (!ok) {
        TG_ERROR("recorder: spool %s: the frame at offset %lld cannot be read back: %s",
                 r->spool_path, (long long)off, err.msg[0] ? err.msg : strerror(errno));
        r->retry_at_us = tg_mono_us() + RETRY_US;
        return -1;
    }
    forget_bodies((tg_event_t *)pt, pn / sizeof(tg_event_t));
    int rc = store_append(r, (const tg_event_t *)pt, pn / sizeof(tg_event_t));
    tg_crypt_free(pt, pn);
    if (rc != 0) return -1;
    r->spool_done = off + TG_CHUNK_HEAD + (off_t)bn;
    return 0;
}

/* Replays up to max_chunks chunks of the spool into the store; truncates the
 * file when all of it is in. Returns 0 when the spool is empty afterwards. */
static int spool_replay(tg_recorder_t *r, size_t max_chunks)
{
    if (!spool_pending(r)) return 0;
    for (size_t c = 0; c < max_chunks && spool_pending(r); c++) {
        if (r->sealed) {
            if (replay_frame(r) != 0) return -1;
            continue;
        }
        off_t left = (r->spool_size - r->spool_done) / RS;
        size_t n = left < BATCH_MAX ? (size_t)left : BATCH_MAX;
        if (read_all(r->spool_fd, r->rbuf, (size_t)n * sizeof *r->rbuf, r->spool_done) != 0) {
            TG_ERROR("recorder: spool %s: read failed at offset %lld: %s", r->spool_path,
                     (long long)r->spool_done, strerror(errno));
            r->retry_at_us = tg_mono_us() + RETRY_US;
            return -1;
        }
        forget_bodies(r->rbuf, n);
        if (store_append(r, r->rbuf, n) != 0) return -1;
        r->spool_done += (off_t)n * RS;
    }
    if (spool_pending(r)) return -1;
    if (ftruncate(r->spool_fd, r->spool_hdr) != 0)
        TG_WARN("recorder: spool %s: truncate failed: %s (its events are in the store; a "
                "later replay skips them)",
                r->spool_path, strerror(errno));
    TG_INFO("recorder: spool %s replayed into the store", r->spool_path);
    r->spool_size = r->spool_done = r->spool_hdr;
    publish_spool(r);
    atomic_store_explicit(&r->spooling, 0, memory_order_relaxed);
    return 0;
}

/* The writer's pace: called by the store between its statements of 32 rows
 * (tg_store_set_pace) and here every PACE_LINES access-log lines. Once the writer has run
 * PACE_SLICE_US since the batch began or since it last yielded, it gives up its core
 * (sched_yield), so a worker, or whatever else woke on this core, runs now rather than
 * after the whole batch. Unyielding, a batch held its core for 0.6 ms (GET) to 1.5 ms
 * (audited chat calls) at a time; on a 2-core machine shared with the load generator and
 * the upstream, the machine then sat 20-29% idle at saturation (bench/RESULTS.md, "the
 * writer yields": chat +5-14% req/s, p99 no worse). It does so only while the batch is
 * younger than 1/PACE_SHARE of the flush window, and only until its yields have kept it
 * off the core for PACE_AWAY_US in all: on a machine other processes keep busy a yield
 * lasts milliseconds (a hostile test measured 1.3-2.2 ms on average, single ones up to
 * 408 ms), and a batch that kept yielding there was stretched ~10x, the SQLite write lock
 * held as long (test_writer_stops_yielding_on_a_busy_core). After either limit the batch
 * is written at full speed (DESIGN.md "Durability"). Stop, replays at a tick and anything
 * else outside a batch never yield; the spool replay a batch does first is paced as the
 * batch is. */
static void writer_pace(void *arg)
{
    tg_recorder_t *r = arg;
    if (!r->pace_until_us) return;
    int64_t now = r->pace_clock();
    if (now >= r->pace_until_us || now - r->pace_last_us < PACE_SLICE_US) return;
    sched_yield();
    r->pace_last_us = r->pace_clock();
    r->pace_away_us += r->pace_last_us - now;
    if (r->pace_away_us >= PACE_AWAY_US) r->pace_until_us = 0; /* a busy machine */
}

/* Moves r->batch to the store, or to the spool. Returns 0 when the batch is
 * gone, -1 when the writer must keep it and retry. */
static int flush_batch(tg_recorder_t *r)
{
    if (r->nbatch == 0) return 0;
    if (!r->batch_logged && r->alog) {
        for (size_t i = 0; i < r->nbatch; i++) {
            tg_accesslog_write(r->alog, &r->batch[i]);
            if (i % PACE_LINES == PACE_LINES - 1) writer_pace(r);
        }
        tg_accesslog_flush(r->alog);
    }
    r->batch_logged = 1;
    seal_bodies(r);
    int64_t now = tg_mono_us();
    int may_try_store = now >= r->retry_at_us;
    /* Order: what is in the spool reaches the store before this batch. */
    if (spool_pending(r) && may_try_store) spool_replay(r, REPLAY_CHUNKS);
    if (!spool_pending(r) && may_try_store && store_append(r, r->batch, r->nbatch) == 0) goto done;
    if (spool_append(r, r->batch, r->nbatch) == 0) goto done;
    return -1;
done:
    free_bodies(r, r->batch, r->nbatch);
    r->nbatch = 0;
    r->batch_logged = 0;
    return 0;
}

/* Retention: events older than N days, aggregates of days before today - M. */
static void maybe_purge(tg_recorder_t *r, int64_t now)
{
    if (now < r->next_purge_us) return;
    if (r->ret_events_days <= 0 && r->ret_agg_days <= 0 && r->ret_audit_days <= 0) {
        r->next_purge_us = INT64_MAX;
        return;
    }
    int64_t wall = r->wall_clock();
    int64_t events_before = r->ret_events_days > 0 ? wall - r->ret_events_days * DAY_US : 0;
    char day[11];
    const char *agg_before = NULL;
    if (r->ret_agg_days > 0) {
        tg_utc_day(wall - r->ret_agg_days * DAY_US, day);
        agg_before = day;
    }
    int64_t deleted = 0;
    tg_err_t err = {{0}};
    int rc = tg_store_purge(r->store, events_before, agg_before, &deleted, &err);
    if (rc == 0 && r->ret_audit_days > 0) {
        /* Whole days: the first kept record anchors the chain (docs/audit.md). */
        int64_t audited = 0;
        tg_utc_day(wall - r->ret_audit_days * DAY_US, day);
        rc = tg_store_audit_purge(r->store, day, &audited, &err);
        deleted += audited;
    }
    if (rc == 0) {
        if (deleted > 0) TG_INFO("recorder: retention purged %lld rows", (long long)deleted);
        r->next_purge_us = now + PURGE_EVERY_US;
    } else {
        TG_WARN("recorder: retention purge failed (%s); retrying in a minute",
                rc == TG_STORE_BUSY ? "store busy" : err.msg);
        r->next_purge_us = now + PURGE_RETRY_US;
    }
}

/* Copies up to BATCH_MAX events from the ring into r->batch. Called and
 * returns with mu held; drops it between chunks. */
static void take_locked(tg_recorder_t *r)
{
    size_t got = 0;
    while (got < BATCH_MAX && r->count > 0) {
        size_t n = r->count;
        if (n > BATCH_MAX - got) n = BATCH_MAX - got;
        if (n > COPY_CHUNK) n = COPY_CHUNK;
        if (n > r->cap - r->head) n = r->cap - r->head; /* contiguous run */
        memcpy(&r->batch[got], &r->ring[r->head], n * sizeof *r->ring);
        r->head += n;
        if (r->head == r->cap) r->head = 0;
        r->count -= n;
        /* Emptied: the next push goes to slot 0 again, so a writer that keeps up cycles the
         * same few hundred slots, warm in cache, not all cap of them (~90 MB at the default
         * queue, each slot written cold). bench/RESULTS.md: +4% GET req/s. */
        if (r->count == 0) r->head = 0;
        got += n;
        if (r->waiters) pthread_cond_broadcast(&r->room);
        if (got < BATCH_MAX && r->count > 0) { /* let pushers in */
            pthread_mutex_unlock(&r->mu);
            pthread_mutex_lock(&r->mu);
        }
    }
    r->nbatch = got;
}

/* Moves the flood table's surpluses of ended minutes (all of them once stopping) into a
 * freshly taken batch, after its events. Returns 1 when the batch filled before the table
 * was empty. A held batch (its access-log lines written) takes none: they wait. */
static int take_aggregates(tg_recorder_t *r, int stopping, int64_t wall_us)
{
    if (!r->flood || r->batch_logged) return 0;
    if (stopping && !r->flood_closed) {
        tg_flood_close(r->flood); /* no count can land after the last harvest */
        r->flood_closed = 1;
    }
    size_t room = BATCH_MAX - r->nbatch;
    if (room == 0) return 1;
    size_t n = tg_flood_harvest(r->flood, stopping ? INT64_MAX : wall_us, r->fagg, room);
    for (size_t i = 0; i < n; i++)
        aggregate_event(&r->fagg[i], &r->batch[r->nbatch++]);
    atomic_fetch_add_explicit(&r->aggregates, n, memory_order_relaxed);
    return n == room;
}

static void timed_wait(tg_recorder_t *r, int64_t until_mono_us)
{
    struct timespec ts = {.tv_sec = until_mono_us / 1000000,
                          .tv_nsec = (long)(until_mono_us % 1000000) * 1000};
    pthread_cond_timedwait(&r->wake, &r->mu, &ts);
}

static void *writer_main(void *arg)
{
    tg_recorder_t *r = arg;
    pthread_setname_np(pthread_self(), "tg-writer");
    int64_t next_tick = tg_mono_us(); /* first tick now: retention, spool replay */
    int64_t giveup = 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        for (;;) {
            if (tg_mono_us() >= next_tick) break;
            /* A held batch (store and spool refused it) waits for the tick. */
            if (r->nbatch == 0) {
                if (r->count >= r->half) break;
                if (r->stopping && (r->count > 0 || r->waiters == 0)) break;
            }
            r->writer_sleeping = 1;
            timed_wait(r, next_tick);
            r->writer_sleeping = 0;
        }
        if (r->nbatch == 0) take_locked(r); /* a held batch is retried as it is */
        int stopping = r->stopping;
        /* Closed: nothing left and nobody about to push. Pushes are refused
         * from stop on, so waiters only falls. */
        if (stopping && r->count == 0 && r->waiters == 0) r->closed = 1;
        int closed = r->closed;
        pthread_mutex_unlock(&r->mu);

        int64_t now = tg_mono_us();
        int more_aggregates = 0;
        if (stopping || now >= next_tick) /* the wall clock: which minutes have ended */
            more_aggregates = take_aggregates(r, stopping, r->wall_clock());
        if (now >= next_tick) {
            next_tick += r->flush_us;
            if (next_tick <= now) next_tick = now + r->flush_us;
            if (atomic_exchange_explicit(&r->reopen_log, 0, memory_order_relaxed)) {
                tg_err_t err = {{0}};
                if (tg_accesslog_reopen(r->alog, &err) != 0)
                    TG_WARN("recorder: access log reopen failed: %s", err.msg);
            }
            maybe_purge(r, now);
            if (r->nbatch == 0 && spool_pending(r) && now >= r->retry_at_us)
                spool_replay(r, REPLAY_CHUNKS);
        }
        int64_t t0 = r->nbatch ? r->pace_clock() : 0;
        r->pace_until_us = t0 && !stopping ? t0 + r->flush_us / PACE_SHARE : 0;
        r->pace_last_us = t0;
        r->pace_away_us = 0;
        int flushed = flush_batch(r);
        r->pace_until_us = 0;
        if (t0) observe_batch(r, r->pace_clock() - t0);
        if (flushed != 0 && stopping) {
            if (giveup == 0) giveup = now + STOP_GIVEUP_US;
            if (now >= giveup) {
                TG_ERROR("recorder: stopping: neither the store nor the spool takes events; "
                         "%zu events lost",
                         r->nbatch);
                atomic_fetch_add_explicit(&r->dropped, r->nbatch, memory_order_relaxed);
                free_bodies(r, r->batch, r->nbatch);
                r->nbatch = 0;
                r->batch_logged = 0;
            }
        }
        if (closed && r->nbatch == 0 && !more_aggregates) break;
    }
    /* A clean stop leaves as little as possible in the spool. */
    r->retry_at_us = 0;
    spool_replay(r, SIZE_MAX);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* start / stop                                                             */

/* The header this recorder writes: plain, or sealed by its KEK. */
static void wanted_header(const tg_recorder_t *r, unsigned char hdr[SHDR])
{
    if (r->sealed) {
        struct spool_shdr s = {.version = SPOOL_VERSION, .record_size = (uint32_t)RS};
        memcpy(s.magic, SPOOL_SEALED_MAGIC, sizeof s.magic);
        memcpy(s.kek_id, r->kek.id, TG_KEK_ID_LEN);
        memcpy(hdr, &s, sizeof s);
    } else {
        struct spool_hdr p = {.version = SPOOL_VERSION, .record_size = (uint32_t)RS};
        memcpy(p.magic, SPOOL_MAGIC, sizeof p.magic);
        memcpy(hdr, &p, sizeof p);
    }
}

enum spool_kind { SPOOL_NEW, SPOOL_PLAIN, SPOOL_SEALED, SPOOL_FOREIGN };

/* What a file of size bytes starting with hdr[0 .. min(size, SHDR)) is. */
static enum spool_kind spool_kind(const unsigned char *hdr, off_t size)
{
    if (size < HDR) return SPOOL_NEW; /* new, or a crash while writing the header */
    const uint32_t want[2] = {SPOOL_VERSION, (uint32_t)RS};
    if (memcmp(hdr, SPOOL_MAGIC, 8) == 0)
        return memcmp(hdr + 8, want, sizeof want) == 0 ? SPOOL_PLAIN : SPOOL_FOREIGN;
    if (memcmp(hdr, SPOOL_SEALED_MAGIC, 8) != 0) return SPOOL_FOREIGN;
    if (size < SHDR) return SPOOL_NEW;
    return memcmp(hdr + 8, want, sizeof want) == 0 ? SPOOL_SEALED : SPOOL_FOREIGN;
}

/* Authenticates every frame of a sealed spool of size bytes; returns the end of the last
 * whole one (a torn last frame is cut by the caller) and counts its events, or -1 with err
 * when a frame before the last does not open (damage, not a crash: refused, not cut). */
static off_t scan_sealed(tg_recorder_t *r, int fd, off_t size, int64_t *events, tg_err_t *err)
{
    off_t off = SHDR;
    *events = 0;
    while (size - off >= TG_CHUNK_HEAD) {
        size_t bn, pn;
        unsigned char *pt;
        tg_err_t why = {{0}};
        if (read_all(fd, r->fbuf, TG_CHUNK_HEAD, off) != 0)
            return tg_err_set(err, "spool %s: %s", r->spool_path, strerror(errno));
        bn = tg_chunk_len(r->fbuf, FRAME_MAX);
        off_t end = off + TG_CHUNK_HEAD + (off_t)bn;
        if (bn == 0 || end > size) break; /* a torn head or a frame cut short */
        if (read_all(fd, r->fbuf + TG_CHUNK_HEAD, bn, off + TG_CHUNK_HEAD) != 0)
            return tg_err_set(err, "spool %s: %s", r->spool_path, strerror(errno));
        if (tg_chunk_open(&r->kek, r->fbuf + TG_CHUNK_HEAD, bn, (uint64_t)off, 0, &pt, &pn, &why) !=
            0) {
            if (end == size) break; /* the last frame, torn by a crash mid-write */
            return tg_err_set(err,
                              "spool %s: the frame at offset %lld does not open (%s); the "
                              "file is damaged: move it aside to start (its events are not "
                              "in the store)",
                              r->spool_path, (long long)off, why.msg);
        }
        tg_crypt_free(pt, pn);
        if (pn == 0 || pn % (size_t)RS != 0)
            return tg_err_set(err,
                              "spool %s: the frame at offset %lld holds %zu bytes, not "
                              "whole events",
                              r->spool_path, (long long)off, pn);
        *events += (int64_t)(pn / (size_t)RS);
        off = end;
    }
    /* A crash tears at most the frame being written: more than one frame's worth of bytes
     * that do not open is damage (a length altered in the middle), refused rather than cut. */
    if (size - off > (off_t)(TG_CHUNK_HEAD + FRAME_MAX))
        return tg_err_set(err,
                          "spool %s: the %lld bytes from offset %lld do not form a frame; the "
                          "file is damaged: move it aside to start (its events are not in the "
                          "store)",
                          r->spool_path, (long long)(size - off), (long long)off);
    return off;
}

/* Copies a sealed spool's torn tail [from, to) to PATH.torn-<time> before it is cut: a
 * crash leaves only part of one frame there, but a length damaged in the middle would put
 * whole frames after it, and those are kept, not destroyed (each still opens at its
 * offset). aside is set to the copy's name, "" when it could not be made. */
static void save_tail(tg_recorder_t *r, int fd, off_t from, off_t to, char *aside, size_t cap)
{
    snprintf(aside, cap, "%s.torn-%lld", r->spool_path, (long long)tg_wall_us());
    int out = open(aside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int ok = out >= 0;
    for (off_t at = from; ok && at < to;) {
        size_t n = to - at < (off_t)FRAME_MAX ? (size_t)(to - at) : FRAME_MAX;
        ok = read_all(fd, r->fbuf, n, at) == 0 && write_all(out, r->fbuf, n, at - from) == 0;
        at += (off_t)n;
    }
    if (out >= 0 && (!ok || fsync(out) != 0)) ok = 0, unlink(aside);
    if (out >= 0) close(out);
    if (!ok) aside[0] = '\0';
}

/* Seals the plain spool open in fd (size bytes) into PATH.sealing, then renames it over
 * PATH: events spooled before encryption was configured are kept, now sealed. The
 * caller opens PATH again. */
static int seal_plain_spool(tg_recorder_t *r, int fd, off_t size, tg_err_t *err)
{
    char tmp[4096];
    unsigned char hdr[SHDR];
    snprintf(tmp, sizeof tmp, "%s.sealing", r->spool_path);
    int tfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (tfd < 0) return tg_err_set(err, "spool %s: %s", tmp, strerror(errno));
    wanted_header(r, hdr);
    off_t in = HDR, out = SHDR, whole = HDR + (size - HDR) / RS * RS;
    int ok = write_all(tfd, hdr, SHDR, 0) == 0;
    while (ok && in < whole) {
        size_t n = (size_t)((whole - in) / RS), flen = 0;
        if (n > BATCH_MAX) n = BATCH_MAX;
        unsigned char *frame = NULL;
        ok = read_all(fd, r->rbuf, n * (size_t)RS, in) == 0 &&
             tg_chunk_seal(&r->kek, r->rbuf, n * (size_t)RS, (uint64_t)out, 0, &frame, &flen,
                           err) == 0 &&
             write_all(tfd, frame, flen, out) == 0;
        free(frame);
        in += (off_t)n * RS, out += (off_t)flen;
    }
    explicit_bzero(r->rbuf, BATCH_MAX * sizeof *r->rbuf);
    ok = ok && fsync(tfd) == 0;
    close(tfd);
    if (ok && rename(tmp, r->spool_path) == 0) {
        char id[2 * TG_KEK_ID_LEN + 1];
        tg_kek_id_hex(&r->kek, id);
        TG_INFO("recorder: spool %s: %lld events spooled without encryption are now sealed "
                "(key-encryption key id %s)",
                r->spool_path, (long long)((whole - HDR) / RS), id);
        return 0;
    }
    if (!err->msg[0]) tg_err_set(err, "spool %s: sealing it: %s", r->spool_path, strerror(errno));
    unlink(tmp);
    return -1;
}

/* Opens (creating) the spool, checks its header and cuts a torn last record (or frame).
 * Leaves spool_done at the first record: whatever follows is replayed. */
static int spool_open(tg_recorder_t *r, tg_err_t *err)
{
    const char *path = r->spool_path;
    unsigned char want[SHDR];
    wanted_header(r, want);
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return tg_err_set(err, "spool %s: %s", path, strerror(errno));
        /* Two processes appending to one spool would interleave records. */
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return tg_err_set(err, "spool %s: in use by another tollgate process", path);
            return tg_err_set(err, "spool %s: lock: %s", path, strerror(e));
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            return tg_err_set(err, "spool %s: %s", path, strerror(errno));
        }
        unsigned char have[SHDR] = {0};
        off_t size = st.st_size;
        if (size > 0 && read_all(fd, have, size < SHDR ? (size_t)size : SHDR, 0) != 0) {
            int e = errno;
            close(fd);
            return tg_err_set(err, "spool %s: %s", path, strerror(e));
        }
        enum spool_kind kind = spool_kind(have, size);
        if (kind == SPOOL_FOREIGN) {
            if (attempt > 0) {
                close(fd);
                return tg_err_set(err, "spool %s: header changed while opening it", path);
            }
            char aside[4096];
            snprintf(aside, sizeof aside, "%s.unreadable-%lld", path, (long long)tg_wall_us());
            close(fd);
            if (rename(path, aside) != 0)
                return tg_err_set(err,
                                  "spool %s: header does not match this build and it "
                                  "cannot be moved aside: %s",
                                  path, strerror(errno));
            uint32_t v[2];
            memcpy(v, have + 8, sizeof v);
            TG_ERROR("recorder: spool %s is not a spool of this build (record size %u, "
                     "version %u); moved to %s, not replayed",
                     path, v[1], v[0], aside);
            continue;
        }
        if (kind == SPOOL_PLAIN && r->sealed && size - HDR >= RS) {
            int rc = seal_plain_spool(r, fd, size, err);
            close(fd);
            if (rc != 0) return -1;
            continue;
        }
        if (kind == SPOOL_SEALED && size > SHDR &&
            (!r->sealed || memcmp(have + 16, r->kek.id, TG_KEK_ID_LEN) != 0)) {
            tg_kek_t need;
            char id[2 * TG_KEK_ID_LEN + 1];
            memcpy(need.id, have + 16, TG_KEK_ID_LEN);
            tg_kek_id_hex(&need, id);
            close(fd);
            return tg_err_set(err,
                              "spool %s holds events sealed by the key-encryption key id %s, "
                              "%s: configure encryption with that key to replay them",
                              path, id,
                              r->sealed ? "not by the configured one"
                                        : "and no encryption "
                                          "is configured");
        }
        /* Empty (or only a torn header or record): start it afresh with our header. */
        int empty = kind == SPOOL_NEW || (kind == SPOOL_PLAIN && size - HDR < RS) ||
                    (kind == SPOOL_SEALED && size <= SHDR);
        if (empty && (ftruncate(fd, 0) != 0 || write_all(fd, want, (size_t)r->spool_hdr, 0) != 0)) {
            int e = errno;
            close(fd);
            return tg_err_set(err, "spool %s: %s", path, strerror(e));
        }
        if (empty) size = r->spool_hdr;
        off_t whole;
        int64_t events;
        if (r->sealed) {
            if ((whole = scan_sealed(r, fd, size, &events, err)) < 0) {
                close(fd);
                return -1;
            }
        } else {
            whole = HDR + (size - HDR) / RS * RS;
            events = (whole - HDR) / RS;
        }
        if (whole != size) {
            char aside[4096] = "";
            if (r->sealed) save_tail(r, fd, whole, size, aside, sizeof aside);
            TG_WARN("recorder: spool %s: ignoring a torn last %s (%lld bytes)%s%s", path,
                    r->sealed ? "frame" : "record", (long long)(size - whole),
                    aside[0] ? "; its bytes are kept in " : "", aside);
            if (ftruncate(fd, whole) != 0) {
                int e = errno;
                close(fd);
                return tg_err_set(err, "spool %s: truncate: %s", path, strerror(e));
            }
        }
        r->spool_fd = fd;
        r->spool_size = whole;
        publish_spool(r);
        r->spool_done = r->spool_hdr;
        if (events > 0) {
            TG_INFO("recorder: spool %s holds %lld events from a previous run; replaying", path,
                    (long long)events);
            atomic_store_explicit(&r->spooling, 1, memory_order_relaxed);
        }
        return 0;
    }
}

static void destroy(tg_recorder_t *r)
{
    /* Events never taken (a failed start): their bodies; a stopped writer left none. */
    if (r->ring)
        for (size_t k = 0; k < r->count; k++)
            free_bodies(r, &r->ring[(r->head + k) % r->cap], 1);
    tg_accesslog_close(r->alog);
    if (r->own_store)
        tg_store_close(r->store);
    else if (r->store)
        tg_store_set_pace(r->store, NULL, NULL); /* the caller's store outlives r */
    if (r->spool_fd >= 0) close(r->spool_fd);    /* releases the flock */
    pthread_cond_destroy(&r->room);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mu);
    free(r->spool_path);
    free(r->rbuf);
    free(r->fbuf);
    tg_kek_wipe(&r->kek);
    free(r->fagg);
    tg_flood_free(r->flood);
    free(r->batch);
    free(r->ring);
    free(r);
}

static int start(const tg_recorder_opts_t *opts, tg_store_t *store, int own_store,
                 tg_recorder_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_recorder_t *r = calloc(1, sizeof *r);
    if (!r) {
        if (own_store) tg_store_close(store);
        return tg_err_set(err, "recorder: out of memory");
    }
    r->store = store;
    r->own_store = own_store;
    tg_store_set_pace(store, writer_pace, r);
    /* The WAL checkpoints off the writer's commits, so events do not wait for them (the
     * store's thread, until the store is closed). Without it the writer checkpoints. */
    tg_err_t ck_err = {{0}};
    if (tg_store_checkpoint_in_background(store, &ck_err) != 0)
        TG_WARN("recorder: %s; the writer runs the store's checkpoints itself", ck_err.msg);
    r->spool_fd = -1;
    r->cap = opts->queue_size ? opts->queue_size : DEFAULT_QUEUE;
    /* Wake the writer early once this many events wait: small, frequent
     * batches spread its CPU use, where one 50 ms batch at a time showed as
     * p99 latency on the request path (bench/proxy: 5.0 ms vs 2.5 ms). */
    r->half = r->cap / 2 < WAKE_BATCH ? (r->cap / 2 ? r->cap / 2 : 1) : WAKE_BATCH;
    r->retry_wait_us = RETRY_US;
    r->flush_us = (opts->flush_ms > 0 ? opts->flush_ms : DEFAULT_FLUSH) * 1000LL;
    r->ret_events_days = opts->retention_events_days;
    r->ret_agg_days = opts->retention_aggregates_days;
    r->ret_audit_days = opts->retention_audit_days;
    r->wall_clock = opts->wall_clock ? opts->wall_clock : tg_wall_us;
    r->pace_clock = opts->pace_clock ? opts->pace_clock : tg_mono_us;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, &ca);
    pthread_cond_init(&r->room, &ca);
    pthread_condattr_destroy(&ca);

    if (r->cap > SIZE_MAX / sizeof(tg_event_t)) {
        tg_err_set(err, "recorder: queue_size %zu is too large", r->cap);
        goto fail;
    }
    r->ring = malloc(r->cap * sizeof *r->ring);
    r->batch = malloc(BATCH_MAX * sizeof *r->batch);
    r->rbuf = malloc(BATCH_MAX * sizeof *r->rbuf);
    r->spool_hdr = HDR;
    r->bodies_max = opts->bodies_max ? (int64_t)opts->bodies_max : BODIES_QUEUED_MAX;
    if (opts->kek) {
        r->sealed = 1;
        r->kek = *opts->kek;
        r->spool_hdr = SHDR;
        if (!(r->fbuf = malloc(TG_CHUNK_HEAD + FRAME_MAX))) {
            tg_err_set(err, "recorder: out of memory for the sealed spool's frame buffer");
            goto fail;
        }
    }
    if (opts->unauth_per_minute > 0) {
        r->flood = tg_flood_new(opts->unauth_per_minute);
        r->fagg = malloc(BATCH_MAX * sizeof *r->fagg);
        if (!r->flood || !r->fagg) {
            tg_err_set(err, "recorder: out of memory for the unauthenticated-flood table");
            goto fail;
        }
    }
    if (!r->ring || !r->batch || !r->rbuf) {
        tg_err_set(err, "recorder: out of memory for a queue of %zu events", r->cap);
        goto fail;
    }
    if (opts->spool_path && opts->spool_path[0]) {
        if (!(r->spool_path = strdup(opts->spool_path))) {
            tg_err_set(err, "recorder: out of memory");
            goto fail;
        }
        if (spool_open(r, err) != 0) goto fail;
    }
    if (tg_accesslog_open(opts->access_log, &r->alog, err) != 0) goto fail;

    /* The writer takes no signals: they belong to the main loop. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, writer_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        tg_err_set(err, "recorder: cannot start the writer thread: %s", strerror(rc));
        goto fail;
    }
    *out = r;
    return 0;
fail:
    destroy(r);
    return -1;
}

int tg_recorder_start(const tg_recorder_opts_t *opts, tg_recorder_t **out, tg_err_t *err)
{
    tg_store_t *store;
    *out = NULL;
    if (tg_store_open(opts->store_url, &store, err) != 0) return -1;
    if (tg_store_set_busy_timeout(store, WRITER_BUSY_MS, err) != 0) {
        tg_store_close(store);
        return -1;
    }
    return start(opts, store, 1, out, err);
}

int tg_recorder_start_with_store(const tg_recorder_opts_t *opts, struct tg_store *store,
                                 tg_recorder_t **out, tg_err_t *err)
{
    return start(opts, store, 0, out, err);
}

void tg_recorder_stop(tg_recorder_t *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    tg_recorder_stats_t st;
    tg_recorder_stats(r, &st);
    TG_INFO("recorder: stopped: %llu events pushed, %llu committed, %llu spooled, %llu "
            "unauthenticated refusals in %llu aggregates%s",
            (unsigned long long)st.pushed, (unsigned long long)st.committed,
            (unsigned long long)st.spooled, (unsigned long long)st.aggregated,
            (unsigned long long)st.aggregates,
            st.spooling ? " (spool not empty: replayed next start)" : "");
    destroy(r);
}

int tg_recorder_spool_rekey(const char *path, const tg_kek_t *from, const tg_kek_t *to,
                            size_t *frames, tg_err_t *err)
{
    *frames = 0;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return 0;
    if (fd < 0) return tg_err_set(err, "spool %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        return tg_err_set(err, "spool %s: %s", path,
                          e == EWOULDBLOCK ? "in use by a running gateway: stop it first"
                                           : strerror(e));
    }
    unsigned char have[SHDR] = {0};
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 ||
        (st.st_size > 0 &&
         read_all(fd, have, st.st_size < SHDR ? (size_t)st.st_size : (size_t)SHDR, 0) != 0)) {
        rc = tg_err_set(err, "spool %s: %s", path, strerror(errno));
    } else if (spool_kind(have, st.st_size) == SPOOL_SEALED && st.st_size > SHDR &&
               memcmp(have + 16, to->id, TG_KEK_ID_LEN) != 0) {
        if (memcmp(have + 16, from->id, TG_KEK_ID_LEN) != 0) {
            tg_kek_t other;
            char id[2 * TG_KEK_ID_LEN + 1];
            memcpy(other.id, have + 16, TG_KEK_ID_LEN);
            tg_kek_id_hex(&other, id);
            rc = tg_err_set(err,
                            "spool %s is sealed by the key-encryption key id %s, neither "
                            "the current one nor the new one",
                            path, id);
        } else {
            memcpy(have + 16, to->id, TG_KEK_ID_LEN);
            rc = tg_chunk_rekey_file(path, fd, have, SHDR, FRAME_MAX, from, to, 0, frames, err) ? -1
                                                                                                : 1;
        }
    }
    close(fd); /* releases the lock */
    return rc;
}
