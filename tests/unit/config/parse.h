/* What the config tests share: a text that must parse, and one that must fail with exactly
 * the message given. Include once, after cmocka.h. */
#ifndef TG_TESTS_UNIT_CONFIG_PARSE_H
#define TG_TESTS_UNIT_CONFIG_PARSE_H

#include <string.h>

#include "config/config.h"

static tg_config_t *parse_ok(const char *yaml)
{
    tg_config_t *c = NULL;
    tg_err_t err = {{0}};
    if (tg_config_parse("t.yaml", yaml, strlen(yaml), &c, &err) != 0)
        fail_msg("unexpected error: %s", err.msg);
    assert_non_null(c);
    return c;
}

static void expect_err(const char *yaml, const char *want)
{
    tg_config_t *c = NULL;
    tg_err_t err = {{0}};
    int rc = tg_config_parse("t.yaml", yaml, strlen(yaml), &c, &err);
    if (rc == 0) {
        tg_config_unref(c);
        fail_msg("parsed, expected: %s", want);
    }
    assert_null(c);
    assert_string_equal(err.msg, want);
}

#endif
