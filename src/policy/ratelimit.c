/* GCRA rate limiter: one 64-bit theoretical arrival time (TAT) per key is the whole state.
 * Chosen over a token bucket because it admits exactly `burst` at once, then one per interval,
 * and gives Retry-After and Remaining directly; integer ns, saturating. Long form: the header.
 *
 * Rounding. The emission interval is T = ceil(period / limit), at least 1 ns: rounding up
 * means the long-run rate never exceeds limit/period (it is at most 1 ns per request
 * slower), and since tau = T * (B - 1) is a whole number of intervals, exactly B requests
 * are admitted at once from idle whatever the rounding (limit 3 per 1 s: T = 333,333,334 ns,
 * tau = 666,666,668 ns; three at once admitted, the fourth refused). A limit above
 * period_ns per period is capped at one request per nanosecond.
 *
 * Saturation. The period and the tolerance tau are capped at SPAN_MAX = 2^62 ns (146
 * years): a burst whose refill would take longer (e.g. burst 1e9 at 1 per hour) is cut to
 * the requests that fit, and `remaining` reports that effective burst. With now_ns below
 * 2^63 (292 years of monotonic clock) a TAT, at most now + tau + T, then never overflows;
 * past that a decision whose new TAT would not fit is refused rather than wrapped.
 *
 * Time. Each shard keeps the latest now it has seen (`now_hw`) and decides at
 * max(now_ns, now_hw): a clock that steps back (or a worker whose timestamp is older than
 * one already applied) is "no time passed". This also makes reclamation safe: an entry is
 * dropped only when its TAT <= now_hw, and since now_hw never decreases, a dropped entry
 * would have been idle at every later decision anyway.
 *
 * Table. 2^k shards, each a linear-probing map of 16-byte slots {key, tat} under its own
 * mutex. tat == 0 marks an empty slot (a stored TAT is >= T >= 1), so every 64-bit key,
 * 0 included, is usable. Idle entries met while probing are removed by backward-shift
 * deletion (no tombstones); a shard is rehashed when its load passes 0.7, dropping idle
 * entries and sizing for the live ones (load <= 0.4 after), so it can also shrink. The
 * decision path allocates only in that rehash. */
#include "policy/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define SPAN_MAX      (UINT64_C(1) << 62)
#define MAX_SHARDS    (UINT64_C(1) << 16) /* slot index uses the hash bits above the shard's */
#define MIN_CAP       8
#define MAX_RULES     8
#define SHARD_BITS_AT 16

typedef struct slot {
    uint64_t key;
    uint64_t tat;  /* 0 = empty */
    uint64_t seen; /* a mirrored state's stamp (the shared limiter's clock); 0: none */
} slot_t;

typedef struct shard {
    _Alignas(64) pthread_mutex_t mu; /* guards every field below */
    slot_t *slots;
    size_t mask;     /* capacity - 1; capacity is a power of two >= MIN_CAP */
    size_t count;    /* occupied slots, idle ones not yet reclaimed included */
    uint64_t now_hw; /* latest now applied in this shard; never decreases */
} shard_t;

struct tg_limiter {
    shard_t *shards;
    size_t nshards; /* power of two */
};

/* Emission interval and tolerance of a rule with limit > 0. */
typedef struct params {
    uint64_t t;   /* T, >= 1 */
    uint64_t tau; /* T * (B - 1), saturated at SPAN_MAX */
    uint64_t add; /* T * cost: what one admission adds to the TAT, saturated at SPAN_MAX */
} params_t;

/* ---- hashing ------------------------------------------------------------ */

static uint64_t mix64(uint64_t z) /* splitmix64 finalizer: a bijection with full avalanche */
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        h = (h ^ *p) * UINT64_C(0x100000001b3);
    /* NUL cannot occur inside a C string, so it separates fields unambiguously:
     * ("ab","c","") and ("a","bc","") hash different byte strings. */
    return h * UINT64_C(0x100000001b3);
}

uint64_t tg_limit_key(const char *tenant, const char *scope, const char *value)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    h = fnv1a(h, tenant);
    h = fnv1a(h, scope);
    h = fnv1a(h, value);
    h = mix64(h);
    /* Callers (the policy snapshot) use 0 as "no key". */
    return h ? h : UINT64_C(0x9e3779b97f4a7c15);
}

/* The table's own hash of a key: callers may pass unmixed keys (tests use 1, 2, 3...). The
 * low bits pick the shard, the bits above SHARD_BITS_AT the home slot. */
static uint64_t table_hash(uint64_t key)
{
    return mix64(key ^ UINT64_C(0x5851f42d4c957f2d));
}

static size_t home_of(const shard_t *sh, uint64_t key)
{
    return (size_t)(table_hash(key) >> SHARD_BITS_AT) & sh->mask;
}

/* ---- GCRA arithmetic ---------------------------------------------------- */

static uint64_t capped_period(const tg_limit_rule_t *r)
{
    return r->period_ns < SPAN_MAX ? r->period_ns : SPAN_MAX;
}

static params_t params_of(const tg_limit_rule_t *r)
{
    params_t p;
    uint64_t period = capped_period(r);
    p.t = period / r->limit + (period % r->limit != 0);
    if (p.t == 0) p.t = 1;
    uint64_t b1 = (r->burst ? r->burst : r->limit) - 1;
    p.tau = b1 > SPAN_MAX / p.t ? SPAN_MAX : p.t * b1;
    uint64_t cost = r->cost ? r->cost : 1;
    p.add = cost > SPAN_MAX / p.t ? SPAN_MAX : p.t * cost;
    return p;
}

/* State seen at `now` as d = TAT - now (0 when idle). Fills info for that state: what is
 * admitted from here, how long until idle, how long until one more is admitted. */
static void describe(const params_t *p, uint64_t d, tg_limit_info_t *info)
{
    info->remaining = d <= p->tau ? (p->tau - d) / p->t + 1 : 0;
    info->reset_ns = d;
    info->retry_after_ns = d > p->tau ? d - p->tau : 0;
}

/* One GCRA step. tat: stored TAT (0 = absent). Returns 1 and sets *new_tat when admitted;
 * info describes the state after the decision either way. */
static int decide(const params_t *p, uint64_t tat, uint64_t now, uint64_t *new_tat,
                  tg_limit_info_t *info)
{
    uint64_t d = tat > now ? tat - now : 0;
    if (d > p->tau) {
        describe(p, d, info);
        return 0;
    }
    uint64_t d2 = d + p->add; /* <= 2^63: both are capped at 2^62 */
    if (now > UINT64_MAX - d2) {
        /* Outside the clock's domain (now >= 2^63): refuse rather than wrap. */
        describe(p, d, info);
        info->remaining = 0;
        info->retry_after_ns = p->t;
        return 0;
    }
    *new_tat = now + d2;
    describe(p, d2, info);
    return 1;
}

static void refuse_all(const tg_limit_rule_t *r, tg_limit_info_t *info)
{
    uint64_t period = capped_period(r);
    info->remaining = 0;
    info->reset_ns = period;
    info->retry_after_ns = period;
}

/* ---- the shard map (caller holds sh->mu) -------------------------------- */

/* Removes slot i by backward shift: later members of the cluster that may live at or
 * before i move back, so every key stays reachable from its home without tombstones. */
static void delete_at(shard_t *sh, size_t i)
{
    size_t mask = sh->mask;
    for (size_t j = (i + 1) & mask; sh->slots[j].tat != 0; j = (j + 1) & mask) {
        size_t home = home_of(sh, sh->slots[j].key);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            sh->slots[i] = sh->slots[j];
            i = j;
        }
    }
    sh->slots[i].tat = 0;
    sh->count--;
}

/* The slot holding key, or the empty slot where it would go (*found = 0). Idle entries of
 * other keys met on the way are reclaimed. Terminates: the table always has an empty slot. */
static size_t find(shard_t *sh, uint64_t key, uint64_t now, int *found)
{
    size_t i = home_of(sh, key);
    for (;;) {
        slot_t *s = &sh->slots[i];
        if (s->tat == 0) {
            *found = 0;
            return i;
        }
        if (s->key == key) {
            *found = 1;
            return i;
        }
        if (s->tat <= now) {
            delete_at(sh, i); /* slot i now holds a later member, or is empty: look again */
            continue;
        }
        i = (i + 1) & sh->mask;
    }
}

/* Makes room for `need` more entries. Rehashes when the load would pass 0.7, keeping only
 * live entries and sizing for load <= 0.4 (all live: the capacity doubles). Returns 0 when the
 * entries fit (a failed allocation is tolerated while an empty slot would remain), -1 otherwise. */
static int reserve(shard_t *sh, size_t need, uint64_t now)
{
    size_t cap = sh->mask + 1;
    if ((sh->count + need) * 10 <= cap * 7) return 0;
    size_t live = 0;
    for (size_t i = 0; i < cap; i++)
        if (sh->slots[i].tat > now) live++;
    size_t ncap = MIN_CAP;
    while ((live + need) * 10 > ncap * 4)
        ncap *= 2;
    slot_t *ns = calloc(ncap, sizeof *ns);
    if (!ns) return sh->count + need < cap ? 0 : -1;
    slot_t *old = sh->slots;
    sh->slots = ns;
    sh->mask = ncap - 1;
    sh->count = live;
    for (size_t i = 0; i < cap; i++) {
        if (old[i].tat <= now) continue;
        size_t j = home_of(sh, old[i].key);
        while (ns[j].tat != 0)
            j = (j + 1) & sh->mask;
        ns[j] = old[i];
    }
    free(old);
    return 0;
}

/* Stores tat for key (which has room reserved); a new entry carries stamp `seen`. */
static void put(shard_t *sh, uint64_t key, uint64_t tat, uint64_t seen, uint64_t now)
{
    int found;
    size_t i = find(sh, key, now, &found);
    sh->slots[i].key = key;
    sh->slots[i].tat = tat;
    if (!found) {
        sh->slots[i].seen = seen;
        sh->count++;
    }
}

static uint64_t get(shard_t *sh, uint64_t key, uint64_t now)
{
    int found;
    size_t i = find(sh, key, now, &found);
    return found ? sh->slots[i].tat : 0;
}

/* ---- public ------------------------------------------------------------- */

static size_t shard_index(const tg_limiter_t *l, uint64_t key)
{
    return (size_t)table_hash(key) & (l->nshards - 1);
}

/* Locks a shard and advances its clock; returns the time to decide at. */
static uint64_t lock_at(shard_t *sh, uint64_t now)
{
    pthread_mutex_lock(&sh->mu);
    if (now < sh->now_hw) now = sh->now_hw;
    sh->now_hw = now;
    return now;
}

tg_limiter_t *tg_limiter_new(size_t shards)
{
    size_t n = 1;
    while (n < shards && n < MAX_SHARDS)
        n *= 2;
    tg_limiter_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->shards = aligned_alloc(_Alignof(shard_t), n * sizeof(shard_t));
    if (!l->shards) goto err;
    memset(l->shards, 0, n * sizeof(shard_t));
    for (l->nshards = 0; l->nshards < n; l->nshards++) {
        shard_t *sh = &l->shards[l->nshards];
        sh->slots = calloc(MIN_CAP, sizeof(slot_t));
        if (!sh->slots) goto err;
        sh->mask = MIN_CAP - 1;
        pthread_mutex_init(&sh->mu, NULL);
    }
    return l;
err:
    tg_limiter_free(l);
    return NULL;
}

void tg_limiter_free(tg_limiter_t *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->nshards; i++) {
        pthread_mutex_destroy(&l->shards[i].mu);
        free(l->shards[i].slots);
    }
    free(l->shards);
    free(l);
}

tg_limit_result_t tg_limit_check(tg_limiter_t *l, uint64_t key, const tg_limit_rule_t *rule,
                                 uint64_t now_ns, tg_limit_info_t *info)
{
    tg_limit_info_t scratch;
    if (!info) info = &scratch;
    info->limit = rule->limit;
    if (rule->limit == 0) {
        refuse_all(rule, info);
        return TG_LIMIT_REJECT;
    }
    params_t p = params_of(rule);
    shard_t *sh = &l->shards[shard_index(l, key)];
    uint64_t now = lock_at(sh, now_ns);
    int found;
    size_t i = find(sh, key, now, &found);
    uint64_t tat = found ? sh->slots[i].tat : 0, new_tat = 0;
    tg_limit_result_t r = TG_LIMIT_REJECT;
    if (decide(&p, tat, now, &new_tat, info)) {
        r = TG_LIMIT_OK;
        if (found) {
            sh->slots[i].tat = new_tat;
        } else if (reserve(sh, 1, now) == 0) {
            put(sh, key, new_tat, 0, now); /* finds again: a rehash may have moved things */
        } else {
            /* Out of memory with the shard full: the decision cannot be recorded, and an
             * unrecorded admission would break exactness. Refuse. */
            describe(&p, 0, info);
            info->remaining = 0;
            info->retry_after_ns = p.t;
            r = TG_LIMIT_REJECT;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return r;
}

tg_limit_result_t tg_limit_check_all(tg_limiter_t *l, const uint64_t *keys,
                                     const tg_limit_rule_t *rules, size_t n, uint64_t now_ns,
                                     tg_limit_info_t *info, size_t *which)
{
    TG_ASSERT(n <= MAX_RULES);
    size_t sidx[MAX_RULES], locked[MAX_RULES], nlocked = 0;
    params_t p[MAX_RULES];
    uint64_t stored[MAX_RULES], new_tat[MAX_RULES];
    int admit[MAX_RULES];
    tg_limit_info_t scratch[MAX_RULES];
    if (!info) info = scratch;
    if (which) *which = 0;

    /* Lock order: ascending shard index, each once. Any two callers then take their
     * common shards in the same order, so they cannot deadlock. */
    for (size_t i = 0; i < n; i++) {
        sidx[i] = shard_index(l, keys[i]);
        size_t j = nlocked;
        while (j > 0 && locked[j - 1] > sidx[i])
            j--;
        if (j > 0 && locked[j - 1] == sidx[i]) continue;
        memmove(&locked[j + 1], &locked[j], (nlocked - j) * sizeof locked[0]);
        locked[j] = sidx[i];
        nlocked++;
    }
    uint64_t now = now_ns;
    for (size_t k = 0; k < nlocked; k++)
        now = lock_at(&l->shards[locked[k]], now);
    for (size_t k = 0; k < nlocked; k++) /* one time for every rule of this decision */
        l->shards[locked[k]].now_hw = now;

    /* Evaluate against the current state. A key given twice is evaluated in order, the
     * later rule seeing the earlier one's tentative TAT. */
    int all = 1;
    uint64_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        info[i].limit = rules[i].limit;
        admit[i] = 0;
        stored[i] = 0;
        if (rules[i].limit == 0) {
            refuse_all(&rules[i], &info[i]);
        } else {
            p[i] = params_of(&rules[i]);
            uint64_t tat = stored[i] = get(&l->shards[sidx[i]], keys[i], now);
            for (size_t j = 0; j < i; j++)
                if (keys[j] == keys[i] && admit[j]) tat = new_tat[j];
            admit[i] = decide(&p[i], tat, now, &new_tat[i], &info[i]);
        }
        if (!admit[i]) {
            if (all || info[i].retry_after_ns > worst) {
                worst = info[i].retry_after_ns;
                if (which) *which = i;
            }
            all = 0;
        }
    }

    if (all) {
        /* Room first, for every key, so that the writes below cannot fail half way. */
        for (size_t k = 0; k < nlocked && all; k++) {
            size_t need = 0;
            for (size_t i = 0; i < n; i++)
                need += sidx[i] == locked[k];
            if (reserve(&l->shards[locked[k]], need, now) != 0) all = 0;
        }
        if (all) {
            for (size_t i = 0; i < n; i++)
                put(&l->shards[sidx[i]], keys[i], new_tat[i], 0, now);
        } else {
            /* Out of memory with a shard full: refuse (see tg_limit_check). */
            for (size_t i = 0; i < n; i++) {
                describe(&p[i], stored[i] > now ? stored[i] - now : 0, &info[i]);
                info[i].remaining = 0;
                info[i].retry_after_ns = p[i].t;
            }
        }
    } else {
        /* Nothing changes: the rules that would have admitted report the unchanged state
         * (this request not counted). */
        for (size_t i = 0; i < n; i++)
            if (admit[i]) describe(&p[i], stored[i] > now ? stored[i] - now : 0, &info[i]);
    }
    for (size_t k = nlocked; k-- > 0;)
        pthread_mutex_unlock(&l->shards[locked[k]].mu);
    return all ? TG_LIMIT_OK : TG_LIMIT_REJECT;
}

void tg_limit_adjust(tg_limiter_t *l, uint64_t key, const tg_limit_rule_t *rule, int64_t units,
                     uint64_t now_ns)
{
    if (units == 0 || rule->limit == 0) return;
    params_t p = params_of(rule);
    uint64_t mag = units > 0 ? (uint64_t)units : (uint64_t)0 - (uint64_t)units;
    uint64_t span = mag > SPAN_MAX / p.t ? SPAN_MAX : mag * p.t;
    shard_t *sh = &l->shards[shard_index(l, key)];
    uint64_t now = lock_at(sh, now_ns);
    int found;
    size_t i = find(sh, key, now, &found);
    uint64_t tat = found ? sh->slots[i].tat : 0;
    if (units > 0) {
        uint64_t base = tat > now ? tat - now : 0; /* <= 2^62 + 2^62 at most */
        uint64_t d = base + span > SPAN_MAX * 2 ? SPAN_MAX * 2 : base + span;
        if (now <= UINT64_MAX - d) {
            if (found)
                sh->slots[i].tat = now + d;
            else if (reserve(sh, 1, now) == 0)
                put(sh, key, now + d, 0, now);
        }
    } else if (found) {
        /* A refund never takes the state below idle (no credit is banked). */
        uint64_t nt = tat > now && tat - now > span ? tat - span : now;
        sh->slots[i].tat = nt ? nt : 1;
    }
    pthread_mutex_unlock(&sh->mu);
}

void tg_limit_mirror(tg_limiter_t *l, uint64_t key, uint64_t ahead_ns, uint64_t stamp,
                     uint64_t now_ns)
{
    if (ahead_ns > SPAN_MAX * 2) ahead_ns = SPAN_MAX * 2;
    shard_t *sh = &l->shards[shard_index(l, key)];
    uint64_t now = lock_at(sh, now_ns);
    int found;
    size_t i = find(sh, key, now, &found);
    if (now <= UINT64_MAX - ahead_ns) {
        if (found) {
            /* Answers reach the workers in any order: an older state never replaces a
             * newer one while that one lasts (once idle, any copy starts afresh: a Redis
             * that failed over to a clock behind is followed). */
            if (stamp >= sh->slots[i].seen || sh->slots[i].tat <= now) {
                sh->slots[i].tat = now + ahead_ns ? now + ahead_ns : 1;
                sh->slots[i].seen = stamp;
            }
        } else if (ahead_ns && reserve(sh, 1, now) == 0) {
            put(sh, key, now + ahead_ns, stamp, now);
        }
    }
    pthread_mutex_unlock(&sh->mu);
}

double tg_limit_usage(tg_limiter_t *l, uint64_t key, const tg_limit_rule_t *rule, uint64_t now_ns)
{
    if (rule->limit == 0) return 0;
    params_t p = params_of(rule);
    shard_t *sh = &l->shards[shard_index(l, key)];
    uint64_t now = lock_at(sh, now_ns);
    uint64_t tat = get(sh, key, now);
    pthread_mutex_unlock(&sh->mu);
    uint64_t d = tat > now ? tat - now : 0;
    return (double)d / ((double)p.t * (double)rule->limit);
}

size_t tg_limiter_entries(tg_limiter_t *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->nshards; i++) {
        pthread_mutex_lock(&l->shards[i].mu);
        n += l->shards[i].count;
        pthread_mutex_unlock(&l->shards[i].mu);
    }
    return n;
}

size_t tg_limiter_bytes(tg_limiter_t *l)
{
    size_t n = sizeof *l + l->nshards * sizeof(shard_t);
    for (size_t i = 0; i < l->nshards; i++) {
        pthread_mutex_lock(&l->shards[i].mu);
        n += (l->shards[i].mask + 1) * sizeof(slot_t);
        pthread_mutex_unlock(&l->shards[i].mu);
    }
    return n;
}
