/* IP rules (iprules.h): the verdict of allow and deny lists, and the client address behind
 * trusted proxies. The addresses and lists themselves are types/cidr.h's; nothing here
 * allocates. */
#include "policy/iprules.h"

#include <stddef.h>

tg_ip_verdict_t tg_ip_check(const tg_cidr_list_t *allow, const tg_cidr_list_t *deny,
                            const tg_ip_t *ip)
{
    if (tg_cidr_list_match(deny, ip)) return TG_IP_DENIED;
    if (allow && allow->n && !tg_cidr_list_match(allow, ip)) return TG_IP_NOT_ALLOWED;
    return TG_IP_ALLOWED;
}

/* X-Forwarded-For reads "client, proxy1, proxy2": each proxy appends the
 * address it received the request from, so only the entries added by our own
 * trusted proxies are believed, and those are at the right. Walking from the
 * right, the first address that is not a trusted proxy is the one a trusted
 * proxy saw connect; anything further left was written by that client and may
 * be forged. A malformed entry ends the walk at the last good address (which
 * may be the peer): we cannot tell who wrote what lies beyond it. Empty list
 * elements ("a,,b", a trailing comma) are skipped, as RFC 9110 5.6.1 asks of
 * list recipients; they carry no address to believe or doubt. */
void tg_ip_client(const tg_ip_t *peer, const char *xff, size_t xff_len,
                  const tg_cidr_list_t *trusted, tg_ip_t *out)
{
    *out = *peer;
    if (!xff || xff_len == 0 || !tg_cidr_list_match(trusted, peer)) return;
    size_t end = xff_len;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t b = start, e = end;
        while (b < e && (xff[b] == ' ' || xff[b] == '\t'))
            b++;
        while (e > b && (xff[e - 1] == ' ' || xff[e - 1] == '\t'))
            e--;
        if (e > b) {
            tg_ip_t ip;
            if (tg_ip_parse(xff + b, e - b, &ip) != 0) return;
            *out = ip;
            if (!tg_cidr_list_match(trusted, &ip)) return;
        }
        if (start == 0) return;
        end = start - 1;
    }
}
