/* base64url: see b64url.h. EVP_DecodeBlock wants standard base64 in whole quanta, so the
 * input is translated and padded in chunks of 4 KiB (a stack buffer, no allocation), each a
 * multiple of 4 characters. */
#include "auth/b64url.h"

#include <string.h>
#include <openssl/evp.h>

#define CHUNK 4096 /* characters per EVP_DecodeBlock call, a multiple of 4 */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

long tg_b64url_decode(const char *s, size_t n, unsigned char *out)
{
    if (n % 4 == 1) return -1;
    for (size_t i = 0; i < n; i++)
        if (b64_value((unsigned char)s[i]) < 0) return -1;
    /* The last character's unused low bits must be zero: "AB" and "AC" are not the same
     * byte twice. */
    if (n % 4 == 2 && (b64_value((unsigned char)s[n - 1]) & 0x0f)) return -1;
    if (n % 4 == 3 && (b64_value((unsigned char)s[n - 1]) & 0x03)) return -1;
    unsigned char in[CHUNK];
    long total = 0;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK, padded = (k + 3) / 4 * 4;
        for (size_t i = 0; i < k; i++) {
            char c = s[off + i];
            in[i] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
        }
        memset(in + k, '=', padded - k);
        int got = EVP_DecodeBlock(out + total, in, (int)padded);
        if (got < 0) return -1;
        /* EVP_DecodeBlock counts the padding's zero bytes too. */
        total += got - (long)(padded - k == 2 ? 2 : padded - k == 1 ? 1 : 0);
    }
    return total;
}
