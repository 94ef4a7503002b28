/* Tests migration 12 on both backends (backends.h): an event's auth method and JWT subject
 * written by the batch writer (SQLite's INSERT, PostgreSQL's binary COPY) and read back
 * from usage_events and the events view; "" stored as NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "backends.h"
#include "store/store.h"
#include "types/event.h"

static tg_event_t make(int64_t ts, int seq, const char *auth, const char *subject)
{
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.id = tg_event_new_id(ts) + seq;
    e.ts_us = ts;
    snprintf(e.tenant, sizeof e.tenant, "acme");
    snprintf(e.method, sizeof e.method, "GET");
    snprintf(e.path, sizeof e.path, "/x");
    snprintf(e.request_id, sizeof e.request_id, "req-%d", seq);
    e.status = 200;
    e.outcome = TG_OUTCOME_BILLABLE;
    e.tokens_in = e.tokens_out = e.tokens_cached = e.tokens_cache_write = TG_TOKENS_UNKNOWN;
    TG_EVENT_SET(&e, auth, auth, strlen(auth));
    TG_EVENT_SET(&e, subject, subject, strlen(subject));
    return e;
}

static void test_auth_and_subject_stored(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    int64_t ts = 1785000000000000LL; /* 2026-07-25 */
    tg_event_t e[3] = {make(ts, 1, "jwt", "user-1@idp"), make(ts, 2, "api_key", ""),
                       make(ts, 3, "", "")};
    char longsub[200];
    memset(longsub, 's', sizeof longsub - 1);
    longsub[sizeof longsub - 1] = '\0';
    TG_EVENT_SET(&e[0], subject, longsub, strlen(longsub)); /* truncated to 127 */
    if (tb_append(t->s, e, 3, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE auth = 'jwt' AND "
                               "length(subject) = 127 AND request_id = 'req-1'"),
                     1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE auth = 'api_key' AND "
                               "subject IS NULL"),
                     1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM usage_events WHERE auth IS NULL"), 1);
    assert_int_equal(tb_int(t, "SELECT count(*) FROM events WHERE auth = 'jwt'"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {TB_BOTH(test_auth_and_subject_stored)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
