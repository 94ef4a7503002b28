/* The answer's phases, once both halves of the request are over, whatever way: METER's
 * end, SETTLE, RECORD (phases.h). */
#include <string.h>

#include "bill/bill.h"
#include "gateway/phases.h"
#include "meter/exchange.h"
#include "meter/recorder.h"
#include "observe/metrics.h"
#include "types/audit.h"
#include "types/bodies.h"

void tg_ph_meter(tg_req_t *r, int64_t now_us)
{
    (void)now_us;
    r->phase = TG_PHASE_METER;
    if (!r->metered) return;
    int unparsed;
    tg_xchg_finish(r->cx->xchg, &r->ev, &unparsed);
    if (unparsed) atomic_fetch_add_explicit(r->cx->unparsed, 1, memory_order_relaxed);
}

/* With the shared limiter (limits.backend redis://): a request that ended while Redis decided
 * its admission has its ticket cancelled (a late "yes" is undone); what it holds in Redis
 * (its slot and reservation, its cost to the month's spend, its token charges to the actual
 * count) is settled, with no call at all when it holds only rate counts. Kept out of
 * tg_ph_settle so the in-memory path pays one test for it. */
static __attribute__((noinline)) void settle_shared(tg_req_t *r, tg_route_kind_t kind)
{
    if (r->ticket) {
        tg_redis_cancel(r->ticket);
        r->ticket = NULL;
    }
    if (!r->held || !r->cx->hold) return;
    const tg_redis_hold_t *h = r->cx->hold;
    tg_redis_adj_t adj[3];
    size_t n = tg_redis_token_adj(h, tg_bill_tokens(&r->ev, kind), adj);
    if (h->inflight || h->reserved || n || (h->budget && r->ev.cost_micros > 0))
        tg_redis_settle(r->cx->shared, h, r->ev.cost_micros, adj, n);
    r->held = 0;
}

void tg_ph_settle(tg_req_t *r, int64_t now_us)
{
    r->phase = TG_PHASE_SETTLE;
    tg_bill_answer_t a;
    tg_bill_answer_from(&a, r->cx->xchg, r->metered, r->drain,
                        r->route ? r->route->kind : TG_ROUTE_HTTP,
                        r->cfg ? r->cfg->max_output_tokens : 0);
    tg_bill_env_t env = {r->cx->policy, r->cx->prices, 0};
    tg_bill_settle(&env, &a, &r->adm, &r->ev, (uint64_t)now_us * 1000);
    r->metered = 0; /* the exchange follows no request now */
    if (r->cx->shared) settle_shared(r, a.kind);
}

/* The finished request in the worker's metrics: its event, and on an MCP route that
 * reached the upstream each tools/call of it (the exchange still holds this request's
 * calls: the next request has not begun). */
static void observe(tg_req_t *r)
{
    tg_metrics_block_t *mb = r->cx->metrics;
    if (!mb) return;
    tg_metrics_observe(mb, &r->ev);
    /* (A connect that failed, upstream_unreachable, sent nothing: no call reached it.) */
    if (r->route && r->route->kind == TG_ROUTE_MCP && r->ev.outcome != TG_OUTCOME_REJECTED &&
        strcmp(r->ev.reason, "upstream_unreachable") != 0 && r->cx->xchg)
        for (size_t i = 0, n = tg_xchg_ntools(r->cx->xchg); i < n; i++)
            tg_metrics_observe_tool(mb, r->ev.tenant, tg_xchg_tool(r->cx->xchg, i),
                                    !tg_xchg_call_billed(r->cx->xchg, i));
}

/* audit.bodies: encrypt: the request's copy of its body and the answer the exchange kept go
 * with a call's event (one allocation the recorder frees once; the writer seals it, off this
 * loop). Not a call the trail records: nothing is kept. */
static void attach_bodies(tg_req_t *r)
{
    const char *out = NULL;
    size_t out_len = 0;
    int trunc = 0;
    tg_xchg_t *x = r->cx->xchg;
    int has_out = x && tg_xchg_take_answer(x, &out, &out_len, &trunc);
    if (tg_audit_is_call(&r->ev)) {
        uint32_t flags = r->keep_flags;
        if (has_out && (r->ev.body_hashed & TG_BODY_OUT))
            flags |= TG_BODIES_HAS_OUT | (trunc ? TG_BODIES_OUT_TRUNC : 0);
        else
            out_len = 0;
        r->ev.bodies = tg_bodies_new(r->keep_in, r->keep_in_len, out, out_len, flags);
        r->ev.bodies_state = r->ev.bodies ? TG_BODIES_PENDING : TG_BODIES_DROPPED;
    }
    tg_req_drop_bodies(r);
    if (x) tg_xchg_drop_answer(x);
}

void tg_ph_record(tg_req_t *r)
{
    r->phase = TG_PHASE_RECORD;
    r->ev.id = tg_event_new_id(r->ev.ts_us);
    observe(r);
    if (r->cfg && r->cfg->audit_bodies == TG_BODIES_ENCRYPT)
        attach_bodies(r);
    else if (r->keep_in)
        tg_req_drop_bodies(r);
    tg_recorder_push(r->cx->rec, &r->ev);
    r->ev.bodies = NULL; /* the recorder's now */
}

void tg_req_end(tg_req_t *r, int64_t now_us)
{
    r->ev.latency_us = now_us - r->start_mono;
    /* An upstream call still open when the request ends (tollgate gave up on it) lasted
     * until now; a finished one was timed where it ended (the connection's on_up_done). */
    if (r->up_start_mono && !r->ev.upstream_latency_us)
        r->ev.upstream_latency_us = tg_req_upstream_us(r, now_us);
    tg_ph_meter(r, now_us);
    tg_ph_settle(r, now_us);
    tg_ph_record(r);
}
