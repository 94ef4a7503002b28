/* The outbox's notices sealed at rest (issue 14, docs/encryption.md). With a KEK configured
 * (encryption:), the sender stores a notice as
 *
 *   outbox.id      "k1/" + 64 hex digits: HMAC-SHA256 of the notice's id under a key derived
 *                  from the KEK (crypt/keyed.h). Ids are built from what a notice is about
 *                  ("alarm/errors/acme/12"): in the clear they would name tenants and rules.
 *                  The same notice added again gets the same row id, so the primary key
 *                  still de-duplicates producers (under one KEK: see docs/encryption.md).
 *   outbox.sealed  base64 of a crypt/crypt.h blob of the whole notice as JSON (its id, kind,
 *                  alarm, tenant, state, severity, values, times, summary), bound to the row's
 *                  id (AAD): a blob moved to another row does not open.
 *
 * and every other column of the notice '' or 0. What stays plain is what the sender
 * schedules by: the deliveries' notifier, status, attempts, due time and last error (the
 * error is tollgate's or the receiver's status line, never the notice), and created_us.
 * A row without sealed text is a plain notice, written before encryption was turned on: it
 * is read as it is. */
#ifndef TG_NOTIFY_SEAL_H
#define TG_NOTIFY_SEAL_H

#include "crypt/crypt.h"
#include "types/notice.h"
#include "util/err.h"

#define TG_NOTICE_ROW_ID_PREFIX "k1/"

/* The row of n under kek: *row zeroed but for its id (the keyed hash), sealed its text.
 * 0, or -1 with err (OpenSSL failed). */
int tg_notice_seal(const tg_kek_t *kek, const tg_notice_t *n, tg_notice_t *row,
                   char sealed[TG_NOTICE_SEALED_SIZE], tg_err_t *err);

typedef enum tg_notice_open_result {
    TG_NOTICE_OPENED = 0, /* *out is the notice (a plain row: its columns) */
    TG_NOTICE_NO_KEK,     /* sealed by a KEK other than kek (or kek NULL): err names its id */
    TG_NOTICE_DAMAGED,    /* not a sealed notice, altered, or moved from another row */
} tg_notice_open_result_t;

/* The notice of a delivery read from the outbox. kek: the configured one, NULL if none. */
tg_notice_open_result_t tg_notice_open(const tg_kek_t *kek, const tg_notice_delivery_t *d,
                                       tg_notice_t *out, tg_err_t *err);

/* The KEK id (16 hex digits) a sealed text names, into hex[17]. 0, or -1 when the text is
 * not a sealed blob's base64. */
int tg_notice_sealed_kek_id(const char *sealed, char hex[17]);

/* The sealed text with its data key re-wrapped from one KEK to another (`kek rotate`: the
 * notice is not decrypted), into out. 0, or -1 with err. */
int tg_notice_rewrap(const tg_kek_t *from, const tg_kek_t *to, const char *sealed,
                     char out[TG_NOTICE_SEALED_SIZE], tg_err_t *err);

#endif
