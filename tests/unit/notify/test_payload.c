/* Tests for src/notify/payload.c: the notice's JSON, the webhook signature against vectors
 * computed independently with openssl(1), and Alertmanager's alert list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify/payload.h"

#define T0 1796083200000000LL /* 2026-12-01T00:00:00Z */

static tg_notice_t sample(void)
{
    tg_notice_t n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "alarm/errors/acme/12");
    snprintf(n.kind, sizeof n.kind, "alarm");
    snprintf(n.alarm, sizeof n.alarm, "errors");
    snprintf(n.alarm_kind, sizeof n.alarm_kind, "error_rate");
    snprintf(n.tenant, sizeof n.tenant, "acme");
    snprintf(n.state, sizeof n.state, "firing");
    snprintf(n.severity, sizeof n.severity, "critical");
    n.value = 0.12;
    n.threshold = 0.05;
    n.baseline = 0.01;
    n.window_s = 300;
    n.time_us = T0 + 1500000;
    n.started_us = T0;
    snprintf(n.summary, sizeof n.summary, "error rate 12%% over 5m");
    return n;
}

static void test_json(void **state)
{
    (void)state;
    tg_notice_t n = sample();
    char *s = tg_notify_json(&n);
    assert_non_null(s);
    assert_string_equal(s,
                        "{\"id\":\"alarm/errors/acme/12\",\"kind\":\"alarm\",\"alarm\":\"errors\","
                        "\"alarm_kind\":\"error_rate\",\"tenant\":\"acme\",\"state\":\"firing\","
                        "\"severity\":\"critical\",\"value\":0.12,\"threshold\":0.05,"
                        "\"baseline\":0.01,\"window\":300,\"time\":\"2026-12-01T00:00:01.500Z\","
                        "\"started\":\"2026-12-01T00:00:00.000Z\",\"summary\":\"error rate 12% "
                        "over 5m\"}");
    free(s);
    /* Hostile text stays one JSON string; bytes that are not UTF-8 become '?'. */
    snprintf(n.tenant, sizeof n.tenant, "a\"b\n$(x);\xff");
    n.value = 0.0 / 0.0;
    s = tg_notify_json(&n);
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "a\"b\n$(x);?");
    assert_true(json_is_null(json_object_get(j, "value")));
    json_decref(j);
    free(s);
}

static void test_signature(void **state)
{
    (void)state;
    char sig[TG_NOTIFY_SIG_SIZE];
    /* printf '%s' '{"id":"budget/acme/2026-12/80"}' | openssl dgst -sha256 -hmac topsecret */
    const char *body = "{\"id\":\"budget/acme/2026-12/80\"}";
    assert_int_equal(tg_notify_signature("topsecret", 9, body, strlen(body), sig), 0);
    assert_string_equal(sig,
                        "sha256=f164b996218012bf2e68569be0e06b332e937b2da5070408124e64320899f823");
    /* RFC 4231-style well-known vector:
     * printf '%s' 'The quick brown fox jumps over the lazy dog' | openssl dgst -sha256 -hmac key */
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(tg_notify_signature("key", 3, fox, strlen(fox), sig), 0);
    assert_string_equal(sig,
                        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
}

static void test_alertmanager(void **state)
{
    (void)state;
    tg_notice_t n = sample();
    char *s = tg_notify_alertmanager_json(&n, NULL, 0);
    json_error_t e;
    json_t *arr = json_loads(s, 0, &e);
    free(s);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 1);
    json_t *a = json_array_get(arr, 0), *l = json_object_get(a, "labels"),
           *an = json_object_get(a, "annotations");
    assert_string_equal(json_string_value(json_object_get(l, "alertname")), "errors");
    assert_string_equal(json_string_value(json_object_get(l, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(l, "severity")), "critical");
    assert_string_equal(json_string_value(json_object_get(l, "source")), "tollgate");
    assert_string_equal(json_string_value(json_object_get(l, "alarm_kind")), "error_rate");
    assert_string_equal(json_string_value(json_object_get(an, "value")), "0.12");
    assert_string_equal(json_string_value(json_object_get(an, "threshold")), "0.05");
    assert_string_equal(json_string_value(json_object_get(an, "baseline")), "0.01");
    assert_string_equal(json_string_value(json_object_get(an, "notice_id")),
                        "alarm/errors/acme/12");
    assert_string_equal(json_string_value(json_object_get(a, "startsAt")),
                        "2026-12-01T00:00:00.000Z");
    assert_null(json_object_get(a, "endsAt")); /* firing, no lease */
    assert_null(json_object_get(a, "generatorURL"));
    json_decref(arr);

    /* Firing with a lease: endsAt is the lease's end (re-sent before it while firing). */
    s = tg_notify_alertmanager_json(&n, NULL, 1796083440000000LL);
    arr = json_loads(s, 0, &e);
    free(s);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "endsAt")),
                        "2026-12-01T00:04:00.000Z");
    json_decref(arr);

    /* Resolved: endsAt is the notice's time, whatever the lease; a process-wide notice has
     * no tenant label. */
    snprintf(n.state, sizeof n.state, "resolved");
    n.tenant[0] = '\0';
    s = tg_notify_alertmanager_json(&n, "http://gw:9090/dashboard", 1796083440000000LL);
    arr = json_loads(s, 0, &e);
    free(s);
    a = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(a, "endsAt")),
                        "2026-12-01T00:00:01.500Z");
    assert_null(json_object_get(json_object_get(a, "labels"), "tenant"));
    assert_string_equal(json_string_value(json_object_get(a, "generatorURL")),
                        "http://gw:9090/dashboard");
    json_decref(arr);
}

/* A re-send round's list: every notice's alert, in order, each with the lease. */
static void test_alertmanager_list(void **state)
{
    (void)state;
    tg_notice_t v[3] = {sample(), sample(), sample()};
    snprintf(v[1].tenant, sizeof v[1].tenant, "beta");
    snprintf(v[2].alarm, sizeof v[2].alarm, "slow");
    char *s = tg_notify_alertmanager_list_json(v, 3, NULL, 1796083440000000LL);
    json_error_t e;
    json_t *arr = json_loads(s, 0, &e);
    free(s);
    assert_int_equal(json_array_size(arr), 3);
    const char *want[3][2] = {{"errors", "acme"}, {"errors", "beta"}, {"slow", "acme"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *a = json_array_get(arr, i), *l = json_object_get(a, "labels");
        assert_string_equal(json_string_value(json_object_get(l, "alertname")), want[i][0]);
        assert_string_equal(json_string_value(json_object_get(l, "tenant")), want[i][1]);
        assert_string_equal(json_string_value(json_object_get(a, "endsAt")),
                            "2026-12-01T00:04:00.000Z");
    }
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_alertmanager),
        cmocka_unit_test(test_alertmanager_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
