/* Tests src/ingest/apigw.c on API Gateway JSON access log records as AWS documents their
 * $context variables (all values strings, "-" when missing), one per line and several
 * concatenated on one line (Firehose), and on malformed ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "collect.h"

#define REC(id, epoch, status, len, tenant)                                                        \
    "{\"requestId\":\"" id "\",\"ip\":\"2001:db8::5\",\"requestTimeEpoch\":\"" epoch "\","         \
    "\"httpMethod\":\"POST\",\"resourcePath\":\"/v1/items\",\"path\":\"/prod/v1/items\","          \
    "\"status\":\"" status "\",\"protocol\":\"HTTP/1.1\",\"responseLength\":\"" len "\","          \
    "\"responseLatency\":\"42\",\"apiKeyId\":\"abcd1234ef\",\"tenant_id\":\"" tenant "\"}"

static void test_one_per_line(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_APIGW, NULL, NULL);
    assert_int_equal(
        parse(&p,
              REC("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "1796083199999", "200", "512", "acme"),
              &g),
        0);
    assert_int_equal(g.n, 1);
    const tg_event_t *e = &g.recs[0].ev;
    assert_int_equal(e->ts_us, 1796083199999000LL);
    assert_string_equal(e->tenant, "acme");
    assert_string_equal(e->method, "POST");
    assert_string_equal(e->path, "/prod/v1/items");
    assert_int_equal(e->status, 200);
    assert_int_equal(e->bytes_out, 512);
    assert_int_equal(e->latency_us, 42000);
    assert_string_equal(e->key_id, "abcd1234ef");
    assert_string_equal(e->client_ip, "2001:db8::5");
    assert_string_equal(g.rid[0], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    /* "-" is missing; requestTime in its CLF form */
    assert_int_equal(
        parse(&p,
              "{\"requestId\":\"r2\",\"requestTime\":\"01/Dec/2026:00:00:00 +0000\","
              "\"httpMethod\":\"GET\",\"path\":\"-\",\"status\":\"502\","
              "\"responseLength\":\"-\",\"responseLatency\":\"-\",\"tenant_id\":\"-\"}",
              &g),
        0);
    assert_int_equal(g.recs[0].ev.ts_us, 1796083200000000LL);
    assert_string_equal(g.recs[0].ev.tenant, "");
    assert_int_equal(g.recs[0].ev.bytes_out, 0);
    /* a configured tenant field */
    tg_ingest_parser_init(&p, TG_INGEST_APIGW, NULL, "customer");
    assert_int_equal(parse(&p,
                           "{\"requestTimeEpoch\":1796083200000,\"status\":204,\"customer\":"
                           "\"globex\",\"tenant_id\":\"acme\"}",
                           &g),
                     0);
    assert_string_equal(g.recs[0].ev.tenant, "globex");
    assert_int_equal(g.recs[0].ev.status, 204);
}

/* The JSON format AWS documents for HTTP API access logs ($context.requestId, ip,
 * requestTime, httpMethod, routeKey, status, protocol, responseLength), with values as
 * API Gateway fills them; no tenant field: the record is unattributed. */
static void test_aws_http_api_format(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_APIGW, NULL, NULL);
    assert_int_equal(
        parse(&p,
              "{ \"requestId\":\"Hq2aEjLQoAMEPmw=\", \"ip\": \"198.51.100.1\", "
              "\"requestTime\":\"02/Dec/2026:20:23:15 +0000\", \"httpMethod\":\"GET\","
              "\"routeKey\":\"GET /pets\", \"status\":\"200\",\"protocol\":\"HTTP/1.1\", "
              "\"responseLength\":\"54\" }",
              &g),
        0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.recs[0].ev.path, "/pets");
    assert_string_equal(g.recs[0].ev.method, "GET");
    assert_int_equal(g.recs[0].ev.bytes_out, 54);
    assert_int_equal(g.recs[0].ev.ts_us, 1796242995000000LL); /* 2026-12-02T20:23:15Z */
    assert_string_equal(g.recs[0].ev.tenant, "");
    assert_string_equal(g.rid[0], "Hq2aEjLQoAMEPmw=");
}

static void test_concatenated(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_APIGW, NULL, NULL);
    assert_int_equal(parse(&p,
                           REC("a", "1796083199000", "200", "1", "acme")
                               REC("b", "1796083200000", "201", "2",
                                   "acme") " " REC("c", "1796083201000", "500", "3", "globex"),
                           &g),
                     0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.rid[1], "b");
    assert_int_equal(g.recs[2].ev.status, 500);
    assert_string_equal(g.recs[2].ev.tenant, "globex");
    /* each record's bytes are its own */
    assert_int_equal(g.recs[0].raw_len, strlen(REC("a", "1796083199000", "200", "1", "acme")));
}

static void test_malformed(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_APIGW, NULL, NULL);
    assert_int_equal(parse(&p, "{\"requestTimeEpoch\":\"1\",\"status\":", &g), -1);
    assert_non_null(strstr(g.why, "invalid JSON"));
    assert_int_equal(parse(&p, "{\"requestTimeEpoch\":\"1796083200000\"}", &g), -1);
    assert_non_null(strstr(g.why, "status"));
    assert_int_equal(parse(&p, "{\"status\":\"200\"}", &g), -1);
    assert_non_null(strstr(g.why, "requestTime"));
    assert_int_equal(parse(&p, "[1,2]", &g), -1);
    /* the second of two records is bad: the first was read, the line is reported */
    assert_int_equal(
        parse(&p, REC("a", "1796083199000", "200", "1", "acme") "{\"status\":\"x\"}", &g), -1);
    assert_int_equal(g.n, 1);
    assert_non_null(strstr(g.why, "record 2"));
}

/* A hostile record: API Gateway does not escape $context values, so a value can inject a
 * second "tenant_id" after the authorizer's; jansson keeps the last one, which would bill
 * the record to the tenant the client named. And an epoch past 9999-12-31 must not wrap
 * the microsecond time (signed overflow) into an event no daily view shows. */
static void test_hostile(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_APIGW, NULL, NULL);
    assert_int_equal(parse(&p,
                           "{\"requestTimeEpoch\":\"1796083200000\",\"status\":\"200\","
                           "\"tenant_id\":\"acme\",\"ua\":\"x\",\"tenant_id\":\"victim\"}",
                           &g),
                     -1);
    assert_int_equal(g.n, 0);
    assert_non_null(strstr(g.why, "duplicate"));
    assert_int_equal(
        parse(&p, "{\"requestTimeEpoch\":\"999999999999999999\",\"status\":\"200\"}", &g), -1);
    assert_int_equal(g.n, 0);
    assert_non_null(strstr(g.why, "requestTimeEpoch"));
    assert_int_equal(parse(&p, "{\"requestTimeEpoch\":\"253402300800000\",\"status\":\"200\"}", &g),
                     -1);
    assert_int_equal(parse(&p, "{\"requestTimeEpoch\":\"253402300799999\",\"status\":\"200\"}", &g),
                     0);
    assert_int_equal(g.recs[0].ev.ts_us, 253402300799999000LL);
    /* a latency whose microseconds overflow (signed overflow: undefined) */
    assert_int_equal(parse(&p,
                           "{\"requestTimeEpoch\":\"1796083200000\",\"status\":\"200\","
                           "\"responseLatency\":\"999999999999999999\"}",
                           &g),
                     -1);
    assert_non_null(strstr(g.why, "responseLatency"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_per_line), cmocka_unit_test(test_aws_http_api_format),
        cmocka_unit_test(test_concatenated), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
