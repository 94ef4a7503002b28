/* Choosing an upstream target: round-robin over the upstream's targets,
 * skipping any that failed max_fails times in a row until its cool-down
 * (fail_timeout) has passed: passive health, as nginx's max_fails does.
 * State lives in tg_upstream_conf_t / tg_target_t atomics, shared by all
 * workers without a lock: a lost race costs at most one extra attempt. */
#ifndef TG_GATEWAY_UPSTREAM_H
#define TG_GATEWAY_UPSTREAM_H

#include <stdint.h>

#include "config/config.h"

/* The next target to try, or when all are cooling down, the one whose
 * cool-down ends first (a gateway with every target down still tries). */
tg_target_t *tg_upstream_pick(tg_upstream_conf_t *u, int64_t now_mono_us);
/* Records the outcome of a transfer to t (ok = the upstream answered); t->fail_streak
 * counts the failures since its last success. */
void tg_upstream_report(tg_upstream_conf_t *u, tg_target_t *t, int ok, int64_t now_mono_us);
/* Targets not cooling down now. */
int tg_upstream_healthy(const tg_upstream_conf_t *u, int64_t now_mono_us);

#endif
