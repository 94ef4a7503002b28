/* Percent-decoding: see pct.h. */
#include "util/pct.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tg_pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0 || (h | l) == 0) return -1;
            ch = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = ch;
    }
    if (cap == 0) return -1;
    out[o] = '\0';
    return 0;
}
