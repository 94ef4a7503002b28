/* Durations as people write them: "250ms", "5s", "2m", "1h", "7d", or a bare number of
 * milliseconds. The config's durations and the CLI's --timeout and --grace read them alike. */
#ifndef TG_UTIL_DURATION_H
#define TG_UTIL_DURATION_H

/* Parses s into *ms. 0; -1 when s is not a duration (empty, a sign, a fraction, an unknown
 * unit); -2 when it is more than max_ms. */
int tg_duration_parse(const char *s, long long max_ms, long long *ms);

#endif
