/* Decoding a copy of a compressed answer for the meter (RFC 9110 §8.4 content codings).
 *
 * The client always receives the upstream's bytes untouched; only the meter reads the
 * decoded copy. The answer is fed as it passes, in pieces of any size (down to one byte),
 * and what it decodes to is handed to a sink piece by piece out of fixed scratch buffers:
 * nothing is allocated per piece, and memory does not grow with the answer.
 *
 * Codings: gzip (and its alias x-gzip; concatenated members are decoded one after the
 * other, as gzip -d does), deflate (the zlib format RFC 9110 names, and raw deflate, which
 * some servers send instead: told apart by the zlib header in the first two bytes), br
 * (libbrotli) and zstd (libzstd; concatenated frames; windows up to 8 MiB, RFC 9659), and
 * identity. A Content-Encoding list ("gzip, br": gzip applied first) is decoded in reverse
 * order, up to TG_DECODE_MAX_STAGES codings.
 *
 * Every problem is a status, never a crash, and stops decoding for the rest of the answer
 * (the bytes still pass to the client; the caller only stops reading them):
 *   TG_DECODE_UNKNOWN   a coding not listed above, or more codings than the stages;
 *   TG_DECODE_CORRUPT   bytes the decoder rejects (bad header, checksum, trailing bytes);
 *   TG_DECODE_TRUNCATED the answer ended inside a compressed stream;
 *   TG_DECODE_CAP       the decoded bytes (all stages together) passed the cap plus
 *                       TG_DECODE_RATIO times the encoded bytes received so far: a
 *                       decompression bomb costs at most that much decoder output.
 *
 * Why the cap grows with the input: a client can make an honest answer as large as it likes
 * (2048 embeddings, top_logprobs with n choices), and its usage comes last; a fixed cap
 * would leave exactly those answers unread, and free. Honest JSON compresses 2 to 10 to one
 * (embeddings, logprobs), a few hundred at most when a client makes the model repeat
 * itself; bombs by a thousand (gzip's ceiling) to millions (br, zstd): a stream above the
 * ratio is read up to the cap and a little further, one below it is read whole. (A bomb's
 * cost per received byte was never bounded by the cap alone: many small answers each
 * decoding to the cap cost more.)
 *
 * One tg_decode_t is made per connection, on its first compressed answer, and reused:
 * zlib and zstd states and the stages' output buffers are reset, not remade, between
 * answers (libbrotli has no reset: its state is made per br answer). Memory: about 16 KiB
 * per stage in use plus the library's state (zlib: 7 KiB and a 32 KiB window; zstd: up to
 * the 8 MiB window, released by tg_decode_trim; brotli: up to its 16 MiB window while a br
 * answer is decoded, libbrotli having no lower limit to set). */
#ifndef TG_METER_DECODE_H
#define TG_METER_DECODE_H

#include <stddef.h>
#include <stdint.h>

#define TG_DECODE_MAX_STAGES 3
#define TG_DECODE_SCRATCH    (16u << 10) /* output buffer of each stage */
#define TG_DECODE_RATIO      256u        /* decoded bytes allowed past the cap per input byte */

typedef enum {
    TG_DECODE_OK = 0,
    TG_DECODE_UNKNOWN,
    TG_DECODE_CORRUPT,
    TG_DECODE_TRUNCATED,
    TG_DECODE_CAP,
} tg_decode_status_t;

/* Decoded bytes, in order; valid only during the call. Returns 0, or -1 to stop decoding
 * this answer (the rest is ignored; the status stays as it is). */
typedef int (*tg_decode_sink_fn)(void *ud, const char *p, size_t n);

typedef struct tg_decode tg_decode_t;

tg_decode_t *tg_decode_new(void); /* NULL when out of memory */
void tg_decode_free(tg_decode_t *d);

/* 1 when a Content-Encoding value names nothing to decode: absent, empty, or only
 * "identity". Cheap: what the caller checks before making a decoder at all. */
int tg_decode_is_identity(const char *coding, size_t n);

/* Starts a new answer with this Content-Encoding value and a cap on the decoded bytes
 * (0: no cap), which grows by TG_DECODE_RATIO per encoded byte fed (not for identity). Returns the
 * status: TG_DECODE_UNKNOWN when the list cannot be decoded (the answer is then passed by, not
 * read), TG_DECODE_CORRUPT when out of memory. */
tg_decode_status_t tg_decode_start(tg_decode_t *d, const char *coding, size_t n, uint64_t cap);

/* The next piece of the encoded answer. Decoded output goes to sink. Returns the status
 * (sticky: once not TG_DECODE_OK, further pieces are ignored). */
tg_decode_status_t tg_decode_feed(tg_decode_t *d, const char *p, size_t n, tg_decode_sink_fn sink,
                                  void *ud);

/* The answer ended: TG_DECODE_TRUNCATED when a stream was left unfinished, else the
 * status so far. */
tg_decode_status_t tg_decode_end(tg_decode_t *d);

/* Between answers: frees what only a large answer needed (a brotli state, a zstd state
 * grown past 512 KiB), so an idle connection keeps little. */
void tg_decode_trim(tg_decode_t *d);

tg_decode_status_t tg_decode_status(const tg_decode_t *d);
uint64_t tg_decode_total(const tg_decode_t *d); /* bytes decoded so far, all stages */

/* What an event records for a status (price_flag, see types/event.h): "" for
 * TG_DECODE_OK, else "coding_unknown", "decode_error" (corrupt or truncated),
 * "decode_cap". */
const char *tg_decode_flag(tg_decode_status_t s);

/* The Accept-Encoding to send upstream for a client's value: the client's list with only
 * the codings this module decodes kept (with their parameters, e.g. ";q=0.5"; "*" and
 * refusals with q=0 dropped), or "identity" when none is left, so an upstream is never
 * invited to answer in a coding the meter cannot read. Writes at most cap bytes (cap >= n + 8
 * always suffices) and returns the length, not NUL-terminated. */
size_t tg_decode_accept(const char *in, size_t n, char *out, size_t cap);

#endif
