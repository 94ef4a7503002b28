/* The admin listener (server.admin_listen), on the main thread's loop:
 *   GET /healthz  200 {"status":"ok"}: the process is alive
 *   GET /readyz   200 or 503 with the store and upstream state
 *   GET /metrics  counters in the Prometheus text format
 *   GET /dashboard[/...]  the dashboard: its page, assets and JSON (admin/dashboard.h); a
 *                 browser may also log in with ?token= and then use a cookie
 *   /admin/v1/... the admin API (adminapi/adminapi.h, docs/admin-api.md): the call, its
 *                 body included (at most TG_ADMIN_BODY_MAX bytes, else 413), is handed to
 *                 the server (tg_admin_ops_t.api_call), which answers it off this loop;
 *                 GET /admin/v1/openapi.json is its OpenAPI document, an embedded asset.
 * One request per connection: these are probes and admin calls, not traffic.
 *
 * /admin/v1/ also takes the admin API's tokens (admin/tokens.h): the presented token's
 * digest is compared with server.admin_token's (a full admin, actor "config-token") and
 * then looked up among them through tg_admin_ops_t.api_token.
 *
 * Every path but /healthz and /readyz (the probes an orchestrator sends without
 * credentials) needs `Authorization: Bearer TOKEN` with server.admin_token: else 401 with
 * `WWW-Authenticate: Bearer realm="tollgate-admin"`, before the path is even looked at (an
 * unknown path is 401 too, so a caller without the token learns nothing). With no token
 * configured every such path is 401. The token is known only by its SHA-256 (config.h); the
 * presented one is hashed and the digests compared with CRYPTO_memcmp, so the time taken
 * depends on neither token's length nor content. Refusals are counted
 * (tollgate_admin_unauthorized_total on /metrics) and logged at most once a second, never
 * with what was presented.
 *
 * The admin sits below the gateway (docs/ARCHITECTURE.md, "Layers"): what it
 * needs from the server it gets through tg_admin_ops_t, a table the server
 * fills when it starts the admin, never by including gateway/server.h. */
#ifndef TG_ADMIN_ADMIN_H
#define TG_ADMIN_ADMIN_H

#include <uv.h>

#include "admin/tokens.h"
#include "util/err.h"

/* The largest request body read (the admin API's); a longer one is answered 413. */
#define TG_ADMIN_BODY_MAX (64 * 1024)

struct json_t;
typedef struct tg_admin tg_admin_t;

/* What the admin asks of the server. Each is called on the loop the admin runs on (the
 * main thread's) with the ctx given to tg_admin_start. */
typedef struct tg_admin_ops {
    /* /readyz: fills out, a JSON object; returns 1 when ready. */
    int (*ready)(void *ctx, struct json_t *out);
    /* /metrics: the text (malloc'd, freed by the admin; NULL when out of memory). */
    char *(*metrics)(void *ctx);
    /* server.header_timeout and server.idle_timeout of the config in force now (a reload
     * may change them), read as each connection needs them; 0 = none. */
    long (*header_timeout_ms)(void *ctx);
    long (*idle_timeout_ms)(void *ctx);
    /* The SHA-256 of the admin token of the config in force now (a reload may change it), or
     * NULL when none is configured (every protected path is then refused). Read per request. */
    const unsigned char *(*token_sha256)(void *ctx);
    /* The dashboard (admin/dashboard.h; may be NULL: /dashboard/api is then 404). Starts
     * building the JSON answer of what ("overview" or "tenant/ID") with query (the text
     * after '?', or NULL) off this loop; done(arg, status, body) is called later on this
     * loop, once, with the body owned by the callee, unless dash_cancel(ctx, handle) came
     * first. Returns the handle, or NULL when it cannot now (the admin answers 503). */
    void *(*dash_query)(void *ctx, const char *what, const char *query,
                        void (*done)(void *arg, int status, struct json_t *body), void *arg);
    void (*dash_cancel)(void *ctx, void *handle);
    /* The alarms firing now for tenant (NULL: all), a JSON array the caller owns; the
     * dashboard's "alarms" member. NULL member: an empty array. */
    struct json_t *(*alarms_firing)(void *ctx, const char *tenant);
    /* The admin API (may be NULL: /admin/v1/ is then 404). api_token looks the SHA-256 of a
     * presented token up among the admin tokens at the server's now: 1 and *who filled, or
     * 0. api_call starts answering one call off this loop, as dash_query does (method,
     * path from "/admin/v1" on, query after '?' or NULL, body of len bytes or NULL; all
     * copied); done is called later on this loop, once, unless api_cancel came first.
     * NULL when it cannot now (the admin answers 503). */
    int (*api_token)(void *ctx, const unsigned char sha256[32], tg_admin_principal_t *who);
    void *(*api_call)(void *ctx, const char *method, const char *path, const char *query,
                      const char *body, size_t len, const tg_admin_principal_t *who,
                      void (*done)(void *arg, int status, struct json_t *body), void *arg);
    void (*api_cancel)(void *ctx, void *handle);
} tg_admin_ops_t;

typedef enum {
    TG_ADMIN_AUTH_OK = 0,
    TG_ADMIN_AUTH_MISSING,   /* no Authorization header */
    TG_ADMIN_AUTH_MALFORMED, /* not `Bearer TOKEN` (another scheme, no token, two headers) */
    TG_ADMIN_AUTH_WRONG,     /* a bearer token that is not the configured one */
    TG_ADMIN_AUTH_UNSET,     /* no token is configured: nothing is accepted */
} tg_admin_auth_t;

/* Checks an Authorization header's value (value NULL: no header) against want, the SHA-256
 * of the token (NULL: none configured). The scheme is case-insensitive and followed by one
 * or more spaces or tabs; whitespace after the token is ignored. Whatever the input, the
 * presented token (empty when there is none) is hashed and compared with CRYPTO_memcmp
 * (against zeros when want is NULL), exactly once: there is no early exit on a length. */
tg_admin_auth_t tg_admin_check_bearer(const char *value, size_t len, const unsigned char *want);
/* The same, also giving the presented token's SHA-256 (wiped by the caller), which the
 * admin API then looks up among its tokens when it is not want. */
tg_admin_auth_t tg_admin_check_bearer_sha(const char *value, size_t len, const unsigned char *want,
                                          unsigned char got[32]);

/* Digest comparisons made by tg_admin_check_bearer since the process started (for tests:
 * one per call, whatever the input). */
unsigned long tg_admin__compares(void);

/* Serves on fd, a listening socket the caller made for `listen` (the text is only for
 * messages). ops is copied. NULL on failure, with err set when a step reported one. */
tg_admin_t *tg_admin_start(uv_loop_t *loop, int fd, const char *listen, const tg_admin_ops_t *ops,
                           void *ctx, tg_err_t *err);
/* Closes the listener and open connections; memory is freed by the loop. */
void tg_admin_stop(tg_admin_t *a);

#endif
