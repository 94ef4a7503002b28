/* Rate limiter: GCRA (the generic cell rate algorithm, "virtual scheduling").
 *
 * Why GCRA rather than a token bucket: one 64-bit timestamp per key (the
 * theoretical arrival time, TAT) is the whole state, it admits exactly `burst`
 * requests at once from idle and then one per emission interval, and it gives
 * Retry-After and Remaining directly. A token bucket needs two fields (tokens,
 * last refill) and fixed-point refills for the same behaviour.
 *
 * For a limit of `limit` requests per `period_ns` with burst B (1 <= B; the
 * default burst is `limit`): emission interval T = period/limit, tolerance
 * tau = T * (B - 1). A request at time t: tat = max(TAT, t); admitted when
 * tat - t <= tau, and then TAT = tat + T. Times are monotonic nanoseconds
 * passed in by the caller (tests drive the clock); a clock that steps back is
 * treated as "no time passed" (each shard decides at the latest time it has
 * seen, so a limiter's clock only moves forward).
 *
 * Integers only. T = ceil(period / limit), at least 1 ns: the long-run rate
 * never exceeds limit/period, and as tau is a whole number of T exactly B are
 * admitted at once from idle (3 per 1 s: 3 at once, the 4th refused). Nothing
 * wraps: period and tau saturate at 2^62 ns (146 years; a burst whose refill
 * takes longer is cut to what fits, and `remaining` reports that), and with
 * now_ns < 2^63 no TAT overflows (beyond, a decision that would is refused).
 *
 * State is shared by all worker threads: a table of 2^k shards, each an
 * open-addressing hash map (64-bit key hash -> TAT) under its own mutex, so
 * two workers contend only when they touch the same shard. Keys are hashes of
 * (tenant, scope, value) strings made by tg_limit_key(); a 64-bit hash makes a
 * collision between two live keys practically impossible (2^-64 per pair).
 * Entries idle for longer than their period (TAT in the past) carry no
 * information and are reclaimed when their slot is needed. */
#ifndef TG_POLICY_RATELIMIT_H
#define TG_POLICY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TG_LIMIT_OK = 0, /* admitted; the state was updated */
    TG_LIMIT_REJECT, /* over the limit; nothing was changed */
} tg_limit_result_t;

typedef struct tg_limit_rule {
    uint64_t limit;     /* requests (units) per period; 0 = refuse everything */
    uint64_t period_ns; /* 1 s, 60 s or 3600 s for --rps/--rpm/--rph */
    uint64_t burst;     /* requests admitted at once from idle; 0 = limit */
    uint64_t cost;      /* units one decision takes; 0 = 1. Tokens: a decision is admitted
                           while at least one unit is free (TAT - now <= tau) and then takes
                           all of cost, even past the limit; the debt delays what follows. */
} tg_limit_rule_t;

typedef struct tg_limit_info {
    uint64_t limit;          /* the rule's limit (for RateLimit-Policy) */
    uint64_t remaining;      /* requests that would still be admitted right now
                                (after this one, when it was admitted) */
    uint64_t reset_ns;       /* until the state is back to idle (full burst): TAT - now */
    uint64_t retry_after_ns; /* on REJECT: until one more request would be admitted,
                                TAT - now - tau; 0 whenever remaining > 0 */
} tg_limit_info_t;
/* A rule with limit 0 refuses everything: remaining 0, reset_ns = retry_after_ns =
 * period. */

typedef struct tg_limiter tg_limiter_t;

/* shards: rounded up to a power of two (e.g. 64); capacity grows as needed. */
tg_limiter_t *tg_limiter_new(size_t shards);
void tg_limiter_free(tg_limiter_t *l);

/* 64-bit key of (tenant, scope, value), e.g. ("acme", "route", "chat"). Fields
 * are separated, so ("ab","c","") != ("a","bc",""); NULL reads as ""; never 0. */
uint64_t tg_limit_key(const char *tenant, const char *scope, const char *value);

/* One decision for key under rule at monotonic time now_ns. Thread-safe. Any
 * 64-bit key works (0 included); info may be NULL. */
tg_limit_result_t tg_limit_check(tg_limiter_t *l, uint64_t key, const tg_limit_rule_t *rule,
                                 uint64_t now_ns, tg_limit_info_t *info);

/* Several rules at once, all-or-nothing under the shards' locks: admitted only
 * when every rule admits, and then every state is updated; on REJECT nothing
 * changes and *which is the index of the rule with the longest retry-after
 * (0 on OK). info[i] is filled for every rule; on REJECT a rule that would
 * have admitted reports the unchanged state. A key given twice is evaluated in
 * order against one state. info and which may be NULL. n <= 8 (asserted). */
tg_limit_result_t tg_limit_check_all(tg_limiter_t *l, const uint64_t *keys,
                                     const tg_limit_rule_t *rules, size_t n, uint64_t now_ns,
                                     tg_limit_info_t *info, size_t *which);

/* Moves key's state by units (of rule) after the fact: positive takes more, negative gives
 * back, never below idle. Settles a token reservation to the actual count. Thread-safe. */
void tg_limit_adjust(tg_limiter_t *l, uint64_t key, const tg_limit_rule_t *rule, int64_t units,
                     uint64_t now_ns);

/* Sets key's state to ahead_ns past now_ns (TAT = now + ahead; 0: idle): a copy of a shared
 * limiter's state (Redis), so that usage here (tg_limit_usage: the quota alarm, limit
 * utilisation) and a fallback to this limiter start from it. stamp orders the copies (the
 * shared limiter's clock when it decided): one older than the copy held is ignored, since
 * answers on several connections arrive in any order. Thread-safe. */
void tg_limit_mirror(tg_limiter_t *l, uint64_t key, uint64_t ahead_ns, uint64_t stamp,
                     uint64_t now_ns);

/* How much of rule's window key has used at now_ns: (TAT - now) / (T x limit), i.e. the
 * units counted in the window over the limit: 0 when idle, 1 when a full window's worth
 * is taken, above 1 for a token debt. Changes nothing (reads under the shard's lock). */
double tg_limit_usage(tg_limiter_t *l, uint64_t key, const tg_limit_rule_t *rule, uint64_t now_ns);

/* Entries currently held (idle ones not yet reclaimed included), and bytes
 * used by the table (for the benchmark). */
size_t tg_limiter_entries(tg_limiter_t *l);
size_t tg_limiter_bytes(tg_limiter_t *l);

#endif
