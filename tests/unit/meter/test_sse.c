/* Tests src/meter/sse.c: line endings, fields, comments, caps, and that cutting the stream
 * at any byte (one byte at a time, every two-piece split) gives identical callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "meter/sse.h"

/* Callbacks are logged as "event=data;" so whole runs compare with one string compare. */
struct log {
    char buf[8192];
    size_t len;
    int calls;
};

static void on_event(void *ud, const char *ev, size_t elen, const char *data, size_t dlen)
{
    struct log *l = ud;
    int n = snprintf(l->buf + l->len, sizeof l->buf - l->len, "%.*s=%.*s;", (int)elen, ev,
                     (int)dlen, data);
    assert_true(n > 0 && (size_t)n < sizeof l->buf - l->len);
    l->len += (size_t)n;
    l->calls++;
}

static void parse(const char *in, size_t n, size_t max, struct log *l, size_t *skipped)
{
    memset(l, 0, sizeof *l);
    tg_sse_t s;
    tg_sse_init(&s, max, on_event, l);
    tg_sse_feed(&s, in, n);
    if (skipped) *skipped = tg_sse_skipped(&s);
    tg_sse_free(&s);
}

static const char fixture[] = ": comment\r\n"
                              "event: ping\r\n"
                              "data: {\"a\":1}\r\n"
                              "\r\n"
                              "data: line1\n"
                              "data:line2\n"
                              "id: 7\n"
                              "retry: 10\n"
                              "\n"
                              "event:cr\r"
                              "data:  two spaces\r"
                              "\r"
                              "data\n"
                              "\n"
                              "event: nodata\n"
                              "\n"
                              "data: last\r\n"
                              "\r\n";
static const char expected[] = "ping={\"a\":1};message=line1\nline2;cr= two spaces;message=;"
                               "message=last;";

static void test_fixture_whole(void **state)
{
    (void)state;
    struct log l;
    parse(fixture, sizeof fixture - 1, 1024, &l, NULL);
    assert_string_equal(l.buf, expected);
    assert_int_equal(l.calls, 5);
}

static void test_fixture_byte_by_byte(void **state)
{
    (void)state;
    struct log l = {0};
    tg_sse_t s;
    tg_sse_init(&s, 1024, on_event, &l);
    for (size_t i = 0; i < sizeof fixture - 1; i++)
        tg_sse_feed(&s, fixture + i, 1);
    tg_sse_free(&s);
    assert_string_equal(l.buf, expected);
}

static void test_fixture_every_split(void **state)
{
    (void)state;
    size_t n = sizeof fixture - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct log l = {0};
        tg_sse_t s;
        tg_sse_init(&s, 1024, on_event, &l);
        tg_sse_feed(&s, fixture, cut);
        tg_sse_feed(&s, fixture + cut, n - cut);
        tg_sse_free(&s);
        assert_string_equal(l.buf, expected);
    }
}

static void test_line_endings(void **state)
{
    (void)state;
    struct log l;
    parse("data: a\n\n", 9, 64, &l, NULL);
    assert_string_equal(l.buf, "message=a;");
    parse("data: a\r\n\r\n", 11, 64, &l, NULL);
    assert_string_equal(l.buf, "message=a;");
    parse("data: a\r\r", 9, 64, &l, NULL);
    assert_string_equal(l.buf, "message=a;");
    /* \r then \n in the next chunk is one break, not a blank line. */
    memset(&l, 0, sizeof l);
    tg_sse_t s;
    tg_sse_init(&s, 64, on_event, &l);
    tg_sse_feed(&s, "data: a\r", 8);
    tg_sse_feed(&s, "\ndata: b\r", 9);
    tg_sse_feed(&s, "\n\r", 2);
    tg_sse_feed(&s, "\n", 1);
    tg_sse_free(&s);
    assert_string_equal(l.buf, "message=a\nb;");
}

static void test_multiline_and_comments(void **state)
{
    (void)state;
    struct log l;
    const char *in = ":hello\ndata: x\n: mid\ndata: y\ndata\nfoo: bar\n\n";
    parse(in, strlen(in), 64, &l, NULL);
    assert_string_equal(l.buf, "message=x\ny\n;");
}

static void test_event_name_resets(void **state)
{
    (void)state;
    struct log l;
    const char *in = "event: a\nevent: b\ndata: 1\n\ndata: 2\n\n";
    parse(in, strlen(in), 64, &l, NULL);
    assert_string_equal(l.buf, "b=1;message=2;");
}

static void test_unterminated_event_dropped(void **state)
{
    (void)state;
    struct log l;
    parse("data: a\n", 8, 64, &l, NULL);
    assert_int_equal(l.calls, 0);
}

static void test_oversize_skipped(void **state)
{
    (void)state;
    char big[400];
    int n = snprintf(big, sizeof big,
                     "data: small\n\nevent: huge\ndata: %0100d\ndata: x\n\n"
                     "data: after\n\n",
                     0);
    struct log l;
    size_t skipped;
    parse(big, (size_t)n, 32, &l, &skipped);
    assert_string_equal(l.buf, "message=small;message=after;");
    assert_int_equal(skipped, 1);

    /* Same result however the stream is cut. */
    for (int cut = 0; cut <= n; cut++) {
        memset(&l, 0, sizeof l);
        tg_sse_t s;
        tg_sse_init(&s, 32, on_event, &l);
        tg_sse_feed(&s, big, (size_t)cut);
        tg_sse_feed(&s, big + cut, (size_t)(n - cut));
        assert_int_equal(tg_sse_skipped(&s), 1);
        tg_sse_free(&s);
        assert_string_equal(l.buf, "message=small;message=after;");
    }
}

static void test_cap_counts_many_lines(void **state)
{
    (void)state;
    /* Many short lines add up past the cap even though no single line does. */
    char in[512];
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(in + n, sizeof in - n, "data: ab\n");
    n += (size_t)snprintf(in + n, sizeof in - n, "\ndata: ok\n\n");
    struct log l;
    size_t skipped;
    parse(in, n, 64, &l, &skipped);
    assert_string_equal(l.buf, "message=ok;");
    assert_int_equal(skipped, 1);
    /* Exactly at the cap is allowed: "data: ab\n" is 9 bytes. */
    parse("data: ab\n\n", 10, 9, &l, &skipped);
    assert_string_equal(l.buf, "message=ab;");
    assert_int_equal(skipped, 0);
    parse("data: ab\n\n", 10, 8, &l, &skipped);
    assert_int_equal(l.calls, 0);
    assert_int_equal(skipped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_whole),
        cmocka_unit_test(test_fixture_byte_by_byte),
        cmocka_unit_test(test_fixture_every_split),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_multiline_and_comments),
        cmocka_unit_test(test_event_name_resets),
        cmocka_unit_test(test_unterminated_event_dropped),
        cmocka_unit_test(test_oversize_skipped),
        cmocka_unit_test(test_cap_counts_many_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
