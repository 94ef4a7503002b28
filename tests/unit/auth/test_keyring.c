/* Tests src/auth/keyring.c against a fake store: lookups by secret, revoked
 * keys, disabled tenants, expired keys at fixed instants, signing secrets opened with the
 * KEK (and not without it), reload replacing the snapshot, many keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth/apikey.h"
#include "auth/keyring.h"
#include "store/backend.h"

typedef struct fake_key {
    char secret[64];
    char id[32];
    char tenant[TG_TENANT_SIZE];
    int key_active, tenant_active;
    int64_t expires_us;
    int signing;
    unsigned char sealed[TG_SIGNING_SEALED_LEN];
} fake_key_t;

static fake_key_t keys[5000];
static size_t nkeys;

static int fake_auth_load(tg_store_t *s, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                          tg_err_t *err)
{
    (void)s;
    (void)err;
    for (size_t i = 0; i < nkeys; i++) {
        unsigned char sha[32];
        tg_apikey_hash(keys[i].secret, strlen(keys[i].secret), sha);
        tg_auth_row_t row = {sha,
                             keys[i].id,
                             keys[i].tenant,
                             keys[i].key_active,
                             keys[i].tenant_active,
                             keys[i].expires_us,
                             keys[i].signing,
                             {0}};
        memcpy(row.signing_sealed, keys[i].sealed, sizeof row.signing_sealed);
        if (cb(&row, ud) != 0) return -1;
    }
    return 0;
}

/* Every tenant named by a key, once, active as its keys say (the keyring's JWT view). */
static int fake_tenant_list(tg_store_t *s, int (*cb)(const tg_tenant_t *, void *), void *ud,
                            tg_err_t *err)
{
    (void)s;
    (void)err;
    for (size_t i = 0; i < nkeys; i++) {
        size_t j = 0;
        while (j < i && strcmp(keys[j].tenant, keys[i].tenant))
            j++;
        if (j < i) continue;
        tg_tenant_t t = {0};
        snprintf(t.id, sizeof t.id, "%s", keys[i].tenant);
        snprintf(t.status, sizeof t.status, "%s", keys[i].tenant_active ? "active" : "disabled");
        if (cb(&t, ud) != 0) return -1;
    }
    return 0;
}

static const struct tg_store_tenant_ops fake_ops = {.auth_load = fake_auth_load,
                                                    .tenant_list = fake_tenant_list};
static tg_store_t fake_store = {.tenants = &fake_ops};

static void add(const char *secret, const char *id, const char *tenant, int ka, int ta)
{
    fake_key_t *k = &keys[nkeys++];
    snprintf(k->secret, sizeof k->secret, "%s", secret);
    snprintf(k->id, sizeof k->id, "%s", id);
    snprintf(k->tenant, sizeof k->tenant, "%s", tenant);
    k->key_active = ka;
    k->tenant_active = ta;
    k->expires_us = 0;
    k->signing = 0;
}

#define NOW 1798761600000000 /* 2027-01-01T00:00:00Z: a fixed instant */

/* tg_keyring_check at now, the tenant and key id copied out when it names them. */
static tg_auth_result_t check_at(tg_keyring_t *kr, tg_keycache_t *kc, const char *secret,
                                 size_t len, int64_t now, char tenant[TG_TENANT_SIZE], char id[32],
                                 tg_key_match_t *m)
{
    tg_key_match_t local;
    if (!m) m = &local;
    memset(m, 0x5a, sizeof *m);
    tg_auth_result_t r = tg_keyring_check(kr, kc, secret, len, now, m);
    if (r != TG_AUTH_MISSING && r != TG_AUTH_UNKNOWN) {
        memcpy(tenant, m->tenant, TG_TENANT_SIZE);
        memcpy(id, m->key_id, 32);
    }
    return r;
}

static tg_auth_result_t tg_keyring_check_cached(tg_keyring_t *kr, tg_keycache_t *kc,
                                                const char *secret, size_t len,
                                                char tenant[TG_TENANT_SIZE], char id[32])
{
    return check_at(kr, kc, secret, len, NOW, tenant, id, NULL);
}

static tg_auth_result_t check(tg_keyring_t *kr, const char *secret, char tenant[TG_TENANT_SIZE],
                              char id[32])
{
    return check_at(kr, NULL, secret, secret ? strlen(secret) : 0, NOW, tenant, id, NULL);
}

static void test_lookup_states(void **state)
{
    (void)state;
    nkeys = 0;
    add("tg_good", "key_1", "acme", 1, 1);
    add("tg_revoked", "key_2", "acme", 0, 1);
    add("tg_disabled", "key_3", "globex", 1, 0);
    tg_keyring_t *kr = tg_keyring_new();
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    char tenant[TG_TENANT_SIZE], id[32];
    assert_int_equal(check(kr, "tg_good", tenant, id), TG_AUTH_OK);
    assert_string_equal(tenant, "acme");
    assert_string_equal(id, "key_1");
    assert_int_equal(check(kr, "tg_revoked", tenant, id), TG_AUTH_REVOKED);
    assert_string_equal(id, "key_2");
    assert_int_equal(check(kr, "tg_disabled", tenant, id), TG_AUTH_DISABLED);
    assert_string_equal(tenant, "globex");
    assert_int_equal(check(kr, "tg_nope", tenant, id), TG_AUTH_UNKNOWN);
    assert_int_equal(check(kr, "tg_goo", tenant, id), TG_AUTH_UNKNOWN);
    assert_int_equal(check(kr, NULL, tenant, id), TG_AUTH_MISSING);
    assert_int_equal(check(kr, "", tenant, id), TG_AUTH_MISSING);
    assert_string_equal(tg_auth_result_reason(TG_AUTH_REVOKED), "revoked_key");
    tg_keyring_free(kr);
}

/* A JWT names a tenant (and maybe one of its keys): its status and the key's come from the
 * same snapshot. */
static void test_tenant_states(void **state)
{
    (void)state;
    nkeys = 0; /* a store without tenants or keys loads (UBSan: no qsort of NULL) */
    tg_keyring_t *empty = tg_keyring_new();
    assert_int_equal(tg_keyring_load(empty, &fake_store, NULL), 0);
    assert_int_equal(tg_keyring_check_tenant(empty, "acme", "", NOW), TG_AUTH_NO_TENANT);
    tg_keyring_free(empty);
    add("tg_good", "key_1", "acme", 1, 1);
    add("tg_revoked", "key_2", "acme", 0, 1);
    add("tg_disabled", "key_3", "globex", 1, 0);
    add("tg_other", "key_4", "initech", 1, 1);
    add("tg_dated", "key_5", "acme", 1, 1);
    keys[4].expires_us = NOW;
    tg_keyring_t *kr = tg_keyring_new();
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "", NOW), TG_AUTH_NO_TENANT); /* empty */
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "", NOW), TG_AUTH_OK);
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "key_1", NOW), TG_AUTH_OK);
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "key_2", NOW), TG_AUTH_REVOKED);
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "key_4", NOW),
                     TG_AUTH_UNKNOWN); /* not its */
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "key_9", NOW), TG_AUTH_UNKNOWN);
    /* A key claim naming an expired key: refused from its instant on, as the key itself. */
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "key_5", NOW - 1), TG_AUTH_OK);
    assert_int_equal(tg_keyring_check_tenant(kr, "acme", "key_5", NOW), TG_AUTH_EXPIRED);
    assert_int_equal(tg_keyring_check_tenant(kr, "globex", "", NOW), TG_AUTH_DISABLED);
    assert_int_equal(tg_keyring_check_tenant(kr, "initech", "", NOW), TG_AUTH_OK);
    assert_int_equal(tg_keyring_check_tenant(kr, "nobody", "", NOW), TG_AUTH_NO_TENANT);
    assert_int_equal(tg_keyring_check_tenant(kr, "acm", "", NOW), TG_AUTH_NO_TENANT);
    assert_string_equal(tg_auth_result_reason(TG_AUTH_NO_TENANT), "unknown_tenant");
    tg_keyring_free(kr);
}

static void test_reload_replaces(void **state)
{
    (void)state;
    nkeys = 0;
    add("tg_a", "key_a", "t1", 1, 1);
    tg_keyring_t *kr = tg_keyring_new();
    char tenant[TG_TENANT_SIZE], id[32];
    assert_int_equal(check(kr, "tg_a", tenant, id), TG_AUTH_UNKNOWN); /* empty before load */
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    assert_int_equal(check(kr, "tg_a", tenant, id), TG_AUTH_OK);
    keys[0].key_active = 0; /* revoked by "another process" */
    add("tg_b", "key_b", "t2", 1, 1);
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    assert_int_equal(check(kr, "tg_a", tenant, id), TG_AUTH_REVOKED);
    assert_int_equal(check(kr, "tg_b", tenant, id), TG_AUTH_OK);
    assert_int_equal(tg_keyring_size(kr), 2);
    tg_keyring_free(kr);
}

static void test_many_keys(void **state)
{
    (void)state;
    nkeys = 0;
    char s[64], i[32], t[64];
    for (int k = 0; k < 5000; k++) {
        snprintf(s, sizeof s, "tg_secret_%d", k);
        snprintf(i, sizeof i, "key_%d", k);
        snprintf(t, sizeof t, "tenant_%d", k % 97);
        add(s, i, t, 1, 1);
    }
    tg_keyring_t *kr = tg_keyring_new();
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    assert_int_equal(tg_keyring_size(kr), 5000);
    char tenant[TG_TENANT_SIZE], id[32];
    for (int k = 0; k < 5000; k += 7) {
        snprintf(s, sizeof s, "tg_secret_%d", k);
        assert_int_equal(check(kr, s, tenant, id), TG_AUTH_OK);
        snprintf(i, sizeof i, "key_%d", k);
        assert_string_equal(id, i);
    }
    assert_int_equal(check(kr, "tg_secret_5000", tenant, id), TG_AUTH_UNKNOWN);
    tg_keyring_free(kr);
}

/* A connection's cache skips the hash of a secret presented again, never the lookup: a
 * revoked key is refused at once, another secret (even of the same length, even one byte
 * off) is hashed and judged on its own, and one too long to keep is still checked. */
static void test_cached_check(void **state)
{
    (void)state;
    nkeys = 0;
    add("tg_one_AAAA", "key_1", "acme", 1, 1);
    add("tg_two_BBBB", "key_2", "globex", 1, 1);
    char longer[200];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    tg_keyring_t *kr = tg_keyring_new();
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    tg_keycache_t kc = {0};
    char tenant[TG_TENANT_SIZE], id[32];
    const char *one = "tg_one_AAAA", *two = "tg_two_BBBB", *off = "tg_one_AAAB";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tg_keyring_check_cached(kr, &kc, one, strlen(one), tenant, id),
                         TG_AUTH_OK);
        assert_string_equal(tenant, "acme");
        assert_int_equal(kc.len, strlen(one));
    }
    assert_int_equal(tg_keyring_check_cached(kr, &kc, off, strlen(off), tenant, id),
                     TG_AUTH_UNKNOWN);
    assert_int_equal(tg_keyring_check_cached(kr, &kc, two, strlen(two), tenant, id), TG_AUTH_OK);
    assert_string_equal(tenant, "globex");
    assert_int_equal(tg_keyring_check_cached(kr, &kc, one, strlen(one), tenant, id), TG_AUTH_OK);
    assert_string_equal(tenant, "acme");
    /* Revoked in the store, reloaded: the cached hash finds the revoked entry. */
    keys[0].key_active = 0;
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    assert_int_equal(tg_keyring_check_cached(kr, &kc, one, strlen(one), tenant, id),
                     TG_AUTH_REVOKED);
    assert_int_equal(tg_keyring_check_cached(kr, &kc, longer, strlen(longer), tenant, id),
                     TG_AUTH_UNKNOWN);
    assert_int_equal(kc.len, 0); /* not kept */
    assert_int_equal(tg_keyring_check_cached(kr, NULL, two, strlen(two), tenant, id), TG_AUTH_OK);
    tg_keycache_clear(&kc);
    for (size_t i = 0; i < sizeof kc.secret; i++)
        assert_int_equal(kc.secret[i], 0);
    tg_keyring_free(kr);
}

/* A key past its expires_us is refused at the request's instant, from the snapshot (no
 * reload); one instant before, it works; revoked wins over expired. */
static void test_expiry(void **state)
{
    (void)state;
    nkeys = 0;
    add("tg_old", "key_old", "acme", 1, 1);
    keys[0].expires_us = NOW;
    add("tg_new", "key_new", "acme", 1, 1);
    add("tg_gone", "key_gone", "acme", 0, 1);
    keys[2].expires_us = NOW - 1;
    tg_keyring_t *kr = tg_keyring_new();
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    char tenant[TG_TENANT_SIZE], id[32];
    assert_int_equal(check_at(kr, NULL, "tg_old", 6, NOW - 1, tenant, id, NULL), TG_AUTH_OK);
    assert_int_equal(check_at(kr, NULL, "tg_old", 6, NOW, tenant, id, NULL), TG_AUTH_EXPIRED);
    assert_string_equal(id, "key_old"); /* the event names it */
    assert_int_equal(check_at(kr, NULL, "tg_old", 6, NOW + 86400000000, tenant, id, NULL),
                     TG_AUTH_EXPIRED);
    assert_int_equal(check_at(kr, NULL, "tg_new", 6, NOW + 86400000000, tenant, id, NULL),
                     TG_AUTH_OK);
    assert_int_equal(check_at(kr, NULL, "tg_gone", 7, NOW, tenant, id, NULL), TG_AUTH_REVOKED);
    assert_string_equal(tg_auth_result_reason(TG_AUTH_EXPIRED), "key_expired");
    /* Through the connection's cache too: the hash is cached, the verdict never is. */
    tg_keycache_t kc = {0};
    assert_int_equal(check_at(kr, &kc, "tg_old", 6, NOW - 1, tenant, id, NULL), TG_AUTH_OK);
    assert_int_equal(check_at(kr, &kc, "tg_old", 6, NOW, tenant, id, NULL), TG_AUTH_EXPIRED);
    tg_keycache_clear(&kc);
    tg_keyring_free(kr);
}

#define SECRET "tgs_0123456789abcdefghijABCDEFGHIJ0123456789abc" /* 47 bytes */

static void seal_for(fake_key_t *k, const tg_kek_t *kek, const char *aad)
{
    unsigned char *blob;
    size_t bl;
    tg_err_t err;
    assert_int_equal(strlen(SECRET), TG_SIGNING_SECRET_LEN);
    assert_int_equal(tg_crypt_seal(kek, SECRET, strlen(SECRET), aad, strlen(aad), &blob, &bl, &err),
                     0);
    assert_int_equal(bl, TG_SIGNING_SEALED_LEN);
    memcpy(k->sealed, blob, bl);
    k->signing = 1;
    free(blob);
}

/* The signing secret comes out opened with the KEK; without the KEK, or sealed for another
 * key's row (the AAD is the key id), the key has none. */
static void test_signing_secret(void **state)
{
    (void)state;
    tg_kek_t kek, other;
    static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    static const char hex2[] = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    assert_int_equal(tg_kek_parse(hex, 64, "t", &kek, NULL), 0);
    assert_int_equal(tg_kek_parse(hex2, 64, "t", &other, NULL), 0);
    nkeys = 0;
    add("tg_s", "key_s", "acme", 1, 1);
    seal_for(&keys[0], &kek, "key_s");
    add("tg_moved", "key_moved", "acme", 1, 1);
    seal_for(&keys[1], &kek, "key_s"); /* another row's blob copied here */
    add("tg_plain", "key_plain", "acme", 1, 1);
    add("tg_otherkek", "key_o", "acme", 1, 1);
    seal_for(&keys[3], &other, "key_o");
    tg_keyring_t *kr = tg_keyring_new();
    tg_keyring_set_kek(kr, &kek);
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    char tenant[TG_TENANT_SIZE], id[32];
    tg_key_match_t m;
    assert_int_equal(check_at(kr, NULL, "tg_s", 4, NOW, tenant, id, &m), TG_AUTH_OK);
    assert_int_equal(m.signing_len, TG_SIGNING_SECRET_LEN);
    assert_memory_equal(m.signing, SECRET, TG_SIGNING_SECRET_LEN);
    assert_int_equal(check_at(kr, NULL, "tg_moved", 8, NOW, tenant, id, &m), TG_AUTH_OK);
    assert_int_equal(m.signing_len, 0);
    assert_int_equal(check_at(kr, NULL, "tg_plain", 8, NOW, tenant, id, &m), TG_AUTH_OK);
    assert_int_equal(m.signing_len, 0);
    assert_int_equal(check_at(kr, NULL, "tg_otherkek", 11, NOW, tenant, id, &m), TG_AUTH_OK);
    assert_int_equal(m.signing_len, 0);
    /* Without the KEK: the key still authenticates, with no secret. */
    tg_keyring_set_kek(kr, NULL);
    assert_int_equal(tg_keyring_load(kr, &fake_store, NULL), 0);
    assert_int_equal(check_at(kr, NULL, "tg_s", 4, NOW, tenant, id, &m), TG_AUTH_OK);
    assert_int_equal(m.signing_len, 0);
    tg_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expiry),        cmocka_unit_test(test_signing_secret),
        cmocka_unit_test(test_lookup_states), cmocka_unit_test(test_tenant_states),
        cmocka_unit_test(test_cached_check),  cmocka_unit_test(test_reload_replaces),
        cmocka_unit_test(test_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
