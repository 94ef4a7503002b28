/* Tests src/ingest/clf.c on Apache's documented examples (the mod_log_config / "Log
 * Files" page: 127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] ...) and on lines made to
 * probe time zones, escaped quotes, junk request lines, keys and IPv6 clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "collect.h"

/* 2000-10-10T20:55:36Z: Apache's example time, 13:55:36 at -0700. */
#define T_APACHE 971211336000000LL

static void test_apache_examples(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_CLF, NULL, NULL);
    assert_int_equal(parse(&p,
                           "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif "
                           "HTTP/1.0\" 200 2326",
                           &g),
                     0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.recs[0].ev.ts_us, T_APACHE);
    assert_string_equal(g.recs[0].ev.method, "GET");
    assert_string_equal(g.recs[0].ev.path, "/apache_pb.gif");
    assert_int_equal(g.recs[0].ev.status, 200);
    assert_int_equal(g.recs[0].ev.bytes_out, 2326);
    assert_string_equal(g.recs[0].ev.client_ip, "127.0.0.1");
    assert_string_equal(g.recs[0].ev.tenant, ""); /* the user is no tenant by default */
    assert_null(g.recs[0].rid);                   /* the line is the identity */

    tg_ingest_parser_init(&p, TG_INGEST_COMBINED, NULL, "user");
    assert_int_equal(parse(&p,
                           "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif "
                           "HTTP/1.0\" 200 2326 \"http://www.example.com/start.html\" "
                           "\"Mozilla/4.08 [en] (Win98; I ;Nav)\"",
                           &g),
                     0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.recs[0].ev.tenant, "frank"); /* --tenant-field user */
    /* combined needs its two quoted fields */
    assert_int_equal(parse(&p,
                           "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" "
                           "200 2326",
                           &g),
                     -1);
    assert_non_null(strstr(g.why, "combined"));
}

static void test_zones_quotes_junk(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_COMBINED, NULL, NULL);
    /* +0530 and an escaped quote in the request and the user agent; IPv6 client */
    assert_int_equal(parse(&p,
                           "2001:db8::1 - - [01/Dec/2026:05:30:00 +0530] \"GET /a\\\"b?x=1 "
                           "HTTP/1.1\" 404 - \"-\" \"say \\\"hi\\\"\" \"extra nginx field\"",
                           &g),
                     0);
    assert_int_equal(g.recs[0].ev.ts_us, 1796083200000000LL); /* 2026-12-01T00:00:00Z */
    assert_string_equal(g.recs[0].ev.path, "/a\"b");
    assert_int_equal(g.recs[0].ev.bytes_out, 0);
    assert_string_equal(g.recs[0].ev.client_ip, "2001:db8::1");
    /* a field ending in an escaped backslash: its quote closes it (an even run) */
    assert_int_equal(parse(&p,
                           "192.0.2.5 - - [30/Nov/2026:23:59:59 +0000] \"GET /b\\\\ HTTP/1.1\" "
                           "200 7 \"r \\\\\\\\\" \"ua\"",
                           &g),
                     0);
    assert_string_equal(g.recs[0].ev.path, "/b\\");
    assert_int_equal(g.recs[0].ev.bytes_out, 7);
    /* a TLS handshake on a plain port, and a connection that sent nothing */
    assert_int_equal(parse(&p,
                           "192.0.2.5 - - [30/Nov/2026:23:59:59 +0000] "
                           "\"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03\" 400 157 "
                           "\"-\" \"-\"",
                           &g),
                     0);
    assert_string_equal(g.recs[0].ev.method, "-");
    assert_string_equal(g.recs[0].ev.reason, "bad_request_line");
    assert_int_equal(g.recs[0].ev.status, 400);
    assert_int_equal(
        parse(&p, "192.0.2.5 - - [30/Nov/2026:23:59:59 +0000] \"-\" 408 0 \"-\" \"-\"", &g), 0);
    assert_string_equal(g.recs[0].ev.method, "-");
    /* malformed */
    assert_int_equal(parse(&p, "192.0.2.5 - - [30/Nov/2026 23:59:59] \"GET / HTTP/1.1\" 200 1", &g),
                     -1);
    assert_non_null(strstr(g.why, "time"));
    assert_int_equal(
        parse(&p, "192.0.2.5 - - [30/Nov/2026:23:59:59 +0000] \"GET / HTTP/1.1\" 2000 1", &g), -1);
    assert_int_equal(
        parse(&p, "192.0.2.5 - - [30/Nov/2026:23:59:59 +0000] \"GET / HTTP/1.1 200 1", &g), -1);
    assert_int_equal(parse(&p, "garbage", &g), -1);
    assert_int_equal(parse(&p, "", &g), 0); /* blank: nothing */
    assert_int_equal(g.n, 0);
}

static void test_key_from_query(void **state)
{
    (void)state;
    tg_ingest_parser_t p;
    got_t g;
    tg_ingest_parser_init(&p, TG_INGEST_CLF, NULL, NULL);
    assert_int_equal(parse(&p,
                           "192.0.2.5 - - [30/Nov/2026:23:59:59 +0000] \"POST "
                           "/v1/x?api_key_hint=no&api_key=tg_a%2Bb&z=1 HTTP/1.1\" 201 10",
                           &g),
                     0);
    assert_string_equal(g.recs[0].key, "tg_a+b");    /* decoded once */
    assert_string_equal(g.recs[0].ev.path, "/v1/x"); /* never the query */
    /* the key parameter twice: which one the server used is unknown */
    assert_int_equal(parse(&p,
                           "192.0.2.5 - - [30/Nov/2026:23:59:59 +0000] \"GET "
                           "/v1/x?api_key=tg_victim&api_key=tg_mine HTTP/1.1\" 200 10",
                           &g),
                     -1);
    assert_int_equal(g.n, 0);
    assert_non_null(strstr(g.why, "twice"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apache_examples),
        cmocka_unit_test(test_zones_quotes_junk),
        cmocka_unit_test(test_key_from_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
