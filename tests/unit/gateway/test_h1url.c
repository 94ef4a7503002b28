/* Tests src/gateway/h1url.c: upstream URLs as the native client splits them
 * (pool key, name, port, SNI/literal, the Host header libcurl would send). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/h1url.h"

static void check(const char *url, int tls, const char *name, int port, int numeric,
                  const char *host, const char *path, size_t target_len)
{
    tg_h1url_t u;
    if (tg_h1url_parse(url, &u) != 0) fail_msg("refused %s", url);
    assert_int_equal(u.tls, tls);
    assert_string_equal(u.name, name);
    assert_int_equal(u.port, port);
    assert_int_equal(u.numeric, numeric);
    assert_string_equal(u.host, host);
    assert_string_equal(u.path, path);
    assert_int_equal(u.target_len, target_len);
    assert_int_equal(tg_h1url_target_len(url), target_len);
}

static void test_names_and_ports(void **state)
{
    (void)state;
    check("https://api.openai.com/v1/chat/completions", 1, "api.openai.com", 443, 0,
          "api.openai.com", "/v1/chat/completions", 22);
    check("https://api.openai.com:443/v1", 1, "api.openai.com", 443, 0, "api.openai.com", "/v1",
          26);
    check("https://api.openai.com:8443/v1", 1, "api.openai.com", 8443, 0, "api.openai.com:8443",
          "/v1", 27);
    check("http://example.com", 0, "example.com", 80, 0, "example.com", "/", 18);
    check("http://example.com:80/x?y=1", 0, "example.com", 80, 0, "example.com", "/x?y=1", 21);
    check("http://localhost:8080/x", 0, "localhost", 8080, 0, "localhost:8080", "/x", 21);
    /* https on port 80 is not a default: kept */
    check("https://h.example:80/", 1, "h.example", 80, 0, "h.example:80", "/", 20);
}

static void test_literals(void **state)
{
    (void)state;
    check("http://127.0.0.1:9000/p", 0, "127.0.0.1", 9000, 1, "127.0.0.1:9000", "/p", 21);
    check("https://10.1.2.3/p", 1, "10.1.2.3", 443, 1, "10.1.2.3", "/p", 16);
    check("https://[::1]:8443/p", 1, "::1", 8443, 1, "[::1]:8443", "/p", 18);
    check("https://[2001:db8::1]/", 1, "2001:db8::1", 443, 1, "[2001:db8::1]", "/", 21);
    check("http://[::1]:80/", 0, "::1", 80, 1, "[::1]", "/", 15);
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "ftp://example.com/", "example.com/x",  "http://",
        "http:///x",          "http://h:0/",    "http://h:65536/",
        "http://h:/",         "http://h:8x/",   "http://h:123456/",
        "http://[::1/",       "http://[::1]x/", "http://[zz]/",
        "http://a b/",        "http://user@h/", "http://ex%41mple.com/",
        "http://h?q",         "http://h#f",     "HTTPS://h/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tg_h1url_t u;
        if (tg_h1url_parse(bad[i], &u) == 0) fail_msg("accepted %s", bad[i]);
    }
    /* a name of 256 bytes does not fit */
    char url[300] = "https://";
    memset(url + 8, 'a', 256);
    url[8 + 256] = '\0';
    tg_h1url_t u;
    assert_int_equal(tg_h1url_parse(url, &u), -1);
    url[8 + 255] = '\0';
    assert_int_equal(tg_h1url_parse(url, &u), 0);
    assert_int_equal(strlen(u.name), 255);
}

static void test_target_len(void **state)
{
    (void)state;
    assert_int_equal(tg_h1url_target_len("no scheme"), 0);
    assert_int_equal(tg_h1url_target_len("https://h"), 9);
    assert_int_equal(tg_h1url_target_len("https://h?x"), 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_ports),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_target_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
