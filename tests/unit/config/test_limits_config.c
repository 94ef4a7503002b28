/* Tests for the limits: key of src/config/config.c (the shared limiter's backend): the
 * default stays in memory, a redis:// URL is split into credentials, host, port and
 * database, the password may come from ${ENV} or limits.password_file, and every bad value
 * fails with "FILE:LINE: limits.KEY: problem" that never shows the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "config/parse.h"

static void test_default_is_memory(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("store: sqlite:x.db\n");
    assert_int_equal(c->limits.redis, 0);
    assert_null(c->limits.redis_host);
    assert_int_equal(c->limits.timeout_ms, 20);
    assert_int_equal(c->limits.on_down, TG_LIMITS_DOWN_LOCAL);
    assert_int_equal(c->limits.instances, 1);
    tg_config_unref(c);
    c = parse_ok("limits: { backend: memory }\n");
    assert_int_equal(c->limits.redis, 0);
    tg_config_unref(c);
}

static void test_redis_url(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("limits:\n  backend: redis://10.0.0.7:6380/3\n  timeout: 5ms\n"
                              "  on_backend_down: deny\n  instances: 3\n");
    assert_int_equal(c->limits.redis, 1);
    assert_string_equal(c->limits.redis_host, "10.0.0.7");
    assert_int_equal(c->limits.redis_port, 6380);
    assert_int_equal(c->limits.redis_db, 3);
    assert_int_equal(c->limits.timeout_ms, 5);
    assert_int_equal(c->limits.on_down, TG_LIMITS_DOWN_DENY);
    assert_int_equal(c->limits.instances, 3);
    tg_config_unref(c);
    c = parse_ok("limits: { backend: \"redis://cache.internal\", on_backend_down: allow }\n");
    assert_string_equal(c->limits.redis_host, "cache.internal");
    assert_int_equal(c->limits.redis_port, 6379);
    assert_int_equal(c->limits.redis_db, 0);
    assert_int_equal(c->limits.on_down, TG_LIMITS_DOWN_ALLOW);
    tg_config_unref(c);
    c = parse_ok("limits: { backend: \"redis://[::1]:7000/\" }\n");
    assert_string_equal(c->limits.redis_host, "::1");
    assert_int_equal(c->limits.redis_port, 7000);
    tg_config_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_err("limits:\n  backend: rediss://h:1/0\n",
               "t.yaml:2: limits.backend: must be memory or redis://[[USER]:PASSWORD@]HOST[:PORT]"
               "[/DB] (rediss://, sentinel and cluster seeds are not supported yet)");
    expect_err("limits:\n  backend: redis://:6379\n",
               "t.yaml:2: limits.backend: needs a host, e.g. redis://127.0.0.1:6379/0");
    expect_err("limits:\n  backend: redis://h:99999/0\n",
               "t.yaml:2: limits.backend: bad port (1..65535)");
    expect_err("limits:\n  backend: redis://h:1/16\n",
               "t.yaml:2: limits.backend: bad database number (0..15)");
    expect_err("limits:\n  backend: redis://h:1/0\n  on_backend_down: fail\n",
               "t.yaml:3: limits.on_backend_down: unknown policy \"fail\" (expected local, allow "
               "or deny)");
    expect_err("limits:\n  instances: 0\n", "t.yaml:2: limits.instances: must be positive (got 0)");
    expect_err("limits:\n  timeout: 0ms\n", "t.yaml:2: limits.timeout: must be positive (got 0ms)");
    expect_err("limits:\n  backnd: memory\n",
               "t.yaml:2: limits.backnd: unknown key (did you mean \"backend\"?)");
}

static void test_credentials(void **state)
{
    (void)state;
    /* A password only (requirepass), the default user. */
    tg_config_t *c = parse_ok("limits: { backend: \"redis://:s3cret@10.0.0.7:6380/2\" }\n");
    assert_string_equal(c->limits.redis_host, "10.0.0.7");
    assert_int_equal(c->limits.redis_port, 6380);
    assert_int_equal(c->limits.redis_db, 2);
    assert_null(c->limits.redis_user);
    assert_string_equal(c->limits.redis_password, "s3cret");
    tg_config_unref(c);
    /* An ACL user; both percent-decoded; the credentials end at the last "@", so a raw "@",
     * "/" or ":" in the password (a random one from ${ENV}) still parses. */
    c = parse_ok("limits: { backend: \"redis://app%2Dgw:p%40ss%25w0rd@[::1]\" }\n");
    assert_string_equal(c->limits.redis_host, "::1");
    assert_int_equal(c->limits.redis_port, 6379);
    assert_string_equal(c->limits.redis_user, "app-gw");
    assert_string_equal(c->limits.redis_password, "p@ss%w0rd");
    tg_config_unref(c);
    setenv("TG_TEST_REDIS_PASSWORD", "a/b@c:d+e=", 1);
    c = parse_ok("limits:\n  backend: \"redis://gw:${TG_TEST_REDIS_PASSWORD}@cache:7000/1\"\n");
    assert_string_equal(c->limits.redis_user, "gw");
    assert_string_equal(c->limits.redis_password, "a/b@c:d+e=");
    assert_string_equal(c->limits.redis_host, "cache");
    assert_int_equal(c->limits.redis_port, 7000);
    assert_int_equal(c->limits.redis_db, 1);
    tg_config_unref(c);
    /* Without credentials: no AUTH. */
    c = parse_ok("limits: { backend: \"redis://cache\" }\n");
    assert_null(c->limits.redis_user);
    assert_null(c->limits.redis_password);
    tg_config_unref(c);
}

static void test_password_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tg_test_redis_pw_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, " pa%41ss \nsecond line\n", 22), 22);
    close(fd);
    char yaml[512], want[512];
    /* The first line, trimmed, taken as it is (not percent-decoded). */
    snprintf(yaml, sizeof yaml, "limits:\n  backend: redis://gw@h:1/0\n  password_file: %s\n",
             path);
    tg_config_t *c = parse_ok(yaml);
    assert_string_equal(c->limits.redis_user, "gw");
    assert_string_equal(c->limits.redis_password, "pa%41ss");
    assert_string_equal(c->limits.redis_pw_file, path);
    tg_config_unref(c);
    snprintf(yaml, sizeof yaml, "limits:\n  backend: redis://h:1/0\n  password_file: %s\n", path);
    c = parse_ok(yaml);
    assert_null(c->limits.redis_user);
    assert_string_equal(c->limits.redis_password, "pa%41ss");
    tg_config_unref(c);
    snprintf(yaml, sizeof yaml, "limits:\n  backend: redis://:pw1@h:1/0\n  password_file: %s\n",
             path);
    expect_err(yaml, "t.yaml:3: limits.password_file: give the password in limits.backend or "
                     "limits.password_file, not both");
    snprintf(yaml, sizeof yaml, "limits:\n  password_file: %s\n", path);
    expect_err(yaml, "t.yaml:2: limits.password_file: only with a redis:// limits.backend");
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    snprintf(yaml, sizeof yaml, "limits:\n  backend: redis://h\n  password_file: %s\n", path);
    snprintf(want, sizeof want,
             "t.yaml:3: limits.password_file: the password in %s: the first line is empty", path);
    expect_err(yaml, want);
    unlink(path);
    snprintf(want, sizeof want,
             "t.yaml:3: limits.password_file: cannot open %s: No such file or directory", path);
    expect_err(yaml, want);
}

/* Every refusal names limits.backend and never shows the password (nor the user). */
static void test_credential_errors(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } bad[] = {
        {"redis://:Hunter2pw@",
         "needs a host after \"@\", e.g. redis://:PASSWORD@127.0.0.1:6379/0"},
        {"redis://:Hunter2pw@:6379/0",
         "needs a host after \"@\", e.g. redis://:PASSWORD@127.0.0.1:6379/0"},
        {"redis://:Hunter2pw%4@h", "bad percent escape in the password (%XX with two hex digits, "
                                   "not %00; a literal % is %25)"},
        {"redis://:Hunter2pw%zz@h", "bad percent escape in the password (%XX with two hex digits, "
                                    "not %00; a literal % is %25)"},
        {"redis://:Hunter2pw%00@h", "bad percent escape in the password (%XX with two hex digits, "
                                    "not %00; a literal % is %25)"},
        {"redis://Hunter2us%g1:Hunter2pw@h", "bad percent escape in the user (%XX with two hex "
                                             "digits, not %00; a literal % is %25)"},
        {"redis://Hunter2us@h",
         "a user needs a password: redis://USER:PASSWORD@HOST (or limits.password_file)"},
        {"redis://Hunter2us:@h", "empty password after \":\" (write redis://:PASSWORD@HOST, or "
                                 "leave out the \"@\" for a Redis without one)"},
        {"redis://:@h", "empty password after \":\" (write redis://:PASSWORD@HOST, or leave out "
                        "the \"@\" for a Redis without one)"},
        {"redis://@h", "nothing before \"@\" (write redis://:PASSWORD@HOST or "
                       "redis://USER:PASSWORD@HOST)"},
        {"redis://:Hunter2pw@h:0/0", "bad port (1..65535)"},
        {"redis://:Hunter2pw@h:1/99", "bad database number (0..15)"},
        {"redis://:Hunter2pw@h:1/0/x", "bad database number (0..15)"},
        {"rediss://:Hunter2pw@h", "must be memory or redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
                                  "(rediss://, sentinel and cluster seeds are not supported yet)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[256], want[512];
        snprintf(yaml, sizeof yaml, "limits:\n  backend: \"%s\"\n", bad[i].url);
        snprintf(want, sizeof want, "t.yaml:2: limits.backend: %s", bad[i].want);
        tg_config_t *c = NULL;
        tg_err_t err = {{0}};
        assert_int_not_equal(tg_config_parse("t.yaml", yaml, strlen(yaml), &c, &err), 0);
        assert_null(c);
        assert_string_equal(err.msg, want);
        assert_null(strstr(err.msg, "Hunter2"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_memory),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_credential_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
