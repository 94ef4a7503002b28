/* Unauthenticated floods: the per-address, per-minute counter table; see flood.h.
 *
 * A slot is {address, minute, seen, surplus}: seen counts the minute's refusals, surplus
 * the ones past the bound that no aggregate holds yet. A slot is reused for a new minute
 * (of its address, or of another address whose probe meets it) only after its surplus is
 * handed out, so a count is never lost: it leaves either through tg_flood_harvest() (the
 * writer thread, for ended minutes and at stop) or through tg_flood_count()'s *flushed.
 * The address hash is seeded per table from getrandom(), so a client cannot pick
 * addresses that all land on one shard's probe window to push others into the overflow
 * slot. */
#include "meter/flood.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define EMPTY INT64_MIN /* slot.minute of a slot never used */

typedef struct slot {
    char ip[48];
    int status;      /* of the refusals counted (one slot per address and status) */
    int64_t minute;  /* minute index (ts_us / TG_FLOOD_MINUTE, floored); EMPTY */
    int64_t seen;    /* refusals of that minute */
    int64_t surplus; /* of those, counted but neither recorded nor harvested */
} slot_t;

typedef struct shard {
    pthread_mutex_t mu;
    int closed;                   /* mu */
    slot_t slots[TG_FLOOD_SLOTS]; /* mu */
} shard_t;

struct tg_flood {
    int64_t per_minute; /* immutable */
    uint64_t seed;      /* immutable */
    shard_t shards[TG_FLOOD_SHARDS];
    shard_t overflow; /* the addresses that found no slot: one slot per status */
    /* Surplus counted and not yet handed out, over all shards: while it is 0 (no flood,
     * the usual case) a harvest returns at once instead of scanning 8,320 slots every
     * writer tick (measured: 3.5% of the gateway's instructions on an idle table). */
    _Atomic int64_t pending;
};

/* Keeps f->pending in step with one tg_flood_count: +1 for a refusal counted, minus what
 * a reused slot handed out. */
static tg_flood_verdict_t counted(tg_flood_t *f, tg_flood_verdict_t v,
                                  const tg_flood_agg_t *flushed, const int *has_flushed)
{
    if (v == TG_FLOOD_COUNTED) atomic_fetch_add_explicit(&f->pending, 1, memory_order_relaxed);
    if (*has_flushed) atomic_fetch_sub_explicit(&f->pending, flushed->count, memory_order_relaxed);
    return v;
}

static int64_t minute_of(int64_t ts_us)
{
    int64_t q = ts_us / TG_FLOOD_MINUTE;
    return (ts_us % TG_FLOOD_MINUTE < 0) ? q - 1 : q;
}

static uint64_t hash(uint64_t seed, const char *s)
{
    uint64_t h = 14695981039346656037ull ^ seed; /* FNV-1a 64, seeded */
    for (size_t i = 0; i < 48 && s[i]; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static void shard_init(shard_t *s)
{
    pthread_mutex_init(&s->mu, NULL);
    s->closed = 0;
    for (size_t i = 0; i < TG_FLOOD_SLOTS; i++)
        s->slots[i].minute = EMPTY;
}

tg_flood_t *tg_flood_new(int64_t per_minute)
{
    tg_flood_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->per_minute = per_minute < 0 ? 0 : per_minute;
    if (getrandom(&f->seed, sizeof f->seed, GRND_NONBLOCK) != (ssize_t)sizeof f->seed)
        f->seed = (uint64_t)(uintptr_t)f * 0x9e3779b97f4a7c15ull; /* no entropy yet: still varies */
    for (size_t i = 0; i < TG_FLOOD_SHARDS; i++)
        shard_init(&f->shards[i]);
    shard_init(&f->overflow);
    return f;
}

void tg_flood_free(tg_flood_t *f)
{
    if (!f) return;
    for (size_t i = 0; i < TG_FLOOD_SHARDS; i++)
        pthread_mutex_destroy(&f->shards[i].mu);
    pthread_mutex_destroy(&f->overflow.mu);
    free(f);
}

/* Hands out the slot's surplus (if any) before the slot changes minute or address. */
static void flush_slot(slot_t *s, tg_flood_agg_t *out, int *has)
{
    if (s->minute == EMPTY || s->surplus == 0) return;
    memcpy(out->ip, s->ip, sizeof out->ip);
    out->status = s->status;
    out->minute_us = s->minute * TG_FLOOD_MINUTE;
    out->count = s->surplus;
    s->surplus = 0;
    *has = 1;
}

/* One refusal of minute m in slot s (which holds ip, or is being taken for it). */
static tg_flood_verdict_t bump(slot_t *s, const char *ip, int status, int64_t m, int64_t per_minute,
                               tg_flood_agg_t *flushed, int *has)
{
    if (s->minute != EMPTY && m < s->minute) return TG_FLOOD_RECORD; /* late: record it */
    if (s->minute != m || s->status != status || strcmp(s->ip, ip) != 0) {
        flush_slot(s, flushed, has);
        snprintf(s->ip, sizeof s->ip, "%s", ip);
        s->status = status;
        s->minute = m;
        s->seen = 0;
        s->surplus = 0;
    }
    if (++s->seen <= per_minute) return TG_FLOOD_RECORD;
    s->surplus++;
    return TG_FLOOD_COUNTED;
}

/* The counting key of a client address: an IPv6 address by its /64, since one host or
 * site is routinely given a whole /64 and could otherwise draw a fresh bound from each of
 * its 2^64 addresses; an IPv4 address (also v4-mapped) as it is. */
static void key_of(const char *ip, char out[48])
{
    struct in6_addr a;
    if (strchr(ip, ':') && inet_pton(AF_INET6, ip, &a) == 1 && !IN6_IS_ADDR_V4MAPPED(&a)) {
        memset(a.s6_addr + 8, 0, 8);
        char txt[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &a, txt, sizeof txt)) {
            snprintf(out, 48, "%.43s/64", txt); /* a /64 prints in at most 21 bytes */
            return;
        }
    }
    snprintf(out, 48, "%s", ip);
}

/* The overflow slot of a status: the four statuses counted (401, 400, 408, 431) fall in
 * distinct slots, and any other in one of its own. */
static size_t overflow_slot(int status)
{
    return (size_t)(status < 0 ? 0 : status) % TG_FLOOD_SLOTS;
}

tg_flood_verdict_t tg_flood_count(tg_flood_t *f, const char *addr, int status, int64_t ts_us,
                                  tg_flood_agg_t *flushed, int *has_flushed)
{
    *has_flushed = 0;
    char ip[48];
    key_of(addr, ip);
    int64_t m = minute_of(ts_us);
    uint64_t h = hash(f->seed ^ ((uint64_t)(unsigned)status * 0x9e3779b97f4a7c15ull), ip);
    shard_t *sh = &f->shards[h % TG_FLOOD_SHARDS];
    size_t start = (size_t)((h / TG_FLOOD_SHARDS) % TG_FLOOD_SLOTS);
    tg_flood_verdict_t v;

    pthread_mutex_lock(&sh->mu);
    if (sh->closed) {
        pthread_mutex_unlock(&sh->mu);
        return TG_FLOOD_RECORD;
    }
    slot_t *free_slot = NULL; /* empty, or holding an ended minute: may be taken */
    for (size_t k = 0; k < TG_FLOOD_PROBE; k++) {
        slot_t *s = &sh->slots[(start + k) % TG_FLOOD_SLOTS];
        if (s->minute != EMPTY && s->status == status && strcmp(s->ip, ip) == 0) {
            v = counted(f, bump(s, ip, status, m, f->per_minute, flushed, has_flushed), flushed,
                        has_flushed);
            pthread_mutex_unlock(&sh->mu);
            return v;
        }
        /* An empty slot beats one of an ended minute (whose surplus goes out now). */
        if (s->minute == EMPTY) {
            if (!free_slot || free_slot->minute != EMPTY) free_slot = s;
        } else if (s->minute < m && !free_slot) {
            free_slot = s;
        }
    }
    if (free_slot) {
        v = counted(f, bump(free_slot, ip, status, m, f->per_minute, flushed, has_flushed), flushed,
                    has_flushed);
        pthread_mutex_unlock(&sh->mu);
        return v;
    }
    pthread_mutex_unlock(&sh->mu);

    /* No room among this address's slots: the shared overflow slot "*". */
    shard_t *o = &f->overflow;
    pthread_mutex_lock(&o->mu);
    v = o->closed ? TG_FLOOD_RECORD
                  : counted(f,
                            bump(&o->slots[overflow_slot(status)], "*", status, m, f->per_minute,
                                 flushed, has_flushed),
                            flushed, has_flushed);
    pthread_mutex_unlock(&o->mu);
    return v;
}

static size_t harvest_shard(shard_t *sh, size_t nslots, int all, int64_t before_m,
                            tg_flood_agg_t *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < nslots && n < max; i++) {
        slot_t *s = &sh->slots[i];
        if (s->minute == EMPTY || s->surplus == 0 || (!all && s->minute >= before_m)) continue;
        int has = 0;
        flush_slot(s, &out[n], &has);
        n += (size_t)has;
    }
    pthread_mutex_unlock(&sh->mu);
    return n;
}

size_t tg_flood_harvest(tg_flood_t *f, int64_t before_us, tg_flood_agg_t *out, size_t max)
{
    int all = before_us == INT64_MAX;
    if (!all && atomic_load_explicit(&f->pending, memory_order_relaxed) == 0) return 0;
    int64_t before_m = all ? 0 : minute_of(before_us);
    size_t n = 0;
    for (size_t i = 0; i < TG_FLOOD_SHARDS && n < max; i++)
        n += harvest_shard(&f->shards[i], TG_FLOOD_SLOTS, all, before_m, out + n, max - n);
    if (n < max) n += harvest_shard(&f->overflow, TG_FLOOD_SLOTS, all, before_m, out + n, max - n);
    for (size_t i = 0; i < n; i++)
        atomic_fetch_sub_explicit(&f->pending, out[i].count, memory_order_relaxed);
    return n;
}

void tg_flood_close(tg_flood_t *f)
{
    for (size_t i = 0; i < TG_FLOOD_SHARDS; i++) {
        pthread_mutex_lock(&f->shards[i].mu);
        f->shards[i].closed = 1;
        pthread_mutex_unlock(&f->shards[i].mu);
    }
    pthread_mutex_lock(&f->overflow.mu);
    f->overflow.closed = 1;
    pthread_mutex_unlock(&f->overflow.mu);
}
