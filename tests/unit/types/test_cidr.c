/* Tests src/types/cidr.c: CIDR and address parsing (v4, v6, mapped), error messages,
 * prefix edges, matching, lists and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "types/cidr.h"
#include "types/cidr_cases.h"

static int matches(const char *c, const char *a)
{
    tg_cidr_t cc = cidr(c);
    tg_ip_t aa = ip(a);
    return tg_cidr_match(&cc, &aa);
}

static void assert_parse_error(const char *s, const char *want)
{
    tg_cidr_t c;
    memset(&c, 0xa5, sizeof c);
    tg_cidr_t before = c;
    tg_err_t e = {{0}};
    assert_int_equal(tg_cidr_parse(s, &c, &e), -1);
    assert_string_equal(e.msg, want);
    assert_memory_equal(&c, &before, sizeof c);       /* out untouched on error */
    assert_int_equal(tg_cidr_parse(s, &c, NULL), -1); /* err is optional */
}

static void test_parse_v4(void **state)
{
    (void)state;
    static const uint8_t ten[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0};
    tg_cidr_t c = cidr("10.0.0.0/8");
    assert_memory_equal(c.addr, ten, 16);
    assert_int_equal(c.bits, 8 + 96);

    static const uint8_t host[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
    c = cidr("192.0.2.7");
    assert_memory_equal(c.addr, host, 16);
    assert_int_equal(c.bits, 128);
    c = cidr("192.0.2.7/32");
    assert_memory_equal(c.addr, host, 16);
    assert_int_equal(c.bits, 128);

    c = cidr("0.0.0.0/0");
    assert_int_equal(c.bits, 96);
    c = cidr("192.168.128.0/17");
    assert_int_equal(c.bits, 17 + 96);
    assert_int_equal(c.addr[14], 128);
}

static void test_parse_v6(void **state)
{
    (void)state;
    static const uint8_t db8[16] = {0x20, 0x01, 0x0d, 0xb8};
    tg_cidr_t c = cidr("2001:db8::/32");
    assert_memory_equal(c.addr, db8, 16);
    assert_int_equal(c.bits, 32);

    static const uint8_t one[16] = {[15] = 1};
    c = cidr("::1");
    assert_memory_equal(c.addr, one, 16);
    assert_int_equal(c.bits, 128);
    c = cidr("::1/128");
    assert_int_equal(c.bits, 128);

    static const uint8_t zero[16] = {0};
    c = cidr("::/0");
    assert_memory_equal(c.addr, zero, 16);
    assert_int_equal(c.bits, 0);

    /* Upper-case hex and an uncompressed spelling parse to the same bytes. */
    tg_cidr_t a = cidr("2001:DB8:0:0:0:0:0:0/32"), b = cidr("2001:db8::/32");
    assert_memory_equal(&a, &b, sizeof a);
}

/* An IPv4-mapped IPv6 CIDR is the same rule as its IPv4 spelling. */
static void test_parse_mapped(void **state)
{
    (void)state;
    tg_cidr_t a = cidr("::ffff:10.0.0.0/104"), b = cidr("10.0.0.0/8");
    assert_memory_equal(&a, &b, sizeof a);
    a = cidr("::ffff:192.0.2.7");
    b = cidr("192.0.2.7");
    assert_memory_equal(&a, &b, sizeof a);
}

static void test_parse_errors(void **state)
{
    (void)state;
    assert_parse_error("", "\"\" is empty (expected an address or CIDR such as 10.0.0.0/8)");
    assert_parse_error(NULL, "\"\" is empty (expected an address or CIDR such as 10.0.0.0/8)");
    assert_parse_error("10.0.0.1/8", "\"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)");
    assert_parse_error("192.168.1.77/20",
                       "\"192.168.1.77/20\" has host bits set (did you mean 192.168.0.0/20?)");
    assert_parse_error("1.2.3.4/0", "\"1.2.3.4/0\" has host bits set (did you mean 0.0.0.0/0?)");
    assert_parse_error("2001:db8::1/32",
                       "\"2001:db8::1/32\" has host bits set (did you mean 2001:db8::/32?)");
    assert_parse_error("::ffff:10.0.0.1/104", "\"::ffff:10.0.0.1/104\" has host bits set (did "
                                              "you mean ::ffff:10.0.0.0/104?)");
    assert_parse_error("::1/0", "\"::1/0\" has host bits set (did you mean ::/0?)");

    assert_parse_error("10.0.0.0/33",
                       "\"10.0.0.0/33\" has prefix length 33, out of range for IPv4 (0..32)");
    assert_parse_error("2001:db8::/129",
                       "\"2001:db8::/129\" has prefix length 129, out of range for IPv6 (0..128)");
    assert_parse_error("10.0.0.0/99999999999999999999",
                       "\"10.0.0.0/99999999999999999999\" has prefix length 999999999999..., out "
                       "of range for IPv4 (0..32)");

    assert_parse_error("10.0.0.0/", "\"10.0.0.0/\" has no prefix length after '/'");
    assert_parse_error("/8", "\"/8\" has no address before '/'");
    assert_parse_error("10.0.0.0/x",
                       "\"10.0.0.0/x\" has a bad prefix length \"x\" (expected 0..32)");
    assert_parse_error("10.0.0.0/-8",
                       "\"10.0.0.0/-8\" has a bad prefix length \"-8\" (expected 0..32)");
    assert_parse_error("10.0.0.0/+8",
                       "\"10.0.0.0/+8\" has a bad prefix length \"+8\" (expected 0..32)");
    assert_parse_error("10.0.0.0/08",
                       "\"10.0.0.0/08\" has a bad prefix length \"08\" (expected 0..32)");
    assert_parse_error("10.0.0.0/8/8",
                       "\"10.0.0.0/8/8\" has a bad prefix length \"8/8\" (expected 0..32)");
    assert_parse_error("::/1a", "\"::/1a\" has a bad prefix length \"1a\" (expected 0..128)");

    assert_parse_error("10.0.0.300", "\"10.0.0.300\" is not an IPv4 or IPv6 address");
    assert_parse_error("10.0.0", "\"10.0.0\" is not an IPv4 or IPv6 address");
    assert_parse_error("010.0.0.1", "\"010.0.0.1\" is not an IPv4 or IPv6 address");
    assert_parse_error("example.com", "\"example.com\" is not an IPv4 or IPv6 address");
    assert_parse_error("fe80::1%eth0", "\"fe80::1%eth0\" is not an IPv4 or IPv6 address");
    assert_parse_error("1:2:3:4:5:6:7:8:9", "\"1:2:3:4:5:6:7:8:9\" is not an IPv4 or IPv6 address");
    assert_parse_error("10.0.0.300/8",
                       "\"10.0.0.300/8\": \"10.0.0.300\" is not an IPv4 or IPv6 address");
    assert_parse_error("[::1]/128", "\"[::1]/128\": \"[::1]\" is not an IPv4 or IPv6 address");

    assert_parse_error(" 10.0.0.0/8", "\" 10.0.0.0/8\" contains whitespace");
    assert_parse_error("10.0.0.0/8 ", "\"10.0.0.0/8 \" contains whitespace");
    assert_parse_error("10.0.0.0 /8", "\"10.0.0.0 /8\" contains whitespace");
    assert_parse_error("10.0.0.0/8\n", "\"10.0.0.0/8\\n\" contains whitespace");
    assert_parse_error("\t::1", "\"\\t::1\" contains whitespace");
    assert_parse_error(" ", "\" \" contains whitespace");

    /* Control bytes and quotes are escaped, long inputs cut, in messages. */
    assert_parse_error("a\"b\x01", "\"a\\\"b\\x01\" is not an IPv4 or IPv6 address");
    char long_in[200];
    memset(long_in, '1', sizeof long_in - 1);
    long_in[sizeof long_in - 1] = '\0';
    char want[256];
    snprintf(want, sizeof want, "\"%.64s...\" is not an IPv4 or IPv6 address", long_in);
    assert_parse_error(long_in, want);
}

static void test_ip_parse(void **state)
{
    (void)state;
    tg_ip_t a, b;
    /* A slice: the bytes after len are not part of it. */
    const char *hdr = "192.0.2.7, 10.0.0.1";
    assert_int_equal(tg_ip_parse(hdr, 9, &a), 0);
    b = ip("192.0.2.7");
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(tg_ip_parse("2001:db8::1xyz", 11, &a), 0);
    b = ip("2001:db8::1");
    assert_memory_equal(&a, &b, sizeof a);

    /* The mapped spelling gives the same bytes as the dotted one. */
    a = ip("::ffff:192.0.2.7");
    b = ip("192.0.2.7");
    assert_memory_equal(&a, &b, sizeof a);

    static const char *const bad[] = {
        "",      " 192.0.2.7", "192.0.2.7 ", "192.0.2.7/32", "192.0.2.7:80",
        "[::1]", "::1%lo",     "unknown",    "1.2.3",        "256.0.0.1",
        "::g",   "-",          "1.2.3.4.5",  "::1::2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&a, 0x5a, sizeof a);
        tg_ip_t before = a;
        if (tg_ip_parse(bad[i], strlen(bad[i]), &a) != -1) fail_msg("accepted \"%s\"", bad[i]);
        assert_memory_equal(&a, &before, sizeof a);
    }
    assert_int_equal(tg_ip_parse(NULL, 3, &a), -1);
    assert_int_equal(tg_ip_parse("::1", 0, &a), -1);
    /* An embedded NUL must not let "1.2.3.4\0junk" pass as 1.2.3.4. */
    assert_int_equal(tg_ip_parse("1.2.3.4\0junk", 12, &a), -1);
    char longs[300];
    memset(longs, '1', sizeof longs);
    assert_int_equal(tg_ip_parse(longs, sizeof longs, &a), -1);
    /* The longest valid text, 45 bytes. */
    const char *lng = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    assert_int_equal(strlen(lng), 45);
    assert_int_equal(tg_ip_parse(lng, strlen(lng), &a), 0);
}

static void test_match_edges(void **state)
{
    (void)state;
    /* /0: IPv4 0/0 is every IPv4 address and no IPv6 one; ::/0 is everything. */
    assert_true(matches("0.0.0.0/0", "0.0.0.0"));
    assert_true(matches("0.0.0.0/0", "255.255.255.255"));
    assert_true(matches("0.0.0.0/0", "::ffff:1.2.3.4"));
    assert_false(matches("0.0.0.0/0", "::1"));
    assert_false(matches("0.0.0.0/0", "2001:db8::1"));
    assert_false(matches("0.0.0.0/0", "::"));
    assert_true(matches("::/0", "::"));
    assert_true(matches("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_true(matches("::/0", "192.0.2.7")); /* documented: mapped space is inside ::/0 */

    /* /32 and /128 are single addresses. */
    assert_true(matches("192.0.2.7/32", "192.0.2.7"));
    assert_false(matches("192.0.2.7/32", "192.0.2.6"));
    assert_false(matches("192.0.2.7/32", "192.0.2.8"));
    assert_true(matches("192.0.2.7", "::ffff:192.0.2.7"));
    assert_true(matches("2001:db8::1/128", "2001:db8::1"));
    assert_false(matches("2001:db8::1/128", "2001:db8::"));
    assert_false(matches("2001:db8::1/128", "2001:db8::3"));
    assert_false(matches("::1", "::"));

    /* Prefixes ending inside a byte. */
    assert_true(matches("10.0.0.0/9", "10.127.255.255"));
    assert_false(matches("10.0.0.0/9", "10.128.0.0"));
    assert_true(matches("10.128.0.0/9", "10.128.0.0"));
    assert_true(matches("192.168.0.0/23", "192.168.1.255"));
    assert_false(matches("192.168.0.0/23", "192.168.2.0"));
    assert_true(matches("128.0.0.0/1", "200.1.2.3"));
    assert_false(matches("128.0.0.0/1", "127.255.255.255"));
    assert_true(matches("0.0.0.0/1", "127.255.255.255"));
    assert_true(matches("192.0.2.6/31", "192.0.2.7"));
    assert_false(matches("192.0.2.6/31", "192.0.2.8"));
    assert_true(matches("2001:db8::/127", "2001:db8::1"));
    assert_false(matches("2001:db8::/127", "2001:db8::2"));
    assert_true(matches("8000::/1", "ffff::"));
    assert_false(matches("8000::/1", "7fff::"));
    assert_true(matches("2001:db8:8000::/33", "2001:db8:ffff::1"));
    assert_false(matches("2001:db8:8000::/33", "2001:db8:7fff::1"));
    assert_true(matches("fe80::/10", "febf::1"));
    assert_false(matches("fe80::/10", "fec0::1"));

    /* Whole-byte prefixes. */
    assert_true(matches("10.0.0.0/8", "10.255.0.1"));
    assert_false(matches("10.0.0.0/8", "11.0.0.0"));
    assert_false(matches("10.0.0.0/8", "9.255.255.255"));
    assert_true(matches("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(matches("2001:db8::/32", "2001:db9::"));

    /* IPv4 rules never match IPv6 addresses whose last 32 bits look alike. */
    assert_false(matches("10.0.0.0/8", "::10.0.0.1"));
    assert_false(matches("10.0.0.0/8", "64:ff9b::10.0.0.1"));

    /* A hand-made rule with bits > 128 behaves as /128; NULLs never match. */
    tg_cidr_t c = cidr("::1");
    c.bits = 200;
    tg_ip_t a = ip("::1");
    assert_true(tg_cidr_match(&c, &a));
    assert_false(tg_cidr_match(NULL, &a));
    assert_false(tg_cidr_match(&c, NULL));
}

/* A v4 rule catches a client that reached a dual-stack socket as ::ffff:a.b.c.d
 * and a v6-mapped rule catches a plain v4 client. */
static void test_mapped_matching(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "::ffff:10.1.2.3"));
    assert_true(matches("::ffff:10.0.0.0/104", "10.1.2.3"));
    assert_false(matches("10.0.0.0/8", "::ffff:11.1.2.3"));
    static const char *const deny[] = {"203.0.113.0/24", NULL};
    tg_cidr_list_t d = list_of(deny);
    tg_ip_t a = ip("::ffff:203.0.113.9");
    assert_true(tg_cidr_list_match(&d, &a));
    tg_cidr_list_free(&d);
}

static void test_list_grow_and_free(void **state)
{
    (void)state;
    tg_cidr_list_t l = {0};
    assert_false(tg_cidr_list_match(&l, &(tg_ip_t){{0}}));
    assert_false(tg_cidr_list_match(NULL, &(tg_ip_t){{0}}));
    char s[32];
    for (int i = 0; i < 300; i++) {
        snprintf(s, sizeof s, "10.%d.%d.0/24", i / 256, i % 256);
        tg_cidr_t c = cidr(s);
        assert_int_equal(tg_cidr_list_add(&l, &c), 0);
        assert_int_equal(l.n, (size_t)i + 1);
    }
    /* Every entry survived the reallocations. */
    for (int i = 0; i < 300; i++) {
        snprintf(s, sizeof s, "10.%d.%d.0/24", i / 256, i % 256);
        tg_cidr_t c = cidr(s);
        assert_memory_equal(&l.items[i], &c, sizeof c);
    }
    tg_ip_t in = ip("10.1.43.9"), out = ip("10.1.44.9");
    assert_true(tg_cidr_list_match(&l, &in));
    assert_false(tg_cidr_list_match(&l, &out));
    tg_cidr_list_free(&l);
    assert_null(l.items);
    assert_int_equal(l.n, 0);
    tg_cidr_list_free(&l); /* twice is harmless */
    tg_cidr_list_free(NULL);
    assert_int_equal(tg_cidr_list_add(NULL, &(tg_cidr_t){{0}, 0}), -1);
    assert_int_equal(tg_cidr_list_add(&l, NULL), -1);
}

static void test_format(void **state)
{
    (void)state;
    static const char *const same[] = {
        "192.0.2.7",
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.1",
        "::1",
        "::",
        "2001:db8::1",
        "fe80::1:2:3:4",
        "2001:db8:0:1:1:1:1:1",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    };
    char buf[46];
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        tg_ip_t a = ip(same[i]), b;
        tg_ip_format(&a, buf, sizeof buf);
        assert_string_equal(buf, same[i]);
        /* and back */
        assert_int_equal(tg_ip_parse(buf, strlen(buf), &b), 0);
        assert_memory_equal(&a, &b, sizeof a);
    }
    /* Canonical forms: mapped as dotted IPv4, v6 lower-case and compressed. */
    static const char *const canon[][2] = {
        {"::ffff:192.0.2.7", "192.0.2.7"},
        {"::FFFF:10.0.0.1", "10.0.0.1"},
        {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
        {"2001:0db8::0001", "2001:db8::1"},
        {"0:0:0:0:0:0:0:0", "::"},
    };
    for (size_t i = 0; i < sizeof canon / sizeof *canon; i++) {
        tg_ip_t a = ip(canon[i][0]);
        tg_ip_format(&a, buf, sizeof buf);
        assert_string_equal(buf, canon[i][1]);
    }
    /* The longest text fits the documented 46 bytes. */
    tg_ip_t a = ip("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    tg_ip_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    /* A short buffer is truncated and terminated, never overrun. */
    char small[6];
    memset(small, 'x', sizeof small);
    a = ip("192.0.2.7");
    tg_ip_format(&a, small, sizeof small);
    assert_string_equal(small, "192.0");
    tg_ip_format(&a, small, 0); /* no write at all */
    assert_string_equal(small, "192.0");
}

/* The spelling the IP rules store: one per network however it was typed. */
static void test_cidr_format(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"10.0.0.0/8", "10.0.0.0/8"},
        {"192.0.2.7", "192.0.2.7/32"},
        {"0.0.0.0/0", "0.0.0.0/0"},
        {"::ffff:10.0.0.0/104", "10.0.0.0/8"},
        {"2001:DB8::/32", "2001:db8::/32"},
        {"::1", "::1/128"},
        {"::/0", "::/0"},
        {"::/96", "::/96"},
    };
    char buf[50];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tg_cidr_t c, back;
        tg_err_t err = {{0}};
        assert_int_equal(tg_cidr_parse(cases[i][0], &c, &err), 0);
        tg_cidr_format(&c, buf, sizeof buf);
        assert_string_equal(buf, cases[i][1]);
        assert_int_equal(tg_cidr_parse(buf, &back, &err), 0);
        assert_memory_equal(&c, &back, sizeof c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_v4),        cmocka_unit_test(test_parse_v6),
        cmocka_unit_test(test_parse_mapped),    cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_ip_parse),        cmocka_unit_test(test_match_edges),
        cmocka_unit_test(test_mapped_matching), cmocka_unit_test(test_list_grow_and_free),
        cmocka_unit_test(test_format),          cmocka_unit_test(test_cidr_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
