/* Sealed chunks: see chunk.h for the frame and why its AAD holds the offset. */
#include "crypt/chunk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AAD_LEN 9

static void aad_of(uint64_t off, int final, unsigned char aad[AAD_LEN])
{
    for (int i = 0; i < 8; i++)
        aad[i] = (unsigned char)(off >> (8 * i));
    aad[8] = final ? 1 : 0;
}

int tg_chunk_seal(const tg_kek_t *kek, const void *pt, size_t n, uint64_t off, int final,
                  unsigned char **out, size_t *outlen, tg_err_t *err)
{
    *out = NULL;
    *outlen = 0;
    unsigned char aad[AAD_LEN], *blob;
    size_t bn;
    aad_of(off, final, aad);
    if (tg_crypt_seal(kek, pt, n, aad, sizeof aad, &blob, &bn, err) != 0) return -1;
    if (bn > UINT32_MAX) {
        free(blob);
        return tg_err_set(err, "chunk: %zu bytes is too large for one frame", n);
    }
    unsigned char *f = malloc(TG_CHUNK_HEAD + bn);
    if (!f) {
        free(blob);
        return tg_err_set(err, "chunk: out of memory");
    }
    for (int i = 0; i < TG_CHUNK_HEAD; i++)
        f[i] = (unsigned char)(bn >> (8 * i));
    memcpy(f + TG_CHUNK_HEAD, blob, bn);
    free(blob); /* ciphertext: nothing to wipe */
    *out = f;
    *outlen = TG_CHUNK_HEAD + bn;
    return 0;
}

size_t tg_chunk_len(const unsigned char head[TG_CHUNK_HEAD], size_t max_blob)
{
    size_t n =
        (size_t)head[0] | (size_t)head[1] << 8 | (size_t)head[2] << 16 | (size_t)head[3] << 24;
    return n < TG_SEAL_OVERHEAD || n > max_blob ? 0 : n;
}

int tg_chunk_open(const tg_kek_t *kek, const unsigned char *blob, size_t n, uint64_t off, int final,
                  unsigned char **out, size_t *outlen, tg_err_t *err)
{
    unsigned char aad[AAD_LEN];
    aad_of(off, final, aad);
    return tg_crypt_open(kek, blob, n, aad, sizeof aad, out, outlen, err);
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t got = pread(fd, p, n, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        p += got, n -= (size_t)got, off += (uint64_t)got;
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t put = pwrite(fd, p, n, (off_t)off);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return -1;
        p += put, n -= (size_t)put, off += (uint64_t)put;
    }
    return 0;
}

int tg_chunk_rewrap_fd(int in, int out, uint64_t off, size_t max_blob, const tg_kek_t *from,
                       const tg_kek_t *to, uint64_t *end, size_t *frames, tg_err_t *err)
{
    *frames = 0;
    *end = off;
    struct stat st;
    if (fstat(in, &st) != 0) return tg_err_set(err, "%s", strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    unsigned char head[TG_CHUNK_HEAD], *blob = malloc(max_blob);
    if (!blob) return tg_err_set(err, "out of memory");
    int rc = 0;
    while (size - off >= TG_CHUNK_HEAD) {
        if (pread_all(in, head, sizeof head, off) != 0) {
            rc = tg_err_set(err, "read at offset %llu: %s", (unsigned long long)off,
                            strerror(errno));
            break;
        }
        size_t bn = tg_chunk_len(head, max_blob);
        if (bn == 0 || off + TG_CHUNK_HEAD + bn > size) break; /* a torn tail */
        unsigned char *nb = NULL;
        tg_err_t why = {{0}};
        if (pread_all(in, blob, bn, off + TG_CHUNK_HEAD) != 0 ||
            tg_crypt_rewrap(from, to, blob, bn, &nb, &why) != 0) {
            rc = tg_err_set(err, "the frame at offset %llu: %s", (unsigned long long)off,
                            why.msg[0] ? why.msg : strerror(errno));
            break;
        }
        int w = pwrite_all(out, head, sizeof head, off) == 0 &&
                pwrite_all(out, nb, bn, off + TG_CHUNK_HEAD) == 0;
        free(nb);
        if (!w) {
            rc = tg_err_set(err, "write at offset %llu: %s", (unsigned long long)off,
                            strerror(errno));
            break;
        }
        off += TG_CHUNK_HEAD + bn;
        ++*frames;
    }
    free(blob);
    *end = off;
    return rc;
}

int tg_chunk_rekey_file(const char *path, int fd, const unsigned char *hdr, size_t hdrlen,
                        size_t max_blob, const tg_kek_t *from, const tg_kek_t *to, int whole,
                        size_t *frames, tg_err_t *err)
{
    char tmp[4200];
    struct stat st;
    snprintf(tmp, sizeof tmp, "%s.rekey", path);
    if (fstat(fd, &st) != 0) return tg_err_set(err, "%s: %s", path, strerror(errno));
    int out = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return tg_err_set(err, "%s: %s", tmp, strerror(errno));
    uint64_t end = 0;
    tg_err_t why = {{0}};
    int rc = pwrite_all(out, hdr, hdrlen, 0) == 0
                 ? tg_chunk_rewrap_fd(fd, out, hdrlen, max_blob, from, to, &end, frames, &why)
                 : tg_err_set(&why, "%s", strerror(errno));
    if (rc == 0 && whole && end != (uint64_t)st.st_size)
        rc = tg_err_set(&why, "a torn or damaged frame at offset %llu (the file is cut short?)",
                        (unsigned long long)end);
    if (rc == 0 && fsync(out) != 0) rc = tg_err_set(&why, "%s: sync: %s", tmp, strerror(errno));
    close(out);
    if (rc == 0 && rename(tmp, path) != 0) rc = tg_err_set(&why, "rename: %s", strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return tg_err_set(err, "%s: %s", path, why.msg);
    }
    return 0;
}
