/* The bodies of one call on their way to the store (bodies.h has the layout and the owner). */
#include "types/bodies.h"

#include <stdlib.h>
#include <string.h>

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Wipes n bytes so the compiler keeps the stores (the plain bodies are secrets at rest). */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

tg_bodies_t *tg_bodies_new(const void *in, size_t in_len, const void *out, size_t out_len,
                           uint32_t flags)
{
    tg_bodies_t *b = calloc(1, sizeof *b);
    size_t n = TG_BODIES_HEAD + in_len + out_len;
    if (!b || !(b->plain = malloc(n))) {
        free(b);
        return NULL;
    }
    memcpy(b->plain, "TGB\x01", 4);
    put_le(b->plain + 4, flags, 4);
    put_le(b->plain + 8, in_len, 8);
    put_le(b->plain + 16, out_len, 8);
    if (in_len) memcpy(b->plain + TG_BODIES_HEAD, in, in_len);
    if (out_len) memcpy(b->plain + TG_BODIES_HEAD + in_len, out, out_len);
    b->plain_len = n;
    b->flags = flags;
    return b;
}

void tg_bodies_free(tg_bodies_t *b)
{
    if (!b) return;
    if (b->plain) wipe(b->plain, b->plain_len);
    free(b->plain);
    free(b->sealed);
    free(b);
}

int tg_bodies_parse(const unsigned char *p, size_t n, uint32_t *flags, const unsigned char **in,
                    size_t *in_len, const unsigned char **out, size_t *out_len)
{
    if (n < TG_BODIES_HEAD || memcmp(p, "TGB\x01", 4) != 0) return -1;
    uint64_t a = get_le(p + 8, 8), b = get_le(p + 16, 8);
    if (a > n - TG_BODIES_HEAD || b != n - TG_BODIES_HEAD - a) return -1;
    *flags = (uint32_t)get_le(p + 4, 4);
    *in = p + TG_BODIES_HEAD;
    *in_len = (size_t)a;
    *out = p + TG_BODIES_HEAD + a;
    *out_len = (size_t)b;
    return 0;
}

size_t tg_bodies_aad(int64_t event_id, const char *tenant, unsigned char aad[TG_BODIES_AAD_MAX])
{
    static const char label[] = "tollgate audit bodies 1";
    size_t n = sizeof label; /* with its NUL: the label ends before the id */
    memcpy(aad, label, n);
    for (int i = 7; i >= 0; i--)
        aad[n++] = (unsigned char)((uint64_t)event_id >> (8 * i));
    size_t t = strnlen(tenant ? tenant : "", 64);
    if (t) memcpy(aad + n, tenant, t);
    return n + t;
}
