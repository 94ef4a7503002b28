/* The outbox's notices sealed at rest: see seal.h. jansson writes and reads the notice's
 * JSON (numbers as they are: times in micro-seconds, reals with 17 digits, so a notice
 * opens exactly as it was sealed), crypt/ seals it, OpenSSL's base64 makes it text. */
#include "notify/seal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "crypt/keyed.h"
#include "notify/payload.h"

#define PURPOSE  "outbox id"
#define JSON_MAX ((TG_NOTICE_SEALED_SIZE - 1) / 4 * 3 - TG_SEAL_OVERHEAD)

/* The fields in the JSON, by key. */
#define TEXT_FIELDS(X)                                                                             \
    X(id) X(kind) X(alarm) X(alarm_kind) X(tenant) X(state) X(severity) X(summary)
#define REAL_FIELDS(X) X(value) X(threshold) X(baseline)
#define INT_FIELDS(X)  X(window_s) X(time_us) X(started_us)

static char *notice_json(const tg_notice_t *n)
{
    json_t *o = json_object();
    int ok = o != NULL;
#define PUT_TEXT(f) ok = ok && !json_object_set_new(o, #f, tg_notify_json_text(n->f, sizeof n->f));
#define PUT_REAL(f)                                                                                \
    ok = ok && !json_object_set_new(o, #f, isfinite(n->f) ? json_real(n->f) : json_null());
#define PUT_INT(f) ok = ok && !json_object_set_new(o, #f, json_integer(n->f));
    TEXT_FIELDS(PUT_TEXT)
    REAL_FIELDS(PUT_REAL)
    INT_FIELDS(PUT_INT)
    char *s = ok ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    return s;
}

/* The notice of its JSON; -1 when it is not one (a key missing or of another type). */
static int notice_parse(const char *s, size_t len, tg_notice_t *n)
{
    json_error_t jerr;
    json_t *o = json_loadb(s, len, 0, &jerr), *v;
    int ok = json_is_object(o);
    memset(n, 0, sizeof *n);
#define GET_TEXT(f)                                                                                \
    ok = ok && json_is_string(v = json_object_get(o, #f)) && json_string_length(v) < sizeof n->f;  \
    if (ok) memcpy(n->f, json_string_value(v), json_string_length(v) + 1);
#define GET_REAL(f)                                                                                \
    ok = ok && (v = json_object_get(o, #f)) && (json_is_number(v) || json_is_null(v));             \
    if (ok) n->f = json_is_null(v) ? NAN : json_number_value(v);
#define GET_INT(f)                                                                                 \
    ok = ok && json_is_integer(v = json_object_get(o, #f));                                        \
    if (ok) n->f = json_integer_value(v);
    TEXT_FIELDS(GET_TEXT)
    REAL_FIELDS(GET_REAL)
    INT_FIELDS(GET_INT)
    json_decref(o);
    return ok ? 0 : -1;
}

/* base64 of the blob; its decoding. */
static int b64_decode(const char *text, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(text);
    if (n == 0 || n % 4 || n >= TG_NOTICE_SEALED_SIZE) return -1;
    unsigned char *b = malloc(n / 4 * 3 + 1);
    if (!b) return -1;
    int got = EVP_DecodeBlock(b, (const unsigned char *)text, (int)n);
    if (got < 0) {
        free(b);
        return -1;
    }
    size_t pad = (text[n - 1] == '=') + (text[n - 2] == '=');
    *out = b;
    *outlen = (size_t)got - pad;
    return 0;
}

static int b64_encode(const unsigned char *blob, size_t n, char out[TG_NOTICE_SEALED_SIZE])
{
    if ((n + 2) / 3 * 4 >= TG_NOTICE_SEALED_SIZE) return -1;
    EVP_EncodeBlock((unsigned char *)out, blob, (int)n);
    return 0;
}

int tg_notice_seal(const tg_kek_t *kek, const tg_notice_t *n, tg_notice_t *row,
                   char sealed[TG_NOTICE_SEALED_SIZE], tg_err_t *err)
{
    unsigned char mac[TG_KEYED_HASH_LEN];
    memset(row, 0, sizeof *row);
    if (tg_crypt_keyed_hash(kek, PURPOSE, n->id, strnlen(n->id, sizeof n->id), mac) != 0)
        return tg_err_set(err, "outbox: cannot hash the notice's id");
    size_t k = snprintf(row->id, sizeof row->id, "%s", TG_NOTICE_ROW_ID_PREFIX);
    for (size_t i = 0; i < sizeof mac; i++)
        k += snprintf(row->id + k, sizeof row->id - k, "%02x", mac[i]);
    char *json = notice_json(n);
    if (!json) return tg_err_set(err, "outbox: out of memory");
    size_t len = strlen(json);
    unsigned char *blob = NULL;
    size_t bloblen = 0;
    int rc = len > JSON_MAX
                 ? tg_err_set(err, "outbox: notice %s too long to seal", n->id)
                 : tg_crypt_seal(kek, json, len, row->id, strlen(row->id), &blob, &bloblen, err);
    tg_crypt_free(json, len);
    if (rc == 0 && b64_encode(blob, bloblen, sealed) != 0)
        rc = tg_err_set(err, "outbox: notice %s too long to seal", n->id);
    free(blob);
    return rc;
}

int tg_notice_sealed_kek_id(const char *sealed, char hex[17])
{
    unsigned char *blob;
    size_t n;
    if (b64_decode(sealed, &blob, &n) != 0) return -1;
    int ok = n >= TG_SEAL_OVERHEAD && !memcmp(blob, "TGS\x01", 4);
    for (size_t i = 0; ok && i < TG_KEK_ID_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", blob[4 + i]);
    free(blob);
    return ok ? 0 : -1;
}

tg_notice_open_result_t tg_notice_open(const tg_kek_t *kek, const tg_notice_delivery_t *d,
                                       tg_notice_t *out, tg_err_t *err)
{
    if (!d->sealed[0]) {
        *out = d->notice;
        return TG_NOTICE_OPENED;
    }
    char need[17], have[17];
    if (tg_notice_sealed_kek_id(d->sealed, need) != 0) {
        tg_err_set(err, "outbox notice %s: its sealed text is damaged", d->notice.id);
        return TG_NOTICE_DAMAGED;
    }
    if (kek) tg_kek_id_hex(kek, have);
    if (!kek || strcmp(need, have)) {
        tg_err_set(err,
                   "outbox notice %s is sealed by key-encryption key %s, %s: configure that "
                   "key (encryption.kek_file) to send it",
                   d->notice.id, need, kek ? "not the one configured" : "and none is configured");
        return TG_NOTICE_NO_KEK;
    }
    unsigned char *blob, *pt = NULL;
    size_t n, ptlen = 0;
    if (b64_decode(d->sealed, &blob, &n) != 0) { /* checked above: out of memory */
        tg_err_set(err, "outbox notice %s: out of memory", d->notice.id);
        return TG_NOTICE_DAMAGED;
    }
    tg_err_t cerr;
    int rc = tg_crypt_open(kek, blob, n, d->notice.id, strlen(d->notice.id), &pt, &ptlen, &cerr);
    free(blob);
    if (rc == 0) rc = notice_parse((const char *)pt, ptlen, out);
    tg_crypt_free(pt, ptlen);
    if (rc != 0) {
        tg_err_set(err, "outbox notice %s does not open (altered, or moved from another row)",
                   d->notice.id);
        return TG_NOTICE_DAMAGED;
    }
    return TG_NOTICE_OPENED;
}

int tg_notice_rewrap(const tg_kek_t *from, const tg_kek_t *to, const char *sealed,
                     char out[TG_NOTICE_SEALED_SIZE], tg_err_t *err)
{
    unsigned char *blob, *nb = NULL;
    size_t n;
    if (b64_decode(sealed, &blob, &n) != 0) return tg_err_set(err, "its sealed text is damaged");
    int rc = tg_crypt_rewrap(from, to, blob, n, &nb, err);
    if (rc == 0 && b64_encode(nb, n, out) != 0) rc = tg_err_set(err, "too long");
    free(blob);
    free(nb);
    return rc;
}
