/* Time helpers: see clock.h. */
#include "util/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t tg_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tg_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void tg_utc_day(int64_t wall_us, char buf[11])
{
    /* The last day asked for, per thread: the writer asks for the day of every audit
     * record, almost always the same one, and gmtime_r + strftime were ~900 instructions. */
    static _Thread_local int64_t from_s = 1, to_s = 0; /* [from_s, to_s): empty at first */
    static _Thread_local char day[11];
    time_t t = (time_t)(wall_us / 1000000);
    if (t >= from_s && t < to_s) {
        memcpy(buf, day, 11);
        return;
    }
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, 11, "%Y-%m-%d", &tm);
    from_s = (int64_t)t - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
    to_s = from_s + 86400;
    memcpy(buf, day, 11);
}

void tg_utc_iso(int64_t wall_us, char buf[25])
{
    time_t t = (time_t)(wall_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[20];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, 25, "%.19s.%03uZ", tmp, (unsigned)((wall_us / 1000) % 1000) % 1000u);
}

int tg_parse_day(const char *s, int64_t *wall_us)
{
    int y, m, d;
    char tail;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_year != y - 1900 || tm.tm_mon != m - 1 || tm.tm_mday != d)
        return -1;
    *wall_us = (int64_t)t * 1000000;
    return 0;
}

int tg_parse_instant(const char *s, int64_t *wall_us)
{
    if (strlen(s) == 10) return tg_parse_day(s, wall_us);
    struct tm tm = {0};
    char day[11];
    int64_t midnight, frac = 0;
    if (strlen(s) < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) return -1;
    memcpy(day, s, 10);
    day[10] = '\0';
    const char *p = strptime(s + 11, "%H:%M:%S", &tm);
    if (tg_parse_day(day, &midnight) != 0 || !p || s[13] != ':' || s[16] != ':' || tm.tm_sec > 60)
        return -1;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 6) frac = frac * 10 + (*p - '0');
        if (digits == 0) return -1;
        for (; digits < 6; digits++)
            frac *= 10;
    }
    int64_t off_s = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        /* UTC */
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        struct tm z = {0};
        const char *e = strptime(p + 1, "%H:%M", &z);
        if (!e || *e || z.tm_hour > 23) return -1;
        off_s = (*p == '-' ? -1 : 1) * (int64_t)(z.tm_hour * 3600 + z.tm_min * 60);
    } else {
        return -1;
    }
    int64_t secs = (int64_t)tm.tm_hour * 3600 + tm.tm_min * 60 + (tm.tm_sec > 59 ? 59 : tm.tm_sec);
    *wall_us = midnight + (secs - off_s) * 1000000 + frac;
    return 0;
}
