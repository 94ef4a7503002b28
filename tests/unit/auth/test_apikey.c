/* Tests src/auth/apikey.c: secret shape, hashing, constant-time compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "auth/apikey.h"

static void test_generate_shape(void **state)
{
    (void)state;
    char secret[TG_APIKEY_SECRET_MAX], id[TG_APIKEY_ID_MAX], prefix[TG_APIKEY_PREFIX_LEN + 1];
    unsigned char sha[32], again[32];
    assert_int_equal(tg_apikey_generate(secret, id, prefix, sha), 0);
    assert_int_equal(strlen(secret), 46);
    assert_memory_equal(secret, "tg_", 3);
    for (size_t i = 3; i < strlen(secret); i++)
        assert_non_null(
            strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", secret[i]));
    assert_int_equal(strlen(id), 20);
    assert_memory_equal(id, "key_", 4);
    assert_int_equal(strncmp(prefix, secret, 8), 0);
    assert_int_equal(strlen(prefix), 8);
    tg_apikey_hash(secret, strlen(secret), again);
    assert_true(tg_apikey_hash_eq(sha, again));
}

static void test_generate_unique(void **state)
{
    (void)state;
    char a[TG_APIKEY_SECRET_MAX], b[TG_APIKEY_SECRET_MAX], ia[32], ib[32], pa[9], pb[9];
    unsigned char sa[32], sb[32];
    tg_apikey_generate(a, ia, pa, sa);
    tg_apikey_generate(b, ib, pb, sb);
    assert_string_not_equal(a, b);
    assert_string_not_equal(ia, ib);
    assert_false(tg_apikey_hash_eq(sa, sb));
}

static void test_hash_known_vector(void **state)
{
    (void)state;
    /* SHA-256("abc") */
    static const unsigned char want[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                           0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                           0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                           0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char got[32];
    tg_apikey_hash("abc", 3, got);
    assert_memory_equal(got, want, 32);
    unsigned char other[32];
    memcpy(other, want, 32);
    other[31] ^= 1;
    assert_false(tg_apikey_hash_eq(got, other));
}

/* An imported secret (any printable form): a fresh id, its first 8 characters (at most half
 * of a shorter one) as prefix, and the same hash the gateway computes for it. */
static void test_import(void **state)
{
    (void)state;
    const char *secret = "sk_live_Abc/123+x y";
    char id[TG_APIKEY_ID_MAX], id2[TG_APIKEY_ID_MAX], prefix[TG_APIKEY_PREFIX_LEN + 1];
    unsigned char sha[32], want[32];
    assert_int_equal(tg_apikey_import(secret, strlen(secret), id, prefix, sha), 0);
    assert_int_equal(strlen(id), 20);
    assert_memory_equal(id, "key_", 4);
    assert_string_equal(prefix, "sk_live_");
    tg_apikey_hash(secret, strlen(secret), want);
    assert_memory_equal(sha, want, 32);
    assert_int_equal(tg_apikey_import("abc", 3, id2, prefix, sha), 0);
    assert_string_equal(prefix, "a");
    assert_string_not_equal(id, id2);
    /* A short secret's prefix is never most of it: "abcdefgh" (the shortest `key import`
     * takes) was stored whole as its display prefix. At most half is shown. */
    assert_int_equal(tg_apikey_import("abcdefgh", 8, id2, prefix, sha), 0);
    assert_string_equal(prefix, "abcd");
    assert_int_equal(tg_apikey_import("abcdefghijklmnop", 16, id2, prefix, sha), 0);
    assert_string_equal(prefix, "abcdefgh");
    assert_int_equal(tg_apikey_prefix_len(9), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_shape),
        cmocka_unit_test(test_generate_unique),
        cmocka_unit_test(test_hash_known_vector),
        cmocka_unit_test(test_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
