/* ADMIT: the client's address, then billing's admission (phases.h, bill.h). */
#include <string.h>

#include "bill/bill.h"
#include "gateway/phases.h"
#include "types/cidr.h"

/* The client address: the peer, or with trusted proxies configured the one their
 * X-Forwarded-For lines name (iprules.h). Every line, joined in order into the context's
 * scratch buffer: a proxy that adds its own line must not leave the client's first line to
 * be believed. No line is skipped for its length (a long one used to be, and with it the
 * client's address): the lines are bounded by the head's cap (431 past it), and the scratch
 * buffer, reused by the connection for the upstream's header lines, keeps its capacity.
 * -1 when the buffer cannot take them. */
static int client_address(tg_req_t *r, tg_ip_t *client)
{
    tg_req_ctx_t *cx = r->cx;
    const tg_req_head_t *hd = cx->head;
    *client = *cx->peer;
    if (!r->cfg->trusted_proxies.n) return 0;
    size_t need = 0, xl = 0;
    for (size_t i = 0; i < hd->nhdrs; i++)
        if (TG_HDR_IS(hd, &hd->hdrs[i], "x-forwarded-for")) need += hd->hdrs[i].vl + 1;
    tg_buf_reset(cx->scratch);
    if (need && tg_buf_reserve(cx->scratch, need) != 0) return -1;
    char *xff = cx->scratch->p;
    for (size_t i = 0; i < hd->nhdrs; i++) {
        const tg_hdr_t *h = &hd->hdrs[i];
        if (!TG_HDR_IS(hd, h, "x-forwarded-for")) continue;
        if (xl) xff[xl++] = ',';
        memcpy(xff + xl, tg_hdr_value(hd, h), h->vl);
        xl += h->vl;
    }
    tg_ip_client(cx->peer, xl ? xff : NULL, xl, &r->cfg->trusted_proxies, client);
    if (memcmp(client, cx->peer, sizeof *client) != 0) {
        /* (The peer's printable form is already in the event.) */
        char ip[48];
        tg_ip_format(client, ip, sizeof ip);
        TG_EVENT_SET(&r->ev, client_ip, ip, strlen(ip));
    }
    return 0;
}

tg_phase_res_t tg_ph_admit(tg_req_t *r, int64_t now_us)
{
    tg_req_ctx_t *cx = r->cx;
    tg_ip_t client;
    if (client_address(r, &client) != 0)
        return TG_PHASE_REFUSE(503, "unavailable", "out of memory", "out_of_memory");
    tg_bill_ask_t ask;
    tg_bill_ask_from(&ask, cx->xchg, r->metered, r->hold_body, r->route->kind, r->route->name,
                     r->ev.bytes_in, (int64_t)tg_buf_len(cx->body),
                     (int64_t)r->cfg->max_output_tokens);
    tg_bill_env_t env = {cx->policy, cx->prices};
    tg_bill_refusal_t no;
    if (tg_bill_admit(&env, &ask, &r->ev, &client, (uint64_t)now_us * 1000, &r->adm, &no) == 0)
        return TG_PHASE_RES(TG_PHASE_NEXT);
    return TG_PHASE_REFUSE(no.status, no.type, no.message, no.reason);
}
