/* A price row's rules and text forms: see pricerow.h. They lived in cli/price.c until the
 * admin API needed the same ones; one copy keeps the two from drifting apart. */
#include "types/pricerow.h"

#include <stdio.h>
#include <string.h>

#include "types/text.h"
#include "util/clock.h"
#include "util/money.h"

#define SEC_US 1000000LL

const char *const tg_price_amount_name[TG_PRICE_NAMOUNTS] = {
    "input", "output", "cached", "cache_write", "request", "gb", "call"};
const char *const tg_price_amount_meter[TG_PRICE_NAMOUNTS] = {"model", "model", "model", "model",
                                                              "route", "route", "tool"};

int64_t *tg_price_amount(tg_price_row_t *r, int i)
{
    int64_t *f[TG_PRICE_NAMOUNTS] = {&r->input_micros,       &r->output_micros,  &r->cached_micros,
                                     &r->cache_write_micros, &r->request_micros, &r->gb_micros,
                                     &r->call_micros};
    return f[i];
}

int64_t tg_price_amount_get(const tg_price_row_t *r, int i)
{
    return *tg_price_amount((tg_price_row_t *)r, i);
}

tg_price_name_t tg_price_name_check(const char *name)
{
    if (!name[0]) return TG_PRICE_NAME_EMPTY;
    if (strlen(name) > TG_PRICE_NAME_MAX) return TG_PRICE_NAME_LONG;
    if (!tg_text_valid_utf8(name)) return TG_PRICE_NAME_TEXT;
    return TG_PRICE_NAME_OK;
}

tg_price_set_t tg_price_set_amounts(tg_price_row_t *row, const char *meter,
                                    const char *const usd[TG_PRICE_NAMOUNTS], int *which)
{
    int any = 0;
    for (int i = 0; i < TG_PRICE_NAMOUNTS; i++)
        *tg_price_amount(row, i) = -1;
    for (int i = 0; i < TG_PRICE_NAMOUNTS; i++) {
        if (!usd[i]) continue;
        *which = i;
        if (strcmp(tg_price_amount_meter[i], meter) != 0) return TG_PRICE_SET_METER;
        if (tg_money_parse(usd[i], tg_price_amount(row, i)) != 0) return TG_PRICE_SET_AMOUNT;
        any = 1;
    }
    /* A model needs both token prices (a missing one would price them free); a tool its
     * call; a route either of its two. */
    if (meter[0] == 'm' && (row->input_micros < 0 || row->output_micros < 0))
        return TG_PRICE_SET_MISSING;
    if (meter[0] == 't' && row->call_micros < 0) return TG_PRICE_SET_MISSING;
    return any ? TG_PRICE_SET_OK : TG_PRICE_SET_MISSING;
}

const char *tg_price_set_needs(const char *meter)
{
    return meter[0] == 'm' ? "input and output" : meter[0] == 't' ? "call" : "request or gb";
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int tg_price_parse_from(const char *s, int64_t now_us, int64_t *us)
{
    if (now_us >= 0 && strcmp(s, "now") == 0) {
        *us = now_us / SEC_US * SEC_US;
        return 0;
    }
    size_t n = strlen(s);
    if (n != 10 && n != 20) return -1;
    char day[11];
    memcpy(day, s, 10);
    day[10] = '\0';
    if (tg_parse_day(day, us) != 0) return -1;
    if (n == 10) return 0;
    const char *t = s + 10;
    int h, m, sec;
    if (t[0] != 'T' || t[3] != ':' || t[6] != ':' || t[9] != 'Z' || digits(t + 1, 2, &h) ||
        digits(t + 4, 2, &m) || digits(t + 7, 2, &sec) || h > 23 || m > 59 || sec > 59)
        return -1;
    *us += ((int64_t)h * 3600 + m * 60 + sec) * SEC_US;
    return 0;
}

void tg_price_fmt_when(int64_t us, char buf[25])
{
    if (us <= 0) {
        snprintf(buf, 25, "1970-01-01T00:00:00Z");
        return;
    }
    tg_utc_iso(us, buf);
    buf[19] = 'Z';
    buf[20] = '\0';
}

void tg_price_statuses(const tg_price_row_t *v, size_t n, int64_t now_us, const char **st)
{
    for (size_t i = 0, j; i < n; i = j) {
        j = i;
        while (j < n && strcmp(v[j].meter, v[i].meter) == 0 && strcmp(v[j].name, v[i].name) == 0)
            j++;
        size_t cur = j; /* none in force yet */
        for (size_t k = i; k < j; k++)
            if (v[k].effective_us <= now_us) cur = k;
        for (size_t k = i; k < j; k++)
            st[k] = cur == j || k > cur ? "scheduled" : k == cur ? "current" : "superseded";
    }
}
