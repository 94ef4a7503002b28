/* Tests what src/gateway/conn.c relies on in the HTTP parser it is built with (Debian's
 * libhttp-parser, not ours): a header field name reaches conn.c only when each of its bytes
 * is an RFC 9110 §5.6.2 tchar or a space. conn.c refuses the space itself (RFC 9112 §5.1:
 * "Host : x") and leaves every other byte to the parser; should a parser version let more
 * through, this test fails before a request smuggles a name through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <http_parser.h>

static int tchar(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", (int)c));
}

static int seen;
static int on_field(http_parser *p, const char *at, size_t n)
{
    (void)p;
    (void)at;
    seen += (int)n;
    return 0;
}

static void test_header_name_bytes(void **state)
{
    (void)state;
    http_parser_settings s;
    memset(&s, 0, sizeof s);
    s.on_header_field = on_field;
    for (unsigned c = 0; c < 256; c++) {
        if (c == ':') continue; /* ends the name */
        char req[] = "GET / HTTP/1.1\r\nX?Y: 1\r\n\r\n";
        req[17] = (char)c;
        http_parser p;
        http_parser_init(&p, HTTP_REQUEST);
        seen = 0;
        size_t n = http_parser_execute(&p, &s, req, sizeof req - 1);
        int accepted = HTTP_PARSER_ERRNO(&p) == HPE_OK && n == sizeof req - 1;
        if (accepted != (tchar(c) || c == ' '))
            fail_msg("byte %u in a header name: parser %s it", c, accepted ? "accepts" : "refuses");
        if (accepted) assert_int_equal(seen, 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_name_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
