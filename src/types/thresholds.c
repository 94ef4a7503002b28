/* A budget's alert thresholds: see thresholds.h. */
#include "types/thresholds.h"

tg_threshold_verdict_t tg_threshold_check(const int *prev, size_t i, int64_t v)
{
    if (v < 1 || v > TG_THRESHOLD_MAX_PCT) return TG_THRESHOLD_RANGE;
    if (i >= TG_THRESHOLDS_MAX) return TG_THRESHOLD_TOO_MANY;
    if (i > 0 && v <= prev[i - 1]) return TG_THRESHOLD_ORDER;
    return TG_THRESHOLD_OK;
}
