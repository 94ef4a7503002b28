/* Two fixed KEKs for the tests of what is sealed (crypt, meter, archive): never a random
 * key, so a failure reproduces. */
#ifndef TG_TEST_KEK_FIXTURE_H
#define TG_TEST_KEK_FIXTURE_H

#include <string.h>

#include "crypt/crypt.h"

#define FX_KEK_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define FX_KEK_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static inline tg_kek_t fx_kek(const char *hex)
{
    tg_kek_t k;
    tg_err_t err = {{0}};
    assert_int_equal(tg_kek_parse(hex, strlen(hex), "test", &k, &err), 0);
    return k;
}

#endif
