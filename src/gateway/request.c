/* A request's constructor: see request.h. */
#include "gateway/request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void tg_req_drop_bodies(tg_req_t *r)
{
    if (r->keep_in) OPENSSL_cleanse(r->keep_in, r->keep_in_len);
    free(r->keep_in);
    r->keep_in = NULL;
    r->keep_in_len = 0;
    r->keep_flags = 0;
}

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
    uint64_t id = (uint64_t)tg_event_new_id(wall_us);
    _Static_assert(sizeof r->ev.request_id > 16, "16 hex digits and a NUL");
    for (int i = 15; i >= 0; i--, id >>= 4) /* "%016llx", without printf (every request) */
        r->ev.request_id[i] = "0123456789abcdef"[id & 15];
    r->ev.request_id[16] = '\0';
}
