/* Sealed streams: see stream.h for the layout. The writer keeps one frame's data
 * (TG_STREAM_CHUNK) and the reader one frame, so a month of events is never in memory. */
#include "crypt/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypt/chunk.h"

static const unsigned char magic[8] = {'T', 'G', 'S', 'T', 'R', 'M', 0x01, 0x00};
#define BLOB_MAX (TG_STREAM_CHUNK + TG_SEAL_OVERHEAD)

struct tg_sealw {
    FILE *f;
    tg_kek_t kek;
    uint64_t off; /* where the next frame goes */
    size_t n;     /* data waiting in buf */
    unsigned char buf[TG_STREAM_CHUNK];
};

struct tg_sealr {
    FILE *f;
    tg_kek_t kek;
    char what[256];
    uint64_t off;
    int done;          /* the final frame was read */
    unsigned char *pt; /* the last frame's data (wiped when replaced) */
    size_t ptn;
    unsigned char *blob; /* BLOB_MAX */
};

int tg_sealw_open(FILE *f, const tg_kek_t *kek, tg_sealw_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_sealw_t *w = malloc(sizeof *w);
    if (!w) return tg_err_set(err, "sealed stream: out of memory");
    w->f = f;
    w->kek = *kek;
    w->off = TG_STREAM_HEAD;
    w->n = 0;
    if (fwrite(magic, 1, 8, f) != 8 || fwrite(kek->id, 1, TG_KEK_ID_LEN, f) != TG_KEK_ID_LEN) {
        tg_sealw_free(w);
        return tg_err_set(err, "sealed stream: write failed");
    }
    *out = w;
    return 0;
}

static int flush_frame(tg_sealw_t *w, int final, tg_err_t *err)
{
    unsigned char *frame;
    size_t fn;
    if (tg_chunk_seal(&w->kek, w->buf, w->n, w->off, final, &frame, &fn, err) != 0) return -1;
    size_t put = fwrite(frame, 1, fn, w->f);
    free(frame);
    if (put != fn) return tg_err_set(err, "sealed stream: write failed");
    w->off += fn;
    w->n = 0;
    return 0;
}

int tg_sealw_write(tg_sealw_t *w, const void *p, size_t n, tg_err_t *err)
{
    const unsigned char *c = p;
    while (n) {
        size_t take = TG_STREAM_CHUNK - w->n < n ? TG_STREAM_CHUNK - w->n : n;
        memcpy(w->buf + w->n, c, take);
        w->n += take, c += take, n -= take;
        if (w->n == TG_STREAM_CHUNK && flush_frame(w, 0, err) != 0) return -1;
    }
    return 0;
}

int tg_sealw_finish(tg_sealw_t *w, tg_err_t *err)
{
    int rc = flush_frame(w, 1, err);
    tg_sealw_free(w);
    return rc;
}

void tg_sealw_free(tg_sealw_t *w)
{
    if (w) tg_crypt_free(w, sizeof *w); /* wipes the KEK and the data */
}

int tg_stream_is_sealed(FILE *f)
{
    unsigned char head[8];
    size_t got = fread(head, 1, sizeof head, f);
    if (ferror(f)) return -1;
    rewind(f);
    return got == sizeof head && memcmp(head, magic, sizeof magic) == 0;
}

int tg_sealr_open(FILE *f, const tg_kek_t *kek, const char *what, tg_sealr_t **out, tg_err_t *err)
{
    *out = NULL;
    unsigned char head[TG_STREAM_HEAD];
    if (fread(head, 1, sizeof head, f) != sizeof head || memcmp(head, magic, sizeof magic) != 0)
        return tg_err_set(err, "%s: not a sealed tollgate file (no header)", what);
    if (!kek || memcmp(head + 8, kek->id, TG_KEK_ID_LEN) != 0) {
        tg_kek_t need;
        char id[2 * TG_KEK_ID_LEN + 1];
        memcpy(need.id, head + 8, TG_KEK_ID_LEN);
        tg_kek_id_hex(&need, id);
        return tg_err_set(err, "%s is sealed by the key-encryption key id %s%s", what, id,
                          kek ? ", not by the configured one"
                              : ": configure encryption (encryption.kek_file or kek_env) with "
                                "that key to read it");
    }
    tg_sealr_t *r = calloc(1, sizeof *r);
    if (!r || !(r->blob = malloc(BLOB_MAX))) {
        free(r);
        return tg_err_set(err, "sealed stream: out of memory");
    }
    r->f = f;
    r->kek = *kek;
    r->off = TG_STREAM_HEAD;
    snprintf(r->what, sizeof r->what, "%s", what);
    *out = r;
    return 0;
}

int tg_sealr_next(tg_sealr_t *r, const unsigned char **data, size_t *n, tg_err_t *err)
{
    tg_crypt_free(r->pt, r->ptn);
    r->pt = NULL, r->ptn = 0;
    unsigned char head[TG_CHUNK_HEAD];
    size_t got = fread(head, 1, sizeof head, r->f);
    if (r->done) {
        if (got == 0 && !ferror(r->f)) return 0;
        return tg_err_set(err, "%s: data after the final frame (offset %llu)", r->what,
                          (unsigned long long)r->off);
    }
    if (got == 0 && !ferror(r->f))
        return tg_err_set(err, "%s: ends without its final frame (cut short at offset %llu)",
                          r->what, (unsigned long long)r->off);
    size_t bn = got == sizeof head ? tg_chunk_len(head, BLOB_MAX) : 0;
    if (bn == 0 || fread(r->blob, 1, bn, r->f) != bn)
        return tg_err_set(err, "%s: torn frame at offset %llu (the file is cut or damaged)",
                          r->what, (unsigned long long)r->off);
    /* The final flag is in the AAD: a frame that is not final opens only as not final. */
    int peek = fgetc(r->f), final = peek == EOF;
    if (peek != EOF) ungetc(peek, r->f);
    tg_err_t why = {{0}};
    if (tg_chunk_open(&r->kek, r->blob, bn, r->off, final, &r->pt, &r->ptn, &why) != 0) {
        /* The last frame in the file opens as a middle one: cut at a frame boundary. */
        if (final && tg_chunk_open(&r->kek, r->blob, bn, r->off, 0, &r->pt, &r->ptn, &why) == 0)
            return tg_err_set(err, "%s: ends without its final frame (cut short at offset %llu)",
                              r->what, (unsigned long long)(r->off + TG_CHUNK_HEAD + bn));
        return tg_err_set(err, "%s: frame at offset %llu: %s", r->what, (unsigned long long)r->off,
                          why.msg);
    }
    r->off += TG_CHUNK_HEAD + bn;
    r->done = final;
    *data = r->pt;
    *n = r->ptn;
    return 1;
}

void tg_sealr_free(tg_sealr_t *r)
{
    if (!r) return;
    tg_crypt_free(r->pt, r->ptn);
    free(r->blob);
    tg_kek_wipe(&r->kek);
    free(r);
}

int tg_stream_rekey(const char *path, const tg_kek_t *from, const tg_kek_t *to, size_t *frames,
                    tg_err_t *err)
{
    *frames = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tg_err_set(err, "%s: %s", path, strerror(errno));
    unsigned char head[TG_STREAM_HEAD];
    int rc = -1;
    ssize_t got = pread(fd, head, sizeof head, 0);
    if (got != (ssize_t)sizeof head || memcmp(head, magic, sizeof magic) != 0) {
        tg_err_set(err, "%s: not a sealed tollgate file", path);
    } else if (memcmp(head + 8, to->id, TG_KEK_ID_LEN) == 0) {
        rc = 0;
    } else if (memcmp(head + 8, from->id, TG_KEK_ID_LEN) != 0) {
        tg_kek_t other;
        char id[2 * TG_KEK_ID_LEN + 1];
        memcpy(other.id, head + 8, TG_KEK_ID_LEN);
        tg_kek_id_hex(&other, id);
        tg_err_set(err,
                   "%s is sealed by the key-encryption key id %s, neither the current "
                   "one nor the new one",
                   path, id);
    } else {
        memcpy(head + 8, to->id, TG_KEK_ID_LEN);
        rc = tg_chunk_rekey_file(path, fd, head, sizeof head, BLOB_MAX, from, to, 1, frames, err)
                 ? -1
                 : 1;
    }
    close(fd);
    return rc;
}
