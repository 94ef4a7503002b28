/* Tests src/alarm/promrules.c: the rules file for the alarms holds one rule per
 * alarm over the exported series, and `promtool check rules` (Debian's prometheus package,
 * installed by scripts/deps.sh; missing is a failure) passes on it; a broken expression
 * is refused by promtool, so the check can fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "alarm/promrules.h"

static const char yaml[] =
    "alarms_interval: 10s\n"
    "recorder: { queue_size: 1000 }\n"
    "alarms:\n"
    "  - { name: quota,   kind: quota,      threshold: 0.8 }\n"
    "  - { name: errors,  kind: error_rate, window: 5m, threshold: 0.05, min_requests: 20, "
    "baseline_factor: 3 }\n"
    "  - { name: slow,    kind: latency,    window: 5m, quantile: 0.95, baseline_factor: 2, "
    "min_ms: 200, for: 3 }\n"
    "  - { name: spend.x, kind: spend_rate, window: 1h, baseline_factor: 4 }\n"
    "  - { name: backlog, kind: queue,      threshold: 0.8, severity: critical }\n";

static char *rules_of(const char *text)
{
    tg_config_t *c;
    tg_err_t err;
    if (tg_config_parse("t.yaml", text, strlen(text), &c, &err) != 0) fail_msg("%s", err.msg);
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    assert_int_equal(tg_alarm_prom_rules(c, &b), 0);
    tg_config_unref(c);
    return tg_buf_take(&b);
}

/* promtool's exit code on text (127: not installed). */
static int promtool(const char *text)
{
    char path[] = "/tmp/tg_test_promrules_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check rules %s >/dev/null 2>&1", path);
    int rc = system(cmd);
    unlink(path);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_rules(void **state)
{
    (void)state;
    char *r = rules_of(yaml);
    assert_non_null(strstr(r, "    interval: 10s\n"));
    assert_non_null(strstr(r, "- alert: tollgate_quota\n"));
    assert_non_null(strstr(r, "max by (tenant) (tollgate_limit_utilisation) >= 0.8"));
    assert_non_null(strstr(r, "- alert: tollgate_errors\n"));
    assert_non_null(
        strstr(r, "rate(tollgate_requests_total{status_class=\"5xx\",outcome!=\"rejected\"}[5m])"));
    assert_non_null(strstr(r, "unless on (tenant) ("));
    assert_non_null(strstr(r, "(increase(tollgate_requests_total[5m])) >= 20"));
    assert_non_null(strstr(r, "histogram_quantile(0.95, sum by (tenant, le) "
                              "(rate(tollgate_request_duration_seconds_bucket[5m])))"));
    assert_non_null(strstr(r, "        for: 30s\n")); /* slow: for 3 x 10 s */
    assert_non_null(strstr(r, "- alert: tollgate_spend_x\n"));
    assert_non_null(strstr(r, "          alarm: spend.x\n"));
    assert_non_null(strstr(r, "rate(tollgate_cost_micro_usd_total[1h])) * 3600"));
    assert_non_null(strstr(r, "[5h:1h] offset 1h"));
    assert_non_null(strstr(r, "(tollgate_events_queued / 1000) >= 0.8"));
    assert_non_null(strstr(r, "          severity: critical\n"));
    assert_int_equal(promtool(r), 0);
    /* The check can fail: an expression promtool cannot parse. */
    char *bad = strdup(r);
    char *at = strstr(bad, "max by (tenant)");
    memcpy(at, "max by (tenant(", 15);
    assert_int_not_equal(promtool(bad), 0);
    free(bad);
    free(r);
}

static void test_no_alarms(void **state)
{
    (void)state;
    char *r = rules_of("store: sqlite:x.db\n");
    assert_non_null(strstr(r, "    rules: []\n"));
    assert_int_equal(promtool(r), 0);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_no_alarms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
