/* Addresses and CIDRs (cidr.h): every address, IPv4 or IPv6, is held in one 16-byte
 * form, IPv4 as the IPv4-mapped ::ffff:a.b.c.d with its prefix length + 96, so
 * a single 128-bit prefix compare serves both families and an IPv4 client that
 * reaches a dual-stack socket as ::ffff:a.b.c.d meets the IPv4 rules. The cost
 * of that choice: an IPv6 rule that covers ::ffff:0:0/96 (::/0, for one) also
 * covers every IPv4 address. Lists are a few entries, so matching is a linear
 * scan; nothing here allocates except tg_cidr_list_add, and every function is
 * safe to call from many threads on lists that are no longer being built. */
#include "types/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest address text inet_pton can accept, plus room to see that an input
 * is longer: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 bytes. */
#define ADDR_TEXT_MAX 64

/* How much of a rejected input an error message repeats. */
#define QUOTE_MAX 64

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_v4_mapped(const uint8_t a[16])
{
    return memcmp(a, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Parses a NUL-terminated bare address into the 16-byte form. *v4 says which
 * text family it was written in (an IPv4-mapped IPv6 text counts as IPv6). */
static int parse_addr(const char *s, uint8_t out[16], int *v4)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memcpy(out, v4_mapped_prefix, sizeof v4_mapped_prefix);
        memcpy(out + 12, &a4, 4);
        *v4 = 1;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *v4 = 0;
        return 0;
    }
    return -1;
}

/* Writes the n bytes at s into dst as a C-style quoted string, escaping what
 * would not print and cutting it at QUOTE_MAX bytes, so a message never carries
 * raw control characters from a config file or the store. */
#define QUOTED_CAP (QUOTE_MAX * 4 + 8)
static void quote(const char *s, size_t n, char dst[QUOTED_CAP])
{
    size_t o = 0, i;
    dst[o++] = '"';
    for (i = 0; i < n && i < QUOTE_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = ch == '"'    ? "\\\""
                          : ch == '\\' ? "\\\\"
                          : ch == '\t' ? "\\t"
                          : ch == '\n' ? "\\n"
                          : ch == '\r' ? "\\r"
                                       : NULL;
        if (esc) {
            memcpy(dst + o, esc, 2);
            o += 2;
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += (size_t)snprintf(dst + o, QUOTED_CAP - o, "\\x%02x", ch);
        } else {
            dst[o++] = (char)ch;
        }
    }
    if (i < n) {
        memcpy(dst + o, "...", sizeof "..." - 1);
        o += 3;
    }
    dst[o++] = '"';
    dst[o] = '\0';
}

/* Clears the bits of a beyond the first `bits`. */
static void mask_to_prefix(uint8_t a[16], unsigned bits)
{
    unsigned whole = bits / 8, rem = bits % 8;
    if (whole >= 16) return;
    if (rem) a[whole++] &= (uint8_t)(0xff00u >> rem);
    memset(a + whole, 0, 16 - whole);
}

/* Formats a 16-byte address in the family it was written in: v4 as dotted
 * quad even when the bytes are mapped, v6 by inet_ntop's canonical rules. */
static void format_addr(const uint8_t a[16], int v4, char *buf, size_t cap)
{
    char tmp[INET6_ADDRSTRLEN];
    const char *ok =
        v4 ? inet_ntop(AF_INET, a + 12, tmp, sizeof tmp) : inet_ntop(AF_INET6, a, tmp, sizeof tmp);
    snprintf(buf, cap, "%s", ok ? tmp : "?");
}

/* Prefix length text: decimal, no sign, no leading zeros (inet_pton refuses
 * "010" in an address, so "/08" is refused too). Returns the value, capped at
 * 1000 so that a long run of digits cannot overflow, or -1 when malformed. */
static int parse_bits(const char *p)
{
    int v = 0;
    if (!*p || (p[0] == '0' && p[1])) return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v < 1000) v = v * 10 + (*p - '0');
    }
    return v > 1000 ? 1000 : v;
}

int tg_cidr_parse(const char *s, tg_cidr_t *out, tg_err_t *err)
{
    char q[QUOTED_CAP];
    if (!s || !*s)
        return tg_err_set(err, "\"\" is empty (expected an address or CIDR such as 10.0.0.0/8)");
    quote(s, strlen(s), q);
    for (const char *p = s; *p; p++)
        if (is_space(*p)) return tg_err_set(err, "%s contains whitespace", q);

    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0) return tg_err_set(err, "%s has no address before '/'", q);

    char a[ADDR_TEXT_MAX];
    tg_cidr_t c;
    int v4 = 0;
    int bad = alen >= sizeof a;
    if (!bad) {
        memcpy(a, s, alen);
        a[alen] = '\0';
        bad = parse_addr(a, c.addr, &v4) != 0;
    }
    if (bad && !slash) return tg_err_set(err, "%s is not an IPv4 or IPv6 address", q);
    if (bad) {
        char qa[QUOTED_CAP];
        quote(s, alen, qa);
        return tg_err_set(err, "%s: %s is not an IPv4 or IPv6 address", q, qa);
    }

    int max = v4 ? 32 : 128;
    int bits = max;
    if (slash) {
        if (!slash[1]) return tg_err_set(err, "%s has no prefix length after '/'", q);
        bits = parse_bits(slash + 1);
        if (bits < 0) {
            char qb[QUOTED_CAP];
            quote(slash + 1, strlen(slash + 1), qb);
            return tg_err_set(err, "%s has a bad prefix length %s (expected 0..%d)", q, qb, max);
        }
        if (bits > max)
            return tg_err_set(err, "%s has prefix length %.12s%s, out of range for %s (0..%d)", q,
                              slash + 1, strlen(slash + 1) > 12 ? "..." : "", v4 ? "IPv4" : "IPv6",
                              max);
    }
    c.bits = (uint8_t)(v4 ? bits + 96 : bits);

    uint8_t net[16];
    memcpy(net, c.addr, 16);
    mask_to_prefix(net, c.bits);
    if (memcmp(net, c.addr, 16) != 0) {
        char n[INET6_ADDRSTRLEN];
        format_addr(net, v4, n, sizeof n);
        return tg_err_set(err, "%s has host bits set (did you mean %s/%d?)", q, n, bits);
    }
    *out = c;
    return 0;
}

/* The slice is not NUL-terminated and comes from a request header, so it is
 * copied into a bounded buffer; an embedded NUL would make inet_pton read a
 * prefix of the slice as the whole, so it is refused outright. */
int tg_ip_parse(const char *s, size_t len, tg_ip_t *out)
{
    char a[ADDR_TEXT_MAX];
    int v4;
    tg_ip_t ip;
    if (!s || len == 0 || len >= sizeof a || memchr(s, '\0', len)) return -1;
    memcpy(a, s, len);
    a[len] = '\0';
    if (parse_addr(a, ip.addr, &v4) != 0) return -1;
    *out = ip;
    return 0;
}

/* Whole bytes by memcmp, then the one partial byte under a mask: at most two
 * steps per rule whatever the prefix length. A bits value over 128 (only a
 * hand-made tg_cidr_t can have one) is read as 128. */
int tg_cidr_match(const tg_cidr_t *c, const tg_ip_t *ip)
{
    if (!c || !ip) return 0;
    unsigned bits = c->bits > 128 ? 128 : c->bits;
    unsigned whole = bits / 8, rem = bits % 8;
    if (memcmp(c->addr, ip->addr, whole) != 0) return 0;
    if (!rem) return 1;
    uint8_t mask = (uint8_t)(0xff00u >> rem);
    return ((c->addr[whole] ^ ip->addr[whole]) & mask) == 0;
}

int tg_cidr_list_match(const tg_cidr_list_t *l, const tg_ip_t *ip)
{
    if (!l) return 0;
    for (size_t i = 0; i < l->n; i++)
        if (tg_cidr_match(&l->items[i], ip)) return 1;
    return 0;
}

/* The list keeps no capacity field, so capacity is implied by n: 4 slots up to
 * 4 entries, then the next power of two. That holds as long as the list only
 * ever grows through this function from a zeroed tg_cidr_list_t. */
int tg_cidr_list_add(tg_cidr_list_t *l, const tg_cidr_t *c)
{
    if (!l || !c) return -1;
    size_t n = l->n;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n == 0 ? 4 : n * 2;
        if (cap > SIZE_MAX / sizeof *l->items) return -1;
        tg_cidr_t *items = realloc(l->items, cap * sizeof *items);
        if (!items) return -1;
        l->items = items;
    }
    l->items[l->n++] = *c;
    return 0;
}

void tg_cidr_list_free(tg_cidr_list_t *l)
{
    if (!l) return;
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void tg_ip_format(const tg_ip_t *ip, char *buf, size_t cap)
{
    if (!buf || cap == 0) return;
    format_addr(ip->addr, is_v4_mapped(ip->addr), buf, cap);
}

/* tg_cidr_t holds IPv4 as ::ffff:a.b.c.d with the prefix + 96: such a prefix prints as a
 * dotted quad with IPv4's count. (A prefix under 96 never has the mapped form: tg_cidr_parse
 * refuses host bits past the prefix.) */
void tg_cidr_format(const tg_cidr_t *c, char *buf, size_t cap)
{
    if (!buf || cap == 0) return;
    char addr[INET6_ADDRSTRLEN];
    int v4 = is_v4_mapped(c->addr) && c->bits >= 96;
    format_addr(c->addr, v4, addr, sizeof addr);
    snprintf(buf, cap, "%s/%d", addr, v4 ? c->bits - 96 : c->bits);
}
