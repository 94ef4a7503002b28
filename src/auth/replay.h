/* The replay cache: the signatures accepted within the signing window, so the same signed
 * request sent twice is refused the second time. Shared by the workers (one mutex), and
 * bounded: at most `capacity` signatures (signing.replay_cache), allocated on first use.
 *
 * When it is full, the oldest entry is dropped and its timestamp becomes the floor: a
 * signature whose timestamp is at or below the floor is refused as too old from then on,
 * since the cache can no longer tell whether it was seen. So a flood of signed requests
 * never opens a replay: it only shortens the window for late ones (a client signs again
 * with the current time). An entry is kept until its timestamp leaves the window; the
 * table never holds more than capacity entries, whatever the clock does.
 *
 * In-process: gateways sharing limits through Redis do not share it yet (docs/signing.md). */
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

/* Entries held (expired ones included until their slot is reused). */
size_t tg_replay_size(tg_replay_t *rc);

#endif
