/* Incremental SSE parser: a state machine over line breaks (\n, \r\n, \r) that keeps the
 * partial line and a pending-\r flag across calls, so chunk boundaries never matter. Buffers
 * (util/buf.h) grow by doubling up to max_event (+1 for the trailing \n of data) rather than being
 * allocated at the cap, because most streams carry small events and a gateway holds one parser
 * per open stream. */
#include "meter/sse.h"

#include <string.h>

void tg_sse_init(tg_sse_t *s, size_t max_event, tg_sse_cb cb, void *ud)
{
    memset(s, 0, sizeof *s);
    s->max_event = max_event;
    tg_buf_init(&s->line, max_event);
    tg_buf_init(&s->name, max_event);
    tg_buf_init(&s->data, max_event < TG_BUF_MAX_LIMIT ? max_event + 1 : max_event);
    s->cb = cb;
    s->ud = ud;
}

size_t tg_sse_skipped(const tg_sse_t *s)
{
    return s->skipped;
}

void tg_sse_free(tg_sse_t *s)
{
    tg_buf_free(&s->line);
    tg_buf_free(&s->data);
    tg_buf_free(&s->name);
}

static void reset_event(tg_sse_t *s)
{
    tg_buf_reset(&s->data);
    tg_buf_reset(&s->name);
    s->ev_bytes = 0;
}

static void start_skip(tg_sse_t *s)
{
    s->skipping = 1;
    s->skipped++;
    tg_buf_reset(&s->line);
    tg_buf_reset(&s->data);
    tg_buf_reset(&s->name);
}

static void dispatch(tg_sse_t *s)
{
    /* WHATWG: an event with no data lines is not dispatched, only reset. */
    if (s->data.len > 0 && s->cb) {
        const char *ev = s->name.len ? s->name.p : "message";
        size_t elen = s->name.len ? s->name.len : sizeof "message" - 1;
        s->cb(s->ud, ev, elen, s->data.p, s->data.len - 1);
    } else if (s->data.len == 0 && s->on_empty) {
        s->on_empty(s->ud);
    }
    reset_event(s);
}

static void field_line(tg_sse_t *s)
{
    const char *l = s->line.p;
    size_t n = s->line.len;
    if (n == 0 || l[0] == ':') return; /* comment */
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vlen = (size_t)(l + n - v);
    if (vlen && v[0] == ' ') v++, vlen--;
    int rc = 0;
    if (TG_LIT_EQ(l, flen, "event")) {
        tg_buf_reset(&s->name);
        rc = tg_buf_add(&s->name, v, vlen);
    } else if (TG_LIT_EQ(l, flen, "data")) {
        rc = tg_buf_add(&s->data, v, vlen);
        if (rc == 0) rc = tg_buf_add(&s->data, TG_LIT("\n"));
    }
    if (rc != 0) start_skip(s);
}

static void end_line(tg_sse_t *s)
{
    if (s->line_len == 0) {
        if (s->skipping) {
            s->skipping = 0;
            reset_event(s);
        } else {
            dispatch(s);
        }
        return;
    }
    s->line_len = 0;
    if (++s->ev_bytes > s->max_event && !s->skipping) start_skip(s);
    if (!s->skipping) field_line(s);
    tg_buf_reset(&s->line);
}

void tg_sse_feed(tg_sse_t *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (s->after_cr) {
            s->after_cr = 0;
            if (c == '\n') continue;
        }
        if (c == '\r' || c == '\n') {
            s->after_cr = c == '\r';
            s->pos = i + 1;
            end_line(s);
            continue;
        }
        /* Copy the whole run up to the next line break at once. */
        size_t j = i + 1;
        while (j < n && p[j] != '\r' && p[j] != '\n')
            j++;
        size_t run = j - i;
        s->line_len += run;
        if (!s->skipping) {
            s->ev_bytes += run;
            if (s->ev_bytes > s->max_event || tg_buf_add(&s->line, p + i, run) != 0) start_skip(s);
        }
        i = j - 1;
    }
}
