/* Incremental SSE parser: a state machine over line breaks (\n, \r\n, \r) that keeps the
 * partial line and a pending-\r flag across calls, so chunk boundaries never matter. Buffers grow
 * by doubling up to max_event (+1 for the trailing \n of data) rather than being allocated at the
 * cap, because most streams carry small events and a gateway holds one parser per open stream. */
#include "meter/sse.h"

#include <stdlib.h>
#include <string.h>

void tg_sse_init(tg_sse_t *s, size_t max_event, tg_sse_cb cb, void *ud)
{
    memset(s, 0, sizeof *s);
    s->max_event = max_event;
    s->cb = cb;
    s->ud = ud;
}

size_t tg_sse_skipped(const tg_sse_t *s)
{
    return s->skipped;
}

void tg_sse_free(tg_sse_t *s)
{
    free(s->line.p);
    free(s->data.p);
    free(s->name.p);
    s->line = s->data = s->name = (struct tg_sse_buf){0};
}

/* Appends within cap; -1 when the cap would be passed or memory runs out. */
static int buf_put(struct tg_sse_buf *b, const char *p, size_t n, size_t cap)
{
    if (n > cap || b->len > cap - n) return -1;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->len + n)
            nc *= 2;
        if (nc > cap) nc = cap;
        char *np = realloc(b->p, nc);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void reset_event(tg_sse_t *s)
{
    s->data.len = 0;
    s->name.len = 0;
    s->ev_bytes = 0;
}

static void start_skip(tg_sse_t *s)
{
    s->skipping = 1;
    s->skipped++;
    s->line.len = 0;
    s->data.len = 0;
    s->name.len = 0;
}

static void dispatch(tg_sse_t *s)
{
    /* WHATWG: an event with no data lines is not dispatched, only reset. */
    if (s->data.len > 0 && s->cb) {
        const char *ev = s->name.len ? s->name.p : "message";
        size_t elen = s->name.len ? s->name.len : 7;
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
    if (flen == 5 && memcmp(l, "event", 5) == 0) {
        s->name.len = 0;
        rc = buf_put(&s->name, v, vlen, s->max_event);
    } else if (flen == 4 && memcmp(l, "data", 4) == 0) {
        rc = buf_put(&s->data, v, vlen, s->max_event + 1);
        if (rc == 0) rc = buf_put(&s->data, "\n", 1, s->max_event + 1);
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
    s->line.len = 0;
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
            if (s->ev_bytes > s->max_event || buf_put(&s->line, p + i, run, s->max_event) != 0)
                start_skip(s);
        }
        i = j - 1;
    }
}
