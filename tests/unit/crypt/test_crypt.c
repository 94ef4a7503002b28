/* Tests src/crypt/crypt.c with fixed keys: KEK parsing (hex, base64, the errors), seal and
 * open, every flipped bit refused, another KEK or another AAD refused, rewrap keeping the
 * data part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypt/crypt.h"

#define HEX_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define B64_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* the same 32 bytes */
#define HEX_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static tg_kek_t kek(const char *text)
{
    tg_kek_t k;
    tg_err_t err = {{0}};
    assert_int_equal(tg_kek_parse(text, strlen(text), "test", &k, &err), 0);
    return k;
}

static void test_parse_forms(void **state)
{
    (void)state;
    tg_kek_t a = kek(HEX_A), b = kek(B64_A), c = kek("  " HEX_A "\n"), d;
    assert_memory_equal(a.key, b.key, TG_KEK_LEN);
    assert_memory_equal(a.id, b.id, TG_KEK_ID_LEN);
    assert_memory_equal(a.key, c.key, TG_KEK_LEN);
    assert_int_equal(a.key[31], 0x1f);
    d = kek("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"); /* no padding */
    assert_memory_equal(a.key, d.key, TG_KEK_LEN);
    char hex[17];
    tg_kek_id_hex(&a, hex);
    assert_int_equal(strlen(hex), 16);
    tg_kek_t other = kek(HEX_B);
    assert_memory_not_equal(a.id, other.id, TG_KEK_ID_LEN);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "short",
        HEX_A "00",                                                         /* 33 bytes */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",  /* 63 digits */
        "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", /* not hex */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",                     /* base64 of 31 bytes */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH!8=",                     /* not base64 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_kek_t k;
        tg_err_t err = {{0}};
        assert_int_equal(tg_kek_parse(bad[i], strlen(bad[i]), "the file k.key", &k, &err), -1);
        assert_non_null(strstr(err.msg, "the file k.key: expected a 32-byte key"));
        if (strlen(bad[i]) > 8) assert_null(strstr(err.msg, bad[i])); /* never echoed */
    }
}

static void test_seal_open(void **state)
{
    (void)state;
    tg_kek_t k = kek(HEX_A);
    tg_err_t err = {{0}};
    unsigned char *blob, *pt;
    size_t bl, pl;
    const char msg[] = "tgs_a-signing-secret";
    assert_int_equal(tg_crypt_seal(&k, msg, sizeof msg - 1, "key_1", 5, &blob, &bl, &err), 0);
    assert_int_equal(bl, sizeof msg - 1 + TG_SEAL_OVERHEAD);
    assert_null(memmem(blob, bl, msg, sizeof msg - 1)); /* not in the clear */
    assert_int_equal(tg_crypt_open(&k, blob, bl, "key_1", 5, &pt, &pl, &err), 0);
    assert_int_equal(pl, sizeof msg - 1);
    assert_string_equal((char *)pt, msg);
    tg_crypt_free(pt, pl + 1);
    /* Two seals of the same text differ (fresh DEK and nonces). */
    unsigned char *blob2;
    size_t bl2;
    assert_int_equal(tg_crypt_seal(&k, msg, sizeof msg - 1, "key_1", 5, &blob2, &bl2, &err), 0);
    assert_memory_not_equal(blob, blob2, bl);
    /* Empty data seals too. */
    unsigned char *e;
    size_t el;
    assert_int_equal(tg_crypt_seal(&k, "", 0, NULL, 0, &e, &el, &err), 0);
    assert_int_equal(tg_crypt_open(&k, e, el, NULL, 0, &pt, &pl, &err), 0);
    assert_int_equal(pl, 0);
    tg_crypt_free(pt, 1);
    free(e);
    free(blob);
    free(blob2);
}

static void test_tamper(void **state)
{
    (void)state;
    tg_kek_t k = kek(HEX_A);
    tg_err_t err = {{0}};
    unsigned char *blob, *pt;
    size_t bl, pl;
    assert_int_equal(tg_crypt_seal(&k, "secret", 6, "key_1", 5, &blob, &bl, &err), 0);
    for (size_t bit = 0; bit < bl * 8; bit++) {
        blob[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(tg_crypt_open(&k, blob, bl, "key_1", 5, &pt, &pl, &err), -1);
        assert_null(pt);
        blob[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    /* Truncated, another record's AAD, another KEK. */
    assert_int_equal(tg_crypt_open(&k, blob, bl - 1, "key_1", 5, &pt, &pl, &err), -1);
    assert_int_equal(tg_crypt_open(&k, blob, TG_SEAL_OVERHEAD - 1, "key_1", 5, &pt, &pl, &err), -1);
    assert_int_equal(tg_crypt_open(&k, blob, bl, "key_2", 5, &pt, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "does not authenticate"));
    tg_kek_t other = kek(HEX_B);
    assert_int_equal(tg_crypt_open(&other, blob, bl, "key_1", 5, &pt, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "another key-encryption key"));
    assert_int_equal(tg_crypt_open(&k, blob, bl, "key_1", 5, &pt, &pl, &err), 0);
    tg_crypt_free(pt, pl + 1);
    free(blob);
}

static void test_rewrap(void **state)
{
    (void)state;
    tg_kek_t a = kek(HEX_A), b = kek(HEX_B);
    tg_err_t err = {{0}};
    unsigned char *blob, *nb, *pt;
    size_t bl, pl;
    assert_int_equal(tg_crypt_seal(&a, "payload", 7, "x", 1, &blob, &bl, &err), 0);
    assert_int_equal(tg_crypt_rewrap(&a, &b, blob, bl, &nb, &err), 0);
    /* The data part is the same bytes; only the header and the wrapped DEK changed. */
    assert_memory_equal(nb + 12 + TG_WRAPPED_DEK_LEN, blob + 12 + TG_WRAPPED_DEK_LEN,
                        bl - 12 - TG_WRAPPED_DEK_LEN);
    assert_memory_not_equal(nb + 4, blob + 4, TG_KEK_ID_LEN);
    assert_int_equal(tg_crypt_open(&a, nb, bl, "x", 1, &pt, &pl, &err), -1);
    assert_int_equal(tg_crypt_open(&b, nb, bl, "x", 1, &pt, &pl, &err), 0);
    assert_memory_equal(pt, "payload", 7);
    tg_crypt_free(pt, pl + 1);
    /* Rewrapping with the wrong source KEK fails and writes nothing. */
    unsigned char *bad;
    assert_int_equal(tg_crypt_rewrap(&a, &b, nb, bl, &bad, &err), -1);
    assert_null(bad);
    free(nb);
    free(blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_seal_open),   cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_rewrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
