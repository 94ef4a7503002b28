/* The shared limiter's connection to Redis: one per worker loop (hiredis's asynchronous
 * context on the worker's libuv loop, through hiredis's own libuv adapter), so a worker
 * never blocks on Redis and needs no lock to use it.
 *
 * An admission is one EVALSHA of script.h's script; the caller's callback runs on the same
 * loop with the reply, or with nothing when Redis did not answer within limits.timeout
 * (the request then follows limits.on_backend_down). A caller whose request goes away
 * first (the client left) cancels its ticket; a reply that comes for a ticket nobody waits
 * for any more (cancelled or timed out) and admitted is undone at once (slot and
 * reservation given back, every counter moved back), so nothing is counted for a request
 * that was never served. Settlements are sent without waiting (counted; a failure is
 * logged at debug and counted); each is idempotent (its own marker in Redis: script.h), so
 * one sent on a connection that then drops (Redis may or may not have run it) is journaled
 * and sent again when Redis is back, unless its first send is older than the marker's
 * life allows (then dropped, counted and logged at warn, once per outage; so is a full
 * journal, and at exit what was kept but not sent). NOSCRIPT (Redis restarted, SCRIPT
 * FLUSH) loads the script
 * again ahead of the same command on the same connection, which Redis runs in order.
 *
 * Connection state: connected (authenticated, the database selected) and the script loaded
 * is "up". A refused or lost connection, or one whose AUTH, SELECT or SCRIPT LOAD is
 * refused, is "down": admissions fall back at once, without waiting, and the connection is made
 * again with a backoff (100 ms doubling to 2 s; a connect not up in 1 s is given up). Three
 * admissions in a row without an answer in time is "down" too, but the connection is kept
 * (what Redis still runs of them is answered late and undone, where a dropped connection's
 * commands might run with nobody to give them back) and PINGed every 250 ms: an answer
 * brings it up, 20 unanswered drop it. Each change is logged once per worker. While down,
 * what requests admitted locally count (their rate and token units at the instant of
 * admission, their cost) is journaled (up to 8 MiB of commands per worker, then counted as
 * dropped) and sent when Redis is back, so the shared counters end up with it, counted once. */
#ifndef TG_REDIS_CLIENT_H
#define TG_REDIS_CLIENT_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "redis/script.h"

/* Counters of every worker's client together: /metrics and /readyz. */
typedef struct tg_redis_stats {
    atomic_int workers;             /* clients made */
    atomic_int up;                  /* clients up now */
    atomic_llong admits;            /* admissions sent */
    atomic_llong timeouts;          /* admissions not answered within limits.timeout */
    atomic_llong fallbacks;         /* admissions decided by limits.on_backend_down */
    atomic_llong undone;            /* late or orphaned admissions given back */
    atomic_llong settles;           /* settlements sent */
    atomic_llong settle_errors;     /* settlements Redis refused, or unanswered at exit */
    atomic_llong settles_resent;    /* settlements sent again, their first reply lost */
    atomic_llong settles_seen;      /* settlements Redis had run already (their marker) */
    atomic_llong settles_expired;   /* settlements whose reply was lost, too old to resend */
    atomic_llong journaled;         /* commands kept while down */
    atomic_llong journal_dropped;   /* commands the journal had no room for */
    atomic_llong replayed;          /* journaled commands sent once back up */
    atomic_llong claims;            /* signature claims sent (tg_redis_claim) */
    atomic_llong claims_taken;      /* claims answered "set already": a replay */
    atomic_llong claims_unanswered; /* claims not sent (down) or not answered in time */
} tg_redis_stats_t;

typedef struct tg_redis tg_redis_t;
typedef struct tg_redis_ticket tg_redis_ticket_t;

/* The answer to an admission, decoded (tg_redis_admit_reply): a NULL when there is none in
 * time (timeout, connection lost, an error reply); spend: the tenant's month-to-date spend
 * in Redis, -1 when it has no budget; plan and ahead_us[0..nahead): each rule's state after
 * it, and stamp_us: Redis's clock when it decided (for tg_policy_mirror; plan is the
 * ticket's copy, valid for the call). */
typedef void (*tg_redis_admit_cb)(void *ud, const tg_admission_t *a, int64_t spend,
                                  const tg_admit_plan_t *plan, const int64_t *ahead_us,
                                  size_t nahead, int64_t stamp_us);

/* Where the shared limiter is, and how it lets us in (limits.backend). */
typedef struct tg_redis_addr {
    const char *host;
    int port, db;
    const char *user;     /* an ACL user (Redis 6), or NULL: the default user */
    const char *password; /* or NULL: no AUTH */
} tg_redis_addr_t;

/* A client for loop, connecting at once to addr (copied; the password never logged). Each
 * connection sends AUTH first when there is a password; a refused AUTH (or SELECT, or SCRIPT
 * LOAD) is a failed connection. timeout_ms: an admission's wait; ttl_ms: a reservation's
 * life; worker: its number (logs, request ids). */
tg_redis_t *tg_redis_new(uv_loop_t *loop, const tg_redis_addr_t *addr, long timeout_ms, long ttl_ms,
                         int worker, tg_redis_stats_t *stats);
/* Closes the connection (pending callbacks run without a reply) and frees the client once
 * its handles are closed: call from its loop, before the loop's last run. */
void tg_redis_free(tg_redis_t *rc);

int tg_redis_is_up(const tg_redis_t *rc);
long tg_redis_ttl_ms(const tg_redis_t *rc);

/* A new request id ("INSTANCE-WORKER-N") into out (TG_REDIS_ID_SIZE bytes). */
void tg_redis_next_id(tg_redis_t *rc, char *out);

/* Sends the admission c of plan (made by tg_redis_admit_cmd with the client's sha,
 * tg_redis_sha, and hold): the ticket keeps a copy of both, to decode the reply and to undo
 * an admission nobody waits for any more. The plan's values must stay valid while cb may be
 * called (they point into the waiting request). Returns the ticket, or NULL when the client
 * is down or the command could not be queued (the caller falls back now; cb is never
 * called then). cb runs later, on the loop, once. */
tg_redis_ticket_t *tg_redis_admit(tg_redis_t *rc, const tg_redis_cmd_t *c,
                                  const tg_admit_plan_t *plan, const tg_redis_hold_t *hold,
                                  tg_redis_admit_cb cb, void *ud);
/* The waiter (of an admission or a claim) went away: cb will not be called; an admitting
 * reply is undone. */
void tg_redis_cancel(tg_redis_ticket_t *t);

/* Settles hold: the slot and reservation back, cost added to the spend, adj applied. Sent
 * now when up, journaled when down. */
void tg_redis_settle(tg_redis_t *rc, const tg_redis_hold_t *hold, int64_t cost,
                     const tg_redis_adj_t *adj, size_t n);

/* A claim's answer: the key was free and is now set (CLAIMED), it was set already (TAKEN), or
 * no answer within limits.timeout, the connection lost, an error reply (NOANSWER). */
typedef enum { TG_REDIS_CLAIMED = 0, TG_REDIS_TAKEN, TG_REDIS_NOANSWER } tg_redis_claim_t;
typedef void (*tg_redis_claim_cb)(void *ud, tg_redis_claim_t res);

/* SET key 1 NX PX px_ms: the shared replay cache's check-and-remember (auth/replay.h), one
 * round trip, atomic in Redis, so of two gateways sent the same signature one wins. Timed
 * like an admission (limits.timeout; unanswered ones count towards "down"), cancelled with
 * tg_redis_cancel. Returns the ticket, or NULL when the client is down or the command could
 * not be queued (the caller decides now; cb is never called then). cb runs later, on the
 * loop, once. A late answer for a ticket nobody waits for is dropped: a key set late only
 * makes the signature remembered, which an accepted one was meant to be. */
tg_redis_ticket_t *tg_redis_claim(tg_redis_t *rc, const char *key, size_t klen, int64_t px_ms,
                                  tg_redis_claim_cb cb, void *ud);

/* A settlement marker's life (TG_REDIS_OP_TTL_MS by default; ms > 0), which bounds how late
 * a settlement whose reply was lost is sent again: tests shorten it (the gateway takes
 * TOLLGATE_TEST_SETTLE_MARKER_MS) to see one dropped as too old without waiting. */
void tg_redis_set_op_ttl(tg_redis_t *rc, int64_t ms);

/* Counts an admission limits.on_backend_down decided. */
void tg_redis_count_fallback(tg_redis_t *rc);

/* A command buffer of the client's for building one command at a time (on its loop). */
tg_redis_cmd_t *tg_redis_scratch(tg_redis_t *rc);

/* The script's SHA-1 (hex) the commands name. */
const char *tg_redis_sha(const tg_redis_t *rc);

#endif
