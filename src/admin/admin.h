/* The admin listener (server.admin_listen), on the main thread's loop:
 *   GET /healthz  200 {"status":"ok"}: the process is alive
 *   GET /readyz   200 or 503 with the store and upstream state (tg_server_ready)
 * Later issues add /metrics and the admin API here. One request per
 * connection: these are probes, not traffic. */
#ifndef TG_ADMIN_ADMIN_H
#define TG_ADMIN_ADMIN_H

#include <uv.h>

#include "util/err.h"

struct tg_server;
typedef struct tg_admin tg_admin_t;

tg_admin_t *tg_admin_start(uv_loop_t *loop, const char *listen, struct tg_server *srv,
                           tg_err_t *err);
/* Closes the listener and open connections; memory is freed by the loop. */
void tg_admin_stop(tg_admin_t *a);

#endif
