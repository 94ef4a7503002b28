/* The replay cache: the signatures accepted within the signing window, so the same signed
 * request sent twice is refused the second time. Shared by the workers (one mutex), and
 * bounded: at most `capacity` signatures (signing.replay_cache), allocated on first use.
 *
 * When it is full, the oldest entry is dropped and its timestamp becomes its key's floor:
 * a signature of that key whose timestamp is at or below the floor is refused as too old
 * from then on, since the cache can no longer tell whether it was seen. So a flood of
 * signed requests never opens a replay: it only shortens the window for that key's late
 * ones (a client signs again with the current time). The floor is the key's (a group of
 * keys', see replay.c), not the cache's: one key flooding with timestamps at the window's
 * far end must not refuse every other key's current signatures. An entry is kept until its
 * timestamp leaves the window; the table never holds more than capacity entries, whatever
 * the clock does.
 *
 * Gateways that share limits through Redis share accepted signatures there too: each one
 * this cache finds fresh is then claimed in Redis (SET NX, gateway/phase_sign.c), under the
 * key and for the time below. This cache stays in front, so a replay to the same process
 * costs no round trip. */
#ifndef TG_AUTH_REPLAY_H
#define TG_AUTH_REPLAY_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TG_REPLAY_FRESH = 0, /* not seen: recorded now */
    TG_REPLAY_SEEN,      /* seen before and still within its window */
    TG_REPLAY_TOO_OLD,   /* its timestamp is at or below the floor (see above) */
    TG_REPLAY_NOMEM,     /* the table could not be allocated */
} tg_replay_res_t;

typedef struct tg_replay tg_replay_t;

tg_replay_t *tg_replay_new(size_t capacity);
void tg_replay_free(tg_replay_t *rc);

/* Looks up mac (the signature's 32 bytes) and records it when new, remembered while
 * now_s <= ts_s + window_s. Thread-safe. */
tg_replay_res_t tg_replay_check(tg_replay_t *rc, const unsigned char mac[32], int64_t ts_s,
                                int64_t window_s, int64_t now_s);
/* The same for a signature of the key named who (its key id; NULL: as ""), whose floor
 * alone a dropped entry of it raises. */
tg_replay_res_t tg_replay_check_for(tg_replay_t *rc, const char *who, const unsigned char mac[32],
                                    int64_t ts_s, int64_t window_s, int64_t now_s);

/* Entries held (expired ones included until their slot is reused). */
size_t tg_replay_size(tg_replay_t *rc);

/* ---- the shared cache (Redis) ---- */

#define TG_REPLAY_KEY_PREFIX "tg:replay:"
#define TG_REPLAY_KEY_SIZE   (sizeof TG_REPLAY_KEY_PREFIX + 64) /* and 64 hex, NUL */
/* Gateways' clocks differ: a signature is kept this much longer than this gateway's clock
 * says it can be accepted, so one whose clock is behind does not find it forgotten. */
#define TG_REPLAY_SKEW_S 60

/* The Redis key of mac: the prefix and the hex of SHA-256(mac). A hash, not the signature:
 * what Redis holds (and a MONITOR or a dump shows) cannot be sent as one. Returns the
 * length (TG_REPLAY_KEY_SIZE - 1), or 0 when the digest fails. */
size_t tg_replay_key(const unsigned char mac[32], char out[TG_REPLAY_KEY_SIZE]);

/* The key's time to live in milliseconds for a signature of timestamp ts_s accepted at
 * now_s: until ts_s + window_s on this clock, plus TG_REPLAY_SKEW_S. At least 1000. */
int64_t tg_replay_ttl_ms(int64_t ts_s, int64_t window_s, int64_t now_s);

#endif
