/* The store: tenants, API keys, usage events and daily aggregates.
 *
 * One interface, backends behind function tables, one per concern (backend.h):
 * sqlite*.c today, postgres later. Callers never know which one they talk to.
 * A tg_store_t is one connection and is not thread-safe: each thread opens its
 * own (the writer thread, the auth refresher, a CLI command).
 *
 * The tables are described once, in src/store/migrations.c (numbered
 * migrations, applied by tg_store_open).
 *
 * Functions taking a callback call it once per row, in order; the row and its
 * strings are valid only during the call. A nonzero return from the callback
 * stops the iteration and is returned as is. */
#ifndef TG_STORE_STORE_H
#define TG_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "types/audit.h"
#include "types/event.h"
#include "types/notice.h"
#include "types/plan.h"
#include "types/rows.h"
#include "util/err.h"

/* Result codes beyond 0 / -1. */
#define TG_STORE_NOTFOUND (-2)
#define TG_STORE_EXISTS   (-3)
#define TG_STORE_BUSY     (-4) /* locked or not writable right now: try again later */
#define TG_STORE_REFUSED  (-5) /* tg_store_query: not one read-only statement; nothing ran */

typedef struct tg_store tg_store_t;

/* Opens "sqlite:PATH" (creating it and applying migrations). */
int tg_store_open(const char *url, tg_store_t **out, tg_err_t *err);
/* Opens an existing store for reading only (`tollgate query`): no migrations, nothing
 * created; SQLite opens the file SQLITE_OPEN_READONLY with PRAGMA query_only and an
 * authorizer that refuses ATTACH, DETACH, REINDEX, ANALYZE, load_extension() and every
 * PRAGMA but the schema-reading ones (table_info, index_list, ...); a PostgreSQL backend
 * would use a READ ONLY transaction. Every write operation of the handle fails. */
int tg_store_open_readonly(const char *url, tg_store_t **out, tg_err_t *err);

/* The operations, by concern. Each is a thin function in store.c calling the backend's
 * table for that concern (src/store/backend.h). */

/* ---- lifecycle -------------------------------------------------------------------- */

/* NULL is accepted and does nothing. */
void tg_store_close(tg_store_t *s);
/* 0 when a write transaction can be taken now. */
int tg_store_writable(tg_store_t *s, tg_err_t *err);
/* How long a call waits for another connection's lock before giving up with
 * TG_STORE_BUSY. tg_store_open sets TG_STORE_BUSY_TIMEOUT_MS, right for the CLI and
 * readers; the recorder's writer sets a short one (it spools instead of stalling the
 * queue). 0 without effect in a backend without the notion. */
int tg_store_set_busy_timeout(tg_store_t *s, long ms, tg_err_t *err);

#define TG_STORE_BUSY_TIMEOUT_MS 5000 /* the default set by tg_store_open */

/* The store's own upkeep moved off this handle's calls, onto a thread of the store's: for
 * the handle that writes the most (the recorder's writer), so its commits do not wait for
 * it. SQLite: the WAL checkpoints (copying the WAL into the database file and syncing
 * both, tens of milliseconds every 16 MB of WAL at full load) run on a second connection;
 * the handle checkpoints itself only if the WAL grows past 128 MB or that thread is gone
 * (store/sqlite_ckpt.c). Until the handle is closed. PostgreSQL: nothing (its server
 * checkpoints). 0, or -1 with err (the handle then checkpoints as before). */
int tg_store_checkpoint_in_background(tg_store_t *s, tg_err_t *err);

/* A function a long write calls on the calling thread between two of its statements, so
 * that thread can give up its core there: the recorder's writer yields to the workers
 * (meter/recorder.c). SQLite's append calls it after every 32 events inserted and every
 * 32 call records; PostgreSQL's does not (its work is in the server). NULL: none. */
void tg_store_set_pace(tg_store_t *s, void (*fn)(void *arg), void *arg);

/* ---- events and aggregates -------------------------------------------------------- */

/* Inserts events and updates usage_daily in one transaction (PostgreSQL: a batch of 1024
 * events or more in two, one per half, appended at once on two connections). An event whose
 * id is already stored is skipped (so a replay counts nothing twice); *inserted says how
 * many were new, also on a failure (a half that committed). TG_STORE_BUSY when the store
 * cannot be written now (nothing was written, but for such a half: append the batch
 * again). */
int tg_store_append(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted,
                    tg_err_t *err);
/* One record of an access log brought in by `tollgate ingest` (src/ingest/). */
typedef struct tg_ingest_item {
    tg_event_t ev;                /* its event; ev.source names the log's kind */
    unsigned char digest[32];     /* its identity, with ev.ts_us: SHA-256 of (source, NUL,
                                     record id) */
    unsigned char key_sha256[32]; /* an API key that matched no api_keys row: its SHA-256 */
    char key_prefix[9];           /* and its first 8 characters; "" = no such key */
} tg_ingest_item_t;

/* Stores, in one transaction, the events of the items whose digest was never stored
 * before (with the digest, so a second ingestion of the same record adds nothing), their
 * usage_daily totals, and the unknown keys they carried (ingest_unknown_keys).
 * *inserted + *duplicates = n. Nothing is written on an error. */
int tg_store_ingest(tg_store_t *s, const tg_ingest_item_t *items, size_t n, size_t *inserted,
                    size_t *duplicates, tg_err_t *err);
/* Deletes events with ts before events_before_us (0 = none), alarm_events rows with time_us
 * before it too (the alarm history follows the events' retention), and aggregates for days
 * before agg_before_day "YYYY-MM-DD" (NULL = none). *deleted (may be NULL) is the number
 * of rows deleted, both kinds. Events go in short transactions of a few thousand rows, so
 * a large purge does not hold the write lock against the writer for long. */
int tg_store_purge(tg_store_t *s, int64_t events_before_us, const char *agg_before_day,
                   int64_t *deleted, tg_err_t *err);
int tg_store_usage(tg_store_t *s, const tg_usage_query_t *q,
                   int (*cb)(const tg_usage_row_t *, void *), void *ud, tg_err_t *err);
/* The sum of usage_daily.cost_micros of tenant for days in [from_day, to_day]
 * ("YYYY-MM-DD", inclusive): what a budget has spent. */
int tg_store_spend(tg_store_t *s, const char *tenant, const char *from_day, const char *to_day,
                   int64_t *micros, tg_err_t *err);

/* ---- tenants and keys ------------------------------------------------------------- */

int tg_store_tenant_add(tg_store_t *s, const char *id, const char *name, tg_err_t *err);
int tg_store_tenant_get(tg_store_t *s, const char *id, tg_tenant_t *out, tg_err_t *err);
int tg_store_tenant_list(tg_store_t *s, int (*cb)(const tg_tenant_t *, void *), void *ud,
                         tg_err_t *err);
int tg_store_tenant_set_status(tg_store_t *s, const char *id, const char *status, tg_err_t *err);
int tg_store_key_add(tg_store_t *s, const tg_key_t *k, tg_err_t *err);
int tg_store_key_list(tg_store_t *s, const char *tenant, int (*cb)(const tg_key_t *, void *),
                      void *ud, tg_err_t *err);
int tg_store_key_revoke(tg_store_t *s, const char *key_id, tg_err_t *err);
/* One key by id (TG_STORE_NOTFOUND when none); signing_sealed is not read. */
int tg_store_key_get(tg_store_t *s, const char *key_id, tg_key_t *out, tg_err_t *err);
/* Sets an active key's expiry to at_us, unless it already expires sooner (`key rotate`'s
 * grace): TG_STORE_NOTFOUND when no active key has that id. */
int tg_store_key_expire(tg_store_t *s, const char *key_id, int64_t at_us, tg_err_t *err);
/* Replaces key_id's sealed signing secret from[0..n) by to[0..n) (`kek rotate`: the same
 * secret re-wrapped), only while it is still from: TG_STORE_NOTFOUND otherwise (changed or
 * rotated meanwhile). One transaction, auth_version bumped. */
int tg_store_key_reseal(tg_store_t *s, const char *key_id, const unsigned char *from,
                        const unsigned char *to, size_t n, tg_err_t *err);
int tg_store_auth_load(tg_store_t *s, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                       tg_err_t *err);
/* A number that changes whenever any connection (any process) committed a change to
 * tenants or keys; cheap enough to poll several times a second. */
int tg_store_auth_version(tg_store_t *s, int64_t *out, tg_err_t *err);

/* ---- policy rows: limits, pauses, IP rules, tool rules ---------------------------- */

/* Every change bumps meta.policy_version in the same transaction, which a running
 * gateway polls (like auth_version); so do the changes to prices and budgets.
 * limit_set replaces the row of (tenant, scope, value). *_rm and pause_clear return
 * TG_STORE_NOTFOUND when there was nothing to remove. */
int tg_store_policy_version(tg_store_t *s, int64_t *out, tg_err_t *err);
int tg_store_limit_set(tg_store_t *s, const tg_limit_row_t *row, tg_err_t *err);
int tg_store_limit_rm(tg_store_t *s, const char *tenant, const char *scope, const char *value,
                      tg_err_t *err);
int tg_store_limit_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_limit_row_t *, void *), void *ud, tg_err_t *err);
/* now_us: when the pause begins (kept when an existing pause gets a new reason). */
int tg_store_pause_set(tg_store_t *s, const char *tenant, const char *reason, int64_t now_us,
                       tg_err_t *err);
int tg_store_pause_clear(tg_store_t *s, const char *tenant, tg_err_t *err);
int tg_store_pause_list(tg_store_t *s, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                        tg_err_t *err);
int tg_store_ip_rule_add(tg_store_t *s, const tg_ip_rule_row_t *row, tg_err_t *err);
int tg_store_ip_rule_rm(tg_store_t *s, const char *tenant, const char *action, const char *cidr,
                        tg_err_t *err);
int tg_store_ip_rule_list(tg_store_t *s, const char *tenant,
                          int (*cb)(const tg_ip_rule_row_t *, void *), void *ud, tg_err_t *err);
int tg_store_tool_rule_add(tg_store_t *s, const tg_tool_rule_row_t *row, tg_err_t *err);
int tg_store_tool_rule_rm(tg_store_t *s, const char *tenant, const char *action,
                          const char *pattern, tg_err_t *err);
int tg_store_tool_rule_list(tg_store_t *s, const char *tenant,
                            int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err);

/* ---- prices and budgets ----------------------------------------------------------- */

/* price_rm removes every row of (meter, name) when effective_us is -1, else that one row. */
int tg_store_price_set(tg_store_t *s, const tg_price_row_t *row, tg_err_t *err);
int tg_store_price_rm(tg_store_t *s, const char *meter, const char *name, int64_t effective_us,
                      tg_err_t *err);
int tg_store_price_list(tg_store_t *s, int (*cb)(const tg_price_row_t *, void *), void *ud,
                        tg_err_t *err);
int tg_store_budget_set(tg_store_t *s, const tg_budget_row_t *row, tg_err_t *err);
int tg_store_budget_rm(tg_store_t *s, const char *tenant, tg_err_t *err);
int tg_store_budget_list(tg_store_t *s, const char *tenant,
                         int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err);

/* ---- alerts ----------------------------------------------------------------------- */

/* Inserts unless (kind, tenant, threshold, period) exists; *inserted says which. Alerts
 * are a record, not policy: they bump no version. */
int tg_store_alert_add(tg_store_t *s, const tg_alert_row_t *row, int *inserted, tg_err_t *err);
int tg_store_alert_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err);

/* ---- alarms ----------------------------------------------------------------------- */

/* Writes state rows (each replacing the row of its (name, tenant)) and transitions, all in
 * one transaction: what the alarm runner stored of one evaluation. A transition whose
 * notice_id is already stored is left as it was (a retry after a failure stores nothing
 * twice). TG_STORE_BUSY when the store cannot be written now (nothing was written). Not
 * policy: no version bump. */
int tg_store_alarm_put(tg_store_t *s, const tg_alarm_row_t *rows, size_t nrows,
                       const tg_alarm_event_row_t *evs, size_t nevs, tg_err_t *err);
/* Every state row: firing first, then pending, resolved, ok; by name and tenant. */
int tg_store_alarm_list(tg_store_t *s, int (*cb)(const tg_alarm_row_t *, void *), void *ud,
                        tg_err_t *err);
/* Transitions, newest first, of tenant (NULL = every tenant; "" = the process-wide ones),
 * at most limit (<= 0: all). */
int tg_store_alarm_events(tg_store_t *s, const char *tenant, int64_t limit,
                          int (*cb)(const tg_alarm_event_row_t *, void *), void *ud, tg_err_t *err);

/* ---- the notification outbox ------------------------------------------------------ */

/* Adds notice n with one pending delivery (next_us = now_us) per name of notifiers, in one
 * transaction. A notice whose id is already stored adds nothing (*inserted = 0, may be
 * NULL): producers build the id from what the notice is about, so adding it again after a
 * crash, or from a second process, sends nothing twice. nnotifiers 0 stores nothing. */
int tg_store_outbox_add(tg_store_t *s, const tg_notice_t *n, const char *const *notifiers,
                        size_t nnotifiers, int64_t now_us, int *inserted, tg_err_t *err);
/* Claims up to max pending deliveries due at now_us (next_us <= now_us) to notifier (NULL =
 * to any), earliest first: in one transaction their next_us becomes lease_until_us, so
 * another sender on the same store does not take them meanwhile (and a sender that died
 * holding them only delays them to the lease's end). Then calls cb once per claimed
 * delivery, after the commit. */
/* The same for a sealed notice (notify/seal.h, migration 17): the row's id is id->id (a
 * keyed hash of the notice's id), its content the text sealed, and the plain columns hold
 * '' and 0. A row of that id already stored adds nothing, as above. */
int tg_store_outbox_add_sealed(tg_store_t *s, const tg_notice_t *id, const char *sealed,
                               const char *const *notifiers, size_t nnotifiers, int64_t now_us,
                               int *inserted, tg_err_t *err);
int tg_store_outbox_claim(tg_store_t *s, int64_t now_us, int64_t lease_until_us, size_t max,
                          const char *notifier, int (*cb)(const tg_notice_delivery_t *, void *),
                          void *ud, tg_err_t *err);
/* Sets one delivery's status ("pending", "delivered", "failed"), attempts, next_us and
 * error (NULL or "" = none). TG_STORE_NOTFOUND when there is no such delivery. */
int tg_store_outbox_set(tg_store_t *s, const char *notice_id, const char *notifier,
                        const char *status, int attempts, int64_t next_us, const char *error,
                        int64_t now_us, tg_err_t *err);
/* Moves every pending delivery of notifier due before until_us to until_us: a receiver
 * that is down is tried again once its backoff ends, not once per waiting notice. */
int tg_store_outbox_defer(tg_store_t *s, const char *notifier, int64_t until_us, int64_t now_us,
                          tg_err_t *err);
/* The earliest next_us of the pending deliveries to notifier (NULL = to any); *found = 0
 * when there are none. */
int tg_store_outbox_next(tg_store_t *s, const char *notifier, int64_t *next_us, int *found,
                         tg_err_t *err);
/* The names of the notifiers with pending deliveries, each once, in name order. */
int tg_store_outbox_notifiers(tg_store_t *s, int (*cb)(const char *notifier, void *), void *ud,
                              tg_err_t *err);
/* Every delivery with status (NULL = any), oldest notice first. */
int tg_store_outbox_list(tg_store_t *s, const char *status,
                         int (*cb)(const tg_notice_delivery_t *, void *), void *ud, tg_err_t *err);
/* Deletes notices created before before_us none of whose deliveries is pending (their
 * deliveries go with them). Pending ones are kept, whatever their age. */
int tg_store_outbox_purge(tg_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err);
/* Calls cb(id, sealed) for every sealed notice (`kek rotate`), in id order; a nonzero
 * return stops. */
int tg_store_outbox_sealed_each(tg_store_t *s,
                                int (*cb)(const char *id, const char *sealed, void *), void *ud,
                                tg_err_t *err);
/* Replaces notice id's sealed text from by to, only while it is still from (`kek rotate`):
 * TG_STORE_NOTFOUND when it changed or is gone. */
int tg_store_outbox_reseal(tg_store_t *s, const char *id, const char *from, const char *to,
                           tg_err_t *err);

/* ---- plans, invoices and the usage they price (issue 12) ------------------------- */

/* Writes plan version p (name, effective_us) whole, replacing a version of the same name
 * and effective_us with its meters and tiers, in one transaction. The caller checked it
 * (tg_invoice_plan_check). Plans are not policy: no version bump. */
int tg_store_plan_set(tg_store_t *s, const tg_plan_t *p, tg_err_t *err);
/* Removes every version of name when effective_us is -1, else that one version. */
int tg_store_plan_rm(tg_store_t *s, const char *name, int64_t effective_us, tg_err_t *err);
/* Every version of plan name (NULL = every plan), by name, oldest first. */
int tg_store_plan_list(tg_store_t *s, const char *name, int (*cb)(const tg_plan_t *, void *),
                       void *ud, tg_err_t *err);
/* The version of name in force at at_us (the latest effective_us <= at_us) into *out;
 * TG_STORE_NOTFOUND when none. */
int tg_store_plan_get(tg_store_t *s, const char *name, int64_t at_us, tg_plan_t *out,
                      tg_err_t *err);
/* Replaces the row of (tenant, from_month). */
int tg_store_tenant_plan_set(tg_store_t *s, const tg_tenant_plan_row_t *row, tg_err_t *err);
int tg_store_tenant_plan_rm(tg_store_t *s, const char *tenant, const char *from_month,
                            tg_err_t *err);
/* Rows of tenant (NULL = every tenant), by tenant and from_month. */
int tg_store_tenant_plan_list(tg_store_t *s, const char *tenant,
                              int (*cb)(const tg_tenant_plan_row_t *, void *), void *ud,
                              tg_err_t *err);
/* tenant's events with ts_us in [from_us, to_us) summed per (model, tool): what the meters
 * are measured from (tg_plan_usage_row_t says which outcomes each sum counts). */
int tg_store_plan_usage(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                        int (*cb)(const tg_plan_usage_row_t *, void *), void *ud, tg_err_t *err);
/* Closes month inv->month of inv->tenant in one transaction: the invoice row, its lines,
 * its meters as billed (meters, nmeters; their month is inv->month), and the billed values
 * of earlier closed months that its adjustment lines brought up to date (rebilled,
 * nrebilled: each sets measured and amount of its (month, meter, match) row, the frozen
 * values staying as they were). TG_STORE_EXISTS when the month
 * is already closed (nothing is written). */
int tg_store_invoice_close(tg_store_t *s, const tg_invoice_row_t *inv,
                           const tg_invoice_line_t *lines, size_t nlines,
                           const tg_invoice_billed_t *meters, size_t nmeters,
                           const tg_invoice_billed_t *rebilled, size_t nrebilled, tg_err_t *err);
/* A closed month: its row into *out (may be NULL) and each of its lines, in order.
 * TG_STORE_NOTFOUND when the month is not closed. */
int tg_store_invoice_get(tg_store_t *s, const char *tenant, const char *month,
                         tg_invoice_row_t *out, int (*cb)(const tg_invoice_line_t *, void *),
                         void *ud, tg_err_t *err);
/* tenant's closed months (NULL = every tenant), by tenant and month. */
int tg_store_invoice_list(tg_store_t *s, const char *tenant,
                          int (*cb)(const tg_invoice_row_t *, void *), void *ud, tg_err_t *err);
/* Each meter of tenant's closed month: as frozen at close and as billed so far. */
int tg_store_invoice_billed(tg_store_t *s, const char *tenant, const char *month,
                            int (*cb)(const tg_invoice_billed_t *, void *), void *ud,
                            tg_err_t *err);
/* Events with ts_us in [from_us, to_us) of tenant, by ts_us then id; or of every tenant
 * (tenant NULL), by id (time order for the gateway's own events, whose ids are
 * time-ordered). Each read whole into an event (the export), streamed: nothing sorted. */
int tg_store_event_range(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                         int (*cb)(const tg_event_t *, void *), void *ud, tg_err_t *err);

/* ---- dashboard (read only) -------------------------------------------------------- */

/* Makes this connection refuse every write (PRAGMA query_only): the dashboard's own. */
int tg_store_dash_read_only(tg_store_t *s, tg_err_t *err);
/* Per tenant (tenant NULL = every tenant, '' the unauthenticated included), the events with
 * ts_us in [from_us, to_us): counts summed by requests, tokens, cost, and the nearest-rank
 * p95 of latency_us over the rows (rank ceil(0.95 n), found with ORDER BY ... OFFSET, one
 * query per tenant). Tenants ordered by id; none without events. */
int tg_store_dash_totals(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                         int (*cb)(const tg_dash_totals_t *, void *), void *ud, tg_err_t *err);
/* tenant's events with ts_us in [from_us, to_us) grouped by (ts_us - from_us) / bucket_us,
 * ascending; buckets without events are not reported. bucket_us > 0. */
int tg_store_dash_series(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                         int64_t bucket_us, int (*cb)(const tg_dash_bucket_t *, void *), void *ud,
                         tg_err_t *err);
/* tenant's last `limit` events with outcome 'rejected', newest first. */
int tg_store_dash_rejections(tg_store_t *s, const char *tenant, int limit,
                             int (*cb)(const tg_dash_rejection_t *, void *), void *ud,
                             tg_err_t *err);

/* ---- admin API tokens (issue 14) -------------------------------------------------- */

/* One row of admin_tokens (migration 15). Times in micro-seconds; 0 = none (never
 * expires, not revoked, never used). tenant "" = every tenant. */
typedef struct tg_admin_token_row {
    char id[32]; /* "adm_" + 16 hex */
    unsigned char sha256[32];
    char name[128];
    char role[8]; /* "admin" | "read" */
    char tenant[TG_TENANT_SIZE];
    int64_t created_us, expires_us, revoked_us, last_used_us;
} tg_admin_token_row_t;

/* add and revoke bump meta.auth_version (a gateway's snapshot of the tokens reloads);
 * touch does not (it is what a gateway writes as tokens are used). add: TG_STORE_EXISTS
 * for an id or secret already there, TG_STORE_NOTFOUND for a tenant that does not exist.
 * revoke: TG_STORE_NOTFOUND for no such token; an already revoked one keeps its first
 * revocation time. touch moves last_used_us forward only. list: every row, by id (the
 * hash included: the snapshot is loaded from it; a caller never shows it). */
int tg_store_admin_token_add(tg_store_t *s, const tg_admin_token_row_t *row, tg_err_t *err);
int tg_store_admin_token_list(tg_store_t *s, int (*cb)(const tg_admin_token_row_t *, void *),
                              void *ud, tg_err_t *err);
int tg_store_admin_token_revoke(tg_store_t *s, const char *id, int64_t now_us, tg_err_t *err);
int tg_store_admin_token_touch(tg_store_t *s, const char *id, int64_t used_us, tg_err_t *err);

/* ---- read-only SQL, backup and archive ------------------------------------------- */

/* One value of a query's row. text/blob point into the backend's row, valid during the
 * callback; text is NUL-terminated (len excludes the NUL). */
typedef enum { TG_SQL_NULL, TG_SQL_INT, TG_SQL_REAL, TG_SQL_TEXT, TG_SQL_BLOB } tg_sql_type_t;
typedef struct tg_sql_value {
    tg_sql_type_t type;
    int64_t i;     /* TG_SQL_INT */
    double r;      /* TG_SQL_REAL */
    const char *s; /* TG_SQL_TEXT, TG_SQL_BLOB */
    size_t len;    /* bytes of s */
} tg_sql_value_t;

/* Where a query's result goes: columns once (before any row, also when there is none),
 * then each row. A nonzero return stops the query and is returned as is. */
typedef struct tg_sql_sink {
    int (*columns)(const char *const *names, size_t n, void *ud);
    int (*row)(const tg_sql_value_t *vals, size_t n, void *ud);
    void *ud;
} tg_sql_sink_t;

/* Runs one read-only SQL statement, rows streamed to sink as they are stepped (nothing is
 * buffered). params[0..nparams) are bound as text to $1..$N (and, SQLite, ?1..?N; NULL
 * binds NULL). PostgreSQL: one READ ONLY transaction, rolled back; 60 s statement_timeout
 * on a read-only handle (pg_sql.c). Refused
 * (TG_STORE_REFUSED, nothing run, err says why) when sql is not exactly one statement
 * (trailing ';', spaces and comments are fine), does not compile, or could write
 * (sqlite3_stmt_readonly(), and the read-only handle's authorizer). On any handle, so
 * the archive reads events through it too. */
int tg_store_query(tg_store_t *s, const char *sql, const char *const *params, size_t nparams,
                   const tg_sql_sink_t *sink, tg_err_t *err);

/* How long one tg_store_query may run on a read-only handle (tg_store_open_readonly) before
 * it is cancelled with an error, on both backends: TG_STORE_QUERY_TIMEOUT_MS unless
 * changed here (`tollgate query --timeout`). A query that never ends (a recursive CTE
 * without a bound) would otherwise hold its snapshot forever: on SQLite the WAL cannot be
 * checkpointed past it and grows with every batch the gateway writes. Other handles have
 * no bound (the archive's reads are the store's own). ms > 0. */
#define TG_STORE_QUERY_TIMEOUT_MS 60000
void tg_store_set_query_timeout(tg_store_t *s, long long ms);

/* TG_STORE_OWN_DB when file is the store's database at url, TG_STORE_OWN_SIDE when it is
 * one of the files beside it that the database lives in too (SQLite's -wal, -shm,
 * -journal), the same file however it is named (a hard link, a symlink); else 0. What
 * replaces one of them pulls the store from under every process that has it open. */
#define TG_STORE_OWN_DB   1
#define TG_STORE_OWN_SIDE 2
int tg_store_owns_file(const char *url, const char *file);

/* An online, consistent copy of the store into the new file dest_path (which must not
 * exist): one read snapshot held from the first page to the last, copied `pages` pages
 * per step with a pause between steps, so the gateway's writer is never blocked (WAL:
 * readers do not block the writer) and the copy's I/O is spread out. *npages (may be
 * NULL) is the number of pages copied. The copy is then checked with PRAGMA
 * integrity_check; on any failure dest_path is removed. */
int tg_store_backup(tg_store_t *s, const char *dest_path, int pages, int64_t *npages,
                    tg_err_t *err);

/* Deletes the usage_events rows of ids[0..n) that are also older than before_us (a row
 * with a newer ts is left: it was not what the caller exported), in transactions of a
 * few thousand rows so the writer is never held long. usage_daily is not touched.
 * *deleted: rows deleted. On a failure the transactions already committed stay. */
int tg_store_events_delete(tg_store_t *s, const int64_t *ids, size_t n, int64_t before_us,
                           int64_t *deleted, tg_err_t *err);

/* ---- copying a store (`tollgate store copy`) -------------------------------------- */

/* "sqlite" or "postgres": which SQL a query given to tg_store_query is read as. Both bind
 * $1, $2, ... to params[0], params[1], ... (SQLite: sqlite_sql.c binds $N by its number). */
const char *tg_store_dialect(tg_store_t *s);

/* A table of the store and the columns a copy reads it in order of. */
typedef struct tg_store_table {
    const char *name;
    const char *order_by;
} tg_store_table_t;

/* Every table that holds data, parents before the tables whose foreign keys name them,
 * ended by a zero entry; not schema_migrations and meta, which each store keeps for
 * itself. A table a migration adds must be added here (the copy refuses a source with a
 * table it does not know). */
extern const tg_store_table_t tg_store_tables[];

/* Inserts nrows rows into table (one of tg_store_tables), each ncols values in the order
 * of cols (vals row after row), as tg_store_query read them from a store of either
 * backend: every column of the row, ids and times included. One transaction: all or
 * nothing, with meta's auth_version and policy_version bumped (a gateway on the store
 * reloads). TG_STORE_EXISTS when a row is there already. PostgreSQL: the monthly
 * partitions of the events' ids are created first, and an identity column's sequence is
 * moved past the ids written. */
int tg_store_rows_put(tg_store_t *s, const char *table, const char *const *cols, size_t ncols,
                      const tg_sql_value_t *vals, size_t nrows, tg_err_t *err);

/* Replaces the store at url with the database file src_path, which must be a tollgate
 * store: it passes PRAGMA integrity_check and its schema_migrations version is one this
 * build knows (1 up to the latest). The store's current content, when it has any, is
 * first copied to a new file, the store's path + ".bak" (refused when that exists), whose
 * name goes into bak (bak_cap bytes; "" when nothing was kept). The copy into the store is
 * one transaction: a failure leaves the store as it was. For a stopped gateway only: the
 * caller checks that none runs (a running gateway's connection would keep its cached
 * pages). The next open applies the migrations src_path lacks. */
int tg_store_restore(const char *url, const char *src_path, char *bak, size_t bak_cap,
                     tg_err_t *err);

/* 0 when tg_store_restore can restore the store at url (SQLite); else -1 with the reason
 * (a PostgreSQL store is restored with pg_restore), so a caller refuses before it waits on
 * anything. */
int tg_store_restorable(const char *url, tg_err_t *err);

/* ---- the audit trail (issue 14, docs/audit.md) ------------------------------------ */

/* Links recs[0..n) after the chain's head (tg_audit_link: their id, day, seq and hashes
 * are set) and inserts them with the head moved, in one transaction that holds the
 * chain's lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the head row FOR UPDATE), so
 * appenders in several processes never fork the chain. */
int tg_store_audit_append(tg_store_t *s, tg_audit_rec_t *recs, size_t n, tg_err_t *err);
/* The chain's head row. */
int tg_store_audit_head(tg_store_t *s, tg_audit_head_t *out, tg_err_t *err);
/* The records of the days in [from_day, to_day] ("YYYY-MM-DD", NULL = no bound) in id
 * order; the record's strings are valid during the callback. */
int tg_store_audit_range(tg_store_t *s, const char *from_day, const char *to_day,
                         int (*cb)(const tg_audit_rec_t *, void *), void *ud, tg_err_t *err);
/* *id of the record whose hash is hash, 0 when none (a scan: the verifier asks once). */
int tg_store_audit_find(tg_store_t *s, const char *hash, int64_t *id, tg_err_t *err);
/* tenant erase: in one transaction, the tenant's personal data goes: in its audit records
 * the erasable values become their erased form (the chain still verifies); in its events
 * client_ip becomes NULL and the query string leaves path; its keys' names become ''.
 * *changed: rows changed. */
int tg_store_audit_erase(tg_store_t *s, const char *tenant, int64_t *changed, tg_err_t *err);
/* Deletes the records of days before before_day (whole days: the first kept record's
 * prev_hash anchors the chain from there). */
int tg_store_audit_purge(tg_store_t *s, const char *before_day, int64_t *deleted, tg_err_t *err);

/* audit.bodies: encrypt (docs/audit.md, "Bodies"): the sealed bodies of call records
 * (audit_bodies), written by tg_store_append with each call record whose event carries them
 * sealed (tg_audit_body_of), deleted by tg_store_audit_erase (the tenant's) and
 * tg_store_audit_purge (with their records). */
typedef struct tg_audit_body {
    int64_t record_id;
    int64_t event_id; /* the record's: with tenant, the blob's AAD (tg_bodies_aad) */
    char tenant[64];
    unsigned char *sealed; /* malloc'd: the caller frees it */
    size_t len;
} tg_audit_body_t;
/* TG_STORE_NOTFOUND when the record has none (or no longer exists). */
int tg_store_audit_body_get(tg_store_t *s, int64_t record_id, tg_audit_body_t *out, tg_err_t *err);
/* Every sealed blob, by record id (for kek rotate). */
int tg_store_audit_bodies_each(tg_store_t *s,
                               int (*cb)(int64_t record_id, const unsigned char *sealed, size_t n,
                                         void *ud),
                               void *ud, tg_err_t *err);
/* Replaces a blob by its re-wrapped form (same length) only while it is still from;
 * TG_STORE_NOTFOUND otherwise. */
int tg_store_audit_body_reseal(tg_store_t *s, int64_t record_id, const unsigned char *from,
                               const unsigned char *to, size_t n, tg_err_t *err);

#endif
