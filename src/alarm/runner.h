/* The alarm runner: the engine (alarm.h) with what surrounds it in a serving gateway, so
 * that the server only gathers inputs and calls one function per tick.
 *
 * At each tick, for every transition the engine returns, in order:
 *   1. actions (config `actions:`): on entering the action's state (`at: firing`, the
 *      default, or `pending`) a throttle scales the tenant's rate rules in the policy
 *      (tg_policy_set_scale: the lowest factor of the tenant's active throttles) and a
 *      pause writes a pause row with reason "alarm:NAME", as `tollgate pause` does (a
 *      tenant already paused is left as it is, and the pause is not the alarm's). On
 *      resolved (or back to ok from pending) they are undone: the throttle always (it is
 *      the runner's own), the pause only when its row is still there with the alarm's
 *      reason: an operator who resumed the tenant, or paused it again with a reason of
 *      their own, is not overridden.
 *   2. the store: the state row of (rule, tenant) and the transition are queued; all of
 *      one evaluation (with the state rows of alarms still not ok, rewritten each tick with
 *      their latest value) go in one transaction (tg_store_alarm_put) at its end. A write
 *      that fails is kept (at most 1024 transitions) and tried again at the next tick; the
 *      transition's notice id makes the retry idempotent.
 *   3. one log line (info; warn for firing).
 * and once the evaluation's writes are stored: notify(ud, store, notice, err) for each
 * transition to pending, firing or resolved (not resolved -> ok), in order. A notice goes out only
 * after its transition (and so its sequence number) is in the store: an id is never sent and then
 * reused after a crash. While the store cannot be written the notices wait with the transitions
 * (the notification outbox lives in the same store anyway).
 *
 * Actions held by a rule that a reload (or a restart) removed from the config are undone
 * at once, as on resolve: such an alarm can never resolve.
 *
 * At start the runner reads the alarms table: each rule's state and sequence number are
 * restored (ids are never reused) and the throttles of alarms still holding are applied
 * again (the policy's scales live in memory only). Windows and baselines are not stored:
 * they form again after a restart.
 *
 * One thread (the server's main loop) uses a runner and the store connection it owns. */
#ifndef TG_ALARM_RUNNER_H
#define TG_ALARM_RUNNER_H

#include "alarm/alarm.h"
#include "config/config.h"
#include "policy/policy.h"
#include "store/store.h"
#include "util/err.h"

typedef struct tg_alarm_runner tg_alarm_runner_t;

/* Hands one notice on (to the notification outbox), on store, the runner's connection
 * (main thread). 0 when taken; nonzero (err set) and the runner keeps it and the ones after
 * it, in order, and tries again at the next evaluation (at most 1024 wait, the oldest
 * dropped past that, logged). The shape of the budgets' notice hook (policy/budget.h). */
typedef int (*tg_alarm_notify_fn)(void *ud, tg_store_t *store, const tg_notice_t *n, tg_err_t *err);

/* A runner with cfg's rules and actions, over store (taken: closed by
 * tg_alarm_runner_free) and policy (borrowed; NULL: actions only logged as not done),
 * for at most max_tenants tenants (metrics.max_tenants). Reads the alarms table. NULL
 * with err set on failure (store is then closed too). */
tg_alarm_runner_t *tg_alarm_runner_new(const tg_config_t *cfg, tg_store_t *store,
                                       tg_policy_t *policy, size_t max_tenants, tg_err_t *err);
void tg_alarm_runner_free(tg_alarm_runner_t *r);

/* A reloaded config's rules and actions (SIGHUP): rules that keep their name and kind
 * keep their state; applied actions stay until their alarm resolves. 0 or -1 (out of
 * memory: the old ones stay). */
int tg_alarm_runner_set_config(tg_alarm_runner_t *r, const tg_config_t *cfg);

/* One evaluation at wall time now_us (see above). notify may be NULL. Returns the number
 * of transitions. */
size_t tg_alarm_runner_tick(tg_alarm_runner_t *r, const tg_alarm_inputs_t *in, int64_t now_us,
                            tg_alarm_notify_fn notify, void *ud);

/* Calls cb for every (rule, tenant) of the engine that is not ok (all: also those that had
 * a transition), as tg_alarm_each (alarm.h) does: the dashboard's firing alarms. */
int tg_alarm_runner_each(tg_alarm_runner_t *r, int all,
                         int (*cb)(const tg_alarm_status_t *, void *), void *ud);

/* Transitions waiting for a store write, notices waiting for notify (tests). */
size_t tg_alarm_runner_backlog(const tg_alarm_runner_t *r);
size_t tg_alarm_runner_unsent(const tg_alarm_runner_t *r);

#endif
