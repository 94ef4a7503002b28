/* Tests src/gateway/listen.c: host:port parsing and socket creation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "gateway/listen.h"

static void test_parse_ok(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    char buf[80];
    assert_int_equal(tg_listen_parse("127.0.0.1:8080", &a, NULL), 0);
    tg_listen_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "127.0.0.1:8080");
    assert_int_equal(tg_listen_parse("[::1]:9090", &a, NULL), 0);
    tg_listen_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:9090");
    assert_int_equal(tg_listen_parse("localhost:1", &a, NULL), 0);
    tg_listen_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "127.0.0.1:1");
    assert_int_equal(tg_listen_parse(":8080", &a, NULL), 0);
    tg_listen_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "0.0.0.0:8080");
}

static void test_parse_bad(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    tg_err_t err;
    assert_int_equal(tg_listen_parse("8080", &a, &err), -1);
    assert_non_null(strstr(err.msg, "host:port"));
    assert_int_equal(tg_listen_parse("127.0.0.1:99999", &a, &err), -1);
    assert_non_null(strstr(err.msg, "bad port"));
    assert_int_equal(tg_listen_parse("127.0.0.1:", &a, &err), -1);
    assert_int_equal(tg_listen_parse("127.0.0.1:80x", &a, &err), -1);
    assert_int_equal(tg_listen_parse("example.com:80", &a, &err), -1);
    assert_non_null(strstr(err.msg, "numeric"));
    assert_int_equal(tg_listen_parse("[::1:80", &a, &err), -1);
}

static void test_socket_conflict(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    tg_err_t err;
    assert_int_equal(tg_listen_parse("127.0.0.1:0", &a, NULL), 0);
    int fd = tg_listen_socket(&a, 0, &err);
    assert_true(fd >= 0);
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &len);
    /* A second non-reuseport socket on the same port is refused, clearly. */
    int fd2 = tg_listen_socket(&bound, 0, &err);
    assert_int_equal(fd2, -1);
    assert_non_null(strstr(err.msg, "cannot listen on 127.0.0.1:"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_socket_conflict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
