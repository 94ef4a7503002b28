/* The checks on ids and free text that the CLI and the admin API both apply (one set of
 * rules, one set of words): a new tenant's id, a name or label, text that ends up in JSON. */
#ifndef TG_TYPES_TEXT_H
#define TG_TYPES_TEXT_H

#include <stddef.h>

/* What a tenant id may be, in the words of every error that refuses one. */
#define TG_TENANT_ID_RULE "use 1-63 characters of A-Z a-z 0-9 . _ -"

/* An id a new tenant may take: tg_tenant_id_valid (util/sizes.h), and not "." or "..", which
 * a browser resolves away as a path segment of the tenant's dashboard and admin URLs. */
int tg_text_new_tenant_id(const char *s);

/* Free text without control characters (names, reasons). */
int tg_text_valid_label(const char *s);

/* Valid UTF-8 without control characters: for values that end up in JSON (a pause reason
 * goes into the 503 answer) and in metric labels. */
int tg_text_valid_utf8(const char *s);

/* One UTF-8 sequence at s: its length, or 0 when malformed (overlong forms, surrogates and
 * code points past U+10FFFF included). */
size_t tg_text_utf8_len(const unsigned char *s);

/* s with every byte >= 0x80 as '?', cut to cap - 1 bytes, into out: what a JSON answer
 * shows of text json_string() refuses (not UTF-8: a row written by hand, a model name from
 * a broken upstream), in the usage report and the admin API alike. */
void tg_text_ascii_only(const char *s, char *out, size_t cap);

#endif
