/* A request's constructor: see request.h. */
#include "gateway/request.h"

#include <stdio.h>
#include <string.h>

void tg_req_reset(tg_req_t *r, struct tg_conn *conn, const char *client_ip, int64_t mono_us,
                  int64_t wall_us)
{
    /* One memset: the flags, the admission and the event (the event and the admission were
     * cleared per request before the split too; the rest is a few hundred bytes). */
    memset(r, 0, sizeof *r);
    r->conn = conn;
    r->in_request = 1;
    r->keep_alive = 1;
    r->start_mono = mono_us;
    r->ev.ts_us = wall_us;
    r->ev.tokens_in = r->ev.tokens_out = r->ev.tokens_cached = r->ev.tokens_cache_write =
        TG_TOKENS_UNKNOWN;
    TG_EVENT_SET(&r->ev, client_ip, client_ip, strlen(client_ip));
    /* Unique per process and time-ordered, like event ids; the client's own may replace
     * it once the head is read. */
    snprintf(r->ev.request_id, sizeof r->ev.request_id, "%016llx",
             (unsigned long long)tg_event_new_id(wall_us));
}
