/* Tests for the limits: key of src/config/config.c (the shared limiter's backend): the
 * default stays in memory, a redis:// URL is split into host, port and database, and every
 * bad value fails with "FILE:LINE: limits.KEY: problem". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
               "t.yaml:2: limits.backend: must be memory or redis://HOST[:PORT][/DB] (rediss://, "
               "sentinel and cluster seeds are not supported yet)");
    expect_err("limits:\n  backend: redis://:6379\n",
               "t.yaml:2: limits.backend: needs a host, e.g. redis://127.0.0.1:6379/0");
    expect_err("limits:\n  backend: redis://h:99999/0\n",
               "t.yaml:2: limits.backend: bad port (1..65535)");
    expect_err("limits:\n  backend: redis://h:1/16\n",
               "t.yaml:2: limits.backend: bad database number (0..15)");
    expect_err("limits:\n  backend: redis://u:pw@h:1/0\n",
               "t.yaml:2: limits.backend: credentials in the URL are not supported yet (use a "
               "Redis bound to a private address)");
    expect_err("limits:\n  backend: redis://h:1/0\n  on_backend_down: fail\n",
               "t.yaml:3: limits.on_backend_down: unknown policy \"fail\" (expected local, allow "
               "or deny)");
    expect_err("limits:\n  instances: 0\n", "t.yaml:2: limits.instances: must be positive (got 0)");
    expect_err("limits:\n  timeout: 0ms\n", "t.yaml:2: limits.timeout: must be positive (got 0ms)");
    expect_err("limits:\n  backnd: memory\n",
               "t.yaml:2: limits.backnd: unknown key (did you mean \"backend\"?)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_memory),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
