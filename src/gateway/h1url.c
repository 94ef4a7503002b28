/* Upstream URLs for the native client: see h1url.h. */
#include "gateway/h1url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

size_t tg_h1url_target_len(const char *url)
{
    const char *s = strstr(url, "://");
    if (!s) return 0;
    s += 3;
    return (size_t)(s - url) + strcspn(s, "/?#");
}

/* A host name's bytes: letters, digits, '-', '.', '_' (what resolvers take; anything else,
 * percent-escapes and IDN included, stays with libcurl). */
static int name_ok(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_'))
            return 0;
    }
    return 1;
}

int tg_h1url_parse(const char *url, tg_h1url_t *u)
{
    memset(u, 0, sizeof *u);
    size_t skip;
    if (strncmp(url, TG_LIT("http://")) == 0) {
        skip = TG_LIT_LEN("http://");
        u->port = 80;
    } else if (strncmp(url, TG_LIT("https://")) == 0) {
        skip = TG_LIT_LEN("https://");
        u->port = 443;
        u->tls = 1;
    } else {
        return -1;
    }
    const int defport = u->port;
    const char *auth = url + skip;
    size_t an = strcspn(auth, "/?#");
    if (auth[an] == '#') return -1;
    u->target_len = skip + an;
    u->path = auth[an] == '/' ? auth + an : "/";
    if (auth[an] == '?') return -1; /* "http://h?q": leave such oddities to libcurl */

    const char *nm, *portp = NULL;
    size_t nl;
    if (an > 0 && auth[0] == '[') {
        const char *rb = memchr(auth, ']', an);
        if (!rb) return -1;
        nm = auth + 1;
        nl = (size_t)(rb - nm);
        if (rb + 1 < auth + an) {
            if (rb[1] != ':') return -1;
            portp = rb + 2;
        }
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (nl == 0 || nl >= sizeof tmp) return -1;
        memcpy(tmp, nm, nl);
        tmp[nl] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1) return -1;
        u->numeric = 1;
    } else {
        const char *colon = memchr(auth, ':', an);
        nm = auth;
        nl = colon ? (size_t)(colon - auth) : an;
        if (colon) portp = colon + 1;
        if (!name_ok(nm, nl)) return -1;
    }
    if (nl >= sizeof u->name) return -1;
    memcpy(u->name, nm, nl);
    u->name[nl] = '\0';
    if (portp) {
        const char *end = auth + an;
        if (portp == end || end - portp > 5) return -1;
        int port = 0;
        for (const char *q = portp; q < end; q++) {
            if (*q < '0' || *q > '9') return -1;
            port = port * 10 + (*q - '0');
        }
        if (port <= 0 || port > 65535) return -1;
        u->port = port;
    }
    if (!u->numeric) {
        struct in_addr a4;
        u->numeric = inet_pton(AF_INET, u->name, &a4) == 1;
    }
    /* Host: as written, without the default port (libcurl does the same). */
    size_t hl = portp && u->port != defport ? an : (portp ? (size_t)(portp - 1 - auth) : an);
    memcpy(u->host, auth, hl);
    u->host[hl] = '\0';
    return 0;
}
