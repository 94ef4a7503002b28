/* The audit trail's operations above the store (docs/audit.md): appending an admin action,
 * the snapshot of the tables a command changes (before and after, as JSON), and the
 * verification of the chain. The record, its canonical form and the chain itself are in
 * types/audit.h; the store links and writes records (tg_store_audit_append). */
#ifndef TG_AUDIT_AUDIT_H
#define TG_AUDIT_AUDIT_H

#include <stdint.h>

#include "store/store.h"
#include "types/audit.h"
#include "util/err.h"

/* Appends one admin record: actor (the OS user; "admin-token:ID" for the admin API), action
 * ("tenant.disable"), object (what it names), tenant (whose data, "" none), before and
 * after (JSON text, NULL = none), at now_us. */
int tg_audit_admin(tg_store_t *s, const char *actor, const char *action, const char *object,
                   const char *tenant, const char *before, const char *after, int64_t now_us,
                   tg_err_t *err);

/* The rows of the tables named in tables (NULL-terminated; each one of tg_store_tables) as
 * a JSON object {table: [row, ...]} read with tg_store_query, columns in table order; the
 * columns of skip (NULL-terminated "table.column" names: secrets' hashes, last_used_us that
 * the gateway moves) are left out. *out is malloc'd. 0 or -1. */
int tg_audit_snapshot(tg_store_t *s, const char *const *tables, const char *const *skip, char **out,
                      tg_err_t *err);
/* What changed between two snapshots: *before the rows only in before, *after the rows
 * only in after, each {table: [row, ...]} with the tables that changed (malloc'd; NULL
 * for a side without rows: nothing removed, or nothing added). 0 or -1. */
int tg_audit_diff(const char *before, const char *after, char **bdiff, char **adiff, tg_err_t *err);

/* The result of a verification. */
typedef struct tg_audit_report {
    tg_audit_verifier_t v; /* n, first/last, anchor, fault, why */
    tg_audit_head_t head;
} tg_audit_report_t;

/* Checks the records of days [from_day, to_day] (NULL = no bound) in id order; with no
 * to_day the last record is checked against the chain head too, and with no from_day the
 * first record must be the first of its day (retention deletes whole days). s reads the
 * records; finder (a second connection to the same store: a PostgreSQL handle streams one
 * query at a time) looks a record up by hash where one is out of place. 0 (the report says
 * whether a fault was found) or -1 when the store failed. */
int tg_audit_verify(tg_store_t *s, tg_store_t *finder, const char *from_day, const char *to_day,
                    tg_audit_report_t *rep, tg_err_t *err);

#endif
