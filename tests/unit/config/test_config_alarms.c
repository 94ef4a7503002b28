/* Tests for the alarms:, alarms_interval: and actions: keys of src/config/config.c: the
 * issue's example parses into the expected rules, defaults apply per kind, and every bad
 * value fails with "FILE:LINE: KEY.PATH: problem". */
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

static const char issue_example[] =
    "alarms:\n"
    "  - { name: quota,   kind: quota,      threshold: 0.8 }\n"
    "  - { name: errors,  kind: error_rate, window: 5m, threshold: 0.05, min_requests: 20, "
    "baseline_factor: 3 }\n"
    "  - { name: slow,    kind: latency,    window: 5m, quantile: 0.95, baseline_factor: 2, "
    "min_ms: 200 }\n"
    "  - { name: spend,   kind: spend_rate, window: 1h, baseline_factor: 4 }\n"
    "  - { name: backlog, kind: queue,      threshold: 0.8, for: 3, resolve_margin: 0.2, "
    "severity: critical }\n"
    "actions:\n"
    "  - { alarm: quota, at: firing, do: throttle, factor: 0.5 }\n"
    "  - { alarm: errors, do: pause }\n"
    "alarms_interval: 1s\n";

static void test_issue_example(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok(issue_example);
    assert_int_equal(c->nalarms, 5);
    assert_int_equal(c->alarms_interval_ms, 1000);
    const tg_alarm_conf_t *a = c->alarms;
    assert_string_equal(a[0].name, "quota");
    assert_int_equal(a[0].kind, TG_ALARM_QUOTA);
    assert_true(a[0].threshold == 0.8);
    assert_int_equal(a[0].window_ms, 0);
    assert_int_equal(a[0].for_evals, 1);
    assert_true(a[0].resolve_margin == 0.1);
    assert_string_equal(a[0].severity, "warning");
    assert_int_equal(a[1].kind, TG_ALARM_ERROR_RATE);
    assert_int_equal(a[1].window_ms, 300000);
    assert_true(a[1].threshold == 0.05);
    assert_true(a[1].baseline_factor == 3);
    assert_int_equal(a[1].min_requests, 20);
    assert_int_equal(a[2].kind, TG_ALARM_LATENCY);
    assert_true(a[2].quantile == 0.95);
    assert_int_equal(a[2].min_ms, 200);
    assert_true(a[2].threshold == 0);
    assert_int_equal(a[3].kind, TG_ALARM_SPEND_RATE);
    assert_int_equal(a[3].window_ms, 3600000);
    assert_int_equal(a[4].kind, TG_ALARM_QUEUE);
    assert_int_equal(a[4].for_evals, 3);
    assert_true(a[4].resolve_margin == 0.2);
    assert_string_equal(a[4].severity, "critical");
    assert_int_equal(c->nactions, 2);
    assert_string_equal(c->actions[0].alarm, "quota");
    assert_int_equal(c->actions[0].what, TG_ACTION_THROTTLE);
    assert_int_equal(c->actions[0].at_firing, 1);
    assert_true(c->actions[0].factor == 0.5);
    assert_int_equal(c->actions[1].what, TG_ACTION_PAUSE);
    assert_int_equal(c->actions[1].at_firing, 1);
    assert_string_equal(tg_alarm_kind_name(TG_ALARM_SPEND_RATE), "spend_rate");
    tg_config_unref(c);
}

static void test_defaults(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("store: sqlite:x.db\n");
    assert_int_equal(c->nalarms, 0);
    assert_int_equal(c->nactions, 0);
    assert_int_equal(c->alarms_interval_ms, 10000);
    tg_config_unref(c);
    c = parse_ok("alarms: []\nactions: []\n");
    assert_int_equal(c->nalarms, 0);
    tg_config_unref(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_err("alarms:\n  - { name: a, kind: quotas, threshold: 1 }\n",
               "t.yaml:2: alarms[0].kind: unknown alarm kind \"quotas\" (expected one of: quota, "
               "error_rate, latency, spend_rate, queue)");
    expect_err("alarms:\n  - { name: a, kind: error_rate, window: 0, threshold: 0.1 }\n",
               "t.yaml:2: alarms[0].window: must be positive (got 0)");
    expect_err("alarms:\n  - { name: a, kind: error_rate, window: 25h, threshold: 0.1 }\n",
               "t.yaml:2: alarms[0].window: at most 24h (got 90000 s)");
    expect_err("alarms:\n  - { kind: quota, threshold: 1 }\n",
               "t.yaml:2: alarms[0].name: required key is missing");
    expect_err("alarms:\n  - { name: a, kind: quota }\n",
               "t.yaml:2: alarms[0].threshold: required key is missing");
    expect_err("alarms:\n  - { name: a, kind: quota, threshold: 0.5, window: 5m }\n",
               "t.yaml:2: alarms[0].window: not used by kind quota alarms");
    expect_err("alarms:\n  - { name: a, kind: latency, window: 5m }\n",
               "t.yaml:2: alarms[0]: give threshold, baseline_factor or both (kind latency)");
    expect_err("alarms:\n  - { name: a, kind: error_rate, threshold: 1.5 }\n",
               "t.yaml:2: alarms[0].threshold: must be greater than 0 and at most 1 (got 1.5)");
    expect_err("alarms:\n  - { name: a, kind: error_rate, threshold: nan }\n",
               "t.yaml:2: alarms[0].threshold: expected a number, got \"nan\"");
    expect_err("alarms:\n  - { name: a, kind: latency, baseline_factor: 0.5 }\n",
               "t.yaml:2: alarms[0].baseline_factor: must be at least 1 and at most 1000 (got "
               "0.5)");
    expect_err("alarms:\n  - { name: a, kind: latency, baseline_factor: 2, quantile: 1 }\n",
               "t.yaml:2: alarms[0].quantile: must be greater than 0 and at most 0.999 (got 1)");
    expect_err("alarms:\n  - { name: a, kind: queue, threshold: 0.5, for: 0 }\n",
               "t.yaml:2: alarms[0].for: must be positive (got 0)");
    expect_err("alarms:\n  - { name: a, kind: queue, threshold: 0.5, severity: page }\n",
               "t.yaml:2: alarms[0].severity: unknown severity \"page\" (expected one of: "
               "warning, critical)");
    expect_err("alarms:\n  - { name: a, kind: queue, threshold: 0.5 }\n"
               "  - { name: a, kind: quota, threshold: 0.5 }\n",
               "t.yaml:3: alarms[1].name: duplicate alarm name \"a\" (first at line 2)");
    expect_err("alarms:\n  - { name: a, kind: queue, threshold: 0.5, treshold: 1 }\n",
               "t.yaml:2: alarms[0].treshold: unknown key (did you mean \"threshold\"?)");
    expect_err("alarms: { name: a }\n",
               "t.yaml:1: alarms: expected a list of alarm rules, found a mapping");
    expect_err("alarms_interval: 0\n", "t.yaml:1: alarms_interval: must be positive (got 0)");
}

static void test_action_errors(void **state)
{
    (void)state;
    const char *rules = "alarms:\n  - { name: q, kind: quota, threshold: 0.8 }\n"
                        "  - { name: b, kind: queue, threshold: 0.8 }\n";
    char y[512];
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: nope, do: pause }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].alarm: no alarm named \"nope\"");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, do: throttle, factor: 1.5 }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].factor: must be greater than 0 and at most 1 (got 1.5)");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, do: throttle, factor: 0 }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].factor: must be greater than 0 and at most 1 (got 0)");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, do: throttle }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].factor: required key is missing");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, do: pause, factor: 0.5 }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].factor: only a throttle takes a factor");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, do: slow }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].do: unknown action \"slow\" (expected one of: throttle, "
                  "pause)");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, at: ok, do: pause }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].at: unknown state \"ok\" (expected one of: pending, "
                  "firing)");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: b, do: pause }\n", rules);
    expect_err(y, "t.yaml:5: actions[0].alarm: alarm \"b\" is process-wide (kind queue): actions "
                  "act on a tenant");
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, do: pause }\n  - { alarm: q, do: pause }\n",
             rules);
    expect_err(y, "t.yaml:6: actions[1].alarm: alarm \"q\" already has a pause action");
    /* at: pending is accepted */
    snprintf(y, sizeof y, "%sactions:\n  - { alarm: q, at: pending, do: pause }\n", rules);
    tg_config_t *c = parse_ok(y);
    assert_int_equal(c->actions[0].at_firing, 0);
    tg_config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_action_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
