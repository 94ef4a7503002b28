/* Per-tenant metrics: see metrics.h for the threads and the guarantees.
 *
 * Memory of a block: series are carved from 64 KiB chunks that never move (a scrape may be
 * walking them), chained per family, newest first; the chain's head is published with a
 * release store after the series is filled, and the scrape loads it with acquire. The
 * block's two kinds of tables (label value -> id, ids -> series) are the worker's alone and
 * grow by rehashing when a new value or series appears: only then does observing allocate.
 *
 * The registry's interners map a label value (made valid UTF-8) to an id under one mutex.
 * Once an interner is full it never changes again, so it is read without the mutex: an
 * unknown value met after that costs a probe, never a lock, however many a client sends. */
#include "observe/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

const int64_t tg_metrics_bucket_us[TG_METRICS_BUCKETS] = {
    5000,    10000,   25000,   50000,    100000,   250000,   500000,
    1000000, 2500000, 5000000, 10000000, 20000000, 30000000, 60000000,
};

/* ---- label values ------------------------------------------------------------------- */

enum { K_TENANT, K_ROUTE, K_MODEL, K_TOOL, K_REASON, NKINDS };

#define OTHER     "_other"
#define RAW_MAX   256               /* bytes of a label value read (a longer one is cut) */
#define CLEAN_MAX (RAW_MAX * 3 + 1) /* each byte may become U+FFFD (3 bytes) */

typedef struct name {
    uint32_t len;
    char s[]; /* valid UTF-8 without control characters but newline; NUL-terminated */
} name_t;

/* The registry's names of one kind. ids 1..cap are names; 0 is "_other". */
typedef struct interner {
    size_t cap;
    atomic_size_t n; /* ids 1..n are published; written under the registry's mu (release),
                        read by workers and the scrape (acquire); n == cap: frozen */
    name_t **names;  /* [cap + 1]; names[id] written once, under mu, before n covers it */
    uint32_t *tab;   /* ids by hash of the name, 0 = empty; fixed size (more than twice
                        cap): written under mu, read without it once frozen */
    size_t tabmask;
} interner_t;

/* A worker's own cache of one kind: a raw value (as the event holds it) -> its id. */
typedef struct centry {
    uint64_t h;
    char *raw; /* the worker's copy; NULL = empty slot */
    uint32_t len;
    uint32_t id;
} centry_t;

typedef struct cache {
    centry_t *e;
    size_t cap, n;    /* cap: a power of two, or 0 */
    const char *memo; /* the raw value met last (an entry's copy), or NULL: a worker's */
    uint32_t memo_id; /* requests mostly repeat the last tenant, route and model, and a
                         compare is cheaper than a hash */
} cache_t;

/* ---- series ------------------------------------------------------------------------- */

enum { F_TR = 1, F_TM, F_T, F_RJ, F_TOOL, NFAMS };

#define NOUTCOMES 3
#define NCLASSES  6 /* 1xx 2xx 3xx 4xx 5xx, other (no status: a request that never got one) */
/* tenant x route: requests by outcome and class, latency buckets (+Inf last), latency sum,
 * body bytes in and out, then the upstream latency's buckets and sum (requests that made
 * an upstream call only). */
#define V_REQ(o, c) ((o)*NCLASSES + (c))
#define V_BKT       (NOUTCOMES * NCLASSES)
#define V_SUM       (V_BKT + TG_METRICS_BUCKETS + 1)
#define V_BIN       (V_SUM + 1)
#define V_BOUT      (V_SUM + 2)
#define V_UBKT      (V_SUM + 3)
#define V_USUM      (V_UBKT + TG_METRICS_BUCKETS + 1)
#define NV_TR       (V_USUM + 1)
/* tenant x model: tokens in, out, cached. tenant: cost. tenant x reason: rejections.
 * tenant x tool: calls, errors. */
static const size_t nvals[NFAMS] = {
    [F_TR] = NV_TR, [F_TM] = 3, [F_T] = 1, [F_RJ] = 1, [F_TOOL] = 2};

typedef struct series {
    struct series *next; /* older series of the family; set before publication */
    uint32_t a, b;       /* label ids (tenant; route, model, reason or tool) */
    atomic_uint_least64_t v[];
} series_t;

typedef struct ientry {
    uint64_t key; /* family << 48 | a << 24 | b; 0 = empty (families start at 1) */
    series_t *s;
} ientry_t;

#define CHUNK 65536

typedef struct chunk {
    struct chunk *next;
    size_t used;
    _Alignas(16) unsigned char mem[];
} chunk_t;

struct tg_metrics_block {
    tg_metrics_t *m;
    tg_metrics_block_t *next; /* the registry's list; set before publication */
    /* Published to the scrape: each family's newest series (release / acquire). */
    _Atomic(series_t *) head[NFAMS];
    /* The writer's own. */
    cache_t cache[NKINDS];
    ientry_t *idx;
    size_t idxcap, idxn;
    uint64_t last_key[NFAMS]; /* each family's series found last (0: none) */
    series_t *last[NFAMS];
    chunk_t *chunks;
};

struct tg_metrics {
    uint64_t seed; /* immutable */
    pthread_mutex_t mu;
    interner_t in[NKINDS];
    tg_metrics_block_t *blocks; /* newest first; under mu */
};

static inline void add(atomic_uint_least64_t *c, uint64_t n)
{
    /* One writer per counter: no read-modify-write needed, only no tearing. Saturating: a
     * counter never goes down (Prometheus would read a wrap as a reset). */
    uint64_t v = atomic_load_explicit(c, memory_order_relaxed), sum;
    if (__builtin_add_overflow(v, n, &sum)) sum = UINT64_MAX;
    atomic_store_explicit(c, sum, memory_order_relaxed);
}

static inline uint64_t get(atomic_uint_least64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* FNV-1a 64 over the bytes, seeded, then mixed; *len gets the length (at most max). */
static inline uint64_t hash_str(uint64_t seed, const char *s, size_t max, size_t *len)
{
    uint64_t h = 14695981039346656037ull ^ seed;
    size_t i = 0;
    for (; i < max && s[i]; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    *len = i;
    return mix64(h ^ i);
}

static uint64_t hash_bytes(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return mix64(h ^ n);
}

/* s[0..n) as valid UTF-8 (the rules of Go's utf8.Valid, which Prometheus applies to label
 * values) into out, each invalid byte and control character but newline as U+FFFD.
 * Returns the length written (at most 3n). */
static size_t clean_utf8(const char *s, size_t n, char *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len = 0;
        if (c < 0x80) {
            len = (c >= 0x20 && c != 0x7f) || c == '\n';
        } else if (c >= 0xc2 && c <= 0xf4) {
            unsigned lo = 0x80, hi = 0xbf;
            size_t need = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f; /* no surrogates */
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f; /* at most U+10FFFF */
            if (i + need < n) {
                len = 1 + need;
                if (p[i + 1] < lo || p[i + 1] > hi) len = 0;
                for (size_t k = 2; len && k <= need; k++)
                    if (p[i + k] < 0x80 || p[i + k] > 0xbf) len = 0;
            }
        }
        if (len) {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    return o;
}

static uint32_t interner_find(const interner_t *in, uint64_t h, const char *s, size_t n)
{
    for (size_t i = h & in->tabmask;; i = (i + 1) & in->tabmask) {
        uint32_t id = in->tab[i];
        if (!id) return 0;
        const name_t *nm = in->names[id];
        if (nm->len == n && memcmp(nm->s, s, n) == 0) return id;
    }
}

/* The id of the clean value s[0..n) (hash h): found, or added while there is room; 0
 * ("_other") when the interner is full or out of memory. */
static uint32_t interner_get(tg_metrics_t *m, interner_t *in, uint64_t h, const char *s, size_t n)
{
    if (atomic_load_explicit(&in->n, memory_order_acquire) >= in->cap)
        return interner_find(in, h, s, n); /* frozen: read without the lock */
    pthread_mutex_lock(&m->mu);
    uint32_t id = interner_find(in, h, s, n);
    size_t cnt = atomic_load_explicit(&in->n, memory_order_relaxed);
    if (!id && cnt < in->cap) {
        name_t *nm = malloc(sizeof *nm + n + 1);
        if (nm) {
            nm->len = (uint32_t)n;
            memcpy(nm->s, s, n);
            nm->s[n] = '\0';
            id = (uint32_t)cnt + 1;
            in->names[id] = nm;
            size_t i = h & in->tabmask;
            while (in->tab[i])
                i = (i + 1) & in->tabmask;
            in->tab[i] = id;
            atomic_store_explicit(&in->n, cnt + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return id;
}

static int cache_put(cache_t *c, uint64_t h, const char *raw, size_t len, uint32_t id)
{
    if ((c->n + 1) * 2 > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        centry_t *ne = calloc(ncap, sizeof *ne);
        if (!ne) return -1;
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->e[i].raw) continue;
            size_t j = c->e[i].h & (ncap - 1);
            while (ne[j].raw)
                j = (j + 1) & (ncap - 1);
            ne[j] = c->e[i];
        }
        free(c->e);
        c->e = ne;
        c->cap = ncap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, raw, len);
    copy[len] = '\0';
    size_t j = h & (c->cap - 1);
    while (c->e[j].raw)
        j = (j + 1) & (c->cap - 1);
    c->e[j] = (centry_t){.h = h, .raw = copy, .len = (uint32_t)len, .id = id};
    c->n++;
    c->memo = copy;
    c->memo_id = id;
    return 0;
}

/* The id of the raw label value s (NUL-terminated; its first RAW_MAX bytes). */
static uint32_t intern(tg_metrics_block_t *b, int kind, const char *s)
{
    cache_t *c = &b->cache[kind];
    if (c->memo && strncmp(s, c->memo, RAW_MAX) == 0) return c->memo_id;
    size_t len;
    uint64_t h = hash_str(b->m->seed, s, RAW_MAX, &len);
    if (c->cap) {
        size_t mask = c->cap - 1;
        for (size_t i = h & mask; c->e[i].raw; i = (i + 1) & mask)
            if (c->e[i].h == h && c->e[i].len == len && memcmp(c->e[i].raw, s, len) == 0) {
                c->memo = c->e[i].raw;
                c->memo_id = c->e[i].id;
                return c->e[i].id;
            }
    }
    /* First time this worker meets s. */
    char clean[CLEAN_MAX];
    size_t n = clean_utf8(s, len, clean);
    uint32_t id = 0;
    if (!(n == sizeof OTHER - 1 && memcmp(clean, OTHER, n) == 0)) {
        id = interner_get(b->m, &b->m->in[kind], hash_bytes(b->m->seed, clean, n), clean, n);
        /* Not named and the interner full: "_other", and not cached, so that values a
         * client invents cost no memory. */
        if (!id) return 0;
    }
    /* Cached only when s is its own clean form: spellings that clean to a value already
     * named (control bytes, invalid UTF-8, each its own raw string) would otherwise each
     * cost an entry, without bound. They are cleaned again each time instead. */
    if (n == len && memcmp(clean, s, len) == 0)
        (void)cache_put(c, h, s, len, id); /* out of memory: looked up again next time */
    return id;
}

/* ---- a block's series ---------------------------------------------------------------- */

static series_t *series_alloc(tg_metrics_block_t *b, int fam)
{
    size_t sz = sizeof(series_t) + nvals[fam] * sizeof(atomic_uint_least64_t);
    sz = (sz + 15) & ~(size_t)15;
    chunk_t *ch = b->chunks;
    if (!ch || ch->used + sz > CHUNK - sizeof(chunk_t)) {
        ch = calloc(1, CHUNK);
        if (!ch) return NULL;
        ch->next = b->chunks;
        b->chunks = ch;
    }
    series_t *s = (series_t *)(ch->mem + ch->used);
    ch->used += sz;
    return s; /* zeroed by calloc */
}

static int idx_grow(tg_metrics_block_t *b)
{
    size_t ncap = b->idxcap ? b->idxcap * 2 : 64;
    ientry_t *ne = calloc(ncap, sizeof *ne);
    if (!ne) return -1;
    for (size_t i = 0; i < b->idxcap; i++) {
        if (!b->idx[i].key) continue;
        size_t j = mix64(b->idx[i].key) & (ncap - 1);
        while (ne[j].key)
            j = (j + 1) & (ncap - 1);
        ne[j] = b->idx[i];
    }
    free(b->idx);
    b->idx = ne;
    b->idxcap = ncap;
    return 0;
}

/* The block's series of family fam for the ids (a, c): found, or made and published.
 * NULL when out of memory. */
static series_t *find(tg_metrics_block_t *b, int fam, uint32_t a, uint32_t c)
{
    uint64_t key = (uint64_t)fam << 48 | (uint64_t)a << 24 | c;
    if (b->last_key[fam] == key) return b->last[fam];
    uint64_t h = mix64(key);
    if (b->idxcap) {
        size_t mask = b->idxcap - 1;
        for (size_t i = h & mask; b->idx[i].key; i = (i + 1) & mask)
            if (b->idx[i].key == key) {
                b->last_key[fam] = key;
                return b->last[fam] = b->idx[i].s;
            }
    }
    if ((b->idxn + 1) * 2 > b->idxcap && idx_grow(b) < 0) return NULL;
    series_t *s = series_alloc(b, fam);
    if (!s) return NULL;
    s->a = a;
    s->b = c;
    s->next = atomic_load_explicit(&b->head[fam], memory_order_relaxed);
    atomic_store_explicit(&b->head[fam], s, memory_order_release);
    size_t mask = b->idxcap - 1, i = h & mask;
    while (b->idx[i].key)
        i = (i + 1) & mask;
    b->idx[i] = (ientry_t){key, s};
    b->idxn++;
    b->last_key[fam] = key;
    return b->last[fam] = s;
}

/* ---- observing ---------------------------------------------------------------------- */

static inline int status_class(int32_t status)
{
    return status >= 100 && status <= 599 ? status / 100 - 1 : NCLASSES - 1;
}

/* The latency bucket of us: the first bound at or above it, TG_METRICS_BUCKETS for +Inf. */
static inline int bucket(uint64_t us)
{
    int i = 0;
    while (i < TG_METRICS_BUCKETS && us > (uint64_t)tg_metrics_bucket_us[i])
        i++;
    return i;
}

void tg_metrics_observe(tg_metrics_block_t *b, const tg_event_t *ev)
{
    if (!b) return;
    uint64_t n = (uint64_t)tg_event_count(ev);
    uint32_t t = intern(b, K_TENANT, ev->tenant);
    series_t *s = find(b, F_TR, t, intern(b, K_ROUTE, ev->route));
    if (s) {
        int o = ev->outcome >= 0 && ev->outcome < NOUTCOMES ? ev->outcome : TG_OUTCOME_FAILED;
        add(&s->v[V_REQ(o, status_class(ev->status))], n);
        uint64_t lat = ev->latency_us > 0 ? (uint64_t)ev->latency_us : 0;
        add(&s->v[V_BKT + bucket(lat)], n);
        add(&s->v[V_SUM], lat * n);
        if (ev->upstream_latency_us > 0) { /* an aggregate (of refusals) never has one */
            uint64_t up = (uint64_t)ev->upstream_latency_us;
            add(&s->v[V_UBKT + bucket(up)], 1);
            add(&s->v[V_USUM], up);
        }
        if (ev->bytes_in > 0) add(&s->v[V_BIN], (uint64_t)ev->bytes_in);
        if (ev->bytes_out > 0) add(&s->v[V_BOUT], (uint64_t)ev->bytes_out);
    }
    if (ev->tokens_in > 0 || ev->tokens_out > 0 || ev->tokens_cached > 0) {
        s = find(b, F_TM, t, intern(b, K_MODEL, ev->model));
        if (s) {
            if (ev->tokens_in > 0) add(&s->v[0], (uint64_t)ev->tokens_in);
            if (ev->tokens_out > 0) add(&s->v[1], (uint64_t)ev->tokens_out);
            if (ev->tokens_cached > 0) add(&s->v[2], (uint64_t)ev->tokens_cached);
        }
    }
    if (ev->cost_micros > 0 && (s = find(b, F_T, t, 0))) add(&s->v[0], (uint64_t)ev->cost_micros);
    if (ev->outcome == TG_OUTCOME_REJECTED &&
        (s = find(b, F_RJ, t, intern(b, K_REASON, ev->reason))))
        add(&s->v[0], n);
}

void tg_metrics_observe_tool(tg_metrics_block_t *b, const char *tenant, const char *tool, int error)
{
    if (!b) return;
    series_t *s = find(b, F_TOOL, intern(b, K_TENANT, tenant), intern(b, K_TOOL, tool));
    if (!s) return;
    add(&s->v[0], 1);
    if (error) add(&s->v[1], 1);
}

/* ---- the registry ------------------------------------------------------------------- */

static int interner_init(interner_t *in, size_t cap)
{
    in->cap = cap;
    atomic_init(&in->n, 0);
    size_t tab = 16;
    while (tab < cap * 2 + 2)
        tab *= 2;
    in->tabmask = tab - 1;
    in->names = calloc(cap + 1, sizeof *in->names);
    in->tab = calloc(tab, sizeof *in->tab);
    if (!in->names || !in->tab) return -1;
    name_t *o = malloc(sizeof *o + sizeof OTHER);
    if (!o) return -1;
    o->len = sizeof OTHER - 1;
    memcpy(o->s, OTHER, sizeof OTHER);
    in->names[0] = o;
    return 0;
}

static size_t cap_or(size_t v, size_t def)
{
    if (!v) return def;
    return v > TG_METRICS_CAP_LIMIT ? TG_METRICS_CAP_LIMIT : v;
}

tg_metrics_t *tg_metrics_new(const tg_metrics_caps_t *caps)
{
    tg_metrics_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (getrandom(&m->seed, sizeof m->seed, GRND_NONBLOCK) != (ssize_t)sizeof m->seed)
        m->seed = (uint64_t)(uintptr_t)m * 0x9e3779b97f4a7c15ull; /* no entropy yet: still varies */
    pthread_mutex_init(&m->mu, NULL);
    const size_t cap[NKINDS] = {
        [K_TENANT] = cap_or(caps ? caps->max_tenants : 0, TG_METRICS_MAX_TENANTS),
        [K_ROUTE] = TG_METRICS_MAX_ROUTES,
        [K_MODEL] = cap_or(caps ? caps->max_models : 0, TG_METRICS_MAX_MODELS),
        [K_TOOL] = cap_or(caps ? caps->max_tools : 0, TG_METRICS_MAX_TOOLS),
        [K_REASON] = TG_METRICS_MAX_REASONS,
    };
    for (int k = 0; k < NKINDS; k++)
        if (interner_init(&m->in[k], cap[k]) < 0) {
            tg_metrics_free(m);
            return NULL;
        }
    return m;
}

static void block_free(tg_metrics_block_t *b)
{
    for (int k = 0; k < NKINDS; k++) {
        for (size_t i = 0; i < b->cache[k].cap; i++)
            free(b->cache[k].e[i].raw);
        free(b->cache[k].e);
    }
    free(b->idx);
    for (chunk_t *c = b->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(b);
}

void tg_metrics_free(tg_metrics_t *m)
{
    if (!m) return;
    for (tg_metrics_block_t *b = m->blocks, *next; b; b = next) {
        next = b->next;
        block_free(b);
    }
    for (int k = 0; k < NKINDS; k++) {
        interner_t *in = &m->in[k];
        if (in->names) {
            size_t n = atomic_load_explicit(&in->n, memory_order_relaxed);
            for (size_t i = 0; i <= n; i++)
                free(in->names[i]);
        }
        free(in->names);
        free(in->tab);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

tg_metrics_block_t *tg_metrics_block_new(tg_metrics_t *m)
{
    tg_metrics_block_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->m = m;
    for (int f = 0; f < NFAMS; f++)
        atomic_init(&b->head[f], NULL);
    pthread_mutex_lock(&m->mu);
    b->next = m->blocks;
    m->blocks = b;
    pthread_mutex_unlock(&m->mu);
    return b;
}

/* ---- rendering ---------------------------------------------------------------------- */

int tg_metrics_escape(tg_buf_t *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (!esc) continue;
        if (tg_buf_add(out, s + run, i - run) < 0 || tg_buf_add(out, esc, 2) < 0) return -1;
        run = i + 1;
    }
    return tg_buf_add(out, s + run, n - run) < 0 ? -1 : 0;
}

static int puts_(tg_buf_t *out, const char *s)
{
    return tg_buf_add(out, s, strlen(s)) < 0 ? -1 : 0;
}

static int putu(tg_buf_t *out, unsigned long long v)
{
    char tmp[24];
    return tg_buf_add(out, tmp, (size_t)(tg_putu(tmp, v) - tmp)) < 0 ? -1 : 0;
}

/* Microseconds as seconds, trailing zeros cut: 5000 -> 0.005, 2500000 -> 2.5. */
static int put_seconds(tg_buf_t *out, uint64_t us)
{
    char tmp[32], *p = tg_putu(tmp, us / 1000000);
    uint64_t frac = us % 1000000;
    if (frac) {
        *p++ = '.';
        for (uint64_t d = 100000; d && frac; d /= 10) {
            *p++ = (char)('0' + frac / d);
            frac %= d;
        }
    }
    return tg_buf_add(out, tmp, (size_t)(p - tmp)) < 0 ? -1 : 0;
}

int tg_metrics_family(tg_buf_t *out, const char *name, const char *type, const char *help)
{
    if (puts_(out, "# HELP ") || puts_(out, name) || puts_(out, " ") || puts_(out, help) ||
        puts_(out, "\n# TYPE ") || puts_(out, name) || puts_(out, " ") || puts_(out, type) ||
        puts_(out, "\n"))
        return -1;
    return 0;
}

int tg_metrics_sample(tg_buf_t *out, const char *name, long long value)
{
    if (puts_(out, name) || puts_(out, " ")) return -1;
    if (value < 0 && puts_(out, "-")) return -1;
    if (putu(out, value < 0 ? 0ull - (unsigned long long)value : (unsigned long long)value))
        return -1;
    return puts_(out, "\n");
}

int tg_metrics_histogram(tg_buf_t *out, const char *name, const int64_t *bounds_us, size_t n,
                         const uint64_t *counts, uint64_t sum_us)
{
    uint64_t cum = 0;
    for (size_t k = 0; k <= n; k++) {
        cum += counts[k];
        if (puts_(out, name) || puts_(out, "_bucket{le=\"") ||
            (k < n ? put_seconds(out, (uint64_t)bounds_us[k]) : puts_(out, "+Inf")) ||
            puts_(out, "\"} ") || putu(out, cum) || puts_(out, "\n"))
            return -1;
    }
    if (puts_(out, name) || puts_(out, "_sum ") || put_seconds(out, sum_us) || puts_(out, "\n") ||
        puts_(out, name) || puts_(out, "_count ") || putu(out, cum) || puts_(out, "\n"))
        return -1;
    return 0;
}

/* One series of a family summed over the blocks. */
typedef struct agg {
    uint32_t a, b;
    uint64_t *v;
} agg_t;

static int cmp_series(const void *x, const void *y)
{
    const series_t *p = *(series_t *const *)x, *q = *(series_t *const *)y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

/* The family fam of every block, one agg per label set, sorted by ids. *n = how many. NULL
 * with *n 0 when there are none, or when out of memory (*oom = 1). Each block's list is
 * read from one load of its head: a series published meanwhile waits for the next scrape,
 * and none of the older ones is missed. */
static agg_t *gather(tg_metrics_block_t *blocks, int fam, size_t *n, uint64_t **vals, int *oom)
{
    size_t cnt = 0, nb = 0, nv = nvals[fam];
    *n = 0;
    *vals = NULL;
    for (tg_metrics_block_t *b = blocks; b; b = b->next)
        nb++;
    if (!nb) return NULL;
    series_t **heads = malloc(nb * sizeof *heads);
    if (!heads) {
        *oom = 1;
        return NULL;
    }
    size_t bi = 0;
    for (tg_metrics_block_t *b = blocks; b; b = b->next, bi++) {
        heads[bi] = atomic_load_explicit(&b->head[fam], memory_order_acquire);
        for (series_t *s = heads[bi]; s; s = s->next)
            cnt++;
    }
    if (!cnt) {
        free(heads);
        return NULL;
    }
    series_t **all = malloc(cnt * sizeof *all);
    agg_t *ag = malloc(cnt * sizeof *ag);
    uint64_t *v = calloc(cnt * nv, sizeof *v);
    if (!all || !ag || !v) {
        free(heads);
        free(all);
        free(ag);
        free(v);
        *oom = 1;
        return NULL;
    }
    size_t k = 0;
    for (bi = 0; bi < nb; bi++)
        for (series_t *s = heads[bi]; s; s = s->next)
            all[k++] = s;
    free(heads);
    qsort(all, k, sizeof *all, cmp_series);
    size_t g = 0;
    for (size_t i = 0; i < k; i++) {
        if (!g || ag[g - 1].a != all[i]->a || ag[g - 1].b != all[i]->b) {
            ag[g] = (agg_t){all[i]->a, all[i]->b, v + g * nv};
            g++;
        }
        for (size_t j = 0; j < nv; j++)
            ag[g - 1].v[j] += get(&all[i]->v[j]);
    }
    free(all);
    *n = g;
    *vals = v;
    return ag;
}

static const name_t *name_of(const tg_metrics_t *m, int kind, uint32_t id)
{
    return m->in[kind].names[id];
}

/* `{tenant="..",KEY="..."` (no closing brace) */
static int labels(tg_buf_t *out, const tg_metrics_t *m, uint32_t t, const char *key, int kind,
                  uint32_t id)
{
    const name_t *tn = name_of(m, K_TENANT, t);
    if (puts_(out, "{tenant=\"") || tg_metrics_escape(out, tn->s, tn->len) || puts_(out, "\""))
        return -1;
    if (!key) return 0;
    const name_t *nm = name_of(m, kind, id);
    if (puts_(out, ",") || puts_(out, key) || puts_(out, "=\"") ||
        tg_metrics_escape(out, nm->s, nm->len) || puts_(out, "\""))
        return -1;
    return 0;
}

/* name{tenant=..,key=..} value, for each agg, value index vi. */
static int counter(tg_buf_t *out, const tg_metrics_t *m, const char *name, const char *help,
                   const agg_t *ag, size_t n, const char *key, int kind, size_t vi)
{
    if (tg_metrics_family(out, name, "counter", help)) return -1;
    for (size_t i = 0; i < n; i++)
        if (puts_(out, name) || labels(out, m, ag[i].a, key, kind, ag[i].b) || puts_(out, "} ") ||
            putu(out, ag[i].v[vi]) || puts_(out, "\n"))
            return -1;
    return 0;
}

static const char *const outcome_names[NOUTCOMES] = {"billable", "failed", "rejected"};
static const char *const class_names[NCLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

/* A latency histogram by tenant and route from each agg's values vbkt.. (bucket counts,
 * +Inf last) and vsum (microseconds). skip_empty: a label set with no observation is left
 * out (the upstream histogram of routes that were only refused). */
static int histogram(tg_buf_t *out, const tg_metrics_t *m, const char *h, const char *help,
                     const agg_t *ag, size_t n, size_t vbkt, size_t vsum, int skip_empty)
{
    if (tg_metrics_family(out, h, "histogram", help)) return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t total = 0;
        for (int k = 0; k <= TG_METRICS_BUCKETS; k++)
            total += ag[i].v[vbkt + k];
        if (skip_empty && !total) continue;
        uint64_t cum = 0;
        for (int k = 0; k <= TG_METRICS_BUCKETS; k++) {
            cum += ag[i].v[vbkt + k];
            if (puts_(out, h) || puts_(out, "_bucket") ||
                labels(out, m, ag[i].a, "route", K_ROUTE, ag[i].b) || puts_(out, ",le=\"") ||
                (k < TG_METRICS_BUCKETS ? put_seconds(out, (uint64_t)tg_metrics_bucket_us[k])
                                        : puts_(out, "+Inf")) ||
                puts_(out, "\"} ") || putu(out, cum) || puts_(out, "\n"))
                return -1;
        }
        if (puts_(out, h) || puts_(out, "_sum") ||
            labels(out, m, ag[i].a, "route", K_ROUTE, ag[i].b) || puts_(out, "} ") ||
            put_seconds(out, ag[i].v[vsum]) || puts_(out, "\n") || puts_(out, h) ||
            puts_(out, "_count") || labels(out, m, ag[i].a, "route", K_ROUTE, ag[i].b) ||
            puts_(out, "} ") || putu(out, cum) || puts_(out, "\n"))
            return -1;
    }
    return 0;
}

static int render_tr(tg_buf_t *out, const tg_metrics_t *m, const agg_t *ag, size_t n)
{
    const char *req = "tollgate_requests_total";
    if (tg_metrics_family(out, req, "counter",
                          "Requests by tenant, route, outcome (billable, failed, rejected) "
                          "and status class."))
        return -1;
    for (size_t i = 0; i < n; i++)
        for (int o = 0; o < NOUTCOMES; o++)
            for (int c = 0; c < NCLASSES; c++) {
                uint64_t v = ag[i].v[V_REQ(o, c)];
                if (!v) continue;
                if (puts_(out, req) || labels(out, m, ag[i].a, "route", K_ROUTE, ag[i].b) ||
                    puts_(out, ",outcome=\"") || puts_(out, outcome_names[o]) ||
                    puts_(out, "\",status_class=\"") || puts_(out, class_names[c]) ||
                    puts_(out, "\"} ") || putu(out, v) || puts_(out, "\n"))
                    return -1;
            }
    if (histogram(out, m, "tollgate_request_duration_seconds",
                  "Request latency, from the request's start to its last byte sent, by tenant "
                  "and route.",
                  ag, n, V_BKT, V_SUM, 0))
        return -1;
    if (counter(out, m, "tollgate_request_bytes_total",
                "Request body bytes received from clients, by tenant and route.", ag, n, "route",
                K_ROUTE, V_BIN) ||
        counter(out, m, "tollgate_response_bytes_total",
                "Response body bytes sent to clients, by tenant and route.", ag, n, "route",
                K_ROUTE, V_BOUT))
        return -1;
    return histogram(out, m, "tollgate_upstream_duration_seconds",
                     "Upstream call latency, from the first attempt's start to the end of the "
                     "transfer (the answer's last byte received, or an error), by tenant and "
                     "route; requests that reached no upstream are not in it.",
                     ag, n, V_UBKT, V_USUM, 1);
}

/* A ratio summed per tenant id. */
typedef struct ratio_sum {
    uint32_t id;
    __int128 num, den;
} ratio_sum_t;

static int cmp_ratio(const void *x, const void *y)
{
    const ratio_sum_t *p = x, *q = y;
    return p->id < q->id ? -1 : p->id > q->id;
}

/* The shortest %.Ng of d that reads back as d. */
static int put_double(tg_buf_t *out, double d)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    return puts_(out, tmp);
}

int tg_metrics_tenant_ratio(tg_metrics_t *m, tg_buf_t *out, const char *name, const char *help,
                            const tg_metrics_ratio_t *v, size_t n)
{
    if (tg_metrics_family(out, name, "gauge", help)) return -1;
    ratio_sum_t *r = n ? malloc(n * sizeof *r) : NULL;
    if (n && !r) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].den <= 0) continue;
        char clean[CLEAN_MAX];
        size_t len = strnlen(v[i].tenant, RAW_MAX);
        size_t cn = clean_utf8(v[i].tenant, len, clean);
        uint32_t id = 0; /* "_other" itself, or no room for a name of its own */
        if (!(cn == sizeof OTHER - 1 && memcmp(clean, OTHER, cn) == 0))
            id = interner_get(m, &m->in[K_TENANT], hash_bytes(m->seed, clean, cn), clean, cn);
        r[k++] = (ratio_sum_t){id, v[i].num, v[i].den};
    }
    if (k) qsort(r, k, sizeof *r, cmp_ratio);
    int rc = 0;
    for (size_t i = 0; i < k && !rc;) {
        ratio_sum_t s = r[i++];
        while (i < k && r[i].id == s.id) {
            s.num += r[i].num;
            s.den += r[i++].den;
        }
        const name_t *tn = name_of(m, K_TENANT, s.id);
        rc = puts_(out, name) || puts_(out, "{tenant=\"") ||
             tg_metrics_escape(out, tn->s, tn->len) || puts_(out, "\"} ") ||
             put_double(out, (double)s.num / (double)s.den) || puts_(out, "\n");
    }
    free(r);
    return rc ? -1 : 0;
}

int tg_metrics_render(tg_metrics_t *m, tg_buf_t *out)
{
    pthread_mutex_lock(&m->mu);
    tg_metrics_block_t *blocks = m->blocks; /* the list only grows at its head */
    pthread_mutex_unlock(&m->mu);
    int rc = 0, oom = 0;
    agg_t *ag[NFAMS] = {0};
    uint64_t *vals[NFAMS] = {0};
    size_t n[NFAMS] = {0};
    for (int f = 1; f < NFAMS; f++)
        ag[f] = gather(blocks, f, &n[f], &vals[f], &oom);
    if (oom) rc = -1;
    if (!rc)
        rc = render_tr(out, m, ag[F_TR], n[F_TR]) ||
                     counter(out, m, "tollgate_input_tokens_total",
                             "Input (prompt) tokens the upstream reported, by tenant and model "
                             "(OpenAI's include the cached ones).",
                             ag[F_TM], n[F_TM], "model", K_MODEL, 0) ||
                     counter(out, m, "tollgate_output_tokens_total",
                             "Output (completion) tokens the upstream reported, by tenant and "
                             "model.",
                             ag[F_TM], n[F_TM], "model", K_MODEL, 1) ||
                     counter(out, m, "tollgate_cached_tokens_total",
                             "Cached input tokens the upstream reported, by tenant and model.",
                             ag[F_TM], n[F_TM], "model", K_MODEL, 2) ||
                     counter(out, m, "tollgate_cost_micro_usd_total",
                             "Cost of billable requests in micro-USD, by tenant.", ag[F_T], n[F_T],
                             NULL, 0, 0) ||
                     counter(out, m, "tollgate_rejections_total",
                             "Requests refused by tollgate before any upstream work, by tenant "
                             "and reason.",
                             ag[F_RJ], n[F_RJ], "reason", K_REASON, 0) ||
                     counter(out, m, "tollgate_mcp_tool_calls_total",
                             "MCP tools/call requests sent upstream, by tenant and tool.",
                             ag[F_TOOL], n[F_TOOL], "tool", K_TOOL, 0) ||
                     counter(out, m, "tollgate_mcp_tool_errors_total",
                             "MCP tools/call requests without a billed result (an error, "
                             "isError, no answer), by tenant and tool.",
                             ag[F_TOOL], n[F_TOOL], "tool", K_TOOL, 1)
                 ? -1
                 : 0;
    for (int f = 1; f < NFAMS; f++) {
        free(ag[f]);
        free(vals[f]);
    }
    return rc;
}

/* ---- per-tenant totals (the alarm engine's input) ------------------------------------ */

int tg_metrics_tenant_totals(tg_metrics_t *m, int (*cb)(const tg_metrics_tenant_totals_t *, void *),
                             void *ud)
{
    pthread_mutex_lock(&m->mu);
    tg_metrics_block_t *blocks = m->blocks;
    pthread_mutex_unlock(&m->mu);
    int oom = 0, rc = 0;
    size_t ntr = 0, nt = 0;
    uint64_t *vtr = NULL, *vt = NULL;
    agg_t *tr = gather(blocks, F_TR, &ntr, &vtr, &oom); /* sorted by tenant, then route */
    agg_t *t = gather(blocks, F_T, &nt, &vt, &oom);     /* sorted by tenant */
    if (oom) rc = -1;
    for (size_t i = 0, j = 0; !rc && i < ntr;) {
        tg_metrics_tenant_totals_t tot;
        memset(&tot, 0, sizeof tot);
        uint32_t a = tr[i].a;
        tot.tenant = name_of(m, K_TENANT, a)->s;
        for (; i < ntr && tr[i].a == a; i++) {
            for (int o = 0; o < NOUTCOMES; o++)
                for (int c = 0; c < NCLASSES; c++) {
                    uint64_t v = tr[i].v[V_REQ(o, c)];
                    tot.requests += v;
                    if (c == 4 && o != TG_OUTCOME_REJECTED) tot.errors += v;
                }
            for (int k = 0; k <= TG_METRICS_BUCKETS; k++)
                tot.buckets[k] += tr[i].v[V_BKT + k];
        }
        while (j < nt && t[j].a < a)
            j++;
        if (j < nt && t[j].a == a) tot.cost_micros = t[j].v[0];
        rc = cb(&tot, ud);
    }
    free(tr);
    free(vtr);
    free(t);
    free(vt);
    return rc;
}
