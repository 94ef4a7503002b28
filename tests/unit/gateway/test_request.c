/* Tests src/gateway/request.c: the request's constructor leaves nothing of the request
 * before it (flags, route, admission, event), starts the event as a request that has just
 * begun (tokens unknown, client address, time-ordered request id) and keeps the
 * connection alive until the head says otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/request.h"

#define WALL 1795000000000000LL

static void test_reset_clears_the_previous_request(void **state)
{
    (void)state;
    static tg_req_t r;                           /* (large: not on the stack) */
    struct tg_conn *conn = (struct tg_conn *)&r; /* any address: only stored */
    memset(&r, 0xa5, sizeof r);                  /* a previous request's leftovers */
    tg_req_reset(&r, conn, "192.0.2.7", 42, WALL);
    assert_ptr_equal(r.conn, conn);
    assert_int_equal(r.phase, TG_PHASE_AUTH);
    assert_int_equal(r.in_request, 1);
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(r.start_mono, 42);
    /* Everything else starts over. */
    assert_int_equal(r.headers_done | r.msg_done | r.resp_done | r.drain | r.discard, 0);
    assert_int_equal(r.has_body | r.hold_body | r.metered | r.overflow | r.up_bad, 0);
    assert_int_equal(r.head_sent | r.head_pending | r.chunked_out | r.no_body_out, 0);
    assert_int_equal(r.attempts, 0);
    assert_int_equal(r.body_pulled, 0);
    assert_int_equal(r.up_conn_len, 0);
    assert_null(r.cfg);
    assert_null(r.route);
    assert_null(r.target);
    assert_null(r.up);
    assert_null(r.refuse);
    assert_int_equal(r.adm.verdict, TG_ADMIT_OK);
    assert_int_equal(r.adm.conc_key, 0);
    assert_int_equal(r.adm.ntok, 0);
    assert_int_equal(r.adm.budget_reserved, 0);
    /* The event: one request that just began. */
    assert_int_equal(r.ev.ts_us, WALL);
    assert_int_equal(r.ev.tokens_in, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.ev.tokens_out, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.ev.tokens_cached, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.ev.tokens_cache_write, TG_TOKENS_UNKNOWN);
    assert_int_equal(r.ev.bytes_in, 0);
    assert_int_equal(r.ev.cost_micros, 0);
    assert_int_equal(r.ev.status, 0);
    assert_int_equal(r.ev.outcome, TG_OUTCOME_BILLABLE);
    assert_string_equal(r.ev.client_ip, "192.0.2.7");
    assert_string_equal(r.ev.tenant, "");
    assert_string_equal(r.ev.reason, "");
    assert_string_equal(r.ev.price_flag, "");
    assert_int_equal(strlen(r.ev.request_id), 16);
    assert_int_equal(strspn(r.ev.request_id, "0123456789abcdef"), 16);
}

static void test_request_ids_differ_and_order(void **state)
{
    (void)state;
    static tg_req_t a, b;
    tg_req_reset(&a, NULL, "-", 1, WALL);
    tg_req_reset(&b, NULL, "-", 2, WALL + 1000);
    assert_string_not_equal(a.ev.request_id, b.ev.request_id);
    /* Fixed-width hex of time-ordered ids: a later request sorts after. */
    assert_true(strcmp(a.ev.request_id, b.ev.request_id) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_clears_the_previous_request),
        cmocka_unit_test(test_request_ids_differ_and_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
