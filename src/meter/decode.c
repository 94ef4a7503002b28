/* Content-coding decoder for the meter's copy of an answer: see decode.h.
 *
 * The codings of a list form a chain of stages, the last-applied coding first: each stage
 * inflates into its own fixed output buffer, and each full (or final) buffer is pushed
 * through the next stage before the stage goes on, so at most one buffer per stage is
 * live and nothing is allocated per piece. The cap counts every stage's output, so a
 * chain cannot hide a bomb in a stage whose own output is small (gzip of a million empty
 * gzip members) and CPU stays proportional to cap + input. */
#include "meter/decode.h"

#include <brotli/decode.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

/* RFC 9659: a zstd content coding uses windows of at most 8 MiB; larger ones (up to the
 * library's 128 MiB default) would let one answer pin that much memory. */
#define ZSTD_WINDOW_LOG_MAX 23
/* A zstd state grown past this by a large window is freed when its answer ends, so an idle
 * keep-alive connection does not hold megabytes (zlib's 32 KiB window is kept). */
#define ZSTD_KEEP_MAX (512u << 10)

typedef enum { C_NONE = 0, C_GZIP, C_DEFLATE, C_BR, C_ZSTD } coding_t;

typedef struct {
    coding_t coding;
    int fed;  /* bytes reached this stage in this answer */
    int done; /* at the end of a stream (gzip member, zstd frame, deflate or br stream) */
    /* zlib (gzip, deflate): made once, reset per answer */
    z_stream zs;
    int z_ready;
    unsigned char head[2];  /* deflate: the first two bytes, held to tell zlib from raw */
    int nhead;              /* ... how many are held; 2 once decided */
    BrotliDecoderState *br; /* made per br answer: libbrotli has no reset */
    ZSTD_DCtx *zd;          /* made once, reset per answer */
    unsigned char zh[18];   /* zstd: the frame header being held, checked before libzstd sees it */
    int nzh;                /* ... its bytes held; -1 inside a frame (header passed on) */
    unsigned char *out;     /* TG_DECODE_SCRATCH bytes, made on the stage's first use */
} stage_t;

struct tg_decode {
    stage_t st[TG_DECODE_MAX_STAGES];
    int n; /* stages of this answer, st[0] first applied to the input */
    tg_decode_status_t status;
    int stopped; /* the sink asked to stop: the rest of the answer is ignored */
    uint64_t cap, total;
    uint64_t in; /* encoded bytes fed this answer: the cap grows by TG_DECODE_RATIO per byte */
    tg_decode_sink_fn sink;
    void *ud;
};

tg_decode_t *tg_decode_new(void)
{
    return calloc(1, sizeof(tg_decode_t));
}

void tg_decode_free(tg_decode_t *d)
{
    if (!d) return;
    for (int i = 0; i < TG_DECODE_MAX_STAGES; i++) {
        stage_t *s = &d->st[i];
        if (s->z_ready) inflateEnd(&s->zs);
        if (s->br) BrotliDecoderDestroyInstance(s->br);
        ZSTD_freeDCtx(s->zd);
        free(s->out);
    }
    free(d);
}

void tg_decode_trim(tg_decode_t *d)
{
    for (int i = 0; d && i < TG_DECODE_MAX_STAGES; i++) {
        stage_t *s = &d->st[i];
        if (s->br) BrotliDecoderDestroyInstance(s->br);
        s->br = NULL;
        if (s->zd && ZSTD_sizeof_DCtx(s->zd) > ZSTD_KEEP_MAX) {
            ZSTD_freeDCtx(s->zd);
            s->zd = NULL;
        }
    }
}

/* ---- the Content-Encoding list -------------------------------------------- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int token_is(const char *t, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(t, name, n) == 0;
}

/* -1 for a coding this module does not decode. */
static int coding_of(const char *t, size_t n)
{
    if (token_is(t, n, "identity")) return C_NONE;
    if (token_is(t, n, "gzip") || token_is(t, n, "x-gzip")) return C_GZIP;
    if (token_is(t, n, "deflate")) return C_DEFLATE;
    if (token_is(t, n, "br")) return C_BR;
    if (token_is(t, n, "zstd")) return C_ZSTD;
    return -1;
}

/* Calls fn for each trimmed, non-empty element of a comma-separated list; stops when fn
 * returns non-zero and returns that. */
static int each_element(const char *p, size_t n, int (*fn)(void *, const char *, size_t), void *ud)
{
    size_t i = 0;
    while (i < n) {
        size_t a = i;
        while (i < n && p[i] != ',')
            i++;
        size_t b = i++;
        while (a < b && is_ows(p[a]))
            a++;
        while (b > a && is_ows(p[b - 1]))
            b--;
        if (b > a) {
            int rc = fn(ud, p + a, b - a);
            if (rc) return rc;
        }
    }
    return 0;
}

static int not_identity(void *ud, const char *t, size_t n)
{
    (void)ud;
    return coding_of(t, n) != C_NONE;
}

int tg_decode_is_identity(const char *coding, size_t n)
{
    return !coding || each_element(coding, n, not_identity, NULL) == 0;
}

struct parse {
    coding_t c[TG_DECODE_MAX_STAGES];
    int n;
};

static int add_coding(void *ud, const char *t, size_t n)
{
    struct parse *ps = ud;
    int c = coding_of(t, n);
    if (c < 0 || (c != C_NONE && ps->n == TG_DECODE_MAX_STAGES)) return 1;
    if (c != C_NONE) ps->c[ps->n++] = (coding_t)c;
    return 0;
}

/* ---- the stages ------------------------------------------------------------ */

static int fail(tg_decode_t *d, tg_decode_status_t s)
{
    if (d->status == TG_DECODE_OK) d->status = s;
    return -1;
}

static int feed_stage(tg_decode_t *d, int i, const unsigned char *p, size_t n);

/* Output of stage i (n > 0; i = -1: the input itself, when there is no stage): to the
 * next stage, or to the sink past the last. Counted
 * against the cap first; the part within the cap still goes on. */
static int pass(tg_decode_t *d, int i, const unsigned char *p, size_t n)
{
    int over = 0;
    /* (in counts received bytes: far below 2^58, where the product would wrap.) */
    uint64_t grow = d->n ? TG_DECODE_RATIO * d->in : 0;
    uint64_t limit = grow > UINT64_MAX - d->cap ? UINT64_MAX : d->cap + grow;
    if (d->cap && n > limit - d->total) {
        n = (size_t)(limit - d->total);
        over = 1;
    }
    d->total += n;
    int rc = 0;
    if (n) rc = i + 1 < d->n ? feed_stage(d, i + 1, p, n) : d->sink(d->ud, (const char *)p, n);
    if (over) return fail(d, TG_DECODE_CAP);
    if (rc != 0 && d->status == TG_DECODE_OK) d->stopped = 1; /* the sink's own choice */
    return rc;
}

static int z_run(tg_decode_t *d, int i)
{
    stage_t *s = &d->st[i];
    for (;;) {
        if (s->done) {
            if (s->zs.avail_in == 0) return 0;
            /* More after a gzip member is the next member; after a deflate stream,
             * garbage. (inflateReset keeps next_in and avail_in.) */
            if (s->coding != C_GZIP || inflateReset(&s->zs) != Z_OK)
                return fail(d, TG_DECODE_CORRUPT);
            s->done = 0;
        }
        s->zs.next_out = s->out;
        s->zs.avail_out = TG_DECODE_SCRATCH;
        int rc = inflate(&s->zs, Z_NO_FLUSH);
        size_t got = TG_DECODE_SCRATCH - s->zs.avail_out;
        if (got && pass(d, i, s->out, got) != 0) return -1;
        if (rc == Z_STREAM_END) {
            s->done = 1;
            continue;
        }
        if (rc == Z_BUF_ERROR) return 0; /* no progress: needs input */
        if (rc != Z_OK) return fail(d, TG_DECODE_CORRUPT);
        if (s->zs.avail_in == 0 && s->zs.avail_out != 0) return 0;
    }
}

/* zlib's windowBits for a coding: gzip only (not zlib) for gzip; for deflate, zlib when
 * the first two bytes are a zlib header (CM 8, CINFO <= 7, the FCHECK multiple of 31, as
 * RFC 1950 defines it), else raw. */
static int z_bits(const stage_t *s)
{
    if (s->coding == C_GZIP) return 15 + 16;
    unsigned h0 = s->head[0], h1 = s->head[1];
    int zlib = (h0 & 0x0f) == 8 && (h0 >> 4) <= 7 && ((h0 << 8) | h1) % 31 == 0;
    return zlib ? 15 : -15;
}

static int z_feed(tg_decode_t *d, int i, const unsigned char *p, size_t n)
{
    stage_t *s = &d->st[i];
    if (s->coding == C_DEFLATE && s->nhead < 2) {
        while (n && s->nhead < 2) {
            s->head[s->nhead++] = *p++;
            n--;
        }
        if (s->nhead < 2) return 0;
        int bits = z_bits(s);
        if (!s->z_ready ? inflateInit2(&s->zs, bits) != Z_OK : inflateReset2(&s->zs, bits) != Z_OK)
            return fail(d, TG_DECODE_CORRUPT);
        s->z_ready = 1;
        s->zs.next_in = s->head;
        s->zs.avail_in = 2;
        if (z_run(d, i) != 0) return -1;
    }
    /* zlib counts input in uInt: a piece is fed in slices it can hold. */
    while (n) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        s->zs.next_in = (Bytef *)p;
        s->zs.avail_in = (uInt)k;
        if (z_run(d, i) != 0) return -1;
        p += k;
        n -= k;
    }
    return 0;
}

static int br_feed(tg_decode_t *d, int i, const unsigned char *p, size_t n)
{
    stage_t *s = &d->st[i];
    if (!s->br && !(s->br = BrotliDecoderCreateInstance(NULL, NULL, NULL)))
        return fail(d, TG_DECODE_CORRUPT);
    size_t ain = n;
    const uint8_t *nin = p;
    for (;;) {
        if (s->done) return ain ? fail(d, TG_DECODE_CORRUPT) : 0; /* bytes past the end */
        size_t aout = TG_DECODE_SCRATCH;
        uint8_t *nout = s->out;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(s->br, &ain, &nin, &aout, &nout, NULL);
        size_t got = TG_DECODE_SCRATCH - aout;
        if (got && pass(d, i, s->out, got) != 0) return -1;
        if (r == BROTLI_DECODER_RESULT_SUCCESS)
            s->done = 1;
        else if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
            return 0;
        else if (r != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT)
            return fail(d, TG_DECODE_CORRUPT);
    }
}

/* The length of the zstd frame header starting in h (n bytes so far; RFC 8878 §3.1.1.1 and
 * §3.1.2): 0 while n is too short to tell, -1 when h does not start a zstd frame (standard
 * or skippable). Checked here, not by libzstd, because libzstd also decodes the legacy
 * formats of zstd before 0.8 (other magic numbers, no window limit) and, when a header
 * fails, tries them on whatever piece it was fed next: a frame cut in other places would
 * decode differently (found by fuzz_decode). */
static int zstd_header_len(const unsigned char *h, int n)
{
    if (n < 4) return 0;
    uint32_t magic =
        (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    if ((magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) return 8;
    if (magic != ZSTD_MAGICNUMBER) return -1;
    if (n < 5) return 0;
    unsigned fhd = h[4], single = (fhd >> 5) & 1;
    static const int did[4] = {0, 1, 2, 4}, fcs[4] = {0, 2, 4, 8};
    int fcs_len = (fhd >> 6) == 0 ? (int)single : fcs[fhd >> 6];
    return 5 + (single ? 0 : 1) + did[fhd & 3] + fcs_len;
}

/* Decodes from in until it is used up or a frame ends (then in->pos is past the frame). */
static int zstd_run(tg_decode_t *d, int i, ZSTD_inBuffer *in)
{
    stage_t *s = &d->st[i];
    for (;;) {
        ZSTD_outBuffer out = {s->out, TG_DECODE_SCRATCH, 0};
        size_t r = ZSTD_decompressStream(s->zd, &out, in);
        if (ZSTD_isError(r)) return fail(d, TG_DECODE_CORRUPT);
        if (out.pos && pass(d, i, s->out, out.pos) != 0) return -1;
        if (r == 0) { /* the frame ended and is flushed: what follows starts the next */
            s->done = 1;
            s->nzh = 0;
            return 0;
        }
        if (in->pos == in->size && out.pos < out.size) return 0;
    }
}

static int zstd_feed(tg_decode_t *d, int i, const unsigned char *p, size_t n)
{
    stage_t *s = &d->st[i];
    while (n) {
        if (s->nzh >= 0) { /* at a frame's start: its header is held until whole */
            s->done = 0;
            int want;
            while ((want = zstd_header_len(s->zh, s->nzh)) == 0 || s->nzh < want) {
                if (want < 0) return fail(d, TG_DECODE_CORRUPT);
                if (!n) return 0;
                s->zh[s->nzh++] = *p++;
                n--;
            }
            ZSTD_inBuffer hin = {s->zh, (size_t)s->nzh, 0};
            s->nzh = -1;
            if (zstd_run(d, i, &hin) != 0) return -1;
            continue; /* (hin is used up; only an empty skippable frame ends in it) */
        }
        ZSTD_inBuffer in = {p, n, 0};
        if (zstd_run(d, i, &in) != 0) return -1;
        p += in.pos;
        n -= in.pos;
    }
    return 0;
}

static int feed_stage(tg_decode_t *d, int i, const unsigned char *p, size_t n)
{
    stage_t *s = &d->st[i];
    s->fed = 1;
    switch (s->coding) {
    case C_GZIP:
    case C_DEFLATE: return z_feed(d, i, p, n);
    case C_BR: return br_feed(d, i, p, n);
    case C_ZSTD: return zstd_feed(d, i, p, n);
    default: return fail(d, TG_DECODE_UNKNOWN);
    }
}

/* ---- the answer ------------------------------------------------------------ */

static int reset_stage(stage_t *s, coding_t c)
{
    if (!s->out && !(s->out = malloc(TG_DECODE_SCRATCH))) return -1;
    s->coding = c;
    s->fed = s->done = 0;
    s->nhead = s->nzh = 0;
    if (s->br) {
        BrotliDecoderDestroyInstance(s->br);
        s->br = NULL;
    }
    if (c == C_GZIP) {
        if (!s->z_ready) {
            memset(&s->zs, 0, sizeof s->zs);
            if (inflateInit2(&s->zs, 15 + 16) != Z_OK) return -1;
            s->z_ready = 1;
        } else if (inflateReset2(&s->zs, 15 + 16) != Z_OK) {
            return -1;
        }
    }
    if (c == C_DEFLATE && !s->z_ready) memset(&s->zs, 0, sizeof s->zs);
    if (c == C_ZSTD) {
        if (!s->zd) {
            if (!(s->zd = ZSTD_createDCtx())) return -1;
            if (ZSTD_isError(
                    ZSTD_DCtx_setParameter(s->zd, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX)))
                return -1;
        } else if (ZSTD_isError(ZSTD_DCtx_reset(s->zd, ZSTD_reset_session_only))) {
            return -1;
        }
    }
    return 0;
}

tg_decode_status_t tg_decode_start(tg_decode_t *d, const char *coding, size_t n, uint64_t cap)
{
    struct parse ps = {.n = 0};
    d->n = 0;
    d->cap = cap;
    d->total = d->in = 0;
    d->status = TG_DECODE_OK;
    d->stopped = 0;
    if (coding && each_element(coding, n, add_coding, &ps) != 0)
        return d->status = TG_DECODE_UNKNOWN;
    /* The list is in the order the codings were applied: the last one is undone first. */
    for (int k = 0; k < ps.n; k++)
        if (reset_stage(&d->st[k], ps.c[ps.n - 1 - k]) != 0) return d->status = TG_DECODE_CORRUPT;
    d->n = ps.n;
    return TG_DECODE_OK;
}

tg_decode_status_t tg_decode_feed(tg_decode_t *d, const char *p, size_t n, tg_decode_sink_fn sink,
                                  void *ud)
{
    if (d->status != TG_DECODE_OK || d->stopped || n == 0) return d->status;
    d->sink = sink;
    d->ud = ud;
    d->in += n;
    if (d->n == 0)
        pass(d, -1, (const unsigned char *)p, n); /* identity: straight to the sink */
    else
        feed_stage(d, 0, (const unsigned char *)p, n);
    return d->status;
}

tg_decode_status_t tg_decode_end(tg_decode_t *d)
{
    if (d->status != TG_DECODE_OK || d->stopped) return d->status;
    for (int i = 0; i < d->n; i++)
        if (d->st[i].fed && !d->st[i].done) return d->status = TG_DECODE_TRUNCATED;
    return d->status;
}

tg_decode_status_t tg_decode_status(const tg_decode_t *d)
{
    return d->status;
}

uint64_t tg_decode_total(const tg_decode_t *d)
{
    return d->total;
}

const char *tg_decode_flag(tg_decode_status_t s)
{
    switch (s) {
    case TG_DECODE_OK: return "";
    case TG_DECODE_UNKNOWN: return "coding_unknown";
    case TG_DECODE_CAP: return "decode_cap";
    default: return "decode_error";
    }
}

/* ---- Accept-Encoding ------------------------------------------------------- */

struct accept {
    char *out;
    size_t len, cap;
};

/* 1 when an Accept-Encoding element's parameters say q=0 (not acceptable). */
static int q_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ';') continue;
        size_t j = i + 1;
        while (j < n && is_ows(p[j]))
            j++;
        if (j + 1 >= n || (p[j] != 'q' && p[j] != 'Q') || p[j + 1] != '=') continue;
        for (j += 2; j < n && (p[j] == '0' || p[j] == '.'); j++)
            ;
        return j == n || p[j] == ';' || is_ows(p[j]);
    }
    return 0;
}

static int keep_accepted(void *ud, const char *t, size_t n)
{
    struct accept *a = ud;
    size_t k = 0;
    while (k < n && t[k] != ';' && !is_ows(t[k]))
        k++;
    /* Unknown codings go, and so does "*" (it would invite any coding); so do refusals
     * (q=0): "identity;q=0" alone would leave the upstream free to pick any coding. */
    if (coding_of(t, k) < 0 || q_zero(t + k, n - k)) return 0;
    if (a->len + (a->len ? 1 : 0) + n > a->cap) return 0;
    if (a->len) a->out[a->len++] = ',';
    memcpy(a->out + a->len, t, n);
    a->len += n;
    return 0;
}

size_t tg_decode_accept(const char *in, size_t n, char *out, size_t cap)
{
    /* What the common clients send, answered without the walk below (same result: the
     * unit test compares each with a spelling the walk reads). */
    static const struct {
        const char *in, *out;
        size_t in_n, out_n;
    } common[] = {
#define COMMON(i, o) {i, o, sizeof i - 1, sizeof o - 1}
        COMMON("gzip, deflate", "gzip,deflate"), /* the openai and httpx SDKs */
        COMMON("identity", "identity"),          /* Python's http.client */
        COMMON("gzip, deflate, br", "gzip,deflate,br"),
        COMMON("gzip, deflate, br, zstd", "gzip,deflate,br,zstd"),
        COMMON("gzip", "gzip"),
#undef COMMON
    };
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        if (n == common[i].in_n && !memcmp(in, common[i].in, n)) {
            if (common[i].out_n > cap) break;
            memcpy(out, common[i].out, common[i].out_n);
            return common[i].out_n;
        }
    struct accept a = {out, 0, cap};
    each_element(in, n, keep_accepted, &a);
    if (a.len == 0 && cap >= 8) {
        memcpy(out, "identity", sizeof "identity" - 1);
        a.len = 8;
    }
    return a.len;
}
