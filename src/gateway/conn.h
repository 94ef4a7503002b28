/* One client connection: HTTP/1.1 parsed by llhttp, keep-alive and
 * pipelining (one request at a time: the parser pauses after each message
 * until its response is done), and the proxied transfer with streaming and
 * back-pressure in both directions. Each request (gateway/request.h) walks its phases
 * (authentication, routing, a held body, admission, forwarding) and ends in exactly one
 * usage event pushed to the recorder. */
#ifndef TG_GATEWAY_CONN_H
#define TG_GATEWAY_CONN_H

#include "gateway/server.h"

/* Accepts a pending connection on w's listener. */
void tg_conn_accept(tg_worker_t *w);
/* Drain: idle connections close now, busy ones after their response. */
void tg_conn_drain_all(tg_worker_t *w);
/* Drain timeout: every connection closes now; in-flight requests are
 * recorded as failed ("shutdown"). */
void tg_conn_close_all(tg_worker_t *w);

#endif
