/* Diagnostic log: see log.h. One fprintf per line; stdio's lock keeps lines whole. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

tg_log_level_t tg_log_level = TG_LOG_INFO;

static const char *const names[] = {"debug", "info", "warn", "error"};

int tg_log_parse_level(const char *s, tg_log_level_t *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (tg_log_level_t)i;
            return 0;
        }
    return -1;
}

void tg_log_write(tg_log_level_t level, const char *fmt, ...)
{
    char ts[32], line[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", ts, names[level], line);
}

void tg_assert_fail(const char *file, int line, const char *expr, long long a, long long b)
{
    fprintf(stderr, "%s:%d: assertion failed: %s (%lld vs %lld)\n", file, line, expr, a, b);
    abort();
}
