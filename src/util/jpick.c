/* JSON member picker: see jpick.h.
 *
 * Depth d counts the containers open: the root value sits at depth 0, the root object's
 * members at depth 1. A value at depth d matches path p when p has d keys and the keys
 * read at depths 1..d are p's; live[d] holds the paths whose first d-1 keys matched the
 * objects above, keyed[d] those whose d-th key is also the key just read. */
#include "util/jpick.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define TRACKED (TG_JPICK_DEPTH + 1) /* deepest depth whose members are counted */

static pthread_mutex_t prepare_lock = PTHREAD_MUTEX_INITIALIZER;

/* Fills the spec's tables, once. */
static void prepare(tg_jpick_spec_t *sp)
{
    if (__atomic_load_n(&sp->ready, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&prepare_lock);
    if (!sp->ready) {
        if (sp->npaths > TG_JPICK_MAX) sp->npaths = TG_JPICK_MAX;
        for (size_t p = 0; p < sp->npaths; p++) {
            uint8_t d = 0;
            for (; d < TG_JPICK_DEPTH && sp->paths[p].key[d]; d++) {
                const char *k = sp->paths[p].key[d];
                size_t i = 0;
                while (i < sp->nkeys[d] && strcmp(sp->keys[d][i].s, k) != 0)
                    i++;
                if (i == sp->nkeys[d]) {
                    sp->keys[d][i].s = k;
                    sp->keys[d][i].len = strlen(k);
                    sp->nkeys[d]++;
                }
                sp->keys[d][i].paths |= 1u << p;
            }
            sp->exact[d] |= 1u << p;
            for (uint8_t e = 0; e < d; e++)
                sp->longer[e] |= 1u << p;
        }
        __atomic_store_n(&sp->ready, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&prepare_lock);
}

/* The one value of the document ended: only whitespace may follow. Where it ended in the
 * bytes yajl is reading is yajl's running offset: inside a callback yajl 2.1.0 (the only
 * yajl there is) reports the bytes consumed so far, just past the token. */
static void root_ended(tg_jpick_t *pk)
{
    pk->root_done = 1;
    pk->root_end = yajl_get_bytes_consumed(pk->yajl);
}

/* A value starts at the current depth: returns the paths it is the value of, with their
 * type set. */
static uint32_t value(tg_jpick_t *pk, tg_jtype_t t)
{
    int d = pk->depth;
    pk->progressed = 1;
    if (d == 0) {
        pk->root = t;
        if (t != TG_JT_OBJECT && t != TG_JT_ARRAY) root_ended(pk);
        return 0;
    }
    if (d > TG_JPICK_DEPTH) return 0;
    uint32_t hit = pk->keyed[d] & pk->spec->exact[d];
    for (uint32_t m = hit; m; m &= m - 1) {
        tg_jval_t *v = &pk->v[__builtin_ctz(m)];
        v->type = t;
        v->n = 0;
    }
    return hit;
}

/* An element of the array open at the current depth. */
static void element(tg_jpick_t *pk)
{
    int d = pk->depth;
    if (d < 1 || d > TRACKED || !pk->in_array[d]) return;
    if (pk->counted[d] == -2)
        pk->root_n++;
    else if (pk->counted[d] >= 0)
        pk->v[pk->counted[d]].n++;
}

static void open_container(tg_jpick_t *pk, uint32_t hit, int array)
{
    int d = ++pk->depth;
    if (d > TRACKED) return;
    int parent = d - 1;
    uint32_t live = 0;
    if (!array) {
        if (parent == 0)
            live = pk->spec->npaths >= 32 ? UINT32_MAX : (1u << pk->spec->npaths) - 1;
        else if (parent <= TG_JPICK_DEPTH)
            live = pk->keyed[parent] & pk->spec->longer[parent];
    }
    pk->live[d] = live;
    pk->keyed[d] = 0;
    pk->in_array[d] = (uint8_t)array;
    pk->counted[d] = parent == 0 ? -2 : hit ? (int8_t)__builtin_ctz(hit) : -1;
}

static int on_null(void *ud)
{
    element(ud);
    value(ud, TG_JT_NULL);
    return 1;
}

static int on_bool(void *ud, int b)
{
    element(ud);
    value(ud, b ? TG_JT_TRUE : TG_JT_FALSE);
    return 1;
}

/* A number as text (yajl's own conversion refuses -2^63): an integer must fit int64, a
 * real a double, as in jansson. Returning 0 stops the parse. */
static int on_number(void *ud, const char *s, size_t n)
{
    tg_jpick_t *pk = ud;
    /* Most numbers are short integers (counts, ids, timestamps): yajl has checked the
     * syntax, and 18 digits cannot overflow, so they are summed here without a copy. */
    size_t neg = n && s[0] == '-', k = neg;
    int64_t v = 0;
    while (k < n && k - neg < 18 && s[k] >= '0' && s[k] <= '9')
        v = v * 10 + (s[k++] - '0');
    if (k == n && n > neg) {
        element(pk);
        for (uint32_t m = value(pk, TG_JT_INT); m; m &= m - 1)
            pk->v[__builtin_ctz(m)].i = neg ? -v : v;
        return 1;
    }
    char tmp[64];
    char *t = n < sizeof tmp ? tmp : malloc(n + 1);
    if (!t) return 0;
    memcpy(t, s, n);
    t[n] = '\0';
    int real = strpbrk(t, ".eE") != NULL;
    long long i = 0;
    errno = 0;
    if (real) {
        double x = strtod(t, NULL);
        if ((x == HUGE_VAL || x == -HUGE_VAL) && errno == ERANGE) errno = EDOM;
    } else {
        i = strtoll(t, NULL, 10);
    }
    int bad = errno == EDOM || (!real && errno == ERANGE);
    if (t != tmp) free(t);
    if (bad) return 0;
    element(pk);
    for (uint32_t m = value(pk, real ? TG_JT_REAL : TG_JT_INT); m; m &= m - 1)
        pk->v[__builtin_ctz(m)].i = (int64_t)i;
    return 1;
}

static int on_string(void *ud, const unsigned char *s, size_t n)
{
    tg_jpick_t *pk = ud;
    element(pk);
    uint32_t m = value(pk, TG_JT_STRING);
    if (!m) return 1;
    const unsigned char *nul = memchr(s, '\0', n);
    if (nul) n = (size_t)(nul - s);
    if (n >= TG_JPICK_STR) n = TG_JPICK_STR - 1;
    for (; m; m &= m - 1) {
        tg_jval_t *v = &pk->v[__builtin_ctz(m)];
        memcpy(v->s, s, n);
        v->s[n] = '\0';
    }
    return 1;
}

static int on_start_map(void *ud)
{
    tg_jpick_t *pk = ud;
    if (pk->depth >= TG_JPICK_NEST) return 0;
    element(pk);
    open_container(pk, value(pk, TG_JT_OBJECT), 0);
    return 1;
}

static int on_start_array(void *ud)
{
    tg_jpick_t *pk = ud;
    if (pk->depth >= TG_JPICK_NEST) return 0;
    element(pk);
    open_container(pk, value(pk, TG_JT_ARRAY), 1);
    return 1;
}

static int on_end(void *ud)
{
    tg_jpick_t *pk = ud;
    if (--pk->depth == 0) root_ended(pk);
    pk->progressed = 1;
    return 1;
}

static int on_key(void *ud, const unsigned char *k, size_t n)
{
    tg_jpick_t *pk = ud;
    int d = pk->depth;
    pk->progressed = 1;
    if (d > TRACKED) return 1;
    if (pk->counted[d] == -2)
        pk->root_n++;
    else if (pk->counted[d] >= 0)
        pk->v[pk->counted[d]].n++;
    if (d > TG_JPICK_DEPTH) return 1;
    uint32_t keyed = 0, live = pk->live[d];
    if (live) {
        const tg_jpick_spec_t *sp = pk->spec;
        for (size_t i = 0; i < sp->nkeys[d - 1]; i++) {
            const struct tg_jpick_key *e = &sp->keys[d - 1][i];
            if ((e->paths & live) && e->len == n && (n == 0 || e->s[0] == (char)k[0]) &&
                memcmp(e->s, k, n) == 0) {
                keyed = e->paths & live;
                break;
            }
        }
        for (uint32_t m = keyed; m; m &= m - 1) /* a repeated key replaces the earlier value */
            pk->v[__builtin_ctz(m)].type = TG_JT_ABSENT;
    }
    pk->keyed[d] = keyed;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/* ---- yajl's allocator: a bump arena in the picker, then malloc ----------------------- */

/* Each arena block starts with its size, so realloc can copy it. */
#define HDR 16

static int in_arena(const tg_jpick_t *pk, const void *p)
{
    const unsigned char *c = p;
    return c >= pk->arena && c < pk->arena + sizeof pk->arena;
}

static void *a_malloc(void *ud, size_t n)
{
    tg_jpick_t *pk = ud;
    size_t need = HDR + ((n + 15) & ~(size_t)15);
    if (n > sizeof pk->arena || need > sizeof pk->arena - pk->arena_used) return malloc(n);
    unsigned char *b = pk->arena + pk->arena_used;
    memcpy(b, &n, sizeof n);
    pk->arena_last = pk->arena_used;
    pk->arena_used += need;
    return b + HDR;
}

static void a_free(void *ud, void *p)
{
    tg_jpick_t *pk = ud;
    if (!p) return;
    if (!in_arena(pk, p)) {
        free(p);
        return;
    }
    /* Only the last block is given back; the rest waits for the next begin. */
    if ((unsigned char *)p - HDR == pk->arena + pk->arena_last) pk->arena_used = pk->arena_last;
}

static void *a_realloc(void *ud, void *p, size_t n)
{
    tg_jpick_t *pk = ud;
    if (!p) return a_malloc(pk, n);
    if (!in_arena(pk, p)) return realloc(p, n);
    unsigned char *b = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, b, sizeof old);
    size_t off = (size_t)(b - pk->arena);
    if (off == pk->arena_last && n <= sizeof pk->arena - off - HDR) { /* the last: grow it */
        memcpy(b, &n, sizeof n);
        pk->arena_used = off + HDR + ((n + 15) & ~(size_t)15);
        return p;
    }
    void *q = a_malloc(pk, n);
    if (q) memcpy(q, p, old < n ? old : n);
    return q; /* p stays in the arena until the next begin */
}

void tg_jpick_free(tg_jpick_t *pk)
{
    if (pk->yajl) yajl_free(pk->yajl);
    pk->yajl = NULL;
    free(pk->held);
    pk->held = NULL;
    pk->held_len = pk->held_cap = 0;
}

static int fail(tg_jpick_t *pk)
{
    tg_jpick_free(pk);
    pk->failed = 1;
    return -1;
}

int tg_jpick_begin(tg_jpick_t *pk, tg_jpick_spec_t *spec)
{
    tg_jpick_free(pk);
    prepare(spec);
    pk->spec = spec;
    pk->depth = 0;
    pk->failed = pk->too_big = pk->progressed = pk->root_done = 0;
    pk->idle = pk->parses = 0;
    pk->token_max = TG_JPICK_TOKEN_MAX;
    pk->root = TG_JT_ABSENT;
    pk->root_n = 0;
    for (size_t p = 0; p < spec->npaths; p++)
        pk->v[p].type = TG_JT_ABSENT;
    pk->arena_used = pk->arena_last = 0;
    yajl_alloc_funcs afs = {a_malloc, a_realloc, a_free, pk};
    pk->yajl = yajl_alloc(&callbacks, &afs, pk);
    return pk->yajl ? 0 : fail(pk);
}

static int all_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return 0;
    return 1;
}

/* Hands bytes to yajl; then nothing but whitespace may follow the end of the value (yajl
 * itself would take an unterminated string after it for a token still arriving). */
static int parse(tg_jpick_t *pk, const char *p, size_t n)
{
    pk->progressed = 0;
    pk->root_end = SIZE_MAX;
    pk->parses++;
    if (yajl_parse(pk->yajl, (const unsigned char *)p, n) != yajl_status_ok) return fail(pk);
    if (pk->root_end != SIZE_MAX && pk->root_end < n &&
        !all_blank(p + pk->root_end, n - pk->root_end))
        return fail(pk);
    pk->idle = pk->progressed ? 0 : pk->idle + n;
    return 0;
}

static int hold(tg_jpick_t *pk, const char *p, size_t n)
{
    if (pk->held_len + n > pk->held_cap) {
        size_t cap = pk->held_cap ? pk->held_cap : 4096;
        while (cap < pk->held_len + n)
            cap *= 2;
        char *np = realloc(pk->held, cap);
        if (!np) return fail(pk);
        pk->held = np;
        pk->held_cap = cap;
    }
    memcpy(pk->held + pk->held_len, p, n);
    pk->held_len += n;
    return 0;
}

int tg_jpick_feed(tg_jpick_t *pk, const char *p, size_t n)
{
    if (pk->failed || !pk->yajl) return -1;
    if (n == 0) return 0;
    if (pk->root_done) return all_blank(p, n) ? 0 : fail(pk);
    if (pk->idle + pk->held_len + n > pk->token_max) {
        pk->too_big = 1;
        return fail(pk);
    }
    if (pk->idle == 0) return parse(pk, p, n);
    /* A token is in progress and yajl would re-read all of it: wait for as many new bytes
     * as it holds, so the work stays linear in the token's length. */
    if (hold(pk, p, n) != 0) return -1;
    if (pk->held_len < pk->idle) return 0;
    int rc = parse(pk, pk->held, pk->held_len);
    pk->held_len = 0;
    return rc;
}

int tg_jpick_end(tg_jpick_t *pk)
{
    if (pk->failed || !pk->yajl) return -1;
    if (pk->held_len) {
        int rc = parse(pk, pk->held, pk->held_len);
        pk->held_len = 0;
        if (rc != 0) return -1;
    }
    yajl_status st = yajl_complete_parse(pk->yajl);
    tg_jpick_free(pk);
    if (st != yajl_status_ok) {
        pk->failed = 1;
        return -1;
    }
    return 0;
}

int tg_jpick_doc(tg_jpick_t *pk, tg_jpick_spec_t *spec, const char *p, size_t n)
{
    if (tg_jpick_begin(pk, spec) != 0) return -1;
    if (n && parse(pk, p, n) != 0) return -1;
    return tg_jpick_end(pk);
}
