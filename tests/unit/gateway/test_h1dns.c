/* Tests src/gateway/h1dns.c: a pool's resolved addresses and when they go
 * stale. Instants are fixed values: nothing sleeps or reads the clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "gateway/h1dns.h"

static void test_fresh_until_ttl(void **state)
{
    (void)state;
    tg_h1dns_t d;
    memset(&d, 0, sizeof d);
    assert_int_equal(tg_h1dns_fresh(&d, 1000), 0); /* nothing resolved */
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.7", &a.sin_addr);
    struct addrinfo ai = {.ai_family = AF_INET, .ai_addrlen = sizeof a, .ai_addr = (void *)&a};
    const int64_t t0 = 5000000000LL;
    assert_int_equal(tg_h1dns_set(&d, &ai, 443, t0), 1);
    assert_int_equal(tg_h1dns_fresh(&d, t0), 1);
    assert_int_equal(tg_h1dns_fresh(&d, t0 + TG_H1DNS_TTL_US - 1), 1);
    assert_int_equal(tg_h1dns_fresh(&d, t0 + TG_H1DNS_TTL_US), 0);
    assert_int_equal(tg_h1dns_fresh(&d, t0 - 1), 0); /* an instant before it: not trusted */
    const struct sockaddr_in *got = (const struct sockaddr_in *)&d.addr[0];
    assert_int_equal(ntohs(got->sin_port), 443);
    assert_memory_equal(&got->sin_addr, &a.sin_addr, sizeof a.sin_addr);
    /* resolved again later: fresh from then on */
    assert_int_equal(tg_h1dns_set(&d, &ai, 443, t0 + TG_H1DNS_TTL_US), 1);
    assert_int_equal(tg_h1dns_fresh(&d, t0 + TG_H1DNS_TTL_US + 1), 1);
}

static void test_literal_never_stale(void **state)
{
    (void)state;
    tg_h1dns_t d;
    assert_int_equal(tg_h1dns_literal(&d, "127.0.0.1", 8080), 0);
    assert_int_equal(tg_h1dns_fresh(&d, 0), 1);
    assert_int_equal(tg_h1dns_fresh(&d, INT64_MAX), 1);
    assert_int_equal(((struct sockaddr_in *)&d.addr[0])->sin_family, AF_INET);
    assert_int_equal(tg_h1dns_literal(&d, "::1", 443), 0);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&d.addr[0];
    assert_int_equal(s6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(s6->sin6_port), 443);
    assert_int_equal(tg_h1dns_literal(&d, "example.com", 443), -1);
}

static void test_order_dups_cap(void **state)
{
    (void)state;
    /* 13 answers in this order: a v6, a v4, the same v4 again, nine more v4, and one that
     * is not an IP address (skipped). Kept: the v6 and the first 7 distinct v4. */
    struct sockaddr_in v4[10];
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::5", &v6.sin6_addr);
    struct addrinfo ai[13];
    memset(ai, 0, sizeof ai);
    ai[0] =
        (struct addrinfo){.ai_family = AF_INET6, .ai_addrlen = sizeof v6, .ai_addr = (void *)&v6};
    for (int i = 0; i < 10; i++)
        v4[i] =
            (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(0xC0000201 + i)};
    int k = 1;
    ai[k++] = (struct addrinfo){
        .ai_family = AF_INET, .ai_addrlen = sizeof v4[0], .ai_addr = (void *)&v4[0]};
    ai[k++] = (struct addrinfo){
        .ai_family = AF_INET, .ai_addrlen = sizeof v4[0], .ai_addr = (void *)&v4[0]};
    for (int i = 1; i < 10; i++)
        ai[k++] = (struct addrinfo){
            .ai_family = AF_INET, .ai_addrlen = sizeof v4[i], .ai_addr = (void *)&v4[i]};
    ai[k++] = (struct addrinfo){.ai_family = AF_UNIX};
    assert_int_equal(k, 13);
    for (int i = 0; i < 12; i++)
        ai[i].ai_next = &ai[i + 1];
    tg_h1dns_t d;
    memset(&d, 0, sizeof d);
    assert_int_equal(tg_h1dns_set(&d, ai, 80, 1), TG_H1DNS_MAX);
    assert_int_equal(d.addr[0].ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&d.addr[0])->sin6_port), 80);
    for (size_t i = 1; i < TG_H1DNS_MAX; i++) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&d.addr[i];
        assert_int_equal(s->sin_family, AF_INET);
        assert_int_equal(ntohs(s->sin_port), 80);
        assert_int_equal(ntohl(s->sin_addr.s_addr), 0xC0000201 + (i - 1)); /* order kept */
    }
    /* no usable address: the entry stays as it was */
    struct addrinfo unix_only = {.ai_family = AF_UNIX};
    assert_int_equal(tg_h1dns_set(&d, &unix_only, 80, 99), 0);
    assert_int_equal(d.n, TG_H1DNS_MAX);
    assert_int_equal(d.at_us, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_until_ttl),
        cmocka_unit_test(test_literal_never_stale),
        cmocka_unit_test(test_order_dups_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
