/* JSON member picker: see jpick.h.
 *
 * Depth d counts the containers open: the root value sits at depth 0, the root object's
 * members at depth 1. A value at depth d matches path p when p has d keys and the keys
 * read at depths 1..d are p's; live[d] holds the paths whose first d-1 keys matched the
 * objects above, keyed[d] those whose d-th key is also the key just read. */
#include "util/jpick.h"

#include <string.h>
#include <yajl/yajl_parse.h>

#define TRACKED (TG_JPICK_DEPTH + 1) /* deepest depth whose members are counted */

/* 1 when the NUL-terminated key equals the k bytes at s (which may hold a NUL). */
static int key_eq(const char *key, const unsigned char *s, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (key[i] == '\0' || key[i] != (char)s[i]) return 0;
    return key[k] == '\0';
}

/* A value starts at the current depth: returns the paths it is the value of, with their
 * type set. */
static uint32_t value(tg_jpick_t *pk, tg_jtype_t t)
{
    int d = pk->depth;
    pk->progressed = 1;
    if (d == 0) {
        pk->root = t;
        return 0;
    }
    uint32_t hit = 0;
    if (d <= TG_JPICK_DEPTH) {
        for (uint32_t m = pk->keyed[d]; m; m &= m - 1) {
            int p = __builtin_ctz(m);
            if (pk->plen[p] != d) continue;
            pk->v[p].type = t;
            pk->v[p].n = 0;
            hit |= 1u << p;
        }
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
        if (parent == 0) {
            live = pk->npaths >= 32 ? UINT32_MAX : (1u << pk->npaths) - 1;
        } else if (parent <= TG_JPICK_DEPTH) {
            for (uint32_t m = pk->keyed[parent]; m; m &= m - 1) {
                int p = __builtin_ctz(m);
                if (pk->plen[p] > parent) live |= 1u << p;
            }
        }
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

static int on_int(void *ud, long long i)
{
    tg_jpick_t *pk = ud;
    element(pk);
    for (uint32_t m = value(pk, TG_JT_INT); m; m &= m - 1)
        pk->v[__builtin_ctz(m)].i = (int64_t)i;
    return 1;
}

static int on_double(void *ud, double x)
{
    (void)x;
    element(ud);
    value(ud, TG_JT_REAL);
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
    element(pk);
    open_container(pk, value(pk, TG_JT_OBJECT), 0);
    return 1;
}

static int on_start_array(void *ud)
{
    tg_jpick_t *pk = ud;
    element(pk);
    open_container(pk, value(pk, TG_JT_ARRAY), 1);
    return 1;
}

static int on_end(void *ud)
{
    tg_jpick_t *pk = ud;
    pk->depth--;
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
    uint32_t keyed = 0;
    for (uint32_t m = pk->live[d]; m; m &= m - 1) {
        int p = __builtin_ctz(m);
        if (!key_eq(pk->paths[p].key[d - 1], k, n)) continue;
        keyed |= 1u << p;
        pk->v[p].type = TG_JT_ABSENT; /* a repeated key replaces the earlier value */
    }
    pk->keyed[d] = keyed;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_integer = on_int,
    .yajl_double = on_double,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

void tg_jpick_free(tg_jpick_t *pk)
{
    if (pk->yajl) yajl_free(pk->yajl);
    pk->yajl = NULL;
}

static int fail(tg_jpick_t *pk)
{
    tg_jpick_free(pk);
    pk->failed = 1;
    return -1;
}

int tg_jpick_begin(tg_jpick_t *pk, const tg_jpath_t *paths, size_t npaths)
{
    tg_jpick_free(pk);
    pk->paths = paths;
    pk->npaths = npaths > TG_JPICK_MAX ? TG_JPICK_MAX : npaths;
    pk->depth = 0;
    pk->failed = pk->too_big = pk->progressed = 0;
    pk->idle = 0;
    pk->root = TG_JT_ABSENT;
    pk->root_n = 0;
    for (size_t p = 0; p < pk->npaths; p++) {
        uint8_t k = 0;
        while (k < TG_JPICK_DEPTH && paths[p].key[k])
            k++;
        pk->plen[p] = k;
        pk->v[p].type = TG_JT_ABSENT;
    }
    pk->yajl = yajl_alloc(&callbacks, NULL, pk);
    return pk->yajl ? 0 : fail(pk);
}

int tg_jpick_feed(tg_jpick_t *pk, const char *p, size_t n)
{
    if (pk->failed || !pk->yajl) return -1;
    if (n == 0) return 0;
    pk->progressed = 0;
    if (yajl_parse(pk->yajl, (const unsigned char *)p, n) != yajl_status_ok) return fail(pk);
    /* After a piece in which something completed, what yajl holds is at most that piece;
     * pieces in which nothing did add up. */
    pk->idle = pk->progressed ? 0 : pk->idle + n;
    if (pk->idle > TG_JPICK_TOKEN_MAX) {
        pk->too_big = 1;
        return fail(pk);
    }
    return 0;
}

int tg_jpick_end(tg_jpick_t *pk)
{
    if (pk->failed || !pk->yajl) return -1;
    yajl_status st = yajl_complete_parse(pk->yajl);
    tg_jpick_free(pk);
    if (st != yajl_status_ok) {
        pk->failed = 1;
        return -1;
    }
    return 0;
}

int tg_jpick_doc(tg_jpick_t *pk, const tg_jpath_t *paths, size_t npaths, const char *p, size_t n)
{
    if (tg_jpick_begin(pk, paths, npaths) != 0) return -1;
    if (n && yajl_parse(pk->yajl, (const unsigned char *)p, n) != yajl_status_ok) return fail(pk);
    return tg_jpick_end(pk);
}
