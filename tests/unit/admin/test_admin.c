/* Tests for src/admin/admin.c's bearer check (tg_admin_check_bearer): the scheme and its
 * spaces, right and wrong tokens of every length, headers that are not one bearer token,
 * no token configured; and that every call, whatever it was given, hashes and compares
 * digests exactly once (no early exit that a clock could see). The listener itself is
 * driven end to end in tests/e2e/admin-auth.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "admin/admin.h"

static const char token[] = "0123456789abcdef-admin-token";
static unsigned char digest[32];

static int setup(void **state)
{
    (void)state;
    SHA256((const unsigned char *)token, strlen(token), digest);
    return 0;
}

static tg_admin_auth_t check(const char *value)
{
    unsigned long before = tg_admin__compares();
    tg_admin_auth_t v = tg_admin_check_bearer(value, value ? strlen(value) : 0, digest);
    /* One digest comparison per call, whatever the input. */
    assert_int_equal(tg_admin__compares(), before + 1);
    return v;
}

static void test_accepts(void **state)
{
    (void)state;
    const char *ok[] = {
        "Bearer 0123456789abcdef-admin-token",
        "bearer 0123456789abcdef-admin-token",
        "BEARER 0123456789abcdef-admin-token",
        "bEaReR 0123456789abcdef-admin-token",
        "Bearer    0123456789abcdef-admin-token", /* one space or more */
        "Bearer\t0123456789abcdef-admin-token",
        "Bearer 0123456789abcdef-admin-token  \t", /* trailing whitespace is not the token's */
        "  Bearer 0123456789abcdef-admin-token",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (check(ok[i]) != TG_ADMIN_AUTH_OK) fail_msg("refused: [%s]", ok[i]);
    /* The value need not be NUL-terminated: only len bytes are read. */
    char buf[64];
    memcpy(buf, "Bearer 0123456789abcdef-admin-tokenXYZ", 38);
    assert_int_equal(tg_admin_check_bearer(buf, 35, digest), TG_ADMIN_AUTH_OK);
    assert_int_equal(tg_admin_check_bearer(buf, 36, digest), TG_ADMIN_AUTH_WRONG);
}

static void test_wrong(void **state)
{
    (void)state;
    const char *wrong[] = {
        "Bearer 0123456789abcdef-admin-tokeN",  /* last byte */
        "Bearer 1123456789abcdef-admin-token",  /* first byte */
        "Bearer 0123456789abcdef-admin-toke",   /* a prefix */
        "Bearer 0123456789abcdef-admin-tokenn", /* longer */
        "Bearer 0",
        "Bearer 0123456789abcdef admin-token", /* a space inside */
        "Bearer 0123456789ABCDEF-ADMIN-TOKEN", /* the token is case-sensitive */
        "Bearer \"0123456789abcdef-admin-token\"",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        if (check(wrong[i]) != TG_ADMIN_AUTH_WRONG) fail_msg("not WRONG: [%s]", wrong[i]);
    /* Every length from 1 to 2x the token's: one comparison each, and all refused. */
    char v[128] = "Bearer ";
    for (size_t n = 1; n <= 2 * sizeof token; n++) {
        memset(v + 7, 'x', n);
        v[7 + n] = '\0';
        assert_int_equal(check(v), TG_ADMIN_AUTH_WRONG);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "Bearer \t ",
        "Bearer0123456789abcdef-admin-token", /* no space after the scheme */
        "Bearer:0123456789abcdef-admin-token",
        "Basic MDEyMzQ1Njc4OWFiY2RlZjphZG1pbi10b2tlbg==",
        "Token 0123456789abcdef-admin-token",
        "0123456789abcdef-admin-token", /* the token without a scheme */
        "Bearerx 0123456789abcdef-admin-token",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (check(bad[i]) != TG_ADMIN_AUTH_MALFORMED) fail_msg("not MALFORMED: [%s]", bad[i]);
    assert_int_equal(check(NULL), TG_ADMIN_AUTH_MISSING);
}

static void test_no_token_configured(void **state)
{
    (void)state;
    /* No token configured never means open: nothing is accepted, and still one comparison
     * a call. */
    unsigned long before = tg_admin__compares();
    assert_int_equal(tg_admin_check_bearer("Bearer 0123456789abcdef-admin-token", 35, NULL),
                     TG_ADMIN_AUTH_UNSET);
    assert_int_equal(tg_admin_check_bearer("Bearer ", 7, NULL), TG_ADMIN_AUTH_UNSET);
    assert_int_equal(tg_admin_check_bearer("", 0, NULL), TG_ADMIN_AUTH_UNSET);
    assert_int_equal(tg_admin_check_bearer(NULL, 0, NULL), TG_ADMIN_AUTH_MISSING);
    assert_int_equal(tg_admin__compares(), before + 4);
    /* A configured digest of all zeros is still a digest: a token must hash to it. */
    static const unsigned char zeros[32];
    assert_int_equal(tg_admin_check_bearer("Bearer ", 7, zeros), TG_ADMIN_AUTH_MALFORMED);
    assert_int_equal(tg_admin_check_bearer(NULL, 0, zeros), TG_ADMIN_AUTH_MISSING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_wrong),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_no_token_configured),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
