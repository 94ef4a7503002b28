/* The access log: one JSON line per usage event, written by the recorder's
 * writer thread (never on the request path).
 *
 * A line has these keys, in this order:
 *   time (ISO-8601 UTC, milliseconds), request_id, tenant, key_id, route,
 *   method, path, status, outcome, reason (omitted when empty), count (only in the
 *   line of an aggregate of unauthenticated refusals: how many it stands for), latency_ms
 *   (a number with exactly three decimals: 12.345, 1.500), bytes_in,
 *   bytes_out, upstream, client_ip
 * Strings are escaped by jansson; bytes that are not valid UTF-8 (a path
 * truncated inside a multibyte character, raw bytes sent by a client) become
 * U+FFFD, so every line is valid JSON.
 *
 * Output is stdio-buffered (1 MiB) and flushed by tg_accesslog_flush(), which
 * the writer calls once per batch. Not thread-safe: one thread owns a log. */
#ifndef TG_OBSERVE_ACCESSLOG_H
#define TG_OBSERVE_ACCESSLOG_H

#include "types/event.h"
#include "util/err.h"

typedef struct tg_accesslog tg_accesslog_t;

/* dest is "stdout", "off" or a file path (opened for append, created 0644).
 * "off" (or NULL or "") yields *out == NULL; every function below accepts
 * NULL and does nothing with it. */
int tg_accesslog_open(const char *dest, tg_accesslog_t **out, tg_err_t *err);
/* Buffers one line. Write errors are reported by tg_accesslog_flush(). */
void tg_accesslog_write(tg_accesslog_t *log, const tg_event_t *ev);
/* Writes out the buffer. Returns 0, or -1 (and logs a warning at most once a
 * minute) when the destination refused bytes; lines are then lost, the
 * gateway goes on. */
int tg_accesslog_flush(tg_accesslog_t *log);
/* Flushes, then reopens a file destination by name (after logrotate moved it).
 * On failure the old file stays in use. */
int tg_accesslog_reopen(tg_accesslog_t *log, tg_err_t *err);
/* Flushes and closes; frees log. */
void tg_accesslog_close(tg_accesslog_t *log);

/* Formats ev as one line without the trailing newline into buf (NUL-terminated).
 * Returns the line length; when that is >= cap the line was not written and
 * the caller may retry with a bigger buffer. Returns -1 on allocation failure. */
long tg_accesslog_format(const tg_event_t *ev, char *buf, size_t cap);

#endif
