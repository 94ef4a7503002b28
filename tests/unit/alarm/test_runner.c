/* Tests src/alarm/runner.c with a real SQLite store and a real policy: transitions are
 * stored and notified, throttles scale the tenant's limits while the alarm fires and are
 * undone on resolve, pauses are written and cleared unless an operator acted meanwhile,
 * and a restart restores sequence numbers and throttles. Fixed instants throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "alarm/runner.h"

#define S  1000000LL
#define T0 (1800000000LL * S)

static const char yaml[] = "alarms:\n"
                           "  - { name: hot, kind: quota, threshold: 0.8 }\n"
                           "  - { name: stop, kind: quota, threshold: 0.95 }\n"
                           "actions:\n"
                           "  - { alarm: hot, do: throttle, factor: 0.5 }\n"
                           "  - { alarm: stop, do: pause }\n";

typedef struct fx {
    char dir[64], url[160];
    tg_config_t *cfg;
    tg_policy_t *policy;
    tg_store_t *cli; /* another connection: the operator's */
    tg_notice_t got[16];
    int ngot;
} fx_t;

static tg_store_t *open_store(fx_t *f)
{
    tg_store_t *s;
    tg_err_t err;
    if (tg_store_open(f->url, &s, &err) != 0) fail_msg("open: %s", err.msg);
    return s;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_test_runner_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->url, sizeof f->url, "sqlite:%s/t.db", f->dir);
    tg_err_t err;
    if (tg_config_parse("t.yaml", yaml, strlen(yaml), &f->cfg, &err) != 0) return -1;
    f->policy = tg_policy_new();
    f->cli = open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_store_close(f->cli);
    tg_policy_free(f->policy);
    tg_config_unref(f->cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static int refuse; /* notices the hook refuses before it takes them again */

static int notified(void *ud, tg_store_t *store, const tg_notice_t *n, tg_err_t *err)
{
    fx_t *f = ud;
    assert_non_null(store); /* the runner's connection, to enqueue on */
    if (refuse > 0) {
        refuse--;
        return tg_err_set(err, "outbox refused");
    }
    if (f->ngot < 16) f->got[f->ngot++] = *n;
    return 0;
}

static size_t tick(tg_alarm_runner_t *r, fx_t *f, double quota, int64_t t)
{
    tg_alarm_tenant_in_t in = {.tenant = "acme", .quota = quota};
    tg_alarm_inputs_t inputs = {&in, 1, -1, 0};
    return tg_alarm_runner_tick(r, &inputs, T0 + t * S, notified, f);
}

typedef struct found {
    tg_alarm_row_t rows[8];
    int nrows;
    tg_alarm_event_row_t evs[16];
    int nevs;
    char pause_reason[256];
    int paused;
} found_t;

static int on_row(const tg_alarm_row_t *r, void *ud)
{
    found_t *x = ud;
    if (x->nrows < 8) x->rows[x->nrows++] = *r;
    return 0;
}

static int on_ev(const tg_alarm_event_row_t *r, void *ud)
{
    found_t *x = ud;
    if (x->nevs < 16) x->evs[x->nevs++] = *r;
    return 0;
}

static int on_pause(const tg_pause_row_t *p, void *ud)
{
    found_t *x = ud;
    if (strcmp(p->tenant, "acme")) return 0;
    x->paused = 1;
    snprintf(x->pause_reason, sizeof x->pause_reason, "%s", p->reason);
    return 0;
}

static found_t look(fx_t *f)
{
    found_t x;
    memset(&x, 0, sizeof x);
    tg_err_t err;
    assert_int_equal(tg_store_alarm_list(f->cli, on_row, &x, &err), 0);
    assert_int_equal(tg_store_alarm_events(f->cli, "acme", 0, on_ev, &x, &err), 0);
    assert_int_equal(tg_store_pause_list(f->cli, on_pause, &x, &err), 0);
    return x;
}

static const tg_alarm_row_t *row_named(const found_t *x, const char *name)
{
    for (int i = 0; i < x->nrows; i++)
        if (!strcmp(x->rows[i].name, name)) return &x->rows[i];
    return NULL;
}

static void test_throttle_and_pause(void **state)
{
    fx_t *f = *state;
    tg_err_t err;
    tg_alarm_runner_t *r = tg_alarm_runner_new(f->cfg, open_store(f), f->policy, 100, &err);
    assert_non_null(r);
    assert_int_equal(tick(r, f, 0.5, 10), 0);
    assert_int_equal(tick(r, f, 0.9, 20), 1); /* hot: pending */
    assert_true(tg_policy_scale(f->policy, "acme") == 1);
    assert_int_equal(tick(r, f, 0.9, 30), 1); /* hot: firing: throttled */
    assert_true(tg_policy_scale(f->policy, "acme") == 0.5);
    found_t x = look(f);
    const tg_alarm_row_t *hot = row_named(&x, "hot");
    assert_non_null(hot);
    assert_string_equal(hot->state, "firing");
    assert_string_equal(hot->action, "throttle 0.5");
    assert_int_equal(hot->seq, 2);
    assert_int_equal(x.nevs, 2);
    assert_string_equal(x.evs[0].notice_id, "alarm/hot/acme/2");
    assert_string_equal(x.evs[0].action, "throttle 0.5");
    assert_int_equal(f->ngot, 2);
    assert_string_equal(f->got[1].state, "firing");
    assert_string_equal(f->got[1].id, "alarm/hot/acme/2");

    /* stop fires too: paused with the alarm's reason. */
    tick(r, f, 0.99, 40);
    tick(r, f, 0.99, 50);
    x = look(f);
    assert_true(x.paused);
    assert_string_equal(x.pause_reason, "alarm:stop");
    assert_string_equal(row_named(&x, "stop")->action, "pause");

    /* Both resolve: throttle and pause undone. */
    assert_int_equal(tick(r, f, 0.1, 60), 2);
    assert_true(tg_policy_scale(f->policy, "acme") == 1);
    x = look(f);
    assert_false(x.paused);
    assert_string_equal(row_named(&x, "hot")->state, "resolved");
    assert_string_equal(row_named(&x, "hot")->action, "");
    int unthrottle = 0, resume = 0;
    for (int i = 0; i < x.nevs; i++) {
        unthrottle += !strcmp(x.evs[i].action, "unthrottle");
        resume += !strcmp(x.evs[i].action, "resume");
    }
    assert_int_equal(unthrottle, 1);
    assert_int_equal(resume, 1);
    tick(r, f, 0.1, 70); /* -> ok, not notified */
    assert_string_equal(f->got[f->ngot - 1].state, "resolved");

    /* stop fires again; the operator resumes and pauses with a reason of their own: the
     * resolve leaves that pause alone. */
    tick(r, f, 0.99, 80);
    tick(r, f, 0.99, 90);
    x = look(f);
    assert_string_equal(x.pause_reason, "alarm:stop");
    assert_int_equal(tg_store_pause_clear(f->cli, "acme", &err), 0);
    assert_int_equal(tg_store_pause_set(f->cli, "acme", "manual", T0, &err), 0);
    tick(r, f, 0.1, 100);
    x = look(f);
    assert_true(x.paused);
    assert_string_equal(x.pause_reason, "manual");
    assert_string_equal(x.evs[0].action, "pause left: an operator changed it");
    tick(r, f, 0.1, 110);
    /* Already paused by the operator when it fires: not the alarm's to take or undo. */
    tick(r, f, 0.99, 120);
    tick(r, f, 0.99, 130);
    x = look(f);
    assert_string_equal(x.evs[0].action, "pause left: already paused");
    tick(r, f, 0.1, 140);
    x = look(f);
    assert_true(x.paused);
    assert_string_equal(x.pause_reason, "manual");
    tg_alarm_runner_free(r);
}

static void test_restart_restores(void **state)
{
    fx_t *f = *state;
    tg_err_t err;
    tg_alarm_runner_t *r = tg_alarm_runner_new(f->cfg, open_store(f), f->policy, 100, &err);
    tick(r, f, 0.9, 10);
    tick(r, f, 0.9, 20); /* hot firing, seq 2, throttled */
    tg_alarm_runner_free(r);
    tg_policy_free(f->policy); /* a new process: scales forgotten */
    f->policy = tg_policy_new();
    assert_true(tg_policy_scale(f->policy, "acme") == 1);
    r = tg_alarm_runner_new(f->cfg, open_store(f), f->policy, 100, &err);
    assert_non_null(r);
    assert_true(tg_policy_scale(f->policy, "acme") == 0.5); /* applied again */
    assert_int_equal(tick(r, f, 0.9, 30), 0);               /* still firing */
    assert_int_equal(tick(r, f, 0.1, 40), 1);
    assert_string_equal(f->got[f->ngot - 1].id, "alarm/hot/acme/3"); /* not reused */
    assert_true(tg_policy_scale(f->policy, "acme") == 1);
    /* Firing and throttled again, then a reload without the rules: the throttle of an
     * alarm that can no longer resolve is undone at once, and the runner goes on. */
    tick(r, f, 0.9, 50);
    tick(r, f, 0.9, 60);
    assert_true(tg_policy_scale(f->policy, "acme") == 0.5);
    tg_config_t *empty;
    assert_int_equal(tg_config_parse("e.yaml", "store: sqlite:x\n", 15, &empty, &err), 0);
    assert_int_equal(tg_alarm_runner_set_config(r, empty), 0);
    assert_true(tg_policy_scale(f->policy, "acme") == 1);
    assert_int_equal(tick(r, f, 0.99, 70), 0);
    tg_config_unref(empty);
    assert_int_equal(tg_alarm_runner_backlog(r), 0);
    tg_alarm_runner_free(r);
}

/* A store locked by another connection: the transition is notified at once, kept, and
 * stored at the first evaluation after the lock is gone; nothing is stored twice. */
static void test_store_busy_retry(void **state)
{
    fx_t *f = *state;
    tg_err_t err;
    tg_store_t *s = open_store(f);
    assert_int_equal(tg_store_set_busy_timeout(s, 10, &err), 0);
    tg_alarm_runner_t *r = tg_alarm_runner_new(f->cfg, s, f->policy, 100, &err);
    assert_non_null(r);
    char path[200];
    snprintf(path, sizeof path, "%s/t.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(tick(r, f, 0.9, 10), 1); /* pending: not sent before it is stored */
    assert_int_equal(f->ngot, 0);
    assert_int_equal(tg_alarm_runner_backlog(r), 1);
    assert_int_equal(tick(r, f, 0.9, 20), 1); /* firing: throttled though not stored */
    assert_int_equal(tg_alarm_runner_backlog(r), 2);
    assert_true(tg_policy_scale(f->policy, "acme") == 0.5);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(tick(r, f, 0.9, 30), 0);
    assert_int_equal(tg_alarm_runner_backlog(r), 0);
    assert_int_equal(f->ngot, 2); /* both sent now, in order */
    assert_string_equal(f->got[0].id, "alarm/hot/acme/1");
    assert_string_equal(f->got[1].id, "alarm/hot/acme/2");
    found_t x = look(f);
    assert_int_equal(x.nevs, 2);
    assert_string_equal(x.evs[0].notice_id, "alarm/hot/acme/2");
    assert_string_equal(x.evs[1].notice_id, "alarm/hot/acme/1");
    const tg_alarm_row_t *hot = row_named(&x, "hot");
    assert_string_equal(hot->state, "firing");
    assert_string_equal(hot->action, "throttle 0.5");
    tg_alarm_runner_free(r);
}

/* A pause held by a rule removed while the gateway was down is lifted at the next start
 * (as on resolve: only if the pause is still the alarm's). */
static void test_restart_without_the_rule(void **state)
{
    fx_t *f = *state;
    tg_err_t err;
    tg_alarm_runner_t *r = tg_alarm_runner_new(f->cfg, open_store(f), f->policy, 100, &err);
    tick(r, f, 0.99, 10);
    tick(r, f, 0.99, 20); /* hot and stop firing: throttled and paused */
    tg_alarm_runner_free(r);
    assert_true(look(f).paused);
    tg_config_t *empty;
    assert_int_equal(tg_config_parse("e.yaml", "store: sqlite:x\n", 15, &empty, &err), 0);
    r = tg_alarm_runner_new(empty, open_store(f), f->policy, 100, &err);
    assert_non_null(r);
    tg_config_unref(empty);
    assert_false(look(f).paused);
    assert_true(tg_policy_scale(f->policy, "acme") == 1);
    tg_alarm_runner_free(r);
}

/* A notice the hook refuses is kept, with the ones after it, and handed on again in order
 * at the next evaluation. */
static void test_notify_retry(void **state)
{
    fx_t *f = *state;
    tg_err_t err;
    tg_alarm_runner_t *r = tg_alarm_runner_new(f->cfg, open_store(f), f->policy, 100, &err);
    refuse = 1;
    assert_int_equal(tick(r, f, 0.9, 10), 1); /* pending: refused */
    assert_int_equal(f->ngot, 0);
    assert_int_equal(tg_alarm_runner_unsent(r), 1);
    assert_int_equal(tg_alarm_runner_backlog(r), 0); /* stored all the same */
    assert_int_equal(tick(r, f, 0.9, 20), 1);        /* firing: both go, in order */
    assert_int_equal(tg_alarm_runner_unsent(r), 0);
    assert_int_equal(f->ngot, 2);
    assert_string_equal(f->got[0].id, "alarm/hot/acme/1");
    assert_string_equal(f->got[1].id, "alarm/hot/acme/2");
    tg_alarm_runner_free(r);
}

/* A rule removed on SIGHUP and added back later (or its kind changed under the same name)
 * must not count its transitions from 1 again: its ids would be those already stored in
 * alarm_events and the outbox, and both drop a notice whose id they have (ON CONFLICT DO
 * NOTHING), so the operator would never hear of the new firing. */
static void test_rule_readded_keeps_seq(void **state)
{
    fx_t *f = *state;
    tg_err_t err;
    tg_alarm_runner_t *r = tg_alarm_runner_new(f->cfg, open_store(f), f->policy, 100, &err);
    tick(r, f, 0.9, 10);
    tick(r, f, 0.9, 20);
    tick(r, f, 0.1, 30); /* hot: pending, firing, resolved = seq 1..3 */
    assert_int_equal(f->ngot, 3);
    tg_config_t *empty;
    assert_int_equal(tg_config_parse("e.yaml", "store: sqlite:x\n", 15, &empty, &err), 0);
    assert_int_equal(tg_alarm_runner_set_config(r, empty), 0);
    tg_config_unref(empty);
    assert_int_equal(tg_alarm_runner_set_config(r, f->cfg), 0); /* back again */
    assert_int_equal(tick(r, f, 0.9, 40), 1);
    assert_string_equal(f->got[f->ngot - 1].id, "alarm/hot/acme/4");
    /* Same name, another kind: still the same (name, tenant) row and ids. */
    static const char other[] = "alarms:\n"
                                "  - { name: hot, kind: error_rate, threshold: 0.5 }\n";
    tg_config_t *oc;
    assert_int_equal(tg_config_parse("o.yaml", other, strlen(other), &oc, &err), 0);
    assert_int_equal(tg_alarm_runner_set_config(r, oc), 0);
    assert_int_equal(tg_alarm_runner_set_config(r, f->cfg), 0);
    tg_config_unref(oc);
    tick(r, f, 0.1, 50);
    tick(r, f, 0.9, 60);
    assert_string_equal(f->got[f->ngot - 1].id, "alarm/hot/acme/5");
    found_t x = look(f);
    assert_int_equal(x.nevs, 5); /* every transition kept in the history */
    tg_alarm_runner_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_throttle_and_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_busy_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_without_the_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_readded_keeps_seq, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
