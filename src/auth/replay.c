/* The replay cache: see replay.h. Entries live in a ring of `capacity` nodes, reused in
 * insertion order (the oldest first), each also on a chain of a hash table indexed by the
 * signature's first bytes (an HMAC: already uniform, no second hash). */
#include "auth/replay.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Floors, one per group of keys (the key id's hash modulo FLOORS): an entry dropped while
 * live raises its own key's floor only, so a key that floods the cache (even with
 * timestamps at the window's far end, which would put one floor at now + window and
 * refuse every key's current signatures) shortens the window of its own group, never
 * everyone's. 8 KiB; two keys share a floor with odds 1 in 1024. */
#define FLOORS 1024

typedef struct node {
    unsigned char mac[32];
    int64_t ts_s, until_s;
    int32_t next; /* the next node on its bucket's chain; -1: the end */
    uint16_t who; /* its key's floor */
} node_t;

struct tg_replay {
    pthread_mutex_t mu; /* guards everything below */
    size_t cap;
    node_t *nodes;    /* the ring: NULL until the first check */
    int32_t *buckets; /* mask + 1 chain heads; -1: empty */
    size_t mask;
    size_t count; /* nodes in use (cap once full) */
    size_t next;  /* the slot the next entry takes (the oldest entry once full) */
    int64_t floor_s[FLOORS];
};

tg_replay_t *tg_replay_new(size_t capacity)
{
    tg_replay_t *rc = calloc(1, sizeof *rc);
    if (!rc) return NULL;
    pthread_mutex_init(&rc->mu, NULL);
    rc->cap = capacity ? capacity : 1;
    if (rc->cap > INT32_MAX / 4) rc->cap = INT32_MAX / 4;
    for (size_t i = 0; i < FLOORS; i++)
        rc->floor_s[i] = INT64_MIN;
    return rc;
}

void tg_replay_free(tg_replay_t *rc)
{
    if (!rc) return;
    pthread_mutex_destroy(&rc->mu);
    free(rc->nodes);
    free(rc->buckets);
    free(rc);
}

static size_t bucket_of(const tg_replay_t *rc, const unsigned char mac[32])
{
    uint64_t h;
    memcpy(&h, mac, sizeof h);
    return (size_t)h & rc->mask;
}

static int alloc_table(tg_replay_t *rc)
{
    size_t nb = 16;
    while (nb < rc->cap)
        nb <<= 1;
    rc->nodes = malloc(rc->cap * sizeof *rc->nodes);
    rc->buckets = malloc(nb * sizeof *rc->buckets);
    if (!rc->nodes || !rc->buckets) {
        free(rc->nodes);
        free(rc->buckets);
        rc->nodes = NULL;
        rc->buckets = NULL;
        return -1;
    }
    memset(rc->buckets, 0xff, nb * sizeof *rc->buckets); /* every head -1 */
    rc->mask = nb - 1;
    return 0;
}

/* Unlinks node i from its chain. */
static void unlink_node(tg_replay_t *rc, int32_t i)
{
    int32_t *at = &rc->buckets[bucket_of(rc, rc->nodes[i].mac)];
    while (*at != -1 && *at != i)
        at = &rc->nodes[*at].next;
    if (*at == i) *at = rc->nodes[i].next;
}

/* FNV-1a of the key id: spreads ids that differ in a character or two. */
static uint16_t floor_of(const char *who)
{
    uint32_t h = 2166136261u;
    for (const char *p = who ? who : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return (uint16_t)(h % FLOORS);
}

tg_replay_res_t tg_replay_check(tg_replay_t *rc, const unsigned char mac[32], int64_t ts_s,
                                int64_t window_s, int64_t now_s)
{
    return tg_replay_check_for(rc, NULL, mac, ts_s, window_s, now_s);
}

tg_replay_res_t tg_replay_check_for(tg_replay_t *rc, const char *who, const unsigned char mac[32],
                                    int64_t ts_s, int64_t window_s, int64_t now_s)
{
    tg_replay_res_t res = TG_REPLAY_FRESH;
    uint16_t w = floor_of(who);
    pthread_mutex_lock(&rc->mu);
    if (!rc->nodes && alloc_table(rc) != 0) {
        res = TG_REPLAY_NOMEM;
        goto out;
    }
    for (int32_t i = rc->buckets[bucket_of(rc, mac)]; i != -1; i = rc->nodes[i].next)
        if (memcmp(rc->nodes[i].mac, mac, 32) == 0 && rc->nodes[i].until_s >= now_s) {
            res = TG_REPLAY_SEEN;
            goto out;
        }
    if (ts_s <= rc->floor_s[w]) {
        res = TG_REPLAY_TOO_OLD;
        goto out;
    }
    int32_t slot = (int32_t)rc->next;
    if (rc->count == rc->cap) {
        node_t *old = &rc->nodes[slot];
        /* Still within its window: forgetting it must not let it through again. */
        if (old->until_s >= now_s && old->ts_s > rc->floor_s[old->who])
            rc->floor_s[old->who] = old->ts_s;
        unlink_node(rc, slot);
    } else {
        rc->count++;
    }
    node_t *n = &rc->nodes[slot];
    memcpy(n->mac, mac, 32);
    n->ts_s = ts_s;
    n->until_s = ts_s + window_s;
    n->who = w;
    size_t b = bucket_of(rc, mac);
    n->next = rc->buckets[b];
    rc->buckets[b] = slot;
    rc->next = (rc->next + 1) % rc->cap;
out:
    pthread_mutex_unlock(&rc->mu);
    return res;
}

size_t tg_replay_size(tg_replay_t *rc)
{
    pthread_mutex_lock(&rc->mu);
    size_t n = rc->count;
    pthread_mutex_unlock(&rc->mu);
    return n;
}

size_t tg_replay_key(const unsigned char mac[32], char out[TG_REPLAY_KEY_SIZE])
{
    static const char hexd[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(mac, 32, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) return 0;
    size_t n = sizeof TG_REPLAY_KEY_PREFIX - 1;
    memcpy(out, TG_REPLAY_KEY_PREFIX, n);
    for (unsigned i = 0; i < 32; i++) {
        out[n++] = hexd[md[i] >> 4];
        out[n++] = hexd[md[i] & 15];
    }
    out[n] = '\0';
    return n;
}

int64_t tg_replay_ttl_ms(int64_t ts_s, int64_t window_s, int64_t now_s)
{
    int64_t left = ts_s + window_s - now_s + TG_REPLAY_SKEW_S;
    return left < 1 ? 1000 : left * 1000;
}
