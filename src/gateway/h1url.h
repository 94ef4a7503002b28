/* An upstream URL as the native client needs it: which pool (the
 * "scheme://authority" prefix), where to connect (name and port), what to put
 * in the Host header and what to check the certificate against. Pure
 * functions, no I/O, so the parsing is unit-tested without sockets.
 *
 * The Host header is what libcurl sends for the same URL: the authority as
 * written, IPv6 literals in brackets, the port left out when it is the
 * scheme's default (80, 443). */
#ifndef TG_GATEWAY_H1URL_H
#define TG_GATEWAY_H1URL_H

#include <stddef.h>

typedef struct tg_h1url {
    int tls;           /* https:// */
    size_t target_len; /* length of the "scheme://authority" prefix (the pool key) */
    const char *path;  /* into the URL: the rest, "/" when there is none */
    char name[256];    /* host for DNS, SNI and the certificate check: no brackets */
    int numeric;       /* name is an IPv4 or IPv6 literal (no SNI, IP check) */
    int port;
    char host[264]; /* the Host header value */
} tg_h1url_t;

/* 0, or -1 when the URL is not http:// or https:// with a usable host and port
 * (the caller then leaves it to libcurl). */
int tg_h1url_parse(const char *url, tg_h1url_t *u);

/* The length of the "scheme://authority" prefix of url (up to the first '/',
 * '?' after the scheme, or the end), 0 when url has no "://". */
size_t tg_h1url_target_len(const char *url);

#endif
