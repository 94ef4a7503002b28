/* Shared checks on ids and text: see text.h. */
#include "types/text.h"

#include <string.h>

#include "util/sizes.h"

int tg_text_new_tenant_id(const char *s)
{
    return tg_tenant_id_valid(s) && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int tg_text_valid_label(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

size_t tg_text_utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

int tg_text_valid_utf8(const char *s)
{
    if (!tg_text_valid_label(s)) return 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = tg_text_utf8_len(p);
        if (n == 0) return 0;
        p += n;
    }
    return 1;
}

void tg_text_ascii_only(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    if (cap) out[i] = '\0';
}
