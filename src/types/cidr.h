/* Addresses and CIDR prefixes, IPv4 and IPv6, as values: parsed (inet_pton), matched,
 * listed and printed. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4. Used by the
 * config (server.trusted_proxies), the IP rules (policy/iprules.h), the gateway (the
 * client address) and the CLI (`tollgate ip`), so it sits below all of them. */
#ifndef TG_TYPES_CIDR_H
#define TG_TYPES_CIDR_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct tg_cidr {
    uint8_t addr[16]; /* IPv4 stored as ::ffff:a.b.c.d */
    uint8_t bits;     /* prefix length over the 128-bit form */
} tg_cidr_t;

typedef struct tg_cidr_list {
    tg_cidr_t *items;
    size_t n;
} tg_cidr_list_t;

typedef struct tg_ip {
    uint8_t addr[16]; /* as above */
} tg_ip_t;

/* "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" (a /32), "::1" (a /128).
 * Host bits set beyond the prefix are an error ("10.0.0.1/8"). */
int tg_cidr_parse(const char *s, tg_cidr_t *out, tg_err_t *err);
/* A bare address (no prefix). */
int tg_ip_parse(const char *s, size_t len, tg_ip_t *out);
int tg_cidr_match(const tg_cidr_t *c, const tg_ip_t *ip);
int tg_cidr_list_match(const tg_cidr_list_t *l, const tg_ip_t *ip);
/* Appends a parsed CIDR (grows the list). */
int tg_cidr_list_add(tg_cidr_list_t *l, const tg_cidr_t *c);
void tg_cidr_list_free(tg_cidr_list_t *l);

/* Printable form ("192.0.2.7" or "2001:db8::1"); buf of 46 bytes. */
void tg_ip_format(const tg_ip_t *ip, char *buf, size_t cap);
/* The one spelling of a CIDR the IP rules store ("10.0.0.0/8", "2001:db8::/32", a bare
 * address as /32 or /128), so that a rule is found however it was typed; buf of 50 bytes. */
void tg_cidr_format(const tg_cidr_t *c, char *buf, size_t cap);

#endif
