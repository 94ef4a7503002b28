/* Sealed chunks: a file that grows by appends (the spool) or is written as a stream (an
 * archive) encrypted as a sequence of self-delimiting frames, each one sealed blob
 * (crypt.h) of its own. A crash mid-write leaves a readable prefix: every whole frame
 * before the torn one opens alone, and the torn one fails its length check or its tag.
 *
 *   offset  bytes  what
 *   0       4      L, the sealed blob's length, little-endian (TG_SEAL_OVERHEAD .. max)
 *   4       L      tg_crypt_seal(data), AAD = the frame's offset in its file (8 bytes,
 *                  little-endian) and a final flag (1 byte: 1 on a stream's last frame)
 *
 * The offset in the AAD keeps frames from being reordered, dropped from the middle or
 * copied between positions without failing; the final flag lets a stream's reader tell a
 * file cut at a frame boundary (no final frame: an error) from a whole one. A spool has no
 * final frame (it is cut at the last whole frame on purpose). Each frame has its own data
 * key, so `kek rotate` re-wraps a file frame by frame with tg_crypt_rewrap. */
#ifndef TG_CRYPT_CHUNK_H
#define TG_CRYPT_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "crypt/crypt.h"
#include "util/err.h"

#define TG_CHUNK_HEAD 4 /* the length prefix */

/* Seals pt[0..n) as the frame at offset off: *out malloc'd (TG_CHUNK_HEAD + n +
 * TG_SEAL_OVERHEAD bytes, *outlen), the caller's to free. 0 or -1 with err. */
int tg_chunk_seal(const tg_kek_t *kek, const void *pt, size_t n, uint64_t off, int final,
                  unsigned char **out, size_t *outlen, tg_err_t *err);

/* The sealed length a frame's head announces; 0 when it is outside
 * [TG_SEAL_OVERHEAD, max_blob] (a torn or foreign frame). */
size_t tg_chunk_len(const unsigned char head[TG_CHUNK_HEAD], size_t max_blob);

/* Opens the blob (the frame without its head, n bytes) of the frame at off, sealed with
 * that final flag: *out as tg_crypt_open's (free it with tg_crypt_free). */
int tg_chunk_open(const tg_kek_t *kek, const unsigned char *blob, size_t n, uint64_t off, int final,
                  unsigned char **out, size_t *outlen, tg_err_t *err);

/* Re-wraps the frames of the file in, from offset off on, into out at the same offsets:
 * each blob's data key unwrapped by from and wrapped by to (tg_crypt_rewrap), lengths and
 * data unchanged, so the offsets in the AADs still hold. Stops at the end of the last
 * whole frame and returns that offset in *end (the caller decides about a torn tail);
 * *frames counts them. A frame whose key does not unwrap is an error naming its offset. */
int tg_chunk_rewrap_fd(int in, int out, uint64_t off, size_t max_blob, const tg_kek_t *from,
                       const tg_kek_t *to, uint64_t *end, size_t *frames, tg_err_t *err);

/* Writes path's re-wrapped copy as PATH.rekey (hdr[0..hdrlen) replacing its header, then
 * tg_chunk_rewrap_fd of the open fd from hdrlen on), syncs it and renames it over path.
 * whole: a torn tail is an error (a stream); else it is left out (a spool, whose open would
 * cut it). *frames as tg_chunk_rewrap_fd's. Nothing changes at path on an error. */
int tg_chunk_rekey_file(const char *path, int fd, const unsigned char *hdr, size_t hdrlen,
                        size_t max_blob, const tg_kek_t *from, const tg_kek_t *to, int whole,
                        size_t *frames, tg_err_t *err);

#endif
