/* Secrets at rest: a key-encryption key (KEK) and envelope encryption with AES-256-GCM
 * (OpenSSL EVP).
 *
 * The KEK is 32 random bytes an operator keeps outside the store (encryption.kek_file or
 * encryption.kek_env, hex or base64). It never encrypts data itself: each sealed blob gets
 * its own random data key (DEK), the data is encrypted by the DEK, and the DEK is stored
 * beside it wrapped (encrypted) by the KEK. A blob names the KEK that wrapped its DEK by a
 * key id (a hash of the KEK, not a secret), so a store holding blobs of two KEKs says
 * which one a blob needs, and replacing the KEK (`tollgate kek rotate`, to come) re-wraps
 * only the 60-byte wrapped DEK of each blob (tg_crypt_rewrap): the data part is kept byte
 * for byte. Layout of a sealed blob, version 1 (all lengths fixed but the data's):
 *
 *   offset  bytes  what
 *   0       4      "TGS" 0x01: magic and version
 *   4       8      KEK id: the first 8 bytes of SHA-256("tollgate kek id" || KEK)
 *   12      12     DEK wrap nonce          } AES-256-GCM of the DEK under the KEK,
 *   24      32     wrapped DEK             } AAD = bytes 0..11
 *   56      16     DEK wrap tag            }
 *   72      12     data nonce              } AES-256-GCM of the data under the DEK,
 *   84      n      data ciphertext         } AAD = the caller's (e.g. the row's id, so a
 *   84+n    16     data tag                }  blob copied to another row does not open)
 *
 * Nonces are random (RAND_bytes): each DEK encrypts one message, and a KEK wraps far fewer
 * than 2^32 DEKs, the bound for random 96-bit GCM nonces. Any flipped bit, a wrong KEK or a
 * wrong AAD fails with an error; nothing unauthenticated is ever returned. */
#ifndef TG_CRYPT_CRYPT_H
#define TG_CRYPT_CRYPT_H

#include <stddef.h>

#include "util/err.h"

#define TG_KEK_LEN         32
#define TG_KEK_ID_LEN      8
#define TG_SEAL_OVERHEAD   100 /* bytes a sealed blob adds to its data */
#define TG_WRAPPED_DEK_LEN 60  /* nonce, wrapped DEK, tag */

typedef struct tg_kek {
    unsigned char key[TG_KEK_LEN];
    unsigned char id[TG_KEK_ID_LEN];
} tg_kek_t;

/* Reads a KEK written as 64 hex digits or as base64 of 32 bytes (with or without its
 * padding), whitespace around it ignored. Anything else is an error that never echoes the
 * text. what names the source in the message ("the file x", "$TG_KEK"). */
int tg_kek_parse(const char *text, size_t len, const char *what, tg_kek_t *out, tg_err_t *err);

/* The KEK id as 16 hex digits (for messages and `kek` commands), hex[17]. */
void tg_kek_id_hex(const tg_kek_t *k, char hex[2 * TG_KEK_ID_LEN + 1]);

void tg_kek_wipe(tg_kek_t *k);

/* Seals pt[0..n) under a fresh DEK wrapped by kek, bound to aad[0..aadlen). *out is
 * malloc'd (n + TG_SEAL_OVERHEAD bytes), the caller's to free. 0 or -1 with err. */
int tg_crypt_seal(const tg_kek_t *kek, const void *pt, size_t n, const void *aad, size_t aadlen,
                  unsigned char **out, size_t *outlen, tg_err_t *err);

/* Opens a sealed blob: *out malloc'd (wipe it with tg_crypt_free when done), *outlen bytes,
 * NUL-terminated beyond them for text. -1 with err when the blob is not one, was sealed by
 * another KEK, or does not authenticate (tampered, or another aad). */
int tg_crypt_open(const tg_kek_t *kek, const unsigned char *blob, size_t n, const void *aad,
                  size_t aadlen, unsigned char **out, size_t *outlen, tg_err_t *err);

/* The same blob with its DEK unwrapped by from and wrapped again by to; the data part
 * (offset 72 on) is copied unchanged. *out malloc'd, n bytes. */
int tg_crypt_rewrap(const tg_kek_t *from, const tg_kek_t *to, const unsigned char *blob, size_t n,
                    unsigned char **out, tg_err_t *err);

/* Wipes p[0..n) and frees it (NULL is fine). */
void tg_crypt_free(void *p, size_t n);

#endif
