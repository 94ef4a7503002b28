/* Money: see money.h. */
#include "util/money.h"

#include <stdio.h>

#define MAX_USD 9000000000000LL /* 9e12 USD = 9e18 micro-USD, below INT64_MAX */

int tg_money_parse(const char *s, int64_t *micros)
{
    if (!s || !*s) return -1;
    int64_t whole = 0, frac = 0;
    int digits = 0, decimals = 0, dot = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.') {
            if (dot) return -1;
            dot = 1;
            continue;
        }
        if (*p < '0' || *p > '9') return -1;
        if (dot) {
            if (++decimals > 6) return -1;
            frac = frac * 10 + (*p - '0');
        } else {
            if (whole > MAX_USD / 10) return -1;
            whole = whole * 10 + (*p - '0');
        }
        digits++;
    }
    if (digits == 0 || whole > MAX_USD) return -1;
    for (int i = decimals; i < 6; i++)
        frac *= 10;
    *micros = whole * TG_MICROS_PER_USD + frac;
    return 0;
}

int tg_money_format(int64_t micros, char *buf, size_t cap)
{
    const char *sign = "";
    uint64_t m = (uint64_t)micros;
    if (micros < 0) {
        sign = "-";
        m = (uint64_t)0 - (uint64_t)micros;
    }
    uint64_t whole = m / TG_MICROS_PER_USD, frac = m % TG_MICROS_PER_USD;
    char f[8];
    snprintf(f, sizeof f, "%06llu", (unsigned long long)frac);
    int keep = 6;
    while (keep > 2 && f[keep - 1] == '0')
        keep--;
    f[keep] = '\0';
    int n = snprintf(buf, cap, "%s%llu.%s", sign, (unsigned long long)whole, f);
    return n < 0 ? 0 : n;
}
