/* Tests for src/auth/jwtcache.c: a verdict is found again by the token's hash, under the
 * same config and key-set generation only; the time rules are applied again at each use
 * (expired, not yet valid, issued in the future, with jwt.leeway); clear and a put under a
 * new config forget every entry; two tokens in one slot replace each other. Fixed instants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth/jwtcache.h"

#define S  1000000LL
#define T0 (1796083200LL * S) /* 2026-12-01T00:00:00Z */

static const char yaml[] = "auth: [api_key, jwt]\n"
                           "jwt: { issuer: iss, secret: 0123456789abcdef0123456789abcdef, "
                           "leeway: 30s }\n";

static tg_config_t *config(void)
{
    tg_config_t *c = NULL;
    tg_err_t err;
    if (tg_config_parse("t.yaml", yaml, sizeof yaml - 1, &c, &err) != 0) fail_msg("%s", err.msg);
    return c;
}

static void sha_of(unsigned char sha[32], unsigned char first, unsigned char last)
{
    memset(sha, 0x5a, 32);
    sha[0] = first;
    sha[31] = last;
}

static tg_jwt_claims_t claims(int64_t nbf, int64_t iat, int64_t exp)
{
    tg_jwt_claims_t cl = {.exp_us = exp, .nbf_us = nbf, .iat_us = iat};
    strcpy(cl.tenant, "acme");
    strcpy(cl.sub, "user-1");
    return cl;
}

static void test_hit_and_times(void **state)
{
    (void)state;
    tg_config_t *cfg = config();
    tg_jwt_cache_t *c = tg_jwt_cache_new();
    unsigned char a[32];
    sha_of(a, 1, 1);
    tg_jwt_claims_t in = claims(T0 + 100 * S, T0 + 100 * S, T0 + 3600 * S), out = {0};
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, T0 + 100 * S, &out), -1); /* empty */
    tg_jwt_cache_put(c, cfg, 0, a, &in);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, T0 + 100 * S, &out), TG_JWT_OK);
    assert_string_equal(out.tenant, "acme");
    assert_string_equal(out.sub, "user-1");
    assert_int_equal(out.exp_us, T0 + 3600 * S);
    /* exp + leeway is the end, as for a verification. */
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, T0 + 3629 * S, &out), TG_JWT_OK);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, T0 + 3630 * S, &out), TG_JWT_EXPIRED);
    /* A clock gone back: nbf and iat are checked again (leeway 30 s). */
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, T0 + 70 * S, &out), TG_JWT_OK);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, T0 + 69 * S, &out), TG_JWT_NOT_YET_VALID);
    tg_jwt_claims_t iat_only = claims(INT64_MIN, T0 + 100 * S, T0 + 3600 * S);
    tg_jwt_cache_put(c, cfg, 0, a, &iat_only);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, T0 + 69 * S, &out), TG_JWT_ISSUED_FUTURE);
    tg_jwt_claims_t exp_only = claims(INT64_MIN, INT64_MIN, T0 + 3600 * S);
    tg_jwt_cache_put(c, cfg, 0, a, &exp_only);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 0, a, 0, &out), TG_JWT_OK);
    tg_jwt_cache_free(c);
    tg_config_unref(cfg);
}

static void test_scope(void **state)
{
    (void)state;
    tg_config_t *cfg = config(), *next = config();
    tg_jwt_cache_t *c = tg_jwt_cache_new();
    unsigned char a[32], b[32], a2[32];
    sha_of(a, 1, 1);
    sha_of(b, 2, 1);
    sha_of(a2, 1, 2); /* the same slot as a, another token */
    tg_jwt_claims_t in = claims(INT64_MIN, INT64_MIN, T0 + 3600 * S), out;
    tg_jwt_cache_put(c, cfg, 7, a, &in);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 7, a, T0, &out), TG_JWT_OK);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 8, a, T0, &out), -1);  /* the keys changed */
    assert_int_equal(tg_jwt_cache_get(c, next, 7, a, T0, &out), -1); /* another config */
    assert_int_equal(tg_jwt_cache_get(c, cfg, 7, b, T0, &out), -1);  /* another token */
    assert_int_equal(tg_jwt_cache_get(c, cfg, 7, a2, T0, &out), -1);
    tg_jwt_cache_put(c, cfg, 7, a2, &in); /* replaces a in its slot */
    assert_int_equal(tg_jwt_cache_get(c, cfg, 7, a2, T0, &out), TG_JWT_OK);
    assert_int_equal(tg_jwt_cache_get(c, cfg, 7, a, T0, &out), -1);
    /* A put under the next config forgets the old config's entries (and lets it go). */
    tg_jwt_cache_put(c, next, 7, b, &in);
    assert_int_equal(tg_jwt_cache_get(c, next, 7, b, T0, &out), TG_JWT_OK);
    assert_int_equal(tg_jwt_cache_get(c, next, 7, a2, T0, &out), -1);
    tg_config_unref(cfg); /* only the cache could still hold it: ASan sees it freed or leaked */
    tg_jwt_cache_clear(c);
    assert_int_equal(tg_jwt_cache_get(c, next, 7, b, T0, &out), -1);
    tg_jwt_cache_free(c);
    tg_config_unref(next);
    tg_jwt_cache_free(NULL);
    tg_jwt_cache_clear(NULL);
    assert_int_equal(tg_jwt_cache_get(NULL, next, 7, b, T0, &out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_times),
        cmocka_unit_test(test_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
