/* Tests types/bodies.c: the plain form of a call's bodies (both bodies, either empty, the
 * truncation flags) read back exactly, malformed forms refused, and the AAD binding a sealed
 * form to its event id and tenant (sealed with crypt/ here: another id or tenant does not
 * open it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypt/crypt.h"
#include "types/bodies.h"

static void test_roundtrip(void **state)
{
    (void)state;
    static const char in[] = "{\"model\":\"gpt-4o\",\"messages\":[]}";
    static const unsigned char out[] = {0, 1, 2, 0xff, 'x'}; /* any bytes */
    tg_bodies_t *b = tg_bodies_new(in, strlen(in), out, sizeof out,
                                   TG_BODIES_HAS_IN | TG_BODIES_HAS_OUT | TG_BODIES_OUT_TRUNC);
    assert_non_null(b);
    uint32_t flags;
    const unsigned char *pi, *po;
    size_t ni, no;
    assert_int_equal(tg_bodies_parse(b->plain, b->plain_len, &flags, &pi, &ni, &po, &no), 0);
    assert_int_equal(flags, TG_BODIES_HAS_IN | TG_BODIES_HAS_OUT | TG_BODIES_OUT_TRUNC);
    assert_int_equal(ni, strlen(in));
    assert_memory_equal(pi, in, ni);
    assert_int_equal(no, sizeof out);
    assert_memory_equal(po, out, no);
    /* Cut by one byte, or a length that claims more than there is: refused. */
    assert_int_equal(tg_bodies_parse(b->plain, b->plain_len - 1, &flags, &pi, &ni, &po, &no), -1);
    b->plain[8] = 0xff;
    assert_int_equal(tg_bodies_parse(b->plain, b->plain_len, &flags, &pi, &ni, &po, &no), -1);
    assert_int_equal(tg_bodies_parse(b->plain, 10, &flags, &pi, &ni, &po, &no), -1);
    tg_bodies_free(b);
    /* Both empty (a call refused before its answer, an empty body). */
    b = tg_bodies_new(NULL, 0, NULL, 0, TG_BODIES_HAS_IN);
    assert_int_equal(tg_bodies_parse(b->plain, b->plain_len, &flags, &pi, &ni, &po, &no), 0);
    assert_int_equal(ni + no, 0);
    tg_bodies_free(b);
    tg_bodies_free(NULL);
}

static void test_aad_binds(void **state)
{
    (void)state;
    static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    tg_kek_t k;
    tg_err_t err = {{0}};
    assert_int_equal(tg_kek_parse(hex, strlen(hex), "test", &k, &err), 0);
    tg_bodies_t *b = tg_bodies_new("PROMPT", 6, "ANSWER", 6, TG_BODIES_HAS_IN | TG_BODIES_HAS_OUT);
    unsigned char aad[TG_BODIES_AAD_MAX], other[TG_BODIES_AAD_MAX], *blob = NULL, *pt = NULL;
    size_t n = tg_bodies_aad(42, "acme", aad), bn = 0, pn = 0;
    assert_int_equal(tg_crypt_seal(&k, b->plain, b->plain_len, aad, n, &blob, &bn, &err), 0);
    assert_null(memmem(blob, bn, "PROMPT", 6));
    assert_int_equal(tg_crypt_open(&k, blob, bn, aad, n, &pt, &pn, &err), 0);
    assert_int_equal(pn, b->plain_len);
    assert_memory_equal(pt, b->plain, pn);
    tg_crypt_free(pt, pn);
    size_t m = tg_bodies_aad(43, "acme", other); /* another event */
    assert_int_equal(tg_crypt_open(&k, blob, bn, other, m, &pt, &pn, &err), -1);
    m = tg_bodies_aad(42, "acm", other); /* another tenant */
    assert_int_equal(tg_crypt_open(&k, blob, bn, other, m, &pt, &pn, &err), -1);
    free(blob);
    tg_bodies_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_aad_binds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
