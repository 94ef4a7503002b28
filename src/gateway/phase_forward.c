/* FORWARD: the upstream request starts; the answer comes back through the connection's
 * upstream handler (phases.h). */
#include "gateway/phases.h"

tg_phase_res_t tg_ph_forward(tg_req_t *r, int64_t now_us)
{
    r->up_start_mono = now_us;                       /* the upstream latency's start (event.h) */
    if (!r->hold_body) r->cx->ops->send_continue(r); /* (a held body's was sent by BODY) */
    r->cx->ops->start_upstream(r);                   /* (it answers 502 itself when it cannot) */
    return TG_PHASE_RES(TG_PHASE_DONE);
}
