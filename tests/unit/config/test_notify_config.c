/* Tests for the notify: and notify_retry: keys of src/config/config.c: the issue's example
 * parses into notifiers, bad notifiers fail with "FILE:LINE: KEY.PATH: problem", and a
 * secret or URL never appears in a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "config/parse.h"

static void test_issue_example(void **state)
{
    (void)state;
    setenv("HOOK_SECRET", "s3cr3t-value", 1);
    tg_config_t *c = parse_ok(
        "notify:\n"
        "  - { type: webhook, url: \"http://127.0.0.1:8099/hook\", secret: \"${HOOK_SECRET}\" }\n"
        "  - { type: alertmanager, url: \"http://127.0.0.1:9093\" }\n"
        "  - { type: exec, command: \"/usr/local/bin/on-alarm\" }\n"
        "  - { name: pager, type: exec, command: [/bin/echo, \"a b\", \"$(x)\"], timeout: 2s }\n");
    assert_int_equal(c->nnotifiers, 4);
    tg_notifier_conf_t *n = c->notifiers;
    assert_string_equal(n[0].name, "webhook-0");
    assert_int_equal(n[0].type, TG_NOTIFIER_WEBHOOK);
    assert_string_equal(n[0].url, "http://127.0.0.1:8099/hook");
    assert_int_equal(n[0].secret_len, 12);
    assert_memory_equal(n[0].secret, "s3cr3t-value", 12);
    assert_int_equal(n[0].timeout_ms, 5000);
    assert_string_equal(n[1].name, "alertmanager-1");
    assert_int_equal(n[1].type, TG_NOTIFIER_ALERTMANAGER);
    assert_null(n[1].secret);
    assert_int_equal(n[1].resend_ms, 60000); /* what still fires is posted again each minute */
    assert_string_equal(n[2].name, "exec-2");
    assert_int_equal(n[2].argc, 1);
    assert_string_equal(n[2].argv[0], "/usr/local/bin/on-alarm");
    assert_null(n[2].argv[1]);
    assert_string_equal(n[3].name, "pager");
    assert_int_equal(n[3].argc, 3);
    assert_string_equal(n[3].argv[1], "a b"); /* as written: nothing split, nothing run */
    assert_string_equal(n[3].argv[2], "$(x)");
    assert_int_equal(n[3].timeout_ms, 2000);
    /* Defaults of notify_retry. */
    assert_int_equal(c->notify_retry.min_ms, 1000);
    assert_int_equal(c->notify_retry.max_ms, 60000);
    assert_int_equal(c->notify_retry.give_up_ms, 24 * 3600 * 1000L);
    assert_string_equal(tg_notifier_type_name(n[1].type), "alertmanager");
    tg_config_unref(c);

    c = parse_ok("notify:\n  - { type: alertmanager, url: \"http://am\", resend: 0 }\n"
                 "  - { type: alertmanager, url: \"http://am2\", resend: 15s }\n");
    assert_int_equal(c->notifiers[0].resend_ms, 0);
    assert_int_equal(c->notifiers[1].resend_ms, 15000);
    tg_config_unref(c);

    c = parse_ok("notify_retry: { min: 200ms, max: 2s, give_up: 1h }\n");
    assert_int_equal(c->nnotifiers, 0);
    assert_int_equal(c->notify_retry.min_ms, 200);
    assert_int_equal(c->notify_retry.max_ms, 2000);
    assert_int_equal(c->notify_retry.give_up_ms, 3600000);
    tg_config_unref(c);
}

static void test_secret_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tg_test_secret_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "  from-a-file \nsecond line\n", 27), 27);
    close(fd);
    char yaml[256];
    snprintf(yaml, sizeof yaml,
             "notify: [{ type: webhook, url: \"https://h.example/x\", "
             "secret_file: %s }]\n",
             path);
    tg_config_t *c = parse_ok(yaml);
    assert_int_equal(c->notifiers[0].secret_len, 11);
    assert_memory_equal(c->notifiers[0].secret, "from-a-file", 11);
    tg_config_unref(c);
    unlink(path);
    snprintf(yaml, sizeof yaml,
             "notify: [{ type: webhook, url: \"https://h.example/x\", secret_file: %s }]\n", path);
    char want[256];
    snprintf(want, sizeof want,
             "t.yaml:1: notify[0].secret_file: cannot open %s: No such file or directory", path);
    expect_err(yaml, want);
}

static void test_errors(void **state)
{
    (void)state;
    setenv("HOOK_SECRET", "s3cr3t-value", 1);
    expect_err("notify: { type: webhook }\n",
               "t.yaml:1: notify: expected a list of notifiers, found a mapping");
    expect_err("notify: [{ url: \"http://a\" }]\n", "t.yaml:1: notify[0].type: required key is "
                                                    "missing");
    expect_err("notify: [{ type: slack, url: \"http://a\" }]\n",
               "t.yaml:1: notify[0].type: unknown type \"slack\" (expected webhook, alertmanager "
               "or exec)");
    expect_err("notify:\n  - { type: webhook, secret: x }\n",
               "t.yaml:2: notify[0].url: required key is missing");
    expect_err("notify:\n  - { type: webhook, url: \"http://a/h\" }\n",
               "t.yaml:2: notify[0]: a webhook needs secret (e.g. \"${HOOK_SECRET}\") or "
               "secret_file: receivers check the X-Tollgate-Signature it signs");
    /* The URL is not echoed: it may carry a token. */
    expect_err("notify:\n  - { type: webhook, url: \"ftp://tok3n@a/h\", secret: x }\n",
               "t.yaml:2: notify[0].url: bad URL: must start with http:// or https:// (the URL "
               "is not shown: it may hold a credential)");
    expect_err("notify:\n  - { type: alertmanager, url: \"http://bad host:9093\" }\n",
               "t.yaml:2: notify[0].url: bad URL: must not contain spaces or line breaks (the "
               "URL is not shown: it may hold a credential)");
    expect_err("notify:\n  - { type: alertmanager, url: \"http://am:99999\" }\n",
               "t.yaml:2: notify[0].url: bad URL: port out of range (the URL is not shown: it "
               "may hold a credential)");
    expect_err("notify:\n  - { type: alertmanager, url: \"http://am\", secret: x }\n",
               "t.yaml:2: notify[0].secret: not a key of an alertmanager notifier");
    expect_err("notify:\n  - { type: webhook, url: \"http://a/h\", secret: x, resend: 1m }\n",
               "t.yaml:2: notify[0].resend: not a key of a webhook notifier");
    expect_err("notify:\n  - { type: alertmanager, url: \"http://am\", resend: 500ms }\n",
               "t.yaml:2: notify[0].resend: between 1s and 1h, or 0 (never re-sent)");
    expect_err("notify:\n  - { type: alertmanager, url: \"http://am\", resend: 2h }\n",
               "t.yaml:2: notify[0].resend: between 1s and 1h, or 0 (never re-sent)");
    expect_err("notify:\n  - { type: exec, command: on-alarm.sh }\n",
               "t.yaml:2: notify[0].command: must be an absolute path (got \"on-alarm.sh\"): the "
               "program is run without a shell or a PATH search");
    expect_err("notify:\n  - { type: exec, command: [] }\n",
               "t.yaml:2: notify[0].command: needs at least the program's absolute path");
    expect_err("notify:\n  - { type: exec }\n", "t.yaml:2: notify[0].command: required key is "
                                                "missing");
    expect_err("notify:\n  - { type: exec, command: /bin/true, url: \"http://a\" }\n",
               "t.yaml:2: notify[0].url: not a key of an exec notifier");
    expect_err("notify:\n  - { type: exec, command: /bin/true, timeout: 2m }\n",
               "t.yaml:2: notify[0].timeout: at most 60s");
    expect_err("notify:\n  - { name: a, type: exec, command: /bin/true }\n"
               "  - { name: a, type: exec, command: /bin/false }\n",
               "t.yaml:3: notify[1].name: duplicate notifier name \"a\" (notify[0] has it)");
    expect_err("notify:\n  - { type: webhook, url: \"http://a\", secret: x, secret_file: /f }\n",
               "t.yaml:2: notify[0].secret_file: give secret or secret_file, not both");
    expect_err("notify:\n  - { type: webhook, url: \"http://a\", secret: \"\" }\n",
               "t.yaml:2: notify[0].secret: must not be empty");
    expect_err("notify:\n  - { type: webhook, url: \"http://a\", secrt: x }\n",
               "t.yaml:2: notify[0].secrt: unknown key (did you mean \"secret\"?)");
    expect_err("notify_retry: { max: 11m }\n",
               "t.yaml:1: notify_retry.max: at most 10m (a receiver back from an outage waits up "
               "to this long)");
    expect_err("notify_retry: { min: 5s, max: 2s }\n",
               "t.yaml:1: notify_retry.min: must not exceed notify_retry.max (2000ms)");
}

/* No message of a failing config holds the secret's value. */
static void test_secret_never_echoed(void **state)
{
    (void)state;
    setenv("HOOK_SECRET", "VERY-SECRET-42", 1);
    const char *bad[] = {
        "notify:\n  - { type: webhook, url: \"http://a\", secret: \"${HOOK_SECRET}\", x: 1 }\n",
        "notify:\n  - { type: alertmanager, url: \"http://a\", secret: \"${HOOK_SECRET}\" }\n",
        "notify:\n  - { type: webhook, url: \"http://a:0/${HOOK_SECRET}\", secret: x }\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_config_t *c = NULL;
        tg_err_t err = {{0}};
        assert_int_equal(tg_config_parse("t.yaml", bad[i], strlen(bad[i]), &c, &err), -1);
        assert_null(strstr(err.msg, "VERY-SECRET"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_example),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_secret_never_echoed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
