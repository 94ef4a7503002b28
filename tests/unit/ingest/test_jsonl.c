/* Tests src/ingest/jsonl.c: a line written by tollgate's access log (observe/accesslog.c)
 * reads back as the event it was written from, as far as the line holds it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "collect.h"
#include "observe/accesslog.h"

static void test_round_trip(void **state)
{
    (void)state;
    tg_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.ts_us = 1796083199123000LL;
    ev.latency_us = 12345;
    ev.bytes_in = 10;
    ev.bytes_out = 2000;
    ev.status = 429;
    ev.outcome = TG_OUTCOME_REJECTED;
    snprintf(ev.tenant, sizeof ev.tenant, "acme");
    snprintf(ev.key_id, sizeof ev.key_id, "key_0123456789abcdef");
    snprintf(ev.route, sizeof ev.route, "chat");
    snprintf(ev.method, sizeof ev.method, "POST");
    snprintf(ev.path, sizeof ev.path, "/v1/chat/completions");
    snprintf(ev.reason, sizeof ev.reason, "rate_limited");
    snprintf(ev.request_id, sizeof ev.request_id, "req-1");
    snprintf(ev.client_ip, sizeof ev.client_ip, "2001:db8::9");
    char line[2048];
    assert_true(tg_accesslog_format(&ev, line, sizeof line) > 0);

    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_JSONL, NULL, NULL);
    assert_int_equal(parse(&p, line, &g), 0);
    assert_int_equal(g.n, 1);
    const tg_event_t *e = &g.recs[0].ev;
    assert_true(g.recs[0].has_outcome);
    assert_int_equal(e->ts_us, ev.ts_us);
    assert_int_equal(e->latency_us, ev.latency_us);
    assert_int_equal(e->bytes_in, 10);
    assert_int_equal(e->bytes_out, 2000);
    assert_int_equal(e->status, 429);
    assert_int_equal(e->outcome, TG_OUTCOME_REJECTED);
    assert_string_equal(e->tenant, "acme");
    assert_string_equal(e->key_id, ev.key_id);
    assert_string_equal(e->route, "chat");
    assert_string_equal(e->path, ev.path);
    assert_string_equal(e->reason, "rate_limited");
    assert_string_equal(e->client_ip, ev.client_ip);
    assert_string_equal(g.rid[0], "req-1");

    assert_int_equal(parse(&p, "{\"time\":\"2026-12-01T00:00:00Z\",\"status\":200}", &g), -1);
    assert_non_null(strstr(g.why, "outcome"));
    assert_int_equal(parse(&p, "not json", &g), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
