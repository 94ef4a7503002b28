/* What `plan` (plan.c) shares with `invoice` (invoice.c): a meter's spec text both ways
 * and a quantity in its meter's unit, and the plan as JSON. */
#ifndef TG_CLI_PLAN_H
#define TG_CLI_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "types/plan.h"

/* "billable graduated 1M:3.00 -:2.00 included=1000" into *m (docs/billing.md). TG_EXIT_OK,
 * or the one error line printed and TG_EXIT_USAGE. */
int tg_cli_plan_parse_meter(const char *spec, tg_plan_meter_t *m);
/* The spec of m, as plan set takes it. */
void tg_cli_plan_meter_text(const tg_plan_meter_t *m, char *buf, size_t cap);
/* q in the meter's unit: a count, GB for gb ("1.5"), USD for ai_cost. */
void tg_cli_plan_qty_text(int meter, int64_t q, char *buf, size_t cap);
/* The plan as a JSON object (a new reference; NULL when out of memory). */
struct json_t *tg_cli_plan_json(const tg_plan_t *p);

#endif
