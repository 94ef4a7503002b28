/* The addresses of one upstream host as the native client keeps them: the
 * result of one asynchronous resolve (uv_getaddrinfo on the worker's loop),
 * used for TG_H1DNS_TTL_US and then resolved again; a literal address never
 * goes stale. Time is an argument (monotonic microseconds), so staleness is
 * tested with fixed instants. */
#ifndef TG_GATEWAY_H1DNS_H
#define TG_GATEWAY_H1DNS_H

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* How long a resolved name is used before it is resolved again (libcurl's DNS cache
 * keeps entries 60 s; providers move edges behind short TTLs, so half of that). */
#define TG_H1DNS_TTL_US (30 * 1000000LL)
/* Addresses kept per name: the ones tried in turn when a connect fails. */
#define TG_H1DNS_MAX 8

typedef struct tg_h1dns {
    struct sockaddr_storage addr[TG_H1DNS_MAX];
    size_t n;      /* 0: nothing resolved (yet) */
    int64_t at_us; /* when it was resolved */
    int fixed;     /* a literal address: never stale */
} tg_h1dns_t;

/* 1 when the addresses can be used at now_us, 0 when a resolve is needed. */
int tg_h1dns_fresh(const tg_h1dns_t *d, int64_t now_us);

/* Keeps the TCP addresses of ai (IPv4 and IPv6, in its order, duplicates dropped, at most
 * TG_H1DNS_MAX) with port set, resolved at now_us; returns how many (0 leaves d empty). */
size_t tg_h1dns_set(tg_h1dns_t *d, const struct addrinfo *ai, int port, int64_t now_us);

/* A literal address (IPv4 or IPv6 text, no brackets): 0, or -1 when ip is not one. */
int tg_h1dns_literal(tg_h1dns_t *d, const char *ip, int port);

#endif
