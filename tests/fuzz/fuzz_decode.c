/* libFuzzer target: the content-coding decoder (src/meter/decode.c).
 *
 * Input: the Content-Encoding value up to the first '\n' ("gzip", "br, zstd", anything),
 * then byte 0 the cap, bytes 1-2 the piece sizes, then the encoded answer. The answer is
 * decoded whole by a new decoder, then again in pieces by the same decoder (reset by
 * tg_decode_start, as a keep-alive connection reuses it; trimmed in between when byte 0's
 * high bit is set). Checks beyond the sanitizers:
 *   - the bytes decoded (all stages, and what reaches the sink) never exceed the cap plus
 *     TG_DECODE_RATIO per encoded byte fed so far, and tg_decode_total counts them;
 *   - whole and in pieces: the same status and the same output bytes. Two exceptions the
 *     module allows: the cap grows with the bytes fed, so the pieces run may stop at the
 *     cap earlier (its output is then a prefix of the whole run's); and a decoder that
 *     finds corrupt bytes may not have handed over what it decoded just before them
 *     (libbrotli flushes its window only when it needs input), so with TG_DECODE_CORRUPT
 *     one output is a prefix of the other;
 *   - tg_decode_accept on the same value stays within its buffer and keeps only codings.
 * Output is compared through its length, a hash of all of it and its first KEEP bytes, so
 * a bomb decoding to the cap does not grow memory. */
#include "fuzz.h"
#include "meter/decode.h"

#define KEEP (1u << 20)

struct run {
    fz_log_t head; /* the first KEEP decoded bytes */
    uint64_t len, hash;
    uint64_t cap, fed; /* the cap, and encoded bytes fed so far (this piece included) */
};

static int sink(void *ud, const char *p, size_t n)
{
    struct run *r = ud;
    FZ_CHECK(n > 0);
    r->len += n;
    FZ_CHECK(r->len <= r->cap + TG_DECODE_RATIO * r->fed);
    if (r->head.len < KEEP) {
        size_t k = KEEP - r->head.len;
        fz_log_add(&r->head, p, n < k ? n : k);
    }
    for (size_t i = 0; i < n; i++)
        r->hash = (r->hash ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return 0;
}

static tg_decode_status_t decode(tg_decode_t *d, struct run *r, const char *coding, size_t cn,
                                 uint64_t cap, const char *p, size_t n, fz_split_t *sp)
{
    memset(r, 0, sizeof *r);
    r->hash = 0xcbf29ce484222325ull;
    r->cap = cap;
    tg_decode_status_t st = tg_decode_start(d, coding, cn, cap);
    int identity = tg_decode_is_identity(coding, cn);
    if (identity) FZ_CHECK(st == TG_DECODE_OK);
    size_t off = 0;
    while (off < n) {
        size_t k = sp ? fz_split_next(sp, n - off) : n - off;
        r->fed += k;
        tg_decode_status_t s2 = tg_decode_feed(d, p + off, k, sink, r);
        FZ_CHECK(s2 == tg_decode_status(d));
        /* every stage's output is counted: the sink's share is at most that */
        FZ_CHECK(tg_decode_total(d) >= r->len);
        if (identity) FZ_CHECK(tg_decode_total(d) == r->len);
        FZ_CHECK(tg_decode_total(d) <= cap + TG_DECODE_RATIO * r->fed);
        off += k;
    }
    st = tg_decode_end(d);
    FZ_CHECK(tg_decode_flag(st) != NULL);
    return st;
}

static int is_prefix(const struct run *a, const struct run *b)
{
    if (a->len > b->len) return 0;
    size_t k = a->head.len < b->head.len ? a->head.len : b->head.len;
    return k == 0 || memcmp(a->head.p, b->head.p, k) == 0;
}

static void check_accept(const char *coding, size_t cn)
{
    size_t cap = cn + 8;
    char *out = malloc(cap);
    FZ_CHECK(out != NULL);
    size_t k = tg_decode_accept(coding, cn, out, cap);
    FZ_CHECK(k <= cap);
    FZ_CHECK(k > 0); /* "identity" when nothing is kept */
    /* what is kept (without parameters) is a list the decoder takes */
    tg_decode_t *d = tg_decode_new();
    FZ_CHECK(d != NULL);
    if (memchr(out, ';', k) == NULL) {
        tg_decode_status_t st = tg_decode_start(d, out, k, 0);
        /* a list may hold more codings than the stages: only then UNKNOWN */
        FZ_CHECK(st == TG_DECODE_OK || st == TG_DECODE_UNKNOWN);
    }
    tg_decode_free(d);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cn = size, n;
    const uint8_t *rest = fz_cut(data, &cn, "\n", &n);
    if (!rest || n < 3 || cn > 4096) return 0;
    const char *coding = (const char *)data;
    static const uint64_t caps[] = {1, 64, 1000, 16384, 100000, 1u << 20, 8u << 20};
    uint64_t cap = caps[(rest[0] & 0x7f) % (sizeof caps / sizeof caps[0])];
    int trim = rest[0] & 0x80;
    fz_split_t sp;
    fz_split_init(&sp, (uint32_t)rest[1] << 8 | rest[2]);
    const char *p = (const char *)rest + 3;
    n -= 3;

    tg_decode_t *d = tg_decode_new();
    FZ_CHECK(d != NULL);
    struct run whole, split;
    tg_decode_status_t s1 = decode(d, &whole, coding, cn, cap, p, n, NULL);
    if (trim) tg_decode_trim(d);
    tg_decode_status_t s2 = decode(d, &split, coding, cn, cap, p, n, &sp);
    tg_decode_free(d);
    if (getenv("FUZZ_ECHO"))
        fprintf(stderr, "cap %llu: whole %d, %llu bytes; pieces %d, %llu bytes\n",
                (unsigned long long)cap, (int)s1, (unsigned long long)whole.len, (int)s2,
                (unsigned long long)split.len);

    if (s1 == TG_DECODE_CAP || s2 == TG_DECODE_CAP) {
        /* the pieces run's limit is never above the whole run's at any point */
        FZ_CHECK(s2 == TG_DECODE_CAP || s1 == TG_DECODE_CORRUPT || s2 == TG_DECODE_CORRUPT);
        FZ_CHECK(is_prefix(&split, &whole) || is_prefix(&whole, &split));
    } else if (s1 == TG_DECODE_CORRUPT || s2 == TG_DECODE_CORRUPT || s1 == TG_DECODE_TRUNCATED) {
        /* A truncated answer (the input ended inside a stream) agrees only on a prefix too:
         * libbrotli holds decoded bytes back until its output space or more input lets them
         * out, so where the input ended against the 16 KiB output buffer decides how much of
         * an unfinished stream came out (whole 16,384 bytes, pieces 16,387: found by this
         * target). The status is the same, and the event is flagged decode_error either way. */
        FZ_CHECK(s1 == s2);
        FZ_CHECK(is_prefix(&split, &whole) || is_prefix(&whole, &split));
    } else {
        FZ_CHECK(s1 == s2);
        FZ_CHECK(whole.len == split.len && whole.hash == split.hash);
        FZ_CHECK(fz_log_eq(&whole.head, &split.head));
    }
    fz_log_free(&whole.head);
    fz_log_free(&split.head);
    check_accept(coding, cn);
    return 0;
}
