/* `tollgate alarms export-rules`: the configured alarms as Prometheus alerting rules over
 * the series tollgate exports on /metrics, for teams that alert from Prometheus instead of
 * (or beside) tollgate's own engine. One group "tollgate", evaluated every
 * alarms_interval; one rule per alarm, named tollgate_NAME ('.' and '-' become '_'),
 * labelled alarm, alarm_kind and severity, `for:` = for x alarms_interval.
 *
 * What each kind becomes (W = the window, TOTAL = tollgate_requests_total):
 *   quota       max by (tenant) (tollgate_limit_utilisation) >= threshold
 *   error_rate  sum by (tenant) (rate(TOTAL{status_class="5xx",outcome!="rejected"}[W]))
 *               / sum by (tenant) (rate(TOTAL[W]))
 *   latency     histogram_quantile(q, sum by (tenant, le)
 *               (rate(tollgate_request_duration_seconds_bucket[W]))) * 1000
 *   spend_rate  sum by (tenant) (rate(tollgate_cost_micro_usd_total[W])) * 3600
 *   queue       tollgate_events_queued / recorder.queue_size, or 1 while spooling
 * with min_requests as `and on (tenant) sum by (tenant) (increase(TOTAL[W])) >= N`, and
 * baseline_factor as the value's average over the 5 windows before this one (a subquery
 * `avg_over_time((VALUE)[5W:W] offset W)`, Prometheus' nearest to the engine's EWMA):
 * `unless` the value is below factor x that average when the rule also has a threshold
 * (it fires on the threshold without a baseline, as the engine does), `and` at or above it
 * otherwise (no baseline, no alert). Prometheus has no hysteresis: resolve_margin has no
 * equivalent. */
#ifndef TG_ALARM_PROMRULES_H
#define TG_ALARM_PROMRULES_H

#include "config/config.h"
#include "util/buf.h"

/* Appends the rules file (YAML) to out. 0, or -1 when out could not hold it. */
int tg_alarm_prom_rules(const tg_config_t *cfg, tg_buf_t *out);

#endif
