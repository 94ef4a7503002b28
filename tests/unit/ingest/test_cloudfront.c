/* Tests src/ingest/cloudfront.c (and field.c's decoding) on AWS's documented example log
 * (tests/fixtures/ingest/cloudfront-aws-example.log, after the example in the CloudFront
 * developer guide's "standard logging" reference) and on lines made to probe the edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "collect.h"

#define FIELDS33                                                                                   \
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem "             \
    "sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type "             \
    "x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for "             \
    "ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status "          \
    "fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type "                  \
    "sc-content-type sc-content-len sc-range-start sc-range-end"

/* A 33-field record with the given status, query, result type, request id and client. */
static void line33(char *buf, size_t cap, const char *status, const char *query, const char *result,
                   const char *rid, const char *ip)
{
    snprintf(
        buf, cap,
        "2026-11-30\t23:59:59\tFRA56-P1\t1234\t%s\tPOST\td1.cloudfront.net\t/v1/chat\t%s\t-\t"
        "curl/8.0\t%s\t-\t%s\t%s\tapi.example.com\thttps\t321\t0.250\t-\tTLSv1.3\t"
        "TLS_AES_128_GCM_SHA256\t%s\tHTTP/2.0\t-\t-\t443\t0.200\t%s\tapplication/json\t900\t-\t-",
        ip, status, query, result, rid, result, result);
}

static void test_aws_example(void **state)
{
    (void)state;
    FILE *f = fopen("tests/fixtures/ingest/cloudfront-aws-example.log", "r");
    assert_non_null(f);
    tg_ingest_parser_t p;
    tg_ingest_parser_init(&p, TG_INGEST_CLOUDFRONT, NULL, NULL);
    char line[4096];
    got_t g, all[8];
    int nrec = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        assert_int_equal(parse(&p, line, &g), 0);
        if (g.n) all[nrec++] = g;
    }
    fclose(f);
    assert_int_equal(nrec, 5);
    const tg_event_t *e = &all[0].recs[0].ev;
    assert_int_equal(e->ts_us, 1575493351000000LL); /* 2019-12-04T21:02:31Z */
    assert_string_equal(e->method, "GET");
    assert_string_equal(e->path, "/index.html");
    assert_int_equal(e->status, 200);
    assert_int_equal(e->bytes_out, 392);
    assert_int_equal(e->bytes_in, 23);
    assert_int_equal(e->latency_us, 1000);
    assert_string_equal(e->cache, "hit");
    assert_string_equal(e->client_ip, "192.0.2.100");
    assert_string_equal(all[0].rid[0], "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==");
    assert_int_equal(all[0].recs[0].key_len, 0);
    e = &all[3].recs[0].ev;
    assert_int_equal(e->status, 502);
    assert_string_equal(e->cache, ""); /* Error: neither hit nor miss */
    assert_int_equal(e->latency_us, 102000);
    assert_int_equal(e->bytes_in, 675);
}

/* The key parameter's value is decoded twice: the log's layer, then the parameter's. */
static void test_double_encoded_key(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    tg_ingest_parser_init(&p, TG_INGEST_CLOUDFRONT, NULL, NULL);
    char line[2048];
    got_t g;
    /* the client sent cf_api_key=sk%25live%2Bk%26y (the key "sk%live+k&y") */
    line33(line, sizeof line, "200", "a=1&cf_api_key=sk%2525live%252Bk%2526y&b=2", "Miss", "r1",
           "2001:db8::7");
    assert_int_equal(parse(&p, line, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.recs[0].key, "sk%live+k&y");
    assert_string_equal(g.recs[0].ev.cache, "miss");
    assert_string_equal(g.recs[0].ev.client_ip, "2001:db8::7"); /* IPv6 viewer */
    assert_int_equal(g.recs[0].ev.ts_us, 1796083199000000LL);
    /* decoys are other parameters */
    line33(line, sizeof line, "200", "x_cf_api_key=bad&cf_api_key_hint=bad2&cf_api_key=good",
           "RefreshHit", "r2", "192.0.2.1");
    assert_int_equal(parse(&p, line, &g), 0);
    assert_string_equal(g.recs[0].key, "good");
    assert_string_equal(g.recs[0].ev.cache, "hit");
    line33(line, sizeof line, "200", "x_cf_api_key=bad&cf_api_key_hint=bad2", "Hit", "r3",
           "192.0.2.1");
    assert_int_equal(parse(&p, line, &g), 0);
    assert_int_equal(g.recs[0].key_len, 0);
    /* The key parameter twice (the second under an escaped name): the client chose one of
     * them, and which one the origin took is unknown. First-wins billed the client's pick
     * (another tenant's key, or an unknown one: free); the record is malformed instead. */
    line33(line, sizeof line, "200", "cf_api_key=victim&cf%255Fapi%255Fkey=mine", "Hit", "r5",
           "192.0.2.1");
    assert_int_equal(parse(&p, line, &g), -1);
    assert_int_equal(g.n, 0);
    assert_non_null(strstr(g.why, "twice"));
    assert_null(strstr(g.why, "victim")); /* never the key itself */
    /* A query in cs-uri-stem (CloudFront writes '?' there as %3F; a hostile or hand-made log
     * does not): the path is stored without it, so no key is stored. */
    snprintf(line, sizeof line,
             "2026-11-30\t23:59:59\tFRA56-P1\t1\t192.0.2.1\tGET\td1.cloudfront.net\t"
             "/v1/x?cf_api_key=tg_secret\t200\t-\t-\t-\t-\tMiss\tr6\tx\thttps\t1\t0.001");
    assert_int_equal(parse(&p, line, &g), 0);
    assert_string_equal(g.recs[0].ev.path, "/v1/x");
    /* a configured parameter name */
    tg_ingest_parser_init(&p, TG_INGEST_CLOUDFRONT, "token", NULL);
    line33(line, sizeof line, "200", "cf_api_key=nope&token=tg_abc", "Hit", "r4", "192.0.2.1");
    assert_int_equal(parse(&p, line, &g), 0);
    assert_string_equal(g.recs[0].key, "tg_abc");
}

static void test_status_000_and_malformed(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    tg_ingest_parser_init(&p, TG_INGEST_CLOUDFRONT, NULL, NULL);
    char line[2048];
    got_t g;
    line33(line, sizeof line, "000", "-", "Error", "r5", "192.0.2.1");
    assert_int_equal(parse(&p, line, &g), 0);
    assert_int_equal(g.recs[0].ev.status, 0);
    line33(line, sizeof line, "2x0", "-", "Hit", "r6", "192.0.2.1");
    assert_int_equal(parse(&p, line, &g), -1);
    assert_non_null(strstr(g.why, "sc-status"));
    line33(line, sizeof line, "200", "cf_api_key=%zz", "Hit", "r7", "192.0.2.1");
    assert_int_equal(parse(&p, line, &g), -1);
    assert_non_null(strstr(g.why, "escape"));
    assert_int_equal(parse(&p, "2026-11-30\t23:59:59\tFRA\t12", &g), -1);
    assert_int_equal(parse(&p, "2026-02-30\t23:59:59", &g), -1);
    /* after #Fields the count must match it */
    assert_int_equal(parse(&p, FIELDS33, &g), 0);
    line33(line, sizeof line, "200", "-", "Hit", "r8", "192.0.2.1");
    strcat(line, "\textra");
    assert_int_equal(parse(&p, line, &g), -1);
    assert_non_null(strstr(g.why, "34 fields where #Fields names 33"));
}

/* The older 26-field layout and a v2 selection in another order read by #Fields. */
static void test_layouts_by_fields_line(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    tg_ingest_parser_init(&p, TG_INGEST_CLOUDFRONT, NULL, NULL);
    got_t g;
    assert_int_equal(
        parse(&p,
              "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem "
              "sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type "
              "x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for "
              "ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version "
              "fle-status fle-encrypted-fields",
              &g),
        0);
    assert_int_equal(
        parse(&p,
              "2018-01-01\t00:00:00\tIAD2\t500\t203.0.113.9\tGET\td1.cloudfront.net\t/x\t204\t-"
              "\tUA\tcf_api_key=k1%2520x\t-\tMiss\tOLD26==\tapi.example.com\thttps\t90\t1.5\t-\t-"
              "\t-\tMiss\tHTTP/1.1\t-\t-",
              &g),
        0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.recs[0].ev.status, 204);
    assert_int_equal(g.recs[0].ev.latency_us, 1500000);
    assert_string_equal(g.recs[0].key, "k1 x");
    assert_string_equal(g.rid[0], "OLD26==");
    assert_int_equal(parse(&p, "#Fields: sc-status time date cs-uri-query x-edge-request-id", &g),
                     0);
    assert_int_equal(parse(&p, "201\t12:00:00\t2026-12-01\tcf_api_key=zz\tV2ID", &g), 0);
    assert_int_equal(g.recs[0].ev.status, 201);
    assert_int_equal(g.recs[0].ev.ts_us, 1796083200000000LL + 12 * 3600000000LL);
    assert_string_equal(g.recs[0].key, "zz");
    assert_int_equal(parse(&p, "#Fields: time cs-uri-query", &g), -1); /* no date, status */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_example),
        cmocka_unit_test(test_double_encoded_key),
        cmocka_unit_test(test_status_000_and_malformed),
        cmocka_unit_test(test_layouts_by_fields_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
