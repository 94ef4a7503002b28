/* IP rules: allow and deny lists of IPv4/IPv6 CIDRs. Deny wins; when an allow
 * list is present, an address must match it. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are matched as IPv4. The client address is the socket peer,
 * or, when the peer is a configured trusted proxy, the right-most address of
 * X-Forwarded-For that is not itself a trusted proxy. */
#ifndef TG_POLICY_IPRULES_H
#define TG_POLICY_IPRULES_H

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

typedef enum {
    TG_IP_ALLOWED = 0,
    TG_IP_DENIED,     /* matched a deny rule */
    TG_IP_NOT_ALLOWED /* an allow list exists and did not match */
} tg_ip_verdict_t;

/* deny wins; an empty allow list allows all. */
tg_ip_verdict_t tg_ip_check(const tg_cidr_list_t *allow, const tg_cidr_list_t *deny,
                            const tg_ip_t *ip);

/* The client address: peer, unless peer is in trusted, then walk
 * X-Forwarded-For (xff, may be NULL) from the right, skipping trusted
 * entries; a malformed entry stops the walk at the last good address. */
void tg_ip_client(const tg_ip_t *peer, const char *xff, size_t xff_len,
                  const tg_cidr_list_t *trusted, tg_ip_t *out);

/* Printable form ("192.0.2.7" or "2001:db8::1"); buf of 46 bytes. */
void tg_ip_format(const tg_ip_t *ip, char *buf, size_t cap);

#endif
