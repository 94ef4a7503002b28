/* What a store backend implements (store.h is what callers use).
 *
 * Small tables of functions, one per concern, each reached from the store handle:
 * a backend fills one of each (sqlite.c and its sqlite_*.c today; a PostgreSQL backend
 * would be postgres.c with its own) and tg_store_open (store.c) picks it by the URL
 * scheme. The tg_store_* functions of store.h only forward to these tables, so callers
 * never include this header.
 *
 * Each function takes the handle first; the meaning of every operation, its results
 * (0, -1, TG_STORE_NOTFOUND, TG_STORE_EXISTS, TG_STORE_BUSY) and its transactions are
 * documented once, at its tg_store_* declaration in store.h. Every pointer is required
 * except life->set_busy_timeout.
 *
 * Adding an operation to an existing concern: its declaration in store.h, a pointer
 * here, a forwarding function in store.c, the implementation in each backend. A new
 * concern is a new table here and a new member of struct tg_store. */
#ifndef TG_STORE_BACKEND_H
#define TG_STORE_BACKEND_H

#include "store/store.h"

/* Open is the backend's constructor (below); migrations run inside it. */
struct tg_store_life_ops {
    const char *dialect; /* "sqlite" or "postgres": tg_store_dialect() */
    void (*close)(tg_store_t *s);
    int (*writable)(tg_store_t *s, tg_err_t *err);
    int (*set_busy_timeout)(tg_store_t *s, long ms, tg_err_t *err); /* may be NULL */
    int (*checkpoint_in_background)(tg_store_t *s, tg_err_t *err);  /* may be NULL */
};

/* usage_events and usage_daily: the writer's append, retention, reports, and the spend
 * a budget reads from the daily aggregates. */
struct tg_store_event_ops {
    int (*append)(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted, tg_err_t *err);
    int (*ingest)(tg_store_t *s, const tg_ingest_item_t *items, size_t n, size_t *inserted,
                  size_t *duplicates, tg_err_t *err);
    int (*purge)(tg_store_t *s, int64_t events_before_us, const char *agg_before_day,
                 int64_t *deleted, tg_err_t *err);
    int (*usage)(tg_store_t *s, const tg_usage_query_t *q,
                 int (*cb)(const tg_usage_row_t *, void *), void *ud, tg_err_t *err);
    int (*spend)(tg_store_t *s, const char *tenant, const char *from_day, const char *to_day,
                 int64_t *micros, tg_err_t *err);
};

/* tenants and api_keys, and meta.auth_version which every change to them bumps. */
struct tg_store_tenant_ops {
    int (*tenant_add)(tg_store_t *s, const char *id, const char *name, tg_err_t *err);
    int (*tenant_get)(tg_store_t *s, const char *id, tg_tenant_t *out, tg_err_t *err);
    int (*tenant_list)(tg_store_t *s, int (*cb)(const tg_tenant_t *, void *), void *ud,
                       tg_err_t *err);
    int (*tenant_set_status)(tg_store_t *s, const char *id, const char *status, tg_err_t *err);
    int (*key_add)(tg_store_t *s, const tg_key_t *k, tg_err_t *err);
    int (*key_list)(tg_store_t *s, const char *tenant, int (*cb)(const tg_key_t *, void *),
                    void *ud, tg_err_t *err);
    int (*key_revoke)(tg_store_t *s, const char *key_id, tg_err_t *err);
    int (*key_get)(tg_store_t *s, const char *key_id, tg_key_t *out, tg_err_t *err);
    int (*key_expire)(tg_store_t *s, const char *key_id, int64_t at_us, tg_err_t *err);
    int (*key_reseal)(tg_store_t *s, const char *key_id, const unsigned char *from,
                      const unsigned char *to, size_t n, tg_err_t *err);
    int (*auth_load)(tg_store_t *s, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                     tg_err_t *err);
    int (*auth_version)(tg_store_t *s, int64_t *out, tg_err_t *err);
};

/* limits, pauses, ip_rules, tool_rules, and meta.policy_version. */
struct tg_store_policy_ops {
    int (*policy_version)(tg_store_t *s, int64_t *out, tg_err_t *err);
    int (*limit_set)(tg_store_t *s, const tg_limit_row_t *row, tg_err_t *err);
    int (*limit_rm)(tg_store_t *s, const char *tenant, const char *scope, const char *value,
                    tg_err_t *err);
    int (*limit_list)(tg_store_t *s, const char *tenant, int (*cb)(const tg_limit_row_t *, void *),
                      void *ud, tg_err_t *err);
    int (*pause_set)(tg_store_t *s, const char *tenant, const char *reason, int64_t now_us,
                     tg_err_t *err);
    int (*pause_clear)(tg_store_t *s, const char *tenant, tg_err_t *err);
    int (*pause_list)(tg_store_t *s, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                      tg_err_t *err);
    int (*ip_rule_add)(tg_store_t *s, const tg_ip_rule_row_t *row, tg_err_t *err);
    int (*ip_rule_rm)(tg_store_t *s, const char *tenant, const char *action, const char *cidr,
                      tg_err_t *err);
    int (*ip_rule_list)(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_ip_rule_row_t *, void *), void *ud, tg_err_t *err);
    int (*tool_rule_add)(tg_store_t *s, const tg_tool_rule_row_t *row, tg_err_t *err);
    int (*tool_rule_rm)(tg_store_t *s, const char *tenant, const char *action, const char *pattern,
                        tg_err_t *err);
    int (*tool_rule_list)(tg_store_t *s, const char *tenant,
                          int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err);
};

/* prices and budgets (their changes bump meta.policy_version too). */
struct tg_store_price_ops {
    int (*price_set)(tg_store_t *s, const tg_price_row_t *row, tg_err_t *err);
    int (*price_rm)(tg_store_t *s, const char *meter, const char *name, int64_t effective_us,
                    tg_err_t *err);
    int (*price_list)(tg_store_t *s, int (*cb)(const tg_price_row_t *, void *), void *ud,
                      tg_err_t *err);
    int (*budget_set)(tg_store_t *s, const tg_budget_row_t *row, tg_err_t *err);
    int (*budget_rm)(tg_store_t *s, const char *tenant, tg_err_t *err);
    int (*budget_list)(tg_store_t *s, const char *tenant,
                       int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err);
};

/* alerts: a record of what fired, no version. */
struct tg_store_alert_ops {
    int (*alert_add)(tg_store_t *s, const tg_alert_row_t *row, int *inserted, tg_err_t *err);
    int (*alert_list)(tg_store_t *s, const char *tenant, int (*cb)(const tg_alert_row_t *, void *),
                      void *ud, tg_err_t *err);
};

/* alarms and alarm_events: the alarm engine's state and transitions, no version. */
struct tg_store_alarm_ops {
    int (*alarm_put)(tg_store_t *s, const tg_alarm_row_t *rows, size_t nrows,
                     const tg_alarm_event_row_t *evs, size_t nevs, tg_err_t *err);
    int (*alarm_list)(tg_store_t *s, int (*cb)(const tg_alarm_row_t *, void *), void *ud,
                      tg_err_t *err);
    int (*alarm_events)(tg_store_t *s, const char *tenant, int64_t limit,
                        int (*cb)(const tg_alarm_event_row_t *, void *), void *ud, tg_err_t *err);
};

/* outbox and outbox_deliveries: notifications until each notifier took them (notify/). */
struct tg_store_outbox_ops {
    /* sealed: NULL = a plain row; else n holds the row's id only (migration 17). */
    int (*add)(tg_store_t *s, const tg_notice_t *n, const char *sealed,
               const char *const *notifiers, size_t nnotifiers, int64_t now_us, int *inserted,
               tg_err_t *err);
    int (*claim)(tg_store_t *s, int64_t now_us, int64_t lease_until_us, size_t max,
                 const char *notifier, int (*cb)(const tg_notice_delivery_t *, void *), void *ud,
                 tg_err_t *err);
    int (*set)(tg_store_t *s, const char *notice_id, const char *notifier, const char *status,
               int attempts, int64_t next_us, const char *error, int64_t now_us, tg_err_t *err);
    int (*defer)(tg_store_t *s, const char *notifier, int64_t until_us, int64_t now_us,
                 tg_err_t *err);
    int (*next)(tg_store_t *s, const char *notifier, int64_t *next_us, int *found, tg_err_t *err);
    int (*notifiers)(tg_store_t *s, int (*cb)(const char *notifier, void *), void *ud,
                     tg_err_t *err);
    int (*list)(tg_store_t *s, const char *status, int (*cb)(const tg_notice_delivery_t *, void *),
                void *ud, tg_err_t *err);
    int (*purge)(tg_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err);
    int (*sealed_each)(tg_store_t *s, int (*cb)(const char *id, const char *sealed, void *),
                       void *ud, tg_err_t *err);
    int (*reseal)(tg_store_t *s, const char *id, const char *from, const char *to, tg_err_t *err);
};

/* The dashboard's reads over usage_events (issue 11): no writes, no version. */
struct tg_store_dash_ops {
    int (*read_only)(tg_store_t *s, tg_err_t *err);
    int (*totals)(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                  int (*cb)(const tg_dash_totals_t *, void *), void *ud, tg_err_t *err);
    int (*series)(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                  int64_t bucket_us, int (*cb)(const tg_dash_bucket_t *, void *), void *ud,
                  tg_err_t *err);
    int (*rejections)(tg_store_t *s, const char *tenant, int limit,
                      int (*cb)(const tg_dash_rejection_t *, void *), void *ud, tg_err_t *err);
};

/* plans, tenant_plans and invoices, the usage they price, and the event export (issue
 * 12): no version bump, the gateway never reads them. */
struct tg_store_invoice_ops {
    int (*plan_set)(tg_store_t *s, const tg_plan_t *p, tg_err_t *err);
    int (*plan_rm)(tg_store_t *s, const char *name, int64_t effective_us, tg_err_t *err);
    int (*plan_list)(tg_store_t *s, const char *name, int (*cb)(const tg_plan_t *, void *),
                     void *ud, tg_err_t *err);
    int (*plan_get)(tg_store_t *s, const char *name, int64_t at_us, tg_plan_t *out, tg_err_t *err);
    int (*tenant_plan_set)(tg_store_t *s, const tg_tenant_plan_row_t *row, tg_err_t *err);
    int (*tenant_plan_rm)(tg_store_t *s, const char *tenant, const char *from_month, tg_err_t *err);
    int (*tenant_plan_list)(tg_store_t *s, const char *tenant,
                            int (*cb)(const tg_tenant_plan_row_t *, void *), void *ud,
                            tg_err_t *err);
    int (*usage)(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                 int (*cb)(const tg_plan_usage_row_t *, void *), void *ud, tg_err_t *err);
    int (*close)(tg_store_t *s, const tg_invoice_row_t *inv, const tg_invoice_line_t *lines,
                 size_t nlines, const tg_invoice_billed_t *meters, size_t nmeters,
                 const tg_invoice_billed_t *rebilled, size_t nrebilled, tg_err_t *err);
    int (*get)(tg_store_t *s, const char *tenant, const char *month, tg_invoice_row_t *out,
               int (*cb)(const tg_invoice_line_t *, void *), void *ud, tg_err_t *err);
    int (*list)(tg_store_t *s, const char *tenant, int (*cb)(const tg_invoice_row_t *, void *),
                void *ud, tg_err_t *err);
    int (*billed)(tg_store_t *s, const char *tenant, const char *month,
                  int (*cb)(const tg_invoice_billed_t *, void *), void *ud, tg_err_t *err);
    int (*event_range)(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                       int (*cb)(const tg_event_t *, void *), void *ud, tg_err_t *err);
};

/* Read-only SQL (`tollgate query`, the reports), the online backup, and the archive's
 * purge of the events it exported (issue 12). query never writes on any backend. */
struct tg_store_sql_ops {
    int (*query)(tg_store_t *s, const char *sql, const char *const *params, size_t nparams,
                 const tg_sql_sink_t *sink, tg_err_t *err);
    int (*backup)(tg_store_t *s, const char *dest_path, int pages, int64_t *npages, tg_err_t *err);
    int (*events_delete)(tg_store_t *s, const int64_t *ids, size_t n, int64_t before_us,
                         int64_t *deleted, tg_err_t *err);
    /* table and cols are checked by store.c (tg_store_rows_put) before this is called. */
    int (*rows_put)(tg_store_t *s, const char *table, const char *const *cols, size_t ncols,
                    const tg_sql_value_t *vals, size_t nrows, tg_err_t *err);
};

/* audit and audit_head (issue 14): the hash-chained audit trail. */
struct tg_store_audit_ops {
    int (*append)(tg_store_t *s, tg_audit_rec_t *recs, size_t n, tg_err_t *err);
    int (*head)(tg_store_t *s, tg_audit_head_t *out, tg_err_t *err);
    int (*range)(tg_store_t *s, const char *from_day, const char *to_day,
                 int (*cb)(const tg_audit_rec_t *, void *), void *ud, tg_err_t *err);
    int (*find)(tg_store_t *s, const char *hash, int64_t *id, tg_err_t *err);
    int (*erase)(tg_store_t *s, const char *tenant, int64_t *changed, tg_err_t *err);
    int (*purge)(tg_store_t *s, const char *before_day, int64_t *deleted, tg_err_t *err);
    /* audit_bodies (audit.bodies: encrypt); written by the event append (its audit calls). */
    int (*body_get)(tg_store_t *s, int64_t record_id, tg_audit_body_t *out, tg_err_t *err);
    int (*bodies_each)(tg_store_t *s, int (*cb)(int64_t, const unsigned char *, size_t, void *),
                       void *ud, tg_err_t *err);
    int (*body_reseal)(tg_store_t *s, int64_t record_id, const unsigned char *from,
                       const unsigned char *to, size_t n, tg_err_t *err);
};

/* admin_tokens (issue 14): add and revoke bump meta.auth_version, touch does not. */
struct tg_store_admin_token_ops {
    int (*add)(tg_store_t *s, const tg_admin_token_row_t *row, tg_err_t *err);
    int (*list)(tg_store_t *s, int (*cb)(const tg_admin_token_row_t *, void *), void *ud,
                tg_err_t *err);
    int (*revoke)(tg_store_t *s, const char *id, int64_t now_us, tg_err_t *err);
    int (*touch)(tg_store_t *s, const char *id, int64_t used_us, tg_err_t *err);
};

/* The handle: a backend embeds it first in its own connection struct and points each
 * member at its (static, shared) table. */
struct tg_store {
    const struct tg_store_life_ops *life;
    const struct tg_store_event_ops *events;
    const struct tg_store_tenant_ops *tenants;
    const struct tg_store_policy_ops *policy;
    const struct tg_store_price_ops *prices;
    const struct tg_store_alert_ops *alerts;
    const struct tg_store_alarm_ops *alarms;
    const struct tg_store_outbox_ops *outbox;
    const struct tg_store_dash_ops *dash;
    const struct tg_store_invoice_ops *invoices;
    const struct tg_store_sql_ops *sql;
    const struct tg_store_audit_ops *audit;
    const struct tg_store_admin_token_ops *admin_tokens;
    /* tg_store_query's bound on a read-only handle, ms (0: none); store.c sets it. */
    long long query_timeout_ms;
    /* tg_store_set_pace's function and its argument; NULL: none. */
    void (*pace)(void *arg);
    void *pace_arg;
};

/* Where a long write can let its thread give up the core: between two statements (a
 * backend calls it where its own work on the calling thread is, see store.h). */
static inline void tg_store_pace(tg_store_t *s)
{
    if (s->pace) s->pace(s->pace_arg);
}

/* The error of a query cancelled by its handle's query_timeout_ms (store.c), the same
 * words on both backends; returns -1. */
int tg_store_query_timed_out(const tg_store_t *s, tg_err_t *err);

/* Backend constructors (store.c dispatches on the URL scheme). */
int tg_sqlite_open(const char *path, tg_store_t **out, tg_err_t *err);
int tg_sqlite_open_readonly(const char *path, tg_store_t **out, tg_err_t *err);
/* Not an operation of an open handle: the store is replaced under it (store.h). */
int tg_sqlite_restore(const char *path, const char *src_path, char *bak, size_t bak_cap,
                      tg_err_t *err);
int tg_sqlite_owns_file(const char *path, const char *file);
/* url is the whole "postgres://..." or "postgresql://..." (libpq reads it as is). */
int tg_postgres_open(const char *url, tg_store_t **out, tg_err_t *err);
int tg_postgres_open_readonly(const char *url, tg_store_t **out, tg_err_t *err);

#endif
