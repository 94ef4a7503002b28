/* Tests for src/store/sqlite_alarms.c and pg_alarms.c: the alarms and alarm_events tables
 * of migration 5 through store.h, against a fresh store of each backend (backends.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "store/store.h"

#define T0 1801439998000000LL

/* Each test's store: a fresh SQLite file or (TB_BOTH) a fresh PostgreSQL schema. */
typedef tb_store_t fixture_t;

static tg_alarm_row_t row(const char *name, const char *tenant, const char *st, int64_t seq)
{
    tg_alarm_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.kind, sizeof r.kind, "error_rate");
    snprintf(r.state, sizeof r.state, "%s", st);
    r.value = 0.25;
    r.threshold = 0.05;
    r.baseline = 0.01;
    r.since_us = T0 + seq;
    r.updated_us = T0 + seq;
    r.seq = seq;
    return r;
}

static tg_alarm_event_row_t event(const tg_alarm_row_t *r, const char *from)
{
    tg_alarm_event_row_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.notice_id, sizeof e.notice_id, "alarm/%s/%s/%lld", r->name,
             r->tenant[0] ? r->tenant : "-", (long long)r->seq);
    memcpy(e.name, r->name, sizeof e.name);
    memcpy(e.tenant, r->tenant, sizeof e.tenant);
    memcpy(e.kind, r->kind, sizeof e.kind);
    snprintf(e.from_state, sizeof e.from_state, "%s", from);
    memcpy(e.to_state, r->state, sizeof e.to_state);
    e.value = r->value;
    e.threshold = r->threshold;
    e.baseline = r->baseline;
    e.window_s = 300;
    e.time_us = r->since_us;
    e.seq = r->seq;
    snprintf(e.summary, sizeof e.summary, "errors went %s", r->state);
    return e;
}

typedef struct rows {
    tg_alarm_row_t a[8];
    tg_alarm_event_row_t e[8];
    int n;
} rows_t;

static int on_row(const tg_alarm_row_t *r, void *ud)
{
    rows_t *x = ud;
    if (x->n < 8) x->a[x->n++] = *r;
    return 0;
}

static int on_event(const tg_alarm_event_row_t *r, void *ud)
{
    rows_t *x = ud;
    if (x->n < 8) x->e[x->n++] = *r;
    return 0;
}

static void test_put_list_history(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_alarm_row_t a = row("errors", "acme", "pending", 1);
    tg_alarm_event_row_t ea = event(&a, "ok");
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, &ea, 1, &err), 0);
    a = row("errors", "acme", "firing", 2);
    snprintf(a.action, sizeof a.action, "pause");
    tg_alarm_event_row_t eb = event(&a, "pending");
    snprintf(eb.action, sizeof eb.action, "pause");
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, &eb, 1, &err), 0);
    /* A retry of the same transition stores nothing twice. */
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, &eb, 1, &err), 0);
    tg_alarm_row_t q = row("backlog", "", "pending", 1);
    snprintf(q.kind, sizeof q.kind, "queue");
    tg_alarm_event_row_t eq = event(&q, "ok");
    assert_int_equal(tg_store_alarm_put(f->s, &q, 1, &eq, 1, &err), 0);
    tg_alarm_row_t o = row("errors", "beta", "ok", 4);
    assert_int_equal(tg_store_alarm_put(f->s, &o, 1, NULL, 0, &err), 0); /* a state alone */

    rows_t x = {0};
    assert_int_equal(tg_store_alarm_list(f->s, on_row, &x, &err), 0);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.a[0].state, "firing"); /* firing first */
    assert_string_equal(x.a[0].tenant, "acme");
    assert_string_equal(x.a[0].action, "pause");
    assert_int_equal(x.a[0].seq, 2);
    assert_true(x.a[0].value == 0.25 && x.a[0].threshold == 0.05 && x.a[0].baseline == 0.01);
    assert_string_equal(x.a[1].state, "pending");
    assert_string_equal(x.a[1].tenant, "");
    assert_string_equal(x.a[2].state, "ok");

    memset(&x, 0, sizeof x);
    assert_int_equal(tg_store_alarm_events(f->s, NULL, 0, on_event, &x, &err), 0);
    assert_int_equal(x.n, 3); /* newest first */
    assert_string_equal(x.e[0].notice_id, "alarm/backlog/-/1");
    assert_string_equal(x.e[1].notice_id, "alarm/errors/acme/2");
    assert_string_equal(x.e[1].from_state, "pending");
    assert_string_equal(x.e[1].to_state, "firing");
    assert_string_equal(x.e[1].action, "pause");
    assert_int_equal(x.e[1].window_s, 300);
    assert_true(x.e[1].value == 0.25);
    assert_string_equal(x.e[1].summary, "errors went firing");
    memset(&x, 0, sizeof x);
    assert_int_equal(tg_store_alarm_events(f->s, "acme", 1, on_event, &x, &err), 0);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.e[0].notice_id, "alarm/errors/acme/2");
    memset(&x, 0, sizeof x);
    assert_int_equal(tg_store_alarm_events(f->s, "", 0, on_event, &x, &err), 0);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.e[0].name, "backlog");
}

static void test_bad_rows(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_alarm_row_t a = row("errors", "acme", "burning", 1);
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, NULL, 0, &err), -1);
    a = row("", "acme", "ok", 1);
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, NULL, 0, &err), -1);
    a = row("errors", "acme", "firing", 1);
    tg_alarm_event_row_t e = event(&a, "nowhere");
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, &e, 1, &err), -1);
    rows_t x = {0};
    assert_int_equal(tg_store_alarm_list(f->s, on_row, &x, &err), 0);
    assert_int_equal(x.n, 0);
}

/* Several rows and transitions in one call, one transaction: a bad one anywhere writes
 * none of them. */
static void test_batch(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_alarm_row_t rows[3] = {row("errors", "a", "pending", 1), row("errors", "b", "firing", 2),
                              row("quota", "a", "pending", 1)};
    tg_alarm_event_row_t evs[3] = {event(&rows[0], "ok"), event(&rows[1], "pending"),
                                   event(&rows[2], "ok")};
    snprintf(rows[2].state, sizeof rows[2].state, "hot"); /* bad: nothing is written */
    assert_int_equal(tg_store_alarm_put(f->s, rows, 3, evs, 3, &err), -1);
    rows_t x = {0};
    assert_int_equal(tg_store_alarm_list(f->s, on_row, &x, &err), 0);
    assert_int_equal(x.n, 0);
    snprintf(rows[2].state, sizeof rows[2].state, "pending");
    assert_int_equal(tg_store_alarm_put(f->s, rows, 3, evs, 3, &err), 0);
    assert_int_equal(tg_store_alarm_list(f->s, on_row, &x, &err), 0);
    assert_int_equal(x.n, 3);
    memset(&x, 0, sizeof x);
    assert_int_equal(tg_store_alarm_events(f->s, NULL, 0, on_event, &x, &err), 0);
    assert_int_equal(x.n, 3);
    assert_int_equal(tg_store_alarm_put(f->s, NULL, 0, NULL, 0, &err), 0); /* nothing */
}

/* The alarm history follows the events' retention (retention.events_days): the recorder's
 * tg_store_purge deletes alarm_events older than its cut-off too; the alarms' state rows
 * (and their sequence numbers) stay. Before, alarm_events was never purged. */
static void test_history_retention(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_alarm_row_t a = row("errors", "acme", "pending", 1);
    tg_alarm_event_row_t ea = event(&a, "ok"); /* time_us T0 + 1 */
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, &ea, 1, &err), 0);
    a = row("errors", "acme", "firing", 2);
    a.since_us = T0 + 1000;
    tg_alarm_event_row_t eb = event(&a, "pending"); /* time_us T0 + 1000 */
    assert_int_equal(tg_store_alarm_put(f->s, &a, 1, &eb, 1, &err), 0);
    int64_t deleted = 0;
    assert_int_equal(tg_store_purge(f->s, T0 + 500, NULL, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    rows_t x = {0};
    assert_int_equal(tg_store_alarm_events(f->s, NULL, 0, on_event, &x, &err), 0);
    assert_int_equal(x.n, 1);
    assert_string_equal(x.e[0].notice_id, "alarm/errors/acme/2");
    memset(&x, 0, sizeof x);
    assert_int_equal(tg_store_alarm_list(f->s, on_row, &x, &err), 0);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.a[0].seq, 2);
    assert_int_equal(tg_store_purge(f->s, 0, NULL, &deleted, &err), 0); /* 0: keep all */
    assert_int_equal(deleted, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_put_list_history),
        TB_BOTH(test_bad_rows),
        TB_BOTH(test_batch),
        /* tg_store_purge: PostgreSQL's is pg_events.c's (it calls pg_alarm_events_purge) */
        TB_BOTH(test_history_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
