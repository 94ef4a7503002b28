/* Retry schedule and answer classes: see retry.h. */
#include "notify/retry.h"

int64_t tg_notify_backoff_ms(int failures, long min_ms, long max_ms, uint64_t rnd)
{
    if (min_ms < 1) min_ms = 1;
    if (max_ms < min_ms) max_ms = min_ms;
    if (failures < 1) failures = 1;
    int64_t base = min_ms;
    for (int i = 1; i < failures && base < max_ms; i++)
        base *= 2; /* stops at max: no overflow however many failures */
    if (base > max_ms) base = max_ms;
    int64_t half = base / 2;
    return base - half + (int64_t)(rnd % (uint64_t)(half + 1));
}

tg_notify_outcome_t tg_notify_classify_http(long status)
{
    if (status >= 200 && status < 300) return TG_NOTIFY_OK;
    if (status == 408 || status == 429 || (status >= 500 && status < 600)) return TG_NOTIFY_RETRY;
    if (status <= 0) return TG_NOTIFY_RETRY; /* no answer at all */
    return TG_NOTIFY_PERMANENT;
}
