/* Test helpers: compressing fixtures with the encoders of the libraries the gateway decodes
 * with (zlib, libbrotlienc, libzstd). Header-only, for tests/unit/meter. */
#ifndef TG_TEST_METER_COMPRESS_H
#define TG_TEST_METER_COMPRESS_H

#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

struct enc {
    unsigned char *p;
    size_t len;
};

static inline void enc_free(struct enc *e)
{
    free(e->p);
    e->p = NULL;
    e->len = 0;
}

/* windowBits: 15 + 16 gzip, 15 zlib, -15 raw deflate. */
static inline struct enc z_enc(const void *in, size_t n, int bits)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    struct enc e = {malloc(deflateBound(&zs, n) + 64), 0};
    assert_non_null(e.p);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = e.p;
    zs.avail_out = (uInt)(deflateBound(&zs, n) + 64);
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    e.len = zs.total_out;
    deflateEnd(&zs);
    return e;
}

static inline struct enc br_enc(const void *in, size_t n)
{
    size_t cap = BrotliEncoderMaxCompressedSize(n) + 16;
    struct enc e = {malloc(cap), cap};
    assert_non_null(e.p);
    assert_true(BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, n, in, &e.len, e.p));
    return e;
}

static inline struct enc zstd_enc(const void *in, size_t n)
{
    size_t cap = ZSTD_compressBound(n);
    struct enc e = {malloc(cap), 0};
    assert_non_null(e.p);
    e.len = ZSTD_compress(e.p, cap, in, n, 3);
    assert_false(ZSTD_isError(e.len));
    return e;
}

static inline struct enc encode(const char *coding, const void *in, size_t n)
{
    if (strcmp(coding, "gzip") == 0) return z_enc(in, n, 15 + 16);
    if (strcmp(coding, "deflate") == 0) return z_enc(in, n, 15);
    if (strcmp(coding, "deflate-raw") == 0) return z_enc(in, n, -15);
    if (strcmp(coding, "br") == 0) return br_enc(in, n);
    if (strcmp(coding, "zstd") == 0) return zstd_enc(in, n);
    struct enc e = {malloc(n ? n : 1), n};
    memcpy(e.p, in, n);
    return e;
}

static inline void cat(struct enc *a, const struct enc *b)
{
    a->p = realloc(a->p, a->len + b->len);
    assert_non_null(a->p);
    memcpy(a->p + a->len, b->p, b->len);
    a->len += b->len;
}

#endif
