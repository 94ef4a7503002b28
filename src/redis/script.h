/* The shared limiter's Lua script and its arguments: everything about talking to Redis that
 * is pure (no socket, no clock), so it is unit-tested with values.
 *
 * One script (tg_redis_lua) decides a whole admission in one round trip, all or nothing:
 * the tenant's in-flight cap (a sorted set of request ids scored by their expiry), its
 * budget (month-to-date spend; reservations by request id, each with an expiry, and their
 * sum), then every rate and token rule as GCRA (one TAT per key, the algorithm of
 * policy/ratelimit.h in microseconds of Redis's own clock, so every gateway decides on one
 * clock). Mode "S" settles: the slot and the reservation given back, the actual cost added
 * to the spend, TATs moved by a number of units (a token reservation settled, an admission
 * undone, or what was admitted locally while Redis was down, at the instant it was).
 *
 * Keys are "tg:{TENANT}:WHAT[:VALUE]": the braces are Redis Cluster's hash tag, so one
 * tenant's keys live in one slot and one script may touch them all. */
#ifndef TG_REDIS_SCRIPT_H
#define TG_REDIS_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"
#include "util/sizes.h"

#define TG_REDIS_KEY_MAX    256   /* "tg:{" tenant "}:" scope ":" value, cut to fit */
#define TG_REDIS_ID_SIZE    40    /* a request id: instance id, worker, counter */
#define TG_REDIS_CMD_ARGS   400   /* EVALSHA sha numkeys, 5 + 72 keys, 10 + 4 x 72 values */
#define TG_REDIS_CMD_BYTES  32768 /* their text */
#define TG_REDIS_FIXED_KEYS 5     /* in-flight set, spend, reservations, amounts, sum */

extern const char tg_redis_lua[];

/* Verdicts of an admission (the reply's first element). */
enum { TG_REDIS_OK = 0, TG_REDIS_RATE = 1, TG_REDIS_CONC = 2, TG_REDIS_BUDGET = 3 };
/* A settlement's reply: it ran, or its marker was there (it ran before: nothing done). */
enum { TG_REDIS_SETTLED = 0, TG_REDIS_SEEN = 1 };

/* Settlements are made idempotent by a marker per settlement, "tg:{TENANT}:op:OPID" (a
 * fresh id per command, tg_redis_next_id), set NX first by the script and kept this long:
 * a settlement whose reply was lost (the connection dropped) is sent again only while its
 * marker surely still exists, so it is never counted twice. A marker costs Redis about
 * 150 bytes (docs/operations.md): 60 s at 10,000 settlements a second is about 90 MB. */
#define TG_REDIS_OP_TTL_MS 60000
/* A resend waits on the connection before Redis runs it: it is sent only if its first send
 * is this much younger than the marker's life. */
#define TG_REDIS_RESEND_MARGIN_MS 10000

/* One command as hiredis takes it (redisAsyncCommandArgv): argv[i] points into buf. */
typedef struct tg_redis_cmd {
    int argc;
    const char *argv[TG_REDIS_CMD_ARGS];
    size_t argvlen[TG_REDIS_CMD_ARGS];
    char buf[TG_REDIS_CMD_BYTES];
    size_t used;
    int overflow; /* an argument did not fit: the command must not be sent */
} tg_redis_cmd_t;

/* "tg:{tenant}:what" or, with a value, "tg:{tenant}:what:value" into out (cap bytes, cut to
 * fit). Returns the length. */
size_t tg_redis_key(char *out, size_t cap, const char *tenant, const char *what, const char *value);

/* A GCRA adjustment to settle: key moved by units x t_us, from at_us (0 = Redis's now). */
typedef struct tg_redis_adj {
    char key[TG_REDIS_KEY_MAX];
    int64_t t_us;  /* the rule's emission interval */
    int64_t units; /* > 0 takes more, < 0 gives back (never below idle) */
    int64_t at_us; /* wall clock of the admission it counts (a journal), 0 = now */
} tg_redis_adj_t;

/* What one request holds in Redis until it is settled: an in-flight slot, a budget
 * reservation, its token rules' charges (settled to the actual count). */
typedef struct tg_redis_hold {
    int mode; /* 0 none, TG_REDIS_HELD (Redis admitted it), TG_REDIS_LOCAL (admitted in
                 memory while Redis was down: its counts are journaled) */
    char tenant[TG_TENANT_SIZE];
    char month[8]; /* "YYYY-MM" of the admission (the budget's keys) */
    char id[TG_REDIS_ID_SIZE];
    int inflight; /* a slot in the tenant's in-flight set */
    int reserved; /* a budget reservation */
    int budget;   /* the tenant has a budget: its cost goes to the shared spend */
    size_t ntok;
    tg_redis_adj_t tok[3]; /* units: the tokens charged */
} tg_redis_hold_t;
enum { TG_REDIS_HELD = 1, TG_REDIS_LOCAL = 2 };

/* The GCRA parameters of a rule in microseconds (policy/ratelimit.h's, from nanoseconds):
 * emission interval t = ceil(period / limit) (the period itself for a limit of 0), tolerance
 * tau = t x (burst - 1). Microseconds because Lua's numbers are doubles: microseconds since
 * 1970 are exact in one, nanoseconds are not. Rounding t up keeps a limit from being
 * exceeded; a rule of more than ~600,000 per minute is held up to 1 us per unit tighter. */
void tg_redis_gcra(const tg_limit_rule_t *r, int64_t *t_us, int64_t *tau_us);

/* EVALSHA sha of an admission of plan for tenant in month: request id, the reservations'
 * time to live. Fills hold (mode TG_REDIS_HELD) with what the request will hold if admitted.
 * 0, or -1 when it does not fit the command (not sent: the caller falls back). */
int tg_redis_admit_cmd(tg_redis_cmd_t *c, const char *sha, const char *tenant, const char *month,
                       const tg_admit_plan_t *plan, const char *id, int64_t ttl_ms,
                       tg_redis_hold_t *hold);

/* EVALSHA sha of a settlement of hold: the slot and reservation given back, cost added to
 * the spend, and the adjustments adj[0..n) applied, once: op is this command's own id (not
 * the admission's: one admission may be settled by several commands), whose marker lives
 * op_ttl_ms. 0 or -1 (too large). */
int tg_redis_settle_cmd(tg_redis_cmd_t *c, const char *sha, const tg_redis_hold_t *hold,
                        const char *op, int64_t op_ttl_ms, int64_t cost, const tg_redis_adj_t *adj,
                        size_t n);

/* A settlement's reply (its integers): TG_REDIS_SETTLED, TG_REDIS_SEEN (a duplicate,
 * nothing done), or -1 for a reply of the wrong shape. */
int tg_redis_settle_reply(const long long *v, size_t n);

/* Whether a settlement first sent at sent_ms (the loop's monotonic clock), its reply lost,
 * may be sent again at now_ms with markers living op_ttl_ms: while its marker, if it ran,
 * surely still exists (TG_REDIS_RESEND_MARGIN_MS to spare). 1 or 0 (dropped: it might be
 * counted twice). */
int tg_redis_resend_ok(uint64_t sent_ms, uint64_t now_ms, int64_t op_ttl_ms);

/* The adjustments that settle hold's token charges to tokens (< 0: unknown, the estimate
 * stands: none); into adj (3 entries). Returns how many. */
size_t tg_redis_token_adj(const tg_redis_hold_t *hold, int64_t tokens, tg_redis_adj_t *adj);

/* The adjustments that undo an admission of plan (every rate rule -1, every token rule
 * its charge), or record one made locally (sign +1, at at_us): into adj (plan->n entries).
 * Returns how many. */
size_t tg_redis_plan_adj(const tg_admit_plan_t *plan, const char *tenant, int sign, int64_t at_us,
                         tg_redis_adj_t *adj);

/* An admission's reply (its integers, in order) into *a as tg_policy_admit would fill it:
 * verdict, reason and message, the RateLimit headers of the rate rule closest to refusing
 * (or the one that refused). *spend: the month-to-date spend Redis holds (-1: the tenant has
 * no budget). ahead_us (plan->n entries, or NULL): each rule's state after the decision,
 * TAT - now in microseconds (tg_policy_mirror); *stamp_us (or NULL): Redis's clock when it
 * decided, which orders the answers (0 when ahead_us is not filled). Returns how many of
 * ahead_us it filled (plan->n, or 0 for a refusal by the cap or the budget, which decides no
 * rule), or -1 for a reply of the wrong shape. */
int tg_redis_admit_reply(const long long *v, size_t n, const tg_admit_plan_t *plan,
                         tg_admission_t *a, int64_t *spend, int64_t *ahead_us, int64_t *stamp_us);

#endif
