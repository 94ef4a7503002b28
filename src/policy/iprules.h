/* IP rules: allow and deny lists of IPv4/IPv6 CIDRs. Deny wins; when an allow
 * list is present, an address must match it. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are matched as IPv4. The client address is the socket peer,
 * or, when the peer is a configured trusted proxy, the right-most address of
 * X-Forwarded-For that is not itself a trusted proxy. */
#ifndef TG_POLICY_IPRULES_H
#define TG_POLICY_IPRULES_H

#include <stddef.h>

#include "types/cidr.h"

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

#endif
