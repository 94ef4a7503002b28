/* Tests for src/crypt/keyed.c: the keyed hash against a value computed apart (Python's hmac:
 * HMAC-SHA256(HMAC-SHA256(KEK, "tollgate keyed hash" + purpose), data)), and that another
 * KEK or purpose gives another hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "crypt/kek_fixture.h"
#include "crypt/keyed.h"

static void hex(const unsigned char *b, char out[2 * TG_KEYED_HASH_LEN + 1])
{
    for (size_t i = 0; i < TG_KEYED_HASH_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void test_known_value(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A);
    unsigned char h[TG_KEYED_HASH_LEN];
    char x[65];
    assert_int_equal(tg_crypt_keyed_hash(&a, "outbox id", "alarm/errors/acme/12", 20, h), 0);
    hex(h, x);
    assert_string_equal(x, "3bb03b2619e68f07ba96f7a4253b0b690432b88d20a74ce4a16cfb9ec1f34c11");
}

static void test_kek_and_purpose_matter(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A), b = fx_kek(FX_KEK_B);
    unsigned char h1[TG_KEYED_HASH_LEN], h2[TG_KEYED_HASH_LEN], h3[TG_KEYED_HASH_LEN];
    assert_int_equal(tg_crypt_keyed_hash(&a, "outbox id", "x", 1, h1), 0);
    assert_int_equal(tg_crypt_keyed_hash(&b, "outbox id", "x", 1, h2), 0);
    assert_int_equal(tg_crypt_keyed_hash(&a, "other", "x", 1, h3), 0);
    assert_memory_not_equal(h1, h2, sizeof h1);
    assert_memory_not_equal(h1, h3, sizeof h1);
    assert_int_equal(tg_crypt_keyed_hash(&a, "outbox id", "x", 1, h2), 0);
    assert_memory_equal(h1, h2, sizeof h1); /* the same each time */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_value),
        cmocka_unit_test(test_kek_and_purpose_matter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
