/* Sealed chunks: see chunk.h for the frame and why its AAD holds the offset. */
#include "crypt/chunk.h"

#include <stdlib.h>
#include <string.h>

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
