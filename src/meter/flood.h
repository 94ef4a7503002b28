/* Unauthenticated floods: a per-address, per-minute count of refusals without a valid key
 * (401s, and heads refused before their key was read: 400, 408, 431; see
 * tg_event_unauthenticated), so that past a bound they cost one aggregate row instead of
 * one event each. The bound applies to each status apart, and an aggregate has one
 * status: a 400 flood is never counted as 401s.
 *
 * The recorder asks tg_flood_count() for every such refusal before it queues the event. Up to
 * `per_minute` refusals from one client address in one UTC minute (of the event's own
 * timestamp) are recorded one by one, as before; the rest are only counted here, and the
 * writer thread later takes each (address, minute) surplus out with tg_flood_harvest() and
 * records it as one aggregate event (types/event.h: reason TG_REASON_FLOOD, count = the
 * surplus). Events recorded + aggregate counts = refusals: nothing is sampled.
 *
 * Memory is fixed at creation: TG_FLOOD_SHARDS shards of TG_FLOOD_SLOTS slots, each shard
 * under its own mutex (workers of different addresses rarely meet). An address that finds
 * no slot (all its probe positions hold other addresses of the same minute: more than
 * about SHARDS * SLOTS addresses flooding at once) is counted in one shared overflow slot
 * (per status) whose address is "*": its first per_minute refusals are still recorded one by one,
 * with their real address, the rest go into a "*" aggregate. So a flood from any number of
 * addresses costs at most (slots + 1) * (per_minute + 1) rows a minute.
 *
 * An IPv6 address is counted by its /64 prefix (one host or site routinely holds a whole
 * /64); an IPv4 address as it is.
 *
 * Time is the event's: no clock is read here. */
#ifndef TG_METER_FLOOD_H
#define TG_METER_FLOOD_H

#include <stddef.h>
#include <stdint.h>

#define TG_FLOOD_SHARDS 64
#define TG_FLOOD_SLOTS  128 /* per shard: 8192 addresses a minute before the overflow slot */
#define TG_FLOOD_PROBE  8   /* slots looked at per address */
#define TG_FLOOD_MINUTE (60 * 1000000LL)

typedef struct tg_flood tg_flood_t;

/* One (address, minute) surplus taken out of the table. */
typedef struct tg_flood_agg {
    char ip[48];       /* the client address (IPv6: its /64, "2001:db8::/64"), or "*" (the
                          overflow slot) */
    int64_t minute_us; /* start of the UTC minute, Unix microseconds */
    int64_t count;     /* refusals not recorded one by one; > 0 */
    int status;        /* their HTTP status (401, 400, 408, 431) */
} tg_flood_agg_t;

typedef enum {
    TG_FLOOD_RECORD = 0,  /* record this refusal as an event */
    TG_FLOOD_COUNTED = 1, /* counted into its (address, minute) aggregate: do not record */
} tg_flood_verdict_t;

/* per_minute: refusals recorded one by one per address and minute (0 = none; every one
 * is aggregated). NULL when out of memory. */
tg_flood_t *tg_flood_new(int64_t per_minute);
void tg_flood_free(tg_flood_t *f);

/* Counts one refusal with this status from ip at ts_us. When the address's slot still held the
 * surplus of an earlier minute (not yet harvested), that surplus is moved into *flushed and
 * *has_flushed set: the caller records it as an aggregate. A refusal older than the
 * minute its slot holds (a worker that was slow to record), and every refusal after
 * tg_flood_close(), is TG_FLOOD_RECORD. Thread-safe. */
tg_flood_verdict_t tg_flood_count(tg_flood_t *f, const char *ip, int status, int64_t ts_us,
                                  tg_flood_agg_t *flushed, int *has_flushed);

/* Moves up to max surpluses of minutes that began before before_us into out (INT64_MAX:
 * every surplus, the current minute's included); returns how many. Call again while it
 * returns max. Thread-safe. */
size_t tg_flood_harvest(tg_flood_t *f, int64_t before_us, tg_flood_agg_t *out, size_t max);

/* From now on tg_flood_count() answers TG_FLOOD_RECORD and counts nothing: the recorder
 * calls it before its last harvest, so no count is left behind at stop. */
void tg_flood_close(tg_flood_t *f);

#endif
