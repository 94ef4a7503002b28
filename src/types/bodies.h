/* audit.bodies: encrypt (docs/audit.md, "Bodies"): the request and answer bodies of one AI or
 * MCP call, kept up to audit.max_body bytes each, on their way from the worker to the store.
 *
 * Ownership: the worker fills one (tg_bodies_new) and hands it over with the event
 * (tg_event_t.bodies); from then on the recorder owns it and frees it exactly once, whatever
 * happens to the event (stored, spooled, dropped at stop). The writer seals it (the plain
 * bytes are wiped at once) before the event reaches the store; the store writes the sealed
 * blob beside the call record. Nothing here encrypts: crypt/ does, on the writer thread.
 *
 * The plain form that is sealed (version 1), all integers little-endian:
 *
 *   offset  bytes  what
 *   0       4      "TGB" 0x01
 *   4       4      flags: TG_BODIES_IN_TRUNC, TG_BODIES_OUT_TRUNC, TG_BODIES_HAS_IN, _HAS_OUT
 *   8       8      in_len: bytes of the request body kept
 *   16      8      out_len: bytes of the answer body kept
 *   24      in_len + out_len: the request body, then the answer body
 *
 * The AAD (tg_bodies_aad) binds the blob to its call record: the event's id and tenant, which
 * the record carries (event_id, tenant) and nobody can change without breaking the chain, so
 * a blob moved to another record does not open. */
#ifndef TG_TYPES_BODIES_H
#define TG_TYPES_BODIES_H

#include <stddef.h>
#include <stdint.h>

#define TG_BODIES_IN_TRUNC  1u /* the request body was longer than max_body */
#define TG_BODIES_OUT_TRUNC 2u /* the answer body was longer than max_body */
#define TG_BODIES_HAS_IN    4u /* a request body was kept (maybe 0 bytes) */
#define TG_BODIES_HAS_OUT   8u /* an answer came (maybe 0 bytes) */
#define TG_BODIES_HEAD      24
#define TG_BODIES_AAD_MAX   (32 + 8 + 64)

typedef struct tg_bodies {
    unsigned char *plain; /* TG_BODIES_HEAD + in + out bytes; NULL once sealed */
    size_t plain_len;
    unsigned char *sealed; /* crypt/crypt.h's blob of plain; NULL until the writer seals */
    size_t sealed_len;
    uint32_t flags;
} tg_bodies_t;

/* One allocation: the head, in[0..in_len) then out[0..out_len) (either may be NULL with
 * length 0). NULL when out of memory. */
tg_bodies_t *tg_bodies_new(const void *in, size_t in_len, const void *out, size_t out_len,
                           uint32_t flags);

/* Wipes and frees b and what it holds (NULL is fine). */
void tg_bodies_free(tg_bodies_t *b);

/* Reads an opened plain form: 0 with the two bodies pointing into p, -1 if malformed. */
int tg_bodies_parse(const unsigned char *p, size_t n, uint32_t *flags, const unsigned char **in,
                    size_t *in_len, const unsigned char **out, size_t *out_len);

/* The AAD of a call record's bodies: "tollgate audit bodies 1", the event id (8 bytes, big
 * endian) and the tenant (up to 64 bytes). Returns its length (<= TG_BODIES_AAD_MAX). */
size_t tg_bodies_aad(int64_t event_id, const char *tenant, unsigned char aad[TG_BODIES_AAD_MAX]);

#endif
