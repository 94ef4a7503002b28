/* The archive: see archive.h. Events are read through tg_store_query (one statement, so
 * one consistent snapshot), each row becomes one compact JSON object (jansson) fed to a
 * zstd stream (libzstd, level 3: the default, fast; JSON lines of events compress about
 * tenfold at it); the ids go into a SHA-256 (OpenSSL EVP) in order. Reading back
 * decompresses and parses every line again, so the check covers the compression, the
 * JSON and the file system, not a copy kept in memory. */
#include "archive/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "util/buf.h"

#define ZSTD_LEVEL 3
#define MAX_LINE   (1u << 20) /* an event is < 2 KB; a longer line is not ours */
#define EXPORT_SQL "SELECT * FROM usage_events WHERE ts_us < CAST(?1 AS INTEGER) ORDER BY id"

/* ---- the id checksum ---- */

static void sha_add(EVP_MD_CTX *md, int64_t id)
{
    unsigned char b[8];
    uint64_t u = (uint64_t)id;
    for (int i = 7; i >= 0; i--, u >>= 8)
        b[i] = (unsigned char)(u & 0xff);
    EVP_DigestUpdate(md, b, sizeof b);
}

static void sha_hex(EVP_MD_CTX *md, char out[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(md, d, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- writing ---- */

typedef struct writer {
    FILE *f;
    ZSTD_CCtx *z;
    void *zout;
    size_t zout_cap;
    EVP_MD_CTX *md;
    const char **names; /* the columns, copied by reference: valid during the query */
    size_t ncols;
    int id_col; /* index of "id", -1 when missing */
    int64_t count;
    tg_err_t *err;
} writer_t;

/* Feeds n bytes (or, with end, the frame's end) through zstd into the file. */
static int zwrite(writer_t *w, const void *p, size_t n, int end)
{
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
        size_t left = ZSTD_compressStream2(w->z, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            return tg_err_set(w->err, "archive: zstd: %s", ZSTD_getErrorName(left));
        if (out.pos && fwrite(w->zout, 1, out.pos, w->f) != out.pos)
            return tg_err_set(w->err, "archive: write: %s", strerror(errno));
        if (end ? left == 0 : in.pos == in.size) return 0;
    }
}

static int w_columns(const char *const *names, size_t n, void *ud)
{
    writer_t *w = ud;
    w->names = (const char **)names;
    w->ncols = n;
    w->id_col = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], "id") == 0) w->id_col = (int)i;
    return w->id_col < 0 ? tg_err_set(w->err, "archive: usage_events has no id column") : 0;
}

/* A JSON string of text; bytes that are not UTF-8 (a path written by a broken client)
 * become '?', the one change an archived event can see. */
static json_t *text_value(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j) return j;
    char *c = malloc(len + 1);
    if (!c) return NULL;
    for (size_t i = 0; i < len; i++)
        c[i] = (unsigned char)s[i] < 0x80 && s[i] ? s[i] : '?';
    j = json_stringn(c, len);
    free(c);
    return j;
}

static int w_row(const tg_sql_value_t *v, size_t n, void *ud)
{
    writer_t *w = ud;
    if (v[w->id_col].type != TG_SQL_INT) return tg_err_set(w->err, "archive: an event without id");
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++) {
        json_t *x;
        switch (v[i].type) {
        case TG_SQL_INT: x = json_integer(v[i].i); break;
        case TG_SQL_REAL: x = json_real(v[i].r); break;
        case TG_SQL_TEXT:
        case TG_SQL_BLOB: x = text_value(v[i].s, v[i].len); break;
        default: x = json_null();
        }
        if (!x || json_object_set_new(o, w->names[i], x) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!line) return tg_err_set(w->err, "archive: out of memory");
    size_t len = strlen(line);
    line[len] = '\n'; /* over the NUL: written with its length */
    int rc = zwrite(w, line, len + 1, 0);
    free(line);
    if (rc != 0) return rc;
    sha_add(w->md, v[w->id_col].i);
    w->count++;
    return 0;
}

/* Writes the archive into the new file tmp; *count and sha of what was written. */
static int write_file(tg_store_t *s, int64_t before_us, const char *tmp, int64_t *count,
                      char sha[65], tg_err_t *err)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return tg_err_set(err, "%s: %s", tmp, strerror(errno));
    writer_t w = {.f = fdopen(fd, "wb"),
                  .z = ZSTD_createCCtx(),
                  .zout_cap = ZSTD_CStreamOutSize(),
                  .md = EVP_MD_CTX_new(),
                  .err = err};
    w.zout = malloc(w.zout_cap);
    int rc = -1;
    if (!w.f) {
        close(fd);
        tg_err_set(err, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (!w.z || !w.zout || !w.md || !EVP_DigestInit_ex(w.md, EVP_sha256(), NULL)) {
        tg_err_set(err, "archive: out of memory");
        goto out;
    }
    ZSTD_CCtx_setParameter(w.z, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(w.z, ZSTD_c_checksumFlag, 1); /* zstd's own frame checksum too */
    char before[24];
    snprintf(before, sizeof before, "%lld", (long long)before_us);
    const char *params[1] = {before};
    const tg_sql_sink_t sink = {w_columns, w_row, &w};
    if ((rc = tg_store_query(s, EXPORT_SQL, params, 1, &sink, err)) != 0) goto out;
    if ((rc = zwrite(&w, NULL, 0, 1)) != 0) goto out;
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
        rc = tg_err_set(err, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    *count = w.count;
    sha_hex(w.md, sha);
out:
    if (w.f && fclose(w.f) != 0 && rc == 0) rc = tg_err_set(err, "%s: %s", tmp, strerror(errno));
    if (rc != 0) unlink(tmp); /* ours: created above */
    ZSTD_freeCCtx(w.z);
    free(w.zout);
    EVP_MD_CTX_free(w.md);
    return rc;
}

/* ---- reading ---- */

typedef struct reader {
    EVP_MD_CTX *md;
    int64_t count;
    int64_t *ids; /* NULL: not kept */
    size_t nids, cap;
    int keep;
} reader_t;

static int read_line(reader_t *r, const char *p, size_t n, const char *path, tg_err_t *err)
{
    json_error_t je;
    json_t *o = json_loadb(p, n, JSON_ALLOW_NUL, &je);
    json_t *id = json_object_get(o, "id");
    if (!o || !json_is_object(o) || !json_is_integer(id)) {
        json_decref(o);
        return tg_err_set(err, "%s:%lld: not an archived event (%s)", path, (long long)r->count + 1,
                          o ? "no integer id" : je.text);
    }
    int64_t v = json_integer_value(id);
    json_decref(o);
    sha_add(r->md, v);
    r->count++;
    if (!r->keep) return 0;
    if (r->nids == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        int64_t *ids = realloc(r->ids, cap * sizeof *ids);
        if (!ids) return tg_err_set(err, "archive: out of memory");
        r->ids = ids;
        r->cap = cap;
    }
    r->ids[r->nids++] = v;
    return 0;
}

int tg_archive_read(const char *path, int64_t *count, char sha256[65], int64_t **ids, size_t *nids,
                    tg_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tg_err_set(err, "%s: %s", path, strerror(errno));
    reader_t r = {.md = EVP_MD_CTX_new(), .keep = ids != NULL};
    ZSTD_DCtx *z = ZSTD_createDCtx();
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
    char *in = malloc(in_cap), *out = malloc(out_cap);
    tg_buf_t line = TG_BUF_INIT(MAX_LINE);
    int rc = -1;
    size_t last = 1; /* ZSTD_decompressStream's hint: 0 once a frame is complete */
    if (!r.md || !z || !in || !out || !EVP_DigestInit_ex(r.md, EVP_sha256(), NULL)) {
        tg_err_set(err, "archive: out of memory");
        goto done;
    }
    size_t got;
    while ((got = fread(in, 1, in_cap, f)) > 0) {
        ZSTD_inBuffer ib = {in, got, 0};
        while (ib.pos < ib.size) {
            ZSTD_outBuffer ob = {out, out_cap, 0};
            last = ZSTD_decompressStream(z, &ob, &ib);
            if (ZSTD_isError(last)) {
                tg_err_set(err, "%s: zstd: %s", path, ZSTD_getErrorName(last));
                goto done;
            }
            for (size_t i = 0; i < ob.pos; i++) {
                if (out[i] != '\n') {
                    if (tg_buf_add(&line, out + i, 1) != 0) {
                        tg_err_set(err, "%s:%lld: line too long", path, (long long)r.count + 1);
                        goto done;
                    }
                    continue;
                }
                if (read_line(&r, tg_buf_str(&line), tg_buf_len(&line), path, err) != 0) goto done;
                tg_buf_reset(&line);
            }
        }
    }
    if (ferror(f)) {
        tg_err_set(err, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (last != 0 || tg_buf_len(&line) > 0) {
        tg_err_set(err, "%s: truncated (the zstd frame or the last line is incomplete)", path);
        goto done;
    }
    *count = r.count;
    sha_hex(r.md, sha256);
    if (ids) {
        *ids = r.ids;
        *nids = r.nids;
        r.ids = NULL;
    }
    rc = 0;
done:
    fclose(f);
    free(r.ids);
    EVP_MD_CTX_free(r.md);
    ZSTD_freeDCtx(z);
    free(in);
    free(out);
    tg_buf_free(&line);
    return rc;
}

/* ---- the whole run ---- */

int tg_archive_run(tg_store_t *s, int64_t before_us, const char *out_path, tg_archive_stats_t *st,
                   tg_err_t *err)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(out_path, &sb) == 0)
        return tg_err_set(err, "%s: already exists (an archive is never overwritten)", out_path);
    size_t plen = strlen(out_path);
    char *tmp = malloc(plen + sizeof ".partial");
    if (!tmp) return tg_err_set(err, "out of memory");
    memcpy(tmp, out_path, plen);
    memcpy(tmp + plen, ".partial", sizeof ".partial");

    int64_t written = 0, reread = 0, *ids = NULL;
    size_t nids = 0;
    char sha_w[65], sha_r[65];
    int rc = write_file(s, before_us, tmp, &written, sha_w, err);
    if (rc != 0) { /* nothing of ours to remove: a tmp that was there is another run's */
        free(tmp);
        return rc;
    }
    rc = tg_archive_read(tmp, &reread, sha_r, &ids, &nids, err);
    if (rc == 0 && (reread != written || strcmp(sha_r, sha_w) != 0))
        rc = tg_err_set(err,
                        "%s: read back %lld events (checksum %.12s), wrote %lld (%.12s): nothing "
                        "purged",
                        tmp, (long long)reread, sha_r, (long long)written, sha_w);
    /* link, not rename: an out_path created meanwhile is not replaced. */
    if (rc == 0 && link(tmp, out_path) != 0)
        rc = tg_err_set(err, "%s: %s", out_path,
                        errno == EEXIST ? "already exists (an archive is never overwritten)"
                                        : strerror(errno));
    unlink(tmp);
    free(tmp);
    if (rc != 0) {
        free(ids);
        return rc;
    }
    st->events = written;
    memcpy(st->sha256, sha_w, sizeof st->sha256);
    if (stat(out_path, &sb) == 0) st->bytes = (int64_t)sb.st_size;
    rc = tg_store_events_delete(s, ids, nids, before_us, &st->deleted, err);
    free(ids);
    return rc;
}
