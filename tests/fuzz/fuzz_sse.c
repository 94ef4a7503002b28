/* libFuzzer target: the SSE parser (src/meter/sse.c).
 *
 * Input: byte 0 picks the event cap (tiny caps reach the skip path), bytes 1-2 seed the
 * piece sizes, the rest is the stream. The stream is parsed whole and again in pieces;
 * both runs must dispatch the same events, keep-alives and skip count (the parser promises
 * that an event may be cut at any byte), and pos must stay within the piece. */
#include "fuzz.h"
#include "meter/sse.h"

struct run {
    fz_log_t log;
    tg_sse_t *s;
    size_t piece; /* length of the piece being fed */
};

static void on_event(void *ud, const char *ev, size_t elen, const char *data, size_t dlen)
{
    struct run *r = ud;
    FZ_CHECK(r->s->pos <= r->piece);
    FZ_CHECK(elen > 0);
    fz_log_add(&r->log, "E", 1);
    fz_log_add(&r->log, &elen, sizeof elen);
    fz_log_add(&r->log, ev, elen);
    fz_log_add(&r->log, &dlen, sizeof dlen);
    fz_log_add(&r->log, data, dlen);
}

static void on_empty(void *ud)
{
    struct run *r = ud;
    FZ_CHECK(r->s->pos <= r->piece);
    fz_log_add(&r->log, "K", 1);
}

static size_t parse(struct run *r, size_t max, const char *p, size_t n, fz_split_t *sp)
{
    tg_sse_t s;
    memset(r, 0, sizeof *r);
    r->s = &s;
    tg_sse_init(&s, max, on_event, r);
    s.on_empty = on_empty;
    size_t off = 0;
    while (off < n) {
        size_t k = sp ? fz_split_next(sp, n - off) : n - off;
        r->piece = k;
        tg_sse_feed(&s, p + off, k);
        off += k;
    }
    size_t skipped = tg_sse_skipped(&s);
    tg_sse_free(&s);
    return skipped;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    static const size_t caps[] = {1, 7, 64, 300, 4096, 1 << 20};
    size_t max = caps[data[0] % (sizeof caps / sizeof caps[0])];
    fz_split_t sp;
    fz_split_init(&sp, (uint32_t)data[1] << 8 | data[2]);
    const char *p = (const char *)data + 3;
    size_t n = size - 3;

    struct run whole, split;
    size_t sk1 = parse(&whole, max, p, n, NULL);
    size_t sk2 = parse(&split, max, p, n, &sp);
    FZ_CHECK(sk1 == sk2);
    FZ_CHECK(fz_log_eq(&whole.log, &split.log));
    fz_log_free(&whole.log);
    fz_log_free(&split.log);
    return 0;
}
