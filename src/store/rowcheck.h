/* What a row must satisfy before either backend writes it: the tables' CHECKs said in
 * words (a clear "limit set: period 120 s (expected 1, 60 or 3600)" rather than the
 * database's "CHECK constraint failed"), checked once here for SQLite and PostgreSQL
 * alike, so both refuse the same rows with the same messages. Each returns 0, or -1 with
 * err set. Nothing outside src/store/ includes it, except the store's unit tests. */
#ifndef TG_STORE_ROWCHECK_H
#define TG_STORE_ROWCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "types/notice.h"
#include "types/rows.h"
#include "util/err.h"

int tg_rowcheck_limit(const tg_limit_row_t *r, tg_err_t *err);
int tg_rowcheck_price(const tg_price_row_t *r, tg_err_t *err);
int tg_rowcheck_budget(const tg_budget_row_t *r, tg_err_t *err);
int tg_rowcheck_alert(const tg_alert_row_t *r, tg_err_t *err);
int tg_rowcheck_alarm_put(const tg_alarm_row_t *rows, size_t nrows, const tg_alarm_event_row_t *evs,
                          size_t nevs, tg_err_t *err);
/* The fields of a tg_ip_rule_row_t or tg_tool_rule_row_t to add: IP rules and tool rules
 * are one shape, (tenant, action, value) with the value a CIDR or a tool pattern, in two
 * tables. The fields are fixed-size arrays, maybe filled without a NUL, so each comes with
 * its size. */
typedef struct tg_rule_fields {
    const char *tenant, *action, *value;
    size_t tenant_cap, action_cap, value_cap;
    int64_t created_us;
} tg_rule_fields_t;
#define TG_RULE_FIELDS(row, value_field)                                                           \
    ((tg_rule_fields_t){(row)->tenant, (row)->action, (row)->value_field, sizeof(row)->tenant,     \
                        sizeof(row)->action, sizeof(row)->value_field, (row)->created_us})

/* A rule to add (what: "ip rule add", value_name: "CIDR"). */
int tg_rowcheck_rule(const char *what, const char *value_name, const tg_rule_fields_t *r,
                     tg_err_t *err);
/* A delivery's status: pending, delivered or failed. */
int tg_rowcheck_outbox_status(const char *status, tg_err_t *err);

/* "for tenant "acme"" or "for all tenants" (tenant "*"), for messages about a rule. */
const char *tg_rowcheck_rule_owner(const char *tenant, char *buf, size_t cap);

#endif
