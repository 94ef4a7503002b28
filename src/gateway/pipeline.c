/* The loop that runs a request's phases (phases.h, request.h). */
#include "gateway/phases.h"

const tg_phase_fn tg_phases[TG_PHASE_FORWARD + 1] = {
    [TG_PHASE_AUTH] = tg_ph_auth,       [TG_PHASE_ROUTE] = tg_ph_route,
    [TG_PHASE_BODY] = tg_ph_body,       [TG_PHASE_ADMIT] = tg_ph_admit,
    [TG_PHASE_FORWARD] = tg_ph_forward,
};

void tg_req_run(tg_req_t *r, int64_t now_us)
{
    while (r->phase <= TG_PHASE_FORWARD) {
        tg_phase_res_t res = tg_phases[r->phase](r, now_us);
        switch (res.rc) {
        case TG_PHASE_NEXT: r->phase = (tg_phase_t)(r->phase + 1); continue;
        case TG_PHASE_WAIT: return;
        case TG_PHASE_ANSWER:
            r->cx->ops->answer_error(r, res.status, res.type, res.message, res.reason);
            r->phase = TG_PHASE_METER;
            return;
        case TG_PHASE_DONE: r->phase = TG_PHASE_METER; return;
        }
    }
}
