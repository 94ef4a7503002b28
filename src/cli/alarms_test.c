/* `tollgate alarms test NAME`: a sample notice (kind test, alarm NAME, a unique id) sent
 * through every configured notifier, synchronously and not through the outbox (nothing is
 * stored, nothing retried), with each notifier's result printed: ok, the HTTP status, the
 * program's exit status, or the error. Exit 0 when every notifier took it, 1 when any
 * failed (or none is configured), 2 on a usage or config error. */
#include <curl/curl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "notify/send.h"
#include "util/clock.h"

#define USAGE_ALARMS_TEST "usage: tollgate alarms test NAME"

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

int tg_cli_alarms_test(int argc, char **argv, const char *config_path)
{
    const char *pos[1];
    int npos = 0, help = 0;
    int rc = tg_cli_parse(argc, argv, 2, NULL, 0, pos, 1, &npos, &help, USAGE_ALARMS_TEST);
    if (rc != TG_EXIT_OK) return rc;
    if (help) {
        puts(USAGE_ALARMS_TEST);
        return TG_EXIT_OK;
    }
    if (npos != 1)
        return tg_cli_errorf(TG_EXIT_USAGE, "alarms test needs an alarm NAME (%s)",
                             USAGE_ALARMS_TEST);
    if (!valid_name(pos[0]))
        return tg_cli_errorf(
            TG_EXIT_USAGE, "invalid alarm name \"%.64s\": use 1-63 characters of A-Z a-z 0-9 . _ -",
            pos[0]);
    tg_config_t *cfg;
    tg_err_t err = {{0}};
    if (tg_config_load(config_path, &cfg, &err) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    /* NAME is a configured rule (its kind and severity go into the sample), or "budget"
     * for the budget thresholds' notices. */
    const tg_alarm_conf_t *rule = NULL;
    for (size_t i = 0; i < cfg->nalarms; i++)
        if (!strcmp(cfg->alarms[i].name, pos[0])) rule = &cfg->alarms[i];
    if (!rule && strcmp(pos[0], "budget") != 0) {
        char names[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < cfg->nalarms && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                     cfg->alarms[i].name);
        rc = tg_cli_errorf(TG_EXIT_USAGE,
                           "no alarm named \"%s\" in %s (configured: %s; or \"budget\" for the "
                           "budget thresholds)",
                           pos[0], config_path, cfg->nalarms ? names : "none");
        tg_config_unref(cfg);
        return rc;
    }
    if (cfg->nnotifiers == 0) {
        tg_config_unref(cfg);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "no notifiers configured (notify: in %s)",
                             config_path);
    }
    signal(SIGPIPE, SIG_IGN); /* an exec notifier that does not read its stdin */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    int64_t now = tg_wall_us();
    unsigned char r[4] = {0};
    RAND_bytes(r, sizeof r);
    tg_notice_t n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "test/%s/%lld-%02x%02x%02x%02x", pos[0], (long long)(now / 1000),
             r[0], r[1], r[2], r[3]);
    snprintf(n.kind, sizeof n.kind, "test");
    snprintf(n.alarm, sizeof n.alarm, "%s", pos[0]);
    snprintf(n.alarm_kind, sizeof n.alarm_kind, "%s",
             rule ? tg_alarm_kind_name(rule->kind) : "budget");
    snprintf(n.state, sizeof n.state, "firing");
    snprintf(n.severity, sizeof n.severity, "%s",
             rule && rule->severity ? rule->severity : "warning");
    n.value = 1;
    n.threshold = 1;
    n.time_us = n.started_us = now;
    snprintf(n.summary, sizeof n.summary,
             "test notification from `tollgate alarms test %s`: no action needed", pos[0]);

    printf("notice %s\n", n.id);
    int failed = 0;
    tg_notify_ctl_t ctl = {.stop = NULL, .mono_us = tg_mono_us};
    for (size_t i = 0; i < cfg->nnotifiers; i++) {
        const tg_notifier_conf_t *nc = &cfg->notifiers[i];
        tg_notify_result_t res;
        tg_notify_send(nc, &n, tg_wall_us(), &ctl, &res);
        int ok = res.outcome == TG_NOTIFY_OK;
        failed += !ok;
        printf("%s (%s): %s: %s\n", nc->name, tg_notifier_type_name(nc->type), ok ? "ok" : "failed",
               res.message);
    }
    fflush(stdout);
    size_t total = cfg->nnotifiers;
    curl_global_cleanup();
    tg_config_unref(cfg);
    if (failed) return tg_cli_errorf(TG_EXIT_RUNTIME, "%d of %zu notifiers failed", failed, total);
    return TG_EXIT_OK;
}
