/* The price book: see price.h for the rules. Shape, like the admission policy
 * (policy/policy.c): an immutable snapshot built off the request path and swapped
 * under a rwlock; readers hold the read lock while they price, so a snapshot is
 * freed only once no reader can see it.
 *
 * A snapshot is every row, config and store merged, -1 fields resolved, sorted by
 * (meter, name, effective_us), plus an open-addressing table from (meter, name) to
 * that run of rows. A lookup is one hash of the name, a probe or two and a binary
 * search over the run for the latest effective_us <= ts: no allocation, no lock
 * beyond the read lock. Rejected alternative: one table keyed by (meter, name,
 * effective_us) — the dated lookup is a "latest not after", not an equality.
 *
 * Arithmetic (the single rounding rule of price.h): a per-token price is micro-USD
 * per 10^6 tokens, so tokens × price is exact in 10^-6 micro-USD; a per-GB price is
 * micro-USD per 10^9 bytes, so bytes × gb is exact in 10^-9 micro-USD. Each sum is
 * kept in an unsigned __int128 (4 products of two int64s stay below 2^128), split
 * into whole micros and a remainder, and the remainders are added in 10^-9 micro-USD
 * and rounded half up once. That equals summing everything in 10^-9 micro-USD and
 * rounding once, without the ×1000 that could overflow 128 bits for absurd counts. */
#include "meter/price.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/watch.h"
#include "util/log.h"
#include "util/modelname.h"
#include "util/rwlock.h"

enum { M_MODEL, M_ROUTE, M_TOOL, M_COUNT };
static const char *const meter_names[M_COUNT] = {"model", "route", "tool"};

typedef unsigned __int128 u128;

#define NANO_PER_MICRO 1000000000u /* 10^-9 micro-USD units in one micro-USD */
#define PER_MILLION    1000000u

/* One (meter, name): rows[first .. first + n) of the snapshot, ascending effective_us. */
typedef struct slot {
    uint64_t hash; /* 0 = empty */
    uint32_t first, n;
    int meter;
} slot_t;

/* Immutable once built. rows hold resolved amounts: never -1 (see resolve()). */
typedef struct snap {
    tg_price_row_t *rows;
    size_t nrows;
    slot_t *slots;
    size_t mask;                /* slots has mask + 1 entries; 0 entries when nrows == 0 */
    unsigned char has[M_COUNT]; /* a meter with no row at all is not looked up */
} snap_t;

struct tg_pricebook {
    pthread_rwlock_t lock; /* guards snap (the pointer); readers price under it */
    snap_t *snap;
    pthread_mutex_t build_mu; /* guards defaults and stored, and orders rebuilds: a snapshot
                                 is built from both and swapped while this is held */
    tg_price_row_t *defaults; /* config rows as given (raw: -1 = unset) */
    size_t ndefaults;
    tg_price_row_t *stored; /* the store's rows as last loaded (raw) */
    size_t nstored;
    tg_watch_t *watch; /* the refresher (store/watch.h); start/stop only */
};

/* ---- building a snapshot ---------------------------------------------- */

static int meter_of(const char *m)
{
    for (int i = 0; i < M_COUNT; i++)
        if (!strcmp(m, meter_names[i])) return i;
    return -1;
}

/* Model names compare case-insensitively (util/modelname.h): they hash and sort folded. */
static unsigned char fold(int meter, unsigned char ch)
{
    return meter == M_MODEL && ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

static uint64_t hash_of(int meter, const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    h = (h ^ (uint64_t)(meter + 1)) * 1099511628211ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ fold(meter, (unsigned char)name[i])) * 1099511628211ULL;
    return h ? h : 1;
}

static int name_cmp(int meter, const char *a, const char *b)
{
    return meter == M_MODEL ? strcasecmp(a, b) : strcmp(a, b);
}

/* name (NUL-terminated) equals key[0..len) under the meter's comparison. */
static int name_is(int meter, const char *name, const char *key, size_t len)
{
    if (strlen(name) != len) return 0;
    return meter == M_MODEL ? strncasecmp(name, key, len) == 0 : memcmp(name, key, len) == 0;
}

typedef struct cand {
    const tg_price_row_t *row;
    int meter;
    int from_store; /* 0 = config, 1 = store: the store wins a tie */
    size_t seq;     /* input order: the later of two equal rows wins */
} cand_t;

static int cand_cmp(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    int c;
    if (x->meter != y->meter) return x->meter < y->meter ? -1 : 1;
    if ((c = name_cmp(x->meter, x->row->name, y->row->name))) return c;
    if (x->row->effective_us != y->row->effective_us)
        return x->row->effective_us < y->row->effective_us ? -1 : 1;
    if (x->from_store != y->from_store) return x->from_store < y->from_store ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int64_t or_else(int64_t v, int64_t def)
{
    return v >= 0 ? v : def;
}

/* The row as priced: a store row's unset fields from the config row in force at its
 * effective_us (cfg, may be NULL); then cached and cache_write default to input and
 * anything still unset is 0. Any negative amount counts as unset. */
static void resolve(tg_price_row_t *out, const tg_price_row_t *r, const tg_price_row_t *cfg)
{
    *out = *r;
    if (cfg && cfg != r) {
        out->input_micros = or_else(r->input_micros, cfg->input_micros);
        out->output_micros = or_else(r->output_micros, cfg->output_micros);
        out->cached_micros = or_else(r->cached_micros, cfg->cached_micros);
        out->cache_write_micros = or_else(r->cache_write_micros, cfg->cache_write_micros);
        out->request_micros = or_else(r->request_micros, cfg->request_micros);
        out->gb_micros = or_else(r->gb_micros, cfg->gb_micros);
        out->call_micros = or_else(r->call_micros, cfg->call_micros);
    }
    out->input_micros = or_else(out->input_micros, 0);
    out->output_micros = or_else(out->output_micros, 0);
    out->cached_micros = or_else(out->cached_micros, out->input_micros);
    out->cache_write_micros = or_else(out->cache_write_micros, out->input_micros);
    out->request_micros = or_else(out->request_micros, 0);
    out->gb_micros = or_else(out->gb_micros, 0);
    out->call_micros = or_else(out->call_micros, 0);
}

static void snap_free(snap_t *s)
{
    if (!s) return;
    free(s->rows);
    free(s->slots);
    free(s);
}

static int same_key(const cand_t *a, const cand_t *b)
{
    return a->meter == b->meter && !name_cmp(a->meter, a->row->name, b->row->name);
}

static snap_t *snap_build(const tg_price_row_t *defs, size_t nd, const tg_price_row_t *st,
                          size_t ns)
{
    snap_t *s = calloc(1, sizeof *s);
    cand_t *c = malloc((nd + ns + 1) * sizeof *c);
    if (!s || !c) goto err;
    size_t n = 0, groups = 0;
    for (size_t i = 0; i < nd + ns; i++) {
        const tg_price_row_t *r = i < nd ? &defs[i] : &st[i - nd];
        int m = meter_of(r->meter);
        if (m < 0) {
            TG_WARN("prices: ignoring a row of unknown meter \"%.8s\" (%s)", r->meter, r->name);
            continue;
        }
        c[n++] = (cand_t){r, m, i >= nd, i};
    }
    qsort(c, n, sizeof *c, cand_cmp);
    s->rows = malloc((n + 1) * sizeof *s->rows);
    if (!s->rows) goto err;
    /* One pass per (meter, name) run: remember the latest config row seen (a store row's
     * fallback), and of rows with equal effective_us keep the last (store over config). */
    const tg_price_row_t *cfg = NULL;
    for (size_t i = 0; i < n; i++) {
        int first = i == 0 || !same_key(&c[i - 1], &c[i]);
        if (first) cfg = NULL, groups++;
        if (!c[i].from_store) cfg = c[i].row;
        if (i + 1 < n && same_key(&c[i], &c[i + 1]) &&
            c[i + 1].row->effective_us == c[i].row->effective_us)
            continue; /* superseded by the next row */
        resolve(&s->rows[s->nrows++], c[i].row, c[i].from_store ? cfg : NULL);
    }
    if (s->nrows) {
        size_t cap = 16;
        while (cap < groups * 2)
            cap <<= 1;
        s->slots = calloc(cap, sizeof *s->slots);
        if (!s->slots) goto err;
        s->mask = cap - 1;
        for (size_t i = 0; i < s->nrows;) {
            int m = meter_of(s->rows[i].meter);
            size_t j = i + 1;
            while (j < s->nrows && !strcmp(s->rows[j].meter, s->rows[i].meter) &&
                   !name_cmp(m, s->rows[j].name, s->rows[i].name))
                j++;
            s->has[m] = 1;
            uint64_t h = hash_of(m, s->rows[i].name, strlen(s->rows[i].name));
            size_t k = h & s->mask;
            while (s->slots[k].hash)
                k = (k + 1) & s->mask;
            s->slots[k] = (slot_t){h, (uint32_t)i, (uint32_t)(j - i), m};
            i = j;
        }
    }
    free(c);
    return s;
err:
    free(c);
    snap_free(s);
    return NULL;
}

/* The row of (meter, name[0..len)) in force at ts, or NULL. */
static const tg_price_row_t *find_n(const snap_t *s, int meter, const char *name, size_t len,
                                    int64_t ts)
{
    if (!s->has[meter]) return NULL; /* (most books price models only) */
    uint64_t h = hash_of(meter, name, len);
    for (size_t k = h & s->mask; s->slots[k].hash; k = (k + 1) & s->mask) {
        const slot_t *sl = &s->slots[k];
        if (sl->hash != h || sl->meter != meter ||
            !name_is(meter, s->rows[sl->first].name, name, len))
            continue;
        /* Latest effective_us <= ts: lo is the count of rows with effective_us <= ts. */
        size_t lo = 0, hi = sl->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->rows[sl->first + mid].effective_us <= ts)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo ? &s->rows[sl->first + lo - 1] : NULL;
    }
    return NULL;
}

static const tg_price_row_t *find(const snap_t *s, int meter, const char *name, int64_t ts)
{
    return find_n(s, meter, name, strlen(name), ts);
}

/* A model's row: its own, else its base's (util/modelname.h: a dated snapshot or a
 * provider's variant is priced as the model it names, unless it has a row of its own). */
static const tg_price_row_t *find_model(const snap_t *s, const char *name, int64_t ts)
{
    size_t len = strlen(name);
    for (int i = 0; i < TG_MODELNAME_TRIES && len; i++) {
        const tg_price_row_t *r = find_n(s, M_MODEL, name, len, ts);
        if (r) return r;
        len = tg_modelname_base(name, len);
    }
    return NULL;
}

static const tg_price_row_t *find_or_any(const snap_t *s, int meter, const char *name, int64_t ts,
                                         int *fell_back)
{
    const tg_price_row_t *r = NULL;
    if (name && *name) r = meter == M_MODEL ? find_model(s, name, ts) : find(s, meter, name, ts);
    *fell_back = 0;
    if (!r && (r = find(s, meter, "*", ts))) *fell_back = 1;
    return r;
}

/* ---- the cost of one request ------------------------------------------ */

typedef struct counts {
    int64_t in, out, cached, cache_write; /* as in tg_event_t: < 0 = unknown */
    uint64_t bytes;                       /* in + out: two int64s cannot wrap a uint64 */
} counts_t;

static uint64_t nonneg(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

static u128 mul(uint64_t a, int64_t b)
{
    return (u128)a * (u128)nonneg(b);
}

/* See price.h. *flag: a static string. */
static int64_t cost_of(const snap_t *s, tg_route_kind_t kind, const char *route, const char *model,
                       const char *tool, const counts_t *c, int64_t ts, const char **flag)
{
    u128 tok = 0;   /* 10^-6 micro-USD: tokens x micro-USD per 10^6 tokens */
    u128 byt = 0;   /* 10^-9 micro-USD: bytes x micro-USD per 10^9 bytes */
    u128 whole = 0; /* micro-USD */
    int fb;
    *flag = "";
    /* A request on an AI route that names no model and reports no tokens is not a model
     * call (GET /v1/models, a file upload): no model part, no flag. */
    int ai_call = (model && model[0]) || (c->in >= 0 && c->out >= 0);
    if ((kind == TG_ROUTE_OPENAI || kind == TG_ROUTE_ANTHROPIC) && ai_call) {
        const tg_price_row_t *r = NULL;
        if (c->in < 0 || c->out < 0)
            *flag = "tokens_unknown";
        else if (!(r = find_or_any(s, M_MODEL, model, ts, &fb)))
            *flag = "unpriced";
        else if (fb)
            *flag = "fallback";
        if (r) {
            uint64_t in = nonneg(c->in), out = nonneg(c->out), cached = nonneg(c->cached);
            if (kind == TG_ROUTE_OPENAI) {
                /* tokens_in includes the cached ones; a report of more cached than input
                 * tokens is clamped rather than billed twice or wrapped. */
                if (cached > in) cached = in;
                tok = mul(in - cached, r->input_micros) + mul(cached, r->cached_micros) +
                      mul(out, r->output_micros);
            } else {
                tok = mul(in, r->input_micros) + mul(cached, r->cached_micros) +
                      mul(nonneg(c->cache_write), r->cache_write_micros) +
                      mul(out, r->output_micros);
            }
        }
    }
    const tg_price_row_t *r = find_or_any(s, M_ROUTE, route, ts, &fb);
    if (r) {
        whole += nonneg(r->request_micros);
        byt = (u128)c->bytes * nonneg(r->gb_micros);
    }
    if (kind == TG_ROUTE_MCP && tool && *tool && (r = find_or_any(s, M_TOOL, tool, ts, &fb)))
        whole += nonneg(r->call_micros);

    u128 frac = (tok % PER_MILLION) * (NANO_PER_MICRO / PER_MILLION) + byt % NANO_PER_MICRO;
    whole += tok / PER_MILLION + byt / NANO_PER_MICRO + frac / NANO_PER_MICRO;
    if (frac % NANO_PER_MICRO >= NANO_PER_MICRO / 2) whole++; /* half up, once */
    return whole > (u128)INT64_MAX ? INT64_MAX : (int64_t)whole;
}

void tg_pricebook_price(tg_pricebook_t *pb, tg_event_t *ev, tg_route_kind_t kind)
{
    if (ev->outcome != TG_OUTCOME_BILLABLE) {
        ev->cost_micros = 0;
        ev->price_flag[0] = '\0';
        return;
    }
    counts_t c = {ev->tokens_in, ev->tokens_out, ev->tokens_cached, ev->tokens_cache_write,
                  nonneg(ev->bytes_in) + nonneg(ev->bytes_out)};
    const char *flag;
    pthread_rwlock_rdlock(&pb->lock);
    ev->cost_micros = cost_of(pb->snap, kind, ev->route, ev->model, ev->tool, &c, ev->ts_us, &flag);
    pthread_rwlock_unlock(&pb->lock);
    TG_EVENT_SET(ev, price_flag, flag, strlen(flag));
}

int64_t tg_pricebook_call(tg_pricebook_t *pb, const char *tool, int64_t ts_us)
{
    if (!tool || !*tool) return 0;
    int fb;
    pthread_rwlock_rdlock(&pb->lock);
    const tg_price_row_t *r = find_or_any(pb->snap, M_TOOL, tool, ts_us, &fb);
    int64_t v = r ? (int64_t)nonneg(r->call_micros) : 0;
    pthread_rwlock_unlock(&pb->lock);
    return v;
}

int tg_pricebook_model_priced(tg_pricebook_t *pb, const char *model, int64_t ts_us)
{
    int fb;
    pthread_rwlock_rdlock(&pb->lock);
    int ok = find_or_any(pb->snap, M_MODEL, model ? model : "", ts_us, &fb) != NULL;
    pthread_rwlock_unlock(&pb->lock);
    return ok;
}

int64_t tg_pricebook_estimate(tg_pricebook_t *pb, tg_route_kind_t kind, const char *route,
                              const char *model, const char *tool, int64_t tokens_in,
                              int64_t tokens_out, int64_t bytes, int64_t ts_us)
{
    counts_t c = {tokens_in, tokens_out, 0, 0, nonneg(bytes)};
    const char *flag;
    pthread_rwlock_rdlock(&pb->lock);
    int64_t v = cost_of(pb->snap, kind, route ? route : "", model ? model : "", tool ? tool : "",
                        &c, ts_us, &flag);
    pthread_rwlock_unlock(&pb->lock);
    return v;
}

/* ---- lifecycle, loading, refresh --------------------------------------- */

tg_pricebook_t *tg_pricebook_new(void)
{
    tg_pricebook_t *pb = calloc(1, sizeof *pb);
    if (!pb) return NULL;
    pb->snap = snap_build(NULL, 0, NULL, 0);
    if (!pb->snap) {
        free(pb);
        return NULL;
    }
    tg_rwlock_init(&pb->lock);
    pthread_mutex_init(&pb->build_mu, NULL);
    return pb;
}

void tg_pricebook_free(tg_pricebook_t *pb)
{
    if (!pb) return;
    tg_pricebook_stop_refresh(pb);
    snap_free(pb->snap);
    free(pb->defaults);
    free(pb->stored);
    pthread_mutex_destroy(&pb->build_mu);
    pthread_rwlock_destroy(&pb->lock);
    free(pb);
}

/* Builds from defs and st and swaps the snapshot in; build_mu held. */
static int rebuild(tg_pricebook_t *pb, const tg_price_row_t *defs, size_t nd,
                   const tg_price_row_t *st, size_t ns, tg_err_t *err)
{
    snap_t *s = snap_build(defs, nd, st, ns);
    if (!s) return tg_err_set(err, "out of memory building the price book");
    pthread_rwlock_wrlock(&pb->lock);
    snap_t *old = pb->snap;
    pb->snap = s;
    pthread_rwlock_unlock(&pb->lock);
    snap_free(old);
    return 0;
}

static tg_price_row_t *copy_rows(const tg_price_row_t *rows, size_t n)
{
    tg_price_row_t *c = malloc((n ? n : 1) * sizeof *c);
    if (c && n) memcpy(c, rows, n * sizeof *c);
    return c;
}

int tg_pricebook_set_defaults(tg_pricebook_t *pb, const tg_price_row_t *rows, size_t n,
                              tg_err_t *err)
{
    tg_price_row_t *copy = copy_rows(rows, n);
    if (!copy) return tg_err_set(err, "out of memory copying prices");
    pthread_mutex_lock(&pb->build_mu);
    int rc = rebuild(pb, copy, n, pb->stored, pb->nstored, err);
    if (rc == 0) {
        free(pb->defaults);
        pb->defaults = copy;
        pb->ndefaults = n;
    } else {
        free(copy);
    }
    pthread_mutex_unlock(&pb->build_mu);
    return rc;
}

typedef struct collect {
    tg_price_row_t *rows;
    size_t n, cap;
    int oom;
} collect_t;

static int on_price(const tg_price_row_t *r, void *ud)
{
    collect_t *b = ud;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        tg_price_row_t *n = realloc(b->rows, cap * sizeof *n);
        if (!n) {
            b->oom = 1;
            return -1;
        }
        b->rows = n;
        b->cap = cap;
    }
    b->rows[b->n] = *r;
    /* The callback's strings are the row's own arrays; make sure they end. */
    b->rows[b->n].meter[sizeof b->rows[b->n].meter - 1] = '\0';
    b->rows[b->n].name[sizeof b->rows[b->n].name - 1] = '\0';
    b->n++;
    return 0;
}

int tg_pricebook_load(tg_pricebook_t *pb, tg_store_t *store, tg_err_t *err)
{
    collect_t b = {0};
    int rc = tg_store_price_list(store, on_price, &b, err);
    if (rc != 0) {
        free(b.rows);
        return b.oom ? tg_err_set(err, "out of memory loading prices") : rc;
    }
    pthread_mutex_lock(&pb->build_mu);
    rc = rebuild(pb, pb->defaults, pb->ndefaults, b.rows, b.n, err);
    if (rc == 0) {
        free(pb->stored);
        pb->stored = b.rows;
        pb->nstored = b.n;
    } else {
        free(b.rows);
    }
    pthread_mutex_unlock(&pb->build_mu);
    return rc;
}

static int reload_cb(void *ud, tg_store_t *store, int64_t now_us, tg_err_t *err)
{
    (void)now_us; /* rows are effective-dated; the snapshot keeps them all */
    return tg_pricebook_load(ud, store, err);
}

static int version_cb(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    return tg_store_policy_version(s, out, err);
}

int tg_pricebook_start_refresh(tg_pricebook_t *pb, const char *store_url, long interval_ms,
                               tg_err_t *err)
{
    if (pb->watch) return 0;
    pb->watch = tg_watch_start("prices", store_url, interval_ms, version_cb, reload_cb, pb, err);
    return pb->watch ? 0 : -1;
}

int64_t tg_pricebook_loaded_version(const tg_pricebook_t *pb)
{
    return tg_watch_loaded(pb->watch);
}

void tg_pricebook_stop_refresh(tg_pricebook_t *pb)
{
    tg_watch_stop(pb->watch);
    pb->watch = NULL;
}
