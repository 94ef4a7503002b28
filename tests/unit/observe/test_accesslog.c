/* Tests src/observe/accesslog.c: the exact line shape, escaping of what a
 * client controls (quotes, newlines, control bytes, invalid UTF-8 in the
 * path), the omitted reason, latency formatting, and file output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "observe/accesslog.h"
#include "types/event.h"

#define SET(ev, field, s) TG_EVENT_SET((ev), field, (s), strlen(s))

static tg_event_t sample(void)
{
    tg_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.id = 42;
    ev.ts_us = 1795428000123456LL; /* 2026-11-23T10:00:00.123456Z */
    ev.latency_us = 12345;
    ev.bytes_in = 321;
    ev.bytes_out = 4567;
    ev.status = 200;
    ev.outcome = TG_OUTCOME_BILLABLE;
    SET(&ev, request_id, "req-1");
    SET(&ev, tenant, "acme");
    SET(&ev, key_id, "key_7f3a");
    SET(&ev, route, "chat");
    SET(&ev, method, "POST");
    SET(&ev, path, "/v1/chat/completions");
    SET(&ev, upstream, "https://api.openai.com");
    SET(&ev, client_ip, "203.0.113.7");
    return ev;
}

static char *line_of(const tg_event_t *ev)
{
    static char buf[8192];
    long n = tg_accesslog_format(ev, buf, sizeof buf);
    assert_true(n > 0 && n < (long)sizeof buf);
    assert_int_equal(strlen(buf), (size_t)n);
    return buf;
}

static json_t *parse(const char *line)
{
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (!j) fail_msg("not JSON (%s): %s", e.text, line);
    return j;
}

static void test_line_shape(void **state)
{
    (void)state;
    tg_event_t ev = sample();
    assert_string_equal(line_of(&ev),
                        "{\"time\":\"2026-11-23T10:00:00.123Z\",\"request_id\":\"req-1\","
                        "\"tenant\":\"acme\",\"key_id\":\"key_7f3a\",\"route\":\"chat\","
                        "\"method\":\"POST\",\"path\":\"/v1/chat/completions\",\"status\":200,"
                        "\"outcome\":\"billable\",\"latency_ms\":12.345,\"bytes_in\":321,"
                        "\"bytes_out\":4567,\"upstream\":\"https://api.openai.com\","
                        "\"client_ip\":\"203.0.113.7\"}");
}

static void test_reason_present_when_set(void **state)
{
    (void)state;
    tg_event_t ev = sample();
    ev.status = 404;
    ev.outcome = TG_OUTCOME_REJECTED;
    SET(&ev, reason, "no_route");
    ev.upstream[0] = '\0';
    const char *l = line_of(&ev);
    assert_non_null(strstr(l, "\"status\":404,\"outcome\":\"rejected\",\"reason\":\"no_route\","
                              "\"latency_ms\":"));
    /* Empty strings other than reason stay, so every line has the same keys. */
    assert_non_null(strstr(l, "\"upstream\":\"\""));
}

static void test_reason_omitted_when_empty(void **state)
{
    (void)state;
    tg_event_t ev = sample();
    const char *l = line_of(&ev);
    assert_null(strstr(l, "reason"));
    json_t *j = parse(l);
    assert_null(json_object_get(j, "reason"));
    assert_int_equal(json_object_size(j), 14);
    json_decref(j);
}

static void test_escaping_in_path(void **state)
{
    (void)state;
    tg_event_t ev = sample();
    const char *nasty = "/a\"b\\c\nd\re\tf\x01g\x1fh</script>";
    SET(&ev, path, nasty);
    SET(&ev, tenant, "quote\"tenant");
    const char *l = line_of(&ev);
    /* One line: no raw newline or control byte survives. */
    for (const char *p = l; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    assert_non_null(strstr(l, "\"path\":\"/a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001Fh</script>\""));
    json_t *j = parse(l);
    assert_string_equal(json_string_value(json_object_get(j, "path")), nasty);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "quote\"tenant");
    json_decref(j);
}

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    tg_event_t ev = sample();
    /* valid é and €, a lone 0xff, an overlong '/', a surrogate, a truncated sequence */
    SET(&ev, path, "/\xc3\xa9\xe2\x82\xac/\xff/\xc0\xaf/\xed\xa0\x80/\xe2\x82");
    json_t *j = parse(line_of(&ev));
    assert_string_equal(json_string_value(json_object_get(j, "path")),
                        "/\xc3\xa9\xe2\x82\xac/\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd/"
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);

    /* A 255-byte path cut inside a 2-byte character is still a valid line. */
    char longp[400];
    memset(longp, 0, sizeof longp);
    memcpy(longp, "//", 2);
    for (int i = 2; i < 300; i += 2)
        memcpy(longp + i, "\xc3\xa9", 2);
    SET(&ev, path, longp);
    assert_int_equal(strlen(ev.path), 255);
    j = parse(line_of(&ev));
    const char *p = json_string_value(json_object_get(j, "path"));
    assert_non_null(p);
    assert_int_equal(strncmp(p, longp, 254), 0);
    assert_string_equal(p + 254, "\xef\xbf\xbd");
    json_decref(j);
}

static void test_latency_ms(void **state)
{
    (void)state;
    struct {
        int64_t us;
        const char *want;
    } cases[] = {
        {0, "\"latency_ms\":0.000,"},
        {5, "\"latency_ms\":0.005,"},
        {999, "\"latency_ms\":0.999,"},
        {1000, "\"latency_ms\":1.000,"},
        {1500, "\"latency_ms\":1.500,"},
        {12345, "\"latency_ms\":12.345,"},
        {123456789, "\"latency_ms\":123456.789,"},
        {86400000000LL, "\"latency_ms\":86400000.000,"},
        {-7, "\"latency_ms\":0.000,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_event_t ev = sample();
        ev.latency_us = cases[i].us;
        const char *l = line_of(&ev);
        if (!strstr(l, cases[i].want)) fail_msg("latency %lld: %s", (long long)cases[i].us, l);
    }
}

/* Numbers are written by hand, not by snprintf: every edge prints as printf would. */
static void test_integers(void **state)
{
    (void)state;
    struct {
        int64_t in, out;
        int32_t status;
        const char *want;
    } cases[] = {
        {0, 0, 0, "\"status\":0,"},
        {0, 0, 0, "\"bytes_in\":0,\"bytes_out\":0,"},
        {9, 10, 200, "\"bytes_in\":9,\"bytes_out\":10,"},
        {INT64_MAX, INT64_MIN, -1,
         "\"bytes_in\":9223372036854775807,"
         "\"bytes_out\":-9223372036854775808,"},
        {INT64_MAX, INT64_MIN, -1, "\"status\":-1,"},
        {-42, 1000000, 599, "\"bytes_in\":-42,\"bytes_out\":1000000,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_event_t ev = sample();
        ev.bytes_in = cases[i].in;
        ev.bytes_out = cases[i].out;
        ev.status = cases[i].status;
        const char *l = line_of(&ev);
        if (!strstr(l, cases[i].want)) fail_msg("case %zu: %s", i, l);
    }
}

static void test_time_across_seconds(void **state)
{
    (void)state;
    struct {
        int64_t us;
        const char *want;
    } cases[] = {
        {1795428000999999LL, "{\"time\":\"2026-11-23T10:00:00.999Z\","},
        {1795428001000000LL, "{\"time\":\"2026-11-23T10:00:01.000Z\","},
        {1795428000000999LL, "{\"time\":\"2026-11-23T10:00:00.000Z\","},
        {1795478399999000LL, "{\"time\":\"2026-11-23T23:59:59.999Z\","},
        {1795478400000000LL, "{\"time\":\"2026-11-24T00:00:00.000Z\","},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_event_t ev = sample();
        ev.ts_us = cases[i].us;
        const char *l = line_of(&ev);
        if (strncmp(l, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("ts %lld: %s", (long long)cases[i].us, l);
    }
}

/* Whatever bytes a client puts in the fields, the line is one valid JSON
 * object that gives back the field (with U+FFFD where UTF-8 was invalid). */
static void test_random_bytes_always_valid_json(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        tg_event_t ev = sample();
        char *fields[] = {ev.path, ev.tenant, ev.reason, ev.request_id, ev.client_ip};
        size_t caps[] = {sizeof ev.path, sizeof ev.tenant, sizeof ev.reason, sizeof ev.request_id,
                         sizeof ev.client_ip};
        for (size_t f = 0; f < 5; f++) {
            size_t n = (size_t)(rand_r(&seed) % caps[f]);
            for (size_t i = 0; i < n; i++) {
                int b = rand_r(&seed) % 255 + 1; /* no NUL inside */
                if (round % 2) b = "a\"\\\n\x01\xc3\xa9/"[b % 8];
                fields[f][i] = (char)b;
            }
            fields[f][n] = '\0';
        }
        const char *l = line_of(&ev);
        for (const char *p = l; *p; p++)
            assert_true((unsigned char)*p >= 0x20);
        json_t *j = parse(l);
        const char *path = json_string_value(json_object_get(j, "path"));
        assert_non_null(path);
        json_t *valid = json_string(ev.path); /* valid UTF-8 in: the same bytes out */
        if (valid) assert_string_equal(path, ev.path);
        json_decref(valid);
        json_decref(j);
    }
}

static void test_format_reports_needed_size(void **state)
{
    (void)state;
    tg_event_t ev = sample();
    char small[16];
    long n = tg_accesslog_format(&ev, small, sizeof small);
    assert_true(n >= (long)sizeof small);
    char *big = malloc((size_t)n + 1);
    assert_int_equal(tg_accesslog_format(&ev, big, (size_t)n + 1), n);
    assert_string_equal(big, line_of(&ev));
    free(big);
}

static void test_off_is_null_and_harmless(void **state)
{
    (void)state;
    tg_accesslog_t *log = (tg_accesslog_t *)1;
    tg_err_t err = {{0}};
    assert_int_equal(tg_accesslog_open("off", &log, &err), 0);
    assert_null(log);
    tg_event_t ev = sample();
    tg_accesslog_write(log, &ev);
    assert_int_equal(tg_accesslog_flush(log), 0);
    assert_int_equal(tg_accesslog_reopen(log, &err), 0);
    tg_accesslog_close(log);
}

static void test_open_error_names_path(void **state)
{
    (void)state;
    tg_accesslog_t *log = NULL;
    tg_err_t err = {{0}};
    assert_int_equal(tg_accesslog_open("/nonexistent-dir/x/access.log", &log, &err), -1);
    assert_null(log);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/access.log"));
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_file_buffered_flushed_and_reopened(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg_test_accesslog.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], moved[128];
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(moved, sizeof moved, "%s/access.log.1", dir);

    tg_accesslog_t *log = NULL;
    tg_err_t err = {{0}};
    assert_int_equal(tg_accesslog_open(path, &log, &err), 0);
    assert_non_null(log);
    tg_event_t ev = sample();
    tg_accesslog_write(log, &ev);
    tg_accesslog_write(log, &ev);
    assert_int_equal(count_lines(path), 0); /* buffered until the batch ends */
    assert_int_equal(tg_accesslog_flush(log), 0);
    assert_int_equal(count_lines(path), 2);

    /* logrotate: move the file, reopen, new lines go to a new file */
    assert_int_equal(rename(path, moved), 0);
    tg_accesslog_write(log, &ev);
    assert_int_equal(tg_accesslog_reopen(log, &err), 0);
    tg_accesslog_write(log, &ev);
    tg_accesslog_close(log);
    assert_int_equal(count_lines(moved), 3);
    assert_int_equal(count_lines(path), 1);

    /* append, not truncate, on open */
    assert_int_equal(tg_accesslog_open(path, &log, &err), 0);
    tg_accesslog_write(log, &ev);
    tg_accesslog_close(log);
    assert_int_equal(count_lines(path), 2);

    FILE *f = fopen(path, "r");
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        json_decref(parse(line));
    }
    fclose(f);
    unlink(path);
    unlink(moved);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_shape),
        cmocka_unit_test(test_reason_present_when_set),
        cmocka_unit_test(test_reason_omitted_when_empty),
        cmocka_unit_test(test_escaping_in_path),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_latency_ms),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_time_across_seconds),
        cmocka_unit_test(test_random_bytes_always_valid_json),
        cmocka_unit_test(test_format_reports_needed_size),
        cmocka_unit_test(test_off_is_null_and_harmless),
        cmocka_unit_test(test_open_error_names_path),
        cmocka_unit_test(test_file_buffered_flushed_and_reopened),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
