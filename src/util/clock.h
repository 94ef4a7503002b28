/* Time. Durations come from the monotonic clock; wall-clock time is used only
 * for timestamps and UTC billing periods. */
#ifndef TG_UTIL_CLOCK_H
#define TG_UTIL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t tg_mono_us(void); /* CLOCK_MONOTONIC, microseconds */
int64_t tg_wall_us(void); /* CLOCK_REALTIME, microseconds since the Unix epoch */

/* "YYYY-MM-DD" of the UTC day holding wall time us; buf must hold 11 bytes. */
void tg_utc_day(int64_t wall_us, char buf[11]);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ"; buf must hold 25 bytes. */
void tg_utc_iso(int64_t wall_us, char buf[25]);
/* Parses "YYYY-MM-DD" strictly (a real calendar date); returns 0 and the UTC
 * midnight in microseconds, or -1. */
int tg_parse_day(const char *s, int64_t *wall_us);
/* An instant: "YYYY-MM-DD" (its UTC midnight) or RFC 3339 "YYYY-MM-DDTHH:MM:SS" with an
 * optional fraction of a second and a zone ("Z", "+HH:MM" or "-HH:MM"; 't', 'z' and a
 * space for 'T' too). Returns 0 and the instant in microseconds, or -1. */
int tg_parse_instant(const char *s, int64_t *wall_us);

#endif
