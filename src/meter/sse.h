/* Incremental Server-Sent Events parser (WHATWG "event stream interpretation").
 *
 * Fed arbitrary byte chunks as they pass through the proxy; an event may be cut at any
 * byte, including between the \r and \n of a CRLF. Only "event" and "data" fields are
 * interpreted ("id" and "retry" are not needed for metering and are ignored). Every buffer
 * is capped by max_event: an event whose raw bytes (field lines and their terminators,
 * not counting the blank line that ends it) exceed the cap is dropped whole, counted in
 * tg_sse_skipped(), and parsing resumes at the next event. Memory is O(max_event) at most
 * and grows only as large as the largest event actually seen. */
#ifndef TG_METER_SSE_H
#define TG_METER_SSE_H

#include <stddef.h>

#include "util/buf.h"

/* Called once per dispatched event. event is "message" when the stream named none. Neither
 * string is NUL-terminated; both are valid only for the duration of the call. */
typedef void (*tg_sse_cb)(void *ud, const char *event, size_t elen, const char *data, size_t dlen);

typedef struct tg_sse {
    size_t max_event; /* cap on one event's raw bytes, see above */
    tg_sse_cb cb;
    void *ud;
    tg_buf_t line;   /* current field line, without terminator (max: max_event) */
    tg_buf_t data;   /* data lines of this event, each followed by \n (max_event + 1) */
    tg_buf_t name;   /* last "event" field value of this event (max_event) */
    size_t ev_bytes; /* raw bytes of this event so far, checked against max_event */
    size_t line_len; /* length of the current line, counted even while skipping */
    size_t skipped;  /* events dropped for exceeding max_event (or out of memory) */
    int skipping;    /* 1 while discarding the rest of an oversize event */
    int after_cr;    /* last byte was \r: a following \n belongs to the same break */
    /* Optional, set after tg_sse_init: called when a blank line ends a block that dispatches
     * nothing (a comment-only keep-alive such as ": ping"), with pos set as for cb. */
    void (*on_empty)(void *ud);
    size_t pos; /* during a callback: bytes of the chunk being fed that were consumed up to
                   and including the line break that dispatched the event (a caller that
                   splits the raw stream into events cuts there; a \n pairing with a
                   dispatching \r falls to the next piece, which is still a valid stream) */
} tg_sse_t;

/* Caller-allocated; no memory is allocated until bytes arrive. */
void tg_sse_init(tg_sse_t *s, size_t max_event, tg_sse_cb cb, void *ud);
void tg_sse_feed(tg_sse_t *s, const char *p, size_t n);
size_t tg_sse_skipped(const tg_sse_t *s);
/* Frees the buffers; an unterminated trailing event is discarded, as WHATWG requires. */
void tg_sse_free(tg_sse_t *s);

#endif
