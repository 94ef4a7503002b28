/* The admin listener (server.admin_listen), on the main thread's loop:
 *   GET /healthz  200 {"status":"ok"}: the process is alive
 *   GET /readyz   200 or 503 with the store and upstream state
 *   GET /metrics  counters in the Prometheus text format
 * Later issues add the admin API here. One request per connection: these are
 * probes, not traffic.
 *
 * The admin sits below the gateway (docs/ARCHITECTURE.md, "Layers"): what it
 * needs from the server it gets through tg_admin_ops_t, a table the server
 * fills when it starts the admin, never by including gateway/server.h. */
#ifndef TG_ADMIN_ADMIN_H
#define TG_ADMIN_ADMIN_H

#include <uv.h>

#include "util/err.h"

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
} tg_admin_ops_t;

/* Serves on fd, a listening socket the caller made for `listen` (the text is only for
 * messages). ops is copied. NULL on failure, with err set when a step reported one. */
tg_admin_t *tg_admin_start(uv_loop_t *loop, int fd, const char *listen, const tg_admin_ops_t *ops,
                           void *ctx, tg_err_t *err);
/* Closes the listener and open connections; memory is freed by the loop. */
void tg_admin_stop(tg_admin_t *a);

#endif
