/* Store URL dispatch and the tg_store_* functions: see store.h. The scheme picks the
 * backend; everything after it is the backend's business. Each operation forwards to
 * the backend's table for its concern (backend.h). */
#include "store/store.h"

#include "store/backend.h"

#include <stdio.h>
#include <string.h>

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* The path of a "sqlite:" url, or NULL (err set when it is a sqlite url without one). */
static const char *sqlite_path(const char *url, tg_err_t *err)
{
    if (!has_prefix(url, "sqlite:")) return NULL;
    /* "sqlite:./x.db" and "sqlite:/abs/x.db"; "sqlite:///abs/x.db" too, for those used
     * to URL forms. */
    const char *path = url + strlen("sqlite:");
    if (has_prefix(path, "//")) path += 2;
    if (!*path) {
        tg_err_set(err, "store \"%s\": missing database path", url);
        return NULL;
    }
    return path;
}

static int is_postgres(const char *url)
{
    return url && (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://"));
}

/* What every constructor says about a url that is neither sqlite:PATH nor postgres://. */
static int unknown_store(const char *url, tg_err_t *err)
{
    if (!url || !*url)
        return tg_err_set(err, "no store configured (expected sqlite:PATH or postgres://...)");
    if (has_prefix(url, "sqlite:")) return -1; /* sqlite_path said what is missing */
    /* Only the scheme is echoed: the rest of a URL may hold a password. */
    size_t scheme = strcspn(url, ":");
    if (!url[scheme])
        return tg_err_set(err,
                          "store \"%s\": missing scheme (expected sqlite:PATH or "
                          "postgres://...)",
                          url);
    return tg_err_set(err,
                      "store \"%.*s:...\": unknown scheme (expected sqlite:PATH or "
                      "postgres://...)",
                      (int)(scheme < 32 ? scheme : 32), url);
}

int tg_store_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    if (is_postgres(url)) return tg_postgres_open(url, out, err);
    const char *path = url ? sqlite_path(url, err) : NULL;
    return path ? tg_sqlite_open(path, out, err) : unknown_store(url, err);
}

int tg_store_open_readonly(const char *url, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    int rc;
    if (is_postgres(url)) {
        rc = tg_postgres_open_readonly(url, out, err);
    } else {
        const char *path = url ? sqlite_path(url, err) : NULL;
        rc = path ? tg_sqlite_open_readonly(path, out, err) : unknown_store(url, err);
    }
    if (rc == 0) (*out)->query_timeout_ms = TG_STORE_QUERY_TIMEOUT_MS;
    return rc;
}

void tg_store_set_query_timeout(tg_store_t *s, long long ms)
{
    if (s->query_timeout_ms > 0 && ms > 0) s->query_timeout_ms = ms;
}

int tg_store_query_timed_out(const tg_store_t *s, tg_err_t *err)
{
    long long ms = s->query_timeout_ms;
    char took[32];
    if (ms % 1000 == 0)
        snprintf(took, sizeof took, "%lld s", ms / 1000);
    else
        snprintf(took, sizeof took, "%lld ms", ms);
    return tg_err_set(err,
                      "query: cancelled after %s (the query timeout): narrow it down, or give "
                      "it longer with --timeout",
                      took);
}

int tg_store_restore(const char *url, const char *src_path, char *bak, size_t bak_cap,
                     tg_err_t *err)
{
    if (bak_cap) bak[0] = '\0';
    if (tg_store_restorable(url, err) != 0) return -1;
    const char *path = url ? sqlite_path(url, err) : NULL;
    return path ? tg_sqlite_restore(path, src_path, bak, bak_cap, err) : unknown_store(url, err);
}

int tg_store_restorable(const char *url, tg_err_t *err)
{
    if (is_postgres(url))
        return tg_err_set(err, "a postgres store is restored with pg_restore (see "
                               "docs/operations.md, \"The store\")");
    return 0;
}

int tg_store_owns_file(const char *url, const char *file)
{
    const char *path = url ? sqlite_path(url, NULL) : NULL;
    return path ? tg_sqlite_owns_file(path, file) : 0;
}

/* ---- lifecycle -------------------------------------------------------------------- */

void tg_store_close(tg_store_t *s)
{
    if (s) s->life->close(s);
}

int tg_store_writable(tg_store_t *s, tg_err_t *err)
{
    return s->life->writable(s, err);
}

int tg_store_set_busy_timeout(tg_store_t *s, long ms, tg_err_t *err)
{
    return s->life && s->life->set_busy_timeout ? s->life->set_busy_timeout(s, ms, err) : 0;
}

int tg_store_checkpoint_in_background(tg_store_t *s, tg_err_t *err)
{
    return s->life && s->life->checkpoint_in_background ? s->life->checkpoint_in_background(s, err)
                                                        : 0;
}

void tg_store_set_pace(tg_store_t *s, void (*fn)(void *arg), void *arg)
{
    s->pace = fn;
    s->pace_arg = fn ? arg : NULL;
}

/* ---- events and aggregates -------------------------------------------------------- */

int tg_store_append(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted, tg_err_t *err)
{
    return s->events->append(s, evs, n, inserted, err);
}

int tg_store_ingest(tg_store_t *s, const tg_ingest_item_t *items, size_t n, size_t *inserted,
                    size_t *duplicates, tg_err_t *err)
{
    return s->events->ingest(s, items, n, inserted, duplicates, err);
}

int tg_store_purge(tg_store_t *s, int64_t events_before_us, const char *agg_before_day,
                   int64_t *deleted, tg_err_t *err)
{
    return s->events->purge(s, events_before_us, agg_before_day, deleted, err);
}

int tg_store_usage(tg_store_t *s, const tg_usage_query_t *q,
                   int (*cb)(const tg_usage_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->events->usage(s, q, cb, ud, err);
}

int tg_store_spend(tg_store_t *s, const char *tenant, const char *from_day, const char *to_day,
                   int64_t *micros, tg_err_t *err)
{
    return s->events->spend(s, tenant, from_day, to_day, micros, err);
}

/* ---- tenants and keys ------------------------------------------------------------- */

int tg_store_tenant_add(tg_store_t *s, const char *id, const char *name, tg_err_t *err)
{
    return s->tenants->tenant_add(s, id, name, err);
}

int tg_store_tenant_get(tg_store_t *s, const char *id, tg_tenant_t *out, tg_err_t *err)
{
    return s->tenants->tenant_get(s, id, out, err);
}

int tg_store_tenant_list(tg_store_t *s, int (*cb)(const tg_tenant_t *, void *), void *ud,
                         tg_err_t *err)
{
    return s->tenants->tenant_list(s, cb, ud, err);
}

int tg_store_tenant_set_status(tg_store_t *s, const char *id, const char *status, tg_err_t *err)
{
    return s->tenants->tenant_set_status(s, id, status, err);
}

int tg_store_key_add(tg_store_t *s, const tg_key_t *k, tg_err_t *err)
{
    return s->tenants->key_add(s, k, err);
}

int tg_store_key_list(tg_store_t *s, const char *tenant, int (*cb)(const tg_key_t *, void *),
                      void *ud, tg_err_t *err)
{
    return s->tenants->key_list(s, tenant, cb, ud, err);
}

int tg_store_key_revoke(tg_store_t *s, const char *key_id, tg_err_t *err)
{
    return s->tenants->key_revoke(s, key_id, err);
}

int tg_store_key_get(tg_store_t *s, const char *key_id, tg_key_t *out, tg_err_t *err)
{
    return s->tenants->key_get(s, key_id, out, err);
}

int tg_store_key_expire(tg_store_t *s, const char *key_id, int64_t at_us, tg_err_t *err)
{
    return s->tenants->key_expire(s, key_id, at_us, err);
}

int tg_store_key_reseal(tg_store_t *s, const char *key_id, const unsigned char *from,
                        const unsigned char *to, size_t n, tg_err_t *err)
{
    return s->tenants->key_reseal(s, key_id, from, to, n, err);
}

int tg_store_auth_load(tg_store_t *s, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                       tg_err_t *err)
{
    return s->tenants->auth_load(s, cb, ud, err);
}

int tg_store_auth_version(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    return s->tenants->auth_version(s, out, err);
}

/* ---- policy rows ------------------------------------------------------------------ */

int tg_store_policy_version(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    return s->policy->policy_version(s, out, err);
}

int tg_store_limit_set(tg_store_t *s, const tg_limit_row_t *row, tg_err_t *err)
{
    return s->policy->limit_set(s, row, err);
}

int tg_store_limit_rm(tg_store_t *s, const char *tenant, const char *scope, const char *value,
                      tg_err_t *err)
{
    return s->policy->limit_rm(s, tenant, scope, value, err);
}

int tg_store_limit_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_limit_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->policy->limit_list(s, tenant, cb, ud, err);
}

int tg_store_pause_set(tg_store_t *s, const char *tenant, const char *reason, int64_t now_us,
                       tg_err_t *err)
{
    return s->policy->pause_set(s, tenant, reason, now_us, err);
}

int tg_store_pause_clear(tg_store_t *s, const char *tenant, tg_err_t *err)
{
    return s->policy->pause_clear(s, tenant, err);
}

int tg_store_pause_list(tg_store_t *s, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    return s->policy->pause_list(s, cb, ud, err);
}

int tg_store_ip_rule_add(tg_store_t *s, const tg_ip_rule_row_t *row, tg_err_t *err)
{
    return s->policy->ip_rule_add(s, row, err);
}

int tg_store_ip_rule_rm(tg_store_t *s, const char *tenant, const char *action, const char *cidr,
                        tg_err_t *err)
{
    return s->policy->ip_rule_rm(s, tenant, action, cidr, err);
}

int tg_store_ip_rule_list(tg_store_t *s, const char *tenant,
                          int (*cb)(const tg_ip_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->policy->ip_rule_list(s, tenant, cb, ud, err);
}

int tg_store_tool_rule_add(tg_store_t *s, const tg_tool_rule_row_t *row, tg_err_t *err)
{
    return s->policy->tool_rule_add(s, row, err);
}

int tg_store_tool_rule_rm(tg_store_t *s, const char *tenant, const char *action,
                          const char *pattern, tg_err_t *err)
{
    return s->policy->tool_rule_rm(s, tenant, action, pattern, err);
}

int tg_store_tool_rule_list(tg_store_t *s, const char *tenant,
                            int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->policy->tool_rule_list(s, tenant, cb, ud, err);
}

/* ---- prices and budgets ----------------------------------------------------------- */

int tg_store_price_set(tg_store_t *s, const tg_price_row_t *row, tg_err_t *err)
{
    return s->prices->price_set(s, row, err);
}

int tg_store_price_rm(tg_store_t *s, const char *meter, const char *name, int64_t effective_us,
                      tg_err_t *err)
{
    return s->prices->price_rm(s, meter, name, effective_us, err);
}

int tg_store_price_list(tg_store_t *s, int (*cb)(const tg_price_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    return s->prices->price_list(s, cb, ud, err);
}

int tg_store_budget_set(tg_store_t *s, const tg_budget_row_t *row, tg_err_t *err)
{
    return s->prices->budget_set(s, row, err);
}

int tg_store_budget_rm(tg_store_t *s, const char *tenant, tg_err_t *err)
{
    return s->prices->budget_rm(s, tenant, err);
}

int tg_store_budget_list(tg_store_t *s, const char *tenant,
                         int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->prices->budget_list(s, tenant, cb, ud, err);
}

/* ---- alerts ----------------------------------------------------------------------- */

int tg_store_alert_add(tg_store_t *s, const tg_alert_row_t *row, int *inserted, tg_err_t *err)
{
    return s->alerts->alert_add(s, row, inserted, err);
}

int tg_store_alert_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_alert_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->alerts->alert_list(s, tenant, cb, ud, err);
}

/* ---- alarms ----------------------------------------------------------------------- */

int tg_store_alarm_put(tg_store_t *s, const tg_alarm_row_t *rows, size_t nrows,
                       const tg_alarm_event_row_t *evs, size_t nevs, tg_err_t *err)
{
    return s->alarms->alarm_put(s, rows, nrows, evs, nevs, err);
}

int tg_store_alarm_list(tg_store_t *s, int (*cb)(const tg_alarm_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    return s->alarms->alarm_list(s, cb, ud, err);
}

int tg_store_alarm_events(tg_store_t *s, const char *tenant, int64_t limit,
                          int (*cb)(const tg_alarm_event_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->alarms->alarm_events(s, tenant, limit, cb, ud, err);
}

/* ---- the notification outbox ------------------------------------------------------ */

int tg_store_outbox_add(tg_store_t *s, const tg_notice_t *n, const char *const *notifiers,
                        size_t nnotifiers, int64_t now_us, int *inserted, tg_err_t *err)
{
    return s->outbox->add(s, n, NULL, notifiers, nnotifiers, now_us, inserted, err);
}

int tg_store_outbox_add_sealed(tg_store_t *s, const tg_notice_t *id, const char *sealed,
                               const char *const *notifiers, size_t nnotifiers, int64_t now_us,
                               int *inserted, tg_err_t *err)
{
    if (!sealed || !*sealed) return tg_err_set(err, "outbox add: no sealed notice");
    static const tg_notice_t blank; /* nothing but the id in the plain columns */
    tg_notice_t row = blank;
    memcpy(row.id, id->id, sizeof row.id);
    return s->outbox->add(s, &row, sealed, notifiers, nnotifiers, now_us, inserted, err);
}

int tg_store_outbox_sealed_each(tg_store_t *s,
                                int (*cb)(const char *id, const char *sealed, void *), void *ud,
                                tg_err_t *err)
{
    return s->outbox->sealed_each(s, cb, ud, err);
}

int tg_store_outbox_reseal(tg_store_t *s, const char *id, const char *from, const char *to,
                           tg_err_t *err)
{
    return s->outbox->reseal(s, id, from, to, err);
}

int tg_store_outbox_claim(tg_store_t *s, int64_t now_us, int64_t lease_until_us, size_t max,
                          const char *notifier, int (*cb)(const tg_notice_delivery_t *, void *),
                          void *ud, tg_err_t *err)
{
    return s->outbox->claim(s, now_us, lease_until_us, max, notifier, cb, ud, err);
}

int tg_store_outbox_set(tg_store_t *s, const char *notice_id, const char *notifier,
                        const char *status, int attempts, int64_t next_us, const char *error,
                        int64_t now_us, tg_err_t *err)
{
    return s->outbox->set(s, notice_id, notifier, status, attempts, next_us, error, now_us, err);
}

int tg_store_outbox_defer(tg_store_t *s, const char *notifier, int64_t until_us, int64_t now_us,
                          tg_err_t *err)
{
    return s->outbox->defer(s, notifier, until_us, now_us, err);
}

int tg_store_outbox_next(tg_store_t *s, const char *notifier, int64_t *next_us, int *found,
                         tg_err_t *err)
{
    return s->outbox->next(s, notifier, next_us, found, err);
}

int tg_store_outbox_notifiers(tg_store_t *s, int (*cb)(const char *notifier, void *), void *ud,
                              tg_err_t *err)
{
    return s->outbox->notifiers(s, cb, ud, err);
}

int tg_store_outbox_list(tg_store_t *s, const char *status,
                         int (*cb)(const tg_notice_delivery_t *, void *), void *ud, tg_err_t *err)
{
    return s->outbox->list(s, status, cb, ud, err);
}

int tg_store_outbox_purge(tg_store_t *s, int64_t before_us, int64_t *deleted, tg_err_t *err)
{
    return s->outbox->purge(s, before_us, deleted, err);
}

/* ---- plans, invoices, export ------------------------------------------------------ */

int tg_store_plan_set(tg_store_t *s, const tg_plan_t *p, tg_err_t *err)
{
    return s->invoices->plan_set(s, p, err);
}

int tg_store_plan_rm(tg_store_t *s, const char *name, int64_t effective_us, tg_err_t *err)
{
    return s->invoices->plan_rm(s, name, effective_us, err);
}

int tg_store_plan_list(tg_store_t *s, const char *name, int (*cb)(const tg_plan_t *, void *),
                       void *ud, tg_err_t *err)
{
    return s->invoices->plan_list(s, name, cb, ud, err);
}

int tg_store_plan_get(tg_store_t *s, const char *name, int64_t at_us, tg_plan_t *out, tg_err_t *err)
{
    return s->invoices->plan_get(s, name, at_us, out, err);
}

int tg_store_tenant_plan_set(tg_store_t *s, const tg_tenant_plan_row_t *row, tg_err_t *err)
{
    return s->invoices->tenant_plan_set(s, row, err);
}

int tg_store_tenant_plan_rm(tg_store_t *s, const char *tenant, const char *from_month,
                            tg_err_t *err)
{
    return s->invoices->tenant_plan_rm(s, tenant, from_month, err);
}

int tg_store_tenant_plan_list(tg_store_t *s, const char *tenant,
                              int (*cb)(const tg_tenant_plan_row_t *, void *), void *ud,
                              tg_err_t *err)
{
    return s->invoices->tenant_plan_list(s, tenant, cb, ud, err);
}

int tg_store_plan_usage(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                        int (*cb)(const tg_plan_usage_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->invoices->usage(s, tenant, from_us, to_us, cb, ud, err);
}

int tg_store_invoice_close(tg_store_t *s, const tg_invoice_row_t *inv,
                           const tg_invoice_line_t *lines, size_t nlines,
                           const tg_invoice_billed_t *meters, size_t nmeters,
                           const tg_invoice_billed_t *rebilled, size_t nrebilled, tg_err_t *err)
{
    return s->invoices->close(s, inv, lines, nlines, meters, nmeters, rebilled, nrebilled, err);
}

int tg_store_invoice_get(tg_store_t *s, const char *tenant, const char *month,
                         tg_invoice_row_t *out, int (*cb)(const tg_invoice_line_t *, void *),
                         void *ud, tg_err_t *err)
{
    return s->invoices->get(s, tenant, month, out, cb, ud, err);
}

int tg_store_invoice_list(tg_store_t *s, const char *tenant,
                          int (*cb)(const tg_invoice_row_t *, void *), void *ud, tg_err_t *err)
{
    return s->invoices->list(s, tenant, cb, ud, err);
}

int tg_store_invoice_billed(tg_store_t *s, const char *tenant, const char *month,
                            int (*cb)(const tg_invoice_billed_t *, void *), void *ud, tg_err_t *err)
{
    return s->invoices->billed(s, tenant, month, cb, ud, err);
}

int tg_store_event_range(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                         int (*cb)(const tg_event_t *, void *), void *ud, tg_err_t *err)
{
    return s->invoices->event_range(s, tenant, from_us, to_us, cb, ud, err);
}

/* ---- dashboard ---------------------------------------------------------------------- */

int tg_store_dash_read_only(tg_store_t *s, tg_err_t *err)
{
    return s->dash->read_only(s, err);
}

int tg_store_dash_totals(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                         int (*cb)(const tg_dash_totals_t *, void *), void *ud, tg_err_t *err)
{
    return s->dash->totals(s, tenant, from_us, to_us, cb, ud, err);
}

int tg_store_dash_series(tg_store_t *s, const char *tenant, int64_t from_us, int64_t to_us,
                         int64_t bucket_us, int (*cb)(const tg_dash_bucket_t *, void *), void *ud,
                         tg_err_t *err)
{
    return s->dash->series(s, tenant, from_us, to_us, bucket_us, cb, ud, err);
}

int tg_store_dash_rejections(tg_store_t *s, const char *tenant, int limit,
                             int (*cb)(const tg_dash_rejection_t *, void *), void *ud,
                             tg_err_t *err)
{
    return s->dash->rejections(s, tenant, limit, cb, ud, err);
}

/* ---- read-only SQL, backup and archive ------------------------------------------- */

int tg_store_query(tg_store_t *s, const char *sql, const char *const *params, size_t nparams,
                   const tg_sql_sink_t *sink, tg_err_t *err)
{
    return s->sql->query(s, sql, params, nparams, sink, err);
}

int tg_store_backup(tg_store_t *s, const char *dest_path, int pages, int64_t *npages, tg_err_t *err)
{
    return s->sql->backup(s, dest_path, pages, npages, err);
}

int tg_store_events_delete(tg_store_t *s, const int64_t *ids, size_t n, int64_t before_us,
                           int64_t *deleted, tg_err_t *err)
{
    return s->sql->events_delete(s, ids, n, before_us, deleted, err);
}

/* ---- admin API tokens -------------------------------------------------------------- */

int tg_store_admin_token_add(tg_store_t *s, const tg_admin_token_row_t *row, tg_err_t *err)
{
    return s->admin_tokens->add(s, row, err);
}

int tg_store_admin_token_list(tg_store_t *s, int (*cb)(const tg_admin_token_row_t *, void *),
                              void *ud, tg_err_t *err)
{
    return s->admin_tokens->list(s, cb, ud, err);
}

int tg_store_admin_token_revoke(tg_store_t *s, const char *id, int64_t now_us, tg_err_t *err)
{
    return s->admin_tokens->revoke(s, id, now_us, err);
}

int tg_store_admin_token_touch(tg_store_t *s, const char *id, int64_t used_us, tg_err_t *err)
{
    return s->admin_tokens->touch(s, id, used_us, err);
}

/* ---- copying a store -------------------------------------------------------------- */

const char *tg_store_dialect(tg_store_t *s)
{
    return s->life->dialect;
}

/* ---- the audit trail ---------------------------------------------------------------- */

int tg_store_audit_append(tg_store_t *s, tg_audit_rec_t *recs, size_t n, tg_err_t *err)
{
    return n ? s->audit->append(s, recs, n, err) : 0;
}

int tg_store_audit_head(tg_store_t *s, tg_audit_head_t *out, tg_err_t *err)
{
    return s->audit->head(s, out, err);
}

int tg_store_audit_range(tg_store_t *s, const char *from_day, const char *to_day,
                         int (*cb)(const tg_audit_rec_t *, void *), void *ud, tg_err_t *err)
{
    return s->audit->range(s, from_day, to_day, cb, ud, err);
}

int tg_store_audit_find(tg_store_t *s, const char *hash, int64_t *id, tg_err_t *err)
{
    return s->audit->find(s, hash, id, err);
}

int tg_store_audit_erase(tg_store_t *s, const char *tenant, int64_t *changed, tg_err_t *err)
{
    return s->audit->erase(s, tenant, changed, err);
}

int tg_store_audit_purge(tg_store_t *s, const char *before_day, int64_t *deleted, tg_err_t *err)
{
    return s->audit->purge(s, before_day, deleted, err);
}

int tg_store_audit_body_get(tg_store_t *s, int64_t record_id, tg_audit_body_t *out, tg_err_t *err)
{
    return s->audit->body_get(s, record_id, out, err);
}

int tg_store_audit_bodies_each(tg_store_t *s,
                               int (*cb)(int64_t record_id, const unsigned char *sealed, size_t n,
                                         void *ud),
                               void *ud, tg_err_t *err)
{
    return s->audit->bodies_each(s, cb, ud, err);
}

int tg_store_audit_body_reseal(tg_store_t *s, int64_t record_id, const unsigned char *from,
                               const unsigned char *to, size_t n, tg_err_t *err)
{
    return s->audit->body_reseal(s, record_id, from, to, n, err);
}

const tg_store_table_t tg_store_tables[] = {
    {"tenants", "id"},
    {"api_keys", "id"},
    {"usage_events", "id"},
    {"pauses", "tenant_id"},
    {"ip_rules", "tenant_id, action, cidr"},
    {"usage_daily", "tenant_id, day"},
    {"limits", "tenant_id, scope, value"},
    {"prices", "meter, name, effective_us"},
    {"budgets", "tenant_id"},
    {"alerts", "id"},
    {"tool_rules", "tenant_id, action, pattern"},
    {"alarms", "name, tenant_id"},
    {"alarm_events", "id"},
    {"outbox", "id"},
    {"outbox_deliveries", "notice_id, notifier"},
    {"ingest_seen", "ts_us, digest"},
    {"ingest_unknown_keys", "sha256"},
    {"plans", "name, effective_us"},
    {"plan_meters", "plan, effective_us, seq"},
    {"plan_tiers", "plan, effective_us, seq, tier"},
    {"tenant_plans", "tenant_id, from_month"},
    {"invoices", "tenant_id, month"},
    {"invoice_lines", "tenant_id, month, seq"},
    {"invoice_meters", "tenant_id, month, meter, match"},
    {"audit", "id"},
    {"audit_head", "id"},
    {"audit_bodies", "record_id"},
    {"admin_tokens", "id"},
    {NULL, NULL},
};

/* A column name the backends may put in SQL as it is: lower-case letters, digits, '_'. */
static int plain_name(const char *c)
{
    if (!c || !*c || strlen(c) > 63) return 0;
    for (; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
    return 1;
}

int tg_store_rows_put(tg_store_t *s, const char *table, const char *const *cols, size_t ncols,
                      const tg_sql_value_t *vals, size_t nrows, tg_err_t *err)
{
    const tg_store_table_t *t = tg_store_tables;
    while (t->name && (!table || strcmp(t->name, table) != 0))
        t++;
    if (!t->name) return tg_err_set(err, "rows put: \"%.63s\" is not a table of the store", table);
    if (ncols == 0) return tg_err_set(err, "rows put %s: no columns", table);
    for (size_t i = 0; i < ncols; i++)
        if (!plain_name(cols[i]))
            return tg_err_set(err, "rows put %s: column \"%.63s\" is not a plain name", table,
                              cols[i] ? cols[i] : "");
    if (nrows == 0) return 0;
    return s->sql->rows_put(s, t->name, cols, ncols, vals, nrows, err);
}
