/* ADMIT: the client's address, then billing's admission (phases.h, bill.h).
 *
 * With limits.backend redis:// the counters are Redis's (redis/client.h): pauses and IP
 * rules are still decided here from the policy's snapshot, then everything else that
 * applies goes to Redis in one script call and the phase WAITs; the reply's callback, on
 * this loop, runs the phases again from ADMIT, which finds the verdict. A request whose
 * client left meanwhile has ended (conn_close: SETTLE cancels the ticket), so the callback
 * never runs for it. No answer in limits.timeout, or Redis down: limits.on_backend_down
 * (local: the in-memory limits with this gateway's share of them; allow; deny: 503), and
 * what a local admission counts is journaled for Redis. */
#include <stdlib.h>
#include <string.h>

#include "bill/bill.h"
#include "gateway/phases.h"
#include "policy/budget.h"
#include "redis/client.h"
#include "types/cidr.h"
#include "util/clock.h"

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

static tg_phase_res_t refusal(const tg_admission_t *adm)
{
    tg_bill_refusal_t no;
    if (tg_bill_refusal(adm, &no) == 0) return TG_PHASE_RES(TG_PHASE_NEXT);
    return TG_PHASE_REFUSE(no.status, no.type, no.message, no.reason);
}

static tg_redis_hold_t *hold_of(tg_req_ctx_t *cx)
{
    if (!cx->hold) cx->hold = calloc(1, sizeof *cx->hold);
    return cx->hold;
}

/* The reply (or its absence) of a shared admission: the phases go on from ADMIT. */
static void on_shared(void *ud, const tg_admission_t *a, int64_t spend, const tg_admit_plan_t *plan,
                      const int64_t *ahead_us, size_t nahead, int64_t stamp_us)
{
    tg_req_t *r = ud;
    int64_t now_us = tg_mono_us();
    r->ticket = NULL;
    if (a) {
        r->adm = *a;
        r->shared = TG_SHARED_DECIDED;
        r->held = a->verdict == TG_ADMIT_OK;
        if (spend >= 0) tg_policy_observe_spend(r->cx->policy, r->ev.tenant, spend, r->ev.ts_us);
        /* The shared counters as Redis left them, for this process's view of the tenant's
         * use (quota alarm, /metrics) and for a fallback that starts from them. */
        if (plan && nahead == plan->n)
            tg_policy_mirror(r->cx->policy, r->ev.tenant, plan, ahead_us, stamp_us,
                             (uint64_t)now_us * 1000);
    } else {
        r->shared = TG_SHARED_UNANSWERED;
    }
    /* The connection answered it meanwhile (a body over server.max_body, a malformed
     * message): no phase runs now; what Redis admitted is given back at its SETTLE. */
    if (r->resp_done) return;
    tg_req_run(r, now_us);
}

/* Redis cannot answer: limits.on_backend_down. An admission made here is journaled (its
 * rate and token units at the request's instant) and its settlement too, so Redis counts
 * it once it is back. */
static tg_phase_res_t fall_back(tg_req_t *r, const tg_bill_env_t *env, const tg_bill_ask_t *ask,
                                const tg_ip_t *client, const tg_admit_plan_t *plan, uint64_t now_ns)
{
    tg_req_ctx_t *cx = r->cx;
    const tg_config_t *cfg = r->cfg;
    tg_redis_count_fallback(cx->shared);
    if (cfg->limits.on_down == TG_LIMITS_DOWN_DENY) {
        memset(&r->adm, 0, sizeof r->adm);
        return TG_PHASE_REFUSE(503, "limits_unavailable",
                               "the shared limits cannot be reached; try again later",
                               "limits_unavailable");
    }
    tg_bill_refusal_t no = {0};
    if (cfg->limits.on_down == TG_LIMITS_DOWN_LOCAL) {
        tg_bill_env_t local = *env;
        local.share = (uint32_t)cfg->limits.instances;
        if (tg_bill_admit(&local, ask, &r->ev, client, now_ns, &r->adm, &no) != 0)
            return TG_PHASE_REFUSE(no.status, no.type, no.message, no.reason);
    } else {
        memset(&r->adm, 0, sizeof r->adm); /* allow: admitted, nothing held here */
    }
    tg_redis_hold_t *hold = hold_of(cx);
    if (!hold) return TG_PHASE_RES(TG_PHASE_NEXT);
    char month[8], id[TG_REDIS_ID_SIZE];
    tg_budget_period(r->ev.ts_us, month, NULL, NULL);
    tg_redis_next_id(cx->shared, id);
    tg_redis_cmd_t *c = tg_redis_scratch(cx->shared);
    tg_redis_admit_cmd(c, tg_redis_sha(cx->shared), r->ev.tenant, month, plan, id,
                       tg_redis_ttl_ms(cx->shared), hold);
    hold->mode = TG_REDIS_LOCAL;
    hold->inflight = hold->reserved = 0; /* none taken in Redis */
    static __thread tg_redis_adj_t adj[TG_PLAN_MAX_RULES];
    size_t n = tg_redis_plan_adj(plan, r->ev.tenant, 1, r->ev.ts_us, adj);
    if (n) tg_redis_settle(cx->shared, hold, 0, adj, n);
    r->held = 1;
    return TG_PHASE_RES(TG_PHASE_NEXT);
}

static tg_phase_res_t admit_shared(tg_req_t *r, const tg_bill_env_t *env, const tg_bill_ask_t *ask,
                                   const tg_ip_t *client, uint64_t now_ns)
{
    tg_req_ctx_t *cx = r->cx;
    if (r->shared == TG_SHARED_DECIDED) return refusal(&r->adm);
    tg_admit_in_t in;
    tg_bill_refusal_t no;
    if (tg_bill_admit_in(env, ask, &r->ev, client, &in, &no) != 0) {
        memset(&r->adm, 0, sizeof r->adm);
        return TG_PHASE_REFUSE(no.status, no.type, no.message, no.reason);
    }
    static __thread tg_admit_plan_t plan; /* (4 KiB: off the stack; one loop per thread) */
    if (tg_policy_plan(cx->policy, &in, &plan, &r->adm) != 0) return refusal(&r->adm);
    if (ask->kind == TG_ROUTE_MCP && ask->ntools > 1)
        /* (8 rules and 63 further tools fit TG_PLAN_MAX_RULES.) */
        (void)tg_policy_plan_tools(cx->policy, &plan, r->ev.tenant, ask->tools + 1,
                                   ask->ntools - 1);
    if (plan.n == 0 && plan.cap == 0 && !plan.has_budget)
        return TG_PHASE_RES(TG_PHASE_NEXT); /* no counter applies: Redis is not asked */
    if (r->shared == TG_SHARED_UNANSWERED) return fall_back(r, env, ask, client, &plan, now_ns);
    tg_redis_hold_t *hold = hold_of(cx);
    if (!hold) return TG_PHASE_REFUSE(503, "unavailable", "out of memory", "out_of_memory");
    char month[8], id[TG_REDIS_ID_SIZE];
    tg_budget_period(r->ev.ts_us, month, NULL, NULL);
    tg_redis_next_id(cx->shared, id);
    tg_redis_cmd_t *c = tg_redis_scratch(cx->shared);
    if (tg_redis_admit_cmd(c, tg_redis_sha(cx->shared), r->ev.tenant, month, &plan, id,
                           tg_redis_ttl_ms(cx->shared), hold) == 0)
        r->ticket = tg_redis_admit(cx->shared, c, &plan, hold, on_shared, r);
    if (!r->ticket) return fall_back(r, env, ask, client, &plan, now_ns); /* down: at once */
    r->shared = TG_SHARED_WAITING;
    return TG_PHASE_RES(TG_PHASE_WAIT);
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
    tg_bill_env_t env = {cx->policy, cx->prices, 0};
    if (cx->shared) return admit_shared(r, &env, &ask, &client, (uint64_t)now_us * 1000);
    tg_bill_refusal_t no;
    if (tg_bill_admit(&env, &ask, &r->ev, &client, (uint64_t)now_us * 1000, &r->adm, &no) == 0)
        return TG_PHASE_RES(TG_PHASE_NEXT);
    return TG_PHASE_REFUSE(no.status, no.type, no.message, no.reason);
}
