/* Tests the config of issue 14's keys concern: encryption (kek_file, kek_env: hex and
 * base64 read, every bad key refused with the file or variable named and the text never
 * shown), signing (window, replay_cache, required_tenants) and routes[].signed, which
 * needs a KEK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "config/parse.h"

#define HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static char dir[64];
static char kek_path[128];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tg_keys_config_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(kek_path, sizeof kek_path, "%s/kek", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(kek_path);
    rmdir(dir);
    return 0;
}

static const char routes[] = "upstreams: [{ name: u, targets: [http://127.0.0.1:1] }]\n"
                             "routes:\n"
                             "  - { name: a, path_prefix: /a, upstream: u, signed: required }\n"
                             "  - { name: b, path_prefix: /b, upstream: u, signed: optional }\n"
                             "  - { name: c, path_prefix: /c, upstream: u }\n";

static void test_kek_file_and_env(void **state)
{
    (void)state;
    char yaml[1024];
    write_file(kek_path, HEX "\n");
    snprintf(yaml, sizeof yaml, "encryption: { kek_file: %s }\n%s", kek_path, routes);
    tg_config_t *c = parse_ok(yaml);
    assert_int_equal(c->encryption.has_kek, 1);
    assert_int_equal(c->encryption.kek.key[31], 0x1f);
    assert_int_equal(c->routes[0].signed_mode, TG_SIGNED_REQUIRED);
    assert_int_equal(c->routes[1].signed_mode, TG_SIGNED_OPTIONAL);
    assert_int_equal(c->routes[2].signed_mode, TG_SIGNED_OFF);
    assert_int_equal(c->signing.window_ms, 300000);
    assert_int_equal(c->signing.replay_cache, 100000);
    tg_config_unref(c);

    setenv("TG_TEST_KEK", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 1);
    c = parse_ok("encryption: { kek_env: TG_TEST_KEK }\n"
                 "signing: { window: 60s, replay_cache: 10, required_tenants: [acme, b-2] }\n");
    assert_int_equal(c->encryption.kek.key[31], 0x1f);
    assert_int_equal(c->signing.window_ms, 60000);
    assert_int_equal(c->signing.replay_cache, 10);
    assert_int_equal(c->signing.nrequired_tenants, 2);
    assert_true(tg_config_tenant_signs(c, "b-2"));
    assert_false(tg_config_tenant_signs(c, "b"));
    tg_config_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    char yaml[1024], want[512];
    write_file(kek_path, "not-a-key-0123456789\n");
    snprintf(yaml, sizeof yaml, "encryption: { kek_file: %s }\n", kek_path);
    snprintf(want, sizeof want,
             "t.yaml:1: encryption.kek_file: the key in %s: expected a 32-byte key written as "
             "64 hex digits or base64 (make one with: openssl rand -hex 32)",
             kek_path);
    expect_err(yaml, want);
    snprintf(yaml, sizeof yaml, "encryption: { kek_file: %s/none }\n", dir);
    tg_config_t *c = NULL;
    tg_err_t err = {{0}};
    assert_int_equal(tg_config_parse("t.yaml", yaml, strlen(yaml), &c, &err), -1);
    assert_non_null(strstr(err.msg, "encryption.kek_file: cannot open"));
    unsetenv("TG_TEST_NOKEK");
    expect_err("encryption: { kek_env: TG_TEST_NOKEK }\n",
               "t.yaml:1: encryption.kek_env: $TG_TEST_NOKEK is not set or empty");
    setenv("TG_TEST_SHORT", "00ff", 1);
    expect_err("encryption: { kek_env: TG_TEST_SHORT }\n",
               "t.yaml:1: encryption.kek_env: $TG_TEST_SHORT: expected a 32-byte key written as "
               "64 hex digits or base64 (make one with: openssl rand -hex 32)");
    expect_err("encryption: { kek_env: A, kek_file: /x }\n",
               "t.yaml:1: encryption: give one of kek_file or kek_env");
    expect_err("encryption: {}\n", "t.yaml:1: encryption: give one of kek_file or kek_env");
    /* A route or tenant that signs needs the KEK. */
    expect_err(routes, "t.yaml:3: routes[0].signed: needs encryption.kek_file or "
                       "encryption.kek_env (signing secrets are sealed by it)");
    expect_err("signing: { required_tenants: [acme] }\n",
               "t.yaml:1: signing.required_tenants: needs encryption.kek_file or "
               "encryption.kek_env (signing secrets are sealed by it)");
    expect_err("routes: [{ name: a, path_prefix: /, upstream: u, signed: yes }]\n"
               "upstreams: [{ name: u, targets: [http://127.0.0.1:1] }]\n",
               "t.yaml:1: routes[0].signed: unknown value \"yes\" (expected off, optional or "
               "required)");
    expect_err("signing: { window: 2h }\n", "t.yaml:1: signing.window: between 1s and 1h");
    expect_err("signing: { replay_cache: 20000000 }\n",
               "t.yaml:1: signing.replay_cache: at most 10000000");
    expect_err("signing: { required_tenants: acme }\n",
               "t.yaml:1: signing.required_tenants: expected a list of tenant ids, found a "
               "single value");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kek_file_and_env),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
