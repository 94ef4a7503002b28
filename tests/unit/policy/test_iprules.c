/* Tests src/policy/iprules.c: allow/deny verdicts and the X-Forwarded-For walk (the CIDR
 * and address parsing it builds on: tests/unit/types/test_cidr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/iprules.h"
#include "types/cidr_cases.h"

static void test_check_verdicts(void **state)
{
    (void)state;
    static const char *const allow_v[] = {"10.0.0.0/8", "2001:db8::/32", NULL};
    static const char *const deny_v[] = {"10.6.6.0/24", "2001:db8:bad::/48", NULL};
    static const char *const none[] = {NULL};
    tg_cidr_list_t allow = list_of(allow_v), deny = list_of(deny_v), empty = list_of(none);
    tg_ip_t a;

    /* Deny wins over allow. */
    a = ip("10.6.6.6");
    assert_int_equal(tg_ip_check(&allow, &deny, &a), TG_IP_DENIED);
    a = ip("2001:db8:bad::1");
    assert_int_equal(tg_ip_check(&allow, &deny, &a), TG_IP_DENIED);
    /* In allow, not in deny. */
    a = ip("10.1.2.3");
    assert_int_equal(tg_ip_check(&allow, &deny, &a), TG_IP_ALLOWED);
    a = ip("2001:db8::5");
    assert_int_equal(tg_ip_check(&allow, &deny, &a), TG_IP_ALLOWED);
    /* A non-empty allow list must match. */
    a = ip("192.0.2.7");
    assert_int_equal(tg_ip_check(&allow, &deny, &a), TG_IP_NOT_ALLOWED);
    assert_int_equal(tg_ip_check(&allow, NULL, &a), TG_IP_NOT_ALLOWED);
    /* An empty or absent allow list allows all that deny does not catch. */
    assert_int_equal(tg_ip_check(&empty, &deny, &a), TG_IP_ALLOWED);
    assert_int_equal(tg_ip_check(NULL, &deny, &a), TG_IP_ALLOWED);
    assert_int_equal(tg_ip_check(NULL, NULL, &a), TG_IP_ALLOWED);
    assert_int_equal(tg_ip_check(&empty, &empty, &a), TG_IP_ALLOWED);
    a = ip("10.6.6.1");
    assert_int_equal(tg_ip_check(&empty, &deny, &a), TG_IP_DENIED);
    assert_int_equal(tg_ip_check(NULL, &deny, &a), TG_IP_DENIED);
    /* A v4-mapped v6 peer meets the v4 rules. */
    a = ip("::ffff:10.6.6.1");
    assert_int_equal(tg_ip_check(NULL, &deny, &a), TG_IP_DENIED);

    tg_cidr_list_free(&allow);
    tg_cidr_list_free(&deny);
    tg_cidr_list_free(&empty);
}

/* The client for a peer and an X-Forwarded-For value, formatted. */
static const char *client(const char *peer, const char *xff, const tg_cidr_list_t *trusted)
{
    static char buf[64];
    tg_ip_t p = ip(peer), out;
    memset(&out, 0x77, sizeof out);
    tg_ip_client(&p, xff, xff ? strlen(xff) : 0, trusted, &out);
    tg_ip_format(&out, buf, sizeof buf);
    return buf;
}

static void test_xff(void **state)
{
    (void)state;
    static const char *const tv[] = {"10.0.0.0/8", "fd00::/8", "192.0.2.1", NULL};
    tg_cidr_list_t t = list_of(tv);

    /* An untrusted peer: X-Forwarded-For is ignored whatever it says. */
    assert_string_equal(client("203.0.113.5", "1.1.1.1", &t), "203.0.113.5");
    assert_string_equal(client("203.0.113.5", "10.0.0.9, 1.1.1.1", &t), "203.0.113.5");
    assert_string_equal(client("2001:db8::9", "1.1.1.1", &t), "2001:db8::9");
    /* No trusted list at all, or an empty one. */
    static const char *const none[] = {NULL};
    tg_cidr_list_t empty = list_of(none);
    assert_string_equal(client("10.0.0.1", "1.1.1.1", &empty), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", "1.1.1.1", NULL), "10.0.0.1");

    /* Trusted peer, empty or absent header: the peer. */
    assert_string_equal(client("10.0.0.1", NULL, &t), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", "", &t), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", "   ", &t), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", ",", &t), "10.0.0.1");

    /* One hop. */
    assert_string_equal(client("10.0.0.1", "198.51.100.7", &t), "198.51.100.7");
    /* Several hops: the right-most untrusted entry, not the forgeable left. */
    assert_string_equal(client("10.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2", &t), "198.51.100.7");
    assert_string_equal(client("10.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2, 192.0.2.1", &t),
                        "198.51.100.7");
    /* A trusted-looking entry left of the client is not believed past it. */
    assert_string_equal(client("10.0.0.1", "10.9.9.9, 198.51.100.7, 10.0.0.2", &t), "198.51.100.7");
    /* All trusted: the left-most. */
    assert_string_equal(client("10.0.0.1", "10.0.0.5, 10.0.0.4, 192.0.2.1", &t), "10.0.0.5");
    assert_string_equal(client("10.0.0.1", "10.0.0.5", &t), "10.0.0.5");

    /* Garbage stops the walk at the last good address. */
    assert_string_equal(client("10.0.0.1", "garbage", &t), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", "1.1.1.1, unknown", &t), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", "1.1.1.1, 10.0.0.2, nonsense, 10.0.0.3", &t),
                        "10.0.0.3");
    assert_string_equal(client("10.0.0.1", "1.1.1.1, 10.0.0.3:8080", &t), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", "1.1.1.1, [fd00::1]", &t), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", "garbage, 198.51.100.7", &t), "198.51.100.7");
    assert_string_equal(client("10.0.0.1", "1.1.1.1 2.2.2.2", &t), "10.0.0.1");
    /* Spaces and tabs around entries are optional whitespace. */
    assert_string_equal(client("10.0.0.1", "  198.51.100.7  ,\t10.0.0.2\t", &t), "198.51.100.7");
    assert_string_equal(client("10.0.0.1", "198.51.100.7,10.0.0.2", &t), "198.51.100.7");
    /* Empty list elements are skipped. */
    assert_string_equal(client("10.0.0.1", "198.51.100.7, , 10.0.0.2,", &t), "198.51.100.7");

    /* IPv6 entries and peers, and a mapped v4 peer that is trusted as v4. */
    assert_string_equal(client("fd00::1", "2001:db8::42, fd00::2", &t), "2001:db8::42");
    assert_string_equal(client("fd00::1", "198.51.100.7, fd00::2", &t), "198.51.100.7");
    assert_string_equal(client("10.0.0.1", "2001:db8::42", &t), "2001:db8::42");
    assert_string_equal(client("::ffff:10.0.0.1", "2001:db8::42, ::ffff:10.0.0.3", &t),
                        "2001:db8::42");
    assert_string_equal(client("10.0.0.1", "fd00::9, fd00::8", &t), "fd00::9");

    /* The header is a slice: bytes past xff_len are not read. */
    tg_ip_t p = ip("10.0.0.1"), out;
    const char *hdr = "198.51.100.7, 10.0.0.2GARBAGE";
    tg_ip_client(&p, hdr, strlen("198.51.100.7, 10.0.0.2"), &t, &out);
    char buf[64];
    tg_ip_format(&out, buf, sizeof buf);
    assert_string_equal(buf, "198.51.100.7");
    /* A zero length with a non-NULL pointer is an empty header. */
    tg_ip_client(&p, hdr, 0, &t, &out);
    assert_memory_equal(&out, &p, sizeof out);

    tg_cidr_list_free(&t);
    tg_cidr_list_free(&empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_verdicts),
        cmocka_unit_test(test_xff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
