/* A sealed stream: a file written once, front to back (an archive), encrypted under a KEK
 * without holding it in memory: a 16-byte header, then sealed frames (crypt/chunk.h) of up
 * to TG_STREAM_CHUNK bytes of data each, the last one flagged final.
 *
 *   offset  bytes  what
 *   0       8      "TGSTRM" 0x01 0x00: magic and version
 *   8       8      the KEK's id (crypt.h): which key the file needs, not a secret
 *   16      ...    frames; the last has the final flag (it may hold no data)
 *
 * A reader returns data only after its frame authenticated, and fails a file that ends
 * without its final frame (cut at a frame boundary) as well as a torn or altered one: a
 * consumer must still treat the data as provisional until tg_sealr_next says the end. */
#ifndef TG_CRYPT_STREAM_H
#define TG_CRYPT_STREAM_H

#include <stddef.h>
#include <stdio.h>

#include "crypt/crypt.h"
#include "util/err.h"

#define TG_STREAM_HEAD  16
#define TG_STREAM_CHUNK (1u << 20) /* data bytes per frame: 1 MiB held at a time */

typedef struct tg_sealw tg_sealw_t;
typedef struct tg_sealr tg_sealr_t;

/* Writes the header to f (at its start) and returns a writer; f stays the caller's. */
int tg_sealw_open(FILE *f, const tg_kek_t *kek, tg_sealw_t **out, tg_err_t *err);
/* Appends p[0..n): whole frames are sealed and written as the data fills them. */
int tg_sealw_write(tg_sealw_t *w, const void *p, size_t n, tg_err_t *err);
/* Writes what is left as the final frame. 0 or -1; the writer is freed either way. */
int tg_sealw_finish(tg_sealw_t *w, tg_err_t *err);
/* Frees a writer without finishing it (an error path: the file then has no end). */
void tg_sealw_free(tg_sealw_t *w);

/* 1 when the file f starts with the stream's magic (f is rewound to its start), 0 when
 * not (a plain file), -1 when it cannot be read. */
int tg_stream_is_sealed(FILE *f);
/* Reads the header of f (at its start) and returns a reader. what names the file in
 * errors. A file sealed by another KEK (or kek NULL) fails naming the KEK id it needs. */
int tg_sealr_open(FILE *f, const tg_kek_t *kek, const char *what, tg_sealr_t **out, tg_err_t *err);
/* The next frame's data, authenticated: 1 with *data and *n (valid until the next call),
 * 0 at the end (after the final frame, and nothing follows it), -1 with err. */
int tg_sealr_next(tg_sealr_t *r, const unsigned char **data, size_t *n, tg_err_t *err);
void tg_sealr_free(tg_sealr_t *r);

/* Re-wraps the sealed file at path from the KEK from to the KEK to, frame by frame (the
 * data is not decrypted), through PATH.rekey renamed over it. 1 when re-wrapped (*frames
 * of them), 0 when it is sealed by to already, -1 with err (not sealed, sealed by a third
 * KEK, cut short or damaged: the file is left as it was). */
int tg_stream_rekey(const char *path, const tg_kek_t *from, const tg_kek_t *to, size_t *frames,
                    tg_err_t *err);

#endif
