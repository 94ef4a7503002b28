/* Prometheus alerting rules from the alarms: see promrules.h for the expressions. Text
 * only (no YAML library needed to write it): every value written is a number, a fixed
 * word, a name of [A-Za-z0-9._-] (config names) or an expression quoted with single
 * quotes that contains none. */
#include "alarm/promrules.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int add(tg_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int add(tg_buf_t *out, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) return -1;
    return tg_buf_add(out, tmp, (size_t)n) < 0 ? -1 : 0;
}

/* A Prometheus duration of ms: "90s", "5m", "1h" (the largest unit that divides it). */
static void dur(long ms, char *buf, size_t cap)
{
    if (ms % 3600000 == 0)
        snprintf(buf, cap, "%ldh", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, cap, "%ldm", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, cap, "%lds", ms / 1000);
    else
        snprintf(buf, cap, "%ldms", ms);
}

/* The expression of the rule's value, per tenant (queue: process-wide). */
static void value_expr(const tg_config_t *c, const tg_alarm_conf_t *a, char *buf, size_t cap)
{
    char w[32];
    dur(a->window_ms, w, sizeof w);
    switch (a->kind) {
    case TG_ALARM_QUOTA: snprintf(buf, cap, "max by (tenant) (tollgate_limit_utilisation)"); break;
    case TG_ALARM_ERROR_RATE:
        snprintf(buf, cap,
                 "(sum by (tenant) (rate(tollgate_requests_total{status_class=\"5xx\","
                 "outcome!=\"rejected\"}[%s])) / sum by (tenant) "
                 "(rate(tollgate_requests_total[%s])))",
                 w, w);
        break;
    case TG_ALARM_LATENCY:
        snprintf(buf, cap,
                 "(histogram_quantile(%g, sum by (tenant, le) "
                 "(rate(tollgate_request_duration_seconds_bucket[%s]))) * 1000)",
                 a->quantile, w);
        break;
    case TG_ALARM_SPEND_RATE:
        snprintf(buf, cap, "(sum by (tenant) (rate(tollgate_cost_micro_usd_total[%s])) * 3600)", w);
        break;
    case TG_ALARM_QUEUE:
        snprintf(buf, cap, "(tollgate_events_queued / %zu)", c->recorder.queue_size);
        break;
    }
}

static int rule(const tg_config_t *c, const tg_alarm_conf_t *a, tg_buf_t *out)
{
    char v[512], expr[1800], w[32], w5[32], forv[32], name[80];
    value_expr(c, a, v, sizeof v);
    dur(a->window_ms, w, sizeof w);
    dur(a->window_ms * 5, w5, sizeof w5);
    dur(c->alarms_interval_ms * a->for_evals, forv, sizeof forv);
    snprintf(name, sizeof name, "tollgate_%s", a->name);
    for (char *p = name; *p; p++)
        if (*p == '.' || *p == '-') *p = '_';
    double floor = a->threshold;
    if (a->kind == TG_ALARM_LATENCY && (double)a->min_ms > floor) floor = (double)a->min_ms;
    size_t n = 0;
    if (a->kind == TG_ALARM_QUEUE)
        n = (size_t)snprintf(expr, sizeof expr, "(%s >= %g) or (tollgate_events_spooling >= 1)", v,
                             a->threshold);
    else
        n = (size_t)snprintf(expr, sizeof expr, "%s > 0 and %s >= %g", v, v, floor);
    /* unless: the series below factor x baseline are dropped, those without a baseline
     * stay; and: only those at or above it (no baseline, no alert). */
    if (a->baseline_factor > 0 && n < sizeof expr)
        n += (size_t)snprintf(expr + n, sizeof expr - n,
                              " %s on (tenant) (%s %s %g * avg_over_time(%s[%s:%s] offset %s))",
                              a->threshold > 0 ? "unless" : "and", v,
                              a->threshold > 0 ? "<" : ">=", a->baseline_factor, v, w5, w, w);
    if (a->window_ms && a->min_requests > 0 && n < sizeof expr)
        n += (size_t)snprintf(expr + n, sizeof expr - n,
                              " and on (tenant) sum by (tenant) "
                              "(increase(tollgate_requests_total[%s])) >= %d",
                              w, a->min_requests);
    if (n >= sizeof expr) return -1;
    const char *unit = a->kind == TG_ALARM_LATENCY      ? " ms"
                       : a->kind == TG_ALARM_SPEND_RATE ? " micro-USD/h"
                                                        : "";
    return add(out,
               "      - alert: %s\n"
               "        expr: '%s'\n"
               "        for: %s\n"
               "        labels:\n"
               "          alarm: %s\n"
               "          alarm_kind: %s\n"
               "          severity: %s\n"
               "        annotations:\n"
               "          summary: '%s %s{{ if $labels.tenant }} for tenant "
               "{{ $labels.tenant }}{{ end }}: {{ $value }}%s'\n",
               name, expr, forv, a->name, tg_alarm_kind_name(a->kind), a->severity, a->name,
               tg_alarm_kind_name(a->kind), unit);
}

int tg_alarm_prom_rules(const tg_config_t *cfg, tg_buf_t *out)
{
    char every[32], path[256];
    snprintf(path, sizeof path, "%s", cfg->path);
    for (char *p = path; *p; p++) /* a comment line stays one line */
        if ((unsigned char)*p < 0x20) *p = '?';
    dur(cfg->alarms_interval_ms, every, sizeof every);
    if (add(out,
            "# Prometheus alerting rules equivalent to the alarms of %s\n"
            "# (tollgate alarms export-rules; docs/operations.md, \"Alarms\").\n"
            "groups:\n"
            "  - name: tollgate\n"
            "    interval: %s\n"
            "    rules:%s\n",
            path, every, cfg->nalarms ? "" : " []") < 0)
        return -1;
    for (size_t i = 0; i < cfg->nalarms; i++)
        if (rule(cfg, &cfg->alarms[i], out) < 0) return -1;
    return 0;
}
