/* Tests src/crypt/chunk.c: a frame opens at its own offset and final flag only, a torn or
 * foreign head is refused by its length, another KEK is refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypt/chunk.h"
#include "crypt/kek_fixture.h"

static void test_round_trip_and_binding(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A), b = fx_kek(FX_KEK_B);
    const char msg[] = "three usage events, say";
    unsigned char *f, *pt;
    size_t fn, pn;
    tg_err_t err = {{0}};
    assert_int_equal(tg_chunk_seal(&a, msg, sizeof msg, 4096, 0, &f, &fn, &err), 0);
    assert_int_equal(fn, TG_CHUNK_HEAD + sizeof msg + TG_SEAL_OVERHEAD);
    size_t bn = tg_chunk_len(f, 1 << 20);
    assert_int_equal(bn, fn - TG_CHUNK_HEAD);
    assert_null(memmem(f, fn, "usage", 5)); /* the data is not in clear */

    assert_int_equal(tg_chunk_open(&a, f + TG_CHUNK_HEAD, bn, 4096, 0, &pt, &pn, &err), 0);
    assert_int_equal(pn, sizeof msg);
    assert_memory_equal(pt, msg, sizeof msg);
    tg_crypt_free(pt, pn);

    /* Moved to another offset, or claimed final: refused. */
    assert_int_equal(tg_chunk_open(&a, f + TG_CHUNK_HEAD, bn, 4097, 0, &pt, &pn, &err), -1);
    assert_int_equal(tg_chunk_open(&a, f + TG_CHUNK_HEAD, bn, 4096, 1, &pt, &pn, &err), -1);
    /* Another KEK: the error names the KEK id the frame needs. */
    assert_int_equal(tg_chunk_open(&b, f + TG_CHUNK_HEAD, bn, 4096, 0, &pt, &pn, &err), -1);
    char hex[17];
    tg_kek_id_hex(&a, hex);
    assert_non_null(strstr(err.msg, hex));
    /* A torn frame: the blob cut short does not authenticate. */
    assert_int_equal(tg_chunk_open(&a, f + TG_CHUNK_HEAD, bn - 1, 4096, 0, &pt, &pn, &err), -1);
    free(f);
}

static void test_length_bounds(void **state)
{
    (void)state;
    unsigned char zero[TG_CHUNK_HEAD] = {0}, big[TG_CHUNK_HEAD] = {0xff, 0xff, 0xff, 0x7f};
    unsigned char ok[TG_CHUNK_HEAD] = {TG_SEAL_OVERHEAD, 0, 0, 0};
    assert_int_equal(tg_chunk_len(zero, 1 << 20), 0); /* a hole a crash left */
    assert_int_equal(tg_chunk_len(big, 1 << 20), 0);  /* over the caller's cap */
    assert_int_equal(tg_chunk_len(ok, 1 << 20), TG_SEAL_OVERHEAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_binding),
        cmocka_unit_test(test_length_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
