/* Tests for src/notify/sender.c without a thread: tg_notify_pass against a real store with a
 * fake send, a fixed wall clock and fixed jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notify/sender.h"

#define SEC  1000000LL
#define WALL 1796083200000000LL /* 2026-12-01T00:00:00Z */

static int64_t now_us = WALL;
static int64_t wall(void)
{
    return now_us;
}
static int64_t mono(void)
{
    return now_us;
}
static uint64_t rnd(void)
{
    return 0; /* the lower bound of each backoff: min/2, min, 2 min, ... */
}

/* What each notifier answers, and what it was sent. */
static long answer[2]; /* by notifier index: an HTTP status */
static int sent[2];
static char last_id[2][160];
static tg_notice_t last_notice[2];
static int64_t last_time[2];
static char odd_tenant[64]; /* a notice for this tenant gets odd_answer instead */
static long odd_answer;

static void (*on_send)(void); /* called in each send when set */

static void fake_send(const tg_notifier_conf_t *nc, const tg_notice_t *n, int64_t t,
                      const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    (void)ctl;
    if (on_send) on_send();
    int i = !strcmp(nc->name, "hook") ? 0 : 1;
    sent[i]++;
    snprintf(last_id[i], sizeof last_id[i], "%s", n->id);
    last_notice[i] = *n;
    last_time[i] = t;
    memset(res, 0, sizeof *res);
    long a = odd_tenant[0] && !strcmp(n->tenant, odd_tenant) ? odd_answer : answer[i];
    res->http_status = a;
    res->outcome = tg_notify_classify_http(a);
    snprintf(res->message, sizeof res->message, "HTTP %ld", a);
}

/* A list of alerts in one request, as Alertmanager answers it: each alert as above (sent[]
 * counts alerts), the list refused when one is, 5xx when one is. */
static int lists; /* requests of alerts */
static void fake_send_alerts(const tg_notifier_conf_t *nc, const tg_notice_t *v, size_t n,
                             int64_t t, const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    tg_notify_result_t worst = {.outcome = TG_NOTIFY_OK, .http_status = 200}, one;
    lists++;
    for (size_t i = 0; i < n; i++) {
        fake_send(nc, &v[i], t, ctl, &one);
        if (one.outcome == TG_NOTIFY_RETRY ||
            (one.outcome == TG_NOTIFY_PERMANENT && worst.outcome == TG_NOTIFY_OK))
            worst = one;
    }
    *res = worst;
}

typedef struct fixture {
    char dir[64], url[160];
    tg_store_t *s;
    tg_config_t *cfg;
    tg_notify_t *t;
} fixture_t;

static const char yaml[] = "notify:\n"
                           "  - { name: hook, type: webhook, url: \"http://127.0.0.1:1/h\", "
                           "secret: k }\n"
                           "  - { name: am, type: alertmanager, url: \"http://127.0.0.1:1\" }\n"
                           "notify_retry: { min: 2s, max: 20s, give_up: 1h }\n"
                           "alarms:\n"
                           "  - { name: errors, kind: error_rate, threshold: 0.05, "
                           "severity: critical }\n";

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_test_sender_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->url, sizeof f->url, "sqlite:%s/t.db", f->dir);
    tg_err_t err;
    if (tg_store_open(f->url, &f->s, &err) != 0) return -1;
    if (tg_config_parse("t.yaml", yaml, strlen(yaml), &f->cfg, &err) != 0) return -1;
    tg_notify_opts_t o = {.store_url = f->url,
                          .wall_clock = wall,
                          .mono_clock = mono,
                          .random = rnd,
                          .send = fake_send,
                          .send_alerts = fake_send_alerts};
    f->t = tg_notify_new(&o, f->cfg);
    now_us = WALL;
    memset(sent, 0, sizeof sent);
    answer[0] = answer[1] = 200;
    odd_tenant[0] = '\0';
    lists = 0;
    on_send = NULL;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tg_notify_free(f->t);
    tg_config_unref(f->cfg);
    tg_store_close(f->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static tg_notice_t notice(const char *id)
{
    tg_notice_t n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "%s", id);
    snprintf(n.kind, sizeof n.kind, "budget");
    snprintf(n.state, sizeof n.state, "firing");
    return n;
}

typedef struct query {
    const char *id, *notifier;
    tg_notice_delivery_t d;
    int found;
} query_t;

static int find_cb(const tg_notice_delivery_t *d, void *ud)
{
    query_t *q = ud;
    if (!strcmp(d->notice.id, q->id) && !strcmp(d->notifier, q->notifier)) {
        q->d = *d;
        q->found = 1;
    }
    return 0;
}

/* The delivery of id to notifier, as stored. */
static tg_notice_delivery_t row_of(fixture_t *f, const char *id, const char *notifier)
{
    query_t q;
    memset(&q, 0, sizeof q);
    q.id = id;
    q.notifier = notifier;
    tg_err_t err;
    assert_int_equal(tg_store_outbox_list(f->s, NULL, find_cb, &q, &err), 0);
    assert_true(q.found);
    return q.d;
}

static int pass(fixture_t *f)
{
    tg_err_t err;
    int n = tg_notify_pass(f->t, f->s, &err);
    assert_true(n >= 0);
    return n;
}

/* Enqueued once per configured notifier, delivered once: a second pass sends nothing. */
static void test_delivered_once(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_notice_t n = notice("budget/acme/2026-12/80");
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &n, WALL, &err), 0);
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &n, WALL, &err), 0); /* same id: nothing */
    assert_int_equal(pass(f), 2);
    assert_int_equal(sent[0], 1);
    assert_int_equal(sent[1], 1);
    assert_string_equal(row_of(f, n.id, "hook").status, "delivered");
    assert_string_equal(row_of(f, n.id, "am").status, "delivered");
    assert_int_equal(row_of(f, n.id, "am").attempts, 1);
    now_us += 100 * SEC;
    assert_int_equal(pass(f), 0);
    assert_int_equal(sent[0], 1);
}

/* A receiver answering 503 is retried on the backoff schedule, one try per wait for all
 * its notices; the other notifier is not held up; once it answers 200 everything goes. */
static void test_retry_backoff_then_recover(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    answer[0] = 503;
    tg_notice_t a = notice("a"), b = notice("b");
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &a, WALL, &err), 0);
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &b, WALL, &err), 0);
    assert_int_equal(pass(f), 4);
    assert_int_equal(sent[0], 1); /* a failed: b waits for the same backoff, not tried */
    assert_int_equal(sent[1], 2);
    tg_notice_delivery_t d = row_of(f, "a", "hook");
    assert_string_equal(d.status, "pending");
    assert_int_equal(d.attempts, 1);
    assert_int_equal(d.next_us, WALL + 1 * SEC); /* min 2 s, jitter 0: 1 s */
    assert_string_equal(d.error, "HTTP 503");
    assert_int_equal(row_of(f, "b", "hook").next_us, WALL + 1 * SEC);
    assert_int_equal(row_of(f, "b", "hook").attempts, 0);
    /* Not due yet: nothing is sent. */
    now_us = WALL + SEC - 1;
    assert_int_equal(pass(f), 0);
    /* Second failure: 2 s; third: 4 s. */
    now_us = WALL + SEC;
    pass(f);
    assert_int_equal(sent[0], 2);
    assert_int_equal(row_of(f, "a", "hook").next_us, now_us + 2 * SEC);
    now_us += 2 * SEC;
    pass(f);
    assert_int_equal(sent[0], 3);
    assert_int_equal(row_of(f, "a", "hook").next_us, now_us + 4 * SEC);
    /* Back: both go at the next due time, once each. */
    answer[0] = 200;
    now_us += 4 * SEC;
    assert_int_equal(pass(f), 2);
    assert_int_equal(sent[0], 5);
    assert_string_equal(row_of(f, "a", "hook").status, "delivered");
    assert_string_equal(row_of(f, "b", "hook").status, "delivered");
    assert_int_equal(row_of(f, "a", "hook").attempts, 4);
    now_us += 60 * SEC;
    assert_int_equal(pass(f), 0);
}

/* A 400 is permanent: kept as failed with its error, never sent again. A delivery that
 * keeps failing past give_up is failed too. */
static void test_permanent_and_give_up(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    answer[0] = 400;
    answer[1] = 502;
    tg_notice_t a = notice("a");
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &a, WALL, &err), 0);
    pass(f);
    tg_notice_delivery_t d = row_of(f, "a", "hook");
    assert_string_equal(d.status, "failed");
    assert_string_equal(d.error, "HTTP 400");
    assert_string_equal(row_of(f, "a", "am").status, "pending");
    now_us = WALL + 3600 * SEC; /* give_up: 1 h after the notice was stored */
    pass(f);
    d = row_of(f, "a", "am");
    assert_string_equal(d.status, "failed");
    assert_string_equal(d.error, "gave up after 2 attempts: HTTP 502");
    assert_int_equal(sent[0], 1);
    now_us += 3600 * SEC;
    assert_int_equal(pass(f), 0);
}

/* A delivery to a notifier no longer configured stays pending (not lost, not sent). */
static void test_unknown_notifier_kept(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_notice_t a = notice("a");
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &a, WALL, &err), 0);
    tg_config_t *c2;
    const char *y2 = "notify: [{ name: am, type: alertmanager, url: \"http://127.0.0.1:1\" }]\n";
    assert_int_equal(tg_config_parse("t2.yaml", y2, strlen(y2), &c2, &err), 0);
    tg_notify_set_config(f->t, c2);
    tg_config_unref(c2);
    pass(f);
    assert_int_equal(sent[0], 0);
    assert_int_equal(sent[1], 1);
    tg_notice_delivery_t d = row_of(f, "a", "hook");
    assert_string_equal(d.status, "pending");
    assert_int_equal(d.next_us, WALL + 60 * SEC); /* notify_retry.max of the new config */
    /* Configured again: delivered. */
    tg_notify_set_config(f->t, f->cfg);
    now_us = WALL + 60 * SEC;
    pass(f);
    assert_int_equal(sent[0], 1);
    assert_string_equal(row_of(f, "a", "hook").status, "delivered");
}

/* Many deliveries to a notifier removed from the config: one claimed batch puts them all
 * off (not each claimed and rewritten at every pass, forever), and past give_up they fail
 * like any other (so the outbox can purge them) instead of staying pending for good. */
static void test_unknown_notifier_backlog(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    answer[0] = 503;
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%02d", i);
        tg_notice_t n = notice(id);
        assert_int_equal(tg_notify_enqueue(f->t, f->s, &n, WALL, &err), 0);
    }
    while (pass(f) > 0) /* am takes all; hook fails once, the rest wait for its backoff */
        ;
    assert_int_equal(sent[0], 1);
    tg_config_t *c2;
    const char *y2 = "notify: [{ name: am, type: alertmanager, url: \"http://127.0.0.1:1\" }]\n"
                     "notify_retry: { give_up: 1h }\n";
    assert_int_equal(tg_config_parse("t2.yaml", y2, strlen(y2), &c2, &err), 0);
    tg_notify_set_config(f->t, c2);
    tg_config_unref(c2);
    now_us = WALL + 20 * SEC;     /* hook's backoff over */
    assert_int_equal(pass(f), 8); /* one batch, then the rest put off with it */
    assert_int_equal(pass(f), 0);
    now_us += 59 * SEC;
    assert_int_equal(pass(f), 0);
    assert_int_equal(sent[0], 1);
    /* Past give_up: failed, a batch at a time. */
    now_us = WALL + 3600 * SEC;
    for (int i = 0; i < 10; i++, now_us += 60 * SEC)
        pass(f);
    tg_notice_delivery_t d = row_of(f, "n00", "hook");
    assert_string_equal(d.status, "failed");
    assert_string_equal(row_of(f, "n39", "hook").status, "failed");
    assert_non_null(strstr(row_of(f, "n39", "hook").error, "no notifier of this name"));
}

/* An alarm row as the runner stores it. */
static tg_alarm_row_t alarm_row(const char *name, const char *tenant, const char *st, int64_t seq)
{
    tg_alarm_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.kind, sizeof r.kind, "error_rate");
    snprintf(r.state, sizeof r.state, "%s", st);
    r.value = 0.25;
    r.threshold = 0.05;
    r.since_us = r.started_us = r.updated_us = WALL - 600 * SEC;
    r.seq = seq;
    return r;
}

static int resend(fixture_t *f)
{
    tg_err_t err;
    int n = tg_notify_resend(f->t, f->s, &err);
    assert_true(n >= 0);
    return n;
}

/* What still fires goes to Alertmanager again every resend interval (60 s by default), with
 * the id and labels of the notice sent when it began; never to the webhook; not what is
 * resolved, nor a rule gone from the config. A 503 ends the round and blocks the notifier
 * for the backoff; it gets the next round once it is back. */
static void test_resend_firing(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_alarm_row_t rows[] = {
        alarm_row("errors", "acme", "firing", 3), alarm_row("errors", "beta", "resolved", 2),
        alarm_row("gone", "acme", "firing", 1), /* its rule was removed */
    };
    assert_int_equal(tg_store_alarm_put(f->s, rows, 3, NULL, 0, &err), 0);

    assert_int_equal(resend(f), 1); /* the first round is at once */
    assert_int_equal(sent[0], 0);
    assert_int_equal(sent[1], 1);
    const tg_notice_t *n = &last_notice[1];
    assert_string_equal(n->id, "alarm/errors/acme/3");
    assert_string_equal(n->state, "firing");
    assert_string_equal(n->alarm, "errors");
    assert_string_equal(n->alarm_kind, "error_rate");
    assert_string_equal(n->tenant, "acme");
    assert_string_equal(n->severity, "critical");
    assert_true(n->started_us == WALL - 600 * SEC);
    assert_true(last_time[1] == WALL);

    now_us = WALL + 59 * SEC;
    assert_int_equal(resend(f), 0);
    now_us = WALL + 60 * SEC;
    assert_int_equal(resend(f), 1);
    assert_int_equal(sent[1], 2);

    /* Down: the round stops, the notifier waits out the backoff (1 s: min/2 with no jitter). */
    answer[1] = 503;
    now_us = WALL + 120 * SEC;
    assert_int_equal(resend(f), 0);
    assert_int_equal(sent[1], 3);
    now_us = WALL + 120 * SEC + SEC / 2;
    assert_int_equal(resend(f), 0);
    assert_int_equal(sent[1], 3); /* blocked: not even tried */
    answer[1] = 200;
    now_us = WALL + 121 * SEC;
    assert_int_equal(resend(f), 1); /* back: at once, not a whole interval later */
    assert_int_equal(sent[1], 4);

    /* Resolved: nothing more. */
    rows[0] = alarm_row("errors", "acme", "resolved", 4);
    assert_int_equal(tg_store_alarm_put(f->s, rows, 1, NULL, 0, &err), 0);
    now_us = WALL + 300 * SEC;
    assert_int_equal(resend(f), 0);
    assert_int_equal(sent[1], 4);
    assert_int_equal(sent[0], 0);
}

/* n firing rows of rule errors, for tenants t0, t1, ... (digits wide, zero-padded). */
static void put_firing(fixture_t *f, int n, int digits)
{
    tg_err_t err;
    tg_alarm_row_t *rows = calloc((size_t)n, sizeof *rows);
    assert_non_null(rows);
    for (int i = 0; i < n; i++) {
        char tenant[16];
        snprintf(tenant, sizeof tenant, "t%0*d", digits, i);
        rows[i] = alarm_row("errors", tenant, "firing", 1);
    }
    assert_int_equal(tg_store_alarm_put(f->s, rows, (size_t)n, NULL, 0, &err), 0);
    free(rows);
}

/* A round posts 256 alerts a request. A refused list (4xx) is that list's alone: the round
 * goes on to the others (it stopped, so every alarm after it expired in Alertmanager while
 * it fired). A 503 halfway through a round blocks the notifier for the backoff although
 * alerts were posted before it (they reset the backoff: a new round came at once). */
static void test_resend_lists_refused_and_halfway_down(void **state)
{
    fixture_t *f = *state;
    enum { N = 600 };
    put_firing(f, N, 3);

    assert_int_equal(resend(f), N); /* 256 + 256 + 88 */
    assert_int_equal(lists, 3);
    assert_int_equal(sent[1], N);

    snprintf(odd_tenant, sizeof odd_tenant, "t000"); /* in the first list */
    odd_answer = 400;
    now_us = WALL + 60 * SEC;
    assert_int_equal(resend(f), N - 256); /* the two lists after the refused one */
    assert_int_equal(lists, 6);
    assert_string_equal(last_notice[1].tenant, "t599");

    snprintf(odd_tenant, sizeof odd_tenant, "t300"); /* in the second list */
    odd_answer = 503;
    now_us = WALL + 120 * SEC;
    assert_int_equal(resend(f), 256); /* the first list, then the 503 ends the round */
    assert_int_equal(lists, 8);
    now_us = WALL + 120 * SEC + SEC / 2;
    assert_int_equal(resend(f), 0);
    assert_int_equal(lists, 8); /* blocked (1 s: min/2 with no jitter): not even tried */
    odd_tenant[0] = '\0';
    now_us = WALL + 121 * SEC;
    assert_int_equal(resend(f), N); /* back: the whole round at once */
}

/* A round takes up to 100000 firing rows (it stopped at 65536, where doubling its array
 * went past the cap). */
static void test_resend_many(void **state)
{
    fixture_t *f = *state;
    enum { N = 70000 };
    put_firing(f, N, 5);
    assert_int_equal(resend(f), N);
    assert_string_equal(last_notice[1].tenant, "t69999");
}

/* Another connection holds the store's write lock from the first send for 150 ms (a thread
 * releases it: the lock is what is tested, so a real wait), longer than the sender's busy
 * timeout of 40 ms: the delivery made is recorded all the same, not left claimed to be sent
 * again once its claim ends (as it was with 2 x 64 lanes on one store). */
static char lock_db[128];
static sqlite3 *locker;

static void *unlock_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 150 * 1000000L};
    nanosleep(&ts, NULL);
    sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

static pthread_t unlocker;

static void lock_store(void)
{
    on_send = NULL; /* once */
    assert_int_equal(sqlite3_open(lock_db, &locker), SQLITE_OK);
    assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(pthread_create(&unlocker, NULL, unlock_later, NULL), 0);
}

static void test_busy_store_records_delivery(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    snprintf(lock_db, sizeof lock_db, "%s/t.db", f->dir);
    assert_int_equal(tg_store_set_busy_timeout(f->s, 40, &err), 0);
    tg_notice_t n = notice("budget/acme/2026-12/90");
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &n, WALL, &err), 0);
    on_send = lock_store;
    assert_int_equal(pass(f), 2);
    pthread_join(unlocker, NULL);
    sqlite3_close(locker);
    assert_string_equal(row_of(f, n.id, "hook").status, "delivered");
    assert_string_equal(row_of(f, n.id, "am").status, "delivered");
}

/* An idle pass only reads: with another connection holding the write lock (the event
 * writer's batch) and nothing due, it neither waits for the lock nor fails; what is due is
 * claimed once the lock is free. Every lane passes once a second. */
static void test_idle_pass_takes_no_write_lock(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(f->s, 40, &err), 0);
    tg_notice_t n = notice("budget/acme/2026-12/95");
    assert_int_equal(tg_notify_enqueue(f->t, f->s, &n, WALL + 60 * SEC, &err), 0); /* due later */
    char db[128];
    snprintf(db, sizeof db, "%s/t.db", f->dir);
    sqlite3 *w;
    assert_int_equal(sqlite3_open(db, &w), SQLITE_OK);
    assert_int_equal(sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(tg_notify_pass(f->t, f->s, &err), 0); /* -1 (locked) if it claimed */
    assert_int_equal(sent[0] + sent[1], 0);
    assert_int_equal(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(w);
    now_us = WALL + 60 * SEC;
    assert_int_equal(pass(f), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivered_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_backoff_then_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_and_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_notifier_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_notifier_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_firing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_lists_refused_and_halfway_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resend_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_store_records_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_pass_takes_no_write_lock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
