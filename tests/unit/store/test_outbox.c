/* Tests for src/store/sqlite_outbox.c and pg_outbox.c: the notification outbox (migration
 * 6), against a fresh store of each backend (backends.h). Times are fixed instants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "store/store.h"
#include "types/notice.h"

#define SEC  1000000LL
#define WALL 1801439998000000LL /* 2027-01-31T23:59:58Z */

/* Each test's store: a fresh SQLite file and a fresh PostgreSQL schema (backends.h). */
typedef tb_store_t fixture_t;

static tg_notice_t notice(const char *id)
{
    tg_notice_t n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "%s", id);
    snprintf(n.kind, sizeof n.kind, "budget");
    snprintf(n.alarm, sizeof n.alarm, "budget");
    snprintf(n.alarm_kind, sizeof n.alarm_kind, "budget");
    snprintf(n.tenant, sizeof n.tenant, "acme");
    snprintf(n.state, sizeof n.state, "firing");
    snprintf(n.severity, sizeof n.severity, "warning");
    n.value = 0.8125;
    n.threshold = 0.8;
    n.baseline = 0;
    n.window_s = 300;
    n.time_us = WALL - 5 * SEC;
    n.started_us = WALL - 10 * SEC;
    snprintf(n.summary, sizeof n.summary, "tenant acme reached 80%%");
    return n;
}

typedef struct seen {
    tg_notice_delivery_t v[16];
    size_t n;
} seen_t;

static int collect(const tg_notice_delivery_t *d, void *ud)
{
    seen_t *s = ud;
    if (s->n < 16) s->v[s->n++] = *d;
    return 0;
}

static const char *const two[] = {"hook", "am"};

/* A notice is stored whole with one pending delivery per notifier; adding the same id
 * again adds nothing. */
static void test_add_and_list(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_notice_t n = notice("budget/acme/2027-01/80");
    int inserted = -1;
    assert_int_equal(tg_store_outbox_add(f->s, &n, two, 2, WALL, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    assert_int_equal(tg_store_outbox_add(f->s, &n, two, 2, WALL + SEC, &inserted, &err), 0);
    assert_int_equal(inserted, 0);
    seen_t s = {0};
    assert_int_equal(tg_store_outbox_list(f->s, NULL, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0].notifier, "am"); /* ordered by notifier within a notice */
    assert_string_equal(s.v[1].notifier, "hook");
    const tg_notice_t *r = &s.v[1].notice;
    assert_string_equal(r->id, n.id);
    assert_string_equal(r->kind, "budget");
    assert_string_equal(r->tenant, "acme");
    assert_string_equal(r->state, "firing");
    assert_string_equal(r->severity, "warning");
    assert_true(r->value == 0.8125 && r->threshold == 0.8 && r->baseline == 0);
    assert_int_equal(r->window_s, 300);
    assert_int_equal(r->time_us, WALL - 5 * SEC);
    assert_int_equal(r->started_us, WALL - 10 * SEC);
    assert_string_equal(r->summary, "tenant acme reached 80%");
    assert_string_equal(s.v[1].status, "pending");
    assert_int_equal(s.v[1].attempts, 0);
    assert_int_equal(s.v[1].next_us, WALL);
    assert_int_equal(s.v[1].created_us, WALL);
    assert_string_equal(s.v[1].error, "");
    /* No notifiers: nothing stored. No id: refused. */
    tg_notice_t m = notice("other");
    assert_int_equal(tg_store_outbox_add(f->s, &m, two, 0, WALL, &inserted, &err), 0);
    assert_int_equal(inserted, 0);
    m.id[0] = '\0';
    assert_int_equal(tg_store_outbox_add(f->s, &m, two, 2, WALL, &inserted, &err), -1);
}

/* Claim takes what is due, earliest first, and leases it: a second claim before the
 * lease ends sees nothing; after it, the same rows again (a sender that died). */
static void test_claim_lease(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_notice_t a = notice("a"), b = notice("b");
    assert_int_equal(tg_store_outbox_add(f->s, &a, two, 1, WALL + 2 * SEC, NULL, &err), 0);
    assert_int_equal(tg_store_outbox_add(f->s, &b, two, 1, WALL, NULL, &err), 0);
    seen_t s = {0};
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + SEC, WALL + 30 * SEC, 8, NULL, collect, &s, &err), 0);
    assert_int_equal(s.n, 1); /* a is not due yet */
    assert_string_equal(s.v[0].notice.id, "b");
    assert_int_equal(s.v[0].next_us, WALL + 30 * SEC);
    memset(&s, 0, sizeof s);
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + 3 * SEC, WALL + 33 * SEC, 8, NULL, collect, &s, &err),
        0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].notice.id, "a");
    memset(&s, 0, sizeof s);
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + 29 * SEC, WALL + 60 * SEC, 8, NULL, collect, &s, &err),
        0);
    assert_int_equal(s.n, 0);
    int64_t next = 0;
    int found = 0;
    assert_int_equal(tg_store_outbox_next(f->s, NULL, &next, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_int_equal(next, WALL + 30 * SEC);
    memset(&s, 0, sizeof s);
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + 40 * SEC, WALL + 70 * SEC, 1, NULL, collect, &s, &err),
        0);
    assert_int_equal(s.n, 1); /* max 1: the earliest lease first */
    assert_string_equal(s.v[0].notice.id, "b");
}

static int collect_name(const char *name, void *ud)
{
    char *out = ud;
    strcat(out, name);
    strcat(out, ",");
    return 0;
}

/* Each notifier's sending thread claims and waits for its own deliveries only; the names
 * with pending deliveries are listed once each (the sender's supervisor finds those gone
 * from the config with it). */
static void test_claim_per_notifier(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_notice_t a = notice("a"), b = notice("b");
    assert_int_equal(tg_store_outbox_add(f->s, &a, two, 2, WALL, NULL, &err), 0);
    assert_int_equal(tg_store_outbox_add(f->s, &b, two, 1, WALL + 5 * SEC, NULL, &err), 0);
    char names[64] = "";
    assert_int_equal(tg_store_outbox_notifiers(f->s, collect_name, names, &err), 0);
    assert_string_equal(names, "am,hook,");
    int64_t next = 0;
    int found = 0;
    assert_int_equal(tg_store_outbox_next(f->s, two[1], &next, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_int_equal(next, WALL);
    seen_t s = {0};
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + 9 * SEC, WALL + 30 * SEC, 8, two[1], collect, &s, &err),
        0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].notifier, two[1]);
    assert_string_equal(s.v[0].notice.id, "a");
    assert_int_equal(tg_store_outbox_next(f->s, two[1], &next, &found, &err), 0);
    assert_int_equal(next, WALL + 30 * SEC); /* its lease */
    assert_int_equal(tg_store_outbox_next(f->s, two[0], &next, &found, &err), 0);
    assert_int_equal(next, WALL); /* the other's, untouched */
    assert_int_equal(tg_store_outbox_next(f->s, "nobody", &next, &found, &err), 0);
    assert_int_equal(found, 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + 9 * SEC, WALL + 30 * SEC, 8, two[0], collect, &s, &err),
        0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0].notifier, two[0]);
    assert_string_equal(s.v[1].notifier, two[0]);
}

/* Outcomes: delivered and failed rows are never claimed again; a retry keeps the row
 * pending with its attempts, next time and error; purge keeps pending notices. */
static void test_set_defer_purge(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_notice_t a = notice("a"), b = notice("b"), c = notice("c");
    assert_int_equal(tg_store_outbox_add(f->s, &a, two, 2, WALL, NULL, &err), 0);
    assert_int_equal(tg_store_outbox_add(f->s, &b, two, 1, WALL, NULL, &err), 0);
    assert_int_equal(tg_store_outbox_add(f->s, &c, two, 1, WALL + 5 * SEC, NULL, &err), 0);
    assert_int_equal(
        tg_store_outbox_set(f->s, "a", "hook", "delivered", 1, WALL, NULL, WALL + SEC, &err), 0);
    assert_int_equal(
        tg_store_outbox_set(f->s, "a", "am", "failed", 1, WALL, "HTTP 400", WALL + SEC, &err), 0);
    assert_int_equal(tg_store_outbox_set(f->s, "b", "hook", "pending", 3, WALL + 4 * SEC,
                                         "HTTP 503", WALL + SEC, &err),
                     0);
    assert_int_equal(
        tg_store_outbox_set(f->s, "zz", "hook", "delivered", 1, WALL, NULL, WALL + SEC, &err),
        TG_STORE_NOTFOUND);
    assert_int_equal(
        tg_store_outbox_set(f->s, "b", "hook", "gone", 1, WALL, NULL, WALL + SEC, &err), -1);
    seen_t s = {0};
    assert_int_equal(tg_store_outbox_list(f->s, "failed", collect, &s, &err), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].error, "HTTP 400");
    memset(&s, 0, sizeof s);
    /* The notifier "hook" is down until +20 s: b (due +4 s) and c (due +5 s) wait. */
    assert_int_equal(tg_store_outbox_defer(f->s, "hook", WALL + 20 * SEC, WALL + 2 * SEC, &err), 0);
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + 19 * SEC, WALL + 50 * SEC, 8, NULL, collect, &s, &err),
        0);
    assert_int_equal(s.n, 0);
    assert_int_equal(
        tg_store_outbox_claim(f->s, WALL + 20 * SEC, WALL + 50 * SEC, 8, NULL, collect, &s, &err),
        0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0].notice.id, "b");
    assert_int_equal(s.v[0].attempts, 3);
    assert_string_equal(s.v[0].error, "HTTP 503");
    int64_t deleted = -1;
    assert_int_equal(tg_store_outbox_purge(f->s, WALL + 100 * SEC, &deleted, &err), 0);
    assert_int_equal(deleted, 1); /* a only: b and c are pending */
    memset(&s, 0, sizeof s);
    assert_int_equal(tg_store_outbox_list(f->s, NULL, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
}

/* The outbox survives closing and reopening the store (a restart). */
static void test_survives_reopen(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_notice_t a = notice("a");
    assert_int_equal(tg_store_outbox_add(f->s, &a, two, 2, WALL, NULL, &err), 0);
    tg_store_close(f->s);
    assert_int_equal(tg_store_open(f->url, &f->s, &err), 0);
    seen_t s = {0};
    assert_int_equal(tg_store_outbox_claim(f->s, WALL, WALL + SEC, 8, NULL, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
}

/* Several lanes (a connection each, in several gateways) claiming one notifier's deliveries
 * at the same instant: each delivery is handed out exactly once within its lease, and every
 * one is handed out. */
#define RACE_NOTICES 120
#define RACE_LANES   3

typedef struct lane {
    const fixture_t *f;
    pthread_barrier_t *go;
    int failed;
    size_t n;
    char ids[RACE_NOTICES][sizeof(((tg_notice_t *)0)->id)];
} lane_t;

static int lane_take(const tg_notice_delivery_t *d, void *ud)
{
    lane_t *l = ud;
    if (l->n == RACE_NOTICES) return -1;
    snprintf(l->ids[l->n++], sizeof l->ids[0], "%s", d->notice.id);
    return 0;
}

static void *lane_run(void *arg)
{
    lane_t *l = arg;
    tg_err_t err;
    tg_store_t *s = NULL;
    int ok = tg_store_open(l->f->url, &s, &err) == 0;
    if (ok) tg_store_set_busy_timeout(s, 10000, &err);
    pthread_barrier_wait(l->go);
    if (!ok) {
        l->failed = 1;
        return NULL;
    }
    for (;;) { /* small claims, so the lanes interleave */
        size_t before = l->n;
        if (tg_store_outbox_claim(s, WALL, WALL + 60 * SEC, 5, "hook", lane_take, l, &err) != 0) {
            l->failed = 1;
            break;
        }
        if (l->n == before) break;
    }
    tg_store_close(s);
    return NULL;
}

static void test_claim_race(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    for (int i = 0; i < RACE_NOTICES; i++) {
        char id[32];
        snprintf(id, sizeof id, "n%03d", i);
        tg_notice_t n = notice(id);
        assert_int_equal(tg_store_outbox_add(f->s, &n, two, 2, WALL - i, NULL, &err), 0);
    }
    static lane_t lanes[RACE_LANES];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACE_LANES);
    pthread_t t[RACE_LANES];
    for (int i = 0; i < RACE_LANES; i++) {
        memset(&lanes[i], 0, sizeof lanes[i]);
        lanes[i].f = f;
        lanes[i].go = &go;
        assert_int_equal(pthread_create(&t[i], NULL, lane_run, &lanes[i]), 0);
    }
    for (int i = 0; i < RACE_LANES; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    static unsigned char seen[RACE_NOTICES];
    memset(seen, 0, sizeof seen);
    size_t total = 0;
    for (int i = 0; i < RACE_LANES; i++) {
        assert_int_equal(lanes[i].failed, 0);
        for (size_t j = 0; j < lanes[i].n; j++) {
            int k = atoi(lanes[i].ids[j] + 1);
            assert_true(k >= 0 && k < RACE_NOTICES);
            assert_int_equal(seen[k], 0); /* never handed out twice */
            seen[k] = 1;
        }
        total += lanes[i].n;
    }
    assert_int_equal(total, RACE_NOTICES);
    /* The other notifier's deliveries were left alone. */
    seen_t s = {0};
    assert_int_equal(tg_store_outbox_claim(f->s, WALL, WALL + SEC, 8, "am", collect, &s, &err), 0);
    assert_int_equal(s.n, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_add_and_list),       TB_BOTH(test_claim_lease),
        TB_BOTH(test_claim_per_notifier), TB_BOTH(test_set_defer_purge),
        TB_BOTH(test_survives_reopen),    TB_BOTH(test_claim_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
