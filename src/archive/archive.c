/* The archive: see archive.h. Events are read through tg_store_query (one statement, so
 * one consistent snapshot), each row becomes one compact JSON object (yajl's generator)
 * fed to a zstd stream (libzstd, level 3: the default, fast; JSON lines of events compress
 * about tenfold at it); the ids go into a SHA-256 (OpenSSL EVP) in order. Reading back
 * decompresses and parses the whole file again (yajl's parser, callbacks, no tree), so the
 * check covers the compression, the JSON and the file system, not a copy kept in memory.
 * yajl rather than jansson: building and freeing a jansson tree per event was 70% of an
 * archive's CPU (300k events: 9.7 s of CPU). */
#include "archive/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include <zstd.h>

#include "crypt/stream.h"

#define ZSTD_LEVEL 3
/* $1 and BIGINT read alike in SQLite and PostgreSQL (tg_store_dialect). */
#define EXPORT_SQL "SELECT * FROM usage_events WHERE ts_us < CAST($1 AS BIGINT) ORDER BY id"

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
    const char *path; /* the file written, for its errors */
    FILE *f;
    ZSTD_CCtx *z;
    void *zout;
    size_t zout_cap;
    EVP_MD_CTX *md;
    yajl_gen g;
    const char *const *names; /* the columns: valid during the query */
    size_t ncols;
    int id_col; /* index of "id", -1 when missing */
    int64_t count;
    tg_sealw_t *sw; /* encryption configured: the compressed bytes are sealed */
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
        tg_err_t why = {{0}};
        if (out.pos && w->sw && tg_sealw_write(w->sw, w->zout, out.pos, &why) != 0)
            return tg_err_set(w->err, "%s: %s", w->path, why.msg);
        if (out.pos && !w->sw && fwrite(w->zout, 1, out.pos, w->f) != out.pos)
            return tg_err_set(w->err, "%s: %s", w->path, strerror(errno));
        if (end ? left == 0 : in.pos == in.size) return 0;
    }
}

static int w_columns(const char *const *names, size_t n, void *ud)
{
    writer_t *w = ud;
    w->names = names;
    w->ncols = n;
    w->id_col = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], "id") == 0) w->id_col = (int)i;
    return w->id_col < 0 ? tg_err_set(w->err, "archive: usage_events has no id column") : 0;
}

/* A JSON string of text; bytes that are not UTF-8 (a path written by a broken client)
 * become '?', the one change an archived event can see. */
static yajl_gen_status gen_text(yajl_gen g, const char *s, size_t len)
{
    yajl_gen_status st = yajl_gen_string(g, (const unsigned char *)s, len);
    if (st != yajl_gen_invalid_string) return st;
    unsigned char *c = malloc(len ? len : 1);
    if (!c) return yajl_gen_invalid_string;
    for (size_t i = 0; i < len; i++)
        c[i] = (unsigned char)s[i] < 0x80 ? (unsigned char)s[i] : '?';
    st = yajl_gen_string(g, c, len);
    free(c);
    return st;
}

static int w_row(const tg_sql_value_t *v, size_t n, void *ud)
{
    writer_t *w = ud;
    if (v[w->id_col].type != TG_SQL_INT) return tg_err_set(w->err, "archive: an event without id");
    yajl_gen g = w->g;
    yajl_gen_status st = yajl_gen_map_open(g);
    for (size_t i = 0; st == yajl_gen_status_ok && i < n; i++) {
        st = yajl_gen_string(g, (const unsigned char *)w->names[i], strlen(w->names[i]));
        if (st != yajl_gen_status_ok) break;
        switch (v[i].type) {
        case TG_SQL_INT: st = yajl_gen_integer(g, v[i].i); break;
        case TG_SQL_REAL:
            st = yajl_gen_double(g, v[i].r);
            if (st == yajl_gen_invalid_number) st = yajl_gen_null(g); /* NaN, infinity */
            break;
        case TG_SQL_TEXT:
        case TG_SQL_BLOB: st = gen_text(g, v[i].s, v[i].len); break;
        default: st = yajl_gen_null(g);
        }
    }
    if (st == yajl_gen_status_ok) st = yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    if (st == yajl_gen_status_ok) st = yajl_gen_get_buf(g, &buf, &len);
    if (st != yajl_gen_status_ok) {
        yajl_gen_clear(g);
        yajl_gen_reset(g, NULL);
        return tg_err_set(w->err, "archive: event %lld: JSON generator error %d",
                          (long long)v[w->id_col].i, (int)st);
    }
    int rc = zwrite(w, buf, len, 0);
    if (rc == 0) rc = zwrite(w, "\n", 1, 0);
    yajl_gen_clear(g);
    yajl_gen_reset(g, NULL);
    if (rc != 0) return rc;
    sha_add(w->md, v[w->id_col].i);
    w->count++;
    return 0;
}

/* Writes the archive into the new file tmp; *count and sha of what was written. */
static int write_file(tg_store_t *s, int64_t before_us, const char *tmp, const tg_kek_t *kek,
                      int64_t *count, char sha[65], tg_err_t *err)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) /* a run that is going on, or one killed midway */
        return tg_err_set(err,
                          "%s: already exists: left by an archive that did not finish (or one "
                          "running now); nothing was purged for it: remove it and run again",
                          tmp);
    if (fd < 0) return tg_err_set(err, "%s: %s", tmp, strerror(errno));
    writer_t w = {.path = tmp,
                  .f = fdopen(fd, "wb"),
                  .z = ZSTD_createCCtx(),
                  .zout_cap = ZSTD_CStreamOutSize(),
                  .md = EVP_MD_CTX_new(),
                  .g = yajl_gen_alloc(NULL),
                  .err = err};
    w.zout = malloc(w.zout_cap);
    int rc = -1;
    if (!w.f) {
        close(fd);
        tg_err_set(err, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (!w.z || !w.zout || !w.md || !w.g || !EVP_DigestInit_ex(w.md, EVP_sha256(), NULL) ||
        !yajl_gen_config(w.g, yajl_gen_validate_utf8, 1)) {
        tg_err_set(err, "archive: out of memory");
        goto out;
    }
    ZSTD_CCtx_setParameter(w.z, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(w.z, ZSTD_c_checksumFlag, 1); /* zstd's own frame checksum too */
    if (kek && (rc = tg_sealw_open(w.f, kek, &w.sw, err)) != 0) goto out;
    char before[24];
    snprintf(before, sizeof before, "%lld", (long long)before_us);
    const char *params[1] = {before};
    const tg_sql_sink_t sink = {w_columns, w_row, &w};
    if ((rc = tg_store_query(s, EXPORT_SQL, params, 1, &sink, err)) != 0) goto out;
    if ((rc = zwrite(&w, NULL, 0, 1)) != 0) goto out;
    if (w.sw) {
        tg_sealw_t *sw = w.sw;
        w.sw = NULL;
        if ((rc = tg_sealw_finish(sw, err)) != 0) goto out;
    }
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
        rc = tg_err_set(err, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    *count = w.count;
    sha_hex(w.md, sha);
out:
    if (w.f && fclose(w.f) != 0 && rc == 0) rc = tg_err_set(err, "%s: %s", tmp, strerror(errno));
    if (rc != 0) unlink(tmp); /* ours: created above */
    tg_sealw_free(w.sw);
    ZSTD_freeCCtx(w.z);
    free(w.zout);
    EVP_MD_CTX_free(w.md);
    if (w.g) yajl_gen_free(w.g);
    return rc;
}

/* ---- reading ---- */

typedef struct reader {
    EVP_MD_CTX *md;
    int64_t count; /* events complete so far */
    int64_t *ids;  /* NULL: not kept */
    size_t nids, cap;
    int keep;
    int depth;    /* of maps and arrays: 0 between events */
    int at_id;    /* the key just read, at depth 1, is "id" */
    int has_id;   /* the event being read had its id */
    int64_t id;   /* that id */
    char why[80]; /* what a callback refused */
} reader_t;

/* A value other than an integer: fine inside an event, except as its id or on its own. */
static int r_value(reader_t *r)
{
    if (r->depth == 0) {
        snprintf(r->why, sizeof r->why, "not a JSON object");
        return 0;
    }
    if (r->depth == 1 && r->at_id) {
        snprintf(r->why, sizeof r->why, "its id is not an integer");
        return 0;
    }
    r->at_id = 0;
    return 1;
}

static int r_null(void *ud)
{
    return r_value(ud);
}
static int r_bool(void *ud, int b)
{
    (void)b;
    return r_value(ud);
}
static int r_double(void *ud, double d)
{
    (void)d;
    return r_value(ud);
}
static int r_string(void *ud, const unsigned char *s, size_t n)
{
    (void)s;
    (void)n;
    return r_value(ud);
}

static int r_integer(void *ud, long long v)
{
    reader_t *r = ud;
    if (r->depth == 1 && r->at_id) {
        if (r->has_id) {
            snprintf(r->why, sizeof r->why, "two ids");
            return 0;
        }
        r->has_id = 1;
        r->id = v;
        r->at_id = 0;
        return 1;
    }
    return r_value(r);
}

static int r_open(void *ud)
{
    reader_t *r = ud;
    if (r->depth > 0 && !r_value(r)) return 0;
    if (r->depth == 0) r->has_id = 0;
    r->depth++;
    return 1;
}

static int r_open_array(void *ud)
{
    reader_t *r = ud;
    if (!r_value(r)) return 0; /* an array on its own is not an event either */
    r->depth++;
    return 1;
}

static int r_key(void *ud, const unsigned char *k, size_t n)
{
    reader_t *r = ud;
    r->at_id = r->depth == 1 && n == 2 && k[0] == 'i' && k[1] == 'd';
    return 1;
}

static int r_close_array(void *ud)
{
    ((reader_t *)ud)->depth--;
    return 1;
}

/* The end of a map: at depth 0 an event is complete. */
static int r_close(void *ud)
{
    reader_t *r = ud;
    if (--r->depth > 0) return 1;
    if (!r->has_id) {
        snprintf(r->why, sizeof r->why, "no integer id");
        return 0;
    }
    sha_add(r->md, r->id);
    r->count++;
    if (!r->keep) return 1;
    if (r->nids == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        int64_t *ids = realloc(r->ids, cap * sizeof *ids);
        if (!ids) {
            snprintf(r->why, sizeof r->why, "out of memory");
            return 0;
        }
        r->ids = ids;
        r->cap = cap;
    }
    r->ids[r->nids++] = r->id;
    return 1;
}

static const yajl_callbacks r_callbacks = {
    .yajl_null = r_null,
    .yajl_boolean = r_bool,
    .yajl_integer = r_integer,
    .yajl_double = r_double,
    .yajl_string = r_string,
    .yajl_start_map = r_open,
    .yajl_map_key = r_key,
    .yajl_end_map = r_close,
    .yajl_start_array = r_open_array,
    .yajl_end_array = r_close_array,
};

/* After yajl refused: the reason, naming the event it was in. */
static int parse_error(yajl_handle h, reader_t *r, const char *path, tg_err_t *err)
{
    if (r->why[0])
        return tg_err_set(err, "%s: event %lld: not an archived event (%s)", path,
                          (long long)r->count + 1, r->why);
    unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
    tg_err_set(err, "%s: event %lld: %s", path, (long long)r->count + 1,
               msg ? (const char *)msg : "invalid JSON");
    if (msg) yajl_free_error(h, msg);
    return -1;
}

/* The next compressed bytes of an archive: from the file, or from its sealed frames. 1 with
 * *p and *n, 0 at the end, -1 with err. */
static int next_in(FILE *f, tg_sealr_t *sr, unsigned char *buf, size_t cap, const char *path,
                   const unsigned char **p, size_t *n, tg_err_t *err)
{
    if (sr) return tg_sealr_next(sr, p, n, err);
    *n = fread(buf, 1, cap, f);
    *p = buf;
    if (*n) return 1;
    return ferror(f) ? tg_err_set(err, "%s: %s", path, strerror(errno)) : 0;
}

int tg_archive_read(const char *path, const tg_kek_t *kek, FILE *copy, int64_t *count,
                    char sha256[65], int64_t **ids, size_t *nids, tg_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tg_err_set(err, "%s: %s", path, strerror(errno));
    /* A sealed archive needs its KEK; a plain one (written before encryption was
     * configured) is read as it is. */
    tg_sealr_t *sr = NULL;
    int sealed = tg_stream_is_sealed(f);
    if (sealed < 0 || (sealed && tg_sealr_open(f, kek, path, &sr, err) != 0)) {
        if (sealed < 0) tg_err_set(err, "%s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    reader_t r = {.md = EVP_MD_CTX_new(), .keep = ids != NULL};
    ZSTD_DCtx *z = ZSTD_createDCtx();
    yajl_handle h = yajl_alloc(&r_callbacks, NULL, &r);
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
    unsigned char *in = malloc(in_cap), *out = malloc(out_cap);
    int rc = -1;
    size_t last = 1; /* ZSTD_decompressStream's hint: 0 once a frame is complete */
    size_t fed = 0;  /* bytes given to the parser */
    if (!r.md || !z || !h || !in || !out || !EVP_DigestInit_ex(r.md, EVP_sha256(), NULL)) {
        tg_err_set(err, "archive: out of memory");
        goto done;
    }
    yajl_config(h, yajl_allow_multiple_values, 1); /* one event after another */
    size_t got;
    const unsigned char *src;
    int more;
    while ((more = next_in(f, sr, in, in_cap, path, &src, &got, err)) == 1) {
        ZSTD_inBuffer ib = {src, got, 0};
        while (ib.pos < ib.size) {
            ZSTD_outBuffer ob = {out, out_cap, 0};
            last = ZSTD_decompressStream(z, &ob, &ib);
            if (ZSTD_isError(last)) {
                tg_err_set(err, "%s: zstd: %s", path, ZSTD_getErrorName(last));
                goto done;
            }
            fed += ob.pos;
            if (ob.pos && copy && fwrite(out, 1, ob.pos, copy) != ob.pos) {
                tg_err_set(err, "writing the events out: %s", strerror(errno));
                goto done;
            }
            if (ob.pos && yajl_parse(h, out, ob.pos) != yajl_status_ok) {
                parse_error(h, &r, path, err);
                goto done;
            }
        }
    }
    if (more < 0) goto done;
    if (last != 0) {
        tg_err_set(err, "%s: truncated (the zstd frame is incomplete)", path);
        goto done;
    }
    /* No text at all is an archive of no events (yajl calls it a premature EOF). */
    if (fed > 0 && (yajl_complete_parse(h) != yajl_status_ok || r.depth != 0)) {
        if (r.depth != 0 && !r.why[0]) snprintf(r.why, sizeof r.why, "cut short");
        parse_error(h, &r, path, err);
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
    tg_sealr_free(sr);
    fclose(f);
    free(r.ids);
    EVP_MD_CTX_free(r.md);
    ZSTD_freeDCtx(z);
    if (h) yajl_free(h);
    free(in);
    free(out);
    return rc;
}

/* ---- the whole run ---- */

/* Syncs the directory holding path, so its new name survives a power cut: the file's
 * bytes were synced before the link, its name is the directory's. */
static int sync_dir(const char *path, tg_err_t *err)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if ((size_t)(slash - path) >= sizeof dir)
        return tg_err_set(err, "%s: path too long", path);
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return tg_err_set(err, "%s: %s", dir, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : tg_err_set(err, "%s: sync: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

int tg_archive_run(tg_store_t *s, int64_t before_us, const char *out_path, const tg_kek_t *kek,
                   tg_archive_stats_t *st, tg_err_t *err)
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
    int rc = write_file(s, before_us, tmp, kek, &written, sha_w, err);
    if (rc != 0) { /* nothing of ours to remove: a tmp that was there is another run's */
        free(tmp);
        return rc;
    }
    rc = tg_archive_read(tmp, kek, NULL, &reread, sha_r, &ids, &nids, err);
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
    /* Before the purge: once events are deleted, FILE must be found after a power cut too
     * (a file system such as btrfs persists an fsync'd file's bytes, not its new name). */
    if (rc == 0 && (rc = sync_dir(out_path, err)) != 0) unlink(out_path);
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
