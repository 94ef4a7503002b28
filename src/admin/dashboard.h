/* The dashboard's side of the admin listener (issue 11): which /dashboard path is what,
 * its embedded assets, and how a browser proves it has the admin token.
 *
 * A browser cannot put a Bearer header on a navigation, so:
 *   GET /dashboard?token=TOKEN   the token checked as the Bearer one is (its SHA-256
 *                                compared with CRYPTO_memcmp); if right, 303 to /dashboard
 *                                with Set-Cookie: tg_dash=VALUE; HttpOnly; SameSite=Strict;
 *                                Path=/dashboard. Wrong: 401.
 *   every /dashboard path        accepts that cookie or `Authorization: Bearer TOKEN`.
 * VALUE is hex HMAC-SHA256(key = SHA-256 of the token, "tollgate-dashboard"): not the token
 * (the process keeps only the token's digest, config.h), useless for the Bearer header, and
 * different once a reload changes the token, so old cookies stop working at once. */
#ifndef TG_ADMIN_DASHBOARD_H
#define TG_ADMIN_DASHBOARD_H

#include <stddef.h>

#define TG_DASH_COOKIE "tg_dash"

/* One embedded file of src/admin/assets/ (made into C by scripts/embed-assets.c at build
 * time: build/gen/admin_assets.c). The table ends with a NULL name. */
typedef struct tg_asset {
    const char *name; /* the file name, e.g. "app.js" */
    const unsigned char *data;
    size_t len;
} tg_asset_t;
extern const tg_asset_t tg_admin_assets[];

/* The asset called name, or NULL. */
const tg_asset_t *tg_admin_asset(const char *name);
/* Content-Type for a file name by its extension (html, js, css, svg; else octet-stream). */
const char *tg_admin_asset_type(const char *name);

typedef enum {
    TG_DASH_NONE = 0, /* not a dashboard path */
    TG_DASH_PAGE,     /* /dashboard, /dashboard/, /dashboard/tenant/ID: index.html */
    TG_DASH_ASSET,    /* /dashboard/NAME.EXT: the asset NAME.EXT */
    TG_DASH_API,      /* /dashboard/api/overview, /dashboard/api/tenant/ID */
    TG_DASH_UNKNOWN,  /* under /dashboard but none of those: 404 once authorized */
} tg_dash_route_t;

/* Classifies path (without its query). For TG_DASH_ASSET, out is the file name; for
 * TG_DASH_API, out is "overview" or "tenant/ID" with ID percent-decoded (an ID that does
 * not decode to 1-63 characters of A-Z a-z 0-9 . _ - is TG_DASH_UNKNOWN, so no other byte
 * reaches the store). cap is out's size. */
tg_dash_route_t tg_admin_dash_route(const char *path, char *out, size_t cap);

/* The cookie value for a token's SHA-256: 64 hex digits and a NUL. */
void tg_admin_dash_cookie(const unsigned char *want, char out[65]);
/* 1 when the Cookie header value (len bytes; NULL: none) holds a tg_dash=VALUE pair (any
 * of them: another service of the same host may have set one with a wider path) with the
 * value of want (NULL: no token configured, never accepted). Each pair is compared with
 * CRYPTO_memcmp, whatever its content. */
int tg_admin_check_cookie(const char *value, size_t len, const unsigned char *want);
/* 1 when query (the text after '?') has token=T (percent-decoded) whose SHA-256 equals
 * want; hashed and compared once whatever the input. */
int tg_admin_check_token_param(const char *query, const unsigned char *want);

#endif
