/* Tests src/meter/decode.c: every coding decoded under every cut of a small answer and in
 * pieces of every size down to one byte; zlib-wrapped and raw deflate; concatenated gzip
 * members and zstd frames; a list of codings undone in reverse order; truncated and corrupt
 * input flagged (and what decoded before it still passed on); decompression bombs stopped
 * at the cap with memory bounded; unknown codings; one decoder reused across answers; and
 * the Accept-Encoding narrowing. Inputs are compressed here with the same libraries'
 * encoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <brotli/encode.h>
#include <sys/resource.h>
#include <zlib.h>
#include <zstd.h>

#include "meter/compress.h"
#include "meter/decode.h"

#define S(lit) lit, sizeof(lit) - 1

static const char ANSWER[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello, "
    "hello, hello: a small answer with some repetition to compress.\"}}],"
    "\"usage\":{\"prompt_tokens\":123,\"completion_tokens\":45,\"total_tokens\":168}}";

/* ---- harness ---------------------------------------------------------------- */

struct out {
    char *p;
    size_t len, cap;
    uint64_t total; /* bytes seen, kept or not */
    int keep;       /* 0: count only (bombs) */
};

static int collect(void *ud, const char *p, size_t n)
{
    struct out *o = ud;
    assert_true(n > 0 && n <= TG_DECODE_SCRATCH);
    o->total += n;
    if (!o->keep) return 0;
    if (o->len + n > o->cap) {
        size_t nc = o->cap ? o->cap : 4096;
        while (nc < o->len + n)
            nc *= 2;
        o->p = realloc(o->p, nc);
        assert_non_null(o->p);
        o->cap = nc;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
    return 0;
}

/* The header value for a test coding name ("deflate-raw" is sent as "deflate"). */
static const char *header_of(const char *coding)
{
    return strcmp(coding, "deflate-raw") == 0 ? "deflate" : coding;
}

/* Decodes e under coding, cut into the pieces [0, cut) and [cut, len) when piece is 0, else
 * in pieces of that size; the status at the end. */
static tg_decode_status_t run(tg_decode_t *d, const char *coding, const struct enc *e, size_t cut,
                              size_t piece, uint64_t cap, struct out *o)
{
    assert_int_equal(tg_decode_start(d, coding, strlen(coding), cap), TG_DECODE_OK);
    if (piece == 0) {
        tg_decode_feed(d, (const char *)e->p, cut, collect, o);
        tg_decode_feed(d, (const char *)e->p + cut, e->len - cut, collect, o);
    } else {
        for (size_t i = 0; i < e->len; i += piece)
            tg_decode_feed(d, (const char *)e->p + i, e->len - i < piece ? e->len - i : piece,
                           collect, o);
    }
    return tg_decode_end(d);
}

static void expect_answer(const struct out *o)
{
    assert_int_equal(o->len, sizeof ANSWER - 1);
    assert_memory_equal(o->p, ANSWER, sizeof ANSWER - 1);
}

static const char *const CODINGS[] = {"gzip", "deflate", "deflate-raw", "br", "zstd", "identity"};
#define NCODINGS (sizeof CODINGS / sizeof CODINGS[0])

/* ---- tests -------------------------------------------------------------------- */

static void test_every_cut_and_piece(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    assert_non_null(d);
    for (size_t c = 0; c < NCODINGS; c++) {
        struct enc e = encode(CODINGS[c], ANSWER, sizeof ANSWER - 1);
        const char *h = header_of(CODINGS[c]);
        for (size_t cut = 0; cut <= e.len; cut++) {
            struct out o = {.keep = 1};
            assert_int_equal(run(d, h, &e, cut, 0, 0, &o), TG_DECODE_OK);
            expect_answer(&o);
            free(o.p);
        }
        for (size_t piece = 1; piece <= e.len; piece++) {
            struct out o = {.keep = 1};
            assert_int_equal(run(d, h, &e, 0, piece, 0, &o), TG_DECODE_OK);
            expect_answer(&o);
            assert_int_equal(tg_decode_total(d), sizeof ANSWER - 1);
            free(o.p);
        }
        enc_free(&e);
    }
    tg_decode_free(d);
}

static void test_deflate_zlib_and_raw(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    struct enc z = encode("deflate", ANSWER, sizeof ANSWER - 1);
    struct enc r = encode("deflate-raw", ANSWER, sizeof ANSWER - 1);
    /* They differ (the zlib header and Adler-32 trailer), and both decode as "deflate". */
    assert_int_equal(z.len, r.len + 6);
    assert_memory_equal(z.p + 2, r.p, r.len);
    for (int k = 0; k < 2; k++) {
        struct out o = {.keep = 1};
        assert_int_equal(run(d, "deflate", k ? &r : &z, 1, 0, 0, &o), TG_DECODE_OK);
        expect_answer(&o);
        free(o.p);
    }
    /* A raw stream whose first block is stored (first byte 0x00 or 0x01) is not taken for
     * a zlib header either. */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 0, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char buf[1024];
    zs.next_in = (Bytef *)ANSWER;
    zs.avail_in = sizeof ANSWER - 1;
    zs.next_out = buf;
    zs.avail_out = sizeof buf;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    struct enc st = {buf, zs.total_out};
    deflateEnd(&zs);
    struct out o = {.keep = 1};
    assert_int_equal(run(d, "deflate", &st, 0, 1, 0, &o), TG_DECODE_OK);
    expect_answer(&o);
    free(o.p);
    enc_free(&z);
    enc_free(&r);
    tg_decode_free(d);
}

static void test_concatenated(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    const char *const cs[] = {"gzip", "zstd"};
    for (size_t c = 0; c < 2; c++) {
        /* The answer in three members / frames: "{...", "...", "...}". */
        size_t a = 40, b = 120, n = sizeof ANSWER - 1;
        struct enc e = encode(cs[c], ANSWER, a);
        struct enc e2 = encode(cs[c], ANSWER + a, b - a);
        struct enc e3 = encode(cs[c], ANSWER + b, n - b);
        cat(&e, &e2);
        cat(&e, &e3);
        for (size_t piece = 1; piece <= e.len; piece += 7) {
            struct out o = {.keep = 1};
            assert_int_equal(run(d, cs[c], &e, 0, piece, 0, &o), TG_DECODE_OK);
            expect_answer(&o);
            free(o.p);
        }
        /* Cut inside the second member: truncated, the first member passed on. */
        struct enc cut = {e.p, e.len - e3.len - 3};
        struct out o = {.keep = 1};
        assert_int_equal(run(d, cs[c], &cut, 0, 5, 0, &o), TG_DECODE_TRUNCATED);
        assert_true(o.len >= a);
        assert_memory_equal(o.p, ANSWER, a);
        free(o.p);
        enc_free(&e);
        enc_free(&e2);
        enc_free(&e3);
    }
    tg_decode_free(d);
}

static void test_stacked(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    /* "gzip, br": gzip applied first, then br; undone br first. */
    struct enc g = encode("gzip", ANSWER, sizeof ANSWER - 1);
    struct enc gb = encode("br", g.p, g.len);
    struct enc gbz = encode("zstd", gb.p, gb.len);
    for (size_t piece = 1; piece <= gb.len; piece++) {
        struct out o = {.keep = 1};
        assert_int_equal(run(d, "gzip, br", &gb, 0, piece, 0, &o), TG_DECODE_OK);
        expect_answer(&o);
        free(o.p);
    }
    struct out o = {.keep = 1};
    assert_int_equal(run(d, " gzip ,identity,br , zstd", &gbz, 0, 3, 0, &o), TG_DECODE_OK);
    expect_answer(&o);
    free(o.p);
    /* In the wrong order the outer layer is not gzip: corrupt. */
    struct out w = {.keep = 1};
    assert_int_equal(run(d, "br, gzip", &gb, 0, 4, 0, &w), TG_DECODE_CORRUPT);
    free(w.p);
    /* Four codings: more than the stages. */
    assert_int_equal(tg_decode_start(d, S("gzip, gzip, gzip, gzip"), 0), TG_DECODE_UNKNOWN);
    enc_free(&g);
    enc_free(&gb);
    enc_free(&gbz);
    tg_decode_free(d);
}

static void test_truncated(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    for (size_t c = 0; c + 1 < NCODINGS; c++) {
        struct enc e = encode(CODINGS[c], ANSWER, sizeof ANSWER - 1);
        /* Every proper prefix (but the empty one: no body, nothing to decode). */
        for (size_t len = 1; len < e.len; len++) {
            struct enc p = {e.p, len};
            struct out o = {.keep = 1};
            tg_decode_status_t s = run(d, header_of(CODINGS[c]), &p, 0, 1, 0, &o);
            assert_int_equal(s, TG_DECODE_TRUNCATED);
            assert_string_equal(tg_decode_flag(s), "decode_error");
            assert_true(o.len <= sizeof ANSWER - 1);
            if (o.len) assert_memory_equal(o.p, ANSWER, o.len);
            free(o.p);
        }
        enc_free(&e);
    }
    tg_decode_free(d);
}

static void test_corrupt(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    for (size_t c = 0; c + 1 < NCODINGS; c++) {
        const char *h = header_of(CODINGS[c]);
        struct enc e = encode(CODINGS[c], ANSWER, sizeof ANSWER - 1);
        /* Trailing bytes after the end of the stream. */
        struct enc t = encode("identity", e.p, e.len);
        struct enc junk = {(unsigned char *)"garbage!", 8};
        cat(&t, &junk);
        struct out o = {.keep = 1};
        assert_int_equal(run(d, h, &t, 0, 1, 0, &o), TG_DECODE_CORRUPT);
        assert_string_equal(tg_decode_flag(TG_DECODE_CORRUPT), "decode_error");
        expect_answer(&o); /* what came before the junk was whole */
        free(o.p);
        enc_free(&t);
        /* Not compressed at all: the JSON text itself under the coding. */
        struct enc plain = {(unsigned char *)ANSWER, sizeof ANSWER - 1};
        struct out o2 = {.keep = 1};
        assert_int_not_equal(run(d, h, &plain, 0, 9, 0, &o2), TG_DECODE_OK);
        free(o2.p);
        enc_free(&e);
    }
    /* A flipped byte in gzip's CRC-32 trailer, and in its data. */
    struct enc g = encode("gzip", ANSWER, sizeof ANSWER - 1);
    g.p[g.len - 6] ^= 0x55;
    struct out o = {.keep = 1};
    assert_int_equal(run(d, "gzip", &g, 0, 1, 0, &o), TG_DECODE_CORRUPT);
    free(o.p);
    enc_free(&g);
    /* Status is sticky: the rest of the answer is ignored. */
    assert_int_equal(tg_decode_feed(d, S("more"), collect, &o), TG_DECODE_CORRUPT);
    tg_decode_free(d);
}

/* Found by fuzz_decode: libzstd also decodes the legacy formats of zstd before 0.8 (magic
 * numbers 0xFD2FB51E to 0xFD2FB527, no window limit), and a frame whose header fails is
 * tried again as legacy from the start of the next piece: the same bytes were corrupt
 * whole and "truncated" when cut 1 + 62 + 1 + 3. Only RFC 8878 frames are accepted, the
 * same whatever the cuts. */
static void test_zstd_frames_only(void **state)
{
    (void)state;
    static const unsigned char found[] = {
        0x28, 0x25, 0xb5, 0x2f, 0xfd, 0x00, 0x31, 0x58, 0x20, 0x02, 0x00, 0x10, 0x20, 0x02,
        0x09, 0xf0, 0x20, 0x02, 0xff, 0xef, 0xdf, 0xfd, 0x00, 0x10, 0x20, 0x02, 0x00, 0x10,
        0x20, 0x02, 0x00, 0x10, 0x20, 0x02, 0x00, 0x10, 0x20, 0x02, 0x00, 0x10, 0x20, 0x02,
        0x09, 0xf0, 0x20, 0x02, 0x00, 0x10, 0x20, 0x02, 0x02, 0x2c, 0x20, 0x00, 0x10, 0x20,
        0x02, 0x10, 0x20, 0x02, 0x00, 0x10, 0x20, 0x02, 0x42, 0x0e, 0x84};
    static const size_t cuts[][4] = {{sizeof found, 0, 0, 0}, {1, 62, 1, 3}, {4, 1, 62, 0}};
    tg_decode_t *d = tg_decode_new();
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        struct out o = {.keep = 1};
        assert_int_equal(tg_decode_start(d, S("zstd"), 0), TG_DECODE_OK);
        size_t off = 0;
        for (int j = 0; j < 4 && cuts[k][j]; j++) {
            tg_decode_feed(d, (const char *)found + off, cuts[k][j], collect, &o);
            off += cuts[k][j];
        }
        assert_int_equal(off, sizeof found);
        assert_int_equal(tg_decode_end(d), TG_DECODE_CORRUPT);
        assert_int_equal(o.total, 0);
        free(o.p);
    }
    /* A legacy (v0.7) magic number is refused as soon as it is complete. */
    assert_int_equal(tg_decode_start(d, S("zstd"), 0), TG_DECODE_OK);
    assert_int_equal(tg_decode_feed(d, S("\x27\xb5\x2f"), collect, NULL), TG_DECODE_OK);
    assert_int_equal(tg_decode_feed(d, S("\xfd"), collect, NULL), TG_DECODE_CORRUPT);
    /* Skippable frames (empty, and with content) around a real one still decode, in any
     * cuts; a header cut anywhere is only truncated. */
    struct enc z = encode("zstd", ANSWER, sizeof ANSWER - 1);
    struct enc all = encode("identity", "\x50\x2a\x4d\x18\x00\x00\x00\x00", 8);
    cat(&all, &z);
    struct enc skip = {(unsigned char *)"\x5f\x2a\x4d\x18\x03\x00\x00\x00"
                                        "abc",
                       11};
    cat(&all, &skip);
    for (size_t piece = 1; piece <= 13; piece += 3) {
        struct out o = {.keep = 1};
        assert_int_equal(run(d, "zstd", &all, 0, piece, 0, &o), TG_DECODE_OK);
        expect_answer(&o);
        free(o.p);
    }
    for (size_t cut = 1; cut < 18; cut++) {
        struct enc head = {z.p, cut};
        struct out o = {.keep = 1};
        assert_int_equal(run(d, "zstd", &head, 0, 1, 0, &o), TG_DECODE_TRUNCATED);
        free(o.p);
    }
    enc_free(&all);
    enc_free(&z);
    tg_decode_free(d);
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* 1 GiB of zeros as 1024 gzip members of 1 MiB each: about 1 MB on the wire. */
static struct enc gzip_bomb(void)
{
    size_t mib = 1u << 20;
    char *zeros = calloc(1, mib);
    assert_non_null(zeros);
    struct enc one = z_enc(zeros, mib, 15 + 16);
    struct enc all = {malloc(one.len * 1024), 0};
    assert_non_null(all.p);
    for (int i = 0; i < 1024; i++) {
        memcpy(all.p + all.len, one.p, one.len);
        all.len += one.len;
    }
    free(zeros);
    enc_free(&one);
    return all;
}

static void test_bomb(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    struct enc bomb = gzip_bomb();
    assert_true(bomb.len < (2u << 20));
    long rss0 = max_rss_kb();
    uint64_t cap = 64u << 20;
    struct out o = {.keep = 0};
    /* Fed as a proxy would, 16 KiB at a time. */
    assert_int_equal(run(d, "gzip", &bomb, 0, 16384, cap, &o), TG_DECODE_CAP);
    assert_string_equal(tg_decode_flag(TG_DECODE_CAP), "decode_cap");
    /* Up to the cap and the allowance for what was received, not a byte more (the bomb
     * decodes to 1 GiB). */
    assert_true(o.total >= cap && o.total <= cap + TG_DECODE_RATIO * (uint64_t)bomb.len);
    assert_true(o.total < (128u << 20));
    assert_int_equal(tg_decode_total(d), o.total);
    assert_true(max_rss_kb() - rss0 < 16 * 1024); /* nothing grew with the output */

    /* The same bomb under gzip again ("gzip, gzip"): the cap counts both stages. */
    struct enc outer = encode("gzip", bomb.p, bomb.len);
    struct out o2 = {.keep = 0};
    assert_int_equal(run(d, "gzip, gzip", &outer, 0, 4096, 8u << 20, &o2), TG_DECODE_CAP);
    assert_true(o2.total <= (8u << 20) + TG_DECODE_RATIO * (uint64_t)outer.len);
    enc_free(&outer);
    enc_free(&bomb);

    /* br and zstd: 64 MiB of zeros, cap 1 MiB. */
    size_t big = 64u << 20;
    char *zeros = calloc(1, big);
    assert_non_null(zeros);
    struct enc z = zstd_enc(zeros, big);
    size_t brcap = BrotliEncoderMaxCompressedSize(big);
    struct enc b = {malloc(brcap), brcap};
    assert_true(
        BrotliEncoderCompress(1, 22, BROTLI_MODE_GENERIC, big, (uint8_t *)zeros, &b.len, b.p));
    free(zeros);
    const struct enc *es[] = {&z, &b};
    const char *cs[] = {"zstd", "br"};
    for (int k = 0; k < 2; k++) {
        struct out ob = {.keep = 0};
        assert_int_equal(run(d, cs[k], es[k], 0, 1000, 1u << 20, &ob), TG_DECODE_CAP);
        assert_true(ob.total >= (1u << 20) &&
                    ob.total <= (1u << 20) + TG_DECODE_RATIO * (uint64_t)es[k]->len);
    }
    enc_free(&z);
    enc_free(&b);

    /* Identity is capped too. */
    assert_int_equal(tg_decode_start(d, S("identity"), 10), TG_DECODE_OK);
    struct out oi = {.keep = 1};
    assert_int_equal(tg_decode_feed(d, S("0123456789abc"), collect, &oi), TG_DECODE_CAP);
    assert_int_equal(oi.len, 10);
    free(oi.p);
    tg_decode_free(d);
}

/* An honest answer larger than the cap (a client can ask for 2048 embeddings, or logprobs
 * with many choices, and the usage comes last) compresses like text, a few to one: it is
 * read whole, in every coding and stacked. A fixed cap stopped it and left it unmetered. */
static void test_cap_grows_with_input(void **state)
{
    (void)state;
    size_t n = 6u << 20;
    char *text = malloc(n);
    assert_non_null(text);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) { /* digits and commas, like floats in JSON */
        s = s * 1103515245u + 12345u;
        text[i] = (i % 12 == 11) ? ',' : (char)('0' + (s >> 24) % 10);
    }
    tg_decode_t *d = tg_decode_new();
    const char *cs[] = {"gzip", "deflate", "br", "zstd"};
    for (size_t k = 0; k < 4; k++) {
        struct enc e = encode(cs[k], text, n);
        assert_true(e.len > n / 4); /* about 2:1, nothing like a bomb */
        struct out o = {.keep = 0};
        assert_int_equal(run(d, cs[k], &e, 0, 16384, 1u << 20, &o), TG_DECODE_OK);
        assert_int_equal(o.total, n);
        enc_free(&e);
    }
    /* A client that makes the model repeat one token with logprobs gets an answer that
     * compresses about 150 to one in gzip: still read whole (a bomb's ratio is a thousand
     * and more). */
    size_t rl = 0, rcap = 8u << 20;
    char *rep = malloc(rcap);
    assert_non_null(rep);
    for (int i = 0; rl + 200 < rcap && i < 40000; i++)
        rl += (size_t)snprintf(rep + rl, rcap - rl,
                               "{\"token\":\" a\",\"logprob\":-0.000%d,\"bytes\":[32,97],"
                               "\"top_logprobs\":[{\"token\":\" a\",\"logprob\":-0.000%d},"
                               "{\"token\":\" b\",\"logprob\":-9.5}]},",
                               i % 10, i / 10 % 10);
    struct enc er = encode("gzip", rep, rl);
    assert_true(er.len * 100 < rl && er.len * 200 > rl);
    struct out orep = {.keep = 0};
    assert_int_equal(run(d, "gzip", &er, 0, 16384, 1u << 20, &orep), TG_DECODE_OK);
    assert_int_equal(orep.total, rl);
    enc_free(&er);
    free(rep);
    /* Two stages: the cap counts both, the allowance all that was received. */
    struct enc in = encode("gzip", text, n);
    struct enc e2 = encode("br", in.p, in.len);
    struct out o2 = {.keep = 0};
    assert_int_equal(run(d, "gzip, br", &e2, 0, 16384, 1u << 20, &o2), TG_DECODE_OK);
    assert_int_equal(o2.total, n);
    enc_free(&e2);
    enc_free(&in);
    free(text);
    tg_decode_free(d);
}

static void test_unknown(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    const char *const unknown[] = {"compress", "x-compress", "gzip, foo",
                                   "exi",      "gzip;q=1",   "pack200-gzip"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_false(tg_decode_is_identity(unknown[i], strlen(unknown[i])));
        assert_int_equal(tg_decode_start(d, unknown[i], strlen(unknown[i]), 0), TG_DECODE_UNKNOWN);
        struct out o = {.keep = 1};
        assert_int_equal(tg_decode_feed(d, S("abc"), collect, &o), TG_DECODE_UNKNOWN);
        assert_int_equal(o.len, 0); /* nothing is read */
        assert_int_equal(tg_decode_end(d), TG_DECODE_UNKNOWN);
    }
    assert_string_equal(tg_decode_flag(TG_DECODE_UNKNOWN), "coding_unknown");
    assert_string_equal(tg_decode_flag(TG_DECODE_OK), "");
    assert_true(tg_decode_is_identity(NULL, 0));
    assert_true(tg_decode_is_identity(S("")));
    assert_true(tg_decode_is_identity(S(" , identity ,IDENTITY")));
    assert_false(tg_decode_is_identity(S("identity, GZIP")));
    /* Names are case-insensitive; x-gzip is gzip. */
    struct enc g = encode("gzip", ANSWER, sizeof ANSWER - 1);
    const char *const names[] = {"GZip", "x-gzip", "identity, gzip"};
    for (size_t i = 0; i < 3; i++) {
        struct out o = {.keep = 1};
        assert_int_equal(run(d, names[i], &g, 0, 50, 0, &o), TG_DECODE_OK);
        expect_answer(&o);
        free(o.p);
    }
    enc_free(&g);
    tg_decode_free(d);
}

static void test_reuse(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    struct enc es[NCODINGS];
    for (size_t c = 0; c < NCODINGS; c++)
        es[c] = encode(CODINGS[c], ANSWER, sizeof ANSWER - 1);
    for (int round = 0; round < 200; round++) {
        size_t c = (size_t)round % NCODINGS;
        struct out o = {.keep = 1};
        /* Every fifth answer is cut short: the next one still starts clean. */
        struct enc e = es[c];
        if (round % 5 == 4 && c + 1 < NCODINGS) e.len /= 2;
        tg_decode_status_t s = run(d, header_of(CODINGS[c]), &e, 0, 1 + (size_t)round % 13, 0, &o);
        if (e.len == es[c].len) {
            assert_int_equal(s, TG_DECODE_OK);
            expect_answer(&o);
        } else {
            assert_int_not_equal(s, TG_DECODE_OK);
        }
        free(o.p);
        if (round % 3 == 0) tg_decode_trim(d); /* (what the exchange does between answers) */
    }
    for (size_t c = 0; c < NCODINGS; c++)
        enc_free(&es[c]);
    /* A zstd frame with an 8 MiB window (unknown size, streamed) grows the state; trim
     * frees it and the next answer makes a fresh one. A 16 MiB window is refused. */
    for (int wlog = 23; wlog <= 24; wlog++) {
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog);
        size_t n = 12u << 20;
        char *src = malloc(n);
        for (size_t i = 0; i < n; i++)
            src[i] = (char)(i * 2654435761u >> 13);
        memcpy(src, ANSWER, sizeof ANSWER - 1);
        struct enc z = {malloc(ZSTD_compressBound(n)), 0};
        ZSTD_inBuffer in = {src, n, 0};
        ZSTD_outBuffer out = {z.p, ZSTD_compressBound(n), 0};
        assert_int_equal(ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end), 0);
        z.len = out.pos;
        ZSTD_freeCCtx(cc);
        free(src);
        struct out o = {.keep = 0};
        tg_decode_status_t s = run(d, "zstd", &z, 0, 65536, 0, &o);
        assert_int_equal(s, wlog == 23 ? TG_DECODE_OK : TG_DECODE_CORRUPT);
        if (wlog == 23) assert_int_equal(o.total, n);
        tg_decode_trim(d);
        enc_free(&z);
        struct enc small = encode("zstd", ANSWER, sizeof ANSWER - 1);
        struct out o2 = {.keep = 1};
        assert_int_equal(run(d, "zstd", &small, 0, 7, 0, &o2), TG_DECODE_OK);
        expect_answer(&o2);
        free(o2.p);
        enc_free(&small);
    }
    tg_decode_free(d);
}

static int stop_after_one(void *ud, const char *p, size_t n)
{
    (void)p;
    *(size_t *)ud += n;
    return -1;
}

static void test_sink_stops(void **state)
{
    (void)state;
    tg_decode_t *d = tg_decode_new();
    struct enc g = encode("gzip", ANSWER, sizeof ANSWER - 1);
    size_t got = 0;
    assert_int_equal(tg_decode_start(d, S("gzip"), 0), TG_DECODE_OK);
    for (size_t i = 0; i < g.len; i++)
        assert_int_equal(tg_decode_feed(d, (char *)g.p + i, 1, stop_after_one, &got), TG_DECODE_OK);
    assert_int_equal(tg_decode_end(d), TG_DECODE_OK); /* stopped by choice: not truncated */
    assert_true(got > 0 && got < sizeof ANSWER - 1);  /* one piece, then nothing */
    enc_free(&g);
    tg_decode_free(d);
}

static void expect_accept(const char *in, const char *want)
{
    char out[256];
    size_t n = tg_decode_accept(in, strlen(in), out, strlen(in) + 8);
    assert_true(n <= strlen(in) + 8);
    out[n] = '\0';
    assert_string_equal(out, want);
}

static void test_accept(void **state)
{
    (void)state;
    expect_accept("gzip, deflate", "gzip,deflate");
    expect_accept("gzip, deflate, br, zstd", "gzip,deflate,br,zstd");
    expect_accept("gzip;q=1.0, compress;q=0.5, br;q=0.1", "gzip;q=1.0,br;q=0.1");
    expect_accept("compress", "identity");
    expect_accept("*", "identity");
    expect_accept("", "identity");
    expect_accept("x", "identity");
    expect_accept(" identity ;q=1 , *;q=0", "identity ;q=1");
    expect_accept("GZIP,,x-gzip", "GZIP,x-gzip");
    /* Refusals go: what is left never lets the upstream pick a coding the meter cannot read. */
    expect_accept("compress, identity;q=0", "identity");
    expect_accept("gzip;q=0, br", "br");
    expect_accept("gzip; q=0.000, zstd;q=0.5", "zstd;q=0.5");
    expect_accept("gzip;q=0.01", "gzip;q=0.01");
    expect_accept("gzip;Q=0", "identity");
    /* The values common clients send are answered from a table: each gives what the walk
     * gives for the same list spelt another way (a leading space skips the table), and a
     * buffer too small for the answer takes the walk (which drops what does not fit). */
    static const char *const common[] = {"gzip, deflate", "identity", "gzip, deflate, br",
                                         "gzip, deflate, br, zstd", "gzip"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        char spelt[64], want[64], got[64];
        snprintf(spelt, sizeof spelt, " %s", common[i]);
        size_t wn = tg_decode_accept(spelt, strlen(spelt), want, sizeof want);
        size_t gn = tg_decode_accept(common[i], strlen(common[i]), got, sizeof got);
        assert_int_equal(gn, wn);
        assert_memory_equal(got, want, wn);
        wn = tg_decode_accept(spelt, strlen(spelt), want, 5);
        gn = tg_decode_accept(common[i], strlen(common[i]), got, 5);
        assert_int_equal(gn, wn);
        assert_memory_equal(got, want, wn);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cut_and_piece),
        cmocka_unit_test(test_deflate_zlib_and_raw),
        cmocka_unit_test(test_concatenated),
        cmocka_unit_test(test_stacked),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_zstd_frames_only),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_cap_grows_with_input),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_sink_stops),
        cmocka_unit_test(test_accept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
