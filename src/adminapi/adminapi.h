/* The admin API (issue 14): REST + JSON under /admin/v1/ on server.admin_listen
 * (docs/admin-api.md; its OpenAPI document is src/admin/assets/openapi.json).
 *
 * The admin listener (admin/admin.h) reads the request, checks the bearer token and hands
 * the call to the server, which runs tg_adminapi_answer on a thread with a store
 * connection of its own (dash.h, tg_dash_start_writer): the admin's loop, which also
 * answers /healthz, /readyz and /metrics, never waits on the store. The operations, their
 * checks and their error words are the CLI's (src/cli/), through the same store functions;
 * each change bumps the store's auth or policy version, so every gateway takes it within a
 * second.
 *
 * Scopes, decided here from the route table before anything is read:
 *   an admin token (and server.admin_token, actor "config-token") may call every route;
 *   a read token only GET (else 403 forbidden);
 *   a read token scoped to a tenant only the routes marked for it (its tenant object,
 *   usage, reports, budget), and only for its tenant: everything else is 404, as if it did not
 *   exist (a 403 would tell it the other tenant is there).
 * Every call, refused or not, goes through tg_adminapi_audit. */
#ifndef TG_ADMINAPI_ADMINAPI_H
#define TG_ADMINAPI_ADMINAPI_H

#include <stddef.h>
#include <stdint.h>

#include "admin/tokens.h"
#include "crypt/crypt.h"
#include "store/store.h"

struct json_t;

/* One call, owned by the job that runs it (tg_adminapi_req_free). */
typedef struct tg_adminapi_req {
    char method[8]; /* "GET", "POST", "PUT", "DELETE", "HEAD" */
    char *path;     /* from "/admin/v1/" on, percent-encoded as sent */
    char *query;    /* after '?', or NULL */
    char *body;     /* NUL-terminated, body_len bytes; NULL = none */
    size_t body_len;
    tg_admin_principal_t who;
    int has_kek; /* the config's KEK, to seal a new key's signing secret; wiped with req */
    tg_kek_t kek;
} tg_adminapi_req_t;

/* A copy of the call's parts (kek: the config's, NULL when it has none); NULL when out of
 * memory. */
tg_adminapi_req_t *tg_adminapi_req_new(const char *method, const char *path, const char *query,
                                       const char *body, size_t body_len,
                                       const tg_admin_principal_t *who, const tg_kek_t *kek);
void tg_adminapi_req_free(void *req);

/* Answers req on s at now_us: the body (never NULL but out of memory) and *status. The
 * signature of dash.h's tg_dash_fn. */
struct json_t *tg_adminapi_answer(tg_store_t *s, void *req, int64_t now_us, int *status);

/* The route table, for the index (GET /admin/v1/) and the OpenAPI test: n routes of
 * method and path template ("/admin/v1/tenants/{id}"). */
typedef struct tg_adminapi_route_info {
    const char *method, *path;
} tg_adminapi_route_info_t;
size_t tg_adminapi_routes(const tg_adminapi_route_info_t **out);

/* The one place every admin call's record goes: the audit trail (audit/audit.h) on s, at
 * now_us, actor "admin-token:ID" or "config-token", action "METHOD ROUTE STATUS" ("POST
 * /admin/v1/tenants/{id}/disable 200", refusals too), the object, its tenant ("" when the
 * route names none), and the object before and after a change when known (never a secret;
 * NULL: none). A record that cannot be written is logged as an error (the change it
 * describes has been made: it is not undone). */
void tg_adminapi_audit(tg_store_t *s, const tg_admin_principal_t *who, const char *action,
                       const char *object, const char *tenant, int status,
                       const struct json_t *before, const struct json_t *after, int64_t now_us);

#endif
