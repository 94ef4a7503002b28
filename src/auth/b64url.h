/* base64url without padding (RFC 4648 section 5), as JOSE writes it, decoded through
 * OpenSSL's EVP_DecodeBlock after translating the alphabet: strict, so that one token has
 * one spelling (no padding, no whitespace, no other byte; a length of 1 mod 4 and unused
 * low bits in the last character are refused, RFC 7515 section 2). */
#ifndef TG_AUTH_B64URL_H
#define TG_AUTH_B64URL_H

#include <stddef.h>

/* The most bytes n characters decode to. */
#define TG_B64URL_DECODED_MAX(n) (((n) / 4) * 3 + 2)

/* Decodes s[0..n) into out (TG_B64URL_DECODED_MAX(n) bytes at least); returns the number of
 * bytes, or -1 when s is not strict base64url. */
long tg_b64url_decode(const char *s, size_t n, unsigned char *out);

#endif
