#include "util/duration.h"

#include <limits.h>
#include <string.h>

int tg_duration_parse(const char *s, long long max_ms, long long *ms)
{
    if (!s || *s < '0' || *s > '9') return -1;
    unsigned long long x = 0;
    int big = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (x > (unsigned long long)max_ms)
            big = 1; /* keep reading: the unit may be bad */
        else
            x = x * 10 + (unsigned long long)(*s - '0');
    }
    unsigned long long mul;
    if (!*s || !strcmp(s, "ms"))
        mul = 1;
    else if (!strcmp(s, "s"))
        mul = 1000;
    else if (!strcmp(s, "m"))
        mul = 60 * 1000;
    else if (!strcmp(s, "h"))
        mul = 3600 * 1000;
    else if (!strcmp(s, "d"))
        mul = 24 * 3600 * 1000;
    else
        return -1;
    if (big || x > (unsigned long long)max_ms / mul) return -2;
    *ms = (long long)(x * mul);
    return 0;
}
