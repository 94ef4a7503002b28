/* An upstream's credentials in use: which one a request takes, and the header value it goes
 * into. `credentials: [...]` lists them (docs/configuration.md); a header value holding
 * "{credential}" gets one of them per upstream request, in turn. The list belongs to the
 * config that parsed it, so a request keeps the one it started with across a reload (it
 * holds its config) and a SIGHUP that read new files hands the next request the new ones.
 * No I/O, no clock, no lock: the cursor is an atomic in the upstream's config. */
#ifndef TG_CONFIG_CREDENTIAL_H
#define TG_CONFIG_CREDENTIAL_H

#include <stddef.h>

#include "config/config.h"

#define TG_CRED_MARK     "{credential}"
#define TG_CRED_MARK_LEN (sizeof TG_CRED_MARK - 1)

/* The credential for the next upstream request (round robin over u->credentials, shared by
 * every worker), or NULL when the upstream has none. */
const char *tg_cred_next(tg_upstream_conf_t *u);

/* The bytes h's value takes with cred ("" or NULL when h has no "{credential}"). */
size_t tg_cred_value_len(const tg_header_conf_t *h, const char *cred);

/* Writes h's value with cred put in place of "{credential}" (no NUL) at out, which holds
 * tg_cred_value_len(h, cred) bytes; returns the end. */
char *tg_cred_value(const tg_header_conf_t *h, const char *cred, char *out);

#endif
