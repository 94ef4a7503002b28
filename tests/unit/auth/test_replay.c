/* Tests src/auth/replay.c at fixed instants: seen within the window, forgotten after it,
 * the bound (never more than capacity entries) and the floor that keeps a dropped entry
 * from being replayed, chains of colliding buckets, and several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>

#include "auth/replay.h"

static void mac_of(unsigned n, unsigned char mac[32])
{
    memset(mac, 0, 32);
    memcpy(mac + 8, &n, sizeof n); /* the first 8 bytes equal: every entry in one bucket */
    mac[31] = (unsigned char)n;
}

#define T 1798761600

static void test_seen_and_forgotten(void **state)
{
    (void)state;
    tg_replay_t *rc = tg_replay_new(8);
    unsigned char a[32], b[32];
    mac_of(1, a);
    mac_of(2, b);
    assert_int_equal(tg_replay_check(rc, a, T, 300, T), TG_REPLAY_FRESH);
    assert_int_equal(tg_replay_check(rc, b, T, 300, T), TG_REPLAY_FRESH);
    assert_int_equal(tg_replay_check(rc, a, T, 300, T + 300), TG_REPLAY_SEEN);
    assert_int_equal(tg_replay_check(rc, b, T, 300, T + 1), TG_REPLAY_SEEN);
    /* Past its window the signature's timestamp is refused anyway (sign.c); the cache
     * itself no longer holds it against a request. */
    assert_int_equal(tg_replay_check(rc, a, T, 300, T + 301), TG_REPLAY_FRESH);
    assert_int_equal(tg_replay_size(rc), 3);
    tg_replay_free(rc);
}

static void test_bound_and_floor(void **state)
{
    (void)state;
    tg_replay_t *rc = tg_replay_new(4);
    unsigned char m[32];
    for (unsigned i = 0; i < 4; i++) {
        mac_of(i, m);
        assert_int_equal(tg_replay_check(rc, m, T + i, 300, T + 4), TG_REPLAY_FRESH);
    }
    /* Full of live entries: the fifth drops the oldest (ts T) and raises the floor to T. */
    mac_of(4, m);
    assert_int_equal(tg_replay_check(rc, m, T + 4, 300, T + 4), TG_REPLAY_FRESH);
    assert_int_equal(tg_replay_size(rc), 4);
    mac_of(0, m); /* the dropped one, replayed: too old, never fresh */
    assert_int_equal(tg_replay_check(rc, m, T, 300, T + 5), TG_REPLAY_TOO_OLD);
    mac_of(99, m); /* a new one at the floor: too old too */
    assert_int_equal(tg_replay_check(rc, m, T, 300, T + 5), TG_REPLAY_TOO_OLD);
    mac_of(1, m); /* still held */
    assert_int_equal(tg_replay_check(rc, m, T + 1, 300, T + 5), TG_REPLAY_SEEN);
    /* Expired entries make room without raising the floor. */
    tg_replay_t *r2 = tg_replay_new(2);
    for (unsigned i = 0; i < 2; i++) {
        mac_of(i, m);
        assert_int_equal(tg_replay_check(r2, m, T, 10, T), TG_REPLAY_FRESH);
    }
    mac_of(7, m);
    assert_int_equal(tg_replay_check(r2, m, T + 20, 10, T + 20), TG_REPLAY_FRESH);
    mac_of(8, m);
    assert_int_equal(tg_replay_check(r2, m, T + 1, 10, T + 20), TG_REPLAY_FRESH);
    tg_replay_free(r2);
    /* Many rounds over a small ring: the chains stay consistent. */
    for (unsigned i = 10; i < 10000; i++) {
        mac_of(i, m);
        assert_int_equal(tg_replay_check(rc, m, T + i, 1000000, T + i), TG_REPLAY_FRESH);
        assert_int_equal(tg_replay_check(rc, m, T + i, 1000000, T + i), TG_REPLAY_SEEN);
    }
    assert_int_equal(tg_replay_size(rc), 4);
    tg_replay_free(rc);
}

/* One key's flood raises that key's floor, not another's (attack14: 4 signatures dated
 * at the window's far end, then a fifth, raised the one floor to now + window, and every
 * key's signature of the current second was refused for the next 300 s). */
static void test_floor_per_key(void **state)
{
    (void)state;
    tg_replay_t *rc = tg_replay_new(4);
    unsigned char m[32];
    for (unsigned i = 0; i < 5; i++) {
        mac_of(i, m);
        assert_int_equal(tg_replay_check_for(rc, "key_flooder", m, T + 300, 300, T),
                         TG_REPLAY_FRESH);
    }
    mac_of(50, m); /* another key, signing now: not the flooder's floor */
    assert_int_equal(tg_replay_check_for(rc, "key_victim", m, T, 300, T), TG_REPLAY_FRESH);
    assert_int_equal(tg_replay_check_for(rc, "key_victim", m, T, 300, T + 1), TG_REPLAY_SEEN);
    mac_of(51, m); /* the flooder's own now-dated one: below its floor */
    assert_int_equal(tg_replay_check_for(rc, "key_flooder", m, T, 300, T), TG_REPLAY_TOO_OLD);
    mac_of(0, m); /* the flooder's dropped signature, replayed: never fresh */
    assert_int_equal(tg_replay_check_for(rc, "key_flooder", m, T + 300, 300, T + 1),
                     TG_REPLAY_TOO_OLD);
    /* The victim's entries, dropped by the flood in turn, raise the victim's floor to its
     * own timestamps only: its next second is fresh. */
    for (unsigned i = 60; i < 70; i++) {
        mac_of(i, m);
        tg_replay_check_for(rc, "key_flooder", m, T + 300, 300, T + 1);
    }
    mac_of(52, m);
    assert_int_equal(tg_replay_check_for(rc, "key_victim", m, T + 1, 300, T + 1), TG_REPLAY_FRESH);
    tg_replay_free(rc);
}

typedef struct {
    tg_replay_t *rc;
    unsigned base;
    int fresh;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    unsigned char m[32];
    for (unsigned i = 0; i < 2000; i++) {
        mac_of(i, m); /* every thread sends the same 2000 signatures */
        if (tg_replay_check(w->rc, m, T, 300, T) == TG_REPLAY_FRESH) w->fresh++;
    }
    return NULL;
}

/* Four threads race the same signatures: each is accepted exactly once. */
static void test_threads(void **state)
{
    (void)state;
    tg_replay_t *rc = tg_replay_new(100000);
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){rc, 0, 0};
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    int fresh = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        fresh += w[i].fresh;
    }
    assert_int_equal(fresh, 2000);
    tg_replay_free(rc);
}

/* The shared cache's key: the prefix and SHA-256 of the MAC in hex, never the MAC itself. */
static void test_shared_key(void **state)
{
    (void)state;
    unsigned char mac[32] = {0};
    char key[TG_REPLAY_KEY_SIZE];
    assert_int_equal(tg_replay_key(mac, key), TG_REPLAY_KEY_SIZE - 1);
    assert_string_equal(
        key, "tg:replay:66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    char other[TG_REPLAY_KEY_SIZE];
    mac[31] = 1;
    assert_int_equal(tg_replay_key(mac, other), TG_REPLAY_KEY_SIZE - 1);
    assert_string_not_equal(key, other);
}

/* Kept while the timestamp can be accepted on this clock, and the skew allowance after. */
static void test_shared_ttl(void **state)
{
    (void)state;
    assert_int_equal(tg_replay_ttl_ms(T, 300, T), (300 + TG_REPLAY_SKEW_S) * 1000);
    /* Signed ahead of our clock: acceptable until ts + window, so kept twice as long. */
    assert_int_equal(tg_replay_ttl_ms(T + 300, 300, T), (600 + TG_REPLAY_SKEW_S) * 1000);
    assert_int_equal(tg_replay_ttl_ms(T - 300, 300, T), TG_REPLAY_SKEW_S * 1000);
    /* Never 0 or negative (PX refuses them): at least a second. */
    assert_int_equal(tg_replay_ttl_ms(T - 1000, 300, T), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seen_and_forgotten), cmocka_unit_test(test_shared_key),
        cmocka_unit_test(test_shared_ttl),         cmocka_unit_test(test_bound_and_floor),
        cmocka_unit_test(test_floor_per_key),      cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
