/* Resolved upstream addresses: see h1dns.h. */
#include "gateway/h1dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

int tg_h1dns_fresh(const tg_h1dns_t *d, int64_t now_us)
{
    if (d->n == 0) return 0;
    if (d->fixed) return 1;
    /* A clock that went backwards is not a reason to trust the entry for longer. */
    return now_us >= d->at_us && now_us - d->at_us < TG_H1DNS_TTL_US;
}

size_t tg_h1dns_set(tg_h1dns_t *d, const struct addrinfo *ai, int port, int64_t now_us)
{
    size_t n = 0;
    struct sockaddr_storage tmp[TG_H1DNS_MAX];
    for (; ai && n < TG_H1DNS_MAX; ai = ai->ai_next) {
        struct sockaddr_storage a;
        memset(&a, 0, sizeof a);
        if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
            memcpy(s4, ai->ai_addr, sizeof *s4);
            s4->sin_port = htons((uint16_t)port);
        } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
            memcpy(s6, ai->ai_addr, sizeof *s6);
            s6->sin6_port = htons((uint16_t)port);
        } else {
            continue;
        }
        int dup = 0;
        for (size_t i = 0; i < n && !dup; i++)
            dup = memcmp(&tmp[i], &a, sizeof a) == 0;
        if (!dup) tmp[n++] = a;
    }
    if (n == 0) return 0;
    memcpy(d->addr, tmp, n * sizeof *tmp);
    d->n = n;
    d->at_us = now_us;
    d->fixed = 0;
    return n;
}

int tg_h1dns_literal(tg_h1dns_t *d, const char *ip, int port)
{
    memset(d, 0, sizeof *d);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&d->addr[0];
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&d->addr[0];
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        memset(s6, 0, sizeof *s6);
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    } else {
        return -1;
    }
    d->n = 1;
    d->fixed = 1;
    return 0;
}
