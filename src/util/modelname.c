/* Model name variants: see modelname.h. */
#include "util/modelname.h"

#include <string.h>

static int digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

/* YYYY MM DD (digits already checked): a year 19xx or 20xx, a month and a day that can be. */
static int date(const char *y, const char *m, const char *d)
{
    int mm = (m[0] - '0') * 10 + (m[1] - '0'), dd = (d[0] - '0') * 10 + (d[1] - '0');
    return (y[0] == '1' ? y[1] == '9' : y[0] == '2' && y[1] == '0') && mm >= 1 && mm <= 12 &&
           dd >= 1 && dd <= 31;
}

size_t tg_modelname_base(const char *name, size_t len)
{
    /* A provider's qualifier: everything from the first '@' or ':' on. */
    for (size_t i = 1; i < len; i++)
        if (name[i] == '@' || name[i] == ':') return i;
    /* -YYYY-MM-DD */
    if (len > 11) {
        const char *d = name + len - 11;
        if (d[0] == '-' && digits(d + 1, 4) && d[5] == '-' && digits(d + 6, 2) && d[8] == '-' &&
            digits(d + 9, 2) && date(d + 1, d + 6, d + 9))
            return len - 11;
    }
    /* -YYYYMMDD (a plausible date, so -12345678 is not one) */
    if (len > 9) {
        const char *d = name + len - 9;
        if (d[0] == '-' && digits(d + 1, 8) && date(d + 1, d + 5, d + 7)) return len - 9;
    }
    return 0;
}

size_t tg_modelname_fold(const char *name, size_t len, char *out, size_t cap)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    out[n] = '\0';
    return n;
}
